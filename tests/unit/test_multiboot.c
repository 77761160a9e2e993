/* Multiboot 1: a.out-kludge and ELF images built in memory, loaded into a
 * 64 MiB guest, with the boot information checked field by field; then
 * each corruption of the header and its address fields. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "boot/multiboot.h"

#define IMG_CAP 0x4000
#define HDR_OFF 0x40
#define LOAD_ADDR 0x100000U
#define TEXT_SIZE 0x2000U

struct fixture {
	struct guest_mem mem;
	struct e820_map map;
	uint8_t img[IMG_CAP];
	size_t size;
	struct boot_input in;
	uint8_t mod[2][5000];
};

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void put_header(uint8_t *p, uint32_t flags)
{
	put32(p, MB_HEADER_MAGIC);
	put32(p + 4, flags);
	put32(p + 8, (uint32_t)(0u - MB_HEADER_MAGIC - flags));
}

/* a.out kludge: the file is the text; bss follows it in memory. */
static void build_aout(struct fixture *f)
{
	memset(f->img, 0, sizeof(f->img));
	for (size_t i = 0; i < TEXT_SIZE; i++)
		f->img[i] = (uint8_t)(i * 3 + 1);
	uint8_t *h = f->img + HDR_OFF;
	put_header(h, MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMORY_INFO | MB_FLAG_AOUT_KLUDGE);
	put32(h + 12, LOAD_ADDR + HDR_OFF);   /* header_addr */
	put32(h + 16, LOAD_ADDR);             /* load_addr */
	put32(h + 20, LOAD_ADDR + TEXT_SIZE); /* load_end_addr */
	put32(h + 24, LOAD_ADDR + 0x4000);    /* bss_end_addr */
	put32(h + 28, LOAD_ADDR + 0x80);      /* entry_addr */
	f->size = TEXT_SIZE;
}

/* ELF32 with one higher-half segment (vaddr 0xc0200000, paddr 2 MiB) whose
 * data, at file offset 0x1000, starts with the multiboot header. */
static void build_elf(struct fixture *f)
{
	uint8_t *h = f->img;

	memset(f->img, 0, sizeof(f->img));
	memcpy(h, "\177ELF", 4);
	h[4] = 1;
	h[5] = 1;
	h[6] = 1;
	put16(h + 16, 2);
	put16(h + 18, 3);
	put32(h + 24, 0xc0200010);
	put32(h + 28, 52);
	put16(h + 42, 32);
	put16(h + 44, 1);
	uint8_t *ph = h + 52;
	put32(ph, 1);
	put32(ph + 4, 0x1000);
	put32(ph + 8, 0xc0200000);
	put32(ph + 12, 0x200000);
	put32(ph + 16, 0x800);
	put32(ph + 20, 0x3000);
	put_header(f->img + 0x1000, MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMORY_INFO);
	memset(f->img + 0x1010, 0x90, 0x7f0);
	f->size = 0x1800;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || guest_mem_init(&f->mem, 64 << 20))
		return -1;
	e820_build(&f->map, &f->mem);
	build_aout(f);
	memset(f->mod[0], 0x11, sizeof(f->mod[0]));
	memset(f->mod[1], 0x22, sizeof(f->mod[1]));
	f->in = (struct boot_input){
	    .kernel = {.name = "kernel.mb", .data = f->img, .size = f->size},
	    .initrd = {{.name = "/boot/mod0.bin", .data = f->mod[0], .size = sizeof(f->mod[0])},
		       {.name = "mod1", .data = f->mod[1], .size = sizeof(f->mod[1])}},
	    .ninitrd = 2,
	    .cmdline = "hello world",
	    .e820 = &f->map,
	};
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

static int load(struct fixture *f, struct cpu_state *s, struct errmsg *err)
{
	f->in.kernel.data = f->img;
	f->in.kernel.size = f->size;
	return multiboot_load(&f->mem, &f->in, s, err);
}

static void expect_refusal(struct fixture *f, const char *needle)
{
	struct cpu_state s;
	struct errmsg err = {{0}};

	assert_int_not_equal(load(f, &s, &err), 0);
	if (!strstr(err.text, needle))
		fail_msg("message '%s' lacks '%s'", err.text, needle);
}

static const uint8_t *mbi(struct fixture *f)
{
	return guest_mem_ptr(&f->mem, LAYOUT_BOOTINFO_ADDR, 0x400);
}

static const char *guest_str(struct fixture *f, uint32_t gpa)
{
	return guest_mem_ptr(&f->mem, gpa, 1);
}

static void test_find_header(void **state)
{
	struct fixture *f = *state;
	size_t off = 0;

	assert_int_equal(multiboot_find_header(f->img, f->size, &off), 0);
	assert_int_equal(off, HDR_OFF);
	/* only at 4-byte alignment */
	memmove(f->img + HDR_OFF + 2, f->img + HDR_OFF, 32);
	memset(f->img + HDR_OFF, 0, 2);
	assert_int_equal(multiboot_find_header(f->img, f->size, &off), -ENOENT);
	/* only within the first 8192 bytes */
	uint8_t big[8192 + 64] = {0};
	put_header(big + 8192, 0);
	assert_int_equal(multiboot_find_header(big, sizeof(big), &off), -ENOENT);
	put_header(big + 8180, 0);
	assert_int_equal(multiboot_find_header(big, sizeof(big), &off), 0);
	assert_int_equal(off, 8180);
	/* a truncated header is not found */
	assert_int_equal(multiboot_find_header(big, 8188, &off), -ENOENT);
}

static void test_load_aout(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};

	memset(guest_mem_ptr(&f->mem, LOAD_ADDR, 0x4000), 0xee, 0x4000);
	assert_int_equal(load(f, &s, &err), 0);
	assert_memory_equal(guest_mem_ptr(&f->mem, LOAD_ADDR, TEXT_SIZE), f->img, TEXT_SIZE);
	const uint8_t *bss = guest_mem_ptr(&f->mem, LOAD_ADDR + TEXT_SIZE, 0x2000);
	for (size_t i = 0; i < 0x2000; i++)
		assert_int_equal(bss[i], 0);

	const uint8_t *info = mbi(f);
	assert_int_equal(get32(info + MBI_FLAGS), 0x1 | 0x4 | 0x8 | 0x40 | 0x200);
	assert_int_equal(get32(info + MBI_MEM_LOWER), 639);
	assert_int_equal(get32(info + MBI_MEM_UPPER), (64 << 10) - 1024);
	assert_string_equal(guest_str(f, get32(info + MBI_CMDLINE)), "hello world");
	assert_string_equal(guest_str(f, get32(info + MBI_LOADER_NAME)), "shrike");

	/* modules: page-aligned, above the image incl. bss, in order */
	assert_int_equal(get32(info + MBI_MODS_COUNT), 2);
	const uint8_t *mods = guest_mem_ptr(&f->mem, get32(info + MBI_MODS_ADDR), 32);
	assert_non_null(mods);
	uint32_t m0 = get32(mods), m0end = get32(mods + 4);
	uint32_t m1 = get32(mods + 16), m1end = get32(mods + 20);
	assert_int_equal(m0 & 0xfff, 0);
	assert_int_equal(m1 & 0xfff, 0);
	assert_true(m0 >= LOAD_ADDR + 0x4000);
	assert_int_equal(m0end - m0, 5000);
	assert_true(m1 >= m0end);
	assert_int_equal(m1end - m1, 5000);
	assert_string_equal(guest_str(f, get32(mods + 8)), "/boot/mod0.bin");
	assert_string_equal(guest_str(f, get32(mods + 24)), "mod1");
	assert_memory_equal(guest_mem_ptr(&f->mem, m0, 1), f->mod[0], 5000);
	assert_memory_equal(guest_mem_ptr(&f->mem, m1, 1), f->mod[1], 5000);

	/* memory map, entries with their size field */
	uint32_t len = get32(info + MBI_MMAP_LENGTH);
	assert_int_equal(len, f->map.count * 24);
	const uint8_t *mm = guest_mem_ptr(&f->mem, get32(info + MBI_MMAP_ADDR), len);
	assert_non_null(mm);
	for (unsigned i = 0; i < f->map.count; i++) {
		assert_int_equal(get32(mm + i * 24), 20);
		assert_int_equal(get64(mm + i * 24 + 4), f->map.entry[i].addr);
		assert_int_equal(get64(mm + i * 24 + 12), f->map.entry[i].size);
		assert_int_equal(get32(mm + i * 24 + 20), f->map.entry[i].type);
	}

	/* entry */
	assert_int_equal(s.rip, LOAD_ADDR + 0x80);
	assert_int_equal(s.gpr[GPR_RAX], 0x2badb002);
	assert_int_equal(s.gpr[GPR_RBX], LAYOUT_BOOTINFO_ADDR);
	assert_int_equal(s.cr0 & (CR0_PE | CR0_PG), CR0_PE);
	assert_int_equal(s.seg[SEG_CS].db, 1);
	assert_int_equal(s.rflags & RFLAGS_IF, 0);
}

static void test_load_aout_defaults(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};
	uint8_t *h = f->img + HDR_OFF;

	/* load_end 0: the rest of the file; bss_end 0: no bss */
	put32(h + 20, 0);
	put32(h + 24, 0);
	f->in.ninitrd = 0;
	assert_int_equal(load(f, &s, &err), 0);
	assert_memory_equal(guest_mem_ptr(&f->mem, LOAD_ADDR, TEXT_SIZE), f->img, TEXT_SIZE);
	assert_int_equal(get32(mbi(f) + MBI_MODS_COUNT), 0);
}

static void test_load_aout_header_not_at_file_start(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};
	uint8_t *h = f->img + HDR_OFF;

	/* load_addr's byte is at file offset 0x20 (header_addr - load_addr =
	 * 0x20 while the header sits at 0x40). */
	put32(h + 16, LOAD_ADDR + 0x20);
	put32(h + 28, LOAD_ADDR + 0x100);
	assert_int_equal(load(f, &s, &err), 0);
	assert_memory_equal(guest_mem_ptr(&f->mem, LOAD_ADDR + 0x20, 1), f->img + 0x20,
			    TEXT_SIZE - 0x20);
}

static void test_load_elf(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};

	build_elf(f);
	assert_int_equal(load(f, &s, &err), 0);
	assert_memory_equal(guest_mem_ptr(&f->mem, 0x200000, 0x800), f->img + 0x1000, 0x800);
	assert_int_equal(s.rip, 0x200010); /* virtual entry translated to physical */
	const uint8_t *mods = guest_mem_ptr(&f->mem, get32(mbi(f) + MBI_MODS_ADDR), 32);
	assert_true(get32(mods) >= 0x203000);
}

static void test_refuse_header(void **state)
{
	struct fixture *f = *state;
	uint8_t *h = f->img + HDR_OFF;

	put32(h + 8, get32(h + 8) + 1);
	expect_refusal(f, "no header with a valid checksum");
	build_aout(f);
	put_header(h, MB_FLAG_AOUT_KLUDGE | MB_FLAG_VIDEO_MODE);
	expect_refusal(f, "video mode");
	put_header(h, MB_FLAG_AOUT_KLUDGE | 0x8);
	expect_refusal(f, "unsupported features (flags 0x8)");
	/* optional bits 16-31 other than the a.out kludge are ignored */
	put_header(h, MB_FLAG_AOUT_KLUDGE | 0x20000);
	struct cpu_state s;
	struct errmsg err = {{0}};
	assert_int_equal(load(f, &s, &err), 0);
}

static void test_refuse_aout_fields(void **state)
{
	struct fixture *f = *state;
	uint8_t *h = f->img + HDR_OFF;

	put32(h + 16, LOAD_ADDR + HDR_OFF + 4);
	expect_refusal(f, "header_addr is below load_addr");
	build_aout(f);
	put32(h + 16, LOAD_ADDR - 0x1000);
	expect_refusal(f, "before the file");
	build_aout(f);
	put32(h + 20, LOAD_ADDR + TEXT_SIZE + 1);
	expect_refusal(f, "past the end of the file");
	build_aout(f);
	put32(h + 20, LOAD_ADDR + 0x10);
	expect_refusal(f, "not above header_addr");
	build_aout(f);
	put32(h + 24, LOAD_ADDR + 0x100);
	expect_refusal(f, "bss_end_addr is below");
	build_aout(f);
	put32(h + 28, LOAD_ADDR + TEXT_SIZE);
	expect_refusal(f, "entry_addr");
	build_aout(f);
	put32(h + 28, LOAD_ADDR - 1);
	expect_refusal(f, "entry_addr");
	build_aout(f);
	/* a file too short to hold the address fields */
	f->size = HDR_OFF + 20;
	expect_refusal(f, "a.out address fields");
}

static void test_refuse_placement(void **state)
{
	struct fixture *f = *state;
	uint8_t *h = f->img + HDR_OFF;

	/* below 1 MiB: would overwrite the boot structures */
	put32(h + 12, 0x8000 + HDR_OFF);
	put32(h + 16, 0x8000);
	put32(h + 20, 0x8000 + TEXT_SIZE);
	put32(h + 24, 0);
	put32(h + 28, 0x8000);
	expect_refusal(f, "not in guest RAM above 1 MiB");
	/* bss past the end of RAM */
	build_aout(f);
	put32(h + 24, 0xbfffffff);
	expect_refusal(f, "not in guest RAM above 1 MiB");
	/* modules that do not fit */
	build_aout(f);
	static uint8_t dummy[1];
	f->in.initrd[1] = (struct boot_blob){.name = "huge", .data = dummy, .size = 63 << 20};
	expect_refusal(f, "module huge");
}

static void test_refuse_elf_problems(void **state)
{
	struct fixture *f = *state;

	build_elf(f);
	put32(f->img + 52 + 12, 0x1000); /* segment below 1 MiB */
	expect_refusal(f, "not in guest RAM above 1 MiB");
	build_elf(f);
	put16(f->img + 18, 62); /* machine x86-64 in a 32-bit file */
	expect_refusal(f, "not i386");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_find_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_aout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_aout_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_aout_header_not_at_file_start, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_load_elf, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_aout_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_placement, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refuse_elf_problems, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
