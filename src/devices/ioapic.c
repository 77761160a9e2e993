#include "devices/ioapic.h"

#include <string.h>

#define ID_MASK 0x0f000000u
/* Bits of the low dword the guest may write (not delivery status or Remote IRR). */
#define RTE_LOW_WRITABLE 0x0001afffULL
#define RTE_HIGH_WRITABLE 0xff000000ULL

void ioapic_init(struct ioapic *io, ioapic_deliver_fn deliver, void *opaque)
{
	memset(io, 0, sizeof(*io));
	io->deliver = deliver;
	io->opaque = opaque;
	for (unsigned i = 0; i < IOAPIC_PINS; i++)
		io->redir[i] = IOAPIC_RTE_MASK;
}

static void ioapic_send(struct ioapic *io, unsigned pin)
{
	uint64_t e = io->redir[pin];
	bool level = e & IOAPIC_RTE_LEVEL;

	if (level)
		io->redir[pin] |= IOAPIC_RTE_REMOTE_IRR;
	io->deliver(io->opaque, (uint8_t)(e >> IOAPIC_RTE_DEST_SHIFT), e & IOAPIC_RTE_LOGICAL,
		    (uint8_t)((e >> IOAPIC_RTE_MODE_SHIFT) & 7), (uint8_t)(e & IOAPIC_RTE_VECTOR),
		    level);
}

/* A level pin delivers whenever it is asserted, unmasked and not awaiting
 * its EOI. */
static void ioapic_service_level(struct ioapic *io, unsigned pin)
{
	uint64_t e = io->redir[pin];
	if ((e & IOAPIC_RTE_LEVEL) && !(e & (IOAPIC_RTE_MASK | IOAPIC_RTE_REMOTE_IRR)) &&
	    (io->line & (1u << pin)))
		ioapic_send(io, pin);
}

void ioapic_set_irq(struct ioapic *io, unsigned pin, int level)
{
	if (pin >= IOAPIC_PINS)
		return;
	uint32_t bit = 1u << pin;
	bool rising = level && !(io->line & bit);

	if (level)
		io->line |= bit;
	else
		io->line &= ~bit;

	uint64_t e = io->redir[pin];
	if (e & IOAPIC_RTE_LEVEL)
		ioapic_service_level(io, pin);
	else if (rising && !(e & IOAPIC_RTE_MASK))
		ioapic_send(io, pin);
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		uint64_t e = io->redir[pin];
		if ((e & IOAPIC_RTE_VECTOR) != vector || !(e & IOAPIC_RTE_LEVEL) ||
		    !(e & IOAPIC_RTE_REMOTE_IRR))
			continue;
		io->redir[pin] &= ~IOAPIC_RTE_REMOTE_IRR;
		ioapic_service_level(io, pin);
	}
}

uint32_t ioapic_reg_read(const struct ioapic *io, uint8_t index)
{
	switch (index) {
	case IOAPIC_REG_ID:
	case IOAPIC_REG_ARB:
		return io->id;
	case IOAPIC_REG_VER:
		return (uint32_t)(IOAPIC_PINS - 1) << 16 | IOAPIC_VERSION;
	default:
		break;
	}
	if (index < IOAPIC_REG_REDIR || index >= IOAPIC_REG_REDIR + 2 * IOAPIC_PINS)
		return 0;
	unsigned pin = (index - IOAPIC_REG_REDIR) / 2;
	uint64_t e = io->redir[pin];
	return (index & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
}

static void ioapic_write_redir(struct ioapic *io, unsigned pin, bool high, uint32_t value)
{
	uint64_t e = io->redir[pin];

	if (high) {
		e = (e & 0xffffffffULL) | ((uint64_t)value & RTE_HIGH_WRITABLE) << 32;
	} else {
		e = (e & ~RTE_LOW_WRITABLE & ~0xffffffffULL) | (e & IOAPIC_RTE_REMOTE_IRR) |
		    (value & RTE_LOW_WRITABLE);
		if (!(e & IOAPIC_RTE_LEVEL))
			e &= ~IOAPIC_RTE_REMOTE_IRR; /* edge entries never await an EOI */
	}
	io->redir[pin] = e;
	/* Unmasking (or switching to level) an asserted level line delivers now. */
	ioapic_service_level(io, pin);
}

void ioapic_reg_write(struct ioapic *io, uint8_t index, uint32_t value)
{
	if (index == IOAPIC_REG_ID) {
		io->id = value & ID_MASK;
		return;
	}
	if (index < IOAPIC_REG_REDIR || index >= IOAPIC_REG_REDIR + 2 * IOAPIC_PINS)
		return; /* VER and ARB are read-only; the rest is unimplemented */
	ioapic_write_redir(io, (index - IOAPIC_REG_REDIR) / 2, index & 1, value);
}

static uint64_t data_get(const uint8_t *data, unsigned size)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < size && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

static void data_put(uint8_t *data, unsigned size, uint64_t v)
{
	for (unsigned i = 0; i < size && i < 8; i++)
		data[i] = (uint8_t)(v >> (8 * i));
}

void ioapic_mmio_read(struct ioapic *io, uint64_t offset, uint8_t *data, unsigned size)
{
	uint64_t v = 0;

	if (offset == IOAPIC_REGSEL)
		v = io->regsel;
	else if (offset == IOAPIC_WINDOW)
		v = ioapic_reg_read(io, io->regsel);
	data_put(data, size, v);
}

void ioapic_mmio_write(struct ioapic *io, uint64_t offset, const uint8_t *data, unsigned size)
{
	uint64_t v = data_get(data, size);

	if (offset == IOAPIC_REGSEL) {
		io->regsel = (uint8_t)v;
	} else if (offset == IOAPIC_WINDOW) {
		uint32_t old = ioapic_reg_read(io, io->regsel);
		/* A narrow write replaces only the bytes it covers. */
		uint32_t keep = size >= 4 ? 0 : ~0u << (8 * size);
		ioapic_reg_write(io, io->regsel, (old & keep) | ((uint32_t)v & ~keep));
	}
}
