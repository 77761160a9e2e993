/* Linux tap host backend: see tap.h. */
#include "virtio/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/log.h"

_Static_assert(NET_OFFLOAD_CSUM == TUN_F_CSUM && NET_OFFLOAD_TSO4 == TUN_F_TSO4 &&
		   NET_OFFLOAD_TSO6 == TUN_F_TSO6 && NET_OFFLOAD_TSO_ECN == TUN_F_TSO_ECN,
	       "NET_OFFLOAD_* are the TUN_F_* values");
_Static_assert(NET_IFNAME_MAX == IFNAMSIZ, "NET_IFNAME_MAX is IFNAMSIZ");

static int open_error(int e, struct errmsg *err)
{
	switch (e) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return errmsg_set(err, ENOENT,
				  "tap: /dev/net/tun is missing (%s): load the tun module (modprobe tun) "
				  "or create it (mknod /dev/net/tun c 10 200)",
				  strerror(e));
	case EACCES:
	case EPERM:
		return errmsg_set(err, e,
				  "tap: no permission to open /dev/net/tun: run as root or give "
				  "this user access to the device");
	default:
		return errmsg_set(err, e, "tap: cannot open /dev/net/tun: %s", strerror(e));
	}
}

static int attach_error(int e, const char *name, struct errmsg *err)
{
	switch (e) {
	case EPERM:
	case EACCES:
		return errmsg_set(err, e,
				  "tap %s: not allowed to create or attach it: needs CAP_NET_ADMIN, "
				  "or a tap made for this user (ip tuntap add dev %s mode tap user USER)",
				  name, name);
	case EBUSY:
		return errmsg_set(err, e,
				  "tap %s is busy: another process has it open (or it is a "
				  "multi-queue tap)",
				  name);
	case EINVAL:
		return errmsg_set(err, e,
				  "tap %s: invalid name, or an interface of that name exists "
				  "and is not a single-queue tap",
				  name);
	default:
		return errmsg_set(err, e, "tap %s: TUNSETIFF failed: %s", name, strerror(e));
	}
}

int tap_open(struct tap *t, const char *ifname, struct errmsg *err)
{
	size_t len = ifname ? strlen(ifname) : 0;
	t->fd = -1;
	t->ifname[0] = '\0';
	if (len >= IFNAMSIZ)
		return errmsg_set(err, EINVAL, "tap: interface name '%s' is longer than %d characters",
				  ifname, IFNAMSIZ - 1);

	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return open_error(errno, err);

	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (len)
		memcpy(ifr.ifr_name, ifname, len);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return attach_error(e, len ? ifname : "(any)", err);
	}
	/* The virtio 1.x header, num_buffers included (§5.1.6). */
	int hdr_len = VIRTIO_NET_HDR_LEN;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		int e = errno;
		close(fd);
		return errmsg_set(err, e, "tap %s: cannot set a %d-byte vnet header: %s",
				  ifr.ifr_name, hdr_len, strerror(e));
	}
	/* A persistent tap keeps offloads from its last user: start clean. */
	if (ioctl(fd, TUNSETOFFLOAD, 0UL) < 0)
		log_warn("tap %s: cannot clear offloads: %s", ifr.ifr_name, strerror(errno));

	t->fd = fd;
	memcpy(t->ifname, ifr.ifr_name, IFNAMSIZ);
	t->ifname[IFNAMSIZ - 1] = '\0';
	return 0;
}

void tap_close(struct tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* A signal landing mid-call is not the device's business: retry. */
static ssize_t tap_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct tap *t = opaque;
	for (;;) {
		ssize_t r = readv(t->fd, iov, iovcnt);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static ssize_t tap_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct tap *t = opaque;
	for (;;) {
		ssize_t r = writev(t->fd, iov, iovcnt);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static int tap_fd(void *opaque)
{
	const struct tap *t = opaque;
	return t->fd;
}

static int tap_set_offload(void *opaque, unsigned offload)
{
	struct tap *t = opaque;
	if (ioctl(t->fd, TUNSETOFFLOAD, (unsigned long)offload) < 0)
		return -errno;
	return 0;
}

const struct net_backend_ops tap_backend_ops = {
    .readv = tap_readv,
    .writev = tap_writev,
    .fd = tap_fd,
    .set_offload = tap_set_offload,
};

struct net_backend tap_backend(struct tap *t)
{
	return (struct net_backend){.ops = &tap_backend_ops, .opaque = t};
}
