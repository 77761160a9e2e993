/* The port-I/O bus and the legacy devices, driven through bus accesses
 * exactly as a guest would drive them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arch/x86/layout.h"
#include "devices/debug_exit.h"
#include "devices/fw_cfg.h"
#include "devices/i8042.h"
#include "devices/rtc.h"
#include "devices/uart8250.h"
#include "vm/bus.h"

/* Recorders for the callbacks devices make. */
struct recorder {
	int irq_level[32];
	int irq_changes;
	int power_event, power_code, power_calls;
	uint8_t out[256];
	size_t out_len;
};

static int rec_set_level(void *opaque, uint32_t gsi, int level)
{
	struct recorder *r = opaque;
	if (gsi < 32)
		r->irq_level[gsi] = level;
	r->irq_changes++;
	return 0;
}

static void rec_power(void *opaque, enum power_event ev, int code)
{
	struct recorder *r = opaque;
	r->power_event = ev;
	r->power_code = code;
	r->power_calls++;
}

static void rec_write(void *opaque, const uint8_t *data, size_t len)
{
	struct recorder *r = opaque;
	for (size_t i = 0; i < len && r->out_len < sizeof(r->out); i++)
		r->out[r->out_len++] = data[i];
}

static uint8_t inb(struct bus *b, uint16_t port)
{
	uint8_t v;
	bus_read(b, port, &v, 1);
	return v;
}

static void outb(struct bus *b, uint16_t port, uint8_t v) { bus_write(b, port, &v, 1); }

static void outl(struct bus *b, uint16_t port, uint32_t v)
{
	uint8_t d[4];
	bus_data_put(d, 4, v);
	bus_write(b, port, d, 4);
}

static const struct bus_ops dummy_ops = {0};

static void test_bus_register_and_lookup(void **state)
{
	(void)state;
	struct bus b;
	bus_init(&b, "pio");
	assert_int_equal(bus_register(&b, 0x100, 8, "a", &dummy_ops, NULL), 0);
	assert_int_equal(bus_register(&b, 0x50, 0x10, "b", &dummy_ops, NULL), 0);
	assert_int_equal(bus_register(&b, 0x104, 1, "c", &dummy_ops, NULL), -EEXIST);
	assert_int_equal(bus_register(&b, 0xfc, 8, "d", &dummy_ops, NULL), -EEXIST);
	assert_int_equal(bus_register(&b, 0x108, 0, "e", &dummy_ops, NULL), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, "f", &dummy_ops, NULL), -EINVAL);
	assert_int_equal(bus_register(&b, 0x108, 1, "g", &dummy_ops, NULL), 0);
	assert_string_equal(bus_find(&b, 0x107)->name, "a");
	assert_string_equal(bus_find(&b, 0x108)->name, "g");
	assert_string_equal(bus_find(&b, 0x50)->name, "b");
	assert_null(bus_find(&b, 0x60));
	assert_null(bus_find(&b, 0x4f));
	/* An access straddling a range end is unclaimed and reads all-ones. */
	uint8_t d[4] = {0};
	assert_int_equal(bus_read(&b, 0x106, d, 4), -1);
	assert_int_equal(d[0], 0xff);
	assert_int_equal(bus_read(&b, 0x200, d, 4), -1);
	assert_memory_equal(d, "\xff\xff\xff\xff", 4);
	assert_int_equal(bus_write(&b, 0x200, d, 4), -1);
	assert_true(bus_read(&b, 0x100, d, 4) >= 0);
}

static void test_bus_full(void **state)
{
	(void)state;
	struct bus b;
	bus_init(&b, "mmio");
	for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
		assert_int_equal(bus_register(&b, i * 16, 16, "x", &dummy_ops, NULL), 0);
	assert_int_equal(bus_register(&b, 0x10000, 16, "x", &dummy_ops, NULL), -ENOSPC);
}

struct uart_fixture {
	struct recorder rec;
	struct irq_ctl irq;
	struct uart8250 uart;
	struct bus pio;
};

static int uart_setup(void **state)
{
	struct uart_fixture *f = calloc(1, sizeof(*f));
	f->irq = (struct irq_ctl){.set_level = rec_set_level, .opaque = &f->rec};
	uart8250_init(&f->uart, &f->irq, IRQ_COM1,
		      (struct char_sink){.write = rec_write, .opaque = &f->rec});
	bus_init(&f->pio, "pio");
	assert_int_equal(uart8250_attach(&f->uart, &f->pio, PORT_COM1), 0);
	*state = f;
	return 0;
}

static int uart_teardown(void **state)
{
	struct uart_fixture *f = *state;
	uart8250_destroy(&f->uart);
	free(f);
	return 0;
}

static void test_uart_output_and_lsr(void **state)
{
	struct uart_fixture *f = *state;
	outb(&f->pio, 0x3f8, 'h');
	outb(&f->pio, 0x3f8, 'i');
	assert_int_equal(f->rec.out_len, 2);
	assert_memory_equal(f->rec.out, "hi", 2);
	uint8_t lsr = inb(&f->pio, 0x3fd);
	assert_true(lsr & 0x20); /* THRE */
	assert_true(lsr & 0x40); /* TEMT */
	assert_false(lsr & 0x01); /* no data */
	assert_int_equal(inb(&f->pio, 0x3fa) & 0x0f, 0x01); /* IIR: no interrupt */
}

static void test_uart_rx_interrupt(void **state)
{
	struct uart_fixture *f = *state;
	outb(&f->pio, 0x3f9, 0x01); /* IER: received data */
	assert_int_equal(f->rec.irq_level[IRQ_COM1], 0);
	assert_int_equal(uart8250_receive(&f->uart, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(f->rec.irq_level[IRQ_COM1], 1);
	assert_int_equal(inb(&f->pio, 0x3fa) & 0x0f, 0x04); /* IIR: RX data */
	assert_true(inb(&f->pio, 0x3fd) & 0x01);
	assert_int_equal(inb(&f->pio, 0x3f8), 'a');
	assert_int_equal(inb(&f->pio, 0x3f8), 'b');
	assert_false(inb(&f->pio, 0x3fd) & 0x01);
	assert_int_equal(f->rec.irq_level[IRQ_COM1], 0);
}

static void test_uart_thre_interrupt(void **state)
{
	struct uart_fixture *f = *state;
	outb(&f->pio, 0x3f9, 0x02); /* IER: THR empty */
	assert_int_equal(f->rec.irq_level[IRQ_COM1], 1);
	assert_int_equal(inb(&f->pio, 0x3fa) & 0x0f, 0x02);
	/* Reading IIR acknowledged THRE. */
	assert_int_equal(inb(&f->pio, 0x3fa) & 0x0f, 0x01);
	assert_int_equal(f->rec.irq_level[IRQ_COM1], 0);
	outb(&f->pio, 0x3f8, 'x');
	assert_int_equal(f->rec.irq_level[IRQ_COM1], 1);
}

static void test_uart_loopback_and_dlab(void **state)
{
	struct uart_fixture *f = *state;
	outb(&f->pio, 0x3fc, 0x1a); /* loopback, RTS, OUT2 */
	assert_int_equal(inb(&f->pio, 0x3fe) & 0xf0, 0x90); /* CTS + DCD, as Linux probes */
	outb(&f->pio, 0x3f8, 'z');
	assert_int_equal(f->rec.out_len, 0); /* looped back, not sent */
	assert_int_equal(inb(&f->pio, 0x3f8), 'z');
	outb(&f->pio, 0x3fc, 0x08);
	outb(&f->pio, 0x3fb, 0x83); /* DLAB */
	outb(&f->pio, 0x3f8, 0x01);
	outb(&f->pio, 0x3f9, 0x00);
	assert_int_equal(inb(&f->pio, 0x3f8), 0x01);
	outb(&f->pio, 0x3fb, 0x03);
	outb(&f->pio, 0x3ff, 0x5a);
	assert_int_equal(inb(&f->pio, 0x3ff), 0x5a); /* scratch */
}

static void test_uart_rx_overflow(void **state)
{
	struct uart_fixture *f = *state;
	uint8_t big[UART_RX_BUF + 100];
	memset(big, 'q', sizeof(big));
	assert_int_equal(uart8250_receive(&f->uart, big, sizeof(big)), UART_RX_BUF);
	assert_int_equal(uart8250_rx_space(&f->uart), 0);
	outb(&f->pio, 0x3fa, 0x03); /* FIFO enable + clear RX */
	assert_int_equal(uart8250_rx_space(&f->uart), UART_RX_BUF);
}

static void test_fw_cfg(void **state)
{
	(void)state;
	struct fw_cfg f;
	struct bus pio;
	bus_init(&pio, "pio");
	fw_cfg_init(&f, 512ULL << 20, 3);
	assert_int_equal(fw_cfg_attach(&f, &pio), 0);
	uint8_t sel[2];
	bus_data_put(sel, 2, FW_CFG_SIGNATURE);
	bus_write(&pio, PORT_FW_CFG, sel, 2);
	char sig[5] = {0};
	for (int i = 0; i < 4; i++)
		sig[i] = (char)inb(&pio, PORT_FW_CFG + 1);
	assert_string_equal(sig, "QEMU");
	assert_int_equal(inb(&pio, PORT_FW_CFG + 1), 0); /* past the end */
	bus_data_put(sel, 2, FW_CFG_NB_CPUS);
	bus_write(&pio, PORT_FW_CFG, sel, 2);
	assert_int_equal(inb(&pio, PORT_FW_CFG + 1), 3);
	assert_int_equal(inb(&pio, PORT_FW_CFG + 1), 0);
	bus_data_put(sel, 2, FW_CFG_RAM_SIZE);
	bus_write(&pio, PORT_FW_CFG, sel, 2);
	uint8_t ram[8];
	for (int i = 0; i < 8; i++)
		ram[i] = inb(&pio, PORT_FW_CFG + 1);
	assert_int_equal(bus_data_get(ram, 8), 512ULL << 20);
	bus_data_put(sel, 2, 0x7777); /* unknown key */
	bus_write(&pio, PORT_FW_CFG, sel, 2);
	assert_int_equal(inb(&pio, PORT_FW_CFG + 1), 0);
	fw_cfg_destroy(&f);
}

#define NS 1000000000ULL
#define FIXED_S 1795305600ULL /* 2026-11-22 00:00:00 UTC, a Sunday */
static uint64_t fake_now_ns = FIXED_S * NS;
static uint64_t fake_clock(void) { return fake_now_ns; }

static uint8_t cmos_read(struct bus *pio, uint8_t reg)
{
	outb(pio, 0x70, reg);
	return inb(pio, 0x71);
}

static void cmos_write(struct bus *pio, uint8_t reg, uint8_t v)
{
	outb(pio, 0x70, reg);
	outb(pio, 0x71, v);
}

static void test_rtc(void **state)
{
	(void)state;
	struct rtc rtc;
	struct bus pio;
	bus_init(&pio, "pio");
	rtc_init(&rtc, NULL);
	fake_now_ns = FIXED_S * NS;
	rtc.now_ns = fake_clock;
	assert_int_equal(rtc_attach(&rtc, &pio), 0);
	outb(&pio, 0x70, 0x09);
	assert_int_equal(inb(&pio, 0x71), 0x26); /* BCD year */
	outb(&pio, 0x70, 0x32);
	assert_int_equal(inb(&pio, 0x71), 0x20);
	outb(&pio, 0x70, 0x88); /* month, with the NMI-disable bit set */
	assert_int_equal(inb(&pio, 0x71), 0x11);
	outb(&pio, 0x70, 0x07);
	assert_int_equal(inb(&pio, 0x71), 0x22);
	outb(&pio, 0x70, 0x0d);
	assert_int_equal(inb(&pio, 0x71), 0x80);
	outb(&pio, 0x70, 0x0a);
	assert_false(inb(&pio, 0x71) & 0x80); /* never mid-update */
	outb(&pio, 0x70, 0x40);
	outb(&pio, 0x71, 0xab); /* plain CMOS RAM */
	assert_int_equal(inb(&pio, 0x71), 0xab);
	outb(&pio, 0x70, 0x09);
	outb(&pio, 0x71, 0x99); /* setting the clock is ignored */
	assert_int_equal(inb(&pio, 0x71), 0x26);
	cmos_write(&pio, 0x0b, 0x06); /* binary */
	assert_int_equal(cmos_read(&pio, 0x09), 26);
	rtc_destroy(&rtc);
}

/* Update, alarm and periodic interrupts: flags in C, IRQ 8 held until C is
 * read; the test drives time itself (no timer thread). */
static void test_rtc_interrupts(void **state)
{
	(void)state;
	struct recorder rec = {0};
	struct irq_ctl irq = {.set_level = rec_set_level, .opaque = &rec};
	struct rtc rtc;
	struct bus pio;
	bus_init(&pio, "pio");
	rtc_init(&rtc, &irq);
	rtc.threadless = true;
	fake_now_ns = FIXED_S * NS + NS / 2;
	rtc.now_ns = fake_clock;
	assert_int_equal(rtc_attach(&rtc, &pio), 0);
	assert_int_equal(cmos_read(&pio, 0x0c), 0);

	/* Flags are set with interrupts disabled too, but IRQ 8 stays low. */
	fake_now_ns += 2 * NS;
	assert_int_equal(cmos_read(&pio, 0x0c), 0x50); /* UF, PF (1024 Hz) */
	assert_int_equal(rec.irq_changes, 0);

	/* Update-ended interrupt: next deadline is the next second. */
	cmos_write(&pio, 0x0b, 0x12); /* UIE, 24 h */
	assert_int_equal(rtc_advance(&rtc, fake_now_ns), (FIXED_S + 3) * NS);
	fake_now_ns = (FIXED_S + 3) * NS;
	rtc_advance(&rtc, fake_now_ns);
	assert_int_equal(rec.irq_level[8], 1);
	assert_int_equal(cmos_read(&pio, 0x0c) & 0xb0, 0x90); /* IRQF, UF */
	assert_int_equal(rec.irq_level[8], 0);
	assert_int_equal(cmos_read(&pio, 0x0c), 0);

	/* Alarm at 00:00:05 (hours and minutes "any"): AF only in that second. */
	cmos_write(&pio, 0x0b, 0x22); /* AIE */
	cmos_write(&pio, 0x01, 0x05);
	cmos_write(&pio, 0x03, 0xff);
	cmos_write(&pio, 0x05, 0xc0);
	fake_now_ns = (FIXED_S + 4) * NS;
	rtc_advance(&rtc, fake_now_ns);
	assert_int_equal(rec.irq_level[8], 0);
	assert_int_equal(cmos_read(&pio, 0x0c) & 0x30, 0x10); /* UF, no AF yet */
	fake_now_ns = (FIXED_S + 5) * NS + 1;
	rtc_advance(&rtc, fake_now_ns);
	assert_int_equal(rec.irq_level[8], 1);
	assert_int_equal(cmos_read(&pio, 0x0c) & 0xa0, 0xa0); /* IRQF, AF */
	assert_int_equal(rec.irq_level[8], 0);

	/* Periodic interrupt, RS = 15 (2 Hz): every 500 ms. */
	cmos_write(&pio, 0x0a, 0x2f);
	cmos_write(&pio, 0x0b, 0x42); /* PIE */
	uint64_t next = rtc_advance(&rtc, fake_now_ns);
	assert_int_equal(next, (FIXED_S + 5) * NS + NS / 2);
	rtc_advance(&rtc, next);
	assert_int_equal(rec.irq_level[8], 1);
	assert_int_equal(cmos_read(&pio, 0x0c) & 0xc0, 0xc0);
	/* The fastest rates are capped (RS = 3 is 8192 Hz). */
	cmos_write(&pio, 0x0a, 0x23);
	next = rtc_advance(&rtc, fake_now_ns);
	assert_true(next - fake_now_ns <= NS / RTC_MAX_PERIODIC_HZ && next > fake_now_ns);
	/* A stopped divider (DV = 110) or SET stops the update flags. */
	cmos_write(&pio, 0x0a, 0x66);
	cmos_write(&pio, 0x0b, 0x92); /* SET, UIE: SET clears UIE */
	assert_int_equal(cmos_read(&pio, 0x0b), 0x82);
	assert_int_equal(rtc_advance(&rtc, fake_now_ns), UINT64_MAX);
	fake_now_ns += 3 * NS;
	assert_int_equal(cmos_read(&pio, 0x0c), 0);
	rtc_destroy(&rtc);
}


/* With the real clock, the timer thread raises the update interrupt
 * within about a second of its being enabled, and stops on rtc_stop(). */
static void test_rtc_timer_thread(void **state)
{
	(void)state;
	struct recorder rec = {0};
	struct irq_ctl irq = {.set_level = rec_set_level, .opaque = &rec};
	struct rtc rtc;
	struct bus pio;
	bus_init(&pio, "pio");
	rtc_init(&rtc, &irq);
	assert_int_equal(rtc_attach(&rtc, &pio), 0);
	cmos_read(&pio, 0x0c);
	cmos_write(&pio, 0x0b, 0x12); /* UIE */
	for (int i = 0; i < 300; i++) {
		pthread_mutex_lock(&rtc.lock);
		bool high = rtc.irq_high;
		pthread_mutex_unlock(&rtc.lock);
		if (high)
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(cmos_read(&pio, 0x0c) & 0x90, 0x90);
	rtc_stop(&rtc);
	rtc_destroy(&rtc);
}

static void test_i8042_reset(void **state)
{
	(void)state;
	struct recorder rec = {0};
	struct power_ctl power = {.request = rec_power, .opaque = &rec};
	struct i8042 k;
	struct bus pio;
	bus_init(&pio, "pio");
	i8042_init(&k, &power);
	assert_int_equal(i8042_attach(&k, &pio), 0);
	assert_int_equal(inb(&pio, 0x64), 0x14); /* system flag, keyboard not inhibited */
	outb(&pio, 0x64, 0xaa);
	assert_true(inb(&pio, 0x64) & 0x01);
	assert_int_equal(inb(&pio, 0x60), 0x55);
	outb(&pio, 0x64, 0x60);
	outb(&pio, 0x60, 0x47);
	outb(&pio, 0x64, 0x20);
	assert_int_equal(inb(&pio, 0x60), 0x47);
	assert_int_equal(rec.power_calls, 0);
	outb(&pio, 0x64, 0xfe);
	assert_int_equal(rec.power_calls, 1);
	assert_int_equal(rec.power_event, POWER_RESET);
	outb(&pio, 0x64, 0xd1);
	outb(&pio, 0x60, 0x01); /* reset line not asserted */
	assert_int_equal(rec.power_calls, 1);
	outb(&pio, 0x64, 0xd1);
	outb(&pio, 0x60, 0x00);
	assert_int_equal(rec.power_calls, 2);
	i8042_destroy(&k);
}

static void test_debug_exit(void **state)
{
	(void)state;
	struct recorder rec = {0};
	struct power_ctl power = {.request = rec_power, .opaque = &rec};
	struct debug_exit d;
	struct bus pio;
	bus_init(&pio, "pio");
	debug_exit_init(&d, &power);
	assert_int_equal(debug_exit_attach(&d, &pio), 0);
	outb(&pio, PORT_DEBUG_EXIT, 21);
	assert_int_equal(rec.power_event, POWER_EXIT_CODE);
	assert_int_equal(rec.power_code, 43);
	outl(&pio, PORT_DEBUG_EXIT, 0);
	assert_int_equal(rec.power_code, 1);
	uint8_t w[2] = {3, 0};
	bus_write(&pio, PORT_DEBUG_EXIT, w, 2);
	assert_int_equal(rec.power_code, 7);
	outb(&pio, PORT_EXIT_STATUS, 42);
	assert_int_equal(rec.power_event, POWER_SET_STATUS);
	assert_int_equal(rec.power_code, 42);
	assert_int_equal(inb(&pio, PORT_DEBUG_EXIT), 0xff); /* write-only */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bus_register_and_lookup),
	    cmocka_unit_test(test_bus_full),
	    cmocka_unit_test_setup_teardown(test_uart_output_and_lsr, uart_setup, uart_teardown),
	    cmocka_unit_test_setup_teardown(test_uart_rx_interrupt, uart_setup, uart_teardown),
	    cmocka_unit_test_setup_teardown(test_uart_thre_interrupt, uart_setup, uart_teardown),
	    cmocka_unit_test_setup_teardown(test_uart_loopback_and_dlab, uart_setup, uart_teardown),
	    cmocka_unit_test_setup_teardown(test_uart_rx_overflow, uart_setup, uart_teardown),
	    cmocka_unit_test(test_fw_cfg),
	    cmocka_unit_test(test_rtc), cmocka_unit_test(test_rtc_interrupts),
	    cmocka_unit_test(test_rtc_timer_thread),
	    cmocka_unit_test(test_i8042_reset),
	    cmocka_unit_test(test_debug_exit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
