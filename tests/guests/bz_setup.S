/* Real-mode setup area of the minimal bzImage test guest.
 *
 * Linux Documentation/arch/x86/boot.rst: the first (setup_sects + 1) * 512
 * bytes of the file; the setup header starts at 0x1F1 (field offsets are
 * checked against that document in the table below), the 2-byte jump at
 * 0x200 is where a 16-bit boot loader enters with CS = setup segment +
 * 0x20 and DS = the setup segment, which holds the header it filled in.
 *
 * 64-bit and 32-bit boot loaders (shrike) only read the header. A 16-bit
 * loader (QEMU with its linuxboot option ROM) runs the code below, which
 * does what the real Linux setup does, minimally: builds a fresh
 * boot_params at setup segment:0x1000 (header copied, E820 table from BIOS
 * INT 15h AX=E820h), enables A20, enters 32-bit protected mode with
 * __BOOT_CS = 0x10 and __BOOT_DS = 0x18 and jumps to code32_start with
 * ESI = boot_params (the 32-bit boot protocol). */

#define SETUP_SECTS   3
#define SETUP_SIZE    ((SETUP_SECTS + 1) * 512)
#define BP_OFF        0x1000   /* new boot_params, from the setup segment */
#define STACK_TOP     0x3000
#define HDR_START     0x1f1
#define HDR_END       0x26c
#define BP_E820_COUNT 0x1e8
#define BP_E820_TABLE 0x2d0
#define E820_MAX      128
#define E820_ENTRY    20
#define SMAP          0x534d4150
#define LOADED_HIGH   0x01
#define XLF_KERNEL_64 0x0001

	.section .setup, "ax"
	.code16
	.org HDR_START
	.byte SETUP_SECTS           /* 0x1f1 setup_sects */
	.word 0                     /* 0x1f2 root_flags */
	.long bz_syssize            /* 0x1f4 syssize, 16-byte units */
	.word 0                     /* 0x1f8 ram_size */
	.word 0xffff                /* 0x1fa vid_mode: normal */
	.word 0                     /* 0x1fc root_dev */
	.word 0xaa55                /* 0x1fe boot_flag */
	.byte 0xeb                  /* 0x200 jump over the header */
	.byte setup_start - 1f
1:	.ascii "HdrS"               /* 0x202 header */
	.word 0x020f                /* 0x206 version */
	.long 0                     /* 0x208 realmode_swtch */
	.word 0                     /* 0x20c start_sys_seg */
	.word kernel_version - 0x200 /* 0x20e kernel_version */
	.byte 0                     /* 0x210 type_of_loader */
	.byte LOADED_HIGH           /* 0x211 loadflags */
	.word 0                     /* 0x212 setup_move_size */
	.long 0x100000              /* 0x214 code32_start */
	.long 0                     /* 0x218 ramdisk_image */
	.long 0                     /* 0x21c ramdisk_size */
	.long 0                     /* 0x220 bootsect_kludge */
	.word 0                     /* 0x224 heap_end_ptr */
	.byte 0                     /* 0x226 ext_loader_ver */
	.byte 0                     /* 0x227 ext_loader_type */
	.long 0                     /* 0x228 cmd_line_ptr */
	.long 0x7fffffff            /* 0x22c initrd_addr_max */
	.long 0x1000                /* 0x230 kernel_alignment */
	.byte 0                     /* 0x234 relocatable_kernel */
	.byte 12                    /* 0x235 min_alignment (log2) */
	.word XLF_KERNEL_64         /* 0x236 xloadflags */
	.long 4095                  /* 0x238 cmdline_size */
	.long 0                     /* 0x23c hardware_subarch */
	.quad 0                     /* 0x240 hardware_subarch_data */
	.long 0                     /* 0x248 payload_offset */
	.long 0                     /* 0x24c payload_length */
	.quad 0                     /* 0x250 setup_data */
	.quad 0x100000              /* 0x258 pref_address */
	.long bz_init_size          /* 0x260 init_size */
	.long 0                     /* 0x264 handover_offset */
	.long bz_kernel_info_offset /* 0x268 kernel_info_offset */
	.org HDR_END                /* fails to assemble if the header grew */

setup_start:
	cli
	cld
	movw %cs, %ax
	subw $0x20, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw $STACK_TOP, %sp

	movw $BP_OFF, %di           /* zero the new boot_params */
	xorw %ax, %ax
	movw $2048, %cx
	rep stosw
	movw $HDR_START, %si        /* copy the header the loader filled */
	movw $(BP_OFF + HDR_START), %di
	movw $(HDR_END - HDR_START), %cx
	rep movsb

	xorl %ebx, %ebx             /* E820: at most E820_MAX entries */
	xorw %bp, %bp
	movw $(BP_OFF + BP_E820_TABLE), %di
e820_next:
	movl $0xe820, %eax
	movl $E820_ENTRY, %ecx
	movl $SMAP, %edx
	int $0x15
	jc e820_done
	cmpl $SMAP, %eax
	jne e820_done
	incw %bp
	addw $E820_ENTRY, %di
	testl %ebx, %ebx
	jz e820_done
	cmpw $E820_MAX, %bp
	jb e820_next
e820_done:
	cli
	movw %bp, %ax
	movb %al, BP_OFF + BP_E820_COUNT

	inb $0x92, %al              /* fast A20 gate */
	orb $0x02, %al
	andb $0xfe, %al
	outb %al, $0x92

	xorl %ebx, %ebx             /* EBX = linear base of the setup segment */
	movw %ds, %bx
	shll $4, %ebx
	leal gdt(%ebx), %eax
	movl %eax, gdt_desc + 2
	leal pm32(%ebx), %eax
	movl %eax, far_ptr
	leal BP_OFF(%ebx), %esi
	lgdtl gdt_desc
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl *far_ptr

	.code32
pm32:
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %fs
	movl %eax, %gs
	movl %eax, %ss
	movl 0x214(%esi), %eax      /* code32_start */
	xorl %ebx, %ebx
	xorl %ebp, %ebp
	xorl %edi, %edi
	jmp *%eax

	.align 8
gdt:
	.quad 0
	.quad 0
	.quad 0x00cf9a000000ffff    /* 0x10 __BOOT_CS */
	.quad 0x00cf92000000ffff    /* 0x18 __BOOT_DS */
gdt_desc:
	.word gdt_desc - gdt - 1
	.long 0                     /* filled in: linear address of gdt */
far_ptr:
	.long 0                     /* filled in: linear address of pm32 */
	.word 0x10
kernel_version:
	.asciz "shrike test bzimage"
	.org SETUP_SIZE

	.section .note.GNU-stack, "", @progbits
