/* Local APIC in xAPIC mode (Intel SDM vol. 3A, chapter 11 "Advanced
 * Programmable Interrupt Controller (APIC)": §11.4.4 IA32_APIC_BASE,
 * Table 11-1 register map, §11.4.7 software enable (SVR), §11.5.1 LVT,
 * §11.5.3 ESR, §11.5.4 APIC timer and §11.5.4.1 TSC-deadline mode, §11.6.1
 * ICR, §11.6.2 destination modes (physical, logical flat and cluster),
 * §11.8.3 IRR/ISR/TMR, §11.8.3.1 TPR/PPR, §11.8.5 EOI). Version 0x50014:
 * six LVT entries (timer, thermal, performance, LINT0, LINT1, error), no
 * directed-EOI. x2APIC is not implemented (IA32_APIC_BASE bit 10 is
 * refused).
 *
 * MMIO (offset within the 4 KiB page at IA32_APIC_BASE): only the first four
 * bytes of each 16-byte register slot decode. Reads of 1, 2 or 4 bytes that
 * stay inside those four bytes return register bytes; writes must be 4
 * bytes and 16-byte aligned; any other access reads 0 / is ignored.
 *
 * Timer: the APIC bus clock is 1 GHz (KVM's choice), so one count is
 * `divide` nanoseconds. Periodic periods are at least LAPIC_MIN_PERIOD_NS
 * (KVM's min_timer_period_us) so a hostile guest cannot make the host spin.
 * Expiry is only noticed by lapic_poll_timer; a periodic timer that missed
 * several periods raises one interrupt (coalescing) and realigns to its
 * original phase. TSC-deadline mode converts the deadline to the clock's
 * nanoseconds with the TSC frequency given in struct lapic_clock.
 *
 * Interrupt sources call lapic_deliver (messages from the IOAPIC, MSIs and
 * IPIs) or lapic_set_irq. Fixed interrupts with vectors 0-15 are refused
 * with ESR "receive illegal vector" (bit 6); an ICR send with such a vector
 * sets "send illegal vector" (bit 5). While software-disabled the APIC drops
 * fixed interrupts, as KVM does. NMI, INIT and SIPI become pending events
 * for the vCPU (lapic_take_events). ExtINT messages are dropped (like KVM);
 * the 8259 reaches the CPU through LINT0 only (lapic_accepts_pic).
 *
 * Reset (as KVM does it): ID = cpu index, SVR 0xFF (software-disabled),
 * every LVT masked except the BSP's LINT0, which is ExtINT unmasked (the
 * virtual-wire mode firmware leaves behind), so the 8259 reaches the BSP
 * until the guest programs its APIC.
 *
 * Owner/lock: none inside. The LAPIC is touched by its own vCPU thread and
 * by IPI/MSI/IOAPIC senders on other threads; inside shrike the
 * soft_irqchip mutex serializes every call (soft_irqchip.h). Callbacks run
 * synchronously with that lock held. */
#ifndef SHRIKE_DEVICES_LAPIC_H
#define SHRIKE_DEVICES_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

#define LAPIC_MMIO_SIZE 0x1000
#define LAPIC_VERSION 0x50014
#define LAPIC_BASE_DEFAULT 0xfee00000ULL
#define LAPIC_MIN_PERIOD_NS 200000ULL
#define MSR_IA32_APIC_BASE 0x1b
#define MSR_IA32_TSC_DEADLINE 0x6e0

/* IA32_APIC_BASE bits. */
#define LAPIC_BASE_BSP    (1ULL << 8)
#define LAPIC_BASE_X2APIC (1ULL << 10)
#define LAPIC_BASE_ENABLE (1ULL << 11)
#define LAPIC_BASE_ADDR_MASK 0x000ffffffffff000ULL

/* Register offsets (SDM Table 11-1). */
enum lapic_reg {
	LAPIC_ID = 0x020,
	LAPIC_VER = 0x030,
	LAPIC_TPR = 0x080,
	LAPIC_APR = 0x090,
	LAPIC_PPR = 0x0a0,
	LAPIC_EOI = 0x0b0,
	LAPIC_RRD = 0x0c0,
	LAPIC_LDR = 0x0d0,
	LAPIC_DFR = 0x0e0,
	LAPIC_SVR = 0x0f0,
	LAPIC_ISR = 0x100,
	LAPIC_TMR = 0x180,
	LAPIC_IRR = 0x200,
	LAPIC_ESR = 0x280,
	LAPIC_ICR_LO = 0x300,
	LAPIC_ICR_HI = 0x310,
	LAPIC_LVT_TIMER = 0x320,
	LAPIC_LVT_THERMAL = 0x330,
	LAPIC_LVT_PERF = 0x340,
	LAPIC_LVT_LINT0 = 0x350,
	LAPIC_LVT_LINT1 = 0x360,
	LAPIC_LVT_ERROR = 0x370,
	LAPIC_TIMER_INITIAL = 0x380,
	LAPIC_TIMER_CURRENT = 0x390,
	LAPIC_TIMER_DIVIDE = 0x3e0,
};

/* Delivery modes (ICR, LVT, IOAPIC redirection entries, MSI data). */
enum lapic_mode {
	LAPIC_DM_FIXED = 0,
	LAPIC_DM_LOWEST = 1,
	LAPIC_DM_SMI = 2,
	LAPIC_DM_NMI = 4,
	LAPIC_DM_INIT = 5,
	LAPIC_DM_STARTUP = 6,
	LAPIC_DM_EXTINT = 7,
};

/* LVT bits. */
#define LAPIC_LVT_MASKED (1u << 16)
#define LAPIC_LVT_LEVEL (1u << 15)
#define LAPIC_TIMER_ONESHOT 0u
#define LAPIC_TIMER_PERIODIC 1u
#define LAPIC_TIMER_TSC_DEADLINE 2u

/* ESR bits (SDM Figure 11-9). */
#define LAPIC_ESR_SEND_ILLEGAL_VECTOR 0x20
#define LAPIC_ESR_RECV_ILLEGAL_VECTOR 0x40
#define LAPIC_ESR_ILLEGAL_REGISTER 0x80

/* Events for the vCPU (lapic_take_events). */
#define LAPIC_EV_NMI  0x1u
#define LAPIC_EV_INIT 0x2u
#define LAPIC_EV_SIPI 0x4u

/* Time as the guest sees it. tsc may be NULL: the TSC is then taken to be
 * now_ns scaled by tsc_hz. tsc_hz must lie in [1 MHz, 10 GHz]. */
struct lapic_clock {
	uint64_t (*now_ns)(void *opaque);
	uint64_t (*tsc)(void *opaque);
	uint64_t tsc_hz;
	void *opaque;
};

/* An interprocessor interrupt as decoded from the ICR. */
struct lapic_ipi {
	uint8_t vector;
	uint8_t mode;      /* enum lapic_mode */
	uint8_t dest;      /* ICR bits 63:56 */
	uint8_t shorthand; /* 0 none, 1 self, 2 all including self, 3 all excluding self */
	bool logical;
	bool assert;       /* level bit: false only for INIT level de-assert */
	bool level_trig;
};

struct lapic;

struct lapic_ops {
	/* EOI of a level-triggered vector (TMR set): tell the IOAPIC. */
	void (*eoi_broadcast)(void *opaque, uint8_t vector);
	/* ICR write. NULL: only IPIs the APIC can send to itself are delivered. */
	void (*send_ipi)(void *opaque, struct lapic *src, const struct lapic_ipi *ipi);
	void *opaque;
};

struct lapic {
	unsigned index; /* vCPU index */
	uint64_t base;  /* IA32_APIC_BASE */
	uint32_t id, tpr, ldr, dfr, svr;
	uint32_t esr, esr_pending;
	uint32_t icr_lo, icr_hi;
	uint32_t lvt[6]; /* timer, thermal, perf, LINT0, LINT1, error */
	uint32_t timer_initial, timer_divide_reg, timer_divide;
	uint32_t irr[8], isr[8], tmr[8];
	/* timer */
	bool timer_armed;
	uint64_t timer_start_ns, timer_period_ns, timer_deadline_ns;
	uint64_t tsc_deadline; /* IA32_TSC_DEADLINE as the guest wrote it */
	/* events for the vCPU */
	unsigned events;
	uint8_t sipi_vector;
	const struct lapic_clock *clock;
	struct lapic_ops ops;
};

/* clock must outlive the LAPIC; index 0 is the BSP. */
void lapic_init(struct lapic *l, unsigned index, const struct lapic_clock *clock,
		const struct lapic_ops *ops);
/* INIT reset (SDM §11.4.7.3): everything but ID and IA32_APIC_BASE. */
void lapic_reset(struct lapic *l);

uint64_t lapic_get_base(const struct lapic *l);
/* WRMSR IA32_APIC_BASE: -EINVAL (the caller raises #GP) for reserved bits
 * or x2APIC enable. Clearing the enable bit resets the APIC. */
int lapic_set_base(struct lapic *l, uint64_t value);
bool lapic_hw_enabled(const struct lapic *l);
bool lapic_sw_enabled(const struct lapic *l);
/* Guest-physical address of the register page. */
uint64_t lapic_mmio_base(const struct lapic *l);

/* Register access. reg is a register offset (enum lapic_reg). */
uint32_t lapic_reg_read(struct lapic *l, uint32_t reg);
void lapic_reg_write(struct lapic *l, uint32_t reg, uint32_t value);
void lapic_mmio_read(struct lapic *l, uint64_t offset, uint8_t *data, unsigned size);
void lapic_mmio_write(struct lapic *l, uint64_t offset, const uint8_t *data, unsigned size);

/* IA32_TSC_DEADLINE (MSR 0x6E0): reads 0 and ignores writes outside
 * TSC-deadline mode; cleared when the timer fires; writing 0 disarms. */
uint64_t lapic_get_tsc_deadline(const struct lapic *l);
void lapic_set_tsc_deadline(struct lapic *l, uint64_t deadline);

/* Accept an interrupt message (IOAPIC, MSI, IPI). level = level-triggered. */
void lapic_deliver(struct lapic *l, uint8_t mode, uint8_t vector, bool level);
/* A fixed interrupt with trigger mode level (TMR) or edge. */
void lapic_set_irq(struct lapic *l, uint8_t vector, bool level);

/* The highest-priority vector in IRR whose class beats PPR, or -1. */
int lapic_pending_vector(struct lapic *l);
/* Interrupt acknowledge: vector moves from IRR to ISR. A vector not in IRR
 * is ignored. */
void lapic_accept(struct lapic *l, int vector);
uint8_t lapic_ppr(const struct lapic *l);

/* Whether the 8259's INTR reaches this CPU directly (ExtINT): the APIC is
 * globally disabled, or LINT0 is unmasked with delivery mode ExtINT. */
bool lapic_accepts_pic(const struct lapic *l);

/* Destination match for a message (SDM §11.6.2). 0xFF is broadcast. */
bool lapic_match_dest(const struct lapic *l, uint8_t dest, bool logical);

/* Pending NMI/INIT/SIPI events (LAPIC_EV_*), cleared by the call; the SIPI
 * vector is stored in *sipi_vector (may be NULL). */
unsigned lapic_take_events(struct lapic *l, uint8_t *sipi_vector);

/* Fire the timer if it expired by now_ns. Returns true if an interrupt was
 * raised. */
bool lapic_poll_timer(struct lapic *l, uint64_t now_ns);
/* When lapic_poll_timer next has work to do, or UINT64_MAX. */
uint64_t lapic_next_deadline_ns(const struct lapic *l);

#endif
