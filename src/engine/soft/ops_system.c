/* Instruction group "system": control and debug registers, model-specific
 * registers, CPUID, the time-stamp counter, port I/O, HLT/CLI/STI, cache
 * and TLB maintenance, SYSCALL/SYSRET and SYSENTER/SYSEXIT, and the opcode
 * table for the whole group (segment and descriptor-table instructions and
 * far transfers live in descriptor.c, IRET in exception.c).
 *
 * Specifications: SDM vol. 2 (each instruction), vol. 3 §2.5 (control
 * registers), §2.8.6 (TSD), §4.10.4 (TLB invalidation), §5.8.7-5.8.8
 * (SYSENTER/SYSEXIT, SYSCALL/SYSRET), §9.8.5 (IA-32e mode activation),
 * §17.2 (debug registers), chapter 2 of vol. 4 (MSRs); vol. 1 §19.5 (I/O
 * permission).
 *
 * Not implemented (raise #UD, or #GP where the instruction exists but the
 * form does not): debug breakpoints (DR0-DR7 are stored but never fire),
 * ModRM.mod != 3 encodings of MOV CR/DR (the decoder would take them for
 * memory operands; assemblers never emit them), RDPMC, XGETBV/XSETBV,
 * MONITOR/MWAIT, the PDPTE load checks of MOV CR3 in PAE mode (the MMU
 * checks PDPTEs at each walk instead). */
#include <errno.h>
#include <string.h>

#include "engine/soft/system.h"

/* ======================================================================
 * CPUID: exactly what the soft CPU implements (SDM vol. 2A, CPUID)
 * ====================================================================== */

#define SIG(a, b, c, d) \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define BIT(n) (1u << (n))

#define SOFT_MAX_BASIC 0x16u
#define SOFT_MAX_EXT 0x80000008u
/* Family 6, model 0x1A, stepping 5: a model recent enough for Linux to
 * trust PAT and the TSC (intel.c wants model >= 0xE / 0xF), and old enough
 * to match none of its model-specific quirk or vulnerability tables. */
#define SOFT_FMS ((0x1u << 16) | (6u << 8) | (0xau << 4) | 5u)
#define SOFT_BRAND "shrike soft CPU"

/* Leaf 1 EDX. FPU: the x87 group implements a subset (see ops_x87.c);
 * the bit must be set because x86-64 software assumes x87 exists. APIC:
 * the local APIC model of devices/lapic.c (xAPIC, no x2APIC). */
#define L1_EDX                                                                                   \
	(BIT(0) /* FPU */ | BIT(3) /* PSE */ | BIT(4) /* TSC */ | BIT(5) /* MSR */ |             \
	 BIT(6) /* PAE */ | BIT(8) /* CX8 */ | BIT(11) /* SEP */ | BIT(12) /* MTRR */ |          \
	 BIT(13) /* PGE */ | BIT(15) /* CMOV */ | BIT(16) /* PAT */ | BIT(17) /* PSE-36 */ |     \
	 BIT(19) /* CLFLUSH */ | BIT(23) /* MMX */ | BIT(24) /* FXSR */ | BIT(25) /* SSE */ |    \
	 BIT(26) /* SSE2 */ | BIT(9) /* APIC */)
/* Leaf 1 ECX; the hypervisor bit (31) is added by cpuid_complete(). */
#define L1_ECX                                                                                   \
	(BIT(0) /* SSE3 */ | BIT(9) /* SSSE3 */ | BIT(13) /* CMPXCHG16B */ | BIT(19) /* SSE4.1 */ | \
	 BIT(20) /* SSE4.2 */ | BIT(23) /* POPCNT */ | BIT(24) /* TSC-deadline */)
/* TSC_ADJUST (bit 1): besides being implemented (IA32_TSC_ADJUST below),
 * it tells Linux, with the invariant TSC, that the TSC needs no clocksource
 * watchdog. The soft TSC is host monotonic time and cannot drift, but early
 * in boot the watchdog is jiffies, counted by timer interrupts whose
 * latency here (a busy host, a halted vCPU's wake-up) lets jiffies fall
 * behind by more than the watchdog's margin: the guest then discarded its
 * TSC clocksource for good (acpi_pm instead, and no vDSO clock_gettime). */
#define L7_EBX (BIT(0) /* FSGSBASE */ | BIT(1) /* TSC_ADJUST */ | BIT(7) /* SMEP */)
/* IA32_ARCH_CAPABILITIES exists: an interpreter does not speculate, so it
 * truthfully reports immunity to the transient-execution attacks that
 * have a "not affected" bit (and Linux skips page-table isolation). */
#define L7_EDX BIT(29)
#define X1_ECX BIT(0) /* LAHF/SAHF in 64-bit mode */
#define X1_EDX                                                                                   \
	(BIT(11) /* SYSCALL */ | BIT(20) /* NX */ | BIT(26) /* 1 GiB pages */ |                  \
	 BIT(27) /* RDTSCP */ | BIT(29) /* LM */)
#define X7_EDX BIT(8) /* invariant TSC: host monotonic time, never stops */
#define X8_EAX ((48u << 8) | 40u) /* linear / physical address bits (MAXPHYADDR of mmu.c) */

/* TSC frequency through leaf 0x15: 25 MHz crystal * 40 / 1 = 1 GHz. */
#define TSC_CRYSTAL_HZ 25000000u
#define TSC_RATIO_NUM 40u
#define TSC_RATIO_DEN 1u
_Static_assert((uint64_t)TSC_CRYSTAL_HZ * TSC_RATIO_NUM / TSC_RATIO_DEN == SOFT_TSC_HZ,
	       "CPUID 0x15 must describe SOFT_TSC_HZ");

static const struct cpuid_entry soft_cpuid_leaves[] = {
    /* function, index, indexed, eax, ebx, ecx, edx */
    {0x0, 0, false, SOFT_MAX_BASIC, SIG('G', 'e', 'n', 'u'), SIG('n', 't', 'e', 'l'),
     SIG('i', 'n', 'e', 'I')},
    {0x1, 0, false, SOFT_FMS, 8u << 8 /* CLFLUSH line: 8 * 8 bytes */, L1_ECX, L1_EDX},
    {0x7, 0, true, 0, L7_EBX, 0, L7_EDX},
    /* Topology: filled in by cpuid_complete(). */
    {0xb, 0, true, 0, 0, 0, 0},
    {0xb, 1, true, 0, 0, 0, 0},
    {0xb, 2, true, 0, 0, 0, 0},
    {0x15, 0, false, TSC_RATIO_DEN, TSC_RATIO_NUM, TSC_CRYSTAL_HZ, 0},
    {0x16, 0, false, SOFT_TSC_HZ / 1000000, SOFT_TSC_HZ / 1000000, 100, 0}, /* MHz */
    {0x80000000u, 0, false, SOFT_MAX_EXT, 0, 0, 0},
    {0x80000001u, 0, false, 0, 0, X1_ECX, X1_EDX},
    {0x80000002u, 0, false, 0, 0, 0, 0}, /* brand string, filled in below */
    {0x80000003u, 0, false, 0, 0, 0, 0},
    {0x80000004u, 0, false, 0, 0, 0, 0},
    {0x80000007u, 0, false, 0, 0, 0, X7_EDX},
    {0x80000008u, 0, false, X8_EAX, 0, 0, 0},
};

void soft_cpuid_init(struct soft_cpu *cpu, unsigned ncpus)
{
	struct cpuid_table *t = &cpu->cpuid;
	unsigned n = sizeof(soft_cpuid_leaves) / sizeof(soft_cpuid_leaves[0]);
	_Static_assert(sizeof(soft_cpuid_leaves) / sizeof(soft_cpuid_leaves[0]) <= CPUID_MAX_ENTRIES,
		       "CPUID table too large");

	memset(t, 0, sizeof(*t));
	memcpy(t->entry, soft_cpuid_leaves, sizeof(soft_cpuid_leaves));
	t->count = n;

	char brand[48] = SOFT_BRAND; /* zero-padded */
	for (unsigned k = 0; k < 3; k++) {
		struct cpuid_entry *e = cpuid_find(t, 0x80000002u + k, 0);
		if (e) {
			memcpy(&e->eax, brand + 16 * k, 4);
			memcpy(&e->ebx, brand + 16 * k + 4, 4);
			memcpy(&e->ecx, brand + 16 * k + 8, 4);
			memcpy(&e->edx, brand + 16 * k + 12, 4);
		}
	}
	cpuid_complete(t, cpu->index, ncpus);
}

/* Intel's rules: a leaf above the basic or extended maximum returns the
 * highest basic leaf; an absent leaf or subleaf below the maximum is all
 * zeros, except that the topology leaves echo the level and x2APIC ID. */
static void cpuid_lookup(struct soft_cpu *cpu, uint32_t fn, uint32_t idx, uint32_t out[4])
{
	struct cpuid_table *t = &cpu->cpuid;
	const struct cpuid_entry *basic = cpuid_find(t, 0, 0);
	const struct cpuid_entry *ext = cpuid_find(t, 0x80000000u, 0);
	uint32_t max_basic = basic ? basic->eax : 0;
	uint32_t max_ext = ext ? ext->eax : 0;

	if (!(fn <= max_basic || (fn >= 0x80000000u && fn <= max_ext)))
		fn = max_basic;
	memset(out, 0, 4 * sizeof(out[0]));
	const struct cpuid_entry *e = cpuid_find(t, fn, idx);
	if (e) {
		out[0] = e->eax;
		out[1] = e->ebx;
		out[2] = e->ecx;
		out[3] = e->edx;
	} else if (fn == 0xb || fn == 0x1f) {
		const struct cpuid_entry *level0 = cpuid_find(t, fn, 0);
		out[2] = idx & 0xff;
		out[3] = level0 ? level0->edx : 0;
	}
}

static void cpuid_insn(struct soft_cpu *cpu, struct insn *i) /* 0F A2 */
{
	uint32_t r[4];
	(void)i;
	cpuid_lookup(cpu, (uint32_t)cpu->s.gpr[GPR_RAX], (uint32_t)cpu->s.gpr[GPR_RCX], r);
	reg_write(cpu, GPR_RAX, 4, r[0], true);
	reg_write(cpu, GPR_RBX, 4, r[1], true);
	reg_write(cpu, GPR_RCX, 4, r[2], true);
	reg_write(cpu, GPR_RDX, 4, r[3], true);
}

/* ======================================================================
 * Time-stamp counter
 * ====================================================================== */

/* Host monotonic time scaled to SOFT_TSC_HZ (split so that it cannot
 * overflow for any frequency below 18 GHz). */
static uint64_t host_tsc(void)
{
	uint64_t ns = soft_now_ns();
	return ns / 1000000000ULL * SOFT_TSC_HZ + ns % 1000000000ULL * SOFT_TSC_HZ / 1000000000ULL;
}

uint64_t soft_tsc(struct soft_cpu *cpu) { return host_tsc() + cpu->msr.tsc_offset; }

static void check_tsd(struct soft_cpu *cpu)
{
	if ((cpu->s.cr4 & CR4_TSD) && cpu->cpl != 0)
		soft_gp(cpu, 0);
}

static void write_edx_eax(struct soft_cpu *cpu, uint64_t v)
{
	reg_write(cpu, GPR_RAX, 4, v & 0xffffffffULL, true);
	reg_write(cpu, GPR_RDX, 4, v >> 32, true);
}

static void rdtsc(struct soft_cpu *cpu, struct insn *i) /* 0F 31 */
{
	(void)i;
	check_tsd(cpu);
	write_edx_eax(cpu, soft_tsc(cpu));
}

static void rdtscp(struct soft_cpu *cpu, struct insn *i) /* 0F 01 F9 */
{
	(void)i;
	check_tsd(cpu);
	write_edx_eax(cpu, soft_tsc(cpu));
	reg_write(cpu, GPR_RCX, 4, cpu->msr.tsc_aux & 0xffffffffULL, true);
}

/* ======================================================================
 * Model-specific registers (SDM vol. 4 chapter 2)
 * ====================================================================== */

enum {
	MSR_TSC = 0x10,
	MSR_PLATFORM_ID = 0x17,
	MSR_TSC_ADJUST = 0x3b,
	MSR_APIC_BASE = 0x1b,
	MSR_BIOS_UPDT_TRIG = 0x79,
	MSR_BIOS_SIGN_ID = 0x8b,
	MSR_PLATFORM_INFO = 0xce,
	MSR_MTRRCAP = 0xfe,
	MSR_ARCH_CAPABILITIES = 0x10a,
	MSR_SYSENTER_CS = 0x174,
	MSR_SYSENTER_ESP = 0x175,
	MSR_SYSENTER_EIP = 0x176,
	MSR_MCG_CAP = 0x179,
	MSR_MCG_STATUS = 0x17a,
	MSR_MISC_ENABLE = 0x1a0,
	MSR_DEBUGCTL = 0x1d9,
	MSR_MTRR_VAR_FIRST = 0x200,
	MSR_MTRR_VAR_LAST = 0x20f,
	MSR_MTRR_FIX64K = 0x250,
	MSR_MTRR_FIX16K_80000 = 0x258,
	MSR_MTRR_FIX16K_A0000 = 0x259,
	MSR_MTRR_FIX4K_FIRST = 0x268,
	MSR_MTRR_FIX4K_LAST = 0x26f,
	MSR_PAT = 0x277,
	MSR_MTRR_DEF_TYPE = 0x2ff,
	MSR_EFER = 0xc0000080u,
	MSR_STAR = 0xc0000081u,
	MSR_LSTAR = 0xc0000082u,
	MSR_CSTAR = 0xc0000083u,
	MSR_FMASK = 0xc0000084u,
	MSR_FS_BASE = 0xc0000100u,
	MSR_GS_BASE = 0xc0000101u,
	MSR_KERNEL_GS_BASE = 0xc0000102u,
	MSR_TSC_AUX = 0xc0000103u,
};

#define MTRRCAP_VALUE (8u | BIT(8) /* fixed ranges */ | BIT(10) /* WC */)
#define MISC_ENABLE_RO (BIT(11) /* BTS unavailable */ | BIT(12) /* PEBS unavailable */)
#define MICROCODE_REV (1ULL << 32)
#define ARCH_CAP_VALUE                                                                           \
	((uint64_t)(BIT(0) /* RDCL_NO */ | BIT(4) /* SSB_NO */ | BIT(5) /* MDS_NO */ |           \
		    BIT(6) /* PSCHANGE_MC_NO */ | BIT(8) /* TAA_NO */ | BIT(13) /* SBDR_SSDP_NO */ | \
		    BIT(14) /* FBSDP_NO */ | BIT(15) /* PSDP_NO */ | BIT(20) /* BHI_NO */ |        \
		    BIT(24) /* PBRSB_NO */ | BIT(26) /* GDS_NO */ | BIT(27) /* RFDS_NO */))
#define PHYS_ADDR_BITS 40
#define PHYS_RSVD (~((1ULL << PHYS_ADDR_BITS) - 1))
/* IA32_APIC_BASE: BSP (8), enable (11) and the base are writable; x2APIC
 * (10) is not supported. */
#define APIC_BASE_RSVD (PHYS_RSVD | 0x6ffULL)

/* Fixed-range MTRR MSR → index in msr.mtrr_fixed, or -1. */
static int mtrr_fixed_index(uint32_t msr)
{
	if (msr == MSR_MTRR_FIX64K)
		return 0;
	if (msr == MSR_MTRR_FIX16K_80000 || msr == MSR_MTRR_FIX16K_A0000)
		return 1 + (int)(msr - MSR_MTRR_FIX16K_80000);
	if (msr >= MSR_MTRR_FIX4K_FIRST && msr <= MSR_MTRR_FIX4K_LAST)
		return 3 + (int)(msr - MSR_MTRR_FIX4K_FIRST);
	return -1;
}

static bool mtrr_type_ok(uint64_t t) { return t == 0 || t == 1 || t == 4 || t == 5 || t == 6; }

static bool mtrr_fixed_ok(uint64_t v)
{
	for (unsigned k = 0; k < 8; k++)
		if (!mtrr_type_ok((v >> (8 * k)) & 0xff))
			return false;
	return true;
}

/* Even MSRs hold PHYSBASE (type in 7:0), odd ones PHYSMASK (valid = 11). */
static bool mtrr_var_ok(uint32_t msr, uint64_t v)
{
	if (v & PHYS_RSVD)
		return false;
	if (msr & 1)
		return !(v & 0x7ffULL);
	return !(v & 0xf00ULL) && mtrr_type_ok(v & 0xff);
}

/* Each PAT entry is UC, WC, WT, WP, WB or UC- (0, 1, 4, 5, 6, 7). */
static bool pat_ok(uint64_t v)
{
	for (unsigned k = 0; k < 8; k++) {
		uint64_t t = (v >> (8 * k)) & 0xff;
		if (t > 7 || t == 2 || t == 3)
			return false;
	}
	return true;
}

uint64_t soft_rdmsr(struct soft_cpu *cpu, uint32_t msr, bool *ok)
{
	struct soft_msrs *m = &cpu->msr;
	int fixed = mtrr_fixed_index(msr);
	uint64_t v;

	/* The interrupt controllers own APIC_BASE and TSC_DEADLINE. */
	int rc = soft_irqchip_msr_read(cpu, msr, &v);
	*ok = rc == 0 || rc == -ENOENT;
	if (rc != -ENOENT)
		return rc == 0 ? v : 0;
	if (msr >= MSR_MTRR_VAR_FIRST && msr <= MSR_MTRR_VAR_LAST)
		return m->mtrr_var[msr - MSR_MTRR_VAR_FIRST];
	if (fixed >= 0)
		return m->mtrr_fixed[fixed];
	switch (msr) {
	case MSR_TSC: return soft_tsc(cpu);
	case MSR_TSC_ADJUST: return m->tsc_adjust;
	case MSR_PLATFORM_ID: return 0;
	case MSR_APIC_BASE: return cpu->s.apic_base;
	case MSR_BIOS_SIGN_ID: return MICROCODE_REV;
	case MSR_PLATFORM_INFO: return (SOFT_TSC_HZ / 100000000ULL) << 8; /* non-turbo ratio * 100 MHz */
	case MSR_MTRRCAP: return MTRRCAP_VALUE;
	case MSR_ARCH_CAPABILITIES: return ARCH_CAP_VALUE;
	case MSR_SYSENTER_CS: return m->sysenter_cs;
	case MSR_SYSENTER_ESP: return m->sysenter_esp;
	case MSR_SYSENTER_EIP: return m->sysenter_eip;
	case MSR_MCG_CAP: return 0; /* no machine-check banks */
	case MSR_MCG_STATUS: return 0;
	case MSR_MISC_ENABLE: return m->misc_enable | MISC_ENABLE_RO;
	case MSR_DEBUGCTL: return 0;
	case MSR_PAT: return m->pat;
	case MSR_MTRR_DEF_TYPE: return m->mtrr_def_type;
	case MSR_EFER: return cpu->s.efer;
	case MSR_STAR: return m->star;
	case MSR_LSTAR: return m->lstar;
	case MSR_CSTAR: return m->cstar;
	case MSR_FMASK: return m->sfmask;
	case MSR_FS_BASE: return cpu->s.seg[SEG_FS].base;
	case MSR_GS_BASE: return cpu->s.seg[SEG_GS].base;
	case MSR_KERNEL_GS_BASE: return m->kernel_gs_base;
	case MSR_TSC_AUX: return m->tsc_aux;
	default:
		*ok = false;
		return 0;
	}
}

/* IA32_EFER (SDM vol. 3 §2.2.1, §9.8.5): SCE, LME, NXE writable; LMA is
 * read-only (written values are ignored); LME cannot change while paging
 * is enabled. */
static bool write_efer(struct soft_cpu *cpu, uint64_t v)
{
	uint64_t old = cpu->s.efer;
	if (v & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))
		return false;
	v = (v & ~EFER_LMA) | (old & EFER_LMA);
	if ((cpu->s.cr0 & CR0_PG) && ((v ^ old) & EFER_LME))
		return false;
	cpu->s.efer = v;
	if ((v ^ old) & EFER_NXE)
		tlb_flush_all(cpu); /* cached permissions depend on NX */
	soft_mode_changed(cpu);
	return true;
}

/* Stores v in *slot if it is a canonical address. */
static bool set_canonical(uint64_t *slot, uint64_t v)
{
	if (!sys_canonical(v))
		return false;
	*slot = v;
	return true;
}

static bool set_if(uint64_t *slot, uint64_t v, bool valid)
{
	if (valid)
		*slot = v;
	return valid;
}

bool soft_wrmsr(struct soft_cpu *cpu, uint32_t msr, uint64_t v)
{
	struct soft_msrs *m = &cpu->msr;
	int fixed = mtrr_fixed_index(msr);

	if (msr == MSR_APIC_BASE && (v & APIC_BASE_RSVD))
		return false;
	int rc = soft_irqchip_msr_write(cpu, msr, v);
	if (rc != -ENOENT) {
		if (rc == 0 && msr == MSR_APIC_BASE)
			cpu->s.apic_base = v; /* the architectural copy follows the APIC */
		return rc == 0;
	}

	if (msr >= MSR_MTRR_VAR_FIRST && msr <= MSR_MTRR_VAR_LAST)
		return set_if(&m->mtrr_var[msr - MSR_MTRR_VAR_FIRST], v, mtrr_var_ok(msr, v));
	if (fixed >= 0)
		return set_if(&m->mtrr_fixed[fixed], v, mtrr_fixed_ok(v));
	switch (msr) {
	case MSR_TSC: {
		/* A write that moves the TSC by X adds X to IA32_TSC_ADJUST,
		 * and a write to IA32_TSC_ADJUST that adds X to it moves the TSC
		 * by X (SDM vol. 3 §17.17.3). */
		uint64_t offset = v - host_tsc();
		m->tsc_adjust += offset - m->tsc_offset;
		m->tsc_offset = offset;
		return true;
	}
	case MSR_TSC_ADJUST:
		m->tsc_offset += v - m->tsc_adjust;
		m->tsc_adjust = v;
		return true;
	case MSR_APIC_BASE: return set_if(&cpu->s.apic_base, v, !(v & APIC_BASE_RSVD));
	case MSR_BIOS_UPDT_TRIG: return true; /* no microcode to update */
	case MSR_BIOS_SIGN_ID: return true;   /* written with 0 before reading the revision */
	case MSR_SYSENTER_CS: return set_if(&m->sysenter_cs, v, true);
	case MSR_SYSENTER_ESP: return set_canonical(&m->sysenter_esp, v);
	case MSR_SYSENTER_EIP: return set_canonical(&m->sysenter_eip, v);
	case MSR_MCG_STATUS: return v == 0;
	case MSR_MISC_ENABLE: return set_if(&m->misc_enable, v & ~(uint64_t)MISC_ENABLE_RO, true);
	case MSR_DEBUGCTL: return v == 0; /* no LBR, BTF or BTS */
	case MSR_PAT: return set_if(&m->pat, v, pat_ok(v));
	case MSR_MTRR_DEF_TYPE:
		return set_if(&m->mtrr_def_type, v, !(v & ~0xcffULL) && mtrr_type_ok(v & 0xff));
	case MSR_EFER: return write_efer(cpu, v);
	case MSR_STAR: return set_if(&m->star, v, true);
	case MSR_LSTAR: return set_canonical(&m->lstar, v);
	case MSR_CSTAR: return set_canonical(&m->cstar, v);
	case MSR_FMASK: return set_if(&m->sfmask, v, !(v >> 32));
	case MSR_FS_BASE: return set_canonical(&cpu->s.seg[SEG_FS].base, v);
	case MSR_GS_BASE: return set_canonical(&cpu->s.seg[SEG_GS].base, v);
	case MSR_KERNEL_GS_BASE: return set_canonical(&m->kernel_gs_base, v);
	case MSR_TSC_AUX: return set_if(&m->tsc_aux, v, !(v >> 32));
	default: return false; /* unknown, or read-only */
	}
}

static void rdmsr(struct soft_cpu *cpu, struct insn *i) /* 0F 32 */
{
	bool ok;
	(void)i;
	if (cpu->cpl != 0)
		soft_gp(cpu, 0);
	uint64_t v = soft_rdmsr(cpu, (uint32_t)cpu->s.gpr[GPR_RCX], &ok);
	if (!ok)
		soft_gp(cpu, 0);
	write_edx_eax(cpu, v);
}

static void wrmsr(struct soft_cpu *cpu, struct insn *i) /* 0F 30 */
{
	(void)i;
	if (cpu->cpl != 0)
		soft_gp(cpu, 0);
	uint64_t v = (cpu->s.gpr[GPR_RAX] & 0xffffffffULL) | (cpu->s.gpr[GPR_RDX] << 32);
	if (!soft_wrmsr(cpu, (uint32_t)cpu->s.gpr[GPR_RCX], v))
		soft_gp(cpu, 0);
}

/* ======================================================================
 * Control registers (SDM vol. 3 §2.5, vol. 2 MOV—Move to/from Control
 * Registers)
 * ====================================================================== */

#define CR0_SUPPORTED                                                                            \
	(CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_NW |       \
	 CR0_CD | CR0_PG)
/* Only bits for advertised features (CPUID) may be set. */
#define CR4_SUPPORTED                                                                            \
	(CR4_TSD | CR4_PSE | CR4_PAE | CR4_PGE | CR4_PCE | CR4_OSFXSR | CR4_OSXMMEXCPT |       \
	 CR4_FSGSBASE | CR4_SMEP)

static void check_cpl0(struct soft_cpu *cpu)
{
	if (cpu->cpl != 0)
		soft_gp(cpu, 0);
}

/* 64 bits in 64-bit mode, 32 otherwise; the operand-size prefix and
 * REX.W are ignored. */
static unsigned creg_size(const struct soft_cpu *cpu) { return cpu->long64 ? 8 : 4; }

static void write_cr0(struct soft_cpu *cpu, uint64_t v)
{
	uint64_t old = cpu->s.cr0;
	if (v >> 32)
		soft_gp(cpu, 0);
	v = (v & CR0_SUPPORTED) | CR0_ET; /* reserved bits 31:0 are ignored; ET is fixed */
	if ((v & CR0_NW) && !(v & CR0_CD))
		soft_gp(cpu, 0);
	if ((v & CR0_PG) && !(v & CR0_PE))
		soft_gp(cpu, 0);
	if ((v & CR0_PG) && !(old & CR0_PG) && (cpu->s.efer & EFER_LME)) {
		/* Activating IA-32e mode needs PAE and must not start from a
		 * code segment with L = 1 (§9.8.5). */
		if (!(cpu->s.cr4 & CR4_PAE) || cpu->s.seg[SEG_CS].l)
			soft_gp(cpu, 0);
	}
	if (!(v & CR0_PG) && cpu->long64)
		soft_gp(cpu, 0); /* leave long mode from compatibility mode only */
	cpu->s.cr0 = v;
	if ((old ^ v) & (CR0_PG | CR0_WP | CR0_PE))
		tlb_flush_all(cpu);
	if ((old ^ v) & (CR0_TS | CR0_EM))
		cpu->map_gen++; /* translations assume whether SSE may run */
	soft_mode_changed(cpu);
}

static void write_cr3(struct soft_cpu *cpu, uint64_t v)
{
	if (v & PHYS_RSVD) /* including bit 63 (no PCIDs) */
		soft_gp(cpu, 0);
	cpu->s.cr3 = v;
	tlb_flush_nonglobal(cpu);
}

static void write_cr4(struct soft_cpu *cpu, uint64_t v)
{
	uint64_t old = cpu->s.cr4;
	if (v & ~CR4_SUPPORTED)
		soft_gp(cpu, 0);
	if (sys_lma(cpu) && !(v & CR4_PAE))
		soft_gp(cpu, 0);
	cpu->s.cr4 = v;
	if ((old ^ v) & (CR4_PGE | CR4_PSE | CR4_PAE | CR4_SMEP))
		tlb_flush_all(cpu);
	if ((old ^ v) & CR4_OSFXSR)
		cpu->map_gen++; /* translations assume whether SSE may run */
}

static void mov_from_cr(struct soft_cpu *cpu, struct insn *i) /* 0F 20 */
{
	uint64_t v;
	switch (i->reg) {
	case 0: v = cpu->s.cr0; break;
	case 2: v = cpu->s.cr2; break;
	case 3: v = cpu->s.cr3; break;
	case 4: v = cpu->s.cr4; break;
	case 8: v = cpu->s.cr8; break;
	default: soft_ud(cpu);
	}
	check_cpl0(cpu);
	reg_write(cpu, i->rm, creg_size(cpu), v, true);
}

static void mov_to_cr(struct soft_cpu *cpu, struct insn *i) /* 0F 22 */
{
	if (i->reg != 0 && i->reg != 2 && i->reg != 3 && i->reg != 4 && i->reg != 8)
		soft_ud(cpu);
	check_cpl0(cpu);
	uint64_t v = reg_read(cpu, i->rm, creg_size(cpu), true);
	switch (i->reg) {
	case 0: write_cr0(cpu, v); break;
	case 2: cpu->s.cr2 = v; break;
	case 3: write_cr3(cpu, v); break;
	case 4: write_cr4(cpu, v); break;
	default:
		if (v >> 4) /* CR8 holds the 4-bit task priority */
			soft_gp(cpu, 0);
		cpu->s.cr8 = v;
		break;
	}
}

static void clts(struct soft_cpu *cpu, struct insn *i) /* 0F 06 */
{
	(void)i;
	check_cpl0(cpu);
	if (cpu->s.cr0 & CR0_TS)
		cpu->map_gen++; /* translations assume whether SSE may run */
	cpu->s.cr0 &= ~CR0_TS;
}

/* LMSW loads CR0 bits 3:0; it can set PE but never clear it. */
static void lmsw(struct soft_cpu *cpu, struct insn *i) /* 0F 01 /6 */
{
	check_cpl0(cpu);
	uint64_t src = op_rm_read(cpu, i, 2) & 0xf;
	write_cr0(cpu, (cpu->s.cr0 & ~0xeULL) | src);
}

static void smsw(struct soft_cpu *cpu, struct insn *i) /* 0F 01 /4 */
{
	if (i->mod == 3)
		reg_write(cpu, i->rm, i->opsize, cpu->s.cr0, i->rex != 0);
	else
		op_rm_write(cpu, i, 2, cpu->s.cr0 & 0xffff);
}

/* ======================================================================
 * Debug registers (SDM vol. 3 §17.2): stored, breakpoints never fire.
 * ====================================================================== */

#define DR6_FIXED_1 0xffff0ff0ULL /* reads as 1 (bit 16: no RTM) */
#define DR6_WRITABLE 0xe00fULL    /* B0-B3, BD, BS, BT */
#define DR7_FIXED_1 0x400ULL
#define DR7_WRITABLE 0xffff2bffULL

static void mov_from_dr(struct soft_cpu *cpu, struct insn *i) /* 0F 21 */
{
	if (i->reg > 7)
		soft_ud(cpu);
	check_cpl0(cpu);
	unsigned n = i->reg;
	if (n == 4 || n == 5)
		n += 2; /* CR4.DE = 0: DR4/DR5 alias DR6/DR7 */
	uint64_t v = cpu->dr[n];
	if (n == 6)
		v |= DR6_FIXED_1;
	else if (n == 7)
		v |= DR7_FIXED_1;
	reg_write(cpu, i->rm, creg_size(cpu), v, true);
}

static void mov_to_dr(struct soft_cpu *cpu, struct insn *i) /* 0F 23 */
{
	if (i->reg > 7)
		soft_ud(cpu);
	check_cpl0(cpu);
	unsigned n = i->reg;
	if (n == 4 || n == 5)
		n += 2;
	uint64_t v = reg_read(cpu, i->rm, creg_size(cpu), true);
	if (n >= 6 && (v >> 32))
		soft_gp(cpu, 0);
	if (n == 6)
		v &= DR6_WRITABLE;
	else if (n == 7)
		v &= DR7_WRITABLE;
	cpu->dr[n] = v;
}

/* ======================================================================
 * Caches and TLB
 * ====================================================================== */

static void invlpg(struct soft_cpu *cpu, struct insn *i) /* 0F 01 /7 (memory) */
{
	check_cpl0(cpu);
	const struct segment *s = &cpu->s.seg[i->seg];
	uint64_t ea = insn_ea(cpu, i);
	uint64_t la;
	if (cpu->long64)
		la = ea + ((i->seg == SEG_FS || i->seg == SEG_GS) ? s->base : 0);
	else
		la = (s->base + ea) & 0xffffffffULL;
	/* Entries are per 4 KiB page; a large page's other 4 KiB entries
	 * still map consistently until the guest changes the mapping, which
	 * Linux follows with a full flush. */
	tlb_flush_page(cpu, la);
}

static void wbinvd(struct soft_cpu *cpu, struct insn *i) /* 0F 08 INVD, 0F 09 WBINVD */
{
	(void)i;
	check_cpl0(cpu); /* there are no caches to write back or invalidate */
}

/* CLFLUSH checks the address like a one-byte read but does not read, so
 * that flushing an MMIO address causes no device access. */
static void clflush(struct soft_cpu *cpu, struct insn *i) /* NP 0F AE /7 (memory) */
{
	uint64_t la = seg_linear(cpu, i->seg, insn_ea(cpu, i), 1, ACC_READ);
	mmu_translate(cpu, la, ACC_READ, false);
}

/* ======================================================================
 * Processor state: HLT, CLI, STI
 * ====================================================================== */

static void hlt(struct soft_cpu *cpu, struct insn *i) /* F4 */
{
	(void)i;
	check_cpl0(cpu);
	soft_halt(cpu);
}

/* IF may change at CPL <= IOPL in protected mode, with IOPL = 3 in
 * virtual-8086 mode (no VME/PVI), always in real mode. */
static void check_if_change(struct soft_cpu *cpu)
{
	if (!(cpu->s.cr0 & CR0_PE))
		return;
	unsigned need = (cpu->s.rflags & FLAG_VM) ? 3 : cpu->cpl;
	if (sys_iopl(cpu) < need)
		soft_gp(cpu, 0);
}

static void cli(struct soft_cpu *cpu, struct insn *i) /* FA */
{
	(void)i;
	check_if_change(cpu);
	cpu->s.rflags &= ~FLAG_IF; /* IF is never lazy */
}

static void sti(struct soft_cpu *cpu, struct insn *i) /* FB */
{
	(void)i;
	check_if_change(cpu);
	if (!(cpu->s.rflags & FLAG_IF))
		soft_set_interrupt_shadow(cpu); /* no interrupt before the next instruction */
	cpu->s.rflags |= FLAG_IF;
}

/* ======================================================================
 * Port I/O
 * ====================================================================== */

#define TSS_IOMAP_BASE 0x66
#define TSS32_MIN_LIMIT 103

void soft_io_check(struct soft_cpu *cpu, uint16_t port, unsigned size)
{
	if (!(cpu->s.cr0 & CR0_PE))
		return;
	if (!(cpu->s.rflags & FLAG_VM) && cpu->cpl <= sys_iopl(cpu))
		return;
	/* Only a 32/64-bit TSS has a bitmap; 2 bytes are read because the
	 * ports may straddle a byte boundary. */
	const struct segment *tr = &cpu->s.seg[SEG_TR];
	if (tr->unusable || !tr->present || (tr->type != DT_TSS_BUSY && tr->type != DT_TSS_AVAIL) ||
	    tr->limit < TSS32_MIN_LIMIT)
		soft_gp(cpu, 0);
	uint64_t base = tr->base;
	uint64_t map = lin_read_sys(cpu, base + TSS_IOMAP_BASE, 2);
	uint64_t off = map + port / 8;
	if (off + 1 > tr->limit)
		soft_gp(cpu, 0);
	uint32_t bits = (uint32_t)lin_read_sys(cpu, base + off, 2);
	uint32_t mask = ((1u << size) - 1) << (port & 7);
	if (bits & mask)
		soft_gp(cpu, 0);
}

static unsigned io_size(const struct insn *i)
{
	if (i->def->flags & OPF_BYTE)
		return 1;
	return i->opsize == 2 ? 2 : 4; /* REX.W is ignored */
}

static uint16_t io_port(struct soft_cpu *cpu, const struct insn *i)
{
	return (i->opcode & 8) ? (uint16_t)cpu->s.gpr[GPR_RDX] : (uint16_t)i->imm;
}

static void io_in(struct soft_cpu *cpu, struct insn *i) /* E4, E5, EC, ED */
{
	unsigned size = io_size(i);
	uint16_t port = io_port(cpu, i);
	uint8_t data[4] = {0};
	uint32_t v = 0;
	soft_io_check(cpu, port, size);
	soft_pio(cpu, port, size, false, data);
	memcpy(&v, data, size);
	reg_write(cpu, GPR_RAX, size, v, true);
}

static void io_out(struct soft_cpu *cpu, struct insn *i) /* E6, E7, EE, EF */
{
	unsigned size = io_size(i);
	uint16_t port = io_port(cpu, i);
	uint32_t v = (uint32_t)cpu->s.gpr[GPR_RAX];
	uint8_t data[4];
	soft_io_check(cpu, port, size);
	memcpy(data, &v, sizeof(data));
	soft_pio(cpu, port, size, true, data);
}

/* ======================================================================
 * SYSCALL/SYSRET, SYSENTER/SYSEXIT (SDM vol. 2; vol. 3 §5.8.7-5.8.8):
 * flat segments with fixed attributes, selectors from the MSRs.
 * ====================================================================== */

static struct segment flat_segment(uint16_t sel, bool code, unsigned dpl, bool l)
{
	return (struct segment){.limit = 0xffffffff, .selector = sel,
				.type = code ? 11 : 3, .s = 1, .dpl = (uint8_t)dpl, .present = 1,
				.l = l, .db = code ? !l : 1, .g = 1};
}

static void load_flat(struct soft_cpu *cpu, uint16_t cs_sel, uint16_t ss_sel, unsigned cpl, bool l)
{
	cpu->s.seg[SEG_SS] = flat_segment(ss_sel, false, cpl, false);
	cpu->s.seg[SEG_CS] = flat_segment(cs_sel, true, cpl, l);
	soft_mode_changed(cpu);
}

/* Intel: SYSCALL/SYSRET exist in 64-bit mode only (#UD in compatibility
 * and legacy modes, unlike AMD). */
static void syscall_insn(struct soft_cpu *cpu, struct insn *i) /* 0F 05 */
{
	(void)i;
	if (!cpu->long64 || !(cpu->s.efer & EFER_SCE))
		soft_ud(cpu);
	uint64_t flags = flags_get(cpu);
	uint16_t sel = (uint16_t)(cpu->msr.star >> 32);
	cpu->s.gpr[GPR_RCX] = cpu->next_rip;
	cpu->s.gpr[GPR_R11] = flags;
	flags_put(cpu, flags & ~(cpu->msr.sfmask | FLAG_RF));
	load_flat(cpu, sel & 0xfffc, (uint16_t)(sel + 8), 0, true);
	set_next_rip(cpu, cpu->msr.lstar);
}

static void sysret_insn(struct soft_cpu *cpu, struct insn *i) /* 0F 07, REX.W 0F 07 */
{
	if (!cpu->long64 || !(cpu->s.efer & EFER_SCE))
		soft_ud(cpu);
	check_cpl0(cpu);
	bool to64 = i->opsize == 8;
	uint64_t rip = to64 ? cpu->s.gpr[GPR_RCX] : cpu->s.gpr[GPR_RCX] & 0xffffffffULL;
	if (!sys_canonical(rip))
		soft_gp(cpu, 0);
	uint16_t sel = (uint16_t)(cpu->msr.star >> 48);
	flags_put(cpu, (cpu->s.gpr[GPR_R11] & 0x3c7fd7ULL) | RFLAGS_FIXED);
	load_flat(cpu, (uint16_t)((to64 ? sel + 16 : sel) | 3), (uint16_t)((sel + 8) | 3), 3, to64);
	set_next_rip(cpu, rip);
}

static void sysenter_insn(struct soft_cpu *cpu, struct insn *i) /* 0F 34 */
{
	(void)i;
	uint16_t sel = (uint16_t)cpu->msr.sysenter_cs & 0xfffc;
	if (!(cpu->s.cr0 & CR0_PE) || sel == 0)
		soft_gp(cpu, 0);
	bool lma = sys_lma(cpu);
	uint64_t mask = lma ? ~0ULL : 0xffffffffULL;
	flags_put(cpu, flags_get(cpu) & ~(FLAG_VM | FLAG_IF | FLAG_RF));
	load_flat(cpu, sel, (uint16_t)(sel + 8), 0, lma);
	cpu->s.gpr[GPR_RSP] = cpu->msr.sysenter_esp & mask;
	set_next_rip(cpu, cpu->msr.sysenter_eip & mask);
}

static void sysexit_insn(struct soft_cpu *cpu, struct insn *i) /* 0F 35, REX.W 0F 35 */
{
	uint16_t base = (uint16_t)cpu->msr.sysenter_cs;
	if (!(cpu->s.cr0 & CR0_PE) || cpu->cpl != 0 || (base & 0xfffc) == 0)
		soft_gp(cpu, 0);
	bool to64 = i->opsize == 8;
	uint64_t rip = cpu->s.gpr[GPR_RCX], rsp = cpu->s.gpr[GPR_RDX];
	if (to64 && (!sys_canonical(rip) || !sys_canonical(rsp)))
		soft_gp(cpu, 0);
	if (!to64) {
		rip &= 0xffffffffULL;
		rsp &= 0xffffffffULL;
	}
	load_flat(cpu, (uint16_t)((base + (to64 ? 32 : 16)) | 3),
		  (uint16_t)((base + (to64 ? 40 : 24)) | 3), 3, to64);
	cpu->s.gpr[GPR_RSP] = rsp;
	set_next_rip(cpu, rip);
}

/* ======================================================================
 * The opcode table
 * ====================================================================== */

#define M OPF_MODRM
#define MEM (OPF_MODRM | OPF_MODMEM)
#define REG (OPF_MODRM | OPF_MOD3)
const struct opdef soft_ops_system[] = {
    /* control, debug and model-specific registers; CPUID; TSC */
    {OPMAP_0F, 0x20, -1, -1, PFX_ANY, REG, "mov r, cr", mov_from_cr},
    {OPMAP_0F, 0x22, -1, -1, PFX_ANY, REG, "mov cr, r", mov_to_cr},
    {OPMAP_0F, 0x21, -1, -1, PFX_ANY, REG, "mov r, dr", mov_from_dr},
    {OPMAP_0F, 0x23, -1, -1, PFX_ANY, REG, "mov dr, r", mov_to_dr},
    {OPMAP_0F, 0x06, -1, -1, PFX_ANY, 0, "clts", clts},
    {OPMAP_0F, 0x01, 4, -1, PFX_ANY, M, "smsw", smsw},
    {OPMAP_0F, 0x01, 6, -1, PFX_ANY, M, "lmsw", lmsw},
    {OPMAP_0F, 0x32, -1, -1, PFX_ANY, 0, "rdmsr", rdmsr},
    {OPMAP_0F, 0x30, -1, -1, PFX_ANY, 0, "wrmsr", wrmsr},
    {OPMAP_0F, 0xa2, -1, -1, PFX_ANY, 0, "cpuid", cpuid_insn},
    {OPMAP_0F, 0x31, -1, -1, PFX_ANY, 0, "rdtsc", rdtsc},
    {OPMAP_0F, 0x01, 7, 1, PFX_ANY, REG, "rdtscp", rdtscp},
    /* caches and TLB */
    {OPMAP_0F, 0x01, 7, -1, PFX_ANY, MEM, "invlpg", invlpg},
    {OPMAP_0F, 0x08, -1, -1, PFX_ANY, 0, "invd", wbinvd},
    {OPMAP_0F, 0x09, -1, -1, PFX_ANY, 0, "wbinvd", wbinvd},
    {OPMAP_0F, 0xae, 7, -1, PFX_NONE, MEM, "clflush", clflush},
    /* processor state */
    {OPMAP_1B, 0xf4, -1, -1, PFX_ANY, 0, "hlt", hlt},
    {OPMAP_1B, 0xfa, -1, -1, PFX_ANY, 0, "cli", cli},
    {OPMAP_1B, 0xfb, -1, -1, PFX_ANY, 0, "sti", sti},
    /* port I/O */
    {OPMAP_1B, 0xe4, -1, -1, PFX_ANY, OPF_BYTE | OPF_IMM8, "in", io_in},
    {OPMAP_1B, 0xe5, -1, -1, PFX_ANY, OPF_IMM8, "in", io_in},
    {OPMAP_1B, 0xe6, -1, -1, PFX_ANY, OPF_BYTE | OPF_IMM8, "out", io_out},
    {OPMAP_1B, 0xe7, -1, -1, PFX_ANY, OPF_IMM8, "out", io_out},
    {OPMAP_1B, 0xec, -1, -1, PFX_ANY, OPF_BYTE, "in", io_in},
    {OPMAP_1B, 0xed, -1, -1, PFX_ANY, 0, "in", io_in},
    {OPMAP_1B, 0xee, -1, -1, PFX_ANY, OPF_BYTE, "out", io_out},
    {OPMAP_1B, 0xef, -1, -1, PFX_ANY, 0, "out", io_out},
    /* fast system calls */
    {OPMAP_0F, 0x05, -1, -1, PFX_ANY, 0, "syscall", syscall_insn},
    {OPMAP_0F, 0x07, -1, -1, PFX_ANY, 0, "sysret", sysret_insn},
    {OPMAP_0F, 0x34, -1, -1, PFX_ANY, 0, "sysenter", sysenter_insn},
    {OPMAP_0F, 0x35, -1, -1, PFX_ANY, 0, "sysexit", sysexit_insn},
    /* segment registers (descriptor.c) */
    {OPMAP_1B, 0x8c, -1, -1, PFX_ANY, M, "mov r/m, sreg", sys_mov_rm_sreg},
    {OPMAP_1B, 0x8e, -1, -1, PFX_ANY, M, "mov sreg, r/m", sys_mov_sreg_rm},
    {OPMAP_1B, 0xc4, -1, -1, PFX_ANY, MEM | OPF_NO64, "les", sys_load_far_pointer},
    {OPMAP_1B, 0xc5, -1, -1, PFX_ANY, MEM | OPF_NO64, "lds", sys_load_far_pointer},
    {OPMAP_0F, 0xb2, -1, -1, PFX_ANY, MEM, "lss", sys_load_far_pointer},
    {OPMAP_0F, 0xb4, -1, -1, PFX_ANY, MEM, "lfs", sys_load_far_pointer},
    {OPMAP_0F, 0xb5, -1, -1, PFX_ANY, MEM, "lgs", sys_load_far_pointer},
    /* Shares 63 with MOVSXD (ops_mov.c); see the decoder note in the report. */
    {OPMAP_1B, 0x63, -1, -1, PFX_ANY, M | OPF_NO64, "arpl", sys_arpl},
    {OPMAP_0F, 0x01, 7, 0, PFX_ANY, REG, "swapgs", sys_swapgs},
    {OPMAP_0F, 0xae, 0, -1, PFX_F3, REG, "rdfsbase", sys_fsgsbase},
    {OPMAP_0F, 0xae, 1, -1, PFX_F3, REG, "rdgsbase", sys_fsgsbase},
    {OPMAP_0F, 0xae, 2, -1, PFX_F3, REG, "wrfsbase", sys_fsgsbase},
    {OPMAP_0F, 0xae, 3, -1, PFX_F3, REG, "wrgsbase", sys_fsgsbase},
    /* descriptor tables (descriptor.c) */
    {OPMAP_0F, 0x00, 0, -1, PFX_ANY, M, "sldt", sys_group6},
    {OPMAP_0F, 0x00, 1, -1, PFX_ANY, M, "str", sys_group6},
    {OPMAP_0F, 0x00, 2, -1, PFX_ANY, M, "lldt", sys_group6},
    {OPMAP_0F, 0x00, 3, -1, PFX_ANY, M, "ltr", sys_group6},
    {OPMAP_0F, 0x00, 4, -1, PFX_ANY, M, "verr", sys_group6},
    {OPMAP_0F, 0x00, 5, -1, PFX_ANY, M, "verw", sys_group6},
    {OPMAP_0F, 0x01, 0, -1, PFX_ANY, MEM, "sgdt", sys_sgdt_sidt},
    {OPMAP_0F, 0x01, 1, -1, PFX_ANY, MEM, "sidt", sys_sgdt_sidt},
    {OPMAP_0F, 0x01, 2, -1, PFX_ANY, MEM, "lgdt", sys_lgdt_lidt},
    {OPMAP_0F, 0x01, 3, -1, PFX_ANY, MEM, "lidt", sys_lgdt_lidt},
    {OPMAP_0F, 0x02, -1, -1, PFX_ANY, M, "lar", sys_lar_lsl},
    {OPMAP_0F, 0x03, -1, -1, PFX_ANY, M, "lsl", sys_lar_lsl},
    /* far transfers (descriptor.c, exception.c) */
    {OPMAP_1B, 0xea, -1, -1, PFX_ANY, OPF_FARPTR | OPF_NO64, "jmp far", sys_jmp_far},
    {OPMAP_1B, 0x9a, -1, -1, PFX_ANY, OPF_FARPTR | OPF_NO64, "call far", sys_call_far},
    {OPMAP_1B, 0xff, 3, -1, PFX_ANY, MEM, "call far", sys_call_far},
    {OPMAP_1B, 0xff, 5, -1, PFX_ANY, MEM, "jmp far", sys_jmp_far},
    {OPMAP_1B, 0xcb, -1, -1, PFX_ANY, 0, "retf", sys_ret_far},
    {OPMAP_1B, 0xca, -1, -1, PFX_ANY, OPF_IMM16, "retf", sys_ret_far},
    {OPMAP_1B, 0xcf, -1, -1, PFX_ANY, 0, "iret", sys_iret},
    OPDEF_END,
};
