#include "util/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <strings.h>

static int parse_digits(const char *s, uint64_t *value, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*value = v;
	*end = p;
	return 0;
}

static int suffix_shift(const char *p, unsigned *shift)
{
	static const struct {
		const char *text;
		unsigned shift;
	} units[] = {
	    {"", 20},   {"k", 10},   {"kb", 10}, {"kib", 10}, {"m", 20},
	    {"mb", 20}, {"mib", 20}, {"g", 30},  {"gb", 30},  {"gib", 30},
	    {"t", 40},  {"tb", 40},  {"tib", 40}, {"b", 0},
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(p, units[i].text) == 0) {
			*shift = units[i].shift;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	const char *end;
	unsigned shift;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_digits(s, &v, &end);
	if (r)
		return r;
	r = suffix_shift(end, &shift);
	if (r)
		return r;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	const char *end;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_digits(s, &v, &end);
	if (r)
		return r;
	if (*end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}
