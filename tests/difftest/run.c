/* Running one test on both engines, instruction by instruction, and
 * reporting the first divergence.
 *
 * Stepping. The soft engine single-steps through the engine interface.
 * KVM's stepping depends on where the oracle is (dt_mode_oracle): native
 * 64-bit CPL3 code is stepped with the guest's own trap flag (KVM's
 * guest-debug single-step is not honoured there on a PVM host): the state
 * is loaded with TF set, the processor executes one instruction and takes
 * #DB through the guest IDT to the vector-1 stub, whose magic port write
 * ends the run; the user state after the instruction is the interrupt
 * frame plus the untouched registers. Two artefacts of this are undone
 * before comparing: TF in RFLAGS images the instruction or an exception
 * pushed to memory, and the #DB frame on the ring-0 stack.
 * Emulated modes use KVM_GUESTDBG_SINGLESTEP. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "difftest.h"

#define FLAG_TF_BIT 0x100ULL
#define FLAG_RF_BIT 0x10000ULL
#define MAX_HANDLER_STEPS 3
#define MAX_REP_ITERATIONS 4096

enum dt_oracle dt_mode_oracle(enum dt_mode m)
{
	return m == DT_MODE_LONG64 ? DT_ORACLE_NATIVE : DT_ORACLE_EMULATOR;
}

/* ---- watchdog ---- */

struct dt_watchdog {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dt_side *side; /* the side whose run() it kicks */
	bool armed, stop;
	struct timespec deadline;
};

static void deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *watchdog_main(void *arg)
{
	struct dt_watchdog *w = arg;
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (!w->armed) {
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}
		struct timespec dl = w->deadline;
		if (pthread_cond_timedwait(&w->cond, &w->lock, &dl) == ETIMEDOUT && w->armed &&
		    w->deadline.tv_sec == dl.tv_sec && w->deadline.tv_nsec == dl.tv_nsec) {
			atomic_store(&w->side->watchdog_fired, true);
			w->side->ops->kick(w->side->vcpu);
			w->armed = false;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct dt_watchdog *dt_watchdog_start(struct dt_side *side)
{
	struct dt_watchdog *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->side = side;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->thread, NULL, watchdog_main, w)) {
		free(w);
		return NULL;
	}
	return w;
}

void dt_watchdog_arm_ms(struct dt_watchdog *w, long ms)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->armed = ms > 0;
	if (ms > 0)
		deadline_in(&w->deadline, ms);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void dt_watchdog_arm(struct dt_watchdog *w, bool on)
{
	dt_watchdog_arm_ms(w, on ? 5000 : 0);
}

void dt_watchdog_stop(struct dt_watchdog *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* ---- memory ---- */

/* Everything a test can write: CPL3 tests only the data and stack areas,
 * the ring-0 stack through exception frames, CPL0 tests any of these. */
const struct dt_range dt_compared[] = {
    {DT_DATA_ADDR, DT_DATA_SIZE, "data"},
    {DT_STACK_ADDR, DT_STACK_SIZE, "stack"},
    {DT_KSTACK_ADDR, DT_KSTACK_TOP - DT_KSTACK_ADDR, "ring-0 stack"},
    {DT_GDT_ADDR, 0x4000, "GDT/IDT/TSS"},
    {DT_PML4_ADDR, 0x6000, "page tables"},
    {DT_CODE_ADDR, DT_CODE_SIZE, "code"},
    {DT_READONLY, 0x1000, "read-only page"},
    {DT_SUPERVISOR, 0x1000, "supervisor page"},
};
#define NCOMPARED (sizeof(dt_compared) / sizeof(dt_compared[0]))
const unsigned dt_ncompared = NCOMPARED;

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill_pattern(uint8_t *buf, size_t len, uint64_t seed)
{
	for (size_t k = 0; k < len; k += 8) {
		uint64_t v = splitmix(&seed);
		memcpy(buf + k, &v, len - k < 8 ? len - k : 8);
	}
}

static uint8_t *side_ptr(struct dt_side *s, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&s->mem, gpa, len);
}

int dt_prepare_memory(struct dt_side *s, const struct dt_test *t)
{
	static const uint8_t zero_page[0x1000];
	uint8_t *code = side_ptr(s, DT_CODE_ADDR, DT_CODE_SIZE);
	uint8_t *data = side_ptr(s, DT_DATA_ADDR, DT_DATA_SIZE);
	uint8_t *stack = side_ptr(s, DT_STACK_ADDR, DT_STACK_SIZE);
	uint8_t *kstack = side_ptr(s, DT_KSTACK_ADDR, DT_KSTACK_TOP - DT_KSTACK_ADDR);
	uint8_t *ro = side_ptr(s, DT_READONLY, 0x1000), *sup = side_ptr(s, DT_SUPERVISOR, 0x1000);

	if (!code || !data || !stack || !kstack || !ro || !sup || t->len > DT_CODE_SIZE)
		return -EFAULT;
	memset(code, 0, DT_CODE_SIZE);
	memcpy(code, t->code, t->len);
	if (t->data)
		memcpy(data, t->data, DT_DATA_SIZE);
	else
		fill_pattern(data, DT_DATA_SIZE, t->seed);
	if (t->stack)
		memcpy(stack, t->stack, DT_STACK_SIZE);
	else
		fill_pattern(stack, DT_STACK_SIZE, t->seed ^ 0x5555);
	memset(kstack, 0, DT_KSTACK_TOP - DT_KSTACK_ADDR);
	fill_pattern(ro, 0x1000, 0x1234);
	memcpy(sup, zero_page, sizeof(zero_page));
	/* Written through host pointers: decoded code of the last test is stale. */
	guest_mem_code_written(&s->mem, 0, DT_MEM_SIZE);
	return dt_machine_write(&s->mem); /* undo any CPL0 test's writes */
}

/* ---- state comparison ---- */

struct cmp {
	uint64_t flag_mask; /* undefined flags, ignored */
	char fields[512];   /* names of differing fields */
};

static void note(struct cmp *c, const char *name)
{
	size_t n = strlen(c->fields);
	snprintf(c->fields + n, sizeof(c->fields) - n, "%s%s", n ? " " : "", name);
}

/* A null selector's hidden part (SS after an interrupt to CPL0 in 64-bit
 * mode) is model-specific and reported differently by each engine; only
 * the selector is architectural. */
bool dt_seg_equal(const struct segment *a, const struct segment *b)
{
	if ((a->unusable && b->unusable) || ((a->selector & ~3) == 0 && (b->selector & ~3) == 0 &&
					      a->s == b->s && !(a->type & 8)))
		return a->selector == b->selector;
	return a->base == b->base && a->limit == b->limit && a->selector == b->selector &&
	       a->type == b->type && a->s == b->s && a->dpl == b->dpl && a->present == b->present &&
	       a->l == b->l && a->db == b->db && a->g == b->g && a->unusable == b->unusable;
}

const char *const dt_gpr_names[GPR_COUNT] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp",
						  "rsi", "rdi", "r8",  "r9",  "r10", "r11",
						  "r12", "r13", "r14", "r15"};
const char *const dt_seg_names[SEG_COUNT] = {"es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"};

static bool compare_state(const struct cpu_state *k, const struct cpu_state *s, struct cmp *c)
{
	for (int r = 0; r < GPR_COUNT; r++)
		if (k->gpr[r] != s->gpr[r])
			note(c, dt_gpr_names[r]);
	if (k->rip != s->rip)
		note(c, "rip");
	uint64_t ignore = c->flag_mask | FLAG_TF_BIT;
	if ((k->rflags & ~ignore) != (s->rflags & ~ignore))
		note(c, "rflags");
	for (int r = 0; r < SEG_COUNT; r++)
		if (!dt_seg_equal(&k->seg[r], &s->seg[r]))
			note(c, dt_seg_names[r]);
	if (k->cr0 != s->cr0)
		note(c, "cr0");
	if (k->cr2 != s->cr2)
		note(c, "cr2");
	if (k->cr3 != s->cr3)
		note(c, "cr3");
	if (k->cr4 != s->cr4)
		note(c, "cr4");
	if (k->efer != s->efer)
		note(c, "efer");
	if (k->gdt.base != s->gdt.base || k->gdt.limit != s->gdt.limit)
		note(c, "gdtr");
	if (k->idt.base != s->idt.base || k->idt.limit != s->idt.limit)
		note(c, "idtr");
	return c->fields[0] == 0;
}

static bool events_equal(const struct dt_side *k, const struct dt_side *s)
{
	if (k->nev != s->nev || k->lost_ev != s->lost_ev)
		return false;
	for (unsigned n = 0; n < k->nev; n++) {
		const struct dt_event *a = &k->ev[n], *b = &s->ev[n];
		uint64_t m = a->size >= 8 ? ~0ULL : (1ULL << (a->size * 8)) - 1;
		if (a->kind != b->kind || a->size != b->size || a->write != b->write ||
		    a->addr != b->addr || (a->data & m) != (b->data & m))
			return false;
	}
	return true;
}

/* First differing range, or -1. */
static int compare_memory(struct dt_side *k, struct dt_side *s, uint64_t *where)
{
	for (unsigned r = 0; r < NCOMPARED; r++) {
		const uint8_t *a = side_ptr(k, dt_compared[r].base, dt_compared[r].size);
		const uint8_t *b = side_ptr(s, dt_compared[r].base, dt_compared[r].size);
		if (!a || !b || memcmp(a, b, dt_compared[r].size) == 0)
			continue;
		for (uint64_t off = 0; off < dt_compared[r].size; off++)
			if (a[off] != b[off]) {
				*where = dt_compared[r].base + off;
				return (int)r;
			}
	}
	return -1;
}

/* ---- reporting ---- */

void dt_print_hex(const uint8_t *b, size_t n)
{
	for (size_t k = 0; k < n; k++)
		printf("%s%02x", k ? " " : "", b[k]);
}

static const char *objdump_arch(enum dt_mode m)
{
	switch (dt_mode_bits(m)) {
	case 2: return "-mi8086";
	case 4: return "-mi386";
	default: return "-mi386:x86-64";
	}
}

/* Disassembly for reports only: objdump on a temporary file, fn called
 * for each instruction line with its offset and text (AT&T syntax, the
 * bytes included, newline stripped). Returns the number of lines, or -1
 * when objdump cannot run. */
int dt_disassemble(const char *objdump, enum dt_mode m, const uint8_t *b, size_t n,
		   void (*fn)(void *opaque, uint64_t off, const char *text), void *opaque)
{
	char path[] = "/tmp/difftest-insn-XXXXXX", cmd[512], line[512];
	int lines = -1;
	if (!objdump)
		return -1;
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	bool ok = write(fd, b, n) == (ssize_t)n;
	close(fd);
	FILE *p = NULL;
	if (ok) {
		snprintf(cmd, sizeof(cmd), "%s -D -b binary %s --stop-address=%zu %s 2>/dev/null",
			 objdump, objdump_arch(m), n, path);
		p = popen(cmd, "r");
	}
	while (p && fgets(line, sizeof(line), p)) {
		char *end;
		unsigned long long off = strtoull(line, &end, 16);
		if (end == line || *end != ':' || line[0] != ' ')
			continue;
		line[strcspn(line, "\n")] = 0;
		if (lines < 0)
			lines = 0;
		lines++;
		fn(opaque, off, end + 1);
	}
	if (p)
		pclose(p);
	unlink(path);
	return lines;
}

static void print_first_line(void *opaque, uint64_t off, const char *text)
{
	bool *done = opaque;
	if (off == 0 && !*done)
		printf("  disassembly: %s\n", text);
	*done = true;
}

static void print_disassembly(const struct dt_ctx *c, enum dt_mode m, const uint8_t *b, size_t n)
{
	bool done = false;
	dt_disassemble(c->objdump, m, b, n, print_first_line, &done);
}

static void print_seg_row(const char *name, const struct segment *a, const struct segment *b)
{
	printf("  %-6s %04x b=%08" PRIx64 " l=%08x t=%x s%u d%u p%u l%u db%u g%u u%u   "
	       "%04x b=%08" PRIx64 " l=%08x t=%x s%u d%u p%u l%u db%u g%u u%u%s\n",
	       name, a->selector, a->base, a->limit, a->type, a->s, a->dpl, a->present, a->l,
	       a->db, a->g, a->unusable, b->selector, b->base, b->limit, b->type, b->s, b->dpl,
	       b->present, b->l, b->db, b->g, b->unusable, dt_seg_equal(a, b) ? "" : "  <--");
}

static void print_row(const char *name, uint64_t a, uint64_t b, uint64_t ignore)
{
	printf("  %-6s %016" PRIx64 "   %016" PRIx64 "%s\n", name, a, b,
	       (a & ~ignore) != (b & ~ignore) ? "  <--" : "");
}

static void print_states(const struct cpu_state *k, const struct cpu_state *s, uint64_t mask)
{
	printf("         %-16s   %-16s\n", "kvm", "soft");
	for (int r = 0; r < GPR_COUNT; r++)
		print_row(dt_gpr_names[r], k->gpr[r], s->gpr[r], 0);
	print_row("rip", k->rip, s->rip, 0);
	print_row("rflags", k->rflags, s->rflags, mask | FLAG_TF_BIT);
	if (mask)
		printf("         (undefined flags ignored: %03" PRIx64 ")\n", mask);
	for (int r = 0; r < SEG_COUNT; r++)
		print_seg_row(dt_seg_names[r], &k->seg[r], &s->seg[r]);
	print_row("cr0", k->cr0, s->cr0, 0);
	print_row("cr2", k->cr2, s->cr2, 0);
	print_row("cr3", k->cr3, s->cr3, 0);
	print_row("cr4", k->cr4, s->cr4, 0);
	print_row("efer", k->efer, s->efer, 0);
	print_row("gdtr", k->gdt.base << 16 | k->gdt.limit, s->gdt.base << 16 | s->gdt.limit, 0);
	print_row("idtr", k->idt.base << 16 | k->idt.limit, s->idt.base << 16 | s->idt.limit, 0);
}

static void print_events(const char *name, const struct dt_side *s)
{
	printf("  %s accesses (%u%s):", name, s->nev, s->lost_ev ? ", some lost" : "");
	for (unsigned n = 0; n < s->nev && n < 8; n++) {
		const struct dt_event *e = &s->ev[n];
		printf(" %s%s %" PRIx64 "/%u=%" PRIx64, e->kind == DT_EV_PIO ? "pio" : "mmio",
		       e->write ? "-w" : "-r", e->addr, e->size, e->data);
	}
	printf("%s\n", s->nev > 8 ? " ..." : "");
}

static const char *exit_desc(const struct dt_side *s, char *buf, size_t len)
{
	if (s->exc_vector >= 0)
		snprintf(buf, len, "exception vector %d", s->exc_vector);
	else
		snprintf(buf, len, "exit %s (detail %" PRIu64 ")", vcpu_exit_kind_name(s->last_exit),
			 s->last_detail);
	return buf;
}

struct step_info {
	unsigned index;
	uint64_t rip_linear;
	uint8_t bytes[16];
	size_t nbytes;
	struct cpu_state before;
	struct dt_opinfo op;
};

static void report(struct dt_ctx *c, const struct dt_test *t, const struct step_info *si,
		   const char *what, const struct cpu_state *k, const struct cpu_state *s,
		   uint64_t mask)
{
	char e1[96], e2[96];
	bool full = c->reports++ < DT_FULL_REPORTS;
	printf("%sDIVERGENCE in test %s (group %s, mode %s, oracle %s) at step %u: %s\n",
	       full ? "\n" : "", t->name, t->group ? t->group : "-", dt_mode_name(t->mode),
	       dt_mode_oracle(t->mode) == DT_ORACLE_NATIVE ? "native" : "KVM emulator",
	       si->index, what);
	if (!full) {
		printf("  instruction: ");
		dt_print_hex(si->bytes, si->nbytes);
		printf("\n");
		print_disassembly(c, t->mode, si->bytes, si->nbytes);
		return;
	}
	uint64_t off = si->rip_linear - DT_CODE_ADDR;
	if (t->tags && si->rip_linear >= DT_CODE_ADDR && off < t->len && t->tags[off])
		printf("  generated by template '%s'\n", t->tags[off]);
	printf("  instruction at %08" PRIx64 ": ", si->rip_linear);
	dt_print_hex(si->bytes, si->nbytes);
	printf("   (bytes up to 15; the instruction is a prefix of them)\n");
	print_disassembly(c, t->mode, si->bytes, si->nbytes);
	printf("  kvm:  %s\n  soft: %s\n", exit_desc(&c->kvm, e1, sizeof(e1)),
	       exit_desc(&c->soft, e2, sizeof(e2)));
	print_events("kvm", &c->kvm);
	print_events("soft", &c->soft);
	printf("  state before the instruction:\n");
	print_states(&si->before, &si->before, 0);
	printf("  state after:\n");
	print_states(k, s, mask);
	if (t->repro)
		printf("  reproduce: %s\n", t->repro);
	fflush(stdout);
}

static void report_memory(struct dt_ctx *c, int range, uint64_t where)
{
	if (c->reports > DT_FULL_REPORTS)
		return;
	const uint8_t *a = side_ptr(&c->kvm, where & ~0xfULL, 32);
	const uint8_t *b = side_ptr(&c->soft, where & ~0xfULL, 32);
	printf("  memory differs in the %s area, first at %08" PRIx64 "\n", dt_compared[range].name,
	       where);
	if (a && b) {
		printf("    kvm  %08" PRIx64 ": ", where & ~(uint64_t)0xf);
		dt_print_hex(a, 32);
		printf("\n    soft %08" PRIx64 ": ", where & ~(uint64_t)0xf);
		dt_print_hex(b, 32);
		printf("\n");
	}
}

/* ---- stepping ---- */

bool dt_in_stubs(const struct cpu_state *s)
{
	uint64_t la = s->seg[SEG_CS].base + s->rip;
	return la >= DT_STUBS_ADDR && la < DT_STUBS_ADDR + 256 * 8;
}

uint64_t dt_linear_rip(const struct cpu_state *s)
{
	return (s->seg[SEG_CS].base + s->rip) & (s->efer & EFER_LMA ? ~0ULL : 0xffffffffULL);
}

static uint64_t ns_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool is_rep_string(const struct dt_opinfo *o)
{
	uint8_t op = o->opcode;
	return o->valid && o->rep && o->map == 0 &&
	       ((op >= 0x6c && op <= 0x6f) || (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf));
}

/* A fault's handler finishes with the stub's port write. */
static int finish_handler(struct dt_side *s)
{
	for (int n = 0; n < MAX_HANDLER_STEPS && s->exc_vector < 0 && dt_in_stubs(&s->st); n++) {
		int rc = dt_side_step(s);
		if (rc)
			return rc;
	}
	return 0;
}

static int soft_step(struct dt_ctx *c, const struct step_info *si)
{
	struct dt_side *s = &c->soft;
	int rc = dt_side_step(s);
	/* A REP string instruction may stop after each iteration. */
	for (int n = 0; !rc && n < MAX_REP_ITERATIONS && is_rep_string(&si->op) &&
			s->last_exit == VCPU_EXIT_DEBUG && dt_linear_rip(&s->st) == si->rip_linear;
	     n++)
		rc = dt_side_step(s);
	return rc ? rc : finish_handler(s);
}

/* Clears TF in a 64-bit RFLAGS image at gpa (pushed by PUSHF or by an
 * exception while the tester's TF was set). */
static void clear_tf_image(struct dt_side *s, uint64_t gpa)
{
	uint8_t *p = side_ptr(s, gpa, 8);
	if (p)
		p[1] &= (uint8_t)~(FLAG_TF_BIT >> 8);
}

bool dt_vector_has_error(int v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17;
}

/* Where the RFLAGS image of the exception frame the stub sits on is. */
static uint64_t frame_rflags_gpa(const struct dt_side *s)
{
	uint64_t frame = s->st.gpr[GPR_RSP] + (dt_vector_has_error(s->exc_vector) ? 8 : 0);
	if (!(s->st.efer & EFER_LMA))
		return frame + 8; /* 32-bit frame: EIP, CS, EFLAGS */
	return frame + 16;
}

/* One native step: load the user state with TF, run to the #DB stub. */
static int kvm_native_once(struct dt_ctx *c, struct cpu_state *user)
{
	struct dt_side *k = &c->kvm;
	struct cpu_state st = *user;
	st.rflags |= FLAG_TF_BIT;
	int rc = dt_side_load(k, &st);
	if (rc)
		return rc;
	rc = dt_side_step(k);
	if (rc)
		return rc;
	if (k->exc_vector < 0 && k->last_exit == VCPU_EXIT_INTR && k->st.seg[SEG_CS].dpl == 3) {
		/* An MMIO access completed the instruction in user mode. */
		k->st.rflags &= ~FLAG_TF_BIT;
		*user = k->st;
		return 0;
	}
	if (k->exc_vector != 1 || k->nev == 0)
		return 0;
	/* Trap: the frame holds RIP, CS, RFLAGS, RSP, SS after the instruction. */
	uint64_t fr[5];
	if (guest_mem_read(&k->mem, k->st.gpr[GPR_RSP], fr, sizeof(fr)))
		return -EFAULT;
	struct cpu_state n = k->st;
	n.rip = fr[0];
	n.seg[SEG_CS] = user->seg[SEG_CS];
	n.seg[SEG_CS].selector = (uint16_t)fr[1];
	n.rflags = fr[2] & ~FLAG_TF_BIT;
	n.gpr[GPR_RSP] = fr[3];
	n.seg[SEG_SS] = user->seg[SEG_SS];
	n.seg[SEG_SS].selector = (uint16_t)fr[4];
	*user = n;
	k->st = n;
	k->nev--; /* the #DB stub's port write */
	k->exc_vector = -1;
	/* Erase the #DB frame: the soft engine never pushed it. */
	uint8_t *ks = side_ptr(k, DT_KSTACK_ADDR, DT_KSTACK_TOP - DT_KSTACK_ADDR);
	const uint8_t *ss = side_ptr(&c->soft, DT_KSTACK_ADDR, DT_KSTACK_TOP - DT_KSTACK_ADDR);
	if (ks && ss)
		memcpy(ks, ss, DT_KSTACK_TOP - DT_KSTACK_ADDR);
	return 0;
}

static int kvm_step(struct dt_ctx *c, const struct step_info *si, struct cpu_state *user,
		    bool native)
{
	struct dt_side *k = &c->kvm;
	int rc;

	if (!native) {
		rc = dt_side_step(k);
		for (int n = 0; !rc && n < MAX_REP_ITERATIONS && is_rep_string(&si->op) &&
				(k->last_exit == VCPU_EXIT_DEBUG || k->last_exit == VCPU_EXIT_INTR) &&
				k->exc_vector < 0 &&
				dt_linear_rip(&k->st) == si->rip_linear;
		     n++)
			rc = dt_side_step(k);
		return rc ? rc : finish_handler(k);
	}
	rc = kvm_native_once(c, user);
	/* TF traps after every iteration of a REP string instruction. */
	for (int n = 0; !rc && n < MAX_REP_ITERATIONS && is_rep_string(&si->op) &&
			k->exc_vector < 0 && dt_linear_rip(user) == si->rip_linear;
	     n++)
		rc = kvm_native_once(c, user);
	if (rc || k->exc_vector < 0)
		return rc;
	/* A fault or software interrupt: fix TF in the frame's RFLAGS image. */
	clear_tf_image(k, frame_rflags_gpa(k));
	return 0;
}

static bool is_pushf(const struct dt_opinfo *o) { return o->valid && o->map == 0 && o->opcode == 0x9c; }

/* Executes step si on both sides. */
static int step_both(struct dt_ctx *c, const struct dt_test *t, struct step_info *si,
		     struct cpu_state *kvm_user)
{
	bool native = dt_mode_oracle(t->mode) == DT_ORACLE_NATIVE;
	uint64_t t0 = ns_now();
	dt_side_reset_events(&c->soft);
	int rc = soft_step(c, si);
	uint64_t t1 = ns_now();
	if (rc)
		return rc;
	dt_side_reset_events(&c->kvm);
	dt_watchdog_arm(c->watchdog, true);
	rc = kvm_step(c, si, kvm_user, native);
	dt_watchdog_arm(c->watchdog, false);
	uint64_t t2 = ns_now();
	c->stats.soft_ns += t1 - t0;
	c->stats.kvm_ns += t2 - t1;
	if (rc)
		return rc;
	if (native && is_pushf(&si->op) && c->kvm.exc_vector < 0)
		clear_tf_image(&c->kvm, c->kvm.st.seg[SEG_SS].base + c->kvm.st.gpr[GPR_RSP]);
	return 0;
}

static void read_insn(struct dt_ctx *c, const struct dt_test *t, struct step_info *si)
{
	si->before = c->soft.st;
	si->rip_linear = dt_linear_rip(&c->soft.st);
	uint64_t avail = DT_CODE_ADDR + DT_CODE_SIZE > si->rip_linear
			     ? DT_CODE_ADDR + DT_CODE_SIZE - si->rip_linear
			     : 0;
	si->nbytes = avail < 15 ? (size_t)avail : 15;
	const uint8_t *p = si->nbytes ? side_ptr(&c->soft, si->rip_linear, si->nbytes) : NULL;
	if (!p)
		si->nbytes = 0;
	else
		memcpy(si->bytes, p, si->nbytes);
	dt_opinfo_decode(si->bytes, si->nbytes, dt_mode_bits(t->mode), &si->op);
}

/* The length of the instruction just executed, when it did not branch
 * (needed for immediate shift counts). */
static size_t insn_length(const struct step_info *si, const struct cpu_state *after)
{
	uint64_t next = dt_linear_rip(after);
	if (next > si->rip_linear && next - si->rip_linear <= si->nbytes)
		return (size_t)(next - si->rip_linear);
	return si->nbytes;
}

static bool oracle_cannot(const struct dt_test *t, const struct dt_ctx *c)
{
	/* KVM's emulator raises #UD for instructions it does not know and
	 * gives up with an internal error on others: not the soft CPU's fault. */
	if (dt_mode_oracle(t->mode) != DT_ORACLE_EMULATOR)
		return false;
	return (c->kvm.exc_vector == 6 && c->soft.exc_vector != 6) ||
	       c->kvm.last_exit == VCPU_EXIT_INTERNAL_ERROR;
}

static int load_both(struct dt_ctx *c, const struct dt_test *t, const struct cpu_state *init)
{
	int rc = dt_prepare_memory(&c->kvm, t);
	if (!rc)
		rc = dt_prepare_memory(&c->soft, t);
	if (!rc)
		rc = dt_side_single_step(&c->kvm, dt_mode_oracle(t->mode) == DT_ORACLE_EMULATOR);
	if (!rc)
		rc = dt_side_load(&c->soft, init);
	if (!rc)
		rc = dt_side_load(&c->kvm, init);
	dt_side_reset_events(&c->kvm);
	dt_side_reset_events(&c->soft);
	return rc;
}

int dt_run_test(struct dt_ctx *c, const struct dt_test *t)
{
	struct cpu_state init = t->init;
	init.apic_base = c->apic_base;
	struct cpu_state kvm_user = init;
	struct step_info si;
	uint64_t end = dt_linear_rip(&init) + t->len;
	int rc = load_both(c, t, &init);
	if (rc)
		return rc;
	atomic_store(&c->kvm.watchdog_fired, false);
	c->stats.tests++;

	for (unsigned n = 0; n < t->max_steps; n++) {
		if (dt_linear_rip(&c->soft.st) == end)
			return 0;
		memset(&si, 0, sizeof(si));
		si.index = n;
		read_insn(c, t, &si);
		rc = step_both(c, t, &si, &kvm_user);
		if (rc)
			return rc;
		c->stats.steps++;
		if (c->kvm.last_exit == VCPU_EXIT_SHUTDOWN && n == 0 &&
		    dt_linear_rip(&c->kvm.st) == si.rip_linear && c->kvm.exc_vector < 0) {
			/* PVM answered the first entry into a legacy-mode state
			 * with a spurious shutdown when paging was on (it is off
			 * now); should it happen, one more entry works. */
			if ((rc = dt_side_load(&c->kvm, &init)))
				return rc;
			dt_side_reset_events(&c->kvm);
			rc = kvm_step(c, &si, &kvm_user, false);
			if (rc)
				return rc;
		}
		if (oracle_cannot(t, c)) {
			c->stats.oracle_skips++;
			if (c->verbose) {
				printf("  %s: step %u: the KVM emulator cannot run ", t->name, n);
				dt_print_hex(si.bytes, si.nbytes);
				printf("; test ends\n");
			}
			return 0;
		}
		struct cmp cm = {.flag_mask = 0};
		bool faulted = c->kvm.exc_vector >= 0 || c->soft.exc_vector >= 0;
		if (!faulted)
			cm.flag_mask = dt_undefined_flags(&si.op, si.bytes, insn_length(&si, &c->soft.st),
							  &si.before);
		const struct cpu_state *ks = &c->kvm.st, *ss = &c->soft.st;
		char what[640];
		if (atomic_load(&c->kvm.watchdog_fired))
			return DT_ORACLE_TIMEOUT; /* the host, not the soft CPU: see dt_run_test_retry */
		if (c->kvm.exc_vector != c->soft.exc_vector || c->kvm.last_exit != c->soft.last_exit) {
			bool both_normal = c->kvm.last_exit == VCPU_EXIT_DEBUG ||
					   c->kvm.last_exit == VCPU_EXIT_INTR;
			both_normal = both_normal && (c->soft.last_exit == VCPU_EXIT_DEBUG);
			if (c->kvm.exc_vector != c->soft.exc_vector || !both_normal) {
				report(c, t, &si, "different outcome (exception or exit)", ks, ss, 0);
				return 1;
			}
		}
		if (!events_equal(&c->kvm, &c->soft)) {
			report(c, t, &si, "different port-I/O or MMIO accesses", ks, ss, cm.flag_mask);
			return 1;
		}
		if (!compare_state(ks, ss, &cm)) {
			snprintf(what, sizeof(what), "registers differ: %s", cm.fields);
			report(c, t, &si, what, ks, ss, cm.flag_mask);
			return 1;
		}
		if (c->ignore_frame_rf && c->kvm.exc_vector >= 0 && c->soft.exc_vector >= 0) {
			uint8_t *p = side_ptr(&c->kvm, frame_rflags_gpa(&c->kvm) + 2, 1);
			if (p)
				*p &= (uint8_t)~1u; /* RF is bit 16 */
		}
		if (!faulted)
			dt_vendor_fixup(c, &si.op, si.bytes, si.nbytes, insn_length(&si, &c->soft.st),
					dt_mode_bits(t->mode), &si.before);
		uint64_t where = 0;
		int range = compare_memory(&c->kvm, &c->soft, &where);
		if (range >= 0) {
			report(c, t, &si, "memory differs", ks, ss, cm.flag_mask);
			report_memory(c, range, where);
			return 1;
		}
		if (faulted || (c->kvm.last_exit != VCPU_EXIT_DEBUG && c->kvm.last_exit != VCPU_EXIT_INTR)) {
			c->stats.faults++;
			return 0; /* both took the same exception with the same state */
		}
		/* Undefined flags may differ: continue from identical states. */
		if (cm.flag_mask) {
			c->soft.st.rflags = (c->soft.st.rflags & ~cm.flag_mask) |
					    (c->kvm.st.rflags & cm.flag_mask);
			if ((rc = dt_side_load(&c->soft, &c->soft.st)))
				return rc;
		}
	}
	return 0;
}

/* A KVM step that does not return within the watchdog's 5 s is the host's
 * hiccup (seen once under load on the nested PVM host), not a soft-CPU
 * divergence: the test is run again from scratch, and a second timeout is
 * counted and reported but does not fail the run. */
int dt_run_test_retry(struct dt_ctx *c, const struct dt_test *t)
{
	int rc = dt_run_test(c, t);
	if (rc != DT_ORACLE_TIMEOUT)
		return rc;
	rc = dt_run_test(c, t);
	if (rc != DT_ORACLE_TIMEOUT)
		return rc;
	c->stats.oracle_timeouts++;
	printf("difftest: %s: KVM did not return within 5 s, twice; not counted\n", t->name);
	return 0;
}
