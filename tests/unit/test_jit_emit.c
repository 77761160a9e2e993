/* soft/jit/emit: every instruction shape over a spread of operands (all
 * sixteen registers, the SPL-DIL byte registers, RSP/RBP/R12/R13 bases,
 * every index and scale, disp8/disp32 boundaries, RIP-relative, imm8 and
 * imm32 forms, sizes 1/2/4/8), each encoding disassembled by libcapstone
 * and compared with the expected Intel-syntax text; exact bytes for the
 * shortest-form choices; overflow and invalid operands. The code is
 * emitted as if it ran at EXEC, away from the buffer, as in the code cache.
 *
 * Capstone's printing, which the expected texts follow: immediates of
 * 64-bit operations and sign-extended imm8 forms are signed, other
 * immediates unsigned at the operand size; numbers above 9 in hex; a zero
 * displacement is left out. An absolute [disp32] is the sign-extended
 * address, which capstone 4 prints truncated to the size of the register
 * operand in some instructions (mov dl, byte ptr [0x80] for disp32 -0x80):
 * the check accepts the address at 64, 32, 16 or 8 bits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <capstone/capstone.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/soft/jit/emit.h"

#define EXEC 0x40001000ull

static csh cs;
static uint8_t buf[64];
static unsigned failures, checks;
static uintptr_t rip_target; /* of the RIP-relative operand in the expected text */
static uint64_t abs_addr;    /* of the absolute [disp32] operand in the expected text */

static const char *const r8n[16] = {"al",  "cl",  "dl",   "bl",   "spl",  "bpl",  "sil",  "dil",
				    "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"};
static const char *const r16n[16] = {"ax",  "cx",  "dx",   "bx",   "sp",   "bp",   "si",   "di",
				     "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"};
static const char *const r32n[16] = {"eax", "ecx", "edx",  "ebx",  "esp",  "ebp",  "esi",  "edi",
				     "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"};
static const char *const r64n[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
				     "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
static const char *const ccn[16] = {"o", "no", "b", "ae", "e", "ne", "be", "a",
				    "s", "ns", "p", "np", "l", "ge", "le", "g"};
static const char *const alun[8] = {"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"};
static const char *const shiftn[8] = {"rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"};
static const char *const unaryn[8] = {"inc", "dec", "not", "neg", "mul", "imul", "div", "idiv"};
static const char *const btn[4] = {"bt", "bts", "btr", "btc"};
static const unsigned sizes[4] = {1, 2, 4, 8};

static const char *reg(unsigned sz, int r)
{
	switch (sz) {
	case 1: return r8n[r];
	case 2: return r16n[r];
	case 4: return r32n[r];
	}
	return r64n[r];
}

/* printf into one of a ring of buffers, so results can be nested. */
static const char *f(const char *fmt, ...)
{
	static char ring[32][192];
	static unsigned next;
	char *s = ring[next++ % 32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s, sizeof(ring[0]), fmt, ap);
	va_end(ap);
	return s;
}

static const char *num_u(uint64_t v)
{
	return v > 9 ? f("0x%llx", (unsigned long long)v) : f("%llu", (unsigned long long)v);
}
static const char *num_s(int64_t v)
{
	return v < 0 ? f("-%s", num_u(-(uint64_t)v)) : num_u((uint64_t)v);
}
static uint64_t mask(unsigned sz) { return sz == 8 ? ~0ull : (1ull << (8 * sz)) - 1; }
static int64_t sext(int64_t v, unsigned sz)
{
	return sz == 1 ? (int8_t)v : sz == 2 ? (int16_t)v : sz == 4 ? (int32_t)v : v;
}
static bool fits8(int64_t v) { return v >= -128 && v <= 127; }

/* An immediate of the full-size forms (MOV, TEST, 81 /op, 69 /r). */
static const char *imm_full(unsigned sz, int64_t v)
{
	v = sext(v, sz);
	return sz == 8 ? num_s(v) : num_u((uint64_t)v & mask(sz));
}

/* An immediate of an instruction with a sign-extended imm8 form (the ALU
 * group, IMUL), which the emitter picks whenever it fits. */
static const char *imm_alu(unsigned sz, int64_t v)
{
	v = sext(v, sz);
	return sz > 1 && fits8(v) ? num_s(v) : imm_full(sz, v);
}

/* Capstone prints the immediates of the logical ops as bit masks: unsigned. */
static const char *imm_aluop(unsigned op, unsigned sz, int64_t v)
{
	bool logical = op == HALU_OR || op == HALU_AND || op == HALU_XOR;
	return logical ? num_u((uint64_t)sext(v, sz) & mask(sz)) : imm_alu(sz, v);
}

/* MOV r64, imm in its shortest form. */
static const char *mov_ri_text(int r, uint64_t v)
{
	if (v <= 0xffffffff)
		return f("mov %s, %s", r32n[r], num_u(v));
	if ((int64_t)v == (int32_t)v)
		return f("mov %s, %s", r64n[r], num_s((int64_t)v));
	return f("movabs %s, %s", r64n[r], num_u(v));
}

static const char *ptr(unsigned sz)
{
	switch (sz) {
	case 0: return "";
	case 1: return "byte ptr ";
	case 2: return "word ptr ";
	case 4: return "dword ptr ";
	case 8: return "qword ptr ";
	}
	return "xmmword ptr ";
}

/* " + 0x10", " - 8" or nothing, as after a base or index. */
static const char *disp_text(int64_t d)
{
	if (d == 0)
		return "";
	return d < 0 ? f(" - %s", num_u(-(uint64_t)d)) : f(" + %s", num_u((uint64_t)d));
}

/* A memory operand as capstone prints it; sz 0 (LEA) has no size. A
 * RIP-relative displacement is written "{R}", filled in once the
 * instruction's length is known. */
static const char *mem(unsigned sz, struct hmem m)
{
	if (m.base == HMEM_RIP) {
		rip_target = m.target;
		return f("%s[rip{R}]", ptr(sz));
	}
	if (m.base == HREG_NONE && m.index == HREG_NONE) {
		abs_addr = (uint64_t)(int64_t)m.disp;
		return f("%s[{A}]", ptr(sz));
	}
	const char *base = m.base == HREG_NONE ? "" : r64n[m.base];
	const char *index = "";
	if (m.index != HREG_NONE)
		index = f("%s%s%s", m.base == HREG_NONE ? "" : " + ", r64n[m.index],
			  m.scale == 1 ? "" : f("*%u", m.scale));
	return f("%s[%s%s%s]", ptr(sz), base, index, disp_text(m.disp));
}

static const char *hex(const uint8_t *p, size_t n)
{
	char *s = (char *)f("%s", "");
	for (size_t i = 0; i < n && i < 60; i++)
		sprintf(s + 3 * i, "%02x ", p[i]);
	return s;
}

static void report(const char *file, int line, const char *what)
{
	failures++;
	if (failures <= 3000)
		print_error("%s:%d: %s\n", file, line, what);
}

/* The buffer holds exactly one instruction that disassembles to `expect`. */
static void check(const struct emit *e, const char *expect, const char *file, int line)
{
	checks++;
	size_t len = emit_offset(e);
	if (!emit_ok(e)) {
		report(file, line,
		       f("emit failed (overflow %d invalid %d) for '%s'", e->overflow, e->invalid,
			 expect));
		return;
	}
	if (strstr(expect, "{R}")) {
		const char *r = disp_text((int64_t)(rip_target - (EXEC + len)));
		const char *at = strstr(expect, "{R}");
		expect = f("%.*s%s%s", (int)(at - expect), expect, r, at + 3);
	}
	cs_insn *in;
	size_t n = cs_disasm(cs, buf, len, EXEC, 0, &in);
	const char *got = n ? f("%s%s%s", in[0].mnemonic, in[0].op_str[0] ? " " : "", in[0].op_str)
			    : "(undecodable)";
	const char *at = strstr(expect, "{A}");
	if (at) {
		static const uint64_t masks[] = {~0ull, 0xffffffff, 0xffff, 0xff};
		const char *want = NULL;
		for (unsigned k = 0; k < 4; k++) {
			want = f("%.*s%s%s", (int)(at - expect), expect, num_u(abs_addr & masks[k]),
				 at + 3);
			if (strcmp(got, want) == 0)
				break;
		}
		expect = want;
	}
	if (n != 1 || in[0].size != len)
		report(file, line,
		       f("'%s': %zu bytes [%s] decode as %zu instructions, first '%s'", expect, len,
			 hex(buf, len), n, got));
	else if (strcmp(got, expect) != 0)
		report(file, line, f("expected '%s', got '%s' [%s]", expect, got, hex(buf, len)));
	if (n)
		cs_free(in, n);
}

/* Emits `stmt` (using `e`) into a fresh buffer and checks its disassembly. */
#define EXPECT(text, stmt)                                                                         \
	do {                                                                                       \
		struct emit e_;                                                                    \
		emit_init(&e_, buf, sizeof(buf), EXEC);                                            \
		const char *text_ = (text);                                                        \
		{                                                                                  \
			struct emit *e = &e_;                                                      \
			stmt;                                                                      \
		}                                                                                  \
		check(&e_, text_, __FILE__, __LINE__);                                             \
	} while (0)

/* Same, and the bytes must be exactly `bytes` (a string of hex pairs). */
#define EXPECT_BYTES(text, bytes, stmt)                                                            \
	do {                                                                                       \
		struct emit e_;                                                                    \
		emit_init(&e_, buf, sizeof(buf), EXEC);                                            \
		{                                                                                  \
			struct emit *e = &e_;                                                      \
			stmt;                                                                      \
		}                                                                                  \
		check(&e_, (text), __FILE__, __LINE__);                                            \
		check_bytes(&e_, (bytes), __FILE__, __LINE__);                                     \
	} while (0)

static void check_bytes(const struct emit *e, const char *bytes, const char *file, int line)
{
	uint8_t want[32];
	size_t n = 0;
	for (const char *s = bytes; *s; s++) {
		unsigned v;
		if (*s == ' ')
			continue;
		sscanf(s, "%2x", &v);
		want[n++] = (uint8_t)v;
		s++;
	}
	if (n != emit_offset(e) || memcmp(want, buf, n) != 0)
		report(file, line, f("bytes [%s], expected [%s]", hex(buf, emit_offset(e)), bytes));
}

#define DONE() assert_int_equal(failures, 0)

static int reset(void **state)
{
	(void)state;
	failures = 0;
	return 0;
}

/* ---- operand spreads ---- */

static const int32_t disps[] = {0,    1,   -1,   9,          10,        127,
				-128, 128, -129, 0x12345678, INT32_MAX, INT32_MIN};
#define NDISPS (sizeof(disps) / sizeof(disps[0]))
static const unsigned scales[] = {1, 2, 4, 8};

/* A sample of memory operands: every base with small and boundary
 * displacements, every index with every scale, no base, absolute, RIP. */
static unsigned mem_sample(struct hmem *out, unsigned max)
{
	unsigned n = 0;
	for (int b = -1; b < 16; b++)
		for (unsigned d = 0; d < NDISPS; d += 3)
			if (n < max)
				out[n++] = hmem_base(b, disps[(d + (unsigned)b + 1) % NDISPS]);
	for (int i = 0; i < 16; i++) {
		if (i == H_RSP)
			continue;
		for (unsigned s = 0; s < 4 && n + 2 <= max; s++) {
			out[n++] = hmem_sib((i * 5 + (int)s) % 16, i, scales[s],
					    disps[(i + (int)s) % NDISPS]);
			out[n++] =
				hmem_sib(HREG_NONE, i, scales[s], disps[(i * 3 + (int)s) % NDISPS]);
		}
	}
	static const int64_t rip[] = {0, 0x100, -0x100, 0x7fff0000, -0x7fff0000};
	for (unsigned r = 0; r < 5 && n < max; r++)
		out[n++] = hmem_rip((uintptr_t)(EXEC + rip[r]));
	return n;
}

/* ---- moves ---- */

static void test_mov_rr(void **state)
{
	(void)state;
	for (unsigned s = 0; s < 4; s++)
		for (int a = 0; a < 16; a++)
			for (int b = 0; b < 16; b++)
				EXPECT(f("mov %s, %s", reg(sizes[s], a), reg(sizes[s], b)),
				       emit_mov_rr(e, sizes[s], a, b));
	DONE();
}

/* Every base, index, scale and displacement boundary on one shape. */
static void test_mov_memory_operands(void **state)
{
	(void)state;
	for (int b = -1; b < 16; b++)
		for (int i = -1; i < 16; i++)
			for (unsigned s = 0; s < 4; s++)
				for (unsigned d = 0; d < NDISPS; d++) {
					if (i == H_RSP || (i == HREG_NONE && s > 0))
						continue;
					struct hmem m = hmem_sib(b, i, scales[s], disps[d]);
					int r = (b + i + 17) & 15;
					EXPECT(f("mov %s, %s", r64n[r], mem(8, m)),
					       emit_mov_rm(e, 8, r, m));
				}
	DONE();
}

static void test_mov_load_store(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned k = 0; k < n; k++)
		for (unsigned s = 0; s < 4; s++) {
			unsigned sz = sizes[s];
			int r = (int)(k + s) % 16;
			EXPECT(f("mov %s, %s", reg(sz, r), mem(sz, ms[k])),
			       emit_mov_rm(e, sz, r, ms[k]));
			EXPECT(f("mov %s, %s", mem(sz, ms[k]), reg(sz, r)),
			       emit_mov_mr(e, sz, ms[k], r));
			int32_t imm = (int32_t)(k * 0x01010101u * 37u);
			EXPECT(f("mov %s, %s", mem(sz, ms[k]), imm_full(sz, imm)),
			       emit_mov_mi(e, sz, ms[k], imm));
		}
	DONE();
}

static void test_mov_ri(void **state)
{
	(void)state;
	static const uint64_t imms[] = {0,
					1,
					9,
					10,
					0x7f,
					0x80,
					0xff,
					0x7fff,
					0xffff,
					0x7fffffff,
					0x80000000,
					0xffffffff,
					0x100000000,
					0x7fffffffffffffff,
					0x8000000000000000,
					0xffffffff80000000,
					0xffffffffffffffff,
					0x123456789abcdef0};
	for (int r = 0; r < 16; r++)
		for (unsigned k = 0; k < sizeof(imms) / sizeof(imms[0]); k++) {
			uint64_t v = imms[k];
			for (unsigned s = 0; s < 3; s++)
				EXPECT(f("mov %s, %s", reg(sizes[s], r), num_u(v & mask(sizes[s]))),
				       emit_mov_ri(e, sizes[s], r, v));
			EXPECT(mov_ri_text(r, v), emit_mov_ri(e, 8, r, v));
		}
	DONE();
}

static void test_movzx_movsx_lea(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	static const unsigned pairs[][2] = {{2, 1}, {4, 1}, {8, 1}, {4, 2}, {8, 2}};
	for (unsigned p = 0; p < 5; p++) {
		unsigned d = pairs[p][0], s = pairs[p][1];
		for (int a = 0; a < 16; a++)
			for (int b = 0; b < 16; b++) {
				EXPECT(f("movzx %s, %s", reg(d, a), reg(s, b)),
				       emit_movzx_rr(e, d, s, a, b));
				EXPECT(f("movsx %s, %s", reg(d, a), reg(s, b)),
				       emit_movsx_rr(e, d, s, a, b));
			}
		for (unsigned k = 0; k < n; k++) {
			EXPECT(f("movzx %s, %s", reg(d, (int)k % 16), mem(s, ms[k])),
			       emit_movzx_rm(e, d, s, (int)k % 16, ms[k]));
			EXPECT(f("movsx %s, %s", reg(d, (int)k % 16), mem(s, ms[k])),
			       emit_movsx_rm(e, d, s, (int)k % 16, ms[k]));
		}
	}
	for (int a = 0; a < 16; a++)
		for (int b = 0; b < 16; b++)
			EXPECT(f("movsxd %s, %s", r64n[a], r32n[b]), emit_movsxd_rr(e, a, b));
	for (unsigned k = 0; k < n; k++) {
		EXPECT(f("movsxd %s, %s", r64n[k % 16], mem(4, ms[k])),
		       emit_movsxd_rm(e, (int)k % 16, ms[k]));
		for (unsigned s = 1; s < 4; s++)
			EXPECT(f("lea %s, %s", reg(sizes[s], (int)(k * 7) % 16), mem(0, ms[k])),
			       emit_lea(e, sizes[s], (int)(k * 7) % 16, ms[k]));
	}
	DONE();
}

static void test_xchg_bswap(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned s = 0; s < 4; s++) {
		unsigned sz = sizes[s];
		for (int a = 0; a < 16; a++)
			for (int b = 0; b < 16; b++)
				EXPECT(f("xchg %s, %s", reg(sz, a), reg(sz, b)),
				       emit_xchg_rr(e, sz, a, b));
		for (unsigned k = 0; k < n; k += 3)
			EXPECT(f("xchg %s, %s", mem(sz, ms[k]), reg(sz, (int)k % 16)),
			       emit_xchg_mr(e, sz, ms[k], (int)k % 16));
	}
	for (int r = 0; r < 16; r++) {
		EXPECT(f("bswap %s", r32n[r]), emit_bswap(e, 4, r));
		EXPECT(f("bswap %s", r64n[r]), emit_bswap(e, 8, r));
	}
	DONE();
}

/* ---- arithmetic ---- */

static const int32_t alu_imms[] = {0,      1,       -1,     9,          10,        127,
				   128,    -128,    -129,   255,        256,       0x7fff,
				   0x8000, -0x8000, 0xffff, 0x12345678, INT32_MAX, INT32_MIN};
#define NALU_IMMS (sizeof(alu_imms) / sizeof(alu_imms[0]))

static void test_alu(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned op = 0; op < 8; op++)
		for (unsigned s = 0; s < 4; s++) {
			unsigned sz = sizes[s];
			for (int a = 0; a < 16; a++)
				for (int b = 0; b < 16; b++)
					EXPECT(f("%s %s, %s", alun[op], reg(sz, a), reg(sz, b)),
					       emit_alu_rr(e, (enum halu)op, sz, a, b));
			for (int r = 0; r < 16; r++)
				for (unsigned k = 0; k < NALU_IMMS; k++)
					EXPECT(f("%s %s, %s", alun[op], reg(sz, r),
						 imm_aluop(op, sz, alu_imms[k])),
					       emit_alu_ri(e, (enum halu)op, sz, r, alu_imms[k]));
			for (unsigned k = 0; k < n; k += 2) {
				int r = (int)(k + op) % 16;
				int32_t imm = alu_imms[k % NALU_IMMS];
				EXPECT(f("%s %s, %s", alun[op], reg(sz, r), mem(sz, ms[k])),
				       emit_alu_rm(e, (enum halu)op, sz, r, ms[k]));
				EXPECT(f("%s %s, %s", alun[op], mem(sz, ms[k]), reg(sz, r)),
				       emit_alu_mr(e, (enum halu)op, sz, ms[k], r));
				EXPECT(f("%s %s, %s", alun[op], mem(sz, ms[k]),
					 imm_aluop(op, sz, imm)),
				       emit_alu_mi(e, (enum halu)op, sz, ms[k], imm));
			}
		}
	DONE();
}

static void test_test(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned s = 0; s < 4; s++) {
		unsigned sz = sizes[s];
		for (int a = 0; a < 16; a++) {
			for (int b = 0; b < 16; b++)
				EXPECT(f("test %s, %s", reg(sz, a), reg(sz, b)),
				       emit_test_rr(e, sz, a, b));
			for (unsigned k = 0; k < NALU_IMMS; k++)
				EXPECT(f("test %s, %s", reg(sz, a), imm_full(sz, alu_imms[k])),
				       emit_test_ri(e, sz, a, alu_imms[k]));
		}
		for (unsigned k = 0; k < n; k++) {
			EXPECT(f("test %s, %s", mem(sz, ms[k]), reg(sz, (int)k % 16)),
			       emit_test_mr(e, sz, ms[k], (int)k % 16));
			EXPECT(f("test %s, %s", mem(sz, ms[k]),
				 imm_full(sz, alu_imms[k % NALU_IMMS])),
			       emit_test_mi(e, sz, ms[k], alu_imms[k % NALU_IMMS]));
		}
	}
	DONE();
}

static void test_unary(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned op = 0; op < 8; op++)
		for (unsigned s = 0; s < 4; s++) {
			unsigned sz = sizes[s];
			for (int r = 0; r < 16; r++)
				EXPECT(f("%s %s", unaryn[op], reg(sz, r)),
				       emit_unary_r(e, (enum hunary)op, sz, r));
			for (unsigned k = op; k < n; k += 4)
				EXPECT(f("%s %s", unaryn[op], mem(sz, ms[k])),
				       emit_unary_m(e, (enum hunary)op, sz, ms[k]));
		}
	DONE();
}

static void test_shifts(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	static const uint8_t counts[] = {0, 1, 2, 9, 31, 63, 255};
	for (unsigned op = 0; op < 8; op++) {
		if (op == 6) /* SAL is SHL */
			continue;
		for (unsigned s = 0; s < 4; s++) {
			unsigned sz = sizes[s];
			for (int r = 0; r < 16; r++) {
				for (unsigned c = 0; c < sizeof(counts); c++)
					EXPECT(f("%s %s, %s", shiftn[op], reg(sz, r),
						 num_u(counts[c])),
					       emit_shift_ri(e, (enum hshift)op, sz, r, counts[c]));
				EXPECT(f("%s %s, cl", shiftn[op], reg(sz, r)),
				       emit_shift_rcl(e, (enum hshift)op, sz, r));
			}
			for (unsigned k = op; k < n; k += 3) {
				uint8_t c = counts[k % sizeof(counts)];
				EXPECT(f("%s %s, %s", shiftn[op], mem(sz, ms[k]), num_u(c)),
				       emit_shift_mi(e, (enum hshift)op, sz, ms[k], c));
				EXPECT(f("%s %s, cl", shiftn[op], mem(sz, ms[k])),
				       emit_shift_mcl(e, (enum hshift)op, sz, ms[k]));
			}
		}
	}
	/* the count-1 form is the short one */
	EXPECT_BYTES("shl eax, 1", "d1 e0", emit_shift_ri(e, HSH_SHL, 4, H_RAX, 1));
	EXPECT_BYTES("sar r15, 0x3f", "49 c1 ff 3f", emit_shift_ri(e, HSH_SAR, 8, H_R15, 63));
	DONE();
}

static void test_double_shifts(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	static const char *const name[2] = {"shld", "shrd"};
	for (unsigned op = 0; op < 2; op++)
		for (unsigned s = 1; s < 4; s++) {
			unsigned sz = sizes[s];
			for (int a = 0; a < 16; a++)
				for (int b = 0; b < 16; b++) {
					EXPECT(f("%s %s, %s, %s", name[op], reg(sz, a), reg(sz, b),
						 num_u((unsigned)(a * 3 + b) & 63)),
					       emit_dshift_rri(e, (enum hdshift)op, sz, a, b,
							       (uint8_t)((a * 3 + b) & 63)));
					EXPECT(f("%s %s, %s, cl", name[op], reg(sz, a), reg(sz, b)),
					       emit_dshift_rrcl(e, (enum hdshift)op, sz, a, b));
				}
			for (unsigned k = 0; k < n; k += 2) {
				EXPECT(f("%s %s, %s, %s", name[op], mem(sz, ms[k]),
					 reg(sz, (int)k % 16), num_u(k & 31)),
				       emit_dshift_mri(e, (enum hdshift)op, sz, ms[k], (int)k % 16,
						       (uint8_t)(k & 31)));
				EXPECT(f("%s %s, %s, cl", name[op], mem(sz, ms[k]),
					 reg(sz, (int)k % 16)),
				       emit_dshift_mrcl(e, (enum hdshift)op, sz, ms[k],
							(int)k % 16));
			}
		}
	DONE();
}

static void test_imul(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned s = 1; s < 4; s++) {
		unsigned sz = sizes[s];
		for (int a = 0; a < 16; a++)
			for (int b = 0; b < 16; b++) {
				int32_t imm = alu_imms[(unsigned)(a + b) % NALU_IMMS];
				EXPECT(f("imul %s, %s", reg(sz, a), reg(sz, b)),
				       emit_imul_rr(e, sz, a, b));
				EXPECT(f("imul %s, %s, %s", reg(sz, a), reg(sz, b),
					 imm_alu(sz, imm)),
				       emit_imul_rri(e, sz, a, b, imm));
			}
		for (unsigned k = 0; k < n; k++) {
			int32_t imm = alu_imms[k % NALU_IMMS];
			EXPECT(f("imul %s, %s", reg(sz, (int)k % 16), mem(sz, ms[k])),
			       emit_imul_rm(e, sz, (int)k % 16, ms[k]));
			EXPECT(f("imul %s, %s, %s", reg(sz, (int)k % 16), mem(sz, ms[k]),
				 imm_alu(sz, imm)),
			       emit_imul_rmi(e, sz, (int)k % 16, ms[k], imm));
		}
	}
	DONE();
}

static void test_atomics(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned s = 0; s < 4; s++) {
		unsigned sz = sizes[s];
		for (int a = 0; a < 16; a++)
			for (int b = 0; b < 16; b++) {
				EXPECT(f("cmpxchg %s, %s", reg(sz, a), reg(sz, b)),
				       emit_cmpxchg_rr(e, sz, a, b));
				EXPECT(f("xadd %s, %s", reg(sz, a), reg(sz, b)),
				       emit_xadd_rr(e, sz, a, b));
			}
		for (unsigned k = 0; k < n; k++) {
			int r = (int)(k * 3) % 16;
			bool lock = k & 1;
			const char *l = lock ? "lock " : "";
			EXPECT(f("%scmpxchg %s, %s", l, mem(sz, ms[k]), reg(sz, r)),
			       emit_cmpxchg_mr(e, sz, ms[k], r, lock));
			EXPECT(f("%sxadd %s, %s", l, mem(sz, ms[k]), reg(sz, r)),
			       emit_xadd_mr(e, sz, ms[k], r, lock));
			EXPECT(f("lock add %s, %s", mem(sz, ms[k]), reg(sz, r)), emit_lock(e);
			       emit_alu_mr(e, HALU_ADD, sz, ms[k], r));
		}
	}
	EXPECT_BYTES("lock cmpxchg qword ptr [rdi], rsi", "f0 48 0f b1 37",
		     emit_cmpxchg_mr(e, 8, hmem_base(H_RDI, 0), H_RSI, true));
	DONE();
}

/* ---- conditions and flags ---- */

static void test_conditions(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned cc = 0; cc < 16; cc++) {
		for (int r = 0; r < 16; r++) {
			EXPECT(f("set%s %s", ccn[cc], r8n[r]), emit_setcc_r(e, (enum hcc)cc, r));
			for (unsigned s = 1; s < 4; s++)
				EXPECT(f("cmov%s %s, %s", ccn[cc], reg(sizes[s], r),
					 reg(sizes[s], 15 - r)),
				       emit_cmov_rr(e, (enum hcc)cc, sizes[s], r, 15 - r));
		}
		for (unsigned k = cc; k < n; k += 5) {
			EXPECT(f("set%s %s", ccn[cc], mem(1, ms[k])),
			       emit_setcc_m(e, (enum hcc)cc, ms[k]));
			unsigned sz = sizes[1 + k % 3];
			EXPECT(f("cmov%s %s, %s", ccn[cc], reg(sz, (int)k % 16), mem(sz, ms[k])),
			       emit_cmov_rm(e, (enum hcc)cc, sz, (int)k % 16, ms[k]));
		}
	}
	EXPECT("pushfq", emit_pushfq(e));
	EXPECT("popfq", emit_popfq(e));
	EXPECT("lahf", emit_lahf(e));
	EXPECT("sahf", emit_sahf(e));
	EXPECT("clc", emit_clc(e));
	EXPECT("stc", emit_stc(e));
	EXPECT("cmc", emit_cmc(e));
	DONE();
}

static void test_bit_tests(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned op = 0; op < 4; op++)
		for (unsigned s = 1; s < 4; s++) {
			unsigned sz = sizes[s];
			for (int a = 0; a < 16; a++) {
				for (int b = 0; b < 16; b++)
					EXPECT(f("%s %s, %s", btn[op], reg(sz, a), reg(sz, b)),
					       emit_bt_rr(e, (enum hbt)op, sz, a, b));
				EXPECT(f("%s %s, %s", btn[op], reg(sz, a),
					 num_u((unsigned)a * 17 & 0xff)),
				       emit_bt_ri(e, (enum hbt)op, sz, a, (uint8_t)(a * 17)));
			}
			for (unsigned k = 0; k < n; k += 2) {
				EXPECT(f("%s %s, %s", btn[op], mem(sz, ms[k]),
					 reg(sz, (int)k % 16)),
				       emit_bt_mr(e, (enum hbt)op, sz, ms[k], (int)k % 16));
				EXPECT(f("%s %s, %s", btn[op], mem(sz, ms[k]), num_u(k & 0xff)),
				       emit_bt_mi(e, (enum hbt)op, sz, ms[k], (uint8_t)k));
			}
		}
	DONE();
}

/* ---- stack, fences, padding ---- */

static void test_stack_and_misc(void **state)
{
	(void)state;
	for (int r = 0; r < 16; r++) {
		EXPECT(f("push %s", r64n[r]), emit_push_r(e, r));
		EXPECT(f("pop %s", r64n[r]), emit_pop_r(e, r));
	}
	EXPECT_BYTES("push r12", "41 54", emit_push_r(e, H_R12));
	EXPECT("mfence", emit_mfence(e));
	EXPECT_BYTES("ret", "c3", emit_ret(e));
	EXPECT("ud2", emit_ud2(e));
	EXPECT("int3", emit_int3(e));
	DONE();
}

/* Every NOP length: capstone reads one NOP per 9 bytes or less, all of it. */
static void test_nops(void **state)
{
	(void)state;
	for (size_t len = 0; len <= 30; len++) {
		struct emit e;
		emit_init(&e, buf, sizeof(buf), EXEC);
		emit_nop(&e, len);
		assert_true(emit_ok(&e));
		assert_int_equal(emit_offset(&e), len);
		cs_insn *in;
		size_t n = cs_disasm(cs, buf, len, EXEC, 0, &in);
		size_t total = 0;
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(in[i].mnemonic, "nop");
			total += in[i].size;
		}
		assert_int_equal(total, len);
		assert_int_equal(n, (len + 8) / 9);
		if (n)
			cs_free(in, n);
	}
	/* alignment is of the execute address */
	struct emit e;
	emit_init(&e, buf + 1, sizeof(buf) - 1, EXEC + 3);
	emit_align(&e, 16);
	assert_int_equal(emit_here(&e), EXEC + 16);
	emit_align(&e, 16);
	assert_int_equal(emit_here(&e), EXEC + 16);
	emit_align(&e, 12);
	assert_true(e.invalid);
}

/* ---- SSE ---- */

static void test_sse_moves(void **state)
{
	(void)state;
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (int x = 0; x < 16; x++) {
		for (int y = 0; y < 16; y++) {
			EXPECT(f("movdqu xmm%d, xmm%d", x, y), emit_movdqu_xx(e, x, y));
			EXPECT(f("movq xmm%d, xmm%d", x, y), emit_movq_xx(e, x, y));
			EXPECT(f("movq xmm%d, %s", x, r64n[y]), emit_movq_xr(e, x, y));
			EXPECT(f("movq %s, xmm%d", r64n[y], x), emit_movq_rx(e, y, x));
			EXPECT(f("movd xmm%d, %s", x, r32n[y]), emit_movd_xr(e, x, y));
			EXPECT(f("movd %s, xmm%d", r32n[y], x), emit_movd_rx(e, y, x));
		}
	}
	for (unsigned k = 0; k < n; k++) {
		int x = (int)(k * 5) % 16;
		EXPECT(f("movdqu xmm%d, %s", x, mem(16, ms[k])), emit_movdqu_xm(e, x, ms[k]));
		EXPECT(f("movdqu %s, xmm%d", mem(16, ms[k]), x), emit_movdqu_mx(e, ms[k], x));
		EXPECT(f("movq xmm%d, %s", x, mem(8, ms[k])), emit_movq_xm(e, x, ms[k]));
		EXPECT(f("movq %s, xmm%d", mem(8, ms[k]), x), emit_movq_mx(e, ms[k], x));
		EXPECT(f("movd xmm%d, %s", x, mem(4, ms[k])), emit_movd_xm(e, x, ms[k]));
		EXPECT(f("movd %s, xmm%d", mem(4, ms[k]), x), emit_movd_mx(e, ms[k], x));
	}
	EXPECT_BYTES("movdqu xmm8, xmmword ptr [rax]", "f3 44 0f 6f 00",
		     emit_movdqu_xm(e, 8, hmem_base(H_RAX, 0)));
	EXPECT_BYTES("movq xmm1, rax", "66 48 0f 6e c8", emit_movq_xr(e, 1, H_RAX));
	DONE();
}

/* ---- control flow ---- */

static void test_branches(void **state)
{
	(void)state;
	static const int64_t offs[] = {0,     5,      6,       -5,         0x80,
				       -0x80, 0x1000, -0x1000, 0x7fff0000, -0x7fff0000};
	for (unsigned k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
		uintptr_t t = (uintptr_t)(EXEC + 0x100 + offs[k]);
		EXPECT(f("jmp %s", num_u(t)), emit_jmp_rel32(e, t));
		EXPECT(f("call %s", num_u(t)), emit_call_rel32(e, t));
		for (unsigned cc = 0; cc < 16; cc++)
			EXPECT(f("j%s %s", ccn[cc], num_u(t)), emit_jcc_rel32(e, (enum hcc)cc, t));
	}
	for (int d = -128; d <= 127; d += 17) {
		uintptr_t t = (uintptr_t)(EXEC + 2 + d);
		EXPECT(f("jmp %s", num_u(t)), emit_jmp_rel8(e, t));
		for (unsigned cc = 0; cc < 16; cc++)
			EXPECT(f("j%s %s", ccn[cc], num_u(t)), emit_jcc_rel8(e, (enum hcc)cc, t));
	}
	EXPECT_BYTES("jne 0x40001000", "75 fe", emit_jcc_rel8(e, HCC_NE, EXEC));
	EXPECT_BYTES("jmp 0x40001005", "e9 00 00 00 00", emit_jmp_rel32(e, EXEC + 5));
	/* out of reach: invalid, nothing written */
	struct emit e;
	emit_init(&e, buf, sizeof(buf), EXEC);
	emit_jmp_rel8(&e, EXEC + 2 + 128);
	assert_true(e.invalid);
	assert_int_equal(emit_offset(&e), 0);
	emit_init(&e, buf, sizeof(buf), EXEC);
	emit_jcc_rel8(&e, HCC_E, EXEC - 127);
	assert_true(e.invalid);
	assert_int_equal(emit_offset(&e), 0);
	emit_init(&e, buf, sizeof(buf), EXEC);
	emit_jmp_rel32(&e, EXEC + 0x80000000ull + 5);
	assert_true(e.invalid);
	emit_init(&e, buf, sizeof(buf), EXEC);
	emit_jmp_rel32(&e, EXEC - 0x80000000ull + 5);
	assert_false(e.invalid);

	for (int r = 0; r < 16; r++) {
		EXPECT(f("jmp %s", r64n[r]), emit_jmp_r(e, r));
		EXPECT(f("call %s", r64n[r]), emit_call_r(e, r));
	}
	struct hmem ms[160];
	unsigned n = mem_sample(ms, 160);
	for (unsigned k = 0; k < n; k++) {
		EXPECT(f("jmp %s", mem(8, ms[k])), emit_jmp_m(e, ms[k]));
		EXPECT(f("call %s", mem(8, ms[k])), emit_call_m(e, ms[k]));
	}
	DONE();
}

/* Forward branches bound later, patched branches, absolute targets. */
static void test_patching(void **state)
{
	(void)state;
	struct emit e;
	emit_init(&e, buf, sizeof(buf), EXEC);
	size_t j8 = emit_jcc_rel8(&e, HCC_NE, 0);
	size_t j32 = emit_jmp_rel32(&e, 0);
	size_t c32 = emit_call_rel32(&e, 0);
	size_t jc32 = emit_jcc_rel32(&e, HCC_L, 0);
	assert_int_equal(j8, 1);
	assert_int_equal(j32, 3);
	assert_int_equal(c32, 8);
	assert_int_equal(jc32, 14);
	emit_nop(&e, 3);
	size_t here = emit_offset(&e);
	emit_bind_rel8(&e, j8);
	emit_bind_rel32(&e, j32);
	emit_patch_local(&e, c32, EXEC + 0x1234);
	emit_ret(&e);
	assert_true(emit_ok(&e));
	assert_int_equal(emit_patch_rel32(buf + jc32, EXEC + jc32, EXEC - 0x100), 0);

	cs_insn *in;
	size_t n = cs_disasm(cs, buf, emit_offset(&e), EXEC, 0, &in);
	assert_int_equal(n, 6);
	assert_string_equal(in[0].op_str, num_u(EXEC + here));
	assert_string_equal(in[1].op_str, num_u(EXEC + here));
	assert_string_equal(in[2].op_str, num_u(EXEC + 0x1234));
	assert_string_equal(in[3].mnemonic, "jl");
	assert_string_equal(in[3].op_str, num_u(EXEC - 0x100));
	cs_free(in, n);

	/* out of reach */
	assert_int_equal(emit_patch_rel32(buf + j32, EXEC + j32, EXEC + 0x90000000ull), -ERANGE);
	emit_init(&e, buf, sizeof(buf), EXEC);
	size_t h = emit_jmp_rel8(&e, 0);
	emit_nop(&e, 9 * 15);
	emit_bind_rel8(&e, h);
	assert_true(e.overflow); /* the buffer is 64 bytes */
	emit_init(&e, buf, sizeof(buf), EXEC);
	/* a handle beyond what was emitted */
	emit_bind_rel32(&e, 10);
	assert_true(e.invalid);

	/* the rel32 field lands 4-byte aligned (in execute addresses) */
	for (unsigned start = 0; start < 8; start++)
		for (unsigned oplen = 1; oplen <= 2; oplen++) {
			emit_init(&e, buf, sizeof(buf), EXEC + start);
			emit_align_rel32(&e, oplen);
			size_t f32 =
				oplen == 1 ? emit_jmp_rel32(&e, 0) : emit_jcc_rel32(&e, HCC_E, 0);
			assert_int_equal((EXEC + start + f32) & 3, 0);
			assert_true(emit_ok(&e));
		}
}

static void test_absolute_targets(void **state)
{
	(void)state;
	/* near: rel32 */
	EXPECT_BYTES("call 0x40001100", "e8 fb 00 00 00", emit_call_abs(e, EXEC + 0x100, H_RAX));
	EXPECT("jmp 0x40001100", emit_jmp_abs(e, EXEC + 0x100, H_RAX));
	EXPECT(f("call %s", num_u(EXEC + 5 + 0x7fffffff)),
	       emit_call_abs(e, EXEC + 5 + 0x7fffffff, H_RAX));
	EXPECT(f("jmp %s", num_u(EXEC + 5 - 0x80000000ull)),
	       emit_jmp_abs(e, EXEC + 5 - 0x80000000ull, H_RAX));
	/* far: through the scratch register */
	static const uint64_t far[] = {EXEC + 5 + 0x80000000ull, 0x7f0000001234ull,
				       0xffffffff81000000ull};
	for (unsigned k = 0; k < 3; k++)
		for (int r = 0; r < 16; r++)
			for (int call = 0; call < 2; call++) {
				struct emit e;
				emit_init(&e, buf, sizeof(buf), EXEC);
				if (call)
					emit_call_abs(&e, far[k], r);
				else
					emit_jmp_abs(&e, far[k], r);
				assert_true(emit_ok(&e));
				cs_insn *in;
				size_t n = cs_disasm(cs, buf, emit_offset(&e), EXEC, 0, &in);
				assert_int_equal(n, 2);
				assert_string_equal(f("%s %s", in[0].mnemonic, in[0].op_str),
						    mov_ri_text(r, far[k]));
				assert_string_equal(f("%s %s", in[1].mnemonic, in[1].op_str),
						    f("%s %s", call ? "call" : "jmp", r64n[r]));
				assert_int_equal(in[0].size + in[1].size, emit_offset(&e));
				cs_free(in, n);
			}
	/* the reach is judged from where the code executes, not where it is written */
	struct emit e;
	emit_init(&e, buf, sizeof(buf), 0x7f0000000000ull);
	emit_call_abs(&e, 0x7f0000001000ull, H_R11);
	assert_int_equal(emit_offset(&e), 5);
	DONE();
}

static void test_rip_relative(void **state)
{
	(void)state;
	static const int64_t offs[] = {0, 1, -1, 0x1000, -0x1000, 0x7fffff00, -0x7fffff00};
	for (unsigned k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
		struct hmem m = hmem_rip((uintptr_t)(EXEC + offs[k]));
		for (unsigned s = 0; s < 4; s++) {
			unsigned sz = sizes[s];
			/* imm after the disp32: the displacement counts it */
			EXPECT(f("mov %s, %s", mem(sz, m), imm_full(sz, 0x12345678)),
			       emit_mov_mi(e, sz, m, 0x12345678));
			EXPECT(f("cmp %s, %s", mem(sz, m), imm_alu(sz, 5)),
			       emit_alu_mi(e, HALU_CMP, sz, m, 5));
			EXPECT(f("mov %s, %s", reg(sz, H_R9), mem(sz, m)),
			       emit_mov_rm(e, sz, H_R9, m));
		}
		EXPECT(f("lea rax, %s", mem(0, m)), emit_lea(e, 8, H_RAX, m));
	}
	EXPECT_BYTES("mov eax, dword ptr [rip + 0x10]", "8b 05 10 00 00 00",
		     emit_mov_rm(e, 4, H_RAX, hmem_rip(EXEC + 6 + 0x10)));
	/* beyond ±2 GiB of the instruction's end */
	struct emit e;
	emit_init(&e, buf, sizeof(buf), EXEC);
	emit_mov_rm(&e, 8, H_RAX, hmem_rip(EXEC + 7 + 0x80000000ull));
	assert_true(e.invalid);
	assert_int_equal(emit_offset(&e), 0);
	emit_init(&e, buf, sizeof(buf), EXEC);
	emit_mov_rm(&e, 8, H_RAX, hmem_rip(EXEC + 7 + 0x7fffffff));
	assert_true(emit_ok(&e));
	DONE();
}

/* The shortest forms, byte for byte (SDM vol. 2 §2.1.5 and the opcode maps). */
static void test_exact_encodings(void **state)
{
	(void)state;
	EXPECT_BYTES("mov eax, 0x2a", "b8 2a 00 00 00", emit_mov_ri(e, 4, H_RAX, 42));
	EXPECT_BYTES("mov eax, 0x2a", "b8 2a 00 00 00", emit_mov_ri(e, 8, H_RAX, 42));
	EXPECT_BYTES("mov r8d, 0x2a", "41 b8 2a 00 00 00", emit_mov_ri(e, 8, H_R8, 42));
	EXPECT_BYTES("mov rax, -1", "48 c7 c0 ff ff ff ff", emit_mov_ri(e, 8, H_RAX, ~0ull));
	EXPECT_BYTES("movabs rcx, 0x123456789", "48 b9 89 67 45 23 01 00 00 00",
		     emit_mov_ri(e, 8, H_RCX, 0x123456789ull));
	EXPECT_BYTES("mov sil, 1", "40 b6 01", emit_mov_ri(e, 1, H_RSI, 1));
	EXPECT_BYTES("mov ax, 1", "66 b8 01 00", emit_mov_ri(e, 2, H_RAX, 1));
	EXPECT_BYTES("mov byte ptr [rsp + 1], dil", "40 88 7c 24 01",
		     emit_mov_mr(e, 1, hmem_base(H_RSP, 1), H_RDI));
	EXPECT_BYTES("mov rax, qword ptr [rbp]", "48 8b 45 00",
		     emit_mov_rm(e, 8, H_RAX, hmem_base(H_RBP, 0)));
	EXPECT_BYTES("mov rax, qword ptr [r13]", "49 8b 45 00",
		     emit_mov_rm(e, 8, H_RAX, hmem_base(H_R13, 0)));
	EXPECT_BYTES("mov rax, qword ptr [rsp]", "48 8b 04 24",
		     emit_mov_rm(e, 8, H_RAX, hmem_base(H_RSP, 0)));
	EXPECT_BYTES("mov rax, qword ptr [r12]", "49 8b 04 24",
		     emit_mov_rm(e, 8, H_RAX, hmem_base(H_R12, 0)));
	EXPECT_BYTES("mov eax, dword ptr [rbx + 0x7f]", "8b 43 7f",
		     emit_mov_rm(e, 4, H_RAX, hmem_base(H_RBX, 127)));
	EXPECT_BYTES("mov eax, dword ptr [rbx + 0x80]", "8b 83 80 00 00 00",
		     emit_mov_rm(e, 4, H_RAX, hmem_base(H_RBX, 128)));
	EXPECT_BYTES("mov eax, dword ptr [rbx - 0x80]", "8b 43 80",
		     emit_mov_rm(e, 4, H_RAX, hmem_base(H_RBX, -128)));
	EXPECT_BYTES("mov eax, dword ptr [rbx - 0x81]", "8b 83 7f ff ff ff",
		     emit_mov_rm(e, 4, H_RAX, hmem_base(H_RBX, -129)));
	EXPECT_BYTES("mov eax, dword ptr [0x1000]", "8b 04 25 00 10 00 00",
		     emit_mov_rm(e, 4, H_RAX, hmem_abs(0x1000)));
	EXPECT_BYTES("mov eax, dword ptr [rcx*4]", "8b 04 8d 00 00 00 00",
		     emit_mov_rm(e, 4, H_RAX, hmem_sib(HREG_NONE, H_RCX, 4, 0)));
	EXPECT_BYTES("mov eax, dword ptr [rbp + r13]", "42 8b 44 2d 00",
		     emit_mov_rm(e, 4, H_RAX, hmem_sib(H_RBP, H_R13, 1, 0)));
	EXPECT_BYTES("mov eax, dword ptr [r13 + r12*2 - 0x80]", "43 8b 44 65 80",
		     emit_mov_rm(e, 4, H_RAX, hmem_sib(H_R13, H_R12, 2, -128)));
	EXPECT_BYTES("add rax, 1", "48 83 c0 01", emit_alu_ri(e, HALU_ADD, 8, H_RAX, 1));
	EXPECT_BYTES("add eax, 0x1000", "05 00 10 00 00",
		     emit_alu_ri(e, HALU_ADD, 4, H_RAX, 0x1000));
	EXPECT_BYTES("sub ecx, 0x1000", "81 e9 00 10 00 00",
		     emit_alu_ri(e, HALU_SUB, 4, H_RCX, 0x1000));
	EXPECT_BYTES("cmp al, 5", "3c 05", emit_alu_ri(e, HALU_CMP, 1, H_RAX, 5));
	EXPECT_BYTES("cmp ax, 0x1234", "66 3d 34 12", emit_alu_ri(e, HALU_CMP, 2, H_RAX, 0x1234));
	EXPECT_BYTES("and dx, 0xffff", "66 83 e2 ff", emit_alu_ri(e, HALU_AND, 2, H_RDX, -1));
	EXPECT_BYTES("and dx, 0xffff", "66 83 e2 ff", emit_alu_ri(e, HALU_AND, 2, H_RDX, 0xffff));
	EXPECT_BYTES("add qword ptr [rsp + 8], -1", "48 83 44 24 08 ff",
		     emit_alu_mi(e, HALU_ADD, 8, hmem_base(H_RSP, 8), -1));
	EXPECT_BYTES("xor spl, bpl", "40 30 ec", emit_alu_rr(e, HALU_XOR, 1, H_RSP, H_RBP));
	EXPECT_BYTES("test al, 1", "a8 01", emit_test_ri(e, 1, H_RAX, 1));
	EXPECT_BYTES("test ebx, 1", "f7 c3 01 00 00 00", emit_test_ri(e, 4, H_RBX, 1));
	EXPECT_BYTES("imul eax, ecx, 0xa", "6b c1 0a", emit_imul_rri(e, 4, H_RAX, H_RCX, 10));
	EXPECT_BYTES("imul eax, ecx, 0x3e8", "69 c1 e8 03 00 00",
		     emit_imul_rri(e, 4, H_RAX, H_RCX, 1000));
	EXPECT_BYTES("movzx eax, sil", "40 0f b6 c6", emit_movzx_rr(e, 4, 1, H_RAX, H_RSI));
	EXPECT_BYTES("movzx eax, bl", "0f b6 c3", emit_movzx_rr(e, 4, 1, H_RAX, H_RBX));
	EXPECT_BYTES("sete dil", "40 0f 94 c7", emit_setcc_r(e, HCC_E, H_RDI));
	EXPECT_BYTES("inc sil", "40 fe c6", emit_unary_r(e, HUN_INC, 1, H_RSI));
	EXPECT_BYTES("mul bl", "f6 e3",
		     emit_unary_r(e, HUN_MUL, 1, H_RBX)); /* /4 is not SPL: no REX */
	EXPECT_BYTES("shl bl, 4", "c0 e3 04", emit_shift_ri(e, HSH_SHL, 1, H_RBX, 4));
	EXPECT_BYTES("xchg eax, eax", "87 c0", emit_xchg_rr(e, 4, H_RAX, H_RAX)); /* not 90 */
	DONE();
}

/* ---- failure handling ---- */

static void test_overflow(void **state)
{
	(void)state;
	uint8_t mem[32];
	struct emit e;
	/* exact fit, then one byte too many */
	memset(mem, 0xee, sizeof(mem));
	emit_init(&e, mem, 10, EXEC);
	emit_mov_ri(&e, 8, H_RAX, 0x123456789abcdef0ull);
	assert_true(emit_ok(&e));
	assert_int_equal(emit_offset(&e), 10);
	emit_ret(&e);
	assert_true(e.overflow);
	assert_int_equal(emit_offset(&e), 10);
	assert_int_equal(mem[10], 0xee);

	/* an instruction that does not fit writes nothing at all */
	memset(mem, 0xee, sizeof(mem));
	emit_init(&e, mem, 8, EXEC);
	emit_ret(&e);
	emit_mov_ri(&e, 8, H_RAX, 0x123456789abcdef0ull); /* 10 bytes into 7 */
	assert_true(e.overflow);
	assert_false(e.invalid);
	assert_int_equal(emit_offset(&e), 1);
	for (unsigned i = 1; i < sizeof(mem); i++)
		assert_int_equal(mem[i], 0xee);
	/* and nothing after it either, though a RET would fit */
	emit_ret(&e);
	emit_nop(&e, 3);
	size_t h = emit_jmp_rel32(&e, 0);
	emit_bind_rel32(&e, h);
	assert_int_equal(emit_offset(&e), 1);
	assert_int_equal(mem[1], 0xee);
	assert_false(e.invalid);

	/* a zero-sized buffer */
	emit_init(&e, mem, 0, 0);
	assert_int_equal(e.exec, (uintptr_t)mem);
	emit_int3(&e);
	assert_true(e.overflow);

	/* every shape, into every short buffer: all or nothing */
	for (size_t cap = 0; cap < 16; cap++) {
		memset(mem, 0xee, sizeof(mem));
		emit_init(&e, mem, cap, EXEC);
		emit_mov_mi(&e, 8, hmem_sib(H_R13, H_R12, 8, 0x12345), 0x12345678);
		size_t len = emit_offset(&e);
		assert_true(e.overflow ? len == 0 : len == 12);
		assert_true(cap >= 12 || e.overflow);
		for (size_t i = len; i < sizeof(mem); i++)
			assert_int_equal(mem[i], 0xee);
	}
}

static void test_invalid_operands(void **state)
{
	(void)state;
	uint8_t mem[32];
	struct emit e;
#define INVALID(stmt)                                                                              \
	do {                                                                                       \
		memset(mem, 0xee, sizeof(mem));                                                    \
		emit_init(&e, mem, sizeof(mem), EXEC);                                             \
		stmt;                                                                              \
		assert_true(e.invalid);                                                            \
		assert_false(emit_ok(&e));                                                         \
		assert_int_equal(emit_offset(&e), 0);                                              \
		assert_int_equal(mem[0], 0xee);                                                    \
	} while (0)
	INVALID(emit_mov_rr(&e, 3, H_RAX, H_RCX));
	INVALID(emit_mov_rr(&e, 8, 16, H_RCX));
	INVALID(emit_mov_rr(&e, 8, H_RAX, -1));
	INVALID(emit_mov_ri(&e, 16, H_RAX, 0));
	INVALID(emit_mov_rm(&e, 8, H_RAX, hmem_sib(H_RAX, H_RSP, 1, 0))); /* RSP cannot index */
	INVALID(emit_mov_rm(&e, 8, H_RAX, hmem_sib(H_RAX, H_RCX, 3, 0))); /* scale 3 */
	INVALID(emit_mov_rm(&e, 8, H_RAX, hmem_sib(20, HREG_NONE, 1, 0)));
	INVALID(emit_lea(&e, 1, H_RAX, hmem_base(H_RAX, 0)));
	INVALID(emit_imul_rr(&e, 1, H_RAX, H_RCX));
	INVALID(emit_cmov_rr(&e, HCC_E, 1, H_RAX, H_RCX));
	INVALID(emit_cmov_rr(&e, (enum hcc)16, 4, H_RAX, H_RCX));
	INVALID(emit_bswap(&e, 2, H_RAX));
	INVALID(emit_movzx_rr(&e, 2, 2, H_RAX, H_RCX));
	INVALID(emit_movzx_rr(&e, 8, 4, H_RAX, H_RCX));
	INVALID(emit_unary_r(&e, (enum hunary)8, 4, H_RAX));
	INVALID(emit_movq_xr(&e, 16, H_RAX));
	INVALID(emit_push_r(&e, 16));
	INVALID(emit_test_ri(&e, 5, H_RAX, 0));
	INVALID(emit_alu_ri(&e, HALU_ADD, 0, H_RCX, 0));
#undef INVALID
}

static int setup(void **state)
{
	(void)state;
	return cs_open(CS_ARCH_X86, CS_MODE_64, &cs) == CS_ERR_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	printf("[ INFO     ] %u encodings checked against capstone\n", checks);
	cs_close(&cs);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_mov_rr, reset),
		cmocka_unit_test_setup(test_mov_memory_operands, reset),
		cmocka_unit_test_setup(test_mov_load_store, reset),
		cmocka_unit_test_setup(test_mov_ri, reset),
		cmocka_unit_test_setup(test_movzx_movsx_lea, reset),
		cmocka_unit_test_setup(test_xchg_bswap, reset),
		cmocka_unit_test_setup(test_alu, reset),
		cmocka_unit_test_setup(test_test, reset),
		cmocka_unit_test_setup(test_unary, reset),
		cmocka_unit_test_setup(test_shifts, reset),
		cmocka_unit_test_setup(test_double_shifts, reset),
		cmocka_unit_test_setup(test_imul, reset),
		cmocka_unit_test_setup(test_atomics, reset),
		cmocka_unit_test_setup(test_conditions, reset),
		cmocka_unit_test_setup(test_bit_tests, reset),
		cmocka_unit_test_setup(test_stack_and_misc, reset),
		cmocka_unit_test_setup(test_nops, reset),
		cmocka_unit_test_setup(test_sse_moves, reset),
		cmocka_unit_test_setup(test_branches, reset),
		cmocka_unit_test_setup(test_patching, reset),
		cmocka_unit_test_setup(test_absolute_targets, reset),
		cmocka_unit_test_setup(test_rip_relative, reset),
		cmocka_unit_test_setup(test_exact_encodings, reset),
		cmocka_unit_test_setup(test_overflow, reset),
		cmocka_unit_test_setup(test_invalid_operands, reset),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
