/* Soft CPU: MMX and the SSE/SSE2 forms on MMX registers: the fault order
 * (#UD, #NM, #MF, memory), aliasing with the x87 registers (TOP, tag
 * word, exponent bits), saturation edges, the 64-bit forms of pack,
 * unpack and the pairwise operations, EMMS and the conversions. Expected
 * values come from the SDM and were checked against a real CPU (the
 * difftest corpus mmx.txt runs the same cases on hardware). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fpu_harness.h"

static struct harness *mmx_new(void)
{
	struct harness *h = fpu_harness_new(true);
	struct fpu_state *f = fpu_of(h);
	f->fcw = FCW_DEFAULT;
	f->fsw = 0;
	f->ftw = 0;
	return h;
}

static uint16_t exponent(struct harness *h, unsigned phys)
{
	uint16_t se;
	memcpy(&se, fpu_of(h)->st[(phys - top(h)) & 7] + 8, 2);
	return se;
}

/* ---- preconditions and fault order ---- */

static const uint8_t paddb[] = {0x0f, 0xfc, 0xc1};     /* paddb mm0, mm1 */
static const uint8_t emms[] = {0x0f, 0x77};            /* emms */
static const uint8_t movq2dq[] = {0xf3, 0x0f, 0xd6, 0xc1}; /* movq2dq xmm0, mm1 */

static void test_fault_order(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	/* EM: #UD, even with TS and a pending x87 exception. */
	h->state.cr0 |= CR0_EM | CR0_TS;
	fpu_of(h)->fsw = FSW_IE | FSW_ES | FSW_B;
	run(h, paddb, sizeof(paddb), 1);
	assert_fault(h, EXC_UD);
	run(h, emms, sizeof(emms), 1);
	assert_fault(h, EXC_UD);
	/* TS: #NM before #MF. */
	h->state.cr0 &= ~CR0_EM;
	run(h, paddb, sizeof(paddb), 1);
	assert_fault(h, EXC_NM);
	run(h, emms, sizeof(emms), 1);
	assert_fault(h, EXC_NM);
	/* A pending unmasked x87 exception: #MF, before a memory fault. */
	h->state.cr0 &= ~CR0_TS;
	h->state.gpr[GPR_RAX] = 0x8000000000000000ULL;
	static const uint8_t por_noncanon[] = {0x0f, 0xeb, 0x08}; /* por mm1, [rax] */
	run(h, por_noncanon, sizeof(por_noncanon), 1);
	assert_fault(h, EXC_MF);
	run(h, emms, sizeof(emms), 1);
	assert_fault(h, EXC_MF);
	assert_int_equal(fpu_of(h)->fsw, FSW_IE | FSW_ES | FSW_B); /* untouched */
	/* Then the memory fault. */
	fpu_of(h)->fsw = 0;
	run(h, por_noncanon, sizeof(por_noncanon), 1);
	assert_fault(h, EXC_GP);
	run(h, paddb, sizeof(paddb), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(paddb));
	harness_free(h);
}

/* The integer MMX instructions do not need CR4.OSFXSR; those with an XMM
 * operand do (#UD), and check it before #NM. */
static void test_osfxsr(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	h->state.cr4 &= ~CR4_OSFXSR;
	static const uint8_t pavgb[] = {0x0f, 0xe0, 0xc1}; /* pavgb mm0, mm1 (an SSE form) */
	run(h, pavgb, sizeof(pavgb), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(pavgb));
	run(h, movq2dq, sizeof(movq2dq), 1);
	assert_fault(h, EXC_UD);
	h->state.cr0 |= CR0_TS;
	run(h, movq2dq, sizeof(movq2dq), 1);
	assert_fault(h, EXC_UD);
	h->state.cr4 |= CR4_OSFXSR;
	run(h, movq2dq, sizeof(movq2dq), 1);
	assert_fault(h, EXC_NM);
	h->state.cr0 &= ~CR0_TS;
	fpu_of(h)->fsw = FSW_ZE | FSW_ES | FSW_B;
	run(h, movq2dq, sizeof(movq2dq), 1);
	assert_fault(h, EXC_MF);
	harness_free(h);
}

/* A faulting store leaves the x87 state as it was: no switch to MMX mode. */
static void test_fault_is_atomic(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	static const uint8_t code[] = {
	    0xd9, 0xe8,             /* fld1 */
	    0x0f, 0x7f, 0x38,       /* movq [rax], mm7 */
	};
	h->state.gpr[GPR_RAX] = 0x8000000000000000ULL;
	run(h, code, sizeof(code), 2);
	assert_fault(h, EXC_GP);
	assert_int_equal(top(h), 7);
	assert_int_equal(fpu_of(h)->ftw, 0x80);
	/* MASKMOVQ faults on its pages even with an all-zero mask. */
	static const uint8_t maskmovq[] = {0x0f, 0xf7, 0xc1}; /* maskmovq mm0, mm1 */
	h->state.gpr[GPR_RDI] = 0x8000000000000000ULL;
	mm_set(h, 1, 0);
	fpu_of(h)->fsw = 0x3800; /* TOP 7 again */
	run(h, maskmovq, sizeof(maskmovq), 1);
	assert_fault(h, EXC_GP);
	assert_int_equal(top(h), 7);
	harness_free(h);
}

/* ---- aliasing with the x87 stack ---- */

static void test_alias_top_and_tags(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	uint64_t v = 0x1122334455667788ULL;
	put(h, DATA, &v, 8);
	static const uint8_t code[] = {
	    0xd9, 0xe8,             /* fld1: R7 */
	    0xd9, 0xeb,             /* fldpi: R6, TOP 6 */
	    0x0f, 0x7e, 0xf0,       /* movd eax, mm6: low half of pi's mantissa */
	    0x0f, 0x6f, 0x1e,       /* movq mm3, [rsi] */
	    0x0f, 0x7f, 0xf9,       /* movq mm1, mm7 */
	};
	run(h, code, sizeof(code), 5);
	assert_int_equal(top(h), 0);
	assert_int_equal(fpu_of(h)->ftw, 0xff);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x2168c235);
	assert_int_equal(mm(h, 3), v);
	assert_int_equal(mm(h, 1), 0x8000000000000000ULL); /* 1.0's mantissa */
	assert_int_equal(mm(h, 7), 0x8000000000000000ULL);
	/* Written registers get exponent and sign ones; the others keep theirs. */
	assert_int_equal(exponent(h, 3), 0xffff);
	assert_int_equal(exponent(h, 1), 0xffff);
	assert_int_equal(exponent(h, 7), 0x3fff);
	assert_int_equal(exponent(h, 6), 0x4000);
	/* The x87 view: ST(0) is R0 now, ST(7) is R7 = 1.0. */
	long double one;
	memcpy(&one, fpu_of(h)->st[7], 10);
	assert_true(one == 1.0L);
	harness_free(h);
}

/* Every MMX instruction switches to MMX mode, even one that only reads
 * its MMX register (a store), and a later FLD finds a full stack. */
static void test_alias_stores_and_fld(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	static const uint8_t code[] = {
	    0xd9, 0xee,             /* fldz: R7, TOP 7 */
	    0x0f, 0xd7, 0xc7,       /* pmovmskb eax, mm7 */
	    0xd9, 0xe8,             /* fld1: R7 is valid, stack overflow */
	};
	run(h, code, 5, 2);
	assert_int_equal(top(h), 0);
	assert_int_equal(fpu_of(h)->ftw, 0xff);
	assert_int_equal(h->state.gpr[GPR_RAX], 0);
	run(h, code + 5, 2, 1);
	assert_int_equal(top(h), 7);
	/* Masked invalid operation (stack fault, C1 = 1 for overflow). */
	assert_int_equal(fpu_of(h)->fsw & (FSW_IE | FSW_SF | FSW_C1), FSW_IE | FSW_SF | FSW_C1);
	harness_free(h);
}

static void test_emms(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	static const uint8_t code[] = {
	    0xd9, 0xe8, /* fld1 */
	    0xd9, 0xee, /* fldz: TOP 6 */
	    0x0f, 0x77, /* emms */
	};
	run(h, code, sizeof(code), 3);
	assert_int_equal(fpu_of(h)->ftw, 0);
	assert_int_equal(top(h), 0); /* as the processor does */
	/* The contents stay: R7 still holds 1.0. */
	assert_int_equal(mm(h, 7), 0x8000000000000000ULL);
	assert_int_equal(exponent(h, 7), 0x3fff);
	/* FLD after EMMS pushes normally into R7. */
	static const uint8_t fldpi[] = {0xd9, 0xeb};
	run(h, fldpi, sizeof(fldpi), 1);
	assert_int_equal(top(h), 7);
	assert_int_equal(fpu_of(h)->ftw, 0x80);
	assert_int_equal(fpu_of(h)->fsw & FSW_IE, 0);
	harness_free(h);
}

/* ---- arithmetic ---- */

struct mmx_case {
	const char *name;
	uint8_t code[4];
	uint8_t len;
	uint64_t a, b, want; /* mm0 = a, mm1 = b; want = mm0 after */
};

static const struct mmx_case cases[] = {
    /* saturation */
    {"paddsw", {0x0f, 0xed, 0xc1}, 3, 0x7fff80007fff0001ULL, 0x0001ffff8000ffffULL, 0x7fff8000ffff0000ULL},
    {"psubsw", {0x0f, 0xe9, 0xc1}, 3, 0x80007fff00000000ULL, 0x0001ffff80007fffULL, 0x80007fff7fff8001ULL},
    {"paddsb", {0x0f, 0xec, 0xc1}, 3, 0x7f80017f80000000ULL, 0x0180ff01ff000000ULL, 0x7f80007f80000000ULL},
    {"psubsb", {0x0f, 0xe8, 0xc1}, 3, 0x807f0000007f8000ULL, 0x01ff807f80800100ULL, 0x807f7f817f7f8000ULL},
    {"paddusb", {0x0f, 0xdc, 0xc1}, 3, 0xff01807f00000000ULL, 0x01ff8080000000ffULL, 0xffffffff000000ffULL},
    {"paddusw", {0x0f, 0xdd, 0xc1}, 3, 0xffff800000010000ULL, 0x0001800000010000ULL, 0xffffffff00020000ULL},
    {"psubusb", {0x0f, 0xd8, 0xc1}, 3, 0x0001ff8000000000ULL, 0x0100017f00000000ULL, 0x0001fe0100000000ULL},
    {"psubusw", {0x0f, 0xd9, 0xc1}, 3, 0x00008000ffff0001ULL, 0x000100010000ffffULL, 0x00007fffffff0000ULL},
    {"packsswb", {0x0f, 0x63, 0xc1}, 3, 0x80007fffff800080ULL, 0x0100feff007f8001ULL, 0x7f807f80807f807fULL},
    {"packssdw", {0x0f, 0x6b, 0xc1}, 3, 0x8000000000008000ULL, 0xffff7fff7fffffffULL, 0x80007fff80007fffULL},
    {"packuswb", {0x0f, 0x67, 0xc1}, 3, 0x8000ffff00ff0100ULL, 0x7fff000100800000ULL, 0xff0180000000ffffULL},
    {"pmaddwd", {0x0f, 0xf5, 0xc1}, 3, 0x8000800000020003ULL, 0x8000800000040005ULL, 0x8000000000000017ULL},
    {"pmulhw", {0x0f, 0xe5, 0xc1}, 3, 0x80007fffffff0002ULL, 0x80007fffffff8000ULL, 0x40003fff0000ffffULL},
    {"pmulhuw", {0x0f, 0xe4, 0xc1}, 3, 0xffff800000020001ULL, 0xffff800080000001ULL, 0xfffe400000010000ULL},
    {"pmullw", {0x0f, 0xd5, 0xc1}, 3, 0x8000ffff01000003ULL, 0x0002ffff01000005ULL, 0x000000010000000fULL},
    /* the 64-bit layouts of pack, unpack and the pairwise forms */
    {"punpcklbw", {0x0f, 0x60, 0xc1}, 3, 0x8877665544332211ULL, 0xfffeeddccbbaa99ULL, 0xcc44bb33aa229911ULL},
    {"punpckhbw", {0x0f, 0x68, 0xc1}, 3, 0x8877665544332211ULL, 0xfffeeddccbbaa99ULL, 0x0f88ff77ee66dd55ULL},
    {"punpcklwd", {0x0f, 0x61, 0xc1}, 3, 0x8877665544332211ULL, 0x0ffeeddccbbaa99ULL, 0xccbb4433aa992211ULL},
    {"punpckhdq", {0x0f, 0x6a, 0xc1}, 3, 0x8877665544332211ULL, 0x0ffeeddccbbaa99ULL, 0x00ffeedd88776655ULL},
    {"punpckldq", {0x0f, 0x62, 0xc1}, 3, 0x8877665544332211ULL, 0x0ffeeddccbbaa99ULL, 0xccbbaa9944332211ULL},
    {"pmuludq", {0x0f, 0xf4, 0xc1}, 3, 0x12345678ffffffffULL, 0x9abcdef0ffffffffULL, 0xfffffffe00000001ULL},
    {"psadbw", {0x0f, 0xf6, 0xc1}, 3, 0xff00ff0001020304ULL, 0x00ff00ff04030201ULL, 0x0000000000000404ULL},
    {"paddq", {0x0f, 0xd4, 0xc1}, 3, 0xffffffffffffffffULL, 2, 0x0000000000000001ULL},
    {"psubq", {0x0f, 0xfb, 0xc1}, 3, 0, 1, 0xffffffffffffffffULL},
    {"pavgb", {0x0f, 0xe0, 0xc1}, 3, 0xff00ff0001020304ULL, 0xff01000001010101ULL, 0xff01800001020203ULL},
    {"pminsw", {0x0f, 0xea, 0xc1}, 3, 0x80007fff00010000ULL, 0x7fff8000ffff0000ULL, 0x80008000ffff0000ULL},
    {"pmaxub", {0x0f, 0xde, 0xc1}, 3, 0x80007fff00010000ULL, 0x7fff8000ffff0000ULL, 0x80ff80ffffff0000ULL},
    {"pcmpgtw", {0x0f, 0x65, 0xc1}, 3, 0x7fff800000010000ULL, 0x80007fff00000000ULL, 0xffff0000ffff0000ULL},
    {"pandn", {0x0f, 0xdf, 0xc1}, 3, 0xff00ff00ff00ff00ULL, 0x0ff00ff00ff00ff0ULL, 0x00f000f000f000f0ULL},
    /* shifts: counts at and beyond the element width */
    {"psraw 15", {0x0f, 0x71, 0xe0, 15}, 4, 0x80007fff00018001ULL, 0, 0xffff00000000ffffULL},
    {"psraw 200", {0x0f, 0x71, 0xe0, 200}, 4, 0x80007fff00018001ULL, 0, 0xffff00000000ffffULL},
    {"psrlw 16", {0x0f, 0x71, 0xd0, 16}, 4, 0xffffffffffffffffULL, 0, 0x0000000000000000ULL},
    {"psllq 63", {0x0f, 0x73, 0xf0, 63}, 4, 1, 0, 0x8000000000000000ULL},
    {"psrad mm", {0x0f, 0xe2, 0xc1}, 3, 0x8000000012345678ULL, 32, 0xffffffff00000000ULL},
    {"psrlq mm 2^32", {0x0f, 0xd3, 0xc1}, 3, 0xffffffffffffffffULL, 0x100000000ULL, 0x0000000000000000ULL},
    {"pslld mm", {0x0f, 0xf2, 0xc1}, 3, 0x0000000180000001ULL, 1, 0x0000000200000002ULL},
    {"pshufw 1b", {0x0f, 0x70, 0xc1, 0x1b}, 4, 0, 0x4444333322221111ULL, 0x1111222233334444ULL},
};

static void test_arithmetic(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct mmx_case *c = &cases[k];
		print_message("%s\n", c->name);
		mm_set(h, 0, c->a);
		mm_set(h, 1, c->b);
		run(h, c->code, c->len, 1);
		assert_int_equal(h->state.rip, CODE + c->len);
		assert_int_equal(mm(h, 0), c->want);
	}
	harness_free(h);
}

/* ---- moves and the forms with GPR, memory or XMM operands ---- */

static void test_moves(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	uint64_t m[2] = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
	put(h, DATA, m, sizeof(m));
	h->state.gpr[GPR_RAX] = 0x8877665544332211ULL;
	h->state.gpr[GPR_RDI] = DATA + 0x40;
	xset_q(h, 9, 0x1111111122222222ULL, 0x3333333344444444ULL);
	static const uint8_t code[] = {
	    0x0f, 0x6e, 0xc0,             /* movd mm0, eax */
	    0x48, 0x0f, 0x6e, 0xc8,       /* movq mm1, rax */
	    0x44, 0x0f, 0x6f, 0x56, 0x03, /* movq mm2, [rsi+3] (REX.R ignored) */
	    0x0f, 0x6e, 0x5e, 0x04,       /* movd mm3, [rsi+4] */
	    0x41, 0x0f, 0x7f, 0xcc,       /* movq mm4, mm1 (REX.B ignored) */
	    0x0f, 0x7e, 0xcb,             /* movd ebx, mm1 */
	    0x48, 0x0f, 0x7e, 0xd1,       /* movq rcx, mm2 */
	    0x0f, 0x7f, 0x66, 0x10,       /* movq [rsi+0x10], mm4 */
	    0x0f, 0xe7, 0x56, 0x18,       /* movntq [rsi+0x18], mm2 */
	    0x0f, 0x7e, 0x5e, 0x20,       /* movd [rsi+0x20], mm3 */
	    0x0f, 0xc4, 0xe8, 0x07,       /* pinsrw mm5, eax, 7 (index 3) */
	    0x0f, 0xc4, 0x6e, 0x01, 0x00, /* pinsrw mm5, [rsi+1], 0 */
	    0x0f, 0xc5, 0xd5, 0x02,       /* pextrw edx, mm5, 2 */
	    0x0f, 0xd7, 0xf9,             /* pmovmskb edi, mm1 */
	    0xf3, 0x41, 0x0f, 0xd6, 0xf1, /* movq2dq xmm6, mm1 (REX.B ignored for mm) */
	    0xf2, 0x41, 0x0f, 0xd6, 0xf9, /* movdq2q mm7, xmm9 */
	};
	run(h, code, sizeof(code), 16);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_int_equal(mm(h, 0), 0x44332211ULL);
	assert_int_equal(mm(h, 1), 0x8877665544332211ULL);
	assert_int_equal(mm(h, 2), 0x5432100123456789ULL);
	assert_int_equal(mm(h, 3), 0x01234567ULL);
	assert_int_equal(mm(h, 4), 0x8877665544332211ULL);
	assert_int_equal(h->state.gpr[GPR_RBX], 0x44332211ULL);
	assert_int_equal(h->state.gpr[GPR_RCX], mm(h, 2));
	assert_int_equal(get64(h, DATA + 0x10), 0x8877665544332211ULL);
	assert_int_equal(get64(h, DATA + 0x18), mm(h, 2));
	assert_int_equal(get64(h, DATA + 0x20) & 0xffffffff, 0x01234567ULL);
	assert_int_equal(mm(h, 5) & 0xffff, 0xabcd);
	assert_int_equal(mm(h, 5) >> 48, 0x2211);
	assert_int_equal(h->state.gpr[GPR_RDX], (mm(h, 5) >> 32) & 0xffff);
	assert_int_equal(h->state.gpr[GPR_RDI], 0x80); /* only byte 7 (0x88) has its top bit set */
	assert_xmm_q(h, 6, 0x8877665544332211ULL, 0);
	assert_int_equal(mm(h, 7), 0x1111111122222222ULL);
	harness_free(h);
}

static void test_maskmovq(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	uint64_t before = 0xaaaaaaaaaaaaaaaaULL;
	put(h, DATA + 0x41, &before, 8);
	h->state.gpr[GPR_RDI] = DATA + 0x41;
	mm_set(h, 0, 0x8877665544332211ULL);
	mm_set(h, 1, 0x80007f00ff000180ULL); /* bytes 0, 3, 7 */
	static const uint8_t code[] = {0x0f, 0xf7, 0xc1}; /* maskmovq mm0, mm1 */
	run(h, code, sizeof(code), 1);
	assert_int_equal(get64(h, DATA + 0x41), 0x88aaaaaa44aaaa11ULL);
	harness_free(h);
}

static void test_conversions(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	struct fpu_state *f = fpu_of(h);
	int32_t ints[2] = {-3, 16777217}; /* the second rounds as a single */
	put(h, DATA, ints, sizeof(ints));
	uint32_t singles[2] = {0x3fc00000u /* 1.5 */, 0x7fc00000u /* NaN */};
	put(h, DATA + 8, singles, sizeof(singles));
	xset_q(h, 1, 0x1111111111111111ULL, 0x2222222222222222ULL);
	/* From memory, CVTPI2PS and CVTPI2PD leave the x87 state alone. */
	static const uint8_t fld1_cvt[] = {
	    0xd9, 0xe8,       /* fld1 */
	    0x0f, 0x2a, 0x0e, /* cvtpi2ps xmm1, [rsi] */
	    0x66, 0x0f, 0x2a, 0x16, /* cvtpi2pd xmm2, [rsi] */
	};
	run(h, fld1_cvt, sizeof(fld1_cvt), 3);
	assert_int_equal(top(h), 7);
	assert_int_equal(f->ftw, 0x80);
	assert_xmm_q(h, 1, 0x4b800000c0400000ULL, 0x2222222222222222ULL);
	assert_xmm_q(h, 2, 0xc008000000000000ULL, 0x4170000010000000ULL);
	assert_int_equal(f->mxcsr, MXCSR_DEFAULT | MXCSR_PE);
	/* CVTPS2PI rounds to nearest even, NaN gives the integer indefinite
	 * with IE; the MMX destination switches to MMX mode. */
	f->mxcsr = MXCSR_DEFAULT;
	static const uint8_t cvtps2pi[] = {0x0f, 0x2d, 0x46, 0x08}; /* cvtps2pi mm0, [rsi+8] */
	run(h, cvtps2pi, sizeof(cvtps2pi), 1);
	assert_int_equal(mm(h, 0), 0x8000000000000002ULL);
	assert_int_equal(f->mxcsr, MXCSR_DEFAULT | MXCSR_IE | MXCSR_PE);
	assert_int_equal(top(h), 0);
	assert_int_equal(f->ftw, 0xff);
	/* Truncating: 1.5 -> 1. */
	static const uint8_t cvttps2pi[] = {0x0f, 0x2c, 0x46, 0x08};
	run(h, cvttps2pi, sizeof(cvttps2pi), 1);
	assert_int_equal(mm(h, 0), 0x8000000000000001ULL);
	/* CVTPD2PI needs an aligned 16-byte operand. */
	static const uint8_t cvtpd2pi[] = {0x66, 0x0f, 0x2d, 0x46, 0x08};
	run(h, cvtpd2pi, sizeof(cvtpd2pi), 1);
	assert_fault(h, EXC_GP);
	/* An unmasked exception: #XM, nothing written, no switch to MMX mode. */
	static const uint8_t emms_fld1_cvt[] = {
	    0x0f, 0x77,             /* emms */
	    0xd9, 0xe8,             /* fld1: R7, TOP 7 */
	    0x0f, 0x2d, 0x46, 0x08, /* cvtps2pi mm0, [rsi+8] */
	};
	mm_set(h, 0, 5);
	f->mxcsr = MXCSR_DEFAULT & ~(MXCSR_IE << MXCSR_MASKS_SHIFT);
	run(h, emms_fld1_cvt, sizeof(emms_fld1_cvt), 3);
	assert_fault(h, EXC_XM);
	assert_int_equal(top(h), 7);
	assert_int_equal(f->ftw, 0x80);
	assert_int_equal(mm(h, 0), 5);
	harness_free(h);
}

static void test_undefined_forms(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	static const uint8_t forms[][4] = {
	    {0x0f, 0x73, 0xd9, 0x04}, /* 0F 73 /3 (PSRLDQ) has no MMX form */
	    {0x0f, 0x73, 0xf9, 0x04}, /* 0F 73 /7 */
	    {0x0f, 0x72, 0xc9, 0x04}, /* 0F 72 /1 */
	    {0x0f, 0xc5, 0x06, 0x01}, /* pextrw with a memory operand */
	    {0x0f, 0xf7, 0x06, 0x90}, /* maskmovq with a memory operand */
	    {0x0f, 0xe7, 0xc1, 0x90}, /* movntq to a register */
	    {0xf3, 0x0f, 0xd6, 0x06}, /* movq2dq from memory */
	};
	for (size_t k = 0; k < sizeof(forms) / sizeof(forms[0]); k++) {
		run(h, forms[k], 4, 1);
		assert_fault(h, EXC_UD);
	}
	harness_free(h);
}

static void test_cpuid_mmx(void **state)
{
	(void)state;
	struct harness *h = mmx_new();
	static const uint8_t code[] = {0x0f, 0xa2}; /* cpuid */
	h->state.gpr[GPR_RAX] = 1;
	h->state.gpr[GPR_RCX] = 0;
	run(h, code, sizeof(code), 1);
	assert_int_equal(h->state.gpr[GPR_RDX] & (1u << 23), 1u << 23);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fault_order),
	    cmocka_unit_test(test_osfxsr),
	    cmocka_unit_test(test_fault_is_atomic),
	    cmocka_unit_test(test_alias_top_and_tags),
	    cmocka_unit_test(test_alias_stores_and_fld),
	    cmocka_unit_test(test_emms),
	    cmocka_unit_test(test_arithmetic),
	    cmocka_unit_test(test_moves),
	    cmocka_unit_test(test_maskmovq),
	    cmocka_unit_test(test_conversions),
	    cmocka_unit_test(test_undefined_forms),
	    cmocka_unit_test(test_cpuid_mmx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
