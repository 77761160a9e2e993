/* Integer arithmetic and logic (SDM vol. 2, each instruction's "Operation"
 * and "Flags Affected"; vol. 1 §7.3.2-7.3.7 and appendix A for the flag
 * table): ADD/OR/ADC/SBB/AND/SUB/XOR/CMP, TEST, NOT/NEG, MUL/IMUL/DIV/IDIV,
 * INC/DEC, shifts and rotates, SHLD/SHRD, BT/BTS/BTR/BTC, BSF/BSR,
 * TZCNT/LZCNT/POPCNT, BSWAP, XADD, CMPXCHG, CMPXCHG8B/16B, CBW/CWD
 * families, SETcc, CMOVcc, LAHF/SAHF, CLC/STC/CMC/CLD/STD and the BCD
 * adjustments (DAA/DAS/AAA/AAS/AAM/AAD).
 *
 * Every handler is fault-atomic: operands are read, the result computed,
 * the memory destination written (the access that can fault), and only
 * then are registers and flags changed. Flags the SDM leaves undefined are
 * set as current Intel processors set them (checked against the host CPU);
 * each such place says so. LOCK needs no extra work: the soft engine runs
 * one vCPU, so every read-modify-write is already atomic. */
#include "engine/soft/soft.h"

/* ---- flag helpers ---- */

static bool msb(uint64_t v, unsigned size) { return (v >> (size * 8 - 1)) & 1; }

static uint64_t count_mask(unsigned size) { return size == 8 ? 63 : 31; }

/* SF, ZF and PF of a result. */
static uint64_t szp_flags(uint64_t res, unsigned size)
{
	uint64_t f = 0;
	res &= size_mask(size);
	if (res == 0)
		f |= FLAG_ZF;
	if (msb(res, size))
		f |= FLAG_SF;
	if (!__builtin_parity((unsigned)(res & 0xff)))
		f |= FLAG_PF;
	return f;
}

/* Replaces the flags in `mask` with `bits`, keeping the others. */
static void flags_replace(struct soft_cpu *cpu, uint64_t mask, uint64_t bits)
{
	flags_put(cpu, (flags_get(cpu) & ~mask) | (bits & mask));
}

static uint64_t flag_if(bool cond, uint64_t flag) { return cond ? flag : 0; }

/* ---- ADD/OR/ADC/SBB/AND/SUB/XOR/CMP ---- */

enum alu_kind { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP };

/* A computed two-operand result whose flags are recorded only after the
 * destination has been written. */
struct alu_result {
	uint64_t res, a, b;
	uint8_t op; /* enum lazy_op */
	bool carry; /* ADC/SBB carry-in */
};

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE struct alu_result alu_compute(struct soft_cpu *cpu, unsigned kind,
						   unsigned size, uint64_t a, uint64_t b)
{
	struct alu_result r = {.a = a & size_mask(size), .b = b & size_mask(size)};
	switch (kind) {
	case ALU_ADD: r.res = r.a + r.b; r.op = LF_ADD; break;
	case ALU_OR: r.res = r.a | r.b; r.op = LF_LOGIC; break;
	case ALU_ADC:
		r.carry = flags_cf(cpu);
		r.res = r.a + r.b + r.carry;
		r.op = LF_ADC;
		break;
	case ALU_SBB:
		r.carry = flags_cf(cpu);
		r.res = r.a - r.b - r.carry;
		r.op = LF_SBB;
		break;
	case ALU_AND: r.res = r.a & r.b; r.op = LF_LOGIC; break;
	case ALU_XOR: r.res = r.a ^ r.b; r.op = LF_LOGIC; break;
	default: r.res = r.a - r.b; r.op = LF_SUB; break; /* SUB, CMP */
	}
	r.res &= size_mask(size);
	return r;
}

static ALWAYS_INLINE void alu_commit_flags(struct soft_cpu *cpu, unsigned size,
					    const struct alu_result *r)
{
	flags_set(cpu, (enum lazy_op)r->op, size, r->res, r->a, r->b);
	cpu->lf.carry_in = r->carry;
}

/* The four operand forms, instantiated below once per operation so that
 * each handler computes one operation with no dispatch on the kind. */
static ALWAYS_INLINE void alu_rm_reg(struct soft_cpu *cpu, struct insn *i, unsigned kind)
{
	uint64_t a = op_rm_read(cpu, i, i->opsize);
	struct alu_result r = alu_compute(cpu, kind, i->opsize, a, op_reg_read(cpu, i, i->opsize));
	if (kind != ALU_CMP)
		op_rm_write(cpu, i, i->opsize, r.res);
	alu_commit_flags(cpu, i->opsize, &r);
}

static ALWAYS_INLINE void alu_reg_rm(struct soft_cpu *cpu, struct insn *i, unsigned kind)
{
	uint64_t b = op_rm_read(cpu, i, i->opsize);
	struct alu_result r = alu_compute(cpu, kind, i->opsize, op_reg_read(cpu, i, i->opsize), b);
	if (kind != ALU_CMP)
		op_reg_write(cpu, i, i->opsize, r.res);
	alu_commit_flags(cpu, i->opsize, &r);
}

static ALWAYS_INLINE void alu_acc_imm(struct soft_cpu *cpu, struct insn *i, unsigned kind)
{
	uint64_t a = reg_read(cpu, GPR_RAX, i->opsize, true);
	struct alu_result r = alu_compute(cpu, kind, i->opsize, a, i->imm);
	if (kind != ALU_CMP)
		reg_write(cpu, GPR_RAX, i->opsize, r.res, true);
	alu_commit_flags(cpu, i->opsize, &r);
}

static ALWAYS_INLINE void alu_rm_imm(struct soft_cpu *cpu, struct insn *i, unsigned kind)
{
	uint64_t imm = i->opcode == 0x83 ? (uint64_t)sign_extend(i->imm, 1) : i->imm;
	uint64_t a = op_rm_read(cpu, i, i->opsize);
	struct alu_result r = alu_compute(cpu, kind, i->opsize, a, imm);
	if (kind != ALU_CMP)
		op_rm_write(cpu, i, i->opsize, r.res);
	alu_commit_flags(cpu, i->opsize, &r);
}

#define ALU_HANDLERS(kind, name)                                                                   \
	static void name##_rm_reg(struct soft_cpu *cpu, struct insn *i) /* 00, 01, 08, ... 39 */   \
	{                                                                                          \
		alu_rm_reg(cpu, i, kind);                                                          \
	}                                                                                          \
	static void name##_reg_rm(struct soft_cpu *cpu, struct insn *i) /* 02, 03, ... 3B */       \
	{                                                                                          \
		alu_reg_rm(cpu, i, kind);                                                          \
	}                                                                                          \
	static void name##_acc_imm(struct soft_cpu *cpu, struct insn *i) /* 04, 05, ... 3D */      \
	{                                                                                          \
		alu_acc_imm(cpu, i, kind);                                                         \
	}                                                                                          \
	static void name##_rm_imm(struct soft_cpu *cpu, struct insn *i) /* 80-83 /kind */          \
	{                                                                                          \
		alu_rm_imm(cpu, i, kind);                                                          \
	}

ALU_HANDLERS(ALU_ADD, add)
ALU_HANDLERS(ALU_OR, or)
ALU_HANDLERS(ALU_ADC, adc)
ALU_HANDLERS(ALU_SBB, sbb)
ALU_HANDLERS(ALU_AND, and)
ALU_HANDLERS(ALU_SUB, sub)
ALU_HANDLERS(ALU_XOR, xor)
ALU_HANDLERS(ALU_CMP, cmp)

/* ---- TEST, NOT, NEG ---- */

static void logic_flags(struct soft_cpu *cpu, unsigned size, uint64_t res)
{
	flags_set(cpu, LF_LOGIC, size, res, 0, 0);
}

static void test_rm_reg(struct soft_cpu *cpu, struct insn *i) /* 84, 85 */
{
	uint64_t a = op_rm_read(cpu, i, i->opsize);
	logic_flags(cpu, i->opsize, a & op_reg_read(cpu, i, i->opsize));
}

static void test_acc_imm(struct soft_cpu *cpu, struct insn *i) /* A8, A9 */
{
	logic_flags(cpu, i->opsize, reg_read(cpu, GPR_RAX, i->opsize, true) & i->imm);
}

static void test_rm_imm(struct soft_cpu *cpu, struct insn *i) /* F6 /0 /1, F7 /0 /1 */
{
	logic_flags(cpu, i->opsize, op_rm_read(cpu, i, i->opsize) & i->imm);
}

static void not_rm(struct soft_cpu *cpu, struct insn *i) /* F6 /2, F7 /2: no flags */
{
	op_rm_write(cpu, i, i->opsize, ~op_rm_read(cpu, i, i->opsize));
}

static void neg_rm(struct soft_cpu *cpu, struct insn *i) /* F6 /3, F7 /3 */
{
	uint64_t a = op_rm_read(cpu, i, i->opsize);
	uint64_t res = (0 - a) & size_mask(i->opsize);
	op_rm_write(cpu, i, i->opsize, res);
	flags_set(cpu, LF_NEG, i->opsize, res, a, 0);
}

/* ---- multiply and divide ---- */

typedef unsigned __int128 u128;
typedef __int128 s128;

/* CF = OF = `overflow`; SF/ZF/PF/AF are undefined by the SDM and come
 * from the low half of the product (see flags.c, LF_MUL/LF_IMUL). */
static void mul_flags(struct soft_cpu *cpu, enum lazy_op op, unsigned size, uint64_t lo,
		      bool overflow)
{
	flags_set(cpu, op, size, lo, 0, 0);
	cpu->lf.carry_in = overflow;
}

/* Stores a double-width result: AH:AL for bytes, rDX:rAX otherwise. */
static void write_acc_pair(struct soft_cpu *cpu, unsigned size, uint64_t lo, uint64_t hi)
{
	if (size == 1) {
		reg_write(cpu, GPR_RAX, 2, ((hi & 0xff) << 8) | (lo & 0xff), true);
		return;
	}
	reg_write(cpu, GPR_RAX, size, lo, true);
	reg_write(cpu, GPR_RDX, size, hi, true);
}

static void mul_rm(struct soft_cpu *cpu, struct insn *i) /* F6 /4, F7 /4 */
{
	unsigned size = i->opsize, bits = size * 8;
	uint64_t src = op_rm_read(cpu, i, size);
	u128 p = (u128)reg_read(cpu, GPR_RAX, size, true) * src;
	uint64_t lo = (uint64_t)p & size_mask(size);
	uint64_t hi = (uint64_t)(p >> bits) & size_mask(size);
	write_acc_pair(cpu, size, lo, hi);
	mul_flags(cpu, LF_MUL, size, lo, hi != 0);
}

static void imul_rm(struct soft_cpu *cpu, struct insn *i) /* F6 /5, F7 /5 */
{
	unsigned size = i->opsize, bits = size * 8;
	int64_t src = sign_extend(op_rm_read(cpu, i, size), size);
	s128 p = (s128)sign_extend(reg_read(cpu, GPR_RAX, size, true), size) * src;
	uint64_t lo = (uint64_t)p & size_mask(size);
	uint64_t hi = (uint64_t)((u128)p >> bits) & size_mask(size);
	write_acc_pair(cpu, size, lo, hi);
	mul_flags(cpu, LF_IMUL, size, lo, p != (s128)sign_extend(lo, size));
}

/* The double-width dividend: AX for bytes, rDX:rAX otherwise. */
static u128 read_dividend(struct soft_cpu *cpu, unsigned size)
{
	if (size == 1)
		return reg_read(cpu, GPR_RAX, 2, true);
	return ((u128)reg_read(cpu, GPR_RDX, size, true) << (size * 8)) |
	       reg_read(cpu, GPR_RAX, size, true);
}

/* DIV and IDIV leave all six arithmetic flags undefined; Intel processors
 * leave them unchanged, so nothing is recorded. */
static void div_rm(struct soft_cpu *cpu, struct insn *i) /* F6 /6, F7 /6 */
{
	unsigned size = i->opsize;
	uint64_t divisor = op_rm_read(cpu, i, size);
	if (divisor == 0)
		soft_raise_noerr(cpu, EXC_DE);
	u128 dividend = read_dividend(cpu, size);
	u128 q = dividend / divisor;
	if (q > size_mask(size))
		soft_raise_noerr(cpu, EXC_DE);
	write_acc_pair(cpu, size, (uint64_t)q, (uint64_t)(dividend % divisor));
}

static void idiv_rm(struct soft_cpu *cpu, struct insn *i) /* F6 /7, F7 /7 */
{
	unsigned size = i->opsize, bits = size * 8;
	int64_t divisor = sign_extend(op_rm_read(cpu, i, size), size);
	if (divisor == 0)
		soft_raise_noerr(cpu, EXC_DE);
	u128 raw = read_dividend(cpu, size);
	/* Sign-extend the 2*bits-wide dividend to 128 bits. */
	s128 dividend = (s128)(raw << (128 - 2 * bits)) >> (128 - 2 * bits);
	s128 min = -((s128)1 << (bits - 1)), max = ((s128)1 << (bits - 1)) - 1;
	/* -2^127 / -1 does not fit in 128 bits either: it is #DE like any
	 * other quotient overflow, and must not reach the C division. */
	if (divisor == -1 && dividend == (s128)((u128)1 << 127))
		soft_raise_noerr(cpu, EXC_DE);
	s128 q = dividend / divisor, r = dividend % divisor;
	if (q < min || q > max)
		soft_raise_noerr(cpu, EXC_DE);
	write_acc_pair(cpu, size, (uint64_t)q, (uint64_t)r);
}

static void imul_reg(struct soft_cpu *cpu, struct insn *i, uint64_t a, uint64_t b)
{
	unsigned size = i->opsize;
	s128 p = (s128)sign_extend(a, size) * sign_extend(b, size);
	uint64_t lo = (uint64_t)p & size_mask(size);
	op_reg_write(cpu, i, size, lo);
	mul_flags(cpu, LF_IMUL, size, lo, p != (s128)sign_extend(lo, size));
}

static void imul_reg_rm(struct soft_cpu *cpu, struct insn *i) /* 0F AF */
{
	uint64_t b = op_rm_read(cpu, i, i->opsize);
	imul_reg(cpu, i, op_reg_read(cpu, i, i->opsize), b);
}

static void imul_reg_rm_imm(struct soft_cpu *cpu, struct insn *i) /* 69, 6B */
{
	uint64_t imm = i->opcode == 0x6b ? (uint64_t)sign_extend(i->imm, 1) : i->imm;
	imul_reg(cpu, i, op_rm_read(cpu, i, i->opsize), imm);
}

/* ---- INC, DEC ---- */

static void incdec_flags(struct soft_cpu *cpu, bool dec, unsigned size, uint64_t res, uint64_t a)
{
	bool cf = flags_cf(cpu); /* preserved */
	flags_set(cpu, dec ? LF_DEC : LF_INC, size, res, a, 1);
	cpu->lf.carry_in = cf;
}

static void incdec_rm(struct soft_cpu *cpu, struct insn *i) /* FE /0 /1, FF /0 /1 */
{
	bool dec = (i->reg & 7) == 1;
	uint64_t a = op_rm_read(cpu, i, i->opsize);
	uint64_t res = (dec ? a - 1 : a + 1) & size_mask(i->opsize);
	op_rm_write(cpu, i, i->opsize, res);
	incdec_flags(cpu, dec, i->opsize, res, a);
}

static void incdec_reg(struct soft_cpu *cpu, struct insn *i) /* 40-4F outside 64-bit mode */
{
	bool dec = i->opcode >= 0x48;
	unsigned reg = i->opcode & 7;
	uint64_t a = reg_read(cpu, reg, i->opsize, true);
	uint64_t res = (dec ? a - 1 : a + 1) & size_mask(i->opsize);
	reg_write(cpu, reg, i->opsize, res, true);
	incdec_flags(cpu, dec, i->opsize, res, a);
}

/* ---- shifts and rotates (C0, C1, D0-D3) ---- */

enum { SH_ROL, SH_ROR, SH_RCL, SH_RCR, SH_SHL, SH_SHR, SH_SAL, SH_SAR };

static uint64_t rotate_left(uint64_t v, unsigned n, unsigned bits)
{
	n %= bits;
	if (n == 0)
		return v;
	return ((v << n) | (v >> (bits - n))) & size_mask(bits / 8);
}

/* The outcome of a shift or rotate, applied after the destination write. */
struct shift_out {
	uint64_t res;
	bool lazy;     /* shifts: record lazily with `op`; rotates: replace CF/OF */
	uint8_t op;    /* enum lazy_op */
	uint64_t cfof; /* rotates: the new CF and OF bits */
};

/* OF is defined for a count of 1 only. For every count, Intel processors
 * set it to the count-1 value computed from the original operand (and CF
 * for RCR), which is what these helpers return. */
static bool msb2(uint64_t v, unsigned size) { return (v >> (size * 8 - 2)) & 1; }

/* ROL/ROR: the count is reduced modulo the width for the result, but any
 * non-zero masked count sets CF and OF, even when the rotation is a whole
 * number of turns. */
static struct shift_out do_rotate(bool right, unsigned size, uint64_t a, unsigned count)
{
	unsigned bits = size * 8;
	struct shift_out o = {.res = rotate_left(a, right ? bits - count % bits : count, bits)};
	bool cf = right ? msb(o.res, size) : o.res & 1;
	bool of = right ? (a & 1) ^ msb(a, size) : msb(a, size) ^ msb2(a, size);
	o.cfof = flag_if(cf, FLAG_CF) | flag_if(of, FLAG_OF);
	return o;
}

/* RCL/RCR rotate the (bits+1)-bit value CF:operand; the count is taken
 * modulo 9 or 17 for byte and word operands, and when that leaves 0 no
 * flag changes. */
static struct shift_out do_rotate_carry(bool right, unsigned size, uint64_t a, unsigned count,
					uint64_t old_flags)
{
	unsigned bits = size * 8, width = bits + 1;
	unsigned n = count % width;
	bool cf_in = old_flags & FLAG_CF;
	if (n == 0)
		return (struct shift_out){.res = a, .cfof = old_flags & (FLAG_CF | FLAG_OF)};
	u128 v = ((u128)cf_in << bits) | a;
	u128 wmask = ((u128)1 << width) - 1;
	if (right)
		v = ((v >> n) | (v << (width - n))) & wmask;
	else
		v = ((v << n) | (v >> (width - n))) & wmask;
	struct shift_out o = {.res = (uint64_t)v & size_mask(size)};
	bool cf = (v >> bits) & 1;
	bool of = right ? msb(a, size) ^ cf_in : msb(a, size) ^ msb2(a, size);
	o.cfof = flag_if(cf, FLAG_CF) | flag_if(of, FLAG_OF);
	return o;
}

static struct shift_out do_shift(unsigned kind, unsigned size, uint64_t a, unsigned count)
{
	struct shift_out o = {.lazy = true};
	if (kind == SH_SHR) {
		o.res = a >> count;
		o.op = LF_SHR;
	} else if (kind == SH_SAR) {
		o.res = (uint64_t)(sign_extend(a, size) >> count);
		o.op = LF_SAR;
	} else {
		o.res = a << count;
		o.op = LF_SHL;
	}
	o.res &= size_mask(size);
	return o;
}

static ALWAYS_INLINE void shift_rm_sized(struct soft_cpu *cpu, struct insn *i, unsigned kind,
					  unsigned size, unsigned raw_count, bool imm_form)
{
	unsigned count = raw_count & (unsigned)count_mask(size);
	uint64_t a = op_rm_read(cpu, i, size);
	struct shift_out o;
	if (count == 0) {
		/* No flags change; the destination is still written (a 32-bit
		 * register is zero-extended, as on hardware). */
		op_rm_write(cpu, i, size, a);
		return;
	}
	switch (kind) {
	case SH_ROL: o = do_rotate(false, size, a, count); break;
	case SH_ROR: o = do_rotate(true, size, a, count); break;
	case SH_RCL: o = do_rotate_carry(false, size, a, count, flags_get(cpu)); break;
	case SH_RCR: o = do_rotate_carry(true, size, a, count, flags_get(cpu)); break;
	default: o = do_shift(kind, size, a, count); break;
	}
	/* Intel leaves OF alone for ROL/ROR of a register by an immediate
	 * count other than 1 (the CL, count-1 and memory forms set it). */
	uint64_t changed = FLAG_CF | FLAG_OF;
	if (imm_form && i->mod == 3 && kind <= SH_ROR && count != 1)
		changed = FLAG_CF;
	op_rm_write(cpu, i, size, o.res);
	if (o.lazy)
		flags_set(cpu, (enum lazy_op)o.op, size, o.res, a, count);
	else
		flags_replace(cpu, changed, o.cfof);
}

static ALWAYS_INLINE void shift_rm(struct soft_cpu *cpu, struct insn *i, unsigned kind,
				   unsigned raw_count, bool imm_form)
{
	shift_rm_sized(cpu, i, kind, i->opsize, raw_count, imm_form);
}

/* One handler per form and operation (ModRM.reg), chosen by the opcode
 * table, so that each computes one operation. */
#define SHIFT_HANDLERS(kind, name)                                                                 \
	static void name##_imm(struct soft_cpu *cpu, struct insn *i) /* C0, C1 */                  \
	{                                                                                          \
		shift_rm(cpu, i, kind, (unsigned)(i->imm & 0xff), true);                           \
	}                                                                                          \
	static void name##_one(struct soft_cpu *cpu, struct insn *i) /* D0, D1 */                  \
	{                                                                                          \
		shift_rm(cpu, i, kind, 1, false);                                                  \
	}                                                                                          \
	static void name##_cl(struct soft_cpu *cpu, struct insn *i) /* D2, D3 */                   \
	{                                                                                          \
		shift_rm(cpu, i, kind, (unsigned)(cpu->s.gpr[GPR_RCX] & 0xff), false);             \
	}

SHIFT_HANDLERS(SH_ROL, rol)
SHIFT_HANDLERS(SH_ROR, ror)
SHIFT_HANDLERS(SH_RCL, rcl)
SHIFT_HANDLERS(SH_RCR, rcr)
SHIFT_HANDLERS(SH_SHL, shl)
SHIFT_HANDLERS(SH_SHR, shr)
SHIFT_HANDLERS(SH_SAL, sal)
SHIFT_HANDLERS(SH_SAR, sar)

/* ---- SHLD, SHRD ---- */

/* Word operands with counts of 17-31 have an undefined result; Intel
 * processors shift the 48-bit value dest:src:dest, which for counts up to
 * 16 is the architectural dest:src. */
static uint64_t double_shift(bool right, unsigned size, uint64_t dst, uint64_t src,
			     unsigned count, bool *cf)
{
	unsigned bits = size * 8;
	if (size == 2) {
		uint64_t v = (dst << 32) | (src << 16) | dst;
		if (right) {
			*cf = (v >> (count - 1)) & 1;
			return (v >> count) & 0xffff;
		}
		*cf = (v >> (48 - count)) & 1;
		return (v << count >> 32) & 0xffff;
	}
	if (right) {
		*cf = (dst >> (count - 1)) & 1;
		return ((dst >> count) | (src << (bits - count))) & size_mask(size);
	}
	*cf = (dst >> (bits - count)) & 1;
	return ((dst << count) | (src >> (bits - count))) & size_mask(size);
}

static void shxd(struct soft_cpu *cpu, struct insn *i, unsigned raw_count)
{
	unsigned size = i->opsize;
	unsigned count = raw_count & (unsigned)count_mask(size);
	bool right = i->opcode >= 0xac, cf;
	uint64_t dst = op_rm_read(cpu, i, size);
	uint64_t src = op_reg_read(cpu, i, size);
	if (count == 0) {
		op_rm_write(cpu, i, size, dst);
		return;
	}
	uint64_t res = double_shift(right, size, dst, src, count, &cf);
	op_rm_write(cpu, i, size, res);
	/* OF is defined for count 1 (sign change); for every count Intel
	 * sets that count-1 value. AF is undefined and cleared. */
	bool of = right ? (src & 1) ^ msb(dst, size) : msb(dst, size) ^ msb2(dst, size);
	flags_put(cpu, (flags_get(cpu) & ~FLAGS_ARITH) | szp_flags(res, size) |
			   flag_if(cf, FLAG_CF) | flag_if(of, FLAG_OF));
}

static void shxd_imm(struct soft_cpu *cpu, struct insn *i) /* 0F A4, 0F AC */
{
	shxd(cpu, i, (unsigned)(i->imm & 0xff));
}

static void shxd_cl(struct soft_cpu *cpu, struct insn *i) /* 0F A5, 0F AD */
{
	shxd(cpu, i, (unsigned)(cpu->s.gpr[GPR_RCX] & 0xff));
}

/* ---- BT, BTS, BTR, BTC ---- */

enum { BIT_TEST, BIT_SET, BIT_RESET, BIT_COMPLEMENT };

static uint64_t bit_modify(unsigned kind, uint64_t v, unsigned bit)
{
	switch (kind) {
	case BIT_SET: return v | (1ULL << bit);
	case BIT_RESET: return v & ~(1ULL << bit);
	case BIT_COMPLEMENT: return v ^ (1ULL << bit);
	default: return v;
	}
}

/* With a register bit offset and a memory operand, the offset is a signed
 * number of bits from the operand's address and may reach outside it
 * (SDM vol. 2 "BT", table 3-2): the operand-sized unit containing the bit
 * is accessed. Immediate offsets are taken modulo the operand width. */
static void bit_op(struct soft_cpu *cpu, struct insn *i, unsigned kind, uint64_t offset,
		   bool offset_is_reg)
{
	unsigned size = i->opsize, bits = size * 8;
	unsigned bit = (unsigned)(offset & (bits - 1));
	uint64_t v, nv;

	if (i->mod == 3) {
		v = reg_read(cpu, i->rm, size, i->rex != 0);
		nv = bit_modify(kind, v, bit);
		if (kind != BIT_TEST)
			reg_write(cpu, i->rm, size, nv, i->rex != 0);
	} else {
		uint64_t ea = insn_ea(cpu, i);
		if (offset_is_reg) {
			int64_t units = sign_extend(offset, size) >> __builtin_ctz(bits);
			ea = (ea + (uint64_t)units * size) & size_mask(i->addrsize);
		}
		v = seg_read(cpu, i->seg, ea, size);
		nv = bit_modify(kind, v, bit);
		if (kind != BIT_TEST)
			seg_write(cpu, i->seg, ea, size, nv);
	}
	/* CF is the bit; ZF is unchanged; OF/SF/AF/PF are undefined and Intel
	 * leaves them unchanged. */
	flags_replace(cpu, FLAG_CF, flag_if((v >> bit) & 1, FLAG_CF));
}

static void bt_reg(struct soft_cpu *cpu, struct insn *i) /* 0F A3, AB, B3, BB */
{
	unsigned kind = (i->opcode >> 3) & 3; /* A3→0, AB→1, B3→2, BB→3 */
	bit_op(cpu, i, kind, op_reg_read(cpu, i, i->opsize), true);
}

static void bt_imm(struct soft_cpu *cpu, struct insn *i) /* 0F BA /4-/7 */
{
	bit_op(cpu, i, (i->reg & 7) - 4, i->imm & 0xff, false);
}

/* ---- bit scans and counts ---- */

/* BSF/BSR: ZF tells whether the source was zero; then the destination is
 * left unchanged (not even zero-extended). CF/OF/SF/AF/PF are undefined:
 * Intel clears them except PF, the parity of the index (set for a zero
 * source). */
static void bit_scan(struct soft_cpu *cpu, struct insn *i) /* 0F BC, 0F BD */
{
	unsigned size = i->opsize;
	uint64_t src = op_rm_read(cpu, i, size);
	if (src == 0) {
		flags_replace(cpu, FLAGS_ARITH, FLAG_ZF | FLAG_PF);
		return;
	}
	unsigned idx = i->opcode == 0xbc ? (unsigned)__builtin_ctzll(src)
					 : 63u - (unsigned)__builtin_clzll(src);
	op_reg_write(cpu, i, size, idx);
	flags_replace(cpu, FLAGS_ARITH, szp_flags(idx, 1) & FLAG_PF);
}

/* TZCNT/LZCNT: CF = (source == 0), ZF = (result == 0); OF/SF/AF/PF are
 * undefined. */
static void bit_count_zeros(struct soft_cpu *cpu, struct insn *i) /* F3 0F BC, F3 0F BD */
{
	unsigned size = i->opsize, bits = size * 8;
	uint64_t src = op_rm_read(cpu, i, size);
	unsigned n;
	if (src == 0)
		n = bits;
	else if (i->opcode == 0xbc)
		n = (unsigned)__builtin_ctzll(src);
	else
		n = (unsigned)__builtin_clzll(src) - (64 - bits);
	op_reg_write(cpu, i, size, n);
	flags_replace(cpu, FLAGS_ARITH, flag_if(src == 0, FLAG_CF) | flag_if(n == 0, FLAG_ZF));
}

static void popcnt(struct soft_cpu *cpu, struct insn *i) /* F3 0F B8 */
{
	uint64_t src = op_rm_read(cpu, i, i->opsize);
	op_reg_write(cpu, i, i->opsize, (uint64_t)__builtin_popcountll(src));
	flags_replace(cpu, FLAGS_ARITH, flag_if(src == 0, FLAG_ZF));
}

static void bswap(struct soft_cpu *cpu, struct insn *i) /* 0F C8-CF */
{
	unsigned reg = (i->opcode & 7) | ((i->rex & 1) ? 8 : 0);
	uint64_t v = reg_read(cpu, reg, i->opsize, true);
	if (i->opsize == 8)
		v = __builtin_bswap64(v);
	else if (i->opsize == 4)
		v = __builtin_bswap32((uint32_t)v);
	else
		v = 0; /* undefined for 16-bit operands; Intel clears the word */
	reg_write(cpu, reg, i->opsize, v, true);
}

/* ---- XADD, CMPXCHG, CMPXCHG8B/16B ---- */

static void xadd(struct soft_cpu *cpu, struct insn *i) /* 0F C0, 0F C1 */
{
	unsigned size = i->opsize;
	uint64_t dst = op_rm_read(cpu, i, size);
	struct alu_result r = alu_compute(cpu, ALU_ADD, size, dst, op_reg_read(cpu, i, size));
	if (i->mod == 3) {
		/* SRC := DEST, then DEST := SUM: the sum wins when both name
		 * the same register. */
		op_reg_write(cpu, i, size, dst);
		op_rm_write(cpu, i, size, r.res);
	} else {
		op_rm_write(cpu, i, size, r.res);
		op_reg_write(cpu, i, size, dst);
	}
	alu_commit_flags(cpu, size, &r);
}

static void cmpxchg(struct soft_cpu *cpu, struct insn *i) /* 0F B0, 0F B1 */
{
	unsigned size = i->opsize;
	uint64_t dst = op_rm_read(cpu, i, size);
	uint64_t acc = reg_read(cpu, GPR_RAX, size, true);
	struct alu_result r = alu_compute(cpu, ALU_CMP, size, acc, dst);
	if (acc == dst) {
		op_rm_write(cpu, i, size, op_reg_read(cpu, i, size));
	} else {
		/* Memory always sees a write cycle; a register destination is
		 * left alone. */
		if (i->mod != 3)
			op_rm_write(cpu, i, size, dst);
		reg_write(cpu, GPR_RAX, size, dst, true);
	}
	alu_commit_flags(cpu, size, &r);
}

static void cmpxchg8b(struct soft_cpu *cpu, struct insn *i)
{
	uint64_t ea = insn_ea(cpu, i);
	uint64_t m = seg_read(cpu, i->seg, ea, 8);
	uint64_t cmp = (cpu->s.gpr[GPR_RDX] & 0xffffffffULL) << 32 |
		       (cpu->s.gpr[GPR_RAX] & 0xffffffffULL);
	bool equal = m == cmp;
	uint64_t nv = (cpu->s.gpr[GPR_RCX] & 0xffffffffULL) << 32 |
		      (cpu->s.gpr[GPR_RBX] & 0xffffffffULL);
	seg_write(cpu, i->seg, ea, 8, equal ? nv : m);
	if (!equal) {
		reg_write(cpu, GPR_RAX, 4, m & 0xffffffffULL, true);
		reg_write(cpu, GPR_RDX, 4, m >> 32, true);
	}
	flags_replace(cpu, FLAG_ZF, flag_if(equal, FLAG_ZF));
}

static void cmpxchg16b(struct soft_cpu *cpu, struct insn *i)
{
	uint64_t ea = insn_ea(cpu, i);
	uint64_t m[2], nv[2];
	if (seg_linear(cpu, i->seg, ea, 16, ACC_WRITE) & 15)
		soft_gp(cpu, 0);
	seg_read_bytes(cpu, i->seg, ea, m, sizeof(m));
	bool equal = m[0] == cpu->s.gpr[GPR_RAX] && m[1] == cpu->s.gpr[GPR_RDX];
	nv[0] = equal ? cpu->s.gpr[GPR_RBX] : m[0];
	nv[1] = equal ? cpu->s.gpr[GPR_RCX] : m[1];
	seg_write_bytes(cpu, i->seg, ea, nv, sizeof(nv));
	if (!equal) {
		cpu->s.gpr[GPR_RAX] = m[0];
		cpu->s.gpr[GPR_RDX] = m[1];
	}
	flags_replace(cpu, FLAG_ZF, flag_if(equal, FLAG_ZF));
}

static void cmpxchg_wide(struct soft_cpu *cpu, struct insn *i) /* 0F C7 /1 */
{
	if (i->opsize == 8)
		cmpxchg16b(cpu, i);
	else
		cmpxchg8b(cpu, i);
}

/* ---- sign extension of the accumulator ---- */

static void cbw(struct soft_cpu *cpu, struct insn *i) /* 98: CBW, CWDE, CDQE */
{
	unsigned half = i->opsize / 2;
	uint64_t v = (uint64_t)sign_extend(reg_read(cpu, GPR_RAX, half, true), half);
	reg_write(cpu, GPR_RAX, i->opsize, v, true);
}

static void cwd(struct soft_cpu *cpu, struct insn *i) /* 99: CWD, CDQ, CQO */
{
	bool neg = msb(reg_read(cpu, GPR_RAX, i->opsize, true), i->opsize);
	reg_write(cpu, GPR_RDX, i->opsize, neg ? ~0ULL : 0, true);
}

/* ---- conditions ---- */

static void setcc(struct soft_cpu *cpu, struct insn *i) /* 0F 90-9F */
{
	op_rm_write(cpu, i, 1, flags_cond_inline(cpu, i->opcode & 15));
}

static void cmovcc(struct soft_cpu *cpu, struct insn *i) /* 0F 40-4F */
{
	/* The source is read (and may fault) whatever the condition. */
	uint64_t src = op_rm_read(cpu, i, i->opsize);
	if (flags_cond_inline(cpu, i->opcode & 15))
		op_reg_write(cpu, i, i->opsize, src);
	else if (i->opsize == 4) /* a 32-bit destination is zero-extended regardless */
		op_reg_write(cpu, i, 4, op_reg_read(cpu, i, 4));
}

/* ---- flag instructions ---- */

#define AH_FLAGS (FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF | FLAG_CF)

static void lahf(struct soft_cpu *cpu, struct insn *i) /* 9F */
{
	(void)i;
	uint64_t ah = (flags_get(cpu) & AH_FLAGS) | RFLAGS_FIXED;
	cpu->s.gpr[GPR_RAX] = (cpu->s.gpr[GPR_RAX] & ~0xff00ULL) | (ah << 8);
}

static void sahf(struct soft_cpu *cpu, struct insn *i) /* 9E */
{
	(void)i;
	flags_replace(cpu, AH_FLAGS, (cpu->s.gpr[GPR_RAX] >> 8) & 0xff);
}

static void clc_stc_cmc(struct soft_cpu *cpu, struct insn *i) /* F8, F9, F5 */
{
	bool cf = i->opcode == 0xf9 || (i->opcode == 0xf5 && !flags_cf(cpu));
	flags_replace(cpu, FLAG_CF, flag_if(cf, FLAG_CF));
}

static void cld_std(struct soft_cpu *cpu, struct insn *i) /* FC, FD */
{
	/* DF is never lazy: cpu->s.rflags holds it in both flag modes. */
	if (i->opcode == 0xfd)
		cpu->s.rflags |= FLAG_DF;
	else
		cpu->s.rflags &= ~FLAG_DF;
}

/* ---- BCD adjustments (not in 64-bit mode) ---- */

static uint8_t reg_al(struct soft_cpu *cpu) { return cpu->s.gpr[GPR_RAX] & 0xff; }
static uint8_t reg_ah(struct soft_cpu *cpu) { return (cpu->s.gpr[GPR_RAX] >> 8) & 0xff; }

static void set_ax(struct soft_cpu *cpu, uint8_t al, uint8_t ah)
{
	reg_write(cpu, GPR_RAX, 2, (uint64_t)ah << 8 | al, true);
}

static bool flag_af(struct soft_cpu *cpu) { return flags_get(cpu) & FLAG_AF; }

static void daa_das(struct soft_cpu *cpu, struct insn *i) /* 27, 2F */
{
	bool sub = i->opcode == 0x2f;
	uint8_t old_al = reg_al(cpu), al = old_al;
	bool old_cf = flags_cf(cpu), cf = false, af = false;
	if ((al & 0x0f) > 9 || flag_af(cpu)) {
		cf = old_cf || (sub ? al < 6 : al > 0xf9);
		al = (uint8_t)(sub ? al - 6 : al + 6);
		af = true;
	}
	if (old_al > 0x99 || old_cf) {
		al = (uint8_t)(sub ? al - 0x60 : al + 0x60);
		cf = true;
	} else if (!sub) {
		cf = false;
	}
	set_ax(cpu, al, reg_ah(cpu));
	/* OF is undefined; Intel clears it. */
	flags_replace(cpu, FLAGS_ARITH,
		      szp_flags(al, 1) | flag_if(cf, FLAG_CF) | flag_if(af, FLAG_AF));
}

static void aaa_aas(struct soft_cpu *cpu, struct insn *i) /* 37, 3F */
{
	bool sub = i->opcode == 0x3f;
	uint16_t ax = (uint16_t)cpu->s.gpr[GPR_RAX];
	bool adjust = (ax & 0x0f) > 9 || flag_af(cpu);
	if (adjust && sub) /* AX := AX - 6 (borrowing from AH), then AH := AH - 1 */
		ax = (uint16_t)(ax - 6 - 0x100);
	else if (adjust)
		ax = (uint16_t)(ax + 0x106);
	set_ax(cpu, ax & 0x0f, (uint8_t)(ax >> 8));
	/* OF/SF/ZF/PF are undefined; Intel sets SF/ZF/PF from the final AL
	 * (so SF is 0) and clears OF. */
	flags_replace(cpu, FLAGS_ARITH,
		      szp_flags(ax & 0x0f, 1) | (adjust ? FLAG_AF | FLAG_CF : 0));
}

static void aam(struct soft_cpu *cpu, struct insn *i) /* D4 ib */
{
	uint8_t base = (uint8_t)i->imm, al = reg_al(cpu);
	if (base == 0)
		soft_raise_noerr(cpu, EXC_DE);
	set_ax(cpu, al % base, al / base);
	/* OF/AF/CF are undefined; Intel clears them. */
	flags_replace(cpu, FLAGS_ARITH, szp_flags(al % base, 1));
}

/* AL := AL + AH * imm8, AH := 0. OF/AF/CF are undefined; Intel sets all
 * flags as for the byte addition AL + (AH * imm8). */
static void aad(struct soft_cpu *cpu, struct insn *i) /* D5 ib */
{
	uint8_t addend = (uint8_t)(reg_ah(cpu) * (uint8_t)i->imm);
	struct alu_result r = alu_compute(cpu, ALU_ADD, 1, reg_al(cpu), addend);
	set_ax(cpu, (uint8_t)r.res, 0);
	alu_commit_flags(cpu, 1, &r);
}

/* ---- fast forms ----
 * Decode picks these (soft_alu_fast) for the commonest instructions of
 * compiled code: 32- and 64-bit ALU operations, TEST and shifts. The
 * operand size and the register-or-memory choice are constants in each,
 * so register accesses become plain loads and stores (a 32-bit write
 * zero-extends, a 64-bit one replaces: no sub-register cases) and the
 * masks fold away. Semantics are those of the generic handlers above. */

static ALWAYS_INLINE uint64_t fast_rm_read(struct soft_cpu *cpu, struct insn *i, unsigned size,
					   bool reg)
{
	if (reg)
		return cpu->s.gpr[i->rm] & size_mask(size);
	return op_rm_read_mem(cpu, i, size);
}

static ALWAYS_INLINE void fast_rm_write(struct soft_cpu *cpu, struct insn *i, unsigned size,
					bool reg, uint64_t v)
{
	if (reg)
		cpu->s.gpr[i->rm] = v & size_mask(size);
	else
		op_rm_write_mem(cpu, i, size, v);
}

static ALWAYS_INLINE uint64_t fast_reg_read(struct soft_cpu *cpu, struct insn *i, unsigned size)
{
	return cpu->s.gpr[i->reg] & size_mask(size);
}

static ALWAYS_INLINE void fast_alu_rm_reg(struct soft_cpu *cpu, struct insn *i, unsigned kind,
					  unsigned size, bool reg)
{
	uint64_t a = fast_rm_read(cpu, i, size, reg);
	struct alu_result r = alu_compute(cpu, kind, size, a, fast_reg_read(cpu, i, size));
	if (kind != ALU_CMP)
		fast_rm_write(cpu, i, size, reg, r.res);
	alu_commit_flags(cpu, size, &r);
}

static ALWAYS_INLINE void fast_alu_reg_rm(struct soft_cpu *cpu, struct insn *i, unsigned kind,
					  unsigned size, bool reg)
{
	uint64_t b = fast_rm_read(cpu, i, size, reg);
	struct alu_result r = alu_compute(cpu, kind, size, fast_reg_read(cpu, i, size), b);
	if (kind != ALU_CMP)
		cpu->s.gpr[i->reg] = r.res & size_mask(size);
	alu_commit_flags(cpu, size, &r);
}

static ALWAYS_INLINE void fast_alu_rm_imm(struct soft_cpu *cpu, struct insn *i, unsigned kind,
					  unsigned size, bool reg)
{
	uint64_t imm = i->opcode == 0x83 ? (uint64_t)sign_extend(i->imm, 1) : i->imm;
	uint64_t a = fast_rm_read(cpu, i, size, reg);
	struct alu_result r = alu_compute(cpu, kind, size, a, imm);
	if (kind != ALU_CMP)
		fast_rm_write(cpu, i, size, reg, r.res);
	alu_commit_flags(cpu, size, &r);
}

static ALWAYS_INLINE void fast_test(struct soft_cpu *cpu, struct insn *i, unsigned size, bool reg)
{
	uint64_t a = fast_rm_read(cpu, i, size, reg);
	logic_flags(cpu, size, a & fast_reg_read(cpu, i, size));
}


#define FAST_ALU(kind, name)                                                                       \
	static ALWAYS_INLINE void name##_fast_rm_reg(struct soft_cpu *cpu, struct insn *i,          \
						     unsigned size, bool reg)                      \
	{                                                                                          \
		fast_alu_rm_reg(cpu, i, kind, size, reg);                                          \
	}                                                                                          \
	static ALWAYS_INLINE void name##_fast_reg_rm(struct soft_cpu *cpu, struct insn *i,          \
						     unsigned size, bool reg)                      \
	{                                                                                          \
		fast_alu_reg_rm(cpu, i, kind, size, reg);                                          \
	}                                                                                          \
	static ALWAYS_INLINE void name##_fast_rm_imm(struct soft_cpu *cpu, struct insn *i,          \
						     unsigned size, bool reg)                      \
	{                                                                                          \
		fast_alu_rm_imm(cpu, i, kind, size, reg);                                          \
	}                                                                                          \
	FAST_VARIANTS(name##_frm_reg, name##_fast_rm_reg)                                          \
	FAST_VARIANTS(name##_freg_rm, name##_fast_reg_rm)                                          \
	FAST_VARIANTS(name##_frm_imm, name##_fast_rm_imm)

FAST_ALU(ALU_ADD, add)
FAST_ALU(ALU_OR, or)
FAST_ALU(ALU_ADC, adc)
FAST_ALU(ALU_SBB, sbb)
FAST_ALU(ALU_AND, and)
FAST_ALU(ALU_SUB, sub)
FAST_ALU(ALU_XOR, xor)
FAST_ALU(ALU_CMP, cmp)
FAST_VARIANTS(test_f, fast_test)

/* [kind][size 8][register form] */
#define FAST_ALU_TABLE(form)                                                                       \
	{FAST_TABLE(add_##form), FAST_TABLE(or_##form), FAST_TABLE(adc_##form),                     \
	 FAST_TABLE(sbb_##form), FAST_TABLE(and_##form), FAST_TABLE(sub_##form),                    \
	 FAST_TABLE(xor_##form), FAST_TABLE(cmp_##form)}
static const soft_exec_fn fast_rm_reg[8][2][2] = FAST_ALU_TABLE(frm_reg);
static const soft_exec_fn fast_reg_rm[8][2][2] = FAST_ALU_TABLE(freg_rm);
static const soft_exec_fn fast_rm_imm[8][2][2] = FAST_ALU_TABLE(frm_imm);
static const soft_exec_fn fast_test_rm_reg[2][2] = FAST_TABLE(test_f);

/* IMUL r, r/m (0F AF) and IMUL r, r/m, imm (69, 6B): the signed product
 * in 64-bit arithmetic, CF = OF = it does not fit the destination. */
static ALWAYS_INLINE void fast_imul(struct soft_cpu *cpu, struct insn *i, unsigned size, bool reg,
				    unsigned form)
{
	uint64_t src = fast_rm_read(cpu, i, size, reg);
	int64_t a, b, p;
	bool overflow;
	if (form == 0) {
		a = sign_extend(fast_reg_read(cpu, i, size), size);
		b = sign_extend(src, size);
	} else {
		a = sign_extend(src, size);
		b = form == 2 ? sign_extend(i->imm, 1) : sign_extend(i->imm, size);
	}
	if (size == 8) {
		overflow = __builtin_mul_overflow(a, b, &p);
	} else {
		p = a * b; /* 32 x 32 bits: exact in 64 */
		overflow = p != (int64_t)(int32_t)p;
	}
	uint64_t lo = (uint64_t)p & size_mask(size);
	cpu->s.gpr[i->reg] = lo;
	mul_flags(cpu, LF_IMUL, size, lo, overflow);
}

static ALWAYS_INLINE void imul_f0(struct soft_cpu *cpu, struct insn *i, unsigned size, bool reg)
{
	fast_imul(cpu, i, size, reg, 0);
}
static ALWAYS_INLINE void imul_f1(struct soft_cpu *cpu, struct insn *i, unsigned size, bool reg)
{
	fast_imul(cpu, i, size, reg, 1);
}
static ALWAYS_INLINE void imul_f2(struct soft_cpu *cpu, struct insn *i, unsigned size, bool reg)
{
	fast_imul(cpu, i, size, reg, 2);
}
FAST_VARIANTS(imul_fast_0faf, imul_f0)
FAST_VARIANTS(imul_fast_69, imul_f1)
FAST_VARIANTS(imul_fast_6b, imul_f2)
static const soft_exec_fn fast_imul_tab[3][2][2] = {
    FAST_TABLE(imul_fast_0faf), FAST_TABLE(imul_fast_69), FAST_TABLE(imul_fast_6b)};

/* Shifts by an immediate, by 1 and by CL: SHL, SHR, SAR (the commonest). */
#define FAST_SHIFT(kind, name)                                                                     \
	static ALWAYS_INLINE void name##_fimm(struct soft_cpu *cpu, struct insn *i, unsigned size,  \
					      bool reg)                                            \
	{                                                                                          \
		(void)reg;                                                                         \
		shift_rm_sized(cpu, i, kind, size, (unsigned)(i->imm & 0xff), true);               \
	}                                                                                          \
	static ALWAYS_INLINE void name##_fone(struct soft_cpu *cpu, struct insn *i, unsigned size,  \
					      bool reg)                                            \
	{                                                                                          \
		(void)reg;                                                                         \
		shift_rm_sized(cpu, i, kind, size, 1, false);                                      \
	}                                                                                          \
	static ALWAYS_INLINE void name##_fcl(struct soft_cpu *cpu, struct insn *i, unsigned size,   \
					     bool reg)                                             \
	{                                                                                          \
		(void)reg;                                                                         \
		shift_rm_sized(cpu, i, kind, size, (unsigned)(cpu->s.gpr[GPR_RCX] & 0xff), false); \
	}                                                                                          \
	FAST_VARIANTS(name##_fast_imm, name##_fimm)                                                \
	FAST_VARIANTS(name##_fast_one, name##_fone)                                                \
	FAST_VARIANTS(name##_fast_cl, name##_fcl)

FAST_SHIFT(SH_SHL, shl)
FAST_SHIFT(SH_SHR, shr)
FAST_SHIFT(SH_SAR, sar)

/* [form: C1, D1, D3][SHL, SHR, SAR][size 8][register form] */
static const soft_exec_fn fast_shift[3][3][2][2] = {
    {FAST_TABLE(shl_fast_imm), FAST_TABLE(shr_fast_imm), FAST_TABLE(sar_fast_imm)},
    {FAST_TABLE(shl_fast_one), FAST_TABLE(shr_fast_one), FAST_TABLE(sar_fast_one)},
    {FAST_TABLE(shl_fast_cl), FAST_TABLE(shr_fast_cl), FAST_TABLE(sar_fast_cl)},
};

soft_exec_fn soft_alu_fast(const struct insn *i)
{
	if (!i->has_modrm || (i->opsize != 4 && i->opsize != 8))
		return NULL;
	unsigned op = i->opcode, s = i->opsize == 8, r = i->mod == 3;
	if (i->map == OPMAP_0F && op == 0xaf)
		return fast_imul_tab[0][s][r];
	if (i->map != OPMAP_1B)
		return NULL;
	if (op == 0x69 || op == 0x6b)
		return fast_imul_tab[op == 0x69 ? 1 : 2][s][r];
	if (op < 0x40 && (op & 7) == 1)
		return fast_rm_reg[op >> 3][s][r];
	if (op < 0x40 && (op & 7) == 3)
		return fast_reg_rm[op >> 3][s][r];
	if (op == 0x81 || op == 0x83)
		return fast_rm_imm[i->reg & 7][s][r];
	if (op == 0x85)
		return fast_test_rm_reg[s][r];
	unsigned kind = i->reg & 7;
	int sh = kind == SH_SHL ? 0 : kind == SH_SHR ? 1 : kind == SH_SAR ? 2 : -1;
	if (sh >= 0 && (op == 0xc1 || op == 0xd1 || op == 0xd3))
		return fast_shift[op == 0xc1 ? 0 : op == 0xd1 ? 1 : 2][sh][s][r];
	return NULL;
}

/* ---- opcode table ---- */

#define M OPF_MODRM
#define B OPF_BYTE
#define L OPF_LOCKOK
#define I8 OPF_IMM8
#define IZ OPF_IMMZ

#define ALU_BLOCK(base, name, lock, fn)                                               \
	{OPMAP_1B, (base) + 0, -1, -1, PFX_ANY, M | B | (lock), name, fn##_rm_reg},    \
	{OPMAP_1B, (base) + 1, -1, -1, PFX_ANY, M | (lock), name, fn##_rm_reg},        \
	{OPMAP_1B, (base) + 2, -1, -1, PFX_ANY, M | B, name, fn##_reg_rm},             \
	{OPMAP_1B, (base) + 3, -1, -1, PFX_ANY, M, name, fn##_reg_rm},                 \
	{OPMAP_1B, (base) + 4, -1, -1, PFX_ANY, B | I8, name, fn##_acc_imm},           \
	{OPMAP_1B, (base) + 5, -1, -1, PFX_ANY, IZ, name, fn##_acc_imm}

#define GRP1_ENTRY(op, r, name, f, fn) {OPMAP_1B, op, r, -1, PFX_ANY, M | (f), name, fn##_rm_imm}
#define GRP1(op, f)                                                                   \
	GRP1_ENTRY(op, 0, "add", (f) | L, add), GRP1_ENTRY(op, 1, "or", (f) | L, or),  \
	GRP1_ENTRY(op, 2, "adc", (f) | L, adc), GRP1_ENTRY(op, 3, "sbb", (f) | L, sbb), \
	GRP1_ENTRY(op, 4, "and", (f) | L, and), GRP1_ENTRY(op, 5, "sub", (f) | L, sub), \
	GRP1_ENTRY(op, 6, "xor", (f) | L, xor), GRP1_ENTRY(op, 7, "cmp", (f), cmp)

#define GRP3(op, f, immf)                                                             \
	{OPMAP_1B, op, 0, -1, PFX_ANY, M | (f) | (immf), "test", test_rm_imm},         \
	{OPMAP_1B, op, 1, -1, PFX_ANY, M | (f) | (immf), "test", test_rm_imm},         \
	{OPMAP_1B, op, 2, -1, PFX_ANY, M | (f) | L, "not", not_rm},                    \
	{OPMAP_1B, op, 3, -1, PFX_ANY, M | (f) | L, "neg", neg_rm},                    \
	{OPMAP_1B, op, 4, -1, PFX_ANY, M | (f), "mul", mul_rm},                        \
	{OPMAP_1B, op, 5, -1, PFX_ANY, M | (f), "imul", imul_rm},                      \
	{OPMAP_1B, op, 6, -1, PFX_ANY, M | (f), "div", div_rm},                        \
	{OPMAP_1B, op, 7, -1, PFX_ANY, M | (f), "idiv", idiv_rm}

#define SHIFT_ENTRY(op, r, f, name, fn) {OPMAP_1B, op, r, -1, PFX_ANY, f, name, fn}
#define SHIFT_GRP(op, f, form)                                                        \
	SHIFT_ENTRY(op, 0, f, "rol", rol_##form), SHIFT_ENTRY(op, 1, f, "ror", ror_##form), \
	SHIFT_ENTRY(op, 2, f, "rcl", rcl_##form), SHIFT_ENTRY(op, 3, f, "rcr", rcr_##form), \
	SHIFT_ENTRY(op, 4, f, "shl", shl_##form), SHIFT_ENTRY(op, 5, f, "shr", shr_##form), \
	SHIFT_ENTRY(op, 6, f, "sal", sal_##form), SHIFT_ENTRY(op, 7, f, "sar", sar_##form)

#define INCDEC_REG(op, name) {OPMAP_1B, op, -1, -1, PFX_ANY, OPF_NO64, name, incdec_reg}
#define OP0F(op, f, name, fn) {OPMAP_0F, op, -1, -1, PFX_ANY, f, name, fn}
#define CC16(map, base, f, name, fn)                                                  \
	{map, (base) + 0, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 1, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 2, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 3, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 4, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 5, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 6, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 7, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 8, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 9, -1, -1, PFX_ANY, f, name, fn},                               \
	{map, (base) + 10, -1, -1, PFX_ANY, f, name, fn},                              \
	{map, (base) + 11, -1, -1, PFX_ANY, f, name, fn},                              \
	{map, (base) + 12, -1, -1, PFX_ANY, f, name, fn},                              \
	{map, (base) + 13, -1, -1, PFX_ANY, f, name, fn},                              \
	{map, (base) + 14, -1, -1, PFX_ANY, f, name, fn},                              \
	{map, (base) + 15, -1, -1, PFX_ANY, f, name, fn}

const struct opdef soft_ops_alu[] = {
    ALU_BLOCK(0x00, "add", L, add),
    ALU_BLOCK(0x08, "or", L, or),
    ALU_BLOCK(0x10, "adc", L, adc),
    ALU_BLOCK(0x18, "sbb", L, sbb),
    ALU_BLOCK(0x20, "and", L, and),
    ALU_BLOCK(0x28, "sub", L, sub),
    ALU_BLOCK(0x30, "xor", L, xor),
    ALU_BLOCK(0x38, "cmp", 0, cmp),
    GRP1(0x80, B | I8),
    GRP1(0x81, IZ),
    GRP1(0x82, B | I8 | OPF_NO64),
    GRP1(0x83, I8),
    {OPMAP_1B, 0x84, -1, -1, PFX_ANY, M | B, "test", test_rm_reg},
    {OPMAP_1B, 0x85, -1, -1, PFX_ANY, M, "test", test_rm_reg},
    {OPMAP_1B, 0xa8, -1, -1, PFX_ANY, B | I8, "test", test_acc_imm},
    {OPMAP_1B, 0xa9, -1, -1, PFX_ANY, IZ, "test", test_acc_imm},
    GRP3(0xf6, B, I8),
    GRP3(0xf7, 0, IZ),
    {OPMAP_1B, 0xfe, 0, -1, PFX_ANY, M | B | L, "inc", incdec_rm},
    {OPMAP_1B, 0xfe, 1, -1, PFX_ANY, M | B | L, "dec", incdec_rm},
    {OPMAP_1B, 0xff, 0, -1, PFX_ANY, M | L, "inc", incdec_rm},
    {OPMAP_1B, 0xff, 1, -1, PFX_ANY, M | L, "dec", incdec_rm},
    INCDEC_REG(0x40, "inc"), INCDEC_REG(0x41, "inc"), INCDEC_REG(0x42, "inc"),
    INCDEC_REG(0x43, "inc"), INCDEC_REG(0x44, "inc"), INCDEC_REG(0x45, "inc"),
    INCDEC_REG(0x46, "inc"), INCDEC_REG(0x47, "inc"), INCDEC_REG(0x48, "dec"),
    INCDEC_REG(0x49, "dec"), INCDEC_REG(0x4a, "dec"), INCDEC_REG(0x4b, "dec"),
    INCDEC_REG(0x4c, "dec"), INCDEC_REG(0x4d, "dec"), INCDEC_REG(0x4e, "dec"),
    INCDEC_REG(0x4f, "dec"),
    {OPMAP_1B, 0x69, -1, -1, PFX_ANY, M | IZ, "imul", imul_reg_rm_imm},
    {OPMAP_1B, 0x6b, -1, -1, PFX_ANY, M | I8, "imul", imul_reg_rm_imm},
    OP0F(0xaf, M, "imul", imul_reg_rm),
    SHIFT_GRP(0xc0, M | B | I8 | OPF_RMW, imm),
    SHIFT_GRP(0xc1, M | I8 | OPF_RMW, imm),
    SHIFT_GRP(0xd0, M | B | OPF_RMW, one),
    SHIFT_GRP(0xd1, M | OPF_RMW, one),
    SHIFT_GRP(0xd2, M | B | OPF_RMW, cl),
    SHIFT_GRP(0xd3, M | OPF_RMW, cl),
    OP0F(0xa4, M | I8 | OPF_RMW, "shld", shxd_imm),
    OP0F(0xa5, M | OPF_RMW, "shld", shxd_cl),
    OP0F(0xac, M | I8 | OPF_RMW, "shrd", shxd_imm),
    OP0F(0xad, M | OPF_RMW, "shrd", shxd_cl),
    OP0F(0xa3, M, "bt", bt_reg),
    OP0F(0xab, M | L, "bts", bt_reg),
    OP0F(0xb3, M | L, "btr", bt_reg),
    OP0F(0xbb, M | L, "btc", bt_reg),
    {OPMAP_0F, 0xba, 4, -1, PFX_ANY, M | I8, "bt", bt_imm},
    {OPMAP_0F, 0xba, 5, -1, PFX_ANY, M | I8 | L, "bts", bt_imm},
    {OPMAP_0F, 0xba, 6, -1, PFX_ANY, M | I8 | L, "btr", bt_imm},
    {OPMAP_0F, 0xba, 7, -1, PFX_ANY, M | I8 | L, "btc", bt_imm},
    OP0F(0xbc, M, "bsf", bit_scan),
    OP0F(0xbd, M, "bsr", bit_scan),
    {OPMAP_0F, 0xbc, -1, -1, PFX_F3, M, "tzcnt", bit_count_zeros},
    {OPMAP_0F, 0xbd, -1, -1, PFX_F3, M, "lzcnt", bit_count_zeros},
    {OPMAP_0F, 0xb8, -1, -1, PFX_F3, M, "popcnt", popcnt},
    OP0F(0xc8, 0, "bswap", bswap), OP0F(0xc9, 0, "bswap", bswap),
    OP0F(0xca, 0, "bswap", bswap), OP0F(0xcb, 0, "bswap", bswap),
    OP0F(0xcc, 0, "bswap", bswap), OP0F(0xcd, 0, "bswap", bswap),
    OP0F(0xce, 0, "bswap", bswap), OP0F(0xcf, 0, "bswap", bswap),
    OP0F(0xc0, M | B | L, "xadd", xadd),
    OP0F(0xc1, M | L, "xadd", xadd),
    OP0F(0xb0, M | B | L, "cmpxchg", cmpxchg),
    OP0F(0xb1, M | L, "cmpxchg", cmpxchg),
    {OPMAP_0F, 0xc7, 1, -1, PFX_ANY, M | OPF_MODMEM | L, "cmpxchg8b", cmpxchg_wide},
    {OPMAP_1B, 0x98, -1, -1, PFX_ANY, 0, "cbw", cbw},
    {OPMAP_1B, 0x99, -1, -1, PFX_ANY, 0, "cwd", cwd},
    CC16(OPMAP_0F, 0x90, M | B, "setcc", setcc),
    CC16(OPMAP_0F, 0x40, M, "cmovcc", cmovcc),
    {OPMAP_1B, 0x9f, -1, -1, PFX_ANY, 0, "lahf", lahf},
    {OPMAP_1B, 0x9e, -1, -1, PFX_ANY, 0, "sahf", sahf},
    {OPMAP_1B, 0xf8, -1, -1, PFX_ANY, 0, "clc", clc_stc_cmc},
    {OPMAP_1B, 0xf9, -1, -1, PFX_ANY, 0, "stc", clc_stc_cmc},
    {OPMAP_1B, 0xf5, -1, -1, PFX_ANY, 0, "cmc", clc_stc_cmc},
    {OPMAP_1B, 0xfc, -1, -1, PFX_ANY, 0, "cld", cld_std},
    {OPMAP_1B, 0xfd, -1, -1, PFX_ANY, 0, "std", cld_std},
    {OPMAP_1B, 0x27, -1, -1, PFX_ANY, OPF_NO64, "daa", daa_das},
    {OPMAP_1B, 0x2f, -1, -1, PFX_ANY, OPF_NO64, "das", daa_das},
    {OPMAP_1B, 0x37, -1, -1, PFX_ANY, OPF_NO64, "aaa", aaa_aas},
    {OPMAP_1B, 0x3f, -1, -1, PFX_ANY, OPF_NO64, "aas", aaa_aas},
    {OPMAP_1B, 0xd4, -1, -1, PFX_ANY, I8 | OPF_NO64, "aam", aam},
    {OPMAP_1B, 0xd5, -1, -1, PFX_ANY, I8 | OPF_NO64, "aad", aad},
    OPDEF_END,
};
