#include "boot/elf.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "boot/bootmem.h"
#include "boot/le.h"

#define EI_NIDENT 16
#define EI_CLASS 4
#define EI_DATA 5
#define EI_VERSION 6
#define ELFCLASS32 1
#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define EV_CURRENT 1
#define ET_EXEC 2
#define ELF32_EHDR_SIZE 52
#define ELF64_EHDR_SIZE 64
#define ELF32_PHDR_SIZE 32
#define ELF64_PHDR_SIZE 56
#define NOTE_HDR_SIZE 12
#define XEN_NOTE_NAME "Xen"

/* Raw header fields, normalized across the two classes. */
struct elf_ehdr {
	uint16_t type, machine;
	uint64_t entry, phoff;
	uint16_t phentsize, phnum;
};

struct elf_phdr {
	uint32_t type;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

bool elf_is_elf(const uint8_t *data, size_t size)
{
	return size >= 4 && memcmp(data, "\177ELF", 4) == 0;
}

static int check_ident(const uint8_t *d, size_t size, unsigned *elfclass, struct errmsg *err)
{
	if (!elf_is_elf(d, size) || size < EI_NIDENT)
		return errmsg_set(err, EINVAL, "ELF: no ELF magic");
	if (d[EI_CLASS] != ELFCLASS32 && d[EI_CLASS] != ELFCLASS64)
		return errmsg_set(err, EINVAL, "ELF: unknown class %u", d[EI_CLASS]);
	if (d[EI_DATA] != ELFDATA2LSB)
		return errmsg_set(err, EINVAL, "ELF: not little-endian, so not an x86 executable");
	if (d[EI_VERSION] != EV_CURRENT)
		return errmsg_set(err, EINVAL, "ELF: unknown version %u", d[EI_VERSION]);
	*elfclass = d[EI_CLASS] == ELFCLASS64 ? 64 : 32;
	return 0;
}

static int read_ehdr(const uint8_t *d, size_t size, unsigned elfclass, struct elf_ehdr *h,
		     struct errmsg *err)
{
	size_t need = elfclass == 64 ? ELF64_EHDR_SIZE : ELF32_EHDR_SIZE;

	if (size < need)
		return errmsg_set(err, EINVAL, "ELF: file is truncated inside the ELF header");
	h->type = le_get16(d, 16);
	h->machine = le_get16(d, 18);
	if (elfclass == 64) {
		h->entry = le_get64(d, 24);
		h->phoff = le_get64(d, 32);
		h->phentsize = le_get16(d, 54);
		h->phnum = le_get16(d, 56);
	} else {
		h->entry = le_get32(d, 24);
		h->phoff = le_get32(d, 28);
		h->phentsize = le_get16(d, 42);
		h->phnum = le_get16(d, 44);
	}
	return 0;
}

static int check_ehdr(const struct elf_ehdr *h, unsigned elfclass, size_t size,
		      struct errmsg *err)
{
	uint16_t want_machine = elfclass == 64 ? ELF_EM_X86_64 : ELF_EM_386;
	uint16_t min_phent = elfclass == 64 ? ELF64_PHDR_SIZE : ELF32_PHDR_SIZE;

	if (h->type != ET_EXEC)
		return errmsg_set(err, EINVAL, "ELF: type %u is not an executable (ET_EXEC)",
				  h->type);
	if (h->machine != want_machine)
		return errmsg_set(err, EINVAL, "ELF%u: machine %u is not %s", elfclass,
				  h->machine, elfclass == 64 ? "x86-64" : "i386");
	if (h->phnum == 0)
		return errmsg_set(err, EINVAL, "ELF: no program headers");
	if (h->phnum > ELF_MAX_PHDRS)
		return errmsg_set(err, EINVAL, "ELF: %u program headers, more than %u",
				  h->phnum, ELF_MAX_PHDRS);
	if (h->phentsize < min_phent)
		return errmsg_set(err, EINVAL, "ELF: program header size %u is below %u",
				  h->phentsize, min_phent);
	/* phnum * phentsize < 2^32, so only the offset can overflow. */
	uint64_t table = (uint64_t)h->phnum * h->phentsize;
	if (h->phoff > size || table > size - h->phoff)
		return errmsg_set(err, EINVAL, "ELF: program headers lie outside the file");
	return 0;
}

static void read_phdr(const uint8_t *p, unsigned elfclass, struct elf_phdr *ph)
{
	ph->type = le_get32(p, 0);
	if (elfclass == 64) {
		ph->offset = le_get64(p, 8);
		ph->vaddr = le_get64(p, 16);
		ph->paddr = le_get64(p, 24);
		ph->filesz = le_get64(p, 32);
		ph->memsz = le_get64(p, 40);
		ph->align = le_get64(p, 48);
	} else {
		ph->offset = le_get32(p, 4);
		ph->vaddr = le_get32(p, 8);
		ph->paddr = le_get32(p, 12);
		ph->filesz = le_get32(p, 16);
		ph->memsz = le_get32(p, 20);
		ph->align = le_get32(p, 28);
	}
}

static bool file_range_ok(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

static int add_load(struct elf_info *info, unsigned idx, const struct elf_phdr *ph,
		    size_t size, struct errmsg *err)
{
	if (ph->filesz > ph->memsz)
		return errmsg_set(err, EINVAL, "ELF: segment %u has filesz above memsz", idx);
	if (!file_range_ok(ph->offset, ph->filesz, size))
		return errmsg_set(err, EINVAL, "ELF: segment %u lies outside the file", idx);
	if (ph->paddr + ph->memsz < ph->paddr)
		return errmsg_set(err, EINVAL, "ELF: segment %u wraps around the address space",
				  idx);
	if (ph->memsz == 0)
		return 0;
	if (info->nload == ELF_MAX_LOADS)
		return errmsg_set(err, EINVAL, "ELF: more than %u loadable segments",
				  ELF_MAX_LOADS);
	info->load[info->nload++] = (struct elf_segment){
	    .offset = ph->offset, .vaddr = ph->vaddr, .paddr = ph->paddr, .filesz = ph->filesz, .memsz = ph->memsz};
	if (ph->paddr + ph->memsz > info->image_end)
		info->image_end = ph->paddr + ph->memsz;
	return 0;
}

static int read_pvh_desc(const uint8_t *desc, uint32_t descsz, struct elf_info *info,
			 struct errmsg *err)
{
	uint64_t entry;

	if (descsz == 4)
		entry = le_get32(desc, 0);
	else if (descsz == 8)
		entry = le_get64(desc, 0);
	else
		return errmsg_set(err, EINVAL,
				  "ELF: Xen PHYS32_ENTRY note has a %u-byte descriptor", descsz);
	if (entry >= LAYOUT_4G)
		return errmsg_set(err, EINVAL, "ELF: PVH entry 0x%llx is above 4 GiB",
				  (unsigned long long)entry);
	info->has_pvh = true;
	info->pvh_entry = entry;
	return 0;
}

/* Walks one PT_NOTE segment. The descriptor starts at the alignment
 * boundary after the name and the next note at the one after the
 * descriptor (gABI "Note Section"; 8-byte alignment only for segments that
 * say so). Each step consumes at least the 12-byte header, so the walk ends
 * within filesz / 12 steps. */
static int walk_notes(const uint8_t *d, const struct elf_phdr *ph, size_t size,
		      struct elf_info *info, struct errmsg *err)
{
	uint64_t align = ph->align == 8 ? 8 : 4;

	if (!file_range_ok(ph->offset, ph->filesz, size))
		return errmsg_set(err, EINVAL, "ELF: note segment lies outside the file");
	const uint8_t *p = d + ph->offset;
	uint64_t left = ph->filesz;
	while (left >= NOTE_HDR_SIZE) {
		/* 32-bit sizes in 64-bit arithmetic: these sums cannot wrap. */
		uint64_t namesz = le_get32(p, 0), descsz = le_get32(p, 4);
		uint32_t type = le_get32(p, 8);
		uint64_t desc_off = bootmem_align_up(NOTE_HDR_SIZE + namesz, align);
		uint64_t next = bootmem_align_up(desc_off + descsz, align);
		if (desc_off + descsz > left)
			return errmsg_set(err, EINVAL, "ELF: truncated note");
		if (namesz == sizeof(XEN_NOTE_NAME) &&
		    memcmp(p + NOTE_HDR_SIZE, XEN_NOTE_NAME, namesz) == 0 &&
		    type == XEN_ELFNOTE_PHYS32_ENTRY) {
			int rc = read_pvh_desc(p + desc_off, (uint32_t)descsz, info, err);
			if (rc)
				return rc;
		}
		if (next >= left)
			break;
		p += next;
		left -= next;
	}
	return 0;
}

int elf_parse(const uint8_t *data, size_t size, struct elf_info *info, struct errmsg *err)
{
	struct elf_ehdr h = {0};
	int rc;

	memset(info, 0, sizeof(*info));
	rc = check_ident(data, size, &info->elfclass, err);
	if (rc)
		return rc;
	rc = read_ehdr(data, size, info->elfclass, &h, err);
	if (rc)
		return rc;
	rc = check_ehdr(&h, info->elfclass, size, err);
	if (rc)
		return rc;
	info->entry = h.entry;
	for (unsigned i = 0; i < h.phnum; i++) {
		struct elf_phdr ph;
		read_phdr(data + h.phoff + (uint64_t)i * h.phentsize, info->elfclass, &ph);
		if (ph.type == ELF_PT_LOAD)
			rc = add_load(info, i, &ph, size, err);
		else if (ph.type == ELF_PT_NOTE)
			rc = walk_notes(data, &ph, size, info, err);
		if (rc)
			return rc;
	}
	if (info->nload == 0)
		return errmsg_set(err, EINVAL, "ELF: no loadable segments");
	return 0;
}

int elf_load_segments(const struct guest_mem *mem, const struct e820_map *map,
		      const uint8_t *data, const struct elf_info *info, struct errmsg *err)
{
	for (unsigned i = 0; i < info->nload && i < ELF_MAX_LOADS; i++) {
		const struct elf_segment *s = &info->load[i];
		if (!bootmem_loadable(mem, map, s->paddr, s->memsz))
			return errmsg_set(err, EINVAL,
					  "ELF: segment at 0x%llx-0x%llx is not in guest RAM "
					  "above 1 MiB",
					  (unsigned long long)s->paddr,
					  (unsigned long long)(s->paddr + s->memsz));
		if (guest_mem_write(mem, s->paddr, data + s->offset, s->filesz) ||
		    bootmem_zero(mem, s->paddr + s->filesz, s->memsz - s->filesz))
			return errmsg_set(err, EFAULT, "ELF: segment copy failed");
	}
	return 0;
}

/* The initrds become one module, page-aligned as high as possible in the
 * RAM above the image (below 4 GiB, which the 32-bit entry can reach). */
static int place_module(const struct boot_input *in, const struct elf_info *info,
			uint64_t *addr, uint64_t *size, struct errmsg *err)
{
	uint64_t hi = bootmem_high_ram_end(in->e820);

	*addr = 0;
	if (bootmem_initrd_total(in, size))
		return errmsg_set(err, EOVERFLOW, "PVH: initrds are too large");
	if (*size == 0)
		return 0;
	if (hi > LAYOUT_4G)
		hi = LAYOUT_4G;
	/* Clamped to hi first, so aligning up cannot wrap. */
	uint64_t lo = info->image_end < hi ? info->image_end : hi;
	if (lo < LAYOUT_HIGH_MEM_START)
		lo = LAYOUT_HIGH_MEM_START;
	if (bootmem_place_high(bootmem_align_up(lo, BOOTMEM_PAGE), hi, *size, addr))
		return errmsg_set(err, ENOMEM,
				  "PVH: initrd (%llu bytes) does not fit between the kernel's "
				  "end 0x%llx and 0x%llx",
				  (unsigned long long)*size, (unsigned long long)info->image_end,
				  (unsigned long long)hi);
	return 0;
}

static void build_start_info(uint8_t *area, const struct boot_input *in, uint64_t mod_addr,
			     uint64_t mod_size)
{
	const struct e820_map *map = in->e820;
	unsigned n = map->count < E820_MAX_ENTRIES ? map->count : E820_MAX_ENTRIES;
	uint8_t *si = area + PVH_START_INFO_OFF;

	le_put32(si, HVM_SI_MAGIC, HVM_START_MAGIC);
	le_put32(si, HVM_SI_VERSION, HVM_START_VERSION);
	le_put32(si, HVM_SI_FLAGS, 0);
	le_put64(si, HVM_SI_CMDLINE, LAYOUT_CMDLINE_ADDR);
	le_put64(si, HVM_SI_RSDP, in->rsdp_addr);
	le_put64(si, HVM_SI_MEMMAP, LAYOUT_BOOTINFO_ADDR + PVH_MEMMAP_OFF);
	le_put32(si, HVM_SI_MEMMAP_ENTRIES, n);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = area + PVH_MEMMAP_OFF + (size_t)i * HVM_MEMMAP_SIZE;
		le_put64(e, 0, map->entry[i].addr);
		le_put64(e, 8, map->entry[i].size);
		le_put32(e, 16, map->entry[i].type);
	}
	if (mod_size == 0)
		return;
	le_put32(si, HVM_SI_NR_MODULES, 1);
	le_put64(si, HVM_SI_MODLIST, LAYOUT_BOOTINFO_ADDR + PVH_MODLIST_OFF);
	le_put64(area + PVH_MODLIST_OFF, 0, mod_addr);
	le_put64(area + PVH_MODLIST_OFF, 8, mod_size);
}

#define PVH_AREA_SIZE (PVH_MEMMAP_OFF + E820_MAX_ENTRIES * HVM_MEMMAP_SIZE)
_Static_assert(PVH_AREA_SIZE <= LAYOUT_BOOTINFO_SIZE, "PVH structures fit the bootinfo area");
_Static_assert(PVH_START_INFO_OFF + HVM_SI_SIZE <= PVH_MODLIST_OFF, "start_info fits");
_Static_assert(PVH_MODLIST_OFF + HVM_MOD_SIZE <= PVH_MEMMAP_OFF, "modlist fits");

int elf_pvh_load(const struct guest_mem *mem, const struct boot_input *in,
		 struct cpu_state *entry, struct errmsg *err)
{
	struct elf_info info;
	uint8_t area[PVH_AREA_SIZE] = {0};
	uint64_t mod_addr, mod_size;
	int rc;

	if (!in->e820)
		return errmsg_set(err, EINVAL, "PVH: no memory map");
	rc = elf_parse(in->kernel.data, in->kernel.size, &info, err);
	if (rc)
		return rc;
	if (!info.has_pvh)
		return errmsg_set(err, EINVAL,
				  "ELF: no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
				  "the kernel needs CONFIG_PVH");
	rc = place_module(in, &info, &mod_addr, &mod_size, err);
	if (rc)
		return rc;
	rc = elf_load_segments(mem, in->e820, in->kernel.data, &info, err);
	if (rc)
		return rc;
	rc = bootmem_write_cmdline(mem, in, LAYOUT_CMDLINE_MAX - 1, err);
	if (rc)
		return rc;
	build_start_info(area, in, mod_addr, mod_size);
	if (guest_mem_write(mem, LAYOUT_BOOTINFO_ADDR, area, sizeof(area)) ||
	    bootmem_copy_initrds(mem, in, mod_addr))
		return errmsg_set(err, EFAULT, "PVH: guest memory is too small");
	if (boot_cpu_protected_mode(mem, entry))
		return errmsg_set(err, EFAULT, "PVH: no guest memory for the GDT");
	entry->rip = info.pvh_entry;
	entry->gpr[GPR_RBX] = LAYOUT_BOOTINFO_ADDR + PVH_START_INFO_OFF;
	return 0;
}
