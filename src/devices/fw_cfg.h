/* QEMU firmware configuration interface, traditional I/O-port form
 * (QEMU docs/specs/fw_cfg.rst): a 16-bit selector at port 0x510 and a
 * byte-wide data port at 0x511 that streams the selected item. Items are
 * read-only; the DMA interface is not offered (feature bit 1 clear).
 * Owner/lock: `lock`; items are built before vCPUs start and never change. */
#ifndef SHRIKE_DEVICES_FW_CFG_H
#define SHRIKE_DEVICES_FW_CFG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/bus.h"

enum fw_cfg_key {
	FW_CFG_SIGNATURE = 0x0000,
	FW_CFG_ID = 0x0001,
	FW_CFG_RAM_SIZE = 0x0003,
	FW_CFG_NB_CPUS = 0x0005,
	FW_CFG_MAX_CPUS = 0x000f,
	FW_CFG_FILE_DIR = 0x0019,
};

#define FW_CFG_MAX_ITEMS 16
#define FW_CFG_ITEM_MAX 64

struct fw_cfg_item {
	uint16_t key;
	uint16_t len;
	uint8_t data[FW_CFG_ITEM_MAX];
};

struct fw_cfg {
	pthread_mutex_t lock;
	unsigned nitems;
	struct fw_cfg_item item[FW_CFG_MAX_ITEMS];
	uint16_t selector;
	uint32_t offset;
};

void fw_cfg_init(struct fw_cfg *f, uint64_t ram_size, unsigned ncpus);
void fw_cfg_destroy(struct fw_cfg *f);
int fw_cfg_add(struct fw_cfg *f, uint16_t key, const void *data, size_t len);
int fw_cfg_attach(struct fw_cfg *f, struct bus *pio);

extern const struct bus_ops fw_cfg_ops;

#endif
