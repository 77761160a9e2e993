/* PCI host bridge, CF8/CFC and ECAM, BAR assignment; see host.h. */
#include "pci/host.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"

#define PCI_MEM_BAR_MIN_ALIGN 4096u /* page-aligned BARs can be mapped alone */

int pci_host_init(struct pci_host *h)
{
	memset(h, 0, sizeof(*h));
	const struct pci_ids ids = {
		.vendor = PCI_HOST_VENDOR,
		.device = PCI_HOST_DEVICE,
		.subsys_vendor = 0x1af4, /* Red Hat / virtio vendor, as a generic subsystem */
		.subsys = 0x1100,
		.class_code = PCI_CLASS_HOST_BRIDGE,
	};
	int ret = pci_function_init(&h->bridge, &ids, NULL, NULL);
	if (ret < 0)
		return ret;
	h->slot[0][0] = &h->bridge;
	h->mmio_next = LAYOUT_PCI_MMIO_START;
	h->io_next = PCI_HOST_IO_START;
	pthread_mutex_init(&h->lock, NULL);
	return 0;
}

void pci_host_destroy(struct pci_host *h)
{
	pthread_mutex_destroy(&h->lock);
}

static uint64_t pci_align_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) & ~(align - 1);
}

static int pci_host_alloc(struct pci_host *h, const struct pci_bar *b, uint64_t *addr)
{
	bool io = b->type == PCI_BAR_IO;
	uint64_t *next = io ? &h->io_next : &h->mmio_next;
	uint64_t end = io ? PCI_HOST_IO_END : LAYOUT_PCI_MMIO_END;
	uint64_t align = io || b->size >= PCI_MEM_BAR_MIN_ALIGN ? b->size : PCI_MEM_BAR_MIN_ALIGN;
	uint64_t start = pci_align_up(*next, align);
	if (start < *next || start > end || b->size > end - start)
		return -ENOSPC;
	*addr = start;
	*next = start + b->size;
	return 0;
}

/* Index of the largest declared BAR not yet in `done`, or -1. */
static int pci_largest_bar(const struct pci_function *f, unsigned done)
{
	int best = -1;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (f->bar[i].type == PCI_BAR_NONE || (done & (1u << i)))
			continue;
		if (best < 0 || f->bar[i].size > f->bar[best].size)
			best = (int)i;
	}
	return best;
}

static int pci_host_assign_bars(struct pci_host *h, struct pci_function *f)
{
	uint16_t enable = 0;
	unsigned done = 0;
	for (int i; (i = pci_largest_bar(f, done)) >= 0;) {
		uint64_t addr;
		int ret = pci_host_alloc(h, &f->bar[i], &addr);
		if (ret < 0)
			return ret;
		ret = pci_bar_set_address(f, (unsigned)i, addr);
		if (ret < 0)
			return ret;
		enable |= f->bar[i].type == PCI_BAR_IO ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
		done |= 1u << i;
	}
	if (enable)
		pci_command_set(f, enable);
	return 0;
}

int pci_host_add(struct pci_host *h, unsigned dev, unsigned fn, struct pci_function *f)
{
	if (dev >= PCI_HOST_DEVICES || fn >= PCI_HOST_FUNCTIONS || !f)
		return -EINVAL;
	if (h->slot[dev][fn])
		return -EEXIST;
	struct pci_function *fn0 = h->slot[dev][0];
	if (fn != 0 && !fn0)
		return -ENOENT;
	int ret = pci_host_assign_bars(h, f);
	if (ret < 0)
		return ret;
	if (fn != 0) {
		uint8_t type = (uint8_t)pci_config_get(fn0, PCI_HEADER_TYPE, 1);
		pci_config_set(fn0, PCI_HEADER_TYPE, 1, type | PCI_HEADER_TYPE_MULTI_FUNCTION);
	}
	h->slot[dev][fn] = f;
	h->present[h->npresent++] = f;
	return 0;
}

static struct pci_function *pci_host_lookup(struct pci_host *h, unsigned bus, unsigned dev,
					    unsigned fn)
{
	if (bus != 0 || dev >= PCI_HOST_DEVICES || fn >= PCI_HOST_FUNCTIONS)
		return NULL;
	return h->slot[dev][fn];
}

/* Configuration accesses never cross a dword (both mechanisms). */
static bool pci_access_ok(unsigned reg, unsigned size)
{
	return (size == 1 || size == 2 || size == 4) && reg < PCI_CONFIG_SIZE &&
	       (reg % 4) + size <= 4;
}

static uint32_t pci_ones(unsigned size)
{
	return size >= 4 ? UINT32_MAX : (1u << (8 * size)) - 1;
}

/* Caller holds h->lock. */
static uint32_t pci_host_read_locked(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
				     unsigned reg, unsigned size)
{
	struct pci_function *f = pci_host_lookup(h, bus, dev, fn);
	if (!f || !pci_access_ok(reg, size))
		return pci_ones(size);
	return pci_config_read(f, reg, size);
}

static void pci_host_write_locked(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
				  unsigned reg, unsigned size, uint32_t value)
{
	struct pci_function *f = pci_host_lookup(h, bus, dev, fn);
	if (f && pci_access_ok(reg, size))
		pci_config_write(f, reg, size, value);
}

uint32_t pci_host_config_read(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
			      unsigned reg, unsigned size)
{
	pthread_mutex_lock(&h->lock);
	uint32_t v = pci_host_read_locked(h, bus, dev, fn, reg, size);
	pthread_mutex_unlock(&h->lock);
	return v;
}

void pci_host_config_write(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
			   unsigned reg, unsigned size, uint32_t value)
{
	pthread_mutex_lock(&h->lock);
	pci_host_write_locked(h, bus, dev, fn, reg, size, value);
	pthread_mutex_unlock(&h->lock);
}

/* ---- configuration mechanism #1 ---- */

static void pci_cf8_read(void *opaque, uint64_t off, uint8_t *data, unsigned size)
{
	struct pci_host *h = opaque;
	uint64_t v = UINT64_MAX;
	if (off == 0 && size == 4) {
		pthread_mutex_lock(&h->lock);
		v = h->cf8;
		pthread_mutex_unlock(&h->lock);
	}
	bus_data_put(data, size, v);
}

static void pci_cf8_write(void *opaque, uint64_t off, const uint8_t *data, unsigned size)
{
	struct pci_host *h = opaque;
	if (off != 0 || size != 4)
		return;
	pthread_mutex_lock(&h->lock);
	h->cf8 = (uint32_t)bus_data_get(data, size) & PCI_CF8_MASK;
	pthread_mutex_unlock(&h->lock);
}

/* Decodes the latched address; false when Enable is clear. */
static bool pci_cf8_decode(uint32_t cf8, unsigned *bus, unsigned *dev, unsigned *fn,
			   unsigned *reg)
{
	if (!(cf8 & PCI_CF8_ENABLE))
		return false;
	*bus = (cf8 >> 16) & 0xff;
	*dev = (cf8 >> 11) & 0x1f;
	*fn = (cf8 >> 8) & 0x7;
	*reg = cf8 & 0xfc;
	return true;
}

static void pci_cfc_read(void *opaque, uint64_t off, uint8_t *data, unsigned size)
{
	struct pci_host *h = opaque;
	uint64_t v = UINT64_MAX;
	unsigned bus, dev, fn, reg;
	pthread_mutex_lock(&h->lock);
	if (off < 4 && size <= 4 - off && pci_cf8_decode(h->cf8, &bus, &dev, &fn, &reg))
		v = pci_host_read_locked(h, bus, dev, fn, reg + (unsigned)off, size);
	pthread_mutex_unlock(&h->lock);
	bus_data_put(data, size, v);
}

static void pci_cfc_write(void *opaque, uint64_t off, const uint8_t *data, unsigned size)
{
	struct pci_host *h = opaque;
	unsigned bus, dev, fn, reg;
	pthread_mutex_lock(&h->lock);
	if (off < 4 && size <= 4 - off && pci_cf8_decode(h->cf8, &bus, &dev, &fn, &reg))
		pci_host_write_locked(h, bus, dev, fn, reg + (unsigned)off, size,
				      (uint32_t)bus_data_get(data, size));
	pthread_mutex_unlock(&h->lock);
}

/* ---- ECAM ---- */

struct pci_ecam_addr {
	unsigned bus, dev, fn, reg;
};

static struct pci_ecam_addr pci_ecam_decode(uint64_t off)
{
	return (struct pci_ecam_addr){
		.bus = (unsigned)(off >> 20) & 0xff,
		.dev = (unsigned)(off >> 15) & 0x1f,
		.fn = (unsigned)(off >> 12) & 0x7,
		.reg = (unsigned)off & 0xfff,
	};
}

static void pci_ecam_read(void *opaque, uint64_t off, uint8_t *data, unsigned size)
{
	struct pci_host *h = opaque;
	uint64_t v = UINT64_MAX;
	if (off < LAYOUT_ECAM_SIZE) {
		struct pci_ecam_addr a = pci_ecam_decode(off);
		pthread_mutex_lock(&h->lock);
		if (size == 8 && a.reg % 8 == 0)
			v = pci_host_read_locked(h, a.bus, a.dev, a.fn, a.reg, 4) |
			    (uint64_t)pci_host_read_locked(h, a.bus, a.dev, a.fn, a.reg + 4, 4) << 32;
		else if (size <= 4 && pci_access_ok(a.reg, size))
			v = pci_host_read_locked(h, a.bus, a.dev, a.fn, a.reg, size);
		pthread_mutex_unlock(&h->lock);
	}
	bus_data_put(data, size, v);
}

static void pci_ecam_write(void *opaque, uint64_t off, const uint8_t *data, unsigned size)
{
	struct pci_host *h = opaque;
	if (off >= LAYOUT_ECAM_SIZE)
		return;
	struct pci_ecam_addr a = pci_ecam_decode(off);
	uint64_t v = bus_data_get(data, size);
	pthread_mutex_lock(&h->lock);
	if (size == 8 && a.reg % 8 == 0) {
		pci_host_write_locked(h, a.bus, a.dev, a.fn, a.reg, 4, (uint32_t)v);
		pci_host_write_locked(h, a.bus, a.dev, a.fn, a.reg + 4, 4, (uint32_t)(v >> 32));
	} else if (size <= 4 && pci_access_ok(a.reg, size)) {
		pci_host_write_locked(h, a.bus, a.dev, a.fn, a.reg, size, (uint32_t)v);
	}
	pthread_mutex_unlock(&h->lock);
}

const struct bus_ops pci_host_cf8_ops = {pci_cf8_read, pci_cf8_write};
const struct bus_ops pci_host_cfc_ops = {pci_cfc_read, pci_cfc_write};
const struct bus_ops pci_host_ecam_ops = {pci_ecam_read, pci_ecam_write};

/* ---- BAR windows ---- */

struct pci_bar_hit {
	struct pci_function *fn;
	unsigned bar;
	uint64_t off;
};

/* Finds the enabled BAR of the right kind that wholly contains the access. */
static bool pci_host_find_bar(struct pci_host *h, bool io, uint64_t addr, unsigned size,
			      struct pci_bar_hit *hit)
{
	bool found = false;
	pthread_mutex_lock(&h->lock);
	for (unsigned i = 0; i < h->npresent && !found; i++) {
		struct pci_function *f = h->present[i];
		for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
			const struct pci_bar *bar = &f->bar[b];
			if (bar->type == PCI_BAR_NONE || (bar->type == PCI_BAR_IO) != io ||
			    bar->mapped == PCI_BAR_UNMAPPED || addr < bar->mapped ||
			    addr - bar->mapped >= bar->size || size > bar->size - (addr - bar->mapped))
				continue;
			*hit = (struct pci_bar_hit){f, b, addr - bar->mapped};
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return found;
}

/* Functions are never removed, so the owner's callback runs unlocked. */
static void pci_window_read(struct pci_host *h, bool io, uint64_t addr, uint8_t *data,
			    unsigned size)
{
	struct pci_bar_hit hit;
	memset(data, 0xff, size);
	if (pci_host_find_bar(h, io, addr, size, &hit) && hit.fn->ops && hit.fn->ops->bar_read)
		hit.fn->ops->bar_read(hit.fn->owner, hit.bar, hit.off, data, size);
}

static void pci_window_write(struct pci_host *h, bool io, uint64_t addr, const uint8_t *data,
			     unsigned size)
{
	struct pci_bar_hit hit;
	if (pci_host_find_bar(h, io, addr, size, &hit) && hit.fn->ops && hit.fn->ops->bar_write)
		hit.fn->ops->bar_write(hit.fn->owner, hit.bar, hit.off, data, size);
}

static void pci_mmio_window_read(void *opaque, uint64_t off, uint8_t *data, unsigned size)
{
	pci_window_read(opaque, false, LAYOUT_PCI_MMIO_START + off, data, size);
}

static void pci_mmio_window_write(void *opaque, uint64_t off, const uint8_t *data, unsigned size)
{
	pci_window_write(opaque, false, LAYOUT_PCI_MMIO_START + off, data, size);
}

static void pci_io_window_read(void *opaque, uint64_t off, uint8_t *data, unsigned size)
{
	pci_window_read(opaque, true, PCI_HOST_IO_START + off, data, size);
}

static void pci_io_window_write(void *opaque, uint64_t off, const uint8_t *data, unsigned size)
{
	pci_window_write(opaque, true, PCI_HOST_IO_START + off, data, size);
}

const struct bus_ops pci_host_mmio_window_ops = {pci_mmio_window_read, pci_mmio_window_write};
const struct bus_ops pci_host_io_window_ops = {pci_io_window_read, pci_io_window_write};

int pci_host_attach(struct pci_host *h, struct bus *pio, struct bus *mmio)
{
	int ret = bus_register(pio, PCI_HOST_PORT_ADDR, 4, "pci-cf8", &pci_host_cf8_ops, h);
	if (ret < 0)
		return ret;
	ret = bus_register(pio, PCI_HOST_PORT_DATA, 4, "pci-cfc", &pci_host_cfc_ops, h);
	if (ret < 0)
		return ret;
	ret = bus_register(mmio, LAYOUT_ECAM_ADDR, LAYOUT_ECAM_SIZE, "pci-ecam",
			   &pci_host_ecam_ops, h);
	if (ret < 0)
		return ret;
	ret = bus_register(mmio, LAYOUT_PCI_MMIO_START, LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO_START,
			   "pci-mmio", &pci_host_mmio_window_ops, h);
	if (ret < 0)
		return ret;
	return bus_register(pio, PCI_HOST_IO_START, PCI_HOST_IO_END - PCI_HOST_IO_START, "pci-io",
			    &pci_host_io_window_ops, h);
}
