/* bzImage parsing and loading: a synthetic image with a protocol 2.15
 * setup header, loaded into a 64 MiB guest; then each corruption. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "boot/bzimage.h"

#define SETUP_SECTS 3
#define KERNEL_OFF ((SETUP_SECTS + 1) * 512)
#define KERNEL_SIZE 8192
#define IMG_SIZE (KERNEL_OFF + KERNEL_SIZE)

struct fixture {
	struct guest_mem mem;
	struct e820_map map;
	uint8_t img[IMG_SIZE];
	struct boot_input in;
	uint8_t initrd[2][6000];
};

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void build(uint8_t *img)
{
	memset(img, 0, IMG_SIZE);
	img[BZ_SETUP_SECTS] = SETUP_SECTS;
	put16(img + 0x1fa, 0xffff); /* vid_mode: normal, to see the header copied */
	put32(img + BZ_SYSSIZE, KERNEL_SIZE / 16);
	put16(img + BZ_BOOT_FLAG, 0xaa55);
	img[BZ_JUMP] = 0xeb;
	img[BZ_JUMP + 1] = 0x6a; /* header ends at 0x26c */
	memcpy(img + BZ_HEADER, "HdrS", 4);
	put16(img + BZ_VERSION, 0x020f);
	img[BZ_LOADFLAGS] = BZ_LOADED_HIGH;
	put32(img + BZ_INITRD_ADDR_MAX, 0x7fffffff);
	put32(img + BZ_KERNEL_ALIGNMENT, 0x200000);
	img[BZ_RELOCATABLE] = 1;
	put16(img + BZ_XLOADFLAGS, 0x7f);
	put32(img + BZ_CMDLINE_SIZE, 2047);
	put64(img + BZ_PREF_ADDRESS, 0x1000000);
	put32(img + BZ_INIT_SIZE, 0x800000);
	for (size_t i = 0; i < KERNEL_SIZE; i++)
		img[KERNEL_OFF + i] = (uint8_t)(i * 7);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || guest_mem_init(&f->mem, 64 << 20))
		return -1;
	e820_build(&f->map, &f->mem);
	build(f->img);
	memset(f->initrd[0], 0x11, sizeof(f->initrd[0]));
	memset(f->initrd[1], 0x22, sizeof(f->initrd[1]));
	f->in = (struct boot_input){
	    .kernel = {.name = "bzImage", .data = f->img, .size = IMG_SIZE},
	    .initrd = {{.name = "i0", .data = f->initrd[0], .size = sizeof(f->initrd[0])},
		       {.name = "i1", .data = f->initrd[1], .size = sizeof(f->initrd[1])}},
	    .ninitrd = 2,
	    .cmdline = "console=ttyS0 panic=-1",
	    .e820 = &f->map,
	    .rsdp_addr = LAYOUT_RSDP_ADDR,
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

static void expect_parse_refusal(const uint8_t *img, size_t size, const char *needle)
{
	struct bzimage_info info;
	struct errmsg err = {{0}};

	assert_int_not_equal(bzimage_parse(img, size, &info, &err), 0);
	if (!strstr(err.text, needle))
		fail_msg("message '%s' lacks '%s'", err.text, needle);
}

static void expect_load_refusal(struct fixture *f, const char *needle)
{
	struct cpu_state s;
	struct errmsg err = {{0}};

	assert_int_not_equal(bzimage_load(&f->mem, &f->in, &s, &err), 0);
	if (!strstr(err.text, needle))
		fail_msg("message '%s' lacks '%s'", err.text, needle);
}

static void test_parse_valid(void **state)
{
	struct fixture *f = *state;
	struct bzimage_info info;
	struct errmsg err = {{0}};

	assert_int_equal(bzimage_parse(f->img, IMG_SIZE, &info, &err), 0);
	assert_int_equal(info.version, 0x020f);
	assert_int_equal(info.kernel_offset, KERNEL_OFF);
	assert_int_equal(info.kernel_size, KERNEL_SIZE);
	assert_int_equal(info.header_end, 0x26c);
	assert_int_equal(info.cmdline_size, 2047);
	assert_int_equal(info.init_size, 0x800000);
	assert_int_equal(info.pref_address, 0x1000000);
	assert_int_equal(info.initrd_addr_max, 0x7fffffff);
}

static void test_parse_setup_sects_zero_means_four(void **state)
{
	struct fixture *f = *state;
	struct bzimage_info info;
	struct errmsg err = {{0}};

	f->img[BZ_SETUP_SECTS] = 0;
	put32(f->img + BZ_SYSSIZE, 0);
	assert_int_equal(bzimage_parse(f->img, IMG_SIZE, &info, &err), 0);
	assert_int_equal(info.kernel_offset, 5 * 512);
	assert_int_equal(info.kernel_size, IMG_SIZE - 5 * 512);
}

static void test_parse_initrd_addr_max_default(void **state)
{
	struct fixture *f = *state;
	struct bzimage_info info;
	struct errmsg err = {{0}};

	put32(f->img + BZ_INITRD_ADDR_MAX, 0);
	assert_int_equal(bzimage_parse(f->img, IMG_SIZE, &info, &err), 0);
	assert_int_equal(info.initrd_addr_max, 0x37ffffff);
}

static void test_parse_refusals(void **state)
{
	struct fixture *f = *state;
	uint8_t *img = f->img;

	expect_parse_refusal(img, 0x200, "too short");
	expect_parse_refusal(img, 0, "too short");
	put16(img + BZ_BOOT_FLAG, 0x55aa);
	expect_parse_refusal(img, IMG_SIZE, "0xAA55");
	build(img);
	memcpy(img + BZ_HEADER, "HdrZ", 4);
	expect_parse_refusal(img, IMG_SIZE, "HdrS");
	build(img);
	put16(img + BZ_VERSION, 0x0204);
	expect_parse_refusal(img, IMG_SIZE, "bzImage: setup header version 2.04 is older than 2.06");
	put16(img + BZ_VERSION, 0x020a);
	expect_parse_refusal(img, IMG_SIZE, "2.10 cannot advertise a 64-bit entry");
	build(img);
	img[BZ_JUMP + 1] = 0x20; /* header ends before init_size */
	expect_parse_refusal(img, IMG_SIZE, "setup header ends");
	build(img);
	img[BZ_SETUP_SECTS] = 40; /* setup runs past the end of the file */
	expect_parse_refusal(img, IMG_SIZE, "no protected-mode code");
	expect_parse_refusal(img, KERNEL_OFF, "no protected-mode code");
	build(img);
	expect_parse_refusal(img, KERNEL_OFF, "no protected-mode code");
	build(img);
	expect_parse_refusal(img, IMG_SIZE - 16, "truncated");
	build(img);
	img[BZ_LOADFLAGS] = 0;
	expect_parse_refusal(img, IMG_SIZE, "LOADED_HIGH");
	build(img);
	put16(img + BZ_XLOADFLAGS, 0x7e);
	expect_parse_refusal(img, IMG_SIZE, "XLF_KERNEL_64");
}

static void test_load(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};

	assert_int_equal(bzimage_load(&f->mem, &f->in, &s, &err), 0);
	const uint8_t *zp = guest_mem_ptr(&f->mem, LAYOUT_ZERO_PAGE_ADDR, BP_SIZE);

	/* header copied from the image */
	assert_memory_equal(zp + BZ_HEADER, "HdrS", 4);
	assert_int_equal(get16(zp + BZ_VERSION), 0x020f);
	assert_int_equal(get16(zp + 0x1fa), 0xffff);
	assert_int_equal(zp[BZ_SETUP_SECTS], SETUP_SECTS);
	assert_int_equal(get32(zp + BZ_INIT_SIZE), 0x800000);
	assert_int_equal(zp[0x26c], 0); /* nothing past the header */
	/* loader fields */
	assert_int_equal(zp[BZ_TYPE_OF_LOADER], 0xff);
	assert_int_equal(zp[BZ_LOADFLAGS], BZ_LOADED_HIGH | BZ_CAN_USE_HEAP);
	assert_int_equal(get16(zp + BZ_HEAP_END_PTR), 0xfe00);
	assert_int_equal(get32(zp + BZ_CMD_LINE_PTR), LAYOUT_CMDLINE_ADDR);
	assert_string_equal((const char *)guest_mem_ptr(&f->mem, LAYOUT_CMDLINE_ADDR, 1),
			    "console=ttyS0 panic=-1");
	assert_int_equal(get64(zp + BP_ACPI_RSDP_ADDR), LAYOUT_RSDP_ADDR);

	/* initrd: both files, page-aligned, as high as possible, above the
	 * kernel's claimed memory (16 MiB + init_size) */
	uint32_t rd = get32(zp + BZ_RAMDISK_IMAGE), rdsize = get32(zp + BZ_RAMDISK_SIZE);
	assert_int_equal(rdsize, 12000);
	assert_int_equal(rd & 0xfff, 0);
	assert_true(rd >= 0x1000000 + 0x800000);
	assert_true(rd + rdsize <= 64 << 20);
	assert_true(rd + rdsize > (64 << 20) - 0x1000);
	assert_int_equal(get32(zp + BP_EXT_RAMDISK_IMAGE), 0);
	assert_int_equal(get32(zp + BP_EXT_RAMDISK_SIZE), 0);
	assert_memory_equal(guest_mem_ptr(&f->mem, rd, 1), f->initrd[0], 6000);
	assert_memory_equal(guest_mem_ptr(&f->mem, rd + 6000, 1), f->initrd[1], 6000);

	/* e820 */
	assert_int_equal(zp[BP_E820_ENTRIES], f->map.count);
	for (unsigned i = 0; i < f->map.count; i++) {
		const uint8_t *e = zp + BP_E820_TABLE + i * 20;
		assert_int_equal(get64(e), f->map.entry[i].addr);
		assert_int_equal(get64(e + 8), f->map.entry[i].size);
		assert_int_equal(get32(e + 16), f->map.entry[i].type);
	}
	assert_int_equal(get64(zp + BP_E820_TABLE + f->map.count * 20), 0);

	/* kernel at 1 MiB */
	assert_memory_equal(guest_mem_ptr(&f->mem, BZ_LOAD_ADDR, 1), f->img + KERNEL_OFF,
			    KERNEL_SIZE);

	/* entry */
	assert_int_equal(s.rip, 0x100200);
	assert_int_equal(s.gpr[GPR_RSI], LAYOUT_ZERO_PAGE_ADDR);
	assert_int_equal(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
	assert_int_equal(s.cr3, LAYOUT_PML4_ADDR);
	assert_int_equal(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
	assert_int_equal(s.seg[SEG_CS].selector, 0x10);
	assert_int_equal(s.seg[SEG_CS].l, 1);
	assert_int_equal(s.seg[SEG_DS].selector, 0x18);
}

static void test_load_old_protocol_has_no_rsdp_field(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};

	put16(f->img + BZ_VERSION, 0x020d);
	assert_int_equal(bzimage_load(&f->mem, &f->in, &s, &err), 0);
	const uint8_t *zp = guest_mem_ptr(&f->mem, LAYOUT_ZERO_PAGE_ADDR, BP_SIZE);
	assert_int_equal(get64(zp + BP_ACPI_RSDP_ADDR), 0);
}

static void test_load_without_initrd_or_cmdline(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};

	f->in.ninitrd = 0;
	f->in.cmdline = NULL;
	assert_int_equal(bzimage_load(&f->mem, &f->in, &s, &err), 0);
	const uint8_t *zp = guest_mem_ptr(&f->mem, LAYOUT_ZERO_PAGE_ADDR, BP_SIZE);
	assert_int_equal(get32(zp + BZ_RAMDISK_IMAGE), 0);
	assert_int_equal(get32(zp + BZ_RAMDISK_SIZE), 0);
	assert_string_equal((const char *)guest_mem_ptr(&f->mem, LAYOUT_CMDLINE_ADDR, 1), "");
}

static void test_load_respects_initrd_addr_max(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};

	put32(f->img + BZ_INITRD_ADDR_MAX, 0x1ffffff);
	assert_int_equal(bzimage_load(&f->mem, &f->in, &s, &err), 0);
	const uint8_t *zp = guest_mem_ptr(&f->mem, LAYOUT_ZERO_PAGE_ADDR, BP_SIZE);
	uint32_t rd = get32(zp + BZ_RAMDISK_IMAGE);
	assert_true(rd + 12000 <= 0x2000000);
	assert_true(rd + 12000 > 0x2000000 - 0x1000);
	assert_true(rd >= 0x1800000);
}

static void test_load_refusals(void **state)
{
	struct fixture *f = *state;
	static uint8_t dummy[1];

	/* initrd does not fit below initrd_addr_max above the kernel */
	put32(f->img + BZ_INITRD_ADDR_MAX, 0x1800fff);
	expect_load_refusal(f, "initrd (12000 bytes) does not fit");
	build(f->img);
	f->in.initrd[0] = (struct boot_blob){.name = "huge", .data = dummy, .size = 60 << 20};
	expect_load_refusal(f, "does not fit");
	f->in.ninitrd = 0;
	/* the kernel claims more memory than the guest has */
	put32(f->img + BZ_INIT_SIZE, 0x4000000);
	expect_load_refusal(f, "kernel needs memory up to 0x5000000");
	build(f->img);
	/* command line limits: the kernel's and the layout's */
	put32(f->img + BZ_CMDLINE_SIZE, 10);
	expect_load_refusal(f, "longer than the kernel's limit of 10 bytes");
	build(f->img);
	put32(f->img + BZ_CMDLINE_SIZE, 0xffffffff);
	char line[LAYOUT_CMDLINE_MAX + 1];
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = 0;
	f->in.cmdline = line;
	expect_load_refusal(f, "limit of 65535 bytes");
	f->in.cmdline = NULL;
	/* corrupt image */
	f->img[BZ_LOADFLAGS] = 0;
	expect_load_refusal(f, "LOADED_HIGH");
	f->in.e820 = NULL;
	expect_load_refusal(f, "no memory map");
}

static void test_load_non_relocatable_uses_pref_address(void **state)
{
	struct fixture *f = *state;
	struct cpu_state s;
	struct errmsg err = {{0}};

	/* A fixed kernel at 32 MiB with 16 MiB init_size needs RAM to 48 MiB:
	 * the initrd must land above that. */
	f->img[BZ_RELOCATABLE] = 0;
	put64(f->img + BZ_PREF_ADDRESS, 0x2000000);
	put32(f->img + BZ_INIT_SIZE, 0x1000000);
	put32(f->img + BZ_INITRD_ADDR_MAX, 0x3003fff);
	assert_int_equal(bzimage_load(&f->mem, &f->in, &s, &err), 0);
	const uint8_t *zp = guest_mem_ptr(&f->mem, LAYOUT_ZERO_PAGE_ADDR, BP_SIZE);
	assert_true(get32(zp + BZ_RAMDISK_IMAGE) >= 0x3000000);
	put32(f->img + BZ_INITRD_ADDR_MAX, 0x3001fff);
	expect_load_refusal(f, "does not fit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_parse_valid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse_setup_sects_zero_means_four, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_parse_initrd_addr_max_default, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_old_protocol_has_no_rsdp_field, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_load_without_initrd_or_cmdline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_respects_initrd_addr_max, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_non_relocatable_uses_pref_address, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
