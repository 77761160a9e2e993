/* Intel 82093AA I/O APIC (82093AA data sheet, order 290566: §3.0 register
 * description — IOREGSEL at offset 0x00, IOWIN at 0x10; IOAPICID 0x00,
 * IOAPICVER 0x01, IOAPICARB 0x02, IOREDTBL[0-23] at 0x10-0x3F — and §3.2.4
 * redirection table entry format), version 0x11 with 24 pins, as KVM's
 * in-kernel IOAPIC presents it, at MMIO base 0xFEC00000.
 *
 * Pins: an edge-triggered pin delivers one message per rising edge while
 * unmasked (an edge that arrives masked is lost, as on the 82093AA). A
 * level-triggered pin delivers while its line is asserted, unmasked and its
 * Remote IRR is clear; delivery sets Remote IRR, and an EOI for the entry's
 * vector from a local APIC (ioapic_eoi) clears it and re-delivers if the
 * line is still asserted. Lines carry logical "asserted" levels: polarity
 * (bit 13) is stored but not applied, as in KVM, because shrike's devices
 * signal assertion rather than electrical levels. Delivery status (bit 12)
 * always reads 0: messages are delivered synchronously.
 *
 * MMIO accesses: IOREGSEL takes the low byte of any write; IOWIN reads and
 * writes the low 1, 2 or 4 bytes of the selected 32-bit register (8-byte
 * accesses use the low 32 bits); anything else reads 0 and ignores writes.
 * Unimplemented register indexes read 0.
 *
 * Owner/lock: none inside. Inside shrike the soft_irqchip mutex serializes
 * every call, including the re-entry deliver → LAPIC EOI → ioapic_eoi
 * (soft_irqchip.h). The deliver callback runs synchronously inside
 * ioapic_set_irq, ioapic_eoi and register writes. */
#ifndef SHRIKE_DEVICES_IOAPIC_H
#define SHRIKE_DEVICES_IOAPIC_H

#include <stdbool.h>
#include <stdint.h>

#define IOAPIC_PINS      24
#define IOAPIC_VERSION   0x11
#define IOAPIC_MMIO_SIZE 0x1000
#define IOAPIC_REGSEL    0x00
#define IOAPIC_WINDOW    0x10

/* Register indexes (through IOREGSEL). */
#define IOAPIC_REG_ID    0x00
#define IOAPIC_REG_VER   0x01
#define IOAPIC_REG_ARB   0x02
#define IOAPIC_REG_REDIR 0x10 /* low dword of entry n at 0x10 + 2n, high at 0x11 + 2n */

/* Redirection entry fields. */
#define IOAPIC_RTE_VECTOR    0xffULL
#define IOAPIC_RTE_MODE_SHIFT 8
#define IOAPIC_RTE_LOGICAL   (1ULL << 11)
#define IOAPIC_RTE_STATUS    (1ULL << 12)
#define IOAPIC_RTE_POLARITY  (1ULL << 13)
#define IOAPIC_RTE_REMOTE_IRR (1ULL << 14)
#define IOAPIC_RTE_LEVEL     (1ULL << 15)
#define IOAPIC_RTE_MASK      (1ULL << 16)
#define IOAPIC_RTE_DEST_SHIFT 56

typedef void (*ioapic_deliver_fn)(void *opaque, uint8_t dest, bool logical, uint8_t mode,
				  uint8_t vector, bool level);

struct ioapic {
	uint32_t id;      /* bits 27:24 as written */
	uint8_t regsel;
	uint32_t line;    /* asserted input lines, one bit per pin */
	uint64_t redir[IOAPIC_PINS];
	ioapic_deliver_fn deliver;
	void *opaque;
};

/* Reset state: ID 0, every entry masked. deliver must not be NULL. */
void ioapic_init(struct ioapic *io, ioapic_deliver_fn deliver, void *opaque);

/* Drive input pin (0-23) to level (nonzero = asserted); others ignored. */
void ioapic_set_irq(struct ioapic *io, unsigned pin, int level);

/* EOI broadcast from a local APIC for a level-triggered vector. */
void ioapic_eoi(struct ioapic *io, uint8_t vector);

/* Indirect register access (IOREGSEL index); used by the MMIO path. */
uint32_t ioapic_reg_read(const struct ioapic *io, uint8_t index);
void ioapic_reg_write(struct ioapic *io, uint8_t index, uint32_t value);

/* MMIO, offset within the 4 KiB window, size 1/2/4/8. */
void ioapic_mmio_read(struct ioapic *io, uint64_t offset, uint8_t *data, unsigned size);
void ioapic_mmio_write(struct ioapic *io, uint64_t offset, const uint8_t *data, unsigned size);

#endif
