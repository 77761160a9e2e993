/* The translator's host-code emitter: an x86-64 machine-code encoder
 * (Intel SDM vol. 2 ch. 2: legacy prefixes, REX, opcode, ModRM, SIB,
 * displacement, immediate) writing into a caller-provided buffer.
 *
 * One function per instruction shape, named after what it emits:
 * emit_<mnemonic>_<operands> with r = register, m = memory, i = immediate,
 * x = XMM register, cl = the count in CL. Operand sizes are 1, 2, 4 or 8
 * bytes; the destination comes first, as in Intel syntax. Each function
 * emits the shortest encoding of what it names (disp8 over disp32, the
 * sign-extended imm8 forms, the accumulator short forms) but never a
 * different instruction: flag behaviour is exactly that of the mnemonic.
 *
 * Invariants:
 * - Nothing is written past `end`. An instruction that does not fit sets
 *   `overflow` and writes nothing; one that cannot be encoded (bad size,
 *   RSP as an index, a RIP-relative or branch target beyond ±2 GiB) sets
 *   `invalid` and writes nothing. After the first failure nothing more is
 *   written, so callers emit a whole block and check emit_ok() once at the
 *   end.
 * - The buffer is written at one address and executed at another (the code
 *   cache maps its memory twice, see code_cache.h): `exec` is the execute
 *   address of `start`. Every relative displacement (branches, calls,
 *   RIP-relative operands) is computed from execute addresses, which are
 *   passed as uintptr_t; write pointers are uint8_t *.
 * - 8-bit register operands 4-7 are SPL, BPL, SIL, DIL (a REX prefix is
 *   emitted for them, SDM vol. 2 §2.2.1.2); AH, CH, DH, BH are never used. */
#ifndef SHRIKE_ENGINE_SOFT_JIT_EMIT_H
#define SHRIKE_ENGINE_SOFT_JIT_EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest x86 instruction (SDM vol. 2 §2.3.11). */
#define EMIT_MAX_INSN 15

struct emit {
	uint8_t *p, *start, *end;
	uintptr_t exec; /* execute address of start */
	bool overflow;  /* an instruction did not fit */
	bool invalid;   /* an instruction could not be encoded */
};

enum hreg {
	H_RAX = 0, H_RCX, H_RDX, H_RBX, H_RSP, H_RBP, H_RSI, H_RDI,
	H_R8, H_R9, H_R10, H_R11, H_R12, H_R13, H_R14, H_R15,
};
#define HREG_NONE (-1)
#define HMEM_RIP (-2) /* hmem.base: RIP-relative, to hmem.target */

/* Condition codes in x86 numbering (SDM vol. 2 appendix B.1.4.7): the
 * low nibble of Jcc/SETcc/CMOVcc. */
enum hcc {
	HCC_O = 0, HCC_NO, HCC_B, HCC_AE, HCC_E, HCC_NE, HCC_BE, HCC_A,
	HCC_S, HCC_NS, HCC_P, HCC_NP, HCC_L, HCC_GE, HCC_LE, HCC_G,
};

/* The ALU group in opcode order: op*8 + 0..5 are its opcodes and op is
 * the /digit of 80/81/83 (SDM vol. 2 appendix A, table A-2). */
enum halu { HALU_ADD = 0, HALU_OR, HALU_ADC, HALU_SBB, HALU_AND, HALU_SUB, HALU_XOR, HALU_CMP };

/* Shift group 2, the /digit of C0/C1/D0-D3 (/6 is an alias of SHL). */
enum hshift { HSH_ROL = 0, HSH_ROR, HSH_RCL, HSH_RCR, HSH_SHL, HSH_SHR, HSH_SAR = 7 };

/* One-operand r/m instructions (groups 3 and 4/5: F6/F7, FE/FF). */
enum hunary { HUN_INC, HUN_DEC, HUN_NOT, HUN_NEG, HUN_MUL, HUN_IMUL, HUN_DIV, HUN_IDIV };

/* Bit tests: the /digit of 0F BA is 4 + op; the r/m,r opcode 0F A3+8*op. */
enum hbt { HBT_BT = 0, HBT_BTS, HBT_BTR, HBT_BTC };

/* Double shifts: SHLD and SHRD. */
enum hdshift { HDS_SHLD, HDS_SHRD };

/* A memory operand: [base + index*scale + disp], or RIP-relative. */
struct hmem {
	int8_t base;   /* enum hreg, HREG_NONE (absolute disp32) or HMEM_RIP */
	int8_t index;  /* enum hreg other than H_RSP, or HREG_NONE */
	uint8_t scale; /* 1, 2, 4 or 8 (ignored without an index) */
	int32_t disp;
	uintptr_t target; /* HMEM_RIP: the execute address operated on */
};

static inline struct hmem hmem_base(int base, int32_t disp)
{
	return (struct hmem){.base = (int8_t)base, .index = HREG_NONE, .scale = 1, .disp = disp};
}

static inline struct hmem hmem_sib(int base, int index, unsigned scale, int32_t disp)
{
	return (struct hmem){.base = (int8_t)base,
			     .index = (int8_t)index,
			     .scale = (uint8_t)scale,
			     .disp = disp};
}

/* [disp32]: the sign-extended absolute address (through a SIB byte,
 * since ModRM mod=00 rm=101 means RIP-relative in 64-bit mode). */
static inline struct hmem hmem_abs(int32_t disp) { return hmem_sib(HREG_NONE, HREG_NONE, 1, disp); }

/* [rip + disp32] with the displacement computed at emit time from the end
 * of the instruction (SDM vol. 2 §2.2.1.6). */
static inline struct hmem hmem_rip(uintptr_t target)
{
	return (struct hmem){.base = HMEM_RIP, .index = HREG_NONE, .scale = 1, .target = target};
}

/* ---- the buffer ---- */

/* `exec` is where buf[0] will execute (0: at buf itself). */
void emit_init(struct emit *e, void *buf, size_t cap, uintptr_t exec);
static inline size_t emit_offset(const struct emit *e) { return (size_t)(e->p - e->start); }
/* Execute address of the next instruction. */
static inline uintptr_t emit_here(const struct emit *e) { return e->exec + emit_offset(e); }
static inline bool emit_ok(const struct emit *e) { return !e->overflow && !e->invalid; }
/* Raw bytes (all or nothing). */
void emit_bytes(struct emit *e, const void *bytes, size_t n);
/* NOP instructions totalling `len` bytes, as few as possible (the
 * recommended multi-byte forms 0F 1F /0, SDM vol. 2 table 4-12). */
void emit_nop(struct emit *e, size_t len);
/* NOPs up to the next multiple of `align` (a power of two) in execute addresses. */
void emit_align(struct emit *e, size_t align);

/* ---- moves ---- */
void emit_mov_rr(struct emit *e, unsigned sz, int dst, int src);
void emit_mov_rm(struct emit *e, unsigned sz, int dst, struct hmem m);
void emit_mov_mr(struct emit *e, unsigned sz, struct hmem m, int src);
/* Size 8: mov r32 (zero-extends) when imm < 2^32, the sign-extended imm32
 * form when it fits, else movabs with imm64. */
void emit_mov_ri(struct emit *e, unsigned sz, int dst, uint64_t imm);
/* Size 8 sign-extends imm. */
void emit_mov_mi(struct emit *e, unsigned sz, struct hmem m, int32_t imm);
/* dsz 2, 4 or 8 from ssz 1 or 2. */
void emit_movzx_rr(struct emit *e, unsigned dsz, unsigned ssz, int dst, int src);
void emit_movzx_rm(struct emit *e, unsigned dsz, unsigned ssz, int dst, struct hmem m);
void emit_movsx_rr(struct emit *e, unsigned dsz, unsigned ssz, int dst, int src);
void emit_movsx_rm(struct emit *e, unsigned dsz, unsigned ssz, int dst, struct hmem m);
/* 64-bit destination from a 32-bit source. */
void emit_movsxd_rr(struct emit *e, int dst, int src);
void emit_movsxd_rm(struct emit *e, int dst, struct hmem m);
/* sz 2, 4 or 8. */
void emit_lea(struct emit *e, unsigned sz, int dst, struct hmem m);
void emit_xchg_rr(struct emit *e, unsigned sz, int a, int b);
/* XCHG with memory is locked whatever the prefix (SDM vol. 2 XCHG). */
void emit_xchg_mr(struct emit *e, unsigned sz, struct hmem m, int r);
/* sz 4 or 8 (BSWAP of a 16-bit register is undefined). */
void emit_bswap(struct emit *e, unsigned sz, int r);

/* ---- arithmetic and logic ---- */
void emit_alu_rr(struct emit *e, enum halu op, unsigned sz, int dst, int src);
void emit_alu_rm(struct emit *e, enum halu op, unsigned sz, int dst, struct hmem m);
void emit_alu_mr(struct emit *e, enum halu op, unsigned sz, struct hmem m, int src);
/* imm is truncated to sz (sz 8: sign-extended imm32). */
void emit_alu_ri(struct emit *e, enum halu op, unsigned sz, int dst, int32_t imm);
void emit_alu_mi(struct emit *e, enum halu op, unsigned sz, struct hmem m, int32_t imm);
void emit_test_rr(struct emit *e, unsigned sz, int a, int b);
void emit_test_mr(struct emit *e, unsigned sz, struct hmem m, int r);
void emit_test_ri(struct emit *e, unsigned sz, int r, int32_t imm);
void emit_test_mi(struct emit *e, unsigned sz, struct hmem m, int32_t imm);
void emit_unary_r(struct emit *e, enum hunary op, unsigned sz, int r);
void emit_unary_m(struct emit *e, enum hunary op, unsigned sz, struct hmem m);
/* By an immediate count (the 1-operand D0/D1 form when it is 1: the
 * flags depend on the count, not on the encoding, SDM vol. 2 SAL/SAR/SHL/SHR). */
void emit_shift_ri(struct emit *e, enum hshift op, unsigned sz, int r, uint8_t count);
void emit_shift_mi(struct emit *e, enum hshift op, unsigned sz, struct hmem m, uint8_t count);
void emit_shift_rcl(struct emit *e, enum hshift op, unsigned sz, int r);
void emit_shift_mcl(struct emit *e, enum hshift op, unsigned sz, struct hmem m);
/* SHLD/SHRD dst, src, count (sz 2, 4, 8). */
void emit_dshift_rri(struct emit *e, enum hdshift op, unsigned sz, int dst, int src, uint8_t count);
void emit_dshift_mri(struct emit *e, enum hdshift op, unsigned sz, struct hmem m, int src,
		     uint8_t count);
void emit_dshift_rrcl(struct emit *e, enum hdshift op, unsigned sz, int dst, int src);
void emit_dshift_mrcl(struct emit *e, enum hdshift op, unsigned sz, struct hmem m, int src);
/* A 16/32/64-bit register destination with an r/m source and an optional
 * mandatory prefix (F3 for TZCNT/LZCNT/POPCNT): BSF 0x0fbc, BSR 0x0fbd,
 * POPCNT 0x0fb8, ... */
void emit_wide_rr(struct emit *e, uint8_t pfx, uint32_t opc, unsigned sz, int dst, int src);
void emit_wide_rm(struct emit *e, uint8_t pfx, uint32_t opc, unsigned sz, int dst, struct hmem m);
/* Two- and three-operand IMUL (sz 2, 4, 8). */
void emit_imul_rr(struct emit *e, unsigned sz, int dst, int src);
void emit_imul_rm(struct emit *e, unsigned sz, int dst, struct hmem m);
void emit_imul_rri(struct emit *e, unsigned sz, int dst, int src, int32_t imm);
void emit_imul_rmi(struct emit *e, unsigned sz, int dst, struct hmem m, int32_t imm);
/* Atomic read-modify-write; `lock` adds the LOCK prefix. */
void emit_cmpxchg_rr(struct emit *e, unsigned sz, int dst, int src);
void emit_cmpxchg_mr(struct emit *e, unsigned sz, struct hmem m, int src, bool lock);
void emit_xadd_rr(struct emit *e, unsigned sz, int dst, int src);
void emit_xadd_mr(struct emit *e, unsigned sz, struct hmem m, int src, bool lock);
/* A LOCK prefix for the next (memory read-modify-write) instruction. */
void emit_lock(struct emit *e);

/* ---- flags and conditions ---- */
void emit_setcc_r(struct emit *e, enum hcc cc, int r);
void emit_setcc_m(struct emit *e, enum hcc cc, struct hmem m);
/* sz 2, 4, 8. */
void emit_cmov_rr(struct emit *e, enum hcc cc, unsigned sz, int dst, int src);
void emit_cmov_rm(struct emit *e, enum hcc cc, unsigned sz, int dst, struct hmem m);
/* BT/BTS/BTR/BTC (sz 2, 4, 8); with memory and a register bit offset the
 * offset addresses beyond the operand (SDM vol. 2 BT). */
void emit_bt_rr(struct emit *e, enum hbt op, unsigned sz, int r, int bit);
void emit_bt_mr(struct emit *e, enum hbt op, unsigned sz, struct hmem m, int bit);
void emit_bt_ri(struct emit *e, enum hbt op, unsigned sz, int r, uint8_t bit);
void emit_bt_mi(struct emit *e, enum hbt op, unsigned sz, struct hmem m, uint8_t bit);
void emit_pushfq(struct emit *e);
void emit_popfq(struct emit *e);
void emit_lahf(struct emit *e);
void emit_sahf(struct emit *e);
void emit_clc(struct emit *e);
void emit_stc(struct emit *e);
void emit_cmc(struct emit *e);

/* ---- stack, fences, traps ---- */
void emit_push_r(struct emit *e, int r);
void emit_pop_r(struct emit *e, int r);
void emit_pop_m(struct emit *e, struct hmem m);
void emit_mfence(struct emit *e);
void emit_ret(struct emit *e);
void emit_ud2(struct emit *e);
void emit_int3(struct emit *e);

/* ---- SSE moves (XMM registers 0-15) ---- */
void emit_movdqu_xx(struct emit *e, int dst, int src);
void emit_movdqu_xm(struct emit *e, int x, struct hmem m);
void emit_movdqu_mx(struct emit *e, struct hmem m, int x);
void emit_movq_xx(struct emit *e, int dst, int src); /* zeroes dst[127:64] */
void emit_movq_xr(struct emit *e, int x, int r);
void emit_movq_rx(struct emit *e, int r, int x);
void emit_movq_xm(struct emit *e, int x, struct hmem m);
void emit_movq_mx(struct emit *e, struct hmem m, int x);
void emit_movd_xr(struct emit *e, int x, int r);
void emit_movd_rx(struct emit *e, int r, int x);
void emit_movd_xm(struct emit *e, int x, struct hmem m);
void emit_movd_mx(struct emit *e, struct hmem m, int x);

/* Any SSE instruction of the form op xmm, xmm/m128 [, imm8] (or op r32,
 * xmm for the _rx form, e.g. PMOVMSKB), given its mandatory prefix (0,
 * 0x66, 0xF2, 0xF3) and its opcode bytes from 0F on (0x0fef, 0x0f3a0f);
 * imm8 < 0: none. The translator copies guest SSE instructions with it. */
void emit_sse_xx(struct emit *e, uint8_t pfx, uint32_t opc, int dst, int src, int imm8);
void emit_sse_xm(struct emit *e, uint8_t pfx, uint32_t opc, int dst, struct hmem m, int imm8);
void emit_sse_rx(struct emit *e, uint8_t pfx, uint32_t opc, int r, int x, int imm8);

/* ---- control flow ----
 * The rel8/rel32 branches return a patch handle: the buffer offset of
 * their displacement field. target 0 leaves the displacement 0 (a branch
 * to the next instruction) for emit_bind_* or emit_patch_* to fill. */
size_t emit_jmp_rel32(struct emit *e, uintptr_t target);
size_t emit_jcc_rel32(struct emit *e, enum hcc cc, uintptr_t target);
size_t emit_call_rel32(struct emit *e, uintptr_t target);
size_t emit_jmp_rel8(struct emit *e, uintptr_t target);
size_t emit_jcc_rel8(struct emit *e, enum hcc cc, uintptr_t target);
/* Points the branch at `handle` to the current position. */
void emit_bind_rel32(struct emit *e, size_t handle);
void emit_bind_rel8(struct emit *e, size_t handle);
/* Points the rel32 branch at `handle` in this buffer to `target`. */
void emit_patch_local(struct emit *e, size_t handle, uintptr_t target);
/* Rewrites a rel32 field anywhere: written at field_rw, executed at
 * field_rx. 0, or -ERANGE if the target is beyond ±2 GiB. An aligned field
 * (see emit_align_rel32) is written with one atomic 4-byte store, so a
 * thread executing the branch meanwhile sees the old or the new target
 * (how other threads come to fetch the new bytes: code_cache.h). */
int emit_patch_rel32(uint8_t *field_rw, uintptr_t field_rx, uintptr_t target);
/* NOPs so that the rel32 field of a branch whose opcode is `opcode_len`
 * bytes (1 for JMP/CALL, 2 for Jcc) and that is emitted next is 4-byte
 * aligned, for atomic patching. */
void emit_align_rel32(struct emit *e, unsigned opcode_len);
/* Whether a rel32 displacement from `from` (the end of the instruction)
 * reaches `target`. */
bool emit_rel32_reaches(uintptr_t from, uintptr_t target);
/* To an absolute execute address: a rel32 JMP/CALL when it reaches from
 * where the code executes, else mov scratch, imm; jmp/call scratch. */
void emit_jmp_abs(struct emit *e, uintptr_t target, int scratch);
void emit_call_abs(struct emit *e, uintptr_t target, int scratch);
void emit_jmp_r(struct emit *e, int r);
void emit_call_r(struct emit *e, int r);
void emit_jmp_m(struct emit *e, struct hmem m);
void emit_call_m(struct emit *e, struct hmem m);

#endif
