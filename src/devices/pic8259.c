#include "devices/pic8259.h"

#include <string.h>

/* ICW1 (even port, bit 4 set). */
#define ICW1_IC4  0x01
#define ICW1_SNGL 0x02
#define ICW1_BIT  0x10
/* ICW4. */
#define ICW4_AEOI 0x02
#define ICW4_SFNM 0x10
/* OCW3 (even port, bits 4:3 = 01). */
#define OCW3_BIT     0x08
#define OCW3_POLL    0x04
#define OCW3_RR      0x02
#define OCW3_RIS     0x01
#define OCW3_ESMM    0x40
#define OCW3_SMM     0x20
/* OCW2 commands, bits 7:5. */
#define OCW2_ROTATE_AEOI_CLEAR 0x0
#define OCW2_NONSPECIFIC_EOI   0x1
#define OCW2_NOP               0x2
#define OCW2_SPECIFIC_EOI      0x3
#define OCW2_ROTATE_AEOI_SET   0x4
#define OCW2_ROTATE_NS_EOI     0x5
#define OCW2_SET_PRIORITY      0x6
#define OCW2_ROTATE_S_EOI      0x7

#define NO_REQUEST 8 /* "priority" of an empty mask: below every line */

/* Priority of the highest-priority line set in mask, counted from the
 * current highest-priority line: 0 is the best, NO_REQUEST for none. */
static unsigned pic_priority(const struct pic_chip *c, uint8_t mask)
{
	for (unsigned p = 0; p < 8; p++)
		if (mask & (1u << ((p + c->highest) & 7)))
			return p;
	return NO_REQUEST;
}

static unsigned pic_line_of(const struct pic_chip *c, unsigned priority)
{
	return (priority + c->highest) & 7;
}

/* The line this chip would present to its INTA cycle, or -1: the best
 * unmasked request must beat everything in service (fully nested mode). */
static int pic_chip_request(const struct pic_chip *c)
{
	unsigned req = pic_priority(c, c->irr & ~c->imr);
	if (req == NO_REQUEST)
		return -1;
	uint8_t blocking = c->isr;
	if (c->special_mask)
		blocking &= ~c->imr; /* masked levels no longer block others */
	if (c->special_fully_nested && c->is_master)
		blocking &= ~(1u << PIC_CASCADE_IRQ); /* let a higher slave line nest */
	if (req >= pic_priority(c, blocking))
		return -1;
	return (int)pic_line_of(c, req);
}

/* Propagate the slave's output to the master's cascade input. The cascade
 * acts as a level input, so a slave request is never lost between a master
 * acknowledge and the slave's EOI. */
static void pic_update(struct pic *pic)
{
	struct pic_chip *m = &pic->chip[0];
	if (pic_chip_request(&pic->chip[1]) >= 0)
		m->irr |= 1u << PIC_CASCADE_IRQ;
	else
		m->irr &= ~(1u << PIC_CASCADE_IRQ);
}

static void pic_chip_reset(struct pic_chip *c, bool master)
{
	memset(c, 0, sizeof(*c));
	c->is_master = master;
	c->elcr_mask = master ? 0xf8 : 0xde; /* IRQ 0, 1, 2, 8, 13 are edge only */
}

void pic_init(struct pic *pic)
{
	pic_chip_reset(&pic->chip[0], true);
	pic_chip_reset(&pic->chip[1], false);
}

static void pic_chip_set_line(struct pic_chip *c, unsigned line, int level)
{
	uint8_t bit = (uint8_t)(1u << line);
	bool was = c->pin & bit;

	if (level)
		c->pin |= bit;
	else
		c->pin &= ~bit;
	if (c->elcr & bit) {
		c->irr = level ? (c->irr | bit) : (c->irr & ~bit);
	} else if (level && !was) {
		c->irr |= bit; /* rising edge latches the request */
	}
}

void pic_set_irq(struct pic *pic, unsigned irq, int level)
{
	if (irq >= 16 || irq == PIC_CASCADE_IRQ)
		return;
	pic_chip_set_line(&pic->chip[irq >> 3], irq & 7, level);
	pic_update(pic);
}

bool pic_intr(const struct pic *pic)
{
	return pic_chip_request(&pic->chip[0]) >= 0;
}

/* The acknowledge part of the INTA cycle for one chip and line. */
static void pic_chip_intack(struct pic_chip *c, unsigned line)
{
	uint8_t bit = (uint8_t)(1u << line);

	if (!(c->elcr & bit))
		c->irr &= ~bit; /* edge requests are consumed; level ones persist */
	if (c->auto_eoi) {
		if (c->rotate_on_aeoi)
			c->highest = (uint8_t)((line + 1) & 7);
	} else {
		c->isr |= bit;
	}
}

int pic_pending_vector(const struct pic *pic)
{
	const struct pic_chip *m = &pic->chip[0], *s = &pic->chip[1];
	int line = pic_chip_request(m);
	if (line < 0)
		return -1;
	if (line != PIC_CASCADE_IRQ)
		return (m->vector_base + line) & 0xff;
	int sline = pic_chip_request(s);
	return (s->vector_base + (sline >= 0 ? sline : 7)) & 0xff;
}

int pic_ack(struct pic *pic)
{
	struct pic_chip *m = &pic->chip[0], *s = &pic->chip[1];
	int vector;
	int line = pic_chip_request(m);

	if (line < 0) {
		vector = m->vector_base + 7; /* spurious: request went away */
	} else {
		pic_chip_intack(m, (unsigned)line);
		if (line == PIC_CASCADE_IRQ) {
			int sline = pic_chip_request(s);
			if (sline >= 0)
				pic_chip_intack(s, (unsigned)sline);
			else
				sline = 7; /* spurious on the slave */
			vector = s->vector_base + sline;
		} else {
			vector = m->vector_base + line;
		}
	}
	pic_update(pic);
	return vector & 0xff;
}

static void pic_eoi_line(struct pic_chip *c, unsigned line, bool rotate)
{
	c->isr &= ~(1u << line);
	if (rotate)
		c->highest = (uint8_t)((line + 1) & 7);
}

static void pic_write_ocw2(struct pic_chip *c, uint8_t value)
{
	unsigned cmd = value >> 5, level = value & 7;
	unsigned p;

	switch (cmd) {
	case OCW2_ROTATE_AEOI_CLEAR:
	case OCW2_ROTATE_AEOI_SET:
		c->rotate_on_aeoi = cmd == OCW2_ROTATE_AEOI_SET;
		break;
	case OCW2_NONSPECIFIC_EOI:
	case OCW2_ROTATE_NS_EOI:
		p = pic_priority(c, c->isr);
		if (p != NO_REQUEST)
			pic_eoi_line(c, pic_line_of(c, p), cmd == OCW2_ROTATE_NS_EOI);
		break;
	case OCW2_SPECIFIC_EOI:
	case OCW2_ROTATE_S_EOI:
		pic_eoi_line(c, level, cmd == OCW2_ROTATE_S_EOI);
		break;
	case OCW2_SET_PRIORITY:
		c->highest = (uint8_t)((level + 1) & 7); /* level becomes the lowest */
		break;
	default: /* OCW2_NOP */
		break;
	}
}

static void pic_write_ocw3(struct pic_chip *c, uint8_t value)
{
	if (value & OCW3_POLL)
		c->poll = true;
	if (value & OCW3_RR)
		c->read_isr = value & OCW3_RIS;
	if (value & OCW3_ESMM)
		c->special_mask = value & OCW3_SMM;
}

/* ICW1: restart the initialization sequence (data sheet, "Initialization
 * Command Words"): the edge detectors reset (a line must rise again), IMR
 * and ISR clear, IR7 gets the lowest priority, IRR read is selected. */
static void pic_write_icw1(struct pic_chip *c, uint8_t value)
{
	c->irr = c->pin & c->elcr; /* only level requests survive */
	c->isr = 0;
	c->imr = 0;
	c->highest = 0;
	c->special_mask = false;
	c->read_isr = false;
	c->poll = false;
	c->auto_eoi = false;
	c->rotate_on_aeoi = false;
	c->special_fully_nested = false;
	c->icw4_needed = value & ICW1_IC4;
	c->single = value & ICW1_SNGL;
	c->init_state = 1;
}

static void pic_write_command(struct pic_chip *c, uint8_t value)
{
	if (value & ICW1_BIT)
		pic_write_icw1(c, value);
	else if (value & OCW3_BIT)
		pic_write_ocw3(c, value);
	else
		pic_write_ocw2(c, value);
}

static void pic_write_data(struct pic_chip *c, uint8_t value)
{
	switch (c->init_state) {
	case 1: /* ICW2 */
		c->vector_base = value & 0xf8;
		c->init_state = c->single ? (c->icw4_needed ? 3 : 0) : 2;
		break;
	case 2: /* ICW3 */
		c->icw3 = value;
		c->init_state = c->icw4_needed ? 3 : 0;
		break;
	case 3: /* ICW4 */
		c->auto_eoi = value & ICW4_AEOI;
		c->special_fully_nested = value & ICW4_SFNM;
		c->init_state = 0;
		break;
	default: /* OCW1 */
		c->imr = value;
		break;
	}
}

/* Poll mode: the read is the interrupt acknowledge (data sheet, "The Poll
 * Command"); the byte is 0x80 | line, or 0 without a request. */
static uint8_t pic_poll_read(struct pic *pic, struct pic_chip *c)
{
	c->poll = false;
	int line = pic_chip_request(c);
	if (line < 0)
		return 0;
	pic_chip_intack(c, (unsigned)line);
	pic_update(pic);
	return (uint8_t)(0x80 | line);
}

uint8_t pic_read(struct pic *pic, uint16_t port)
{
	if (port == PIC_ELCR_PORT || port == PIC_ELCR_PORT + 1)
		return pic->chip[port - PIC_ELCR_PORT].elcr;
	if ((port & ~1u) != PIC_MASTER_PORT && (port & ~1u) != PIC_SLAVE_PORT)
		return 0xff;

	struct pic_chip *c = &pic->chip[(port & ~1u) == PIC_SLAVE_PORT];
	if (c->poll)
		return pic_poll_read(pic, c);
	if (port & 1)
		return c->imr;
	return c->read_isr ? c->isr : c->irr;
}

static void pic_write_elcr(struct pic_chip *c, uint8_t value)
{
	c->elcr = value & c->elcr_mask;
	/* A line that became level-sensitive now shows its level in IRR. */
	c->irr = (uint8_t)((c->irr & ~c->elcr) | (c->pin & c->elcr));
}

void pic_write(struct pic *pic, uint16_t port, uint8_t value)
{
	if (port == PIC_ELCR_PORT || port == PIC_ELCR_PORT + 1) {
		pic_write_elcr(&pic->chip[port - PIC_ELCR_PORT], value);
	} else if ((port & ~1u) == PIC_MASTER_PORT || (port & ~1u) == PIC_SLAVE_PORT) {
		struct pic_chip *c = &pic->chip[(port & ~1u) == PIC_SLAVE_PORT];
		if (port & 1)
			pic_write_data(c, value);
		else
			pic_write_command(c, value);
	} else {
		return;
	}
	pic_update(pic);
}
