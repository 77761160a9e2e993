#include "vm/memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/x86/layout.h"

#define PAGE_MASK 0xfffULL

int guest_mem_init(struct guest_mem *mem, uint64_t ram_size)
{
	memset(mem, 0, sizeof(*mem));
	if (ram_size < GUEST_MEM_MIN_SIZE || ram_size > GUEST_MEM_MAX_SIZE || (ram_size & PAGE_MASK))
		return -EINVAL;

	void *base = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -ENOMEM;
	/* Guest RAM is large and mostly idle: allow huge pages, and keep it out
	 * of core dumps of the VMM. Both are hints; failures are harmless. */
	madvise(base, ram_size, MADV_HUGEPAGE);
	madvise(base, ram_size, MADV_DONTDUMP);

	/* The stamps, like RAM, are populated lazily: 4 bytes per guest page. */
	void *stamps = mmap(NULL, ram_size / 1024, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (stamps == MAP_FAILED) {
		munmap(base, ram_size);
		return -ENOMEM;
	}
	mem->stamps = stamps;
	mem->base = base;
	mem->ram_size = ram_size;
	uint64_t low = ram_size < LAYOUT_MMIO_HOLE_START ? ram_size : LAYOUT_MMIO_HOLE_START;
	mem->region[0] = (struct guest_region){
	    .gpa = 0, .size = low, .host = mem->base, .stamp = mem->stamps};
	mem->nregions = 1;
	if (ram_size > low) {
		mem->region[1] = (struct guest_region){
		    .gpa = LAYOUT_4G, .size = ram_size - low, .host = mem->base + low,
		    .stamp = mem->stamps + low / 4096};
		mem->nregions = 2;
	}
	return 0;
}

void guest_mem_destroy(struct guest_mem *mem)
{
	if (mem->base)
		munmap(mem->base, mem->ram_size);
	if (mem->stamps)
		munmap(mem->stamps, mem->ram_size / 1024);
	memset(mem, 0, sizeof(*mem));
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		len = 1;
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct guest_region *r = &mem->region[i];
		/* Written so that no sum can overflow: gpa >= r->gpa first. */
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off >= r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, uint64_t len)
{
	void *p = guest_mem_ptr(mem, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = guest_mem_ptr(mem, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	guest_mem_code_written(mem, gpa, len);
	return 0;
}

uint32_t *guest_mem_code_stamp(const struct guest_mem *mem, uint64_t gpa)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct guest_region *r = &mem->region[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r->stamp + (gpa - r->gpa) / 4096;
	}
	return NULL;
}

uint32_t guest_mem_code_mark(uint32_t *stamp, bool *newly)
{
	uint32_t old = __atomic_fetch_or(stamp, GUEST_CODE_BIT, __ATOMIC_ACQ_REL);
	*newly = !(old & GUEST_CODE_BIT);
	return old | GUEST_CODE_BIT;
}

void guest_mem_code_invalidate(uint32_t *stamp)
{
	/* Clear the bit and advance the count in one step: a concurrent mark
	 * either happened before (and is invalidated) or sees the new count. */
	uint32_t old = __atomic_load_n(stamp, __ATOMIC_RELAXED);
	while ((old & GUEST_CODE_BIT) &&
	       !__atomic_compare_exchange_n(stamp, &old, (old + 2) & ~GUEST_CODE_BIT, true,
					    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		;
}

void guest_mem_code_written(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		return;
	uint64_t last = gpa + len - 1 < gpa ? UINT64_MAX : gpa + len - 1;
	for (uint64_t page = gpa & ~PAGE_MASK; page <= last; page += 4096) {
		guest_mem_code_written_page(guest_mem_code_stamp(mem, page));
		if (page + 4096 < page)
			break;
	}
}

void guest_mem_code_written_host(const struct guest_mem *mem, const void *host, uint64_t len)
{
	const uint8_t *p = host;
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct guest_region *r = &mem->region[i];
		if (p >= r->host && (uint64_t)(p - r->host) < r->size) {
			guest_mem_code_written(mem, r->gpa + (uint64_t)(p - r->host), len);
			return;
		}
	}
}

uint64_t guest_mem_low_end(const struct guest_mem *mem)
{
	return mem->nregions ? mem->region[0].size : 0;
}
