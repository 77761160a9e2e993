/* virtio-blk device backend: virtio 1.2 §5.2 "Block Device".
 *
 *   §5.2.2   one request queue (VIRTIO_BLK_F_MQ is not offered)
 *   §5.2.3   features: SEG_MAX, BLK_SIZE, FLUSH, and RO for a read-only
 *            disk, DISCARD and WRITE_ZEROES for a writable one
 *   §5.2.4   configuration layout (read-only here; writes are ignored)
 *   §5.2.6   requests {le32 type, le32 reserved, le64 sector} + data +
 *            u8 status: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES
 *
 * Request layout, as the device reads it (§5.2.6, any descriptor split):
 * the readable part starts with the 16-byte header; the status is the LAST
 * byte of the writable part. For IN the data is the writable part minus
 * the status; for OUT, DISCARD and WRITE_ZEROES it is the readable part
 * after the header. Data moves between the guest's buffers and the disk
 * with preadv/pwritev over iovecs built from the chain's segments, never
 * through a bounce buffer.
 *
 * Validation (the chain itself was validated by vq_pop()):
 *  - no writable byte for the status: the request cannot be answered; it
 *    is returned with used.len 0, not executed, and counted in
 *    stats.no_status (the queue keeps working; Linux never sends one);
 *  - header shorter than 16 bytes, sector range beyond the capacity
 *    (overflow included), data not a multiple of 512, IN with readable
 *    data or OUT with writable data besides the status, discard /
 *    write-zeroes payload not a whole number of 16-byte segments or more
 *    segments or sectors than the configuration allows → S_IOERR;
 *  - OUT, DISCARD, WRITE_ZEROES on a read-only disk → S_IOERR, nothing
 *    written (§5.2.6.2);
 *  - unknown types, DISCARD/WRITE_ZEROES without the feature negotiated,
 *    unknown segment flags or DISCARD with unmap → S_UNSUPP (§5.2.6.2);
 *  - host I/O errors → S_IOERR.
 * used.len is the number of bytes written into the writable part: data +
 * status for IN and GET_ID, 1 (the status) for the others and for errors.
 *
 * Durability (§5.2.6.2): with VIRTIO_BLK_F_FLUSH negotiated the device is
 * write-back and FLUSH completes when the data is durable; without it,
 * every write is flushed before it completes (write-through).
 *
 * Threads and locking: every callback runs with the transport's device
 * mutex held (virtio/device.h), so the device has no lock of its own. The
 * request path runs only on the transport's I/O thread; config reads may
 * come from a vCPU thread and read only the immutable config bytes. */
#ifndef SHRIKE_VIRTIO_BLK_H
#define SHRIKE_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio/device.h"
#include "virtio/disk_file.h"
#include "virtio/virtqueue.h"

/* Feature bits (§5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* Discard / write-zeroes segment flags (§5.2.6). */
#define VIRTIO_BLK_WZ_F_UNMAP 1u

/* Configuration offsets (§5.2.4); the space ends after unused1 (no secure
 * erase, no zoned fields). */
#define VIRTIO_BLK_CFG_CAPACITY 0
#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_BLK_SIZE 20
#define VIRTIO_BLK_CFG_NUM_QUEUES 34
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT 44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS 48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG 52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP 56
#define VIRTIO_BLK_CONFIG_SIZE 60

#define VIRTIO_BLK_HDR_SIZE 16u
#define VIRTIO_BLK_DWZ_SEG_SIZE 16u  /* struct virtio_blk_discard_write_zeroes */
#define VIRTIO_BLK_ID_BYTES 20u
#define VIRTIO_BLK_QUEUE_SIZE 256u
/* Limits advertised in the configuration and enforced on requests. */
#define VIRTIO_BLK_SEG_MAX (VIRTIO_BLK_QUEUE_SIZE - 2)   /* data segments; + header, status */
#define VIRTIO_BLK_MAX_DWZ_SECTORS (1u << 21)          /* 1 GiB per segment */
#define VIRTIO_BLK_MAX_DWZ_SEGS 16u
#define VIRTIO_BLK_DISCARD_ALIGNMENT 8u                /* sectors: 4 KiB */

struct virtio_blk_stats {
	uint64_t reads, writes, flushes, get_ids, discards, write_zeroes;
	uint64_t bytes_read, bytes_written;
	uint64_t ioerr;       /* requests answered S_IOERR (bad request or host error) */
	uint64_t host_errors; /* of which the host backend failed */
	uint64_t unsupp;      /* requests answered S_UNSUPP */
	uint64_t no_status;   /* chains without a status byte, returned unanswered */
	uint64_t avail_went_back; /* drains stopped because avail->idx moved backwards */
};

struct virtio_blk {
	const struct disk_ops *disk_ops;
	void *disk;
	uint64_t capacity;    /* 512-byte sectors */
	bool readonly;
	uint64_t features;    /* offered device feature bits */
	char serial[VIRTIO_BLK_ID_BYTES]; /* NUL-padded, no terminator when full */
	uint8_t config[VIRTIO_BLK_CONFIG_SIZE]; /* little-endian, built at init */

	/* Between activate() and reset(): a copy of the transport's context. */
	bool active;
	struct virtio_queue_ctx ctx;

	struct virtio_blk_stats stats;
	/* Scratch for one request at a time (I/O thread only). */
	struct vq_chain chain;
	struct iovec iov[VQ_MAX_SEGS];
};

extern const struct virtio_device_ops virtio_blk_ops;

/* Binds the device to a disk backend (`ops` with opaque `disk`; both must
 * outlive the device). The capacity is ops->size(disk) / 512. serial is
 * the GET_ID string (NULL for none), at most 20 bytes. Returns 0, or
 * -EINVAL for a disk whose size is 0 or not a multiple of 512, or a serial
 * longer than 20 bytes. */
int virtio_blk_init(struct virtio_blk *b, const struct disk_ops *ops, void *disk, bool readonly,
		    const char *serial);

/* Executes one request chain (the parser and executor, callable without a
 * queue): writes the status byte and returns the used length to push. A
 * chain without a writable byte gets no status and 0. Before activate()
 * no feature counts as negotiated: DISCARD and WRITE_ZEROES are UNSUPP
 * and writes are write-through. */
uint32_t virtio_blk_handle(struct virtio_blk *b, const struct vq_chain *chain);

#endif
