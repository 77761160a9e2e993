/* Linux x86 boot protocol, versions 2.12 and later, entered at the 64-bit
 * entry point. Linux Documentation/arch/x86/boot.rst: "The Real-Mode Kernel
 * Header", "Details of Header Fields", "Loading The Rest of The Kernel",
 * "64-bit Boot Protocol"; Documentation/arch/x86/zero-page.rst for the
 * boot_params offsets outside the setup header.
 *
 * Invariants: bzimage_parse reads only inside [data, data+size) and
 * describes an image whose setup header and protected-mode payload both lie
 * inside the file; bzimage_load places the kernel at 1 MiB, never lets the
 * initrd overlap the memory the kernel claims (runtime start + init_size)
 * and keeps everything below 4 GiB. */
#ifndef SHRIKE_BOOT_BZIMAGE_H
#define SHRIKE_BOOT_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "boot/boot.h"

/* Setup header offsets inside the image and inside boot_params. */
#define BZ_SETUP_SECTS      0x1f1
#define BZ_SYSSIZE          0x1f4
#define BZ_BOOT_FLAG        0x1fe
#define BZ_JUMP             0x200
#define BZ_HEADER           0x202
#define BZ_VERSION          0x206
#define BZ_TYPE_OF_LOADER   0x210
#define BZ_LOADFLAGS        0x211
#define BZ_RAMDISK_IMAGE    0x218
#define BZ_RAMDISK_SIZE     0x21c
#define BZ_HEAP_END_PTR     0x224
#define BZ_CMD_LINE_PTR     0x228
#define BZ_INITRD_ADDR_MAX  0x22c
#define BZ_KERNEL_ALIGNMENT 0x230
#define BZ_RELOCATABLE      0x234
#define BZ_XLOADFLAGS       0x236
#define BZ_CMDLINE_SIZE     0x238
#define BZ_PREF_ADDRESS     0x258
#define BZ_INIT_SIZE        0x260
#define BZ_HEADER_MIN_END   0x264 /* the last field this loader reads ends here */

/* boot_params (zero page) fields outside the setup header. */
#define BP_SIZE             0x1000
#define BP_ACPI_RSDP_ADDR   0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_E820_ENTRIES     0x1e8
#define BP_HDR_END          0x290 /* the setup header area ends here */
#define BP_E820_TABLE       0x2d0
#define BP_E820_MAX         128
#define BP_E820_ENTRY_SIZE  20

#define BZ_BOOT_FLAG_MAGIC  0xaa55
#define BZ_HEADER_MAGIC     0x53726448 /* "HdrS" */
#define BZ_LOADED_HIGH      0x01
#define BZ_CAN_USE_HEAP     0x80
#define BZ_XLF_KERNEL_64    0x01
#define BZ_LOADER_UNDEFINED 0xff
#define BZ_HEAP_END         0xfe00 /* end of setup heap, minus 0x200 */
#define BZ_LOAD_ADDR        0x100000ULL
#define BZ_ENTRY64_OFFSET   0x200

struct bzimage_info {
	uint16_t version;         /* 0x020f is protocol 2.15 */
	uint8_t loadflags;
	uint16_t xloadflags;
	uint8_t relocatable;
	size_t header_end;        /* offset one past the setup header */
	size_t kernel_offset;     /* protected-mode payload: file offset ... */
	size_t kernel_size;       /* ... and length */
	uint32_t initrd_addr_max; /* highest byte address the initrd may use */
	uint32_t kernel_alignment;
	uint32_t cmdline_size;    /* without the NUL */
	uint64_t pref_address;
	uint32_t init_size;
};

/* Pure parser: validates the image and describes it. */
int bzimage_parse(const uint8_t *data, size_t size, struct bzimage_info *info,
		  struct errmsg *err);

/* Builds the zero page, copies kernel, initrds and command line, and sets
 * the 64-bit entry state. Messages start with "bzImage: ". */
int bzimage_load(const struct guest_mem *mem, const struct boot_input *in,
		 struct cpu_state *entry, struct errmsg *err);

#endif
