/* The command line and the size/count parsers with arbitrary user input:
 * the input is split at NUL bytes into argv words. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/parse.h"

#define MAX_WORDS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	char *argv[MAX_WORDS + 3];
	int argc = 0;
	uint64_t v;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "shrike";
	argv[argc++] = "run";
	for (char *p = buf; p < buf + size && argc < MAX_WORDS + 2; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;

	parse_size(buf, &v);
	parse_count(buf, 1, 255, &v);

	struct cli cli;
	struct errmsg err;
	if (cli_parse(&cli, argc, argv, &err) == 0) {
		if (cli.action == CLI_RUN) {
			if (!cli.cfg.kernel)
				cli.cfg.kernel = "k"; /* keep cli_finish away from the file system */
			cli_finish(&cli, "/nonexistent", &err);
		}
		cli_free(&cli);
	}
	free(buf);
	return 0;
}
