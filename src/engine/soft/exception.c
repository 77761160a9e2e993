/* Exception and interrupt delivery (SDM vol. 3 §6.10-6.14: the IDT and its
 * gates, stack switching, 64-bit mode IST; §20.1.4 for real mode's IVT).
 * Task gates and virtual-8086 delivery are not implemented: such a gate is
 * reported to the guest as #GP, and the omission is in the closing notes. */
#include <string.h>

#include "engine/soft/soft.h"

#define GATE_TASK 5
#define GATE_INT16 6
#define GATE_TRAP16 7
#define GATE_INT32 14
#define GATE_TRAP32 15

static void deliver_real(struct soft_cpu *cpu, uint8_t vector, uint64_t return_rip)
{
	uint64_t off = (uint64_t)vector * 4;
	if (off + 3 > cpu->s.idt.limit)
		soft_gp(cpu, 0);
	uint32_t ivt = (uint32_t)lin_read_sys(cpu, cpu->s.idt.base + off, 4);
	uint64_t flags = flags_get(cpu);
	stack_push(cpu, 2, flags);
	stack_push(cpu, 2, cpu->s.seg[SEG_CS].selector);
	stack_push(cpu, 2, return_rip);
	flags_put(cpu, flags & ~(FLAG_IF | FLAG_TF | FLAG_AC | FLAG_RF));
	seg_load(cpu, SEG_CS, (uint16_t)(ivt >> 16));
	cpu->s.rip = ivt & 0xffff;
}

struct gate {
	uint16_t selector;
	uint64_t offset;
	unsigned type, dpl, ist;
	bool present;
};

static void read_gate(struct soft_cpu *cpu, uint8_t vector, bool long_mode, struct gate *g,
		      uint32_t idt_err)
{
	unsigned size = long_mode ? 16 : 8;
	uint64_t off = (uint64_t)vector * size;
	if (off + size - 1 > cpu->s.idt.limit)
		soft_gp(cpu, idt_err);
	uint64_t lo = lin_read_sys(cpu, cpu->s.idt.base + off, 8);
	uint64_t hi = long_mode ? lin_read_sys(cpu, cpu->s.idt.base + off + 8, 8) : 0;
	g->selector = (uint16_t)(lo >> 16);
	g->offset = (lo & 0xffff) | ((lo >> 32) & 0xffff0000ULL) | ((hi & 0xffffffffULL) << 32);
	g->type = (lo >> 40) & 0xf;
	g->dpl = (lo >> 45) & 3;
	g->present = (lo >> 47) & 1;
	g->ist = long_mode ? (lo >> 32) & 7 : 0;
}

/* The target code segment of a gate: must be a present code segment with
 * DPL <= CPL (SDM vol. 3 §6.12.1.1). */
static void load_gate_cs(struct soft_cpu *cpu, const struct gate *g, struct segment *cs)
{
	if ((g->selector & ~3u) == 0)
		soft_gp(cpu, 0);
	uint64_t d = desc_read(cpu, g->selector, EXC_GP);
	desc_to_segment(d, g->selector, cs);
	if (!cs->s || !(cs->type & 8) || cs->dpl > cpu->cpl)
		soft_gp(cpu, g->selector & ~3u);
	if (!cs->present)
		soft_raise(cpu, EXC_NP, g->selector & ~3u);
}

/* Reads the inner stack pointer for `dpl` (or IST n) from the TSS. */
static uint64_t tss_stack64(struct soft_cpu *cpu, unsigned dpl, unsigned ist)
{
	const struct segment *tr = &cpu->s.seg[SEG_TR];
	uint64_t off = ist ? 0x24 + (uint64_t)(ist - 1) * 8 : 4 + (uint64_t)dpl * 8;
	if (off + 7 > tr->limit)
		soft_raise(cpu, EXC_TS, tr->selector & ~3u);
	return lin_read_sys(cpu, tr->base + off, 8);
}

static void deliver_long(struct soft_cpu *cpu, uint8_t vector, bool has_error, uint32_t error_code,
			 bool software, uint64_t return_rip)
{
	struct gate g;
	struct segment cs;
	uint32_t idt_err = (uint32_t)vector * 8 + 2 + (software ? 0 : 1);

	read_gate(cpu, vector, true, &g, idt_err);
	if (g.type != GATE_INT32 && g.type != GATE_TRAP32)
		soft_gp(cpu, idt_err);
	if (software && g.dpl < cpu->cpl)
		soft_gp(cpu, idt_err);
	if (!g.present)
		soft_raise(cpu, EXC_NP, idt_err);
	load_gate_cs(cpu, &g, &cs);
	if (!cs.l || cs.db)
		soft_gp(cpu, g.selector & ~3u);

	unsigned new_cpl = (cs.type & 4) ? cpu->cpl : cs.dpl; /* conforming keeps CPL */
	uint64_t old_ss = cpu->s.seg[SEG_SS].selector, old_rsp = cpu->s.gpr[GPR_RSP];
	uint64_t rsp = old_rsp;
	if (new_cpl < cpu->cpl || g.ist)
		rsp = tss_stack64(cpu, new_cpl, g.ist);
	rsp &= ~0xfULL;

	uint64_t frame[6];
	int n = 0;
	uint64_t flags = flags_get(cpu);
	frame[n++] = old_ss;
	frame[n++] = old_rsp;
	frame[n++] = flags;
	frame[n++] = cpu->s.seg[SEG_CS].selector;
	frame[n++] = return_rip;
	if (has_error)
		frame[n++] = error_code;
	/* Write the whole frame before changing any register: a fault here is
	 * a fault of the delivery (leading to #DF), with state intact. */
	for (int k = 0; k < n; k++)
		lin_write_sys(cpu, rsp - 8 * (uint64_t)(k + 1), 8, frame[k]);
	rsp -= 8 * (uint64_t)n;

	if (new_cpl < cpu->cpl) {
		struct segment *ss = &cpu->s.seg[SEG_SS];
		memset(ss, 0, sizeof(*ss));
		ss->selector = (uint16_t)new_cpl;
		ss->unusable = 1;
		ss->dpl = (uint8_t)new_cpl;
	}
	cs.selector = (uint16_t)((g.selector & ~3u) | new_cpl);
	cs.dpl = (uint8_t)((cs.type & 4) ? cs.dpl : new_cpl);
	cpu->s.seg[SEG_CS] = cs;
	cpu->s.seg[SEG_SS].dpl = (uint8_t)new_cpl;
	cpu->s.gpr[GPR_RSP] = rsp;
	cpu->s.rip = g.offset;
	flags &= ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM);
	if (g.type == GATE_INT32)
		flags &= ~FLAG_IF;
	flags_put(cpu, flags);
	soft_mode_changed(cpu);
}

static void deliver_protected(struct soft_cpu *cpu, uint8_t vector, bool has_error,
			      uint32_t error_code, bool software, uint64_t return_rip)
{
	struct gate g;
	struct segment cs;
	uint32_t idt_err = (uint32_t)vector * 8 + 2 + (software ? 0 : 1);

	read_gate(cpu, vector, false, &g, idt_err);
	if (g.type != GATE_INT32 && g.type != GATE_TRAP32 && g.type != GATE_INT16 &&
	    g.type != GATE_TRAP16)
		soft_gp(cpu, idt_err); /* task gates are not supported */
	if (software && g.dpl < cpu->cpl)
		soft_gp(cpu, idt_err);
	if (!g.present)
		soft_raise(cpu, EXC_NP, idt_err);
	load_gate_cs(cpu, &g, &cs);
	unsigned size = (g.type == GATE_INT32 || g.type == GATE_TRAP32) ? 4 : 2;
	unsigned new_cpl = (cs.type & 4) ? cpu->cpl : cs.dpl;
	uint64_t flags = flags_get(cpu);

	if (new_cpl < cpu->cpl) {
		/* Inner stack from the 32-bit TSS: ESPn at 4 + 8n, SSn at 8 + 8n. */
		const struct segment *tr = &cpu->s.seg[SEG_TR];
		uint64_t off = 4 + (uint64_t)new_cpl * 8;
		if (off + 5 > tr->limit)
			soft_raise(cpu, EXC_TS, tr->selector & ~3u);
		uint32_t esp = (uint32_t)lin_read_sys(cpu, tr->base + off, 4);
		uint16_t ss_sel = (uint16_t)lin_read_sys(cpu, tr->base + off + 4, 2);
		struct segment ss;
		desc_to_segment(desc_read(cpu, ss_sel, EXC_TS), ss_sel, &ss);
		if (!ss.s || (ss.type & 8) || !(ss.type & 2) || ss.dpl != new_cpl)
			soft_raise(cpu, EXC_TS, ss_sel & ~3u);
		uint64_t old_ss = cpu->s.seg[SEG_SS].selector, old_esp = cpu->s.gpr[GPR_RSP];
		struct segment saved_ss = cpu->s.seg[SEG_SS];
		unsigned saved_cpl = cpu->cpl;
		cpu->s.seg[SEG_SS] = ss;
		cpu->cpl = new_cpl;
		cpu->s.gpr[GPR_RSP] = esp;
		/* If pushing faults, the delivery fails as a whole: restore the old stack. */
		uint64_t words[6] = {old_ss, old_esp, flags, cpu->s.seg[SEG_CS].selector, return_rip,
				     error_code};
		unsigned nw = has_error ? 6 : 5;
		uint64_t sp = esp & size_mask(ss.db ? 4 : 2);
		for (unsigned k = 0; k < nw; k++) {
			sp -= size;
			uint64_t la = (ss.base + (sp & size_mask(ss.db ? 4 : 2))) & 0xffffffffULL;
			(void)saved_ss;
			(void)saved_cpl;
			lin_write_sys(cpu, la, size, words[k]);
		}
		cpu->s.gpr[GPR_RSP] = (cpu->s.gpr[GPR_RSP] & ~size_mask(ss.db ? 4 : 2)) | (sp & size_mask(ss.db ? 4 : 2));
	} else {
		stack_push(cpu, size, flags);
		stack_push(cpu, size, cpu->s.seg[SEG_CS].selector);
		stack_push(cpu, size, return_rip);
		if (has_error)
			stack_push(cpu, size, error_code);
	}
	cs.selector = (uint16_t)((g.selector & ~3u) | new_cpl);
	cpu->s.seg[SEG_CS] = cs;
	cpu->s.seg[SEG_SS].dpl = (uint8_t)new_cpl;
	cpu->s.rip = size == 2 ? g.offset & 0xffff : g.offset & 0xffffffffULL;
	flags &= ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM);
	if (g.type == GATE_INT32 || g.type == GATE_INT16)
		flags &= ~FLAG_IF;
	flags_put(cpu, flags);
	soft_mode_changed(cpu);
}

void soft_deliver(struct soft_cpu *cpu, uint8_t vector, bool has_error, uint32_t error_code,
		  bool software_int, uint64_t return_rip)
{
	cpu->halted = false;
	if (!(cpu->s.cr0 & CR0_PE))
		deliver_real(cpu, vector, return_rip);
	else if (cpu->s.efer & EFER_LMA)
		deliver_long(cpu, vector, has_error, error_code, software_int, return_rip);
	else
		deliver_protected(cpu, vector, has_error, error_code, software_int, return_rip);
}
