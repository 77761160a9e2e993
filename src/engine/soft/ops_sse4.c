/* SSE4.1 and SSE4.2 (SDM vol. 1 §12.10-12.12, vol. 2 instruction pages),
 * including PCMPESTRx/PCMPISTRx and CRC32.
 *
 * All forms are the legacy-SSE encodings 66 0F 38 xx and 66 0F 3A xx ib
 * (CRC32: F2 0F 38 F0/F1). 16-byte memory operands must be 16-byte
 * aligned (#GP(0), vol. 2 table 2-21) except for PCMPxSTRx (their pages:
 * no #GP for a misaligned memory operand); the forms that read fewer
 * bytes (PMOVSX/ZX, ROUNDSS/SD, INSERTPS, PINSRx) have no alignment
 * requirement.
 *
 * Floating point (ROUND*, DPPS/DPPD) follows the conventions of ops_sse.c:
 * DAZ on inputs, FTZ on results, the first source's NaN wins and SNaNs are
 * quieted (vol. 1 table 4-7), the denormal flag only for denormal inputs
 * that survive DAZ, and unmasked exceptions leave the destination
 * unchanged and raise #XM (#UD without CR4.OSXMMEXCPT); the helpers are
 * those of ops_sse.c (sse.h). */
#include <string.h>

#include "engine/soft/sse.h"

/* ---- operands ---- */

/* A general-purpose or memory source of `size` bytes: a register source
 * is always read as r32/r64 and truncated (PINSRB takes the low byte of
 * r32, never AH-BH). */
static uint64_t gpr_or_mem_read(struct soft_cpu *cpu, const struct insn *i, unsigned size)
{
	if (i->mod == 3)
		return reg_read(cpu, i->rm, 8, true) & size_mask(size);
	return op_rm_read_mem(cpu, i, size);
}

/* The destination of PEXTRx/EXTRACTPS: `size` bytes of memory, or a
 * general register zero-extended (r32, or r64 with REX.W). */
static void gpr_or_mem_write(struct soft_cpu *cpu, const struct insn *i, unsigned size, uint64_t v)
{
	if (i->mod == 3)
		reg_write(cpu, i->rm, gpr_size(i), v & size_mask(size), true);
	else
		op_rm_write_mem(cpu, i, size, v);
}

/* ---- packed integer: d = d OP s ---- */

typedef void (*pint_fn)(union xmm *d, const union xmm *s);

static void pmulld(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 4; k++)
		d->d[k] *= s->d[k]; /* the low half of the product is sign-agnostic */
}

static void pmuldq(union xmm *d, const union xmm *s)
{
	int64_t lo = (int64_t)d->sd[0] * s->sd[0], hi = (int64_t)d->sd[2] * s->sd[2];
	d->sq[0] = lo;
	d->sq[1] = hi;
}

static void pminsb(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 16; k++)
		d->sb[k] = s->sb[k] < d->sb[k] ? s->sb[k] : d->sb[k];
}
static void pmaxsb(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 16; k++)
		d->sb[k] = s->sb[k] > d->sb[k] ? s->sb[k] : d->sb[k];
}
static void pminuw(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 8; k++)
		d->w[k] = s->w[k] < d->w[k] ? s->w[k] : d->w[k];
}
static void pmaxuw(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 8; k++)
		d->w[k] = s->w[k] > d->w[k] ? s->w[k] : d->w[k];
}
static void pminsd(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 4; k++)
		d->sd[k] = s->sd[k] < d->sd[k] ? s->sd[k] : d->sd[k];
}
static void pmaxsd(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 4; k++)
		d->sd[k] = s->sd[k] > d->sd[k] ? s->sd[k] : d->sd[k];
}
static void pminud(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 4; k++)
		d->d[k] = s->d[k] < d->d[k] ? s->d[k] : d->d[k];
}
static void pmaxud(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 4; k++)
		d->d[k] = s->d[k] > d->d[k] ? s->d[k] : d->d[k];
}

static void pcmpeqq(union xmm *d, const union xmm *s)
{
	for (int k = 0; k < 2; k++)
		d->q[k] = d->q[k] == s->q[k] ? ~0ULL : 0;
}

static void pcmpgtq(union xmm *d, const union xmm *s) /* SSE4.2 */
{
	for (int k = 0; k < 2; k++)
		d->q[k] = d->sq[k] > s->sq[k] ? ~0ULL : 0;
}

static void packusdw(union xmm *d, const union xmm *s)
{
	union xmm r;
	for (int k = 0; k < 4; k++) {
		r.w[k] = sat16u(d->sd[k]);
		r.w[k + 4] = sat16u(s->sd[k]);
	}
	*d = r;
}

/* PHMINPOSUW: the smallest unsigned word of the source and the index of
 * its first occurrence (bits 18:16); the rest of the destination is 0. */
static void phminposuw(union xmm *d, const union xmm *s)
{
	unsigned idx = 0;
	for (unsigned k = 1; k < 8; k++)
		if (s->w[k] < s->w[idx])
			idx = k;
	memset(d, 0, sizeof(*d));
	d->w[0] = s->w[idx];
	d->w[1] = (uint16_t)idx;
}

static const pint_fn pint_ops[256] = {
    [0x28] = pmuldq, [0x29] = pcmpeqq, [0x2b] = packusdw, [0x37] = pcmpgtq,
    [0x38] = pminsb, [0x39] = pminsd, [0x3a] = pminuw, [0x3b] = pminud,
    [0x3c] = pmaxsb, [0x3d] = pmaxsd, [0x3e] = pmaxuw, [0x3f] = pmaxud,
    [0x40] = pmulld, [0x41] = phminposuw,
};

static void pint_op(struct soft_cpu *cpu, struct insn *i) /* 66 0F 38 xx */
{
	union xmm d, s;
	sse_operands(cpu, i, 16, true, &d, &s);
	pint_ops[i->opcode](&d, &s);
	xmm_set(cpu, i->reg, &d);
}

/* ---- blends ---- */

/* Element k (of `size` bytes) of d becomes that of s where bit k of sel is set. */
static void blend(union xmm *d, const union xmm *s, unsigned size, uint32_t sel)
{
	for (unsigned k = 0; k < 16 / size; k++)
		if (sel & (1u << k))
			memcpy(&d->b[k * size], &s->b[k * size], size);
}

/* BLENDPS (0C), BLENDPD (0D), PBLENDW (0E) with an immediate selector. */
static void blend_imm(struct soft_cpu *cpu, struct insn *i)
{
	static const uint8_t sizes[3] = {4, 8, 2};
	union xmm d, s;
	sse_operands(cpu, i, 16, true, &d, &s);
	blend(&d, &s, sizes[i->opcode - 0x0c], (uint32_t)i->imm);
	xmm_set(cpu, i->reg, &d);
}

/* PBLENDVB (10), BLENDVPS (14), BLENDVPD (15): the selector is the sign
 * of each element of the implicit XMM0. Bitwise: no FP exceptions. */
static void blend_var(struct soft_cpu *cpu, struct insn *i)
{
	unsigned size = i->opcode == 0x10 ? 1 : i->opcode == 0x14 ? 4 : 8;
	union xmm d, s, m;
	sse_operands(cpu, i, 16, true, &d, &s);
	xmm_get(cpu, 0, &m);
	blend(&d, &s, size, sse_sign_mask(&m, 16, size));
	xmm_set(cpu, i->reg, &d);
}

/* ---- PMOVSX / PMOVZX (66 0F 38 20-25, 30-35) ---- */

static void pmovx(struct soft_cpu *cpu, struct insn *i)
{
	static const struct { uint8_t from, to; } forms[6] = {
	    {1, 2}, {1, 4}, {1, 8}, {2, 4}, {2, 8}, {4, 8}, /* BW BD BQ WD WQ DQ */
	};
	unsigned from = forms[i->opcode & 7].from, to = forms[i->opcode & 7].to;
	unsigned n = 16 / to;
	bool sign = i->opcode < 0x30;
	union xmm s, r;
	fpu_check_sse(cpu);
	src_read(cpu, i, from * n, false, &s); /* reads only what it uses */
	for (unsigned k = 0; k < n; k++) {
		uint64_t e = 0;
		memcpy(&e, &s.b[k * from], from);
		if (sign)
			e = (uint64_t)sign_extend(e, from);
		memcpy(&r.b[k * to], &e, to);
	}
	xmm_set(cpu, i->reg, &r);
}

/* ---- PTEST (66 0F 38 17) ---- */

/* ZF = (d AND s) == 0, CF = (NOT d AND s) == 0; AF, OF, PF, SF = 0. */
static void ptest(struct soft_cpu *cpu, struct insn *i)
{
	union xmm d, s;
	sse_operands(cpu, i, 16, true, &d, &s);
	uint64_t fl = flags_get(cpu) & ~FLAGS_ARITH;
	if (((d.q[0] & s.q[0]) | (d.q[1] & s.q[1])) == 0)
		fl |= FLAG_ZF;
	if (((~d.q[0] & s.q[0]) | (~d.q[1] & s.q[1])) == 0)
		fl |= FLAG_CF;
	flags_put(cpu, fl);
}

/* ---- MPSADBW (66 0F 3A 42) ---- */

/* Eight sums of absolute differences between a sliding 4-byte window of
 * the destination (starting at byte 4 * imm8[2]) and the source dword
 * imm8[1:0]. */
static void mpsadbw(struct soft_cpu *cpu, struct insn *i)
{
	union xmm d, s, r;
	sse_operands(cpu, i, 16, true, &d, &s);
	unsigned so = (unsigned)(i->imm & 3) * 4, dof = (unsigned)((i->imm >> 2) & 1) * 4;
	for (unsigned j = 0; j < 8; j++) {
		unsigned sum = 0;
		for (unsigned k = 0; k < 4; k++) {
			int diff = d.b[dof + j + k] - s.b[so + k];
			sum += (unsigned)(diff < 0 ? -diff : diff);
		}
		r.w[j] = (uint16_t)sum;
	}
	xmm_set(cpu, i->reg, &r);
}

/* ---- insertion and extraction ---- */

/* PEXTRB (14), PEXTRW (15), PEXTRD/PEXTRQ (16, REX.W), EXTRACTPS (17):
 * r/m <- element imm8 of the ModRM.reg register. */
static void pextr(struct soft_cpu *cpu, struct insn *i)
{
	unsigned size = i->opcode == 0x14 ? 1 : i->opcode == 0x15 ? 2 : 4;
	if (i->opcode == 0x16 && i->opsize == 8)
		size = 8;
	union xmm v;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->reg, &v);
	uint64_t e = 0;
	memcpy(&e, &v.b[(i->imm & (16 / size - 1)) * size], size);
	gpr_or_mem_write(cpu, i, size, e);
}

/* PINSRB (20), PINSRD/PINSRQ (22, REX.W): element imm8 <- r/m. */
static void pinsr(struct soft_cpu *cpu, struct insn *i)
{
	unsigned size = i->opcode == 0x20 ? 1 : i->opsize == 8 ? 8 : 4;
	union xmm d;
	fpu_check_sse(cpu);
	uint64_t e = gpr_or_mem_read(cpu, i, size);
	xmm_get(cpu, i->reg, &d);
	memcpy(&d.b[(i->imm & (16 / size - 1)) * size], &e, size);
	xmm_set(cpu, i->reg, &d);
}

/* INSERTPS (21): dword imm8[5:4] <- source dword imm8[7:6] (a memory
 * source is one dword), then the dwords in imm8[3:0] are zeroed. */
static void insertps(struct soft_cpu *cpu, struct insn *i)
{
	union xmm d, s;
	sse_operands(cpu, i, 4, false, &d, &s);
	d.d[(i->imm >> 4) & 3] = s.d[i->mod == 3 ? (i->imm >> 6) & 3 : 0];
	for (unsigned k = 0; k < 4; k++)
		if (i->imm & (1u << k))
			d.d[k] = 0;
	xmm_set(cpu, i->reg, &d);
}

/* ---- floating point ---- */

/* ROUNDPS/PD/SS/SD on one element, in integer arithmetic: `mode` is the
 * MXCSR.RC encoding (0 nearest-even, 1 down, 2 up, 3 toward zero). A
 * result of zero keeps the source's sign. Sets *inexact. */
static uint64_t round_integral(const struct fpfmt *f, uint64_t a, unsigned mode, bool *inexact)
{
	unsigned bias = (unsigned)(f->exp >> (f->mbits + 1));
	unsigned e = (unsigned)((a & f->exp) >> f->mbits);
	uint64_t sign = a & f->sign, mag = a & ~f->sign;
	bool neg = sign != 0;
	*inexact = false;
	if (e >= bias + f->mbits || mag == 0)
		return a; /* already integral (and infinities) */
	*inexact = true;
	if (e < bias) { /* 0 < |a| < 1: 0 or 1 */
		bool one;
		switch (mode) {
		case 0: one = e == bias - 1 && (a & f->frac); break; /* above one half */
		case 1: one = neg; break;
		case 2: one = !neg; break;
		default: one = false; break;
		}
		return sign | (one ? (uint64_t)bias << f->mbits : 0);
	}
	unsigned fbits = f->mbits - (e - bias); /* fraction bits below the binary point */
	uint64_t mask = (1ULL << fbits) - 1, rem = mag & mask, half = 1ULL << (fbits - 1);
	if (rem == 0) {
		*inexact = false;
		return a;
	}
	uint64_t t = mag & ~mask;
	bool up;
	switch (mode) {
	case 0: up = rem > half || (rem == half && ((t >> fbits) & 1)); break;
	case 1: up = neg; break;
	case 2: up = !neg; break;
	default: up = false; break;
	}
	if (up)
		t += 1ULL << fbits; /* a carry into the exponent is the next power of two */
	return sign | t;
}

/* One element of ROUNDxx in rounding `mode`: SNaN -> QNaN with IE; PE
 * when inexact unless imm8[3] suppresses it; DAZ applies; DE is never
 * signalled (vol. 2 ROUNDPS "SIMD Floating-Point Exceptions"). */
static uint64_t fp_round(struct simd_fp *c, const struct fpfmt *f, uint64_t a, unsigned mode,
			 uint8_t imm)
{
	bool inexact;
	if (fp_is_nan(f, a)) {
		if (fp_is_snan(f, a))
			c->flags |= MXCSR_IE;
		return a | f->quiet;
	}
	uint64_t r = round_integral(f, fp_daz(c, f, a), mode, &inexact);
	if (inexact && !(imm & 8))
		c->flags |= MXCSR_PE;
	return r;
}

/* ROUNDPS (08), ROUNDPD (09), ROUNDSS (0A), ROUNDSD (0B): the scalar
 * forms read 4/8 bytes and keep the destination's upper elements.
 * imm8[2] selects MXCSR.RC over imm8[1:0]. */
static void round_op(struct soft_cpu *cpu, struct insn *i)
{
	const struct fpfmt *f = (i->opcode & 1) ? &sse_f64 : &sse_f32;
	bool scalar = i->opcode >= 0x0a;
	unsigned n = scalar ? 1 : 16 / f->bytes;
	uint8_t imm = (uint8_t)i->imm;
	unsigned mode = (imm & 4) ? (cpu->fpu.mxcsr & MXCSR_RC) >> MXCSR_RC_SHIFT : imm & 3;
	union xmm d, s;
	struct simd_fp c;
	sse_operands(cpu, i, scalar ? f->bytes : 16, !scalar, &d, &s);
	if (!scalar)
		d = s;
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < n; k++)
		elem_set(&d, f, k, fp_round(&c, f, elem_get(&s, f, k), mode, imm));
	sse_fp_commit(cpu, &c);
	xmm_set(cpu, i->reg, &d);
}

/* DPPS (40) and DPPD (41), as the SDM's operation section computes them:
 * the products selected by imm8[7:4] (others +0.0), summed pairwise
 * (DPPS: (p0 + p1) + (p2 + p3)), the sum stored in the elements selected
 * by imm8[3:0] (others +0.0). The multiplies and adds are those of
 * MULPS/ADDPS; each stage's exceptions are checked before the next stage
 * (an unmasked one stops the instruction there). */
static void dpp(struct soft_cpu *cpu, struct insn *i)
{
	const struct fpfmt *f = i->opcode == 0x40 ? &sse_f32 : &sse_f64;
	unsigned n = 16 / f->bytes;
	union xmm d, s, r;
	uint64_t p[4], sum;
	struct simd_fp c;
	sse_operands(cpu, i, 16, true, &d, &s);
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < n; k++) {
		bool on = i->imm & (0x10u << k);
		p[k] = on ? sse_fp_arith(&c, f, FP_MUL, elem_get(&d, f, k), elem_get(&s, f, k))
			  : 0; /* +0.0 */
	}
	sse_fp_check(cpu, &c);
	if (n == 4) {
		uint64_t lo = sse_fp_arith(&c, f, FP_ADD, p[0], p[1]);
		uint64_t hi = sse_fp_arith(&c, f, FP_ADD, p[2], p[3]);
		sse_fp_check(cpu, &c);
		sum = sse_fp_arith(&c, f, FP_ADD, lo, hi);
	} else {
		sum = sse_fp_arith(&c, f, FP_ADD, p[0], p[1]);
	}
	sse_fp_commit(cpu, &c);
	for (unsigned k = 0; k < n; k++)
		elem_set(&r, f, k, (i->imm & (1u << k)) ? sum : 0);
	xmm_set(cpu, i->reg, &r);
}

/* ---- SSE4.2: packed compare explicit/implicit length strings ---- */

/* PCMPESTRM (60), PCMPESTRI (61), PCMPISTRM (62), PCMPISTRI (63): SDM
 * vol. 2 §4.1. imm8[1:0] the element format (unsigned bytes, unsigned
 * words, signed bytes, signed words), imm8[3:2] the aggregation,
 * imm8[5:4] the polarity, imm8[6] the output form. The first operand
 * (xmm1, "a") holds the set, ranges or needle; the second (xmm2/m128,
 * "b") the text. */
enum { AGG_EQUAL_ANY, AGG_RANGES, AGG_EQUAL_EACH, AGG_EQUAL_ORDERED };

struct strcmp_ops {
	unsigned n;      /* elements: 16 bytes or 8 words */
	unsigned la, lb; /* valid elements of a and b */
	int32_t a[16], b[16];
};

static void str_elems(const union xmm *v, uint8_t imm, int32_t *out)
{
	bool words = imm & 1, sign = imm & 2;
	for (unsigned k = 0; k < (words ? 8u : 16u); k++) {
		if (words)
			out[k] = sign ? v->sw[k] : v->w[k];
		else
			out[k] = sign ? v->sb[k] : v->b[k];
	}
}

/* Implicit length: up to the first null element. */
static unsigned str_implicit_len(const int32_t *e, unsigned n)
{
	unsigned k = 0;
	while (k < n && e[k] != 0)
		k++;
	return k;
}

/* Explicit length: the absolute value of EAX/EDX (RAX/RDX with REX.W)
 * saturated to the element count. */
static unsigned str_explicit_len(uint64_t r, bool wide, unsigned n)
{
	int64_t v = wide ? (int64_t)r : (int64_t)(int32_t)r;
	uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	return mag > n ? n : (unsigned)mag;
}

/* IntRes1 (SDM table 4-7 for invalid elements: equal any and ranges never
 * match an invalid element; equal each matches two invalid elements;
 * equal ordered matches past the end of the needle). */
static uint32_t str_intres1(const struct strcmp_ops *o, unsigned agg)
{
	uint32_t vb = (1u << o->lb) - 1, res = 0;
	switch (agg) {
	case AGG_EQUAL_ANY:
		for (unsigned i = 0; i < o->lb; i++)
			for (unsigned j = 0; j < o->la; j++)
				if (o->a[j] == o->b[i])
					res |= 1u << i;
		return res;
	case AGG_RANGES: /* a[j] <= b[i] <= a[j + 1] for an even j */
		for (unsigned i = 0; i < o->lb; i++)
			for (unsigned j = 0; j + 1 < o->la; j += 2)
				if (o->b[i] >= o->a[j] && o->b[i] <= o->a[j + 1])
					res |= 1u << i;
		return res & vb;
	case AGG_EQUAL_EACH:
		for (unsigned i = 0; i < o->n; i++) {
			bool va = i < o->la, vbi = i < o->lb;
			if (va ? vbi && o->a[i] == o->b[i] : !vbi)
				res |= 1u << i;
		}
		return res;
	default: /* equal ordered: the needle a starts at position j of b */
		for (unsigned j = 0; j < o->n; j++) {
			bool match = true;
			for (unsigned k = 0; k < o->la && j + k < o->n && match; k++)
				match = j + k < o->lb && o->a[k] == o->b[j + k];
			if (match)
				res |= 1u << j;
		}
		return res;
	}
}

/* IntRes2: the polarity applied to IntRes1 (imm8[5:4]: positive,
 * negative, masked positive, masked negative = negate valid b only). */
static uint32_t str_intres2(const struct strcmp_ops *o, uint32_t res1, uint8_t imm)
{
	uint32_t all = (1u << o->n) - 1, vb = (1u << o->lb) - 1;
	switch ((imm >> 4) & 3) {
	case 1: return ~res1 & all;
	case 3: return res1 ^ vb;
	default: return res1;
	}
}

static void pcmpstr(struct soft_cpu *cpu, struct insn *i)
{
	uint8_t imm = (uint8_t)i->imm;
	bool explicit_len = i->opcode < 0x62, index = i->opcode & 1;
	struct strcmp_ops o;
	union xmm a, b;
	sse_operands(cpu, i, 16, false, &a, &b);
	o.n = (imm & 1) ? 8 : 16;
	str_elems(&a, imm, o.a);
	str_elems(&b, imm, o.b);
	if (explicit_len) {
		bool wide = i->opsize == 8;
		o.la = str_explicit_len(cpu->s.gpr[GPR_RAX], wide, o.n);
		o.lb = str_explicit_len(cpu->s.gpr[GPR_RDX], wide, o.n);
	} else {
		o.la = str_implicit_len(o.a, o.n);
		o.lb = str_implicit_len(o.b, o.n);
	}
	uint32_t res = str_intres2(&o, str_intres1(&o, (imm >> 2) & 3), imm);

	uint64_t fl = flags_get(cpu) & ~FLAGS_ARITH;
	fl |= res ? FLAG_CF : 0;
	fl |= o.lb < o.n ? FLAG_ZF : 0;
	fl |= o.la < o.n ? FLAG_SF : 0;
	fl |= (res & 1) ? FLAG_OF : 0;
	if (index) {
		unsigned idx = o.n;
		if (res)
			idx = (imm & 0x40) ? 31u - (unsigned)__builtin_clz(res)
					   : (unsigned)__builtin_ctz(res);
		reg_write(cpu, GPR_RCX, 4, idx, true);
	} else {
		union xmm m = {{0}};
		if (imm & 0x40) { /* a byte/word mask */
			unsigned size = 16 / o.n;
			for (unsigned k = 0; k < o.n; k++)
				if (res & (1u << k))
					memset(&m.b[k * size], 0xff, size);
		} else {
			m.d[0] = res;
		}
		xmm_set(cpu, 0, &m);
	}
	flags_put(cpu, fl);
}

/* ---- SSE4.2: CRC32 (F2 0F 38 F0 /r, F2 0F 38 F1 /r) ---- */

/* CRC-32C (Castagnoli, polynomial 11EDC6F41H) in the bit-reflected form
 * of the SDM's operation section, without initial or final inversion:
 * the data bytes in memory order, least significant bit first. */
static uint32_t crc32c(uint32_t crc, uint64_t data, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++) {
		crc ^= (uint8_t)(data >> (8 * k));
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return crc;
}

/* The source is r/m8 (F0) or r/m16/32/64 by operand size (F1: 66 gives
 * 16, REX.W 64); the destination is r32, or r64 with REX.W, whose upper
 * half becomes zero. Not an SSE instruction: no CR0/CR4 checks. */
static void crc32(struct soft_cpu *cpu, struct insn *i)
{
	unsigned size = i->opcode == 0xf0 ? 1 : i->opsize;
	uint64_t src = op_rm_read(cpu, i, size);
	uint32_t crc = (uint32_t)reg_read(cpu, i->reg, 4, true);
	reg_write(cpu, i->reg, gpr_size(i), crc32c(crc, src, size), true);
}

/* ---- the opcode table ---- */

#define M OPF_MODRM
#define I8 OPF_IMM8
#define MEM OPF_MODMEM
#define X38(op, fl, name, fn) {OPMAP_0F38, (op), -1, -1, PFX_66, M | (fl), (name), (fn)}
#define X3A(op, fl, name, fn) {OPMAP_0F3A, (op), -1, -1, PFX_66, M | I8 | (fl), (name), (fn)}

const struct opdef soft_ops_sse4[] = {
    /* SSE4.1, 66 0F 38 */
    X38(0x10, 0, "pblendvb", blend_var),
    X38(0x14, 0, "blendvps", blend_var),
    X38(0x15, 0, "blendvpd", blend_var),
    X38(0x17, 0, "ptest", ptest),
    X38(0x20, 0, "pmovsxbw", pmovx),
    X38(0x21, 0, "pmovsxbd", pmovx),
    X38(0x22, 0, "pmovsxbq", pmovx),
    X38(0x23, 0, "pmovsxwd", pmovx),
    X38(0x24, 0, "pmovsxwq", pmovx),
    X38(0x25, 0, "pmovsxdq", pmovx),
    X38(0x28, 0, "pmuldq", pint_op),
    X38(0x29, 0, "pcmpeqq", pint_op),
    /* MOVNTDQA (memory only): an aligned load; the streaming hint changes
     * nothing for a CPU without caches. */
    X38(0x2a, MEM, "movntdqa", sse_load_aligned),
    X38(0x2b, 0, "packusdw", pint_op),
    X38(0x30, 0, "pmovzxbw", pmovx),
    X38(0x31, 0, "pmovzxbd", pmovx),
    X38(0x32, 0, "pmovzxbq", pmovx),
    X38(0x33, 0, "pmovzxwd", pmovx),
    X38(0x34, 0, "pmovzxwq", pmovx),
    X38(0x35, 0, "pmovzxdq", pmovx),
    X38(0x38, 0, "pminsb", pint_op),
    X38(0x39, 0, "pminsd", pint_op),
    X38(0x3a, 0, "pminuw", pint_op),
    X38(0x3b, 0, "pminud", pint_op),
    X38(0x3c, 0, "pmaxsb", pint_op),
    X38(0x3d, 0, "pmaxsd", pint_op),
    X38(0x3e, 0, "pmaxuw", pint_op),
    X38(0x3f, 0, "pmaxud", pint_op),
    X38(0x40, 0, "pmulld", pint_op),
    X38(0x41, 0, "phminposuw", pint_op),
    /* SSE4.1, 66 0F 3A ib */
    X3A(0x08, 0, "roundps", round_op),
    X3A(0x09, 0, "roundpd", round_op),
    X3A(0x0a, 0, "roundss", round_op),
    X3A(0x0b, 0, "roundsd", round_op),
    X3A(0x0c, 0, "blendps", blend_imm),
    X3A(0x0d, 0, "blendpd", blend_imm),
    X3A(0x0e, 0, "pblendw", blend_imm),
    X3A(0x14, 0, "pextrb", pextr),
    X3A(0x15, 0, "pextrw", pextr),
    X3A(0x16, 0, "pextrd/pextrq", pextr),
    X3A(0x17, 0, "extractps", pextr),
    X3A(0x20, 0, "pinsrb", pinsr),
    X3A(0x21, 0, "insertps", insertps),
    X3A(0x22, 0, "pinsrd/pinsrq", pinsr),
    X3A(0x40, 0, "dpps", dpp),
    X3A(0x41, 0, "dppd", dpp),
    X3A(0x42, 0, "mpsadbw", mpsadbw),
    /* SSE4.2 */
    X38(0x37, 0, "pcmpgtq", pint_op),
    X3A(0x60, 0, "pcmpestrm", pcmpstr),
    X3A(0x61, 0, "pcmpestri", pcmpstr),
    X3A(0x62, 0, "pcmpistrm", pcmpstr),
    X3A(0x63, 0, "pcmpistri", pcmpstr),
    {OPMAP_0F38, 0xf0, -1, -1, PFX_F2, M, "crc32", crc32},
    {OPMAP_0F38, 0xf1, -1, -1, PFX_F2, M, "crc32", crc32},
    OPDEF_END,
};
