/* x86-64 instruction encoder (Intel SDM vol. 2 ch. 2 and appendices A, B).
 *
 * Every instruction is assembled into a small local buffer by one of two
 * encoders: insn_modrm() for the ModRM forms and insn_opreg() for the
 * forms with the register in the low opcode bits (PUSH, BSWAP, MOV r,imm).
 * insn_finish() then fills a pending RIP-relative displacement, which
 * depends on the instruction's length and execute address, and copies the
 * instruction out whole or not at all. */
#include "engine/soft/jit/emit.h"

#include <errno.h>
#include <string.h>

/* Prefix and operand flags of one instruction. */
enum {
	F_66 = 1 << 0, /* operand-size prefix: 16-bit operands, or SSE's mandatory 66 */
	F_F2 = 1 << 1, /* mandatory prefixes of SSE instructions */
	F_F3 = 1 << 2,
	F_W = 1 << 3, /* REX.W: 64-bit operands */
	F_LOCK = 1 << 4,
	F_BREG = 1 << 5, /* ModRM.reg names a byte register */
	F_BRM = 1 << 6,  /* ModRM.rm or the opcode register names a byte register */
};

struct insn_buf {
	uint8_t b[EMIT_MAX_INSN];
	unsigned n;
	int rip_at; /* offset of a RIP-relative disp32 still to compute, or -1 */
	uintptr_t rip_target;
	bool bad;
};

/* An r/m operand: a register or memory. */
static unsigned sse_prefix_flags(uint8_t pfx);

struct rm {
	bool mem;
	int reg;
	struct hmem m;
};

static struct rm rm_reg(int r) { return (struct rm){.reg = r}; }
static struct rm rm_mem(struct hmem m) { return (struct rm){.mem = true, .m = m}; }

static bool is_reg(int r) { return r >= 0 && r <= 15; }
static bool fits8(int64_t v) { return v >= -128 && v <= 127; }
static bool fits32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

static void put8(struct insn_buf *x, unsigned v)
{
	if (x->n >= sizeof(x->b)) {
		x->bad = true;
		return;
	}
	x->b[x->n++] = (uint8_t)v;
}

static void put_le(struct insn_buf *x, uint64_t v, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		put8(x, (unsigned)(v >> (8 * i)) & 0xff);
}

/* Opcodes are written as one number: 0x0FAF is the two bytes 0F AF. */
static void put_opcode(struct insn_buf *x, uint32_t opc)
{
	if (opc > 0xffff)
		put8(x, opc >> 16);
	if (opc > 0xff)
		put8(x, (opc >> 8) & 0xff);
	put8(x, opc & 0xff);
}

static void write_le32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void emit_init(struct emit *e, void *buf, size_t cap, uintptr_t exec)
{
	e->start = e->p = buf;
	e->end = e->start + cap;
	e->exec = exec ? exec : (uintptr_t)buf;
	e->overflow = false;
	e->invalid = false;
}

/* After the first failure nothing more is written, so the buffer holds
 * whole instructions up to the failure and emit_offset() stays there. */
void emit_bytes(struct emit *e, const void *bytes, size_t n)
{
	if (!emit_ok(e))
		return;
	if (n > (size_t)(e->end - e->p)) {
		e->overflow = true;
		return;
	}
	memcpy(e->p, bytes, n);
	e->p += n;
}

static void insn_finish(struct emit *e, struct insn_buf *x)
{
	if (x->bad) {
		e->invalid = true;
		return;
	}
	if (x->rip_at >= 0) {
		/* SDM vol. 2 §2.2.1.6: relative to the next instruction's RIP. */
		int64_t d = (int64_t)(x->rip_target - (emit_here(e) + x->n));
		if (!fits32(d)) {
			e->invalid = true;
			return;
		}
		write_le32(x->b + x->rip_at, (uint32_t)d);
	}
	emit_bytes(e, x->b, x->n);
}

static void insn_start(struct insn_buf *x)
{
	x->n = 0;
	x->rip_at = -1;
	x->bad = false;
}

/* Legacy prefixes then REX (SDM vol. 2 §2.1.1, §2.2.1: REX comes last,
 * right before the opcode). A REX prefix without W/R/X/B is still needed
 * to name SPL, BPL, SIL, DIL as byte registers 4-7 (§2.2.1.2). */
static void put_prefixes(struct insn_buf *x, unsigned f, unsigned rex_rxb, bool byte_reg_4_7)
{
	if (f & F_LOCK)
		put8(x, 0xf0);
	if (f & F_66)
		put8(x, 0x66);
	if (f & F_F2)
		put8(x, 0xf2);
	if (f & F_F3)
		put8(x, 0xf3);
	unsigned rex = rex_rxb | ((f & F_W) ? 8 : 0);
	if (rex || byte_reg_4_7)
		put8(x, 0x40 | rex);
}

static unsigned scale_bits(unsigned scale)
{
	switch (scale) {
	case 1: return 0;
	case 2: return 1;
	case 4: return 2;
	case 8: return 3;
	}
	return 4;
}

static bool mem_valid(const struct hmem *m)
{
	if (m->base == HMEM_RIP)
		return m->index == HREG_NONE;
	if (m->base != HREG_NONE && !is_reg(m->base))
		return false;
	if (m->index == HREG_NONE)
		return true;
	/* Index 100b without REX.X means "no index" (SDM vol. 2 table 2-3). */
	return is_reg(m->index) && m->index != H_RSP && scale_bits(m->scale) < 4;
}

/* ModRM, SIB and displacement of a memory operand (SDM vol. 2 §2.1.5,
 * tables 2-2 and 2-3; §2.2.1.6 for RIP-relative in 64-bit mode). */
static void put_mem(struct insn_buf *x, unsigned reg, const struct hmem *m)
{
	unsigned r = (reg & 7) << 3;
	if (m->base == HMEM_RIP) {
		put8(x, 0x05 | r);
		x->rip_at = (int)x->n;
		x->rip_target = m->target;
		put_le(x, 0, 4);
		return;
	}
	bool has_index = m->index != HREG_NONE;
	unsigned sib_index = has_index ? (unsigned)(m->index & 7) : 4;
	unsigned ss = has_index ? scale_bits(m->scale) : 0;
	if (m->base == HREG_NONE) {
		/* mod=00, SIB base=101: disp32 with no base. */
		put8(x, 0x04 | r);
		put8(x, ss << 6 | sib_index << 3 | 5);
		put_le(x, (uint32_t)m->disp, 4);
		return;
	}
	unsigned b = m->base & 7;
	/* mod=00 with base 101 (RBP, R13) means disp32/RIP, so those bases
	 * always carry a displacement. */
	unsigned mod = (m->disp == 0 && b != 5) ? 0 : fits8(m->disp) ? 1 : 2;
	if (has_index || b == 4) { /* base 100 (RSP, R12) always needs a SIB */
		put8(x, mod << 6 | r | 4);
		put8(x, ss << 6 | sib_index << 3 | b);
	} else {
		put8(x, mod << 6 | r | b);
	}
	if (mod == 1)
		put8(x, (uint8_t)m->disp);
	else if (mod == 2)
		put_le(x, (uint32_t)m->disp, 4);
}

/* opc ModRM(reg, rm) [imm]: reg is a register or a /digit. */
static void insn_modrm(struct emit *e, unsigned f, uint32_t opc, int reg, struct rm rm,
		       unsigned imm_len, uint64_t imm)
{
	struct insn_buf x;
	insn_start(&x);
	if (!is_reg(reg) || (rm.mem ? !mem_valid(&rm.m) : !is_reg(rm.reg))) {
		e->invalid = true;
		return;
	}
	unsigned rex = (reg & 8) ? 4 : 0;
	bool byte47 = (f & F_BREG) && reg >= 4 && reg <= 7;
	if (rm.mem) {
		if (rm.m.index >= 8)
			rex |= 2;
		if (rm.m.base >= 8)
			rex |= 1;
	} else {
		if (rm.reg & 8)
			rex |= 1;
		byte47 |= (f & F_BRM) && rm.reg >= 4 && rm.reg <= 7;
	}
	put_prefixes(&x, f, rex, byte47);
	put_opcode(&x, opc);
	if (rm.mem)
		put_mem(&x, (unsigned)reg, &rm.m);
	else
		put8(&x, 0xc0 | (reg & 7) << 3 | (rm.reg & 7));
	put_le(&x, imm, imm_len);
	insn_finish(e, &x);
}

/* opc+reg [imm] (SDM vol. 2 §2.2.1.5: REX.B extends the opcode register). */
static void insn_opreg(struct emit *e, unsigned f, uint32_t opc, int reg, unsigned imm_len,
		       uint64_t imm)
{
	struct insn_buf x;
	insn_start(&x);
	if (!is_reg(reg)) {
		e->invalid = true;
		return;
	}
	put_prefixes(&x, f, (reg & 8) ? 1 : 0, (f & F_BRM) && reg >= 4 && reg <= 7);
	put_opcode(&x, opc + (reg & 7));
	put_le(&x, imm, imm_len);
	insn_finish(e, &x);
}

static void insn_plain(struct emit *e, uint32_t opc) { insn_opreg(e, 0, opc, 0, 0, 0); }

/* Prefix flags of an operand size, or -1. Byte operations name byte
 * registers in r/m and, when `reg_is_reg`, in ModRM.reg too. */
static int size_flags(unsigned sz, bool reg_is_reg)
{
	switch (sz) {
	case 1: return F_BRM | (reg_is_reg ? F_BREG : 0);
	case 2: return F_66;
	case 4: return 0;
	case 8: return F_W;
	}
	return -1;
}

/* Sizes 2, 4 and 8 only. */
static int size_flags_wide(unsigned sz) { return sz == 1 ? -1 : size_flags(sz, false); }

/* The byte form of an opcode pair is the full form minus one (the w bit,
 * SDM vol. 2 appendix B.1.4.3). */
static uint32_t sized_opcode(uint32_t opc, unsigned sz) { return sz == 1 ? opc - 1 : opc; }

/* Immediates are at most 4 bytes except in MOV r64, imm64. */
static unsigned imm_len(unsigned sz) { return sz < 4 ? sz : 4; }

/* imm truncated to the operand size, then sign-extended. */
static int64_t imm_value(unsigned sz, int32_t imm)
{
	return sz == 1 ? (int8_t)imm : sz == 2 ? (int16_t)imm : imm;
}

/* A sized r/m instruction: ModRM.reg a register (or /digit when reg_is_reg is false). */
static void sized_modrm(struct emit *e, unsigned sz, uint32_t opc, int reg, bool reg_is_reg,
			struct rm rm, unsigned ilen, uint64_t imm)
{
	int f = size_flags(sz, reg_is_reg);
	if (f < 0) {
		e->invalid = true;
		return;
	}
	insn_modrm(e, (unsigned)f, sized_opcode(opc, sz), reg, rm, ilen, imm);
}

/* A 2/4/8-byte instruction without a byte form. */
static void wide_modrm(struct emit *e, unsigned extra, unsigned sz, uint32_t opc, int reg,
		       struct rm rm, unsigned ilen, uint64_t imm)
{
	int f = size_flags_wide(sz);
	if (f < 0) {
		e->invalid = true;
		return;
	}
	insn_modrm(e, (unsigned)f | extra, opc, reg, rm, ilen, imm);
}

/* ---- padding ---- */

/* SDM vol. 2 table 4-12, "recommended multi-byte sequence of NOP". */
static const uint8_t nops[9][9] = {
	{0x90},
	{0x66, 0x90},
	{0x0f, 0x1f, 0x00},
	{0x0f, 0x1f, 0x40, 0x00},
	{0x0f, 0x1f, 0x44, 0x00, 0x00},
	{0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
	{0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
	{0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
	{0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
};

void emit_nop(struct emit *e, size_t len)
{
	while (len > 0 && emit_ok(e)) {
		size_t n = len < 9 ? len : 9;
		emit_bytes(e, nops[n - 1], n);
		len -= n;
	}
}

void emit_align(struct emit *e, size_t align)
{
	if (align == 0 || (align & (align - 1))) {
		e->invalid = true;
		return;
	}
	emit_nop(e, (align - (emit_here(e) & (align - 1))) & (align - 1));
}

/* ---- moves ---- */

void emit_mov_rr(struct emit *e, unsigned sz, int dst, int src)
{
	sized_modrm(e, sz, 0x89, src, true, rm_reg(dst), 0, 0);
}

void emit_mov_rm(struct emit *e, unsigned sz, int dst, struct hmem m)
{
	sized_modrm(e, sz, 0x8b, dst, true, rm_mem(m), 0, 0);
}

void emit_mov_mr(struct emit *e, unsigned sz, struct hmem m, int src)
{
	sized_modrm(e, sz, 0x89, src, true, rm_mem(m), 0, 0);
}

void emit_mov_ri(struct emit *e, unsigned sz, int dst, uint64_t imm)
{
	switch (sz) {
	case 1: insn_opreg(e, F_BRM, 0xb0, dst, 1, imm); return;
	case 2: insn_opreg(e, F_66, 0xb8, dst, 2, imm); return;
	case 4: insn_opreg(e, 0, 0xb8, dst, 4, imm); return;
	case 8:
		/* A 32-bit destination zero-extends (SDM vol. 1 §3.4.1.1). */
		if (imm <= UINT32_MAX)
			insn_opreg(e, 0, 0xb8, dst, 4, imm);
		else if (fits32((int64_t)imm))
			insn_modrm(e, F_W, 0xc7, 0, rm_reg(dst), 4, imm);
		else
			insn_opreg(e, F_W, 0xb8, dst, 8, imm);
		return;
	}
	e->invalid = true;
}

void emit_mov_mi(struct emit *e, unsigned sz, struct hmem m, int32_t imm)
{
	sized_modrm(e, sz, 0xc7, 0, false, rm_mem(m), imm_len(sz), (uint64_t)(int64_t)imm);
}

static void movx(struct emit *e, uint32_t opc, unsigned dsz, unsigned ssz, int dst, struct rm src)
{
	int f = size_flags_wide(dsz);
	if (f < 0 || (ssz != 1 && ssz != 2) || ssz >= dsz) {
		e->invalid = true;
		return;
	}
	insn_modrm(e, (unsigned)f | (ssz == 1 ? F_BRM : 0), opc + (ssz == 2), dst, src, 0, 0);
}

void emit_movzx_rr(struct emit *e, unsigned dsz, unsigned ssz, int dst, int src)
{
	movx(e, 0x0fb6, dsz, ssz, dst, rm_reg(src));
}

void emit_movzx_rm(struct emit *e, unsigned dsz, unsigned ssz, int dst, struct hmem m)
{
	movx(e, 0x0fb6, dsz, ssz, dst, rm_mem(m));
}

void emit_movsx_rr(struct emit *e, unsigned dsz, unsigned ssz, int dst, int src)
{
	movx(e, 0x0fbe, dsz, ssz, dst, rm_reg(src));
}

void emit_movsx_rm(struct emit *e, unsigned dsz, unsigned ssz, int dst, struct hmem m)
{
	movx(e, 0x0fbe, dsz, ssz, dst, rm_mem(m));
}

void emit_movsxd_rr(struct emit *e, int dst, int src)
{
	insn_modrm(e, F_W, 0x63, dst, rm_reg(src), 0, 0);
}

void emit_movsxd_rm(struct emit *e, int dst, struct hmem m)
{
	insn_modrm(e, F_W, 0x63, dst, rm_mem(m), 0, 0);
}

void emit_lea(struct emit *e, unsigned sz, int dst, struct hmem m)
{
	wide_modrm(e, 0, sz, 0x8d, dst, rm_mem(m), 0, 0);
}

void emit_xchg_rr(struct emit *e, unsigned sz, int a, int b)
{
	/* Never the short 90+r form: 90 is NOP, which would not zero-extend
	 * xchg eax, eax. */
	sized_modrm(e, sz, 0x87, b, true, rm_reg(a), 0, 0);
}

void emit_xchg_mr(struct emit *e, unsigned sz, struct hmem m, int r)
{
	sized_modrm(e, sz, 0x87, r, true, rm_mem(m), 0, 0);
}

void emit_bswap(struct emit *e, unsigned sz, int r)
{
	if (sz != 4 && sz != 8) {
		e->invalid = true;
		return;
	}
	insn_opreg(e, sz == 8 ? F_W : 0, 0x0fc8, r, 0, 0);
}

/* ---- arithmetic and logic ---- */

void emit_alu_rr(struct emit *e, enum halu op, unsigned sz, int dst, int src)
{
	sized_modrm(e, sz, op * 8u + 1, src, true, rm_reg(dst), 0, 0);
}

void emit_alu_rm(struct emit *e, enum halu op, unsigned sz, int dst, struct hmem m)
{
	sized_modrm(e, sz, op * 8u + 3, dst, true, rm_mem(m), 0, 0);
}

void emit_alu_mr(struct emit *e, enum halu op, unsigned sz, struct hmem m, int src)
{
	sized_modrm(e, sz, op * 8u + 1, src, true, rm_mem(m), 0, 0);
}

/* 80 /op ib, 83 /op ib (sign-extended) or 81 /op iz; the accumulator
 * forms op*8+4/5 when the destination is AL/AX/EAX/RAX and no imm8 fits. */
static void alu_imm(struct emit *e, enum halu op, unsigned sz, struct rm dst, int32_t imm)
{
	int f = size_flags(sz, false);
	if (f < 0) {
		e->invalid = true;
		return;
	}
	int64_t v = imm_value(sz, imm);
	bool acc = !dst.mem && dst.reg == H_RAX;
	if (sz == 1 && acc)
		insn_opreg(e, (unsigned)f, op * 8u + 4, H_RAX, 1, (uint64_t)v);
	else if (sz == 1)
		insn_modrm(e, (unsigned)f, 0x80, (int)op, dst, 1, (uint64_t)v);
	else if (fits8(v))
		insn_modrm(e, (unsigned)f, 0x83, (int)op, dst, 1, (uint64_t)v);
	else if (acc)
		insn_opreg(e, (unsigned)f, op * 8u + 5, H_RAX, imm_len(sz), (uint64_t)v);
	else
		insn_modrm(e, (unsigned)f, 0x81, (int)op, dst, imm_len(sz), (uint64_t)v);
}

void emit_alu_ri(struct emit *e, enum halu op, unsigned sz, int dst, int32_t imm)
{
	alu_imm(e, op, sz, rm_reg(dst), imm);
}

void emit_alu_mi(struct emit *e, enum halu op, unsigned sz, struct hmem m, int32_t imm)
{
	alu_imm(e, op, sz, rm_mem(m), imm);
}

void emit_test_rr(struct emit *e, unsigned sz, int a, int b)
{
	sized_modrm(e, sz, 0x85, b, true, rm_reg(a), 0, 0);
}

void emit_test_mr(struct emit *e, unsigned sz, struct hmem m, int r)
{
	sized_modrm(e, sz, 0x85, r, true, rm_mem(m), 0, 0);
}

/* TEST has no imm8 form; A8/A9 for the accumulator, else F6/F7 /0. */
void emit_test_ri(struct emit *e, unsigned sz, int r, int32_t imm)
{
	int f = size_flags(sz, false);
	if (f >= 0 && r == H_RAX)
		insn_opreg(e, (unsigned)f, sized_opcode(0xa9, sz), H_RAX, imm_len(sz),
			   (uint64_t)(int64_t)imm);
	else
		sized_modrm(e, sz, 0xf7, 0, false, rm_reg(r), imm_len(sz), (uint64_t)(int64_t)imm);
}

void emit_test_mi(struct emit *e, unsigned sz, struct hmem m, int32_t imm)
{
	sized_modrm(e, sz, 0xf7, 0, false, rm_mem(m), imm_len(sz), (uint64_t)(int64_t)imm);
}

static const struct {
	uint8_t opc, digit;
} unary_ops[] = {
	[HUN_INC] = {0xff, 0}, [HUN_DEC] = {0xff, 1},  [HUN_NOT] = {0xf7, 2},
	[HUN_NEG] = {0xf7, 3}, [HUN_MUL] = {0xf7, 4},  [HUN_IMUL] = {0xf7, 5},
	[HUN_DIV] = {0xf7, 6}, [HUN_IDIV] = {0xf7, 7},
};

static void unary(struct emit *e, enum hunary op, unsigned sz, struct rm rm)
{
	if ((unsigned)op >= sizeof(unary_ops) / sizeof(unary_ops[0])) {
		e->invalid = true;
		return;
	}
	sized_modrm(e, sz, unary_ops[op].opc, unary_ops[op].digit, false, rm, 0, 0);
}

void emit_unary_r(struct emit *e, enum hunary op, unsigned sz, int r)
{
	unary(e, op, sz, rm_reg(r));
}

void emit_unary_m(struct emit *e, enum hunary op, unsigned sz, struct hmem m)
{
	unary(e, op, sz, rm_mem(m));
}

static void shift_imm(struct emit *e, enum hshift op, unsigned sz, struct rm rm, uint8_t count)
{
	if (count == 1)
		sized_modrm(e, sz, 0xd1, (int)op & 7, false, rm, 0, 0);
	else
		sized_modrm(e, sz, 0xc1, (int)op & 7, false, rm, 1, count);
}

void emit_shift_ri(struct emit *e, enum hshift op, unsigned sz, int r, uint8_t count)
{
	shift_imm(e, op, sz, rm_reg(r), count);
}

void emit_shift_mi(struct emit *e, enum hshift op, unsigned sz, struct hmem m, uint8_t count)
{
	shift_imm(e, op, sz, rm_mem(m), count);
}

void emit_shift_rcl(struct emit *e, enum hshift op, unsigned sz, int r)
{
	sized_modrm(e, sz, 0xd3, (int)op & 7, false, rm_reg(r), 0, 0);
}

void emit_shift_mcl(struct emit *e, enum hshift op, unsigned sz, struct hmem m)
{
	sized_modrm(e, sz, 0xd3, (int)op & 7, false, rm_mem(m), 0, 0);
}

/* SHLD 0F A4 (imm8) / 0F A5 (CL); SHRD 0F AC / 0F AD. */
static uint32_t dshift_opcode(enum hdshift op, bool cl)
{
	return (op == HDS_SHRD ? 0x0fac : 0x0fa4) + cl;
}

void emit_dshift_rri(struct emit *e, enum hdshift op, unsigned sz, int dst, int src, uint8_t count)
{
	wide_modrm(e, 0, sz, dshift_opcode(op, false), src, rm_reg(dst), 1, count);
}

void emit_dshift_mri(struct emit *e, enum hdshift op, unsigned sz, struct hmem m, int src,
		     uint8_t count)
{
	wide_modrm(e, 0, sz, dshift_opcode(op, false), src, rm_mem(m), 1, count);
}

void emit_dshift_rrcl(struct emit *e, enum hdshift op, unsigned sz, int dst, int src)
{
	wide_modrm(e, 0, sz, dshift_opcode(op, true), src, rm_reg(dst), 0, 0);
}

void emit_dshift_mrcl(struct emit *e, enum hdshift op, unsigned sz, struct hmem m, int src)
{
	wide_modrm(e, 0, sz, dshift_opcode(op, true), src, rm_mem(m), 0, 0);
}

void emit_wide_rr(struct emit *e, uint8_t pfx, uint32_t opc, unsigned sz, int dst, int src)
{
	wide_modrm(e, sse_prefix_flags(pfx), sz, opc, dst, rm_reg(src), 0, 0);
}

void emit_wide_rm(struct emit *e, uint8_t pfx, uint32_t opc, unsigned sz, int dst, struct hmem m)
{
	wide_modrm(e, sse_prefix_flags(pfx), sz, opc, dst, rm_mem(m), 0, 0);
}

void emit_imul_rr(struct emit *e, unsigned sz, int dst, int src)
{
	wide_modrm(e, 0, sz, 0x0faf, dst, rm_reg(src), 0, 0);
}

void emit_imul_rm(struct emit *e, unsigned sz, int dst, struct hmem m)
{
	wide_modrm(e, 0, sz, 0x0faf, dst, rm_mem(m), 0, 0);
}

/* 6B /r ib (sign-extended) or 69 /r iz. */
static void imul_imm(struct emit *e, unsigned sz, int dst, struct rm src, int32_t imm)
{
	int64_t v = imm_value(sz, imm);
	if (fits8(v))
		wide_modrm(e, 0, sz, 0x6b, dst, src, 1, (uint64_t)v);
	else
		wide_modrm(e, 0, sz, 0x69, dst, src, imm_len(sz), (uint64_t)v);
}

void emit_imul_rri(struct emit *e, unsigned sz, int dst, int src, int32_t imm)
{
	imul_imm(e, sz, dst, rm_reg(src), imm);
}

void emit_imul_rmi(struct emit *e, unsigned sz, int dst, struct hmem m, int32_t imm)
{
	imul_imm(e, sz, dst, rm_mem(m), imm);
}

void emit_cmpxchg_rr(struct emit *e, unsigned sz, int dst, int src)
{
	sized_modrm(e, sz, 0x0fb1, src, true, rm_reg(dst), 0, 0);
}

/* The LOCK prefix goes ahead of the other prefixes here, but any order of
 * legacy prefixes is valid (SDM vol. 2 §2.1.1). */
static void locked(struct emit *e, bool lock, unsigned sz, uint32_t opc, int reg, struct hmem m)
{
	int f = size_flags(sz, true);
	if (f < 0) {
		e->invalid = true;
		return;
	}
	unsigned flags = (unsigned)f | (lock ? F_LOCK : 0);
	insn_modrm(e, flags, sized_opcode(opc, sz), reg, rm_mem(m), 0, 0);
}

void emit_cmpxchg_mr(struct emit *e, unsigned sz, struct hmem m, int src, bool lock)
{
	locked(e, lock, sz, 0x0fb1, src, m);
}

void emit_xadd_rr(struct emit *e, unsigned sz, int dst, int src)
{
	sized_modrm(e, sz, 0x0fc1, src, true, rm_reg(dst), 0, 0);
}

void emit_xadd_mr(struct emit *e, unsigned sz, struct hmem m, int src, bool lock)
{
	locked(e, lock, sz, 0x0fc1, src, m);
}

void emit_lock(struct emit *e) { emit_bytes(e, "\xf0", 1); }

/* ---- flags and conditions ---- */

static bool cc_valid(struct emit *e, enum hcc cc)
{
	if ((unsigned)cc > 15)
		e->invalid = true;
	return (unsigned)cc <= 15;
}

void emit_setcc_r(struct emit *e, enum hcc cc, int r)
{
	if (cc_valid(e, cc))
		insn_modrm(e, F_BRM, 0x0f90 + cc, 0, rm_reg(r), 0, 0);
}

void emit_setcc_m(struct emit *e, enum hcc cc, struct hmem m)
{
	if (cc_valid(e, cc))
		insn_modrm(e, 0, 0x0f90 + cc, 0, rm_mem(m), 0, 0);
}

void emit_cmov_rr(struct emit *e, enum hcc cc, unsigned sz, int dst, int src)
{
	if (cc_valid(e, cc))
		wide_modrm(e, 0, sz, 0x0f40 + cc, dst, rm_reg(src), 0, 0);
}

void emit_cmov_rm(struct emit *e, enum hcc cc, unsigned sz, int dst, struct hmem m)
{
	if (cc_valid(e, cc))
		wide_modrm(e, 0, sz, 0x0f40 + cc, dst, rm_mem(m), 0, 0);
}

/* BT 0F A3, BTS 0F AB, BTR 0F B3, BTC 0F BB; with imm8 0F BA /4-/7. */
void emit_bt_rr(struct emit *e, enum hbt op, unsigned sz, int r, int bit)
{
	wide_modrm(e, 0, sz, 0x0fa3 + 8 * (op & 3u), bit, rm_reg(r), 0, 0);
}

void emit_bt_mr(struct emit *e, enum hbt op, unsigned sz, struct hmem m, int bit)
{
	wide_modrm(e, 0, sz, 0x0fa3 + 8 * (op & 3u), bit, rm_mem(m), 0, 0);
}

void emit_bt_ri(struct emit *e, enum hbt op, unsigned sz, int r, uint8_t bit)
{
	wide_modrm(e, 0, sz, 0x0fba, 4 + (op & 3), rm_reg(r), 1, bit);
}

void emit_bt_mi(struct emit *e, enum hbt op, unsigned sz, struct hmem m, uint8_t bit)
{
	wide_modrm(e, 0, sz, 0x0fba, 4 + (op & 3), rm_mem(m), 1, bit);
}

void emit_pushfq(struct emit *e) { insn_plain(e, 0x9c); }
void emit_popfq(struct emit *e) { insn_plain(e, 0x9d); }
void emit_lahf(struct emit *e) { insn_plain(e, 0x9f); }
void emit_sahf(struct emit *e) { insn_plain(e, 0x9e); }
void emit_clc(struct emit *e) { insn_plain(e, 0xf8); }
void emit_stc(struct emit *e) { insn_plain(e, 0xf9); }
void emit_cmc(struct emit *e) { insn_plain(e, 0xf5); }

/* ---- stack, fences, traps ---- */

/* PUSH/POP default to 64-bit operands in 64-bit mode: no REX.W. */
void emit_push_r(struct emit *e, int r) { insn_opreg(e, 0, 0x50, r, 0, 0); }
void emit_pop_r(struct emit *e, int r) { insn_opreg(e, 0, 0x58, r, 0, 0); }
/* POP r/m64 (8F /0): 64-bit in 64-bit mode without REX.W. */
void emit_pop_m(struct emit *e, struct hmem m) { insn_modrm(e, 0, 0x8f, 0, rm_mem(m), 0, 0); }
void emit_mfence(struct emit *e) { insn_plain(e, 0x0faef0); }
void emit_ret(struct emit *e) { insn_plain(e, 0xc3); }
void emit_ud2(struct emit *e) { insn_plain(e, 0x0f0b); }
void emit_int3(struct emit *e) { insn_plain(e, 0xcc); }

/* ---- SSE moves ---- */

void emit_movdqu_xx(struct emit *e, int dst, int src)
{
	insn_modrm(e, F_F3, 0x0f6f, dst, rm_reg(src), 0, 0);
}

void emit_movdqu_xm(struct emit *e, int x, struct hmem m)
{
	insn_modrm(e, F_F3, 0x0f6f, x, rm_mem(m), 0, 0);
}

void emit_movdqu_mx(struct emit *e, struct hmem m, int x)
{
	insn_modrm(e, F_F3, 0x0f7f, x, rm_mem(m), 0, 0);
}

void emit_movq_xx(struct emit *e, int dst, int src)
{
	insn_modrm(e, F_F3, 0x0f7e, dst, rm_reg(src), 0, 0);
}

void emit_movq_xr(struct emit *e, int x, int r)
{
	insn_modrm(e, F_66 | F_W, 0x0f6e, x, rm_reg(r), 0, 0);
}

void emit_movq_rx(struct emit *e, int r, int x)
{
	insn_modrm(e, F_66 | F_W, 0x0f7e, x, rm_reg(r), 0, 0);
}

void emit_movq_xm(struct emit *e, int x, struct hmem m)
{
	insn_modrm(e, F_F3, 0x0f7e, x, rm_mem(m), 0, 0);
}

void emit_movq_mx(struct emit *e, struct hmem m, int x)
{
	insn_modrm(e, F_66, 0x0fd6, x, rm_mem(m), 0, 0);
}

static unsigned sse_prefix_flags(uint8_t pfx)
{
	switch (pfx) {
	case 0x66: return F_66;
	case 0xf2: return F_F2;
	case 0xf3: return F_F3;
	default: return 0;
	}
}

void emit_sse_xx(struct emit *e, uint8_t pfx, uint32_t opc, int dst, int src, int imm8)
{
	insn_modrm(e, sse_prefix_flags(pfx), opc, dst, rm_reg(src), imm8 >= 0 ? 1 : 0,
		   (uint64_t)(imm8 & 0xff));
}

void emit_sse_xm(struct emit *e, uint8_t pfx, uint32_t opc, int dst, struct hmem m, int imm8)
{
	insn_modrm(e, sse_prefix_flags(pfx), opc, dst, rm_mem(m), imm8 >= 0 ? 1 : 0,
		   (uint64_t)(imm8 & 0xff));
}

void emit_sse_rx(struct emit *e, uint8_t pfx, uint32_t opc, int r, int x, int imm8)
{
	insn_modrm(e, sse_prefix_flags(pfx), opc, r, rm_reg(x), imm8 >= 0 ? 1 : 0,
		   (uint64_t)(imm8 & 0xff));
}

void emit_movd_xr(struct emit *e, int x, int r) { insn_modrm(e, F_66, 0x0f6e, x, rm_reg(r), 0, 0); }
void emit_movd_rx(struct emit *e, int r, int x) { insn_modrm(e, F_66, 0x0f7e, x, rm_reg(r), 0, 0); }
void emit_movd_xm(struct emit *e, int x, struct hmem m)
{
	insn_modrm(e, F_66, 0x0f6e, x, rm_mem(m), 0, 0);
}

void emit_movd_mx(struct emit *e, struct hmem m, int x)
{
	insn_modrm(e, F_66, 0x0f7e, x, rm_mem(m), 0, 0);
}

/* ---- control flow ---- */

bool emit_rel32_reaches(uintptr_t from, uintptr_t target)
{
	return fits32((int64_t)(target - from));
}

/* opc disp (disp_len 1 or 4), relative to the end of the instruction. */
static size_t branch(struct emit *e, uint32_t opc, unsigned disp_len, uintptr_t target)
{
	struct insn_buf x;
	insn_start(&x);
	put_opcode(&x, opc);
	size_t handle = emit_offset(e) + x.n;
	int64_t d = 0;
	if (target) {
		d = (int64_t)(target - (emit_here(e) + x.n + disp_len));
		if (disp_len == 1 ? !fits8(d) : !fits32(d))
			x.bad = true;
	}
	put_le(&x, (uint64_t)d, disp_len);
	insn_finish(e, &x);
	return handle;
}

size_t emit_jmp_rel32(struct emit *e, uintptr_t target) { return branch(e, 0xe9, 4, target); }
size_t emit_call_rel32(struct emit *e, uintptr_t target) { return branch(e, 0xe8, 4, target); }
size_t emit_jmp_rel8(struct emit *e, uintptr_t target) { return branch(e, 0xeb, 1, target); }

size_t emit_jcc_rel32(struct emit *e, enum hcc cc, uintptr_t target)
{
	return cc_valid(e, cc) ? branch(e, 0x0f80 + cc, 4, target) : emit_offset(e);
}

size_t emit_jcc_rel8(struct emit *e, enum hcc cc, uintptr_t target)
{
	return cc_valid(e, cc) ? branch(e, 0x70 + cc, 1, target) : emit_offset(e);
}

/* A handle must name a field inside what was emitted; after an overflow
 * handles may not, and there is nothing left to bind. */
static bool handle_ok(struct emit *e, size_t handle, size_t len)
{
	if (handle <= emit_offset(e) && len <= emit_offset(e) - handle)
		return true;
	if (!e->overflow)
		e->invalid = true;
	return false;
}

void emit_bind_rel32(struct emit *e, size_t handle) { emit_patch_local(e, handle, emit_here(e)); }

void emit_bind_rel8(struct emit *e, size_t handle)
{
	if (!handle_ok(e, handle, 1))
		return;
	int64_t d = (int64_t)(emit_offset(e) - (handle + 1));
	if (!fits8(d)) {
		e->invalid = true;
		return;
	}
	e->start[handle] = (uint8_t)d;
}

void emit_patch_local(struct emit *e, size_t handle, uintptr_t target)
{
	if (handle_ok(e, handle, 4) &&
	    emit_patch_rel32(e->start + handle, e->exec + handle, target) < 0)
		e->invalid = true;
}

int emit_patch_rel32(uint8_t *field_rw, uintptr_t field_rx, uintptr_t target)
{
	int64_t d = (int64_t)(target - (field_rx + 4));
	if (!fits32(d))
		return -ERANGE;
	if ((field_rx & 3) == 0 && ((uintptr_t)field_rw & 3) == 0)
		__atomic_store_n((uint32_t *)(void *)field_rw, (uint32_t)d, __ATOMIC_RELEASE);
	else
		write_le32(field_rw, (uint32_t)d);
	return 0;
}

void emit_align_rel32(struct emit *e, unsigned opcode_len)
{
	emit_nop(e, (4 - ((emit_here(e) + opcode_len) & 3)) & 3);
}

/* rel32 (5 bytes) when it reaches from where the code executes. */
static void far_branch(struct emit *e, uintptr_t target, int scratch, bool call)
{
	if (emit_rel32_reaches(emit_here(e) + 5, target)) {
		branch(e, call ? 0xe8 : 0xe9, 4, target);
		return;
	}
	emit_mov_ri(e, 8, scratch, target);
	insn_modrm(e, 0, 0xff, call ? 2 : 4, rm_reg(scratch), 0, 0);
}

void emit_jmp_abs(struct emit *e, uintptr_t target, int scratch)
{
	far_branch(e, target, scratch, false);
}

void emit_call_abs(struct emit *e, uintptr_t target, int scratch)
{
	far_branch(e, target, scratch, true);
}

/* FF /4 and FF /2 default to 64-bit operands in 64-bit mode. */
void emit_jmp_r(struct emit *e, int r) { insn_modrm(e, 0, 0xff, 4, rm_reg(r), 0, 0); }
void emit_call_r(struct emit *e, int r) { insn_modrm(e, 0, 0xff, 2, rm_reg(r), 0, 0); }
void emit_jmp_m(struct emit *e, struct hmem m) { insn_modrm(e, 0, 0xff, 4, rm_mem(m), 0, 0); }
void emit_call_m(struct emit *e, struct hmem m) { insn_modrm(e, 0, 0xff, 2, rm_mem(m), 0, 0); }
