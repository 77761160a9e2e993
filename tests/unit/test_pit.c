/* 8254 PIT and port 0x61 (devices/pit8254.c) driven by a fake clock, with
 * the port sequences Linux uses: the periodic tick on counter 0
 * (i8253.c), pit_calibrate_tsc and quick_pit_calibrate on counter 2
 * (tsc.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices/pit8254.h"

struct fake_clock {
	uint64_t ns;
};

static uint64_t fake_now(void *opaque)
{
	return ((struct fake_clock *)opaque)->ns;
}

static struct fake_clock clk;
static struct pit pit;

static int setup(void **state)
{
	(void)state;
	clk.ns = 1000000; /* not zero, to catch code that assumes a zero epoch */
	pit_init(&pit, fake_now, &clk);
	return 0;
}

static void outb(uint16_t port, uint8_t v)
{
	if (port == 0x61)
		pit_sysctl_write(&pit, v);
	else
		pit_write(&pit, port - 0x40, v);
}

static uint8_t inb(uint16_t port)
{
	return port == 0x61 ? pit_sysctl_read(&pit) : pit_read(&pit, port - 0x40);
}

#define LATCH_100HZ ((1193182 + 50) / 100)

static void program_periodic_100hz(void)
{
	outb(0x43, 0x34); /* counter 0, LSB then MSB, mode 2, binary */
	outb(0x40, LATCH_100HZ & 0xff);
	outb(0x40, LATCH_100HZ >> 8);
}

static void test_periodic_100hz_over_one_second(void **state)
{
	(void)state;
	uint64_t start = clk.ns, edges = 0;
	program_periodic_100hz();
	/* First edge one period (11932 ticks = 10.000 ms) after the load. */
	uint64_t first = pit_next_event_ns(&pit) - start;
	assert_true(first >= 10000000 && first <= 10001000);
	assert_int_equal(pit_poll(&pit, start + first - 1), 0);

	for (clk.ns = start; clk.ns <= start + 1000000000ULL; clk.ns += 100000)
		edges += pit_poll(&pit, clk.ns);
	assert_true(edges >= 99 && edges <= 100);
	clk.ns = start + 1001000000ULL;
	edges += pit_poll(&pit, clk.ns);
	assert_int_equal(edges, 100);
}

static void test_periodic_coarse_poll_counts_every_edge(void **state)
{
	(void)state;
	uint64_t start = clk.ns;
	program_periodic_100hz();
	assert_int_equal(pit_poll(&pit, start + 1001000000ULL), 100);
	assert_int_equal(pit_poll(&pit, start + 1001000000ULL), 0);
	assert_true(pit_next_event_ns(&pit) > start + 1001000000ULL);
}

/* pit_calibrate_tsc(latch, ms): gate high, speaker off, counter 2 mode 0,
 * then spin until OUT2 (port 0x61 bit 5) rises. */
static void test_calibrate_tsc_pattern(void **state)
{
	(void)state;
	uint32_t latch = 1193182 / (1000 / 10); /* 10 ms */
	outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
	outb(0x43, 0xb0); /* counter 2, LSB then MSB, mode 0, binary */
	outb(0x42, latch & 0xff);
	outb(0x42, (uint8_t)(latch >> 8));
	uint64_t start = clk.ns;
	unsigned loops = 0;
	while ((inb(0x61) & 0x20) == 0 && loops < 1000000) {
		clk.ns += 1000; /* one "iteration" per microsecond */
		loops++;
	}
	uint64_t elapsed = clk.ns - start;
	assert_true(elapsed >= 9999000 && elapsed <= 10001000);
	assert_int_equal(inb(0x61) & 0x01, 0x01); /* gate bit reads back */
	assert_int_equal(inb(0x61) & 0x02, 0x00);
}

/* quick_pit_calibrate: mode 0 from 0xffff; reads LSB then MSB directly
 * and watches the MSB fall by one every 256 ticks. */
static void test_quick_calibrate_msb_pattern(void **state)
{
	(void)state;
	outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
	outb(0x43, 0xb0);
	outb(0x42, 0xff);
	outb(0x42, 0xff);
	uint64_t start = clk.ns;
	(void)inb(0x42);
	assert_int_equal(inb(0x42), 0xff);
	for (unsigned i = 1; i < 50; i++) {
		/* 256 * i ticks plus a bit: the MSB must read 0xff - i. */
		clk.ns = start + (256ULL * i * 1000000000ULL + 1193181) / 1193182 + 100;
		(void)inb(0x42);
		assert_int_equal(inb(0x42), 0xff - i);
	}
	assert_false(inb(0x61) & 0x20);
}

static void test_latch_and_readback(void **state)
{
	(void)state;
	outb(0x43, 0x30); /* counter 0, LSB/MSB, mode 0 */
	outb(0x40, 0x00);
	outb(0x40, 0x10); /* 4096 */
	clk.ns += 1000000; /* ~1193 ticks */
	outb(0x43, 0x00); /* counter latch */
	uint8_t lo = inb(0x40);
	clk.ns += 1000000;
	uint8_t hi = inb(0x40);
	unsigned v = lo | hi << 8;
	assert_true(v >= 4096 - 1194 && v <= 4096 - 1192);

	/* Read-back: latch status and count of counter 0. */
	outb(0x43, 0xc2);
	uint8_t status = inb(0x40);
	assert_int_equal(status & 0x3f, 0x30); /* LSB/MSB, mode 0, binary */
	assert_false(status & 0x40);           /* count loaded */
	assert_false(status & 0x80);           /* 2386 of 4096 ticks: OUT still low */
	lo = inb(0x40);                        /* then the latched count follows */
	hi = inb(0x40);
	v = lo | hi << 8;
	assert_true(v >= 4096 - 2387 && v <= 4096 - 2385);
	clk.ns += 2000000; /* past terminal count */
	outb(0x43, 0xe2);
	assert_true(inb(0x40) & 0x80);
}

static void test_status_null_count_and_out(void **state)
{
	(void)state;
	outb(0x43, 0x30); /* counter 0 mode 0: OUT low, count not loaded */
	outb(0x43, 0xe2); /* read-back status only */
	uint8_t status = inb(0x40);
	assert_int_equal(status, 0x40 | 0x30);
	outb(0x40, 10);
	outb(0x40, 0);
	clk.ns += 20000; /* 23 ticks */
	outb(0x43, 0xe2);
	assert_int_equal(inb(0x40), 0x80 | 0x30);
}

static void test_bcd_and_zero_count(void **state)
{
	(void)state;
	outb(0x43, 0x71); /* counter 1, LSB/MSB, mode 0, BCD */
	outb(0x41, 0x00);
	outb(0x41, 0x10); /* 1000 decimal */
	clk.ns += 1000; /* one tick */
	assert_int_equal(inb(0x41), 0x99);
	assert_int_equal(inb(0x41), 0x09);

	outb(0x43, 0x34); /* counter 0 mode 2 with count 0 = 65536 */
	outb(0x40, 0);
	outb(0x40, 0);
	uint64_t start = clk.ns;
	uint64_t period = pit_next_event_ns(&pit) - start;
	assert_true(period >= 54924000 && period <= 54926000);
	assert_int_equal(inb(0x40), 0x00);
	assert_int_equal(inb(0x40), 0x00);
}

static void test_lsb_only_and_msb_only(void **state)
{
	(void)state;
	outb(0x43, 0x10); /* counter 0, LSB only, mode 0 */
	outb(0x40, 200);
	assert_int_equal(inb(0x40), 200);
	assert_int_equal(inb(0x40), 200); /* no toggling */
	outb(0x43, 0x20); /* MSB only */
	outb(0x40, 2);
	assert_int_equal(inb(0x40), 2);
}

static void test_gate_and_square_wave(void **state)
{
	(void)state;
	outb(0x61, 0x00);
	outb(0x43, 0xb6); /* counter 2, LSB/MSB, mode 3 */
	outb(0x42, 100);
	outb(0x42, 0);
	assert_true(inb(0x61) & 0x20); /* gate low: OUT high */
	outb(0x61, 0x01);              /* rising gate restarts */
	uint64_t start = clk.ns;
	clk.ns = start + 60 * 838; /* ~60 ticks: second half, low */
	assert_false(inb(0x61) & 0x20);
	clk.ns = start + 110 * 838; /* next period, high */
	assert_true(inb(0x61) & 0x20);
	assert_false(pit_out(&pit, 7, clk.ns));
}

static void test_clock_going_backwards_and_junk(void **state)
{
	(void)state;
	program_periodic_100hz();
	clk.ns -= 500000; /* earlier than the load */
	assert_int_equal(pit_poll(&pit, clk.ns), 0);
	outb(0x40, 0); /* count reads and writes at odd times */
	(void)inb(0x43);
	outb(0x43, 0xfe); /* read-back with reserved bit 0 set */
	outb(0x43, 0x0e); /* RW 00: a latch command, mode bits ignored */
	outb(0x43, 0x3e); /* counter 0, mode 7 aliases mode 3 */
	outb(0x40, 1);
	outb(0x40, 0);
	assert_int_equal(pit.ch[0].mode, 3);
	/* A count of 1 would interrupt every 838 ns; edges are clamped to 200 us. */
	uint64_t load = clk.ns;
	assert_true(pit_next_event_ns(&pit) - load >= 200000);
	clk.ns += 1000000;
	assert_int_equal(pit_poll(&pit, clk.ns), 4);
	assert_true(pit_next_event_ns(&pit) > clk.ns);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_periodic_100hz_over_one_second, setup),
		cmocka_unit_test_setup(test_periodic_coarse_poll_counts_every_edge, setup),
		cmocka_unit_test_setup(test_calibrate_tsc_pattern, setup),
		cmocka_unit_test_setup(test_quick_calibrate_msb_pattern, setup),
		cmocka_unit_test_setup(test_latch_and_readback, setup),
		cmocka_unit_test_setup(test_status_null_count_and_out, setup),
		cmocka_unit_test_setup(test_bcd_and_zero_count, setup),
		cmocka_unit_test_setup(test_lsb_only_and_msb_only, setup),
		cmocka_unit_test_setup(test_gate_and_square_wave, setup),
		cmocka_unit_test_setup(test_clock_going_backwards_and_junk, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
