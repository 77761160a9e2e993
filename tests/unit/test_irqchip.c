/* The soft irqchip (devices/soft_irqchip.c): GSI routing to PIC and
 * IOAPIC, the PIT on IRQ 0 / pin 2, LAPIC delivery, EOI broadcast, MSI
 * decoding, IPIs, ExtINT through LINT0, and the port/MMIO/MSR entry points
 * the soft engine uses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "devices/soft_irqchip.h"

struct env {
	uint64_t ns;
	unsigned kicks[4];
};

static struct env env;
static struct soft_irqchip chip;

static uint64_t fake_now(void *opaque)
{
	return ((struct env *)opaque)->ns;
}

static void fake_kick(void *opaque, unsigned cpu)
{
	struct env *e = opaque;
	if (cpu < 4)
		e->kicks[cpu]++;
}

static int setup(void **state)
{
	(void)state;
	memset(&env, 0, sizeof(env));
	env.ns = 5000000;
	struct soft_irqchip_config cfg = {
		.ncpus = 2,
		.clock = {.now_ns = fake_now, .tsc_hz = 1000000000ULL, .opaque = &env},
		.kick = fake_kick,
		.kick_opaque = &env,
	};
	assert_int_equal(soft_irqchip_init(&chip, &cfg), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	soft_irqchip_destroy(&chip);
	return 0;
}

static void outb(uint16_t port, uint8_t v)
{
	assert_true(irqchip_pio_write(&chip, port, &v, 1));
}

static uint8_t inb(uint16_t port)
{
	uint8_t v = 0;
	assert_true(irqchip_pio_read(&chip, port, &v, 1));
	return v;
}

static void lapic_write(unsigned cpu, uint32_t reg, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	assert_true(irqchip_mmio_write(&chip, cpu, 0xfee00000ULL + reg, b, 4));
}

static uint32_t lapic_read(unsigned cpu, uint32_t reg)
{
	uint8_t b[4];
	assert_true(irqchip_mmio_read(&chip, cpu, 0xfee00000ULL + reg, b, 4));
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void ioapic_write(uint8_t index, uint32_t v)
{
	uint8_t sel[4] = {index, 0, 0, 0};
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	assert_true(irqchip_mmio_write(&chip, 0, 0xfec00000ULL, sel, 4));
	assert_true(irqchip_mmio_write(&chip, 0, 0xfec00010ULL, b, 4));
}

static uint32_t ioapic_read(uint8_t index)
{
	uint8_t sel[4] = {index, 0, 0, 0}, b[4];
	assert_true(irqchip_mmio_write(&chip, 0, 0xfec00000ULL, sel, 4));
	assert_true(irqchip_mmio_read(&chip, 0, 0xfec00010ULL, b, 4));
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void route_pin(unsigned pin, uint32_t low, uint8_t dest)
{
	ioapic_write((uint8_t)(0x11 + 2 * pin), (uint32_t)dest << 24);
	ioapic_write((uint8_t)(0x10 + 2 * pin), low);
}

static void pic_linux_init(void)
{
	static const uint8_t seq[][2] = {
		{0x21, 0xff}, {0xa1, 0xff}, {0x20, 0x11}, {0x21, 0x30}, {0x21, 0x04}, {0x21, 0x01},
		{0xa0, 0x11}, {0xa1, 0x38}, {0xa1, 0x02}, {0xa1, 0x01}, {0x21, 0xfb}, {0xa1, 0xff},
	};
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
		outb(seq[i][0], seq[i][1]);
}

/* What Linux's setup_local_APIC leaves behind with the IOAPIC in use. */
static void apic_on(unsigned cpu)
{
	lapic_write(cpu, LAPIC_SVR, 0x1ff);
	lapic_write(cpu, LAPIC_LVT_LINT0, 0x10700); /* ExtINT, masked */
	lapic_write(cpu, LAPIC_LDR, (1u << cpu) << 24);
}

/* Take the pending interrupt and EOI it, as a guest handler would. */
static int take_and_eoi(unsigned cpu)
{
	int v = irqchip_ack(&chip, cpu);
	if (v >= 0)
		lapic_write(cpu, LAPIC_EOI, 0);
	return v;
}

static void test_isa_irq_through_pic_at_reset(void **state)
{
	(void)state;
	pic_linux_init();
	outb(0x21, 0xeb); /* unmask IRQ 4 (COM1) */
	assert_int_equal(irqchip_set_level(&chip, 4, 1), 0);
	assert_true(env.kicks[0] > 0); /* the BSP takes ExtINT at reset */
	assert_int_equal(env.kicks[1], 0);
	assert_int_equal(irqchip_pending(&chip, 0), 0x34);
	assert_int_equal(irqchip_pending(&chip, 1), -1);
	assert_int_equal(irqchip_ack(&chip, 0), 0x34);
	assert_int_equal(irqchip_pending(&chip, 0), -1);
	outb(0x20, 0x20);
	irqchip_set_level(&chip, 4, 0);
	assert_int_equal(irqchip_pending(&chip, 0), -1);
}

static void test_ioapic_edge_to_lapic(void **state)
{
	(void)state;
	apic_on(0);
	apic_on(1);
	route_pin(4, 0x41, 1); /* edge, physical dest 1 */
	irqchip_set_level(&chip, 4, 1);
	irqchip_set_level(&chip, 4, 0);
	assert_int_equal(irqchip_pending(&chip, 0), -1);
	assert_int_equal(irqchip_pending(&chip, 1), 0x41);
	assert_true(env.kicks[1] > 0);
	assert_int_equal(take_and_eoi(1), 0x41);
	assert_int_equal(irqchip_pending(&chip, 1), -1);

	/* GSI 16-23 reach only the IOAPIC; 24 and up are refused. */
	route_pin(17, 0x51, 0);
	irqchip_set_level(&chip, 17, 1);
	assert_int_equal(irqchip_pending(&chip, 0), 0x51);
	assert_int_equal(irqchip_set_level(&chip, 24, 1), -EINVAL);
}

static void test_level_line_remote_irr_and_eoi(void **state)
{
	(void)state;
	apic_on(0);
	route_pin(9, 0x8000 | 0x49, 0); /* level, physical dest 0 */
	irqchip_set_level(&chip, 9, 1);
	assert_int_equal(irqchip_ack(&chip, 0), 0x49);
	assert_true(ioapic_read(0x10 + 18) & 0x4000);
	assert_int_equal(irqchip_pending(&chip, 0), -1);
	lapic_write(0, LAPIC_EOI, 0); /* broadcast: still asserted → again */
	assert_int_equal(irqchip_pending(&chip, 0), 0x49);
	assert_int_equal(irqchip_ack(&chip, 0), 0x49);
	irqchip_set_level(&chip, 9, 0); /* the device is serviced */
	lapic_write(0, LAPIC_EOI, 0);
	assert_int_equal(irqchip_pending(&chip, 0), -1);
	assert_false(ioapic_read(0x10 + 18) & 0x4000);
}

static void test_pit_on_ioapic_pin2(void **state)
{
	(void)state;
	pic_linux_init();
	apic_on(0);
	route_pin(2, 0x30, 0); /* ISA IRQ 0 via the MADT override */
	outb(0x43, 0x34);
	outb(0x40, 11932 & 0xff);
	outb(0x40, 11932 >> 8);
	uint64_t t0 = env.ns;
	unsigned ticks = 0;
	assert_true(irqchip_next_event_ns(&chip, 0) - t0 >= 10000000);
	for (env.ns = t0; env.ns <= t0 + 1001500000ULL; env.ns += 1000000) {
		irqchip_poll_timers(&chip, env.ns);
		if (irqchip_pending(&chip, 0) == 0x30) {
			assert_int_equal(take_and_eoi(0), 0x30);
			ticks++;
		}
	}
	assert_int_equal(ticks, 100);
	/* The PIC saw the same edges on IRQ 0 (masked there, so only latched). */
	outb(0x20, 0x0a);
	assert_true(inb(0x20) & 0x01);
}

static void test_msi_decoding(void **state)
{
	(void)state;
	apic_on(0);
	apic_on(1);
	assert_int_equal(irqchip_msi(&chip, 0xfee01000ULL, 0x0061), 0); /* physical 1 */
	assert_int_equal(irqchip_pending(&chip, 1), 0x61);
	assert_int_equal(irqchip_pending(&chip, 0), -1);
	assert_int_equal(take_and_eoi(1), 0x61);

	irqchip_msi(&chip, 0xfee03004ULL, 0x0062); /* logical, both CPUs */
	assert_int_equal(irqchip_pending(&chip, 0), 0x62);
	assert_int_equal(irqchip_pending(&chip, 1), 0x62);
	take_and_eoi(0);
	take_and_eoi(1);

	lapic_write(0, LAPIC_TPR, 0x20); /* CPU 1 has the lower priority */
	irqchip_msi(&chip, 0xfee03004ULL, 0x0163); /* lowest priority */
	assert_int_equal(irqchip_pending(&chip, 0), -1);
	assert_int_equal(irqchip_pending(&chip, 1), 0x63);
	take_and_eoi(1);

	irqchip_msi(&chip, 0xfee0000cULL | (1u << 12), 0x0064); /* RH=1, logical dest 1 */
	assert_int_equal(irqchip_pending(&chip, 0), 0x64);

	assert_int_equal(irqchip_msi(&chip, 0xfed00000ULL, 0x40), -EINVAL);
	assert_int_equal(irqchip_msi(&chip, 0x1fee00000ULL, 0x40), -EINVAL);
	irqchip_msi(&chip, 0xfee00000ULL, 0x0004); /* illegal vector: ESR, no IRR */
	lapic_write(0, LAPIC_ESR, 0);
	assert_int_equal(lapic_read(0, LAPIC_ESR), LAPIC_ESR_RECV_ILLEGAL_VECTOR);
}

static void test_ipis_between_cpus(void **state)
{
	(void)state;
	apic_on(0);
	apic_on(1);
	lapic_write(0, LAPIC_ICR_HI, 1u << 24);
	lapic_write(0, LAPIC_ICR_LO, 0x00070);
	assert_int_equal(irqchip_pending(&chip, 1), 0x70);
	assert_true(env.kicks[1] > 0);

	lapic_write(0, LAPIC_ICR_LO, 0x04500); /* INIT */
	lapic_write(0, LAPIC_ICR_LO, 0x0069f); /* SIPI 0x9f */
	uint8_t sipi = 0;
	assert_int_equal(irqchip_take_events(&chip, 1, &sipi), LAPIC_EV_INIT | LAPIC_EV_SIPI);
	assert_int_equal(sipi, 0x9f);
	assert_int_equal(irqchip_take_events(&chip, 0, NULL), 0);

	lapic_write(1, LAPIC_ICR_LO, 0x80000 | 0x00080); /* all including self */
	assert_int_equal(irqchip_pending(&chip, 0), 0x80);
	assert_int_equal(irqchip_pending(&chip, 1), 0x80);
	lapic_write(1, LAPIC_ICR_LO, 0xc0000 | 0x00400); /* NMI to all but self */
	assert_int_equal(irqchip_take_events(&chip, 0, NULL), LAPIC_EV_NMI);
	assert_int_equal(irqchip_take_events(&chip, 1, NULL), 0);

	irqchip_lapic_reset(&chip, 1);
	assert_int_equal(lapic_read(1, LAPIC_SVR), 0xff);
	assert_int_equal(irqchip_pending(&chip, 1), -1);
}

static void test_extint_via_lint0_and_disable(void **state)
{
	(void)state;
	pic_linux_init();
	outb(0x21, 0xfa); /* unmask IRQ 0 */
	apic_on(0);
	irqchip_set_level(&chip, 0, 1);
	assert_int_equal(irqchip_pending(&chip, 0), -1); /* LINT0 masked */
	lapic_write(0, LAPIC_LVT_LINT0, 0x00700);        /* virtual wire */
	assert_int_equal(irqchip_pending(&chip, 0), 0x30);
	assert_int_equal(irqchip_ack(&chip, 0), 0x30);
	outb(0x20, 0x20);
	irqchip_set_level(&chip, 0, 0);

	/* A globally disabled APIC passes the PIC straight through. */
	lapic_write(0, LAPIC_LVT_LINT0, 0x10700);
	uint64_t base = 0;
	assert_int_equal(irqchip_msr_read(&chip, 0, MSR_IA32_APIC_BASE, &base), 0);
	assert_int_equal(base, 0xfee00900);
	assert_int_equal(irqchip_msr_write(&chip, 0, MSR_IA32_APIC_BASE, 0xfee00000), 0);
	irqchip_set_level(&chip, 0, 1);
	assert_int_equal(irqchip_pending(&chip, 0), 0x30);
	/* ... and its page no longer decodes. */
	uint8_t b[4];
	assert_false(irqchip_mmio_read(&chip, 0, 0xfee00030ULL, b, 4));
	assert_int_equal(irqchip_msr_write(&chip, 0, MSR_IA32_APIC_BASE, 0xfee00c00), -EINVAL);
	assert_int_equal(irqchip_msr_write(&chip, 0, 0x10, 0), -ENOENT);
}

static void test_lapic_timer_and_next_event(void **state)
{
	(void)state;
	apic_on(1);
	assert_int_equal(irqchip_next_event_ns(&chip, 1), UINT64_MAX);
	lapic_write(1, LAPIC_TIMER_DIVIDE, 0xb);
	lapic_write(1, LAPIC_LVT_TIMER, 0xef);
	lapic_write(1, LAPIC_TIMER_INITIAL, 250000);
	uint64_t t = irqchip_next_event_ns(&chip, 1);
	assert_int_equal(t, env.ns + 250000);
	irqchip_poll_timers(&chip, t - 1);
	assert_int_equal(irqchip_pending(&chip, 1), -1);
	irqchip_poll_timers(&chip, t);
	assert_int_equal(irqchip_pending(&chip, 1), 0xef);
	assert_true(env.kicks[1] > 0);

	/* TSC deadline through the MSR interface (1 GHz TSC = ns here). */
	lapic_write(1, LAPIC_LVT_TIMER, 0x40000 | 0xee);
	env.ns = t + 1000;
	assert_int_equal(irqchip_msr_write(&chip, 1, MSR_IA32_TSC_DEADLINE, t + 5000), 0);
	uint64_t dl = 0;
	assert_int_equal(irqchip_msr_read(&chip, 1, MSR_IA32_TSC_DEADLINE, &dl), 0);
	assert_int_equal(dl, t + 5000);
	assert_int_equal(irqchip_next_event_ns(&chip, 1), t + 5000);
	irqchip_poll_timers(&chip, t + 5000);
	assert_true(lapic_read(1, LAPIC_IRR + 0x70) & (1u << 14)); /* 0xee */
}

static void test_port_and_mmio_edges(void **state)
{
	(void)state;
	uint8_t b[8];
	memset(b, 0xaa, sizeof(b));
	assert_false(irqchip_pio_read(&chip, 0x3f8, b, 1)); /* not ours */
	assert_int_equal(b[0], 0xaa);
	assert_true(irqchip_pio_read(&chip, 0x21, b, 2)); /* not a byte: reads 0 */
	assert_int_equal(b[0] | b[1], 0);
	assert_true(irqchip_pio_write(&chip, 0x43, b, 4)); /* ignored */
	assert_int_equal(inb(0x61) & 0x01, 0);
	assert_false(irqchip_mmio_read(&chip, 0, 0xfebffffcULL, b, 4));
	assert_false(irqchip_mmio_read(&chip, 0, 0xfec00ffeULL, b, 4)); /* straddles the end */
	assert_false(irqchip_mmio_read(&chip, 7, 0xfee00030ULL, b, 4)); /* no such vCPU */
	assert_int_equal(irqchip_pending(&chip, 7), -1);
	assert_int_equal(irqchip_ack(&chip, 7), -1);
	uint64_t v;
	assert_int_equal(irqchip_msr_read(&chip, 9, MSR_IA32_APIC_BASE, &v), -EINVAL);
	irqchip_lapic_mmio_read(&chip, 1, 0x30, b, 4);
	assert_int_equal(b[0], 0x14);
	irqchip_lapic_mmio_read(&chip, 9, 0x30, b, 4);
	assert_int_equal(b[0], 0);
}

static void test_attach_and_irq_ctl(void **state)
{
	(void)state;
	struct bus pio, mmio;
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	assert_int_equal(soft_irqchip_attach(&chip, &pio, &mmio), 0);
	uint8_t v = 0x5a;
	assert_true(bus_write(&pio, 0x21, &v, 1) >= 0);
	v = 0;
	assert_true(bus_read(&pio, 0x21, &v, 1) >= 0);
	assert_int_equal(v, 0x5a);
	uint8_t ver[4] = {IOAPIC_REG_VER, 0, 0, 0};
	assert_true(bus_write(&mmio, 0xfec00000ULL, ver, 4) >= 0);
	assert_true(bus_read(&mmio, 0xfec00010ULL, ver, 4) >= 0);
	assert_int_equal(ver[0], 0x11);
	assert_int_equal(soft_irqchip_attach(&chip, &pio, NULL), -EEXIST);

	apic_on(0);
	route_pin(5, 0x45, 0);
	struct irq_ctl irq = soft_irqchip_irq_ctl(&chip);
	assert_int_equal(irq_set_level(&irq, 5, 1), 0);
	assert_int_equal(irqchip_pending(&chip, 0), 0x45);
	take_and_eoi(0);
	assert_int_equal(msi_send(&irq, 0xfee00000ULL, 0x46), 0);
	assert_int_equal(irqchip_pending(&chip, 0), 0x46);
}

static void test_bad_config(void **state)
{
	(void)state;
	struct soft_irqchip c;
	struct soft_irqchip_config cfg = {.ncpus = 0, .clock = {.now_ns = fake_now, .tsc_hz = 1000000000ULL}};
	assert_int_equal(soft_irqchip_init(&c, &cfg), -EINVAL);
	cfg.ncpus = 256;
	assert_int_equal(soft_irqchip_init(&c, &cfg), -EINVAL);
	cfg.ncpus = 1;
	cfg.clock.tsc_hz = 0;
	assert_int_equal(soft_irqchip_init(&c, &cfg), -EINVAL);
	cfg.clock.tsc_hz = 1000000000ULL;
	cfg.clock.now_ns = NULL;
	assert_int_equal(soft_irqchip_init(&c, &cfg), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_isa_irq_through_pic_at_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ioapic_edge_to_lapic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_line_remote_irr_and_eoi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pit_on_ioapic_pin2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msi_decoding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipis_between_cpus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extint_via_lint0_and_disable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lapic_timer_and_next_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_and_mmio_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_and_irq_ctl, setup, teardown),
		cmocka_unit_test(test_bad_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
