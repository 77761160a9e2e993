/* ELF parsing and PVH boot: images are built in memory, then parsed and
 * loaded into a 64 MiB guest; each kind of corruption must be refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "boot/elf.h"

#define IMG_CAP (64 * 1024)
#define DATA_START 0x1000

struct seg {
	uint32_t type;
	uint64_t vaddr, paddr;
	const void *data;
	size_t filesz;
	uint64_t memsz;
	uint64_t align;
};

struct fixture {
	struct guest_mem mem;
	struct e820_map map;
	uint8_t img[IMG_CAP];
	size_t size;
	uint8_t code[256];
	uint8_t data[128];
	uint8_t note[128];
	size_t note_size;
	struct seg segs[4];
	unsigned nseg;
	int elfclass;
	uint64_t entry;
};

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static size_t add_note(uint8_t *p, const char *name, uint32_t type, const void *desc,
		       uint32_t descsz)
{
	uint32_t namesz = (uint32_t)strlen(name) + 1;
	size_t off = 12;

	put32(p, namesz);
	put32(p + 4, descsz);
	put32(p + 8, type);
	memcpy(p + off, name, namesz);
	off += (namesz + 3) & ~3u;
	memcpy(p + off, desc, descsz);
	off += (descsz + 3) & ~3u;
	return off;
}

/* ELF header, program headers right after it, segment data from 0x1000. */
static void build(struct fixture *f)
{
	int is64 = f->elfclass == 64;
	size_t ehsize = is64 ? 64 : 52, phsize = is64 ? 56 : 32;
	size_t data_off = DATA_START;
	uint8_t *h = f->img;

	memset(f->img, 0, sizeof(f->img));
	memcpy(h, "\177ELF", 4);
	h[4] = is64 ? 2 : 1;
	h[5] = 1;
	h[6] = 1;
	put16(h + 16, 2);
	put16(h + 18, is64 ? 62 : 3);
	put32(h + 20, 1);
	if (is64) {
		put64(h + 24, f->entry);
		put64(h + 32, ehsize);
		put16(h + 52, (uint16_t)ehsize);
		put16(h + 54, (uint16_t)phsize);
		put16(h + 56, (uint16_t)f->nseg);
	} else {
		put32(h + 24, (uint32_t)f->entry);
		put32(h + 28, (uint32_t)ehsize);
		put16(h + 40, (uint16_t)ehsize);
		put16(h + 42, (uint16_t)phsize);
		put16(h + 44, (uint16_t)f->nseg);
	}
	for (unsigned i = 0; i < f->nseg; i++) {
		const struct seg *s = &f->segs[i];
		uint8_t *p = h + ehsize + i * phsize;
		memcpy(f->img + data_off, s->data, s->filesz);
		put32(p, s->type);
		if (is64) {
			put32(p + 4, 5);
			put64(p + 8, data_off);
			put64(p + 16, s->vaddr);
			put64(p + 24, s->paddr);
			put64(p + 32, s->filesz);
			put64(p + 40, s->memsz);
			put64(p + 48, s->align);
		} else {
			put32(p + 4, (uint32_t)data_off);
			put32(p + 8, (uint32_t)s->vaddr);
			put32(p + 12, (uint32_t)s->paddr);
			put32(p + 16, (uint32_t)s->filesz);
			put32(p + 20, (uint32_t)s->memsz);
			put32(p + 24, 5);
			put32(p + 28, (uint32_t)s->align);
		}
		data_off += (s->filesz + 15) & ~(size_t)15;
	}
	f->size = data_off;
}

/* A vmlinux-like image: text at 16 MiB, data+bss above it, and a note
 * segment with an unrelated Xen note before the PVH entry note. */
static void default_image(struct fixture *f, int elfclass)
{
	static const char guest_os[] = "linux";
	uint64_t pvh = 0x1000040;

	for (size_t i = 0; i < sizeof(f->code); i++)
		f->code[i] = (uint8_t)i;
	memset(f->data, 0x5a, sizeof(f->data));
	f->note_size = add_note(f->note, "Xen", 6, guest_os, sizeof(guest_os));
	f->note_size += add_note(f->note + f->note_size, "GNU", 3, "abcd", 4);
	if (elfclass == 64) {
		f->note_size += add_note(f->note + f->note_size, "Xen", XEN_ELFNOTE_PHYS32_ENTRY,
					 &pvh, 8);
	} else {
		uint32_t pvh32 = (uint32_t)pvh;
		f->note_size += add_note(f->note + f->note_size, "Xen", XEN_ELFNOTE_PHYS32_ENTRY,
					 &pvh32, 4);
	}
	f->elfclass = elfclass;
	f->entry = 0xffffffff81000000ULL;
	if (elfclass == 32)
		f->entry = 0x1000000;
	f->segs[0] = (struct seg){ELF_PT_LOAD, f->entry, 0x1000000, f->code, sizeof(f->code),
				  sizeof(f->code), 0x1000};
	f->segs[1] = (struct seg){ELF_PT_LOAD, 0, 0x1200000, f->data, sizeof(f->data), 0x3000,
				  0x1000};
	f->segs[2] = (struct seg){ELF_PT_NOTE, 0, 0, f->note, f->note_size, f->note_size, 4};
	f->nseg = 3;
	build(f);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || guest_mem_init(&f->mem, 64 << 20))
		return -1;
	e820_build(&f->map, &f->mem);
	default_image(f, 64);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	guest_mem_destroy(&f->mem);
	free(f);
	return 0;
}

static int parse(struct fixture *f, struct elf_info *info, struct errmsg *err)
{
	return elf_parse(f->img, f->size, info, err);
}

static void expect_refusal(struct fixture *f, const char *needle)
{
	struct elf_info info;
	struct errmsg err = {{0}};
	assert_int_not_equal(parse(f, &info, &err), 0);
	if (!strstr(err.text, needle))
		fail_msg("message '%s' lacks '%s'", err.text, needle);
}

static void test_parse_elf64(void **state)
{
	struct fixture *f = *state;
	struct elf_info info;
	struct errmsg err = {{0}};

	assert_int_equal(parse(f, &info, &err), 0);
	assert_int_equal(info.elfclass, 64);
	assert_int_equal(info.nload, 2);
	assert_true(info.has_pvh);
	assert_int_equal(info.pvh_entry, 0x1000040);
	assert_int_equal(info.load[1].paddr, 0x1200000);
	assert_int_equal(info.load[1].memsz, 0x3000);
	assert_int_equal(info.image_end, 0x1203000);
	assert_int_equal(info.entry, 0xffffffff81000000ULL);
}

static void test_parse_elf32(void **state)
{
	struct fixture *f = *state;
	struct elf_info info;
	struct errmsg err = {{0}};

	default_image(f, 32);
	assert_int_equal(parse(f, &info, &err), 0);
	assert_int_equal(info.elfclass, 32);
	assert_true(info.has_pvh);
	assert_int_equal(info.pvh_entry, 0x1000040);
	assert_int_equal(info.entry, 0x1000000);
}

static void test_parse_8byte_aligned_notes(void **state)
{
	struct fixture *f = *state;
	struct elf_info info;
	struct errmsg err = {{0}};
	uint64_t pvh = 0x1000080;

	/* "GNU\0" + 8-byte alignment: desc at 16; "Xen\0": same. */
	memset(f->note, 0, sizeof(f->note));
	put32(f->note, 4);
	put32(f->note + 4, 4);
	put32(f->note + 8, 5);
	memcpy(f->note + 12, "GNU", 4);
	put32(f->note + 16, 0x11223344); /* desc, padded to 24 */
	put32(f->note + 24, 4);
	put32(f->note + 28, 8);
	put32(f->note + 32, XEN_ELFNOTE_PHYS32_ENTRY);
	memcpy(f->note + 36, "Xen", 4);
	put64(f->note + 40, pvh);
	f->segs[2].filesz = f->segs[2].memsz = 48;
	f->segs[2].align = 8;
	build(f);
	assert_int_equal(parse(f, &info, &err), 0);
	assert_true(info.has_pvh);
	assert_int_equal(info.pvh_entry, pvh);
}

static void test_no_pvh_note_parses_but_is_not_pvh(void **state)
{
	struct fixture *f = *state;
	struct elf_info info;
	struct errmsg err = {{0}};
	struct cpu_state s;
	struct boot_input in = {.kernel = {.name = "k", .data = f->img}, .e820 = &f->map};

	f->nseg = 2;
	build(f);
	assert_int_equal(parse(f, &info, &err), 0);
	assert_false(info.has_pvh);
	in.kernel.size = f->size;
	assert_int_not_equal(elf_pvh_load(&f->mem, &in, &s, &err), 0);
	assert_non_null(strstr(err.text, "no Xen PVH entry note"));
}

static void test_refuse_header_corruption(void **state)
{
	struct fixture *f = *state;

	f->img[0] = 'x';
	expect_refusal(f, "no ELF magic");
	build(f);
	f->img[4] = 3;
	expect_refusal(f, "unknown class");
	build(f);
	f->img[5] = 2;
	expect_refusal(f, "not little-endian");
	build(f);
	f->img[6] = 0;
	expect_refusal(f, "unknown version");
	build(f);
	put16(f->img + 16, 3);
	expect_refusal(f, "not an executable");
	build(f);
	put16(f->img + 18, 3);
	expect_refusal(f, "not x86-64");
	build(f);
	put16(f->img + 56, 0);
	expect_refusal(f, "no program headers");
	build(f);
	put16(f->img + 56, 300);
	expect_refusal(f, "more than");
	build(f);
	put16(f->img + 54, 40);
	expect_refusal(f, "program header size");
	build(f);
	put64(f->img + 32, f->size - 10);
	expect_refusal(f, "outside the file");
	build(f);
	put64(f->img + 32, UINT64_MAX - 8);
	expect_refusal(f, "outside the file");
	f->size = 40;
	expect_refusal(f, "truncated");
}

static uint8_t *phdr(struct fixture *f, unsigned i) { return f->img + 64 + i * 56; }

static void test_refuse_segment_corruption(void **state)
{
	struct fixture *f = *state;

	put64(phdr(f, 0) + 32, 0x1000); /* filesz > memsz */
	expect_refusal(f, "filesz above memsz");
	build(f);
	put64(phdr(f, 0) + 8, f->size); /* data past the end */
	expect_refusal(f, "outside the file");
	build(f);
	put64(phdr(f, 0) + 8, UINT64_MAX - 10);
	expect_refusal(f, "outside the file");
	build(f);
	put64(phdr(f, 1) + 24, UINT64_MAX - 0x1000);
	expect_refusal(f, "wraps");
	build(f);
	put64(phdr(f, 2) + 32, 0x100000); /* note larger than the file */
	expect_refusal(f, "note segment");
}

static void test_refuse_bad_notes(void **state)
{
	struct fixture *f = *state;
	uint8_t *note = f->img + DATA_START + 256 + 128; /* third segment's data */
	uint32_t n0 = get32(note);

	assert_int_equal(n0, 4); /* "Xen" */
	put32(note, 0xfffffff0); /* namesz runs past the segment */
	expect_refusal(f, "truncated note");
	build(f);
	put32(note + 4, 0xfffffff0);
	expect_refusal(f, "truncated note");

	uint8_t desc[6] = {1, 2, 3, 4, 5, 6};
	f->note_size = add_note(f->note, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, desc, sizeof(desc));
	f->segs[2].filesz = f->segs[2].memsz = f->note_size;
	build(f);
	expect_refusal(f, "6-byte descriptor");

	uint64_t high = LAYOUT_4G + 0x1000;
	f->note_size = add_note(f->note, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &high, 8);
	f->segs[2].filesz = f->segs[2].memsz = f->note_size;
	build(f);
	expect_refusal(f, "above 4 GiB");
}

static void test_refuse_no_loadable_segment(void **state)
{
	struct fixture *f = *state;

	f->segs[0] = f->segs[2];
	f->nseg = 1;
	build(f);
	expect_refusal(f, "no loadable segments");
}

static void test_pvh_load(void **state)
{
	struct fixture *f = *state;
	uint8_t initrd1[5000], initrd2[3000];
	struct boot_input in = {
	    .kernel = {.name = "vmlinux", .data = f->img, .size = f->size},
	    .initrd = {{.name = "a", .data = initrd1, .size = sizeof(initrd1)},
		       {.name = "b", .data = initrd2, .size = sizeof(initrd2)}},
	    .ninitrd = 2,
	    .cmdline = "console=ttyS0 root=/dev/vda",
	    .e820 = &f->map,
	    .rsdp_addr = LAYOUT_RSDP_ADDR,
	};
	struct cpu_state s;
	struct errmsg err = {{0}};
	uint8_t buf[0x3000];

	memset(initrd1, 0x11, sizeof(initrd1));
	memset(initrd2, 0x22, sizeof(initrd2));
	memset(guest_mem_ptr(&f->mem, 0x1200000, 0x3000), 0xaa, 0x3000);
	assert_int_equal(elf_pvh_load(&f->mem, &in, &s, &err), 0);

	/* segments: text copied, data copied and bss zeroed */
	assert_int_equal(guest_mem_read(&f->mem, 0x1000000, buf, sizeof(f->code)), 0);
	assert_memory_equal(buf, f->code, sizeof(f->code));
	assert_int_equal(guest_mem_read(&f->mem, 0x1200000, buf, 0x3000), 0);
	assert_memory_equal(buf, f->data, sizeof(f->data));
	for (size_t i = sizeof(f->data); i < 0x3000; i++)
		assert_int_equal(buf[i], 0);

	/* start_info */
	const uint8_t *si = guest_mem_ptr(&f->mem, LAYOUT_BOOTINFO_ADDR, HVM_SI_SIZE);
	assert_int_equal(get32(si + 0), HVM_START_MAGIC);
	assert_int_equal(get32(si + 4), 1);
	assert_int_equal(get32(si + 8), 0);
	assert_int_equal(get32(si + 12), 1);
	assert_int_equal(get64(si + 24), LAYOUT_CMDLINE_ADDR);
	assert_int_equal(get64(si + 32), LAYOUT_RSDP_ADDR);
	assert_string_equal((const char *)guest_mem_ptr(&f->mem, LAYOUT_CMDLINE_ADDR, 1),
			    in.cmdline);

	/* module 0: both initrds back to back, page-aligned, above the image */
	const uint8_t *mod = guest_mem_ptr(&f->mem, get64(si + 16), HVM_MOD_SIZE);
	assert_non_null(mod);
	uint64_t maddr = get64(mod), msize = get64(mod + 8);
	assert_int_equal(msize, sizeof(initrd1) + sizeof(initrd2));
	assert_int_equal(maddr & 0xfff, 0);
	assert_true(maddr >= 0x1203000);
	assert_true(maddr + msize <= 64 << 20);
	assert_true(maddr + msize > (64 << 20) - 0x1000); /* as high as possible */
	assert_int_equal(get64(mod + 16), 0);
	assert_memory_equal(guest_mem_ptr(&f->mem, maddr, 1), initrd1, sizeof(initrd1));
	assert_memory_equal(guest_mem_ptr(&f->mem, maddr + sizeof(initrd1), 1), initrd2,
			    sizeof(initrd2));

	/* memmap = e820 */
	assert_int_equal(get32(si + 48), f->map.count);
	const uint8_t *mm = guest_mem_ptr(&f->mem, get64(si + 40), f->map.count * 24);
	assert_non_null(mm);
	for (unsigned i = 0; i < f->map.count; i++) {
		assert_int_equal(get64(mm + i * 24), f->map.entry[i].addr);
		assert_int_equal(get64(mm + i * 24 + 8), f->map.entry[i].size);
		assert_int_equal(get32(mm + i * 24 + 16), f->map.entry[i].type);
	}

	/* entry */
	assert_int_equal(s.rip, 0x1000040);
	assert_int_equal(s.gpr[GPR_RBX], LAYOUT_BOOTINFO_ADDR);
	assert_int_equal(s.cr0 & CR0_PG, 0);
	assert_int_equal(s.cr0 & CR0_PE, CR0_PE);
	assert_int_equal(s.efer, 0);
	assert_int_equal(s.seg[SEG_CS].selector, 0x10);
	assert_int_equal(s.seg[SEG_CS].db, 1);
	assert_int_equal(s.seg[SEG_CS].l, 0);
	assert_int_equal(s.rflags, 2);
}

static void test_pvh_load_no_initrd(void **state)
{
	struct fixture *f = *state;
	struct boot_input in = {.kernel = {.data = f->img, .size = f->size}, .e820 = &f->map};
	struct cpu_state s;
	struct errmsg err = {{0}};

	assert_int_equal(elf_pvh_load(&f->mem, &in, &s, &err), 0);
	const uint8_t *si = guest_mem_ptr(&f->mem, LAYOUT_BOOTINFO_ADDR, HVM_SI_SIZE);
	assert_int_equal(get32(si + 12), 0);
	assert_int_equal(get64(si + 16), 0);
	assert_string_equal((const char *)guest_mem_ptr(&f->mem, LAYOUT_CMDLINE_ADDR, 1), "");
}

static void expect_load_refusal(struct fixture *f, struct boot_input *in, const char *needle)
{
	struct cpu_state s;
	struct errmsg err = {{0}};

	in->kernel.data = f->img;
	in->kernel.size = f->size;
	in->e820 = &f->map;
	assert_int_not_equal(elf_pvh_load(&f->mem, in, &s, &err), 0);
	if (!strstr(err.text, needle))
		fail_msg("message '%s' lacks '%s'", err.text, needle);
}

static void test_pvh_refuse_bad_placement(void **state)
{
	struct fixture *f = *state;
	struct boot_input in = {0};

	f->segs[1].paddr = 0x8000; /* would overwrite boot structures */
	build(f);
	expect_load_refusal(f, &in, "not in guest RAM above 1 MiB");
	f->segs[1].paddr = (64 << 20) - 0x1000; /* runs past the end of RAM */
	build(f);
	expect_load_refusal(f, &in, "not in guest RAM above 1 MiB");
	f->segs[1].paddr = 0x100000000ULL; /* no RAM above 4 GiB in this guest */
	build(f);
	expect_load_refusal(f, &in, "not in guest RAM above 1 MiB");

	static uint8_t big[1]; /* size is what matters; data is never read */
	default_image(f, 64);
	in.initrd[0] = (struct boot_blob){.name = "big", .data = big, .size = 63 << 20};
	in.ninitrd = 1;
	expect_load_refusal(f, &in, "does not fit");

	in.ninitrd = 0;
	char line[LAYOUT_CMDLINE_MAX + 10];
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = 0;
	in.cmdline = line;
	expect_load_refusal(f, &in, "command line is longer");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_parse_elf64, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse_elf32, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse_8byte_aligned_notes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_pvh_note_parses_but_is_not_pvh, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_header_corruption, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_segment_corruption, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_bad_notes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_no_loadable_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvh_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvh_load_no_initrd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pvh_refuse_bad_placement, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
