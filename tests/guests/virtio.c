/* Polled virtio-rng driver; see virtio.h for the specifications and the
 * invariants. */
#include "virtio.h"

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
#define PCI_NUM_BARS       6u
#define PCI_CAP_MIN        0x40u
#define PCI_CAP_WALK_MAX   48u /* (256 - 64) / 4: more means a loop */
#define PCI_CAP_VNDR       0x09
#define PCI_CAP_MSIX       0x11

#define VIRTIO_VENDOR      0x1af4u
#define VIRTIO_RNG_DEVICE  0x1044u

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
#define VC_Q_MSIX          0x1a
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
#define VS_FAILED          0x80
#define VIRTIO_F_VERSION_1_HI 0x1u /* bit 32: bit 0 of the upper half */
#define VIRTIO_NO_VECTOR   0xffff
#define VIRTIO_ISR_QUEUE   0x1

#define VQ_DESC_F_WRITE    2

/* MSI-X capability (PCI 3.0 §6.8.2) */
#define MSIX_CONTROL       2
#define MSIX_TABLE         4
#define MSIX_ENABLE        0x8000
#define MSIX_FUNCTION_MASK 0x4000
#define MSIX_SIZE_MASK     0x07ff
#define MSIX_BIR_MASK      0x7u
#define MSIX_ENTRY_LEN     16u

#define LAPIC_BASE         0xfee00000u
#define LAPIC_ID           0x020
#define LAPIC_SVR          0x0f0
#define LAPIC_IRR          0x200
#define LAPIC_SVR_ENABLE   0x100u
#define MSI_ADDR_BASE      0xfee00000u
#define RNG_MSI_VECTOR     0x41u

#define RNG_QUEUE_SIZE     8u
#define RESET_SPIN         100000u
#define WAIT_SPIN_MAX      20000000u /* hard bound if the RTC does not tick */
#define WAIT_RTC_EVERY     256u      /* spins between RTC reads */
#define WAIT_SECONDS       3u        /* RTC second changes before giving up */
#define CMOS_SECONDS       0x00

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[RNG_QUEUE_SIZE];
	uint16_t used_event;
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq_used {
	uint16_t flags;
	uint16_t idx;
	struct vq_used_elem ring[RNG_QUEUE_SIZE];
	uint16_t avail_event;
};

/* The rings and the buffer: guest-physical == virtual in all three guests. */
static struct {
	struct vq_desc desc[RNG_QUEUE_SIZE] __attribute__((aligned(16)));
	struct vq_avail avail __attribute__((aligned(2)));
	struct vq_used used __attribute__((aligned(4)));
	uint8_t buf[RNG_MAX_BYTES] __attribute__((aligned(16)));
} rng_mem __attribute__((aligned(64)));

struct region {
	uintptr_t base;
	uint32_t len;
};

struct rng_dev {
	uint32_t bdf; /* bus << 16 | dev << 11 | fn << 8, as CF8 wants it */
	uint32_t bar_addr[PCI_NUM_BARS];
	uint32_t bar_size[PCI_NUM_BARS]; /* 0: absent or unusable */
	struct region common, notify, isr;
	uint32_t notify_mult;
	unsigned msix_cap;               /* 0: none */
	uintptr_t msix_table;            /* entry 0, or 0 if unusable */
	uint16_t qsize, avail_idx;
	uintptr_t notify_addr;
};

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

static uint16_t pci_read16(uint32_t bdf, unsigned reg)
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

static void pci_write16(uint32_t bdf, unsigned reg, uint16_t v)
{
	pci_select(bdf, reg);
	outw((uint16_t)(PCI_PORT_DATA + (reg & 2)), v);
}

static uint32_t bdf_make(unsigned bus, unsigned dev, unsigned fn)
{
	return (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8;
}

/* Bus 0 only: shrike has no bridges. Functions 1-7 are looked at only
 * when function 0 says it is multi-function. */
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
static unsigned pci_probe_bar(struct rng_dev *d, unsigned i)
{
	unsigned reg = PCI_BAR0 + 4 * i;
	uint32_t lo = pci_read32(d->bdf, reg);
	if (lo & PCI_BAR_IO)
		return 1;
	int is64 = (lo & PCI_BAR_TYPE_MASK) == PCI_BAR_TYPE_64 && i + 1 < PCI_NUM_BARS;
	uint32_t hi = is64 ? pci_read32(d->bdf, reg + 4) : 0;
	uint16_t cmd = pci_read16(d->bdf, PCI_COMMAND);

	pci_write16(d->bdf, PCI_COMMAND, (uint16_t)(cmd & ~PCI_CMD_MEMORY));
	pci_write32(d->bdf, reg, 0xffffffffu);
	uint32_t mask = pci_read32(d->bdf, reg) & ~0xfu;
	uint32_t mask_hi = 0;
	if (is64) {
		pci_write32(d->bdf, reg + 4, 0xffffffffu);
		mask_hi = pci_read32(d->bdf, reg + 4);
		pci_write32(d->bdf, reg + 4, hi);
	}
	pci_write32(d->bdf, reg, lo);
	pci_write16(d->bdf, PCI_COMMAND, cmd);

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
static int vcap_region(const struct rng_dev *d, unsigned cap, struct region *r)
{
	unsigned bar = pci_read8(d->bdf, cap + VCAP_BAR);
	uint32_t off = pci_read32(d->bdf, cap + VCAP_OFFSET);
	uint32_t len = pci_read32(d->bdf, cap + VCAP_LENGTH);
	if (bar >= PCI_NUM_BARS || !d->bar_size[bar] || len == 0 || off > d->bar_size[bar] ||
	    len > d->bar_size[bar] - off)
		return -1;
	r->base = (uintptr_t)d->bar_addr[bar] + off;
	r->len = len;
	return 0;
}

static void msix_locate(struct rng_dev *d, unsigned cap)
{
	uint32_t table = pci_read32(d->bdf, cap + MSIX_TABLE);
	unsigned bir = table & MSIX_BIR_MASK;
	uint32_t off = table & ~MSIX_BIR_MASK;
	d->msix_cap = cap;
	if (bir >= PCI_NUM_BARS || !d->bar_size[bir] || off > d->bar_size[bir] ||
	    MSIX_ENTRY_LEN > d->bar_size[bir] - off)
		return;
	d->msix_table = (uintptr_t)d->bar_addr[bir] + off;
}

/* The first usable capability of each type (§4.1.4.1: "the driver SHOULD
 * use the first instance of each virtio structure type it can support"). */
static const char *pci_walk_caps(struct rng_dev *d)
{
	int have_common = 0, have_notify = 0, have_isr = 0;
	if (!(pci_read16(d->bdf, PCI_STATUS) & PCI_STATUS_CAPS))
		return "no capability list";
	unsigned cap = pci_read8(d->bdf, PCI_CAP_PTR) & 0xfc;
	for (unsigned steps = 0; cap >= PCI_CAP_MIN && steps < PCI_CAP_WALK_MAX; steps++) {
		uint8_t id = pci_read8(d->bdf, cap);
		uint8_t len = pci_read8(d->bdf, cap + VCAP_LEN);
		uint8_t type = pci_read8(d->bdf, cap + VCAP_TYPE);
		if (id == PCI_CAP_MSIX && !d->msix_cap) {
			msix_locate(d, cap);
		} else if (id == PCI_CAP_VNDR && len >= VCAP_MIN_LEN) {
			struct region r;
			if (type == VCAP_COMMON && !have_common && vcap_region(d, cap, &r) == 0 &&
			    r.len >= VC_LEN) {
				have_common = 1;
				d->common = r;
			} else if (type == VCAP_NOTIFY && !have_notify && len >= VCAP_NOTIFY_MIN &&
				 vcap_region(d, cap, &d->notify) == 0) {
				have_notify = 1;
				d->notify_mult = pci_read32(d->bdf, cap + VCAP_NOTIFY_MULT);
			} else if (type == VCAP_ISR && !have_isr) {
				have_isr = vcap_region(d, cap, &d->isr) == 0;
			}
		}
		cap = pci_read8(d->bdf, cap + 1) & 0xfc;
	}
	if (!have_common)
		return "no common cfg";
	if (!have_notify)
		return "no notify cfg";
	if (!have_isr)
		return "no isr cfg";
	return NULL;
}

/* ---- bounded waiting ---- */

/* Spins until done(arg) holds: at most WAIT_SECONDS ticks of the RTC's
 * seconds, or WAIT_SPIN_MAX rounds if the RTC never ticks. The device
 * answers from another host thread, so the bound is wall-clock time
 * rather than guest instructions, whose speed differs by engine. */
static int wait_for(int (*done)(const void *), const void *arg)
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

static int used_reached(const void *arg)
{
	const struct rng_dev *d = arg;
	compiler_barrier();
	return *(volatile uint16_t *)&rng_mem.used.idx == d->avail_idx;
}

static int irr_set(const void *arg)
{
	(void)arg;
	uint32_t irr = mmio_read32(LAPIC_BASE + LAPIC_IRR + 0x10 * (RNG_MSI_VECTOR / 32));
	return (irr >> (RNG_MSI_VECTOR % 32)) & 1;
}

/* ---- the device ---- */

static uint8_t status_read(const struct rng_dev *d)
{
	return mmio_read8(d->common.base + VC_STATUS);
}

static void status_write(const struct rng_dev *d, uint8_t v)
{
	mmio_write8(d->common.base + VC_STATUS, v);
}

/* §4.1.4.3.2: after writing 0 the driver waits for status to read 0. */
static int device_reset(const struct rng_dev *d)
{
	status_write(d, 0);
	for (unsigned i = 0; i < RESET_SPIN; i++) {
		if (status_read(d) == 0)
			return 0;
		cpu_relax();
	}
	return -1;
}

/* A 64-bit register as two 32-bit halves, low first (§4.1.3.1). */
static void common_write64(const struct rng_dev *d, unsigned off, uint64_t v)
{
	mmio_write32(d->common.base + off, (uint32_t)v);
	mmio_write32(d->common.base + off + 4, (uint32_t)(v >> 32));
}

/* §3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK. */
static const char *device_negotiate(const struct rng_dev *d)
{
	uintptr_t c = d->common.base;
	if (device_reset(d))
		return "reset timeout";
	status_write(d, VS_ACKNOWLEDGE);
	status_write(d, VS_ACKNOWLEDGE | VS_DRIVER);
	mmio_write32(c + VC_DFSELECT, 0);
	(void)mmio_read32(c + VC_DF); /* rng has no feature bits of its own */
	mmio_write32(c + VC_DFSELECT, 1);
	uint32_t hi = mmio_read32(c + VC_DF);
	if (!(hi & VIRTIO_F_VERSION_1_HI))
		return "no VERSION_1";
	mmio_write32(c + VC_GFSELECT, 0);
	mmio_write32(c + VC_GF, 0);
	mmio_write32(c + VC_GFSELECT, 1);
	mmio_write32(c + VC_GF, VIRTIO_F_VERSION_1_HI);
	status_write(d, VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK);
	if (!(status_read(d) & VS_FEATURES_OK))
		return "features not accepted";
	return NULL;
}

/* §4.1.5.1.3: queue 0 with the rings in rng_mem, its MSI-X vector mapped
 * to table entry 0 when there is a table, then the notify address. */
static const char *queue_setup(struct rng_dev *d)
{
	uintptr_t c = d->common.base;
	if (mmio_read16(c + VC_NUM_QUEUES) == 0)
		return "no queues";
	mmio_write16(c + VC_Q_SELECT, 0);
	uint16_t max = mmio_read16(c + VC_Q_SIZE);
	if (max == 0)
		return "queue size 0";
	d->qsize = max < RNG_QUEUE_SIZE ? max : RNG_QUEUE_SIZE;
	if (d->qsize & (d->qsize - 1))
		return "queue size not a power of two";
	mmio_write16(c + VC_Q_SIZE, d->qsize);
	if (mmio_read16(c + VC_Q_SIZE) != d->qsize)
		return "queue size not taken";
	if (d->msix_table) {
		mmio_write16(c + VC_MSIX_CONFIG, VIRTIO_NO_VECTOR);
		mmio_write16(c + VC_Q_MSIX, 0);
	}
	memset(rng_mem.desc, 0, sizeof(rng_mem.desc));
	memset(&rng_mem.avail, 0, sizeof(rng_mem.avail));
	memset(&rng_mem.used, 0, sizeof(rng_mem.used));
	common_write64(d, VC_Q_DESC, (uintptr_t)rng_mem.desc);
	common_write64(d, VC_Q_AVAIL, (uintptr_t)&rng_mem.avail);
	common_write64(d, VC_Q_USED, (uintptr_t)&rng_mem.used);
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

/* Posts descriptor 0 as one device-writable buffer of n bytes, notifies
 * queue 0 and waits for the device to return it. */
static const char *rng_request(struct rng_dev *d, uint32_t n, uint32_t *got)
{
	volatile struct vq_desc *desc = &rng_mem.desc[0];
	volatile struct vq_avail *avail = &rng_mem.avail;
	volatile struct vq_used *used = &rng_mem.used;

	memset(rng_mem.buf, 0, n);
	desc->addr = (uintptr_t)rng_mem.buf;
	desc->len = n;
	desc->flags = VQ_DESC_F_WRITE;
	desc->next = 0;
	avail->ring[d->avail_idx & (d->qsize - 1)] = 0;
	compiler_barrier(); /* the entry before the index that publishes it */
	d->avail_idx++;
	avail->idx = d->avail_idx;
	compiler_barrier(); /* the index before the notification */
	mmio_write16(d->notify_addr, 0);
	if (wait_for(used_reached, d))
		return "timeout";
	compiler_barrier(); /* the used index before the entry it covers */
	uint32_t id = used->ring[(uint16_t)(d->avail_idx - 1) & (d->qsize - 1)].id;
	uint32_t len = used->ring[(uint16_t)(d->avail_idx - 1) & (d->qsize - 1)].len;
	if (id != 0) {
		con_printf("rng: error used id %u\n", id);
		return "";
	}
	if (len > n) {
		con_printf("rng: error used len %u > %u\n", len, n);
		return "";
	}
	*got = len;
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
static void check_isr(const struct rng_dev *d)
{
	uint8_t first = mmio_read8(d->isr.base);
	uint8_t second = mmio_read8(d->isr.base);
	con_printf("rng: isr=%x then %x\n", first, second);
}

/* MSI-X mode: entry 0 aimed at this CPU's LAPIC, with interrupts off
 * the vector stays pending in IRR where it can be polled. The LAPIC must
 * be software-enabled or it drops fixed interrupts. */
static void check_msix(struct rng_dev *d, uint32_t n)
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
	uint16_t ctl = pci_read16(d->bdf, d->msix_cap + MSIX_CONTROL);
	pci_write16(d->bdf, d->msix_cap + MSIX_CONTROL,
		    (uint16_t)((ctl | MSIX_ENABLE) & ~MSIX_FUNCTION_MASK));
	if (!(pci_read16(d->bdf, d->msix_cap + MSIX_CONTROL) & MSIX_ENABLE)) {
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
	if (wait_for(irr_set, NULL)) {
		print_error("msi-x ", "no interrupt");
		return;
	}
	con_printf("rng: msi-x %u bytes, %s, vector %x pending\n", got, nonzero(got),
		   RNG_MSI_VECTOR);
}

/* Everything after finding the device; returns an error or NULL. */
static const char *rng_drive(struct rng_dev *d, uint32_t n)
{
	for (unsigned i = 0; i < PCI_NUM_BARS;)
		i += pci_probe_bar(d, i);
	uint16_t cmd = pci_read16(d->bdf, PCI_COMMAND);
	pci_write16(d->bdf, PCI_COMMAND, cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER);
	const char *err = pci_walk_caps(d);
	if (!err)
		err = device_negotiate(d);
	if (!err)
		err = queue_setup(d);
	if (err)
		return err;
	status_write(d, VS_ACKNOWLEDGE | VS_DRIVER | VS_FEATURES_OK | VS_DRIVER_OK);
	uint8_t s = status_read(d);
	if (s & VS_NEEDS_RESET)
		return "device needs reset";
	if (!(s & VS_DRIVER_OK))
		return "DRIVER_OK refused";
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
	struct rng_dev d;
	memset(&d, 0, sizeof(d));
	if (n == 0 || n > RNG_MAX_BYTES) {
		con_printf("rng: error size %u not in 1..%u\n", n, RNG_MAX_BYTES);
		return;
	}
	if (pci_find(VIRTIO_VENDOR, VIRTIO_RNG_DEVICE, &d.bdf)) {
		con_puts("rng: error no device\n");
		return;
	}
	const char *err = rng_drive(&d, n);
	if (err)
		print_error("", err);
	if (!d.common.base)
		return;
	uint8_t status = status_read(&d);
	int reset = device_reset(&d);
	con_printf("rng: status=%02x, after reset %02x\n", status, status_read(&d));
	if (reset)
		con_puts("rng: error reset timeout\n");
}
