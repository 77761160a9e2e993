/* Decoded blocks: straight-line runs of instructions, decoded once and
 * looked up by the guest-physical address of their first byte and the
 * decoding mode. One lookup and one validation serve a whole block.
 *
 * A block lies within one page and ends at an unconditional transfer of
 * control (or after BLOCK_MAX_INSNS). Execution leaves it early when an
 * instruction does not fall through, changes mode or paging, or writes to
 * the block's own page (soft.h: cpu->block_abort).
 *
 * Self-modifying code (Linux patches its own text: alternatives, static
 * keys, ftrace) and DMA into code pages: a block is only used while its
 * page's code stamp (vm/memory.h) is the one it was decoded under; every
 * write to the page, by whoever, advances the stamp. The check is one
 * load and compare per block entered, whether it was found by the hash
 * lookup or through a chain link (a block's memory of its recent
 * successors, which only skips the hash). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/soft/soft.h"

/* Two-way set associative: direct mapping lost about one lookup in 150 to
 * conflicts during a Linux boot, each costing a block decode. */
#define BCACHE_BITS 13
#define BCACHE_SETS (1u << BCACHE_BITS)
#define BCACHE_WAYS 2
#define HUGE_PAGE (2u << 20)
_Static_assert(BCACHE_WAYS == 2, "the replacement below picks one of two ways");

struct soft_dcache {
	struct soft_block *b; /* [BCACHE_SETS][BCACHE_WAYS] */
	void *map;            /* the mapping b lies in */
	size_t map_size;
	uint8_t mru[BCACHE_SETS]; /* the way last hit in each set */
	uint64_t hits, misses;
};

/* The blocks take tens of megabytes, entered in no particular order: on
 * huge pages (where the host allows) the lookups miss the host TLB far
 * less. Anonymous memory starts zeroed: every key is 0, empty. */
struct soft_dcache *soft_dcache_new(void)
{
	struct soft_dcache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	size_t size = (size_t)BCACHE_SETS * BCACHE_WAYS * sizeof(struct soft_block);
	c->map_size = size + HUGE_PAGE;
	c->map = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->map == MAP_FAILED) {
		free(c);
		return NULL;
	}
	uintptr_t aligned = ((uintptr_t)c->map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	c->b = (struct soft_block *)aligned;
	madvise(c->b, size, MADV_HUGEPAGE); /* a hint: failure only costs speed */
	return c;
}

void soft_dcache_free(struct soft_dcache *c)
{
	if (!c)
		return;
	munmap(c->map, c->map_size);
	free(c);
}

void soft_dcache_counts(const struct soft_dcache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c ? c->hits : 0;
	*misses = c ? c->misses : 0;
}

static unsigned bcache_index(uint64_t gpa)
{
	return (unsigned)((gpa ^ (gpa >> 12) ^ (gpa >> BCACHE_BITS)) & (BCACHE_SETS - 1));
}

/* Where the instruction at RIP is: host pointer and guest-physical
 * address; NULL host for MMIO. Sequential fetches in 64-bit mode reuse the
 * current code page without a TLB lookup. */
const uint8_t *soft_fetch_pointer(struct soft_cpu *cpu, uint64_t *gpa)
{
	uint64_t rip = cpu->s.rip;
	if (cpu->long64 && (rip & ~0xfffULL) == cpu->code_la) {
		*gpa = cpu->code_gpa | (rip & 0xfff);
		return cpu->code_host + (rip & 0xfff);
	}
	uint64_t off = rip;
	if (!cpu->long64)
		off &= cpu->def32 ? 0xffffffffULL : 0xffffULL;
	uint64_t la = seg_linear(cpu, SEG_CS, off, 1, ACC_FETCH);
	const struct tlb_entry *t = mmu_translate(cpu, la, ACC_FETCH, false);
	*gpa = t->gpa | (la & 0xfff);
	if (!t->host)
		return NULL;
	if (cpu->long64) {
		cpu->code_la = la & ~0xfffULL;
		cpu->code_host = t->host;
		cpu->code_gpa = t->gpa;
	}
	return t->host + (la & 0xfff);
}

/* Whether execution never falls through past this instruction, so the
 * block should end with it (decoding on would only waste work). */
static bool ends_block(const struct insn *i)
{
	if (i->map == OPMAP_1B) {
		switch (i->opcode) {
		case 0xe8: case 0xe9: case 0xeb: case 0xea: case 0x9a: /* call, jmp */
		case 0xc2: case 0xc3: case 0xca: case 0xcb: case 0xcf: /* ret, iret */
		case 0xcc: case 0xcd: case 0xce: case 0xf4:            /* int, hlt */
			return true;
		case 0xff:
			return (i->reg & 7) >= 2 && (i->reg & 7) <= 5; /* indirect call/jmp (ModRM.reg without REX.R) */
		default:
			return false;
		}
	}
	if (i->map == OPMAP_0F) {
		switch (i->opcode) {
		case 0x05: case 0x07: case 0x34: case 0x35: /* syscall, sysret, sysenter, sysexit */
		case 0x01: case 0x22: case 0x30:            /* system group, mov cr, wrmsr */
			return true;
		default:
			return false;
		}
	}
	return false;
}

static bool block_current(const struct soft_block *b)
{
	return __atomic_load_n(b->stamp_ptr, __ATOMIC_ACQUIRE) == b->stamp;
}

static bool block_valid(const struct soft_block *b, uint64_t key)
{
	return b->key == key && block_current(b);
}

/* Marks the code page before its bytes are read, so that any later write
 * invalidates what is decoded from them. */
static bool block_stamp(struct soft_cpu *cpu, struct soft_block *b, uint64_t gpa)
{
	uint32_t *stamp = guest_mem_code_stamp(cpu->mem, gpa);
	bool newly;
	if (!stamp)
		return false;
	b->stamp_ptr = stamp;
	b->stamp = guest_mem_code_mark(stamp, &newly);
	if (newly)
		tlb_protect_code(cpu, gpa & ~0xfffULL);
	return true;
}

/* Decodes from `code` (the rest of its page, `room` bytes) into b. A
 * decoding failure just ends the block; the first instruction must decode. */
static void block_build(struct soft_cpu *cpu, struct soft_block *b, const uint8_t *code,
			unsigned room)
{
	unsigned pos = 0;
	b->ninsns = 0;
	while (b->ninsns < BLOCK_MAX_INSNS && pos < room) {
		struct insn *i = &b->insn[b->ninsns];
		unsigned avail = room - pos;
		if (avail > BLOCK_MAX_BYTES - pos)
			avail = BLOCK_MAX_BYTES - pos;
		int len = soft_decode_buffer(cpu->optable, code + pos, avail, cpu->long64, cpu->def32, i);
		if (len <= 0)
			break;
		pos += (unsigned)len;
		b->ninsns++;
		if (ends_block(i))
			break;
	}
	b->nbytes = (uint16_t)pos;
}

#define KEY_GPA_MASK ((1ULL << 61) - 1)

/* The chained successor of prev, if one of its links holds (soft.h). Only
 * in 64-bit mode, where RIP is the linear address: the same RIP under the
 * same code_gen is the same guest-physical code. */
static struct soft_block *chained(struct soft_cpu *cpu, struct soft_block *prev)
{
	if (!cpu->long64)
		return NULL;
	for (unsigned k = 0; k < 2; k++) {
		const struct soft_link *l = &prev->link[k];
		struct soft_block *b = l->to;
		if (!b || l->rip != cpu->s.rip || l->gen != cpu->code_gen || b->key != l->key)
			continue;
		if (!block_current(b))
			return NULL;
		prev->link_victim = (uint8_t)!k;
		cpu->block_gpa_page = b->key & KEY_GPA_MASK & ~0xfffULL;
		return b;
	}
	return NULL;
}

static struct soft_block *lookup(struct soft_cpu *cpu);

struct soft_block *soft_block_lookup(struct soft_cpu *cpu, struct soft_block *prev)
{
	struct soft_dcache *c = cpu->dcache;
	if (c && prev) {
		struct soft_block *b = chained(cpu, prev);
		if (b) {
			c->hits++;
			return b;
		}
	}
	struct soft_block *b = lookup(cpu);
	if (b && prev) {
		struct soft_link *l = &prev->link[prev->link_victim & 1];
		*l = (struct soft_link){.to = b, .rip = cpu->s.rip, .key = b->key, .gen = cpu->code_gen};
		prev->link_victim = !(prev->link_victim & 1);
	}
	return b;
}

static struct soft_block *lookup(struct soft_cpu *cpu)
{
	struct soft_dcache *c = cpu->dcache;
	uint64_t gpa;
	const uint8_t *code = soft_fetch_pointer(cpu, &gpa);

	if (!c || !code)
		return NULL;
	uint64_t mode = (uint64_t)(cpu->long64 ? 2 : 0) | (cpu->def32 ? 1 : 0);
	uint64_t key = gpa | (mode << 62) | (1ULL << 61);
	unsigned set = bcache_index(gpa);
	struct soft_block *ways = &c->b[set * BCACHE_WAYS];

	cpu->block_gpa_page = gpa & ~0xfffULL;
	for (unsigned w = 0; w < BCACHE_WAYS; w++)
		if (block_valid(&ways[w], key)) {
			c->hits++;
			c->mru[set] = (uint8_t)w;
			return &ways[w];
		}
	c->misses++;
	/* Rebuild a stale copy in place, else evict the way not used last. */
	unsigned victim = ways[0].key == key ? 0 : ways[1].key == key ? 1 : !c->mru[set];
	struct soft_block *b = &ways[victim];
	c->mru[set] = (uint8_t)victim;
	b->key = 0;
	memset(b->link, 0, sizeof(b->link));
	if (!block_stamp(cpu, b, gpa))
		return NULL;
	block_build(cpu, b, code, 0x1000 - (unsigned)(gpa & 0xfff));
	if (b->ninsns == 0)
		return NULL; /* crosses the page or does not decode: the slow path faults properly */
	b->key = key;
	return b;
}
