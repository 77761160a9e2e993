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
	uint8_t bytes[INSN_MAX_LEN];
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

void soft_decode_cached(struct soft_cpu *cpu, struct insn *out)
{
	struct soft_dcache *c = cpu->dcache;
	uint64_t off = cpu->s.rip;
	if (!cpu->long64)
		off &= cpu->def32 ? 0xffffffffULL : 0xffffULL;
	uint64_t la = seg_linear(cpu, SEG_CS, off, 1, ACC_FETCH);
	const struct tlb_entry *t = mmu_translate(cpu, la, ACC_FETCH, false);
	unsigned page_off = (unsigned)(la & 0xfff);

	if (!c || !t->host) {
		soft_decode(cpu, out);
		return;
	}
	uint64_t mode = (uint64_t)(cpu->long64 ? 2 : 0) | (cpu->def32 ? 1 : 0);
	uint64_t key = (t->gpa | page_off) | (mode << 62) | (1ULL << 61);
	struct dcache_entry *e = &c->e[dcache_index(t->gpa | page_off)];
	const uint8_t *code = t->host + page_off;

	if (e->key == key && memcmp(e->bytes, code, e->insn.len) == 0) {
		c->hits++;
		*out = e->insn;
		return;
	}
	c->misses++;
	soft_decode(cpu, out);
	if (page_off + out->len <= 0x1000) {
		e->insn = *out;
		memcpy(e->bytes, code, out->len);
		e->key = key;
	} else {
		e->key = 0;
	}
}
