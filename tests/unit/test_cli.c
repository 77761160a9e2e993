/* Command-line parsing and the kernel command line it builds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define ARGV(...) ((char *[]){"shrike", __VA_ARGS__, NULL})
#define ARGC(a) ((int)(sizeof(a) / sizeof(a[0])) - 1)

static int parse(struct cli *cli, char **argv, struct errmsg *err)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	return cli_parse(cli, argc, argv, err);
}

static void test_run_options(void **state)
{
	(void)state;
	struct cli cli;
	struct errmsg err = {{0}};
	assert_int_equal(parse(&cli,
			       ARGV("run", "--kernel", "k", "--initrd", "a", "-i", "b", "--append",
				    "console=ttyS0", "--memory", "1G", "--cpus", "4", "--engine",
				    "kvm", "--stats", "-v", "-v"),
			       &err),
			 0);
	assert_int_equal(cli.action, CLI_RUN);
	assert_string_equal(cli.cfg.kernel, "k");
	assert_int_equal(cli.cfg.ninitrd, 2);
	assert_string_equal(cli.cfg.initrd[1], "b");
	assert_string_equal(cli.append, "console=ttyS0");
	assert_int_equal(cli.cfg.memory, 1ULL << 30);
	assert_int_equal(cli.cfg.ncpus, 4);
	assert_string_equal(cli.cfg.engine, "kvm");
	assert_true(cli.cfg.stats);
	assert_int_equal(cli.verbosity, 2);
	assert_null(cli.command);
}

static void test_defaults_and_command(void **state)
{
	(void)state;
	struct cli cli;
	struct errmsg err = {{0}};
	assert_int_equal(parse(&cli, ARGV("run", "-k", "k", "--", "uname", "-r"), &err), 0);
	assert_int_equal(cli.cfg.memory, 256ULL << 20);
	assert_int_equal(cli.cfg.ncpus, 1);
	assert_string_equal(cli.cfg.engine, "auto");
	assert_int_equal(cli.ncommand, 2);
	assert_string_equal(cli.command[0], "uname");
	assert_string_equal(cli.command[1], "-r");
	assert_int_equal(cli_finish(&cli, "/nonexistent", &err), 0);
	/* 'uname' '-r' → base64 */
	assert_string_equal(cli.cfg.cmdline, "shrike.cmd=J3VuYW1lJyAnLXIn");
	cli_free(&cli);
}

static void test_command_quoting(void **state)
{
	(void)state;
	char *argv[] = {"echo", "it's", NULL};
	char *enc = cli_encode_command(argv, 2);
	/* 'echo' 'it'\''s' */
	assert_string_equal(enc, "J2VjaG8nICdpdCdcJydzJw==");
	free(enc);
}

static void test_help_version(void **state)
{
	(void)state;
	struct cli cli;
	struct errmsg err = {{0}};
	assert_int_equal(parse(&cli, ARGV("--help"), &err), 0);
	assert_int_equal(cli.action, CLI_HELP);
	assert_int_equal(parse(&cli, ARGV("--version"), &err), 0);
	assert_int_equal(cli.action, CLI_VERSION);
	assert_int_equal(parse(&cli, ARGV("run", "--help"), &err), 0);
	assert_int_equal(cli.action, CLI_HELP);
}

static void expect_error(char **argv, const char *fragment)
{
	struct cli cli;
	struct errmsg err = {{0}};
	assert_int_not_equal(parse(&cli, argv, &err), 0);
	if (!strstr(err.text, fragment))
		fail_msg("error '%s' does not mention '%s'", err.text, fragment);
}

static void test_rejects(void **state)
{
	(void)state;
	expect_error(ARGV("run", "--memory", "lots"), "--memory");
	expect_error(ARGV("run", "--memory", "1M"), "between");
	expect_error(ARGV("run", "--memory", "16385K"), "multiple of 4K");
	expect_error(ARGV("run", "--cpus", "0"), "--cpus");
	expect_error(ARGV("run", "--cpus", "256"), "--cpus");
	expect_error(ARGV("run", "--cpus", "two"), "--cpus");
	expect_error(ARGV("run", "--engine", "xen"), "--engine");
	expect_error(ARGV("run", "--bogus"), "unknown option");
	expect_error(ARGV("run", "--kernel"), "missing argument");
	expect_error(ARGV("run", "stray"), "after --");
	expect_error(ARGV("frobnicate"), "unknown command");
	char *none[] = {"shrike", NULL};
	expect_error(none, "no command");
	expect_error(ARGV("run", "-i", "1", "-i", "2", "-i", "3", "-i", "4", "-i", "5", "-i", "6",
			  "-i", "7", "-i", "8", "-i", "9"),
		     "at most");
}

static void test_device_options(void **state)
{
	(void)state;
	struct cli cli;
	struct errmsg err = {{0}};
	assert_int_equal(parse(&cli,
			       ARGV("run", "-k", "k", "--disk", "a.img", "-d", "b,c.img,ro", "--net",
				    "tap=tap0,mac=52:54:00:00:00:07", "-n", "tap=tap1",
				    "--console", "virtio", "--no-rng"),
			       &err),
			 0);
	assert_int_equal(cli.cfg.ndisks, 2);
	assert_string_equal(cli.cfg.disk[0].path, "a.img");
	assert_false(cli.cfg.disk[0].readonly);
	assert_string_equal(cli.cfg.disk[1].path, "b,c.img"); /* only a final ,ro is an option */
	assert_true(cli.cfg.disk[1].readonly);
	assert_int_equal(cli.cfg.nnets, 2);
	assert_string_equal(cli.cfg.net[0].ifname, "tap0");
	assert_int_equal(cli.cfg.net[0].mac[5], 7);
	assert_string_equal(cli.cfg.net[1].ifname, "tap1");
	assert_int_equal(cli.cfg.net[1].mac[0], 0); /* none given: chosen per device later */
	assert_int_equal(cli.cfg.console, VM_CONSOLE_VIRTIO);
	assert_true(cli.cfg.no_rng);
	cli_free(&cli);

	expect_error(ARGV("run", "--disk", ",ro"), "--disk");
	expect_error(ARGV("run", "--net", "mac=52:54:00:00:00:01"), "tap=NAME");
	expect_error(ARGV("run", "--net", "tap=t0,mac=01:00:00:00:00:01"), "--net");
	expect_error(ARGV("run", "--console", "vga"), "--console");
}

/* With the default guest, the kernel's console follows --console. */
static void test_default_console(void **state)
{
	(void)state;
	char dir[] = "/tmp/shrike-cli-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	const char *files[] = {"vmlinuz", "initrd.cpio.gz"};
	for (unsigned i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fclose(f);
	}
	struct cli cli;
	struct errmsg err = {{0}};
	assert_int_equal(parse(&cli, ARGV("run", "--console", "virtio"), &err), 0);
	assert_int_equal(cli_finish(&cli, dir, &err), 0);
	assert_non_null(strstr(cli.cfg.cmdline, "console=hvc0 "));
	cli_free(&cli);
	assert_int_equal(parse(&cli, ARGV("run"), &err), 0);
	assert_int_equal(cli_finish(&cli, dir, &err), 0);
	assert_non_null(strstr(cli.cfg.cmdline, "console=ttyS0 "));
	cli_free(&cli);
	for (unsigned i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* cmdline the CLI builds from ARGS (a user kernel, so no default guest). */
static void check_cmdline(char **argv, const char *want)
{
	struct cli cli;
	struct errmsg err = {{0}};
	assert_int_equal(parse(&cli, argv, &err), 0);
	assert_int_equal(cli_finish(&cli, "/nonexistent", &err), 0);
	assert_string_equal(cli.cfg.cmdline, want);
	cli_free(&cli);
}

/* A root file system command line without console= gets shrike's console;
 * any other command line is passed as given. */
static void test_implied_console(void **state)
{
	(void)state;
	check_cmdline(ARGV("run", "-k", "k", "-a", "root=/dev/vda"), "console=ttyS0 root=/dev/vda");
	check_cmdline(ARGV("run", "-k", "k", "--console", "virtio", "-a", "ro root=/dev/vda1"),
		      "console=hvc0 ro root=/dev/vda1");
	check_cmdline(ARGV("run", "-k", "k", "-a", "root=/dev/vda console=tty0"),
		      "root=/dev/vda console=tty0");
	check_cmdline(ARGV("run", "-k", "k", "-a", "hello world"), "hello world");
	check_cmdline(ARGV("run", "-k", "k", "-a", "xroot=1 myconsole=2"), "xroot=1 myconsole=2");
	check_cmdline(ARGV("run", "-k", "k", "-a", "bz exit=3"), "bz exit=3");
	check_cmdline(ARGV("run", "-k", "k"), "");
}

static void test_default_guest_missing(void **state)
{
	(void)state;
	struct cli cli;
	struct errmsg err = {{0}};
	assert_int_equal(parse(&cli, ARGV("run"), &err), 0);
	assert_int_not_equal(cli_finish(&cli, "/nonexistent", &err), 0);
	assert_non_null(strstr(err.text, "make guest"));
	cli_free(&cli);
}

static void test_cmdline_too_long(void **state)
{
	(void)state;
	struct cli cli;
	struct errmsg err = {{0}};
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(parse(&cli, ARGV("run", "-k", "k", "-a", big), &err), 0);
	assert_int_not_equal(cli_finish(&cli, "/nonexistent", &err), 0);
	assert_non_null(strstr(err.text, "limit"));
	cli_free(&cli);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_run_options),   cmocka_unit_test(test_defaults_and_command),
	    cmocka_unit_test(test_command_quoting), cmocka_unit_test(test_help_version),
	    cmocka_unit_test(test_rejects),       cmocka_unit_test(test_default_guest_missing),
	    cmocka_unit_test(test_cmdline_too_long), cmocka_unit_test(test_device_options),
	    cmocka_unit_test(test_default_console), cmocka_unit_test(test_implied_console),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
