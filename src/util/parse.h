/* Parsing of user-supplied numbers: memory sizes ("256M", "2G") and counts.
 * Both reject empty strings, trailing garbage, signs and overflow. */
#ifndef SHRIKE_UTIL_PARSE_H
#define SHRIKE_UTIL_PARSE_H

#include <stdint.h>

/* A size with an optional K/M/G/T suffix (powers of 1024, case-insensitive,
 * an optional trailing 'B' or 'iB'); a bare number is in MiB, as QEMU's -m. */
int parse_size(const char *s, uint64_t *out);

/* A decimal count in [min, max]. */
int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out);


#endif
