/* Operands of the SSE-family groups (ops_sse.c, ops_ssse3.c, ops_sse4.c,
 * ops_mmx.c): XMM registers, 128-bit memory operands with the legacy-SSE
 * alignment rule (SDM vol. 1 §11.6.8: 16-byte operands must be aligned,
 * #GP(0) otherwise, checked before paging). */
#ifndef SHRIKE_ENGINE_SOFT_SSE_H
#define SHRIKE_ENGINE_SOFT_SSE_H

#include <string.h>

#include "engine/soft/fpu.h"

union xmm {
	uint8_t b[16];
	int8_t sb[16];
	uint16_t w[8];
	int16_t sw[8];
	uint32_t d[4];
	int32_t sd[4];
	uint64_t q[2];
	int64_t sq[2];
};

/* ---- operands ---- */

static inline void xmm_get(const struct soft_cpu *cpu, unsigned n, union xmm *v)
{
	memcpy(v, cpu->fpu.xmm[n & 15], 16);
}

static inline void xmm_set(struct soft_cpu *cpu, unsigned n, const union xmm *v)
{
	memcpy(cpu->fpu.xmm[n & 15], v, 16);
}

/* Linear address of the memory operand; legacy-SSE 16-byte operands
 * must be 16-byte aligned (#GP(0), checked before paging). */
static inline uint64_t sse_linear(struct soft_cpu *cpu, const struct insn *i, unsigned size,
			   enum access acc, bool aligned)
{
	uint64_t la = seg_linear(cpu, i->seg, insn_ea(cpu, i), size, acc);
	if (aligned && (la & 15))
		soft_gp(cpu, 0);
	return la;
}

/* The r/m source: the whole XMM register, or `size` bytes of memory
 * zero-extended to 128 bits. */
static inline void src_read(struct soft_cpu *cpu, const struct insn *i, unsigned size, bool aligned,
		     union xmm *v)
{
	if (i->mod == 3) {
		xmm_get(cpu, i->rm, v);
		return;
	}
	memset(v, 0, sizeof(*v));
	lin_read_bytes(cpu, sse_linear(cpu, i, size, ACC_READ, aligned), v, size);
}

/* The two-operand form: the SSE preconditions, then the r/m source s
 * (as src_read), then the ModRM.reg destination d. */
static inline void sse_operands(struct soft_cpu *cpu, const struct insn *i, unsigned size,
				bool aligned, union xmm *d, union xmm *s)
{
	fpu_check_sse(cpu);
	src_read(cpu, i, size, aligned, s);
	xmm_get(cpu, i->reg, d);
}

/* The r/m source of an MMX instruction: MMrm or `size` bytes of memory,
 * zero-extended (read before mmx_enter, so that a fault changes nothing). */
static inline uint64_t mmx_src(struct soft_cpu *cpu, const struct insn *i, unsigned size)
{
	if (i->mod == 3)
		return mmx_get(cpu, i->rm);
	return op_rm_read_mem(cpu, i, size);
}

/* The MMX two-operand form, in the low 8 bytes of d and s (the rest
 * zero): the MMX preconditions, the r/m source s (`size` bytes of
 * memory), the switch to MMX mode, then the MMreg destination d. */
static inline void mmx_operands(struct soft_cpu *cpu, const struct insn *i, unsigned size,
				union xmm *d, union xmm *s)
{
	memset(d, 0, sizeof(*d));
	memset(s, 0, sizeof(*s));
	mmx_check(cpu);
	s->q[0] = mmx_src(cpu, i, size);
	mmx_enter(cpu);
	d->q[0] = mmx_get(cpu, i->reg);
}

static inline void mem_write(struct soft_cpu *cpu, const struct insn *i, const void *v, unsigned size,
		      bool aligned)
{
	lin_write_bytes(cpu, sse_linear(cpu, i, size, ACC_WRITE, aligned), v, size);
}

/* The 16-byte loads xmm <- xmm/m128 (opcode-table handlers of ops_sse.c
 * that other groups share): MOVAPS, MOVDQA, MOVNTDQA with the alignment
 * rule, MOVUPS, MOVDQU, LDDQU without. */
void sse_load_aligned(struct soft_cpu *cpu, struct insn *i);
void sse_load_unaligned(struct soft_cpu *cpu, struct insn *i);

/* The sign bit of each `size`-byte element of the low `bytes` bytes of v,
 * element k in bit k (PMOVMSKB, MOVMSKPS/PD, the BLENDV selectors). */
static inline uint32_t sse_sign_mask(const union xmm *v, unsigned bytes, unsigned size)
{
	uint32_t m = 0;
	for (unsigned k = 0; k < bytes / size; k++)
		m |= (uint32_t)(v->b[k * size + size - 1] >> 7) << k;
	return m;
}

/* MASKMOVQ and MASKMOVDQU: the n bytes of v whose mask byte in m has its
 * top bit set go to DS:rDI (segment overridable). Every page of the n
 * bytes is checked for writing before the first byte is written, even
 * with an all-zero mask: the SDM leaves faults on masked-off bytes to the
 * implementation, and the processor raises them (checked on hardware). */
void sse_maskmov(struct soft_cpu *cpu, const struct insn *i, const union xmm *v,
		 const union xmm *m, unsigned n);

/* ---- packed-integer element operations (ops_sse.c), shared with the
 * MMX forms (ops_mmx.c) ---- */

/* Signed and unsigned saturation of a wider intermediate to 8 and 16 bits. */
static inline int8_t sat8s(int32_t v) { return (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v); }
static inline uint8_t sat8u(int32_t v) { return (uint8_t)(v > 255 ? 255 : v < 0 ? 0 : v); }
static inline int16_t sat16s(int32_t v)
{
	return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
}
static inline uint16_t sat16u(int32_t v) { return (uint16_t)(v > 65535 ? 65535 : v < 0 ? 0 : v); }

/* d = d OP s on the low `bytes` bytes of the operands: 16 for XMM, 8 for
 * MMX (the rest of d is then unspecified). */
typedef void (*pint_elem_fn)(union xmm *d, const union xmm *s, unsigned bytes);

/* The operation of 66 0F `opcode` (and of the MMX form 0F `opcode`), or
 * NULL when that opcode is not a packed-integer operation. */
pint_elem_fn sse_pint_fn(uint8_t opcode);

enum shift_kind { SH_LEFT, SH_RIGHT, SH_ARITH };

/* PSLL/PSRL/PSRA: shifts each `size`-byte element of the low `bytes`
 * bytes of v by `count`; counts beyond the element width clear it, or
 * fill it with its sign for arithmetic shifts. */
void sse_shift_elems(union xmm *v, unsigned bytes, unsigned size, enum shift_kind kind,
		     uint64_t count);

/* The element size and the kind of shift of PSRLW/D/Q, PSRAW/D and
 * PSLLW/D/Q by a register or memory count ((66) 0F D1-D3, E1-E2, F1-F3)... */
static inline unsigned pshift_size(uint8_t opcode)
{
	static const uint8_t sizes[4] = {0, 2, 4, 8};
	return sizes[opcode & 3];
}

static inline enum shift_kind pshift_kind(uint8_t opcode)
{
	return (opcode & 0xf0) == 0xf0 ? SH_LEFT : (opcode & 0xf0) == 0xe0 ? SH_ARITH : SH_RIGHT;
}

/* ... and of their immediate forms ((66) 0F 71/72/73 /2 /4 /6 ib). */
static inline unsigned pshift_imm_size(uint8_t opcode)
{
	return opcode == 0x71 ? 2 : opcode == 0x72 ? 4 : 8;
}

static inline enum shift_kind pshift_imm_kind(const struct insn *i)
{
	unsigned op = i->reg & 7;
	return op == 6 ? SH_LEFT : op == 4 ? SH_ARITH : SH_RIGHT;
}

/* General-purpose operand width of MOVD/MOVQ, CVTSI2SS, ...: 64 with
 * REX.W, otherwise 32 whatever the mode's operand size. */
static inline unsigned gpr_size(const struct insn *i) { return i->opsize == 8 ? 8 : 4; }

/* ---- SIMD floating point (ops_sse.c), also for SSE3 (ops_ssse3.c) and
 * SSE4.1 (ops_sse4.c) ----
 * Computed on the host's SSE unit with the guest's rounding mode, all
 * exceptions masked; the rules the host cannot be asked for (NaN
 * propagation, DAZ, FTZ, DE, exception precedence, #XM) are applied
 * around it: see the top of ops_sse.c. */

enum fp_op { FP_ADD, FP_SUB, FP_MUL, FP_DIV, FP_SQRT, FP_MIN, FP_MAX };

/* An IEEE binary interchange format: single (sse_f32) or double (sse_f64). */
struct fpfmt {
	unsigned bytes, mbits; /* size, explicit significand bits */
	uint64_t sign, exp, frac, quiet, indefinite;
};

extern const struct fpfmt sse_f32, sse_f64;

static inline bool fp_is_nan(const struct fpfmt *f, uint64_t a)
{
	return (a & f->exp) == f->exp && (a & f->frac);
}

static inline bool fp_is_snan(const struct fpfmt *f, uint64_t a)
{
	return fp_is_nan(f, a) && !(a & f->quiet);
}

static inline bool fp_is_denormal(const struct fpfmt *f, uint64_t a)
{
	return !(a & f->exp) && (a & f->frac);
}

/* Element k of v in format f. */
static inline uint64_t elem_get(const union xmm *v, const struct fpfmt *f, unsigned k)
{
	return f->bytes == 4 ? v->d[k] : v->q[k];
}

static inline void elem_set(union xmm *v, const struct fpfmt *f, unsigned k, uint64_t x)
{
	if (f->bytes == 4)
		v->d[k] = (uint32_t)x;
	else
		v->q[k] = x;
}

/* One SIMD floating-point instruction's context: the exceptions its
 * elements raised (MXCSR flag bits) and the guest's DAZ/FTZ; the host's
 * MXCSR holds the guest's rounding mode, all exceptions masked, from
 * sse_fp_begin to sse_fp_commit (saved and restored around the
 * computation, which does not fault). */
struct simd_fp {
	unsigned flags;
	bool daz, ftz;
	bool ue_unmasked, oe_unmasked;
	uint32_t host_saved;
};

void sse_fp_begin(struct soft_cpu *cpu, struct simd_fp *c);

/* Applies the exceptions raised since sse_fp_begin or the last check
 * (vol. 1 §11.5.1): with an unmasked pre-computation exception (IE, DE,
 * ZE) in any element only those flags are recorded, otherwise all are;
 * either way an unmasked one leaves the destination unchanged and raises
 * #XM, or #UD when the OS has not enabled #XM (CR4.OSXMMEXCPT), after
 * restoring the host's MXCSR. An instruction computed in stages (DPPS)
 * checks after each. */
void sse_fp_check(struct soft_cpu *cpu, struct simd_fp *c);

/* The last check, which also ends the computation: returns to commit the
 * result. */
void sse_fp_commit(struct soft_cpu *cpu, struct simd_fp *c);

/* Denormals-are-zero: a denormal source becomes a zero of its sign. */
static inline uint64_t fp_daz(const struct simd_fp *c, const struct fpfmt *f, uint64_t a)
{
	return c->daz && fp_is_denormal(f, a) ? a & f->sign : a;
}

/* ADD/SUB/MUL/DIV (a OP b) and SQRT (of b) on one element, as the SSE
 * arithmetic instructions compute it (between sse_fp_begin and
 * sse_fp_commit). */
uint64_t sse_fp_arith(struct simd_fp *c, const struct fpfmt *f, enum fp_op op, uint64_t a,
		      uint64_t b);

/* r[k] = a[k] op[k] b[k] over the four singles or, with dbl, the two
 * doubles, exactly as the SSE arithmetic instructions compute them (the
 * guest's rounding, DAZ/FTZ, NaN rules, MXCSR flags). An unmasked
 * exception raises #XM (or #UD) before returning: store r only after. */
void sse_fp_lanes(struct soft_cpu *cpu, bool dbl, const enum fp_op op[], const union xmm *a,
		  const union xmm *b, union xmm *r);

#endif
