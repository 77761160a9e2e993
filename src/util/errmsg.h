/* A caller-owned buffer for one human-readable error line. Parsers fill it
 * when they refuse input, so the user sees what exactly was wrong. */
#ifndef SHRIKE_UTIL_ERRMSG_H
#define SHRIKE_UTIL_ERRMSG_H

#include <stddef.h>

struct errmsg {
	char text[256];
};

/* Formats into e (if non-NULL) and returns -err, so callers can write
 * `return errmsg_set(e, EINVAL, "bad magic %x", m);`. */
int errmsg_set(struct errmsg *e, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
