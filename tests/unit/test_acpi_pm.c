/* ACPI PM fixed registers (devices/acpi_pm.c), driven through the port-I/O
 * bus the way vCPU exits drive them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "arch/x86/layout.h"
#include "devices/acpi_pm.h"
#include "vm/bus.h"

struct fake_power {
	int calls;
	enum power_event last_event;
	int last_code;
};

struct fake_irq {
	int calls;
	uint32_t last_gsi;
	int last_level;
};

struct fixture {
	struct acpi_pm pm;
	struct bus pio;
	struct fake_power fp;
	struct fake_irq fi;
	struct power_ctl power;
	struct irq_ctl irq;
};

static void fake_power_request(void *opaque, enum power_event event, int code)
{
	struct fake_power *fp = opaque;
	fp->calls++;
	fp->last_event = event;
	fp->last_code = code;
}

static int fake_set_level(void *opaque, uint32_t gsi, int level)
{
	struct fake_irq *fi = opaque;
	fi->calls++;
	fi->last_gsi = gsi;
	fi->last_level = level;
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));
	f->power = (struct power_ctl){fake_power_request, &f->fp};
	f->irq = (struct irq_ctl){.set_level = fake_set_level, .opaque = &f->fi};
	bus_init(&f->pio, "pio");
	acpi_pm_init(&f->pm, &f->power, &f->irq);
	assert_int_equal(acpi_pm_attach(&f->pm, &f->pio), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	acpi_pm_destroy(&f->pm);
	test_free(f);
	return 0;
}

static uint32_t in(struct fixture *f, uint16_t port, unsigned size)
{
	uint8_t data[8];
	assert_true(bus_read(&f->pio, port, data, size) >= 0);
	return (uint32_t)bus_data_get(data, size);
}

static void out(struct fixture *f, uint16_t port, unsigned size, uint32_t value)
{
	uint8_t data[8];
	bus_data_put(data, size, value);
	assert_true(bus_write(&f->pio, port, data, size) >= 0);
}

#define SLP(typ) (((uint32_t)(typ) << 10) | (1u << 13))

static void test_poweroff_once(void **state)
{
	struct fixture *f = *state;
	out(f, PORT_ACPI_PM1A_CNT, 2, 5u << 10); /* Linux writes SLP_TYP first */
	assert_int_equal(f->fp.calls, 0);
	out(f, PORT_ACPI_PM1A_CNT, 2, SLP(5));
	assert_int_equal(f->fp.calls, 1);
	assert_int_equal(f->fp.last_event, POWER_OFF);
	assert_int_equal(f->fp.last_code, 0);
	out(f, PORT_ACPI_PM1A_CNT, 2, SLP(5));
	assert_int_equal(f->fp.calls, 1);
}

static void test_other_sleep_types_ignored(void **state)
{
	struct fixture *f = *state;
	for (unsigned typ = 0; typ < 8; typ++) {
		if (typ == 5)
			continue;
		out(f, PORT_ACPI_PM1A_CNT, 2, SLP(typ));
		out(f, PORT_ACPI_PM1A_CNT + 1, 1, SLP(typ) >> 8);
	}
	assert_int_equal(f->fp.calls, 0);
}

/* SLP_TYP and SLP_EN both live in the high byte: a byte write suffices. */
static void test_poweroff_byte_write(void **state)
{
	struct fixture *f = *state;
	out(f, PORT_ACPI_PM1A_CNT + 1, 1, SLP(5) >> 8);
	assert_int_equal(f->fp.calls, 1);
	assert_int_equal(f->fp.last_event, POWER_OFF);
}

/* The SLP_TYP that counts is the one written together with SLP_EN. */
static void test_sleep_type_of_the_enabling_write(void **state)
{
	struct fixture *f = *state;
	out(f, PORT_ACPI_PM1A_CNT, 2, 5u << 10);
	out(f, PORT_ACPI_PM1A_CNT, 2, SLP(0));
	assert_int_equal(f->fp.calls, 0);
	out(f, PORT_ACPI_PM1A_CNT, 2, SLP(5));
	assert_int_equal(f->fp.calls, 1);
}

static void test_null_power_ctl(void **state)
{
	(void)state;
	struct acpi_pm pm;
	struct bus pio;
	uint8_t d[2];
	bus_init(&pio, "pio");
	acpi_pm_init(&pm, NULL, NULL);
	assert_int_equal(acpi_pm_attach(&pm, &pio), 0);
	bus_data_put(d, 2, SLP(5));
	assert_true(bus_write(&pio, PORT_ACPI_PM1A_CNT, d, 2) >= 0);
	acpi_pm_power_button(&pm);
	acpi_pm_destroy(&pm);
}

static void test_sci_en_reads_one(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(in(f, PORT_ACPI_PM1A_CNT, 2), 1);
	out(f, PORT_ACPI_PM1A_CNT, 2, 0);
	assert_int_equal(in(f, PORT_ACPI_PM1A_CNT, 2) & 1, 1);
	out(f, PORT_ACPI_PM1A_CNT, 2, 3u << 10);
	assert_int_equal(in(f, PORT_ACPI_PM1A_CNT, 2), (3u << 10) | 1);
	assert_int_equal(in(f, PORT_ACPI_PM1A_CNT, 1), 1);
	assert_int_equal(in(f, PORT_ACPI_PM1A_CNT + 1, 1), 3u << 2);
	/* SLP_EN and GBL_RLS are write-only. */
	out(f, PORT_ACPI_PM1A_CNT, 2, SLP(3) | (1u << 2));
	assert_int_equal(in(f, PORT_ACPI_PM1A_CNT, 2), (3u << 10) | 1);
}

static void test_status_w1c_and_enable(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(in(f, PORT_ACPI_PM1A_EVT, 4), 0);

	acpi_pm_power_button(&f->pm);
	assert_int_equal(in(f, PORT_ACPI_PM1A_EVT, 2), ACPI_PM1_PWRBTN);
	assert_int_equal(f->fi.calls, 0); /* not enabled: no SCI */

	out(f, PORT_ACPI_PM1A_EVT, 2, 0); /* writing 0 changes nothing */
	assert_int_equal(in(f, PORT_ACPI_PM1A_EVT, 2), ACPI_PM1_PWRBTN);
	out(f, PORT_ACPI_PM1A_EVT, 2, ACPI_PM1_TMR); /* other bits' 1s do not clear it */
	assert_int_equal(in(f, PORT_ACPI_PM1A_EVT, 2), ACPI_PM1_PWRBTN);
	out(f, PORT_ACPI_PM1A_EVT + 1, 1, ACPI_PM1_PWRBTN >> 8); /* byte write clears */
	assert_int_equal(in(f, PORT_ACPI_PM1A_EVT, 2), 0);

	/* Enable register: defined bits stick, reserved ones read 0. */
	out(f, PORT_ACPI_PM1A_EVT + 2, 2, ACPI_PM1_PWRBTN | ACPI_PM1_GBL);
	assert_int_equal(in(f, PORT_ACPI_PM1A_EVT + 2, 2), ACPI_PM1_PWRBTN | ACPI_PM1_GBL);
	out(f, PORT_ACPI_PM1A_EVT + 2, 2, 0xffff);
	assert_int_equal(in(f, PORT_ACPI_PM1A_EVT + 2, 2), 0x4721);
	/* A dword write sets the enables and clears status together. */
	acpi_pm_power_button(&f->pm);
	out(f, PORT_ACPI_PM1A_EVT, 4, (uint32_t)ACPI_PM1_PWRBTN << 16 | ACPI_PM1_PWRBTN);
	assert_int_equal(in(f, PORT_ACPI_PM1A_EVT, 4), (uint32_t)ACPI_PM1_PWRBTN << 16);
}

static void test_power_button_sci(void **state)
{
	struct fixture *f = *state;
	out(f, PORT_ACPI_PM1A_EVT + 2, 2, ACPI_PM1_PWRBTN);
	assert_int_equal(f->fi.calls, 0);
	acpi_pm_power_button(&f->pm);
	assert_int_equal(f->fi.calls, 1);
	assert_int_equal(f->fi.last_gsi, IRQ_ACPI_SCI);
	assert_int_equal(f->fi.last_level, 1);
	acpi_pm_power_button(&f->pm); /* still pending: no new edge */
	assert_int_equal(f->fi.calls, 1);
	out(f, PORT_ACPI_PM1A_EVT, 2, ACPI_PM1_PWRBTN);
	assert_int_equal(f->fi.calls, 2);
	assert_int_equal(f->fi.last_level, 0);

	/* Disabling the event while pending also drops the line. */
	acpi_pm_power_button(&f->pm);
	assert_int_equal(f->fi.last_level, 1);
	out(f, PORT_ACPI_PM1A_EVT + 2, 2, 0);
	assert_int_equal(f->fi.last_level, 0);
	assert_int_equal(f->fi.calls, 4);
}

static uint32_t ticks_between(uint32_t a, uint32_t b) { return (b - a) & ACPI_PM_TIMER_MASK; }

static void test_timer(void **state)
{
	struct fixture *f = *state;
	uint32_t a = in(f, PORT_ACPI_PM_TMR, 4);
	assert_true(a <= ACPI_PM_TIMER_MASK);
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	uint32_t b = in(f, PORT_ACPI_PM_TMR, 4);
	assert_true(b <= ACPI_PM_TIMER_MASK);
	uint32_t d = ticks_between(a, b);
	/* 20 ms is 71591 ticks; allow for a slow, loaded host. */
	assert_true(d >= 71000);
	assert_true(d < ACPI_PM_TIMER_HZ * 2);
	assert_int_equal(in(f, PORT_ACPI_PM_TMR + 3, 1), 0); /* bits 31:24 are 0 */

	/* Read-only: writes change nothing. */
	out(f, PORT_ACPI_PM_TMR, 4, 0);
	uint32_t c = in(f, PORT_ACPI_PM_TMR, 4);
	assert_true(ticks_between(b, c) < ACPI_PM_TIMER_HZ);

	/* Monotonic across many reads (modulo the 24-bit wrap). */
	uint32_t prev = in(f, PORT_ACPI_PM_TMR, 4);
	for (int i = 0; i < 10000; i++) {
		uint32_t now = in(f, PORT_ACPI_PM_TMR, 4);
		assert_true(ticks_between(prev, now) < ACPI_PM_TIMER_HZ);
		prev = now;
	}
}

/* A start time long ago: the counter wraps but stays within 24 bits. */
static void test_timer_wraps(void **state)
{
	struct fixture *f = *state;
	f->pm.start.tv_sec -= 100000;
	for (int i = 0; i < 100; i++)
		assert_true(acpi_pm_timer_read(&f->pm) <= ACPI_PM_TIMER_MASK);
}

/* Every size at every offset, through the bus and straight into the ops
 * (which must cope with accesses overrunning their block). */
static void test_odd_accesses(void **state)
{
	struct fixture *f = *state;
	static const unsigned sizes[] = {1, 2, 3, 4, 8};
	for (uint16_t port = PORT_ACPI_PM_BASE - 2; port < PORT_ACPI_PM_BASE + 14; port++) {
		for (unsigned s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			uint8_t data[8];
			memset(data, 0, sizeof(data));
			bus_read(&f->pio, port, data, sizes[s]);
			memset(data, 0xff, sizeof(data));
			data[1] = 0; /* keep SLP_EN clear in most patterns */
			bus_write(&f->pio, port, data, sizes[s]);
		}
	}
	static const uint16_t bases[] = {PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_CNT, PORT_ACPI_PM_TMR};
	for (unsigned b = 0; b < 3; b++) {
		const struct bus_range *r = bus_find(&f->pio, bases[b]);
		assert_non_null(r);
		for (uint64_t off = 0; off < 12; off++) {
			for (unsigned size = 1; size <= 8; size++) {
				uint8_t data[8];
				memset(data, 0x5a, sizeof(data));
				r->ops->read(r->opaque, off, data, size);
				for (unsigned i = 0; i < size; i++)
					if (off + i >= r->len)
						assert_int_equal(data[i], 0xff);
				memset(data, 0, sizeof(data));
				r->ops->write(r->opaque, off, data, size);
			}
		}
	}
	/* Still coherent afterwards. */
	assert_int_equal(in(f, PORT_ACPI_PM1A_CNT, 2) & 1, 1);
}

static void *hammer(void *arg)
{
	struct fixture *f = arg;
	for (int i = 0; i < 20000; i++) {
		uint8_t d[4];
		bus_data_put(d, 2, (uint32_t)i & 0x4721);
		bus_write(&f->pio, PORT_ACPI_PM1A_EVT + 2, d, 2);
		bus_read(&f->pio, PORT_ACPI_PM1A_EVT, d, 4);
		bus_read(&f->pio, PORT_ACPI_PM_TMR, d, 4);
		if (i % 64 == 0)
			acpi_pm_power_button(&f->pm);
	}
	return NULL;
}

static void test_concurrent_access(void **state)
{
	struct fixture *f = *state;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, f), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* Then the line follows status & enable exactly. */
	out(f, PORT_ACPI_PM1A_EVT + 2, 2, ACPI_PM1_PWRBTN);
	acpi_pm_power_button(&f->pm);
	assert_int_equal(f->fi.last_level, 1);
	out(f, PORT_ACPI_PM1A_EVT, 2, 0xffff);
	assert_int_equal(f->fi.last_level, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_poweroff_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_sleep_types_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_poweroff_byte_write, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sleep_type_of_the_enabling_write, setup, teardown),
	    cmocka_unit_test(test_null_power_ctl),
	    cmocka_unit_test_setup_teardown(test_sci_en_reads_one, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_w1c_and_enable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_power_button_sci, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timer_wraps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_odd_accesses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_access, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
