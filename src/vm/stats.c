#include "vm/stats.h"

#include <inttypes.h>

void stats_count_access(struct bus_stats *s, int index, uint64_t addr)
{
	if (index >= 0 && index < BUS_MAX_RANGES) {
		s->range[index]++;
		return;
	}
	s->unclaimed_total++;
	for (unsigned i = 0; i < s->nunclaimed; i++) {
		if (s->unclaimed[i].addr == addr) {
			s->unclaimed[i].count++;
			return;
		}
	}
	if (s->nunclaimed < STATS_UNCLAIMED_SLOTS)
		s->unclaimed[s->nunclaimed++] = (struct unclaimed_count){addr, 1};
}

static void bus_stats_add(struct bus_stats *sum, const struct bus_stats *s)
{
	for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
		sum->range[i] += s->range[i];
	sum->unclaimed_total += s->unclaimed_total;
	for (unsigned i = 0; i < s->nunclaimed; i++) {
		unsigned j = 0;
		while (j < sum->nunclaimed && sum->unclaimed[j].addr != s->unclaimed[i].addr)
			j++;
		if (j < sum->nunclaimed)
			sum->unclaimed[j].count += s->unclaimed[i].count;
		else if (sum->nunclaimed < STATS_UNCLAIMED_SLOTS)
			sum->unclaimed[sum->nunclaimed++] = s->unclaimed[i];
	}
}

/* Totals over vCPUs; the per-opcode list is the first vCPU's (each keeps
 * only its own top entries). */
static void jit_stats_add(struct engine_jit_stats *sum, const struct engine_jit_stats *s)
{
	if (!s->enabled)
		return;
	if (!sum->enabled) {
		*sum = *s;
		return;
	}
	sum->blocks += s->blocks;
	sum->code_bytes += s->code_bytes;
	sum->cache_used += s->cache_used;
	sum->cache_size += s->cache_size;
	sum->flushes += s->flushes;
	sum->invalidated += s->invalidated;
	sum->dispatches += s->dispatches;
	sum->table_hits += s->table_hits;
	sum->chained += s->chained;
	sum->fallbacks += s->fallbacks;
}

void stats_add(struct exit_stats *sum, const struct exit_stats *s)
{
	for (unsigned i = 0; i < VCPU_EXIT_KIND_COUNT; i++)
		sum->kind[i] += s->kind[i];
	sum->handle_ns += s->handle_ns;
	sum->engine.instructions += s->engine.instructions;
	sum->engine.unimplemented_ud += s->engine.unimplemented_ud;
	sum->engine.dcache_hits += s->engine.dcache_hits;
	sum->engine.dcache_misses += s->engine.dcache_misses;
	jit_stats_add(&sum->engine.jit, &s->engine.jit);
	bus_stats_add(&sum->pio, &s->pio);
	bus_stats_add(&sum->mmio, &s->mmio);
}

static void print_bus(FILE *out, const struct bus_stats *s, const struct bus *bus)
{
	for (unsigned i = 0; i < bus->count; i++) {
		const struct bus_range *r = &bus->range[i];
		if (!s->range[i])
			continue;
		fprintf(out, "  %-5s %-14s %#10" PRIx64 "-%-#10" PRIx64 " %12" PRIu64 "\n",
			bus->name, r->name, r->base, r->base + r->len - 1, s->range[i]);
	}
	for (unsigned i = 0; i < s->nunclaimed; i++)
		fprintf(out, "  %-5s %-14s %#10" PRIx64 "            %12" PRIu64 "\n", bus->name,
			"(unclaimed)", s->unclaimed[i].addr, s->unclaimed[i].count);
	if (s->unclaimed_total)
		fprintf(out, "  %-5s %-37s %12" PRIu64 "\n", bus->name, "unclaimed, total",
			s->unclaimed_total);
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* The soft engine's translator: what it made, how execution moved between
 * translations, and which instructions still ran through interpreter
 * handlers most often (the next ones worth translating). */
static void print_jit(FILE *out, const struct engine_jit_stats *j)
{
	fprintf(out,
		"  translator: %" PRIu64 " blocks, %" PRIu64 " KiB of host code, cache %" PRIu64
		"/%" PRIu64 " KiB, %" PRIu64 " flushes, %" PRIu64 " invalidated\n",
		j->blocks, j->code_bytes >> 10, j->cache_used >> 10, j->cache_size >> 10, j->flushes,
		j->invalidated);
	fprintf(out,
		"  translator: %" PRIu64 " dispatches (%.1f%% found in the table), %" PRIu64
		" jumps chained, %" PRIu64 " handler calls\n",
		j->dispatches, pct(j->table_hits, j->dispatches), j->chained, j->fallbacks);
	fprintf(out, "  handler calls by opcode:");
	for (unsigned k = 0; k < ENGINE_JIT_TOP && j->top[k].count; k++)
		fprintf(out, " %s%02x %" PRIu64, (j->top[k].op >> 8) == 0 ? "" : (j->top[k].op >> 8) == 1 ? "0f " : (j->top[k].op >> 8) == 2 ? "0f38 " : "0f3a ",
			j->top[k].op & 0xff, j->top[k].count);
	fprintf(out, "\n");
}

void stats_print(FILE *out, const struct exit_stats *s, const struct bus *pio,
		 const struct bus *mmio, double seconds)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < VCPU_EXIT_KIND_COUNT; i++)
		total += s->kind[i];
	fprintf(out, "exit statistics: %" PRIu64 " exits in %.3f s of run time, %.3f ms handling\n",
		total, seconds, (double)s->handle_ns / 1e6);
	if (s->engine.instructions) {
		uint64_t lookups = s->engine.dcache_hits + s->engine.dcache_misses;
		fprintf(out, "  instructions retired %12" PRIu64 " (%.1f MIPS), decode cache hit rate %.2f%%\n",
			s->engine.instructions,
			seconds > 0 ? (double)s->engine.instructions / seconds / 1e6 : 0.0,
			lookups ? 100.0 * (double)s->engine.dcache_hits / (double)lookups : 0.0);
		fprintf(out, "  unimplemented opcodes (#UD) %5" PRIu64 "\n", s->engine.unimplemented_ud);
	}
	if (s->engine.jit.enabled)
		print_jit(out, &s->engine.jit);
	fprintf(out, "  %-20s %12s\n", "exit reason", "count");
	for (unsigned i = 0; i < VCPU_EXIT_KIND_COUNT; i++)
		if (s->kind[i])
			fprintf(out, "  %-20s %12" PRIu64 "\n",
				vcpu_exit_kind_name((enum vcpu_exit_kind)i), s->kind[i]);
	fprintf(out, "  %-5s %-14s %-21s %12s\n", "bus", "device", "range", "accesses");
	print_bus(out, &s->pio, pio);
	print_bus(out, &s->mmio, mmio);
}
