#include "engine/engine.h"

#include <errno.h>
#include <string.h>

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

const struct engine_ops *engine_select(const char *name, struct errmsg *err)
{
	struct errmsg why = {{0}};

	if (strcmp(name, "kvm") == 0 || strcmp(name, "auto") == 0) {
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
