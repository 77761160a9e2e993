/* virtio-console (virtio/console.c) behind a fake transport
 * (vdev_harness.h), which plays epoll by calling fd_ready() whenever the
 * watched eventfd is readable. Output reaches the sink in order; input is
 * buffered before activation, while the driver has no receive buffers and
 * across a reset, and delivered in order; the input ring reports overflow;
 * malformed rings fail the device; emerg_wr writes; save/load validates;
 * and a producer thread racing the I/O side loses and reorders nothing.
 * With F_MULTIPORT: the control handshake as Linux drives it, input held
 * until the driver opens the port, replies queued while the driver has no
 * control buffers, hostile control messages ignored and counted, and the
 * port state through reset and save/load. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "virtio/console.h"
#include "vdev_harness.h"

#define RX VIRTIO_CONSOLE_RX
#define TX VIRTIO_CONSOLE_TX
#define QSIZE 16u
#define SINK_MAX (64u * 1024)

struct sink {
	uint8_t data[SINK_MAX];
	size_t len;
	unsigned calls;
};

struct fx {
	struct vh h;
	struct sink sink;
	struct virtio_console con;
};

static void sink_write(void *opaque, const uint8_t *data, size_t len)
{
	struct sink *s = opaque;
	s->calls++;
	size_t n = len < SINK_MAX - s->len ? len : SINK_MAX - s->len;
	memcpy(s->data + s->len, data, n);
	s->len += n;
}

static void enable_queues(struct fx *f)
{
	assert_int_equal(vh_enable(&f->h, RX, QSIZE), 0);
	assert_int_equal(vh_enable(&f->h, TX, QSIZE), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f || vh_init(&f->h, VIRTIO_CONSOLE_NUM_QUEUES)) {
		free(f);
		return -1;
	}
	struct char_sink out = {.write = sink_write, .opaque = &f->sink};
	if (virtio_console_init(&f->con, out)) {
		vh_destroy(&f->h);
		free(f);
		return -1;
	}
	enable_queues(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	virtio_console_ops.reset(&f->con);
	virtio_console_destroy(&f->con);
	vh_destroy(&f->h);
	free(f);
	return 0;
}

static uint8_t *gp(struct fx *f, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(&f->h.mem, gpa, len);
	assert_non_null(p);
	return p;
}

static void activate(struct fx *f)
{
	assert_int_equal(virtio_console_ops.activate(&f->con, &f->h.ctx), 0);
	assert_int_equal(f->h.watched_fd, f->con.efd);
}

/* The transport's event loop, one round: fd_ready() if the watched fd is
 * readable. Returns whether it ran. */
static bool pump(struct fx *f)
{
	if (f->h.watched_fd < 0 || !vh_fd_readable(f->h.watched_fd))
		return false;
	virtio_console_ops.fd_ready(&f->con, f->h.watched_fd);
	return true;
}

static void notify(struct fx *f, unsigned q) { virtio_console_ops.queue_notify(&f->con, q); }

static size_t input(struct fx *f, const char *s)
{
	return virtio_console_input(&f->con, (const uint8_t *)s, strlen(s));
}

/* Used entry i of the receiveq holds `s` in the buffer at gpa. */
static void assert_rx(struct fx *f, uint16_t i, uint64_t gpa, const char *s)
{
	assert_true(vh_used_idx(&f->h, RX) > i);
	assert_int_equal(vh_used_len(&f->h, RX, i), strlen(s));
	assert_memory_equal(gp(f, gpa, strlen(s) + 1), s, strlen(s));
}

static void test_ops_and_config(void **state)
{
	struct fx *f = *state;
	const struct virtio_device_ops *o = &virtio_console_ops;
	assert_int_equal(o->device_id, VIRTIO_ID_CONSOLE);
	assert_int_equal(o->num_queues, 4);
	assert_int_equal(o->config_size, 12);
	assert_int_equal(o->queue_size & (o->queue_size - 1), 0);
	assert_int_equal(o->features(&f->con),
			 1ULL << VIRTIO_CONSOLE_F_MULTIPORT | 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE);

	/* cols = rows = 0, max_nr_ports = 1, emerg_wr reads as 0. */
	uint8_t d[8];
	for (uint32_t off = 0; off < 12; off++) {
		memset(d, 0xff, sizeof(d));
		o->config_read(&f->con, off, d, 1);
		assert_int_equal(d[0], off == 4 ? 1 : 0);
	}
	memset(d, 0xff, sizeof(d));
	o->config_read(&f->con, 4, d, 8);
	assert_memory_equal(d, "\1\0\0\0\0\0\0\0", 8);
	memset(d, 0xff, sizeof(d));
	o->config_read(&f->con, 0, d, 8);
	assert_memory_equal(d, "\0\0\0\0\1\0\0\0", 8);

	/* emerg_wr: works before the driver is ready; only writes covering
	 * its low byte output anything. */
	o->config_write(&f->con, 8, (const uint8_t *)"X\0\0\0", 4);
	o->config_write(&f->con, 8, (const uint8_t *)"Y", 1);
	o->config_write(&f->con, 4, (const uint8_t *)"....Z...", 8);
	o->config_write(&f->con, 0, (const uint8_t *)"abcdefgh", 8);
	o->config_write(&f->con, 9, (const uint8_t *)"q", 1);
	o->config_write(&f->con, 10, (const uint8_t *)"qq", 2);
	assert_int_equal(f->sink.len, 3);
	assert_memory_equal(f->sink.data, "XYZ", 3);
}

static void test_tx_reaches_sink_in_order(void **state)
{
	struct fx *f = *state;
	activate(f);
	vh_put(&f->h, VH_DATA_GPA, "Hel", 3);
	vh_put(&f->h, VH_DATA_GPA + 0x100, "lo, ", 4);
	vh_put(&f->h, VH_DATA_GPA + 0x200, "virtio", 6);
	vh_put(&f->h, VH_DATA_GPA + 0x300, "-console\n", 9);
	struct vqd_buf c1[] = {{VH_DATA_GPA, 3, false}, {VH_DATA_GPA + 0x100, 4, false}};
	struct vqd_buf c3[] = {{VH_DATA_GPA + 0x300, 9, false}, {VH_DATA_GPA + 0x400, 64, true}};
	assert_true(vh_add_chain(&f->h, TX, c1, 2) >= 0);
	assert_true(vh_add_buf(&f->h, TX, VH_DATA_GPA + 0x200, 6, false) >= 0);
	assert_true(vh_add_chain(&f->h, TX, c3, 2) >= 0); /* writable part ignored */
	notify(f, TX);

	assert_int_equal(f->sink.len, 22);
	assert_memory_equal(f->sink.data, "Hello, virtio-console\n", 22);
	assert_int_equal(vh_used_idx(&f->h, TX), 3);
	for (uint16_t i = 0; i < 3; i++)
		assert_int_equal(vh_used_len(&f->h, TX, i), 0);
	assert_int_equal(f->h.used_calls[TX], 1);
	assert_int_equal(f->h.used_calls[RX], 0);

	vh_put(&f->h, VH_DATA_GPA + 0x500, "more", 4);
	assert_true(vh_add_buf(&f->h, TX, VH_DATA_GPA + 0x500, 4, false) >= 0);
	notify(f, TX);
	assert_int_equal(f->sink.len, 26);
	assert_memory_equal(f->sink.data + 22, "more", 4);
	assert_int_equal(f->h.used_calls[TX], 2);
	assert_int_equal(f->h.failed_calls, 0);
}

static void test_input_before_activation(void **state)
{
	struct fx *f = *state;
	assert_int_equal(input(f, "hello"), 5);
	notify(f, RX); /* not active: ignored */
	assert_false(pump(f));
	/* The driver queues a receive buffer before DRIVER_OK and does not
	 * notify; activation alone must get the bytes delivered. */
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 64, true) >= 0);
	activate(f);
	assert_true(pump(f));
	assert_rx(f, 0, VH_DATA_GPA, "hello");
	assert_int_equal(f->h.used_calls[RX], 1);
	assert_false(pump(f)); /* the wake-up was consumed */
}

static void test_input_held_until_buffer_arrives(void **state)
{
	struct fx *f = *state;
	activate(f);
	pump(f);
	assert_int_equal(input(f, "abc"), 3);
	assert_true(pump(f));
	assert_int_equal(vh_used_idx(&f->h, RX), 0);
	assert_false(pump(f)); /* no busy loop while the bytes wait */

	/* A 2-byte buffer takes "ab"; "c" waits for the next one. */
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 2, true) >= 0);
	notify(f, RX);
	assert_rx(f, 0, VH_DATA_GPA, "ab");
	assert_int_equal(vh_used_idx(&f->h, RX), 1);
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA + 0x100, 10, true) >= 0);
	notify(f, RX);
	assert_rx(f, 1, VH_DATA_GPA + 0x100, "c");
	assert_int_equal(f->h.used_calls[RX], 2);

	/* An empty buffer stays with the device until input comes. */
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA + 0x200, 10, true) >= 0);
	notify(f, RX);
	assert_int_equal(vh_used_idx(&f->h, RX), 2);
	assert_int_equal(input(f, "xyz"), 3);
	assert_true(pump(f));
	assert_rx(f, 2, VH_DATA_GPA + 0x200, "xyz");
	assert_int_equal(f->h.failed_calls, 0);
}

/* Pattern byte i of the input stream. */
static uint8_t pat(size_t i) { return (uint8_t)(i % 251); }

static void test_input_overflow_and_wrap(void **state)
{
	struct fx *f = *state;
	static uint8_t buf[5000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pat(i);
	assert_int_equal(virtio_console_input(&f->con, buf, 5000), VIRTIO_CONSOLE_IN_BUF);
	assert_int_equal(virtio_console_input(&f->con, buf, 1), 0);
	activate(f);
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 1000, true) >= 0);
	pump(f);
	assert_int_equal(vh_used_len(&f->h, RX, 0), 1000);
	/* 1000 bytes of room now; the stream continues where it was cut. */
	size_t sent = VIRTIO_CONSOLE_IN_BUF;
	assert_int_equal(virtio_console_input(&f->con, buf + sent, 5000 - sent), 5000 - sent);
	static uint8_t more[1000];
	for (size_t i = 0; i < sizeof(more); i++)
		more[i] = pat(5000 + i);
	assert_int_equal(virtio_console_input(&f->con, more, 1000), 1000 - (5000 - sent));
	pump(f);

	/* Drain the (wrapped) ring through five buffers: the stream is
	 * intact, 0 .. 5096 - 1. */
	for (unsigned i = 0; i < 5; i++)
		assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA + 0x1000 * (i + 1), 1024, true) >= 0);
	notify(f, RX);
	assert_int_equal(vh_used_idx(&f->h, RX), 5);
	size_t pos = 0;
	for (uint16_t u = 0; u < 5; u++) {
		uint32_t len = vh_used_len(&f->h, RX, u);
		uint8_t *p = gp(f, u == 0 ? VH_DATA_GPA : VH_DATA_GPA + 0x1000 * u, len);
		for (uint32_t i = 0; i < len; i++)
			assert_int_equal(p[i], pat(pos + i));
		pos += len;
	}
	assert_int_equal(pos, 1000 + VIRTIO_CONSOLE_IN_BUF); /* the fifth buffer is spare */
}

static void test_malformed_tx_ring_fails(void **state)
{
	struct fx *f = *state;
	activate(f);
	/* A descriptor that loops onto itself. */
	vh_set_desc(&f->h, TX, 0, VH_DATA_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	vh_publish(&f->h, TX, 0);
	notify(f, TX);
	assert_int_equal(f->h.failed_calls, 1);
	assert_int_equal(f->h.watched_fd, -1);
	assert_int_equal(f->sink.len, 0);
	/* Quiet until reset. */
	assert_int_equal(input(f, "a"), 1);
	notify(f, TX);
	notify(f, RX);
	virtio_console_ops.fd_ready(&f->con, f->con.efd);
	assert_int_equal(f->h.failed_calls, 1);
}

static void test_malformed_rx_ring_fails(void **state)
{
	struct fx *f = *state;
	activate(f);
	pump(f);
	assert_true(vh_add_buf(&f->h, RX, VH_RAM - 4, 64, true) >= 0); /* past RAM */
	notify(f, RX); /* nothing to deliver yet: the buffer is not even read */
	assert_int_equal(f->h.failed_calls, 0);
	assert_int_equal(input(f, "a"), 1);
	assert_true(pump(f));
	assert_int_equal(f->h.failed_calls, 1);
	assert_non_null(f->h.failed_why);
	assert_int_equal(f->h.watched_fd, -1);
}

/* As in test_virtio_rng.c: used->flags on avail->idx, so the device's own
 * notification toggles publish work. Callbacks return; the rest goes
 * through the eventfd. */
static void test_hostile_ring_does_not_hang(void **state)
{
	struct fx *f = *state;
	activate(f);
	pump(f);
	uint64_t base = VH_RING_GPA(TX);
	memset(gp(f, base, 0x10000), 0, 0x10000);
	vq_reset(&f->h.vq[TX]);
	assert_int_equal(vq_enable(&f->h.vq[TX], QSIZE, base, base + 0x2002, base + 0x2004, 0), 0);
	vh_put(&f->h, VH_DATA_GPA, "x", 1);
	vh_set_desc(&f->h, TX, 0, VH_DATA_GPA, 1, 0, 0);
	notify(f, TX);
	for (unsigned round = 0; round < 3; round++)
		assert_true(pump(f));
	assert_int_equal(f->h.failed_calls, 0);
	assert_true(f->sink.len >= 1);
}

static void test_reset_keeps_input(void **state)
{
	struct fx *f = *state;
	activate(f);
	pump(f);
	assert_int_equal(input(f, "abc"), 3);
	assert_true(pump(f));
	virtio_console_ops.reset(&f->con);
	assert_int_equal(f->h.watched_fd, -1);
	notify(f, RX);
	notify(f, TX);
	assert_int_equal(vh_used_idx(&f->h, RX), 0);

	vq_reset(&f->h.vq[RX]);
	vq_reset(&f->h.vq[TX]);
	enable_queues(f);
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 64, true) >= 0);
	activate(f);
	assert_true(pump(f));
	assert_rx(f, 0, VH_DATA_GPA, "abc");
}

static void test_activate_errors(void **state)
{
	struct fx *f = *state;
	struct virtio_queue_ctx bad = f->h.ctx;
	bad.nvq = 1;
	assert_int_equal(virtio_console_ops.activate(&f->con, &bad), -EINVAL);
	/* Multiport needs the control queues. */
	bad.nvq = 2;
	bad.features = 1ULL << VIRTIO_CONSOLE_F_MULTIPORT;
	assert_int_equal(virtio_console_ops.activate(&f->con, &bad), -EINVAL);
	f->h.watch_result = -EBADF;
	assert_int_equal(virtio_console_ops.activate(&f->con, &f->h.ctx), -EBADF);
	/* Not active: notifications are ignored. */
	vh_put(&f->h, VH_DATA_GPA, "x", 1);
	assert_true(vh_add_buf(&f->h, TX, VH_DATA_GPA, 1, false) >= 0);
	notify(f, TX);
	assert_int_equal(f->sink.len, 0);
	/* The transport resets after a failed activate: nothing to unwatch. */
	unsigned calls = f->h.watch_calls;
	virtio_console_ops.reset(&f->con);
	assert_int_equal(f->h.watch_calls, calls);
}

static void test_save_load(void **state)
{
	struct fx *f = *state;
	/* Move the ring's head so the saved bytes wrap around the end. */
	static uint8_t fill[VIRTIO_CONSOLE_IN_BUF - 4];
	assert_int_equal(virtio_console_input(&f->con, fill, sizeof(fill)), sizeof(fill));
	activate(f);
	assert_true(vh_add_buf(&f->h, RX, 0x200000, sizeof(fill), true) >= 0);
	pump(f);
	assert_int_equal(vh_used_len(&f->h, RX, 0), sizeof(fill));
	assert_int_equal(input(f, "hello world"), 11);

	struct snapbuf out, in;
	snapbuf_init_writer(&out);
	assert_int_equal(virtio_console_ops.save(&f->con, &out), 0);

	struct virtio_console *c2 = calloc(1, sizeof(*c2));
	assert_non_null(c2);
	struct char_sink none = {0};
	assert_int_equal(virtio_console_init(c2, none), 0);
	/* Rejected images leave the state alone. */
	assert_int_equal(virtio_console_input(c2, (const uint8_t *)"keep", 4), 4);
	uint8_t *bad = malloc(out.len);
	assert_non_null(bad);
	memcpy(bad, out.data, out.len);
	bad[8] = 0x01;
	bad[9] = 0x10; /* n = 4097 */
	snapbuf_init_reader(&in, bad, out.len);
	assert_int_equal(virtio_console_ops.load(c2, &in), -EINVAL);
	snapbuf_init_reader(&in, out.data, out.len - 1); /* truncated */
	assert_true(virtio_console_ops.load(c2, &in) < 0);
	memcpy(bad, out.data, out.len);
	bad[4] = 3; /* a newer version */
	snapbuf_init_reader(&in, bad, out.len);
	assert_true(virtio_console_ops.load(c2, &in) < 0);
	memcpy(bad, out.data, out.len);
	bad[4] = 0;
	snapbuf_init_reader(&in, bad, out.len);
	assert_true(virtio_console_ops.load(c2, &in) < 0);
	free(bad);

	snapbuf_init_reader(&in, out.data, out.len);
	assert_int_equal(virtio_console_ops.load(c2, &in), 0);
	assert_int_equal(in.pos, out.len);
	virtio_console_destroy(c2);
	free(c2);

	/* Load replaces what is buffered; the device then delivers exactly
	 * the saved bytes. */
	virtio_console_ops.reset(&f->con);
	assert_int_equal(input(f, "junk"), 4);
	snapbuf_init_reader(&in, out.data, out.len);
	assert_int_equal(virtio_console_ops.load(&f->con, &in), 0);
	snapbuf_free(&out);
	vq_reset(&f->h.vq[RX]);
	vq_reset(&f->h.vq[TX]);
	enable_queues(f);
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 64, true) >= 0);
	activate(f);
	assert_true(pump(f));
	assert_rx(f, 0, VH_DATA_GPA, "hello world");
}

/* ---- multiport (§5.3.6.2) ---- */

#define CRX VIRTIO_CONSOLE_CTRL_RX
#define CTX VIRTIO_CONSOLE_CTRL_TX
#define CBUF(d) (VH_DATA_GPA + 0x10000 + 0x100ULL * (d)) /* control rx buffer, descriptor d */
#define CMSG(d) (VH_DATA_GPA + 0x20000 + 0x100ULL * (d)) /* control tx message, descriptor d */

struct msg {
	uint32_t id;
	uint16_t event, value;
};

static void msg_encode(uint8_t raw[8], uint32_t id, uint16_t event, uint16_t value)
{
	for (unsigned i = 0; i < 4; i++)
		raw[i] = (uint8_t)(id >> (8 * i));
	raw[4] = (uint8_t)event;
	raw[5] = (uint8_t)(event >> 8);
	raw[6] = (uint8_t)value;
	raw[7] = (uint8_t)(value >> 8);
}

/* The driver negotiated F_MULTIPORT and set up all four queues (the
 * control queues here unless it already did). */
static void activate_mp(struct fx *f)
{
	if (!f->h.vq[CRX].enabled)
		assert_int_equal(vh_enable(&f->h, CRX, QSIZE), 0);
	if (!f->h.vq[CTX].enabled)
		assert_int_equal(vh_enable(&f->h, CTX, QSIZE), 0);
	f->h.ctx.features = 1ULL << VIRTIO_CONSOLE_F_MULTIPORT;
	activate(f);
	pump(f);
}

/* n control receive buffers of `len` bytes, then a notification. */
static void post_ctrl_bufs(struct fx *f, unsigned n, uint32_t len)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t d = (uint16_t)(f->h.drv[CRX].next_desc & (QSIZE - 1));
		assert_int_equal(vh_add_buf(&f->h, CRX, CBUF(d), len, true), d);
	}
	notify(f, CRX);
}

/* A raw message of len bytes (len <= 16) on the control transmitq. */
static void send_raw(struct fx *f, const uint8_t *raw, uint32_t len)
{
	uint16_t d = (uint16_t)(f->h.drv[CTX].next_desc & (QSIZE - 1));
	vh_put(&f->h, CMSG(d), raw, len);
	assert_int_equal(vh_add_buf(&f->h, CTX, CMSG(d), len, false), d);
	notify(f, CTX);
}

static void send_ctrl(struct fx *f, uint32_t id, uint16_t event, uint16_t value)
{
	uint8_t raw[8];
	msg_encode(raw, id, event, value);
	send_raw(f, raw, 8);
}

/* Used entry i of the control receiveq: an 8-byte message. */
static struct msg ctrl_msg(struct fx *f, uint16_t i)
{
	assert_true(vh_used_idx(&f->h, CRX) > i);
	assert_int_equal(vh_used_len(&f->h, CRX, i), 8);
	const uint8_t *p = gp(f, CBUF(vh_used_id(&f->h, CRX, i)), 8);
	return (struct msg){
	    .id = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		  (uint32_t)p[3] << 24,
	    .event = (uint16_t)(p[4] | p[5] << 8),
	    .value = (uint16_t)(p[6] | p[7] << 8),
	};
}

static void assert_msg(struct fx *f, uint16_t i, uint16_t event, uint16_t value)
{
	struct msg m = ctrl_msg(f, i);
	assert_int_equal(m.id, 0);
	assert_int_equal(m.event, event);
	assert_int_equal(m.value, value);
}

/* Linux's sequence: DEVICE_READY (id 0xffffffff) from probe; PORT_READY
 * from add_port(); PORT_OPEN from init_port_console(). */
static void handshake(struct fx *f)
{
	uint16_t base = vh_used_idx(&f->h, CRX);
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_msg(f, base, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	assert_msg(f, (uint16_t)(base + 1), VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	assert_msg(f, (uint16_t)(base + 2), VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_int_equal(vh_used_idx(&f->h, CRX), base + 3);
}

static void test_mp_handshake(void **state)
{
	struct fx *f = *state;
	activate_mp(f);
	post_ctrl_bufs(f, 8, 4096);
	assert_int_equal(vh_used_idx(&f->h, CRX), 0); /* nothing to say yet */
	handshake(f);
	/* The replies were used before the driver's message came back: Linux
	 * spins on that return, then reads them in the same pass. */
	assert_true(f->h.used_last[CRX] < f->h.used_last[CTX]);
	/* Each driver message went back with length 0, with an interrupt. */
	assert_int_equal(vh_used_idx(&f->h, CTX), 2);
	assert_int_equal(vh_used_len(&f->h, CTX, 0), 0);
	assert_int_equal(vh_used_len(&f->h, CTX, 1), 0);
	assert_int_equal(f->h.used_calls[CTX], 2);
	assert_int_equal(f->h.used_calls[CRX], 2);
	assert_false(f->con.port_open); /* the device's own PORT_OPEN is not the driver's */
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_true(f->con.port_open);
	assert_int_equal(vh_used_idx(&f->h, CRX), 3); /* no reply to PORT_OPEN */

	/* The driver may repeat itself (Linux's restore path sends PORT_READY
	 * again): the device answers again. */
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	assert_msg(f, 3, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	assert_msg(f, 4, VIRTIO_CONSOLE_PORT_OPEN, 1);
	/* Failures reported by the driver (value 0) need no answer. */
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 0);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 0);
	assert_int_equal(vh_used_idx(&f->h, CRX), 5);
	assert_int_equal(f->con.stats.ctrl_ignored, 0);
	assert_int_equal(f->h.failed_calls, 0);
}

static void test_mp_input_held_until_port_open(void **state)
{
	struct fx *f = *state;
	assert_int_equal(input(f, "early"), 5);
	activate_mp(f);
	post_ctrl_bufs(f, 8, 4096);
	/* Receive buffers first, as Linux's add_port() does: no bytes yet. */
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 64, true) >= 0);
	notify(f, RX);
	pump(f);
	assert_int_equal(vh_used_idx(&f->h, RX), 0);
	handshake(f);
	pump(f);
	assert_int_equal(vh_used_idx(&f->h, RX), 0);
	assert_false(pump(f)); /* no busy loop while the port is closed */

	/* init_port_console() keeps bytes from here on. */
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_rx(f, 0, VH_DATA_GPA, "early");
	assert_int_equal(f->h.used_calls[RX], 1);

	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA + 0x100, 64, true) >= 0);
	notify(f, RX);
	assert_int_equal(input(f, "more"), 4);
	assert_true(pump(f));
	assert_rx(f, 1, VH_DATA_GPA + 0x100, "more");

	/* Closed again: bytes wait, then flow on the next open. */
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 0);
	assert_false(f->con.port_open);
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA + 0x200, 64, true) >= 0);
	notify(f, RX);
	assert_int_equal(input(f, "held"), 4);
	pump(f);
	assert_int_equal(vh_used_idx(&f->h, RX), 2);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_rx(f, 2, VH_DATA_GPA + 0x200, "held");
	assert_int_equal(f->h.failed_calls, 0);
}

static void test_mp_pending_control_messages(void **state)
{
	struct fx *f = *state;
	activate_mp(f);
	/* No control receive buffers: the replies wait, in order. */
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 1);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	assert_int_equal(vh_used_idx(&f->h, CTX), 2);
	assert_int_equal(vh_used_idx(&f->h, CRX), 0);
	assert_int_equal(f->con.ctrl_len, 3);

	/* A buffer too small for a message goes back empty; the message
	 * waits for the next one. */
	post_ctrl_bufs(f, 1, 7);
	assert_int_equal(vh_used_idx(&f->h, CRX), 1);
	assert_int_equal(vh_used_len(&f->h, CRX, 0), 0);
	assert_int_equal(f->con.stats.ctrl_short, 1);
	assert_int_equal(f->con.ctrl_len, 3);

	post_ctrl_bufs(f, 1, 8);
	assert_msg(f, 1, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	post_ctrl_bufs(f, 4, 64); /* two are left over for later */
	assert_msg(f, 2, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	assert_msg(f, 3, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_int_equal(vh_used_idx(&f->h, CRX), 4);
	assert_int_equal(f->con.ctrl_len, 0);

	/* The spare buffers take the next replies at once. */
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	assert_msg(f, 4, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	assert_msg(f, 5, VIRTIO_CONSOLE_PORT_OPEN, 1);

	/* A driver that keeps asking without buffers: the queue is bounded,
	 * the excess is counted. */
	for (unsigned i = 0; i < VIRTIO_CONSOLE_CTRL_PENDING + 2; i++)
		send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_int_equal(f->con.ctrl_len, VIRTIO_CONSOLE_CTRL_PENDING);
	assert_int_equal(f->con.stats.ctrl_dropped, 2);
	post_ctrl_bufs(f, QSIZE - 6, 64);
	assert_int_equal(vh_used_idx(&f->h, CRX), 6 + VIRTIO_CONSOLE_CTRL_PENDING);
	for (uint16_t i = 6; i < 6 + VIRTIO_CONSOLE_CTRL_PENDING; i++)
		assert_msg(f, i, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	assert_int_equal(f->h.failed_calls, 0);
}

static void test_mp_bad_control_messages_ignored(void **state)
{
	struct fx *f = *state;
	activate_mp(f);
	post_ctrl_bufs(f, 8, 64);
	uint8_t raw[16];

	msg_encode(raw, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	send_raw(f, raw, 7); /* short */
	/* Events only the device sends, and unknown ones. */
	const uint16_t events[] = {VIRTIO_CONSOLE_DEVICE_ADD,   VIRTIO_CONSOLE_DEVICE_REMOVE,
				   VIRTIO_CONSOLE_CONSOLE_PORT, VIRTIO_CONSOLE_RESIZE,
				   VIRTIO_CONSOLE_PORT_NAME,    8,
				   0x8000,                      0xffff};
	unsigned nevents = sizeof(events) / sizeof(events[0]);
	for (unsigned i = 0; i < nevents; i++)
		send_ctrl(f, 0, events[i], 1);
	/* Port events for a port that does not exist. */
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_PORT_OPEN, 1);
	/* Values other than 0 and 1. */
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 2);
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 0x100);
	unsigned bad = 1 + nevents + 2 + 2;
	assert_int_equal(f->con.stats.ctrl_ignored, bad);
	assert_int_equal(vh_used_idx(&f->h, CTX), bad);
	assert_int_equal(vh_used_idx(&f->h, CRX), 0);
	assert_false(f->con.port_open);

	/* A chain with no readable part at all. */
	assert_true(vh_add_buf(&f->h, CTX, CMSG(15), 8, true) >= 0);
	notify(f, CTX);
	assert_int_equal(f->con.stats.ctrl_ignored, ++bad);

	/* A message split over two buffers, or followed by more bytes, is
	 * still a message. */
	msg_encode(raw, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 1);
	vh_put(&f->h, CMSG(0), raw, 3);
	vh_put(&f->h, CMSG(1), raw + 3, 5);
	struct vqd_buf split[] = {{CMSG(0), 3, false}, {CMSG(1), 5, false}};
	assert_true(vh_add_chain(&f->h, CTX, split, 2) >= 0);
	notify(f, CTX);
	assert_msg(f, 0, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	msg_encode(raw, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	memset(raw + 8, 0xee, 8);
	send_raw(f, raw, 16);
	assert_true(f->con.port_open);
	assert_int_equal(f->con.stats.ctrl_ignored, bad);
	assert_int_equal(f->h.failed_calls, 0);
}

static void test_mp_malformed_control_rings_fail(void **state)
{
	struct fx *f = *state;
	activate_mp(f);
	vh_set_desc(&f->h, CTX, 0, CMSG(0), 8, VIRTQ_DESC_F_NEXT, 0); /* a loop */
	vh_publish(&f->h, CTX, 0);
	notify(f, CTX);
	assert_int_equal(f->h.failed_calls, 1);
	assert_string_equal(f->h.failed_why, "malformed control transmitq");
	assert_int_equal(f->h.watched_fd, -1);
	notify(f, CTX);
	notify(f, CRX);
	assert_int_equal(f->h.failed_calls, 1);

	/* The control receiveq: a buffer past RAM, read only once there is a
	 * message to put in it. */
	virtio_console_ops.reset(&f->con);
	for (unsigned q = 0; q < VIRTIO_CONSOLE_NUM_QUEUES; q++)
		vq_reset(&f->h.vq[q]);
	enable_queues(f);
	f->h.failed_calls = 0;
	activate_mp(f);
	assert_true(vh_add_buf(&f->h, CRX, VH_RAM - 4, 64, true) >= 0);
	notify(f, CRX);
	assert_int_equal(f->h.failed_calls, 0);
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_int_equal(f->h.failed_calls, 1);
	assert_string_equal(f->h.failed_why, "malformed control receiveq");
	assert_int_equal(f->h.watched_fd, -1);
}

/* Without F_MULTIPORT the control queues are not the device's business,
 * even if a driver sets them up, and input flows at once. */
static void test_no_multiport_ignores_control_queues(void **state)
{
	struct fx *f = *state;
	assert_int_equal(vh_enable(&f->h, CRX, QSIZE), 0);
	assert_int_equal(vh_enable(&f->h, CTX, QSIZE), 0);
	activate(f);
	pump(f);
	post_ctrl_bufs(f, 4, 64);
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 1);
	pump(f);
	assert_int_equal(vh_used_idx(&f->h, CRX), 0);
	assert_int_equal(vh_used_idx(&f->h, CTX), 0);
	assert_int_equal(f->con.ctrl_len, 0);
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 64, true) >= 0);
	notify(f, RX);
	assert_int_equal(input(f, "now"), 3);
	assert_true(pump(f));
	assert_rx(f, 0, VH_DATA_GPA, "now");
}

/* A reset forgets the open port and pending replies; the input stays. */
static void test_mp_reset_forgets_port(void **state)
{
	struct fx *f = *state;
	activate_mp(f);
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 1);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_true(f->con.port_open);
	assert_int_equal(f->con.ctrl_len, 1);
	virtio_console_ops.reset(&f->con);
	assert_false(f->con.port_open);
	assert_int_equal(f->con.ctrl_len, 0);

	assert_int_equal(input(f, "kept"), 4);
	for (unsigned q = 0; q < VIRTIO_CONSOLE_NUM_QUEUES; q++)
		vq_reset(&f->h.vq[q]);
	enable_queues(f);
	activate_mp(f);
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 64, true) >= 0);
	notify(f, RX);
	pump(f);
	assert_int_equal(vh_used_idx(&f->h, RX), 0);
	post_ctrl_bufs(f, 4, 64);
	assert_int_equal(vh_used_idx(&f->h, CRX), 0);
	handshake(f);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_rx(f, 0, VH_DATA_GPA, "kept");
}

static void test_mp_save_load(void **state)
{
	struct fx *f = *state;
	activate_mp(f);
	send_ctrl(f, 0xffffffffu, VIRTIO_CONSOLE_DEVICE_READY, 1);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_int_equal(input(f, "typed"), 5);
	pump(f);
	/* Move the pending queue's head so the saved messages wrap. */
	post_ctrl_bufs(f, 1, 64);
	assert_int_equal(f->con.ctrl_head, 1);

	struct snapbuf out, in;
	snapbuf_init_writer(&out);
	assert_int_equal(virtio_console_ops.save(&f->con, &out), 0);
	/* VCON v2: tag, version, n, "typed", port_open, 2 messages. */
	assert_int_equal(out.len, 4 + 4 + 4 + 5 + 1 + 1 + 2 * 8);
	assert_int_equal(out.data[4], 2);
	assert_int_equal(out.data[17], 1);
	assert_int_equal(out.data[18], 2);

	/* Rejected images leave the state alone. */
	struct virtio_console *c2 = calloc(1, sizeof(*c2));
	assert_non_null(c2);
	struct char_sink none = {0};
	assert_int_equal(virtio_console_init(c2, none), 0);
	uint8_t *bad = malloc(out.len);
	assert_non_null(bad);
	const struct {
		size_t off;
		uint8_t v;
	} corrupt[] = {
	    {17, 2},                     /* port_open */
	    {18, VIRTIO_CONSOLE_CTRL_PENDING + 1}, /* too many messages */
	    {18, 3},                     /* more messages than the image holds */
	    {19, 1},                     /* id 1 */
	    {23, VIRTIO_CONSOLE_RESIZE}, /* an event the device never sends */
	    {25, 0},                     /* value 0 */
	    {26, 1},                     /* value 0x101 */
	};
	for (unsigned i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
		memcpy(bad, out.data, out.len);
		bad[corrupt[i].off] = corrupt[i].v;
		snapbuf_init_reader(&in, bad, out.len);
		assert_true(virtio_console_ops.load(c2, &in) < 0);
		assert_int_equal(c2->in_len, 0);
		assert_false(c2->port_open);
		assert_int_equal(c2->ctrl_len, 0);
	}
	free(bad);

	/* A v1 image (input only) still loads: closed port, nothing pending. */
	const uint8_t v1[] = {'V', 'C', 'O', 'N', 1, 0, 0, 0, 2, 0, 0, 0, 'h', 'i'};
	c2->port_open = true;
	snapbuf_init_reader(&in, v1, sizeof(v1));
	assert_int_equal(virtio_console_ops.load(c2, &in), 0);
	assert_int_equal(in.pos, sizeof(v1));
	assert_int_equal(c2->in_len, 2);
	assert_false(c2->port_open);
	virtio_console_destroy(c2);
	free(c2);

	/* Restore into this device as the transport does: reset, load, then
	 * activate. The open port and the pending replies come back. */
	virtio_console_ops.reset(&f->con);
	for (unsigned q = 0; q < VIRTIO_CONSOLE_NUM_QUEUES; q++)
		vq_reset(&f->h.vq[q]);
	snapbuf_init_reader(&in, out.data, out.len);
	assert_int_equal(virtio_console_ops.load(&f->con, &in), 0);
	assert_int_equal(in.pos, out.len);
	snapbuf_free(&out);
	assert_true(f->con.port_open);
	assert_int_equal(f->con.ctrl_len, 2);
	enable_queues(f);
	assert_int_equal(vh_enable(&f->h, CRX, QSIZE), 0);
	assert_int_equal(vh_enable(&f->h, CTX, QSIZE), 0);
	/* Buffers queued before DRIVER_OK, not notified (inactive: ignored). */
	assert_true(vh_add_buf(&f->h, RX, VH_DATA_GPA, 64, true) >= 0);
	post_ctrl_bufs(f, 2, 64);
	activate_mp(f);
	assert_rx(f, 0, VH_DATA_GPA, "typed");
	assert_msg(f, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	assert_msg(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_int_equal(f->h.failed_calls, 0);
}

/* Input racing delivery: a producer thread pushes a long patterned stream
 * in odd-sized pieces, retrying what does not fit, while this thread plays
 * the transport's I/O thread with a driver that recycles 8 buffers. */
#define STREAM (256u * 1024)
#define RXBUF 512u

struct producer_arg {
	struct virtio_console *con;
	bool stop; /* the consumer gave up: stop retrying */
};

static void *producer(void *arg)
{
	struct producer_arg *pa = arg;
	struct virtio_console *c = pa->con;
	uint8_t piece[300];
	size_t sent = 0;
	unsigned k = 0;
	while (sent < STREAM && !__atomic_load_n(&pa->stop, __ATOMIC_RELAXED)) {
		size_t n = 1 + (k++ * 37) % sizeof(piece);
		if (n > STREAM - sent)
			n = STREAM - sent;
		for (size_t i = 0; i < n; i++)
			piece[i] = pat(sent + i);
		size_t done = 0;
		while (done < n && !__atomic_load_n(&pa->stop, __ATOMIC_RELAXED)) {
			size_t a = virtio_console_input(c, piece + done, n - done);
			done += a;
			if (!a)
				sched_yield();
		}
		sent += n;
	}
	return NULL;
}

static void test_threaded_input(void **state)
{
	struct fx *f = *state;
	activate(f);
	pthread_t t;
	struct producer_arg pa = {.con = &f->con};
	assert_int_equal(pthread_create(&t, NULL, producer, &pa), 0);

	size_t got = 0;
	uint16_t seen = 0;
	unsigned added = 0;
	time_t deadline = time(NULL) + 30;
	bool ok = true;
	while (got < STREAM && ok) {
		bool refill = false;
		while ((uint16_t)(added - seen) < 8) {
			uint64_t gpa = VH_DATA_GPA + RXBUF * (added % QSIZE);
			assert_true(vh_add_buf(&f->h, RX, gpa, RXBUF, true) >= 0);
			added++;
			refill = true;
		}
		if (refill)
			notify(f, RX);
		struct pollfd p = {.fd = f->h.watched_fd, .events = POLLIN};
		if (poll(&p, 1, 10) == 1)
			virtio_console_ops.fd_ready(&f->con, f->h.watched_fd);
		for (uint16_t u = vh_used_idx(&f->h, RX); seen != u; seen++) {
			uint32_t len = vh_used_len(&f->h, RX, seen);
			const uint8_t *d = gp(f, VH_DATA_GPA + RXBUF * (seen % QSIZE), RXBUF);
			for (uint32_t i = 0; i < len && ok; i++)
				ok = d[i] == pat(got + i);
			got += len;
		}
		if (time(NULL) > deadline)
			break;
	}
	__atomic_store_n(&pa.stop, true, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	assert_true(ok);
	assert_int_equal(got, STREAM);
	assert_int_equal(f->h.failed_calls, 0);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the hostile cases each log a warning */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_ops_and_config),
	    T(test_tx_reaches_sink_in_order),
	    T(test_input_before_activation),
	    T(test_input_held_until_buffer_arrives),
	    T(test_input_overflow_and_wrap),
	    T(test_malformed_tx_ring_fails),
	    T(test_malformed_rx_ring_fails),
	    T(test_hostile_ring_does_not_hang),
	    T(test_reset_keeps_input),
	    T(test_activate_errors),
	    T(test_save_load),
	    T(test_threaded_input),
	    T(test_mp_handshake),
	    T(test_mp_input_held_until_port_open),
	    T(test_mp_pending_control_messages),
	    T(test_mp_bad_control_messages_ignored),
	    T(test_mp_malformed_control_rings_fail),
	    T(test_no_multiport_ignores_control_queues),
	    T(test_mp_reset_forgets_port),
	    T(test_mp_save_load),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
