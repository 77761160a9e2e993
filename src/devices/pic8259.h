/* Intel 8259A programmable interrupt controller, the PC/AT master/slave
 * pair (Intel 8259A data sheet, order 231468: "Interrupt Sequence",
 * "Programming the 8259A" — ICW1-ICW4, OCW1-OCW3 — and "Edge and Level
 * Triggered Modes"), plus the PIIX/ICH Edge/Level Control Registers at ports
 * 0x4D0/0x4D1 (Intel 82371AB PIIX4 data sheet §4.1.11, ELCR1/ELCR2).
 *
 * Ports: master 0x20/0x21, slave 0xA0/0xA1, ELCR 0x4D0 (master), 0x4D1
 * (slave). The slave's output is wired to master input 2 (the PC cascade;
 * ICW3 values are stored but the wiring is fixed, as on every PC).
 *
 * Supported: ICW1-4 in any order the state machine accepts (any byte is a
 * valid ICW, so a hostile sequence only yields odd but bounded state), OCW1
 * masks, OCW2 specific/non-specific EOI and rotations, OCW3 IRR/ISR read
 * select, poll mode and special mask mode, auto-EOI, special fully nested
 * mode, edge/level sense per line from the ELCR (ICW1's LTIM bit is
 * ignored, as on PIIX). Not modelled: 8080 mode (vectors are always
 * 8086-style), buffered mode.
 *
 * Invariants: every IRR/ISR/IMR is an 8-bit mask; the IRR bit of a
 * level-sensitive line equals the line level; the master's IRR bit 2 equals
 * "the slave has a deliverable request" after every operation.
 *
 * Owner/lock: none inside. Inside shrike the soft_irqchip mutex serializes
 * every call (soft_irqchip.h); standalone users serialize calls themselves. */
#ifndef SHRIKE_DEVICES_PIC8259_H
#define SHRIKE_DEVICES_PIC8259_H

#include <stdbool.h>
#include <stdint.h>

#define PIC_MASTER_PORT 0x20
#define PIC_SLAVE_PORT  0xa0
#define PIC_ELCR_PORT   0x4d0
#define PIC_CASCADE_IRQ 2

struct pic_chip {
	uint8_t irr;       /* interrupt request register */
	uint8_t isr;       /* in-service register */
	uint8_t imr;       /* interrupt mask register (OCW1) */
	uint8_t pin;       /* current input line levels */
	uint8_t elcr;      /* 1 = level-sensitive line */
	uint8_t elcr_mask; /* which ELCR bits exist on this chip */
	uint8_t vector_base;   /* ICW2 & 0xf8 */
	uint8_t icw3;
	uint8_t highest;       /* rotation: the line that has the highest priority */
	uint8_t init_state;    /* 0 = operational, 1-3 = expecting ICW2-ICW4 */
	bool icw4_needed;
	bool single;
	bool auto_eoi;
	bool rotate_on_aeoi;
	bool special_mask;
	bool special_fully_nested;
	bool poll;
	bool read_isr;
	bool is_master;
};

struct pic {
	struct pic_chip chip[2]; /* [0] master, [1] slave */
};

/* Power-on state: both chips uninitialized with all lines unmasked edge. */
void pic_init(struct pic *pic);

/* Drive ISA IRQ line irq (0-15) to level (nonzero = asserted). Line 2 is
 * the cascade input and is ignored here. Out-of-range irq is ignored. */
void pic_set_irq(struct pic *pic, unsigned irq, int level);

/* The master's INTR output pin: a request is deliverable to the CPU. */
bool pic_intr(const struct pic *pic);

/* The vector pic_ack would return now, or -1 when INTR is low. No side effects. */
int pic_pending_vector(const struct pic *pic);

/* The INTA cycle: acknowledges the highest-priority request (cascading to
 * the slave for line 2) and returns its vector. Without a request it returns
 * the spurious vector of line 7 of the chip that was asked, as the
 * hardware does. */
int pic_ack(struct pic *pic);

/* Port I/O, one byte. port is the absolute port number: 0x20, 0x21, 0xa0,
 * 0xa1, 0x4d0, 0x4d1. Other ports read 0xff and ignore writes. */
uint8_t pic_read(struct pic *pic, uint16_t port);
void pic_write(struct pic *pic, uint16_t port, uint8_t value);

#endif
