/* Split virtqueue, device side: virtio 1.x (OASIS virtio v1.1 / v1.2)
 * §2.7 "Split Virtqueues".
 *
 *   §2.7.5   descriptor table: {le64 addr, le32 len, le16 flags, le16 next}
 *   §2.7.5.3 indirect descriptors (VIRTIO_F_INDIRECT_DESC)
 *   §2.7.6   available ring: {le16 flags, le16 idx, le16 ring[size], le16 used_event}
 *   §2.7.8   used ring: {le16 flags, le16 idx, {le32 id, le32 len} ring[size], le16 avail_event}
 *   §2.7.7, §2.7.10 notification suppression (flags, or VIRTIO_F_EVENT_IDX)
 *   §2.7     alignment: descriptor table 16, available ring 2, used ring 4
 * (Section numbers follow v1.2; v1.1 numbers the same sections 2.6.x.)
 *
 * This is the ONLY code that walks descriptors (design.md, "Virtio"). Every
 * value read from the rings is treated as hostile:
 *  - ring addresses are checked once, at vq_enable(): alignment, and each
 *    whole ring inside one guest RAM region; the host pointers are kept;
 *  - each descriptor is copied out of guest memory once and only the copy is
 *    validated and used (the guest may rewrite the table concurrently);
 *  - each buffer [addr, addr+len) is translated by guest_mem_ptr(), which
 *    rejects overflow, ranges outside RAM and ranges spanning the MMIO hole;
 *  - walks are bounded: a direct chain by the queue size (so a loop is caught
 *    after at most `size` steps), an indirect table by its own entry count,
 *    and a chain by VQ_MAX_SEGS segments and VQ_MAX_CHAIN_BYTES bytes.
 * A malformed ring makes vq_pop() return -EIO and marks the queue broken;
 * the transport then sets DEVICE_NEEDS_RESET. A broken queue stays broken
 * (pop returns -EIO, push does nothing) until vq_enable() or vq_reset().
 *
 * Invariants of a chain returned by vq_pop(): every segment is a valid host
 * range inside guest RAM of length >= 1; all readable (device-reads)
 * segments come before all writable (device-writes) ones; nseg <= VQ_MAX_SEGS;
 * read_len + write_len <= VQ_MAX_CHAIN_BYTES.
 *
 * Threads: a virtqueue has one owner (the thread that handles the queue's
 * notifications); none of these functions may run concurrently on the same
 * queue. The guest driver runs concurrently on other CPUs: memory ordering
 * against it uses __atomic loads/stores and fences, each commented. */
#ifndef SHRIKE_VIRTIO_VIRTQUEUE_H
#define SHRIKE_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/memory.h"

#define VQ_MAX_SIZE 32768u       /* §2.7: queue size is a power of 2, <= 32768 */
#define VQ_MAX_SEGS 1024u        /* segments per chain (direct + indirect) */
#define VQ_MAX_CHAIN_BYTES 0xffffffffULL /* used.len is 32 bits: total <= 4 GiB - 1 */

/* Descriptor flags (§2.7.5). */
#define VIRTQ_DESC_F_NEXT 1u
#define VIRTQ_DESC_F_WRITE 2u
#define VIRTQ_DESC_F_INDIRECT 4u
/* Available ring flags (§2.7.6) and used ring flags (§2.7.8). */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u
#define VIRTQ_USED_F_NO_NOTIFY 1u

/* Feature bit numbers (§6) the queue needs to know about. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29

struct vq_seg {
	uint8_t *host;  /* valid for len bytes, inside guest RAM */
	uint32_t len;   /* >= 1 */
	bool writable;  /* device-writable (VIRTQ_DESC_F_WRITE) */
};

struct vq_chain {
	uint16_t head;       /* descriptor index to return in the used ring */
	uint16_t nseg;
	uint16_t nread;      /* seg[0..nread) readable, seg[nread..nseg) writable */
	uint64_t read_len;   /* total bytes of readable segments */
	uint64_t write_len;  /* total bytes of writable segments */
	struct vq_seg seg[VQ_MAX_SEGS];
};

struct virtqueue {
	const struct guest_mem *mem;
	uint32_t size;           /* power of two, 1..VQ_MAX_SIZE */
	bool indirect;
	bool event_idx;
	bool enabled;
	bool broken;
	/* Host views of the rings, validated at vq_enable(). */
	uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
	uint16_t last_avail_idx; /* next available-ring entry to consume */
	uint16_t used_idx;       /* device's copy of used->idx */
	uint16_t signalled_used; /* used_idx at the last interrupt (event idx) */
	bool signalled_used_valid;
	bool notify_enabled;     /* driver->device notifications wanted */
};

/* Ring sizes in bytes for a queue of `size` entries (§2.7, with the
 * used_event / avail_event words included). */
uint64_t vq_desc_bytes(uint32_t size);
uint64_t vq_avail_bytes(uint32_t size);
uint64_t vq_used_bytes(uint32_t size);

/* Leaves the queue disabled and zeroed, bound to guest memory `mem`. */
void vq_init(struct virtqueue *vq, const struct guest_mem *mem);

/* Validates the transport's queue registers (queue_size, queue_desc,
 * queue_driver, queue_device) and the negotiated `features` (bits
 * VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX are used): size a power of
 * two in 1..32768, each ring aligned (§2.7) and wholly inside one guest
 * RAM region. Enables the queue with all indexes at 0 (§2.7: the driver
 * zeroes the rings before enabling). Returns 0, or -EINVAL with the queue
 * left disabled. */
int vq_enable(struct virtqueue *vq, uint32_t size, uint64_t desc_gpa, uint64_t avail_gpa,
	      uint64_t used_gpa, uint64_t features);

/* Disables the queue and forgets the indexes (device reset). */
void vq_reset(struct virtqueue *vq);

bool vq_is_broken(const struct virtqueue *vq);

/* Takes the next available chain. Returns 1 with *out filled, 0 when the
 * ring is empty (or the queue is disabled), -EIO when the ring or the chain
 * is malformed (the queue is then broken). */
int vq_pop(struct virtqueue *vq, struct vq_chain *out);

/* Returns a chain obtained from vq_pop() to the driver through the used ring
 * with `written_len` bytes written (clamped to chain->write_len). Chains may
 * be pushed in any order, each exactly once. */
void vq_push(struct virtqueue *vq, const struct vq_chain *chain, uint32_t written_len);

/* After one or more vq_push(): whether the driver wants an interrupt now
 * (§2.7.7: the NO_INTERRUPT flag, or used_event with VIRTIO_F_EVENT_IDX).
 * Records the decision so the same used entries are not signalled twice. */
bool vq_should_notify(struct virtqueue *vq);

/* Driver->device notification suppression (§2.7.10: the NO_NOTIFY flag,
 * or avail_event with VIRTIO_F_EVENT_IDX).
 * Typical device loop, free of the lost-wakeup race:
 *     do {
 *         vq_set_notify(vq, false);
 *         while ((r = vq_pop(vq, &c)) == 1) { ...; vq_push(...); }
 *         vq_set_notify(vq, true);
 *     } while (r == 0 && vq_has_avail(vq));
 * vq_set_notify(vq, true) ends with a full fence so that the following
 * vq_has_avail() reads avail->idx only after the driver can see the request
 * for notifications. */
void vq_set_notify(struct virtqueue *vq, bool enable);
bool vq_has_avail(struct virtqueue *vq);

/* Copy `len` bytes at byte `offset` of the chain's readable part into buf
 * (vq_chain_read), or from buf into its writable part (vq_chain_write).
 * All or nothing: -EFAULT if [offset, offset+len) is not wholly inside that
 * part; 0 otherwise. Never touches memory outside a segment. */
int vq_chain_read(const struct vq_chain *chain, uint64_t offset, void *buf, uint64_t len);
int vq_chain_write(const struct vq_chain *chain, uint64_t offset, const void *buf, uint64_t len);

#endif
