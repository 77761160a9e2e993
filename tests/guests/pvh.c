/* Xen PVH test guest (64-bit long mode, low 4 GiB identity-mapped).
 *
 * Reports struct hvm_start_info (Xen public/arch-x86/hvm/start_info.h):
 *   0 magic 0x336ec578, 4 version, 8 flags, 12 nr_modules,
 *   16 modlist_paddr, 24 cmdline_paddr, 32 rsdp_paddr,
 *   40 memmap_paddr, 48 memmap_entries (both version >= 1), 52 reserved;
 * modlist entries {u64 paddr, u64 size, u64 cmdline_paddr, u64 reserved},
 * memmap entries {u64 addr, u64 size, u32 type, u32 reserved}.
 * Output lines are documented in README.md; tests grep them. */
#include "lib.h"

#define PVH_MAGIC          0x336ec578u
#define PVH_INFO_LEN       56u
#define PVH_MOD_LEN        32u
#define PVH_MEMMAP_LEN     24u
#define PVH_MODS_MAX       64u
#define PVH_MEMMAP_MAX     1024u
#define E820_RAM           1u

void pvh_main(uint64_t start_info_pa);

static void print_memmap(const uint8_t *si)
{
	uint32_t count = 0;
	const uint8_t *map = NULL;
	uint64_t ram = 0;
	if (get_le32(si + 4) >= 1) {
		count = get_le32(si + 48);
		if (count > PVH_MEMMAP_MAX)
			count = PVH_MEMMAP_MAX;
		map = guest_phys(get_le64(si + 40), (uint64_t)count * PVH_MEMMAP_LEN);
	}
	if (!map)
		count = 0;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = map + i * PVH_MEMMAP_LEN;
		if (get_le32(e + 16) == E820_RAM)
			ram += get_le64(e + 8);
	}
	con_printf("memmap: %u entries, ram=%llu\n", count, (unsigned long long)(ram >> 10));
}

static void print_modules(const uint8_t *si)
{
	uint32_t count = get_le32(si + 12);
	uint32_t shown = count < PVH_MODS_MAX ? count : PVH_MODS_MAX;
	const uint8_t *mods = guest_phys(get_le64(si + 16), (uint64_t)shown * PVH_MOD_LEN);
	con_printf("modules: %u\n", count);
	for (uint32_t i = 0; mods && i < shown; i++) {
		const uint8_t *m = mods + i * PVH_MOD_LEN;
		uint64_t size = get_le64(m + 8);
		const void *data = guest_phys(get_le64(m), size);
		uint32_t sum = data ? byte_sum32(data, (size_t)size) : 0;
		con_printf("module %u: size=%llu sum=%08x\n", i, (unsigned long long)size, sum);
	}
}

void pvh_main(uint64_t start_info_pa)
{
	const uint8_t *si = guest_phys(start_info_pa, PVH_INFO_LEN);
	con_puts("shrike-test: pvh\n");
	if (!si || get_le32(si) != PVH_MAGIC) {
		con_printf("magic: bad %08x\n", si ? get_le32(si) : 0);
		guest_finish("", 0);
	}
	con_puts("magic: ok\n");
	const char *cmdline = guest_phys(get_le64(si + 24), 1);
	if (!cmdline)
		cmdline = "";
	con_printf("cmdline: %s\n", cmdline);
	print_memmap(si);
	print_modules(si);
	uint64_t rsdp = get_le64(si + 32);
	con_printf("rsdp: %s\n", acpi_rsdp_valid(rsdp) ? "yes" : "no");
	guest_finish(cmdline, rsdp);
}
