/* Architectural vCPU state shared by every engine, so that state can move
 * between engines and be compared instruction by instruction. Field
 * meanings follow the Intel SDM vol. 3 (segment descriptor attributes,
 * control registers) and are the same as KVM's kvm_segment/kvm_sregs. */
#ifndef SHRIKE_ARCH_X86_CPU_STATE_H
#define SHRIKE_ARCH_X86_CPU_STATE_H

#include <stdint.h>

/* General-purpose registers in instruction-encoding order. */
enum gpr { GPR_RAX, GPR_RCX, GPR_RDX, GPR_RBX, GPR_RSP, GPR_RBP, GPR_RSI, GPR_RDI,
	   GPR_R8, GPR_R9, GPR_R10, GPR_R11, GPR_R12, GPR_R13, GPR_R14, GPR_R15,
	   GPR_COUNT };

/* Segment registers in instruction-encoding order, then LDTR and TR. */
enum seg_reg { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_LDTR, SEG_TR, SEG_COUNT };

struct segment {
	uint64_t base;
	uint32_t limit; /* in bytes (already scaled by G) */
	uint16_t selector;
	uint8_t type;   /* 4-bit descriptor type */
	uint8_t s;      /* 1 = code/data, 0 = system */
	uint8_t dpl;
	uint8_t present;
	uint8_t avl;
	uint8_t l;      /* 64-bit code */
	uint8_t db;     /* default operand size / big */
	uint8_t g;
	uint8_t unusable;
};

struct dtable {
	uint64_t base;
	uint16_t limit;
};

#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_EM (1ULL << 2)
#define CR0_TS (1ULL << 3)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_AM (1ULL << 18)
#define CR0_NW (1ULL << 29)
#define CR0_CD (1ULL << 30)
#define CR0_PG (1ULL << 31)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_PGE (1ULL << 7)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)
#define EFER_SCE (1ULL << 0)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define EFER_NXE (1ULL << 11)
#define RFLAGS_FIXED (1ULL << 1)
#define RFLAGS_IF (1ULL << 9)

struct cpu_state {
	uint64_t gpr[GPR_COUNT];
	uint64_t rip;
	uint64_t rflags;
	struct segment seg[SEG_COUNT];
	struct dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8;
	uint64_t efer;
	uint64_t apic_base;
};

#endif
