#include "boot/bzimage.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "boot/bootmem.h"
#include "boot/le.h"

#define SECTOR 512
#define DEFAULT_SETUP_SECTS 4        /* setup_sects == 0 means 4 */
#define DEFAULT_INITRD_ADDR_MAX 0x37ffffffU
#define MAX_KERNEL_ALIGNMENT (1ULL << 30)

static unsigned ver_major(uint16_t v) { return v >> 8; }
static unsigned ver_minor(uint16_t v) { return v & 0xff; }

static int check_magic(const uint8_t *d, size_t size, struct errmsg *err)
{
	if (size < BZ_HEADER_MIN_END)
		return errmsg_set(err, EINVAL,
				  "bzImage: file is only %zu bytes, too short for a setup header",
				  size);
	if (le_get16(d, BZ_BOOT_FLAG) != BZ_BOOT_FLAG_MAGIC)
		return errmsg_set(err, EINVAL, "bzImage: no boot flag 0xAA55 at offset 0x1FE");
	if (le_get32(d, BZ_HEADER) != BZ_HEADER_MAGIC)
		return errmsg_set(err, EINVAL, "bzImage: no \"HdrS\" signature at offset 0x202");
	return 0;
}

/* The field this loader depends on, xloadflags, arrived in 2.12. Headers
 * older than 2.06 (no cmdline_size) are reported as too old in general,
 * 2.06-2.11 specifically as lacking a way to advertise the 64-bit entry. */
static int check_version(uint16_t v, struct errmsg *err)
{
	if (v < 0x0206)
		return errmsg_set(err, EINVAL,
				  "bzImage: setup header version %u.%02u is older than 2.06",
				  ver_major(v), ver_minor(v));
	if (v < 0x020c)
		return errmsg_set(err, EINVAL,
				  "bzImage: boot protocol %u.%02u cannot advertise a 64-bit entry "
				  "point (xloadflags needs 2.12 or later)",
				  ver_major(v), ver_minor(v));
	return 0;
}

static int check_layout(const uint8_t *d, size_t size, struct bzimage_info *info,
			struct errmsg *err)
{
	unsigned sects = d[BZ_SETUP_SECTS] ? d[BZ_SETUP_SECTS] : DEFAULT_SETUP_SECTS;
	size_t setup_size = ((size_t)sects + 1) * SECTOR;

	/* At most 0x301, so the header always lies inside the setup code
	 * (at least two sectors) and, once that is checked, the file. */
	info->header_end = BZ_HEADER + (size_t)d[BZ_JUMP + 1];
	if (info->header_end < BZ_HEADER_MIN_END)
		return errmsg_set(err, EINVAL,
				  "bzImage: setup header ends at 0x%zx, before the init_size "
				  "field its protocol version promises",
				  info->header_end);
	if (setup_size >= size)
		return errmsg_set(err, EINVAL,
				  "bzImage: %u setup sectors leave no protected-mode code in "
				  "the %zu-byte file",
				  sects, size);
	info->kernel_offset = setup_size;
	info->kernel_size = size - setup_size;
	/* syssize counts 16-byte paragraphs of protected-mode code. */
	uint64_t declared = (uint64_t)le_get32(d, BZ_SYSSIZE) * 16;
	if (declared > info->kernel_size)
		return errmsg_set(err, EINVAL,
				  "bzImage: truncated: header declares %llu bytes of kernel "
				  "code, file has %zu",
				  (unsigned long long)declared, info->kernel_size);
	return 0;
}

static int check_flags(const struct bzimage_info *info, struct errmsg *err)
{
	if (!(info->loadflags & BZ_LOADED_HIGH))
		return errmsg_set(err, EINVAL,
				  "bzImage: kernel does not load high (LOADED_HIGH clear); "
				  "zImage kernels are not supported");
	if (!(info->xloadflags & BZ_XLF_KERNEL_64))
		return errmsg_set(err, EINVAL,
				  "bzImage: kernel has no 64-bit entry point (XLF_KERNEL_64 "
				  "clear in xloadflags)");
	return 0;
}

int bzimage_parse(const uint8_t *data, size_t size, struct bzimage_info *info,
		  struct errmsg *err)
{
	int rc;

	memset(info, 0, sizeof(*info));
	rc = check_magic(data, size, err);
	if (rc)
		return rc;
	info->version = le_get16(data, BZ_VERSION);
	rc = check_version(info->version, err);
	if (rc)
		return rc;
	rc = check_layout(data, size, info, err);
	if (rc)
		return rc;
	info->loadflags = data[BZ_LOADFLAGS];
	info->xloadflags = le_get16(data, BZ_XLOADFLAGS);
	rc = check_flags(info, err);
	if (rc)
		return rc;
	info->relocatable = data[BZ_RELOCATABLE];
	info->initrd_addr_max = le_get32(data, BZ_INITRD_ADDR_MAX);
	if (info->initrd_addr_max == 0)
		info->initrd_addr_max = DEFAULT_INITRD_ADDR_MAX;
	info->kernel_alignment = le_get32(data, BZ_KERNEL_ALIGNMENT);
	info->cmdline_size = le_get32(data, BZ_CMDLINE_SIZE);
	info->pref_address = le_get64(data, BZ_PREF_ADDRESS);
	info->init_size = le_get32(data, BZ_INIT_SIZE);
	return 0;
}

/* Where the decompressor will run: a relocatable kernel moves itself up to
 * its alignment but never below LOAD_PHYSICAL_ADDR (pref_address); a fixed
 * one runs at pref_address. It then needs init_size bytes from there. */
static uint64_t kernel_memory_end(const struct bzimage_info *info, uint64_t load)
{
	uint64_t start = load;
	uint64_t align = info->kernel_alignment;

	if (info->relocatable && align && !(align & (align - 1)) && align <= MAX_KERNEL_ALIGNMENT)
		start = bootmem_align_up(load, align);
	if (info->pref_address > start && info->pref_address < LAYOUT_4G)
		start = info->pref_address;
	uint64_t end = start + info->init_size;
	uint64_t image_end = load + info->kernel_size;
	return end > image_end ? end : image_end;
}

struct bz_layout {
	uint64_t load;
	uint64_t kernel_end;
	uint64_t initrd_addr;
	uint64_t initrd_size;
};

static int plan_layout(const struct guest_mem *mem, const struct boot_input *in,
		       const struct bzimage_info *info, struct bz_layout *lay,
		       struct errmsg *err)
{
	uint64_t ram_end = bootmem_high_ram_end(in->e820);

	lay->load = BZ_LOAD_ADDR;
	lay->kernel_end = kernel_memory_end(info, lay->load);
	if (lay->kernel_end > ram_end ||
	    !bootmem_loadable(mem, in->e820, lay->load, lay->kernel_end - lay->load))
		return errmsg_set(err, ENOMEM,
				  "bzImage: kernel needs memory up to 0x%llx (init_size %u), "
				  "but RAM from 1 MiB ends at 0x%llx",
				  (unsigned long long)lay->kernel_end, info->init_size,
				  (unsigned long long)ram_end);
	if (bootmem_initrd_total(in, &lay->initrd_size))
		return errmsg_set(err, EOVERFLOW, "bzImage: initrds are too large");
	lay->initrd_addr = 0;
	if (lay->initrd_size == 0)
		return 0;
	uint64_t hi = (uint64_t)info->initrd_addr_max + 1;
	if (hi > ram_end)
		hi = ram_end;
	if (bootmem_place_high(bootmem_align_up(lay->kernel_end, BOOTMEM_PAGE), hi,
			       lay->initrd_size, &lay->initrd_addr))
		return errmsg_set(err, ENOMEM,
				  "bzImage: initrd (%llu bytes) does not fit between the "
				  "kernel's end 0x%llx and 0x%llx",
				  (unsigned long long)lay->initrd_size,
				  (unsigned long long)lay->kernel_end, (unsigned long long)hi);
	return 0;
}

static void fill_e820(uint8_t *zp, const struct e820_map *map)
{
	unsigned n = map->count < E820_MAX_ENTRIES ? map->count : E820_MAX_ENTRIES;

	if (n > BP_E820_MAX)
		n = BP_E820_MAX;
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	for (unsigned i = 0; i < n; i++) {
		size_t off = BP_E820_TABLE + (size_t)i * BP_E820_ENTRY_SIZE;
		le_put64(zp, off, map->entry[i].addr);
		le_put64(zp, off + 8, map->entry[i].size);
		le_put32(zp, off + 16, map->entry[i].type);
	}
}

static void build_zero_page(uint8_t *zp, const uint8_t *image, const struct bzimage_info *info,
			    const struct boot_input *in, const struct bz_layout *lay)
{
	size_t hdr_end = info->header_end < BP_HDR_END ? info->header_end : BP_HDR_END;

	memset(zp, 0, BP_SIZE);
	memcpy(zp + BZ_SETUP_SECTS, image + BZ_SETUP_SECTS, hdr_end - BZ_SETUP_SECTS);
	zp[BZ_TYPE_OF_LOADER] = BZ_LOADER_UNDEFINED;
	zp[BZ_LOADFLAGS] |= BZ_CAN_USE_HEAP;
	le_put16(zp, BZ_HEAP_END_PTR, BZ_HEAP_END);
	le_put32(zp, BZ_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE_ADDR);
	le_put32(zp, BZ_RAMDISK_IMAGE, (uint32_t)lay->initrd_addr);
	le_put32(zp, BZ_RAMDISK_SIZE, (uint32_t)lay->initrd_size);
	le_put32(zp, BP_EXT_RAMDISK_IMAGE, (uint32_t)(lay->initrd_addr >> 32));
	le_put32(zp, BP_EXT_RAMDISK_SIZE, (uint32_t)(lay->initrd_size >> 32));
	if (info->version >= 0x020e)
		le_put64(zp, BP_ACPI_RSDP_ADDR, in->rsdp_addr);
	fill_e820(zp, in->e820);
}

int bzimage_load(const struct guest_mem *mem, const struct boot_input *in,
		 struct cpu_state *entry, struct errmsg *err)
{
	const struct boot_blob *k = &in->kernel;
	struct bzimage_info info;
	struct bz_layout lay;
	uint8_t zp[BP_SIZE];
	int rc;

	if (!in->e820)
		return errmsg_set(err, EINVAL, "bzImage: no memory map");
	rc = bzimage_parse(k->data, k->size, &info, err);
	if (rc)
		return rc;
	rc = plan_layout(mem, in, &info, &lay, err);
	if (rc)
		return rc;
	rc = bootmem_write_cmdline(mem, in, info.cmdline_size, err);
	if (rc)
		return rc;
	build_zero_page(zp, k->data, &info, in, &lay);
	if (guest_mem_write(mem, LAYOUT_ZERO_PAGE_ADDR, zp, sizeof(zp)) ||
	    guest_mem_write(mem, lay.load, k->data + info.kernel_offset, info.kernel_size) ||
	    bootmem_copy_initrds(mem, in, lay.initrd_addr))
		return errmsg_set(err, EFAULT, "bzImage: guest memory is too small");
	if (boot_cpu_long_mode(mem, entry))
		return errmsg_set(err, EFAULT, "bzImage: no guest memory for page tables");
	entry->rip = lay.load + BZ_ENTRY64_OFFSET;
	entry->gpr[GPR_RSI] = LAYOUT_ZERO_PAGE_ADDR;
	return 0;
}
