/* virtio-rng (virtio 1.2 §5.4). See rng.h for the behaviour and locking. */
#include "virtio/rng.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/log.h"

#define RNG_PCI_CLASS 0xff0000u /* "device does not fit any defined class" */
#define RNG_MAX_EINTR 64u       /* interruptions in a row before a chain is cut short */
#define RNG_SNAP_VERSION 1u

static ssize_t rng_getrandom(void *opaque, void *buf, size_t len)
{
	(void)opaque;
	ssize_t n = getrandom(buf, len, 0);
	return n < 0 ? -errno : n;
}

int virtio_rng_init(struct virtio_rng *r, const struct virtio_rng_source *src)
{
	memset(r, 0, sizeof(*r));
	r->src = src && src->read ? *src : (struct virtio_rng_source){.read = rng_getrandom};
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return r->efd < 0 ? -errno : 0;
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	if (r->efd >= 0)
		close(r->efd);
	r->efd = -1;
}

/* Makes the eventfd readable. A full counter (EAGAIN) is readable already. */
static void rng_kick(struct virtio_rng *r)
{
	uint64_t one = 1;
	ssize_t n = write(r->efd, &one, sizeof(one));
	(void)n;
}

/* Fills p[0..len) from the source. Returns the bytes written: short only
 * when the source fails, which the guest then sees as a short answer
 * (§5.4.6.2 allows less than the whole buffer). */
static size_t rng_fill(struct virtio_rng *r, uint8_t *p, size_t len)
{
	size_t done = 0;
	unsigned eintr = 0;
	while (done < len) {
		ssize_t n = r->src.read(r->src.opaque, p + done, len - done);
		if (n == -EINTR && ++eintr < RNG_MAX_EINTR)
			continue;
		if (n <= 0 || (size_t)n > len - done) {
			if (!r->warned)
				log_warn("virtio-rng: entropy source failed (%zd)", n);
			r->warned = true;
			break;
		}
		eintr = 0;
		done += (size_t)n;
	}
	return done;
}

/* Random bytes into the writable segments, up to VIRTIO_RNG_MAX_REQ. The
 * segments are validated host ranges (vq_pop), so the source writes into
 * guest memory directly. */
static uint32_t rng_serve(struct virtio_rng *r, const struct vq_chain *c)
{
	size_t want = c->write_len < VIRTIO_RNG_MAX_REQ ? (size_t)c->write_len : VIRTIO_RNG_MAX_REQ;
	size_t done = 0;
	for (unsigned i = c->nread; i < c->nseg && done < want; i++) {
		const struct vq_seg *s = &c->seg[i];
		size_t n = s->len < want - done ? s->len : want - done;
		size_t got = rng_fill(r, s->host, n);
		done += got;
		if (got < n)
			break;
	}
	return (uint32_t)done;
}

static void rng_fail(struct virtio_rng *r, const char *why)
{
	/* Stop watching first: the transport calls nothing after failed(). */
	if (r->watching)
		r->ctx.watch_fd(r->ctx.transport, r->efd, false);
	r->watching = false;
	r->active = false;
	r->ctx.failed(r->ctx.transport, why);
}

/* The lost-wake-up-free loop of virtqueue.h, bounded (rng.h): a budget of
 * 2 * size pops and re-checks, then the rest in a later fd_ready(). */
static void rng_process(struct virtio_rng *r)
{
	struct virtqueue *vq = &r->ctx.vq[0];
	uint32_t budget = 2 * vq->size;
	bool pushed = false;
	int ret = 0;

	for (;;) {
		vq_set_notify(vq, false);
		while (budget && (ret = vq_pop(vq, &r->chain)) == 1) {
			budget--;
			vq_push(vq, &r->chain, rng_serve(r, &r->chain));
			pushed = true;
		}
		vq_set_notify(vq, true);
		if (ret < 0 || !vq_has_avail(vq))
			break;
		if (!budget) {
			rng_kick(r);
			break;
		}
		budget--;
	}

	if (pushed)
		r->ctx.used(r->ctx.transport, 0);
	if (ret < 0)
		rng_fail(r, "malformed requestq");
}

static uint64_t rng_features(void *dev)
{
	(void)dev;
	return 0; /* §5.4.3: none defined */
}

static void rng_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	(void)dev;
	(void)off;
	memset(data, 0, len); /* config_size is 0: the transport never calls this */
}

static void rng_config_write(void *dev, uint32_t off, const uint8_t *data, unsigned len)
{
	(void)dev;
	(void)off;
	(void)data;
	(void)len;
}

static int rng_activate(void *dev, const struct virtio_queue_ctx *ctx)
{
	struct virtio_rng *r = dev;
	if (ctx->nvq < 1 || !ctx->vq || !ctx->used || !ctx->failed || !ctx->watch_fd)
		return -EINVAL;
	int ret = ctx->watch_fd(ctx->transport, r->efd, true);
	if (ret < 0)
		return ret;
	r->ctx = *ctx;
	r->watching = true;
	r->active = true;
	return 0;
}

static void rng_queue_notify(void *dev, unsigned q)
{
	struct virtio_rng *r = dev;
	if (r->active && q == 0)
		rng_process(r);
}

static void rng_fd_ready(void *dev, int fd)
{
	struct virtio_rng *r = dev;
	if (!r->active || fd != r->efd)
		return;
	uint64_t v;
	ssize_t n = read(r->efd, &v, sizeof(v));
	(void)n; /* EAGAIN: nothing was pending */
	rng_process(r);
}

/* A kick left in the eventfd is harmless: fd_ready() with nothing to do. */
static void rng_reset(void *dev)
{
	struct virtio_rng *r = dev;
	if (r->watching)
		r->ctx.watch_fd(r->ctx.transport, r->efd, false);
	r->watching = false;
	r->active = false;
	memset(&r->ctx, 0, sizeof(r->ctx));
}

/* No device state survives between requests: the section only marks that
 * the device is there and which format it is. */
static int rng_save(void *dev, struct snapbuf *out)
{
	(void)dev;
	return snapbuf_begin(out, "VRNG", RNG_SNAP_VERSION);
}

static int rng_load(void *dev, struct snapbuf *in)
{
	(void)dev;
	uint32_t version = 0;
	int r = snapbuf_expect(in, "VRNG", RNG_SNAP_VERSION, &version);
	if (r)
		return r;
	return version >= 1 ? 0 : -EINVAL;
}

const struct virtio_device_ops virtio_rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.pci_class = RNG_PCI_CLASS,
	.num_queues = 1,
	.queue_size = VIRTIO_RNG_QUEUE_SIZE,
	.config_size = 0,
	.features = rng_features,
	.config_read = rng_config_read,
	.config_write = rng_config_write,
	.activate = rng_activate,
	.queue_notify = rng_queue_notify,
	.fd_ready = rng_fd_ready,
	.reset = rng_reset,
	.save = rng_save,
	.load = rng_load,
};
