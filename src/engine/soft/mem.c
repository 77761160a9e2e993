/* Memory operands: segmentation (SDM vol. 3 §3.4, §5.3 limit checks;
 * vol. 1 §3.3.7 canonical addresses in 64-bit mode), linear accesses
 * through the TLB with MMIO falling through to the VMM, effective
 * addresses (vol. 2 §2.1.5), and register/stack operand helpers. */
#include <string.h>

#include "engine/soft/soft.h"

/* ---- registers ---- */



/* ---- segmentation ---- */

static bool canonical(uint64_t la) { return soft_canonical(la); }

static _Noreturn void seg_fault(struct soft_cpu *cpu, unsigned seg)
{
	soft_raise(cpu, seg == SEG_SS ? EXC_SS : EXC_GP, 0);
}

/* Expand-down data segments have valid offsets (limit, top], where top is
 * 0xffff or 0xffffffff by the B flag (SDM vol. 3 §3.4.5.1). */
static void seg_check_limit(struct soft_cpu *cpu, unsigned seg, const struct segment *s,
			    uint64_t off, unsigned size)
{
	uint64_t last = off + (size ? size - 1 : 0);
	bool expand_down = s->s && !(s->type & 8) && (s->type & 4);
	if (expand_down) {
		uint64_t top = s->db ? 0xffffffffULL : 0xffffULL;
		if (off <= s->limit || last > top)
			seg_fault(cpu, seg);
	} else if (last > s->limit) {
		seg_fault(cpu, seg);
	}
}

static void seg_check_access(struct soft_cpu *cpu, unsigned seg, const struct segment *s,
			     enum access acc)
{
	if (s->unusable || !s->present)
		seg_fault(cpu, seg);
	if (!s->s)
		return;
	bool code = s->type & 8;
	if (acc == ACC_WRITE && (code || !(s->type & 2)))
		seg_fault(cpu, seg); /* code or read-only data */
	if (acc == ACC_READ && code && !(s->type & 2))
		seg_fault(cpu, seg); /* execute-only code */
}

uint64_t seg_linear(struct soft_cpu *cpu, unsigned seg, uint64_t off, unsigned size,
		    enum access acc)
{
	const struct segment *s = &cpu->s.seg[seg];
	if (cpu->long64) {
		uint64_t base = (seg == SEG_FS || seg == SEG_GS) ? s->base : 0;
		uint64_t la = base + off;
		if (!canonical(la) || (size > 1 && !canonical(la + size - 1)))
			seg_fault(cpu, seg);
		return la;
	}
	if (cpu->s.cr0 & CR0_PE && !(cpu->s.rflags & FLAG_VM)) {
		seg_check_access(cpu, seg, s, acc);
		seg_check_limit(cpu, seg, s, off, size);
	} else if (off + (size ? size - 1 : 0) > s->limit) {
		seg_fault(cpu, seg); /* real mode still checks the cached limit */
	}
	return (s->base + off) & 0xffffffffULL;
}

/* ---- linear accesses ---- */

static uint64_t lin_read_page(struct soft_cpu *cpu, uint64_t la, unsigned size, enum access acc,
			      bool sys)
{
	const struct tlb_entry *e = mmu_translate(cpu, la, acc, sys);
	uint64_t v = 0;
	if (e->host) {
		v = host_load(e->host + (la & 0xfff), size);
	} else {
		uint8_t data[8];
		soft_mmio(cpu, e->gpa | (la & 0xfff), size, false, data);
		memcpy(&v, data, size);
	}
	return v;
}

static void lin_write_page(struct soft_cpu *cpu, uint64_t la, unsigned size, uint64_t v, bool sys)
{
	const struct tlb_entry *e = mmu_translate(cpu, la, ACC_WRITE, sys);
	if (e->host) {
		host_store(e->host + (la & 0xfff), size, v);
		uint32_t *stamp = guest_mem_code_stamp(cpu->mem, e->gpa);
		if (stamp && (__atomic_load_n(stamp, __ATOMIC_RELAXED) & GUEST_CODE_BIT)) {
			guest_mem_code_invalidate(stamp);
			if (e->gpa == cpu->block_gpa_page)
				cpu->block_abort = true; /* the running block's own code changed */
		}
	} else {
		uint8_t data[8];
		memcpy(data, &v, size);
		soft_mmio(cpu, e->gpa | (la & 0xfff), size, true, data);
	}
}

static uint64_t lin_read_any(struct soft_cpu *cpu, uint64_t la, unsigned size, enum access acc,
			     bool sys)
{
	unsigned first = 0x1000 - (unsigned)(la & 0xfff);
	if (first >= size)
		return lin_read_page(cpu, la, size, acc, sys);
	/* Crossing a page: both halves are translated before anything is used. */
	uint64_t lo = lin_read_page(cpu, la, first, acc, sys);
	uint64_t hi = lin_read_page(cpu, la + first, size - first, acc, sys);
	return lo | (hi << (8 * first));
}

static void lin_write_any(struct soft_cpu *cpu, uint64_t la, unsigned size, uint64_t v, bool sys)
{
	unsigned first = 0x1000 - (unsigned)(la & 0xfff);
	if (first >= size) {
		lin_write_page(cpu, la, size, v, sys);
		return;
	}
	/* Translate both pages for writing first, so a fault on the second
	 * leaves the first unmodified. */
	mmu_translate(cpu, la, ACC_WRITE, sys);
	mmu_translate(cpu, la + first, ACC_WRITE, sys);
	lin_write_page(cpu, la, first, v, sys);
	lin_write_page(cpu, la + first, size - first, v >> (8 * first), sys);
}

uint64_t lin_read(struct soft_cpu *cpu, uint64_t la, unsigned size, enum access acc)
{
	return lin_read_any(cpu, la, size, acc, false);
}

void lin_write(struct soft_cpu *cpu, uint64_t la, unsigned size, uint64_t v)
{
	lin_write_any(cpu, la, size, v, false);
}

uint64_t lin_read_sys(struct soft_cpu *cpu, uint64_t la, unsigned size)
{
	return lin_read_any(cpu, la, size, ACC_READ, true);
}

void lin_write_sys(struct soft_cpu *cpu, uint64_t la, unsigned size, uint64_t v)
{
	lin_write_any(cpu, la, size, v, true);
}

void lin_read_bytes(struct soft_cpu *cpu, uint64_t la, void *buf, size_t len)
{
	uint8_t *out = buf;
	enum access acc = ACC_READ;
	(void)acc;
	while (len) {
		unsigned chunk = 0x1000 - (unsigned)(la & 0xfff);
		if (chunk > len)
			chunk = (unsigned)len;
		for (unsigned k = 0; k < chunk;) {
			unsigned n = chunk - k >= 8 ? 8 : chunk - k;
			uint64_t v = lin_read_page(cpu, la + k, n, ACC_READ, false);
			memcpy(out + k, &v, n);
			k += n;
		}
		la += chunk;
		out += chunk;
		len -= chunk;
	}
}

void lin_write_bytes(struct soft_cpu *cpu, uint64_t la, const void *buf, size_t len)
{
	const uint8_t *in = buf;
	/* All pages are checked before the first byte is written. */
	for (uint64_t p = la & ~0xfffULL; p < la + len; p += 0x1000)
		mmu_translate(cpu, p < la ? la : p, ACC_WRITE, false);
	while (len) {
		unsigned n = len >= 8 ? 8 : (unsigned)len;
		unsigned room = 0x1000 - (unsigned)(la & 0xfff);
		if (n > room)
			n = room;
		uint64_t v = 0;
		memcpy(&v, in, n);
		lin_write_page(cpu, la, n, v, false);
		la += n;
		in += n;
		len -= n;
	}
}

/* ---- segment-relative accesses ---- */

uint64_t seg_read(struct soft_cpu *cpu, unsigned seg, uint64_t off, unsigned size)
{
	const uint8_t *p = mem_fast(cpu, seg, off, size, ACC_READ);
	if (p)
		return host_load(p, size);
	return lin_read(cpu, seg_linear(cpu, seg, off, size, ACC_READ), size, ACC_READ);
}

void seg_write(struct soft_cpu *cpu, unsigned seg, uint64_t off, unsigned size, uint64_t v)
{
	uint8_t *p = mem_fast(cpu, seg, off, size, ACC_WRITE);
	if (p) {
		host_store(p, size, v);
		return;
	}
	lin_write(cpu, seg_linear(cpu, seg, off, size, ACC_WRITE), size, v);
}

void seg_read_bytes(struct soft_cpu *cpu, unsigned seg, uint64_t off, void *buf, size_t len)
{
	lin_read_bytes(cpu, seg_linear(cpu, seg, off, (unsigned)len, ACC_READ), buf, len);
}

void seg_write_bytes(struct soft_cpu *cpu, unsigned seg, uint64_t off, const void *buf, size_t len)
{
	lin_write_bytes(cpu, seg_linear(cpu, seg, off, (unsigned)len, ACC_WRITE), buf, len);
}

bool phys_read(struct soft_cpu *cpu, uint64_t gpa, void *buf, unsigned len)
{
	return guest_mem_read(cpu->mem, gpa, buf, len) == 0;
}

/* ---- ModRM operands ---- */

/* The read half of a read-modify-write: both pages are translated for
 * writing first, so a fault is reported as the write it will be. */
static uint64_t seg_read_for_write(struct soft_cpu *cpu, unsigned seg, uint64_t off, unsigned size)
{
	uint64_t la = seg_linear(cpu, seg, off, size, ACC_WRITE);
	mmu_translate(cpu, la, ACC_WRITE, false);
	if ((la & 0xfff) + size > 0x1000)
		mmu_translate(cpu, la + size - 1, ACC_WRITE, false);
	return lin_read(cpu, la, size, ACC_READ);
}

uint64_t op_rm_read_mem(struct soft_cpu *cpu, const struct insn *i, unsigned size)
{
	uint64_t ea = insn_ea(cpu, i);
	/* A read-modify-write looks in the write TLB: a hit there also permits
	 * the read, and reads the same memory. */
	bool rmw = i->def->flags & (OPF_LOCKOK | OPF_RMW);
	const uint8_t *p = mem_fast(cpu, i->seg, ea, size, rmw ? ACC_WRITE : ACC_READ);
	if (p)
		return host_load(p, size);
	if (rmw)
		return seg_read_for_write(cpu, i->seg, ea, size);
	return lin_read(cpu, seg_linear(cpu, i->seg, ea, size, ACC_READ), size, ACC_READ);
}

void op_rm_write_mem(struct soft_cpu *cpu, const struct insn *i, unsigned size, uint64_t v)
{
	uint64_t ea = insn_ea(cpu, i);
	uint8_t *p = mem_fast(cpu, i->seg, ea, size, ACC_WRITE);
	if (p) {
		host_store(p, size, v);
		return;
	}
	lin_write(cpu, seg_linear(cpu, i->seg, ea, size, ACC_WRITE), size, v);
}



/* ---- stack ---- */

unsigned stack_addr_size(const struct soft_cpu *cpu)
{
	if (cpu->long64)
		return 8;
	return cpu->s.seg[SEG_SS].db ? 4 : 2;
}

static void set_rsp(struct soft_cpu *cpu, uint64_t rsp)
{
	unsigned ss = stack_addr_size(cpu);
	reg_write(cpu, GPR_RSP, ss, rsp, true);
}

void stack_push(struct soft_cpu *cpu, unsigned size, uint64_t v)
{
	unsigned ss = stack_addr_size(cpu);
	uint64_t rsp = (cpu->s.gpr[GPR_RSP] - size) & size_mask(ss);
	seg_write(cpu, SEG_SS, rsp, size, v);
	set_rsp(cpu, rsp);
}

uint64_t stack_pop(struct soft_cpu *cpu, unsigned size)
{
	unsigned ss = stack_addr_size(cpu);
	uint64_t rsp = cpu->s.gpr[GPR_RSP] & size_mask(ss);
	uint64_t v = seg_read(cpu, SEG_SS, rsp, size);
	set_rsp(cpu, rsp + size);
	return v;
}

void soft_branch(struct soft_cpu *cpu, const struct insn *i, uint64_t target)
{
	if (!cpu->long64)
		target &= size_mask(i->opsize);
	else if (!canonical(target))
		soft_gp(cpu, 0);
	else if (i->opsize == 2)
		target &= 0xffff;
	set_next_rip(cpu, target);
}
