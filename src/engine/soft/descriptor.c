/* Segments and descriptor tables (SDM vol. 3 §3.4.5 descriptor format,
 * §3.5 system descriptors and the GDTR/LDTR/IDTR/TR registers, §5.5-5.8
 * privilege checks on segment loads and far transfers, §9.8-9.9 mode
 * switches; vol. 2: MOV Sreg, LDS/LES/LSS/LFS/LGS, LGDT/LIDT, SGDT/SIDT,
 * LLDT/SLDT, LTR/STR, LAR, LSL, VERR/VERW, ARPL, SWAPGS, RDFSBASE &co,
 * far JMP, far CALL, far RET).
 *
 * Not implemented: call gates and task switches (far JMP/CALL to a call
 * gate, TSS or task gate raises #GP(selector)); virtual-8086 mode beyond
 * real-mode-style segment loads. */
#include <string.h>

#include "engine/soft/system.h"

void soft_mode_changed(struct soft_cpu *cpu)
{
	cpu->code_la = ~0ULL; /* CPL or mode may differ: re-check fetch permissions */
	cpu->code_gen++;
	cpu->block_abort = true;
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

/* ---- descriptor tables ---- */

/* Linear address of the descriptor for sel, or false outside its table. */
static bool desc_address(struct soft_cpu *cpu, uint16_t sel, unsigned size, uint64_t *la)
{
	const struct segment *ldtr = &cpu->s.seg[SEG_LDTR];
	bool ldt = sel & 4;
	uint64_t base = ldt ? ldtr->base : cpu->s.gdt.base;
	uint64_t limit = ldt ? ldtr->limit : cpu->s.gdt.limit;
	uint64_t off = sel & ~7u;

	if (ldt && (ldtr->unusable || !ldtr->present))
		return false;
	if (off + size - 1 > limit)
		return false;
	*la = base + off;
	if (!sys_lma(cpu))
		*la &= 0xffffffffULL;
	return true;
}

uint64_t desc_read_ext(struct soft_cpu *cpu, uint16_t sel, uint8_t vector, uint32_t ext)
{
	uint64_t la;
	if (!desc_address(cpu, sel, 8, &la))
		soft_raise(cpu, vector, sel_err(sel) | ext);
	return lin_read_sys(cpu, la, 8);
}

uint64_t desc_read(struct soft_cpu *cpu, uint16_t selector, uint8_t vector)
{
	return desc_read_ext(cpu, selector, vector, 0);
}

uint64_t desc_read_high(struct soft_cpu *cpu, uint16_t sel)
{
	uint64_t la;
	if (!desc_address(cpu, sel, 16, &la))
		soft_gp(cpu, sel_err(sel));
	return lin_read_sys(cpu, la + 8, 8);
}

bool desc_fetch(struct soft_cpu *cpu, uint16_t sel, uint64_t *d)
{
	uint64_t la;
	if (!desc_address(cpu, sel, 8, &la))
		return false;
	*d = lin_read_sys(cpu, la, 8);
	return true;
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

/* Writes byte 5 (type, S, DPL, P) of a descriptor, as the processor does
 * when it sets the accessed or busy bit. The descriptor was just read, so
 * it lies within its table. */
static void desc_write_access_byte(struct soft_cpu *cpu, uint16_t sel, uint8_t byte)
{
	uint64_t la;
	if (desc_address(cpu, sel, 8, &la))
		lin_write_sys(cpu, la + 5, 1, byte);
}

void desc_mark_accessed(struct soft_cpu *cpu, uint16_t sel, uint64_t d)
{
	if (!(d & (1ULL << 40)))
		desc_write_access_byte(cpu, sel, (uint8_t)((d >> 40) | 1));
}

/* ---- segment register loads ---- */

static void seg_load_real(struct soft_cpu *cpu, unsigned seg, uint16_t selector)
{
	struct segment *s = &cpu->s.seg[seg];
	s->selector = selector;
	s->base = (uint64_t)selector << 4;
	/* Real mode keeps the cached limit and attributes ("unreal mode"),
	 * except that a loaded segment is usable again; virtual-8086 mode
	 * reloads them with fixed values. */
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
	/* A null SS is legal only in 64-bit mode at CPL < 3 with RPL = CPL. */
	if (seg == SEG_SS && !(cpu->long64 && cpu->cpl != 3 && (selector & 3) == cpu->cpl))
		soft_gp(cpu, 0);
	struct segment *s = &cpu->s.seg[seg];
	memset(s, 0, sizeof(*s)); /* Intel clears the base of a nulled FS/GS too */
	s->selector = selector;
	s->unusable = 1;
	if (seg == SEG_SS)
		s->dpl = (uint8_t)cpu->cpl; /* SS.DPL remains the CPL */
}

void seg_load(struct soft_cpu *cpu, unsigned seg, uint16_t selector)
{
	if (!sys_protected(cpu)) {
		seg_load_real(cpu, seg, selector);
		return;
	}
	if (sel_is_null(selector)) {
		seg_load_null(cpu, seg, selector);
		return;
	}
	uint64_t d = desc_read(cpu, selector, EXC_GP);
	struct segment s;
	desc_to_segment(d, selector, &s);
	unsigned rpl = selector & 3;
	bool code = s.type & SEGT_CODE, rw = s.type & SEGT_RW;
	bool conforming = code && (s.type & SEGT_CONFORM);

	if (!s.s)
		soft_gp(cpu, sel_err(selector));
	if (seg == SEG_SS) {
		if (code || !rw || rpl != cpu->cpl || s.dpl != cpu->cpl)
			soft_gp(cpu, sel_err(selector));
		if (!s.present)
			soft_raise(cpu, EXC_SS, sel_err(selector));
	} else {
		if (code && !rw)
			soft_gp(cpu, sel_err(selector)); /* execute-only code */
		if (!conforming && (rpl > s.dpl || cpu->cpl > s.dpl))
			soft_gp(cpu, sel_err(selector));
		if (!s.present)
			soft_raise(cpu, EXC_NP, sel_err(selector));
	}
	desc_mark_accessed(cpu, selector, d);
	s.type |= SEGT_ACCESSED;
	cpu->s.seg[seg] = s;
}

/* ---- stacks ---- */

uint64_t sys_stack_linear(struct soft_cpu *cpu, const struct segment *ss, bool flat64, uint64_t off,
			  unsigned size, uint32_t err)
{
	if (flat64) {
		if (!sys_canonical(off) || !sys_canonical(off + size - 1))
			soft_raise(cpu, EXC_SS, err);
		return off;
	}
	uint64_t last = off + size - 1;
	if (ss->type & SEGT_CONFORM) { /* expand-down: valid offsets (limit, top] */
		uint64_t top = ss->db ? 0xffffffffULL : 0xffffULL;
		if (off <= ss->limit || last > top)
			soft_raise(cpu, EXC_SS, err);
	} else if (last > ss->limit) {
		soft_raise(cpu, EXC_SS, err);
	}
	return (ss->base + off) & 0xffffffffULL;
}

void sys_push_frame(struct soft_cpu *cpu, unsigned size, const uint64_t *v, unsigned n, uint32_t err)
{
	const struct segment *ss = &cpu->s.seg[SEG_SS];
	unsigned as = stack_addr_size(cpu);
	uint64_t sp = cpu->s.gpr[GPR_RSP];

	if (!cpu->long64 && sys_protected(cpu) && (ss->unusable || !ss->present))
		soft_raise(cpu, EXC_SS, err);
	for (unsigned k = 0; k < n; k++) {
		sp = (sp - size) & size_mask(as);
		uint64_t la = sys_stack_linear(cpu, ss, cpu->long64, sp, size, err);
		lin_write(cpu, la, size, v[k]);
	}
	reg_write(cpu, GPR_RSP, as, sp, true);
}

uint64_t sys_stack_peek(struct soft_cpu *cpu, unsigned size, uint64_t off)
{
	unsigned as = stack_addr_size(cpu);
	return seg_read(cpu, SEG_SS, (cpu->s.gpr[GPR_RSP] + off) & size_mask(as), size);
}

void sys_stack_release(struct soft_cpu *cpu, uint64_t delta)
{
	unsigned as = stack_addr_size(cpu);
	reg_write(cpu, GPR_RSP, as, (cpu->s.gpr[GPR_RSP] + delta) & size_mask(as), true);
}

void sys_set_rsp(struct soft_cpu *cpu, bool flat64, const struct segment *ss, uint64_t sp)
{
	unsigned as = flat64 ? 8 : (ss->db ? 4 : 2);
	reg_write(cpu, GPR_RSP, as, sp, true);
}

/* ---- far transfers ---- */

void sys_set_cs(struct soft_cpu *cpu, struct segment *cs, uint16_t sel, unsigned cpl)
{
	cs->selector = (uint16_t)((sel & ~3u) | cpl);
	cs->type |= SEGT_ACCESSED;
	cpu->s.seg[SEG_CS] = *cs;
	soft_mode_changed(cpu);
}

uint64_t sys_target_ip(struct soft_cpu *cpu, const struct segment *cs, uint64_t ip, unsigned size)
{
	ip &= size_mask(size);
	if (sys_is64(cpu, cs)) {
		if (!sys_canonical(ip))
			soft_gp(cpu, 0);
	} else if (ip > cs->limit) {
		soft_gp(cpu, 0);
	}
	return ip;
}

/* The code segment of a far JMP or CALL (SDM vol. 3 §5.8.1-5.8.2). */
static uint64_t far_target_cs(struct soft_cpu *cpu, uint16_t sel, struct segment *cs)
{
	if (sel_is_null(sel))
		soft_gp(cpu, 0);
	uint64_t d = desc_read(cpu, sel, EXC_GP);
	desc_to_segment(d, sel, cs);
	if (!cs->s || !(cs->type & SEGT_CODE))
		soft_gp(cpu, sel_err(sel)); /* call gates, TSS, task gates: not implemented */
	if (cs->type & SEGT_CONFORM) {
		if (cs->dpl > cpu->cpl)
			soft_gp(cpu, sel_err(sel));
	} else if ((sel & 3u) > cpu->cpl || cs->dpl != cpu->cpl) {
		soft_gp(cpu, sel_err(sel));
	}
	if (!cs->present)
		soft_raise(cpu, EXC_NP, sel_err(sel));
	if (sys_lma(cpu) && cs->l && cs->db)
		soft_gp(cpu, sel_err(sel));
	return d;
}

/* Real and virtual-8086 mode: CS = selector, base = selector << 4. */
static uint64_t far_real_target(struct soft_cpu *cpu, uint64_t ip, unsigned size)
{
	ip &= size_mask(size);
	if (ip > cpu->s.seg[SEG_CS].limit)
		soft_gp(cpu, 0);
	return ip;
}

/* The m16:16/32/64 operand of FF /3, FF /5 and LxS: offset, then selector. */
static void read_far_pointer(struct soft_cpu *cpu, const struct insn *i, uint64_t *off, uint16_t *sel)
{
	uint64_t ea = insn_ea(cpu, i);
	*off = seg_read(cpu, i->seg, ea, i->opsize);
	*sel = (uint16_t)seg_read(cpu, i->seg, (ea + i->opsize) & size_mask(i->addrsize), 2);
}

static void jmp_far(struct soft_cpu *cpu, const struct insn *i, uint16_t sel, uint64_t off)
{
	if (!sys_protected(cpu)) {
		uint64_t ip = far_real_target(cpu, off, i->opsize);
		seg_load_real(cpu, SEG_CS, sel);
		soft_mode_changed(cpu);
		set_next_rip(cpu, ip);
		return;
	}
	struct segment cs;
	uint64_t d = far_target_cs(cpu, sel, &cs);
	uint64_t ip = sys_target_ip(cpu, &cs, off, i->opsize);
	desc_mark_accessed(cpu, sel, d);
	sys_set_cs(cpu, &cs, sel, cpu->cpl);
	set_next_rip(cpu, ip);
}

static void call_far(struct soft_cpu *cpu, const struct insn *i, uint16_t sel, uint64_t off)
{
	uint64_t frame[2] = {cpu->s.seg[SEG_CS].selector, cpu->next_rip};

	if (!sys_protected(cpu)) {
		uint64_t ip = far_real_target(cpu, off, i->opsize);
		sys_push_frame(cpu, i->opsize, frame, 2, 0);
		seg_load_real(cpu, SEG_CS, sel);
		soft_mode_changed(cpu);
		set_next_rip(cpu, ip);
		return;
	}
	struct segment cs;
	uint64_t d = far_target_cs(cpu, sel, &cs);
	uint64_t ip = sys_target_ip(cpu, &cs, off, i->opsize);
	sys_push_frame(cpu, i->opsize, frame, 2, 0);
	desc_mark_accessed(cpu, sel, d);
	sys_set_cs(cpu, &cs, sel, cpu->cpl);
	set_next_rip(cpu, ip);
}

/* The target of a far JMP/CALL: the ptr16:16/32 immediate of the direct
 * form (EA, 9A), else the m16:16/32/64 memory operand (FF /5, FF /3). */
static void far_target(struct soft_cpu *cpu, struct insn *i, uint64_t *off, uint16_t *sel)
{
	if (i->opcode == 0xea || i->opcode == 0x9a) {
		*off = i->imm;
		*sel = (uint16_t)i->imm2;
	} else {
		read_far_pointer(cpu, i, off, sel);
	}
}

void sys_jmp_far(struct soft_cpu *cpu, struct insn *i) /* EA ptr16:16/32, FF /5 m16:16/32/64 */
{
	uint64_t off;
	uint16_t sel;
	far_target(cpu, i, &off, &sel);
	jmp_far(cpu, i, sel, off);
}

void sys_call_far(struct soft_cpu *cpu, struct insn *i) /* 9A ptr16:16/32, FF /3 m16:16/32/64 */
{
	uint64_t off;
	uint16_t sel;
	far_target(cpu, i, &off, &sel);
	call_far(cpu, i, sel, off);
}

void sys_return_cs(struct soft_cpu *cpu, uint16_t sel, struct segment *cs, uint64_t *d)
{
	unsigned rpl = sel & 3;
	if (sel_is_null(sel))
		soft_gp(cpu, 0);
	*d = desc_read(cpu, sel, EXC_GP);
	desc_to_segment(*d, sel, cs);
	if (!cs->s || !(cs->type & SEGT_CODE) || rpl < cpu->cpl)
		soft_gp(cpu, sel_err(sel));
	if ((cs->type & SEGT_CONFORM) ? cs->dpl > rpl : cs->dpl != rpl)
		soft_gp(cpu, sel_err(sel));
	if (!cs->present)
		soft_raise(cpu, EXC_NP, sel_err(sel));
	if (sys_lma(cpu) && cs->l && cs->db)
		soft_gp(cpu, sel_err(sel));
}

void sys_return_ss(struct soft_cpu *cpu, uint16_t sel, unsigned rpl, const struct segment *cs,
		   struct segment *ss, uint64_t *d)
{
	*d = 0;
	if (sel_is_null(sel)) {
		if (!sys_is64(cpu, cs) || rpl == 3)
			soft_gp(cpu, 0);
		memset(ss, 0, sizeof(*ss));
		ss->selector = sel;
		ss->unusable = 1;
		ss->dpl = (uint8_t)rpl;
		return;
	}
	if ((sel & 3u) != rpl)
		soft_gp(cpu, sel_err(sel));
	*d = desc_read(cpu, sel, EXC_GP);
	desc_to_segment(*d, sel, ss);
	if (!ss->s || (ss->type & SEGT_CODE) || !(ss->type & SEGT_RW) || ss->dpl != rpl)
		soft_gp(cpu, sel_err(sel));
	if (!ss->present)
		soft_raise(cpu, EXC_SS, sel_err(sel));
}

void sys_null_inner_segments(struct soft_cpu *cpu, unsigned cpl)
{
	static const unsigned segs[] = {SEG_ES, SEG_DS, SEG_FS, SEG_GS};
	for (unsigned k = 0; k < sizeof(segs) / sizeof(segs[0]); k++) {
		struct segment *s = &cpu->s.seg[segs[k]];
		bool conforming = (s->type & (SEGT_CODE | SEGT_CONFORM)) == (SEGT_CODE | SEGT_CONFORM);
		if (s->unusable || !s->s || conforming || s->dpl >= cpl)
			continue;
		memset(s, 0, sizeof(*s));
		s->unusable = 1;
	}
}

/* Far RET to an outer level: pops the caller's SS:rSP after the imm16
 * bytes of parameters (SDM vol. 2 RET, "RETURN-TO-OUTER-PRIVILEGE-LEVEL"). */
static void ret_far_outer(struct soft_cpu *cpu, struct segment *cs, uint64_t cs_d, uint16_t cs_sel,
			  uint64_t ip, unsigned size, uint64_t imm)
{
	unsigned rpl = cs_sel & 3;
	uint64_t sp = sys_stack_peek(cpu, size, 2 * size + imm);
	uint16_t ss_sel = (uint16_t)sys_stack_peek(cpu, size, 3 * size + imm);
	struct segment ss;
	uint64_t ss_d;

	sys_return_ss(cpu, ss_sel, rpl, cs, &ss, &ss_d);
	ip = sys_target_ip(cpu, cs, ip, size);
	desc_mark_accessed(cpu, cs_sel, cs_d);
	if (ss_d)
		desc_mark_accessed(cpu, ss_sel, ss_d);
	if (!ss.unusable)
		ss.type |= SEGT_ACCESSED;
	cpu->s.seg[SEG_SS] = ss;
	bool flat64 = sys_is64(cpu, cs);
	sys_set_cs(cpu, cs, cs_sel, rpl);
	sys_set_rsp(cpu, flat64, &ss, sp + imm);
	sys_null_inner_segments(cpu, rpl);
	set_next_rip(cpu, ip);
}

void sys_ret_far(struct soft_cpu *cpu, struct insn *i) /* CB, CA imm16 */
{
	unsigned size = i->opsize;
	uint64_t imm = i->opcode == 0xca ? (i->imm & 0xffff) : 0;
	uint64_t ip = sys_stack_peek(cpu, size, 0);
	uint16_t sel = (uint16_t)sys_stack_peek(cpu, size, size);

	if (!sys_protected(cpu)) {
		ip = far_real_target(cpu, ip, size);
		seg_load_real(cpu, SEG_CS, sel);
		sys_stack_release(cpu, 2 * size + imm);
		soft_mode_changed(cpu);
		set_next_rip(cpu, ip);
		return;
	}
	struct segment cs;
	uint64_t d;
	sys_return_cs(cpu, sel, &cs, &d);
	if ((sel & 3u) > cpu->cpl) {
		ret_far_outer(cpu, &cs, d, sel, ip, size, imm);
		return;
	}
	ip = sys_target_ip(cpu, &cs, ip, size);
	desc_mark_accessed(cpu, sel, d);
	sys_stack_release(cpu, 2 * size + imm);
	sys_set_cs(cpu, &cs, sel, cpu->cpl);
	set_next_rip(cpu, ip);
}

/* ---- segment register instructions ---- */

void sys_mov_sreg_rm(struct soft_cpu *cpu, struct insn *i) /* 8E */
{
	unsigned seg = i->reg & 7; /* REX.R does not extend Sreg */
	if (seg > SEG_GS || seg == SEG_CS)
		soft_ud(cpu);
	seg_load(cpu, seg, (uint16_t)op_rm_read(cpu, i, 2));
	if (seg == SEG_SS)
		soft_set_interrupt_shadow(cpu);
}

void sys_mov_rm_sreg(struct soft_cpu *cpu, struct insn *i) /* 8C */
{
	unsigned seg = i->reg & 7;
	if (seg > SEG_GS)
		soft_ud(cpu);
	uint16_t sel = cpu->s.seg[seg].selector;
	if (i->mod == 3)
		reg_write(cpu, i->rm, i->opsize, sel, i->rex != 0); /* zero-extends to 32/64 */
	else
		op_rm_write(cpu, i, 2, sel);
}

void sys_load_far_pointer(struct soft_cpu *cpu, struct insn *i) /* C4 LES, C5 LDS, 0F B2/B4/B5 */
{
	unsigned seg;
	if (i->map == OPMAP_1B)
		seg = i->opcode == 0xc4 ? SEG_ES : SEG_DS;
	else
		seg = i->opcode == 0xb2 ? SEG_SS : i->opcode == 0xb4 ? SEG_FS : SEG_GS;
	uint64_t off;
	uint16_t sel;
	read_far_pointer(cpu, i, &off, &sel);
	seg_load(cpu, seg, sel);
	op_reg_write(cpu, i, i->opsize, off);
}

static void set_zf(struct soft_cpu *cpu, bool zf)
{
	uint64_t f = flags_get(cpu) & ~FLAG_ZF;
	flags_put(cpu, f | (zf ? FLAG_ZF : 0));
}

void sys_arpl(struct soft_cpu *cpu, struct insn *i) /* 63 outside 64-bit mode */
{
	if (!sys_protected(cpu))
		soft_ud(cpu);
	uint16_t dst = (uint16_t)op_rm_read(cpu, i, 2);
	uint16_t src = (uint16_t)op_reg_read(cpu, i, 2);
	bool adjust = (dst & 3u) < (src & 3u);
	if (adjust)
		op_rm_write(cpu, i, 2, (dst & ~3u) | (src & 3u));
	set_zf(cpu, adjust);
}

/* ---- 0F 00: SLDT, STR, LLDT, LTR, VERR, VERW ---- */

static void store_selector(struct soft_cpu *cpu, struct insn *i, uint16_t sel)
{
	if (i->mod == 3)
		reg_write(cpu, i->rm, i->opsize, sel, i->rex != 0);
	else
		op_rm_write(cpu, i, 2, sel);
}

/* The base of a 16-byte system descriptor in IA-32e mode (SDM vol. 3
 * §7.2.3): bits 63:32 from the upper half, whose type field must be 0. */
static void system_desc_high(struct soft_cpu *cpu, uint16_t sel, struct segment *s)
{
	if (!sys_lma(cpu))
		return;
	uint64_t hi = desc_read_high(cpu, sel);
	if ((hi >> 40) & 0x1f)
		soft_gp(cpu, sel_err(sel));
	s->base |= (hi & 0xffffffffULL) << 32;
	if (!sys_canonical(s->base))
		soft_gp(cpu, sel_err(sel));
}

static void lldt(struct soft_cpu *cpu, uint16_t sel)
{
	struct segment s;
	if (sel_is_null(sel)) {
		struct segment *ldtr = &cpu->s.seg[SEG_LDTR];
		memset(ldtr, 0, sizeof(*ldtr));
		ldtr->selector = sel;
		ldtr->type = DT_LDT;
		ldtr->unusable = 1;
		return;
	}
	if (sel & 4)
		soft_gp(cpu, sel_err(sel));
	desc_to_segment(desc_read(cpu, sel, EXC_GP), sel, &s);
	if (s.s || s.type != DT_LDT)
		soft_gp(cpu, sel_err(sel));
	if (!s.present)
		soft_raise(cpu, EXC_NP, sel_err(sel));
	system_desc_high(cpu, sel, &s);
	cpu->s.seg[SEG_LDTR] = s;
}

static void ltr(struct soft_cpu *cpu, uint16_t sel)
{
	struct segment s;
	if (sel_is_null(sel))
		soft_gp(cpu, 0);
	if (sel & 4)
		soft_gp(cpu, sel_err(sel));
	uint64_t d = desc_read(cpu, sel, EXC_GP);
	desc_to_segment(d, sel, &s);
	bool avail = s.type == DT_TSS_AVAIL || (s.type == DT_TSS16_AVAIL && !sys_lma(cpu));
	if (s.s || !avail)
		soft_gp(cpu, sel_err(sel));
	if (!s.present)
		soft_raise(cpu, EXC_NP, sel_err(sel));
	system_desc_high(cpu, sel, &s);
	desc_write_access_byte(cpu, sel, (uint8_t)((d >> 40) | 2)); /* busy */
	s.type |= 2;
	cpu->s.seg[SEG_TR] = s;
}

/* VERR/VERW (SDM vol. 2): ZF = the segment is readable/writable at CPL
 * and RPL; conforming code segments skip the privilege check for VERR. */
static bool verify_segment(struct soft_cpu *cpu, uint16_t sel, bool write)
{
	uint64_t d;
	struct segment s;
	if (sel_is_null(sel) || !desc_fetch(cpu, sel, &d))
		return false;
	desc_to_segment(d, sel, &s);
	if (!s.s)
		return false;
	bool code = s.type & SEGT_CODE;
	if (write ? code || !(s.type & SEGT_RW) : code && !(s.type & SEGT_RW))
		return false;
	if (code && (s.type & SEGT_CONFORM))
		return true;
	return s.dpl >= cpu->cpl && s.dpl >= (sel & 3u);
}

void sys_group6(struct soft_cpu *cpu, struct insn *i) /* 0F 00 /0-/5 */
{
	unsigned op = i->reg & 7;
	if (!sys_protected(cpu))
		soft_ud(cpu);
	switch (op) {
	case 0:
		store_selector(cpu, i, cpu->s.seg[SEG_LDTR].selector);
		return;
	case 1:
		store_selector(cpu, i, cpu->s.seg[SEG_TR].selector);
		return;
	case 2:
	case 3: {
		if (cpu->cpl != 0)
			soft_gp(cpu, 0);
		uint16_t sel = (uint16_t)op_rm_read(cpu, i, 2);
		if (op == 2)
			lldt(cpu, sel);
		else
			ltr(cpu, sel);
		return;
	}
	default:
		set_zf(cpu, verify_segment(cpu, (uint16_t)op_rm_read(cpu, i, 2), op == 5));
		return;
	}
}

/* System descriptor types LAR (lar = true) and LSL accept (SDM vol. 2 LAR,
 * LSL tables): in IA-32e mode only LDT, 64-bit TSS and (LAR) call gate. */
static bool lar_lsl_type_ok(const struct soft_cpu *cpu, unsigned type, bool lar)
{
	if (sys_lma(cpu))
		return type == DT_LDT || type == DT_TSS_AVAIL || type == DT_TSS_BUSY ||
		       (lar && type == DT_CALL);
	switch (type) {
	case DT_TSS16_AVAIL: case DT_LDT: case DT_TSS16_BUSY: case DT_TSS_AVAIL: case DT_TSS_BUSY:
		return true;
	case DT_CALL16: case DT_TASK: case DT_CALL:
		return lar;
	default:
		return false;
	}
}

void sys_lar_lsl(struct soft_cpu *cpu, struct insn *i) /* 0F 02, 0F 03 */
{
	bool lar = i->opcode == 0x02;
	if (!sys_protected(cpu))
		soft_ud(cpu);
	uint16_t sel = (uint16_t)op_rm_read(cpu, i, 2);
	uint64_t d;
	struct segment s;
	bool ok = !sel_is_null(sel) && desc_fetch(cpu, sel, &d);
	if (ok) {
		desc_to_segment(d, sel, &s);
		bool conforming_code = s.s && (s.type & (SEGT_CODE | SEGT_CONFORM)) ==
						      (SEGT_CODE | SEGT_CONFORM);
		ok = (s.s || lar_lsl_type_ok(cpu, s.type, lar)) &&
		     (conforming_code || (s.dpl >= cpu->cpl && s.dpl >= (sel & 3u)));
	}
	if (ok) {
		/* LAR: bits 23:8 of the high doubleword; the SDM calls bits
		 * 19:16 (limit) undefined, hardware returns them. */
		uint64_t v = lar ? (d >> 32) & 0x00ffff00ULL : s.limit;
		op_reg_write(cpu, i, i->opsize, v & size_mask(i->opsize));
	}
	set_zf(cpu, ok);
}

/* ---- descriptor-table registers ---- */

void sys_lgdt_lidt(struct soft_cpu *cpu, struct insn *i) /* 0F 01 /2, /3 */
{
	if ((cpu->s.cr0 & CR0_PE) && cpu->cpl != 0)
		soft_gp(cpu, 0);
	uint64_t ea = insn_ea(cpu, i);
	uint16_t limit = (uint16_t)seg_read(cpu, i->seg, ea, 2);
	uint64_t base_off = (ea + 2) & size_mask(i->addrsize);
	uint64_t base;
	if (cpu->long64) {
		base = seg_read(cpu, i->seg, base_off, 8);
		if (!sys_canonical(base))
			soft_gp(cpu, 0);
	} else {
		base = seg_read(cpu, i->seg, base_off, 4);
		if (i->opsize == 2)
			base &= 0xffffff;
	}
	struct dtable *t = (i->reg & 7) == 2 ? &cpu->s.gdt : &cpu->s.idt;
	t->base = base;
	t->limit = limit;
}

void sys_sgdt_sidt(struct soft_cpu *cpu, struct insn *i) /* 0F 01 /0, /1 */
{
	const struct dtable *t = (i->reg & 7) == 0 ? &cpu->s.gdt : &cpu->s.idt;
	uint8_t buf[10];
	/* All four bytes of the base are stored even with a 16-bit operand
	 * size (P6 and later). */
	uint64_t base = cpu->long64 ? t->base : t->base & 0xffffffffULL;
	memcpy(buf, &t->limit, 2);
	memcpy(buf + 2, &base, 8);
	seg_write_bytes(cpu, i->seg, insn_ea(cpu, i), buf, cpu->long64 ? 10 : 6);
}

/* ---- 64-bit segment bases ---- */

void sys_swapgs(struct soft_cpu *cpu, struct insn *i) /* 0F 01 F8 */
{
	(void)i;
	if (!cpu->long64)
		soft_ud(cpu);
	if (cpu->cpl != 0)
		soft_gp(cpu, 0);
	uint64_t gs = cpu->s.seg[SEG_GS].base;
	cpu->s.seg[SEG_GS].base = cpu->msr.kernel_gs_base;
	cpu->msr.kernel_gs_base = gs;
}

void sys_fsgsbase(struct soft_cpu *cpu, struct insn *i) /* F3 0F AE /0-/3 */
{
	if (!cpu->long64 || !(cpu->s.cr4 & CR4_FSGSBASE))
		soft_ud(cpu);
	unsigned op = i->reg & 7;
	unsigned size = i->opsize == 8 ? 8 : 4;
	struct segment *s = &cpu->s.seg[(op & 1) ? SEG_GS : SEG_FS];
	if (op < 2) {
		reg_write(cpu, i->rm, size, s->base, true);
		return;
	}
	uint64_t v = reg_read(cpu, i->rm, size, true);
	if (!sys_canonical(v))
		soft_gp(cpu, 0);
	s->base = v;
}
