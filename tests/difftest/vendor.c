/* Differences between processor vendors that the tester knows about
 * precisely, and the memory operand address it needs to apply them.
 *
 * The soft CPU presents itself as GenuineIntel and follows Intel's
 * behaviour; when the oracle is an AMD processor, a few model-specific
 * fields differ by vendor and are taken from the oracle instead of being
 * compared (like undefined flags):
 *
 *   FXSAVE (SDM vol. 2 FXSAVE, tables 3-43 and 3-46; AMD APM vol. 5
 *   FXSAVE): AMD stores FOP, FIP, FCS, FDP and FDS (bytes 6-23 of the
 *   image) as zero unless an unmasked x87 exception is pending (ES set in
 *   the saved status word), and reports MXCSR_MASK (bytes 28-31) as
 *   0x2FFFF; Intel stores the last x87 opcode and instruction and data
 *   pointers, and 0xFFFF. With ES set both store the same pointers
 *   (checked on this host), so those bytes are then compared. */
#include <string.h>

#include "difftest.h"

#define FSW_ES_BIT 0x80 /* x87 status word: exception summary */

bool dt_host_is_amd(void)
{
	uint32_t a = 0, b, c, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
	/* "AuthenticAMD" in EBX, EDX, ECX. */
	return b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;
}

static bool is_segment_prefix(uint8_t b, unsigned *seg)
{
	switch (b) {
	case 0x26: *seg = SEG_ES; return true;
	case 0x2e: *seg = SEG_CS; return true;
	case 0x36: *seg = SEG_SS; return true;
	case 0x3e: *seg = SEG_DS; return true;
	case 0x64: *seg = SEG_FS; return true;
	case 0x65: *seg = SEG_GS; return true;
	default: return false;
	}
}

static uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned k = 0; k < n; k++)
		v |= (uint64_t)p[k] << (8 * k);
	return v;
}

/* 16-bit addressing (SDM vol. 2 table 2-1): the base/index pairs of rm. */
static uint64_t ea16(const struct cpu_state *s, unsigned mod, unsigned rm, unsigned *seg)
{
	static const int8_t base[8] = {GPR_RBX, GPR_RBX, GPR_RBP, GPR_RBP, GPR_RSI, GPR_RDI, GPR_RBP,
				       GPR_RBX};
	static const int8_t index[8] = {GPR_RSI, GPR_RDI, GPR_RSI, GPR_RDI, -1, -1, -1, -1};
	if (mod == 0 && rm == 6)
		return 0;
	if (base[rm] == GPR_RBP)
		*seg = SEG_SS;
	return s->gpr[base[rm]] + (index[rm] >= 0 ? s->gpr[index[rm]] : 0);
}

bool dt_mem_operand(const uint8_t *code, size_t len, size_t insn_len, unsigned mode_bits,
		    const struct cpu_state *before, uint64_t *la)
{
	size_t p = 0;
	unsigned seg = SEG_DS, seg_override = SEG_COUNT, asize = mode_bits == 2 ? 2 : mode_bits;
	uint8_t rex = 0;

	for (; p < len && p < 14; p++) {
		uint8_t b = code[p];
		unsigned sg;
		if (b == 0x67)
			asize = mode_bits == 8 ? 4 : mode_bits == 4 ? 2 : 4;
		else if (is_segment_prefix(b, &sg))
			seg_override = sg;
		else if (b != 0x66 && b != 0xf0 && b != 0xf2 && b != 0xf3)
			break;
	}
	if (mode_bits == 8 && p < len && (code[p] & 0xf0) == 0x40)
		rex = code[p++];
	if (p < len && code[p] == 0x0f) {
		p++;
		if (p < len && (code[p] == 0x38 || code[p] == 0x3a))
			p++;
	}
	p++; /* the opcode */
	if (p >= len)
		return false;
	unsigned mod = code[p] >> 6, rm = code[p] & 7;
	p++;
	if (mod == 3)
		return false;

	uint64_t ea = 0;
	unsigned dispsz = mod == 1 ? 1 : mod == 2 ? (asize == 2 ? 2 : 4) : 0;
	bool riprel = false;
	if (asize == 2) {
		ea = ea16(before, mod, rm, &seg);
		if (mod == 0 && rm == 6)
			dispsz = 2;
	} else if (rm == 4) { /* SIB */
		if (p >= len)
			return false;
		uint8_t sib = code[p++];
		unsigned scale = sib >> 6, index = ((sib >> 3) & 7) | (rex & 2 ? 8 : 0);
		unsigned base = (sib & 7) | (rex & 1 ? 8 : 0);
		if (index != 4)
			ea += before->gpr[index] << scale;
		if ((sib & 7) == 5 && mod == 0) {
			dispsz = 4;
		} else {
			ea += before->gpr[base];
			if ((base & 7) == GPR_RSP || (base & 7) == GPR_RBP)
				seg = SEG_SS;
		}
	} else if (rm == 5 && mod == 0) {
		dispsz = 4;
		riprel = mode_bits == 8;
	} else {
		unsigned base = rm | (rex & 1 ? 8 : 0);
		ea += before->gpr[base];
		if (rm == GPR_RBP)
			seg = SEG_SS;
	}
	if (p + dispsz > len)
		return false;
	switch (dispsz) {
	case 1: ea += (uint64_t)(int64_t)(int8_t)code[p]; break;
	case 2: ea += (uint64_t)(int64_t)(int16_t)le(code + p, 2); break;
	case 4: ea += (uint64_t)(int64_t)(int32_t)le(code + p, 4); break;
	default: break;
	}
	if (riprel)
		ea += before->rip + insn_len;
	if (asize < 8)
		ea &= asize == 2 ? 0xffff : 0xffffffffULL;
	if (seg_override != SEG_COUNT)
		seg = seg_override;
	if (mode_bits == 8) {
		*la = seg == SEG_FS || seg == SEG_GS ? ea + before->seg[seg].base : ea;
	} else {
		*la = (ea + before->seg[seg].base) & 0xffffffffULL;
	}
	return true;
}

static bool is_fxsave(const struct dt_opinfo *o, const uint8_t *code, size_t len)
{
	if (!o->valid || o->map != 1 || o->opcode != 0xae || o->reg != 0 || o->rep)
		return false;
	size_t modrm = o->len_prefixes + 2;
	return modrm < len && (code[modrm] >> 6) != 3;
}

void dt_vendor_fixup(const struct dt_ctx *c, const struct dt_opinfo *o, const uint8_t *code,
		     size_t len, size_t insn_len, unsigned mode_bits, const struct cpu_state *before)
{
	uint64_t la;
	if (!c->oracle_amd || !is_fxsave(o, code, len) ||
	    !dt_mem_operand(code, len, insn_len, mode_bits, before, &la))
		return;
	/* Linear = guest-physical in every mode of the test machine. */
	const uint8_t *k = guest_mem_ptr(&c->kvm.mem, la, 32);
	uint8_t *s = guest_mem_ptr(&c->soft.mem, la, 32);
	if (!k || !s)
		return;
	if (!(k[2] & FSW_ES_BIT)) {
		memcpy(s + 6, k + 6, 2);  /* FOP */
		memcpy(s + 8, k + 8, 16); /* FIP, FCS, FDP, FDS */
	}
	memcpy(s + 28, k + 28, 4); /* MXCSR_MASK */
}
