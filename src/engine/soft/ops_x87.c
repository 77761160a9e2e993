/* The x87 FPU subset that Linux and glibc execute (Intel SDM vol. 1
 * ch. 8, vol. 2 instruction pages): loads and stores of single, double,
 * extended and integer operands, the arithmetic and compare families,
 * FCOMI/FUCOMI, FCMOVcc, FXCH, FFREE, constants, FSQRT/FRNDINT/FSCALE/
 * FPREM/FPREM1, FXAM/FTST, control (FNINIT, FNCLEX, FLDCW, FNSTCW,
 * FNSTSW, FWAIT) and the environment and state images (FNSTENV/FLDENV,
 * FNSAVE/FRSTOR). Not implemented (#UD): the transcendentals (F2XM1,
 * FYL2X, FYL2XP1, FPTAN, FPATAN, FSIN, FCOS, FSINCOS), FXTRACT, FBLD,
 * and FBSTP. FISTTP (SSE3) is FISTP with truncation.
 *
 * Values are the host's 80-bit long double: every operation runs on the
 * host's x87 under the guest's rounding and precision control and reads
 * the host's status word in the same asm statement, so results, NaN
 * selection, exception flags, C1 ("rounded up") and the responses to
 * unmasked exceptions (no result for IE/DE/ZE, the exponent-biased
 * result for OE/UE) are the hardware's. Exceptions are recorded in the
 * guest's FSW; an unmasked one sets ES/B and the last-opcode and data
 * pointers (which current Intel CPUs record only then), leaves the
 * destination and the stack unchanged for IE/DE/ZE (memory stores: any
 * numeric exception but PE; loads: IE only), and raises #MF at the next
 * waiting instruction when CR0.NE is set. With CR0.NE clear (FERR# to
 * the PIC) pending exceptions are ignored.
 */
#include <string.h>

#include "engine/soft/fpu.h"

static const uint8_t ld_indefinite[10] = {0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff};

/* ---- registers and the stack ---- */

static long double ld_of(const uint8_t *p)
{
	long double v = 0;
	memcpy(&v, p, 10);
	return v;
}

static void slot_put_raw(uint8_t *slot, const uint8_t *v10)
{
	memmove(slot, v10, 10);
	memset(slot + 10, 0, 6);
}

static void slot_put(uint8_t *slot, long double v)
{
	uint8_t b[16];
	memcpy(b, &v, 10);
	slot_put_raw(slot, b);
}

static unsigned x87_top(const struct fpu_state *f) { return (f->fsw & FSW_TOP) >> FSW_TOP_SHIFT; }

static void x87_set_top(struct fpu_state *f, unsigned top)
{
	f->fsw = (uint16_t)((f->fsw & ~FSW_TOP) | ((top & 7) << FSW_TOP_SHIFT));
}

static unsigned x87_phys(const struct fpu_state *f, unsigned i) { return (x87_top(f) + i) & 7; }

static bool x87_empty(const struct fpu_state *f, unsigned i)
{
	return !((f->ftw >> x87_phys(f, i)) & 1);
}

static void x87_tag(struct fpu_state *f, unsigned i, bool valid)
{
	uint8_t bit = (uint8_t)(1u << x87_phys(f, i));
	f->ftw = valid ? f->ftw | bit : f->ftw & (uint8_t)~bit;
}

static void x87_set_c1(struct fpu_state *f, bool on)
{
	f->fsw = on ? f->fsw | FSW_C1 : f->fsw & (uint16_t)~FSW_C1;
}

static void x87_set_cc(struct fpu_state *f, unsigned cc)
{
	f->fsw = (uint16_t)((f->fsw & ~FSW_CC) | (cc & FSW_CC));
}

/* st[] is in stack order, so TOP moving rotates the array. */
static void x87_dec_top(struct fpu_state *f)
{
	uint8_t last[16];
	memcpy(last, f->st[7], 16);
	memmove(f->st[1], f->st[0], 7 * 16);
	memcpy(f->st[0], last, 16);
	x87_set_top(f, x87_top(f) - 1);
}

static void x87_inc_top(struct fpu_state *f)
{
	uint8_t first[16];
	memcpy(first, f->st[0], 16);
	memmove(f->st[0], f->st[1], 7 * 16);
	memcpy(f->st[7], first, 16);
	x87_set_top(f, x87_top(f) + 1);
}

/* TOP loaded directly (FNINIT, FLDENV...): the physical registers stay,
 * so their stack-order view rotates. */
static void x87_load_top(struct fpu_state *f, unsigned new_top)
{
	uint8_t phys[8][16];
	unsigned old_top = x87_top(f);
	for (unsigned r = 0; r < 8; r++)
		memcpy(phys[r], f->st[(r - old_top) & 7], 16);
	for (unsigned k = 0; k < 8; k++)
		memcpy(f->st[k], phys[(new_top + k) & 7], 16);
	x87_set_top(f, new_top);
}

static void x87_pop(struct fpu_state *f)
{
	x87_tag(f, 0, false);
	x87_inc_top(f);
}

/* The masked response to an invalid operation on a register: the QNaN
 * indefinite, which makes the register valid. */
static void x87_put_indefinite(struct fpu_state *f, unsigned i)
{
	slot_put_raw(f->st[i], ld_indefinite);
	x87_tag(f, i, true);
}

static void x87_push_raw(struct fpu_state *f, const uint8_t *v10)
{
	x87_dec_top(f);
	slot_put_raw(f->st[0], v10);
	x87_tag(f, 0, true);
}

/* ---- exceptions and instruction bookkeeping ---- */

/* Unmasked exceptions among `ex` that stop the result from being written. */
static bool x87_blocked(const struct fpu_state *f, unsigned ex, unsigned blocking)
{
	return (ex & ~f->fcw & FCW_MASKS & blocking) != 0;
}

static uint16_t x87_opcode11(const struct insn *i)
{
	unsigned modrm = (unsigned)(i->mod << 6) | (unsigned)((i->reg & 7) << 3) | (i->rm & 7);
	return (uint16_t)(((i->opcode & 7u) << 8) | modrm);
}

/* Records exceptions in FSW; an unmasked one sets ES and B and the
 * last-opcode and data-pointer registers. Returns whether the result may
 * be written (no unmasked exception among `blocking`). */
static bool x87_except_blocking(struct soft_cpu *cpu, const struct insn *i, unsigned ex,
				unsigned blocking)
{
	struct fpu_state *f = &cpu->fpu;
	bool blocked = x87_blocked(f, ex, blocking);
	if (blocked) /* stopped before computing: no OE/UE/PE */
		ex &= FSW_IE | FSW_DE | FSW_ZE | FSW_SF;
	f->fsw |= (uint16_t)(ex & FSW_EXC);
	if (ex & ~f->fcw & FCW_MASKS) {
		f->fsw |= FSW_ES | FSW_B;
		f->fop = x87_opcode11(i);
		if (i->mod != 3)
			f->fdp = insn_ea(cpu, i);
	}
	return !blocked;
}

/* Unmasked IE, DE or ZE stop an operation before it computes. */
static bool x87_except(struct soft_cpu *cpu, const struct insn *i, unsigned ex)
{
	return x87_except_blocking(cpu, i, ex, FSW_IE | FSW_DE | FSW_ZE);
}

/* Stack underflow (an empty source) or overflow (a push onto a full
 * register): IE and SF, C1 = 1 for overflow. Returns whether the masked
 * response (store the indefinite value) applies. */
static bool x87_stack_fault(struct soft_cpu *cpu, const struct insn *i, bool overflow)
{
	x87_set_c1(&cpu->fpu, overflow);
	return x87_except(cpu, i, FSW_IE | FSW_SF);
}

/* Non-control instructions record their address in FIP. */
static void x87_done(struct soft_cpu *cpu) { cpu->fpu.fip = cpu->s.rip; }

/* Every x87 instruction: #NM with CR0.EM or CR0.TS; waiting ones first
 * deliver a pending unmasked exception as #MF (CR0.NE). */
static struct fpu_state *x87_begin(struct soft_cpu *cpu, bool waiting)
{
	fpu_check_x87(cpu);
	if (waiting && (cpu->fpu.fsw & FSW_ES) && (cpu->s.cr0 & CR0_NE))
		soft_raise_noerr(cpu, EXC_MF);
	return &cpu->fpu;
}

/* ---- the host's x87 ----
 * Each operation runs under the guest's rounding and precision control.
 * Operations that neither push nor pop also run with the guest's
 * exception masks, so unmasked responses (no result for IE/DE/ZE, the
 * exponent-biased result for OE/UE) are the hardware's; their asm clears
 * the host's then-pending exception before anything can wait on it.
 * Loads and stores (which push or pop) run with everything masked. The
 * host's control word is restored after. */

struct host87 {
	uint16_t saved_cw;
};

static void host_begin(const struct fpu_state *f, struct host87 *h, bool guest_masks)
{
	unsigned masks = guest_masks ? f->fcw & FCW_MASKS : FCW_MASKS;
	uint16_t cw = (uint16_t)(0x0040 | masks | (f->fcw & 0x0f00));
	__asm__ volatile("fnstcw %0" : "=m"(h->saved_cw));
	__asm__ volatile("fnclex\n\tfldcw %0" : : "m"(cw) : "memory");
}

static void host_end(const struct host87 *h)
{
	__asm__ volatile("fnclex\n\tfldcw %0" : : "m"(h->saved_cw) : "memory");
}

enum x87_op { OP_ADD = 0, OP_MUL = 1, OP_SUB = 4, OP_SUBR = 5, OP_DIV = 6, OP_DIVR = 7,
	      OP_SQRT, OP_RNDINT, OP_SCALE, OP_PREM, OP_PREM1 };

/* a OP b (or OP a) on the host; returns the host's status word. Each asm
 * reads the status before clearing a pending unmasked exception. */
#define HOST_OP2(insn)                                                                          \
	__asm__ volatile(insn "\n\tfnstsw %1\n\tfnclex" : "=t"(a), "=m"(sw) : "0"(a), "u"(b))
#define HOST_OP1(insn) __asm__ volatile(insn "\n\tfnstsw %1\n\tfnclex" : "=t"(a), "=m"(sw) : "0"(a))

static unsigned host_arith(enum x87_op op, long double a, long double b, long double *r)
{
	uint16_t sw;
	switch (op) {
	case OP_ADD: HOST_OP2("fadd %%st(1), %%st"); break;
	case OP_MUL: HOST_OP2("fmul %%st(1), %%st"); break;
	case OP_SUB: HOST_OP2("fsub %%st(1), %%st"); break;
	case OP_SUBR: HOST_OP2("fsubr %%st(1), %%st"); break;
	case OP_DIV: HOST_OP2("fdiv %%st(1), %%st"); break;
	case OP_DIVR: HOST_OP2("fdivr %%st(1), %%st"); break;
	case OP_SQRT: HOST_OP1("fsqrt"); break;
	case OP_RNDINT: HOST_OP1("frndint"); break;
	case OP_SCALE: HOST_OP2("fscale"); break;
	case OP_PREM: HOST_OP2("fprem"); break;
	default: HOST_OP2("fprem1"); break;
	}
	*r = a;
	return sw;
}

static unsigned x87_arith_host(const struct fpu_state *f, enum x87_op op, long double a,
			       long double b, long double *r)
{
	struct host87 h;
	host_begin(f, &h, true);
	unsigned sw = host_arith(op, a, b, r);
	host_end(&h);
	return sw;
}

/* Compares a with b (FUCOM when quiet, else FCOM); returns the status word
 * with C3/C2/C0 and the exception flags. */
static unsigned x87_compare_host(const struct fpu_state *f, long double a, long double b,
				 bool quiet)
{
	struct host87 h;
	uint16_t sw;
	host_begin(f, &h, true);
	if (quiet)
		__asm__ volatile("fucom %%st(1)\n\tfnstsw %0\n\tfnclex" : "=m"(sw) : "t"(a), "u"(b));
	else
		__asm__ volatile("fcom %%st(1)\n\tfnstsw %0\n\tfnclex" : "=m"(sw) : "t"(a), "u"(b));
	host_end(&h);
	return sw;
}

/* ---- memory operands ---- */

enum mem_kind { MK_F32, MK_F64, MK_I16, MK_I32, MK_I64, MK_F80 };

static const uint8_t mem_size[] = {[MK_F32] = 4, [MK_F64] = 8, [MK_I16] = 2, [MK_I32] = 4,
				   [MK_I64] = 8, [MK_F80] = 10};

static void mem_read(struct soft_cpu *cpu, const struct insn *i, enum mem_kind k, uint8_t *buf)
{
	seg_read_bytes(cpu, i->seg, insn_ea(cpu, i), buf, mem_size[k]);
}

/* Converts a memory operand to extended precision on the host: SNaN
 * sources raise IE, denormal ones DE; integers and m80 are exact. */
static unsigned mem_to_ld(const struct fpu_state *f, enum mem_kind k, const uint8_t *buf,
			  long double *out)
{
	struct host87 h;
	uint16_t sw = 0;
	long double v = 0;
	float f32;
	double f64;
	int16_t i16;
	int32_t i32;
	int64_t i64;

	host_begin(f, &h, false);
	switch (k) {
	case MK_F32:
		memcpy(&f32, buf, 4);
		__asm__ volatile("flds %2\n\tfnstsw %1" : "=t"(v), "=m"(sw) : "m"(f32));
		break;
	case MK_F64:
		memcpy(&f64, buf, 8);
		__asm__ volatile("fldl %2\n\tfnstsw %1" : "=t"(v), "=m"(sw) : "m"(f64));
		break;
	case MK_I16:
		memcpy(&i16, buf, 2);
		v = i16;
		break;
	case MK_I32:
		memcpy(&i32, buf, 4);
		v = i32;
		break;
	case MK_I64:
		memcpy(&i64, buf, 8);
		v = (long double)i64;
		break;
	default:
		memcpy(&v, buf, 10);
		break;
	}
	host_end(&h);
	*out = v;
	return sw & FSW_EXC;
}

/* Converts ST(0)'s value for a store to memory on the host (FST/FIST
 * semantics: rounding, C1, IE with the indefinite value for NaNs and
 * out-of-range integers; `chop` rounds toward zero whatever FCW.RC says,
 * as FISTTP does). Returns the status word. */
static unsigned ld_to_mem(const struct fpu_state *f, enum mem_kind k, long double v, uint8_t *buf,
			  bool chop)
{
	struct host87 h;
	uint16_t sw = 0, cw;
	float f32;
	double f64;
	int16_t i16;
	int32_t i32;
	int64_t i64;

	host_begin(f, &h, false);
	if (chop) {
		__asm__ volatile("fnstcw %0" : "=m"(cw));
		cw |= 0x0c00; /* RC = 11b */
		__asm__ volatile("fldcw %0" : : "m"(cw) : "memory");
	}
	switch (k) {
	case MK_F32:
		__asm__ volatile("fsts %0\n\tfnstsw %1" : "=m"(f32), "=m"(sw) : "t"(v));
		memcpy(buf, &f32, 4);
		break;
	case MK_F64:
		__asm__ volatile("fstl %0\n\tfnstsw %1" : "=m"(f64), "=m"(sw) : "t"(v));
		memcpy(buf, &f64, 8);
		break;
	case MK_I16:
		__asm__ volatile("fists %0\n\tfnstsw %1" : "=m"(i16), "=m"(sw) : "t"(v));
		memcpy(buf, &i16, 2);
		break;
	case MK_I32:
		__asm__ volatile("fistl %0\n\tfnstsw %1" : "=m"(i32), "=m"(sw) : "t"(v));
		memcpy(buf, &i32, 4);
		break;
	case MK_I64:
		__asm__ volatile("fld %%st(0)\n\tfistpll %0\n\tfnstsw %1" : "=m"(i64), "=m"(sw) : "t"(v));
		memcpy(buf, &i64, 8);
		break;
	default:
		break; /* m80 stores copy the register (x87_store_mem) */
	}
	host_end(&h);
	return sw;
}

/* The value a masked invalid store writes: the QNaN or integer indefinite. */
static void mem_indefinite(enum mem_kind k, uint8_t *buf)
{
	static const uint8_t f32[4] = {0, 0, 0xc0, 0xff}, f64[8] = {0, 0, 0, 0, 0, 0, 0xf8, 0xff};
	memset(buf, 0, 10);
	switch (k) {
	case MK_F32: memcpy(buf, f32, 4); break;
	case MK_F64: memcpy(buf, f64, 8); break;
	case MK_F80: memcpy(buf, ld_indefinite, 10); break;
	default: buf[mem_size[k] - 1] = 0x80; break;
	}
}

/* ---- arithmetic ---- */

/* ST(0) OP a memory operand in its own format (m32fp, m64fp, m32int,
 * m16int) on the host, so that NaN selection and exception priorities
 * are the hardware's; OP 2 and 3 compare. Returns the status word. */
#define HOST_MEMOP(insn, var)                                                                   \
	__asm__ volatile(insn " %2\n\tfnstsw %1\n\tfnclex" : "=t"(a), "=m"(sw) : "m"(var), "0"(a))
#define HOST_MEMOPS(var, fi, sfx)                                                               \
	switch (op) {                                                                           \
	case 0: HOST_MEMOP(fi "add" sfx, var); break;                                           \
	case 1: HOST_MEMOP(fi "mul" sfx, var); break;                                           \
	case 2: case 3: HOST_MEMOP(fi "com" sfx, var); break;                                   \
	case 4: HOST_MEMOP(fi "sub" sfx, var); break;                                           \
	case 5: HOST_MEMOP(fi "subr" sfx, var); break;                                          \
	case 6: HOST_MEMOP(fi "div" sfx, var); break;                                           \
	default: HOST_MEMOP(fi "divr" sfx, var); break;                                         \
	}

static unsigned host_arith_mem(unsigned op, enum mem_kind k, const uint8_t *buf, long double a,
			       long double *r)
{
	uint16_t sw = 0;
	float f32;
	double f64;
	int16_t i16;
	int32_t i32;
	switch (k) {
	case MK_F32: memcpy(&f32, buf, 4); HOST_MEMOPS(f32, "f", "s"); break;
	case MK_F64: memcpy(&f64, buf, 8); HOST_MEMOPS(f64, "f", "l"); break;
	case MK_I32: memcpy(&i32, buf, 4); HOST_MEMOPS(i32, "fi", "l"); break;
	default: memcpy(&i16, buf, 2); HOST_MEMOPS(i16, "fi", "s"); break;
	}
	*r = a;
	return sw;
}

/* Stores an arithmetic result computed with status word sw into ST(dst),
 * then pops if asked; an unmasked IE/DE/ZE leaves the stack alone. */
static void x87_arith_finish(struct soft_cpu *cpu, const struct insn *i, unsigned dst,
			     unsigned sw, long double r, bool pop)
{
	struct fpu_state *f = &cpu->fpu;
	x87_set_c1(f, sw & FSW_C1);
	bool ok = x87_except(cpu, i, sw & FSW_EXC);
	if (ok)
		slot_put(f->st[dst], r);
	if (ok && pop)
		x87_pop(f);
	x87_done(cpu);
}

/* An empty operand: the masked response puts the indefinite value in
 * ST(dst) (and still pops). */
static void x87_arith_underflow(struct soft_cpu *cpu, const struct insn *i, unsigned dst, bool pop)
{
	struct fpu_state *f = &cpu->fpu;
	if (x87_stack_fault(cpu, i, false)) {
		x87_put_indefinite(f, dst);
		if (pop)
			x87_pop(f);
	}
	x87_done(cpu);
}

/* ST(dst) = ST(dst) OP ST(src), then an optional pop. */
static void x87_arith_regs(struct soft_cpu *cpu, const struct insn *i, enum x87_op op, unsigned dst,
			   unsigned src, bool pop)
{
	struct fpu_state *f = &cpu->fpu;
	long double r;
	if (x87_empty(f, dst) || x87_empty(f, src)) {
		x87_arith_underflow(cpu, i, dst, pop);
		return;
	}
	unsigned sw = x87_arith_host(f, op, ld_of(f->st[dst]), ld_of(f->st[src]), &r);
	x87_arith_finish(cpu, i, dst, sw, r, pop);
}

static enum mem_kind arith_mem_kind(uint8_t opcode)
{
	switch (opcode) {
	case 0xd8: return MK_F32;
	case 0xdc: return MK_F64;
	case 0xda: return MK_I32;
	default: return MK_I16;
	}
}

static void x87_compare_finish(struct soft_cpu *cpu, const struct insn *i, unsigned sw,
			       unsigned pops, bool to_eflags);

/* D8/DC/DA/DE with a memory operand: FADD FMUL FCOM FCOMP FSUB FSUBR FDIV
 * FDIVR with m32fp, m64fp, m32int, m16int. */
static void x87_arith_mem(struct soft_cpu *cpu, struct insn *i)
{
	struct fpu_state *f = x87_begin(cpu, true);
	enum mem_kind k = arith_mem_kind(i->opcode);
	unsigned op = i->reg & 7;
	bool compare = op == 2 || op == 3;
	uint8_t buf[10];
	long double r;
	struct host87 h;
	mem_read(cpu, i, k, buf);
	if (x87_empty(f, 0)) {
		if (compare)
			x87_compare_finish(cpu, i, FSW_IE | FSW_SF, op == 3, false);
		else
			x87_arith_underflow(cpu, i, 0, false);
		return;
	}
	host_begin(f, &h, true);
	unsigned sw = host_arith_mem(op, k, buf, ld_of(f->st[0]), &r);
	host_end(&h);
	if (compare)
		x87_compare_finish(cpu, i, sw, op == 3, false);
	else
		x87_arith_finish(cpu, i, 0, sw, r, false);
}

/* D8 /r with a register: ST(0) = ST(0) OP ST(i). */
static void x87_arith_st0(struct soft_cpu *cpu, struct insn *i)
{
	x87_begin(cpu, true);
	x87_arith_regs(cpu, i, (enum x87_op)(i->reg & 7), 0, i->rm & 7, false);
}

/* DC and DE /r with a register: ST(i) = ST(i) OP ST(0), DE pops. Here the
 * encodings of SUB/SUBR and DIV/DIVR are swapped relative to D8. */
static void x87_arith_sti(struct soft_cpu *cpu, struct insn *i)
{
	unsigned op = i->reg & 7;
	x87_begin(cpu, true);
	if (op >= 4)
		op ^= 1;
	x87_arith_regs(cpu, i, (enum x87_op)op, i->rm & 7, 0, i->opcode == 0xde);
}

/* ---- comparisons ---- */

static uint64_t cc_to_eflags(unsigned sw)
{
	return ((sw & FSW_C3) ? FLAG_ZF : 0) | ((sw & FSW_C2) ? FLAG_PF : 0) |
	       ((sw & FSW_C0) ? FLAG_CF : 0);
}

/* Applies a comparison's status word (sw's C3/C2/C0 and exceptions; a
 * stack fault gives "unordered"): into the condition codes (C1 cleared),
 * or for FCOMI/FUCOMI into ZF/PF/CF with OF, SF, AF cleared (C1 left
 * alone). The result is written even when an unmasked exception stops
 * the pops, as on hardware. */
static void x87_compare_finish(struct soft_cpu *cpu, const struct insn *i, unsigned sw,
			       unsigned pops, bool to_eflags)
{
	struct fpu_state *f = &cpu->fpu;
	bool ok;
	if (sw & FSW_SF) {
		sw |= FSW_C3 | FSW_C2 | FSW_C0;
		ok = x87_stack_fault(cpu, i, false);
	} else {
		ok = x87_except(cpu, i, sw & FSW_EXC);
		if (!to_eflags)
			x87_set_c1(f, false);
	}
	if (to_eflags)
		flags_put(cpu, (flags_get(cpu) & ~FLAGS_ARITH) | cc_to_eflags(sw));
	else
		x87_set_cc(f, (f->fsw & FSW_C1) | (sw & (FSW_C3 | FSW_C2 | FSW_C0)));
	for (unsigned k = 0; ok && k < pops; k++)
		x87_pop(f);
	x87_done(cpu);
}

/* Compares ST(0) with ST(s) (FUCOM when quiet, else FCOM). */
static void x87_compare_regs(struct soft_cpu *cpu, const struct insn *i, unsigned s, bool quiet,
			     unsigned pops, bool to_eflags)
{
	struct fpu_state *f = &cpu->fpu;
	unsigned sw = FSW_IE | FSW_SF;
	if (!x87_empty(f, 0) && !x87_empty(f, s))
		sw = x87_compare_host(f, ld_of(f->st[0]), ld_of(f->st[s]), quiet);
	x87_compare_finish(cpu, i, sw, pops, to_eflags);
}

/* D8 D0+i FCOM, D8 D8+i FCOMP, DD E0+i FUCOM, DD E8+i FUCOMP. */
static void x87_fcom_st(struct soft_cpu *cpu, struct insn *i)
{
	x87_begin(cpu, true);
	x87_compare_regs(cpu, i, i->rm & 7, i->opcode == 0xdd, i->reg & 1, false);
}

static void x87_fcompp(struct soft_cpu *cpu, struct insn *i) /* DE D9 FCOMPP, DA E9 FUCOMPP */
{
	x87_begin(cpu, true);
	x87_compare_regs(cpu, i, 1, i->opcode == 0xda, 2, false);
}

/* DB E8+i FUCOMI, DB F0+i FCOMI, DF E8+i FUCOMIP, DF F0+i FCOMIP. */
static void x87_fcomi(struct soft_cpu *cpu, struct insn *i)
{
	x87_begin(cpu, true);
	x87_compare_regs(cpu, i, i->rm & 7, (i->reg & 7) == 5, i->opcode == 0xdf, true);
}

static void x87_ftst(struct soft_cpu *cpu, struct insn *i) /* D9 E4 */
{
	struct fpu_state *f = x87_begin(cpu, true);
	unsigned sw = FSW_IE | FSW_SF;
	if (!x87_empty(f, 0))
		sw = x87_compare_host(f, ld_of(f->st[0]), 0.0L, false);
	x87_compare_finish(cpu, i, sw, 0, false);
}

/* FXAM (D9 E5): C1 = sign; C3,C2,C0 = the class of ST(0) (vol. 2 FXAM). */
static void x87_fxam(struct soft_cpu *cpu, struct insn *i)
{
	struct fpu_state *f = x87_begin(cpu, true);
	uint64_t mant;
	uint16_t se;
	unsigned cc;
	(void)i;
	memcpy(&mant, f->st[0], 8);
	memcpy(&se, f->st[0] + 8, 2);
	unsigned exp = se & 0x7fff;
	bool integer = mant >> 63;
	if (x87_empty(f, 0))
		cc = FSW_C3 | FSW_C0;
	else if (exp == 0)
		cc = mant ? FSW_C3 | FSW_C2 : FSW_C3; /* denormal : zero */
	else if (!integer)
		cc = 0; /* unsupported: unnormal, pseudo-infinity, pseudo-NaN */
	else if (exp == 0x7fff)
		cc = (mant << 1) ? FSW_C0 : FSW_C2 | FSW_C0; /* NaN : infinity */
	else
		cc = FSW_C2;
	x87_set_cc(f, cc | ((se & 0x8000) ? FSW_C1 : 0));
	x87_done(cpu);
}

/* ---- loads and stores ---- */

/* Pushes a value, or on a full stack the indefinite value (masked). A
 * load with an unmasked denormal operand still loads (as on hardware). */
static void x87_push_checked(struct soft_cpu *cpu, const struct insn *i, const uint8_t *v10,
			     unsigned ex)
{
	struct fpu_state *f = &cpu->fpu;
	if (!x87_empty(f, 7)) {
		if (x87_stack_fault(cpu, i, true))
			x87_push_raw(f, ld_indefinite);
		return;
	}
	x87_set_c1(f, false);
	if (x87_except_blocking(cpu, i, ex, FSW_IE))
		x87_push_raw(f, v10);
}

static enum mem_kind load_kind(const struct insn *i)
{
	switch (i->opcode) {
	case 0xd9: return MK_F32;
	case 0xdd: return MK_F64;
	case 0xdb: return (i->reg & 7) == 5 ? MK_F80 : MK_I32;
	default: return (i->reg & 7) == 5 ? MK_I64 : MK_I16;
	}
}

/* D9 /0 FLD m32, DD /0 m64, DB /5 m80, DB /0 FILD m32, DF /0 m16, DF /5 m64. */
static void x87_load_mem(struct soft_cpu *cpu, struct insn *i)
{
	struct fpu_state *f = x87_begin(cpu, true);
	enum mem_kind k = load_kind(i);
	uint8_t buf[10];
	long double v;
	mem_read(cpu, i, k, buf);
	unsigned ex = mem_to_ld(f, k, buf, &v);
	if (k != MK_F80)
		memcpy(buf, &v, 10);
	x87_push_checked(cpu, i, buf, ex);
	x87_done(cpu);
}

static void x87_fld_st(struct soft_cpu *cpu, struct insn *i) /* D9 C0+i */
{
	struct fpu_state *f = x87_begin(cpu, true);
	unsigned s = i->rm & 7;
	uint8_t v[10];
	if (x87_empty(f, s)) {
		if (x87_stack_fault(cpu, i, false))
			x87_push_raw(f, ld_indefinite); /* underflow wins over overflow */
	} else {
		memcpy(v, f->st[s], 10);
		x87_push_checked(cpu, i, v, 0);
	}
	x87_done(cpu);
}

static enum mem_kind store_kind(const struct insn *i)
{
	switch (i->opcode) {
	case 0xd9: return MK_F32;
	case 0xdd: return (i->reg & 7) == 1 ? MK_I64 : MK_F64;
	case 0xdb: return (i->reg & 7) == 7 ? MK_F80 : MK_I32;
	default: return (i->reg & 7) == 7 ? MK_I64 : MK_I16;
	}
}

/* FST/FSTP m32/m64 (D9/DD /2 /3), FSTP m80 (DB /7), FIST/FISTP m16/m32
 * (DF/DB /2 /3), FISTP m64 (DF /7), FISTTP m16/m32/m64 (DF/DB/DD /1).
 * The memory write comes before any FPU state changes so that a fault
 * leaves no trace. */
static void x87_store_mem(struct soft_cpu *cpu, struct insn *i)
{
	struct fpu_state *f = x87_begin(cpu, true);
	enum mem_kind k = store_kind(i);
	bool pop = (i->reg & 7) != 2;
	uint8_t buf[10];
	unsigned sw;
	if (x87_empty(f, 0)) {
		sw = FSW_IE | FSW_SF;
		mem_indefinite(k, buf);
	} else if (k == MK_F80) {
		sw = 0;
		memcpy(buf, f->st[0], 10); /* no conversion, no exception */
	} else {
		sw = ld_to_mem(f, k, ld_of(f->st[0]), buf, (i->reg & 7) == 1);
	}
	unsigned ex = sw & FSW_EXC;
	bool stored = !x87_blocked(f, ex, FSW_IE | FSW_DE | FSW_ZE | FSW_OE | FSW_UE);
	if (stored)
		seg_write_bytes(cpu, i->seg, insn_ea(cpu, i), buf, mem_size[k]);
	else
		ex &= ~FSW_PE; /* an aborted store is not inexact */
	x87_set_c1(f, stored && !(ex & FSW_SF) && (sw & FSW_C1));
	x87_except(cpu, i, ex);
	if (pop && stored)
		x87_pop(f);
	x87_done(cpu);
}

/* DD D0+i FST ST(i), DD D8+i FSTP ST(i): a raw copy of ST(0). */
static void x87_fst_st(struct soft_cpu *cpu, struct insn *i)
{
	struct fpu_state *f = x87_begin(cpu, true);
	unsigned d = i->rm & 7;
	bool ok = true;
	if (x87_empty(f, 0)) {
		ok = x87_stack_fault(cpu, i, false);
		if (ok)
			x87_put_indefinite(f, d);
	} else {
		slot_put_raw(f->st[d], f->st[0]);
		x87_tag(f, d, true);
		x87_set_c1(f, false);
	}
	if (ok && (i->reg & 7) == 3)
		x87_pop(f);
	x87_done(cpu);
}

static void x87_fxch(struct soft_cpu *cpu, struct insn *i) /* D9 C8+i */
{
	struct fpu_state *f = x87_begin(cpu, true);
	unsigned s = i->rm & 7;
	uint8_t t[16];
	if (x87_empty(f, 0) || x87_empty(f, s)) {
		if (!x87_stack_fault(cpu, i, false)) {
			x87_done(cpu);
			return;
		}
		if (x87_empty(f, 0))
			x87_put_indefinite(f, 0);
		if (x87_empty(f, s))
			x87_put_indefinite(f, s);
	} else {
		x87_set_c1(f, false);
	}
	memcpy(t, f->st[0], 16);
	memcpy(f->st[0], f->st[s], 16);
	memcpy(f->st[s], t, 16);
	x87_done(cpu);
}

/* FCMOVcc (DA/DB C0-DF): B, E, BE, U and their negations on EFLAGS. An
 * empty operand's masked response writes ST(0) whatever the condition;
 * C1 is left alone (both as on hardware). */
static void x87_fcmov(struct soft_cpu *cpu, struct insn *i)
{
	static const uint8_t cond[4] = {2, 4, 6, 10}; /* B, E, BE, P as Jcc condition codes */
	struct fpu_state *f = x87_begin(cpu, true);
	unsigned s = i->rm & 7;
	bool take = flags_cond(cpu, cond[i->reg & 3]) != (i->opcode == 0xdb);
	if (x87_empty(f, 0) || x87_empty(f, s)) {
		if (x87_stack_fault(cpu, i, false))
			x87_put_indefinite(f, 0);
	} else if (take) {
		slot_put_raw(f->st[0], f->st[s]);
	}
	x87_done(cpu);
}

/* ---- one-operand instructions on ST(0) ---- */

static void x87_sign(struct soft_cpu *cpu, struct insn *i) /* D9 E0 FCHS, D9 E1 FABS */
{
	struct fpu_state *f = x87_begin(cpu, true);
	if (x87_empty(f, 0)) {
		if (x87_stack_fault(cpu, i, false))
			x87_put_indefinite(f, 0);
	} else {
		if ((i->rm & 7) == 0)
			f->st[0][9] ^= 0x80;
		else
			f->st[0][9] &= 0x7f;
		x87_set_c1(f, false);
	}
	x87_done(cpu);
}

static bool ld_is_nan(long double v)
{
	uint64_t mant;
	uint16_t se;
	memcpy(&mant, &v, 8);
	memcpy(&se, (const uint8_t *)&v + 8, 2);
	return (se & 0x7fff) == 0x7fff && (mant << 1);
}

/* FSQRT, FRNDINT (ST0 only); FSCALE, FPREM, FPREM1 (ST0 with ST1). FPREM
 * and FPREM1 report their quotient bits and C2 (incomplete) in C0-C3;
 * without a numeric result they clear C1 and C2 and leave C0 and C3 (as
 * on hardware). */
static void x87_unary(struct soft_cpu *cpu, struct insn *i)
{
	struct fpu_state *f = x87_begin(cpu, true);
	unsigned rm = i->rm & 7;
	enum x87_op op = (i->reg & 7) == 6 ? OP_PREM1
			 : rm == 0 ? OP_PREM : rm == 2 ? OP_SQRT : rm == 4 ? OP_RNDINT : OP_SCALE;
	bool binary = op == OP_PREM || op == OP_PREM1 || op == OP_SCALE;
	bool prem = op == OP_PREM || op == OP_PREM1;
	if (x87_empty(f, 0) || (binary && x87_empty(f, 1))) {
		if (prem)
			f->fsw &= (uint16_t)~FSW_C2;
		if (x87_stack_fault(cpu, i, false))
			x87_put_indefinite(f, 0);
		x87_done(cpu);
		return;
	}
	long double r;
	unsigned sw = x87_arith_host(f, op, ld_of(f->st[0]), ld_of(f->st[1]), &r);
	if (prem && ((sw & FSW_IE) || ld_is_nan(r) ||
		     x87_blocked(f, sw, FSW_IE | FSW_DE | FSW_ZE)))
		x87_set_cc(f, f->fsw & (FSW_C3 | FSW_C0));
	else if (prem)
		x87_set_cc(f, sw);
	else
		x87_set_c1(f, sw & FSW_C1);
	if (x87_except(cpu, i, sw & FSW_EXC))
		slot_put(f->st[0], r);
	x87_done(cpu);
}

/* FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ (D9 E8-EE). The
 * irrational constants are kept to 66 bits and rounded by FCW.RC: the
 * 64-bit mantissa below is the round-to-nearest one; `down` says whether
 * rounding toward zero/down (or `up`, upward) takes one unit off/on. */
static void x87_const(struct soft_cpu *cpu, struct insn *i)
{
	static const struct {
		uint16_t se;
		uint64_t mant;
		bool down; /* RD and RZ give mant - 1 */
		bool up;   /* RU gives mant + 1 */
	} k[7] = {
	    {0x3fff, 0x8000000000000000ULL, false, false}, /* 1 */
	    {0x4000, 0xd49a784bcd1b8afeULL, false, true},  /* log2(10) */
	    {0x3fff, 0xb8aa3b295c17f0bcULL, true, false},  /* log2(e) */
	    {0x4000, 0xc90fdaa22168c235ULL, true, false},  /* pi */
	    {0x3ffd, 0x9a209a84fbcff799ULL, true, false},  /* log10(2) */
	    {0x3ffe, 0xb17217f7d1cf79acULL, true, false},  /* ln(2) */
	    {0x0000, 0, false, false},                     /* +0 */
	};
	struct fpu_state *f = x87_begin(cpu, true);
	unsigned n = i->rm & 7, rc = (f->fcw >> FCW_RC_SHIFT) & 3;
	uint64_t mant = k[n].mant;
	uint8_t v[10];
	if (k[n].down && (rc == 1 || rc == 3))
		mant--;
	if (k[n].up && rc == 2)
		mant++;
	memcpy(v, &mant, 8);
	memcpy(v + 8, &k[n].se, 2);
	x87_push_checked(cpu, i, v, 0);
	x87_done(cpu);
}

static void x87_ffree(struct soft_cpu *cpu, struct insn *i) /* DD C0+i; DF C0+i FFREEP */
{
	struct fpu_state *f = x87_begin(cpu, true);
	x87_tag(f, i->rm & 7, false);
	x87_set_c1(f, false);
	if (i->opcode == 0xdf)
		x87_pop(f);
	x87_done(cpu);
}

static void x87_incdec(struct soft_cpu *cpu, struct insn *i) /* D9 F6 FDECSTP, D9 F7 FINCSTP */
{
	struct fpu_state *f = x87_begin(cpu, true);
	if ((i->rm & 7) == 7)
		x87_inc_top(f);
	else
		x87_dec_top(f);
	x87_set_c1(f, false);
	x87_done(cpu);
}

static void x87_fnop(struct soft_cpu *cpu, struct insn *i) /* D9 D0 */
{
	(void)i;
	x87_begin(cpu, true);
	x87_done(cpu);
}

/* ---- control ---- */

static void x87_reset(struct fpu_state *f)
{
	x87_load_top(f, 0);
	f->fcw = FCW_DEFAULT;
	f->fsw = 0;
	f->ftw = 0;
	f->fop = 0;
	f->fip = 0;
	f->fdp = 0;
}

static void x87_fninit(struct soft_cpu *cpu, struct insn *i) /* DB E3 */
{
	(void)i;
	x87_reset(x87_begin(cpu, false));
}

static void x87_fnclex(struct soft_cpu *cpu, struct insn *i) /* DB E2 */
{
	struct fpu_state *f = x87_begin(cpu, false);
	(void)i;
	f->fsw &= (uint16_t)~(FSW_EXC | FSW_ES | FSW_B);
}

/* DB E0 FENI, DB E1 FDISI, DB E4 FSETPM: no-ops since the 80287. */
static void x87_legacy_nop(struct soft_cpu *cpu, struct insn *i)
{
	(void)i;
	x87_begin(cpu, false);
}

static void x87_fldcw(struct soft_cpu *cpu, struct insn *i) /* D9 /5 */
{
	struct fpu_state *f = x87_begin(cpu, true);
	uint16_t v = (uint16_t)seg_read(cpu, i->seg, insn_ea(cpu, i), 2);
	f->fcw = fpu_fcw_sanitize(v);
	fpu_update_es(f);
}

static void x87_fnstcw(struct soft_cpu *cpu, struct insn *i) /* D9 /7 */
{
	struct fpu_state *f = x87_begin(cpu, false);
	seg_write(cpu, i->seg, insn_ea(cpu, i), 2, f->fcw);
}

static void x87_fnstsw_mem(struct soft_cpu *cpu, struct insn *i) /* DD /7 */
{
	struct fpu_state *f = x87_begin(cpu, false);
	seg_write(cpu, i->seg, insn_ea(cpu, i), 2, f->fsw);
}

static void x87_fnstsw_ax(struct soft_cpu *cpu, struct insn *i) /* DF E0 */
{
	struct fpu_state *f = x87_begin(cpu, false);
	(void)i;
	reg_write(cpu, GPR_RAX, 2, f->fsw, true);
}

/* FWAIT (9B): #NM only when CR0.MP and CR0.TS are both set; then any
 * pending unmasked exception. */
static void x87_fwait(struct soft_cpu *cpu, struct insn *i)
{
	(void)i;
	if ((cpu->s.cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
		soft_raise_noerr(cpu, EXC_NM);
	if ((cpu->fpu.fsw & FSW_ES) && (cpu->s.cr0 & CR0_NE))
		soft_raise_noerr(cpu, EXC_MF);
}

/* ---- environment and state images (vol. 1 §8.1.10, figures 8-9 to 8-12) ---- */

/* The full two-bit tag of physical register p: 00 valid, 01 zero,
 * 10 special (NaN, infinity, denormal, unsupported), 11 empty. */
static unsigned full_tag(const struct fpu_state *f, unsigned p)
{
	if (!((f->ftw >> p) & 1))
		return 3;
	const uint8_t *v = f->st[(p - x87_top(f)) & 7];
	uint64_t mant;
	uint16_t se;
	memcpy(&mant, v, 8);
	memcpy(&se, v + 8, 2);
	unsigned exp = se & 0x7fff;
	if (exp == 0)
		return mant ? 2 : 1;
	if (exp == 0x7fff || !(mant >> 63))
		return 2;
	return 0;
}

static uint16_t full_tag_word(const struct fpu_state *f)
{
	uint16_t t = 0;
	for (unsigned p = 0; p < 8; p++)
		t |= (uint16_t)(full_tag(f, p) << (2 * p));
	return t;
}

static uint8_t abridged_tags(uint16_t full)
{
	uint8_t t = 0;
	for (unsigned p = 0; p < 8; p++)
		if (((full >> (2 * p)) & 3) != 3)
			t |= (uint8_t)(1u << p);
	return t;
}

static bool env_real_mode(const struct soft_cpu *cpu)
{
	return !(cpu->s.cr0 & CR0_PE) || (cpu->s.rflags & FLAG_VM);
}

static unsigned env_size(const struct insn *i) { return i->opsize == 2 ? 14 : 28; }

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }

/* Builds the environment image; unused halves of the 32-bit format read
 * as ones and the FPU CS/DS selectors as zero (checked on hardware). */
static void env_build(const struct soft_cpu *cpu, const struct insn *i, uint8_t *e)
{
	const struct fpu_state *f = &cpu->fpu;
	uint32_t ip = (uint32_t)f->fip, dp = (uint32_t)f->fdp, fop = f->fop & 0x7ffu;
	bool real = env_real_mode(cpu);
	uint32_t w[7];
	if (env_size(i) == 14) {
		uint16_t h[7] = {f->fcw, f->fsw, full_tag_word(f), (uint16_t)ip,
				 (uint16_t)(real ? ((ip >> 4) & 0xf000) | fop : 0), (uint16_t)dp,
				 (uint16_t)(real ? (dp >> 4) & 0xf000 : 0)};
		for (unsigned k = 0; k < 7; k++)
			put16(e + 2 * k, h[k]);
		return;
	}
	w[0] = 0xffff0000u | f->fcw;
	w[1] = 0xffff0000u | f->fsw;
	w[2] = 0xffff0000u | full_tag_word(f);
	if (real) {
		w[3] = 0xffff0000u | (ip & 0xffff);
		w[4] = ((ip >> 4) & 0x0ffff000u) | fop;
		w[5] = 0xffff0000u | (dp & 0xffff);
		w[6] = (dp >> 4) & 0x0ffff000u;
	} else {
		w[3] = ip;
		w[4] = fop << 16;
		w[5] = dp;
		w[6] = 0xffff0000u;
	}
	for (unsigned k = 0; k < 7; k++)
		put32(e + 4 * k, w[k]);
}

static void env_load(struct soft_cpu *cpu, const struct insn *i, const uint8_t *e)
{
	struct fpu_state *f = &cpu->fpu;
	bool real = env_real_mode(cpu), small = env_size(i) == 14;
	unsigned w = small ? 2 : 4;
	uint32_t (*get)(const uint8_t *) = small ? get16 : get32;
	uint16_t fsw = (uint16_t)get(e + w);
	f->fcw = fpu_fcw_sanitize((uint16_t)get(e));
	x87_load_top(f, (fsw & FSW_TOP) >> FSW_TOP_SHIFT);
	f->fsw = fsw;
	fpu_update_es(f); /* ES and B follow the loaded flags and masks */
	f->ftw = abridged_tags((uint16_t)get(e + 2 * w));
	uint32_t ipw = get(e + 3 * w), opw = get(e + 4 * w), dpw = get(e + 5 * w), hiw = get(e + 6 * w);
	if (real) {
		uint32_t hi_mask = small ? 0xf000u : 0x0ffff000u;
		f->fip = (ipw & 0xffff) | ((uint64_t)(opw & hi_mask) << 4);
		f->fop = (uint16_t)(opw & 0x7ff);
		f->fdp = (dpw & 0xffff) | ((uint64_t)(hiw & hi_mask) << 4);
	} else {
		f->fip = ipw;
		f->fop = small ? 0 : (uint16_t)((opw >> 16) & 0x7ff);
		f->fdp = dpw;
	}
}

static void x87_fnstenv(struct soft_cpu *cpu, struct insn *i) /* D9 /6 */
{
	struct fpu_state *f = x87_begin(cpu, false);
	uint8_t e[28];
	env_build(cpu, i, e);
	seg_write_bytes(cpu, i->seg, insn_ea(cpu, i), e, env_size(i));
	f->fcw |= FCW_MASKS; /* FNSTENV then masks every exception */
	fpu_update_es(f);
}

static void x87_fldenv(struct soft_cpu *cpu, struct insn *i) /* D9 /4 */
{
	uint8_t e[28];
	x87_begin(cpu, true);
	seg_read_bytes(cpu, i->seg, insn_ea(cpu, i), e, env_size(i));
	env_load(cpu, i, e);
}

static void x87_fnsave(struct soft_cpu *cpu, struct insn *i) /* DD /6 */
{
	struct fpu_state *f = x87_begin(cpu, false);
	unsigned es = env_size(i);
	uint8_t img[28 + 80];
	env_build(cpu, i, img);
	for (unsigned r = 0; r < 8; r++)
		memcpy(img + es + 10 * r, f->st[r], 10);
	seg_write_bytes(cpu, i->seg, insn_ea(cpu, i), img, es + 80);
	x87_reset(f);
}

static void x87_frstor(struct soft_cpu *cpu, struct insn *i) /* DD /4 */
{
	struct fpu_state *f = x87_begin(cpu, true);
	unsigned es = env_size(i);
	uint8_t img[28 + 80];
	seg_read_bytes(cpu, i->seg, insn_ea(cpu, i), img, es + 80);
	env_load(cpu, i, img);
	for (unsigned r = 0; r < 8; r++)
		slot_put_raw(f->st[r], img + es + 10 * r);
}

#define M OPF_MODRM
#define R3 OPF_MOD3
#define MEM OPF_MODMEM
#define XM(op, reg, name, fn) {OPMAP_1B, (op), (reg), -1, PFX_ANY, M | MEM, (name), (fn)}
#define XR(op, reg, name, fn) {OPMAP_1B, (op), (reg), -1, PFX_ANY, M | R3, (name), (fn)}
#define XRM(op, reg, rm, name, fn) {OPMAP_1B, (op), (reg), (rm), PFX_ANY, M | R3, (name), (fn)}

const struct opdef soft_ops_x87[] = {
    /* D8: m32fp arithmetic; ST(0) = ST(0) op ST(i) */
    XM(0xd8, -1, "fadd/fmul/fcom/fsub/fdiv m32", x87_arith_mem),
    XR(0xd8, 0, "fadd", x87_arith_st0), XR(0xd8, 1, "fmul", x87_arith_st0),
    XR(0xd8, 2, "fcom", x87_fcom_st), XR(0xd8, 3, "fcomp", x87_fcom_st),
    XR(0xd8, 4, "fsub", x87_arith_st0), XR(0xd8, 5, "fsubr", x87_arith_st0),
    XR(0xd8, 6, "fdiv", x87_arith_st0), XR(0xd8, 7, "fdivr", x87_arith_st0),
    /* D9 */
    XM(0xd9, 0, "fld m32", x87_load_mem), XM(0xd9, 2, "fst m32", x87_store_mem),
    XM(0xd9, 3, "fstp m32", x87_store_mem), XM(0xd9, 4, "fldenv", x87_fldenv),
    XM(0xd9, 5, "fldcw", x87_fldcw), XM(0xd9, 6, "fnstenv", x87_fnstenv),
    XM(0xd9, 7, "fnstcw", x87_fnstcw),
    XR(0xd9, 0, "fld st", x87_fld_st), XR(0xd9, 1, "fxch", x87_fxch),
    XRM(0xd9, 2, 0, "fnop", x87_fnop),
    XRM(0xd9, 4, 0, "fchs", x87_sign), XRM(0xd9, 4, 1, "fabs", x87_sign),
    XRM(0xd9, 4, 4, "ftst", x87_ftst), XRM(0xd9, 4, 5, "fxam", x87_fxam),
    XRM(0xd9, 5, 0, "fld1", x87_const), XRM(0xd9, 5, 1, "fldl2t", x87_const),
    XRM(0xd9, 5, 2, "fldl2e", x87_const), XRM(0xd9, 5, 3, "fldpi", x87_const),
    XRM(0xd9, 5, 4, "fldlg2", x87_const), XRM(0xd9, 5, 5, "fldln2", x87_const),
    XRM(0xd9, 5, 6, "fldz", x87_const),
    XRM(0xd9, 6, 5, "fprem1", x87_unary), XRM(0xd9, 6, 6, "fdecstp", x87_incdec),
    XRM(0xd9, 6, 7, "fincstp", x87_incdec),
    XRM(0xd9, 7, 0, "fprem", x87_unary), XRM(0xd9, 7, 2, "fsqrt", x87_unary),
    XRM(0xd9, 7, 4, "frndint", x87_unary), XRM(0xd9, 7, 5, "fscale", x87_unary),
    /* DA: m32int arithmetic; FCMOVB/E/BE/U; FUCOMPP */
    XM(0xda, -1, "fiadd/fimul/ficom/fisub/fidiv m32", x87_arith_mem),
    XR(0xda, 0, "fcmovb", x87_fcmov), XR(0xda, 1, "fcmove", x87_fcmov),
    XR(0xda, 2, "fcmovbe", x87_fcmov), XR(0xda, 3, "fcmovu", x87_fcmov),
    XRM(0xda, 5, 1, "fucompp", x87_fcompp),
    /* DB */
    XM(0xdb, 0, "fild m32", x87_load_mem), XM(0xdb, 1, "fisttp m32", x87_store_mem),
    XM(0xdb, 2, "fist m32", x87_store_mem),
    XM(0xdb, 3, "fistp m32", x87_store_mem), XM(0xdb, 5, "fld m80", x87_load_mem),
    XM(0xdb, 7, "fstp m80", x87_store_mem),
    XR(0xdb, 0, "fcmovnb", x87_fcmov), XR(0xdb, 1, "fcmovne", x87_fcmov),
    XR(0xdb, 2, "fcmovnbe", x87_fcmov), XR(0xdb, 3, "fcmovnu", x87_fcmov),
    XRM(0xdb, 4, 0, "feni", x87_legacy_nop), XRM(0xdb, 4, 1, "fdisi", x87_legacy_nop),
    XRM(0xdb, 4, 2, "fnclex", x87_fnclex), XRM(0xdb, 4, 3, "fninit", x87_fninit),
    XRM(0xdb, 4, 4, "fsetpm", x87_legacy_nop),
    XR(0xdb, 5, "fucomi", x87_fcomi), XR(0xdb, 6, "fcomi", x87_fcomi),
    /* DC: m64fp arithmetic; ST(i) = ST(i) op ST(0) */
    XM(0xdc, -1, "fadd/fmul/fcom/fsub/fdiv m64", x87_arith_mem),
    XR(0xdc, 0, "fadd", x87_arith_sti), XR(0xdc, 1, "fmul", x87_arith_sti),
    XR(0xdc, 4, "fsubr", x87_arith_sti), XR(0xdc, 5, "fsub", x87_arith_sti),
    XR(0xdc, 6, "fdivr", x87_arith_sti), XR(0xdc, 7, "fdiv", x87_arith_sti),
    /* DD */
    XM(0xdd, 0, "fld m64", x87_load_mem), XM(0xdd, 1, "fisttp m64", x87_store_mem),
    XM(0xdd, 2, "fst m64", x87_store_mem),
    XM(0xdd, 3, "fstp m64", x87_store_mem), XM(0xdd, 4, "frstor", x87_frstor),
    XM(0xdd, 6, "fnsave", x87_fnsave), XM(0xdd, 7, "fnstsw m16", x87_fnstsw_mem),
    XR(0xdd, 0, "ffree", x87_ffree), XR(0xdd, 2, "fst st", x87_fst_st),
    XR(0xdd, 3, "fstp st", x87_fst_st), XR(0xdd, 4, "fucom", x87_fcom_st),
    XR(0xdd, 5, "fucomp", x87_fcom_st),
    /* DE: m16int arithmetic; ST(i) = ST(i) op ST(0) and pop; FCOMPP */
    XM(0xde, -1, "fiadd/fimul/ficom/fisub/fidiv m16", x87_arith_mem),
    XR(0xde, 0, "faddp", x87_arith_sti), XR(0xde, 1, "fmulp", x87_arith_sti),
    XRM(0xde, 3, 1, "fcompp", x87_fcompp),
    XR(0xde, 4, "fsubrp", x87_arith_sti), XR(0xde, 5, "fsubp", x87_arith_sti),
    XR(0xde, 6, "fdivrp", x87_arith_sti), XR(0xde, 7, "fdivp", x87_arith_sti),
    /* DF */
    XM(0xdf, 0, "fild m16", x87_load_mem), XM(0xdf, 1, "fisttp m16", x87_store_mem),
    XM(0xdf, 2, "fist m16", x87_store_mem),
    XM(0xdf, 3, "fistp m16", x87_store_mem), XM(0xdf, 5, "fild m64", x87_load_mem),
    XM(0xdf, 7, "fistp m64", x87_store_mem),
    XR(0xdf, 0, "ffreep", x87_ffree),
    XRM(0xdf, 4, 0, "fnstsw ax", x87_fnstsw_ax),
    XR(0xdf, 5, "fucomip", x87_fcomi), XR(0xdf, 6, "fcomip", x87_fcomi),
    {OPMAP_1B, 0x9b, -1, -1, PFX_ANY, 0, "fwait", x87_fwait},
    OPDEF_END,
};
