/* Fuzz target for the virtio-blk device (virtio/blk.c) and, underneath,
 * the raw-file disk backend (virtio/disk_file.c) on a 1 MiB memfd.
 *
 * Each input drives one activation of the device over a 16 MiB guest:
 * the rings are placed in guest memory, the queue enabled with vq_enable(),
 * the device activated with a fake transport context, and queue_notify()
 * called a few times. Guest memory is reset to zero (MADV_DONTNEED) and the
 * disk emptied before every input, so inputs are independent.
 *
 * Header (8 bytes):
 *   [0] queue size log2 (mod 9: 1..256 entries)
 *   [1] bit 0 INDIRECT_DESC, 1 EVENT_IDX, 2 BLK_F_FLUSH, 3 BLK_F_DISCARD,
 *       4 BLK_F_WRITE_ZEROES, 5 read-only device, 6 raw mode,
 *       7 pre-fill the disk with a pattern
 *   [2..7] raw mode: desc, avail, used ring offsets in the window (le16)
 * Raw mode: the rest is written over a 64 KiB window at guest address 0
 * holding rings, descriptors and buffers; anything goes, including
 * descriptors that point at the rings. The last bytes also feed load().
 * Structured mode: the rest is a list of 8-byte request records (below)
 * that the target lays out as well-formed-looking chains, so the fuzzer
 * reaches the request executor quickly; the device still validates it
 * all. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"
#include "util/snapbuf.h"
#include "virtio/blk.h"
#include "virtio/disk_file.h"
#include "virtio/virtqueue.h"
#include "vm/memory.h"
#include "vq_driver.h"

#define DISK_BYTES (1u << 20)
#define WIN_SIZE 0x10000u
#define HDR_SIZE 8u
#define REC_SIZE 8u
#define MAX_RECS 32u
/* Structured layout: rings at fixed addresses, one 64 KiB buffer area
 * per request from BUF_GPA. */
#define DESC_GPA 0x1000u
#define AVAIL_GPA 0x3000u
#define USED_GPA 0x4000u
#define BUF_GPA 0x100000u
#define BUF_STRIDE 0x10000u

struct fuzz_state {
	struct guest_mem mem;
	int memfd;
	struct disk_file rw, ro;
	struct virtio_blk blk;
	struct virtqueue vq;
	unsigned used_calls, failed_calls;
};

static struct fuzz_state *st;

static void fuzz_used(void *transport, unsigned q)
{
	(void)transport;
	if (q != 0)
		__builtin_trap();
	st->used_calls++;
}

static void fuzz_failed(void *transport, const char *why)
{
	(void)transport;
	(void)why;
	/* Only a broken ring may fail the device. */
	if (!vq_is_broken(&st->vq))
		__builtin_trap();
	st->failed_calls++;
}

static int fuzz_init(void)
{
	static struct fuzz_state s;
	log_set_level(LOG_ERROR); /* guest errors are the point here */
	if (guest_mem_init(&s.mem, GUEST_MEM_MIN_SIZE))
		return -1;
	s.memfd = memfd_create("fuzz-virtio-blk", MFD_CLOEXEC);
	if (s.memfd < 0 || ftruncate(s.memfd, DISK_BYTES) < 0)
		return -1;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s.memfd);
	struct errmsg err;
	if (disk_file_open(&s.rw, path, false, &err))
		return -1;
	/* The read-only view shares the descriptor (a second open would
	 * conflict with the writer's lock). */
	s.ro = s.rw;
	s.ro.readonly = true;
	st = &s;
	return 0;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void gput(uint64_t gpa, const void *src, size_t len)
{
	if (guest_mem_write(&st->mem, gpa, src, len))
		__builtin_trap();
}

/* Builds descriptors for one request record and publishes it; returns the
 * head index or -1 when the table is full. Record:
 *   [0] type: low 3 bits pick IN, OUT, FLUSH, GET_ID, DISCARD,
 *       WRITE_ZEROES, SCSI_CMD(2), or rec[7] as a raw type
 *   [1..2] sector: bit 15 set → UINT64_MAX - low byte (overflow), else
 *       (value & 0x7fff) mod 2304 (capacity is 2048 sectors)
 *   [3] data bytes / 64 (multiples of 512 when divisible by 8)
 *   [4] bits 0-1 data segments - 1; bit 2 split header; bit 3 status in
 *       the last data segment; bit 4 no status; bit 5 data on the wrong
 *       side; bit 6 header one byte short; bit 7 header in the data segment
 *   [5] discard/write-zeroes: bits 0-4 segment count, bits 5-6 flags
 *   [6] discard/write-zeroes sectors per segment
 *   [7] raw type / seed */
static int build_request(struct vqd *drv, const uint8_t *rec, unsigned idx)
{
	static const uint32_t types[8] = {VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,
					  VIRTIO_BLK_T_FLUSH,   VIRTIO_BLK_T_GET_ID,
					  VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
					  2,                    0};
	uint32_t type = (rec[0] & 7) == 7 ? (uint32_t)rec[7] * 0x01010101u : types[rec[0] & 7];
	uint16_t s16 = le16(rec + 1);
	uint64_t sector = (s16 & 0x8000) ? UINT64_MAX - (s16 & 0xff) : (s16 & 0x7fff) % 2304u;
	uint8_t fl = rec[4];
	unsigned nseg = (fl & 3) + 1;
	bool is_dwz = type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES;
	bool device_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	if (fl & 0x20)
		device_writes = !device_writes;
	uint32_t data_len = (uint32_t)rec[3] * 64u;
	uint64_t buf = BUF_GPA + (uint64_t)idx * BUF_STRIDE;

	uint8_t hdr[16];
	memcpy(hdr, &type, 4);
	memset(hdr + 4, 0, 4);
	memcpy(hdr + 8, &sector, 8);
	gput(buf, hdr, 16);
	uint32_t hdr_len = (fl & 0x40) ? 15 : 16;
	uint64_t data = buf + 16;
	if (is_dwz) {
		unsigned n = rec[5] & 31;
		for (unsigned i = 0; i < n; i++) {
			uint8_t seg[16];
			uint64_t sec = (sector + (uint64_t)i * rec[6]) % 2100u;
			uint32_t num = rec[6], flags = (rec[5] >> 5) & 3;
			memcpy(seg, &sec, 8);
			memcpy(seg + 8, &num, 4);
			memcpy(seg + 12, &flags, 4);
			gput(data + 16ULL * i, seg, 16);
		}
		data_len = 16 * n;
		device_writes = (fl & 0x20) != 0;
	}
	/* Descriptor list: header (maybe split or merged with data), data
	 * segments, status (maybe merged into the last data segment). */
	struct vqd_buf d[8];
	unsigned n = 0;
	bool merge_hdr = (fl & 0x80) && !device_writes && data_len;
	if (merge_hdr) {
		d[n++] = (struct vqd_buf){buf, hdr_len + data_len, false};
	} else {
		if (fl & 4) {
			d[n++] = (struct vqd_buf){buf, 5, false};
			d[n++] = (struct vqd_buf){buf + 5, hdr_len - 5, false};
		} else {
			d[n++] = (struct vqd_buf){buf, hdr_len, false};
		}
		uint32_t left = data_len;
		for (unsigned i = 0; i < nseg && left; i++) {
			uint32_t len = i + 1 == nseg ? left : left / (nseg - i) + (rec[7] & 7);
			if (len > left)
				len = left;
			d[n++] = (struct vqd_buf){data + (data_len - left), len, device_writes};
			left -= len;
		}
	}
	if (!(fl & 0x10)) {
		if ((fl & 8) && n > 1 && d[n - 1].writable)
			d[n - 1].len++; /* status shares the last data segment */
		else
			d[n++] = (struct vqd_buf){buf + BUF_STRIDE - 1, 1, true};
	}
	if (drv->next_desc + n > drv->size)
		return -1; /* no wrapping round: the table is full */
	int head = vqd_add_chain(drv, d, n);
	if (head < 0)
		__builtin_trap(); /* the layout is inside RAM */
	return head;
}

/* Structured mode: writes the descriptor table and the available ring
 * (the queue is enabled afterwards; vq_enable leaves guest memory alone). */
static void build_structured(struct vqd *drv, const uint8_t *body, size_t len)
{
	for (size_t r = 0; r + REC_SIZE <= len && r / REC_SIZE < MAX_RECS; r += REC_SIZE) {
		if (build_request(drv, body + r, (unsigned)(r / REC_SIZE)) < 0 ||
		    drv->avail_idx == drv->size)
			break;
	}
}

static void check_config(void)
{
	uint8_t b[8];
	for (uint32_t off = 0; off < VIRTIO_BLK_CONFIG_SIZE; off += 4)
		virtio_blk_ops.config_read(&st->blk, off, b, 4);
	virtio_blk_ops.config_read(&st->blk, VIRTIO_BLK_CONFIG_SIZE - 1, b, 8);
}

/* The device ran out of budget; the next round of the loop below goes on. */
static void fuzz_requeue(void *transport, unsigned q)
{
	(void)transport;
	(void)q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!st && fuzz_init())
		return 0;
	if (size < HDR_SIZE)
		return 0;
	/* Fresh guest memory and an empty disk for every input. */
	madvise(st->mem.base, st->mem.ram_size, MADV_DONTNEED);
	if (ftruncate(st->memfd, 0) < 0 || ftruncate(st->memfd, DISK_BYTES) < 0)
		__builtin_trap();
	if (data[1] & 0x80) {
		uint8_t pat[4096];
		memset(pat, 0x5a, sizeof(pat));
		for (unsigned off = 0; off < DISK_BYTES; off += 64u << 10)
			if (pwrite(st->memfd, pat, sizeof(pat), off) != (ssize_t)sizeof(pat))
				__builtin_trap();
	}

	uint32_t qsize = 1u << (data[0] % 9);
	uint64_t features = 0;
	if (data[1] & 1)
		features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	if (data[1] & 2)
		features |= 1ULL << VIRTIO_F_EVENT_IDX;
	if (data[1] & 4)
		features |= 1ULL << VIRTIO_BLK_F_FLUSH;
	if (data[1] & 8)
		features |= 1ULL << VIRTIO_BLK_F_DISCARD;
	if (data[1] & 16)
		features |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	bool ro = data[1] & 32;
	bool raw = data[1] & 64;
	const uint8_t *body = data + HDR_SIZE;
	size_t blen = size - HDR_SIZE;

	struct disk_file *disk = ro ? &st->ro : &st->rw;
	if (virtio_blk_init(&st->blk, &disk_file_ops, disk, ro, "fuzz-serial"))
		__builtin_trap();
	vq_init(&st->vq, &st->mem);
	int ok;
	if (raw) {
		size_t n = blen < WIN_SIZE ? blen : WIN_SIZE;
		gput(0, body, n);
		uint64_t desc = le16(data + 2) % (WIN_SIZE - vq_desc_bytes(qsize) + 1);
		uint64_t avail = le16(data + 4) % (WIN_SIZE - vq_avail_bytes(qsize) + 1);
		uint64_t used = le16(data + 6) % (WIN_SIZE - vq_used_bytes(qsize) + 1);
		ok = vq_enable(&st->vq, qsize, desc, avail, used, features) == 0;
	} else {
		struct vqd drv;
		vqd_init(&drv, &st->mem, DESC_GPA, AVAIL_GPA, USED_GPA, qsize);
		build_structured(&drv, body, blen);
		ok = vqd_enable(&drv, &st->vq, features) == 0;
	}
	if (ok) {
		struct virtio_queue_ctx ctx = {
		    .mem = &st->mem,
		    .features = features,
		    .vq = &st->vq,
		    .nvq = 1,
		    .used = fuzz_used,
		    .failed = fuzz_failed,
		    .requeue = fuzz_requeue,
		    .transport = st,
		};
		if (virtio_blk_ops.activate(&st->blk, &ctx))
			__builtin_trap();
		for (unsigned round = 0; round < 3; round++)
			virtio_blk_ops.queue_notify(&st->blk, 0);
		check_config();
		virtio_blk_ops.reset(&st->blk);
		/* After a reset, notifications do nothing. */
		unsigned used = st->used_calls;
		virtio_blk_ops.queue_notify(&st->blk, 0);
		if (st->used_calls != used)
			__builtin_trap();
	}

	/* Snapshot: a round trip must load; the input's tail as a snapshot
	 * must not crash. */
	struct snapbuf out, in;
	snapbuf_init_writer(&out);
	if (virtio_blk_ops.save(&st->blk, &out) || (snapbuf_init_reader(&in, out.data, out.len),
						     virtio_blk_ops.load(&st->blk, &in)))
		__builtin_trap();
	snapbuf_free(&out);
	size_t tail = blen < 40 ? blen : 40;
	snapbuf_init_reader(&in, body + blen - tail, tail);
	(void)virtio_blk_ops.load(&st->blk, &in);
	return 0;
}
