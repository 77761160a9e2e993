/* The VM's PCI side: the host bridge on bus 0 and one virtio-pci function
 * per configured device, in a fixed table order (slot 1 up): the virtio
 * console, the disks in command-line order, the network devices, then the
 * entropy device. Each device is a transport (virtio/pci.h) plus its
 * backend (virtio/blk.h, net.h, console.h, rng.h) and its host resource
 * (an image file, a tap device).
 *
 * Lifecycle: vm_pci_create() before the engine exists (it places BARs and
 * registers the bus windows, which are fixed once vCPUs run);
 * vm_pci_start() once the engine exists (I/O threads, ioeventfds);
 * vm_pci_destroy() after the vCPUs stopped. */
#ifndef SHRIKE_VM_PCI_DEVICES_H
#define SHRIKE_VM_PCI_DEVICES_H

#include <stdio.h>

#include "devices/uart8250.h"
#include "pci/host.h"
#include "virtio/pci.h"
#include "vm/bus.h"
#include "vm/config.h"
#include "vm/irq.h"
#include "vm/memory.h"

#define VM_PCI_MAX_DEVICES (VM_MAX_DISKS + VM_MAX_NETS + 2)

struct vm_pci_device; /* transport + backend + host resource */

struct vm_pci {
	struct pci_host host;
	bool host_ready;
	struct vm_pci_device *dev[VM_PCI_MAX_DEVICES];
	unsigned ndev;
	struct vm_pci_device *console; /* the virtio console, if any */
};

/* Creates the bridge and the devices cfg asks for. Console output goes to
 * `console_out`. Returns 0, or a negative errno after logging one line
 * (e.g. a missing disk image or tap device). */
int vm_pci_create(struct vm_pci *p, const struct vm_config *cfg, const struct guest_mem *mem,
		  const struct irq_ctl *irq, struct bus *pio, struct bus *mmio,
		  struct char_sink console_out);

/* hook may be NULL (engines without ioeventfd). */
int vm_pci_start(struct vm_pci *p, const struct virtio_notify_hook *hook);
void vm_pci_destroy(struct vm_pci *p);

/* One line per device: notifications and interrupts (for --stats). */
void vm_pci_print_stats(FILE *out, struct vm_pci *p);

/* Host console input for the virtio console (valid when p->console). */
struct char_input vm_pci_console_input(struct vm_pci *p);

#endif
