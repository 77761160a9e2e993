/* A polled virtio-blk driver for the test guests, just enough to move
 * sectors between a disk and guest memory (for the self-modifying-code
 * guest, which reads code into a code page by DMA).
 *
 *   virtio 1.2 §4.1.2 PCI IDs (1af4:1042 is virtio-blk, device ID 2),
 *     §5.2.6 block requests: a device-readable header {le32 type (0 IN,
 *     1 OUT), le32 reserved, le64 sector}, the data, and a
 *     device-writable status byte (0 OK).
 *
 * The transport (PCI, capabilities, initialization with VERSION_1 only,
 * the split virtqueue, bounded waits) is vpci.h, shared with the
 * virtio-rng driver (virtio.h); completion is polled in the used ring
 * with interrupts off, one request at a time. A broken device gives an
 * error string, never a hang. Single-threaded (BSP only). */
#ifndef SHRIKE_TEST_GUEST_VBLK_H
#define SHRIKE_TEST_GUEST_VBLK_H

#include <stdint.h>

#define VBLK_SECTOR 512u
#define VBLK_MAX_SECTORS 8u /* largest request */

/* Finds and initializes the first virtio-blk function. NULL on success,
 * else what failed. */
const char *vblk_init(void);

/* Reads (write = 0) or writes n sectors (1..VBLK_MAX_SECTORS) at sector
 * into / from buf, which is guest-physical == virtual. NULL on success. */
const char *vblk_io(int write, uint64_t sector, void *buf, uint32_t n);

#endif
