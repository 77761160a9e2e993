/* What the user asked for, after command-line parsing and validation.
 * Plain data: strings point into argv or static storage. */
#ifndef SHRIKE_VM_CONFIG_H
#define SHRIKE_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "boot/boot.h"
#include "virtio/net.h"

#define VM_MAX_VCPUS 255 /* xAPIC IDs in the MADT */
#define VM_DEFAULT_MEMORY (256ULL << 20)
#define VM_MAX_DISKS 8
#define VM_MAX_NETS 4

struct vm_disk_config {
	const char *path;
	bool readonly;
};


enum vm_console_kind { VM_CONSOLE_SERIAL, VM_CONSOLE_VIRTIO };

struct vm_config {
	const char *kernel;
	const char *initrd[BOOT_MAX_INITRDS];
	unsigned ninitrd;
	char *cmdline;       /* owned (built by the CLI) */
	uint64_t memory;
	unsigned ncpus;
	const char *engine;  /* "kvm", "soft" or "auto" */
	bool soft_interpret; /* --soft-jit off: the soft engine interprets only */
	uint64_t soft_jit_cache; /* bytes of translated code (0: the default) */
	bool stats;
	struct vm_disk_config disk[VM_MAX_DISKS];
	unsigned ndisks;
	struct net_opts net[VM_MAX_NETS]; /* an all-zero MAC: derived from the index */
	unsigned nnets;
	enum vm_console_kind console;
	bool no_rng;
};

#endif
