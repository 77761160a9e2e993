/* System architecture of the soft CPU, shared by descriptor.c (segments,
 * descriptor tables, far JMP/CALL/RET), exception.c (interrupt and
 * exception delivery, IRET) and ops_system.c (control, debug and model-
 * specific registers, CPUID, I/O, SYSCALL/SYSENTER and the opcode table).
 *
 * Specifications: Intel SDM vol. 3 §2.5 (control registers), §3.4-3.5
 * (selectors, descriptors, system descriptor types in table 3-2), §5.5-5.8
 * (privilege checks, control transfers between code segments), §6.10-6.14
 * (IDT, gates, stack switching, IA-32e interrupt handling), §7.2 (TSS),
 * §19.5 (I/O permission bitmap); vol. 2 for each instruction.
 *
 * Invariants:
 *  - every helper that can fault does so before it writes architectural
 *    state; callers rely on this to stay fault-atomic;
 *  - the CPL is SS.DPL (soft_mode_changed()), so any code that changes the
 *    privilege level installs SS (with DPL = new CPL) before CS and then
 *    calls soft_mode_changed();
 *  - error codes of selector-related faults are (selector & ~3) | EXT. */
#ifndef SHRIKE_ENGINE_SOFT_SYSTEM_H
#define SHRIKE_ENGINE_SOFT_SYSTEM_H

#include "engine/soft/soft.h"

/* Control-register bits that cpu_state.h does not name (SDM vol. 3 §2.5). */
#define CR4_TSD (1ULL << 2)
#define CR4_PCE (1ULL << 8)
#define CR4_FSGSBASE (1ULL << 16)
#define CR4_SMEP (1ULL << 20)

/* System-segment and gate types (SDM vol. 3 table 3-2). In IA-32e mode
 * types 9/11/12/14/15 denote the 64-bit forms (16-byte descriptors). */
enum {
	DT_TSS16_AVAIL = 1,
	DT_LDT = 2,
	DT_TSS16_BUSY = 3,
	DT_CALL16 = 4,
	DT_TASK = 5,
	DT_INT16 = 6,
	DT_TRAP16 = 7,
	DT_TSS_AVAIL = 9,
	DT_TSS_BUSY = 11,
	DT_CALL = 12,
	DT_INT = 14,
	DT_TRAP = 15,
};

/* Code/data type bits (s = 1). */
#define SEGT_ACCESSED 1u
#define SEGT_RW 2u        /* readable code, writable data */
#define SEGT_CONFORM 4u   /* conforming code (expand-down for data) */
#define SEGT_CODE 8u

static inline bool sys_canonical(uint64_t la)
{
	return (uint64_t)((int64_t)(la << 16) >> 16) == la;
}

/* A null selector: index 0 in the GDT (any RPL). */
static inline bool sel_is_null(uint16_t sel) { return (sel & ~3u) == 0; }
static inline uint32_t sel_err(uint16_t sel) { return sel & ~3u; }

static inline bool sys_protected(const struct soft_cpu *cpu)
{
	return (cpu->s.cr0 & CR0_PE) && !(cpu->s.rflags & FLAG_VM);
}

static inline bool sys_lma(const struct soft_cpu *cpu) { return cpu->s.efer & EFER_LMA; }

static inline unsigned sys_iopl(const struct soft_cpu *cpu)
{
	return (unsigned)((cpu->s.rflags & FLAG_IOPL) >> 12);
}

/* Whether a code segment runs as 64-bit code once loaded. */
static inline bool sys_is64(const struct soft_cpu *cpu, const struct segment *cs)
{
	return sys_lma(cpu) && cs->l;
}

/* ---- descriptor.c ---- */

/* desc_read() with an EXT bit (SDM vol. 3 §6.13) ORed into the error code. */
uint64_t desc_read_ext(struct soft_cpu *cpu, uint16_t sel, uint8_t vector, uint32_t ext);
/* Upper 8 bytes of a 16-byte system descriptor in IA-32e mode (#GP(sel)). */
uint64_t desc_read_high(struct soft_cpu *cpu, uint16_t sel);
/* Reads a descriptor without faulting on the table limit (LAR, LSL, VERR,
 * VERW): false when the selector lies outside its table. */
bool desc_fetch(struct soft_cpu *cpu, uint16_t sel, uint64_t *d);
/* Sets the accessed bit (type bit 0) of a code/data descriptor in memory. */
void desc_mark_accessed(struct soft_cpu *cpu, uint16_t sel, uint64_t d);

/* The linear address of [off, off + size) in stack segment `ss`, which
 * need not be loaded yet: flat with canonical checks for a 64-bit stack,
 * otherwise limit-checked (expand-down aware). Raises #SS(err). */
uint64_t sys_stack_linear(struct soft_cpu *cpu, const struct segment *ss, bool flat64, uint64_t off,
			  unsigned size, uint32_t err);
/* Pushes n values (v[0] first, so it ends up highest) of `size` bytes on
 * the current stack: all memory writes happen before RSP changes. */
void sys_push_frame(struct soft_cpu *cpu, unsigned size, const uint64_t *v, unsigned n, uint32_t err);
/* Reads the `size`-byte value at RSP + off on the current stack. */
uint64_t sys_stack_peek(struct soft_cpu *cpu, unsigned size, uint64_t off);
/* RSP += delta within the current stack's address size. */
void sys_stack_release(struct soft_cpu *cpu, uint64_t delta);
/* Installs a new stack pointer of a stack segment: 64, 32 or 16 bits. */
void sys_set_rsp(struct soft_cpu *cpu, bool flat64, const struct segment *ss, uint64_t sp);

/* Checks the code segment of a far RET or IRET to privilege RPL(sel)
 * (SDM vol. 2 RET, IRET): #GP(0) null, #GP(sel), #NP(sel). */
void sys_return_cs(struct soft_cpu *cpu, uint16_t sel, struct segment *cs, uint64_t *d);
/* Checks the stack segment of a return to an outer level (or of IRETQ),
 * new CPL = rpl, returning to `cs`. A null SS is allowed only for a
 * return to 64-bit code at CPL < 3. */
void sys_return_ss(struct soft_cpu *cpu, uint16_t sel, unsigned rpl, const struct segment *cs,
		   struct segment *ss, uint64_t *d);
/* The instruction pointer of a far transfer into `cs`: masked to the
 * operand size, canonical for 64-bit code, within the limit otherwise
 * (#GP(0)). */
uint64_t sys_target_ip(struct soft_cpu *cpu, const struct segment *cs, uint64_t ip, unsigned size);
/* After a return to an outer privilege level: data segment registers
 * the new CPL may not use become null (SDM vol. 2 RET, IRET). */
void sys_null_inner_segments(struct soft_cpu *cpu, unsigned cpl);
/* Loads CS with a checked descriptor at privilege `cpl` (selector RPL =
 * cpl, accessed) and recomputes the mode. */
void sys_set_cs(struct soft_cpu *cpu, struct segment *cs, uint16_t sel, unsigned cpl);

/* Instruction handlers (decoded by the table in ops_system.c). */
void sys_mov_sreg_rm(struct soft_cpu *cpu, struct insn *i);
void sys_mov_rm_sreg(struct soft_cpu *cpu, struct insn *i);
void sys_load_far_pointer(struct soft_cpu *cpu, struct insn *i);
void sys_arpl(struct soft_cpu *cpu, struct insn *i);
void sys_group6(struct soft_cpu *cpu, struct insn *i); /* 0F 00: SLDT STR LLDT LTR VERR VERW */
void sys_lgdt_lidt(struct soft_cpu *cpu, struct insn *i);
void sys_sgdt_sidt(struct soft_cpu *cpu, struct insn *i);
void sys_lar_lsl(struct soft_cpu *cpu, struct insn *i);
void sys_swapgs(struct soft_cpu *cpu, struct insn *i);
void sys_fsgsbase(struct soft_cpu *cpu, struct insn *i);
void sys_jmp_far(struct soft_cpu *cpu, struct insn *i);
void sys_call_far(struct soft_cpu *cpu, struct insn *i);
void sys_ret_far(struct soft_cpu *cpu, struct insn *i);

/* ---- exception.c ---- */
void sys_iret(struct soft_cpu *cpu, struct insn *i);

/* ---- ops_system.c ---- */

/* Port-I/O permission (SDM vol. 1 §19.5.1-19.5.2): in protected mode with
 * CPL > IOPL (or in virtual-8086 mode) every port of [port, port + size)
 * must be clear in the TSS I/O permission bitmap; #GP(0) otherwise. Used
 * by IN/OUT here and by INS/OUTS in ops_string.c. */
void soft_io_check(struct soft_cpu *cpu, uint16_t port, unsigned size);

/* The soft CPU's time-stamp counter: soft_now_ns() scaled to SOFT_TSC_HZ
 * plus IA32_TSC's offset; advertised through CPUID 0x15/0x16. */
uint64_t soft_tsc(struct soft_cpu *cpu);
#define SOFT_TSC_HZ 1000000000ULL

#endif
