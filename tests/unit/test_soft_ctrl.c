/* Soft CPU: near branches, CALL/RET, PUSH/POP, PUSHF/POPF, PUSHA/POPA,
 * ENTER/LEAVE, segment-register pushes and software interrupts (expected
 * values from the SDM vol. 2 operation sections; the ENTER nesting layout,
 * POP [rSP+d], the address-size LOOP and the segment-push widths were
 * also checked on the host CPU). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine/soft/soft.h"
#include "soft_harness.h"

#define CODE HARNESS_CODE_ADDR
#define DATA HARNESS_DATA_ADDR
#define STACK HARNESS_STACK_TOP

static void put(struct harness *h, uint64_t gpa, const void *p, size_t n)
{
	assert_int_equal(guest_mem_write(&h->mem, gpa, p, n), 0);
}

static uint64_t get(struct harness *h, uint64_t gpa, unsigned size)
{
	uint64_t v = 0;
	assert_int_equal(guest_mem_read(&h->mem, gpa, &v, size), 0);
	return v;
}

static void put64(struct harness *h, uint64_t gpa, uint64_t v) { put(h, gpa, &v, 8); }
static void put16(struct harness *h, uint64_t gpa, uint16_t v) { put(h, gpa, &v, 2); }
static void put32(struct harness *h, uint64_t gpa, uint32_t v) { put(h, gpa, &v, 4); }

/* Places code at rip, makes it current and runs one instruction. */
static void run_at(struct harness *h, uint64_t rip, const uint8_t *code, size_t n)
{
	h->state.rip = rip;
	harness_sync(h);
	put(h, rip, code, n);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
}

static void step1(struct harness *h) { assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG); }

/* ---- JMP ---- */

static void test_jmp_64(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	static const uint8_t fwd[] = {0xeb, 0x10};
	run_at(h, CODE, fwd, sizeof(fwd));
	assert_int_equal(h->state.rip, CODE + 0x12);
	static const uint8_t back[] = {0xe9, 0xe9, 0xff, 0xff, 0xff}; /* -0x17 */
	run_at(h, CODE + 0x12, back, sizeof(back));
	assert_int_equal(h->state.rip, CODE);
	/* 66 is ignored by near branches in 64-bit mode: still rel32, 64-bit RIP */
	static const uint8_t o16[] = {0x66, 0xe9, 0x00, 0x01, 0x00, 0x00};
	run_at(h, CODE + 0x20, o16, sizeof(o16));
	assert_int_equal(h->state.rip, CODE + 0x126);
	/* a long backward displacement */
	static const uint8_t far_back[] = {0xe9, 0x00, 0x00, 0xf0, 0xff}; /* -0x100000 */
	run_at(h, CODE, far_back, sizeof(far_back));
	assert_int_equal(h->state.rip, CODE + 5 - 0x100000);
	harness_free(h);
}

static void test_jmp_16_wrap(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	static const uint8_t rel16[] = {0xe9, 0x10, 0x00}; /* next IP wraps to 0 */
	run_at(h, 0xfffd, rel16, sizeof(rel16));
	assert_int_equal(h->state.rip, 0x10);
	static const uint8_t back8[] = {0xeb, 0xf0}; /* 4 - 16 wraps below 0 */
	run_at(h, 0x2, back8, sizeof(back8));
	assert_int_equal(h->state.rip, 0xfff4);
	harness_free(h);

	/* 32-bit code with an operand-size prefix: the target is truncated to 16 bits */
	h = harness_new(32);
	static const uint8_t jmp16[] = {0x66, 0xe9, 0x00, 0x00};
	run_at(h, CODE, jmp16, sizeof(jmp16));
	assert_int_equal(h->state.rip, (CODE + 4) & 0xffff);
	static const uint8_t jmp32[] = {0xe9, 0xfb, 0xff, 0xff, 0xff}; /* jmp $ */
	run_at(h, CODE, jmp32, sizeof(jmp32));
	assert_int_equal(h->state.rip, CODE);
	harness_free(h);
}

static void test_jmp_indirect_rip_relative(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	/* jmp [rip - 0x110]: the pointer sits below the instruction */
	put64(h, CODE + 6 - 0x110, CODE + 0x400);
	static const uint8_t jmp_mem[] = {0xff, 0x25, 0xf0, 0xfe, 0xff, 0xff};
	run_at(h, CODE, jmp_mem, sizeof(jmp_mem));
	assert_int_equal(h->state.rip, CODE + 0x400);
	/* jmp r11 */
	h->state.gpr[GPR_R11] = CODE + 0x777;
	static const uint8_t jmp_reg[] = {0x41, 0xff, 0xe3};
	run_at(h, CODE, jmp_reg, sizeof(jmp_reg));
	assert_int_equal(h->state.rip, CODE + 0x777);
	harness_free(h);
}

/* ---- Jcc ---- */

static bool cond_ref(uint64_t f, unsigned cc)
{
	bool cf = f & FLAG_CF, zf = f & FLAG_ZF, sf = f & FLAG_SF, of = f & FLAG_OF, pf = f & FLAG_PF;
	bool r;
	switch (cc >> 1) {
	case 0: r = of; break;
	case 1: r = cf; break;
	case 2: r = zf; break;
	case 3: r = cf || zf; break;
	case 4: r = sf; break;
	case 5: r = pf; break;
	case 6: r = sf != of; break;
	default: r = zf || (sf != of); break;
	}
	return (cc & 1) ? !r : r;
}

static void test_jcc_all_conditions(void **state)
{
	(void)state;
	static const uint64_t bits[5] = {FLAG_CF, FLAG_ZF, FLAG_SF, FLAG_OF, FLAG_PF};
	struct harness *h = harness_new(64);
	for (unsigned combo = 0; combo < 32; combo++) {
		uint64_t f = RFLAGS_FIXED;
		for (unsigned b = 0; b < 5; b++)
			if (combo & (1u << b))
				f |= bits[b];
		for (unsigned cc = 0; cc < 16; cc++) {
			bool taken = cond_ref(f, cc);
			uint8_t short_form[] = {(uint8_t)(0x70 + cc), 0x10};
			h->state.rflags = f;
			run_at(h, CODE, short_form, sizeof(short_form));
			assert_int_equal(h->state.rip, taken ? CODE + 0x12 : CODE + 2);
			uint8_t near_form[] = {0x0f, (uint8_t)(0x80 + cc), 0x00, 0xff, 0xff, 0xff};
			h->state.rflags = f;
			run_at(h, CODE, near_form, sizeof(near_form));
			assert_int_equal(h->state.rip, taken ? CODE + 6 - 0x100 : CODE + 6);
			assert_int_equal(h->state.rflags, f); /* flags untouched */
		}
	}
	harness_free(h);

	/* real mode: jz rel16 with wrap */
	h = harness_new(16);
	h->state.rflags = RFLAGS_FIXED | FLAG_ZF;
	static const uint8_t jz16[] = {0x0f, 0x84, 0x00, 0x80};
	run_at(h, 0x9000, jz16, sizeof(jz16));
	assert_int_equal(h->state.rip, (0x9004 + 0x8000 - 0x10000) & 0xffff);
	harness_free(h);
}

/* ---- JrCXZ, LOOP ---- */

static void test_jrcxz_loop(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	static const uint8_t jrcxz[] = {0xe3, 0x10};
	h->state.gpr[GPR_RCX] = 0;
	run_at(h, CODE, jrcxz, sizeof(jrcxz));
	assert_int_equal(h->state.rip, CODE + 0x12);
	h->state.gpr[GPR_RCX] = 1ULL << 32;
	run_at(h, CODE, jrcxz, sizeof(jrcxz));
	assert_int_equal(h->state.rip, CODE + 2);
	static const uint8_t jecxz[] = {0x67, 0xe3, 0x10};
	h->state.gpr[GPR_RCX] = 1ULL << 32;
	run_at(h, CODE, jecxz, sizeof(jecxz));
	assert_int_equal(h->state.rip, CODE + 0x13);

	/* loop $: three iterations */
	static const uint8_t loop_self[] = {0xe2, 0xfe};
	h->state.gpr[GPR_RCX] = 3;
	run_at(h, CODE, loop_self, sizeof(loop_self));
	assert_int_equal(h->state.rip, CODE);
	assert_int_equal(h->state.gpr[GPR_RCX], 2);
	step1(h);
	assert_int_equal(h->state.rip, CODE);
	step1(h);
	assert_int_equal(h->state.rip, CODE + 2);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);

	/* address-size loop uses ECX and zero-extends RCX (as on hardware) */
	static const uint8_t loop32[] = {0x67, 0xe2, 0xfd};
	h->state.gpr[GPR_RCX] = 0xabcdef0000000001ULL;
	run_at(h, CODE, loop32, sizeof(loop32));
	assert_int_equal(h->state.rip, CODE + 3);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);

	/* loope / loopne */
	static const uint8_t loope[] = {0xe1, 0x10}, loopne[] = {0xe0, 0x10};
	h->state.gpr[GPR_RCX] = 5;
	h->state.rflags = RFLAGS_FIXED | FLAG_ZF;
	run_at(h, CODE, loope, sizeof(loope));
	assert_int_equal(h->state.rip, CODE + 0x12);
	assert_int_equal(h->state.gpr[GPR_RCX], 4);
	run_at(h, CODE, loopne, sizeof(loopne));
	assert_int_equal(h->state.rip, CODE + 2);
	assert_int_equal(h->state.gpr[GPR_RCX], 3);
	h->state.rflags = RFLAGS_FIXED;
	run_at(h, CODE, loope, sizeof(loope));
	assert_int_equal(h->state.rip, CODE + 2);
	run_at(h, CODE, loopne, sizeof(loopne));
	assert_int_equal(h->state.rip, CODE + 0x12);
	assert_int_equal(h->state.gpr[GPR_RCX], 1);
	assert_int_equal(h->state.rflags, RFLAGS_FIXED); /* LOOP leaves flags alone */
	harness_free(h);

	/* real mode: CX 0 → 0xffff, taken; the upper half of ECX is kept */
	h = harness_new(16);
	h->state.gpr[GPR_RCX] = 0x12340000;
	static const uint8_t loop16[] = {0xe2, 0x10};
	run_at(h, 0x1000, loop16, sizeof(loop16));
	assert_int_equal(h->state.gpr[GPR_RCX], 0x1234ffff);
	assert_int_equal(h->state.rip, 0x1012);
	harness_free(h);
}

/* ---- CALL, RET ---- */

static void test_call_ret_64(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	static const uint8_t call_rel[] = {0xe8, 0x0b, 0x00, 0x00, 0x00};
	run_at(h, CODE, call_rel, sizeof(call_rel));
	assert_int_equal(h->state.rip, CODE + 0x10);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 8);
	assert_int_equal(get(h, STACK - 8, 8), CODE + 5);
	static const uint8_t ret8[] = {0xc2, 0x08, 0x00};
	run_at(h, CODE + 0x10, ret8, sizeof(ret8));
	assert_int_equal(h->state.rip, CODE + 5);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK + 8);

	/* call rax, then ret */
	h->state.gpr[GPR_RSP] = STACK;
	h->state.gpr[GPR_RAX] = CODE + 0x20;
	static const uint8_t call_rax[] = {0xff, 0xd0};
	run_at(h, CODE, call_rax, sizeof(call_rax));
	assert_int_equal(h->state.rip, CODE + 0x20);
	assert_int_equal(get(h, STACK - 8, 8), CODE + 2);
	static const uint8_t ret[] = {0xc3};
	run_at(h, CODE + 0x20, ret, sizeof(ret));
	assert_int_equal(h->state.rip, CODE + 2);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);

	/* call [rip - 0x4d] */
	put64(h, CODE + 7 + 6 - 0x4d, CODE + 0x30);
	static const uint8_t call_mem[] = {0xff, 0x15, 0xb3, 0xff, 0xff, 0xff};
	run_at(h, CODE + 7, call_mem, sizeof(call_mem));
	assert_int_equal(h->state.rip, CODE + 0x30);
	assert_int_equal(get(h, STACK - 8, 8), CODE + 13);

	/* 66 E8 is still a 64-bit call with rel32 on Intel */
	h->state.gpr[GPR_RSP] = STACK;
	static const uint8_t call66[] = {0x66, 0xe8, 0x00, 0x01, 0x00, 0x00};
	run_at(h, CODE, call66, sizeof(call66));
	assert_int_equal(h->state.rip, CODE + 0x106);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 8);
	assert_int_equal(get(h, STACK - 8, 8), CODE + 6);
	harness_free(h);
}

static void test_call_ret_16_32(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	h->state.gpr[GPR_RSP] = 0x12348000; /* SP is the low half only */
	static const uint8_t call_rel[] = {0xe8, 0xfd, 0x0f};
	run_at(h, 0x1000, call_rel, sizeof(call_rel));
	assert_int_equal(h->state.rip, 0x2000);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x12347ffe);
	assert_int_equal(get(h, 0x7ffe, 2), 0x1003);
	static const uint8_t ret4[] = {0xc2, 0x04, 0x00};
	run_at(h, 0x2000, ret4, sizeof(ret4));
	assert_int_equal(h->state.rip, 0x1003);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x12348004);
	/* call across the top of the 64 KiB code segment wraps */
	h->state.gpr[GPR_RSP] = 0x8000;
	static const uint8_t call_wrap[] = {0xe8, 0x20, 0x00};
	run_at(h, 0xfff0, call_wrap, sizeof(call_wrap));
	assert_int_equal(h->state.rip, 0x13);
	assert_int_equal(get(h, 0x7ffe, 2), 0xfff3);
	harness_free(h);

	h = harness_new(32);
	static const uint8_t call32[] = {0xe8, 0x10, 0x00, 0x00, 0x00};
	run_at(h, CODE, call32, sizeof(call32));
	assert_int_equal(h->state.rip, CODE + 0x15);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 4);
	assert_int_equal(get(h, STACK - 4, 4), CODE + 5);
	/* a 16-bit return in 32-bit code pops two bytes and truncates EIP */
	put16(h, STACK - 6, 0x1234);
	h->state.gpr[GPR_RSP] = STACK - 6;
	static const uint8_t ret16[] = {0x66, 0xc3};
	run_at(h, CODE + 0x15, ret16, sizeof(ret16));
	assert_int_equal(h->state.rip, 0x1234);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 4);
	harness_free(h);
}

/* ---- PUSH, POP ---- */

static void test_push_pop_64(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	h->state.gpr[GPR_RAX] = 0x1111222233334444ULL;
	h->state.gpr[GPR_R9] = 0x5555;
	static const uint8_t code[] = {
	    0x50,                         /* push rax */
	    0x41, 0x51,                   /* push r9 */
	    0x5b,                         /* pop rbx */
	    0x41, 0x5a,                   /* pop r10 */
	    0x6a, 0xff,                   /* push -1 */
	    0x68, 0x00, 0x00, 0x00, 0x80, /* push imm32, sign-extended */
	    0x66, 0x6a, 0x80,             /* push word -128 */
	    0x66, 0x59,                   /* pop cx */
	};
	run_at(h, CODE, code, sizeof(code));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 8);
	assert_int_equal(get(h, STACK - 8, 8), 0x1111222233334444ULL);
	step1(h);
	assert_int_equal(get(h, STACK - 16, 8), 0x5555);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_RBX], 0x5555);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_R10], 0x1111222233334444ULL);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);
	step1(h);
	assert_int_equal(get(h, STACK - 8, 8), ~0ULL);
	step1(h);
	assert_int_equal(get(h, STACK - 16, 8), 0xffffffff80000000ULL);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 16);
	h->state.gpr[GPR_RCX] = 0xaaaaaaaaaaaaaaaaULL;
	harness_sync(h);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 18);
	assert_int_equal(get(h, STACK - 18, 2), 0xff80);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_RCX], 0xaaaaaaaaaaaaff80ULL);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 16);
	assert_int_equal(h->state.rip, CODE + sizeof(code));
	harness_free(h);
}

static void test_push_pop_rm_and_rsp(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	put64(h, DATA, 0x0123456789abcdefULL);
	static const uint8_t push_mem[] = {0xff, 0x34, 0x25, 0x00, 0x00, 0x30, 0x00}; /* push [DATA] */
	run_at(h, CODE, push_mem, sizeof(push_mem));
	assert_int_equal(get(h, STACK - 8, 8), 0x0123456789abcdefULL);
	/* pop [rsp+8]: the address uses the incremented RSP */
	put64(h, STACK, 0x11);
	put64(h, STACK + 8, 0x22);
	static const uint8_t pop_mem[] = {0x8f, 0x44, 0x24, 0x08};
	run_at(h, CODE, pop_mem, sizeof(pop_mem));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);
	assert_int_equal(get(h, STACK, 8), 0x11);
	assert_int_equal(get(h, STACK + 8, 8), 0x0123456789abcdefULL);
	/* push rsp pushes the old value; pop rsp loads the popped one */
	static const uint8_t push_rsp[] = {0x54};
	run_at(h, CODE, push_rsp, sizeof(push_rsp));
	assert_int_equal(get(h, STACK - 8, 8), STACK);
	put64(h, STACK - 8, DATA + 0x40);
	static const uint8_t pop_rsp[] = {0x5c};
	run_at(h, CODE, pop_rsp, sizeof(pop_rsp));
	assert_int_equal(h->state.gpr[GPR_RSP], DATA + 0x40);
	/* pop r/m to a register */
	h->state.gpr[GPR_RSP] = STACK - 8;
	static const uint8_t pop_rdx[] = {0x8f, 0xc2};
	run_at(h, CODE, pop_rdx, sizeof(pop_rdx));
	assert_int_equal(h->state.gpr[GPR_RDX], DATA + 0x40);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);
	harness_free(h);
}

static void test_push_pop_16_32(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	h->state.gpr[GPR_RAX] = 0x89abcdef;
	static const uint8_t code16[] = {0x50, 0x66, 0x50, 0x66, 0x5b, 0x5a};
	run_at(h, 0x1000, code16, sizeof(code16));
	assert_int_equal(h->state.gpr[GPR_RSP], 0x7ffe);
	assert_int_equal(get(h, 0x7ffe, 2), 0xcdef);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x7ffa);
	assert_int_equal(get(h, 0x7ffa, 4), 0x89abcdef);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_RBX], 0x89abcdef);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_RDX] & 0xffff, 0xcdef);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x8000);
	harness_free(h);

	h = harness_new(32);
	h->state.gpr[GPR_RAX] = 0x89abcdef;
	static const uint8_t code32[] = {0x50, 0x66, 0x50, 0x6a, 0x80};
	run_at(h, CODE, code32, sizeof(code32));
	assert_int_equal(get(h, STACK - 4, 4), 0x89abcdef);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 6);
	assert_int_equal(get(h, STACK - 6, 2), 0xcdef);
	step1(h);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 10);
	assert_int_equal(get(h, STACK - 10, 4), 0xffffff80);
	harness_free(h);
}

/* ---- PUSHF, POPF ---- */

#define POPF_WIDE_MASK (FLAGS_ARITH | FLAG_TF | FLAG_IF | FLAG_DF | FLAG_IOPL | FLAG_NT | \
			FLAG_AC | FLAG_ID)

static void test_pushf_popf_cpl0(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	h->state.rflags = RFLAGS_FIXED | FLAG_IF | FLAG_CF | FLAG_RF;
	static const uint8_t pushf[] = {0x9c};
	run_at(h, CODE, pushf, sizeof(pushf));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 8);
	assert_int_equal(get(h, STACK - 8, 8), RFLAGS_FIXED | FLAG_IF | FLAG_CF); /* RF cleared */

	/* popf of all ones (but TF): VM, RF, VIF, VIP and reserved bits do not change */
	put64(h, STACK - 8, ~FLAG_TF);
	h->state.rflags = RFLAGS_FIXED;
	static const uint8_t popf[] = {0x9d};
	run_at(h, CODE, popf, sizeof(popf));
	assert_int_equal(h->state.rflags, RFLAGS_FIXED | (POPF_WIDE_MASK & ~FLAG_TF));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);

	/* 16-bit popf: bits 15:0 only (AC and ID are kept) */
	put16(h, STACK - 2, 0);
	h->state.gpr[GPR_RSP] = STACK - 2;
	static const uint8_t popf16[] = {0x66, 0x9d};
	run_at(h, CODE, popf16, sizeof(popf16));
	assert_int_equal(h->state.rflags, RFLAGS_FIXED | FLAG_AC | FLAG_ID);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);
	/* pushf of lazily computed arithmetic flags: 16-bit form writes 2 bytes */
	put64(h, STACK - 8, 0xdddddddddddddddd);
	h->state.rflags = RFLAGS_FIXED | FLAG_ZF | FLAG_PF;
	static const uint8_t pushf16[] = {0x66, 0x9c};
	run_at(h, CODE, pushf16, sizeof(pushf16));
	assert_int_equal(get(h, STACK - 8, 8), 0x0046ddddddddddddULL);
	harness_free(h);
}

static void test_popf_cpl3(void **state)
{
	(void)state;
	/* 32-bit protected mode at CPL 3 with IOPL 0: IF and IOPL are kept */
	struct harness *h = harness_new(32);
	h->state.seg[SEG_SS].dpl = 3;
	h->state.seg[SEG_CS].dpl = 3;
	h->state.rflags = RFLAGS_FIXED | FLAG_IF;
	put64(h, STACK - 4, (FLAG_IOPL | FLAG_CF | FLAG_AC | FLAG_DF) & 0xffffffff);
	h->state.gpr[GPR_RSP] = STACK - 4;
	static const uint8_t popf[] = {0x9d};
	run_at(h, CODE, popf, sizeof(popf));
	assert_int_equal(h->state.rflags, RFLAGS_FIXED | FLAG_IF | FLAG_CF | FLAG_AC | FLAG_DF);
	/* with IOPL 3, IF follows the popped image but IOPL still cannot change */
	h->state.rflags = RFLAGS_FIXED | FLAG_IF | FLAG_IOPL;
	put64(h, STACK - 4, 0);
	h->state.gpr[GPR_RSP] = STACK - 4;
	run_at(h, CODE, popf, sizeof(popf));
	assert_int_equal(h->state.rflags, RFLAGS_FIXED | FLAG_IOPL);
	harness_free(h);
}

/* ---- PUSHA, POPA ---- */

static void test_pusha_popa(void **state)
{
	(void)state;
	struct harness *h = harness_new(32);
	for (unsigned r = 0; r < 8; r++)
		if (r != GPR_RSP)
			h->state.gpr[r] = 0x10101010u * (r + 1);
	static const uint8_t pusha[] = {0x60};
	run_at(h, CODE, pusha, sizeof(pusha));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 32);
	for (unsigned r = 0; r < 8; r++) {
		uint64_t want = r == GPR_RSP ? STACK : 0x10101010u * (r + 1);
		assert_int_equal(get(h, STACK - 4 - 4 * r, 4), want);
	}
	for (unsigned r = 0; r < 8; r++)
		if (r != GPR_RSP)
			h->state.gpr[r] = 0;
	put32(h, STACK - 20, 0xdeadbeef); /* the saved ESP slot is skipped */
	static const uint8_t popa[] = {0x61};
	run_at(h, CODE, popa, sizeof(popa));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);
	for (unsigned r = 0; r < 8; r++)
		if (r != GPR_RSP)
			assert_int_equal(h->state.gpr[r], 0x10101010u * (r + 1));
	harness_free(h);

	h = harness_new(16);
	h->state.gpr[GPR_RAX] = 0xaaaa1111;
	h->state.gpr[GPR_RDI] = 0xbbbb2222;
	run_at(h, 0x1000, pusha, sizeof(pusha));
	assert_int_equal(h->state.gpr[GPR_RSP], 0x8000 - 16);
	assert_int_equal(get(h, 0x7ffe, 2), 0x1111);
	assert_int_equal(get(h, 0x7ff6, 2), 0x8000);
	assert_int_equal(get(h, 0x7ff0, 2), 0x2222);
	h->state.gpr[GPR_RAX] = 0xaaaa0000;
	run_at(h, 0x1000, popa, sizeof(popa));
	assert_int_equal(h->state.gpr[GPR_RAX], 0xaaaa1111);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x8000);
	harness_free(h);
}

/* ---- ENTER, LEAVE ---- */

static void test_enter_leave(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	/* enter 16, 3: two frame pointers are copied from the old frame */
	h->state.gpr[GPR_RBP] = STACK - 0x100;
	put64(h, STACK - 0x108, 0xa);
	put64(h, STACK - 0x110, 0xb);
	static const uint8_t enter3[] = {0xc8, 0x10, 0x00, 0x03};
	run_at(h, CODE, enter3, sizeof(enter3));
	assert_int_equal(get(h, STACK - 8, 8), STACK - 0x100);
	assert_int_equal(get(h, STACK - 16, 8), 0xa);
	assert_int_equal(get(h, STACK - 24, 8), 0xb);
	assert_int_equal(get(h, STACK - 32, 8), STACK - 8);
	assert_int_equal(h->state.gpr[GPR_RBP], STACK - 8);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 32 - 16);
	static const uint8_t leave[] = {0xc9};
	run_at(h, CODE, leave, sizeof(leave));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);
	assert_int_equal(h->state.gpr[GPR_RBP], STACK - 0x100);

	/* enter 0x20, 0 and enter 0, 1 */
	static const uint8_t enter0[] = {0xc8, 0x20, 0x00, 0x00};
	run_at(h, CODE, enter0, sizeof(enter0));
	assert_int_equal(h->state.gpr[GPR_RBP], STACK - 8);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 8 - 0x20);
	h->state.gpr[GPR_RSP] = STACK;
	h->state.gpr[GPR_RBP] = 0x1234;
	static const uint8_t enter1[] = {0xc8, 0x00, 0x00, 0x01};
	run_at(h, CODE, enter1, sizeof(enter1));
	assert_int_equal(get(h, STACK - 8, 8), 0x1234);
	assert_int_equal(get(h, STACK - 16, 8), STACK - 8);
	assert_int_equal(h->state.gpr[GPR_RBP], STACK - 8);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 16);
	/* the level is taken modulo 32: 0x21 means 1 */
	h->state.gpr[GPR_RSP] = STACK;
	static const uint8_t enter33[] = {0xc8, 0x00, 0x00, 0x21};
	run_at(h, CODE, enter33, sizeof(enter33));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 16);
	harness_free(h);

	/* real mode: enter 4, 2 */
	h = harness_new(16);
	h->state.gpr[GPR_RBP] = 0x7f00;
	put16(h, 0x7efe, 0x1234);
	static const uint8_t enter2[] = {0xc8, 0x04, 0x00, 0x02};
	run_at(h, 0x1000, enter2, sizeof(enter2));
	assert_int_equal(get(h, 0x7ffe, 2), 0x7f00);
	assert_int_equal(get(h, 0x7ffc, 2), 0x1234);
	assert_int_equal(get(h, 0x7ffa, 2), 0x7ffe);
	assert_int_equal(h->state.gpr[GPR_RBP], 0x7ffe);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x7ff6);
	run_at(h, 0x1000, leave, sizeof(leave));
	assert_int_equal(h->state.gpr[GPR_RSP], 0x8000);
	assert_int_equal(h->state.gpr[GPR_RBP], 0x7f00);
	harness_free(h);
}

/* ---- segment registers ---- */

static void test_sreg_push_pop(void **state)
{
	(void)state;
	struct harness *h = harness_new(32);
	put64(h, STACK - 8, 0xaabbccddaabbccddULL);
	static const uint8_t code[] = {0x1e, 0x07, 0x0f, 0xa0, 0x0f, 0xa9, 0x16, 0x17};
	h->state.seg[SEG_ES].selector = 0;
	h->state.seg[SEG_ES].base = 0x5000;
	run_at(h, CODE, code, sizeof(code)); /* push ds: a 16-bit write into a 4-byte slot */
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 4);
	assert_int_equal(get(h, STACK - 4, 4), 0xaabb0018);
	step1(h); /* pop es */
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);
	assert_int_equal(h->state.seg[SEG_ES].selector, 0x18);
	assert_int_equal(h->state.seg[SEG_ES].base, 0);
	step1(h); /* push fs */
	assert_int_equal(get(h, STACK - 4, 2), 0x18);
	step1(h); /* pop gs */
	assert_int_equal(h->state.seg[SEG_GS].selector, 0x18);
	step1(h); /* push ss */
	step1(h); /* pop ss */
	assert_int_equal(h->state.seg[SEG_SS].selector, 0x18);
	assert_int_equal(h->state.gpr[GPR_RSP], STACK);
	harness_free(h);

	/* real mode: push cs; pop ds gives DS base = selector * 16 */
	h = harness_new(16);
	h->state.seg[SEG_DS].selector = 0x1234;
	h->state.seg[SEG_DS].base = 0x12340;
	static const uint8_t code16[] = {0x1e, 0x07, 0x0e, 0x1f};
	run_at(h, 0x1000, code16, sizeof(code16));
	assert_int_equal(get(h, 0x7ffe, 2), 0x1234);
	step1(h);
	assert_int_equal(h->state.seg[SEG_ES].selector, 0x1234);
	assert_int_equal(h->state.seg[SEG_ES].base, 0x12340);
	step1(h);
	step1(h);
	assert_int_equal(h->state.seg[SEG_DS].selector, 0);
	assert_int_equal(h->state.seg[SEG_DS].base, 0);
	harness_free(h);

	/* 64-bit mode: push fs writes the zero-extended selector; push es is #UD */
	h = harness_new(64);
	put64(h, STACK - 8, ~0ULL);
	static const uint8_t push_fs[] = {0x0f, 0xa0};
	run_at(h, CODE, push_fs, sizeof(push_fs));
	assert_int_equal(h->state.gpr[GPR_RSP], STACK - 8);
	assert_int_equal(get(h, STACK - 8, 8), 0x18);
	static const uint8_t push_es[] = {0x06};
	h->state.rip = CODE;
	harness_sync(h);
	put(h, CODE, push_es, 1);
	/* no IDT in the harness: #UD escalates to a triple fault */
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_SHUTDOWN);
	harness_free(h);
}

/* ---- software interrupts ---- */

static void test_int_real_mode(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	put16(h, 3 * 4, 0x2000);
	put16(h, 3 * 4 + 2, 0x0100);
	h->state.rflags = RFLAGS_FIXED | FLAG_IF | FLAG_CF;
	static const uint8_t int3[] = {0xcc};
	run_at(h, 0x1000, int3, sizeof(int3));
	assert_int_equal(h->state.seg[SEG_CS].selector, 0x100);
	assert_int_equal(h->state.seg[SEG_CS].base, 0x1000);
	assert_int_equal(h->state.rip, 0x2000);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x7ffa);
	assert_int_equal(get(h, 0x7ffa, 2), 0x1001);
	assert_int_equal(get(h, 0x7ffc, 2), 0);
	assert_int_equal(get(h, 0x7ffe, 2), RFLAGS_FIXED | FLAG_IF | FLAG_CF);
	assert_int_equal(h->state.rflags, RFLAGS_FIXED | FLAG_CF);
	harness_free(h);

	/* int 0x21 returns past its two bytes; INTO only with OF */
	h = harness_new(16);
	put16(h, 0x21 * 4, 0x3000);
	put16(h, 0x21 * 4 + 2, 0);
	put16(h, 4 * 4, 0x4000);
	put16(h, 4 * 4 + 2, 0);
	static const uint8_t int21[] = {0xcd, 0x21};
	run_at(h, 0x1000, int21, sizeof(int21));
	assert_int_equal(h->state.rip, 0x3000);
	assert_int_equal(get(h, 0x7ffa, 2), 0x1002);
	static const uint8_t into[] = {0xce};
	h->state.rflags = RFLAGS_FIXED;
	run_at(h, 0x1000, into, sizeof(into));
	assert_int_equal(h->state.rip, 0x1001);
	h->state.rflags = RFLAGS_FIXED | FLAG_OF;
	run_at(h, 0x1000, into, sizeof(into));
	assert_int_equal(h->state.rip, 0x4000);
	assert_int_equal(get(h, h->state.gpr[GPR_RSP], 2), 0x1001);
	harness_free(h);
}

/* A faulting CALL leaves no trace: the #GP frame sits where the return
 * address would have gone and points at the CALL. */
static void test_call_fault_atomic(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	put16(h, EXC_GP * 4, 0x3000);
	put16(h, EXC_GP * 4 + 2, 0);
	/* a32 call [0x10000]: beyond DS's 64 KiB limit */
	static const uint8_t call_far_off[] = {0x67, 0xff, 0x15, 0x00, 0x00, 0x01, 0x00};
	run_at(h, 0x1000, call_far_off, sizeof(call_far_off));
	assert_int_equal(h->state.rip, 0x3000);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x8000 - 6);
	assert_int_equal(get(h, 0x7ffa, 2), 0x1000);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jmp_64),
	    cmocka_unit_test(test_jmp_16_wrap),
	    cmocka_unit_test(test_jmp_indirect_rip_relative),
	    cmocka_unit_test(test_jcc_all_conditions),
	    cmocka_unit_test(test_jrcxz_loop),
	    cmocka_unit_test(test_call_ret_64),
	    cmocka_unit_test(test_call_ret_16_32),
	    cmocka_unit_test(test_push_pop_64),
	    cmocka_unit_test(test_push_pop_rm_and_rsp),
	    cmocka_unit_test(test_push_pop_16_32),
	    cmocka_unit_test(test_pushf_popf_cpl0),
	    cmocka_unit_test(test_popf_cpl3),
	    cmocka_unit_test(test_pusha_popa),
	    cmocka_unit_test(test_enter_leave),
	    cmocka_unit_test(test_sreg_push_pop),
	    cmocka_unit_test(test_int_real_mode),
	    cmocka_unit_test(test_call_fault_atomic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
