/* virtio-console with one port: virtio 1.2 §5.3 "Console Device".
 *
 *   §5.3.1 device ID 3;  §5.3.2 virtqueues 0 = receiveq(port0),
 *          1 = transmitq(port0), 2 = control receiveq, 3 = control
 *          transmitq (the control queues are used only when the driver
 *          negotiates VIRTIO_CONSOLE_F_MULTIPORT);
 *   §5.3.3 feature bits offered: VIRTIO_CONSOLE_F_MULTIPORT and
 *          VIRTIO_CONSOLE_F_EMERG_WRITE (no F_SIZE);
 *   §5.3.4 configuration {le16 cols, le16 rows, le32 max_nr_ports,
 *          le32 emerg_wr}: cols = rows = 0, max_nr_ports = 1; a write to
 *          emerg_wr outputs its low byte, at any time (§5.3.4: emergency
 *          write needs neither the queues nor the feature negotiated);
 *   §5.3.6 output: the driver places bytes in transmitq buffers; input:
 *          the device fills the driver's receiveq buffers;
 *   §5.3.6.2 multiport: control messages {le32 id, le16 event, le16 value}
 *          on the control queues.
 *
 * Why multiport, with a single port: without it Linux posts port 0's
 * receive buffers before it hooks the port up as a console, and throws
 * away whatever arrives in between (drivers/char/virtio_console.c,
 * add_port() then init_port_console()). With it the driver tells the
 * device when the port can take data, so input is held until then.
 *
 * The handshake (the device's side of §5.3.6.2), port 0 only:
 *   driver DEVICE_READY(1)        -> device DEVICE_ADD(0)
 *   driver PORT_READY(id 0, 1)    -> device CONSOLE_PORT(0, 1), then
 *                                    PORT_OPEN(0, 1) (the host side is
 *                                    always connected)
 *   driver PORT_OPEN(id 0, 1 / 0) -> port-0 input starts / stops flowing
 * Linux sends PORT_OPEN(1) at the end of init_port_console(), once it
 * keeps the bytes. Every message from the driver is checked (at least 8
 * readable bytes, a driver-to-device event, id 0 for port events, value 0
 * or 1); anything else is ignored and counted in `stats`. Messages to the
 * driver go into control-receiveq buffers; while the driver has none they
 * wait in a bounded queue (VIRTIO_CONSOLE_CTRL_PENDING; a driver that asks
 * for more without posting buffers loses the excess, counted) and go out
 * when it posts some. Replies are sent before the driver's message is
 * returned to it: Linux spins until that return and then, in the same
 * pass over the control receiveq, finds the reply. Without F_MULTIPORT the port counts as open from
 * the start: input is delivered as soon as there are receive buffers.
 *
 * Output: each transmitq chain's readable bytes go to the injected
 * char_sink in ring order; the chain is returned with length 0.
 *
 * Input: the host side calls virtio_console_input() from any thread. Bytes
 * land in a bounded ring (VIRTIO_CONSOLE_IN_BUF), then an eventfd, watched
 * through ctx->watch_fd() while active, wakes the transport's I/O thread,
 * and fd_ready() moves buffered bytes into receiveq chains. Bytes stay
 * buffered while the port is not open or the driver has no receive buffer
 * (delivered when it opens / at the next receiveq notification), before
 * activate() (delivered once active), and across a device reset: they are
 * the host user's keystrokes, not guest state, and Linux resets the device
 * when its driver loads. Bytes leave the ring only when copied into a
 * chain that is pushed, so none are lost or reordered. A reset forgets the
 * port state and the pending control messages (guest state).
 *
 * Each callback serves at most 2 * queue size chains and re-checks of the
 * available ring per queue: a hostile driver can make the device's own
 * writes publish new work (a used ring or a buffer overlapping the
 * available ring), so an unbounded loop would never return and hold the
 * transport mutex forever. When the budget runs out the device kicks its
 * eventfd and carries on in fd_ready(), which serves every queue.
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
#define VIRTIO_CONSOLE_CTRL_PENDING 8u /* control messages waiting for buffers */

#define VIRTIO_CONSOLE_RX 0u      /* receiveq(port0) */
#define VIRTIO_CONSOLE_TX 1u      /* transmitq(port0) */
#define VIRTIO_CONSOLE_CTRL_RX 2u /* control receiveq (device -> driver) */
#define VIRTIO_CONSOLE_CTRL_TX 3u /* control transmitq (driver -> device) */
#define VIRTIO_CONSOLE_NUM_QUEUES 4u

/* Feature bits (§5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

/* Control events (§5.3.6.2). */
#define VIRTIO_CONSOLE_DEVICE_READY 0
#define VIRTIO_CONSOLE_DEVICE_ADD 1
#define VIRTIO_CONSOLE_DEVICE_REMOVE 2
#define VIRTIO_CONSOLE_PORT_READY 3
#define VIRTIO_CONSOLE_CONSOLE_PORT 4
#define VIRTIO_CONSOLE_RESIZE 5
#define VIRTIO_CONSOLE_PORT_OPEN 6
#define VIRTIO_CONSOLE_PORT_NAME 7
#define VIRTIO_CONSOLE_CTRL_SIZE 8u /* bytes of struct virtio_console_control */

/* A control message, host byte order. */
struct virtio_console_ctrl {
	uint32_t id;
	uint16_t event;
	uint16_t value;
};

struct virtio_console_stats {
	uint64_t ctrl_ignored; /* driver messages: short, unknown, bad id or value */
	uint64_t ctrl_dropped; /* device messages lost to a full pending queue */
	uint64_t ctrl_short;   /* control receive buffers returned unused: < 8 bytes */
};

struct virtio_console {
	struct char_sink out;        /* write NULL: output is dropped */
	int efd;                     /* eventfd: input is waiting */

	/* Transport mutex. */
	struct virtio_queue_ctx ctx; /* copied at activate(); valid while active */
	bool active;
	bool watching;               /* efd is watched through ctx.watch_fd */
	bool multiport;              /* F_MULTIPORT negotiated (set at activate) */
	bool port_open;              /* the driver sent PORT_OPEN(0, 1) */
	unsigned ctrl_head, ctrl_len; /* pending control messages, oldest first */
	struct virtio_console_ctrl ctrl[VIRTIO_CONSOLE_CTRL_PENDING];
	struct virtio_console_stats stats;
	struct vq_chain chain;       /* scratch for the chain being served */
	struct vq_chain ctrl_chain;  /* the same for the control receiveq */

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
