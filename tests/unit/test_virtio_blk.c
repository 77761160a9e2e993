/* virtio-blk (virtio/blk.c) and the raw image backend (virtio/disk_file.c).
 * A 16 MiB guest holds the rings, built by hand as a driver would; a fake
 * transport context counts used() and failed() calls. Most tests run
 * against a 1 MiB temporary image file and check its bytes directly; a
 * few use an in-memory fake disk to count flushes and inject host errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/snapbuf.h"
#include "virtio/blk.h"
#include "virtio/disk_file.h"
#include "virtio/virtqueue.h"
#include "vm/memory.h"
#include "vq_driver.h"

#define QSIZE 16u
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA 0x30000ULL
#define HDR_GPA 0x40000ULL
#define STATUS_GPA 0x41000ULL
#define DATA_GPA 0x100000ULL
#define DATA2_GPA 0x200000ULL
#define RAM (16ULL << 20)
#define DISK_SIZE (1u << 20)
#define DISK_SECTORS (DISK_SIZE / 512)
#define FILL 0xa5

#define FEAT(bit) (1ULL << (bit))
#define FEAT_ALL (FEAT(VIRTIO_BLK_F_FLUSH) | FEAT(VIRTIO_BLK_F_DISCARD) | \
		  FEAT(VIRTIO_BLK_F_WRITE_ZEROES) | FEAT(VIRTIO_BLK_F_SEG_MAX))

/* In-memory disk: counts flushes, can be told to fail. */
struct fake_disk {
	uint8_t *data;
	uint64_t size;
	unsigned flushes;
	int fail; /* negative errno returned by every call when set */
};

struct fx {
	struct guest_mem mem;
	struct virtqueue vq;
	struct virtio_queue_ctx ctx;
	struct virtio_blk blk;
	struct disk_file disk;
	struct fake_disk fake;
	char path[64];
	struct vqd d; /* the driver's side */
	uint16_t used_seen;
	unsigned used_calls, failed_calls;
};

/* ---- fake transport ---------------------------------------------------- */

static void fake_used(void *transport, unsigned q)
{
	struct fx *f = transport;
	assert_int_equal(q, 0);
	f->used_calls++;
}

static void fake_failed(void *transport, const char *why)
{
	struct fx *f = transport;
	assert_non_null(why);
	f->failed_calls++;
}

/* ---- fake disk --------------------------------------------------------- */

static int fake_rw(struct fake_disk *d, struct iovec *iov, int cnt, uint64_t off, bool write)
{
	if (d->fail)
		return d->fail;
	for (int i = 0; i < cnt; i++) {
		assert_true(off + iov[i].iov_len <= d->size);
		if (write)
			memcpy(d->data + off, iov[i].iov_base, iov[i].iov_len);
		else
			memcpy(iov[i].iov_base, d->data + off, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return 0;
}

static int fake_preadv(void *disk, struct iovec *iov, int cnt, uint64_t off)
{
	return fake_rw(disk, iov, cnt, off, false);
}

static int fake_pwritev(void *disk, struct iovec *iov, int cnt, uint64_t off)
{
	return fake_rw(disk, iov, cnt, off, true);
}

static int fake_flush(void *disk)
{
	struct fake_disk *d = disk;
	d->flushes++;
	return d->fail;
}

static int fake_zero(void *disk, uint64_t off, uint64_t len, bool unmap)
{
	struct fake_disk *d = disk;
	(void)unmap;
	if (d->fail)
		return d->fail;
	assert_true(off + len <= d->size);
	memset(d->data + off, 0, len);
	return 0;
}

static int fake_discard(void *disk, uint64_t off, uint64_t len)
{
	return fake_zero(disk, off, len, true);
}

static uint64_t fake_size(void *disk)
{
	return ((struct fake_disk *)disk)->size;
}

static const struct disk_ops fake_disk_ops = {
    .preadv = fake_preadv,
    .pwritev = fake_pwritev,
    .flush = fake_flush,
    .discard = fake_discard,
    .write_zeroes = fake_zero,
    .size = fake_size,
};

/* ---- guest side -------------------------------------------------------- */

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
static void put32(struct fx *f, uint64_t gpa, uint32_t v) { memcpy(gp(f, gpa, 4), &v, 4); }
static void put64(struct fx *f, uint64_t gpa, uint64_t v) { memcpy(gp(f, gpa, 8), &v, 8); }

static void set_desc(struct fx *f, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	assert_int_equal(vqd_set_desc(&f->d, i, addr, len, flags, next), 0);
}

static void put_header(struct fx *f, uint64_t gpa, uint32_t type, uint64_t sector)
{
	put32(f, gpa, type);
	put32(f, gpa + 4, 0);
	put64(f, gpa + 8, sector);
}

/* Publishes a chain of segments at descriptors 0..n-1 (one chain in
 * flight at a time), notifies, and returns the used length reported. */
static uint32_t submit(struct fx *f, const struct vqd_buf *s, unsigned n)
{
	f->d.next_desc = 0;
	assert_int_equal(vqd_add_chain(&f->d, s, n), 0);
	virtio_blk_ops.queue_notify(&f->blk, 0);
	assert_int_equal(vqd_used_idx(&f->d), (uint16_t)(f->used_seen + 1));
	uint16_t i = f->used_seen++;
	assert_int_equal(vqd_used_id(&f->d, i), 0);
	return vqd_used_len(&f->d, i);
}

static uint8_t status(struct fx *f) { return *gp(f, STATUS_GPA, 1); }

/* A plain request: header, then `data_len` bytes at DATA_GPA readable
 * (write-type) or writable (read-type), then the status byte. */
static uint32_t simple(struct fx *f, uint32_t type, uint64_t sector, uint32_t data_len,
		       bool data_writable)
{
	put_header(f, HDR_GPA, type, sector);
	*gp(f, STATUS_GPA, 1) = 0xee;
	struct vqd_buf s[3] = {{HDR_GPA, 16, false}};
	unsigned n = 1;
	if (data_len)
		s[n++] = (struct vqd_buf){DATA_GPA, data_len, data_writable};
	s[n++] = (struct vqd_buf){STATUS_GPA, 1, true};
	return submit(f, s, n);
}

/* ---- host side --------------------------------------------------------- */

static void file_read(struct fx *f, uint64_t off, void *buf, size_t len)
{
	int fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void assert_file_bytes(struct fx *f, uint64_t off, uint8_t v, size_t len)
{
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	file_read(f, off, buf, len);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != v)
			fail_msg("file byte %#llx is %#x, expected %#x",
				 (unsigned long long)(off + i), buf[i], v);
	free(buf);
}

static void make_image(char *path, size_t size, uint8_t fill)
{
	strcpy(path, "/tmp/shrike-blk-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint8_t *buf = malloc(size ? size : 1);
	assert_non_null(buf);
	memset(buf, fill, size);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	free(buf);
	close(fd);
}

static void fake_requeue(void *transport, unsigned q)
{
	(void)transport;
	(void)q;
}

static void enable_queue(struct fx *f, uint64_t features)
{
	memset(gp(f, 0, 0x50000), 0, 0x50000);
	f->used_seen = 0;
	vqd_init(&f->d, &f->mem, DESC_GPA, AVAIL_GPA, USED_GPA, QSIZE);
	vq_init(&f->vq, &f->mem);
	assert_int_equal(vqd_enable(&f->d, &f->vq, features), 0);
	f->ctx = (struct virtio_queue_ctx){
	    .mem = &f->mem,
	    .features = features,
	    .vq = &f->vq,
	    .nvq = 1,
	    .used = fake_used,
	    .failed = fake_failed,
	    .requeue = fake_requeue,
	    .transport = f,
	};
	assert_int_equal(virtio_blk_ops.activate(&f->blk, &f->ctx), 0);
}

/* Opens the image (read-only or not) and activates a device on it. */
static void attach_file(struct fx *f, bool readonly, uint64_t features)
{
	struct errmsg err = {{0}};
	assert_int_equal(disk_file_open(&f->disk, f->path, readonly, &err), 0);
	assert_int_equal(virtio_blk_init(&f->blk, &disk_file_ops, &f->disk, readonly, "shrike-disk-0"),
			 0);
	enable_queue(f, features);
}

static void attach_fake(struct fx *f, uint64_t features)
{
	disk_file_close(&f->disk);
	assert_int_equal(virtio_blk_init(&f->blk, &fake_disk_ops, &f->fake, false, NULL), 0);
	enable_queue(f, features);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f || guest_mem_init(&f->mem, RAM)) {
		free(f);
		return -1;
	}
	log_set_level(LOG_ERROR);
	f->disk.fd = -1;
	f->fake.size = DISK_SIZE;
	f->fake.data = calloc(1, DISK_SIZE);
	make_image(f->path, DISK_SIZE, FILL);
	attach_file(f, false, FEAT_ALL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	virtio_blk_ops.reset(&f->blk);
	disk_file_close(&f->disk);
	unlink(f->path);
	free(f->fake.data);
	guest_mem_destroy(&f->mem);
	free(f);
	return 0;
}

/* ---- tests ------------------------------------------------------------- */

static uint32_t cfg32(struct fx *f, uint32_t off)
{
	uint8_t b[4];
	virtio_blk_ops.config_read(&f->blk, off, b, 4);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void test_features_and_config(void **state)
{
	struct fx *f = *state;
	uint64_t feat = virtio_blk_ops.features(&f->blk);
	assert_true(feat & FEAT(VIRTIO_BLK_F_SEG_MAX));
	assert_true(feat & FEAT(VIRTIO_BLK_F_BLK_SIZE));
	assert_true(feat & FEAT(VIRTIO_BLK_F_FLUSH));
	assert_true(feat & FEAT(VIRTIO_BLK_F_DISCARD));
	assert_true(feat & FEAT(VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(feat & FEAT(VIRTIO_BLK_F_RO));
	assert_false(feat & FEAT(VIRTIO_BLK_F_MQ));
	assert_int_equal(virtio_blk_ops.device_id, VIRTIO_ID_BLOCK);
	assert_int_equal(virtio_blk_ops.num_queues, 1);
	assert_int_equal(virtio_blk_ops.queue_size, 256);

	uint8_t cap[8];
	virtio_blk_ops.config_read(&f->blk, 0, cap, 8);
	uint64_t c = 0;
	for (int i = 7; i >= 0; i--)
		c = c << 8 | cap[i];
	assert_int_equal(c, DISK_SECTORS);
	assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_SEG_MAX), 254);
	assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_BLK_SIZE), 512);
	assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS), VIRTIO_BLK_MAX_DWZ_SECTORS);
	assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_MAX_DISCARD_SEG), VIRTIO_BLK_MAX_DWZ_SEGS);
	assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_DISCARD_ALIGNMENT), 8);
	assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_MAX_WZ_SECTORS), VIRTIO_BLK_MAX_DWZ_SECTORS);
	assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_MAX_WZ_SEG), VIRTIO_BLK_MAX_DWZ_SEGS);
	uint8_t b = 0;
	virtio_blk_ops.config_read(&f->blk, VIRTIO_BLK_CFG_WZ_MAY_UNMAP, &b, 1);
	assert_int_equal(b, 1);
	/* Writes are ignored; reads past the end are zero. */
	uint8_t junk[4] = {1, 2, 3, 4};
	virtio_blk_ops.config_write(&f->blk, 0, junk, 4);
	assert_int_equal(cfg32(f, 0), DISK_SECTORS);
	virtio_blk_ops.config_read(&f->blk, VIRTIO_BLK_CONFIG_SIZE - 2, junk, 4);
	assert_int_equal(junk[2], 0);
	assert_int_equal(junk[3], 0);

	/* Read-only: RO offered, no discard or write zeroes. */
	virtio_blk_ops.reset(&f->blk);
	disk_file_close(&f->disk);
	attach_file(f, true, FEAT_ALL);
	feat = virtio_blk_ops.features(&f->blk);
	assert_true(feat & FEAT(VIRTIO_BLK_F_RO));
	assert_false(feat & FEAT(VIRTIO_BLK_F_DISCARD));
	assert_false(feat & FEAT(VIRTIO_BLK_F_WRITE_ZEROES));
	assert_int_equal(cfg32(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS), 0);
}

static void test_write_read_round_trip(void **state)
{
	struct fx *f = *state;
	/* Write 2 sectors at sector 3: the header shares its descriptor with
	 * the first 100 data bytes, the rest is split unevenly. */
	uint8_t *hdr = gp(f, HDR_GPA, 16 + 100);
	put_header(f, HDR_GPA, VIRTIO_BLK_T_OUT, 3);
	for (unsigned i = 0; i < 1024; i++) {
		uint8_t v = (uint8_t)(i * 7 + 1);
		if (i < 100)
			hdr[16 + i] = v;
		else if (i < 700)
			gp(f, DATA_GPA, 600)[i - 100] = v;
		else
			gp(f, DATA2_GPA, 324)[i - 700] = v;
	}
	*gp(f, STATUS_GPA, 1) = 0xee;
	struct vqd_buf w[] = {{HDR_GPA, 116, false}, {DATA_GPA, 600, false},
			      {DATA2_GPA, 324, false}, {STATUS_GPA, 1, true}};
	assert_int_equal(submit(f, w, 4), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->used_calls, 1);

	uint8_t file[1024 + 2];
	file_read(f, 3 * 512 - 1, file, sizeof(file));
	assert_int_equal(file[0], FILL);
	assert_int_equal(file[1025], FILL);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(file[1 + i], (uint8_t)(i * 7 + 1));

	/* Read it back: data in two writable segments, the last of which
	 * also holds the status byte. */
	memset(gp(f, DATA_GPA, 2048), 0, 2048);
	put_header(f, HDR_GPA, VIRTIO_BLK_T_IN, 3);
	struct vqd_buf r[] = {{HDR_GPA, 16, false}, {DATA_GPA, 1000, true},
			      {DATA_GPA + 1000, 25, true}};
	assert_int_equal(submit(f, r, 3), 1025);
	uint8_t *d = gp(f, DATA_GPA, 1025);
	assert_int_equal(d[1024], VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(d[i], (uint8_t)(i * 7 + 1));
	assert_int_equal(f->blk.stats.reads, 1);
	assert_int_equal(f->blk.stats.writes, 1);
	assert_int_equal(f->blk.stats.bytes_read, 1024);
	assert_int_equal(f->blk.stats.bytes_written, 1024);

	/* The last sector of the disk is readable, and a zero-length read at
	 * the very end is fine. */
	assert_int_equal(simple(f, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 512, true), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(gp(f, DATA_GPA, 1)[0], FILL);
	assert_int_equal(simple(f, VIRTIO_BLK_T_IN, DISK_SECTORS, 0, true), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void test_flush_and_get_id(void **state)
{
	struct fx *f = *state;
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, 0, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->blk.stats.flushes, 1);

	memset(gp(f, DATA_GPA, 32), 0xff, 32);
	assert_int_equal(simple(f, VIRTIO_BLK_T_GET_ID, 0, 20, true), 21);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	uint8_t want[20] = "shrike-disk-0";
	assert_memory_equal(gp(f, DATA_GPA, 20), want, 20);
	assert_int_equal(gp(f, DATA_GPA + 20, 1)[0], 0xff);
	/* A short buffer gets what fits; a long one no more than 20 bytes. */
	assert_int_equal(simple(f, VIRTIO_BLK_T_GET_ID, 0, 6, true), 7);
	assert_memory_equal(gp(f, DATA_GPA, 6), "shrike", 6);
	memset(gp(f, DATA_GPA, 32), 0xff, 32);
	assert_int_equal(simple(f, VIRTIO_BLK_T_GET_ID, 0, 30, true), 21);
	assert_int_equal(gp(f, DATA_GPA + 20, 1)[0], 0xff);
	/* A 20-byte serial has no terminator; 21 bytes are refused. */
	struct virtio_blk b2;
	assert_int_equal(virtio_blk_init(&b2, &disk_file_ops, &f->disk, false,
					 "01234567890123456789"), 0);
	assert_int_equal(virtio_blk_init(&b2, &disk_file_ops, &f->disk, false,
					 "012345678901234567890"), -EINVAL);
}

static void test_readonly_refuses_writes(void **state)
{
	struct fx *f = *state;
	virtio_blk_ops.reset(&f->blk);
	disk_file_close(&f->disk);
	attach_file(f, true, FEAT_ALL);

	memset(gp(f, DATA_GPA, 512), 0x11, 512);
	assert_int_equal(simple(f, VIRTIO_BLK_T_OUT, 0, 512, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	put64(f, DATA_GPA, 0);
	put32(f, DATA_GPA + 8, 8);
	put32(f, DATA_GPA + 12, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, 16, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_file_bytes(f, 0, FILL, DISK_SIZE);
	/* Reads and flushes still work. */
	assert_int_equal(simple(f, VIRTIO_BLK_T_IN, 5, 512, true), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(gp(f, DATA_GPA, 1)[0], FILL);
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, 0, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->blk.stats.ioerr, 3);
}

static void test_bad_ranges_and_lengths(void **state)
{
	struct fx *f = *state;
	memset(gp(f, DATA_GPA, 4096), 0x22, 4096);
	const struct {
		uint32_t type;
		uint64_t sector;
		uint32_t len;
	} bad[] = {
	    {VIRTIO_BLK_T_IN, DISK_SECTORS, 512},          /* just past the end */
	    {VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 1024},     /* straddles the end */
	    {VIRTIO_BLK_T_OUT, DISK_SECTORS - 1, 1024},
	    {VIRTIO_BLK_T_IN, DISK_SECTORS + 1, 0},
	    {VIRTIO_BLK_T_IN, UINT64_MAX, 512},            /* sector * 512 overflows */
	    {VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, 512},
	    {VIRTIO_BLK_T_OUT, UINT64_MAX - 1, 1024},      /* sector + count overflows */
	    {VIRTIO_BLK_T_IN, 0, 100},                     /* not a multiple of 512 */
	    {VIRTIO_BLK_T_IN, 0, 513},
	    {VIRTIO_BLK_T_OUT, 0, 511},
	    {VIRTIO_BLK_T_OUT, 0, 1023},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool in = bad[i].type == VIRTIO_BLK_T_IN;
		assert_int_equal(simple(f, bad[i].type, bad[i].sector, bad[i].len, in), 1);
		assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	}
	assert_int_equal(f->blk.stats.ioerr, sizeof(bad) / sizeof(bad[0]));
	assert_file_bytes(f, 0, FILL, DISK_SIZE);

	/* Data on the wrong side: an IN carrying readable data, an OUT
	 * with writable bytes besides the status. */
	put_header(f, HDR_GPA, VIRTIO_BLK_T_IN, 0);
	struct vqd_buf in_bad[] = {{HDR_GPA, 16, false}, {DATA_GPA, 512, false},
				   {DATA2_GPA, 513, true}};
	assert_int_equal(submit(f, in_bad, 3), 1);
	assert_int_equal(gp(f, DATA2_GPA + 512, 1)[0], VIRTIO_BLK_S_IOERR);
	put_header(f, HDR_GPA, VIRTIO_BLK_T_OUT, 0);
	struct vqd_buf out_bad[] = {{HDR_GPA, 16, false}, {DATA_GPA, 512, false},
				    {DATA2_GPA, 513, true}};
	assert_int_equal(submit(f, out_bad, 3), 1);
	assert_int_equal(gp(f, DATA2_GPA + 512, 1)[0], VIRTIO_BLK_S_IOERR);
	assert_file_bytes(f, 0, FILL, 4096);
}

static void test_unknown_type_and_short_header(void **state)
{
	struct fx *f = *state;
	const uint32_t types[] = {2, 3, 5, 10, 14, 15, 0x80000000u, UINT32_MAX};
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		assert_int_equal(simple(f, types[i], 0, 512, true), 1);
		assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	}
	assert_int_equal(f->blk.stats.unsupp, sizeof(types) / sizeof(types[0]));

	/* Header of 15 bytes (in two pieces), then data and status. */
	put_header(f, HDR_GPA, VIRTIO_BLK_T_OUT, 0);
	*gp(f, STATUS_GPA, 1) = 0xee;
	struct vqd_buf s[] = {{HDR_GPA, 8, false}, {HDR_GPA + 8, 7, false}, {STATUS_GPA, 1, true}};
	assert_int_equal(submit(f, s, 3), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* No readable part at all. */
	struct vqd_buf s2[] = {{DATA_GPA, 512, true}, {STATUS_GPA, 1, true}};
	assert_int_equal(submit(f, s2, 2), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* A header split across descriptors is fine. */
	put_header(f, HDR_GPA, VIRTIO_BLK_T_FLUSH, 0);
	struct vqd_buf s3[] = {{HDR_GPA, 3, false}, {HDR_GPA + 3, 13, false},
			       {STATUS_GPA, 1, true}};
	assert_int_equal(submit(f, s3, 3), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void test_missing_status_byte(void **state)
{
	struct fx *f = *state;
	/* A write with no writable descriptor: cannot be answered, so it is
	 * returned with used.len 0, not executed, and the queue goes on. */
	put_header(f, HDR_GPA, VIRTIO_BLK_T_OUT, 0);
	memset(gp(f, DATA_GPA, 512), 0x33, 512);
	struct vqd_buf s[] = {{HDR_GPA, 16, false}, {DATA_GPA, 512, false}};
	assert_int_equal(submit(f, s, 2), 0);
	assert_int_equal(f->blk.stats.no_status, 1);
	assert_int_equal(f->blk.stats.writes, 0);
	assert_int_equal(f->failed_calls, 0);
	assert_file_bytes(f, 0, FILL, 512);
	/* Header only. */
	assert_int_equal(submit(f, s, 1), 0);
	assert_int_equal(f->blk.stats.no_status, 2);
	/* The queue still works. */
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, 0, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void put_dwz_seg(struct fx *f, unsigned i, uint64_t sector, uint32_t num, uint32_t flags)
{
	put64(f, DATA_GPA + 16u * i, sector);
	put32(f, DATA_GPA + 16u * i + 8, num);
	put32(f, DATA_GPA + 16u * i + 12, flags);
}

static void test_discard_and_write_zeroes(void **state)
{
	struct fx *f = *state;
	put_dwz_seg(f, 0, 8, 8, 0);
	put_dwz_seg(f, 1, 100, 1, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, 32, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_file_bytes(f, 8 * 512, 0, 8 * 512);
	assert_file_bytes(f, 100 * 512, 0, 512);
	assert_file_bytes(f, 16 * 512, FILL, 84 * 512);
	assert_file_bytes(f, 0, FILL, 8 * 512);

	put_dwz_seg(f, 0, 20, 4, 0);
	put_dwz_seg(f, 1, 30, 3, VIRTIO_BLK_WZ_F_UNMAP);
	put_dwz_seg(f, 2, DISK_SECTORS - 1, 1, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 48, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_file_bytes(f, 20 * 512, 0, 4 * 512);
	assert_file_bytes(f, 24 * 512, FILL, 6 * 512);
	assert_file_bytes(f, 30 * 512, 0, 3 * 512);
	assert_file_bytes(f, 33 * 512, FILL, 512);
	assert_file_bytes(f, DISK_SIZE - 512, 0, 512);
	assert_int_equal(f->blk.stats.discards, 1);
	assert_int_equal(f->blk.stats.write_zeroes, 1);

	/* Every segment is checked before any is executed: a bad second
	 * segment leaves the first one's range untouched. */
	put_dwz_seg(f, 0, 40, 1, 0);
	put_dwz_seg(f, 1, DISK_SECTORS, 1, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	put_dwz_seg(f, 1, UINT64_MAX, 2, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, 32, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	/* §5.2.6.2: unmap on a discard, or an unknown flag: UNSUPP. */
	put_dwz_seg(f, 1, 41, 1, VIRTIO_BLK_WZ_F_UNMAP);
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, 32, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	put_dwz_seg(f, 1, 41, 1, 2);
	assert_int_equal(simple(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	/* Payload not whole segments, empty, too many, or too long. */
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, 24, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, 0, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	for (unsigned i = 0; i <= VIRTIO_BLK_MAX_DWZ_SEGS; i++)
		put_dwz_seg(f, i, 40, 1, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, 16 * (VIRTIO_BLK_MAX_DWZ_SEGS + 1), false),
			 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	put_dwz_seg(f, 0, 0, VIRTIO_BLK_MAX_DWZ_SECTORS + 1, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_file_bytes(f, 40 * 512, FILL, 2 * 512);

	/* Not negotiated: UNSUPP. */
	enable_queue(f, FEAT(VIRTIO_BLK_F_FLUSH));
	put_dwz_seg(f, 0, 40, 1, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, 16, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(simple(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_UNSUPP);
	assert_file_bytes(f, 40 * 512, FILL, 512);
}

static void test_write_through_and_host_errors(void **state)
{
	struct fx *f = *state;
	/* FLUSH negotiated: write-back, no flush per write. */
	attach_fake(f, FEAT_ALL);
	assert_int_equal(simple(f, VIRTIO_BLK_T_OUT, 0, 512, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->fake.flushes, 0);
	/* Not negotiated: every write is flushed before it completes. */
	attach_fake(f, FEAT(VIRTIO_BLK_F_WRITE_ZEROES));
	assert_int_equal(simple(f, VIRTIO_BLK_T_OUT, 0, 512, false), 1);
	assert_int_equal(f->fake.flushes, 1);
	put_dwz_seg(f, 0, 1, 1, 0);
	assert_int_equal(simple(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->fake.flushes, 2);
	assert_int_equal(simple(f, VIRTIO_BLK_T_IN, 0, 512, true), 513);
	assert_int_equal(f->fake.flushes, 2);

	/* Host failures become IOERR with used.len 1. */
	f->fake.fail = -EIO;
	assert_int_equal(simple(f, VIRTIO_BLK_T_IN, 0, 512, true), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(f, VIRTIO_BLK_T_OUT, 0, 512, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, 0, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->blk.stats.host_errors, 4);
	f->fake.fail = 0;
	assert_int_equal(simple(f, VIRTIO_BLK_T_IN, 0, 512, true), 513);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void test_batch_and_notify_suppression(void **state)
{
	struct fx *f = *state;
	/* Five flushes published before one notification: all are served,
	 * one used() call for the batch. */
	for (unsigned i = 0; i < 5; i++) {
		uint64_t hdr = HDR_GPA + 32u * i;
		put_header(f, hdr, VIRTIO_BLK_T_FLUSH, 0);
		set_desc(f, 2 * i, hdr, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(2 * i + 1));
		set_desc(f, 2 * i + 1, STATUS_GPA + i, 1, VIRTQ_DESC_F_WRITE, 0);
		put16(f, AVAIL_GPA + 4 + 2u * i, (uint16_t)(2 * i));
	}
	put16(f, AVAIL_GPA + 2, 5);
	f->d.avail_idx = 5;
	virtio_blk_ops.queue_notify(&f->blk, 0);
	assert_int_equal(vqd_used_idx(&f->d), 5);
	assert_int_equal(f->used_calls, 1);
	assert_int_equal(f->blk.stats.flushes, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(vqd_used_id(&f->d, (uint16_t)i), 2 * i);
		assert_int_equal(*gp(f, STATUS_GPA + i, 1), VIRTIO_BLK_S_OK);
	}
	/* Notifications are re-enabled after the drain. */
	assert_int_equal(vqd_used_flags(&f->d) & VIRTQ_USED_F_NO_NOTIFY, 0);
	/* An empty queue and a bad queue index do nothing. */
	virtio_blk_ops.queue_notify(&f->blk, 0);
	virtio_blk_ops.queue_notify(&f->blk, 1);
	virtio_blk_ops.queue_notify(&f->blk, 7);
	assert_int_equal(f->used_calls, 1);
}

/* Rings that overlap so that the used ring's flags word is the available
 * ring's idx: every vq_set_notify() rewrites avail->idx (1 while
 * draining, 0 after). A drain loop that trusted the recheck would spin
 * forever; the device must serve the one request and stop. */
static void test_overlapping_rings_do_not_spin(void **state)
{
	struct fx *f = *state;
	const uint64_t avail = AVAIL_GPA + 6, used = AVAIL_GPA + 8;
	memset(gp(f, AVAIL_GPA, 0x1000), 0, 0x1000);
	vq_init(&f->vq, &f->mem);
	assert_int_equal(vq_enable(&f->vq, QSIZE, DESC_GPA, avail, used, FEAT_ALL), 0);
	put_header(f, HDR_GPA, VIRTIO_BLK_T_FLUSH, 0);
	set_desc(f, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	put16(f, avail + 2, 1); /* avail->idx, alias of used->flags */
	virtio_blk_ops.queue_notify(&f->blk, 0);
	assert_int_equal(f->blk.stats.flushes, 1);
	assert_int_equal(f->blk.stats.avail_went_back, 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->failed_calls, 0);
}

static void test_broken_ring_fails_device(void **state)
{
	struct fx *f = *state;
	/* A descriptor pointing outside guest RAM. */
	set_desc(f, 0, RAM + 0x1000, 16, 0, 0);
	put16(f, AVAIL_GPA + 4, 0);
	put16(f, AVAIL_GPA + 2, 1);
	virtio_blk_ops.queue_notify(&f->blk, 0);
	assert_int_equal(f->failed_calls, 1);
	assert_int_equal(f->used_calls, 0);
	/* Reported once; the queue stays stopped until reset. */
	virtio_blk_ops.queue_notify(&f->blk, 0);
	assert_int_equal(f->failed_calls, 1);
	/* After reset the device ignores notifications until activated. */
	virtio_blk_ops.reset(&f->blk);
	virtio_blk_ops.queue_notify(&f->blk, 0);
	assert_int_equal(f->failed_calls, 1);
	enable_queue(f, FEAT_ALL);
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, 0, false), 1);
	assert_int_equal(status(f), VIRTIO_BLK_S_OK);
}

static void test_save_load(void **state)
{
	struct fx *f = *state;
	struct snapbuf out;
	snapbuf_init_writer(&out);
	assert_int_equal(virtio_blk_ops.save(&f->blk, &out), 0);

	struct snapbuf in;
	snapbuf_init_reader(&in, out.data, out.len);
	assert_int_equal(virtio_blk_ops.load(&f->blk, &in), 0);
	assert_memory_equal(f->blk.serial, "shrike-disk-0\0\0\0\0\0\0", 20);

	/* A disk of another size, or read-only instead of writable: refused. */
	struct virtio_blk other;
	f->fake.size = DISK_SIZE / 2;
	assert_int_equal(virtio_blk_init(&other, &fake_disk_ops, &f->fake, false, NULL), 0);
	snapbuf_init_reader(&in, out.data, out.len);
	assert_int_equal(virtio_blk_ops.load(&other, &in), -EINVAL);
	f->fake.size = DISK_SIZE;
	assert_int_equal(virtio_blk_init(&other, &fake_disk_ops, &f->fake, true, "x"), 0);
	snapbuf_init_reader(&in, out.data, out.len);
	assert_int_equal(virtio_blk_ops.load(&other, &in), -EINVAL);
	assert_memory_equal(other.serial, "x\0", 2);
	/* Truncated, a foreign tag, a newer version, a bad boolean. */
	for (size_t len = 0; len < out.len; len++) {
		snapbuf_init_reader(&in, out.data, len);
		assert_true(virtio_blk_ops.load(&f->blk, &in) < 0);
	}
	uint8_t copy[64];
	assert_true(out.len <= sizeof(copy));
	memcpy(copy, out.data, out.len);
	copy[0] ^= 1;
	snapbuf_init_reader(&in, copy, out.len);
	assert_true(virtio_blk_ops.load(&f->blk, &in) < 0);
	memcpy(copy, out.data, out.len);
	copy[4] = 2;
	snapbuf_init_reader(&in, copy, out.len);
	assert_true(virtio_blk_ops.load(&f->blk, &in) < 0);
	memcpy(copy, out.data, out.len);
	copy[16] = 2; /* the readonly byte, after tag, version, capacity */
	snapbuf_init_reader(&in, copy, out.len);
	assert_int_equal(virtio_blk_ops.load(&f->blk, &in), -EINVAL);
	snapbuf_free(&out);
}

static void test_disk_file_open_errors(void **state)
{
	struct fx *f = *state;
	struct disk_file d;
	struct errmsg err = {{0}};

	assert_int_equal(disk_file_open(&d, "/nonexistent/shrike.img", false, &err), -ENOENT);
	assert_non_null(strstr(err.text, "/nonexistent/shrike.img"));
	assert_non_null(strstr(err.text, "does not exist"));
	assert_int_equal(d.fd, -1);

	assert_int_equal(disk_file_open(&d, "/tmp", false, &err), -EISDIR);
	assert_non_null(strstr(err.text, "directory"));
	assert_int_equal(disk_file_open(&d, "/tmp", true, &err), -EISDIR);
	assert_non_null(strstr(err.text, "directory"));
	assert_true(disk_file_open(&d, "/dev/null", true, &err) < 0);
	assert_non_null(strstr(err.text, "not a regular file or a block device"));

	char path[64];
	make_image(path, 1000, 0);
	assert_int_equal(disk_file_open(&d, path, false, &err), -EINVAL);
	assert_non_null(strstr(err.text, "not a multiple of 512"));
	unlink(path);
	make_image(path, 0, 0);
	assert_int_equal(disk_file_open(&d, path, true, &err), -EINVAL);
	assert_non_null(strstr(err.text, "empty"));
	unlink(path);

	/* The fixture holds the image open for writing: a second writer,
	 * or a reader, is refused; two readers share it. */
	assert_int_equal(disk_file_open(&d, f->path, false, &err), -EBUSY);
	assert_non_null(strstr(err.text, "in use"));
	assert_int_equal(disk_file_open(&d, f->path, true, &err), -EBUSY);
	disk_file_close(&f->disk);
	struct disk_file d2;
	assert_int_equal(disk_file_open(&d, f->path, true, &err), 0);
	assert_int_equal(disk_file_open(&d2, f->path, true, &err), 0);
	assert_int_equal(d.size, DISK_SIZE);
	assert_true(d.readonly);
	/* A read-only backend refuses writes by itself too. */
	uint8_t buf[512] = {0};
	struct iovec iov = {buf, sizeof(buf)};
	assert_int_equal(disk_file_ops.pwritev(&d, &iov, 1, 0), -EROFS);
	disk_file_close(&d);
	disk_file_close(&d2);

	/* Permission (not testable as root, who may open anything). */
	if (geteuid() != 0) {
		chmod(f->path, 0444);
		assert_int_equal(disk_file_open(&d, f->path, false, &err), -EACCES);
		assert_non_null(strstr(err.text, "permission denied"));
		assert_non_null(strstr(err.text, ",ro"));
	}
}

/* The backend's own loops: many small iovecs, a write-zeroes fallback
 * range, and reads that cross what was written. */
static void test_disk_file_io(void **state)
{
	struct fx *f = *state;
	uint8_t a[3][100], b[300];
	struct iovec iov[3];
	for (int i = 0; i < 3; i++) {
		memset(a[i], 'a' + i, sizeof(a[i]));
		iov[i] = (struct iovec){a[i], sizeof(a[i])};
	}
	assert_int_equal(disk_file_ops.pwritev(&f->disk, iov, 3, 4096), 0);
	struct iovec r = {b, sizeof(b)};
	assert_int_equal(disk_file_ops.preadv(&f->disk, &r, 1, 4096), 0);
	assert_int_equal(b[0], 'a');
	assert_int_equal(b[150], 'b');
	assert_int_equal(b[299], 'c');
	/* Reading past the end of the file is an I/O error, not a hang. */
	struct iovec past = {b, sizeof(b)};
	assert_int_equal(disk_file_ops.preadv(&f->disk, &past, 1, DISK_SIZE), -EIO);
	assert_int_equal(disk_file_ops.write_zeroes(&f->disk, 512 * 1024, 256 * 1024, false), 0);
	assert_file_bytes(f, 512 * 1024, 0, 256 * 1024);
	assert_file_bytes(f, 512 * 1024 - 512, FILL, 512);
	assert_file_bytes(f, 768 * 1024, FILL, 512);
	assert_int_equal(disk_file_ops.flush(&f->disk), 0);
	assert_int_equal(disk_file_ops.size(&f->disk), DISK_SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_features_and_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_read_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_and_get_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_refuses_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_ranges_and_lengths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_type_and_short_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_status_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_discard_and_write_zeroes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_through_and_host_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_and_notify_suppression, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overlapping_rings_do_not_spin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_broken_ring_fails_device, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disk_file_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disk_file_io, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
