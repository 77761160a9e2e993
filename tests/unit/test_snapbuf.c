/* util/snapbuf: little-endian round trips, sticky errors, section tags and
 * versions, and a reader that never reads past its end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "util/snapbuf.h"

static void test_round_trip(void **state)
{
	(void)state;
	struct snapbuf w;
	snapbuf_init_writer(&w);
	assert_int_equal(snapbuf_begin(&w, "TEST", 2), 0);
	snapbuf_put_u8(&w, 0xab);
	snapbuf_put_u16(&w, 0x1234);
	snapbuf_put_u32(&w, 0xdeadbeef);
	snapbuf_put_u64(&w, 0x0102030405060708ULL);
	for (unsigned i = 0; i < 1000; i++) /* grows past the first allocation */
		snapbuf_put_u32(&w, i);
	assert_int_equal(w.err, 0);
	assert_int_equal(w.len, 8 + 1 + 2 + 4 + 8 + 4000);
	/* little-endian on the wire */
	assert_int_equal(w.data[9], 0x34);
	assert_int_equal(w.data[10], 0x12);

	struct snapbuf r;
	uint32_t version = 0, v32;
	uint16_t v16;
	uint8_t v8;
	uint64_t v64;
	snapbuf_init_reader(&r, w.data, w.len);
	assert_int_equal(snapbuf_expect(&r, "TEST", 3, &version), 0);
	assert_int_equal(version, 2);
	snapbuf_get_u8(&r, &v8);
	snapbuf_get_u16(&r, &v16);
	snapbuf_get_u32(&r, &v32);
	assert_int_equal(snapbuf_get_u64(&r, &v64), 0);
	assert_int_equal(v8, 0xab);
	assert_int_equal(v16, 0x1234);
	assert_int_equal(v32, 0xdeadbeef);
	assert_int_equal(v64, 0x0102030405060708ULL);
	for (unsigned i = 0; i < 1000; i++) {
		assert_int_equal(snapbuf_get_u32(&r, &v32), 0);
		assert_int_equal(v32, i);
	}
	/* past the end: an error, and it sticks */
	assert_int_equal(snapbuf_get_u8(&r, &v8), -EINVAL);
	assert_int_equal(snapbuf_get_u8(&r, &v8), -EINVAL);
	snapbuf_free(&w);
}

static void test_tags_and_versions(void **state)
{
	(void)state;
	struct snapbuf w, r;
	snapbuf_init_writer(&w);
	snapbuf_begin(&w, "VBLK", 5);
	snapbuf_init_reader(&r, w.data, w.len);
	assert_int_equal(snapbuf_expect(&r, "VNET", 9, NULL), -EINVAL); /* wrong tag */
	snapbuf_init_reader(&r, w.data, w.len);
	assert_int_equal(snapbuf_expect(&r, "VBLK", 4, NULL), -EINVAL); /* newer than known */
	snapbuf_init_reader(&r, w.data, w.len - 1);
	assert_int_equal(snapbuf_expect(&r, "VBLK", 5, NULL), -EINVAL); /* truncated */
	snapbuf_init_reader(&r, w.data, w.len);
	assert_int_equal(snapbuf_expect(&r, "VBLK", 5, NULL), 0);
	snapbuf_free(&w);
}

static void test_reader_is_read_only(void **state)
{
	(void)state;
	const uint8_t bytes[4] = {1, 2, 3, 4};
	struct snapbuf r;
	snapbuf_init_reader(&r, bytes, sizeof(bytes));
	assert_int_equal(snapbuf_put_u8(&r, 9), -EINVAL); /* never writes through */
	assert_int_equal(bytes[0], 1);
	snapbuf_free(&r); /* frees nothing it does not own */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tags_and_versions),
		cmocka_unit_test(test_reader_is_read_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
