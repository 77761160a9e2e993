/* Format detection, dispatch, file reading and the entry-state builders
 * (GDT, page tables and segment state that KVM_SET_SREGS will receive). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "boot/boot.h"
#include "boot/bzimage.h"
#include "boot/elf.h"
#include "boot/multiboot.h"

#define IMG_CAP 0x3000

struct fixture {
	struct guest_mem mem;
	uint8_t img[IMG_CAP];
	size_t size;
	char dir[64];
};

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void build_bzimage(struct fixture *f)
{
	uint8_t *img = f->img;

	memset(img, 0, IMG_CAP);
	img[BZ_SETUP_SECTS] = 1;
	put16(img + BZ_BOOT_FLAG, 0xaa55);
	img[BZ_JUMP + 1] = 0x6a;
	memcpy(img + BZ_HEADER, "HdrS", 4);
	put16(img + BZ_VERSION, 0x020f);
	img[BZ_LOADFLAGS] = BZ_LOADED_HIGH;
	put16(img + BZ_XLOADFLAGS, 1);
	put32(img + BZ_CMDLINE_SIZE, 255);
	put32(img + BZ_INIT_SIZE, 0x100000);
	f->size = 0x2000;
}

/* A minimal ELF64 with one PT_LOAD at 16 MiB and, optionally, a PT_NOTE
 * with the PVH entry and/or a multiboot header inside the segment. */
static void build_elf(struct fixture *f, int pvh_note, int mb_header)
{
	uint8_t *h = f->img;

	memset(h, 0, IMG_CAP);
	memcpy(h, "\177ELF", 4);
	h[4] = 2;
	h[5] = 1;
	h[6] = 1;
	put16(h + 16, 2);
	put16(h + 18, 62);
	put64(h + 24, 0x1000000);
	put64(h + 32, 64);
	put16(h + 54, 56);
	put16(h + 56, pvh_note ? 2 : 1);
	uint8_t *ph = h + 64;
	put32(ph, 1);
	put64(ph + 8, 0x1000);
	put64(ph + 24, 0x1000000);
	put64(ph + 32, 0x1000);
	put64(ph + 40, 0x1000);
	if (pvh_note) {
		ph += 56;
		put32(ph, 4);
		put64(ph + 8, 0x200);
		put64(ph + 32, 24);
		put64(ph + 48, 4);
		put32(h + 0x200, 4);
		put32(h + 0x204, 8);
		put32(h + 0x208, XEN_ELFNOTE_PHYS32_ENTRY);
		memcpy(h + 0x20c, "Xen", 4);
		put64(h + 0x210, 0x1000100);
	}
	if (mb_header) {
		put32(h + 0x1000, MB_HEADER_MAGIC);
		put32(h + 0x1004, 3);
		put32(h + 0x1008, 0u - MB_HEADER_MAGIC - 3);
	}
	f->size = 0x2000;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || guest_mem_init(&f->mem, 64 << 20))
		return -1;
	strcpy(f->dir, "/tmp/shrike-test-boot-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	static const char *const files[] = {"empty", "big"};
	char path[128];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
		unlink(path);
	}
	rmdir(f->dir);
	guest_mem_destroy(&f->mem);
	free(f);
	return 0;
}

static void test_detect(void **state)
{
	struct fixture *f = *state;

	build_bzimage(f);
	assert_int_equal(boot_detect(f->img, f->size), BOOT_FORMAT_BZIMAGE);
	/* magic only: a too-old header is still "a bzImage", refused later */
	put16(f->img + BZ_VERSION, 0x0204);
	assert_int_equal(boot_detect(f->img, f->size), BOOT_FORMAT_BZIMAGE);
	put16(f->img + BZ_BOOT_FLAG, 0);
	assert_int_equal(boot_detect(f->img, f->size), BOOT_FORMAT_UNKNOWN);

	build_elf(f, 1, 0);
	assert_int_equal(boot_detect(f->img, f->size), BOOT_FORMAT_PVH);
	build_elf(f, 1, 1); /* PVH wins over multiboot */
	assert_int_equal(boot_detect(f->img, f->size), BOOT_FORMAT_PVH);
	build_elf(f, 0, 1);
	assert_int_equal(boot_detect(f->img, f->size), BOOT_FORMAT_MULTIBOOT);
	build_elf(f, 0, 0);
	assert_int_equal(boot_detect(f->img, f->size), BOOT_FORMAT_UNKNOWN);

	assert_int_equal(boot_detect(f->img, 0), BOOT_FORMAT_UNKNOWN);
	assert_int_equal(boot_detect(NULL, 0), BOOT_FORMAT_UNKNOWN);
	assert_int_equal(boot_detect(f->img, 3), BOOT_FORMAT_UNKNOWN);
}

static void test_format_names(void **state)
{
	(void)state;
	assert_string_equal(boot_format_name(BOOT_FORMAT_BZIMAGE), "bzImage");
	assert_string_equal(boot_format_name(BOOT_FORMAT_PVH), "ELF (PVH)");
	assert_string_equal(boot_format_name(BOOT_FORMAT_MULTIBOOT), "multiboot");
	assert_string_equal(boot_format_name(BOOT_FORMAT_UNKNOWN), "unknown");
	assert_string_equal(boot_format_name((enum boot_format)42), "unknown");
}

static int load(struct fixture *f, const char *name, struct cpu_state *s, struct errmsg *err)
{
	struct boot_input in = {.kernel = {.name = name, .data = f->img, .size = f->size}};
	return boot_load(&f->mem, &in, s, err); /* e820 NULL: built from mem */
}

static void test_load_dispatch(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};

	build_bzimage(f);
	assert_int_equal(load(f, "bz", &s, &err), 0);
	assert_int_equal(s.rip, 0x100200);
	/* the zero page carries the e820 map boot_load built itself */
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&f->mem, LAYOUT_ZERO_PAGE_ADDR + 0x1e8, 1),
			 4);

	build_elf(f, 1, 1);
	assert_int_equal(load(f, "vmlinux", &s, &err), 0);
	assert_int_equal(s.rip, 0x1000100);

	build_elf(f, 0, 1);
	assert_int_equal(load(f, "mb", &s, &err), 0);
	assert_int_equal(s.rip, 0x1000000);
	assert_int_equal(s.gpr[GPR_RAX], MB_BOOT_MAGIC);
}

static void expect_load_message(struct fixture *f, const char *name, const char *msg)
{
	struct cpu_state s;
	struct errmsg err = {{0}};

	assert_int_not_equal(load(f, name, &s, &err), 0);
	assert_string_equal(err.text, msg);
}

static void test_load_messages(void **state)
{
	struct fixture *f = *state;

	memset(f->img, 0x42, IMG_CAP);
	f->size = 100;
	expect_load_message(f, "kernel.bin",
			    "kernel.bin: not a bzImage, ELF with a PVH note, or multiboot kernel");
	build_bzimage(f);
	put16(f->img + BZ_VERSION, 0x0204);
	expect_load_message(f, "bz",
			    "bz: bzImage: setup header version 2.04 is older than 2.06");
	build_elf(f, 0, 0);
	expect_load_message(f, "vmlinux",
			    "vmlinux: ELF file has neither a Xen PVH note "
			    "(XEN_ELFNOTE_PHYS32_ENTRY, CONFIG_PVH) nor a multiboot header");
	put16(f->img + 18, 40);
	expect_load_message(f, "arm", "arm: ELF64: machine 40 is not x86-64");
	f->size = 0;
	expect_load_message(f, "empty", "empty: empty kernel image");
}

static void test_load_too_many_initrds(void **state)
{
	struct fixture *f = *state;
	struct boot_input in = {.kernel = {.data = f->img, .size = 1},
				.ninitrd = BOOT_MAX_INITRDS + 1};
	struct cpu_state s;
	struct errmsg err = {{0}};

	assert_int_equal(boot_load(&f->mem, &in, &s, &err), -EINVAL);
	assert_non_null(strstr(err.text, "initrds"));
}

static void write_file(const char *path, const void *data, size_t size)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	if (size)
		assert_int_equal(fwrite(data, 1, size, fp), size);
	fclose(fp);
}

static void test_blob_read(void **state)
{
	struct fixture *f = *state;
	struct boot_blob b;
	struct errmsg err = {{0}};
	char path[128], msg[256];

	snprintf(path, sizeof(path), "%s/missing", f->dir);
	assert_int_equal(boot_blob_read(&b, path, 100, &err), -ENOENT);
	snprintf(msg, sizeof(msg), "cannot open %s: No such file or directory", path);
	assert_string_equal(err.text, msg);

	snprintf(path, sizeof(path), "%s/empty", f->dir);
	write_file(path, "", 0);
	assert_int_equal(boot_blob_read(&b, path, 100, &err), -EINVAL);
	snprintf(msg, sizeof(msg), "%s is empty", path);
	assert_string_equal(err.text, msg);

	snprintf(path, sizeof(path), "%s/big", f->dir);
	write_file(path, "0123456789", 10);
	assert_int_equal(boot_blob_read(&b, path, 9, &err), -EFBIG);
	snprintf(msg, sizeof(msg), "%s is larger than 9 bytes", path);
	assert_string_equal(err.text, msg);

	assert_int_equal(boot_blob_read(&b, path, 10, &err), 0);
	assert_int_equal(b.size, 10);
	assert_memory_equal(b.data, "0123456789", 10);
	assert_string_equal(b.name, path);
	boot_blob_free(&b);
	assert_null(b.data);
	assert_int_equal(b.size, 0);

	assert_int_equal(boot_blob_read(&b, f->dir, 100, &err), -EINVAL);
	assert_non_null(strstr(err.text, "is not a regular file"));
}

static void test_descriptor_encoding(void **state)
{
	(void)state;
	struct segment code64 = {.limit = 0xffffffff, .type = 11, .s = 1, .present = 1,
				 .l = 1, .g = 1};
	struct segment data = {.limit = 0xffffffff, .type = 3, .s = 1, .present = 1,
			       .db = 1, .g = 1};
	struct segment code32 = data;
	struct segment tss = {.base = 0x12345678, .limit = 0x67, .type = 11, .present = 1};

	code32.type = 11;
	assert_int_equal(boot_cpu_descriptor(&code64), 0x00af9b000000ffffULL);
	assert_int_equal(boot_cpu_descriptor(&data), 0x00cf93000000ffffULL);
	assert_int_equal(boot_cpu_descriptor(&code32), 0x00cf9b000000ffffULL);
	assert_int_equal(boot_cpu_descriptor(&tss), 0x12008b3456780067ULL);
}

static void check_common_segments(const struct cpu_state *s)
{
	for (int r = SEG_ES; r <= SEG_GS; r++) {
		if (r == SEG_CS)
			continue;
		assert_int_equal(s->seg[r].selector, 0x18);
		assert_int_equal(s->seg[r].type, 3);
		assert_int_equal(s->seg[r].s, 1);
		assert_int_equal(s->seg[r].present, 1);
		assert_int_equal(s->seg[r].limit, 0xffffffff);
		assert_int_equal(s->seg[r].base, 0);
		assert_int_equal(s->seg[r].unusable, 0);
	}
	assert_int_equal(s->seg[SEG_TR].type, 11);
	assert_int_equal(s->seg[SEG_TR].s, 0);
	assert_int_equal(s->seg[SEG_TR].present, 1);
	assert_int_equal(s->seg[SEG_TR].unusable, 0);
	assert_int_equal(s->seg[SEG_TR].selector, BOOT_CPU_SEL_TSS);
	assert_int_equal(s->seg[SEG_LDTR].unusable, 1);
	assert_int_equal(s->rflags, 2);
	assert_int_equal(s->gpr[GPR_RSP], LAYOUT_BOOT_STACK_TOP);
	assert_int_equal(s->gdt.base, LAYOUT_GDT_ADDR);
	assert_int_equal(s->gdt.limit, BOOT_CPU_GDT_SIZE - 1);
}

static void test_long_mode_state(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;

	assert_int_equal(boot_cpu_long_mode(&f->mem, &s), 0);
	check_common_segments(&s);
	assert_int_equal(s.seg[SEG_CS].selector, 0x10);
	assert_int_equal(s.seg[SEG_CS].l, 1);
	assert_int_equal(s.seg[SEG_CS].db, 0);
	assert_int_equal(s.cr0, CR0_PE | CR0_ET | CR0_NE | CR0_PG);
	assert_int_equal(s.cr4, CR4_PAE);
	assert_int_equal(s.efer, EFER_LME | EFER_LMA);
	assert_int_equal(s.cr3, LAYOUT_PML4_ADDR);

	const uint8_t *gdt = guest_mem_ptr(&f->mem, LAYOUT_GDT_ADDR, BOOT_CPU_GDT_SIZE);
	assert_int_equal(get64(gdt), 0);
	assert_int_equal(get64(gdt + 0x10), 0x00af9b000000ffffULL);
	assert_int_equal(get64(gdt + 0x18), 0x00cf93000000ffffULL);
	assert_int_equal(get64(gdt + 0x20), 0x00008b0000000067ULL);
	assert_int_equal(get64(gdt + 0x28), 0);

	/* identity map: PML4[0] -> PDPT -> PD[3][511] maps 4 GiB - 2 MiB */
	const uint8_t *pml4 = guest_mem_ptr(&f->mem, LAYOUT_PML4_ADDR, 0x1000);
	assert_int_equal(get64(pml4), LAYOUT_PDPT_ADDR | 3);
	assert_int_equal(get64(pml4 + 8), 0);
	const uint8_t *pdpt = guest_mem_ptr(&f->mem, LAYOUT_PDPT_ADDR, 0x1000);
	for (int i = 0; i < 4; i++)
		assert_int_equal(get64(pdpt + i * 8), (LAYOUT_PD_ADDR + i * 0x1000) | 3);
	assert_int_equal(get64(pdpt + 32), 0);
	const uint8_t *pd3 = guest_mem_ptr(&f->mem, LAYOUT_PD_ADDR + 0x3000, 0x1000);
	assert_int_equal(get64(pd3 + 511 * 8), 0xffe00000ULL | 0x83);
	const uint8_t *pd0 = guest_mem_ptr(&f->mem, LAYOUT_PD_ADDR, 0x1000);
	assert_int_equal(get64(pd0), 0x83);
	assert_int_equal(get64(pd0 + 8), 0x200000 | 0x83);
}

static void test_protected_mode_state(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;

	assert_int_equal(boot_cpu_protected_mode(&f->mem, &s), 0);
	check_common_segments(&s);
	assert_int_equal(s.seg[SEG_CS].selector, 0x10);
	assert_int_equal(s.seg[SEG_CS].type, 11);
	assert_int_equal(s.seg[SEG_CS].db, 1);
	assert_int_equal(s.seg[SEG_CS].g, 1);
	assert_int_equal(s.seg[SEG_CS].l, 0);
	assert_int_equal(s.seg[SEG_CS].limit, 0xffffffff);
	assert_int_equal(s.cr0, CR0_PE | CR0_ET | CR0_NE);
	assert_int_equal(s.cr4, 0);
	assert_int_equal(s.efer, 0);
	const uint8_t *gdt = guest_mem_ptr(&f->mem, LAYOUT_GDT_ADDR, BOOT_CPU_GDT_SIZE);
	assert_int_equal(get64(gdt + 0x10), 0x00cf9b000000ffffULL);
	assert_int_equal(get64(gdt + 0x18), 0x00cf93000000ffffULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_detect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_format_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_dispatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_too_many_initrds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blob_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_descriptor_encoding, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_mode_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_protected_mode_state, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
