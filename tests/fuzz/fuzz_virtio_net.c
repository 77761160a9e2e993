/* Fuzz target for the virtio-net device (virtio/net.c): transmit and
 * receive over fuzzer-built rings in a 16 MiB guest, with an in-memory
 * fake backend (no tap) that checks every iovec the device hands it, and a
 * fake transport that checks the device's watch_fd() bookkeeping. The
 * --net option and MAC parsers get the script bytes as a string too.
 *
 * Each input is one activation: queues enabled with vq_enable(), the
 * device activated, a script of operations run, then reset. Guest memory
 * is dropped (MADV_DONTNEED: back to zeros) after every input, so inputs
 * are independent.
 *
 * Header (8 bytes):
 *   [0] receive queue size log2, [1] transmit queue size log2 (mod 9)
 *   [2] features: bit 0 INDIRECT_DESC, 1 EVENT_IDX, 2 CSUM, 3 GUEST_CSUM,
 *       4 HOST_TSO4/6, 5 GUEST_TSO4/6, 6 HOST_ECN + GUEST_ECN,
 *       7 raw mode
 *   [3] script length (bytes)
 *   [4] backend: bits 0-1 readv failure style (none, EINVAL, EBADFD,
 *       EAGAIN), bits 2-3 writev failure style (none, EAGAIN, EIO,
 *       short), bit 4 offloads off, bit 5 MTU offered
 *   [5..7] unused
 * Then the script, then the body:
 *   raw mode: written over a 64 KiB window at WIN_GPA holding both queues'
 *     rings at fixed offsets; descriptors may point anywhere;
 *   structured mode: 8-byte chain records laid out as plausible chains
 *     (below), so the fuzzer reaches the frame paths quickly.
 * Script ops (one byte, some take argument bytes): notify tx/rx, backend
 * fd ready, kick fd ready, queue a host frame, reset + re-activate, config
 * read, save/load/link. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "util/errmsg.h"
#include "util/log.h"
#include "util/snapbuf.h"
#include "virtio/net.h"
#include "virtio/virtqueue.h"
#include "vm/memory.h"
#include "vq_driver.h"

#define HDR_SIZE 8u
#define WIN_GPA 0x10000u
#define WIN_SIZE 0x10000u
/* Ring offsets in the window: room for 256-entry queues. */
#define RX_DESC 0x0000u
#define RX_AVAIL 0x1000u
#define RX_USED 0x1800u
#define TX_DESC 0x2000u
#define TX_AVAIL 0x3000u
#define TX_USED 0x3800u
#define INDIRECT 0x4000u /* structured mode: 8 entries per record */
#define LONG_TABLE 0xf0000u /* two 1024-entry indirect tables */
#define BUF_GPA 0x100000u
#define BUF_STRIDE 0x20000u /* 128 KiB per record: larger than any frame */
#define REC_SIZE 8u
#define MAX_RECS 48u
#define MAX_SEGS 8u
#define MAX_ACTIVATIONS 3u
#define MAX_LONG 4u
#define FAKE_FD 4242
#define MAX_FRAMES 16u
#define MAX_FRAME_BYTES (VIRTIO_NET_HDR_LEN + NET_MAX_FRAME + 4096)

struct host_frame {
	uint32_t len; /* header included */
	uint8_t flags, gso, seed;
};

struct fuzz_state {
	struct guest_mem mem;
	struct virtqueue vq[2];
	struct vqd drv[2]; /* the driver's side, for structured mode */
	struct virtio_queue_ctx ctx;
	struct virtio_net net;
	struct net_backend be;
	/* fake backend */
	struct host_frame frames[MAX_FRAMES];
	unsigned fhead, ftail;
	unsigned rx_fail, tx_fail, calls;
	/* fake transport */
	int watched[4];
	unsigned nwatched, failed;
};

static struct fuzz_state *st;

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* ---- checks on what the device hands the backend ---- */

static bool in_range(const void *p, size_t len, const void *base, size_t size)
{
	const uint8_t *b = base, *q = p;
	return q >= b && len <= size && (size_t)(q - b) <= size - len;
}

/* Header first (12 bytes, a private copy), then pieces of guest RAM or
 * of the device's bounce buffer, never anything else. */
static size_t check_iov(const struct iovec *iov, int cnt)
{
	if (cnt < 2 || cnt > NET_MAX_IOV || iov[0].iov_len != VIRTIO_NET_HDR_LEN ||
	    in_range(iov[0].iov_base, 1, st->mem.base, st->mem.ram_size))
		__builtin_trap();
	size_t total = VIRTIO_NET_HDR_LEN;
	for (int i = 1; i < cnt; i++) {
		const struct iovec *v = &iov[i];
		if (v->iov_len == 0 ||
		    (!in_range(v->iov_base, v->iov_len, st->mem.base, st->mem.ram_size) &&
		     !in_range(v->iov_base, v->iov_len, st->net.bounce, sizeof(st->net.bounce))))
			__builtin_trap();
		total += v->iov_len;
	}
	return total;
}

static ssize_t fake_readv(void *opaque, const struct iovec *iov, int cnt)
{
	(void)opaque;
	size_t cap = check_iov(iov, cnt);
	st->calls++;
	if (st->rx_fail && st->calls % 5 == 0)
		return st->rx_fail == 1 ? -EINVAL : st->rx_fail == 2 ? -EBADFD : -EAGAIN;
	if (st->fhead == st->ftail)
		return -EAGAIN;
	struct host_frame *fr = &st->frames[st->fhead++ % MAX_FRAMES];
	/* Like tap: fill what fits, report the whole length. */
	uint8_t hdr[VIRTIO_NET_HDR_LEN] = {fr->flags, fr->gso, 0, 0, 0, 0, 0, 0, 0, 0, 0x55, 0x55};
	size_t off = 0;
	for (int i = 0; i < cnt && off < fr->len; i++) {
		uint8_t *d = iov[i].iov_base;
		for (size_t k = 0; k < iov[i].iov_len && off < fr->len; k++, off++)
			d[k] = off < VIRTIO_NET_HDR_LEN ? hdr[off] : (uint8_t)(fr->seed + off);
	}
	(void)cap;
	return fr->len;
}

static ssize_t fake_writev(void *opaque, const struct iovec *iov, int cnt)
{
	(void)opaque;
	size_t total = check_iov(iov, cnt);
	const uint8_t *h = iov[0].iov_base;
	if (total < VIRTIO_NET_HDR_LEN + NET_ETH_HLEN || total > VIRTIO_NET_HDR_LEN + NET_MAX_FRAME)
		__builtin_trap();
	if ((h[0] & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) || h[10] || h[11])
		__builtin_trap(); /* the device normalises the header */
	volatile uint8_t sink = 0;
	for (int i = 1; i < cnt; i++) /* every byte must be readable */
		for (size_t k = 0; k < iov[i].iov_len; k += 512)
			sink ^= ((const uint8_t *)iov[i].iov_base)[k];
	(void)sink;
	st->calls++;
	switch (st->tx_fail) {
	case 1:
		return st->calls % 3 ? (ssize_t)total : -EAGAIN;
	case 2:
		return st->calls % 3 ? (ssize_t)total : -EIO;
	case 3:
		return (ssize_t)total / 2;
	default:
		return (ssize_t)total;
	}
}

static int fake_fd(void *opaque)
{
	(void)opaque;
	return FAKE_FD;
}

static int fake_set_offload(void *opaque, unsigned offload)
{
	(void)opaque;
	if (offload & ~(NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6 | NET_OFFLOAD_TSO_ECN))
		__builtin_trap();
	if ((offload & ~NET_OFFLOAD_CSUM) && !(offload & NET_OFFLOAD_CSUM))
		__builtin_trap(); /* TUNSETOFFLOAD would refuse TSO without CSUM */
	return 0;
}

static const struct net_backend_ops fake_ops = {
    .readv = fake_readv,
    .writev = fake_writev,
    .fd = fake_fd,
    .set_offload = fake_set_offload,
};

/* ---- fake transport ---- */

static void fake_used(void *t, unsigned q)
{
	(void)t;
	if (q > 1)
		__builtin_trap();
}
static void fake_config_changed(void *t) { (void)t; }
static void fake_failed(void *t, const char *why)
{
	(void)t, (void)why;
	st->failed++;
}

static bool watching(int fd)
{
	for (unsigned i = 0; i < st->nwatched; i++)
		if (st->watched[i] == fd)
			return true;
	return false;
}

static int fake_watch_fd(void *t, int fd, bool on)
{
	(void)t;
	if (fd != FAKE_FD && fd != st->net.kick_fd)
		__builtin_trap();
	for (unsigned i = 0; i < st->nwatched; i++) {
		if (st->watched[i] == fd) {
			if (on)
				__builtin_trap(); /* the device tracks its watches */
			st->watched[i] = st->watched[--st->nwatched];
			return 0;
		}
	}
	if (!on)
		__builtin_trap();
	st->watched[st->nwatched++] = fd; /* at most two distinct fds */
	return 0;
}

static void check_watches(void)
{
	if (watching(FAKE_FD) != st->net.rx_watching ||
	    watching(st->net.kick_fd) != st->net.kick_watching)
		__builtin_trap();
	if (!st->net.active && st->nwatched)
		__builtin_trap(); /* failed or reset: nothing left to spin on */
}

/* ---- set-up ---- */

static uint64_t features_of(uint8_t b)
{
	uint64_t f = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_MAC) |
		     (1ULL << VIRTIO_NET_F_STATUS);
	if (b & 1)
		f |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	if (b & 2)
		f |= 1ULL << VIRTIO_F_EVENT_IDX;
	if (b & 4)
		f |= 1ULL << VIRTIO_NET_F_CSUM;
	if (b & 8)
		f |= 1ULL << VIRTIO_NET_F_GUEST_CSUM;
	if (b & 16)
		f |= (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6);
	if (b & 32)
		f |= (1ULL << VIRTIO_NET_F_GUEST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO6);
	if (b & 64)
		f |= (1ULL << VIRTIO_NET_F_HOST_ECN) | (1ULL << VIRTIO_NET_F_GUEST_ECN);
	return f;
}

static int activate(const uint8_t *hdr)
{
	static const uint32_t desc[2] = {RX_DESC, TX_DESC};
	static const uint32_t avail[2] = {RX_AVAIL, TX_AVAIL};
	static const uint32_t used[2] = {RX_USED, TX_USED};
	uint64_t features = features_of(hdr[2]);
	for (unsigned q = 0; q < 2; q++) {
		vq_init(&st->vq[q], &st->mem);
		vqd_init(&st->drv[q], &st->mem, WIN_GPA + desc[q], WIN_GPA + avail[q],
			 WIN_GPA + used[q], 1u << (hdr[q] % 9));
		if (vqd_enable(&st->drv[q], &st->vq[q], features))
			__builtin_trap(); /* the fixed layout is valid */
	}
	st->ctx = (struct virtio_queue_ctx){
	    .mem = &st->mem,
	    .features = features,
	    .vq = st->vq,
	    .nvq = 2,
	    .used = fake_used,
	    .config_changed = fake_config_changed,
	    .failed = fake_failed,
	    .watch_fd = fake_watch_fd,
	    .transport = st,
	};
	int r = virtio_net_ops.activate(&st->net, &st->ctx);
	check_watches();
	return r;
}

/* Entry i of a descriptor table; every table here is inside RAM. */
static void put_desc(uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	if (vqd_write_desc(&st->mem, table, i, addr, len, flags, next))
		__builtin_trap();
}

/* A 1024-entry indirect table for one chain: a first piece, then 1-byte
 * pieces, the last taking the rest, so the device must gather (more
 * pieces than readv/writev take). */
static void lay_out_long(uint64_t table, uint64_t buf, uint32_t total, uint16_t dir)
{
	uint32_t first = total > 64 + VQ_MAX_SEGS ? total - 1023 - 64 : total / 2;
	uint32_t off = 0;
	for (uint32_t i = 0; i < VQ_MAX_SEGS && off < total; i++) {
		uint32_t len = i == 0 ? first : 1;
		if (i == VQ_MAX_SEGS - 1 || off + len > total)
			len = total - off;
		bool last = i == VQ_MAX_SEGS - 1 || off + len == total;
		put_desc(table, i, buf + off, len,
			 (uint16_t)(dir | (last ? 0 : VIRTQ_DESC_F_NEXT)), (uint16_t)(i + 1));
		off += len;
	}
}

/* Structured mode: lays out one record as a chain and publishes it.
 *   [0] bit 0 queue (0 rx, 1 tx), bits 1-3 segments - 1, bit 4 through an
 *       indirect table, bit 5 flip the first segment's direction, bit 6 a
 *       1024-piece indirect chain (at most MAX_LONG per input), bit 7
 *       publish it until the ring is full (short chains only: a ring of
 *       1024-piece chains is slow under instrumentation, not interesting)
 *   [1..2] total length (le16), [3] bit 0 adds 64 KiB, bits 1-7 split seed
 *   [4] header flags, [5] gso_type (tx), [6..7] fill seed */
static void lay_out(const uint8_t *r, unsigned idx, unsigned *nlong)
{
	unsigned q = r[0] & 1, nseg = 1 + ((r[0] >> 1) & 7);
	struct vqd *drv = &st->drv[q];
	struct virtqueue *vq = &st->vq[q];
	uint32_t total = le16(r + 1) + ((r[3] & 1) << 16);
	uint64_t buf = BUF_GPA + (uint64_t)BUF_STRIDE * idx;
	uint8_t *p = guest_mem_ptr(&st->mem, buf, BUF_STRIDE);
	bool indirect = (r[0] & 16) && vq->indirect;
	uint16_t dir = q == 0 ? VIRTQ_DESC_F_WRITE : 0;

	if (q == 1 && total >= VIRTIO_NET_HDR_LEN) { /* a transmit header and frame */
		p[0] = r[4];
		p[1] = r[5];
		for (uint32_t i = VIRTIO_NET_HDR_LEN; i < total; i += 61)
			p[i] = (uint8_t)(r[6] + i);
	}
	/* Direct chains use descriptors from head = idx * MAX_SEGS (mod size). */
	uint32_t head = (idx * MAX_SEGS) % vq->size;
	bool long_chain = (r[0] & 64) && vq->indirect && total && *nlong < MAX_LONG;
	if (long_chain) {
		(*nlong)++;
		uint64_t table = LONG_TABLE + (uint64_t)q * VQ_MAX_SEGS * 16;
		lay_out_long(table, buf, total, dir);
		put_desc(drv->desc, head, table, VQ_MAX_SEGS * 16, VIRTQ_DESC_F_INDIRECT, 0);
	} else {
		uint64_t table = WIN_GPA + INDIRECT + 16ULL * MAX_SEGS * (idx % 48);
		if (!indirect && nseg > vq->size)
			nseg = vq->size;
		uint32_t off = 0;
		for (unsigned i = 0; i < nseg; i++) {
			uint32_t len = i + 1 < nseg ? (total - off) / (nseg - i) + ((r[3] >> 1) % 7)
						    : total - off;
			if (len > total - off)
				len = total - off;
			uint16_t flags = dir;
			if (i == 0 && (r[0] & 32))
				flags ^= VIRTQ_DESC_F_WRITE;
			if (i + 1 < nseg)
				flags |= VIRTQ_DESC_F_NEXT;
			uint16_t next = (uint16_t)(indirect ? i + 1 : (head + i + 1) % vq->size);
			put_desc(indirect ? table : drv->desc, indirect ? i : (head + i) % vq->size,
				 buf + off, len, flags, next);
			off += len;
		}
		if (indirect)
			put_desc(drv->desc, head, table, 16 * nseg, VIRTQ_DESC_F_INDIRECT, 0);
	}
	/* Nothing was consumed yet, so avail_idx is also what is outstanding. */
	do {
		if (vqd_publish(drv, (uint16_t)head))
			__builtin_trap();
	} while ((r[0] & 128) && !long_chain && drv->avail_idx < vq->size);
}

/* ---- script ---- */

static void queue_frame(const uint8_t *a)
{
	if (st->ftail - st->fhead >= MAX_FRAMES)
		return;
	static const uint8_t gso[8] = {0, 0, 1, 4, 3, 0x81, 0x84, 0x80};
	uint32_t len = le16(a) + ((a[2] & 1) << 16);
	if (len > MAX_FRAME_BYTES)
		len = MAX_FRAME_BYTES;
	st->frames[st->ftail++ % MAX_FRAMES] = (struct host_frame){
	    .len = len, .flags = (uint8_t)(a[2] >> 1 & 7), .gso = gso[a[2] >> 4 & 7],
	    .seed = a[0]};
}

static void misc_op(uint8_t op, const uint8_t *script, size_t slen)
{
	struct snapbuf b;
	switch (op % 4) {
	case 0: /* save, then load it back */
		snapbuf_init_writer(&b);
		if (virtio_net_ops.save(&st->net, &b) == 0) {
			struct snapbuf in;
			snapbuf_init_reader(&in, b.data, b.len);
			if (virtio_net_ops.load(&st->net, &in) != 0)
				__builtin_trap();
		}
		snapbuf_free(&b);
		break;
	case 1: /* load hostile bytes */
		snapbuf_init_reader(&b, script, slen);
		(void)virtio_net_ops.load(&st->net, &b);
		break;
	default:
		virtio_net_set_link(&st->net, op & 4);
		break;
	}
}

static void run_script(const uint8_t *hdr, const uint8_t *s, size_t len)
{
	/* Each activation may replay a full ring of 64 KiB chains: a few per
	 * input find the same bugs as many, and keep inputs fast. */
	unsigned activations = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t op = s[i];
		const uint8_t *arg = s + i + 1;
		size_t left = len - i - 1;
		switch (op % 8) {
		case 0:
			virtio_net_ops.queue_notify(&st->net, NET_TXQ);
			break;
		case 1:
			virtio_net_ops.queue_notify(&st->net, op >> 3); /* rx, or junk */
			break;
		case 2:
			if (st->net.rx_watching)
				virtio_net_ops.fd_ready(&st->net, FAKE_FD);
			break;
		case 3:
			virtio_net_ops.fd_ready(&st->net, st->net.kick_fd);
			break;
		case 4:
			if (left >= 3) {
				queue_frame(arg);
				i += 3;
			}
			break;
		case 5:
			if (++activations > MAX_ACTIVATIONS)
				break;
			virtio_net_ops.reset(&st->net);
			check_watches();
			activate(hdr);
			break;
		case 6: {
			uint8_t data[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
			uint32_t off = (op >> 3) % NET_CONFIG_SIZE;
			unsigned n = 1u << ((op >> 6) & 3);
			uint8_t mac0 = st->net.mac[0];
			if (op & 4)
				virtio_net_ops.config_write(&st->net, off, data, n);
			virtio_net_ops.config_read(&st->net, off, data, n);
			if (st->net.mac[0] != mac0 || (virtio_net_ops.features(&st->net) &
						       (1ULL << VIRTIO_NET_F_MRG_RXBUF)))
				__builtin_trap(); /* read-only config, fixed features */
			break;
		}
		default:
			misc_op(op >> 3, arg, left);
			break;
		}
		check_watches();
	}
}

static void parse_strings(const uint8_t *s, size_t len)
{
	char str[256];
	struct net_opts o;
	struct errmsg err;
	uint8_t mac[NET_MAC_LEN];
	if (len >= sizeof(str))
		len = sizeof(str) - 1;
	memcpy(str, s, len);
	str[len] = '\0';
	if (net_opts_parse(str, &o, &err) == 0 &&
	    (o.ifname[0] == '\0' || (o.mac[0] & 1) || (o.mtu && o.mtu < 68)))
		__builtin_trap();
	if (net_mac_parse(str, mac) == 0 && (mac[0] & 1))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!st) {
		static struct fuzz_state state;
		static const struct net_opts opts = {
		    .ifname = "fuzz0", .mac = {0x52, 0x54, 0, 1, 2, 3}, .mtu = 1500, .offload = true};
		log_set_level(LOG_ERROR); /* guest misbehaviour is the point */
		st = &state;
		if (guest_mem_init(&st->mem, GUEST_MEM_MIN_SIZE))
			__builtin_trap();
		st->be = (struct net_backend){.ops = &fake_ops, .opaque = st};
		if (virtio_net_init(&st->net, &st->be, &opts))
			__builtin_trap();
	}
	if (size < HDR_SIZE)
		return 0;
	const uint8_t *hdr = data;
	size_t slen = hdr[3] < size - HDR_SIZE ? hdr[3] : size - HDR_SIZE;
	const uint8_t *script = data + HDR_SIZE;
	const uint8_t *body = script + slen;
	size_t blen = size - HDR_SIZE - slen;
	parse_strings(script, slen);

	/* Options: offloads and MTU are fixed at init, so re-init (cheap). */
	struct net_opts opts = {.ifname = "fuzz0", .mac = {0x52, 0x54, 0, 1, 2, 3}};
	opts.offload = !(hdr[4] & 16);
	opts.mtu = hdr[4] & 32 ? 9000 : 0;
	unsigned warned = st->net.warned; /* one-shot logs stay one-shot */
	virtio_net_destroy(&st->net);
	if (virtio_net_init(&st->net, &st->be, &opts))
		__builtin_trap();
	st->net.warned = warned;
	st->rx_fail = hdr[4] & 3;
	st->tx_fail = (hdr[4] >> 2) & 3;
	st->fhead = st->ftail = st->calls = 0;
	st->nwatched = st->failed = 0;

	if (hdr[2] & 128) {
		uint8_t *win = guest_mem_ptr(&st->mem, WIN_GPA, WIN_SIZE);
		memcpy(win, body, blen < WIN_SIZE ? blen : WIN_SIZE);
		activate(hdr);
	} else if (activate(hdr) == 0) {
		unsigned nlong = 0;
		for (unsigned i = 0; i < MAX_RECS && (i + 1) * REC_SIZE <= blen; i++)
			lay_out(body + i * REC_SIZE, i, &nlong);
		virtio_net_ops.queue_notify(&st->net, NET_TXQ);
		virtio_net_ops.queue_notify(&st->net, NET_RXQ);
	}
	run_script(hdr, script, slen);

	virtio_net_ops.reset(&st->net);
	check_watches();
	if (st->nwatched)
		__builtin_trap();
	madvise(st->mem.base, st->mem.ram_size, MADV_DONTNEED);
	return 0;
}
