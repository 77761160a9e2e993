/* MC146818 CMOS real-time clock (Motorola MC146818A data sheet: register
 * map, status registers A-D, interrupts). Time registers read the host's
 * current UTC time, in BCD or binary (register B's DM bit), 24-hour mode;
 * writes to them are ignored: guest time follows the host. The other
 * bytes of the 128-byte CMOS are plain storage.
 *
 * Interrupts: once per second the update-ended flag (UF) is set, with the
 * alarm flag (AF) when the time matches the alarm bytes (0xC0-0xFF = any);
 * the periodic flag (PF) at the rate of register A's RS bits (at most
 * RTC_MAX_PERIODIC_HZ here, so that a guest cannot make the host spin).
 * IRQF = UF·UIE + AF·AIE + PF·PIE, and IRQ 8 stays asserted while IRQF is
 * set, until the guest reads register C, which clears all flags. A timer
 * thread, started the first time the guest enables an interrupt, sets the
 * flags on time; with no interrupt enabled, a read of register C brings
 * them up to date. Linux's hwclock waits for the update interrupt.
 *
 * Owner/lock: `lock`, taken by the vCPU threads' port I/O and the timer
 * thread; IRQ 8 is raised and lowered with it held. */
#ifndef SHRIKE_DEVICES_RTC_H
#define SHRIKE_DEVICES_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/irq.h"

#define RTC_MAX_PERIODIC_HZ 1024

struct rtc {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* to the timer thread: registers A/B changed, or stop */
	pthread_t thread;
	bool thread_started, thread_failed, stop;
	bool threadless; /* unit tests call rtc_advance() themselves */
	const struct irq_ctl *irq;
	bool irq_high;   /* IRQ 8 asserted (register C's IRQF) */
	uint64_t last_ns; /* the flags in register C are up to date until this time */
	uint8_t index;
	uint8_t cmos[128];
	uint64_t (*now_ns)(void); /* injectable clock: CLOCK_REALTIME in ns by default */
};

void rtc_init(struct rtc *rtc, const struct irq_ctl *irq);
/* Ends the timer thread; call before the engine that takes IRQ 8 goes. */
void rtc_stop(struct rtc *rtc);
void rtc_destroy(struct rtc *rtc);
int rtc_attach(struct rtc *rtc, struct bus *pio);

/* Sets the flags of the events up to now_ns, raises IRQ 8 for an enabled
 * one, and returns the time of the next event that can raise it
 * (UINT64_MAX: none is enabled). The timer thread's step. */
uint64_t rtc_advance(struct rtc *rtc, uint64_t now_ns);

extern const struct bus_ops rtc_ops;

#endif
