/* The virtio-pci transport, modern (virtio 1.x) layout only: virtio 1.2
 * §4.1 "Virtio Over PCI Bus".
 *
 *   §4.1.2   PCI device IDs: vendor 0x1af4, device 0x1040 + device ID,
 *            revision 1, subsystem device ID >= 0x40
 *   §4.1.4   vendor capabilities (struct virtio_pci_cap), one per structure
 *   §4.1.4.3 common configuration (features, MSI-X vectors, status, queues)
 *   §4.1.4.4 notification (notify_off_multiplier), §4.1.4.5 ISR status,
 *   §4.1.4.6 device-specific configuration
 *   §4.1.5.1.3 virtqueue configuration, §2.1 device status field
 *
 * BAR 0 (32-bit memory, VPCI_BAR_SIZE) holds every structure: common
 * configuration at 0x0000, ISR at 0x1000, device configuration at 0x2000,
 * notifications at 0x3000 (4 bytes per queue), the MSI-X table at 0x4000
 * and its PBA at 0x5000. The VIRTIO_PCI_CAP_PCI_CFG window is not offered.
 *
 * Invariants (what the guest cannot break):
 *   - device_status only gains bits, except that writing 0 resets; a
 *     driver that tries to clear a bit is ignored;
 *   - FEATURES_OK sticks only if the driver accepted a subset of what was
 *     offered that includes VIRTIO_F_VERSION_1; features are frozen once
 *     FEATURES_OK is set;
 *   - queue registers change only before DRIVER_OK and while the queue is
 *     disabled; queue_enable validates the rings (vq_enable) and a bad
 *     ring sets DEVICE_NEEDS_RESET instead of enabling;
 *   - an MSI-X vector the function does not have reads back as NO_VECTOR;
 *   - the device's callbacks run only between a successful activate() at
 *     DRIVER_OK and the next reset, and never after DEVICE_NEEDS_RESET.
 *
 * Threads and locking: `lock` guards all transport state and is the
 * device's mutex (virtio/device.h). Register accesses come from vCPU
 * threads; queue notifications and watched fds are handled by one I/O
 * thread per device, started by virtio_pci_start(). A queue notification
 * is an eventfd per queue: KVM signals it directly through an ioeventfd
 * registered on the notify address when the engine offers one, otherwise
 * the MMIO write handler signals it. Lock order: host bridge -> transport
 * -> msix. */
#ifndef SHRIKE_VIRTIO_PCI_H
#define SHRIKE_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/config.h"
#include "pci/msix.h"
#include "util/snapbuf.h"
#include "virtio/device.h"
#include "virtio/virtqueue.h"
#include "vm/irq.h"
#include "vm/memory.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040

#define VPCI_BAR 0
#define VPCI_BAR_SIZE 0x8000u
#define VPCI_COMMON_OFF 0x0000u
#define VPCI_COMMON_LEN 0x40u
#define VPCI_ISR_OFF 0x1000u
#define VPCI_ISR_LEN 4u
#define VPCI_DEVICE_OFF 0x2000u
#define VPCI_DEVICE_MAX 0x1000u
#define VPCI_NOTIFY_OFF 0x3000u
#define VPCI_NOTIFY_MULT 4u
#define VPCI_MSIX_TABLE_OFF 0x4000u
#define VPCI_MSIX_PBA_OFF 0x5000u

/* Capability cfg_type values (§4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

/* Common configuration offsets (§4.1.4.3). */
#define VPCI_DFSELECT 0x00
#define VPCI_DF 0x04
#define VPCI_GFSELECT 0x08
#define VPCI_GF 0x0c
#define VPCI_MSIX_CONFIG 0x10
#define VPCI_NUM_QUEUES 0x12
#define VPCI_STATUS 0x14
#define VPCI_CFG_GENERATION 0x15
#define VPCI_Q_SELECT 0x16
#define VPCI_Q_SIZE 0x18
#define VPCI_Q_MSIX 0x1a
#define VPCI_Q_ENABLE 0x1c
#define VPCI_Q_NOFF 0x1e
#define VPCI_Q_DESC 0x20
#define VPCI_Q_AVAIL 0x28
#define VPCI_Q_USED 0x30

/* Device status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_MSI_NO_VECTOR 0xffff
#define VIRTIO_ISR_QUEUE 1
#define VIRTIO_ISR_CONFIG 2

/* Registers a queue's eventfd on its notify address with the engine
 * (KVM_IOEVENTFD), or removes it. NULL ioeventfd: notifications always
 * arrive as MMIO writes. */
struct virtio_notify_hook {
	int (*ioeventfd)(void *opaque, uint64_t addr, unsigned len, int fd, bool assign);
	void *opaque;
};

struct vpci_queue {
	uint16_t size;
	uint16_t vector;
	bool enabled;
	uint64_t desc, avail, used;
	int kickfd; /* eventfd */
};

struct virtio_pci_stats {
	uint64_t notifies;      /* wake-ups of the I/O thread by a queue's eventfd */
	uint64_t mmio_notifies; /* notify writes that exited as MMIO (no ioeventfd);
				 * several may merge into one wake-up */
	uint64_t interrupts;    /* MSI-X messages or INTx assertions requested */
};

struct virtio_pci {
	pthread_mutex_t lock;
	struct pci_function fn;
	struct msix msix;
	const struct virtio_device_ops *ops;
	void *dev;
	const struct guest_mem *mem;
	const struct irq_ctl *irq;
	uint32_t intx_gsi;

	/* Common configuration. */
	uint32_t dfselect, gfselect;
	uint64_t offered, driver_features;
	uint16_t config_vector;
	uint8_t status;
	uint8_t config_generation;
	uint16_t queue_select;
	struct vpci_queue q[VIRTIO_MAX_QUEUES];
	struct virtqueue vq[VIRTIO_MAX_QUEUES];
	uint8_t isr;
	bool intx_disabled; /* Command.Interrupt Disable, cached (atomic) */
	bool active; /* activate() succeeded and no reset/failure since */

	/* I/O thread. */
	struct virtio_queue_ctx ctx;
	pthread_t thread;
	bool thread_started;
	int epfd, stopfd;
	int watched[4];
	unsigned nwatched;

	/* Notify addresses registered with the engine (ioeventfd). */
	struct virtio_notify_hook hook;
	uint64_t notify_base; /* BAR address the ioeventfds are on, or PCI_BAR_UNMAPPED */

	struct virtio_pci_stats stats;
};

/* Sets up the PCI function of `dev` (ops must be valid: 1..VIRTIO_MAX_QUEUES
 * queues, a power-of-two queue size, config_size <= VPCI_DEVICE_MAX) with
 * INTx on pin A at `intx_gsi` and MSI-X with one vector per queue plus one
 * for configuration changes. Returns 0 or a negative errno. */
int virtio_pci_init(struct virtio_pci *t, const struct virtio_device_ops *ops, void *dev,
		    const struct guest_mem *mem, const struct irq_ctl *irq, uint32_t intx_gsi);
void virtio_pci_destroy(struct virtio_pci *t);

/* Starts the I/O thread; with a hook, notifications bypass the vCPU loop.
 * Call after the function is on the host bridge (its BARs are placed). */
int virtio_pci_start(struct virtio_pci *t, const struct virtio_notify_hook *hook);
/* Stops the I/O thread (idempotent). */
void virtio_pci_stop(struct virtio_pci *t);

/* BAR 0 accesses (also reachable through the pci_function's ops). */
void virtio_pci_bar_read(struct virtio_pci *t, uint64_t off, uint8_t *data, unsigned size);
void virtio_pci_bar_write(struct virtio_pci *t, uint64_t off, const uint8_t *data, unsigned size);

/* Processes pending queue notifications and watched fds without the I/O
 * thread (tests and fuzzers): runs what the thread would run. */
void virtio_pci_poll(struct virtio_pci *t);

/* Transport state (status, features, queues, MSI-X vectors) followed by
 * the device's own section (the ISR included; the MSI-X table and the PCI
 * configuration space are not saved yet). Load validates everything and re-enables the
 * queues through vq_enable(). */
int virtio_pci_save(struct virtio_pci *t, struct snapbuf *out);
int virtio_pci_load(struct virtio_pci *t, struct snapbuf *in);

#endif
