/* Placement helpers shared by the kernel loaders: where RAM is (from the
 * e820 map, ACPI 6.4 §15), where initrds and modules go, and copying the
 * command line and initrds into guest memory.
 *
 * Invariants: every address computation is checked for overflow before use;
 * images are only ever placed in e820 RAM at or above 1 MiB
 * (LAYOUT_HIGH_MEM_START), so they can never overwrite the structures the
 * VMM builds in low memory (GDT, page tables, zero page, command line,
 * boot information, ACPI tables). */
#ifndef SHRIKE_BOOT_BOOTMEM_H
#define SHRIKE_BOOT_BOOTMEM_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/e820.h"
#include "boot/boot.h"
#include "util/errmsg.h"
#include "vm/memory.h"

#define BOOTMEM_PAGE 0x1000ULL

/* The RAM range [*start, *end) containing addr, adjacent RAM entries merged.
 * Returns 0, or -ENOENT if addr is not RAM. */
int bootmem_ram_range(const struct e820_map *map, uint64_t addr, uint64_t *start,
		      uint64_t *end);

/* End of the RAM that starts at 1 MiB (0 if there is none). */
uint64_t bootmem_high_ram_end(const struct e820_map *map);

/* Whether [addr, addr+size) lies at or above 1 MiB, inside one RAM range of
 * the map and inside guest memory. size 0 is checked as one byte. */
bool bootmem_loadable(const struct guest_mem *mem, const struct e820_map *map, uint64_t addr,
		      uint64_t size);

/* Total size of all initrds; -EOVERFLOW if it does not fit 64 bits. */
int bootmem_initrd_total(const struct boot_input *in, uint64_t *total);

/* Highest page-aligned *addr with [*addr, *addr+size) inside [lo, hi);
 * -ENOSPC if there is none. */
int bootmem_place_high(uint64_t lo, uint64_t hi, uint64_t size, uint64_t *addr);

/* Copies all initrds back to back to guest address addr. */
int bootmem_copy_initrds(const struct guest_mem *mem, const struct boot_input *in,
			 uint64_t addr);

/* Writes in->cmdline (NULL means empty) with its NUL at LAYOUT_CMDLINE_ADDR.
 * Refuses, naming the limit, a line longer than max_len bytes (without the
 * NUL) or than LAYOUT_CMDLINE_MAX - 1. */
int bootmem_write_cmdline(const struct guest_mem *mem, const struct boot_input *in,
			  uint64_t max_len, struct errmsg *err);

/* Zeroes [addr, addr+len) of guest memory; -EFAULT if out of range. */
int bootmem_zero(const struct guest_mem *mem, uint64_t addr, uint64_t len);

static inline uint64_t bootmem_align_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) & ~(align - 1);
}

#endif
