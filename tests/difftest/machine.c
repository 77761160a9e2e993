/* The guest machine of the differential tester: descriptor tables (SDM
 * vol. 3 §3.4.5 segment descriptors, §6.14.1 64-bit IDT gates, §6.11 IDT
 * descriptors, §7.2.1/§7.7 TSS layouts), 4-level and 32-bit page tables
 * (§4.3, §4.5) and the exception stubs, and the initial state for each
 * test mode. All of it is written identically into both engines' memory. */
#include <errno.h>
#include <string.h>

#include "arch/x86/boot_cpu.h"
#include "difftest.h"

#define PTE_P 0x1ULL
#define PTE_W 0x2ULL
#define PTE_U 0x4ULL
#define PTE_A 0x20ULL
#define PTE_D 0x40ULL
#define PTE_PS 0x80ULL

#define TYPE_DATA_RWA 3
#define TYPE_CODE_XRA 11
#define TYPE_TSS_BUSY 11
#define TYPE_LDT 2
#define GATE_INT 14

static const char *const mode_names[DT_MODE_COUNT] = {
    [DT_MODE_LONG64] = "long64",   [DT_MODE_COMPAT32] = "compat32",
    [DT_MODE_PROT32] = "prot32",   [DT_MODE_PROT16] = "prot16",
    [DT_MODE_KERNEL64] = "kernel64",
};

const char *dt_mode_name(enum dt_mode m)
{
	return m < DT_MODE_COUNT ? mode_names[m] : "?";
}

int dt_mode_parse(const char *name, enum dt_mode *out)
{
	for (int m = 0; m < DT_MODE_COUNT; m++)
		if (strcmp(name, mode_names[m]) == 0) {
			*out = (enum dt_mode)m;
			return 0;
		}
	return -EINVAL;
}

unsigned dt_mode_bits(enum dt_mode m)
{
	switch (m) {
	case DT_MODE_COMPAT32:
	case DT_MODE_PROT32: return 4;
	case DT_MODE_PROT16: return 2;
	default: return 8;
	}
}

static struct segment seg_make(uint16_t sel, uint64_t base, uint32_t limit, uint8_t type,
			       unsigned dpl, bool l, bool db)
{
	struct segment s = {.base = base, .limit = limit, .selector = sel, .type = type,
			    .s = 1, .dpl = (uint8_t)dpl, .present = 1, .l = l, .db = db};
	s.g = limit > 0xfffff;
	return s;
}

static struct segment seg_flat_code(uint16_t sel, unsigned dpl, bool l, bool db)
{
	return seg_make(sel, 0, 0xffffffff, TYPE_CODE_XRA, dpl, l, db);
}

static struct segment seg_flat_data(uint16_t sel, unsigned dpl)
{
	return seg_make(sel, 0, 0xffffffff, TYPE_DATA_RWA, dpl, false, true);
}

static struct segment seg_tss(uint16_t sel, uint64_t base)
{
	struct segment s = {.base = base, .limit = 0x67, .selector = sel, .type = TYPE_TSS_BUSY,
			    .present = 1};
	return s;
}

/* The segments of every descriptor the GDT holds, indexed by slot. */
static void gdt_segments(struct segment seg[DT_GDT_ENTRIES], bool *used)
{
	memset(seg, 0, sizeof(struct segment) * DT_GDT_ENTRIES);
	memset(used, 0, DT_GDT_ENTRIES);
#define SLOT(sel) ((sel) >> 3)
	seg[SLOT(DT_SEL_KCODE64)] = seg_flat_code(DT_SEL_KCODE64, 0, true, false);
	seg[SLOT(DT_SEL_KDATA)] = seg_flat_data(DT_SEL_KDATA, 0);
	seg[SLOT(DT_SEL_UCODE32)] = seg_flat_code(DT_SEL_UCODE32, 3, false, true);
	seg[SLOT(DT_SEL_UDATA)] = seg_flat_data(DT_SEL_UDATA, 3);
	seg[SLOT(DT_SEL_UCODE64)] = seg_flat_code(DT_SEL_UCODE64, 3, true, false);
	seg[SLOT(DT_SEL_TSS)] = seg_tss(DT_SEL_TSS, DT_TSS64_ADDR);
	seg[SLOT(DT_SEL_KCODE32)] = seg_flat_code(DT_SEL_KCODE32, 0, false, true);
	seg[SLOT(DT_SEL_UCODE16)] =
	    seg_make(DT_SEL_UCODE16, DT_CODE_ADDR, 0xffff, TYPE_CODE_XRA, 3, false, false);
	seg[SLOT(DT_SEL_UDATA16)] =
	    seg_make(DT_SEL_UDATA16, DT_STACK_ADDR, 0xffff, TYPE_DATA_RWA, 3, false, false);
	seg[SLOT(DT_SEL_TSS32)] = seg_tss(DT_SEL_TSS32, DT_TSS32_ADDR);
	seg[SLOT(DT_SEL_UDATA16D)] =
	    seg_make(DT_SEL_UDATA16D, DT_DATA_ADDR, 0xffff, TYPE_DATA_RWA, 3, false, false);
	for (int k = 1; k < DT_GDT_ENTRIES; k++)
		used[k] = seg[k].present;
	used[SLOT(DT_SEL_TSS) + 1] = false; /* upper half of the 64-bit TSS descriptor */
#undef SLOT
}

static int write_gdt(const struct guest_mem *mem)
{
	struct segment seg[DT_GDT_ENTRIES];
	bool used[DT_GDT_ENTRIES];
	uint64_t gdt[DT_GDT_ENTRIES] = {0};

	gdt_segments(seg, used);
	for (int k = 0; k < DT_GDT_ENTRIES; k++)
		if (used[k])
			gdt[k] = boot_cpu_descriptor(&seg[k]);
	return guest_mem_write(mem, DT_GDT_ADDR, gdt, sizeof(gdt));
}

static uint64_t stub_addr(unsigned vector) { return DT_STUBS_ADDR + (uint64_t)vector * 8; }

/* Vectors a CPL3 program may raise with INT n / INT3 / INTO. */
static unsigned gate_dpl(unsigned vector)
{
	return (vector == 3 || vector == 4 || vector == DT_USER_VECTOR) ? 3 : 0;
}

static int write_idts(const struct guest_mem *mem)
{
	uint64_t idt64[512], idt32[256];

	for (unsigned v = 0; v < 256; v++) {
		uint64_t off = stub_addr(v);
		uint64_t lo = (off & 0xffff) | ((uint64_t)DT_SEL_KCODE64 << 16) |
			      ((uint64_t)GATE_INT << 40) | ((uint64_t)gate_dpl(v) << 45) |
			      (1ULL << 47) | (((off >> 16) & 0xffff) << 48);
		idt64[2 * v] = lo;
		idt64[2 * v + 1] = off >> 32;
		idt32[v] = (lo & ~(0xffffULL << 16)) | ((uint64_t)DT_SEL_KCODE32 << 16);
	}
	int rc = guest_mem_write(mem, DT_IDT64_ADDR, idt64, sizeof(idt64));
	return rc ? rc : guest_mem_write(mem, DT_IDT32_ADDR, idt32, sizeof(idt32));
}

/* Each stub: OUT imm8, AL to the vector's magic port, then HLT forever
 * (never reached: the tester stops at the port write). */
static int write_stubs(const struct guest_mem *mem)
{
	uint8_t stubs[256 * 8];
	for (unsigned v = 0; v < 256; v++) {
		uint8_t port = v < 32 ? (uint8_t)(DT_PORT_EXC + v)
				      : (v == DT_USER_VECTOR ? DT_PORT_SOFTINT : 0xbe);
		const uint8_t stub[8] = {0xe6, port, 0xf4, 0xeb, 0xfd, 0x90, 0x90, 0x90};
		memcpy(&stubs[v * 8], stub, 8);
	}
	return guest_mem_write(mem, DT_STUBS_ADDR, stubs, sizeof(stubs));
}

static int write_tss(const struct guest_mem *mem)
{
	uint8_t t64[0x68] = {0}, t32[0x68] = {0};
	uint64_t rsp0 = DT_KSTACK_TOP;
	uint32_t esp0 = (uint32_t)DT_KSTACK_TOP, ss0 = DT_SEL_KDATA;
	uint16_t iopb = 0x68; /* beyond the limit: no I/O bitmap, IOPL decides */

	memcpy(&t64[4], &rsp0, 8);
	memcpy(&t64[0x66], &iopb, 2);
	memcpy(&t32[4], &esp0, 4);
	memcpy(&t32[8], &ss0, 4);
	memcpy(&t32[0x66], &iopb, 2);
	int rc = guest_mem_write(mem, DT_TSS64_ADDR, t64, sizeof(t64));
	return rc ? rc : guest_mem_write(mem, DT_TSS32_ADDR, t32, sizeof(t32));
}

static bool in_range(uint64_t a, uint64_t base, uint64_t size) { return a >= base && a < base + size; }

/* Page attributes for the 4 KiB page at `a` in the first 2 MiB (without
 * the frame address); 0 = not present. */
static uint64_t page_attrs(uint64_t a, uint64_t *frame)
{
	*frame = a;
	if (a == 0 || a == DT_NOTPRESENT)
		return 0;
	if (a == DT_MMIO_LINEAR) {
		*frame = DT_MMIO_GPA;
		return PTE_P | PTE_W | PTE_U | PTE_A | PTE_D;
	}
	if (in_range(a, DT_CODE_ADDR, DT_CODE_SIZE) || a == DT_READONLY)
		return PTE_P | PTE_U | PTE_A | PTE_D;
	if (in_range(a, DT_DATA_ADDR, DT_DATA_SIZE) || in_range(a, DT_STACK_ADDR, DT_STACK_SIZE))
		return PTE_P | PTE_W | PTE_U | PTE_A | PTE_D;
	return PTE_P | PTE_W | PTE_A | PTE_D; /* supervisor only */
}

static int write_paging64(const struct guest_mem *mem)
{
	uint64_t t[512];
	const uint64_t table = PTE_P | PTE_W | PTE_U | PTE_A;
	int rc;

	memset(t, 0, sizeof(t));
	t[0] = DT_PDPT_ADDR | table;
	if ((rc = guest_mem_write(mem, DT_PML4_ADDR, t, sizeof(t))))
		return rc;
	t[0] = DT_PD_ADDR | table;
	if ((rc = guest_mem_write(mem, DT_PDPT_ADDR, t, sizeof(t))))
		return rc;
	/* PD: the first 2 MiB through the PT, the next 14 MiB as supervisor
	 * 2 MiB pages (the rest of guest RAM; nothing runs there). */
	t[0] = DT_PT_ADDR | table;
	for (unsigned k = 1; k < 8; k++)
		t[k] = ((uint64_t)k << 21) | PTE_P | PTE_W | PTE_A | PTE_D | PTE_PS;
	if ((rc = guest_mem_write(mem, DT_PD_ADDR, t, sizeof(t))))
		return rc;
	for (unsigned k = 0; k < 512; k++) {
		uint64_t frame, a = page_attrs((uint64_t)k << 12, &frame);
		t[k] = a ? frame | a : 0;
	}
	return guest_mem_write(mem, DT_PT_ADDR, t, sizeof(t));
}

/* 32-bit paging (SDM vol. 3 §4.3): the first 4 MiB through one table. */
static int write_paging32(const struct guest_mem *mem)
{
	uint32_t t[1024];
	int rc;

	memset(t, 0, sizeof(t));
	t[0] = (uint32_t)(DT_PT32_ADDR | PTE_P | PTE_W | PTE_U | PTE_A);
	if ((rc = guest_mem_write(mem, DT_PD32_ADDR, t, sizeof(t))))
		return rc;
	for (unsigned k = 0; k < 1024; k++) {
		uint64_t frame, a = page_attrs((uint64_t)k << 12, &frame);
		if (k >= 512) /* 2-4 MiB: supervisor, like the long-mode PD */
			a = PTE_P | PTE_W | PTE_A | PTE_D;
		t[k] = a ? (uint32_t)(frame | a) : 0;
	}
	return guest_mem_write(mem, DT_PT32_ADDR, t, sizeof(t));
}

int dt_machine_write(const struct guest_mem *mem)
{
	int rc = write_gdt(mem);
	if (!rc)
		rc = write_idts(mem);
	if (!rc)
		rc = write_stubs(mem);
	if (!rc)
		rc = write_tss(mem);
	if (!rc)
		rc = write_paging64(mem);
	if (!rc)
		rc = write_paging32(mem);
	return rc;
}

static struct segment gdt_segment(uint16_t sel)
{
	struct segment seg[DT_GDT_ENTRIES];
	bool used[DT_GDT_ENTRIES];
	gdt_segments(seg, used);
	struct segment s = seg[(sel >> 3) % DT_GDT_ENTRIES];
	s.selector = sel;
	return s;
}

static void set_data_segments(struct cpu_state *s, uint16_t sel)
{
	s->seg[SEG_DS] = s->seg[SEG_ES] = s->seg[SEG_SS] = gdt_segment(sel);
	s->seg[SEG_FS] = s->seg[SEG_GS] = gdt_segment(sel);
}

static void state_long(struct cpu_state *s)
{
	s->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s->cr3 = DT_PML4_ADDR;
	s->cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	s->efer = EFER_LME | EFER_LMA;
	s->idt.base = DT_IDT64_ADDR;
	s->idt.limit = 256 * 16 - 1;
	s->seg[SEG_TR] = gdt_segment(DT_SEL_TSS);
}

/* Legacy protected mode runs without paging: PVM cannot shadow 32-bit
 * page tables (it drops CR0.PG with a spurious shutdown). The 32-bit
 * tables are still written for CPL0 tests that enable paging themselves. */
static void state_legacy(struct cpu_state *s)
{
	s->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP;
	s->cr3 = 0;
	s->cr4 = CR4_OSFXSR | CR4_OSXMMEXCPT;
	s->efer = 0;
	s->idt.base = DT_IDT32_ADDR;
	s->idt.limit = 256 * 8 - 1;
	s->seg[SEG_TR] = gdt_segment(DT_SEL_TSS32);
}

void dt_machine_state(enum dt_mode m, uint64_t apic_base, struct cpu_state *s)
{
	memset(s, 0, sizeof(*s));
	s->apic_base = apic_base;
	s->rip = DT_CODE_ADDR;
	s->gpr[GPR_RSP] = DT_STACK_TOP;
	s->rflags = RFLAGS_FIXED | RFLAGS_IF | (3ULL << 12); /* IOPL 3 */
	s->gdt.base = DT_GDT_ADDR;
	s->gdt.limit = DT_GDT_ENTRIES * 8 - 1;
	s->seg[SEG_LDTR] = (struct segment){.type = TYPE_LDT, .unusable = 1};

	switch (m) {
	case DT_MODE_LONG64:
	case DT_MODE_COMPAT32:
		state_long(s);
		/* PVM runs native 64-bit user code with IOPL 0 whatever the
		 * guest asks (port I/O there is tested in the emulated modes). */
		if (m == DT_MODE_LONG64)
			s->rflags &= ~(3ULL << 12);
		set_data_segments(s, DT_SEL_UDATA);
		s->seg[SEG_CS] = gdt_segment(m == DT_MODE_LONG64 ? DT_SEL_UCODE64 : DT_SEL_UCODE32);
		break;
	case DT_MODE_KERNEL64:
		state_long(s);
		set_data_segments(s, DT_SEL_KDATA);
		s->seg[SEG_CS] = gdt_segment(DT_SEL_KCODE64);
		break;
	case DT_MODE_PROT32:
		state_legacy(s);
		set_data_segments(s, DT_SEL_UDATA);
		s->seg[SEG_CS] = gdt_segment(DT_SEL_UCODE32);
		break;
	case DT_MODE_PROT16:
	default:
		state_legacy(s);
		set_data_segments(s, DT_SEL_UDATA);
		s->seg[SEG_CS] = gdt_segment(DT_SEL_UCODE16);
		s->seg[SEG_SS] = gdt_segment(DT_SEL_UDATA16);
		s->seg[SEG_DS] = s->seg[SEG_ES] = gdt_segment(DT_SEL_UDATA16D);
		s->rip = 0;
		s->gpr[GPR_RSP] = DT_STACK_TOP - DT_STACK_ADDR;
		break;
	}
}
