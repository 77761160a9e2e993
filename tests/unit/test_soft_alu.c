/* Soft CPU: the integer arithmetic/logic group (ops_alu.c). Expected values
 * follow the SDM's "Operation" and "Flags Affected" sections; where the
 * SDM leaves a flag undefined the value asserted is the one measured on
 * the Intel host (the differential tester compares against it), and each
 * such assertion says so. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine/soft/soft.h"
#include "soft_harness.h"

#define CF FLAG_CF
#define PF FLAG_PF
#define AF FLAG_AF
#define ZF FLAG_ZF
#define SF FLAG_SF
#define OF FLAG_OF
#define ALL FLAGS_ARITH

#define RAX GPR_RAX
#define RCX GPR_RCX
#define RDX GPR_RDX
#define RBX GPR_RBX
#define RSI GPR_RSI

static uint64_t code_start(int mode) { return mode == 16 ? 0x1000 : HARNESS_CODE_ADDR; }

/* Places `code` at the start address, applies `flags`, runs n steps. */
static enum vcpu_exit_kind run(struct harness *h, int mode, const uint8_t *code, size_t len,
			       uint64_t flags, unsigned n)
{
	h->state.rip = code_start(mode);
	h->state.rflags = flags | RFLAGS_FIXED;
	harness_sync(h);
	harness_load(h, code, len);
	return harness_step(h, n);
}

/* RUN(h, mode, flags, steps, code bytes...) */
#define RUN(h, mode, flags, n, ...)                                                    \
	run((h), (mode), (const uint8_t[]){__VA_ARGS__},                                 \
	    sizeof((const uint8_t[]){__VA_ARGS__}), (flags), (n))

static void check_flags(struct harness *h, uint64_t mask, uint64_t expected)
{
	assert_int_equal(h->state.rflags & mask, expected);
}

static uint64_t mem64(struct harness *h, uint64_t gpa)
{
	uint64_t v = 0;
	guest_mem_read(&h->mem, gpa, &v, 8);
	return v;
}

static void set_mem64(struct harness *h, uint64_t gpa, uint64_t v)
{
	guest_mem_write(&h->mem, gpa, &v, 8);
}

static struct harness *new64(void)
{
	struct harness *h = harness_new(64);
	assert_non_null(h);
	return h;
}

/* ---- ADD/SUB/ADC/SBB/CMP ---- */

static void test_add_flags(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RAX] = 0x7f;
	assert_int_equal(RUN(h, 64, 0, 1, 0x04, 0x01), VCPU_EXIT_DEBUG); /* add al, 1 */
	assert_int_equal(h->state.gpr[RAX], 0x80);
	check_flags(h, ALL, OF | SF | AF);

	h->state.gpr[RAX] = 0x12345678000000ffULL;
	RUN(h, 64, 0, 1, 0x04, 0x01); /* add al, 1: 0xff + 1 */
	assert_int_equal(h->state.gpr[RAX], 0x1234567800000000ULL); /* upper bytes merge */
	check_flags(h, ALL, CF | ZF | AF | PF);

	h->state.gpr[RCX] = 0x7fffffffffffffffULL;
	h->state.gpr[RDX] = 1;
	RUN(h, 64, 0, 1, 0x48, 0x01, 0xd1); /* add rcx, rdx */
	assert_int_equal(h->state.gpr[RCX], 0x8000000000000000ULL);
	check_flags(h, ALL, OF | SF | AF | PF);

	h->state.gpr[RCX] = 0xffffffff0000ffffULL;
	h->state.gpr[RDX] = 1;
	RUN(h, 64, 0, 1, 0x66, 0x01, 0xd1); /* add cx, dx */
	assert_int_equal(h->state.gpr[RCX], 0xffffffff00000000ULL);
	check_flags(h, ALL, CF | ZF | AF | PF);

	h->state.gpr[RCX] = 0xffffffff00000001ULL;
	h->state.gpr[RDX] = 2;
	RUN(h, 64, 0, 1, 0x01, 0xd1); /* add ecx, edx: a 32-bit write zero-extends */
	assert_int_equal(h->state.gpr[RCX], 3);
	check_flags(h, ALL, PF);
	harness_free(h);
}

static void test_sub_cmp(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RAX] = 0x80;
	RUN(h, 64, 0, 1, 0x2c, 0x01); /* sub al, 1 */
	assert_int_equal(h->state.gpr[RAX], 0x7f);
	check_flags(h, ALL, OF | AF);

	h->state.gpr[RAX] = 0;
	RUN(h, 64, 0, 1, 0x48, 0x2d, 0x01, 0, 0, 0); /* sub rax, 1 */
	assert_int_equal(h->state.gpr[RAX], ~0ULL);
	check_flags(h, ALL, CF | SF | AF | PF);

	h->state.gpr[RBX] = 0xffffffff00000005ULL;
	RUN(h, 64, 0, 1, 0x83, 0xfb, 0x05); /* cmp ebx, 5: no write, no zero-extension */
	assert_int_equal(h->state.gpr[RBX], 0xffffffff00000005ULL);
	check_flags(h, ALL, ZF | PF);

	h->state.gpr[RBX] = 1;
	RUN(h, 64, 0, 1, 0x48, 0x83, 0xfb, 0xff); /* cmp rbx, -1 (sign-extended imm8) */
	check_flags(h, ALL, CF | AF); /* 1 - 0xff..ff = 2, borrows */
	assert_int_equal(h->state.gpr[RBX], 1);

	h->state.gpr[RAX] = 0x8000;
	RUN(h, 64, 0, 1, 0x66, 0x3d, 0x01, 0x00); /* cmp ax, 1 */
	check_flags(h, ALL, OF | AF | PF);
	harness_free(h);
}

static void test_adc_sbb_chain(void **state)
{
	(void)state;
	struct harness *h = new64();

	/* 128-bit add: (2^64 - 1) + 1 through add/adc */
	h->state.gpr[RAX] = ~0ULL;
	h->state.gpr[RDX] = 0;
	h->state.gpr[RBX] = 1;
	h->state.gpr[RCX] = 0;
	RUN(h, 64, 0, 2, 0x48, 0x01, 0xd8, 0x48, 0x11, 0xca); /* add rax, rbx; adc rdx, rcx */
	assert_int_equal(h->state.gpr[RAX], 0);
	assert_int_equal(h->state.gpr[RDX], 1);
	check_flags(h, ALL, 0);

	/* adc with carry-in: 0xff + 0 + 1 carries out */
	h->state.gpr[RAX] = 0xff;
	RUN(h, 64, CF, 1, 0x14, 0x00); /* adc al, 0 */
	assert_int_equal(h->state.gpr[RAX] & 0xff, 0);
	check_flags(h, ALL, CF | ZF | AF | PF);

	/* adc 0x7f + 0 + 1 overflows */
	h->state.gpr[RAX] = 0x7f;
	RUN(h, 64, CF, 1, 0x14, 0x00);
	assert_int_equal(h->state.gpr[RAX] & 0xff, 0x80);
	check_flags(h, ALL, OF | SF | AF);

	/* sbb 0 - 0 - 1 borrows */
	h->state.gpr[RAX] = 0;
	RUN(h, 64, CF, 1, 0x1c, 0x00); /* sbb al, 0 */
	assert_int_equal(h->state.gpr[RAX] & 0xff, 0xff);
	check_flags(h, ALL, CF | SF | AF | PF);

	/* sbb x - x - 1 with CF=1: result -1, borrow */
	h->state.gpr[RCX] = 0x1234;
	h->state.gpr[RDX] = 0x1234;
	RUN(h, 64, CF, 1, 0x48, 0x19, 0xd1); /* sbb rcx, rdx */
	assert_int_equal(h->state.gpr[RCX], ~0ULL);
	check_flags(h, ALL, CF | SF | AF | PF);

	/* sbb 0x80 - 0 - 1: overflow without borrow */
	h->state.gpr[RAX] = 0x80;
	RUN(h, 64, CF, 1, 0x1c, 0x00);
	assert_int_equal(h->state.gpr[RAX] & 0xff, 0x7f);
	check_flags(h, ALL, OF | AF);
	harness_free(h);
}

static void test_logic_and_test(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RAX] = 0xf0;
	h->state.gpr[RCX] = 0x0f;
	RUN(h, 64, CF | OF | AF, 1, 0x20, 0xc8); /* and al, cl */
	assert_int_equal(h->state.gpr[RAX], 0);
	check_flags(h, ALL, ZF | PF); /* AF undefined: Intel clears it */

	h->state.gpr[RAX] = 0x8000000000000000ULL;
	RUN(h, 64, CF | OF, 1, 0x48, 0x0d, 0x01, 0, 0, 0); /* or rax, 1 */
	assert_int_equal(h->state.gpr[RAX], 0x8000000000000001ULL);
	check_flags(h, ALL, SF);

	h->state.gpr[RDX] = 0x5555;
	RUN(h, 64, 0, 1, 0x66, 0x81, 0xf2, 0x55, 0x55); /* xor dx, 0x5555 */
	assert_int_equal(h->state.gpr[RDX], 0);
	check_flags(h, ALL, ZF | PF);

	h->state.gpr[RBX] = 0x80;
	RUN(h, 64, CF | OF, 1, 0xf6, 0xc3, 0x80); /* test bl, 0x80 */
	assert_int_equal(h->state.gpr[RBX], 0x80);
	check_flags(h, ALL, SF);

	h->state.gpr[RBX] = 0x80;
	RUN(h, 64, 0, 1, 0xf6, 0xcb, 0x01); /* test bl, 1 via the F6 /1 alias */
	check_flags(h, ALL, ZF | PF);

	h->state.gpr[RAX] = 0x3;
	RUN(h, 64, 0, 1, 0xa8, 0x01); /* test al, 1 */
	check_flags(h, ALL, 0);
	harness_free(h);
}

static void test_memory_forms_and_lock(void **state)
{
	(void)state;
	struct harness *h = new64();
	set_mem64(h, HARNESS_DATA_ADDR, 0x00000000ffffffffULL);
	h->state.gpr[RSI] = HARNESS_DATA_ADDR;
	h->state.gpr[RDX] = 1;
	RUN(h, 64, 0, 1, 0xf0, 0x01, 0x16); /* lock add [rsi], edx */
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR), 0);
	check_flags(h, CF | ZF, CF | ZF);

	set_mem64(h, HARNESS_DATA_ADDR + 8, 5);
	RUN(h, 64, 0, 1, 0x48, 0x83, 0x6e, 0x08, 0x07); /* sub qword [rsi+8], 7 */
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR + 8), (uint64_t)-2);
	check_flags(h, CF | SF, CF | SF);

	h->state.gpr[RAX] = 0;
	RUN(h, 64, 0, 1, 0x03, 0x46, 0x08); /* add eax, [rsi+8] */
	assert_int_equal(h->state.gpr[RAX], 0xfffffffeULL);

	set_mem64(h, HARNESS_DATA_ADDR, 0x1234);
	RUN(h, 64, 0, 1, 0x80, 0x3e, 0x34); /* cmp byte [rsi], 0x34 */
	check_flags(h, ZF, ZF);
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR), 0x1234);

	/* Decoder rules: LOCK needs a memory destination and a lockable op. */
	struct soft_optable *t = soft_optable_build();
	struct insn i;
	assert_non_null(t);
	static const uint8_t lock_reg[] = {0xf0, 0x01, 0xd1};  /* lock add ecx, edx */
	static const uint8_t lock_cmp[] = {0xf0, 0x39, 0x16};  /* lock cmp [rsi], edx */
	static const uint8_t lock_grp1[] = {0xf0, 0x83, 0x3e, 1}; /* lock cmp [rsi], 1 */
	static const uint8_t lock_or[] = {0xf0, 0x83, 0x0e, 1}; /* lock or [rsi], 1 */
	static const uint8_t lock_test[] = {0xf0, 0x85, 0x16}; /* lock test [rsi], edx */
	static const uint8_t lock_bts[] = {0xf0, 0x0f, 0xab, 0x16};
	static const uint8_t lock_bt[] = {0xf0, 0x0f, 0xa3, 0x16};
	static const uint8_t lock_neg[] = {0xf0, 0xf7, 0x1e};
	static const uint8_t lock_inc[] = {0xf0, 0xfe, 0x06};
	assert_int_equal(soft_decode_buffer(t, lock_reg, sizeof(lock_reg), true, true, &i), -1);
	assert_int_equal(soft_decode_buffer(t, lock_cmp, sizeof(lock_cmp), true, true, &i), -1);
	assert_int_equal(soft_decode_buffer(t, lock_grp1, sizeof(lock_grp1), true, true, &i), -1);
	assert_int_equal(soft_decode_buffer(t, lock_test, sizeof(lock_test), true, true, &i), -1);
	assert_int_equal(soft_decode_buffer(t, lock_bt, sizeof(lock_bt), true, true, &i), -1);
	assert_int_equal(soft_decode_buffer(t, lock_or, sizeof(lock_or), true, true, &i), 4);
	assert_int_equal(soft_decode_buffer(t, lock_bts, sizeof(lock_bts), true, true, &i), 4);
	assert_int_equal(soft_decode_buffer(t, lock_neg, sizeof(lock_neg), true, true, &i), 3);
	assert_int_equal(soft_decode_buffer(t, lock_inc, sizeof(lock_inc), true, true, &i), 3);
	soft_optable_free(t);
	harness_free(h);
}

static void test_mode_specific_opcodes(void **state)
{
	(void)state;
	struct soft_optable *t = soft_optable_build();
	struct insn i;
	assert_non_null(t);
	static const uint8_t op82[] = {0x82, 0xc1, 0x01}; /* add cl, 1 (alias of 80) */
	assert_int_equal(soft_decode_buffer(t, op82, 3, true, true, &i), -1);
	assert_int_equal(soft_decode_buffer(t, op82, 3, false, true, &i), 3);
	static const uint8_t bcd[] = {0x27};
	assert_int_equal(soft_decode_buffer(t, bcd, 1, true, true, &i), -1);
	assert_int_equal(soft_decode_buffer(t, bcd, 1, false, true, &i), 1);
	/* In 64-bit mode 41 is REX.B: 41 FF C0 is inc r8d, not inc ecx. */
	static const uint8_t rex_inc[] = {0x41, 0xff, 0xc0};
	assert_int_equal(soft_decode_buffer(t, rex_inc, 3, true, true, &i), 3);
	assert_int_equal(i.rm, 8);
	static const uint8_t inc_ecx[] = {0x41};
	assert_int_equal(soft_decode_buffer(t, inc_ecx, 1, false, true, &i), 1);
	/* F3 0F BD is LZCNT, 0F BD and F2 0F BD are BSR. */
	static const uint8_t lzcnt[] = {0xf3, 0x0f, 0xbd, 0xc1};
	static const uint8_t bsr[] = {0x0f, 0xbd, 0xc1};
	assert_int_equal(soft_decode_buffer(t, lzcnt, 4, true, true, &i), 4);
	assert_string_equal(i.def->name, "lzcnt");
	assert_int_equal(soft_decode_buffer(t, bsr, 3, true, true, &i), 3);
	assert_string_equal(i.def->name, "bsr");
	static const uint8_t jmpe[] = {0x0f, 0xb8, 0xc1}; /* 0F B8 without F3 is not POPCNT */
	assert_int_equal(soft_decode_buffer(t, jmpe, 3, true, true, &i), -1);
	static const uint8_t cx8_reg[] = {0x0f, 0xc7, 0xc8}; /* cmpxchg8b with a register: #UD */
	assert_int_equal(soft_decode_buffer(t, cx8_reg, 3, true, true, &i), -1);
	soft_optable_free(t);

	/* Executing 82 in 64-bit mode faults (no IDT here: shutdown). */
	struct harness *h = new64();
	h->state.gpr[RCX] = 7;
	assert_int_equal(RUN(h, 64, 0, 1, 0x82, 0xc1, 0x01), VCPU_EXIT_SHUTDOWN);
	assert_int_equal(h->state.gpr[RCX], 7);
	harness_free(h);

	h = harness_new(32);
	assert_non_null(h);
	h->state.gpr[RCX] = 0xff;
	RUN(h, 32, 0, 1, 0x82, 0xc1, 0x01); /* add cl, 1 */
	assert_int_equal(h->state.gpr[RCX], 0);
	check_flags(h, ALL, CF | ZF | AF | PF);
	harness_free(h);
}

/* ---- INC/DEC/NEG/NOT ---- */

static void test_inc_dec_neg_not(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RCX] = 0x7f;
	RUN(h, 64, CF, 1, 0xfe, 0xc1); /* inc cl: CF preserved */
	assert_int_equal(h->state.gpr[RCX], 0x80);
	check_flags(h, ALL, CF | OF | SF | AF);

	h->state.gpr[RCX] = 0x80000000ULL;
	RUN(h, 64, 0, 1, 0xff, 0xc9); /* dec ecx */
	assert_int_equal(h->state.gpr[RCX], 0x7fffffffULL);
	check_flags(h, ALL, OF | AF | PF);

	h->state.gpr[RCX] = ~0ULL;
	RUN(h, 64, 0, 1, 0x48, 0xff, 0xc1); /* inc rcx */
	assert_int_equal(h->state.gpr[RCX], 0);
	check_flags(h, ALL, ZF | AF | PF); /* CF (clear) preserved */

	set_mem64(h, HARNESS_DATA_ADDR, 1);
	h->state.gpr[RSI] = HARNESS_DATA_ADDR;
	RUN(h, 64, CF, 1, 0xf0, 0x66, 0xff, 0x0e); /* lock dec word [rsi] */
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR), 0);
	check_flags(h, ALL, CF | ZF | PF);

	h->state.gpr[RAX] = 0x80;
	RUN(h, 64, 0, 1, 0xf6, 0xd8); /* neg al */
	assert_int_equal(h->state.gpr[RAX], 0x80);
	check_flags(h, ALL, CF | OF | SF);

	h->state.gpr[RAX] = 0;
	RUN(h, 64, CF, 1, 0x48, 0xf7, 0xd8); /* neg rax */
	assert_int_equal(h->state.gpr[RAX], 0);
	check_flags(h, ALL, ZF | PF);

	h->state.gpr[RAX] = 1;
	RUN(h, 64, 0, 1, 0x66, 0xf7, 0xd8); /* neg ax */
	assert_int_equal(h->state.gpr[RAX], 0xffff);
	check_flags(h, ALL, CF | SF | AF | PF);

	h->state.gpr[RAX] = 0xffffffff00ff00ffULL;
	RUN(h, 64, CF | ZF, 1, 0xf7, 0xd0); /* not eax: no flags */
	assert_int_equal(h->state.gpr[RAX], 0xff00ff00ULL);
	check_flags(h, ALL, CF | ZF);
	harness_free(h);

	/* 40-4F are INC/DEC outside 64-bit mode. */
	h = harness_new(32);
	assert_non_null(h);
	h->state.gpr[RAX] = 0xffffffff;
	h->state.gpr[RBX] = 0;
	RUN(h, 32, 0, 2, 0x40, 0x4b); /* inc eax; dec ebx */
	assert_int_equal(h->state.gpr[RAX], 0);
	assert_int_equal(h->state.gpr[RBX], 0xffffffff);
	check_flags(h, ALL, SF | AF | PF);
	h->state.gpr[RDX] = 0x1234ffff;
	RUN(h, 32, CF, 1, 0x66, 0x42); /* inc dx */
	assert_int_equal(h->state.gpr[RDX], 0x12340000);
	check_flags(h, ALL, CF | ZF | AF | PF);
	harness_free(h);
}

/* ---- multiply and divide ---- */

static void test_mul_imul(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RAX] = 0x80;
	h->state.gpr[RBX] = 2;
	RUN(h, 64, 0, 1, 0xf6, 0xe3); /* mul bl: AX = 0x100 */
	assert_int_equal(h->state.gpr[RAX], 0x100);
	check_flags(h, CF | OF, CF | OF);

	h->state.gpr[RAX] = ~0ULL;
	h->state.gpr[RBX] = ~0ULL;
	h->state.gpr[RDX] = 0;
	RUN(h, 64, 0, 1, 0x48, 0xf7, 0xe3); /* mul rbx */
	assert_int_equal(h->state.gpr[RAX], 1);
	assert_int_equal(h->state.gpr[RDX], 0xfffffffffffffffeULL);
	check_flags(h, CF | OF | ZF, CF | OF); /* ZF undefined: Intel clears it */

	h->state.gpr[RAX] = 3;
	h->state.gpr[RBX] = 5;
	h->state.gpr[RDX] = 0xdead;
	RUN(h, 64, CF | OF, 1, 0x66, 0xf7, 0xe3); /* mul bx: DX = 0 */
	assert_int_equal(h->state.gpr[RAX], 15);
	assert_int_equal(h->state.gpr[RDX], 0);
	check_flags(h, CF | OF, 0);

	h->state.gpr[RAX] = (uint64_t)-2;
	h->state.gpr[RBX] = 3;
	RUN(h, 64, 0, 1, 0x48, 0xf7, 0xeb); /* imul rbx: -6 fits */
	assert_int_equal(h->state.gpr[RAX], (uint64_t)-6);
	assert_int_equal(h->state.gpr[RDX], ~0ULL);
	check_flags(h, CF | OF | ZF, 0);

	h->state.gpr[RAX] = 0x40;
	h->state.gpr[RBX] = 2;
	RUN(h, 64, 0, 1, 0xf6, 0xeb); /* imul bl: 0x80 does not fit in int8 */
	assert_int_equal(h->state.gpr[RAX], 0x80);
	check_flags(h, CF | OF, CF | OF);

	h->state.gpr[RCX] = 0x40000000;
	RUN(h, 64, 0, 1, 0x6b, 0xc1, 0x02); /* imul eax, ecx, 2 */
	assert_int_equal(h->state.gpr[RAX], 0x80000000ULL);
	check_flags(h, CF | OF, CF | OF);

	h->state.gpr[RCX] = 0x40000000;
	RUN(h, 64, 0, 1, 0x48, 0x69, 0xc1, 0xfe, 0xff, 0xff, 0xff); /* imul rax, rcx, -2 */
	assert_int_equal(h->state.gpr[RAX], 0xffffffff80000000ULL);
	check_flags(h, CF | OF, 0);

	h->state.gpr[RAX] = 0x4000000000000000ULL;
	h->state.gpr[RCX] = 2;
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xaf, 0xc1); /* imul rax, rcx */
	assert_int_equal(h->state.gpr[RAX], 0x8000000000000000ULL);
	check_flags(h, CF | OF | SF, CF | OF | SF);

	h->state.gpr[RAX] = 0xffffffff00000003ULL;
	h->state.gpr[RCX] = 0xffff;
	RUN(h, 64, 0, 1, 0x66, 0x0f, 0xaf, 0xc1); /* imul ax, cx: 3 * -1 */
	assert_int_equal(h->state.gpr[RAX], 0xffffffff0000fffdULL);
	check_flags(h, CF | OF, 0);
	harness_free(h);
}

static void test_div_idiv(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RAX] = 0x0123;
	h->state.gpr[RBX] = 0x10;
	RUN(h, 64, CF | ZF, 1, 0xf6, 0xf3); /* div bl: 0x123 / 16 */
	assert_int_equal(h->state.gpr[RAX], 0x0312); /* AH = 3, AL = 0x12 */
	check_flags(h, ALL, CF | ZF);                 /* undefined: Intel leaves them */

	h->state.gpr[RDX] = 1;
	h->state.gpr[RAX] = 0;
	h->state.gpr[RBX] = 2;
	RUN(h, 64, 0, 1, 0x48, 0xf7, 0xf3); /* div rbx: 2^64 / 2 */
	assert_int_equal(h->state.gpr[RAX], 0x8000000000000000ULL);
	assert_int_equal(h->state.gpr[RDX], 0);

	h->state.gpr[RDX] = ~0ULL;
	h->state.gpr[RAX] = (uint64_t)-7;
	h->state.gpr[RBX] = 2;
	RUN(h, 64, 0, 1, 0x48, 0xf7, 0xfb); /* idiv rbx: -7 / 2 = -3 rem -1 */
	assert_int_equal(h->state.gpr[RAX], (uint64_t)-3);
	assert_int_equal(h->state.gpr[RDX], (uint64_t)-1);

	h->state.gpr[RAX] = 0xff80; /* -128 */
	h->state.gpr[RBX] = 1;
	RUN(h, 64, 0, 1, 0xf6, 0xfb); /* idiv bl: quotient -128 fits */
	assert_int_equal(h->state.gpr[RAX], 0x0080);

	h->state.gpr[RDX] = 0x1234;
	h->state.gpr[RAX] = 0x5678;
	h->state.gpr[RBX] = 0x1234; /* quotient 0x10000 does not fit in 16 bits */
	RUN(h, 64, 0, 1, 0x66, 0xf7, 0xf3);
	assert_int_equal(h->state.gpr[RAX], 0x5678);
	harness_free(h);
}

/* #DE faults before anything changes; with no IDT the harness CPU then
 * shuts down, with RIP still at the faulting instruction. */
static void assert_de(int mode, const uint8_t *code, size_t len, uint64_t rax, uint64_t rdx,
		      uint64_t rbx)
{
	struct harness *h = harness_new(mode);
	assert_non_null(h);
	h->state.gpr[RAX] = rax;
	h->state.gpr[RDX] = rdx;
	h->state.gpr[RBX] = rbx;
	if (mode == 16) {
		/* Real mode delivers through the IVT: vector 0 → 0000:3000; the
		 * pushed return IP is the faulting instruction's. */
		static const uint8_t ivt0[4] = {0x00, 0x30, 0x00, 0x00};
		guest_mem_write(&h->mem, 0, ivt0, sizeof(ivt0));
		assert_int_equal(run(h, mode, code, len, CF, 1), VCPU_EXIT_DEBUG);
		assert_int_equal(h->state.rip, 0x3000);
		uint16_t ret_ip = 0;
		guest_mem_read(&h->mem, h->state.gpr[GPR_RSP] & 0xffff, &ret_ip, 2);
		assert_int_equal(ret_ip, code_start(mode));
	} else {
		assert_int_equal(run(h, mode, code, len, CF, 1), VCPU_EXIT_SHUTDOWN);
		assert_int_equal(h->state.rip, code_start(mode));
	}
	assert_int_equal(h->state.gpr[RAX], rax);
	assert_int_equal(h->state.gpr[RDX], rdx);
	assert_int_equal(h->state.gpr[RBX], rbx);
	harness_free(h);
}

static void test_divide_errors(void **state)
{
	(void)state;
	static const uint8_t div_rbx[] = {0x48, 0xf7, 0xf3};
	static const uint8_t idiv_rbx[] = {0x48, 0xf7, 0xfb};
	static const uint8_t div_bl[] = {0xf6, 0xf3};
	static const uint8_t idiv_bl[] = {0xf6, 0xfb};
	static const uint8_t idiv_ebx[] = {0xf7, 0xfb};
	assert_de(64, div_rbx, 3, 1, 2, 0);                                /* by zero */
	assert_de(64, div_rbx, 3, 0, 5, 5);                                /* quotient 2^64 */
	assert_de(64, idiv_rbx, 3, 0, 0x8000000000000000ULL, ~0ULL);       /* -2^127 / -1 */
	assert_de(64, idiv_rbx, 3, 0x8000000000000000ULL, ~0ULL, ~0ULL);   /* -2^63 / -1 */
	assert_de(64, div_bl, 2, 0x100, 0, 1);                             /* 256 / 1 */
	assert_de(64, idiv_bl, 2, 0x0080, 0, 1);                           /* +128 / 1 */
	assert_de(64, idiv_ebx, 2, 0x80000000ULL, 0xffffffffULL, 0xffffffffULL);
	assert_de(16, idiv_bl, 2, 0xff80, 0, 0xff);                       /* -128 / -1 */
	static const uint8_t aam0[] = {0xd4, 0x00};
	assert_de(32, aam0, 2, 0x1234, 0, 0);
}

/* ---- shifts and rotates ---- */

static void test_shifts(void **state)
{
	(void)state;
	struct harness *h = new64();

	/* count 0: no flags change, but a 32-bit register is still written */
	h->state.gpr[RDX] = 0xffffffff80000000ULL;
	h->state.gpr[RCX] = 0x20; /* masked to 0 for 32-bit operands */
	RUN(h, 64, CF | OF | ZF, 1, 0xd3, 0xe2); /* shl edx, cl */
	assert_int_equal(h->state.gpr[RDX], 0x80000000ULL);
	check_flags(h, ALL, CF | OF | ZF);

	h->state.gpr[RAX] = 0xc0;
	RUN(h, 64, 0, 1, 0xd0, 0xe0); /* shl al, 1 */
	assert_int_equal(h->state.gpr[RAX], 0x80);
	check_flags(h, CF | OF | ZF | SF, CF | SF);

	h->state.gpr[RAX] = 0x40;
	RUN(h, 64, 0, 1, 0xd0, 0xe0); /* shl al, 1: sign change */
	check_flags(h, CF | OF | SF, OF | SF);

	h->state.gpr[RAX] = 0x81;
	RUN(h, 64, 0, 1, 0xc0, 0xe0, 0x09); /* shl al, 9: everything shifted out */
	assert_int_equal(h->state.gpr[RAX], 0);
	check_flags(h, CF | ZF, ZF);

	h->state.gpr[RAX] = 0x81;
	RUN(h, 64, 0, 1, 0xc0, 0xe0, 0x08); /* shl al, 8: CF is the last bit out */
	assert_int_equal(h->state.gpr[RAX], 0);
	check_flags(h, CF | ZF, CF | ZF);

	h->state.gpr[RAX] = 1;
	h->state.gpr[RCX] = 0xff; /* masked to 63 */
	RUN(h, 64, 0, 1, 0x48, 0xd3, 0xe0); /* shl rax, cl */
	assert_int_equal(h->state.gpr[RAX], 0x8000000000000000ULL);
	check_flags(h, CF | ZF | SF, SF);

	h->state.gpr[RAX] = 0x8000000000000001ULL;
	RUN(h, 64, 0, 1, 0x48, 0xd1, 0xe8); /* shr rax, 1: OF = original MSB */
	assert_int_equal(h->state.gpr[RAX], 0x4000000000000000ULL);
	check_flags(h, CF | OF | SF, CF | OF);

	h->state.gpr[RAX] = 0x8003;
	RUN(h, 64, 0, 1, 0x66, 0xc1, 0xe8, 0x02); /* shr ax, 2 */
	assert_int_equal(h->state.gpr[RAX], 0x2000);
	/* OF for counts > 1 is undefined: Intel gives the original MSB */
	check_flags(h, CF | OF, CF | OF);

	h->state.gpr[RAX] = 0x80000001ULL;
	RUN(h, 64, OF, 1, 0xc1, 0xf8, 0x1f); /* sar eax, 31 */
	assert_int_equal(h->state.gpr[RAX], 0xffffffffULL);
	check_flags(h, CF | OF | SF | ZF, SF);

	h->state.gpr[RAX] = 0x80;
	RUN(h, 64, 0, 1, 0xc0, 0xf8, 0x1f); /* sar al, 31: fills with the sign */
	assert_int_equal(h->state.gpr[RAX], 0xff);
	check_flags(h, CF | OF | SF, CF | SF);

	h->state.gpr[RAX] = 0x41;
	RUN(h, 64, 0, 1, 0xd0, 0xf0); /* D0 /6 is SAL, the same as SHL */
	assert_int_equal(h->state.gpr[RAX], 0x82);
	check_flags(h, CF | OF, OF);

	set_mem64(h, HARNESS_DATA_ADDR, 0xf000000000000000ULL);
	h->state.gpr[RSI] = HARNESS_DATA_ADDR;
	h->state.gpr[RCX] = 4;
	RUN(h, 64, 0, 1, 0x48, 0xd3, 0x26); /* shl qword [rsi], cl */
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR), 0);
	check_flags(h, CF | ZF, CF | ZF);
	harness_free(h);
}

static void test_rotates(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RAX] = 0x81;
	RUN(h, 64, 0, 1, 0xd0, 0xc0); /* rol al, 1 */
	assert_int_equal(h->state.gpr[RAX], 0x03);
	check_flags(h, CF | OF, CF | OF);

	h->state.gpr[RAX] = 0x81;
	RUN(h, 64, 0, 1, 0xd0, 0xc8); /* ror al, 1 */
	assert_int_equal(h->state.gpr[RAX], 0xc0);
	check_flags(h, CF | OF, CF);

	/* ROL by a whole number of turns still sets CF from bit 0 */
	h->state.gpr[RAX] = 0x01;
	h->state.gpr[RCX] = 8;
	RUN(h, 64, 0, 1, 0xd2, 0xc0); /* rol al, cl */
	assert_int_equal(h->state.gpr[RAX], 0x01);
	check_flags(h, CF, CF);

	/* OF for counts > 1 (undefined): Intel uses the count-1 value from the
	 * original operand with CL, and leaves OF alone with an immediate. */
	h->state.gpr[RAX] = 0x40;
	h->state.gpr[RCX] = 2;
	RUN(h, 64, 0, 1, 0xd2, 0xc0); /* rol al, cl */
	assert_int_equal(h->state.gpr[RAX], 0x01);
	check_flags(h, CF | OF, CF | OF);
	h->state.gpr[RAX] = 0x40;
	RUN(h, 64, 0, 1, 0xc0, 0xc0, 0x02); /* rol al, 2 */
	assert_int_equal(h->state.gpr[RAX], 0x01);
	check_flags(h, CF | OF, CF);

	h->state.gpr[RAX] = 0x12345678;
	RUN(h, 64, 0, 1, 0xc1, 0xc8, 0x08); /* ror eax, 8 */
	assert_int_equal(h->state.gpr[RAX], 0x78123456);
	check_flags(h, CF, 0);

	h->state.gpr[RAX] = 0x80;
	RUN(h, 64, 0, 1, 0xd0, 0xd0); /* rcl al, 1 with CF=0 */
	assert_int_equal(h->state.gpr[RAX], 0x00);
	check_flags(h, CF | OF, CF | OF);

	h->state.gpr[RAX] = 0x01;
	RUN(h, 64, CF, 1, 0xd0, 0xd8); /* rcr al, 1 with CF=1 */
	assert_int_equal(h->state.gpr[RAX], 0x80);
	check_flags(h, CF | OF, CF | OF);

	/* RCL byte: the count is taken modulo 9; 9 is a full turn that changes
	 * no flag */
	h->state.gpr[RAX] = 0x55;
	h->state.gpr[RCX] = 9;
	RUN(h, 64, CF | OF, 1, 0xd2, 0xd0); /* rcl al, cl */
	assert_int_equal(h->state.gpr[RAX], 0x55);
	check_flags(h, CF | OF, CF | OF);
	h->state.gpr[RCX] = 10; /* = 1 */
	RUN(h, 64, CF, 1, 0xd2, 0xd0);
	assert_int_equal(h->state.gpr[RAX], 0xab);
	check_flags(h, CF | OF, OF);

	/* RCR word by 17 (mod 17 = 0) and by 16 */
	h->state.gpr[RAX] = 0x8001;
	h->state.gpr[RCX] = 16;
	RUN(h, 64, CF, 1, 0x66, 0xd3, 0xd8); /* rcr ax, cl */
	assert_int_equal(h->state.gpr[RAX], 0x0003); /* CF:AX = 1:8001 rotated right 16 */
	check_flags(h, CF, CF);

	h->state.gpr[RAX] = 0x8000000000000000ULL;
	RUN(h, 64, CF, 1, 0x48, 0xd1, 0xd0); /* rcl rax, 1 */
	assert_int_equal(h->state.gpr[RAX], 1);
	check_flags(h, CF | OF, CF | OF);

	/* Rotates leave SF/ZF/PF/AF alone */
	h->state.gpr[RAX] = 0;
	RUN(h, 64, SF | PF | AF, 1, 0xd0, 0xc0);
	check_flags(h, ALL, SF | PF | AF);
	harness_free(h);
}

static void test_shld_shrd(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RBX] = 0x12345678;
	h->state.gpr[RDX] = 0x9abcdef0;
	RUN(h, 64, 0, 1, 0x0f, 0xa4, 0xd3, 0x08); /* shld ebx, edx, 8 */
	assert_int_equal(h->state.gpr[RBX], 0x3456789a);
	check_flags(h, CF | ZF | SF, 0);

	h->state.gpr[RBX] = 0x12345678;
	h->state.gpr[RDX] = 0x9abcdef0;
	h->state.gpr[RCX] = 4;
	RUN(h, 64, 0, 1, 0x0f, 0xad, 0xd3); /* shrd ebx, edx, cl */
	assert_int_equal(h->state.gpr[RBX], 0x01234567);
	check_flags(h, CF | SF, CF);

	h->state.gpr[RBX] = 0x4000000000000000ULL;
	h->state.gpr[RDX] = 0;
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xa4, 0xd3, 0x01); /* shld rbx, rdx, 1 */
	assert_int_equal(h->state.gpr[RBX], 0x8000000000000000ULL);
	check_flags(h, CF | OF | SF, OF | SF);

	/* count 0: nothing changes (but a 32-bit destination is written) */
	h->state.gpr[RBX] = 0xffffffff00000001ULL;
	h->state.gpr[RCX] = 0;
	RUN(h, 64, CF | ZF, 1, 0x0f, 0xa5, 0xd3);
	assert_int_equal(h->state.gpr[RBX], 1);
	check_flags(h, ALL, CF | ZF);

	/* 16-bit with a count above 16 (undefined result): Intel shifts
	 * dest:src:dest */
	h->state.gpr[RBX] = 0x1234;
	h->state.gpr[RDX] = 0xabcd;
	h->state.gpr[RCX] = 20;
	RUN(h, 64, 0, 1, 0x66, 0x0f, 0xa5, 0xd3); /* shld bx, dx, cl */
	assert_int_equal(h->state.gpr[RBX], 0xbcd1);
	h->state.gpr[RBX] = 0x1234;
	RUN(h, 64, 0, 1, 0x66, 0x0f, 0xac, 0xd3, 0x14); /* shrd bx, dx, 20 */
	assert_int_equal(h->state.gpr[RBX], 0x4abc);
	harness_free(h);
}

/* ---- bit operations ---- */

static void test_bit_test(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RBX] = 0x10;
	h->state.gpr[RDX] = 36; /* modulo 32 → bit 4 */
	RUN(h, 64, ZF, 1, 0x0f, 0xa3, 0xd3); /* bt ebx, edx */
	check_flags(h, CF | ZF, CF | ZF);     /* ZF unchanged */

	h->state.gpr[RBX] = 0;
	h->state.gpr[RDX] = 63;
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xab, 0xd3); /* bts rbx, rdx */
	assert_int_equal(h->state.gpr[RBX], 0x8000000000000000ULL);
	check_flags(h, CF, 0);

	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xba, 0xfb, 0x3f); /* btc rbx, 63 */
	assert_int_equal(h->state.gpr[RBX], 0);
	check_flags(h, CF, CF);

	h->state.gpr[RBX] = 0xffff;
	RUN(h, 64, 0, 1, 0x66, 0x0f, 0xba, 0xf3, 0x21); /* btr bx, 33 → bit 1 */
	assert_int_equal(h->state.gpr[RBX], 0xfffd);
	check_flags(h, CF, CF);

	/* memory with a register offset reaches outside the operand, signed */
	set_mem64(h, HARNESS_DATA_ADDR, 0);
	set_mem64(h, HARNESS_DATA_ADDR + 8, 0);
	h->state.gpr[RSI] = HARNESS_DATA_ADDR + 8;
	h->state.gpr[RDX] = (uint64_t)-1; /* bit 31 of the dword at rsi-4 */
	RUN(h, 64, 0, 1, 0xf0, 0x0f, 0xab, 0x16); /* lock bts [rsi], edx */
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR), 0x8000000000000000ULL);
	check_flags(h, CF, 0);
	h->state.gpr[RDX] = 64 + 3; /* qword at rsi+8, bit 3 */
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xab, 0x16); /* bts [rsi], rdx */
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR + 16), 8);
	h->state.gpr[RDX] = (uint64_t)-1; /* bit 63 of the qword at rsi-8 */
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xa3, 0x16); /* bt [rsi], rdx */
	check_flags(h, CF, CF);

	/* the imm8 form takes the offset modulo the operand width: no reach */
	set_mem64(h, HARNESS_DATA_ADDR + 8, 0x4);
	RUN(h, 64, 0, 1, 0x0f, 0xba, 0x26, 0x22); /* bt dword [rsi], 34 → bit 2 */
	check_flags(h, CF, CF);

	/* OF/SF/AF/PF are undefined: Intel leaves them */
	h->state.gpr[RBX] = 1;
	h->state.gpr[RDX] = 0;
	RUN(h, 64, OF | SF | AF | PF, 1, 0x0f, 0xa3, 0xd3);
	check_flags(h, ALL, CF | OF | SF | AF | PF);
	harness_free(h);
}

static void test_bit_scan_count(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RBX] = 0x00f0;
	h->state.gpr[RDX] = 0x1111;
	RUN(h, 64, ALL, 1, 0x0f, 0xbc, 0xd3); /* bsf edx, ebx */
	assert_int_equal(h->state.gpr[RDX], 4);
	check_flags(h, ALL, 0); /* PF (undefined) is the parity of 4 on Intel */

	RUN(h, 64, 0, 1, 0x0f, 0xbd, 0xd3); /* bsr edx, ebx */
	assert_int_equal(h->state.gpr[RDX], 7);
	check_flags(h, ZF, 0);

	h->state.gpr[RBX] = 0;
	h->state.gpr[RDX] = 0xffffffff12345678ULL;
	RUN(h, 64, CF, 1, 0x0f, 0xbd, 0xd3); /* bsr edx, ebx with a zero source */
	assert_int_equal(h->state.gpr[RDX], 0xffffffff12345678ULL); /* untouched */
	check_flags(h, ZF | CF, ZF);

	h->state.gpr[RBX] = 0x8000000000000000ULL;
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xbc, 0xd3); /* bsf rdx, rbx */
	assert_int_equal(h->state.gpr[RDX], 63);

	h->state.gpr[RBX] = 0;
	RUN(h, 64, 0, 1, 0xf3, 0x0f, 0xbc, 0xd3); /* tzcnt edx, ebx */
	assert_int_equal(h->state.gpr[RDX], 32);
	check_flags(h, CF | ZF, CF);

	h->state.gpr[RBX] = 1;
	RUN(h, 64, 0, 1, 0xf3, 0x0f, 0xbc, 0xd3); /* tzcnt: result 0 sets ZF */
	assert_int_equal(h->state.gpr[RDX], 0);
	check_flags(h, CF | ZF, ZF);

	h->state.gpr[RBX] = 1;
	RUN(h, 64, 0, 1, 0x66, 0xf3, 0x0f, 0xbd, 0xd3); /* lzcnt dx, bx */
	assert_int_equal(h->state.gpr[RDX] & 0xffff, 15);
	check_flags(h, CF | ZF, 0);

	h->state.gpr[RBX] = 0;
	RUN(h, 64, 0, 1, 0xf3, 0x48, 0x0f, 0xbd, 0xd3); /* lzcnt rdx, rbx */
	assert_int_equal(h->state.gpr[RDX], 64);
	check_flags(h, CF | ZF, CF);

	h->state.gpr[RBX] = 0xf0f0f0f0f0f0f0f0ULL;
	RUN(h, 64, ALL, 1, 0xf3, 0x48, 0x0f, 0xb8, 0xd3); /* popcnt rdx, rbx */
	assert_int_equal(h->state.gpr[RDX], 32);
	check_flags(h, ALL, 0);
	h->state.gpr[RBX] = 0;
	RUN(h, 64, ALL, 1, 0xf3, 0x0f, 0xb8, 0xd3); /* popcnt edx, ebx */
	assert_int_equal(h->state.gpr[RDX], 0);
	check_flags(h, ALL, ZF);
	harness_free(h);
}

/* ---- exchange and compare ---- */

static void test_bswap_xadd_cmpxchg(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RBX] = 0xffffffff12345678ULL;
	RUN(h, 64, 0, 1, 0x0f, 0xcb); /* bswap ebx */
	assert_int_equal(h->state.gpr[RBX], 0x78563412ULL);
	h->state.gpr[GPR_R8] = 0x0102030405060708ULL;
	RUN(h, 64, 0, 1, 0x49, 0x0f, 0xc8); /* bswap r8 */
	assert_int_equal(h->state.gpr[GPR_R8], 0x0807060504030201ULL);

	h->state.gpr[RBX] = 0x7fffffff;
	h->state.gpr[RDX] = 1;
	RUN(h, 64, 0, 1, 0x0f, 0xc1, 0xd3); /* xadd ebx, edx */
	assert_int_equal(h->state.gpr[RBX], 0x80000000ULL);
	assert_int_equal(h->state.gpr[RDX], 0x7fffffff);
	check_flags(h, OF | SF | CF, OF | SF);

	h->state.gpr[RBX] = 5;
	RUN(h, 64, 0, 1, 0x0f, 0xc1, 0xdb); /* xadd ebx, ebx: the sum wins */
	assert_int_equal(h->state.gpr[RBX], 10);

	set_mem64(h, HARNESS_DATA_ADDR, 40);
	h->state.gpr[RSI] = HARNESS_DATA_ADDR;
	h->state.gpr[RDX] = 2;
	RUN(h, 64, 0, 1, 0xf0, 0x48, 0x0f, 0xc1, 0x16); /* lock xadd [rsi], rdx */
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR), 42);
	assert_int_equal(h->state.gpr[RDX], 40);

	/* cmpxchg: equal → store the source, ZF=1 */
	h->state.gpr[RAX] = 42;
	h->state.gpr[RDX] = 7;
	RUN(h, 64, 0, 1, 0xf0, 0x48, 0x0f, 0xb1, 0x16); /* lock cmpxchg [rsi], rdx */
	assert_int_equal(mem64(h, HARNESS_DATA_ADDR), 7);
	check_flags(h, ZF, ZF);
	/* not equal → load the accumulator, ZF=0, flags as CMP */
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xb1, 0x16);
	assert_int_equal(h->state.gpr[RAX], 7);
	check_flags(h, ALL, 0); /* 42 - 7 */

	/* register destination, not equal: EAX is loaded (zero-extended) and
	 * the destination is left alone */
	h->state.gpr[RAX] = 0xffffffff00000001ULL;
	h->state.gpr[RBX] = 0xaaaaaaaa00000002ULL;
	RUN(h, 64, 0, 1, 0x0f, 0xb1, 0xd3); /* cmpxchg ebx, edx */
	assert_int_equal(h->state.gpr[RAX], 2);
	assert_int_equal(h->state.gpr[RBX], 0xaaaaaaaa00000002ULL);
	check_flags(h, ZF | CF, CF);

	h->state.gpr[RAX] = 0x11;
	h->state.gpr[RBX] = 0x11;
	h->state.gpr[RDX] = 0x22;
	RUN(h, 64, 0, 1, 0x0f, 0xb0, 0xd3); /* cmpxchg bl, dl */
	assert_int_equal(h->state.gpr[RBX], 0x22);
	check_flags(h, ZF, ZF);
	harness_free(h);
}

static void test_cmpxchg8b_16b(void **state)
{
	(void)state;
	struct harness *h = new64();
	uint64_t a = HARNESS_DATA_ADDR;

	set_mem64(h, a, 0x1111111122222222ULL);
	h->state.gpr[RSI] = a;
	h->state.gpr[RDX] = 0xffffffff11111111ULL;
	h->state.gpr[RAX] = 0xffffffff22222222ULL;
	h->state.gpr[RCX] = 0x33333333;
	h->state.gpr[RBX] = 0x44444444;
	RUN(h, 64, 0, 1, 0xf0, 0x0f, 0xc7, 0x0e); /* lock cmpxchg8b [rsi] */
	assert_int_equal(mem64(h, a), 0x3333333344444444ULL);
	assert_int_equal(h->state.gpr[RAX], 0xffffffff22222222ULL); /* not written */
	check_flags(h, ZF, ZF);
	RUN(h, 64, ZF, 1, 0x0f, 0xc7, 0x0e); /* now unequal: EDX:EAX loaded */
	assert_int_equal(h->state.gpr[RAX], 0x44444444);
	assert_int_equal(h->state.gpr[RDX], 0x33333333);
	check_flags(h, ZF, 0);

	set_mem64(h, a, 1);
	set_mem64(h, a + 8, 2);
	h->state.gpr[RAX] = 1;
	h->state.gpr[RDX] = 2;
	h->state.gpr[RBX] = 3;
	h->state.gpr[RCX] = 4;
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xc7, 0x0e); /* cmpxchg16b [rsi] */
	assert_int_equal(mem64(h, a), 3);
	assert_int_equal(mem64(h, a + 8), 4);
	check_flags(h, ZF, ZF);
	RUN(h, 64, 0, 1, 0x48, 0x0f, 0xc7, 0x0e); /* unequal */
	assert_int_equal(h->state.gpr[RAX], 3);
	assert_int_equal(h->state.gpr[RDX], 4);
	check_flags(h, ZF, 0);

	h->state.gpr[RSI] = a + 8; /* misaligned: #GP(0) → shutdown here */
	assert_int_equal(RUN(h, 64, 0, 1, 0x48, 0x0f, 0xc7, 0x0e), VCPU_EXIT_SHUTDOWN);
	assert_int_equal(h->state.rip, HARNESS_CODE_ADDR);
	harness_free(h);
}

/* ---- sign extension, SETcc, CMOVcc, flag instructions ---- */

static void test_convert_setcc_cmov(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RAX] = 0x1280;
	RUN(h, 64, 0, 1, 0x66, 0x98); /* cbw */
	assert_int_equal(h->state.gpr[RAX], 0xff80);
	RUN(h, 64, 0, 1, 0x98); /* cwde */
	assert_int_equal(h->state.gpr[RAX], 0xffffff80ULL);
	RUN(h, 64, 0, 1, 0x48, 0x98); /* cdqe */
	assert_int_equal(h->state.gpr[RAX], ~0ULL - 0x7f);
	h->state.gpr[RDX] = 5;
	RUN(h, 64, 0, 1, 0x48, 0x99); /* cqo */
	assert_int_equal(h->state.gpr[RDX], ~0ULL);
	h->state.gpr[RAX] = 0x7fff;
	RUN(h, 64, 0, 1, 0x66, 0x99); /* cwd */
	assert_int_equal(h->state.gpr[RDX], 0xffffffffffff0000ULL);
	h->state.gpr[RAX] = 0x80000000ULL;
	RUN(h, 64, 0, 1, 0x99); /* cdq */
	assert_int_equal(h->state.gpr[RDX], 0xffffffffULL);

	h->state.gpr[RBX] = 0xffff;
	RUN(h, 64, ZF, 1, 0x0f, 0x94, 0xc3); /* sete bl */
	assert_int_equal(h->state.gpr[RBX], 0xff01);
	RUN(h, 64, SF, 1, 0x0f, 0x9c, 0xfb); /* setl bl (ModRM.reg ignored): SF != OF */
	assert_int_equal(h->state.gpr[RBX], 0xff01);
	RUN(h, 64, SF | OF, 1, 0x0f, 0x9c, 0xc3); /* setl bl: SF == OF */
	assert_int_equal(h->state.gpr[RBX], 0xff00);
	RUN(h, 64, CF, 1, 0x0f, 0x97, 0xc3); /* seta bl */
	assert_int_equal(h->state.gpr[RBX], 0xff00);
	RUN(h, 64, 0, 1, 0x0f, 0x9b, 0xc3); /* setnp bl */
	assert_int_equal(h->state.gpr[RBX], 0xff01);

	h->state.gpr[RDX] = 0xffffffff00000001ULL;
	h->state.gpr[RBX] = 0x1234;
	RUN(h, 64, 0, 1, 0x0f, 0x44, 0xd3); /* cmove edx, ebx: false, still zero-extends */
	assert_int_equal(h->state.gpr[RDX], 1);
	RUN(h, 64, ZF, 1, 0x48, 0x0f, 0x44, 0xd3); /* cmove rdx, rbx */
	assert_int_equal(h->state.gpr[RDX], 0x1234);
	h->state.gpr[RDX] = 0xffffffffffff0001ULL;
	RUN(h, 64, 0, 1, 0x66, 0x0f, 0x44, 0xd3); /* cmove dx, bx: false, no change */
	assert_int_equal(h->state.gpr[RDX], 0xffffffffffff0001ULL);

	/* the source is read even when the condition is false: an unmapped
	 * page faults (the harness maps 4 GiB; use a non-canonical address) */
	h->state.gpr[RSI] = 0x8000000000000000ULL;
	assert_int_equal(RUN(h, 64, 0, 1, 0x0f, 0x44, 0x16), VCPU_EXIT_SHUTDOWN);
	harness_free(h);
}

static void test_flag_instructions(void **state)
{
	(void)state;
	struct harness *h = new64();

	h->state.gpr[RAX] = 0;
	RUN(h, 64, SF | ZF | AF | PF | CF | OF, 1, 0x9f); /* lahf */
	assert_int_equal(h->state.gpr[RAX], 0xd700);

	h->state.gpr[RAX] = 0x4100; /* ZF | CF */
	RUN(h, 64, OF | SF, 1, 0x9e); /* sahf: OF untouched */
	check_flags(h, ALL, OF | ZF | CF);

	RUN(h, 64, CF, 1, 0xf5); /* cmc */
	check_flags(h, CF, 0);
	RUN(h, 64, 0, 1, 0xf5);
	check_flags(h, CF, CF);
	RUN(h, 64, ZF, 1, 0xf9); /* stc */
	check_flags(h, ALL, ZF | CF);
	RUN(h, 64, ALL, 1, 0xf8); /* clc */
	check_flags(h, ALL, ALL & ~CF);
	RUN(h, 64, 0, 1, 0xfd); /* std */
	check_flags(h, FLAG_DF, FLAG_DF);
	RUN(h, 64, FLAG_DF | CF, 1, 0xfc); /* cld */
	check_flags(h, FLAG_DF | CF, CF);

	/* after a lazy result: add then lahf */
	h->state.gpr[RAX] = 0xff;
	RUN(h, 64, 0, 2, 0x04, 0x01, 0x9f); /* add al, 1; lahf */
	assert_int_equal(h->state.gpr[RAX], 0x5700); /* ZF AF PF CF + bit 1 */
	harness_free(h);
}

/* ---- BCD (32-bit and real mode) ---- */

static void test_bcd(void **state)
{
	(void)state;
	struct harness *h = harness_new(32);
	assert_non_null(h);

	h->state.gpr[RAX] = 0x79 + 0x35; /* 0xae: after adding BCD 79 + 35 */
	RUN(h, 32, 0, 1, 0x27);          /* daa */
	assert_int_equal(h->state.gpr[RAX], 0x14);
	check_flags(h, CF | AF | ZF | SF, CF | AF);

	h->state.gpr[RAX] = 0x35 - 0x47; /* 0xee, borrow */
	RUN(h, 32, CF | AF, 1, 0x2f);     /* das */
	assert_int_equal(h->state.gpr[RAX] & 0xff, 0x88);
	check_flags(h, CF | AF | SF, CF | AF | SF);

	h->state.gpr[RAX] = 0x000b;
	RUN(h, 32, 0, 1, 0x37); /* aaa */
	assert_int_equal(h->state.gpr[RAX], 0x0101);
	check_flags(h, ALL, CF | AF); /* SF/ZF/PF from the final AL on Intel */

	h->state.gpr[RAX] = 0x0004;
	RUN(h, 32, AF, 1, 0x3f); /* aas: AX - 6 borrows from AH, then AH - 1 */
	assert_int_equal(h->state.gpr[RAX], 0xfe0e);
	check_flags(h, CF | AF, CF | AF);

	h->state.gpr[RAX] = 0x004f; /* 79 */
	RUN(h, 32, 0, 1, 0xd4, 0x0a); /* aam */
	assert_int_equal(h->state.gpr[RAX], 0x0709);
	check_flags(h, ZF | SF | PF, PF);

	h->state.gpr[RAX] = 0x0709;
	RUN(h, 32, 0, 1, 0xd5, 0x0a); /* aad */
	assert_int_equal(h->state.gpr[RAX], 0x004f);
	check_flags(h, ALL, 0);
	h->state.gpr[RAX] = 0x1a80;
	RUN(h, 32, 0, 1, 0xd5, 0x0a); /* aad: 0x80 + 0x04 (260 mod 256); flags as ADD */
	assert_int_equal(h->state.gpr[RAX], 0x0084);
	check_flags(h, ALL, SF | PF);
	harness_free(h);
}

static void test_real_mode(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	assert_non_null(h);
	h->state.gpr[RAX] = 0xffff;
	h->state.gpr[RCX] = 0x12345678;
	/* inc ax; add cx, 0x10; add ecx, 1 (66); shl word [bx], 1 */
	h->state.gpr[RBX] = 0x2000;
	guest_mem_write(&h->mem, 0x2000, "\x01\x80", 2);
	RUN(h, 16, 0, 4, 0x40, 0x83, 0xc1, 0x10, 0x66, 0x83, 0xc1, 0x01, 0xd1, 0x27);
	assert_int_equal(h->state.gpr[RAX], 0);
	assert_int_equal(h->state.gpr[RCX], 0x12345689);
	uint16_t w = 0;
	guest_mem_read(&h->mem, 0x2000, &w, 2);
	assert_int_equal(w, 0x0002);
	check_flags(h, CF | OF, CF | OF);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_flags),
	    cmocka_unit_test(test_sub_cmp),
	    cmocka_unit_test(test_adc_sbb_chain),
	    cmocka_unit_test(test_logic_and_test),
	    cmocka_unit_test(test_memory_forms_and_lock),
	    cmocka_unit_test(test_mode_specific_opcodes),
	    cmocka_unit_test(test_inc_dec_neg_not),
	    cmocka_unit_test(test_mul_imul),
	    cmocka_unit_test(test_div_idiv),
	    cmocka_unit_test(test_divide_errors),
	    cmocka_unit_test(test_shifts),
	    cmocka_unit_test(test_rotates),
	    cmocka_unit_test(test_shld_shrd),
	    cmocka_unit_test(test_bit_test),
	    cmocka_unit_test(test_bit_scan_count),
	    cmocka_unit_test(test_bswap_xadd_cmpxchg),
	    cmocka_unit_test(test_cmpxchg8b_16b),
	    cmocka_unit_test(test_convert_setcc_cmov),
	    cmocka_unit_test(test_flag_instructions),
	    cmocka_unit_test(test_bcd),
	    cmocka_unit_test(test_real_mode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
