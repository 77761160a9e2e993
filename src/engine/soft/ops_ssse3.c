/* SSE3 and SSSE3 (SDM vol. 1 §12.1-12.4, vol. 2 instruction pages),
 * in their XMM forms and, for SSSE3, their MMX forms.
 *
 * SSE3 here is the XMM part: ADDSUBPS/PD, HADDPS/PD, HSUBPS/PD, LDDQU,
 * MOVDDUP, MOVSHDUP, MOVSLDUP (FISTTP lives with the x87 group; MONITOR
 * and MWAIT are not implemented and decode as #UD). Its arithmetic is
 * the SSE arithmetic of ops_sse.c (sse_fp_lanes) on rearranged operands:
 * a horizontal sum takes the lower element as its first operand, which
 * decides which of two NaNs comes out (checked on hardware).
 *
 * SSSE3's packed-integer operations are written once over a 16-byte
 * (XMM, 66 prefix) or 8-byte (MMX, no prefix) vector held in the low
 * bytes of a union xmm. The MMX forms follow the MMX rules of fpu.h:
 * #UD with CR0.EM, #NM with CR0.TS, #MF with a pending x87 exception,
 * 8-byte memory operands with no alignment requirement; their XMM forms
 * need 16-byte-aligned memory operands (#GP(0)). */
#include "engine/soft/sse.h"

/* ---- SSE3 ---- */

/* ADDSUBPD (66 0F D0), ADDSUBPS (F2 0F D0): subtract in the even
 * elements, add in the odd ones. */
static void addsub(struct soft_cpu *cpu, struct insn *i)
{
	static const enum fp_op ops[4] = {FP_SUB, FP_ADD, FP_SUB, FP_ADD};
	bool dbl = i->def->prefix == PFX_66;
	union xmm d, s, r;
	sse_operands(cpu, i, 16, true, &d, &s);
	sse_fp_lanes(cpu, dbl, ops, &d, &s, &r);
	xmm_set(cpu, i->reg, &r);
}

/* HADDPD/HSUBPD (66 0F 7C/7D), HADDPS/HSUBPS (F2 0F 7C/7D): the sums
 * (differences) of adjacent element pairs, the destination's pairs in
 * the low half of the result and the source's in the high half. */
static void hfp(struct soft_cpu *cpu, struct insn *i)
{
	bool dbl = i->def->prefix == PFX_66;
	enum fp_op op = i->opcode == 0x7c ? FP_ADD : FP_SUB;
	const enum fp_op ops[4] = {op, op, op, op};
	union xmm d, s, lo, hi, r;
	sse_operands(cpu, i, 16, true, &d, &s);
	if (dbl) {
		lo.q[0] = d.q[0], hi.q[0] = d.q[1];
		lo.q[1] = s.q[0], hi.q[1] = s.q[1];
	} else {
		for (unsigned k = 0; k < 2; k++) {
			lo.d[k] = d.d[2 * k], hi.d[k] = d.d[2 * k + 1];
			lo.d[k + 2] = s.d[2 * k], hi.d[k + 2] = s.d[2 * k + 1];
		}
	}
	sse_fp_lanes(cpu, dbl, ops, &lo, &hi, &r);
	xmm_set(cpu, i->reg, &r);
}

/* MOVDDUP (F2 0F 12): the low double of xmm/m64, twice. */
static void movddup(struct soft_cpu *cpu, struct insn *i)
{
	union xmm v;
	fpu_check_sse(cpu);
	src_read(cpu, i, 8, false, &v);
	v.q[1] = v.q[0];
	xmm_set(cpu, i->reg, &v);
}

/* MOVSLDUP (F3 0F 12) duplicates the even singles of xmm/m128, MOVSHDUP
 * (F3 0F 16) the odd ones. */
static void movsdup(struct soft_cpu *cpu, struct insn *i)
{
	unsigned odd = i->opcode == 0x16;
	union xmm v;
	fpu_check_sse(cpu);
	src_read(cpu, i, 16, true, &v);
	for (unsigned k = 0; k < 4; k += 2)
		v.d[k] = v.d[k + 1] = v.d[k + odd];
	xmm_set(cpu, i->reg, &v);
}

/* ---- SSSE3 operations on n-byte vectors (n = 16 or 8): d = d OP s ---- */

typedef void (*vec_fn)(union xmm *d, const union xmm *s, unsigned n, uint8_t imm);

/* PSHUFB: each byte takes the destination byte its selector indexes
 * (the low 4 bits, 3 for MMX), or zero when the selector's top bit is set. */
static void pshufb(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	union xmm r = {{0}};
	(void)imm;
	for (unsigned k = 0; k < n; k++)
		r.b[k] = (s->b[k] & 0x80) ? 0 : d->b[s->b[k] & (n - 1)];
	*d = r;
}

enum hop { H_ADD, H_ADDS, H_SUB, H_SUBS };

static int32_t hop_apply(enum hop op, int32_t a, int32_t b)
{
	switch (op) {
	case H_ADD: return a + b;
	case H_ADDS: return sat16s(a + b);
	case H_SUB: return a - b;
	default: return sat16s(a - b);
	}
}

/* Horizontal word operations: the destination's adjacent pairs fill the
 * low half of the result, the source's the high half. */
static void hop_words(union xmm *d, const union xmm *s, unsigned n, enum hop op)
{
	union xmm r = {{0}};
	unsigned half = n / 4; /* pairs per operand */
	for (unsigned k = 0; k < half; k++) {
		r.w[k] = (uint16_t)hop_apply(op, d->sw[2 * k], d->sw[2 * k + 1]);
		r.w[k + half] = (uint16_t)hop_apply(op, s->sw[2 * k], s->sw[2 * k + 1]);
	}
	*d = r;
}

/* Doubleword sums and differences wrap: computed in unsigned arithmetic. */
static void hop_dwords(union xmm *d, const union xmm *s, unsigned n, bool sub)
{
	union xmm r = {{0}};
	unsigned half = n / 8;
	for (unsigned k = 0; k < half; k++) {
		r.d[k] = sub ? d->d[2 * k] - d->d[2 * k + 1] : d->d[2 * k] + d->d[2 * k + 1];
		r.d[k + half] = sub ? s->d[2 * k] - s->d[2 * k + 1] : s->d[2 * k] + s->d[2 * k + 1];
	}
	*d = r;
}

static void phaddw(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	hop_words(d, s, n, H_ADD);
}
static void phaddsw(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	hop_words(d, s, n, H_ADDS);
}
static void phsubw(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	hop_words(d, s, n, H_SUB);
}
static void phsubsw(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	hop_words(d, s, n, H_SUBS);
}
static void phaddd(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	hop_dwords(d, s, n, false);
}
static void phsubd(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	hop_dwords(d, s, n, true);
}

/* PMADDUBSW: unsigned destination bytes times signed source bytes, the
 * adjacent products added with signed saturation. */
static void pmaddubsw(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	for (unsigned k = 0; k < n / 2; k++)
		d->sw[k] = sat16s(d->b[2 * k] * s->sb[2 * k] + d->b[2 * k + 1] * s->sb[2 * k + 1]);
}

/* PMULHRSW: bits 30-15 of the 32-bit product, rounded (SDM: ((a*b >> 14)
 * + 1) >> 1); -32768 * -32768 gives 0x8000. */
static void pmulhrsw(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	for (unsigned k = 0; k < n / 2; k++) {
		int32_t p = d->sw[k] * s->sw[k];
		d->w[k] = (uint16_t)(((p >> 14) + 1) >> 1);
	}
}

/* PSIGNB/W/D: negate (wrapping), keep or zero each destination element
 * by the sign of the source element. */
static void psign(union xmm *d, const union xmm *s, unsigned n, unsigned size)
{
	for (unsigned k = 0; k < n / size; k++) {
		int64_t sv = 0;
		uint64_t dv = 0;
		memcpy(&dv, &d->b[k * size], size);
		memcpy(&sv, &s->b[k * size], size);
		sv = sign_extend((uint64_t)sv, size);
		dv = sv < 0 ? 0 - dv : sv == 0 ? 0 : dv;
		memcpy(&d->b[k * size], &dv, size);
	}
}

static void psignb(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	psign(d, s, n, 1);
}
static void psignw(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	psign(d, s, n, 2);
}
static void psignd(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	psign(d, s, n, 4);
}

/* PABSB/W/D: the absolute value of each source element as an unsigned
 * number (the most negative value stays 0x80...). */
static void pabs(union xmm *d, const union xmm *s, unsigned n, unsigned size)
{
	for (unsigned k = 0; k < n / size; k++) {
		uint64_t v = 0;
		memcpy(&v, &s->b[k * size], size);
		if (sign_extend(v, size) < 0)
			v = 0 - v;
		memcpy(&d->b[k * size], &v, size);
	}
}

static void pabsb(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	pabs(d, s, n, 1);
}
static void pabsw(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	pabs(d, s, n, 2);
}
static void pabsd(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	(void)imm;
	pabs(d, s, n, 4);
}

/* PALIGNR: the destination:source concatenation (source in the low
 * bytes) shifted right by imm bytes; shifts of 2n bytes or more give zero. */
static void palignr(union xmm *d, const union xmm *s, unsigned n, uint8_t imm)
{
	uint8_t cat[32];
	union xmm r = {{0}};
	memcpy(cat, s->b, n);
	memcpy(cat + n, d->b, n);
	for (unsigned k = 0; k < n; k++)
		r.b[k] = imm + k < 2 * n ? cat[imm + k] : 0;
	*d = r;
}

static const vec_fn map38_ops[0x20] = {
    [0x00] = pshufb, [0x01] = phaddw, [0x02] = phaddd, [0x03] = phaddsw,
    [0x04] = pmaddubsw, [0x05] = phsubw, [0x06] = phsubd, [0x07] = phsubsw,
    [0x08] = psignb, [0x09] = psignw, [0x0a] = psignd, [0x0b] = pmulhrsw,
    [0x1c] = pabsb, [0x1d] = pabsw, [0x1e] = pabsd,
};

static vec_fn vec_op(const struct insn *i)
{
	return i->map == OPMAP_0F3A ? palignr : map38_ops[i->opcode & 0x1f];
}

/* 66 0F 38 00-0B, 1C-1E; 66 0F 3A 0F ib. */
static void ssse3_xmm(struct soft_cpu *cpu, struct insn *i)
{
	union xmm d, s;
	sse_operands(cpu, i, 16, true, &d, &s);
	vec_op(i)(&d, &s, 16, (uint8_t)i->imm);
	xmm_set(cpu, i->reg, &d);
}

/* 0F 38 00-0B, 1C-1E; 0F 3A 0F ib on MM registers (REX.R/B do not
 * extend them). The memory operand is read before the MMX state
 * transition, so that a fault changes nothing. */
static void ssse3_mmx(struct soft_cpu *cpu, struct insn *i)
{
	union xmm d, s;
	mmx_operands(cpu, i, 8, &d, &s);
	vec_op(i)(&d, &s, 8, (uint8_t)i->imm);
	mmx_set(cpu, i->reg, d.q[0]);
}

#define M OPF_MODRM
#define MEM OPF_MODMEM
#define SSE3(op, pfx, fl, name, fn) {OPMAP_0F, (op), -1, -1, (pfx), M | (fl), (name), (fn)}
#define SSSE3(op, name) {OPMAP_0F38, (op), -1, -1, PFX_66, M, (name), ssse3_xmm}, \
	{OPMAP_0F38, (op), -1, -1, PFX_NONE, M, (name), ssse3_mmx}

const struct opdef soft_ops_ssse3[] = {
    /* SSE3 */
    SSE3(0xd0, PFX_66, 0, "addsubpd", addsub),
    SSE3(0xd0, PFX_F2, 0, "addsubps", addsub),
    SSE3(0x7c, PFX_66, 0, "haddpd", hfp),
    SSE3(0x7c, PFX_F2, 0, "haddps", hfp),
    SSE3(0x7d, PFX_66, 0, "hsubpd", hfp),
    SSE3(0x7d, PFX_F2, 0, "hsubps", hfp),
    SSE3(0xf0, PFX_F2, MEM, "lddqu", sse_load_unaligned), /* an unaligned load */
    SSE3(0x12, PFX_F2, 0, "movddup", movddup),
    SSE3(0x12, PFX_F3, 0, "movsldup", movsdup),
    SSE3(0x16, PFX_F3, 0, "movshdup", movsdup),
    /* SSSE3 */
    SSSE3(0x00, "pshufb"), SSSE3(0x01, "phaddw"), SSSE3(0x02, "phaddd"),
    SSSE3(0x03, "phaddsw"), SSSE3(0x04, "pmaddubsw"), SSSE3(0x05, "phsubw"),
    SSSE3(0x06, "phsubd"), SSSE3(0x07, "phsubsw"), SSSE3(0x08, "psignb"),
    SSSE3(0x09, "psignw"), SSSE3(0x0a, "psignd"), SSSE3(0x0b, "pmulhrsw"),
    SSSE3(0x1c, "pabsb"), SSSE3(0x1d, "pabsw"), SSSE3(0x1e, "pabsd"),
    {OPMAP_0F3A, 0x0f, -1, -1, PFX_66, M | OPF_IMM8, "palignr", ssse3_xmm},
    {OPMAP_0F3A, 0x0f, -1, -1, PFX_NONE, M | OPF_IMM8, "palignr", ssse3_mmx},
    OPDEF_END,
};
