/* Instruction group "system" (being written). */
#include "engine/soft/soft.h"

const struct opdef soft_ops_system[] = {
    OPDEF_END,
};

void soft_cpuid_init(struct soft_cpu *cpu, unsigned ncpus)
{
	(void)ncpus;
	cpu->cpuid.count = 0;
}

uint64_t soft_rdmsr(struct soft_cpu *cpu, uint32_t msr, bool *ok)
{
	(void)cpu;
	(void)msr;
	*ok = false;
	return 0;
}

bool soft_wrmsr(struct soft_cpu *cpu, uint32_t msr, uint64_t v)
{
	(void)cpu;
	(void)msr;
	(void)v;
	return false;
}
