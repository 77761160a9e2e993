/* virtio-net (virtio/net.c) and the tap backend (virtio/tap.c).
 *
 * A 16 MiB guest holds both rings, built by hand as a driver would; a fake
 * transport records used()/failed()/watch_fd() and a fake backend keeps
 * frames in memory (a queue for receive, the last write for transmit).
 * The last test opens a real tap inside a fresh network namespace in a
 * forked child, so nothing leaks to the host; it is skipped (loudly) when
 * that is not possible. The ring helpers abort() instead of using cmocka
 * asserts so that the forked child can use them too. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"
#include "util/snapbuf.h"
#include "virtio/net.h"
#include "virtio/tap.h"
#include "vm/memory.h"
#include "vq_driver.h"

#define QSIZE 256u
#define RAM (16ULL << 20)
#define DATA_GPA 0x100000ULL
#define INDIRECT_GPA 0x40000ULL
#define FAKE_FD 987
#define MAX_BUF (VIRTIO_NET_HDR_LEN + NET_MAX_FRAME + 64)
#define F_NEXT VIRTQ_DESC_F_NEXT
#define F_WRITE VIRTQ_DESC_F_WRITE
#define F_INDIRECT VIRTQ_DESC_F_INDIRECT
#define FEAT(b) (1ULL << (b))
#define FEAT_BASE (FEAT(VIRTIO_F_VERSION_1) | FEAT(VIRTIO_NET_F_MAC) | FEAT(VIRTIO_NET_F_STATUS))

static const uint64_t desc_gpa[2] = {0x10000, 0x20000};
static const uint64_t avail_gpa[2] = {0x14000, 0x24000};
static const uint64_t used_gpa[2] = {0x18000, 0x28000};

struct fx;

struct fake_be {
	uint8_t *rx[QSIZE];     /* queued frames, header included */
	size_t rx_len[QSIZE];
	unsigned rx_head, rx_tail;
	ssize_t rx_ret;         /* nonzero: readv returns this */
	uint8_t *tx;            /* last written header+frame */
	size_t tx_len;
	unsigned tx_count;
	int tx_iovcnt;
	ssize_t tx_ret;         /* nonzero: writev returns this */
	unsigned offload, offload_calls;
	void (*on_write)(struct fx *f);
	struct fx *f;
};

struct fake_tr {
	unsigned used[2], failed, config_changed;
	int watched[8];
	unsigned nwatched;
};

struct fx {
	struct guest_mem mem;
	struct virtqueue vq[2];
	struct virtio_queue_ctx ctx;
	struct virtio_net *net;
	struct net_backend be;
	struct fake_be fb;
	struct fake_tr tr;
	struct vqd d[2]; /* the driver's side of each queue */
};

/* ---- guest memory and rings (no cmocka: usable in a forked child) ---- */

static uint8_t *gp(struct fx *f, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(&f->mem, gpa, len);
	if (!p)
		abort();
	return p;
}

static void put16(struct fx *f, uint64_t gpa, uint16_t v)
{
	if (vqd_put16(&f->mem, gpa, v))
		abort();
}

static void set_desc_at(struct fx *f, uint64_t table, uint32_t i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	if (vqd_write_desc(&f->mem, table, i, addr, len, flags, next))
		abort();
}

static void avail_add(struct fx *f, unsigned q, uint16_t head)
{
	if (vqd_publish(&f->d[q], head))
		abort();
}

/* Driver side: writes a direct chain into free descriptors and publishes it. */
static uint16_t add_chain(struct fx *f, unsigned q, const struct vqd_buf *s, unsigned n)
{
	int head = vqd_add_chain(&f->d[q], s, n);
	if (head < 0)
		abort();
	return (uint16_t)head;
}

static void make_hdr(uint8_t *h, uint8_t flags, uint8_t gso, uint16_t num_buffers)
{
	memset(h, 0, VIRTIO_NET_HDR_LEN);
	h[0] = flags;
	h[1] = gso;
	memcpy(h + 10, &num_buffers, 2);
}

static void fill_frame(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* ---- fake transport ---- */

static struct fake_tr *tr_of(void *t) { return &((struct fx *)t)->tr; }
static void fake_used(void *t, unsigned q) { tr_of(t)->used[q & 1]++; }
static void fake_config_changed(void *t) { tr_of(t)->config_changed++; }
static void fake_failed(void *t, const char *why)
{
	(void)why;
	tr_of(t)->failed++;
}

static bool tr_watching(struct fake_tr *t, int fd)
{
	for (unsigned i = 0; i < t->nwatched; i++)
		if (t->watched[i] == fd)
			return true;
	return false;
}

static int fake_watch_fd(void *tp, int fd, bool on)
{
	struct fake_tr *t = tr_of(tp);
	for (unsigned i = 0; i < t->nwatched; i++) {
		if (t->watched[i] == fd) {
			if (!on)
				t->watched[i] = t->watched[--t->nwatched];
			return 0;
		}
	}
	if (on) {
		if (t->nwatched == 8)
			return -ENOSPC;
		t->watched[t->nwatched++] = fd;
	}
	return 0;
}

/* ---- fake backend ---- */

static void fb_queue(struct fake_be *b, const uint8_t *data, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		abort();
	memcpy(p, data, len);
	b->rx[b->rx_tail % QSIZE] = p;
	b->rx_len[b->rx_tail % QSIZE] = len;
	b->rx_tail++;
}

/* Queues header + frame as the host would present them. */
static void fb_queue_frame(struct fake_be *b, uint8_t flags, uint8_t gso, size_t frame_len,
			   uint8_t seed)
{
	uint8_t *buf = malloc(VIRTIO_NET_HDR_LEN + frame_len);
	if (!buf)
		abort();
	make_hdr(buf, flags, gso, 0x7777);
	fill_frame(buf + VIRTIO_NET_HDR_LEN, frame_len, seed);
	fb_queue(b, buf, VIRTIO_NET_HDR_LEN + frame_len);
	free(buf);
}

/* Like tap: copies what fits and returns the frame's full length. */
static ssize_t fake_readv(void *opaque, const struct iovec *iov, int cnt)
{
	struct fake_be *b = opaque;
	if (b->rx_ret)
		return b->rx_ret;
	if (b->rx_head == b->rx_tail)
		return -EAGAIN;
	unsigned i = b->rx_head++ % QSIZE;
	size_t off = 0;
	for (int k = 0; k < cnt && off < b->rx_len[i]; k++) {
		size_t n = b->rx_len[i] - off < iov[k].iov_len ? b->rx_len[i] - off : iov[k].iov_len;
		memcpy(iov[k].iov_base, b->rx[i] + off, n);
		off += n;
	}
	size_t len = b->rx_len[i];
	free(b->rx[i]);
	b->rx[i] = NULL;
	return (ssize_t)len;
}

static ssize_t fake_writev(void *opaque, const struct iovec *iov, int cnt)
{
	struct fake_be *b = opaque;
	if (b->on_write)
		b->on_write(b->f);
	if (b->tx_ret)
		return b->tx_ret;
	size_t off = 0;
	for (int k = 0; k < cnt; k++) {
		if (off + iov[k].iov_len > MAX_BUF)
			abort();
		memcpy(b->tx + off, iov[k].iov_base, iov[k].iov_len);
		off += iov[k].iov_len;
	}
	b->tx_len = off;
	b->tx_count++;
	b->tx_iovcnt = cnt;
	return (ssize_t)off;
}

static int fake_fd(void *opaque)
{
	(void)opaque;
	return FAKE_FD;
}

static int fake_set_offload(void *opaque, unsigned offload)
{
	struct fake_be *b = opaque;
	b->offload = offload;
	b->offload_calls++;
	return 0;
}

static const struct net_backend_ops fake_ops = {
    .readv = fake_readv,
    .writev = fake_writev,
    .fd = fake_fd,
    .set_offload = fake_set_offload,
};

/* ---- fixture ---- */

static const struct net_opts test_opts = {
    .ifname = "test0",
    .mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
    .mtu = 1500,
    .offload = true,
};

/* Both queues, device and driver side, over f->mem. */
static void queues_init(struct fx *f)
{
	for (unsigned q = 0; q < 2; q++) {
		vq_init(&f->vq[q], &f->mem);
		vqd_init(&f->d[q], &f->mem, desc_gpa[q], avail_gpa[q], used_gpa[q], QSIZE);
	}
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->net = calloc(1, sizeof(*f->net));
	f->fb.tx = malloc(MAX_BUF);
	if (!f->net || !f->fb.tx || guest_mem_init(&f->mem, RAM))
		return -1;
	f->fb.f = f;
	f->be = (struct net_backend){.ops = &fake_ops, .opaque = &f->fb};
	if (virtio_net_init(f->net, &f->be, &test_opts))
		return -1;
	queues_init(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	while (f->fb.rx_head != f->fb.rx_tail)
		free(f->fb.rx[f->fb.rx_head++ % QSIZE]);
	virtio_net_destroy(f->net);
	guest_mem_destroy(&f->mem);
	free(f->fb.tx);
	free(f->net);
	free(f);
	return 0;
}

/* DRIVER_OK with `features` (VERSION_1, MAC and STATUS always). */
static int activate(struct fx *f, uint64_t features)
{
	for (unsigned q = 0; q < 2; q++) {
		if (vqd_clear(&f->d[q]) || vqd_enable(&f->d[q], &f->vq[q], features))
			abort();
	}
	f->ctx = (struct virtio_queue_ctx){
	    .mem = &f->mem,
	    .features = features | FEAT_BASE,
	    .vq = f->vq,
	    .nvq = 2,
	    .used = fake_used,
	    .config_changed = fake_config_changed,
	    .failed = fake_failed,
	    .watch_fd = fake_watch_fd,
	    .transport = f,
	};
	return virtio_net_ops.activate(f->net, &f->ctx);
}

static void notify(struct fx *f, unsigned q) { virtio_net_ops.queue_notify(f->net, q); }
static void rx_ready(struct fx *f) { virtio_net_ops.fd_ready(f->net, FAKE_FD); }

/* ---- configuration, features, MAC ---- */

static void test_config_layout(void **state)
{
	struct fx *f = *state;
	uint8_t b[8];
	assert_int_equal(virtio_net_ops.device_id, VIRTIO_ID_NET);
	assert_int_equal(virtio_net_ops.num_queues, 2);
	assert_int_equal(virtio_net_ops.queue_size, 256);
	assert_int_equal(virtio_net_ops.config_size, 12);

	virtio_net_ops.config_read(f->net, 0, b, 4);
	assert_memory_equal(b, test_opts.mac, 4);
	virtio_net_ops.config_read(f->net, 4, b, 2);
	assert_memory_equal(b, test_opts.mac + 4, 2);
	virtio_net_ops.config_read(f->net, 6, b, 2);
	assert_int_equal(b[0] | b[1] << 8, VIRTIO_NET_S_LINK_UP);
	virtio_net_ops.config_read(f->net, 8, b, 2);
	assert_int_equal(b[0] | b[1] << 8, 1); /* max_virtqueue_pairs */
	virtio_net_ops.config_read(f->net, 10, b, 2);
	assert_int_equal(b[0] | b[1] << 8, 1500);
	virtio_net_ops.config_read(f->net, 8, b, 8); /* runs past the end: zeros */
	assert_int_equal(b[4] | b[5] | b[6] | b[7], 0);

	/* Writes are ignored (the MAC is read-only for modern drivers). */
	const uint8_t junk[4] = {1, 2, 3, 4};
	virtio_net_ops.config_write(f->net, 0, junk, 4);
	virtio_net_ops.config_read(f->net, 0, b, 4);
	assert_memory_equal(b, test_opts.mac, 4);

	uint64_t feat = virtio_net_ops.features(f->net);
	assert_true(feat & FEAT(VIRTIO_NET_F_MAC));
	assert_true(feat & FEAT(VIRTIO_NET_F_STATUS));
	assert_true(feat & FEAT(VIRTIO_NET_F_MTU));
	assert_true(feat & FEAT(VIRTIO_NET_F_CSUM));
	assert_true(feat & FEAT(VIRTIO_NET_F_GUEST_TSO4));
	assert_false(feat & FEAT(VIRTIO_NET_F_MRG_RXBUF));
	assert_false(feat & FEAT(17)); /* CTRL_VQ */
	assert_false(feat & FEAT(22)); /* MQ */
}

static void test_features_without_offload_or_mtu(void **state)
{
	struct fx *f = *state;
	struct net_opts o = test_opts;
	o.offload = false;
	o.mtu = 0;
	virtio_net_destroy(f->net);
	assert_int_equal(virtio_net_init(f->net, &f->be, &o), 0);
	uint64_t feat = virtio_net_ops.features(f->net);
	assert_int_equal(feat, FEAT(VIRTIO_NET_F_MAC) | FEAT(VIRTIO_NET_F_STATUS));

	/* A backend without set_offload never offers offloads. */
	struct net_backend_ops ops = fake_ops;
	ops.set_offload = NULL;
	struct net_backend be = {.ops = &ops, .opaque = &f->fb};
	virtio_net_destroy(f->net);
	assert_int_equal(virtio_net_init(f->net, &be, &test_opts), 0);
	assert_false(virtio_net_ops.features(f->net) & FEAT(VIRTIO_NET_F_CSUM));

	/* Bad options. */
	o = test_opts;
	o.mac[0] = 0x01; /* multicast */
	virtio_net_destroy(f->net);
	assert_int_equal(virtio_net_init(f->net, &f->be, &o), -EINVAL);
	o = test_opts;
	o.mtu = 67;
	assert_int_equal(virtio_net_init(f->net, &f->be, &o), -EINVAL);
	assert_int_equal(virtio_net_init(f->net, &f->be, &test_opts), 0);
}

static void test_mac_parse(void **state)
{
	(void)state;
	uint8_t mac[6], want[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
	assert_int_equal(net_mac_parse("52:54:00:ab:CD:eF", mac), 0);
	assert_memory_equal(mac, want, 6);
	assert_int_equal(net_mac_parse("02:00:00:00:00:01", mac), 0);

	static const char *const bad[] = {
	    "", "52:54:00:12:34", "52:54:00:12:34:56:78", "52-54-00-12-34-56",
	    "5:54:00:12:34:56", "52:54:00:12:34:5g", "52:54:00:12:34:56 ", " 52:54:00:12:34:56",
	    "52:54:00:12:34:5", "52::54:00:12:34:5", "01:00:5e:00:00:01", /* multicast */
	    "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "52:54:00:12:34:+6", "0x:54:00:12:34:56",
	};
	memcpy(mac, want, 6);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(net_mac_parse(bad[i], mac), -EINVAL);
		assert_memory_equal(mac, want, 6); /* untouched on failure */
	}

	const uint8_t first[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	const uint8_t third[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x58};
	const uint8_t wrap[6] = {0x52, 0x54, 0x00, 0x12, 0x35, 0x55};
	net_mac_for_index(mac, 0);
	assert_memory_equal(mac, first, 6);
	net_mac_for_index(mac, 2);
	assert_memory_equal(mac, third, 6);
	net_mac_for_index(mac, 255);
	assert_memory_equal(mac, wrap, 6);

	char s[18];
	for (unsigned i = 0; i < 16; i++) {
		net_mac_for_index(mac, i * 37);
		assert_int_equal(mac[0], 0x52); /* locally administered, unicast */
		assert_int_equal(mac[0] & 3, 2);
		net_mac_format(mac, s);
		uint8_t back[6];
		assert_int_equal(net_mac_parse(s, back), 0);
		assert_memory_equal(back, mac, 6);
	}
}

static void test_opts_parse(void **state)
{
	(void)state;
	struct net_opts o;
	struct errmsg err;
	assert_int_equal(net_opts_parse("tap=tap0", &o, &err), 0);
	assert_string_equal(o.ifname, "tap0");
	assert_true(o.offload);
	assert_int_equal(o.mtu, 0);
	static const uint8_t unset[NET_MAC_LEN];
	assert_memory_equal(o.mac, unset, NET_MAC_LEN); /* the caller picks a MAC */

	assert_int_equal(
	    net_opts_parse("mac=52:54:00:12:34:57,tap=shrike-tap.15,mtu=9000,offload=off", &o, &err),
	    0);
	assert_string_equal(o.ifname, "shrike-tap.15");
	assert_int_equal(o.mac[5], 0x57);
	assert_int_equal(o.mtu, 9000);
	assert_false(o.offload);

	static const char *const bad[] = {
	    "", "tap", "tap=", "mac=52:54:00:12:34:56", "tap=x,", ",tap=x", "tap=x,,mtu=1500",
	    "tap=abcdefghijklmnop", "tap=a/b", "tap=a:b", "tap=a b", "tap=.", "tap=..",
	    "tap=x,tap=y", "tap=x,foo=1", "tap=x,mtu=67", "tap=x,mtu=65536", "tap=x,mtu=-1",
	    "tap=x,mtu=15OO", "tap=x,offload=maybe", "tap=x,mac=01:00:5e:00:00:01",
	    "tap=x,mac=52:54:00:12:34:56:00000000000000000000000000", "TAP=x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.text[0] = '\0';
		assert_int_equal(net_opts_parse(bad[i], &o, &err), -EINVAL);
		assert_true(err.text[0] != '\0');
	}
}

static void test_link_status(void **state)
{
	struct fx *f = *state;
	uint8_t b[2];
	assert_int_equal(activate(f, 0), 0);
	virtio_net_set_link(f->net, false);
	virtio_net_ops.config_read(f->net, 6, b, 2);
	assert_int_equal(b[0] | b[1] << 8, 0);
	assert_int_equal(f->tr.config_changed, 1);
	virtio_net_set_link(f->net, false); /* no change, no interrupt */
	assert_int_equal(f->tr.config_changed, 1);
	virtio_net_set_link(f->net, true);
	assert_int_equal(f->tr.config_changed, 2);
}

/* ---- transmit ---- */

static void test_tx_frame_reaches_backend(void **state)
{
	struct fx *f = *state;
	uint8_t want[VIRTIO_NET_HDR_LEN + 60];
	assert_int_equal(activate(f, 0), 0);
	assert_true(tr_watching(&f->tr, f->net->kick_fd));

	/* Header and the first 20 bytes share a segment; num_buffers is junk
	 * that the device must not pass on. */
	make_hdr(want, 0, 0, 0x1234);
	fill_frame(want + VIRTIO_NET_HDR_LEN, 60, 3);
	memcpy(gp(f, DATA_GPA, 32), want, 32);
	memcpy(gp(f, DATA_GPA + 0x1000, 40), want + 32, 40);
	struct vqd_buf s[] = {{DATA_GPA, 32, false}, {DATA_GPA + 0x1000, 40, false}};
	uint16_t head = add_chain(f, NET_TXQ, s, 2);
	notify(f, NET_TXQ);

	assert_int_equal(f->fb.tx_count, 1);
	assert_int_equal(f->fb.tx_len, sizeof(want));
	want[10] = want[11] = 0;
	assert_memory_equal(f->fb.tx, want, sizeof(want));
	assert_int_equal(vqd_used_idx(&f->d[NET_TXQ]), 1);
	assert_int_equal(vqd_used_id(&f->d[NET_TXQ], 0), head);
	assert_int_equal(vqd_used_len(&f->d[NET_TXQ], 0), 0);
	assert_int_equal(f->tr.used[NET_TXQ], 1);
	assert_int_equal(vqd_used_flags(&f->d[NET_TXQ]), 0); /* notifications back on */
	assert_int_equal(f->net->stats.tx_packets, 1);
	assert_int_equal(f->net->stats.tx_bytes, 60);

	/* A second notify with nothing new does nothing. */
	notify(f, NET_TXQ);
	assert_int_equal(f->fb.tx_count, 1);
	assert_int_equal(f->tr.used[NET_TXQ], 1);
}

static void test_tx_short_and_long_chains(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	memset(gp(f, DATA_GPA, 0x20000), 0, 0x20000);
	struct vqd_buf hdr_only[] = {{DATA_GPA, 5, false}};
	struct vqd_buf runt[] = {{DATA_GPA, VIRTIO_NET_HDR_LEN + 13, false}};
	struct vqd_buf writable[] = {{DATA_GPA, 100, true}};
	struct vqd_buf huge[] = {{DATA_GPA, VIRTIO_NET_HDR_LEN + NET_MAX_FRAME + 1, false}};
	struct vqd_buf max[] = {{DATA_GPA, VIRTIO_NET_HDR_LEN + NET_MAX_FRAME, false}};
	struct vqd_buf min[] = {{DATA_GPA, VIRTIO_NET_HDR_LEN + NET_ETH_HLEN, false}};
	add_chain(f, NET_TXQ, hdr_only, 1);
	add_chain(f, NET_TXQ, runt, 1);
	add_chain(f, NET_TXQ, writable, 1);
	add_chain(f, NET_TXQ, huge, 1);
	add_chain(f, NET_TXQ, max, 1);
	add_chain(f, NET_TXQ, min, 1);
	notify(f, NET_TXQ);

	assert_int_equal(f->net->stats.tx_errors, 4);
	assert_int_equal(f->fb.tx_count, 2);
	assert_int_equal(f->fb.tx_len, VIRTIO_NET_HDR_LEN + NET_ETH_HLEN);
	assert_int_equal(vqd_used_idx(&f->d[NET_TXQ]), 6);
	for (uint16_t i = 0; i < 6; i++) {
		assert_int_equal(vqd_used_id(&f->d[NET_TXQ], i), i);
		assert_int_equal(vqd_used_len(&f->d[NET_TXQ], i), 0);
	}
	assert_int_equal(f->tr.used[NET_TXQ], 1);
	assert_int_equal(f->tr.failed, 0);
}

static uint16_t add_tx_hdr(struct fx *f, uint64_t gpa, uint8_t flags, uint8_t gso)
{
	uint8_t *p = gp(f, gpa, VIRTIO_NET_HDR_LEN + 60);
	make_hdr(p, flags, gso, 0);
	fill_frame(p + VIRTIO_NET_HDR_LEN, 60, 1);
	struct vqd_buf s[] = {{gpa, VIRTIO_NET_HDR_LEN + 60, false}};
	return add_chain(f, NET_TXQ, s, 1);
}

static void test_tx_header_offloads(void **state)
{
	struct fx *f = *state;
	const uint8_t ecn = VIRTIO_NET_HDR_GSO_ECN;
	/* Nothing negotiated: only plain frames pass; DATA_VALID is cleared. */
	assert_int_equal(activate(f, 0), 0);
	add_tx_hdr(f, DATA_GPA, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
	add_tx_hdr(f, DATA_GPA + 0x100, 0, VIRTIO_NET_HDR_GSO_TCPV4);
	add_tx_hdr(f, DATA_GPA + 0x200, VIRTIO_NET_HDR_F_DATA_VALID, 0);
	notify(f, NET_TXQ);
	assert_int_equal(f->fb.tx_count, 1);
	assert_int_equal(f->fb.tx[0], 0);
	assert_int_equal(f->net->stats.tx_errors, 2);

	/* CSUM + HOST_TSO4: checksum and TCPv4 pass, v6/ECN/UDP do not. */
	virtio_net_ops.reset(f->net);
	assert_int_equal(activate(f, FEAT(VIRTIO_NET_F_CSUM) | FEAT(VIRTIO_NET_F_HOST_TSO4)), 0);
	add_tx_hdr(f, DATA_GPA, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
	add_tx_hdr(f, DATA_GPA + 0x100, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4);
	add_tx_hdr(f, DATA_GPA + 0x200, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6);
	add_tx_hdr(f, DATA_GPA + 0x300, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4 | ecn);
	add_tx_hdr(f, DATA_GPA + 0x400, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP);
	add_tx_hdr(f, DATA_GPA + 0x500, 0, ecn);
	add_tx_hdr(f, DATA_GPA + 0x600, 0, 0x42);
	notify(f, NET_TXQ);
	assert_int_equal(f->fb.tx_count, 3);
	assert_int_equal(f->fb.tx[1], VIRTIO_NET_HDR_GSO_TCPV4);
	assert_int_equal(f->net->stats.tx_errors, 2 + 5);

	/* HOST_TSO without CSUM breaks the dependency (§5.1.3.1): refused. */
	virtio_net_ops.reset(f->net);
	assert_int_equal(activate(f, FEAT(VIRTIO_NET_F_HOST_TSO4)), 0);
	add_tx_hdr(f, DATA_GPA, 0, VIRTIO_NET_HDR_GSO_TCPV4);
	notify(f, NET_TXQ);
	assert_int_equal(f->fb.tx_count, 3);
}

static void test_tx_backend_full_drops(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	f->fb.tx_ret = -EAGAIN;
	add_tx_hdr(f, DATA_GPA, 0, 0);
	add_tx_hdr(f, DATA_GPA, 0, 0);
	notify(f, NET_TXQ);
	assert_int_equal(f->net->stats.tx_dropped, 2);
	assert_int_equal(vqd_used_idx(&f->d[NET_TXQ]), 2);
	f->fb.tx_ret = -EIO;
	add_tx_hdr(f, DATA_GPA, 0, 0);
	notify(f, NET_TXQ);
	assert_int_equal(f->net->stats.tx_errors, 1);
	assert_int_equal(vqd_used_idx(&f->d[NET_TXQ]), 3);
	assert_int_equal(f->tr.failed, 0);
}

static void test_tx_malformed_ring_fails(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	assert_true(tr_watching(&f->tr, FAKE_FD));
	struct vqd_buf s[] = {{RAM - 8, 64, false}}; /* runs off the end of RAM */
	add_chain(f, NET_TXQ, s, 1);
	notify(f, NET_TXQ);
	assert_int_equal(f->tr.failed, 1);
	assert_int_equal(f->fb.tx_count, 0);
	assert_int_equal(f->tr.nwatched, 0); /* nothing left to spin on */
	/* Dead until reset. */
	add_tx_hdr(f, DATA_GPA, 0, 0);
	notify(f, NET_TXQ);
	virtio_net_ops.fd_ready(f->net, f->net->kick_fd);
	assert_int_equal(f->tr.failed, 1);
	virtio_net_ops.reset(f->net);

	/* A broken ring found while activating fails the activation. */
	assert_int_equal(vqd_enable(&f->d[1], &f->vq[1], 0), 0);
	set_desc_at(f, desc_gpa[1], 0, RAM - 8, 64, 0, 0);
	put16(f, avail_gpa[1] + 4, 0);
	put16(f, avail_gpa[1] + 2, 1);
	f->ctx.vq = f->vq;
	assert_int_equal(virtio_net_ops.activate(f->net, &f->ctx), -EIO);
}

/* The backend re-publishes the same chain on every write, as a guest that
 * never stops transmitting would, until 300 frames have gone out. */
static void keep_transmitting(struct fx *f)
{
	if (f->fb.tx_count < 299)
		avail_add(f, NET_TXQ, 0);
}

static void test_tx_budget_continues_from_kick(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	f->fb.on_write = keep_transmitting;
	add_tx_hdr(f, DATA_GPA, 0, 0);
	notify(f, NET_TXQ);
	assert_int_equal(f->fb.tx_count, NET_TX_BUDGET);
	assert_int_equal(f->tr.used[NET_TXQ], 1);
	assert_true(vqd_used_flags(&f->d[NET_TXQ]) & VIRTQ_USED_F_NO_NOTIFY); /* kick pending */
	struct pollfd p = {.fd = f->net->kick_fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 1);

	virtio_net_ops.fd_ready(f->net, f->net->kick_fd);
	assert_int_equal(f->fb.tx_count, 300);
	assert_int_equal(vqd_used_idx(&f->d[NET_TXQ]), 300);
	assert_int_equal(f->tr.used[NET_TXQ], 2);
	assert_int_equal(vqd_used_flags(&f->d[NET_TXQ]), 0);
	assert_int_equal(poll(&p, 1, 0), 0); /* drained */
}

/* A chain of more pieces than writev takes is gathered first. */
static void test_tx_many_segments(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, FEAT(VIRTIO_F_INDIRECT_DESC)), 0);
	uint8_t want[VIRTIO_NET_HDR_LEN + 8 + 1023];
	make_hdr(want, 0, 0, 0);
	fill_frame(want + VIRTIO_NET_HDR_LEN, sizeof(want) - VIRTIO_NET_HDR_LEN, 9);
	memcpy(gp(f, DATA_GPA, sizeof(want)), want, sizeof(want));
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 20, F_NEXT, 1);
	for (uint16_t i = 1; i < 1024; i++)
		set_desc_at(f, INDIRECT_GPA, i, DATA_GPA + 19 + i, 1, i < 1023 ? F_NEXT : 0,
			    (uint16_t)(i + 1));
	set_desc_at(f, desc_gpa[NET_TXQ], 0, INDIRECT_GPA, 1024 * 16, F_INDIRECT, 0);
	avail_add(f, NET_TXQ, 0);
	notify(f, NET_TXQ);
	assert_int_equal(f->fb.tx_count, 1);
	assert_int_equal(f->fb.tx_iovcnt, 2);
	assert_int_equal(f->fb.tx_len, sizeof(want));
	assert_memory_equal(f->fb.tx, want, sizeof(want));
}

/* ---- receive ---- */

static void test_rx_frame_lands_in_guest(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	assert_true(tr_watching(&f->tr, FAKE_FD));

	/* The header itself is split over two segments. */
	memset(gp(f, DATA_GPA, 0x4000), 0xee, 0x4000);
	struct vqd_buf s[] = {{DATA_GPA, 8, true}, {DATA_GPA + 0x1000, 100, true},
			  {DATA_GPA + 0x2000, 2000, true}};
	uint16_t head = add_chain(f, NET_RXQ, s, 3);
	fb_queue_frame(&f->fb, VIRTIO_NET_HDR_F_DATA_VALID, 0, 150, 5);
	rx_ready(f);

	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 1);
	assert_int_equal(vqd_used_id(&f->d[NET_RXQ], 0), head);
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 0), VIRTIO_NET_HDR_LEN + 150);
	assert_int_equal(f->tr.used[NET_RXQ], 1);

	uint8_t got[VIRTIO_NET_HDR_LEN + 150], want[150];
	memcpy(got, gp(f, DATA_GPA, 8), 8);
	memcpy(got + 8, gp(f, DATA_GPA + 0x1000, 100), 100);
	memcpy(got + 108, gp(f, DATA_GPA + 0x2000, 54), 54);
	assert_int_equal(got[0], 0); /* no GUEST_CSUM: flags must be 0 */
	assert_int_equal(got[10] | got[11] << 8, 1); /* num_buffers */
	fill_frame(want, 150, 5);
	assert_memory_equal(got + VIRTIO_NET_HDR_LEN, want, 150);
	assert_int_equal(*gp(f, DATA_GPA + 0x2000 + 54, 1), 0xee); /* nothing past the frame */
	assert_int_equal(f->net->stats.rx_packets, 1);
	assert_int_equal(f->net->stats.rx_bytes, 150);
	/* The ring is empty now: no longer watching, notifications on. */
	assert_false(tr_watching(&f->tr, FAKE_FD));
	assert_int_equal(vqd_used_flags(&f->d[NET_RXQ]), 0);
}

static void test_rx_oversize_frame_dropped(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	memset(gp(f, DATA_GPA, 0x1000), 0xaa, 0x1000);
	struct vqd_buf s[] = {{DATA_GPA, VIRTIO_NET_HDR_LEN + 100, true}};
	uint16_t head = add_chain(f, NET_RXQ, s, 1);
	fb_queue_frame(&f->fb, 0, 0, 101, 1); /* one byte too many */
	fb_queue_frame(&f->fb, 0, 0, 3000, 2);
	fb_queue_frame(&f->fb, 0, 0, 100, 3); /* exactly fits */
	rx_ready(f);

	assert_int_equal(f->net->stats.rx_dropped, 2);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 1);
	assert_int_equal(vqd_used_id(&f->d[NET_RXQ], 0), head); /* the same buffer, reused */
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 0), VIRTIO_NET_HDR_LEN + 100);
	uint8_t want[100];
	fill_frame(want, 100, 3);
	assert_memory_equal(gp(f, DATA_GPA + VIRTIO_NET_HDR_LEN, 100), want, 100);
	for (unsigned i = VIRTIO_NET_HDR_LEN + 100; i < 0x1000; i++)
		assert_int_equal(*gp(f, DATA_GPA + i, 1), 0xaa);
}

static void test_rx_empty_ring_stops_watching(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	assert_true(tr_watching(&f->tr, FAKE_FD));
	fb_queue_frame(&f->fb, 0, 0, 64, 1);
	rx_ready(f); /* no buffers */
	assert_false(tr_watching(&f->tr, FAKE_FD));
	assert_int_equal(vqd_used_flags(&f->d[NET_RXQ]), 0);         /* guest must kick us */
	assert_int_equal(f->fb.rx_head, 0);                  /* frame left in the host */
	assert_int_equal(f->tr.used[NET_RXQ], 0);
	rx_ready(f); /* a stale event while not watching: ignored */
	assert_int_equal(f->fb.rx_head, 0);

	struct vqd_buf s[] = {{DATA_GPA, 2048, true}};
	add_chain(f, NET_RXQ, s, 1);
	notify(f, NET_RXQ);
	assert_true(tr_watching(&f->tr, FAKE_FD));
	assert_true(vqd_used_flags(&f->d[NET_RXQ]) & VIRTQ_USED_F_NO_NOTIFY);
	rx_ready(f);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 1);
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 0), VIRTIO_NET_HDR_LEN + 64);

	/* A buffer but no frame: the chain is kept, still watching. */
	add_chain(f, NET_RXQ, s, 1);
	notify(f, NET_RXQ);
	rx_ready(f);
	assert_true(tr_watching(&f->tr, FAKE_FD));
	assert_true(f->net->rx_held);
	fb_queue_frame(&f->fb, 0, 0, 70, 1);
	rx_ready(f);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 2);
	assert_int_equal(vqd_used_id(&f->d[NET_RXQ], 1), 1);
}

static void test_rx_budget(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	for (unsigned i = 0; i < 100; i++) {
		struct vqd_buf s[] = {{DATA_GPA + 2048ULL * i, 2048, true}};
		add_chain(f, NET_RXQ, s, 1);
		fb_queue_frame(&f->fb, 0, 0, 60 + i, (uint8_t)i);
	}
	rx_ready(f);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), NET_RX_BUDGET);
	assert_int_equal(f->tr.used[NET_RXQ], 1);
	assert_true(tr_watching(&f->tr, FAKE_FD));
	rx_ready(f);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 100);
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 99), VIRTIO_NET_HDR_LEN + 60 + 99);
	assert_int_equal(f->tr.used[NET_RXQ], 2);
	rx_ready(f); /* ring empty: stops watching */
	assert_false(tr_watching(&f->tr, FAKE_FD));
}

static void test_rx_bad_chains_and_backend_errors(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	/* Too small for any frame: returned empty. */
	struct vqd_buf tiny[] = {{DATA_GPA, VIRTIO_NET_HDR_LEN + 13, true}};
	struct vqd_buf ok[] = {{DATA_GPA + 0x1000, 2048, true}};
	struct vqd_buf rdonly[] = {{DATA_GPA + 0x2000, 2048, false}};
	add_chain(f, NET_RXQ, tiny, 1);
	add_chain(f, NET_RXQ, rdonly, 1);
	add_chain(f, NET_RXQ, ok, 1);
	fb_queue_frame(&f->fb, 0, 0, 10, 1); /* runt: dropped */
	fb_queue_frame(&f->fb, 0, 0, 64, 1);
	rx_ready(f);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 3);
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 0), 0);
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 1), 0);
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 2), VIRTIO_NET_HDR_LEN + 64);
	assert_int_equal(f->net->stats.rx_errors, 3);

	/* The host dropped a frame (EINVAL): carry on. A dead backend: stop. */
	add_chain(f, NET_RXQ, ok, 1);
	notify(f, NET_RXQ);
	f->fb.rx_ret = -EINVAL;
	rx_ready(f);
	assert_int_equal(f->net->stats.rx_dropped, NET_RX_BUDGET);
	assert_true(tr_watching(&f->tr, FAKE_FD));
	f->fb.rx_ret = -EBADFD;
	rx_ready(f);
	assert_false(tr_watching(&f->tr, FAKE_FD));
	assert_int_equal(f->tr.failed, 0);
}

static void test_rx_malformed_ring_fails(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	struct vqd_buf s[] = {{RAM - 8, 64, true}};
	add_chain(f, NET_RXQ, s, 1);
	fb_queue_frame(&f->fb, 0, 0, 64, 1);
	rx_ready(f);
	assert_int_equal(f->tr.failed, 1);
	assert_int_equal(f->tr.nwatched, 0);
}

static void test_rx_header_offloads(void **state)
{
	struct fx *f = *state;
	struct vqd_buf s[] = {{DATA_GPA, 4096, true}};
	/* Without GUEST_CSUM a partial checksum cannot be delivered. */
	assert_int_equal(activate(f, 0), 0);
	assert_int_equal(f->fb.offload, 0);
	add_chain(f, NET_RXQ, s, 1);
	fb_queue_frame(&f->fb, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 64, 1);
	fb_queue_frame(&f->fb, 0, VIRTIO_NET_HDR_GSO_TCPV4, 64, 1);
	fb_queue_frame(&f->fb, VIRTIO_NET_HDR_F_RSC_INFO, 0, 64, 1);
	rx_ready(f);
	assert_int_equal(f->net->stats.rx_errors, 2);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 1);
	assert_int_equal(*gp(f, DATA_GPA, 1), 0);

	/* GUEST_CSUM + GUEST_TSO4 + GUEST_ECN: the backend is told, and such
	 * frames pass with their flags. */
	virtio_net_ops.reset(f->net);
	assert_int_equal(activate(f, FEAT(VIRTIO_NET_F_GUEST_CSUM) | FEAT(VIRTIO_NET_F_GUEST_TSO4) |
					 FEAT(VIRTIO_NET_F_GUEST_ECN)),
			 0);
	assert_int_equal(f->fb.offload, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO_ECN);
	add_chain(f, NET_RXQ, s, 1);
	fb_queue_frame(&f->fb, VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_RSC_INFO,
		       VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 64, 1);
	rx_ready(f);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 1);
	uint8_t *h = gp(f, DATA_GPA, VIRTIO_NET_HDR_LEN);
	assert_int_equal(h[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(h[1], VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN);
	assert_int_equal(h[10], 1);

	/* GUEST_TSO4 without GUEST_CSUM: no offloads at all. */
	virtio_net_ops.reset(f->net);
	assert_int_equal(activate(f, FEAT(VIRTIO_NET_F_GUEST_TSO4)), 0);
	assert_int_equal(f->fb.offload, 0);
	assert_int_equal(f->fb.offload_calls, 3);
}

static void test_rx_many_segments(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, FEAT(VIRTIO_F_INDIRECT_DESC)), 0);
	memset(gp(f, DATA_GPA, 0x1000), 0, 0x1000);
	set_desc_at(f, INDIRECT_GPA, 0, DATA_GPA, 20, F_NEXT | F_WRITE, 1);
	for (uint16_t i = 1; i < 1024; i++)
		set_desc_at(f, INDIRECT_GPA, i, DATA_GPA + 19 + i, 1,
			    (uint16_t)(F_WRITE | (i < 1023 ? F_NEXT : 0)), (uint16_t)(i + 1));
	set_desc_at(f, desc_gpa[NET_RXQ], 0, INDIRECT_GPA, 1024 * 16, F_INDIRECT, 0);
	avail_add(f, NET_RXQ, 0);
	fb_queue_frame(&f->fb, 0, 0, 2000, 4); /* too big even so */
	fb_queue_frame(&f->fb, 0, 0, 1031, 4); /* exactly fits */
	rx_ready(f);
	assert_int_equal(f->net->stats.rx_dropped, 1);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 1);
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 0), VIRTIO_NET_HDR_LEN + 1031);
	uint8_t want[1031];
	fill_frame(want, sizeof(want), 4);
	assert_memory_equal(gp(f, DATA_GPA + VIRTIO_NET_HDR_LEN, 1031), want, 1031);
	assert_int_equal(*gp(f, DATA_GPA + 10, 1), 1);
}

/* ---- lifecycle ---- */

static void test_reset_stops_everything(void **state)
{
	struct fx *f = *state;
	assert_int_equal(activate(f, 0), 0);
	assert_int_equal(f->tr.nwatched, 2); /* the backend fd and the kick eventfd */
	struct vqd_buf s[] = {{DATA_GPA, 2048, true}};
	add_chain(f, NET_RXQ, s, 1);
	rx_ready(f); /* holds the chain, no frame */
	virtio_net_ops.reset(f->net);
	assert_int_equal(f->tr.nwatched, 0);
	assert_false(f->net->rx_held);
	fb_queue_frame(&f->fb, 0, 0, 64, 1);
	rx_ready(f);
	notify(f, NET_TXQ);
	notify(f, NET_RXQ);
	assert_int_equal(f->fb.rx_head, 0);
	assert_int_equal(f->tr.nwatched, 0);
	/* Activation works again after a reset. */
	assert_int_equal(activate(f, 0), 0);
	assert_int_equal(f->tr.nwatched, 2);
	assert_int_equal(virtio_net_ops.activate(f->net, &(struct virtio_queue_ctx){.nvq = 1}),
			 -EINVAL);
}

static void test_save_load(void **state)
{
	struct fx *f = *state;
	struct snapbuf out, in;
	assert_int_equal(activate(f, 0), 0);
	struct vqd_buf s[] = {{DATA_GPA, 2048, true}};
	add_chain(f, NET_RXQ, s, 1);
	rx_ready(f);
	assert_true(f->net->rx_held);
	virtio_net_set_link(f->net, false);

	snapbuf_init_writer(&out);
	assert_int_equal(virtio_net_ops.save(f->net, &out), 0);
	/* The held buffer went back to the driver, empty. */
	assert_false(f->net->rx_held);
	assert_int_equal(vqd_used_idx(&f->d[NET_RXQ]), 1);
	assert_int_equal(vqd_used_len(&f->d[NET_RXQ], 0), 0);

	struct virtio_net *n2 = calloc(1, sizeof(*n2));
	assert_non_null(n2);
	struct net_opts o = test_opts;
	o.mac[5] = 0x99;
	assert_int_equal(virtio_net_init(n2, &f->be, &o), 0);
	snapbuf_init_reader(&in, out.data, out.len);
	assert_int_equal(virtio_net_ops.load(n2, &in), 0);
	assert_memory_equal(n2->mac, test_opts.mac, 6);
	assert_int_equal(n2->status, 0);

	/* Corruptions: each leaves the device as it was. */
	uint8_t bad[64];
	size_t len = out.len;
	assert_true(len <= sizeof(bad));
	struct {
		size_t off;
		uint8_t val;
	} pokes[] = {{0, 'X'}, {4, 2} /* version */, {8, 0x01} /* multicast */, {14, 0x02}};
	for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
		memcpy(bad, out.data, len);
		bad[pokes[i].off] = pokes[i].val;
		snapbuf_init_reader(&in, bad, len);
		assert_int_not_equal(virtio_net_ops.load(n2, &in), 0);
		assert_int_equal(n2->mac[0], 0x52);
	}
	memset(bad + 8, 0, 6); /* all-zero MAC */
	bad[14] = 1;
	snapbuf_init_reader(&in, bad, len);
	assert_int_equal(virtio_net_ops.load(n2, &in), -EINVAL);
	for (size_t cut = 0; cut < len; cut++) {
		snapbuf_init_reader(&in, out.data, cut);
		assert_int_not_equal(virtio_net_ops.load(n2, &in), 0);
	}
	virtio_net_destroy(n2);
	free(n2);
	snapbuf_free(&out);
}

/* ---- the real tap, in a private network namespace ---- */

#define CHECK(c)                                                                           \
	do {                                                                               \
		if (!(c)) {                                                                \
			fprintf(stderr, "tap child: %s:%d: check failed: %s\n", __FILE__,   \
				__LINE__, #c);                                             \
			_exit(1);                                                          \
		}                                                                          \
	} while (0)

#define TAP_SKIP 77
#define ETHERTYPE_TEST 0x88b5 /* IEEE 802 local experimental */

static int if_up(const char *name)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int r = s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ? -1 : 0;
	ifr.ifr_flags |= IFF_UP;
	if (!r && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		r = -1;
	if (s >= 0)
		close(s);
	return r;
}

static void test_frame(uint8_t *p, size_t len, const uint8_t *src, uint8_t seed)
{
	memset(p, 0xff, 6); /* broadcast */
	memcpy(p + 6, src, 6);
	p[12] = ETHERTYPE_TEST >> 8;
	p[13] = ETHERTYPE_TEST & 0xff;
	fill_frame(p + 14, len - 14, seed);
}

/* Runs in the child, inside its own network namespace. */
static int tap_child(void)
{
	struct errmsg err;
	struct tap t, t2;
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "tap child: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return TAP_SKIP;
	}
	int r = tap_open(&t, "shrk0", &err);
	if (r == -ENOENT || r == -EACCES || r == -EPERM) {
		fprintf(stderr, "tap child: %s\n", err.text);
		return TAP_SKIP;
	}
	CHECK(r == 0);
	CHECK(strcmp(t.ifname, "shrk0") == 0);
	CHECK(tap_open(&t2, "shrk0", &err) == -EBUSY && strstr(err.text, "busy"));
	CHECK(tap_open(&t2, "lo", &err) == -EINVAL && strstr(err.text, "not a single-queue tap"));
	CHECK(tap_open(&t2, "abcdefghijklmnopq", &err) == -EINVAL);
	CHECK(tap_open(&t2, NULL, &err) == 0 && strncmp(t2.ifname, "tap", 3) == 0);
	tap_close(&t2);
	CHECK(if_up("shrk0") == 0);

	int ifindex = (int)if_nametoindex("shrk0");
	int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	CHECK(ifindex > 0 && ps >= 0);
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				  .sll_ifindex = ifindex};
	CHECK(bind(ps, (struct sockaddr *)&sll, sizeof(sll)) == 0);

	/* A device on the real tap, with a hand-built guest. */
	struct fx *f = calloc(1, sizeof(*f));
	CHECK(f && guest_mem_init(&f->mem, RAM) == 0);
	f->net = calloc(1, sizeof(*f->net));
	CHECK(f->net);
	queues_init(f);
	struct net_backend be = tap_backend(&t);
	CHECK(virtio_net_init(f->net, &be, &test_opts) == 0);
	CHECK(activate(f, FEAT(VIRTIO_NET_F_CSUM) | FEAT(VIRTIO_NET_F_GUEST_CSUM) |
			      FEAT(VIRTIO_NET_F_GUEST_TSO4) | FEAT(VIRTIO_NET_F_GUEST_TSO6) |
			      FEAT(VIRTIO_NET_F_HOST_TSO4)) == 0); /* TUNSETOFFLOAD accepted */
	CHECK(tr_watching(&f->tr, t.fd));

	/* Guest → tap: the frame shows up on the interface. */
	uint8_t *g = gp(f, DATA_GPA, 2048);
	make_hdr(g, 0, 0, 0);
	test_frame(g + VIRTIO_NET_HDR_LEN, 300, test_opts.mac, 1);
	struct vqd_buf txs[] = {{DATA_GPA, VIRTIO_NET_HDR_LEN + 300, false}};
	add_chain(f, NET_TXQ, txs, 1);
	notify(f, NET_TXQ);
	CHECK(f->net->stats.tx_packets == 1);
	uint8_t buf[2048];
	bool seen = false;
	for (int tries = 0; tries < 50 && !seen; tries++) {
		struct pollfd p = {.fd = ps, .events = POLLIN};
		if (poll(&p, 1, 100) != 1)
			continue;
		ssize_t n = recv(ps, buf, sizeof(buf), 0);
		seen = n == 300 && memcmp(buf, g + VIRTIO_NET_HDR_LEN, 300) == 0;
	}
	CHECK(seen);

	/* Interface → guest: a frame sent on shrk0 lands in a receive buffer
	 * (other traffic, e.g. IPv6 autoconfiguration, may come first). */
	uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x42};
	test_frame(buf, 200, src, 2);
	CHECK(sendto(ps, buf, 200, 0, (struct sockaddr *)&sll, sizeof(sll)) == 200);
	seen = false;
	for (int tries = 0; tries < 50 && !seen; tries++) {
		uint64_t gpa = DATA_GPA + 0x10000 + 0x1000ULL * (uint64_t)tries;
		struct vqd_buf rxs[] = {{gpa, 2048, true}};
		uint16_t before = vqd_used_idx(&f->d[NET_RXQ]);
		add_chain(f, NET_RXQ, rxs, 1);
		notify(f, NET_RXQ);
		while (vqd_used_idx(&f->d[NET_RXQ]) == before) {
			struct pollfd p = {.fd = t.fd, .events = POLLIN};
			CHECK(poll(&p, 1, 2000) == 1);
			virtio_net_ops.fd_ready(f->net, t.fd);
		}
		uint8_t *h = gp(f, gpa, 2048);
		seen = vqd_used_len(&f->d[NET_RXQ], before) == VIRTIO_NET_HDR_LEN + 200 &&
		       memcmp(h + VIRTIO_NET_HDR_LEN, buf, 200) == 0;
		if (seen)
			CHECK(h[10] == 1 && h[11] == 0); /* num_buffers */
	}
	CHECK(seen);

	virtio_net_ops.reset(f->net);
	CHECK(f->tr.nwatched == 0);
	virtio_net_destroy(f->net);
	tap_close(&t);
	close(ps);
	return 0;
}

static void test_real_tap(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/dev/net/tun", F_OK) != 0) {
		fprintf(stderr, "SKIPPED test_real_tap: needs root and /dev/net/tun\n");
		skip();
	}
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(tap_child());
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == TAP_SKIP) {
		fprintf(stderr, "SKIPPED test_real_tap: no private network namespace or tap\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the guest-misbehaviour warnings are expected */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_features_without_offload_or_mtu, setup, teardown),
	    cmocka_unit_test(test_mac_parse),
	    cmocka_unit_test(test_opts_parse),
	    cmocka_unit_test_setup_teardown(test_link_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_frame_reaches_backend, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_short_and_long_chains, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_header_offloads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_backend_full_drops, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_malformed_ring_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_budget_continues_from_kick, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tx_many_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_frame_lands_in_guest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_oversize_frame_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_empty_ring_stops_watching, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_budget, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_bad_chains_and_backend_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_malformed_ring_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_header_offloads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_many_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_stops_everything, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	    cmocka_unit_test(test_real_tap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
