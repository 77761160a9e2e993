/* Intel 8042 keyboard controller, only as much as a guest needs to find
 * it and to reset the machine through it (command 0xFE "pulse output
 * line", or 0xD1 "write output port" with the reset bit clear). No
 * keyboard or mouse is attached. Owner/lock: guarded by `lock`. */
#ifndef SHRIKE_DEVICES_I8042_H
#define SHRIKE_DEVICES_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/power.h"

struct i8042 {
	pthread_mutex_t lock;
	const struct power_ctl *power;
	uint8_t ctr;        /* controller configuration ("command byte") */
	uint8_t pending;    /* command awaiting a data byte on port 0x60, or 0 */
	uint8_t out;        /* output buffer */
	bool out_full;
};

void i8042_init(struct i8042 *k, const struct power_ctl *power);
void i8042_destroy(struct i8042 *k);
int i8042_attach(struct i8042 *k, struct bus *pio);

extern const struct bus_ops i8042_data_ops;
extern const struct bus_ops i8042_cmd_ops;

#endif
