#include "boot/bootmem.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"

static bool entry_contains(const struct e820_entry *e, uint64_t addr)
{
	return e->type == E820_RAM && addr >= e->addr && addr - e->addr < e->size;
}

/* The map is sorted and non-overlapping (e820.h), so merging adjacent RAM
 * entries needs one pass forward and one backward from the hit. */
int bootmem_ram_range(const struct e820_map *map, uint64_t addr, uint64_t *start,
		      uint64_t *end)
{
	unsigned n = map->count < E820_MAX_ENTRIES ? map->count : E820_MAX_ENTRIES;
	unsigned hit = n;

	for (unsigned i = 0; i < n; i++) {
		if (entry_contains(&map->entry[i], addr)) {
			hit = i;
			break;
		}
	}
	if (hit == n)
		return -ENOENT;
	uint64_t lo = map->entry[hit].addr;
	uint64_t hi = lo + map->entry[hit].size;
	if (hi < lo)
		hi = UINT64_MAX;
	for (unsigned i = hit + 1; i < n; i++) {
		const struct e820_entry *e = &map->entry[i];
		if (e->type != E820_RAM || e->addr != hi || e->addr + e->size < e->addr)
			break;
		hi = e->addr + e->size;
	}
	for (unsigned i = hit; i-- > 0;) {
		const struct e820_entry *e = &map->entry[i];
		if (e->type != E820_RAM || e->addr + e->size != lo)
			break;
		lo = e->addr;
	}
	*start = lo;
	*end = hi;
	return 0;
}

uint64_t bootmem_high_ram_end(const struct e820_map *map)
{
	uint64_t start, end;

	if (bootmem_ram_range(map, LAYOUT_HIGH_MEM_START, &start, &end))
		return 0;
	return end;
}

bool bootmem_loadable(const struct guest_mem *mem, const struct e820_map *map, uint64_t addr,
		      uint64_t size)
{
	uint64_t start, end;

	if (size == 0)
		size = 1;
	if (addr < LAYOUT_HIGH_MEM_START || addr + size < addr)
		return false;
	if (bootmem_ram_range(map, addr, &start, &end))
		return false;
	if (addr + size > end)
		return false;
	return guest_mem_ptr(mem, addr, size) != NULL;
}

int bootmem_initrd_total(const struct boot_input *in, uint64_t *total)
{
	uint64_t sum = 0;

	if (in->ninitrd > BOOT_MAX_INITRDS)
		return -EINVAL;
	for (unsigned i = 0; i < in->ninitrd; i++) {
		if (sum + in->initrd[i].size < sum)
			return -EOVERFLOW;
		sum += in->initrd[i].size;
	}
	*total = sum;
	return 0;
}

int bootmem_place_high(uint64_t lo, uint64_t hi, uint64_t size, uint64_t *addr)
{
	if (hi <= lo || size > hi - lo)
		return -ENOSPC;
	uint64_t a = (hi - size) & ~(BOOTMEM_PAGE - 1);
	if (a < lo)
		return -ENOSPC;
	*addr = a;
	return 0;
}

int bootmem_copy_initrds(const struct guest_mem *mem, const struct boot_input *in,
			 uint64_t addr)
{
	for (unsigned i = 0; i < in->ninitrd && i < BOOT_MAX_INITRDS; i++) {
		const struct boot_blob *b = &in->initrd[i];
		if (b->size == 0)
			continue;
		int rc = guest_mem_write(mem, addr, b->data, b->size);
		if (rc)
			return rc;
		addr += b->size;
	}
	return 0;
}

int bootmem_write_cmdline(const struct guest_mem *mem, const struct boot_input *in,
			  uint64_t max_len, struct errmsg *err)
{
	const char *line = in->cmdline ? in->cmdline : "";
	uint64_t limit = max_len < LAYOUT_CMDLINE_MAX - 1 ? max_len : LAYOUT_CMDLINE_MAX - 1;
	size_t len = strnlen(line, (size_t)limit + 1);

	if (len > limit)
		return errmsg_set(err, E2BIG,
				  "command line is longer than the kernel's limit of %llu bytes",
				  (unsigned long long)limit);
	if (guest_mem_write(mem, LAYOUT_CMDLINE_ADDR, line, len + 1))
		return errmsg_set(err, EFAULT, "no guest memory for the command line");
	return 0;
}

int bootmem_zero(const struct guest_mem *mem, uint64_t addr, uint64_t len)
{
	if (len == 0)
		return 0;
	void *p = guest_mem_ptr(mem, addr, len);
	if (!p)
		return -EFAULT;
	memset(p, 0, len);
	return 0;
}
