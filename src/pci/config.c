/* PCI configuration space with per-byte masks; see config.h. */
#include "pci/config.h"

#include <errno.h>
#include <string.h>

#define PCI_CAP_WALK_LIMIT 48 /* (256 - 64) / 4: more steps means a loop */

static bool pci_range_ok(unsigned off, unsigned size)
{
	return size >= 1 && size <= 4 && off < PCI_CONFIG_SIZE && size <= PCI_CONFIG_SIZE - off;
}

void pci_config_set(struct pci_function *fn, unsigned off, unsigned size, uint32_t value)
{
	if (!pci_range_ok(off, size))
		return;
	for (unsigned i = 0; i < size; i++)
		fn->data[off + i] = (uint8_t)(value >> (8 * i));
}

uint32_t pci_config_get(const struct pci_function *fn, unsigned off, unsigned size)
{
	if (!pci_range_ok(off, size))
		return 0;
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)fn->data[off + i] << (8 * i);
	return v;
}

void pci_config_set_masks(struct pci_function *fn, unsigned off, unsigned size, uint32_t wmask,
			  uint32_t w1cmask)
{
	if (!pci_range_ok(off, size))
		return;
	for (unsigned i = 0; i < size; i++) {
		uint8_t w1c = (uint8_t)(w1cmask >> (8 * i));
		/* keep the invariant wmask & w1cmask == 0 */
		fn->wmask[off + i] = (uint8_t)(wmask >> (8 * i)) & (uint8_t)~w1c;
		fn->w1cmask[off + i] = w1c;
	}
}

int pci_function_init(struct pci_function *fn, const struct pci_ids *ids,
		      const struct pci_function_ops *ops, void *owner)
{
	if (ids->irq_pin > 4)
		return -EINVAL;
	memset(fn, 0, sizeof(*fn));
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		fn->bar[i].mapped = PCI_BAR_UNMAPPED;
	fn->cap_free = PCI_CAP_START;
	fn->ops = ops;
	fn->owner = owner;

	pci_config_set(fn, PCI_VENDOR_ID, 2, ids->vendor);
	pci_config_set(fn, PCI_DEVICE_ID, 2, ids->device);
	pci_config_set(fn, PCI_REVISION_ID, 1, ids->revision);
	pci_config_set(fn, PCI_CLASS_PROG, 1, ids->class_code & 0xff);
	pci_config_set(fn, PCI_CLASS_PROG + 1, 2, (ids->class_code >> 8) & 0xffff);
	pci_config_set(fn, PCI_SUBSYSTEM_VENDOR_ID, 2, ids->subsys_vendor);
	pci_config_set(fn, PCI_SUBSYSTEM_ID, 2, ids->subsys);
	pci_config_set(fn, PCI_INTERRUPT_PIN, 1, ids->irq_pin);
	pci_config_set(fn, PCI_INTERRUPT_LINE, 1, ids->irq_line);

	pci_config_set_masks(fn, PCI_COMMAND, 2, PCI_COMMAND_WRITABLE, 0);
	pci_config_set_masks(fn, PCI_STATUS, 2, 0, PCI_STATUS_W1C);
	pci_config_set_masks(fn, PCI_CACHE_LINE_SIZE, 1, 0xff, 0);
	pci_config_set_masks(fn, PCI_INTERRUPT_LINE, 1, 0xff, 0);
	return 0;
}

uint32_t pci_config_read(const struct pci_function *fn, unsigned off, unsigned size)
{
	if (!pci_range_ok(off, size))
		return UINT32_MAX;
	return pci_config_get(fn, off, size);
}

static uint64_t pci_bar_limit(enum pci_bar_type type)
{
	switch (type) {
	case PCI_BAR_MEM32:
		return UINT32_MAX;
	case PCI_BAR_IO:
		return 0xffff; /* x86 port space */
	default:
		return UINT64_MAX;
	}
}

uint64_t pci_bar_address(const struct pci_function *fn, unsigned bar)
{
	if (bar >= PCI_NUM_BARS)
		return 0;
	unsigned off = PCI_BAR0 + 4 * bar;
	uint32_t lo = pci_config_get(fn, off, 4);
	switch (fn->bar[bar].type) {
	case PCI_BAR_MEM32:
		return lo & ~0xfu;
	case PCI_BAR_MEM64:
		return (lo & ~0xfu) | (uint64_t)pci_config_get(fn, off + 4, 4) << 32;
	case PCI_BAR_IO:
		return lo & ~0x3u;
	default:
		return 0;
	}
}

/* Where the BAR decodes now, per the invariant in config.h. */
static uint64_t pci_bar_decode(const struct pci_function *fn, unsigned bar)
{
	const struct pci_bar *b = &fn->bar[bar];
	uint16_t cmd = (uint16_t)pci_config_get(fn, PCI_COMMAND, 2);
	uint16_t enable = b->type == PCI_BAR_IO ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
	if (b->type == PCI_BAR_NONE || !(cmd & enable))
		return PCI_BAR_UNMAPPED;
	uint64_t addr = pci_bar_address(fn, bar);
	/* the last byte must lie strictly below the space's last address:
	 * the sizing value ~(size - 1) ends exactly there and never decodes */
	if (addr == 0 || addr >= pci_bar_limit(b->type) - (b->size - 1))
		return PCI_BAR_UNMAPPED;
	return addr;
}

static void pci_bars_update(struct pci_function *fn)
{
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t now = pci_bar_decode(fn, i);
		uint64_t old = fn->bar[i].mapped;
		if (now == old)
			continue;
		fn->bar[i].mapped = now;
		if (fn->ops && fn->ops->bar_remap)
			fn->ops->bar_remap(fn->owner, i, old, now);
	}
}

void pci_config_write(struct pci_function *fn, unsigned off, unsigned size, uint32_t value)
{
	if (!pci_range_ok(off, size))
		return;
	for (unsigned i = 0; i < size; i++) {
		unsigned b = off + i;
		uint8_t v = (uint8_t)(value >> (8 * i));
		uint8_t n = (uint8_t)((fn->data[b] & ~fn->wmask[b]) | (v & fn->wmask[b]));
		fn->data[b] = (uint8_t)(n & ~(v & fn->w1cmask[b]));
	}
	/* Command (0x04) through the last BAR (0x27) can move a BAR */
	if (off < PCI_BAR0 + 4 * PCI_NUM_BARS && off + size > PCI_COMMAND)
		pci_bars_update(fn);
	if (fn->ops && fn->ops->config_written)
		fn->ops->config_written(fn->owner, off, size);
}

int pci_config_add_cap(struct pci_function *fn, uint8_t id, unsigned len)
{
	if (len < 2 || len > PCI_CONFIG_LEGACY_SIZE)
		return -EINVAL;
	unsigned off = fn->cap_free;
	if (off < PCI_CAP_START || len > PCI_CONFIG_LEGACY_SIZE - off)
		return -ENOSPC;
	pci_config_set(fn, off, 1, id);
	pci_config_set(fn, off + 1, 1, 0);
	if (fn->cap_last)
		pci_config_set(fn, fn->cap_last + 1u, 1, off);
	else
		pci_config_set(fn, PCI_CAPABILITY_LIST, 1, off);
	uint16_t status = (uint16_t)pci_config_get(fn, PCI_STATUS, 2);
	pci_config_set(fn, PCI_STATUS, 2, status | PCI_STATUS_CAP_LIST);
	fn->cap_last = (uint8_t)off;
	unsigned next = (off + len + 3) & ~3u;
	/* 0 marks the conventional space as full (the next add fails) */
	fn->cap_free = next >= PCI_CONFIG_LEGACY_SIZE ? 0 : (uint8_t)next;
	return (int)off;
}

int pci_config_find_cap(const struct pci_function *fn, uint8_t id)
{
	if (!(pci_config_get(fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return -ENOENT;
	unsigned off = pci_config_get(fn, PCI_CAPABILITY_LIST, 1) & ~3u;
	for (unsigned steps = 0; off >= PCI_CAP_START && steps < PCI_CAP_WALK_LIMIT; steps++) {
		if (pci_config_get(fn, off, 1) == id)
			return (int)off;
		off = pci_config_get(fn, off + 1, 1) & ~3u;
	}
	return -ENOENT;
}

static bool pci_bar_size_ok(enum pci_bar_type type, uint64_t size)
{
	if (size == 0 || (size & (size - 1)))
		return false;
	switch (type) {
	case PCI_BAR_MEM32:
		return size >= 16 && size <= (1ull << 31);
	case PCI_BAR_MEM64:
		return size >= 16 && size <= (1ull << 63);
	case PCI_BAR_IO:
		return size >= 4 && size <= 256;
	default:
		return false;
	}
}

int pci_bar_add(struct pci_function *fn, unsigned bar, enum pci_bar_type type, uint64_t size,
		bool prefetchable)
{
	unsigned slots = type == PCI_BAR_MEM64 ? 2 : 1;
	if (bar >= PCI_NUM_BARS || bar + slots > PCI_NUM_BARS || !pci_bar_size_ok(type, size))
		return -EINVAL;
	if (type == PCI_BAR_IO && prefetchable)
		return -EINVAL;
	for (unsigned i = bar; i < bar + slots; i++)
		if (fn->bar[i].type != PCI_BAR_NONE || fn->bar[i].size)
			return -EBUSY;

	unsigned off = PCI_BAR0 + 4 * bar;
	uint64_t addr_mask = ~(size - 1);
	uint32_t bits;
	if (type == PCI_BAR_IO) {
		bits = PCI_BAR_SPACE_IO;
		addr_mask &= 0xfffc; /* upper 16 bits hardwired 0: 64 KiB port space */
	} else {
		bits = (type == PCI_BAR_MEM64 ? PCI_BAR_MEM_TYPE_64 : 0) |
		       (prefetchable ? PCI_BAR_MEM_PREFETCH : 0);
		addr_mask &= ~(uint64_t)0xf;
	}
	pci_config_set(fn, off, 4, bits);
	pci_config_set_masks(fn, off, 4, (uint32_t)addr_mask, 0);
	if (type == PCI_BAR_MEM64) {
		pci_config_set(fn, off + 4, 4, 0);
		pci_config_set_masks(fn, off + 4, 4, (uint32_t)(addr_mask >> 32), 0);
		fn->bar[bar + 1].size = size; /* marks the upper half as taken */
	}
	fn->bar[bar].type = type;
	fn->bar[bar].size = size;
	fn->bar[bar].mapped = PCI_BAR_UNMAPPED;
	return 0;
}

int pci_bar_set_address(struct pci_function *fn, unsigned bar, uint64_t addr)
{
	if (bar >= PCI_NUM_BARS || fn->bar[bar].type == PCI_BAR_NONE)
		return -EINVAL;
	const struct pci_bar *b = &fn->bar[bar];
	if ((addr & (b->size - 1)) || addr > pci_bar_limit(b->type) - (b->size - 1))
		return -EINVAL;
	unsigned off = PCI_BAR0 + 4 * bar;
	uint32_t low_bits = pci_config_get(fn, off, 4) & (b->type == PCI_BAR_IO ? 0x3u : 0xfu);
	pci_config_set(fn, off, 4, (uint32_t)addr | low_bits);
	if (b->type == PCI_BAR_MEM64)
		pci_config_set(fn, off + 4, 4, (uint32_t)(addr >> 32));
	pci_bars_update(fn);
	return 0;
}

void pci_command_set(struct pci_function *fn, uint16_t bits)
{
	uint16_t cmd = (uint16_t)pci_config_get(fn, PCI_COMMAND, 2);
	pci_config_set(fn, PCI_COMMAND, 2, cmd | bits);
	pci_bars_update(fn);
}
