/* The decoded-instruction cache: each instruction is decoded once and
 * looked up by its guest-physical address and the decoding mode.
 *
 * Self-modifying code (Linux patches its own text: alternatives, static
 * keys, ftrace) and DMA into code pages are handled by validating a hit
 * against the instruction's current bytes: an entry is only used while
 * guest memory still holds exactly the bytes it was decoded from. This is
 * correct whoever writes the page, at the price of one short memcmp per
 * instruction. Instructions that cross a page boundary or execute from
 * MMIO are decoded every time. */
#include <stdlib.h>
#include <string.h>

#include "engine/soft/soft.h"

#define DCACHE_BITS 16
#define DCACHE_SIZE (1u << DCACHE_BITS)

struct dcache_entry {
	uint64_t key; /* gpa | mode << 62, 0 = empty */
	struct insn insn;
	uint8_t bytes[16]; /* padded for a two-word compare */
};

struct soft_dcache {
	struct dcache_entry e[DCACHE_SIZE];
	uint64_t hits, misses;
};

struct soft_dcache *soft_dcache_new(void) { return calloc(1, sizeof(struct soft_dcache)); }

void soft_dcache_free(struct soft_dcache *c) { free(c); }

void soft_dcache_counts(const struct soft_dcache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c ? c->hits : 0;
	*misses = c ? c->misses : 0;
}

static unsigned dcache_index(uint64_t gpa)
{
	return (unsigned)((gpa ^ (gpa >> DCACHE_BITS)) & (DCACHE_SIZE - 1));
}

/* Equality of the first len (<= 15) bytes; reads 16 bytes from both, so
 * callers guarantee that much is readable. */
static inline bool bytes16_equal(const uint8_t *a, const uint8_t *b, unsigned len)
{
	uint64_t a0, a1, b0, b1;
	memcpy(&a0, a, 8);
	memcpy(&b0, b, 8);
	memcpy(&a1, a + 8, 8);
	memcpy(&b1, b + 8, 8);
	if (len <= 8) {
		uint64_t m = len == 8 ? ~0ULL : (1ULL << (8 * len)) - 1;
		return ((a0 ^ b0) & m) == 0;
	}
	uint64_t m = len == 16 ? ~0ULL : (1ULL << (8 * (len - 8))) - 1;
	return a0 == b0 && ((a1 ^ b1) & m) == 0;
}

/* Where the instruction at RIP is: host pointer, guest-physical address
 * and offset in its page; NULL host for MMIO. Sequential fetches in 64-bit
 * mode reuse the current code page without a TLB lookup. */
static const uint8_t *fetch_pointer(struct soft_cpu *cpu, uint64_t *gpa)
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

const struct insn *soft_decode_cached(struct soft_cpu *cpu)
{
	struct soft_dcache *c = cpu->dcache;
	uint64_t gpa;
	const uint8_t *code = fetch_pointer(cpu, &gpa);
	unsigned page_off = (unsigned)(gpa & 0xfff);

	if (!c || !code) {
		soft_decode(cpu, &cpu->scratch);
		return &cpu->scratch;
	}
	uint64_t mode = (uint64_t)(cpu->long64 ? 2 : 0) | (cpu->def32 ? 1 : 0);
	uint64_t key = gpa | (mode << 62) | (1ULL << 61);
	struct dcache_entry *e = &c->e[dcache_index(gpa)];

	if (e->key == key) {
		bool same = page_off + 16 <= 0x1000 ? bytes16_equal(e->bytes, code, e->insn.len)
						    : memcmp(e->bytes, code, e->insn.len) == 0;
		if (same) {
			c->hits++;
			return &e->insn;
		}
	}
	c->misses++;
	e->key = 0; /* the decode below may fault half-way */
	soft_decode(cpu, &e->insn);
	if (page_off + e->insn.len <= 0x1000) {
		memcpy(e->bytes, code, e->insn.len);
		e->key = key;
	} else {
		e->key = 0; /* crosses a page: never served from the cache */
	}
	return &e->insn;
}
