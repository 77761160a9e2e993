#include "devices/debug_exit.h"

#include "arch/x86/layout.h"

void debug_exit_init(struct debug_exit *d, const struct power_ctl *power) { d->power = power; }

static void debug_exit_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct debug_exit *d = opaque;
	if (offset != 0) /* QEMU's device decodes the value at its base port only */
		return;
	uint32_t v = (uint32_t)bus_data_get(data, size > 4 ? 4 : size);
	power_request(d->power, POWER_EXIT_CODE, (int)((v << 1) | 1));
}

static void exit_status_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct debug_exit *d = opaque;
	(void)offset;
	(void)size;
	power_request(d->power, POWER_SET_STATUS, data[0]);
}

const struct bus_ops debug_exit_ops = {.write = debug_exit_write};
const struct bus_ops exit_status_ops = {.write = exit_status_write};

int debug_exit_attach(struct debug_exit *d, struct bus *pio)
{
	int r = bus_register(pio, PORT_DEBUG_EXIT, 4, "debug-exit", &debug_exit_ops, d);
	return r ? r : bus_register(pio, PORT_EXIT_STATUS, 1, "exit-status", &exit_status_ops, d);
}
