/* The soft engine: an x86-64 CPU written in C (Intel SDM vols. 1-3).
 *
 * Structure:
 *   soft_engine.c  engine_ops: vCPU lifecycle, the run loop, exits
 *   decode.c       instruction decoder; opcode tables assembled at start-up
 *                  from the per-group tables in ops_*.c
 *   mem.c          segmentation and linear/physical memory access, MMIO
 *   mmu.c          page walks (32-bit, PAE, 4-level), the software TLB
 *   flags.c        lazy arithmetic flags
 *   exception.c    exception and interrupt delivery (IVT, IDT, IST, #DF, triple fault)
 *   ops_*.c        instruction semantics, one file per instruction group
 *
 * Faults: an instruction that faults calls soft_raise(), which longjmps back
 * to the run loop with cpu->exc set. Handlers are therefore written to be
 * fault-atomic: every access that can fault happens before any
 * architectural state is written, so a faulting instruction leaves no
 * trace and restarts cleanly (SDM vol. 3 §6.5, faults are restartable).
 *
 * Invariants: cpu->s.rip points at the current instruction until its
 * handler completes; handlers set the next RIP through cpu->next_rip
 * (pre-set to rip + length) and the run loop commits it. Guest memory is
 * touched only through guest_mem_ptr() results cached in the TLB. */
#ifndef SHRIKE_ENGINE_SOFT_H
#define SHRIKE_ENGINE_SOFT_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "arch/x86/cpu_state.h"
#include "arch/x86/cpuid.h"
#include "engine/engine.h"

struct soft_cpu;
struct insn;

/* ---- exceptions (SDM vol. 3 §6.3.1) ---- */
enum {
	EXC_DE = 0, EXC_DB = 1, EXC_NMI = 2, EXC_BP = 3, EXC_OF = 4, EXC_BR = 5, EXC_UD = 6,
	EXC_NM = 7, EXC_DF = 8, EXC_TS = 10, EXC_NP = 11, EXC_SS = 12, EXC_GP = 13,
	EXC_PF = 14, EXC_MF = 16, EXC_AC = 17, EXC_MC = 18, EXC_XM = 19,
};

#define PF_PRESENT 0x01
#define PF_WRITE 0x02
#define PF_USER 0x04
#define PF_RSVD 0x08
#define PF_FETCH 0x10

_Noreturn void soft_raise(struct soft_cpu *cpu, uint8_t vector, uint32_t error_code);
_Noreturn void soft_raise_noerr(struct soft_cpu *cpu, uint8_t vector);
#define soft_ud(cpu) soft_raise_noerr((cpu), EXC_UD)
#define soft_gp(cpu, err) soft_raise((cpu), EXC_GP, (err))

/* Delivers an exception or interrupt through the IVT/IDT, escalating to #DF
 * and to a triple fault (cpu->shutdown) per SDM vol. 3 table 6-5. Raising
 * from inside delivery longjmps back to the run loop like any fault. */
void soft_deliver(struct soft_cpu *cpu, uint8_t vector, bool has_error, uint32_t error_code,
		  bool software_int, uint64_t return_rip);

/* ---- lazy flags (flags.c) ---- */
enum lazy_op {
	LF_NONE, /* rflags holds the arithmetic flags */
	LF_ADD, LF_ADC, LF_SUB, LF_SBB, LF_LOGIC, LF_INC, LF_DEC, LF_NEG,
	LF_SHL, LF_SHR, LF_SAR, LF_MUL, LF_IMUL,
	LF_HOST, /* res holds an x86 RFLAGS image with the arithmetic flags (jit/) */
};

struct lazy_flags {
	uint8_t op;   /* enum lazy_op */
	uint8_t size; /* operand size in bytes */
	uint64_t res, src1, src2;
	uint64_t carry_in; /* ADC/SBB carry, INC/DEC preserved CF, shift count */
};

#define FLAG_CF (1ULL << 0)
#define FLAG_PF (1ULL << 2)
#define FLAG_AF (1ULL << 4)
#define FLAG_ZF (1ULL << 6)
#define FLAG_SF (1ULL << 7)
#define FLAG_TF (1ULL << 8)
#define FLAG_IF (1ULL << 9)
#define FLAG_DF (1ULL << 10)
#define FLAG_OF (1ULL << 11)
#define FLAG_IOPL (3ULL << 12)
#define FLAG_NT (1ULL << 14)
#define FLAG_RF (1ULL << 16)
#define FLAG_VM (1ULL << 17)
#define FLAG_AC (1ULL << 18)
#define FLAG_VIF (1ULL << 19)
#define FLAG_VIP (1ULL << 20)
#define FLAG_ID (1ULL << 21)
#define FLAGS_ARITH (FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF)

/* Records the result of an arithmetic operation for later flag queries. */
static inline void flags_set(struct soft_cpu *cpu, enum lazy_op op, unsigned size, uint64_t res,
			     uint64_t src1, uint64_t src2);
uint64_t flags_get(struct soft_cpu *cpu);            /* full RFLAGS, materialized */
void flags_put(struct soft_cpu *cpu, uint64_t rflags); /* sets RFLAGS, ends laziness */
bool flags_cf(struct soft_cpu *cpu);
bool flags_zf(struct soft_cpu *cpu);
bool flags_sf(struct soft_cpu *cpu);
bool flags_of(struct soft_cpu *cpu);
bool flags_pf(struct soft_cpu *cpu);
/* Condition codes 0-15 as in Jcc/SETcc/CMOVcc (SDM vol. 1 appendix B). */
bool flags_cond(struct soft_cpu *cpu, unsigned cc);

/* ---- decoded instructions (decode.c) ---- */
enum opmap { OPMAP_1B, OPMAP_0F, OPMAP_0F38, OPMAP_0F3A, OPMAP_COUNT };

/* Mandatory-prefix selector for SSE-style opcodes. */
enum { PFX_ANY, PFX_NONE, PFX_66, PFX_F3, PFX_F2 };

enum {
	OPF_MODRM = 1 << 0,    /* has a ModRM byte */
	OPF_BYTE = 1 << 1,     /* operand size is 1 */
	OPF_IMM8 = 1 << 2,     /* 8-bit immediate */
	OPF_IMM16 = 1 << 3,    /* 16-bit immediate */
	OPF_IMMZ = 1 << 4,     /* 16/32-bit immediate by operand size (sign-extended for 64) */
	OPF_IMMV = 1 << 5,     /* 16/32/64-bit immediate by operand size (MOV r, imm) */
	OPF_DEF64 = 1 << 6,    /* 64-bit default operand size in long mode (push, pop, ...) */
	OPF_F64 = 1 << 7,      /* operand size forced to 64 in long mode (near branches) */
	OPF_NO64 = 1 << 8,     /* invalid in 64-bit mode */
	OPF_MOD3 = 1 << 9,     /* only with ModRM.mod == 3 */
	OPF_MODMEM = 1 << 10,  /* only with a memory operand */
	OPF_MOFFS = 1 << 11,   /* address-size immediate offset (MOV AL, moffs) */
	OPF_FARPTR = 1 << 12,  /* ptr16:16/32 immediate (far JMP/CALL) */
	OPF_ENTER = 1 << 13,   /* imm16 then imm8 */
	OPF_LOCKOK = 1 << 14,  /* LOCK allowed (with a memory destination) */
	OPF_REL = 1 << 15,     /* the immediate is a branch displacement */
	OPF_ONLY64 = 1 << 16,  /* only in 64-bit mode (MOVSXD shares 63 with ARPL) */
	OPF_RMW = 1 << 17,     /* reads then writes its r/m operand (implied by OPF_LOCKOK):
				* the read is checked for write access, so a page fault
				* reports W=1 as on hardware */
};

typedef void (*soft_exec_fn)(struct soft_cpu *cpu, struct insn *i);

struct opdef {
	uint8_t map;    /* enum opmap */
	uint8_t opcode;
	int8_t reg;     /* ModRM.reg for group opcodes, -1 for any */
	int8_t rm;      /* ModRM.rm (with OPF_MOD3), -1 for any */
	uint8_t prefix; /* PFX_* */
	uint32_t flags; /* OPF_* */
	const char *name;
	soft_exec_fn exec;
};

#define OPDEF_END {0, 0, 0, 0, 0, 0, NULL, NULL}

/* Per-group opcode tables, each terminated by OPDEF_END. */
extern const struct opdef soft_ops_mov[];
extern const struct opdef soft_ops_alu[];
extern const struct opdef soft_ops_ctrl[];
extern const struct opdef soft_ops_string[];
extern const struct opdef soft_ops_system[];
extern const struct opdef soft_ops_sse[];
extern const struct opdef soft_ops_x87[];
extern const struct opdef soft_ops_mmx[];   /* MMX, and the SSE/SSE2 forms on MMX registers */
extern const struct opdef soft_ops_ssse3[]; /* SSE3 and SSSE3 */
extern const struct opdef soft_ops_sse4[];  /* SSE4.1, SSE4.2 (PCMPxSTRx, CRC32) */

/* Fast forms: a group may offer, for an instruction already decoded, a
 * handler specialized for its operands (size, register or memory) with
 * the same semantics as def->exec; NULL when it has none. */
soft_exec_fn soft_alu_fast(const struct insn *i);
soft_exec_fn soft_mov_fast(const struct insn *i);

#define REG_NONE 0xff

struct insn {
	/* The handler the run loop calls: def->exec, or a faster form of it
	 * that decode picked for these operands (same semantics). */
	soft_exec_fn exec;
	const struct opdef *def;
	uint64_t imm;
	int32_t disp;     /* displacements are at most 32 bits, sign-extended */
	uint16_t imm2;    /* far pointer selector, ENTER nesting level */
	uint8_t len;
	uint8_t opsize;   /* effective operand size: 1, 2, 4, 8 */
	uint8_t addrsize; /* 2, 4, 8 */
	uint8_t seg;      /* segment of the memory operand */
	uint8_t rep;      /* 0, 0xf3 or 0xf2 */
	bool lock;
	bool opsize_prefix; /* 0x66 seen */
	uint8_t map, opcode;
	uint8_t rex;      /* REX byte or 0 */
	bool has_modrm;
	uint8_t mod, reg, rm; /* reg and rm include REX.R / REX.B */
	uint8_t base, index, scale; /* memory operand; REG_NONE when absent */
	bool rip_relative;
};

#define INSN_MAX_LEN 15

/* Decoded blocks (decode_cache.c). */
#define BLOCK_MAX_INSNS 32
#define BLOCK_MAX_BYTES 256
struct soft_block {
	uint64_t key; /* guest-physical address | mode, 0 = empty */
	uint8_t ninsns;
	uint16_t nbytes;
	/* The page's code stamp when the block was decoded (vm/memory.h): the
	 * block holds while the stamp does, whoever writes the page. */
	const uint32_t *stamp_ptr;
	uint32_t stamp;
	/* Chaining: the blocks that ran after this one lately (two, for the
	 * two ways out of a conditional branch), and the RIP each started at.
	 * Only hints, checked on use: a link holds if it was made while
	 * cpu->code_gen was `gen` (same mode, CPL and translations), `to`
	 * still has `key` and its stamp still holds. Blocks live as long as
	 * the cache, so `to` never dangles. */
	struct soft_link {
		struct soft_block *to;
		uint64_t rip, key, gen;
	} link[2];
	uint8_t link_victim; /* the link to replace next */
	struct insn insn[BLOCK_MAX_INSNS];
};
struct soft_dcache;
struct soft_dcache *soft_dcache_new(void);
void soft_dcache_free(struct soft_dcache *c);
void soft_dcache_counts(const struct soft_dcache *c, uint64_t *hits, uint64_t *misses);
/* The block starting at RIP (valid until the next lookup), or NULL when the
 * instruction must be decoded on its own with soft_decode(): it crosses a
 * page, runs from MMIO, or does not decode (soft_decode raises the fault).
 * `prev` is the block that ran just before (NULL if unknown): its chain
 * link is tried first and then updated. May raise #PF/#GP for the fetch
 * itself. */
struct soft_block *soft_block_lookup(struct soft_cpu *cpu, struct soft_block *prev);
/* Where the instruction at RIP is: its host address and guest-physical
 * address; NULL for code in MMIO. May raise the fetch's #PF/#GP. */
const uint8_t *soft_fetch_pointer(struct soft_cpu *cpu, uint64_t *gpa);

/* Opcode lookup built once from the group tables, read-only afterwards:
 * for each (map, opcode), the range [first, first + count) of `defs`. */
struct soft_optable {
	uint16_t first[OPMAP_COUNT][256];
	uint8_t count[OPMAP_COUNT][256];
	unsigned ndefs;
	const struct opdef **defs;
};

struct soft_optable *soft_optable_build(void);
void soft_optable_free(struct soft_optable *t);

/* Fetches and decodes the instruction at cpu->s.rip; raises #UD/#GP/#PF. */
void soft_decode(struct soft_cpu *cpu, struct insn *i);
/* Decodes from a buffer with an explicit mode, for tests and fuzzing:
 * returns the length, -1 for an invalid or unimplemented opcode (#UD),
 * -2 when the buffer ends early, -3 for an instruction over 15 bytes. */
int soft_decode_buffer(const struct soft_optable *t, const uint8_t *buf, size_t len, bool long64,
		       bool def32, struct insn *i);

/* ---- memory (mem.c, mmu.c) ---- */
enum access { ACC_READ = 0, ACC_WRITE = 1, ACC_FETCH = 2 };

#define TLB_SIZE 512
struct tlb_entry {
	uint64_t tag;   /* linear page | cpu->tlb_tag; anything else = empty */
	uint8_t *host;  /* host address of the page, NULL for MMIO */
	uint64_t gpa;   /* guest-physical page */
};
#define TLB_VALID 1ULL
/* Bits 2-11 of a tag hold the TLB generation it was filled in: a flush of
 * the whole TLB (every CR3 write) moves to the next generation, so that
 * old entries stop matching without clearing 72 KiB; the arrays are only
 * cleared when the generations run out. */
#define TLB_GEN_SHIFT 2
#define TLB_GEN_MAX 1023u
/* Set in the tag of MMIO pages, so that no inline probe ever hits them:
 * accesses to MMIO always take the slow path to the VMM. */
#define TLB_MMIO 2ULL

struct tlb {
	/* Indexed [access][user]: a hit means the access is already permitted
	 * and A/D bits are already set. */
	struct tlb_entry e[3][2][TLB_SIZE];
};

void tlb_flush_all(struct soft_cpu *cpu);
void tlb_flush_nonglobal(struct soft_cpu *cpu);
void tlb_flush_page(struct soft_cpu *cpu, uint64_t la);
/* Code pages (vm/memory.h, code stamps) never have write entries in the
 * TLB, so that every store to them reaches the slow path. A page that
 * newly holds decoded code loses the write entries it had. */
bool tlb_page_has_code(const struct soft_cpu *cpu, uint64_t gpa_page);
void tlb_protect_code(struct soft_cpu *cpu, uint64_t gpa_page);

/* The TLB miss path: walks the page tables, raises #PF, fills the entry. */
const struct tlb_entry *mmu_fill(struct soft_cpu *cpu, uint64_t la, enum access acc,
				 bool supervisor);

/* Linear-address accesses of 1, 2, 4 or 8 bytes (any alignment, page
 * crossings handled); MMIO goes to the exit handler. */
uint64_t lin_read(struct soft_cpu *cpu, uint64_t la, unsigned size, enum access acc);
void lin_write(struct soft_cpu *cpu, uint64_t la, unsigned size, uint64_t v);
void lin_read_bytes(struct soft_cpu *cpu, uint64_t la, void *buf, size_t len);
void lin_write_bytes(struct soft_cpu *cpu, uint64_t la, const void *buf, size_t len);
/* Supervisor-privilege variants for implicit system accesses (GDT, IDT, TSS). */
uint64_t lin_read_sys(struct soft_cpu *cpu, uint64_t la, unsigned size);
void lin_write_sys(struct soft_cpu *cpu, uint64_t la, unsigned size, uint64_t v);

/* Segment:offset → linear address with limit/canonical checks (#GP/#SS). */
uint64_t seg_linear(struct soft_cpu *cpu, unsigned seg, uint64_t off, unsigned size,
		    enum access acc);
uint64_t seg_read(struct soft_cpu *cpu, unsigned seg, uint64_t off, unsigned size);
void seg_write(struct soft_cpu *cpu, unsigned seg, uint64_t off, unsigned size, uint64_t v);
void seg_read_bytes(struct soft_cpu *cpu, unsigned seg, uint64_t off, void *buf, size_t len);
void seg_write_bytes(struct soft_cpu *cpu, unsigned seg, uint64_t off, const void *buf, size_t len);

/* Guest-physical access (page walks, descriptor caches use linear). */
bool phys_read(struct soft_cpu *cpu, uint64_t gpa, void *buf, unsigned len);

/* ---- operands (mem.c) ---- */
/* The memory halves of op_rm_read/op_rm_write (below, inline). */
uint64_t op_rm_read_mem(struct soft_cpu *cpu, const struct insn *i, unsigned size);
void op_rm_write_mem(struct soft_cpu *cpu, const struct insn *i, unsigned size, uint64_t v);

static inline uint64_t size_mask(unsigned size)
{
	return size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
}

static inline int64_t sign_extend(uint64_t v, unsigned size)
{
	unsigned shift = 64 - size * 8;
	return (int64_t)(v << shift) >> shift;
}

/* Stack (mem.c): push/pop with the current stack size (SS.B or 64-bit). */
void stack_push(struct soft_cpu *cpu, unsigned size, uint64_t v);
uint64_t stack_pop(struct soft_cpu *cpu, unsigned size);
unsigned stack_addr_size(const struct soft_cpu *cpu);

/* ---- system (ops_system.c, exception.c) ---- */
/* Loads a segment register in the current mode (real: base = sel << 4;
 * protected: descriptor checks, #GP/#NP/#SS). */
void seg_load(struct soft_cpu *cpu, unsigned seg, uint16_t selector);
/* Raw descriptor for a selector (#vector(sel) outside the table), and its
 * decoded form (limit scaled by G). */
uint64_t desc_read(struct soft_cpu *cpu, uint16_t selector, uint8_t vector);
void desc_to_segment(uint64_t d, uint16_t selector, struct segment *s);
void soft_mode_changed(struct soft_cpu *cpu); /* recompute cached mode after CR0/EFER/CS change */
/* The CPUID table the soft CPU advertises: exactly what it implements. */
void soft_cpuid_init(struct soft_cpu *cpu, unsigned ncpus);
uint64_t soft_rdmsr(struct soft_cpu *cpu, uint32_t msr, bool *ok);
bool soft_wrmsr(struct soft_cpu *cpu, uint32_t msr, uint64_t v);

/* ---- the CPU ---- */
struct fpu_state {
	uint16_t fcw, fsw;
	uint8_t ftw;     /* abridged tag word as in FXSAVE */
	uint16_t fop;
	uint64_t fip, fdp;
	uint32_t mxcsr;
	uint8_t st[8][16]; /* 80-bit registers in 16-byte slots (FXSAVE layout) */
	uint8_t xmm[16][16];
};

struct soft_msrs {
	uint64_t star, lstar, cstar, sfmask, kernel_gs_base;
	uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
	uint64_t pat, misc_enable, tsc_aux, tsc_offset;
	uint64_t tsc_adjust; /* IA32_TSC_ADJUST: the sum of the guest's TSC moves */
	uint64_t mtrr_def_type;
	uint64_t mtrr_var[16];   /* IA32_MTRR_PHYSBASE0..PHYSMASK7 (0x200-0x20F) */
	uint64_t mtrr_fixed[11]; /* IA32_MTRR_FIX64K/16K/4K (0x250, 0x258-9, 0x268-F) */
};

struct soft_engine;

struct soft_cpu {
	struct cpu_state s; /* rflags here holds the non-lazy part */
	struct lazy_flags lf;
	uint64_t next_rip;
	uint64_t dr[8];
	uint64_t xcr0;
	struct fpu_state fpu;
	struct soft_msrs msr;

	/* Cached mode, recomputed by soft_mode_changed(). */
	bool long64;   /* 64-bit code segment in long mode */
	bool def32;    /* default operand/address size 32 (CS.D) outside 64-bit mode */
	bool paging;
	unsigned cpl;

	/* Fault plumbing. */
	jmp_buf jb;
	struct {
		uint8_t vector;
		bool has_error;
		uint32_t error_code;
		int depth; /* 0 = none, 1 = delivering, 2 = delivering #DF */
		uint8_t delivering; /* the vector being delivered at depth 1 */
	} exc;
	bool shutdown; /* triple fault */
	bool halted;
	bool interrupt_shadow; /* after STI / MOV SS: no interrupt before the next instruction */
	uint64_t icount;       /* instructions retired */
	uint64_t ud_count;     /* #UD raised for an opcode shrike does not implement */

	struct tlb tlb;
	/* (generation << TLB_GEN_SHIFT) | TLB_VALID: what a current tag holds,
	 * for global translations (tlb_gtag, kept by CR3 writes) and the
	 * others; tlb_tag_x is their XOR (the translator's probe uses it). */
	uint64_t tlb_tag, tlb_gtag, tlb_tag_x;
	uint64_t tlb_next_gen;
	/* Bumped by every TLB flush, whole or one page (what linear addresses
	 * map to may have changed), and when SSE becomes usable or not (CR0.TS
	 * and EM, CR4.OSFXSR): the translator's jump cache holds while it does
	 * not change. Unlike code_gen, mode and CPL changes leave it. */
	uint64_t map_gen;
	/* The page instructions are being fetched from, so that sequential
	 * fetches skip segmentation and the TLB (64-bit mode only). Cleared by
	 * every TLB flush and mode change. */
	uint64_t code_la;   /* linear page, or ~0 */
	uint8_t *code_host; /* its host address */
	uint64_t code_gpa;  /* its guest-physical address */
	/* Bumped whenever code_la is dropped and on every TLB flush: block
	 * chain links made under another generation are ignored. */
	uint64_t code_gen;
	struct insn scratch; /* decoded form of an uncacheable instruction */
	uint64_t block_gpa_page; /* page of the block being executed */
	bool block_abort;        /* leave the block after this instruction */
	bool string_bulk;        /* REP MOVS/STOS may do a page at once (not single-stepping) */
	struct soft_dcache *dcache;
	/* The irqchip may have an interrupt for this vCPU (set from any
	 * thread; translated code tests it on block entry). */
	atomic_bool irq_hint;
	/* Instructions translated code may still run before returning to the
	 * run loop (jit/); it goes negative when the budget is spent. */
	int32_t jit_budget;
	uint64_t jit_scratch; /* translated code keeps a value here across a call */
	const struct soft_optable *optable;
	const struct guest_mem *mem;
	struct soft_engine *engine;
	unsigned index;
	struct cpuid_table cpuid;

	/* I/O: a synchronous "exit" to the VMM's handler (same classification
	 * and statistics as a KVM exit); see soft_engine.c. */
	uint8_t io_buf[4096];
};

/* General registers by number with x86 sub-register rules: 8-bit numbers
 * 4-7 mean AH-BH unless a REX prefix is present; 32-bit writes zero the
 * upper half; 8/16-bit writes merge. Inline: they are on every
 * instruction's path. */
static inline uint64_t reg_read(struct soft_cpu *cpu, unsigned reg, unsigned size, bool rex)
{
	if (size == 1 && !rex && reg >= 4 && reg < 8)
		return (cpu->s.gpr[reg - 4] >> 8) & 0xff; /* AH, CH, DH, BH */
	return cpu->s.gpr[reg & 15] & size_mask(size);
}

static inline void reg_write(struct soft_cpu *cpu, unsigned reg, unsigned size, uint64_t v, bool rex)
{
	uint64_t *r;
	if (size == 1 && !rex && reg >= 4 && reg < 8) {
		r = &cpu->s.gpr[reg - 4];
		*r = (*r & ~0xff00ULL) | ((v & 0xff) << 8);
		return;
	}
	r = &cpu->s.gpr[reg & 15];
	switch (size) {
	case 1: *r = (*r & ~0xffULL) | (v & 0xff); break;
	case 2: *r = (*r & ~0xffffULL) | (v & 0xffff); break;
	case 4: *r = v & 0xffffffffULL; break;
	default: *r = v; break;
	}
}

/* The effective offset of the memory operand (no segment). */
static inline uint64_t insn_ea(struct soft_cpu *cpu, const struct insn *i)
{
	uint64_t ea = (uint64_t)(int64_t)i->disp;
	if (i->rip_relative)
		ea += cpu->s.rip + i->len;
	if (i->base != REG_NONE)
		ea += cpu->s.gpr[i->base];
	if (i->index != REG_NONE)
		ea += cpu->s.gpr[i->index] * i->scale;
	return ea & size_mask(i->addrsize);
}

/* ModRM operands: the register forms inline, memory out of line. */
static inline uint64_t op_rm_read(struct soft_cpu *cpu, const struct insn *i, unsigned size)
{
	if (i->mod == 3)
		return reg_read(cpu, i->rm, size, i->rex != 0);
	return op_rm_read_mem(cpu, i, size);
}

static inline void op_rm_write(struct soft_cpu *cpu, const struct insn *i, unsigned size, uint64_t v)
{
	if (i->mod == 3)
		reg_write(cpu, i->rm, size, v, i->rex != 0);
	else
		op_rm_write_mem(cpu, i, size, v);
}

static inline uint64_t op_reg_read(struct soft_cpu *cpu, const struct insn *i, unsigned size)
{
	return reg_read(cpu, i->reg, size, i->rex != 0);
}

static inline void op_reg_write(struct soft_cpu *cpu, const struct insn *i, unsigned size, uint64_t v)
{
	reg_write(cpu, i->reg, size, v, i->rex != 0);
}

/* Translates a linear address for an access by the current privilege
 * level (or as a supervisor access when `supervisor` is set: descriptor
 * table and TSS reads). Raises #PF. Returns the TLB entry. The hit path is
 * inline: an index, a compare. */
static inline const struct tlb_entry *mmu_translate(struct soft_cpu *cpu, uint64_t la,
						    enum access acc, bool supervisor)
{
	bool user = cpu->cpl == 3 && !supervisor;
	uint64_t page = la & ~0xfffULL;
	const struct tlb_entry *e = &cpu->tlb.e[acc][user][(page >> 12) % TLB_SIZE];
	if (__builtin_expect(e->tag == (page | cpu->tlb_tag) || e->tag == (page | cpu->tlb_gtag), 1))
		return e;
	return mmu_fill(cpu, la, acc, supervisor);
}

static inline bool soft_canonical(uint64_t la)
{
	return (uint64_t)((int64_t)(la << 16) >> 16) == la;
}

/* The common case of a data access, inline: 64-bit mode, within one page,
 * a TLB hit on RAM. Returns the host address, or NULL when the caller must
 * take the general path (which raises whatever fault applies). Exactly the
 * checks seg_linear() and mmu_translate() make for such an access: no
 * limits in 64-bit mode, a canonical address, and a hit in the TLB of this
 * access kind, which implies the permissions and A/D bits. */
static inline uint8_t *mem_fast(struct soft_cpu *cpu, unsigned seg, uint64_t off, unsigned size,
				enum access acc)
{
	if (__builtin_expect(!cpu->long64, 0))
		return NULL;
	uint64_t la = off;
	if (seg == SEG_FS || seg == SEG_GS)
		la += cpu->s.seg[seg].base;
	if ((la & 0xfff) > 0x1000 - size || !soft_canonical(la))
		return NULL;
	uint64_t page = la & ~0xfffULL;
	const struct tlb_entry *e = &cpu->tlb.e[acc][cpu->cpl == 3][(page >> 12) % TLB_SIZE];
	if (__builtin_expect((e->tag != (page | cpu->tlb_tag) && e->tag != (page | cpu->tlb_gtag)) ||
			     !e->host, 0))
		return NULL;
	return e->host + (la & 0xfff); /* a write hit is never to a code page (tlb_protect_code) */
}

/* Little-endian loads and stores of 1 to 8 bytes at a host address (any
 * alignment); the power-of-two sizes become single moves. */
static inline uint64_t host_load(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;
	switch (size) {
	case 1: return *p;
	case 2: { uint16_t w; memcpy(&w, p, 2); return w; }
	case 4: { uint32_t w; memcpy(&w, p, 4); return w; }
	case 8: memcpy(&v, p, 8); return v;
	default: memcpy(&v, p, size); return v; /* the pieces of a page-crossing access */
	}
}

static inline void host_store(uint8_t *p, unsigned size, uint64_t v)
{
	switch (size) {
	case 1: *p = (uint8_t)v; break;
	case 2: { uint16_t w = (uint16_t)v; memcpy(p, &w, 2); break; }
	case 4: { uint32_t w = (uint32_t)v; memcpy(p, &w, 4); break; }
	case 8: memcpy(p, &v, 8); break;
	default: memcpy(p, &v, size); break;
	}
}

/* Port and MMIO accesses leave the CPU through these (soft_engine.c). */
void soft_pio(struct soft_cpu *cpu, uint16_t port, unsigned size, bool write, uint8_t *data);
void soft_mmio(struct soft_cpu *cpu, uint64_t gpa, unsigned size, bool write, uint8_t *data);

/* Called by HLT. */
void soft_halt(struct soft_cpu *cpu);

/* Host monotonic time; the TSC (system.h, SOFT_TSC_HZ) is derived from it. */
uint64_t soft_now_ns(void);
/* MSRs owned by the interrupt controllers (APIC_BASE 0x1B, TSC_DEADLINE
 * 0x6E0): 0 when handled, -ENOENT when not theirs, other <0 for #GP. */
int soft_irqchip_msr_read(struct soft_cpu *cpu, uint32_t msr, uint64_t *value);
int soft_irqchip_msr_write(struct soft_cpu *cpu, uint32_t msr, uint64_t value);

/* STI and loads of SS hold off interrupts until after the next
 * instruction. The block ends here, so that the run loop inside a block
 * never has a shadow to honour (soft_engine.c). */
static inline void soft_set_interrupt_shadow(struct soft_cpu *cpu)
{
	cpu->interrupt_shadow = true;
	cpu->block_abort = true;
}

/* Instruction helpers shared by groups. */
static inline void set_next_rip(struct soft_cpu *cpu, uint64_t rip) { cpu->next_rip = rip; }
/* Branch target masked to the operand size outside 64-bit mode. */
void soft_branch(struct soft_cpu *cpu, const struct insn *i, uint64_t target);

static inline void flags_set(struct soft_cpu *cpu, enum lazy_op op, unsigned size, uint64_t res,
			     uint64_t src1, uint64_t src2)
{
	cpu->lf.op = (uint8_t)op;
	cpu->lf.size = (uint8_t)size;
	cpu->lf.res = res & size_mask(size);
	cpu->lf.src1 = src1 & size_mask(size);
	cpu->lf.src2 = src2 & size_mask(size);
}

/* flags_cond() with the commonest cases inline, for handlers that test a
 * constant condition: after CMP/SUB the conditions are comparisons of the
 * operands (B: unsigned a < b, L: signed a < b, Z: a == b); after a logic
 * operation CF = OF = 0; ZF and SF come from the result for every
 * recorded operation but multiplies (flags.c). */
static inline bool flags_cond_inline(struct soft_cpu *cpu, unsigned cc)
{
	const struct lazy_flags *f = &cpu->lf;
	bool r;
	if (f->op == LF_SUB) {
		switch (cc >> 1) {
		case 1: r = f->src1 < f->src2; break;
		case 2: r = f->src1 == f->src2; break;
		case 3: r = f->src1 <= f->src2; break;
		case 6: r = sign_extend(f->src1, f->size) < sign_extend(f->src2, f->size); break;
		case 7: r = sign_extend(f->src1, f->size) <= sign_extend(f->src2, f->size); break;
		default: return flags_cond(cpu, cc);
		}
	} else if (f->op == LF_LOGIC) {
		bool sf = (f->res >> (f->size * 8 - 1)) & 1;
		switch (cc >> 1) {
		case 0: case 1: r = false; break;
		case 2: case 3: r = f->res == 0; break;
		case 4: case 6: r = sf; break;
		case 7: r = f->res == 0 || sf; break;
		default: return flags_cond(cpu, cc);
		}
	} else if ((cc >> 1) == 2 && f->op != LF_NONE && f->op != LF_MUL && f->op != LF_IMUL &&
		   f->op != LF_HOST) {
		r = f->res == 0;
	} else {
		return flags_cond(cpu, cc);
	}
	return (cc & 1) ? !r : r;
}

/* Decode-time fast forms: handler name_<size><r|m> for 32/64-bit operands,
 * r for ModRM.mod == 3 and m for a memory operand, from one ALWAYS_INLINE
 * body(cpu, insn, size, reg); FAST_TABLE(name) is their [size][reg] table. */
#define FAST_VARIANTS(name, body)                                                                  \
	static void name##_4r(struct soft_cpu *cpu, struct insn *i) { body(cpu, i, 4, true); }     \
	static void name##_4m(struct soft_cpu *cpu, struct insn *i) { body(cpu, i, 4, false); }    \
	static void name##_8r(struct soft_cpu *cpu, struct insn *i) { body(cpu, i, 8, true); }     \
	static void name##_8m(struct soft_cpu *cpu, struct insn *i) { body(cpu, i, 8, false); }
#define FAST_TABLE(name) {{name##_4m, name##_4r}, {name##_8m, name##_8r}}

#endif
