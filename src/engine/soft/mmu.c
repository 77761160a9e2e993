/* The soft MMU: linear → guest-physical translation by walking the guest's
 * page tables (SDM vol. 3 chapter 4: §4.3 32-bit paging, §4.4 PAE, §4.5
 * 4-level paging; §4.6 access rights; §4.7 page-fault error codes; §4.8
 * accessed and dirty flags; §4.10 TLBs), and a software TLB in front of it.
 *
 * TLB: direct-mapped, separate arrays per access kind (read, write, fetch)
 * and privilege (supervisor, user), so that a hit needs no permission
 * check: an entry is only installed once the walk has allowed exactly that
 * access and set the A (and for writes, D) bits. Flushed entirely on CR3,
 * CR0 and CR4 writes and per page by INVLPG, which is what the
 * architecture requires (global pages are flushed too: allowed, simpler). */
#include <string.h>

#include "engine/soft/soft.h"

#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_US (1ULL << 2)
#define PTE_A (1ULL << 5)
#define PTE_D (1ULL << 6)
#define PTE_PS (1ULL << 7)
#define PTE_G (1ULL << 8)
#define PTE_NX (1ULL << 63)
#define MAXPHYADDR 40
#define PHYS_MASK (((1ULL << MAXPHYADDR) - 1) & ~0xfffULL)
#define RSVD_HIGH (((1ULL << 52) - 1) & ~((1ULL << MAXPHYADDR) - 1))
#define CR4_SMEP (1ULL << 20)

/* The next unused tag generation, clearing the arrays when they run out
 * (then every entry is gone, the global ones too). */
static uint64_t tlb_next_tag(struct soft_cpu *cpu, bool *cleared)
{
	if (cpu->tlb_next_gen == 0 || cpu->tlb_next_gen > TLB_GEN_MAX) {
		memset(&cpu->tlb, 0, sizeof(cpu->tlb));
		cpu->tlb_next_gen = 1;
		*cleared = true;
	}
	return (cpu->tlb_next_gen++ << TLB_GEN_SHIFT) | TLB_VALID;
}

static void tlb_flushed(struct soft_cpu *cpu)
{
	cpu->tlb_tag_x = cpu->tlb_tag ^ cpu->tlb_gtag;
	cpu->code_la = ~0ULL;
	cpu->code_gen++;
	cpu->map_gen++;
	cpu->block_abort = true;
}

/* CR3 writes: global pages (PTE.G with CR4.PGE) stay (SDM vol. 3 §4.10.4.1). */
void tlb_flush_nonglobal(struct soft_cpu *cpu)
{
	bool cleared = false;
	cpu->tlb_tag = tlb_next_tag(cpu, &cleared);
	if (cleared)
		cpu->tlb_gtag = tlb_next_tag(cpu, &cleared);
	tlb_flushed(cpu);
}

void tlb_flush_all(struct soft_cpu *cpu)
{
	bool cleared = false;
	cpu->tlb_gtag = tlb_next_tag(cpu, &cleared);
	cpu->tlb_tag = tlb_next_tag(cpu, &cleared);
	if (cleared) /* the second call cleared: the first tag is free again */
		cpu->tlb_gtag = tlb_next_tag(cpu, &cleared);
	tlb_flushed(cpu);
}


bool tlb_page_has_code(const struct soft_cpu *cpu, uint64_t gpa_page)
{
	const uint32_t *stamp = guest_mem_code_stamp(cpu->mem, gpa_page);
	return stamp && (__atomic_load_n(stamp, __ATOMIC_ACQUIRE) & GUEST_CODE_BIT);
}

void tlb_protect_code(struct soft_cpu *cpu, uint64_t gpa_page)
{
	for (int u = 0; u < 2; u++)
		for (unsigned k = 0; k < TLB_SIZE; k++) {
			struct tlb_entry *e = &cpu->tlb.e[ACC_WRITE][u][k];
			if (e->tag && e->gpa == gpa_page)
				e->tag = 0;
		}
}

void tlb_flush_page(struct soft_cpu *cpu, uint64_t la)
{
	uint64_t page = la & ~0xfffULL;
	unsigned idx = (unsigned)(page >> 12) % TLB_SIZE;
	if (cpu->code_la == page)
		cpu->code_la = ~0ULL;
	cpu->code_gen++; /* chain links may lead into this page */
	cpu->map_gen++;
	cpu->block_abort = true;
	for (int a = 0; a < 3; a++)
		for (int u = 0; u < 2; u++)
			if ((cpu->tlb.e[a][u][idx].tag & ~0xfffULL) == page)
				cpu->tlb.e[a][u][idx].tag = 0;
}

struct walk {
	uint64_t la;
	enum access acc;
	bool user;   /* access at CPL 3 (not an implicit supervisor access) */
	bool write, fetch;
	bool allow_user, allow_write, allow_exec;
	bool global; /* a global translation (PTE.G with CR4.PGE) */
	uint64_t gpa;
};

_Noreturn static void page_fault(struct soft_cpu *cpu, const struct walk *w, uint32_t err)
{
	if (w->write)
		err |= PF_WRITE;
	if (w->user)
		err |= PF_USER;
	if (w->fetch && ((cpu->s.cr4 & CR4_SMEP) ||
			 ((cpu->s.cr4 & CR4_PAE) && (cpu->s.efer & EFER_NXE))))
		err |= PF_FETCH;
	cpu->s.cr2 = w->la;
	soft_raise(cpu, EXC_PF, err);
}

/* Reads a paging-structure entry; a table outside RAM is a fault-free
 * all-zero entry (not present), which is what reading unbacked memory
 * gives on a PC. */
static uint64_t pte_read(struct soft_cpu *cpu, uint64_t gpa, unsigned size, uint8_t **host)
{
	uint8_t *p = guest_mem_ptr(cpu->mem, gpa, size);
	uint64_t v = 0;
	*host = p;
	if (p)
		memcpy(&v, p, size);
	return v;
}

/* Sets A (and D) with an atomic OR so that concurrent walkers on other
 * vCPUs and the guest's own updates are not lost. */
static void pte_set_bits(struct soft_cpu *cpu, uint8_t *host, unsigned size, uint64_t bits)
{
	if (!host)
		return;
	/* A page table sharing a page with decoded code: the code changed. */
	guest_mem_code_written_host(cpu->mem, host, size);
	if (size == 8)
		__atomic_fetch_or((uint64_t *)(void *)host, bits, __ATOMIC_RELAXED);
	else
		__atomic_fetch_or((uint32_t *)(void *)host, (uint32_t)bits, __ATOMIC_RELAXED);
}

static void apply_rights(struct walk *w, uint64_t pte, bool nx_enabled)
{
	if (!(pte & PTE_US))
		w->allow_user = false;
	if (!(pte & PTE_RW))
		w->allow_write = false;
	if (nx_enabled && (pte & PTE_NX))
		w->allow_exec = false;
}

static void check_rights(struct soft_cpu *cpu, struct walk *w)
{
	bool wp = cpu->s.cr0 & CR0_WP;
	if (w->user && !w->allow_user)
		page_fault(cpu, w, PF_PRESENT);
	if (w->write && !w->allow_write && (w->user || wp))
		page_fault(cpu, w, PF_PRESENT);
	if (w->fetch && !w->allow_exec)
		page_fault(cpu, w, PF_PRESENT);
	if (w->fetch && !w->user && w->allow_user && (cpu->s.cr4 & CR4_SMEP))
		page_fault(cpu, w, PF_PRESENT);
}

/* Walks `levels` levels of 64-bit entries (PAE: 2 after the PDPTE, 4-level: 4). */
static void walk64(struct soft_cpu *cpu, struct walk *w, uint64_t table, int levels)
{
	bool nxe = cpu->s.efer & EFER_NXE;
	uint64_t rsvd = RSVD_HIGH | (nxe ? 0 : PTE_NX);
	uint8_t *hosts[4];
	uint64_t ptes[4];
	int n = 0;

	for (int level = levels; level >= 1; level--) {
		unsigned shift = 12 + 9 * (unsigned)(level - 1);
		uint64_t gpa = (table & PHYS_MASK) + (((w->la >> shift) & 511) * 8);
		uint64_t pte = pte_read(cpu, gpa, 8, &hosts[n]);
		if (!(pte & PTE_P))
			page_fault(cpu, w, 0);
		/* PS is reserved in the PML4 (level 4) and in 1 GiB form needs level 3. */
		uint64_t level_rsvd = rsvd | ((level == 4) ? PTE_PS : 0);
		if (pte & level_rsvd)
			page_fault(cpu, w, PF_PRESENT | PF_RSVD);
		apply_rights(w, pte, nxe);
		ptes[n++] = pte;
		if (level > 1 && (pte & PTE_PS)) {
			uint64_t page_mask = (1ULL << shift) - 1;
			if ((pte & PHYS_MASK) & page_mask & ~0x1000ULL) /* bits 12.. below the page size, except PAT */
				page_fault(cpu, w, PF_PRESENT | PF_RSVD);
			w->gpa = ((pte & PHYS_MASK) & ~page_mask) | (w->la & page_mask);
			goto leaf;
		}
		table = pte;
	}
	w->gpa = (ptes[n - 1] & PHYS_MASK) | (w->la & 0xfff);
leaf:
	w->global = (ptes[n - 1] & PTE_G) && (cpu->s.cr4 & CR4_PGE);
	check_rights(cpu, w);
	for (int k = 0; k < n; k++)
		if (!(ptes[k] & PTE_A))
			pte_set_bits(cpu, hosts[k], 8, PTE_A);
	if (w->write && !(ptes[n - 1] & PTE_D))
		pte_set_bits(cpu, hosts[n - 1], 8, PTE_D);
}

static void walk_pae(struct soft_cpu *cpu, struct walk *w)
{
	uint8_t *host;
	uint64_t pdpte = pte_read(cpu, (cpu->s.cr3 & 0xffffffe0ULL) + ((w->la >> 30) & 3) * 8, 8, &host);
	if (!(pdpte & PTE_P))
		page_fault(cpu, w, 0);
	if (pdpte & (RSVD_HIGH | 0x1e6ULL))
		page_fault(cpu, w, PF_PRESENT | PF_RSVD);
	walk64(cpu, w, pdpte, 2);
}

static void walk32(struct soft_cpu *cpu, struct walk *w)
{
	uint8_t *hosts[2];
	uint64_t pde = pte_read(cpu, (cpu->s.cr3 & 0xfffff000ULL) + ((w->la >> 22) & 1023) * 4, 4, &hosts[0]);
	if (!(pde & PTE_P))
		page_fault(cpu, w, 0);
	apply_rights(w, pde, false);
	if ((pde & PTE_PS) && (cpu->s.cr4 & CR4_PSE)) {
		/* 4 MiB page; bits 13-20 hold physical address bits 32-39 (PSE-36). */
		w->gpa = (pde & 0xffc00000ULL) | ((pde & 0x1fe000ULL) << 19) | (w->la & 0x3fffff);
		w->global = (pde & PTE_G) && (cpu->s.cr4 & CR4_PGE);
		check_rights(cpu, w);
		pte_set_bits(cpu, hosts[0], 4, PTE_A | (w->write ? PTE_D : 0));
		return;
	}
	uint64_t pte = pte_read(cpu, (pde & 0xfffff000ULL) + ((w->la >> 12) & 1023) * 4, 4, &hosts[1]);
	if (!(pte & PTE_P))
		page_fault(cpu, w, 0);
	apply_rights(w, pte, false);
	w->gpa = (pte & 0xfffff000ULL) | (w->la & 0xfff);
	w->global = (pte & PTE_G) && (cpu->s.cr4 & CR4_PGE);
	check_rights(cpu, w);
	pte_set_bits(cpu, hosts[0], 4, PTE_A);
	pte_set_bits(cpu, hosts[1], 4, PTE_A | (w->write ? PTE_D : 0));
}

const struct tlb_entry *mmu_fill(struct soft_cpu *cpu, uint64_t la, enum access acc,
				 bool supervisor)
{
	bool user = cpu->cpl == 3 && !supervisor;
	uint64_t page = la & ~0xfffULL;
	struct tlb_entry *e = &cpu->tlb.e[acc][user][(page >> 12) % TLB_SIZE];

	struct walk w = {.la = la, .acc = acc, .user = user, .write = acc == ACC_WRITE,
			 .fetch = acc == ACC_FETCH, .allow_user = true, .allow_write = true,
			 .allow_exec = true};
	if (!cpu->paging)
		w.gpa = cpu->s.efer & EFER_LMA ? la : (la & 0xffffffffULL);
	else if (cpu->s.efer & EFER_LMA)
		walk64(cpu, &w, cpu->s.cr3, 4);
	else if (cpu->s.cr4 & CR4_PAE)
		walk_pae(cpu, &w);
	else
		walk32(cpu, &w);

	e->gpa = w.gpa & ~0xfffULL;
	e->host = guest_mem_ptr(cpu->mem, e->gpa, 0x1000);
	e->tag = page | (w.global ? cpu->tlb_gtag : cpu->tlb_tag);
	/* Pages holding decoded code are write-protected in the TLB: every
	 * store to them takes the slow path, which invalidates the code
	 * (lin_write_page). The entry is still good for this one access. */
	if (acc == ACC_WRITE && e->host && tlb_page_has_code(cpu, e->gpa))
		e->tag = 0;
	if (!e->host)
		e->tag |= TLB_MMIO;
	return e;
}
