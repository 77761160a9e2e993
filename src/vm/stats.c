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

void stats_add(struct exit_stats *sum, const struct exit_stats *s)
{
	for (unsigned i = 0; i < VCPU_EXIT_KIND_COUNT; i++)
		sum->kind[i] += s->kind[i];
	sum->handle_ns += s->handle_ns;
	sum->engine.instructions += s->engine.instructions;
	sum->engine.unimplemented_ud += s->engine.unimplemented_ud;
	sum->engine.dcache_hits += s->engine.dcache_hits;
	sum->engine.dcache_misses += s->engine.dcache_misses;
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
	fprintf(out, "  %-20s %12s\n", "exit reason", "count");
	for (unsigned i = 0; i < VCPU_EXIT_KIND_COUNT; i++)
		if (s->kind[i])
			fprintf(out, "  %-20s %12" PRIu64 "\n",
				vcpu_exit_kind_name((enum vcpu_exit_kind)i), s->kind[i]);
	fprintf(out, "  %-5s %-14s %-21s %12s\n", "bus", "device", "range", "accesses");
	print_bus(out, &s->pio, pio);
	print_bus(out, &s->mmio, mmio);
}
