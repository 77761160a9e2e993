#include "devices/i8042.h"

#include <string.h>

#include "arch/x86/layout.h"

#define STATUS_OBF 0x01
#define STATUS_SYS 0x04
#define STATUS_CMD 0x08
#define STATUS_UNLOCKED 0x10 /* keyboard inhibit switch off (Linux warns "Keylock active") */
#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_SELF_TEST 0xaa
#define CMD_PORT_TEST 0xab
#define CMD_WRITE_OUTPUT 0xd1
#define CMD_PULSE_RESET 0xfe
#define SELF_TEST_OK 0x55
#define OUTPUT_RESET_BIT 0x01 /* active low: 0 asserts CPU reset */

void i8042_init(struct i8042 *k, const struct power_ctl *power)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->power = power;
	k->ctr = 0x30; /* both ports disabled, no interrupts: nothing is attached */
}

void i8042_destroy(struct i8042 *k) { pthread_mutex_destroy(&k->lock); }

static void i8042_reply(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->out_full = true;
}

static void i8042_command(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case CMD_READ_CTR:
		i8042_reply(k, k->ctr);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTPUT:
		k->pending = cmd;
		break;
	case CMD_SELF_TEST:
		i8042_reply(k, SELF_TEST_OK);
		break;
	case CMD_PORT_TEST:
		i8042_reply(k, 0x00);
		break;
	case CMD_PULSE_RESET:
		power_request(k->power, POWER_RESET, 0);
		break;
	default:
		/* 0xF0-0xFF pulse output lines: only bit 0 (reset) matters. */
		if (cmd >= 0xf0 && !(cmd & OUTPUT_RESET_BIT))
			power_request(k->power, POWER_RESET, 0);
		break;
	}
}

static void i8042_data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;
	k->pending = 0;
	if (cmd == CMD_WRITE_CTR)
		k->ctr = v;
	else if (cmd == CMD_WRITE_OUTPUT && !(v & OUTPUT_RESET_BIT))
		power_request(k->power, POWER_RESET, 0);
	/* Bytes for a (non-existent) keyboard are dropped. */
}

static void i8042_data_read_op(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct i8042 *k = opaque;
	(void)offset;
	pthread_mutex_lock(&k->lock);
	data[0] = k->out;
	k->out_full = false;
	pthread_mutex_unlock(&k->lock);
	for (unsigned i = 1; i < size; i++)
		data[i] = 0xff;
}

static void i8042_data_write_op(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct i8042 *k = opaque;
	(void)offset;
	(void)size;
	pthread_mutex_lock(&k->lock);
	i8042_data_write(k, data[0]);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_status_read_op(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct i8042 *k = opaque;
	(void)offset;
	pthread_mutex_lock(&k->lock);
	data[0] = STATUS_SYS | STATUS_UNLOCKED | (k->out_full ? STATUS_OBF : 0) |
		  (k->pending ? STATUS_CMD : 0);
	pthread_mutex_unlock(&k->lock);
	for (unsigned i = 1; i < size; i++)
		data[i] = 0xff;
}

static void i8042_cmd_write_op(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct i8042 *k = opaque;
	(void)offset;
	(void)size;
	pthread_mutex_lock(&k->lock);
	i8042_command(k, data[0]);
	pthread_mutex_unlock(&k->lock);
}

const struct bus_ops i8042_data_ops = {.read = i8042_data_read_op, .write = i8042_data_write_op};
const struct bus_ops i8042_cmd_ops = {.read = i8042_status_read_op, .write = i8042_cmd_write_op};

int i8042_attach(struct i8042 *k, struct bus *pio)
{
	int r = bus_register(pio, PORT_I8042_DATA, 1, "i8042", &i8042_data_ops, k);
	return r ? r : bus_register(pio, PORT_I8042_CMD, 1, "i8042", &i8042_cmd_ops, k);
}
