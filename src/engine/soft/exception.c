/* Exception and interrupt delivery and IRET (SDM vol. 3 §6.10-6.14: the
 * IDT, interrupt and trap gates, stack switching through the TSS, error
 * codes, IA-32e interrupt handling with IST and 16-byte stack alignment;
 * §20.1.4 real-mode delivery through the IVT; vol. 2 IRET).
 *
 * Each delivery path reads and checks everything first (gate, code
 * segment, TSS stack, new stack segment), then writes the whole frame,
 * and only then changes registers, so a fault during delivery leaves the
 * state of the interrupted instruction intact for the #DF (or the serial
 * delivery of a benign exception) that follows.
 *
 * Error codes of faults during delivery carry EXT (bit 0) unless the event
 * is a software interrupt (INT n, INT3, INTO); IDT faults use vector * 8 +
 * 2 + EXT (SDM vol. 3 §6.13).
 *
 * Not implemented, each reported honestly to the guest: task gates and
 * task-switching IRET (NT = 1) raise #GP; delivery in and IRET to
 * virtual-8086 mode raise #GP. */
#include <string.h>

#include "engine/soft/system.h"

struct event {
	uint8_t vector;
	bool has_error;
	uint32_t error_code;
	bool software;
	uint64_t return_rip;
	uint32_t ext;     /* EXT bit for error codes raised while delivering */
	uint32_t idt_err; /* error code naming this vector's IDT entry */
};

struct gate {
	uint16_t selector;
	uint64_t offset;
	unsigned type, dpl, ist;
	bool present;
};

/* ---- real mode ---- */

static void deliver_real(struct soft_cpu *cpu, const struct event *ev)
{
	uint64_t off = (uint64_t)ev->vector * 4;
	if (off + 3 > cpu->s.idt.limit)
		soft_gp(cpu, 0);
	uint32_t ivt = (uint32_t)lin_read_sys(cpu, (cpu->s.idt.base + off) & 0xffffffffULL, 4);
	uint64_t flags = flags_get(cpu);
	uint64_t frame[3] = {flags, cpu->s.seg[SEG_CS].selector, ev->return_rip};

	sys_push_frame(cpu, 2, frame, 3, 0);
	flags_put(cpu, flags & ~(FLAG_IF | FLAG_TF | FLAG_AC));
	seg_load(cpu, SEG_CS, (uint16_t)(ivt >> 16));
	cpu->s.rip = ivt & 0xffff;
}

/* ---- gates ---- */

static void read_gate(struct soft_cpu *cpu, const struct event *ev, bool long_mode, struct gate *g)
{
	unsigned size = long_mode ? 16 : 8;
	uint64_t off = (uint64_t)ev->vector * size;
	if (off + size - 1 > cpu->s.idt.limit)
		soft_gp(cpu, ev->idt_err);
	uint64_t la = cpu->s.idt.base + off;
	if (!long_mode)
		la &= 0xffffffffULL;
	uint64_t lo = lin_read_sys(cpu, la, 8);
	uint64_t hi = long_mode ? lin_read_sys(cpu, la + 8, 8) : 0;
	g->selector = (uint16_t)(lo >> 16);
	g->offset = (lo & 0xffff) | ((lo >> 32) & 0xffff0000ULL) | ((hi & 0xffffffffULL) << 32);
	g->type = (lo >> 40) & 0xf;
	g->dpl = (lo >> 45) & 3;
	g->present = (lo >> 47) & 1;
	g->ist = long_mode ? (lo >> 32) & 7 : 0;
}

/* Gate type, privilege and presence (SDM vol. 3 §6.12.1.1): INT n may
 * only use gates with DPL >= CPL. */
static void check_gate(struct soft_cpu *cpu, const struct event *ev, const struct gate *g,
		       bool long_mode)
{
	bool ok = g->type == DT_INT || g->type == DT_TRAP;
	if (!long_mode)
		ok = ok || g->type == DT_INT16 || g->type == DT_TRAP16;
	if (!ok) /* also task gates: task switching is not implemented */
		soft_gp(cpu, ev->idt_err);
	if (ev->software && g->dpl < cpu->cpl)
		soft_gp(cpu, ev->idt_err);
	if (!g->present)
		soft_raise(cpu, EXC_NP, ev->idt_err);
}

/* The handler's code segment: a present code segment with DPL <= CPL. */
static uint64_t load_gate_cs(struct soft_cpu *cpu, const struct event *ev, const struct gate *g,
			     struct segment *cs)
{
	if (sel_is_null(g->selector))
		soft_gp(cpu, ev->ext);
	uint64_t d = desc_read_ext(cpu, g->selector, EXC_GP, ev->ext);
	desc_to_segment(d, g->selector, cs);
	if (!cs->s || !(cs->type & SEGT_CODE) || cs->dpl > cpu->cpl)
		soft_gp(cpu, sel_err(g->selector) | ev->ext);
	if (!cs->present)
		soft_raise(cpu, EXC_NP, sel_err(g->selector) | ev->ext);
	return d;
}

static unsigned gate_target_cpl(const struct soft_cpu *cpu, const struct segment *cs)
{
	return (cs->type & SEGT_CONFORM) ? cpu->cpl : cs->dpl;
}

static void finish_delivery(struct soft_cpu *cpu, struct segment *cs, uint16_t sel, unsigned cpl,
			    uint64_t rip, uint64_t flags, bool interrupt_gate)
{
	flags &= ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM);
	if (interrupt_gate)
		flags &= ~FLAG_IF;
	flags_put(cpu, flags);
	sys_set_cs(cpu, cs, sel, cpl);
	cpu->s.rip = rip;
}

/* ---- IA-32e mode (§6.14) ---- */

/* RSPn or ISTn from the 64-bit TSS (SDM vol. 3 §7.7). */
static uint64_t tss_stack64(struct soft_cpu *cpu, const struct event *ev, unsigned cpl, unsigned ist)
{
	const struct segment *tr = &cpu->s.seg[SEG_TR];
	uint64_t off = ist ? 0x24 + (uint64_t)(ist - 1) * 8 : 4 + (uint64_t)cpl * 8;
	if (tr->unusable || off + 7 > tr->limit)
		soft_raise(cpu, EXC_TS, sel_err(tr->selector) | ev->ext);
	uint64_t rsp = lin_read_sys(cpu, tr->base + off, 8);
	if (!sys_canonical(rsp))
		soft_raise(cpu, EXC_SS, ev->ext);
	return rsp;
}

static void deliver_long(struct soft_cpu *cpu, const struct event *ev)
{
	struct gate g;
	struct segment cs;

	read_gate(cpu, ev, true, &g);
	check_gate(cpu, ev, &g, true);
	uint64_t cs_d = load_gate_cs(cpu, ev, &g, &cs);
	if (!cs.l || cs.db)
		soft_gp(cpu, sel_err(g.selector) | ev->ext);
	if (!sys_canonical(g.offset))
		soft_gp(cpu, ev->ext);

	unsigned new_cpl = gate_target_cpl(cpu, &cs);
	bool inner = new_cpl < cpu->cpl;
	uint64_t rsp = cpu->s.gpr[GPR_RSP];
	if (inner || g.ist)
		rsp = tss_stack64(cpu, ev, new_cpl, g.ist);
	rsp &= ~0xfULL; /* the frame is 16-byte aligned */

	uint64_t flags = flags_get(cpu);
	uint64_t frame[6] = {cpu->s.seg[SEG_SS].selector, cpu->s.gpr[GPR_RSP], flags,
			     cpu->s.seg[SEG_CS].selector, ev->return_rip, ev->error_code};
	unsigned n = ev->has_error ? 6 : 5;
	const struct segment *ss = &cpu->s.seg[SEG_SS];
	for (unsigned k = 0; k < n; k++) {
		uint64_t la = sys_stack_linear(cpu, ss, true, rsp - 8 * (k + 1), 8, ev->ext);
		if (new_cpl < 3)
			lin_write_sys(cpu, la, 8, frame[k]);
		else
			lin_write(cpu, la, 8, frame[k]); /* handler at CPL 3: user accesses */
	}
	desc_mark_accessed(cpu, g.selector, cs_d);

	if (inner) { /* SS becomes a null selector with RPL = new CPL */
		struct segment *nss = &cpu->s.seg[SEG_SS];
		memset(nss, 0, sizeof(*nss));
		nss->selector = (uint16_t)new_cpl;
		nss->unusable = 1;
		nss->dpl = (uint8_t)new_cpl;
	}
	cpu->s.gpr[GPR_RSP] = rsp - 8 * (uint64_t)n;
	finish_delivery(cpu, &cs, g.selector, new_cpl, g.offset, flags, g.type == DT_INT);
}

/* ---- protected mode ---- */

/* SSn:ESPn from the current TSS, 32-bit (type 11) or 16-bit (type 3). */
static void tss_stack_legacy(struct soft_cpu *cpu, const struct event *ev, unsigned cpl,
			     uint16_t *ss_sel, uint64_t *sp)
{
	const struct segment *tr = &cpu->s.seg[SEG_TR];
	bool tss32 = tr->type == DT_TSS_BUSY;
	uint64_t off = tss32 ? 4 + (uint64_t)cpl * 8 : 2 + (uint64_t)cpl * 4;
	unsigned spsize = tss32 ? 4 : 2;
	if (tr->unusable || off + spsize + 1 > tr->limit)
		soft_raise(cpu, EXC_TS, sel_err(tr->selector) | ev->ext);
	uint64_t la = (tr->base + off) & 0xffffffffULL;
	*sp = lin_read_sys(cpu, la, spsize);
	*ss_sel = (uint16_t)lin_read_sys(cpu, la + spsize, 2);
}

/* The inner stack segment (SDM vol. 3 §6.12.1 and the INT n pseudocode). */
static uint64_t load_inner_ss(struct soft_cpu *cpu, const struct event *ev, uint16_t sel,
			      unsigned cpl, struct segment *ss)
{
	if (sel_is_null(sel))
		soft_raise(cpu, EXC_TS, ev->ext);
	if ((sel & 3u) != cpl)
		soft_raise(cpu, EXC_TS, sel_err(sel) | ev->ext);
	uint64_t d = desc_read_ext(cpu, sel, EXC_TS, ev->ext);
	desc_to_segment(d, sel, ss);
	if (!ss->s || (ss->type & SEGT_CODE) || !(ss->type & SEGT_RW) || ss->dpl != cpl)
		soft_raise(cpu, EXC_TS, sel_err(sel) | ev->ext);
	if (!ss->present)
		soft_raise(cpu, EXC_SS, sel_err(sel) | ev->ext);
	return d;
}

/* Writes a legacy frame on stack segment ss below sp; returns the new sp. */
static uint64_t write_legacy_frame(struct soft_cpu *cpu, const struct segment *ss, uint64_t sp,
				   unsigned size, const uint64_t *v, unsigned n, bool supervisor,
				   uint32_t err)
{
	uint64_t mask = ss->db ? 0xffffffffULL : 0xffffULL;
	for (unsigned k = 0; k < n; k++) {
		sp = (sp - size) & mask;
		uint64_t la = sys_stack_linear(cpu, ss, false, sp, size, err);
		if (supervisor)
			lin_write_sys(cpu, la, size, v[k]);
		else
			lin_write(cpu, la, size, v[k]);
	}
	return sp;
}

static void deliver_protected(struct soft_cpu *cpu, const struct event *ev)
{
	struct gate g;
	struct segment cs;

	read_gate(cpu, ev, false, &g);
	check_gate(cpu, ev, &g, false);
	uint64_t cs_d = load_gate_cs(cpu, ev, &g, &cs);
	if (cpu->s.rflags & FLAG_VM)
		soft_gp(cpu, sel_err(g.selector) | ev->ext); /* virtual-8086 delivery: not implemented */
	bool gate32 = g.type == DT_INT || g.type == DT_TRAP;
	unsigned size = gate32 ? 4 : 2;
	uint64_t rip = g.offset & size_mask(size);
	if (rip > cs.limit)
		soft_gp(cpu, ev->ext);

	unsigned new_cpl = gate_target_cpl(cpu, &cs);
	uint64_t flags = flags_get(cpu);
	uint64_t frame[6];
	unsigned n = 0;
	struct segment ss = cpu->s.seg[SEG_SS];
	uint64_t ss_d = 0, sp;
	uint32_t ss_err = ev->ext;
	bool inner = new_cpl < cpu->cpl;

	if (inner) {
		uint16_t ss_sel;
		tss_stack_legacy(cpu, ev, new_cpl, &ss_sel, &sp);
		ss_d = load_inner_ss(cpu, ev, ss_sel, new_cpl, &ss);
		ss_err = sel_err(ss_sel) | ev->ext;
		frame[n++] = cpu->s.seg[SEG_SS].selector;
		frame[n++] = cpu->s.gpr[GPR_RSP] & 0xffffffffULL;
	} else {
		if (ss.unusable || !ss.present)
			soft_raise(cpu, EXC_SS, ev->ext);
		sp = cpu->s.gpr[GPR_RSP];
	}
	frame[n++] = flags;
	frame[n++] = cpu->s.seg[SEG_CS].selector;
	frame[n++] = ev->return_rip;
	if (ev->has_error)
		frame[n++] = ev->error_code;
	sp = write_legacy_frame(cpu, &ss, sp, size, frame, n, new_cpl < 3, ss_err);
	desc_mark_accessed(cpu, g.selector, cs_d);
	if (inner) {
		if (ss_d)
			desc_mark_accessed(cpu, ss.selector, ss_d);
		ss.type |= SEGT_ACCESSED;
		cpu->s.seg[SEG_SS] = ss;
	}
	sys_set_rsp(cpu, false, &cpu->s.seg[SEG_SS], sp);
	finish_delivery(cpu, &cs, g.selector, new_cpl, rip, flags,
			g.type == DT_INT || g.type == DT_INT16);
}

void soft_deliver(struct soft_cpu *cpu, uint8_t vector, bool has_error, uint32_t error_code,
		  bool software_int, uint64_t return_rip)
{
	struct event ev = {
	    .vector = vector,
	    .has_error = has_error,
	    .error_code = error_code,
	    .software = software_int,
	    .return_rip = return_rip,
	    .ext = software_int ? 0 : 1,
	};
	ev.idt_err = (uint32_t)vector * 8 + 2 + ev.ext;

	cpu->halted = false; /* an event wakes a halted CPU even if its delivery faults */
	if (!(cpu->s.cr0 & CR0_PE))
		deliver_real(cpu, &ev);
	else if (cpu->s.efer & EFER_LMA)
		deliver_long(cpu, &ev);
	else
		deliver_protected(cpu, &ev);
	/* Delivery succeeded: the handler runs next, also when a software
	 * interrupt instruction called this from its handler. */
	cpu->next_rip = cpu->s.rip;
}

/* ---- IRET ---- */

/* EFLAGS as IRET restores them (SDM vol. 2 IRET): IF only if CPL <= IOPL,
 * IOPL, VIF and VIP only at CPL 0, RF/AC/ID only for 32/64-bit operands. */
static uint64_t iret_flags(const struct soft_cpu *cpu, uint64_t old, uint64_t popped, unsigned size)
{
	uint64_t writable = FLAGS_ARITH | FLAG_TF | FLAG_DF | FLAG_NT | FLAG_RF | FLAG_AC | FLAG_ID;
	if (cpu->cpl <= sys_iopl(cpu))
		writable |= FLAG_IF;
	if (cpu->cpl == 0)
		writable |= FLAG_IOPL | FLAG_VIF | FLAG_VIP;
	if (size == 2)
		writable &= 0xffff;
	return (old & ~writable) | (popped & writable) | RFLAGS_FIXED;
}

static void iret_real(struct soft_cpu *cpu, unsigned size)
{
	uint64_t ip = sys_stack_peek(cpu, size, 0);
	uint16_t sel = (uint16_t)sys_stack_peek(cpu, size, size);
	uint64_t popped = sys_stack_peek(cpu, size, 2 * size);
	uint64_t old = flags_get(cpu);
	uint64_t flags;

	ip &= size_mask(size);
	if (ip > cpu->s.seg[SEG_CS].limit)
		soft_gp(cpu, 0);
	if (size == 2)
		flags = (old & ~0xffffULL) | (popped & 0xffff);
	else /* VM, VIF and VIP keep their values */
		flags = (popped & 0x257fd5ULL) | (old & 0x1a0000ULL);
	sys_stack_release(cpu, 3 * size);
	seg_load(cpu, SEG_CS, sel);
	flags_put(cpu, flags);
	soft_mode_changed(cpu);
	set_next_rip(cpu, ip);
}

void sys_iret(struct soft_cpu *cpu, struct insn *i) /* CF: IRET, IRETD, IRETQ */
{
	unsigned size = i->opsize;
	if (!(cpu->s.cr0 & CR0_PE)) {
		iret_real(cpu, size);
		return;
	}
	if (cpu->s.rflags & FLAG_VM)
		soft_gp(cpu, 0); /* virtual-8086 IRET: not implemented */
	if (cpu->s.rflags & FLAG_NT)
		soft_gp(cpu, 0); /* task return: not implemented (and #GP in IA-32e mode) */

	uint64_t ip = sys_stack_peek(cpu, size, 0);
	uint16_t sel = (uint16_t)sys_stack_peek(cpu, size, size);
	uint64_t popped = sys_stack_peek(cpu, size, 2 * size);
	if (!sys_lma(cpu) && (popped & FLAG_VM) && size != 2 && cpu->cpl == 0)
		soft_gp(cpu, 0); /* return to virtual-8086 mode: not implemented */

	struct segment cs, ss;
	uint64_t cs_d, ss_d = 0;
	sys_return_cs(cpu, sel, &cs, &cs_d);
	unsigned rpl = sel & 3;
	bool outer = rpl > cpu->cpl;
	bool pop_stack = cpu->long64 || outer; /* IRET in 64-bit mode always pops SS:RSP */
	uint64_t sp = 0;
	uint16_t ss_sel = 0;
	if (pop_stack) {
		sp = sys_stack_peek(cpu, size, 3 * size);
		ss_sel = (uint16_t)sys_stack_peek(cpu, size, 4 * size);
		sys_return_ss(cpu, ss_sel, rpl, &cs, &ss, &ss_d);
	}
	ip = sys_target_ip(cpu, &cs, ip, size);
	uint64_t flags = iret_flags(cpu, flags_get(cpu), popped, size);

	desc_mark_accessed(cpu, sel, cs_d);
	if (ss_d)
		desc_mark_accessed(cpu, ss_sel, ss_d);
	if (pop_stack) {
		if (!ss.unusable)
			ss.type |= SEGT_ACCESSED;
		cpu->s.seg[SEG_SS] = ss;
		sys_set_rsp(cpu, sys_is64(cpu, &cs), &ss, sp);
	} else {
		sys_stack_release(cpu, 3 * size);
	}
	flags_put(cpu, flags);
	sys_set_cs(cpu, &cs, sel, rpl);
	if (outer)
		sys_null_inner_segments(cpu, rpl);
	set_next_rip(cpu, ip);
}
