#include "vm/pci_devices.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "util/log.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/disk_file.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/tap.h"

struct vm_pci_device {
	struct virtio_pci transport;
	enum { VPD_BLK, VPD_NET, VPD_CONSOLE, VPD_RNG } kind;
	union {
		struct virtio_blk blk;
		struct virtio_net net;
		struct virtio_console console;
		struct virtio_rng rng;
	} u;
	struct disk_file disk;
	struct tap tap;
};

static struct vm_pci_device *vm_pci_alloc(int kind)
{
	struct vm_pci_device *d = calloc(1, sizeof(*d));
	if (d) {
		d->kind = kind;
		d->disk.fd = -1;
		d->tap.fd = -1;
	}
	return d;
}

static void vm_pci_free(struct vm_pci_device *d)
{
	virtio_pci_destroy(&d->transport);
	if (d->kind == VPD_BLK)
		disk_file_close(&d->disk);
	else if (d->kind == VPD_CONSOLE)
		virtio_console_destroy(&d->u.console);
	else if (d->kind == VPD_RNG)
		virtio_rng_destroy(&d->u.rng);
	else if (d->kind == VPD_NET)
		virtio_net_destroy(&d->u.net);
	tap_close(&d->tap);
	free(d);
}

/* Puts the device's transport on the next free slot. */
static int vm_pci_plug(struct vm_pci *p, struct vm_pci_device *d,
		       const struct virtio_device_ops *ops, void *dev, const struct guest_mem *mem,
		       const struct irq_ctl *irq)
{
	unsigned slot = p->ndev + 1;
	int r = slot < PCI_HOST_DEVICES ? 0 : -ENOSPC;
	if (!r)
		r = virtio_pci_init(&d->transport, ops, dev, mem, irq, layout_pci_intx_gsi(slot, 0));
	if (!r)
		r = pci_host_add(&p->host, slot, 0, &d->transport.fn);
	if (r) {
		log_error("cannot add %s at PCI slot %u: %s", ops->name, slot, strerror(-r));
		vm_pci_free(d);
		return r;
	}
	p->dev[p->ndev++] = d;
	return 0;
}

static int vm_pci_add_disk(struct vm_pci *p, const struct vm_disk_config *dc, unsigned index,
			   const struct guest_mem *mem, const struct irq_ctl *irq)
{
	struct errmsg err = {{0}};
	struct vm_pci_device *d = vm_pci_alloc(VPD_BLK);
	if (!d)
		return -ENOMEM;
	int r = disk_file_open(&d->disk, dc->path, dc->readonly, &err);
	if (r) {
		log_error("%s", err.text);
		free(d);
		return r;
	}
	char serial[24];
	snprintf(serial, sizeof(serial), "shrike-disk%u", index);
	r = virtio_blk_init(&d->u.blk, &disk_file_ops, &d->disk, dc->readonly, serial);
	if (r) {
		log_error("%s: cannot be a virtio-blk disk: %s", dc->path, strerror(-r));
		disk_file_close(&d->disk);
		free(d);
		return r;
	}
	return vm_pci_plug(p, d, &virtio_blk_ops, &d->u.blk, mem, irq);
}

static int vm_pci_add_net(struct vm_pci *p, const struct net_opts *nc, unsigned index,
			  const struct guest_mem *mem, const struct irq_ctl *irq)
{
	static const uint8_t no_mac[NET_MAC_LEN];
	struct errmsg err = {{0}};
	struct vm_pci_device *d = vm_pci_alloc(VPD_NET);
	if (!d)
		return -ENOMEM;
	int r = tap_open(&d->tap, nc->ifname, &err);
	if (r) {
		log_error("%s", err.text);
		free(d);
		return r;
	}
	struct net_opts o = *nc;
	if (!memcmp(o.mac, no_mac, NET_MAC_LEN))
		net_mac_for_index(o.mac, index);
	struct net_backend be = tap_backend(&d->tap);
	r = virtio_net_init(&d->u.net, &be, &o);
	if (r) {
		log_error("%s: cannot create the virtio-net device: %s", nc->ifname, strerror(-r));
		tap_close(&d->tap);
		free(d);
		return r;
	}
	return vm_pci_plug(p, d, &virtio_net_ops, &d->u.net, mem, irq);
}

static int vm_pci_add_console(struct vm_pci *p, struct char_sink out, const struct guest_mem *mem,
			      const struct irq_ctl *irq)
{
	struct vm_pci_device *d = vm_pci_alloc(VPD_CONSOLE);
	if (!d)
		return -ENOMEM;
	int r = virtio_console_init(&d->u.console, out);
	if (r) {
		log_error("cannot create the virtio console: %s", strerror(-r));
		free(d);
		return r;
	}
	r = vm_pci_plug(p, d, &virtio_console_ops, &d->u.console, mem, irq);
	if (!r)
		p->console = d;
	return r;
}

static int vm_pci_add_rng(struct vm_pci *p, const struct guest_mem *mem, const struct irq_ctl *irq)
{
	struct vm_pci_device *d = vm_pci_alloc(VPD_RNG);
	if (!d)
		return -ENOMEM;
	int r = virtio_rng_init(&d->u.rng, NULL);
	if (r) {
		log_error("cannot create the virtio-rng device: %s", strerror(-r));
		free(d);
		return r;
	}
	return vm_pci_plug(p, d, &virtio_rng_ops, &d->u.rng, mem, irq);
}

int vm_pci_create(struct vm_pci *p, const struct vm_config *cfg, const struct guest_mem *mem,
		  const struct irq_ctl *irq, struct bus *pio, struct bus *mmio,
		  struct char_sink console_out)
{
	memset(p, 0, sizeof(*p));
	int r = pci_host_init(&p->host);
	if (r) {
		log_error("cannot create the PCI host bridge: %s", strerror(-r));
		return r;
	}
	p->host_ready = true;
	r = pci_host_attach(&p->host, pio, mmio);
	if (r) {
		log_error("cannot register the PCI host bridge: %s", strerror(-r));
		return r;
	}
	if (cfg->console == VM_CONSOLE_VIRTIO)
		r = vm_pci_add_console(p, console_out, mem, irq);
	for (unsigned i = 0; !r && i < cfg->ndisks; i++)
		r = vm_pci_add_disk(p, &cfg->disk[i], i, mem, irq);
	for (unsigned i = 0; !r && i < cfg->nnets; i++)
		r = vm_pci_add_net(p, &cfg->net[i], i, mem, irq);
	if (!r && !cfg->no_rng)
		r = vm_pci_add_rng(p, mem, irq);
	return r;
}

int vm_pci_start(struct vm_pci *p, const struct virtio_notify_hook *hook)
{
	for (unsigned i = 0; i < p->ndev; i++) {
		int r = virtio_pci_start(&p->dev[i]->transport, hook);
		if (r)
			return r;
	}
	return 0;
}

void vm_pci_destroy(struct vm_pci *p)
{
	for (unsigned i = 0; i < p->ndev; i++)
		virtio_pci_stop(&p->dev[i]->transport);
	for (unsigned i = 0; i < p->ndev; i++)
		vm_pci_free(p->dev[i]);
	p->ndev = 0;
	p->console = NULL;
	if (p->host_ready)
		pci_host_destroy(&p->host);
	p->host_ready = false;
}

void vm_pci_print_stats(FILE *out, struct vm_pci *p)
{
	for (unsigned i = 0; i < p->ndev; i++) {
		struct virtio_pci *t = &p->dev[i]->transport;
		pthread_mutex_lock(&t->lock);
		struct virtio_pci_stats s = t->stats;
		pthread_mutex_unlock(&t->lock);
		fprintf(out, "  pci 00:%02u.0 %s: %llu notifications (%llu by MMIO exit), %llu interrupts\n",
			i + 1, t->ops->name, (unsigned long long)s.notifies,
			(unsigned long long)__atomic_load_n(&t->stats.mmio_notifies, __ATOMIC_RELAXED),
			(unsigned long long)s.interrupts);
	}
}

static size_t vm_pci_console_receive(void *opaque, const uint8_t *data, size_t len)
{
	return virtio_console_input(opaque, data, len);
}

struct char_input vm_pci_console_input(struct vm_pci *p)
{
	return (struct char_input){vm_pci_console_receive, &p->console->u.console};
}
