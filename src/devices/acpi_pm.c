#include "devices/acpi_pm.h"

#include <string.h>

#include "arch/x86/layout.h"
#include "util/log.h"

#define PM1_EVT_LEN 4
#define PM1_CNT_LEN 2
#define PM_TMR_LEN 4

/* Defined bits of each register; everything else is reserved, reads 0
 * and ignores writes. */
#define PM1_STS_BITS                                                                               \
	(ACPI_PM1_TMR | ACPI_PM1_BM_STS | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_SLPBTN |       \
	 ACPI_PM1_RTC | ACPI_PM1_PCIEXP_WAKE | ACPI_PM1_WAK_STS)
#define PM1_EN_BITS                                                                                \
	(ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_SLPBTN | ACPI_PM1_RTC |          \
	 ACPI_PM1_PCIEXP_WAKE)
/* Events that raise the SCI when both status and enable are set (bit 14 of
 * PM1_EN is a wake *disable*, so it is not one of them). */
#define PM1_SCI_EVENTS (ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_SLPBTN | ACPI_PM1_RTC)
/* PM1_CNT bits that hold what was written; SLP_EN and GBL_RLS are
 * write-only and SCI_EN is fixed at 1. */
#define PM1_CNT_STORED (ACPI_PM1_CNT_BM_RLD | ACPI_PM1_CNT_SLP_TYP_MASK)

#define NSEC_PER_SEC 1000000000L

void acpi_pm_init(struct acpi_pm *pm, const struct power_ctl *power, const struct irq_ctl *irq)
{
	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
	clock_gettime(CLOCK_MONOTONIC, &pm->start);
	pm->power = power;
	pm->irq = irq;
}

void acpi_pm_destroy(struct acpi_pm *pm) { pthread_mutex_destroy(&pm->lock); }

uint32_t acpi_pm_timer_read(const struct acpi_pm *pm)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t sec = (int64_t)now.tv_sec - (int64_t)pm->start.tv_sec;
	long nsec = now.tv_nsec - pm->start.tv_nsec;
	if (nsec < 0) {
		sec--;
		nsec += NSEC_PER_SEC;
	}
	if (sec < 0)
		return 0;
	/* Split so that no product overflows: nsec * HZ < 2^62. */
	uint64_t ticks = (uint64_t)sec * ACPI_PM_TIMER_HZ +
			 (uint64_t)nsec * ACPI_PM_TIMER_HZ / (uint64_t)NSEC_PER_SEC;
	return (uint32_t)(ticks & ACPI_PM_TIMER_MASK);
}

/* Number of bytes of an access [offset, offset+size) inside a block. */
static unsigned pm_span(uint64_t offset, unsigned size, unsigned block_len)
{
	if (offset >= block_len)
		return 0;
	return size < block_len - offset ? size : (unsigned)(block_len - offset);
}

/* Returns the bytes of a block's little-endian value that an access covers;
 * bytes outside the block read as all-ones like unclaimed I/O. */
static void pm_read_bytes(uint32_t value, unsigned block_len, uint64_t offset, uint8_t *data,
			  unsigned size)
{
	unsigned n = pm_span(offset, size, block_len);
	for (unsigned i = 0; i < size; i++)
		data[i] = i < n ? (uint8_t)(value >> (8 * (offset + i))) : 0xff;
}

/* Spreads a write over the block: *value holds the written bytes at their
 * block positions, the return value says which bits were written. */
static uint32_t pm_write_bytes(const uint8_t *data, unsigned size, uint64_t offset,
			       unsigned block_len, uint32_t *value)
{
	unsigned n = pm_span(offset, size, block_len);
	uint32_t mask = 0, v = 0;
	for (unsigned i = 0; i < n; i++) {
		unsigned shift = 8 * (unsigned)(offset + i);
		mask |= 0xffu << shift;
		v |= (uint32_t)data[i] << shift;
	}
	*value = v;
	return mask;
}

/* Keeps the SCI line equal to "some enabled event is pending". */
static void pm_update_sci(struct acpi_pm *pm)
{
	bool level = (pm->pm1_sts & pm->pm1_en & PM1_SCI_EVENTS) != 0;
	if (level == pm->sci_level)
		return;
	pm->sci_level = level;
	irq_set_level(pm->irq, IRQ_ACPI_SCI, level);
}

static void pm_evt_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct acpi_pm *pm = opaque;
	pthread_mutex_lock(&pm->lock);
	uint32_t value = pm->pm1_sts | ((uint32_t)pm->pm1_en << 16);
	pthread_mutex_unlock(&pm->lock);
	pm_read_bytes(value, PM1_EVT_LEN, offset, data, size);
}

static void pm_evt_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct acpi_pm *pm = opaque;
	uint32_t value;
	uint32_t mask = pm_write_bytes(data, size, offset, PM1_EVT_LEN, &value);
	uint16_t sts_clear = (uint16_t)(value & mask & PM1_STS_BITS);
	uint16_t en_mask = (uint16_t)((mask >> 16) & PM1_EN_BITS);
	uint16_t en_value = (uint16_t)(value >> 16);

	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts &= (uint16_t)~sts_clear; /* write-1-to-clear */
	pm->pm1_en = (uint16_t)((pm->pm1_en & ~en_mask) | (en_value & en_mask));
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static void pm_cnt_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct acpi_pm *pm = opaque;
	pthread_mutex_lock(&pm->lock);
	uint32_t value = pm->pm1_cnt | ACPI_PM1_CNT_SCI_EN;
	pthread_mutex_unlock(&pm->lock);
	pm_read_bytes(value, PM1_CNT_LEN, offset, data, size);
}

/* Decides under the lock whether this SLP_EN write is the (first) request
 * for S5; other sleep states are not implemented. */
static bool pm_sleep_locked(struct acpi_pm *pm)
{
	unsigned typ = (pm->pm1_cnt & ACPI_PM1_CNT_SLP_TYP_MASK) >> ACPI_PM1_CNT_SLP_TYP_SHIFT;
	if (typ != ACPI_PM_SLP_TYP_S5) {
		log_debug("acpi-pm: ignoring sleep request with SLP_TYP %u", typ);
		return false;
	}
	if (pm->off_requested)
		return false;
	pm->off_requested = true;
	return true;
}

static void pm_cnt_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct acpi_pm *pm = opaque;
	uint32_t value;
	uint32_t mask = pm_write_bytes(data, size, offset, PM1_CNT_LEN, &value);
	bool power_off = false;

	pthread_mutex_lock(&pm->lock);
	pm->pm1_cnt = (uint16_t)((pm->pm1_cnt & ~(mask & PM1_CNT_STORED)) |
				 (value & mask & PM1_CNT_STORED));
	if (value & mask & ACPI_PM1_CNT_SLP_EN)
		power_off = pm_sleep_locked(pm);
	pthread_mutex_unlock(&pm->lock);

	/* Outside the lock: the VM may stop vCPUs that are waiting for it. */
	if (power_off)
		power_request(pm->power, POWER_OFF, 0);
}

static void pm_tmr_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	pm_read_bytes(acpi_pm_timer_read(opaque), PM_TMR_LEN, offset, data, size);
}

static void pm_tmr_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	(void)opaque, (void)offset, (void)data, (void)size; /* read-only */
}

static const struct bus_ops pm_evt_ops = {.read = pm_evt_read, .write = pm_evt_write};
static const struct bus_ops pm_cnt_ops = {.read = pm_cnt_read, .write = pm_cnt_write};
static const struct bus_ops pm_tmr_ops = {.read = pm_tmr_read, .write = pm_tmr_write};

int acpi_pm_attach(struct acpi_pm *pm, struct bus *pio)
{
	int ret = bus_register(pio, PORT_ACPI_PM1A_EVT, PM1_EVT_LEN, "acpi-pm1a-evt", &pm_evt_ops, pm);
	if (ret == 0)
		ret = bus_register(pio, PORT_ACPI_PM1A_CNT, PM1_CNT_LEN, "acpi-pm1a-cnt", &pm_cnt_ops, pm);
	if (ret == 0)
		ret = bus_register(pio, PORT_ACPI_PM_TMR, PM_TMR_LEN, "acpi-pm-tmr", &pm_tmr_ops, pm);
	if (ret < 0)
		log_error("acpi-pm: cannot register I/O ports: error %d", ret);
	return ret;
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts |= ACPI_PM1_PWRBTN;
	pm_update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}
