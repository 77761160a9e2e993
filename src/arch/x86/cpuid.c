#include "arch/x86/cpuid.h"

#include <string.h>

#define CPUID_1_ECX_MONITOR (1u << 3)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
#define CPUID_KVM_SIGNATURE 0x40000000u

struct cpuid_entry *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index)
{
	for (unsigned i = 0; i < t->count; i++) {
		struct cpuid_entry *e = &t->entry[i];
		if (e->function == function && (!e->indexed || e->index == index))
			return e;
	}
	return NULL;
}

/* Number of bits needed to hold an ID below n. */
static unsigned id_bits(unsigned n)
{
	unsigned bits = 0;
	while ((1u << bits) < n)
		bits++;
	return bits;
}

static void complete_leaf1(struct cpuid_table *t, unsigned index, unsigned ncpus)
{
	struct cpuid_entry *e = cpuid_find(t, 1, 0);
	if (!e)
		return;
	e->ebx = (e->ebx & 0x0000ffffu) | ((index & 0xffu) << 24) | ((ncpus & 0xffu) << 16);
	e->ecx |= CPUID_1_ECX_HYPERVISOR;
	e->ecx &= ~CPUID_1_ECX_MONITOR;
	if (ncpus > 1)
		e->edx |= CPUID_1_EDX_HTT;
}

/* Every vCPU is presented as one core of a single package: one thread per
 * core, ncpus cores. */
static void complete_cache_leaf4(struct cpuid_table *t, unsigned ncpus)
{
	for (unsigned i = 0; i < t->count; i++) {
		struct cpuid_entry *e = &t->entry[i];
		if (e->function != 4 || (e->eax & 0x1f) == 0)
			continue;
		uint32_t cores = (1u << id_bits(ncpus)) - 1;
		e->eax = (e->eax & 0x03ffc3ffu) | (cores << 26);
		/* Threads sharing this cache: the whole package for L3, one core otherwise. */
		uint32_t level = (e->eax >> 5) & 7;
		uint32_t sharing = level >= 3 ? (1u << id_bits(ncpus)) - 1 : 0;
		e->eax = (e->eax & ~(0xfffu << 14)) | (sharing << 14);
	}
}

static void complete_topology_leaf(struct cpuid_table *t, uint32_t function, unsigned index,
				   unsigned ncpus)
{
	for (unsigned i = 0; i < t->count; i++) {
		struct cpuid_entry *e = &t->entry[i];
		if (e->function != function)
			continue;
		e->edx = index;
		if (e->index == 0) { /* SMT level: one thread per core */
			e->eax = 0;
			e->ebx = 1;
			e->ecx = (1u << 8) | e->index;
		} else if (e->index == 1) { /* core level */
			e->eax = id_bits(ncpus);
			e->ebx = ncpus;
			e->ecx = (2u << 8) | e->index;
		} else {
			e->eax = e->ebx = 0;
			e->ecx = e->index;
		}
	}
}

static void complete_kvm_signature(struct cpuid_table *t)
{
	struct cpuid_entry *e = cpuid_find(t, CPUID_KVM_SIGNATURE, 0);
	if (!e)
		return;
	/* "KVMKVMKVM\0\0\0" in EBX, ECX, EDX. */
	memcpy(&e->ebx, "KVMK", 4);
	memcpy(&e->ecx, "VMKV", 4);
	memcpy(&e->edx, "M\0\0\0", 4);
	if (e->eax < CPUID_KVM_SIGNATURE + 1)
		e->eax = CPUID_KVM_SIGNATURE + 1;
}

static void complete_ext_core_count(struct cpuid_table *t, unsigned ncpus)
{
	struct cpuid_entry *e = cpuid_find(t, 0x80000008u, 0);
	if (!e)
		return;
	/* AMD: NC = cores - 1, ApicIdCoreIdSize. Harmless on Intel (reserved). */
	e->ecx = (e->ecx & ~0xf0ffu) | ((ncpus - 1) & 0xff) | (id_bits(ncpus) << 12);
}

void cpuid_complete(struct cpuid_table *t, unsigned index, unsigned ncpus)
{
	if (ncpus == 0)
		ncpus = 1;
	complete_leaf1(t, index, ncpus);
	complete_cache_leaf4(t, ncpus);
	complete_topology_leaf(t, 0xb, index, ncpus);
	complete_topology_leaf(t, 0x1f, index, ncpus);
	complete_kvm_signature(t);
	complete_ext_core_count(t, ncpus);
}
