#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/parse.h"

#define CMDLINE_MAX 2048 /* Linux's COMMAND_LINE_SIZE on x86 */
#define DEFAULT_APPEND "panic=-1 quiet loglevel=0"
#define DEFAULT_APPEND_VERBOSE "earlyprintk=serial panic=-1 loglevel=7"

void cli_usage(FILE *out)
{
	fputs("usage: shrike run [options] [-- COMMAND [ARG...]]\n"
	      "\n"
	      "Boots a guest. Without --kernel, boots the default Debian guest (built by\n"
	      "`make guest`) and runs COMMAND in it, or a shell when none is given.\n"
	      "\n"
	      "options:\n"
	      "  -k, --kernel FILE     kernel: bzImage, ELF vmlinux with a PVH note, or multiboot\n"
	      "  -i, --initrd FILE     initrd (repeatable; multiboot modules for multiboot kernels)\n"
	      "  -a, --append CMDLINE  kernel command line (with root= and no console=,\n"
	      "                        console=ttyS0 or hvc0 is added, per --console)\n"
	      "  -m, --memory SIZE     guest memory, e.g. 256M, 2G (default 256M; bare number = MiB)\n"
	      "  -c, --cpus N          number of vCPUs, 1-255 (default 1)\n"
	      "  -e, --engine NAME     kvm, soft or auto (default auto)\n"
	      "      --soft-jit on|off the soft engine translates guest code to host code (on,\n"
	      "                        the default) or only interprets it (off)\n"
	      "      --soft-jit-cache SIZE\n"
	      "                        translated-code cache of the soft engine (default 32M,\n"
	      "                        64K-1G; flushed when full)\n"
	      "  -d, --disk FILE[,ro]  a raw disk image as virtio-blk (repeatable; /dev/vda, ...)\n"
	      "  -n, --net tap=NAME[,mac=MAC][,mtu=N][,offload=on|off]\n"
	      "                        a virtio-net device on host tap device NAME (repeatable;\n"
	      "                        MAC default 52:54:00:12:34:56 + index)\n"
	      "      --console KIND    serial (8250 UART, default) or virtio (hvc0)\n"
	      "      --no-rng          no virtio-rng device (default: one, fed by getrandom)\n"
	      "  -s, --stats           print exit statistics when the VM stops\n"
	      "  -v, --verbose         say what shrike does (twice: debug); with the default\n"
	      "                        guest, also let the kernel print its boot messages\n"
	      "  -h, --help            this text\n"
	      "  -V, --version         shrike's version\n"
	      "\n"
	      "On a terminal, Ctrl-A x quits. Exit status: 0 on poweroff or reset (or\n"
	      "the status the guest reported), (V<<1)|1 when the guest writes V to the\n"
	      "debug-exit port 0xf4, 123 when the guest crashes, 125 on an error.\n",
	      out);
}

enum { CLI_OPT_CONSOLE = 256, CLI_OPT_NO_RNG, CLI_OPT_SOFT_JIT, CLI_OPT_SOFT_JIT_CACHE };

static const struct option long_options[] = {
    {"kernel", required_argument, NULL, 'k'}, {"initrd", required_argument, NULL, 'i'},
    {"append", required_argument, NULL, 'a'}, {"memory", required_argument, NULL, 'm'},
    {"cpus", required_argument, NULL, 'c'},   {"engine", required_argument, NULL, 'e'},
    {"stats", no_argument, NULL, 's'},        {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
    {"disk", required_argument, NULL, 'd'},   {"net", required_argument, NULL, 'n'},
    {"console", required_argument, NULL, CLI_OPT_CONSOLE},
    {"no-rng", no_argument, NULL, CLI_OPT_NO_RNG},
    {"soft-jit", required_argument, NULL, CLI_OPT_SOFT_JIT},
    {"soft-jit-cache", required_argument, NULL, CLI_OPT_SOFT_JIT_CACHE},
    {NULL, 0, NULL, 0},
};

/* FILE[,ro]: the file name may itself contain commas; only a final ",ro"
 * is an option. */
static int cli_disk(struct cli *cli, const char *arg, struct errmsg *err)
{
	if (cli->cfg.ndisks == VM_MAX_DISKS)
		return errmsg_set(err, EINVAL, "at most %d --disk options", VM_MAX_DISKS);
	struct vm_disk_config *d = &cli->cfg.disk[cli->cfg.ndisks];
	size_t len = strlen(arg);
	if (len == 0 || !strcmp(arg, ",ro"))
		return errmsg_set(err, EINVAL, "--disk: expected FILE or FILE,ro");
	d->path = arg;
	if (len > 3 && !strcmp(arg + len - 3, ",ro")) {
		char *copy = strndup(arg, len - 3);
		if (!copy)
			return errmsg_set(err, ENOMEM, "out of memory");
		cli->owned[cli->nowned++] = copy;
		d->path = copy;
		d->readonly = true;
	}
	cli->cfg.ndisks++;
	return 0;
}

static int cli_net(struct cli *cli, const char *arg, struct errmsg *err)
{
	if (cli->cfg.nnets == VM_MAX_NETS)
		return errmsg_set(err, EINVAL, "at most %d --net options", VM_MAX_NETS);
	int r = net_opts_parse(arg, &cli->cfg.net[cli->cfg.nnets], err);
	if (!r)
		cli->cfg.nnets++;
	return r;
}

static int cli_option(struct cli *cli, int opt, const char *arg, struct errmsg *err)
{
	uint64_t v;
	int r;

	switch (opt) {
	case 'k':
		cli->cfg.kernel = arg;
		return 0;
	case 'i':
		if (cli->cfg.ninitrd == BOOT_MAX_INITRDS)
			return errmsg_set(err, EINVAL, "at most %d --initrd files", BOOT_MAX_INITRDS);
		cli->cfg.initrd[cli->cfg.ninitrd++] = arg;
		return 0;
	case 'a':
		cli->append = arg;
		return 0;
	case 'm':
		r = parse_size(arg, &v);
		if (r)
			return errmsg_set(err, EINVAL, "--memory '%s': not a size (try 256M or 2G)", arg);
		if (v < GUEST_MEM_MIN_SIZE || v > GUEST_MEM_MAX_SIZE)
			return errmsg_set(err, EINVAL, "--memory %s: must be between %lluM and %lluG",
					  arg, GUEST_MEM_MIN_SIZE >> 20, GUEST_MEM_MAX_SIZE >> 30);
		if (v & 0xfff)
			return errmsg_set(err, EINVAL, "--memory %s: must be a multiple of 4K", arg);
		cli->cfg.memory = v;
		return 0;
	case 'c':
		r = parse_count(arg, 1, VM_MAX_VCPUS, &v);
		if (r)
			return errmsg_set(err, EINVAL, "--cpus '%s': must be a number from 1 to %d", arg,
					  VM_MAX_VCPUS);
		cli->cfg.ncpus = (unsigned)v;
		return 0;
	case 'e':
		if (strcmp(arg, "kvm") && strcmp(arg, "soft") && strcmp(arg, "auto"))
			return errmsg_set(err, EINVAL, "--engine '%s': expected kvm, soft or auto", arg);
		cli->cfg.engine = arg;
		return 0;
	case 'd':
		return cli_disk(cli, arg, err);
	case 'n':
		return cli_net(cli, arg, err);
	case CLI_OPT_CONSOLE:
		if (!strcmp(arg, "serial"))
			cli->cfg.console = VM_CONSOLE_SERIAL;
		else if (!strcmp(arg, "virtio"))
			cli->cfg.console = VM_CONSOLE_VIRTIO;
		else
			return errmsg_set(err, EINVAL, "--console '%s': expected serial or virtio", arg);
		return 0;
	case CLI_OPT_NO_RNG:
		cli->cfg.no_rng = true;
		return 0;
	case CLI_OPT_SOFT_JIT:
		if (strcmp(arg, "on") && strcmp(arg, "off"))
			return errmsg_set(err, EINVAL, "--soft-jit '%s': expected on or off", arg);
		cli->cfg.soft_interpret = !strcmp(arg, "off");
		return 0;
	case CLI_OPT_SOFT_JIT_CACHE:
		if (parse_size(arg, &v) || v < (64u << 10) || v > (1u << 30))
			return errmsg_set(err, EINVAL,
					  "--soft-jit-cache '%s': expected a size from 64K to 1G", arg);
		cli->cfg.soft_jit_cache = v;
		return 0;
	case 's':
		cli->cfg.stats = true;
		return 0;
	case 'v':
		cli->verbosity++;
		return 0;
	case 'h':
		cli->action = CLI_HELP;
		return 0;
	case 'V':
		cli->action = CLI_VERSION;
		return 0;
	default:
		return errmsg_set(err, EINVAL, "unknown or incomplete option (see shrike --help)");
	}
}

static void cli_defaults(struct cli *cli)
{
	memset(cli, 0, sizeof(*cli));
	cli->cfg.memory = VM_DEFAULT_MEMORY;
	cli->cfg.ncpus = 1;
	cli->cfg.engine = "auto";
}

static void cli_free_owned(struct cli *cli)
{
	for (unsigned i = 0; i < cli->nowned; i++)
		free(cli->owned[i]);
	cli->nowned = 0;
}

static int cli_parse_args(struct cli *cli, int argc, char **argv, struct errmsg *err);

/* On failure nothing stays allocated (cli_free is for a successful parse). */
int cli_parse(struct cli *cli, int argc, char **argv, struct errmsg *err)
{
	int r = cli_parse_args(cli, argc, argv, err);
	if (r)
		cli_free_owned(cli);
	return r;
}

static int cli_parse_args(struct cli *cli, int argc, char **argv, struct errmsg *err)
{
	cli_defaults(cli);
	if (argc < 2)
		return errmsg_set(err, EINVAL, "no command given (see shrike --help)");
	const char *verb = argv[1];
	if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
		cli->action = CLI_HELP;
		return 0;
	}
	if (!strcmp(verb, "--version") || !strcmp(verb, "-V") || !strcmp(verb, "version")) {
		cli->action = CLI_VERSION;
		return 0;
	}
	if (strcmp(verb, "run"))
		return errmsg_set(err, EINVAL, "unknown command '%s' (see shrike --help)", verb);

	/* getopt keeps its position in globals; 0 makes glibc start afresh. */
	optind = 0;
	opterr = 0;
	int sub_argc = argc - 1;
	char **sub_argv = argv + 1;
	int opt;
	while ((opt = getopt_long(sub_argc, sub_argv, "+k:i:a:m:c:e:d:n:svhV", long_options, NULL)) != -1) {
		if (opt == '?' || opt == ':')
			return errmsg_set(err, EINVAL, "unknown option or missing argument: '%s' (see shrike --help)",
					  sub_argv[optind - 1]);
		int r = cli_option(cli, opt, optarg, err);
		if (r)
			return r;
	}
	if (optind < sub_argc) {
		if (strcmp(sub_argv[optind - 1], "--") != 0)
			return errmsg_set(err, EINVAL, "unexpected argument '%s' (a guest command goes after --)",
					  sub_argv[optind]);
		cli->command = &sub_argv[optind];
		cli->ncommand = sub_argc - optind;
	}
	return 0;
}

/* Single-quotes one word for sh: ' becomes '\''. */
static size_t shell_quote(const char *word, char *out)
{
	size_t n = 0;
	out[n++] = '\'';
	for (const char *p = word; *p; p++) {
		if (*p == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else {
			out[n++] = *p;
		}
	}
	out[n++] = '\'';
	return n;
}

char *cli_encode_command(char **argv, int argc)
{
	size_t cap = 1;
	for (int i = 0; i < argc; i++)
		cap += strlen(argv[i]) * 4 + 3;
	char *quoted = malloc(cap);
	if (!quoted)
		return NULL;
	size_t n = 0;
	for (int i = 0; i < argc; i++) {
		if (i)
			quoted[n++] = ' ';
		n += shell_quote(argv[i], quoted + n);
	}
	char *encoded = malloc(base64_encoded_size(n));
	if (encoded)
		base64_encode(quoted, n, encoded);
	free(quoted);
	return encoded;
}

/* True when the kernel command line has parameter NAME ("root=") as a
 * whole word (at the start or after a blank). */
static bool cmdline_has_param(const char *line, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = line; (p = strstr(p, name)) != NULL; p += n)
		if (p == line || p[-1] == ' ' || p[-1] == '\t')
			return true;
	return false;
}

/* A Linux root file system command line ("root=") without "console=" gets
 * the console shrike connects (console=ttyS0, or hvc0 with --console
 * virtio): otherwise the kernel and the distribution's getty would use
 * tty0, which shrike does not show. Returns the prefix, or "". */
static const char *cli_implied_console(const struct cli *cli, const char *base)
{
	if (!cmdline_has_param(base, "root=") || cmdline_has_param(base, "console="))
		return "";
	return cli->cfg.console == VM_CONSOLE_VIRTIO ? "console=hvc0 " : "console=ttyS0 ";
}

int cli_finish(struct cli *cli, const char *guest_dir, struct errmsg *err)
{
	const char *base = cli->append;
	char *kernel_path = cli->default_kernel, *initrd_path = cli->default_initrd;

	if (!cli->cfg.kernel) {
		snprintf(kernel_path, sizeof(cli->default_kernel), "%s/vmlinuz", guest_dir);
		snprintf(initrd_path, sizeof(cli->default_initrd), "%s/initrd.cpio.gz", guest_dir);
		if (access(kernel_path, R_OK) || access(initrd_path, R_OK))
			return errmsg_set(err, ENOENT,
					  "no --kernel given and the default guest is not built in %s "
					  "(run `make guest`)", guest_dir);
		cli->cfg.kernel = kernel_path;
		if (cli->cfg.ninitrd == 0)
			cli->cfg.initrd[cli->cfg.ninitrd++] = initrd_path;
		/* The default guest's own command line comes first; --append
		 * adds to it (nokaslr, a debug option) rather than replacing
		 * the console and the quiet flags it needs. */
		int n = snprintf(cli->default_append, sizeof(cli->default_append), "console=%s %s%s%s",
				 cli->cfg.console == VM_CONSOLE_VIRTIO ? "hvc0" : "ttyS0",
				 cli->verbosity ? DEFAULT_APPEND_VERBOSE : DEFAULT_APPEND,
				 base ? " " : "", base ? base : "");
		if (n < 0 || (size_t)n >= sizeof(cli->default_append))
			return errmsg_set(err, E2BIG, "--append: the command line would exceed %d bytes",
					  CMDLINE_MAX - 1);
		base = cli->default_append;
	}
	if (!base)
		base = "";
	const char *console = cli_implied_console(cli, base);
	char *encoded = cli->ncommand ? cli_encode_command(cli->command, cli->ncommand) : NULL;
	size_t len = strlen(console) + strlen(base) + (encoded ? strlen(encoded) + 16 : 0) + 1;
	cli->cfg.cmdline = malloc(len);
	if (!cli->cfg.cmdline || (cli->ncommand && !encoded)) {
		free(encoded);
		return errmsg_set(err, ENOMEM, "out of memory");
	}
	snprintf(cli->cfg.cmdline, len, "%s%s%s%s%s", console, base, encoded && *base ? " " : "",
		 encoded ? "shrike.cmd=" : "", encoded ? encoded : "");
	free(encoded);
	if (strlen(cli->cfg.cmdline) >= CMDLINE_MAX)
		return errmsg_set(err, E2BIG, "kernel command line is %zu bytes, the limit is %d",
				  strlen(cli->cfg.cmdline), CMDLINE_MAX - 1);
	return 0;
}

void cli_free(struct cli *cli)
{
	cli_free_owned(cli);
	free(cli->cfg.cmdline);
	cli->cfg.cmdline = NULL;
}
