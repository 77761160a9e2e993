#include "engine/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

const char *vcpu_exit_kind_name(enum vcpu_exit_kind kind)
{
	static const char *const names[VCPU_EXIT_KIND_COUNT] = {
	    [VCPU_EXIT_IO] = "io",
	    [VCPU_EXIT_MMIO] = "mmio",
	    [VCPU_EXIT_HLT] = "hlt",
	    [VCPU_EXIT_SHUTDOWN] = "shutdown",
	    [VCPU_EXIT_RESET] = "reset",
	    [VCPU_EXIT_POWEROFF] = "poweroff",
	    [VCPU_EXIT_INTR] = "interrupted",
	    [VCPU_EXIT_DEBUG] = "debug",
	    [VCPU_EXIT_HYPERCALL] = "hypercall",
	    [VCPU_EXIT_INTERNAL_ERROR] = "internal-error",
	    [VCPU_EXIT_FAIL_ENTRY] = "fail-entry",
	    [VCPU_EXIT_UNKNOWN] = "unknown",
	};
	return (unsigned)kind < VCPU_EXIT_KIND_COUNT ? names[kind] : "?";
}

/* Whether the host processor offers hardware virtualization (VT-x or
 * AMD-V). KVM without it (such as the PVM backend, which emulates guest
 * kernel code instruction by instruction) runs guest kernels far slower
 * than the soft engine does. */
bool engine_host_has_hw_virt(const char *cpuinfo_path)
{
	FILE *f = fopen(cpuinfo_path, "r");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		found = strstr(line, " vmx") || strstr(line, " svm");
		break;
	}
	fclose(f);
	return found;
}

static const struct engine_ops *engine_auto(struct errmsg *err)
{
	struct errmsg why = {{0}};

	if (!kvm_engine_ops.available(&why)) {
		log_info("engine auto: soft, because %s", why.text);
		return &soft_engine_ops;
	}
	if (!engine_host_has_hw_virt("/proc/cpuinfo")) {
		log_info("engine auto: soft, because /dev/kvm works but the host CPU has no VT-x/AMD-V "
			 "(KVM would emulate guest kernel code)");
		return &soft_engine_ops;
	}
	(void)err;
	log_info("engine auto: kvm, hardware-assisted (VT-x/AMD-V)");
	return &kvm_engine_ops;
}

const struct engine_ops *engine_select(const char *name, struct errmsg *err)
{
	struct errmsg why = {{0}};

	if (strcmp(name, "auto") == 0)
		return engine_auto(err);
	if (strcmp(name, "kvm") == 0) {
		if (!kvm_engine_ops.available(&why)) {
			errmsg_set(err, ENODEV, "engine kvm is not available: %s", why.text);
			return NULL;
		}
		return &kvm_engine_ops;
	}
	if (strcmp(name, "soft") == 0)
		return &soft_engine_ops;
	errmsg_set(err, EINVAL, "unknown engine '%s' (expected kvm, soft or auto)", name);
	return NULL;
}
