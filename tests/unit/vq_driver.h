/* The driver side of one split virtqueue (virtio 1.x §2.7), built by hand
 * in a guest_mem for unit tests and fuzz targets: descriptors (§2.7.5),
 * the available ring (§2.7.6, §2.7.13) and the used ring read back
 * (§2.7.8). Header-only and free of cmocka, so fuzz targets can use it.
 *
 * Error reporting: whatever writes guest memory returns 0 (add_chain: the
 * head) or -1, and the caller asserts or traps. Readers return the value:
 * the ring layout is the caller's own, so a read outside guest memory is
 * a bug in the test itself, and they abort() rather than return a value a
 * test could mistake for the device's.
 *
 * Invariants: `size` is the queue size the device was (or will be)
 * enabled with, a power of two, so ring slots are taken modulo it by
 * masking; avail_idx and next_desc count freely and wrap at 2^16 like the
 * device's indexes. Not thread-safe: one driver per queue, as in a guest. */
#ifndef SHRIKE_TESTS_VQ_DRIVER_H
#define SHRIKE_TESTS_VQ_DRIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtqueue.h"
#include "vm/memory.h"

struct vqd {
	const struct guest_mem *mem;
	uint64_t desc, avail, used; /* ring GPAs */
	uint32_t size;              /* entries, a power of two */
	uint16_t avail_idx;         /* the driver's next avail->idx */
	uint16_t next_desc;         /* next free descriptor for vqd_add_chain() */
};

/* One buffer of a chain, as the driver describes it. */
struct vqd_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

static inline void vqd_init(struct vqd *d, const struct guest_mem *mem, uint64_t desc,
			    uint64_t avail, uint64_t used, uint32_t size)
{
	*d = (struct vqd){.mem = mem, .desc = desc, .avail = avail, .used = used, .size = size};
}

static inline int vqd_put(const struct guest_mem *mem, uint64_t gpa, const void *v, unsigned n)
{
	return guest_mem_write(mem, gpa, v, n) ? -1 : 0;
}

static inline int vqd_put16(const struct guest_mem *mem, uint64_t gpa, uint16_t v)
{
	return vqd_put(mem, gpa, &v, 2);
}

static inline void vqd_get(const struct guest_mem *mem, uint64_t gpa, void *v, unsigned n)
{
	if (guest_mem_read(mem, gpa, v, n))
		abort();
}

static inline uint16_t vqd_get16(const struct guest_mem *mem, uint64_t gpa)
{
	uint16_t v;
	vqd_get(mem, gpa, &v, 2);
	return v;
}

static inline uint32_t vqd_get32(const struct guest_mem *mem, uint64_t gpa)
{
	uint32_t v;
	vqd_get(mem, gpa, &v, 4);
	return v;
}

/* Writes entry i of any descriptor table (the queue's or an indirect
 * one) raw, so malformed entries can be built too. */
static inline int vqd_write_desc(const struct guest_mem *mem, uint64_t table, uint32_t i,
				 uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t e[16];
	memcpy(e, &addr, 8);
	memcpy(e + 8, &len, 4);
	memcpy(e + 12, &flags, 2);
	memcpy(e + 14, &next, 2);
	return vqd_put(mem, table + 16ULL * i, e, 16);
}

static inline int vqd_set_desc(const struct vqd *d, uint32_t i, uint64_t addr, uint32_t len,
			       uint16_t flags, uint16_t next)
{
	return vqd_write_desc(d->mem, d->desc, i, addr, len, flags, next);
}

/* Zeroes the three rings and the driver's indexes, as a driver does
 * before it enables a queue. */
static inline int vqd_clear(struct vqd *d)
{
	const uint64_t gpa[3] = {d->desc, d->avail, d->used};
	const uint64_t len[3] = {vq_desc_bytes(d->size), vq_avail_bytes(d->size),
				 vq_used_bytes(d->size)};
	for (unsigned r = 0; r < 3; r++) {
		void *p = guest_mem_ptr(d->mem, gpa[r], len[r]);
		if (!p)
			return -1;
		memset(p, 0, len[r]);
	}
	d->avail_idx = d->next_desc = 0;
	return 0;
}

/* Enables `vq` on this layout; guest memory is left alone, so rings laid
 * out beforehand are kept (vqd_clear() first for empty ones). */
static inline int vqd_enable(const struct vqd *d, struct virtqueue *vq, uint64_t features)
{
	return vq_enable(vq, d->size, d->desc, d->avail, d->used, features);
}

/* Publishes `head` in the available ring: the entry, then avail->idx. */
static inline int vqd_publish(struct vqd *d, uint16_t head)
{
	if (vqd_put16(d->mem, d->avail + 4 + 2ULL * (d->avail_idx & (d->size - 1)), head))
		return -1;
	d->avail_idx++;
	return vqd_put16(d->mem, d->avail + 2, d->avail_idx);
}

/* Builds a chain of n buffers from the next free descriptors (round
 * robin) and publishes it. Returns the head, or -1. */
static inline int vqd_add_chain(struct vqd *d, const struct vqd_buf *b, unsigned n)
{
	if (n == 0 || n > d->size)
		return -1;
	uint16_t head = (uint16_t)(d->next_desc & (d->size - 1));
	for (unsigned i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) & (d->size - 1));
		uint16_t flags = (uint16_t)((b[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		if (vqd_set_desc(d, at, b[i].gpa, b[i].len, flags,
				 (uint16_t)((at + 1) & (d->size - 1))))
			return -1;
	}
	d->next_desc = (uint16_t)(d->next_desc + n);
	return vqd_publish(d, head) ? -1 : head;
}

/* used ring: {le16 flags, le16 idx, {le32 id, le32 len} ring[size]}. */
static inline uint16_t vqd_used_flags(const struct vqd *d) { return vqd_get16(d->mem, d->used); }
static inline uint16_t vqd_used_idx(const struct vqd *d) { return vqd_get16(d->mem, d->used + 2); }

static inline uint64_t vqd_used_elem(const struct vqd *d, uint16_t i)
{
	return d->used + 4 + 8ULL * (i & (d->size - 1));
}
static inline uint32_t vqd_used_id(const struct vqd *d, uint16_t i)
{
	return vqd_get32(d->mem, vqd_used_elem(d, i));
}
static inline uint32_t vqd_used_len(const struct vqd *d, uint16_t i)
{
	return vqd_get32(d->mem, vqd_used_elem(d, i) + 4);
}

#endif
