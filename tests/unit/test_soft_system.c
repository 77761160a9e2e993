/* Soft CPU: system instructions, mode switches, MSRs, CPUID and exception
 * delivery (SDM vol. 2 and vol. 3 chapters 2-9). Code bytes were produced
 * with the GNU assembler (intel syntax) and are quoted next to each array. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "arch/x86/boot_cpu.h"
#include "engine/soft/soft.h"
#include "engine/soft/system.h"
#include "soft_harness.h"

/* ---- a long-mode environment with rings 0 and 3 ---- */

#define GDT_ADDR 0x5000ULL
#define IDT_ADDR 0x6000ULL
#define TSS_ADDR 0x7000ULL
#define HANDLERS 0x8000ULL /* 16 bytes per vector, each starting with HLT */
#define PML4_ADDR 0x20000ULL
#define RSP0 0x380000ULL
#define IST1 0x390000ULL
#define USER_STACK 0x3f0000ULL
#define CODE HARNESS_CODE_ADDR
#define DATA HARNESS_DATA_ADDR
#define NVEC 32

enum { K_CS = 0x08, K_SS = 0x10, U_CS32 = 0x18, U_SS = 0x20, U_CS64 = 0x28, TSS_SEL = 0x30,
       K_CS32 = 0x40, TSS2_SEL = 0x48 };

static struct segment flat(uint16_t sel, bool code, unsigned dpl, bool l)
{
	return (struct segment){.limit = 0xffffffff, .selector = (uint16_t)(sel | dpl),
				.type = code ? 11 : 3, .s = 1, .dpl = (uint8_t)dpl, .present = 1,
				.l = l, .db = code ? !l : 1, .g = 1};
}

static void put64(struct harness *h, uint64_t gpa, uint64_t v) { guest_mem_write(&h->mem, gpa, &v, 8); }

static uint64_t get64(struct harness *h, uint64_t gpa)
{
	uint64_t v = 0;
	guest_mem_read(&h->mem, gpa, &v, 8);
	return v;
}

static uint64_t handler(unsigned vector) { return HANDLERS + 16ULL * vector; }

/* A 64-bit TSS descriptor (16 bytes) for base/limit/type. */
static void put_tss_desc(struct harness *h, uint16_t sel, uint64_t base, uint32_t limit,
			 unsigned type)
{
	struct segment t = {.base = base, .limit = limit, .type = (uint8_t)type, .present = 1};
	put64(h, GDT_ADDR + sel, boot_cpu_descriptor(&t));
	put64(h, GDT_ADDR + sel + 8, base >> 32);
}

static void build_gdt(struct harness *h)
{
	struct segment kcs = flat(K_CS, true, 0, true), kss = flat(K_SS, false, 0, false);
	struct segment ucs32 = flat(U_CS32, true, 3, false), uss = flat(U_SS, false, 3, false);
	struct segment ucs64 = flat(U_CS64, true, 3, true), kcs32 = flat(K_CS32, true, 0, false);
	put64(h, GDT_ADDR, 0);
	put64(h, GDT_ADDR + K_CS, boot_cpu_descriptor(&kcs));
	put64(h, GDT_ADDR + K_SS, boot_cpu_descriptor(&kss));
	put64(h, GDT_ADDR + U_CS32, boot_cpu_descriptor(&ucs32));
	put64(h, GDT_ADDR + U_SS, boot_cpu_descriptor(&uss));
	put64(h, GDT_ADDR + U_CS64, boot_cpu_descriptor(&ucs64));
	put_tss_desc(h, TSS_SEL, TSS_ADDR, 0x67, 11);
	put64(h, GDT_ADDR + K_CS32, boot_cpu_descriptor(&kcs32));
	put_tss_desc(h, TSS2_SEL, 0x1234567000ULL, 0x67, 9); /* available, base above 4 GiB */
}

/* 64-bit interrupt gates to K_CS:handler(v), DPL 3; #PF uses IST 1. */
static void build_idt(struct harness *h)
{
	for (unsigned v = 0; v < NVEC; v++) {
		uint64_t off = handler(v);
		uint64_t ist = v == EXC_PF ? 1 : 0;
		uint64_t lo = (off & 0xffff) | ((uint64_t)K_CS << 16) | (ist << 32) | (0xeeULL << 40) |
			      ((off >> 16) << 48);
		put64(h, IDT_ADDR + 16 * v, lo);
		put64(h, IDT_ADDR + 16 * v + 8, off >> 32);
		uint8_t hlt = 0xf4;
		guest_mem_write(&h->mem, off, &hlt, 1);
	}
}

/* Identity map of the first GiB with user-accessible 2 MiB pages, except
 * that 0x600000-0x7fffff is not present. */
static void build_page_tables(struct harness *h)
{
	put64(h, PML4_ADDR, (PML4_ADDR + 0x1000) | 7);
	put64(h, PML4_ADDR + 0x1000, (PML4_ADDR + 0x2000) | 7);
	for (uint64_t k = 0; k < 512; k++)
		put64(h, PML4_ADDR + 0x2000 + 8 * k, k == 3 ? 0 : (k << 21) | 0x87);
}

static struct harness *long_env(void)
{
	struct harness *h = harness_new(64);
	assert_non_null(h);
	build_gdt(h);
	build_idt(h);
	build_page_tables(h);
	put64(h, TSS_ADDR + 4, RSP0);
	put64(h, TSS_ADDR + 0x24, IST1);
	uint16_t iomap = 0x68; /* at the limit: no bitmap, every port denied above IOPL */
	guest_mem_write(&h->mem, TSS_ADDR + 0x66, &iomap, 2);

	struct cpu_state *s = &h->state;
	s->gdt.base = GDT_ADDR;
	s->gdt.limit = 0x57;
	s->idt.base = IDT_ADDR;
	s->idt.limit = NVEC * 16 - 1;
	s->seg[SEG_CS] = flat(K_CS, true, 0, true);
	s->seg[SEG_SS] = s->seg[SEG_DS] = s->seg[SEG_ES] = flat(K_SS, false, 0, false);
	s->seg[SEG_FS] = s->seg[SEG_GS] = flat(K_SS, false, 0, false);
	s->seg[SEG_TR] = (struct segment){.base = TSS_ADDR, .limit = 0x67, .selector = TSS_SEL,
					  .type = 11, .present = 1};
	s->cr3 = PML4_ADDR;
	s->rip = CODE;
	s->gpr[GPR_RSP] = HARNESS_STACK_TOP;
	harness_sync(h);
	return h;
}

/* Switches the harness CPU to CPL 3 in 64-bit mode at rip. */
static void enter_user(struct harness *h, uint64_t rip)
{
	h->state.seg[SEG_CS] = flat(U_CS64, true, 3, true);
	h->state.seg[SEG_SS] = flat(U_SS, false, 3, false);
	h->state.rip = rip;
	h->state.gpr[GPR_RSP] = USER_STACK;
	harness_sync(h);
}

static void load_at(struct harness *h, uint64_t gpa, const void *code, size_t len)
{
	guest_mem_write(&h->mem, gpa, code, len);
}

/* Runs `steps` instructions from CODE at CPL 0 and expects the last to
 * deliver `vector` through the IDT (error code `err` if it has one). */
static void expect_fault(struct harness *h, const uint8_t *code, size_t len, unsigned steps,
			 unsigned vector, int64_t err)
{
	h->state.rip = CODE;
	h->state.gpr[GPR_RSP] = HARNESS_STACK_TOP;
	h->state.rflags = RFLAGS_FIXED;
	harness_sync(h);
	load_at(h, CODE, code, len);
	assert_int_equal(harness_step(h, steps), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(vector));
	if (err >= 0) {
		assert_int_equal(get64(h, h->state.gpr[GPR_RSP]), (uint64_t)err);
		assert_int_equal(get64(h, h->state.gpr[GPR_RSP] + 8), CODE + 0); /* faulting RIP */
	}
}

/* ---- real mode → protected mode → long mode ---- */

static void test_mode_transitions(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	assert_non_null(h);
	/* GDT at 0x3000: null, 0x08 code32, 0x10 data, 0x18 code64 (not accessed). */
	put64(h, 0x3000, 0);
	put64(h, 0x3008, 0x00cf9a000000ffffULL);
	put64(h, 0x3010, 0x00cf92000000ffffULL);
	put64(h, 0x3018, 0x00af9a000000ffffULL);
	uint8_t gdtr[6] = {0x1f, 0x00, 0x00, 0x30, 0x00, 0x00};
	load_at(h, 0x2f00, gdtr, sizeof(gdtr));
	/* PML4 0x10000 → PDPT 0x11000 → PD 0x12000, one 2 MiB page at 0. */
	put64(h, 0x10000, 0x11003);
	put64(h, 0x11000, 0x12003);
	put64(h, 0x12000, 0x83);
	/* 0x1000, 16-bit: lgdt [0x2f00]; mov eax, 0x11; mov cr0, eax; jmp dword 0x08:0x1100 */
	static const uint8_t rm[] = {0x0f, 0x01, 0x16, 0x00, 0x2f, 0x66, 0xb8, 0x11, 0x00, 0x00, 0x00,
				     0x0f, 0x22, 0xc0, 0x66, 0xea, 0x00, 0x11, 0x00, 0x00, 0x08, 0x00};
	/* 0x1100, 32-bit: mov eax, 0x10; mov ds, eax; mov ss, eax; mov es, ax; mov eax, 0x20;
	 * mov cr4, eax; mov eax, 0x10000; mov cr3, eax; mov ecx, 0xc0000080; mov eax, 0x100;
	 * mov edx, 0; wrmsr; mov eax, 0x80000011; mov cr0, eax; jmp 0x18:0x1200 */
	static const uint8_t pm[] = {
	    0xb8, 0x10, 0x00, 0x00, 0x00, 0x8e, 0xd8, 0x8e, 0xd0, 0x8e, 0xc0, 0xb8, 0x20, 0x00,
	    0x00, 0x00, 0x0f, 0x22, 0xe0, 0xb8, 0x00, 0x00, 0x01, 0x00, 0x0f, 0x22, 0xd8, 0xb9,
	    0x80, 0x00, 0x00, 0xc0, 0xb8, 0x00, 0x01, 0x00, 0x00, 0xba, 0x00, 0x00, 0x00, 0x00,
	    0x0f, 0x30, 0xb8, 0x11, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0xea, 0x00, 0x12, 0x00,
	    0x00, 0x18, 0x00};
	/* 0x1200, 64-bit: movabs rax, 0x1122334455667788 */
	static const uint8_t lm[] = {0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
	load_at(h, 0x1000, rm, sizeof(rm));
	load_at(h, 0x1100, pm, sizeof(pm));
	load_at(h, 0x1200, lm, sizeof(lm));

	assert_int_equal(harness_step(h, 4), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, 0x1100);
	assert_int_equal(h->state.cr0, 0x11);
	assert_int_equal(h->state.seg[SEG_CS].selector, 0x08);
	assert_int_equal(h->state.seg[SEG_CS].db, 1);
	assert_int_equal(h->state.gdt.base, 0x3000);
	assert_int_equal(get64(h, 0x3008) >> 40 & 0xff, 0x9b); /* accessed bit set in memory */

	assert_int_equal(harness_step(h, 14), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.seg[SEG_SS].selector, 0x10);
	assert_int_equal(h->state.efer, EFER_LME | EFER_LMA); /* paging on: IA-32e active */
	assert_int_equal(h->state.cr0, 0x80000011);
	assert_int_equal(h->state.seg[SEG_CS].l, 0); /* compatibility mode until the jump */

	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.seg[SEG_CS].selector, 0x18);
	assert_int_equal(h->state.seg[SEG_CS].l, 1);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x1122334455667788ULL); /* decoded as 64-bit */
	assert_int_equal(h->state.rip, 0x120a);
	harness_free(h);
}

/* 64-bit → compatibility mode (far JMP m16:32) → paging off (LMA clears)
 * → LME off: back in 32-bit protected mode. */
static void test_leave_long_mode(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* jmp far [rip+0x20] → m16:32 at CODE+0x26 = {CODE+0x100, K_CS32} */
	static const uint8_t code[] = {0xff, 0x2d, 0x20, 0x00, 0x00, 0x00};
	uint8_t ptr[6] = {0x00, 0x01, 0x20, 0x00, K_CS32, 0x00};
	/* mov eax, cr0; mov eax, 0x11; mov cr0, eax; mov ecx, 0xc0000080; mov eax, 0; mov edx, 0;
	 * wrmsr */
	static const uint8_t compat[] = {0x0f, 0x20, 0xc0, 0xb8, 0x11, 0x00, 0x00, 0x00, 0x0f, 0x22,
					 0xc0, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0xb8, 0x00, 0x00, 0x00,
					 0x00, 0xba, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x30};
	load_at(h, CODE, code, sizeof(code));
	load_at(h, CODE + 0x26, ptr, sizeof(ptr));
	load_at(h, CODE + 0x100, compat, sizeof(compat));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + 0x100);
	assert_int_equal(h->state.seg[SEG_CS].selector, K_CS32);
	assert_int_equal(h->state.efer & EFER_LMA, EFER_LMA);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x80000031ULL); /* PG PE ET NE */
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.cr0, 0x11);
	assert_int_equal(h->state.efer, EFER_LME); /* LMA cleared with PG */
	assert_int_equal(harness_step(h, 4), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.efer, 0);
	assert_int_equal(h->state.rip, CODE + 0x100 + sizeof(compat));
	harness_free(h);
}

/* ---- CPUID ---- */

static void cpuid_run(struct harness *h, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	static const uint8_t code[] = {0x0f, 0xa2};
	h->state.rip = CODE;
	h->state.gpr[GPR_RAX] = leaf | 0xdead00000000ULL;
	h->state.gpr[GPR_RCX] = sub;
	harness_sync(h);
	load_at(h, CODE, code, sizeof(code));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	r[0] = (uint32_t)h->state.gpr[GPR_RAX];
	r[1] = (uint32_t)h->state.gpr[GPR_RBX];
	r[2] = (uint32_t)h->state.gpr[GPR_RCX];
	r[3] = (uint32_t)h->state.gpr[GPR_RDX];
	assert_int_equal(h->state.gpr[GPR_RAX] >> 32, 0); /* 32-bit results zero-extend */
}

static void test_cpuid(void **state)
{
	(void)state;
	struct harness *h = harness_new(64);
	uint32_t r[4], max_basic;
	char vendor[13] = {0}, brand[49] = {0};

	cpuid_run(h, 0, 0, r);
	max_basic = r[0];
	memcpy(vendor, &r[1], 4);
	memcpy(vendor + 4, &r[3], 4);
	memcpy(vendor + 8, &r[2], 4);
	assert_string_equal(vendor, "GenuineIntel");
	assert_true(max_basic >= 0xb);

	cpuid_run(h, 1, 0, r);
	assert_int_equal((r[0] >> 8) & 0xf, 6);                       /* family 6 */
	assert_int_equal(r[3] & 0x0700a171u, 0x0700a171u);            /* FPU TSC MSR PAE CX8 PGE CMOV FXSR SSE SSE2 */
	assert_int_equal(r[3] & (1u << 9), 1u << 9);                   /* APIC: devices/lapic.c */
	assert_int_equal(r[2] & (1u << 31 | 1u << 13 | 1u << 23), 1u << 31 | 1u << 13 | 1u << 23);
	assert_int_equal((r[1] >> 8) & 0xff, 8);                      /* 64-byte CLFLUSH lines */

	cpuid_run(h, 7, 0, r);
	assert_int_equal(r[1] & 0x83, 0x83); /* FSGSBASE, TSC_ADJUST, SMEP */

	cpuid_run(h, 0x80000000u, 0, r);
	assert_true(r[0] >= 0x80000008u);
	cpuid_run(h, 0x80000001u, 0, r);
	assert_int_equal(r[3] & (1u << 29 | 1u << 20 | 1u << 11 | 1u << 27),
			 1u << 29 | 1u << 20 | 1u << 11 | 1u << 27);
	assert_int_equal(r[2] & 1, 1); /* LAHF in 64-bit mode */
	cpuid_run(h, 0x80000008u, 0, r);
	assert_int_equal(r[0] & 0xffff, 0x3028);
	for (unsigned k = 0; k < 3; k++) {
		cpuid_run(h, 0x80000002u + k, 0, r);
		memcpy(brand + 16 * k, r, 16);
	}
	assert_string_equal(brand, "shrike soft CPU");

	/* Topology: an invalid level echoes the index in ECX[7:0]. */
	cpuid_run(h, 0xb, 0, r);
	assert_int_equal((r[2] >> 8) & 0xff, 1); /* SMT level */
	cpuid_run(h, 0xb, 7, r);
	assert_int_equal(r[0], 0);
	assert_int_equal(r[2], 7);

	/* Beyond the maxima: the highest basic leaf (Intel). */
	uint32_t top[4];
	cpuid_run(h, max_basic, 0, top);
	cpuid_run(h, 0x40000000u, 0, r);
	assert_memory_equal(r, top, sizeof(top));
	cpuid_run(h, 0x80000099u, 0, r);
	assert_memory_equal(r, top, sizeof(top));
	/* An absent leaf below the maximum reads as zeros. */
	cpuid_run(h, 3, 0, r);
	assert_int_equal(r[0] | r[1] | r[2] | r[3], 0);
	harness_free(h);
}

/* ---- MSRs ---- */

static void test_msr_round_trips(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* mov ecx, LSTAR; mov eax, 0x12345678; mov edx, 0xffff8000; wrmsr; mov eax, 0;
	 * mov edx, 0; rdmsr */
	static const uint8_t code[] = {0xb9, 0x82, 0x00, 0x00, 0xc0, 0xb8, 0x78, 0x56, 0x34, 0x12,
				       0xba, 0x00, 0x80, 0xff, 0xff, 0x0f, 0x30, 0xb8, 0x00, 0x00,
				       0x00, 0x00, 0xba, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x32};
	load_at(h, CODE, code, sizeof(code));
	assert_int_equal(harness_step(h, 7), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x12345678);
	assert_int_equal(h->state.gpr[GPR_RDX], 0xffff8000);

	/* PAT keeps its reset value; EFER reads back LMA; FS_BASE is FS.base. */
	static const uint8_t rd[] = {0x0f, 0x32};
	struct { uint32_t msr; uint64_t want; } reads[] = {
	    {0x277, 0x0007040600070406ULL},
	    {0xc0000080u, EFER_LME | EFER_LMA},
	    {0xfe, 0x508},
	    {0x1b, 0xfee00900ULL}, /* APIC_BASE: enabled, BSP */
	};
	for (unsigned k = 0; k < sizeof(reads) / sizeof(reads[0]); k++) {
		h->state.rip = CODE;
		h->state.gpr[GPR_RCX] = reads[k].msr;
		harness_sync(h);
		load_at(h, CODE, rd, sizeof(rd));
		assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
		assert_int_equal(h->state.gpr[GPR_RAX] | h->state.gpr[GPR_RDX] << 32, reads[k].want);
	}

	/* WRMSR FS_BASE changes the segment base. */
	static const uint8_t wr[] = {0x0f, 0x30};
	h->state.rip = CODE;
	h->state.gpr[GPR_RCX] = 0xc0000100u;
	h->state.gpr[GPR_RAX] = 0x1000;
	h->state.gpr[GPR_RDX] = 0x7f;
	harness_sync(h);
	load_at(h, CODE, wr, sizeof(wr));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.seg[SEG_FS].base, 0x7f00001000ULL);
	harness_free(h);
}

static void wrmsr_expect_gp(struct harness *h, uint32_t msr, uint64_t v)
{
	static const uint8_t wr[] = {0x0f, 0x30};
	h->state.gpr[GPR_RCX] = msr;
	h->state.gpr[GPR_RAX] = v & 0xffffffffULL;
	h->state.gpr[GPR_RDX] = v >> 32;
	expect_fault(h, wr, sizeof(wr), 1, EXC_GP, 0);
}

static void test_msr_faults(void **state)
{
	(void)state;
	struct harness *h = long_env();
	static const uint8_t rd[] = {0x0f, 0x32};
	h->state.gpr[GPR_RCX] = 0x12345;
	expect_fault(h, rd, sizeof(rd), 1, EXC_GP, 0);                 /* unknown MSR */
	h->state.gpr[GPR_RCX] = 0x4b564d00;
	expect_fault(h, rd, sizeof(rd), 1, EXC_GP, 0);                 /* no KVM paravirtual MSRs */
	wrmsr_expect_gp(h, 0xc0000082u, 0x0000800000000000ULL);        /* LSTAR not canonical */
	wrmsr_expect_gp(h, 0xc0000080u, EFER_LME | EFER_SCE | 2);      /* EFER reserved bit */
	wrmsr_expect_gp(h, 0xc0000080u, EFER_SCE);                     /* LME change with PG on */
	wrmsr_expect_gp(h, 0x277, 0x0007040600070402ULL);              /* PAT type 2 */
	wrmsr_expect_gp(h, 0xc0000103u, 1ULL << 32);                   /* TSC_AUX bits 63:32 */
	wrmsr_expect_gp(h, 0x10a, 0);                                  /* ARCH_CAPABILITIES is read-only */
	wrmsr_expect_gp(h, 0x1b, 0xfee00d00ULL);                       /* x2APIC mode: not supported */
	assert_int_equal(h->state.gpr[GPR_RSP], HARNESS_STACK_TOP - 48);
	assert_int_equal(h->state.seg[SEG_CS].selector, K_CS);
	/* At CPL 3 RDMSR is #GP(0) even for a valid MSR. */
	enter_user(h, CODE + 0x100);
	h->state.gpr[GPR_RCX] = 0x277;
	harness_sync(h);
	load_at(h, CODE + 0x100, rd, sizeof(rd));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_GP));
	harness_free(h);

	/* Without an IDT the #GP escalates to a triple fault. */
	h = harness_new(64);
	h->state.gpr[GPR_RCX] = 0x12345;
	harness_sync(h);
	harness_load(h, rd, sizeof(rd));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_SHUTDOWN);
	harness_free(h);
}

static void test_tsc(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* rdtsc; rdtscp (TSC_AUX = 0x55 first) */
	static const uint8_t wr[] = {0x0f, 0x30};
	h->state.gpr[GPR_RCX] = 0xc0000103u;
	h->state.gpr[GPR_RAX] = 0x55;
	h->state.gpr[GPR_RDX] = 0;
	harness_sync(h);
	load_at(h, CODE, wr, sizeof(wr));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	static const uint8_t code[] = {0x0f, 0x31, 0x0f, 0x01, 0xf9};
	h->state.rip = CODE;
	harness_sync(h);
	load_at(h, CODE, code, sizeof(code));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	uint64_t t1 = h->state.gpr[GPR_RAX] | h->state.gpr[GPR_RDX] << 32;
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	uint64_t t2 = h->state.gpr[GPR_RAX] | h->state.gpr[GPR_RDX] << 32;
	assert_true(t2 >= t1);
	assert_int_equal(h->state.gpr[GPR_RCX], 0x55);
	/* WRMSR IA32_TSC sets the counter. */
	h->state.rip = CODE;
	h->state.gpr[GPR_RCX] = 0x10;
	h->state.gpr[GPR_RAX] = 0;
	h->state.gpr[GPR_RDX] = 0x100;
	harness_sync(h);
	load_at(h, CODE, wr, sizeof(wr));
	load_at(h, CODE + 2, code, 2);
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	uint64_t t3 = h->state.gpr[GPR_RAX] | h->state.gpr[GPR_RDX] << 32;
	assert_true(t3 >= 0x10000000000ULL && t3 < 0x10000000000ULL + 10 * SOFT_TSC_HZ);
	harness_free(h);
}

/* One WRMSR (ECX = msr, EDX:EAX = v) or, with write false, one RDMSR whose
 * result is returned. */
static uint64_t msr_access(struct harness *h, bool write, uint32_t msr, uint64_t v)
{
	static const uint8_t wr[] = {0x0f, 0x30}, rd[] = {0x0f, 0x32};
	h->state.rip = CODE;
	h->state.gpr[GPR_RCX] = msr;
	h->state.gpr[GPR_RAX] = v & 0xffffffffu;
	h->state.gpr[GPR_RDX] = v >> 32;
	harness_sync(h);
	load_at(h, CODE, write ? wr : rd, 2);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	return h->state.gpr[GPR_RAX] | h->state.gpr[GPR_RDX] << 32;
}

/* IA32_TSC_ADJUST (SDM vol. 3 §17.17.3): 0 at reset; adding X to it moves
 * the TSC by X; a TSC write that moves the TSC by X adds X to it. */
static void test_tsc_adjust(void **state)
{
	(void)state;
	struct harness *h = long_env();
	const uint64_t x = 1000 * SOFT_TSC_HZ, slack = 10 * SOFT_TSC_HZ, v = 1ULL << 50;
	assert_int_equal(msr_access(h, false, 0x3b, 0), 0);

	uint64_t before = msr_access(h, false, 0x10, 0);
	msr_access(h, true, 0x3b, x);
	uint64_t after = msr_access(h, false, 0x10, 0);
	assert_true(after >= before + x && after < before + x + slack);
	assert_int_equal(msr_access(h, false, 0x3b, 0), x);

	msr_access(h, true, 0x3b, 0); /* back by X */
	uint64_t back = msr_access(h, false, 0x10, 0);
	assert_true(back >= before && back < before + slack);

	/* TSC := v moves it by about v - back; TSC_ADJUST follows. */
	msr_access(h, true, 0x10, v);
	uint64_t adj = msr_access(h, false, 0x3b, 0);
	assert_true(adj <= v - back && adj > v - back - slack);
	uint64_t t = msr_access(h, false, 0x10, 0);
	assert_true(t >= v && t < v + slack);
	harness_free(h);
}

/* ---- control registers ---- */

static void test_control_register_faults(void **state)
{
	(void)state;
	struct harness *h = long_env();
	static const uint8_t cr1[] = {0x0f, 0x20, 0xc8};      /* mov rax, cr1 */
	static const uint8_t to_cr4[] = {0x0f, 0x22, 0xe0};   /* mov cr4, rax */
	static const uint8_t to_cr0[] = {0x0f, 0x22, 0xc0};   /* mov cr0, rax */
	static const uint8_t to_cr3[] = {0x0f, 0x22, 0xd8};   /* mov cr3, rax */
	static const uint8_t to_cr8[] = {0x44, 0x0f, 0x22, 0xc0}; /* mov cr8, rax */
	expect_fault(h, cr1, sizeof(cr1), 1, EXC_UD, -1);
	h->state.gpr[GPR_RAX] = CR4_PAE | (1u << 6); /* MCE is not advertised */
	expect_fault(h, to_cr4, sizeof(to_cr4), 1, EXC_GP, 0);
	h->state.gpr[GPR_RAX] = CR4_PAE | (1u << 3); /* DE is not advertised either */
	expect_fault(h, to_cr4, sizeof(to_cr4), 1, EXC_GP, 0);
	h->state.gpr[GPR_RAX] = 0; /* PAE off in IA-32e mode */
	expect_fault(h, to_cr4, sizeof(to_cr4), 1, EXC_GP, 0);
	h->state.gpr[GPR_RAX] = CR0_PE | CR0_ET; /* PG off in 64-bit mode */
	expect_fault(h, to_cr0, sizeof(to_cr0), 1, EXC_GP, 0);
	h->state.gpr[GPR_RAX] = CR0_PG | CR0_ET; /* PG without PE */
	expect_fault(h, to_cr0, sizeof(to_cr0), 1, EXC_GP, 0);
	h->state.gpr[GPR_RAX] = CR0_PE | CR0_PG | CR0_NW; /* NW without CD */
	expect_fault(h, to_cr0, sizeof(to_cr0), 1, EXC_GP, 0);
	h->state.gpr[GPR_RAX] = 0x8000000000000000ULL | PML4_ADDR;
	expect_fault(h, to_cr3, sizeof(to_cr3), 1, EXC_GP, 0);
	h->state.gpr[GPR_RAX] = 0x10;
	expect_fault(h, to_cr8, sizeof(to_cr8), 1, EXC_GP, 0);

	/* Valid writes: CR8 = 15, CR4 += PGE, CR0 += WP; read back. */
	static const uint8_t ok[] = {0x44, 0x0f, 0x22, 0xc0, 0x0f, 0x22, 0xe3, 0x0f, 0x22, 0xc1,
				     0x44, 0x0f, 0x20, 0xc2}; /* mov cr8,rax; mov cr4,rbx; mov cr0,rcx; mov rdx,cr8 */
	h->state.rip = CODE;
	h->state.gpr[GPR_RAX] = 15;
	h->state.gpr[GPR_RBX] = CR4_PAE | CR4_PGE | CR4_PSE;
	h->state.gpr[GPR_RCX] = h->state.cr0 | CR0_WP;
	harness_sync(h);
	load_at(h, CODE, ok, sizeof(ok));
	assert_int_equal(harness_step(h, 4), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.cr8, 15);
	assert_int_equal(h->state.gpr[GPR_RDX], 15);
	assert_int_equal(h->state.cr4, CR4_PAE | CR4_PGE | CR4_PSE);
	assert_true(h->state.cr0 & CR0_WP);

	/* CPL 3: mov rax, cr0 is #GP(0). */
	static const uint8_t from_cr0[] = {0x0f, 0x20, 0xc0};
	enter_user(h, CODE + 0x100);
	load_at(h, CODE + 0x100, from_cr0, sizeof(from_cr0));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_GP));
	assert_int_equal(h->state.gpr[GPR_RSP], RSP0 - 48);
	harness_free(h);
}

/* ---- SYSCALL/SYSRET ---- */

static void test_syscall_sysret(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* EFER = SCE|LME, STAR = 0x0018_0008 << 32, LSTAR = CODE+0x200, FMASK = 0x700;
	 * mov ecx, CODE+0x100; mov r11d, 0x202; sysretq */
	static const uint8_t setup[] = {
	    0xb9, 0x80, 0x00, 0x00, 0xc0, 0xb8, 0x01, 0x05, 0x00, 0x00, 0xba, 0x00, 0x00, 0x00,
	    0x00, 0x0f, 0x30, 0xb9, 0x81, 0x00, 0x00, 0xc0, 0xb8, 0x00, 0x00, 0x00, 0x00, 0xba,
	    0x08, 0x00, 0x18, 0x00, 0x0f, 0x30, 0xb9, 0x82, 0x00, 0x00, 0xc0, 0xb8, 0x00, 0x02,
	    0x20, 0x00, 0xba, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x30, 0xb9, 0x84, 0x00, 0x00, 0xc0,
	    0xb8, 0x00, 0x07, 0x00, 0x00, 0x0f, 0x30, 0xb9, 0x00, 0x01, 0x20, 0x00, 0x41, 0xbb,
	    0x02, 0x02, 0x00, 0x00, 0x48, 0x0f, 0x07};
	static const uint8_t user[] = {0x0f, 0x05};   /* syscall */
	static const uint8_t kernel[] = {0x0f, 0x07}; /* sysretl: to compatibility mode */
	load_at(h, CODE, setup, sizeof(setup));
	load_at(h, CODE + 0x100, user, sizeof(user));
	load_at(h, CODE + 0x200, kernel, sizeof(kernel));

	assert_int_equal(harness_step(h, 18), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + 0x100);
	assert_int_equal(h->state.seg[SEG_CS].selector, U_CS64 | 3);
	assert_int_equal(h->state.seg[SEG_CS].l, 1);
	assert_int_equal(h->state.seg[SEG_CS].dpl, 3);
	assert_int_equal(h->state.seg[SEG_SS].selector, U_SS | 3);
	assert_int_equal(h->state.seg[SEG_SS].dpl, 3);
	assert_int_equal(h->state.rflags, 0x202);

	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + 0x200);
	assert_int_equal(h->state.gpr[GPR_RCX], CODE + 0x102);
	assert_int_equal(h->state.gpr[GPR_R11], 0x202);
	assert_int_equal(h->state.rflags, 0x2); /* IF masked by FMASK */
	assert_int_equal(h->state.seg[SEG_CS].selector, K_CS);
	assert_int_equal(h->state.seg[SEG_SS].selector, K_SS);
	assert_int_equal(h->state.seg[SEG_SS].dpl, 0);

	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + 0x102);
	assert_int_equal(h->state.seg[SEG_CS].selector, U_CS32 | 3);
	assert_int_equal(h->state.seg[SEG_CS].l, 0);
	assert_int_equal(h->state.seg[SEG_CS].db, 1);

	/* SYSRET at CPL 3 (compatibility mode): SYSCALL/SYSRET are #UD outside
	 * 64-bit mode on Intel. */
	load_at(h, CODE + 0x102, kernel, sizeof(kernel));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_UD));
	harness_free(h);
}

static void test_sysret_noncanonical(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* EFER.SCE; movabs rcx, 0x0000800000000000; sysretq */
	static const uint8_t code[] = {0xb9, 0x80, 0x00, 0x00, 0xc0, 0xb8, 0x01, 0x05, 0x00, 0x00,
				       0xba, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x30, 0x48, 0xb9, 0x00,
				       0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x48, 0x0f, 0x07};
	load_at(h, CODE, code, sizeof(code));
	assert_int_equal(harness_step(h, 6), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_GP));
	assert_int_equal(get64(h, h->state.gpr[GPR_RSP] + 8), CODE + 27); /* at CPL 0 still */
	assert_int_equal(h->state.seg[SEG_CS].selector, K_CS);
	harness_free(h);
}

/* ---- IRETQ to CPL 3, and back through the IDT with a stack switch ---- */

static void test_iretq_to_user_and_fault_back(void **state)
{
	(void)state;
	struct harness *h = long_env();
	static const uint8_t iretq[] = {0x48, 0xcf};
	static const uint8_t user[] = {0xf4}; /* hlt at CPL 3: #GP(0) */
	uint64_t sp = HARNESS_STACK_TOP - 40;
	put64(h, sp, CODE + 0x100);
	put64(h, sp + 8, U_CS64 | 3);
	put64(h, sp + 16, 0x3202); /* IF, IOPL 3: CPL 0 may set IOPL */
	put64(h, sp + 24, USER_STACK);
	put64(h, sp + 32, U_SS | 3);
	h->state.gpr[GPR_RSP] = sp;
	harness_sync(h);
	load_at(h, CODE, iretq, sizeof(iretq));
	load_at(h, CODE + 0x100, user, sizeof(user));

	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + 0x100);
	assert_int_equal(h->state.seg[SEG_CS].selector, U_CS64 | 3);
	assert_int_equal(h->state.seg[SEG_SS].selector, U_SS | 3);
	assert_int_equal(h->state.seg[SEG_SS].dpl, 3);
	assert_int_equal(h->state.gpr[GPR_RSP], USER_STACK);
	assert_int_equal(h->state.rflags, 0x3202);
	assert_true(h->state.seg[SEG_DS].unusable); /* DPL 0 data segments are nulled */
	assert_int_equal(h->state.seg[SEG_DS].selector, 0);

	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_GP));
	assert_int_equal(h->state.seg[SEG_CS].selector, K_CS);
	assert_int_equal(h->state.seg[SEG_SS].selector, 0); /* null SS with RPL 0 */
	assert_true(h->state.seg[SEG_SS].unusable);
	assert_int_equal(h->state.gpr[GPR_RSP], RSP0 - 48);
	assert_int_equal(h->state.rflags & FLAG_IF, 0); /* interrupt gate */
	uint64_t f = RSP0 - 48;
	assert_int_equal(get64(h, f), 0);                  /* error code */
	assert_int_equal(get64(h, f + 8), CODE + 0x100);   /* RIP of the HLT */
	assert_int_equal(get64(h, f + 16), U_CS64 | 3);
	assert_int_equal(get64(h, f + 24), 0x13202); /* RF set in a fault frame */
	assert_int_equal(get64(h, f + 32), USER_STACK);
	assert_int_equal(get64(h, f + 40), U_SS | 3);
	harness_free(h);
}

/* Far RETQ to an outer level, and far CALL m16:32 into compatibility-mode
 * code that returns with a 32-bit RETF. */
static void test_far_call_and_return(void **state)
{
	(void)state;
	struct harness *h = long_env();
	static const uint8_t call[] = {0xff, 0x1d, 0x20, 0x00, 0x00, 0x00}; /* call far [rip+0x20] */
	uint8_t ptr[6] = {0x00, 0x01, 0x20, 0x00, K_CS32, 0x00};
	static const uint8_t retf[] = {0xcb};
	load_at(h, CODE, call, sizeof(call));
	load_at(h, CODE + 0x26, ptr, sizeof(ptr));
	load_at(h, CODE + 0x100, retf, sizeof(retf));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + 0x100);
	assert_int_equal(h->state.seg[SEG_CS].selector, K_CS32);
	assert_int_equal(h->state.gpr[GPR_RSP], HARNESS_STACK_TOP - 8); /* two 4-byte slots */
	uint32_t slots[2];
	guest_mem_read(&h->mem, HARNESS_STACK_TOP - 8, slots, 8);
	assert_int_equal(slots[0], CODE + 6);
	assert_int_equal(slots[1], K_CS);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + 6);
	assert_int_equal(h->state.seg[SEG_CS].selector, K_CS);
	assert_int_equal(h->state.seg[SEG_CS].l, 1);
	assert_int_equal(h->state.gpr[GPR_RSP], HARNESS_STACK_TOP);

	/* retfq to CPL 3: pops RIP, CS, then RSP, SS. */
	static const uint8_t retfq[] = {0x48, 0xcb};
	uint64_t sp = HARNESS_STACK_TOP - 32;
	put64(h, sp, CODE + 0x180);
	put64(h, sp + 8, U_CS64 | 3);
	put64(h, sp + 16, USER_STACK);
	put64(h, sp + 24, U_SS | 3);
	h->state.rip = CODE + 0x10;
	h->state.gpr[GPR_RSP] = sp;
	harness_sync(h);
	load_at(h, CODE + 0x10, retfq, sizeof(retfq));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + 0x180);
	assert_int_equal(h->state.seg[SEG_SS].dpl, 3);
	assert_int_equal(h->state.gpr[GPR_RSP], USER_STACK);
	/* Returning to a more privileged level is #GP(selector). */
	put64(h, USER_STACK - 16, CODE);
	put64(h, USER_STACK - 8, K_CS);
	h->state.gpr[GPR_RSP] = USER_STACK - 16;
	h->state.rip = CODE + 0x10;
	harness_sync(h);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_GP));
	assert_int_equal(get64(h, h->state.gpr[GPR_RSP]), K_CS);
	harness_free(h);
}

/* ---- page fault through the 64-bit IDT (IST 1) ---- */

static void test_page_fault_delivery(void **state)
{
	(void)state;
	struct harness *h = long_env();
	static const uint8_t load[] = {0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x60, 0x00};  /* mov rax, [0x600010] */
	static const uint8_t store[] = {0x48, 0x89, 0x04, 0x25, 0x18, 0x00, 0x60, 0x00}; /* mov [0x600018], rax */
	h->state.rflags = RFLAGS_FIXED | FLAG_IF;
	harness_sync(h);
	load_at(h, CODE, load, sizeof(load));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_PF));
	assert_int_equal(h->state.cr2, 0x600010);
	assert_int_equal(h->state.gpr[GPR_RSP], IST1 - 48);
	assert_int_equal(get64(h, IST1 - 48), 0);                  /* not present, read, supervisor */
	assert_int_equal(get64(h, IST1 - 40), CODE);
	assert_int_equal(get64(h, IST1 - 32), K_CS);
	assert_int_equal(get64(h, IST1 - 24), RFLAGS_FIXED | FLAG_IF | FLAG_RF); /* faults push RF=1 */
	assert_int_equal(get64(h, IST1 - 16), HARNESS_STACK_TOP);
	assert_int_equal(get64(h, IST1 - 8), K_SS);
	assert_int_equal(h->state.seg[SEG_SS].selector, K_SS); /* no privilege change */

	expect_fault(h, store, sizeof(store), 1, EXC_PF, -1);
	assert_int_equal(h->state.cr2, 0x600018);
	assert_int_equal(get64(h, h->state.gpr[GPR_RSP]), PF_WRITE);

	/* From CPL 3: the user bit, and the stack switch still uses IST 1. */
	enter_user(h, CODE + 0x100);
	load_at(h, CODE + 0x100, load, sizeof(load));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_PF));
	assert_int_equal(get64(h, IST1 - 48), PF_USER);
	assert_int_equal(h->state.seg[SEG_SS].selector, 0);
	harness_free(h);
}

/* ---- port I/O ---- */

static void test_io_exits(void **state)
{
	(void)state;
	struct harness *h = long_env();
	static const uint8_t code[] = {0xe6, 0x80, 0xed, 0x66, 0xef}; /* out 0x80, al; in eax, dx; out dx, ax */
	h->state.gpr[GPR_RAX] = 0x12345678;
	h->state.gpr[GPR_RDX] = 0x3f8;
	h->pio_read_value = 0x5a;
	harness_sync(h);
	load_at(h, CODE, code, sizeof(code));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->last_exit.kind, VCPU_EXIT_IO);
	assert_int_equal(h->last_exit.io.port, 0x80);
	assert_int_equal(h->last_exit.io.size, 1);
	assert_true(h->last_exit.io.is_write);
	assert_int_equal(h->last_data[0], 0x78);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->last_exit.io.port, 0x3f8);
	assert_int_equal(h->last_exit.io.size, 4);
	assert_false(h->last_exit.io.is_write);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x5a5a5a5a);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->last_exit.io.size, 2);
	assert_int_equal(h->last_data[0] | h->last_data[1] << 8, 0x5a5a);
	harness_free(h);
}

static void test_io_permission_bitmap(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* A TSS with an I/O bitmap at 0x68 that denies port 0x81 only. */
	uint8_t bitmap[0x21] = {0};
	bitmap[0x10] = 0x02;
	bitmap[0x20] = 0xff;
	guest_mem_write(&h->mem, TSS_ADDR + 0x68, bitmap, sizeof(bitmap));
	h->state.seg[SEG_TR].limit = 0x68 + sizeof(bitmap) - 1;
	static const uint8_t code[] = {0xe6, 0x80, 0xe6, 0x81}; /* out 0x80, al; out 0x81, al */
	enter_user(h, CODE + 0x100);
	load_at(h, CODE + 0x100, code, sizeof(code));
	h->nexits = 0;
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->nexits, 1);
	assert_int_equal(h->last_exit.io.port, 0x80);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->nexits, 1); /* no exit for the denied port */
	assert_int_equal(h->state.rip, handler(EXC_GP));
	/* A word access to 0x80 touches 0x81 too. */
	static const uint8_t word[] = {0x66, 0xe7, 0x80};
	enter_user(h, CODE + 0x100);
	load_at(h, CODE + 0x100, word, sizeof(word));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_GP));
	/* CLI at CPL 3 with IOPL 0 is #GP too. */
	static const uint8_t cli[] = {0xfa};
	enter_user(h, CODE + 0x100);
	load_at(h, CODE + 0x100, cli, sizeof(cli));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, handler(EXC_GP));
	harness_free(h);
}

/* ---- descriptor tables, segments, LAR/LSL/VERR/VERW, LTR ---- */

static void test_lgdt_lidt_sgdt(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* lgdt [DATA]; sgdt [DATA+0x10]; sidt [DATA+0x20] */
	static const uint8_t code[] = {0x0f, 0x01, 0x14, 0x25, 0x00, 0x00, 0x30, 0x00, 0x0f, 0x01,
				       0x04, 0x25, 0x10, 0x00, 0x30, 0x00, 0x0f, 0x01, 0x0c, 0x25,
				       0x20, 0x00, 0x30, 0x00};
	uint8_t desc[10] = {0x57, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
	uint8_t out[10];
	guest_mem_write(&h->mem, DATA, desc, sizeof(desc));
	h->state.gdt.base = 0;
	h->state.gdt.limit = 0;
	harness_sync(h);
	load_at(h, CODE, code, sizeof(code));
	assert_int_equal(harness_step(h, 3), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gdt.base, GDT_ADDR);
	assert_int_equal(h->state.gdt.limit, 0x57);
	guest_mem_read(&h->mem, DATA + 0x10, out, sizeof(out));
	assert_memory_equal(out, desc, sizeof(desc));
	guest_mem_read(&h->mem, DATA + 0x20, out, sizeof(out));
	assert_int_equal(out[0] | out[1] << 8, NVEC * 16 - 1);
	assert_int_equal(out[2] | out[3] << 8 | out[4] << 16, IDT_ADDR);

	/* A non-canonical base is #GP(0); at CPL 3 LGDT is #GP(0). */
	desc[9] = 0x80;
	desc[8] = 0x00;
	guest_mem_write(&h->mem, DATA, desc, sizeof(desc));
	expect_fault(h, code, 8, 1, EXC_GP, 0);
	harness_free(h);

	/* Real mode: a 16-bit LGDT keeps 24 bits of the base, a 32-bit one all 32. */
	h = harness_new(16);
	uint8_t d16[6] = {0xff, 0x00, 0x78, 0x56, 0x34, 0x12};
	guest_mem_write(&h->mem, 0x2f00, d16, sizeof(d16));
	static const uint8_t rm[] = {0x0f, 0x01, 0x16, 0x00, 0x2f, 0x66, 0x0f, 0x01, 0x1e, 0x00, 0x2f};
	harness_load(h, rm, sizeof(rm));
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gdt.base, 0x345678);
	assert_int_equal(h->state.idt.base, 0x12345678);
	assert_int_equal(h->state.idt.limit, 0xff);
	harness_free(h);
}

static void test_segment_checks(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* mov eax, 0x10; lsl ecx, eax; lar edx, eax; verr ax; verw ax; mov eax, 8; verw ax;
	 * lar edx, eax; mov eax, 0; lar edx, eax */
	static const uint8_t code[] = {0xb8, 0x10, 0x00, 0x00, 0x00, 0x0f, 0x03, 0xc8, 0x0f, 0x02,
				       0xd0, 0x0f, 0x00, 0xe0, 0x0f, 0x00, 0xe8, 0xb8, 0x08, 0x00,
				       0x00, 0x00, 0x0f, 0x00, 0xe8, 0x0f, 0x02, 0xd0, 0xb8, 0x00,
				       0x00, 0x00, 0x00, 0x0f, 0x02, 0xd0};
	load_at(h, CODE, code, sizeof(code));
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RCX], 0xffffffff);
	assert_true(h->state.rflags & FLAG_ZF);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.gpr[GPR_RDX], 0x00cf9300);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_true(h->state.rflags & FLAG_ZF); /* verr data */
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_true(h->state.rflags & FLAG_ZF); /* verw data */
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_false(h->state.rflags & FLAG_ZF); /* verw code */
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_true(h->state.rflags & FLAG_ZF);
	assert_int_equal(h->state.gpr[GPR_RDX], 0x00af9b00);
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_false(h->state.rflags & FLAG_ZF); /* null selector */
	assert_int_equal(h->state.gpr[GPR_RDX], 0x00af9b00); /* unchanged */

	/* MOV SS with RPL 3 at CPL 0 is #GP(selector); MOV DS accepts it. */
	static const uint8_t sreg[] = {0xb8, 0x23, 0x00, 0x00, 0x00, 0x8e, 0xd8, 0x8e, 0xd0};
	expect_fault(h, sreg, sizeof(sreg), 3, EXC_GP, -1);
	assert_int_equal(get64(h, h->state.gpr[GPR_RSP]), U_SS);
	assert_int_equal(h->state.seg[SEG_DS].selector, U_SS | 3);
	assert_int_equal(h->state.seg[SEG_DS].dpl, 3);
	/* MOV CS is #UD. */
	static const uint8_t movcs[] = {0x8e, 0xc8};
	expect_fault(h, movcs, sizeof(movcs), 1, EXC_UD, -1);
	harness_free(h);
}

static void test_ltr_and_str(void **state)
{
	(void)state;
	struct harness *h = long_env();
	/* mov eax, 0x48; ltr ax; str ebx; sldt ecx */
	static const uint8_t code[] = {0xb8, 0x48, 0x00, 0x00, 0x00, 0x0f, 0x00, 0xd8, 0x0f, 0x00,
				       0xcb, 0x0f, 0x00, 0xc1};
	load_at(h, CODE, code, sizeof(code));
	h->state.gpr[GPR_RCX] = ~0ULL;
	harness_sync(h);
	assert_int_equal(harness_step(h, 4), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.seg[SEG_TR].selector, TSS2_SEL);
	assert_int_equal(h->state.seg[SEG_TR].base, 0x1234567000ULL);
	assert_int_equal(h->state.seg[SEG_TR].type, 11);
	assert_int_equal((get64(h, GDT_ADDR + TSS2_SEL) >> 40) & 0xf, 11); /* busy in memory */
	assert_int_equal(h->state.gpr[GPR_RBX], TSS2_SEL);
	assert_int_equal(h->state.gpr[GPR_RCX], 0); /* SLDT r32 zero-extends */
	/* Loading a busy TSS is #GP(selector). */
	expect_fault(h, code, sizeof(code), 2, EXC_GP, -1);
	assert_int_equal(get64(h, h->state.gpr[GPR_RSP]), TSS2_SEL);
	harness_free(h);
}

static void test_swapgs_and_fsgsbase(void **state)
{
	(void)state;
	struct harness *h = long_env();
	static const uint8_t wrfs[] = {0xf3, 0x48, 0x0f, 0xae, 0xd0}; /* wrfsbase rax */
	expect_fault(h, wrfs, sizeof(wrfs), 1, EXC_UD, -1);        /* CR4.FSGSBASE clear */
	/* mov eax, 0x10020; mov cr4, rax; movabs rax, 0x1234567890; wrfsbase rax; rdfsbase rbx;
	 * mov ecx, KERNEL_GS_BASE; mov eax, 0xabcd; mov edx, 0; wrmsr; swapgs; rdgsbase rsi;
	 * mov ecx, FS_BASE; rdmsr */
	static const uint8_t code[] = {
	    0xb8, 0x20, 0x00, 0x01, 0x00, 0x0f, 0x22, 0xe0, 0x48, 0xb8, 0x90, 0x78, 0x56, 0x34,
	    0x12, 0x00, 0x00, 0x00, 0xf3, 0x48, 0x0f, 0xae, 0xd0, 0xf3, 0x48, 0x0f, 0xae, 0xc3,
	    0xb9, 0x02, 0x01, 0x00, 0xc0, 0xb8, 0xcd, 0xab, 0x00, 0x00, 0xba, 0x00, 0x00, 0x00,
	    0x00, 0x0f, 0x30, 0x0f, 0x01, 0xf8, 0xf3, 0x48, 0x0f, 0xae, 0xce, 0xb9, 0x00, 0x01,
	    0x00, 0xc0, 0x0f, 0x32};
	h->state.rip = CODE;
	h->state.seg[SEG_GS].base = 0x5555;
	harness_sync(h);
	load_at(h, CODE, code, sizeof(code));
	assert_int_equal(harness_step(h, 13), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.seg[SEG_FS].base, 0x1234567890ULL);
	assert_int_equal(h->state.gpr[GPR_RBX], 0x1234567890ULL);
	assert_int_equal(h->state.gpr[GPR_RSI], 0xabcd);
	assert_int_equal(h->state.seg[SEG_GS].base, 0xabcd);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x34567890);
	assert_int_equal(h->state.gpr[GPR_RDX], 0x12);
	harness_free(h);
}

/* ---- real mode: INT through the IVT, IRET ---- */

static void test_real_mode_interrupt(void **state)
{
	(void)state;
	struct harness *h = harness_new(16);
	uint16_t ivt[2] = {0x0500, 0x0100}; /* vector 0x21 → 0100:0500 */
	guest_mem_write(&h->mem, 0x21 * 4, ivt, sizeof(ivt));
	static const uint8_t code[] = {0xcd, 0x21}; /* int 0x21 */
	static const uint8_t isr[] = {0xcf};        /* iret */
	h->state.rflags = RFLAGS_FIXED | FLAG_IF | FLAG_CF;
	harness_sync(h);
	harness_load(h, code, sizeof(code));
	guest_mem_write(&h->mem, 0x1500, isr, sizeof(isr));
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.seg[SEG_CS].selector, 0x100);
	assert_int_equal(h->state.seg[SEG_CS].base, 0x1000);
	assert_int_equal(h->state.rip, 0x500);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x8000 - 6);
	assert_int_equal(h->state.rflags & FLAG_IF, 0);
	uint16_t frame[3];
	guest_mem_read(&h->mem, 0x8000 - 6, frame, sizeof(frame));
	assert_int_equal(frame[0], 0x1002);
	assert_int_equal(frame[1], 0);
	assert_int_equal(frame[2], RFLAGS_FIXED | FLAG_IF | FLAG_CF);
	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, 0x1002);
	assert_int_equal(h->state.seg[SEG_CS].base, 0);
	assert_int_equal(h->state.gpr[GPR_RSP], 0x8000);
	assert_int_equal(h->state.rflags, RFLAGS_FIXED | FLAG_IF | FLAG_CF);
	harness_free(h);
}

/* ---- 32-bit protected mode: delivery with a TSS stack switch, IRETD ---- */

static void test_protected_mode_stack_switch(void **state)
{
	(void)state;
	struct harness *h = harness_new(32);
	struct segment kcs = flat(0x08, true, 0, false), kss = flat(0x10, false, 0, false);
	struct segment ucs = flat(0x18, true, 3, false), uss = flat(0x20, false, 3, false);
	struct segment tss = {.base = TSS_ADDR, .limit = 0x67, .selector = 0x28, .type = 11,
			      .present = 1};
	put64(h, GDT_ADDR, 0);
	put64(h, GDT_ADDR + 0x08, boot_cpu_descriptor(&kcs));
	put64(h, GDT_ADDR + 0x10, boot_cpu_descriptor(&kss));
	put64(h, GDT_ADDR + 0x18, boot_cpu_descriptor(&ucs));
	put64(h, GDT_ADDR + 0x20, boot_cpu_descriptor(&uss));
	put64(h, GDT_ADDR + 0x28, boot_cpu_descriptor(&tss));
	uint32_t esp0 = 0x380000, ss0 = 0x10;
	guest_mem_write(&h->mem, TSS_ADDR + 4, &esp0, 4);
	guest_mem_write(&h->mem, TSS_ADDR + 8, &ss0, 4);
	/* 32-bit trap gate for #GP → 0x08:0x8000 */
	uint64_t gate = 0x8000 | (0x08ULL << 16) | (0x8fULL << 40);
	put64(h, IDT_ADDR + 8 * EXC_GP, gate);
	static const uint8_t isr[] = {0x58, 0xcf}; /* pop eax; iretd */
	static const uint8_t user[] = {0xf4, 0x90}; /* hlt (#GP at CPL 3); nop */
	guest_mem_write(&h->mem, 0x8000, isr, sizeof(isr));
	guest_mem_write(&h->mem, CODE, user, sizeof(user));

	struct cpu_state *s = &h->state;
	s->gdt.base = GDT_ADDR;
	s->gdt.limit = 0x2f;
	s->idt.base = IDT_ADDR;
	s->idt.limit = 0xff;
	s->seg[SEG_CS] = ucs;
	s->seg[SEG_SS] = s->seg[SEG_DS] = s->seg[SEG_ES] = uss;
	s->seg[SEG_TR] = tss;
	s->rip = CODE;
	s->gpr[GPR_RSP] = USER_STACK;
	s->rflags = RFLAGS_FIXED | FLAG_IF;
	harness_sync(h);

	assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(s->rip, 0x8000);
	assert_int_equal(s->seg[SEG_CS].selector, 0x08);
	assert_int_equal(s->seg[SEG_SS].selector, 0x10);
	assert_int_equal(s->gpr[GPR_RSP], 0x380000 - 24);
	assert_true(s->rflags & FLAG_IF); /* trap gate keeps IF */
	uint32_t frame[6];
	guest_mem_read(&h->mem, 0x380000 - 24, frame, sizeof(frame));
	assert_int_equal(frame[0], 0);          /* error code */
	assert_int_equal(frame[1], CODE);       /* EIP */
	assert_int_equal(frame[2], 0x1b);       /* CS */
	assert_int_equal(frame[3], RFLAGS_FIXED | FLAG_IF | FLAG_RF);
	assert_int_equal(frame[4], USER_STACK); /* ESP */
	assert_int_equal(frame[5], 0x23);       /* SS */

	/* Resume after the HLT: the handler pops the error code and IRETs. */
	uint32_t resume = CODE + 1;
	guest_mem_write(&h->mem, 0x380000 - 20, &resume, 4);
	assert_int_equal(harness_step(h, 2), VCPU_EXIT_DEBUG);
	assert_int_equal(s->rip, CODE + 1);
	assert_int_equal(s->seg[SEG_CS].selector, 0x1b);
	assert_int_equal(s->seg[SEG_SS].selector, 0x23);
	assert_int_equal(s->gpr[GPR_RSP], USER_STACK);
	assert_int_equal(s->seg[SEG_DS].selector, 0x23); /* DPL 3 data stays */
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mode_transitions),
	    cmocka_unit_test(test_leave_long_mode),
	    cmocka_unit_test(test_cpuid),
	    cmocka_unit_test(test_msr_round_trips),
	    cmocka_unit_test(test_msr_faults),
	    cmocka_unit_test(test_tsc), cmocka_unit_test(test_tsc_adjust),
	    cmocka_unit_test(test_control_register_faults),
	    cmocka_unit_test(test_syscall_sysret),
	    cmocka_unit_test(test_sysret_noncanonical),
	    cmocka_unit_test(test_iretq_to_user_and_fault_back),
	    cmocka_unit_test(test_far_call_and_return),
	    cmocka_unit_test(test_page_fault_delivery),
	    cmocka_unit_test(test_io_exits),
	    cmocka_unit_test(test_io_permission_bitmap),
	    cmocka_unit_test(test_lgdt_lidt_sgdt),
	    cmocka_unit_test(test_segment_checks),
	    cmocka_unit_test(test_ltr_and_str),
	    cmocka_unit_test(test_swapgs_and_fsgsbase),
	    cmocka_unit_test(test_real_mode_interrupt),
	    cmocka_unit_test(test_protected_mode_stack_switch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
