/* Multiboot 0.6.96 (version 1) entry for the 32-bit test guest.
 *
 * Section 3.1: the header (magic 0x1BADB002, flags, checksum) lies 4-byte
 * aligned in the first 8192 bytes. Flag bit 1 asks for mem_lower/mem_upper
 * and the memory map; with -DAOUT_KLUDGE flag bit 16 adds the address
 * fields (header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr)
 * so the same kernel boots as a flat binary.
 * Section 3.2: on entry EAX = 0x2BADB002, EBX = physical address of the
 * multiboot information, 32-bit protected mode, paging off; ESP and the
 * GDT are undefined, so both are set up here before anything else.
 *
 * Also holds the application-processor trampoline: real-mode code that is
 * copied to AP_TRAMPOLINE (0x8000, SIPI vector 0x08), enters protected
 * mode, atomically increments ap_started and halts with interrupts off. */

#define MB_MAGIC        0x1BADB002
#define MB_FLAG_MEMINFO 0x00000002
#define MB_FLAG_AOUT    0x00010000
#ifdef AOUT_KLUDGE
#define MB_FLAGS        (MB_FLAG_MEMINFO | MB_FLAG_AOUT)
#else
#define MB_FLAGS        MB_FLAG_MEMINFO
#endif
#define AP_TRAMPOLINE   0x8000
#define TRAMP(sym)      (AP_TRAMPOLINE + ((sym) - ap_tramp_start))

	.section .multiboot, "a"
	.align 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
#ifdef AOUT_KLUDGE
	.long mb_header         /* header_addr */
	.long __load_start      /* load_addr: file offset 0 */
	.long __load_end        /* load_end_addr */
	.long __bss_end         /* bss_end_addr: the loader zeroes up to here */
	.long mb_entry          /* entry_addr */
#endif

	.text
	.code32
	.globl mb_entry
mb_entry:
	cli
	cld
	movl %eax, %edx                 /* keep the magic; EBX stays untouched */
	movl $__bss_start, %edi         /* zero .bss (stack included) */
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl
	movl $mb_stack_top, %esp
	lgdt mb_gdt_desc
	ljmp $0x08, $1f
1:	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %fs
	movl %eax, %gs
	movl %eax, %ss
	pushl %ebx                      /* mb_main(magic, info) */
	pushl %edx
	call mb_main
2:	cli
	hlt
	jmp 2b

	.section .rodata
	.align 8
mb_gdt:
	.quad 0
	.quad 0x00cf9a000000ffff        /* 0x08: flat 32-bit code */
	.quad 0x00cf92000000ffff        /* 0x10: flat data */
mb_gdt_desc:
	.word mb_gdt_desc - mb_gdt - 1
	.long mb_gdt

/* ---- AP trampoline: position-dependent on AP_TRAMPOLINE ---- */
	.align 16
	.globl ap_tramp_start, ap_tramp_end
ap_tramp_start:
	.code16
	cli
	movw %cs, %ax                   /* CS = 0x0800 after SIPI vector 0x08 */
	movw %ax, %ds
	lgdtl ap_gdt_desc - ap_tramp_start
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $0x08, $TRAMP(ap_pm32)
	.code32
ap_pm32:
	movl $0x10, %eax
	movl %eax, %ds
	lock incl ap_started            /* absolute address in the kernel */
3:	cli
	hlt
	jmp 3b
	.align 8
ap_gdt:
	.quad 0
	.quad 0x00cf9a000000ffff
	.quad 0x00cf92000000ffff
ap_gdt_desc:
	.word ap_gdt_desc - ap_gdt - 1
	.long TRAMP(ap_gdt)
ap_tramp_end:

	.data
	.align 4
	.globl ap_started
ap_started:
	.long 0

	.bss
	.align 16
mb_stack:
	.skip 16384
mb_stack_top:

	.section .note.GNU-stack, "", @progbits
