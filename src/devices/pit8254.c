#include "devices/pit8254.h"

#include <string.h>

#define NS_PER_S 1000000000ULL
#define PIT_CONTROL_PORT 3
#define RW_LATCH 0
#define RW_LSB 1
#define RW_MSB 2
#define RW_WORD 3
#define READBACK_NO_COUNT  0x20
#define READBACK_NO_STATUS 0x10
#define STATUS_OUT  0x80
#define STATUS_NULL 0x40
#define SYSCTL_GATE2 0x01
#define SYSCTL_WRITABLE 0x0f
#define SYSCTL_REFRESH 0x10
#define SYSCTL_OUT2 0x20
#define REFRESH_PERIOD_NS 15085 /* DRAM refresh request toggle, ~15 us */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Clock ticks elapsed in ns nanoseconds, rounded down; exact, no overflow. */
static uint64_t ns_to_ticks(uint64_t ns)
{
	return ns / NS_PER_S * PIT_FREQ_HZ + ns % NS_PER_S * PIT_FREQ_HZ / NS_PER_S;
}

/* The first nanosecond at which ticks clock ticks have elapsed; saturates. */
static uint64_t ticks_to_ns_ceil(uint64_t ticks)
{
	uint64_t whole = ticks / PIT_FREQ_HZ, rem = ticks % PIT_FREQ_HZ;
	if (whole > UINT64_MAX / NS_PER_S)
		return UINT64_MAX;
	return sat_add(whole * NS_PER_S, (rem * NS_PER_S + PIT_FREQ_HZ - 1) / PIT_FREQ_HZ);
}

static uint64_t pit_elapsed_ticks(const struct pit_channel *c, uint64_t now_ns)
{
	return now_ns > c->load_ns ? ns_to_ticks(now_ns - c->load_ns) : 0;
}

static unsigned bcd_to_bin(uint16_t raw)
{
	unsigned v = 0;
	for (int shift = 12; shift >= 0; shift -= 4) {
		unsigned digit = (raw >> shift) & 0xf;
		v = v * 10 + (digit > 9 ? 9 : digit);
	}
	return v;
}

static uint16_t bin_to_bcd(unsigned v)
{
	uint16_t raw = 0;
	for (int shift = 0; shift <= 12; shift += 4) {
		raw |= (uint16_t)((v % 10) << shift);
		v /= 10;
	}
	return raw;
}

static uint32_t pit_modulus(const struct pit_channel *c)
{
	return c->bcd ? 10000 : 65536;
}

/* The count register value: 0 stands for the largest count. */
static uint32_t raw_to_count(const struct pit_channel *c, uint16_t raw)
{
	uint32_t v = c->bcd ? bcd_to_bin(raw) : raw;
	return v ? v : pit_modulus(c);
}

static bool pit_periodic(const struct pit_channel *c)
{
	return c->mode == 2 || c->mode == 3;
}

/* The counting element now, in binary, 0..modulus-1. */
static uint32_t pit_current(const struct pit_channel *c, uint64_t now_ns)
{
	uint32_t m = pit_modulus(c);
	uint64_t d = pit_elapsed_ticks(c, now_ns);
	uint64_t v;

	if (!c->loaded)
		return c->count % m;
	switch (c->mode) {
	case 2:
		v = c->count - d % c->count;
		break;
	case 3: /* decrements by two, twice per period */
		v = c->count - (2 * (d % c->count)) % c->count;
		break;
	default: /* 0, 1, 4, 5: count down and wrap */
		v = (c->count + m - d % m) % m;
		break;
	}
	return (uint32_t)(v % m);
}

static uint16_t pit_current_raw(const struct pit_channel *c, uint64_t now_ns)
{
	uint32_t v = pit_current(c, now_ns);
	return c->bcd ? bin_to_bcd(v) : (uint16_t)v;
}

static bool pit_channel_out(const struct pit_channel *c, uint64_t now_ns)
{
	if (!c->loaded)
		return c->mode != 0; /* mode 0 sets OUT low on the control word */
	uint64_t d = pit_elapsed_ticks(c, now_ns);
	switch (c->mode) {
	case 0:
	case 1:
		return d >= c->count;
	case 2:
		return !c->gate || d % c->count != c->count - 1;
	case 3:
		return !c->gate || d % c->count < (c->count + 1) / 2;
	default: /* 4, 5: one-clock low strobe at terminal count */
		return d != c->count;
	}
}

bool pit_out(const struct pit *pit, unsigned ch, uint64_t now_ns)
{
	return ch < 3 && pit_channel_out(&pit->ch[ch], now_ns);
}

void pit_init(struct pit *pit, uint64_t (*now_ns)(void *opaque), void *opaque)
{
	memset(pit, 0, sizeof(*pit));
	pit->now_ns = now_ns;
	pit->clock_opaque = opaque;
	for (unsigned i = 0; i < 3; i++) {
		struct pit_channel *c = &pit->ch[i];
		c->rw = RW_WORD;
		c->count = 65536;
		c->gate = i != 2; /* counters 0 and 1 have their gates tied high */
		c->next_edge = 1;
	}
}

static uint64_t pit_now(const struct pit *pit)
{
	return pit->now_ns(pit->clock_opaque);
}

static void pit_latch_count(struct pit_channel *c, uint64_t now_ns)
{
	if (c->latch_bytes)
		return; /* a second latch before the read is ignored */
	c->latch = pit_current_raw(c, now_ns);
	c->latch_bytes = c->rw == RW_WORD ? 2 : 1;
	c->latch_high = c->rw == RW_MSB;
}

static void pit_latch_status(struct pit_channel *c, uint64_t now_ns)
{
	if (c->status_latched)
		return;
	c->status = (uint8_t)((pit_channel_out(c, now_ns) ? STATUS_OUT : 0) |
			      (c->loaded ? 0 : STATUS_NULL) | c->rw << 4 | c->mode << 1 |
			      (c->bcd ? 1 : 0));
	c->status_latched = true;
}

static void pit_read_back(struct pit *pit, uint8_t value, uint64_t now_ns)
{
	for (unsigned i = 0; i < 3; i++) {
		if (!(value & (2u << i)))
			continue;
		if (!(value & READBACK_NO_COUNT))
			pit_latch_count(&pit->ch[i], now_ns);
		if (!(value & READBACK_NO_STATUS))
			pit_latch_status(&pit->ch[i], now_ns);
	}
}

static void pit_control(struct pit *pit, uint8_t value)
{
	unsigned sel = value >> 6, rw = (value >> 4) & 3;
	uint64_t now = pit_now(pit);

	if (sel == 3) {
		pit_read_back(pit, value, now);
		return;
	}
	struct pit_channel *c = &pit->ch[sel];
	if (rw == RW_LATCH) {
		pit_latch_count(c, now);
		return;
	}
	c->rw = (uint8_t)rw;
	c->mode = (value >> 1) & 7;
	if (c->mode > 5)
		c->mode -= 4; /* 6 and 7 are 2 and 3 */
	c->bcd = value & 1;
	c->loaded = false;
	c->write_high = false;
	c->read_high = false;
	c->latch_bytes = 0;
	c->status_latched = false;
	c->next_edge = 1;
}

static void pit_load(struct pit *pit, struct pit_channel *c, uint16_t raw)
{
	c->count = raw_to_count(c, raw);
	c->loaded = true;
	c->load_ns = pit_now(pit);
	c->next_edge = 1;
}

static void pit_write_count(struct pit *pit, struct pit_channel *c, uint8_t value)
{
	switch (c->rw) {
	case RW_LSB:
		pit_load(pit, c, value);
		break;
	case RW_MSB:
		pit_load(pit, c, (uint16_t)(value << 8));
		break;
	default:
		if (!c->write_high) {
			c->write_lsb = value;
			c->write_high = true;
		} else {
			c->write_high = false;
			pit_load(pit, c, (uint16_t)(c->write_lsb | value << 8));
		}
		break;
	}
}

static uint8_t pit_read_count(struct pit *pit, struct pit_channel *c)
{
	if (c->status_latched) {
		c->status_latched = false;
		return c->status;
	}
	if (c->latch_bytes) {
		uint8_t b = (uint8_t)(c->latch_high ? c->latch >> 8 : c->latch);
		c->latch_bytes--;
		c->latch_high = !c->latch_high;
		return b;
	}
	uint16_t raw = pit_current_raw(c, pit_now(pit));
	bool high = c->rw == RW_MSB || (c->rw == RW_WORD && c->read_high);
	if (c->rw == RW_WORD)
		c->read_high = !c->read_high;
	return (uint8_t)(high ? raw >> 8 : raw);
}

uint8_t pit_read(struct pit *pit, unsigned port)
{
	if (port >= PIT_CONTROL_PORT)
		return 0xff; /* the control word register is write-only */
	return pit_read_count(pit, &pit->ch[port]);
}

void pit_write(struct pit *pit, unsigned port, uint8_t value)
{
	if (port == PIT_CONTROL_PORT)
		pit_control(pit, value);
	else if (port < PIT_CONTROL_PORT)
		pit_write_count(pit, &pit->ch[port], value);
}

uint8_t pit_sysctl_read(struct pit *pit)
{
	uint64_t now = pit_now(pit);
	uint8_t v = (uint8_t)(pit->sysctl & SYSCTL_WRITABLE);

	if ((now / REFRESH_PERIOD_NS) & 1)
		v |= SYSCTL_REFRESH;
	if (pit_channel_out(&pit->ch[2], now))
		v |= SYSCTL_OUT2;
	return v;
}

void pit_sysctl_write(struct pit *pit, uint8_t value)
{
	struct pit_channel *c = &pit->ch[2];
	bool rising = (value & SYSCTL_GATE2) && !c->gate;

	pit->sysctl = value & SYSCTL_WRITABLE;
	c->gate = value & SYSCTL_GATE2;
	/* A rising gate (re)starts modes 1, 2, 3 and 5. */
	if (rising && c->loaded && c->mode != 0 && c->mode != 4)
		c->load_ns = pit_now(pit);
}

/* Period of the IRQ 0 edges in a periodic mode: the count, but at least
 * PIT_MIN_IRQ_PERIOD_TICKS so a guest cannot make the host spin. */
static uint64_t pit_irq_period(const struct pit_channel *c)
{
	return c->count < PIT_MIN_IRQ_PERIOD_TICKS ? PIT_MIN_IRQ_PERIOD_TICKS : c->count;
}

/* Clock ticks after the load at which OUT0 rises for the k-th time
 * (k >= 1), or UINT64_MAX if it never does. */
static uint64_t pit_edge_tick(const struct pit_channel *c, uint64_t k)
{
	if (pit_periodic(c))
		return k > UINT64_MAX / pit_irq_period(c) ? UINT64_MAX : k * pit_irq_period(c);
	if (k != 1)
		return UINT64_MAX;
	return c->mode <= 1 ? c->count : (uint64_t)c->count + 1; /* 4, 5: after the strobe */
}

uint64_t pit_poll(struct pit *pit, uint64_t now_ns)
{
	struct pit_channel *c = &pit->ch[0];
	if (!c->loaded || !c->gate)
		return 0;
	uint64_t d = pit_elapsed_ticks(c, now_ns);

	if (pit_periodic(c)) {
		uint64_t last = d / pit_irq_period(c); /* edges so far, counting from 1 */
		if (last < c->next_edge)
			return 0;
		uint64_t n = last - c->next_edge + 1;
		c->next_edge = last + 1;
		return n;
	}
	if (c->next_edge == 1 && d >= pit_edge_tick(c, 1)) {
		c->next_edge = 2;
		return 1;
	}
	return 0;
}

uint64_t pit_next_event_ns(const struct pit *pit)
{
	const struct pit_channel *c = &pit->ch[0];
	if (!c->loaded || !c->gate)
		return UINT64_MAX;
	uint64_t tick = pit_edge_tick(c, c->next_edge);
	if (tick == UINT64_MAX)
		return UINT64_MAX;
	return sat_add(c->load_ns, ticks_to_ns_ceil(tick));
}
