/* Polled virtio-blk driver; see vblk.h for the specifications. */
#include "vblk.h"

#include "lib.h"

#define PCI_PORT_ADDR 0xcf8
#define PCI_PORT_DATA 0xcfc
#define PCI_CF8_ENABLE 0x80000000u
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CMD_MEMORY 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_STATUS_CAPS 0x0010
#define PCI_MULTI_FUNCTION 0x80
#define PCI_NUM_BARS 6u
#define PCI_CAP_MIN 0x40u
#define PCI_CAP_WALK_MAX 48u
#define PCI_CAP_VNDR 0x09

#define VIRTIO_VENDOR 0x1af4u
#define VIRTIO_BLK_DEVICE 0x1042u

#define VCAP_LEN 2
#define VCAP_TYPE 3
#define VCAP_BAR 4
#define VCAP_OFFSET 8
#define VCAP_LENGTH 12
#define VCAP_NOTIFY_MULT 16
#define VCAP_MIN_LEN 16u
#define VCAP_NOTIFY_MIN 20u
#define VCAP_COMMON 1
#define VCAP_NOTIFY 2

#define VC_DFSELECT 0x00
#define VC_DF 0x04
#define VC_GFSELECT 0x08
#define VC_GF 0x0c
#define VC_NUM_QUEUES 0x12
#define VC_STATUS 0x14
#define VC_Q_SELECT 0x16
#define VC_Q_SIZE 0x18
#define VC_Q_ENABLE 0x1c
#define VC_Q_NOFF 0x1e
#define VC_Q_DESC 0x20
#define VC_Q_AVAIL 0x28
#define VC_Q_USED 0x30
#define VC_LEN 0x38u

#define VS_ACKNOWLEDGE 0x01
#define VS_DRIVER 0x02
#define VS_DRIVER_OK 0x04
#define VS_FEATURES_OK 0x08
#define VIRTIO_F_VERSION_1_HI 0x1u

#define VQ_DESC_F_NEXT 1
#define VQ_DESC_F_WRITE 2
#define VBLK_T_IN 0
#define VBLK_T_OUT 1
#define VBLK_S_OK 0

#define QSIZE 8u
#define RESET_SPIN 100000u
#define WAIT_SPIN_MAX 50000000u
#define WAIT_RTC_EVERY 256u
#define WAIT_SECONDS 3u

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static struct {
	struct vq_desc desc[QSIZE] __attribute__((aligned(16)));
	struct {
		uint16_t flags, idx, ring[QSIZE], used_event;
	} avail __attribute__((aligned(2)));
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QSIZE];
		uint16_t avail_event;
	} used __attribute__((aligned(4)));
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr __attribute__((aligned(16)));
	uint8_t status;
} vq __attribute__((aligned(64)));

static struct {
	uint32_t bdf;
	uintptr_t common, notify;
	uint16_t qsize, avail_idx;
} dev;

static uint32_t pci_read32(uint32_t bdf, unsigned reg)
{
	outl(PCI_PORT_ADDR, PCI_CF8_ENABLE | bdf | (reg & 0xfc));
	return inl(PCI_PORT_DATA);
}

static uint8_t pci_read8(uint32_t bdf, unsigned reg)
{
	return (uint8_t)(pci_read32(bdf, reg) >> (8 * (reg & 3)));
}

static uint16_t pci_read16(uint32_t bdf, unsigned reg)
{
	return (uint16_t)(pci_read32(bdf, reg) >> (8 * (reg & 2)));
}

static void pci_write16(uint32_t bdf, unsigned reg, uint16_t v)
{
	outl(PCI_PORT_ADDR, PCI_CF8_ENABLE | bdf | (reg & 0xfc));
	outw((uint16_t)(PCI_PORT_DATA + (reg & 2)), v);
}

static int pci_find_blk(uint32_t *bdf)
{
	for (unsigned d = 0; d < 32; d++)
		for (unsigned fn = 0; fn < 8; fn++) {
			uint32_t b = (uint32_t)d << 11 | (uint32_t)fn << 8;
			uint32_t id = pci_read32(b, 0);
			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			if (id == (VIRTIO_BLK_DEVICE << 16 | VIRTIO_VENDOR)) {
				*bdf = b;
				return 0;
			}
			if (fn == 0 && !(pci_read8(b, PCI_HEADER_TYPE) & PCI_MULTI_FUNCTION))
				break;
		}
	return -1;
}

/* The address of the structure a vendor capability describes: its BAR
 * must be a memory BAR below 4 GiB that shrike assigned. */
static uintptr_t vcap_addr(unsigned cap, uint32_t need)
{
	unsigned bar = pci_read8(dev.bdf, cap + VCAP_BAR);
	uint32_t off = pci_read32(dev.bdf, cap + VCAP_OFFSET);
	uint32_t len = pci_read32(dev.bdf, cap + VCAP_LENGTH);
	if (bar >= PCI_NUM_BARS || len < need)
		return 0;
	uint32_t lo = pci_read32(dev.bdf, PCI_BAR0 + 4 * bar);
	if (lo & 1)
		return 0; /* I/O space */
	if ((lo & 6) == 4 && (bar + 1 >= PCI_NUM_BARS || pci_read32(dev.bdf, PCI_BAR0 + 4 * bar + 4)))
		return 0; /* 64-bit above 4 GiB */
	uint32_t base = lo & ~0xfu;
	if (base == 0 || off > 0xffffffffu - base || len > 0xffffffffu - base - off)
		return 0;
	return (uintptr_t)base + off;
}

static const char *walk_caps(void)
{
	uint32_t mult = 0;
	uintptr_t notify = 0;
	if (!(pci_read16(dev.bdf, PCI_STATUS) & PCI_STATUS_CAPS))
		return "no capability list";
	unsigned cap = pci_read8(dev.bdf, PCI_CAP_PTR) & 0xfc;
	for (unsigned steps = 0; cap >= PCI_CAP_MIN && steps < PCI_CAP_WALK_MAX; steps++) {
		uint8_t len = pci_read8(dev.bdf, cap + VCAP_LEN);
		uint8_t type = pci_read8(dev.bdf, cap + VCAP_TYPE);
		if (pci_read8(dev.bdf, cap) == PCI_CAP_VNDR && len >= VCAP_MIN_LEN) {
			if (type == VCAP_COMMON && !dev.common)
				dev.common = vcap_addr(cap, VC_LEN);
			else if (type == VCAP_NOTIFY && !notify && len >= VCAP_NOTIFY_MIN) {
				notify = vcap_addr(cap, 2);
				mult = pci_read32(dev.bdf, cap + VCAP_NOTIFY_MULT);
			}
		}
		cap = pci_read8(dev.bdf, cap + 1) & 0xfc;
	}
	if (!dev.common)
		return "no common cfg";
	if (!notify)
		return "no notify cfg";
	uint32_t noff = 0;
	mmio_write16(dev.common + VC_Q_SELECT, 0);
	noff = mmio_read16(dev.common + VC_Q_NOFF);
	if ((uint64_t)noff * mult > 0x10000)
		return "notify offset out of range";
	dev.notify = notify + (uintptr_t)noff * mult;
	return NULL;
}

static void status_write(uint8_t v) { mmio_write8(dev.common + VC_STATUS, v); }
static uint8_t status_read(void) { return mmio_read8(dev.common + VC_STATUS); }

static void common_write64(unsigned off, uint64_t v)
{
	mmio_write32(dev.common + off, (uint32_t)v);
	mmio_write32(dev.common + off + 4, (uint32_t)(v >> 32));
}

static const char *negotiate_and_setup(void)
{
	uintptr_t c = dev.common;
	status_write(0);
	unsigned i = 0;
	while (status_read() != 0 && ++i < RESET_SPIN)
		cpu_relax();
	if (i == RESET_SPIN)
		return "reset timeout";
	status_write(VS_ACKNOWLEDGE);
	status_write(VS_ACKNOWLEDGE | VS_DRIVER);
	mmio_write32(c + VC_DFSELECT, 1);
	if (!(mmio_read32(c + VC_DF) & VIRTIO_F_VERSION_1_HI))
		return "no VERSION_1";
	mmio_write32(c + VC_GFSELECT, 0);
	mmio_write32(c + VC_GF, 0);
	mmio_write32(c + VC_GFSELECT, 1);
	mmio_write32(c + VC_GF, VIRTIO_F_VERSION_1_HI);
	status_write(VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK);
	if (!(status_read() & VS_FEATURES_OK))
		return "features not accepted";
	if (mmio_read16(c + VC_NUM_QUEUES) == 0)
		return "no queues";
	mmio_write16(c + VC_Q_SELECT, 0);
	uint16_t max = mmio_read16(c + VC_Q_SIZE);
	if (max == 0)
		return "queue size 0";
	dev.qsize = max < QSIZE ? max : QSIZE;
	if (dev.qsize & (dev.qsize - 1))
		return "queue size not a power of two";
	if (dev.qsize < 4)
		return "queue too small";
	mmio_write16(c + VC_Q_SIZE, dev.qsize);
	memset(&vq, 0, sizeof(vq));
	common_write64(VC_Q_DESC, (uintptr_t)vq.desc);
	common_write64(VC_Q_AVAIL, (uintptr_t)&vq.avail);
	common_write64(VC_Q_USED, (uintptr_t)&vq.used);
	mmio_write16(c + VC_Q_ENABLE, 1);
	if (mmio_read16(c + VC_Q_ENABLE) != 1)
		return "queue not enabled";
	status_write(VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK | VS_DRIVER_OK);
	if (!(status_read() & VS_DRIVER_OK))
		return "DRIVER_OK refused";
	return NULL;
}

const char *vblk_init(void)
{
	memset(&dev, 0, sizeof(dev));
	if (pci_find_blk(&dev.bdf))
		return "no device";
	uint16_t cmd = pci_read16(dev.bdf, PCI_COMMAND);
	pci_write16(dev.bdf, PCI_COMMAND, cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER);
	const char *err = walk_caps();
	return err ? err : negotiate_and_setup();
}

/* Spins until the used index reaches ours: at most WAIT_SECONDS ticks of
 * the RTC's seconds (the device answers from another host thread, so
 * the bound is wall-clock time), or WAIT_SPIN_MAX rounds. */
static int wait_used(void)
{
	uint8_t sec = cmos_read(0);
	unsigned ticks = 0;
	for (uint32_t i = 0; i < WAIT_SPIN_MAX; i++) {
		compiler_barrier();
		if (*(volatile uint16_t *)&vq.used.idx == dev.avail_idx)
			return 0;
		if (i % WAIT_RTC_EVERY == WAIT_RTC_EVERY - 1) {
			uint8_t now = cmos_read(0);
			if (now != sec && ++ticks >= WAIT_SECONDS)
				return -1;
			sec = now;
		}
		cpu_relax();
	}
	return -1;
}

const char *vblk_io(int write, uint64_t sector, void *buf, uint32_t n)
{
	if (!dev.common || !dev.qsize)
		return "not initialized";
	if (n == 0 || n > VBLK_MAX_SECTORS)
		return "bad sector count";
	volatile struct vq_desc *d = vq.desc;
	vq.hdr.type = write ? VBLK_T_OUT : VBLK_T_IN;
	vq.hdr.reserved = 0;
	vq.hdr.sector = sector;
	vq.status = 0xff;
	d[0].addr = (uintptr_t)&vq.hdr;
	d[0].len = sizeof(vq.hdr);
	d[0].flags = VQ_DESC_F_NEXT;
	d[0].next = 1;
	d[1].addr = (uintptr_t)buf;
	d[1].len = n * VBLK_SECTOR;
	d[1].flags = (uint16_t)(VQ_DESC_F_NEXT | (write ? 0 : VQ_DESC_F_WRITE));
	d[1].next = 2;
	d[2].addr = (uintptr_t)&vq.status;
	d[2].len = 1;
	d[2].flags = VQ_DESC_F_WRITE;
	d[2].next = 0;
	vq.avail.ring[dev.avail_idx & (dev.qsize - 1)] = 0;
	compiler_barrier(); /* the entry before the index that publishes it */
	dev.avail_idx++;
	*(volatile uint16_t *)&vq.avail.idx = dev.avail_idx;
	compiler_barrier(); /* the index before the notification */
	mmio_write16(dev.notify, 0);
	if (wait_used())
		return "timeout";
	compiler_barrier(); /* the used index before the entry and the status */
	if (vq.used.ring[(uint16_t)(dev.avail_idx - 1) & (dev.qsize - 1)].id != 0)
		return "bad used id";
	if (*(volatile uint8_t *)&vq.status != VBLK_S_OK)
		return "request failed";
	return NULL;
}
