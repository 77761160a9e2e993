/* ELF executables for x86 (System V gABI, "ELF Header", "Program Header",
 * "Note Section"; ELFCLASS32 with EM_386 and ELFCLASS64 with EM_X86_64,
 * ELFDATA2LSB only) and their PVH entry: Xen
 * include/public/elfnote.h (XEN_ELFNOTE_PHYS32_ENTRY = 18) and
 * include/public/arch-x86/hvm/start_info.h (struct hvm_start_info version 1,
 * hvm_modlist_entry, hvm_memmap_table_entry), docs/misc/pvh.pandoc.
 *
 * Invariants: elf_parse reads only inside the buffer; every program header
 * it reports has offset+filesz inside the file, filesz <= memsz and
 * paddr+memsz without overflow. Segments are loaded at p_paddr and only
 * into e820 RAM at or above 1 MiB; overlapping segments are allowed and
 * loaded in file order. */
#ifndef SHRIKE_BOOT_ELF_H
#define SHRIKE_BOOT_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/boot.h"

#define ELF_MAX_PHDRS 256 /* bounds the program header walk */
#define ELF_MAX_LOADS 32

#define ELF_PT_LOAD 1
#define ELF_PT_NOTE 4
#define ELF_EM_386 3
#define ELF_EM_X86_64 62
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* hvm_start_info and friends, as byte offsets (start_info.h). */
#define HVM_START_MAGIC 0x336ec578U
#define HVM_START_VERSION 1
#define HVM_SI_SIZE 56
#define HVM_SI_MAGIC 0
#define HVM_SI_VERSION 4
#define HVM_SI_FLAGS 8
#define HVM_SI_NR_MODULES 12
#define HVM_SI_MODLIST 16
#define HVM_SI_CMDLINE 24
#define HVM_SI_RSDP 32
#define HVM_SI_MEMMAP 40
#define HVM_SI_MEMMAP_ENTRIES 48
#define HVM_MOD_SIZE 32     /* paddr, size, cmdline_paddr, reserved */
#define HVM_MEMMAP_SIZE 24  /* addr, size, type, reserved */

/* Where the PVH structures go inside LAYOUT_BOOTINFO_ADDR's area. */
#define PVH_START_INFO_OFF 0x0
#define PVH_MODLIST_OFF 0x40
#define PVH_MEMMAP_OFF 0x80

struct elf_segment {
	uint64_t offset;
	uint64_t vaddr;
	uint64_t paddr;
	uint64_t filesz;
	uint64_t memsz;
};

struct elf_info {
	unsigned elfclass; /* 32 or 64 */
	uint64_t entry;
	unsigned nload;    /* PT_LOAD segments with memsz > 0 */
	struct elf_segment load[ELF_MAX_LOADS];
	uint64_t image_end; /* highest paddr+memsz over the loaded segments */
	bool has_pvh;
	uint64_t pvh_entry;
};

/* Whether data starts with the ELF magic (a cheap test for boot_detect). */
bool elf_is_elf(const uint8_t *data, size_t size);

/* Pure parser: header, program headers and the Xen PVH note. */
int elf_parse(const uint8_t *data, size_t size, struct elf_info *info, struct errmsg *err);

/* Copies the PT_LOAD segments of a parsed image into guest memory, zeroing
 * memsz - filesz; refuses a segment outside e820 RAM above 1 MiB. */
int elf_load_segments(const struct guest_mem *mem, const struct e820_map *map,
		      const uint8_t *data, const struct elf_info *info, struct errmsg *err);

/* PVH boot: segments, command line, initrds as module 0, hvm_start_info at
 * LAYOUT_BOOTINFO_ADDR, 32-bit entry with EBX = start_info. Messages start
 * with "ELF: " or "PVH: ". */
int elf_pvh_load(const struct guest_mem *mem, const struct boot_input *in,
		 struct cpu_state *entry, struct errmsg *err);

#endif
