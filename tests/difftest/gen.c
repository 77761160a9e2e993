/* The random instruction-sequence generator. Each template emits one or a
 * few instructions (Intel SDM vol. 2 encodings: prefixes, REX, ModRM/SIB,
 * displacements, immediates; vol. 2 appendix A opcode maps) whose memory
 * operands stay inside the data area through registers the tester
 * controls: RBX holds DT_DATA_ADDR + 0x1000 and RBP a small index
 * (0-63), and no template writes either of them, nor RSP except through
 * balanced stack operations. Branches only go forward, except LOOP over a
 * one-instruction body with a small count, so every sequence ends.
 *
 * Invariant: generation never writes past DT_GEN_CODE_MAX; a sequence
 * that would is cut at the last whole template.
 *
 * A seed must give the same sequence whatever the compiler: the recorded
 * results (record.c) are keyed by it. C leaves the order of function
 * arguments, of the operands of most operators and of initializer lists
 * unspecified, so no expression here draws twice from the generator
 * except across a sequence point (&&, ||, ?:, a declaration's comma):
 * draws go to variables first, one statement each. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "difftest.h"

const char *const dt_group_names[] = {
    "mov",    "alu",     "muldiv",  "shift",   "bit",    "bitx",  "cond",   "branch",
    "stack",  "flags",   "string",  "convert", "bswap",  "atomic", "sse_mov", "sse_int",
    "sse_fp", "x87",     "io",      "bcd",     "system", "mmx",   "sse3",   "ssse3",
    "sse4",
};
const unsigned dt_group_count = sizeof(dt_group_names) / sizeof(dt_group_names[0]);

static int group_index(const char *name, size_t len)
{
	for (unsigned k = 0; k < dt_group_count; k++)
		if (strlen(dt_group_names[k]) == len && strncmp(dt_group_names[k], name, len) == 0)
			return (int)k;
	return -1;
}

bool dt_group_known(const char *name) { return group_index(name, strlen(name)) >= 0; }

bool dt_group_enabled(const struct dt_groups *g, const char *name)
{
	int k = group_index(name, strlen(name));
	return k >= 0 && g->on[k];
}

int dt_groups_parse(struct dt_groups *g, const char *list, char *err, size_t errlen)
{
	const char *p = list;
	while (*p) {
		if (*p == '#') {
			while (*p && *p != '\n')
				p++;
			continue;
		}
		if (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
			p++;
			continue;
		}
		size_t n = strcspn(p, ", \n\t\r#");
		if (n == 3 && strncmp(p, "all", 3) == 0) {
			for (unsigned k = 0; k < dt_group_count; k++)
				g->on[k] = true;
		} else {
			int k = group_index(p, n);
			if (k < 0) {
				snprintf(err, errlen, "unknown instruction group '%.*s'", (int)(n > 40 ? 40 : n), p);
				return -EINVAL;
			}
			g->on[k] = true;
		}
		p += n;
	}
	return 0;
}

/* ---- the emitter ---- */

#define DATA_BASE_REG 3 /* RBX */
#define INDEX_REG 5     /* RBP */
#define RBX_VALUE (DT_DATA_ADDR + 0x1000)
#define SCRATCH_OFF 0x3000 /* SSE/x87 result slots, relative to DT_DATA_ADDR */

struct gen {
	uint64_t rng;
	bool m64;
	struct dt_gen *out;
	size_t len;
	bool full;
	const char *tag;
	int x87_depth;
	unsigned slot;
};

static uint64_t rnd(struct gen *g)
{
	uint64_t z = (g->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned rn(struct gen *g, unsigned n) { return n ? (unsigned)(rnd(g) % n) : 0; }
static bool chance(struct gen *g, unsigned pct) { return rn(g, 100) < pct; }

static void emit(struct gen *g, uint8_t b)
{
	if (g->len < DT_GEN_CODE_MAX)
		g->out->code[g->len++] = b;
	else
		g->full = true;
}

static void emit_le(struct gen *g, uint64_t v, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		emit(g, (uint8_t)(v >> (8 * k)));
}

static void patch_le(struct gen *g, size_t at, uint64_t v, unsigned n)
{
	for (unsigned k = 0; k < n && at + k < DT_GEN_CODE_MAX; k++)
		g->out->code[at + k] = (uint8_t)(v >> (8 * k));
}

static uint64_t code_addr(const struct gen *g) { return DT_CODE_ADDR + g->len; }

/* Values at the edges of arithmetic. */
static uint64_t interesting(struct gen *g)
{
	static const uint64_t v[] = {
	    0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff,
	    0x80000000, 0xffffffff, 0x100000000ULL, 0x7fffffffffffffffULL,
	    0x8000000000000000ULL, 0xffffffffffffffffULL, 0xfffffffffffffffeULL, 0x8000000080000000ULL,
	};
	switch (rn(g, 4)) {
	case 0: return v[rn(g, sizeof(v) / sizeof(v[0]))];
	case 1: {
		uint64_t x = rnd(g);
		return x & (0xffULL << (8 * rn(g, 8)));
	}
	case 2: return (uint64_t)(int64_t)(int8_t)rn(g, 256);
	default: return rnd(g);
	}
}

struct op {
	bool is_reg;
	unsigned reg;
	uint8_t mod, rm, sib;
	bool has_sib, riprel, addr32;
	int32_t disp;
	unsigned dispsz;
	uint64_t target; /* RIP-relative target (linear) */
};

struct enc {
	uint8_t pfx[4];
	unsigned npfx;
	bool w, force_rex;
	uint8_t opc[3];
	unsigned nopc;
	bool modrm;
	unsigned regf;
	struct op rm;
	bool plus;     /* opcode + register (low 3 bits), REX.B for 8-15 */
	unsigned preg;
	uint64_t imm;
	unsigned immsz;
	size_t imm_at; /* out: where the immediate starts */
};

static struct op rop(unsigned r) { return (struct op){.is_reg = true, .reg = r}; }

static void put(struct gen *g, struct enc *e)
{
	size_t start = g->len;
	if (start + 16 >= DT_GEN_CODE_MAX) {
		g->full = true;
		return;
	}
	g->out->tags[start] = g->tag;
	for (unsigned k = 0; k < e->npfx; k++)
		emit(g, e->pfx[k]);
	if (e->modrm && !e->rm.is_reg && e->rm.addr32)
		emit(g, 0x67);
	unsigned rex = 0;
	if (e->w)
		rex |= 8;
	if (e->modrm && e->regf >= 8)
		rex |= 4;
	if (e->modrm && e->rm.is_reg && e->rm.reg >= 8)
		rex |= 1;
	if (e->plus && e->preg >= 8)
		rex |= 1;
	if (g->m64 && (rex || e->force_rex))
		emit(g, (uint8_t)(0x40 | rex));
	for (unsigned k = 0; k < e->nopc; k++)
		emit(g, (uint8_t)(e->opc[k] + (e->plus && k == e->nopc - 1 ? (e->preg & 7) : 0)));
	size_t disp_at = 0;
	if (e->modrm) {
		const struct op *o = &e->rm;
		if (o->is_reg) {
			emit(g, (uint8_t)(0xc0 | ((e->regf & 7) << 3) | (o->reg & 7)));
		} else {
			emit(g, (uint8_t)((o->mod << 6) | ((e->regf & 7) << 3) | o->rm));
			if (o->has_sib)
				emit(g, o->sib);
			disp_at = g->len;
			emit_le(g, (uint64_t)(int64_t)o->disp, o->dispsz);
		}
	}
	e->imm_at = g->len;
	emit_le(g, e->imm, e->immsz);
	if (e->modrm && !e->rm.is_reg && e->rm.riprel)
		patch_le(g, disp_at, e->rm.target - code_addr(g), 4);
}

/* An instruction without ModRM: prefixes + opcode bytes + immediate. */
static void put_plain(struct gen *g, const uint8_t *opc, unsigned n, uint64_t imm, unsigned immsz)
{
	struct enc e = {.nopc = n, .imm = imm, .immsz = immsz};
	memcpy(e.opc, opc, n);
	put(g, &e);
}

static void put1(struct gen *g, uint8_t b) { put_plain(g, &b, 1, 0, 0); }

/* A memory operand inside the data area. align > 1 keeps the address a
 * multiple of align (for MOVDQA and friends). */
static struct op mem(struct gen *g, unsigned align)
{
	struct op o = {.is_reg = false};
	unsigned form = align > 1 ? rn(g, 3) : rn(g, 6);
	if (align > 1) {
		int32_t d = (int32_t)(rn(g, 0x2000 / align) * align) - 0x800;
		if (form == 0) {
			o.mod = 1, o.rm = DATA_BASE_REG, o.disp = (int8_t)(d & ~(int32_t)(align - 1) & 0x70), o.dispsz = 1;
		} else if (form == 1) {
			o.mod = 2, o.rm = DATA_BASE_REG, o.disp = d, o.dispsz = 4;
		} else {
			o.mod = 0, o.rm = DATA_BASE_REG;
		}
		return o;
	}
	switch (form) {
	case 0:
		o.mod = 1, o.rm = DATA_BASE_REG, o.disp = (int8_t)rn(g, 256), o.dispsz = 1;
		break;
	case 1:
		o.mod = 2, o.rm = DATA_BASE_REG, o.disp = (int32_t)rn(g, 0x2f00) - 0x1000, o.dispsz = 4;
		break;
	case 2:
		o.mod = 1, o.rm = 4, o.has_sib = true, o.dispsz = 1, o.disp = (int8_t)rn(g, 256);
		o.sib = (uint8_t)((rn(g, 4) << 6) | (INDEX_REG << 3) | DATA_BASE_REG);
		break;
	case 3:
		if (g->m64) {
			o.mod = 0, o.rm = 5, o.riprel = true, o.dispsz = 4;
			o.target = DT_DATA_ADDR + rn(g, 0x3f00);
		} else {
			o.mod = 0, o.rm = 5, o.dispsz = 4, o.disp = (int32_t)(DT_DATA_ADDR + rn(g, 0x3f00));
		}
		break;
	case 4:
		o.mod = 0, o.rm = DATA_BASE_REG;
		break;
	default: /* SIB without base: [rbp*s + disp32] */
		o.mod = 0, o.rm = 4, o.has_sib = true, o.dispsz = 4;
		o.sib = (uint8_t)((rn(g, 4) << 6) | (INDEX_REG << 3) | 5);
		o.disp = (int32_t)(DT_DATA_ADDR + rn(g, 0x3000));
		break;
	}
	o.addr32 = g->m64 && !o.riprel && chance(g, 10);
	return o;
}

/* A fixed 16-byte slot of the scratch area, for results to be compared. */
static struct op slot(struct gen *g)
{
	struct op o = {.mod = 2, .rm = DATA_BASE_REG, .dispsz = 4};
	o.disp = (int32_t)(SCRATCH_OFF - 0x1000 + (g->slot++ % 64) * 16);
	return o;
}

static const uint8_t wregs64[] = {0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t wregs32[] = {0, 1, 2, 6, 7};

static unsigned wreg(struct gen *g)
{
	return g->m64 ? wregs64[rn(g, sizeof(wregs64))] : wregs32[rn(g, sizeof(wregs32))];
}

static unsigned anyreg(struct gen *g) { return rn(g, g->m64 ? 16 : 8); }

/* Byte registers: without REX AL-BH (4-7 = AH-BH), with REX the low bytes
 * of all sixteen. One instruction uses one convention for all operands. */
struct bytemode {
	bool rex;
};

static unsigned wreg8(struct gen *g, struct bytemode bm)
{
	static const uint8_t legacy[] = {0, 1, 2, 4, 5, 6};
	static const uint8_t rexw[] = {0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
	return bm.rex ? rexw[rn(g, sizeof(rexw))] : legacy[rn(g, sizeof(legacy))];
}

static unsigned anyreg8(struct gen *g, struct bytemode bm) { return rn(g, bm.rex ? 16 : 8); }

static struct bytemode pick_bytemode(struct gen *g)
{
	return (struct bytemode){.rex = g->m64 && chance(g, 50)};
}

static unsigned pick_size(struct gen *g, bool byte_ok)
{
	static const unsigned s64[] = {1, 2, 4, 8, 8, 4}, s32[] = {1, 2, 4, 4};
	unsigned s;
	do
		s = g->m64 ? s64[rn(g, 6)] : s32[rn(g, 4)];
	while (s == 1 && !byte_ok);
	return s;
}

/* Operand-size prefix / REX.W for a v-sized operation. */
static void set_size(struct enc *e, unsigned size)
{
	if (size == 2)
		e->pfx[e->npfx++] = 0x66;
	if (size == 8)
		e->w = true;
}

/* A destination r/m: a writable register or memory. */
static struct op dst_rm(struct gen *g, unsigned size, struct bytemode bm, unsigned mem_pct)
{
	if (chance(g, mem_pct))
		return mem(g, 1);
	return rop(size == 1 ? wreg8(g, bm) : wreg(g));
}

static struct op src_rm(struct gen *g, unsigned size, struct bytemode bm, unsigned mem_pct)
{
	if (chance(g, mem_pct))
		return mem(g, 1);
	return rop(size == 1 ? anyreg8(g, bm) : anyreg(g));
}

static unsigned imm_size(unsigned size) { return size == 8 ? 4 : size; }

/* MOV r, imm of the full size (B8+r; REX.W gives imm64). */
static void mov_reg_imm(struct gen *g, unsigned reg, unsigned size, uint64_t v)
{
	struct enc e = {.nopc = 1, .plus = true, .preg = reg, .imm = v};
	if (size == 1) {
		e.opc[0] = 0xb0;
		e.immsz = 1;
	} else {
		e.opc[0] = 0xb8;
		set_size(&e, size);
		e.immsz = size;
	}
	put(g, &e);
}

/* ---- templates ---- */

typedef void (*tmpl_fn)(struct gen *g);

static void t_alu(struct gen *g)
{
	unsigned op = rn(g, 8), size = pick_size(g, true);
	struct bytemode bm = pick_bytemode(g);
	struct enc e = {.nopc = 1, .modrm = true, .force_rex = size == 1 && bm.rex};
	unsigned form = rn(g, 5);
	if (form == 4 && size == 1)
		form = 3;
	set_size(&e, size);
	switch (form) {
	case 0: /* op r/m, r */
		e.opc[0] = (uint8_t)(op * 8 + (size > 1));
		e.rm = dst_rm(g, size, bm, 35);
		e.regf = size == 1 ? anyreg8(g, bm) : anyreg(g);
		break;
	case 1: /* op r, r/m */
		e.opc[0] = (uint8_t)(op * 8 + 2 + (size > 1));
		e.regf = size == 1 ? wreg8(g, bm) : wreg(g);
		e.rm = src_rm(g, size, bm, 35);
		break;
	case 2: /* op AL/eAX, imm */
		e.modrm = false;
		e.force_rex = false;
		e.opc[0] = (uint8_t)(op * 8 + 4 + (size > 1));
		e.imm = interesting(g);
		e.immsz = imm_size(size);
		break;
	case 3: /* 80/81 /op */
		e.opc[0] = size == 1 ? 0x80 : 0x81;
		e.regf = op;
		e.rm = dst_rm(g, size, bm, 35);
		e.imm = interesting(g);
		e.immsz = imm_size(size);
		break;
	default: /* 83 /op ib */
		e.opc[0] = 0x83;
		e.regf = op;
		e.rm = dst_rm(g, size, bm, 35);
		e.imm = interesting(g);
		e.immsz = 1;
		break;
	}
	if (e.modrm && !e.rm.is_reg && op != 7 && form != 1 && chance(g, 20)) {
		memmove(e.pfx + 1, e.pfx, e.npfx);
		e.pfx[0] = 0xf0; /* LOCK */
		e.npfx++;
	}
	put(g, &e);
}

static void t_unary(struct gen *g) /* INC, DEC, NEG, NOT, TEST */
{
	unsigned size = pick_size(g, true);
	struct bytemode bm = pick_bytemode(g);
	struct enc e = {.nopc = 1, .modrm = true, .force_rex = size == 1 && bm.rex};
	set_size(&e, size);
	unsigned k = rn(g, 6);
	if (k < 2) { /* FE/FF /0 /1 */
		e.opc[0] = size == 1 ? 0xfe : 0xff;
		e.regf = k;
	} else if (k < 4) { /* F6/F7 /2 /3 */
		e.opc[0] = size == 1 ? 0xf6 : 0xf7;
		e.regf = k;
	} else if (k == 4) { /* F6/F7 /0 imm */
		e.opc[0] = size == 1 ? 0xf6 : 0xf7;
		e.regf = 0;
		e.imm = interesting(g);
		e.immsz = imm_size(size);
	} else { /* TEST r/m, r */
		e.opc[0] = size == 1 ? 0x84 : 0x85;
		e.regf = size == 1 ? anyreg8(g, bm) : anyreg(g);
	}
	e.rm = dst_rm(g, size, bm, 30);
	if (!e.rm.is_reg && k < 4 && chance(g, 20)) {
		memmove(e.pfx + 1, e.pfx, e.npfx);
		e.pfx[0] = 0xf0;
		e.npfx++;
	}
	put(g, &e);
}

static void t_incdec_short(struct gen *g) /* 40-4F: INC/DEC r32 outside 64-bit mode */
{
	unsigned r = wreg(g);
	if (chance(g, 30)) {
		uint8_t b[2] = {0x66, (uint8_t)(0x40 + 8 * rn(g, 2) + r)};
		put_plain(g, b, 2, 0, 0);
	} else {
		put1(g, (uint8_t)(0x40 + 8 * rn(g, 2) + r));
	}
}

static void t_mul(struct gen *g) /* MUL/IMUL r/m; IMUL r, r/m (, imm) */
{
	unsigned size = pick_size(g, true);
	struct bytemode bm = pick_bytemode(g);
	struct enc e = {.modrm = true, .force_rex = size == 1 && bm.rex};
	unsigned k = rn(g, 4);
	if (size == 1)
		k = 0;
	set_size(&e, size);
	if (k == 0) {
		e.nopc = 1;
		e.opc[0] = size == 1 ? 0xf6 : 0xf7;
		e.regf = 4 + rn(g, 2);
		e.rm = src_rm(g, size, bm, 30);
	} else if (k == 1) {
		e.nopc = 2;
		e.opc[0] = 0x0f, e.opc[1] = 0xaf;
		e.regf = wreg(g);
		e.rm = src_rm(g, size, bm, 30);
	} else {
		e.nopc = 1;
		e.opc[0] = k == 2 ? 0x69 : 0x6b;
		e.regf = wreg(g);
		e.rm = src_rm(g, size, bm, 30);
		e.imm = interesting(g);
		e.immsz = k == 2 ? imm_size(size) : 1;
	}
	put(g, &e);
}

/* DIV/IDIV with operands set up so the quotient fits, except rarely. */
static void t_div(struct gen *g)
{
	unsigned size = pick_size(g, true);
	bool sign = chance(g, 50);
	uint64_t m = size == 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
	uint64_t divisor = interesting(g) & m;
	if (divisor == 0 && chance(g, 90))
		divisor = 7;
	uint64_t lo = interesting(g) & m, hi;
	if (sign) /* sign-extend the low half into the high half */
		hi = ((lo >> (size * 8 - 1)) & 1) ? m : 0;
	else
		hi = divisor ? (interesting(g) & m) % divisor : 0;
	if (chance(g, 3))
		hi = interesting(g) & m; /* may overflow: #DE */
	unsigned dreg;
	do
		dreg = wreg(g);
	while (dreg == 0 || dreg == 2 || (size == 1 && dreg >= 4));
	if (size == 1) {
		mov_reg_imm(g, 0, 2, (hi << 8) | lo);
	} else {
		mov_reg_imm(g, 0, size, lo);
		mov_reg_imm(g, 2, size, hi);
	}
	mov_reg_imm(g, dreg, size, divisor);
	struct enc e = {.nopc = 1, .modrm = true};
	set_size(&e, size);
	e.opc[0] = size == 1 ? 0xf6 : 0xf7;
	e.regf = sign ? 7 : 6;
	e.rm = rop(dreg);
	put(g, &e);
}

static void t_mov(struct gen *g)
{
	unsigned size = pick_size(g, true);
	struct bytemode bm = pick_bytemode(g);
	struct enc e = {.nopc = 1, .modrm = true, .force_rex = size == 1 && bm.rex};
	set_size(&e, size);
	switch (rn(g, 5)) {
	case 0: /* 88/89 */
		e.opc[0] = size == 1 ? 0x88 : 0x89;
		e.rm = dst_rm(g, size, bm, 50);
		e.regf = size == 1 ? anyreg8(g, bm) : anyreg(g);
		break;
	case 1: /* 8A/8B */
		e.opc[0] = size == 1 ? 0x8a : 0x8b;
		e.regf = size == 1 ? wreg8(g, bm) : wreg(g);
		e.rm = src_rm(g, size, bm, 50);
		break;
	case 2: /* C6/C7 /0 */
		e.opc[0] = size == 1 ? 0xc6 : 0xc7;
		e.rm = dst_rm(g, size, bm, 50);
		e.imm = interesting(g);
		e.immsz = imm_size(size);
		break;
	case 3: {
		unsigned r = size == 1 ? wreg8(g, (struct bytemode){0}) : wreg(g);
		mov_reg_imm(g, r, size, interesting(g));
		return;
	}
	default: { /* A0-A3 moffs */
		bool store = chance(g, 50);
		e.modrm = false;
		e.force_rex = false;
		e.opc[0] = (uint8_t)((store ? 0xa2 : 0xa0) + (size > 1));
		e.imm = DT_DATA_ADDR + rn(g, 0x3f00);
		e.immsz = g->m64 ? 8 : 4;
		break;
	}
	}
	put(g, &e);
}

static void t_movx(struct gen *g) /* MOVZX, MOVSX, MOVSXD */
{
	unsigned size = pick_size(g, false);
	struct bytemode bm = pick_bytemode(g);
	struct enc e = {.modrm = true};
	set_size(&e, size);
	unsigned k = rn(g, g->m64 ? 5 : 4);
	if (k == 4) {
		e.nopc = 1;
		e.opc[0] = 0x63;
		e.w = true;
		e.regf = wreg(g);
		e.rm = src_rm(g, 4, bm, 40);
	} else {
		bool word = k & 1;
		e.nopc = 2;
		e.opc[0] = 0x0f;
		e.opc[1] = (uint8_t)((k < 2 ? 0xb6 : 0xbe) + word);
		e.regf = wreg(g);
		if (!word && (e.regf >= 8 || !bm.rex)) {
			e.force_rex = bm.rex;
			e.rm = chance(g, 40) ? mem(g, 1) : rop(bm.rex ? anyreg8(g, bm) : rn(g, 8));
			if (!bm.rex && e.regf >= 8 && e.rm.is_reg && e.rm.reg >= 4)
				e.rm.reg &= 3; /* REX would turn AH-BH into SPL-DIL */
		} else {
			e.force_rex = bm.rex;
			e.rm = src_rm(g, word ? 2 : 1, bm, 40);
		}
		if (!word && !bm.rex && e.rm.is_reg && e.rm.reg >= 4 && (e.regf >= 8 || e.w))
			e.rm.reg &= 3;
	}
	put(g, &e);
}

static void t_lea(struct gen *g)
{
	unsigned size = pick_size(g, false);
	struct enc e = {.nopc = 1, .modrm = true, .opc = {0x8d}};
	set_size(&e, size);
	e.regf = wreg(g);
	/* LEA computes without accessing memory: any base and index. */
	struct op o = {.mod = (uint8_t)rn(g, 3)};
	o.rm = (uint8_t)rn(g, 8);
	if (o.rm == 4 || chance(g, 30)) {
		o.rm = 4;
		o.has_sib = true;
		unsigned scale = rn(g, 4), index = rn(g, 8), base = rn(g, 8);
		o.sib = (uint8_t)(scale << 6 | index << 3 | base);
	}
	if (o.mod == 1)
		o.disp = (int8_t)rn(g, 256), o.dispsz = 1;
	else if (o.mod == 2 || (o.mod == 0 && (o.rm == 5 || (o.has_sib && (o.sib & 7) == 5))))
		o.disp = (int32_t)interesting(g), o.dispsz = 4;
	if (o.mod == 0 && o.rm == 5 && g->m64)
		o.riprel = true, o.target = code_addr(g) + (uint64_t)(int64_t)(int16_t)rn(g, 65536);
	o.addr32 = g->m64 && chance(g, 15);
	e.rm = o;
	put(g, &e);
}

static void t_xchg(struct gen *g)
{
	unsigned size = pick_size(g, true);
	struct bytemode bm = pick_bytemode(g);
	if (size > 1 && chance(g, 30)) { /* 90+r */
		struct enc e = {.nopc = 1, .opc = {0x90}, .plus = true, .preg = wreg(g)};
		set_size(&e, size);
		if (e.preg == 0 && size != 2 && !e.w)
			e.preg = 1;
		put(g, &e);
		return;
	}
	struct enc e = {.nopc = 1, .modrm = true, .force_rex = size == 1 && bm.rex};
	set_size(&e, size);
	e.opc[0] = size == 1 ? 0x86 : 0x87;
	e.regf = size == 1 ? wreg8(g, bm) : wreg(g);
	e.rm = dst_rm(g, size, bm, 40);
	put(g, &e);
}

static void t_shift(struct gen *g)
{
	static const uint8_t counts[] = {0, 1, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255};
	unsigned size = pick_size(g, true);
	struct bytemode bm = pick_bytemode(g);
	unsigned k = rn(g, 3), op;
	do
		op = rn(g, 8);
	while (op == 6); /* /6 is not a documented encoding */
	if (k == 2 && chance(g, 60))
		mov_reg_imm(g, 1, 1, chance(g, 70) ? counts[rn(g, sizeof(counts))] : rn(g, 256));
	struct enc e = {.nopc = 1, .modrm = true, .regf = op, .force_rex = size == 1 && bm.rex};
	set_size(&e, size);
	e.opc[0] = (uint8_t)((k == 0 ? 0xc0 : k == 1 ? 0xd0 : 0xd2) + (size > 1));
	if (k == 0)
		e.imm = chance(g, 70) ? counts[rn(g, sizeof(counts))] : rn(g, 256), e.immsz = 1;
	e.rm = dst_rm(g, size, bm, 30);
	if (k == 2 && e.rm.is_reg && e.rm.reg == 1 && size > 1)
		e.rm.reg = 0;
	put(g, &e);
}

static void t_shxd(struct gen *g) /* SHLD, SHRD */
{
	unsigned size = pick_size(g, false);
	bool cl = chance(g, 50);
	unsigned maxc = size == 2 ? 16 : 255;
	if (cl)
		mov_reg_imm(g, 1, 1, rn(g, maxc + 1));
	struct enc e = {.nopc = 2, .modrm = true, .opc = {0x0f}};
	set_size(&e, size);
	e.opc[1] = (uint8_t)((chance(g, 50) ? 0xa4 : 0xac) + cl);
	e.regf = anyreg(g);
	e.rm = dst_rm(g, size, (struct bytemode){0}, 30);
	if (!cl)
		e.imm = rn(g, maxc + 1), e.immsz = 1;
	if (cl && e.rm.is_reg && e.rm.reg == 1)
		e.rm.reg = 0;
	put(g, &e);
}

static void t_bit(struct gen *g) /* BT/BTS/BTR/BTC, BSF/BSR */
{
	unsigned size = pick_size(g, false);
	struct enc e = {.nopc = 2, .modrm = true, .opc = {0x0f}};
	unsigned k = rn(g, 3);
	if (k == 0) { /* r/m, r */
		unsigned r = wreg(g);
		e.rm = dst_rm(g, size, (struct bytemode){0}, 50);
		if (!e.rm.is_reg) /* keep the bit offset near the operand */
			mov_reg_imm(g, r, size == 8 ? 8 : 4, (uint64_t)(rn(g, 1280)) - 256);
		set_size(&e, size);
		e.opc[1] = (uint8_t)(0xa3 + 8 * rn(g, 4));
		e.regf = r;
		if (e.rm.is_reg && e.rm.reg == r && chance(g, 50))
			e.regf = anyreg(g);
	} else if (k == 1) { /* 0F BA /4-7 ib */
		set_size(&e, size);
		e.opc[1] = 0xba;
		e.regf = 4 + rn(g, 4);
		e.rm = dst_rm(g, size, (struct bytemode){0}, 40);
		e.imm = rn(g, 256), e.immsz = 1;
	} else { /* BSF/BSR, sometimes of zero */
		unsigned src = wreg(g);
		if (chance(g, 20))
			mov_reg_imm(g, src, size == 8 ? 8 : 4, 0);
		set_size(&e, size);
		e.opc[1] = (uint8_t)(0xbc + rn(g, 2));
		e.regf = wreg(g);
		e.rm = chance(g, 30) ? mem(g, 1) : rop(src);
	}
	if (k < 2 && e.opc[1] != 0xa3 && e.regf != 4 && !e.rm.is_reg && chance(g, 20)) {
		memmove(e.pfx + 1, e.pfx, e.npfx);
		e.pfx[0] = 0xf0;
		e.npfx++;
	}
	put(g, &e);
}

static void t_bitx(struct gen *g) /* POPCNT, TZCNT, LZCNT */
{
	unsigned size = pick_size(g, false);
	struct enc e = {.nopc = 2, .modrm = true, .opc = {0x0f}};
	set_size(&e, size);
	e.pfx[e.npfx++] = 0xf3;
	e.opc[1] = (uint8_t[]){0xb8, 0xbc, 0xbd}[rn(g, 3)];
	e.regf = wreg(g);
	e.rm = src_rm(g, size, (struct bytemode){0}, 30);
	put(g, &e);
}

static void t_setcc(struct gen *g)
{
	struct bytemode bm = pick_bytemode(g);
	struct enc e = {.nopc = 2, .modrm = true, .opc = {0x0f, (uint8_t)(0x90 + rn(g, 16))},
			.force_rex = bm.rex};
	e.rm = dst_rm(g, 1, bm, 30);
	put(g, &e);
}

static void t_cmov(struct gen *g)
{
	unsigned size = pick_size(g, false);
	struct enc e = {.nopc = 2, .modrm = true, .opc = {0x0f, (uint8_t)(0x40 + rn(g, 16))}};
	set_size(&e, size);
	e.regf = wreg(g);
	e.rm = src_rm(g, size, (struct bytemode){0}, 30);
	put(g, &e);
}

/* Templates that do not branch, for the bodies of branch templates. */
static void body(struct gen *g);

static void t_jcc(struct gen *g)
{
	bool near = chance(g, 30);
	unsigned cc = rn(g, 16);
	size_t at;
	if (near) {
		uint8_t b[2] = {0x0f, (uint8_t)(0x80 + cc)};
		put_plain(g, b, 2, 0, 4);
		at = g->len - 4;
	} else {
		put1(g, (uint8_t)(0x70 + cc));
		emit(g, 0);
		at = g->len - 1;
	}
	size_t from = g->len;
	body(g);
	size_t skip = g->len - from;
	if (!near && skip > 127) {
		g->len = from; /* too long for rel8: skip nothing */
		skip = 0;
	}
	patch_le(g, at, skip, near ? 4 : 1);
}

static void t_jmp(struct gen *g)
{
	unsigned k = rn(g, 4);
	size_t at = 0;
	unsigned r = wreg(g);
	struct op m = mem(g, 1);
	if (k == 0) {
		put1(g, 0xeb), emit(g, 0), at = g->len - 1;
	} else if (k == 1) {
		put_plain(g, (const uint8_t[]){0xe9}, 1, 0, 4), at = g->len - 4;
	} else if (k == 2) { /* MOV r32, target; JMP r */
		mov_reg_imm(g, r, 4, 0);
		at = g->len - 4;
		struct enc e = {.nopc = 1, .opc = {0xff}, .modrm = true, .regf = 4, .rm = rop(r)};
		put(g, &e);
	} else { /* MOV [m], target; JMP [m] */
		struct enc s = {.nopc = 1, .opc = {0xc7}, .modrm = true, .rm = m, .immsz = 4, .w = g->m64};
		put(g, &s);
		at = s.imm_at;
		struct enc e = {.nopc = 1, .opc = {0xff}, .modrm = true, .regf = 4, .rm = m};
		put(g, &e);
	}
	size_t from = g->len;
	body(g);
	if (k == 0 && g->len - from > 127)
		g->len = from;
	if (k < 2)
		patch_le(g, at, g->len - from, k == 0 ? 1 : 4);
	else
		patch_le(g, at, code_addr(g), 4);
}

static void t_call(struct gen *g)
{
	unsigned k = rn(g, 3);
	size_t at;
	struct op m = mem(g, 1);
	unsigned r = wreg(g);
	if (k == 0) {
		put_plain(g, (const uint8_t[]){0xe8}, 1, 0, 4);
		at = g->len - 4;
	} else if (k == 1) {
		mov_reg_imm(g, r, 4, 0);
		at = g->len - 4;
		struct enc e = {.nopc = 1, .opc = {0xff}, .modrm = true, .regf = 2, .rm = rop(r)};
		put(g, &e);
	} else {
		struct enc s = {.nopc = 1, .opc = {0xc7}, .modrm = true, .rm = m, .immsz = 4, .w = g->m64};
		put(g, &s);
		at = s.imm_at;
		struct enc e = {.nopc = 1, .opc = {0xff}, .modrm = true, .regf = 2, .rm = m};
		put(g, &e);
	}
	size_t from = g->len;
	body(g);
	patch_le(g, at, k == 0 ? g->len - from : code_addr(g), 4);
	/* The return address is on the stack: pop it into a register. */
	struct enc p = {.nopc = 1, .opc = {0x58}, .plus = true, .preg = wreg(g)};
	put(g, &p);
}

static void t_ret(struct gen *g)
{
	bool imm = chance(g, 40);
	unsigned word = g->m64 ? 8 : 4;
	if (imm)
		put_plain(g, (const uint8_t[]){0x6a}, 1, rn(g, 256), 1); /* junk to discard */
	uint64_t target = code_addr(g) + 5 + (imm ? 3 : 1);
	put_plain(g, (const uint8_t[]){0x68}, 1, target, 4);
	if (imm)
		put_plain(g, (const uint8_t[]){0xc2}, 1, word, 2);
	else
		put1(g, 0xc3);
}

static void t_loop(struct gen *g) /* LOOP/LOOPE/LOOPNE over one ALU instruction, JRCXZ */
{
	unsigned k = rn(g, 4);
	bool a32 = g->m64 && chance(g, 20);
	mov_reg_imm(g, 1, 4, k == 3 ? rn(g, 2) : 1 + rn(g, 4));
	if (k == 3) { /* JRCXZ/JECXZ forward over a body */
		if (a32)
			put_plain(g, (const uint8_t[]){0x67, 0xe3}, 2, 0, 1);
		else
			put_plain(g, (const uint8_t[]){0xe3}, 1, 0, 1);
		size_t at = g->len - 1, from = g->len;
		body(g);
		if (g->len - from > 127)
			g->len = from;
		patch_le(g, at, g->len - from, 1);
		return;
	}
	size_t top = g->len;
	unsigned r;
	do
		r = wreg(g);
	while (r == 1);
	struct enc e = {.nopc = 1, .opc = {0x83}, .modrm = true, .rm = rop(r), .immsz = 1};
	e.regf = rn(g, 8);
	e.imm = interesting(g);
	e.w = g->m64 && chance(g, 50);
	put(g, &e);
	uint8_t op = (uint8_t)(0xe0 + (k == 0 ? 2 : k == 1 ? 1 : 0));
	if (a32)
		put_plain(g, (const uint8_t[]){0x67, op}, 2, 0, 1);
	else
		put_plain(g, &op, 1, 0, 1);
	patch_le(g, g->len - 1, (uint64_t)((int64_t)top - (int64_t)g->len), 1);
}

static void t_push_pop(struct gen *g)
{
	unsigned k = rn(g, 7);
	struct enc e = {.nopc = 1};
	switch (k) {
	case 0: e.opc[0] = 0x50, e.plus = true, e.preg = anyreg(g); break;
	case 1: e.opc[0] = 0x58, e.plus = true, e.preg = wreg(g); break;
	case 2: e.opc[0] = 0x6a, e.imm = rn(g, 256), e.immsz = 1; break;
	case 3: e.opc[0] = 0x68, e.imm = interesting(g), e.immsz = 4; break;
	case 4: e.opc[0] = 0xff, e.modrm = true, e.regf = 6, e.rm = mem(g, 1); break;
	case 5: e.opc[0] = 0x8f, e.modrm = true, e.regf = 0, e.rm = mem(g, 1); break;
	default: /* 16-bit push/pop */
		e.pfx[e.npfx++] = 0x66;
		e.opc[0] = chance(g, 50) ? 0x50 : 0x58;
		e.plus = true;
		e.preg = e.opc[0] == 0x50 ? anyreg(g) : wreg(g);
		break;
	}
	put(g, &e);
}

static void t_flags(struct gen *g)
{
	static const uint8_t simple[] = {0xf8, 0xf9, 0xf5, 0xfc, 0xfd, 0x9e, 0x9f};
	unsigned k = rn(g, 3);
	if (k == 0) {
		put1(g, simple[rn(g, sizeof(simple))]);
	} else if (k == 1) { /* PUSH imm; POPF */
		/* Arithmetic flags, DF, ID; IF kept. NT only in the emulated modes:
		 * PVM clears NT when it enters native user code. Never AC: PVM runs
		 * user code with the host's CR0.AM set (AC would raise #AC) and
		 * clears AC when it delivers an exception to the guest kernel. */
		uint64_t v = (rnd(g) & (g->m64 ? 0x200cd5ULL : 0x204cd5ULL)) | 0x202;
		put_plain(g, (const uint8_t[]){0x68}, 1, v, 4);
		put1(g, 0x9d);
	} else { /* PUSHF; POP r */
		put1(g, 0x9c);
		struct enc p = {.nopc = 1, .opc = {0x58}, .plus = true, .preg = wreg(g)};
		put(g, &p);
	}
}

static void lea_data(struct gen *g, unsigned reg, int32_t off)
{
	struct enc e = {.nopc = 1, .opc = {0x8d}, .modrm = true, .regf = reg, .w = g->m64};
	e.rm = (struct op){.mod = 2, .rm = DATA_BASE_REG, .disp = off, .dispsz = 4};
	put(g, &e);
}

static void t_string(struct gen *g)
{
	static const uint8_t ops[] = {0xa4, 0xa6, 0xaa, 0xac, 0xae};
	uint8_t op = ops[rn(g, 5)];
	unsigned size = pick_size(g, true);
	put1(g, chance(g, 70) ? 0xfc : 0xfd); /* CLD / STD */
	lea_data(g, 6, (int32_t)rn(g, 0x1000) - 0x800);
	lea_data(g, 7, (int32_t)rn(g, 0x1000) - 0x800);
	mov_reg_imm(g, 1, 4, rn(g, 24));
	struct enc e = {.nopc = 1, .opc = {(uint8_t)(op + (size > 1))}};
	unsigned rep = rn(g, 3); /* none, REP(E), REPNE (compare ops only) */
	if (rep == 2 && op != 0xa6 && op != 0xae)
		rep = 1;
	if (rep)
		e.pfx[e.npfx++] = rep == 1 ? 0xf3 : 0xf2;
	set_size(&e, size);
	put(g, &e);
}

static void t_convert(struct gen *g) /* CBW/CWDE/CDQE, CWD/CDQ/CQO */
{
	unsigned size = pick_size(g, false);
	struct enc e = {.nopc = 1, .opc = {(uint8_t)(0x98 + rn(g, 2))}};
	set_size(&e, size);
	put(g, &e);
}

static void t_bswap(struct gen *g)
{
	struct enc e = {.nopc = 2, .opc = {0x0f, 0xc8}, .plus = true};
	e.preg = wreg(g);
	e.w = g->m64 && chance(g, 50);
	put(g, &e);
}

static void t_atomic(struct gen *g) /* XADD, CMPXCHG, CMPXCHG8B/16B */
{
	unsigned k = rn(g, 4);
	if (k == 3) {
		bool b16 = g->m64 && chance(g, 40);
		struct enc e = {.nopc = 2, .opc = {0x0f, 0xc7}, .modrm = true, .regf = 1, .w = b16};
		e.rm = mem(g, b16 ? 16 : 1);
		if (chance(g, 50))
			e.pfx[e.npfx++] = 0xf0;
		put(g, &e);
		return;
	}
	unsigned size = pick_size(g, true);
	struct bytemode bm = pick_bytemode(g);
	struct enc e = {.nopc = 2, .opc = {0x0f}, .modrm = true, .force_rex = size == 1 && bm.rex};
	set_size(&e, size);
	e.opc[1] = (uint8_t)((k == 0 ? 0xc0 : 0xb0) + (size > 1));
	e.regf = size == 1 ? wreg8(g, bm) : wreg(g);
	e.rm = dst_rm(g, size, bm, 50);
	if (!e.rm.is_reg && chance(g, 50)) {
		memmove(e.pfx + 1, e.pfx, e.npfx);
		e.pfx[0] = 0xf0;
		e.npfx++;
	}
	put(g, &e);
}

static void t_bcd(struct gen *g) /* DAA, DAS, AAA, AAS, AAM, AAD: not in 64-bit mode */
{
	static const uint8_t ops[] = {0x27, 0x2f, 0x37, 0x3f, 0xd4, 0xd5};
	uint8_t op = ops[rn(g, 6)];
	if (op == 0xd4 || op == 0xd5) {
		uint8_t base = chance(g, 70) ? 10 : (uint8_t)(1 + rn(g, 255));
		put_plain(g, &op, 1, base, 1);
	} else {
		put1(g, op);
	}
}

/* ---- SSE ---- */

struct sse_op {
	uint8_t pfx; /* 0, 0x66, 0xf2, 0xf3 */
	uint8_t map; /* second opcode byte after 0F, or 0x38/0x3a */
	uint8_t op;
	uint8_t kind;
};

enum { SK_XX, SK_XX_IMM, SK_XX_CMP, SK_XMM_IMM_SHIFT, SK_FLAGS, SK_X_R, SK_R_X, SK_R_XMM3 };

static const struct sse_op sse_int_ops[] = {
#define I(op) {0x66, 0, op, SK_XX}
    I(0x60), I(0x61), I(0x62), I(0x63), I(0x64), I(0x65), I(0x66), I(0x67), I(0x68), I(0x69),
    I(0x6a), I(0x6b), I(0x6c), I(0x6d), I(0x74), I(0x75), I(0x76), I(0xd1), I(0xd2), I(0xd3),
    I(0xd4), I(0xd5), I(0xd8), I(0xd9), I(0xda), I(0xdb), I(0xdc), I(0xdd), I(0xde), I(0xdf),
    I(0xe0), I(0xe1), I(0xe2), I(0xe3), I(0xe4), I(0xe5), I(0xe8), I(0xe9), I(0xea), I(0xeb),
    I(0xec), I(0xed), I(0xee), I(0xef), I(0xf1), I(0xf2), I(0xf3), I(0xf4), I(0xf5), I(0xf6),
    I(0xf8), I(0xf9), I(0xfa), I(0xfb), I(0xfc), I(0xfd), I(0xfe),
#undef I
    {0x66, 0, 0x70, SK_XX_IMM}, {0xf3, 0, 0x70, SK_XX_IMM}, {0xf2, 0, 0x70, SK_XX_IMM},
    {0x66, 0, 0x71, SK_XMM_IMM_SHIFT}, {0x66, 0, 0x72, SK_XMM_IMM_SHIFT},
    {0x66, 0, 0x73, SK_XMM_IMM_SHIFT}, {0x66, 0, 0xd7, SK_R_XMM3}, {0x66, 0, 0xc5, SK_R_XMM3},
    {0x66, 0, 0xc4, SK_X_R},
};

static const struct sse_op sse_fp_ops[] = {
#define F4(op) {0, 0, op, SK_XX}, {0x66, 0, op, SK_XX}, {0xf3, 0, op, SK_XX}, {0xf2, 0, op, SK_XX}
    F4(0x58), F4(0x59), F4(0x5c), F4(0x5d), F4(0x5e), F4(0x5f), F4(0x51), F4(0x5a),
#undef F4
    {0, 0, 0xc2, SK_XX_CMP}, {0x66, 0, 0xc2, SK_XX_CMP}, {0xf3, 0, 0xc2, SK_XX_CMP},
    {0xf2, 0, 0xc2, SK_XX_CMP}, {0, 0, 0x54, SK_XX}, {0x66, 0, 0x54, SK_XX},
    {0, 0, 0x55, SK_XX}, {0x66, 0, 0x55, SK_XX}, {0, 0, 0x56, SK_XX}, {0x66, 0, 0x56, SK_XX},
    {0, 0, 0x57, SK_XX}, {0x66, 0, 0x57, SK_XX}, {0, 0, 0x14, SK_XX}, {0x66, 0, 0x14, SK_XX},
    {0, 0, 0x15, SK_XX}, {0x66, 0, 0x15, SK_XX}, {0, 0, 0xc6, SK_XX_IMM},
    {0x66, 0, 0xc6, SK_XX_IMM}, {0, 0, 0x2e, SK_FLAGS}, {0x66, 0, 0x2e, SK_FLAGS},
    {0, 0, 0x2f, SK_FLAGS}, {0x66, 0, 0x2f, SK_FLAGS}, {0, 0, 0x5b, SK_XX},
    {0x66, 0, 0x5b, SK_XX}, {0xf3, 0, 0x5b, SK_XX}, {0xf3, 0, 0xe6, SK_XX},
    {0xf2, 0, 0xe6, SK_XX}, {0x66, 0, 0xe6, SK_XX}, {0xf2, 0, 0x2a, SK_X_R},
    {0xf3, 0, 0x2a, SK_X_R}, {0xf2, 0, 0x2c, SK_R_X}, {0xf2, 0, 0x2d, SK_R_X},
    {0xf3, 0, 0x2c, SK_R_X}, {0xf3, 0, 0x2d, SK_R_X}, {0, 0, 0x50, SK_R_XMM3},
    {0x66, 0, 0x50, SK_R_XMM3},
};

static unsigned xreg(struct gen *g) { return rn(g, g->m64 ? 16 : 8); }

static void sse_enc(struct enc *e, uint8_t pfx, uint8_t op)
{
	if (pfx)
		e->pfx[e->npfx++] = pfx;
	e->nopc = 2;
	e->opc[0] = 0x0f;
	e->opc[1] = op;
	e->modrm = true;
}

static void store_xmm(struct gen *g, unsigned x)
{
	struct enc e = {0};
	sse_enc(&e, 0xf3, 0x7f); /* MOVDQU m128, xmm */
	e.regf = x;
	e.rm = slot(g);
	put(g, &e);
}

static void sse_emit(struct gen *g, const struct sse_op *o)
{
	struct enc e = {0};
	unsigned x = xreg(g);
	sse_enc(&e, o->pfx, o->op);
	e.regf = x;
	switch (o->kind) {
	case SK_XX:
	case SK_FLAGS:
		e.rm = chance(g, 30) ? mem(g, 16) : rop(xreg(g));
		break;
	case SK_XX_IMM:
		e.rm = chance(g, 30) ? mem(g, 16) : rop(xreg(g));
		e.imm = rn(g, 256), e.immsz = 1;
		break;
	case SK_XX_CMP:
		e.rm = chance(g, 30) ? mem(g, 16) : rop(xreg(g));
		e.imm = rn(g, 8), e.immsz = 1;
		break;
	case SK_XMM_IMM_SHIFT: {
		static const uint8_t sub71[] = {2, 4, 6}, sub73[] = {2, 3, 6, 7};
		e.regf = o->op == 0x73 ? sub73[rn(g, 4)] : sub71[rn(g, 3)];
		e.rm = rop(x);
		e.imm = chance(g, 70) ? rn(g, 20) : rn(g, 256), e.immsz = 1;
		break;
	}
	case SK_X_R: /* xmm, r/m32/64 (CVTSI2SD/SS, PINSRW) */
		e.w = g->m64 && o->op == 0x2a && chance(g, 50);
		e.rm = chance(g, 30) ? mem(g, 1) : rop(anyreg(g));
		if (o->op == 0xc4)
			e.imm = rn(g, 8), e.immsz = 1;
		break;
	case SK_R_X: /* r32/64, xmm/m (CVT(T)SD2SI, CVT(T)SS2SI) */
		e.w = g->m64 && chance(g, 50);
		e.regf = wreg(g);
		e.rm = chance(g, 30) ? mem(g, 1) : rop(xreg(g));
		break;
	default: /* SK_R_XMM3: r32, xmm (PMOVMSKB, PEXTRW, MOVMSKPS/PD) */
		e.regf = wreg(g);
		e.rm = rop(xreg(g));
		if (o->op == 0xc5)
			e.imm = rn(g, 8), e.immsz = 1;
		break;
	}
	put(g, &e);
	if (o->kind == SK_XMM_IMM_SHIFT)
		store_xmm(g, e.rm.reg);
	else if (o->kind != SK_FLAGS && o->kind != SK_R_X && o->kind != SK_R_XMM3)
		store_xmm(g, e.regf);
}

static void t_sse_int(struct gen *g)
{
	sse_emit(g, &sse_int_ops[rn(g, sizeof(sse_int_ops) / sizeof(sse_int_ops[0]))]);
}

static void t_sse_fp(struct gen *g)
{
	sse_emit(g, &sse_fp_ops[rn(g, sizeof(sse_fp_ops) / sizeof(sse_fp_ops[0]))]);
}

static void t_sse_mov(struct gen *g)
{
	static const struct {
		uint8_t pfx, op;
		uint8_t align; /* memory alignment, 0 = register-register forbidden */
		bool store;    /* memory is the destination */
	} movs[] = {
	    {0, 0x10, 1, false},    {0, 0x11, 1, true},     {0x66, 0x10, 1, false}, {0x66, 0x11, 1, true},
	    {0xf3, 0x10, 1, false}, {0xf3, 0x11, 1, true},  {0xf2, 0x10, 1, false}, {0xf2, 0x11, 1, true},
	    {0, 0x28, 16, false},   {0, 0x29, 16, true},    {0x66, 0x28, 16, false}, {0x66, 0x29, 16, true},
	    {0x66, 0x6f, 16, false}, {0x66, 0x7f, 16, true}, {0xf3, 0x6f, 1, false}, {0xf3, 0x7f, 1, true},
	    {0xf3, 0x7e, 1, false}, {0x66, 0xd6, 1, true},  {0, 0x12, 1, false},    {0, 0x13, 1, true},
	    {0, 0x16, 1, false},    {0, 0x17, 1, true},     {0x66, 0x12, 1, false}, {0x66, 0x13, 1, true},
	    {0x66, 0x16, 1, false}, {0x66, 0x17, 1, true},  {0x66, 0xe7, 16, true}, {0, 0x2b, 16, true},
	};
	unsigned k = rn(g, sizeof(movs) / sizeof(movs[0]) + 2);
	struct enc e = {0};
	if (k >= sizeof(movs) / sizeof(movs[0])) { /* MOVD/MOVQ between xmm and r/m */
		bool to_xmm = k % 2 == 0;
		sse_enc(&e, 0x66, to_xmm ? 0x6e : 0x7e);
		e.w = g->m64 && chance(g, 50);
		e.regf = xreg(g);
		e.rm = chance(g, 30) ? mem(g, 1) : rop(to_xmm ? anyreg(g) : wreg(g));
		put(g, &e);
		if (to_xmm)
			store_xmm(g, e.regf);
		return;
	}
	bool memonly = movs[k].op == 0x13 || movs[k].op == 0x17 || movs[k].op == 0xe7 ||
		       movs[k].op == 0x2b || (movs[k].pfx == 0x66 && (movs[k].op == 0x12 || movs[k].op == 0x16));
	sse_enc(&e, movs[k].pfx, movs[k].op);
	e.regf = xreg(g);
	e.rm = memonly || chance(g, 50) ? mem(g, movs[k].align) : rop(xreg(g));
	put(g, &e);
	if (!movs[k].store || e.rm.is_reg)
		store_xmm(g, movs[k].store ? e.rm.reg : e.regf);
}

/* Loads every XMM register and a random MXCSR (rounding, FTZ, DAZ; all
 * exceptions masked) from the data area. */
static void sse_prologue(struct gen *g)
{
	for (unsigned x = 0; x < (g->m64 ? 16u : 8u); x++) {
		struct enc e = {0};
		sse_enc(&e, 0xf3, 0x6f);
		e.regf = x;
		e.rm = (struct op){.mod = 2, .rm = DATA_BASE_REG, .disp = (int32_t)(x * 16) - 0x1000, .dispsz = 4};
		put(g, &e);
	}
	uint32_t rc = rn(g, 4), ftz = chance(g, 25) ? 0x8000 : 0, daz = chance(g, 25) ? 0x40 : 0;
	uint32_t mxcsr = 0x1f80 | rc << 13 | ftz | daz;
	struct op m = {.mod = 2, .rm = DATA_BASE_REG, .disp = SCRATCH_OFF - 0x1000 + 0x400, .dispsz = 4};
	struct enc s = {.nopc = 1, .opc = {0xc7}, .modrm = true, .rm = m, .imm = mxcsr, .immsz = 4};
	put(g, &s);
	struct enc l = {.nopc = 2, .opc = {0x0f, 0xae}, .modrm = true, .regf = 2, .rm = m};
	put(g, &l);
}

static void sse_epilogue(struct gen *g)
{
	struct op m = {.mod = 2, .rm = DATA_BASE_REG, .disp = SCRATCH_OFF - 0x1000 + 0x404, .dispsz = 4};
	struct enc s = {.nopc = 2, .opc = {0x0f, 0xae}, .modrm = true, .regf = 3, .rm = m};
	put(g, &s); /* STMXCSR */
}

/* ---- x87 ---- */

static void x87_mem(struct gen *g, uint8_t op, unsigned regf)
{
	struct enc e = {.nopc = 1, .opc = {op}, .modrm = true, .regf = regf, .rm = mem(g, 1)};
	put(g, &e);
}

static void x87_reg(struct gen *g, uint8_t op, uint8_t modrm)
{
	uint8_t b[2] = {op, modrm};
	put_plain(g, b, 2, 0, 0);
}

static void t_x87(struct gen *g)
{
	int d = g->x87_depth;
	unsigned k = rn(g, 10);
	if (d == 0 || (d < 6 && k < 3)) { /* load */
		switch (rn(g, 7)) {
		case 0: x87_mem(g, 0xd9, 0); break; /* FLD m32 */
		case 1: x87_mem(g, 0xdd, 0); break; /* FLD m64 */
		case 2: x87_mem(g, 0xdb, 0); break; /* FILD m32 */
		case 3: x87_mem(g, 0xdf, 5); break; /* FILD m64 */
		case 4: x87_reg(g, 0xd9, (uint8_t)(0xe8 + rn(g, 7))); break; /* FLD1, FLDL2T, ..., FLDZ */
		case 5: x87_mem(g, 0xdb, 5); break; /* FLD m80 */
		default: x87_reg(g, 0xd9, (uint8_t)(0xc0 + rn(g, (unsigned)d + 1))); break;
		}
		g->x87_depth++;
		return;
	}
	if (k < 6) { /* arithmetic */
		unsigned op = rn(g, 8);
		switch (rn(g, 4)) {
		case 0: x87_mem(g, 0xd8, op); break; /* m32 */
		case 1: x87_mem(g, 0xdc, op); break; /* m64 */
		case 2: x87_reg(g, 0xd8, (uint8_t)(0xc0 + op * 8 + rn(g, (unsigned)d))); break;
		default:
			if (op == 2 || op == 3)
				op = 0;
			x87_reg(g, 0xdc, (uint8_t)(0xc0 + op * 8 + rn(g, (unsigned)d)));
			break;
		}
		if (op == 3 && g->x87_depth > 0)
			g->x87_depth--; /* FCOMP */
		return;
	}
	if (k == 6) { /* one-operand */
		static const uint8_t ops[] = {0xe0, 0xe1, 0xfa, 0xfc, 0xe4, 0xe5, 0xfd, 0xf8};
		x87_reg(g, 0xd9, ops[rn(g, sizeof(ops))]);
		return;
	}
	if (k == 7) { /* FXCH, FCOMI/FUCOMI, FNSTSW AX */
		unsigned i = rn(g, (unsigned)d);
		switch (rn(g, 3)) {
		case 0: x87_reg(g, 0xd9, (uint8_t)(0xc8 + i)); break;
		case 1: x87_reg(g, 0xdb, (uint8_t)((chance(g, 50) ? 0xe8 : 0xf0) + i)); break;
		default: x87_reg(g, 0xdf, 0xe0); break;
		}
		return;
	}
	/* store and pop */
	switch (rn(g, 5)) {
	case 0: x87_mem(g, 0xd9, 3); break; /* FSTP m32 */
	case 1: x87_mem(g, 0xdd, 3); break; /* FSTP m64 */
	case 2: x87_mem(g, 0xdb, 7); break; /* FSTP m80 */
	case 3: x87_mem(g, 0xdb, 3); break; /* FISTP m32 */
	default: x87_mem(g, 0xdf, 7); break; /* FISTP m64 */
	}
	g->x87_depth--;
}

static void x87_prologue(struct gen *g)
{
	uint8_t b[2] = {0xdb, 0xe3}; /* FNINIT */
	put_plain(g, b, 2, 0, 0);
	g->x87_depth = 0;
	if (chance(g, 40)) { /* FLDCW with a random rounding and precision control */
		struct op m = {.mod = 2, .rm = DATA_BASE_REG, .disp = SCRATCH_OFF - 0x1000 + 0x410, .dispsz = 4};
		unsigned pc = rn(g, 4), rc = rn(g, 4);
		struct enc s = {.nopc = 1, .opc = {0xc7}, .modrm = true, .rm = m,
				.imm = 0x3f | pc << 8 | rc << 10, .immsz = 4};
		put(g, &s);
		struct enc l = {.nopc = 1, .opc = {0xd9}, .modrm = true, .regf = 5, .rm = m};
		put(g, &l);
	}
}

static void x87_epilogue(struct gen *g)
{
	x87_reg(g, 0xdf, 0xe0); /* FNSTSW AX */
	while (g->x87_depth > 0) {
		x87_mem(g, 0xdb, 7); /* FSTP m80: every register reaches memory */
		g->x87_depth--;
	}
}

/* ---- MMX (native 64-bit only: KVM's emulator does not know MMX) ----
 * MM register numbers 8-15 in a template set REX.R/REX.B, which MMX
 * operands ignore. Results go to the scratch slots. */

#define MMX_FXSAVE_OFF 0x3600 /* FXSAVE area of the epilogue, relative to DT_DATA_ADDR */

static unsigned mmreg(struct gen *g)
{
	unsigned r = rn(g, 8);
	return r + (g->m64 && chance(g, 15) ? 8 : 0);
}

static void mmx_enc(struct enc *e, uint8_t pfx, uint8_t op) { sse_enc(e, pfx, op); }

static void store_mm(struct gen *g, unsigned mm)
{
	struct enc e = {0};
	mmx_enc(&e, 0, 0x7f); /* MOVQ m64, mm */
	e.regf = mm & 7;
	e.rm = slot(g);
	put(g, &e);
}

/* The packed-integer and shift opcodes with an mm, mm/m64 form. */
static const uint8_t mmx_int_ops[] = {
    0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x74, 0x75,
    0x76, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
    0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef,
    0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe,
};

static void t_mmx_int(struct gen *g)
{
	struct enc e = {0};
	unsigned k = rn(g, sizeof(mmx_int_ops) + 6);
	if (k >= sizeof(mmx_int_ops)) { /* shift by an immediate: 0F 71/72/73 /2 /4 /6 */
		static const uint8_t sub[] = {2, 4, 6}, sub73[] = {2, 6};
		uint8_t op = (uint8_t)(0x71 + (k - sizeof(mmx_int_ops)) % 3);
		mmx_enc(&e, 0, op);
		e.regf = op == 0x73 ? sub73[rn(g, 2)] : sub[rn(g, 3)];
		e.rm = rop(mmreg(g));
		e.imm = chance(g, 70) ? rn(g, 70) : rn(g, 256), e.immsz = 1;
		put(g, &e);
		store_mm(g, e.rm.reg);
		return;
	}
	mmx_enc(&e, 0, mmx_int_ops[k]);
	e.regf = mmreg(g);
	e.rm = chance(g, 30) ? mem(g, 1) : rop(mmreg(g));
	put(g, &e);
	store_mm(g, e.regf);
}

/* MOVD/MOVQ to and from GPRs and memory, MOVQ, MOVNTQ, PSHUFW, PINSRW,
 * PEXTRW, PMOVMSKB, MASKMOVQ, EMMS. */
static void t_mmx_mov(struct gen *g)
{
	struct enc e = {0};
	unsigned k = rn(g, 12);
	switch (k) {
	case 0: case 1: /* MOVD/MOVQ mm, r/m32/64 and r/m32/64, mm */
		mmx_enc(&e, 0, k == 0 ? 0x6e : 0x7e);
		e.w = chance(g, 50);
		e.regf = mmreg(g);
		e.rm = chance(g, 30) ? mem(g, 1) : rop(k == 0 ? anyreg(g) : wreg(g));
		break;
	case 2: case 3: /* MOVQ mm, mm/m64; MOVQ mm/m64, mm */
		mmx_enc(&e, 0, k == 2 ? 0x6f : 0x7f);
		e.regf = mmreg(g);
		e.rm = chance(g, 50) ? mem(g, 1) : rop(mmreg(g));
		break;
	case 4: /* MOVNTQ m64, mm */
		mmx_enc(&e, 0, 0xe7);
		e.regf = mmreg(g);
		e.rm = mem(g, 1);
		break;
	case 5: /* PSHUFW mm, mm/m64, imm8 */
		mmx_enc(&e, 0, 0x70);
		e.regf = mmreg(g);
		e.rm = chance(g, 30) ? mem(g, 1) : rop(mmreg(g));
		e.imm = rn(g, 256), e.immsz = 1;
		break;
	case 6: /* PINSRW mm, r32/m16, imm8 */
		mmx_enc(&e, 0, 0xc4);
		e.regf = mmreg(g);
		e.rm = chance(g, 30) ? mem(g, 1) : rop(anyreg(g));
		e.imm = rn(g, 8), e.immsz = 1;
		break;
	case 7: case 8: /* PEXTRW r32, mm, imm8; PMOVMSKB r32, mm */
		mmx_enc(&e, 0, k == 7 ? 0xc5 : 0xd7);
		e.w = chance(g, 20);
		e.regf = wreg(g);
		e.rm = rop(mmreg(g));
		if (k == 7)
			e.imm = rn(g, 8), e.immsz = 1;
		break;
	case 9: /* MASKMOVQ mm1, mm2 to [rdi] inside the data area */
		lea_data(g, 7, (int32_t)rn(g, 0x3ff8) - 0x1000);
		mmx_enc(&e, 0, 0xf7);
		e.regf = mmreg(g);
		e.rm = rop(mmreg(g));
		break;
	case 10: /* EMMS */
		put_plain(g, (const uint8_t[]){0x0f, 0x77}, 2, 0, 0);
		return;
	default: { /* the same byte pattern in every lane: saturation edges */
		static const uint64_t lanes[] = {0x7f7f7f7f7f7f7f7fULL, 0x8080808080808080ULL,
						 0x7fff80007fff8000ULL, 0xffffffffffffffffULL,
						 0x0001000100010001ULL, 0x7fffffff80000000ULL};
		mov_reg_imm(g, 0, 8, lanes[rn(g, sizeof(lanes) / sizeof(lanes[0]))]);
		mmx_enc(&e, 0, 0x6e);
		e.w = true;
		e.regf = mmreg(g);
		e.rm = rop(0);
		break;
	}
	}
	put(g, &e);
	if (k != 1 && k != 3 && k != 4 && k != 7 && k != 8 && k != 9)
		store_mm(g, e.regf);
	else if (k == 3 && e.rm.is_reg)
		store_mm(g, e.rm.reg);
}

/* MOVQ2DQ, MOVDQ2Q and the conversions between MMX and XMM registers. */
static void t_mmx_xmm(struct gen *g)
{
	static const struct {
		uint8_t pfx, op;
		bool to_xmm;   /* the destination is an XMM register */
		uint8_t align; /* memory operand: its alignment; 0 = register only */
	} ops[] = {
	    {0xf3, 0xd6, true, 0}, {0xf2, 0xd6, false, 0}, {0, 0x2a, true, 1},
	    {0x66, 0x2a, true, 1}, {0, 0x2c, false, 1},    {0, 0x2d, false, 1},
	    {0x66, 0x2c, false, 16}, {0x66, 0x2d, false, 16},
	};
	unsigned k = rn(g, sizeof(ops) / sizeof(ops[0]));
	struct enc e = {0};
	mmx_enc(&e, ops[k].pfx, ops[k].op);
	e.regf = ops[k].to_xmm ? xreg(g) : mmreg(g);
	if (ops[k].align && chance(g, 30))
		e.rm = mem(g, ops[k].align);
	else
		e.rm = rop(ops[k].to_xmm ? mmreg(g) : xreg(g));
	put(g, &e);
	if (ops[k].to_xmm)
		store_xmm(g, e.regf);
	else
		store_mm(g, e.regf);
}

static void mmx_fxsave(struct gen *g)
{
	struct op m = {.mod = 2, .rm = DATA_BASE_REG, .disp = MMX_FXSAVE_OFF - 0x1000, .dispsz = 4};
	struct enc e = {.nopc = 2, .opc = {0x0f, 0xae}, .modrm = true, .regf = 0, .rm = m};
	put(g, &e);
}

/* FNINIT, then MM0-MM7 from the data area (TOP 0, every register valid). */
static void mmx_prologue(struct gen *g)
{
	uint8_t b[2] = {0xdb, 0xe3};
	put_plain(g, b, 2, 0, 0);
	for (unsigned mm = 0; mm < 8; mm++) {
		struct enc e = {0};
		mmx_enc(&e, 0, 0x6f);
		e.regf = mm;
		e.rm = (struct op){.mod = 2, .rm = DATA_BASE_REG, .disp = (int32_t)(0x100 + mm * 8) - 0x1000, .dispsz = 4};
		put(g, &e);
	}
}

/* MM0-MM7 to the scratch slots, then FXSAVE: TOP, the abridged tag word
 * and the 80-bit registers with their exponents. */
static void mmx_epilogue(struct gen *g)
{
	for (unsigned mm = 0; mm < 8; mm++)
		store_mm(g, mm);
	mmx_fxsave(g);
}

/* ---- I/O (emulated modes: IOPL 3) ---- */

static void t_io(struct gen *g)
{
	static const uint8_t p8[] = {0x60, 0x64, 0x70, 0x71, 0x80, 0x84, 0x88, 0x92, 0xe9, 0xf0};
	static const uint16_t p16[] = {0x3f8, 0x3fd, 0x1f0, 0x510, 0x2e0, 0x378, 0x404};
	unsigned size = pick_size(g, true);
	if (size == 8)
		size = 4;
	unsigned k = rn(g, 3);
	bool out = chance(g, 50);
	if (k == 0) {
		uint8_t op = (uint8_t)((out ? 0xe6 : 0xe4) + (size > 1));
		struct enc e = {.nopc = 1, .opc = {op}, .imm = p8[rn(g, sizeof(p8))], .immsz = 1};
		set_size(&e, size);
		put(g, &e);
		return;
	}
	mov_reg_imm(g, 2, 4, p16[rn(g, sizeof(p16) / sizeof(p16[0]))]);
	if (k == 1) {
		struct enc e = {.nopc = 1, .opc = {(uint8_t)((out ? 0xee : 0xec) + (size > 1))}};
		set_size(&e, size);
		put(g, &e);
		return;
	}
	put1(g, 0xfc);
	lea_data(g, out ? 6 : 7, (int32_t)rn(g, 0x1000) - 0x800);
	mov_reg_imm(g, 1, 4, rn(g, 8));
	struct enc e = {.nopc = 1, .opc = {(uint8_t)((out ? 0x6e : 0x6c) + (size > 1))}};
	if (chance(g, 60))
		e.pfx[e.npfx++] = 0xf3;
	set_size(&e, size);
	put(g, &e);
}

/* ---- SSE3 and SSSE3 (groups sse3, ssse3; XMM forms) ---- */

/* The SSE3 arithmetic and the aligned moves take the sse_emit path; the
 * unaligned loads (MOVDDUP m64, LDDQU m128 only) are emitted here. */
static const struct sse_op sse3_ops[] = {
    {0x66, 0, 0xd0, SK_XX}, {0xf2, 0, 0xd0, SK_XX}, /* ADDSUBPD, ADDSUBPS */
    {0x66, 0, 0x7c, SK_XX}, {0xf2, 0, 0x7c, SK_XX}, /* HADDPD, HADDPS */
    {0x66, 0, 0x7d, SK_XX}, {0xf2, 0, 0x7d, SK_XX}, /* HSUBPD, HSUBPS */
    {0xf3, 0, 0x12, SK_XX}, {0xf3, 0, 0x16, SK_XX}, /* MOVSLDUP, MOVSHDUP */
};

static void t_sse3(struct gen *g)
{
	unsigned n = sizeof(sse3_ops) / sizeof(sse3_ops[0]);
	unsigned k = rn(g, n + 2);
	if (k < n) {
		sse_emit(g, &sse3_ops[k]);
		return;
	}
	struct enc e = {0};
	bool lddqu = k == n;
	sse_enc(&e, 0xf2, lddqu ? 0xf0 : 0x12);
	e.regf = xreg(g);
	e.rm = lddqu || chance(g, 50) ? mem(g, 1) : rop(xreg(g));
	put(g, &e);
	store_xmm(g, e.regf);
}

/* FISTTP m16/m32/m64 (DF/DB/DD /1) of a value loaded from the data area:
 * balanced, so it leaves the x87 templates' stack depth as it was. The
 * group sse3 gets the x87 prologue (FNINIT: the reset control word
 * unmasks every exception). */
static void t_fisttp(struct gen *g)
{
	static const uint8_t op[3] = {0xdf, 0xdb, 0xdd};
	x87_mem(g, chance(g, 50) ? 0xdd : 0xd9, 0); /* FLD m64 / m32 */
	struct enc e = {.nopc = 1, .opc = {op[rn(g, 3)]}, .modrm = true, .regf = 1, .rm = slot(g)};
	put(g, &e);
}

/* 66 0F 38 00-0B, 1C-1E and 66 0F 3A 0F ib (PALIGNR), with
 * 16-byte-aligned memory operands. */
static void t_ssse3(struct gen *g)
{
	static const uint8_t ops38[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
					0x08, 0x09, 0x0a, 0x0b, 0x1c, 0x1d, 0x1e};
	unsigned k = rn(g, sizeof(ops38) + 2);
	bool palignr = k >= sizeof(ops38);
	struct enc e = {.pfx = {0x66}, .npfx = 1, .nopc = 3, .modrm = true};
	e.opc[0] = 0x0f;
	e.opc[1] = palignr ? 0x3a : 0x38;
	e.opc[2] = palignr ? 0x0f : ops38[k];
	e.regf = xreg(g);
	e.rm = chance(g, 30) ? mem(g, 16) : rop(xreg(g));
	if (palignr)
		e.imm = chance(g, 80) ? rn(g, 36) : rn(g, 256), e.immsz = 1;
	put(g, &e);
	store_xmm(g, e.regf);
}

/* Whether a sequence needs the SSE prologue (XMM registers and MXCSR). */
static bool sse_groups_enabled(const struct dt_groups *en)
{
	return dt_group_enabled(en, "sse_mov") || dt_group_enabled(en, "sse_int") ||
	       dt_group_enabled(en, "sse_fp") || dt_group_enabled(en, "sse3") ||
	       dt_group_enabled(en, "ssse3");
}
/* ==== SSE4.1 and SSE4.2 (group sse4; 64-bit only) ====
 * Each template loads its XMM operands itself (the SSE prologue runs only
 * with sse_mov enabled) and stores its results to the scratch slots; the
 * floating-point ones sometimes load a random MXCSR first (rounding, DAZ,
 * FTZ, now and then an unmasked exception) and store MXCSR after. The
 * string compares build their operands from a small alphabet with nulls,
 * so that every aggregation finds matches. */

#define SSE4_PATTERN_OFF 0x3800 /* relative to DT_DATA_ADDR: string operands */

static void sse4_enc(struct enc *e, uint8_t pfx, uint8_t map, uint8_t op)
{
	if (pfx)
		e->pfx[e->npfx++] = pfx;
	e->nopc = 3;
	e->opc[0] = 0x0f;
	e->opc[1] = map;
	e->opc[2] = op;
	e->modrm = true;
}

/* [rbx + disp32] at offset off of the data area. */
static struct op sse4_data_at(unsigned off)
{
	struct op o = {.mod = 2, .rm = DATA_BASE_REG, .disp = (int32_t)off - 0x1000, .dispsz = 4};
	return o;
}

static void sse4_movdqu_load(struct gen *g, unsigned x, struct op m)
{
	struct enc e = {0};
	sse_enc(&e, 0xf3, 0x6f);
	e.regf = x;
	e.rm = m;
	put(g, &e);
}

/* Gives xmm x 16 bytes of the data area (random bytes and FP specials),
 * most of the time; otherwise it keeps what earlier templates left. */
static void sse4_load(struct gen *g, unsigned x)
{
	if (chance(g, 75))
		sse4_movdqu_load(g, x, mem(g, 1));
}

/* A memory operand for a 16-byte access that must be aligned. Never a
 * misaligned one: this host's oracle reports #UD for those (PVM hands the
 * #GP to KVM's instruction emulator, which knows only a few SSE
 * instructions); the unit tests check #GP(0). */
static struct op sse4_mem16(struct gen *g) { return mem(g, 16); }

static void sse4_mxcsr(struct gen *g)
{
	if (!chance(g, 30))
		return;
	uint32_t rc = rn(g, 4), ftz = chance(g, 30) ? 0x8000 : 0, daz = chance(g, 30) ? 0x40 : 0;
	uint32_t v = 0x1f80 | rc << 13 | ftz | daz;
	if (chance(g, 8))
		v &= ~(0x80u << rn(g, 6)); /* one unmasked exception */
	struct op m = sse4_data_at(SCRATCH_OFF + 0x408);
	struct enc s = {.nopc = 1, .opc = {0xc7}, .modrm = true, .rm = m, .imm = v, .immsz = 4};
	put(g, &s);
	struct enc l = {.nopc = 2, .opc = {0x0f, 0xae}, .modrm = true, .regf = 2, .rm = m};
	put(g, &l);
}

static void sse4_stmxcsr(struct gen *g)
{
	struct enc s = {.nopc = 2, .opc = {0x0f, 0xae}, .modrm = true, .regf = 3, .rm = slot(g)};
	put(g, &s);
}

/* 66 0F 38 xx xmm, xmm/m128: packed integer, blends on XMM0, PTEST,
 * PMOVSX/ZX (partial, unaligned reads), MOVNTDQA. */
static void t_sse4_int(struct gen *g)
{
	static const uint8_t ops[] = {
	    0x10, 0x14, 0x15, 0x17, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x28, 0x29, 0x2a, 0x2b,
	    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e,
	    0x3f, 0x40, 0x41,
	};
	uint8_t op = ops[rn(g, sizeof(ops))];
	bool pmovx = (op >= 0x20 && op <= 0x25) || (op >= 0x30 && op <= 0x35);
	struct enc e = {0};
	sse4_enc(&e, 0x66, 0x38, op);
	e.regf = xreg(g);
	sse4_load(g, e.regf);
	if (op == 0x10 || op == 0x14 || op == 0x15)
		sse4_load(g, 0); /* the implicit selector */
	if (op == 0x2a || chance(g, 35)) {
		e.rm = pmovx ? mem(g, 1) : sse4_mem16(g);
	} else {
		e.rm = rop(xreg(g));
		sse4_load(g, e.rm.reg);
	}
	put(g, &e);
	if (op != 0x17)
		store_xmm(g, e.regf);
}

/* One single or double with a fraction worth rounding: quarters, halves
 * (ties), values next to the largest non-integral ones, edge cases. */
static uint64_t sse4_fp_value(struct gen *g, bool dbl)
{
	static const uint64_t s32[] = {0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0x7f800001,
				       0x00000001, 0x807fffff, 0x3effffff, 0x3f7fffff, 0x00800000,
				       0x4b000000, 0xcafffffe};
	static const uint64_t s64[] = {0x8000000000000000ULL, 0x7ff0000000000000ULL,
				       0xfff8000000000001ULL, 0x7ff0000000000001ULL, 1,
				       0x800fffffffffffffULL, 0x3fdfffffffffffffULL,
				       0x3fefffffffffffffULL, 0x4330000000000000ULL,
				       0xc32ffffffffffffeULL};
	double v;
	switch (rn(g, 5)) {
	case 0: v = ((int)rn(g, 129) - 64) / 4.0; break;
	case 1: v = ((int)rn(g, 17) - 8) + 0.5; break;
	case 2: v = (dbl ? 2251799813685248.0 : 4194304.0) + ((int)rn(g, 9) - 4) / 2.0; break;
	case 3: return dbl ? s64[rn(g, sizeof(s64) / 8)] : s32[rn(g, sizeof(s32) / 8)];
	default: return dbl ? rnd(g) : (uint32_t)rnd(g);
	}
	if (chance(g, 20))
		v = -v;
	if (dbl) {
		uint64_t b;
		memcpy(&b, &v, 8);
		return b;
	}
	float f = (float)v;
	uint32_t b;
	memcpy(&b, &f, 4);
	return b;
}

/* Writes 16 bytes at data offset off with four MOV dword [rbx+disp32], imm32. */
static void sse4_put16(struct gen *g, unsigned off, const uint8_t *b)
{
	for (unsigned k = 0; k < 4; k++) {
		uint32_t v;
		memcpy(&v, &b[4 * k], 4);
		struct enc s = {.nopc = 1, .opc = {0xc7}, .modrm = true,
				.rm = sse4_data_at(off + 4 * k), .imm = v, .immsz = 4};
		put(g, &s);
	}
}

/* Writes 16 bytes of such values at data offset off. */
static void sse4_fp_pattern(struct gen *g, unsigned off, bool dbl)
{
	uint8_t b[16];
	for (unsigned k = 0; k < 16; k += dbl ? 8 : 4) {
		uint64_t v = sse4_fp_value(g, dbl);
		memcpy(&b[k], &v, dbl ? 8 : 4);
	}
	sse4_put16(g, off, b);
}

/* 66 0F 3A xx xmm, xmm/m, imm8: ROUNDxx, BLENDxx, DPPS/DPPD, MPSADBW, INSERTPS. */
static void t_sse4_imm(struct gen *g)
{
	static const uint8_t ops[] = {0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
				      0x21, 0x40, 0x41, 0x42};
	uint8_t op = ops[rn(g, sizeof(ops))];
	bool fp = op <= 0x0b || op == 0x40 || op == 0x41;
	bool dbl = op == 0x09 || op == 0x0b || op == 0x41;
	bool fpdata = fp && chance(g, 60); /* values worth rounding instead of random bits */
	bool partial = op == 0x0a || op == 0x0b || op == 0x21;
	unsigned pat = SSE4_PATTERN_OFF + 0x40;
	struct enc e = {0};
	if (fp)
		sse4_mxcsr(g);
	sse4_enc(&e, 0x66, 0x3a, op);
	e.regf = xreg(g);
	if (fpdata) {
		sse4_fp_pattern(g, pat, dbl);
		sse4_movdqu_load(g, e.regf, sse4_data_at(pat));
		sse4_fp_pattern(g, pat + 0x10, dbl);
	} else {
		sse4_load(g, e.regf);
	}
	if (chance(g, 35)) {
		if (fpdata)
			e.rm = sse4_data_at(pat + 0x10 + (partial ? 4 * rn(g, 3) : 0));
		else
			e.rm = partial ? mem(g, 1) : sse4_mem16(g);
	} else {
		e.rm = rop(xreg(g));
		if (fpdata)
			sse4_movdqu_load(g, e.rm.reg, sse4_data_at(pat + 0x10));
		else
			sse4_load(g, e.rm.reg);
	}
	e.imm = rn(g, 256), e.immsz = 1;
	put(g, &e);
	store_xmm(g, e.regf);
	if (fp)
		sse4_stmxcsr(g);
}

/* Between XMM and general registers or memory: PEXTRB/W/D/Q, EXTRACTPS,
 * PINSRB/D/Q; and CRC32 of every size (F2 [66] [REX.W] 0F 38 F0/F1). */
static void t_sse4_gpr(struct gen *g)
{
	static const uint8_t ops[] = {0x14, 0x15, 0x16, 0x17, 0x20, 0x22};
	unsigned k = rn(g, sizeof(ops) + 2);
	struct enc e = {0};
	if (k >= sizeof(ops)) { /* CRC32 */
		bool byte = k == sizeof(ops);
		unsigned size = byte ? 1 : (unsigned[]){2, 4, 8}[rn(g, 3)];
		struct bytemode bm = pick_bytemode(g);
		e.pfx[e.npfx++] = 0xf2;
		if (size == 2) { /* 66 before or after F2: the 16-bit form either way */
			if (chance(g, 50))
				e.pfx[e.npfx++] = 0x66;
			else
				e.pfx[0] = 0x66, e.pfx[e.npfx++] = 0xf2;
		}
		e.nopc = 3, e.opc[0] = 0x0f, e.opc[1] = 0x38, e.opc[2] = byte ? 0xf0 : 0xf1;
		e.modrm = true;
		e.w = size == 8 || (byte && chance(g, 30));
		e.force_rex = byte && bm.rex;
		e.regf = wreg(g);
		e.rm = chance(g, 35) ? mem(g, 1) : rop(byte ? anyreg8(g, bm) : anyreg(g));
		put(g, &e);
		return;
	}
	uint8_t op = ops[k];
	sse4_enc(&e, 0x66, 0x3a, op);
	e.w = chance(g, 40);
	e.regf = xreg(g);
	sse4_load(g, e.regf);
	e.imm = rn(g, 256), e.immsz = 1;
	if (op >= 0x20) { /* insert: r/m source */
		e.rm = chance(g, 35) ? mem(g, 1) : rop(anyreg(g));
		put(g, &e);
		store_xmm(g, e.regf);
	} else { /* extract: r/m destination */
		e.rm = chance(g, 35) ? mem(g, 1) : rop(wreg(g));
		put(g, &e);
	}
}

/* 16 bytes of a string-like pattern at data offset off, written with four
 * MOV dword [rbx+disp32], imm32: characters from a small alphabet (signed
 * and unsigned extremes included) and, most of the time, a null element. */
static void sse4_pattern(struct gen *g, unsigned off, bool words)
{
	static const uint8_t alpha[] = {'a', 'b', 'c', 'z', 'A', 0x7f, 0x80, 0xff};
	uint8_t b[16];
	for (unsigned k = 0; k < 16; k++)
		b[k] = alpha[rn(g, sizeof(alpha))];
	if (words)
		for (unsigned k = 1; k < 16; k += 2)
			b[k] = chance(g, 70) ? 0 : b[k] & 0x80 ? 0xff : b[k];
	if (chance(g, 65)) {
		unsigned at = rn(g, 16) & (words ? ~1u : ~0u);
		b[at] = 0;
		if (words)
			b[at + 1] = 0;
	}
	sse4_put16(g, off, b);
}

static uint64_t sse4_length(struct gen *g)
{
	switch (rn(g, 4)) {
	case 0: return interesting(g);
	case 1: return (uint64_t)((int64_t)rn(g, 41) - 20);
	default: return rn(g, 18);
	}
}

/* PCMPESTRM/PCMPESTRI/PCMPISTRM/PCMPISTRI with a random imm8 (every
 * format, aggregation, polarity and output form), explicit lengths in
 * EAX/EDX or RAX/RDX (REX.W) from small, negative and huge values. */
static void t_sse4_pcmpstr(struct gen *g)
{
	uint8_t op = (uint8_t)(0x60 + rn(g, 4));
	uint8_t imm = (uint8_t)rn(g, 256);
	bool words = imm & 1;
	struct enc e = {0};
	sse4_enc(&e, 0x66, 0x3a, op);
	e.regf = xreg(g);
	sse4_pattern(g, SSE4_PATTERN_OFF, words);
	sse4_movdqu_load(g, e.regf, sse4_data_at(SSE4_PATTERN_OFF));
	unsigned text = SSE4_PATTERN_OFF + 0x20 + rn(g, 16); /* any alignment */
	sse4_pattern(g, text, words);
	if (chance(g, 10)) {
		e.rm = rop(e.regf);
	} else if (chance(g, 50)) {
		e.rm = sse4_data_at(text);
	} else {
		e.rm = rop(xreg(g));
		sse4_movdqu_load(g, e.rm.reg, sse4_data_at(text));
	}
	if (op < 0x62) {
		e.w = chance(g, 30);
		for (unsigned r = 0; r <= 2; r += 2) { /* EAX and EDX: the lengths */
			unsigned size = chance(g, 50) ? 8 : 4;
			mov_reg_imm(g, r, size, sse4_length(g));
		}
	} else {
		e.w = chance(g, 10); /* ignored */
	}
	e.imm = imm, e.immsz = 1;
	put(g, &e);
	if (!(op & 1))
		store_xmm(g, 0);
}

/* ==== end of SSE4.1 and SSE4.2 ==== */

/* ---- the template table ---- */

enum { M64 = 1, M32 = 2, BOTH = 3 };

struct tmpl {
	const char *group;
	const char *name;
	tmpl_fn fn;
	uint8_t modes;
	bool branch; /* may not be the body of another branch template */
	bool needs_io;
};

static const struct tmpl tmpls[] = {
    {"mov", "mov", t_mov, BOTH, false, false},
    {"mov", "movzx/movsx", t_movx, BOTH, false, false},
    {"mov", "lea", t_lea, BOTH, false, false},
    {"mov", "xchg", t_xchg, BOTH, false, false},
    {"alu", "alu", t_alu, BOTH, false, false},
    {"alu", "inc/dec/neg/not/test", t_unary, BOTH, false, false},
    {"alu", "inc/dec short", t_incdec_short, M32, false, false},
    {"muldiv", "mul/imul", t_mul, BOTH, false, false},
    {"muldiv", "div/idiv", t_div, BOTH, false, false},
    {"shift", "shift/rotate", t_shift, BOTH, false, false},
    {"shift", "shld/shrd", t_shxd, BOTH, false, false},
    {"bit", "bt*/bsf/bsr", t_bit, BOTH, false, false},
    {"bitx", "popcnt/tzcnt/lzcnt", t_bitx, BOTH, false, false},
    {"cond", "setcc", t_setcc, BOTH, false, false},
    {"cond", "cmovcc", t_cmov, BOTH, false, false},
    {"cond", "jcc", t_jcc, BOTH, true, false},
    {"branch", "jmp", t_jmp, BOTH, true, false},
    {"branch", "call", t_call, BOTH, true, false},
    {"branch", "ret", t_ret, BOTH, true, false},
    {"branch", "loop/jrcxz", t_loop, BOTH, true, false},
    {"stack", "push/pop", t_push_pop, BOTH, false, false},
    {"flags", "flags", t_flags, BOTH, false, false},
    {"string", "string", t_string, BOTH, false, false},
    {"convert", "cbw/cwd", t_convert, BOTH, false, false},
    {"bswap", "bswap", t_bswap, BOTH, false, false},
    {"atomic", "xadd/cmpxchg", t_atomic, BOTH, false, false},
    {"bcd", "daa/das/aaa/aas/aam/aad", t_bcd, M32, false, false},
    {"sse_mov", "sse mov", t_sse_mov, BOTH, false, false},
    {"sse_int", "sse integer", t_sse_int, BOTH, false, false},
    {"sse_fp", "sse fp", t_sse_fp, BOTH, false, false},
    {"x87", "x87", t_x87, BOTH, false, false},
    {"sse3", "sse3", t_sse3, BOTH, false, false},
    {"sse3", "fisttp", t_fisttp, BOTH, false, false},
    {"ssse3", "ssse3", t_ssse3, BOTH, false, false},
    {"mmx", "mmx integer", t_mmx_int, M64, false, false},
    {"mmx", "mmx mov", t_mmx_mov, M64, false, false},
    {"mmx", "mmx/xmm", t_mmx_xmm, M64, false, false},
    {"io", "in/out/ins/outs", t_io, M32, false, true},
    {"sse4", "sse4.1 integer", t_sse4_int, M64, false, false},
    {"sse4", "sse4.1 imm8", t_sse4_imm, M64, false, false},
    {"sse4", "sse4 gpr/crc32", t_sse4_gpr, M64, false, false},
    {"sse4", "sse4.2 pcmpxstrx", t_sse4_pcmpstr, M64, false, false},
};
#define NTMPLS (sizeof(tmpls) / sizeof(tmpls[0]))

struct choice {
	unsigned idx[NTMPLS];
	unsigned n, nbody;
	unsigned body[NTMPLS];
};

/* Groups KVM's instruction emulator (the oracle outside native 64-bit
 * code) does not implement, or gets wrong (AAD/AAM flags): generating
 * them there would only test the emulator. */
static bool emulator_cannot(const char *group)
{
	static const char *const no[] = {"sse_mov", "sse_int", "sse_fp", "x87",  "bitx",
					  "bcd",     "mmx",     "sse3",   "ssse3", "sse4"};
	for (size_t k = 0; k < sizeof(no) / sizeof(no[0]); k++)
		if (strcmp(group, no[k]) == 0)
			return true;
	return false;
}

static void pick_templates(const struct gen *g, const struct dt_groups *en, struct choice *c)
{
	c->n = c->nbody = 0;
	for (unsigned k = 0; k < NTMPLS; k++) {
		const struct tmpl *t = &tmpls[k];
		if (!dt_group_enabled(en, t->group) || !(t->modes & (g->m64 ? M64 : M32)))
			continue;
		if (t->needs_io && g->m64)
			continue; /* PVM does not honour IOPL for native 64-bit code */
		if (!g->m64 && emulator_cannot(t->group))
			continue;
		c->idx[c->n++] = k;
		if (!t->branch && strcmp(t->group, "x87") != 0)
			c->body[c->nbody++] = k;
	}
}

static const struct choice *g_choice(const struct gen *g);

struct gen_full {
	struct gen g;
	struct choice c;
};

static const struct choice *g_choice(const struct gen *g)
{
	return &((const struct gen_full *)(const void *)g)->c;
}

static void run_template(struct gen *g, unsigned k)
{
	const char *saved = g->tag;
	g->tag = tmpls[k].name;
	tmpls[k].fn(g);
	g->tag = saved;
}

static void body(struct gen *g)
{
	const struct choice *c = g_choice(g);
	if (c->nbody == 0) {
		put1(g, 0x90);
		return;
	}
	run_template(g, c->body[rn(g, c->nbody)]);
}

/* Interesting FP and integer values sprinkled over random data. */
static void fill_data(struct gen *g)
{
	static const uint64_t specials[] = {
	    0, 0x8000000000000000ULL, 0x3ff0000000000000ULL, 0xbff0000000000000ULL,
	    0x7ff0000000000000ULL, 0xfff0000000000000ULL, 0x7ff8000000000000ULL, 0x7ff0000000000001ULL,
	    0x000fffffffffffffULL, 0x0000000000000001ULL, 0x7fefffffffffffffULL, 0x4000000000000000ULL,
	    0x3f8000003f800000ULL, 0x7f8000007fc00000ULL, 0x0000000180000001ULL, 0x7f7fffff00800000ULL,
	    0x41dfffffffc00000ULL, 0xc3e0000000000000ULL, 0x43e0000000000000ULL, 0x4f0000004effffffULL,
	};
	for (size_t k = 0; k < DT_DATA_SIZE; k += 8) {
		uint64_t v = chance(g, 25) ? specials[rn(g, sizeof(specials) / sizeof(specials[0]))]
					   : rnd(g);
		memcpy(&g->out->data[k], &v, 8);
	}
}

static void init_state(struct gen *g, enum dt_mode mode, struct cpu_state *s)
{
	dt_machine_state(mode, 0, s);
	for (unsigned r = 0; r < GPR_COUNT; r++)
		s->gpr[r] = g->m64 ? interesting(g) : interesting(g) & 0xffffffffULL;
	s->gpr[GPR_RSP] = DT_STACK_TOP;
	s->gpr[GPR_RBX] = RBX_VALUE;
	s->gpr[GPR_RBP] = rn(g, 64);
	s->rflags |= rnd(g) & 0x8d5ULL; /* random arithmetic flags */
}

int dt_generate(struct dt_gen *out, uint64_t seed, enum dt_mode mode,
		const struct dt_groups *enabled, unsigned ninsns)
{
	struct gen_full gf;
	struct gen *g = &gf.g;

	memset(&gf, 0, sizeof(gf));

	if (mode != DT_MODE_LONG64 && mode != DT_MODE_COMPAT32 && mode != DT_MODE_PROT32)
		return -EINVAL;
	memset(out->tags, 0, sizeof(out->tags));
	memset(&out->test, 0, sizeof(out->test)); /* stack: NULL, filled from the seed */
	g->out = out;
	g->rng = seed * 0x2545f4914f6cdd1dULL + mode;
	g->m64 = mode == DT_MODE_LONG64;
	pick_templates(g, enabled, &gf.c);
	if (gf.c.n == 0)
		return -ENOENT;
	fill_data(g);
	init_state(g, mode, &out->test.init);

	bool mmx = g->m64 && dt_group_enabled(enabled, "mmx");
	bool sse = g->m64 && (sse_groups_enabled(enabled) || mmx);
	bool x87 = g->m64 && (dt_group_enabled(enabled, "x87") || dt_group_enabled(enabled, "sse3"));
	g->tag = "prologue";
	if (sse)
		sse_prologue(g);
	if (mmx)
		mmx_prologue(g);
	if (x87)
		x87_prologue(g);
	for (unsigned n = 0; n < ninsns && !g->full; n++) {
		size_t before = g->len;
		int depth = g->x87_depth;
		run_template(g, gf.c.idx[rn(g, gf.c.n)]);
		if (g->full) { /* drop the partial template */
			g->len = before;
			g->x87_depth = depth;
		}
	}
	g->full = false;
	g->tag = "epilogue";
	if (x87)
		x87_epilogue(g);
	if (mmx)
		mmx_epilogue(g);
	if (sse)
		sse_epilogue(g);

	struct dt_test *t = &out->test;
	snprintf(t->name, sizeof(t->name), "gen-%s-%llu", dt_mode_name(mode), (unsigned long long)seed);
	t->group = "random";
	t->mode = mode;
	t->code = out->code;
	t->len = g->len;
	t->data = out->data;
	t->seed = seed;
	t->max_steps = 20000;
	t->tags = out->tags;
	t->generated = true;
	snprintf(out->repro, sizeof(out->repro), "difftest --mode %s --seed %llu --count 1 (same --groups)",
		 dt_mode_name(mode), (unsigned long long)seed);
	t->repro = out->repro;
	return 0;
}
