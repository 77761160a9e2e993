/* The virtio-pci modern transport (virtio/pci.c), driven as a guest driver
 * would: configuration space through pci_config_read/pci_config_write
 * (which calls the function's config_written hook, as the host bridge
 * does), BAR 0 through virtio_pci_bar_read/virtio_pci_bar_write, and
 * notifications processed by virtio_pci_poll(). A fake device with two
 * queues of 16 and an 8-byte configuration space records every callback;
 * a fake irq_ctl records line levels and MSIs.
 *
 * Covers: PCI identity and capabilities (virtio 1.2 §4.1.2, §4.1.4), the
 * status machine and feature negotiation (§2.1, §3.1.1), the queue
 * registers (§4.1.4.3), notifications (§4.1.4.4), INTx/ISR and MSI-X
 * interrupts (§4.1.4.5, §4.1.5), DEVICE_NEEDS_RESET (§2.1.2), the device
 * configuration window, save/load, and the I/O thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "pci/config.h"
#include "pci/msix.h"
#include "util/log.h"
#include "util/snapbuf.h"
#include "virtio/pci.h"
#include "vm/memory.h"

#define NQ 2u
#define QSIZE 16u
#define CFG_SIZE 8u
#define DEV_ID 4u
#define DEV_CLASS 0x00ff00u
#define GSI 10u
#define NVEC (NQ + 1)

#define F_DEV (1ULL << 5)
#define F_V1 (1ULL << VIRTIO_F_VERSION_1)
#define FEATS (F_DEV | F_V1)

#define ST_ACK VIRTIO_STATUS_ACKNOWLEDGE
#define ST_DRV VIRTIO_STATUS_DRIVER
#define ST_FOK VIRTIO_STATUS_FEATURES_OK
#define ST_DOK VIRTIO_STATUS_DRIVER_OK
#define ST_NR VIRTIO_STATUS_NEEDS_RESET
#define ST_LIVE (ST_ACK | ST_DRV | ST_FOK | ST_DOK)

/* Driver-side ring layout: queue q's descriptor table at RING_GPA(q), the
 * available ring 0x1000 above, the used ring 0x2000 above. */
#define RING_GPA(q) (0x10000ULL * ((q) + 1))
#define AVAIL_OFF 0x1000u
#define USED_OFF 0x2000u
#define DATA_GPA 0x100000ULL
#define OUTSIDE_RAM (1ULL << 44)

#define MSI_ADDR 0xfee01000u
#define MSI_DATA 0x4051u

#define DEV_MAGIC 0x76646576u

/* ---- fake device ---- */

/* The callbacks run with the transport's lock held, so they record a
 * broken promise instead of failing an assertion there (which would leave
 * the lock held); poll_dev() and teardown() check the count. */

struct fake_dev {
	uint8_t config[CFG_SIZE];
	int activate_result;
	bool fail_in_activate; /* calls ctx->failed() and returns 0 */
	int watch_fd;          /* >= 0: watched from activate() on */
	int watch_result;
	unsigned fd_ready_calls;
	unsigned activate_calls, reset_calls, notify_calls[NQ];
	uint64_t activated_features;
	const struct virtio_queue_ctx *ctx;
	unsigned config_reads, config_writes;
	uint32_t cfg_off;
	unsigned cfg_len;
	unsigned popped;
	unsigned broken_promises; /* callbacks outside the transport's contract */
	uint8_t state;            /* saved and loaded */
	struct vq_chain chain;
};

static uint64_t fake_features(void *opaque)
{
	(void)opaque;
	return F_DEV;
}

static void fake_config_read(void *opaque, uint32_t off, uint8_t *data, unsigned len)
{
	struct fake_dev *d = opaque;
	d->config_reads++;
	d->cfg_off = off;
	d->cfg_len = len;
	if (off + len > CFG_SIZE || (len != 1 && len != 2 && len != 4 && len != 8)) {
		d->broken_promises++;
		memset(data, 0, len);
		return;
	}
	memcpy(data, d->config + off, len);
}

static void fake_config_write(void *opaque, uint32_t off, const uint8_t *data, unsigned len)
{
	struct fake_dev *d = opaque;
	d->config_writes++;
	d->cfg_off = off;
	d->cfg_len = len;
	if (off + len > CFG_SIZE || (len != 1 && len != 2 && len != 4 && len != 8)) {
		d->broken_promises++;
		return;
	}
	memcpy(d->config + off, data, len);
}

static int fake_activate(void *opaque, const struct virtio_queue_ctx *ctx)
{
	struct fake_dev *d = opaque;
	if (d->ctx)
		d->broken_promises++; /* activated twice without a reset */
	d->activate_calls++;
	d->activated_features = ctx->features;
	d->ctx = ctx;
	if (d->fail_in_activate)
		ctx->failed(ctx->transport, "fake: refuses at activation");
	if (d->watch_fd >= 0)
		d->watch_result = ctx->watch_fd(ctx->transport, d->watch_fd, true);
	return d->activate_result;
}

/* Pops every chain and returns it unwritten; a malformed ring fails the
 * device, as a real backend would. */
static void fake_queue_notify(void *opaque, unsigned q)
{
	struct fake_dev *d = opaque;
	if (q >= NQ || !d->ctx) {
		d->broken_promises++; /* a queue it lacks, or not active */
		return;
	}
	d->notify_calls[q]++;
	struct virtqueue *vq = &d->ctx->vq[q];
	int r;
	while ((r = vq_pop(vq, &d->chain)) == 1) {
		vq_push(vq, &d->chain, 0);
		d->popped++;
	}
	if (r < 0)
		d->ctx->failed(d->ctx->transport, "fake: malformed ring");
	else
		d->ctx->used(d->ctx->transport, q);
}

static void fake_fd_ready(void *opaque, int fd)
{
	struct fake_dev *d = opaque;
	uint64_t n;
	if (!d->ctx || fd != d->watch_fd || read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n)) {
		d->broken_promises++;
		return;
	}
	d->fd_ready_calls++;
}

static void fake_reset(void *opaque)
{
	struct fake_dev *d = opaque;
	d->reset_calls++;
	d->ctx = NULL;
}

static int fake_save(void *opaque, struct snapbuf *out)
{
	struct fake_dev *d = opaque;
	snapbuf_put_u32(out, DEV_MAGIC);
	return snapbuf_put_u8(out, d->state);
}

static int fake_load(void *opaque, struct snapbuf *in)
{
	struct fake_dev *d = opaque;
	uint32_t magic = 0;
	snapbuf_get_u32(in, &magic);
	int r = snapbuf_get_u8(in, &d->state);
	return r ? r : magic == DEV_MAGIC ? 0 : -EINVAL;
}

static const struct virtio_device_ops fake_ops = {
	.name = "fake",
	.device_id = DEV_ID,
	.pci_class = DEV_CLASS,
	.num_queues = NQ,
	.queue_size = QSIZE,
	.config_size = CFG_SIZE,
	.features = fake_features,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.queue_notify = fake_queue_notify,
	.fd_ready = fake_fd_ready,
	.reset = fake_reset,
	.save = fake_save,
	.load = fake_load,
};

/* ---- fake interrupt controller ---- */

struct fake_irq {
	unsigned level_calls, msi_calls;
	uint32_t gsi;
	int level;
	uint64_t msi_addr;
	uint32_t msi_data;
};

static int fake_set_level(void *opaque, uint32_t gsi, int level)
{
	struct fake_irq *r = opaque;
	r->level_calls++;
	r->gsi = gsi;
	r->level = level;
	return 0;
}

static int fake_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct fake_irq *r = opaque;
	r->msi_calls++;
	r->msi_addr = addr;
	r->msi_data = data;
	return 0;
}

/* ---- fixture ---- */

struct fx {
	struct guest_mem mem;
	struct fake_irq rec;
	struct irq_ctl irq;
	struct fake_dev dev;
	struct virtio_pci t;
	uint16_t avail_idx[NQ]; /* driver's next avail->idx */
	uint16_t next_desc[NQ];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f || guest_mem_init(&f->mem, GUEST_MEM_MIN_SIZE)) {
		free(f);
		return -1;
	}
	f->irq = (struct irq_ctl){fake_set_level, fake_msi, &f->rec};
	f->dev.watch_fd = -1;
	if (virtio_pci_init(&f->t, &fake_ops, &f->dev, &f->mem, &f->irq, GSI)) {
		guest_mem_destroy(&f->mem);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	virtio_pci_destroy(&f->t);
	int r = f->dev.broken_promises ? -1 : 0;
	guest_mem_destroy(&f->mem);
	free(f);
	return r;
}

/* Processes notifications as the I/O thread would. */
static void poll_dev(struct virtio_pci *t, struct fake_dev *d)
{
	virtio_pci_poll(t);
	assert_int_equal(d->broken_promises, 0);
}

static void poll(struct fx *f) { poll_dev(&f->t, &f->dev); }

/* ---- driver-side helpers ---- */

static void bw(struct virtio_pci *t, uint64_t off, unsigned size, uint64_t v)
{
	uint8_t b[8];
	for (unsigned i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	virtio_pci_bar_write(t, off, b, size);
}

static uint64_t br(struct virtio_pci *t, uint64_t off, unsigned size)
{
	uint8_t b[8];
	memset(b, 0xa5, sizeof(b));
	virtio_pci_bar_read(t, off, b, size);
	uint64_t v = 0;
	for (unsigned i = 0; i < size && i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static uint8_t status(struct virtio_pci *t) { return (uint8_t)br(t, VPCI_STATUS, 1); }
static void set_status(struct virtio_pci *t, uint8_t v) { bw(t, VPCI_STATUS, 1, v); }
static void select_q(struct virtio_pci *t, unsigned q) { bw(t, VPCI_Q_SELECT, 2, q); }

static void write_features(struct virtio_pci *t, uint64_t feat)
{
	bw(t, VPCI_GFSELECT, 4, 0);
	bw(t, VPCI_GF, 4, (uint32_t)feat);
	bw(t, VPCI_GFSELECT, 4, 1);
	bw(t, VPCI_GF, 4, feat >> 32);
}

static uint64_t read_features(struct virtio_pci *t, unsigned sel_reg, unsigned val_reg)
{
	bw(t, sel_reg, 4, 0);
	uint64_t lo = br(t, val_reg, 4);
	bw(t, sel_reg, 4, 1);
	return lo | br(t, val_reg, 4) << 32;
}

static uint64_t driver_features(struct virtio_pci *t)
{
	return read_features(t, VPCI_GFSELECT, VPCI_GF);
}

static uint64_t device_features(struct virtio_pci *t)
{
	return read_features(t, VPCI_DFSELECT, VPCI_DF);
}

/* §3.1.1 steps 1-6 with `feat`; returns the status read back. */
static uint8_t negotiate(struct virtio_pci *t, uint64_t feat)
{
	set_status(t, ST_ACK);
	set_status(t, ST_ACK | ST_DRV);
	write_features(t, feat);
	set_status(t, ST_ACK | ST_DRV | ST_FOK);
	return status(t);
}

static void set_q_addrs(struct virtio_pci *t, uint64_t desc, uint64_t avail, uint64_t used)
{
	bw(t, VPCI_Q_DESC, 4, (uint32_t)desc);
	bw(t, VPCI_Q_DESC + 4, 4, desc >> 32);
	bw(t, VPCI_Q_AVAIL, 4, (uint32_t)avail);
	bw(t, VPCI_Q_AVAIL + 4, 4, avail >> 32);
	bw(t, VPCI_Q_USED, 4, (uint32_t)used);
	bw(t, VPCI_Q_USED + 4, 4, used >> 32);
}

/* Zeroes queue q's rings (the driver's job before enabling, §2.7) and
 * sets it up at the default size. */
static void setup_queue_on(struct fx *f, struct virtio_pci *t, unsigned q)
{
	uint8_t *rings = guest_mem_ptr(&f->mem, RING_GPA(q), 0x3000);
	assert_non_null(rings);
	memset(rings, 0, 0x3000);
	f->avail_idx[q] = 0;
	f->next_desc[q] = 0;
	select_q(t, q);
	set_q_addrs(t, RING_GPA(q), RING_GPA(q) + AVAIL_OFF, RING_GPA(q) + USED_OFF);
	bw(t, VPCI_Q_ENABLE, 2, 0); /* §4.1.4.3.2: only 1 enables */
	assert_int_equal(br(t, VPCI_Q_ENABLE, 2), 0);
	bw(t, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(br(t, VPCI_Q_ENABLE, 2), 1);
}

static void setup_queue(struct fx *f, unsigned q) { setup_queue_on(f, &f->t, q); }

static void bring_up(struct fx *f)
{
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	for (unsigned q = 0; q < NQ; q++)
		setup_queue(f, q);
	set_status(&f->t, ST_LIVE);
	assert_int_equal(status(&f->t), ST_LIVE);
}

static void notify_on(struct virtio_pci *t, unsigned q)
{
	bw(t, VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * q, 2, q);
}

static void notify(struct fx *f, unsigned q) { notify_on(&f->t, q); }

static void put_desc(struct fx *f, unsigned q, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags)
{
	uint8_t d[16] = {0};
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	assert_int_equal(guest_mem_write(&f->mem, RING_GPA(q) + 16ULL * i, d, 16), 0);
}

/* Publishes a one-buffer chain at `addr`; returns its head. */
static uint16_t add_buf_at(struct fx *f, unsigned q, uint64_t addr, uint32_t len)
{
	uint16_t head = (uint16_t)(f->next_desc[q]++ % QSIZE);
	put_desc(f, q, head, addr, len, VIRTQ_DESC_F_WRITE);
	uint64_t avail = RING_GPA(q) + AVAIL_OFF;
	assert_int_equal(
	    guest_mem_write(&f->mem, avail + 4 + 2u * (f->avail_idx[q] % QSIZE), &head, 2), 0);
	f->avail_idx[q]++;
	assert_int_equal(guest_mem_write(&f->mem, avail + 2, &f->avail_idx[q], 2), 0);
	return head;
}

static uint16_t add_buf(struct fx *f, unsigned q)
{
	return add_buf_at(f, q, DATA_GPA + 0x1000ULL * q, 64);
}

static uint16_t used_idx(struct fx *f, unsigned q)
{
	uint16_t v = 0;
	assert_int_equal(guest_mem_read(&f->mem, RING_GPA(q) + USED_OFF + 2, &v, 2), 0);
	return v;
}

static uint32_t used_id(struct fx *f, unsigned q, uint16_t i)
{
	uint32_t v = 0;
	uint64_t gpa = RING_GPA(q) + USED_OFF + 4 + 8ULL * (i % QSIZE);
	assert_int_equal(guest_mem_read(&f->mem, gpa, &v, 4), 0);
	return v;
}

static void cfg_write(struct virtio_pci *t, unsigned off, unsigned size, uint32_t v)
{
	/* Calls t->fn.ops->config_written like the host bridge's path. */
	pci_config_write(&t->fn, off, size, v);
}

static unsigned msix_cap(struct virtio_pci *t)
{
	int cap = pci_config_find_cap(&t->fn, PCI_CAP_ID_MSIX);
	assert_true(cap >= PCI_CAP_START);
	return (unsigned)cap;
}

static void msix_enable(struct virtio_pci *t)
{
	cfg_write(t, msix_cap(t) + MSIX_CAP_CONTROL, 2, MSIX_CONTROL_ENABLE);
}

static void msix_program(struct virtio_pci *t, unsigned v, uint32_t addr, uint32_t data,
			 uint32_t ctl)
{
	uint64_t e = VPCI_MSIX_TABLE_OFF + MSIX_ENTRY_SIZE * v;
	bw(t, e + MSIX_ENTRY_ADDR_LO, 4, addr);
	bw(t, e + MSIX_ENTRY_ADDR_HI, 4, 0);
	bw(t, e + MSIX_ENTRY_DATA, 4, data);
	bw(t, e + MSIX_ENTRY_CONTROL, 4, ctl);
}

/* ---- PCI identity and capabilities ---- */

static void test_init_rejects_bad_ops(void **state)
{
	struct fx *f = *state;
	struct virtio_pci *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	struct virtio_device_ops ops = fake_ops;
	ops.num_queues = 0;
	assert_int_equal(virtio_pci_init(t, &ops, &f->dev, &f->mem, &f->irq, GSI), -EINVAL);
	ops = fake_ops;
	ops.num_queues = VIRTIO_MAX_QUEUES + 1;
	assert_int_equal(virtio_pci_init(t, &ops, &f->dev, &f->mem, &f->irq, GSI), -EINVAL);
	ops = fake_ops;
	ops.queue_size = 12;
	assert_int_equal(virtio_pci_init(t, &ops, &f->dev, &f->mem, &f->irq, GSI), -EINVAL);
	ops = fake_ops;
	ops.config_size = VPCI_DEVICE_MAX + 1;
	assert_int_equal(virtio_pci_init(t, &ops, &f->dev, &f->mem, &f->irq, GSI), -EINVAL);
	ops = fake_ops;
	ops.activate = NULL;
	assert_int_equal(virtio_pci_init(t, &ops, &f->dev, &f->mem, &f->irq, GSI), -EINVAL);
	assert_int_equal(virtio_pci_init(t, &fake_ops, &f->dev, &f->mem, &f->irq, 0x100), -EINVAL);
	virtio_pci_destroy(t); /* harmless after a failed init */
	free(t);
}

static void test_pci_identity(void **state)
{
	struct fx *f = *state;
	const struct pci_function *fn = &f->t.fn;
	assert_int_equal(pci_config_read(fn, PCI_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(pci_config_read(fn, PCI_DEVICE_ID, 2), 0x1040 + DEV_ID);
	assert_int_equal(pci_config_read(fn, PCI_REVISION_ID, 1), 1);
	assert_int_equal(pci_config_read(fn, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	/* §4.1.2.1: subsystem device ID >= 0x40 for a modern device */
	assert_true(pci_config_read(fn, PCI_SUBSYSTEM_ID, 2) >= 0x40);
	assert_int_equal(pci_config_read(fn, PCI_REVISION_ID, 4) >> 8, DEV_CLASS);
	assert_int_equal(pci_config_read(fn, PCI_HEADER_TYPE, 1) & 0x7f, 0);
	assert_int_equal(pci_config_read(fn, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(pci_config_read(fn, PCI_INTERRUPT_LINE, 1), GSI);
	assert_true(pci_config_read(fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* BAR 0: a 32-bit memory BAR of VPCI_BAR_SIZE (sizing protocol) */
	assert_int_equal(pci_config_read(fn, PCI_BAR0, 4) & 0xf, 0);
	pci_config_write(&f->t.fn, PCI_BAR0, 4, 0xffffffff);
	assert_int_equal(pci_config_read(fn, PCI_BAR0, 4), (uint32_t) ~(VPCI_BAR_SIZE - 1));
	for (unsigned b = 1; b < PCI_NUM_BARS; b++)
		assert_int_equal(pci_config_read(fn, PCI_BAR0 + 4 * b, 4), 0);
	assert_int_equal(br(&f->t, VPCI_NUM_QUEUES, 2), NQ);
}

struct vcap {
	unsigned count, cap_len, bar, offset, length, mult;
};

/* Walks the list from 0x34 as a driver does (§4.1.4); returns the MSI-X
 * capability's offset. */
static unsigned walk_caps(const struct pci_function *fn, struct vcap caps[5])
{
	unsigned msix = 0, steps = 0;
	memset(caps, 0, 5 * sizeof(caps[0]));
	unsigned off = pci_config_read(fn, PCI_CAPABILITY_LIST, 1);
	while (off) {
		assert_true(++steps < 48);
		assert_true(off >= PCI_CAP_START && off < PCI_CONFIG_LEGACY_SIZE);
		assert_int_equal(off % 4, 0);
		unsigned id = pci_config_read(fn, off, 1);
		if (id == PCI_CAP_ID_VNDR) {
			unsigned type = pci_config_read(fn, off + 3, 1);
			assert_true(type >= 1 && type <= 4);
			struct vcap *c = &caps[type];
			c->count++;
			c->cap_len = pci_config_read(fn, off + 2, 1);
			c->bar = pci_config_read(fn, off + 4, 1);
			c->offset = pci_config_read(fn, off + 8, 4);
			c->length = pci_config_read(fn, off + 12, 4);
			if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
				c->mult = pci_config_read(fn, off + 16, 4);
		} else if (id == PCI_CAP_ID_MSIX) {
			assert_int_equal(msix, 0);
			msix = off;
		}
		off = pci_config_read(fn, off + 1, 1);
	}
	return msix;
}

static void test_virtio_caps(void **state)
{
	struct fx *f = *state;
	struct vcap c[5];
	walk_caps(&f->t.fn, c);
	const struct {
		unsigned type, offset, length;
	} want[] = {
	    {VIRTIO_PCI_CAP_COMMON_CFG, VPCI_COMMON_OFF, VPCI_COMMON_LEN},
	    {VIRTIO_PCI_CAP_NOTIFY_CFG, VPCI_NOTIFY_OFF, NQ * VPCI_NOTIFY_MULT},
	    {VIRTIO_PCI_CAP_ISR_CFG, VPCI_ISR_OFF, VPCI_ISR_LEN},
	    {VIRTIO_PCI_CAP_DEVICE_CFG, VPCI_DEVICE_OFF, CFG_SIZE},
	};
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct vcap *v = &c[want[i].type];
		assert_int_equal(v->count, 1);
		assert_int_equal(v->bar, VPCI_BAR);
		assert_int_equal(v->offset, want[i].offset);
		assert_int_equal(v->length, want[i].length);
		assert_true(v->offset + v->length <= VPCI_BAR_SIZE);
		assert_int_equal(v->cap_len, want[i].type == VIRTIO_PCI_CAP_NOTIFY_CFG ? 20 : 16);
	}
	assert_int_equal(c[VIRTIO_PCI_CAP_NOTIFY_CFG].mult, 4);
	/* §4.1.4.3: the common structure covers at least queue_device */
	assert_true(c[VIRTIO_PCI_CAP_COMMON_CFG].length >= VPCI_Q_USED + 8);
}

static void test_msix_cap(void **state)
{
	struct fx *f = *state;
	struct vcap c[5];
	unsigned cap = walk_caps(&f->t.fn, c);
	assert_true(cap != 0);
	uint32_t ctl = pci_config_read(&f->t.fn, cap + MSIX_CAP_CONTROL, 2);
	assert_int_equal((ctl & MSIX_CONTROL_TABLE_SIZE) + 1, NVEC);
	assert_int_equal(ctl & MSIX_CONTROL_ENABLE, 0);
	assert_int_equal(pci_config_read(&f->t.fn, cap + MSIX_CAP_TABLE, 4),
			 VPCI_MSIX_TABLE_OFF | VPCI_BAR);
	assert_int_equal(pci_config_read(&f->t.fn, cap + MSIX_CAP_PBA, 4),
			 VPCI_MSIX_PBA_OFF | VPCI_BAR);
	/* the table is reachable through BAR 0: every vector starts masked */
	for (unsigned v = 0; v < NVEC; v++)
		assert_int_equal(br(&f->t, VPCI_MSIX_TABLE_OFF + 16 * v + MSIX_ENTRY_CONTROL, 4),
				 MSIX_ENTRY_CONTROL_MASK);
}

/* ---- status machine and features ---- */

static void test_device_features(void **state)
{
	struct fx *f = *state;
	uint64_t df = device_features(&f->t);
	assert_true(df & F_DEV);
	assert_true(df & F_V1);
	assert_int_equal(df & ~(F_DEV | F_V1 | 1ULL << VIRTIO_F_INDIRECT_DESC |
				1ULL << VIRTIO_F_EVENT_IDX),
			 0);
	bw(&f->t, VPCI_DFSELECT, 4, 2);
	assert_int_equal(br(&f->t, VPCI_DF, 4), 0);
	bw(&f->t, VPCI_DF, 4, 0xffffffff); /* read-only */
	bw(&f->t, VPCI_DFSELECT, 4, 0);
	assert_int_equal(br(&f->t, VPCI_DF, 4), (uint32_t)df);
}

static void test_negotiation_and_activate(void **state)
{
	struct fx *f = *state;
	assert_int_equal(status(&f->t), 0);
	set_status(&f->t, ST_ACK);
	assert_int_equal(status(&f->t), ST_ACK);
	set_status(&f->t, ST_ACK | ST_DRV);
	assert_int_equal(status(&f->t), ST_ACK | ST_DRV);
	write_features(&f->t, FEATS);
	assert_int_equal(driver_features(&f->t), FEATS);
	set_status(&f->t, ST_ACK | ST_DRV | ST_FOK);
	assert_int_equal(status(&f->t), ST_ACK | ST_DRV | ST_FOK);
	for (unsigned q = 0; q < NQ; q++)
		setup_queue(f, q);
	assert_int_equal(f->dev.activate_calls, 0);
	set_status(&f->t, ST_LIVE);
	assert_int_equal(status(&f->t), ST_LIVE);
	assert_int_equal(f->dev.activate_calls, 1);
	assert_int_equal(f->dev.activated_features, FEATS);
	assert_non_null(f->dev.ctx);
	assert_int_equal(f->dev.ctx->nvq, NQ);
	/* DRIVER_OK written again: no second activation */
	set_status(&f->t, ST_LIVE);
	assert_int_equal(f->dev.activate_calls, 1);
	assert_int_equal(f->dev.reset_calls, 0);
}

static void test_features_ok_needs_version_1(void **state)
{
	struct fx *f = *state;
	assert_int_equal(negotiate(&f->t, F_DEV), ST_ACK | ST_DRV);
	/* the driver may try again with an acceptable set */
	write_features(&f->t, FEATS);
	set_status(&f->t, ST_ACK | ST_DRV | ST_FOK);
	assert_int_equal(status(&f->t), ST_ACK | ST_DRV | ST_FOK);
}

static void test_features_ok_rejects_unoffered(void **state)
{
	struct fx *f = *state;
	assert_int_equal(negotiate(&f->t, FEATS | 1ULL << 6), ST_ACK | ST_DRV);
	set_status(&f->t, 0);
	assert_int_equal(negotiate(&f->t, FEATS | 1ULL << 40), ST_ACK | ST_DRV);
	set_status(&f->t, 0);
	/* a subset of the offer without the device bit is fine */
	assert_int_equal(negotiate(&f->t, F_V1), ST_ACK | ST_DRV | ST_FOK);
}

static void test_features_ok_needs_driver(void **state)
{
	struct fx *f = *state;
	set_status(&f->t, ST_ACK);
	write_features(&f->t, FEATS);
	set_status(&f->t, ST_ACK | ST_FOK);
	assert_int_equal(status(&f->t), ST_ACK);
}

static void test_features_frozen_after_features_ok(void **state)
{
	struct fx *f = *state;
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	write_features(&f->t, F_V1);
	assert_int_equal(driver_features(&f->t), FEATS);
	bw(&f->t, VPCI_GFSELECT, 4, 0);
	bw(&f->t, VPCI_GF, 4, 0);
	assert_int_equal(driver_features(&f->t), FEATS);
	set_status(&f->t, ST_LIVE);
	assert_int_equal(f->dev.activated_features, FEATS);
}

static void test_driver_ok_needs_features_ok(void **state)
{
	struct fx *f = *state;
	set_status(&f->t, ST_ACK);
	set_status(&f->t, ST_ACK | ST_DRV);
	write_features(&f->t, FEATS);
	set_status(&f->t, ST_ACK | ST_DRV | ST_DOK);
	assert_int_equal(status(&f->t), ST_ACK | ST_DRV);
	assert_int_equal(f->dev.activate_calls, 0);
	/* FEATURES_OK refused, then DRIVER_OK: still not live */
	set_status(&f->t, 0);
	assert_int_equal(negotiate(&f->t, F_DEV), ST_ACK | ST_DRV);
	set_status(&f->t, ST_ACK | ST_DRV | ST_FOK | ST_DOK);
	assert_int_equal(status(&f->t) & (ST_FOK | ST_DOK), 0);
	assert_int_equal(f->dev.activate_calls, 0);
}

static void test_clearing_status_bits_ignored(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	set_status(&f->t, ST_ACK | ST_DRV);
	assert_int_equal(status(&f->t), ST_LIVE);
	set_status(&f->t, ST_DOK);
	assert_int_equal(status(&f->t), ST_LIVE);
	assert_int_equal(f->dev.reset_calls, 0);
	assert_int_equal(f->dev.activate_calls, 1);
	/* the guest cannot raise DEVICE_NEEDS_RESET itself */
	set_status(&f->t, ST_LIVE | ST_NR);
	assert_int_equal(status(&f->t), ST_LIVE);
	/* only a byte write reaches the status field */
	bw(&f->t, VPCI_STATUS, 2, 0);
	assert_int_equal(status(&f->t), ST_LIVE);
}

static void test_reset_clears_everything(void **state)
{
	struct fx *f = *state;
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	bw(&f->t, VPCI_MSIX_CONFIG, 2, 0);
	select_q(&f->t, 1);
	bw(&f->t, VPCI_Q_SIZE, 2, 8);
	bw(&f->t, VPCI_Q_MSIX, 2, 2);
	setup_queue(f, 1);
	set_status(&f->t, ST_LIVE);
	assert_int_equal(f->dev.activate_calls, 1);

	set_status(&f->t, 0);
	assert_int_equal(status(&f->t), 0);
	assert_int_equal(f->dev.reset_calls, 1);
	assert_null(f->dev.ctx);
	assert_int_equal(driver_features(&f->t), 0);
	assert_int_equal(br(&f->t, VPCI_MSIX_CONFIG, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(br(&f->t, VPCI_Q_SELECT, 2), 0);
	for (unsigned q = 0; q < NQ; q++) {
		select_q(&f->t, q);
		assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), QSIZE);
		assert_int_equal(br(&f->t, VPCI_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
		assert_int_equal(br(&f->t, VPCI_Q_ENABLE, 2), 0);
		assert_int_equal(br(&f->t, VPCI_Q_DESC, 8), 0);
		assert_int_equal(br(&f->t, VPCI_Q_AVAIL, 8), 0);
		assert_int_equal(br(&f->t, VPCI_Q_USED, 8), 0);
		assert_false(f->t.vq[q].enabled);
	}
	/* a second reset of an idle device does not reset the backend again */
	set_status(&f->t, 0);
	assert_int_equal(f->dev.reset_calls, 1);
	/* and the device can be brought up again */
	bring_up(f);
	assert_int_equal(f->dev.activate_calls, 2);
}

static void test_activate_failure_needs_reset(void **state)
{
	struct fx *f = *state;
	f->dev.activate_result = -EIO;
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	setup_queue(f, 0);
	set_status(&f->t, ST_LIVE);
	assert_int_equal(status(&f->t), ST_LIVE | ST_NR);
	assert_int_equal(f->dev.activate_calls, 1);
	assert_int_equal(f->dev.reset_calls, 1);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 0);
	assert_int_equal(used_idx(f, 0), 0);
}

/* A device that calls ctx->failed() from activate() but returns 0 must
 * stay stopped all the same (§2.1.2). */
static void test_failed_during_activate(void **state)
{
	struct fx *f = *state;
	f->dev.fail_in_activate = true;
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	setup_queue(f, 0);
	set_status(&f->t, ST_LIVE);
	assert_int_equal(status(&f->t), ST_LIVE | ST_NR);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 0);
}

/* ---- queue registers ---- */

static void test_queue_select_out_of_range(void **state)
{
	struct fx *f = *state;
	select_q(&f->t, 0);
	uint64_t before = br(&f->t, VPCI_Q_DESC, 8);
	for (unsigned sel = NQ; sel <= 0xffff; sel = sel * 2 + 1) {
		select_q(&f->t, sel);
		assert_int_equal(br(&f->t, VPCI_Q_SELECT, 2), sel);
		assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), 0);
		bw(&f->t, VPCI_Q_SIZE, 2, 8);
		bw(&f->t, VPCI_Q_MSIX, 2, 1);
		set_q_addrs(&f->t, 0x1000, 0x2000, 0x3000);
		bw(&f->t, VPCI_Q_ENABLE, 2, 1);
		assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), 0);
		assert_int_equal(br(&f->t, VPCI_Q_ENABLE, 2), 0);
		assert_int_equal(br(&f->t, VPCI_Q_DESC, 8), 0);
		assert_int_equal(br(&f->t, VPCI_Q_MSIX, 2), 0);
	}
	assert_int_equal(status(&f->t), 0);
	for (unsigned q = 0; q < NQ; q++) {
		select_q(&f->t, q);
		assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), QSIZE);
		assert_int_equal(br(&f->t, VPCI_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
		assert_int_equal(br(&f->t, VPCI_Q_DESC, 8), before);
	}
}

static void test_queue_size(void **state)
{
	struct fx *f = *state;
	select_q(&f->t, 0);
	assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), QSIZE);
	const uint16_t bad[] = {0, 3, 12, 15, 32, 0x8000, 0xffff};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bw(&f->t, VPCI_Q_SIZE, 2, bad[i]);
		assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), QSIZE);
	}
	bw(&f->t, VPCI_Q_SIZE, 2, 8);
	assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), 8);
	bw(&f->t, VPCI_Q_SIZE, 2, 1);
	assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), 1);
	bw(&f->t, VPCI_Q_SIZE, 4, 4); /* wrong width: ignored */
	assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), 1);
	bw(&f->t, VPCI_Q_SIZE, 2, QSIZE);
	assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), QSIZE);
	/* the other queue is untouched */
	select_q(&f->t, 1);
	bw(&f->t, VPCI_Q_SIZE, 2, 2);
	select_q(&f->t, 0);
	assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), QSIZE);
	/* a smaller size reaches the virtqueue */
	select_q(&f->t, 1);
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	set_q_addrs(&f->t, RING_GPA(1), RING_GPA(1) + AVAIL_OFF, RING_GPA(1) + USED_OFF);
	bw(&f->t, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(f->t.vq[1].size, 2);
}

static void test_queue_address_halves(void **state)
{
	struct fx *f = *state;
	select_q(&f->t, 1);
	set_q_addrs(&f->t, 0x123456789abcdef0ULL, 0x0fedcba987654320ULL, 0x1111222233334444ULL);
	assert_int_equal(br(&f->t, VPCI_Q_DESC, 8), 0x123456789abcdef0ULL);
	assert_int_equal(br(&f->t, VPCI_Q_DESC, 4), 0x9abcdef0u);
	assert_int_equal(br(&f->t, VPCI_Q_DESC + 4, 4), 0x12345678u);
	assert_int_equal(br(&f->t, VPCI_Q_AVAIL, 8), 0x0fedcba987654320ULL);
	assert_int_equal(br(&f->t, VPCI_Q_USED, 8), 0x1111222233334444ULL);
	/* changing one half keeps the other */
	bw(&f->t, VPCI_Q_DESC + 4, 4, 0);
	assert_int_equal(br(&f->t, VPCI_Q_DESC, 8), 0x9abcdef0u);
	/* a whole 64-bit write also works; 2-byte or misaligned ones do not */
	bw(&f->t, VPCI_Q_AVAIL, 8, 0x42000ULL);
	assert_int_equal(br(&f->t, VPCI_Q_AVAIL, 8), 0x42000ULL);
	bw(&f->t, VPCI_Q_AVAIL, 2, 0xffff);
	bw(&f->t, VPCI_Q_AVAIL + 2, 4, 0xffffffff);
	bw(&f->t, VPCI_Q_AVAIL + 4, 8, 0xffffffff); /* crosses into queue_device */
	assert_int_equal(br(&f->t, VPCI_Q_AVAIL, 8), 0x42000ULL);
	assert_int_equal(br(&f->t, VPCI_Q_USED, 8), 0x1111222233334444ULL);
	/* queue 0 kept its own registers */
	select_q(&f->t, 0);
	assert_int_equal(br(&f->t, VPCI_Q_DESC, 8), 0);
}

static void test_queue_enable_bad_rings(void **state)
{
	struct fx *f = *state;
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	select_q(&f->t, 0);
	set_q_addrs(&f->t, OUTSIDE_RAM, RING_GPA(0) + AVAIL_OFF, RING_GPA(0) + USED_OFF);
	bw(&f->t, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(br(&f->t, VPCI_Q_ENABLE, 2), 0);
	assert_false(f->t.vq[0].enabled);
	assert_true(status(&f->t) & ST_NR);
	/* the config-change interrupt (INTx, ISR bit 1) tells the driver */
	assert_int_equal(f->rec.level, 1);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);
	/* DRIVER_OK on a device that needs a reset does not activate it */
	set_status(&f->t, ST_LIVE | ST_NR);
	assert_int_equal(f->dev.activate_calls, 0);

	/* after a reset, misaligned and straddling rings fail the same way */
	set_status(&f->t, 0);
	assert_int_equal(status(&f->t), 0);
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	select_q(&f->t, 1);
	set_q_addrs(&f->t, RING_GPA(1) + 8, RING_GPA(1) + AVAIL_OFF, RING_GPA(1) + USED_OFF);
	bw(&f->t, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(br(&f->t, VPCI_Q_ENABLE, 2), 0);
	assert_true(status(&f->t) & ST_NR);
	set_status(&f->t, 0);
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	select_q(&f->t, 1);
	set_q_addrs(&f->t, RING_GPA(1), RING_GPA(1) + AVAIL_OFF, GUEST_MEM_MIN_SIZE - 64);
	bw(&f->t, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(br(&f->t, VPCI_Q_ENABLE, 2), 0);
	assert_true(status(&f->t) & ST_NR);
}

static void test_queue_regs_frozen(void **state)
{
	struct fx *f = *state;
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	setup_queue(f, 0);
	/* enabled: size, vector, addresses are fixed; writing 0 does not disable */
	bw(&f->t, VPCI_Q_SIZE, 2, 8);
	bw(&f->t, VPCI_Q_MSIX, 2, 1);
	set_q_addrs(&f->t, 0x80000, 0x81000, 0x82000);
	bw(&f->t, VPCI_Q_ENABLE, 2, 0);
	assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), QSIZE);
	assert_int_equal(br(&f->t, VPCI_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(br(&f->t, VPCI_Q_DESC, 8), RING_GPA(0));
	assert_int_equal(br(&f->t, VPCI_Q_AVAIL, 8), RING_GPA(0) + AVAIL_OFF);
	assert_int_equal(br(&f->t, VPCI_Q_USED, 8), RING_GPA(0) + USED_OFF);
	assert_int_equal(br(&f->t, VPCI_Q_ENABLE, 2), 1);
	/* after DRIVER_OK even a disabled queue is fixed */
	set_status(&f->t, ST_LIVE);
	select_q(&f->t, 1);
	bw(&f->t, VPCI_Q_SIZE, 2, 4);
	set_q_addrs(&f->t, RING_GPA(1), RING_GPA(1) + AVAIL_OFF, RING_GPA(1) + USED_OFF);
	bw(&f->t, VPCI_Q_ENABLE, 2, 1);
	assert_int_equal(br(&f->t, VPCI_Q_SIZE, 2), QSIZE);
	assert_int_equal(br(&f->t, VPCI_Q_DESC, 8), 0);
	assert_int_equal(br(&f->t, VPCI_Q_ENABLE, 2), 0);
	assert_false(f->t.vq[1].enabled);
}

static void test_queue_notify_off(void **state)
{
	struct fx *f = *state;
	for (unsigned q = 0; q < NQ; q++) {
		select_q(&f->t, q);
		assert_int_equal(br(&f->t, VPCI_Q_NOFF, 2), q);
		bw(&f->t, VPCI_Q_NOFF, 2, 7); /* read-only */
		assert_int_equal(br(&f->t, VPCI_Q_NOFF, 2), q);
	}
}

/* ---- notifications ---- */

static void test_notify_before_driver_ok(void **state)
{
	struct fx *f = *state;
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	setup_queue(f, 0);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 0);
	assert_int_equal(used_idx(f, 0), 0);
	/* the early kick was dropped, not held back */
	set_status(&f->t, ST_LIVE);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 0);
}

static void test_notify_reaches_device(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	uint16_t h0 = add_buf(f, 0);
	uint16_t h1 = add_buf(f, 0);
	notify(f, 0);
	assert_int_equal(f->dev.notify_calls[0], 0); /* only on poll */
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 1);
	assert_int_equal(f->dev.notify_calls[1], 0);
	assert_int_equal(f->dev.popped, 2);
	assert_int_equal(used_idx(f, 0), 2);
	assert_int_equal(used_id(f, 0, 0), h0);
	assert_int_equal(used_id(f, 0, 1), h1);
	assert_int_equal(f->t.stats.notifies, 1);
	/* nothing pending: a second poll does nothing */
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 1);
	/* queue 1 through its own notify address, with a 4-byte write */
	uint16_t h = add_buf(f, 1);
	bw(&f->t, VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT, 4, 1);
	poll(f);
	assert_int_equal(f->dev.notify_calls[1], 1);
	assert_int_equal(used_idx(f, 1), 1);
	assert_int_equal(used_id(f, 1, 0), h);
	/* notify addresses of queues the device does not have are ignored */
	bw(&f->t, VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * NQ, 2, NQ);
	bw(&f->t, VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * (VIRTIO_MAX_QUEUES - 1), 2, 0);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0] + f->dev.notify_calls[1], 2);
	/* reading the notify area has no effect */
	assert_int_equal(br(&f->t, VPCI_NOTIFY_OFF, 2), 0);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 1);
}

static void test_notify_disabled_queue(void **state)
{
	struct fx *f = *state;
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	setup_queue(f, 0);
	set_status(&f->t, ST_LIVE);
	notify(f, 1);
	poll(f);
	assert_int_equal(f->dev.notify_calls[1], 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 1);
}

/* ---- interrupts ---- */

static void test_intx_and_isr(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	assert_int_equal(f->rec.level_calls, 0);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(used_idx(f, 0), 1);
	assert_true(f->rec.level_calls >= 1);
	assert_int_equal(f->rec.gsi, GSI);
	assert_int_equal(f->rec.level, 1);
	assert_int_equal(f->rec.msi_calls, 0);
	/* reading ISR returns the queue bit, clears it, lowers the line */
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
	assert_int_equal(f->rec.level, 0);
	assert_int_equal(f->rec.gsi, GSI);
	unsigned calls = f->rec.level_calls;
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), 0);
	assert_int_equal(f->rec.level_calls, calls); /* no redundant lowering */
	/* only ISR's own byte acknowledges */
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF + 1, 1), 0);
	assert_int_equal(f->rec.level, 1);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 4), VIRTIO_ISR_QUEUE);
	assert_int_equal(f->rec.level, 0);
}

/* Command.Interrupt Disable masks the line but not the ISR; clearing it
 * raises the line again for an unacknowledged interrupt. */
static void test_intx_disable_bit(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	uint16_t cmd = (uint16_t)pci_config_read(&f->t.fn, PCI_COMMAND, 2);
	pci_config_write(&f->t.fn, PCI_COMMAND, 2, cmd | PCI_COMMAND_INTX_DISABLE);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(used_idx(f, 0), 1);
	assert_int_equal(f->rec.level_calls, 0);
	pci_config_write(&f->t.fn, PCI_COMMAND, 2, cmd);
	assert_int_equal(f->rec.level, 1);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
	assert_int_equal(f->rec.level, 0);
}

static void test_intx_suppressed(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	uint16_t flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	assert_int_equal(guest_mem_write(&f->mem, RING_GPA(0) + AVAIL_OFF, &flags, 2), 0);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(used_idx(f, 0), 1);
	assert_int_equal(f->rec.level_calls, 0);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), 0);
}

static void test_reset_lowers_intx(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(f->rec.level, 1);
	set_status(&f->t, 0);
	assert_int_equal(f->rec.level, 0);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), 0);
}

static void test_msix_interrupt(void **state)
{
	struct fx *f = *state;
	msix_enable(&f->t);
	msix_program(&f->t, 1, MSI_ADDR, MSI_DATA, 0);
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	bw(&f->t, VPCI_MSIX_CONFIG, 2, 0);
	assert_int_equal(br(&f->t, VPCI_MSIX_CONFIG, 2), 0);
	select_q(&f->t, 0);
	bw(&f->t, VPCI_Q_MSIX, 2, 1);
	assert_int_equal(br(&f->t, VPCI_Q_MSIX, 2), 1);
	setup_queue(f, 0);
	set_status(&f->t, ST_LIVE);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(used_idx(f, 0), 1);
	assert_int_equal(f->rec.msi_calls, 1);
	assert_int_equal(f->rec.msi_addr, MSI_ADDR);
	assert_int_equal(f->rec.msi_data, MSI_DATA);
	assert_int_equal(f->rec.level_calls, 0);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), 0);

	/* a masked vector is held pending (visible in the PBA through BAR 0)
	 * and delivered on unmask */
	msix_program(&f->t, 1, MSI_ADDR, MSI_DATA + 1, MSIX_ENTRY_CONTROL_MASK);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(f->rec.msi_calls, 1);
	assert_int_equal(br(&f->t, VPCI_MSIX_PBA_OFF, 8), 1u << 1);
	bw(&f->t, VPCI_MSIX_TABLE_OFF + 16 + MSIX_ENTRY_CONTROL, 4, 0);
	assert_int_equal(f->rec.msi_calls, 2);
	assert_int_equal(f->rec.msi_data, MSI_DATA + 1);
	assert_int_equal(br(&f->t, VPCI_MSIX_PBA_OFF, 8), 0);
}

static void test_msix_bad_vector(void **state)
{
	struct fx *f = *state;
	msix_enable(&f->t);
	for (unsigned v = 0; v < NVEC; v++)
		msix_program(&f->t, v, MSI_ADDR, MSI_DATA + v, 0);
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	const uint16_t bad[] = {NVEC, NVEC + 1, 0x7fff, 0xfffe};
	select_q(&f->t, 0);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bw(&f->t, VPCI_Q_MSIX, 2, bad[i]);
		assert_int_equal(br(&f->t, VPCI_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
		bw(&f->t, VPCI_MSIX_CONFIG, 2, bad[i]);
		assert_int_equal(br(&f->t, VPCI_MSIX_CONFIG, 2), VIRTIO_MSI_NO_VECTOR);
	}
	bw(&f->t, VPCI_MSIX_CONFIG, 2, NVEC - 1);
	assert_int_equal(br(&f->t, VPCI_MSIX_CONFIG, 2), NVEC - 1);
	bw(&f->t, VPCI_Q_MSIX, 2, NVEC);
	setup_queue(f, 0);
	set_status(&f->t, ST_LIVE);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(used_idx(f, 0), 1);
	assert_int_equal(f->rec.msi_calls, 0);
	assert_int_equal(f->rec.level_calls, 0);
	for (unsigned v = 0; v < NVEC; v++)
		assert_false(msix_is_pending(&f->t.msix, v));
}

/* ---- DEVICE_NEEDS_RESET from the device ---- */

static void test_failed_needs_reset(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	uint8_t gen = (uint8_t)br(&f->t, VPCI_CFG_GENERATION, 1);
	add_buf_at(f, 0, OUTSIDE_RAM, 64); /* vq_pop() says -EIO: ctx->failed() */
	notify(f, 0);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 1);
	assert_int_equal(status(&f->t), ST_LIVE | ST_NR);
	assert_int_equal((uint8_t)br(&f->t, VPCI_CFG_GENERATION, 1), (uint8_t)(gen + 1));
	assert_int_equal(f->rec.level, 1);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), VIRTIO_ISR_CONFIG);

	/* stopped: later notifications on any queue do not reach it */
	add_buf(f, 1);
	notify(f, 0);
	notify(f, 1);
	poll(f);
	assert_int_equal(f->dev.notify_calls[0], 1);
	assert_int_equal(f->dev.notify_calls[1], 0);
	/* re-writing the status does not revive it */
	set_status(&f->t, ST_LIVE | ST_NR);
	notify(f, 1);
	poll(f);
	assert_int_equal(f->dev.notify_calls[1], 0);
	assert_int_equal(f->dev.activate_calls, 1);

	/* reset and re-initialisation bring it back */
	set_status(&f->t, 0);
	assert_int_equal(status(&f->t), 0);
	assert_int_equal(f->dev.reset_calls, 1);
	bring_up(f);
	assert_int_equal(f->dev.activate_calls, 2);
	add_buf(f, 1);
	notify(f, 1);
	poll(f);
	assert_int_equal(f->dev.notify_calls[1], 1);
	assert_int_equal(used_idx(f, 1), 1);
}

static void test_failed_msix_config_vector(void **state)
{
	struct fx *f = *state;
	msix_enable(&f->t);
	msix_program(&f->t, 0, MSI_ADDR, MSI_DATA, 0);
	msix_program(&f->t, 1, MSI_ADDR, MSI_DATA + 1, 0);
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	bw(&f->t, VPCI_MSIX_CONFIG, 2, 0);
	select_q(&f->t, 0);
	bw(&f->t, VPCI_Q_MSIX, 2, 1);
	setup_queue(f, 0);
	set_status(&f->t, ST_LIVE);
	add_buf_at(f, 0, OUTSIDE_RAM, 64);
	notify(f, 0);
	poll(f);
	assert_true(status(&f->t) & ST_NR);
	assert_int_equal(f->rec.msi_calls, 1);
	assert_int_equal(f->rec.msi_data, MSI_DATA); /* the config vector */
	assert_int_equal(f->rec.level_calls, 0);
}

/* ---- device configuration ---- */

static void test_device_config(void **state)
{
	struct fx *f = *state;
	for (unsigned i = 0; i < CFG_SIZE; i++)
		f->dev.config[i] = (uint8_t)(0x11 * (i + 1));
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF, 4), 0x44332211u);
	assert_int_equal(f->dev.config_reads, 1);
	assert_int_equal(f->dev.cfg_off, 0);
	assert_int_equal(f->dev.cfg_len, 4);
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF + 6, 2), 0x8877u);
	assert_int_equal(f->dev.cfg_off, 6);
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF, 8), 0x8877665544332211ULL);
	assert_int_equal(f->dev.config_reads, 3);
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF + 7, 1), 0x88u);
	assert_int_equal(f->dev.config_reads, 4);
	/* beyond config_size, or straddling its end: 0, device not asked */
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF + CFG_SIZE, 1), 0);
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF + 6, 4), 0);
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF + 4, 8), 0);
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF + VPCI_DEVICE_MAX - 4, 8), 0);
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF + VPCI_DEVICE_MAX - 1, 1), 0);
	/* sizes other than 1/2/4/8 are not passed on (device.h's promise) */
	assert_int_equal(br(&f->t, VPCI_DEVICE_OFF, 3), 0);
	assert_int_equal(f->dev.config_reads, 4);

	bw(&f->t, VPCI_DEVICE_OFF + 2, 2, 0xbeef);
	assert_int_equal(f->dev.config_writes, 1);
	assert_int_equal(f->dev.cfg_off, 2);
	assert_int_equal(f->dev.cfg_len, 2);
	assert_int_equal(f->dev.config[2], 0xef);
	assert_int_equal(f->dev.config[3], 0xbe);
	bw(&f->t, VPCI_DEVICE_OFF + 6, 4, 0xffffffff);
	bw(&f->t, VPCI_DEVICE_OFF + CFG_SIZE, 1, 0xff);
	bw(&f->t, VPCI_DEVICE_OFF + 1, 3, 0xffffff);
	bw(&f->t, VPCI_DEVICE_OFF + 4, 8, ~0ULL);
	assert_int_equal(f->dev.config_writes, 1);
	assert_int_equal(f->dev.config[7], 0x88);
	assert_int_equal(f->dev.broken_promises, 0);
}

static void test_bar_odd_accesses(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	/* odd sizes read as 0 and do not acknowledge ISR */
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 3), 0);
	assert_int_equal(br(&f->t, VPCI_STATUS, 3), 0);
	assert_int_equal(br(&f->t, VPCI_STATUS, 0), 0);
	uint8_t big[16];
	memset(big, 0xa5, sizeof(big));
	virtio_pci_bar_read(&f->t, VPCI_STATUS, big, 16);
	assert_int_equal(big[8], 0xa5); /* never more than 8 bytes touched */
	assert_int_equal(f->rec.level, 1);
	/* holes and out-of-BAR offsets read as 0 and ignore writes */
	assert_int_equal(br(&f->t, VPCI_COMMON_OFF + VPCI_COMMON_LEN, 4), 0);
	assert_int_equal(br(&f->t, VPCI_BAR_SIZE, 4), 0);
	assert_int_equal(br(&f->t, UINT64_MAX - 3, 4), 0);
	bw(&f->t, UINT64_MAX - 1, 2, 0);
	bw(&f->t, VPCI_STATUS, 3, 0); /* odd size: not a reset */
	bw(&f->t, VPCI_COMMON_OFF + VPCI_COMMON_LEN - 2, 4, 0);
	assert_int_equal(status(&f->t), ST_LIVE);
	assert_int_equal(br(&f->t, VPCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
}

/* ---- save / load ---- */

/* Byte offsets in the transport section (see virtio_pci_save). */
#define SNAP_VERSION 4
#define SNAP_ID 8
#define SNAP_STATUS 10
#define SNAP_FEATURES 11
#define SNAP_ISR 22
#define SNAP_NQ 23
#define SNAP_Q0 24
#define SNAP_QLEN 33
#define SNAP_Q_SIZE 0
#define SNAP_Q_ENABLED 4
#define SNAP_Q_DESC 5
#define SNAP_DEV (SNAP_Q0 + NQ * SNAP_QLEN)
#define SNAP_LEN (SNAP_DEV + 5)

struct second {
	struct fake_dev dev;
	struct virtio_pci t;
};

static struct second *second_new(struct fx *f)
{
	struct second *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->dev.watch_fd = -1;
	assert_int_equal(virtio_pci_init(&s->t, &fake_ops, &s->dev, &f->mem, &f->irq, GSI), 0);
	return s;
}

static void second_free(struct second *s)
{
	virtio_pci_destroy(&s->t);
	assert_int_equal(s->dev.broken_promises, 0);
	free(s);
}

/* A live device with vectors set and chains consumed on both queues;
 * returns its saved state in *out (a writer). */
static void live_snapshot(struct fx *f, struct snapbuf *out)
{
	assert_int_equal(negotiate(&f->t, FEATS), ST_ACK | ST_DRV | ST_FOK);
	bw(&f->t, VPCI_MSIX_CONFIG, 2, 0);
	for (unsigned q = 0; q < NQ; q++) {
		select_q(&f->t, q);
		bw(&f->t, VPCI_Q_MSIX, 2, q + 1);
		setup_queue(f, q);
	}
	set_status(&f->t, ST_LIVE);
	for (unsigned i = 0; i < 3; i++)
		add_buf(f, 0);
	add_buf(f, 1);
	notify(f, 0);
	notify(f, 1);
	poll(f);
	assert_int_equal(used_idx(f, 0), 3);
	assert_int_equal(used_idx(f, 1), 1);
	(void)br(&f->t, VPCI_ISR_OFF, 1); /* acknowledged: no INTx pending */
	f->dev.state = 0x5a;
	snapbuf_init_writer(out);
	assert_int_equal(virtio_pci_save(&f->t, out), 0);
	assert_int_equal(out->len, SNAP_LEN);
}

static int load_bytes(struct virtio_pci *t, const uint8_t *data, size_t len)
{
	struct snapbuf in;
	snapbuf_init_reader(&in, data, len);
	return virtio_pci_load(t, &in);
}

static void test_save_load(void **state)
{
	struct fx *f = *state;
	struct snapbuf out;
	live_snapshot(f, &out);
	struct second *s = second_new(f);
	assert_int_equal(load_bytes(&s->t, out.data, out.len), 0);
	struct virtio_pci *t = &s->t;
	assert_int_equal(status(t), ST_LIVE);
	assert_int_equal(driver_features(t), FEATS);
	assert_int_equal(s->dev.activate_calls, 1);
	assert_int_equal(s->dev.activated_features, FEATS);
	assert_int_equal(s->dev.state, 0x5a);
	assert_int_equal(br(t, VPCI_MSIX_CONFIG, 2), 0);
	for (unsigned q = 0; q < NQ; q++) {
		select_q(t, q);
		assert_int_equal(br(t, VPCI_Q_SIZE, 2), QSIZE);
		assert_int_equal(br(t, VPCI_Q_MSIX, 2), q + 1);
		assert_int_equal(br(t, VPCI_Q_ENABLE, 2), 1);
		assert_int_equal(br(t, VPCI_Q_DESC, 8), RING_GPA(q));
		assert_int_equal(br(t, VPCI_Q_AVAIL, 8), RING_GPA(q) + AVAIL_OFF);
		assert_int_equal(br(t, VPCI_Q_USED, 8), RING_GPA(q) + USED_OFF);
		assert_true(t->vq[q].enabled);
	}
	assert_int_equal(t->vq[0].last_avail_idx, 3);
	assert_int_equal(t->vq[0].used_idx, 3);
	assert_int_equal(t->vq[1].last_avail_idx, 1);
	assert_int_equal(t->vq[1].used_idx, 1);
	assert_int_equal(br(t, VPCI_ISR_OFF, 1), 0);
	/* the restored device carries on where the saved one stopped */
	uint16_t h = add_buf(f, 0);
	notify_on(t, 0);
	poll_dev(t, &s->dev);
	assert_int_equal(s->dev.notify_calls[0], 1);
	assert_int_equal(s->dev.popped, 1);
	assert_int_equal(used_idx(f, 0), 4);
	assert_int_equal(used_id(f, 0, 3), h);
	second_free(s);
	snapbuf_free(&out);
}

/* An unacknowledged INTx survives save/load: ISR and the line level. */
static void test_save_load_pending_intx(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	add_buf(f, 0);
	notify(f, 0);
	poll(f);
	assert_int_equal(f->rec.level, 1);
	struct snapbuf out;
	snapbuf_init_writer(&out);
	assert_int_equal(virtio_pci_save(&f->t, &out), 0);
	f->rec.level = 0;
	struct second *s = second_new(f);
	assert_int_equal(load_bytes(&s->t, out.data, out.len), 0);
	assert_int_equal(f->rec.level, 1);
	assert_int_equal(f->rec.gsi, GSI);
	assert_int_equal(br(&s->t, VPCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
	assert_int_equal(f->rec.level, 0);
	second_free(s);
	snapbuf_free(&out);
}

/* A failed load leaves the transport reset: idle status, no features,
 * default queues, backend reset and not notified. */
static void assert_reset(struct second *s, unsigned resets_before)
{
	struct virtio_pci *t = &s->t;
	assert_int_equal(status(t), 0);
	assert_int_equal(driver_features(t), 0);
	assert_int_equal(br(t, VPCI_MSIX_CONFIG, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(br(t, VPCI_ISR_OFF, 1), 0);
	for (unsigned q = 0; q < NQ; q++) {
		select_q(t, q);
		assert_int_equal(br(t, VPCI_Q_SIZE, 2), QSIZE);
		assert_int_equal(br(t, VPCI_Q_ENABLE, 2), 0);
		assert_int_equal(br(t, VPCI_Q_DESC, 8), 0);
		assert_int_equal(br(t, VPCI_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
		assert_false(t->vq[q].enabled);
	}
	assert_true(s->dev.reset_calls > resets_before);
	unsigned calls = s->dev.notify_calls[0];
	notify_on(t, 0);
	poll_dev(t, &s->dev);
	assert_int_equal(s->dev.notify_calls[0], calls);
}

static void put_le_at(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Loads a good snapshot into s (so it is live), then `bad`, which must be
 * refused and leave s reset. */
static void expect_refused(struct second *s, const struct snapbuf *good, const uint8_t *bad,
			   size_t len)
{
	assert_int_equal(load_bytes(&s->t, good->data, good->len), 0);
	assert_int_equal(status(&s->t), ST_LIVE);
	unsigned resets = s->dev.reset_calls;
	assert_true(load_bytes(&s->t, bad, len) < 0);
	assert_reset(s, resets);
}

static void test_load_rejects_corruption(void **state)
{
	struct fx *f = *state;
	struct snapbuf out;
	live_snapshot(f, &out);
	struct second *s = second_new(f);
	uint8_t bad[SNAP_LEN];
	const struct {
		unsigned off, n;
		uint64_t v;
	} edits[] = {
	    {0, 1, 'X'},                                              /* tag */
	    {SNAP_VERSION, 4, 2},                                     /* newer version */
	    {SNAP_ID, 2, DEV_ID + 1},                                 /* another device */
	    {SNAP_FEATURES, 8, FEATS | 1ULL << 6},                    /* unoffered bit */
	    {SNAP_FEATURES, 8, FEATS | 1ULL << 63},                   /* unoffered bit */
	    {SNAP_FEATURES, 8, F_DEV},                                /* FEATURES_OK w/o V1 */
	    {SNAP_STATUS, 1, ST_ACK | ST_DRV | ST_DOK},               /* DRIVER_OK w/o FOK */
	    {SNAP_STATUS, 1, ST_ACK | ST_FOK | ST_DOK},               /* FOK w/o DRIVER */
	    {SNAP_ISR, 1, 4},                                         /* unknown ISR bit */
	    {SNAP_NQ, 1, NQ + 1},                                     /* queue count */
	    {SNAP_Q0 + SNAP_Q_SIZE, 2, 0},                            /* queue size 0 */
	    {SNAP_Q0 + SNAP_Q_SIZE, 2, 12},                           /* not a power of 2 */
	    {SNAP_Q0 + SNAP_Q_SIZE, 2, QSIZE * 2},                    /* too large */
	    {SNAP_Q0 + SNAP_QLEN + SNAP_Q_SIZE, 2, 0x8000},           /* queue 1 too large */
	    {SNAP_Q0 + SNAP_Q_ENABLED, 1, 2},                         /* bool */
	    {SNAP_Q0 + SNAP_Q_DESC, 8, OUTSIDE_RAM},                  /* ring outside RAM */
	    {SNAP_Q0 + SNAP_QLEN + SNAP_Q_DESC, 8, RING_GPA(1) + 8},  /* misaligned ring */
	    {SNAP_DEV, 4, 0},                                         /* device section */
	};
	for (unsigned i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		memcpy(bad, out.data, SNAP_LEN);
		put_le_at(bad + edits[i].off, edits[i].v, edits[i].n);
		expect_refused(s, &out, bad, SNAP_LEN);
	}
	/* Mid-negotiation (no FEATURES_OK yet) an unoffered bit is only what
	 * the guest wrote: it loads, and FEATURES_OK is then refused as it
	 * would have been live. */
	memcpy(bad, out.data, SNAP_LEN);
	put_le_at(bad + SNAP_STATUS, ST_ACK | ST_DRV, 1);
	put_le_at(bad + SNAP_FEATURES, FEATS | 1ULL << 6, 8);
	assert_int_equal(load_bytes(&s->t, bad, SNAP_LEN), 0);
	assert_int_equal(status(&s->t), ST_ACK | ST_DRV);
	assert_int_equal(driver_features(&s->t), FEATS | 1ULL << 6);
	set_status(&s->t, ST_ACK | ST_DRV | ST_FOK);
	assert_int_equal(status(&s->t), ST_ACK | ST_DRV);
	/* a fresh transport whose device refuses its section resets the device */
	struct second *fresh = second_new(f);
	memcpy(bad, out.data, SNAP_LEN);
	put_le_at(bad + SNAP_DEV, 0, 4);
	assert_true(load_bytes(&fresh->t, bad, SNAP_LEN) < 0);
	assert_int_equal(fresh->dev.reset_calls, 1);
	assert_reset(fresh, 0);
	second_free(fresh);
	/* every truncation */
	for (size_t len = 0; len < SNAP_LEN; len++)
		expect_refused(s, &out, out.data, len);
	/* and the good one still loads after all that */
	assert_int_equal(load_bytes(&s->t, out.data, out.len), 0);
	assert_int_equal(status(&s->t), ST_LIVE);
	second_free(s);
	snapbuf_free(&out);
}

/* A device that needed a reset when saved is restored stopped. */
static void test_save_load_needs_reset(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	add_buf_at(f, 0, OUTSIDE_RAM, 64);
	notify(f, 0);
	poll(f);
	assert_int_equal(status(&f->t), ST_LIVE | ST_NR);
	struct snapbuf out;
	snapbuf_init_writer(&out);
	assert_int_equal(virtio_pci_save(&f->t, &out), 0);
	struct second *s = second_new(f);
	assert_int_equal(load_bytes(&s->t, out.data, out.len), 0);
	assert_int_equal(status(&s->t), ST_LIVE | ST_NR);
	assert_int_equal(s->dev.activate_calls, 0);
	notify_on(&s->t, 1);
	poll_dev(&s->t, &s->dev);
	assert_int_equal(s->dev.notify_calls[1], 0);
	second_free(s);
	snapbuf_free(&out);
}

/* ---- the I/O thread ---- */

static unsigned locked_notify_calls(struct fx *f, unsigned q)
{
	pthread_mutex_lock(&f->t.lock);
	unsigned n = f->dev.notify_calls[q];
	pthread_mutex_unlock(&f->t.lock);
	return n;
}

static void test_io_thread(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	assert_int_equal(virtio_pci_start(&f->t, NULL), 0);
	add_buf(f, 1);
	notify(f, 1);
	const struct timespec ms = {0, 1000000};
	for (unsigned i = 0; i < 5000 && locked_notify_calls(f, 1) == 0; i++)
		nanosleep(&ms, NULL);
	assert_int_equal(locked_notify_calls(f, 1), 1);
	pthread_mutex_lock(&f->t.lock);
	assert_int_equal(used_idx(f, 1), 1);
	pthread_mutex_unlock(&f->t.lock);
	virtio_pci_stop(&f->t);
	virtio_pci_stop(&f->t); /* idempotent */
	/* stopped: a kick waits for poll */
	add_buf(f, 1);
	notify(f, 1);
	nanosleep(&ms, NULL);
	assert_int_equal(f->dev.notify_calls[1], 1);
	poll(f);
	assert_int_equal(f->dev.notify_calls[1], 2);
	assert_int_equal(used_idx(f, 1), 2);
}

/* ---- watched fds ---- */

static void signal_fd(int fd)
{
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void test_watch_fd(void **state)
{
	struct fx *f = *state;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);
	f->dev.watch_fd = efd;
	bring_up(f);
	assert_int_equal(f->dev.watch_result, 0);
	poll(f);
	assert_int_equal(f->dev.fd_ready_calls, 0); /* not readable yet */
	signal_fd(efd);
	poll(f);
	assert_int_equal(f->dev.fd_ready_calls, 1);
	poll(f);
	assert_int_equal(f->dev.fd_ready_calls, 1);
	/* a reset stops watching */
	set_status(&f->t, 0);
	signal_fd(efd);
	poll(f);
	assert_int_equal(f->dev.fd_ready_calls, 1);
	/* and so does a device failure */
	bring_up(f);
	add_buf_at(f, 0, OUTSIDE_RAM, 64);
	notify(f, 0);
	poll(f);
	assert_true(status(&f->t) & ST_NR);
	poll(f);
	assert_int_equal(f->dev.fd_ready_calls, 1);
	close(efd);
}

static unsigned locked_fd_ready_calls(struct second *s)
{
	pthread_mutex_lock(&s->t.lock);
	unsigned n = s->dev.fd_ready_calls;
	pthread_mutex_unlock(&s->t.lock);
	return n;
}

/* A device re-activated by load before the I/O thread starts keeps the fds
 * it watches: the thread picks them up. */
static void test_start_after_load_watches_fd(void **state)
{
	struct fx *f = *state;
	bring_up(f);
	struct snapbuf out;
	snapbuf_init_writer(&out);
	assert_int_equal(virtio_pci_save(&f->t, &out), 0);
	struct second *s = second_new(f);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);
	s->dev.watch_fd = efd;
	assert_int_equal(load_bytes(&s->t, out.data, out.len), 0);
	assert_int_equal(s->dev.watch_result, 0);
	assert_int_equal(virtio_pci_start(&s->t, NULL), 0);
	signal_fd(efd);
	const struct timespec ms = {0, 1000000};
	for (unsigned i = 0; i < 5000 && locked_fd_ready_calls(s) == 0; i++)
		nanosleep(&ms, NULL);
	assert_int_equal(locked_fd_ready_calls(s), 1);
	virtio_pci_stop(&s->t);
	second_free(s);
	close(efd);
	snapbuf_free(&out);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the hostile cases each log a warning */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_init_rejects_bad_ops),
	    T(test_pci_identity),
	    T(test_virtio_caps),
	    T(test_msix_cap),
	    T(test_device_features),
	    T(test_negotiation_and_activate),
	    T(test_features_ok_needs_version_1),
	    T(test_features_ok_rejects_unoffered),
	    T(test_features_ok_needs_driver),
	    T(test_features_frozen_after_features_ok),
	    T(test_driver_ok_needs_features_ok),
	    T(test_clearing_status_bits_ignored),
	    T(test_reset_clears_everything),
	    T(test_activate_failure_needs_reset),
	    T(test_failed_during_activate),
	    T(test_queue_select_out_of_range),
	    T(test_queue_size),
	    T(test_queue_address_halves),
	    T(test_queue_enable_bad_rings),
	    T(test_queue_regs_frozen),
	    T(test_queue_notify_off),
	    T(test_notify_before_driver_ok),
	    T(test_notify_reaches_device),
	    T(test_notify_disabled_queue),
	    T(test_intx_and_isr),
	    T(test_intx_disable_bit),
	    T(test_intx_suppressed),
	    T(test_reset_lowers_intx),
	    T(test_msix_interrupt),
	    T(test_msix_bad_vector),
	    T(test_failed_needs_reset),
	    T(test_failed_msix_config_vector),
	    T(test_device_config),
	    T(test_bar_odd_accesses),
	    T(test_save_load),
	    T(test_save_load_pending_intx),
	    T(test_load_rejects_corruption),
	    T(test_save_load_needs_reset),
	    T(test_io_thread),
	    T(test_watch_fd),
	    T(test_start_after_load_watches_fd),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
