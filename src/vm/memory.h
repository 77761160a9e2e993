/* Guest-physical memory: host anonymous memory, populated lazily by the
 * kernel on first touch, laid out as RAM below the 32-bit MMIO hole and the
 * remainder above 4 GiB (arch/x86/layout.h).
 *
 * Invariant: every host pointer derived from a guest address comes from
 * guest_mem_ptr(), which checks the whole range [gpa, gpa+len) against one
 * region, overflow included. No other code computes host addresses. */
#ifndef SHRIKE_VM_MEMORY_H
#define SHRIKE_VM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2
#define GUEST_MEM_MIN_SIZE (16ULL << 20)
#define GUEST_MEM_MAX_SIZE (1ULL << 40)

struct guest_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	uint8_t *base;    /* one mapping backs all regions */
	uint64_t ram_size;
	unsigned nregions;
	struct guest_region region[GUEST_MEM_MAX_REGIONS];
};

/* Maps ram_size bytes (MAP_NORESERVE, lazily populated) and lays them out.
 * Returns 0, -EINVAL for a size outside [MIN, MAX] or not page-aligned,
 * -ENOMEM when the host refuses the mapping. */
int guest_mem_init(struct guest_mem *mem, uint64_t ram_size);
void guest_mem_destroy(struct guest_mem *mem);

/* Host pointer for [gpa, gpa+len) if it lies wholly inside one RAM region,
 * else NULL. len == 0 is treated as 1. */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Copies between guest memory and a host buffer; -EFAULT if out of range. */
int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, uint64_t len);
int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len);

/* End (exclusive) of RAM below 4 GiB. */
uint64_t guest_mem_low_end(const struct guest_mem *mem);

#endif
