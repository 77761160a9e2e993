#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>

static enum log_level log_level = LOG_WARN;

void log_set_level(enum log_level level) { log_level = level; }

enum log_level log_get_level(void) { return log_level; }

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = {"error", "warning", "info", "debug"};
	va_list ap;

	if (level > log_level)
		return;
	/* One fprintf call per line keeps lines from different threads whole. */
	char line[1024];
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "shrike: %s: %s\n", prefix[level], line);
}
