/* Guest CPUID: the host-supported table completed for one vCPU
 * (Intel SDM vol. 2A, CPUID; Linux Documentation/virt/kvm/x86/cpuid.rst for
 * the 0x4000_00xx paravirtual leaves). Engine-independent: the KVM engine
 * fills the table from KVM_GET_SUPPORTED_CPUID, the soft engine from what it
 * implements, and both call cpuid_complete(). */
#ifndef SHRIKE_ARCH_X86_CPUID_H
#define SHRIKE_ARCH_X86_CPUID_H

#include <stdbool.h>
#include <stdint.h>

#define CPUID_MAX_ENTRIES 256

struct cpuid_entry {
	uint32_t function;
	uint32_t index;
	bool indexed; /* the leaf has subleaves (index significant) */
	uint32_t eax, ebx, ecx, edx;
};

struct cpuid_table {
	unsigned count;
	struct cpuid_entry entry[CPUID_MAX_ENTRIES];
};

struct cpuid_entry *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index);

/* Adapts the table to vCPU `index` of `ncpus`: APIC IDs and topology
 * (leaves 1, 4, 0xB, 0x1F, 0x8000_0008), the hypervisor-present bit, the
 * KVM signature leaf, and removes what a guest must not see (monitor/mwait,
 * which KVM does not virtualize for it). */
void cpuid_complete(struct cpuid_table *t, unsigned index, unsigned ncpus);

#endif
