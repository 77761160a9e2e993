/* The command line: `shrike run [options] [-- COMMAND [ARG...]]`.
 * cli_parse() only parses and validates syntax and ranges (no file system
 * access), so it is unit-testable; cli_finish() resolves the default guest
 * and builds the kernel command line. */
#ifndef SHRIKE_CLI_H
#define SHRIKE_CLI_H

#include <stdio.h>

#include "util/errmsg.h"
#include "vm/config.h"

enum cli_action { CLI_RUN, CLI_HELP, CLI_VERSION };

struct cli {
	enum cli_action action;
	struct vm_config cfg;
	int verbosity;       /* number of --verbose */
	const char *append;  /* --append, or NULL */
	char **command;      /* COMMAND [ARG...] after --, or NULL */
	int ncommand;
	char default_kernel[4096]; /* storage for the default guest's paths */
	char default_initrd[4096];
	char default_append[2048]; /* the default guest's command line, with --append (CMDLINE_MAX) */
	char *owned[VM_MAX_DISKS]; /* strings built while parsing, freed by cli_free */
	unsigned nowned;
};

int cli_parse(struct cli *cli, int argc, char **argv, struct errmsg *err);

/* guest_dir: where the default guest lives (kernel "vmlinuz", "initrd.cpio.gz"),
 * used when no --kernel was given. Allocates cli->cfg.cmdline. */
int cli_finish(struct cli *cli, const char *guest_dir, struct errmsg *err);
void cli_free(struct cli *cli);

/* The shell-quoted, base64-encoded command for the default guest's init
 * ("shrike.cmd=..."); malloc'ed. */
char *cli_encode_command(char **argv, int argc);

void cli_usage(FILE *out);

#endif
