/* Lazy arithmetic flags: an instruction records its operation, operands
 * and result; each flag is computed only when something reads it (SDM
 * vol. 1 §3.4.3 and appendix A for which instructions define which flags).
 * Where the SDM leaves a flag undefined, the value computed here is what
 * current Intel processors produce where known, and the differential
 * tester masks it otherwise. */
#include "engine/soft/soft.h"

static inline unsigned msb_shift(unsigned size) { return size * 8 - 1; }

static bool msb(uint64_t v, unsigned size) { return (v >> msb_shift(size)) & 1; }

bool flags_cf(struct soft_cpu *cpu)
{
	const struct lazy_flags *f = &cpu->lf;
	unsigned bits = f->size * 8;

	switch (f->op) {
	case LF_NONE:
		return cpu->s.rflags & FLAG_CF;
	case LF_HOST:
		return f->res & FLAG_CF;
	case LF_ADD:
		return f->res < f->src1;
	case LF_ADC:
		return f->carry_in ? f->res <= f->src1 : f->res < f->src1;
	case LF_SUB:
		return f->src1 < f->src2;
	case LF_SBB:
		return f->carry_in ? f->src1 <= f->src2 : f->src1 < f->src2;
	case LF_LOGIC:
		return false;
	case LF_INC:
	case LF_DEC:
		return f->carry_in;
	case LF_NEG:
		return f->src1 != 0;
	case LF_SHL:
		return f->src2 <= bits ? (f->src1 >> (bits - f->src2)) & 1 : 0;
	case LF_SHR:
		return f->src2 <= bits ? (f->src1 >> (f->src2 - 1)) & 1 : 0;
	case LF_SAR:
		return f->src2 < bits ? (sign_extend(f->src1, f->size) >> (f->src2 - 1)) & 1
				      : msb(f->src1, f->size);
	case LF_MUL:
	case LF_IMUL:
		return f->carry_in; /* set by the multiply: high half significant */
	default:
		return false;
	}
}

bool flags_zf(struct soft_cpu *cpu)
{
	if (cpu->lf.op == LF_NONE)
		return cpu->s.rflags & FLAG_ZF;
	if (cpu->lf.op == LF_HOST)
		return cpu->lf.res & FLAG_ZF;
	if (cpu->lf.op == LF_MUL || cpu->lf.op == LF_IMUL)
		return false; /* undefined by the SDM; Intel clears it */
	return cpu->lf.res == 0;
}

bool flags_sf(struct soft_cpu *cpu)
{
	if (cpu->lf.op == LF_NONE)
		return cpu->s.rflags & FLAG_SF;
	if (cpu->lf.op == LF_HOST)
		return cpu->lf.res & FLAG_SF;
	return msb(cpu->lf.res, cpu->lf.size);
}

bool flags_pf(struct soft_cpu *cpu)
{
	if (cpu->lf.op == LF_NONE)
		return cpu->s.rflags & FLAG_PF;
	if (cpu->lf.op == LF_HOST)
		return cpu->lf.res & FLAG_PF;
	return !__builtin_parity((unsigned)(cpu->lf.res & 0xff));
}

static bool flags_af(struct soft_cpu *cpu)
{
	const struct lazy_flags *f = &cpu->lf;
	switch (f->op) {
	case LF_NONE:
		return cpu->s.rflags & FLAG_AF;
	case LF_HOST:
		return f->res & FLAG_AF;
	case LF_ADD:
	case LF_ADC:
	case LF_SUB:
	case LF_SBB:
		return ((f->res ^ f->src1 ^ f->src2) >> 4) & 1;
	case LF_INC:
		return (f->res & 0xf) == 0;
	case LF_DEC:
		return (f->res & 0xf) == 0xf;
	case LF_NEG:
		return (f->src1 & 0xf) != 0;
	default:
		return false;
	}
}

bool flags_of(struct soft_cpu *cpu)
{
	const struct lazy_flags *f = &cpu->lf;
	unsigned size = f->size;
	unsigned bits = size * 8;

	switch (f->op) {
	case LF_NONE:
		return cpu->s.rflags & FLAG_OF;
	case LF_HOST:
		return f->res & FLAG_OF;
	case LF_ADD:
	case LF_ADC:
		return msb((f->src1 ^ f->res) & (f->src2 ^ f->res), size);
	case LF_SUB:
	case LF_SBB:
		return msb((f->src1 ^ f->src2) & (f->src1 ^ f->res), size);
	case LF_INC:
		return f->res == (1ULL << msb_shift(size));
	case LF_DEC:
		return f->res == (1ULL << msb_shift(size)) - 1;
	case LF_NEG:
		return f->src1 == (1ULL << msb_shift(size));
	case LF_SHL:
		/* Defined for count 1 only (MSB(result) ^ CF); for any count
		 * Intel computes that count-1 value from the original operand:
		 * its two top bits differ. */
		return msb(f->src1, size) ^ ((f->src1 >> (bits - 2)) & 1);
	case LF_SHR:
		/* Count 1: the original MSB; Intel uses it for any count. */
		return msb(f->src1, size);
	case LF_SAR:
		return false;
	case LF_MUL:
	case LF_IMUL:
		return f->carry_in;
	default:
		return false;
	}
}

bool flags_cond(struct soft_cpu *cpu, unsigned cc)
{
	bool r;
	switch (cc >> 1) {
	case 0: r = flags_of(cpu); break;                    /* O */
	case 1: r = flags_cf(cpu); break;                    /* B/C */
	case 2: r = flags_zf(cpu); break;                    /* Z */
	case 3: r = flags_cf(cpu) || flags_zf(cpu); break;   /* BE */
	case 4: r = flags_sf(cpu); break;                    /* S */
	case 5: r = flags_pf(cpu); break;                    /* P */
	case 6: r = flags_sf(cpu) != flags_of(cpu); break;   /* L */
	default: r = flags_zf(cpu) || flags_sf(cpu) != flags_of(cpu); break; /* LE */
	}
	return (cc & 1) ? !r : r;
}

uint64_t flags_get(struct soft_cpu *cpu)
{
	if (cpu->lf.op == LF_NONE)
		return cpu->s.rflags | RFLAGS_FIXED;
	if (cpu->lf.op == LF_HOST)
		return (cpu->s.rflags & ~FLAGS_ARITH) | (cpu->lf.res & FLAGS_ARITH) | RFLAGS_FIXED;
	uint64_t f = cpu->s.rflags & ~FLAGS_ARITH;
	f |= flags_cf(cpu) ? FLAG_CF : 0;
	f |= flags_pf(cpu) ? FLAG_PF : 0;
	f |= flags_af(cpu) ? FLAG_AF : 0;
	f |= flags_zf(cpu) ? FLAG_ZF : 0;
	f |= flags_sf(cpu) ? FLAG_SF : 0;
	f |= flags_of(cpu) ? FLAG_OF : 0;
	return f | RFLAGS_FIXED;
}

void flags_put(struct soft_cpu *cpu, uint64_t rflags)
{
	cpu->s.rflags = rflags | RFLAGS_FIXED;
	cpu->lf.op = LF_NONE;
}
