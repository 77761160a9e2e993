/* ACPI fixed-hardware power-management registers (ACPI 6.4 §4.8.3,
 * "PM1 Event Grouping" §4.8.3.1, "PM1 Control Grouping" §4.8.3.2,
 * "Power Management Timer" §4.8.3.3; sleeping §7.4.2 / §16.1), at the
 * ports the FADT announces (arch/x86/acpi.h):
 *   PM1a_EVT  PORT_ACPI_PM1A_EVT, 4 bytes: PM1_STS (2, write-1-to-clear)
 *             then PM1_EN (2)
 *   PM1a_CNT  PORT_ACPI_PM1A_CNT, 2 bytes: SCI_EN always reads 1 (there is
 *             no SMI handshake, the FADT's SMI_CMD is 0); SLP_EN with
 *             SLP_TYP 5 (the DSDT's \_S5) powers the VM off
 *   PM_TMR    PORT_ACPI_PM_TMR, 4 bytes, read-only: a 24-bit counter at
 *             3.579545 MHz from CLOCK_MONOTONIC since acpi_pm_init()
 * Any access of size 1/2/4/8 at any offset inside a block is composed
 * byte by byte; bytes beyond a block read as 0xff and ignore writes.
 *
 * Threads and locking: the VM owns the struct; vCPU threads (port I/O
 * exits) and the event loop (acpi_pm_power_button) call in concurrently.
 * `lock` guards pm1_sts, pm1_en, pm1_cnt, sci_level and off_requested.
 * `power`, `irq` and `start` are set by acpi_pm_init() before any vCPU runs
 * and never change, so the timer is read without the lock. The power
 * callback is called after the lock is dropped; irq_set_level() is called
 * with it held so that level changes reach the interrupt controller in
 * order.
 *
 * SCI: asserted (level, IRQ_ACPI_SCI) while any status bit with its enable
 * bit is set — today only the power button can do that; the timer overflow
 * status (TMR_STS) is not generated. */
#ifndef SHRIKE_DEVICES_ACPI_PM_H
#define SHRIKE_DEVICES_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "vm/bus.h"
#include "vm/irq.h"
#include "vm/power.h"

#define ACPI_PM_TIMER_HZ 3579545u
#define ACPI_PM_TIMER_MASK 0xffffffu

/* PM1_STS / PM1_EN bits (Tables 4.16-4.19). */
#define ACPI_PM1_TMR (1u << 0)
#define ACPI_PM1_BM_STS (1u << 4)
#define ACPI_PM1_GBL (1u << 5)
#define ACPI_PM1_PWRBTN (1u << 8)
#define ACPI_PM1_SLPBTN (1u << 9)
#define ACPI_PM1_RTC (1u << 10)
#define ACPI_PM1_PCIEXP_WAKE (1u << 14)
#define ACPI_PM1_WAK_STS (1u << 15)

/* PM1_CNT bits (Table 4.20). */
#define ACPI_PM1_CNT_SCI_EN (1u << 0)
#define ACPI_PM1_CNT_BM_RLD (1u << 1)
#define ACPI_PM1_CNT_GBL_RLS (1u << 2)
#define ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM1_CNT_SLP_TYP_MASK (7u << ACPI_PM1_CNT_SLP_TYP_SHIFT)
#define ACPI_PM1_CNT_SLP_EN (1u << 13)

/* The SLP_TYP value of \_S5 in the DSDT. */
#define ACPI_PM_SLP_TYP_S5 5

struct acpi_pm {
	pthread_mutex_t lock;
	uint16_t pm1_sts;   /* guarded by lock */
	uint16_t pm1_en;    /* guarded by lock */
	uint16_t pm1_cnt;   /* guarded by lock; stored bits only (BM_RLD, SLP_TYP) */
	bool sci_level;     /* guarded by lock; last level sent */
	bool off_requested; /* guarded by lock; POWER_OFF is sent once */
	struct timespec start;          /* immutable after init */
	const struct power_ctl *power;  /* immutable after init */
	const struct irq_ctl *irq;      /* immutable after init */
};

/* power and irq may be NULL (then requests and interrupts are dropped). */
void acpi_pm_init(struct acpi_pm *pm, const struct power_ctl *power, const struct irq_ctl *irq);
void acpi_pm_destroy(struct acpi_pm *pm);

/* Registers the three register blocks on the port-I/O bus; returns 0 or the
 * bus_register() error. */
int acpi_pm_attach(struct acpi_pm *pm, struct bus *pio);

/* The current 24-bit timer value. */
uint32_t acpi_pm_timer_read(const struct acpi_pm *pm);

/* A fixed-feature power button press: sets PWRBTN_STS, raising the SCI if
 * the guest enabled PWRBTN_EN (an ACPI guest then shuts down cleanly). */
void acpi_pm_power_button(struct acpi_pm *pm);

#endif
