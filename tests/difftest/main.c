/* difftest: the differential tester's command line (see README.md).
 * Exit status: 0 when both engines agree on every test (or KVM is not
 * usable here: a SKIPPED banner), 1 on a divergence, 2 on a usage or
 * tester error. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "difftest.h"

#define DEFAULT_CORPUS "tests/difftest/corpus"
#define DEFAULT_GROUPS_FILE "tests/difftest/groups.enabled"
#define DEFAULT_ITERATIONS 2000 /* generated sequences in long64; a quarter per emulated mode */
#define DEFAULT_LENGTH 40      /* templates per sequence */

struct options {
	const char *corpus_dir;
	const char *groups_arg; /* list, or NULL for the groups file */
	const char *groups_file;
	const char *only_test;
	bool mode_given;
	enum dt_mode mode;
	uint64_t seed;
	unsigned iterations, length;
	bool no_corpus, no_gen, verbose, keep_going, list_groups, ignore_frame_rf;
};

static void usage(void)
{
	printf("usage: difftest [options]\n"
	       "  --corpus DIR        hand-written tests (default " DEFAULT_CORPUS ")\n"
	       "  --groups LIST       enabled groups, comma-separated, or 'all'\n"
	       "                      (default: the file " DEFAULT_GROUPS_FILE ", or $DIFFTEST_GROUPS)\n"
	       "  --groups-file FILE  read the enabled groups from FILE\n"
	       "  --test NAME         run only the corpus test NAME\n"
	       "  --mode MODE         only this mode (long64, compat32, prot32, prot16, kernel64)\n"
	       "  --seed N            first generator seed (default 1)\n"
	       "  --count N           generated sequences per mode (default $DIFFTEST_ITERATIONS or %d)\n"
	       "  --length N          templates per generated sequence (default %d)\n"
	       "  --ignore-frame-rf   do not compare RF in exception frames\n"
	       "  --stop-first        stop at the first divergence (default: run everything;\n"
	       "                      the first %d are reported in full)\n"
	       "  --no-corpus, --no-gen, --verbose, --list-groups\n",
	       DEFAULT_ITERATIONS, DEFAULT_LENGTH, DT_FULL_REPORTS);
}

static int parse_uint(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	uint64_t v;
	o->corpus_dir = DEFAULT_CORPUS;
	o->groups_file = DEFAULT_GROUPS_FILE;
	o->seed = 1;
	o->iterations = DEFAULT_ITERATIONS;
	o->length = DEFAULT_LENGTH;
	o->keep_going = true;
	const char *env = getenv("DIFFTEST_ITERATIONS");
	if (env && parse_uint(env, &v) == 0 && v <= 100000000)
		o->iterations = (unsigned)v;
	o->groups_arg = getenv("DIFFTEST_GROUPS");
	for (int k = 1; k < argc; k++) {
		const char *a = argv[k];
		const char *val = k + 1 < argc ? argv[k + 1] : NULL;
		bool takes = true;
		if (strcmp(a, "--corpus") == 0 && val)
			o->corpus_dir = val;
		else if (strcmp(a, "--groups") == 0 && val)
			o->groups_arg = val;
		else if (strcmp(a, "--groups-file") == 0 && val)
			o->groups_file = val, o->groups_arg = NULL;
		else if (strcmp(a, "--test") == 0 && val)
			o->only_test = val, o->no_gen = true;
		else if (strcmp(a, "--mode") == 0 && val) {
			if (dt_mode_parse(val, &o->mode))
				return -EINVAL;
			o->mode_given = true;
		} else if (strcmp(a, "--seed") == 0 && val) {
			if (parse_uint(val, &o->seed))
				return -EINVAL;
		} else if ((strcmp(a, "--count") == 0 || strcmp(a, "--iterations") == 0) && val) {
			if (parse_uint(val, &v) || v > 100000000)
				return -EINVAL;
			o->iterations = (unsigned)v;
		} else if (strcmp(a, "--length") == 0 && val) {
			if (parse_uint(val, &v) || v == 0 || v > 300)
				return -EINVAL;
			o->length = (unsigned)v;
		} else {
			takes = false;
			if (strcmp(a, "--no-corpus") == 0)
				o->no_corpus = true;
			else if (strcmp(a, "--no-gen") == 0)
				o->no_gen = true;
			else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0)
				o->verbose = true;
			else if (strcmp(a, "--keep-going") == 0)
				o->keep_going = true;
			else if (strcmp(a, "--stop-first") == 0)
				o->keep_going = false;
			else if (strcmp(a, "--list-groups") == 0)
				o->list_groups = true;
			else if (strcmp(a, "--ignore-frame-rf") == 0)
				o->ignore_frame_rf = true;
			else
				return -EINVAL;
		}
		if (takes)
			k++;
	}
	return 0;
}

static int load_groups(const struct options *o, struct dt_groups *g)
{
	char err[160], buf[4096];
	memset(g, 0, sizeof(*g));
	const char *list = o->groups_arg;
	if (!list) {
		FILE *f = fopen(o->groups_file, "r");
		if (!f) {
			fprintf(stderr, "difftest: %s: %s\n", o->groups_file, strerror(errno));
			return -errno;
		}
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		list = buf;
	}
	if (dt_groups_parse(g, list, err, sizeof(err))) {
		fprintf(stderr, "difftest: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

static void print_groups(const struct dt_groups *g)
{
	printf("difftest: groups enabled:");
	for (unsigned k = 0; k < dt_group_count; k++)
		if (g->on[k])
			printf(" %s", dt_group_names[k]);
	printf("\ndifftest: groups skipped (not yet enabled):");
	for (unsigned k = 0; k < dt_group_count; k++)
		if (!g->on[k])
			printf(" %s", dt_group_names[k]);
	printf("\n");
}

static void skipped_banner(const char *why)
{
	printf("\n"
	       "######################################################################\n"
	       "##  difftest SKIPPED: KVM is not usable here (%s)\n"
	       "##  The soft CPU was NOT compared against the real processor.\n"
	       "######################################################################\n\n",
	       why);
}

/* Result bookkeeping: -errno aborts, 1 counts a divergence. */
static int account(struct dt_ctx *c, int rc, bool *stop)
{
	if (rc < 0) {
		fprintf(stderr, "difftest: tester failure: %s\n", strerror(-rc));
		*stop = true;
		return rc;
	}
	if (rc > 0) {
		c->stats.failures++;
		if (!c->keep_going)
			*stop = true;
	}
	return 0;
}

static int run_corpus(struct dt_ctx *c, const struct options *o, const struct dt_groups *g,
		      bool *stop)
{
	struct dt_corpus corpus = {0};
	char err[256], repro[256];
	unsigned skipped = 0, ran = 0, found = 0;
	struct dt_test t;

	int rc = dt_corpus_load(&corpus, o->corpus_dir, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "difftest: corpus: %s\n", err);
		dt_corpus_free(&corpus);
		return rc;
	}
	for (unsigned k = 0; k < corpus.n && !*stop; k++) {
		const struct dt_corpus_test *ct = &corpus.t[k];
		if (o->only_test && strcmp(o->only_test, ct->name) != 0)
			continue;
		found++;
		if (!o->only_test && !dt_group_enabled(g, ct->group)) {
			skipped++;
			continue;
		}
		for (int m = 0; m < DT_MODE_COUNT && !*stop; m++) {
			if (!(ct->modes & (1u << m)) || (o->mode_given && (int)o->mode != m))
				continue;
			dt_corpus_instantiate(ct, (enum dt_mode)m, &t, repro, sizeof(repro));
			if (c->verbose)
				printf("corpus %s\n", t.name);
			rc = account(c, dt_run_test_retry(c, &t), stop);
			ran++;
		}
	}
	printf("difftest: corpus: %u test runs from %u tests, %u tests skipped (group not enabled)\n",
	       ran, corpus.n, skipped);
	if (o->only_test && !found) {
		fprintf(stderr, "difftest: no corpus test named %s\n", o->only_test);
		rc = -ENOENT;
	}
	dt_corpus_free(&corpus);
	return rc;
}

static int run_generator(struct dt_ctx *c, const struct options *o, const struct dt_groups *g,
			 bool *stop)
{
	static const enum dt_mode modes[] = {DT_MODE_LONG64, DT_MODE_COMPAT32, DT_MODE_PROT32};
	struct dt_gen *gen = malloc(sizeof(*gen));
	int rc = 0;
	if (!gen)
		return -ENOMEM;
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]) && !*stop; m++) {
		if (o->mode_given && o->mode != modes[m])
			continue;
		/* The emulated mode costs less per step and finds less: a quarter. */
		unsigned count = modes[m] == DT_MODE_LONG64 || o->mode_given ? o->iterations
									      : o->iterations / 4;
		uint64_t steps0 = c->stats.steps;
		for (unsigned k = 0; k < count && !*stop; k++) {
			rc = dt_generate(gen, o->seed + k, modes[m], g, o->length);
			if (rc == -ENOENT) {
				rc = 0;
				break;
			}
			if (rc)
				break;
			if (c->verbose)
				printf("generated %s (%zu bytes)\n", gen->test.name, gen->test.len);
			rc = account(c, dt_run_test_retry(c, &gen->test), stop);
		}
		printf("difftest: generator: %u sequences in %s, %" PRIu64 " instructions\n", count,
		       dt_mode_name(modes[m]), c->stats.steps - steps0);
	}
	free(gen);
	return rc;
}

static int ctx_init(struct dt_ctx *c, char *err, size_t errlen)
{
	int rc = dt_side_init(&c->kvm, &kvm_engine_ops, err, errlen);
	if (rc)
		return rc;
	rc = dt_side_init(&c->soft, &soft_engine_ops, err, errlen);
	if (rc) {
		dt_side_fini(&c->kvm);
		return rc;
	}
	/* Native stepping uses the guest's TF; KVM's own single-step only
	 * serves the emulated modes, where run.c asks for it. */
	struct cpu_state st;
	if (c->kvm.ops->get_state(c->kvm.vcpu, &st) == 0)
		c->apic_base = st.apic_base;
	c->oracle_amd = dt_host_is_amd();
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct dt_groups groups;
	struct dt_ctx *c = calloc(1, sizeof(*c)); /* large: not on the stack */
	char err[256] = "";
	bool stop = false;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&o, 0, sizeof(o));
	if (!c)
		return 2;
	if (parse_args(argc, argv, &o)) {
		usage();
		free(c);
		return 2;
	}
	if (load_groups(&o, &groups)) {
		free(c);
		return 2;
	}
	print_groups(&groups);
	struct errmsg why = {{0}};
	if (o.list_groups || !kvm_engine_ops.available(&why) || ctx_init(c, err, sizeof(err))) {
		if (!o.list_groups)
			skipped_banner(why.text[0] ? why.text : err);
		free(c);
		return 0;
	}
	c->verbose = o.verbose;
	c->keep_going = o.keep_going;
	c->ignore_frame_rf = o.ignore_frame_rf;
	c->objdump = "objdump";
	struct dt_watchdog *wd = dt_watchdog_start(&c->kvm);
	c->watchdog = wd;

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = 0;
	if (!o.no_corpus)
		rc = run_corpus(c, &o, &groups, &stop);
	if (!rc && !o.no_gen && !stop)
		rc = run_generator(c, &o, &groups, &stop);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	dt_watchdog_stop(wd);
	dt_side_fini(&c->soft);
	dt_side_fini(&c->kvm);

	struct dt_stats stats = c->stats;
	free(c);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	const struct dt_stats *s = &stats;
	printf("difftest: %" PRIu64 " tests, %" PRIu64 " instructions compared, %" PRIu64
	       " ended in an exception on both, %" PRIu64 " beyond the KVM emulator, %" PRIu64
	       " divergent, %" PRIu64 " KVM timeouts; %.1f s (kvm %.1f us/step, soft %.1f us/step)\n",
	       s->tests, s->steps, s->faults, s->oracle_skips, s->failures, s->oracle_timeouts, secs,
	       s->steps ? (double)s->kvm_ns / 1e3 / (double)s->steps : 0.0,
	       s->steps ? (double)s->soft_ns / 1e3 / (double)s->steps : 0.0);
	if (rc < 0)
		return 2;
	if (s->failures) {
		printf("difftest: FAILED (%" PRIu64 " divergent tests)\n", s->failures);
		return 1;
	}
	printf("difftest: PASSED\n");
	return 0;
}
