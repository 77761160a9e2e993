/* Polled virtio-rng driver; see virtio.h for what it checks and vpci.h
 * for the transport. */
#include "virtio.h"

#include "lib.h"
#include "vpci.h"

/* MSI-X capability (PCI 3.0 §6.8.2) */
#define MSIX_CONTROL       2
#define MSIX_ENABLE        0x8000
#define MSIX_FUNCTION_MASK 0x4000

#define VIRTIO_RNG_DEVICE  0x1044u

#define LAPIC_BASE         0xfee00000u
#define LAPIC_ID           0x020
#define LAPIC_SVR          0x0f0
#define LAPIC_IRR          0x200
#define LAPIC_SVR_ENABLE   0x100u
#define MSI_ADDR_BASE      0xfee00000u
#define RNG_MSI_VECTOR     0x41u

/* The ring and the buffer: guest-physical == virtual in all three guests. */
static struct {
	struct vq_rings vq;
	uint8_t buf[RNG_MAX_BYTES] __attribute__((aligned(16)));
} rng_mem __attribute__((aligned(64)));

static int irr_set(const void *arg)
{
	(void)arg;
	uint32_t irr = mmio_read32(LAPIC_BASE + LAPIC_IRR + 0x10 * (RNG_MSI_VECTOR / 32));
	return (irr >> (RNG_MSI_VECTOR % 32)) & 1;
}

/* Posts descriptor 0 as one device-writable buffer of n bytes and waits
 * for the device to return it. */
static const char *rng_request(struct vpci_dev *d, uint32_t n, uint32_t *got)
{
	volatile struct vq_desc *desc = &rng_mem.vq.desc[0];
	struct vq_used_elem used;

	memset(rng_mem.buf, 0, n);
	desc->addr = (uintptr_t)rng_mem.buf;
	desc->len = n;
	desc->flags = VQ_DESC_F_WRITE;
	desc->next = 0;
	const char *err = vpci_submit(d, 0, &used);
	if (err)
		return err;
	if (used.id != 0) {
		con_printf("rng: error used id %u\n", used.id);
		return "";
	}
	if (used.len > n) {
		con_printf("rng: error used len %u > %u\n", used.len, n);
		return "";
	}
	*got = used.len;
	return NULL;
}

static const char *nonzero(uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		if (rng_mem.buf[i])
			return "nonzero";
	return "all zero";
}

/* Prints an error line; "" means the line is out already. */
static void print_error(const char *prefix, const char *what)
{
	if (what[0])
		con_printf("rng: %serror %s\n", prefix, what);
}

/* INTx mode: the queue interrupt shows in ISR, which a read clears. */
static void check_isr(const struct vpci_dev *d)
{
	uint8_t first = mmio_read8(d->isr.base);
	uint8_t second = mmio_read8(d->isr.base);
	con_printf("rng: isr=%x then %x\n", first, second);
}

/* MSI-X mode: entry 0 aimed at this CPU's LAPIC, with interrupts off
 * the vector stays pending in IRR where it can be polled. The LAPIC must
 * be software-enabled or it drops fixed interrupts. */
static void check_msix(struct vpci_dev *d, uint32_t n)
{
	if (!d->msix_cap) {
		con_puts("rng: msi-x none\n");
		return;
	}
	if (!d->msix_table) {
		print_error("msi-x ", "table outside its BAR");
		return;
	}
	if (mmio_read16(d->common.base + VC_Q_MSIX) != 0) {
		print_error("msi-x ", "vector 0 refused");
		return;
	}
	uint32_t svr = mmio_read32(LAPIC_BASE + LAPIC_SVR);
	mmio_write32(LAPIC_BASE + LAPIC_SVR, svr | LAPIC_SVR_ENABLE);
	uint32_t apic_id = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
	mmio_write32(d->msix_table + 0, MSI_ADDR_BASE | apic_id << 12);
	mmio_write32(d->msix_table + 4, 0);
	mmio_write32(d->msix_table + 8, RNG_MSI_VECTOR);
	mmio_write32(d->msix_table + 12, 0); /* unmasked */
	uint16_t ctl = pci_cfg_read16(d->bdf, d->msix_cap + MSIX_CONTROL);
	pci_cfg_write16(d->bdf, d->msix_cap + MSIX_CONTROL,
			(uint16_t)((ctl | MSIX_ENABLE) & ~MSIX_FUNCTION_MASK));
	if (!(pci_cfg_read16(d->bdf, d->msix_cap + MSIX_CONTROL) & MSIX_ENABLE)) {
		print_error("msi-x ", "enable bit not set");
		return;
	}
	if (irr_set(NULL)) {
		print_error("msi-x ", "vector pending before the request");
		return;
	}
	uint32_t got = 0;
	const char *err = rng_request(d, n, &got);
	if (err) {
		print_error("msi-x ", err);
		return;
	}
	if (vpci_wait(irr_set, NULL)) {
		print_error("msi-x ", "no interrupt");
		return;
	}
	con_printf("rng: msi-x %u bytes, %s, vector %x pending\n", got, nonzero(got),
		   RNG_MSI_VECTOR);
}

/* Everything up to the report; returns an error or NULL. */
static const char *rng_drive(struct vpci_dev *d, uint32_t n)
{
	const char *err = vpci_open(d, VIRTIO_RNG_DEVICE);
	if (!err && !d->isr.base)
		err = "no isr cfg";
	if (!err)
		err = vpci_negotiate(d);
	if (!err)
		err = vpci_queue_setup(d, &rng_mem.vq, 1);
	if (!err)
		err = vpci_driver_ok(d);
	if (err)
		return err;
	uint32_t got = 0;
	err = rng_request(d, n, &got);
	if (err)
		return err;
	con_printf("rng: %u bytes, %s\n", got, nonzero(got));
	check_isr(d);
	check_msix(d, n);
	return NULL;
}

void virtio_rng_test(uint32_t n)
{
	struct vpci_dev d;
	memset(&d, 0, sizeof(d));
	if (n == 0 || n > RNG_MAX_BYTES) {
		con_printf("rng: error size %u not in 1..%u\n", n, RNG_MAX_BYTES);
		return;
	}
	const char *err = rng_drive(&d, n);
	if (err)
		print_error("", err);
	if (!d.common.base)
		return;
	uint8_t status = vpci_status(&d);
	int reset = vpci_reset(&d);
	con_printf("rng: status=%02x, after reset %02x\n", status, vpci_status(&d));
	if (reset)
		con_puts("rng: error reset timeout\n");
}
