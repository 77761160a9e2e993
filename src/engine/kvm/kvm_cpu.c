/* Per-vCPU platform setup under KVM: the CPUID table (from
 * KVM_GET_SUPPORTED_CPUID, completed by arch/x86/cpuid.c) and the local
 * APIC's LINT pins (virtual-wire mode: LINT0 = ExtINT from the PIC,
 * LINT1 = NMI, as a PC's firmware leaves them). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/cpuid.h"
#include "engine/kvm/kvm_internal.h"

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

static struct kvm_cpuid2 *kvm_alloc_cpuid(unsigned n)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
	if (c)
		c->nent = n;
	return c;
}

static void cpuid_from_kvm(struct cpuid_table *t, const struct kvm_cpuid2 *c)
{
	t->count = 0;
	for (unsigned i = 0; i < c->nent && t->count < CPUID_MAX_ENTRIES; i++) {
		const struct kvm_cpuid_entry2 *k = &c->entries[i];
		t->entry[t->count++] = (struct cpuid_entry){
		    .function = k->function,
		    .index = k->index,
		    .indexed = (k->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0,
		    .eax = k->eax, .ebx = k->ebx, .ecx = k->ecx, .edx = k->edx,
		};
	}
}

static void cpuid_to_kvm(struct kvm_cpuid2 *c, const struct cpuid_table *t)
{
	c->nent = t->count;
	for (unsigned i = 0; i < t->count; i++) {
		const struct cpuid_entry *e = &t->entry[i];
		c->entries[i] = (struct kvm_cpuid_entry2){
		    .function = e->function,
		    .index = e->index,
		    .flags = e->indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
		    .eax = e->eax, .ebx = e->ebx, .ecx = e->ecx, .edx = e->edx,
		};
	}
}

int kvm_setup_cpuid(struct engine_vcpu *v, struct errmsg *err)
{
	struct kvm_cpuid2 *c = kvm_alloc_cpuid(CPUID_MAX_ENTRIES);
	struct cpuid_table *t = calloc(1, sizeof(*t));
	int r = 0;

	if (!c || !t) {
		r = errmsg_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (ioctl(v->engine->sys_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		r = errmsg_set(err, errno, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out;
	}
	cpuid_from_kvm(t, c);
	cpuid_complete(t, v->index, v->engine->ncpus);
	cpuid_to_kvm(c, t);
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		r = errmsg_set(err, errno, "KVM_SET_CPUID2: %s", strerror(errno));
out:
	free(c);
	free(t);
	return r;
}

static void lapic_set_lvt_mode(struct kvm_lapic_state *l, unsigned reg, uint32_t mode)
{
	uint32_t v;
	memcpy(&v, &l->regs[reg], sizeof(v));
	v = (v & ~0x700u & ~(1u << 16)) | (mode << 8); /* delivery mode, unmasked */
	memcpy(&l->regs[reg], &v, sizeof(v));
}

int kvm_setup_lapic(struct engine_vcpu *v)
{
	struct kvm_lapic_state lapic;

	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	lapic_set_lvt_mode(&lapic, APIC_LVT_LINT0, APIC_MODE_EXTINT);
	lapic_set_lvt_mode(&lapic, APIC_LVT_LINT1, APIC_MODE_NMI);
	return ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}
