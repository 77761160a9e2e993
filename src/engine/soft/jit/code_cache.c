/* The translator's code cache: one memfd, a writable and an executable
 * view of it, a bump allocator (see code_cache.h). */
#include "engine/soft/jit/code_cache.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: ask for an executable memfd explicitly */
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000 /* Linux 4.17; older kernels treat the address as a hint */
#endif

#define MIB (1024ul * 1024)
#define GIB (1024ul * MIB)
/* Room assumed for shrike's text around the anchor function: rel32 must
 * reach every C helper, not only the anchor. */
#define TEXT_SLACK (64 * MIB)
#define HINT_ALIGN (2 * MIB)

/* A function of shrike's own text, for distances to the helpers that
 * generated code calls. */
static uintptr_t text_anchor(void) { return (uintptr_t)&jit_cache_init; }

static uintptr_t distance(uintptr_t a, uintptr_t b) { return a > b ? a - b : b - a; }

static bool reaches_text(uintptr_t rx, size_t size)
{
	uintptr_t t = text_anchor();
	uintptr_t limit = 2 * GIB - TEXT_SLACK;
	return distance(rx, t) <= limit && distance(rx + size, t) <= limit;
}

/* Likely-free places near the text, nearest first: below it (free below a
 * PIE binary), then above it past where the brk heap starts. */
static bool hint_candidate(unsigned i, size_t size, uintptr_t *hint)
{
	static const uintptr_t below[] = {128 * MIB, 512 * MIB, 1 * GIB};
	static const uintptr_t above[] = {1 * GIB, 512 * MIB, 256 * MIB};
	uintptr_t t = text_anchor() & ~(HINT_ALIGN - 1);
	if (i < 3) {
		if (t < below[i] + size + HINT_ALIGN)
			return false;
		*hint = (t - below[i] - size) & ~(HINT_ALIGN - 1);
		return true;
	}
	if (i < 6) {
		*hint = t + above[i - 3];
		return true;
	}
	return false;
}

/* The executable view, near the text when possible, else anywhere. */
static uint8_t *map_rx(int fd, size_t size, bool *near)
{
	for (unsigned i = 0; i < 6; i++) {
		uintptr_t hint;
		if (!hint_candidate(i, size, &hint) || !reaches_text(hint, size))
			continue;
		void *p = mmap((void *)hint, size, PROT_READ | PROT_EXEC,
			       MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
		if (p == MAP_FAILED)
			continue;
		if (reaches_text((uintptr_t)p, size)) { /* a kernel without NOREPLACE may move it */
			*near = true;
			return p;
		}
		munmap(p, size);
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	*near = reaches_text((uintptr_t)p, size);
	return p;
}

static int open_memfd(void)
{
	/* With vm.memfd_noexec=1 a memfd is sealed non-executable unless
	 * MFD_EXEC says otherwise; kernels before 6.3 reject the flag. */
	int fd = memfd_create("shrike-jit", MFD_CLOEXEC | MFD_EXEC);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("shrike-jit", MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int jit_cache_init(struct jit_cache *c, size_t size_bytes)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	if (size_bytes < JIT_CACHE_MIN_SIZE || size_bytes > JIT_CACHE_MAX_SIZE)
		return -EINVAL;
	size_t size = (size_bytes + page - 1) & ~(page - 1);

	int err;
	int fd = open_memfd();
	if (fd < 0)
		return fd;
	if (ftruncate(fd, (off_t)size) < 0) {
		err = -errno;
		goto fail_fd;
	}
	void *rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rw == MAP_FAILED) {
		err = -errno;
		goto fail_fd;
	}
	bool near = false;
	uint8_t *rx = map_rx(fd, size, &near);
	if (!rx) {
		err = -errno;
		goto fail_rw;
	}
	c->fd = fd;
	c->rw = rw;
	c->rx = rx;
	c->size = size;
	c->near_text = near;
	c->sync_cores = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
				0, 0) == 0;
	return 0;

fail_rw:
	munmap(rw, size);
fail_fd:
	close(fd);
	return err;
}

void jit_cache_destroy(struct jit_cache *c)
{
	if (c->rx)
		munmap(c->rx, c->size);
	if (c->rw)
		munmap(c->rw, c->size);
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

int jit_cache_reserve(struct jit_cache *c, size_t max_bytes, uint8_t **rw, uintptr_t *rx)
{
	if (c->open)
		return -EBUSY;
	if (max_bytes == 0)
		return -EINVAL;
	if (max_bytes > c->size)
		return -E2BIG;
	size_t at = (c->used + JIT_CACHE_ALIGN - 1) & ~(size_t)(JIT_CACHE_ALIGN - 1);
	if (at > c->size || max_bytes > c->size - at)
		return -ENOSPC;
	c->open = true;
	c->open_at = at;
	c->open_max = max_bytes;
	*rw = c->rw + at;
	*rx = (uintptr_t)c->rx + at;
	return 0;
}

int jit_cache_commit(struct jit_cache *c, size_t used_bytes)
{
	if (!c->open || used_bytes > c->open_max)
		return -EINVAL;
	c->open = false;
	if (used_bytes == 0)
		return 0;
	c->used = c->open_at + used_bytes;
	c->blocks++;
	if (c->used > c->peak)
		c->peak = c->used;
	return 0;
}

bool jit_cache_contains(const struct jit_cache *c, uintptr_t rx)
{
	return rx >= (uintptr_t)c->rx && rx - (uintptr_t)c->rx < c->size;
}

uint8_t *jit_cache_rw(const struct jit_cache *c, uintptr_t rx)
{
	return jit_cache_contains(c, rx) ? c->rw + (rx - (uintptr_t)c->rx) : NULL;
}

void jit_cache_flush(struct jit_cache *c)
{
	/* Only what was written: untouched pages stay unallocated. */
	size_t dirty = c->open ? c->open_at + c->open_max : c->used;
	memset(c->rw, 0xcc, dirty);
	c->used = 0;
	c->open = false;
	c->generation++;
	c->flushes++;
}

void jit_cache_sync(const struct jit_cache *c, uintptr_t rx, size_t len)
{
	(void)c;
#if defined(__x86_64__) || defined(__i386__)
	/* Same physical pages, coherent instruction fetch (SDM vol. 3
	 * §11.6): only the compiler must not sink the stores past the
	 * jump into the code. */
	(void)rx;
	(void)len;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#else
	__builtin___clear_cache((char *)rx, (char *)rx + len);
#endif
}

int jit_cache_sync_cores(const struct jit_cache *c)
{
	if (!c->sync_cores)
		return -ENOSYS;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) < 0)
		return -errno;
	return 0;
}

void jit_cache_stats(const struct jit_cache *c, struct jit_cache_stats *s)
{
	*s = (struct jit_cache_stats){
		.size = c->size,
		.used = c->used,
		.peak = c->peak,
		.blocks = c->blocks,
		.flushes = c->flushes,
		.generation = c->generation,
		.near_text = c->near_text,
	};
}
