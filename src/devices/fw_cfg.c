#include "devices/fw_cfg.h"

#include <errno.h>
#include <string.h>

#include "arch/x86/layout.h"

#define FW_CFG_ID_TRADITIONAL 0x1

int fw_cfg_add(struct fw_cfg *f, uint16_t key, const void *data, size_t len)
{
	if (f->nitems == FW_CFG_MAX_ITEMS || len > FW_CFG_ITEM_MAX)
		return -ENOSPC;
	struct fw_cfg_item *it = &f->item[f->nitems++];
	it->key = key;
	it->len = (uint16_t)len;
	memcpy(it->data, data, len);
	return 0;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void fw_cfg_init(struct fw_cfg *f, uint64_t ram_size, unsigned ncpus)
{
	uint8_t buf[8];

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	fw_cfg_add(f, FW_CFG_SIGNATURE, "QEMU", 4);
	put_le(buf, FW_CFG_ID_TRADITIONAL, 4);
	fw_cfg_add(f, FW_CFG_ID, buf, 4);
	put_le(buf, ram_size, 8);
	fw_cfg_add(f, FW_CFG_RAM_SIZE, buf, 8);
	put_le(buf, ncpus, 2);
	fw_cfg_add(f, FW_CFG_NB_CPUS, buf, 2);
	fw_cfg_add(f, FW_CFG_MAX_CPUS, buf, 2);
	/* An empty file directory: a 32-bit big-endian count of zero. */
	memset(buf, 0, 4);
	fw_cfg_add(f, FW_CFG_FILE_DIR, buf, 4);
}

void fw_cfg_destroy(struct fw_cfg *f) { pthread_mutex_destroy(&f->lock); }

static const struct fw_cfg_item *fw_cfg_lookup(const struct fw_cfg *f, uint16_t key)
{
	for (unsigned i = 0; i < f->nitems; i++)
		if (f->item[i].key == key)
			return &f->item[i];
	return NULL;
}

static uint8_t fw_cfg_next_byte(struct fw_cfg *f)
{
	const struct fw_cfg_item *it = fw_cfg_lookup(f, f->selector);
	if (!it || f->offset >= it->len)
		return 0; /* past the end or an unknown key reads as zeros */
	return it->data[f->offset++];
}

static void fw_cfg_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct fw_cfg *f = opaque;
	pthread_mutex_lock(&f->lock);
	if (offset == 0) {
		bus_data_put(data, size, f->selector);
	} else {
		for (unsigned i = 0; i < size; i++)
			data[i] = fw_cfg_next_byte(f);
	}
	pthread_mutex_unlock(&f->lock);
}

static void fw_cfg_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct fw_cfg *f = opaque;
	if (offset != 0) /* the data port is read-only */
		return;
	pthread_mutex_lock(&f->lock);
	f->selector = (uint16_t)bus_data_get(data, size > 2 ? 2 : size);
	f->offset = 0;
	pthread_mutex_unlock(&f->lock);
}

const struct bus_ops fw_cfg_ops = {.read = fw_cfg_read, .write = fw_cfg_write};

int fw_cfg_attach(struct fw_cfg *f, struct bus *pio)
{
	return bus_register(pio, PORT_FW_CFG, 2, "fw_cfg", &fw_cfg_ops, f);
}
