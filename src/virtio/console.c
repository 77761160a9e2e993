/* virtio-console, single port (virtio 1.2 §5.3). See console.h for the
 * behaviour, the input path and the lock order. */
#include "virtio/console.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>


#define CONS_PCI_CLASS 0x078000u /* simple communication controller, other */
#define CONS_EMERG_WR_OFF 8u     /* §5.3.4: le32 emerg_wr */
#define CONS_SNAP_VERSION 1u

int virtio_console_init(struct virtio_console *c, struct char_sink out)
{
	memset(c, 0, sizeof(*c));
	c->out = out;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0)
		return -errno;
	int r = pthread_mutex_init(&c->in_lock, NULL);
	if (r) {
		close(c->efd);
		c->efd = -1;
		return -r;
	}
	return 0;
}

void virtio_console_destroy(struct virtio_console *c)
{
	if (c->efd < 0)
		return;
	close(c->efd);
	c->efd = -1;
	pthread_mutex_destroy(&c->in_lock);
}

/* Makes the eventfd readable. A full counter (EAGAIN) is readable already. */
static void cons_kick(struct virtio_console *c)
{
	uint64_t one = 1;
	ssize_t n = write(c->efd, &one, sizeof(one));
	(void)n;
}

static void cons_drain_kicks(struct virtio_console *c)
{
	uint64_t v;
	ssize_t n = read(c->efd, &v, sizeof(v));
	(void)n; /* EAGAIN: nothing was pending */
}

size_t virtio_console_input(struct virtio_console *c, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&c->in_lock);
	size_t room = VIRTIO_CONSOLE_IN_BUF - c->in_len;
	size_t n = len < room ? len : room;
	size_t tail = (c->in_head + c->in_len) % VIRTIO_CONSOLE_IN_BUF;
	size_t first = n < VIRTIO_CONSOLE_IN_BUF - tail ? n : VIRTIO_CONSOLE_IN_BUF - tail;
	memcpy(c->in_buf + tail, buf, first);
	memcpy(c->in_buf, buf + first, n - first);
	c->in_len += n;
	pthread_mutex_unlock(&c->in_lock);
	if (n)
		cons_kick(c);
	return n;
}

static bool cons_input_pending(struct virtio_console *c)
{
	pthread_mutex_lock(&c->in_lock);
	bool pending = c->in_len > 0;
	pthread_mutex_unlock(&c->in_lock);
	return pending;
}

/* Moves as much buffered input as fits into the chain's writable part. */
static uint32_t cons_serve_rx(struct virtio_console *c, const struct vq_chain *ch)
{
	pthread_mutex_lock(&c->in_lock);
	size_t n = c->in_len < ch->write_len ? c->in_len : (size_t)ch->write_len;
	size_t to_end = VIRTIO_CONSOLE_IN_BUF - c->in_head;
	size_t first = n < to_end ? n : to_end;
	/* In range by construction: n <= write_len. */
	vq_chain_write(ch, 0, c->in_buf + c->in_head, first);
	vq_chain_write(ch, first, c->in_buf, n - first);
	c->in_head = (c->in_head + n) % VIRTIO_CONSOLE_IN_BUF;
	c->in_len -= n;
	pthread_mutex_unlock(&c->in_lock);
	return (uint32_t)n;
}

/* The readable part goes to the sink straight from guest memory (the
 * segments are validated host ranges); writable segments are ignored. */
static uint32_t cons_serve_tx(struct virtio_console *c, const struct vq_chain *ch)
{
	for (unsigned i = 0; i < ch->nread && c->out.write; i++)
		c->out.write(c->out.opaque, ch->seg[i].host, ch->seg[i].len);
	return 0;
}

/* Whether queue q has work for its next buffer: the transmitq always, the
 * receiveq only while input is waiting (an empty receive buffer must stay
 * with the device until there is something to put in it). */
static bool cons_want(struct virtio_console *c, unsigned q)
{
	return q == VIRTIO_CONSOLE_TX || cons_input_pending(c);
}

static void cons_fail(struct virtio_console *c, const char *why)
{
	/* Stop watching first: the transport calls nothing after failed(). */
	if (c->watching)
		c->ctx.watch_fd(c->ctx.transport, c->efd, false);
	c->watching = false;
	c->active = false;
	c->ctx.failed(c->ctx.transport, why);
}

/* Serves queue q with the lost-wake-up-free loop of virtqueue.h, bounded
 * (console.h): a budget of 2 * size pops and re-checks, then the rest in a
 * later fd_ready(). */
static void cons_run_queue(struct virtio_console *c, unsigned q)
{
	struct virtqueue *vq = &c->ctx.vq[q];
	uint32_t budget = 2 * vq->size;
	bool pushed = false;
	int ret = 0;

	for (;;) {
		vq_set_notify(vq, false);
		while (budget && cons_want(c, q) && (ret = vq_pop(vq, &c->chain)) == 1) {
			budget--;
			uint32_t len = q == VIRTIO_CONSOLE_RX ? cons_serve_rx(c, &c->chain)
							      : cons_serve_tx(c, &c->chain);
			vq_push(vq, &c->chain, len);
			pushed = true;
		}
		vq_set_notify(vq, true);
		if (ret < 0 || !cons_want(c, q) || !vq_has_avail(vq))
			break;
		if (!budget) {
			cons_kick(c);
			break;
		}
		budget--;
	}

	if (pushed)
		c->ctx.used(c->ctx.transport, q);
	if (ret < 0)
		cons_fail(c, q == VIRTIO_CONSOLE_RX ? "virtio-console: malformed receiveq"
						    : "virtio-console: malformed transmitq");
}

static uint64_t cons_features(void *dev)
{
	(void)dev;
	return 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE;
}

/* cols, rows and max_nr_ports are meaningful only with F_SIZE/F_MULTIPORT,
 * and emerg_wr is write-only: everything reads as zero. */
static void cons_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	(void)dev;
	(void)off;
	memset(data, 0, len);
}

/* Any write covering emerg_wr's low byte outputs that byte; the rest of
 * the space is read-only. Works whatever the device status. */
static void cons_config_write(void *dev, uint32_t off, const uint8_t *data, unsigned len)
{
	struct virtio_console *c = dev;
	if (off <= CONS_EMERG_WR_OFF && CONS_EMERG_WR_OFF - off < len && c->out.write)
		c->out.write(c->out.opaque, &data[CONS_EMERG_WR_OFF - off], 1);
}

static int cons_activate(void *dev, const struct virtio_queue_ctx *ctx)
{
	struct virtio_console *c = dev;
	if (ctx->nvq < 2 || !ctx->vq || !ctx->used || !ctx->failed || !ctx->watch_fd)
		return -EINVAL;
	int r = ctx->watch_fd(ctx->transport, c->efd, true);
	if (r < 0)
		return r;
	c->ctx = *ctx;
	c->watching = true;
	c->active = true;
	/* One fd_ready() now serves buffers the driver queued before
	 * DRIVER_OK, which it may not have notified (§3.1.1), and delivers
	 * input that arrived while no driver was there. */
	cons_kick(c);
	return 0;
}

static void cons_queue_notify(void *dev, unsigned q)
{
	struct virtio_console *c = dev;
	if (c->active && q <= VIRTIO_CONSOLE_TX)
		cons_run_queue(c, q);
}

static void cons_fd_ready(void *dev, int fd)
{
	struct virtio_console *c = dev;
	if (!c->active || fd != c->efd)
		return;
	cons_drain_kicks(c); /* before taking the bytes: see console.h */
	cons_run_queue(c, VIRTIO_CONSOLE_RX);
	if (c->active)
		cons_run_queue(c, VIRTIO_CONSOLE_TX);
}

/* Buffered input is kept (console.h); a pending kick may stay in the
 * eventfd, and activate() kicks again anyway. */
static void cons_reset(void *dev)
{
	struct virtio_console *c = dev;
	if (c->watching)
		c->ctx.watch_fd(c->ctx.transport, c->efd, false);
	c->watching = false;
	c->active = false;
	memset(&c->ctx, 0, sizeof(c->ctx));
}

/* Section "VCON" v1: le32 n, then the n buffered input bytes, oldest
 * first. */
static int cons_save(void *dev, struct snapbuf *out)
{
	struct virtio_console *c = dev;
	pthread_mutex_lock(&c->in_lock);
	size_t to_end = VIRTIO_CONSOLE_IN_BUF - c->in_head;
	size_t first = c->in_len < to_end ? c->in_len : to_end;
	snapbuf_begin(out, "VCON", CONS_SNAP_VERSION);
	snapbuf_put_u32(out, (uint32_t)c->in_len);
	snapbuf_put(out, c->in_buf + c->in_head, first);
	int r = snapbuf_put(out, c->in_buf, c->in_len - first);
	pthread_mutex_unlock(&c->in_lock);
	return r;
}

/* Replaces the buffered input; nothing changes unless all of it is valid. */
static int cons_load(void *dev, struct snapbuf *in)
{
	struct virtio_console *c = dev;
	uint8_t tmp[VIRTIO_CONSOLE_IN_BUF];
	uint32_t version = 0, n = 0;

	int r = snapbuf_expect(in, "VCON", CONS_SNAP_VERSION, &version);
	if (r)
		return r;
	if (version < 1)
		return -EINVAL;
	r = snapbuf_get_u32(in, &n);
	if (r)
		return r;
	if (n > VIRTIO_CONSOLE_IN_BUF)
		return -EINVAL;
	r = snapbuf_get(in, tmp, n);
	if (r)
		return r;

	pthread_mutex_lock(&c->in_lock);
	memcpy(c->in_buf, tmp, n);
	c->in_head = 0;
	c->in_len = n;
	pthread_mutex_unlock(&c->in_lock);
	if (n)
		cons_kick(c);
	return 0;
}

const struct virtio_device_ops virtio_console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.pci_class = CONS_PCI_CLASS,
	.num_queues = 2,
	.queue_size = VIRTIO_CONSOLE_QUEUE_SIZE,
	.config_size = VIRTIO_CONSOLE_CONFIG_SIZE,
	.features = cons_features,
	.config_read = cons_config_read,
	.config_write = cons_config_write,
	.activate = cons_activate,
	.queue_notify = cons_queue_notify,
	.fd_ready = cons_fd_ready,
	.reset = cons_reset,
	.save = cons_save,
	.load = cons_load,
};
