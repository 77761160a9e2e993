/* Private to the KVM engine: the only code in shrike that includes
 * <linux/kvm.h> or issues KVM ioctls (Documentation/virt/kvm/api.rst). */
#ifndef SHRIKE_ENGINE_KVM_INTERNAL_H
#define SHRIKE_ENGINE_KVM_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>

#include "arch/x86/cpu_state.h"
#include "engine/engine.h"

struct engine {
	int sys_fd; /* /dev/kvm */
	int vm_fd;
	int run_size;
	unsigned ncpus;
	const struct guest_mem *mem;
};

struct engine_vcpu {
	struct engine *engine;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;       /* set by the first run(), target of kick() */
	atomic_bool has_thread;
};

void kvm_state_to_kvm(const struct cpu_state *s, struct kvm_regs *regs, struct kvm_sregs *sregs);
void kvm_state_from_kvm(struct cpu_state *s, const struct kvm_regs *regs,
			const struct kvm_sregs *sregs);
int kvm_setup_cpuid(struct engine_vcpu *vcpu, struct errmsg *err);
int kvm_setup_lapic(struct engine_vcpu *vcpu);

#endif
