/* virtio-pci modern transport; see pci.h for the layout and invariants. */
#include "virtio/pci.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"

#define VPCI_CAP_LEN 16u
#define VPCI_NOTIFY_CAP_LEN 20u
#define VPCI_REVISION 1
#define VPCI_EPOLL_KICK 0x100000000ULL  /* data: kind in the high half, queue/fd low */
#define VPCI_EPOLL_WATCH 0x200000000ULL
#define VPCI_EPOLL_STOP 0x300000000ULL
#define VPCI_SAVE_VERSION 1

/* Reserved feature bits this transport and the virtqueue implement. */
static uint64_t vpci_transport_features(void)
{
	return 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_INDIRECT_DESC |
	       1ULL << VIRTIO_F_EVENT_IDX;
}

static unsigned vpci_nvec(const struct virtio_pci *t)
{
	return t->ops->num_queues + 1;
}

/* ---- interrupts ---- */

/* Caller holds t->lock. MSI-X when the driver enabled it, else INTx with
 * the ISR bit (cleared, and the line lowered, when the driver reads ISR). */
static void vpci_interrupt(struct virtio_pci *t, uint16_t vector, uint8_t isr_bit)
{
	t->stats.interrupts++;
	if (msix_enabled(&t->msix)) {
		if (vector != VIRTIO_MSI_NO_VECTOR)
			msix_notify(&t->msix, vector);
		return;
	}
	t->isr |= isr_bit;
	if (!__atomic_load_n(&t->intx_disabled, __ATOMIC_RELAXED))
		irq_set_level(t->irq, t->intx_gsi, 1);
}

static void vpci_used(void *opaque, unsigned q)
{
	struct virtio_pci *t = opaque;
	if (q < t->ops->num_queues && vq_should_notify(&t->vq[q]))
		vpci_interrupt(t, t->q[q].vector, VIRTIO_ISR_QUEUE);
}

static void vpci_config_changed(void *opaque)
{
	struct virtio_pci *t = opaque;
	t->config_generation++;
	vpci_interrupt(t, t->config_vector, VIRTIO_ISR_CONFIG);
}

static void vpci_unwatch_all(struct virtio_pci *t);

/* §2.1.2: the device sets DEVICE_NEEDS_RESET and notifies a config change. */
static void vpci_failed(void *opaque, const char *why)
{
	struct virtio_pci *t = opaque;
	if (t->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warn("%s: %s; the device needs a reset", t->ops->name, why);
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	t->active = false;
	vpci_unwatch_all(t); /* a readable fd would otherwise spin the I/O thread */
	vpci_config_changed(t);
}

/* ---- watched fds (I/O thread's epoll set) ---- */

static int vpci_watch_fd(void *opaque, int fd, bool on)
{
	struct virtio_pci *t = opaque;
	unsigned i = 0;
	while (i < t->nwatched && t->watched[i] != fd)
		i++;
	if (on == (i < t->nwatched))
		return 0;
	if (on) {
		if (t->nwatched == sizeof(t->watched) / sizeof(t->watched[0]))
			return -ENOSPC;
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = VPCI_EPOLL_WATCH | (uint32_t)fd};
		if (t->epfd >= 0 && epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
		t->watched[t->nwatched++] = fd;
	} else {
		if (t->epfd >= 0)
			epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, NULL);
		t->watched[i] = t->watched[--t->nwatched];
	}
	return 0;
}

static void vpci_unwatch_all(struct virtio_pci *t)
{
	while (t->nwatched)
		vpci_watch_fd(t, t->watched[0], false);
}

/* ---- reset and activation ---- */

static void vpci_queue_defaults(struct virtio_pci *t)
{
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		struct vpci_queue *q = &t->q[i];
		q->size = i < t->ops->num_queues ? t->ops->queue_size : 0;
		q->vector = VIRTIO_MSI_NO_VECTOR;
		q->enabled = false;
		q->desc = q->avail = q->used = 0;
		vq_reset(&t->vq[i]);
	}
}

/* Caller holds t->lock. */
static void vpci_reset(struct virtio_pci *t)
{
	if (t->active || (t->status & VIRTIO_STATUS_DRIVER_OK))
		t->ops->reset(t->dev);
	t->active = false;
	vpci_unwatch_all(t);
	t->status = 0;
	t->dfselect = t->gfselect = 0;
	t->driver_features = 0;
	t->config_vector = VIRTIO_MSI_NO_VECTOR;
	t->queue_select = 0;
	vpci_queue_defaults(t);
	if (t->isr) {
		t->isr = 0;
		irq_set_level(t->irq, t->intx_gsi, 0);
	}
}

static void vpci_kick(struct virtio_pci *t, unsigned q);

static void vpci_requeue(void *opaque, unsigned q)
{
	vpci_kick(opaque, q);
}

static void vpci_activate(struct virtio_pci *t)
{
	t->ctx = (struct virtio_queue_ctx){
		.mem = t->mem,
		.features = t->driver_features,
		.vq = t->vq,
		.nvq = t->ops->num_queues,
		.used = vpci_used,
		.config_changed = vpci_config_changed,
		.failed = vpci_failed,
		.watch_fd = vpci_watch_fd,
		.requeue = vpci_requeue,
		.transport = t,
	};
	int r = t->ops->activate(t->dev, &t->ctx);
	/* The device may have called ctx->failed() from activate() and still
	 * returned 0: it stays stopped then. */
	t->active = r == 0 && !(t->status & VIRTIO_STATUS_NEEDS_RESET);
	if (r) {
		t->ops->reset(t->dev);
		vpci_failed(t, "activation failed");
	}
}

/* §3.1.1: FEATURES_OK sticks for a subset of the offer that includes
 * VERSION_1 (modern only), once the driver has set DRIVER. */
static bool vpci_features_acceptable(const struct virtio_pci *t, uint8_t status)
{
	return !(t->driver_features & ~t->offered) &&
	       (t->driver_features & (1ULL << VIRTIO_F_VERSION_1)) &&
	       (status & VIRTIO_STATUS_DRIVER);
}

/* §2.1.1/§3.1.1: the status only grows, FEATURES_OK needs an acceptable
 * feature set, DRIVER_OK activates. */
static void vpci_write_status(struct virtio_pci *t, uint8_t v)
{
	if (v == 0) {
		vpci_reset(t);
		return;
	}
	if (t->status & ~v) {
		log_debug("%s: driver tried to clear status bits (%#x -> %#x)", t->ops->name,
			  t->status, v);
		return;
	}
	uint8_t added = v & ~t->status;
	if ((added & VIRTIO_STATUS_FEATURES_OK) && !vpci_features_acceptable(t, v))
		v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(v & VIRTIO_STATUS_FEATURES_OK))
		v &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	/* The guest cannot raise NEEDS_RESET itself. */
	v = (uint8_t)((v & ~VIRTIO_STATUS_NEEDS_RESET) | (t->status & VIRTIO_STATUS_NEEDS_RESET));
	t->status = v;
	if ((added & VIRTIO_STATUS_DRIVER_OK) && (v & VIRTIO_STATUS_DRIVER_OK) &&
	    !(v & VIRTIO_STATUS_NEEDS_RESET))
		vpci_activate(t);
}

/* ---- common configuration ---- */

static struct vpci_queue *vpci_selected(struct virtio_pci *t)
{
	return t->queue_select < t->ops->num_queues ? &t->q[t->queue_select] : NULL;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The register file as the driver sees it now. */
static void vpci_common_image(struct virtio_pci *t, uint8_t img[VPCI_COMMON_LEN])
{
	memset(img, 0, VPCI_COMMON_LEN);
	put_le(img + VPCI_DFSELECT, t->dfselect, 4);
	put_le(img + VPCI_DF, t->dfselect < 2 ? (uint32_t)(t->offered >> (32 * t->dfselect)) : 0, 4);
	put_le(img + VPCI_GFSELECT, t->gfselect, 4);
	put_le(img + VPCI_GF,
	       t->gfselect < 2 ? (uint32_t)(t->driver_features >> (32 * t->gfselect)) : 0, 4);
	put_le(img + VPCI_MSIX_CONFIG, t->config_vector, 2);
	put_le(img + VPCI_NUM_QUEUES, t->ops->num_queues, 2);
	img[VPCI_STATUS] = t->status;
	img[VPCI_CFG_GENERATION] = t->config_generation;
	put_le(img + VPCI_Q_SELECT, t->queue_select, 2);
	const struct vpci_queue *q = vpci_selected(t);
	if (q) {
		put_le(img + VPCI_Q_SIZE, q->size, 2);
		put_le(img + VPCI_Q_MSIX, q->vector, 2);
		put_le(img + VPCI_Q_ENABLE, q->enabled, 2);
		put_le(img + VPCI_Q_NOFF, t->queue_select, 2);
		put_le(img + VPCI_Q_DESC, q->desc, 8);
		put_le(img + VPCI_Q_AVAIL, q->avail, 8);
		put_le(img + VPCI_Q_USED, q->used, 8);
	}
}

static uint16_t vpci_vector(struct virtio_pci *t, uint64_t v)
{
	return v < vpci_nvec(t) ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

static void vpci_write_features(struct virtio_pci *t, uint32_t v)
{
	if ((t->status & VIRTIO_STATUS_FEATURES_OK) || t->gfselect >= 2)
		return;
	unsigned shift = 32 * t->gfselect;
	t->driver_features = (t->driver_features & ~(0xffffffffULL << shift)) | (uint64_t)v << shift;
}

static void vpci_enable_queue(struct virtio_pci *t, struct vpci_queue *q)
{
	unsigned i = (unsigned)(q - t->q);
	if (q->enabled)
		return;
	if (vq_enable(&t->vq[i], q->size, q->desc, q->avail, q->used, t->driver_features)) {
		vpci_failed(t, "the driver enabled a queue with invalid rings");
		return;
	}
	q->enabled = true;
}

/* A 64-bit queue address written whole or as one of its 32-bit halves. */
static void vpci_write_addr(uint64_t *reg, unsigned off_in_reg, unsigned size, uint64_t v)
{
	if (size == 8 && off_in_reg == 0)
		*reg = v;
	else if (size == 4 && off_in_reg == 0)
		*reg = (*reg & ~0xffffffffULL) | (uint32_t)v;
	else if (size == 4 && off_in_reg == 4)
		*reg = (*reg & 0xffffffffULL) | (uint64_t)(uint32_t)v << 32;
}

static void vpci_write_queue_reg(struct virtio_pci *t, unsigned off, unsigned size, uint64_t v)
{
	struct vpci_queue *q = vpci_selected(t);
	/* §4.1.4.3.2: queue configuration is fixed once the queue is enabled
	 * or the device is live. */
	if (!q || q->enabled || (t->status & VIRTIO_STATUS_DRIVER_OK))
		return;
	if (off == VPCI_Q_SIZE && size == 2) {
		if (v && v <= t->ops->queue_size && !(v & (v - 1)))
			q->size = (uint16_t)v;
	} else if (off == VPCI_Q_MSIX && size == 2) {
		q->vector = vpci_vector(t, v);
	} else if (off == VPCI_Q_ENABLE && size == 2) {
		if (v == 1)
			vpci_enable_queue(t, q);
	} else if (off >= VPCI_Q_DESC && off < VPCI_Q_DESC + 8) {
		vpci_write_addr(&q->desc, off - VPCI_Q_DESC, size, v);
	} else if (off >= VPCI_Q_AVAIL && off < VPCI_Q_AVAIL + 8) {
		vpci_write_addr(&q->avail, off - VPCI_Q_AVAIL, size, v);
	} else if (off >= VPCI_Q_USED && off < VPCI_Q_USED + 8) {
		vpci_write_addr(&q->used, off - VPCI_Q_USED, size, v);
	}
}

/* Writes are accepted only with the field's own width (or 32-bit halves
 * of the 64-bit addresses); anything else is ignored. */
static void vpci_common_write(struct virtio_pci *t, unsigned off, unsigned size, uint64_t v)
{
	switch (off) {
	case VPCI_DFSELECT:
		if (size == 4)
			t->dfselect = (uint32_t)v;
		return;
	case VPCI_GFSELECT:
		if (size == 4)
			t->gfselect = (uint32_t)v;
		return;
	case VPCI_GF:
		if (size == 4)
			vpci_write_features(t, (uint32_t)v);
		return;
	case VPCI_MSIX_CONFIG:
		if (size == 2)
			t->config_vector = vpci_vector(t, v);
		return;
	case VPCI_STATUS:
		if (size == 1)
			vpci_write_status(t, (uint8_t)v);
		return;
	case VPCI_Q_SELECT:
		if (size == 2)
			t->queue_select = (uint16_t)v;
		return;
	default:
		if (off >= VPCI_Q_SIZE && off < VPCI_Q_USED + 8)
			vpci_write_queue_reg(t, off, size, v);
		return;
	}
}

/* ---- BAR 0 ---- */

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static bool vpci_in(uint64_t off, unsigned size, uint64_t start, uint64_t len)
{
	return off >= start && off - start < len && size <= len - (off - start);
}

/* The bus passes any size 1..8; devices are promised 1, 2, 4 or 8. */
static bool vpci_size_ok(unsigned size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

static void vpci_device_read(struct virtio_pci *t, uint64_t off, uint8_t *data, unsigned size)
{
	if (vpci_in(off, size, 0, t->ops->config_size) && t->ops->config_read)
		t->ops->config_read(t->dev, (uint32_t)off, data, size);
	else
		memset(data, 0, size);
}

static uint8_t vpci_read_isr(struct virtio_pci *t)
{
	uint8_t v = t->isr;
	if (v) {
		t->isr = 0;
		irq_set_level(t->irq, t->intx_gsi, 0);
	}
	return v;
}

void virtio_pci_bar_read(struct virtio_pci *t, uint64_t off, uint8_t *data, unsigned size)
{
	if (size > 8)
		size = 8;
	memset(data, 0, size);
	if (!vpci_size_ok(size))
		return;
	if (msix_mmio_read(&t->msix, VPCI_BAR, off, data, size))
		return;
	pthread_mutex_lock(&t->lock);
	if (vpci_in(off, size, VPCI_COMMON_OFF, VPCI_COMMON_LEN)) {
		uint8_t img[VPCI_COMMON_LEN];
		vpci_common_image(t, img);
		memcpy(data, img + off - VPCI_COMMON_OFF, size);
	} else if (off == VPCI_ISR_OFF) {
		data[0] = vpci_read_isr(t);
	} else if (vpci_in(off, size, VPCI_DEVICE_OFF, VPCI_DEVICE_MAX)) {
		vpci_device_read(t, off - VPCI_DEVICE_OFF, data, size);
	}
	pthread_mutex_unlock(&t->lock);
}

static void vpci_kick(struct virtio_pci *t, unsigned q)
{
	if (q < t->ops->num_queues && t->q[q].kickfd >= 0) {
		uint64_t one = 1;
		if (write(t->q[q].kickfd, &one, sizeof(one)) < 0)
			log_debug("%s: kick queue %u: %s", t->ops->name, q, strerror(errno));
	}
}

void virtio_pci_bar_write(struct virtio_pci *t, uint64_t off, const uint8_t *data, unsigned size)
{
	if (!vpci_size_ok(size))
		return;
	if (msix_mmio_write(&t->msix, VPCI_BAR, off, data, size))
		return;
	if (vpci_in(off, size, VPCI_NOTIFY_OFF, VIRTIO_MAX_QUEUES * VPCI_NOTIFY_MULT)) {
		/* No lock: the eventfd is fixed from init to destroy. */
		unsigned q = (unsigned)(off - VPCI_NOTIFY_OFF) / VPCI_NOTIFY_MULT;
		if (q < t->ops->num_queues)
			__atomic_fetch_add(&t->stats.mmio_notifies, 1, __ATOMIC_RELAXED);
		vpci_kick(t, q);
		return;
	}
	pthread_mutex_lock(&t->lock);
	uint64_t v = get_le(data, size);
	if (vpci_in(off, size, VPCI_COMMON_OFF, VPCI_COMMON_LEN)) {
		vpci_common_write(t, (unsigned)(off - VPCI_COMMON_OFF), size, v);
	} else if (vpci_in(off, size, VPCI_DEVICE_OFF, VPCI_DEVICE_MAX)) {
		uint64_t doff = off - VPCI_DEVICE_OFF;
		if (vpci_in(doff, size, 0, t->ops->config_size) && t->ops->config_write)
			t->ops->config_write(t->dev, (uint32_t)doff, data, size);
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- PCI function ---- */

static void vpci_fn_bar_read(void *owner, unsigned bar, uint64_t off, uint8_t *data, unsigned size)
{
	if (bar == VPCI_BAR)
		virtio_pci_bar_read(owner, off, data, size);
}

static void vpci_fn_bar_write(void *owner, unsigned bar, uint64_t off, const uint8_t *data,
			      unsigned size)
{
	if (bar == VPCI_BAR)
		virtio_pci_bar_write(owner, off, data, size);
}

static void vpci_fn_config_written(void *owner, unsigned off, unsigned size)
{
	struct virtio_pci *t = owner;
	msix_config_written(&t->msix, off, size);
	/* Interrupt Disable is bit 10 of Command (PCI 3.0 §6.2.2): the line
	 * follows the ISR only while it is clear. */
	if (off <= PCI_COMMAND + 1 && off + size > PCI_COMMAND + 1) {
		bool disabled = pci_config_get(&t->fn, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE;
		__atomic_store_n(&t->intx_disabled, disabled, __ATOMIC_RELAXED);
		pthread_mutex_lock(&t->lock);
		if (t->isr)
			irq_set_level(t->irq, t->intx_gsi, !disabled);
		pthread_mutex_unlock(&t->lock);
	}
}

/* Moves the queues' ioeventfds with BAR 0. */
static void vpci_register_notify(struct virtio_pci *t, uint64_t base, bool assign)
{
	if (!t->hook.ioeventfd || base == PCI_BAR_UNMAPPED)
		return;
	for (unsigned i = 0; i < t->ops->num_queues; i++) {
		uint64_t addr = base + VPCI_NOTIFY_OFF + (uint64_t)i * VPCI_NOTIFY_MULT;
		int r = t->hook.ioeventfd(t->hook.opaque, addr, 2, t->q[i].kickfd, assign);
		if (r && assign)
			log_debug("%s: no ioeventfd for queue %u (%s): notifications exit",
				  t->ops->name, i, strerror(-r));
	}
}

static void vpci_fn_bar_remap(void *owner, unsigned bar, uint64_t old_addr, uint64_t new_addr)
{
	struct virtio_pci *t = owner;
	(void)old_addr;
	if (bar != VPCI_BAR)
		return;
	pthread_mutex_lock(&t->lock);
	vpci_register_notify(t, t->notify_base, false);
	t->notify_base = new_addr;
	vpci_register_notify(t, t->notify_base, true);
	pthread_mutex_unlock(&t->lock);
}

static const struct pci_function_ops vpci_fn_ops = {
	.bar_remap = vpci_fn_bar_remap,
	.config_written = vpci_fn_config_written,
	.bar_read = vpci_fn_bar_read,
	.bar_write = vpci_fn_bar_write,
};

/* struct virtio_pci_cap (§4.1.4), plus notify_off_multiplier for notify. */
static int vpci_add_cap(struct virtio_pci *t, uint8_t type, uint32_t off, uint32_t len)
{
	unsigned cap_len = type == VIRTIO_PCI_CAP_NOTIFY_CFG ? VPCI_NOTIFY_CAP_LEN : VPCI_CAP_LEN;
	int cap = pci_config_add_cap(&t->fn, PCI_CAP_ID_VNDR, cap_len);
	if (cap < 0)
		return cap;
	unsigned c = (unsigned)cap;
	pci_config_set(&t->fn, c + 2, 1, cap_len);
	pci_config_set(&t->fn, c + 3, 1, type);
	pci_config_set(&t->fn, c + 4, 1, VPCI_BAR);
	pci_config_set(&t->fn, c + 8, 4, off);
	pci_config_set(&t->fn, c + 12, 4, len);
	if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
		pci_config_set(&t->fn, c + 16, 4, VPCI_NOTIFY_MULT);
	return 0;
}

static int vpci_setup_function(struct virtio_pci *t)
{
	const struct pci_ids ids = {
		.vendor = VIRTIO_PCI_VENDOR,
		.device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + t->ops->device_id),
		.subsys_vendor = VIRTIO_PCI_VENDOR,
		.subsys = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + t->ops->device_id),
		.class_code = t->ops->pci_class,
		.revision = VPCI_REVISION,
		.irq_pin = 1,
		.irq_line = (uint8_t)t->intx_gsi,
	};
	int r = pci_function_init(&t->fn, &ids, &vpci_fn_ops, t);
	if (!r)
		r = pci_bar_add(&t->fn, VPCI_BAR, PCI_BAR_MEM32, VPCI_BAR_SIZE, false);
	if (!r)
		r = msix_init(&t->msix, &t->fn, t->irq, vpci_nvec(t), VPCI_BAR, VPCI_MSIX_TABLE_OFF,
			      VPCI_BAR, VPCI_MSIX_PBA_OFF);
	if (!r)
		r = vpci_add_cap(t, VIRTIO_PCI_CAP_COMMON_CFG, VPCI_COMMON_OFF, VPCI_COMMON_LEN);
	if (!r)
		r = vpci_add_cap(t, VIRTIO_PCI_CAP_NOTIFY_CFG, VPCI_NOTIFY_OFF,
				 t->ops->num_queues * VPCI_NOTIFY_MULT);
	if (!r)
		r = vpci_add_cap(t, VIRTIO_PCI_CAP_ISR_CFG, VPCI_ISR_OFF, VPCI_ISR_LEN);
	if (!r && t->ops->config_size)
		r = vpci_add_cap(t, VIRTIO_PCI_CAP_DEVICE_CFG, VPCI_DEVICE_OFF, t->ops->config_size);
	return r;
}

static void vpci_close_kicks(struct virtio_pci *t)
{
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (t->q[i].kickfd >= 0)
			close(t->q[i].kickfd);
		t->q[i].kickfd = -1;
	}
}

static bool vpci_ops_valid(const struct virtio_device_ops *ops)
{
	return ops && ops->num_queues >= 1 && ops->num_queues <= VIRTIO_MAX_QUEUES &&
	       ops->queue_size && !(ops->queue_size & (ops->queue_size - 1)) &&
	       ops->queue_size <= VQ_MAX_SIZE && ops->config_size <= VPCI_DEVICE_MAX &&
	       ops->activate && ops->reset && ops->queue_notify && ops->features;
}

int virtio_pci_init(struct virtio_pci *t, const struct virtio_device_ops *ops, void *dev,
		    const struct guest_mem *mem, const struct irq_ctl *irq, uint32_t intx_gsi)
{
	memset(t, 0, sizeof(*t));
	t->epfd = t->stopfd = -1;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		t->q[i].kickfd = -1;
	if (!vpci_ops_valid(ops) || intx_gsi > 0xff)
		return -EINVAL;
	t->ops = ops;
	t->dev = dev;
	t->mem = mem;
	t->irq = irq;
	t->intx_gsi = intx_gsi;
	t->notify_base = PCI_BAR_UNMAPPED;
	/* Bits 24..41 are the transport's (§6), whatever the device says. */
	t->offered = (ops->features(dev) & ~(((1ULL << 42) - 1) & ~((1ULL << 24) - 1))) |
		     vpci_transport_features();
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vq_init(&t->vq[i], mem);
	int r = 0;
	for (unsigned i = 0; !r && i < ops->num_queues; i++) {
		t->q[i].kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (t->q[i].kickfd < 0)
			r = -errno;
	}
	t->config_vector = VIRTIO_MSI_NO_VECTOR;
	vpci_queue_defaults(t);
	/* Before the function exists: its BAR callbacks take the lock. */
	pthread_mutex_init(&t->lock, NULL);
	if (!r)
		r = vpci_setup_function(t);
	if (r) {
		pthread_mutex_destroy(&t->lock);
		vpci_close_kicks(t);
		t->ops = NULL;
	}
	return r;
}

void virtio_pci_destroy(struct virtio_pci *t)
{
	if (!t->ops)
		return;
	virtio_pci_stop(t);
	pthread_mutex_lock(&t->lock);
	vpci_reset(t);
	vpci_register_notify(t, t->notify_base, false);
	pthread_mutex_unlock(&t->lock);
	vpci_close_kicks(t);
	msix_destroy(&t->msix);
	pthread_mutex_destroy(&t->lock);
	t->ops = NULL;
}

/* ---- the I/O thread ---- */

static bool vpci_drain(int fd)
{
	uint64_t n;
	return read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n);
}

static void vpci_handle_kick(struct virtio_pci *t, unsigned q)
{
	pthread_mutex_lock(&t->lock);
	t->stats.notifies++;
	if (t->active && q < t->ops->num_queues && t->q[q].enabled)
		t->ops->queue_notify(t->dev, q);
	pthread_mutex_unlock(&t->lock);
}

static void vpci_handle_fd(struct virtio_pci *t, int fd)
{
	pthread_mutex_lock(&t->lock);
	bool watched = false;
	for (unsigned i = 0; i < t->nwatched; i++)
		watched |= t->watched[i] == fd;
	if (t->active && watched && t->ops->fd_ready)
		t->ops->fd_ready(t->dev, fd);
	pthread_mutex_unlock(&t->lock);
}

void virtio_pci_poll(struct virtio_pci *t)
{
	for (unsigned q = 0; q < t->ops->num_queues; q++)
		if (vpci_drain(t->q[q].kickfd))
			vpci_handle_kick(t, q);
	int fds[sizeof(t->watched) / sizeof(t->watched[0])];
	pthread_mutex_lock(&t->lock);
	unsigned n = t->nwatched;
	memcpy(fds, t->watched, n * sizeof(fds[0]));
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < n; i++) {
		struct pollfd p = {.fd = fds[i], .events = POLLIN};
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
			vpci_handle_fd(t, fds[i]);
	}
}

static void *vpci_thread(void *arg)
{
	struct virtio_pci *t = arg;
	for (;;) {
		struct epoll_event ev[16];
		int n = epoll_wait(t->epfd, ev, 16, -1);
		if (n < 0 && errno != EINTR) {
			log_error("%s: epoll_wait: %s", t->ops->name, strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint64_t kind = ev[i].data.u64 & ~0xffffffffULL;
			uint32_t val = (uint32_t)ev[i].data.u64;
			if (kind == VPCI_EPOLL_STOP)
				return NULL;
			if (kind == VPCI_EPOLL_KICK && vpci_drain(t->q[val].kickfd))
				vpci_handle_kick(t, val);
			else if (kind == VPCI_EPOLL_WATCH)
				vpci_handle_fd(t, (int)val);
		}
	}
}

static int vpci_epoll_add(int epfd, int fd, uint64_t data)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = data};
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int virtio_pci_start(struct virtio_pci *t, const struct virtio_notify_hook *hook)
{
	int r = 0;
	pthread_mutex_lock(&t->lock);
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	t->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->epfd < 0 || t->stopfd < 0)
		r = -errno;
	for (unsigned i = 0; !r && i < t->ops->num_queues; i++)
		r = vpci_epoll_add(t->epfd, t->q[i].kickfd, VPCI_EPOLL_KICK | i);
	if (!r)
		r = vpci_epoll_add(t->epfd, t->stopfd, VPCI_EPOLL_STOP);
	/* A device activated by virtio_pci_load() before the thread existed
	 * may already watch fds. */
	for (unsigned i = 0; !r && i < t->nwatched; i++) {
		int fd = t->watched[i];
		r = vpci_epoll_add(t->epfd, fd, VPCI_EPOLL_WATCH | (uint32_t)fd);
	}
	if (!r && hook) {
		t->hook = *hook;
		t->notify_base = t->fn.bar[VPCI_BAR].mapped;
		vpci_register_notify(t, t->notify_base, true);
	}
	pthread_mutex_unlock(&t->lock);
	if (!r)
		r = -pthread_create(&t->thread, NULL, vpci_thread, t);
	t->thread_started = r == 0;
	if (r)
		log_error("%s: cannot start the I/O thread: %s", t->ops->name, strerror(-r));
	return r;
}

void virtio_pci_stop(struct virtio_pci *t)
{
	if (t->thread_started) {
		uint64_t one = 1;
		if (write(t->stopfd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			pthread_join(t->thread, NULL);
		t->thread_started = false;
	}
	if (t->epfd >= 0)
		close(t->epfd);
	if (t->stopfd >= 0)
		close(t->stopfd);
	t->epfd = t->stopfd = -1;
}

/* ---- save/load ---- */

static void vpci_save_queue(struct snapbuf *b, const struct vpci_queue *q,
			    const struct virtqueue *vq)
{
	snapbuf_put_u16(b, q->size);
	snapbuf_put_u16(b, q->vector);
	snapbuf_put_u8(b, q->enabled);
	snapbuf_put_u64(b, q->desc);
	snapbuf_put_u64(b, q->avail);
	snapbuf_put_u64(b, q->used);
	snapbuf_put_u16(b, vq->last_avail_idx);
	snapbuf_put_u16(b, vq->used_idx);
}

int virtio_pci_save(struct virtio_pci *t, struct snapbuf *out)
{
	pthread_mutex_lock(&t->lock);
	snapbuf_begin(out, "VPCI", VPCI_SAVE_VERSION);
	snapbuf_put_u16(out, t->ops->device_id);
	snapbuf_put_u8(out, t->status);
	snapbuf_put_u64(out, t->driver_features);
	snapbuf_put_u16(out, t->config_vector);
	snapbuf_put_u8(out, t->config_generation);
	snapbuf_put_u8(out, t->isr);
	snapbuf_put_u8(out, (uint8_t)t->ops->num_queues);
	for (unsigned i = 0; i < t->ops->num_queues; i++)
		vpci_save_queue(out, &t->q[i], &t->vq[i]);
	int r = out->err;
	if (!r && t->ops->save)
		r = t->ops->save(t->dev, out);
	pthread_mutex_unlock(&t->lock);
	return r;
}

static int vpci_load_queue(struct virtio_pci *t, struct snapbuf *in, unsigned i)
{
	struct vpci_queue *q = &t->q[i];
	uint8_t enabled;
	uint16_t last_avail, used_idx, size, vector;
	snapbuf_get_u16(in, &size);
	snapbuf_get_u16(in, &vector);
	snapbuf_get_u8(in, &enabled);
	snapbuf_get_u64(in, &q->desc);
	snapbuf_get_u64(in, &q->avail);
	snapbuf_get_u64(in, &q->used);
	snapbuf_get_u16(in, &last_avail);
	int r = snapbuf_get_u16(in, &used_idx);
	if (r)
		return r;
	if (!size || size > t->ops->queue_size || (size & (size - 1)) || enabled > 1)
		return -EINVAL;
	q->size = size;
	q->vector = vpci_vector(t, vector);
	if (enabled) {
		if (vq_enable(&t->vq[i], q->size, q->desc, q->avail, q->used, t->driver_features))
			return -EINVAL;
		q->enabled = true;
		t->vq[i].last_avail_idx = last_avail;
		t->vq[i].used_idx = used_idx;
	}
	return 0;
}

/* A status the guest could have reached with the loaded features
 * (vpci_write_status): FEATURES_OK only for an acceptable set, DRIVER_OK
 * only after FEATURES_OK. */
static bool vpci_status_valid(const struct virtio_pci *t, uint8_t status)
{
	if ((status & VIRTIO_STATUS_FEATURES_OK) && !vpci_features_acceptable(t, status))
		return false;
	return !(status & VIRTIO_STATUS_DRIVER_OK) || (status & VIRTIO_STATUS_FEATURES_OK);
}

/* Restores the INTx state: a level the guest has not acknowledged yet. */
static void vpci_restore_isr(struct virtio_pci *t, uint8_t isr)
{
	t->isr = isr;
	if (isr)
		irq_set_level(t->irq, t->intx_gsi, 1);
}

int virtio_pci_load(struct virtio_pci *t, struct snapbuf *in)
{
	uint16_t id, config_vector;
	uint8_t status, nq, isr;
	uint64_t features;
	pthread_mutex_lock(&t->lock);
	vpci_reset(t);
	snapbuf_expect(in, "VPCI", VPCI_SAVE_VERSION, NULL);
	snapbuf_get_u16(in, &id);
	snapbuf_get_u8(in, &status);
	snapbuf_get_u64(in, &features);
	snapbuf_get_u16(in, &config_vector);
	snapbuf_get_u8(in, &t->config_generation);
	snapbuf_get_u8(in, &isr);
	int r = snapbuf_get_u8(in, &nq);
	/* Unoffered feature bits are refused with FEATURES_OK only (in
	 * vpci_status_valid): before it they are just what the guest wrote. */
	if (!r && (id != t->ops->device_id || nq != t->ops->num_queues ||
		   (isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG))))
		r = -EINVAL;
	if (!r) {
		t->driver_features = features;
		t->config_vector = vpci_vector(t, config_vector);
		if (!vpci_status_valid(t, status))
			r = -EINVAL;
	}
	for (unsigned i = 0; !r && i < nq; i++)
		r = vpci_load_queue(t, in, i);
	if (!r && t->ops->load) {
		r = t->ops->load(t->dev, in);
		if (r)
			t->ops->reset(t->dev); /* drop whatever part it took */
	}
	if (!r) {
		t->status = status & (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
		if (status & VIRTIO_STATUS_DRIVER_OK)
			vpci_write_status(t, status);
		vpci_restore_isr(t, isr);
	} else {
		vpci_reset(t);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}
