/* The translator's code cache: a bounded arena of host code, W^X.
 *
 * One memfd is mapped twice: a PROT_READ|PROT_WRITE view where code is
 * written and patched, and a PROT_READ|PROT_EXEC view where it runs. No
 * mapping is ever writable and executable at once. Both views show the
 * same offset of the same file, so an execute address and its writable
 * alias differ by one constant (jit_cache_rw converts).
 *
 * The executable view is placed, when the address space allows, within
 * ±2 GiB of shrike's own text, so generated code reaches the C helpers
 * with rel32 calls (emit_call_abs falls back to an absolute call where
 * not; jit_cache_stats().near_text says which).
 *
 * Allocation is a bump pointer: jit_cache_reserve() opens a block of at
 * most max_bytes at a 16-byte aligned offset, the caller emits into it
 * and jit_cache_commit() keeps the bytes used. When a reservation does
 * not fit (-ENOSPC) the caller flushes: jit_cache_flush() empties the
 * whole cache and bumps the generation, the signal to drop every block
 * table, chain and jump-cache entry that points into it. No code of the
 * cache may be running (on any thread) when it is flushed.
 *
 * Threads: a cache has one owner (the translating thread) or the caller
 * serialises every call with its own lock; nothing here locks.
 *
 * Making new code visible to execution (jit_cache_sync):
 * - x86 keeps instruction fetch coherent with stores by physical address:
 *   a store to a line held in the instruction cache or being prefetched
 *   invalidates it (SDM vol. 3 §11.6 "Self-modifying code"). The two
 *   views share physical pages, so stores through the RW view reach the
 *   RX view with no cache maintenance; x86 has no instruction to flush
 *   the instruction cache and needs none. What is needed on the writing
 *   thread is that the compiler has issued the stores before the jump to
 *   the new code: a compiler barrier.
 * - Other threads (cross-modifying code): SDM vol. 3 §8.1.3 has the
 *   executing processor perform a serializing instruction after it sees
 *   the modification and before it runs the modified code. JITs in
 *   practice rely on weaker ground for fresh code: bytes that a core has
 *   not fetched since they were last written, reached only through a
 *   pointer published with a release store and read with acquire, are
 *   fetched fresh (snooping invalidates stale lines in every core). Code
 *   another thread may be running or have prefetched, such as a chained
 *   jump being re-targeted, is patched with one aligned 4-byte store
 *   (emit_patch_rel32: old or new target, never torn); when the old
 *   target must be unreachable afterwards (its memory is about to be
 *   reused), call jit_cache_sync_cores() (membarrier SYNC_CORE) or make
 *   every vCPU thread leave generated code first.
 * - Hosts other than x86 need an explicit instruction-cache flush, which
 *   jit_cache_sync does with __builtin___clear_cache on the RX range. */
#ifndef SHRIKE_ENGINE_SOFT_JIT_CODE_CACHE_H
#define SHRIKE_ENGINE_SOFT_JIT_CODE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JIT_CACHE_ALIGN 16
#define JIT_CACHE_MIN_SIZE 4096u
/* Below 2 GiB, so that any two points of the cache reach each other with
 * rel32 displacements. */
#define JIT_CACHE_MAX_SIZE (1024u * 1024 * 1024)

struct jit_cache {
	int fd;              /* the memfd behind both views */
	uint8_t *rw;         /* writable view */
	uint8_t *rx;         /* executable view */
	size_t size;         /* of each view, page-aligned */
	size_t used;         /* bytes committed, from the start */
	bool open;           /* a reservation is open */
	size_t open_at;      /* its offset */
	size_t open_max;     /* its size */
	uint64_t generation; /* bumped by every flush */
	uint64_t flushes;    /* flushes since init */
	uint64_t blocks;     /* non-empty commits since init */
	size_t peak;         /* highest `used` */
	bool near_text;      /* rx within rel32 reach of shrike's text */
	bool sync_cores;     /* membarrier SYNC_CORE is registered */
};

struct jit_cache_stats {
	size_t size, used, peak;
	uint64_t blocks, flushes, generation;
	bool near_text;
};

/* Sets up *c (uninitialised storage). size_bytes is rounded up to the
 * page size and must lie within [JIT_CACHE_MIN_SIZE, JIT_CACHE_MAX_SIZE].
 * Only touched pages take memory. 0 or -errno. */
int jit_cache_init(struct jit_cache *c, size_t size_bytes);
void jit_cache_destroy(struct jit_cache *c);

/* Opens a block of up to max_bytes at the next 16-byte boundary: *rw is
 * where to write it, *rx where it will run. -ENOSPC when the rest of the
 * cache is too small (flush and retry), -E2BIG when a flush would not
 * help, -EBUSY when a reservation is already open. */
int jit_cache_reserve(struct jit_cache *c, size_t max_bytes, uint8_t **rw, uintptr_t *rx);
/* Closes the open block keeping used_bytes of it (0 abandons it). -EINVAL
 * without an open block or with used_bytes beyond what was reserved. */
int jit_cache_commit(struct jit_cache *c, size_t used_bytes);
/* The writable alias of an execute address in the cache, or NULL. */
uint8_t *jit_cache_rw(const struct jit_cache *c, uintptr_t rx);
bool jit_cache_contains(const struct jit_cache *c, uintptr_t rx);
/* Empties the cache and bumps the generation; an open reservation is
 * dropped. The old code is overwritten with INT3 so that a stale pointer
 * into it traps instead of running whatever comes next. */
void jit_cache_flush(struct jit_cache *c);
/* Makes bytes written through the RW view at [rx, rx+len) ready to run on
 * this thread (see the header comment). */
void jit_cache_sync(const struct jit_cache *c, uintptr_t rx, size_t len);
/* A serializing event on every thread of the process, for code other
 * threads may already have fetched. 0, or -errno (-ENOSYS when the kernel
 * lacks membarrier SYNC_CORE; then use a run-loop exit). */
int jit_cache_sync_cores(const struct jit_cache *c);

static inline size_t jit_cache_used(const struct jit_cache *c) { return c->used; }
static inline size_t jit_cache_size(const struct jit_cache *c) { return c->size; }
static inline uint64_t jit_cache_flushes(const struct jit_cache *c) { return c->flushes; }
static inline uint64_t jit_cache_generation(const struct jit_cache *c) { return c->generation; }
void jit_cache_stats(const struct jit_cache *c, struct jit_cache_stats *s);

#endif
