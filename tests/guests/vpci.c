/* The virtio-pci transport of the test guests; see vpci.h for the
 * specifications and the invariants. */
#include "vpci.h"

#include "lib.h"

#define PCI_PORT_ADDR      0xcf8
#define PCI_PORT_DATA      0xcfc
#define PCI_CF8_ENABLE     0x80000000u
#define PCI_VENDOR_DEVICE  0x00
#define PCI_COMMAND        0x04
#define PCI_STATUS         0x06
#define PCI_HEADER_TYPE    0x0e
#define PCI_BAR0           0x10
#define PCI_CAP_PTR        0x34
#define PCI_CMD_MEMORY     0x0002
#define PCI_CMD_MASTER     0x0004
#define PCI_STATUS_CAPS    0x0010
#define PCI_MULTI_FUNCTION 0x80
#define PCI_BAR_IO         0x1u
#define PCI_BAR_TYPE_MASK  0x6u
#define PCI_BAR_TYPE_64    0x4u
#define PCI_CAP_MIN        0x40u
#define PCI_CAP_WALK_MAX   48u /* (256 - 64) / 4: more means a loop */
#define PCI_CAP_VNDR       0x09
#define PCI_CAP_MSIX       0x11

/* MSI-X capability (PCI 3.0 §6.8.2) */
#define MSIX_TABLE         4
#define MSIX_BIR_MASK      0x7u
#define MSIX_ENTRY_LEN     16u

/* struct virtio_pci_cap (§4.1.4) */
#define VCAP_LEN           2
#define VCAP_TYPE          3
#define VCAP_BAR           4
#define VCAP_OFFSET        8
#define VCAP_LENGTH        12
#define VCAP_NOTIFY_MULT   16
#define VCAP_MIN_LEN       16u
#define VCAP_NOTIFY_MIN    20u
#define VCAP_COMMON        1
#define VCAP_NOTIFY        2
#define VCAP_ISR           3

/* Common configuration (§4.1.4.3) */
#define VC_DFSELECT        0x00
#define VC_DF              0x04
#define VC_GFSELECT        0x08
#define VC_GF              0x0c
#define VC_MSIX_CONFIG     0x10
#define VC_NUM_QUEUES      0x12
#define VC_STATUS          0x14
#define VC_Q_SELECT        0x16
#define VC_Q_SIZE          0x18
#define VC_Q_ENABLE        0x1c
#define VC_Q_NOFF          0x1e
#define VC_Q_DESC          0x20
#define VC_Q_AVAIL         0x28
#define VC_Q_USED          0x30
#define VC_LEN             0x38u

#define VS_ACKNOWLEDGE     0x01
#define VS_DRIVER          0x02
#define VS_DRIVER_OK       0x04
#define VS_FEATURES_OK     0x08
#define VS_NEEDS_RESET     0x40
#define VIRTIO_F_VERSION_1_HI 0x1u /* bit 32: bit 0 of the upper half */
#define VIRTIO_NO_VECTOR   0xffff

#define RESET_SPIN         100000u
#define WAIT_SPIN_MAX      50000000u /* hard bound if the RTC does not tick */
#define WAIT_RTC_EVERY     256u      /* spins between RTC reads */
#define WAIT_SECONDS       3u        /* RTC second changes before giving up */
#define CMOS_SECONDS       0x00

/* ---- PCI configuration mechanism #1 ---- */

static void pci_select(uint32_t bdf, unsigned reg)
{
	outl(PCI_PORT_ADDR, PCI_CF8_ENABLE | bdf | (reg & 0xfc));
}

static uint32_t pci_read32(uint32_t bdf, unsigned reg)
{
	pci_select(bdf, reg);
	return inl(PCI_PORT_DATA);
}

uint16_t pci_cfg_read16(uint32_t bdf, unsigned reg)
{
	pci_select(bdf, reg);
	return inw((uint16_t)(PCI_PORT_DATA + (reg & 2)));
}

static uint8_t pci_read8(uint32_t bdf, unsigned reg)
{
	pci_select(bdf, reg);
	return inb((uint16_t)(PCI_PORT_DATA + (reg & 3)));
}

static void pci_write32(uint32_t bdf, unsigned reg, uint32_t v)
{
	pci_select(bdf, reg);
	outl(PCI_PORT_DATA, v);
}

void pci_cfg_write16(uint32_t bdf, unsigned reg, uint16_t v)
{
	pci_select(bdf, reg);
	outw((uint16_t)(PCI_PORT_DATA + (reg & 2)), v);
}

static uint32_t bdf_make(unsigned bus, unsigned dev, unsigned fn)
{
	return (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8;
}

/* Functions 1-7 are looked at only when function 0 says it is
 * multi-function. */
static int pci_find(uint16_t vendor, uint16_t device, uint32_t *bdf)
{
	for (unsigned dev = 0; dev < 32; dev++) {
		for (unsigned fn = 0; fn < 8; fn++) {
			uint32_t b = bdf_make(0, dev, fn);
			uint32_t id = pci_read32(b, PCI_VENDOR_DEVICE);
			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			if (id == ((uint32_t)device << 16 | vendor)) {
				*bdf = b;
				return 0;
			}
			if (fn == 0 && !(pci_read8(b, PCI_HEADER_TYPE) & PCI_MULTI_FUNCTION))
				break;
		}
	}
	return -1;
}

/* Sizes memory BAR i the way firmware and Linux do: decoding off, all ones
 * written, the mask read back, the address restored. A 64-bit BAR must sit
 * below 4 GiB, since the multiboot guest cannot reach anything higher;
 * its upper slot is skipped by the caller. Returns the slots used (1 or 2),
 * with bar_size[i] left 0 when the BAR is absent or unusable. */
static unsigned pci_probe_bar(struct vpci_dev *d, unsigned i)
{
	unsigned reg = PCI_BAR0 + 4 * i;
	uint32_t lo = pci_read32(d->bdf, reg);
	if (lo & PCI_BAR_IO)
		return 1;
	int is64 = (lo & PCI_BAR_TYPE_MASK) == PCI_BAR_TYPE_64 && i + 1 < VPCI_NUM_BARS;
	uint32_t hi = is64 ? pci_read32(d->bdf, reg + 4) : 0;
	uint16_t cmd = pci_cfg_read16(d->bdf, PCI_COMMAND);

	pci_cfg_write16(d->bdf, PCI_COMMAND, (uint16_t)(cmd & ~PCI_CMD_MEMORY));
	pci_write32(d->bdf, reg, 0xffffffffu);
	uint32_t mask = pci_read32(d->bdf, reg) & ~0xfu;
	uint32_t mask_hi = 0;
	if (is64) {
		pci_write32(d->bdf, reg + 4, 0xffffffffu);
		mask_hi = pci_read32(d->bdf, reg + 4);
		pci_write32(d->bdf, reg + 4, hi);
	}
	pci_write32(d->bdf, reg, lo);
	pci_cfg_write16(d->bdf, PCI_COMMAND, cmd);

	uint32_t addr = lo & ~0xfu;
	/* A BAR larger than 2 GiB (or a 64-bit one larger than 4 GiB) is no
	 * use to a driver that only reaches the low 4 GiB. */
	if (mask == 0 || (is64 && mask_hi != 0xffffffffu) || hi != 0 || addr == 0)
		return is64 ? 2 : 1;
	uint32_t size = ~mask + 1;
	if ((size & (size - 1)) || (addr & (size - 1)) || addr > 0xffffffffu - (size - 1))
		return is64 ? 2 : 1;
	d->bar_addr[i] = addr;
	d->bar_size[i] = size;
	return is64 ? 2 : 1;
}

/* The structure [offset, offset+length) of the capability at cap, if it
 * lies inside a usable BAR. */
static int vcap_region(const struct vpci_dev *d, unsigned cap, struct vpci_region *r)
{
	unsigned bar = pci_read8(d->bdf, cap + VCAP_BAR);
	uint32_t off = pci_read32(d->bdf, cap + VCAP_OFFSET);
	uint32_t len = pci_read32(d->bdf, cap + VCAP_LENGTH);
	if (bar >= VPCI_NUM_BARS || !d->bar_size[bar] || len == 0 || off > d->bar_size[bar] ||
	    len > d->bar_size[bar] - off)
		return -1;
	r->base = (uintptr_t)d->bar_addr[bar] + off;
	r->len = len;
	return 0;
}

static void msix_locate(struct vpci_dev *d, unsigned cap)
{
	uint32_t table = pci_read32(d->bdf, cap + MSIX_TABLE);
	unsigned bir = table & MSIX_BIR_MASK;
	uint32_t off = table & ~MSIX_BIR_MASK;
	d->msix_cap = cap;
	if (bir >= VPCI_NUM_BARS || !d->bar_size[bir] || off > d->bar_size[bir] ||
	    MSIX_ENTRY_LEN > d->bar_size[bir] - off)
		return;
	d->msix_table = (uintptr_t)d->bar_addr[bir] + off;
}

/* The first usable capability of each type (§4.1.4.1: "the driver SHOULD
 * use the first instance of each virtio structure type it can support"). */
static const char *pci_walk_caps(struct vpci_dev *d)
{
	if (!(pci_cfg_read16(d->bdf, PCI_STATUS) & PCI_STATUS_CAPS))
		return "no capability list";
	unsigned cap = pci_read8(d->bdf, PCI_CAP_PTR) & 0xfc;
	for (unsigned steps = 0; cap >= PCI_CAP_MIN && steps < PCI_CAP_WALK_MAX; steps++) {
		uint8_t id = pci_read8(d->bdf, cap);
		uint8_t len = pci_read8(d->bdf, cap + VCAP_LEN);
		uint8_t type = pci_read8(d->bdf, cap + VCAP_TYPE);
		if (id == PCI_CAP_MSIX && !d->msix_cap) {
			msix_locate(d, cap);
		} else if (id == PCI_CAP_VNDR && len >= VCAP_MIN_LEN) {
			struct vpci_region r;
			if (type == VCAP_COMMON && !d->common.base && vcap_region(d, cap, &r) == 0 &&
			    r.len >= VC_LEN) {
				d->common = r;
			} else if (type == VCAP_NOTIFY && !d->notify.base && len >= VCAP_NOTIFY_MIN &&
				   vcap_region(d, cap, &r) == 0) {
				d->notify = r;
				d->notify_mult = pci_read32(d->bdf, cap + VCAP_NOTIFY_MULT);
			} else if (type == VCAP_ISR && !d->isr.base && vcap_region(d, cap, &r) == 0) {
				d->isr = r;
			}
		}
		cap = pci_read8(d->bdf, cap + 1) & 0xfc;
	}
	if (!d->common.base)
		return "no common cfg";
	if (!d->notify.base)
		return "no notify cfg";
	return NULL;
}

const char *vpci_open(struct vpci_dev *d, uint16_t device)
{
	memset(d, 0, sizeof(*d));
	if (pci_find(VIRTIO_VENDOR, device, &d->bdf))
		return "no device";
	for (unsigned i = 0; i < VPCI_NUM_BARS;)
		i += pci_probe_bar(d, i);
	uint16_t cmd = pci_cfg_read16(d->bdf, PCI_COMMAND);
	pci_cfg_write16(d->bdf, PCI_COMMAND, cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER);
	return pci_walk_caps(d);
}

/* ---- bounded waiting ---- */

int vpci_wait(int (*done)(const void *), const void *arg)
{
	uint8_t sec = cmos_read(CMOS_SECONDS);
	unsigned ticks = 0;
	for (uint32_t i = 0; i < WAIT_SPIN_MAX; i++) {
		if (done(arg))
			return 0;
		if (i % WAIT_RTC_EVERY == WAIT_RTC_EVERY - 1) {
			uint8_t now = cmos_read(CMOS_SECONDS);
			if (now != sec && ++ticks >= WAIT_SECONDS)
				break;
			sec = now;
		}
		cpu_relax();
	}
	return done(arg) ? 0 : -1;
}

/* ---- the device ---- */

uint8_t vpci_status(const struct vpci_dev *d) { return mmio_read8(d->common.base + VC_STATUS); }

static void status_write(const struct vpci_dev *d, uint8_t v)
{
	mmio_write8(d->common.base + VC_STATUS, v);
}

int vpci_reset(const struct vpci_dev *d)
{
	status_write(d, 0);
	for (unsigned i = 0; i < RESET_SPIN; i++) {
		if (vpci_status(d) == 0)
			return 0;
		cpu_relax();
	}
	return -1;
}

/* A 64-bit register as two 32-bit halves, low first (§4.1.3.1). */
static void common_write64(const struct vpci_dev *d, unsigned off, uint64_t v)
{
	mmio_write32(d->common.base + off, (uint32_t)v);
	mmio_write32(d->common.base + off + 4, (uint32_t)(v >> 32));
}

const char *vpci_negotiate(const struct vpci_dev *d)
{
	uintptr_t c = d->common.base;
	if (vpci_reset(d))
		return "reset timeout";
	status_write(d, VS_ACKNOWLEDGE);
	status_write(d, VS_ACKNOWLEDGE | VS_DRIVER);
	mmio_write32(c + VC_DFSELECT, 0);
	(void)mmio_read32(c + VC_DF); /* no device-type feature is taken */
	mmio_write32(c + VC_DFSELECT, 1);
	uint32_t hi = mmio_read32(c + VC_DF);
	if (!(hi & VIRTIO_F_VERSION_1_HI))
		return "no VERSION_1";
	mmio_write32(c + VC_GFSELECT, 0);
	mmio_write32(c + VC_GF, 0);
	mmio_write32(c + VC_GFSELECT, 1);
	mmio_write32(c + VC_GF, VIRTIO_F_VERSION_1_HI);
	status_write(d, VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK);
	if (!(vpci_status(d) & VS_FEATURES_OK))
		return "features not accepted";
	return NULL;
}

const char *vpci_queue_setup(struct vpci_dev *d, struct vq_rings *vq, unsigned need)
{
	uintptr_t c = d->common.base;
	if (mmio_read16(c + VC_NUM_QUEUES) == 0)
		return "no queues";
	mmio_write16(c + VC_Q_SELECT, 0);
	uint16_t max = mmio_read16(c + VC_Q_SIZE);
	if (max == 0)
		return "queue size 0";
	d->qsize = max < VQ_SIZE ? max : VQ_SIZE;
	if (d->qsize & (d->qsize - 1))
		return "queue size not a power of two";
	if (d->qsize < need)
		return "queue too small";
	mmio_write16(c + VC_Q_SIZE, d->qsize);
	if (mmio_read16(c + VC_Q_SIZE) != d->qsize)
		return "queue size not taken";
	if (d->msix_table) {
		mmio_write16(c + VC_MSIX_CONFIG, VIRTIO_NO_VECTOR);
		mmio_write16(c + VC_Q_MSIX, 0);
	}
	memset(vq, 0, sizeof(*vq));
	d->vq = vq;
	d->avail_idx = 0;
	common_write64(d, VC_Q_DESC, (uintptr_t)vq->desc);
	common_write64(d, VC_Q_AVAIL, (uintptr_t)&vq->avail);
	common_write64(d, VC_Q_USED, (uintptr_t)&vq->used);
	uint32_t noff = mmio_read16(c + VC_Q_NOFF);
	uint64_t where = (uint64_t)noff * d->notify_mult;
	if (where > d->notify.len || d->notify.len - where < 2)
		return "notify offset outside its structure";
	d->notify_addr = d->notify.base + (uintptr_t)where;
	mmio_write16(c + VC_Q_ENABLE, 1);
	if (mmio_read16(c + VC_Q_ENABLE) != 1)
		return "queue not enabled";
	return NULL;
}

const char *vpci_driver_ok(const struct vpci_dev *d)
{
	status_write(d, VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK | VS_DRIVER_OK);
	uint8_t s = vpci_status(d);
	if (s & VS_NEEDS_RESET)
		return "device needs reset";
	if (!(s & VS_DRIVER_OK))
		return "DRIVER_OK refused";
	return NULL;
}

static int used_reached(const void *arg)
{
	const struct vpci_dev *d = arg;
	compiler_barrier();
	return *(volatile uint16_t *)&d->vq->used.idx == d->avail_idx;
}

const char *vpci_submit(struct vpci_dev *d, uint16_t head, struct vq_used_elem *used)
{
	volatile struct vq_avail *avail = &d->vq->avail;
	avail->ring[d->avail_idx & (d->qsize - 1)] = head;
	compiler_barrier(); /* the entry before the index that publishes it */
	d->avail_idx++;
	avail->idx = d->avail_idx;
	compiler_barrier(); /* the index before the notification */
	mmio_write16(d->notify_addr, 0);
	if (vpci_wait(used_reached, d))
		return "timeout";
	compiler_barrier(); /* the used index before the entry it covers */
	volatile struct vq_used_elem *e =
	    &d->vq->used.ring[(uint16_t)(d->avail_idx - 1) & (d->qsize - 1)];
	used->id = e->id;
	used->len = e->len;
	return NULL;
}
