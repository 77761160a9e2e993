/* Protected-mode payload entries of the minimal bzImage test guest.
 *
 * Linux Documentation/arch/x86/boot.rst, "32-bit boot protocol": entered
 * at code32_start (payload offset 0) with flat 4 GiB segments, paging and
 * interrupts off, ESI = boot_params. "64-bit boot protocol": entered at
 * payload offset 0x200 in long mode, the loaded image and boot_params
 * identity-mapped, RSI = boot_params. The 32-bit entry builds its own
 * 4 GiB identity map and continues at the 64-bit one, like Linux's
 * startup_32 / startup_64. kernel_info (protocol 2.15) is here as well. */
#include "longmode.h"

	.section .head32, "ax"
	.code32
	.globl startup_32
startup_32:
	cli
	cld
	movl $bz_pgtables, %edi     /* zero the page tables (not in .bss) */
	movl $(6 * 1024), %ecx
	xorl %eax, %eax
	rep stosl
	ENTER_LONG_MODE bz_pgtables, bz_gdt_desc, from_32
	.code64
from_32:
	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %fs
	movl %eax, %gs
	movl %eax, %ss
	movl %esi, %esi             /* upper halves are undefined after the switch */
	jmp startup_64

	.section .head64, "ax"
	.code64
	.globl startup_64
startup_64:
	cli
	cld
	movq $__bss_start, %rdi     /* RSI (boot_params) survives this */
	movq $__bss_end, %rcx
	subq %rdi, %rcx
	shrq $3, %rcx
	xorl %eax, %eax
	rep stosq
	movq $bz_stack_top, %rsp
	movq %rsi, %rdi
	call bz_main
1:	cli
	hlt
	jmp 1b

	.section .rodata
	.align 8
bz_gdt:
	LONG_MODE_GDT
bz_gdt_desc:
	.word bz_gdt_desc - bz_gdt - 1
	.long bz_gdt
	.align 4
	.globl kernel_info
kernel_info:                        /* boot.rst "The kernel_info" */
	.ascii "LToP"               /* header */
	.long kernel_info_end - kernel_info /* size */
	.long kernel_info_end - kernel_info /* size_total */
	.long 0                     /* setup_type_max: no setup_data understood */
kernel_info_end:

	.bss
	.align 16
	.skip 16384
bz_stack_top:

	.section .pgtables, "aw", @nobits
	.align 4096
bz_pgtables:
	.skip 6 * 4096

	.section .note.GNU-stack, "", @progbits
