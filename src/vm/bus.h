/* Address-range buses (port I/O and MMIO). Devices register ranges before
 * any vCPU runs; afterwards the bus is read-only and lookups take no lock.
 * Each device's callbacks do their own locking (see each device's header).
 *
 * An access that no device claims reads as all-ones, ignores writes and is
 * counted by the caller's statistics (bus_read/bus_write return -1). */
#ifndef SHRIKE_VM_BUS_H
#define SHRIKE_VM_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
	/* offset is relative to the registered base; size is 1, 2, 4 or 8;
	 * data is little-endian, size bytes long. */
	void (*read)(void *opaque, uint64_t offset, uint8_t *data, unsigned size);
	void (*write)(void *opaque, uint64_t offset, const uint8_t *data, unsigned size);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const char *name;
	const struct bus_ops *ops;
	void *opaque;
};

#define BUS_MAX_RANGES 128

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	unsigned count;
	struct bus_range range[BUS_MAX_RANGES]; /* sorted by base, disjoint */
};

void bus_init(struct bus *bus, const char *name);

/* -EINVAL for an empty or wrapping range, -EEXIST on overlap, -ENOSPC when full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const char *name,
		 const struct bus_ops *ops, void *opaque);

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

/* Dispatch one access. The whole access must fall in one range; an access
 * straddling a range end is treated as unclaimed. Returns the index of the
 * claiming range (for statistics) or -1 if unclaimed. */
int bus_read(const struct bus *bus, uint64_t addr, uint8_t *data, unsigned size);
int bus_write(const struct bus *bus, uint64_t addr, const uint8_t *data, unsigned size);

/* Little-endian helpers for device callbacks. */
uint64_t bus_data_get(const uint8_t *data, unsigned size);
void bus_data_put(uint8_t *data, unsigned size, uint64_t value);

#endif
