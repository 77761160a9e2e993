/* Fuzz target for the split virtqueue (virtio/virtqueue.c). The input is a
 * small header choosing the queue (size, features, ring offsets) followed by
 * bytes written over a 64 KiB window of guest memory that holds the rings,
 * descriptors, indirect tables and data pages. The target then pops, copies
 * through, and pushes chains for a bounded number of rounds, checking the
 * invariants vq_pop() promises for every chain it returns.
 *
 * Header (9 bytes): size_log2 (mod 9: 1..256 entries), features
 * (bit 0 indirect, bit 1 event_idx), desc, avail, used offsets (le16 each,
 * reduced so each ring lies inside the window; misaligned ones are left for
 * vq_enable() to refuse), and a byte that varies the device's behaviour.
 *
 * Determinism: the window is rewritten for every input, and the device only
 * ever writes zeros, so writes that land outside the window (descriptors may
 * point anywhere in RAM) leave memory as the next input expects it: zero. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/log.h"
#include "virtio/virtqueue.h"
#include "vm/memory.h"

#define WIN_GPA 0x10000ULL
#define WIN_SIZE 0x10000u
#define HDR_SIZE 9u
#define MAX_ROUNDS 64u

static struct guest_mem fuzz_mem;
static struct virtqueue fuzz_vq;
static struct vq_chain fuzz_chain;
static uint8_t scratch[4096];
static const uint8_t zeros[4096];

static uint16_t hdr16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* The promises of vq_pop(): segments in RAM, readable before writable,
 * counts and totals consistent and bounded. Traps if one is broken. */
static void check_chain(const struct vq_chain *c)
{
	uint64_t rd = 0, wr = 0;
	if (c->nseg > VQ_MAX_SEGS || c->nread > c->nseg || c->head >= fuzz_vq.size)
		__builtin_trap();
	for (unsigned i = 0; i < c->nseg; i++) {
		const struct vq_seg *s = &c->seg[i];
		if (s->len == 0 || s->writable != (i >= c->nread))
			__builtin_trap();
		if (s->host < fuzz_mem.base ||
		    (uint64_t)(s->host - fuzz_mem.base) + s->len > fuzz_mem.ram_size)
			__builtin_trap();
		if (s->writable)
			wr += s->len;
		else
			rd += s->len;
	}
	if (rd != c->read_len || wr != c->write_len || rd + wr > VQ_MAX_CHAIN_BYTES)
		__builtin_trap();
}

/* Acts as a device would: reads the request, writes part of a reply. */
static uint32_t serve(const struct vq_chain *c, uint8_t mode)
{
	uint64_t rd = c->read_len < sizeof(scratch) ? c->read_len : sizeof(scratch);
	if (vq_chain_read(c, 0, scratch, rd) != 0)
		__builtin_trap();
	if (c->read_len > 0 && vq_chain_read(c, c->read_len - 1, scratch, 1) != 0)
		__builtin_trap();
	if (vq_chain_read(c, c->read_len, scratch, 1) == 0)
		__builtin_trap(); /* one past the end must fail */
	uint64_t wr = c->write_len < sizeof(scratch) ? c->write_len : sizeof(scratch);
	if (mode & 1)
		wr /= 2;
	/* Writes may land on the rings themselves: the guest allowed it. */
	if (vq_chain_write(c, c->write_len - wr, zeros, wr) != 0)
		__builtin_trap();
	if (vq_chain_write(c, c->write_len, zeros, 1) == 0)
		__builtin_trap();
	return (mode & 2) ? UINT32_MAX : (uint32_t)wr;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fuzz_mem.base) {
		log_set_level(LOG_ERROR); /* malformed rings are the point here */
		if (guest_mem_init(&fuzz_mem, GUEST_MEM_MIN_SIZE))
			return 0;
	}
	if (size < HDR_SIZE)
		return 0;
	uint8_t *win = guest_mem_ptr(&fuzz_mem, WIN_GPA, WIN_SIZE);
	size_t body = size - HDR_SIZE < WIN_SIZE ? size - HDR_SIZE : WIN_SIZE;
	memset(win, 0, WIN_SIZE);
	memcpy(win, data + HDR_SIZE, body);

	uint32_t qsize = 1u << (data[0] % 9);
	uint64_t features = 0;
	if (data[1] & 1)
		features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	if (data[1] & 2)
		features |= 1ULL << VIRTIO_F_EVENT_IDX;
	uint8_t mode = data[8];

	vq_init(&fuzz_vq, &fuzz_mem);
	uint64_t desc = WIN_GPA + hdr16(data + 2) % (WIN_SIZE - vq_desc_bytes(qsize) + 1);
	uint64_t avail = WIN_GPA + hdr16(data + 4) % (WIN_SIZE - vq_avail_bytes(qsize) + 1);
	uint64_t used = WIN_GPA + hdr16(data + 6) % (WIN_SIZE - vq_used_bytes(qsize) + 1);
	if (vq_enable(&fuzz_vq, qsize, desc, avail, used, features) != 0)
		return 0;

	for (unsigned round = 0; round < MAX_ROUNDS; round++) {
		int r = vq_pop(&fuzz_vq, &fuzz_chain);
		if (r < 0) {
			if (!vq_is_broken(&fuzz_vq))
				__builtin_trap();
			break;
		}
		if (r == 0) {
			vq_set_notify(&fuzz_vq, true);
			if (!vq_has_avail(&fuzz_vq))
				break;
			continue;
		}
		if (round == 0)
			vq_set_notify(&fuzz_vq, false);
		check_chain(&fuzz_chain);
		vq_push(&fuzz_vq, &fuzz_chain, serve(&fuzz_chain, (uint8_t)(mode >> (round % 4))));
		(void)vq_should_notify(&fuzz_vq);
	}
	return 0;
}
