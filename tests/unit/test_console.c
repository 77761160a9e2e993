/* The host console's escape handling (Ctrl-A x quits, Ctrl-A Ctrl-A sends
 * Ctrl-A) and its output path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "vm/console.h"

static void test_plain_bytes_pass(void **state)
{
	(void)state;
	struct console c;
	bool quit;
	uint8_t buf[] = "hello";
	console_init(&c, -1, -1);
	assert_int_equal(console_filter_escape(&c, buf, 5, &quit), 5);
	assert_false(quit);
	assert_memory_equal(buf, "hello", 5);
}

static void test_escape_quit(void **state)
{
	(void)state;
	struct console c;
	bool quit;
	uint8_t buf[] = {'a', 0x01, 'x', 'b'};
	console_init(&c, -1, -1);
	assert_int_equal(console_filter_escape(&c, buf, 4, &quit), 1);
	assert_true(quit);
	assert_int_equal(buf[0], 'a');
}

static void test_escape_split_across_reads(void **state)
{
	(void)state;
	struct console c;
	bool quit;
	uint8_t first[] = {'z', 0x01};
	uint8_t second[] = {'X'};
	console_init(&c, -1, -1);
	assert_int_equal(console_filter_escape(&c, first, 2, &quit), 1);
	assert_false(quit);
	assert_int_equal(console_filter_escape(&c, second, 1, &quit), 0);
	assert_true(quit);
}

static void test_escape_literal_and_unknown(void **state)
{
	(void)state;
	struct console c;
	bool quit;
	uint8_t buf[] = {0x01, 0x01, 0x01, 'q', 'k'};
	console_init(&c, -1, -1);
	/* Ctrl-A Ctrl-A → one Ctrl-A; Ctrl-A q → swallowed; k passes. */
	assert_int_equal(console_filter_escape(&c, buf, 5, &quit), 2);
	assert_false(quit);
	assert_int_equal(buf[0], 0x01);
	assert_int_equal(buf[1], 'k');
}

static void test_output_sink(void **state)
{
	(void)state;
	int p[2];
	struct console c;
	char out[8] = {0};
	assert_int_equal(pipe(p), 0);
	console_init(&c, -1, p[1]);
	struct char_sink sink = console_sink(&c);
	sink.write(sink.opaque, (const uint8_t *)"ok!", 3);
	assert_int_equal(read(p[0], out, sizeof(out)), 3);
	assert_string_equal(out, "ok!");
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_bytes_pass), cmocka_unit_test(test_escape_quit),
	    cmocka_unit_test(test_escape_split_across_reads),
	    cmocka_unit_test(test_escape_literal_and_unknown), cmocka_unit_test(test_output_sink),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
