/* The soft engine's binary translator: guest code compiled at run time to
 * x86-64 host code (see translate.c for what is emitted, jit.c for the
 * dispatcher, the block table and chaining).
 *
 * Scope: 64-bit code (long mode, CS.L = 1), where Linux spends its time.
 * Other modes, an instruction shadow (STI, MOV SS) and single-stepping run
 * on the interpreter, which stays the reference: every instruction the
 * translator does not emit itself runs as a call to its interpreter
 * handler from inside the translated block.
 *
 * Threads: one translator per vCPU, used only by that vCPU's thread. Code
 * pages are tracked in guest memory (vm/memory.h, code stamps), shared by
 * all vCPUs and devices: a write by anyone invalidates every vCPU's
 * translations of that page, checked on block entry. */
#ifndef SHRIKE_ENGINE_SOFT_JIT_H
#define SHRIKE_ENGINE_SOFT_JIT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct soft_cpu;
struct soft_jit;

#define SOFT_JIT_DEFAULT_CACHE (32u << 20)
/* A translation holds at most this many instructions; its entry refuses
 * to run on a smaller budget. */
#define SOFT_JIT_MIN_BUDGET 64

/* cache_bytes: the host-code cache (bounded; flushed when full). */
struct soft_jit *soft_jit_new(size_t cache_bytes);
void soft_jit_free(struct soft_jit *j);

/* Runs translated code from cpu->s.rip (64-bit mode) until about *budget
 * instructions have run, a block asks for the run loop (an interrupt may
 * be pending, a halt, a mode change, code that cannot be translated), or a
 * fault longjmps out (cpu->jb). Returns false when nothing could be
 * translated at RIP, so the caller interprets one instruction. */
bool soft_jit_run(struct soft_cpu *cpu, struct soft_jit *j, const _Atomic bool *irq_hint,
		  int *budget);

void soft_jit_stats(const struct soft_jit *j, struct engine_jit_stats *out);

#endif
