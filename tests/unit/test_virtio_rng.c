/* virtio-rng (virtio/rng.c) behind a fake transport (vdev_harness.h): the
 * writable part of each chain gets the injected source's bytes and the
 * used length says how many; readable-only chains get 0; huge chains are
 * capped; a malformed ring fails the device; save/load validates. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "virtio/rng.h"
#include "vdev_harness.h"

#define Q 0u
#define QSIZE 16u

/* A deterministic source: bytes 0, 1, 2, ... in short pieces, with an
 * -EINTR every third call, and a hard failure once `limit` bytes are out. */
struct det_src {
	uint8_t next;
	unsigned calls;
	size_t chunk;
	size_t produced;
	size_t limit;
};

static ssize_t det_read(void *opaque, void *buf, size_t len)
{
	struct det_src *s = opaque;
	if (++s->calls % 3 == 0)
		return -EINTR;
	if (s->produced >= s->limit)
		return -EIO;
	size_t n = len < s->chunk ? len : s->chunk;
	if (n > s->limit - s->produced)
		n = s->limit - s->produced;
	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = s->next++;
	s->produced += n;
	return (ssize_t)n;
}

struct fx {
	struct vh h;
	struct det_src src;
	struct virtio_rng rng;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f || vh_init(&f->h, 1)) {
		free(f);
		return -1;
	}
	f->src = (struct det_src){.chunk = 7, .limit = SIZE_MAX};
	struct virtio_rng_source src = {.read = det_read, .opaque = &f->src};
	if (virtio_rng_init(&f->rng, &src)) {
		vh_destroy(&f->h);
		free(f);
		return -1;
	}
	if (vh_enable(&f->h, Q, QSIZE) || virtio_rng_ops.activate(&f->rng, &f->h.ctx) != 0) {
		virtio_rng_destroy(&f->rng);
		vh_destroy(&f->h);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	virtio_rng_ops.reset(&f->rng);
	assert_int_equal(f->h.watched_fd, -1);
	virtio_rng_destroy(&f->rng);
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

static void notify(struct fx *f) { virtio_rng_ops.queue_notify(&f->rng, Q); }

static void test_ops(void **state)
{
	(void)state;
	const struct virtio_device_ops *o = &virtio_rng_ops;
	assert_int_equal(o->device_id, VIRTIO_ID_RNG);
	assert_int_equal(o->num_queues, 1);
	assert_int_equal(o->config_size, 0);
	assert_int_equal(o->queue_size & (o->queue_size - 1), 0);
	assert_int_equal(o->features(NULL), 0);
	assert_non_null(o->fd_ready);
}

static void test_fills_writable_part(void **state)
{
	struct fx *f = *state;
	uint8_t *rd = gp(f, VH_DATA_GPA, 16);
	memset(rd, 0xee, 16);
	memset(gp(f, VH_DATA_GPA + 0x1000, 0x2000), 0xaa, 0x2000);
	/* A readable header, then two writable pieces of 100 and 50 bytes. */
	struct vqd_buf b[] = {{VH_DATA_GPA, 16, false},
			     {VH_DATA_GPA + 0x1000, 100, true},
			     {VH_DATA_GPA + 0x2000, 50, true}};
	int head = vh_add_chain(&f->h, Q, b, 3);
	assert_true(head >= 0);
	notify(f);

	assert_int_equal(vh_used_idx(&f->h, Q), 1);
	assert_int_equal(vh_used_id(&f->h, Q, 0), head);
	assert_int_equal(vh_used_len(&f->h, Q, 0), 150);
	assert_int_equal(f->h.used_calls[Q], 1);
	assert_int_equal(f->h.failed_calls, 0);
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(rd[i], 0xee);
	uint8_t *w1 = gp(f, VH_DATA_GPA + 0x1000, 101), *w2 = gp(f, VH_DATA_GPA + 0x2000, 51);
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(w1[i], i);
	for (unsigned i = 0; i < 50; i++)
		assert_int_equal(w2[i], 100 + i);
	assert_int_equal(w1[100], 0xaa);
	assert_int_equal(w2[50], 0xaa);
	assert_true(f->src.calls > 150 / 7); /* short reads and EINTR were retried */
}

static void test_readable_only_chain_gets_zero(void **state)
{
	struct fx *f = *state;
	memset(gp(f, VH_DATA_GPA, 64), 0x5a, 64);
	assert_true(vh_add_buf(&f->h, Q, VH_DATA_GPA, 64, false) >= 0);
	notify(f);
	assert_int_equal(vh_used_idx(&f->h, Q), 1);
	assert_int_equal(vh_used_len(&f->h, Q, 0), 0);
	assert_int_equal(f->src.produced, 0);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(gp(f, VH_DATA_GPA, 64)[i], 0x5a);
}

static void test_huge_chain_is_capped(void **state)
{
	struct fx *f = *state;
	f->src.chunk = 4096;
	const uint32_t seg = 48 * 1024;
	memset(gp(f, VH_DATA_GPA, 3 * seg), 0xaa, 3 * seg);
	struct vqd_buf b[] = {{VH_DATA_GPA, seg, true},
			     {VH_DATA_GPA + seg, seg, true},
			     {VH_DATA_GPA + 2 * seg, seg, true}};
	assert_true(vh_add_chain(&f->h, Q, b, 3) >= 0);
	/* And one 8 MiB buffer. */
	assert_true(vh_add_buf(&f->h, Q, 0x400000, 8u << 20, true) >= 0);
	notify(f);

	assert_int_equal(vh_used_idx(&f->h, Q), 2);
	assert_int_equal(vh_used_len(&f->h, Q, 0), VIRTIO_RNG_MAX_REQ);
	assert_int_equal(vh_used_len(&f->h, Q, 1), VIRTIO_RNG_MAX_REQ);
	assert_int_equal(f->src.produced, 2 * VIRTIO_RNG_MAX_REQ);
	uint8_t *p = gp(f, VH_DATA_GPA, 3 * seg);
	assert_int_equal(p[VIRTIO_RNG_MAX_REQ - 1], (uint8_t)(VIRTIO_RNG_MAX_REQ - 1));
	for (uint32_t i = VIRTIO_RNG_MAX_REQ; i < 3 * seg; i++)
		assert_int_equal(p[i], 0xaa);
	assert_int_equal(f->h.used_calls[Q], 1);
}

static void test_several_chains_one_interrupt(void **state)
{
	struct fx *f = *state;
	for (unsigned i = 0; i < 5; i++)
		assert_true(vh_add_buf(&f->h, Q, VH_DATA_GPA + 0x1000 * i, 32 + i, true) >= 0);
	notify(f);
	assert_int_equal(vh_used_idx(&f->h, Q), 5);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(vh_used_len(&f->h, Q, (uint16_t)i), 32 + i);
	assert_int_equal(f->h.used_calls[Q], 1);
	/* Nothing new: no pushes, no interrupt. */
	notify(f);
	assert_int_equal(f->h.used_calls[Q], 1);
}

static void test_source_failure_gives_short_answer(void **state)
{
	struct fx *f = *state;
	f->src.limit = 10;
	assert_true(vh_add_buf(&f->h, Q, VH_DATA_GPA, 64, true) >= 0);
	assert_true(vh_add_buf(&f->h, Q, VH_DATA_GPA + 0x1000, 64, true) >= 0);
	notify(f);
	assert_int_equal(vh_used_idx(&f->h, Q), 2);
	assert_int_equal(vh_used_len(&f->h, Q, 0), 10);
	assert_int_equal(vh_used_len(&f->h, Q, 1), 0);
	assert_int_equal(f->h.failed_calls, 0);
}

static void test_malformed_ring_fails_device(void **state)
{
	struct fx *f = *state;
	assert_true(vh_add_buf(&f->h, Q, VH_DATA_GPA, 16, true) >= 0);
	assert_true(vh_add_buf(&f->h, Q, VH_RAM - 8, 16, true) >= 0); /* ends beyond RAM */
	notify(f);
	assert_int_equal(f->h.failed_calls, 1);
	assert_non_null(f->h.failed_why);
	/* The good chain before it was answered and signalled. */
	assert_int_equal(vh_used_idx(&f->h, Q), 1);
	assert_int_equal(f->h.used_calls[Q], 1);
	/* A failed device stops watching and stays quiet until reset. */
	assert_int_equal(f->h.watched_fd, -1);
	notify(f);
	virtio_rng_ops.fd_ready(&f->rng, f->rng.efd);
	assert_int_equal(f->h.failed_calls, 1);
}

static void test_reset_and_reactivate(void **state)
{
	struct fx *f = *state;
	virtio_rng_ops.reset(&f->rng);
	assert_int_equal(f->h.watched_fd, -1);
	assert_true(vh_add_buf(&f->h, Q, VH_DATA_GPA, 16, true) >= 0);
	notify(f); /* not active: the chain waits */
	assert_int_equal(vh_used_idx(&f->h, Q), 0);

	struct virtio_queue_ctx bad = f->h.ctx;
	bad.nvq = 0;
	assert_int_equal(virtio_rng_ops.activate(&f->rng, &bad), -EINVAL);
	f->h.watch_result = -EBADF;
	assert_int_equal(virtio_rng_ops.activate(&f->rng, &f->h.ctx), -EBADF);
	notify(f);
	assert_int_equal(vh_used_idx(&f->h, Q), 0);
	f->h.watch_result = 0;
	assert_int_equal(virtio_rng_ops.activate(&f->rng, &f->h.ctx), 0);
	assert_int_equal(f->h.watched_fd, f->rng.efd);
	notify(f);
	assert_int_equal(vh_used_idx(&f->h, Q), 1);
	assert_int_equal(vh_used_len(&f->h, Q, 0), 16);
}

static void test_default_source_is_getrandom(void **state)
{
	struct fx *f = *state;
	virtio_rng_ops.reset(&f->rng);
	virtio_rng_destroy(&f->rng);
	assert_int_equal(virtio_rng_init(&f->rng, NULL), 0);
	assert_int_equal(virtio_rng_ops.activate(&f->rng, &f->h.ctx), 0);
	uint8_t *p = gp(f, VH_DATA_GPA, 256);
	memset(p, 0, 256);
	assert_true(vh_add_buf(&f->h, Q, VH_DATA_GPA, 256, true) >= 0);
	notify(f);
	assert_int_equal(vh_used_len(&f->h, Q, 0), 256);
	unsigned nonzero = 0;
	for (unsigned i = 0; i < 256; i++)
		nonzero += p[i] != 0;
	assert_true(nonzero > 128); /* ~255 expected */
}

/* A driver whose rings make the device's own writes publish new work:
 * used->flags sits on avail->idx, so each NO_NOTIFY toggle adds or removes
 * an entry. Each callback must still return, leaving the rest to a kick
 * of its eventfd. */
static void test_hostile_ring_does_not_hang(void **state)
{
	struct fx *f = *state;
	uint64_t base = VH_RING_GPA(Q);
	uint8_t *r = gp(f, base, 0x10000);
	memset(r, 0, 0x10000);
	vq_reset(&f->h.vq[Q]);
	assert_int_equal(vq_enable(&f->h.vq[Q], QSIZE, base, base + 0x2002, base + 0x2004, 0), 0);
	vh_set_desc(&f->h, Q, 0, VH_DATA_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	for (unsigned round = 0; round < 3; round++) {
		if (round == 0)
			notify(f);
		else
			virtio_rng_ops.fd_ready(&f->rng, f->rng.efd);
		assert_true(vh_fd_readable(f->rng.efd));
	}
	assert_int_equal(f->h.failed_calls, 0);
}

static void test_save_load(void **state)
{
	struct fx *f = *state;
	struct snapbuf out, in;
	snapbuf_init_writer(&out);
	assert_int_equal(virtio_rng_ops.save(&f->rng, &out), 0);
	snapbuf_init_reader(&in, out.data, out.len);
	assert_int_equal(virtio_rng_ops.load(&f->rng, &in), 0);
	assert_int_equal(in.pos, out.len);

	/* Truncated, foreign tag, newer version. */
	snapbuf_init_reader(&in, out.data, out.len - 1);
	assert_true(virtio_rng_ops.load(&f->rng, &in) < 0);
	uint8_t bad[8];
	memcpy(bad, out.data, 8);
	bad[0] ^= 1;
	snapbuf_init_reader(&in, bad, 8);
	assert_true(virtio_rng_ops.load(&f->rng, &in) < 0);
	memcpy(bad, out.data, 8);
	bad[4] = 2;
	snapbuf_init_reader(&in, bad, 8);
	assert_true(virtio_rng_ops.load(&f->rng, &in) < 0);
	snapbuf_free(&out);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the hostile cases each log a warning */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_ops),
	    T(test_fills_writable_part),
	    T(test_readable_only_chain_gets_zero),
	    T(test_huge_chain_is_capped),
	    T(test_several_chains_one_interrupt),
	    T(test_source_failure_gives_short_answer),
	    T(test_malformed_ring_fails_device),
	    T(test_reset_and_reactivate),
	    T(test_default_source_is_getrandom),
	    T(test_hostile_ring_does_not_hang),
	    T(test_save_load),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
