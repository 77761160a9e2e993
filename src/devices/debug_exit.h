/* Debug exit (compatible with QEMU's isa-debug-exit): a 1-, 2- or 4-byte
 * write of V to port 0xF4 ends the VM with exit status (V << 1) | 1.
 * Beside it, shrike's exit-status port 0x4F4: a byte written there is the
 * status shrike reports when the guest later powers off, which is how the
 * default guest's init passes a command's exit status out. Stateless
 * beyond the power_ctl pointer. */
#ifndef SHRIKE_DEVICES_DEBUG_EXIT_H
#define SHRIKE_DEVICES_DEBUG_EXIT_H

#include "vm/bus.h"
#include "vm/power.h"

struct debug_exit {
	const struct power_ctl *power;
};

void debug_exit_init(struct debug_exit *d, const struct power_ctl *power);
int debug_exit_attach(struct debug_exit *d, struct bus *pio);

extern const struct bus_ops debug_exit_ops;
extern const struct bus_ops exit_status_ops;

#endif
