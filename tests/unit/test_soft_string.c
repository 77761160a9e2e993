/* Soft CPU: string instructions and the repeat prefixes (expected values
 * from the SDM vol. 2 operation sections; the zero-count register
 * write-back with a 32-bit address size was measured on the host CPU). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "engine/soft/soft.h"
#include "soft_harness.h"

#define CODE HARNESS_CODE_ADDR
#define DATA HARNESS_DATA_ADDR

static void put(struct harness *h, uint64_t gpa, const void *p, size_t n)
{
	assert_int_equal(guest_mem_write(&h->mem, gpa, p, n), 0);
}

static void get(struct harness *h, uint64_t gpa, void *p, size_t n)
{
	assert_int_equal(guest_mem_read(&h->mem, gpa, p, n), 0);
}

static uint64_t get64(struct harness *h, uint64_t gpa)
{
	uint64_t v = 0;
	get(h, gpa, &v, 8);
	return v;
}

/* Loads code at the current RIP and runs it until RIP leaves the
 * instruction (REP runs one iteration per step); returns the steps. */
static unsigned run_insn(struct harness *h, const uint8_t *code, size_t n)
{
	uint64_t start = h->state.rip;
	harness_sync(h);
	put(h, start, code, n);
	for (unsigned steps = 1; steps <= 1000; steps++) {
		assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
		if (h->state.rip != start) {
			assert_int_equal(h->state.rip, start + n);
			return steps;
		}
	}
	fail_msg("instruction did not complete");
	return 0;
}

static void set_regs(struct harness *h, uint64_t rsi, uint64_t rdi, uint64_t rcx, bool df)
{
	h->state.gpr[GPR_RSI] = rsi;
	h->state.gpr[GPR_RDI] = rdi;
	h->state.gpr[GPR_RCX] = rcx;
	h->state.rflags = RFLAGS_FIXED | (df ? FLAG_DF : 0);
}

static void test_rep_movsb(void **state)
{
	(void)state;
	static const char msg[] = "hello world";
	static const uint8_t rep_movsb[] = {0xf3, 0xa4};
	char out[16];
	struct harness *h = harness_new(64);

	/* DF = 0: one iteration per step, RIP held until the last */
	put(h, DATA, msg, 11);
	set_regs(h, DATA, DATA + 0x100, 11, false);
	harness_sync(h);
	put(h, CODE, rep_movsb, 2);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE);
	assert_int_equal(h->state.gpr[GPR_RCX], 10);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 1);
	assert_int_equal(run_insn(h, rep_movsb, 2), 10);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 11);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x10b);
	get(h, DATA + 0x100, out, 11);
	assert_memory_equal(out, msg, 11);

	/* DF = 1: from the last byte down */
	h->state.rip = CODE;
	set_regs(h, DATA + 10, DATA + 0x20a, 11, true);
	assert_int_equal(run_insn(h, rep_movsb, 2), 11);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA - 1);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x1ff);
	get(h, DATA + 0x200, out, 11);
	assert_memory_equal(out, msg, 11);

	/* rCX = 0: nothing happens */
	h->state.rip = CODE;
	set_regs(h, DATA, DATA + 0x300, 0, false);
	put(h, DATA + 0x300, "\0", 1);
	assert_int_equal(run_insn(h, rep_movsb, 2), 1);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x300);
	get(h, DATA + 0x300, out, 1);
	assert_int_equal(out[0], 0);
	harness_free(h);
}

static void test_rep_zero_count_addr32(void **state)
{
	(void)state;
	/* As measured on Intel hardware: with a 67 prefix and ECX = 0, RCX is
	 * zero-extended, and so are RSI/RDI for MOVS and RDI for STOS. */
	static const uint64_t up = 0xabcdef0000000000ULL;
	static const uint8_t movsb[] = {0xf3, 0x67, 0xa4}, stosb[] = {0xf3, 0x67, 0xaa},
			     lodsb[] = {0xf3, 0x67, 0xac};
	struct harness *h = harness_new(64);
	set_regs(h, up, up, up, false);
	h->state.rip = CODE;
	run_insn(h, movsb, 3);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_int_equal(h->state.gpr[GPR_RSI], 0);
	assert_int_equal(h->state.gpr[GPR_RDI], 0);
	set_regs(h, up, up, up, false);
	h->state.rip = CODE;
	run_insn(h, stosb, 3);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_int_equal(h->state.gpr[GPR_RSI], up);
	assert_int_equal(h->state.gpr[GPR_RDI], 0);
	set_regs(h, up, up, up, false);
	h->state.rip = CODE;
	run_insn(h, lodsb, 3);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_int_equal(h->state.gpr[GPR_RSI], up);
	assert_int_equal(h->state.gpr[GPR_RDI], up);

	/* one iteration at a 32-bit address size zero-extends the pointers */
	set_regs(h, up | DATA, up | (DATA + 0x10), up | 1, false);
	h->state.rip = CODE;
	run_insn(h, movsb, 3);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 1);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x11);
	harness_free(h);
}

static void test_rep_stosq(void **state)
{
	(void)state;
	static const uint8_t rep_stosq[] = {0xf3, 0x48, 0xab};
	struct harness *h = harness_new(64);
	h->state.gpr[GPR_RAX] = 0x0102030405060708ULL;
	set_regs(h, 0, DATA + 0x200, 4, false);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, rep_stosq, 3), 4);
	for (unsigned k = 0; k < 4; k++)
		assert_int_equal(get64(h, DATA + 0x200 + 8 * k), 0x0102030405060708ULL);
	assert_int_equal(get64(h, DATA + 0x220), 0);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x220);

	h->state.gpr[GPR_RAX] = 0x1111111111111111ULL;
	set_regs(h, 0, DATA + 0x318, 4, true);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, rep_stosq, 3), 4);
	for (unsigned k = 0; k < 4; k++)
		assert_int_equal(get64(h, DATA + 0x300 + 8 * k), 0x1111111111111111ULL);
	assert_int_equal(get64(h, DATA + 0x2f8), 0);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x2f8);

	/* rCX = 0 */
	set_regs(h, 0, DATA + 0x400, 0, false);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, rep_stosq, 3), 1);
	assert_int_equal(get64(h, DATA + 0x400), 0);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x400);
	harness_free(h);
}

#define ARITH_MASK (FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF)

static void test_repe_cmpsb(void **state)
{
	(void)state;
	static const uint8_t repe_cmpsb[] = {0xf3, 0xa6}, repne_cmpsb[] = {0xf2, 0xa6};
	struct harness *h = harness_new(64);
	put(h, DATA, "abcdef", 6);
	put(h, DATA + 0x100, "abXdeg", 6);

	set_regs(h, DATA, DATA + 0x100, 6, false);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repe_cmpsb, 2), 3);
	assert_int_equal(h->state.gpr[GPR_RCX], 3);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 3);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x103);
	/* 'c' - 'X' = 0x0b: no borrow, AF (3 < 8), odd parity */
	assert_int_equal(h->state.rflags & ARITH_MASK, FLAG_AF);

	/* REPNE from the start: stops at the first equal byte ('a') */
	set_regs(h, DATA, DATA + 0x100, 6, false);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repne_cmpsb, 2), 1);
	assert_int_equal(h->state.gpr[GPR_RCX], 5);
	assert_int_equal(h->state.rflags & ARITH_MASK, FLAG_ZF | FLAG_PF);
	/* ... and from the mismatch on, it runs through the differing bytes */
	put(h, DATA + 0x200, "abcxyf", 6);
	set_regs(h, DATA + 3, DATA + 0x203, 5, false);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repne_cmpsb, 2), 3);
	assert_int_equal(h->state.gpr[GPR_RCX], 2);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 6);
	assert_true(h->state.rflags & FLAG_ZF);

	/* DF = 1 from the end: 'f' vs 'g' differs at once; borrow, SF, AF */
	set_regs(h, DATA + 5, DATA + 0x105, 6, true);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repe_cmpsb, 2), 1);
	assert_int_equal(h->state.gpr[GPR_RCX], 5);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 4);
	assert_int_equal(h->state.rflags & ARITH_MASK, FLAG_CF | FLAG_SF | FLAG_AF | FLAG_PF);

	/* all equal: runs out of count with ZF = 1 */
	set_regs(h, DATA, DATA, 6, false);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repe_cmpsb, 2), 6);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_true(h->state.rflags & FLAG_ZF);

	/* rCX = 0 leaves the flags alone */
	set_regs(h, DATA, DATA + 0x100, 0, false);
	h->state.rflags |= FLAG_CF | FLAG_OF;
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repe_cmpsb, 2), 1);
	assert_int_equal(h->state.rflags & ARITH_MASK, FLAG_CF | FLAG_OF);
	harness_free(h);
}

static void test_scasb(void **state)
{
	(void)state;
	static const uint8_t repne_scasb[] = {0xf2, 0xae}, repe_scasb[] = {0xf3, 0xae};
	struct harness *h = harness_new(64);
	put(h, DATA, "abc\0xyz", 8);

	/* strlen-style: find the terminator */
	set_regs(h, 0, DATA, 100, false);
	h->state.gpr[GPR_RAX] = 0xff00;
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repne_scasb, 2), 4);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 4);
	assert_int_equal(h->state.gpr[GPR_RCX], 96);
	assert_true(h->state.rflags & FLAG_ZF);

	/* no match within the count */
	set_regs(h, 0, DATA, 3, false);
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repne_scasb, 2), 3);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_false(h->state.rflags & FLAG_ZF);

	/* REPE, DF = 1: skip trailing 'z's */
	put(h, DATA + 0x10, "azzz", 4);
	set_regs(h, 0, DATA + 0x13, 4, true);
	h->state.gpr[GPR_RAX] = 'z';
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, repe_scasb, 2), 4);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0xf);
	assert_int_equal(h->state.gpr[GPR_RCX], 0);
	assert_false(h->state.rflags & FLAG_ZF); /* 'z' - 'a' */
	harness_free(h);
}

static void test_lods_and_sizes_32(void **state)
{
	(void)state;
	struct harness *h = harness_new(32);
	static const uint8_t v[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
	put(h, DATA, v, 8);
	static const uint8_t lods[] = {0xad, 0x66, 0xad, 0xac};
	h->state.gpr[GPR_RSI] = DATA;
	h->state.gpr[GPR_RAX] = 0xffffffff;
	h->state.rip = CODE;
	harness_sync(h);
	put(h, CODE, lods, sizeof(lods));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x44332211);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 4);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x44336655);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x44336677);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 7);

	/* fs: movsb reads FS:ESI and writes ES:EDI (the override never applies to EDI) */
	h->state.seg[SEG_FS].base = 0x10000;
	h->state.seg[SEG_ES].base = 0x20000;
	put(h, 0x10000 + 0x40, "Q", 1);
	set_regs(h, 0x40, 0x80, 0, false);
	h->state.rip = CODE;
	static const uint8_t fs_movsb[] = {0x64, 0xa4};
	run_insn(h, fs_movsb, 2);
	uint8_t b = 0;
	get(h, 0x20000 + 0x80, &b, 1);
	assert_int_equal(b, 'Q');
	/* a DS-relative source is unaffected by the ES base */
	put(h, 0x41, "R", 1);
	static const uint8_t movsb[] = {0xa4};
	run_insn(h, movsb, 1);
	get(h, 0x20000 + 0x81, &b, 1);
	assert_int_equal(b, 'R');
	harness_free(h);
}

static void test_wrap_16(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	put(h, 0xffff, "S", 1);
	static const uint8_t movsb[] = {0xa4};
	set_regs(h, 0x1234ffff, 0x10, 0, false);
	h->state.rip = 0x1000;
	run_insn(h, movsb, 1);
	assert_int_equal(h->state.gpr[GPR_RSI], 0x12340000); /* SI wraps, ESI[31:16] kept */
	assert_int_equal(h->state.gpr[GPR_RDI], 0x11);
	uint8_t b = 0;
	get(h, 0x10, &b, 1);
	assert_int_equal(b, 'S');

	/* rep stosw with DF = 1 and DI = 0: wraps to 0xfffe */
	static const uint8_t rep_stosw[] = {0xf3, 0xab};
	h->state.gpr[GPR_RAX] = 0xbeef;
	set_regs(h, 0, 0x0002, 2, true);
	h->state.rip = 0x1000;
	assert_int_equal(run_insn(h, rep_stosw, 2), 2);
	assert_int_equal(h->state.gpr[GPR_RDI], 0xfffe);
	uint16_t w = 0;
	get(h, 0, &w, 2);
	assert_int_equal(w, 0xbeef);
	get(h, 2, &w, 2);
	assert_int_equal(w, 0xbeef);
	harness_free(h);
}

static void test_outs_ins(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	put(h, DATA, "ABC", 3);
	static const uint8_t rep_outsb[] = {0xf3, 0x6e};
	set_regs(h, DATA, 0, 3, false);
	h->state.gpr[GPR_RDX] = 0x3f8;
	h->state.rip = CODE;
	unsigned before = h->nexits;
	assert_int_equal(run_insn(h, rep_outsb, 2), 3);
	assert_int_equal(h->nexits - before, 3);
	assert_int_equal(h->last_exit.kind, VCPU_EXIT_IO);
	assert_int_equal(h->last_exit.io.port, 0x3f8);
	assert_int_equal(h->last_exit.io.size, 1);
	assert_true(h->last_exit.io.is_write);
	assert_int_equal(h->last_data[0], 'C');
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 3);

	/* outsd (REX.W does not widen it) */
	put(h, DATA, "\x01\x02\x03\x04", 4);
	static const uint8_t outsd[] = {0x48, 0x6f};
	set_regs(h, DATA, 0, 0, false);
	h->state.rip = CODE;
	run_insn(h, outsd, 2);
	assert_int_equal(h->last_exit.io.size, 4);
	assert_memory_equal(h->last_data, "\x01\x02\x03\x04", 4);
	assert_int_equal(h->state.gpr[GPR_RSI], DATA + 4);

	/* rep insw */
	h->pio_read_value = 0xab;
	static const uint8_t rep_insw[] = {0x66, 0xf3, 0x6d};
	set_regs(h, 0, DATA + 0x100, 2, false);
	h->state.gpr[GPR_RDX] = 0x60;
	h->state.rip = CODE;
	assert_int_equal(run_insn(h, rep_insw, 3), 2);
	assert_int_equal(h->last_exit.kind, VCPU_EXIT_IO);
	assert_int_equal(h->last_exit.io.port, 0x60);
	assert_int_equal(h->last_exit.io.size, 2);
	assert_false(h->last_exit.io.is_write);
	assert_int_equal(get64(h, DATA + 0x100), 0xababababULL);
	assert_int_equal(h->state.gpr[GPR_RDI], DATA + 0x104);
	harness_free(h);
}

/* A fault in iteration k leaves the registers as after iteration k-1 and
 * reports the fault at the REP instruction itself, so it restarts. */
static void test_rep_fault_restarts(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	uint16_t ivt[2] = {0x3000, 0}; /* #GP handler at 0:3000 */
	put(h, EXC_GP * 4, ivt, sizeof(ivt));
	put(h, 0xfffe, "xy", 2);
	/* a32 rep movsb: the third source byte lies beyond DS's 64 KiB limit */
	static const uint8_t rep_movsb_a32[] = {0x67, 0xf3, 0xa4};
	set_regs(h, 0xfffe, 0x100, 3, false);
	h->state.rip = 0x1000;
	harness_sync(h);
	put(h, 0x1000, rep_movsb_a32, sizeof(rep_movsb_a32));
	assert_int_equal(harness_step(h, 3), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, 0x3000);
	assert_int_equal(h->state.gpr[GPR_RCX], 1);
	assert_int_equal(h->state.gpr[GPR_RSI], 0x10000);
	assert_int_equal(h->state.gpr[GPR_RDI], 0x102);
	uint16_t ret_ip = 0;
	get(h, h->state.gpr[GPR_RSP], &ret_ip, 2);
	assert_int_equal(ret_ip, 0x1000);
	char out[2];
	get(h, 0x100, out, 2);
	assert_memory_equal(out, "xy", 2);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rep_movsb),
	    cmocka_unit_test(test_rep_zero_count_addr32),
	    cmocka_unit_test(test_rep_stosq),
	    cmocka_unit_test(test_repe_cmpsb),
	    cmocka_unit_test(test_scasb),
	    cmocka_unit_test(test_lods_and_sizes_32),
	    cmocka_unit_test(test_wrap_16),
	    cmocka_unit_test(test_outs_ins),
	    cmocka_unit_test(test_rep_fault_restarts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
