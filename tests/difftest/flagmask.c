/* Which RFLAGS bits an instruction leaves undefined (Intel SDM vol. 2,
 * the "Flags Affected" section of each instruction), so the comparison
 * ignores exactly those. A minimal decoder finds the opcode, ModRM.reg
 * and operand size; shift and rotate counts come from the instruction or
 * from CL in the state before it. */
#include <string.h>

#include "difftest.h"

#define F_CF 0x001ULL
#define F_PF 0x004ULL
#define F_AF 0x010ULL
#define F_ZF 0x040ULL
#define F_SF 0x080ULL
#define F_OF 0x800ULL
#define F_ALL (F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)

static bool is_legacy_prefix(uint8_t b)
{
	return b == 0x66 || b == 0x67 || b == 0xf2 || b == 0xf3 || b == 0xf0 || b == 0x2e ||
	       b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65;
}

/* One-byte opcodes whose ModRM.reg selects the operation. */
static bool is_group_opcode(uint8_t map, uint8_t op)
{
	if (map == 1)
		return op == 0xba || op == 0xc7 || op == 0xae;
	return (op >= 0x80 && op <= 0x83) || op == 0xc0 || op == 0xc1 || (op >= 0xd0 && op <= 0xd3) ||
	       op == 0xf6 || op == 0xf7 || op == 0xfe || op == 0xff;
}

static bool is_byte_opcode(uint8_t op)
{
	return op == 0x80 || op == 0x82 || op == 0xc0 || op == 0xd0 || op == 0xd2 || op == 0xf6 ||
	       op == 0xfe;
}

void dt_opinfo_decode(const uint8_t *code, size_t len, unsigned mode_bits, struct dt_opinfo *o)
{
	size_t p = 0;
	bool opsz16 = false;

	memset(o, 0, sizeof(*o));
	o->reg = -1;
	while (p < len && p < 14 && is_legacy_prefix(code[p])) {
		if (code[p] == 0x66)
			opsz16 = true;
		else if (code[p] == 0xf2 || code[p] == 0xf3)
			o->rep = code[p];
		p++;
	}
	if (mode_bits == 8 && p < len && (code[p] & 0xf0) == 0x40) {
		o->rex_w = code[p] & 8;
		p++;
	}
	o->len_prefixes = (unsigned)p;
	if (p >= len)
		return;
	if (code[p] == 0x0f) {
		p++;
		o->map = 1;
		if (p < len && (code[p] == 0x38 || code[p] == 0x3a)) {
			o->map = code[p] == 0x38 ? 2 : 3;
			p++;
		}
	}
	if (p >= len)
		return;
	o->opcode = code[p++];
	if (is_group_opcode(o->map, o->opcode) && p < len)
		o->reg = (code[p] >> 3) & 7;
	if (o->rex_w)
		o->opsize = 8;
	else if (mode_bits == 2)
		o->opsize = opsz16 ? 4 : 2;
	else
		o->opsize = opsz16 ? 2 : 4;
	if (o->map == 0 && is_byte_opcode(o->opcode))
		o->opsize = 1;
	o->valid = true;
}

/* Shifts and rotates (SDM vol. 2: SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR). */
static uint64_t shift_mask(const struct dt_opinfo *o, unsigned count)
{
	unsigned masked = count & (o->opsize == 8 ? 0x3f : 0x1f);
	unsigned bits = o->opsize * 8;
	uint64_t m = 0;

	if (masked == 0)
		return 0; /* flags unaffected: compared exactly */
	if (masked != 1)
		m |= F_OF;
	if (o->reg >= 4) { /* SHL, SHR, SAL, SAR */
		m |= F_AF;
		if (masked >= bits && o->reg != 7)
			m |= F_CF;
	}
	return m;
}

/* SHLD/SHRD: AF undefined; OF undefined unless the count is 1; with a
 * count larger than the operand size, result and flags are undefined. */
static uint64_t double_shift_mask(const struct dt_opinfo *o, unsigned count)
{
	unsigned masked = count & (o->opsize == 8 ? 0x3f : 0x1f);
	if (masked == 0)
		return 0;
	if (masked > o->opsize * 8u)
		return F_ALL;
	return F_AF | (masked != 1 ? F_OF : 0);
}

static uint64_t map0_mask(const struct dt_opinfo *o, const uint8_t *code, size_t len,
			  const struct cpu_state *before)
{
	uint8_t op = o->opcode;
	unsigned cl = (unsigned)(before->gpr[GPR_RCX] & 0xff);

	switch (op) {
	case 0x08: case 0x09: case 0x0a: case 0x0b: case 0x0c: case 0x0d: /* OR */
	case 0x20: case 0x21: case 0x22: case 0x23: case 0x24: case 0x25: /* AND */
	case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: /* XOR */
	case 0x84: case 0x85: case 0xa8: case 0xa9:                       /* TEST */
		return F_AF;
	case 0x80: case 0x81: case 0x82: case 0x83:
		return (o->reg == 1 || o->reg == 4 || o->reg == 6) ? F_AF : 0;
	case 0x69: case 0x6b: /* IMUL r, r/m, imm */
		return F_SF | F_ZF | F_AF | F_PF;
	case 0x27: case 0x2f: /* DAA, DAS */
		return F_OF;
	case 0x37: case 0x3f: /* AAA, AAS */
		return F_OF | F_SF | F_ZF | F_PF;
	case 0xd4: case 0xd5: /* AAM, AAD */
		return F_OF | F_AF | F_CF;
	case 0xc0: case 0xc1:
		return len ? shift_mask(o, code[len - 1]) : F_ALL;
	case 0xd0: case 0xd1:
		return shift_mask(o, 1);
	case 0xd2: case 0xd3:
		return shift_mask(o, cl);
	case 0xf6: case 0xf7:
		if (o->reg == 0 || o->reg == 1)
			return F_AF; /* TEST */
		if (o->reg == 4 || o->reg == 5)
			return F_SF | F_ZF | F_AF | F_PF; /* MUL, IMUL */
		if (o->reg >= 6)
			return F_ALL; /* DIV, IDIV */
		return 0;
	default:
		return 0;
	}
}

static uint64_t map1_mask(const struct dt_opinfo *o, const uint8_t *code, size_t len,
			  const struct cpu_state *before)
{
	unsigned cl = (unsigned)(before->gpr[GPR_RCX] & 0xff);

	switch (o->opcode) {
	case 0xaf: /* IMUL r, r/m */
		return F_SF | F_ZF | F_AF | F_PF;
	case 0xa3: case 0xab: case 0xb3: case 0xbb: /* BT, BTS, BTR, BTC */
		return F_OF | F_SF | F_AF | F_PF;
	case 0xba:
		return o->reg >= 4 ? F_OF | F_SF | F_AF | F_PF : 0;
	case 0xbc: case 0xbd:
		if (o->rep == 0xf3) /* TZCNT, LZCNT */
			return F_OF | F_SF | F_AF | F_PF;
		return F_CF | F_OF | F_SF | F_AF | F_PF; /* BSF, BSR */
	case 0xa4: case 0xac:
		return len ? double_shift_mask(o, code[len - 1]) : F_ALL;
	case 0xa5: case 0xad:
		return double_shift_mask(o, cl);
	default:
		return 0;
	}
}

uint64_t dt_undefined_flags(const struct dt_opinfo *o, const uint8_t *code, size_t len,
			    const struct cpu_state *before)
{
	if (!o->valid)
		return 0;
	if (o->map == 0)
		return map0_mask(o, code, len, before);
	if (o->map == 1)
		return map1_mask(o, code, len, before);
	return 0;
}
