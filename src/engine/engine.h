/* The execution-engine interface (design.md, "Engines").
 *
 * An engine owns vCPU state and execution and nothing else: memory, buses,
 * devices, loaders and platform tables are shared and never know which
 * engine runs. Both engines report exits in the same vocabulary, so the
 * vCPU loop (vm/vcpu.c) and the statistics are engine-independent.
 *
 * Threading: run() is called only from the vCPU's own thread; kick() may be
 * called from any thread and makes a current or the next run() return
 * VCPU_EXIT_INTR promptly. irq_line()/msi() may be called from any thread. */
#ifndef SHRIKE_ENGINE_ENGINE_H
#define SHRIKE_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/cpu_state.h"
#include "util/errmsg.h"
#include "vm/memory.h"

enum vcpu_exit_kind {
	VCPU_EXIT_IO,        /* port I/O: io */
	VCPU_EXIT_MMIO,      /* access to guest-physical memory that is not RAM: mmio */
	VCPU_EXIT_HLT,       /* HLT with no interrupt pending (engines without an in-kernel LAPIC) */
	VCPU_EXIT_SHUTDOWN,  /* triple fault */
	VCPU_EXIT_RESET,     /* engine-reported reset request */
	VCPU_EXIT_POWEROFF,  /* engine-reported poweroff request */
	VCPU_EXIT_INTR,      /* run() was interrupted by kick() or a signal */
	VCPU_EXIT_DEBUG,     /* single-step or breakpoint */
	VCPU_EXIT_HYPERCALL,
	VCPU_EXIT_INTERNAL_ERROR, /* the engine could not emulate/enter: detail.code */
	VCPU_EXIT_FAIL_ENTRY,     /* hardware refused the VM entry: detail.code */
	VCPU_EXIT_UNKNOWN,        /* an exit reason shrike does not handle: detail.code */
	VCPU_EXIT_KIND_COUNT
};

struct vcpu_exit {
	enum vcpu_exit_kind kind;
	struct {
		uint16_t port;
		uint8_t size;     /* 1, 2 or 4 */
		bool is_write;
		uint32_t count;   /* > 1 for REP INS/OUTS: count elements of size bytes */
		uint8_t *data;    /* engine buffer of count*size bytes; IN results go here */
	} io;
	struct {
		uint64_t addr;
		uint8_t size;     /* 1..8 */
		bool is_write;
		uint8_t *data;    /* engine buffer; read results go here */
	} mmio;
	struct {
		uint64_t code;    /* engine-specific reason (KVM suberror, entry failure reason) */
	} detail;
};

const char *vcpu_exit_kind_name(enum vcpu_exit_kind kind);

/* Counters only a software engine can keep. */
/* The soft engine's translator (engine/soft/jit): what it made and how
 * execution moved between its blocks. */
#define ENGINE_JIT_TOP 8
struct engine_jit_stats {
	bool enabled;
	uint64_t blocks;        /* translations made */
	uint64_t code_bytes;    /* host code emitted, in all */
	uint64_t cache_used, cache_size, flushes;
	uint64_t invalidated;   /* translations found stale (their code page was written) */
	uint64_t dispatches;    /* returns to the dispatcher */
	uint64_t table_hits;    /* dispatches that found a translation in the table */
	uint64_t chained;       /* jumps patched to lead from block to block */
	uint64_t fallbacks;     /* instructions run through interpreter handlers */
	/* The instructions that fell back most often: (map << 8) | opcode. */
	struct {
		uint16_t op;
		uint64_t count;
	} top[ENGINE_JIT_TOP];
};

struct engine_vcpu_stats {
	uint64_t instructions;     /* retired */
	uint64_t unimplemented_ud; /* #UD raised for an opcode the engine does not implement */
	uint64_t dcache_hits, dcache_misses;
	struct engine_jit_stats jit;
};

struct engine;      /* one per VM */
struct engine_vcpu; /* one per vCPU */

/* Engines without hardware exits (the soft engine) hand each sensitive
 * operation to this handler synchronously, as a made-up exit, so that it
 * takes exactly the path and statistics of a KVM exit. */
typedef void (*engine_exit_fn)(void *opaque, unsigned vcpu_index, struct vcpu_exit *exit);

struct engine_config {
	const struct guest_mem *mem;
	unsigned ncpus;
	bool soft_interpret;     /* soft engine: no translator */
	uint64_t soft_jit_cache; /* soft engine: code cache bytes, 0 = default */
	engine_exit_fn exit_handler;
	void *exit_opaque;
};

struct engine_ops {
	const char *name;
	/* Cheap check whether this engine can run here; on false, why. */
	bool (*available)(struct errmsg *why);
	int (*create)(struct engine **out, const struct engine_config *cfg, struct errmsg *err);
	void (*destroy)(struct engine *engine);

	int (*vcpu_create)(struct engine *engine, unsigned index, struct engine_vcpu **out,
			   struct errmsg *err);
	void (*vcpu_destroy)(struct engine_vcpu *vcpu);
	int (*get_state)(struct engine_vcpu *vcpu, struct cpu_state *state);
	int (*set_state)(struct engine_vcpu *vcpu, const struct cpu_state *state);
	/* Runs until the next exit, filling *exit. Returns 0 or -errno for a
	 * failure of the engine itself (not of the guest). */
	int (*run)(struct engine_vcpu *vcpu, struct vcpu_exit *exit);
	void (*kick)(struct engine_vcpu *vcpu);
	int (*set_single_step)(struct engine_vcpu *vcpu, bool enable);

	/* Optional (NULL for KVM). */
	void (*vcpu_stats)(struct engine_vcpu *vcpu, struct engine_vcpu_stats *out);

	int (*irq_line)(struct engine *engine, uint32_t gsi, int level);
	int (*msi)(struct engine *engine, uint64_t addr, uint32_t data);
	/* Optional: makes a write of len bytes at MMIO addr signal eventfd fd
	 * without an exit (assign false removes it). NULL: such writes exit. */
	int (*ioeventfd)(struct engine *engine, uint64_t addr, unsigned len, int fd, bool assign);
};

extern const struct engine_ops kvm_engine_ops;
extern const struct engine_ops soft_engine_ops;

bool engine_host_has_hw_virt(const char *cpuinfo_path);

/* "kvm", "soft" or "auto" → ops; NULL (with a message) if unknown or unusable.
 * auto picks kvm only where /dev/kvm works and the host has VT-x/AMD-V. */
const struct engine_ops *engine_select(const char *name, struct errmsg *err);

#endif
