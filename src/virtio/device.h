/* The interface between the virtio transport and a virtio device backend
 * (virtio 1.2 §2 "Basic Facilities of a Virtio Device", §5 "Device Types").
 *
 * A device (blk, net, console, rng) implements a const `virtio_device_ops`
 * and knows nothing of PCI: the transport (virtio/pci.h) owns the device
 * status, feature negotiation, the virtqueues, interrupts and the I/O
 * thread. Everything the guest controls reaches a device already
 * validated: configuration accesses are bounds-checked against
 * config_size, and buffers come from vq_pop() (virtio/virtqueue.h).
 *
 * Lifecycle, driven by the transport:
 *   features() → (driver negotiates) → activate() at DRIVER_OK →
 *   queue_notify()/fd_ready() as work arrives → reset() at a device reset
 *   (status 0), after which activate() may come again.
 *
 * Threads and locking: each device has one I/O thread, owned by the
 * transport, and one mutex, owned by the transport. Every callback except
 * features() and the config accessors runs with that mutex held; the
 * config accessors run on a vCPU thread with the mutex held as well. So a
 * device needs no lock of its own for state touched only from callbacks.
 * Callbacks may block on host I/O (they run off the vCPU threads), but
 * should not sleep indefinitely: a reset waits for the mutex.
 *
 * Save/load: every device can serialise its state (design.md rule 10).
 * load() must validate what it reads as if it came from the guest. */
#ifndef SHRIKE_VIRTIO_DEVICE_H
#define SHRIKE_VIRTIO_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/snapbuf.h"
#include "virtio/virtqueue.h"
#include "vm/memory.h"

/* Device IDs (§5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

/* Reserved feature bits the transport handles (§6). */
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_MAX_QUEUES 8u

/* What a device may do with its queues and the transport, handed to it at
 * activate(). The pointers stay valid until reset() returns. */
struct virtio_queue_ctx {
	const struct guest_mem *mem;
	uint64_t features;               /* negotiated (device and reserved bits) */
	struct virtqueue *vq;            /* vq[0 .. nvq) */
	unsigned nvq;
	/* After vq_push()es on queue q: interrupts the driver if the ring's
	 * suppression rules ask for it. */
	void (*used)(void *transport, unsigned q);
	/* The device configuration changed (e.g. link status). */
	void (*config_changed)(void *transport);
	/* The device hit an unrecoverable error (a broken ring, a request it
	 * cannot even answer): sets DEVICE_NEEDS_RESET and stops the device. */
	void (*failed)(void *transport, const char *why);
	/* Starts/stops calling fd_ready() when `fd` is readable (for example a
	 * tap device, while there are receive buffers). */
	int (*watch_fd)(void *transport, int fd, bool on);
	/* Calls queue_notify(q) again soon, from the I/O thread's loop: lets a
	 * device that spent its work budget release the mutex and go on later
	 * (a driver that keeps the ring full must not starve resets). */
	void (*requeue)(void *transport, unsigned q);
	void *transport;
};

struct virtio_device_ops {
	const char *name;       /* "virtio-blk", for messages and statistics */
	uint16_t device_id;     /* VIRTIO_ID_* */
	uint32_t pci_class;     /* 24-bit class code for the PCI function */
	unsigned num_queues;    /* 1..VIRTIO_MAX_QUEUES */
	uint16_t queue_size;    /* maximum (and default) queue size, a power of 2 */
	uint32_t config_size;   /* bytes of device-specific configuration */

	/* Device-specific feature bits offered (bits 0..23 and any >= 50);
	 * the transport adds the reserved bits it implements. */
	uint64_t (*features)(void *dev);

	/* Device configuration space: off + len <= config_size, len 1/2/4/8. */
	void (*config_read)(void *dev, uint32_t off, uint8_t *data, unsigned len);
	void (*config_write)(void *dev, uint32_t off, const uint8_t *data, unsigned len);

	/* DRIVER_OK: the queues are set up and enabled (those the driver
	 * enabled). Returns 0 or a negative errno (the transport then sets
	 * DEVICE_NEEDS_RESET). */
	int (*activate)(void *dev, const struct virtio_queue_ctx *ctx);
	/* The driver notified queue q (I/O thread). */
	void (*queue_notify)(void *dev, unsigned q);
	/* A watched fd is readable (I/O thread). Optional. */
	void (*fd_ready)(void *dev, int fd);
	/* Device reset: forget the queue context and in-flight requests. */
	void (*reset)(void *dev);

	/* Snapshot hooks: device-specific state only (the transport saves the
	 * queues and status). Optional for stateless devices. */
	int (*save)(void *dev, struct snapbuf *out);
	int (*load)(void *dev, struct snapbuf *in);
};

/* Little-endian helpers for configuration layouts. */
static inline void virtio_config_copy(uint8_t *data, unsigned len, const void *config,
				      size_t config_size, uint32_t off)
{
	const uint8_t *src = config;
	for (unsigned i = 0; i < len; i++)
		data[i] = off + i < config_size ? src[off + i] : 0;
}

#endif
