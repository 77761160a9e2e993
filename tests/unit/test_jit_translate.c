/* The soft engine's translator (engine/soft/jit) against its interpreter.
 *
 * Every scenario runs a small 64-bit guest twice through the public engine
 * interface, once with the translator (soft_interpret = false, no
 * single-stepping, the run loop's full budget) and once interpreted, and
 * checks both against the expected values and against each other: the
 * values the guest reports on a port, its registers, and for faults the
 * exception frame.
 *
 *   code pages    guest code rewritten by DMA (guest_mem_write from a port
 *                 handler) runs anew; the guest's own stores to the next
 *                 instruction, further ahead in its block, to a later block
 *                 of its page and to another page take effect at once (SDM
 *                 vol. 3 §11.6: a store to the code being executed is seen
 *                 by the following instructions), also through another
 *                 linear address of the page; pages without code keep
 *                 their stamps (vm/memory.h) through any write
 *   chaining      a loop chained to itself, rewritten while it runs by DMA
 *                 and by a store from another page
 *   jump cache    indirect calls and RETs to many targets across pages; two
 *                 address spaces mapping one linear page to different code
 *                 (CR3 writes), a remap by INVLPG, and one physical page at
 *                 two linear addresses (RIP-relative code tells them apart)
 *   flushes       thousands of functions through a small code cache; a
 *                 translation going stale just as the cache fills up
 *   exceptions    #PF and #GP in the middle of translated blocks: RIP of the
 *                 faulting instruction, register updates before it and none
 *                 after, and the arithmetic flags in the pushed RFLAGS (SDM
 *                 vol. 3 §6.5: faults are precise)
 *   interrupts    `jmp .` still returns to a kick and takes a LAPIC timer
 *                 interrupt, in bounded time; a pending interrupt is taken
 *                 in the one-instruction window POPF opens before a CLI
 *
 * Guest code is assembled here as position-independent blobs (top-level
 * asm: internal references are RIP-relative and resolved by the
 * assembler; other addresses are absolute guest constants) and copied to
 * CODE. The VM, its ports and the child processes the runs happen in are
 * in jit_harness.h; random code is in test_jit_random.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "engine/soft/jit/jit_internal.h" /* JIT_MAX_CODE: what one translation reserves */
#include "jit_harness.h"

#define FUNCS 0x220000ULL    /* generated functions, FUNC_SLOT bytes apart */
#define FUNC_SLOT 32u

/* How long a run may take before the watchdog kicks it (per test). */
static unsigned run_timeout_ms = RUN_TIMEOUT_MS;

/* ---- guest code ---- */

/* DMA: the function at CODE+0x1000, called directly and indirectly, is
 * rewritten by the port handler between rounds. */
__asm__(BLOB_BEGIN(g_dma)
	"	mov $4, %ebx\n"
	".Ldma_round:\n"
	"	mov $3, %r12d\n"
	".Ldma_call:\n"
	"	mov $0x201000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	call .Ldma_func\n"
	"	out %eax, $0xe0\n"
	"	dec %r12d\n"
	"	jnz .Ldma_call\n"
	"	mov %bl, %al\n"
	"	out %al, $0xe4\n"
	"	dec %ebx\n"
	"	jnz .Ldma_round\n"
	"	hlt\n"
	".org g_dma_start + 0x1000, 0xcc\n"
	".Ldma_func:\n"
	"	mov $0x1000, %eax\n"
	"	ret\n"
	BLOB_END(g_dma));
BLOB_DECL(g_dma);

/* Stores by the guest into its own code. */
__asm__(BLOB_BEGIN(g_smc)
	/* 1: the next instruction's immediate. */
	"	xor %ecx, %ecx\n"
	".Lsmc1:\n"
	"	mov %ecx, .Lsmc1_imm+1(%rip)\n"
	".Lsmc1_imm:\n"
	"	mov $0xdeadbeef, %eax\n"
	"	out %eax, $0xe0\n"
	"	inc %ecx\n"
	"	cmp $20, %ecx\n"
	"	jne .Lsmc1\n"
	/* 2: an immediate a few instructions ahead in the same block. */
	"	xor %ecx, %ecx\n"
	".Lsmc2:\n"
	"	lea 100(%rcx), %edx\n"
	"	mov %edx, .Lsmc2_imm+1(%rip)\n"
	"	add $1, %r8\n"
	"	add $2, %r9\n"
	".Lsmc2_imm:\n"
	"	mov $0xdeadbeef, %eax\n"
	"	out %eax, $0xe0\n"
	"	inc %ecx\n"
	"	cmp $5, %ecx\n"
	"	jne .Lsmc2\n"
	/* 3: the next instruction's opcode, ADD (01) and SUB (29) in turn. */
	"	xor %ecx, %ecx\n"
	"	mov $1000, %r10d\n"
	"	mov $7, %r11d\n"
	".Lsmc3:\n"
	"	mov %ecx, %eax\n"
	"	and $1, %eax\n"
	"	lea .Lsmc3_ops(%rip), %rdx\n"
	"	movzbl (%rdx,%rax), %eax\n"
	"	mov %al, .Lsmc3_insn+1(%rip)\n"
	".Lsmc3_insn:\n"
	"	add %r11, %r10\n" /* 4d 01 da */
	"	mov %r10d, %eax\n"
	"	out %eax, $0xe0\n"
	"	inc %ecx\n"
	"	cmp $6, %ecx\n"
	"	jne .Lsmc3\n"
	/* 4: a later block of the same page, reached by a chainable jump. */
	"	xor %ecx, %ecx\n"
	".Lsmc4:\n"
	"	mov %ecx, .Lsmc4_imm+1(%rip)\n"
	"	jmp .Lsmc4_b\n"
	"	.fill 40, 1, 0xcc\n"
	".Lsmc4_b:\n"
	".Lsmc4_imm:\n"
	"	mov $0xdeadbeef, %eax\n"
	"	out %eax, $0xe0\n"
	"	inc %ecx\n"
	"	cmp $5, %ecx\n"
	"	jne .Lsmc4\n"
	/* 5: another page (the function at +0x1000), by a plain store and by
	 * REP MOVSB of a whole new body. */
	"	xor %ecx, %ecx\n"
	".Lsmc5:\n"
	"	lea 200(%rcx), %eax\n"
	"	mov %eax, 0x201001\n"
	"	call .Lsmc5_func\n"
	"	out %eax, $0xe0\n"
	"	inc %ecx\n"
	"	cmp $5, %ecx\n"
	"	jne .Lsmc5\n"
	"	lea .Lsmc5_body(%rip), %rsi\n"
	"	mov $0x201000, %edi\n"
	"	mov $8, %ecx\n"
	"	rep movsb\n"
	"	call .Lsmc5_func\n"
	"	out %eax, $0xe0\n"
	/* 6: REP STOSB over the instructions that follow it in its block:
	 * they become NOPs (the stores take effect before the next
	 * instruction, SDM vol. 3 §11.6). */
	"	lea .Lsmc6_over(%rip), %rdi\n"
	"	mov $0x90, %eax\n"
	"	mov $10, %ecx\n"
	"	mov $0x77, %edx\n"
	"	rep stosb\n"
	".Lsmc6_over:\n"
	"	mov $0x55555555, %edx\n" /* 5 bytes */
	"	mov $0x66666666, %edx\n" /* 5 bytes */
	"	mov %edx, %eax\n"
	"	out %eax, $0xe0\n"
	"	hlt\n"
	".Lsmc3_ops:\n"
	"	.byte 0x01, 0x29\n"
	".Lsmc5_body:\n"
	"	mov $0x12345, %eax\n"
	"	ret\n"
	"	.byte 0xcc, 0xcc\n"
	".org g_smc_start + 0x1000, 0xcc\n"
	".Lsmc5_func:\n"
	"	mov $0xdeadbeef, %eax\n"
	"	ret\n"
	BLOB_END(g_smc));
BLOB_DECL(g_smc);

/* A loop chained to itself, rewritten while it runs: by DMA at ECX =
 * 50000, then (second loop) by a store from a function on another page. */
__asm__(BLOB_BEGIN(g_chain)
	"	xor %eax, %eax\n"
	"	mov $100000, %ecx\n"
	".Lchain1:\n"
	".globl g_chain_imm1\n"
	"	add $3, %eax\n"
	"g_chain_imm1 = . - 1\n"
	"	cmp $50000, %ecx\n"
	"	jne .Lchain1_next\n"
	"	mov %eax, %ebx\n"
	"	xor %eax, %eax\n"
	"	out %al, $0xe4\n"
	"	mov %ebx, %eax\n"
	".Lchain1_next:\n"
	"	dec %ecx\n"
	"	jnz .Lchain1\n"
	"	out %eax, $0xe0\n"
	"	xor %eax, %eax\n"
	"	mov $100000, %ecx\n"
	".Lchain2:\n"
	"	add $3, %eax\n"
	"	cmp $30000, %ecx\n"
	"	jne .Lchain2_next\n"
	"	call .Lchain2_patch\n"
	".Lchain2_next:\n"
	"	dec %ecx\n"
	"	jnz .Lchain2\n"
	"	out %eax, $0xe0\n"
	"	hlt\n"
	".org g_chain_start + 0x1000, 0xcc\n"
	".Lchain2_patch:\n"
	"	movb $7, .Lchain2+2(%rip)\n"
	"	ret\n"
	BLOB_END(g_chain));
BLOB_DECL(g_chain);
extern const uint8_t g_chain_imm1[];

/* Indirect calls through a table at DATA (filled by the test) to eight
 * functions on three pages, from two call sites; the last one calls
 * another, so RETs return to many places. */
#define JC_TARGETS 8
static const uint16_t jc_offsets[JC_TARGETS] = {0x800, 0x1000, 0x1100, 0x2000,
						0x2200, 0x900, 0x1f00, 0x2f00};
__asm__(BLOB_BEGIN(g_jc)
	"	xor %ebx, %ebx\n"
	"	xor %ecx, %ecx\n"
	".Ljc_loop:\n"
	"	mov %ecx, %eax\n"
	"	and $7, %eax\n"
	"	test $1, %ecx\n"
	"	jnz .Ljc_odd\n"
	"	call *0x300000(,%rax,8)\n"
	"	add %eax, %ebx\n"
	"	jmp .Ljc_next\n"
	".Ljc_odd:\n"
	"	mov 0x300000(,%rax,8), %rdx\n"
	"	call *%rdx\n"
	"	imul $3, %eax, %eax\n"
	"	add %eax, %ebx\n"
	".Ljc_next:\n"
	"	inc %ecx\n"
	"	cmp $1000, %ecx\n"
	"	jne .Ljc_loop\n"
	"	mov %ebx, %eax\n"
	"	out %eax, $0xe0\n"
	"	hlt\n"
	".org g_jc_start + 0x800, 0xcc\n"
	".Ljc_f0:\n"
	"	mov $1, %eax\n	ret\n"
	".org g_jc_start + 0x900, 0xcc\n"
	"	mov $20, %eax\n	ret\n"
	".org g_jc_start + 0x1000, 0xcc\n"
	"	mov $300, %eax\n	ret\n"
	".org g_jc_start + 0x1100, 0xcc\n"
	"	mov $4000, %eax\n	ret\n"
	".org g_jc_start + 0x1f00, 0xcc\n"
	"	mov $50000, %eax\n	ret\n"
	".org g_jc_start + 0x2000, 0xcc\n"
	"	mov $600000, %eax\n	ret\n"
	".org g_jc_start + 0x2200, 0xcc\n"
	"	mov $7000000, %eax\n	ret\n"
	".org g_jc_start + 0x2f00, 0xcc\n"
	"	call .Ljc_f0\n"
	"	add $80000000, %eax\n"
	"	ret\n"
	BLOB_END(g_jc));
BLOB_DECL(g_jc);
static const uint32_t jc_values[JC_TARGETS] = {1, 300, 4000, 600000, 7000000, 20, 50000, 80000001};

/* Linear 0x250000: in address space A physical 0x280000, in B 0x281000;
 * 0x260000 is 0x280000 in both. The code at 0x280000 returns its own
 * linear address (RIP-relative), the code at 0x281000 a constant. */
__asm__(BLOB_BEGIN(g_cr3)
	"	mov $10, %r12d\n"
	".Lcr3_loop:\n"
	"	mov $0x9000, %eax\n"
	"	mov %rax, %cr3\n"
	"	mov $0x250000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	mov $0x260000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	mov $0x104000, %eax\n"
	"	mov %rax, %cr3\n"
	"	mov $0x250000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	mov $0x260000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	dec %r12d\n"
	"	jnz .Lcr3_loop\n"
	/* Address space A again, then 0x250000 remapped to 0x281000. */
	"	mov $0x9000, %eax\n"
	"	mov %rax, %cr3\n"
	"	mov $0x250000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	movq $0x281003, 0x100280\n"
	"	invlpg 0x250000\n"
	"	mov $0x250000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	hlt\n"
	BLOB_END(g_cr3));
BLOB_DECL(g_cr3);
__asm__(BLOB_BEGIN(g_cr3_x)
	"	lea (%rip), %rax\n" /* this instruction's end: linear + 7 */
	"	jmp 1f\n"
	"	.fill 16, 1, 0xcc\n"
	"1:	ret\n"
	BLOB_END(g_cr3_x));
BLOB_DECL(g_cr3_x);
__asm__(BLOB_BEGIN(g_cr3_y)
	"	mov $0xbbbb, %eax\n"
	"	ret\n"
	BLOB_END(g_cr3_y));
BLOB_DECL(g_cr3_y);

/* A store through another linear address of the running code's page
 * (0x260000 and 0x250000 both map PHYS_X): the next instruction must
 * see it, as a store through the address it runs at would be seen. */
__asm__(BLOB_BEGIN(g_alias)
	"	xor %ecx, %ecx\n"
	".Lalias_loop:\n"
	"	mov $0x250000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	inc %ecx\n"
	"	cmp $10, %ecx\n"
	"	jne .Lalias_loop\n"
	"	hlt\n"
	BLOB_END(g_alias));
BLOB_DECL(g_alias);
__asm__(BLOB_BEGIN(g_alias_x)
	"	lea 7(%rcx,%rcx,2), %edx\n"
	"	mov %edx, 0x260000 + .Lalias_imm + 1 - g_alias_x_start\n"
	".Lalias_imm:\n"
	"	mov $0xdeadbeef, %eax\n"
	"	ret\n"
	BLOB_END(g_alias_x));
BLOB_DECL(g_alias_x);

/* Calls the generated functions at FUNCS in turn: EDI of them, R12D
 * rounds, the running EBX reported after each round. */
__asm__(BLOB_BEGIN(g_funcs)
	"	xor %ebx, %ebx\n"
	".Lfuncs_round:\n"
	"	xor %ecx, %ecx\n"
	".Lfuncs_call:\n"
	"	mov %ecx, %eax\n"
	"	shl $5, %eax\n"
	"	add $0x220000, %eax\n"
	"	call *%rax\n"
	"	inc %ecx\n"
	"	cmp %edi, %ecx\n"
	"	jne .Lfuncs_call\n"
	"	mov %ebx, %eax\n"
	"	out %eax, $0xe0\n"
	"	dec %r12d\n"
	"	jnz .Lfuncs_round\n"
	"	hlt\n"
	BLOB_END(g_funcs));
BLOB_DECL(g_funcs);

/* A big block B (62 native instructions at +0x1000, half of them with a
 * memory operand: several KiB of host code) called every round, then a
 * new generated function, then a checkpoint (where the test may make B's
 * page stale). B is the third translation made; when it is made again
 * after a flush, it is the first, and its old code address falls inside
 * its new code. */
#define STALE_ROUNDS 1500
#define STALE_ADDS 31
__asm__(BLOB_BEGIN(g_stale)
	"	xor %r12d, %r12d\n"
	"	jmp .Lstale_loop\n"
	".Lstale_loop:\n"
	"	call .Lstale_big\n"
	"	mov %r12d, %eax\n"
	"	shl $5, %eax\n"
	"	add $0x220000, %eax\n"
	"	call *%rax\n"
	"	inc %r12d\n"
	"	out %al, $0xe6\n"
	"	cmp $1500, %r12d\n"
	"	jne .Lstale_loop\n"
	"	mov %r13d, %eax\n"
	"	out %eax, $0xe0\n"
	"	mov 0x300000, %eax\n"
	"	out %eax, $0xe0\n"
	"	hlt\n"
	".org g_stale_start + 0x1000, 0xcc\n"
	".Lstale_big:\n" /* memory operands make it large: several KiB of host code */
	"	.rept 31\n"
	"	add $1, %r13\n"
	"	addq $1, 0x300000\n"
	"	.endr\n"
	"	ret\n"
	BLOB_END(g_stale));
BLOB_DECL(g_stale);

/* Precise faults. Each blob sets registers and flags, faults at
 * g_<blob>_at, and would change RBX and the flags after it. */
#define PF_PRELUDE                                                                         \
	"	mov $0x1111, %ebx\n"                                                        \
	"	mov $1, %eax\n"                                                             \
	"	mov $2, %ecx\n"                                                             \
	"	cmp %rcx, %rax\n" /* 1 - 2: CF SF AF PF set, ZF OF clear */                \
	"	lea 8(%rbx), %rbx\n"
/* A load; flags dead after it (R8 copy for the slow path). */
__asm__(BLOB_BEGIN(g_pf_load)
	PF_PRELUDE
	".globl g_pf_load_at\ng_pf_load_at:\n"
	"	mov 0x3f0000, %rdx\n"
	"	mov $0x2222, %ebx\n"
	"	xor %eax, %eax\n"
	"	hlt\n"
	BLOB_END(g_pf_load));
BLOB_DECL(g_pf_load);
extern const uint8_t g_pf_load_at[];
/* A load; flags live after it (in memory before the probe). */
__asm__(BLOB_BEGIN(g_pf_live)
	PF_PRELUDE
	".globl g_pf_live_at\ng_pf_live_at:\n"
	"	mov 0x3f0000, %rdx\n"
	"	mov $0x2222, %ebx\n"
	"	hlt\n"
	BLOB_END(g_pf_live));
BLOB_DECL(g_pf_live);
extern const uint8_t g_pf_live_at[];
/* A store. */
__asm__(BLOB_BEGIN(g_pf_store)
	PF_PRELUDE
	".globl g_pf_store_at\ng_pf_store_at:\n"
	"	mov %rax, 0x3f0008\n"
	"	mov $0x2222, %ebx\n"
	"	xor %eax, %eax\n"
	"	hlt\n"
	BLOB_END(g_pf_store));
BLOB_DECL(g_pf_store);
extern const uint8_t g_pf_store_at[];
/* A read-modify-write ALU instruction, which writes the flags itself. */
__asm__(BLOB_BEGIN(g_pf_alu)
	PF_PRELUDE
	".globl g_pf_alu_at\ng_pf_alu_at:\n"
	"	add %rax, 0x3f0010\n"
	"	mov $0x2222, %ebx\n"
	"	hlt\n"
	BLOB_END(g_pf_alu));
BLOB_DECL(g_pf_alu);
extern const uint8_t g_pf_alu_at[];
/* An instruction the translator runs through its handler (XCHG). */
__asm__(BLOB_BEGIN(g_pf_handler)
	PF_PRELUDE
	".globl g_pf_handler_at\ng_pf_handler_at:\n"
	"	xchg %rax, 0x3f0018\n"
	"	mov $0x2222, %ebx\n"
	"	xor %eax, %eax\n"
	"	hlt\n"
	BLOB_END(g_pf_handler));
BLOB_DECL(g_pf_handler);
extern const uint8_t g_pf_handler_at[];
/* INC keeps CF (set by STC, a handler: the flags are in memory); the
 * fault after it must push CF = 1. */
__asm__(BLOB_BEGIN(g_pf_inc)
	"	mov $0x1111, %ebx\n"
	"	stc\n"
	"	inc %rbx\n" /* 0x1112: CF kept, the rest from the result (all clear) */
	".globl g_pf_inc_at\ng_pf_inc_at:\n"
	"	mov 0x3f0000, %rdx\n"
	"	mov $0x2222, %ebx\n"
	"	xor %eax, %eax\n"
	"	hlt\n"
	BLOB_END(g_pf_inc));
BLOB_DECL(g_pf_inc);
extern const uint8_t g_pf_inc_at[];
/* The same with DEC after a CMP that left CF clear and a handler (CMC)
 * that sets it. */
__asm__(BLOB_BEGIN(g_pf_dec)
	"	mov $0x1111, %ebx\n"
	"	cmp %rbx, %rbx\n"
	"	cmc\n"
	"	dec %rbx\n" /* 0x1110: CF kept (1) */
	".globl g_pf_dec_at\ng_pf_dec_at:\n"
	"	mov %rbx, 0x3f0000\n"
	"	mov $0x2222, %ebx\n"
	"	xor %eax, %eax\n"
	"	hlt\n"
	BLOB_END(g_pf_dec));
BLOB_DECL(g_pf_dec);
extern const uint8_t g_pf_dec_at[];
/* A loop chained to itself walks RSI into the unmapped page. */
__asm__(BLOB_BEGIN(g_pf_loop)
	"	mov $0x3efe00, %esi\n"
	"	xor %ecx, %ecx\n"
	"	mov $0x1111, %ebx\n"
	".globl g_pf_loop_at\n"
	"1:\n"
	"g_pf_loop_at:\n"
	"	mov (%rsi), %rax\n"
	"	add $0x80, %rsi\n"
	"	inc %ecx\n"
	"	cmp $1000, %ecx\n"
	"	jne 1b\n"
	"	hlt\n"
	BLOB_END(g_pf_loop));
BLOB_DECL(g_pf_loop);
extern const uint8_t g_pf_loop_at[];
/* RET to a non-canonical address: #GP with RIP and RSP of the RET. */
__asm__(BLOB_BEGIN(g_gp_ret)
	"	mov $0x1111, %ebx\n"
	"	mov $0x8000000000001000, %rax\n"
	"	push %rax\n"
	"	mov $5, %eax\n"
	"	cmp $7, %eax\n" /* 5 - 7: CF SF PF set */
	"	lea 1(%rbx), %rbx\n"
	".globl g_gp_ret_at\ng_gp_ret_at:\n"
	"	ret\n"
	BLOB_END(g_gp_ret));
BLOB_DECL(g_gp_ret);
extern const uint8_t g_gp_ret_at[];

/* Interrupts: `jmp .` with interrupts off (stopped by a kick), a counting
 * loop (likewise), and the LAPIC timer (vector 0x40, one-shot) while in
 * `jmp .` with interrupts on. */
__asm__(BLOB_BEGIN(g_spin)
	"1:	jmp 1b\n"
	BLOB_END(g_spin));
BLOB_DECL(g_spin);
__asm__(BLOB_BEGIN(g_count)
	"	xor %eax, %eax\n"
	"1:	add $1, %rax\n"
	"	jmp 1b\n"
	BLOB_END(g_count));
BLOB_DECL(g_count);
__asm__(BLOB_BEGIN(g_timer)
	"	mov $0xfee00000, %esi\n"
	"	orl $0x100, 0xf0(%rsi)\n"   /* SVR: software enable */
	"	movl $0xb, 0x3e0(%rsi)\n"   /* divide by 1 */
	"	movl $0x40, 0x320(%rsi)\n"  /* LVT timer: one-shot, vector 0x40 */
	"	movl $20000, 0x380(%rsi)\n" /* initial count */
	"	sti\n"
	".globl g_timer_at\ng_timer_at:\n"
	"1:	jmp 1b\n"
	BLOB_END(g_timer));
BLOB_DECL(g_timer);
extern const uint8_t g_timer_at[];

/* A pending interrupt (the LAPIC timer, fired while interrupts are off)
 * must be taken when POPF sets IF: POPF has no interrupt shadow, so the
 * window between it and the CLI is an instruction boundary with IF = 1
 * (SDM vol. 3 §6.8.1; vol. 2 POPF, STI). */
__asm__(BLOB_BEGIN(g_popf)
	"	mov $0xfee00000, %esi\n"
	"	orl $0x100, 0xf0(%rsi)\n"
	"	movl $0xb, 0x3e0(%rsi)\n"
	"	movl $0x40, 0x320(%rsi)\n"
	"	movl $1000, 0x380(%rsi)\n"
	"1:	pushq $0x202\n"
	"	popfq\n"
	".globl g_popf_at\ng_popf_at:\n"
	"	nop\n"
	"	cli\n"
	"	jmp 1b\n"
	BLOB_END(g_popf));
BLOB_DECL(g_popf);
extern const uint8_t g_popf_at[];

/* Stamps: stores to data pages by the guest and by DMA. */
__asm__(BLOB_BEGIN(g_stamps)
	"	mov $0x1234, %eax\n"
	"	mov %eax, 0x300000\n"
	"	mov %eax, 0x300800\n"
	"	xor %eax, %eax\n"
	"	out %al, $0xe4\n"
	"	mov $0x201000, %eax\n"
	"	call *%rax\n"
	"	out %eax, $0xe0\n"
	"	hlt\n"
	".org g_stamps_start + 0x1000, 0xcc\n"
	"	mov $0x4321, %eax\n"
	"	ret\n"
	BLOB_END(g_stamps));
BLOB_DECL(g_stamps);

/* ---- both modes ---- */

/* What one run produced, for comparing the two modes. */
struct outcome {
	enum vcpu_exit_kind kind;
	struct cpu_state st;
	uint32_t log[LOG_MAX];
	unsigned nlog;
	uint64_t frame[6]; /* the stack from RSP after a fault */
	struct engine_vcpu_stats stats;
	bool checkpoint_fired;
};

typedef void (*setup_fn)(struct machine *m);

struct mode_run {
	bool interpret;
	uint64_t cache;
	setup_fn setup;
	struct outcome *o; /* shared with the parent */
};

static void run_mode_child(void *arg)
{
	struct mode_run *r = arg;
	struct outcome *o = r->o;
	struct machine *m = machine_new(r->interpret, r->cache);
	r->setup(m);
	machine_sync(m);
	o->kind = machine_run(m, run_timeout_ms);
	o->st = m->st;
	o->nlog = m->nlog;
	memcpy(o->log, m->log, sizeof(o->log));
	for (unsigned k = 0; k < 6; k++)
		o->frame[k] = get64(m, (m->st.gpr[GPR_RSP] & ~7ULL) + 8 * k);
	machine_stats(m, &o->stats);
	o->checkpoint_fired = m->checkpoint_fired;
	machine_free(m);
}

static void run_mode(bool interpret, uint64_t cache, setup_fn setup, struct outcome *o)
{
	struct mode_run r = {.interpret = interpret, .cache = cache, .setup = setup, .o = o};
	memset(o, 0, sizeof(*o));
	run_isolated(run_mode_child, &r, interpret ? "interpreter run" : "translator run");
}

static const char *const gpr_names[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
					  "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};

/* The translator's run must end as the interpreter's: exit, RIP, every
 * register, the arithmetic flags and IF, and the same log. */
static void compare_modes(const struct outcome *jit, const struct outcome *interp)
{
	assert_int_equal(jit->kind, interp->kind);
	for (unsigned r = 0; r < 16; r++)
		if (jit->st.gpr[r] != interp->st.gpr[r]) {
			print_error("%s: translator %#llx, interpreter %#llx\n", gpr_names[r],
				    (unsigned long long)jit->st.gpr[r],
				    (unsigned long long)interp->st.gpr[r]);
			fail();
		}
	assert_int_equal(jit->st.rip, interp->st.rip);
	if ((jit->st.rflags ^ interp->st.rflags) & (FLAGS_ARITH | FLAG_IF)) {
		print_error("RFLAGS: translator %#llx, interpreter %#llx\n",
			    (unsigned long long)jit->st.rflags, (unsigned long long)interp->st.rflags);
		fail();
	}
	assert_int_equal(jit->st.cr2, interp->st.cr2);
	assert_int_equal(jit->nlog, interp->nlog);
	for (unsigned k = 0; k < jit->nlog; k++)
		if (jit->log[k] != interp->log[k]) {
			print_error("log[%u]: translator %#x, interpreter %#x\n", k, jit->log[k],
				    interp->log[k]);
			fail();
		}
	/* Neither run is vacuous: the translator made and ran blocks; the
	 * interpreter had none. */
	assert_true(jit->stats.jit.enabled);
	assert_true(jit->stats.jit.blocks > 0);
	assert_true(jit->stats.jit.dispatches > 0);
	assert_false(interp->stats.jit.enabled);
}

/* Two outcomes in memory the children write. */
static struct outcome *outcome_pair(void)
{
	void *p = mmap(NULL, 2 * sizeof(struct outcome), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

static void outcome_free(struct outcome *o) { munmap(o, 2 * sizeof(*o)); }

/* Runs setup in both modes (o[0]: translator, o[1]: interpreter), compares. */
static struct outcome *run_both(setup_fn setup, uint64_t cache)
{
	struct outcome *o = outcome_pair();
	assert_non_null(o);
	run_mode(false, cache, setup, &o[0]);
	run_mode(true, cache, setup, &o[1]);
	compare_modes(&o[0], &o[1]);
	return o;
}

static void assert_log(const struct outcome *o, const uint32_t *want, unsigned n)
{
	assert_int_equal(o->nlog, n);
	for (unsigned k = 0; k < n; k++)
		if (o->log[k] != want[k]) {
			print_error("log[%u]: %#x, expected %#x\n", k, o->log[k], want[k]);
			fail();
		}
}

/* ---- code pages ---- */

/* `mov $value, %eax; ret` */
static void dma_body(struct dma *d, uint64_t gpa, uint32_t value)
{
	d->gpa = gpa;
	d->bytes[0] = 0xb8;
	memcpy(&d->bytes[1], &value, 4);
	d->bytes[5] = 0xc3;
	d->len = 6;
}

static void setup_dma(struct machine *m)
{
	PUT_BLOB(m, CODE, g_dma);
	for (unsigned k = 1; k <= 4; k++)
		dma_body(&m->dma[k], CODE + 0x1000, 0x100 * k + 7);
}

static void test_dma_rewrite(void **state)
{
	(void)state;
	struct outcome *o = run_both(setup_dma, 0);
	uint32_t want[24];
	unsigned n = 0;
	static const uint32_t per_round[4] = {0x1000, 0x407, 0x307, 0x207};
	for (unsigned r = 0; r < 4; r++)
		for (unsigned c = 0; c < 6; c++)
			want[n++] = per_round[r];
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_log(&o[0], want, n);
	assert_true(o[0].stats.jit.invalidated > 0 || o[0].stats.jit.blocks > 8);
	outcome_free(o);
}

static void setup_smc(struct machine *m)
{
	PUT_BLOB(m, CODE, g_smc);
	m->st.gpr[GPR_R8] = 0;
	m->st.gpr[GPR_R9] = 0;
}

static void test_smc_guest_stores(void **state)
{
	(void)state;
	struct outcome *o = run_both(setup_smc, 0);
	uint32_t want[64];
	unsigned n = 0;
	for (uint32_t i = 0; i < 20; i++) /* 1: the next instruction */
		want[n++] = i;
	for (uint32_t i = 0; i < 5; i++) /* 2: ahead in the block */
		want[n++] = 100 + i;
	uint32_t r10 = 1000; /* 3: ADD, SUB, ADD, ... of 7 */
	for (uint32_t i = 0; i < 6; i++) {
		r10 = (i & 1) ? r10 - 7 : r10 + 7;
		want[n++] = r10;
	}
	for (uint32_t i = 0; i < 5; i++) /* 4: a later block */
		want[n++] = i;
	for (uint32_t i = 0; i < 5; i++) /* 5: another page */
		want[n++] = 200 + i;
	want[n++] = 0x12345; /* ... a new body by REP MOVSB */
	want[n++] = 0x77;    /* 6: REP STOSB turned the moves to EDX into NOPs */
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_log(&o[0], want, n);
	assert_int_equal(o[0].st.gpr[GPR_R8], 5);
	assert_int_equal(o[0].st.gpr[GPR_R9], 10);
	outcome_free(o);
}

/* Writes by the guest and by DMA to pages without code leave their stamps
 * as they were; a write to a code page changes its stamp once (until code
 * is decoded from it again). */
static uint32_t stamp_of(struct machine *m, uint64_t gpa)
{
	uint32_t *s = guest_mem_code_stamp(&m->mem, gpa);
	CHECK(s != NULL);
	return __atomic_load_n(s, __ATOMIC_ACQUIRE);
}

static void check_stamps(void *arg)
{
	bool interpret = *(const bool *)arg;
	struct machine *m = machine_new(interpret, 0);
	PUT_BLOB(m, CODE, g_stamps);
	m->dma[0].gpa = DATA + 0x1000;
	m->dma[0].len = 8;
	memset(m->dma[0].bytes, 0x5a, 8);
	uint32_t data0 = stamp_of(m, DATA), data1 = stamp_of(m, DATA + 0x1000);
	uint32_t stack = stamp_of(m, STACK_TOP - 8);
	CHECK_EQ(machine_run(m, RUN_TIMEOUT_MS), VCPU_EXIT_HLT);
	CHECK_EQ(m->nlog, 1);
	CHECK_EQ(m->log[0], 0x4321);
	CHECK_EQ(stamp_of(m, DATA), data0);
	CHECK_EQ(stamp_of(m, DATA + 0x1000), data1);
	CHECK_EQ(stamp_of(m, STACK_TOP - 8), stack);
	CHECK(!(stamp_of(m, DATA) & GUEST_CODE_BIT));

	/* The code page: marked; a DMA write changes the stamp and drops the
	 * mark; a second write finds no code and changes nothing. */
	uint32_t code = stamp_of(m, CODE + 0x1000);
	CHECK(code & GUEST_CODE_BIT);
	uint8_t b = 0x90;
	put(m, CODE + 0x1800, &b, 1);
	uint32_t after = stamp_of(m, CODE + 0x1000);
	CHECK(after != code);
	CHECK(!(after & GUEST_CODE_BIT));
	put(m, CODE + 0x1801, &b, 1);
	CHECK_EQ(stamp_of(m, CODE + 0x1000), after);
	/* Reading is no write. */
	uint8_t buf[16];
	CHECK_EQ(guest_mem_read(&m->mem, DATA, buf, sizeof(buf)), 0);
	CHECK_EQ(stamp_of(m, DATA), data0);
	machine_free(m);
}

static void test_stamps_of_data_pages(void **state)
{
	(void)state;
	bool interpret = false;
	run_isolated(check_stamps, &interpret, "translator run");
	interpret = true;
	run_isolated(check_stamps, &interpret, "interpreter run");
}

/* ---- chaining ---- */

static void setup_chain(struct machine *m)
{
	PUT_BLOB(m, CODE, g_chain);
	m->dma[0].gpa = CODE + BLOB_OFF(g_chain, g_chain_imm1);
	m->dma[0].bytes[0] = 5;
	m->dma[0].len = 1;
}

static void test_chain_rewritten_loop(void **state)
{
	(void)state;
	struct outcome *o = run_both(setup_chain, 0);
	/* ECX from 100000 down: ADD 3 while ECX >= 50000 (50001 times), then
	 * ADD 5 (49999 times). The second loop: ADD 3 while ECX >= 30000
	 * (70001 times), then ADD 7 (29999 times). */
	const uint32_t want[2] = {3 * 50001 + 5 * 49999, 3 * 70001 + 7 * 29999};
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_log(&o[0], want, 2);
	assert_true(o[0].stats.jit.chained > 0);
	assert_true(o[0].stats.jit.invalidated > 0);
	/* Chained: far fewer returns to the dispatcher than loop iterations. */
	assert_true(o[0].stats.jit.dispatches < 20000);
	outcome_free(o);
}

/* ---- the jump cache ---- */

static void setup_jc(struct machine *m)
{
	PUT_BLOB(m, CODE, g_jc);
	for (unsigned k = 0; k < JC_TARGETS; k++)
		put64(m, DATA + 8 * k, CODE + jc_offsets[k]);
}

static void test_jump_cache_targets(void **state)
{
	(void)state;
	struct outcome *o = run_both(setup_jc, 0);
	uint32_t sum = 0;
	for (uint32_t i = 0; i < 1000; i++) {
		uint32_t v = jc_values[i & 7];
		sum += (i & 1) ? 3 * v : v;
	}
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_log(&o[0], &sum, 1);
	outcome_free(o);
}

static void setup_cr3(struct machine *m)
{
	PUT_BLOB(m, CODE, g_cr3);
	PUT_BLOB(m, PHYS_X, g_cr3_x);
	PUT_BLOB(m, PHYS_Y, g_cr3_y);
}

static void test_jump_cache_cr3(void **state)
{
	(void)state;
	struct outcome *o = run_both(setup_cr3, 0);
	uint32_t want[64];
	unsigned n = 0;
	for (unsigned r = 0; r < 10; r++) {
		want[n++] = (uint32_t)LIN_X + 7;     /* A: 0x250000 is X, which tells where it runs */
		want[n++] = (uint32_t)LIN_ALIAS + 7; /* A: X again at its other address */
		want[n++] = 0xbbbb;                  /* B: 0x250000 is Y */
		want[n++] = (uint32_t)LIN_ALIAS + 7; /* B: 0x260000 is still X */
	}
	want[n++] = (uint32_t)LIN_X + 7; /* A again */
	want[n++] = 0xbbbb;              /* remapped by a PTE write and INVLPG */
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_log(&o[0], want, n);
	outcome_free(o);
}

static void setup_alias(struct machine *m)
{
	PUT_BLOB(m, CODE, g_alias);
	PUT_BLOB(m, PHYS_X, g_alias_x);
}

static void test_smc_through_alias(void **state)
{
	(void)state;
	struct outcome *o = run_both(setup_alias, 0);
	uint32_t want[10];
	for (uint32_t i = 0; i < 10; i++)
		want[i] = 3 * i + 7;
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_log(&o[0], want, 10);
	outcome_free(o);
}

/* ---- flushes ---- */

#define NFUNCS 2000

/* Function k: EBX = 3 * (EBX + k) + 1. */
static void put_funcs(struct machine *m, unsigned n)
{
	for (uint32_t k = 0; k < n; k++) {
		uint8_t f[FUNC_SLOT];
		memset(f, 0xcc, sizeof(f));
		f[0] = 0xb8; /* mov $k, %eax */
		memcpy(&f[1], &k, 4);
		f[5] = 0x01; /* add %eax, %ebx */
		f[6] = 0xc3;
		f[7] = 0x8d; /* lea 1(%rbx,%rbx,2), %ebx */
		f[8] = 0x5c;
		f[9] = 0x5b;
		f[10] = 0x01;
		f[11] = 0xc3; /* ret */
		put(m, FUNCS + (uint64_t)k * FUNC_SLOT, f, sizeof(f));
	}
}

static uint32_t funcs_expected(unsigned n, unsigned rounds, uint32_t *per_round)
{
	uint32_t ebx = 0;
	for (unsigned r = 0; r < rounds; r++) {
		for (uint32_t k = 0; k < n; k++)
			ebx = 3 * (ebx + k) + 1;
		per_round[r] = ebx;
	}
	return ebx;
}

static void setup_funcs(struct machine *m)
{
	PUT_BLOB(m, CODE, g_funcs);
	put_funcs(m, NFUNCS);
	m->st.gpr[GPR_RDI] = NFUNCS;
	m->st.gpr[GPR_R12] = 3;
}

static void check_funcs_under_pressure(uint64_t cache)
{
	struct outcome *o = outcome_pair();
	run_mode(false, cache, setup_funcs, &o[0]);
	run_mode(true, cache, setup_funcs, &o[1]);
	if (o[0].stats.jit.blocks == 0) {
		print_error("a %llu KiB cache: no translation made, %llu flushes (each translation "
			    "reserves %u KiB)\n",
			    (unsigned long long)(cache >> 10), (unsigned long long)o[0].stats.jit.flushes,
			    JIT_MAX_CODE >> 10);
		fail();
	}
	compare_modes(&o[0], &o[1]);
	uint32_t want[3];
	funcs_expected(NFUNCS, 3, want);
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_log(&o[0], want, 3);
	/* The cache was too small for the working set: flushed, and still
	 * translating (not falling back to the interpreter for good). */
	assert_true(o[0].stats.jit.flushes > 0);
	assert_true(o[0].stats.jit.blocks > NFUNCS);
	assert_true(o[0].stats.jit.cache_size <= cache);
	outcome_free(o);
}

static void test_flush_under_pressure_256k(void **state)
{
	(void)state;
	check_funcs_under_pressure(256u << 10);
}

/* The smallest cache the command line allows (--soft-jit-cache 64K). */
static void test_flush_under_pressure_64k(void **state)
{
	(void)state;
	check_funcs_under_pressure(64u << 10);
}

/* A translation found stale just when the cache is full: the dispatcher
 * flushes while making its replacement, and the stale one (made in the
 * flushed generation) must not be touched afterwards: its old code
 * address now lies inside the replacement. */
static void stale_checkpoint(struct machine *m)
{
	if (m->checkpoint_fired || m->interpret)
		return;
	struct engine_vcpu_stats s;
	machine_stats(m, &s);
	size_t next = (s.jit.cache_used + JIT_CACHE_ALIGN - 1) & ~(size_t)(JIT_CACHE_ALIGN - 1);
	if (next + JIT_MAX_CODE <= s.jit.cache_size)
		return;
	/* The next translation cannot fit: make B stale (a byte on its page
	 * that is no code), so that B's replacement is that translation. */
	uint8_t b = 0xcc;
	put(m, CODE + 0x1ff0, &b, 1);
	m->checkpoint_fired = true;
	m->checkpoint_at = m->checkpoints;
}

static void setup_stale(struct machine *m)
{
	PUT_BLOB(m, CODE, g_stale);
	put_funcs(m, STALE_ROUNDS);
	m->checkpoint = stale_checkpoint;
}

static void test_stale_translation_at_flush(void **state)
{
	(void)state;
	struct outcome *o = run_both(setup_stale, 128u << 10);
	const uint32_t want[2] = {STALE_ROUNDS * STALE_ADDS, STALE_ROUNDS * STALE_ADDS};
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_true(o[0].checkpoint_fired);
	assert_log(&o[0], want, 2);
	assert_true(o[0].stats.jit.flushes > 0);
	outcome_free(o);
}

/* ---- precise exceptions ---- */

#define PF_HANDLER_END (HANDLERS + 16 * EXC_PF + 1)
#define GP_HANDLER_END (HANDLERS + 16 * EXC_GP + 1)

static const uint8_t *pf_blob_start, *pf_blob_end;

static void setup_fault_blob(struct machine *m)
{
	put(m, CODE, pf_blob_start, (size_t)(pf_blob_end - pf_blob_start));
	m->st.gpr[GPR_RDX] = 0x5555;
}

static struct outcome *run_fault_blob(const uint8_t *start, const uint8_t *end)
{
	pf_blob_start = start;
	pf_blob_end = end;
	struct outcome *o = run_both(setup_fault_blob, 0);
	/* The exception frames agree (error code, RIP, CS, RFLAGS, RSP, SS). */
	for (unsigned k = 0; k < 6; k++)
		if (o[0].frame[k] != o[1].frame[k]) {
			print_error("frame[%u]: translator %#llx, interpreter %#llx\n", k,
				    (unsigned long long)o[0].frame[k], (unsigned long long)o[1].frame[k]);
			fail();
		}
	return o;
}

/* A #PF at CODE + at_off: the handler ran, the frame names the faulting
 * instruction, RFLAGS as `flags_set` / `flags_clear` say. */
static void assert_pf(const struct outcome *o, uint64_t at_off, uint64_t err, uint64_t cr2,
		      uint64_t flags_set, uint64_t flags_clear)
{
	assert_int_equal(o->kind, VCPU_EXIT_HLT);
	assert_int_equal(o->st.rip, PF_HANDLER_END);
	assert_int_equal(o->frame[0], err);
	assert_int_equal(o->frame[1], CODE + at_off);
	assert_int_equal(o->st.cr2, cr2);
	if ((o->frame[3] & flags_set) != flags_set || (o->frame[3] & flags_clear)) {
		print_error("pushed RFLAGS %#llx: expected %#llx set and %#llx clear\n",
			    (unsigned long long)o->frame[3], (unsigned long long)flags_set,
			    (unsigned long long)flags_clear);
		fail();
	}
}

#define CMP_1_2_SET (FLAG_CF | FLAG_SF | FLAG_AF | FLAG_PF)
#define CMP_1_2_CLEAR (FLAG_ZF | FLAG_OF | FLAG_IF)
#define PF_NOT_PRESENT_READ 0
#define PF_NOT_PRESENT_WRITE 2

static void assert_prelude_done(const struct outcome *o)
{
	assert_int_equal(o->st.gpr[GPR_RBX], 0x1119); /* the LEA before the fault, not the MOV after */
	assert_int_equal(o->st.gpr[GPR_RAX], 1);
	assert_int_equal(o->st.gpr[GPR_RCX], 2);
	assert_int_equal(o->st.gpr[GPR_RDX], 0x5555);
}

static void test_fault_load_flags_dead(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_pf_load_start, g_pf_load_end);
	assert_pf(&o[0], BLOB_OFF(g_pf_load, g_pf_load_at), PF_NOT_PRESENT_READ, UNMAPPED,
		  CMP_1_2_SET, CMP_1_2_CLEAR);
	assert_prelude_done(&o[0]);
	outcome_free(o);
}

static void test_fault_load_flags_live(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_pf_live_start, g_pf_live_end);
	assert_pf(&o[0], BLOB_OFF(g_pf_live, g_pf_live_at), PF_NOT_PRESENT_READ, UNMAPPED,
		  CMP_1_2_SET, CMP_1_2_CLEAR);
	assert_prelude_done(&o[0]);
	outcome_free(o);
}

static void test_fault_store(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_pf_store_start, g_pf_store_end);
	assert_pf(&o[0], BLOB_OFF(g_pf_store, g_pf_store_at), PF_NOT_PRESENT_WRITE, UNMAPPED + 8,
		  CMP_1_2_SET, CMP_1_2_CLEAR);
	assert_prelude_done(&o[0]);
	outcome_free(o);
}

static void test_fault_alu_memory(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_pf_alu_start, g_pf_alu_end);
	assert_pf(&o[0], BLOB_OFF(g_pf_alu, g_pf_alu_at), PF_NOT_PRESENT_WRITE, UNMAPPED + 0x10,
		  CMP_1_2_SET, CMP_1_2_CLEAR);
	assert_prelude_done(&o[0]);
	outcome_free(o);
}

static void test_fault_in_handler_call(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_pf_handler_start, g_pf_handler_end);
	/* XCHG with memory reads first: a not-present read... or write; the
	 * interpreter decides, and the modes agree (run_fault_blob). */
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_int_equal(o[0].st.rip, PF_HANDLER_END);
	assert_int_equal(o[0].frame[1], CODE + BLOB_OFF(g_pf_handler, g_pf_handler_at));
	assert_int_equal(o[0].st.cr2, UNMAPPED + 0x18);
	assert_int_equal(o[0].frame[3] & (CMP_1_2_SET | CMP_1_2_CLEAR), CMP_1_2_SET);
	assert_prelude_done(&o[0]);
	outcome_free(o);
}

/* INC/DEC keep CF; a fault after them pushes the CF from before them. */
static void test_fault_after_inc_keeps_cf(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_pf_inc_start, g_pf_inc_end);
	assert_pf(&o[0], BLOB_OFF(g_pf_inc, g_pf_inc_at), PF_NOT_PRESENT_READ, UNMAPPED, FLAG_CF,
		  FLAG_ZF | FLAG_SF | FLAG_OF);
	assert_int_equal(o[0].st.gpr[GPR_RBX], 0x1112);
	outcome_free(o);
}

static void test_fault_after_dec_keeps_cf(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_pf_dec_start, g_pf_dec_end);
	assert_pf(&o[0], BLOB_OFF(g_pf_dec, g_pf_dec_at), PF_NOT_PRESENT_WRITE, UNMAPPED, FLAG_CF,
		  FLAG_ZF | FLAG_SF | FLAG_OF);
	assert_int_equal(o[0].st.gpr[GPR_RBX], 0x1110);
	outcome_free(o);
}

static void test_fault_in_chained_loop(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_pf_loop_start, g_pf_loop_end);
	/* RSI 0x3efe00 + 0x80 * 4 = 0x3f0000 on the fifth load. */
	assert_pf(&o[0], BLOB_OFF(g_pf_loop, g_pf_loop_at), PF_NOT_PRESENT_READ, UNMAPPED,
		  FLAG_CF | FLAG_SF, FLAG_ZF);
	assert_int_equal(o[0].st.gpr[GPR_RSI], UNMAPPED);
	assert_int_equal(o[0].st.gpr[GPR_RCX], 4);
	outcome_free(o);
}

static void test_fault_ret_noncanonical(void **state)
{
	(void)state;
	struct outcome *o = run_fault_blob(g_gp_ret_start, g_gp_ret_end);
	assert_int_equal(o[0].kind, VCPU_EXIT_HLT);
	assert_int_equal(o[0].st.rip, GP_HANDLER_END);
	assert_int_equal(o[0].frame[0], 0);
	assert_int_equal(o[0].frame[1], CODE + BLOB_OFF(g_gp_ret, g_gp_ret_at));
	assert_int_equal(o[0].frame[3] & (FLAG_CF | FLAG_SF | FLAG_ZF), FLAG_CF | FLAG_SF);
	/* The frame sits below the return address RET left in place. */
	assert_int_equal(o[0].frame[4], STACK_TOP - 8);
	assert_int_equal(o[0].frame[6 - 1] & 0xffff, o[0].st.seg[SEG_SS].selector);
	assert_int_equal(o[0].st.gpr[GPR_RBX], 0x1112);
	outcome_free(o);
}

/* ---- interrupts ---- */

/* A kick from another thread ends run() within a bounded time. */
struct kicker {
	struct machine *m;
	unsigned delay_ms;
};

static void *kick_later(void *opaque)
{
	struct kicker *k = opaque;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)k->delay_ms * 1000000L};
	nanosleep(&ts, NULL);
	soft_engine_ops.kick(k->m->vcpu);
	return NULL;
}

struct kick_case {
	bool interpret;
	const uint8_t *start, *end;
};

static void check_kick(void *arg)
{
	const struct kick_case *c = arg;
	bool interpret = c->interpret;
	const uint8_t *start = c->start, *end = c->end;
	struct machine *m = machine_new(interpret, 0);
	put(m, CODE, start, (size_t)(end - start));
	struct kicker k = {.m = m, .delay_ms = 100};
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, kick_later, &k), 0);
	uint64_t t0 = now_ms();
	struct vcpu_exit x;
	memset(&x, 0, sizeof(x));
	CHECK_EQ(soft_engine_ops.run(m->vcpu, &x), 0);
	uint64_t took = now_ms() - t0;
	pthread_join(t, NULL);
	CHECK_EQ(x.kind, VCPU_EXIT_INTR);
	CHECK(took < 5000);
	soft_engine_ops.get_state(m->vcpu, &m->st);
	CHECK(m->st.rip >= CODE && m->st.rip < CODE + (uint64_t)(end - start));
	if (!interpret) {
		struct engine_vcpu_stats s;
		machine_stats(m, &s);
		CHECK(s.jit.blocks > 0);
	}
	machine_free(m);
}

static void test_kick_ends_tight_loop(void **state)
{
	(void)state;
	const struct kick_case cases[] = {
	    {false, g_spin_start, g_spin_end},
	    {true, g_spin_start, g_spin_end},
	    {false, g_count_start, g_count_end},
	    {true, g_count_start, g_count_end},
	};
	for (unsigned k = 0; k < 4; k++)
		run_isolated(check_kick, (void *)&cases[k], cases[k].interpret ? "interpreter run" : "translator run");
}

static void setup_timer(struct machine *m) { PUT_BLOB(m, CODE, g_timer); }

static void test_lapic_timer_in_tight_loop(void **state)
{
	(void)state;
	uint64_t t0 = now_ms();
	struct outcome *o = run_both(setup_timer, 0);
	assert_true(now_ms() - t0 < 10000);
	for (unsigned k = 0; k < 2; k++) {
		assert_int_equal(o[k].kind, VCPU_EXIT_HLT);
		assert_int_equal(o[k].st.rip, HANDLERS + 16 * 0x40 + 1);
		assert_int_equal(o[k].frame[0], CODE + BLOB_OFF(g_timer, g_timer_at));
		assert_true(o[k].frame[2] & FLAG_IF);
	}
	outcome_free(o);
}

static void setup_popf(struct machine *m) { PUT_BLOB(m, CODE, g_popf); }

static void test_interrupt_window_opened_by_popf(void **state)
{
	(void)state;
	run_timeout_ms = 3000;
	struct outcome *o = outcome_pair();
	run_mode(true, 0, setup_popf, &o[1]);
	run_mode(false, 0, setup_popf, &o[0]);
	run_timeout_ms = RUN_TIMEOUT_MS;
	for (unsigned k = 2; k-- > 0;) {
		if (o[k].kind != VCPU_EXIT_HLT) {
			print_error("%s: the interrupt was never taken (exit %d, RIP %#llx)\n",
				    k ? "interpreter" : "translator", o[k].kind,
				    (unsigned long long)o[k].st.rip);
			fail();
		}
		assert_int_equal(o[k].st.rip, HANDLERS + 16 * 0x40 + 1);
		assert_int_equal(o[k].frame[0], CODE + BLOB_OFF(g_popf, g_popf_at));
	}
	outcome_free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dma_rewrite),
	    cmocka_unit_test(test_smc_guest_stores),
	    cmocka_unit_test(test_stamps_of_data_pages),
	    cmocka_unit_test(test_chain_rewritten_loop),
	    cmocka_unit_test(test_jump_cache_targets),
	    cmocka_unit_test(test_jump_cache_cr3),
	    cmocka_unit_test(test_smc_through_alias),
	    cmocka_unit_test(test_flush_under_pressure_256k),
	    cmocka_unit_test(test_flush_under_pressure_64k),
	    cmocka_unit_test(test_stale_translation_at_flush),
	    cmocka_unit_test(test_fault_load_flags_dead),
	    cmocka_unit_test(test_fault_load_flags_live),
	    cmocka_unit_test(test_fault_store),
	    cmocka_unit_test(test_fault_alu_memory),
	    cmocka_unit_test(test_fault_in_handler_call),
	    cmocka_unit_test(test_fault_after_inc_keeps_cf),
	    cmocka_unit_test(test_fault_after_dec_keeps_cf),
	    cmocka_unit_test(test_fault_in_chained_loop),
	    cmocka_unit_test(test_fault_ret_noncanonical),
	    cmocka_unit_test(test_kick_ends_tight_loop),
	    cmocka_unit_test(test_lapic_timer_in_tight_loop),
	    cmocka_unit_test(test_interrupt_window_opened_by_popf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
