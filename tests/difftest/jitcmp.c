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
 * not stop within JIT_TIMEOUT_MS is kicked by a watchdog. Then everything
 * is compared: GPRs, RIP, RFLAGS, segment, control and descriptor-table
 * registers, every range of dt_compared (the frame with the user's RIP,
 * RFLAGS and RSP included), the port-I/O and MMIO accesses, the exception
 * reported and the exit. XMM and x87 registers are not part of struct
 * cpu_state: they are compared through what the tests store to memory.
 * Nor can they be loaded through the engine interface, so every run
 * starts with a preamble high in the code area, FXRSTOR (a reset image:
 * FCW 037F, MXCSR 1F80, registers zero) and a JMP to the test: each run
 * starts from the same x87/SSE state on both vCPUs, whatever ran before.
 *
 * Undefined flags. The translator computes flags with the host's
 * instructions (an AMD processor here), so flags the SDM leaves undefined
 * may differ from the interpreter's, and reach registers and memory
 * through PUSHF, SETcc, ADC, a branch or an exception frame. Whole runs are
 * first compared bit for bit. On a mismatch the interpreter runs the test
 * again, single-stepped, four times: as it is, and with the flags each
 * instruction leaves undefined (flagmask.c) replaced after it by zeros,
 * by ones, and by their complement. The bits of the final state that
 * differ between these runs depend on undefined flags (the outcome as a
 * whole when the exception, exit or accesses differ). A mismatch is a
 * divergence when it touches a bit that does not depend on them. The
 * three replacements give every value to one undefined flag and to the
 * conditions that combine two (SF != OF, CF | ZF); a dependence they
 * miss shows as a reported divergence, not a hidden one. The stepped run
 * without replacement must equal the free run: if not, the interpreter
 * disagrees with itself, which is reported too.
 *
 * A divergence is narrowed down: the test is cut after each instruction
 * the interpreter executed (HLT from there on) and the shortest cut that
 * still diverges names the instruction; that instruction then runs alone
 * from the interpreter's state before it (registers, data and stack). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "difftest.h"

#define JIT_TIMEOUT_MS 3000
#define MAX_REENTRIES 16     /* INTR exits from a watchdog kick of an earlier run */
#define STUB_STEPS 64        /* steps allowed beyond the test's own in a stepped run */
#define HLT_BYTE 0xf4
#define MAX_CUTS 4096

/* Code-area offsets, above any test (DT_GEN_CODE_MAX): the preamble,
 * its FXRSTOR image, and the capture stub (FXSAVE to the data area, for
 * the state before an instruction run alone). */
#define PRE_OFF 0xf000u
#define IMG_OFF 0xf100u
#define CAP_OFF 0xf040u
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

/* Bits that differ between outcomes (or that depend on undefined flags). */
enum { SYS_CR0 = SEG_COUNT, SYS_CR2, SYS_CR3, SYS_CR4, SYS_EFER, SYS_GDTR, SYS_IDTR, SYS_COUNT };

struct jdiff {
	uint64_t gpr[GPR_COUNT], rip, rflags;
	uint32_t sys;  /* bit per segment register and SYS_* field */
	bool outcome;  /* exit, exception vector or accesses */
	bool any_mem;
	uint8_t *mem;
};

enum perturb { P_NONE, P_ZERO, P_ONE, P_FLIP };

enum verdict {
	J_AGREE,
	J_EXPLAINED, /* differences only in bits that depend on undefined flags */
	J_LOOP,      /* neither side ended in time */
	J_DIVERGE,
	J_SELF,      /* the interpreter's stepped and free runs differ */
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
	struct jsnap a, b, s0, s1; /* interpreter, translator, stepped, stepped and perturbed */
	struct jdiff diff, dep, self, zero; /* zero: explains nothing */
	uint8_t code[DT_CODE_SIZE]; /* the code area of the run: test + HLT */
	uint64_t end;               /* linear address where the test's code ends */
	/* The interpreter's stepped trace: the RIP before each step. */
	unsigned ntrace;
	uint64_t trace[DT_GEN_CODE_MAX + STUB_STEPS];
	/* The state before an instruction, for running it alone. */
	uint8_t data[DT_DATA_SIZE], stack[DT_STACK_SIZE], fpu[FXSAVE_BYTES];
	struct cpu_state before;
	uint8_t alone_code[DT_CODE_SIZE];
	char what[512];
};

bool dt_jit_mode(enum dt_mode m) { return m == DT_MODE_LONG64 || m == DT_MODE_KERNEL64; }

const struct dt_jit_stats *dt_jit_get_stats(const struct dt_jit_ctx *c) { return &c->stats; }

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
	struct jsnap *snaps[] = {&c->a, &c->b, &c->s0, &c->s1};
	struct jdiff *diffs[] = {&c->diff, &c->dep, &c->self, &c->zero};
	bool ok = true;
	for (size_t k = 0; k < 4; k++)
		ok = ok && (snaps[k]->mem = malloc(c->mem_bytes)) != NULL;
	for (size_t k = 0; k < 4; k++)
		ok = ok && (diffs[k]->mem = calloc(1, c->mem_bytes)) != NULL;
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

void dt_jit_fini(struct dt_jit_ctx *c)
{
	if (!c)
		return;
	dt_watchdog_stop(c->wd_interp);
	dt_watchdog_stop(c->wd_jit);
	dt_side_fini(&c->interp);
	dt_side_fini(&c->jit);
	free(c->a.mem);
	free(c->b.mem);
	free(c->s0.mem);
	free(c->s1.mem);
	free(c->diff.mem);
	free(c->dep.mem);
	free(c->self.mem);
	free(c->zero.mem);
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
 * and jumps to the test's first instruction. */
static void frame_test(struct dt_jit_ctx *c, const struct dt_test *t, size_t cut,
		       const uint8_t *fpu, struct dt_test *ft)
{
	if (cut > t->len)
		cut = t->len;
	memset(c->code, HLT_BYTE, sizeof(c->code));
	memcpy(c->code, t->code, cut);
	uint8_t *pre = c->code + PRE_OFF, *img = c->code + IMG_OFF, *cap = c->code + CAP_OFF;
	/* FXRSTOR64 [RIP + disp32]; JMP rel32 (64-bit code: CS base 0). */
	static const uint8_t fxrstor[] = {0x48, 0x0f, 0xae, 0x0d};
	memcpy(pre, fxrstor, 4);
	put_le(pre + 4, IMG_OFF - (PRE_OFF + 8), 4);
	pre[8] = 0xe9;
	put_le(pre + 9, t->init.rip - (DT_CODE_ADDR + PRE_OFF + 13), 4);
	if (fpu) {
		memcpy(img, fpu, FXSAVE_BYTES);
	} else {
		memset(img, 0, FXSAVE_BYTES);
		put_le(img, 0x37f, 2);      /* FCW: all exceptions masked, extended precision */
		put_le(img + 24, 0x1f80, 4); /* MXCSR */
	}
	/* FXSAVE64 [DT_DATA_ADDR] (SIB with no base: disp32). */
	static const uint8_t fxsave[] = {0x48, 0x0f, 0xae, 0x04, 0x25};
	memcpy(cap, fxsave, 5);
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

/* run() once more while it returns at once for a kick that was meant for
 * an earlier run (the watchdog fired after that run had ended). */
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

/* Replaces the flags the instruction just executed left undefined. */
static int perturb_flags(struct dt_side *s, enum perturb p, const uint8_t *bytes, size_t nb,
			 const struct cpu_state *before, enum dt_mode mode)
{
	struct dt_opinfo op;
	dt_opinfo_decode(bytes, nb, dt_mode_bits(mode), &op);
	uint64_t la = dt_linear_rip(before), next = dt_linear_rip(&s->st);
	size_t len = next > la && next - la <= nb ? (size_t)(next - la) : nb;
	uint64_t u = dt_undefined_flags(&op, bytes, len, before), f = s->st.rflags;
	if (p == P_ZERO)
		f &= ~u;
	else if (p == P_ONE)
		f |= u;
	else if (p == P_FLIP)
		f ^= u;
	if (f == s->st.rflags)
		return 0;
	s->st.rflags = f;
	return dt_side_load(s, &s->st);
}

/* Runs the framed test on the interpreter one instruction at a time,
 * replacing undefined flags as p says, recording the trace when asked,
 * and stopping before step stop_at (UINT32_MAX: at the end). o->timeout
 * says the run did not end within the test's step budget. */
static int run_stepped(struct dt_jit_ctx *c, const struct dt_test *ft, enum perturb p,
		       unsigned stop_at, bool trace, struct jsnap *o)
{
	struct dt_side *s = &c->interp;
	int rc = load(s, ft, true);
	unsigned limit = ft->max_steps + STUB_STEPS;
	bool ended = false;
	if (trace)
		c->ntrace = 0;
	for (unsigned n = 0; !rc && n < limit; n++) {
		struct cpu_state before = s->st;
		uint8_t bytes[15];
		if (trace && c->ntrace < sizeof(c->trace) / sizeof(c->trace[0]))
			c->trace[c->ntrace++] = dt_linear_rip(&before);
		if (n == stop_at) {
			ended = true;
			break;
		}
		size_t nb = read_code(s, dt_linear_rip(&before), bytes);
		struct vcpu_exit x;
		rc = run_vcpu(s, &x);
		if (rc)
			break;
		s->last_exit = x.kind;
		s->last_detail = x.detail.code;
		rc = s->ops->get_state(s->vcpu, &s->st);
		if (x.kind != VCPU_EXIT_DEBUG) {
			ended = true;
			break;
		}
		/* Not for a fault or interrupt (delivery changed no flag), nor
		 * in the stubs. */
		if (!rc && p != P_NONE && !dt_in_stubs(&before) && !dt_in_stubs(&s->st))
			rc = perturb_flags(s, p, bytes, nb, &before, ft->mode);
	}
	if (rc)
		return rc;
	snapshot(s, o);
	o->timeout = !ended;
	o->icount = 0;
	return 0;
}

/* ---- comparing ---- */

static void diff_clear(struct dt_jit_ctx *c, struct jdiff *d)
{
	uint8_t *mem = d->mem;
	memset(d, 0, sizeof(*d));
	d->mem = mem;
	memset(mem, 0, c->mem_bytes);
}

static bool events_equal(const struct jsnap *a, const struct jsnap *b)
{
	if (a->nev != b->nev || a->lost_ev != b->lost_ev)
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

/* d |= the bits in which a and b differ. */
static void diff_or(const struct dt_jit_ctx *c, struct jdiff *d, const struct jsnap *a,
		    const struct jsnap *b)
{
	for (int r = 0; r < GPR_COUNT; r++)
		d->gpr[r] |= a->st.gpr[r] ^ b->st.gpr[r];
	d->rip |= a->st.rip ^ b->st.rip;
	d->rflags |= a->st.rflags ^ b->st.rflags;
	for (int r = 0; r < SEG_COUNT; r++)
		if (!dt_seg_equal(&a->st.seg[r], &b->st.seg[r]))
			d->sys |= 1u << r;
	const struct cpu_state *x = &a->st, *y = &b->st;
	d->sys |= (uint32_t)(x->cr0 != y->cr0) << SYS_CR0 | (uint32_t)(x->cr2 != y->cr2) << SYS_CR2 |
		  (uint32_t)(x->cr3 != y->cr3) << SYS_CR3 | (uint32_t)(x->cr4 != y->cr4) << SYS_CR4 |
		  (uint32_t)(x->efer != y->efer) << SYS_EFER |
		  (uint32_t)(x->gdt.base != y->gdt.base || x->gdt.limit != y->gdt.limit) << SYS_GDTR |
		  (uint32_t)(x->idt.base != y->idt.base || x->idt.limit != y->idt.limit) << SYS_IDTR;
	if (a->exit != b->exit || a->exc_vector != b->exc_vector || !events_equal(a, b) ||
	    a->timeout != b->timeout)
		d->outcome = true;
	if (memcmp(a->mem, b->mem, c->mem_bytes) == 0)
		return;
	d->any_mem = true;
	for (size_t k = 0; k < c->mem_bytes; k++)
		d->mem[k] |= a->mem[k] ^ b->mem[k];
}

/* Whether d has a bit that dep does not explain; names the fields in c->what. */
static bool diff_beyond(struct dt_jit_ctx *c, const struct jdiff *d, const struct jdiff *dep)
{
	char *w = c->what;
	size_t cap = sizeof(c->what), n = 0;
	w[0] = 0;
#define NOTE(...) (n += (size_t)snprintf(w + n, n < cap ? cap - n : 0, __VA_ARGS__), n = n < cap ? n : cap - 1)
	if (d->outcome && !dep->outcome)
		NOTE(" outcome");
	for (int r = 0; r < GPR_COUNT; r++)
		if (d->gpr[r] & ~dep->gpr[r])
			NOTE(" %s", dt_gpr_names[r]);
	if (d->rip & ~dep->rip)
		NOTE(" rip");
	if (d->rflags & ~dep->rflags)
		NOTE(" rflags");
	static const char *const sys_names[SYS_COUNT - SEG_COUNT] = {"cr0",  "cr2",  "cr3", "cr4",
								      "efer", "gdtr", "idtr"};
	for (int k = 0; k < SYS_COUNT; k++)
		if ((d->sys & ~dep->sys) & (1u << k))
			NOTE(" %s", k < SEG_COUNT ? dt_seg_names[k] : sys_names[k - SEG_COUNT]);
	if (d->any_mem) {
		size_t off = 0;
		for (unsigned r = 0; r < dt_ncompared; r++) {
			for (size_t k = 0; k < dt_compared[r].size; k++)
				if (d->mem[off + k] & ~dep->mem[off + k]) {
					NOTE(" memory(%s)", dt_compared[r].name);
					break;
				}
			off += dt_compared[r].size;
		}
	}
#undef NOTE
	return w[0] != 0;
}

/* Runs the test (its code cut after `cut` bytes, x87/SSE state from fpu)
 * on both sides and judges the outcome; c->a and c->b keep the runs, c->dep what depends
 * on undefined flags (when a mismatch was analysed). */
static int judge(struct dt_jit_ctx *c, const struct dt_test *t, size_t cut, const uint8_t *fpu,
		 enum verdict *v)
{
	struct dt_test ft;
	frame_test(c, t, cut, fpu, &ft);
	int rc = run_free(&c->interp, c->wd_interp, &ft, &c->a);
	if (!rc)
		rc = run_free(&c->jit, c->wd_jit, &ft, &c->b);
	if (rc)
		return rc;
	diff_clear(c, &c->dep);
	diff_clear(c, &c->diff);
	c->what[0] = 0;
	if (c->a.timeout && c->b.timeout) {
		*v = J_LOOP;
		return 0;
	}
	diff_or(c, &c->diff, &c->a, &c->b);
	if (!diff_beyond(c, &c->diff, &c->dep)) {
		*v = J_AGREE;
		return 0;
	}
	if (c->a.timeout || c->b.timeout) {
		snprintf(c->what, sizeof(c->what), " the %s did not end within %d ms",
			 c->a.timeout ? "interpreter" : "translator", JIT_TIMEOUT_MS);
		*v = J_DIVERGE;
		return 0;
	}
	/* Which bits depend on undefined flags. */
	if ((rc = run_stepped(c, &ft, P_NONE, UINT32_MAX, false, &c->s0)))
		return rc;
	diff_clear(c, &c->self);
	diff_or(c, &c->self, &c->s0, &c->a);
	static const enum perturb ways[] = {P_ZERO, P_ONE, P_FLIP};
	for (size_t k = 0; k < sizeof(ways) / sizeof(ways[0]); k++) {
		if ((rc = run_stepped(c, &ft, ways[k], UINT32_MAX, false, &c->s1)))
			return rc;
		diff_or(c, &c->dep, &c->s0, &c->s1);
	}
	char self_what[sizeof(c->what)];
	bool self = diff_beyond(c, &c->self, &c->zero);
	snprintf(self_what, sizeof(self_what), "%s", c->what);
	if (diff_beyond(c, &c->diff, &c->dep)) {
		*v = J_DIVERGE;
		return 0;
	}
	if (self) {
		snprintf(c->what, sizeof(c->what), "%s", self_what);
		*v = J_SELF;
		return 0;
	}
	*v = J_EXPLAINED;
	return 0;
}

/* ---- reporting ---- */

/* The user's RIP, RFLAGS and RSP: from the exception frame when the run
 * stopped in a stub (SDM vol. 3 §6.14.2), else the registers. */
struct user_view {
	bool framed;
	uint64_t rip, rflags, rsp, error;
};

static struct user_view user_view(const struct jsnap *o)
{
	struct user_view u = {.rip = o->st.rip, .rflags = o->st.rflags, .rsp = o->st.gpr[GPR_RSP]};
	uint64_t fr[6];
	bool err = dt_vector_has_error(o->exc_vector);
	if (o->exc_vector < 0 || !dt_in_stubs(&o->st))
		return u;
	/* The frame is in the snapshot's ring-0 stack range. */
	size_t off = 0;
	for (unsigned r = 0; r < dt_ncompared; r++) {
		const struct dt_range *g = &dt_compared[r];
		uint64_t at = o->st.gpr[GPR_RSP];
		if (at >= g->base && at + sizeof(fr) <= g->base + g->size) {
			memcpy(fr, o->mem + off + (at - g->base), sizeof(fr));
			u.framed = true;
			u.error = err ? fr[0] : 0;
			u.rip = fr[err ? 1 : 0];
			u.rflags = fr[err ? 3 : 2];
			u.rsp = fr[err ? 4 : 3];
			return u;
		}
		off += g->size;
	}
	return u;
}

static const char *exc_name(int v)
{
	static const char *const names[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
					    "#DF", "?",   "#TS", "#NP", "#SS", "#GP", "#PF", "?",
					    "#MF", "#AC", "#MC", "#XM"};
	if (v == DT_USER_VECTOR)
		return "INT 0x80";
	return v >= 0 && v < (int)(sizeof(names) / sizeof(names[0])) ? names[v] : "vector";
}

static void print_outcome(const struct dt_jit_ctx *c, const char *who, const struct jsnap *o)
{
	struct user_view u = user_view(o);
	printf("  %-12s", who);
	if (o->timeout)
		printf("did not end within %d ms (rip %" PRIx64 ")", JIT_TIMEOUT_MS, o->st.rip);
	else if (o->exc_vector == 13 && u.framed && u.rip == c->end && u.error == 0)
		printf("reached the end of the code");
	else if (o->exc_vector >= 0)
		printf("%s (%d) at rip %" PRIx64 ", error code %" PRIx64, exc_name(o->exc_vector),
		       o->exc_vector, u.rip, u.error);
	else
		printf("exit %s at rip %" PRIx64, vcpu_exit_kind_name(o->exit), o->st.rip);
	printf("; %" PRIu64 " instructions retired\n", o->icount);
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

static void row(const char *name, uint64_t a, uint64_t b, uint64_t dep)
{
	printf("  %-14s %016" PRIx64 "   %016" PRIx64 "%s", name, a, b,
	       (a ^ b) & ~dep ? "  <--" : "");
	if (dep)
		printf("   (bits %" PRIx64 " depend on undefined flags)", dep);
	printf("\n");
}

static uint64_t mem_dep_word(const struct jdiff *dep, uint64_t gpa)
{
	size_t off = 0;
	uint64_t w = 0;
	for (unsigned r = 0; r < dt_ncompared; r++) {
		const struct dt_range *g = &dt_compared[r];
		if (gpa >= g->base && gpa + 8 <= g->base + g->size) {
			memcpy(&w, dep->mem + off + (gpa - g->base), 8);
			return w;
		}
		off += g->size;
	}
	return 0;
}

static void print_states(const struct jsnap *a, const struct jsnap *b, const struct jdiff *dep)
{
	struct user_view ua = user_view(a), ub = user_view(b);
	printf("  %-14s %-16s   %-16s\n", "", "interpreter", "translator");
	for (int r = 0; r < GPR_COUNT; r++)
		row(dt_gpr_names[r], a->st.gpr[r], b->st.gpr[r], dep->gpr[r]);
	row("rip", a->st.rip, b->st.rip, dep->rip);
	row("rflags", a->st.rflags, b->st.rflags, dep->rflags);
	if (ua.framed || ub.framed) {
		uint64_t ra = a->st.gpr[GPR_RSP] + (dt_vector_has_error(a->exc_vector) ? 8 : 0);
		row("frame rip", ua.rip, ub.rip, mem_dep_word(dep, ra));
		row("frame rflags", ua.rflags, ub.rflags, mem_dep_word(dep, ra + 16));
		row("frame rsp", ua.rsp, ub.rsp, mem_dep_word(dep, ra + 24));
	}
	for (int r = 0; r < SEG_COUNT; r++)
		if (!dt_seg_equal(&a->st.seg[r], &b->st.seg[r]))
			printf("  %-14s %04x base %" PRIx64 "   %04x base %" PRIx64 "  <--\n",
			       dt_seg_names[r], a->st.seg[r].selector, a->st.seg[r].base,
			       b->st.seg[r].selector, b->st.seg[r].base);
	if (a->st.cr0 != b->st.cr0 || a->st.cr4 != b->st.cr4 || a->st.efer != b->st.efer ||
	    a->st.cr2 != b->st.cr2 || a->st.cr3 != b->st.cr3) {
		row("cr0", a->st.cr0, b->st.cr0, 0);
		row("cr2", a->st.cr2, b->st.cr2, 0);
		row("cr3", a->st.cr3, b->st.cr3, 0);
		row("cr4", a->st.cr4, b->st.cr4, 0);
		row("efer", a->st.efer, b->st.efer, 0);
	}
}

/* Up to four rows of differing memory, 16 bytes each. */
static void print_memory(const struct jsnap *a, const struct jsnap *b, const struct jdiff *dep)
{
	size_t off = 0;
	unsigned shown = 0;
	for (unsigned r = 0; r < dt_ncompared && shown < 4; r++) {
		const struct dt_range *g = &dt_compared[r];
		for (size_t k = 0; k < g->size && shown < 4; k += 16) {
			bool differs = false;
			for (size_t i = k; i < k + 16 && i < g->size; i++)
				differs = differs || ((a->mem[off + i] ^ b->mem[off + i]) & ~dep->mem[off + i]);
			if (!differs)
				continue;
			printf("  memory (%s) %08" PRIx64 ":\n    interpreter ", g->name, g->base + k);
			dt_print_hex(a->mem + off + k, 16);
			printf("\n    translator  ");
			dt_print_hex(b->mem + off + k, 16);
			printf("\n");
			shown++;
		}
		off += g->size;
	}
}

struct listing {
	uint64_t mark; /* code offset to mark, or ~0 */
	bool marked;
};

static void print_listing_line(void *opaque, uint64_t off, const char *text)
{
	struct listing *l = opaque;
	bool here = off == l->mark;
	printf("   %s%5" PRIx64 ":%s\n", here ? "=>" : "  ", off, text);
	l->marked = l->marked || here;
}

static void print_sequence(const struct dt_jit_ctx *c, const struct dt_test *t, uint64_t mark)
{
	struct listing l = {.mark = mark};
	printf("  the sequence (%zu bytes%s):\n", t->len, mark != ~0ULL ? "; => the instruction found" : "");
	if (dt_disassemble(c->objdump, t->mode, t->code, t->len, print_listing_line, &l) < 0) {
		printf("    ");
		dt_print_hex(t->code, t->len);
		printf("\n");
	}
}

static void print_repro(const struct dt_test *t)
{
	if (!t->repro)
		return;
	/* The KVM repro line with --jit in front: same test, this comparison. */
	const char *r = t->repro;
	if (strncmp(r, "difftest ", 9) == 0)
		printf("  reproduce: build/difftest --jit %s\n", r + 9);
	else
		printf("  reproduce: %s (with --jit)\n", r);
}

/* ---- narrowing a divergence down ---- */

struct culprit {
	bool found;
	uint64_t off;      /* code offset of the instruction */
	size_t len;        /* its length, 0 if unknown */
	unsigned step;     /* its first execution in the stepped trace */
	enum verdict alone;
	bool alone_ran;
};

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

static void insn_length_line(void *opaque, uint64_t off, const char *text)
{
	size_t *len = opaque;
	(void)text;
	if (off > 0 && *len == 0)
		*len = (size_t)off;
}

/* The shortest prefix of t (cut at the start of an instruction the
 * interpreter executed) that still diverges. */
static int find_culprit(struct dt_jit_ctx *c, const struct dt_test *t, struct culprit *cu)
{
	static uint64_t cuts[MAX_CUTS];
	struct dt_test ft;
	memset(cu, 0, sizeof(*cu));
	frame_test(c, t, t->len, NULL, &ft);
	int rc = run_stepped(c, &ft, P_NONE, UINT32_MAX, true, &c->s0);
	if (rc)
		return rc;
	unsigned ncuts = 0;
	for (unsigned k = 0; k < c->ntrace && ncuts < MAX_CUTS; k++)
		if (c->trace[k] >= DT_CODE_ADDR && c->trace[k] < DT_CODE_ADDR + t->len)
			cuts[ncuts++] = c->trace[k] - DT_CODE_ADDR;
	qsort(cuts, ncuts, sizeof(cuts[0]), cmp_u64);
	unsigned u = 0;
	for (unsigned k = 0; k < ncuts; k++)
		if (u == 0 || cuts[k] != cuts[u - 1])
			cuts[u++] = cuts[k];
	ncuts = u;
	/* Cut k keeps the instructions that start before cuts[k + 1]. */
	for (unsigned k = 0; k < ncuts; k++) {
		size_t cut = k + 1 < ncuts ? (size_t)cuts[k + 1] : t->len;
		enum verdict v;
		if ((rc = judge(c, t, cut, NULL, &v)))
			return rc;
		if (v == J_DIVERGE) {
			cu->found = true;
			cu->off = cuts[k];
			break;
		}
	}
	if (!cu->found)
		return 0;
	/* Where execution first reaches it (the trace is judge's to keep). */
	cu->step = UINT32_MAX;
	for (unsigned k = 0; k < c->ntrace; k++)
		if (c->trace[k] == DT_CODE_ADDR + cu->off) {
			cu->step = k;
			break;
		}
	size_t room = t->len - cu->off < 15 ? t->len - cu->off : 15;
	dt_disassemble(c->objdump, t->mode, t->code + cu->off, room, insn_length_line, &cu->len);
	if (cu->len == 0 && c->objdump)
		cu->len = room; /* the test's last instruction: objdump printed one line */
	return 0;
}

/* The interpreter's state before step `step` of the framed test:
 * registers, data and stack areas, and the x87/SSE state, which the
 * capture stub's FXSAVE writes to the data area (read, then dropped). */
static int capture_before(struct dt_jit_ctx *c, const struct dt_test *ft, unsigned step)
{
	struct dt_side *s = &c->interp;
	int rc = run_stepped(c, ft, P_NONE, step, false, &c->s0);
	if (rc)
		return rc;
	if (c->s0.timeout || s->last_exit != VCPU_EXIT_DEBUG)
		return -ENOENT;
	c->before = s->st;
	const uint8_t *d = guest_mem_ptr(&s->mem, DT_DATA_ADDR, DT_DATA_SIZE);
	const uint8_t *st = guest_mem_ptr(&s->mem, DT_STACK_ADDR, DT_STACK_SIZE);
	if (!d || !st)
		return -EFAULT;
	memcpy(c->data, d, DT_DATA_SIZE);
	memcpy(c->stack, st, DT_STACK_SIZE);
	struct cpu_state cap = s->st;
	cap.rip = DT_CODE_ADDR + CAP_OFF;
	struct vcpu_exit x;
	if ((rc = dt_side_load(s, &cap)) || (rc = run_vcpu(s, &x)))
		return rc;
	if ((rc = s->ops->get_state(s->vcpu, &s->st)))
		return rc;
	if (x.kind != VCPU_EXIT_DEBUG || s->st.rip != DT_CODE_ADDR + CAP_OFF + 9)
		return -ENOENT; /* the FXSAVE faulted (CR0.TS, EM, ...) */
	if (guest_mem_read(&s->mem, DT_DATA_ADDR, c->fpu, FXSAVE_BYTES))
		return -EFAULT;
	return 0;
}

/* The culprit alone, from the interpreter's state before its first
 * execution (CPL3 tests only: a CPL0 test may have changed more of the
 * machine than the registers, data and stack). */
static int run_alone(struct dt_jit_ctx *c, const struct dt_test *t, struct culprit *cu,
		     struct dt_test *alone)
{
	struct dt_test ft;
	if (t->mode != DT_MODE_LONG64 || !cu->len || cu->step == UINT32_MAX)
		return 0;
	frame_test(c, t, t->len, NULL, &ft);
	int rc = capture_before(c, &ft, cu->step);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	memset(c->alone_code, HLT_BYTE, sizeof(c->alone_code));
	memcpy(c->alone_code + cu->off, t->code + cu->off, cu->len);
	*alone = *t;
	alone->code = c->alone_code;
	alone->len = cu->off + cu->len;
	alone->data = c->data;
	alone->stack = c->stack;
	alone->init = c->before;
	alone->tags = NULL;
	if ((rc = judge(c, alone, alone->len, c->fpu, &cu->alone)))
		return rc;
	cu->alone_ran = true;
	return 0;
}

static void print_culprit_line(void *opaque, uint64_t off, const char *text)
{
	(void)opaque;
	if (off == 0)
		printf("%s", text);
}

static void describe_culprit(const struct dt_jit_ctx *c, const struct dt_test *t,
			     const struct culprit *cu)
{
	printf("  shortest diverging prefix ends with +%" PRIx64 ":", cu->off);
	size_t room = cu->len ? cu->len : (t->len - cu->off < 15 ? t->len - cu->off : 15);
	if (dt_disassemble(c->objdump, t->mode, t->code + cu->off, room, print_culprit_line, NULL) < 0) {
		printf(" ");
		dt_print_hex(t->code + cu->off, room);
	}
	if (t->tags && t->tags[cu->off])
		printf("   (template '%s')", t->tags[cu->off]);
	printf("\n");
}

static void report(struct dt_jit_ctx *c, const struct dt_test *t, enum verdict v)
{
	bool full = c->reports++ < DT_FULL_REPORTS;
	printf("%sJIT DIVERGENCE in test %s (group %s, mode %s, seed %" PRIu64 "): %s:%s\n",
	       full ? "\n" : "", t->name, t->group ? t->group : "-", dt_mode_name(t->mode), t->seed,
	       v == J_SELF ? "the interpreter's stepped and free runs differ"
			   : "the translator and the interpreter differ",
	       c->what);
	if (!full)
		return;
	const struct jsnap *b = v == J_SELF ? &c->s0 : &c->b;
	print_outcome(c, "interpreter:", &c->a);
	print_outcome(c, v == J_SELF ? "stepped:" : "translator:", b);
	print_events("interpreter", &c->a);
	print_events(v == J_SELF ? "stepped" : "translator", b);
	const struct jdiff *dep = v == J_SELF ? &c->zero : &c->dep;
	print_states(&c->a, b, dep);
	print_memory(&c->a, b, dep);
}

static void report_alone(struct dt_jit_ctx *c, const struct dt_test *alone, const struct culprit *cu,
			 bool full)
{
	static const char *const verdicts[] = {"agrees", "agrees (but for undefined flags)",
					       "loops on both", "diverges", "interpreter differs from itself"};
	printf("  that instruction alone, from the interpreter's state before it: %s%s%s\n",
	       verdicts[cu->alone], cu->alone == J_DIVERGE ? ":" : "",
	       cu->alone == J_DIVERGE ? c->what : "");
	if (!full || cu->alone != J_DIVERGE)
		return;
	printf("  state before it (data and stack areas as the sequence left them):\n");
	for (int r = 0; r < GPR_COUNT; r += 4)
		printf("    %-3s %016" PRIx64 "  %-3s %016" PRIx64 "  %-3s %016" PRIx64 "  %-3s %016" PRIx64
		       "\n",
		       dt_gpr_names[r], alone->init.gpr[r], dt_gpr_names[r + 1], alone->init.gpr[r + 1],
		       dt_gpr_names[r + 2], alone->init.gpr[r + 2], dt_gpr_names[r + 3],
		       alone->init.gpr[r + 3]);
	printf("    rip %016" PRIx64 "  rflags %016" PRIx64 "\n", alone->init.rip, alone->init.rflags);
	printf("  after it:\n");
	print_outcome(c, "interpreter:", &c->a);
	print_outcome(c, "translator:", &c->b);
	print_states(&c->a, &c->b, &c->dep);
	print_memory(&c->a, &c->b, &c->dep);
}

/* Narrows the divergence of t down and reports what it finds. */
static int narrow(struct dt_jit_ctx *c, const struct dt_test *t, bool full)
{
	struct culprit cu;
	struct dt_test alone;
	int rc = find_culprit(c, t, &cu);
	if (rc)
		return rc;
	if (!cu.found) {
		printf("  no prefix of the sequence diverges by itself\n");
	} else {
		describe_culprit(c, t, &cu);
		if ((rc = run_alone(c, t, &cu, &alone)))
			return rc;
		if (cu.alone_ran)
			report_alone(c, &alone, &cu, full);
	}
	if (full)
		print_sequence(c, t, cu.found ? cu.off : ~0ULL);
	print_repro(t);
	fflush(stdout);
	return 0;
}

int dt_jit_run_test(struct dt_jit_ctx *c, const struct dt_test *t)
{
	enum verdict v;
	if (!dt_jit_mode(t->mode))
		return 0;
	c->stats.tests++;
	int rc = judge(c, t, t->len, NULL, &v);
	if (!rc && (v == J_DIVERGE || v == J_SELF) && (c->a.timeout || c->b.timeout))
		rc = judge(c, t, t->len, NULL, &v); /* a timeout on one side: once more (host load) */
	if (rc)
		return rc;
	c->stats.instructions += c->a.icount;
	switch (v) {
	case J_AGREE: return 0;
	case J_EXPLAINED:
		c->stats.explained++;
		if (c->verbose)
			printf("  %s: translator and interpreter differ only in bits that depend on "
			       "undefined flags\n",
			       t->name);
		return 0;
	case J_LOOP:
		c->stats.loops++;
		printf("difftest: jit: %s: neither side ended within %d ms; not compared\n", t->name,
		       JIT_TIMEOUT_MS);
		return 0;
	default: break;
	}
	c->stats.failures++;
	bool full = c->reports < DT_FULL_REPORTS;
	report(c, t, v);
	if (v == J_SELF) {
		print_sequence(c, t, ~0ULL);
		print_repro(t);
		return 1;
	}
	rc = narrow(c, t, full);
	return rc ? rc : 1;
}
