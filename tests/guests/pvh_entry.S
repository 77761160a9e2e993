/* Xen PVH entry for the 64-bit test guest.
 *
 * Xen public/elfnote.h: XEN_ELFNOTE_PHYS32_ENTRY (18) names the 32-bit
 * entry point. Xen docs/misc/pvh.pandoc (the boot ABI Linux and QEMU
 * share): entered in 32-bit flat protected mode, paging off, interrupts
 * off, EBX = physical address of struct hvm_start_info; no stack is given.
 * This entry zeroes .bss, builds identity page tables for 4 GiB, enters
 * long mode and calls pvh_main(start_info) with a 16-byte aligned stack. */
#include "longmode.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a", @note
	.align 4
	.long 2f - 1f                   /* namesz */
	.long 4f - 3f                   /* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz "Xen"
2:	.align 4
3:	.long pvh_start32
4:	.align 4

	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	movl $__bss_start, %edi         /* EBX (start_info) survives this */
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl
	movl $pvh_stack_top, %esp
	ENTER_LONG_MODE pvh_pgtables, pvh_gdt_desc, pvh_long

	.code64
pvh_long:
	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %fs
	movl %eax, %gs
	movl %eax, %ss
	movq $pvh_stack_top, %rsp
	movl %ebx, %edi                 /* zero-extends into RDI */
	call pvh_main
5:	cli
	hlt
	jmp 5b

	.section .rodata
	.align 8
pvh_gdt:
	LONG_MODE_GDT
pvh_gdt_desc:
	.word pvh_gdt_desc - pvh_gdt - 1
	.long pvh_gdt

	.bss
	.align 4096
pvh_pgtables:
	.skip 6 * 4096
	.align 16
	.skip 16384
pvh_stack_top:

	.section .note.GNU-stack, "", @progbits
