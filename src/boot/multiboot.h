/* Multiboot Specification 0.6.96 (version 1): §3.1 "OS image format"
 * (header search, magic fields, address fields for the a.out kludge),
 * §3.2 "Machine state" (EAX = 0x2BADB002, EBX = info, flat 32-bit
 * protected mode, paging off), §3.3 "Boot information format" (the
 * multiboot_info structure, modules, memory map with its size field).
 *
 * Invariants: the header lies wholly inside the first 8192 bytes of the
 * file, 4-byte aligned, with a valid checksum; every a.out-kludge address
 * relation is checked against the file before anything is copied; the
 * image, its bss and the modules are placed only in e820 RAM at or above
 * 1 MiB, modules page-aligned above the image. */
#ifndef SHRIKE_BOOT_MULTIBOOT_H
#define SHRIKE_BOOT_MULTIBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/boot.h"
#include "boot/elf.h"

#define MB_HEADER_MAGIC 0x1badb002U
#define MB_BOOT_MAGIC 0x2badb002U
#define MB_SEARCH_LIMIT 8192
#define MB_FLAG_PAGE_ALIGN 0x1U
#define MB_FLAG_MEMORY_INFO 0x2U
#define MB_FLAG_VIDEO_MODE 0x4U
#define MB_FLAG_AOUT_KLUDGE 0x10000U
#define MB_REQUIRED_MASK 0xffffU

/* multiboot_info flags and offsets (§3.3). */
#define MBI_FLAG_MEM 0x1U
#define MBI_FLAG_CMDLINE 0x4U
#define MBI_FLAG_MODS 0x8U
#define MBI_FLAG_MMAP 0x40U
#define MBI_FLAG_LOADER_NAME 0x200U
#define MBI_FLAGS 0
#define MBI_MEM_LOWER 4
#define MBI_MEM_UPPER 8
#define MBI_CMDLINE 16
#define MBI_MODS_COUNT 20
#define MBI_MODS_ADDR 24
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR 48
#define MBI_LOADER_NAME 64
#define MB_MOD_SIZE 16  /* mod_start, mod_end, string, reserved */
#define MB_MMAP_SIZE 24 /* size (= 20, not counting itself), base, length, type */

/* Where the structures go inside LAYOUT_BOOTINFO_ADDR's area. */
#define MB_INFO_OFF 0x0
#define MB_MMAP_OFF 0x100
#define MB_MODS_OFF 0x300
#define MB_NAME_OFF 0x380
#define MB_STRINGS_OFF 0x400
#define MB_LOADER_NAME "shrike"

struct multiboot_image {
	size_t header_offset;
	uint32_t flags;
	bool aout;
	/* a.out kludge: file bytes [file_offset, +load_size) go to load_addr,
	 * followed by bss_size zero bytes. */
	uint64_t file_offset, load_addr, load_size, bss_size;
	struct elf_info elf; /* when !aout */
	uint64_t image_start, image_end;
	uint64_t entry;
};

/* Finds a header with a valid checksum: 0 and its offset, or -ENOENT. */
int multiboot_find_header(const uint8_t *data, size_t size, size_t *offset);

/* Pure parser: header, flags, and the a.out-kludge or ELF layout. */
int multiboot_parse(const uint8_t *data, size_t size, struct multiboot_image *img,
		    struct errmsg *err);

/* Loads image and modules (each initrd is one module named by its path),
 * writes multiboot_info at LAYOUT_BOOTINFO_ADDR and the command line, and
 * sets the 32-bit entry state. Messages start with "multiboot: ". */
int multiboot_load(const struct guest_mem *mem, const struct boot_input *in,
		   struct cpu_state *entry, struct errmsg *err);

#endif
