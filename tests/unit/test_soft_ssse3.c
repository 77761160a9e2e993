/* Soft CPU: SSE3 (ADDSUB/HADD/HSUB PS/PD, LDDQU, MOVDDUP, MOVSLDUP,
 * MOVSHDUP, FISTTP) and SSSE3 in its XMM and MMX forms, with their edge
 * cases, alignment and preconditions. Expected values come from the SDM
 * and were checked against a real CPU. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fpu_harness.h"

static void assert_xmm_b(struct harness *h, unsigned n, const uint8_t *want)
{
	assert_memory_equal(fpu_of(h)->xmm[n], want, 16);
}

static void assert_xmm_w(struct harness *h, unsigned n, const uint16_t *want)
{
	uint16_t v[8];
	memcpy(v, fpu_of(h)->xmm[n], 16);
	for (int k = 0; k < 8; k++)
		assert_int_equal(v[k], want[k]);
}

/* MMn, which an MMX instruction leaves with TOP 0. */
static uint64_t mm_get(struct harness *h, unsigned n)
{
	assert_int_equal(top(h), 0);
	return mm(h, n);
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

#define W4(a, b, c, d) ((uint64_t)(a) | (uint64_t)(b) << 16 | (uint64_t)(c) << 32 | (uint64_t)(d) << 48)
#define D2(a, b) ((uint64_t)(a) | (uint64_t)(b) << 32)

/* ---- SSE3 floating point ---- */

static void test_addsub_hadd_hsub(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t code[] = {
	    0xf2, 0x0f, 0xd0, 0xc1,             /* addsubps xmm0, xmm1 */
	    0xf2, 0x0f, 0x7c, 0xd3,             /* haddps xmm2, xmm3 */
	    0xf2, 0x0f, 0x7d, 0xe5,             /* hsubps xmm4, xmm5 */
	    0x66, 0x0f, 0xd0, 0xf7,             /* addsubpd xmm6, xmm7 */
	    0x66, 0x45, 0x0f, 0x7c, 0xc1,       /* haddpd xmm8, xmm9 */
	    0x66, 0x44, 0x0f, 0x7d, 0x16,       /* hsubpd xmm10, [rsi] */
	};
	/* singles 1 2 3 4 and 0.5 0.25 8 16; doubles 1 2 and 0.5 10 */
	for (unsigned n = 0; n < 6; n += 2) {
		xset(h, n, 0x3f800000, 0x40000000, 0x40400000, 0x40800000);
		xset(h, n + 1, 0x3f000000, 0x3e800000, 0x41000000, 0x41800000);
	}
	xset_q(h, 6, 0x3ff0000000000000ULL, 0x4000000000000000ULL);
	xset_q(h, 7, 0x3fe0000000000000ULL, 0x4024000000000000ULL);
	xset_q(h, 8, 0x3ff0000000000000ULL, 0x4000000000000000ULL);
	xset_q(h, 9, 0x3fe0000000000000ULL, 0x4024000000000000ULL);
	xset_q(h, 10, 0x3ff0000000000000ULL, 0x4000000000000000ULL);
	uint64_t m[2] = {0x3fe0000000000000ULL, 0x4024000000000000ULL};
	put(h, DATA, m, sizeof(m));
	run(h, code, sizeof(code), 6);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_xmm(h, 0, 0x3f000000, 0x40100000, 0xc0a00000, 0x41a00000); /* 0.5 2.25 -5 20 */
	assert_xmm(h, 2, 0x40400000, 0x40e00000, 0x3f400000, 0x41c00000); /* 3 7 0.75 24 */
	assert_xmm(h, 4, 0xbf800000, 0xbf800000, 0x3e800000, 0xc1000000); /* -1 -1 0.25 -8 */
	assert_xmm_q(h, 6, 0x3fe0000000000000ULL, 0x4028000000000000ULL); /* 0.5 12 */
	assert_xmm_q(h, 8, 0x4008000000000000ULL, 0x4025000000000000ULL); /* 3 10.5 */
	assert_xmm_q(h, 10, 0xbff0000000000000ULL, 0xc023000000000000ULL); /* -1 -9.5 */
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT);
	harness_free(h);
}

/* A horizontal operation's first operand is the lower element of the
 * pair: its NaN wins; SNaNs are quieted with IE; inf - inf is the
 * default NaN. */
static void test_nan_rules(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t haddps[] = {0xf2, 0x0f, 0x7c, 0xc1};
	static const uint8_t hsubpd[] = {0x66, 0x0f, 0x7d, 0xd3};
	xset(h, 0, 0x7fc00001, 0x7fc00002, 0x3f800000, 0x7f800003);
	xset(h, 1, 0x3f800000, 0xff800004, 0x7f800000, 0xff800000);
	run(h, haddps, sizeof(haddps), 1);
	assert_xmm(h, 0, 0x7fc00001, 0x7fc00003, 0xffc00004, 0xffc00000);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE);
	fpu_of(h)->mxcsr = MXCSR_DEFAULT;
	xset_q(h, 2, 0x7ff8000000000002ULL, 0x7ff0000000000001ULL);
	xset_q(h, 3, 0x3ff0000000000000ULL, 0x3ff0000000000000ULL);
	run(h, hsubpd, sizeof(hsubpd), 1);
	assert_xmm_q(h, 2, 0x7ff8000000000002ULL, 0);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE);
	harness_free(h);
}

static void test_daz_ftz_rounding(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t haddps[] = {0xf2, 0x0f, 0x7c, 0xc1};
	static const uint8_t hsubpd[] = {0x66, 0x0f, 0x7d, 0xd3};
	/* 1 + the smallest denormal: DE and PE, or exactly 1 under DAZ */
	xset(h, 0, 1, 0x3f800000, 0, 0);
	xset(h, 1, 0, 0, 0, 0);
	run(h, haddps, sizeof(haddps), 1);
	assert_xmm(h, 0, 0x3f800000, 0, 0, 0);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_DE | MXCSR_PE);
	fpu_of(h)->mxcsr = MXCSR_DEFAULT | MXCSR_DAZ;
	xset(h, 0, 1, 0x3f800000, 0, 0);
	run(h, haddps, sizeof(haddps), 1);
	assert_xmm(h, 0, 0x3f800000, 0, 0, 0);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_DAZ);
	/* 1.5 * min-normal - min-normal is an exact denormal: kept without
	 * FTZ, flushed to zero with UE and PE under FTZ */
	fpu_of(h)->mxcsr = MXCSR_DEFAULT;
	xset_q(h, 2, 0x0018000000000000ULL, 0x0010000000000000ULL);
	xset_q(h, 3, 0, 0);
	run(h, hsubpd, sizeof(hsubpd), 1);
	assert_xmm_q(h, 2, 0x0008000000000000ULL, 0);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT);
	fpu_of(h)->mxcsr = MXCSR_DEFAULT | MXCSR_FTZ;
	xset_q(h, 2, 0x0018000000000000ULL, 0x0010000000000000ULL);
	run(h, hsubpd, sizeof(hsubpd), 1);
	assert_xmm_q(h, 2, 0, 0);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_FTZ | MXCSR_UE | MXCSR_PE);
	/* +-(1 + 2^-24) is halfway: nearest-even, down, up, toward zero */
	static const uint32_t want[4][2] = {{0x3f800000, 0xbf800000}, {0x3f800000, 0xbf800001},
					    {0x3f800001, 0xbf800000}, {0x3f800000, 0xbf800000}};
	for (uint32_t rc = 0; rc < 4; rc++) {
		fpu_of(h)->mxcsr = MXCSR_DEFAULT | rc << MXCSR_RC_SHIFT;
		xset(h, 0, 0x3f800000, 0x33800000, 0xbf800000, 0xb3800000);
		run(h, haddps, sizeof(haddps), 1);
		assert_xmm(h, 0, want[rc][0], want[rc][1], 0, 0);
		assert_int_equal(mxcsr(h), MXCSR_DEFAULT | rc << MXCSR_RC_SHIFT | MXCSR_PE);
	}
	harness_free(h);
}

static void test_unmasked_exception(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t haddps[] = {0xf2, 0x0f, 0x7c, 0xc1};
	uint32_t mx = MXCSR_DEFAULT & ~(MXCSR_IE << MXCSR_MASKS_SHIFT);
	fpu_of(h)->mxcsr = mx;
	xset(h, 0, 0x3f800000, 0x7f800001, 0x3f800000, 0x3f800000);
	xset(h, 1, 0, 0, 0, 0);
	run(h, haddps, sizeof(haddps), 1);
	assert_fault(h, EXC_XM);
	assert_xmm(h, 0, 0x3f800000, 0x7f800001, 0x3f800000, 0x3f800000); /* unchanged */
	assert_int_equal(mxcsr(h), mx | MXCSR_IE);
	h->state.cr4 &= ~CR4_OSXMMEXCPT;
	fpu_of(h)->mxcsr = mx;
	run(h, haddps, sizeof(haddps), 1);
	assert_fault(h, EXC_UD);
	harness_free(h);
}

/* ---- SSE3 moves ---- */

static void test_sse3_moves(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	uint8_t m[0x40];
	for (unsigned k = 0; k < sizeof(m); k++)
		m[k] = (uint8_t)k;
	put(h, DATA, m, sizeof(m));
	xset(h, 3, 0x11111111, 0x22222222, 0x33333333, 0x44444444);
	static const uint8_t code[] = {
	    0xf2, 0x0f, 0xf0, 0x46, 0x03,       /* lddqu xmm0, [rsi+3] */
	    0xf2, 0x0f, 0x12, 0x4e, 0x05,       /* movddup xmm1, qword ptr [rsi+5] */
	    0xf2, 0x0f, 0x12, 0xd3,             /* movddup xmm2, xmm3 */
	    0xf3, 0x0f, 0x12, 0xe3,             /* movsldup xmm4, xmm3 */
	    0xf3, 0x0f, 0x16, 0x6e, 0x20,       /* movshdup xmm5, xmmword ptr [rsi+0x20] */
	};
	run(h, code, sizeof(code), 5);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_xmm_b(h, 0, m + 3);
	assert_xmm_q(h, 1, 0x0c0b0a0908070605ULL, 0x0c0b0a0908070605ULL);
	assert_xmm(h, 2, 0x11111111, 0x22222222, 0x11111111, 0x22222222);
	assert_xmm(h, 4, 0x11111111, 0x11111111, 0x33333333, 0x33333333);
	assert_xmm(h, 5, 0x27262524, 0x27262524, 0x2f2e2d2c, 0x2f2e2d2c);
	harness_free(h);
}

static void test_sse3_alignment_and_ud(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t movsldup_mis[] = {0xf3, 0x0f, 0x12, 0x76, 0x04}; /* xmm6, [rsi+4] */
	static const uint8_t hsubpd_mis[] = {0x66, 0x0f, 0x7d, 0x56, 0x08};  /* xmm2, [rsi+8] */
	static const uint8_t lddqu_reg[] = {0xf2, 0x0f, 0xf0, 0xc1};         /* lddqu xmm0, xmm1 */
	xset(h, 6, 7, 7, 7, 7);
	run(h, movsldup_mis, sizeof(movsldup_mis), 1);
	assert_fault(h, EXC_GP);
	assert_xmm(h, 6, 7, 7, 7, 7);
	run(h, hsubpd_mis, sizeof(hsubpd_mis), 1);
	assert_fault(h, EXC_GP);
	run(h, lddqu_reg, sizeof(lddqu_reg), 1);
	assert_fault(h, EXC_UD);
	/* SSE preconditions */
	static const uint8_t haddps[] = {0xf2, 0x0f, 0x7c, 0xc1};
	h->state.cr4 &= ~CR4_OSFXSR;
	run(h, haddps, sizeof(haddps), 1);
	assert_fault(h, EXC_UD);
	h->state.cr4 |= CR4_OSFXSR;
	h->state.cr0 |= CR0_TS;
	run(h, haddps, sizeof(haddps), 1);
	assert_fault(h, EXC_NM);
	harness_free(h);
}

/* ---- FISTTP ---- */

static void test_fisttp(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint64_t vals[4] = {
	    0xc005cccccccccccdULL, /* -2.7 */
	    0x4005cccccccccccdULL, /* 2.7 */
	    0x40e0000000000000ULL, /* 32768: beyond m16 */
	    0x4202a05f20000000ULL, /* 1e10: beyond m32 */
	};
	put(h, DATA, vals, sizeof(vals));
	uint16_t cw[2] = {0x0b7f, 0x037e}; /* rounding up; IE unmasked */
	put(h, DATA + 0x100, cw, sizeof(cw));
	uint8_t sentinel[0x20];
	memset(sentinel, 0xaa, sizeof(sentinel));
	put(h, DATA + 0x40, sentinel, sizeof(sentinel));
	static const uint8_t code[] = {
	    0xdb, 0xe3,                         /* fninit */
	    0xd9, 0xae, 0x00, 0x01, 0x00, 0x00, /* fldcw [rsi+0x100]: RC = up */
	    0xdd, 0x06,                         /* fld qword ptr [rsi] */
	    0xdf, 0x4e, 0x40,                   /* fisttp word ptr [rsi+0x40] */
	    0xdd, 0x46, 0x08,                   /* fld qword ptr [rsi+8] */
	    0xdb, 0x4e, 0x44,                   /* fisttp dword ptr [rsi+0x44] */
	    0xdd, 0x46, 0x08,                   /* fld qword ptr [rsi+8] */
	    0xdd, 0x4e, 0x48,                   /* fisttp qword ptr [rsi+0x48] */
	    0xdd, 0x46, 0x10,                   /* fld qword ptr [rsi+0x10] */
	    0xdf, 0x4e, 0x50,                   /* fisttp word ptr [rsi+0x50] */
	    0xdb, 0x4e, 0x54,                   /* fisttp dword ptr [rsi+0x54]: empty */
	};
	run(h, code, sizeof(code), 11);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_int_equal(get_le(h, DATA + 0x40, 2), 0xfffe); /* -2, not -3 */
	assert_int_equal(get_le(h, DATA + 0x44, 4), 2);
	assert_int_equal(get_le(h, DATA + 0x48, 8), 2);
	assert_int_equal(get_le(h, DATA + 0x50, 2), 0x8000);     /* integer indefinite */
	assert_int_equal(get_le(h, DATA + 0x54, 4), 0x80000000); /* stack underflow */
	assert_int_equal(top(h), 1); /* the masked underflow still pops */
	assert_int_equal(fpu_of(h)->ftw, 0);
	assert_int_equal(fpu_of(h)->fsw & (FSW_EXC | FSW_C1 | FSW_ES), FSW_IE | FSW_SF | FSW_PE);

	/* Unmasked IE: nothing stored, nothing popped, #MF at the next
	 * waiting instruction. */
	static const uint8_t unmasked[] = {
	    0xdb, 0xe3,                         /* fninit */
	    0xd9, 0xae, 0x02, 0x01, 0x00, 0x00, /* fldcw [rsi+0x102] */
	    0xdd, 0x46, 0x18,                   /* fld qword ptr [rsi+0x18] */
	    0xdb, 0x4e, 0x58,                   /* fisttp dword ptr [rsi+0x58] */
	    0xdd, 0x46, 0x18,                   /* fld qword ptr [rsi+0x18]: #MF */
	};
	run(h, unmasked, sizeof(unmasked), 5);
	assert_fault(h, EXC_MF);
	assert_int_equal(get_le(h, DATA + 0x58, 4), 0xaaaaaaaa);
	assert_int_equal(top(h), 7);
	assert_int_equal(fpu_of(h)->fsw & (FSW_EXC | FSW_ES), FSW_IE | FSW_ES);

	/* x87 preconditions: #NM with EM or TS */
	static const uint8_t fisttp[] = {0xdf, 0x4e, 0x40};
	h->state.cr0 |= CR0_EM;
	run(h, fisttp, sizeof(fisttp), 1);
	assert_fault(h, EXC_NM);
	h->state.cr0 &= ~CR0_EM;
	h->state.cr0 |= CR0_TS;
	run(h, fisttp, sizeof(fisttp), 1);
	assert_fault(h, EXC_NM);
	harness_free(h);
}

/* ---- SSSE3 ---- */

static void test_pshufb(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t pshufb_x[] = {0x66, 0x0f, 0x38, 0x00, 0xc1}; /* xmm0, xmm1 */
	static const uint8_t pshufb_m[] = {0x0f, 0x38, 0x00, 0xc1};       /* mm0, mm1 */
	static const uint8_t sel[16] = {0x80, 0x0f, 0x01, 0xff, 0x10, 0x7f, 0x05, 0x8a,
					0x03, 0x00, 0x9e, 0x0e, 0x4c, 0x2d, 0x06, 0x07};
	static const uint8_t want[16] = {0, 0xaf, 0xa1, 0, 0xa0, 0xaf, 0xa5, 0,
					 0xa3, 0xa0, 0, 0xae, 0xac, 0xad, 0xa6, 0xa7};
	uint8_t src[16];
	for (unsigned k = 0; k < 16; k++)
		src[k] = (uint8_t)(0xa0 + k);
	xset_bytes(h, 0, src);
	xset_bytes(h, 1, sel);
	run(h, pshufb_x, sizeof(pshufb_x), 1);
	assert_xmm_b(h, 0, want);
	/* MMX: the low 3 bits index */
	mm_set(h, 0, 0xa7a6a5a4a3a2a1a0ULL);
	mm_set(h, 1, 0x8a057f10ff010f80ULL);
	run(h, pshufb_m, sizeof(pshufb_m), 1);
	assert_int_equal(mm_get(h, 0), 0x00a5a7a000a1a700ULL);
	harness_free(h);
}

static void test_horizontal_integer(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t code[] = {
	    0x66, 0x0f, 0x38, 0x01, 0xc1,       /* phaddw xmm0, xmm1 */
	    0x66, 0x0f, 0x38, 0x03, 0xd3,       /* phaddsw xmm2, xmm3 */
	    0x66, 0x0f, 0x38, 0x05, 0xe5,       /* phsubw xmm4, xmm5 */
	    0x66, 0x0f, 0x38, 0x07, 0xf7,       /* phsubsw xmm6, xmm7 */
	    0x66, 0x45, 0x0f, 0x38, 0x02, 0xc1, /* phaddd xmm8, xmm9 */
	    0x66, 0x44, 0x0f, 0x38, 0x06, 0x16, /* phsubd xmm10, [rsi] */
	};
	static const uint16_t a[8] = {0x7fff, 1, 0x8000, 0xffff, 1, 2, 3, 4};
	static const uint16_t b[8] = {0x8000, 0x8000, 0x7fff, 0x7fff, 5, 6, 0, 0};
	static const uint16_t c[8] = {0x8000, 1, 0x7fff, 0xffff, 5, 3, 0, 0};
	static const uint16_t d[8] = {1, 0x8000, 0xffff, 0x7fff, 0, 0, 0, 0};
	xset_bytes(h, 0, a);
	xset_bytes(h, 1, b);
	xset_bytes(h, 2, a);
	xset_bytes(h, 3, b);
	xset_bytes(h, 4, c);
	xset_bytes(h, 5, d);
	xset_bytes(h, 6, c);
	xset_bytes(h, 7, d);
	xset(h, 8, 0x7fffffff, 1, 0xffffffff, 1);
	xset(h, 9, 0x80000000, 0x80000000, 5, 6);
	xset(h, 10, 0x7fffffff, 1, 0xffffffff, 1);
	static const uint32_t m[4] = {0x80000000, 0x80000000, 5, 6};
	put(h, DATA, m, sizeof(m));
	run(h, code, sizeof(code), 6);
	static const uint16_t phaddw[8] = {0x8000, 0x7fff, 3, 7, 0, 0xfffe, 11, 0};
	static const uint16_t phaddsw[8] = {0x7fff, 0x8000, 3, 7, 0x8000, 0x7fff, 11, 0};
	static const uint16_t phsubw[8] = {0x7fff, 0x8000, 2, 0, 0x8001, 0x8000, 0, 0};
	static const uint16_t phsubsw[8] = {0x8000, 0x7fff, 2, 0, 0x7fff, 0x8000, 0, 0};
	assert_xmm_w(h, 0, phaddw);
	assert_xmm_w(h, 2, phaddsw);
	assert_xmm_w(h, 4, phsubw);
	assert_xmm_w(h, 6, phsubsw);
	assert_xmm(h, 8, 0x80000000, 0, 0, 11);
	assert_xmm(h, 10, 0x7ffffffe, 0xfffffffe, 0, 0xffffffff);

	/* MMX: two pairs from each operand */
	static const uint8_t mmx[] = {
	    0x0f, 0x38, 0x01, 0xc1,             /* phaddw mm0, mm1 */
	    0x0f, 0x38, 0x03, 0xd1,             /* phaddsw mm2, mm1 */
	    0x0f, 0x38, 0x02, 0xdc,             /* phaddd mm3, mm4 */
	    0x0f, 0x38, 0x06, 0x6e, 0x03,       /* phsubd mm5, qword ptr [rsi+3] */
	};
	mm_set(h, 0, W4(0x7fff, 1, 0x8000, 0xffff));
	mm_set(h, 1, W4(1, 2, 3, 4));
	mm_set(h, 2, W4(0x7fff, 1, 0x8000, 0xffff));
	mm_set(h, 3, D2(0x7fffffff, 1));
	mm_set(h, 4, D2(5, 6));
	mm_set(h, 5, D2(0x7fffffff, 1));
	uint64_t q = D2(5, 6);
	put(h, DATA + 3, &q, 8);
	run(h, mmx, sizeof(mmx), 4);
	assert_int_equal(mm_get(h, 0), W4(0x8000, 0x7fff, 3, 7));
	assert_int_equal(mm_get(h, 2), W4(0x7fff, 0x8000, 3, 7));
	assert_int_equal(mm_get(h, 3), D2(0x80000000, 11));
	assert_int_equal(mm_get(h, 5), D2(0x7ffffffe, 0xffffffff));
	harness_free(h);
}

static void test_pmaddubsw_pmulhrsw(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t code[] = {
	    0x66, 0x0f, 0x38, 0x04, 0xc1,       /* pmaddubsw xmm0, xmm1 */
	    0x66, 0x0f, 0x38, 0x0b, 0xd3,       /* pmulhrsw xmm2, xmm3 */
	    0x0f, 0x38, 0x04, 0xd3,             /* pmaddubsw mm2, mm3 */
	    0x0f, 0x38, 0x0b, 0xe5,             /* pmulhrsw mm4, mm5 */
	};
	/* unsigned times signed bytes, pairs added with saturation */
	static const uint8_t ub[16] = {0xff, 0xff, 0x80, 0x80, 1, 2, 0xff, 0, 0x10, 0x20, 0xff, 0xff,
				       0xff, 0xff, 0x7f, 0x81};
	static const uint8_t sb[16] = {0x7f, 0x7f, 0x80, 0x80, 0xff, 1, 0x80, 0x80, 2, 3, 0x80, 0x80,
				       0x80, 0x7f, 1, 0xff};
	static const uint16_t madd[8] = {0x7fff, 0x8000, 1, 0x8080, 0x80, 0x8000, 0xff01, 0xfffe};
	/* rounded high halves: -1 * -1 (in Q15) overflows to 0x8000; 0.75 and
	 * 0.5 ulp round up */
	static const uint16_t m1[8] = {0x8000, 0x8000, 0x4000, 1, 0xffff, 0x7fff, 0x2000, 0xc000};
	static const uint16_t m2[8] = {0x8000, 0x7fff, 1, 0x4000, 1, 0x7fff, 3, 0x4000};
	static const uint16_t mulhrs[8] = {0x8000, 0x8001, 1, 1, 0, 0x7ffe, 1, 0xe000};
	xset_bytes(h, 0, ub);
	xset_bytes(h, 1, sb);
	xset_bytes(h, 2, m1);
	xset_bytes(h, 3, m2);
	mm_set(h, 2, le64(ub));
	mm_set(h, 3, le64(sb));
	mm_set(h, 4, W4(0x8000, 0x4000, 0xffff, 0x7fff));
	mm_set(h, 5, W4(0x8000, 1, 1, 0x7fff));
	run(h, code, sizeof(code), 4);
	assert_xmm_w(h, 0, madd);
	assert_xmm_w(h, 2, mulhrs);
	assert_int_equal(mm_get(h, 2), W4(0x7fff, 0x8000, 1, 0x8080));
	assert_int_equal(mm_get(h, 4), W4(0x8000, 1, 0, 0x7ffe));
	harness_free(h);
}

static void test_psign_pabs(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t code[] = {
	    0x66, 0x0f, 0x38, 0x08, 0xc1,       /* psignb xmm0, xmm1 */
	    0x66, 0x0f, 0x38, 0x09, 0xd1,       /* psignw xmm2, xmm1 */
	    0x66, 0x0f, 0x38, 0x0a, 0xd9,       /* psignd xmm3, xmm1 */
	    0x66, 0x0f, 0x38, 0x1c, 0xe5,       /* pabsb xmm4, xmm5 */
	    0x66, 0x0f, 0x38, 0x1d, 0xf5,       /* pabsw xmm6, xmm5 */
	    0x66, 0x0f, 0x38, 0x1e, 0x3e,       /* pabsd xmm7, [rsi] */
	    0x0f, 0x38, 0x0a, 0xca,             /* psignd mm1, mm2 */
	    0x0f, 0x38, 0x1d, 0x76, 0x21,       /* pabsw mm6, qword ptr [rsi+0x21] */
	};
	static const uint8_t d[16] = {5, 5, 5, 0x80, 0x80, 0x7f, 0xff, 1, 9, 9, 9, 9, 9, 9, 9, 9};
	static const uint8_t s[16] = {0xff, 0, 1, 0xff, 1, 0x80, 0x80, 0, 0x80, 0x7f, 0, 0,
				      1, 1, 0xff, 0xff};
	static const uint8_t a[16] = {0x80, 0x7f, 0xff, 0, 0x81, 1, 0, 0x80, 0, 0, 0, 0x80,
				      1, 0, 0, 0x80};
	static const uint8_t words[8] = {0x00, 0x80, 0xff, 0xff, 0x01, 0x80, 0x7f, 0x80};
	xset_bytes(h, 0, d);
	xset_bytes(h, 1, s);
	xset_bytes(h, 2, d);
	xset_bytes(h, 3, d);
	xset_bytes(h, 5, a);
	put(h, DATA, a, sizeof(a));
	put(h, DATA + 0x21, words, sizeof(words));
	mm_set(h, 1, D2(0x80000000, 0x12345678));
	mm_set(h, 2, D2(0xffffffff, 0));
	run(h, code, sizeof(code), 8);
	static const uint8_t signb[16] = {0xfb, 0, 5, 0x80, 0x80, 0x81, 1, 0, 0xf7, 9, 0, 0,
					  9, 9, 0xf7, 0xf7};
	static const uint16_t signw[8] = {0x0505, 0x7ffb, 0x8080, 0x01ff, 0x0909, 0, 0x0909, 0xf6f7};
	static const uint8_t absb[16] = {0x80, 0x7f, 1, 0, 0x7f, 1, 0, 0x80, 0, 0, 0, 0x80,
					 1, 0, 0, 0x80};
	static const uint16_t absw[8] = {0x7f80, 0x00ff, 0x0181, 0x8000, 0, 0x8000, 1, 0x8000};
	assert_xmm_b(h, 0, signb);
	assert_xmm_w(h, 2, signw);
	assert_xmm(h, 3, 0x7ffafafb, 0x01ff7f80, 0x09090909, 0xf6f6f6f7);
	assert_xmm_b(h, 4, absb);
	assert_xmm_w(h, 6, absw);
	assert_xmm(h, 7, 0x00ff7f80, 0x7ffffe7f, 0x80000000, 0x7fffffff);
	assert_int_equal(mm_get(h, 1), D2(0x80000000, 0)); /* -(-2^31) wraps */
	assert_int_equal(mm_get(h, 6), W4(0x8000, 0x0001, 0x7fff, 0x7f81));
	harness_free(h);
}

static void test_palignr(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	uint8_t lo[16], hi[16];
	for (unsigned k = 0; k < 16; k++) {
		lo[k] = (uint8_t)k;
		hi[k] = (uint8_t)(0x10 + k);
	}
	/* xmm0 = hi:lo >> imm bytes; zero from byte 32 on */
	static const uint8_t imms[] = {0, 5, 15, 16, 17, 31, 32, 0x80, 0xff};
	for (size_t n = 0; n < sizeof(imms); n++) {
		uint8_t code[] = {0x66, 0x0f, 0x3a, 0x0f, 0xc1, imms[n]}; /* palignr xmm0, xmm1, imm */
		uint8_t want[16];
		for (unsigned k = 0; k < 16; k++)
			want[k] = imms[n] + k < 32 ? (uint8_t)(imms[n] + k) : 0;
		xset_bytes(h, 0, hi);
		xset_bytes(h, 1, lo);
		run(h, code, sizeof(code), 1);
		assert_xmm_b(h, 0, want);
	}
	/* MMX: mm0 = mm0:mm1 >> imm bytes; zero from byte 16 on */
	static const uint8_t mimms[] = {0, 3, 8, 15, 16, 0xff};
	for (size_t n = 0; n < sizeof(mimms); n++) {
		uint8_t code[] = {0x0f, 0x3a, 0x0f, 0xc1, mimms[n]}; /* palignr mm0, mm1, imm */
		uint8_t cat[16];
		memcpy(cat, lo, 8);
		memcpy(cat + 8, hi, 8);
		uint64_t want = 0;
		for (unsigned k = 0; k < 8; k++)
			if (mimms[n] + k < 16)
				want |= (uint64_t)cat[mimms[n] + k] << (8 * k);
		mm_set(h, 0, le64(hi));
		mm_set(h, 1, le64(lo));
		run(h, code, sizeof(code), 1);
		assert_int_equal(mm_get(h, 0), want);
	}
	harness_free(h);
}

/* ---- alignment, preconditions, the MMX state ---- */

static void test_ssse3_alignment(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t pshufb_mis[] = {0x66, 0x0f, 0x38, 0x00, 0x46, 0x08}; /* [rsi+8] */
	static const uint8_t palignr_mis[] = {0x66, 0x0f, 0x3a, 0x0f, 0x46, 0x01, 0x03};
	static const uint8_t pshufb_mm_mis[] = {0x0f, 0x38, 0x00, 0x46, 0x01}; /* mm0, [rsi+1] */
	xset(h, 0, 1, 2, 3, 4);
	run(h, pshufb_mis, sizeof(pshufb_mis), 1);
	assert_fault(h, EXC_GP);
	assert_xmm(h, 0, 1, 2, 3, 4);
	run(h, palignr_mis, sizeof(palignr_mis), 1);
	assert_fault(h, EXC_GP);
	run(h, pshufb_mm_mis, sizeof(pshufb_mm_mis), 1); /* no alignment rule for MMX */
	assert_int_equal(h->state.rip, CODE + sizeof(pshufb_mm_mis));
	harness_free(h);
}

static void test_ssse3_preconditions(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t xmm_form[] = {0x66, 0x0f, 0x38, 0x0b, 0xca}; /* pmulhrsw xmm1, xmm2 */
	static const uint8_t mmx_form[] = {0x0f, 0x38, 0x0a, 0xca};       /* psignd mm1, mm2 */
	/* XMM forms: #UD without OSFXSR or with EM, #NM with TS */
	h->state.cr4 &= ~CR4_OSFXSR;
	run(h, xmm_form, sizeof(xmm_form), 1);
	assert_fault(h, EXC_UD);
	run(h, mmx_form, sizeof(mmx_form), 1); /* MMX does not need OSFXSR */
	assert_int_equal(h->state.rip, CODE + sizeof(mmx_form));
	h->state.cr4 |= CR4_OSFXSR;
	h->state.cr0 |= CR0_EM;
	run(h, xmm_form, sizeof(xmm_form), 1);
	assert_fault(h, EXC_UD);
	run(h, mmx_form, sizeof(mmx_form), 1);
	assert_fault(h, EXC_UD);
	h->state.cr0 &= ~CR0_EM;
	h->state.cr0 |= CR0_TS;
	run(h, xmm_form, sizeof(xmm_form), 1);
	assert_fault(h, EXC_NM);
	run(h, mmx_form, sizeof(mmx_form), 1);
	assert_fault(h, EXC_NM);
	h->state.cr0 &= ~CR0_TS;
	/* MMX forms: #MF while an unmasked x87 exception is pending; the
	 * x87 state is untouched */
	struct fpu_state *f = fpu_of(h);
	f->fcw = 0x037e;
	f->fsw = FSW_IE | FSW_ES | FSW_B | 3u << FSW_TOP_SHIFT;
	f->ftw = 0x08;
	run(h, mmx_form, sizeof(mmx_form), 1);
	assert_fault(h, EXC_MF);
	assert_int_equal(f->fsw, FSW_IE | FSW_ES | FSW_B | 3u << FSW_TOP_SHIFT);
	assert_int_equal(f->ftw, 0x08);
	run(h, xmm_form, sizeof(xmm_form), 1); /* the XMM form does not care */
	assert_int_equal(h->state.rip, CODE + sizeof(xmm_form));
	harness_free(h);
}

/* An MMX instruction sets TOP to 0 and tags every register valid; the
 * destination's bits 79-64 become ones. A faulting memory operand leaves
 * all of it as it was. */
static void test_mmx_state(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	struct fpu_state *f = fpu_of(h);
	static const uint8_t phaddw[] = {0x0f, 0x38, 0x01, 0xca};        /* mm1, mm2 */
	static const uint8_t pabsb_mem[] = {0x0f, 0x38, 0x1c, 0x06};     /* mm0, [rsi] */
	static const uint8_t rex[] = {0x45, 0x0f, 0x38, 0x00, 0xca};    /* pshufb mm1, mm2, REX.RB */
	memset(f->st, 0, sizeof(f->st));
	f->fsw = 5u << FSW_TOP_SHIFT;
	f->ftw = 0x01;
	/* physical R1 and R2 are ST(4) and ST(5) while TOP = 5 */
	uint64_t r1 = W4(1, 2, 3, 4), r2 = W4(5, 6, 7, 8);
	memcpy(f->st[4], &r1, 8);
	memcpy(f->st[5], &r2, 8);
	f->st[5][8] = 0x34;
	f->st[5][9] = 0x12;
	h->state.gpr[GPR_RSI] = 0x8000000000000000ULL; /* non-canonical: #GP */
	run(h, pabsb_mem, sizeof(pabsb_mem), 1);
	assert_fault(h, EXC_GP);
	assert_int_equal(top(h), 5);
	assert_int_equal(f->ftw, 0x01);
	h->state.gpr[GPR_RSI] = DATA;
	run(h, phaddw, sizeof(phaddw), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(phaddw));
	assert_int_equal(top(h), 0);
	assert_int_equal(f->ftw, 0xff);
	assert_int_equal(mm_get(h, 1), W4(3, 7, 11, 15));
	assert_int_equal(f->st[1][8], 0xff);
	assert_int_equal(f->st[1][9], 0xff);
	assert_int_equal(mm_get(h, 2), r2); /* the source keeps its exponent */
	assert_int_equal(f->st[2][8], 0x34);
	assert_int_equal(f->st[2][9], 0x12);
	/* REX.R and REX.B do not extend MM registers */
	mm_set(h, 1, 0x0706050403020100ULL);
	mm_set(h, 2, 0x0001020304050607ULL);
	run(h, rex, sizeof(rex), 1);
	assert_int_equal(mm_get(h, 1), 0x0001020304050607ULL);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addsub_hadd_hsub),
	    cmocka_unit_test(test_nan_rules),
	    cmocka_unit_test(test_daz_ftz_rounding),
	    cmocka_unit_test(test_unmasked_exception),
	    cmocka_unit_test(test_sse3_moves),
	    cmocka_unit_test(test_sse3_alignment_and_ud),
	    cmocka_unit_test(test_fisttp),
	    cmocka_unit_test(test_pshufb),
	    cmocka_unit_test(test_horizontal_integer),
	    cmocka_unit_test(test_pmaddubsw_pmulhrsw),
	    cmocka_unit_test(test_psign_pabs),
	    cmocka_unit_test(test_palignr),
	    cmocka_unit_test(test_ssse3_alignment),
	    cmocka_unit_test(test_ssse3_preconditions),
	    cmocka_unit_test(test_mmx_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
