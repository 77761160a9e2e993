/* virtio-rng: virtio 1.2 §5.4 "Entropy Device".
 *
 *   §5.4.1 device ID 4;  §5.4.2 one virtqueue, 0 = requestq;
 *   §5.4.3 no feature bits;  §5.4.4 no configuration space;
 *   §5.4.6 each driver buffer is device-writable and the device fills it
 *          with random bytes; §5.4.6.2 the device MUST place one or more
 *          bytes and MAY use less than the whole buffer.
 *
 * Behaviour: every chain popped from the requestq gets random bytes in its
 * writable part, at most VIRTIO_RNG_MAX_REQ bytes per chain, so that one
 * huge chain cannot keep the I/O thread (and the transport mutex) busy; the
 * used length is the number of bytes written. A chain with no writable part
 * is returned with length 0. A malformed ring is reported through
 * ctx->failed(). No rate limiting.
 *
 * Each callback serves at most 2 * queue size chains and re-checks of the
 * available ring: a hostile driver can make the device's own writes
 * publish new work (a used ring or a buffer overlapping the available
 * ring), so an unbounded loop would never return and hold the transport
 * mutex forever. When the budget runs out the device kicks its
 * own eventfd, watched through ctx->watch_fd() while active, and carries
 * on in fd_ready(): the I/O thread gets back to its event loop between
 * rounds.
 *
 * The entropy source is an injected backend (design.md rule 4); the default
 * is getrandom(2) with flags 0 (blocks only until the host's pool is
 * initialised, once per boot).
 *
 * Threads: all state is owned by the transport's I/O thread and guarded by
 * the transport mutex (virtio/device.h); the device has no lock of its own.
 * The source is called with that mutex held. The eventfd is written only
 * from callbacks. */
#ifndef SHRIKE_VIRTIO_RNG_H
#define SHRIKE_VIRTIO_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "virtio/device.h"
#include "virtio/virtqueue.h"

#define VIRTIO_RNG_QUEUE_SIZE 64u
#define VIRTIO_RNG_MAX_REQ (64u * 1024) /* bytes written per chain, at most */

/* Host entropy: fills up to len bytes of buf and returns how many (>= 1),
 * or a negative errno; -EINTR is retried. getrandom(2)'s contract with the
 * error negated. */
struct virtio_rng_source {
	ssize_t (*read)(void *opaque, void *buf, size_t len);
	void *opaque;
};

struct virtio_rng {
	struct virtio_rng_source src;
	int efd;                     /* eventfd: more requests to serve */
	bool watching;               /* efd is watched through ctx.watch_fd */
	struct virtio_queue_ctx ctx; /* copied at activate(); valid while active */
	bool active;
	bool warned;                 /* the source failed once: logged */
	struct vq_chain chain;       /* scratch for the chain being served */
};

/* src NULL: getrandom(2). Creates the eventfd; returns 0 or a negative
 * errno. */
int virtio_rng_init(struct virtio_rng *r, const struct virtio_rng_source *src);
/* After the transport has stopped using the device. */
void virtio_rng_destroy(struct virtio_rng *r);

/* The ops to hand to the transport along with a struct virtio_rng *. */
extern const struct virtio_device_ops virtio_rng_ops;

#endif
