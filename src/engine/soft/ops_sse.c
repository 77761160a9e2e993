/* SSE and SSE2 (Intel SDM vol. 1 ch. 10-11, vol. 2 instruction pages):
 * the 128-bit XMM forms of the moves, the packed-integer and logical
 * instructions, IEEE single/double arithmetic, comparisons and
 * conversions, MXCSR (LDMXCSR/STMXCSR), FXSAVE/FXRSTOR and the fences.
 * The MMX (no-prefix, mm-register) forms are in ops_mmx.c and share the
 * packed-integer element operations here (sse.h, sse_pint_fn); the
 * conversions between MMX and XMM registers (CVTPI2PS, CVTPS2PI, ...)
 * are here. RCPPS/RSQRTPS (whose approximations are model-specific)
 * decode as #UD.
 *
 * Floating point runs on the host's SSE unit with the guest's rounding
 * mode and all exceptions masked; the SDM rules the host cannot be asked
 * for are applied explicitly around it: NaN propagation (vol. 1 table
 * 4-7: the first source's NaN wins, SNaNs are quieted), DAZ on inputs,
 * FTZ on results, the denormal flag and exception precedence (vol. 1
 * §4.9.2), MIN/MAX/compare semantics, integer-indefinite conversions,
 * and #XM/#UD for unmasked exceptions (vol. 1 §11.5). */
#include <string.h>
#include <xmmintrin.h>
#include <emmintrin.h>

#include "engine/soft/sse.h"

/* ---- moves ---- */

/* 0F 10, 66 0F 10, F3 0F 6F; also SSE3's LDDQU (ops_ssse3.c) */
void sse_load_unaligned(struct soft_cpu *cpu, struct insn *i)
{
	union xmm v;
	fpu_check_sse(cpu);
	src_read(cpu, i, 16, false, &v);
	xmm_set(cpu, i->reg, &v);
}

/* 0F 28, 66 0F 28, 66 0F 6F; also SSE4.1's MOVNTDQA (ops_sse4.c) */
void sse_load_aligned(struct soft_cpu *cpu, struct insn *i)
{
	union xmm v;
	fpu_check_sse(cpu);
	src_read(cpu, i, 16, true, &v);
	xmm_set(cpu, i->reg, &v);
}

static void store128(struct soft_cpu *cpu, const struct insn *i, bool aligned)
{
	union xmm v;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->reg, &v);
	if (i->mod == 3)
		xmm_set(cpu, i->rm, &v);
	else
		mem_write(cpu, i, &v, 16, aligned);
}

static void movups_store(struct soft_cpu *cpu, struct insn *i) /* 0F 11, 66 0F 11, F3 0F 7F */
{
	store128(cpu, i, false);
}

/* 0F 29, 66 0F 29, 66 0F 7F; MOVNTPS/MOVNTPD/MOVNTDQ (memory only) */
static void movaps_store(struct soft_cpu *cpu, struct insn *i)
{
	store128(cpu, i, true);
}

/* MOVSS/MOVSD load (F3/F2 0F 10): register sources merge into the low
 * element, memory sources clear the rest of the register. */
static void movs_load(struct soft_cpu *cpu, struct insn *i)
{
	unsigned size = i->rep == 0xf3 ? 4 : 8;
	union xmm s, d;
	fpu_check_sse(cpu);
	src_read(cpu, i, size, false, &s);
	if (i->mod == 3) {
		xmm_get(cpu, i->reg, &d);
		memcpy(&d, &s, size);
	} else {
		d = s;
	}
	xmm_set(cpu, i->reg, &d);
}

static void movs_store(struct soft_cpu *cpu, struct insn *i) /* F3/F2 0F 11 */
{
	unsigned size = i->rep == 0xf3 ? 4 : 8;
	union xmm s, d;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->reg, &s);
	if (i->mod != 3) {
		mem_write(cpu, i, &s, size, false);
		return;
	}
	xmm_get(cpu, i->rm, &d);
	memcpy(&d, &s, size);
	xmm_set(cpu, i->rm, &d);
}

/* 0F 12: MOVHLPS xmm1, xmm2 (register) / MOVLPS xmm, m64; 66 0F 12 MOVLPD. */
static void movlps_load(struct soft_cpu *cpu, struct insn *i)
{
	union xmm s, d;
	sse_operands(cpu, i, 8, false, &d, &s);
	d.q[0] = i->mod == 3 ? s.q[1] : s.q[0];
	xmm_set(cpu, i->reg, &d);
}

/* 0F 16: MOVLHPS xmm1, xmm2 (register) / MOVHPS xmm, m64; 66 0F 16 MOVHPD. */
static void movhps_load(struct soft_cpu *cpu, struct insn *i)
{
	union xmm s, d;
	sse_operands(cpu, i, 8, false, &d, &s);
	d.q[1] = s.q[0];
	xmm_set(cpu, i->reg, &d);
}

static void movlps_store(struct soft_cpu *cpu, struct insn *i) /* (66) 0F 13, memory only */
{
	union xmm s;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->reg, &s);
	mem_write(cpu, i, &s.q[0], 8, false);
}

static void movhps_store(struct soft_cpu *cpu, struct insn *i) /* (66) 0F 17, memory only */
{
	union xmm s;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->reg, &s);
	mem_write(cpu, i, &s.q[1], 8, false);
}

static void movd_to_xmm(struct soft_cpu *cpu, struct insn *i) /* 66 (REX.W) 0F 6E */
{
	union xmm v = {{0}};
	fpu_check_sse(cpu);
	v.q[0] = op_rm_read(cpu, i, gpr_size(i));
	xmm_set(cpu, i->reg, &v);
}

static void movd_from_xmm(struct soft_cpu *cpu, struct insn *i) /* 66 (REX.W) 0F 7E */
{
	union xmm v;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->reg, &v);
	op_rm_write(cpu, i, gpr_size(i), v.q[0]);
}

static void movq_load(struct soft_cpu *cpu, struct insn *i) /* F3 0F 7E */
{
	union xmm v;
	fpu_check_sse(cpu);
	src_read(cpu, i, 8, false, &v);
	v.q[1] = 0;
	xmm_set(cpu, i->reg, &v);
}

static void movq_store(struct soft_cpu *cpu, struct insn *i) /* 66 0F D6 */
{
	union xmm v;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->reg, &v);
	v.q[1] = 0;
	if (i->mod == 3)
		xmm_set(cpu, i->rm, &v);
	else
		mem_write(cpu, i, &v, 8, false);
}

static void movnti(struct soft_cpu *cpu, struct insn *i) /* 0F C3: a GPR store, no SSE checks */
{
	op_rm_write(cpu, i, gpr_size(i), op_reg_read(cpu, i, gpr_size(i)));
}

static void movmskp(struct soft_cpu *cpu, struct insn *i) /* (66) 0F 50 */
{
	union xmm s;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->rm, &s);
	reg_write(cpu, i->reg, 4, sse_sign_mask(&s, 16, i->opsize_prefix ? 8 : 4), true);
}

static void pmovmskb(struct soft_cpu *cpu, struct insn *i) /* 66 0F D7 */
{
	union xmm s;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->rm, &s);
	reg_write(cpu, i->reg, 4, sse_sign_mask(&s, 16, 1), true);
}

static void pextrw(struct soft_cpu *cpu, struct insn *i) /* 66 0F C5 /r ib */
{
	union xmm s;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->rm, &s);
	reg_write(cpu, i->reg, 4, s.w[i->imm & 7], true);
}

static void pinsrw(struct soft_cpu *cpu, struct insn *i) /* 66 0F C4 /r ib */
{
	union xmm d;
	fpu_check_sse(cpu);
	uint16_t v = (uint16_t)op_rm_read(cpu, i, 2);
	xmm_get(cpu, i->reg, &d);
	d.w[i->imm & 7] = v;
	xmm_set(cpu, i->reg, &d);
}

void sse_maskmov(struct soft_cpu *cpu, const struct insn *i, const union xmm *v,
		 const union xmm *m, unsigned n)
{
	uint64_t off = cpu->s.gpr[GPR_RDI] & size_mask(i->addrsize);
	uint64_t la = seg_linear(cpu, i->seg, off, n, ACC_WRITE);
	mmu_translate(cpu, la, ACC_WRITE, false);
	mmu_translate(cpu, la + n - 1, ACC_WRITE, false);
	for (unsigned k = 0; k < n; k++)
		if (m->b[k] & 0x80)
			lin_write(cpu, la + k, 1, v->b[k]);
}

/* MASKMOVDQU xmm1, xmm2 (66 0F F7). */
static void maskmovdqu(struct soft_cpu *cpu, struct insn *i)
{
	union xmm v, m;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->reg, &v);
	xmm_get(cpu, i->rm, &m);
	sse_maskmov(cpu, i, &v, &m, 16);
}

/* ---- packed integer and logical operations: d = d OP s ----
 * Each works on the low `bytes` bytes of its operands: 16 for the XMM
 * forms, 8 for the MMX forms (ops_mmx.c), whose elements are the same;
 * pack, unpack, PMADDWD, PMULUDQ and PSADBW take their halves and pairs
 * from those bytes, not from the 128-bit layout. */

static void p_and(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 8; k++)
		d->q[k] &= s->q[k];
}
static void p_andn(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 8; k++)
		d->q[k] = ~d->q[k] & s->q[k];
}
static void p_or(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 8; k++)
		d->q[k] |= s->q[k];
}
static void p_xor(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 8; k++)
		d->q[k] ^= s->q[k];
}

static void paddb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->b[k] = (uint8_t)(d->b[k] + s->b[k]);
}
static void paddw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = (uint16_t)(d->w[k] + s->w[k]);
}
static void paddd(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 4; k++)
		d->d[k] += s->d[k];
}
static void paddq(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 8; k++)
		d->q[k] += s->q[k];
}
static void psubb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->b[k] = (uint8_t)(d->b[k] - s->b[k]);
}
static void psubw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = (uint16_t)(d->w[k] - s->w[k]);
}
static void psubd(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 4; k++)
		d->d[k] -= s->d[k];
}
static void psubq(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 8; k++)
		d->q[k] -= s->q[k];
}

static void paddsb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->sb[k] = sat8s(d->sb[k] + s->sb[k]);
}
static void paddsw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->sw[k] = sat16s(d->sw[k] + s->sw[k]);
}
static void paddusb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->b[k] = sat8u(d->b[k] + s->b[k]);
}
static void paddusw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = sat16u(d->w[k] + s->w[k]);
}
static void psubsb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->sb[k] = sat8s(d->sb[k] - s->sb[k]);
}
static void psubsw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->sw[k] = sat16s(d->sw[k] - s->sw[k]);
}
static void psubusb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->b[k] = sat8u(d->b[k] - s->b[k]);
}
static void psubusw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = sat16u(d->w[k] - s->w[k]);
}

static void pcmpeqb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->b[k] = d->b[k] == s->b[k] ? 0xff : 0;
}
static void pcmpeqw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = d->w[k] == s->w[k] ? 0xffff : 0;
}
static void pcmpeqd(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 4; k++)
		d->d[k] = d->d[k] == s->d[k] ? ~0u : 0;
}
static void pcmpgtb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->b[k] = d->sb[k] > s->sb[k] ? 0xff : 0;
}
static void pcmpgtw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = d->sw[k] > s->sw[k] ? 0xffff : 0;
}
static void pcmpgtd(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 4; k++)
		d->d[k] = d->sd[k] > s->sd[k] ? ~0u : 0;
}

static void pminub(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		if (s->b[k] < d->b[k])
			d->b[k] = s->b[k];
}
static void pmaxub(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		if (s->b[k] > d->b[k])
			d->b[k] = s->b[k];
}
static void pminsw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		if (s->sw[k] < d->sw[k])
			d->sw[k] = s->sw[k];
}
static void pmaxsw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		if (s->sw[k] > d->sw[k])
			d->sw[k] = s->sw[k];
}
static void pavgb(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		d->b[k] = (uint8_t)((d->b[k] + s->b[k] + 1) >> 1);
}
static void pavgw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = (uint16_t)((d->w[k] + s->w[k] + 1) >> 1);
}

static void pmullw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = (uint16_t)((int32_t)d->sw[k] * s->sw[k]);
}

static void pmulhw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = (uint16_t)((uint32_t)((int32_t)d->sw[k] * s->sw[k]) >> 16);
}

static void pmulhuw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 2; k++)
		d->w[k] = (uint16_t)(((uint32_t)d->w[k] * s->w[k]) >> 16);
}

/* The even dwords of each quadword, unsigned, to a 64-bit product. */
static void pmuludq(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned k = 0; k < bytes / 8; k++)
		d->q[k] = (uint64_t)d->d[2 * k] * s->d[2 * k];
}

static void pmaddwd(union xmm *d, const union xmm *s, unsigned bytes)
{
	union xmm r = *d;
	for (unsigned k = 0; k < bytes / 4; k++) {
		/* Both products -32768 * -32768 overflow to 0x80000000, as on hardware. */
		uint32_t a = (uint32_t)((int32_t)d->sw[2 * k] * s->sw[2 * k]);
		uint32_t b = (uint32_t)((int32_t)d->sw[2 * k + 1] * s->sw[2 * k + 1]);
		r.d[k] = a + b;
	}
	*d = r;
}

/* One sum of absolute byte differences per quadword, zero-extended. */
static void psadbw(union xmm *d, const union xmm *s, unsigned bytes)
{
	for (unsigned h = 0; h < bytes / 8; h++) {
		unsigned sum = 0;
		for (unsigned k = 0; k < 8; k++) {
			int diff = d->b[8 * h + k] - s->b[8 * h + k];
			sum += (unsigned)(diff < 0 ? -diff : diff);
		}
		d->q[h] = sum;
	}
}

/* Interleaves the low (hi = 0) or high halves of d and s in units of
 * `size` bytes. */
static void unpack(union xmm *d, const union xmm *s, unsigned bytes, unsigned size, bool hi)
{
	union xmm r = *d;
	unsigned half = bytes / 2, n = half / size, base = hi ? half : 0;
	for (unsigned k = 0; k < n; k++) {
		memcpy(&r.b[2 * k * size], &d->b[base + k * size], size);
		memcpy(&r.b[(2 * k + 1) * size], &s->b[base + k * size], size);
	}
	*d = r;
}

static void punpcklbw(union xmm *d, const union xmm *s, unsigned n) { unpack(d, s, n, 1, false); }
static void punpcklwd(union xmm *d, const union xmm *s, unsigned n) { unpack(d, s, n, 2, false); }
static void punpckldq(union xmm *d, const union xmm *s, unsigned n) { unpack(d, s, n, 4, false); }
static void punpcklqdq(union xmm *d, const union xmm *s, unsigned n) { unpack(d, s, n, 8, false); }
static void punpckhbw(union xmm *d, const union xmm *s, unsigned n) { unpack(d, s, n, 1, true); }
static void punpckhwd(union xmm *d, const union xmm *s, unsigned n) { unpack(d, s, n, 2, true); }
static void punpckhdq(union xmm *d, const union xmm *s, unsigned n) { unpack(d, s, n, 4, true); }
static void punpckhqdq(union xmm *d, const union xmm *s, unsigned n) { unpack(d, s, n, 8, true); }

/* The packs: d's elements, narrowed, fill the low half, s's the high half. */
static void packsswb(union xmm *d, const union xmm *s, unsigned bytes)
{
	union xmm r = *d;
	for (unsigned k = 0; k < bytes / 2; k++) {
		r.sb[k] = sat8s(d->sw[k]);
		r.sb[k + bytes / 2] = sat8s(s->sw[k]);
	}
	*d = r;
}

static void packuswb(union xmm *d, const union xmm *s, unsigned bytes)
{
	union xmm r = *d;
	for (unsigned k = 0; k < bytes / 2; k++) {
		r.b[k] = sat8u(d->sw[k]);
		r.b[k + bytes / 2] = sat8u(s->sw[k]);
	}
	*d = r;
}

static void packssdw(union xmm *d, const union xmm *s, unsigned bytes)
{
	union xmm r = *d;
	for (unsigned k = 0; k < bytes / 4; k++) {
		r.sw[k] = sat16s(d->sd[k]);
		r.sw[k + bytes / 4] = sat16s(s->sd[k]);
	}
	*d = r;
}

/* UNPCKLPS/UNPCKHPS/UNPCKLPD/UNPCKHPD are the dword/qword interleaves. */
static const pint_elem_fn pint_ops[256] = {
    [0x14] = punpckldq, [0x15] = punpckhdq, /* (66 selects the qword forms, see pint_op) */
    [0x54] = p_and, [0x55] = p_andn, [0x56] = p_or, [0x57] = p_xor,
    [0x60] = punpcklbw, [0x61] = punpcklwd, [0x62] = punpckldq, [0x63] = packsswb,
    [0x64] = pcmpgtb, [0x65] = pcmpgtw, [0x66] = pcmpgtd, [0x67] = packuswb,
    [0x68] = punpckhbw, [0x69] = punpckhwd, [0x6a] = punpckhdq, [0x6b] = packssdw,
    [0x6c] = punpcklqdq, [0x6d] = punpckhqdq,
    [0x74] = pcmpeqb, [0x75] = pcmpeqw, [0x76] = pcmpeqd,
    [0xd4] = paddq, [0xd5] = pmullw, [0xd8] = psubusb, [0xd9] = psubusw, [0xda] = pminub,
    [0xdb] = p_and, [0xdc] = paddusb, [0xdd] = paddusw, [0xde] = pmaxub, [0xdf] = p_andn,
    [0xe0] = pavgb, [0xe3] = pavgw, [0xe4] = pmulhuw, [0xe5] = pmulhw,
    [0xe8] = psubsb, [0xe9] = psubsw, [0xea] = pminsw, [0xeb] = p_or,
    [0xec] = paddsb, [0xed] = paddsw, [0xee] = pmaxsw, [0xef] = p_xor,
    [0xf4] = pmuludq, [0xf5] = pmaddwd, [0xf6] = psadbw,
    [0xf8] = psubb, [0xf9] = psubw, [0xfa] = psubd, [0xfb] = psubq,
    [0xfc] = paddb, [0xfd] = paddw, [0xfe] = paddd,
};

pint_elem_fn sse_pint_fn(uint8_t opcode) { return pint_ops[opcode]; }

static void pint_op(struct soft_cpu *cpu, struct insn *i)
{
	pint_elem_fn fn = pint_ops[i->opcode];
	union xmm d, s;
	if (i->opcode == 0x14 && i->opsize_prefix)
		fn = punpcklqdq; /* UNPCKLPD */
	else if (i->opcode == 0x15 && i->opsize_prefix)
		fn = punpckhqdq; /* UNPCKHPD */
	sse_operands(cpu, i, 16, true, &d, &s);
	fn(&d, &s, 16);
	xmm_set(cpu, i->reg, &d);
}

/* ---- shuffles ---- */

static void pshufd(struct soft_cpu *cpu, struct insn *i) /* 66 0F 70 */
{
	union xmm s, d;
	fpu_check_sse(cpu);
	src_read(cpu, i, 16, true, &s);
	for (unsigned k = 0; k < 4; k++)
		d.d[k] = s.d[(i->imm >> (2 * k)) & 3];
	xmm_set(cpu, i->reg, &d);
}

/* PSHUFLW (F2 0F 70) shuffles words 0-3, PSHUFHW (F3 0F 70) words 4-7. */
static void pshufw_half(struct soft_cpu *cpu, struct insn *i)
{
	unsigned base = i->rep == 0xf3 ? 4 : 0;
	union xmm s, d;
	fpu_check_sse(cpu);
	src_read(cpu, i, 16, true, &s);
	d = s;
	for (unsigned k = 0; k < 4; k++)
		d.w[base + k] = s.w[base + ((i->imm >> (2 * k)) & 3)];
	xmm_set(cpu, i->reg, &d);
}

static void shufp(struct soft_cpu *cpu, struct insn *i) /* 0F C6 SHUFPS, 66 0F C6 SHUFPD */
{
	union xmm s, d, r;
	sse_operands(cpu, i, 16, true, &d, &s);
	if (i->opsize_prefix) {
		r.q[0] = d.q[i->imm & 1];
		r.q[1] = s.q[(i->imm >> 1) & 1];
	} else {
		r.d[0] = d.d[i->imm & 3];
		r.d[1] = d.d[(i->imm >> 2) & 3];
		r.d[2] = s.d[(i->imm >> 4) & 3];
		r.d[3] = s.d[(i->imm >> 6) & 3];
	}
	xmm_set(cpu, i->reg, &r);
}

/* ---- shifts ---- */

void sse_shift_elems(union xmm *v, unsigned bytes, unsigned size, enum shift_kind kind,
		     uint64_t count)
{
	unsigned bits = size * 8;
	for (unsigned k = 0; k < bytes / size; k++) {
		uint64_t e = 0;
		memcpy(&e, &v->b[k * size], size);
		if (kind == SH_ARITH) {
			int64_t se = sign_extend(e, size);
			e = (uint64_t)(se >> (count >= bits ? bits - 1 : count));
		} else if (count >= bits) {
			e = 0;
		} else {
			e = kind == SH_LEFT ? e << count : e >> count;
		}
		memcpy(&v->b[k * size], &e, size);
	}
}

/* PSRLW/D/Q, PSRAW/D, PSLLW/D/Q xmm, xmm/m128 (66 0F D1-D3, E1-E2, F1-F3). */
static void pshift_xmm(struct soft_cpu *cpu, struct insn *i)
{
	union xmm s, d;
	sse_operands(cpu, i, 16, true, &d, &s);
	sse_shift_elems(&d, 16, pshift_size(i->opcode), pshift_kind(i->opcode), s.q[0]);
	xmm_set(cpu, i->reg, &d);
}

/* 66 0F 71/72/73 /r ib: shifts of the r/m register by an immediate;
 * 73 /3 and /7 are the byte shifts PSRLDQ/PSLLDQ. */
static void pshift_imm(struct soft_cpu *cpu, struct insn *i)
{
	unsigned op = i->reg & 7;
	union xmm v;
	fpu_check_sse(cpu);
	xmm_get(cpu, i->rm, &v);
	if (op == 3 || op == 7) {
		union xmm r = {{0}};
		unsigned n = i->imm > 16 ? 16 : (unsigned)i->imm;
		if (op == 3)
			memcpy(&r.b[0], &v.b[n], 16 - n);
		else
			memcpy(&r.b[n], &v.b[0], 16 - n);
		v = r;
	} else {
		sse_shift_elems(&v, 16, pshift_imm_size(i->opcode), pshift_imm_kind(i), i->imm);
	}
	xmm_set(cpu, i->rm, &v);
}

/* ---- fences (0F AE /5 /6 /7 with a register ModRM) ---- */

static void fence(struct soft_cpu *cpu, struct insn *i)
{
	/* One in-order CPU: every access is already globally visible. */
	(void)cpu;
	(void)i;
}

/* ---- IEEE formats and the host's SSE unit ---- */

const struct fpfmt sse_f32 = {.bytes = 4, .mbits = 23, .sign = 0x80000000u, .exp = 0x7f800000u,
			      .frac = 0x007fffffu, .quiet = 0x00400000u, .indefinite = 0xffc00000u};
const struct fpfmt sse_f64 = {.bytes = 8, .mbits = 52, .sign = 1ULL << 63,
			      .exp = 0x7ff0000000000000ULL, .frac = 0x000fffffffffffffULL,
			      .quiet = 1ULL << 51, .indefinite = 0xfff8000000000000ULL};

static float f32_of(uint64_t a)
{
	uint32_t v = (uint32_t)a;
	float x;
	memcpy(&x, &v, 4);
	return x;
}

static uint64_t bits_f32(float x)
{
	uint32_t v;
	memcpy(&v, &x, 4);
	return v;
}

static double f64_of(uint64_t a)
{
	double x;
	memcpy(&x, &a, 8);
	return x;
}

static uint64_t bits_f64(double x)
{
	uint64_t v;
	memcpy(&v, &x, 8);
	return v;
}

/* Exact widening of a non-NaN value, for comparisons. */
static double fp_value(const struct fpfmt *f, uint64_t a)
{
	return f->bytes == 4 ? (double)f32_of(a) : f64_of(a);
}

void sse_fp_begin(struct soft_cpu *cpu, struct simd_fp *c)
{
	c->flags = 0;
	c->daz = cpu->fpu.mxcsr & MXCSR_DAZ;
	c->ftz = cpu->fpu.mxcsr & MXCSR_FTZ;
	c->ue_unmasked = !(cpu->fpu.mxcsr & (MXCSR_UE << MXCSR_MASKS_SHIFT));
	c->oe_unmasked = !(cpu->fpu.mxcsr & (MXCSR_OE << MXCSR_MASKS_SHIFT));
	c->host_saved = _mm_getcsr();
	_mm_setcsr(MXCSR_DEFAULT | (cpu->fpu.mxcsr & MXCSR_RC));
}

static void fp_end(const struct simd_fp *c) { _mm_setcsr(c->host_saved); }

static void host_clear(void) { _mm_setcsr(_mm_getcsr() & ~MXCSR_FLAGS); }

/* The host's flags except DE, which the SDM's precedence rules decide. */
static unsigned host_flags(void) { return _mm_getcsr() & MXCSR_FLAGS & ~MXCSR_DE; }

/* One operation and its (DAZ-processed) operands, kept for the exactness
 * question below. */
struct fp_operation {
	enum fp_op op;
	const struct fpfmt *from;
	uint64_t a, b;
};

/* Whether the result rounded to the destination's precision with an
 * unbounded exponent is inexact: the PE that an unmasked underflow or
 * overflow reports (its handler sees the exponent-adjusted value). The
 * host x87 computes it: its exponent range holds every single and double
 * result, and precision control rounds to 24 or 53 bits. */
#define PC_OP2(insn) __asm__ volatile(insn "\n\tfnstsw %1" : "=t"(x), "=m"(sw) : "0"(x), "u"(y))

static bool fp_inexact_unbounded(const struct fp_operation *o, const struct fpfmt *to)
{
	long double x = fp_value(o->from, o->a), y = fp_value(o->from, o->b);
	uint16_t cw = to->bytes == 4 ? 0x007f : 0x027f, saved, sw;
	__asm__ volatile("fnstcw %0" : "=m"(saved));
	__asm__ volatile("fnclex\n\tfldcw %0" : : "m"(cw) : "memory");
	switch (o->op) {
	case FP_ADD: PC_OP2("fadd %%st(1), %%st"); break;
	case FP_SUB: PC_OP2("fsub %%st(1), %%st"); break;
	case FP_DIV: PC_OP2("fdiv %%st(1), %%st"); break;
	case FP_SQRT: __asm__ volatile("fsqrt\n\tfnstsw %1" : "=t"(y), "=m"(sw) : "0"(y)); break;
	default: PC_OP2("fmul %%st(1), %%st"); break;
	}
	__asm__ volatile("fnclex\n\tfldcw %0" : : "m"(saved) : "memory");
	return sw & MXCSR_PE;
}

/* The exceptions of a computed result (the host's flags hf): a tiny
 * result (the host's underflow, or a denormal) is flushed to a zero of
 * its sign with UE and PE under FTZ (vol. 1 §10.2.3.3). Unmasked
 * underflow and overflow report UE/OE even for exact results and no PE
 * for that element (the handler gets an exponent-adjusted exact value);
 * the element is not stored then anyway (#XM). */
static uint64_t fp_result(struct simd_fp *c, const struct fpfmt *f, uint64_t r, unsigned hf,
			  const struct fp_operation *o)
{
	bool tiny = (hf & MXCSR_UE) || fp_is_denormal(f, r);
	bool unmasked = (c->ue_unmasked && tiny) || (c->oe_unmasked && (hf & MXCSR_OE));
	if (unmasked) {
		c->flags |= (hf & ~MXCSR_PE) | (tiny ? MXCSR_UE : 0);
		c->flags |= fp_inexact_unbounded(o, f) ? MXCSR_PE : 0;
		return r;
	}
	if (c->ftz && tiny) {
		c->flags |= hf | MXCSR_UE | MXCSR_PE;
		return r & f->sign;
	}
	c->flags |= hf;
	return r;
}

static float host_arith32(enum fp_op op, float a, float b)
{
	volatile float x = a, y = b, r;
	switch (op) {
	case FP_ADD: r = x + y; break;
	case FP_SUB: r = x - y; break;
	case FP_MUL: r = x * y; break;
	case FP_DIV: r = x / y; break;
	default: r = _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(y))); break;
	}
	return r;
}

static double host_arith64(enum fp_op op, double a, double b)
{
	volatile double x = a, y = b, r;
	switch (op) {
	case FP_ADD: r = x + y; break;
	case FP_SUB: r = x - y; break;
	case FP_MUL: r = x * y; break;
	case FP_DIV: r = x / y; break;
	default: r = _mm_cvtsd_f64(_mm_sqrt_sd(_mm_setzero_pd(), _mm_set_sd(y))); break;
	}
	return r;
}

/* NaN operands (vol. 1 table 4-7): the first source's NaN if it has one,
 * else the second's, quieted; an SNaN anywhere raises IE. */
static bool fp_nan_operand(struct simd_fp *c, const struct fpfmt *f, uint64_t a, bool use_a,
			   uint64_t b, uint64_t *r)
{
	bool na = use_a && fp_is_nan(f, a), nb = fp_is_nan(f, b);
	if (!na && !nb)
		return false;
	if ((na && fp_is_snan(f, a)) || (nb && fp_is_snan(f, b)))
		c->flags |= MXCSR_IE;
	*r = (na ? a : b) | f->quiet;
	return true;
}

/* ADD/SUB/MUL/DIV (a OP b) and SQRT (of b) on one element. Precedence:
 * NaN operands, then invalid and divide-by-zero (which suppress DE),
 * then DE, then the result's OE/UE/PE and FTZ. */
uint64_t sse_fp_arith(struct simd_fp *c, const struct fpfmt *f, enum fp_op op, uint64_t a,
		      uint64_t b)
{
	bool unary = op == FP_SQRT;
	uint64_t r;
	a = fp_daz(c, f, a);
	b = fp_daz(c, f, b);
	if (fp_nan_operand(c, f, a, !unary, b, &r))
		return r;
	host_clear();
	if (f->bytes == 4)
		r = bits_f32(host_arith32(op, f32_of(a), f32_of(b)));
	else
		r = bits_f64(host_arith64(op, f64_of(a), f64_of(b)));
	unsigned hf = host_flags();
	if (hf & MXCSR_IE) {
		c->flags |= MXCSR_IE;
		return f->indefinite;
	}
	if (hf & MXCSR_ZE) {
		c->flags |= MXCSR_ZE;
		return r;
	}
	if ((!unary && fp_is_denormal(f, a)) || fp_is_denormal(f, b))
		c->flags |= MXCSR_DE;
	struct fp_operation o = {op, f, a, b};
	return fp_result(c, f, r, hf, &o);
}

/* MINPS/MAXPS...: any NaN or two zeros give the second source, and any
 * NaN (quiet or not) raises IE. */
static uint64_t fp_minmax(struct simd_fp *c, const struct fpfmt *f, bool max, uint64_t a,
			  uint64_t b)
{
	a = fp_daz(c, f, a);
	b = fp_daz(c, f, b);
	if (fp_is_nan(f, a) || fp_is_nan(f, b)) {
		c->flags |= MXCSR_IE;
		return b;
	}
	if (fp_is_denormal(f, a) || fp_is_denormal(f, b))
		c->flags |= MXCSR_DE;
	double x = fp_value(f, a), y = fp_value(f, b);
	if (max)
		return x > y ? a : b;
	return x < y ? a : b;
}

/* CMPPS... predicates 0-7 (EQ LT LE UNORD NEQ NLT NLE ORD); LT, LE, NLT
 * and NLE signal IE on any NaN, the others on SNaNs only. */
static bool fp_compare(struct simd_fp *c, const struct fpfmt *f, unsigned pred, uint64_t a,
		       uint64_t b)
{
	a = fp_daz(c, f, a);
	b = fp_daz(c, f, b);
	bool unord = fp_is_nan(f, a) || fp_is_nan(f, b);
	bool signaling = pred == 1 || pred == 2 || pred == 5 || pred == 6;
	if (unord) {
		if (signaling || fp_is_snan(f, a) || fp_is_snan(f, b))
			c->flags |= MXCSR_IE;
	} else if (fp_is_denormal(f, a) || fp_is_denormal(f, b)) {
		c->flags |= MXCSR_DE;
	}
	double x = unord ? 0 : fp_value(f, a), y = unord ? 0 : fp_value(f, b);
	switch (pred) {
	case 0: return !unord && x == y;
	case 1: return !unord && x < y;
	case 2: return !unord && x <= y;
	case 3: return unord;
	case 4: return unord || x != y;
	case 5: return unord || !(x < y);
	case 6: return unord || !(x <= y);
	default: return !unord;
	}
}

/* Single <-> double. NaNs keep sign and the top of their payload. */
static uint64_t fp_convert(struct simd_fp *c, const struct fpfmt *from, uint64_t a)
{
	bool widen = from->bytes == 4;
	const struct fpfmt *to = widen ? &sse_f64 : &sse_f32;
	a = fp_daz(c, from, a);
	if (fp_is_nan(from, a)) {
		if (fp_is_snan(from, a))
			c->flags |= MXCSR_IE;
		uint64_t frac = widen ? (a & from->frac) << 29 : (a & from->frac) >> 29;
		return ((a & from->sign) ? to->sign : 0) | to->exp | to->quiet | frac;
	}
	if (fp_is_denormal(from, a))
		c->flags |= MXCSR_DE;
	host_clear();
	uint64_t r;
	if (widen) {
		volatile float x = f32_of(a);
		volatile double y = x;
		r = bits_f64(y);
	} else {
		volatile double x = f64_of(a);
		volatile float y = (float)x;
		r = bits_f32(y);
	}
	struct fp_operation o = {FP_MUL, from, a, widen ? 0x3f800000u : 0x3ff0000000000000ULL};
	return fp_result(c, to, r, host_flags(), &o);
}

/* Rounds to an integral value in the host's (= the guest's) rounding
 * mode: adding and removing 2^52 leaves no fraction bits. */
static double round_integral(double v)
{
	const double big = 4503599627370496.0; /* 2^52 */
	if (!(v > -big && v < big) || v == 0)
		return v;
	volatile double t = v + (v < 0 ? -big : big);
	volatile double r = t - (v < 0 ? -big : big);
	return r;
}

static double trunc_integral(double v)
{
	const double big = 4503599627370496.0;
	if (!(v > -big && v < big))
		return v;
	return (double)(int64_t)v;
}

/* CVT(T)SS2SI, CVT(T)PS2DQ, ...: NaN and out-of-range values give the
 * "integer indefinite" (the most negative integer) with IE. */
static uint64_t fp_to_int(struct simd_fp *c, const struct fpfmt *f, uint64_t a, unsigned isize,
			  bool truncate)
{
	uint64_t indefinite = isize == 4 ? 0x80000000u : 1ULL << 63;
	a = fp_daz(c, f, a);
	if (fp_is_nan(f, a)) {
		c->flags |= MXCSR_IE;
		return indefinite;
	}
	double v = fp_value(f, a);
	double r = truncate ? trunc_integral(v) : round_integral(v);
	bool in_range = isize == 4 ? r >= -2147483648.0 && r <= 2147483647.0
				   : r >= -9223372036854775808.0 && r < 9223372036854775808.0;
	if (!in_range) {
		c->flags |= MXCSR_IE;
		return indefinite;
	}
	if (r != v)
		c->flags |= MXCSR_PE;
	return (uint64_t)(int64_t)r & size_mask(isize);
}

/* CVTSI2SS/SD, CVTDQ2PS/PD: the host rounds in the guest's mode. */
static uint64_t int_to_fp(struct simd_fp *c, const struct fpfmt *to, int64_t v)
{
	uint64_t r;
	host_clear();
	if (to->bytes == 4) {
		volatile int64_t x = v;
		volatile float y = (float)x;
		r = bits_f32(y);
	} else {
		volatile int64_t x = v;
		volatile double y = (double)x;
		r = bits_f64(y);
	}
	c->flags |= host_flags();
	return r;
}

void sse_fp_check(struct soft_cpu *cpu, struct simd_fp *c)
{
	const unsigned pre_mask = MXCSR_IE | MXCSR_DE | MXCSR_ZE;
	unsigned unmasked = ~(cpu->fpu.mxcsr >> MXCSR_MASKS_SHIFT) & MXCSR_FLAGS;
	unsigned raised = c->flags;

	c->flags = 0;
	if (raised & unmasked & pre_mask)
		raised &= pre_mask;
	cpu->fpu.mxcsr |= raised;
	if (raised & unmasked) {
		fp_end(c);
		if (cpu->s.cr4 & CR4_OSXMMEXCPT)
			soft_raise_noerr(cpu, EXC_XM);
		soft_ud(cpu);
	}
}

void sse_fp_commit(struct soft_cpu *cpu, struct simd_fp *c)
{
	sse_fp_check(cpu, c);
	fp_end(c);
}

/* ---- SSE floating-point instructions ---- */

/* The four forms selected by the mandatory prefix: PS (none), PD (66),
 * SS (F3), SD (F2). Scalar forms read a 4/8-byte memory source and keep
 * the destination's upper elements. */
struct fp_form {
	const struct fpfmt *f;
	unsigned n;       /* elements */
	unsigned memsize; /* bytes of a memory source */
};

static struct fp_form fp_form_of(const struct insn *i)
{
	switch (i->def->prefix) {
	case PFX_66: return (struct fp_form){&sse_f64, 2, 16};
	case PFX_F3: return (struct fp_form){&sse_f32, 1, 4};
	case PFX_F2: return (struct fp_form){&sse_f64, 1, 8};
	default: return (struct fp_form){&sse_f32, 4, 16};
	}
}

/* Loads the instruction's operands: d = destination register, s = source. */
static struct fp_form fp_operands(struct soft_cpu *cpu, const struct insn *i, union xmm *d,
				  union xmm *s)
{
	struct fp_form form = fp_form_of(i);
	sse_operands(cpu, i, form.memsize, form.memsize == 16, d, s);
	return form;
}

static enum fp_op fp_op_of(uint8_t opcode)
{
	switch (opcode) {
	case 0x51: return FP_SQRT;
	case 0x58: return FP_ADD;
	case 0x59: return FP_MUL;
	case 0x5c: return FP_SUB;
	case 0x5d: return FP_MIN;
	case 0x5e: return FP_DIV;
	default: return FP_MAX;
	}
}

/* 0F 51, 58, 59, 5C-5F in all four forms. */
static void sse_arith(struct soft_cpu *cpu, struct insn *i)
{
	union xmm d, s;
	struct fp_form form = fp_operands(cpu, i, &d, &s);
	enum fp_op op = fp_op_of(i->opcode);
	struct simd_fp c;
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < form.n; k++) {
		uint64_t a = elem_get(&d, form.f, k), b = elem_get(&s, form.f, k);
		uint64_t r = op == FP_MIN || op == FP_MAX ? fp_minmax(&c, form.f, op == FP_MAX, a, b)
							  : sse_fp_arith(&c, form.f, op, a, b);
		elem_set(&d, form.f, k, r);
	}
	sse_fp_commit(cpu, &c);
	xmm_set(cpu, i->reg, &d);
}

/* For SSE3's ADDSUBPS/PD, HADDPS/PD and HSUBPS/PD (ops_ssse3.c), which
 * are sse_arith on rearranged operands. */
void sse_fp_lanes(struct soft_cpu *cpu, bool dbl, const enum fp_op op[], const union xmm *a,
		  const union xmm *b, union xmm *r)
{
	const struct fpfmt *f = dbl ? &sse_f64 : &sse_f32;
	struct simd_fp c;
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < 16 / f->bytes; k++) {
		uint64_t x = elem_get(a, f, k), y = elem_get(b, f, k);
		uint64_t v = op[k] == FP_MIN || op[k] == FP_MAX ? fp_minmax(&c, f, op[k] == FP_MAX, x, y)
								: sse_fp_arith(&c, f, op[k], x, y);
		elem_set(r, f, k, v);
	}
	sse_fp_commit(cpu, &c);
}

static void sse_cmp(struct soft_cpu *cpu, struct insn *i) /* 0F C2 ib */
{
	union xmm d, s;
	struct fp_form form = fp_operands(cpu, i, &d, &s);
	struct simd_fp c;
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < form.n; k++) {
		bool t = fp_compare(&c, form.f, i->imm & 7, elem_get(&d, form.f, k),
				    elem_get(&s, form.f, k));
		elem_set(&d, form.f, k, t ? ~0ULL : 0);
	}
	sse_fp_commit(cpu, &c);
	xmm_set(cpu, i->reg, &d);
}

/* (U)COMISS/(U)COMISD (0F 2E/2F, 66 for double): ZF/PF/CF = 111
 * unordered, 000 greater, 001 less, 100 equal; OF/SF/AF cleared. COMIS
 * signals IE on any NaN like the LT predicate, UCOMIS on SNaNs only like
 * EQ; DAZ and DE as for the compare predicates. */
static void sse_comis(struct soft_cpu *cpu, struct insn *i)
{
	const struct fpfmt *f = i->opsize_prefix ? &sse_f64 : &sse_f32;
	union xmm d, s;
	struct simd_fp c;
	sse_operands(cpu, i, f->bytes, false, &d, &s);
	sse_fp_begin(cpu, &c);
	uint64_t a = elem_get(&d, f, 0), b = elem_get(&s, f, 0);
	fp_compare(&c, f, i->opcode == 0x2f ? 1 : 0, a, b);
	struct simd_fp scratch = c; /* the relation itself, without more exceptions */
	bool unord = fp_compare(&scratch, f, 3, a, b);
	bool less = fp_compare(&scratch, f, 1, a, b), equal = fp_compare(&scratch, f, 0, a, b);
	sse_fp_commit(cpu, &c);
	uint64_t fl = flags_get(cpu) & ~FLAGS_ARITH;
	if (unord)
		fl |= FLAG_ZF | FLAG_PF | FLAG_CF;
	else if (less)
		fl |= FLAG_CF;
	else if (equal)
		fl |= FLAG_ZF;
	flags_put(cpu, fl);
}

/* 0F 5A: CVTPS2PD (none), CVTPD2PS (66), CVTSS2SD (F3), CVTSD2SS (F2). */
static void sse_cvt_fp(struct soft_cpu *cpu, struct insn *i)
{
	static const unsigned memsize[5] = {[PFX_NONE] = 8, [PFX_66] = 16, [PFX_F3] = 4,
					    [PFX_F2] = 8};
	unsigned pfx = i->def->prefix;
	bool widen = pfx == PFX_NONE || pfx == PFX_F3;
	unsigned n = pfx == PFX_NONE || pfx == PFX_66 ? 2 : 1;
	const struct fpfmt *from = widen ? &sse_f32 : &sse_f64, *to = widen ? &sse_f64 : &sse_f32;
	union xmm d, s, r;
	struct simd_fp c;
	sse_operands(cpu, i, memsize[pfx], memsize[pfx] == 16, &d, &s);
	r = d;
	if (pfx == PFX_66)
		memset(&r, 0, sizeof(r)); /* CVTPD2PS clears the upper half */
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < n; k++)
		elem_set(&r, to, k, fp_convert(&c, from, elem_get(&s, from, k)));
	sse_fp_commit(cpu, &c);
	xmm_set(cpu, i->reg, &r);
}

/* 0F 5B: CVTDQ2PS (none), CVTPS2DQ (66), CVTTPS2DQ (F3). */
static void sse_cvt_dq_ps(struct soft_cpu *cpu, struct insn *i)
{
	unsigned pfx = i->def->prefix;
	union xmm s, r;
	struct simd_fp c;
	fpu_check_sse(cpu);
	src_read(cpu, i, 16, true, &s);
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < 4; k++)
		r.d[k] = pfx == PFX_NONE ? (uint32_t)int_to_fp(&c, &sse_f32, s.sd[k])
					 : (uint32_t)fp_to_int(&c, &sse_f32, s.d[k], 4, pfx == PFX_F3);
	sse_fp_commit(cpu, &c);
	xmm_set(cpu, i->reg, &r);
}

/* 0F E6: CVTTPD2DQ (66), CVTDQ2PD (F3), CVTPD2DQ (F2). */
static void sse_cvt_dq_pd(struct soft_cpu *cpu, struct insn *i)
{
	unsigned pfx = i->def->prefix;
	union xmm s, r = {{0}};
	struct simd_fp c;
	fpu_check_sse(cpu);
	src_read(cpu, i, pfx == PFX_F3 ? 8 : 16, pfx != PFX_F3, &s);
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < 2; k++) {
		if (pfx == PFX_F3)
			r.q[k] = int_to_fp(&c, &sse_f64, s.sd[k]);
		else
			r.d[k] = (uint32_t)fp_to_int(&c, &sse_f64, s.q[k], 4, pfx == PFX_66);
	}
	sse_fp_commit(cpu, &c);
	xmm_set(cpu, i->reg, &r);
}

/* CVTSI2SS/CVTSI2SD (F3/F2 0F 2A) xmm, r/m32 or r/m64 (REX.W). */
static void sse_cvtsi2s(struct soft_cpu *cpu, struct insn *i)
{
	const struct fpfmt *to = i->rep == 0xf3 ? &sse_f32 : &sse_f64;
	unsigned size = gpr_size(i);
	union xmm d;
	struct simd_fp c;
	fpu_check_sse(cpu);
	int64_t v = sign_extend(op_rm_read(cpu, i, size), size);
	xmm_get(cpu, i->reg, &d);
	sse_fp_begin(cpu, &c);
	elem_set(&d, to, 0, int_to_fp(&c, to, v));
	sse_fp_commit(cpu, &c);
	xmm_set(cpu, i->reg, &d);
}

/* CVT(T)SS2SI / CVT(T)SD2SI (F3/F2 0F 2C truncating, 0F 2D rounding). */
static void sse_cvts2si(struct soft_cpu *cpu, struct insn *i)
{
	const struct fpfmt *from = i->rep == 0xf3 ? &sse_f32 : &sse_f64;
	unsigned size = gpr_size(i);
	union xmm s;
	struct simd_fp c;
	fpu_check_sse(cpu);
	src_read(cpu, i, from->bytes, false, &s);
	sse_fp_begin(cpu, &c);
	uint64_t r = fp_to_int(&c, from, elem_get(&s, from, 0), size, i->opcode == 0x2c);
	sse_fp_commit(cpu, &c);
	reg_write(cpu, i->reg, size, r, true);
}

/* ---- conversions with an MMX operand (vol. 3 tables 22-4 to 22-6) ----
 * The SSE preconditions and then #MF (mmx_check_sse); each switches the
 * x87 unit to MMX mode (fpu.h, mmx_enter) once nothing can fault any
 * more, except CVTPI2PD and CVTPI2PS from memory, which touch no MMX
 * state and take no x87 exception. (The SDM says so of CVTPI2PD only;
 * the processor treats CVTPI2PS the same, checked on hardware.) */

/* CVTPI2PS xmm, mm/m64 (0F 2A): two dwords to singles in the low
 * quadword, the high one kept; CVTPI2PD xmm, mm/m64 (66 0F 2A): to two
 * doubles (exact). */
static void sse_cvtpi2p(struct soft_cpu *cpu, struct insn *i)
{
	const struct fpfmt *to = i->opsize_prefix ? &sse_f64 : &sse_f32;
	bool mmx = i->mod == 3;
	union xmm d;
	struct simd_fp c;
	if (mmx)
		mmx_check_sse(cpu);
	else
		fpu_check_sse(cpu);
	uint64_t s = i->mod == 3 ? mmx_get(cpu, i->rm) : op_rm_read_mem(cpu, i, 8);
	xmm_get(cpu, i->reg, &d);
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < 2; k++)
		elem_set(&d, to, k, int_to_fp(&c, to, (int32_t)(uint32_t)(s >> (32 * k))));
	sse_fp_commit(cpu, &c);
	if (mmx)
		mmx_enter(cpu);
	xmm_set(cpu, i->reg, &d);
}

/* CVT(T)PS2PI mm, xmm/m64 (0F 2D, 0F 2C truncating); CVT(T)PD2PI mm,
 * xmm/m128 (66 0F 2D/2C, an aligned 16-byte memory operand). */
static void sse_cvtp2pi(struct soft_cpu *cpu, struct insn *i)
{
	const struct fpfmt *from = i->opsize_prefix ? &sse_f64 : &sse_f32;
	union xmm s;
	struct simd_fp c;
	uint64_t r = 0;
	mmx_check_sse(cpu);
	src_read(cpu, i, 2 * from->bytes, from->bytes == 8, &s);
	sse_fp_begin(cpu, &c);
	for (unsigned k = 0; k < 2; k++)
		r |= fp_to_int(&c, from, elem_get(&s, from, k), 4, i->opcode == 0x2c) << (32 * k);
	sse_fp_commit(cpu, &c);
	mmx_enter(cpu);
	mmx_set(cpu, i->reg, r);
}

/* ---- MXCSR, FXSAVE, FXRSTOR (0F AE /0-/3 with a memory operand) ---- */

static void ldmxcsr(struct soft_cpu *cpu, struct insn *i)
{
	fpu_check_sse(cpu);
	uint32_t v = (uint32_t)seg_read(cpu, i->seg, insn_ea(cpu, i), 4);
	if (v & ~MXCSR_MASK)
		soft_gp(cpu, 0);
	cpu->fpu.mxcsr = v;
}

static void stmxcsr(struct soft_cpu *cpu, struct insn *i)
{
	fpu_check_sse(cpu);
	seg_write(cpu, i->seg, insn_ea(cpu, i), 4, cpu->fpu.mxcsr);
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* The FXSAVE area (vol. 1 tables 10-2 and 10-3): 8 XMM registers
 * outside 64-bit mode; REX.W selects 64-bit FPU IP/DP. The FPU CS/DS
 * selectors are stored as zero (as on processors that deprecate them). */
static unsigned fxsave_xmm_count(const struct soft_cpu *cpu) { return cpu->long64 ? 16 : 8; }

/* FXSAVE and FXRSTOR: #NM with CR0.EM or CR0.TS; a 16-byte-aligned operand. */
static uint64_t fxsave_linear(struct soft_cpu *cpu, const struct insn *i, enum access acc)
{
	if (cpu->s.cr0 & (CR0_EM | CR0_TS))
		soft_raise_noerr(cpu, EXC_NM);
	uint64_t la = seg_linear(cpu, i->seg, insn_ea(cpu, i), FXSAVE_SIZE, acc);
	if (la & 15)
		soft_gp(cpu, 0);
	return la;
}

/* Bytes 416-511 are reserved or for software, and never written. */
static void fxsave(struct soft_cpu *cpu, struct insn *i)
{
	const struct fpu_state *f = &cpu->fpu;
	unsigned nxmm = fxsave_xmm_count(cpu), len = 160 + 16 * nxmm;
	uint8_t a[FXSAVE_SIZE] = {0};
	uint64_t la = fxsave_linear(cpu, i, ACC_WRITE);

	put16(a + 0, f->fcw);
	put16(a + 2, f->fsw);
	a[4] = f->ftw;
	put16(a + 6, f->fop);
	if (i->rex & 8) {
		put64(a + 8, f->fip);
		put64(a + 16, f->fdp);
	} else {
		put32(a + 8, (uint32_t)f->fip);
		put32(a + 16, (uint32_t)f->fdp);
	}
	put32(a + 24, f->mxcsr);
	put32(a + 28, MXCSR_MASK);
	for (unsigned r = 0; r < 8; r++)
		memcpy(a + 32 + 16 * r, f->st[r], 10);
	memcpy(a + 160, f->xmm, 16 * nxmm);
	lin_write_bytes(cpu, la, a, len);
}

static void fxrstor(struct soft_cpu *cpu, struct insn *i)
{
	struct fpu_state *f = &cpu->fpu;
	unsigned nxmm = fxsave_xmm_count(cpu), len = 160 + 16 * nxmm;
	uint8_t a[FXSAVE_SIZE];
	uint64_t la = fxsave_linear(cpu, i, ACC_READ);

	lin_read_bytes(cpu, la, a, len);
	uint32_t mxcsr = get32(a + 24);
	if (mxcsr & ~MXCSR_MASK)
		soft_gp(cpu, 0);
	f->fcw = fpu_fcw_sanitize(get16(a + 0));
	f->fsw = get16(a + 2);
	fpu_update_es(f); /* ES and B follow the loaded flags and masks */
	f->ftw = a[4];
	f->fop = get16(a + 6) & 0x7ff;
	f->fip = (i->rex & 8) ? get64(a + 8) : get32(a + 8);
	f->fdp = (i->rex & 8) ? get64(a + 16) : get32(a + 16);
	f->mxcsr = mxcsr;
	for (unsigned r = 0; r < 8; r++) {
		memset(f->st[r], 0, 16);
		memcpy(f->st[r], a + 32 + 16 * r, 10);
	}
	memcpy(f->xmm, a + 160, 16 * nxmm);
}

#define M OPF_MODRM
#define I8 OPF_IMM8
#define R3 OPF_MOD3
#define MEM OPF_MODMEM
#define SSE(op, pfx, fl, name, fn) {OPMAP_0F, (op), -1, -1, (pfx), M | (fl), (name), (fn)}
#define SSEG(op, reg, pfx, fl, name, fn) {OPMAP_0F, (op), (reg), -1, (pfx), M | (fl), (name), (fn)}
#define PINT(op, name) SSE(op, PFX_66, 0, name, pint_op)
#define FP4(op, name) SSE(op, PFX_NONE, 0, name "ps", sse_arith), \
	SSE(op, PFX_66, 0, name "pd", sse_arith), SSE(op, PFX_F3, 0, name "ss", sse_arith), \
	SSE(op, PFX_F2, 0, name "sd", sse_arith)

const struct opdef soft_ops_sse[] = {
    /* moves */
    SSE(0x10, PFX_NONE, 0, "movups", sse_load_unaligned),
    SSE(0x10, PFX_66, 0, "movupd", sse_load_unaligned),
    SSE(0x10, PFX_F3, 0, "movss", movs_load),
    SSE(0x10, PFX_F2, 0, "movsd", movs_load),
    SSE(0x11, PFX_NONE, 0, "movups", movups_store),
    SSE(0x11, PFX_66, 0, "movupd", movups_store),
    SSE(0x11, PFX_F3, 0, "movss", movs_store),
    SSE(0x11, PFX_F2, 0, "movsd", movs_store),
    SSE(0x12, PFX_NONE, 0, "movlps/movhlps", movlps_load),
    SSE(0x12, PFX_66, MEM, "movlpd", movlps_load),
    SSE(0x13, PFX_NONE, MEM, "movlps", movlps_store),
    SSE(0x13, PFX_66, MEM, "movlpd", movlps_store),
    SSE(0x16, PFX_NONE, 0, "movhps/movlhps", movhps_load),
    SSE(0x16, PFX_66, MEM, "movhpd", movhps_load),
    SSE(0x17, PFX_NONE, MEM, "movhps", movhps_store),
    SSE(0x17, PFX_66, MEM, "movhpd", movhps_store),
    SSE(0x28, PFX_NONE, 0, "movaps", sse_load_aligned),
    SSE(0x28, PFX_66, 0, "movapd", sse_load_aligned),
    SSE(0x29, PFX_NONE, 0, "movaps", movaps_store),
    SSE(0x29, PFX_66, 0, "movapd", movaps_store),
    SSE(0x2b, PFX_NONE, MEM, "movntps", movaps_store),
    SSE(0x2b, PFX_66, MEM, "movntpd", movaps_store),
    SSE(0x50, PFX_NONE, R3, "movmskps", movmskp),
    SSE(0x50, PFX_66, R3, "movmskpd", movmskp),
    SSE(0x6e, PFX_66, 0, "movd/movq", movd_to_xmm),
    SSE(0x6f, PFX_66, 0, "movdqa", sse_load_aligned),
    SSE(0x6f, PFX_F3, 0, "movdqu", sse_load_unaligned),
    SSE(0x7e, PFX_66, 0, "movd/movq", movd_from_xmm),
    SSE(0x7e, PFX_F3, 0, "movq", movq_load),
    SSE(0x7f, PFX_66, 0, "movdqa", movaps_store),
    SSE(0x7f, PFX_F3, 0, "movdqu", movups_store),
    SSE(0xc3, PFX_NONE, MEM, "movnti", movnti),
    SSE(0xc4, PFX_66, I8, "pinsrw", pinsrw),
    SSE(0xc5, PFX_66, R3 | I8, "pextrw", pextrw),
    SSE(0xd6, PFX_66, 0, "movq", movq_store),
    SSE(0xd7, PFX_66, R3, "pmovmskb", pmovmskb),
    SSE(0xe7, PFX_66, MEM, "movntdq", movaps_store),
    SSE(0xf7, PFX_66, R3, "maskmovdqu", maskmovdqu),
    /* logical, unpack, shuffle */
    SSE(0x14, PFX_NONE, 0, "unpcklps", pint_op),
    SSE(0x14, PFX_66, 0, "unpcklpd", pint_op),
    SSE(0x15, PFX_NONE, 0, "unpckhps", pint_op),
    SSE(0x15, PFX_66, 0, "unpckhpd", pint_op),
    SSE(0x54, PFX_NONE, 0, "andps", pint_op),
    SSE(0x54, PFX_66, 0, "andpd", pint_op),
    SSE(0x55, PFX_NONE, 0, "andnps", pint_op),
    SSE(0x55, PFX_66, 0, "andnpd", pint_op),
    SSE(0x56, PFX_NONE, 0, "orps", pint_op),
    SSE(0x56, PFX_66, 0, "orpd", pint_op),
    SSE(0x57, PFX_NONE, 0, "xorps", pint_op),
    SSE(0x57, PFX_66, 0, "xorpd", pint_op),
    SSE(0x70, PFX_66, I8, "pshufd", pshufd),
    SSE(0x70, PFX_F3, I8, "pshufhw", pshufw_half),
    SSE(0x70, PFX_F2, I8, "pshuflw", pshufw_half),
    SSE(0xc6, PFX_NONE, I8, "shufps", shufp),
    SSE(0xc6, PFX_66, I8, "shufpd", shufp),
    /* packed integer */
    PINT(0x60, "punpcklbw"), PINT(0x61, "punpcklwd"), PINT(0x62, "punpckldq"),
    PINT(0x63, "packsswb"), PINT(0x64, "pcmpgtb"), PINT(0x65, "pcmpgtw"),
    PINT(0x66, "pcmpgtd"), PINT(0x67, "packuswb"), PINT(0x68, "punpckhbw"),
    PINT(0x69, "punpckhwd"), PINT(0x6a, "punpckhdq"), PINT(0x6b, "packssdw"),
    PINT(0x6c, "punpcklqdq"), PINT(0x6d, "punpckhqdq"),
    PINT(0x74, "pcmpeqb"), PINT(0x75, "pcmpeqw"), PINT(0x76, "pcmpeqd"),
    PINT(0xd4, "paddq"), PINT(0xd5, "pmullw"), PINT(0xd8, "psubusb"), PINT(0xd9, "psubusw"),
    PINT(0xda, "pminub"), PINT(0xdb, "pand"), PINT(0xdc, "paddusb"), PINT(0xdd, "paddusw"),
    PINT(0xde, "pmaxub"), PINT(0xdf, "pandn"), PINT(0xe0, "pavgb"), PINT(0xe3, "pavgw"),
    PINT(0xe4, "pmulhuw"), PINT(0xe5, "pmulhw"), PINT(0xe8, "psubsb"), PINT(0xe9, "psubsw"),
    PINT(0xea, "pminsw"), PINT(0xeb, "por"), PINT(0xec, "paddsb"), PINT(0xed, "paddsw"),
    PINT(0xee, "pmaxsw"), PINT(0xef, "pxor"), PINT(0xf4, "pmuludq"), PINT(0xf5, "pmaddwd"),
    PINT(0xf6, "psadbw"), PINT(0xf8, "psubb"), PINT(0xf9, "psubw"), PINT(0xfa, "psubd"),
    PINT(0xfb, "psubq"), PINT(0xfc, "paddb"), PINT(0xfd, "paddw"), PINT(0xfe, "paddd"),
    /* shifts */
    SSE(0xd1, PFX_66, 0, "psrlw", pshift_xmm), SSE(0xd2, PFX_66, 0, "psrld", pshift_xmm),
    SSE(0xd3, PFX_66, 0, "psrlq", pshift_xmm), SSE(0xe1, PFX_66, 0, "psraw", pshift_xmm),
    SSE(0xe2, PFX_66, 0, "psrad", pshift_xmm), SSE(0xf1, PFX_66, 0, "psllw", pshift_xmm),
    SSE(0xf2, PFX_66, 0, "pslld", pshift_xmm), SSE(0xf3, PFX_66, 0, "psllq", pshift_xmm),
    SSEG(0x71, 2, PFX_66, R3 | I8, "psrlw", pshift_imm),
    SSEG(0x71, 4, PFX_66, R3 | I8, "psraw", pshift_imm),
    SSEG(0x71, 6, PFX_66, R3 | I8, "psllw", pshift_imm),
    SSEG(0x72, 2, PFX_66, R3 | I8, "psrld", pshift_imm),
    SSEG(0x72, 4, PFX_66, R3 | I8, "psrad", pshift_imm),
    SSEG(0x72, 6, PFX_66, R3 | I8, "pslld", pshift_imm),
    SSEG(0x73, 2, PFX_66, R3 | I8, "psrlq", pshift_imm),
    SSEG(0x73, 3, PFX_66, R3 | I8, "psrldq", pshift_imm),
    SSEG(0x73, 6, PFX_66, R3 | I8, "psllq", pshift_imm),
    SSEG(0x73, 7, PFX_66, R3 | I8, "pslldq", pshift_imm),
    /* floating point */
    FP4(0x51, "sqrt"), FP4(0x58, "add"), FP4(0x59, "mul"), FP4(0x5c, "sub"),
    FP4(0x5d, "min"), FP4(0x5e, "div"), FP4(0x5f, "max"),
    SSE(0xc2, PFX_NONE, I8, "cmpps", sse_cmp), SSE(0xc2, PFX_66, I8, "cmppd", sse_cmp),
    SSE(0xc2, PFX_F3, I8, "cmpss", sse_cmp), SSE(0xc2, PFX_F2, I8, "cmpsd", sse_cmp),
    SSE(0x2e, PFX_NONE, 0, "ucomiss", sse_comis), SSE(0x2e, PFX_66, 0, "ucomisd", sse_comis),
    SSE(0x2f, PFX_NONE, 0, "comiss", sse_comis), SSE(0x2f, PFX_66, 0, "comisd", sse_comis),
    SSE(0x5a, PFX_NONE, 0, "cvtps2pd", sse_cvt_fp), SSE(0x5a, PFX_66, 0, "cvtpd2ps", sse_cvt_fp),
    SSE(0x5a, PFX_F3, 0, "cvtss2sd", sse_cvt_fp), SSE(0x5a, PFX_F2, 0, "cvtsd2ss", sse_cvt_fp),
    SSE(0x5b, PFX_NONE, 0, "cvtdq2ps", sse_cvt_dq_ps),
    SSE(0x5b, PFX_66, 0, "cvtps2dq", sse_cvt_dq_ps),
    SSE(0x5b, PFX_F3, 0, "cvttps2dq", sse_cvt_dq_ps),
    SSE(0xe6, PFX_66, 0, "cvttpd2dq", sse_cvt_dq_pd),
    SSE(0xe6, PFX_F3, 0, "cvtdq2pd", sse_cvt_dq_pd),
    SSE(0xe6, PFX_F2, 0, "cvtpd2dq", sse_cvt_dq_pd),
    SSE(0x2a, PFX_F3, 0, "cvtsi2ss", sse_cvtsi2s), SSE(0x2a, PFX_F2, 0, "cvtsi2sd", sse_cvtsi2s),
    SSE(0x2c, PFX_F3, 0, "cvttss2si", sse_cvts2si), SSE(0x2c, PFX_F2, 0, "cvttsd2si", sse_cvts2si),
    SSE(0x2d, PFX_F3, 0, "cvtss2si", sse_cvts2si), SSE(0x2d, PFX_F2, 0, "cvtsd2si", sse_cvts2si),
    SSE(0x2a, PFX_NONE, 0, "cvtpi2ps", sse_cvtpi2p), SSE(0x2a, PFX_66, 0, "cvtpi2pd", sse_cvtpi2p),
    SSE(0x2c, PFX_NONE, 0, "cvttps2pi", sse_cvtp2pi), SSE(0x2c, PFX_66, 0, "cvttpd2pi", sse_cvtp2pi),
    SSE(0x2d, PFX_NONE, 0, "cvtps2pi", sse_cvtp2pi), SSE(0x2d, PFX_66, 0, "cvtpd2pi", sse_cvtp2pi),
    /* state and ordering */
    SSEG(0xae, 0, PFX_NONE, MEM, "fxsave", fxsave),
    SSEG(0xae, 1, PFX_NONE, MEM, "fxrstor", fxrstor),
    SSEG(0xae, 2, PFX_NONE, MEM, "ldmxcsr", ldmxcsr),
    SSEG(0xae, 3, PFX_NONE, MEM, "stmxcsr", stmxcsr),
    SSEG(0xae, 5, PFX_NONE, R3, "lfence", fence),
    SSEG(0xae, 6, PFX_NONE, R3, "mfence", fence),
    SSEG(0xae, 7, PFX_NONE, R3, "sfence", fence),
    OPDEF_END,
};
