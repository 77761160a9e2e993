/* Code that the self-modifying-code guest (smc.c) patches while it runs.
 * x86 makes a store to code visible to the instructions after it, even
 * to the very next one (Intel SDM vol. 3 §11.6 "Self-modifying code";
 * the store is detected and prefetched instructions are refetched), and
 * DMA into code is seen by the next fetch. Each function lives in the
 * page the comment says, so that the store comes from the same block,
 * another block of the same page, or another page. System V calling
 * convention: arguments in EDI, ESI, EDX; result in EAX. */

	.section .text.smc, "ax"
	.balign 4096

/* uint32_t smc_next(uint32_t v): stores v into the immediate of the very
 * next instruction, which returns it. */
	.globl smc_next
smc_next:
	movl %edi, 1f+1(%rip)
1:	movl $0xdeadbeef, %eax
	ret

/* uint32_t smc_ahead(uint32_t v): the same, three instructions ahead in
 * the same block. */
	.globl smc_ahead
smc_ahead:
	movl %edi, 1f+1(%rip)
	addl $1, %esi
	addl $2, %esi
	leal (%rsi,%rsi), %esi
1:	movl $0xdeadbeef, %eax
	ret

/* uint32_t smc_opcode(uint32_t opcode, uint32_t a, uint32_t b): stores the
 * opcode byte (0x01 ADD, 0x29 SUB) of the next instruction, an operation
 * on a and b. */
	.globl smc_opcode
smc_opcode:
	movb %dil, 1f(%rip)
1:	addl %edx, %esi                 /* 01 d6 */
	movl %esi, %eax
	ret

/* uint32_t smc_later(uint32_t v): the immediate of an instruction in a
 * later block of the same page, reached by a jump. */
	.globl smc_later
smc_later:
	movl %edi, 2f+1(%rip)
	jmp 2f
	.fill 48, 1, 0xcc
2:	movl $0xdeadbeef, %eax
	ret

/* uint32_t smc_loop(uint32_t n): a loop that counts to n while it patches
 * its own increment: 1, 2, 3, 1, 2, 3, ... (the store lands in the block
 * the loop jumps back to). */
	.globl smc_loop
smc_loop:
	xorl %eax, %eax
	xorl %ecx, %ecx
	movl $1, %edx
3:	addl $1, %eax                   /* 83 c0 ib: the immediate is patched */
	incl %edx
	cmpl $4, %edx
	jne 4f
	movl $1, %edx
4:	movb %dl, 3b+2(%rip)
	incl %ecx
	cmpl %edi, %ecx
	jne 3b
	ret

/* Another page: patched by stores from the C code (smc.c). */
	.section .text.smc_other, "ax"
	.balign 4096
	.globl smc_other
smc_other:
	movl $0xdeadbeef, %eax
	ret

/* A page of its own, overwritten by virtio-blk reads (DMA). */
	.balign 4096
	.globl smc_dma_page
smc_dma_page:
	movl $0x1111, %eax
	ret
	.balign 4096, 0xcc

	.section .note.GNU-stack, "", @progbits
