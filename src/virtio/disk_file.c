/* Raw image file (or block device) disk backend; see disk_file.h. */
#include "virtio/disk_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* Source of zeroes for write_zeroes when the file system cannot fallocate
 * them: 64 KiB, several iovecs per pwritev. Read-only, so not a mutable
 * global. */
#define ZERO_CHUNK (64u << 10)
#define ZERO_IOVS 16u
static const uint8_t zero_chunk[ZERO_CHUNK];

/* Skips the first n bytes of the iovec array, dropping empty entries. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt > 0) {
		struct iovec *v = *iov;
		if (n < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			return;
		}
		n -= v->iov_len;
		(*iov)++;
		(*cnt)--;
	}
}

/* Whole transfer, resuming after short transfers and EINTR. A transfer of
 * 0 bytes means the end of the file (the image shrank under us) or a full
 * device: an I/O error rather than a retry loop. */
static int disk_file_rw(int fd, struct iovec *iov, int cnt, uint64_t off, bool write)
{
	iov_advance(&iov, &cnt, 0);
	while (cnt > 0) {
		if (off > (uint64_t)INT64_MAX)
			return -EINVAL;
		int n = cnt < IOV_MAX ? cnt : IOV_MAX;
		ssize_t r = write ? pwritev(fd, iov, n, (off_t)off)
				  : preadv(fd, iov, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		off += (uint64_t)r;
		iov_advance(&iov, &cnt, (size_t)r);
	}
	return 0;
}

static int disk_file_preadv(void *disk, struct iovec *iov, int iovcnt, uint64_t off)
{
	struct disk_file *d = disk;
	return disk_file_rw(d->fd, iov, iovcnt, off, false);
}

static int disk_file_pwritev(void *disk, struct iovec *iov, int iovcnt, uint64_t off)
{
	struct disk_file *d = disk;
	if (d->readonly)
		return -EROFS;
	return disk_file_rw(d->fd, iov, iovcnt, off, true);
}

static int disk_file_flush(void *disk)
{
	struct disk_file *d = disk;
	while (fdatasync(d->fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int disk_file_fallocate(struct disk_file *d, int mode, uint64_t off, uint64_t len)
{
	if (d->readonly)
		return -EROFS;
	if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
		return -EINVAL;
	while (fallocate(d->fd, mode, (off_t)off, (off_t)len) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int disk_file_discard(void *disk, uint64_t off, uint64_t len)
{
	int r = disk_file_fallocate(disk, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	/* Discard is a hint: a file system without holes simply keeps the data. */
	return r == -EOPNOTSUPP ? 0 : r;
}

static int disk_file_write_zero_buffers(struct disk_file *d, uint64_t off, uint64_t len)
{
	struct iovec iov[ZERO_IOVS];
	while (len > 0) {
		int cnt = 0;
		uint64_t chunk = 0;
		while (cnt < (int)ZERO_IOVS && chunk < len) {
			uint64_t n = len - chunk < ZERO_CHUNK ? len - chunk : ZERO_CHUNK;
			/* pwritev only reads it; the cast is for the iovec type. */
			iov[cnt++] = (struct iovec){.iov_base = (void *)zero_chunk, .iov_len = n};
			chunk += n;
		}
		int r = disk_file_rw(d->fd, iov, cnt, off, true);
		if (r < 0)
			return r;
		off += chunk;
		len -= chunk;
	}
	return 0;
}

/* Cheapest first: deallocate (if allowed), allocate as zeroes, and only
 * then write zeroes. Each fallocate mode falls through only when the file
 * system does not support it. */
static int disk_file_write_zeroes(void *disk, uint64_t off, uint64_t len, bool may_unmap)
{
	struct disk_file *d = disk;
	int r = -EOPNOTSUPP;
	if (may_unmap)
		r = disk_file_fallocate(d, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	if (r == -EOPNOTSUPP)
		r = disk_file_fallocate(d, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
	if (r == -EOPNOTSUPP)
		r = disk_file_write_zero_buffers(d, off, len);
	return r;
}

static uint64_t disk_file_size(void *disk)
{
	const struct disk_file *d = disk;
	return d->size;
}

const struct disk_ops disk_file_ops = {
    .preadv = disk_file_preadv,
    .pwritev = disk_file_pwritev,
    .flush = disk_file_flush,
    .discard = disk_file_discard,
    .write_zeroes = disk_file_write_zeroes,
    .size = disk_file_size,
};

static int disk_file_open_error(const char *path, bool readonly, int err, struct errmsg *e)
{
	switch (err) {
	case ENOENT:
		return errmsg_set(e, err, "disk image %s does not exist", path);
	case EACCES:
	case EPERM:
		return errmsg_set(e, err, "disk image %s: permission denied%s", path,
				  readonly ? "" : " (add ,ro to open it read-only)");
	case EROFS:
		return errmsg_set(e, err,
				  "disk image %s is on a read-only file system (add ,ro to open it "
				  "read-only)",
				  path);
	case EISDIR:
		return errmsg_set(e, err, "disk image %s is a directory, not an image file", path);
	default:
		return errmsg_set(e, err, "disk image %s: %s", path, strerror(err));
	}
}

/* Size of a regular file or block device; a clear error for anything else. */
static int disk_file_probe(struct disk_file *d, const char *path, struct errmsg *err)
{
	struct stat st;
	if (fstat(d->fd, &st) < 0)
		return disk_file_open_error(path, d->readonly, errno, err);
	if (S_ISDIR(st.st_mode))
		return disk_file_open_error(path, d->readonly, EISDIR, err);
	if (S_ISREG(st.st_mode)) {
		d->size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(d->fd, 0, SEEK_END);
		if (end < 0)
			return disk_file_open_error(path, d->readonly, errno, err);
		d->size = (uint64_t)end;
		d->blockdev = true;
	} else {
		return errmsg_set(err, EINVAL,
				  "disk image %s is not a regular file or a block device", path);
	}
	if (d->size == 0)
		return errmsg_set(err, EINVAL, "disk image %s is empty", path);
	if (d->size % DISK_SECTOR_SIZE)
		return errmsg_set(err, EINVAL,
				  "disk image %s: size %llu bytes is not a multiple of %u bytes",
				  path, (unsigned long long)d->size, DISK_SECTOR_SIZE);
	return 0;
}

/* Advisory lock so that two VMs do not write one image. File systems
 * without flock support (ENOLCK, EOPNOTSUPP) are let through. */
static int disk_file_lock(struct disk_file *d, const char *path, struct errmsg *err)
{
	if (flock(d->fd, (d->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		return errmsg_set(err, EBUSY, "disk image %s is in use by another process%s", path,
				  d->readonly ? " for writing" : "");
	return 0;
}

int disk_file_open(struct disk_file *d, const char *path, bool readonly, struct errmsg *err)
{
	*d = (struct disk_file){.fd = -1, .readonly = readonly};
	/* O_NONBLOCK so that opening a FIFO by mistake cannot hang; cleared
	 * below once the file is known to be an image. */
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return disk_file_open_error(path, readonly, errno, err);
	d->fd = fd;
	int r = disk_file_probe(d, path, err);
	if (!r)
		r = disk_file_lock(d, path, err);
	if (!r) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			r = disk_file_open_error(path, readonly, errno, err);
	}
	if (r) {
		disk_file_close(d);
		return r;
	}
	return 0;
}

void disk_file_close(struct disk_file *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}
