/* difftest: the differential tester's command line (see README.md). Two
 * comparisons: the soft CPU against KVM (skipped with a banner where KVM
 * is not usable) and the soft engine's translator against its
 * interpreter (always). Exit status: 0 when every comparison agrees, 1
 * on a divergence, 2 on a usage or tester error. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	bool jit_only, no_jit; /* which comparisons run: KVM, translator, or both */
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
	       "  --jit               only compare the soft engine's translator with its\n"
	       "                      interpreter (no KVM; long64 and kernel64 tests)\n"
	       "  --no-jit            only compare the soft CPU with KVM\n"
	       "                      (default: both; the translator comparison runs\n"
	       "                      also where KVM is not usable)\n"
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
			else if (strcmp(a, "--jit") == 0)
				o->jit_only = true;
			else if (strcmp(a, "--no-jit") == 0)
				o->no_jit = true;
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

static void skipped_banner(const char *why, bool jit_follows)
{
	printf("\n"
	       "######################################################################\n"
	       "##  difftest SKIPPED: KVM is not usable here (%s)\n"
	       "##  The soft CPU was NOT compared against the real processor%s\n"
	       "######################################################################\n\n",
	       why, jit_follows ? "\n##  (its translator is still compared with its interpreter)." : ".");
}

/* One comparison: KVM against the soft CPU (run.c), or the translator
 * against the interpreter (jitcmp.c). */
struct comparison {
	const char *prefix; /* for the summary lines */
	void *ctx;
	int (*run)(void *ctx, const struct dt_test *t);
	bool (*mode_ok)(enum dt_mode m);
	uint64_t (*instructions)(void *ctx);
	bool keep_going;
	uint64_t failures;
};

/* What a crash of the tester reports (a fault in translated code, say):
 * the test that was running, formatted before each test, written by the
 * signal handler with write(2). The only mutable globals here: a signal
 * handler has no other way to them. */
static char crash_msg[512];
static volatile sig_atomic_t crash_len;

static void crash_handler(int sig)
{
	(void)sig;
	if (crash_len > 0 && write(STDERR_FILENO, crash_msg, (size_t)crash_len) < 0)
		crash_len = 0;
	raise(sig); /* SA_RESETHAND restored the default action: it ends the process */
}

static void crash_handler_install(void)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = crash_handler;
	sa.sa_flags = (int)(SA_RESETHAND | SA_NODEFER);
	for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
		sigaction(sigs[k], &sa, NULL);
}

static void crash_note(const struct comparison *cmp, const struct dt_test *t)
{
	const char *r = t->repro ? t->repro : "";
	bool jit = strcmp(cmp->prefix, "") != 0;
	if (jit && strncmp(r, "difftest ", 9) == 0)
		r += 9;
	int n = snprintf(crash_msg, sizeof(crash_msg),
			 "\ndifftest: %scrashed in test %s; reproduce: %s%s\n", cmp->prefix, t->name,
			 jit ? "build/difftest --jit " : "", r);
	crash_len = n < 0 ? 0 : n < (int)sizeof(crash_msg) ? n : (int)sizeof(crash_msg) - 1;
}

static int kvm_run(void *ctx, const struct dt_test *t) { return dt_run_test_retry(ctx, t); }
static bool kvm_mode_ok(enum dt_mode m) { (void)m; return true; }
static uint64_t kvm_instructions(void *ctx) { return ((struct dt_ctx *)ctx)->stats.steps; }
static int jit_run(void *ctx, const struct dt_test *t) { return dt_jit_run_test(ctx, t); }
static uint64_t jit_instructions(void *ctx) { return dt_jit_get_stats(ctx)->instructions; }

/* Result bookkeeping: -errno aborts, 1 counts a divergence. */
static int account(struct comparison *cmp, int rc, bool *stop)
{
	if (rc < 0) {
		fprintf(stderr, "difftest: %stester failure: %s\n", cmp->prefix, strerror(-rc));
		*stop = true;
		return rc;
	}
	if (rc > 0) {
		cmp->failures++;
		if (!cmp->keep_going)
			*stop = true;
	}
	return 0;
}

static int run_corpus(struct comparison *cmp, const struct options *o, const struct dt_groups *g,
		      bool verbose, bool *stop)
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
	for (unsigned k = 0; k < corpus.n && !*stop && !rc; k++) {
		const struct dt_corpus_test *ct = &corpus.t[k];
		if (o->only_test && strcmp(o->only_test, ct->name) != 0)
			continue;
		found++;
		if (!o->only_test && !dt_group_enabled(g, ct->group)) {
			skipped++;
			continue;
		}
		for (int m = 0; m < DT_MODE_COUNT && !*stop && !rc; m++) {
			if (!(ct->modes & (1u << m)) || (o->mode_given && (int)o->mode != m) ||
			    !cmp->mode_ok((enum dt_mode)m))
				continue;
			dt_corpus_instantiate(ct, (enum dt_mode)m, &t, repro, sizeof(repro));
			if (verbose)
				printf("%scorpus %s\n", cmp->prefix, t.name);
			crash_note(cmp, &t);
			rc = account(cmp, cmp->run(cmp->ctx, &t), stop);
			ran++;
		}
	}
	printf("difftest: %scorpus: %u test runs from %u tests, %u tests skipped (group not enabled)\n",
	       cmp->prefix, ran, corpus.n, skipped);
	if (o->only_test && !found) {
		fprintf(stderr, "difftest: no corpus test named %s\n", o->only_test);
		rc = -ENOENT;
	}
	dt_corpus_free(&corpus);
	return rc;
}

static int run_generator(struct comparison *cmp, const struct options *o, const struct dt_groups *g,
			 bool verbose, bool *stop)
{
	static const enum dt_mode modes[] = {DT_MODE_LONG64, DT_MODE_COMPAT32, DT_MODE_PROT32};
	struct dt_gen *gen = malloc(sizeof(*gen));
	int rc = 0;
	if (!gen)
		return -ENOMEM;
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]) && !*stop && !rc; m++) {
		if ((o->mode_given && o->mode != modes[m]) || !cmp->mode_ok(modes[m]))
			continue;
		/* The emulated mode costs less per step and finds less: a quarter. */
		unsigned count = modes[m] == DT_MODE_LONG64 || o->mode_given ? o->iterations
									      : o->iterations / 4;
		uint64_t steps0 = cmp->instructions(cmp->ctx);
		for (unsigned k = 0; k < count && !*stop && !rc; k++) {
			rc = dt_generate(gen, o->seed + k, modes[m], g, o->length);
			if (rc == -ENOENT) {
				rc = 0;
				break;
			}
			if (rc)
				break;
			if (verbose)
				printf("%sgenerated %s (%zu bytes)\n", cmp->prefix, gen->test.name,
				       gen->test.len);
			crash_note(cmp, &gen->test);
			rc = account(cmp, cmp->run(cmp->ctx, &gen->test), stop);
		}
		printf("difftest: %sgenerator: %u sequences in %s, %" PRIu64 " instructions\n",
		       cmp->prefix, count, dt_mode_name(modes[m]), cmp->instructions(cmp->ctx) - steps0);
	}
	free(gen);
	return rc;
}

static int run_comparison(struct comparison *cmp, const struct options *o,
			  const struct dt_groups *g, bool verbose)
{
	bool stop = false;
	int rc = 0;
	if (!o->no_corpus)
		rc = run_corpus(cmp, o, g, verbose, &stop);
	if (!rc && !o->no_gen && !stop)
		rc = run_generator(cmp, o, g, verbose, &stop);
	return rc;
}

static int ctx_init(struct dt_ctx *c, char *err, size_t errlen)
{
	int rc = dt_side_init(&c->kvm, &kvm_engine_ops, false, err, errlen);
	if (rc)
		return rc;
	/* Single-stepped, the soft engine never runs its translator: the
	 * interpreter alone (jitcmp.c compares the translator with it). */
	rc = dt_side_init(&c->soft, &soft_engine_ops, true, err, errlen);
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

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* KVM against the soft CPU. Returns -errno on a tester failure, else the
 * number of divergent tests in *failures (0 when KVM is not usable). */
static int compare_with_kvm(const struct options *o, const struct dt_groups *g, uint64_t *failures)
{
	struct dt_ctx *c = calloc(1, sizeof(*c)); /* large: not on the stack */
	char err[256] = "";
	struct errmsg why = {{0}};
	*failures = 0;
	if (!c)
		return -ENOMEM;
	if (!kvm_engine_ops.available(&why) || ctx_init(c, err, sizeof(err))) {
		skipped_banner(why.text[0] ? why.text : err, !o->no_jit);
		free(c);
		return 0;
	}
	c->verbose = o->verbose;
	c->keep_going = o->keep_going;
	c->ignore_frame_rf = o->ignore_frame_rf;
	c->objdump = "objdump";
	struct dt_watchdog *wd = dt_watchdog_start(&c->kvm);
	c->watchdog = wd;

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct comparison cmp = {.prefix = "", .ctx = c, .run = kvm_run, .mode_ok = kvm_mode_ok,
				 .instructions = kvm_instructions, .keep_going = o->keep_going};
	int rc = run_comparison(&cmp, o, g, o->verbose);
	double secs = seconds_since(&t0);

	dt_watchdog_stop(wd);
	dt_side_fini(&c->soft);
	dt_side_fini(&c->kvm);

	struct dt_stats stats = c->stats;
	free(c);
	const struct dt_stats *s = &stats;
	printf("difftest: %" PRIu64 " tests, %" PRIu64 " instructions compared, %" PRIu64
	       " ended in an exception on both, %" PRIu64 " beyond the KVM emulator, %" PRIu64
	       " divergent, %" PRIu64 " KVM timeouts; %.1f s (kvm %.1f us/step, soft %.1f us/step)\n",
	       s->tests, s->steps, s->faults, s->oracle_skips, cmp.failures, s->oracle_timeouts, secs,
	       s->steps ? (double)s->kvm_ns / 1e3 / (double)s->steps : 0.0,
	       s->steps ? (double)s->soft_ns / 1e3 / (double)s->steps : 0.0);
	*failures = cmp.failures;
	return rc;
}

/* The translator against the interpreter (no KVM needed). */
static int compare_jit(const struct options *o, const struct dt_groups *g, uint64_t *failures)
{
	struct dt_jit_ctx *j;
	char err[256] = "";
	*failures = 0;
	if (o->mode_given && !dt_jit_mode(o->mode)) {
		printf("difftest: jit: the translator does not run %s code; nothing to compare\n",
		       dt_mode_name(o->mode));
		return 0;
	}
	int rc = dt_jit_init(&j, "objdump", o->verbose, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "difftest: jit: %s\n", err);
		return rc;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct comparison cmp = {.prefix = "jit: ", .ctx = j, .run = jit_run, .mode_ok = dt_jit_mode,
				 .instructions = jit_instructions, .keep_going = o->keep_going};
	rc = run_comparison(&cmp, o, g, o->verbose);
	double secs = seconds_since(&t0);
	const struct dt_jit_stats *s = dt_jit_get_stats(j);
	printf("difftest: jit: %" PRIu64 " sequences, %" PRIu64 " divergent (%" PRIu64
	       " instructions; %" PRIu64 " differed through undefined flags only, %" PRIu64
	       " ended on neither side; %" PRIu64 " translations, %" PRIu64
	       " handler calls from translated code); %.1f s\n",
	       s->tests, cmp.failures, s->instructions, s->explained, s->loops, s->blocks,
	       s->fallbacks, secs);
	*failures = cmp.failures;
	dt_jit_fini(j);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o;
	struct dt_groups groups;
	uint64_t kvm_failures = 0, jit_failures = 0;
	int rc = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	crash_handler_install();
	memset(&o, 0, sizeof(o));
	if (parse_args(argc, argv, &o) || (o.jit_only && o.no_jit)) {
		usage();
		return 2;
	}
	if (load_groups(&o, &groups))
		return 2;
	print_groups(&groups);
	if (o.list_groups)
		return 0;
	if (!o.jit_only)
		rc = compare_with_kvm(&o, &groups, &kvm_failures);
	if (!o.no_jit && rc >= 0 && (o.keep_going || !kvm_failures))
		rc = compare_jit(&o, &groups, &jit_failures);
	if (rc < 0)
		return 2;
	if (kvm_failures || jit_failures) {
		printf("difftest: FAILED (%" PRIu64 " divergent tests against KVM, %" PRIu64
		       " translator against interpreter)\n",
		       kvm_failures, jit_failures);
		return 1;
	}
	printf("difftest: PASSED\n");
	return 0;
}
