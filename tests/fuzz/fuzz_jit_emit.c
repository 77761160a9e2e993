/* The translator's emitter with arbitrary instruction shapes, operands,
 * buffer sizes and execute addresses. It must never write outside its
 * buffer, write nothing for an instruction that fails, and every encoding
 * it accepts must disassemble (libcapstone) to instructions covering
 * exactly the bytes written. */
#include <capstone/capstone.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/soft/jit/emit.h"

struct input {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)*in->p << (8 * i);
	return v;
}

/* Mostly valid operands, sometimes not. */
static int any_reg(struct input *in)
{
	unsigned v = (unsigned)take(in, 1);
	return v < 240 ? (int)(v & 15) : (int)(v & 31) - 8;
}

static unsigned any_size(struct input *in)
{
	unsigned v = (unsigned)take(in, 1);
	static const unsigned sizes[4] = {1, 2, 4, 8};
	return v < 248 ? sizes[v & 3] : v & 15;
}

static int32_t any_imm(struct input *in)
{
	unsigned k = (unsigned)take(in, 1) & 3;
	return k == 0 ? (int8_t)take(in, 1) : k == 1 ? (int16_t)take(in, 2) : (int32_t)take(in, 4);
}

static uintptr_t any_target(struct input *in, uintptr_t exec)
{
	unsigned k = (unsigned)take(in, 1) & 3;
	if (k == 0)
		return 0;
	if (k == 1)
		return exec + (uintptr_t)(int64_t)(int8_t)take(in, 1);
	if (k == 2)
		return exec + (uintptr_t)(int64_t)(int32_t)take(in, 4);
	return (uintptr_t)take(in, 8);
}

static struct hmem any_mem(struct input *in, uintptr_t exec)
{
	struct hmem m;
	unsigned k = (unsigned)take(in, 1);
	if (k < 24)
		return hmem_rip(any_target(in, exec));
	int base = (int)(k & 31) - 1;
	if (base > 15)
		base = k >= 248 ? 16 + (int)(k & 3) : HREG_NONE; /* rarely invalid */
	m.base = (int8_t)base;
	unsigned i = (unsigned)take(in, 1);
	m.index = (int8_t)(i < 96 ? -1 : (int)(i & 15) - (i >= 250));
	unsigned s = (unsigned)take(in, 1);
	m.scale = (uint8_t)(s < 250 ? 1u << (s & 3) : s);
	m.disp = any_imm(in);
	m.target = 0;
	return m;
}

/* Emits one shape; returns how many instructions it is at most (0: any). */
static unsigned emit_shape(struct emit *e, struct input *in)
{
	unsigned shape = (unsigned)take(in, 1);
	unsigned sz = any_size(in), sub = (unsigned)take(in, 1);
	int a = any_reg(in), b = any_reg(in);
	int32_t imm = any_imm(in);
	struct hmem m = any_mem(in, e->exec);
	uintptr_t t = any_target(in, emit_here(e));
	unsigned sz2 = any_size(in);
	switch (shape % 88) {
	case 0: emit_mov_rr(e, sz, a, b); break;
	case 1: emit_mov_rm(e, sz, a, m); break;
	case 2: emit_mov_mr(e, sz, m, a); break;
	case 3: emit_mov_ri(e, sz, a, take(in, 8)); break;
	case 4: emit_mov_mi(e, sz, m, imm); break;
	case 5: emit_movzx_rr(e, sz, sz2, a, b); break;
	case 6: emit_movzx_rm(e, sz, sz2, a, m); break;
	case 7: emit_movsx_rr(e, sz, sz2, a, b); break;
	case 8: emit_movsx_rm(e, sz, sz2, a, m); break;
	case 9: emit_movsxd_rr(e, a, b); break;
	case 10: emit_movsxd_rm(e, a, m); break;
	case 11: emit_lea(e, sz, a, m); break;
	case 12: emit_xchg_rr(e, sz, a, b); break;
	case 13: emit_xchg_mr(e, sz, m, a); break;
	case 14: emit_bswap(e, sz, a); break;
	case 15: emit_alu_rr(e, (enum halu)(sub & 7), sz, a, b); break;
	case 16: emit_alu_rm(e, (enum halu)(sub & 7), sz, a, m); break;
	case 17: emit_alu_mr(e, (enum halu)(sub & 7), sz, m, a); break;
	case 18: emit_alu_ri(e, (enum halu)(sub & 7), sz, a, imm); break;
	case 19: emit_alu_mi(e, (enum halu)(sub & 7), sz, m, imm); break;
	case 20: emit_test_rr(e, sz, a, b); break;
	case 21: emit_test_mr(e, sz, m, a); break;
	case 22: emit_test_ri(e, sz, a, imm); break;
	case 23: emit_test_mi(e, sz, m, imm); break;
	case 24: emit_unary_r(e, (enum hunary)(sub % 9), sz, a); break;
	case 25: emit_unary_m(e, (enum hunary)(sub % 9), sz, m); break;
	case 26: emit_shift_ri(e, (enum hshift)(sub & 7), sz, a, (uint8_t)imm); break;
	case 27: emit_shift_mi(e, (enum hshift)(sub & 7), sz, m, (uint8_t)imm); break;
	case 28: emit_shift_rcl(e, (enum hshift)(sub & 7), sz, a); break;
	case 29: emit_shift_mcl(e, (enum hshift)(sub & 7), sz, m); break;
	case 30: emit_dshift_rri(e, (enum hdshift)(sub & 1), sz, a, b, (uint8_t)imm); break;
	case 31: emit_dshift_mri(e, (enum hdshift)(sub & 1), sz, m, a, (uint8_t)imm); break;
	case 32: emit_dshift_rrcl(e, (enum hdshift)(sub & 1), sz, a, b); break;
	case 33: emit_dshift_mrcl(e, (enum hdshift)(sub & 1), sz, m, a); break;
	case 34: emit_imul_rr(e, sz, a, b); break;
	case 35: emit_imul_rm(e, sz, a, m); break;
	case 36: emit_imul_rri(e, sz, a, b, imm); break;
	case 37: emit_imul_rmi(e, sz, a, m, imm); break;
	case 38: emit_cmpxchg_rr(e, sz, a, b); break;
	case 39: emit_cmpxchg_mr(e, sz, m, a, sub & 1); break;
	case 40: emit_xadd_rr(e, sz, a, b); break;
	case 41: emit_xadd_mr(e, sz, m, a, sub & 1); break;
	case 42: emit_setcc_r(e, (enum hcc)(sub % 17), a); break;
	case 43: emit_setcc_m(e, (enum hcc)(sub % 17), m); break;
	case 44: emit_cmov_rr(e, (enum hcc)(sub % 17), sz, a, b); break;
	case 45: emit_cmov_rm(e, (enum hcc)(sub % 17), sz, a, m); break;
	case 46: emit_bt_rr(e, (enum hbt)(sub & 3), sz, a, b); break;
	case 47: emit_bt_mr(e, (enum hbt)(sub & 3), sz, m, a); break;
	case 48: emit_bt_ri(e, (enum hbt)(sub & 3), sz, a, (uint8_t)imm); break;
	case 49: emit_bt_mi(e, (enum hbt)(sub & 3), sz, m, (uint8_t)imm); break;
	case 50: emit_pushfq(e); break;
	case 51: emit_popfq(e); break;
	case 52: emit_lahf(e); break;
	case 53: emit_sahf(e); break;
	case 54: emit_clc(e); break;
	case 55: emit_stc(e); break;
	case 56: emit_cmc(e); break;
	case 57: emit_push_r(e, a); break;
	case 58: emit_pop_r(e, a); break;
	case 59: emit_mfence(e); break;
	case 60: emit_ret(e); break;
	case 61: emit_ud2(e); break;
	case 62: emit_int3(e); break;
	case 63: emit_movdqu_xx(e, a, b); break;
	case 64: emit_movdqu_xm(e, a, m); break;
	case 65: emit_movdqu_mx(e, m, a); break;
	case 66: emit_movq_xx(e, a, b); break;
	case 67: emit_movq_xr(e, a, b); break;
	case 68: emit_movq_rx(e, a, b); break;
	case 69: emit_movq_xm(e, a, m); break;
	case 70: emit_movq_mx(e, m, a); break;
	case 71: emit_movd_xr(e, a, b); break;
	case 72: emit_movd_rx(e, a, b); break;
	case 73: emit_movd_xm(e, a, m); break;
	case 74: emit_movd_mx(e, m, a); break;
	case 75: emit_jmp_rel32(e, t); break;
	case 76: emit_jcc_rel32(e, (enum hcc)(sub % 17), t); break;
	case 77: emit_call_rel32(e, t); break;
	case 78: emit_jmp_rel8(e, t); break;
	case 79: emit_jcc_rel8(e, (enum hcc)(sub % 17), t); break;
	case 80: emit_jmp_abs(e, t, a); return 2;
	case 81: emit_call_abs(e, t, a); return 2;
	case 82: emit_jmp_r(e, a); break;
	case 83: emit_call_r(e, a); break;
	case 84: emit_jmp_m(e, m); break;
	case 85: emit_call_m(e, m); break;
	case 86: emit_nop(e, sub & 31); return 0;
	case 87: emit_lock(e); break;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static csh cs;
	if (!cs && cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		abort();
	struct input in = {data, size};
	uint8_t buf[96];
	size_t cap = take(&in, 1) % 80;
	uintptr_t exec = (uintptr_t)take(&in, 8) & ~(uintptr_t)0xfff;
	while (in.n) {
		memset(buf, 0xa5, sizeof(buf));
		struct emit e;
		emit_init(&e, buf, cap, exec);
		unsigned most = emit_shape(&e, &in);
		size_t len = emit_offset(&e);
		if (len > cap)
			abort();
		for (size_t i = len; i < sizeof(buf); i++)
			if (buf[i] != 0xa5)
				abort(); /* wrote past what it reports, or past the buffer */
		if (e.invalid && most == 1 && len != 0)
			abort(); /* a failed instruction writes nothing */
		if (!emit_ok(&e) || len == 0)
			continue;
		cs_insn *insn;
		size_t count = cs_disasm(cs, buf, len, e.exec, 0, &insn);
		size_t covered = 0;
		for (size_t i = 0; i < count; i++)
			covered += insn[i].size;
		if (count)
			cs_free(insn, count);
		/* A lone LOCK prefix is not an instruction by itself. */
		if (len == 1 && buf[0] == 0xf0)
			continue;
		if (covered != len || (most && count > most))
			abort();
	}
	return 0;
}
