/* The soft engine's interrupt controllers: what KVM's in-kernel irqchip
 * (KVM_CREATE_IRQCHIP + KVM_CREATE_PIT2) emulates, as software models — one
 * 8259 pair (pic8259.h), one 82093AA IOAPIC (ioapic.h), one 8254 PIT with
 * port 0x61 (pit8254.h) and one xAPIC per vCPU (lapic.h).
 *
 * Routing (KVM's default GSI routing as QEMU programs it, which matches the
 * MADT shrike builds — ISA IRQ 0 overridden to GSI 2):
 *   GSI 0        → PIC IRQ 0 and IOAPIC pin 2
 *   GSI 1, 3-15  → PIC IRQ n and IOAPIC pin n
 *   GSI 2        → IOAPIC pin 2 only (PIC line 2 is the cascade)
 *   GSI 16-23    → IOAPIC pin n only
 *   PIT OUT0     → a rising edge on PIC IRQ 0 and IOAPIC pin 2 per period
 *   IOAPIC / MSI / IPI messages → the LAPICs whose destination matches
 *     (physical, logical flat or cluster, broadcast 0xFF, shorthands);
 *     lowest-priority mode picks the matching LAPIC with the lowest PPR.
 *   PIC INTR     → any vCPU whose LAPIC accepts ExtINT (LINT0 ExtINT
 *     unmasked, or APIC globally disabled); such a vCPU acks the PIC.
 * MSI (Intel SDM vol. 3A §11.11): address 0xFEExxxxx, destination ID bits
 * 19:12, redirection hint bit 3, destination mode bit 2; data vector bits
 * 7:0, delivery mode bits 10:8, trigger mode bit 15.
 *
 * The engine routes, before the VM's buses, as KVM does in its kernel:
 * port I/O at 0x20-0x21, 0xA0-0xA1, 0x4D0-0x4D1, 0x40-0x43, 0x61
 * (irqchip_pio_*), MMIO to the IOAPIC window and to the accessing vCPU's own
 * LAPIC page (irqchip_mmio_*), and RDMSR/WRMSR of IA32_APIC_BASE and
 * IA32_TSC_DEADLINE (irqchip_msr_*). Port accesses other than one byte
 * read 0 and are ignored (as KVM's PIC does).
 *
 * Time: every model reads the one clock given at init. The engine calls
 * irqchip_poll_timers often enough while the guest runs (at least when
 * now >= irqchip_next_event_ns) and, before halting a vCPU, sleeps no
 * longer than irqchip_next_event_ns(cpu). A register write can move the
 * next event earlier; a vCPU that writes it is not halted, and other vCPUs
 * only need the PIT (owned by whoever programs it), so no kick is sent then.
 *
 * Threading: one mutex (`lock`) guards every model in the chip; all
 * irqchip_* functions take it, so any thread (vCPU threads, the event loop,
 * I/O workers raising lines) may call them. The kick callback is called
 * after the lock is released, once per vCPU that got a new interrupt or
 * event (NMI/INIT/SIPI) from any source, so the engine can wake a halted
 * vCPU; it may call back into the irqchip. The struct must not move after
 * soft_irqchip_init (the LAPICs point at its clock). */
#ifndef SHRIKE_DEVICES_SOFT_IRQCHIP_H
#define SHRIKE_DEVICES_SOFT_IRQCHIP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/ioapic.h"
#include "devices/lapic.h"
#include "devices/pic8259.h"
#include "devices/pit8254.h"
#include "vm/bus.h"
#include "vm/irq.h"

#define IRQCHIP_MAX_CPUS 255 /* xAPIC IDs 0-254; 0xFF is broadcast */
#define IRQCHIP_GSIS IOAPIC_PINS

struct soft_irqchip_config {
	unsigned ncpus;                /* 1..IRQCHIP_MAX_CPUS */
	struct lapic_clock clock;      /* now_ns required; tsc optional */
	void (*kick)(void *opaque, unsigned cpu); /* may be NULL */
	void *kick_opaque;
};

struct soft_irqchip {
	pthread_mutex_t lock;
	struct pic pic;
	struct ioapic ioapic;
	struct pit pit;
	unsigned ncpus;
	struct lapic *lapic; /* [ncpus] */
	struct lapic_clock clock;
	void (*kick)(void *opaque, unsigned cpu);
	void *kick_opaque;
	uint64_t kick_mask[(IRQCHIP_MAX_CPUS + 63) / 64]; /* vCPUs to kick on unlock */
	uint32_t gsi_level; /* levels driven through irqchip_set_level */
};

/* -EINVAL for a bad config, -ENOMEM. */
int soft_irqchip_init(struct soft_irqchip *chip, const struct soft_irqchip_config *cfg);
void soft_irqchip_destroy(struct soft_irqchip *chip);

/* Register the port ranges on pio and the IOAPIC window on mmio (either may
 * be NULL). LAPIC pages are per-vCPU and never registered on a bus. */
int soft_irqchip_attach(struct soft_irqchip *chip, struct bus *pio, struct bus *mmio);

/* The interrupt API for devices (vm/irq.h) backed by this chip. */
struct irq_ctl soft_irqchip_irq_ctl(struct soft_irqchip *chip);

/* Device interrupt lines. -EINVAL for gsi >= 24. */
int irqchip_set_level(struct soft_irqchip *chip, uint32_t gsi, int level);
/* -EINVAL for an address outside 0xFEE00000-0xFEEFFFFF (dropped). */
int irqchip_msi(struct soft_irqchip *chip, uint64_t addr, uint32_t data);

/* The vector vCPU cpu should take next if its RFLAGS.IF allows, or -1.
 * irqchip_ack performs the acknowledge (LAPIC IRR→ISR, or the PIC's INTA
 * cycle for ExtINT) and returns the vector to deliver, or -1 if the request
 * went away. */
int irqchip_pending(struct soft_irqchip *chip, unsigned cpu);
int irqchip_ack(struct soft_irqchip *chip, unsigned cpu);
/* NMI/INIT/SIPI for cpu (LAPIC_EV_*), cleared by the call. After INIT the
 * engine resets the vCPU and calls irqchip_lapic_reset. */
unsigned irqchip_take_events(struct soft_irqchip *chip, unsigned cpu, uint8_t *sipi_vector);
void irqchip_lapic_reset(struct soft_irqchip *chip, unsigned cpu);

/* Timers: deliver whatever expired by now_ns; the earliest time anything
 * relevant to cpu expires (UINT64_MAX for never). */
void irqchip_poll_timers(struct soft_irqchip *chip, uint64_t now_ns);
uint64_t irqchip_next_event_ns(struct soft_irqchip *chip, unsigned cpu);

/* Port I/O. Returns false (and touches nothing) for ports the chip does not
 * own, so the engine falls through to the VM's bus. */
bool irqchip_pio_read(struct soft_irqchip *chip, uint16_t port, uint8_t *data, unsigned size);
bool irqchip_pio_write(struct soft_irqchip *chip, uint16_t port, const uint8_t *data,
		       unsigned size);

/* MMIO from vCPU cpu: its LAPIC page (when its APIC is enabled) or the
 * IOAPIC window. false if the access (all of it) is not the chip's. */
bool irqchip_mmio_read(struct soft_irqchip *chip, unsigned cpu, uint64_t gpa, uint8_t *data,
		       unsigned size);
bool irqchip_mmio_write(struct soft_irqchip *chip, unsigned cpu, uint64_t gpa,
			const uint8_t *data, unsigned size);

/* Locked access to one vCPU's LAPIC registers by page offset. */
void irqchip_lapic_mmio_read(struct soft_irqchip *chip, unsigned cpu, uint64_t offset,
			     uint8_t *data, unsigned size);
void irqchip_lapic_mmio_write(struct soft_irqchip *chip, unsigned cpu, uint64_t offset,
			      const uint8_t *data, unsigned size);

/* RDMSR/WRMSR of IA32_APIC_BASE (0x1B) and IA32_TSC_DEADLINE (0x6E0).
 * -ENOENT: not an irqchip MSR; -EINVAL: the write must raise #GP. */
int irqchip_msr_read(struct soft_irqchip *chip, unsigned cpu, uint32_t msr, uint64_t *value);
int irqchip_msr_write(struct soft_irqchip *chip, unsigned cpu, uint32_t msr, uint64_t value);

/* Bus callbacks (opaque = the chip), for soft_irqchip_attach or an engine's
 * private bus: offsets are relative to 0x20, 0xA0, 0x4D0, 0x40, 0x61 and
 * 0xFEC00000. */
extern const struct bus_ops irqchip_pic_master_ops, irqchip_pic_slave_ops, irqchip_elcr_ops,
	irqchip_pit_ops, irqchip_sysctl_ops, irqchip_ioapic_ops;

#endif
