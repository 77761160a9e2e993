/* Helpers shared by the control-flow/stack group (ops_ctrl.c) and the
 * string group (ops_string.c) of the soft CPU.
 *
 * Specification: Intel SDM vol. 3 §6.5 (faults are restartable, so an
 * instruction that faults must leave no architectural trace) and §3.4
 * (segment checks), §4.6 (page access rights).
 *
 * Invariant: a probe performs every check that the later write of the same
 * bytes will perform (segment limit and type, paging rights, A/D bits), so
 * that an instruction can validate all of its memory writes before it
 * makes the first one. */
#ifndef SHRIKE_ENGINE_SOFT_CTRL_H
#define SHRIKE_ENGINE_SOFT_CTRL_H

#include "engine/soft/soft.h"

/* Raises the fault that writing `size` bytes at seg:off would raise, and
 * otherwise has no effect beyond filling the TLB. Returns the linear
 * address. */
static inline uint64_t soft_probe_write(struct soft_cpu *cpu, unsigned seg, uint64_t off,
					unsigned size)
{
	uint64_t la = seg_linear(cpu, seg, off, size, ACC_WRITE);
	mmu_translate(cpu, la, ACC_WRITE, false);
	if (size > 1 && ((la ^ (la + size - 1)) & ~0xfffULL))
		mmu_translate(cpu, la + size - 1, ACC_WRITE, false);
	return la;
}

#endif
