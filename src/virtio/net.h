/* virtio network device (virtio 1.2 §5.1 "Network Device").
 *
 *   §5.1.2   queues: receiveq1 = 0, transmitq1 = 1; no control queue, no
 *            multiqueue (VIRTIO_NET_F_CTRL_VQ and _MQ are not offered)
 *   §5.1.3   features offered: MAC, STATUS, MTU (when configured) and,
 *            when the backend can follow, the checksum/TSO offloads
 *            CSUM, GUEST_CSUM, HOST_TSO4/6, HOST_ECN, GUEST_TSO4/6,
 *            GUEST_ECN. Not offered: MRG_RXBUF, UFO/USO, CTRL_*, MQ, RSS.
 *   §5.1.4   configuration: mac[6] @0, le16 status @6 (LINK_UP),
 *            le16 max_virtqueue_pairs @8 (= 1), le16 mtu @10; writes ignored
 *   §5.1.6   every buffer starts with the 12-byte struct virtio_net_hdr:
 *            VIRTIO_F_VERSION_1 makes num_buffers always present
 *   §5.1.6.2 transmit: one chain = header + frame, device-readable
 *   §5.1.6.3/4 receive: without MRG_RXBUF each chain holds header + a whole
 *            frame, and num_buffers is 1
 *
 * Frames move between guest memory and a host backend (struct
 * net_backend, e.g. virtio/tap.h) by readv/writev on iovecs that point
 * straight at the guest's buffers; only the 12-byte header is copied, so
 * it is checked on a private copy the guest cannot change afterwards
 * (a header whose offloads were not negotiated is refused, §5.1.6.2.1).
 *
 * Receive is driven by the backend's fd: while the receive ring has
 * buffers the device asks the transport to watch the fd (watch_fd) and
 * keeps guest notifications of queue 0 off; when the ring runs dry it
 * stops watching, turns notifications on, and re-arms on the next
 * queue_notify(0). A popped receive chain that got no frame yet (the fd
 * ran dry) is kept for the next frame: `rx_held`. Work per callback is
 * bounded: NET_RX_BUDGET frames per fd_ready(), NET_TX_BUDGET chains per
 * transmit pass; a transmit pass that hits its budget continues from
 * fd_ready() on `kick_fd`, an eventfd the device watches while active and
 * signals itself, so the guest keeps no stale "notifications off" state.
 *
 * Invariants: frames handed to the backend are 14..NET_MAX_FRAME bytes
 * after the header; a frame that does not fit the receive chain is dropped
 * (the backend consumed it) and never written past the chain; a malformed
 * ring (vq_pop -EIO) calls ctx->failed() and the device stops using it.
 *
 * Snapshots (§ save/load): the device state is the MAC and the link status.
 * A held receive chain cannot be described by the queue state, so save()
 * first hands it back to the driver (used, length 0: drivers drop it as a
 * runt and refill): call save() before the transport saves the queues.
 *
 * Threads and locking: as virtio/device.h — every callback runs with the
 * transport's device mutex held; virtio_net_set_link() must be called with
 * it held too. struct virtio_net is large (~150 KiB): allocate it. */
#ifndef SHRIKE_VIRTIO_NET_H
#define SHRIKE_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "util/errmsg.h"
#include "virtio/device.h"

/* Feature bits (§5.1.3). */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

#define VIRTIO_NET_S_LINK_UP 1u /* config status (§5.1.4) */

/* struct virtio_net_hdr (§5.1.6): flags u8, gso_type u8, le16 hdr_len,
 * le16 gso_size, le16 csum_start, le16 csum_offset, le16 num_buffers. */
#define VIRTIO_NET_HDR_LEN 12u
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1u
#define VIRTIO_NET_HDR_F_DATA_VALID 2u
#define VIRTIO_NET_HDR_F_RSC_INFO 4u
#define VIRTIO_NET_HDR_GSO_NONE 0u
#define VIRTIO_NET_HDR_GSO_TCPV4 1u
#define VIRTIO_NET_HDR_GSO_UDP 3u
#define VIRTIO_NET_HDR_GSO_TCPV6 4u
#define VIRTIO_NET_HDR_GSO_ECN 0x80u

#define NET_RXQ 0u
#define NET_TXQ 1u
#define NET_QUEUE_SIZE 256u
#define NET_CONFIG_SIZE 12u
#define NET_ETH_HLEN 14u
#define NET_MAX_FRAME 65550u   /* 64 KiB IP packet + Ethernet header */
#define NET_MAX_IOV 1024       /* UIO_MAXIOV: readv/writev refuse more */
#define NET_RX_BUDGET 64u      /* frames per fd_ready() */
#define NET_TX_BUDGET 256u     /* chains per transmit pass */
#define NET_MAC_LEN 6u
#define NET_IFNAME_MAX 16u     /* IFNAMSIZ, terminating NUL included */

/* Offloads the guest accepts on receive, for net_backend_ops.set_offload;
 * the values are Linux's TUN_F_* (TUNSETOFFLOAD). */
#define NET_OFFLOAD_CSUM 0x01u
#define NET_OFFLOAD_TSO4 0x02u
#define NET_OFFLOAD_TSO6 0x04u
#define NET_OFFLOAD_TSO_ECN 0x08u

/* A host packet backend (design.md rule 4). Every frame, both ways, is
 * preceded by a 12-byte virtio_net_hdr in host byte order (little-endian).
 * All functions return a negative errno on failure. */
struct net_backend_ops {
	/* Reads one header+frame scattered over iov. Returns its full length,
	 * which exceeds the iov's total when the frame was truncated (it is
	 * consumed either way); -EAGAIN when none is waiting; -EINVAL when the
	 * host dropped a frame it could not describe. */
	ssize_t (*readv)(void *opaque, const struct iovec *iov, int iovcnt);
	/* Writes one header+frame; -EAGAIN when the host queue is full. */
	ssize_t (*writev)(void *opaque, const struct iovec *iov, int iovcnt);
	/* The fd that is readable while frames are waiting, or -1. */
	int (*fd)(void *opaque);
	/* Optional (NULL: offloads are not offered): which NET_OFFLOAD_* the
	 * host may use in frames it hands to readv. */
	int (*set_offload)(void *opaque, unsigned offload);
};

struct net_backend {
	const struct net_backend_ops *ops;
	void *opaque;
};

/* What `--net tap=NAME[,mac=52:54:00:12:34:56][,mtu=N][,offload=on|off]`
 * asks for. */
struct net_opts {
	char ifname[NET_IFNAME_MAX];
	uint8_t mac[NET_MAC_LEN];
	uint16_t mtu;  /* 0: VIRTIO_NET_F_MTU not offered */
	bool offload;  /* offer checksum/TSO offloads (default on) */
};

/* Parses the option string above. Without mac=, o->mac is all zeros
 * (which no mac= can give): the caller picks one, e.g. net_mac_for_index(). */
int net_opts_parse(const char *s, struct net_opts *o, struct errmsg *err);

/* "xx:xx:xx:xx:xx:xx" (hex, either case) to bytes: 0, or -EINVAL for any
 * other shape, a multicast address or all zeros. */
int net_mac_parse(const char *s, uint8_t mac[NET_MAC_LEN]);
/* The default for the index-th device, stable across runs:
 * 52:54:00:12:34:56 plus index (as QEMU numbers its NICs). */
void net_mac_for_index(uint8_t mac[NET_MAC_LEN], unsigned index);
void net_mac_format(const uint8_t mac[NET_MAC_LEN], char out[18]);

struct virtio_net_stats {
	uint64_t rx_packets, rx_bytes;
	uint64_t rx_dropped; /* frame larger than the chain, or host-side drop */
	uint64_t rx_errors;  /* unusable chain, refused header, backend error */
	uint64_t tx_packets, tx_bytes;
	uint64_t tx_dropped; /* backend full (EAGAIN) */
	uint64_t tx_errors;  /* malformed chain or header, backend refused */
};

struct virtio_net {
	struct net_backend be;
	uint8_t mac[NET_MAC_LEN];
	uint16_t status;      /* VIRTIO_NET_S_* */
	uint16_t mtu;
	bool offload;         /* offloads offered */
	int kick_fd;          /* eventfd: continue a transmit pass */

	/* Valid between activate() and reset(). */
	bool active;
	struct virtio_queue_ctx ctx;
	bool rx_watching;     /* backend fd watched (and rx notifications off) */
	bool kick_watching;
	bool rx_held;         /* rx_chain popped but not yet filled */
	unsigned warned;      /* one-shot warnings already logged (bit mask) */

	struct virtio_net_stats stats;

	/* Scratch, kept here to keep the I/O thread's stack small. */
	struct vq_chain rx_chain, tx_chain;
	struct iovec iov[NET_MAX_IOV];
	uint8_t bounce[NET_MAX_FRAME]; /* chains of more than NET_MAX_IOV segments */
};

extern const struct virtio_device_ops virtio_net_ops;

/* Binds the device to a backend (copied) with the options' MAC, MTU and
 * offload choice; the link starts up. Returns 0 or a negative errno. */
int virtio_net_init(struct virtio_net *n, const struct net_backend *be, const struct net_opts *o);
void virtio_net_destroy(struct virtio_net *n);

/* Link status (VIRTIO_NET_S_LINK_UP); signals a configuration change to an
 * active driver. Advisory: frames keep moving while the link is down
 * (drivers stop transmitting on their own). Caller holds the transport's
 * device mutex. */
void virtio_net_set_link(struct virtio_net *n, bool up);

#endif
