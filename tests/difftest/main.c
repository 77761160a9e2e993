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
#define DEFAULT_RECORD "tests/difftest/recorded/results.txt"

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
	bool seed_given;
	const char *record;    /* --record FILE: record KVM's results */
	const char *replay;    /* --replay FILE: compare with recorded results, not KVM */
	const char *results;   /* the recorded results used without KVM */
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
	       "  --record FILE       record the real processor's results (needs KVM; what\n"
	       "                      make difftest-record runs)\n"
	       "  --replay FILE       compare the soft CPU with the results recorded in FILE\n"
	       "                      instead of KVM (automatic where KVM is not usable,\n"
	       "                      with " DEFAULT_RECORD ")\n"
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
	o->results = DEFAULT_RECORD;
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
			o->seed_given = true;
		} else if (strcmp(a, "--record") == 0 && val) {
			o->record = val;
		} else if (strcmp(a, "--replay") == 0 && val) {
			o->replay = o->results = val;
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

/* Generated sequences per mode: the emulated modes cost less per step
 * and find less, a quarter. */
static unsigned mode_count(const struct options *o, enum dt_mode m)
{
	if (m != DT_MODE_LONG64 && m != DT_MODE_COMPAT32 && m != DT_MODE_PROT32)
		return 0;
	if (o->mode_given)
		return o->mode == m ? o->iterations : 0;
	return m == DT_MODE_LONG64 ? o->iterations : o->iterations / 4;
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
		unsigned count = mode_count(o, modes[m]);
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

/* ---- recorded results ---- */

/* The groups of the groups file, whatever --groups says: what `make
 * difftest` runs, and so what the recording must cover. */
static int file_groups(const struct options *o, struct dt_groups *g)
{
	struct options f = *o;
	f.groups_arg = NULL;
	return load_groups(&f, g);
}

/* Whether the run is the default one, that the recording covers. */
static bool broad_run(const struct options *o)
{
	return !o->only_test && !o->mode_given && !o->seed_given && !o->no_gen && !o->no_corpus &&
	       !o->groups_arg;
}

/* The record's freshness against this tester: version, generator output,
 * undefined-flags table, groups and corpus. Returns the problems found
 * (each printed). */
static unsigned check_record(const struct options *o, struct dt_record *r, const char *path)
{
	struct dt_corpus corpus = {0};
	struct dt_groups fg;
	char err[256], prefix[300];
	if (file_groups(o, &fg))
		return 1;
	if (dt_corpus_load(&corpus, o->corpus_dir, err, sizeof(err))) {
		printf("difftest: corpus: %s\n", err);
		return 1;
	}
	snprintf(prefix, sizeof(prefix), "difftest: %s is STALE: ", path);
	unsigned problems = dt_record_check(r, &corpus, &fg, prefix);
	dt_corpus_free(&corpus);
	if (problems)
		printf("difftest: record the real processor's results again, on a machine with "
		       "/dev/kvm: make difftest-record, and commit %s\n",
		       path);
	return problems;
}

/* What the comparison with the processor found. */
struct outcome {
	uint64_t failures;   /* divergent tests */
	unsigned stale;      /* problems with the recorded results */
	const char *against; /* KVM, or the recorded results */
};

struct replay {
	struct dt_ctx *c;
	struct dt_record *rec;
	const char *path;
	bool gen_ok; /* the run generates the recorded sequences (same groups, length) */
	uint64_t compared, not_recorded, stale, missing;
};

static int replay_run(void *ctx, const struct dt_test *t)
{
	struct replay *rp = ctx;
	bool stale = false;
	struct dt_result *r = NULL;
	if (!t->generated || rp->gen_ok)
		r = dt_record_slot(rp->rec, t, false, &stale);
	if (!r) {
		if (stale)
			rp->stale++;
		else
			rp->not_recorded++;
		return 0;
	}
	if (r->missing) {
		rp->missing++;
		return 0;
	}
	rp->compared++;
	return dt_replay_test(rp->c, t, r, rp->path);
}

static uint64_t replay_instructions(void *ctx) { return ((struct replay *)ctx)->c->stats.steps; }

/* The soft CPU against the results recorded in path. */
/* Loads the recording for a comparison (check: for the check after a KVM
 * run). Returns 0 with *rec NULL when there is nothing to compare (the
 * reason printed, out->stale set for a check). */
static int load_recording(const struct options *o, const char *path, const char *no_kvm,
			  bool check, struct outcome *out, struct dt_record **rec)
{
	char err[256] = "";
	int rc = dt_record_load(rec, path, err, sizeof(err));
	if (rc && check) {
		printf("difftest: no usable recorded results: %s\n"
		       "difftest: record them: make difftest-record\n",
		       err);
		out->stale = 1;
		return 0;
	}
	if (rc == -ENOENT && no_kvm) {
		char why[600];
		snprintf(why, sizeof(why), "%s; no recorded results at %s", no_kvm, path);
		skipped_banner(why, !o->no_jit);
		return 0;
	}
	if (rc) {
		fprintf(stderr, "difftest: %s\n", err);
		return rc;
	}
	if (no_kvm)
		printf("difftest: KVM is not usable here (%s):\n", no_kvm);
	if (check)
		printf("difftest: checking the recorded results in %s (for machines without KVM) "
		       "against this soft CPU\n",
		       path);
	else
		printf("difftest: comparing the soft CPU with the real processor's results recorded in "
		       "%s\ndifftest: (oracle: %s)\n",
		       path, dt_record_oracle(*rec));
	return 0;
}

/* A tester context with a soft side only (interpreter). */
static struct dt_ctx *soft_only_ctx(const struct options *o, bool check)
{
	char err[256] = "";
	struct dt_ctx *c = calloc(1, sizeof(*c));
	if (!c || dt_side_init(&c->soft, &soft_engine_ops, true, err, sizeof(err))) {
		fprintf(stderr, "difftest: %s\n", c ? err : "out of memory");
		free(c);
		return NULL;
	}
	struct cpu_state st;
	if (c->soft.ops->get_state(c->soft.vcpu, &st) == 0)
		c->apic_base = st.apic_base;
	c->verbose = o->verbose;
	if (check) {
		c->reports = DT_FULL_REPORTS; /* one line per test, five tests */
		c->report_limit = DT_FULL_REPORTS + 5;
	}
	return c;
}

static void print_replay_summary(const struct comparison *cmp, const struct replay *rp,
				 double secs)
{
	printf("difftest: %scompared against recorded real-processor results (%" PRIu64
	       " tests): %" PRIu64 " instructions, %" PRIu64 " divergent; %" PRIu64
	       " tests not in the recording, %" PRIu64 " stale, %" PRIu64
	       " without a recorded result; %.1f s\n",
	       cmp->prefix, rp->compared, rp->c->stats.steps, cmp->failures, rp->not_recorded,
	       rp->stale, rp->missing, secs);
}

/* The soft CPU against the results recorded in path (no_kvm: why KVM is
 * not used). check: where KVM just agreed with the soft CPU, whether the
 * recording still describes this tester and soft CPU; a divergence means
 * it is stale, and every difference is counted in out->stale. */
static int compare_with_record(const struct options *o, const struct dt_groups *g, const char *path,
			       const char *no_kvm, struct outcome *out, bool check)
{
	char groups[512];
	struct dt_record *rec = NULL;
	int rc = load_recording(o, path, no_kvm, check, out, &rec);
	if (rc || !rec)
		return rc;
	unsigned problems = check_record(o, rec, path);
	struct replay rp = {.rec = rec, .path = path, .c = soft_only_ctx(o, check)};
	if (!rp.c) {
		dt_record_free(rec);
		return -ENOMEM;
	}
	dt_groups_string(g, groups, sizeof(groups));
	rp.gen_ok = strcmp(groups, dt_record_params(rec)->groups) == 0 &&
		    o->length == dt_record_params(rec)->length;

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct comparison cmp = {.prefix = check ? "record check: " : "", .ctx = &rp,
				 .run = replay_run, .mode_ok = kvm_mode_ok,
				 .instructions = replay_instructions, .keep_going = o->keep_going};
	rc = run_comparison(&cmp, o, g, o->verbose);
	print_replay_summary(&cmp, &rp, seconds_since(&t0));
	if (!rp.gen_ok && !o->no_gen)
		printf("difftest: (generated sequences are recorded for the groups and length of the "
		       "recording only)\n");
	out->failures = check ? 0 : cmp.failures;
	out->stale = problems + (check ? (unsigned)cmp.failures : 0);
	if (check && cmp.failures)
		printf("difftest: %" PRIu64 " tests differ from the recording, where the soft CPU agrees "
		       "with KVM: the recording is stale (the tester changed?): make difftest-record\n",
		       cmp.failures);
	dt_side_fini(&rp.c->soft);
	free(rp.c);
	dt_record_free(rec);
	return rc;
}

struct recorder {
	struct dt_ctx *c;
	struct dt_record *rec;
};

static int record_run(void *ctx, const struct dt_test *t)
{
	struct recorder *r = ctx;
	bool stale;
	r->c->rec = dt_record_slot(r->rec, t, true, &stale);
	if (!r->c->rec)
		return -ENOMEM;
	int rc = dt_run_test_retry(r->c, t);
	r->c->rec = NULL;
	return rc;
}

static uint64_t record_instructions(void *ctx) { return ((struct recorder *)ctx)->c->stats.steps; }

static struct dt_record *new_record(const struct options *o, const struct dt_groups *g)
{
	struct dt_record_params p;
	char cpu[200], oracle[256];
	memset(&p, 0, sizeof(p));
	dt_groups_string(g, p.groups, sizeof(p.groups));
	p.length = o->length;
	p.seed = o->seed;
	for (int m = 0; m < DT_MODE_COUNT && !o->no_gen; m++)
		p.count[m] = mode_count(o, (enum dt_mode)m);
	dt_host_cpu_name(cpu, sizeof(cpu));
	snprintf(oracle, sizeof(oracle), "%s; through KVM%s", cpu,
		 access("/sys/module/kvm_pvm", F_OK) == 0 ? " (PVM)" : "");
	return dt_record_new(&p, oracle);
}

static void print_kvm_summary(const struct dt_stats *s, uint64_t failures, double secs)
{
	printf("difftest: %" PRIu64 " tests, %" PRIu64 " instructions compared, %" PRIu64
	       " ended in an exception on both, %" PRIu64 " beyond the KVM emulator, %" PRIu64
	       " divergent, %" PRIu64 " KVM timeouts; %.1f s (kvm %.1f us/step, soft %.1f us/step)\n",
	       s->tests, s->steps, s->faults, s->oracle_skips, failures, s->oracle_timeouts, secs,
	       s->steps ? (double)s->kvm_ns / 1e3 / (double)s->steps : 0.0,
	       s->steps ? (double)s->soft_ns / 1e3 / (double)s->steps : 0.0);
}

/* After a --record run: writes the file, unless the digests disagreed. */
static int save_record(const struct options *o, struct dt_record *rec, const struct dt_stats *s,
		       uint64_t failures)
{
	char err[256];
	int rc = 0;
	if (s->record_errors) {
		fprintf(stderr, "difftest: %" PRIu64 " digests disagree: not recording\n",
			s->record_errors);
		return -EPROTO;
	}
	if ((rc = dt_record_save(rec, o->record, err, sizeof(err)))) {
		fprintf(stderr, "difftest: %s\n", err);
		return rc;
	}
	printf("difftest: recorded the results of %" PRIu64 " tests in %s%s\n", s->tests, o->record,
	       failures ? " (divergent tests recorded as the processor ran them)" : "");
	return 0;
}

/* The KVM comparison proper (recording with --record): c is initialised. */
static int run_kvm_comparison(const struct options *o, const struct dt_groups *g,
			      struct dt_ctx *c, struct outcome *out)
{
	c->verbose = o->verbose;
	c->keep_going = o->keep_going;
	c->ignore_frame_rf = o->ignore_frame_rf;
	c->objdump = "objdump";
	c->watchdog = dt_watchdog_start(&c->kvm);

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct comparison cmp = {.prefix = "", .ctx = c, .run = kvm_run, .mode_ok = kvm_mode_ok,
				 .instructions = kvm_instructions, .keep_going = o->keep_going};
	struct recorder recorder = {.c = c};
	int rc = 0;
	if (o->record) {
		cmp.ctx = &recorder;
		cmp.run = record_run;
		cmp.instructions = record_instructions;
		if (!(recorder.rec = new_record(o, g)))
			rc = -ENOMEM;
	}
	if (!rc)
		rc = run_comparison(&cmp, o, g, o->verbose);
	dt_watchdog_stop(c->watchdog);
	print_kvm_summary(&c->stats, cmp.failures, seconds_since(&t0));
	out->failures = cmp.failures;
	if (!rc && o->record)
		rc = save_record(o, recorder.rec, &c->stats, cmp.failures);
	dt_record_free(recorder.rec);
	return rc;
}

/* KVM against the soft CPU (and recording its results with --record);
 * without KVM, or with --replay, the soft CPU against the recorded
 * results. Returns -errno on a tester failure, else what it found in
 * *out. */
static int compare_with_kvm(const struct options *o, const struct dt_groups *g,
			    struct outcome *out)
{
	struct dt_ctx *c; /* large: not on the stack */
	char err[256] = "";
	struct errmsg why = {{0}};
	if (o->replay) {
		out->against = "against the recorded results";
		return compare_with_record(o, g, o->replay, NULL, out, false);
	}
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	if (!kvm_engine_ops.available(&why) || ctx_init(c, err, sizeof(err))) {
		free(c);
		if (o->record) {
			fprintf(stderr, "difftest: --record needs KVM: %s\n", why.text[0] ? why.text : err);
			return -ENODEV;
		}
		out->against = "against the recorded results";
		return compare_with_record(o, g, o->results, why.text[0] ? why.text : err, out, false);
	}
	int rc = run_kvm_comparison(o, g, c, out);
	dt_side_fini(&c->soft);
	dt_side_fini(&c->kvm);
	free(c);
	if (!rc && !o->record && broad_run(o) && !out->failures) {
		/* The recording is for machines without KVM, and can only be
		 * renewed where KVM is: its staleness fails the run here. */
		struct outcome chk = {0};
		rc = compare_with_record(o, g, o->results, NULL, &chk, true);
		out->stale = chk.stale;
	}
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
	uint64_t jit_failures = 0;
	struct outcome kvm = {.against = "against KVM"};
	int rc = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	crash_handler_install();
	memset(&o, 0, sizeof(o));
	if (parse_args(argc, argv, &o) || (o.jit_only && o.no_jit) || (o.record && o.replay) ||
	    (o.record && o.jit_only)) {
		usage();
		return 2;
	}
	if (load_groups(&o, &groups))
		return 2;
	print_groups(&groups);
	if (o.list_groups)
		return 0;
	if (!o.jit_only)
		rc = compare_with_kvm(&o, &groups, &kvm);
	if (!o.no_jit && !o.record && rc >= 0 && (o.keep_going || !kvm.failures))
		rc = compare_jit(&o, &groups, &jit_failures);
	if (rc < 0)
		return 2;
	if (kvm.failures || jit_failures || kvm.stale) {
		printf("difftest: FAILED (%" PRIu64 " divergent tests %s, %" PRIu64
		       " translator against interpreter%s)\n",
		       kvm.failures, kvm.against, jit_failures,
		       kvm.stale ? "; the recorded results are stale" : "");
		return 1;
	}
	printf("difftest: PASSED\n");
	return 0;
}
