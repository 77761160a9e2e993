/* Segment descriptors and mode bookkeeping (SDM vol. 3 §3.4.5 descriptor
 * format, §5.5-5.8 privilege checks on segment loads, §9.9 mode switches).
 * seg_load() implements MOV/POP to a segment register; far transfers and
 * IRET build on desc_read()/desc_to_segment(). */
#include <string.h>

#include "engine/soft/soft.h"

void soft_mode_changed(struct soft_cpu *cpu)
{
	const struct segment *cs = &cpu->s.seg[SEG_CS];
	bool pe = cpu->s.cr0 & CR0_PE;
	bool lma = pe && (cpu->s.cr0 & CR0_PG) && (cpu->s.efer & EFER_LME);

	if (lma)
		cpu->s.efer |= EFER_LMA;
	else
		cpu->s.efer &= ~EFER_LMA;
	cpu->long64 = lma && cs->l;
	cpu->def32 = pe && !(cpu->s.rflags & FLAG_VM) && cs->db;
	cpu->paging = pe && (cpu->s.cr0 & CR0_PG);
	if (!pe)
		cpu->cpl = 0;
	else if (cpu->s.rflags & FLAG_VM)
		cpu->cpl = 3;
	else
		cpu->cpl = cpu->s.seg[SEG_SS].dpl; /* SS.DPL is the CPL (SDM vol. 3 §5.5) */
}

/* Reads the 8-byte descriptor for selector from the GDT or LDT; #GP(sel)
 * when it lies outside the table. */
uint64_t desc_read(struct soft_cpu *cpu, uint16_t selector, uint8_t vector)
{
	bool ldt = selector & 4;
	const struct segment *table = ldt ? &cpu->s.seg[SEG_LDTR] : NULL;
	uint64_t base = ldt ? table->base : cpu->s.gdt.base;
	uint32_t limit = ldt ? table->limit : cpu->s.gdt.limit;
	uint32_t off = selector & ~7u;

	if ((ldt && (table->unusable || !table->present)) || off + 7 > limit)
		soft_raise(cpu, vector, selector & ~3u);
	return lin_read_sys(cpu, base + off, 8);
}

void desc_to_segment(uint64_t d, uint16_t selector, struct segment *s)
{
	memset(s, 0, sizeof(*s));
	s->selector = selector;
	s->base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
	uint32_t limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16));
	s->type = (d >> 40) & 0xf;
	s->s = (d >> 44) & 1;
	s->dpl = (d >> 45) & 3;
	s->present = (d >> 47) & 1;
	s->avl = (d >> 52) & 1;
	s->l = (d >> 53) & 1;
	s->db = (d >> 54) & 1;
	s->g = (d >> 55) & 1;
	s->limit = s->g ? (limit << 12) | 0xfff : limit;
}

/* Marks the descriptor accessed in memory, as the processor does on load. */
static void desc_set_accessed(struct soft_cpu *cpu, uint16_t selector, uint64_t d)
{
	if (d & (1ULL << 40))
		return;
	bool ldt = selector & 4;
	uint64_t base = ldt ? cpu->s.seg[SEG_LDTR].base : cpu->s.gdt.base;
	lin_write_sys(cpu, base + (selector & ~7u) + 5, 1, (uint8_t)((d >> 40) | 1));
}

static void seg_load_real(struct soft_cpu *cpu, unsigned seg, uint16_t selector)
{
	struct segment *s = &cpu->s.seg[seg];
	s->selector = selector;
	s->base = (uint64_t)selector << 4;
	/* Real and virtual-8086 mode keep the cached limit and attributes,
	 * except that a loaded segment is usable again. */
	s->unusable = 0;
	s->present = 1;
	if (cpu->s.rflags & FLAG_VM) {
		s->limit = 0xffff;
		s->dpl = 3;
		s->type = seg == SEG_CS ? 11 : 3;
		s->s = 1;
		s->db = 0;
		s->g = 0;
		s->l = 0;
	}
}

static void seg_load_null(struct soft_cpu *cpu, unsigned seg, uint16_t selector)
{
	if (seg == SEG_SS && !(cpu->long64 && cpu->cpl != 3 && (selector & 3) == cpu->cpl))
		soft_gp(cpu, 0);
	struct segment *s = &cpu->s.seg[seg];
	memset(s, 0, sizeof(*s));
	s->selector = selector;
	s->unusable = 1;
}

void seg_load(struct soft_cpu *cpu, unsigned seg, uint16_t selector)
{
	if (!(cpu->s.cr0 & CR0_PE) || (cpu->s.rflags & FLAG_VM)) {
		seg_load_real(cpu, seg, selector);
		return;
	}
	if ((selector & ~3u) == 0 && !(selector & 4)) {
		seg_load_null(cpu, seg, selector);
		return;
	}
	uint64_t d = desc_read(cpu, selector, EXC_GP);
	struct segment s;
	desc_to_segment(d, selector, &s);
	unsigned rpl = selector & 3;
	bool code = s.type & 8, writable = s.type & 2, readable = s.type & 2;
	bool conforming = code && (s.type & 4);

	if (!s.s)
		soft_gp(cpu, selector & ~3u);
	if (seg == SEG_SS) {
		if (code || !writable || rpl != cpu->cpl || s.dpl != cpu->cpl)
			soft_gp(cpu, selector & ~3u);
		if (!s.present)
			soft_raise(cpu, EXC_SS, selector & ~3u);
	} else {
		if (code && !readable)
			soft_gp(cpu, selector & ~3u);
		if (!conforming && (rpl > s.dpl || cpu->cpl > s.dpl))
			soft_gp(cpu, selector & ~3u);
		if (!s.present)
			soft_raise(cpu, EXC_NP, selector & ~3u);
	}
	desc_set_accessed(cpu, selector, d);
	s.type |= 1;
	cpu->s.seg[seg] = s;
	if (seg == SEG_SS)
		soft_mode_changed(cpu);
}
