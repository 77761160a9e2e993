/* The translator against the interpreter on random code: sequences of
 * the instructions the translator emits natively (ALU, TEST, MOV, LEA,
 * MOVZX/MOVSX, INC/DEC/NOT/NEG, shifts, IMUL, SETcc, CMOVcc, PUSH/POP,
 * Jcc/JMP, CALL/RET) mixed with some it runs through interpreter handlers
 * (XCHG, BSWAP, BT, ADC/SBB, shifts by CL, LOCK, REP string operations
 * either way, PUSH imm), in every operand size, with register and memory
 * operands of every addressing form (base, base+index*scale, RSP-based,
 * absolute, RIP-relative, FS/GS overrides, 32-bit address size,
 * page-crossing), AH-BH and SPL-DIL byte registers, forward branches and
 * a loop around it all, sometimes with a #PF (also straddling into an
 * unmapped page) or a #GP (non-canonical address) in the middle.
 * Each sequence runs on the translator and on the interpreter (jit_harness.h);
 * registers, flags, memory and the exception frame must agree.
 *
 * Flags the SDM leaves undefined (shifts, rotates, IMUL, BT; AF after
 * logical operations) are never observed: an instruction that leaves some
 * undefined is followed by at most a reader of its defined CF or OF and
 * then by an instruction that writes all flags; AF is masked where a
 * logical operation may have been the last to write it (exception frames).
 *
 * JITTEST_SEED=n runs only sequence n (and prints its code: objdump -D -b
 * binary -m i386:x86-64 --adjust-vma=0x200000 on the hex bytes);
 * JITTEST_SEQS=n changes how many run (default RANDOM_SEQS; with 3000,
 * sequences 852, 1273 and 1967 show the INC/DEC carry bug of
 * test_jit_translate's test_fault_after_inc_keeps_cf). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "jit_harness.h"

#define RANDOM_SEQS 400
#define CODE_MAX 0x6000   /* the code stays below RIPDATA */
#define RIPDATA (CODE + 0x8000) /* RIP-relative operands point here */
#define DATA_LEN 0x4000   /* DATA .. DATA+DATA_LEN: the memory operands' area */
#define FS_BASE 0x800     /* FS and GS overrides move operands by these */
#define GS_BASE 0x400
#define LOOPS 3
#define MAX_GROUPS 120

/* Registers: RSP is the stack, R12 counts the loop, R13 is the index
 * (small), R14 and R15 the bases (DATA + 0x800, DATA + 0x1000); the rest
 * are fair game. */
static const unsigned writable[] = {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11};
#define NWRITABLE (sizeof(writable) / sizeof(writable[0]))
#define R_INDEX 13
#define R_BASE1 14
#define R_BASE2 15

/* ---- a small x86-64 encoder ---- */

struct asmbuf {
	uint8_t b[CODE_MAX];
	size_t n;
	bool overflow;
};

enum mem_form { M_BASE8, M_BASE32, M_SIB, M_ABS, M_RIP, M_RSP, M_NFORMS };

struct operand {
	bool mem;
	unsigned reg;       /* register operand */
	enum mem_form form; /* memory operand */
	int32_t disp;
	unsigned scale;     /* log2, M_SIB */
	bool addr32;        /* 0x67 */
	uint8_t segment;    /* 0, or an override prefix (0x64 FS, 0x65 GS) */
	uint64_t target;    /* M_RIP: the address */
};

static void put8(struct asmbuf *a, uint8_t v)
{
	if (a->n < sizeof(a->b))
		a->b[a->n++] = v;
	else
		a->overflow = true;
}

static void put_le(struct asmbuf *a, uint64_t v, unsigned len)
{
	for (unsigned k = 0; k < len; k++)
		put8(a, (uint8_t)(v >> (8 * k)));
}

static bool fits8(int64_t v) { return v >= -128 && v <= 127; }

/* One instruction: [66] [67] [REX] opcode ModRM [SIB] [disp] [imm].
 * `reg` is the ModRM reg field (a register or an opcode extension);
 * byte_high: byte registers 4-7 are AH-BH (no REX allowed). */
static void emit_insn(struct asmbuf *a, unsigned size, bool byte_high, const uint8_t *opc,
		      unsigned nopc, unsigned reg, const struct operand *rm, uint64_t imm,
		      unsigned immlen)
{
	size_t start = a->n;
	if (size == 2)
		put8(a, 0x66);
	if (rm->mem && rm->addr32)
		put8(a, 0x67);
	if (rm->mem && rm->segment)
		put8(a, rm->segment);
	unsigned rex = (size == 8 ? 8u : 0u) | ((reg >> 3) & 1) << 2;
	unsigned base = 0, index = 4;
	if (rm->mem) {
		if (rm->form == M_BASE8 || rm->form == M_SIB)
			base = R_BASE1;
		else if (rm->form == M_BASE32)
			base = R_BASE2;
		else if (rm->form == M_RSP)
			base = 4;
		if (rm->form == M_SIB)
			index = R_INDEX;
		rex |= ((index >> 3) & 1) << 1 | ((base >> 3) & 1);
	} else {
		rex |= (rm->reg >> 3) & 1;
	}
	/* Byte registers 4-7 mean SPL-DIL with any REX, AH-BH without. */
	bool low_byte_regs = size == 1 && !byte_high &&
			     ((reg >= 4 && reg < 8) || (!rm->mem && rm->reg >= 4 && rm->reg < 8));
	if (rex || low_byte_regs)
		put8(a, (uint8_t)(0x40 | rex));
	for (unsigned k = 0; k < nopc; k++)
		put8(a, opc[k]);
	uint8_t r3 = (uint8_t)((reg & 7) << 3);
	size_t disp_at = 0;
	if (!rm->mem) {
		put8(a, (uint8_t)(0xc0 | r3 | (rm->reg & 7)));
	} else if (rm->form == M_RIP) {
		put8(a, (uint8_t)(0x05 | r3));
		disp_at = a->n;
		put_le(a, 0, 4);
	} else if (rm->form == M_ABS) {
		put8(a, (uint8_t)(0x04 | r3));
		put8(a, 0x25); /* no index, no base: disp32 */
		put_le(a, (uint32_t)rm->disp, 4);
	} else {
		unsigned mod = fits8(rm->disp) ? 1 : 2;
		put8(a, (uint8_t)(mod << 6 | r3 | 4)); /* always a SIB: base 14/15 or an index */
		put8(a, (uint8_t)((rm->form == M_SIB ? rm->scale : 0) << 6 | (index & 7) << 3 | (base & 7)));
		put_le(a, (uint32_t)rm->disp, mod == 1 ? 1 : 4);
	}
	put_le(a, imm, immlen);
	if (disp_at && !a->overflow) {
		int64_t rel = (int64_t)(rm->target - (CODE + a->n));
		for (unsigned k = 0; k < 4; k++)
			a->b[disp_at + k] = (uint8_t)((uint64_t)rel >> (8 * k));
	}
	(void)start;
}

/* ---- random choices ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static unsigned pick(unsigned n) { return (unsigned)(rnd() % n); }
static bool coin(unsigned percent) { return pick(100) < percent; }

static unsigned rnd_size(void)
{
	static const unsigned sizes[] = {1, 2, 4, 8, 8, 4};
	return sizes[pick(6)];
}

static unsigned rnd_reg(void) { return writable[pick(NWRITABLE)]; }

/* A register usable as a byte register: in AH-BH mode, 4-7 are AH-BH
 * (of RAX-RBX, all writable); otherwise SPL is excluded. */
static unsigned rnd_byte_reg(bool high)
{
	if (high)
		return pick(8); /* AL CL DL BL AH CH DH BH */
	return rnd_reg();
}

/* Values that exercise carries, signs and zero. */
static uint64_t rnd_value(void)
{
	static const uint64_t special[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
					   0x7fffffff, 0x80000000, 0xffffffff, 0x7fffffffffffffff,
					   0x8000000000000000, ~0ULL, 0x100000000ULL};
	switch (pick(4)) {
	case 0: return special[pick(16)];
	case 1: return special[pick(16)] - 1;
	case 2: return rnd() & 0xff;
	default: return rnd();
	}
}

static struct operand rnd_mem(unsigned size, bool no_rex)
{
	struct operand m = {.mem = true};
	m.form = no_rex ? (coin(50) ? M_ABS : M_RIP) : (enum mem_form)pick(M_NFORMS);
	switch (m.form) {
	case M_BASE8: m.disp = (int32_t)pick(0xf8) - 0x80; break;
	case M_BASE32: m.disp = (int32_t)pick(0x1000); break; /* up to DATA + 0x2000 - 1: crosses */
	case M_SIB:
		m.scale = pick(4);
		m.disp = (int32_t)pick(0x100) - 0x80;
		break;
	case M_ABS: m.disp = (int32_t)(DATA + pick(0x3000)); break;
	case M_RIP: m.target = RIPDATA + pick(0x1000 - size); break;
	case M_RSP: m.disp = -8 - (int32_t)pick(0x78); break; /* below RSP: no return address */
	default: break;
	}
	/* The 32-bit address size wraps nothing here (all below 4 GiB). */
	m.addr32 = m.form != M_RIP && m.form != M_ABS && coin(10);
	if (m.form != M_RSP && coin(10))
		m.segment = coin(50) ? 0x64 : 0x65;
	if (coin(15) && m.form == M_BASE32)
		m.disp = 0x1000 - (int32_t)(size / 2) - 1; /* across DATA + 0x2000 */
	return m;
}

static struct operand rnd_rm(unsigned size, bool high, unsigned mem_percent)
{
	if (coin(mem_percent))
		return rnd_mem(size, high);
	struct operand r = {.mem = false};
	r.reg = size == 1 ? rnd_byte_reg(high) : rnd_reg();
	return r;
}

static unsigned imm_len(unsigned size) { return size == 8 ? 4 : size; }

/* ---- instruction groups ---- */

/* Writes all arithmetic flags (defined): ADD/SUB/CMP/NEG of registers. */
static void emit_flag_writer(struct asmbuf *a)
{
	static const uint8_t ops[] = {0x01, 0x29, 0x39}; /* ADD SUB CMP: AF defined too */
	unsigned size = coin(50) ? 8 : 4;
	struct operand rm = {.mem = false, .reg = rnd_reg()};
	uint8_t op = ops[pick(3)];
	emit_insn(a, size, false, &op, 1, rnd_reg(), &rm, 0, 0);
}

/* Reads CF or OF (defined after every producer below) without writing flags. */
static void emit_cf_of_reader(struct asmbuf *a, bool of_too)
{
	unsigned cc = of_too && coin(50) ? (coin(50) ? 0 : 1) : (coin(50) ? 2 : 3); /* O NO B AE */
	if (coin(50)) {
		uint8_t opc[2] = {0x0f, (uint8_t)(0x90 + cc)}; /* SETcc */
		struct operand rm = rnd_rm(1, false, 30);
		emit_insn(a, 1, false, opc, 2, 0, &rm, 0, 0);
	} else {
		uint8_t opc[2] = {0x0f, (uint8_t)(0x40 + cc)}; /* CMOVcc */
		unsigned size = coin(50) ? 8 : (coin(50) ? 4 : 2);
		struct operand rm = rnd_rm(size, false, 30);
		emit_insn(a, size, false, opc, 2, rnd_reg(), &rm, 0, 0);
	}
}

static void gen_alu(struct asmbuf *a)
{
	unsigned op = pick(8), size = rnd_size();
	bool high = size == 1 && coin(25);
	switch (pick(4)) {
	case 0: { /* r/m, r */
		uint8_t opc = (uint8_t)(op << 3 | (size == 1 ? 0 : 1));
		struct operand rm = rnd_rm(size, high, 40);
		emit_insn(a, size, high, &opc, 1, size == 1 ? rnd_byte_reg(high) : rnd_reg(), &rm, 0, 0);
		break;
	}
	case 1: { /* r, r/m */
		uint8_t opc = (uint8_t)(op << 3 | (size == 1 ? 2 : 3));
		struct operand rm = rnd_rm(size, high, 40);
		emit_insn(a, size, high, &opc, 1, size == 1 ? rnd_byte_reg(high) : rnd_reg(), &rm, 0, 0);
		break;
	}
	case 2: { /* r/m, imm */
		struct operand rm = rnd_rm(size, high, 40);
		if (size == 1) {
			uint8_t opc = 0x80;
			emit_insn(a, 1, high, &opc, 1, op, &rm, rnd_value(), 1);
		} else if (coin(50)) {
			uint8_t opc = 0x83;
			emit_insn(a, size, false, &opc, 1, op, &rm, rnd_value(), 1);
		} else {
			uint8_t opc = 0x81;
			emit_insn(a, size, false, &opc, 1, op, &rm, rnd_value(), imm_len(size));
		}
		break;
	}
	default: { /* AL/eAX, imm */
		if (size == 2)
			put8(a, 0x66);
		if (size == 8)
			put8(a, 0x48);
		put8(a, (uint8_t)(op << 3 | (size == 1 ? 4 : 5)));
		put_le(a, rnd_value(), size == 1 ? 1 : imm_len(size));
		break;
	}
	}
	/* AND/OR/XOR leave AF undefined: a writer of all flags follows. */
	if (op == 1 || op == 4 || op == 6)
		emit_flag_writer(a);
}

static void gen_test(struct asmbuf *a)
{
	unsigned size = rnd_size();
	bool high = size == 1 && coin(25);
	struct operand rm = rnd_rm(size, high, 40);
	if (coin(50)) {
		uint8_t opc = size == 1 ? 0x84 : 0x85;
		emit_insn(a, size, high, &opc, 1, size == 1 ? rnd_byte_reg(high) : rnd_reg(), &rm, 0, 0);
	} else {
		uint8_t opc = size == 1 ? 0xf6 : 0xf7;
		emit_insn(a, size, high, &opc, 1, 0, &rm, rnd_value(), size == 1 ? 1 : imm_len(size));
	}
	emit_flag_writer(a); /* TEST leaves AF undefined */
}

static void gen_mov(struct asmbuf *a)
{
	unsigned size = rnd_size();
	bool high = size == 1 && coin(25);
	switch (pick(4)) {
	case 0:
	case 1: {
		uint8_t opc = (uint8_t)((size == 1 ? 0x88 : 0x89) + (pick(2) ? 2 : 0));
		struct operand rm = rnd_rm(size, high, 50);
		emit_insn(a, size, high, &opc, 1, size == 1 ? rnd_byte_reg(high) : rnd_reg(), &rm, 0, 0);
		break;
	}
	case 2: { /* MOV r, imm */
		unsigned r = size == 1 ? rnd_byte_reg(high) : rnd_reg();
		if (size == 2)
			put8(a, 0x66);
		if (size == 8 || r >= 8 || (size == 1 && !high && r >= 4))
			put8(a, (uint8_t)(0x40 | (size == 8 ? 8 : 0) | (r >> 3)));
		put8(a, (uint8_t)((size == 1 ? 0xb0 : 0xb8) + (r & 7)));
		put_le(a, rnd_value(), size);
		break;
	}
	default: { /* MOV r/m, imm */
		uint8_t opc = size == 1 ? 0xc6 : 0xc7;
		struct operand rm = rnd_rm(size, high, 50);
		emit_insn(a, size, high, &opc, 1, 0, &rm, rnd_value(), size == 1 ? 1 : imm_len(size));
		break;
	}
	}
}

static void gen_lea(struct asmbuf *a)
{
	static const unsigned sizes[] = {2, 4, 8};
	uint8_t opc = 0x8d;
	struct operand m = rnd_mem(8, false);
	if (coin(30)) { /* a wild displacement: LEA only computes it */
		m.form = M_BASE32;
		m.disp = (int32_t)rnd();
	}
	emit_insn(a, sizes[pick(3)], false, &opc, 1, rnd_reg(), &m, 0, 0);
}

static void gen_movx(struct asmbuf *a)
{
	static const uint8_t ops[] = {0xb6, 0xb7, 0xbe, 0xbf};
	unsigned k = pick(5);
	if (k == 4) { /* MOVSXD */
		uint8_t opc = 0x63;
		struct operand rm = rnd_rm(4, false, 40);
		emit_insn(a, 8, false, &opc, 1, rnd_reg(), &rm, 0, 0);
		return;
	}
	static const unsigned dsizes[] = {2, 4, 8};
	unsigned ssize = (k & 1) ? 2 : 1;
	bool high = ssize == 1 && coin(20);
	unsigned dsize = high ? 4 : dsizes[pick(3)];
	uint8_t opc[2] = {0x0f, ops[k]};
	struct operand rm = rnd_rm(ssize, high, 40);
	/* The destination is a full register; with AH-BH sources, one below 8. */
	unsigned r = high ? writable[pick(7)] : rnd_reg();
	emit_insn(a, dsize, high, opc, 2, r, &rm, 0, 0);
}

static void gen_unary(struct asmbuf *a)
{
	unsigned size = rnd_size(), ext = pick(4); /* INC DEC NOT NEG */
	bool high = size == 1 && coin(25);
	struct operand rm = rnd_rm(size, high, 35);
	uint8_t opc;
	if (ext < 2)
		opc = size == 1 ? 0xfe : 0xff;
	else
		opc = size == 1 ? 0xf6 : 0xf7;
	emit_insn(a, size, high, &opc, 1, ext, &rm, 0, 0);
	if (ext < 2 && coin(50))
		emit_cf_of_reader(a, true); /* INC/DEC kept the CF from before */
}

/* Shifts and rotates: CF and (count 1) OF defined, the rest not. */
static void gen_shift(struct asmbuf *a)
{
	unsigned size = rnd_size(), ext = pick(8);
	if (ext == 6)
		ext = 4; /* SAL */
	bool high = size == 1 && coin(25);
	struct operand rm = rnd_rm(size, high, 25);
	unsigned width = size * 8;
	unsigned count = 1 + pick(width - 1); /* CF defined for counts below the width */
	unsigned kind = pick(3);
	if (kind == 0) {
		uint8_t opc = size == 1 ? 0xc0 : 0xc1;
		emit_insn(a, size, high, &opc, 1, ext, &rm, count, 1);
	} else if (kind == 1) {
		uint8_t opc = size == 1 ? 0xd0 : 0xd1;
		emit_insn(a, size, high, &opc, 1, ext, &rm, 0, 0);
		count = 1;
	} else { /* by CL: set CL first */
		put8(a, 0xb1); /* mov $count, %cl */
		put8(a, (uint8_t)count);
		uint8_t opc = size == 1 ? 0xd2 : 0xd3;
		emit_insn(a, size, high, &opc, 1, ext, &rm, 0, 0);
	}
	/* CF is defined (count below the width), OF only for a count of 1. */
	if (coin(50))
		emit_cf_of_reader(a, count == 1);
	emit_flag_writer(a);
}

static void gen_imul(struct asmbuf *a)
{
	static const unsigned sizes[] = {2, 4, 8};
	unsigned size = sizes[pick(3)];
	struct operand rm = rnd_rm(size, false, 30);
	switch (pick(3)) {
	case 0: {
		uint8_t opc[2] = {0x0f, 0xaf};
		emit_insn(a, size, false, opc, 2, rnd_reg(), &rm, 0, 0);
		break;
	}
	case 1: {
		uint8_t opc = 0x6b;
		emit_insn(a, size, false, &opc, 1, rnd_reg(), &rm, rnd_value(), 1);
		break;
	}
	default: {
		uint8_t opc = 0x69;
		emit_insn(a, size, false, &opc, 1, rnd_reg(), &rm, rnd_value(), imm_len(size));
		break;
	}
	}
	if (coin(60))
		emit_cf_of_reader(a, true);
	emit_flag_writer(a);
}

static void gen_setcc_cmov(struct asmbuf *a)
{
	unsigned cc = pick(16);
	if (coin(50)) {
		bool high = coin(25);
		uint8_t opc[2] = {0x0f, (uint8_t)(0x90 + cc)};
		struct operand rm = rnd_rm(1, high, 30);
		emit_insn(a, 1, high, opc, 2, 0, &rm, 0, 0);
	} else {
		static const unsigned sizes[] = {2, 4, 8};
		uint8_t opc[2] = {0x0f, (uint8_t)(0x40 + cc)};
		unsigned size = sizes[pick(3)];
		struct operand rm = rnd_rm(size, false, 30);
		emit_insn(a, size, false, opc, 2, rnd_reg(), &rm, 0, 0);
	}
}

static void gen_push_pop(struct asmbuf *a)
{
	unsigned n = 1 + pick(3);
	for (unsigned k = 0; k < n; k++) {
		unsigned r = coin(10) ? 4 : (coin(10) ? R_BASE1 : rnd_reg()); /* PUSH RSP, R14 too */
		if (coin(15)) { /* PUSH imm8 / imm32 */
			if (coin(50)) {
				put8(a, 0x6a);
				put8(a, (uint8_t)rnd());
			} else {
				put8(a, 0x68);
				put_le(a, rnd(), 4);
			}
			continue;
		}
		if (r >= 8)
			put8(a, 0x41);
		put8(a, (uint8_t)(0x50 + (r & 7)));
	}
	if (coin(50)) { /* something on the stack in between */
		uint8_t opc = 0x8b;
		struct operand m = {.mem = true, .form = M_ABS, .disp = (int32_t)(STACK_TOP - 8)};
		emit_insn(a, 8, false, &opc, 1, rnd_reg(), &m, 0, 0);
	}
	for (unsigned k = 0; k < n; k++) {
		unsigned r = rnd_reg();
		if (r >= 8)
			put8(a, 0x41);
		put8(a, (uint8_t)(0x58 + (r & 7)));
	}
}

/* Instructions the translator calls handlers for. */
static void gen_handled(struct asmbuf *a)
{
	switch (pick(5)) {
	case 0: { /* XCHG */
		unsigned size = rnd_size();
		bool high = size == 1 && coin(25);
		uint8_t opc = size == 1 ? 0x86 : 0x87;
		struct operand rm = rnd_rm(size, high, 50);
		emit_insn(a, size, high, &opc, 1, size == 1 ? rnd_byte_reg(high) : rnd_reg(), &rm, 0, 0);
		break;
	}
	case 1: { /* BSWAP */
		unsigned r = rnd_reg();
		put8(a, (uint8_t)(0x40 | (coin(50) ? 8 : 0) | (r >> 3)));
		put8(a, 0x0f);
		put8(a, (uint8_t)(0xc8 + (r & 7)));
		break;
	}
	case 2: { /* BT r/m, imm8: CF defined */
		static const unsigned sizes[] = {2, 4, 8};
		unsigned size = sizes[pick(3)];
		uint8_t opc[2] = {0x0f, 0xba};
		struct operand rm = rnd_rm(size, false, 40);
		emit_insn(a, size, false, opc, 2, 4 + pick(4), &rm, pick(64), 1); /* BT BTS BTR BTC */
		if (coin(50))
			emit_cf_of_reader(a, false);
		emit_flag_writer(a);
		break;
	}
	case 3: { /* ADC/SBB read CF */
		unsigned size = rnd_size();
		uint8_t opc = (uint8_t)((coin(50) ? 0x10 : 0x18) | (size == 1 ? 0 : 1));
		struct operand rm = rnd_rm(size, false, 40);
		emit_insn(a, size, false, &opc, 1, size == 1 ? rnd_byte_reg(false) : rnd_reg(), &rm, 0, 0);
		break;
	}
	default: { /* CMC / STC / CLC */
		static const uint8_t ops[] = {0xf5, 0xf9, 0xf8};
		put8(a, ops[pick(3)]);
		break;
	}
	}
}

/* A #GP: an access through a non-canonical address in a register. */
static void gen_fault_gp(struct asmbuf *a)
{
	unsigned r = rnd_reg();
	put8(a, (uint8_t)(0x48 | (r >> 3)));
	put8(a, (uint8_t)(0xb8 + (r & 7)));
	put_le(a, coin(50) ? 0x8000000000001000ULL : 0x0000800000000000ULL, 8);
	/* op r2, (r) / op (r), r2 with a ModRM of mod 0 (no displacement) */
	static const uint8_t ops[] = {0x8b, 0x89, 0x01, 0x85};
	unsigned r2 = rnd_reg();
	put8(a, (uint8_t)(0x48 | ((r2 >> 3) << 2) | (r >> 3)));
	put8(a, ops[pick(4)]);
	if ((r & 7) == 5) /* RBP/R13 need a displacement */
		put8(a, (uint8_t)(0x40 | (r2 & 7) << 3 | 5)), put8(a, 0);
	else
		put8(a, (uint8_t)((r2 & 7) << 3 | (r & 7)));
}

/* A #PF: an access to UNMAPPED of some kind. */
static void gen_fault(struct asmbuf *a)
{
	if (coin(25)) {
		gen_fault_gp(a);
		return;
	}
	struct operand m = {.mem = true, .form = M_ABS, .disp = (int32_t)(UNMAPPED + pick(0x100))};
	if (coin(20)) /* straddling: the first bytes are mapped */
		m.disp = (int32_t)(UNMAPPED - 1 - pick(7));
	else if (coin(50)) { /* through R15: DATA + 0x1000 + disp */
		m.form = M_BASE32;
		m.disp = (int32_t)(UNMAPPED - (DATA + 0x1000) + pick(0x100));
	}
	static const uint8_t ops[] = {0x8b, 0x89, 0x01, 0x03, 0x39, 0x87};
	uint8_t opc = ops[pick(6)];
	emit_insn(a, 8, false, &opc, 1, rnd_reg(), &m, 0, 0);
}

typedef void (*gen_fn)(struct asmbuf *a);

static void gen_simple(struct asmbuf *a);

/* call f; jmp over; f: <a group>; ret; over: */
static void gen_call(struct asmbuf *a)
{
	put8(a, 0xe8);
	put_le(a, 5, 4);
	put8(a, 0xe9);
	size_t field = a->n;
	put_le(a, 0, 4);
	gen_simple(a);
	put8(a, 0xc3);
	int32_t rel = (int32_t)(a->n - (field + 4));
	if (!a->overflow)
		memcpy(&a->b[field], &rel, 4);
}

/* LOCK ADD/OR/AND/SUB/XOR, XADD, CMPXCHG on memory. */
static void gen_lock(struct asmbuf *a)
{
	unsigned size = rnd_size();
	struct operand m = rnd_mem(size, false);
	m.segment = 0;
	put8(a, 0xf0);
	unsigned k = pick(4);
	if (k < 2) {
		static const uint8_t alu[] = {0, 1, 4, 5, 6};
		uint8_t opc = (uint8_t)(alu[pick(5)] << 3 | (size == 1 ? 0 : 1));
		emit_insn(a, size, false, &opc, 1, size == 1 ? rnd_byte_reg(false) : rnd_reg(), &m, 0, 0);
	} else {
		uint8_t opc[2] = {0x0f, (uint8_t)((k == 2 ? 0xc0 : 0xb0) | (size == 1 ? 0 : 1))};
		emit_insn(a, size, false, opc, 2, size == 1 ? rnd_byte_reg(false) : rnd_reg(), &m, 0, 0);
	}
	emit_flag_writer(a); /* logical operations leave AF undefined */
}

/* REP MOVS/STOS/LODS, REPE CMPS/SCAS over the data area, sometimes
 * backwards (DF = 1). */
static void gen_string(struct asmbuf *a)
{
	struct operand d = {.mem = true, .form = M_BASE8, .disp = (int32_t)pick(0x78)};
	struct operand s2 = {.mem = true, .form = M_BASE32, .disp = (int32_t)pick(0x800)};
	uint8_t lea = 0x8d;
	emit_insn(a, 8, false, &lea, 1, 7, &d, 0, 0);  /* lea d(%r14), %rdi */
	emit_insn(a, 8, false, &lea, 1, 6, &s2, 0, 0); /* lea s(%r15), %rsi */
	put8(a, 0xb9);                                 /* mov $n, %ecx */
	put_le(a, pick(6) == 0 ? 0 : pick(160), 4);
	bool back = coin(15);
	if (back)
		put8(a, 0xfd); /* std */
	static const uint8_t ops[] = {0xa4, 0xa5, 0xaa, 0xab, 0xac, 0xad, 0xa6, 0xa7, 0xae, 0xaf};
	uint8_t op = ops[pick(10)];
	unsigned size = (op & 1) ? (coin(50) ? 8 : (coin(50) ? 4 : 2)) : 1;
	if (size == 2)
		put8(a, 0x66);
	put8(a, (op >= 0xa6 && op <= 0xa7) || op >= 0xae ? (coin(50) ? 0xf3 : 0xf2) : 0xf3);
	if (size == 8)
		put8(a, 0x48);
	put8(a, op);
	if (back)
		put8(a, 0xfc); /* cld */
}

static void gen_simple(struct asmbuf *a)
{
	static const gen_fn gens[] = {gen_alu, gen_alu, gen_alu, gen_test, gen_mov, gen_mov,
				      gen_lea, gen_movx, gen_unary, gen_unary, gen_shift, gen_imul,
				      gen_setcc_cmov, gen_setcc_cmov, gen_push_pop, gen_handled};
	gens[pick(sizeof(gens) / sizeof(gens[0]))](a);
}

/* A generated program: code for CODE and the registers to start with. */
struct program {
	uint8_t code[CODE_MAX];
	size_t n;
	uint64_t regs[16];
};

/* Emits groups into a, with forward Jcc/JMP over the next groups. */
static void gen_program(uint64_t seed, struct program *p)
{
	struct asmbuf *a = calloc(1, sizeof(*a));
	CHECK(a != NULL);
	rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (unsigned r = 0; r < 16; r++)
		p->regs[r] = rnd_value();
	p->regs[GPR_RSP] = STACK_TOP;
	p->regs[12] = LOOPS;
	p->regs[R_INDEX] = pick(0x20);
	p->regs[R_BASE1] = DATA + 0x800;
	p->regs[R_BASE2] = DATA + 0x1000;
	unsigned ngroups = 20 + pick(MAX_GROUPS - 20);
	int fault_at = coin(30) ? (int)pick(ngroups) : -1;
	/* A group and its position are generated in one pass; a branch over
	 * the next k groups is patched once they are placed. */
	size_t loop_head = a->n;
	struct {
		size_t field;
		unsigned after_group; /* the branch lands before this group */
	} branches[MAX_GROUPS];
	unsigned nbranches = 0;
	for (unsigned gi = 0; gi < ngroups && !a->overflow; gi++) {
		for (unsigned k = 0; k < nbranches; k++)
			if (branches[k].after_group == gi && branches[k].field) {
				size_t f = branches[k].field;
				int32_t rel = (int32_t)(a->n - (f + 4));
				memcpy(&a->b[f], &rel, 4);
				branches[k].field = 0;
			}
		if (coin(8) && gi + 1 < ngroups) { /* a flags test and a forward branch */
			emit_flag_writer(a);
			if (coin(80)) {
				put8(a, 0x0f);
				put8(a, (uint8_t)(0x80 + pick(16)));
			} else {
				put8(a, 0xe9);
			}
			branches[nbranches].field = a->n;
			branches[nbranches].after_group = gi + 1 + pick(3);
			nbranches++;
			put_le(a, 0, 4);
		}
		/* RIP-relative displacements depend on the final address, which
		 * is a->n here: encode the group straight into a. */
		if ((int)gi == fault_at)
			gen_fault(a);
		else if (coin(4))
			gen_call(a);
		else if (coin(3))
			gen_lock(a);
		else if (coin(3))
			gen_string(a);
		else
			gen_simple(a);
	}
	/* Branches past the last group land here. */
	for (unsigned k = 0; k < nbranches; k++)
		if (branches[k].field) {
			size_t f = branches[k].field;
			int32_t rel = (int32_t)(a->n - (f + 4));
			memcpy(&a->b[f], &rel, 4);
		}
	emit_flag_writer(a);
	/* dec %r12d; jnz loop_head (rel32); then every flag defined; hlt */
	put8(a, 0x41);
	put8(a, 0xff);
	put8(a, 0xcc);
	put8(a, 0x0f);
	put8(a, 0x85);
	put_le(a, (uint32_t)(int32_t)(loop_head - (a->n + 4)), 4);
	emit_flag_writer(a);
	put8(a, 0xf4);
	CHECK(!a->overflow);
	memcpy(p->code, a->b, a->n);
	p->n = a->n;
	free(a);
}

/* ---- running ---- */

struct rnd_outcome {
	bool done; /* the child got this far */
	enum vcpu_exit_kind kind;
	uint64_t gpr[16], rip, rflags, cr2;
	uint64_t frame[6];
	uint64_t data_hash, rip_hash, stack_hash;
};

struct rnd_batch {
	bool interpret;
	uint64_t first, count;
	struct rnd_outcome *out; /* shared, [count] */
	uint64_t *current;       /* shared: the sequence being run */
};

static uint64_t hash_mem(struct machine *m, uint64_t gpa, size_t len)
{
	const uint8_t *p = guest_mem_ptr(&m->mem, gpa, len);
	CHECK(p != NULL);
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t k = 0; k < len; k++)
		h = (h ^ p[k]) * 0x100000001b3ULL;
	return h;
}

static void run_one(bool interpret, uint64_t seed, struct rnd_outcome *o)
{
	struct program *p = calloc(1, sizeof(*p));
	CHECK(p != NULL);
	gen_program(seed, p);
	struct machine *m = machine_new(interpret, 0);
	put(m, CODE, p->code, p->n);
	static uint8_t fill[DATA_LEN];
	rng_state = seed ^ 0xabcdef;
	for (size_t k = 0; k < sizeof(fill); k++)
		fill[k] = (uint8_t)rnd();
	put(m, DATA, fill, sizeof(fill));
	put(m, RIPDATA, fill, 0x2000);
	put(m, STACK_TOP - 0x1000, fill, 0x2000);
	memcpy(m->st.gpr, p->regs, sizeof(p->regs));
	m->st.seg[SEG_FS].base = FS_BASE;
	m->st.seg[SEG_GS].base = GS_BASE;
	machine_sync(m);
	o->kind = machine_run(m, 10000);
	memcpy(o->gpr, m->st.gpr, sizeof(o->gpr));
	o->rip = m->st.rip;
	o->rflags = m->st.rflags;
	o->cr2 = m->st.cr2;
	/* (RSP may be anything after wild code; then there is no frame) */
	if (guest_mem_read(&m->mem, m->st.gpr[GPR_RSP], o->frame, sizeof(o->frame)))
		memset(o->frame, 0, sizeof(o->frame));
	o->data_hash = hash_mem(m, DATA, DATA_LEN);
	o->rip_hash = hash_mem(m, RIPDATA, 0x2000);
	o->stack_hash = hash_mem(m, STACK_TOP - 0x1000, 0x2000);
	if (!interpret) {
		struct engine_vcpu_stats s;
		machine_stats(m, &s);
		CHECK(s.jit.blocks > 0);
	}
	o->done = true;
	machine_free(m);
	free(p);
}

static void run_batch(void *arg)
{
	struct rnd_batch *b = arg;
	for (uint64_t k = 0; k < b->count; k++) {
		*b->current = b->first + k;
		run_one(b->interpret, b->first + k, &b->out[k]);
	}
}

/* Runs a batch in a child; its wait status. A crash names its sequence
 * in *b->current. */
static int run_batch_child(struct rnd_batch *b, unsigned seconds)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static const int sigs[] = {SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGSYS, SIGABRT, SIGTRAP};
		for (unsigned k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
			signal(sigs[k], SIG_DFL);
		alarm(seconds);
		run_batch(b);
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void print_program(uint64_t seed)
{
	struct program *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	gen_program(seed, p);
	print_error("sequence %llu (%zu bytes at %#llx):\n", (unsigned long long)seed, p->n,
		    (unsigned long long)CODE);
	for (size_t k = 0; k < p->n; k++)
		print_error("%02x%s", p->code[k], (k % 32 == 31 || k + 1 == p->n) ? "\n" : " ");
	free(p);
}

/* The frame's RFLAGS without AF (a logical operation may have set it last). */
#define FRAME_FLAGS_MASK (~(uint64_t)FLAG_AF)

static bool same_outcome(const struct rnd_outcome *j, const struct rnd_outcome *i, uint64_t seed)
{
	bool same = true;
	for (unsigned r = 0; r < 16; r++)
		if (j->gpr[r] != i->gpr[r]) {
			print_error("sequence %llu: GPR %u translator %#llx, interpreter %#llx\n",
				    (unsigned long long)seed, r, (unsigned long long)j->gpr[r],
				    (unsigned long long)i->gpr[r]);
			same = false;
		}
	if (j->kind != i->kind || j->rip != i->rip || j->cr2 != i->cr2) {
		print_error("sequence %llu: exit %d/%d, RIP %#llx/%#llx, CR2 %#llx/%#llx "
			    "(translator/interpreter)\n",
			    (unsigned long long)seed, j->kind, i->kind, (unsigned long long)j->rip,
			    (unsigned long long)i->rip, (unsigned long long)j->cr2,
			    (unsigned long long)i->cr2);
		same = false;
	}
	if ((j->rflags ^ i->rflags) & (FLAGS_ARITH | FLAG_IF | FLAG_DF)) {
		print_error("sequence %llu: RFLAGS translator %#llx, interpreter %#llx\n",
			    (unsigned long long)seed, (unsigned long long)j->rflags,
			    (unsigned long long)i->rflags);
		same = false;
	}
	bool faulted = i->rip >= HANDLERS && i->rip < HANDLERS + 0x1000;
	for (unsigned k = 0; faulted && k < 6; k++) {
		uint64_t mask = k == 3 ? FRAME_FLAGS_MASK : ~0ULL; /* RFLAGS, after an error code */
		if ((j->frame[k] ^ i->frame[k]) & mask) {
			print_error("sequence %llu: exception frame[%u] translator %#llx, interpreter %#llx\n",
				    (unsigned long long)seed, k, (unsigned long long)j->frame[k],
				    (unsigned long long)i->frame[k]);
			same = false;
		}
	}
	if (!same && faulted)
		print_error("sequence %llu: exception %llu at RIP %#llx (interpreter)\n",
			    (unsigned long long)seed, (unsigned long long)((i->rip - HANDLERS) / 16),
			    (unsigned long long)i->frame[1]);
	if (j->data_hash != i->data_hash || j->rip_hash != i->rip_hash || j->stack_hash != i->stack_hash) {
		print_error("sequence %llu: memory differs (data %d, rip data %d, stack %d)\n",
			    (unsigned long long)seed, j->data_hash != i->data_hash,
			    j->rip_hash != i->rip_hash, j->stack_hash != i->stack_hash);
		same = false;
	}
	return same;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 0) : def;
}

static void test_random_sequences(void **state)
{
	(void)state;
	uint64_t first = 1, count = env_u64("JITTEST_SEQS", RANDOM_SEQS);
	if (getenv("JITTEST_SEED")) {
		first = env_u64("JITTEST_SEED", 1);
		count = 1;
		print_program(first);
	}
	size_t bytes = 2 * count * sizeof(struct rnd_outcome) + 2 * sizeof(uint64_t);
	uint8_t *shared = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(shared != MAP_FAILED);
	struct rnd_outcome *out = (struct rnd_outcome *)(void *)shared;
	uint64_t *current = (uint64_t *)(void *)(shared + 2 * count * sizeof(struct rnd_outcome));
	struct rnd_batch jit = {.interpret = false, .first = first, .count = count, .out = out,
				.current = &current[0]};
	struct rnd_batch interp = {.interpret = true, .first = first, .count = count,
				   .out = out + count, .current = &current[1]};
	unsigned differ = 0, faults = 0;
	unsigned seconds = CHILD_SECONDS + (unsigned)(count / 50);
	int istatus = run_batch_child(&interp, seconds);
	int status = run_batch_child(&jit, seconds);
	if (!(WIFEXITED(istatus) && WEXITSTATUS(istatus) == 0)) {
		print_error("interpreter run of sequence %llu: %s %d\n", (unsigned long long)current[1],
			    WIFSIGNALED(istatus) ? "killed by signal" : "exit status",
			    WIFSIGNALED(istatus) ? WTERMSIG(istatus) : WEXITSTATUS(istatus));
		fail();
	}
	bool child_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	for (uint64_t k = 0; k < count; k++) {
		if (!out[k].done || !out[count + k].done)
			break;
		if (out[count + k].rip >= HANDLERS && out[count + k].rip < HANDLERS + 0x1000)
			faults++;
		if (!same_outcome(&out[k], &out[count + k], first + k)) {
			if (differ++ < 3)
				print_program(first + k);
		}
	}
	if (!child_ok) {
		print_error("translator run of sequence %llu: %s %d\n", (unsigned long long)current[0],
			    WIFSIGNALED(status) ? "killed by signal" : "exit status",
			    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		print_program(current[0]);
	}
	print_message("%llu sequences from %llu, %u ending in an exception, %u different\n",
		      (unsigned long long)count, (unsigned long long)first, faults, differ);
	munmap(shared, bytes);
	assert_true(child_ok);
	assert_int_equal(differ, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random_sequences),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
