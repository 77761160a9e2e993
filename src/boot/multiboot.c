#include "boot/multiboot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "boot/bootmem.h"
#include "boot/le.h"

#define MB_HDR_BASE_SIZE 12
#define MB_HDR_AOUT_SIZE 32
#define MB_HDR_VIDEO_SIZE 48
#define KIB 1024ULL
#define LOW_MEM_LIMIT 0xa0000ULL /* mem_lower counts at most 640 KiB */

static bool header_at(const uint8_t *d, size_t off)
{
	uint32_t magic = le_get32(d, off), flags = le_get32(d, off + 4);
	uint32_t sum = le_get32(d, off + 8);
	return magic == MB_HEADER_MAGIC && (uint32_t)(magic + flags + sum) == 0;
}

int multiboot_find_header(const uint8_t *data, size_t size, size_t *offset)
{
	size_t limit = size < MB_SEARCH_LIMIT ? size : MB_SEARCH_LIMIT;

	for (size_t off = 0; off + MB_HDR_BASE_SIZE <= limit; off += 4) {
		if (header_at(data, off)) {
			*offset = off;
			return 0;
		}
	}
	return -ENOENT;
}

static int check_flags(uint32_t flags, struct errmsg *err)
{
	uint32_t unknown = flags & MB_REQUIRED_MASK &
			   ~(MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMORY_INFO | MB_FLAG_VIDEO_MODE);

	if (unknown)
		return errmsg_set(err, EINVAL,
				  "multiboot: header requires unsupported features (flags 0x%x)",
				  unknown);
	/* §3.1.2: bit 2 demands a video mode table; shrike has no display. */
	if (flags & MB_FLAG_VIDEO_MODE)
		return errmsg_set(err, EINVAL,
				  "multiboot: kernel requires video mode information (header "
				  "flag 2), which shrike cannot provide");
	return 0;
}

/* §3.1.3: the header sits at header_addr in memory and at header_offset in
 * the file, which fixes where in the file load_addr's byte is. */
static int parse_aout(const uint8_t *d, size_t size, struct multiboot_image *img,
		      struct errmsg *err)
{
	size_t h = img->header_offset;
	uint64_t header_addr = le_get32(d, h + 12), load_addr = le_get32(d, h + 16);
	uint64_t load_end = le_get32(d, h + 20), bss_end = le_get32(d, h + 24);
	uint64_t entry = le_get32(d, h + 28);

	if (header_addr < load_addr)
		return errmsg_set(err, EINVAL, "multiboot: header_addr is below load_addr");
	if (header_addr - load_addr > h)
		return errmsg_set(err, EINVAL,
				  "multiboot: load_addr would start before the file");
	img->file_offset = h - (header_addr - load_addr);
	if (load_end == 0) {
		img->load_size = size - img->file_offset;
	} else {
		if (load_end <= header_addr)
			return errmsg_set(err, EINVAL,
					  "multiboot: load_end_addr is not above header_addr");
		img->load_size = load_end - load_addr;
		if (img->load_size > size - img->file_offset)
			return errmsg_set(err, EINVAL,
					  "multiboot: load_end_addr lies past the end of the file");
	}
	uint64_t text_end = load_addr + img->load_size;
	if (bss_end != 0 && bss_end < text_end)
		return errmsg_set(err, EINVAL, "multiboot: bss_end_addr is below load_end_addr");
	if (entry < load_addr || entry >= text_end)
		return errmsg_set(err, EINVAL,
				  "multiboot: entry_addr 0x%llx is outside the loaded image",
				  (unsigned long long)entry);
	img->load_addr = load_addr;
	img->bss_size = bss_end ? bss_end - text_end : 0;
	img->image_start = load_addr;
	img->image_end = text_end + img->bss_size;
	img->entry = entry;
	return 0;
}

/* The ELF entry is a virtual address; when it lies in a segment whose
 * virtual and physical addresses differ, jump to its physical copy. */
static uint64_t elf_entry_phys(const struct elf_info *elf)
{
	for (unsigned i = 0; i < elf->nload && i < ELF_MAX_LOADS; i++) {
		const struct elf_segment *s = &elf->load[i];
		if (elf->entry >= s->vaddr && elf->entry - s->vaddr < s->memsz)
			return elf->entry - s->vaddr + s->paddr;
	}
	return elf->entry;
}

static int parse_elf(const uint8_t *d, size_t size, struct multiboot_image *img,
		     struct errmsg *err)
{
	int rc = elf_parse(d, size, &img->elf, err);
	if (rc)
		return rc;
	img->entry = elf_entry_phys(&img->elf);
	if (img->entry >= LAYOUT_4G)
		return errmsg_set(err, EINVAL, "multiboot: ELF entry 0x%llx is above 4 GiB",
				  (unsigned long long)img->entry);
	img->image_start = UINT64_MAX;
	for (unsigned i = 0; i < img->elf.nload; i++)
		if (img->elf.load[i].paddr < img->image_start)
			img->image_start = img->elf.load[i].paddr;
	img->image_end = img->elf.image_end;
	return 0;
}

int multiboot_parse(const uint8_t *data, size_t size, struct multiboot_image *img,
		    struct errmsg *err)
{
	int rc;

	memset(img, 0, sizeof(*img));
	if (multiboot_find_header(data, size, &img->header_offset))
		return errmsg_set(err, EINVAL,
				  "multiboot: no header with a valid checksum in the first "
				  "8192 bytes");
	img->flags = le_get32(data, img->header_offset + 4);
	rc = check_flags(img->flags, err);
	if (rc)
		return rc;
	img->aout = img->flags & MB_FLAG_AOUT_KLUDGE;
	if (!img->aout)
		return parse_elf(data, size, img, err);
	if (img->header_offset + MB_HDR_AOUT_SIZE > size ||
	    img->header_offset + MB_HDR_AOUT_SIZE > MB_SEARCH_LIMIT)
		return errmsg_set(err, EINVAL,
				  "multiboot: a.out address fields lie past the first 8192 "
				  "bytes or the end of the file");
	return parse_aout(data, size, img, err);
}

static int load_image(const struct guest_mem *mem, const struct boot_input *in,
		      const struct multiboot_image *img, struct errmsg *err)
{
	if (!img->aout)
		return elf_load_segments(mem, in->e820, in->kernel.data, &img->elf, err);
	uint64_t total = img->image_end - img->image_start;
	if (!bootmem_loadable(mem, in->e820, img->load_addr, total))
		return errmsg_set(err, EINVAL,
				  "multiboot: image at 0x%llx-0x%llx is not in guest RAM above "
				  "1 MiB",
				  (unsigned long long)img->image_start,
				  (unsigned long long)img->image_end);
	if (guest_mem_write(mem, img->load_addr, in->kernel.data + img->file_offset,
			    img->load_size) ||
	    bootmem_zero(mem, img->load_addr + img->load_size, img->bss_size))
		return errmsg_set(err, EFAULT, "multiboot: image copy failed");
	return 0;
}

/* A host-side copy of the bootinfo area, written to the guest in one go. */
struct mb_area {
	uint8_t buf[LAYOUT_BOOTINFO_SIZE];
	size_t strings_used;
};

static int add_string(struct mb_area *a, const char *s, uint32_t *gpa)
{
	size_t len = strnlen(s, sizeof(a->buf)) + 1;
	size_t at = MB_STRINGS_OFF + a->strings_used;

	if (len > sizeof(a->buf) - at)
		return -ENOSPC;
	memcpy(a->buf + at, s, len - 1);
	a->buf[at + len - 1] = 0;
	a->strings_used += len;
	*gpa = (uint32_t)(LAYOUT_BOOTINFO_ADDR + at);
	return 0;
}

/* Modules go one after the other, each page-aligned (header flag 0 asks for
 * it; doing it always costs nothing), starting above the image. */
static int load_modules(const struct guest_mem *mem, const struct boot_input *in,
			const struct multiboot_image *img, struct mb_area *a,
			struct errmsg *err)
{
	uint64_t ram_end = bootmem_high_ram_end(in->e820);
	uint64_t next = img->image_end < ram_end ? img->image_end : ram_end;
	unsigned n = in->ninitrd < BOOT_MAX_INITRDS ? in->ninitrd : BOOT_MAX_INITRDS;

	next = bootmem_align_up(next, BOOTMEM_PAGE);
	for (unsigned i = 0; i < n; i++) {
		const struct boot_blob *b = &in->initrd[i];
		uint8_t *m = a->buf + MB_MODS_OFF + (size_t)i * MB_MOD_SIZE;
		uint32_t name;
		if (next > ram_end || b->size > ram_end - next ||
		    !bootmem_loadable(mem, in->e820, next, b->size))
			return errmsg_set(err, ENOMEM,
					  "multiboot: module %s (%zu bytes) does not fit in RAM "
					  "above 0x%llx",
					  b->name ? b->name : "?", b->size,
					  (unsigned long long)next);
		if (guest_mem_write(mem, next, b->data, b->size))
			return errmsg_set(err, EFAULT, "multiboot: module copy failed");
		if (add_string(a, b->name ? b->name : "", &name))
			return errmsg_set(err, ENOSPC, "multiboot: module names are too long");
		le_put32(m, 0, (uint32_t)next);
		le_put32(m, 4, (uint32_t)(next + b->size));
		le_put32(m, 8, name);
		next = bootmem_align_up(next + b->size, BOOTMEM_PAGE);
	}
	le_put32(a->buf, MBI_MODS_COUNT, n);
	le_put32(a->buf, MBI_MODS_ADDR, (uint32_t)(LAYOUT_BOOTINFO_ADDR + MB_MODS_OFF));
	return 0;
}

static void fill_memory(struct mb_area *a, const struct e820_map *map)
{
	unsigned n = map->count < E820_MAX_ENTRIES ? map->count : E820_MAX_ENTRIES;
	uint64_t start, end, lower = 0, upper = 0;

	if (bootmem_ram_range(map, 0, &start, &end) == 0)
		lower = (end < LOW_MEM_LIMIT ? end : LOW_MEM_LIMIT) / KIB;
	end = bootmem_high_ram_end(map);
	if (end > LAYOUT_HIGH_MEM_START)
		upper = (end - LAYOUT_HIGH_MEM_START) / KIB;
	if (upper > UINT32_MAX)
		upper = UINT32_MAX;
	le_put32(a->buf, MBI_MEM_LOWER, (uint32_t)lower);
	le_put32(a->buf, MBI_MEM_UPPER, (uint32_t)upper);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = a->buf + MB_MMAP_OFF + (size_t)i * MB_MMAP_SIZE;
		le_put32(e, 0, MB_MMAP_SIZE - 4);
		le_put64(e, 4, map->entry[i].addr);
		le_put64(e, 12, map->entry[i].size);
		le_put32(e, 20, map->entry[i].type);
	}
	le_put32(a->buf, MBI_MMAP_LENGTH, n * MB_MMAP_SIZE);
	le_put32(a->buf, MBI_MMAP_ADDR, (uint32_t)(LAYOUT_BOOTINFO_ADDR + MB_MMAP_OFF));
}

_Static_assert(MB_MMAP_OFF + E820_MAX_ENTRIES * MB_MMAP_SIZE <= MB_MODS_OFF, "mmap fits");
_Static_assert(MB_MODS_OFF + BOOT_MAX_INITRDS * MB_MOD_SIZE <= MB_NAME_OFF, "mods fit");
_Static_assert(MB_NAME_OFF + sizeof(MB_LOADER_NAME) <= MB_STRINGS_OFF, "name fits");

static void fill_info(struct mb_area *a)
{
	le_put32(a->buf, MBI_FLAGS,
		 MBI_FLAG_MEM | MBI_FLAG_CMDLINE | MBI_FLAG_MODS | MBI_FLAG_MMAP |
		     MBI_FLAG_LOADER_NAME);
	le_put32(a->buf, MBI_CMDLINE, (uint32_t)LAYOUT_CMDLINE_ADDR);
	memcpy(a->buf + MB_NAME_OFF, MB_LOADER_NAME, sizeof(MB_LOADER_NAME));
	le_put32(a->buf, MBI_LOADER_NAME, (uint32_t)(LAYOUT_BOOTINFO_ADDR + MB_NAME_OFF));
}

static int load_with_area(const struct guest_mem *mem, const struct boot_input *in,
			  struct cpu_state *entry, struct mb_area *a, struct errmsg *err)
{
	struct multiboot_image img;
	int rc;

	rc = multiboot_parse(in->kernel.data, in->kernel.size, &img, err);
	if (rc)
		return rc;
	rc = load_image(mem, in, &img, err);
	if (rc)
		return rc;
	rc = load_modules(mem, in, &img, a, err);
	if (rc)
		return rc;
	rc = bootmem_write_cmdline(mem, in, LAYOUT_CMDLINE_MAX - 1, err);
	if (rc)
		return rc;
	fill_memory(a, in->e820);
	fill_info(a);
	size_t used = MB_STRINGS_OFF + a->strings_used;
	if (guest_mem_write(mem, LAYOUT_BOOTINFO_ADDR, a->buf, used))
		return errmsg_set(err, EFAULT, "multiboot: no guest memory for boot information");
	if (boot_cpu_protected_mode(mem, entry))
		return errmsg_set(err, EFAULT, "multiboot: no guest memory for the GDT");
	entry->rip = img.entry;
	entry->gpr[GPR_RAX] = MB_BOOT_MAGIC;
	entry->gpr[GPR_RBX] = LAYOUT_BOOTINFO_ADDR + MB_INFO_OFF;
	return 0;
}

int multiboot_load(const struct guest_mem *mem, const struct boot_input *in,
		   struct cpu_state *entry, struct errmsg *err)
{
	if (!in->e820)
		return errmsg_set(err, EINVAL, "multiboot: no memory map");
	/* The 64 KiB staging copy of the bootinfo area is kept off the stack. */
	struct mb_area *a = calloc(1, sizeof(*a));
	if (!a)
		return errmsg_set(err, ENOMEM, "multiboot: out of memory");
	int rc = load_with_area(mem, in, entry, a, err);
	free(a);
	return rc;
}
