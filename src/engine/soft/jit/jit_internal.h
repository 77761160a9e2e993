/* Shared by the translator's dispatcher (jit.c) and code generator
 * (translate.c). Not for use outside src/engine/soft/jit/. */
#ifndef SHRIKE_ENGINE_SOFT_JIT_INTERNAL_H
#define SHRIKE_ENGINE_SOFT_JIT_INTERNAL_H

#include <stdio.h>

#include "engine/soft/jit/code_cache.h"
#include "engine/soft/jit/emit.h"
#include "engine/soft/jit/jit.h"
#include "engine/soft/soft.h"

#define JIT_HASH_BITS 15
#define JIT_HASH_SIZE (1u << JIT_HASH_BITS)
#define JIT_MAX_TBS (1u << 17)
#define JIT_MAX_INSNS SOFT_JIT_MIN_BUDGET /* guest instructions per translation */
#define JIT_MAX_CODE (32u << 10) /* host bytes per translation, at most */
#define JIT_INSN_ARENA (1u << 17) /* decoded instructions kept for handler calls */
#define JIT_OPS (OPMAP_COUNT * 256)

#define JIT_JC_BITS 12
#define JIT_JC_SIZE (1u << JIT_JC_BITS)

/* An instruction run through its interpreter handler from translated
 * code (jit_run_handler), with what the handler expects to find set. */
struct jit_call {
	struct insn insn;
	uint64_t rip, fall;  /* the instruction's RIP and the one after it */
	uint64_t page;       /* guest-physical page of its block */
	uint64_t *count;     /* statistics: runs of this opcode's handler */
};

/* Jump cache entry: linear RIP (tagged with the CPL, jit.c: jc_tag) →
 * translation, for the indirect branches and the jumps to other pages
 * that translated code resolves without the dispatcher. */
struct jit_jc {
	uint64_t tag;
	uint64_t gen;   /* cpu->map_gen when filled: a TLB flush retires it */
	uintptr_t code;
};

/* Host CPU features the translator copies guest instructions onto. */
enum {
	HOST_SSSE3 = 1 << 0, HOST_SSE41 = 1 << 1, HOST_SSE42 = 1 << 2, HOST_POPCNT = 1 << 3,
	HOST_LZCNT = 1 << 4, HOST_BMI1 = 1 << 5,
};
unsigned jit_host_features(void);

/* One translation: guest code at a guest-physical address in one mode. */
struct jit_tb {
	uint64_t key;        /* gpa | mode bits (jit.c: tb_key) */
	uint64_t rip;        /* linear RIP it was translated at */
	const uint32_t *stamp_ptr;
	uint32_t stamp;      /* the code page's stamp when translated */
	uint32_t ninsns;
	uint32_t code_size;  /* bytes of host code */
	uintptr_t code;      /* entry, an execute address in the cache */
	struct jit_tb *next; /* hash chain */
};

struct soft_jit {
	struct jit_cache cache;
	uintptr_t enter;     /* uint64_t enter(struct soft_cpu *, uintptr_t code) */
	uintptr_t epilogue;  /* where blocks jump to return to the dispatcher */
	uintptr_t jc_exit[2][2]; /* [user][after a handler]: leave through the jump cache */
	uintptr_t rt_flags_load; /* memory → host flags (translate.c) */
	struct jit_tb *hash[JIT_HASH_SIZE];
	struct jit_tb *tbs;  /* [JIT_MAX_TBS] */
	unsigned ntbs;
	struct jit_call *insns; /* [JIT_INSN_ARENA], handler calls */
	unsigned ninsns;
	/* Entries hold while cpu->map_gen (what linear addresses map to) is
	 * the one they were filled under. */
	struct jit_jc jc[JIT_JC_SIZE];
	uint64_t fallback_count[JIT_OPS]; /* incremented by generated code */
	FILE *perf_map; /* SHRIKE_PERF_MAP: /tmp/perf-PID.map, for perf to name translations */
	unsigned host;  /* HOST_*: what the host CPU can run of what the guest's code may copy */
	struct engine_jit_stats st;
};

/* Translates the block at cpu->s.rip (host code at `code`, gpa `gpa`)
 * into tb. 0, -ENOSPC when the cache or an arena is full (flush and
 * retry), -EINVAL when not even the first instruction can be translated. */
int jit_translate(struct soft_jit *j, struct soft_cpu *cpu, struct jit_tb *tb, const uint8_t *code,
		  uint64_t gpa);

/* What a translation returns to the dispatcher besides a jump to patch:
 * 0, or this when its code page changed (the jump cache must not be
 * trusted for its RIP). */
#define JIT_EXIT_STALE 1

/* 0: the instruction fell through; 1: it branched (cpu->s.rip is where
 * to); 2: it asks for the run loop (mode, paging, halt, its own code). */
uint32_t jit_run_handler(struct soft_cpu *cpu, struct jit_call *c);

/* SSE instructions raise no #UD/#NM now (fpu_check_sse's conditions). */
static inline bool jit_sse_usable(const struct soft_cpu *cpu)
{
	return !(cpu->s.cr0 & (CR0_EM | CR0_TS)) && (cpu->s.cr4 & CR4_OSFXSR);
}

static inline uint64_t jit_jc_tag(uint64_t rip, bool user) { return rip ^ ((uint64_t)user << 63); }
static inline unsigned jit_jc_index(uint64_t rip)
{
	return (unsigned)((rip ^ (rip >> JIT_JC_BITS)) & (JIT_JC_SIZE - 1));
}

/* Emits the entry trampoline and the common epilogue at the start of an
 * empty cache. 0 or -errno. */
int jit_emit_runtime(struct soft_jit *j);

#endif
