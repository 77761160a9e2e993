/* virtio-console, one port, no multiport: virtio 1.2 §5.3 "Console Device".
 *
 *   §5.3.1 device ID 3;  §5.3.2 virtqueues 0 = receiveq(port0),
 *          1 = transmitq(port0) (the control queues exist only with
 *          VIRTIO_CONSOLE_F_MULTIPORT, which is not offered);
 *   §5.3.3 feature bits: only VIRTIO_CONSOLE_F_EMERG_WRITE is offered
 *          (no F_SIZE, no F_MULTIPORT);
 *   §5.3.4 configuration {le16 cols, le16 rows, le32 max_nr_ports,
 *          le32 emerg_wr}: reads as zeros; a write to emerg_wr outputs its
 *          low byte, at any time (§5.3.4: emergency write needs neither
 *          the queues nor the feature to be negotiated);
 *   §5.3.6 output: the driver places bytes in transmitq buffers; input:
 *          the device fills the driver's receiveq buffers.
 *
 * Output: each transmitq chain's readable bytes go to the injected
 * char_sink in ring order; the chain is returned with length 0.
 *
 * Input: the host side calls virtio_console_input() from any thread. Bytes
 * land in a bounded ring (VIRTIO_CONSOLE_IN_BUF), then an eventfd, watched
 * through ctx->watch_fd() while active, wakes the transport's I/O thread,
 * and fd_ready() moves buffered bytes into receiveq chains. Bytes stay buffered while the driver has no receive
 * buffer (delivered at the next receiveq notification), before activate()
 * (delivered once active), and across a device reset: they are the host
 * user's keystrokes, not guest state, and Linux resets the device when its
 * driver loads. Bytes leave the ring only when copied into a chain that is
 * pushed, so none are lost or reordered.
 *
 * Each callback serves at most 2 * queue size chains and re-checks of the
 * available ring per queue: a hostile driver can make the device's own
 * writes publish new work (a used ring or a buffer overlapping the
 * available ring), so an unbounded loop would never return and hold the
 * transport mutex forever. When the budget runs out the device kicks its
 * eventfd and carries on in fd_ready(), which serves both queues.
 *
 * Threads and locking:
 *  - everything except the input ring is touched only from the transport's
 *    callbacks, under the transport mutex (virtio/device.h);
 *  - the input ring (in_buf, in_head, in_len) is guarded by `in_lock`;
 *  - lock order: transport mutex -> in_lock. The input thread takes only
 *    in_lock, and never calls into the transport; it writes the eventfd
 *    after releasing in_lock.
 * Lost wake-ups cannot happen: the producer writes the eventfd after
 * adding bytes, and fd_ready() drains the eventfd before taking them. */
#ifndef SHRIKE_VIRTIO_CONSOLE_H
#define SHRIKE_VIRTIO_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/uart8250.h"
#include "virtio/device.h"
#include "virtio/virtqueue.h"

#define VIRTIO_CONSOLE_QUEUE_SIZE 64u
#define VIRTIO_CONSOLE_IN_BUF 4096u
#define VIRTIO_CONSOLE_CONFIG_SIZE 12u

#define VIRTIO_CONSOLE_RX 0u /* receiveq(port0) */
#define VIRTIO_CONSOLE_TX 1u /* transmitq(port0) */

/* Feature bits (§5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

struct virtio_console {
	struct char_sink out;        /* write NULL: output is dropped */
	int efd;                     /* eventfd: input is waiting */

	/* Transport mutex. */
	struct virtio_queue_ctx ctx; /* copied at activate(); valid while active */
	bool active;
	bool watching;               /* efd is watched through ctx.watch_fd */
	struct vq_chain chain;       /* scratch for the chain being served */

	/* in_lock. */
	pthread_mutex_t in_lock;
	size_t in_head, in_len;
	uint8_t in_buf[VIRTIO_CONSOLE_IN_BUF];
};

/* Creates the eventfd. Returns 0 or a negative errno. */
int virtio_console_init(struct virtio_console *c, struct char_sink out);
/* After the transport has stopped using the device. */
void virtio_console_destroy(struct virtio_console *c);

/* Host input, from any thread: buffers as much of buf as fits and wakes the
 * device. Returns the number of bytes accepted (the caller retries or drops
 * the rest). Never blocks on the guest. */
size_t virtio_console_input(struct virtio_console *c, const uint8_t *buf, size_t len);

/* The ops to hand to the transport along with a struct virtio_console *. */
extern const struct virtio_device_ops virtio_console_ops;

#endif
