/* Minimal bzImage test guest (64-bit long mode, low 4 GiB identity-mapped).
 *
 * Reports struct boot_params (Linux Documentation/arch/x86/zero-page.rst
 * and boot.rst): 0x070 acpi_rsdp_addr, 0x0C0/0x0C4/0x0C8 ext_ramdisk_image,
 * ext_ramdisk_size, ext_cmd_line_ptr (high halves), 0x1E8 e820_entries,
 * 0x218 ramdisk_image, 0x21C ramdisk_size, 0x228 cmd_line_ptr, 0x2D0
 * e820_table (128 entries of {u64 addr, u64 size, u32 type}).
 * Output lines are documented in README.md; tests grep them. */
#include "lib.h"

#define BP_SIZE            4096u
#define BP_ACPI_RSDP       0x070
#define BP_EXT_RAMDISK_IMG 0x0c0
#define BP_EXT_RAMDISK_SZ  0x0c4
#define BP_EXT_CMDLINE     0x0c8
#define BP_E820_ENTRIES    0x1e8
#define BP_RAMDISK_IMAGE   0x218
#define BP_RAMDISK_SIZE    0x21c
#define BP_CMDLINE_PTR     0x228
#define BP_E820_TABLE      0x2d0
#define E820_ENTRY_LEN     20u
#define E820_MAX           128u
#define E820_RAM           1u

void bz_main(uint64_t boot_params_pa);

static uint64_t split_u64(const uint8_t *bp, unsigned lo, unsigned hi)
{
	return (uint64_t)get_le32(bp + lo) | (uint64_t)get_le32(bp + hi) << 32;
}

static void print_e820(const uint8_t *bp)
{
	uint32_t count = bp[BP_E820_ENTRIES];
	uint64_t ram = 0;
	if (count > E820_MAX)
		count = E820_MAX;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + i * E820_ENTRY_LEN;
		if (get_le32(e + 16) == E820_RAM)
			ram += get_le64(e + 8);
	}
	con_printf("e820: %u entries, ram=%llu\n", count, (unsigned long long)(ram >> 10));
}

static void print_initrd(const uint8_t *bp)
{
	uint64_t addr = split_u64(bp, BP_RAMDISK_IMAGE, BP_EXT_RAMDISK_IMG);
	uint64_t size = split_u64(bp, BP_RAMDISK_SIZE, BP_EXT_RAMDISK_SZ);
	const void *data = size ? guest_phys(addr, size) : NULL;
	uint32_t sum = data ? byte_sum32(data, (size_t)size) : 0;
	con_printf("initrd: size=%llu sum=%08x\n", (unsigned long long)size, sum);
}

void bz_main(uint64_t boot_params_pa)
{
	const uint8_t *bp = guest_phys(boot_params_pa, BP_SIZE);
	con_puts("shrike-test: bzimage\n");
	if (!bp) {
		con_puts("boot_params: missing\n");
		guest_finish("", 0);
	}
	const char *cmdline = guest_phys(split_u64(bp, BP_CMDLINE_PTR, BP_EXT_CMDLINE), 1);
	if (!cmdline)
		cmdline = "";
	con_printf("cmdline: %s\n", cmdline);
	print_e820(bp);
	print_initrd(bp);
	guest_finish(cmdline, get_le64(bp + BP_ACPI_RSDP));
}
