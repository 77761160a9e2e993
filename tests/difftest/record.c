/* Recorded real-processor results: what KVM (the real processor) did with
 * every test of the default run, kept in a file in the repository so that
 * a machine without /dev/kvm still compares the soft CPU with hardware
 * (README.md, "Recorded results").
 *
 * A test's result is a 64-bit digest chained over the state after every
 * step (the fields the live comparison compares: GPRs, RIP, RFLAGS,
 * segments, control and descriptor-table registers, the port-I/O and MMIO
 * accesses, the exception and the exit) and ended with the memory every
 * test can write. What the live comparison takes from the oracle rather
 * than comparing is recorded as values for the replay to inject at the
 * same steps: the flags each step leaves undefined (then the soft CPU's
 * state equals the processor's exactly, and the chain needs no mask) and
 * the vendor-specific bytes of FXSAVE images (vendor.c).
 *
 * The file is text: a header naming the format, the generator's version,
 * a fingerprint of the undefined-flags table, the oracle's processor, the
 * parameters of the generated tests and a fingerprint of their inputs per
 * mode; then one line per generated test, in seed order, and one line per
 * corpus test, with its input's hash. A result line is
 *
 *   DIGEST[BITS] [xPATCH[*N],...] [sSTEPS]      or  -  (no result)
 *
 * DIGEST is 6 characters of base64url (36 bits of the digest: a wrong
 * result matches with a probability of 2^-36), BITS the values of the
 * undefined flags, six bits per character, PATCH an FXSAVE fixup defined
 * in the header (without an x field, every FXSAVE of the test takes fixup
 * 0, the common one), and sSTEPS the number of steps after which the
 * oracle's run stopped short of the test's end (beyond the KVM emulator,
 * or a divergence while recording). About 13 characters per test.
 *
 * Every input is bounded: lines are read with a fixed buffer, every count
 * is checked before it indexes anything. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "difftest.h"

#define RECORD_FORMAT 1
#define RECORD_MAGIC "shrike-difftest-record"
#define LINE_MAX_LEN 65536
#define MAX_PATCHES 256
#define DIGEST_CHARS (DT_DIGEST_BITS / 6) /* in base64url */
#define HASH_MUL 0x9e3779b97f4a7c15ULL
#define FLAG_TF 0x100ULL

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(char ch)
{
	const char *p = ch ? strchr(b64, ch) : NULL;
	return p ? (int)(p - b64) : -1;
}

/* ---- hashing ---- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * HASH_MUL;
	return h ^ (h >> 29);
}

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n)
{
	size_t k = 0;
	for (; k + 8 <= n; k += 8) {
		uint64_t w;
		memcpy(&w, p + k, 8);
		h = mix(h, w);
	}
	uint64_t tail = n - k;
	for (; k < n; k++)
		tail = tail << 8 | p[k];
	return mix(h, tail);
}

/* The fields dt_seg_equal compares: a null or unusable selector's hidden
 * part is model-specific and left out. */
static uint64_t hash_segment(uint64_t h, const struct segment *s)
{
	if (s->unusable || ((s->selector & ~3) == 0 && !(s->type & 8)))
		return mix(mix(h, 1), s->selector);
	h = mix(h, s->base);
	h = mix(h, (uint64_t)s->limit << 16 | s->selector);
	return mix(h, (uint64_t)s->type | (uint64_t)s->s << 8 | (uint64_t)s->dpl << 16 |
			      (uint64_t)s->present << 24 | (uint64_t)s->l << 32 |
			      (uint64_t)s->db << 40 | (uint64_t)s->g << 48);
}

static uint64_t hash_state(uint64_t h, const struct cpu_state *s)
{
	for (int r = 0; r < GPR_COUNT; r++)
		h = mix(h, s->gpr[r]);
	h = mix(h, s->rip);
	h = mix(h, s->rflags & ~FLAG_TF); /* the tester's own stepping flag */
	for (int r = 0; r < SEG_COUNT; r++)
		h = hash_segment(h, &s->seg[r]);
	h = mix(h, s->cr0);
	h = mix(h, s->cr2);
	h = mix(h, s->cr3);
	h = mix(h, s->cr4);
	h = mix(h, s->efer);
	h = mix(h, s->gdt.base);
	h = mix(h, s->gdt.limit);
	h = mix(h, s->idt.base);
	return mix(h, s->idt.limit);
}

uint64_t dt_step_hash(const struct dt_side *s, bool oracle)
{
	uint64_t h = hash_state(0x5bd1e995ULL, &s->st);
	h = mix(h, (uint64_t)s->nev << 32 | s->lost_ev);
	for (unsigned n = 0; n < s->nev && n < DT_MAX_EVENTS; n++) {
		const struct dt_event *e = &s->ev[n];
		uint64_t m = e->size >= 8 ? ~0ULL : (1ULL << (e->size * 8)) - 1;
		h = mix(h, (uint64_t)e->kind | (uint64_t)e->size << 8 | (uint64_t)e->write << 16);
		h = mix(h, e->addr);
		h = mix(h, e->data & m);
	}
	/* A step that ends normally: KVM reports a debug exit, or an INTR
	 * when it completed an access (pair.c); the soft engine a debug exit. */
	enum vcpu_exit_kind x = s->last_exit;
	if (x == VCPU_EXIT_DEBUG || (oracle && x == VCPU_EXIT_INTR))
		x = VCPU_EXIT_DEBUG;
	return mix(mix(h, (uint64_t)(int64_t)s->exc_vector), (uint64_t)x);
}

static uint64_t test_input_hash(const struct dt_test *t)
{
	uint64_t h = mix(0x27d4eb2fULL, (uint64_t)t->mode << 32 | t->max_steps);
	h = hash_bytes(mix(h, t->len), t->code, t->len);
	h = hash_state(h, &t->init);
	h = t->data ? hash_bytes(h, t->data, DT_DATA_SIZE) : mix(h, t->seed);
	return t->stack ? hash_bytes(h, t->stack, DT_STACK_SIZE) : mix(h, t->seed ^ 0x5555);
}

/* ---- one result ---- */

void dt_result_reset(struct dt_result *r)
{
	r->digest = 0x84222325cbf29ce4ULL;
	r->steps = 0;
	r->stop = r->missing = r->misaligned = r->default_fx = false;
	r->nfbits = r->fpos = 0;
	r->nfx = r->fxpos = 0;
}

void dt_result_free(struct dt_result *r)
{
	free(r->fbits);
	free(r->fx);
	memset(r, 0, sizeof(*r));
}

void dt_result_step(struct dt_result *r, uint64_t step_hash)
{
	r->digest = mix(r->digest, step_hash);
	r->steps++;
}

void dt_result_finish(struct dt_result *r, const struct dt_side *s)
{
	uint64_t h = mix(r->digest, r->steps);
	for (unsigned k = 0; k < dt_ncompared; k++) {
		const uint8_t *p = guest_mem_ptr(&s->mem, dt_compared[k].base, dt_compared[k].size);
		h = p ? hash_bytes(h, p, dt_compared[k].size) : mix(h, 0);
	}
	r->digest = h;
}

static int put_bit(struct dt_result *r, unsigned bit)
{
	if (r->nfbits / 8 >= r->fbits_cap) {
		size_t cap = r->fbits_cap ? r->fbits_cap * 2 : 16;
		uint8_t *p = realloc(r->fbits, cap);
		if (!p)
			return -ENOMEM;
		memset(p + r->fbits_cap, 0, cap - r->fbits_cap);
		r->fbits = p;
		r->fbits_cap = cap;
	}
	if (bit)
		r->fbits[r->nfbits / 8] |= (uint8_t)(1u << (r->nfbits % 8));
	r->nfbits++;
	return 0;
}

int dt_result_put_flags(struct dt_result *r, uint64_t mask, uint64_t rflags)
{
	for (unsigned b = 0; b < 64; b++) {
		if (!(mask >> b & 1))
			continue;
		int rc = put_bit(r, (unsigned)(rflags >> b & 1));
		if (rc)
			return rc;
	}
	return 0;
}

uint64_t dt_result_take_flags(struct dt_result *r, uint64_t mask)
{
	uint64_t v = 0;
	for (unsigned b = 0; b < 64; b++) {
		if (!(mask >> b & 1))
			continue;
		if (r->fpos >= r->nfbits) {
			r->misaligned = true;
			continue;
		}
		if (r->fbits[r->fpos / 8] >> (r->fpos % 8) & 1)
			v |= 1ULL << b;
		r->fpos++;
	}
	return v;
}

int dt_result_put_fx(struct dt_result *r, const struct dt_fxpatch *p)
{
	if (r->nfx >= r->fx_cap) {
		unsigned cap = r->fx_cap ? r->fx_cap * 2 : 4;
		struct dt_fxpatch *n = realloc(r->fx, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		r->fx = n;
		r->fx_cap = cap;
	}
	r->fx[r->nfx++] = *p;
	return 0;
}

const struct dt_fxpatch *dt_result_take_fx(struct dt_result *r)
{
	if (r->default_fx)
		return r->fx_default;
	if (r->fxpos >= r->nfx) {
		r->misaligned = true;
		return NULL;
	}
	return &r->fx[r->fxpos++];
}

/* ---- the record ---- */

struct corpus_entry {
	char name[128];
	uint64_t input;
	struct dt_result r;
};

struct dt_record {
	struct dt_record_params p;
	char oracle[256];
	unsigned format, gen_version;
	uint64_t flagmask;
	uint64_t inputs[DT_MODE_COUNT]; /* fingerprint of the generated tests' inputs */
	struct dt_result *gen[DT_MODE_COUNT];
	bool stale_gen[DT_MODE_COUNT], stale_all;
	struct corpus_entry *corpus;
	unsigned ncorpus, corpus_cap;
	/* FXSAVE fixups, numbered as the file defines them */
	struct dt_fxpatch patch[MAX_PATCHES];
	unsigned npatch;
};

static int alloc_gen(struct dt_record *r)
{
	for (int m = 0; m < DT_MODE_COUNT; m++) {
		if (!r->p.count[m])
			continue;
		r->gen[m] = calloc(r->p.count[m], sizeof(struct dt_result));
		if (!r->gen[m])
			return -ENOMEM;
		for (unsigned k = 0; k < r->p.count[m]; k++) {
			dt_result_reset(&r->gen[m][k]);
			r->gen[m][k].missing = true; /* until recorded */
		}
	}
	return 0;
}

struct dt_record *dt_record_new(const struct dt_record_params *p, const char *oracle)
{
	struct dt_record *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->p = *p;
	snprintf(r->oracle, sizeof(r->oracle), "%s", oracle);
	r->format = RECORD_FORMAT;
	r->gen_version = DT_GEN_VERSION;
	r->flagmask = dt_flagmask_fingerprint();
	if (alloc_gen(r)) {
		dt_record_free(r);
		return NULL;
	}
	return r;
}

void dt_record_free(struct dt_record *r)
{
	if (!r)
		return;
	for (int m = 0; m < DT_MODE_COUNT; m++) {
		for (unsigned k = 0; r->gen[m] && k < r->p.count[m]; k++)
			dt_result_free(&r->gen[m][k]);
		free(r->gen[m]);
	}
	for (unsigned k = 0; k < r->ncorpus; k++)
		dt_result_free(&r->corpus[k].r);
	free(r->corpus);
	free(r);
}

const struct dt_record_params *dt_record_params(const struct dt_record *r) { return &r->p; }
const char *dt_record_oracle(const struct dt_record *r) { return r->oracle; }

static struct corpus_entry *find_corpus(struct dt_record *r, const char *name)
{
	for (unsigned k = 0; k < r->ncorpus; k++)
		if (strcmp(r->corpus[k].name, name) == 0)
			return &r->corpus[k];
	return NULL;
}

static struct corpus_entry *add_corpus(struct dt_record *r, const char *name)
{
	if (r->ncorpus >= r->corpus_cap) {
		unsigned cap = r->corpus_cap ? r->corpus_cap * 2 : 64;
		struct corpus_entry *n = realloc(r->corpus, cap * sizeof(*n));
		if (!n)
			return NULL;
		r->corpus = n;
		r->corpus_cap = cap;
	}
	struct corpus_entry *e = &r->corpus[r->ncorpus++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	dt_result_reset(&e->r);
	return e;
}

struct dt_result *dt_record_slot(struct dt_record *r, const struct dt_test *t, bool add,
				 bool *stale)
{
	*stale = false;
	if (t->generated) {
		unsigned m = t->mode;
		if (m >= DT_MODE_COUNT || t->seed < r->p.seed || t->seed - r->p.seed >= r->p.count[m])
			return NULL;
		*stale = !add && (r->stale_all || r->stale_gen[m]);
		return *stale ? NULL : &r->gen[m][t->seed - r->p.seed];
	}
	uint64_t input = test_input_hash(t);
	struct corpus_entry *e = find_corpus(r, t->name);
	if (!e && add)
		e = add_corpus(r, t->name);
	if (!e)
		return NULL;
	if (add) {
		e->input = input;
		return &e->r;
	}
	*stale = r->stale_all || e->input != input;
	return *stale ? NULL : &e->r;
}

/* ---- fingerprints ---- */

uint64_t dt_flagmask_fingerprint(void)
{
	/* Every opcode of every map, with each ModRM.reg, under each operand
	 * size prefix, with shift counts from the immediate and CL. */
	static const uint8_t prefixes[][2] = {{0, 0}, {1, 0x66}, {1, 0x48}, {1, 0xf3}, {1, 0xf2}};
	static const uint8_t maps[][3] = {{0}, {1, 0x0f}, {2, 0x0f, 0x38}, {2, 0x0f, 0x3a}};
	static const uint8_t counts[] = {0, 1, 2, 7, 8, 16, 31, 32, 33, 63};
	static const unsigned bits[] = {8, 4, 2};
	uint64_t h = 0;
	struct cpu_state before;
	memset(&before, 0, sizeof(before));
	for (size_t b = 0; b < sizeof(bits) / sizeof(bits[0]); b++)
		for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++)
			for (size_t m = 0; m < sizeof(maps) / sizeof(maps[0]); m++)
				for (unsigned op = 0; op < 256; op++)
					for (unsigned reg = 0; reg < 8; reg++)
						for (size_t c = 0; c < sizeof(counts); c++) {
							uint8_t code[16];
							size_t n = 0;
							struct dt_opinfo o;
							if (prefixes[p][0])
								code[n++] = prefixes[p][1];
							memcpy(code + n, maps[m] + 1, maps[m][0]);
							n += maps[m][0];
							code[n++] = (uint8_t)op;
							code[n++] = (uint8_t)(0xc0 | reg << 3);
							code[n++] = counts[c];
							code[n++] = 0;
							before.gpr[GPR_RCX] = counts[c];
							dt_opinfo_decode(code, n, bits[b], &o);
							h = mix(h, dt_undefined_flags(&o, code, n - 1, &before));
						}
	return h;
}

/* The fingerprint of the inputs of the generated tests of mode m. */
static int inputs_fingerprint(const struct dt_record_params *p, enum dt_mode m, uint64_t *out)
{
	struct dt_groups g;
	char err[160];
	memset(&g, 0, sizeof(g));
	if (dt_groups_parse(&g, p->groups, err, sizeof(err)))
		return -EINVAL;
	struct dt_gen *gen = malloc(sizeof(*gen));
	if (!gen)
		return -ENOMEM;
	uint64_t h = mix(0, p->count[m]);
	int rc = 0;
	for (unsigned k = 0; k < p->count[m] && !rc; k++) {
		rc = dt_generate(gen, p->seed + k, m, &g, p->length);
		if (!rc)
			h = mix(h, test_input_hash(&gen->test));
	}
	free(gen);
	*out = h;
	return rc;
}

void dt_groups_string(const struct dt_groups *g, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = 0;
	for (unsigned k = 0; k < dt_group_count && n < len; k++)
		if (g->on[k])
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " " : "", dt_group_names[k]);
}

unsigned dt_record_check(struct dt_record *r, const struct dt_corpus *corpus,
			 const struct dt_groups *groups, const char *prefix)
{
	unsigned problems = 0;
	char now[sizeof(r->p.groups)];
	if (r->gen_version != DT_GEN_VERSION) {
		printf("%sgenerator version %u, recorded with version %u\n", prefix, DT_GEN_VERSION,
		       r->gen_version);
		problems++;
		for (int m = 0; m < DT_MODE_COUNT; m++)
			r->stale_gen[m] = r->p.count[m] != 0;
	}
	if (r->flagmask != dt_flagmask_fingerprint()) {
		printf("%sthe undefined-flags table (flagmask.c) changed since the recording\n", prefix);
		problems++;
		r->stale_all = true;
	}
	dt_groups_string(groups, now, sizeof(now));
	if (strcmp(now, r->p.groups) != 0) {
		printf("%sthe enabled groups changed since the recording (now: %s; recorded: %s)\n",
		       prefix, now, r->p.groups);
		problems++;
	}
	for (int m = 0; m < DT_MODE_COUNT && !r->stale_all; m++) {
		uint64_t fp;
		if (!r->p.count[m] || r->stale_gen[m])
			continue;
		if (inputs_fingerprint(&r->p, (enum dt_mode)m, &fp) || fp != r->inputs[m]) {
			printf("%sthe generator's %s sequences changed since the recording, but not its "
			       "version (DT_GEN_VERSION)\n",
			       prefix, dt_mode_name((enum dt_mode)m));
			problems++;
			r->stale_gen[m] = true;
		}
	}
	unsigned missing = 0, changed = 0;
	for (unsigned k = 0; corpus && k < corpus->n && !r->stale_all; k++) {
		const struct dt_corpus_test *ct = &corpus->t[k];
		char repro[256];
		struct dt_test t;
		if (!dt_group_enabled(groups, ct->group))
			continue;
		for (int m = 0; m < DT_MODE_COUNT; m++) {
			if (!(ct->modes & (1u << m)))
				continue;
			dt_corpus_instantiate(ct, (enum dt_mode)m, &t, repro, sizeof(repro));
			const struct corpus_entry *e = find_corpus(r, t.name);
			if (!e) {
				if (missing++ < 5)
					printf("%scorpus test %s has no recorded result\n", prefix, t.name);
			} else if (e->input != test_input_hash(&t)) {
				if (changed++ < 5)
					printf("%scorpus test %s changed since the recording\n", prefix, t.name);
			}
		}
	}
	if (missing + changed > 10)
		printf("%s%u corpus tests have no recorded result, %u changed since the recording\n",
		       prefix, missing, changed);
	return problems + missing + changed;
}

/* ---- writing ---- */

static int patch_id(struct dt_record *r, const struct dt_fxpatch *p)
{
	for (unsigned k = 0; k < r->npatch; k++)
		if (memcmp(&r->patch[k], p, sizeof(*p)) == 0)
			return (int)k;
	if (r->npatch >= MAX_PATCHES)
		return -ENOSPC;
	r->patch[r->npatch] = *p;
	return (int)r->npatch++;
}

static int collect_patches(struct dt_record *r, const struct dt_result *res)
{
	for (unsigned k = 0; k < res->nfx; k++)
		if (patch_id(r, &res->fx[k]) < 0)
			return -ENOSPC;
	return 0;
}

static void put_hex(FILE *f, const uint8_t *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		fprintf(f, "%02x", p[k]);
}

/* Whether every FXSAVE of res took fixup 0 (written without an x field). */
static bool default_patches(struct dt_record *r, const struct dt_result *res)
{
	for (unsigned k = 0; k < res->nfx; k++)
		if (patch_id(r, &res->fx[k]) != 0)
			return false;
	return true;
}

static void write_result(FILE *f, struct dt_record *r, const struct dt_result *res)
{
	char d[DIGEST_CHARS + 1];
	if (res->missing) {
		fputs("-\n", f);
		return;
	}
	for (int k = 0; k < DIGEST_CHARS; k++)
		d[k] = b64[(res->digest >> (6 * k)) & 63];
	d[DIGEST_CHARS] = 0;
	fputs(d, f);
	for (size_t k = 0; k < res->nfbits; k += 6) {
		unsigned v = 0;
		for (size_t b = 0; b < 6 && k + b < res->nfbits; b++)
			v |= (unsigned)(res->fbits[(k + b) / 8] >> ((k + b) % 8) & 1) << b;
		fputc(b64[v], f);
	}
	for (unsigned k = 0; k < res->nfx && !default_patches(r, res);) {
		unsigned n = 1;
		while (k + n < res->nfx && memcmp(&res->fx[k], &res->fx[k + n], sizeof(res->fx[k])) == 0)
			n++;
		fprintf(f, "%s%d", k ? "," : " x", patch_id(r, &res->fx[k]));
		if (n > 1)
			fprintf(f, "*%u", n);
		k += n;
	}
	if (res->stop)
		fprintf(f, " s%u", res->steps);
	fputc('\n', f);
}

static int cmp_corpus(const void *a, const void *b)
{
	return strcmp(((const struct corpus_entry *)a)->name, ((const struct corpus_entry *)b)->name);
}

int dt_record_save(const struct dt_record *rc, const char *path, char *err, size_t errlen)
{
	struct dt_record *r = (struct dt_record *)rc; /* patch numbering and sorting only */
	char tmp[4096];
	int rv = 0;
	for (int m = 0; m < DT_MODE_COUNT && !rv; m++) {
		if (r->p.count[m])
			rv = inputs_fingerprint(&r->p, (enum dt_mode)m, &r->inputs[m]);
		for (unsigned k = 0; k < r->p.count[m] && !rv; k++)
			rv = collect_patches(r, &r->gen[m][k]);
	}
	for (unsigned k = 0; k < r->ncorpus && !rv; k++)
		rv = collect_patches(r, &r->corpus[k].r);
	if (rv) {
		snprintf(err, errlen, "%s", rv == -ENOSPC ? "too many distinct FXSAVE fixups"
							  : "cannot generate the tests again");
		return rv;
	}
	qsort(r->corpus, r->ncorpus, sizeof(r->corpus[0]), cmp_corpus);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -errno;
	}
	fprintf(f, "# Results of the real processor for every test of `make difftest`, recorded\n"
		   "# through KVM by `make difftest-record` (build/difftest --record): where\n"
		   "# /dev/kvm is not usable, the soft CPU is compared with these. Generated;\n"
		   "# format and meaning in tests/difftest/README.md, \"Recorded results\".\n");
	fprintf(f, "%s %u\n", RECORD_MAGIC, r->format);
	fprintf(f, "generator %u\n", r->gen_version);
	fprintf(f, "flagmask %016" PRIx64 "\n", r->flagmask);
	fprintf(f, "oracle %s\n", r->oracle);
	fprintf(f, "groups %s\n", r->p.groups);
	fprintf(f, "length %u\n", r->p.length);
	for (unsigned k = 0; k < r->npatch; k++) {
		fprintf(f, "fxsave %u %u ", k, r->patch[k].copy);
		put_hex(f, r->patch[k].ptr, sizeof(r->patch[k].ptr));
		fputc(' ', f);
		put_hex(f, r->patch[k].mask, sizeof(r->patch[k].mask));
		fputc('\n', f);
	}
	for (int m = 0; m < DT_MODE_COUNT; m++) {
		if (!r->p.count[m])
			continue;
		fprintf(f, "gen %s seed %" PRIu64 " count %u inputs %016" PRIx64 "\n",
			dt_mode_name((enum dt_mode)m), r->p.seed, r->p.count[m], r->inputs[m]);
		for (unsigned k = 0; k < r->p.count[m]; k++)
			write_result(f, r, &r->gen[m][k]);
	}
	for (unsigned k = 0; k < r->ncorpus; k++) {
		fprintf(f, "corpus %s %016" PRIx64 " ", r->corpus[k].name, r->corpus[k].input);
		write_result(f, r, &r->corpus[k].r);
	}
	fprintf(f, "end\n");
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

/* ---- reading ---- */

struct reader {
	const char *path;
	unsigned line;
	char *err;
	size_t errlen;
};

static int bad(struct reader *rd, const char *what)
{
	snprintf(rd->err, rd->errlen, "%s:%u: %s", rd->path, rd->line, what);
	return -EINVAL;
}

static int parse_hex_bytes(const char *s, uint8_t *out, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		unsigned v;
		if (sscanf(s + 2 * k, "%2x", &v) != 1)
			return -EINVAL;
		out[k] = (uint8_t)v;
	}
	return s[2 * n] == 0 || s[2 * n] == ' ' || s[2 * n] == '\n' ? 0 : -EINVAL;
}

static int parse_bits(struct dt_result *res, const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		int v = b64_value(s[k]);
		if (v < 0)
			return -EINVAL;
		for (int b = 0; b < 6; b++)
			if (put_bit(res, (unsigned)(v >> b & 1)))
				return -ENOMEM;
	}
	return 0;
}

static int parse_patches(const struct dt_record *r, struct dt_result *res, char *s)
{
	char *save = NULL;
	for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long id = strtoul(tok, &end, 10), n = 1;
		if (end == tok || id >= r->npatch)
			return -EINVAL;
		if (*end == '*') {
			char *e2;
			n = strtoul(end + 1, &e2, 10);
			if (e2 == end + 1 || *e2 || n == 0 || n > 100000)
				return -EINVAL;
		} else if (*end) {
			return -EINVAL;
		}
		for (unsigned long k = 0; k < n; k++)
			if (dt_result_put_fx(res, &r->patch[id]))
				return -ENOMEM;
	}
	return 0;
}

/* A result line (after any key). */
static int parse_result(struct reader *rd, const struct dt_record *r, struct dt_result *res,
			char *s)
{
	dt_result_reset(res);
	s[strcspn(s, "\n")] = 0;
	if (strcmp(s, "-") == 0) {
		res->missing = true;
		return 0;
	}
	char *save = NULL, *tok = strtok_r(s, " ", &save);
	if (!tok || strlen(tok) < DIGEST_CHARS)
		return bad(rd, "bad digest");
	uint64_t d = 0;
	for (int k = 0; k < DIGEST_CHARS; k++) {
		int v = b64_value(tok[k]);
		if (v < 0)
			return bad(rd, "bad digest");
		d |= (uint64_t)v << (6 * k);
	}
	res->digest = d;
	res->default_fx = true;
	res->fx_default = r->npatch ? &r->patch[0] : NULL;
	int rc = parse_bits(res, tok + DIGEST_CHARS, strlen(tok + DIGEST_CHARS));
	if (rc)
		return rc == -ENOMEM ? rc : bad(rd, "bad undefined flags");
	while ((tok = strtok_r(NULL, " ", &save))) {
		rc = 0;
		if (tok[0] == 'x') {
			res->default_fx = false;
			rc = parse_patches(r, res, tok + 1);
		} else if (tok[0] == 's') {
			char *end;
			unsigned long n = strtoul(tok + 1, &end, 10);
			if (end == tok + 1 || *end || n > 1000000)
				rc = -EINVAL;
			res->steps = (unsigned)n;
			res->stop = true;
		} else {
			rc = -EINVAL;
		}
		if (rc == -ENOMEM)
			return rc;
		if (rc)
			return bad(rd, "bad result field");
	}
	return 0;
}

static int parse_gen_header(struct reader *rd, struct dt_record *r, const char *line,
			    enum dt_mode *mode)
{
	char name[32];
	uint64_t seed, inputs;
	unsigned count;
	if (sscanf(line, "gen %31s seed %" SCNu64 " count %u inputs %" SCNx64, name, &seed, &count,
		   &inputs) != 4 ||
	    dt_mode_parse(name, mode) || count > 10000000)
		return bad(rd, "bad gen line");
	if (r->p.count[*mode] || (r->p.seed && r->p.seed != seed))
		return bad(rd, "gen line repeated or with another first seed");
	r->p.seed = seed;
	r->p.count[*mode] = count;
	r->inputs[*mode] = inputs;
	r->gen[*mode] = calloc(count ? count : 1, sizeof(struct dt_result));
	return r->gen[*mode] ? 0 : -ENOMEM;
}

static int parse_header_line(struct reader *rd, struct dt_record *r, char *line)
{
	line[strcspn(line, "\n")] = 0;
	if (strncmp(line, "generator ", 10) == 0)
		return sscanf(line + 10, "%u", &r->gen_version) == 1 ? 0 : bad(rd, "bad generator");
	if (strncmp(line, "flagmask ", 9) == 0)
		return sscanf(line + 9, "%" SCNx64, &r->flagmask) == 1 ? 0 : bad(rd, "bad flagmask");
	if (strncmp(line, "oracle ", 7) == 0) {
		snprintf(r->oracle, sizeof(r->oracle), "%s", line + 7);
		return 0;
	}
	if (strncmp(line, "groups ", 7) == 0) {
		if (strlen(line + 7) >= sizeof(r->p.groups))
			return bad(rd, "groups too long");
		snprintf(r->p.groups, sizeof(r->p.groups), "%s", line + 7);
		return 0;
	}
	if (strncmp(line, "length ", 7) == 0)
		return sscanf(line + 7, "%u", &r->p.length) == 1 ? 0 : bad(rd, "bad length");
	if (strncmp(line, "fxsave ", 7) == 0) {
		unsigned id, copy;
		char ptr[64], mask[16];
		if (sscanf(line + 7, "%u %u %63s %15s", &id, &copy, ptr, mask) != 4 ||
		    id != r->npatch || id >= MAX_PATCHES || copy > 3 ||
		    parse_hex_bytes(ptr, r->patch[id].ptr, 18) ||
		    parse_hex_bytes(mask, r->patch[id].mask, 4))
			return bad(rd, "bad fxsave line");
		r->patch[id].copy = (uint8_t)copy;
		r->npatch++;
		return 0;
	}
	return bad(rd, "unknown line");
}

static int read_record(struct reader *rd, FILE *f, struct dt_record *r, char *line)
{
	enum dt_mode mode = DT_MODE_LONG64;
	unsigned next = 0; /* the next generated test of mode */
	bool in_gen = false, magic = false;
	while (fgets(line, LINE_MAX_LEN, f)) {
		rd->line++;
		if (!strchr(line, '\n') && !feof(f))
			return bad(rd, "line too long");
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (!magic) {
			if (sscanf(line, RECORD_MAGIC " %u", &r->format) != 1)
				return bad(rd, "not a difftest record");
			if (r->format != RECORD_FORMAT)
				return bad(rd, "format version not known to this tester");
			magic = true;
			continue;
		}
		if (in_gen && next < r->p.count[mode]) {
			int rc = parse_result(rd, r, &r->gen[mode][next++], line);
			if (rc)
				return rc;
			continue;
		}
		in_gen = false;
		if (strncmp(line, "gen ", 4) == 0) {
			int rc = parse_gen_header(rd, r, line, &mode);
			if (rc)
				return rc;
			in_gen = true;
			next = 0;
		} else if (strncmp(line, "corpus ", 7) == 0) {
			char name[128];
			uint64_t input;
			int used = 0;
			if (sscanf(line + 7, "%127s %" SCNx64 " %n", name, &input, &used) != 2 || !used)
				return bad(rd, "bad corpus line");
			if (find_corpus(r, name))
				return bad(rd, "corpus test repeated");
			struct corpus_entry *e = add_corpus(r, name);
			if (!e)
				return -ENOMEM;
			e->input = input;
			int rc = parse_result(rd, r, &e->r, line + 7 + used);
			if (rc)
				return rc;
		} else if (strcmp(line, "end\n") == 0 || strcmp(line, "end") == 0) {
			return 0;
		} else {
			int rc = parse_header_line(rd, r, line);
			if (rc)
				return rc;
		}
	}
	return bad(rd, magic ? "truncated (no end line)" : "empty");
}

int dt_record_load(struct dt_record **out, const char *path, char *err, size_t errlen)
{
	struct reader rd = {.path = path, .err = err, .errlen = errlen};
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct dt_record *r = calloc(1, sizeof(*r));
	char *line = malloc(LINE_MAX_LEN);
	int rc = r && line ? read_record(&rd, f, r, line) : -ENOMEM;
	fclose(f);
	free(line);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (rc) {
		dt_record_free(r);
		return rc;
	}
	*out = r;
	return 0;
}
