#include "arch/x86/boot_cpu.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"

#define PTE_PRESENT 0x1ULL
#define PTE_WRITE   0x2ULL
#define PTE_PS      0x80ULL /* 2 MiB page in a PD entry */
#define PAGE_SIZE   0x1000ULL
#define PD_COUNT    4       /* 4 x 1 GiB */
#define PD_ENTRIES  512
#define HUGE_2M     (2ULL << 20)

#define SEG_TYPE_CODE_XRA 11 /* execute/read, accessed */
#define SEG_TYPE_DATA_RWA 3  /* read/write, accessed */
#define SEG_TYPE_LDT      2
#define SEG_TYPE_TSS_BUSY 11 /* 32-bit and 64-bit busy TSS share the value */

uint64_t boot_cpu_descriptor(const struct segment *seg)
{
	/* The descriptor stores the limit in 4 KiB units when G is set. */
	uint64_t lim = seg->g ? (uint64_t)seg->limit >> 12 : seg->limit;
	uint64_t d = 0;

	d |= lim & 0xffff;
	d |= (seg->base & 0xffffff) << 16;
	d |= (uint64_t)(seg->type & 0xf) << 40;
	d |= (uint64_t)(seg->s & 1) << 44;
	d |= (uint64_t)(seg->dpl & 3) << 45;
	d |= (uint64_t)(seg->present & 1) << 47;
	d |= ((lim >> 16) & 0xf) << 48;
	d |= (uint64_t)(seg->avl & 1) << 52;
	d |= (uint64_t)(seg->l & 1) << 53;
	d |= (uint64_t)(seg->db & 1) << 54;
	d |= (uint64_t)(seg->g & 1) << 55;
	d |= ((seg->base >> 24) & 0xff) << 56;
	return d;
}

static struct segment flat_segment(uint16_t selector, uint8_t type)
{
	return (struct segment){.base = 0, .limit = 0xffffffff, .selector = selector,
				.type = type, .s = 1, .present = 1, .db = 1, .g = 1};
}

/* A busy TSS at 0 with the minimal limit: VM entry requires a usable TR,
 * and the guest installs its own before it could ever switch stacks. */
static struct segment boot_tss(void)
{
	return (struct segment){.limit = BOOT_CPU_TSS_LIMIT, .selector = BOOT_CPU_SEL_TSS,
				.type = SEG_TYPE_TSS_BUSY, .present = 1};
}

static struct segment unusable_ldt(void)
{
	return (struct segment){.type = SEG_TYPE_LDT, .unusable = 1};
}

static void fill_segments(struct cpu_state *s, const struct segment *code)
{
	struct segment data = flat_segment(BOOT_CPU_SEL_DATA, SEG_TYPE_DATA_RWA);

	s->seg[SEG_CS] = *code;
	s->seg[SEG_DS] = data;
	s->seg[SEG_ES] = data;
	s->seg[SEG_SS] = data;
	s->seg[SEG_FS] = data;
	s->seg[SEG_GS] = data;
	s->seg[SEG_TR] = boot_tss();
	s->seg[SEG_LDTR] = unusable_ldt();
}

/* Writes the GDT that matches s's CS, DS and TR; the TSS descriptor takes
 * two slots, whose upper half (base bits 63:32) is zero. */
static int write_gdt(const struct guest_mem *mem, struct cpu_state *s)
{
	uint64_t gdt[BOOT_CPU_GDT_ENTRIES] = {0};

	gdt[BOOT_CPU_SEL_CODE / 8] = boot_cpu_descriptor(&s->seg[SEG_CS]);
	gdt[BOOT_CPU_SEL_DATA / 8] = boot_cpu_descriptor(&s->seg[SEG_DS]);
	gdt[BOOT_CPU_SEL_TSS / 8] = boot_cpu_descriptor(&s->seg[SEG_TR]);
	s->gdt.base = LAYOUT_GDT_ADDR;
	s->gdt.limit = sizeof(gdt) - 1;
	/* An empty IDT: any exception before the guest sets its own is a
	 * triple fault, which the VMM reports, rather than a jump to 0. */
	s->idt.base = 0;
	s->idt.limit = 0;
	return guest_mem_write(mem, LAYOUT_GDT_ADDR, gdt, sizeof(gdt));
}

static void init_common(struct cpu_state *s)
{
	memset(s, 0, sizeof(*s));
	s->rflags = RFLAGS_FIXED;
	s->gpr[GPR_RSP] = LAYOUT_BOOT_STACK_TOP;
	s->apic_base = 0xfee00000ULL | (1ULL << 11) | (1ULL << 8); /* enabled, BSP */
}

/* PML4[0] -> PDPT, PDPT[0..3] -> four PDs, each PD maps 1 GiB with
 * 2 MiB pages, so virtual == physical for the first 4 GiB. */
static int write_identity_tables(const struct guest_mem *mem)
{
	uint64_t page[PD_ENTRIES];
	int rc;

	memset(page, 0, sizeof(page));
	page[0] = LAYOUT_PDPT_ADDR | PTE_PRESENT | PTE_WRITE;
	rc = guest_mem_write(mem, LAYOUT_PML4_ADDR, page, sizeof(page));
	if (rc)
		return rc;

	memset(page, 0, sizeof(page));
	for (unsigned i = 0; i < PD_COUNT; i++)
		page[i] = (LAYOUT_PD_ADDR + i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE;
	rc = guest_mem_write(mem, LAYOUT_PDPT_ADDR, page, sizeof(page));
	if (rc)
		return rc;

	for (unsigned pd = 0; pd < PD_COUNT; pd++) {
		for (unsigned i = 0; i < PD_ENTRIES; i++) {
			uint64_t phys = ((uint64_t)pd * PD_ENTRIES + i) * HUGE_2M;
			page[i] = phys | PTE_PRESENT | PTE_WRITE | PTE_PS;
		}
		rc = guest_mem_write(mem, LAYOUT_PD_ADDR + pd * PAGE_SIZE, page, sizeof(page));
		if (rc)
			return rc;
	}
	return 0;
}

int boot_cpu_long_mode(const struct guest_mem *mem, struct cpu_state *s)
{
	struct segment code = flat_segment(BOOT_CPU_SEL_CODE, SEG_TYPE_CODE_XRA);
	int rc;

	/* 64-bit code: L=1 requires D=0 (SDM §3.4.5). */
	code.l = 1;
	code.db = 0;
	init_common(s);
	fill_segments(s, &code);
	rc = write_gdt(mem, s);
	if (rc)
		return rc;
	rc = write_identity_tables(mem);
	if (rc)
		return rc;
	s->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
	s->cr3 = LAYOUT_PML4_ADDR;
	s->cr4 = CR4_PAE;
	s->efer = EFER_LME | EFER_LMA;
	return 0;
}

int boot_cpu_protected_mode(const struct guest_mem *mem, struct cpu_state *s)
{
	struct segment code = flat_segment(BOOT_CPU_SEL_CODE, SEG_TYPE_CODE_XRA);

	init_common(s);
	fill_segments(s, &code);
	s->cr0 = CR0_PE | CR0_ET | CR0_NE;
	return write_gdt(mem, s);
}
