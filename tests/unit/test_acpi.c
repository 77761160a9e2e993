/* ACPI tables (arch/x86/acpi.c) and the AML emitter (arch/x86/aml.c).
 * The tables are parsed back from guest memory with offsets taken from the
 * ACPI 6.4 specification, independently of the builder's own constants. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/aml.h"
#include "arch/x86/layout.h"
#include "vm/memory.h"

#define REGION_END (LAYOUT_ACPI_ADDR + LAYOUT_ACPI_SIZE)

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static int setup_mem(void **state)
{
	static struct guest_mem mem;
	assert_int_equal(guest_mem_init(&mem, 16ULL << 20), 0);
	*state = &mem;
	return 0;
}

static int teardown_mem(void **state)
{
	guest_mem_destroy(*state);
	return 0;
}

/* A table must lie wholly inside the ACPI region; returns its host bytes. */
static const uint8_t *table_at(const struct guest_mem *mem, uint64_t gpa, size_t min_len)
{
	assert_true(gpa >= LAYOUT_ACPI_ADDR && gpa < REGION_END);
	const uint8_t *t = guest_mem_ptr(mem, gpa, 8);
	assert_non_null(t);
	uint32_t len = rd32(t + 4);
	assert_true(len >= min_len);
	assert_true(len <= REGION_END - gpa);
	return guest_mem_ptr(mem, gpa, len);
}

/* An SDT: header sanity, checksum, OEM and creator ids. */
static const uint8_t *sdt_at(const struct guest_mem *mem, uint64_t gpa, const char *sig)
{
	const uint8_t *t = table_at(mem, gpa, 36);
	if (sig)
		assert_memory_equal(t, sig, 4);
	assert_int_equal(sum8(t, rd32(t + 4)), 0);
	assert_memory_equal(t + 10, "SHRIKE", 6);
	assert_memory_equal(t + 28, "SHRK", 4);
	return t;
}

static const uint8_t *rsdp(const struct guest_mem *mem)
{
	const uint8_t *p = guest_mem_ptr(mem, LAYOUT_RSDP_ADDR, 36);
	assert_non_null(p);
	assert_int_equal(LAYOUT_RSDP_ADDR % 16, 0);
	assert_true(LAYOUT_RSDP_ADDR >= 0xe0000 && LAYOUT_RSDP_ADDR + 36 <= 0x100000);
	assert_memory_equal(p, "RSD PTR ", 8);
	assert_int_equal(sum8(p, 20), 0);
	assert_int_equal(sum8(p, 36), 0);
	assert_int_equal(p[15], 2);
	assert_int_equal(rd32(p + 20), 36);
	assert_memory_equal(p + 9, "SHRIKE", 6);
	return p;
}

/* Finds a table by signature through the XSDT; NULL if absent. */
static const uint8_t *find_table(const struct guest_mem *mem, const char *sig)
{
	const uint8_t *x = sdt_at(mem, rd64(rsdp(mem) + 24), "XSDT");
	unsigned n = (rd32(x + 4) - 36) / 8;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *t = sdt_at(mem, rd64(x + 36 + 8 * i), NULL);
		if (memcmp(t, sig, 4) == 0)
			return t;
	}
	return NULL;
}

static void build(struct guest_mem *mem, unsigned ncpus)
{
	struct acpi_config cfg = {.ncpus = ncpus};
	struct errmsg err = {{0}};
	assert_int_equal(acpi_build(mem, &cfg, &err), 0);
}

static void test_rsdp_xsdt_rsdt(void **state)
{
	struct guest_mem *mem = *state;
	build(mem, 2);
	const uint8_t *p = rsdp(mem);

	const uint8_t *x = sdt_at(mem, rd64(p + 24), "XSDT");
	const uint8_t *r = sdt_at(mem, rd32(p + 16), "RSDT");
	unsigned n = (rd32(x + 4) - 36) / 8;
	assert_int_equal(rd32(x + 4), 36 + 8 * n);
	assert_int_equal(n, 2); /* FACP and APIC, no MCFG without ECAM */
	assert_int_equal(rd32(r + 4), 36 + 4 * n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(rd64(x + 36 + 8 * i), rd32(r + 36 + 4 * i));
		sdt_at(mem, rd64(x + 36 + 8 * i), NULL);
	}
	assert_non_null(find_table(mem, "FACP"));
	assert_non_null(find_table(mem, "APIC"));
	assert_null(find_table(mem, "MCFG"));
}

static void test_fadt(void **state)
{
	struct guest_mem *mem = *state;
	build(mem, 1);
	const uint8_t *f = find_table(mem, "FACP");
	assert_non_null(f);
	assert_int_equal(rd32(f + 4), 276);
	assert_int_equal(f[8], 6);
	assert_int_equal(rd16(f + 46), IRQ_ACPI_SCI);
	assert_int_equal(rd32(f + 48), 0); /* SMI_CMD: ACPI already enabled */
	assert_int_equal(rd32(f + 56), PORT_ACPI_PM1A_EVT);
	assert_int_equal(rd32(f + 64), PORT_ACPI_PM1A_CNT);
	assert_int_equal(rd32(f + 76), PORT_ACPI_PM_TMR);
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 4);
	assert_int_equal(rd32(f + 60), 0); /* no PM1b */
	assert_int_equal(rd32(f + 80), 0); /* no GPE0 */

	uint32_t flags = rd32(f + 112);
	assert_true(flags & (1u << 0));     /* WBINVD */
	assert_true(flags & (1u << 2));     /* PROC_C1 */
	assert_true(flags & (1u << 5));     /* SLP_BUTTON */
	assert_false(flags & (1u << 8));    /* TMR_VAL_EXT: 24-bit timer */
	assert_false(flags & (1u << 10));   /* RESET_REG_SUP */
	assert_false(flags & (1u << 20));   /* HW_REDUCED_ACPI */
	assert_true(rd16(f + 109) & 0x2);   /* 8042 present */
	assert_int_equal(f[116], 0);        /* RESET_REG unused */

	/* DSDT: both pointers, equal. */
	uint64_t dsdt = rd64(f + 140);
	assert_int_equal(rd32(f + 40), dsdt);
	sdt_at(mem, dsdt, "DSDT");

	/* FACS: 32-bit pointer only (the two are mutually exclusive). */
	uint32_t facs = rd32(f + 36);
	assert_int_equal(rd64(f + 132), 0);
	assert_int_equal(facs % 64, 0);
	const uint8_t *fc = table_at(mem, facs, 64);
	assert_memory_equal(fc, "FACS", 4);
	assert_int_equal(rd32(fc + 4), 64);

	/* X_ blocks: system I/O, widths matching the lengths. */
	static const struct {
		unsigned off;
		unsigned port;
		unsigned bits;
	} gas[] = {{148, PORT_ACPI_PM1A_EVT, 32}, {172, PORT_ACPI_PM1A_CNT, 16}, {208, PORT_ACPI_PM_TMR, 32}};
	for (unsigned i = 0; i < sizeof(gas) / sizeof(gas[0]); i++) {
		assert_int_equal(f[gas[i].off], 1);
		assert_int_equal(f[gas[i].off + 1], gas[i].bits);
		assert_int_equal(f[gas[i].off + 2], 0);
		assert_int_equal(rd64(f + gas[i].off + 4), gas[i].port);
	}
	assert_int_equal(f[160], 0); /* X_PM1b_EVT_BLK empty */
}

static void check_madt(struct guest_mem *mem, unsigned ncpus)
{
	build(mem, ncpus);
	const uint8_t *m = find_table(mem, "APIC");
	assert_non_null(m);
	assert_int_equal(rd32(m + 36), LAYOUT_LAPIC_ADDR);
	assert_int_equal(rd32(m + 40) & 1, 1);

	uint32_t len = rd32(m + 4);
	unsigned lapics = 0, ioapics = 0, nmis = 0, isos = 0;
	for (uint32_t off = 44; off < len;) {
		assert_true(len - off >= 2);
		uint8_t type = m[off], elen = m[off + 1];
		assert_true(elen >= 2 && elen <= len - off);
		const uint8_t *e = m + off;
		switch (type) {
		case 0:
			assert_int_equal(elen, 8);
			assert_int_equal(e[2], lapics); /* UID */
			assert_int_equal(e[3], lapics); /* APIC ID */
			assert_int_equal(rd32(e + 4) & 1, 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(elen, 12);
			assert_int_equal(rd32(e + 4), LAYOUT_IOAPIC_ADDR);
			assert_int_equal(rd32(e + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(elen, 10);
			assert_int_equal(e[2], 0);
			if (e[3] == 0) {
				assert_int_equal(rd32(e + 4), 2);
				assert_int_equal(rd16(e + 8), 0x5);
			} else {
				assert_int_equal(e[3], 9);
				assert_int_equal(rd32(e + 4), 9);
				assert_int_equal(rd16(e + 8), 0xd);
			}
			isos++;
			break;
		case 4:
			assert_int_equal(elen, 6);
			assert_int_equal(e[2], 0xff);
			assert_int_equal(e[5], 1);
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", type);
		}
		off += elen;
	}
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 2);
	assert_int_equal(nmis, 1);
}

static void test_madt_1(void **state) { check_madt(*state, 1); }
static void test_madt_2(void **state) { check_madt(*state, 2); }
static void test_madt_4(void **state) { check_madt(*state, 4); }
static void test_madt_255(void **state) { check_madt(*state, 255); }

/* Shrinking after a large build leaves no stale entries. */
static void test_rebuild(void **state)
{
	check_madt(*state, 255);
	check_madt(*state, 3);
}

static const uint8_t *dsdt(const struct guest_mem *mem, uint32_t *len)
{
	const uint8_t *f = find_table(mem, "FACP");
	const uint8_t *d = sdt_at(mem, rd64(f + 140), "DSDT");
	*len = rd32(d + 4);
	return d;
}

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	return memmem(hay, n, needle, m) != NULL;
}

static void test_dsdt(void **state)
{
	struct guest_mem *mem = *state;
	build(mem, 1);
	uint32_t len;
	const uint8_t *d = dsdt(mem, &len);
	assert_int_equal(d[8], 2);

	/* Name(\_S5_, Package(4){5, 5, 0, 0}) */
	static const uint8_t s5[] = {0x08, '\\', '_', 'S', '5', '_', 0x12, 0x08, 0x04,
				     0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00};
	assert_true(contains(d + 36, len - 36, s5, sizeof(s5)));
	/* Scope(\_SB_) ... Device(COM1) */
	static const uint8_t sb[] = {'\\', '_', 'S', 'B', '_'};
	static const uint8_t dev[] = {'C', 'O', 'M', '1', 0x08, '_', 'H', 'I', 'D', 0x0c,
				      0x41, 0xd0, 0x05, 0x01, 0x08, '_', 'U', 'I', 'D', 0x01};
	assert_true(contains(d + 36, len - 36, sb, sizeof(sb)));
	assert_true(contains(d + 36, len - 36, dev, sizeof(dev)));
	assert_false(contains(d + 36, len - 36, (const uint8_t *)"ECAM", 4));

	/* Device(KBD_){_HID PNP0303, _CRS IO 0x60, IO 0x64, IRQ 1} and
	 * Device(RTC_){_HID PNP0B00, _CRS IO 0x70-0x71, IRQ 8} */
	static const uint8_t kbd[] = {'K', 'B', 'D', '_', 0x08, '_', 'H', 'I', 'D', 0x0c,
				      0x41, 0xd0, 0x03, 0x03, 0x08, '_', 'C', 'R', 'S', 0x11};
	static const uint8_t kbd_crs[] = {0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01,
					  0x47, 0x01, 0x64, 0x00, 0x64, 0x00, 0x01, 0x01,
					  0x22, 0x02, 0x00, 0x79, 0x00};
	static const uint8_t rtc[] = {'R', 'T', 'C', '_', 0x08, '_', 'H', 'I', 'D', 0x0c,
				      0x41, 0xd0, 0x0b, 0x00};
	static const uint8_t rtc_crs[] = {0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02,
					  0x22, 0x00, 0x01, 0x79, 0x00};
	assert_true(contains(d + 36, len - 36, kbd, sizeof(kbd)));
	assert_true(contains(d + 36, len - 36, kbd_crs, sizeof(kbd_crs)));
	assert_true(contains(d + 36, len - 36, rtc, sizeof(rtc)));
	assert_true(contains(d + 36, len - 36, rtc_crs, sizeof(rtc_crs)));
}

static void test_mcfg(void **state)
{
	struct guest_mem *mem = *state;
	struct acpi_config cfg = {.ncpus = 2,
				  .ecam = {.enabled = true,
					   .base = LAYOUT_ECAM_ADDR,
					   .segment = 0,
					   .bus_start = 0,
					   .bus_end = 255}};
	struct errmsg err = {{0}};
	assert_int_equal(acpi_build(mem, &cfg, &err), 0);
	const uint8_t *m = find_table(mem, "MCFG");
	assert_non_null(m);
	assert_int_equal(rd32(m + 4), 60);
	assert_int_equal(rd64(m + 44), LAYOUT_ECAM_ADDR);
	assert_int_equal(rd16(m + 52), 0);
	assert_int_equal(m[54], 0);
	assert_int_equal(m[55], 255);

	/* The ECAM window is reserved by a PNP0C02 device with Memory32Fixed. */
	uint32_t len;
	const uint8_t *d = dsdt(mem, &len);
	static const uint8_t pnp0c02[] = {0x0c, 0x41, 0xd0, 0x0c, 0x02};
	static const uint8_t mem32[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0,
					0x00, 0x00, 0x00, 0x10, 0x79, 0x00};
	assert_true(contains(d + 36, len - 36, pnp0c02, sizeof(pnp0c02)));
	assert_true(contains(d + 36, len - 36, mem32, sizeof(mem32)));

	/* The root bridge PNP0A08 with the bus range, the BAR window and _PRT. */
	static const uint8_t pnp0a08[] = {0x0c, 0x41, 0xd0, 0x0a, 0x08};
	static const uint8_t buses[] = {0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00,
					0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01};
	static const uint8_t window[] = {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0,
					 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf};
	assert_true(contains(d + 36, len - 36, pnp0a08, sizeof(pnp0a08)));
	assert_true(contains(d + 36, len - 36, buses, sizeof(buses)));
	assert_true(contains(d + 36, len - 36, window, sizeof(window)));
	assert_true(contains(d + 36, len - 36, (const uint8_t *)"_PRT", 4));
}

static void test_bad_config(void **state)
{
	struct guest_mem *mem = *state;
	struct errmsg err = {{0}};
	struct acpi_config cfg = {.ncpus = 0};
	assert_int_equal(acpi_build(mem, &cfg, &err), -EINVAL);
	assert_true(strlen(err.text) > 0);
	cfg.ncpus = 256;
	err.text[0] = 0;
	assert_int_equal(acpi_build(mem, &cfg, &err), -EINVAL);
	assert_true(strlen(err.text) > 0);
	cfg.ncpus = 1;
	assert_int_equal(acpi_build(mem, &cfg, NULL), 0); /* err may be NULL */

	struct acpi_ecam bad[] = {
	    {.enabled = true, .base = LAYOUT_ECAM_ADDR + 4096, .bus_end = 1},
	    {.enabled = true, .base = LAYOUT_ECAM_ADDR, .bus_start = 2, .bus_end = 1},
	    {.enabled = true, .base = LAYOUT_4G, .bus_end = 1},
	    {.enabled = true, .base = 0xfff00000, .bus_end = 1},
	    {.enabled = true, .base = ~0ULL << 20, .bus_end = 255},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.ecam = bad[i];
		assert_int_equal(acpi_build(mem, &cfg, &err), -EINVAL);
	}
}

/* Nothing outside the region is touched. */
static void test_region_bounds(void **state)
{
	struct guest_mem *mem = *state;
	uint8_t *before = guest_mem_ptr(mem, LAYOUT_ACPI_ADDR - 16, 16);
	uint8_t *after = guest_mem_ptr(mem, REGION_END, 16);
	memset(before, 0xa5, 16);
	memset(after, 0x5a, 16);
	struct acpi_config cfg = {.ncpus = 255,
				  .ecam = {.enabled = true, .base = LAYOUT_ECAM_ADDR, .bus_end = 255}};
	assert_int_equal(acpi_build(mem, &cfg, NULL), 0);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(before[i], 0xa5);
		assert_int_equal(after[i], 0x5a);
	}
	/* Every table, including the DSDT and FACS, was checked by table_at(). */
	find_table(mem, "MCFG");
	uint32_t len;
	dsdt(mem, &len);
}

static void test_no_memory(void **state)
{
	(void)state;
	struct guest_mem empty = {0};
	struct errmsg err = {{0}};
	struct acpi_config cfg = {.ncpus = 1};
	assert_int_equal(acpi_build(&empty, &cfg, &err), -EFAULT);
}

/* --- AML emitter --- */

static void test_aml_integers(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct aml a;
	size_t len;
	aml_init(&a, buf, sizeof(buf));
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 5);
	aml_integer(&a, 0x1234);
	aml_integer(&a, 0x12345678);
	aml_integer(&a, 0x1122334455667788ULL);
	assert_int_equal(aml_finish(&a, &len), 0);
	static const uint8_t want[] = {0x00, 0x01, 0x0a, 0x05, 0x0b, 0x34, 0x12, 0x0c, 0x78,
				       0x56, 0x34, 0x12, 0x0e, 0x88, 0x77, 0x66, 0x55, 0x44,
				       0x33, 0x22, 0x11};
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_aml_names(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct aml a;
	size_t len;
	aml_init(&a, buf, sizeof(buf));
	aml_name_string(&a, "_S5");
	aml_name_string(&a, "\\_SB.PCI0");
	aml_name_string(&a, "A.B.C");
	assert_int_equal(aml_finish(&a, &len), 0);
	static const uint8_t want[] = {'_', 'S', '5', '_', '\\', 0x2e, '_', 'S', 'B', '_', 'P',
				       'C', 'I', '0', 0x2f, 3, 'A', '_', '_', '_', 'B', '_',
				       '_', '_', 'C', '_', '_', '_'};
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	static const char *const bad[] = {"", "abc", "TOOLONG", "1ABC", "A..B", "A.", "\\", "A-B"};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_name_string(&a, bad[i]);
		assert_int_equal(aml_finish(&a, &len), -EINVAL);
	}
}

static void test_aml_eisaid(void **state)
{
	(void)state;
	uint8_t buf[16];
	struct aml a;
	size_t len;
	aml_init(&a, buf, sizeof(buf));
	aml_eisaid(&a, "PNP0A08");
	assert_int_equal(aml_finish(&a, &len), 0);
	static const uint8_t want[] = {0x0c, 0x41, 0xd0, 0x0a, 0x08};
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	static const char *const bad[] = {"PNP050", "pnp0501", "PNP050G", "PNP05011"};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_eisaid(&a, bad[i]);
		assert_int_equal(aml_finish(&a, &len), -EINVAL);
	}
}

/* PkgLength: 1 byte up to 63 in total, then the multi-byte form. */
static void test_aml_pkg_length(void **state)
{
	(void)state;
	static uint8_t buf[0x20000];
	static uint8_t payload[0x10000];
	struct aml a;
	size_t len;

	aml_init(&a, buf, sizeof(buf));
	aml_buffer(&a, payload, 59); /* 2 + 59 contents + 1 = 62 */
	assert_int_equal(aml_finish(&a, &len), 0);
	assert_int_equal(len, 1 + 1 + 2 + 59);
	assert_int_equal(buf[1], 62);

	aml_init(&a, buf, sizeof(buf));
	aml_buffer(&a, payload, 100); /* 2 + 100 + 2 = 104 = 0x68 */
	assert_int_equal(aml_finish(&a, &len), 0);
	assert_int_equal(len, 1 + 2 + 2 + 100);
	assert_int_equal(buf[1], 0x40 | 0x8);
	assert_int_equal(buf[2], 0x06);
	assert_int_equal(buf[3], 0x0a);
	assert_int_equal(buf[4], 100);

	aml_init(&a, buf, sizeof(buf));
	aml_buffer(&a, payload, 0xffff); /* 3 (WordConst) + 0xffff + 3 = 0x10005 */
	assert_int_equal(aml_finish(&a, &len), 0);
	assert_int_equal(len, 1 + 3 + 3 + 0xffff);
	assert_int_equal(buf[1], 0x80 | 0x5);
	assert_int_equal(buf[2], 0x00);
	assert_int_equal(buf[3], 0x10);
}

static void test_aml_nesting_and_overflow(void **state)
{
	(void)state;
	uint8_t buf[32];
	struct aml a;
	size_t len;

	aml_init(&a, buf, sizeof(buf));
	aml_scope_begin(&a, "\\_SB");
	aml_device_begin(&a, "DEV0");
	aml_end(&a);
	aml_end(&a);
	assert_int_equal(aml_finish(&a, &len), 0);
	static const uint8_t want[] = {0x10, 0x0d, '\\', '_', 'S', 'B', '_', 0x5b,
				       0x82, 0x05, 'D',  'E', 'V', '0'};
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	aml_init(&a, buf, sizeof(buf));
	aml_end(&a);
	assert_int_equal(aml_finish(&a, &len), -EINVAL);

	aml_init(&a, buf, sizeof(buf));
	aml_package_begin(&a, 0);
	assert_int_equal(aml_finish(&a, &len), -EINVAL);

	aml_init(&a, buf, sizeof(buf));
	for (int i = 0; i < AML_MAX_DEPTH + 1; i++)
		aml_package_begin(&a, 0);
	assert_int_equal(aml_finish(&a, &len), -EINVAL);

	uint8_t big[64] = {0};
	aml_init(&a, buf, sizeof(buf));
	aml_buffer(&a, big, sizeof(big));
	assert_int_equal(aml_finish(&a, &len), -ENOSPC);

	/* Room for the contents but not for the PkgLength byte. */
	aml_init(&a, buf, 4);
	aml_package_begin(&a, 2);
	aml_integer(&a, 0);
	aml_integer(&a, 0);
	aml_end(&a);
	assert_int_equal(aml_finish(&a, &len), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rsdp_xsdt_rsdt, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_fadt, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_madt_1, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_madt_2, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_madt_4, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_madt_255, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_rebuild, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_dsdt, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_mcfg, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_bad_config, setup_mem, teardown_mem),
	    cmocka_unit_test_setup_teardown(test_region_bounds, setup_mem, teardown_mem),
	    cmocka_unit_test(test_no_memory),
	    cmocka_unit_test(test_aml_integers),
	    cmocka_unit_test(test_aml_names),
	    cmocka_unit_test(test_aml_eisaid),
	    cmocka_unit_test(test_aml_pkg_length),
	    cmocka_unit_test(test_aml_nesting_and_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
