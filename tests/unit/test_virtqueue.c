/* The split virtqueue (virtio/virtqueue.c): rings are built by hand in a
 * 16 MiB guest, as a driver would lay them out, then popped and pushed.
 * Covers normal and indirect chains, ordering, the used ring, 16-bit index
 * wrap-around, notification suppression, and every malformed-ring case the
 * queue must turn into -EIO and a broken queue. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "util/log.h"
#include "virtio/virtqueue.h"
#include "vm/memory.h"
#include "vq_driver.h"

#define QSIZE 16u
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA 0x30000ULL
#define INDIRECT_GPA 0x40000ULL
#define DATA_GPA 0x100000ULL
#define RAM (16ULL << 20)

#define F_NEXT VIRTQ_DESC_F_NEXT
#define F_WRITE VIRTQ_DESC_F_WRITE
#define F_INDIRECT VIRTQ_DESC_F_INDIRECT
#define FEAT_INDIRECT (1ULL << VIRTIO_F_INDIRECT_DESC)
#define FEAT_EVENT_IDX (1ULL << VIRTIO_F_EVENT_IDX)

struct fx {
	struct guest_mem mem;
	struct virtqueue vq;
	struct vqd d; /* the driver's side */
	struct vq_chain chain;
};

static uint8_t *gp(struct fx *f, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(&f->mem, gpa, len);
	assert_non_null(p);
	return p;
}

static void put16(struct fx *f, uint64_t gpa, uint16_t v)
{
	assert_int_equal(vqd_put16(&f->mem, gpa, v), 0);
}

static void set_desc_at(struct fx *f, uint64_t table, uint32_t i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	assert_int_equal(vqd_write_desc(&f->mem, table, i, addr, len, flags, next), 0);
}

static void set_desc(struct fx *f, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	set_desc_at(f, DESC_GPA, i, addr, len, flags, next);
}

/* Driver side: publish `head` in the available ring. */
static void avail_add(struct fx *f, uint16_t head)
{
	assert_int_equal(vqd_publish(&f->d, head), 0);
}

static void enable(struct fx *f, uint64_t features)
{
	memset(gp(f, 0, 0x50000), 0, 0x50000); /* rings and indirect table */
	vqd_init(&f->d, &f->mem, DESC_GPA, AVAIL_GPA, USED_GPA, QSIZE);
	assert_int_equal(vqd_enable(&f->d, &f->vq, features), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	if (guest_mem_init(&f->mem, RAM)) {
		free(f);
		return -1;
	}
	vq_init(&f->vq, &f->mem);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	guest_mem_destroy(&f->mem);
	free(f);
	return 0;
}

static void test_enable_validation(void **state)
{
	struct fx *f = *state;
	struct virtqueue *vq = &f->vq;
	assert_int_equal(vq_enable(vq, 0, DESC_GPA, AVAIL_GPA, USED_GPA, 0), -EINVAL);
	assert_int_equal(vq_enable(vq, 24, DESC_GPA, AVAIL_GPA, USED_GPA, 0), -EINVAL);
	assert_int_equal(vq_enable(vq, 65536, DESC_GPA, AVAIL_GPA, USED_GPA, 0), -EINVAL);
	assert_int_equal(vq_enable(vq, QSIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA, 0), -EINVAL);
	assert_int_equal(vq_enable(vq, QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA, 0), -EINVAL);
	assert_int_equal(vq_enable(vq, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + 2, 0), -EINVAL);
	/* Rings that end beyond RAM, or start in the MMIO hole. */
	assert_int_equal(vq_enable(vq, QSIZE, RAM - 128, AVAIL_GPA, USED_GPA, 0), -EINVAL);
	assert_int_equal(vq_enable(vq, QSIZE, DESC_GPA, RAM - 8, USED_GPA, 0), -EINVAL);
	assert_int_equal(vq_enable(vq, QSIZE, DESC_GPA, AVAIL_GPA, RAM - 64, 0), -EINVAL);
	assert_int_equal(vq_enable(vq, QSIZE, DESC_GPA, AVAIL_GPA, LAYOUT_4G - 4096, 0), -EINVAL);
	/* A disabled queue is simply empty. */
	assert_int_equal(vq_pop(vq, &f->chain), 0);
	/* The largest queue fits: 32768 entries, rings placed in RAM. */
	assert_int_equal(vq_enable(vq, 32768, 0x100000, 0x200000, 0x300000, 0), 0);
	assert_int_equal(vq_enable(vq, 1, DESC_GPA, AVAIL_GPA, USED_GPA, 0), 0);
	assert_int_equal(vq_used_bytes(QSIZE), 4 + 8 * QSIZE + 2);
	assert_int_equal(vq_avail_bytes(QSIZE), 4 + 2 * QSIZE + 2);
}

static void test_normal_chain(void **state)
{
	struct fx *f = *state;
	enable(f, 0);
	uint8_t *data = gp(f, DATA_GPA, 0x3000);
	for (unsigned i = 0; i < 24; i++)
		data[i] = (uint8_t)i;
	memcpy(data + 0x1000, (uint8_t[8]){16, 17, 18, 19, 20, 21, 22, 23}, 8);
	/* Descriptors out of table order: 5 -> 2 -> 9. */
	set_desc(f, 5, DATA_GPA, 16, F_NEXT, 2);
	set_desc(f, 2, DATA_GPA + 0x1000, 8, F_NEXT, 9);
	set_desc(f, 9, DATA_GPA + 0x2000, 100, F_WRITE, 0);
	avail_add(f, 5);

	struct vq_chain *c = &f->chain;
	assert_int_equal(vq_pop(&f->vq, c), 1);
	assert_int_equal(c->head, 5);
	assert_int_equal(c->nseg, 3);
	assert_int_equal(c->nread, 2);
	assert_int_equal(c->read_len, 24);
	assert_int_equal(c->write_len, 100);
	assert_ptr_equal(c->seg[0].host, data);
	assert_ptr_equal(c->seg[1].host, data + 0x1000);
	assert_ptr_equal(c->seg[2].host, data + 0x2000);
	assert_false(c->seg[0].writable);
	assert_true(c->seg[2].writable);

	/* Reads across the segment boundary; out-of-range reads fail whole. */
	uint8_t buf[24];
	assert_int_equal(vq_chain_read(c, 10, buf, 12), 0);
	for (unsigned i = 0; i < 12; i++)
		assert_int_equal(buf[i], 10 + i);
	assert_int_equal(vq_chain_read(c, 20, buf, 5), -EFAULT);
	assert_int_equal(vq_chain_read(c, UINT64_MAX, buf, 2), -EFAULT);
	assert_int_equal(vq_chain_write(c, 96, "abcd", 4), 0);
	assert_memory_equal(data + 0x2000 + 96, "abcd", 4);
	assert_int_equal(vq_chain_write(c, 97, "abcd", 4), -EFAULT);

	assert_int_equal(vq_pop(&f->vq, c), 0);
	assert_false(vq_is_broken(&f->vq));
}

static void test_zero_length_descriptor_is_skipped(void **state)
{
	struct fx *f = *state;
	enable(f, 0);
	set_desc(f, 0, DATA_GPA, 0, F_NEXT, 1);
	set_desc(f, 1, DATA_GPA, 4, 0, 0);
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->chain), 1);
	assert_int_equal(f->chain.nseg, 1);
	assert_int_equal(f->chain.read_len, 4);
}

static void test_indirect_chain(void **state)
{
	struct fx *f = *state;
	enable(f, FEAT_INDIRECT);
	/* Two direct descriptors, then an indirect table of 3 entries chained
	 * 0 -> 2 -> 1 (the spec allows direct descriptors before it). */
	set_desc(f, 0, DATA_GPA, 10, F_NEXT, 1);
	set_desc(f, 1, INDIRECT_GPA, 48, F_INDIRECT | F_WRITE, 0); /* WRITE ignored */
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA + 0x100, 20, F_NEXT, 2);
	set_desc_at(f, INDIRECT_GPA, 2, DATA_GPA + 0x200, 30, F_NEXT | F_WRITE, 1);
	set_desc_at(f, INDIRECT_GPA, 1, DATA_GPA + 0x300, 1, F_WRITE, 0);
	avail_add(f, 0);

	struct vq_chain *c = &f->chain;
	assert_int_equal(vq_pop(&f->vq, c), 1);
	assert_int_equal(c->head, 0);
	assert_int_equal(c->nseg, 4);
	assert_int_equal(c->nread, 2);
	assert_int_equal(c->read_len, 30);
	assert_int_equal(c->write_len, 31);
	assert_ptr_equal(c->seg[2].host, gp(f, DATA_GPA + 0x200, 1));
	assert_ptr_equal(c->seg[3].host, gp(f, DATA_GPA + 0x300, 1));
	assert_int_equal(vq_chain_write(c, 30, "z", 1), 0);
	assert_int_equal(*gp(f, DATA_GPA + 0x300, 1), 'z');
}

static void test_chains_in_order_and_used_ring(void **state)
{
	struct fx *f = *state;
	enable(f, 0);
	static const uint16_t heads[] = {3, 0, 7, 15};
	for (unsigned i = 0; i < 4; i++) {
		set_desc(f, heads[i], DATA_GPA + 0x1000 * i, 64, F_WRITE, 0);
		avail_add(f, heads[i]);
	}
	struct vq_chain c[4];
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(vq_pop(&f->vq, &c[i]), 1);
		assert_int_equal(c[i].head, heads[i]);
	}
	assert_int_equal(vq_pop(&f->vq, &f->chain), 0);

	/* Completed out of order; the used ring records completion order. */
	vq_push(&f->vq, &c[2], 10);
	assert_int_equal(vqd_used_idx(&f->d), 1);
	assert_int_equal(vqd_used_id(&f->d, 0), 7);
	assert_int_equal(vqd_used_len(&f->d, 0), 10);
	vq_push(&f->vq, &c[0], 1000); /* more than writable: clamped to 64 */
	vq_push(&f->vq, &c[3], 0);
	vq_push(&f->vq, &c[1], 64);
	assert_int_equal(vqd_used_idx(&f->d), 4);
	assert_int_equal(vqd_used_id(&f->d, 1), 3);
	assert_int_equal(vqd_used_len(&f->d, 1), 64);
	assert_int_equal(vqd_used_id(&f->d, 2), 15);
	assert_int_equal(vqd_used_len(&f->d, 2), 0);
	assert_int_equal(vqd_used_id(&f->d, 3), 0);
}

static void test_index_wraparound(void **state)
{
	struct fx *f = *state;
	enable(f, 0);
	/* Pretend 65533 buffers already went round: all indexes near 2^16. */
	const uint16_t start = 65533;
	f->vq.last_avail_idx = start;
	f->vq.used_idx = start;
	put16(f, USED_GPA + 2, start);
	f->d.avail_idx = start;
	put16(f, AVAIL_GPA + 2, start);
	for (unsigned i = 0; i < 6; i++) {
		set_desc(f, i, DATA_GPA, 8, 0, 0);
		avail_add(f, (uint16_t)i);
	}
	assert_int_equal(f->d.avail_idx, 3); /* wrapped */
	for (unsigned i = 0; i < 6; i++) {
		assert_int_equal(vq_pop(&f->vq, &f->chain), 1);
		assert_int_equal(f->chain.head, i);
		vq_push(&f->vq, &f->chain, 0);
	}
	assert_int_equal(vq_pop(&f->vq, &f->chain), 0);
	assert_int_equal(vqd_used_idx(&f->d), 3);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(vqd_used_id(&f->d, (uint16_t)(start + i)), i);
}

static void pop_push_one(struct fx *f, uint16_t head)
{
	set_desc(f, head, DATA_GPA, 8, 0, 0);
	avail_add(f, head);
	assert_int_equal(vq_pop(&f->vq, &f->chain), 1);
	vq_push(&f->vq, &f->chain, 0);
}

static void test_notify_flags(void **state)
{
	struct fx *f = *state;
	enable(f, 0);
	pop_push_one(f, 0);
	assert_true(vq_should_notify(&f->vq));
	put16(f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	pop_push_one(f, 1);
	assert_false(vq_should_notify(&f->vq));

	/* Driver->device suppression uses the used ring's flags. */
	vq_set_notify(&f->vq, false);
	assert_int_equal(vqd_get16(&f->mem, USED_GPA), VIRTQ_USED_F_NO_NOTIFY);
	assert_false(vq_has_avail(&f->vq));
	avail_add(f, 1);
	vq_set_notify(&f->vq, true);
	assert_int_equal(vqd_get16(&f->mem, USED_GPA), 0);
	assert_true(vq_has_avail(&f->vq));
}

static void test_event_idx(void **state)
{
	struct fx *f = *state;
	enable(f, FEAT_EVENT_IDX);
	const uint64_t used_event = AVAIL_GPA + 4 + 2 * QSIZE;
	const uint64_t avail_event = USED_GPA + 4 + 8 * QSIZE;

	pop_push_one(f, 0); /* used idx 1 */
	assert_int_equal(vqd_get16(&f->mem, avail_event), 1); /* notify me after entry 1 */
	assert_true(vq_should_notify(&f->vq)); /* first: always */
	assert_false(vq_should_notify(&f->vq)); /* nothing new since */

	put16(f, used_event, 0); /* driver wanted an interrupt past entry 0: done */
	pop_push_one(f, 1);       /* used idx 2, old 1 */
	assert_false(vq_should_notify(&f->vq));

	put16(f, used_event, 2); /* interrupt once entry 2 is used */
	pop_push_one(f, 2);       /* used idx 3: entry 2 now used */
	assert_true(vq_should_notify(&f->vq));

	put16(f, used_event, 5); /* several pushes, event crossed in the batch */
	pop_push_one(f, 3);
	pop_push_one(f, 4);
	pop_push_one(f, 5); /* used idx 6, old 3: 5 in [3, 6) */
	assert_true(vq_should_notify(&f->vq));

	/* The event-index window wraps modulo 2^16. */
	f->vq.used_idx = 65535;
	f->vq.signalled_used = 65534;
	put16(f, used_event, 65535);
	pop_push_one(f, 6); /* used idx 0, old 65534: 65535 in [65534, 0) */
	assert_int_equal(vqd_used_idx(&f->d), 0);
	assert_true(vq_should_notify(&f->vq));

	/* Disabling notifications stops avail_event from advancing. */
	vq_set_notify(&f->vq, false);
	uint16_t ev = vqd_get16(&f->mem, avail_event);
	pop_push_one(f, 7);
	assert_int_equal(vqd_get16(&f->mem, avail_event), ev);
	vq_set_notify(&f->vq, true);
	assert_int_equal(vqd_get16(&f->mem, avail_event), f->vq.last_avail_idx);
}

/* ---- Hostile rings: each set-up must end in -EIO and a broken queue. ---- */

static void bad_loop(struct fx *f)
{
	set_desc(f, 0, DATA_GPA, 8, F_NEXT, 1);
	set_desc(f, 1, DATA_GPA, 8, F_NEXT, 0);
	avail_add(f, 0);
}
static void bad_self_loop(struct fx *f)
{
	set_desc(f, 4, DATA_GPA, 8, F_NEXT | F_WRITE, 4);
	avail_add(f, 4);
}
static void bad_long_chain(struct fx *f)
{
	/* Visits every descriptor once, then returns to the middle. */
	for (unsigned i = 0; i < QSIZE; i++)
		set_desc(f, i, DATA_GPA, 8, F_NEXT, (uint16_t)(i + 1 < QSIZE ? i + 1 : 8));
	avail_add(f, 0);
}
static void bad_next_range(struct fx *f)
{
	set_desc(f, 0, DATA_GPA, 8, F_NEXT, QSIZE);
	avail_add(f, 0);
}
static void bad_addr_outside(struct fx *f)
{
	set_desc(f, 0, RAM - 4, 8, 0, 0);
	avail_add(f, 0);
}
static void bad_addr_high(struct fx *f)
{
	set_desc(f, 0, LAYOUT_4G + 0x1000, 8, F_WRITE, 0);
	avail_add(f, 0);
}
static void bad_addr_overflow(struct fx *f)
{
	set_desc(f, 0, UINT64_MAX - 0xf, 0x20, 0, 0);
	avail_add(f, 0);
}
static void bad_second_addr(struct fx *f)
{
	set_desc(f, 0, DATA_GPA, 8, F_NEXT, 1);
	set_desc(f, 1, 0xfee00000, 4, F_WRITE, 0);
	avail_add(f, 0);
}
static void bad_read_after_write(struct fx *f)
{
	set_desc(f, 0, DATA_GPA, 8, F_NEXT | F_WRITE, 1);
	set_desc(f, 1, DATA_GPA, 8, 0, 0);
	avail_add(f, 0);
}
static void bad_zero_read_after_write(struct fx *f)
{
	set_desc(f, 0, DATA_GPA, 8, F_NEXT | F_WRITE, 1);
	set_desc(f, 1, DATA_GPA, 0, 0, 0);
	avail_add(f, 0);
}
static void bad_avail_jump(struct fx *f)
{
	set_desc(f, 0, DATA_GPA, 8, 0, 0);
	put16(f, AVAIL_GPA + 2, QSIZE + 1);
}
static void bad_avail_backwards(struct fx *f)
{
	put16(f, AVAIL_GPA + 2, 0xffff);
}
static void bad_head_range(struct fx *f)
{
	avail_add(f, QSIZE);
}
static void indirect_head(struct fx *f, uint32_t len, uint16_t flags)
{
	set_desc(f, 0, INDIRECT_GPA, len, flags, 1);
	avail_add(f, 0);
}
static void bad_indirect_zero(struct fx *f) { indirect_head(f, 0, F_INDIRECT); }
static void bad_indirect_unaligned_len(struct fx *f)
{
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 8, 0, 0);
	indirect_head(f, 24, F_INDIRECT);
}
static void bad_indirect_too_big(struct fx *f) { indirect_head(f, 16 * (VQ_MAX_SEGS + 1), F_INDIRECT); }
static void bad_indirect_with_next(struct fx *f)
{
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 8, 0, 0);
	set_desc(f, 1, DATA_GPA, 8, 0, 0);
	indirect_head(f, 16, F_INDIRECT | F_NEXT);
}
static void bad_indirect_nested(struct fx *f)
{
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 8, F_NEXT, 1);
	set_desc_at(f, INDIRECT_GPA, 1, INDIRECT_GPA, 32, F_INDIRECT, 0);
	indirect_head(f, 32, F_INDIRECT);
}
static void bad_indirect_loop(struct fx *f)
{
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 8, F_NEXT, 1);
	set_desc_at(f, INDIRECT_GPA, 1, DATA_GPA, 8, F_NEXT, 0);
	indirect_head(f, 32, F_INDIRECT);
}
static void bad_indirect_next_range(struct fx *f)
{
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 8, F_NEXT, 2);
	indirect_head(f, 32, F_INDIRECT);
}
static void bad_indirect_order(struct fx *f)
{
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 8, F_NEXT | F_WRITE, 1);
	set_desc_at(f, INDIRECT_GPA, 1, DATA_GPA, 8, 0, 0);
	indirect_head(f, 32, F_INDIRECT);
}
static void bad_indirect_table_outside(struct fx *f)
{
	set_desc(f, 0, RAM - 16, 32, F_INDIRECT, 0);
	avail_add(f, 0);
}
static void bad_indirect_data_outside(struct fx *f)
{
	set_desc_at(f, INDIRECT_GPA, 0, RAM, 8, 0, 0);
	indirect_head(f, 16, F_INDIRECT);
}
static void bad_too_many_segments(struct fx *f)
{
	/* 15 direct segments, then an indirect table of the maximum size:
	 * 15 + 1024 segments in all. */
	for (unsigned i = 0; i < QSIZE - 1; i++)
		set_desc(f, i, DATA_GPA, 8, F_NEXT, (uint16_t)(i + 1));
	set_desc(f, QSIZE - 1, INDIRECT_GPA, 16 * VQ_MAX_SEGS, F_INDIRECT, 0);
	for (unsigned i = 0; i < VQ_MAX_SEGS; i++)
		set_desc_at(f, INDIRECT_GPA, i, DATA_GPA, 8, i + 1 < VQ_MAX_SEGS ? F_NEXT : 0,
			    (uint16_t)(i + 1));
	avail_add(f, 0);
}

static void expect_broken(struct fx *f, uint64_t features, void (*build)(struct fx *))
{
	enable(f, features);
	build(f);
	assert_int_equal(vq_pop(&f->vq, &f->chain), -EIO);
	assert_true(vq_is_broken(&f->vq));
	/* Stays broken: no more pops, pushes ignored, no interrupts. */
	assert_int_equal(vq_pop(&f->vq, &f->chain), -EIO);
	vq_push(&f->vq, &f->chain, 0);
	assert_int_equal(vqd_used_idx(&f->d), 0);
	assert_false(vq_should_notify(&f->vq));
	assert_false(vq_has_avail(&f->vq));
}

static void test_hostile_direct(void **state)
{
	struct fx *f = *state;
	void (*const cases[])(struct fx *) = {
	    bad_loop,          bad_self_loop,        bad_long_chain,           bad_next_range,
	    bad_addr_outside,  bad_addr_high,        bad_addr_overflow,        bad_second_addr,
	    bad_read_after_write, bad_zero_read_after_write, bad_avail_jump, bad_avail_backwards,
	    bad_head_range,
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_broken(f, FEAT_INDIRECT | FEAT_EVENT_IDX, cases[i]);
}

static void test_hostile_indirect(void **state)
{
	struct fx *f = *state;
	void (*const cases[])(struct fx *) = {
	    bad_indirect_zero,       bad_indirect_unaligned_len, bad_indirect_too_big,
	    bad_indirect_with_next,  bad_indirect_nested,        bad_indirect_loop,
	    bad_indirect_next_range, bad_indirect_order,         bad_indirect_table_outside,
	    bad_indirect_data_outside, bad_too_many_segments,
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_broken(f, FEAT_INDIRECT, cases[i]);
	/* A well-formed indirect descriptor without the feature is malformed. */
	expect_broken(f, 0, bad_indirect_data_outside);
	enable(f, 0);
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 8, 0, 0);
	indirect_head(f, 16, F_INDIRECT);
	assert_int_equal(vq_pop(&f->vq, &f->chain), -EIO);
}

static void test_reset_clears_broken(void **state)
{
	struct fx *f = *state;
	expect_broken(f, 0, bad_loop);
	vq_reset(&f->vq);
	assert_false(vq_is_broken(&f->vq));
	assert_int_equal(vq_pop(&f->vq, &f->chain), 0); /* disabled */
	enable(f, 0);
	pop_push_one(f, 0);
	assert_int_equal(vqd_used_idx(&f->d), 1);
}

/* Guests above 3 GiB: a buffer spanning the MMIO hole, and a chain whose
 * total length passes 4 GiB. Mapped with MAP_NORESERVE, so cheap. */
static void test_big_guest(void **state)
{
	(void)state;
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	if (guest_mem_init(&f->mem, LAYOUT_MMIO_HOLE_START + (64ULL << 20))) {
		free(f);
		skip();
	}
	vq_init(&f->vq, &f->mem);

	enable(f, 0);
	set_desc(f, 0, LAYOUT_MMIO_HOLE_START - 8, 16, 0, 0); /* spans the hole */
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->chain), -EIO);

	enable(f, 0);
	set_desc(f, 0, LAYOUT_4G, 4096, F_WRITE, 0); /* RAM above 4 GiB is fine */
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->chain), 1);

	enable(f, 0);
	set_desc(f, 0, 0, 0xb0000000u, F_NEXT, 1); /* 2.75 GiB each: 5.5 GiB */
	set_desc(f, 1, 0, 0xb0000000u, 0, 0);
	avail_add(f, 0);
	assert_int_equal(vq_pop(&f->vq, &f->chain), -EIO);

	guest_mem_destroy(&f->mem);
	free(f);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the hostile cases each log a warning */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_enable_validation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_normal_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_zero_length_descriptor_is_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chains_in_order_and_used_ring, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_wraparound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify_flags, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_direct, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_clears_broken, setup, teardown),
	    cmocka_unit_test(test_big_guest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
