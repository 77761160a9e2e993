/* A fake virtio transport for device backends (virtio/device.h), for unit
 * tests and fuzz targets: a 16 MiB guest, the queues, a virtio_queue_ctx
 * whose callbacks only count, and a driver side that lays out split rings
 * by hand (§2.7) and reads the used ring back. Header-only; no cmocka, so
 * fuzz targets can use it too (helpers return -1 where a test asserts).
 *
 * Layout: queue q has its descriptor table at VH_RING_GPA(q), the
 * available ring 0x2000 above it and the used ring 0x3000 above it; data
 * buffers live from VH_DATA_GPA up. */
#ifndef SHRIKE_TESTS_VDEV_HARNESS_H
#define SHRIKE_TESTS_VDEV_HARNESS_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "virtio/device.h"
#include "virtio/virtqueue.h"
#include "vm/memory.h"

#define VH_RAM GUEST_MEM_MIN_SIZE
#define VH_RING_GPA(q) (0x10000ULL * ((q) + 1))
#define VH_AVAIL_OFF 0x2000u
#define VH_USED_OFF 0x3000u
#define VH_DATA_GPA 0x100000ULL
#define VH_MAX_BUFS 16u

struct vh {
	struct guest_mem mem;
	struct virtqueue vq[VIRTIO_MAX_QUEUES];
	struct virtio_queue_ctx ctx;
	uint16_t avail_idx[VIRTIO_MAX_QUEUES]; /* driver's next avail->idx */
	uint16_t next_desc[VIRTIO_MAX_QUEUES]; /* descriptors are handed out round-robin */
	/* What the device did through the ctx. */
	unsigned used_calls[VIRTIO_MAX_QUEUES];
	unsigned used_total;                  /* used() calls on all queues */
	unsigned used_last[VIRTIO_MAX_QUEUES]; /* used_total after q's last call */
	unsigned failed_calls;
	const char *failed_why;
	int watched_fd;  /* -1: none */
	unsigned watch_calls;
	unsigned requeue_calls;
	int watch_result; /* what watch_fd() returns */
};

/* One buffer of a chain, as the driver describes it. */
struct vh_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

static inline void vh_used_cb(void *transport, unsigned q)
{
	struct vh *h = transport;
	if (q < VIRTIO_MAX_QUEUES)
		h->used_calls[q]++;
	h->used_total++;
	if (q < VIRTIO_MAX_QUEUES)
		h->used_last[q] = h->used_total;
}

static inline void vh_config_changed_cb(void *transport) { (void)transport; }

static inline void vh_failed_cb(void *transport, const char *why)
{
	struct vh *h = transport;
	h->failed_calls++;
	h->failed_why = why;
}

static inline int vh_watch_fd_cb(void *transport, int fd, bool on)
{
	struct vh *h = transport;
	h->watch_calls++;
	if (h->watch_result)
		return h->watch_result;
	h->watched_fd = on ? fd : -1;
	return 0;
}

static inline void vh_requeue_cb(void *transport, unsigned q)
{
	struct vh *h = transport;
	(void)q;
	h->requeue_calls++;
}

static inline int vh_init(struct vh *h, unsigned nvq)
{
	memset(h, 0, sizeof(*h));
	if (guest_mem_init(&h->mem, VH_RAM))
		return -1;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vq_init(&h->vq[q], &h->mem);
	h->watched_fd = -1;
	h->ctx = (struct virtio_queue_ctx){
		.mem = &h->mem,
		.vq = h->vq,
		.nvq = nvq,
		.used = vh_used_cb,
		.config_changed = vh_config_changed_cb,
		.failed = vh_failed_cb,
		.watch_fd = vh_watch_fd_cb,
		.requeue = vh_requeue_cb,
		.transport = h,
	};
	return 0;
}

static inline void vh_destroy(struct vh *h) { guest_mem_destroy(&h->mem); }

/* Zeroes queue q's rings and enables it, as a driver does before
 * DRIVER_OK. */
static inline int vh_enable(struct vh *h, unsigned q, uint32_t size)
{
	uint8_t *rings = guest_mem_ptr(&h->mem, VH_RING_GPA(q), 0x10000);
	if (!rings)
		return -1;
	memset(rings, 0, 0x10000);
	h->avail_idx[q] = 0;
	h->next_desc[q] = 0;
	return vq_enable(&h->vq[q], size, VH_RING_GPA(q), VH_RING_GPA(q) + VH_AVAIL_OFF,
			 VH_RING_GPA(q) + VH_USED_OFF, 0);
}

static inline int vh_put(struct vh *h, uint64_t gpa, const void *v, unsigned n)
{
	return guest_mem_write(&h->mem, gpa, v, n);
}

static inline uint32_t vh_get32(struct vh *h, uint64_t gpa)
{
	uint32_t v = 0;
	guest_mem_read(&h->mem, gpa, &v, 4);
	return v;
}

/* Writes descriptor i of queue q raw (also for malformed rings). */
static inline int vh_set_desc(struct vh *h, unsigned q, uint16_t i, uint64_t addr, uint32_t len,
			      uint16_t flags, uint16_t next)
{
	uint8_t d[16];
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	return vh_put(h, VH_RING_GPA(q) + 16ULL * i, d, 16);
}

/* Publishes `head` in queue q's available ring. */
static inline int vh_publish(struct vh *h, unsigned q, uint16_t head)
{
	uint32_t size = h->vq[q].size;
	uint64_t avail = VH_RING_GPA(q) + VH_AVAIL_OFF;
	if (vh_put(h, avail + 4 + 2u * (h->avail_idx[q] & (size - 1)), &head, 2))
		return -1;
	h->avail_idx[q]++;
	return vh_put(h, avail + 2, &h->avail_idx[q], 2);
}

/* Builds a chain of n buffers from the next free descriptors and
 * publishes it. Returns the head, or -1. */
static inline int vh_add_chain(struct vh *h, unsigned q, const struct vh_buf *b, unsigned n)
{
	uint32_t size = h->vq[q].size;
	if (n == 0 || n > size || n > VH_MAX_BUFS)
		return -1;
	uint16_t head = (uint16_t)(h->next_desc[q] & (size - 1));
	for (unsigned i = 0; i < n; i++) {
		uint16_t d = (uint16_t)((h->next_desc[q] + i) & (size - 1));
		uint16_t next = (uint16_t)((d + 1) & (size - 1));
		uint16_t flags = (uint16_t)((b[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		if (vh_set_desc(h, q, d, b[i].gpa, b[i].len, flags, next))
			return -1;
	}
	h->next_desc[q] = (uint16_t)(h->next_desc[q] + n);
	return vh_publish(h, q, head) ? -1 : head;
}

/* One-buffer chain. */
static inline int vh_add_buf(struct vh *h, unsigned q, uint64_t gpa, uint32_t len, bool writable)
{
	struct vh_buf b = {gpa, len, writable};
	return vh_add_chain(h, q, &b, 1);
}

/* used->idx: the high half of {le16 flags, le16 idx}. */
static inline uint16_t vh_used_idx(struct vh *h, unsigned q)
{
	return (uint16_t)(vh_get32(h, VH_RING_GPA(q) + VH_USED_OFF) >> 16);
}

static inline uint64_t vh_used_elem(struct vh *h, unsigned q, uint16_t i)
{
	return VH_RING_GPA(q) + VH_USED_OFF + 4 + 8ULL * (i & (h->vq[q].size - 1));
}
static inline uint32_t vh_used_id(struct vh *h, unsigned q, uint16_t i)
{
	return vh_get32(h, vh_used_elem(h, q, i));
}
static inline uint32_t vh_used_len(struct vh *h, unsigned q, uint16_t i)
{
	return vh_get32(h, vh_used_elem(h, q, i) + 4);
}

/* Whether fd is readable now (the transport's epoll would fire). */
static inline bool vh_fd_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

#endif
