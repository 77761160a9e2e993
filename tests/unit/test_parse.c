/* Size and count parsing, base64 encoding, guest memory translation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "util/base64.h"
#include "util/parse.h"
#include "vm/memory.h"

static void test_size_suffixes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_size("256M", &v), 0);
	assert_int_equal(v, 256ULL << 20);
	assert_int_equal(parse_size("2G", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("2g", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("512", &v), 0); /* bare number: MiB, as QEMU's -m */
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(parse_size("4096K", &v), 0);
	assert_int_equal(v, 4096ULL << 10);
	assert_int_equal(parse_size("1GiB", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(parse_size("1T", &v), 0);
	assert_int_equal(v, 1ULL << 40);
	assert_int_equal(parse_size("65536B", &v), 0);
	assert_int_equal(v, 65536);
}

static void test_size_rejects(void **state)
{
	(void)state;
	uint64_t v = 42;
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("M", &v), -EINVAL);
	assert_int_equal(parse_size("-1G", &v), -EINVAL);
	assert_int_equal(parse_size("1.5G", &v), -EINVAL);
	assert_int_equal(parse_size("12X", &v), -EINVAL);
	assert_int_equal(parse_size("1G ", &v), -EINVAL);
	assert_int_equal(parse_size(" 1G", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(parse_size("17179869184G", &v), -ERANGE); /* 2^34 GiB overflows */
	assert_int_equal(parse_size(NULL, &v), -EINVAL);
	assert_int_equal(v, 42);
}

static void test_count(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_count("4", 1, 255, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(parse_count("0", 1, 255, &v), -ERANGE);
	assert_int_equal(parse_count("256", 1, 255, &v), -ERANGE);
	assert_int_equal(parse_count("4x", 1, 255, &v), -EINVAL);
	assert_int_equal(parse_count("", 1, 255, &v), -EINVAL);
	assert_int_equal(parse_count("-1", 1, 255, &v), -EINVAL);
}

static void test_base64(void **state)
{
	(void)state;
	char out[64];
	base64_encode("", 0, out);
	assert_string_equal(out, "");
	base64_encode("f", 1, out);
	assert_string_equal(out, "Zg==");
	base64_encode("fo", 2, out);
	assert_string_equal(out, "Zm8=");
	base64_encode("foo", 3, out);
	assert_string_equal(out, "Zm9v");
	base64_encode("foobar", 6, out);
	assert_string_equal(out, "Zm9vYmFy");
	assert_int_equal(base64_encoded_size(6), 9);
	assert_int_equal(base64_encoded_size(4), 9);
}

static void test_memory_low_only(void **state)
{
	(void)state;
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, 64ULL << 20), 0);
	assert_int_equal(m.nregions, 1);
	assert_int_equal(guest_mem_low_end(&m), 64ULL << 20);
	assert_non_null(guest_mem_ptr(&m, 0, 64ULL << 20));
	assert_null(guest_mem_ptr(&m, 0, (64ULL << 20) + 1));
	assert_null(guest_mem_ptr(&m, (64ULL << 20) - 1, 2));
	assert_non_null(guest_mem_ptr(&m, (64ULL << 20) - 1, 1));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 2));        /* wraps */
	assert_null(guest_mem_ptr(&m, 16, UINT64_MAX));       /* length overflows */
	uint32_t v = 0xdeadbeef, r = 0;
	assert_int_equal(guest_mem_write(&m, 0x1000, &v, 4), 0);
	assert_int_equal(guest_mem_read(&m, 0x1000, &r, 4), 0);
	assert_int_equal(r, 0xdeadbeef);
	assert_int_equal(guest_mem_write(&m, 64ULL << 20, &v, 4), -EFAULT);
	guest_mem_destroy(&m);
}

static void test_memory_hole(void **state)
{
	(void)state;
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, 4ULL << 30), 0);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(guest_mem_low_end(&m), LAYOUT_MMIO_HOLE_START);
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO_HOLE_START, 1));   /* the hole */
	assert_null(guest_mem_ptr(&m, LAYOUT_IOAPIC_ADDR, 4));
	assert_non_null(guest_mem_ptr(&m, LAYOUT_4G, 1));
	uint64_t high = (4ULL << 30) - LAYOUT_MMIO_HOLE_START;
	assert_non_null(guest_mem_ptr(&m, LAYOUT_4G, high));
	assert_null(guest_mem_ptr(&m, LAYOUT_4G, high + 1));
	/* A range spanning the hole is refused even though both ends are RAM. */
	assert_null(guest_mem_ptr(&m, LAYOUT_MMIO_HOLE_START - 8, LAYOUT_4G));
	guest_mem_destroy(&m);
}

static void test_memory_rejects(void **state)
{
	(void)state;
	struct guest_mem m;
	assert_int_equal(guest_mem_init(&m, 1ULL << 20), -EINVAL);      /* too small */
	assert_int_equal(guest_mem_init(&m, (64ULL << 20) + 1), -EINVAL); /* unaligned */
	assert_int_equal(guest_mem_init(&m, 1ULL << 50), -EINVAL);      /* too large */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_size_suffixes), cmocka_unit_test(test_size_rejects),
	    cmocka_unit_test(test_count),         cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_memory_low_only), cmocka_unit_test(test_memory_hole),
	    cmocka_unit_test(test_memory_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
