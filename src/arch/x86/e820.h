/* The guest memory map (ACPI 6.4 §15, "System Address Map Interfaces";
 * Linux boot protocol boot_params.e820_table). Built once from guest
 * memory and shared by every loader: the zero page, PVH memmap and
 * multiboot mmap are all translations of this one map.
 *
 * Invariant: entries are sorted by address and do not overlap. */
#ifndef SHRIKE_ARCH_X86_E820_H
#define SHRIKE_ARCH_X86_E820_H

#include <stdint.h>

#include "vm/memory.h"

#define E820_MAX_ENTRIES 16

enum e820_type { E820_RAM = 1, E820_RESERVED = 2, E820_ACPI = 3, E820_NVS = 4 };

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

struct e820_map {
	unsigned count;
	struct e820_entry entry[E820_MAX_ENTRIES];
};

/* RAM 0..EBDA, reserved EBDA..640K, ACPI tables (as reserved) in the BIOS
 * area, RAM 1 MiB..low end, and RAM above 4 GiB when present. */
void e820_build(struct e820_map *map, const struct guest_mem *mem);

/* Sum of RAM bytes in [lo, hi). */
uint64_t e820_ram_between(const struct e820_map *map, uint64_t lo, uint64_t hi);

#endif
