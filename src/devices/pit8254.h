/* Intel 8254 programmable interval timer (Intel 82C54 data sheet, order
 * 231244: "Control Word Format", "Read-Back Command", "Counter Latch
 * Command", "Mode Definitions" 0-5), and the PC/AT system control port B at
 * 0x61 (bit 0 = timer 2 gate, bit 1 = speaker data enable, bit 4 = refresh
 * toggle, bit 5 = timer 2 output; IBM PC/AT Technical Reference, "System
 * Timers"; PIIX4 data sheet §4.1.17 NMI Status and Control Register).
 *
 * Ports 0x40-0x42 counters 0-2, 0x43 control word; clock 1.193182 MHz.
 * Counter 0 drives IRQ 0 (the caller turns rising edges of OUT0 into an
 * edge on PIC IRQ 0 and IOAPIC pin 2); counter 2's gate is port 0x61 bit 0.
 *
 * The counters are not simulated tick by tick: the count and OUT of a
 * channel are pure functions of the time elapsed since the count was
 * loaded, read from the injected clock, so any amount of guest time costs
 * O(1) work. Approximations (harmless to Linux and documented so tests can
 * rely on them): a written count takes effect at once (no "next CLK"
 * delay); a gate going low does not suspend modes 0 and 4; in modes 2 and 3
 * a low gate forces OUT high and a rising gate reloads the count; in modes
 * 1 and 5 a rising gate retriggers, and loading a count triggers too;
 * periodic IRQ 0 edges come at most every PIT_MIN_IRQ_PERIOD_TICKS.
 *
 * Hostile input: a count of 0 means 65536 (binary) or 10000 (BCD); BCD
 * digits above 9 count as 9; modes 6 and 7 alias 2 and 3; a clock that goes
 * backwards reads as no time elapsed.
 *
 * Owner/lock: none inside. Inside shrike the soft_irqchip mutex serializes
 * every call (soft_irqchip.h); standalone users serialize calls themselves. */
#ifndef SHRIKE_DEVICES_PIT8254_H
#define SHRIKE_DEVICES_PIT8254_H

#include <stdbool.h>
#include <stdint.h>

#define PIT_PORT_BASE   0x40 /* counters 0x40-0x42, control word 0x43 */
#define PIT_PORT_COUNT  4
#define PIT_PORT_SYSCTL 0x61
#define PIT_FREQ_HZ     1193182ULL
/* Shortest period of IRQ 0 edges in modes 2 and 3: 200 us, KVM's
 * min_timer_period_us. Reads of the count are not affected. */
#define PIT_MIN_IRQ_PERIOD_TICKS 239u

struct pit_channel {
	uint32_t count;      /* reload value in clocks, 1..65536 */
	uint16_t latch;      /* latched count (raw register format) */
	uint8_t mode;        /* 0-5 */
	uint8_t rw;          /* 1 = LSB, 2 = MSB, 3 = LSB then MSB */
	uint8_t status;      /* latched status byte */
	uint8_t write_lsb;   /* first byte of a two-byte count */
	bool bcd;
	bool loaded;         /* a count was written since the control word */
	bool gate;
	bool write_high;     /* next count byte written is the MSB */
	bool read_high;      /* next live count byte read is the MSB */
	bool latch_high;     /* next latched byte read is the MSB */
	uint8_t latch_bytes; /* latched count bytes left to read, 0-2 */
	bool status_latched;
	uint64_t load_ns;    /* when counting (re)started */
	uint64_t next_edge;  /* counter 0: index of the next OUT rising edge, from 1 */
};

struct pit {
	struct pit_channel ch[3];
	uint8_t sysctl; /* port 0x61 bits 0-3 as written */
	uint64_t (*now_ns)(void *opaque);
	void *clock_opaque;
};

/* now_ns: monotonic guest time in nanoseconds (must not be NULL). */
void pit_init(struct pit *pit, uint64_t (*now_ns)(void *opaque), void *opaque);

/* Port I/O, one byte; port is the offset 0-3 from 0x40. */
uint8_t pit_read(struct pit *pit, unsigned port);
void pit_write(struct pit *pit, unsigned port, uint8_t value);

/* Port 0x61. */
uint8_t pit_sysctl_read(struct pit *pit);
void pit_sysctl_write(struct pit *pit, uint8_t value);

/* OUT of channel ch (0-2) at time now_ns; false for a bad channel. */
bool pit_out(const struct pit *pit, unsigned ch, uint64_t now_ns);

/* Number of rising edges of OUT0 (the IRQ 0 line) that happened after the
 * previous call and no later than now_ns. Each edge is reported once. */
uint64_t pit_poll(struct pit *pit, uint64_t now_ns);

/* Time of the next rising edge of OUT0, or UINT64_MAX if none is coming. */
uint64_t pit_next_event_ns(const struct pit *pit);

#endif
