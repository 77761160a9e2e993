/* xAPIC model (devices/lapic.c) with a fake clock: priorities, EOI, the
 * timer in its three modes, errors, IPIs, ExtINT routing and the MMIO
 * decoding rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "devices/lapic.h"

struct env {
	uint64_t ns;
	unsigned eois;
	uint8_t eoi_vector;
	unsigned ipis;
	struct lapic_ipi ipi;
};

static struct env env;
static struct lapic_clock clk;
static struct lapic apic;

static uint64_t fake_now(void *opaque)
{
	return ((struct env *)opaque)->ns;
}

static void fake_eoi(void *opaque, uint8_t vector)
{
	struct env *e = opaque;
	e->eois++;
	e->eoi_vector = vector;
}

static void fake_ipi(void *opaque, struct lapic *src, const struct lapic_ipi *ipi)
{
	struct env *e = opaque;
	(void)src;
	e->ipis++;
	e->ipi = *ipi;
}

static int setup(void **state)
{
	(void)state;
	memset(&env, 0, sizeof(env));
	env.ns = 1000000; /* 1 ms */
	clk = (struct lapic_clock){.now_ns = fake_now, .tsc_hz = 2000000000ULL, .opaque = &env};
	struct lapic_ops ops = {.eoi_broadcast = fake_eoi, .send_ipi = fake_ipi, .opaque = &env};
	lapic_init(&apic, 0, &clk, &ops);
	return 0;
}

static void enable(void)
{
	lapic_reg_write(&apic, LAPIC_SVR, 0x1ff);
}

static bool irr_has(unsigned v)
{
	return apic.irr[v / 32] >> (v % 32) & 1;
}

static void test_reset_state(void **state)
{
	(void)state;
	assert_int_equal(lapic_reg_read(&apic, LAPIC_VER), 0x50014);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ID), 0);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_SVR), 0xff);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_DFR), 0xffffffff);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_LVT_TIMER), 0x10000);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_LVT_LINT0), 0x700); /* BSP virtual wire */
	assert_int_equal(lapic_get_base(&apic), 0xfee00900);
	assert_true(lapic_accepts_pic(&apic));

	struct lapic ap;
	lapic_init(&ap, 3, &clk, NULL);
	assert_int_equal(lapic_reg_read(&ap, LAPIC_ID), 3u << 24);
	assert_int_equal(lapic_get_base(&ap), 0xfee00800);
	assert_false(lapic_accepts_pic(&ap));
}

static void test_software_disable_drops_fixed(void **state)
{
	(void)state;
	lapic_set_irq(&apic, 0x40, false);
	assert_int_equal(lapic_pending_vector(&apic), -1);
	enable();
	lapic_set_irq(&apic, 0x40, false);
	assert_int_equal(lapic_pending_vector(&apic), 0x40);
	/* Disabling masks every LVT, and they stay masked while disabled. */
	lapic_reg_write(&apic, LAPIC_SVR, 0xff);
	assert_true(lapic_reg_read(&apic, LAPIC_LVT_LINT0) & LAPIC_LVT_MASKED);
	lapic_reg_write(&apic, LAPIC_LVT_ERROR, 0xfe);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_LVT_ERROR), 0x100fe);
	assert_false(lapic_accepts_pic(&apic));
}

static void test_tpr_ppr_masking(void **state)
{
	(void)state;
	enable();
	lapic_set_irq(&apic, 0x45, false);
	lapic_reg_write(&apic, LAPIC_TPR, 0x50);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_PPR), 0x50);
	assert_int_equal(lapic_pending_vector(&apic), -1);
	lapic_reg_write(&apic, LAPIC_TPR, 0x40); /* same class: still blocked */
	assert_int_equal(lapic_pending_vector(&apic), -1);
	lapic_reg_write(&apic, LAPIC_TPR, 0x3f);
	assert_int_equal(lapic_pending_vector(&apic), 0x45);
	lapic_accept(&apic, 0x45);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_PPR), 0x40); /* ISR class beats TPR */
	lapic_reg_write(&apic, LAPIC_TPR, 0x7f);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_PPR), 0x7f);
	lapic_reg_write(&apic, LAPIC_TPR, 0x1ff);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TPR), 0xff);
}

static void test_eoi_ordering(void **state)
{
	(void)state;
	enable();
	lapic_set_irq(&apic, 0x30, false);
	lapic_set_irq(&apic, 0x50, false);
	assert_int_equal(lapic_pending_vector(&apic), 0x50);
	lapic_accept(&apic, 0x50);
	assert_int_equal(lapic_pending_vector(&apic), -1); /* 0x30 is below 0x50 in service */
	lapic_set_irq(&apic, 0x60, false);
	assert_int_equal(lapic_pending_vector(&apic), 0x60); /* nests */
	lapic_accept(&apic, 0x60);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ISR + 0x20), 1u << 16); /* 0x50 */
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ISR + 0x30), 1u << 0);  /* 0x60 */
	lapic_reg_write(&apic, LAPIC_EOI, 0); /* retires 0x60, the highest */
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ISR + 0x30), 0);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ISR + 0x20), 1u << 16);
	assert_int_equal(lapic_pending_vector(&apic), -1);
	lapic_reg_write(&apic, LAPIC_EOI, 0);
	assert_int_equal(lapic_pending_vector(&apic), 0x30);
	assert_int_equal(env.eois, 0); /* edge vectors are not broadcast */
	lapic_reg_write(&apic, LAPIC_EOI, 0); /* nothing in service: ignored */
	lapic_accept(&apic, 0x99);            /* not requested: ignored */
	lapic_accept(&apic, 300);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ISR + 0x40), 0);
}

static void test_level_eoi_broadcast(void **state)
{
	(void)state;
	enable();
	lapic_set_irq(&apic, 0x71, true);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TMR + 0x30), 1u << 17);
	lapic_accept(&apic, lapic_pending_vector(&apic));
	lapic_reg_write(&apic, LAPIC_EOI, 0);
	assert_int_equal(env.eois, 1);
	assert_int_equal(env.eoi_vector, 0x71);
}

static void test_illegal_vectors_and_esr(void **state)
{
	(void)state;
	enable();
	lapic_reg_write(&apic, LAPIC_LVT_ERROR, 0xfe);
	lapic_set_irq(&apic, 5, false);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ESR), 0); /* not latched yet */
	lapic_reg_write(&apic, LAPIC_ESR, 0);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ESR), LAPIC_ESR_RECV_ILLEGAL_VECTOR);
	assert_true(irr_has(0xfe)); /* the error interrupt */
	assert_false(irr_has(5));

	lapic_reg_write(&apic, LAPIC_ICR_HI, 0);
	lapic_reg_write(&apic, LAPIC_ICR_LO, 0x00003); /* fixed, vector 3 */
	assert_int_equal(env.ipis, 0);
	lapic_reg_write(&apic, LAPIC_ESR, 0);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ESR), LAPIC_ESR_SEND_ILLEGAL_VECTOR);

	/* An error vector that is itself illegal does not recurse. */
	lapic_reg_write(&apic, LAPIC_LVT_ERROR, 0x02);
	lapic_set_irq(&apic, 1, false);
	lapic_reg_write(&apic, LAPIC_ESR, 0);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ESR), LAPIC_ESR_RECV_ILLEGAL_VECTOR);
}

static void test_timer_oneshot(void **state)
{
	(void)state;
	enable();
	uint64_t t0 = env.ns;
	lapic_reg_write(&apic, LAPIC_TIMER_DIVIDE, 0x3); /* divide by 16 */
	lapic_reg_write(&apic, LAPIC_LVT_TIMER, 0xef);
	lapic_reg_write(&apic, LAPIC_TIMER_INITIAL, 1000); /* 16 us */
	assert_int_equal(lapic_next_deadline_ns(&apic), t0 + 16000);
	env.ns = t0 + 8000;
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TIMER_CURRENT), 500);
	assert_false(lapic_poll_timer(&apic, t0 + 15999));
	assert_true(lapic_poll_timer(&apic, t0 + 16000));
	assert_int_equal(lapic_pending_vector(&apic), 0xef);
	env.ns = t0 + 20000;
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TIMER_CURRENT), 0);
	assert_int_equal(lapic_next_deadline_ns(&apic), UINT64_MAX);
	assert_false(lapic_poll_timer(&apic, t0 + 40000)); /* one shot only */
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TIMER_INITIAL), 1000);

	lapic_reg_write(&apic, LAPIC_TIMER_INITIAL, 0); /* zero stops the timer */
	assert_int_equal(lapic_next_deadline_ns(&apic), UINT64_MAX);
}

static void test_timer_periodic(void **state)
{
	(void)state;
	enable();
	uint64_t t0 = env.ns;
	unsigned fired = 0;
	lapic_reg_write(&apic, LAPIC_TIMER_DIVIDE, 0xb); /* divide by 1 */
	lapic_reg_write(&apic, LAPIC_LVT_TIMER, 0x20000 | 0xec);
	lapic_reg_write(&apic, LAPIC_TIMER_INITIAL, 1000000); /* 1 ms */
	for (env.ns = t0; env.ns <= t0 + 10000000; env.ns += 50000) {
		if (lapic_poll_timer(&apic, env.ns)) {
			fired++;
			lapic_accept(&apic, lapic_pending_vector(&apic));
			lapic_reg_write(&apic, LAPIC_EOI, 0);
		}
	}
	assert_int_equal(fired, 10);
	env.ns = t0 + 10250000;
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TIMER_CURRENT), 750000);

	/* Five missed periods coalesce into one interrupt, phase kept. */
	assert_true(lapic_poll_timer(&apic, t0 + 15500000));
	assert_int_equal(lapic_next_deadline_ns(&apic), t0 + 16000000);

	/* Tiny periods are clamped to the minimum. */
	lapic_reg_write(&apic, LAPIC_TIMER_INITIAL, 1);
	assert_int_equal(lapic_next_deadline_ns(&apic), env.ns + LAPIC_MIN_PERIOD_NS);
	/* A masked timer wakes nobody. */
	lapic_reg_write(&apic, LAPIC_LVT_TIMER, 0x30000 | 0xec);
	assert_int_equal(lapic_next_deadline_ns(&apic), UINT64_MAX);
}

static void test_timer_tsc_deadline(void **state)
{
	(void)state;
	enable();
	uint64_t t0 = env.ns;      /* 1 ms */
	uint64_t tsc0 = 2000000;   /* at 2 GHz */
	lapic_set_tsc_deadline(&apic, tsc0 + 100); /* not in TSC-deadline mode: ignored */
	assert_int_equal(lapic_get_tsc_deadline(&apic), 0);

	lapic_reg_write(&apic, LAPIC_LVT_TIMER, 0x40000 | 0xed);
	lapic_reg_write(&apic, LAPIC_TIMER_INITIAL, 5); /* ignored in this mode */
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TIMER_INITIAL), 0);
	lapic_set_tsc_deadline(&apic, tsc0 + 2000000); /* 1 ms ahead */
	assert_int_equal(lapic_get_tsc_deadline(&apic), tsc0 + 2000000);
	assert_int_equal(lapic_next_deadline_ns(&apic), t0 + 1000000);
	assert_false(lapic_poll_timer(&apic, t0 + 999999));
	assert_true(lapic_poll_timer(&apic, t0 + 1000000));
	assert_int_equal(lapic_pending_vector(&apic), 0xed);
	assert_int_equal(lapic_get_tsc_deadline(&apic), 0); /* cleared on expiry */

	/* A deadline in the past fires at the next poll. */
	lapic_set_tsc_deadline(&apic, 1);
	assert_int_equal(lapic_next_deadline_ns(&apic), env.ns);
	lapic_set_tsc_deadline(&apic, 0); /* disarm */
	assert_int_equal(lapic_next_deadline_ns(&apic), UINT64_MAX);

	/* A huge deadline saturates instead of overflowing. */
	lapic_set_tsc_deadline(&apic, UINT64_MAX);
	assert_true(lapic_next_deadline_ns(&apic) > t0 + 1000000000ULL);
	/* Leaving TSC-deadline mode disarms and clears the MSR. */
	lapic_reg_write(&apic, LAPIC_LVT_TIMER, 0xed);
	assert_int_equal(lapic_next_deadline_ns(&apic), UINT64_MAX);
	assert_int_equal(lapic_get_tsc_deadline(&apic), 0);
}

static void test_extint_and_apic_base(void **state)
{
	(void)state;
	enable();
	assert_true(lapic_accepts_pic(&apic));
	lapic_reg_write(&apic, LAPIC_LVT_LINT0, 0x10700); /* masked */
	assert_false(lapic_accepts_pic(&apic));
	lapic_reg_write(&apic, LAPIC_LVT_LINT0, 0x00400); /* NMI */
	assert_false(lapic_accepts_pic(&apic));
	lapic_reg_write(&apic, LAPIC_LVT_LINT0, 0x00700);
	assert_true(lapic_accepts_pic(&apic));
	lapic_reg_write(&apic, LAPIC_LVT_LINT0, 0x10700);

	assert_int_equal(lapic_set_base(&apic, 0xfee00000 | LAPIC_BASE_X2APIC | LAPIC_BASE_ENABLE),
			 -EINVAL);
	assert_int_equal(lapic_set_base(&apic, 0xfee00001), -EINVAL);
	assert_int_equal(lapic_set_base(&apic, 0xfee00000), 0); /* globally disabled */
	assert_true(lapic_accepts_pic(&apic));
	assert_false(lapic_hw_enabled(&apic));
	lapic_set_irq(&apic, 0x40, false);
	assert_int_equal(lapic_pending_vector(&apic), -1);
	assert_int_equal(lapic_get_base(&apic), 0xfee00100); /* BSP flag kept */
	assert_int_equal(lapic_set_base(&apic, 0xfed00800), 0); /* relocated and enabled */
	assert_int_equal(lapic_mmio_base(&apic), 0xfed00000);
}

static void test_ipis(void **state)
{
	(void)state;
	enable();
	lapic_reg_write(&apic, LAPIC_ICR_HI, 0x01000000);
	lapic_reg_write(&apic, LAPIC_ICR_LO, 0x04500); /* INIT, assert */
	assert_int_equal(env.ipis, 1);
	assert_int_equal(env.ipi.mode, LAPIC_DM_INIT);
	assert_int_equal(env.ipi.dest, 1);
	lapic_reg_write(&apic, LAPIC_ICR_LO, 0x08500); /* INIT level de-assert: no-op */
	assert_int_equal(env.ipis, 1);
	lapic_reg_write(&apic, LAPIC_ICR_LO, 0x0069a); /* SIPI, vector 0x9a */
	assert_int_equal(env.ipi.mode, LAPIC_DM_STARTUP);
	assert_int_equal(env.ipi.vector, 0x9a);
	lapic_reg_write(&apic, LAPIC_ICR_LO, 0xc0000 | 0x00f0); /* all but self, fixed */
	assert_int_equal(env.ipi.shorthand, 3);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ICR_LO) & 0x1000, 0); /* idle */

	/* Without a sender callback, self IPIs still work. */
	struct lapic solo;
	lapic_init(&solo, 0, &clk, NULL);
	lapic_reg_write(&solo, LAPIC_SVR, 0x100);
	lapic_reg_write(&solo, LAPIC_ICR_LO, 0x40000 | 0x90); /* self */
	assert_int_equal(lapic_pending_vector(&solo), 0x90);
	lapic_reg_write(&solo, LAPIC_ICR_LO, 0x00400); /* NMI to dest 0 = self */
	lapic_reg_write(&solo, LAPIC_ICR_LO, 0x00500 | 0x4000);
	lapic_reg_write(&solo, LAPIC_ICR_LO, 0x00612);
	uint8_t sipi = 0;
	assert_int_equal(lapic_take_events(&solo, &sipi), LAPIC_EV_NMI | LAPIC_EV_INIT | LAPIC_EV_SIPI);
	assert_int_equal(sipi, 0x12);
	assert_int_equal(lapic_take_events(&solo, NULL), 0);
}

static void test_destination_matching(void **state)
{
	(void)state;
	lapic_reg_write(&apic, LAPIC_ID, 0x05000000);
	assert_true(lapic_match_dest(&apic, 5, false));
	assert_false(lapic_match_dest(&apic, 0, false));
	assert_true(lapic_match_dest(&apic, 0xff, false));
	lapic_reg_write(&apic, LAPIC_LDR, 0x02000000); /* flat */
	assert_true(lapic_match_dest(&apic, 0x03, true));
	assert_false(lapic_match_dest(&apic, 0x01, true));
	lapic_reg_write(&apic, LAPIC_DFR, 0x0fffffff); /* cluster */
	lapic_reg_write(&apic, LAPIC_LDR, 0x21000000);
	assert_true(lapic_match_dest(&apic, 0x21, true));
	assert_true(lapic_match_dest(&apic, 0x23, true));
	assert_false(lapic_match_dest(&apic, 0x31, true));
	assert_false(lapic_match_dest(&apic, 0x22, true));
}

static void test_mmio_decoding(void **state)
{
	(void)state;
	uint8_t b[8];
	memset(b, 0xaa, sizeof(b));
	lapic_mmio_read(&apic, 0x30, b, 4);
	assert_int_equal(b[0] | b[1] << 8 | b[2] << 16, 0x50014);
	lapic_mmio_read(&apic, 0x32, b, 1);
	assert_int_equal(b[0], 0x05);
	lapic_mmio_read(&apic, 0x32, b, 2);
	assert_int_equal(b[0], 0x05);
	memset(b, 0xaa, sizeof(b));
	lapic_mmio_read(&apic, 0x31, b, 4); /* crosses the register: reads 0 */
	assert_int_equal(b[0] | b[1] | b[2] | b[3], 0);
	lapic_mmio_read(&apic, 0x30, b, 8);
	assert_int_equal(b[0] | b[7], 0);
	lapic_mmio_read(&apic, 0x34, b, 4); /* the unused tail of a slot */
	assert_int_equal(b[0], 0);
	lapic_mmio_read(&apic, 0x1000, b, 4);
	assert_int_equal(b[0], 0);

	uint8_t w[4] = {0x80, 0, 0, 0};
	lapic_mmio_write(&apic, 0x80, w, 2); /* not 4 bytes: ignored */
	lapic_mmio_write(&apic, 0x81, w, 4); /* unaligned: ignored */
	lapic_mmio_write(&apic, 0x1080, w, 4);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TPR), 0);
	lapic_mmio_write(&apic, 0x80, w, 4);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_TPR), 0x80);

	lapic_mmio_write(&apic, 0x3f0, w, 4); /* unimplemented register */
	lapic_reg_write(&apic, LAPIC_ESR, 0);
	assert_int_equal(lapic_reg_read(&apic, LAPIC_ESR), LAPIC_ESR_ILLEGAL_REGISTER);
	lapic_reg_write(&apic, LAPIC_IRR, 0xffffffff); /* read-only */
	assert_int_equal(lapic_reg_read(&apic, LAPIC_IRR), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_reset_state, setup),
		cmocka_unit_test_setup(test_software_disable_drops_fixed, setup),
		cmocka_unit_test_setup(test_tpr_ppr_masking, setup),
		cmocka_unit_test_setup(test_eoi_ordering, setup),
		cmocka_unit_test_setup(test_level_eoi_broadcast, setup),
		cmocka_unit_test_setup(test_illegal_vectors_and_esr, setup),
		cmocka_unit_test_setup(test_timer_oneshot, setup),
		cmocka_unit_test_setup(test_timer_periodic, setup),
		cmocka_unit_test_setup(test_timer_tsc_deadline, setup),
		cmocka_unit_test_setup(test_extint_and_apic_base, setup),
		cmocka_unit_test_setup(test_ipis, setup),
		cmocka_unit_test_setup(test_destination_matching, setup),
		cmocka_unit_test_setup(test_mmio_decoding, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
