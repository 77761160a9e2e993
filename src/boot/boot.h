/* Kernel loading: detect the image format, hand it to its loader, and get
 * back the vCPU state to enter it with. Each format lives in its own file
 * with a pure parser (buffer in, description out, never trusting the
 * buffer) and a loader that copies into guest memory:
 *   bzimage.c   Linux x86 boot protocol 2.06+ (Documentation/arch/x86/boot.rst),
 *               entered at the 64-bit entry point
 *   elf.c       ELF vmlinux entered through its Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY)
 *   multiboot.c Multiboot 0.6.96 (version 1): ELF or a.out-kludge
 */
#ifndef SHRIKE_BOOT_BOOT_H
#define SHRIKE_BOOT_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/cpu_state.h"
#include "arch/x86/e820.h"
#include "util/errmsg.h"
#include "vm/memory.h"

#define BOOT_MAX_INITRDS 8

enum boot_format { BOOT_FORMAT_UNKNOWN, BOOT_FORMAT_BZIMAGE, BOOT_FORMAT_PVH, BOOT_FORMAT_MULTIBOOT };

/* A file read into host memory. */
struct boot_blob {
	const char *name; /* path, for messages and multiboot module strings */
	uint8_t *data;
	size_t size;
};

struct boot_input {
	struct boot_blob kernel;
	struct boot_blob initrd[BOOT_MAX_INITRDS]; /* multiboot: modules */
	unsigned ninitrd;
	const char *cmdline;
	const struct e820_map *e820;
	uint64_t rsdp_addr; /* guest-physical address of the ACPI RSDP */
};

/* Which loader an image belongs to, from its magic numbers only. */
enum boot_format boot_detect(const uint8_t *data, size_t size);
const char *boot_format_name(enum boot_format format);

/* Loads kernel, initrds and command line into guest memory and fills the
 * entry state. On failure returns -errno and explains in err. */
int boot_load(const struct guest_mem *mem, const struct boot_input *in,
	      struct cpu_state *entry, struct errmsg *err);

/* Reads a whole regular file (at most max bytes); -errno with a message on
 * failure ("cannot open F: ...", "F is empty", "F is larger than N bytes").
 * blob->name points at path, which the caller keeps alive. */
int boot_blob_read(struct boot_blob *blob, const char *path, size_t max, struct errmsg *err);
void boot_blob_free(struct boot_blob *blob);

#endif
