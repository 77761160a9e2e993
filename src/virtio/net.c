/* virtio network device (virtio 1.2 §5.1). See net.h for the queues, the
 * receive arming rules and the invariants. */
#include "virtio/net.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"
#include "util/parse.h"

#define HDR VIRTIO_NET_HDR_LEN
#define HDR_FLAGS 0
#define HDR_GSO_TYPE 1
#define HDR_NUM_BUFFERS 10
#define MIN_MTU 68 /* RFC 791; Linux refuses a smaller VIRTIO_NET_F_MTU */

#define OFFLOAD_FEATURES                                                                   \
	((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |                 \
	 (1ULL << VIRTIO_NET_F_GUEST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO6) |           \
	 (1ULL << VIRTIO_NET_F_GUEST_ECN) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |             \
	 (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN))

/* One-shot warnings: the guest decides how often these conditions occur,
 * so each kind is logged once per device (design.md rule 7). */
enum {
	WARN_TX_SHORT = 1u << 0,
	WARN_TX_HDR = 1u << 1,
	WARN_TX_BACKEND = 1u << 2,
	WARN_RX_SMALL_CHAIN = 1u << 3,
	WARN_RX_TOO_BIG = 1u << 4,
	WARN_RX_HDR = 1u << 5,
	WARN_KICK = 1u << 6,
	WARN_RX_BACKEND = 1u << 7,
};
#define net_log_once(n, kind, level, ...)                                                  \
	do {                                                                               \
		if (!((n)->warned & (kind))) {                                             \
			(n)->warned |= (kind);                                             \
			log_msg(level, __VA_ARGS__);                                       \
		}                                                                          \
	} while (0)
#define net_warn_once(n, kind, ...) net_log_once(n, kind, LOG_WARN, __VA_ARGS__)

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* ---- MAC addresses and options ---- */

static bool mac_usable(const uint8_t *mac)
{
	static const uint8_t zero[NET_MAC_LEN];
	return !(mac[0] & 1) && memcmp(mac, zero, NET_MAC_LEN) != 0; /* unicast, not 0 */
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_mac_parse(const char *s, uint8_t mac[NET_MAC_LEN])
{
	uint8_t m[NET_MAC_LEN];
	if (strlen(s) != 3 * NET_MAC_LEN - 1)
		return -EINVAL;
	for (unsigned i = 0; i < NET_MAC_LEN; i++) {
		const char *p = s + 3 * i;
		int hi = hex_digit(p[0]), lo = hex_digit(p[1]);
		if (hi < 0 || lo < 0 || (i + 1 < NET_MAC_LEN && p[2] != ':'))
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	if (!mac_usable(m))
		return -EINVAL;
	memcpy(mac, m, NET_MAC_LEN);
	return 0;
}

void net_mac_for_index(uint8_t mac[NET_MAC_LEN], unsigned index)
{
	uint32_t low = 0x123456u + (index & 0xffffu); /* 3 bytes: no carry into 52:54:00 */
	const uint8_t m[NET_MAC_LEN] = {0x52, 0x54, 0x00, (uint8_t)(low >> 16), (uint8_t)(low >> 8),
					(uint8_t)low};
	memcpy(mac, m, NET_MAC_LEN);
}

void net_mac_format(const uint8_t mac[NET_MAC_LEN], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		 mac[4], mac[5]);
}

/* Linux's dev_valid_name(): 1..15 bytes, not "." or "..", no '/', ':' or
 * white space. Checked here so the user gets the reason, not EINVAL. */
static bool ifname_valid(const char *s, size_t len)
{
	if (len == 0 || len >= NET_IFNAME_MAX)
		return false;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '/' || c == ':' || c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

/* Applies one key=value item of the --net option (not NUL-terminated). */
static int opts_item(const char *item, size_t len, struct net_opts *o, unsigned *seen,
		     struct errmsg *err)
{
	static const char *const keys[] = {"tap", "mac", "mtu", "offload"};
	const char *eq = memchr(item, '=', len);
	if (!eq)
		return errmsg_set(err, EINVAL, "--net: '%.*s' is not key=value", (int)len, item);
	size_t klen = (size_t)(eq - item), vlen = len - klen - 1;
	unsigned k = 0;
	while (k < 4 && (strlen(keys[k]) != klen || memcmp(keys[k], item, klen)))
		k++;
	if (k == 4)
		return errmsg_set(err, EINVAL, "--net: unknown key '%.*s' (tap, mac, mtu, offload)",
				  (int)klen, item);
	if (*seen & (1u << k))
		return errmsg_set(err, EINVAL, "--net: %s= given twice", keys[k]);
	*seen |= 1u << k;

	char v[32];
	if (vlen >= sizeof(v))
		return errmsg_set(err, EINVAL, "--net: value of %s= is too long", keys[k]);
	memcpy(v, eq + 1, vlen);
	v[vlen] = '\0';
	uint64_t mtu;
	switch (k) {
	case 0:
		if (!ifname_valid(v, vlen))
			return errmsg_set(err, EINVAL,
					  "--net: tap name '%s' must be 1-%u characters without '/', ':' or spaces",
					  v, NET_IFNAME_MAX - 1);
		memcpy(o->ifname, v, vlen + 1);
		return 0;
	case 1:
		if (net_mac_parse(v, o->mac))
			return errmsg_set(err, EINVAL,
					  "--net: mac '%s' must be a unicast address like 52:54:00:12:34:56", v);
		return 0;
	case 2:
		if (parse_count(v, MIN_MTU, 65535, &mtu))
			return errmsg_set(err, EINVAL,
					  "--net: mtu '%s' must be a number from %d to 65535", v,
					  MIN_MTU);
		o->mtu = (uint16_t)mtu;
		return 0;
	default:
		if (strcmp(v, "on") && strcmp(v, "off"))
			return errmsg_set(err, EINVAL, "--net: offload '%s' must be on or off", v);
		o->offload = v[1] == 'n';
		return 0;
	}
}

int net_opts_parse(const char *s, struct net_opts *o, struct errmsg *err)
{
	struct net_opts r = {.offload = true};
	unsigned seen = 0;
	for (const char *p = s;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int ret = opts_item(p, len, &r, &seen, err);
		if (ret)
			return ret;
		if (!end)
			break;
		p = end + 1;
	}
	if (!(seen & 1))
		return errmsg_set(err, EINVAL, "--net: tap=NAME is required");
	*o = r;
	return 0;
}

/* ---- helpers shared by both directions ---- */

static bool has(const struct virtio_net *n, unsigned feature)
{
	return n->ctx.features & (1ULL << feature);
}

static int backend_fd(const struct virtio_net *n) { return n->be.ops->fd(n->be.opaque); }

/* Points iov at the bytes of seg[0..nseg) after the first `skip`. Returns
 * the number of entries, or -E2BIG when more than `max` would be needed. */
static int iov_from_segs(struct iovec *iov, int max, const struct vq_seg *seg, unsigned nseg,
			 uint64_t skip)
{
	int cnt = 0;
	for (unsigned i = 0; i < nseg; i++) {
		if (skip >= seg[i].len) {
			skip -= seg[i].len;
			continue;
		}
		if (cnt == max)
			return -E2BIG;
		iov[cnt++] = (struct iovec){.iov_base = seg[i].host + skip,
					    .iov_len = seg[i].len - skip};
		skip = 0;
	}
	return cnt;
}

/* gso_type (§5.1.6): NONE, or a TCP type whose offload was negotiated,
 * with the ECN bit only when ECN was negotiated too. UDP (UFO) is never
 * negotiated here. */
static bool gso_allowed(uint8_t gso, bool tso4, bool tso6, bool ecn)
{
	if ((gso & VIRTIO_NET_HDR_GSO_ECN) && !ecn)
		return false;
	switch (gso & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return !(gso & VIRTIO_NET_HDR_GSO_ECN);
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return tso4;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return tso6;
	default:
		return false;
	}
}

/* The offloads the host may put in received frames: what the driver
 * accepted, restricted to combinations the spec allows (§5.1.3.1: TSO needs
 * GUEST_CSUM, ECN needs TSO) so that a driver breaking the dependencies
 * still gets only frames it asked for. */
static unsigned rx_offload(const struct virtio_net *n)
{
	unsigned off = 0;
	if (!n->offload || !has(n, VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	off |= NET_OFFLOAD_CSUM;
	if (has(n, VIRTIO_NET_F_GUEST_TSO4))
		off |= NET_OFFLOAD_TSO4;
	if (has(n, VIRTIO_NET_F_GUEST_TSO6))
		off |= NET_OFFLOAD_TSO6;
	if ((off & (NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6)) && has(n, VIRTIO_NET_F_GUEST_ECN))
		off |= NET_OFFLOAD_TSO_ECN;
	return off;
}

static void rx_unwatch(struct virtio_net *n);

/* A broken ring: stop watching everything first (the transport stops
 * dispatching, and a readable fd left in its epoll set would spin it),
 * then let the transport set DEVICE_NEEDS_RESET. */
static void net_fail(struct virtio_net *n, const char *why)
{
	rx_unwatch(n);
	if (n->kick_watching)
		n->ctx.watch_fd(n->ctx.transport, n->kick_fd, false);
	n->kick_watching = false;
	n->active = false; /* nothing more until reset() */
	n->ctx.failed(n->ctx.transport, why);
}

/* ---- transmit (§5.1.6.2) ---- */

/* Checks the driver's header (on our private copy) against what was
 * negotiated (§5.1.6.2.1) and normalises it for the backend. */
static int tx_fix_hdr(const struct virtio_net *n, uint8_t *hdr)
{
	bool csum = n->offload && has(n, VIRTIO_NET_F_CSUM);
	if ((hdr[HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !csum)
		return -EINVAL;
	/* DATA_VALID and RSC_INFO mean nothing on transmit: drop them. */
	hdr[HDR_FLAGS] &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
	if (!gso_allowed(hdr[HDR_GSO_TYPE], csum && has(n, VIRTIO_NET_F_HOST_TSO4),
			 csum && has(n, VIRTIO_NET_F_HOST_TSO6),
			 csum && has(n, VIRTIO_NET_F_HOST_ECN)))
		return -EINVAL;
	put_le16(hdr + HDR_NUM_BUFFERS, 0);
	return 0;
}

/* Sends one chain's frame. The chain goes back to the driver either way:
 * a transmit has no status to report (§5.1.6.2). */
static void tx_one(struct virtio_net *n, const struct vq_chain *c)
{
	uint8_t hdr[HDR];
	if (c->read_len < HDR + NET_ETH_HLEN || c->read_len - HDR > NET_MAX_FRAME) {
		n->stats.tx_errors++;
		net_warn_once(n, WARN_TX_SHORT,
			      "virtio-net: dropping a transmit chain of %llu bytes (needs %u..%u)",
			      (unsigned long long)c->read_len, HDR + NET_ETH_HLEN,
			      HDR + NET_MAX_FRAME);
		return;
	}
	uint64_t frame = c->read_len - HDR;
	vq_chain_read(c, 0, hdr, HDR); /* cannot fail: read_len >= HDR */
	if (tx_fix_hdr(n, hdr)) {
		n->stats.tx_errors++;
		net_warn_once(n, WARN_TX_HDR,
			      "virtio-net: dropping a frame with flags %#x gso_type %#x (not negotiated)",
			      hdr[HDR_FLAGS], hdr[HDR_GSO_TYPE]);
		return;
	}
	int cnt = iov_from_segs(n->iov + 1, NET_MAX_IOV - 1, c->seg, c->nread, HDR);
	if (cnt < 0) {
		/* More pieces than writev takes: gather them first. */
		vq_chain_read(c, HDR, n->bounce, frame);
		n->iov[1] = (struct iovec){.iov_base = n->bounce, .iov_len = frame};
		cnt = 1;
	}
	n->iov[0] = (struct iovec){.iov_base = hdr, .iov_len = HDR};
	ssize_t w = n->be.ops->writev(n->be.opaque, n->iov, cnt + 1);
	if (w == -EAGAIN) {
		n->stats.tx_dropped++; /* the host is behind: drop, don't spin */
	} else if (w < 0) {
		n->stats.tx_errors++;
		net_warn_once(n, WARN_TX_BACKEND, "virtio-net: backend refused a frame: %s",
			      strerror((int)-w));
	} else {
		n->stats.tx_packets++;
		n->stats.tx_bytes += frame;
	}
}

/* Asks for tx_process() to run again from fd_ready(kick_fd). */
static void tx_kick(struct virtio_net *n)
{
	uint64_t one = 1;
	if (write(n->kick_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		net_warn_once(n, WARN_KICK, "virtio-net: cannot signal the transmit eventfd");
}

/* Drains the transmit ring with the race-free pattern of virtqueue.h, at
 * most NET_TX_BUDGET chains per pass when the kick eventfd can continue it
 * (guest notifications stay off meanwhile: the kick is pending). */
static void tx_process(struct virtio_net *n)
{
	struct virtqueue *vq = &n->ctx.vq[NET_TXQ];
	unsigned budget = n->kick_watching ? NET_TX_BUDGET : UINT_MAX;
	unsigned done = 0;
	int r = 0;

	do {
		vq_set_notify(vq, false);
		while (done < budget && (r = vq_pop(vq, &n->tx_chain)) == 1) {
			tx_one(n, &n->tx_chain);
			vq_push(vq, &n->tx_chain, 0);
			done++;
		}
		if (r < 0 || done >= budget)
			break;
		vq_set_notify(vq, true);
	} while (vq_has_avail(vq));

	if (done)
		n->ctx.used(n->ctx.transport, NET_TXQ);
	if (r < 0)
		net_fail(n, "malformed transmit ring");
	else if (done >= budget)
		tx_kick(n);
}

/* ---- receive (§5.1.6.3, §5.1.6.4) ---- */

static void rx_watch(struct virtio_net *n)
{
	int fd = backend_fd(n);
	if (n->rx_watching || fd < 0)
		return;
	if (n->ctx.watch_fd(n->ctx.transport, fd, true) < 0) {
		log_error("virtio-net: cannot watch the backend fd; receive is off");
		return;
	}
	n->rx_watching = true;
	/* We poll the ring whenever the fd is readable: no kicks needed. */
	vq_set_notify(&n->ctx.vq[NET_RXQ], false);
}

static void rx_unwatch(struct virtio_net *n)
{
	if (!n->rx_watching)
		return;
	n->ctx.watch_fd(n->ctx.transport, backend_fd(n), false);
	n->rx_watching = false;
	vq_set_notify(&n->ctx.vq[NET_RXQ], true);
}

/* Pops a receive chain into rx_chain: 1, 0 when the ring is empty (with
 * notifications back on, checked race-free), or -EIO. */
static int rx_take(struct virtio_net *n)
{
	struct virtqueue *vq = &n->ctx.vq[NET_RXQ];
	int r = vq_pop(vq, &n->rx_chain);
	if (r == 0) {
		vq_set_notify(vq, true);
		if (!vq_has_avail(vq))
			return 0;
		vq_set_notify(vq, false);
		r = vq_pop(vq, &n->rx_chain);
	}
	n->rx_held = r == 1;
	return r;
}

/* Checks the host's header against what the driver accepted (§5.1.6.4.1:
 * without GUEST_CSUM flags must be 0) and sets num_buffers. A frame that
 * needs an offload the driver did not take is refused: the host should
 * never produce one, since set_offload() told it what to send. */
static int rx_fix_hdr(const struct virtio_net *n, uint8_t *hdr)
{
	unsigned off = rx_offload(n);
	if (!(off & NET_OFFLOAD_CSUM)) {
		if (hdr[HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return -EINVAL;
		hdr[HDR_FLAGS] = 0;
	} else {
		hdr[HDR_FLAGS] &= VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
	}
	if (!gso_allowed(hdr[HDR_GSO_TYPE], off & NET_OFFLOAD_TSO4, off & NET_OFFLOAD_TSO6,
			 off & NET_OFFLOAD_TSO_ECN))
		return -EINVAL;
	put_le16(hdr + HDR_NUM_BUFFERS, 1);
	return 0;
}

static void rx_complete(struct virtio_net *n, uint32_t len)
{
	vq_push(&n->ctx.vq[NET_RXQ], &n->rx_chain, len);
	n->rx_held = false;
}

/* Reads one frame into the held chain. Returns 1 when the chain went back
 * to the driver, 0 when a frame was dropped (the chain is kept), -EAGAIN
 * when no frame waits, another negative errno on a backend failure. */
static int rx_one(struct virtio_net *n)
{
	struct vq_chain *c = &n->rx_chain;
	uint8_t hdr[HDR];

	if (c->write_len < HDR + NET_ETH_HLEN) {
		/* Can never hold a frame: hand it back empty. */
		n->stats.rx_errors++;
		net_warn_once(n, WARN_RX_SMALL_CHAIN,
			      "virtio-net: receive buffer of %llu bytes is too small",
			      (unsigned long long)c->write_len);
		rx_complete(n, 0);
		return 1;
	}
	uint64_t cap = c->write_len - HDR;
	int cnt = iov_from_segs(n->iov + 1, NET_MAX_IOV - 1, c->seg + c->nread,
				c->nseg - c->nread, HDR);
	bool bounced = cnt < 0;
	if (bounced) {
		if (cap > sizeof(n->bounce))
			cap = sizeof(n->bounce);
		n->iov[1] = (struct iovec){.iov_base = n->bounce, .iov_len = cap};
		cnt = 1;
	}
	n->iov[0] = (struct iovec){.iov_base = hdr, .iov_len = HDR};

	ssize_t got = n->be.ops->readv(n->be.opaque, n->iov, cnt + 1);
	if (got == -EAGAIN)
		return -EAGAIN;
	if (got == -EINVAL) {
		n->stats.rx_dropped++; /* the host dropped a frame it could not describe */
		return 0;
	}
	if (got < 0)
		return (int)got;
	if ((uint64_t)got < HDR + NET_ETH_HLEN) {
		n->stats.rx_errors++; /* runt: nothing a driver could use */
		return 0;
	}
	uint64_t frame = (uint64_t)got - HDR;
	if (frame > cap) {
		n->stats.rx_dropped++;
		net_warn_once(n, WARN_RX_TOO_BIG,
			      "virtio-net: dropping a %llu-byte frame: receive buffer holds %llu",
			      (unsigned long long)frame, (unsigned long long)cap);
		return 0;
	}
	if (rx_fix_hdr(n, hdr)) {
		n->stats.rx_errors++;
		net_warn_once(n, WARN_RX_HDR,
			      "virtio-net: host frame with flags %#x gso_type %#x the driver did not accept",
			      hdr[HDR_FLAGS], hdr[HDR_GSO_TYPE]);
		return 0;
	}
	if (bounced)
		vq_chain_write(c, HDR, n->bounce, frame);
	vq_chain_write(c, 0, hdr, HDR);
	rx_complete(n, (uint32_t)got);
	n->stats.rx_packets++;
	n->stats.rx_bytes += frame;
	return 1;
}

/* Moves up to NET_RX_BUDGET frames from the backend into the ring. */
static void rx_process(struct virtio_net *n)
{
	unsigned pushed = 0;
	bool broken = false;

	for (unsigned i = 0; i < NET_RX_BUDGET && n->rx_watching; i++) {
		if (!n->rx_held) {
			int r = rx_take(n);
			if (r <= 0) {
				broken = r < 0;
				rx_unwatch(n);
				break;
			}
		}
		int r = rx_one(n);
		if (r == -EAGAIN)
			break;
		if (r < 0) {
			/* The backend is gone (e.g. the interface was deleted):
			 * stop rather than spin on an fd that stays "readable". */
			net_log_once(n, WARN_RX_BACKEND, LOG_ERROR,
				     "virtio-net: backend read failed: %s; receive stopped",
				     strerror(-r));
			rx_unwatch(n);
			break;
		}
		pushed += (unsigned)r;
	}
	if (pushed)
		n->ctx.used(n->ctx.transport, NET_RXQ);
	if (broken)
		net_fail(n, "malformed receive ring");
}

/* ---- virtio_device_ops ---- */

static uint64_t net_features(void *dev)
{
	struct virtio_net *n = dev;
	uint64_t f = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS);
	if (n->mtu)
		f |= 1ULL << VIRTIO_NET_F_MTU;
	if (n->offload)
		f |= OFFLOAD_FEATURES;
	return f;
}

static void net_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	struct virtio_net *n = dev;
	uint8_t cfg[NET_CONFIG_SIZE];
	memcpy(cfg, n->mac, NET_MAC_LEN);
	put_le16(cfg + 6, n->status);
	put_le16(cfg + 8, 1); /* max_virtqueue_pairs */
	put_le16(cfg + 10, n->mtu);
	virtio_config_copy(data, len, cfg, sizeof(cfg), off);
}

static void net_config_write(void *dev, uint32_t off, const uint8_t *data, unsigned len)
{
	/* The MAC is writable only for legacy drivers (§5.1.4.2); ignored. */
	(void)dev, (void)off, (void)data, (void)len;
}

static int net_activate(void *dev, const struct virtio_queue_ctx *ctx)
{
	struct virtio_net *n = dev;
	if (ctx->nvq < 2)
		return -EINVAL;
	n->ctx = *ctx;
	n->rx_held = n->rx_watching = n->kick_watching = false;
	if (n->be.ops->set_offload) {
		int r = n->be.ops->set_offload(n->be.opaque, rx_offload(n));
		if (r < 0) {
			log_error("virtio-net: backend cannot set offloads %#x: %s", rx_offload(n),
				  strerror(-r));
			return r;
		}
	}
	n->active = true;
	if (n->ctx.watch_fd(n->ctx.transport, n->kick_fd, true) == 0)
		n->kick_watching = true;
	else
		log_warn("virtio-net: cannot watch the transmit eventfd; transmit is unbounded");
	rx_watch(n);
	tx_process(n); /* frames queued before DRIVER_OK */
	return n->active ? 0 : -EIO;
}

static void net_queue_notify(void *dev, unsigned q)
{
	struct virtio_net *n = dev;
	if (!n->active)
		return;
	if (q == NET_TXQ)
		tx_process(n);
	else if (q == NET_RXQ)
		rx_watch(n); /* new buffers: wait for frames again */
}

static void net_fd_ready(void *dev, int fd)
{
	struct virtio_net *n = dev;
	if (!n->active)
		return;
	if (fd == n->kick_fd) {
		uint64_t v;
		if (read(n->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			net_warn_once(n, WARN_KICK, "virtio-net: cannot read the transmit eventfd");
		tx_process(n);
	} else if (n->rx_watching && fd == backend_fd(n)) {
		rx_process(n);
	}
}

static void net_reset(void *dev)
{
	struct virtio_net *n = dev;
	if (n->active) {
		if (n->rx_watching)
			n->ctx.watch_fd(n->ctx.transport, backend_fd(n), false);
		if (n->kick_watching)
			n->ctx.watch_fd(n->ctx.transport, n->kick_fd, false);
	}
	uint64_t v;
	if (read(n->kick_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing pending, as expected */
	}
	n->active = n->rx_held = n->rx_watching = n->kick_watching = false;
	memset(&n->ctx, 0, sizeof(n->ctx));
}

#define SNAP_TAG "VNET"
#define SNAP_VERSION 1u

static int net_save(void *dev, struct snapbuf *out)
{
	struct virtio_net *n = dev;
	/* A popped receive buffer is device state the queue snapshot cannot
	 * describe: give it back (empty; drivers drop it as a runt and
	 * refill) so no buffer is lost on restore. */
	if (n->active && n->rx_held) {
		rx_complete(n, 0);
		n->ctx.used(n->ctx.transport, NET_RXQ);
	}
	snapbuf_begin(out, SNAP_TAG, SNAP_VERSION);
	snapbuf_put(out, n->mac, NET_MAC_LEN);
	return snapbuf_put_u16(out, n->status);
}

static int net_load(void *dev, struct snapbuf *in)
{
	struct virtio_net *n = dev;
	uint8_t mac[NET_MAC_LEN];
	uint16_t status = 0;
	snapbuf_expect(in, SNAP_TAG, SNAP_VERSION, NULL);
	snapbuf_get(in, mac, sizeof(mac));
	int r = snapbuf_get_u16(in, &status);
	if (r)
		return r;
	if (!mac_usable(mac) || (status & ~VIRTIO_NET_S_LINK_UP))
		return -EINVAL;
	memcpy(n->mac, mac, sizeof(mac));
	n->status = status;
	return 0;
}

const struct virtio_device_ops virtio_net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .pci_class = 0x020000, /* network controller, Ethernet */
    .num_queues = 2,
    .queue_size = NET_QUEUE_SIZE,
    .config_size = NET_CONFIG_SIZE,
    .features = net_features,
    .config_read = net_config_read,
    .config_write = net_config_write,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
    .fd_ready = net_fd_ready,
    .reset = net_reset,
    .save = net_save,
    .load = net_load,
};

int virtio_net_init(struct virtio_net *n, const struct net_backend *be, const struct net_opts *o)
{
	const struct net_backend_ops *ops = be->ops;
	if (!ops || !ops->readv || !ops->writev || !ops->fd || !mac_usable(o->mac) ||
	    (o->mtu && o->mtu < MIN_MTU))
		return -EINVAL;
	memset(n, 0, sizeof(*n));
	n->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->kick_fd < 0)
		return -errno;
	n->be = *be;
	memcpy(n->mac, o->mac, NET_MAC_LEN);
	n->status = VIRTIO_NET_S_LINK_UP;
	n->mtu = o->mtu;
	n->offload = o->offload && ops->set_offload;
	return 0;
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (n->kick_fd >= 0)
		close(n->kick_fd);
	n->kick_fd = -1;
}

void virtio_net_set_link(struct virtio_net *n, bool up)
{
	uint16_t status = up ? VIRTIO_NET_S_LINK_UP : 0;
	if (status == n->status)
		return;
	n->status = status;
	if (n->active && has(n, VIRTIO_NET_F_STATUS))
		n->ctx.config_changed(n->ctx.transport);
}
