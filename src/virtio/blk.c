/* virtio-blk device backend (virtio 1.2 §5.2); see blk.h for the request
 * rules, the validation and the locking. */
#include "virtio/blk.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"

#define SECTOR DISK_SECTOR_SIZE
#define PCI_CLASS_STORAGE_SCSI 0x010000u /* the class virtio-blk functions use */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Logs the 1st, 2nd, 4th, 8th... occurrence: a guest or a failing disk
 * cannot flood the log, and the count still shows in the message. */
static bool blk_log_this(uint64_t count)
{
	return (count & (count - 1)) == 0;
}

static bool blk_negotiated(const struct virtio_blk *b, unsigned bit)
{
	return b->active && (b->ctx.features & (1ULL << bit));
}

/* [sector, sector + nsect) inside the disk, written so nothing overflows. */
static bool blk_range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t nsect)
{
	return sector <= b->capacity && nsect <= b->capacity - sector;
}

static uint8_t blk_host_error(struct virtio_blk *b, const char *what, int err)
{
	b->stats.host_errors++;
	if (blk_log_this(b->stats.host_errors))
		log_warn("virtio-blk: %s failed: %s (%llu host errors)", what, strerror(-err),
			 (unsigned long long)b->stats.host_errors);
	return VIRTIO_BLK_S_IOERR;
}

/* Write-through mode (§5.2.6.2, FLUSH offered but not negotiated): a
 * write completes only once durable. */
static uint8_t blk_after_write(struct virtio_blk *b)
{
	if (!blk_negotiated(b, VIRTIO_BLK_F_FLUSH)) {
		int r = b->disk_ops->flush(b->disk);
		if (r < 0)
			return blk_host_error(b, "flush", r);
	}
	return VIRTIO_BLK_S_OK;
}

/* iovecs for bytes [off, off + len) of the chain's readable or writable
 * part (the caller checked the range), pointing into guest memory. At
 * most one per segment, so at most VQ_MAX_SEGS. */
static int blk_build_iov(struct virtio_blk *b, const struct vq_chain *c, bool writable,
			 uint64_t off, uint64_t len)
{
	unsigned i = writable ? c->nread : 0;
	unsigned end = writable ? c->nseg : c->nread;
	int n = 0;
	for (; i < end && len > 0; i++) {
		const struct vq_seg *s = &c->seg[i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		uint64_t take = s->len - off < len ? s->len - off : len;
		b->iov[n++] = (struct iovec){.iov_base = s->host + off, .iov_len = take};
		len -= take;
		off = 0;
	}
	return n;
}

/* IN: the writable part before the status receives the sectors. */
static uint8_t blk_read(struct virtio_blk *b, const struct vq_chain *c, uint64_t sector,
			uint64_t out_len, uint64_t in_len, uint32_t *used)
{
	b->stats.reads++;
	if (out_len || in_len % SECTOR || !blk_range_ok(b, sector, in_len / SECTOR))
		return VIRTIO_BLK_S_IOERR;
	int n = blk_build_iov(b, c, true, 0, in_len);
	if (n > 0) {
		int r = b->disk_ops->preadv(b->disk, b->iov, n, sector * SECTOR);
		if (r < 0)
			return blk_host_error(b, "read", r);
	}
	b->stats.bytes_read += in_len;
	*used = (uint32_t)(in_len + 1); /* <= write_len, which fits in 32 bits */
	return VIRTIO_BLK_S_OK;
}

/* OUT: the readable part after the header goes to the disk. */
static uint8_t blk_write(struct virtio_blk *b, const struct vq_chain *c, uint64_t sector,
			 uint64_t out_len, uint64_t in_len)
{
	b->stats.writes++;
	if (b->readonly || in_len || out_len % SECTOR ||
	    !blk_range_ok(b, sector, out_len / SECTOR))
		return VIRTIO_BLK_S_IOERR;
	int n = blk_build_iov(b, c, false, VIRTIO_BLK_HDR_SIZE, out_len);
	if (n > 0) {
		int r = b->disk_ops->pwritev(b->disk, b->iov, n, sector * SECTOR);
		if (r < 0)
			return blk_host_error(b, "write", r);
	}
	b->stats.bytes_written += out_len;
	return blk_after_write(b);
}

static uint8_t blk_flush(struct virtio_blk *b)
{
	b->stats.flushes++;
	int r = b->disk_ops->flush(b->disk);
	return r < 0 ? blk_host_error(b, "flush", r) : VIRTIO_BLK_S_OK;
}

/* GET_ID: up to 20 bytes of serial, as much as the buffer holds. */
static uint8_t blk_get_id(struct virtio_blk *b, const struct vq_chain *c, uint64_t in_len,
			  uint32_t *used)
{
	b->stats.get_ids++;
	uint64_t n = in_len < VIRTIO_BLK_ID_BYTES ? in_len : VIRTIO_BLK_ID_BYTES;
	if (vq_chain_write(c, 0, b->serial, n) < 0)
		return VIRTIO_BLK_S_IOERR; /* cannot happen: n < write_len */
	*used = (uint32_t)(n + 1);
	return VIRTIO_BLK_S_OK;
}

struct blk_dwz_seg {
	uint64_t sector;
	uint32_t num;
	uint32_t flags;
};

/* Reads and checks every segment before any is executed, so a bad one
 * leaves the disk untouched. */
static uint8_t blk_dwz_parse(struct virtio_blk *b, const struct vq_chain *c, bool discard,
			     uint64_t out_len, struct blk_dwz_seg *seg, unsigned *nseg)
{
	uint8_t raw[VIRTIO_BLK_MAX_DWZ_SEGS * VIRTIO_BLK_DWZ_SEG_SIZE];
	if (out_len == 0 || out_len % VIRTIO_BLK_DWZ_SEG_SIZE || out_len > sizeof(raw))
		return VIRTIO_BLK_S_IOERR;
	if (vq_chain_read(c, VIRTIO_BLK_HDR_SIZE, raw, out_len) < 0)
		return VIRTIO_BLK_S_IOERR; /* cannot happen: checked against read_len */
	*nseg = (unsigned)(out_len / VIRTIO_BLK_DWZ_SEG_SIZE);
	for (unsigned i = 0; i < *nseg; i++) {
		const uint8_t *p = raw + i * VIRTIO_BLK_DWZ_SEG_SIZE;
		seg[i] = (struct blk_dwz_seg){
		    .sector = get_le64(p), .num = get_le32(p + 8), .flags = get_le32(p + 12)};
		/* §5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP. */
		if ((seg[i].flags & ~VIRTIO_BLK_WZ_F_UNMAP) ||
		    (discard && (seg[i].flags & VIRTIO_BLK_WZ_F_UNMAP)))
			return VIRTIO_BLK_S_UNSUPP;
		if (seg[i].num > VIRTIO_BLK_MAX_DWZ_SECTORS ||
		    !blk_range_ok(b, seg[i].sector, seg[i].num))
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: segments in the readable part after the header. */
static uint8_t blk_discard_write_zeroes(struct virtio_blk *b, const struct vq_chain *c,
					bool discard, uint64_t out_len, uint64_t in_len)
{
	struct blk_dwz_seg seg[VIRTIO_BLK_MAX_DWZ_SEGS];
	unsigned nseg = 0;

	if (discard)
		b->stats.discards++;
	else
		b->stats.write_zeroes++;
	if (b->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (!blk_negotiated(b, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
		return VIRTIO_BLK_S_UNSUPP;
	if (in_len)
		return VIRTIO_BLK_S_IOERR;
	uint8_t st = blk_dwz_parse(b, c, discard, out_len, seg, &nseg);
	if (st != VIRTIO_BLK_S_OK)
		return st;
	for (unsigned i = 0; i < nseg; i++) {
		if (seg[i].num == 0)
			continue;
		uint64_t off = seg[i].sector * SECTOR, len = (uint64_t)seg[i].num * SECTOR;
		int r = discard ? b->disk_ops->discard(b->disk, off, len)
				: b->disk_ops->write_zeroes(b->disk, off, len,
							    seg[i].flags & VIRTIO_BLK_WZ_F_UNMAP);
		if (r < 0)
			return blk_host_error(b, discard ? "discard" : "write-zeroes", r);
	}
	return blk_after_write(b);
}

/* Decodes the header and dispatches; *used is left at 1 unless the
 * request wrote data. Needs write_len >= 1. */
static uint8_t blk_execute(struct virtio_blk *b, const struct vq_chain *c, uint32_t *used)
{
	uint8_t hdr[VIRTIO_BLK_HDR_SIZE];
	if (c->read_len < VIRTIO_BLK_HDR_SIZE || vq_chain_read(c, 0, hdr, sizeof(hdr)) < 0)
		return VIRTIO_BLK_S_IOERR;
	uint32_t type = get_le32(hdr);
	uint64_t sector = get_le64(hdr + 8);
	/* Readable bytes after the header, writable bytes before the status. */
	uint64_t out_len = c->read_len - VIRTIO_BLK_HDR_SIZE;
	uint64_t in_len = c->write_len - 1;

	switch (type) {
	case VIRTIO_BLK_T_IN:
		return blk_read(b, c, sector, out_len, in_len, used);
	case VIRTIO_BLK_T_OUT:
		return blk_write(b, c, sector, out_len, in_len);
	case VIRTIO_BLK_T_FLUSH:
		return blk_flush(b);
	case VIRTIO_BLK_T_GET_ID:
		return blk_get_id(b, c, in_len, used);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_discard_write_zeroes(b, c, type == VIRTIO_BLK_T_DISCARD, out_len,
						in_len);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

uint32_t virtio_blk_handle(struct virtio_blk *b, const struct vq_chain *c)
{
	if (c->write_len == 0) {
		b->stats.no_status++;
		if (blk_log_this(b->stats.no_status))
			log_warn("virtio-blk: request without a status byte returned unanswered "
				 "(%llu so far)",
				 (unsigned long long)b->stats.no_status);
		return 0;
	}
	uint32_t used = 1;
	uint8_t status = blk_execute(b, c, &used);
	if (status == VIRTIO_BLK_S_IOERR)
		b->stats.ioerr++;
	else if (status == VIRTIO_BLK_S_UNSUPP)
		b->stats.unsupp++;
	if (status != VIRTIO_BLK_S_OK)
		used = 1;
	vq_chain_write(c, c->write_len - 1, &status, 1);
	return used;
}

/* Race-free drain (virtqueue.h): notifications off while draining, back
 * on, then one more look so a request published meanwhile is not lost.
 *
 * A driver only ever advances avail->idx, so a drain that follows a
 * positive recheck always takes at least one request. If it takes none,
 * avail->idx moved backwards: a misbehaving driver, or rings that overlap
 * so that our own notification-flag writes change avail->idx. Looping on
 * would spin forever with the device mutex held; stop instead (whatever
 * is really pending is served at the next notification). */
static void blk_queue_notify(void *dev, unsigned q)
{
	struct virtio_blk *b = dev;
	if (!b->active || q >= b->ctx.nvq || q > 0)
		return;
	struct virtqueue *vq = &b->ctx.vq[q];
	if (vq_is_broken(vq))
		return; /* already reported through failed() */
	bool rechecked = false;
	unsigned budget = VIRTIO_BLK_QUEUE_SIZE; /* chains per call, then requeue */
	int r;
	do {
		unsigned served = 0;
		vq_set_notify(vq, false);
		while (served < budget && (r = vq_pop(vq, &b->chain)) == 1) {
			vq_push(vq, &b->chain, virtio_blk_handle(b, &b->chain));
			served++;
		}
		vq_set_notify(vq, true);
		if (served)
			b->ctx.used(b->ctx.transport, q);
		if (served == budget) {
			b->ctx.requeue(b->ctx.transport, q);
			return;
		}
		budget -= served;
		if (rechecked && !served && r == 0) {
			b->stats.avail_went_back++;
			if (blk_log_this(b->stats.avail_went_back))
				log_warn("virtio-blk: available index moved backwards (%llu times)",
					 (unsigned long long)b->stats.avail_went_back);
			break;
		}
		rechecked = true;
	} while (r == 0 && vq_has_avail(vq));
	if (r < 0)
		b->ctx.failed(b->ctx.transport, "malformed request queue");
}

static uint64_t blk_features(void *dev)
{
	const struct virtio_blk *b = dev;
	return b->features;
}

static void blk_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	const struct virtio_blk *b = dev;
	virtio_config_copy(data, len, b->config, sizeof(b->config), off);
}

/* Every field is read-only (CONFIG_WCE is not offered). */
static void blk_config_write(void *dev, uint32_t off, const uint8_t *data, unsigned len)
{
	(void)dev;
	(void)off;
	(void)data;
	(void)len;
}

static int blk_activate(void *dev, const struct virtio_queue_ctx *ctx)
{
	struct virtio_blk *b = dev;
	if (!ctx || !ctx->vq || ctx->nvq < 1 || !ctx->used || !ctx->failed)
		return -EINVAL;
	b->ctx = *ctx;
	b->active = true;
	return 0;
}

/* Requests complete synchronously, so there is nothing in flight. */
static void blk_reset(void *dev)
{
	struct virtio_blk *b = dev;
	b->active = false;
	memset(&b->ctx, 0, sizeof(b->ctx));
}

#define BLK_SNAP_TAG "VBLK"
#define BLK_SNAP_VERSION 1u

static int blk_save(void *dev, struct snapbuf *out)
{
	const struct virtio_blk *b = dev;
	snapbuf_begin(out, BLK_SNAP_TAG, BLK_SNAP_VERSION);
	snapbuf_put_u64(out, b->capacity);
	snapbuf_put_u8(out, b->readonly);
	return snapbuf_put(out, b->serial, sizeof(b->serial));
}

/* The state is the device's identity: the disk it is restored onto must
 * match in size and writability. The serial comes from the snapshot, as
 * the guest already knows it. */
static int blk_load(void *dev, struct snapbuf *in)
{
	struct virtio_blk *b = dev;
	uint64_t capacity = 0;
	uint8_t ro = 0;
	char serial[VIRTIO_BLK_ID_BYTES];

	snapbuf_expect(in, BLK_SNAP_TAG, BLK_SNAP_VERSION, NULL);
	snapbuf_get_u64(in, &capacity);
	snapbuf_get_u8(in, &ro);
	int r = snapbuf_get(in, serial, sizeof(serial));
	if (r < 0)
		return r;
	if (ro > 1) {
		log_warn("virtio-blk: snapshot has a bad read-only flag %u", ro);
		return -EINVAL;
	}
	if (capacity != b->capacity || (ro != 0) != b->readonly) {
		log_warn("virtio-blk: snapshot is for a %s disk of %llu sectors, this one is a %s "
			  "disk of %llu",
			  ro ? "read-only" : "writable", (unsigned long long)capacity,
			  b->readonly ? "read-only" : "writable", (unsigned long long)b->capacity);
		return -EINVAL;
	}
	memcpy(b->serial, serial, sizeof(serial));
	return 0;
}

const struct virtio_device_ops virtio_blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .pci_class = PCI_CLASS_STORAGE_SCSI,
    .num_queues = 1,
    .queue_size = VIRTIO_BLK_QUEUE_SIZE,
    .config_size = VIRTIO_BLK_CONFIG_SIZE,
    .features = blk_features,
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .activate = blk_activate,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
    .save = blk_save,
    .load = blk_load,
};

/* §5.2.4; fields of features not offered stay 0, as do unused0/unused1. */
static void blk_build_config(struct virtio_blk *b)
{
	uint8_t *c = b->config;
	memset(c, 0, sizeof(b->config));
	put_le64(c + VIRTIO_BLK_CFG_CAPACITY, b->capacity);
	put_le32(c + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_SEG_MAX);
	put_le32(c + VIRTIO_BLK_CFG_BLK_SIZE, SECTOR);
	put_le16(c + VIRTIO_BLK_CFG_NUM_QUEUES, 1);
	if (b->readonly)
		return;
	put_le32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_MAX_DWZ_SECTORS);
	put_le32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DWZ_SEGS);
	put_le32(c + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, VIRTIO_BLK_DISCARD_ALIGNMENT);
	put_le32(c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VIRTIO_BLK_MAX_DWZ_SECTORS);
	put_le32(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_MAX_DWZ_SEGS);
	c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1; /* unmap punches holes */
}

int virtio_blk_init(struct virtio_blk *b, const struct disk_ops *ops, void *disk, bool readonly,
		    const char *serial)
{
	uint64_t size = ops->size(disk);
	size_t slen = serial ? strlen(serial) : 0;
	if (size == 0 || size % SECTOR || slen > VIRTIO_BLK_ID_BYTES)
		return -EINVAL;
	memset(b, 0, sizeof(*b));
	b->disk_ops = ops;
	b->disk = disk;
	b->capacity = size / SECTOR;
	b->readonly = readonly;
	if (slen)
		memcpy(b->serial, serial, slen);
	b->features = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
		      1ULL << VIRTIO_BLK_F_FLUSH;
	if (readonly)
		b->features |= 1ULL << VIRTIO_BLK_F_RO;
	else
		b->features |= 1ULL << VIRTIO_BLK_F_DISCARD | 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	blk_build_config(b);
	return 0;
}
