/* shrike: command line → struct vm_config → vm_run(). The only place
 * that exits the process. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/log.h"
#include "vm/vm.h"

#ifndef SHRIKE_VERSION
#define SHRIKE_VERSION "0.1.0"
#endif

/* The default guest is built into guest/out beside the build directory:
 * <repo>/build/shrike → <repo>/guest/out. */
static void default_guest_dir(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(out, len, "guest/out");
		return;
	}
	exe[n] = '\0';
	char *dir = dirname(exe);
	char *env = getenv("SHRIKE_GUEST_DIR");
	if (env && *env)
		snprintf(out, len, "%s", env);
	else
		snprintf(out, len, "%s/../guest/out", dir);
}

int main(int argc, char **argv)
{
	struct cli cli;
	struct errmsg err = {{0}};
	char guest_dir[PATH_MAX + 32];

	if (cli_parse(&cli, argc, argv, &err)) {
		fprintf(stderr, "shrike: %s\n", err.text);
		return VM_STATUS_ERROR;
	}
	if (cli.action == CLI_HELP) {
		cli_usage(stdout);
		return 0;
	}
	if (cli.action == CLI_VERSION) {
		printf("shrike %s\n", SHRIKE_VERSION);
		return 0;
	}
	log_set_level(cli.verbosity >= 2 ? LOG_DEBUG : cli.verbosity ? LOG_INFO : LOG_WARN);
	default_guest_dir(guest_dir, sizeof(guest_dir));
	if (cli_finish(&cli, guest_dir, &err)) {
		fprintf(stderr, "shrike: %s\n", err.text);
		cli_free(&cli);
		return VM_STATUS_ERROR;
	}
	log_info("kernel %s, command line \"%s\"", cli.cfg.kernel, cli.cfg.cmdline);
	int status = vm_run(&cli.cfg);
	cli_free(&cli);
	return status;
}
