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
	/* One code stamp per page of the region (see guest_mem_code_stamp). */
	uint32_t *stamp;
};

struct guest_mem {
	uint8_t *base;    /* one mapping backs all regions */
	uint32_t *stamps; /* code stamps of all regions, one per page */
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

/* Code stamps: how the soft engine knows that guest code it decoded or
 * translated is still what memory holds, whoever wrote it (the guest
 * itself, another vCPU, a device by DMA). One 32-bit word per page:
 * bit 0 (GUEST_CODE_BIT) is set while decoded code from the page exists;
 * a write to such a page clears it and advances the rest of the word, so
 * every stamp a decoder recorded before the write no longer matches.
 *
 * Contract: whoever writes guest RAM other than through a vCPU's soft MMU
 * (devices through virtqueue buffers, guest_mem_write, tests writing
 * through guest_mem_ptr) calls guest_mem_code_written() after writing.
 * Pages without code make that a load and a test per page. */
#define GUEST_CODE_BIT 1u

/* The page's stamp word, or NULL for a gpa outside RAM. */
uint32_t *guest_mem_code_stamp(const struct guest_mem *mem, uint64_t gpa);
/* Marks the page as holding decoded code; returns the stamp to record
 * (always with GUEST_CODE_BIT) and sets *newly when the bit was clear. */
uint32_t guest_mem_code_mark(uint32_t *stamp, bool *newly);
/* Invalidates decoded code in [gpa, gpa+len) (ranges outside RAM are ignored). */
void guest_mem_code_written(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* The same for a host range inside guest RAM (device buffers). */
void guest_mem_code_written_host(const struct guest_mem *mem, const void *host, uint64_t len);
/* The slow half of the above for one stamp known to have the code bit. */
void guest_mem_code_invalidate(uint32_t *stamp);

static inline void guest_mem_code_written_page(uint32_t *stamp)
{
	if (stamp && (__atomic_load_n(stamp, __ATOMIC_RELAXED) & GUEST_CODE_BIT))
		guest_mem_code_invalidate(stamp);
}

/* End (exclusive) of RAM below 4 GiB. */
uint64_t guest_mem_low_end(const struct guest_mem *mem);

#endif
