/* MMX (SDM vol. 1 ch. 9, vol. 2 instruction pages): the 64-bit packed-integer
 * instructions on MM0-MM7, EMMS, and the SSE/SSE2 forms that take MMX
 * operands (PAVGB, PSHUFW, PINSRW, PMOVMSKB, MASKMOVQ, MOVNTQ, PMULUDQ,
 * PADDQ/PSUBQ, MOVQ2DQ, MOVDQ2Q). The conversions between MMX and XMM
 * registers (CVTPI2PS, CVTPS2PI, ... 0F 2A/2C/2D) live in ops_sse.c with
 * the floating-point machinery they need.
 *
 * The register file is the x87 one (fpu.h, mmx_*). Every handler checks
 * the preconditions first (mmx_check: #UD with CR0.EM, #NM with CR0.TS,
 * #MF with a pending x87 exception), then makes every access that can
 * fault, then switches the x87 unit to MMX mode (mmx_enter: TOP = 0, all
 * registers valid) and writes its result, so a faulting instruction
 * changes nothing. Memory operands are 8 bytes (4 for PUNPCKL*, the
 * GPR's size for MOVD/MOVQ, 2 for PINSRW) with no alignment requirement.
 * REX.R and REX.B do not extend MM register numbers (only the GPR and
 * XMM operands). The element operations are those of the XMM forms
 * (ops_sse.c, sse_pint_fn) on 8-byte operands. */
#include "engine/soft/sse.h"

/* ---- moves ---- */

static void movd_to_mm(struct soft_cpu *cpu, struct insn *i) /* 0F 6E; REX.W: MOVQ mm, r/m64 */
{
	mmx_check(cpu);
	uint64_t v = op_rm_read(cpu, i, gpr_size(i));
	mmx_enter(cpu);
	mmx_set(cpu, i->reg, v);
}

static void movd_from_mm(struct soft_cpu *cpu, struct insn *i) /* 0F 7E; REX.W: MOVQ r/m64, mm */
{
	mmx_check(cpu);
	op_rm_write(cpu, i, gpr_size(i), mmx_get(cpu, i->reg));
	mmx_enter(cpu);
}

static void movq_load(struct soft_cpu *cpu, struct insn *i) /* 0F 6F */
{
	mmx_check(cpu);
	uint64_t v = mmx_src(cpu, i, 8);
	mmx_enter(cpu);
	mmx_set(cpu, i->reg, v);
}

/* MOVQ mm/m64, mm (0F 7F); MOVNTQ m64, mm (0F E7, memory only). */
static void movq_store(struct soft_cpu *cpu, struct insn *i)
{
	mmx_check(cpu);
	uint64_t v = mmx_get(cpu, i->reg);
	if (i->mod != 3)
		op_rm_write_mem(cpu, i, 8, v);
	mmx_enter(cpu);
	if (i->mod == 3)
		mmx_set(cpu, i->rm, v);
}

/* MOVQ2DQ xmm, mm (F3 0F D6): the high quadword of xmm is cleared. */
static void movq2dq(struct soft_cpu *cpu, struct insn *i)
{
	union xmm x = {{0}};
	mmx_check_sse(cpu);
	x.q[0] = mmx_get(cpu, i->rm);
	mmx_enter(cpu);
	xmm_set(cpu, i->reg, &x);
}

static void movdq2q(struct soft_cpu *cpu, struct insn *i) /* F2 0F D6: MOVDQ2Q mm, xmm */
{
	union xmm x;
	mmx_check_sse(cpu);
	xmm_get(cpu, i->rm, &x);
	mmx_enter(cpu);
	mmx_set(cpu, i->reg, x.q[0]);
}

static void pmovmskb(struct soft_cpu *cpu, struct insn *i) /* 0F D7: r32, mm */
{
	union xmm v = {{0}};
	mmx_check(cpu);
	v.q[0] = mmx_get(cpu, i->rm);
	mmx_enter(cpu);
	reg_write(cpu, i->reg, 4, sse_sign_mask(&v, 8, 1), true);
}

static void pextrw(struct soft_cpu *cpu, struct insn *i) /* 0F C5: r32, mm, imm8 */
{
	mmx_check(cpu);
	uint64_t v = mmx_get(cpu, i->rm);
	mmx_enter(cpu);
	reg_write(cpu, i->reg, 4, (v >> (16 * (i->imm & 3))) & 0xffff, true);
}

static void pinsrw(struct soft_cpu *cpu, struct insn *i) /* 0F C4: mm, r32/m16, imm8 */
{
	unsigned shift = 16 * (unsigned)(i->imm & 3);
	mmx_check(cpu);
	uint64_t w = op_rm_read(cpu, i, 2) & 0xffff;
	mmx_enter(cpu);
	uint64_t v = mmx_get(cpu, i->reg);
	mmx_set(cpu, i->reg, (v & ~(0xffffULL << shift)) | w << shift);
}

static void pshufw(struct soft_cpu *cpu, struct insn *i) /* 0F 70: mm, mm/m64, imm8 */
{
	mmx_check(cpu);
	uint64_t s = mmx_src(cpu, i, 8), r = 0;
	for (unsigned k = 0; k < 4; k++)
		r |= ((s >> (16 * ((i->imm >> (2 * k)) & 3))) & 0xffff) << (16 * k);
	mmx_enter(cpu);
	mmx_set(cpu, i->reg, r);
}

/* MASKMOVQ mm1, mm2 (0F F7): the stores of MASKMOVDQU on 8 bytes. */
static void maskmovq(struct soft_cpu *cpu, struct insn *i)
{
	union xmm v = {{0}}, m = {{0}};
	mmx_check(cpu);
	v.q[0] = mmx_get(cpu, i->reg);
	m.q[0] = mmx_get(cpu, i->rm);
	sse_maskmov(cpu, i, &v, &m, 8);
	mmx_enter(cpu);
}

/* EMMS (0F 77): marks every x87 register empty. The SDM says nothing of
 * TOP; the processor sets it to 0 like the other MMX instructions
 * (checked on hardware: FNSTSW and FXSAVE after FLD1, EMMS show TOP 0). */
static void emms(struct soft_cpu *cpu, struct insn *i)
{
	(void)i;
	mmx_check(cpu);
	mmx_enter(cpu);
	cpu->fpu.ftw = 0;
}

/* ---- packed integer and logical operations ---- */

/* PUNPCKLBW/WD/DQ (0F 60-62) read only the low half of their source, and
 * a 4-byte memory operand. */
static unsigned pint_src_size(uint8_t opcode) { return opcode >= 0x60 && opcode <= 0x62 ? 4 : 8; }

static void mmx_pint(struct soft_cpu *cpu, struct insn *i)
{
	union xmm d, s;
	mmx_operands(cpu, i, pint_src_size(i->opcode), &d, &s);
	sse_pint_fn(i->opcode)(&d, &s, 8);
	mmx_set(cpu, i->reg, d.q[0]);
}

/* ---- shifts ---- */

/* PSRLW/D/Q, PSRAW/D, PSLLW/D/Q mm, mm/m64 (0F D1-D3, E1-E2, F1-F3): the
 * count is the whole 64-bit source. */
static void mmx_shift(struct soft_cpu *cpu, struct insn *i)
{
	union xmm d, s;
	mmx_operands(cpu, i, 8, &d, &s);
	sse_shift_elems(&d, 8, pshift_size(i->opcode), pshift_kind(i->opcode), s.q[0]);
	mmx_set(cpu, i->reg, d.q[0]);
}

/* 0F 71/72/73 /2 /4 /6 ib: shifts of the r/m register by an immediate
 * (73 has no arithmetic form and, unlike the XMM group, no byte shifts). */
static void mmx_shift_imm(struct soft_cpu *cpu, struct insn *i)
{
	union xmm v = {{0}};
	mmx_check(cpu);
	mmx_enter(cpu);
	v.q[0] = mmx_get(cpu, i->rm);
	sse_shift_elems(&v, 8, pshift_imm_size(i->opcode), pshift_imm_kind(i), i->imm);
	mmx_set(cpu, i->rm, v.q[0]);
}

#define M OPF_MODRM
#define I8 OPF_IMM8
#define R3 OPF_MOD3
#define MEM OPF_MODMEM
#define MMX(op, fl, name, fn) {OPMAP_0F, (op), -1, -1, PFX_NONE, M | (fl), (name), (fn)}
#define MMXG(op, reg, name) {OPMAP_0F, (op), (reg), -1, PFX_NONE, M | R3 | I8, (name), mmx_shift_imm}
#define PINT(op, name) MMX(op, 0, name, mmx_pint)
#define SHIFT(op, name) MMX(op, 0, name, mmx_shift)

const struct opdef soft_ops_mmx[] = {
    /* moves */
    MMX(0x6e, 0, "movd/movq", movd_to_mm),
    MMX(0x6f, 0, "movq", movq_load),
    MMX(0x7e, 0, "movd/movq", movd_from_mm),
    MMX(0x7f, 0, "movq", movq_store),
    MMX(0xe7, MEM, "movntq", movq_store),
    {OPMAP_0F, 0xd6, -1, -1, PFX_F3, M | R3, "movq2dq", movq2dq},
    {OPMAP_0F, 0xd6, -1, -1, PFX_F2, M | R3, "movdq2q", movdq2q},
    MMX(0xd7, R3, "pmovmskb", pmovmskb),
    MMX(0xc4, I8, "pinsrw", pinsrw),
    MMX(0xc5, R3 | I8, "pextrw", pextrw),
    MMX(0x70, I8, "pshufw", pshufw),
    MMX(0xf7, R3, "maskmovq", maskmovq),
    {OPMAP_0F, 0x77, -1, -1, PFX_NONE, 0, "emms", emms},
    /* packed integer */
    PINT(0x60, "punpcklbw"), PINT(0x61, "punpcklwd"), PINT(0x62, "punpckldq"),
    PINT(0x63, "packsswb"), PINT(0x64, "pcmpgtb"), PINT(0x65, "pcmpgtw"),
    PINT(0x66, "pcmpgtd"), PINT(0x67, "packuswb"), PINT(0x68, "punpckhbw"),
    PINT(0x69, "punpckhwd"), PINT(0x6a, "punpckhdq"), PINT(0x6b, "packssdw"),
    PINT(0x74, "pcmpeqb"), PINT(0x75, "pcmpeqw"), PINT(0x76, "pcmpeqd"),
    PINT(0xd4, "paddq"), PINT(0xd5, "pmullw"), PINT(0xd8, "psubusb"), PINT(0xd9, "psubusw"),
    PINT(0xda, "pminub"), PINT(0xdb, "pand"), PINT(0xdc, "paddusb"), PINT(0xdd, "paddusw"),
    PINT(0xde, "pmaxub"), PINT(0xdf, "pandn"), PINT(0xe0, "pavgb"), PINT(0xe3, "pavgw"),
    PINT(0xe4, "pmulhuw"), PINT(0xe5, "pmulhw"), PINT(0xe8, "psubsb"), PINT(0xe9, "psubsw"),
    PINT(0xea, "pminsw"), PINT(0xeb, "por"), PINT(0xec, "paddsb"), PINT(0xed, "paddsw"),
    PINT(0xee, "pmaxsw"), PINT(0xef, "pxor"), PINT(0xf4, "pmuludq"), PINT(0xf5, "pmaddwd"),
    PINT(0xf6, "psadbw"), PINT(0xf8, "psubb"), PINT(0xf9, "psubw"), PINT(0xfa, "psubd"),
    PINT(0xfb, "psubq"), PINT(0xfc, "paddb"), PINT(0xfd, "paddw"), PINT(0xfe, "paddd"),
    /* shifts */
    SHIFT(0xd1, "psrlw"), SHIFT(0xd2, "psrld"), SHIFT(0xd3, "psrlq"),
    SHIFT(0xe1, "psraw"), SHIFT(0xe2, "psrad"),
    SHIFT(0xf1, "psllw"), SHIFT(0xf2, "pslld"), SHIFT(0xf3, "psllq"),
    MMXG(0x71, 2, "psrlw"), MMXG(0x71, 4, "psraw"), MMXG(0x71, 6, "psllw"),
    MMXG(0x72, 2, "psrld"), MMXG(0x72, 4, "psrad"), MMXG(0x72, 6, "pslld"),
    MMXG(0x73, 2, "psrlq"), MMXG(0x73, 6, "psllq"),
    OPDEF_END,
};
