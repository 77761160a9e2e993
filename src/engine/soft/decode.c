/* x86 instruction decoder (SDM vol. 2 §2.1-2.2: prefixes, REX, opcode
 * maps, ModRM/SIB, displacements and immediates; table 2-1 for 16-bit
 * addressing). The opcode tables come from the instruction groups
 * (ops_*.c); an opcode that no group defines decodes as #UD. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/soft/soft.h"

static const struct opdef *const group_tables[] = {
    soft_ops_mov, soft_ops_alu, soft_ops_ctrl, soft_ops_string,
    soft_ops_system, soft_ops_sse, soft_ops_x87, soft_ops_mmx, soft_ops_ssse3, soft_ops_sse4,
};
#define NGROUPS (sizeof(group_tables) / sizeof(group_tables[0]))

static bool opdef_is_end(const struct opdef *d) { return d->exec == NULL; }

struct soft_optable *soft_optable_build(void)
{
	struct soft_optable *t = calloc(1, sizeof(*t));
	unsigned total = 0;

	if (!t)
		return NULL;
	for (size_t g = 0; g < NGROUPS; g++)
		for (const struct opdef *d = group_tables[g]; !opdef_is_end(d); d++) {
			if (d->map >= OPMAP_COUNT || t->count[d->map][d->opcode] == UINT8_MAX)
				goto fail;
			t->count[d->map][d->opcode]++;
			total++;
		}
	t->defs = calloc(total ? total : 1, sizeof(*t->defs));
	if (!t->defs)
		goto fail;
	unsigned pos = 0;
	for (unsigned m = 0; m < OPMAP_COUNT; m++)
		for (unsigned op = 0; op < 256; op++) {
			t->first[m][op] = (uint16_t)pos;
			pos += t->count[m][op];
			t->count[m][op] = 0; /* refilled below */
		}
	for (size_t g = 0; g < NGROUPS; g++)
		for (const struct opdef *d = group_tables[g]; !opdef_is_end(d); d++)
			t->defs[t->first[d->map][d->opcode] + t->count[d->map][d->opcode]++] = d;
	t->ndefs = total;
	return t;
fail:
	soft_optable_free(t);
	return NULL;
}

void soft_optable_free(struct soft_optable *t)
{
	if (t)
		free(t->defs);
	free(t);
}

/* ---- byte source ---- */

struct dctx {
	const uint8_t *buf; /* bytes available so far */
	size_t avail;
	size_t pos;
	struct soft_cpu *cpu; /* NULL when decoding from a caller's buffer */
	uint8_t fetched[INSN_MAX_LEN];
	int error; /* decode-buffer mode: -2 short, -3 too long */
};

/* Pulls in instruction bytes from guest memory one page at a time, so a
 * fault on the next page happens only if the instruction reaches it. */
static void fetch_more(struct dctx *d)
{
	struct soft_cpu *cpu = d->cpu;
	uint64_t off = cpu->s.rip + d->avail;
	if (!cpu->long64)
		off &= cpu->def32 ? 0xffffffffULL : 0xffffULL;
	uint64_t la = seg_linear(cpu, SEG_CS, off, 1, ACC_FETCH);
	size_t room = 0x1000 - (la & 0xfff);
	size_t want = INSN_MAX_LEN - d->avail;
	size_t n = room < want ? room : want;
	lin_read_bytes(cpu, la, d->fetched + d->avail, n);
	d->avail += n;
	d->buf = d->fetched;
}

static int next_byte(struct dctx *d)
{
	if (d->pos >= INSN_MAX_LEN) {
		if (d->cpu)
			soft_gp(d->cpu, 0);
		d->error = -3;
		return -1;
	}
	if (d->pos >= d->avail) {
		if (!d->cpu) {
			d->error = -2;
			return -1;
		}
		fetch_more(d);
	}
	return d->buf[d->pos++];
}

static uint64_t next_bytes(struct dctx *d, unsigned n)
{
	uint64_t v = 0;
	for (unsigned k = 0; k < n; k++) {
		int b = next_byte(d);
		if (b < 0)
			return 0;
		v |= (uint64_t)b << (8 * k);
	}
	return v;
}

/* ---- decoding ---- */

struct mode {
	bool long64, def32;
};

static int decode_prefixes(struct dctx *d, const struct mode *m, struct insn *i, int *first)
{
	for (;;) {
		int b = next_byte(d);
		if (b < 0)
			return -1;
		switch (b) {
		case 0xf0: i->lock = true; i->rex = 0; continue;
		case 0xf2: case 0xf3: i->rep = (uint8_t)b; i->rex = 0; continue;
		case 0x66: i->opsize_prefix = true; i->rex = 0; continue;
		case 0x67: i->addrsize = 1; i->rex = 0; continue; /* marker, resolved below */
		case 0x26: case 0x2e: case 0x36: case 0x3e:
			if (!m->long64)
				i->seg = (uint8_t)((b >> 3) & 3); /* ES=0 CS=1 SS=2 DS=3 */
			i->rex = 0;
			continue;
		case 0x64: i->seg = SEG_FS; i->rex = 0; continue;
		case 0x65: i->seg = SEG_GS; i->rex = 0; continue;
		default:
			break;
		}
		if (m->long64 && (b & 0xf0) == 0x40) {
			i->rex = (uint8_t)b; /* only effective if the opcode follows */
			continue;
		}
		*first = b;
		return 0;
	}
}

static int decode_opcode(struct dctx *d, struct insn *i, int first)
{
	i->map = OPMAP_1B;
	i->opcode = (uint8_t)first;
	if (first != 0x0f)
		return 0;
	int b = next_byte(d);
	if (b < 0)
		return -1;
	i->map = OPMAP_0F;
	if (b == 0x38 || b == 0x3a) {
		i->map = b == 0x38 ? OPMAP_0F38 : OPMAP_0F3A;
		b = next_byte(d);
		if (b < 0)
			return -1;
	}
	i->opcode = (uint8_t)b;
	return 0;
}

static uint8_t mandatory_prefix(const struct insn *i)
{
	if (i->rep == 0xf3)
		return PFX_F3;
	if (i->rep == 0xf2)
		return PFX_F2;
	return i->opsize_prefix ? PFX_66 : PFX_NONE;
}

static bool opdef_matches(const struct opdef *def, const struct insn *i, uint8_t mand,
			  uint8_t mod, uint8_t reg, uint8_t rm, bool long64)
{
	if (def->prefix != PFX_ANY && def->prefix != mand)
		return false;
	if ((long64 && (def->flags & OPF_NO64)) || (!long64 && (def->flags & OPF_ONLY64)))
		return false;
	if (!(def->flags & OPF_MODRM))
		return true;
	if (def->reg >= 0 && def->reg != reg)
		return false;
	if ((def->flags & OPF_MOD3) && mod != 3)
		return false;
	if ((def->flags & OPF_MODMEM) && mod == 3)
		return false;
	if (def->rm >= 0 && (mod != 3 || def->rm != rm))
		return false;
	(void)i;
	return true;
}

/* Picks the definition; prefers one with the specific mandatory prefix
 * over PFX_ANY so that e.g. 66 0F 6F (MOVDQA) beats 0F 6F (MOVQ mm). */
static const struct opdef *select_def(const struct soft_optable *t, struct insn *i,
				      uint8_t modrm, bool long64)
{
	unsigned first = t->first[i->map][i->opcode], n = t->count[i->map][i->opcode];
	uint8_t mand = mandatory_prefix(i);
	uint8_t mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
	const struct opdef *any = NULL;

	for (unsigned k = 0; k < n; k++) {
		const struct opdef *def = t->defs[first + k];
		if (!opdef_matches(def, i, mand, mod, reg, rm, long64))
			continue;
		if (def->prefix != PFX_ANY)
			return def;
		if (!any)
			any = def;
	}
	return any;
}

static bool opcode_has_modrm(const struct soft_optable *t, const struct insn *i)
{
	unsigned first = t->first[i->map][i->opcode], n = t->count[i->map][i->opcode];
	for (unsigned k = 0; k < n; k++)
		if (t->defs[first + k]->flags & OPF_MODRM)
			return true;
	return false;
}

static void decode_sizes(struct insn *i, const struct mode *m)
{
	const struct opdef *def = i->def;
	bool addr_prefix = i->addrsize == 1;
	bool size_prefix = i->opsize_prefix && def->prefix != PFX_66;

	if (m->long64)
		i->addrsize = addr_prefix ? 4 : 8;
	else
		i->addrsize = (m->def32 != addr_prefix) ? 4 : 2;

	if (def->flags & OPF_BYTE)
		i->opsize = 1;
	else if (m->long64 && (i->rex & 8))
		i->opsize = 8;
	else if (m->long64 && (def->flags & OPF_F64))
		i->opsize = 8;
	else if (m->long64 && (def->flags & OPF_DEF64))
		i->opsize = size_prefix ? 2 : 8;
	else if (m->long64)
		i->opsize = size_prefix ? 2 : 4;
	else
		i->opsize = (m->def32 != size_prefix) ? 4 : 2;
}

static const uint8_t modrm16_base[8] = {3, 3, 5, 5, 6, 7, 5, 3};
static const uint8_t modrm16_index[8] = {6, 7, 6, 7, REG_NONE, REG_NONE, REG_NONE, REG_NONE};

static void decode_modrm16(struct dctx *d, struct insn *i)
{
	unsigned rm = i->rm & 7;
	if (i->mod == 0 && rm == 6) {
		i->disp = (int16_t)next_bytes(d, 2);
		return;
	}
	i->base = modrm16_base[rm];
	i->index = modrm16_index[rm];
	i->scale = 1;
	if (i->mod == 1)
		i->disp = (int8_t)next_bytes(d, 1);
	else if (i->mod == 2)
		i->disp = (int16_t)next_bytes(d, 2);
	if (i->base == 5 && i->seg == REG_NONE)
		i->seg = SEG_SS;
}

static void decode_modrm32(struct dctx *d, struct insn *i, const struct mode *m)
{
	unsigned rm = i->rm & 7;
	unsigned base_low = rm;

	if (rm == 4) {
		int sib = next_byte(d);
		if (sib < 0)
			return;
		unsigned index = ((sib >> 3) & 7) | ((i->rex & 2) ? 8 : 0);
		base_low = sib & 7;
		i->scale = (uint8_t)(1u << (sib >> 6));
		i->index = index == 4 ? REG_NONE : (uint8_t)index;
		if (base_low == 5 && i->mod == 0) {
			i->disp = (int32_t)next_bytes(d, 4);
			return;
		}
		i->base = (uint8_t)(base_low | ((i->rex & 1) ? 8 : 0));
	} else if (rm == 5 && i->mod == 0) {
		i->disp = (int32_t)next_bytes(d, 4);
		i->rip_relative = m->long64;
		return;
	} else {
		i->base = (uint8_t)i->rm;
	}
	if (i->mod == 1)
		i->disp = (int8_t)next_bytes(d, 1);
	else if (i->mod == 2)
		i->disp = (int32_t)next_bytes(d, 4);
	if ((base_low == 4 || base_low == 5) && i->seg == REG_NONE)
		i->seg = SEG_SS;
}

static void decode_modrm(struct dctx *d, struct insn *i, uint8_t modrm, const struct mode *m)
{
	i->has_modrm = true;
	i->mod = modrm >> 6;
	i->reg = (uint8_t)(((modrm >> 3) & 7) | ((i->rex & 4) ? 8 : 0));
	i->rm = (uint8_t)((modrm & 7) | ((i->rex & 1) ? 8 : 0));
	if (i->mod == 3)
		return;
	if (i->addrsize == 2)
		decode_modrm16(d, i);
	else
		decode_modrm32(d, i, m);
}

static void decode_immediates(struct dctx *d, struct insn *i)
{
	uint32_t f = i->def->flags;
	unsigned zsize = i->opsize == 2 ? 2 : 4;

	if (f & OPF_IMM8)
		i->imm = (f & OPF_REL) ? (uint64_t)(int64_t)(int8_t)next_bytes(d, 1) : next_bytes(d, 1);
	else if (f & OPF_IMM16)
		i->imm = next_bytes(d, 2);
	else if (f & OPF_IMMZ)
		i->imm = (uint64_t)sign_extend(next_bytes(d, zsize), zsize);
	else if (f & OPF_IMMV)
		i->imm = next_bytes(d, i->opsize);
	else if (f & OPF_MOFFS)
		i->imm = next_bytes(d, i->addrsize);
	else if (f & OPF_FARPTR) {
		i->imm = next_bytes(d, zsize);
		i->imm2 = (uint16_t)next_bytes(d, 2);
	} else if (f & OPF_ENTER) {
		i->imm = next_bytes(d, 2);
		i->imm2 = (uint16_t)next_bytes(d, 1);
	}
}

/* Returns 0, or -1 for #UD (error in d->error for short/long buffers). */
static int decode(const struct soft_optable *t, struct dctx *d, const struct mode *m, struct insn *i)
{
	int first;

	memset(i, 0, sizeof(*i));
	i->seg = REG_NONE;
	i->base = i->index = REG_NONE;
	if (decode_prefixes(d, m, i, &first) || decode_opcode(d, i, first))
		return -1;
	bool has_modrm = opcode_has_modrm(t, i);
	uint8_t modrm = 0;
	if (has_modrm) {
		int b = next_byte(d);
		if (b < 0)
			return -1;
		modrm = (uint8_t)b;
	}
	i->def = select_def(t, i, modrm, m->long64);
	if (!i->def)
		return -1;
	i->exec = i->def->exec;
	decode_sizes(i, m);
	if (has_modrm)
		decode_modrm(d, i, modrm, m);
	decode_immediates(d, i);
	if (d->error)
		return -1;
	if (i->seg == REG_NONE)
		i->seg = SEG_DS;
	if (i->lock && (!(i->def->flags & OPF_LOCKOK) || !i->has_modrm || i->mod == 3))
		return -1;
	i->len = (uint8_t)d->pos;
	soft_exec_fn fast = soft_alu_fast(i);
	if (!fast)
		fast = soft_mov_fast(i);
	if (fast)
		i->exec = fast;
	return 0;
}

void soft_decode(struct soft_cpu *cpu, struct insn *i)
{
	struct dctx d = {.cpu = cpu};
	struct mode m = {.long64 = cpu->long64, .def32 = cpu->def32};

	if (decode(cpu->optable, &d, &m, i)) {
		cpu->ud_count++;
		soft_ud(cpu);
	}
}

int soft_decode_buffer(const struct soft_optable *t, const uint8_t *buf, size_t len, bool long64,
		       bool def32, struct insn *i)
{
	struct dctx d = {.buf = buf, .avail = len};
	struct mode m = {.long64 = long64, .def32 = def32};

	if (decode(t, &d, &m, i))
		return d.error ? d.error : -1;
	return i->len;
}
