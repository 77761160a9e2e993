/* Hostile register traffic against the soft irqchip (PIC, PIT, port 0x61,
 * IOAPIC, three LAPICs, MSRs, MSIs, device lines) under a fake clock that
 * jumps forwards and backwards. Each 8-byte record is: operation, three
 * argument bytes, a 32-bit value. Nothing may crash, hang, touch memory out
 * of bounds, or leave a timer that is already due after a poll (which would
 * make the engine spin). */
#include <stdint.h>
#include <string.h>

#include "devices/soft_irqchip.h"

#define NCPUS 3

struct fake_clock {
	uint64_t ns;
};

static uint64_t fake_now(void *opaque)
{
	return ((struct fake_clock *)opaque)->ns;
}

static void no_kick(void *opaque, unsigned cpu)
{
	(void)opaque;
	(void)cpu;
}

static const uint16_t ports[] = {0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x40,
				 0x41, 0x42, 0x43, 0x61, 0x22, 0x3f};

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_no_due_timer(struct soft_irqchip *chip, uint64_t now)
{
	for (unsigned cpu = 0; cpu < NCPUS; cpu++)
		if (irqchip_next_event_ns(chip, cpu) <= now)
			__builtin_trap();
}

static void run_record(struct soft_irqchip *chip, struct fake_clock *clk, const uint8_t *r)
{
	uint8_t op = r[0] % 14, a = r[1], b = r[2], c = r[3];
	uint32_t value = get32(r + 4);
	unsigned size = 1u << (b % 4); /* 1, 2, 4, 8 */
	unsigned cpu = a % (NCPUS + 1);  /* includes a vCPU that does not exist */
	uint8_t buf[8];
	memset(buf, 0, sizeof(buf));
	memcpy(buf, &value, sizeof(value));

	switch (op) {
	case 0:
		irqchip_pio_write(chip, ports[a % (sizeof(ports) / sizeof(ports[0]))], buf,
				  b & 0x80 ? size : 1);
		break;
	case 1:
		irqchip_pio_read(chip, ports[a % (sizeof(ports) / sizeof(ports[0]))], buf,
				 b & 0x80 ? size : 1);
		break;
	case 2: /* LAPIC registers; mostly aligned 4-byte writes so state gets far */
		irqchip_mmio_write(chip, cpu, 0xfee00000ULL + ((uint32_t)c << 4 | (b & 0x80 ? b & 0xf : 0)),
				   buf, b & 0x40 ? size : 4);
		break;
	case 3:
		irqchip_mmio_read(chip, cpu, 0xfee00000ULL + ((uint32_t)c << 4 | (b & 0xf)), buf, size);
		break;
	case 4:
		irqchip_mmio_write(chip, 0, 0xfec00000ULL + (c & 1 ? 0x10 : 0) + (b & 0x80 ? a : 0),
				   buf, size);
		break;
	case 5:
		irqchip_mmio_read(chip, 0, 0xfec00000ULL + (c & 1 ? 0x10 : 0) + (b & 0x80 ? a : 0), buf,
				  size);
		break;
	case 6:
		irqchip_set_level(chip, a % 26, b & 1);
		break;
	case 7:
		irqchip_msi(chip, (b & 0x80 ? 0xfee00000ULL : 0xfed00000ULL) | (value & 0xfffff), get32(r));
		break;
	case 8:
		clk->ns += value;
		irqchip_poll_timers(chip, clk->ns);
		check_no_due_timer(chip, clk->ns);
		break;
	case 9:
		clk->ns = clk->ns > value ? clk->ns - value : 0; /* time going backwards */
		break;
	case 10: {
		int v = irqchip_pending(chip, cpu);
		int w = (b & 1) ? irqchip_ack(chip, cpu) : v;
		if (v > 255 || w > 255 || v < -1 || w < -1)
			__builtin_trap();
		break;
	}
	case 11: {
		uint64_t msr = b & 1 ? MSR_IA32_TSC_DEADLINE : MSR_IA32_APIC_BASE;
		uint64_t v = (uint64_t)value << (c % 33);
		if (msr == MSR_IA32_APIC_BASE && (c & 0x40))
			v = 0xfee00000ULL | (value & 0x900);
		irqchip_msr_write(chip, cpu, (uint32_t)msr, v);
		irqchip_msr_read(chip, cpu, (uint32_t)msr, &v);
		break;
	}
	case 12:
		if (b & 1)
			irqchip_lapic_reset(chip, cpu);
		else
			irqchip_take_events(chip, cpu, buf);
		break;
	default:
		irqchip_lapic_mmio_write(chip, cpu, (uint64_t)value & 0x1fff, buf, size);
		irqchip_lapic_mmio_read(chip, cpu, (uint64_t)value >> 16, buf, size);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fake_clock clk = {.ns = 1000000000ULL};
	struct soft_irqchip chip;
	struct soft_irqchip_config cfg = {
		.ncpus = NCPUS,
		.clock = {.now_ns = fake_now, .tsc_hz = 2500000000ULL, .opaque = &clk},
		.kick = no_kick,
	};

	if (soft_irqchip_init(&chip, &cfg) < 0)
		return 0;
	for (size_t i = 0; i + 8 <= size; i += 8)
		run_record(&chip, &clk, data + i);
	soft_irqchip_destroy(&chip);
	return 0;
}
