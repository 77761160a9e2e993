/* Near control transfers, the stack and software interrupts (SDM vol. 2:
 * JMP, Jcc, JCXZ/JECXZ/JRCXZ, LOOP/LOOPcc, CALL, RET (near forms), PUSH,
 * POP, PUSHF/PUSHFD/PUSHFQ, POPF/POPFD/POPFQ, PUSHA/PUSHAD, POPA/POPAD,
 * ENTER, LEAVE, INT n/INTO/INT3). Far transfers and IRET live in
 * ops_system.c.
 *
 * Sizes: near branches are 64-bit in 64-bit mode whatever the 66 prefix
 * says (Intel behaviour; OPF_F64); elsewhere the target is truncated to
 * the operand size and checked against the CS limit (#GP(0)), and in
 * 64-bit mode it must be canonical (#GP(0), raised on the branch itself as
 * Intel does). The stack pointer is updated at the stack-address size
 * (SS.B, or 64 bits in 64-bit mode); 16-bit updates merge into RSP.
 *
 * Fault atomicity: every handler validates the branch target and performs
 * all memory accesses before it writes RSP, RBP, RCX or RIP. */
#include "engine/soft/ctrl.h"

static bool canonical(uint64_t la) { return (uint64_t)((int64_t)(la << 16) >> 16) == la; }

/* The target of a near transfer as it will be loaded into RIP, after the
 * checks that must fault on the branch instruction itself. */
static uint64_t near_target(struct soft_cpu *cpu, const struct insn *i, uint64_t target)
{
	if (cpu->long64) {
		if (i->opsize == 2)
			target &= 0xffff;
		if (!canonical(target))
			soft_gp(cpu, 0);
		return target;
	}
	target &= size_mask(i->opsize);
	if (target > cpu->s.seg[SEG_CS].limit)
		soft_gp(cpu, 0);
	return target;
}

/* ---- stack pointer arithmetic at the stack-address size ---- */

static uint64_t stack_mask(const struct soft_cpu *cpu) { return size_mask(stack_addr_size(cpu)); }

static uint64_t stack_top(const struct soft_cpu *cpu)
{
	return cpu->s.gpr[GPR_RSP] & stack_mask(cpu);
}

/* The full RSP register value after its stack-size part becomes sp: a
 * 16-bit stack keeps RSP[63:16], a 32-bit one zero-extends. */
static uint64_t rsp_with(const struct soft_cpu *cpu, uint64_t sp)
{
	switch (stack_addr_size(cpu)) {
	case 2: return (cpu->s.gpr[GPR_RSP] & ~0xffffULL) | (sp & 0xffff);
	case 4: return sp & 0xffffffffULL;
	default: return sp;
	}
}

static void set_sp(struct soft_cpu *cpu, uint64_t sp) { cpu->s.gpr[GPR_RSP] = rsp_with(cpu, sp); }

/* Writes n values below the stack pointer sp as n successive pushes
 * would (vals[0] at the highest address), checking every slot before
 * writing any; RSP itself is left to the caller. */
static void stack_write_block(struct soft_cpu *cpu, uint64_t sp, const uint64_t *vals, unsigned n,
			      unsigned size)
{
	uint64_t mask = stack_mask(cpu);
	for (unsigned k = 0; k < n; k++)
		soft_probe_write(cpu, SEG_SS, (sp - (uint64_t)(k + 1) * size) & mask, size);
	for (unsigned k = 0; k < n; k++)
		seg_write(cpu, SEG_SS, (sp - (uint64_t)(k + 1) * size) & mask, size, vals[k]);
}

/* ---- branches ---- */

static void jmp_rel(struct soft_cpu *cpu, struct insn *i) /* EB, E9 */
{
	soft_branch(cpu, i, near_target(cpu, i, cpu->next_rip + i->imm));
}

/* One Jcc handler per condition (the opcode table picks it), with the
 * condition inline; in 64-bit mode the operand size is always 64, so the
 * target only needs the canonical check (as near_target/soft_branch). */
static inline __attribute__((always_inline)) void jcc_cc(struct soft_cpu *cpu, struct insn *i,
							  unsigned cc)
{
	if (!flags_cond_inline(cpu, cc))
		return;
	if (!cpu->long64) {
		jmp_rel(cpu, i);
		return;
	}
	uint64_t target = cpu->next_rip + i->imm;
	if (!soft_canonical(target))
		soft_gp(cpu, 0);
	cpu->next_rip = target;
}

#define JCC_HANDLER(cc) \
	static void jcc_##cc(struct soft_cpu *cpu, struct insn *i) { jcc_cc(cpu, i, cc); }
JCC_HANDLER(0) JCC_HANDLER(1) JCC_HANDLER(2) JCC_HANDLER(3)
JCC_HANDLER(4) JCC_HANDLER(5) JCC_HANDLER(6) JCC_HANDLER(7)
JCC_HANDLER(8) JCC_HANDLER(9) JCC_HANDLER(10) JCC_HANDLER(11)
JCC_HANDLER(12) JCC_HANDLER(13) JCC_HANDLER(14) JCC_HANDLER(15)

static uint64_t count_reg(const struct soft_cpu *cpu, const struct insn *i)
{
	return cpu->s.gpr[GPR_RCX] & size_mask(i->addrsize);
}

static void jrcxz(struct soft_cpu *cpu, struct insn *i) /* E3 */
{
	if (count_reg(cpu, i) == 0)
		jmp_rel(cpu, i);
}

/* LOOP (E2), LOOPE (E1), LOOPNE (E0): the count register is CX, ECX or
 * RCX by address size; the flags are not modified. */
static void loop(struct soft_cpu *cpu, struct insn *i)
{
	uint64_t count = (count_reg(cpu, i) - 1) & size_mask(i->addrsize);
	bool take = count != 0;
	if (i->opcode == 0xe1)
		take = take && flags_zf(cpu);
	else if (i->opcode == 0xe0)
		take = take && !flags_zf(cpu);
	uint64_t target = take ? near_target(cpu, i, cpu->next_rip + i->imm) : 0;
	reg_write(cpu, GPR_RCX, i->addrsize, count, true);
	if (take)
		soft_branch(cpu, i, target);
}

static void call_to(struct soft_cpu *cpu, struct insn *i, uint64_t target)
{
	target = near_target(cpu, i, target);
	stack_push(cpu, i->opsize, cpu->next_rip); /* writes memory, then RSP */
	soft_branch(cpu, i, target);
}

static void call_rel(struct soft_cpu *cpu, struct insn *i) /* E8 */
{
	call_to(cpu, i, cpu->next_rip + i->imm);
}

static void call_rm(struct soft_cpu *cpu, struct insn *i) /* FF /2 */
{
	call_to(cpu, i, op_rm_read(cpu, i, i->opsize));
}

static void jmp_rm(struct soft_cpu *cpu, struct insn *i) /* FF /4 */
{
	soft_branch(cpu, i, near_target(cpu, i, op_rm_read(cpu, i, i->opsize)));
}

static void ret_near(struct soft_cpu *cpu, struct insn *i) /* C3, C2 imm16 */
{
	uint64_t sp = stack_top(cpu);
	uint64_t target = near_target(cpu, i, seg_read(cpu, SEG_SS, sp, i->opsize));
	uint64_t release = i->opcode == 0xc2 ? (i->imm & 0xffff) : 0;
	set_sp(cpu, sp + i->opsize + release);
	soft_branch(cpu, i, target);
}

/* ---- PUSH and POP ---- */

static unsigned opcode_reg(const struct insn *i)
{
	return (i->opcode & 7) | ((i->rex & 1) ? 8 : 0);
}

static void push_reg(struct soft_cpu *cpu, struct insn *i) /* 50-57 (PUSH rSP pushes the old value) */
{
	stack_push(cpu, i->opsize, reg_read(cpu, opcode_reg(i), i->opsize, true));
}

static void pop_reg(struct soft_cpu *cpu, struct insn *i) /* 58-5F (POP rSP: the popped value wins) */
{
	uint64_t v = stack_pop(cpu, i->opsize);
	reg_write(cpu, opcode_reg(i), i->opsize, v, true);
}

static void push_imm(struct soft_cpu *cpu, struct insn *i) /* 68, 6A (sign-extended) */
{
	uint64_t v = i->opcode == 0x6a ? (uint64_t)sign_extend(i->imm, 1) : i->imm;
	stack_push(cpu, i->opsize, v);
}

static void push_rm(struct soft_cpu *cpu, struct insn *i) /* FF /6: address uses the old rSP */
{
	stack_push(cpu, i->opsize, op_rm_read(cpu, i, i->opsize));
}

/* 8F /0. An rSP-based destination address is computed with the
 * incremented rSP (SDM vol. 2, POP). */
static void pop_rm(struct soft_cpu *cpu, struct insn *i)
{
	uint64_t sp = stack_top(cpu);
	uint64_t v = seg_read(cpu, SEG_SS, sp, i->opsize);
	uint64_t new_rsp = rsp_with(cpu, sp + i->opsize);
	if (i->mod == 3) {
		cpu->s.gpr[GPR_RSP] = new_rsp;
		op_rm_write(cpu, i, i->opsize, v);
		return;
	}
	uint64_t old_rsp = cpu->s.gpr[GPR_RSP];
	cpu->s.gpr[GPR_RSP] = new_rsp; /* only for the address computation */
	uint64_t ea = insn_ea(cpu, i);
	cpu->s.gpr[GPR_RSP] = old_rsp;
	seg_write(cpu, i->seg, ea, i->opsize, v);
	cpu->s.gpr[GPR_RSP] = new_rsp;
}

/* ---- flags ---- */

static unsigned iopl(const struct soft_cpu *cpu) { return (cpu->s.rflags >> 12) & 3; }

static bool vm86(const struct soft_cpu *cpu) { return cpu->s.rflags & FLAG_VM; }

/* 9C: the image has VM and RF cleared. Virtual-8086 mode with IOPL < 3
 * faults (CR4.VME's virtual flags are not implemented). */
static void pushf(struct soft_cpu *cpu, struct insn *i)
{
	if (vm86(cpu) && iopl(cpu) < 3)
		soft_gp(cpu, 0);
	stack_push(cpu, i->opsize, flags_get(cpu) & ~(FLAG_VM | FLAG_RF));
}

/* 9D, following the SDM's POPF operation: VM, VIP, VIF and reserved bits
 * never change; IOPL changes only at CPL 0; IF only when CPL <= IOPL; a
 * 16-bit POPF touches bits 15:0 only, wider ones also AC and ID and clear
 * RF. */
static void popf(struct soft_cpu *cpu, struct insn *i)
{
	if (vm86(cpu) && iopl(cpu) < 3)
		soft_gp(cpu, 0);
	uint64_t old = flags_get(cpu);
	uint64_t v = stack_pop(cpu, i->opsize);
	uint64_t mask = FLAGS_ARITH | FLAG_TF | FLAG_IF | FLAG_DF | FLAG_IOPL | FLAG_NT;
	if (i->opsize > 2)
		mask |= FLAG_AC | FLAG_ID;
	if (cpu->cpl > 0)
		mask &= ~FLAG_IOPL;
	if (cpu->cpl > iopl(cpu))
		mask &= ~FLAG_IF;
	uint64_t f = (old & ~mask) | (v & mask);
	if (i->opsize > 2)
		f &= ~FLAG_RF;
	flags_put(cpu, f);
	/* Opening the interrupt window (or setting TF) ends a translated
	 * block, whose entry is where pending interrupts are looked at. */
	if ((f & ~old) & (FLAG_IF | FLAG_TF))
		cpu->block_abort = true;
}

/* ---- PUSHA, POPA ---- */

static void pusha(struct soft_cpu *cpu, struct insn *i) /* 60: AX CX DX BX SP(original) BP SI DI */
{
	uint64_t vals[8];
	for (unsigned r = 0; r < 8; r++)
		vals[r] = reg_read(cpu, r, i->opsize, true);
	uint64_t sp = stack_top(cpu);
	stack_write_block(cpu, sp, vals, 8, i->opsize);
	set_sp(cpu, sp - 8ULL * i->opsize);
}

static void popa(struct soft_cpu *cpu, struct insn *i) /* 61: the saved SP is skipped */
{
	uint64_t vals[8];
	uint64_t sp = stack_top(cpu), mask = stack_mask(cpu);
	for (unsigned k = 0; k < 8; k++)
		vals[k] = seg_read(cpu, SEG_SS, (sp + (uint64_t)k * i->opsize) & mask, i->opsize);
	for (unsigned r = 0; r < 8; r++)
		if (r != GPR_RSP)
			reg_write(cpu, r, i->opsize, vals[7 - r], true);
	set_sp(cpu, sp + 8ULL * i->opsize);
}

/* ---- ENTER, LEAVE ---- */

#define ENTER_MAX_PUSHES 33 /* rBP, 30 copied frame pointers, the new frame pointer */

/* C8 iw ib. Nesting level = imm8 mod 32: level-1 frame pointers are copied
 * from the old frame (reading at rBP - k*size, stack-address sized), then
 * the new frame pointer is pushed. Finally the SDM requires the write
 * check of SS:final rSP (#SS/#PF), which is done before any state
 * changes. */
static void enter(struct soft_cpu *cpu, struct insn *i)
{
	unsigned size = i->opsize, level = (unsigned)(i->imm2 & 31);
	uint64_t mask = stack_mask(cpu), sp = stack_top(cpu);
	uint64_t vals[ENTER_MAX_PUSHES];
	unsigned n = 0;

	vals[n++] = reg_read(cpu, GPR_RBP, size, true);
	uint64_t frame = rsp_with(cpu, sp - size); /* FrameTemp: rSP after pushing rBP */
	if (level > 0) {
		uint64_t bp = cpu->s.gpr[GPR_RBP] & mask;
		for (unsigned k = 1; k < level; k++) {
			bp = (bp - size) & mask;
			vals[n++] = seg_read(cpu, SEG_SS, bp, size);
		}
		vals[n++] = frame;
	}
	stack_write_block(cpu, sp, vals, n, size);
	uint64_t final_sp = (sp - (uint64_t)n * size - (i->imm & 0xffff)) & mask;
	soft_probe_write(cpu, SEG_SS, final_sp, size);
	reg_write(cpu, GPR_RBP, size, frame, true);
	set_sp(cpu, final_sp);
}

static void leave(struct soft_cpu *cpu, struct insn *i) /* C9: rSP := rBP; pop rBP */
{
	uint64_t sp = cpu->s.gpr[GPR_RBP] & stack_mask(cpu);
	uint64_t v = seg_read(cpu, SEG_SS, sp, i->opsize);
	set_sp(cpu, sp + i->opsize);
	reg_write(cpu, GPR_RBP, i->opsize, v, true);
}

/* ---- segment registers ---- */

static unsigned opcode_sreg(const struct insn *i)
{
	if (i->map == OPMAP_0F)
		return i->opcode < 0xa8 ? SEG_FS : SEG_GS;
	return (i->opcode >> 3) & 3; /* 06/07 ES, 0E CS, 16/17 SS, 1E/1F DS */
}

/* With a 16- or 32-bit operand size, current Intel processors write only
 * the selector's 16 bits into the slot and leave the rest of it alone (SDM
 * vol. 2, PUSH; checked on hardware in 32-bit mode); a 64-bit push writes
 * the zero-extended selector (also checked on hardware). */
static void push_sreg(struct soft_cpu *cpu, struct insn *i)
{
	uint16_t sel = cpu->s.seg[opcode_sreg(i)].selector;
	if (i->opsize == 8) {
		stack_push(cpu, 8, sel);
		return;
	}
	uint64_t sp = (stack_top(cpu) - i->opsize) & stack_mask(cpu);
	soft_probe_write(cpu, SEG_SS, sp, i->opsize);
	seg_write(cpu, SEG_SS, sp, 2, sel);
	set_sp(cpu, sp);
}

/* The increment uses the stack size before the load (POP SS may change
 * SS.B). POP SS inhibits interrupts until after the next instruction. */
static void pop_sreg(struct soft_cpu *cpu, struct insn *i)
{
	unsigned seg = opcode_sreg(i);
	uint64_t sp = stack_top(cpu);
	uint16_t sel = (uint16_t)seg_read(cpu, SEG_SS, sp, i->opsize);
	uint64_t new_rsp = rsp_with(cpu, sp + i->opsize);
	seg_load(cpu, seg, sel);
	cpu->s.gpr[GPR_RSP] = new_rsp;
	if (seg == SEG_SS)
		soft_set_interrupt_shadow(cpu);
}

/* ---- software interrupts ---- */

/* The interrupt returns to the next instruction; delivery sets RIP, which
 * the run loop must then keep. */
static void soft_int(struct soft_cpu *cpu, uint8_t vector)
{
	soft_deliver(cpu, vector, false, 0, true, cpu->next_rip);
	cpu->next_rip = cpu->s.rip;
}

static void int3(struct soft_cpu *cpu, struct insn *i) /* CC */
{
	(void)i;
	soft_int(cpu, EXC_BP);
}

/* CD ib. In virtual-8086 mode INT n is IOPL-sensitive (without CR4.VME,
 * which is not implemented); INT3 and INTO are not. */
static void int_n(struct soft_cpu *cpu, struct insn *i)
{
	if (vm86(cpu) && iopl(cpu) < 3)
		soft_gp(cpu, 0);
	soft_int(cpu, (uint8_t)i->imm);
}

static void into(struct soft_cpu *cpu, struct insn *i) /* CE */
{
	(void)i;
	if (flags_of(cpu))
		soft_int(cpu, EXC_OF);
}

#define M OPF_MODRM
#define REL8 (OPF_IMM8 | OPF_REL | OPF_F64)
#define RELZ (OPF_IMMZ | OPF_REL | OPF_F64)
#define JCC8(op, cc) {OPMAP_1B, op, -1, -1, PFX_ANY, REL8, "jcc", jcc_##cc}
#define JCCZ(op, cc) {OPMAP_0F, op, -1, -1, PFX_ANY, RELZ, "jcc", jcc_##cc}
#define PUSHR(op) {OPMAP_1B, op, -1, -1, PFX_ANY, OPF_DEF64, "push", push_reg}
#define POPR(op) {OPMAP_1B, op, -1, -1, PFX_ANY, OPF_DEF64, "pop", pop_reg}

const struct opdef soft_ops_ctrl[] = {
    {OPMAP_1B, 0xeb, -1, -1, PFX_ANY, REL8, "jmp", jmp_rel},
    {OPMAP_1B, 0xe9, -1, -1, PFX_ANY, RELZ, "jmp", jmp_rel},
    JCC8(0x70, 0), JCC8(0x71, 1), JCC8(0x72, 2), JCC8(0x73, 3), JCC8(0x74, 4), JCC8(0x75, 5),
    JCC8(0x76, 6), JCC8(0x77, 7), JCC8(0x78, 8), JCC8(0x79, 9), JCC8(0x7a, 10), JCC8(0x7b, 11),
    JCC8(0x7c, 12), JCC8(0x7d, 13), JCC8(0x7e, 14), JCC8(0x7f, 15),
    JCCZ(0x80, 0), JCCZ(0x81, 1), JCCZ(0x82, 2), JCCZ(0x83, 3), JCCZ(0x84, 4), JCCZ(0x85, 5),
    JCCZ(0x86, 6), JCCZ(0x87, 7), JCCZ(0x88, 8), JCCZ(0x89, 9), JCCZ(0x8a, 10), JCCZ(0x8b, 11),
    JCCZ(0x8c, 12), JCCZ(0x8d, 13), JCCZ(0x8e, 14), JCCZ(0x8f, 15),
    {OPMAP_1B, 0xe3, -1, -1, PFX_ANY, REL8, "jrcxz", jrcxz},
    {OPMAP_1B, 0xe0, -1, -1, PFX_ANY, REL8, "loopne", loop},
    {OPMAP_1B, 0xe1, -1, -1, PFX_ANY, REL8, "loope", loop},
    {OPMAP_1B, 0xe2, -1, -1, PFX_ANY, REL8, "loop", loop},
    {OPMAP_1B, 0xe8, -1, -1, PFX_ANY, RELZ, "call", call_rel},
    {OPMAP_1B, 0xff, 2, -1, PFX_ANY, M | OPF_F64, "call", call_rm},
    {OPMAP_1B, 0xff, 4, -1, PFX_ANY, M | OPF_F64, "jmp", jmp_rm},
    {OPMAP_1B, 0xc3, -1, -1, PFX_ANY, OPF_F64, "ret", ret_near},
    {OPMAP_1B, 0xc2, -1, -1, PFX_ANY, OPF_IMM16 | OPF_F64, "ret", ret_near},
    PUSHR(0x50), PUSHR(0x51), PUSHR(0x52), PUSHR(0x53),
    PUSHR(0x54), PUSHR(0x55), PUSHR(0x56), PUSHR(0x57),
    POPR(0x58), POPR(0x59), POPR(0x5a), POPR(0x5b),
    POPR(0x5c), POPR(0x5d), POPR(0x5e), POPR(0x5f),
    {OPMAP_1B, 0x68, -1, -1, PFX_ANY, OPF_IMMZ | OPF_DEF64, "push", push_imm},
    {OPMAP_1B, 0x6a, -1, -1, PFX_ANY, OPF_IMM8 | OPF_DEF64, "push", push_imm},
    {OPMAP_1B, 0xff, 6, -1, PFX_ANY, M | OPF_DEF64, "push", push_rm},
    {OPMAP_1B, 0x8f, 0, -1, PFX_ANY, M | OPF_DEF64, "pop", pop_rm},
    {OPMAP_1B, 0x9c, -1, -1, PFX_ANY, OPF_DEF64, "pushf", pushf},
    {OPMAP_1B, 0x9d, -1, -1, PFX_ANY, OPF_DEF64, "popf", popf},
    {OPMAP_1B, 0x60, -1, -1, PFX_ANY, OPF_NO64, "pusha", pusha},
    {OPMAP_1B, 0x61, -1, -1, PFX_ANY, OPF_NO64, "popa", popa},
    {OPMAP_1B, 0xc8, -1, -1, PFX_ANY, OPF_ENTER | OPF_DEF64, "enter", enter},
    {OPMAP_1B, 0xc9, -1, -1, PFX_ANY, OPF_DEF64, "leave", leave},
    {OPMAP_1B, 0x06, -1, -1, PFX_ANY, OPF_NO64, "push es", push_sreg},
    {OPMAP_1B, 0x07, -1, -1, PFX_ANY, OPF_NO64, "pop es", pop_sreg},
    {OPMAP_1B, 0x0e, -1, -1, PFX_ANY, OPF_NO64, "push cs", push_sreg},
    {OPMAP_1B, 0x16, -1, -1, PFX_ANY, OPF_NO64, "push ss", push_sreg},
    {OPMAP_1B, 0x17, -1, -1, PFX_ANY, OPF_NO64, "pop ss", pop_sreg},
    {OPMAP_1B, 0x1e, -1, -1, PFX_ANY, OPF_NO64, "push ds", push_sreg},
    {OPMAP_1B, 0x1f, -1, -1, PFX_ANY, OPF_NO64, "pop ds", pop_sreg},
    {OPMAP_0F, 0xa0, -1, -1, PFX_ANY, OPF_DEF64, "push fs", push_sreg},
    {OPMAP_0F, 0xa1, -1, -1, PFX_ANY, OPF_DEF64, "pop fs", pop_sreg},
    {OPMAP_0F, 0xa8, -1, -1, PFX_ANY, OPF_DEF64, "push gs", push_sreg},
    {OPMAP_0F, 0xa9, -1, -1, PFX_ANY, OPF_DEF64, "pop gs", pop_sreg},
    {OPMAP_1B, 0xcc, -1, -1, PFX_ANY, 0, "int3", int3},
    {OPMAP_1B, 0xcd, -1, -1, PFX_ANY, OPF_IMM8, "int", int_n},
    {OPMAP_1B, 0xce, -1, -1, PFX_ANY, OPF_NO64, "into", into},
    OPDEF_END,
};
