/* The code generator: one block of 64-bit guest code → x86-64 host code.
 *
 * Register use in generated code: RBP holds the struct soft_cpu pointer
 * for the whole run; guest registers live in cpu->s.gpr and are addressed
 * from it; RAX, RCX, RDX, RSI, RDI and R8-R11 are scratch. RSP is 16-byte
 * aligned (the entry trampoline sees to it), so C helpers are called
 * directly.
 *
 * Block layout:
 *   entry:  budget and interrupt checks, the code page's stamp check
 *   body:   each guest instruction, natively or as a handler call
 *   stubs:  out of line: exits (chainable direct jumps, dynamic exits),
 *           TLB-miss slow paths (the whole instruction through its
 *           interpreter handler, then back)
 *
 * Precise state: guest registers are always in memory, so at every call
 * that can fault (a handler, a slow path) the state is exactly the
 * interpreter's once cpu->s.rip is stored, which the call site does.
 *
 * Flags. The guest's arithmetic flags are either in memory (cpu->lf and
 * cpu->s.rflags, the interpreter's representation: MEM), or in the host's
 * own RFLAGS after a native instruction produced them (HOST), or both.
 * A backward pass finds which flags are read before being overwritten
 * (block exits count as reads); a producer whose flags are dead costs
 * nothing, a consumer right after its producer (CMP; Jcc) tests the host
 * flags directly, and host flags are written to memory (materialized)
 * only when something that needs them there comes first. Every
 * instruction that can fault counts as a reader (the fault pushes
 * RFLAGS), but only on its slow path: flags that are otherwise dead are
 * saved in R8 before the probe (PUSHFQ; POP) and written to memory only
 * if the slow path is taken. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "engine/soft/jit/jit_internal.h"

/* ---- offsets into struct soft_cpu ---- */
#define OFF_GPR(n) ((int32_t)(offsetof(struct soft_cpu, s.gpr) + 8 * (n)))
#define OFF_RIP ((int32_t)offsetof(struct soft_cpu, s.rip))
#define OFF_RFLAGS ((int32_t)offsetof(struct soft_cpu, s.rflags))
#define OFF_LFOP ((int32_t)offsetof(struct soft_cpu, lf.op))
#define OFF_NEXT_RIP ((int32_t)offsetof(struct soft_cpu, next_rip))
#define OFF_ICOUNT ((int32_t)offsetof(struct soft_cpu, icount))
#define OFF_BUDGET ((int32_t)offsetof(struct soft_cpu, jit_budget))
#define OFF_ABORT ((int32_t)offsetof(struct soft_cpu, block_abort))
#define OFF_BLOCK_PAGE ((int32_t)offsetof(struct soft_cpu, block_gpa_page))
#define OFF_SEGBASE(sreg) ((int32_t)(offsetof(struct soft_cpu, s.seg) + (sreg) * sizeof(struct segment) + \
				     offsetof(struct segment, base)))
#define OFF_TLB(acc, user) \
	((int32_t)(offsetof(struct soft_cpu, tlb) + ((acc) * 2 + (user)) * TLB_SIZE * sizeof(struct tlb_entry)))

_Static_assert(sizeof(struct tlb_entry) == 24, "the TLB probe scales the index by 3 * 8");
_Static_assert(offsetof(struct tlb_entry, host) == 8, "the TLB probe loads host at +8");
_Static_assert(TLB_SIZE == 512, "the TLB probe masks the index with 511");

#define ARITH_MASK 0x8d5 /* CF PF AF ZF SF OF */

/* Where the guest's architectural flags are: memory (cpu->lf/rflags),
 * the host's RFLAGS, both, or only a copy in R8 (saved before a TLB probe
 * clobbered the host's, for the probe's slow path, when nothing else
 * reads them before the next producer). */
enum fstate { F_MEM, F_HOST, F_BOTH, F_R8 };

/* Flag masks in the 6-bit liveness domain (bit per arithmetic flag). */
#define FL_ALL 0x3f
#define FL_CF 0x01
#define FL_OF 0x20

enum stub_kind { STUB_EXIT, STUB_SLOW };

struct stub {
	uint8_t kind;
	uint8_t fs_at;     /* flag state where the stub is entered */
	uint8_t fs_after;  /* SLOW: state the fast path continues in */
	bool chain;        /* EXIT: the target may be chained (same page) */
	bool flags_r8;     /* SLOW: the guest's flags are in R8 */
	bool from_handler; /* EXIT: after a handler; RAX = 2 asks for the run loop */
	bool home;         /* EXIT: always back to the dispatcher (budget, stale) */
	bool stale;        /* EXIT: the code changed: RAX = JIT_EXIT_STALE */
	bool dynamic;      /* EXIT: RIP is already in cpu->s.rip */
	size_t branch;     /* rel32 field that jumps here */
	size_t branch2, branch3; /* EXIT: more of them (0: none) */
	size_t resume;     /* SLOW: where to continue */
	uint64_t rip;      /* EXIT: target RIP; SLOW: the instruction's RIP */
	uint64_t fall;     /* SLOW: its fall-through RIP */
	uint32_t icount;   /* instructions retired on this way out */
	struct jit_call *call; /* SLOW: the instruction's handler call */
};

#define MAX_STUBS (JIT_MAX_INSNS * 3 + 8)

struct tctx {
	struct soft_jit *j;
	struct soft_cpu *cpu;
	struct emit e;
	uint64_t block_rip, gpa;
	unsigned n;
	struct insn insn[JIT_MAX_INSNS];
	uint64_t rip[JIT_MAX_INSNS + 1];
	uint8_t live_after[JIT_MAX_INSNS];
	unsigned k;         /* the instruction being translated */
	enum fstate fs;
	bool user;          /* CPL 3: the TLB index of the generated probes */
	bool sse;           /* SSE instructions may be emitted natively (jit_sse_usable) */
	unsigned nstubs, first_pending;
	/* Write-through register cache: guest register n lives in host
	 * register cached[n] (or -1) for the whole block; every write also
	 * goes to memory, so memory is always current for C code, faults and
	 * exits, and only a handler call (which may write any register)
	 * requires reloading the cache. */
	struct stub *pending_slow; /* sse_mem: the misalignment exit, completed at the end */
	int8_t cached[16];
	uint16_t cached_set;
	struct stub stubs[MAX_STUBS];
};

#define CACHE_REGS 5
static const int8_t cache_hregs[CACHE_REGS] = {H_RBX, H_R12, H_R13, H_R14, H_R15};

/* ---- small emitters ---- */

static struct hmem gpr_slot(unsigned n) { return hmem_base(H_RBP, OFF_GPR(n & 15)); }
static struct hmem cpu_field(int32_t off) { return hmem_base(H_RBP, off); }

static int hreg_of(const struct tctx *t, unsigned n) { return t->cached[n & 15]; }

/* host ← guest register n, as MOV r, r/m of that size (32 zero-extends;
 * 8 and 16 leave the rest of the host register as it was). */
static void g_load(struct tctx *t, unsigned size, int host, unsigned n)
{
	int h = hreg_of(t, n);
	if (h >= 0)
		emit_mov_rr(&t->e, size, host, h);
	else
		emit_mov_rm(&t->e, size, host, gpr_slot(n));
}

/* host op= guest register n. */
static void g_alu(struct tctx *t, enum halu op, unsigned size, int host, unsigned n)
{
	int h = hreg_of(t, n);
	if (h >= 0)
		emit_alu_rr(&t->e, op, size, host, h);
	else
		emit_alu_rm(&t->e, op, size, host, gpr_slot(n));
}

/* The host register an instruction computes guest register n in: its
 * cache register (operated on in place), or RAX loaded with its value. */
static int g_work(struct tctx *t, unsigned n, unsigned size)
{
	int h = hreg_of(t, n);
	if (h >= 0)
		return h;
	g_load(t, size, H_RAX, n);
	return H_RAX;
}

static void store_reg(struct tctx *t, unsigned n, unsigned size);

/* Writes the result computed in w back (g_work's counterpart): moves
 * only, so the host's flags stay. */
static void g_finish(struct tctx *t, unsigned n, unsigned size, int w)
{
	if (w == H_RAX)
		store_reg(t, n, size);
	else
		emit_mov_mr(&t->e, 8, gpr_slot(n), w);
}

/* Guest register n += delta, without touching the host's flags. */
static void g_add_noflags(struct tctx *t, unsigned n, int32_t delta)
{
	int h = hreg_of(t, n);
	if (h < 0) {
		emit_mov_rm(&t->e, 8, H_RDX, gpr_slot(n));
		h = H_RDX;
	}
	emit_lea(&t->e, 8, h, hmem_base(h, delta));
	emit_mov_mr(&t->e, 8, gpr_slot(n), h);
}

/* Reloads the cache after a handler may have written any register. */
static void g_reload(struct tctx *t)
{
	for (unsigned n = 0; n < 16; n++)
		if (t->cached[n] >= 0)
			emit_mov_rm(&t->e, 8, t->cached[n], gpr_slot(n));
}

static void store_imm64(struct tctx *t, int32_t off, uint64_t v)
{
	if ((uint64_t)(int64_t)(int32_t)v == v) {
		emit_mov_mi(&t->e, 8, cpu_field(off), (int32_t)v);
	} else {
		emit_mov_ri(&t->e, 8, H_RAX, v);
		emit_mov_mr(&t->e, 8, cpu_field(off), H_RAX);
	}
}

static void call_helper(struct tctx *t, const void *fn)
{
	emit_call_abs(&t->e, (uintptr_t)fn, H_RAX);
}

static void emit_flags_from_rax(struct emit *e);

/* The flag conversions are shared routines of the runtime (emitted once
 * per cache, jit_emit_runtime), called from translated code: a call and a
 * return change no flags, so the host's flags reach them intact. */

/* The guest's flags as host flags: only the arithmetic ones, with the
 * reserved bit 1, so POPFQ changes nothing else of the host's (DF, AC, TF
 * stay clear; IF and IOPL cannot change at CPL 3). */
static uint64_t jit_flags_to_host(struct soft_cpu *cpu)
{
	uint64_t f = flags_get(cpu);
	flags_put(cpu, f);
	return (f & ARITH_MASK) | RFLAGS_FIXED;
}

/* Host flags (or R8, a saved copy) → memory, as the lazy-flags record
 * LF_HOST: the host's RFLAGS image, decoded by flags.c when read. */
#define OFF_LFRES ((int32_t)offsetof(struct soft_cpu, lf.res))
static void materialize(struct tctx *t)
{
	emit_pushfq(&t->e);
	emit_pop_m(&t->e, cpu_field(OFF_LFRES));
	emit_mov_mi(&t->e, 1, cpu_field(OFF_LFOP), LF_HOST);
}

static void materialize_r8(struct tctx *t)
{
	emit_mov_mr(&t->e, 8, cpu_field(OFF_LFRES), H_R8);
	emit_mov_mi(&t->e, 1, cpu_field(OFF_LFOP), LF_HOST);
}
static void load_flags_to_host(struct tctx *t) { emit_call_rel32(&t->e, t->j->rt_flags_load); }

static void materialize_from(struct tctx *t, enum fstate fs)
{
	if (fs == F_HOST)
		materialize(t);
	else if (fs == F_R8)
		materialize_r8(t);
}

/* Host arithmetic flags ← the RFLAGS image in RAX, without POPFQ (slow,
 * microcoded): OF through ADD AL, 0x7F on AL = OF (0x80 overflows, 0x7F
 * does not), then SF ZF AF PF CF through SAHF from AH = the image's low
 * byte. Clobbers RAX and R11. */
static void emit_flags_from_rax(struct emit *e)
{
	static const uint8_t mov_ah_al[] = {0x88, 0xc4};
	emit_mov_rr(e, 8, H_R11, H_RAX);
	emit_shift_ri(e, HSH_SHR, 4, H_RAX, 11);
	emit_alu_ri(e, HALU_AND, 4, H_RAX, 1);
	emit_alu_ri(e, HALU_ADD, 1, H_RAX, 0x7f);
	emit_mov_rr(e, 8, H_RAX, H_R11);
	emit_bytes(e, mov_ah_al, sizeof(mov_ah_al));
	emit_sahf(e);
}

static void emit_flag_routines(struct emit *e, struct soft_jit *j)
{
	/* Calls C: realign the stack the call misaligned. */
	emit_align(e, 16);
	j->rt_flags_load = emit_here(e);
	emit_alu_ri(e, HALU_SUB, 8, H_RSP, 8);
	emit_mov_rr(e, 8, H_RDI, H_RBP);
	emit_call_abs(e, (uintptr_t)jit_flags_to_host, H_RAX);
	emit_alu_ri(e, HALU_ADD, 8, H_RSP, 8);
	emit_flags_from_rax(e);
	emit_ret(e);
}

/* Flags needed at the start of instruction k (by it or after it). */
static uint8_t live_before(const struct tctx *t, unsigned k);

/* Before a call that lets C read cpu->lf (a handler, which may fault). */
static void flags_to_mem(struct tctx *t)
{
	materialize_from(t, t->fs);
	t->fs = F_MEM;
}

/* Before a TLB probe, which clobbers the host's flags: flags someone
 * reads later go to memory; otherwise only the slow path (a possible
 * fault) needs them, and R8 keeps them for it. */
static void flags_before_probe(struct tctx *t)
{
	if (t->fs == F_HOST) {
		if (live_before(t, t->k)) {
			materialize(t);
			t->fs = F_MEM;
		} else {
			emit_pushfq(&t->e);
			emit_pop_r(&t->e, H_R8);
			t->fs = F_R8;
		}
	} else if (t->fs == F_BOTH) {
		t->fs = F_MEM;
	}
}

/* The same after a TLB probe: RCX (the operand's host address) survives
 * the helper call in cpu->jit_scratch. */
#define OFF_SCRATCH ((int32_t)offsetof(struct soft_cpu, jit_scratch))
static void flags_to_host_keep_rcx(struct tctx *t)
{
	if (t->fs == F_MEM) {
		emit_mov_mr(&t->e, 8, cpu_field(OFF_SCRATCH), H_RCX);
		load_flags_to_host(t);
		emit_mov_rm(&t->e, 8, H_RCX, cpu_field(OFF_SCRATCH));
		t->fs = F_BOTH;
	} else if (t->fs == F_R8) {
		emit_mov_rr(&t->e, 8, H_RAX, H_R8);
		emit_flags_from_rax(&t->e);
		t->fs = F_HOST;
	}
}

/* For an instruction that reads the flags natively. */
static void flags_to_host(struct tctx *t)
{
	if (t->fs == F_MEM) {
		load_flags_to_host(t);
		t->fs = F_BOTH;
	} else if (t->fs == F_R8) {
		emit_mov_rr(&t->e, 8, H_RAX, H_R8);
		emit_flags_from_rax(&t->e);
		t->fs = F_HOST;
	}
}

static struct stub *new_stub(struct tctx *t, enum stub_kind kind)
{
	if (t->nstubs >= MAX_STUBS) {
		t->e.invalid = true; /* abandons the translation; never expected */
		return &t->stubs[0];
	}
	struct stub *s = &t->stubs[t->nstubs++];
	memset(s, 0, sizeof(*s));
	s->kind = (uint8_t)kind;
	s->fs_at = (uint8_t)t->fs;
	return s;
}

/* A way out of the block to a known RIP after `icount` instructions. */
static void exit_to(struct tctx *t, size_t branch, uint64_t target, uint32_t icount)
{
	struct stub *s = new_stub(t, STUB_EXIT);
	s->branch = branch;
	s->rip = target;
	s->icount = icount;
	s->chain = (target & ~0xfffULL) == (t->block_rip & ~0xfffULL);
}

/* A way out where cpu->s.rip already holds where to go. */
static void exit_dynamic(struct tctx *t, size_t branch, uint32_t icount)
{
	struct stub *s = new_stub(t, STUB_EXIT);
	s->branch = branch;
	s->icount = icount;
	s->dynamic = true;
}

/* ---- flag liveness ---- */

static void flag_use(const struct tctx *t, const struct insn *i, uint8_t *rd, uint8_t *wr);

static uint8_t live_before(const struct tctx *t, unsigned k)
{
	uint8_t rd, wr;
	flag_use(t, &t->insn[k], &rd, &wr);
	return (uint8_t)(rd | (t->live_after[k] & ~wr));
}

static void compute_liveness(struct tctx *t)
{
	uint8_t live = FL_ALL; /* whoever runs after the block may read any */
	for (unsigned k = t->n; k-- > 0;) {
		t->live_after[k] = live;
		uint8_t rd, wr;
		flag_use(t, &t->insn[k], &rd, &wr);
		live = (uint8_t)(rd | (live & ~wr));
		/* A conditional branch leaves the block when taken. */
		if ((t->insn[k].map == OPMAP_1B && t->insn[k].opcode >= 0x70 && t->insn[k].opcode <= 0x7f) ||
		    (t->insn[k].map == OPMAP_0F && t->insn[k].opcode >= 0x80 && t->insn[k].opcode <= 0x8f))
			live = FL_ALL;
	}
}

/* ---- memory operands ---- */

/* The offset of the memory operand into RSI (address-size wrapped) and
 * the linear address into RDI (64-bit mode: FS/GS add their base). */
static void emit_address(struct tctx *t, const struct insn *i, bool linear)
{
	struct emit *e = &t->e;
	int32_t disp = i->disp;
	bool have = false;
	int base = -1, index = -1;
	if (i->base != REG_NONE) {
		base = hreg_of(t, i->base);
		if (base < 0) {
			emit_mov_rm(e, 8, H_RSI, gpr_slot(i->base));
			base = H_RSI;
		}
	}
	if (i->index != REG_NONE) {
		index = hreg_of(t, i->index);
		if (index < 0) {
			emit_mov_rm(e, 8, H_RDX, gpr_slot(i->index));
			index = H_RDX;
		}
	}
	if (index >= 0) {
		emit_lea(e, 8, H_RSI, hmem_sib(base >= 0 ? base : HREG_NONE, index, i->scale, disp));
		have = true;
		disp = 0;
	} else if (base >= 0) {
		emit_lea(e, 8, H_RSI, hmem_base(base, disp));
		have = true;
		disp = 0;
	}
	if (i->rip_relative) {
		uint64_t v = t->rip[t->k + 1] + (uint64_t)(int64_t)disp;
		emit_mov_ri(e, 8, H_RSI, v);
	} else if (!have) {
		emit_mov_ri(e, 8, H_RSI, (uint64_t)(int64_t)disp);
	} else if (disp) {
		emit_lea(e, 8, H_RSI, hmem_base(H_RSI, disp));
	}
	if (i->addrsize == 4)
		emit_mov_rr(e, 4, H_RSI, H_RSI);
	if (!linear)
		return;
	if (i->seg == SEG_FS || i->seg == SEG_GS) {
		emit_mov_rm(e, 8, H_RDI, cpu_field(OFF_SEGBASE(i->seg)));
		emit_alu_rr(e, HALU_ADD, 8, H_RDI, H_RSI);
	} else {
		emit_mov_rr(e, 8, H_RDI, H_RSI);
	}
}

/* The inline TLB probe: on a hit RCX holds the host address of the
 * operand; a miss, MMIO, a page crossing or an address the TLB cannot
 * hold (non-canonical) goes to a slow path that runs the whole
 * instruction through its interpreter handler. Clobbers host flags. */
static void emit_probe(struct tctx *t, const struct insn *i, unsigned size, enum access acc,
		       struct stub **slow)
{
	struct emit *e = &t->e;
	flags_before_probe(t);
	emit_address(t, i, true);
	emit_mov_rr(e, 4, H_RAX, H_RDI);
	emit_shift_ri(e, HSH_SHR, 4, H_RAX, 12);
	emit_alu_ri(e, HALU_AND, 4, H_RAX, TLB_SIZE - 1);
	emit_lea(e, 4, H_RAX, hmem_sib(H_RAX, H_RAX, 2, 0));
	emit_lea(e, 8, H_RCX, hmem_base(H_RDI, (int32_t)size - 1));
	emit_alu_ri(e, HALU_AND, 8, H_RCX, -4096);
	emit_alu_rm(e, HALU_OR, 8, H_RCX, cpu_field((int32_t)offsetof(struct soft_cpu, tlb_tag)));
	int32_t base = OFF_TLB(acc, t->user ? 1 : 0);
	emit_alu_rm(e, HALU_CMP, 8, H_RCX, hmem_sib(H_RBP, H_RAX, 8, base));
	size_t hit = emit_jcc_rel8(e, HCC_E, 0);
	/* A global translation carries the other current tag. */
	emit_alu_rm(e, HALU_XOR, 8, H_RCX, cpu_field((int32_t)offsetof(struct soft_cpu, tlb_tag_x)));
	emit_alu_rm(e, HALU_CMP, 8, H_RCX, hmem_sib(H_RBP, H_RAX, 8, base));
	size_t miss = emit_jcc_rel32(e, HCC_NE, 0);
	emit_bind_rel8(e, hit);
	emit_mov_rm(e, 8, H_RCX, hmem_sib(H_RBP, H_RAX, 8, base + 8));
	emit_mov_rr(e, 4, H_RAX, H_RDI);
	emit_alu_ri(e, HALU_AND, 4, H_RAX, 0xfff);
	emit_alu_rr(e, HALU_ADD, 8, H_RCX, H_RAX);
	struct stub *s = new_stub(t, STUB_SLOW);
	s->branch = miss;
	s->rip = t->rip[t->k];
	s->fall = t->rip[t->k + 1];
	s->flags_r8 = t->fs == F_R8;
	*slow = s;
}

/* ---- handler calls ---- */

static struct jit_call *keep_call(struct tctx *t, const struct insn *i, uint64_t rip, uint64_t fall)
{
	struct soft_jit *j = t->j;
	if (j->ninsns >= JIT_INSN_ARENA) {
		t->e.overflow = true; /* the dispatcher flushes and retries */
		return &j->insns[0];
	}
	struct jit_call *c = &j->insns[j->ninsns++];
	c->insn = *i;
	c->rip = rip;
	c->fall = fall;
	c->page = t->gpa & ~0xfffULL;
	c->count = &j->fallback_count[(unsigned)i->map * 256 + i->opcode];
	return c;
}

/* Runs the instruction through its interpreter handler (jit.c:
 * jit_run_handler) and leaves the block unless it fell through. */
static void emit_handler_call(struct tctx *t, struct jit_call *c, uint32_t icount)
{
	struct emit *e = &t->e;
	emit_mov_rr(e, 8, H_RDI, H_RBP);
	emit_mov_ri(e, 8, H_RSI, (uint64_t)(uintptr_t)c);
	call_helper(t, (const void *)jit_run_handler);
	emit_test_rr(e, 4, H_RAX, H_RAX);
	size_t out = emit_jcc_rel32(e, HCC_NE, 0);
	exit_dynamic(t, out, icount);
	t->stubs[t->nstubs - 1].from_handler = true;
}

/* Any instruction: a call to its interpreter handler. */
static void tr_fallback(struct tctx *t, const struct insn *i)
{
	flags_to_mem(t);
	struct jit_call *c = keep_call(t, i, t->rip[t->k], t->rip[t->k + 1]);
	emit_handler_call(t, c, t->k + 1);
	g_reload(t);
	t->fs = F_MEM;
}

/* ---- native instructions ---- */

/* ModRM.reg of a group opcode: the operation, without REX.R (which the
 * decoder folds into i->reg for register operands). */
static unsigned ext(const struct insn *i) { return i->reg & 7; }

static unsigned op_size(const struct insn *i) { return (i->def->flags & OPF_BYTE) ? 1 : i->opsize; }

/* Byte registers 4-7 without REX are AH-BH, which the native forms do not
 * address; those instructions fall back. */
static bool byte_reg_ok(const struct insn *i, unsigned size, unsigned reg)
{
	return size != 1 || i->rex || reg < 4;
}

/* Writes RAX to guest register n with x86's rules for the size: 32-bit
 * writes zero the upper half, 8/16-bit writes merge. */
static void store_reg(struct tctx *t, unsigned n, unsigned size)
{
	int h = hreg_of(t, n);
	if (h >= 0) {
		emit_mov_rr(&t->e, size, h, H_RAX); /* 32 zero-extends, 8/16 merge */
		emit_mov_mr(&t->e, 8, gpr_slot(n), h);
		return;
	}
	if (size == 4)
		emit_mov_rr(&t->e, 4, H_RAX, H_RAX);
	emit_mov_mr(&t->e, size == 4 ? 8 : size, gpr_slot(n), H_RAX);
}

/* Finishes an instruction with a memory operand: its slow path resumes
 * here in the flag state the fast path ends in. */
static void end_mem(struct tctx *t, struct stub *slow)
{
	slow->resume = emit_offset(&t->e);
	slow->fs_after = (uint8_t)t->fs;
	slow->call = keep_call(t, &t->insn[t->k], t->rip[t->k], t->rip[t->k + 1]);
}

/* After a native instruction that wrote every arithmetic flag (or, for
 * INC/DEC, kept the host's CF, which was the guest's or is dead). */
static void produced_flags(struct tctx *t) { t->fs = F_HOST; }

/* ALU op with a register or memory r/m operand and a register, or an
 * immediate. `dir_reg`: the register is the destination. */
static bool tr_alu_common(struct tctx *t, const struct insn *i, enum halu op, unsigned size,
			  bool dir_reg, bool imm, uint64_t immv)
{
	struct emit *e = &t->e;
	bool writes = op != HALU_CMP;
	bool reads_cf = op == HALU_ADC || op == HALU_SBB;
	if (!byte_reg_ok(i, size, i->rm) && i->mod == 3)
		return false;
	if (!imm && !byte_reg_ok(i, size, i->reg))
		return false;
	if (imm && size == 8 && (uint64_t)(int64_t)(int32_t)immv != immv)
		return false;
	int32_t iv = (int32_t)immv;
	if (i->mod == 3 || dir_reg) {
		unsigned dst = dir_reg ? i->reg : i->rm;
		if (i->mod != 3) {
			struct stub *slow;
			emit_probe(t, i, size, ACC_READ, &slow);
			if (reads_cf)
				flags_to_host_keep_rcx(t);
			int w = g_work(t, dst, size);
			emit_alu_rm(e, op, size, w, hmem_base(H_RCX, 0));
			produced_flags(t);
			if (writes)
				g_finish(t, dst, size, w);
			end_mem(t, slow);
			return true;
		}
		if (reads_cf)
			flags_to_host(t);
		int w = g_work(t, dst, size);
		if (imm)
			emit_alu_ri(e, op, size, w, iv);
		else
			g_alu(t, op, size, w, dir_reg ? i->rm : i->reg);
		produced_flags(t);
		/* MOV keeps the host flags; a 32-bit operation zero-extended it. */
		if (writes)
			g_finish(t, dst, size, w);
		return true;
	}
	/* Memory destination. */
	struct stub *slow;
	emit_probe(t, i, size, writes ? ACC_WRITE : ACC_READ, &slow);
	if (reads_cf)
		flags_to_host_keep_rcx(t);
	if (!imm)
		g_load(t, size, H_RAX, i->reg);
	/* LOCK: the host's locked instruction on guest RAM is atomic for
	 * every other vCPU and device thread too. */
	if (i->lock)
		emit_lock(e);
	if (imm)
		emit_alu_mi(e, op, size, hmem_base(H_RCX, 0), iv);
	else
		emit_alu_mr(e, op, size, hmem_base(H_RCX, 0), H_RAX);
	produced_flags(t);
	end_mem(t, slow);
	return true;
}

static bool tr_test(struct tctx *t, const struct insn *i, unsigned size, bool imm, uint64_t immv)
{
	struct emit *e = &t->e;
	if (i->mod == 3 && !byte_reg_ok(i, size, i->rm))
		return false;
	if (!imm && !byte_reg_ok(i, size, i->reg))
		return false;
	int32_t iv = (int32_t)immv;
	if (imm && size == 8 && (uint64_t)(int64_t)iv != immv)
		return false;
	struct stub *slow = NULL;
	if (i->mod == 3) {
		g_load(t, size, H_RCX, i->rm);
	} else {
		emit_probe(t, i, size, ACC_READ, &slow);
		emit_mov_rm(e, size, H_RCX, hmem_base(H_RCX, 0));
	}
	if (imm) {
		emit_test_ri(e, size, H_RCX, iv);
	} else {
		g_load(t, size, H_RAX, i->reg);
		emit_test_rr(e, size, H_RCX, H_RAX);
	}
	produced_flags(t);
	if (slow)
		end_mem(t, slow);
	return true;
}

static bool tr_mov(struct tctx *t, const struct insn *i, unsigned size, bool to_reg)
{
	struct emit *e = &t->e;
	if (!byte_reg_ok(i, size, i->reg) || (i->mod == 3 && !byte_reg_ok(i, size, i->rm)))
		return false;
	if (i->mod == 3) {
		unsigned dst = to_reg ? i->reg : i->rm, src = to_reg ? i->rm : i->reg;
		int h = hreg_of(t, dst);
		if (h >= 0) {
			g_load(t, size, h, src);
			emit_mov_mr(e, 8, gpr_slot(dst), h);
			return true;
		}
		g_load(t, size, H_RAX, src);
		store_reg(t, dst, size);
		return true;
	}
	struct stub *slow;
	emit_probe(t, i, size, to_reg ? ACC_READ : ACC_WRITE, &slow);
	if (to_reg) {
		int h = hreg_of(t, i->reg);
		emit_mov_rm(e, size, h >= 0 ? h : H_RAX, hmem_base(H_RCX, 0));
		if (h >= 0)
			emit_mov_mr(e, 8, gpr_slot(i->reg), h);
		else
			store_reg(t, i->reg, size);
	} else {
		g_load(t, size, H_RAX, i->reg);
		emit_mov_mr(e, size, hmem_base(H_RCX, 0), H_RAX);
	}
	end_mem(t, slow);
	return true;
}

static bool tr_mov_imm(struct tctx *t, const struct insn *i, unsigned size, unsigned reg_direct)
{
	struct emit *e = &t->e;
	uint64_t v = i->imm;
	if (reg_direct != REG_NONE) {
		if (!byte_reg_ok(i, size, reg_direct))
			return false;
		emit_mov_ri(e, size == 4 ? 4 : (size < 4 ? size : 8), H_RAX, v);
		store_reg(t, reg_direct, size);
		return true;
	}
	if (i->mod == 3) {
		if (!byte_reg_ok(i, size, i->rm))
			return false;
		emit_mov_ri(e, 8, H_RAX, size == 8 ? v : v & size_mask(size));
		store_reg(t, i->rm, size);
		return true;
	}
	struct stub *slow;
	emit_probe(t, i, size, ACC_WRITE, &slow);
	emit_mov_mi(e, size, hmem_base(H_RCX, 0), (int32_t)v);
	end_mem(t, slow);
	return true;
}

static bool tr_lea(struct tctx *t, const struct insn *i)
{
	if (i->mod == 3 || i->opsize < 4)
		return false;
	emit_address(t, i, false); /* RSI: the offset, wrapped to the address size */
	emit_mov_rr(&t->e, 8, H_RAX, H_RSI);
	store_reg(t, i->reg, i->opsize);
	return true;
}

static bool tr_movx(struct tctx *t, const struct insn *i, unsigned ssz, bool sign)
{
	struct emit *e = &t->e;
	unsigned dsz = i->opsize;
	if (dsz < 4 || (i->mod == 3 && !byte_reg_ok(i, ssz, i->rm)))
		return false;
	struct stub *slow = NULL;
	struct hmem m;
	int h = i->mod == 3 ? hreg_of(t, i->rm) : -1;
	if (i->mod == 3) {
		m = gpr_slot(i->rm);
	} else {
		emit_probe(t, i, ssz, ACC_READ, &slow);
		m = hmem_base(H_RCX, 0);
	}
	/* The 64-bit sign extension, truncated by the store for a 32-bit
	 * destination (which zero-extends). */
	int d = hreg_of(t, i->reg) >= 0 && dsz != 2 ? hreg_of(t, i->reg) : H_RAX;
	if (h >= 0) {
		if (ssz == 4)
			emit_movsxd_rr(e, d, h);
		else if (sign)
			emit_movsx_rr(e, dsz, ssz, d, h);
		else
			emit_movzx_rr(e, 4, ssz, d, h);
	} else if (ssz == 4) { /* MOVSXD */
		emit_movsxd_rm(e, d, m);
	} else if (sign) {
		emit_movsx_rm(e, dsz, ssz, d, m);
	} else {
		emit_movzx_rm(e, 4, ssz, d, m);
	}
	if (d == H_RAX)
		store_reg(t, i->reg, dsz);
	else
		emit_mov_mr(e, 8, gpr_slot(i->reg), d);
	if (slow)
		end_mem(t, slow);
	return true;
}

/* INC, DEC, NOT, NEG on a register or memory. */
static bool tr_unary(struct tctx *t, const struct insn *i, enum hunary op, unsigned size)
{
	struct emit *e = &t->e;
	if (i->mod == 3 && !byte_reg_ok(i, size, i->rm))
		return false;
	bool keeps_cf = op == HUN_INC || op == HUN_DEC;
	bool flags = op != HUN_NOT;
	/* INC/DEC keep CF: when it is needed afterwards the host must hold
	 * the guest's CF before the instruction. */
	/* The guest's CF is needed even where it looks dead: a fault before
	 * the next flag writer pushes RFLAGS. Free when the host has it. */
	bool need_cf = keeps_cf;
	if (need_cf && i->mod == 3)
		flags_to_host(t);
	if (i->mod == 3) {
		int w = g_work(t, i->rm, size);
		emit_unary_r(e, op, size, w);
		if (flags)
			produced_flags(t);
		g_finish(t, i->rm, size, w);
		return true;
	}
	struct stub *slow;
	emit_probe(t, i, size, ACC_WRITE, &slow);
	if (need_cf)
		flags_to_host_keep_rcx(t);
	if (i->lock)
		emit_lock(e);
	emit_unary_m(e, op, size, hmem_base(H_RCX, 0));
	if (flags)
		produced_flags(t);
	end_mem(t, slow);
	return true;
}

/* SHL/SHR/SAR/ROL/ROR by a constant (count >= 0) or by CL (count < 0).
 * Rotates write only CF and OF, and a zero count in CL writes no flag:
 * where the flags they keep are read later, the host starts from the
 * guest's. A constant zero count is left to the handler. */
static bool tr_shift(struct tctx *t, const struct insn *i, unsigned size, int count)
{
	struct emit *e = &t->e;
	unsigned op = ext(i) == 6 ? (unsigned)HSH_SHL : ext(i);
	unsigned masked = count >= 0 ? (unsigned)count & (size == 8 ? 63u : 31u) : 0;
	if (op == HSH_RCL || op == HSH_RCR || (count >= 0 && masked == 0))
		return false;
	if (i->mod == 3 && !byte_reg_ok(i, size, i->rm))
		return false;
	/* Flags the instruction keeps are needed even where they look dead:
	 * a fault before the next flag writer pushes RFLAGS. */
	bool need_old = !(count >= 0 && op > HSH_ROR);
	struct stub *slow = NULL;
	if (i->mod == 3) {
		if (need_old)
			flags_to_host(t);
		if (count < 0)
			g_load(t, 1, H_RCX, GPR_RCX);
		int w = g_work(t, i->rm, size);
		if (count < 0)
			emit_shift_rcl(e, (enum hshift)op, size, w);
		else
			emit_shift_ri(e, (enum hshift)op, size, w, (uint8_t)masked);
		produced_flags(t);
		g_finish(t, i->rm, size, w);
		return true;
	}
	emit_probe(t, i, size, ACC_WRITE, &slow);
	if (need_old)
		flags_to_host_keep_rcx(t);
	emit_mov_rr(e, 8, H_RDX, H_RCX);
	if (count < 0) {
		g_load(t, 1, H_RCX, GPR_RCX);
		emit_shift_mcl(e, (enum hshift)op, size, hmem_base(H_RDX, 0));
	} else {
		emit_shift_mi(e, (enum hshift)op, size, hmem_base(H_RDX, 0), (uint8_t)masked);
	}
	produced_flags(t);
	end_mem(t, slow);
	return true;
}

static bool tr_imul(struct tctx *t, const struct insn *i, bool has_imm, int32_t imm)
{
	struct emit *e = &t->e;
	unsigned size = i->opsize;
	if (size < 4 || i->mod != 3)
		return false;
	int src = hreg_of(t, i->rm);
	if (src < 0) {
		g_load(t, size, H_RDX, i->rm);
		src = H_RDX;
	}
	int w;
	if (has_imm) {
		w = hreg_of(t, i->reg) >= 0 ? hreg_of(t, i->reg) : H_RAX;
		emit_imul_rri(e, size, w, src, imm);
	} else {
		w = g_work(t, i->reg, size);
		emit_imul_rr(e, size, w, src);
	}
	produced_flags(t);
	g_finish(t, i->reg, size, w);
	return true;
}

/* SETcc r8 and CMOVcc r, r: conditions on the host flags. */
static bool tr_setcc(struct tctx *t, const struct insn *i, unsigned cc)
{
	if (i->mod != 3 || !byte_reg_ok(i, 1, i->rm))
		return false;
	flags_to_host(t);
	int h = hreg_of(t, i->rm);
	emit_setcc_r(&t->e, (enum hcc)cc, h >= 0 ? h : H_RAX);
	g_finish(t, i->rm, 1, h >= 0 ? h : H_RAX);
	return true;
}

static bool tr_cmov(struct tctx *t, const struct insn *i, unsigned cc)
{
	struct emit *e = &t->e;
	unsigned size = i->opsize;
	if (i->mod != 3 || size < 4)
		return false;
	flags_to_host(t);
	int w = g_work(t, i->reg, size);
	int src = hreg_of(t, i->rm);
	if (src >= 0)
		emit_cmov_rr(e, (enum hcc)cc, size, w, src);
	else
		emit_cmov_rm(e, (enum hcc)cc, size, w, gpr_slot(i->rm));
	g_finish(t, i->reg, size, w); /* cmov r32 zero-extends, moved or not */
	return true;
}

static bool tr_jcc(struct tctx *t, const struct insn *i, unsigned cc)
{
	uint64_t target = t->rip[t->k + 1] + i->imm;
	if (!soft_canonical(target))
		return false;
	flags_to_host(t);
	size_t taken = emit_jcc_rel32(&t->e, (enum hcc)cc, 0);
	exit_to(t, taken, target, t->k + 1);
	return true;
}

static bool tr_jmp(struct tctx *t, const struct insn *i)
{
	uint64_t target = t->rip[t->k + 1] + i->imm;
	if (!soft_canonical(target))
		return false;
	size_t br = emit_jmp_rel32(&t->e, 0);
	exit_to(t, br, target, t->k + 1);
	return true;
}

/* PUSH r64 / CALL rel32: a store of 8 bytes below RSP; the fast path
 * updates RSP only after the store (fault-atomic). */
static void push_value_rax_store(struct tctx *t, struct stub **slow)
{
	struct insn fake = {.base = GPR_RSP, .index = REG_NONE, .disp = -8, .addrsize = 8,
			    .seg = SEG_SS};
	emit_probe(t, &fake, 8, ACC_WRITE, slow);
}

static bool tr_push(struct tctx *t, const struct insn *i, unsigned reg)
{
	struct emit *e = &t->e;
	if (i->opsize != 8)
		return false;
	struct stub *slow;
	push_value_rax_store(t, &slow);
	g_load(t, 8, H_RAX, reg);
	emit_mov_mr(e, 8, hmem_base(H_RCX, 0), H_RAX);
	g_add_noflags(t, GPR_RSP, -8);
	end_mem(t, slow);
	return true;
}

static bool tr_pop(struct tctx *t, const struct insn *i, unsigned reg)
{
	struct emit *e = &t->e;
	if (i->opsize != 8)
		return false;
	struct insn top = {.base = GPR_RSP, .index = REG_NONE, .disp = 0, .addrsize = 8, .seg = SEG_SS};
	struct stub *slow;
	emit_probe(t, &top, 8, ACC_READ, &slow);
	emit_mov_rm(e, 8, H_RAX, hmem_base(H_RCX, 0));
	g_add_noflags(t, GPR_RSP, 8);
	store_reg(t, reg, 8); /* POP RSP: the popped value wins */
	end_mem(t, slow);
	return true;
}

static bool tr_call(struct tctx *t, const struct insn *i)
{
	struct emit *e = &t->e;
	uint64_t ret = t->rip[t->k + 1], target = ret + i->imm;
	if (!soft_canonical(target) || i->opsize != 8)
		return false;
	struct stub *slow;
	push_value_rax_store(t, &slow);
	emit_mov_ri(e, 8, H_RAX, ret);
	emit_mov_mr(e, 8, hmem_base(H_RCX, 0), H_RAX);
	g_add_noflags(t, GPR_RSP, -8);
	end_mem(t, slow);
	size_t br = emit_jmp_rel32(e, 0);
	exit_to(t, br, target, t->k + 1);
	return true;
}

static bool tr_ret(struct tctx *t, const struct insn *i)
{
	struct emit *e = &t->e;
	if (i->opsize != 8)
		return false;
	struct insn top = {.base = GPR_RSP, .index = REG_NONE, .disp = 0, .addrsize = 8, .seg = SEG_SS};
	struct stub *slow;
	emit_probe(t, &top, 8, ACC_READ, &slow);
	emit_mov_rm(e, 8, H_RAX, hmem_base(H_RCX, 0));
	/* A non-canonical return address faults (#GP) in the interpreter. */
	emit_mov_rr(e, 8, H_RDX, H_RAX);
	emit_shift_ri(e, HSH_SHL, 8, H_RDX, 16);
	emit_shift_ri(e, HSH_SAR, 8, H_RDX, 16);
	emit_alu_rr(e, HALU_CMP, 8, H_RDX, H_RAX);
	size_t bad = emit_jcc_rel32(e, HCC_NE, 0);
	g_add_noflags(t, GPR_RSP, 8);
	emit_mov_mr(e, 8, cpu_field(OFF_RIP), H_RAX);
	end_mem(t, slow);
	/* The slow path and the fast one both continue here with RIP set. */
	size_t br = emit_jmp_rel32(e, 0);
	exit_dynamic(t, br, t->k + 1);
	/* Non-canonical: the slow path (the interpreter) raises the fault. */
	struct stub *again = new_stub(t, STUB_SLOW);
	*again = *slow;
	again->branch = bad;
	return true;
}

/* ---- SSE: integer, logic and moves on XMM registers ----
 * Copied to the host's own instruction on XMM0/XMM1, loaded from and
 * stored to cpu->fpu.xmm. Only forms whose result does not depend on
 * MXCSR (no floating point) and that raise no SIMD exception; a 16-byte
 * memory operand that must be aligned is checked inline (the slow path,
 * the handler, raises the #GP). Taken only when SSE is usable, which is
 * part of the translation's key (jit_sse_usable). */
#define OFF_XMM(n) ((int32_t)(offsetof(struct soft_cpu, fpu.xmm) + 16 * (size_t)((n) & 15)))

static uint8_t sse_prefix(const struct insn *i)
{
	switch (i->def->prefix) {
	case PFX_66: return 0x66;
	case PFX_F3: return 0xf3;
	case PFX_F2: return 0xf2;
	default: return 0;
	}
}

/* Two-operand xmm, xmm/m128 instructions the host runs as they are. */
static bool sse_plain_op(uint8_t pfx, unsigned op)
{
	if (pfx == 0x66)
		return (op >= 0x60 && op <= 0x6d) || (op >= 0x74 && op <= 0x76) ||
		       (op >= 0xd1 && op <= 0xd5) || (op >= 0xd8 && op <= 0xdf) ||
		       (op >= 0xe0 && op <= 0xe5) || (op >= 0xe8 && op <= 0xef) ||
		       (op >= 0xf1 && op <= 0xf6) || (op >= 0xf8 && op <= 0xfe) ||
		       (op >= 0x54 && op <= 0x57) || op == 0x14 || op == 0x15;
	return pfx == 0 && ((op >= 0x54 && op <= 0x57) || op == 0x14 || op == 0x15);
}

/* The m128 operand's host address in RCX; `aligned`: misaligned goes to
 * the slow path. */
static struct stub *sse_mem(struct tctx *t, const struct insn *i, unsigned size, enum access acc,
			    bool aligned)
{
	struct stub *slow;
	emit_probe(t, i, size, acc, &slow);
	if (aligned) {
		emit_test_ri(&t->e, 4, H_RDI, 15);
		size_t bad = emit_jcc_rel32(&t->e, HCC_NE, 0);
		struct stub *again = new_stub(t, STUB_SLOW);
		*again = *slow;
		again->branch = bad;
		t->pending_slow = again;
	}
	return slow;
}

static void sse_end_mem(struct tctx *t, struct stub *slow)
{
	end_mem(t, slow);
	if (t->pending_slow) {
		struct stub *again = t->pending_slow;
		size_t branch = again->branch;
		*again = *slow;
		again->branch = branch;
		t->pending_slow = NULL;
	}
}

/* 66 0F 38 instructions of the xmm, xmm/m128 form (SSSE3, SSE4.1,
 * SSE4.2) the host runs as they are, and the host feature each needs. */
static unsigned sse38_plain_op(unsigned op)
{
	if (op <= 0x0b || (op >= 0x1c && op <= 0x1e))
		return HOST_SSSE3;
	if ((op >= 0x28 && op <= 0x29) || op == 0x2b || (op >= 0x38 && op <= 0x40))
		return HOST_SSE41;
	if (op == 0x37)
		return HOST_SSE42;
	return 0;
}

/* PCMPISTRI xmm, xmm/m128, imm8 (SSE4.2; no alignment rule): the index
 * in ECX and all six arithmetic flags, as the host computes them. */
static bool tr_pcmpistri(struct tctx *t, const struct insn *i)
{
	struct emit *e = &t->e;
	struct stub *slow = NULL;
	if (i->mod == 3) {
		emit_movdqu_xm(e, 1, cpu_field(OFF_XMM(i->rm)));
	} else {
		slow = sse_mem(t, i, 16, ACC_READ, false);
		emit_movdqu_xm(e, 1, hmem_base(H_RCX, 0));
	}
	emit_movdqu_xm(e, 0, cpu_field(OFF_XMM(i->reg)));
	emit_sse_xx(e, 0x66, 0x0f3a63, 0, 1, (int)(i->imm & 0xff));
	produced_flags(t);
	emit_mov_rr(e, 4, H_RAX, H_RCX);
	store_reg(t, GPR_RCX, 4);
	if (slow)
		sse_end_mem(t, slow);
	return true;
}

/* Whether tr_sse emits this instruction itself (then it neither reads
 * nor writes the arithmetic flags, but PCMPISTRI, which writes them all). */
static bool sse_native(const struct soft_jit *j, const struct insn *i)
{
	if (!i->def)
		return false;
	if (i->map == OPMAP_0F38) {
		unsigned need = sse38_plain_op(i->opcode);
		return i->def->prefix == PFX_66 && need && (j->host & need);
	}
	if (i->map == OPMAP_0F3A)
		return i->def->prefix == PFX_66 && i->opcode == 0x63 && (j->host & HOST_SSE42);
	if (i->map != OPMAP_0F)
		return false;
	uint8_t pfx = sse_prefix(i);
	unsigned op = i->opcode;
	return sse_plain_op(pfx, op) || (op == 0x70 && pfx != 0) ||
	       (pfx == 0x66 && op >= 0x71 && op <= 0x73 && i->mod == 3) ||
	       (op == 0x6f && (pfx == 0x66 || pfx == 0xf3)) ||
	       ((op == 0x10 || op == 0x28) && (pfx == 0 || pfx == 0x66)) ||
	       (op == 0x7f && (pfx == 0x66 || pfx == 0xf3)) ||
	       ((op == 0x11 || op == 0x29) && (pfx == 0 || pfx == 0x66)) ||
	       (op == 0xe7 && pfx == 0x66) || (op == 0x2b && pfx == 0) ||
	       ((op == 0x6e || op == 0x7e || op == 0xd6) && pfx == 0x66) ||
	       (op == 0x7e && pfx == 0xf3) || (op == 0xd7 && pfx == 0x66 && i->mod == 3);
}

/* A move between an XMM register and an XMM register or memory: all 16
 * bytes, or the low 8 (MOVQ: loads and register moves zero the rest). */
static void sse_move(struct tctx *t, const struct insn *i, unsigned size, bool load, bool aligned)
{
	struct emit *e = &t->e;
	if (i->mod == 3) {
		unsigned from = load ? i->rm : i->reg, to = load ? i->reg : i->rm;
		if (size == 16)
			emit_movdqu_xm(e, 0, cpu_field(OFF_XMM(from)));
		else
			emit_movq_xm(e, 0, cpu_field(OFF_XMM(from)));
		emit_movdqu_mx(e, cpu_field(OFF_XMM(to)), 0);
		return;
	}
	struct stub *slow = sse_mem(t, i, size, load ? ACC_READ : ACC_WRITE, aligned);
	if (load) {
		if (size == 16)
			emit_movdqu_xm(e, 0, hmem_base(H_RCX, 0));
		else
			emit_movq_xm(e, 0, hmem_base(H_RCX, 0));
		emit_movdqu_mx(e, cpu_field(OFF_XMM(i->reg)), 0);
	} else if (size == 16) {
		emit_movdqu_xm(e, 0, cpu_field(OFF_XMM(i->reg)));
		emit_movdqu_mx(e, hmem_base(H_RCX, 0), 0);
	} else {
		emit_mov_rm(e, 8, H_RAX, cpu_field(OFF_XMM(i->reg)));
		emit_mov_mr(e, 8, hmem_base(H_RCX, 0), H_RAX);
	}
	sse_end_mem(t, slow);
}

static bool tr_sse(struct tctx *t, const struct insn *i)
{
	if (!sse_native(t->j, i))
		return false;
	struct emit *e = &t->e;
	uint8_t pfx = sse_prefix(i);
	unsigned op = i->opcode;
	uint32_t opc = 0x0f00 | op;
	struct stub *slow = NULL;

	if (i->map == OPMAP_0F3A)
		return tr_pcmpistri(t, i);
	if (i->map == OPMAP_0F38 || sse_plain_op(pfx, op) || (op == 0x70 && pfx != 0)) {
		if (i->map == OPMAP_0F38)
			opc = 0x0f3800 | op;
		int imm = op == 0x70 ? (int)(i->imm & 0xff) : -1;
		emit_movdqu_xm(e, 0, cpu_field(OFF_XMM(i->reg)));
		if (i->mod == 3) {
			/* cpu->fpu.xmm need not be 16-byte aligned: no m128 form. */
			emit_movdqu_xm(e, 1, cpu_field(OFF_XMM(i->rm)));
			emit_sse_xx(e, pfx, opc, 0, 1, imm);
		} else {
			slow = sse_mem(t, i, 16, ACC_READ, true);
			emit_movdqu_xm(e, 1, hmem_base(H_RCX, 0));
			emit_sse_xx(e, pfx, opc, 0, 1, imm);
		}
		emit_movdqu_mx(e, cpu_field(OFF_XMM(i->reg)), 0);
		if (slow)
			sse_end_mem(t, slow);
		return true;
	}
	/* Immediate shifts 66 0F 71/72/73 /digit xmm, ib. */
	if (pfx == 0x66 && op >= 0x71 && op <= 0x73 && i->mod == 3) {
		emit_movdqu_xm(e, 0, cpu_field(OFF_XMM(i->rm)));
		emit_sse_xx(e, pfx, opc, (int)(i->reg & 7), 0, (int)(i->imm & 0xff));
		emit_movdqu_mx(e, cpu_field(OFF_XMM(i->rm)), 0);
		return true;
	}
	/* 16-byte loads and stores. */
	bool load = (op == 0x6f && (pfx == 0x66 || pfx == 0xf3)) ||
		    ((op == 0x10 || op == 0x28) && (pfx == 0 || pfx == 0x66));
	bool store = (op == 0x7f && (pfx == 0x66 || pfx == 0xf3)) ||
		     ((op == 0x11 || op == 0x29) && (pfx == 0 || pfx == 0x66)) ||
		     (op == 0xe7 && pfx == 0x66) || (op == 0x2b && pfx == 0);
	if (load || store) {
		bool aligned = op == 0x28 || op == 0x29 || op == 0x2b || op == 0xe7 ||
			       ((op == 0x6f || op == 0x7f) && pfx == 0x66);
		sse_move(t, i, 16, load, aligned);
		return true;
	}
	/* MOVD/MOVQ xmm, r/m (zero-extended to 128 bits). */
	if (op == 0x6e && pfx == 0x66) {
		unsigned size = i->opsize == 8 ? 8 : 4;
		if (i->mod == 3) {
			g_load(t, size, H_RAX, i->rm);
		} else {
			slow = sse_mem(t, i, size, ACC_READ, false);
			emit_mov_rm(e, size, H_RAX, hmem_base(H_RCX, 0));
		}
		if (size == 8)
			emit_movq_xr(e, 0, H_RAX);
		else
			emit_movd_xr(e, 0, H_RAX);
		emit_movdqu_mx(e, cpu_field(OFF_XMM(i->reg)), 0);
		if (slow)
			sse_end_mem(t, slow);
		return true;
	}
	/* MOVD/MOVQ r/m, xmm. */
	if (op == 0x7e && pfx == 0x66) {
		unsigned size = i->opsize == 8 ? 8 : 4;
		emit_mov_rm(e, size, H_RAX, cpu_field(OFF_XMM(i->reg)));
		if (i->mod == 3) {
			store_reg(t, i->rm, size);
			return true;
		}
		emit_mov_mr(e, 8, cpu_field(OFF_SCRATCH), H_RAX);
		slow = sse_mem(t, i, size, ACC_WRITE, false);
		emit_mov_rm(e, 8, H_RAX, cpu_field(OFF_SCRATCH));
		emit_mov_mr(e, size, hmem_base(H_RCX, 0), H_RAX);
		sse_end_mem(t, slow);
		return true;
	}
	/* MOVQ xmm, xmm/m64 (F3 0F 7E) and MOVQ xmm/m64, xmm (66 0F D6). */
	if ((op == 0x7e && pfx == 0xf3) || (op == 0xd6 && pfx == 0x66)) {
		sse_move(t, i, 8, op == 0x7e, false);
		return true;
	}
	/* PMOVMSKB r32, xmm. */
	if (op == 0xd7 && pfx == 0x66 && i->mod == 3) {
		emit_movdqu_xm(e, 0, cpu_field(OFF_XMM(i->rm)));
		emit_sse_rx(e, 0x66, 0x0fd7, H_RAX, 0, -1);
		store_reg(t, i->reg, 4);
		return true;
	}
	return false;
}

/* ---- more integer instructions ---- */

/* Instructions whose LOCK form is emitted as the host's locked one. */
static bool lockable(const struct insn *i)
{
	unsigned op = i->opcode;
	if (i->mod == 3)
		return false;
	if (i->map == OPMAP_1B)
		return (op < 0x40 && (op & 7) < 2 && (op >> 3) != HALU_CMP && (op >> 3) != HALU_ADC &&
			(op >> 3) != HALU_SBB) ||
		       (op >= 0x80 && op <= 0x83 && op != 0x82 && ext(i) != HALU_CMP &&
			ext(i) != HALU_ADC && ext(i) != HALU_SBB) ||
		       ((op == 0xf6 || op == 0xf7) && (ext(i) == 2 || ext(i) == 3)) ||
		       ((op == 0xfe || op == 0xff) && ext(i) <= 1) || op == 0x86 || op == 0x87;
	return i->map == OPMAP_0F && (op == 0xb0 || op == 0xb1 || op == 0xc0 || op == 0xc1);
}

/* Guest register n ← all 64 bits of host register h (moves only). */
static void g_set64(struct tctx *t, unsigned n, int h)
{
	int c = hreg_of(t, n);
	if (c >= 0)
		emit_mov_rr(&t->e, 8, c, h);
	emit_mov_mr(&t->e, 8, gpr_slot(n), h);
}

/* A slow path for an instruction without a TLB probe: the handler runs
 * the whole instruction (a case the native form does not cover). */
static struct stub *new_slow(struct tctx *t, size_t branch)
{
	struct stub *s = new_stub(t, STUB_SLOW);
	s->branch = branch;
	s->rip = t->rip[t->k];
	s->fall = t->rip[t->k + 1];
	s->flags_r8 = t->fs == F_R8;
	return s;
}

/* XCHG r/m, r (86/87): with memory implicitly locked, as on hardware. */
static bool tr_xchg(struct tctx *t, const struct insn *i, unsigned size)
{
	struct emit *e = &t->e;
	if (!byte_reg_ok(i, size, i->reg) || (i->mod == 3 && !byte_reg_ok(i, size, i->rm)))
		return false;
	if (i->mod == 3) {
		g_load(t, size, H_RAX, i->reg);
		g_load(t, size, H_RDX, i->rm);
		store_reg(t, i->rm, size);
		emit_mov_rr(e, 8, H_RAX, H_RDX);
		store_reg(t, i->reg, size);
		return true;
	}
	struct stub *slow;
	emit_probe(t, i, size, ACC_WRITE, &slow);
	g_load(t, size, H_RAX, i->reg);
	emit_xchg_mr(e, size, hmem_base(H_RCX, 0), H_RAX);
	store_reg(t, i->reg, size);
	end_mem(t, slow);
	return true;
}

/* CMPXCHG r/m, r and XADD r/m, r on memory (LOCK kept). The accumulator
 * goes through the host's RAX whole, so the host's rules for its upper
 * half are the guest's. */
static bool tr_cmpxchg_xadd(struct tctx *t, const struct insn *i, unsigned size, bool xadd)
{
	struct emit *e = &t->e;
	if (i->mod == 3 || !byte_reg_ok(i, size, i->reg))
		return false;
	struct stub *slow;
	emit_probe(t, i, size, ACC_WRITE, &slow);
	g_load(t, size, H_RDX, i->reg);
	if (xadd) {
		emit_xadd_mr(e, size, hmem_base(H_RCX, 0), H_RDX, i->lock);
		produced_flags(t);
		emit_mov_rr(e, 8, H_RAX, H_RDX);
		store_reg(t, i->reg, size);
	} else {
		g_load(t, 8, H_RAX, GPR_RAX);
		emit_cmpxchg_mr(e, size, hmem_base(H_RCX, 0), H_RDX, i->lock);
		produced_flags(t);
		g_set64(t, GPR_RAX, H_RAX);
	}
	end_mem(t, slow);
	return true;
}

/* MUL and one-operand IMUL (F6/F7 /4 /5): rDX:rAX ← rAX * r/m through the
 * host's own RAX and RDX, loaded and stored whole (the host merges the
 * narrow forms exactly as the guest would). */
static bool tr_mul(struct tctx *t, const struct insn *i, unsigned size, bool is_signed)
{
	struct emit *e = &t->e;
	if (i->mod == 3 && !byte_reg_ok(i, size, i->rm))
		return false;
	struct stub *slow = NULL;
	if (i->mod == 3) {
		g_load(t, size, H_RCX, i->rm);
	} else {
		emit_probe(t, i, size, ACC_READ, &slow);
		emit_mov_rm(e, size, H_RCX, hmem_base(H_RCX, 0));
	}
	g_load(t, 8, H_RAX, GPR_RAX);
	g_load(t, 8, H_RDX, GPR_RDX);
	emit_unary_r(e, is_signed ? HUN_IMUL : HUN_MUL, size, H_RCX);
	produced_flags(t);
	g_set64(t, GPR_RAX, H_RAX);
	g_set64(t, GPR_RDX, H_RDX);
	if (slow)
		end_mem(t, slow);
	return true;
}

/* BSF/BSR (0F BC/BD), TZCNT/LZCNT (F3 0F BC/BD), POPCNT (F3 0F B8). A
 * zero source leaves BSF/BSR's destination to the handler (undefined by
 * the SDM; the interpreter's choice stands). */
static bool tr_bitscan(struct tctx *t, const struct insn *i, uint8_t pfx)
{
	struct emit *e = &t->e;
	unsigned size = i->opsize;
	bool bsf_bsr = pfx == 0;
	if (size < 2)
		return false;
	struct stub *slow = NULL, *zero = NULL;
	if (i->mod == 3) {
		g_load(t, size, H_RDX, i->rm);
	} else {
		emit_probe(t, i, size, ACC_READ, &slow);
		emit_mov_rm(e, size, H_RDX, hmem_base(H_RCX, 0));
	}
	if (bsf_bsr) {
		if (!slow)
			flags_before_probe(t);
		emit_test_rr(e, size, H_RDX, H_RDX);
		size_t z = emit_jcc_rel32(e, HCC_E, 0);
		zero = new_slow(t, z);
	}
	int w = g_work(t, i->reg, size);
	emit_wide_rr(e, pfx, 0x0f00 | i->opcode, size, w, H_RDX);
	produced_flags(t);
	g_finish(t, i->reg, size, w);
	if (slow)
		end_mem(t, slow);
	if (zero)
		end_mem(t, zero);
	return true;
}

/* BT/BTS/BTR/BTC r/m, imm8 (0F BA /4-7). ZF is kept: the host starts
 * from the guest's flags. */
static bool tr_bt_imm(struct tctx *t, const struct insn *i)
{
	struct emit *e = &t->e;
	unsigned size = i->opsize;
	enum hbt op = (enum hbt)(ext(i) - 4);
	uint8_t bit = (uint8_t)(i->imm & (size * 8 - 1));
	if (size < 2 || ext(i) < 4 || (i->lock && op == HBT_BT))
		return false;
	if (i->mod == 3) {
		flags_to_host(t);
		int w = g_work(t, i->rm, size);
		emit_bt_ri(e, op, size, w, bit);
		produced_flags(t);
		if (op != HBT_BT)
			g_finish(t, i->rm, size, w);
		return true;
	}
	struct stub *slow;
	emit_probe(t, i, size, op == HBT_BT ? ACC_READ : ACC_WRITE, &slow);
	flags_to_host_keep_rcx(t);
	if (i->lock)
		emit_lock(e);
	emit_bt_mi(e, op, size, hmem_base(H_RCX, 0), bit);
	produced_flags(t);
	end_mem(t, slow);
	return true;
}

/* DIV/IDIV (F7 /6 /7, 32 and 64 bits): natively only where the host
 * cannot fault; a zero divisor or a quotient that may not fit goes to
 * the handler, which raises #DE. DIV: RDX < divisor. IDIV: RDX is the
 * sign extension of RAX and not INT_MIN / -1. */
static bool tr_div(struct tctx *t, const struct insn *i, bool is_signed)
{
	struct emit *e = &t->e;
	unsigned size = i->opsize;
	if (size < 4)
		return false;
	struct stub *slow = NULL;
	if (i->mod == 3) {
		flags_before_probe(t);
		g_load(t, size, H_RCX, i->rm);
	} else {
		emit_probe(t, i, size, ACC_READ, &slow);
		emit_mov_rm(e, size, H_RCX, hmem_base(H_RCX, 0));
	}
	g_load(t, size, H_RAX, GPR_RAX);
	g_load(t, size, H_RDX, GPR_RDX);
	struct stub *out[3] = {NULL, NULL, NULL};
	emit_test_rr(e, size, H_RCX, H_RCX);
	out[0] = new_slow(t, emit_jcc_rel32(e, HCC_E, 0));
	if (!is_signed) {
		emit_alu_rr(e, HALU_CMP, size, H_RDX, H_RCX);
		out[1] = new_slow(t, emit_jcc_rel32(e, HCC_AE, 0));
	} else {
		/* RSI = sign extension of RAX: RDX must equal it. */
		emit_mov_rr(e, size, H_RSI, H_RAX);
		emit_shift_ri(e, HSH_SAR, size, H_RSI, (uint8_t)(size * 8 - 1));
		emit_alu_rr(e, HALU_CMP, size, H_RDX, H_RSI);
		out[1] = new_slow(t, emit_jcc_rel32(e, HCC_NE, 0));
		/* INT_MIN / -1 overflows: divisor -1 goes to the handler. */
		emit_alu_ri(e, HALU_CMP, size, H_RCX, -1);
		out[2] = new_slow(t, emit_jcc_rel32(e, HCC_E, 0));
	}
	emit_unary_r(e, is_signed ? HUN_IDIV : HUN_DIV, size, H_RCX);
	/* Flags are undefined after DIV: the host's are as good as any. */
	produced_flags(t);
	emit_mov_rr(e, size, H_RAX, H_RAX);
	g_set64(t, GPR_RAX, H_RAX);
	emit_mov_rr(e, size, H_RDX, H_RDX);
	g_set64(t, GPR_RDX, H_RDX);
	for (unsigned k = 0; k < 3; k++)
		if (out[k])
			end_mem(t, out[k]);
	if (slow)
		end_mem(t, slow);
	return true;
}

/* CBW/CWDE/CDQE (98) and CWD/CDQ/CQO (99). */
static bool tr_convert(struct tctx *t, const struct insn *i)
{
	struct emit *e = &t->e;
	unsigned size = i->opsize;
	if (size < 4)
		return false;
	g_load(t, 8, H_RAX, GPR_RAX);
	if (i->opcode == 0x98) {
		if (size == 8)
			emit_movsxd_rr(e, H_RAX, H_RAX);
		else
			emit_movsx_rr(e, 4, 2, H_RAX, H_RAX);
		g_set64(t, GPR_RAX, H_RAX);
		return true;
	}
	/* The host's own CDQ/CQO: no flags change (a SAR would). */
	static const uint8_t cdq[] = {0x99}, cqo[] = {0x48, 0x99};
	g_load(t, 8, H_RDX, GPR_RDX);
	if (size == 8)
		emit_bytes(e, cqo, sizeof(cqo));
	else
		emit_bytes(e, cdq, sizeof(cdq));
	g_set64(t, GPR_RDX, H_RDX);
	return true;
}

/* FF /2 CALL r/m64, /4 JMP r/m64, /6 PUSH r/m64. */
static bool tr_ff_branch_push(struct tctx *t, const struct insn *i)
{
	struct emit *e = &t->e;
	if (i->opsize != 8)
		return false;
	struct stub *slow = NULL, *slow2 = NULL;
	if (i->mod == 3) {
		g_load(t, 8, H_RDX, i->rm);
	} else {
		emit_probe(t, i, 8, ACC_READ, &slow);
		emit_mov_rm(e, 8, H_RDX, hmem_base(H_RCX, 0));
	}
	if (ext(i) != 6) {
		/* A non-canonical target faults on the branch (the handler). */
		if (!slow)
			flags_before_probe(t);
		emit_mov_rr(e, 8, H_RAX, H_RDX);
		emit_shift_ri(e, HSH_SHL, 8, H_RAX, 16);
		emit_shift_ri(e, HSH_SAR, 8, H_RAX, 16);
		emit_alu_rr(e, HALU_CMP, 8, H_RAX, H_RDX);
		size_t bad = emit_jcc_rel32(e, HCC_NE, 0);
		slow2 = new_slow(t, bad);
	}
	if (ext(i) == 2 || ext(i) == 6) {
		struct stub *push;
		struct insn top = {.base = GPR_RSP, .index = REG_NONE, .disp = -8, .addrsize = 8,
				   .seg = SEG_SS};
		emit_probe(t, &top, 8, ACC_WRITE, &push);
		if (ext(i) == 2)
			emit_mov_ri(e, 8, H_RAX, t->rip[t->k + 1]);
		else
			emit_mov_rr(e, 8, H_RAX, H_RDX);
		emit_mov_mr(e, 8, hmem_base(H_RCX, 0), H_RAX);
		if (ext(i) == 2)
			emit_mov_mr(e, 8, cpu_field(OFF_RIP), H_RDX);
		g_add_noflags(t, GPR_RSP, -8);
		end_mem(t, push);
	} else {
		emit_mov_mr(e, 8, cpu_field(OFF_RIP), H_RDX);
	}
	if (slow)
		end_mem(t, slow);
	if (slow2)
		end_mem(t, slow2);
	if (ext(i) == 6)
		return true;
	size_t br = emit_jmp_rel32(e, 0);
	exit_dynamic(t, br, t->k + 1);
	return true;
}

/* ---- instruction selection ---- */

static bool is_nop(const struct insn *i)
{
	return (i->map == OPMAP_1B && i->opcode == 0x90 && !(i->rex & 1)) ||
	       (i->map == OPMAP_0F && i->opcode == 0x1f);
}

static bool tr_native(struct tctx *t, const struct insn *i)
{
	unsigned op = i->opcode, size = op_size(i);
	/* LOCK: only the memory read-modify-writes emitted with a LOCK of
	 * their own (the decoder refuses LOCK elsewhere). */
	if (i->lock && !lockable(i))
		return false;
	if (i->map == OPMAP_1B) {
		if (op < 0x40 && (op & 7) < 6) {
			enum halu alu = (enum halu)(op >> 3);
			switch (op & 7) {
			case 0: case 1: return tr_alu_common(t, i, alu, size, false, false, 0);
			case 2: case 3: return tr_alu_common(t, i, alu, size, true, false, 0);
			default: /* AL/eAX, imm */
			{
				struct insn r = *i;
				r.mod = 3;
				r.rm = GPR_RAX;
				return tr_alu_common(t, &r, alu, size, false, true, i->imm);
			}
			}
		}
		if (op >= 0x50 && op <= 0x57)
			return tr_push(t, i, (op & 7) | ((i->rex & 1) << 3));
		if (op >= 0x58 && op <= 0x5f)
			return tr_pop(t, i, (op & 7) | ((i->rex & 1) << 3));
		if (op == 0x63 && i->opsize == 8)
			return tr_movx(t, i, 4, true);
		if (op == 0x69 || op == 0x6b)
			return tr_imul(t, i, true, op == 0x6b ? (int32_t)(int8_t)i->imm : (int32_t)i->imm);
		if (op >= 0x70 && op <= 0x7f)
			return tr_jcc(t, i, op & 15);
		if (op >= 0x80 && op <= 0x83 && op != 0x82) {
			uint64_t imm = op == 0x83 ? (uint64_t)sign_extend(i->imm, 1) : i->imm;
			return tr_alu_common(t, i, (enum halu)ext(i), size, false, true, imm);
		}
		if (op == 0x84 || op == 0x85)
			return tr_test(t, i, size, false, 0);
		if (op >= 0x88 && op <= 0x8b)
			return tr_mov(t, i, size, op >= 0x8a);
		if (op == 0x86 || op == 0x87)
			return tr_xchg(t, i, size);
		if (op == 0x98 || op == 0x99)
			return tr_convert(t, i);
		if (op == 0x8d)
			return tr_lea(t, i);
		if (is_nop(i))
			return true;
		if (op == 0xa8 || op == 0xa9) {
			struct insn r = *i;
			r.mod = 3;
			r.rm = GPR_RAX;
			return tr_test(t, &r, size, true, i->imm);
		}
		if (op >= 0xb0 && op <= 0xbf)
			return tr_mov_imm(t, i, size, (op & 7) | ((i->rex & 1) << 3));
		if (op == 0xc0 || op == 0xc1)
			return tr_shift(t, i, size, (int)(i->imm & 0xff));
		if (op == 0xd0 || op == 0xd1)
			return tr_shift(t, i, size, 1);
		if (op == 0xd2 || op == 0xd3)
			return tr_shift(t, i, size, -1);
		if (op == 0xc3)
			return tr_ret(t, i);
		if (op == 0xc6 || op == 0xc7)
			return ext(i) == 0 && tr_mov_imm(t, i, size, REG_NONE);
		if (op == 0xe8)
			return tr_call(t, i);
		if (op == 0xe9 || op == 0xeb)
			return tr_jmp(t, i);
		if (op == 0xf6 || op == 0xf7) {
			switch (ext(i)) {
			case 0: return tr_test(t, i, size, true, i->imm);
			case 2: return tr_unary(t, i, HUN_NOT, size);
			case 3: return tr_unary(t, i, HUN_NEG, size);
			case 4: return tr_mul(t, i, size, false);
			case 5: return tr_mul(t, i, size, true);
			case 6: return tr_div(t, i, false);
			case 7: return tr_div(t, i, true);
			default: return false;
			}
		}
		if ((op == 0xfe || op == 0xff) && ext(i) <= 1)
			return tr_unary(t, i, ext(i) ? HUN_DEC : HUN_INC, size);
		if (op == 0xff && (ext(i) == 2 || ext(i) == 4 || ext(i) == 6))
			return tr_ff_branch_push(t, i);
		return false;
	}
	if (t->sse && (i->map == OPMAP_0F38 || i->map == OPMAP_0F3A))
		return tr_sse(t, i);
	if (i->map == OPMAP_0F) {
		if (t->sse && tr_sse(t, i))
			return true;
		if (op >= 0x40 && op <= 0x4f)
			return tr_cmov(t, i, op & 15);
		if (op >= 0x80 && op <= 0x8f)
			return tr_jcc(t, i, op & 15);
		if (op >= 0x90 && op <= 0x9f)
			return tr_setcc(t, i, op & 15);
		if (op == 0xaf)
			return tr_imul(t, i, false, 0);
		if (op == 0xb0 || op == 0xb1 || op == 0xc0 || op == 0xc1)
			return tr_cmpxchg_xadd(t, i, op & 1 ? i->opsize : 1, op >= 0xc0);
		if (op == 0xbc || op == 0xbd || (op == 0xb8 && i->def->prefix == PFX_F3)) {
			/* The F3 forms run as BSF/BSR on hosts without them. */
			unsigned need = op == 0xb8 ? HOST_POPCNT : op == 0xbc ? HOST_BMI1 : HOST_LZCNT;
			if (i->def->prefix == PFX_F3 && !(t->j->host & need))
				return false;
			return tr_bitscan(t, i, i->def->prefix == PFX_F3 ? 0xf3 : 0);
		}
		if (op == 0xba)
			return tr_bt_imm(t, i);
		if (op >= 0xc8 && op <= 0xcf && i->opsize >= 4) { /* BSWAP */
			unsigned n = (op & 7) | ((i->rex & 1) << 3);
			int w = g_work(t, n, i->opsize);
			emit_bswap(&t->e, i->opsize, w);
			g_finish(t, n, i->opsize, w);
			return true;
		}
		if (op == 0xb6 || op == 0xb7 || op == 0xbe || op == 0xbf)
			return tr_movx(t, i, (op & 1) ? 2 : 1, op >= 0xbe);
		if (is_nop(i))
			return true;
	}
	return false;
}

/* Which arithmetic flags an instruction reads and writes, for liveness.
 * Must agree with tr_native: anything it does not emit natively reads
 * every flag (its handler may) and writes none (its writes go to memory). */
static void flag_use(const struct tctx *t, const struct insn *i, uint8_t *rd, uint8_t *wr)
{
	unsigned op = i->opcode;
	*rd = 0;
	*wr = 0;
	if (t->sse && sse_native(t->j, i)) {
		if (i->map == OPMAP_0F3A)
			*wr = FL_ALL; /* PCMPISTRI */
		return;
	}
	if (i->map == OPMAP_1B) {
		if (op < 0x40 && (op & 7) < 6) {
			unsigned alu = op >> 3;
			if (alu == HALU_ADC || alu == HALU_SBB)
				*rd = FL_CF;
			*wr = FL_ALL;
			return;
		}
		if ((op >= 0x50 && op <= 0x5f) || op == 0x63 || (op >= 0x88 && op <= 0x8b) ||
		    op == 0x8d || op == 0x90 || (op >= 0xb0 && op <= 0xbf) || op == 0xc6 ||
		    op == 0xc7 || op == 0xe8 || op == 0xe9 || op == 0xeb || op == 0xc3)
			return;
		if (op >= 0x70 && op <= 0x7f) {
			*rd = FL_ALL;
			return;
		}
		if (op >= 0x80 && op <= 0x83 && op != 0x82) {
			if (ext(i) == HALU_ADC || ext(i) == HALU_SBB)
				*rd = FL_CF;
			*wr = FL_ALL;
			return;
		}
		if (op == 0x84 || op == 0x85 || op == 0xa8 || op == 0xa9 || op == 0x69 || op == 0x6b) {
			*wr = FL_ALL;
			return;
		}
		if ((op == 0xc0 || op == 0xc1 || op == 0xd0 || op == 0xd1) && ext(i) != 2 && ext(i) != 3) {
			unsigned count = (op >= 0xd0 ? 1 : (unsigned)(i->imm & 0xff)) & (i->opsize == 8 ? 63 : 31);
			if (!count)
				*rd = FL_ALL; /* left to the handler */
			else
				*wr = ext(i) <= 1 ? (FL_CF | FL_OF) : FL_ALL;
			return;
		}
		if ((op == 0xd2 || op == 0xd3) && ext(i) != 2 && ext(i) != 3)
			return; /* a zero count keeps every flag: they pass through */
		if ((op == 0xf6 || op == 0xf7) && ext(i) <= 3) {
			if (ext(i) == 0 || ext(i) == 3)
				*wr = FL_ALL;
			return; /* NOT */
		}
		if ((op == 0xfe || op == 0xff) && ext(i) <= 1) {
			*wr = FL_ALL & ~FL_CF;
			return;
		}
	} else if (i->map == OPMAP_0F) {
		if ((op >= 0x40 && op <= 0x4f) || (op >= 0x80 && op <= 0x9f)) {
			*rd = FL_ALL;
			return;
		}
		if (op == 0xaf) {
			*wr = FL_ALL;
			return;
		}
		if (op == 0xb6 || op == 0xb7 || op == 0xbe || op == 0xbf || op == 0x1f ||
		    (op >= 0xc8 && op <= 0xcf && i->opsize >= 4))
			return;
	}
	*rd = FL_ALL;
}

/* ---- the block ---- */

/* Whether execution never falls through past this instruction. */
static bool ends_translation(const struct insn *i)
{
	if (i->map == OPMAP_1B) {
		switch (i->opcode) {
		case 0xe8: case 0xe9: case 0xeb: case 0xea: case 0x9a:
		case 0xc2: case 0xc3: case 0xca: case 0xcb: case 0xcf:
		case 0xcc: case 0xcd: case 0xce: case 0xf4: case 0xfb: /* STI: its shadow */
			return true;
		case 0xff:
			return ext(i) >= 2 && ext(i) <= 5;
		default:
			return false;
		}
	}
	if (i->map == OPMAP_0F) {
		switch (i->opcode) {
		case 0x05: case 0x07: case 0x34: case 0x35:
		case 0x01: case 0x22: case 0x30: case 0x00:
			return true;
		default:
			return false;
		}
	}
	return false;
}

/* The guest registers the block uses most (at least twice) get host
 * registers. */
static void choose_cached(struct tctx *t)
{
	unsigned uses[16] = {0};
	for (unsigned k = 0; k < t->n; k++) {
		const struct insn *i = &t->insn[k];
		if (i->has_modrm) {
			uses[i->reg & 15]++;
			if (i->mod == 3)
				uses[i->rm & 15]++;
		}
		if (i->base != REG_NONE && !(i->has_modrm && i->mod == 3))
			uses[i->base & 15]++;
		if (i->index != REG_NONE && !(i->has_modrm && i->mod == 3))
			uses[i->index & 15]++;
		if (i->map == OPMAP_1B && ((i->opcode >= 0x50 && i->opcode <= 0x5f) || i->opcode == 0xc3 ||
					   i->opcode == 0xe8)) {
			uses[GPR_RSP] += 2;
			if (i->opcode <= 0x5f)
				uses[(i->opcode & 7) | ((i->rex & 1) << 3)]++;
		}
		if (i->map == OPMAP_1B && i->opcode >= 0xb0 && i->opcode <= 0xbf)
			uses[(i->opcode & 7) | ((i->rex & 1) << 3)]++;
	}
	memset(t->cached, -1, sizeof(t->cached));
	t->cached_set = 0;
	for (unsigned c = 0; c < CACHE_REGS; c++) {
		unsigned best = 16, most = 1;
		for (unsigned n = 0; n < 16; n++)
			if (uses[n] > most && !(t->cached_set & (1u << n))) {
				best = n;
				most = uses[n];
			}
		if (best == 16)
			break;
		t->cached[best] = cache_hregs[c];
		t->cached_set |= (uint16_t)(1u << best);
	}
}

static void decode_block(struct tctx *t, const uint8_t *code)
{
	unsigned room = 0x1000 - (unsigned)(t->gpa & 0xfff), pos = 0;
	t->n = 0;
	t->rip[0] = t->block_rip;
	while (t->n < JIT_MAX_INSNS && pos < room) {
		struct insn *i = &t->insn[t->n];
		int len = soft_decode_buffer(t->cpu->optable, code + pos, room - pos, true, false, i);
		if (len <= 0)
			break;
		pos += (unsigned)len;
		t->n++;
		t->rip[t->n] = t->block_rip + pos;
		if (ends_translation(i))
			break;
	}
}

static void emit_prologue(struct tctx *t, const struct jit_tb *tb)
{
	struct emit *e = &t->e;
	/* Room for an unlinking jump over the first instruction (jit.c).
	 * Pending interrupts are not looked at here: the budget (at most a
	 * run-loop batch) brings execution back to the dispatcher, which
	 * takes them, and every instruction that opens the interrupt window
	 * (STI, POPF, IRET) returns there at once. */
	emit_alu_mi(e, HALU_SUB, 4, cpu_field(OFF_BUDGET), (int32_t)t->n);
	size_t out = emit_jcc_rel32(e, HCC_S, 0);
	emit_mov_ri(e, 8, H_RAX, (uint64_t)(uintptr_t)tb->stamp_ptr);
	emit_alu_mi(e, HALU_CMP, 4, hmem_base(H_RAX, 0), (int32_t)tb->stamp);
	size_t stale = emit_jcc_rel32(e, HCC_NE, 0);
	exit_to(t, out, t->block_rip, 0);
	struct stub *home = &t->stubs[t->nstubs - 1];
	home->chain = false;
	home->home = true;
	exit_to(t, stale, t->block_rip, 0);
	home = &t->stubs[t->nstubs - 1];
	home->chain = false;
	home->home = true;
	home->stale = true;
}

static void emit_exit_stub(struct tctx *t, const struct stub *s)
{
	struct emit *e = &t->e;
	emit_bind_rel32(e, s->branch);
	if (s->branch2)
		emit_bind_rel32(e, s->branch2);
	if (s->branch3)
		emit_bind_rel32(e, s->branch3);
	materialize_from(t, (enum fstate)s->fs_at);
	if (s->icount)
		emit_alu_mi(e, HALU_ADD, 8, cpu_field(OFF_ICOUNT), (int32_t)s->icount);
	if (!s->dynamic)
		store_imm64(t, OFF_RIP, s->rip);
	if (!s->chain && !s->home) {
		emit_jmp_rel32(e, t->j->jc_exit[t->user][s->from_handler]);
		return;
	}
	if (s->chain) {
		/* RAX = the rel32 field of the jump below, for the dispatcher
		 * to patch to the target's translation; aligned, so that the
		 * patch is one atomic store. */
		emit_nop(e, (size_t)((4 - ((emit_here(e) + 7 + 1) & 3)) & 3));
		uintptr_t field = emit_here(e) + 7 + 1;
		emit_lea(e, 8, H_RAX, hmem_rip(field));
		emit_jmp_rel32(e, t->j->epilogue);
	} else if (s->stale) {
		emit_mov_ri(e, 4, H_RAX, JIT_EXIT_STALE);
		emit_jmp_rel32(e, t->j->epilogue);
	} else {
		emit_alu_rr(e, HALU_XOR, 4, H_RAX, H_RAX);
		emit_jmp_rel32(e, t->j->epilogue);
	}
}

static void emit_slow_stub(struct tctx *t, const struct stub *s)
{
	struct emit *e = &t->e;
	emit_bind_rel32(e, s->branch);
	/* Live flags went to memory before the probe; dead ones to R8. */
	if (s->flags_r8)
		materialize_r8(t);
	t->fs = F_MEM; /* the exits below see the handler's flags, in memory */
	emit_handler_call(t, s->call, s->icount);
	/* Continue with the fast path's registers and flag state (the call
	 * clobbered R8). */
	g_reload(t);
	if (s->fs_after != F_MEM)
		load_flags_to_host(t);
	if (s->fs_after == F_R8) {
		emit_pushfq(e);
		emit_pop_r(e, H_R8);
	}
	emit_jmp_rel32(e, e->exec + s->resume);
}

static void emit_stubs(struct tctx *t)
{
	/* Slow stubs may add exit stubs: iterate until all are emitted. */
	for (unsigned n = 0; n < t->nstubs && emit_ok(&t->e); n++) {
		struct stub s = t->stubs[n];
		if (s.kind == STUB_EXIT)
			emit_exit_stub(t, &s);
		else
			emit_slow_stub(t, &s);
	}
}

int jit_translate(struct soft_jit *j, struct soft_cpu *cpu, struct jit_tb *tb, const uint8_t *code,
		  uint64_t gpa)
{
	static __thread struct tctx tls_ctx; /* large; one translation at a time per thread */
	struct tctx *t = &tls_ctx;
	memset(t, 0, offsetof(struct tctx, insn));
	t->pending_slow = NULL;
	t->k = 0;
	t->fs = F_MEM;
	t->nstubs = 0;
	t->first_pending = 0;
	t->j = j;
	t->cpu = cpu;
	t->block_rip = cpu->s.rip;
	t->gpa = gpa;
	t->user = cpu->cpl == 3;
	t->sse = jit_sse_usable(cpu);
	decode_block(t, code);
	if (t->n == 0)
		return -EINVAL;
	compute_liveness(t);
	choose_cached(t);

	uint8_t *rw;
	uintptr_t rx;
	/* A small cache reserves less per translation, so that one fits
	 * (a translation that then does not is left to the interpreter). */
	size_t room = jit_cache_size(&j->cache) / 4 < JIT_MAX_CODE ? jit_cache_size(&j->cache) / 4
								    : JIT_MAX_CODE;
	int rc = jit_cache_reserve(&j->cache, room, &rw, &rx);
	if (rc)
		return rc == -ENOSPC ? -ENOSPC : rc;
	unsigned call_mark = j->ninsns;
	emit_init(&t->e, rw, room, rx);
	tb->code = rx;
	emit_prologue(t, tb);
	g_reload(t);
	t->fs = F_MEM;
	for (t->k = 0; t->k < t->n && emit_ok(&t->e); t->k++) {
		const struct insn *i = &t->insn[t->k];
		unsigned first_stub = t->nstubs;
		size_t mark = emit_offset(&t->e);
		enum fstate fs = t->fs;
		if (!tr_native(t, i)) {
			/* Nothing of a refused native form may stay behind. */
			t->e.p = t->e.start + mark;
			t->nstubs = first_stub;
			t->fs = fs;
			tr_fallback(t, i);
		}
		for (unsigned s = first_stub; s < t->nstubs; s++)
			if (t->stubs[s].kind == STUB_SLOW)
				t->stubs[s].icount = t->k + 1;
	}
	/* Falls off the end: continue at the next instruction. */
	if (emit_ok(&t->e)) {
		size_t br = emit_jmp_rel32(&t->e, 0);
		t->k = t->n - 1;
		exit_to(t, br, t->rip[t->n], t->n);
		emit_stubs(t);
	}
	if (!emit_ok(&t->e)) {
		jit_cache_commit(&j->cache, 0);
		j->ninsns = call_mark;
		return t->e.overflow ? -ENOSPC : -EINVAL;
	}
	size_t used = emit_offset(&t->e);
	jit_cache_commit(&j->cache, used);
	jit_cache_sync(&j->cache, rx, used);
	tb->ninsns = t->n;
	tb->code_size = (uint32_t)used;
	j->st.blocks++;
	j->st.code_bytes += used;
	return 0;
}

/* ---- the runtime: entry trampoline, epilogue, jump-cache exits ---- */

/* Leaves for cpu->s.rip through the jump cache: straight into its
 * translation when the cache knows it (and still describes the current
 * TLB generation), else back to the dispatcher. After a handler, RAX = 2
 * (mode, paging or halt changed) always goes back to the dispatcher. */
static void emit_jump_cache(struct emit *e, const struct soft_jit *j, bool user, bool from_handler)
{
	size_t plain = 0, plain2, plain3;
	if (from_handler) {
		emit_alu_ri(e, HALU_CMP, 4, H_RAX, 1);
		plain = emit_jcc_rel8(e, HCC_NE, 0);
	}
	_Static_assert(sizeof(struct jit_jc) == 24, "the index is scaled by 3 * 8");
	emit_mov_rm(e, 8, H_RAX, cpu_field(OFF_RIP));
	emit_mov_rr(e, 8, H_RCX, H_RAX);
	emit_shift_ri(e, HSH_SHR, 8, H_RCX, JIT_JC_BITS);
	emit_alu_rr(e, HALU_XOR, 8, H_RCX, H_RAX);
	emit_alu_ri(e, HALU_AND, 4, H_RCX, JIT_JC_SIZE - 1);
	emit_lea(e, 4, H_RCX, hmem_sib(H_RCX, H_RCX, 2, 0));
	emit_mov_ri(e, 8, H_RDX, (uint64_t)(uintptr_t)&j->jc[0]);
	emit_lea(e, 8, H_RDX, hmem_sib(H_RDX, H_RCX, 8, 0));
	if (user) {
		emit_mov_ri(e, 8, H_RSI, 1ULL << 63);
		emit_alu_rr(e, HALU_XOR, 8, H_RAX, H_RSI);
	}
	emit_alu_rm(e, HALU_CMP, 8, H_RAX, hmem_base(H_RDX, (int32_t)offsetof(struct jit_jc, tag)));
	plain2 = emit_jcc_rel8(e, HCC_NE, 0);
	emit_mov_rm(e, 8, H_RAX, cpu_field((int32_t)offsetof(struct soft_cpu, map_gen)));
	emit_alu_rm(e, HALU_CMP, 8, H_RAX, hmem_base(H_RDX, (int32_t)offsetof(struct jit_jc, gen)));
	plain3 = emit_jcc_rel8(e, HCC_NE, 0);
	emit_jmp_m(e, hmem_base(H_RDX, (int32_t)offsetof(struct jit_jc, code)));
	if (from_handler)
		emit_bind_rel8(e, plain);
	emit_bind_rel8(e, plain2);
	emit_bind_rel8(e, plain3);
	emit_alu_rr(e, HALU_XOR, 4, H_RAX, H_RAX);
	emit_jmp_rel32(e, j->epilogue);
}

int jit_emit_runtime(struct soft_jit *j)
{
	uint8_t *rw;
	uintptr_t rx;
	int rc = jit_cache_reserve(&j->cache, 1024, &rw, &rx);
	if (rc)
		return rc;
	struct emit e;
	emit_init(&e, rw, 1024, rx);
	/* enter(cpu, code): save the callee-saved registers, align RSP. */
	j->enter = emit_here(&e);
	emit_push_r(&e, H_RBP);
	emit_push_r(&e, H_RBX);
	emit_push_r(&e, H_R12);
	emit_push_r(&e, H_R13);
	emit_push_r(&e, H_R14);
	emit_push_r(&e, H_R15);
	emit_alu_ri(&e, HALU_SUB, 8, H_RSP, 8);
	emit_mov_rr(&e, 8, H_RBP, H_RDI);
	emit_jmp_r(&e, H_RSI);
	emit_align(&e, 16);
	j->epilogue = emit_here(&e);
	emit_alu_ri(&e, HALU_ADD, 8, H_RSP, 8);
	emit_pop_r(&e, H_R15);
	emit_pop_r(&e, H_R14);
	emit_pop_r(&e, H_R13);
	emit_pop_r(&e, H_R12);
	emit_pop_r(&e, H_RBX);
	emit_pop_r(&e, H_RBP);
	emit_ret(&e);
	emit_flag_routines(&e, j);
	for (int user = 0; user < 2; user++)
		for (int handler = 0; handler < 2; handler++) {
			emit_align(&e, 16);
			j->jc_exit[user][handler] = emit_here(&e);
			emit_jump_cache(&e, j, user, handler);
		}
	if (!emit_ok(&e)) {
		jit_cache_commit(&j->cache, 0);
		return -EINVAL;
	}
	jit_cache_commit(&j->cache, emit_offset(&e));
	jit_cache_sync(&j->cache, rx, emit_offset(&e));
	return 0;
}
