/* The hand-written corpus: plain-text files of tests, each a few
 * instructions as hex bytes with optional initial registers and data.
 *
 *   test NAME GROUP MODE[,MODE...]
 *   rax=1 rcx=0x8000000000000000 rflags=0x801 rsi=data+0x10
 *   mem 0x40: 01 02 03 04
 *   48 01 c8            # add rax, rcx
 *   end
 *
 * Every line is bounded (a long line is an error, not a truncation), and
 * every count is checked against its buffer. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "difftest.h"

#define LINE_MAX_LEN 1024

static const char *const reg_names[GPR_COUNT] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp",
						  "rsi", "rdi", "r8",  "r9",  "r10", "r11",
						  "r12", "r13", "r14", "r15"};

struct parse {
	const char *file;
	unsigned line;
	char *err;
	size_t errlen;
};

static int perr(struct parse *p, const char *msg, const char *what)
{
	snprintf(p->err, p->errlen, "%s:%u: %s%s%s", p->file, p->line, msg, what ? ": " : "",
		 what ? what : "");
	return -EINVAL;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Appends the hex bytes of s ("48 01 c8" or "4801c8") to buf. */
static int parse_hex(struct parse *p, const char *s, uint8_t *buf, size_t cap, size_t *len)
{
	while (*s) {
		if (*s == ' ' || *s == '\t' || *s == ',') {
			s++;
			continue;
		}
		int hi = hexval(s[0]), lo = hi >= 0 ? hexval(s[1]) : -1;
		if (hi < 0 || lo < 0)
			return perr(p, "expected hex bytes", s);
		if (*len >= cap)
			return perr(p, "too many bytes", NULL);
		buf[(*len)++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	return 0;
}

static int parse_number(struct parse *p, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	bool neg = *s == '-';
	unsigned long long v = strtoull(neg ? s + 1 : s, &end, 0);
	if (errno || end == s || *end)
		return perr(p, "bad number", s);
	*out = neg ? (uint64_t)-(int64_t)v : (uint64_t)v;
	return 0;
}

static int parse_assign(struct parse *p, struct dt_corpus_test *t, char *tok)
{
	char *eq = strchr(tok, '=');
	*eq = 0;
	const char *name = tok, *val = eq + 1;
	uint64_t v;
	if (strcmp(name, "rflags") == 0) {
		t->flags_set = true;
		return parse_number(p, val, &t->flags);
	}
	for (int r = 0; r < GPR_COUNT; r++) {
		if (strcmp(name, reg_names[r]) != 0)
			continue;
		t->reg_set[r] = true;
		if (strncmp(val, "data", 4) == 0) {
			t->reg_is_data[r] = true;
			v = 0;
			if (val[4] == '+' && parse_number(p, val + 5, &v))
				return -EINVAL;
			else if (val[4] == '-' && parse_number(p, val + 4, &v))
				return -EINVAL;
			else if (val[4] && val[4] != '+' && val[4] != '-')
				return perr(p, "bad data-relative value", val);
			t->reg_data_rel[r] = (int64_t)v;
			return 0;
		}
		return parse_number(p, val, &t->reg[r]);
	}
	return perr(p, "unknown register", name);
}

static int parse_modes(struct parse *p, char *list, unsigned *modes)
{
	*modes = 0;
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		enum dt_mode m;
		if (dt_mode_parse(tok, &m))
			return perr(p, "unknown mode", tok);
		*modes |= 1u << m;
	}
	return *modes ? 0 : perr(p, "no mode", NULL);
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

static void fill_data(uint8_t *d, uint64_t seed)
{
	for (size_t k = 0; k < DT_DATA_SIZE; k++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		d[k] = (uint8_t)(seed >> 56);
	}
}

static int begin_test(struct parse *p, struct dt_corpus *c, char *rest)
{
	char *name = strtok(rest, " \t"), *group = strtok(NULL, " \t"), *modes = strtok(NULL, " \t");
	if (!name || !group || !modes || strtok(NULL, " \t"))
		return perr(p, "expected: test NAME GROUP MODE[,MODE...]", NULL);
	if (!dt_group_known(group))
		return perr(p, "unknown group", group);
	if (c->n == c->cap) {
		unsigned cap = c->cap ? c->cap * 2 : 64;
		struct dt_corpus_test *nt = realloc(c->t, cap * sizeof(*nt));
		if (!nt)
			return -ENOMEM;
		c->t = nt;
		c->cap = cap;
	}
	struct dt_corpus_test *t = &c->t[c->n];
	memset(t, 0, sizeof(*t));
	t->data = malloc(DT_DATA_SIZE);
	if (!t->data)
		return -ENOMEM;
	c->n++;
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->group, sizeof(t->group), "%s", group);
	snprintf(t->file, sizeof(t->file), "%s", p->file);
	t->line = p->line;
	fill_data(t->data, name_hash(name));
	return parse_modes(p, modes, &t->modes);
}

static int parse_mem(struct parse *p, struct dt_corpus_test *t, char *rest)
{
	char *colon = strchr(rest, ':');
	uint64_t off;
	uint8_t buf[256];
	size_t n = 0;
	if (!colon)
		return perr(p, "expected: mem OFFSET: BYTES", NULL);
	*colon = 0;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	if (parse_number(p, rest, &off) || parse_hex(p, colon + 1, buf, sizeof(buf), &n))
		return -EINVAL;
	if (off > DT_DATA_SIZE || n > DT_DATA_SIZE - off)
		return perr(p, "mem outside the data area", NULL);
	memcpy(t->data + off, buf, n);
	return 0;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

static int parse_line(struct parse *p, struct dt_corpus *c, bool *in_test, char *line)
{
	char *hash = strchr(line, '#');
	if (hash)
		*hash = 0;
	char *s = trim(line);
	if (!*s)
		return 0;
	if (strncmp(s, "test ", 5) == 0) {
		if (*in_test)
			return perr(p, "missing 'end' before", "test");
		*in_test = true;
		return begin_test(p, c, s + 5);
	}
	if (!*in_test)
		return perr(p, "expected 'test'", s);
	struct dt_corpus_test *t = &c->t[c->n - 1];
	if (strcmp(s, "end") == 0) {
		*in_test = false;
		return t->len ? 0 : perr(p, "test without code", t->name);
	}
	if (strncmp(s, "mem ", 4) == 0)
		return parse_mem(p, t, s + 4);
	if (strchr(s, '=')) {
		for (char *tok = strtok(s, " \t"); tok; tok = strtok(NULL, " \t")) {
			if (!strchr(tok, '='))
				return perr(p, "expected REG=VALUE", tok);
			if (parse_assign(p, t, tok))
				return -EINVAL;
		}
		return 0;
	}
	return parse_hex(p, s, t->code, sizeof(t->code), &t->len);
}

static int load_file(struct dt_corpus *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[LINE_MAX_LEN];
	struct parse p = {.file = path, .err = err, .errlen = errlen};
	bool in_test = false;
	int rc = 0;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	while (!rc && fgets(line, sizeof(line), f)) {
		p.line++;
		if (!strchr(line, '\n') && !feof(f))
			rc = perr(&p, "line too long", NULL);
		else
			rc = parse_line(&p, c, &in_test, line);
	}
	if (!rc && in_test)
		rc = perr(&p, "missing 'end' at end of file", NULL);
	fclose(f);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int dt_corpus_load(struct dt_corpus *c, const char *dir, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	char *names[256];
	unsigned n = 0;
	int rc = 0;

	if (!d) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	for (struct dirent *e; (e = readdir(d)) && n < 256;) {
		size_t len = strlen(e->d_name);
		if (len > 4 && strcmp(e->d_name + len - 4, ".txt") == 0 && (names[n] = strdup(e->d_name)))
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (unsigned k = 0; k < n; k++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, names[k]);
		if (!rc)
			rc = load_file(c, path, err, errlen);
		free(names[k]);
	}
	return rc;
}

void dt_corpus_free(struct dt_corpus *c)
{
	for (unsigned k = 0; k < c->n; k++)
		free(c->t[k].data);
	free(c->t);
	memset(c, 0, sizeof(*c));
}

void dt_corpus_instantiate(const struct dt_corpus_test *ct, enum dt_mode m, struct dt_test *t,
			   char *repro, size_t repro_len)
{
	struct cpu_state *s = &t->init;
	uint64_t data = m == DT_MODE_PROT16 ? 0 : DT_DATA_ADDR; /* DS-relative in 16-bit mode */
	memset(t, 0, sizeof(*t));
	dt_machine_state(m, 0, s);
	s->gpr[GPR_RBX] = data + 0x1000;
	for (int r = 0; r < GPR_COUNT; r++) {
		if (!ct->reg_set[r])
			continue;
		s->gpr[r] = ct->reg_is_data[r] ? data + (uint64_t)ct->reg_data_rel[r] : ct->reg[r];
	}
	if (ct->flags_set) /* bit 1, IF and the mode's IOPL are the machine's */
		s->rflags = (ct->flags & ~(RFLAGS_IF | (3ULL << 12) | 0x100ULL)) |
			    (s->rflags & (RFLAGS_IF | (3ULL << 12))) | RFLAGS_FIXED;
	snprintf(t->name, sizeof(t->name), "%s@%s", ct->name, dt_mode_name(m));
	t->group = ct->group;
	t->mode = m;
	t->code = ct->code;
	t->len = ct->len;
	t->data = ct->data;
	t->seed = name_hash(ct->name);
	t->max_steps = 10000;
	snprintf(repro, repro_len, "difftest --test %s --mode %s  (%s:%u)", ct->name, dt_mode_name(m),
		 ct->file, ct->line);
	t->repro = repro;
}
