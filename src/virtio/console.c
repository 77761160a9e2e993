/* virtio-console, one port, optionally multiport (virtio 1.2 §5.3). See
 * console.h for the behaviour, the control handshake, the input path and
 * the lock order. */
#include "virtio/console.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"

#define CONS_PCI_CLASS 0x078000u /* simple communication controller, other */
#define CONS_MAX_NR_PORTS_OFF 4u /* §5.3.4: le32 max_nr_ports */
#define CONS_EMERG_WR_OFF 8u     /* §5.3.4: le32 emerg_wr */
#define CONS_SNAP_VERSION 2u

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

/* Logs the 1st, 2nd, 4th, 8th... occurrence: a guest cannot flood the
 * log, and the count still shows in the message. */
static bool cons_log_this(uint64_t count)
{
	return (count & (count - 1)) == 0;
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

/* Port 0 takes input: always without multiport (console.h). */
static bool cons_port_open(const struct virtio_console *c)
{
	return !c->multiport || c->port_open;
}

/* ---- control messages (§5.3.6.2) ---- */

static void cons_ctrl_encode(uint8_t raw[VIRTIO_CONSOLE_CTRL_SIZE],
			     const struct virtio_console_ctrl *m)
{
	raw[0] = (uint8_t)m->id;
	raw[1] = (uint8_t)(m->id >> 8);
	raw[2] = (uint8_t)(m->id >> 16);
	raw[3] = (uint8_t)(m->id >> 24);
	raw[4] = (uint8_t)m->event;
	raw[5] = (uint8_t)(m->event >> 8);
	raw[6] = (uint8_t)m->value;
	raw[7] = (uint8_t)(m->value >> 8);
}

static struct virtio_console_ctrl cons_ctrl_decode(const uint8_t raw[VIRTIO_CONSOLE_CTRL_SIZE])
{
	return (struct virtio_console_ctrl){
	    .id = (uint32_t)raw[0] | (uint32_t)raw[1] << 8 | (uint32_t)raw[2] << 16 |
		  (uint32_t)raw[3] << 24,
	    .event = (uint16_t)(raw[4] | raw[5] << 8),
	    .value = (uint16_t)(raw[6] | raw[7] << 8),
	};
}

/* Queues a message for port 0 to the driver; cons_run_control() sends it
 * once the driver has a control receive buffer. */
static void cons_ctrl_send(struct virtio_console *c, uint16_t event, uint16_t value)
{
	if (c->ctrl_len == VIRTIO_CONSOLE_CTRL_PENDING) {
		c->stats.ctrl_dropped++;
		if (cons_log_this(c->stats.ctrl_dropped))
			log_warn("virtio-console: driver posts no control buffers, message dropped "
				 "(%llu so far)",
				 (unsigned long long)c->stats.ctrl_dropped);
		return;
	}
	unsigned tail = (c->ctrl_head + c->ctrl_len) % VIRTIO_CONSOLE_CTRL_PENDING;
	c->ctrl[tail] = (struct virtio_console_ctrl){.id = 0, .event = event, .value = value};
	c->ctrl_len++;
}

/* m NULL: a message shorter than 8 bytes. */
static void cons_ctrl_ignore(struct virtio_console *c, const struct virtio_console_ctrl *m)
{
	c->stats.ctrl_ignored++;
	if (!cons_log_this(c->stats.ctrl_ignored))
		return;
	if (m)
		log_warn("virtio-console: ignored control message id %u event %u value %u "
			 "(%llu so far)",
			 m->id, m->event, m->value, (unsigned long long)c->stats.ctrl_ignored);
	else
		log_warn("virtio-console: ignored a short control message (%llu so far)",
			 (unsigned long long)c->stats.ctrl_ignored);
}

/* Acts on one message from the driver. Only the driver-to-device events
 * mean anything; DEVICE_READY concerns the device, not a port, and Linux
 * sends it with id 0xffffffff, so its id is not checked. */
static void cons_ctrl_handle(struct virtio_console *c, const struct virtio_console_ctrl *m)
{
	if (m->value > 1) {
		cons_ctrl_ignore(c, m);
		return;
	}
	switch (m->event) {
	case VIRTIO_CONSOLE_DEVICE_READY:
		if (m->value) /* 0: the driver failed to set up */
			cons_ctrl_send(c, VIRTIO_CONSOLE_DEVICE_ADD, 1);
		return;
	case VIRTIO_CONSOLE_PORT_READY:
		if (m->id != 0)
			break;
		if (m->value) { /* 0: the driver could not add the port */
			cons_ctrl_send(c, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
			cons_ctrl_send(c, VIRTIO_CONSOLE_PORT_OPEN, 1);
		}
		return;
	case VIRTIO_CONSOLE_PORT_OPEN:
		if (m->id != 0)
			break;
		c->port_open = m->value;
		return;
	}
	cons_ctrl_ignore(c, m);
}

/* ---- serving chains ---- */

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

/* The oldest pending message into a control receive buffer. One too small
 * for it goes back empty and the message waits for the next buffer. */
static uint32_t cons_serve_ctrl_rx(struct virtio_console *c, const struct vq_chain *ch)
{
	uint8_t raw[VIRTIO_CONSOLE_CTRL_SIZE];
	if (ch->write_len < VIRTIO_CONSOLE_CTRL_SIZE) {
		c->stats.ctrl_short++;
		return 0;
	}
	cons_ctrl_encode(raw, &c->ctrl[c->ctrl_head]);
	vq_chain_write(ch, 0, raw, sizeof(raw)); /* fits: checked above */
	c->ctrl_head = (c->ctrl_head + 1) % VIRTIO_CONSOLE_CTRL_PENDING;
	c->ctrl_len--;
	return VIRTIO_CONSOLE_CTRL_SIZE;
}

static void cons_run_queue(struct virtio_console *c, unsigned q);

/* One message from the driver: the first 8 readable bytes; bytes after
 * them (none are defined for driver messages) are ignored. The replies go
 * out before the message is returned: Linux waits for that return
 * (__send_control_msg() spins on it), then reads the control receiveq in
 * the same pass, so the port is set up without another interrupt. */
static uint32_t cons_serve_ctrl_tx(struct virtio_console *c, const struct vq_chain *ch)
{
	uint8_t raw[VIRTIO_CONSOLE_CTRL_SIZE];
	if (vq_chain_read(ch, 0, raw, sizeof(raw))) {
		cons_ctrl_ignore(c, NULL);
		return 0;
	}
	struct virtio_console_ctrl m = cons_ctrl_decode(raw);
	cons_ctrl_handle(c, &m);
	if (c->ctrl_len)
		cons_run_queue(c, VIRTIO_CONSOLE_CTRL_RX);
	return 0;
}

/* Whether queue q has work for its next buffer: none once the device
 * failed (possibly in a nested run, cons_serve_ctrl_tx); the transmit
 * queues always; a receive queue only while there is something to put in
 * it (an empty receive buffer must stay with the device until then). */
static bool cons_want(struct virtio_console *c, unsigned q)
{
	if (!c->active)
		return false;
	switch (q) {
	case VIRTIO_CONSOLE_RX:
		return cons_port_open(c) && cons_input_pending(c);
	case VIRTIO_CONSOLE_CTRL_RX:
		return c->ctrl_len > 0;
	default:
		return true;
	}
}

static uint32_t cons_serve(struct virtio_console *c, unsigned q, const struct vq_chain *ch)
{
	switch (q) {
	case VIRTIO_CONSOLE_RX:
		return cons_serve_rx(c, ch);
	case VIRTIO_CONSOLE_TX:
		return cons_serve_tx(c, ch);
	case VIRTIO_CONSOLE_CTRL_RX:
		return cons_serve_ctrl_rx(c, ch);
	default:
		return cons_serve_ctrl_tx(c, ch);
	}
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

static const char *const cons_malformed[VIRTIO_CONSOLE_NUM_QUEUES] = {
    "malformed receiveq",
    "malformed transmitq",
    "malformed control receiveq",
    "malformed control transmitq",
};

/* Serves queue q with the lost-wake-up-free loop of virtqueue.h, bounded
 * (console.h): a budget of 2 * size pops and re-checks, then the rest in a
 * later fd_ready(). The control receiveq has its own scratch chain: it is
 * served while a control transmitq chain is held. */
static void cons_run_queue(struct virtio_console *c, unsigned q)
{
	struct virtqueue *vq = &c->ctx.vq[q];
	struct vq_chain *ch = q == VIRTIO_CONSOLE_CTRL_RX ? &c->ctrl_chain : &c->chain;
	uint32_t budget = 2 * vq->size;
	bool pushed = false;
	int ret = 0;

	for (;;) {
		vq_set_notify(vq, false);
		while (budget && cons_want(c, q) && (ret = vq_pop(vq, ch)) == 1) {
			budget--;
			vq_push(vq, ch, cons_serve(c, q, ch));
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
		cons_fail(c, cons_malformed[q]);
}

/* The control transmitq (which sends its replies as it goes), then any
 * replies still pending, then port-0 input if a PORT_OPEN let it flow.
 * cons_want() is false for every queue once the device failed. */
static void cons_run_control(struct virtio_console *c)
{
	cons_run_queue(c, VIRTIO_CONSOLE_CTRL_TX);
	if (cons_want(c, VIRTIO_CONSOLE_CTRL_RX))
		cons_run_queue(c, VIRTIO_CONSOLE_CTRL_RX);
	if (cons_want(c, VIRTIO_CONSOLE_RX))
		cons_run_queue(c, VIRTIO_CONSOLE_RX);
}

/* ---- device ops ---- */

static uint64_t cons_features(void *dev)
{
	(void)dev;
	return 1ULL << VIRTIO_CONSOLE_F_MULTIPORT | 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE;
}

/* cols and rows are meaningful only with F_SIZE (zero), max_nr_ports is 1,
 * emerg_wr is write-only (reads as zero). */
static void cons_config_read(void *dev, uint32_t off, uint8_t *data, unsigned len)
{
	(void)dev;
	uint8_t config[VIRTIO_CONSOLE_CONFIG_SIZE] = {0};
	config[CONS_MAX_NR_PORTS_OFF] = 1;
	virtio_config_copy(data, len, config, sizeof(config), off);
}

/* Any write covering emerg_wr's low byte outputs that byte; the rest of
 * the space is read-only. Works whatever the device status. */
static void cons_config_write(void *dev, uint32_t off, const uint8_t *data, unsigned len)
{
	struct virtio_console *c = dev;
	if (off <= CONS_EMERG_WR_OFF && CONS_EMERG_WR_OFF - off < len && c->out.write)
		c->out.write(c->out.opaque, &data[CONS_EMERG_WR_OFF - off], 1);
}

/* The port state and pending messages stay as they are (a reset cleared
 * them, or load() just restored them), unless the driver did not take
 * multiport. */
static int cons_activate(void *dev, const struct virtio_queue_ctx *ctx)
{
	struct virtio_console *c = dev;
	bool multiport = ctx->features & (1ULL << VIRTIO_CONSOLE_F_MULTIPORT);
	if (ctx->nvq < (multiport ? VIRTIO_CONSOLE_NUM_QUEUES : 2) || !ctx->vq || !ctx->used ||
	    !ctx->failed || !ctx->watch_fd)
		return -EINVAL;
	int r = ctx->watch_fd(ctx->transport, c->efd, true);
	if (r < 0)
		return r;
	c->ctx = *ctx;
	c->watching = true;
	c->active = true;
	c->multiport = multiport;
	if (!multiport) {
		c->port_open = false;
		c->ctrl_head = c->ctrl_len = 0;
	}
	/* One fd_ready() now serves buffers the driver queued before
	 * DRIVER_OK, which it may not have notified (§3.1.1), and delivers
	 * input that arrived while no driver was there. */
	cons_kick(c);
	return 0;
}

static void cons_queue_notify(void *dev, unsigned q)
{
	struct virtio_console *c = dev;
	if (!c->active)
		return;
	if (q == VIRTIO_CONSOLE_RX || q == VIRTIO_CONSOLE_TX)
		cons_run_queue(c, q);
	else if (q == VIRTIO_CONSOLE_CTRL_RX && c->multiport)
		cons_run_queue(c, q);
	else if (q == VIRTIO_CONSOLE_CTRL_TX && c->multiport)
		cons_run_control(c);
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
	if (c->active && c->multiport)
		cons_run_control(c);
}

/* Buffered input is kept (console.h); the port state and pending control
 * messages are guest state and go. A pending kick may stay in the
 * eventfd, and activate() kicks again anyway. */
static void cons_reset(void *dev)
{
	struct virtio_console *c = dev;
	if (c->watching)
		c->ctx.watch_fd(c->ctx.transport, c->efd, false);
	c->watching = false;
	c->active = false;
	c->multiport = false;
	c->port_open = false;
	c->ctrl_head = c->ctrl_len = 0;
	memset(&c->ctx, 0, sizeof(c->ctx));
}

/* ---- save/load ---- */

/* Section "VCON" v2: le32 n, then the n buffered input bytes, oldest
 * first; u8 port_open; u8 m, then m pending control messages, oldest
 * first, each {le32 id, le16 event, le16 value}. v1 ends after the input
 * bytes (no port state: the port is closed, nothing is pending). */
static int cons_save(void *dev, struct snapbuf *out)
{
	struct virtio_console *c = dev;
	pthread_mutex_lock(&c->in_lock);
	size_t to_end = VIRTIO_CONSOLE_IN_BUF - c->in_head;
	size_t first = c->in_len < to_end ? c->in_len : to_end;
	snapbuf_begin(out, "VCON", CONS_SNAP_VERSION);
	snapbuf_put_u32(out, (uint32_t)c->in_len);
	snapbuf_put(out, c->in_buf + c->in_head, first);
	snapbuf_put(out, c->in_buf, c->in_len - first);
	pthread_mutex_unlock(&c->in_lock);
	snapbuf_put_u8(out, c->port_open);
	/* Errors are sticky: the last put reports any of them. */
	int r = snapbuf_put_u8(out, (uint8_t)c->ctrl_len);
	for (unsigned i = 0; i < c->ctrl_len; i++) {
		const struct virtio_console_ctrl *m =
		    &c->ctrl[(c->ctrl_head + i) % VIRTIO_CONSOLE_CTRL_PENDING];
		snapbuf_put_u32(out, m->id);
		snapbuf_put_u16(out, m->event);
		r = snapbuf_put_u16(out, m->value);
	}
	return r;
}

/* A message this device could have queued (cons_ctrl_handle). */
static bool cons_ctrl_valid(const struct virtio_console_ctrl *m)
{
	bool event = m->event == VIRTIO_CONSOLE_DEVICE_ADD ||
		     m->event == VIRTIO_CONSOLE_CONSOLE_PORT || m->event == VIRTIO_CONSOLE_PORT_OPEN;
	return m->id == 0 && event && m->value == 1;
}

static int cons_load_ctrl(struct snapbuf *in, uint8_t *port_open, uint8_t *n,
			  struct virtio_console_ctrl *ctrl)
{
	snapbuf_get_u8(in, port_open);
	int r = snapbuf_get_u8(in, n);
	if (r)
		return r;
	if (*port_open > 1 || *n > VIRTIO_CONSOLE_CTRL_PENDING)
		return -EINVAL;
	for (unsigned i = 0; i < *n; i++) {
		snapbuf_get_u32(in, &ctrl[i].id);
		snapbuf_get_u16(in, &ctrl[i].event);
		r = snapbuf_get_u16(in, &ctrl[i].value);
		if (r)
			return r;
		if (!cons_ctrl_valid(&ctrl[i]))
			return -EINVAL;
	}
	return 0;
}

/* Replaces the buffered input and the port state; nothing changes unless
 * all of it is valid. */
static int cons_load(void *dev, struct snapbuf *in)
{
	struct virtio_console *c = dev;
	uint8_t tmp[VIRTIO_CONSOLE_IN_BUF];
	struct virtio_console_ctrl ctrl[VIRTIO_CONSOLE_CTRL_PENDING];
	uint32_t version = 0, n = 0;
	uint8_t port_open = 0, nctrl = 0;

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
	if (!r && version >= 2)
		r = cons_load_ctrl(in, &port_open, &nctrl, ctrl);
	if (r)
		return r;

	pthread_mutex_lock(&c->in_lock);
	memcpy(c->in_buf, tmp, n);
	c->in_head = 0;
	c->in_len = n;
	pthread_mutex_unlock(&c->in_lock);
	c->port_open = port_open;
	memcpy(c->ctrl, ctrl, nctrl * sizeof(ctrl[0]));
	c->ctrl_head = 0;
	c->ctrl_len = nctrl;
	if (n || nctrl)
		cons_kick(c);
	return 0;
}

const struct virtio_device_ops virtio_console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.pci_class = CONS_PCI_CLASS,
	.num_queues = VIRTIO_CONSOLE_NUM_QUEUES,
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
