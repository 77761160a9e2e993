/* Linux tap host backend for virtio-net (Documentation/networking/tuntap.rst,
 * <linux/if_tun.h>).
 *
 * tap_open() attaches to (or, with CAP_NET_ADMIN, creates) the tap
 * interface NAME with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte
 * vnet header (TUNSETVNETHDRSZ), which is the virtio 1.x struct
 * virtio_net_hdr with num_buffers: frames cross the fd in exactly the form
 * virtio-net uses, header first. The fd is non-blocking: reads return
 * -EAGAIN when no frame waits, writes -EAGAIN when the queue is full. It
 * neither brings the interface up nor configures addresses: that is the
 * user's job (ip link set NAME up, a bridge, ...).
 *
 * Offloads start off (TUNSETOFFLOAD 0): the kernel then hands over fully
 * checksummed, unsegmented frames. set_offload() widens that to what the
 * guest accepted.
 *
 * Threads: none of its own. The fd is read and written by the virtio-net
 * device's I/O thread only (under the transport's device mutex). */
#ifndef SHRIKE_VIRTIO_TAP_H
#define SHRIKE_VIRTIO_TAP_H

#include "util/errmsg.h"
#include "virtio/net.h"

struct tap {
	int fd;                       /* -1 when closed */
	char ifname[NET_IFNAME_MAX];  /* the kernel's name for it */
};

/* Opens /dev/net/tun and attaches to `ifname` (NULL or "": the kernel
 * picks tapN). Returns 0, or a negative errno with a message in err:
 * -ENOENT no /dev/net/tun, -EACCES/-EPERM not allowed, -EBUSY the
 * interface is in use, -EINVAL the name is taken by a non-tap. */
int tap_open(struct tap *t, const char *ifname, struct errmsg *err);
void tap_close(struct tap *t);

extern const struct net_backend_ops tap_backend_ops;

/* The backend to hand to virtio_net_init(); t must outlive the device. */
struct net_backend tap_backend(struct tap *t);

#endif
