/* A fake virtio transport for device backends (virtio/device.h), for unit
 * tests and fuzz targets: a 16 MiB guest, the queues, a virtio_queue_ctx
 * whose callbacks only count, and per queue a driver side (vq_driver.h)
 * that lays out split rings by hand (§2.7) and reads the used ring back.
 * Header-only; no cmocka, so fuzz targets can use it too (helpers return
 * -1 where a test asserts).
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
#include "vq_driver.h"
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
	struct vqd drv[VIRTIO_MAX_QUEUES]; /* the driver's side of each queue */
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
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		vq_init(&h->vq[q], &h->mem);
		vqd_init(&h->drv[q], &h->mem, VH_RING_GPA(q), VH_RING_GPA(q) + VH_AVAIL_OFF,
			 VH_RING_GPA(q) + VH_USED_OFF, 0);
	}
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
	h->drv[q].size = size;
	if (vqd_clear(&h->drv[q]))
		return -1;
	return vqd_enable(&h->drv[q], &h->vq[q], 0);
}

static inline int vh_put(struct vh *h, uint64_t gpa, const void *v, unsigned n)
{
	return vqd_put(&h->mem, gpa, v, n);
}

/* Writes descriptor i of queue q raw (also for malformed rings). */
static inline int vh_set_desc(struct vh *h, unsigned q, uint16_t i, uint64_t addr, uint32_t len,
			      uint16_t flags, uint16_t next)
{
	return vqd_set_desc(&h->drv[q], i, addr, len, flags, next);
}

/* Publishes `head` in queue q's available ring. */
static inline int vh_publish(struct vh *h, unsigned q, uint16_t head)
{
	return vqd_publish(&h->drv[q], head);
}

/* Builds a chain of n buffers from the next free descriptors and
 * publishes it. Returns the head, or -1. */
static inline int vh_add_chain(struct vh *h, unsigned q, const struct vqd_buf *b, unsigned n)
{
	return n > VH_MAX_BUFS ? -1 : vqd_add_chain(&h->drv[q], b, n);
}

/* One-buffer chain. */
static inline int vh_add_buf(struct vh *h, unsigned q, uint64_t gpa, uint32_t len, bool writable)
{
	struct vqd_buf b = {gpa, len, writable};
	return vqd_add_chain(&h->drv[q], &b, 1);
}

static inline uint16_t vh_used_idx(struct vh *h, unsigned q) { return vqd_used_idx(&h->drv[q]); }
static inline uint32_t vh_used_id(struct vh *h, unsigned q, uint16_t i)
{
	return vqd_used_id(&h->drv[q], i);
}
static inline uint32_t vh_used_len(struct vh *h, unsigned q, uint16_t i)
{
	return vqd_used_len(&h->drv[q], i);
}

/* Whether fd is readable now (the transport's epoll would fire). */
static inline bool vh_fd_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

#endif
