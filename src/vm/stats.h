/* Exit statistics: the monitor's interposition point. Every exit is
 * counted by kind, port-I/O and MMIO exits by the bus range that claimed
 * them, unclaimed accesses by address. Each vCPU owns one exit_stats (no
 * locking on the hot path); they are summed when the VM stops. */
#ifndef SHRIKE_VM_STATS_H
#define SHRIKE_VM_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"
#include "vm/bus.h"

#define STATS_UNCLAIMED_SLOTS 16

struct unclaimed_count {
	uint64_t addr;
	uint64_t count;
};

struct bus_stats {
	uint64_t range[BUS_MAX_RANGES];
	uint64_t unclaimed_total;
	unsigned nunclaimed;
	struct unclaimed_count unclaimed[STATS_UNCLAIMED_SLOTS]; /* first distinct addresses */
};

struct exit_stats {
	struct engine_vcpu_stats engine; /* filled in when the engine keeps them */
	uint64_t kind[VCPU_EXIT_KIND_COUNT];
	uint64_t handle_ns; /* time spent in shrike handling exits */
	struct bus_stats pio, mmio;
};

/* index is bus_read/bus_write's return value. */
void stats_count_access(struct bus_stats *s, int index, uint64_t addr);
void stats_add(struct exit_stats *sum, const struct exit_stats *s);
void stats_print(FILE *out, const struct exit_stats *s, const struct bus *pio,
		 const struct bus *mmio, double seconds);

#endif
