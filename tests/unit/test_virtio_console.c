/* virtio-console (virtio/console.c) behind a fake transport
 * (vdev_harness.h), which plays epoll by calling fd_ready() whenever the
 * watched eventfd is readable. Output reaches the sink in order; input is
 * buffered before activation, while the driver has no receive buffers and
 * across a reset, and delivered in order; the input ring reports overflow;
 * malformed rings fail the device; emerg_wr writes; save/load validates;
 * and a producer thread racing the I/O side loses and reorders nothing. */
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
	if (!f || vh_init(&f->h, 2)) {
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
	assert_int_equal(o->num_queues, 2);
	assert_int_equal(o->config_size, 12);
	assert_int_equal(o->queue_size & (o->queue_size - 1), 0);
	assert_int_equal(o->features(&f->con), 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE);

	uint8_t d[8];
	for (uint32_t off = 0; off < 12; off++) {
		memset(d, 0xff, sizeof(d));
		o->config_read(&f->con, off, d, 1);
		assert_int_equal(d[0], 0);
	}
	memset(d, 0xff, sizeof(d));
	o->config_read(&f->con, 4, d, 8);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(d[i], 0);

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
	struct vh_buf c1[] = {{VH_DATA_GPA, 3, false}, {VH_DATA_GPA + 0x100, 4, false}};
	struct vh_buf c3[] = {{VH_DATA_GPA + 0x300, 9, false}, {VH_DATA_GPA + 0x400, 64, true}};
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
	bad[4] = 2; /* a newer version */
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
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
