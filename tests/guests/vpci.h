/* The virtio-pci transport of the test guests' polled drivers (virtio.c:
 * virtio-rng, vblk.c: virtio-blk): finding a function, its BARs and
 * capabilities, initializing a modern device with one split virtqueue,
 * and submitting a descriptor chain and waiting for it.
 *
 *   PCI Local Bus 3.0 §3.2.2.3.2 configuration mechanism #1 (CF8/CFC),
 *     §6.2.5 BARs (sizing by writing all ones with decoding off),
 *     §6.7 capability list, §6.8.2 MSI-X capability and table;
 *   virtio 1.2 §4.1.2 PCI IDs (vendor 1af4, device 1040 + virtio ID),
 *     §4.1.4 vendor capabilities (common 1, notify 2 with
 *     notify_off_multiplier, ISR 3), §4.1.4.3 common configuration,
 *     §4.1.4.4 notification address = cap offset + queue_notify_off *
 *     notify_off_multiplier, §4.1.5.1.2 MSI-X vector mapping;
 *   virtio 1.2 §3.1.1 driver initialization (reset, ACKNOWLEDGE, DRIVER,
 *     features with VERSION_1 = bit 32 only, FEATURES_OK re-read, queues,
 *     DRIVER_OK), §2.7 split virtqueue (descriptor table 16-byte aligned,
 *     available ring 2, used ring 4).
 *
 * Bus 0 only (shrike has no bridges). BARs are used where shrike assigned
 * them and must lie below 4 GiB, which is all the multiboot guest can
 * reach. Everything read from the device (IDs, capability pointers, BARs,
 * offsets, lengths, queue sizes) is checked before use and every wait is
 * bounded (RTC seconds, or a spin count), so a broken device gives an
 * error string, never a hang. Rings live in static, identity-mapped
 * memory (guest-physical == virtual in every test guest). Single-threaded
 * (BSP only), no interrupts taken. */
#ifndef SHRIKE_TEST_GUEST_VPCI_H
#define SHRIKE_TEST_GUEST_VPCI_H

#include <stdint.h>

#define VIRTIO_VENDOR 0x1af4u

#define VPCI_NUM_BARS 6u
#define VQ_SIZE 8u /* largest queue a driver sets up */

#define VQ_DESC_F_NEXT 1
#define VQ_DESC_F_WRITE 2

/* Common configuration (§4.1.4.3) registers the drivers use themselves. */
#define VC_Q_MSIX 0x1a

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[VQ_SIZE];
	uint16_t used_event;
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq_used {
	uint16_t flags;
	uint16_t idx;
	struct vq_used_elem ring[VQ_SIZE];
	uint16_t avail_event;
};

/* The rings of one split virtqueue, aligned as §2.7 requires. */
struct vq_rings {
	struct vq_desc desc[VQ_SIZE] __attribute__((aligned(16)));
	struct vq_avail avail __attribute__((aligned(2)));
	struct vq_used used __attribute__((aligned(4)));
};

struct vpci_region {
	uintptr_t base; /* 0: not found */
	uint32_t len;
};

struct vpci_dev {
	uint32_t bdf; /* bus << 16 | dev << 11 | fn << 8, as CF8 wants it */
	uint32_t bar_addr[VPCI_NUM_BARS];
	uint32_t bar_size[VPCI_NUM_BARS]; /* 0: absent or unusable */
	struct vpci_region common, notify, isr;
	uint32_t notify_mult;
	unsigned msix_cap;    /* 0: none */
	uintptr_t msix_table; /* entry 0, or 0 if unusable */
	struct vq_rings *vq;  /* queue 0, once set up */
	uint16_t qsize, avail_idx;
	uintptr_t notify_addr;
};

/* PCI configuration space of function bdf. */
uint16_t pci_cfg_read16(uint32_t bdf, unsigned reg);
void pci_cfg_write16(uint32_t bdf, unsigned reg, uint16_t v);

/* Finds the first function 1af4:device on bus 0, sizes its BARs, enables
 * memory decoding and bus mastering, and finds its virtio structures (the
 * first usable one of each type, §4.1.4.1) and its MSI-X table. NULL, or
 * what failed ("no device", "no common cfg", ...); d->common is filled
 * whenever it was found. */
const char *vpci_open(struct vpci_dev *d, uint16_t device);

/* §3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, VERSION_1 only,
 * FEATURES_OK. */
const char *vpci_negotiate(const struct vpci_dev *d);

/* §4.1.5.1.3: queue 0 with the rings at vq (cleared here) and at least
 * `need` entries, its MSI-X vector mapped to table entry 0 when there is
 * a table, then the notify address. */
const char *vpci_queue_setup(struct vpci_dev *d, struct vq_rings *vq, unsigned need);

/* DRIVER_OK, checked as the device took it. */
const char *vpci_driver_ok(const struct vpci_dev *d);

/* Makes the chain starting at descriptor `head` available in queue 0,
 * notifies the device and waits until it is used; *used is the used
 * element (the caller checks it). NULL or "timeout". */
const char *vpci_submit(struct vpci_dev *d, uint16_t head, struct vq_used_elem *used);

/* The device status, and a reset (§4.1.4.3.2: write 0, wait for 0). */
uint8_t vpci_status(const struct vpci_dev *d);
int vpci_reset(const struct vpci_dev *d);

/* Spins until done(arg) holds: 0, or -1 after WAIT_SECONDS ticks of the
 * RTC's seconds (or a hard spin count if the RTC never ticks). The device
 * answers from another host thread, so the bound is wall-clock time
 * rather than guest instructions, whose speed differs by engine. */
int vpci_wait(int (*done)(const void *), const void *arg);

#endif
