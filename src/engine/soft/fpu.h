/* The soft CPU's floating-point register file, shared by the SSE group
 * (ops_sse.c) and the x87 group (ops_x87.c): Intel SDM vol. 1 §8.1 (x87
 * FPU registers, status/control/tag words), §10.2.3 (MXCSR), §10.5.1
 * (the FXSAVE area), vol. 3 §2.5 and §13.1 (CR0.EM/TS/MP, CR4.OSFXSR/
 * OSXMMEXCPT).
 *
 * Invariants of struct fpu_state (soft.h):
 *   - st[i] holds ST(i), i.e. the registers in stack order exactly as
 *     FXSAVE stores them (bytes 0-9 the 80-bit value, bytes 10-15 zero);
 *     pushes and pops rotate the array.
 *   - ftw is the abridged tag word of FXSAVE: bit p set = physical
 *     register p is non-empty; ST(i) is physical register (TOP + i) & 7.
 *   - mxcsr never has bits outside MXCSR_MASK set (LDMXCSR and FXRSTOR
 *     refuse them with #GP).
 *   - fsw.ES (and B) is set exactly when some exception flag in fsw[5:0]
 *     is unmasked in fcw (every instruction that loads FSW or FCW
 *     recomputes them, as hardware does); waiting x87 instructions then
 *     raise #MF. */
#ifndef SHRIKE_ENGINE_SOFT_FPU_H
#define SHRIKE_ENGINE_SOFT_FPU_H

#include <string.h>

#include "engine/soft/soft.h"

/* The host's float/double/long double are the x86-64 formats, and the
 * host's MXCSR and x87 control word are driven directly (glibc keeps its
 * fenv functions in libm, which shrike does not link). */
#if !defined(__x86_64__)
#error "the soft CPU's floating point needs an x86-64 host"
#endif

/* MXCSR (SDM vol. 1 figure 10-3). */
#define MXCSR_IE 0x0001u
#define MXCSR_DE 0x0002u
#define MXCSR_ZE 0x0004u
#define MXCSR_OE 0x0008u
#define MXCSR_UE 0x0010u
#define MXCSR_PE 0x0020u
#define MXCSR_FLAGS 0x003fu
#define MXCSR_DAZ 0x0040u
#define MXCSR_MASKS_SHIFT 7
#define MXCSR_RC_SHIFT 13
#define MXCSR_RC (3u << MXCSR_RC_SHIFT)
#define MXCSR_FTZ 0x8000u
#define MXCSR_DEFAULT 0x1f80u
/* Every bit of the low half is implemented (DAZ included); FXSAVE
 * reports this as MXCSR_MASK. */
#define MXCSR_MASK 0xffffu

/* x87 status word (SDM vol. 1 figure 8-4). */
#define FSW_IE 0x0001u
#define FSW_DE 0x0002u
#define FSW_ZE 0x0004u
#define FSW_OE 0x0008u
#define FSW_UE 0x0010u
#define FSW_PE 0x0020u
#define FSW_SF 0x0040u
#define FSW_ES 0x0080u
#define FSW_C0 0x0100u
#define FSW_C1 0x0200u
#define FSW_C2 0x0400u
#define FSW_TOP_SHIFT 11
#define FSW_TOP (7u << FSW_TOP_SHIFT)
#define FSW_C3 0x4000u
#define FSW_B 0x8000u
#define FSW_CC (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)
#define FSW_EXC (FSW_IE | FSW_DE | FSW_ZE | FSW_OE | FSW_UE | FSW_PE | FSW_SF)

/* x87 control word (SDM vol. 1 figure 8-6). */
#define FCW_MASKS 0x003fu
#define FCW_PC_SHIFT 8
#define FCW_RC_SHIFT 10
#define FCW_DEFAULT 0x037fu /* FNINIT */

#define FXSAVE_SIZE 512

/* SSE instructions: #UD without OS support for FXSAVE/SSE or with x87
 * emulation, #NM while the task-switched flag defers the state switch
 * (SDM vol. 3 table 13-1; #UD is checked before #NM). */
static inline void fpu_check_sse(struct soft_cpu *cpu)
{
	if ((cpu->s.cr0 & CR0_EM) || !(cpu->s.cr4 & CR4_OSFXSR))
		soft_ud(cpu);
	if (cpu->s.cr0 & CR0_TS)
		soft_raise_noerr(cpu, EXC_NM);
}

/* x87 instructions: #NM when emulating (EM) or after a task switch (TS). */
static inline void fpu_check_x87(struct soft_cpu *cpu)
{
	if (cpu->s.cr0 & (CR0_EM | CR0_TS))
		soft_raise_noerr(cpu, EXC_NM);
}

/* The control word as loaded by FLDCW, FLDENV, FXRSTOR: bit 6 reads as
 * one and bits 13-15 as zero (checked on hardware). */
static inline uint16_t fpu_fcw_sanitize(uint16_t v) { return (uint16_t)((v & 0x1f3f) | 0x0040); }

/* Recomputes the error summary (ES) and busy (B) bits of the status word
 * from its exception flags and the control word's masks. */
static inline void fpu_update_es(struct fpu_state *f)
{
	if (f->fsw & ~f->fcw & FCW_MASKS)
		f->fsw |= FSW_ES | FSW_B;
	else
		f->fsw &= (uint16_t)~(FSW_ES | FSW_B);
}

/* ---- MMX register file (SDM vol. 1 §9.5, vol. 1 §9.5.1 on the tag word,
 * vol. 3 §12.2 and §13.1) ----
 * MMi is the mantissa (bits 63-0) of physical x87 register Ri. Every MMX
 * instruction sets TOP to 0 and marks all eight registers valid, but EMMS,
 * which marks them empty (and also sets TOP to 0 on the processors this
 * was checked on); a write to MMi also sets bits 79-64 (sign and
 * exponent) of Ri to ones.
 * Because st[] is kept in stack order, setting TOP to 0 rotates the array
 * so that st[i] is Ri afterwards.
 *
 * Faults, in this order: #UD with CR0.EM, #NM with CR0.TS, #MF while an
 * unmasked x87 exception is pending (FSW.ES), then memory faults (vol. 3
 * tables 22-7 and 22-8). */
static inline void mmx_check(struct soft_cpu *cpu)
{
	if (cpu->s.cr0 & CR0_EM)
		soft_ud(cpu);
	if (cpu->s.cr0 & CR0_TS)
		soft_raise_noerr(cpu, EXC_NM);
	if (cpu->fpu.fsw & FSW_ES)
		soft_raise_noerr(cpu, EXC_MF);
}

/* The SSE/SSE2 instructions with both an XMM and an MMX operand (MOVQ2DQ,
 * MOVDQ2Q, CVTPI2PS, CVTPS2PI, ...) also need OS support for SSE: #UD
 * with CR0.EM or without CR4.OSFXSR, #NM with CR0.TS, then #MF (vol. 3
 * tables 22-4 to 22-6). */
static inline void mmx_check_sse(struct soft_cpu *cpu)
{
	fpu_check_sse(cpu);
	if (cpu->fpu.fsw & FSW_ES)
		soft_raise_noerr(cpu, EXC_MF);
}

/* The x87 side of an MMX instruction (after mmx_check and after every
 * access that can fault, so that a faulting instruction changes nothing). */
static inline void mmx_enter(struct soft_cpu *cpu)
{
	struct fpu_state *f = &cpu->fpu;
	unsigned top = (f->fsw & FSW_TOP) >> FSW_TOP_SHIFT;
	if (top) {
		uint8_t phys[8][16];
		for (unsigned k = 0; k < 8; k++)
			memcpy(phys[(top + k) & 7], f->st[k], 16);
		memcpy(f->st, phys, sizeof(phys));
		f->fsw &= (uint16_t)~FSW_TOP;
	}
	f->ftw = 0xff;
}

/* MMn whatever TOP is (Rn is ST((n - TOP) & 7)), so that a handler can
 * read its register operands before mmx_enter: a store to memory must
 * read MMn, then fault or complete, and only then switch to MMX mode. */
static inline uint64_t mmx_get(const struct soft_cpu *cpu, unsigned n)
{
	unsigned top = (cpu->fpu.fsw & FSW_TOP) >> FSW_TOP_SHIFT;
	uint64_t v;
	memcpy(&v, cpu->fpu.st[(n - top) & 7], 8);
	return v;
}

/* Call after mmx_enter (st[n] is then Rn). */
static inline void mmx_set(struct soft_cpu *cpu, unsigned n, uint64_t v)
{
	memcpy(cpu->fpu.st[n & 7], &v, 8);
	cpu->fpu.st[n & 7][8] = 0xff;
	cpu->fpu.st[n & 7][9] = 0xff;
}

#endif
