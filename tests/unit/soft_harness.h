/* A soft CPU in a box, for unit tests of instruction groups: 32 MiB of
 * guest memory, one vCPU of the soft engine, code placed at CODE_ADDR and
 * run one instruction at a time through the public engine interface.
 * Port and MMIO exits are recorded. Header-only so each test file can
 * include it. */
#ifndef SHRIKE_TESTS_SOFT_HARNESS_H
#define SHRIKE_TESTS_SOFT_HARNESS_H

#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot_cpu.h"
#include "engine/engine.h"
#include "vm/memory.h"

#define HARNESS_CODE_ADDR 0x200000ULL
#define HARNESS_DATA_ADDR 0x300000ULL
#define HARNESS_STACK_TOP 0x400000ULL

struct harness {
	struct guest_mem mem;
	struct engine *engine;
	struct engine_vcpu *vcpu;
	struct cpu_state state;
	unsigned nexits;
	struct vcpu_exit last_exit;
	uint8_t last_data[8];
	uint8_t pio_read_value; /* what IN returns */
};

static void harness_exit(void *opaque, unsigned index, struct vcpu_exit *x)
{
	struct harness *h = opaque;
	(void)index;
	h->nexits++;
	h->last_exit = *x;
	if (x->kind == VCPU_EXIT_IO && !x->io.is_write)
		memset(x->io.data, h->pio_read_value, x->io.size);
	if (x->kind == VCPU_EXIT_IO)
		memcpy(h->last_data, x->io.data, x->io.size > 8 ? 8 : x->io.size);
	if (x->kind == VCPU_EXIT_MMIO)
		memcpy(h->last_data, x->mmio.data, x->mmio.size > 8 ? 8 : x->mmio.size);
}

/* mode: 64 (long mode, identity paging), 32 (flat protected), 16 (real mode) */
static inline struct harness *harness_new(int mode)
{
	struct harness *h = calloc(1, sizeof(*h));
	struct errmsg err;
	if (!h || guest_mem_init(&h->mem, 32ULL << 20))
		return NULL;
	struct engine_config ec = {.mem = &h->mem, .ncpus = 1, .exit_handler = harness_exit,
				   .exit_opaque = h};
	if (soft_engine_ops.create(&h->engine, &ec, &err) ||
	    soft_engine_ops.vcpu_create(h->engine, 0, &h->vcpu, &err))
		return NULL;
	soft_engine_ops.get_state(h->vcpu, &h->state);
	uint64_t apic = h->state.apic_base;
	if (mode == 64)
		boot_cpu_long_mode(&h->mem, &h->state);
	else if (mode == 32)
		boot_cpu_protected_mode(&h->mem, &h->state);
	else {
		for (int r = 0; r < SEG_COUNT; r++) {
			if (r == SEG_LDTR || r == SEG_TR)
				continue;
			h->state.seg[r].selector = 0;
			h->state.seg[r].base = 0;
		}
	}
	h->state.apic_base = apic;
	h->state.rip = mode == 16 ? 0x1000 : HARNESS_CODE_ADDR;
	h->state.gpr[GPR_RSP] = mode == 16 ? 0x8000 : HARNESS_STACK_TOP;
	soft_engine_ops.set_state(h->vcpu, &h->state);
	soft_engine_ops.set_single_step(h->vcpu, true);
	return h;
}

static inline void harness_load(struct harness *h, const void *code, size_t len)
{
	guest_mem_write(&h->mem, h->state.rip, code, len);
}

/* Applies h->state to the CPU (after a test edits it). */
static inline void harness_sync(struct harness *h) { soft_engine_ops.set_state(h->vcpu, &h->state); }

/* Runs n instructions; returns the last exit kind (VCPU_EXIT_DEBUG normally). */
static inline enum vcpu_exit_kind harness_step(struct harness *h, unsigned n)
{
	struct vcpu_exit x = {0};
	for (unsigned k = 0; k < n; k++) {
		soft_engine_ops.run(h->vcpu, &x);
		if (x.kind != VCPU_EXIT_DEBUG)
			break;
	}
	soft_engine_ops.get_state(h->vcpu, &h->state);
	return x.kind;
}

/* The soft CPU behind the harness (it is the first member of its vCPU). */
static inline struct soft_cpu *harness_cpu(struct harness *h) { return (struct soft_cpu *)h->vcpu; }

#define HARNESS_IDT_ADDR 0x380000ULL
#define HARNESS_HANDLERS 0x390000ULL /* the handler of vector v is at HANDLERS + 16 * v */

/* 64-bit interrupt gates for vectors 0-31, each to its own address, so a
 * test can tell which exception was raised from the RIP it ends at. */
static inline void harness_install_idt64(struct harness *h)
{
	uint16_t cs = h->state.seg[SEG_CS].selector;
	for (uint64_t v = 0; v < 32; v++) {
		uint64_t off = HARNESS_HANDLERS + 16 * v;
		uint64_t gate[2] = {(off & 0xffff) | (uint64_t)cs << 16 | 0x8eULL << 40 |
					((off >> 16) & 0xffff) << 48,
				    off >> 32};
		guest_mem_write(&h->mem, HARNESS_IDT_ADDR + 16 * v, gate, sizeof(gate));
	}
	h->state.idt.base = HARNESS_IDT_ADDR;
	h->state.idt.limit = 32 * 16 - 1;
}

/* Places code at HARNESS_CODE_ADDR, starts there and single-steps n
 * instructions, each of which must complete (no halt or shutdown). Only for
 * cmocka test files (uses assert_int_equal). */
#define harness_run_code(h, code, len, n)                                           \
	do {                                                                        \
		(h)->state.rip = HARNESS_CODE_ADDR;                                 \
		harness_sync(h);                                                    \
		harness_load((h), (code), (len));                                   \
		assert_int_equal(harness_step((h), (n)), VCPU_EXIT_DEBUG);          \
	} while (0)

/* The CPU took exception `vector` through harness_install_idt64's gates. */
#define harness_assert_fault(h, vector)                                             \
	assert_int_equal((h)->state.rip, HARNESS_HANDLERS + 16 * (vector))

static inline void harness_free(struct harness *h)
{
	soft_engine_ops.vcpu_destroy(h->vcpu);
	soft_engine_ops.destroy(h->engine);
	guest_mem_destroy(&h->mem);
	free(h);
}

#endif
