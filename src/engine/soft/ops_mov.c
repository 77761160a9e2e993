/* Data movement: MOV in all its general-purpose forms, MOVZX/MOVSX/MOVSXD,
 * LEA, XCHG, NOP/PAUSE (SDM vol. 2: MOV, MOVZX, MOVSX/MOVSXD, LEA, XCHG,
 * NOP, PAUSE). MOV to/from segment and control registers live in
 * ops_system.c. */
#include "engine/soft/soft.h"

static void mov_rm_reg(struct soft_cpu *cpu, struct insn *i) /* 88, 89 */
{
	op_rm_write(cpu, i, i->opsize, op_reg_read(cpu, i, i->opsize));
}

static void mov_reg_rm(struct soft_cpu *cpu, struct insn *i) /* 8A, 8B */
{
	op_reg_write(cpu, i, i->opsize, op_rm_read(cpu, i, i->opsize));
}

static void mov_rm_imm(struct soft_cpu *cpu, struct insn *i) /* C6 /0, C7 /0 */
{
	op_rm_write(cpu, i, i->opsize, i->imm);
}

static void mov_reg_imm(struct soft_cpu *cpu, struct insn *i) /* B0-B7, B8-BF */
{
	unsigned reg = (i->opcode & 7) | ((i->rex & 1) ? 8 : 0);
	reg_write(cpu, reg, i->opsize, i->imm, i->rex != 0);
}

static void mov_acc_moffs(struct soft_cpu *cpu, struct insn *i) /* A0, A1 */
{
	uint64_t v = seg_read(cpu, i->seg, i->imm & size_mask(i->addrsize), i->opsize);
	reg_write(cpu, GPR_RAX, i->opsize, v, true);
}

static void mov_moffs_acc(struct soft_cpu *cpu, struct insn *i) /* A2, A3 */
{
	seg_write(cpu, i->seg, i->imm & size_mask(i->addrsize), i->opsize,
		  reg_read(cpu, GPR_RAX, i->opsize, true));
}

static void movzx(struct soft_cpu *cpu, struct insn *i) /* 0F B6, 0F B7 */
{
	unsigned src = (i->opcode & 1) ? 2 : 1;
	op_reg_write(cpu, i, i->opsize, op_rm_read(cpu, i, src));
}

static void movsx(struct soft_cpu *cpu, struct insn *i) /* 0F BE, 0F BF */
{
	unsigned src = (i->opcode & 1) ? 2 : 1;
	op_reg_write(cpu, i, i->opsize, (uint64_t)sign_extend(op_rm_read(cpu, i, src), src));
}

static void movsxd(struct soft_cpu *cpu, struct insn *i) /* 63 in 64-bit mode */
{
	uint64_t v = op_rm_read(cpu, i, i->opsize == 8 ? 4 : i->opsize);
	op_reg_write(cpu, i, i->opsize, i->opsize == 8 ? (uint64_t)sign_extend(v, 4) : v);
}

static void lea(struct soft_cpu *cpu, struct insn *i) /* 8D */
{
	op_reg_write(cpu, i, i->opsize, insn_ea(cpu, i));
}

static void xchg_rm_reg(struct soft_cpu *cpu, struct insn *i) /* 86, 87 (always locked) */
{
	uint64_t a = op_rm_read(cpu, i, i->opsize);
	uint64_t b = op_reg_read(cpu, i, i->opsize);
	op_rm_write(cpu, i, i->opsize, b); /* memory first: it may fault */
	op_reg_write(cpu, i, i->opsize, a);
}

static void xchg_acc_reg(struct soft_cpu *cpu, struct insn *i) /* 91-97, and 90 with REX.B */
{
	unsigned reg = (i->opcode & 7) | ((i->rex & 1) ? 8 : 0);
	uint64_t a = reg_read(cpu, GPR_RAX, i->opsize, true);
	uint64_t b = reg_read(cpu, reg, i->opsize, true);
	reg_write(cpu, GPR_RAX, i->opsize, b, true);
	reg_write(cpu, reg, i->opsize, a, true);
}

static void nop(struct soft_cpu *cpu, struct insn *i) /* 90, F3 90 (PAUSE), 0F 1F, 0F 18-1E hints */
{
	if (i->opcode == 0x90 && (i->rex & 1) && i->rep != 0xf3)
		xchg_acc_reg(cpu, i); /* REX.B 90 is XCHG r8, rAX */
}

/* Fast forms of MOV 89/8B (see ops_alu.c, "fast forms"): 32- and 64-bit,
 * register or memory, with the size a constant. */
#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE void fast_mov_rm_reg(struct soft_cpu *cpu, struct insn *i, unsigned size,
					  bool reg)
{
	uint64_t v = cpu->s.gpr[i->reg] & size_mask(size);
	if (reg)
		cpu->s.gpr[i->rm] = v;
	else
		op_rm_write_mem(cpu, i, size, v);
}

static ALWAYS_INLINE void fast_mov_reg_rm(struct soft_cpu *cpu, struct insn *i, unsigned size,
					  bool reg)
{
	uint64_t v = reg ? cpu->s.gpr[i->rm] & size_mask(size) : op_rm_read_mem(cpu, i, size);
	cpu->s.gpr[i->reg] = v;
}


FAST_VARIANTS(mov_f_rm_reg, fast_mov_rm_reg)
FAST_VARIANTS(mov_f_reg_rm, fast_mov_reg_rm)
static const soft_exec_fn fast_mov[2][2][2] = {FAST_TABLE(mov_f_rm_reg), FAST_TABLE(mov_f_reg_rm)};

soft_exec_fn soft_mov_fast(const struct insn *i)
{
	if (i->map != OPMAP_1B || (i->opcode != 0x89 && i->opcode != 0x8b) ||
	    (i->opsize != 4 && i->opsize != 8))
		return NULL;
	return fast_mov[i->opcode == 0x8b][i->opsize == 8][i->mod == 3];
}

#define B OPF_BYTE
#define M OPF_MODRM
const struct opdef soft_ops_mov[] = {
    {OPMAP_1B, 0x88, -1, -1, PFX_ANY, M | B, "mov", mov_rm_reg},
    {OPMAP_1B, 0x89, -1, -1, PFX_ANY, M, "mov", mov_rm_reg},
    {OPMAP_1B, 0x8a, -1, -1, PFX_ANY, M | B, "mov", mov_reg_rm},
    {OPMAP_1B, 0x8b, -1, -1, PFX_ANY, M, "mov", mov_reg_rm},
    {OPMAP_1B, 0xc6, 0, -1, PFX_ANY, M | B | OPF_IMM8, "mov", mov_rm_imm},
    {OPMAP_1B, 0xc7, 0, -1, PFX_ANY, M | OPF_IMMZ, "mov", mov_rm_imm},
    {OPMAP_1B, 0xb0, -1, -1, PFX_ANY, B | OPF_IMM8, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb1, -1, -1, PFX_ANY, B | OPF_IMM8, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb2, -1, -1, PFX_ANY, B | OPF_IMM8, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb3, -1, -1, PFX_ANY, B | OPF_IMM8, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb4, -1, -1, PFX_ANY, B | OPF_IMM8, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb5, -1, -1, PFX_ANY, B | OPF_IMM8, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb6, -1, -1, PFX_ANY, B | OPF_IMM8, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb7, -1, -1, PFX_ANY, B | OPF_IMM8, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb8, -1, -1, PFX_ANY, OPF_IMMV, "mov", mov_reg_imm},
    {OPMAP_1B, 0xb9, -1, -1, PFX_ANY, OPF_IMMV, "mov", mov_reg_imm},
    {OPMAP_1B, 0xba, -1, -1, PFX_ANY, OPF_IMMV, "mov", mov_reg_imm},
    {OPMAP_1B, 0xbb, -1, -1, PFX_ANY, OPF_IMMV, "mov", mov_reg_imm},
    {OPMAP_1B, 0xbc, -1, -1, PFX_ANY, OPF_IMMV, "mov", mov_reg_imm},
    {OPMAP_1B, 0xbd, -1, -1, PFX_ANY, OPF_IMMV, "mov", mov_reg_imm},
    {OPMAP_1B, 0xbe, -1, -1, PFX_ANY, OPF_IMMV, "mov", mov_reg_imm},
    {OPMAP_1B, 0xbf, -1, -1, PFX_ANY, OPF_IMMV, "mov", mov_reg_imm},
    {OPMAP_1B, 0xa0, -1, -1, PFX_ANY, B | OPF_MOFFS, "mov", mov_acc_moffs},
    {OPMAP_1B, 0xa1, -1, -1, PFX_ANY, OPF_MOFFS, "mov", mov_acc_moffs},
    {OPMAP_1B, 0xa2, -1, -1, PFX_ANY, B | OPF_MOFFS, "mov", mov_moffs_acc},
    {OPMAP_1B, 0xa3, -1, -1, PFX_ANY, OPF_MOFFS, "mov", mov_moffs_acc},
    {OPMAP_0F, 0xb6, -1, -1, PFX_ANY, M, "movzx", movzx},
    {OPMAP_0F, 0xb7, -1, -1, PFX_ANY, M, "movzx", movzx},
    {OPMAP_0F, 0xbe, -1, -1, PFX_ANY, M, "movsx", movsx},
    {OPMAP_0F, 0xbf, -1, -1, PFX_ANY, M, "movsx", movsx},
    {OPMAP_1B, 0x63, -1, -1, PFX_ANY, M | OPF_ONLY64, "movsxd", movsxd},
    {OPMAP_1B, 0x8d, -1, -1, PFX_ANY, M | OPF_MODMEM, "lea", lea},
    {OPMAP_1B, 0x86, -1, -1, PFX_ANY, M | B | OPF_LOCKOK, "xchg", xchg_rm_reg},
    {OPMAP_1B, 0x87, -1, -1, PFX_ANY, M | OPF_LOCKOK, "xchg", xchg_rm_reg},
    {OPMAP_1B, 0x90, -1, -1, PFX_ANY, 0, "nop", nop},
    {OPMAP_1B, 0x91, -1, -1, PFX_ANY, 0, "xchg", xchg_acc_reg},
    {OPMAP_1B, 0x92, -1, -1, PFX_ANY, 0, "xchg", xchg_acc_reg},
    {OPMAP_1B, 0x93, -1, -1, PFX_ANY, 0, "xchg", xchg_acc_reg},
    {OPMAP_1B, 0x94, -1, -1, PFX_ANY, 0, "xchg", xchg_acc_reg},
    {OPMAP_1B, 0x95, -1, -1, PFX_ANY, 0, "xchg", xchg_acc_reg},
    {OPMAP_1B, 0x96, -1, -1, PFX_ANY, 0, "xchg", xchg_acc_reg},
    {OPMAP_1B, 0x97, -1, -1, PFX_ANY, 0, "xchg", xchg_acc_reg},
    /* 0F 18-1F: prefetch hints and reserved NOPs, including ENDBR32/64
     * (F3 0F 1E FB/FA), which are NOPs while CET is not enabled. */
    {OPMAP_0F, 0x18, -1, -1, PFX_ANY, M, "prefetch/hint", nop},
    {OPMAP_0F, 0x19, -1, -1, PFX_ANY, M, "nop", nop},
    {OPMAP_0F, 0x1a, -1, -1, PFX_ANY, M, "nop", nop},
    {OPMAP_0F, 0x1b, -1, -1, PFX_ANY, M, "nop", nop},
    {OPMAP_0F, 0x1c, -1, -1, PFX_ANY, M, "nop", nop},
    {OPMAP_0F, 0x1d, -1, -1, PFX_ANY, M, "nop", nop},
    {OPMAP_0F, 0x1e, -1, -1, PFX_ANY, M, "nop/endbr", nop},
    {OPMAP_0F, 0x1f, -1, -1, PFX_ANY, M, "nop", nop},
    OPDEF_END,
};
