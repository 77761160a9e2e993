/* Assembler macro shared by the 32-bit entries of the PVH and bzImage
 * guests: identity-map the low 4 GiB with 2 MiB pages and enter long mode
 * (Intel SDM vol. 3A 9.8.5 "Initializing IA-32e Mode": CR4.PAE, CR3,
 * EFER.LME, then CR0.PG; 4.5 4-level paging, PDE bit 7 = 2 MiB page).
 *
 * ENTER_LONG_MODE pml4, gdt_desc, target: expects a 4-KiB-aligned, zeroed
 * 6-page area at \pml4 (PML4, PDPT, 4 PDs), a GDT with a 64-bit code
 * segment at selector 0x08 and data at 0x10, and ends with a far jump to
 * \target in 64-bit mode. Clobbers EAX, ECX, EDX, EDI; keeps EBX, ESI. */
#define PTE_PRESENT_RW 0x003
#define PDE_2M_PAGE    0x083
#define CR4_PAE        0x020
#define CR0_PE_PG      0x80000001
#define MSR_EFER       0xc0000080
#define EFER_LME       0x100

.macro ENTER_LONG_MODE pml4, gdt_desc, target
	movl $(\pml4 + 0x1000 + PTE_PRESENT_RW), \pml4
	movl $(\pml4 + 0x1000), %edi            /* PDPT[0..3] -> PD0..PD3 */
	movl $(\pml4 + 0x2000 + PTE_PRESENT_RW), %eax
	movl $4, %ecx
1:	movl %eax, (%edi)
	addl $0x1000, %eax
	addl $8, %edi
	loop 1b
	movl $(\pml4 + 0x2000), %edi            /* 2048 PDEs of 2 MiB */
	movl $PDE_2M_PAGE, %eax
	movl $2048, %ecx
2:	movl %eax, (%edi)
	addl $0x200000, %eax
	addl $8, %edi
	loop 2b
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $\pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $CR0_PE_PG, %eax
	movl %eax, %cr0
	lgdt \gdt_desc
	ljmp $0x08, $\target
.endm

/* GDT body for the macro: null, 64-bit code (0x08), data (0x10). */
.macro LONG_MODE_GDT
	.quad 0
	.quad 0x00af9a000000ffff
	.quad 0x00cf92000000ffff
.endm
