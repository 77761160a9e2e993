/* Soft CPU: the x87 subset (loads/stores, arithmetic forms, compares,
 * control and status words, stack faults, #NM/#MF, environment images).
 * Expected values come from the SDM and were checked against a real CPU. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fpu_harness.h"

static long double st(struct harness *h, unsigned i)
{
	long double v = 0;
	memcpy(&v, fpu_of(h)->st[i], 10);
	return v;
}

static void test_fninit_and_control_words(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	struct fpu_state *f = fpu_of(h);
	f->fcw = 0x0c00;
	f->fsw = 0x7fff;
	f->ftw = 0x5a;
	f->fip = 77;
	uint16_t cws[2] = {0x0000, 0xffff};
	put(h, DATA + 8, cws, sizeof(cws));
	static const uint8_t code[] = {
	    0xdb, 0xe3,             /* fninit */
	    0xd9, 0x3e,             /* fnstcw [rsi] */
	    0xdf, 0xe0,             /* fnstsw ax */
	    0xd9, 0x6e, 0x08,       /* fldcw [rsi+8] */
	    0xd9, 0x7e, 0x02,       /* fnstcw [rsi+2] */
	    0xd9, 0x6e, 0x0a,       /* fldcw [rsi+10] */
	    0xd9, 0x7e, 0x04,       /* fnstcw [rsi+4] */
	};
	h->state.gpr[GPR_RAX] = 0x1234567812345678ULL;
	run(h, code, sizeof(code), 7);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	uint16_t out[3];
	get(h, DATA, out, sizeof(out));
	assert_int_equal(out[0], FCW_DEFAULT);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x1234567812340000ULL);
	assert_int_equal(out[1], 0x0040); /* bit 6 reads as one */
	assert_int_equal(out[2], 0x1f7f); /* bits 13-15 read as zero */
	assert_int_equal(f->fsw, 0);
	assert_int_equal(f->ftw, 0);
	assert_int_equal(f->fip, 0);
	harness_free(h);
}

static void test_load_store_round_trip(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	uint8_t in[48] = {0};
	uint32_t f32 = 0x3fc00000;                     /* 1.5 */
	uint64_t f64 = 0xc002000000000000ULL;          /* -2.25 */
	uint8_t f80[10] = {0x35, 0xc2, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40}; /* pi */
	int16_t i16 = -7;
	int32_t i32 = 123456;
	int64_t i64 = -5000000000000000LL;
	memcpy(in, &f32, 4);
	memcpy(in + 8, &f64, 8);
	memcpy(in + 16, f80, 10);
	memcpy(in + 32, &i16, 2);
	memcpy(in + 36, &i32, 4);
	memcpy(in + 40, &i64, 8);
	put(h, DATA, in, sizeof(in));
	static const uint8_t loads[] = {
	    0xdb, 0xe3,             /* fninit */
	    0xd9, 0x06,             /* fld dword [rsi] */
	    0xdd, 0x46, 0x08,       /* fld qword [rsi+8] */
	    0xdb, 0x6e, 0x10,       /* fld tword [rsi+16] */
	    0xdf, 0x46, 0x20,       /* fild word [rsi+32] */
	    0xdb, 0x46, 0x24,       /* fild dword [rsi+36] */
	    0xdf, 0x6e, 0x28,       /* fild qword [rsi+40] */
	    0xdf, 0x7e, 0x40,       /* fistp qword [rsi+0x40] */
	    0xdb, 0x5e, 0x48,       /* fistp dword [rsi+0x48] */
	    0xdf, 0x5e, 0x4c,       /* fistp word [rsi+0x4c] */
	    0xdb, 0x7e, 0x50,       /* fstp tword [rsi+0x50] */
	    0xdd, 0x5e, 0x60,       /* fstp qword [rsi+0x60] */
	    0xd9, 0x5e, 0x68,       /* fstp dword [rsi+0x68] */
	};
	run(h, loads, sizeof(loads), 7);
	assert_int_equal(top(h), 2);
	assert_int_equal(fpu_of(h)->ftw, 0xfc);
	assert_true(st(h, 0) == -5000000000000000.0L);
	assert_true(st(h, 1) == 123456.0L);
	assert_true(st(h, 2) == -7.0L);
	assert_memory_equal(fpu_of(h)->st[3], f80, 10);
	assert_true(st(h, 4) == -2.25L);
	assert_true(st(h, 5) == 1.5L);
	assert_int_equal(harness_step(h, 6), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + sizeof(loads));
	assert_int_equal(top(h), 0);
	assert_int_equal(fpu_of(h)->ftw, 0);
	assert_int_equal(fpu_of(h)->fsw & FSW_EXC, 0);
	uint8_t out[0x70];
	get(h, DATA, out, sizeof(out));
	assert_memory_equal(out + 0x40, &i64, 8);
	assert_memory_equal(out + 0x48, &i32, 4);
	assert_memory_equal(out + 0x4c, &i16, 2);
	assert_memory_equal(out + 0x50, f80, 10);
	assert_memory_equal(out + 0x60, &f64, 8);
	assert_memory_equal(out + 0x68, &f32, 4);
	harness_free(h);
}

/* The D8 and DC/DE register forms encode SUB/SUBR and DIV/DIVR the
 * other way round. */
static void test_arithmetic_forms(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	int16_t ints[2] = {3, 10};
	double four = 4.0;
	put(h, DATA, ints, sizeof(ints));
	put(h, DATA + 8, &four, 8);
	static const uint8_t code[] = {
	    0xdb, 0xe3,             /* fninit */
	    0xdf, 0x06,             /* fild word [rsi]      ST0=3 */
	    0xdf, 0x46, 0x02,       /* fild word [rsi+2]    ST0=10 ST1=3 */
	    0xd8, 0xe1,             /* fsub st0, st1        ST0=7 */
	    0xd8, 0xe9,             /* fsubr st0, st1       ST0=3-7=-4 */
	    0xdc, 0xe9,             /* fsub st1, st0        ST1=3-(-4)=7 */
	    0xdc, 0xe1,             /* fsubr st1, st0       ST1=-4-7=-11 */
	    0xde, 0xf9,             /* fdivp st1, st0       ST0=-11/-4=2.75 */
	    0xdc, 0x4e, 0x08,       /* fmul qword [rsi+8]   ST0=11 */
	    0xd9, 0xe0,             /* fchs */
	    0xd9, 0xe1,             /* fabs */
	    0xd9, 0xfa,             /* fsqrt */
	};
	run(h, code, sizeof(code), 3);
	assert_true(st(h, 0) == 10.0L && st(h, 1) == 3.0L);
	harness_step(h, 1);
	assert_true(st(h, 0) == 7.0L);
	harness_step(h, 1);
	assert_true(st(h, 0) == -4.0L);
	harness_step(h, 1);
	assert_true(st(h, 1) == 7.0L);
	harness_step(h, 1);
	assert_true(st(h, 1) == -11.0L);
	harness_step(h, 1);
	assert_true(st(h, 0) == 2.75L);
	assert_int_equal(top(h), 7);
	harness_step(h, 1);
	assert_true(st(h, 0) == 11.0L);
	harness_step(h, 1);
	assert_true(st(h, 0) == -11.0L);
	harness_step(h, 1);
	assert_true(st(h, 0) == 11.0L);
	assert_int_equal(fpu_of(h)->fsw & FSW_EXC, 0);
	harness_step(h, 1);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_true(st(h, 0) * st(h, 0) > 10.99L && st(h, 0) < 3.32L);
	assert_int_equal(fpu_of(h)->fsw & FSW_EXC, FSW_PE);
	harness_free(h);
}

/* C1 reports rounding away from zero; FIST rounds by FCW.RC. */
static void test_rounding_control_and_c1(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	int16_t ints[2] = {10, 3};
	double two_half = 2.5;
	put(h, DATA, ints, sizeof(ints));
	put(h, DATA + 8, &two_half, 8);
	static const struct {
		uint16_t cw;
		bool c1;     /* 10/3 rounded up in magnitude */
		int16_t ist; /* FISTP of 2.5 */
	} c[] = {
	    {0x037f, false, 2}, /* nearest: 10/3 rounds down, 2.5 to even */
	    {0x077f, false, 2}, /* down */
	    {0x0b7f, true, 3},  /* up */
	    {0x0f7f, false, 2}, /* toward zero */
	};
	static const uint8_t code[] = {
	    0xdb, 0xe3,             /* fninit */
	    0xd9, 0x6e, 0x10,       /* fldcw [rsi+16] */
	    0xdf, 0x06,             /* fild word [rsi] */
	    0xdf, 0x46, 0x02,       /* fild word [rsi+2] */
	    0xde, 0xf9,             /* fdivp st1, st0 */
	    0xdd, 0x46, 0x08,       /* fld qword [rsi+8] */
	    0xdf, 0x5e, 0x20,       /* fistp word [rsi+0x20] */
	};
	for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
		put(h, DATA + 16, &c[k].cw, 2);
		run(h, code, sizeof(code), 5);
		assert_int_equal((fpu_of(h)->fsw & FSW_C1) != 0, c[k].c1);
		assert_int_equal(fpu_of(h)->fsw & FSW_EXC, FSW_PE);
		assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
		int16_t out;
		get(h, DATA + 0x20, &out, 2);
		assert_int_equal(out, c[k].ist);
		assert_int_equal((fpu_of(h)->fsw & FSW_C1) != 0, c[k].ist == 3);
	}
	harness_free(h);
}

static void test_compares(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	int16_t ints[2] = {2, 1};
	uint64_t qnan = 0x7ff8000000000000ULL;
	put(h, DATA, ints, sizeof(ints));
	put(h, DATA + 8, &qnan, 8);
	static const uint8_t code[] = {
	    0xdb, 0xe3,             /* fninit */
	    0xdf, 0x06,             /* fild word [rsi]      2 */
	    0xdf, 0x46, 0x02,       /* fild word [rsi+2]    ST0=1 ST1=2 */
	    0xdb, 0xf1,             /* fcomi st0, st1 */
	    0xdf, 0xe9,             /* fucomip st0, st1     pops */
	    0xdd, 0x46, 0x08,       /* fld qword [rsi+8]    QNaN */
	    0xdd, 0xe1,             /* fucom st1 */
	    0xdf, 0xe0,             /* fnstsw ax */
	    0xd8, 0xd1,             /* fcom st1 */
	};
	h->state.rflags = RFLAGS_FIXED | FLAG_OF | FLAG_SF | FLAG_AF | FLAG_ZF;
	run(h, code, sizeof(code), 4);
	assert_int_equal(h->state.rflags & FLAGS_ARITH, FLAG_CF); /* less; OF SF AF cleared */
	harness_step(h, 1);
	assert_int_equal(h->state.rflags & FLAGS_ARITH, FLAG_CF);
	assert_int_equal(top(h), 7);
	assert_true(st(h, 0) == 2.0L);
	harness_step(h, 3);
	assert_int_equal(h->state.gpr[GPR_RAX] & (FSW_C3 | FSW_C2 | FSW_C0 | FSW_IE),
			 FSW_C3 | FSW_C2 | FSW_C0); /* unordered, quiet */
	harness_step(h, 1);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_int_equal(fpu_of(h)->fsw & (FSW_C3 | FSW_C2 | FSW_C0 | FSW_IE),
			 FSW_C3 | FSW_C2 | FSW_C0 | FSW_IE); /* FCOM signals on a QNaN */
	harness_free(h);
}

static const uint8_t indefinite80[10] = {0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff};

static void test_stack_faults(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	uint8_t code[2 + 18];
	code[0] = 0xdb;
	code[1] = 0xe3; /* fninit */
	for (int k = 0; k < 9; k++) {
		code[2 + 2 * k] = 0xd9;
		code[3 + 2 * k] = 0xe8; /* fld1 */
	}
	run(h, code, sizeof(code), 9);
	assert_int_equal(fpu_of(h)->ftw, 0xff);
	assert_int_equal(fpu_of(h)->fsw & FSW_EXC, 0);
	harness_step(h, 1); /* the ninth push overflows */
	assert_int_equal(fpu_of(h)->fsw & (FSW_EXC | FSW_C1), FSW_IE | FSW_SF | FSW_C1);
	assert_memory_equal(fpu_of(h)->st[0], indefinite80, 10);
	assert_int_equal(top(h), 7);
	/* FSTP from an empty stack stores the indefinite value */
	static const uint8_t underflow[] = {0xdb, 0xe3, 0xdd, 0x5e, 0x30}; /* fstp qword [rsi+0x30] */
	run(h, underflow, sizeof(underflow), 2);
	uint64_t out;
	get(h, DATA + 0x30, &out, 8);
	assert_int_equal(out, 0xfff8000000000000ULL);
	assert_int_equal(fpu_of(h)->fsw & (FSW_EXC | FSW_C1), FSW_IE | FSW_SF);
	harness_free(h);
}

static void test_nm_and_deferred_mf(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	static const uint8_t fld1[] = {0xd9, 0xe8};
	static const uint8_t fwait[] = {0x9b};
	h->state.cr0 |= CR0_TS;
	run(h, fld1, sizeof(fld1), 1);
	assert_fault(h, EXC_NM);
	run(h, fwait, sizeof(fwait), 1); /* WAIT faults only with MP and TS */
	assert_int_equal(h->state.rip, CODE + 1);
	h->state.cr0 |= CR0_MP;
	run(h, fwait, sizeof(fwait), 1);
	assert_fault(h, EXC_NM);
	h->state.cr0 &= ~(CR0_MP | CR0_TS);
	h->state.cr0 |= CR0_EM;
	run(h, fld1, sizeof(fld1), 1);
	assert_fault(h, EXC_NM);
	h->state.cr0 &= ~CR0_EM;

	/* An unmasked divide-by-zero: no result, no pop, ES set, FOP kept;
	 * the next waiting instruction takes #MF, FNCLEX clears it. */
	uint16_t cw = 0x037b;
	put(h, DATA, &cw, 2);
	static const uint8_t code[] = {
	    0xdb, 0xe3,       /* fninit */
	    0xd9, 0x2e,       /* fldcw [rsi] */
	    0xd9, 0xe8,       /* fld1 */
	    0xd9, 0xee,       /* fldz */
	    0xde, 0xf9,       /* fdivp st1, st0 */
	    0xd9, 0xe8,       /* fld1: #MF */
	};
	run(h, code, sizeof(code), 5);
	struct fpu_state *f = fpu_of(h);
	assert_int_equal(f->fsw & (FSW_EXC | FSW_ES | FSW_B), FSW_ZE | FSW_ES | FSW_B);
	assert_int_equal(top(h), 6);
	assert_true(st(h, 0) == 0.0L && st(h, 1) == 1.0L);
	assert_int_equal(f->fop, 0x6f9);
	assert_int_equal(f->fip, CODE + 8);
	harness_step(h, 1);
	assert_fault(h, EXC_MF);
	static const uint8_t clear[] = {0xdb, 0xe2, 0xd9, 0xe8}; /* fnclex; fld1 */
	run(h, clear, sizeof(clear), 2);
	assert_int_equal(h->state.rip, CODE + sizeof(clear));
	assert_int_equal(f->fsw & (FSW_EXC | FSW_ES | FSW_B), 0);
	harness_free(h);
}

static uint32_t get32le(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static void test_fnstenv_fnsave_frstor(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	static const uint8_t code[] = {
	    0xdb, 0xe3,             /* fninit */
	    0xd9, 0xe8,             /* fld1 */
	    0xd9, 0x36,             /* fnstenv [rsi] */
	    0xdd, 0x76, 0x40,       /* fnsave [rsi+0x40] */
	    0xdd, 0x66, 0x40,       /* frstor [rsi+0x40] */
	};
	run(h, code, sizeof(code), 3);
	uint8_t env[28];
	get(h, DATA, env, sizeof(env));
	assert_int_equal(get32le(env + 0), 0xffff0000u | FCW_DEFAULT);
	assert_int_equal(get32le(env + 4), 0xffff3800u);  /* TOP = 7 */
	assert_int_equal(get32le(env + 8), 0xffff3fffu);  /* ST0 (R7) valid, the rest empty */
	assert_int_equal(get32le(env + 12), (uint32_t)(CODE + 2)); /* FIP: the FLD1 */
	assert_int_equal(get32le(env + 16), 0);
	assert_int_equal(get32le(env + 20), 0);
	assert_int_equal(get32le(env + 24), 0xffff0000u);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG); /* fnsave */
	uint8_t img[108];
	get(h, DATA + 0x40, img, sizeof(img));
	assert_memory_equal(img, env, 28);
	static const uint8_t one[10] = {0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f};
	assert_memory_equal(img + 28, one, 10);
	assert_int_equal(fpu_of(h)->fcw, FCW_DEFAULT); /* FNSAVE reinitializes */
	assert_int_equal(fpu_of(h)->ftw, 0);
	assert_int_equal(top(h), 0);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG); /* frstor */
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_int_equal(top(h), 7);
	assert_int_equal(fpu_of(h)->ftw, 0x80);
	assert_true(st(h, 0) == 1.0L);
	harness_free(h);
}

static void test_constants_fxch_ffree_fxam(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(false);
	uint16_t cw = 0x077f; /* round down */
	put(h, DATA, &cw, 2);
	static const uint8_t code[] = {
	    0xdb, 0xe3,             /* fninit */
	    0xd9, 0x2e,             /* fldcw [rsi] */
	    0xd9, 0xeb,             /* fldpi */
	    0xd9, 0xe8,             /* fld1 */
	    0xd9, 0xc9,             /* fxch st1 */
	    0xdd, 0xc1,             /* ffree st1 */
	    0xd9, 0xe5,             /* fxam: pi is normal */
	    0xd9, 0xc9,             /* fxch st1: ST1 is empty */
	};
	run(h, code, sizeof(code), 4);
	uint64_t mant;
	memcpy(&mant, fpu_of(h)->st[1], 8);
	assert_int_equal(mant, 0xc90fdaa22168c234ULL); /* rounded down */
	harness_step(h, 3);
	assert_int_equal(fpu_of(h)->ftw, 0x40); /* only ST0 (R6) valid */
	assert_int_equal(fpu_of(h)->fsw & (FSW_C3 | FSW_C2 | FSW_C1 | FSW_C0), FSW_C2);
	harness_step(h, 1);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	assert_int_equal(fpu_of(h)->fsw & FSW_EXC, FSW_IE | FSW_SF);
	assert_int_equal(fpu_of(h)->ftw, 0xc0); /* the empty one got the indefinite value */
	assert_memory_equal(fpu_of(h)->st[0], indefinite80, 10);
	memcpy(&mant, fpu_of(h)->st[1], 8);
	assert_int_equal(mant, 0xc90fdaa22168c234ULL);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fninit_and_control_words),
	    cmocka_unit_test(test_load_store_round_trip),
	    cmocka_unit_test(test_arithmetic_forms),
	    cmocka_unit_test(test_rounding_control_and_c1),
	    cmocka_unit_test(test_compares),
	    cmocka_unit_test(test_stack_faults),
	    cmocka_unit_test(test_nm_and_deferred_mf),
	    cmocka_unit_test(test_fnstenv_fnsave_frstor),
	    cmocka_unit_test(test_constants_fxch_ffree_fxam),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
