/* Fuzz target for the virtio-pci transport (virtio/pci.c): a hostile
 * driver drives a transport with a fake two-queue device through BAR 0,
 * the PCI configuration space (with the config_written hook, as the host
 * bridge calls it), guest memory holding the rings, and virtio_pci_poll().
 *
 * The input is a sequence of 12-byte records: op, size selector, le16
 * offset, le64 value. Ops: BAR read, BAR write (twice as likely), a
 * configuration-space
 * write (half of them aimed at the MSI-X capability), a write of 1-8 bytes
 * into the 32 KiB window of guest memory used for rings, a poll, a queue
 * notification, a canned driver initialisation (so deep states are one
 * record away, optionally with MSI-X enabled and programmed), a save/load
 * round trip, and a load of a corrupted save. BAR accesses pick a structure
 * (common, ISR, device, notify, MSI-X table, PBA) or any offset.
 *
 * The fake device checks the transport's promises (virtio/device.h) and
 * traps when one is broken: callbacks only between activate() and reset(),
 * never after DEVICE_NEEDS_RESET, configuration accesses inside
 * config_size with size 1/2/4/8, fd_ready() only for a watched readable
 * fd (config byte 0 makes the device watch, signal and unwatch an
 * eventfd, and fail or refuse activation). After every record the transport's own
 * invariants (pci.h) are checked too. The guest's ISR and interrupt lines
 * are not checked against a model: the aim is crashes, hangs and leaks.
 *
 * Determinism: the transport is created and destroyed for every input and
 * guest memory is dropped back to zero pages (MADV_DONTNEED) after it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pci/config.h"
#include "pci/msix.h"
#include "util/log.h"
#include "util/snapbuf.h"
#include "virtio/pci.h"
#include "vm/memory.h"

#define RECORD 12u
#define NQ 2u
#define QSIZE 16u
#define CFG_SIZE 8u
#define GSI 5u
#define WIN_GPA 0x10000ULL
#define WIN_SIZE 0x8000u
#define MAX_POPS (4 * QSIZE) /* per notification; more means the ring walk loops */

/* Device behaviour the guest chooses through config byte 0. */
#define CFG0_ACTIVATE_ERR 0x80  /* activate() returns -EIO */
#define CFG0_ACTIVATE_FAIL 0x40 /* activate() calls ctx->failed(), returns 0 */
#define CFG0_CONFIG_CHANGE 0x20 /* queue_notify() also reports a config change */
#define CFG0_WATCH 0x10         /* activate() watches the eventfd */
#define CFG0_SIGNAL 0x08        /* queue_notify() makes the eventfd readable */
#define CFG0_UNWATCH 0x04       /* queue_notify() stops watching it */

struct fuzz_dev {
	const struct virtio_queue_ctx *ctx; /* non-NULL between activate and reset */
	bool stopped;                       /* called ctx->failed() */
	uint8_t config[CFG_SIZE];
	struct vq_chain chain;
};

static struct guest_mem fuzz_mem;
static struct virtio_pci fuzz_t;
static struct fuzz_dev fuzz_dev;
static struct irq_ctl fuzz_irq;
static int fuzz_efd; /* the fd the device watches */
static const uint8_t zeros[256];

static bool size_ok(unsigned len) { return len == 1 || len == 2 || len == 4 || len == 8; }

static uint64_t dev_features(void *opaque)
{
	(void)opaque;
	return 1ULL << 5 | 1ULL << 0;
}

static void dev_config_read(void *opaque, uint32_t off, uint8_t *data, unsigned len)
{
	struct fuzz_dev *d = opaque;
	if (!size_ok(len) || off >= CFG_SIZE || len > CFG_SIZE - off)
		__builtin_trap();
	memcpy(data, d->config + off, len);
}

static void dev_config_write(void *opaque, uint32_t off, const uint8_t *data, unsigned len)
{
	struct fuzz_dev *d = opaque;
	if (!size_ok(len) || off >= CFG_SIZE || len > CFG_SIZE - off)
		__builtin_trap();
	memcpy(d->config + off, data, len);
}

static int dev_activate(void *opaque, const struct virtio_queue_ctx *ctx)
{
	struct fuzz_dev *d = opaque;
	if (d->ctx || !ctx || ctx->nvq != NQ || ctx->transport != &fuzz_t)
		__builtin_trap(); /* activated twice without a reset */
	if (!(fuzz_t.status & VIRTIO_STATUS_FEATURES_OK) ||
	    (ctx->features & ~fuzz_t.offered) || !(ctx->features & (1ULL << VIRTIO_F_VERSION_1)))
		__builtin_trap();
	d->ctx = ctx;
	if (d->config[0] & CFG0_ACTIVATE_FAIL) {
		d->stopped = true;
		ctx->failed(ctx->transport, "fuzz: refused at activation");
	}
	if (d->config[0] & CFG0_WATCH)
		(void)ctx->watch_fd(ctx->transport, fuzz_efd, true);
	return (d->config[0] & CFG0_ACTIVATE_ERR) ? -5 : 0;
}

static void dev_serve(struct fuzz_dev *d, struct virtqueue *vq)
{
	uint64_t wr = d->chain.write_len < sizeof(zeros) ? d->chain.write_len : sizeof(zeros);
	if (vq_chain_write(&d->chain, 0, zeros, wr) != 0)
		__builtin_trap();
	vq_push(vq, &d->chain, (uint32_t)wr);
}

static void dev_queue_notify(void *opaque, unsigned q)
{
	struct fuzz_dev *d = opaque;
	if (q >= NQ || !d->ctx || d->stopped || !fuzz_t.active ||
	    (fuzz_t.status & VIRTIO_STATUS_NEEDS_RESET) || !fuzz_t.q[q].enabled)
		__builtin_trap();
	struct virtqueue *vq = &d->ctx->vq[q];
	unsigned pops = 0;
	int r;
	while ((r = vq_pop(vq, &d->chain)) == 1) {
		if (++pops > MAX_POPS)
			__builtin_trap();
		dev_serve(d, vq);
	}
	if (d->config[0] & CFG0_CONFIG_CHANGE)
		d->ctx->config_changed(d->ctx->transport);
	if (d->config[0] & CFG0_SIGNAL) {
		uint64_t one = 1;
		if (write(fuzz_efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			__builtin_trap();
	}
	if (d->config[0] & CFG0_UNWATCH)
		(void)d->ctx->watch_fd(d->ctx->transport, fuzz_efd, false);
	if (r < 0) {
		d->stopped = true;
		d->ctx->failed(d->ctx->transport, "fuzz: malformed ring");
		return;
	}
	d->ctx->used(d->ctx->transport, q);
}

static void dev_fd_ready(void *opaque, int fd)
{
	struct fuzz_dev *d = opaque;
	uint64_t n;
	if (fd != fuzz_efd || !d->ctx || d->stopped || !fuzz_t.active)
		__builtin_trap();
	if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		__builtin_trap(); /* called although not readable */
}

static void dev_reset(void *opaque)
{
	struct fuzz_dev *d = opaque;
	d->ctx = NULL;
	d->stopped = false;
}

static int dev_save(void *opaque, struct snapbuf *out)
{
	struct fuzz_dev *d = opaque;
	return snapbuf_put(out, d->config, CFG_SIZE);
}

static int dev_load(void *opaque, struct snapbuf *in)
{
	struct fuzz_dev *d = opaque;
	return snapbuf_get(in, d->config, CFG_SIZE);
}

static const struct virtio_device_ops dev_ops = {
	.name = "fuzz",
	.device_id = 4,
	.pci_class = 0x00ff00,
	.num_queues = NQ,
	.queue_size = QSIZE,
	.config_size = CFG_SIZE,
	.features = dev_features,
	.config_read = dev_config_read,
	.config_write = dev_config_write,
	.activate = dev_activate,
	.queue_notify = dev_queue_notify,
	.fd_ready = dev_fd_ready,
	.reset = dev_reset,
	.save = dev_save,
	.load = dev_load,
};

static int irq_level(void *opaque, uint32_t gsi, int level)
{
	(void)opaque;
	if (gsi != GSI || (level != 0 && level != 1))
		__builtin_trap();
	return 0;
}

static int irq_msi(void *opaque, uint64_t addr, uint32_t data)
{
	(void)opaque;
	(void)addr;
	(void)data;
	/* Called with the msix lock held (msix.h): read the cached bit. */
	if (!fuzz_t.msix.enabled || fuzz_t.msix.function_masked)
		__builtin_trap();
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	if (guest_mem_init(&fuzz_mem, GUEST_MEM_MIN_SIZE))
		abort();
	/* Small pages: zeroing after each input then costs only what was touched. */
	madvise(fuzz_mem.base, fuzz_mem.ram_size, MADV_NOHUGEPAGE);
	fuzz_irq = (struct irq_ctl){irq_level, irq_msi, NULL};
	fuzz_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fuzz_efd < 0)
		abort();
	return 0;
}

/* ---- helpers ---- */

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void bar_write(uint64_t off, unsigned size, uint64_t v)
{
	uint8_t b[8];
	for (unsigned i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	virtio_pci_bar_write(&fuzz_t, off, b, size);
}

static uint64_t bar_read(uint64_t off, unsigned size)
{
	uint8_t b[8];
	virtio_pci_bar_read(&fuzz_t, off, b, size);
	return le(b, size < 8 ? size : 8);
}

/* Low nibble of the selector: the access size (odd ones included). */
static unsigned pick_size(uint8_t sel)
{
	static const unsigned sizes[16] = {1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 4, 8, 3, 0, 5, 16};
	return sizes[sel & 15];
}

/* High nibble: the BAR 0 structure aimed at, or anywhere in and just past
 * the BAR. */
static uint64_t pick_offset(uint8_t sel, uint16_t off)
{
	static const uint32_t base[8] = {
	    VPCI_COMMON_OFF,     VPCI_ISR_OFF,      VPCI_DEVICE_OFF, VPCI_NOTIFY_OFF,
	    VPCI_MSIX_TABLE_OFF, VPCI_MSIX_PBA_OFF, VPCI_COMMON_OFF, VPCI_MSIX_TABLE_OFF,
	};
	unsigned region = sel >> 4;
	if (region >= 8)
		return off % (VPCI_BAR_SIZE + 0x100);
	return base[region] + off % 0x50;
}

/* What firmware and a driver do to the function: BAR 0 placed and
 * decoding, and (per bit 0 of `how`) MSI-X enabled with every vector
 * programmed and unmasked. */
static void canned_function(uint64_t how)
{
	pci_config_write(&fuzz_t.fn, PCI_BAR0, 4, 0xfe000000u);
	pci_config_write(&fuzz_t.fn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	if (!(how & 1))
		return;
	unsigned cap = (unsigned)pci_config_find_cap(&fuzz_t.fn, PCI_CAP_ID_MSIX);
	pci_config_write(&fuzz_t.fn, cap + MSIX_CAP_CONTROL, 2, MSIX_CONTROL_ENABLE);
	for (unsigned vec = 0; vec < NQ + 1; vec++) {
		uint64_t e = VPCI_MSIX_TABLE_OFF + MSIX_ENTRY_SIZE * vec;
		bar_write(e + MSIX_ENTRY_ADDR_LO, 4, 0xfee00000u);
		bar_write(e + MSIX_ENTRY_DATA, 4, 0x40 + vec);
		bar_write(e + MSIX_ENTRY_CONTROL, 4, (how >> (1 + vec)) & 1);
	}
}

/* Resets and brings the device up as a driver would, with rings in the
 * window (placed and sized by the record) and the features it names. */
static void canned_init(uint16_t off, uint64_t v)
{
	canned_function(v >> 32);
	bar_write(VPCI_STATUS, 1, 0);
	bar_write(VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	bar_write(VPCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	uint64_t feat = (v & fuzz_t.offered) | 1ULL << VIRTIO_F_VERSION_1;
	bar_write(VPCI_GFSELECT, 4, 0);
	bar_write(VPCI_GF, 4, (uint32_t)feat);
	bar_write(VPCI_GFSELECT, 4, 1);
	bar_write(VPCI_GF, 4, feat >> 32);
	bar_write(VPCI_STATUS, 1, 0x0b);
	for (unsigned q = 0; q < NQ; q++) {
		uint64_t base = WIN_GPA + (off % 2) * 0x1000ULL + q * 0x3000ULL;
		bar_write(VPCI_Q_SELECT, 2, q);
		bar_write(VPCI_Q_SIZE, 2, 1u << ((v >> (8 + 4 * q)) % 5));
		bar_write(VPCI_Q_MSIX, 2, (v >> (16 + 4 * q)) & 3);
		bar_write(VPCI_Q_DESC, 8, base);
		bar_write(VPCI_Q_AVAIL, 8, base + 0x1000);
		bar_write(VPCI_Q_USED, 8, base + 0x2000 + ((off >> 2) & 6)); /* 2, 6: misaligned */
		bar_write(VPCI_Q_ENABLE, 2, 1);
	}
	bar_write(VPCI_MSIX_CONFIG, 2, (v >> 24) & 3);
	bar_write(VPCI_STATUS, 1, 0x0f);
}

static void save_load(bool corrupt, uint16_t off, uint64_t v)
{
	struct snapbuf out;
	snapbuf_init_writer(&out);
	int r = virtio_pci_save(&fuzz_t, &out);
	if (r) {
		snapbuf_free(&out);
		return;
	}
	if (corrupt && out.len) {
		out.data[off % out.len] ^= (uint8_t)(v | 1);
		if (v & 0x100)
			out.len = (v >> 16) % out.len; /* and truncated */
	}
	uint64_t features = fuzz_t.driver_features;
	struct snapbuf in;
	snapbuf_init_reader(&in, out.data, out.len);
	r = virtio_pci_load(&fuzz_t, &in);
	if (!corrupt && (r || fuzz_t.driver_features != features))
		__builtin_trap(); /* the transport's own state must load back */
	if (r && (fuzz_t.status || fuzz_t.driver_features || fuzz_t.active))
		__builtin_trap(); /* a refused load leaves the device reset */
	snapbuf_free(&out);
}

/* pci.h's invariants, checked after every record. */
static void check_invariants(void)
{
	const struct virtio_pci *t = &fuzz_t;
	uint8_t s = t->status;
	if ((s & VIRTIO_STATUS_DRIVER_OK) && !(s & VIRTIO_STATUS_FEATURES_OK))
		__builtin_trap();
	if ((s & VIRTIO_STATUS_FEATURES_OK) &&
	    (!(t->driver_features & (1ULL << VIRTIO_F_VERSION_1)) ||
	     (t->driver_features & ~t->offered) || !(s & VIRTIO_STATUS_DRIVER)))
		__builtin_trap();
	if (t->active && (!fuzz_dev.ctx || fuzz_dev.stopped || (s & VIRTIO_STATUS_NEEDS_RESET) ||
			  !(s & VIRTIO_STATUS_DRIVER_OK)))
		__builtin_trap();
	if (t->isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG))
		__builtin_trap();
	unsigned nvec = NQ + 1;
	if (t->config_vector != VIRTIO_MSI_NO_VECTOR && t->config_vector >= nvec)
		__builtin_trap();
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		const struct vpci_queue *vq = &t->q[q];
		if (q >= NQ) {
			if (vq->size || vq->enabled)
				__builtin_trap();
			continue;
		}
		if (!vq->size || vq->size > QSIZE || (vq->size & (vq->size - 1)))
			__builtin_trap();
		if (vq->vector != VIRTIO_MSI_NO_VECTOR && vq->vector >= nvec)
			__builtin_trap();
		if (vq->enabled != t->vq[q].enabled && !t->vq[q].broken)
			__builtin_trap();
	}
}

static void run_record(const uint8_t *r)
{
	uint8_t op = r[0], sel = r[1];
	uint16_t off = (uint16_t)le(r + 2, 2);
	uint64_t v = le(r + 4, 8);
	unsigned size = pick_size(sel);
	switch (op % 10) {
	case 0:
		(void)bar_read(pick_offset(sel, off), size);
		break;
	case 1:
	case 2:
		bar_write(pick_offset(sel, off), size, v);
		break;
	case 3: {
		unsigned csize = 1u << (sel % 3);
		unsigned coff = off % PCI_CONFIG_SIZE;
		if (sel & 0x80)
			coff = (unsigned)pci_config_find_cap(&fuzz_t.fn, PCI_CAP_ID_MSIX) +
			       off % MSIX_CAP_LEN;
		/* pci_config_write calls the function's config_written hook */
		pci_config_write(&fuzz_t.fn, coff, csize, (uint32_t)v);
		break;
	}
	case 4: {
		unsigned n = 1 + sel % 8;
		uint64_t gpa = WIN_GPA + off % (WIN_SIZE - 7);
		if (guest_mem_write(&fuzz_mem, gpa, r + 4, n))
			__builtin_trap();
		break;
	}
	case 5:
		virtio_pci_poll(&fuzz_t);
		break;
	case 6:
		bar_write(VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * (off % (NQ + 1)), (sel & 1) ? 4 : 2,
			  v);
		if (sel & 2)
			virtio_pci_poll(&fuzz_t);
		break;
	case 7:
		canned_init(off, v);
		break;
	case 8:
		save_load(false, off, v);
		break;
	case 9:
		save_load(true, off, v);
		break;
	}
	check_invariants();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	memset(&fuzz_dev, 0, offsetof(struct fuzz_dev, chain)); /* the chain is scratch */
	uint64_t n;
	(void)!read(fuzz_efd, &n, sizeof(n)); /* not readable at the start */
	if (virtio_pci_init(&fuzz_t, &dev_ops, &fuzz_dev, &fuzz_mem, &fuzz_irq, GSI))
		abort();
	for (size_t i = 0; i + RECORD <= size; i += RECORD)
		run_record(data + i);
	virtio_pci_poll(&fuzz_t);
	check_invariants();
	virtio_pci_destroy(&fuzz_t);
	if (fuzz_dev.ctx)
		__builtin_trap(); /* destroy resets an active device */
	madvise(fuzz_mem.base, fuzz_mem.ram_size, MADV_DONTNEED);
	return 0;
}
