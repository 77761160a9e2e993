#include "devices/soft_irqchip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"

#define PIT_IOAPIC_PIN 2 /* ISA IRQ 0 → GSI 2 (MADT interrupt source override) */
#define MSI_ADDR_BASE 0xfee00000ULL
#define MSI_ADDR_MASK 0xfff00000ULL
#define MSI_ADDR_DEST_SHIFT 12
#define MSI_ADDR_REDIR_HINT 0x8u
#define MSI_ADDR_LOGICAL 0x4u
#define MSI_DATA_LEVEL 0x8000u
#define SHORTHAND_NONE 0
#define SHORTHAND_SELF 1
#define SHORTHAND_ALL 2
#define SHORTHAND_OTHERS 3

/* ---- locking and kicks ---- */

static void chip_lock(struct soft_irqchip *chip) { pthread_mutex_lock(&chip->lock); }

/* Release the lock, then wake every vCPU that got something while it was
 * held; the kick callback may re-enter the chip. */
static void chip_unlock(struct soft_irqchip *chip)
{
	uint64_t mask[sizeof(chip->kick_mask) / sizeof(chip->kick_mask[0])];

	memcpy(mask, chip->kick_mask, sizeof(mask));
	memset(chip->kick_mask, 0, sizeof(chip->kick_mask));
	pthread_mutex_unlock(&chip->lock);
	if (!chip->kick)
		return;
	for (unsigned cpu = 0; cpu < chip->ncpus; cpu++)
		if (mask[cpu / 64] >> (cpu % 64) & 1)
			chip->kick(chip->kick_opaque, cpu);
}

static void chip_mark_kick(struct soft_irqchip *chip, unsigned cpu)
{
	chip->kick_mask[cpu / 64] |= 1ULL << (cpu % 64);
}

static struct lapic *chip_lapic(struct soft_irqchip *chip, unsigned cpu)
{
	return cpu < chip->ncpus ? &chip->lapic[cpu] : NULL;
}

/* ---- message delivery (IOAPIC, MSI, IPI) ---- */

static bool message_targets(const struct lapic *l, const struct lapic *src, uint8_t shorthand,
			    uint8_t dest, bool logical)
{
	switch (shorthand) {
	case SHORTHAND_SELF:
		return l == src;
	case SHORTHAND_ALL:
		return lapic_hw_enabled(l);
	case SHORTHAND_OTHERS:
		return l != src && lapic_hw_enabled(l);
	default:
		return lapic_match_dest(l, dest, logical);
	}
}

static void deliver_to(struct soft_irqchip *chip, unsigned cpu, uint8_t mode, uint8_t vector,
		       bool level)
{
	lapic_deliver(&chip->lapic[cpu], mode, vector, level);
	chip_mark_kick(chip, cpu);
}

static void deliver_message(struct soft_irqchip *chip, const struct lapic *src, uint8_t shorthand,
			    uint8_t dest, bool logical, uint8_t mode, uint8_t vector, bool level,
			    bool lowest)
{
	int best = -1;

	for (unsigned cpu = 0; cpu < chip->ncpus; cpu++) {
		const struct lapic *l = &chip->lapic[cpu];
		if (!message_targets(l, src, shorthand, dest, logical))
			continue;
		if (!lowest) {
			deliver_to(chip, cpu, mode, vector, level);
			continue;
		}
		/* Lowest-priority arbitration: the lowest PPR wins, ties to the lowest index. */
		if (best < 0 || lapic_ppr(l) < lapic_ppr(&chip->lapic[best]))
			best = (int)cpu;
	}
	if (best >= 0)
		deliver_to(chip, (unsigned)best, mode == LAPIC_DM_LOWEST ? LAPIC_DM_FIXED : mode,
			   vector, level);
}

static void ioapic_deliver_cb(void *opaque, uint8_t dest, bool logical, uint8_t mode,
			      uint8_t vector, bool level)
{
	deliver_message(opaque, NULL, SHORTHAND_NONE, dest, logical, mode, vector, level,
			mode == LAPIC_DM_LOWEST);
}

static void lapic_eoi_cb(void *opaque, uint8_t vector)
{
	struct soft_irqchip *chip = opaque;
	ioapic_eoi(&chip->ioapic, vector);
}

static void lapic_ipi_cb(void *opaque, struct lapic *src, const struct lapic_ipi *ipi)
{
	deliver_message(opaque, src, ipi->shorthand, ipi->dest, ipi->logical, ipi->mode,
			ipi->vector, ipi->level_trig,
			ipi->mode == LAPIC_DM_LOWEST && ipi->shorthand == SHORTHAND_NONE);
}

/* ---- lines ---- */

/* After any change of the PIC's inputs or registers: wake the vCPUs that
 * take the PIC's INTR directly. */
static void pic_changed(struct soft_irqchip *chip)
{
	if (!pic_intr(&chip->pic))
		return;
	for (unsigned cpu = 0; cpu < chip->ncpus; cpu++)
		if (lapic_accepts_pic(&chip->lapic[cpu]))
			chip_mark_kick(chip, cpu);
}

static unsigned gsi_to_pin(uint32_t gsi)
{
	return gsi == 0 ? PIT_IOAPIC_PIN : gsi;
}

/* IOAPIC pin 2 is shared by GSI 0 and GSI 2: it is asserted while either is. */
static int pin_level(const struct soft_irqchip *chip, unsigned pin)
{
	if (pin == PIT_IOAPIC_PIN)
		return (chip->gsi_level & (1u << 0 | 1u << PIT_IOAPIC_PIN)) != 0;
	return (chip->gsi_level >> pin) & 1;
}

static void set_level_locked(struct soft_irqchip *chip, uint32_t gsi, int level)
{
	if (level)
		chip->gsi_level |= 1u << gsi;
	else
		chip->gsi_level &= ~(1u << gsi);
	if (gsi < 16 && gsi != PIC_CASCADE_IRQ) {
		pic_set_irq(&chip->pic, gsi, level);
		pic_changed(chip);
	}
	unsigned pin = gsi_to_pin(gsi);
	ioapic_set_irq(&chip->ioapic, pin, pin_level(chip, pin));
}

int irqchip_set_level(struct soft_irqchip *chip, uint32_t gsi, int level)
{
	if (gsi >= IRQCHIP_GSIS)
		return -EINVAL;
	chip_lock(chip);
	set_level_locked(chip, gsi, level != 0);
	chip_unlock(chip);
	return 0;
}

/* One rising and falling edge of the PIT's OUT0 on PIC IRQ 0 and IOAPIC
 * pin 2, returning both lines to the level devices drive on GSI 0/2. */
static void pit_pulse(struct soft_irqchip *chip)
{
	pic_set_irq(&chip->pic, 0, 1);
	pic_set_irq(&chip->pic, 0, chip->gsi_level & 1);
	pic_changed(chip);
	ioapic_set_irq(&chip->ioapic, PIT_IOAPIC_PIN, 1);
	ioapic_set_irq(&chip->ioapic, PIT_IOAPIC_PIN, pin_level(chip, PIT_IOAPIC_PIN));
}

int irqchip_msi(struct soft_irqchip *chip, uint64_t addr, uint32_t data)
{
	if ((addr & ~0xfffffULL) != MSI_ADDR_BASE)
		return -EINVAL;
	uint8_t dest = (uint8_t)(addr >> MSI_ADDR_DEST_SHIFT);
	bool logical = addr & MSI_ADDR_LOGICAL;
	uint8_t mode = (data >> 8) & 7;
	bool lowest = mode == LAPIC_DM_LOWEST || (addr & MSI_ADDR_REDIR_HINT);

	chip_lock(chip);
	deliver_message(chip, NULL, SHORTHAND_NONE, dest, logical, mode, (uint8_t)data,
			data & MSI_DATA_LEVEL, lowest);
	chip_unlock(chip);
	return 0;
}

/* ---- the CPU side ---- */

/* Which source vCPU cpu takes its next interrupt from: the PIC (ExtINT,
 * which KVM checks first) or its LAPIC. Lock held. */
static bool from_pic(struct soft_irqchip *chip, struct lapic *l)
{
	return lapic_accepts_pic(l) && pic_intr(&chip->pic);
}

int irqchip_pending(struct soft_irqchip *chip, unsigned cpu)
{
	int v = -1;
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (l)
		v = from_pic(chip, l) ? pic_pending_vector(&chip->pic) : lapic_pending_vector(l);
	chip_unlock(chip);
	return v;
}

int irqchip_ack(struct soft_irqchip *chip, unsigned cpu)
{
	int v = -1;
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (l && from_pic(chip, l)) {
		v = pic_ack(&chip->pic);
	} else if (l) {
		v = lapic_pending_vector(l);
		lapic_accept(l, v);
	}
	chip_unlock(chip);
	return v;
}

unsigned irqchip_take_events(struct soft_irqchip *chip, unsigned cpu, uint8_t *sipi_vector)
{
	unsigned ev = 0;
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (l)
		ev = lapic_take_events(l, sipi_vector);
	chip_unlock(chip);
	return ev;
}

void irqchip_lapic_reset(struct soft_irqchip *chip, unsigned cpu)
{
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (l)
		lapic_reset(l);
	chip_unlock(chip);
}

void irqchip_poll_timers(struct soft_irqchip *chip, uint64_t now_ns)
{
	chip_lock(chip);
	if (pit_poll(&chip->pit, now_ns))
		pit_pulse(chip); /* missed periods coalesce into one edge */
	for (unsigned cpu = 0; cpu < chip->ncpus; cpu++)
		if (lapic_poll_timer(&chip->lapic[cpu], now_ns))
			chip_mark_kick(chip, cpu);
	chip_unlock(chip);
}

uint64_t irqchip_next_event_ns(struct soft_irqchip *chip, unsigned cpu)
{
	chip_lock(chip);
	uint64_t t = pit_next_event_ns(&chip->pit);
	struct lapic *l = chip_lapic(chip, cpu);
	if (l) {
		uint64_t lt = lapic_next_deadline_ns(l);
		if (lt < t)
			t = lt;
	}
	chip_unlock(chip);
	return t;
}

/* ---- port I/O ---- */

static bool is_pic_port(uint16_t port)
{
	return (port & ~1u) == PIC_MASTER_PORT || (port & ~1u) == PIC_SLAVE_PORT ||
	       (port & ~1u) == PIC_ELCR_PORT;
}

static bool is_pit_port(uint16_t port)
{
	return port >= PIT_PORT_BASE && port < PIT_PORT_BASE + PIT_PORT_COUNT;
}

static bool is_chip_port(uint16_t port)
{
	return is_pic_port(port) || is_pit_port(port) || port == PIT_PORT_SYSCTL;
}

bool irqchip_pio_read(struct soft_irqchip *chip, uint16_t port, uint8_t *data, unsigned size)
{
	if (!is_chip_port(port))
		return false;
	memset(data, 0, size);
	if (size != 1)
		return true;
	chip_lock(chip);
	if (is_pic_port(port)) {
		data[0] = pic_read(&chip->pic, port); /* a poll read acknowledges */
		pic_changed(chip);
	} else if (is_pit_port(port)) {
		data[0] = pit_read(&chip->pit, port - PIT_PORT_BASE);
	} else {
		data[0] = pit_sysctl_read(&chip->pit);
	}
	chip_unlock(chip);
	return true;
}

bool irqchip_pio_write(struct soft_irqchip *chip, uint16_t port, const uint8_t *data,
		       unsigned size)
{
	if (!is_chip_port(port))
		return false;
	if (size != 1)
		return true;
	chip_lock(chip);
	if (is_pic_port(port)) {
		pic_write(&chip->pic, port, data[0]);
		pic_changed(chip);
	} else if (is_pit_port(port)) {
		pit_write(&chip->pit, port - PIT_PORT_BASE, data[0]);
	} else {
		pit_sysctl_write(&chip->pit, data[0]);
	}
	chip_unlock(chip);
	return true;
}

/* ---- MMIO ---- */

static bool in_window(uint64_t gpa, unsigned size, uint64_t base, uint64_t len)
{
	return gpa >= base && gpa - base < len && size <= len - (gpa - base);
}

static bool lapic_claims(struct lapic *l, uint64_t gpa, unsigned size)
{
	return l && lapic_hw_enabled(l) && in_window(gpa, size, lapic_mmio_base(l), LAPIC_MMIO_SIZE);
}

/* The accessing vCPU's own LAPIC page, then the IOAPIC window; false if
 * neither claims the access. */
static bool irqchip_mmio(struct soft_irqchip *chip, unsigned cpu, uint64_t gpa, uint8_t *data,
			 unsigned size, bool write)
{
	bool handled = true;
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (lapic_claims(l, gpa, size)) {
		if (write)
			lapic_mmio_write(l, gpa - lapic_mmio_base(l), data, size);
		else
			lapic_mmio_read(l, gpa - lapic_mmio_base(l), data, size);
	} else if (in_window(gpa, size, LAYOUT_IOAPIC_ADDR, IOAPIC_MMIO_SIZE)) {
		if (write)
			ioapic_mmio_write(&chip->ioapic, gpa - LAYOUT_IOAPIC_ADDR, data, size);
		else
			ioapic_mmio_read(&chip->ioapic, gpa - LAYOUT_IOAPIC_ADDR, data, size);
	} else {
		handled = false;
	}
	chip_unlock(chip);
	return handled;
}

bool irqchip_mmio_read(struct soft_irqchip *chip, unsigned cpu, uint64_t gpa, uint8_t *data,
		       unsigned size)
{
	return irqchip_mmio(chip, cpu, gpa, data, size, false);
}

bool irqchip_mmio_write(struct soft_irqchip *chip, unsigned cpu, uint64_t gpa,
			const uint8_t *data, unsigned size)
{
	/* The write paths only read data; the shared dispatcher takes it non-const. */
	return irqchip_mmio(chip, cpu, gpa, (uint8_t *)data, size, true);
}

void irqchip_lapic_mmio_read(struct soft_irqchip *chip, unsigned cpu, uint64_t offset,
			     uint8_t *data, unsigned size)
{
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (l)
		lapic_mmio_read(l, offset, data, size);
	else
		memset(data, 0, size);
	chip_unlock(chip);
}

void irqchip_lapic_mmio_write(struct soft_irqchip *chip, unsigned cpu, uint64_t offset,
			      const uint8_t *data, unsigned size)
{
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (l)
		lapic_mmio_write(l, offset, data, size);
	chip_unlock(chip);
}

/* ---- MSRs ---- */

int irqchip_msr_read(struct soft_irqchip *chip, unsigned cpu, uint32_t msr, uint64_t *value)
{
	if (msr != MSR_IA32_APIC_BASE && msr != MSR_IA32_TSC_DEADLINE)
		return -ENOENT;
	int ret = 0;
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (!l)
		ret = -EINVAL;
	else if (msr == MSR_IA32_APIC_BASE)
		*value = lapic_get_base(l);
	else
		*value = lapic_get_tsc_deadline(l);
	chip_unlock(chip);
	return ret;
}

int irqchip_msr_write(struct soft_irqchip *chip, unsigned cpu, uint32_t msr, uint64_t value)
{
	if (msr != MSR_IA32_APIC_BASE && msr != MSR_IA32_TSC_DEADLINE)
		return -ENOENT;
	int ret = 0;
	chip_lock(chip);
	struct lapic *l = chip_lapic(chip, cpu);
	if (!l)
		ret = -EINVAL;
	else if (msr == MSR_IA32_APIC_BASE)
		ret = lapic_set_base(l, value);
	else
		lapic_set_tsc_deadline(l, value);
	pic_changed(chip); /* disabling an APIC routes the PIC to it */
	chip_unlock(chip);
	return ret;
}

/* ---- bus glue ---- */

#define PIO_OPS(name, base)                                                                     \
	static void bus_##name##_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size) \
	{                                                                                       \
		irqchip_pio_read(opaque, (uint16_t)((base) + offset), data, size);              \
	}                                                                                       \
	static void bus_##name##_write(void *opaque, uint64_t offset, const uint8_t *data,      \
				 unsigned size)                                                 \
	{                                                                                       \
		irqchip_pio_write(opaque, (uint16_t)((base) + offset), data, size);             \
	}                                                                                       \
	const struct bus_ops irqchip_##name##_ops = {bus_##name##_read, bus_##name##_write};

PIO_OPS(pic_master, PIC_MASTER_PORT)
PIO_OPS(pic_slave, PIC_SLAVE_PORT)
PIO_OPS(elcr, PIC_ELCR_PORT)
PIO_OPS(pit, PIT_PORT_BASE)
PIO_OPS(sysctl, PIT_PORT_SYSCTL)

static void ioapic_bus_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct soft_irqchip *chip = opaque;
	chip_lock(chip);
	ioapic_mmio_read(&chip->ioapic, offset, data, size);
	chip_unlock(chip);
}

static void ioapic_bus_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct soft_irqchip *chip = opaque;
	chip_lock(chip);
	ioapic_mmio_write(&chip->ioapic, offset, data, size);
	chip_unlock(chip);
}

const struct bus_ops irqchip_ioapic_ops = {ioapic_bus_read, ioapic_bus_write};

int soft_irqchip_attach(struct soft_irqchip *chip, struct bus *pio, struct bus *mmio)
{
	static const struct {
		uint16_t base, len;
		const char *name;
		const struct bus_ops *ops;
	} ports[] = {
		{PIC_MASTER_PORT, 2, "pic-master", &irqchip_pic_master_ops},
		{PIC_SLAVE_PORT, 2, "pic-slave", &irqchip_pic_slave_ops},
		{PIC_ELCR_PORT, 2, "elcr", &irqchip_elcr_ops},
		{PIT_PORT_BASE, PIT_PORT_COUNT, "pit", &irqchip_pit_ops},
		{PIT_PORT_SYSCTL, 1, "port61", &irqchip_sysctl_ops},
	};
	int ret;

	for (size_t i = 0; pio && i < sizeof(ports) / sizeof(ports[0]); i++) {
		ret = bus_register(pio, ports[i].base, ports[i].len, ports[i].name, ports[i].ops, chip);
		if (ret < 0)
			return ret;
	}
	if (mmio)
		return bus_register(mmio, LAYOUT_IOAPIC_ADDR, IOAPIC_MMIO_SIZE, "ioapic",
				    &irqchip_ioapic_ops, chip);
	return 0;
}

/* ---- life cycle ---- */

static int irq_ctl_set_level(void *opaque, uint32_t gsi, int level)
{
	return irqchip_set_level(opaque, gsi, level);
}

static int irq_ctl_msi(void *opaque, uint64_t addr, uint32_t data)
{
	return irqchip_msi(opaque, addr, data);
}

struct irq_ctl soft_irqchip_irq_ctl(struct soft_irqchip *chip)
{
	return (struct irq_ctl){.set_level = irq_ctl_set_level, .msi = irq_ctl_msi, .opaque = chip};
}

int soft_irqchip_init(struct soft_irqchip *chip, const struct soft_irqchip_config *cfg)
{
	if (!cfg || cfg->ncpus == 0 || cfg->ncpus > IRQCHIP_MAX_CPUS || !cfg->clock.now_ns ||
	    cfg->clock.tsc_hz < 1000000ULL || cfg->clock.tsc_hz > 10000000000ULL)
		return -EINVAL;
	memset(chip, 0, sizeof(*chip));
	chip->lapic = calloc(cfg->ncpus, sizeof(*chip->lapic));
	if (!chip->lapic)
		return -ENOMEM;
	int ret = pthread_mutex_init(&chip->lock, NULL);
	if (ret) {
		free(chip->lapic);
		chip->lapic = NULL;
		return -ret;
	}
	chip->ncpus = cfg->ncpus;
	chip->clock = cfg->clock;
	chip->kick = cfg->kick;
	chip->kick_opaque = cfg->kick_opaque;
	pic_init(&chip->pic);
	ioapic_init(&chip->ioapic, ioapic_deliver_cb, chip);
	pit_init(&chip->pit, chip->clock.now_ns, chip->clock.opaque);
	struct lapic_ops ops = {.eoi_broadcast = lapic_eoi_cb, .send_ipi = lapic_ipi_cb, .opaque = chip};
	for (unsigned cpu = 0; cpu < chip->ncpus; cpu++)
		lapic_init(&chip->lapic[cpu], cpu, &chip->clock, &ops);
	return 0;
}

void soft_irqchip_destroy(struct soft_irqchip *chip)
{
	if (!chip->lapic)
		return;
	pthread_mutex_destroy(&chip->lock);
	free(chip->lapic);
	chip->lapic = NULL;
	chip->ncpus = 0;
}
