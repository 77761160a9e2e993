/* What the unit tests of the soft CPU's floating-point and vector groups
 * share (test_soft_x87.c, test_soft_mmx.c, test_soft_sse.c,
 * test_soft_ssse3.c, test_soft_sse4.c): a 64-bit harness (soft_harness.h)
 * with exception gates, guest-memory access, and access to and checks of
 * the XMM and MMX registers, under the short names those files use.
 * Header-only; include after <cmocka.h>. */
#ifndef SHRIKE_TESTS_FPU_HARNESS_H
#define SHRIKE_TESTS_FPU_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "engine/soft/fpu.h"
#include "soft_harness.h"

#define CODE HARNESS_CODE_ADDR
#define DATA HARNESS_DATA_ADDR

#define cpu_of harness_cpu
#define run harness_run_code
#define assert_fault harness_assert_fault

static inline struct fpu_state *fpu_of(struct harness *h) { return &cpu_of(h)->fpu; }

/* 64-bit mode with RSI = DATA and the gates of harness_install_idt64
 * (for assert_fault); with sse, the OS supports SSE (CR4.OSFXSR and
 * CR4.OSXMMEXCPT, so unmasked SIMD exceptions raise #XM). */
static inline struct harness *fpu_harness_new(bool sse)
{
	struct harness *h = harness_new(64);
	assert_non_null(h);
	if (sse)
		h->state.cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
	h->state.gpr[GPR_RSI] = DATA;
	harness_install_idt64(h);
	harness_sync(h);
	return h;
}

/* ---- guest memory ---- */

static inline void put(struct harness *h, uint64_t gpa, const void *p, size_t n)
{
	guest_mem_write(&h->mem, gpa, p, n);
}

static inline void get(struct harness *h, uint64_t gpa, void *p, size_t n)
{
	guest_mem_read(&h->mem, gpa, p, n);
}

/* The little-endian value of `size` (1-8) bytes at gpa. */
static inline uint64_t get_le(struct harness *h, uint64_t gpa, unsigned size)
{
	uint64_t v = 0;
	get(h, gpa, &v, size);
	return v;
}

static inline uint64_t get64(struct harness *h, uint64_t gpa) { return get_le(h, gpa, 8); }

/* ---- registers ---- */

static inline uint32_t mxcsr(struct harness *h) { return fpu_of(h)->mxcsr; }

static inline unsigned top(struct harness *h)
{
	return (fpu_of(h)->fsw & FSW_TOP) >> FSW_TOP_SHIFT;
}

/* XMMn from its dwords, its quadwords or 16 bytes. */
static inline void xset(struct harness *h, unsigned n, uint32_t d0, uint32_t d1, uint32_t d2,
			uint32_t d3)
{
	uint32_t v[4] = {d0, d1, d2, d3};
	memcpy(fpu_of(h)->xmm[n], v, 16);
}

static inline void xset_q(struct harness *h, unsigned n, uint64_t q0, uint64_t q1)
{
	uint64_t v[2] = {q0, q1};
	memcpy(fpu_of(h)->xmm[n], v, 16);
}

static inline void xset_bytes(struct harness *h, unsigned n, const void *p)
{
	memcpy(fpu_of(h)->xmm[n], p, 16);
}

static inline void assert_xmm(struct harness *h, unsigned n, uint32_t d0, uint32_t d1,
			      uint32_t d2, uint32_t d3)
{
	uint32_t v[4], want[4] = {d0, d1, d2, d3};
	memcpy(v, fpu_of(h)->xmm[n], 16);
	for (int k = 0; k < 4; k++)
		assert_int_equal(v[k], want[k]);
}

static inline void assert_xmm_q(struct harness *h, unsigned n, uint64_t q0, uint64_t q1)
{
	uint64_t v[2];
	memcpy(v, fpu_of(h)->xmm[n], 16);
	assert_int_equal(v[0], q0);
	assert_int_equal(v[1], q1);
}

/* MMn (the mantissa of physical register Rn), whatever TOP is. */
static inline uint64_t mm(struct harness *h, unsigned n) { return mmx_get(cpu_of(h), n); }

/* Sets MMn as an MMX instruction would (TOP 0, all registers valid,
 * exponent bits ones). */
static inline void mm_set(struct harness *h, unsigned n, uint64_t v)
{
	mmx_enter(cpu_of(h));
	mmx_set(cpu_of(h), n, v);
}

#endif
