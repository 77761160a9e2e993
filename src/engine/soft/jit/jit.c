/* The translator's dispatcher: finds (or makes) the translation for RIP,
 * runs it, and links translations to each other.
 *
 * Translations are keyed by the guest-physical address of their first
 * instruction and the mode bits that shape the generated code (CPL 3 or
 * not: the TLB the probes index). A translation is valid while its code
 * page's stamp (vm/memory.h) is the one it was made under; its entry
 * checks that, so a stale one is never run, however it is reached.
 *
 * Chaining: a direct jump whose target lies on the same guest page as
 * its block is patched, the first time it is taken, to jump straight to
 * the target's translation. Same page means same physical page: the block
 * was entered at a linear address mapping to its page, and no
 * instruction inside a block changes the mapping (those that can end the
 * block and return here). Jumps across pages come back to the dispatcher,
 * which translates the linear target afresh.
 *
 * A translation found stale is made again, and the old entry is patched
 * to jump to the new one, which unlinks every chain that led there.
 * When the code cache or an arena fills up, everything is flushed. */
#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/soft/jit/jit_internal.h"

typedef uint64_t (*jit_enter_fn)(struct soft_cpu *cpu, uintptr_t code);

static int jit_reset(struct soft_jit *j)
{
	jit_cache_flush(&j->cache);
	memset(j->hash, 0, sizeof(j->hash));
	memset(j->jc, 0, sizeof(j->jc));
	j->ntbs = 0;
	j->ninsns = 0;
	return jit_emit_runtime(j);
}

struct soft_jit *soft_jit_new(size_t cache_bytes)
{
	struct soft_jit *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->tbs = calloc(JIT_MAX_TBS, sizeof(*j->tbs));
	j->insns = calloc(JIT_INSN_ARENA, sizeof(*j->insns));
	if (!j->tbs || !j->insns || jit_cache_init(&j->cache, cache_bytes) != 0) {
		free(j->tbs);
		free(j->insns);
		free(j);
		return NULL;
	}
	if (jit_emit_runtime(j) != 0) {
		soft_jit_free(j);
		return NULL;
	}
	j->st.enabled = true;
	j->host = jit_host_features();
	if (getenv("SHRIKE_PERF_MAP")) {
		char path[64];
		snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
		j->perf_map = fopen(path, "a");
	}
	return j;
}

void soft_jit_free(struct soft_jit *j)
{
	if (!j)
		return;
	if (j->perf_map)
		fclose(j->perf_map);
	jit_cache_destroy(&j->cache);
	free(j->tbs);
	free(j->insns);
	free(j);
}

/* What shapes the generated code besides the bytes: the CPL (which TLB
 * the probes index) and whether SSE instructions may run without a fault
 * (jit_sse_usable: they are emitted natively only then). */
unsigned jit_host_features(void)
{
	unsigned a, b, c, d, f = 0;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		f |= (c & bit_SSSE3) ? HOST_SSSE3 : 0;
		f |= (c & bit_SSE4_1) ? HOST_SSE41 : 0;
		f |= (c & bit_SSE4_2) ? HOST_SSE42 : 0;
		f |= (c & bit_POPCNT) ? HOST_POPCNT : 0;
	}
	if (__get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & bit_LZCNT))
		f |= HOST_LZCNT;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_BMI))
		f |= HOST_BMI1;
	return f;
}

static uint64_t tb_key(const struct soft_cpu *cpu, uint64_t gpa)
{
	return gpa | ((uint64_t)(cpu->cpl == 3) << 62) | (1ULL << 61) |
	       ((uint64_t)jit_sse_usable(cpu) << 60);
}

static unsigned tb_hash(uint64_t key)
{
	return (unsigned)((key ^ (key >> 12) ^ (key >> JIT_HASH_BITS) ^ (key >> 62)) &
			  (JIT_HASH_SIZE - 1));
}

static bool tb_current(const struct jit_tb *tb)
{
	return __atomic_load_n(tb->stamp_ptr, __ATOMIC_ACQUIRE) == tb->stamp;
}

/* Makes a translation for RIP (at host `code`, guest-physical `gpa`). */
static struct jit_tb *translate(struct soft_jit *j, struct soft_cpu *cpu, const uint8_t *code,
				uint64_t gpa, uint64_t key)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (j->ntbs >= JIT_MAX_TBS && jit_reset(j) != 0)
			return NULL;
		uint32_t *stamp = guest_mem_code_stamp(cpu->mem, gpa);
		if (!stamp)
			return NULL;
		struct jit_tb *tb = &j->tbs[j->ntbs];
		bool newly;
		memset(tb, 0, sizeof(*tb));
		tb->key = key;
		tb->rip = cpu->s.rip;
		tb->stamp_ptr = stamp;
		tb->stamp = guest_mem_code_mark(stamp, &newly);
		if (newly)
			tlb_protect_code(cpu, gpa & ~0xfffULL);
		int rc = jit_translate(j, cpu, tb, code, gpa);
		if (rc == 0) {
			if (j->perf_map)
				fprintf(j->perf_map, "%lx %lx guest_%llx_cacheoff_%lx\n",
					(unsigned long)tb->code, (unsigned long)tb->code_size,
					(unsigned long long)tb->rip,
					(unsigned long)(tb->code - (uintptr_t)j->cache.rx));
			j->ntbs++;
			unsigned h = tb_hash(key);
			tb->next = j->hash[h];
			j->hash[h] = tb;
			return tb;
		}
		if (rc != -ENOSPC || jit_reset(j) != 0)
			return NULL;
		j->st.flushes++;
	}
	return NULL;
}

static struct jit_tb *find(struct soft_jit *j, uint64_t key)
{
	for (struct jit_tb *tb = j->hash[tb_hash(key)]; tb; tb = tb->next)
		if (tb->key == key)
			return tb;
	return NULL;
}

/* Points a stale translation's entry at its replacement. */
static void unlink_stale(struct soft_jit *j, struct jit_tb *old, const struct jit_tb *fresh)
{
	uint8_t *rw = jit_cache_rw(&j->cache, old->code);
	if (!rw)
		return;
	struct emit e;
	emit_init(&e, rw, 5, old->code);
	emit_jmp_rel32(&e, fresh->code);
	jit_cache_sync(&j->cache, old->code, 5);
}

/* The translation for the current RIP, or NULL (not translatable: MMIO,
 * an undecodable first instruction). May raise the fetch's #PF/#GP. */
static struct jit_tb *lookup(struct soft_jit *j, struct soft_cpu *cpu)
{
	uint64_t gpa;
	const uint8_t *code = soft_fetch_pointer(cpu, &gpa);
	if (!code)
		return NULL;
	uint64_t key = tb_key(cpu, gpa);
	struct jit_tb *tb = find(j, key);
	if (tb && tb->rip == cpu->s.rip && tb_current(tb)) {
		j->st.table_hits++;
		return tb;
	}
	/* Absent, stale, or made at another linear address of the same code
	 * (whose chains assume that address's page): make it anew. */
	uint64_t generation = jit_cache_generation(&j->cache);
	struct jit_tb *fresh = translate(j, cpu, code, gpa, key);
	if (!fresh) {
		if (tb && jit_cache_generation(&j->cache) == generation)
			tb->key = ~0ULL; /* stale or not ours: never found again */
		return NULL;
	}
	/* A flush on the way emptied the table and the cache: tb is gone. */
	if (tb && jit_cache_generation(&j->cache) == generation) {
		/* A stale translation's entry leads to the fresh one. One made at
		 * another linear address stays as it is for the chains into it,
		 * which come from its own page. */
		if (!tb_current(tb) && jit_cache_contains(&j->cache, tb->code)) {
			j->st.invalidated++;
			unlink_stale(j, tb, fresh);
		}
		tb->key = ~0ULL; /* never found again */
	}
	return fresh;
}

uint32_t jit_run_handler(struct soft_cpu *cpu, struct jit_call *c)
{
	cpu->s.rip = c->rip;
	cpu->block_abort = false;
	cpu->block_gpa_page = c->page;
	(*c->count)++;
	for (;;) {
		cpu->next_rip = c->fall;
		c->insn.exec(cpu, &c->insn);
		if (cpu->next_rip != c->rip || cpu->block_abort)
			break;
		/* A REP string instruction with iterations left: go on while the
		 * budget lasts and no interrupt waits (SDM vol. 2 REP: interrupts
		 * are taken between iterations). */
		cpu->icount++;
		if (--cpu->jit_budget <= 0 ||
		    ((cpu->s.rflags & FLAG_IF) && atomic_load_explicit(&cpu->irq_hint, memory_order_relaxed)))
			break;
	}
	cpu->s.rip = cpu->next_rip;
	if (cpu->block_abort)
		return 2;
	return cpu->next_rip != c->fall;
}

static void jc_fill(struct soft_jit *j, const struct soft_cpu *cpu, const struct jit_tb *tb)
{
	struct jit_jc *e = &j->jc[jit_jc_index(cpu->s.rip)];
	e->tag = jit_jc_tag(cpu->s.rip, cpu->cpl == 3);
	e->gen = cpu->map_gen;
	e->code = tb->code;
}

static void chain(struct soft_jit *j, uintptr_t field, const struct jit_tb *to)
{
	uint8_t *rw = jit_cache_rw(&j->cache, field);
	if (!rw || emit_patch_rel32(rw, field, to->code) != 0)
		return;
	jit_cache_sync(&j->cache, field, 4);
	j->st.chained++;
}

bool soft_jit_run(struct soft_cpu *cpu, struct soft_jit *j, const _Atomic bool *irq_hint,
		  int *budget)
{
	jit_enter_fn enter = (jit_enter_fn)j->enter;
	uint64_t generation = jit_cache_generation(&j->cache);
	bool ran = false;
	(void)irq_hint;
	cpu->jit_budget = *budget;
	while (cpu->jit_budget > 0 && cpu->long64 && !cpu->halted && !cpu->shutdown) {
		/* The jump cache first: it holds the translation for this RIP in
		 * this mode whenever the table would give the same one. */
		uintptr_t code;
		const struct jit_jc *je = &j->jc[jit_jc_index(cpu->s.rip)];
		if (je->tag == jit_jc_tag(cpu->s.rip, cpu->cpl == 3) && je->gen == cpu->map_gen) {
			code = je->code;
			j->st.table_hits++;
		} else {
			struct jit_tb *tb = lookup(j, cpu);
			if (!tb) {
				/* Not translatable here: nor may the jump cache lead
				 * to an older translation of it. */
				j->jc[jit_jc_index(cpu->s.rip)].tag = 0;
				break;
			}
			jc_fill(j, cpu, tb);
			code = tb->code;
		}
		j->st.dispatches++;
		ran = true;
		uint64_t field = enter(cpu, code);
		if (field == JIT_EXIT_STALE) {
			/* Its code changed: the jump cache must not lead there again. */
			j->jc[jit_jc_index(cpu->s.rip)].tag = 0;
			field = 0;
		}
		/* Chain only within one cache generation and one mode. */
		if (field && jit_cache_generation(&j->cache) == generation && cpu->long64 &&
		    cpu->jit_budget > 0 && !cpu->block_abort) {
			struct jit_tb *to = lookup(j, cpu);
			if (to && jit_cache_generation(&j->cache) == generation)
				chain(j, (uintptr_t)field, to);
		}
		generation = jit_cache_generation(&j->cache);
		if (cpu->block_abort || cpu->interrupt_shadow)
			break;
		if ((cpu->s.rflags & FLAG_IF) && atomic_load_explicit(&cpu->irq_hint, memory_order_relaxed))
			break;
	}
	*budget = cpu->jit_budget;
	return ran;
}

static void top_fallbacks(const struct soft_jit *j, struct engine_jit_stats *out)
{
	memset(out->top, 0, sizeof(out->top));
	for (unsigned op = 0; op < JIT_OPS; op++) {
		uint64_t c = j->fallback_count[op];
		out->fallbacks += c;
		for (unsigned k = 0; k < ENGINE_JIT_TOP; k++)
			if (c > out->top[k].count) {
				memmove(&out->top[k + 1], &out->top[k],
					(ENGINE_JIT_TOP - k - 1) * sizeof(out->top[0]));
				out->top[k].op = (uint16_t)op;
				out->top[k].count = c;
				break;
			}
	}
}

void soft_jit_stats(const struct soft_jit *j, struct engine_jit_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!j)
		return;
	*out = j->st;
	out->cache_used = jit_cache_used(&j->cache);
	out->cache_size = jit_cache_size(&j->cache);
	out->flushes = jit_cache_flushes(&j->cache);
	out->fallbacks = 0;
	top_fallbacks(j, out);
}
