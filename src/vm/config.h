/* What the user asked for, after command-line parsing and validation.
 * Plain data: strings point into argv or static storage. */
#ifndef SHRIKE_VM_CONFIG_H
#define SHRIKE_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "boot/boot.h"

#define VM_MAX_VCPUS 255 /* xAPIC IDs in the MADT */
#define VM_DEFAULT_MEMORY (256ULL << 20)

struct vm_config {
	const char *kernel;
	const char *initrd[BOOT_MAX_INITRDS];
	unsigned ninitrd;
	char *cmdline;       /* owned (built by the CLI) */
	uint64_t memory;
	unsigned ncpus;
	const char *engine;  /* "kvm", "soft" or "auto" */
	bool stats;
};

#endif
