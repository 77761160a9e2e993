/* Soft CPU: SSE/SSE2 moves, packed integer, floating point, conversions,
 * MXCSR, FXSAVE/FXRSTOR and their preconditions. Expected values come
 * from the SDM and were checked against a real CPU. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fpu_harness.h"

/* ---- moves ---- */

static void test_moves_and_zeroing(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint32_t data[8] = {0x11111111, 0x22222222, 0x33333333, 0x44444444,
					 0x55555555, 0x66666666, 0x77777777, 0x88888888};
	put(h, DATA, data, sizeof(data));
	xset(h, 3, 0xaaaaaaaa, 0xbbbbbbbb, 0xcccccccc, 0xdddddddd);
	xset(h, 4, 0xaaaaaaaa, 0xbbbbbbbb, 0xcccccccc, 0xdddddddd);
	static const uint8_t code[] = {
	    0x0f, 0x28, 0x06,                         /* movaps xmm0, [rsi] */
	    0xf3, 0x0f, 0x6f, 0x4e, 0x04,             /* movdqu xmm1, [rsi+4] */
	    0xf3, 0x0f, 0x10, 0x1e,                   /* movss xmm3, [rsi] (clears the rest) */
	    0xf3, 0x0f, 0x10, 0xe0,                   /* movss xmm4, xmm0 (merges) */
	    0x66, 0x44, 0x0f, 0x6f, 0xc1,             /* movdqa xmm8, xmm1 */
	    0xf2, 0x0f, 0x11, 0x46, 0x40,             /* movsd [rsi+0x40], xmm0 */
	    0xf3, 0x0f, 0x7f, 0x4e, 0x51,             /* movdqu [rsi+0x51], xmm1 */
	};
	run(h, code, sizeof(code), 7);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_xmm(h, 0, 0x11111111, 0x22222222, 0x33333333, 0x44444444);
	assert_xmm(h, 1, 0x22222222, 0x33333333, 0x44444444, 0x55555555);
	assert_xmm(h, 3, 0x11111111, 0, 0, 0);
	assert_xmm(h, 4, 0x11111111, 0xbbbbbbbb, 0xcccccccc, 0xdddddddd);
	assert_xmm(h, 8, 0x22222222, 0x33333333, 0x44444444, 0x55555555);
	assert_int_equal(get64(h, DATA + 0x40), 0x2222222211111111ULL);
	assert_int_equal(get64(h, DATA + 0x51), 0x3333333322222222ULL);
	assert_int_equal(get64(h, DATA + 0x59), 0x5555555544444444ULL);
	harness_free(h);
}

static void test_movd_movq_and_halves(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	h->state.gpr[GPR_RAX] = 0x8877665544332211ULL;
	xset(h, 0, 0x01020304, 0x05060708, 0x090a0b0c, 0x0d0e0f10);
	xset(h, 2, 1, 2, 3, 4);
	xset(h, 7, 9, 9, 9, 9);
	uint64_t m = 0xfedcba9876543210ULL;
	put(h, DATA, &m, 8);
	static const uint8_t code[] = {
	    0x66, 0x0f, 0x6e, 0xe8,             /* movd xmm5, eax */
	    0x66, 0x48, 0x0f, 0x6e, 0xf0,       /* movq xmm6, rax */
	    0x66, 0x48, 0x0f, 0x7e, 0xc3,       /* movq rbx, xmm0 */
	    0x66, 0x0f, 0x7e, 0xc1,             /* movd ecx, xmm0 */
	    0xf3, 0x0f, 0x7e, 0x3e,             /* movq xmm7, [rsi] */
	    0x66, 0x0f, 0xd6, 0x46, 0x50,       /* movq [rsi+0x50], xmm0 */
	    0x0f, 0x16, 0x16,                   /* movhps xmm2, [rsi] */
	    0x0f, 0x12, 0xd0,                   /* movhlps xmm2, xmm0 */
	    0x66, 0x0f, 0xd7, 0xd0,             /* pmovmskb edx, xmm0 */
	    0x66, 0x0f, 0xc5, 0xf8, 0x05,       /* pextrw edi, xmm0, 5 */
	    0x66, 0x0f, 0xc4, 0xe8, 0x0f,       /* pinsrw xmm5, eax, 15 (index 7) */
	    0x48, 0x0f, 0xc3, 0x46, 0x60,       /* movnti [rsi+0x60], rax */
	};
	run(h, code, sizeof(code), 12);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_xmm(h, 5, 0x44332211, 0, 0, 0x22110000);
	assert_xmm_q(h, 6, 0x8877665544332211ULL, 0);
	assert_int_equal(h->state.gpr[GPR_RBX], 0x0506070801020304ULL);
	assert_int_equal(h->state.gpr[GPR_RCX], 0x01020304ULL); /* 32-bit write zero-extends */
	assert_xmm_q(h, 7, m, 0);
	assert_int_equal(get64(h, DATA + 0x50), 0x0506070801020304ULL);
	assert_xmm_q(h, 2, 0x0d0e0f10090a0b0cULL, m);
	assert_int_equal(h->state.gpr[GPR_RDX], 0); /* no byte of xmm0 has its top bit set */
	assert_int_equal(h->state.gpr[GPR_RDI], 0x090a);
	assert_int_equal(get64(h, DATA + 0x60), 0x8877665544332211ULL);
	harness_free(h);
}

/* ---- packed integer (vectors checked against hardware) ---- */

struct int_case {
	const char *name;
	uint8_t code[6];
	uint8_t len;
	uint32_t want[4];
};

static const struct int_case int_cases[] = {
    {"paddb", {0x66, 0x0f, 0xfc, 0xc1}, 4, {0x59d959d9, 0x59d959d9, 0x59d959d9, 0x59d959d9}},
    {"paddusb", {0x66, 0x0f, 0xdc, 0xc1}, 4, {0x59d9ffd9, 0xffd9ffd9, 0xffd959ff, 0xffd9ffd9}},
    {"psubsw", {0x66, 0x0f, 0xe9, 0xc1}, 4, {0x144b81b7, 0x3d73a8df, 0x649bd107, 0x8dc3f92f}},
    {"pcmpgtb", {0x66, 0x0f, 0x64, 0xc1}, 4, {0xffff0000, 0xff000000, 0xffff00ff, 0x00000000}},
    {"pmaddwd", {0x66, 0x0f, 0xf5, 0xc1}, 4, {0xffca5d46, 0x2ad16ffe, 0x03e78076, 0x160d96ae}},
    {"pmulhw", {0x66, 0x0f, 0xe5, 0xc1}, 4, {0x077bf84f, 0x1745138b, 0xfdff05e7, 0xfb231aea}},
    {"pmuludq", {0x66, 0x0f, 0xf4, 0xc1}, 4, {0x0b0a2a48, 0x077b6a8b, 0x19c1b770, 0x5d39f822}},
    {"psadbw", {0x66, 0x0f, 0xf6, 0xc1}, 4, {0x0000032a, 0, 0x000002bc, 0}},
    {"packsswb", {0x66, 0x0f, 0x63, 0xc1}, 4, {0x80807f80, 0x80807f7f, 0x80807f7f, 0x7f80807f}},
    {"packuswb", {0x66, 0x0f, 0x67, 0xc1}, 4, {0x0000ff00, 0x0000ffff, 0x0000ffff, 0xff0000ff}},
    {"packssdw", {0x66, 0x0f, 0x6b, 0xc1}, 4, {0x80007fff, 0x80007fff, 0x80007fff, 0x7fff8000}},
    {"punpcklbw", {0x66, 0x0f, 0x60, 0xc1}, 4, {0x6ced11c8, 0x2237c712, 0xd8817d5c, 0x8ecb33a6}},
    {"punpckhwd", {0x66, 0x0f, 0x69, 0xc1}, 4, {0x44e915f0, 0xfa9f5f3a, 0xb055a984, 0x660bf3ce}},
    {"pshufd", {0x66, 0x0f, 0x70, 0xc1, 0x1b}, 5, {0x660bb055, 0xfa9f44e9, 0x8e33d87d, 0x22c76c11}},
    {"pshufhw", {0xf3, 0x0f, 0x70, 0xc1, 0x1b}, 5, {0x22c76c11, 0x8e33d87d, 0xb055660b, 0x44e9fa9f}},
    {"psraw 3", {0x66, 0x0f, 0x71, 0xe0, 0x03}, 5, {0x06e2fdb9, 0xf974f02b, 0x0be702be, 0xfe79f530}},
    {"psrldq 5", {0x66, 0x0f, 0x73, 0xd8, 0x05}, 5, {0xf0cba681, 0x845f3a15, 0x00f3cea9, 0}},
    {"pslldq 3", {0x66, 0x0f, 0x73, 0xf8, 0x03}, 5, {0xc8000000, 0x5c3712ed, 0xf0cba681, 0x845f3a15}},
    {"pavgb", {0x66, 0x0f, 0xe0, 0xc1}, 4, {0x2d6dad6d, 0xad6dad6d, 0xad6d2ded, 0xad6dad6d}},
    {"pminub", {0x66, 0x0f, 0xda, 0xc1}, 4, {0x22126c11, 0x8e33815c, 0x5f3a15e9, 0x660ba955}},
    {"pmaxsw", {0x66, 0x0f, 0xee, 0xc1}, 4, {0x37126c11, 0xcba6d87d, 0x5f3a44e9, 0x660bb055}},
    {"shufps", {0x0f, 0xc6, 0xc1, 0x4e}, 4, {0x5f3a15f0, 0xf3cea984, 0x22c76c11, 0x8e33d87d}},
    {"pxor self", {0x66, 0x0f, 0xef, 0xc0}, 4, {0, 0, 0, 0}},
    {"pcmpeqd self", {0x66, 0x0f, 0x76, 0xc0}, 4, {~0u, ~0u, ~0u, ~0u}},
    {"psrlq 64 (xmm count)", {0x66, 0x0f, 0xd3, 0xc2}, 4, {0, 0, 0, 0}},
};

static void test_packed_integer(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	for (size_t k = 0; k < sizeof(int_cases) / sizeof(int_cases[0]); k++) {
		const struct int_case *c = &int_cases[k];
		xset(h, 0, 0x3712edc8, 0xcba6815c, 0x5f3a15f0, 0xf3cea984);
		xset(h, 1, 0x22c76c11, 0x8e33d87d, 0xfa9f44e9, 0x660bb055);
		xset_q(h, 2, 64, 0);
		run(h, c->code, c->len, 1);
		print_message("%s\n", c->name);
		assert_int_equal(h->state.rip, CODE + c->len);
		assert_xmm(h, 0, c->want[0], c->want[1], c->want[2], c->want[3]);
	}
	harness_free(h);
}

/* ---- alignment and preconditions ---- */

static void test_alignment_gp(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t movaps_mis[] = {0x0f, 0x28, 0x4e, 0x01};      /* movaps xmm1, [rsi+1] */
	static const uint8_t movups_mis[] = {0x0f, 0x10, 0x4e, 0x01};      /* movups xmm1, [rsi+1] */
	static const uint8_t paddb_mis[] = {0x66, 0x0f, 0xfc, 0x46, 0x08}; /* paddb xmm0, [rsi+8] */
	static const uint8_t movss_mis[] = {0xf3, 0x0f, 0x10, 0x46, 0x03}; /* movss xmm0, [rsi+3] */
	static const uint8_t movdqa_st[] = {0x66, 0x0f, 0x7f, 0x46, 0x04}; /* movdqa [rsi+4], xmm0 */
	xset(h, 1, 7, 7, 7, 7);
	run(h, movaps_mis, sizeof(movaps_mis), 1);
	assert_fault(h, EXC_GP);
	assert_xmm(h, 1, 7, 7, 7, 7);
	run(h, movups_mis, sizeof(movups_mis), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(movups_mis));
	run(h, paddb_mis, sizeof(paddb_mis), 1);
	assert_fault(h, EXC_GP);
	run(h, movss_mis, sizeof(movss_mis), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(movss_mis));
	uint64_t before = get64(h, DATA + 4);
	run(h, movdqa_st, sizeof(movdqa_st), 1);
	assert_fault(h, EXC_GP);
	assert_int_equal(get64(h, DATA + 4), before);
	harness_free(h);
}

static void test_preconditions(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t addps[] = {0x0f, 0x58, 0xc1};
	static const uint8_t movnti[] = {0x0f, 0xc3, 0x06};
	static const uint8_t fxsave[] = {0x0f, 0xae, 0x06};
	h->state.cr4 &= ~CR4_OSFXSR;
	run(h, addps, sizeof(addps), 1);
	assert_fault(h, EXC_UD);
	h->state.cr4 |= CR4_OSFXSR;
	h->state.cr0 |= CR0_EM;
	run(h, addps, sizeof(addps), 1);
	assert_fault(h, EXC_UD);
	run(h, fxsave, sizeof(fxsave), 1);
	assert_fault(h, EXC_NM); /* FXSAVE: EM gives #NM */
	h->state.cr0 &= ~CR0_EM;
	h->state.cr0 |= CR0_TS;
	run(h, addps, sizeof(addps), 1);
	assert_fault(h, EXC_NM);
	run(h, movnti, sizeof(movnti), 1); /* a GPR store: no SSE checks */
	assert_int_equal(h->state.rip, CODE + sizeof(movnti));
	h->state.cr0 &= ~CR0_TS;
	run(h, addps, sizeof(addps), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(addps));
	harness_free(h);
}

/* ---- floating point ---- */

static const uint8_t divps[] = {0x0f, 0x5e, 0xc1};

static void test_rounding_modes(void **state)
{
	(void)state;
	static const uint32_t want[4][4] = {
	    {0x3eaaaaab, 0xbeaaaaab, 0x3f2aaaab, 0x7f800000}, /* nearest */
	    {0x3eaaaaaa, 0xbeaaaaab, 0x3f2aaaaa, 0x7f800000}, /* down */
	    {0x3eaaaaab, 0xbeaaaaaa, 0x3f2aaaab, 0x7f800000}, /* up */
	    {0x3eaaaaaa, 0xbeaaaaaa, 0x3f2aaaaa, 0x7f800000}, /* toward zero */
	};
	struct harness *h = fpu_harness_new(true);
	for (uint32_t rc = 0; rc < 4; rc++) {
		cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT | rc << MXCSR_RC_SHIFT;
		xset(h, 0, 0x3f800000, 0xbf800000, 0x40000000, 0x3f800000); /* 1 -1 2 1 */
		xset(h, 1, 0x40400000, 0x40400000, 0x40400000, 0);          /* 3 3 3 0 */
		run(h, divps, sizeof(divps), 1);
		assert_xmm(h, 0, want[rc][0], want[rc][1], want[rc][2], want[rc][3]);
		assert_int_equal(mxcsr(h), MXCSR_DEFAULT | rc << MXCSR_RC_SHIFT | MXCSR_ZE | MXCSR_PE);
	}
	harness_free(h);
}

static void test_nan_rules_and_minmax(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t addps[] = {0x0f, 0x58, 0xc1};
	static const uint8_t minps[] = {0x0f, 0x5d, 0xc1};
	static const uint8_t maxps[] = {0x0f, 0x5f, 0xc1};
	static const uint8_t sqrtpd[] = {0x66, 0x0f, 0x51, 0xc1};
	/* QNaN+QNaN: the first source; 1+SNaN: the SNaN quieted; SNaN+1;
	 * 1+inf. Any SNaN raises IE. */
	xset(h, 0, 0x7fc00001, 0x3f800000, 0x7f800001, 0x3f800000);
	xset(h, 1, 0x7fc00002, 0xff800003, 0x3f800000, 0x7f800000);
	run(h, addps, sizeof(addps), 1);
	assert_xmm(h, 0, 0x7fc00001, 0xffc00003, 0x7fc00001, 0x7f800000);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE);
	/* MIN/MAX: a NaN or two zeros give the second source; a QNaN raises IE. */
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
	xset(h, 0, 0x7fc00000, 0, 0x80000000, 0x3f800000);
	xset(h, 1, 0x3f800000, 0x80000000, 0, 0x40000000);
	run(h, minps, sizeof(minps), 1);
	assert_xmm(h, 0, 0x3f800000, 0x80000000, 0, 0x3f800000);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE);
	xset(h, 0, 0x7fc00000, 0, 0x80000000, 0x3f800000);
	run(h, maxps, sizeof(maxps), 1);
	assert_xmm(h, 0, 0x3f800000, 0x80000000, 0, 0x40000000);
	/* sqrt(-1) is the default NaN with IE; sqrt(4) = 2 */
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
	xset_q(h, 1, 0xbff0000000000000ULL, 0x4010000000000000ULL);
	run(h, sqrtpd, sizeof(sqrtpd), 1);
	assert_xmm_q(h, 0, 0xfff8000000000000ULL, 0x4000000000000000ULL);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE);
	harness_free(h);
}

static void test_daz_ftz(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t mulss[] = {0xf3, 0x0f, 0x59, 0xc1};
	static const uint8_t addss[] = {0xf3, 0x0f, 0x58, 0xc1};
	/* min-normal * 0.5 is an exact denormal: FTZ flushes it with UE|PE */
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT | MXCSR_FTZ;
	xset(h, 0, 0x00800000, 5, 5, 5);
	xset(h, 1, 0x3f000000, 0, 0, 0);
	run(h, mulss, sizeof(mulss), 1);
	assert_xmm(h, 0, 0, 5, 5, 5);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_FTZ | MXCSR_UE | MXCSR_PE);
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
	xset(h, 0, 0x00800000, 5, 5, 5);
	run(h, mulss, sizeof(mulss), 1);
	assert_xmm(h, 0, 0x00400000, 5, 5, 5);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT);
	/* a denormal source: DE without DAZ; zero (and no DE) with DAZ */
	xset(h, 0, 5, 0, 0, 0);
	xset(h, 1, 0, 0, 0, 0);
	run(h, addss, sizeof(addss), 1);
	assert_xmm(h, 0, 5, 0, 0, 0);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_DE);
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT | MXCSR_DAZ;
	run(h, addss, sizeof(addss), 1);
	assert_xmm(h, 0, 0, 0, 0, 0);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_DAZ);
	harness_free(h);
}

static void test_compares(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const struct {
		uint8_t pred;
		uint32_t want[4];
		uint32_t flags;
	} cmp[] = {
	    {1, {0, 0, 0, 0}, MXCSR_IE},                 /* LT: signals on QNaN */
	    {0, {0, ~0u, 0, 0}, MXCSR_IE},               /* EQ: IE from the SNaN only */
	    {3, {~0u, 0, 0, ~0u}, MXCSR_IE},             /* UNORD */
	    {6, {~0u, 0, ~0u, ~0u}, MXCSR_IE},           /* NLE */
	};
	for (size_t k = 0; k < sizeof(cmp) / sizeof(cmp[0]); k++) {
		uint8_t code[] = {0x0f, 0xc2, 0xc1, cmp[k].pred};
		cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
		xset(h, 0, 0x7fc00000, 0x3f800000, 0x40000000, 0x7f800001);
		xset(h, 1, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000);
		run(h, code, sizeof(code), 1);
		assert_xmm(h, 0, cmp[k].want[0], cmp[k].want[1], cmp[k].want[2], cmp[k].want[3]);
		assert_int_equal(mxcsr(h), MXCSR_DEFAULT | cmp[k].flags);
	}
	/* CMPEQSS with a QNaN only: no exception */
	static const uint8_t cmpeqss[] = {0xf3, 0x0f, 0xc2, 0xc1, 0x00};
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
	xset(h, 0, 0x7fc00000, 9, 9, 9);
	run(h, cmpeqss, sizeof(cmpeqss), 1);
	assert_xmm(h, 0, 0, 9, 9, 9);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT);
	harness_free(h);
}

static void test_comis_flags(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t comiss[] = {0x0f, 0x2f, 0xc1};
	static const uint8_t ucomiss[] = {0x0f, 0x2e, 0xc1};
	static const struct {
		uint32_t a, b;
		uint64_t flags;
	} c[] = {
	    {0x3f800000, 0x40000000, FLAG_CF},                     /* less */
	    {0x40000000, 0x3f800000, 0},                           /* greater */
	    {0x80000000, 0x00000000, FLAG_ZF},                     /* -0 == +0 */
	    {0x7fc00000, 0x3f800000, FLAG_ZF | FLAG_PF | FLAG_CF}, /* unordered */
	};
	for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
		/* OF, SF, AF set beforehand must be cleared */
		h->state.rflags = RFLAGS_FIXED | FLAG_OF | FLAG_SF | FLAG_AF | FLAG_ZF | FLAG_CF;
		xset(h, 0, c[k].a, 0, 0, 0);
		xset(h, 1, c[k].b, 0, 0, 0);
		cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
		run(h, ucomiss, sizeof(ucomiss), 1);
		assert_int_equal(h->state.rflags & FLAGS_ARITH, c[k].flags);
		assert_int_equal(mxcsr(h), MXCSR_DEFAULT); /* UCOMISS: QNaN is quiet */
		run(h, comiss, sizeof(comiss), 1);
		assert_int_equal(h->state.rflags & FLAGS_ARITH, c[k].flags);
		assert_int_equal(mxcsr(h), MXCSR_DEFAULT | (k == 3 ? MXCSR_IE : 0));
	}
	harness_free(h);
}

static void test_conversions(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t cvtss2si[] = {0xf3, 0x0f, 0x2d, 0xc1};             /* eax, xmm1 */
	static const uint8_t cvttsd2si64[] = {0xf2, 0x48, 0x0f, 0x2c, 0xd9};    /* rbx, xmm1 */
	static const uint8_t cvtsi2ss[] = {0xf3, 0x0f, 0x2a, 0xc2};             /* xmm0, edx */
	static const uint8_t cvtsd2ss[] = {0xf2, 0x0f, 0x5a, 0xc1};
	static const uint8_t cvtps2pd[] = {0x0f, 0x5a, 0xc1};
	static const uint8_t cvttps2dq[] = {0xf3, 0x0f, 0x5b, 0xc1};
	static const uint8_t cvtps2dq[] = {0x66, 0x0f, 0x5b, 0xc1};
	static const int32_t rounded[4][2] = {{2, -2}, {2, -3}, {3, -2}, {2, -2}};
	for (uint32_t rc = 0; rc < 4; rc++) {
		for (int s = 0; s < 2; s++) {
			cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT | rc << MXCSR_RC_SHIFT;
			xset(h, 1, s ? 0xc0200000 : 0x40200000, 0, 0, 0); /* +-2.5 */
			run(h, cvtss2si, sizeof(cvtss2si), 1);
			assert_int_equal(h->state.gpr[GPR_RAX], (uint32_t)rounded[rc][s]);
			assert_int_equal(mxcsr(h) & MXCSR_FLAGS, MXCSR_PE);
		}
	}
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
	xset_q(h, 1, 0x4415af1d78b58c40ULL, 0); /* 1e20: out of range */
	run(h, cvttsd2si64, sizeof(cvttsd2si64), 1);
	assert_int_equal(h->state.gpr[GPR_RBX], 0x8000000000000000ULL);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE);
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT | 2u << MXCSR_RC_SHIFT;
	h->state.gpr[GPR_RDX] = 16777217;
	xset(h, 0, 0, 7, 7, 7);
	run(h, cvtsi2ss, sizeof(cvtsi2ss), 1);
	assert_xmm(h, 0, 0x4b800001, 7, 7, 7); /* rounded up */
	assert_int_equal(mxcsr(h) & MXCSR_FLAGS, MXCSR_PE);
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
	xset_q(h, 1, 0x7ff4000000000001ULL, 0); /* SNaN: quieted, payload truncated */
	run(h, cvtsd2ss, sizeof(cvtsd2ss), 1);
	assert_xmm(h, 0, 0x7fe00000, 7, 7, 7);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE);
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
	xset(h, 1, 0x7f800001, 0x00000001, 0xdead, 0xbeef);
	run(h, cvtps2pd, sizeof(cvtps2pd), 1);
	assert_xmm_q(h, 0, 0x7ff8000020000000ULL, 0x36a0000000000000ULL);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE | MXCSR_DE);
	xset(h, 1, 0x4f000000, 0xbfc00000, 0x7fc00000, 0x40200000); /* 2^31 -1.5 NaN 2.5 */
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT;
	run(h, cvttps2dq, sizeof(cvttps2dq), 1);
	assert_xmm(h, 0, 0x80000000, 0xffffffff, 0x80000000, 2);
	assert_int_equal(mxcsr(h), MXCSR_DEFAULT | MXCSR_IE | MXCSR_PE);
	run(h, cvtps2dq, sizeof(cvtps2dq), 1);
	assert_xmm(h, 0, 0x80000000, 0xfffffffe, 0x80000000, 2);
	harness_free(h);
}

/* ---- exceptions, MXCSR ---- */

static void test_unmasked_exception(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	uint32_t mx = MXCSR_DEFAULT & ~(MXCSR_ZE << MXCSR_MASKS_SHIFT);
	cpu_of(h)->fpu.mxcsr = mx;
	xset(h, 0, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000);
	xset(h, 1, 0x40400000, 0x40400000, 0x40400000, 0);
	run(h, divps, sizeof(divps), 1);
	assert_fault(h, EXC_XM);
	assert_xmm(h, 0, 0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000); /* unchanged */
	assert_int_equal(mxcsr(h), mx | MXCSR_ZE); /* pre-computation only: no PE */
	h->state.cr4 &= ~CR4_OSXMMEXCPT;
	cpu_of(h)->fpu.mxcsr = mx;
	run(h, divps, sizeof(divps), 1);
	assert_fault(h, EXC_UD);
	harness_free(h);
}

static void test_ldmxcsr_stmxcsr(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t code[] = {0x0f, 0xae, 0x16,        /* ldmxcsr [rsi] */
				       0x0f, 0xae, 0x5e, 0x04}; /* stmxcsr [rsi+4] */
	uint32_t v[2] = {0xffff, 0};
	put(h, DATA, v, sizeof(v));
	run(h, code, sizeof(code), 2);
	assert_int_equal(mxcsr(h), 0xffff);
	assert_int_equal(get64(h, DATA) >> 32, 0xffff);
	v[0] = 0x10000 | MXCSR_DEFAULT; /* reserved bit */
	put(h, DATA, v, sizeof(v));
	run(h, code, sizeof(code), 1);
	assert_fault(h, EXC_GP);
	assert_int_equal(mxcsr(h), 0xffff);
	harness_free(h);
}

/* ---- FXSAVE / FXRSTOR ---- */

static void fill_fpu(struct fpu_state *f)
{
	f->fcw = 0x027f;
	f->fsw = 0x3800 | FSW_PE;
	f->ftw = 0x80;
	f->fop = 0x1e8;
	f->fip = 0x123456789aULL;
	f->fdp = 0xabcdef0123ULL;
	f->mxcsr = MXCSR_DEFAULT | MXCSR_PE;
	for (unsigned r = 0; r < 8; r++)
		for (unsigned b = 0; b < 10; b++)
			f->st[r][b] = (uint8_t)(0x10 * r + b);
	for (unsigned r = 0; r < 16; r++)
		for (unsigned b = 0; b < 16; b++)
			f->xmm[r][b] = (uint8_t)(r << 4 | b);
}

static void test_fxsave_layout(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	uint8_t a[512];
	memset(a, 0xaa, sizeof(a));
	put(h, DATA, a, sizeof(a));
	fill_fpu(&cpu_of(h)->fpu);
	static const uint8_t fxsave[] = {0x0f, 0xae, 0x06};
	static const uint8_t fxsave64[] = {0x48, 0x0f, 0xae, 0x06};
	run(h, fxsave, sizeof(fxsave), 1);
	guest_mem_read(&h->mem, DATA, a, sizeof(a));
	uint16_t w;
	uint32_t d;
	uint64_t q;
	memcpy(&w, a + 0, 2); assert_int_equal(w, 0x027f);
	memcpy(&w, a + 2, 2); assert_int_equal(w, 0x3800 | FSW_PE);
	assert_int_equal(a[4], 0x80);
	assert_int_equal(a[5], 0);
	memcpy(&w, a + 6, 2); assert_int_equal(w, 0x1e8);
	memcpy(&q, a + 8, 8); assert_int_equal(q, 0x3456789aULL); /* 32-bit IP, CS = 0 */
	memcpy(&q, a + 16, 8); assert_int_equal(q, 0xcdef0123ULL);
	memcpy(&d, a + 24, 4); assert_int_equal(d, MXCSR_DEFAULT | MXCSR_PE);
	memcpy(&d, a + 28, 4); assert_int_equal(d, MXCSR_MASK);
	assert_int_equal(a[32], 0x00);
	assert_int_equal(a[32 + 9], 0x09);
	assert_int_equal(a[32 + 10], 0); /* reserved bytes of a register slot */
	assert_int_equal(a[32 + 16 * 7 + 3], 0x73);
	assert_int_equal(a[160], 0x00);
	assert_int_equal(a[160 + 16 * 15 + 15], 0xff);
	assert_int_equal(a[416], 0xaa); /* 416-511 are never written */
	assert_int_equal(a[511], 0xaa);
	run(h, fxsave64, sizeof(fxsave64), 1);
	guest_mem_read(&h->mem, DATA, a, sizeof(a));
	memcpy(&q, a + 8, 8); assert_int_equal(q, 0x123456789aULL);
	memcpy(&q, a + 16, 8); assert_int_equal(q, 0xabcdef0123ULL);
	harness_free(h);
}

static void test_fxrstor_round_trip_and_faults(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	struct fpu_state saved;
	static const uint8_t code[] = {0x48, 0x0f, 0xae, 0x06,  /* fxsave64 [rsi] */
				       0x48, 0x0f, 0xae, 0x0e}; /* fxrstor64 [rsi] */
	fill_fpu(&cpu_of(h)->fpu);
	cpu_of(h)->fpu.fsw = 0x3800; /* no pending exception */
	saved = cpu_of(h)->fpu;
	run(h, code, sizeof(code), 1);
	memset(&cpu_of(h)->fpu, 0, sizeof(struct fpu_state));
	h->state.rip = CODE + 4;
	harness_sync(h);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	const struct fpu_state *f = &cpu_of(h)->fpu;
	assert_int_equal(f->fcw, saved.fcw);
	assert_int_equal(f->fsw, saved.fsw);
	assert_int_equal(f->ftw, saved.ftw);
	assert_int_equal(f->fop, saved.fop);
	assert_int_equal(f->fip, saved.fip);
	assert_int_equal(f->fdp, saved.fdp);
	assert_int_equal(f->mxcsr, saved.mxcsr);
	assert_memory_equal(f->st, saved.st, sizeof(saved.st));
	assert_memory_equal(f->xmm, saved.xmm, sizeof(saved.xmm));
	/* misaligned operand */
	static const uint8_t fxsave_mis[] = {0x0f, 0xae, 0x46, 0x08}; /* fxsave [rsi+8] */
	run(h, fxsave_mis, sizeof(fxsave_mis), 1);
	assert_fault(h, EXC_GP);
	/* reserved MXCSR bits in the image */
	uint32_t bad = 0x20000 | MXCSR_DEFAULT;
	put(h, DATA + 24, &bad, 4);
	cpu_of(h)->fpu.fcw = 0x1234;
	run(h, code + 4, 4, 1);
	assert_fault(h, EXC_GP);
	assert_int_equal(cpu_of(h)->fpu.fcw, 0x1234);
	harness_free(h);
}

static void test_fxsave_32bit_mode_saves_8_xmm(void **state)
{
	(void)state;
	struct harness *h = harness_new(32);
	assert_non_null(h);
	h->state.cr4 |= CR4_OSFXSR;
	h->state.gpr[GPR_RSI] = DATA;
	harness_sync(h);
	uint8_t a[512];
	memset(a, 0xaa, sizeof(a));
	put(h, DATA, a, sizeof(a));
	fill_fpu(&cpu_of(h)->fpu);
	static const uint8_t fxsave[] = {0x0f, 0xae, 0x06};
	run(h, fxsave, sizeof(fxsave), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(fxsave));
	guest_mem_read(&h->mem, DATA, a, sizeof(a));
	assert_int_equal(a[160 + 16 * 7 + 15], 0x7f);
	assert_int_equal(a[160 + 16 * 8], 0xaa); /* XMM8-15 are not saved */
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_moves_and_zeroing),
	    cmocka_unit_test(test_movd_movq_and_halves),
	    cmocka_unit_test(test_packed_integer),
	    cmocka_unit_test(test_alignment_gp),
	    cmocka_unit_test(test_preconditions),
	    cmocka_unit_test(test_rounding_modes),
	    cmocka_unit_test(test_nan_rules_and_minmax),
	    cmocka_unit_test(test_daz_ftz),
	    cmocka_unit_test(test_compares),
	    cmocka_unit_test(test_comis_flags),
	    cmocka_unit_test(test_conversions),
	    cmocka_unit_test(test_unmasked_exception),
	    cmocka_unit_test(test_ldmxcsr_stmxcsr),
	    cmocka_unit_test(test_fxsave_layout),
	    cmocka_unit_test(test_fxrstor_round_trip_and_faults),
	    cmocka_unit_test(test_fxsave_32bit_mode_saves_8_xmm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
