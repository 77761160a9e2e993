/* The translator against the interpreter, with no KVM: the same test runs
 * freely (never single-stepped, so the translator runs it) on two
 * soft-engine vCPUs, one with the binary translator
 * (engine_config.soft_interpret = false) and one without, and their final
 * states are compared.
 *
 * How a run ends. The code area after the test is filled with HLT (F4).
 * At CPL3, HLT raises #GP(0) (SDM vol. 2, HLT: privileged), delivered
 * through the test IDT to the vector-13 stub, whose OUT to a magic port is
 * recorded and whose own HLT, at CPL0, halts the vCPU: run() returns
 * VCPU_EXIT_HLT with the user state in the interrupt frame (SDM vol. 3
 * §6.14.2: RIP, CS, RFLAGS, RSP, SS). A test that takes an exception of
 * its own stops at that exception's stub the same way, a kernel64 test at
 * the HLT itself, a triple fault with VCPU_EXIT_SHUTDOWN; a run that does
 * not stop within JIT_TIMEOUT_MS is kicked by a watchdog (both sides
 * timing out is an endless test, counted, not compared). Then everything
 * is compared, bit for bit: GPRs, RIP, RFLAGS, segment, control and
 * descriptor-table registers, every range of dt_compared (the frame with
 * the user's RIP, RFLAGS and RSP included), the port-I/O and MMIO
 * accesses, the exception reported and the exit.
 *
 * x87 and SSE. Their registers are not part of struct cpu_state, so they
 * are compared through what the tests store to memory; nor can they be
 * loaded through the engine interface, so every run starts with a
 * preamble high in the code area, FXRSTOR of a reset image (FCW 037F,
 * MXCSR 1F80, registers zero) and a JMP to the test: both vCPUs start
 * each run from the same x87/SSE state, whatever ran before.
 *
 * Undefined flags. The translator computes flags with the host's
 * instructions (an AMD processor here), so flags the SDM leaves undefined
 * may differ from the interpreter's, and reach registers and memory
 * through PUSHF, SETcc, ADC, a branch, arithmetic or an exception frame.
 * When the whole runs differ, they are run again side by side as the KVM
 * comparison does (run.c), which decides soundly: the interpreter
 * single-steps, and whenever it arrives at an address of the test for
 * the first time, the translator runs the test cut there (HLT from that
 * address on: it stops exactly where the interpreter is) and the two
 * states are compared, with the flags the last instruction left
 * undefined (flagmask.c) ignored; those flags are then copied from the
 * translator into the interpreter, which continues. A step whose states
 * differ in anything else is a divergence, and names the instruction. If
 * no step differs, the interpreter's final state, with every undefined
 * flag taken from the translator, must equal the translator's whole run
 * exactly: then the first difference came from undefined flags only.
 * Otherwise (the translator computes something differently in the whole
 * sequence than in its cut-down prefixes, or a loop revisits an address
 * whose undefined flags could not be copied), it is a divergence too, and
 * the shortest diverging prefix of the test is searched for.
 *
 * The stepped interpreter is itself checked: without the copying, its
 * run must equal its free run. A difference there is reported too. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "difftest.h"

#define JIT_TIMEOUT_MS 3000
#define MAX_REENTRIES 16 /* INTR exits from a watchdog kick of an earlier run */
#define STUB_STEPS 64    /* steps allowed beyond the test's own in a stepped run */
#define HLT_BYTE 0xf4
#define MAX_CUTS 4096
#define FLAG_RF 0x10000ULL
#define FLAG_TF 0x100ULL
#define NO_STEP UINT32_MAX
#define MAX_WINDOW 48 /* instructions */

/* Code-area offsets above any test: the preamble, its FXRSTOR image, and
 * the capture stub (FXSAVE to the data area, for running an instruction
 * alone from the state before it). */
#define PRE_OFF 0xf000u
#define CAP_OFF 0xf040u
#define IMG_OFF 0xf100u
#define FXSAVE_BYTES 512
_Static_assert(DT_GEN_CODE_MAX <= PRE_OFF && DT_CORPUS_CODE_MAX <= PRE_OFF, "tests fit below");

/* One run's outcome. */
struct jsnap {
	struct cpu_state st;
	enum vcpu_exit_kind exit;
	int exc_vector;
	bool timeout;
	unsigned nev, lost_ev;
	struct dt_event ev[DT_MAX_EVENTS];
	uint64_t icount;
	uint8_t *mem; /* the dt_compared ranges, one after the other */
};

enum verdict {
	J_AGREE,
	J_EXPLAINED, /* differences that undefined flags explain */
	J_LOOP,      /* neither side ended in time */
	J_DIVERGE,
	J_SELF,      /* the interpreter's stepped and free runs differ */
};

/* What a side-by-side run found. */
struct lockstep {
	bool ended;         /* the interpreter reached the end of the test */
	bool diverged;      /* a step differed */
	unsigned step;      /* that step, an index into the trace */
	uint64_t rip;       /* the instruction's address */
	uint64_t arrival;   /* where the interpreter went next: the translator's cut */
	uint64_t undefined; /* the flags it leaves undefined */
	struct cpu_state before;
	unsigned copied;    /* steps whose undefined flags came from the translator */
};

struct dt_jit_ctx {
	struct dt_side interp, jit;
	struct dt_watchdog *wd_interp, *wd_jit;
	struct dt_jit_stats stats;
	const char *objdump;
	bool verbose;
	unsigned reports;
	uint64_t apic_base;
	size_t mem_bytes;
	/* interpreter, translator, stepped interpreter, translator on a
	 * prefix, interpreter in mid-run */
	struct jsnap a, b, s, p, m;
	struct lockstep ls;
	uint8_t code[DT_CODE_SIZE]; /* the code area of the run: test + HLT */
	uint64_t end;               /* linear address where the run's code ends */
	unsigned ntrace;            /* the stepped interpreter's RIPs */
	uint64_t trace[DT_GEN_CODE_MAX + STUB_STEPS];
	/* The state before a window of instructions, for running it alone. */
	uint8_t data[DT_DATA_SIZE], stack[DT_STACK_SIZE], fpu[FXSAVE_BYTES];
	uint8_t alone_code[DT_CODE_SIZE];
	char what[512];
};

bool dt_jit_mode(enum dt_mode m) { return m == DT_MODE_LONG64 || m == DT_MODE_KERNEL64; }


static size_t compared_bytes(void)
{
	size_t n = 0;
	for (unsigned r = 0; r < dt_ncompared; r++)
		n += dt_compared[r].size;
	return n;
}

int dt_jit_init(struct dt_jit_ctx **out, const char *objdump, bool verbose, char *err,
		size_t errlen)
{
	struct dt_jit_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->objdump = objdump;
	c->verbose = verbose;
	c->mem_bytes = compared_bytes();
	struct jsnap *snaps[] = {&c->a, &c->b, &c->s, &c->p, &c->m};
	bool ok = true;
	for (size_t k = 0; k < sizeof(snaps) / sizeof(snaps[0]); k++)
		ok = ok && (snaps[k]->mem = calloc(1, c->mem_bytes)) != NULL;
	if (!ok) {
		snprintf(err, errlen, "out of memory");
		dt_jit_fini(c);
		return -ENOMEM;
	}
	int rc = dt_side_init(&c->interp, &soft_engine_ops, true, err, errlen);
	if (!rc)
		rc = dt_side_init(&c->jit, &soft_engine_ops, false, err, errlen);
	if (rc) {
		dt_jit_fini(c);
		return rc;
	}
	c->wd_interp = dt_watchdog_start(&c->interp);
	c->wd_jit = dt_watchdog_start(&c->jit);
	if (!c->wd_interp || !c->wd_jit) {
		snprintf(err, errlen, "cannot start the watchdog threads");
		dt_jit_fini(c);
		return -ENOMEM;
	}
	struct cpu_state st;
	if (c->interp.ops->get_state(c->interp.vcpu, &st) == 0)
		c->apic_base = st.apic_base;
	*out = c;
	return 0;
}

static void add_translator_stats(struct dt_jit_ctx *c)
{
	struct engine_vcpu_stats vs;
	memset(&vs, 0, sizeof(vs));
	if (c->jit.vcpu && c->jit.ops->vcpu_stats)
		c->jit.ops->vcpu_stats(c->jit.vcpu, &vs);
	c->stats.blocks = vs.jit.blocks;
	c->stats.fallbacks = vs.jit.fallbacks;
}

const struct dt_jit_stats *dt_jit_get_stats(struct dt_jit_ctx *c)
{
	add_translator_stats(c);
	return &c->stats;
}

void dt_jit_fini(struct dt_jit_ctx *c)
{
	if (!c)
		return;
	dt_watchdog_stop(c->wd_interp);
	dt_watchdog_stop(c->wd_jit);
	dt_side_fini(&c->interp);
	dt_side_fini(&c->jit);
	struct jsnap *snaps[] = {&c->a, &c->b, &c->s, &c->p, &c->m};
	for (size_t k = 0; k < sizeof(snaps) / sizeof(snaps[0]); k++)
		free(snaps[k]->mem);
	free(c);
}

/* ---- running ---- */

static uint64_t retired(const struct dt_side *s)
{
	struct engine_vcpu_stats vs;
	memset(&vs, 0, sizeof(vs));
	if (s->ops->vcpu_stats)
		s->ops->vcpu_stats(s->vcpu, &vs);
	return vs.instructions;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

/* The test as it runs here: its first `cut` bytes of code, HLT after, and
 * the preamble that loads the x87/SSE state `fpu` (NULL: the reset image)
 * and jumps to the test's first instruction. 64-bit code: CS base 0. */
static void frame_test(struct dt_jit_ctx *c, const struct dt_test *t, size_t cut,
		       const uint8_t *fpu, struct dt_test *ft)
{
	static const uint8_t fxrstor_rip[] = {0x48, 0x0f, 0xae, 0x0d}; /* FXRSTOR64 [RIP+d32] */
	static const uint8_t fxsave_abs[] = {0x48, 0x0f, 0xae, 0x04, 0x25}; /* FXSAVE64 [d32] */
	if (cut > t->len)
		cut = t->len;
	memset(c->code, HLT_BYTE, sizeof(c->code));
	memcpy(c->code, t->code, cut);
	uint8_t *pre = c->code + PRE_OFF, *img = c->code + IMG_OFF, *cap = c->code + CAP_OFF;
	memcpy(pre, fxrstor_rip, 4);
	put_le(pre + 4, IMG_OFF - (PRE_OFF + 8), 4);
	pre[8] = 0xe9; /* JMP rel32 */
	put_le(pre + 9, t->init.rip - (DT_CODE_ADDR + PRE_OFF + 13), 4);
	if (fpu) {
		memcpy(img, fpu, FXSAVE_BYTES);
	} else {
		memset(img, 0, FXSAVE_BYTES);
		put_le(img, 0x37f, 2);       /* FCW: exceptions masked, extended precision */
		put_le(img + 24, 0x1f80, 4); /* MXCSR */
	}
	memcpy(cap, fxsave_abs, 5);
	put_le(cap + 5, DT_DATA_ADDR, 4);
	*ft = *t;
	ft->code = c->code;
	ft->len = DT_CODE_SIZE;
	ft->init.apic_base = c->apic_base;
	ft->init.rip = DT_CODE_ADDR + PRE_OFF;
	c->end = DT_CODE_ADDR + cut;
}

static int load(struct dt_side *s, const struct dt_test *ft, bool step)
{
	int rc = dt_prepare_memory(s, ft);
	if (!rc)
		rc = dt_side_single_step(s, step);
	if (!rc)
		rc = dt_side_load(s, &ft->init);
	dt_side_reset_events(s);
	atomic_store(&s->watchdog_fired, false);
	return rc;
}

static void snapshot(struct dt_side *s, struct jsnap *o)
{
	o->st = s->st;
	o->exit = s->last_exit;
	o->exc_vector = s->exc_vector;
	o->nev = s->nev;
	o->lost_ev = s->lost_ev;
	memcpy(o->ev, s->ev, sizeof(o->ev));
	size_t off = 0;
	for (unsigned r = 0; r < dt_ncompared; r++) {
		const uint8_t *p = guest_mem_ptr(&s->mem, dt_compared[r].base, dt_compared[r].size);
		if (p)
			memcpy(o->mem + off, p, dt_compared[r].size);
		else
			memset(o->mem + off, 0, dt_compared[r].size);
		off += dt_compared[r].size;
	}
}

/* run(), again while it returns at once for a kick meant for an earlier
 * run (the watchdog fired just after that run had ended). */
static int run_vcpu(struct dt_side *s, struct vcpu_exit *x)
{
	int rc = 0;
	for (unsigned n = 0; n < MAX_REENTRIES; n++) {
		memset(x, 0, sizeof(*x));
		rc = s->ops->run(s->vcpu, x);
		if (rc || x->kind != VCPU_EXIT_INTR || atomic_load(&s->watchdog_fired))
			break;
	}
	return rc;
}

/* Runs the framed test freely on one side, within JIT_TIMEOUT_MS. */
static int run_free(struct dt_side *s, struct dt_watchdog *w, const struct dt_test *ft,
		    struct jsnap *o)
{
	struct vcpu_exit x;
	int rc = load(s, ft, false);
	if (rc)
		return rc;
	uint64_t n0 = retired(s);
	dt_watchdog_arm_ms(w, JIT_TIMEOUT_MS);
	rc = run_vcpu(s, &x);
	dt_watchdog_arm_ms(w, 0);
	if (rc)
		return rc;
	s->last_exit = x.kind;
	s->last_detail = x.detail.code;
	rc = s->ops->get_state(s->vcpu, &s->st);
	snapshot(s, o);
	o->timeout = x.kind == VCPU_EXIT_INTR && atomic_load(&s->watchdog_fired);
	o->icount = retired(s) - n0;
	return rc;
}

static size_t read_code(struct dt_side *s, uint64_t la, uint8_t bytes[15])
{
	/* Guest-physical = linear where tests and stubs run (machine.c). */
	for (size_t n = 15; n > 0; n--) {
		const uint8_t *p = guest_mem_ptr(&s->mem, la, n);
		if (p) {
			memcpy(bytes, p, n);
			return n;
		}
	}
	return 0;
}

/* The flags the instruction just executed (bytes, from `before` to the
 * side's current state) leaves undefined. */
static uint64_t undefined_flags(const struct dt_side *s, const uint8_t *bytes, size_t nb,
				const struct cpu_state *before, enum dt_mode mode)
{
	struct dt_opinfo op;
	if (dt_in_stubs(before) || dt_in_stubs(&s->st))
		return 0; /* a fault or interrupt was delivered: no flag written */
	dt_opinfo_decode(bytes, nb, dt_mode_bits(mode), &op);
	uint64_t la = dt_linear_rip(before), next = dt_linear_rip(&s->st);
	size_t len = next > la && next - la <= nb ? (size_t)(next - la) : nb;
	return dt_undefined_flags(&op, bytes, len, before);
}

/* ---- comparing ---- */

/* What a step comparison leaves out (see skipped()). */
enum skip { SKIP_NONE, SKIP_CPL0, SKIP_CPL3 };

/* Appends to the string buf of len bytes. */
#define NOTE(buf, len, ...)                                                                        \
	do {                                                                                       \
		size_t n_ = strlen(buf);                                                           \
		if (n_ + 1 < (len))                                                                \
			snprintf((buf) + n_, (len) - n_, __VA_ARGS__);                             \
	} while (0)

static bool events_equal(const struct jsnap *a, const struct jsnap *b, unsigned nev_b)
{
	if (a->nev != nev_b || a->lost_ev != b->lost_ev)
		return false;
	for (unsigned n = 0; n < a->nev; n++) {
		const struct dt_event *x = &a->ev[n], *y = &b->ev[n];
		uint64_t m = x->size >= 8 ? ~0ULL : (1ULL << (x->size * 8)) - 1;
		if (x->kind != y->kind || x->size != y->size || x->write != y->write ||
		    x->addr != y->addr || (x->data & m) != (y->data & m))
			return false;
	}
	return true;
}

static void note_system(char *what, size_t len, const struct cpu_state *x, const struct cpu_state *y,
			unsigned first_seg)
{
	size_t n = strlen(what);
	for (unsigned r = first_seg; r < SEG_COUNT; r++)
		if (!dt_seg_equal(&x->seg[r], &y->seg[r]))
			n += (size_t)snprintf(what + n, n < len ? len - n : 0, " %s", dt_seg_names[r]);
	if (n >= len)
		return;
	snprintf(what + n, len - n, "%s%s%s%s%s%s%s", x->cr0 != y->cr0 ? " cr0" : "",
		 x->cr2 != y->cr2 ? " cr2" : "", x->cr3 != y->cr3 ? " cr3" : "",
		 x->cr4 != y->cr4 ? " cr4" : "", x->efer != y->efer ? " efer" : "",
		 x->gdt.base != y->gdt.base || x->gdt.limit != y->gdt.limit ? " gdtr" : "",
		 x->idt.base != y->idt.base || x->idt.limit != y->idt.limit ? " idtr" : "");
}

/* Whether range g is left out: a step comparison leaves out the code
 * (cut short on the translator's side) and, at CPL3, the ring-0 stack
 * (the translator's #GP frame). */
static bool skipped(const struct dt_range *g, enum skip skip)
{
	if (skip == SKIP_NONE)
		return false;
	return g->base == DT_CODE_ADDR || (skip == SKIP_CPL3 && g->base == DT_KSTACK_ADDR);
}

/* Names the memory ranges where a and b differ. */
static void note_memory(char *what, size_t len, const struct jsnap *a, const struct jsnap *b,
			enum skip skip)
{
	size_t off = 0, n = strlen(what);
	for (unsigned r = 0; r < dt_ncompared; r++) {
		const struct dt_range *g = &dt_compared[r];
		if (!skipped(g, skip) && memcmp(a->mem + off, b->mem + off, g->size))
			n += (size_t)snprintf(what + n, n < len ? len - n : 0, " memory(%s)", g->name);
		off += g->size;
	}
}

/* Whole outcomes, bit for bit; the differing fields go to what. */
static bool outcomes_differ(const struct jsnap *x, const struct jsnap *y, char *what, size_t len)
{
	what[0] = 0;
	if (x->timeout != y->timeout || x->exit != y->exit || x->exc_vector != y->exc_vector ||
	    !events_equal(x, y, y->nev))
		snprintf(what, len, " outcome");
	size_t n = strlen(what);
	for (int r = 0; r < GPR_COUNT; r++)
		if (x->st.gpr[r] != y->st.gpr[r])
			n += (size_t)snprintf(what + n, n < len ? len - n : 0, " %s", dt_gpr_names[r]);
	if (n < len && x->st.rip != y->st.rip)
		n += (size_t)snprintf(what + n, len - n, " rip");
	if (n < len && x->st.rflags != y->st.rflags)
		snprintf(what + n, len - n, " rflags");
	note_system(what, len, &x->st, &y->st, 0);
	note_memory(what, len, x, y, SKIP_NONE);
	return what[0] != 0;
}

/* The user's RIP, RFLAGS, RSP, CS and SS: from the exception frame when
 * the run stopped in a stub (SDM vol. 3 §6.14.2), else the registers. */
struct user_view {
	bool framed;
	uint64_t rip, rflags, rsp, error, cs, ss;
};

static bool snap_read(const struct jsnap *o, uint64_t gpa, void *buf, size_t len)
{
	size_t off = 0;
	for (unsigned r = 0; r < dt_ncompared; r++) {
		const struct dt_range *g = &dt_compared[r];
		if (gpa >= g->base && gpa + len <= g->base + g->size) {
			memcpy(buf, o->mem + off + (gpa - g->base), len);
			return true;
		}
		off += g->size;
	}
	return false;
}

static struct user_view user_view(const struct jsnap *o)
{
	struct user_view u = {.rip = o->st.rip, .rflags = o->st.rflags, .rsp = o->st.gpr[GPR_RSP],
			      .cs = o->st.seg[SEG_CS].selector, .ss = o->st.seg[SEG_SS].selector};
	uint64_t fr[6];
	bool err = dt_vector_has_error(o->exc_vector);
	if (o->exc_vector < 0 || !dt_in_stubs(&o->st) || !snap_read(o, o->st.gpr[GPR_RSP], fr, sizeof(fr)))
		return u;
	u.framed = true;
	u.error = err ? fr[0] : 0;
	u.rip = fr[err ? 1 : 0];
	u.cs = fr[err ? 2 : 1] & 0xffff;
	u.rflags = fr[err ? 3 : 2];
	u.rsp = fr[err ? 4 : 3];
	u.ss = fr[err ? 5 : 4] & 0xffff;
	return u;
}

/* Whether the translator's run of the test cut at `arrival` (p) stopped
 * there, in the state the stepped interpreter (m) is in, ignoring the
 * flags in `ignore`. CPL3: p stopped at the vector-13 stub and its user
 * state is in the frame; kernel64: p halted at the HLT. */
static bool step_differs(const struct jsnap *p, const struct jsnap *m, uint64_t arrival,
			 uint64_t ignore, bool cpl0, char *what, size_t len)
{
	struct user_view u = user_view(p);
	struct cpu_state ps = p->st;
	unsigned nev = p->nev;
	what[0] = 0;
	if (cpl0) {
		if (p->timeout || p->exit != VCPU_EXIT_HLT || p->exc_vector >= 0 ||
		    ps.rip != arrival + 1) {
			snprintf(what, len, " outcome");
			return true;
		}
		ps.rip = arrival;
	} else {
		if (p->timeout || p->exc_vector != 13 || !u.framed || u.rip != arrival || u.error != 0 ||
		    nev == 0) {
			snprintf(what, len, " outcome");
			return true;
		}
		nev--; /* the stub's port write */
		ps.rip = u.rip;
		ps.rflags = u.rflags & ~FLAG_RF; /* a fault pushes RF=1 */
		ps.gpr[GPR_RSP] = u.rsp;
		ps.seg[SEG_CS] = m->st.seg[SEG_CS];
		ps.seg[SEG_SS] = m->st.seg[SEG_SS];
		if (u.cs != m->st.seg[SEG_CS].selector)
			NOTE(what, len, " cs");
		if (u.ss != m->st.seg[SEG_SS].selector)
			NOTE(what, len, " ss");
	}
	if (m->exc_vector >= 0 || !events_equal(m, p, nev))
		NOTE(what, len, " accesses");
	for (int r = 0; r < GPR_COUNT; r++)
		if (ps.gpr[r] != m->st.gpr[r])
			NOTE(what, len, " %s", dt_gpr_names[r]);
	if (ps.rip != m->st.rip)
		NOTE(what, len, " rip");
	if ((ps.rflags ^ m->st.rflags) & ~(ignore | FLAG_RF))
		NOTE(what, len, " rflags");
	char sys[256] = "";
	note_system(sys, sizeof(sys), &ps, &m->st, 0);
	NOTE(what, len, "%s", sys);
	char mem[256] = "";
	note_memory(mem, sizeof(mem), p, m, cpl0 ? SKIP_CPL0 : SKIP_CPL3);
	NOTE(what, len, "%s", mem);
	return what[0] != 0;
}

/* The translator's flags at the step just compared. */
static uint64_t translator_flags(const struct jsnap *p, bool cpl0)
{
	return cpl0 ? p->st.rflags : user_view(p).rflags;
}

/* ---- side by side ---- */

/* The interpreter, single-stepped through the framed test t (cut after
 * `cut` bytes, x87/SSE state fpu). With `beside`, the translator runs the
 * test cut at each address the interpreter first arrives at, the states
 * are compared (a difference ends the run, in c->ls) and the flags the
 * last instruction left undefined are copied from the translator. The
 * trace is recorded; the run stops before step stop_at (NO_STEP: at the
 * end). The interpreter's final state goes to c->s. */
static int step_through(struct dt_jit_ctx *c, const struct dt_test *t, size_t cut,
			const uint8_t *fpu, bool beside, unsigned stop_at)
{
	struct dt_side *s = &c->interp;
	struct lockstep *ls = &c->ls;
	struct dt_test ft;
	bool cpl0 = t->mode == DT_MODE_KERNEL64;
	frame_test(c, t, cut, fpu, &ft);
	uint64_t lo = DT_CODE_ADDR, hi = c->end, seen = 0; /* seen: past the highest address run */
	int rc = load(s, &ft, true);
	unsigned limit = t->max_steps + STUB_STEPS;
	memset(ls, 0, sizeof(*ls));
	c->ntrace = 0;
	for (unsigned n = 0; !rc && n < limit; n++) {
		struct cpu_state before = s->st;
		uint64_t la = dt_linear_rip(&before);
		uint8_t bytes[15];
		struct vcpu_exit x;
		if (c->ntrace < sizeof(c->trace) / sizeof(c->trace[0]))
			c->trace[c->ntrace++] = la;
		if (n == stop_at) {
			ls->ended = true;
			break;
		}
		if (la >= lo && la < hi && la + 1 > seen)
			seen = la + 1;
		size_t nb = read_code(s, la, bytes);
		if ((rc = run_vcpu(s, &x)))
			break;
		s->last_exit = x.kind;
		s->last_detail = x.detail.code;
		if ((rc = s->ops->get_state(s->vcpu, &s->st)))
			break;
		if (x.kind != VCPU_EXIT_DEBUG) {
			ls->ended = true;
			break;
		}
		/* A first arrival at the test's code, or past its end (HLT from
		 * there on either way): the translator stops there too. */
		uint64_t next = dt_linear_rip(&s->st);
		if (!beside || next < lo || next >= DT_CODE_ADDR + PRE_OFF || next < seen)
			continue;
		uint64_t undef = undefined_flags(s, bytes, nb, &before, t->mode);
		struct dt_test pt;
		snapshot(s, &c->m);
		frame_test(c, t, next < hi ? next - DT_CODE_ADDR : hi - DT_CODE_ADDR, fpu, &pt);
		if ((rc = run_free(&c->jit, c->wd_jit, &pt, &c->p)))
			break;
		c->end = hi;
		if (step_differs(&c->p, &c->m, next, undef, cpl0, c->what, sizeof(c->what))) {
			ls->diverged = true;
			ls->step = n;
			ls->rip = la;
			ls->arrival = next;
			ls->undefined = undef;
			ls->before = before;
			break;
		}
		uint64_t f = (s->st.rflags & ~undef) | (translator_flags(&c->p, cpl0) & undef);
		if (f != s->st.rflags) {
			s->st.rflags = f;
			ls->copied++;
			rc = dt_side_load(s, &s->st);
		}
	}
	if (rc)
		return rc;
	snapshot(s, &c->s);
	c->s.timeout = !ls->ended;
	return 0;
}

/* Runs the test (its code cut after `cut` bytes, x87/SSE state from fpu)
 * on both sides and judges the outcome. c->a and c->b keep the whole
 * runs; after a mismatch c->ls says where a step diverged, if one did. */
static int judge(struct dt_jit_ctx *c, const struct dt_test *t, size_t cut, const uint8_t *fpu,
		 enum verdict *v)
{
	struct dt_test ft;
	char self[sizeof(c->what)];
	frame_test(c, t, cut, fpu, &ft);
	int rc = run_free(&c->interp, c->wd_interp, &ft, &c->a);
	if (!rc)
		rc = run_free(&c->jit, c->wd_jit, &ft, &c->b);
	if (rc)
		return rc;
	memset(&c->ls, 0, sizeof(c->ls));
	if (c->a.timeout && c->b.timeout) {
		*v = J_LOOP;
		return 0;
	}
	if (!outcomes_differ(&c->a, &c->b, c->what, sizeof(c->what))) {
		*v = J_AGREE;
		return 0;
	}
	if (c->a.timeout || c->b.timeout) {
		snprintf(c->what, sizeof(c->what), " the %s did not end within %d ms",
			 c->a.timeout ? "interpreter" : "translator", JIT_TIMEOUT_MS);
		*v = J_DIVERGE;
		return 0;
	}
	/* The stepped interpreter must agree with its free run. */
	if ((rc = step_through(c, t, cut, fpu, false, NO_STEP)))
		return rc;
	bool self_differs = outcomes_differ(&c->s, &c->a, self, sizeof(self));
	if ((rc = step_through(c, t, cut, fpu, true, NO_STEP)))
		return rc;
	frame_test(c, t, cut, fpu, &ft); /* c->end and c->code of the whole test again */
	if (c->ls.diverged) {
		*v = J_DIVERGE;
		return 0;
	}
	if (!c->ls.ended) {
		snprintf(c->what, sizeof(c->what), " the stepped interpreter did not end in %u steps",
			 t->max_steps + STUB_STEPS);
		*v = J_DIVERGE;
		return 0;
	}
	/* The interpreter with the translator's undefined flags. */
	if (outcomes_differ(&c->s, &c->b, c->what, sizeof(c->what))) {
		*v = J_DIVERGE;
		return 0;
	}
	if (self_differs) {
		snprintf(c->what, sizeof(c->what), "%s", self);
		*v = J_SELF;
		return 0;
	}
	*v = J_EXPLAINED;
	return 0;
}

/* ---- reporting ---- */

static const char *exc_name(int v)
{
	static const char *const names[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
					    "#DF", "?",   "#TS", "#NP", "#SS", "#GP", "#PF", "?",
					    "#MF", "#AC", "#MC", "#XM"};
	if (v == DT_USER_VECTOR)
		return "INT 0x80";
	return v >= 0 && v < (int)(sizeof(names) / sizeof(names[0])) ? names[v] : "vector";
}

static void print_outcome(const struct dt_jit_ctx *c, const char *who, const struct jsnap *o,
			  bool icount)
{
	struct user_view u = user_view(o);
	printf("  %-13s", who);
	if (o->timeout)
		printf("did not end within %d ms (rip %" PRIx64 ")", JIT_TIMEOUT_MS, o->st.rip);
	else if (o->exc_vector == 13 && u.framed && u.rip == c->end && u.error == 0)
		printf("reached the end of the code");
	else if (o->exc_vector >= 0)
		printf("%s (%d) at rip %" PRIx64 ", error code %" PRIx64, exc_name(o->exc_vector),
		       o->exc_vector, u.rip, u.error);
	else
		printf("exit %s at rip %" PRIx64, vcpu_exit_kind_name(o->exit), o->st.rip);
	if (icount)
		printf(" (%" PRIu64 " instructions retired, engine statistics)", o->icount);
	printf("\n");
}

static void print_events(const char *who, const struct jsnap *o)
{
	if (!o->nev)
		return;
	printf("  %s accesses (%u%s):", who, o->nev, o->lost_ev ? ", some lost" : "");
	for (unsigned n = 0; n < o->nev && n < 8; n++) {
		const struct dt_event *e = &o->ev[n];
		printf(" %s%s %" PRIx64 "/%u=%" PRIx64, e->kind == DT_EV_PIO ? "pio" : "mmio",
		       e->write ? "-w" : "-r", e->addr, e->size, e->data);
	}
	printf("%s\n", o->nev > 8 ? " ..." : "");
}

static void row(const char *name, uint64_t a, uint64_t b, uint64_t ignore)
{
	printf("  %-13s %016" PRIx64 "   %016" PRIx64 "%s\n", name, a, b,
	       (a ^ b) & ~ignore ? "  <--" : "");
}

/* Registers of two states side by side; a, b: the user's view (the frame
 * when one was pushed). */
static void print_regs(const char *ha, const char *hb, const struct cpu_state *a,
		       const struct cpu_state *b, uint64_t ignore)
{
	printf("  %-13s %-16s   %-16s\n", "", ha, hb);
	for (int r = 0; r < GPR_COUNT; r++)
		row(dt_gpr_names[r], a->gpr[r], b->gpr[r], 0);
	row("rip", a->rip, b->rip, 0);
	row("rflags", a->rflags, b->rflags, ignore);
	if (ignore)
		printf("  %-13s (undefined flags %03" PRIx64 " not compared)\n", "", ignore);
	for (int r = 0; r < SEG_COUNT; r++)
		if (!dt_seg_equal(&a->seg[r], &b->seg[r]))
			printf("  %-13s %04x base %" PRIx64 "   %04x base %" PRIx64 "  <--\n",
			       dt_seg_names[r], a->seg[r].selector, a->seg[r].base, b->seg[r].selector,
			       b->seg[r].base);
	if (a->cr0 != b->cr0 || a->cr2 != b->cr2 || a->cr3 != b->cr3 || a->cr4 != b->cr4 ||
	    a->efer != b->efer) {
		row("cr0", a->cr0, b->cr0, 0);
		row("cr2", a->cr2, b->cr2, 0);
		row("cr3", a->cr3, b->cr3, 0);
		row("cr4", a->cr4, b->cr4, 0);
		row("efer", a->efer, b->efer, 0);
	}
}

/* A whole run's state with the user's RIP, RFLAGS and RSP from its frame. */
static struct cpu_state user_state(const struct jsnap *o)
{
	struct user_view u = user_view(o);
	struct cpu_state s = o->st;
	s.rip = u.rip;
	s.rflags = u.rflags;
	s.gpr[GPR_RSP] = u.rsp;
	return s;
}

/* Up to four rows of differing memory, 16 bytes each. */
static void print_memory(const char *ha, const char *hb, const struct jsnap *a,
			 const struct jsnap *b, enum skip skip)
{
	size_t off = 0;
	unsigned shown = 0;
	for (unsigned r = 0; r < dt_ncompared && shown < 4; r++) {
		const struct dt_range *g = &dt_compared[r];
		for (size_t k = 0; k < g->size && shown < 4 && !skipped(g, skip); k += 16) {
			if (!memcmp(a->mem + off + k, b->mem + off + k, 16))
				continue;
			printf("  memory (%s) at %08" PRIx64 ":\n    %-12s", g->name, g->base + k, ha);
			dt_print_hex(a->mem + off + k, 16);
			printf("\n    %-12s", hb);
			dt_print_hex(b->mem + off + k, 16);
			printf("\n");
			shown++;
		}
		off += g->size;
	}
}

struct listing {
	uint64_t base; /* code offset of the listing's first byte */
	uint64_t mark; /* code offset to mark, or ~0 */
};

static void print_listing_line(void *opaque, uint64_t off, const char *text)
{
	const struct listing *l = opaque;
	off += l->base;
	printf("   %s%5" PRIx64 ":%s\n", off == l->mark ? "=>" : "  ", off, text);
}

static void print_sequence(const struct dt_jit_ctx *c, const struct dt_test *t, uint64_t mark)
{
	struct listing l = {.base = 0, .mark = mark};
	printf("  the sequence (%zu bytes%s):\n", t->len, mark != ~0ULL ? "; => the instruction" : "");
	if (dt_disassemble(c->objdump, t->mode, t->code, t->len, print_listing_line, &l) < 0) {
		printf("    ");
		dt_print_hex(t->code, t->len);
		printf("\n");
	}
}

static void print_repro(const struct dt_test *t)
{
	/* The KVM comparison's command line with --jit: the same test here. */
	if (t->repro && strncmp(t->repro, "difftest ", 9) == 0)
		printf("  reproduce: build/difftest --jit %s\n", t->repro + 9);
	else if (t->repro)
		printf("  reproduce: %s (with --jit)\n", t->repro);
}

static void print_insn_line(void *opaque, uint64_t off, const char *text)
{
	bool *done = opaque;
	if (off == 0 && !*done)
		printf("%s", text);
	*done = true;
}

/* The instruction at code offset off, disassembled (or its bytes). */
static void print_insn(const struct dt_jit_ctx *c, const struct dt_test *t, uint64_t off)
{
	size_t room = off < t->len ? (t->len - off < 15 ? t->len - off : 15) : 0;
	bool done = false;
	printf("+%" PRIx64 ":", off);
	if (room && dt_disassemble(c->objdump, t->mode, t->code + off, room, print_insn_line, &done) < 0) {
		printf(" ");
		dt_print_hex(t->code + off, room);
	}
	if (t->tags && off < t->len && t->tags[off])
		printf("   (template '%s')", t->tags[off]);
}

/* ---- narrowing a divergence down ---- */

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

/* The shortest prefix of t, cut at an instruction the interpreter ran,
 * that still diverges (for differences no single step shows). Returns
 * the offset of its last instruction in *off (or ~0) and the cut in *cut. */
static int shortest_prefix(struct dt_jit_ctx *c, const struct dt_test *t, uint64_t *off,
			   size_t *cut)
{
	static uint64_t cuts[MAX_CUTS];
	unsigned ncuts = 0;
	*off = ~0ULL;
	int rc = step_through(c, t, t->len, NULL, false, NO_STEP);
	if (rc)
		return rc;
	for (unsigned k = 0; k < c->ntrace && ncuts < MAX_CUTS; k++)
		if (c->trace[k] >= DT_CODE_ADDR && c->trace[k] < DT_CODE_ADDR + t->len)
			cuts[ncuts++] = c->trace[k] - DT_CODE_ADDR;
	qsort(cuts, ncuts, sizeof(cuts[0]), cmp_u64);
	unsigned u = 0;
	for (unsigned k = 0; k < ncuts; k++)
		if (u == 0 || cuts[k] != cuts[u - 1])
			cuts[u++] = cuts[k];
	for (unsigned k = 0; k < u; k++) {
		enum verdict v;
		*cut = k + 1 < u ? (size_t)cuts[k + 1] : t->len;
		if ((rc = judge(c, t, *cut, NULL, &v)))
			return rc;
		if (v == J_DIVERGE) {
			*off = cuts[k];
			return 0;
		}
	}
	return 0;
}

/* The interpreter's state before step `step` of t: registers, data and
 * stack areas, and the x87/SSE state, which the capture stub's FXSAVE
 * writes to the data area (already copied). */
static int capture_before(struct dt_jit_ctx *c, const struct dt_test *t, unsigned step,
			  struct cpu_state *before)
{
	struct dt_side *s = &c->interp;
	int rc = step_through(c, t, t->len, NULL, false, step);
	if (rc)
		return rc;
	if (!c->ls.ended || s->last_exit != VCPU_EXIT_DEBUG || c->ntrace <= step)
		return -ENOENT;
	*before = s->st;
	const uint8_t *d = guest_mem_ptr(&s->mem, DT_DATA_ADDR, DT_DATA_SIZE);
	const uint8_t *st = guest_mem_ptr(&s->mem, DT_STACK_ADDR, DT_STACK_SIZE);
	if (!d || !st)
		return -EFAULT;
	memcpy(c->data, d, DT_DATA_SIZE);
	memcpy(c->stack, st, DT_STACK_SIZE);
	struct cpu_state cap = s->st;
	struct vcpu_exit x;
	cap.rip = DT_CODE_ADDR + CAP_OFF;
	if ((rc = dt_side_load(s, &cap)) || (rc = run_vcpu(s, &x)) ||
	    (rc = s->ops->get_state(s->vcpu, &s->st)))
		return rc;
	if (x.kind != VCPU_EXIT_DEBUG || s->st.rip != DT_CODE_ADDR + CAP_OFF + 9)
		return -ENOENT; /* the FXSAVE faulted (CR0.TS, EM, ...) */
	return guest_mem_read(&s->mem, DT_DATA_ADDR, c->fpu, FXSAVE_BYTES) ? -EFAULT : 0;
}

static void print_window(const struct dt_jit_ctx *c, const struct dt_test *w, uint64_t start)
{
	const struct cpu_state *s = &w->init;
	struct listing l = {.base = start - DT_CODE_ADDR, .mark = ~0ULL};
	printf("    rip %016" PRIx64 "  rflags %016" PRIx64 "\n", s->rip, s->rflags);
	for (int r = 0; r < GPR_COUNT; r += 4)
		printf("    %-3s %016" PRIx64 "  %-3s %016" PRIx64 "  %-3s %016" PRIx64 "  %-3s %016" PRIx64
		       "\n",
		       dt_gpr_names[r], s->gpr[r], dt_gpr_names[r + 1], s->gpr[r + 1],
		       dt_gpr_names[r + 2], s->gpr[r + 2], dt_gpr_names[r + 3], s->gpr[r + 3]);
	uint64_t off = start - DT_CODE_ADDR;
	if (dt_disassemble(c->objdump, w->mode, w->code + off, w->len - off, print_listing_line, &l) < 0) {
		printf("    ");
		dt_print_hex(w->code + off, w->len - off);
		printf("\n");
	}
}

/* The smallest window of the instructions run up to step `last` (an index
 * into the stepped trace) that diverges on its own: the code from the
 * window's first instruction up to `cut` (where the diverging run's code
 * was cut), HLT elsewhere, run from the interpreter's state before the
 * window. One instruction first (the instruction alone), then wider, for
 * bugs that need the code around an instruction (in the same
 * translation). CPL3 tests only: a CPL0 test may have changed more of the
 * machine than registers, data and stack. Sets *mark to the window's
 * first instruction. */
static int smallest_window(struct dt_jit_ctx *c, const struct dt_test *t, unsigned last,
			   size_t cut, bool full, uint64_t *mark)
{
	static uint64_t steps[MAX_WINDOW];
	unsigned n = 0;
	int rc = step_through(c, t, t->len, NULL, false, last + 1);
	if (rc || t->mode != DT_MODE_LONG64 || c->ntrace <= last)
		return rc;
	uint64_t a_last = c->trace[last], end = DT_CODE_ADDR + (cut < t->len ? cut : t->len);
	if (a_last < DT_CODE_ADDR || a_last >= end)
		return 0;
	/* The steps in the test's code, latest first. */
	for (unsigned k = last + 1; k-- > 0 && n < MAX_WINDOW;)
		if (c->trace[k] >= DT_CODE_ADDR && c->trace[k] <= a_last)
			steps[n++] = (uint64_t)k << 32 | (c->trace[k] - DT_CODE_ADDR);
	for (unsigned w = 0; w < n; w++) {
		uint64_t start = DT_CODE_ADDR + (uint32_t)steps[w];
		struct dt_test win;
		struct cpu_state init;
		if ((rc = capture_before(c, t, (unsigned)(steps[w] >> 32), &init)) == -ENOENT)
			break;
		if (rc)
			return rc;
		memset(c->alone_code, HLT_BYTE, sizeof(c->alone_code));
		memcpy(c->alone_code + (start - DT_CODE_ADDR), t->code + (start - DT_CODE_ADDR),
		       end - start);
		win = *t;
		win.code = c->alone_code;
		win.len = end - DT_CODE_ADDR;
		win.data = c->data;
		win.stack = c->stack;
		win.init = init;
		win.tags = NULL;
		enum verdict v;
		if ((rc = judge(c, &win, win.len, c->fpu, &v)))
			return rc;
		if (v != J_DIVERGE)
			continue;
		*mark = start - DT_CODE_ADDR;
		if (w == 0)
			printf("  the instruction alone diverges:%s\n", c->what);
		else
			printf("  the instruction alone agrees; the smallest window that diverges is the %u "
			       "instructions run from +%" PRIx64 ":%s\n",
			       w + 1, (uint64_t)(start - DT_CODE_ADDR), c->what);
		if (full) {
			printf("  from the interpreter's state before it (registers; data, stack and "
			       "x87/SSE as the sequence left them):\n");
			print_window(c, &win, start);
		}
		return 0;
	}
	printf("  no window of up to %u instructions ending there diverges on its own\n", n);
	return 0;
}

/* ---- one test ---- */

/* A divergence at a step: the states after it, side by side. */
static void report_step(struct dt_jit_ctx *c, const struct dt_test *t, bool full)
{
	const struct lockstep *ls = &c->ls;
	bool cpl0 = t->mode == DT_MODE_KERNEL64;
	printf("  diverges at step %u, ", ls->step);
	print_insn(c, t, ls->rip - DT_CODE_ADDR);
	printf("\n");
	if (!full)
		return;
	struct cpu_state p = cpl0 ? c->p.st : user_state(&c->p);
	struct jsnap pe = c->p; /* for its accesses, less the stub's port write */
	if (cpl0) {
		p.rip--; /* past the HLT that stopped it */
	} else {
		struct user_view u = user_view(&c->p);
		if (u.cs == c->m.st.seg[SEG_CS].selector)
			p.seg[SEG_CS] = c->m.st.seg[SEG_CS];
		if (u.ss == c->m.st.seg[SEG_SS].selector)
			p.seg[SEG_SS] = c->m.st.seg[SEG_SS];
		if (pe.nev && pe.exc_vector == 13)
			pe.nev--;
	}
	p.rflags &= ~FLAG_RF;
	printf("  after it (translator: the test cut at %" PRIx64 ", user state from its frame):\n",
	       (uint64_t)(ls->arrival - DT_CODE_ADDR));
	print_events("interpreter", &c->m);
	print_events("translator", &pe);
	print_regs("interpreter", "translator", &c->m.st, &p, ls->undefined);
	print_memory("interpreter", "translator", &c->m, &c->p, cpl0 ? SKIP_CPL0 : SKIP_CPL3);
}

/* The whole runs, side by side. */
static void report_whole(struct dt_jit_ctx *c, const char *ha, const char *hb,
			 const struct jsnap *a, const struct jsnap *b)
{
	struct cpu_state ua = user_state(a), ub = user_state(b);
	print_outcome(c, ha, a, true);
	print_outcome(c, hb, b, true);
	print_events(ha, a);
	print_events(hb, b);
	printf("  the whole runs (rip, rflags, rsp: the user's, from the exception frame):\n");
	print_regs(ha, hb, &ua, &ub, 0);
	print_memory(ha, hb, a, b, SKIP_NONE);
}

static int report(struct dt_jit_ctx *c, const struct dt_test *t, enum verdict v)
{
	bool full = c->reports++ < DT_FULL_REPORTS;
	uint64_t mark = ~0ULL;
	int rc = 0;
	printf("%sJIT DIVERGENCE in test %s (group %s, mode %s, seed %" PRIu64 "):%s%s\n",
	       full ? "\n" : "", t->name, t->group ? t->group : "-", dt_mode_name(t->mode), t->seed,
	       v == J_SELF ? " the interpreter's stepped and free runs differ:" : "", c->what);
	if (v == J_SELF) {
		if (full)
			report_whole(c, "free:", "stepped:", &c->a, &c->s);
	} else if (c->ls.diverged) {
		struct lockstep ls = c->ls;
		report_step(c, t, full);
		mark = ls.rip - DT_CODE_ADDR;
		rc = smallest_window(c, t, ls.step, ls.arrival - DT_CODE_ADDR, full, &mark);
	} else {
		if (full)
			report_whole(c, "interpreter:", "translator:", &c->a, &c->b);
		if (c->s.timeout == false && c->ls.ended)
			printf("  no single step differs; the interpreter given the translator's "
			       "undefined flags (%u copied) still ends differently\n",
			       c->ls.copied);
		size_t cut = t->len;
		if (!rc)
			rc = shortest_prefix(c, t, &mark, &cut);
		if (!rc && mark != ~0ULL) {
			printf("  the shortest diverging prefix ends with ");
			print_insn(c, t, mark);
			printf("\n");
			rc = step_through(c, t, t->len, NULL, false, NO_STEP);
			unsigned last = 0;
			while (!rc && last < c->ntrace && c->trace[last] != DT_CODE_ADDR + mark)
				last++;
			if (!rc && last < c->ntrace)
				rc = smallest_window(c, t, last, cut, full, &mark);
		} else if (!rc) {
			printf("  no shorter prefix diverges\n");
		}
	}
	if (!rc && full)
		print_sequence(c, t, mark);
	print_repro(t);
	fflush(stdout);
	return rc;
}

int dt_jit_run_test(struct dt_jit_ctx *c, const struct dt_test *t)
{
	enum verdict v;
	if (!dt_jit_mode(t->mode))
		return 0;
	c->stats.tests++;
	int rc = judge(c, t, t->len, NULL, &v);
	if (!rc && v == J_DIVERGE && (c->a.timeout || c->b.timeout))
		rc = judge(c, t, t->len, NULL, &v); /* a timeout on one side: once more (host load) */
	if (rc)
		return rc;
	c->stats.instructions += c->a.icount;
	switch (v) {
	case J_AGREE: return 0;
	case J_EXPLAINED:
		c->stats.explained++;
		if (c->verbose)
			printf("  %s: differs only through undefined flags (%u copied)\n", t->name,
			       c->ls.copied);
		return 0;
	case J_LOOP:
		c->stats.loops++;
		printf("difftest: jit: %s: neither side ended within %d ms; not compared\n", t->name,
		       JIT_TIMEOUT_MS);
		return 0;
	default: break;
	}
	c->stats.failures++;
	rc = report(c, t, v);
	return rc ? rc : 1;
}
