/* Host disk backends for virtio-blk (design.md rule 4: host backends are
 * injected ops structs), and the raw-image-file backend.
 *
 * `struct disk_ops` is what virtio/blk.c needs from a disk: vectored reads
 * and writes at a byte offset, a flush, discard and write-zeroes over a
 * byte range, and the size. Every call either does the whole transfer or
 * fails with a negative errno: backends hide short transfers and EINTR.
 * Offsets and lengths are multiples of 512 and lie inside the disk (the
 * device checks them before calling). A flush returns only when every
 * write completed before it is durable.
 *
 * disk_file implements it over a raw image (a regular file or a block
 * device): pread/pwrite, fdatasync, fallocate. The image is locked with
 * flock() (shared when read-only, exclusive otherwise) so that two VMs
 * cannot write one image at the same time.
 *
 * Threads: a disk_file is used by one thread at a time (the virtio-blk
 * device's I/O thread, under the transport's device mutex); it keeps no
 * mutable state after open. */
#ifndef SHRIKE_VIRTIO_DISK_FILE_H
#define SHRIKE_VIRTIO_DISK_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/errmsg.h"

#define DISK_SECTOR_SIZE 512u

struct disk_ops {
	/* Whole transfer of iov[0..iovcnt) at byte offset `off`, or -errno.
	 * The backend may modify the iovec array (to resume a short
	 * transfer); the caller rebuilds it for each request. */
	int (*preadv)(void *disk, struct iovec *iov, int iovcnt, uint64_t off);
	int (*pwritev)(void *disk, struct iovec *iov, int iovcnt, uint64_t off);
	/* Makes every completed write durable. */
	int (*flush)(void *disk);
	/* May deallocate [off, off+len); contents afterwards are unspecified
	 * (a backend that cannot deallocate returns 0 and does nothing). */
	int (*discard)(void *disk, uint64_t off, uint64_t len);
	/* [off, off+len) reads as zeroes afterwards; may_unmap allows
	 * deallocating it. */
	int (*write_zeroes)(void *disk, uint64_t off, uint64_t len, bool may_unmap);
	/* Size in bytes, a multiple of DISK_SECTOR_SIZE; fixed after open. */
	uint64_t (*size)(void *disk);
};

struct disk_file {
	int fd;         /* -1 when closed */
	uint64_t size;  /* bytes, a nonzero multiple of DISK_SECTOR_SIZE */
	bool readonly;
	bool blockdev;  /* a block device rather than a regular file */
};

extern const struct disk_ops disk_file_ops;

/* Opens `path` (O_RDWR, or O_RDONLY when readonly; O_CLOEXEC), checks it
 * is a regular file or a block device whose size is a nonzero multiple of
 * 512, and locks it. Returns 0, or a negative errno with one line in *err
 * naming the file and the problem (missing, permission, not a file, bad
 * size, in use). On failure nothing stays open and d->fd is -1. */
int disk_file_open(struct disk_file *d, const char *path, bool readonly, struct errmsg *err);
void disk_file_close(struct disk_file *d);

#endif
