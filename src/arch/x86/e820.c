#include "arch/x86/e820.h"

#include <string.h>

#include "arch/x86/layout.h"

static void e820_add(struct e820_map *map, uint64_t addr, uint64_t size, uint32_t type)
{
	if (size == 0 || map->count == E820_MAX_ENTRIES)
		return;
	map->entry[map->count++] = (struct e820_entry){addr, size, type};
}

void e820_build(struct e820_map *map, const struct guest_mem *mem)
{
	uint64_t low_end = guest_mem_low_end(mem);

	memset(map, 0, sizeof(*map));
	e820_add(map, 0, LAYOUT_EBDA_ADDR, E820_RAM);
	e820_add(map, LAYOUT_EBDA_ADDR, LAYOUT_LOW_RAM_END - LAYOUT_EBDA_ADDR, E820_RESERVED);
	e820_add(map, LAYOUT_ACPI_ADDR, LAYOUT_HIGH_MEM_START - LAYOUT_ACPI_ADDR, E820_RESERVED);
	if (low_end > LAYOUT_HIGH_MEM_START)
		e820_add(map, LAYOUT_HIGH_MEM_START, low_end - LAYOUT_HIGH_MEM_START, E820_RAM);
	for (unsigned i = 1; i < mem->nregions; i++)
		e820_add(map, mem->region[i].gpa, mem->region[i].size, E820_RAM);
}

uint64_t e820_ram_between(const struct e820_map *map, uint64_t lo, uint64_t hi)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < map->count; i++) {
		const struct e820_entry *e = &map->entry[i];
		if (e->type != E820_RAM)
			continue;
		uint64_t a = e->addr > lo ? e->addr : lo;
		uint64_t b = e->addr + e->size < hi ? e->addr + e->size : hi;
		if (b > a)
			total += b - a;
	}
	return total;
}
