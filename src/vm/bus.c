#include "vm/bus.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const char *name,
		 const struct bus_ops *ops, void *opaque)
{
	if (len == 0 || base + len < base || !ops)
		return -EINVAL;
	if (bus->count == BUS_MAX_RANGES)
		return -ENOSPC;
	unsigned pos = 0;
	while (pos < bus->count && bus->range[pos].base < base)
		pos++;
	if (pos > 0) {
		const struct bus_range *prev = &bus->range[pos - 1];
		if (prev->base + prev->len > base)
			return -EEXIST;
	}
	if (pos < bus->count && base + len > bus->range[pos].base)
		return -EEXIST;
	memmove(&bus->range[pos + 1], &bus->range[pos],
		(bus->count - pos) * sizeof(bus->range[0]));
	bus->range[pos] = (struct bus_range){base, len, name, ops, opaque};
	bus->count++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
	unsigned lo = 0, hi = bus->count;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->range[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

static const struct bus_range *bus_claim(const struct bus *bus, uint64_t addr, unsigned size)
{
	const struct bus_range *r = bus_find(bus, addr);
	if (!r || size == 0 || size > 8 || addr - r->base + size > r->len)
		return NULL;
	return r;
}

int bus_read(const struct bus *bus, uint64_t addr, uint8_t *data, unsigned size)
{
	const struct bus_range *r = bus_claim(bus, addr, size);
	memset(data, 0xff, size > 8 ? 8 : size);
	if (!r)
		return -1;
	if (r->ops->read)
		r->ops->read(r->opaque, addr - r->base, data, size);
	return (int)(r - bus->range);
}

int bus_write(const struct bus *bus, uint64_t addr, const uint8_t *data, unsigned size)
{
	const struct bus_range *r = bus_claim(bus, addr, size);
	if (!r)
		return -1;
	if (r->ops->write)
		r->ops->write(r->opaque, addr - r->base, data, size);
	return (int)(r - bus->range);
}

uint64_t bus_data_get(const uint8_t *data, unsigned size)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < size && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

void bus_data_put(uint8_t *data, unsigned size, uint64_t value)
{
	for (unsigned i = 0; i < size && i < 8; i++)
		data[i] = (uint8_t)(value >> (8 * i));
}
