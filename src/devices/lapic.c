#include "devices/lapic.h"

#include <errno.h>
#include <string.h>

#define NS_PER_S 1000000000ULL
#define TSC_HZ_MIN 1000000ULL
#define TSC_HZ_MAX 10000000000ULL
#define TSC_HZ_DEFAULT 1000000000ULL

enum lvt_index { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LVT_COUNT };

/* Writable bits of each LVT entry (SDM Figure 11-8); delivery status and
 * remote IRR are read-only. */
static const uint32_t lvt_writable[LVT_COUNT] = {
	[LVT_TIMER] = 0x000700ff,   /* vector, mask, timer mode */
	[LVT_THERMAL] = 0x000107ff, /* vector, delivery mode, mask */
	[LVT_PERF] = 0x000107ff,
	[LVT_LINT0] = 0x0001a7ff, /* + polarity, trigger mode */
	[LVT_LINT1] = 0x0001a7ff,
	[LVT_ERROR] = 0x000100ff,
};

#define SVR_ENABLE 0x100u
#define SVR_WRITABLE 0x3ffu /* vector, enable, focus check */
#define ICR_LO_WRITABLE 0x000ccfffu
#define ICR_LOGICAL 0x800u
#define ICR_ASSERT 0x4000u
#define ICR_LEVEL 0x8000u
#define ID_MASK 0xff000000u
#define LDR_MASK 0xff000000u
#define DFR_FIXED_ONES 0x0fffffffu
#define DFR_FLAT 0xfu
#define DFR_CLUSTER 0x0u
#define TIMER_DIVIDE_WRITABLE 0xbu
#define SHORTHAND_NONE 0
#define SHORTHAND_SELF 1
#define SHORTHAND_ALL 2

/* ---- 256-bit vector registers ---- */

static bool vec_test(const uint32_t *r, unsigned v) { return r[v / 32] >> (v % 32) & 1; }
static void vec_set(uint32_t *r, unsigned v) { r[v / 32] |= 1u << (v % 32); }
static void vec_clear(uint32_t *r, unsigned v) { r[v / 32] &= ~(1u << (v % 32)); }

static int vec_highest(const uint32_t *r)
{
	for (int i = 7; i >= 0; i--)
		if (r[i])
			return i * 32 + 31 - __builtin_clz(r[i]);
	return -1;
}

/* ---- time ---- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t clock_hz(const struct lapic *l)
{
	uint64_t hz = l->clock->tsc_hz;
	return hz >= TSC_HZ_MIN && hz <= TSC_HZ_MAX ? hz : TSC_HZ_DEFAULT;
}

static uint64_t lapic_now(const struct lapic *l)
{
	return l->clock->now_ns(l->clock->opaque);
}

/* Guest TSC at time now_ns (when the clock has no TSC of its own). No
 * overflow: (ns % 1e9) * hz <= 1e9 * 1e10 < 2^64. */
static uint64_t lapic_tsc(const struct lapic *l, uint64_t now_ns)
{
	if (l->clock->tsc)
		return l->clock->tsc(l->clock->opaque);
	uint64_t hz = clock_hz(l);
	return now_ns / NS_PER_S * hz + now_ns % NS_PER_S * hz / NS_PER_S;
}

/* Nanoseconds until delta TSC ticks have passed, rounded up; saturates. */
static uint64_t tsc_delta_to_ns(const struct lapic *l, uint64_t delta)
{
	uint64_t hz = clock_hz(l);
	uint64_t whole = delta / hz, rem = delta % hz;
	if (whole > UINT64_MAX / NS_PER_S)
		return UINT64_MAX;
	return sat_add(whole * NS_PER_S, (rem * NS_PER_S + hz - 1) / hz);
}

/* ---- state ---- */

bool lapic_hw_enabled(const struct lapic *l) { return l->base & LAPIC_BASE_ENABLE; }
bool lapic_sw_enabled(const struct lapic *l) { return l->svr & SVR_ENABLE; }
uint64_t lapic_get_base(const struct lapic *l) { return l->base; }
uint64_t lapic_mmio_base(const struct lapic *l) { return l->base & LAPIC_BASE_ADDR_MASK; }

static unsigned timer_mode(const struct lapic *l)
{
	unsigned mode = (l->lvt[LVT_TIMER] >> 17) & 3;
	return mode == 3 ? LAPIC_TIMER_ONESHOT : mode; /* 3 is reserved */
}

static uint32_t divide_from_reg(uint32_t reg)
{
	uint32_t code = (reg & 3) | ((reg & 8) >> 1);
	return 1u << ((code + 1) & 7); /* 0b111 means divide by 1 */
}

void lapic_reset(struct lapic *l)
{
	l->tpr = 0;
	l->ldr = 0;
	l->dfr = 0xffffffffu;
	l->svr = 0xff;
	l->esr = l->esr_pending = 0;
	l->icr_lo = l->icr_hi = 0;
	for (unsigned i = 0; i < LVT_COUNT; i++)
		l->lvt[i] = LAPIC_LVT_MASKED;
	if (l->base & LAPIC_BASE_BSP)
		l->lvt[LVT_LINT0] = LAPIC_DM_EXTINT << 8; /* virtual wire, as KVM leaves it */
	l->timer_initial = 0;
	l->timer_divide_reg = 0;
	l->timer_divide = divide_from_reg(0);
	memset(l->irr, 0, sizeof(l->irr));
	memset(l->isr, 0, sizeof(l->isr));
	memset(l->tmr, 0, sizeof(l->tmr));
	l->timer_armed = false;
	l->timer_start_ns = l->timer_period_ns = l->timer_deadline_ns = 0;
	l->tsc_deadline = 0;
	l->events = 0;
	l->sipi_vector = 0;
}

void lapic_init(struct lapic *l, unsigned index, const struct lapic_clock *clock,
		const struct lapic_ops *ops)
{
	memset(l, 0, sizeof(*l));
	l->index = index;
	l->clock = clock;
	if (ops)
		l->ops = *ops;
	l->base = LAPIC_BASE_DEFAULT | LAPIC_BASE_ENABLE | (index == 0 ? LAPIC_BASE_BSP : 0);
	l->id = (uint32_t)(index & 0xff) << 24;
	lapic_reset(l);
}

int lapic_set_base(struct lapic *l, uint64_t value)
{
	if (value & ~(LAPIC_BASE_ADDR_MASK | LAPIC_BASE_ENABLE | LAPIC_BASE_BSP))
		return -EINVAL; /* reserved bits, or x2APIC enable */
	bool was_enabled = lapic_hw_enabled(l);
	/* The BSP flag belongs to the platform, not the guest. */
	l->base = (value & ~LAPIC_BASE_BSP) | (l->base & LAPIC_BASE_BSP);
	if (was_enabled && !lapic_hw_enabled(l))
		lapic_reset(l);
	return 0;
}

/* ---- priorities ---- */

uint8_t lapic_ppr(const struct lapic *l)
{
	int isrv = vec_highest(l->isr);
	uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;
	uint32_t tpr = l->tpr & 0xff;
	return (uint8_t)((tpr & 0xf0) >= isr_class ? tpr : isr_class);
}

int lapic_pending_vector(struct lapic *l)
{
	if (!lapic_hw_enabled(l))
		return -1;
	int v = vec_highest(l->irr);
	if (v < 0 || ((unsigned)v & 0xf0) <= (lapic_ppr(l) & 0xf0u))
		return -1;
	return v;
}

void lapic_accept(struct lapic *l, int vector)
{
	if (vector < 0 || vector > 255 || !vec_test(l->irr, (unsigned)vector))
		return;
	vec_clear(l->irr, (unsigned)vector);
	vec_set(l->isr, (unsigned)vector);
}

static void lapic_eoi(struct lapic *l)
{
	int v = vec_highest(l->isr);
	if (v < 0)
		return; /* EOI with nothing in service: ignored */
	vec_clear(l->isr, (unsigned)v);
	if (vec_test(l->tmr, (unsigned)v) && l->ops.eoi_broadcast)
		l->ops.eoi_broadcast(l->ops.opaque, (uint8_t)v);
}

/* ---- interrupt acceptance ---- */

/* Record an error; raise the LVT error interrupt unless that would itself be
 * illegal (which would recurse). */
static void lapic_error(struct lapic *l, uint32_t bits)
{
	uint32_t lvt = l->lvt[LVT_ERROR];
	l->esr_pending |= bits;
	if (!(lvt & LAPIC_LVT_MASKED) && lapic_sw_enabled(l) && (lvt & 0xff) >= 16) {
		vec_set(l->irr, lvt & 0xff);
		vec_clear(l->tmr, lvt & 0xff);
	}
}

static void lapic_accept_fixed(struct lapic *l, uint8_t vector, bool level)
{
	if (vector < 16) {
		lapic_error(l, LAPIC_ESR_RECV_ILLEGAL_VECTOR);
		return;
	}
	if (!lapic_sw_enabled(l))
		return; /* a software-disabled APIC drops fixed interrupts */
	vec_set(l->irr, vector);
	if (level)
		vec_set(l->tmr, vector);
	else
		vec_clear(l->tmr, vector);
}

void lapic_deliver(struct lapic *l, uint8_t mode, uint8_t vector, bool level)
{
	if (!lapic_hw_enabled(l))
		return;
	switch (mode) {
	case LAPIC_DM_FIXED:
	case LAPIC_DM_LOWEST:
		lapic_accept_fixed(l, vector, level);
		break;
	case LAPIC_DM_NMI:
		l->events |= LAPIC_EV_NMI;
		break;
	case LAPIC_DM_INIT:
		l->events |= LAPIC_EV_INIT;
		break;
	case LAPIC_DM_STARTUP:
		l->events |= LAPIC_EV_SIPI;
		l->sipi_vector = vector;
		break;
	default: /* SMI, ExtINT and reserved modes are not supported (as in KVM) */
		break;
	}
}

void lapic_set_irq(struct lapic *l, uint8_t vector, bool level)
{
	lapic_deliver(l, LAPIC_DM_FIXED, vector, level);
}

unsigned lapic_take_events(struct lapic *l, uint8_t *sipi_vector)
{
	unsigned ev = l->events;
	if (sipi_vector)
		*sipi_vector = l->sipi_vector;
	l->events = 0;
	return ev;
}

bool lapic_accepts_pic(const struct lapic *l)
{
	uint32_t lint0 = l->lvt[LVT_LINT0];
	if (!lapic_hw_enabled(l))
		return true;
	return !(lint0 & LAPIC_LVT_MASKED) && ((lint0 >> 8) & 7) == LAPIC_DM_EXTINT;
}

bool lapic_match_dest(const struct lapic *l, uint8_t dest, bool logical)
{
	if (!lapic_hw_enabled(l))
		return false;
	if (dest == 0xff)
		return true;
	if (!logical)
		return dest == l->id >> 24;

	uint8_t ldr = (uint8_t)(l->ldr >> 24);
	if ((l->dfr >> 28) == DFR_CLUSTER)
		return (dest >> 4) == (ldr >> 4) && (dest & ldr & 0xf);
	return (dest & ldr) != 0; /* flat model */
}

/* ---- IPIs ---- */

static void lapic_send_ipi(struct lapic *l)
{
	struct lapic_ipi ipi = {
		.vector = (uint8_t)l->icr_lo,
		.mode = (l->icr_lo >> 8) & 7,
		.dest = (uint8_t)(l->icr_hi >> 24),
		.shorthand = (l->icr_lo >> 18) & 3,
		.logical = l->icr_lo & ICR_LOGICAL,
		.assert = l->icr_lo & ICR_ASSERT,
		.level_trig = l->icr_lo & ICR_LEVEL,
	};

	if ((ipi.mode == LAPIC_DM_FIXED || ipi.mode == LAPIC_DM_LOWEST) && ipi.vector < 16) {
		lapic_error(l, LAPIC_ESR_SEND_ILLEGAL_VECTOR);
		return;
	}
	if (ipi.mode == LAPIC_DM_INIT && !ipi.assert)
		return; /* INIT level de-assert: a no-op since the Pentium 4 */
	if (l->ops.send_ipi) {
		l->ops.send_ipi(l->ops.opaque, l, &ipi);
		return;
	}
	bool to_self = ipi.shorthand == SHORTHAND_SELF || ipi.shorthand == SHORTHAND_ALL ||
		       (ipi.shorthand == SHORTHAND_NONE && lapic_match_dest(l, ipi.dest, ipi.logical));
	if (to_self)
		lapic_deliver(l, ipi.mode, ipi.vector, ipi.level_trig);
}

/* ---- timer ---- */

static void lapic_timer_start(struct lapic *l, uint64_t now_ns)
{
	l->timer_armed = false;
	l->timer_divide = divide_from_reg(l->timer_divide_reg);
	if (l->timer_initial == 0)
		return;
	uint64_t period = (uint64_t)l->timer_initial * l->timer_divide;
	if (timer_mode(l) == LAPIC_TIMER_PERIODIC && period < LAPIC_MIN_PERIOD_NS)
		period = LAPIC_MIN_PERIOD_NS;
	l->timer_period_ns = period;
	l->timer_start_ns = now_ns;
	l->timer_deadline_ns = sat_add(now_ns, period);
	l->timer_armed = true;
}

static uint32_t lapic_timer_current(const struct lapic *l)
{
	if (timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE || !l->timer_armed || !l->timer_period_ns)
		return 0;
	uint64_t now = lapic_now(l);
	uint64_t elapsed = now > l->timer_start_ns ? now - l->timer_start_ns : 0;
	uint64_t left;

	if (timer_mode(l) == LAPIC_TIMER_PERIODIC)
		left = l->timer_period_ns - elapsed % l->timer_period_ns;
	else if (elapsed >= l->timer_period_ns)
		return 0;
	else
		left = l->timer_period_ns - elapsed;
	uint64_t count = (left + l->timer_divide - 1) / l->timer_divide;
	return count > l->timer_initial ? l->timer_initial : (uint32_t)count;
}

static void lapic_timer_fire(struct lapic *l)
{
	uint32_t lvt = l->lvt[LVT_TIMER];
	if (lvt & LAPIC_LVT_MASKED)
		return;
	lapic_accept_fixed(l, (uint8_t)lvt, false);
}

bool lapic_poll_timer(struct lapic *l, uint64_t now_ns)
{
	if (!l->timer_armed || now_ns < l->timer_deadline_ns)
		return false;
	switch (timer_mode(l)) {
	case LAPIC_TIMER_PERIODIC: {
		/* Coalesce missed periods; keep the original phase. */
		uint64_t k = (now_ns - l->timer_start_ns) / l->timer_period_ns + 1;
		if (k > (UINT64_MAX - l->timer_start_ns) / l->timer_period_ns)
			l->timer_armed = false;
		else
			l->timer_deadline_ns = l->timer_start_ns + k * l->timer_period_ns;
		break;
	}
	case LAPIC_TIMER_TSC_DEADLINE:
		l->tsc_deadline = 0;
		l->timer_armed = false;
		break;
	default:
		l->timer_armed = false;
		break;
	}
	bool raised = !(l->lvt[LVT_TIMER] & LAPIC_LVT_MASKED);
	lapic_timer_fire(l);
	return raised;
}

uint64_t lapic_next_deadline_ns(const struct lapic *l)
{
	if (!l->timer_armed || (l->lvt[LVT_TIMER] & LAPIC_LVT_MASKED))
		return UINT64_MAX;
	return l->timer_deadline_ns;
}

uint64_t lapic_get_tsc_deadline(const struct lapic *l)
{
	return timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE ? l->tsc_deadline : 0;
}

void lapic_set_tsc_deadline(struct lapic *l, uint64_t deadline)
{
	if (timer_mode(l) != LAPIC_TIMER_TSC_DEADLINE)
		return;
	l->tsc_deadline = deadline;
	l->timer_armed = false;
	if (deadline == 0)
		return;
	uint64_t now = lapic_now(l);
	uint64_t tsc = lapic_tsc(l, now);
	l->timer_deadline_ns = deadline <= tsc ? now : sat_add(now, tsc_delta_to_ns(l, deadline - tsc));
	l->timer_armed = true;
}

/* ---- registers ---- */

static bool lvt_index_of(uint32_t reg, unsigned *index)
{
	if (reg < LAPIC_LVT_TIMER || reg > LAPIC_LVT_ERROR || (reg & 0xf))
		return false;
	*index = (reg - LAPIC_LVT_TIMER) >> 4;
	return true;
}

static bool vec_reg_of(struct lapic *l, uint32_t reg, uint32_t **r, unsigned *i)
{
	if (reg & 0xf)
		return false;
	if (reg >= LAPIC_ISR && reg < LAPIC_ISR + 0x80)
		*r = l->isr, *i = (reg - LAPIC_ISR) >> 4;
	else if (reg >= LAPIC_TMR && reg < LAPIC_TMR + 0x80)
		*r = l->tmr, *i = (reg - LAPIC_TMR) >> 4;
	else if (reg >= LAPIC_IRR && reg < LAPIC_IRR + 0x80)
		*r = l->irr, *i = (reg - LAPIC_IRR) >> 4;
	else
		return false;
	return true;
}

uint32_t lapic_reg_read(struct lapic *l, uint32_t reg)
{
	unsigned i;
	uint32_t *r;

	if (lvt_index_of(reg, &i))
		return l->lvt[i];
	if (vec_reg_of(l, reg, &r, &i))
		return r[i];
	switch (reg) {
	case LAPIC_ID: return l->id;
	case LAPIC_VER: return LAPIC_VERSION;
	case LAPIC_TPR: return l->tpr;
	case LAPIC_APR: return 0;
	case LAPIC_PPR: return lapic_ppr(l);
	case LAPIC_EOI: return 0;
	case LAPIC_RRD: return 0;
	case LAPIC_LDR: return l->ldr;
	case LAPIC_DFR: return l->dfr;
	case LAPIC_SVR: return l->svr;
	case LAPIC_ESR: return l->esr;
	case LAPIC_ICR_LO: return l->icr_lo; /* delivery status: always idle */
	case LAPIC_ICR_HI: return l->icr_hi;
	case LAPIC_TIMER_INITIAL: return l->timer_initial;
	case LAPIC_TIMER_CURRENT: return lapic_timer_current(l);
	case LAPIC_TIMER_DIVIDE: return l->timer_divide_reg;
	default:
		lapic_error(l, LAPIC_ESR_ILLEGAL_REGISTER);
		return 0;
	}
}

static void lapic_write_svr(struct lapic *l, uint32_t value)
{
	l->svr = value & SVR_WRITABLE;
	if (!lapic_sw_enabled(l))
		for (unsigned i = 0; i < LVT_COUNT; i++)
			l->lvt[i] |= LAPIC_LVT_MASKED; /* SDM §11.4.7.2 */
}

static void lapic_write_lvt(struct lapic *l, unsigned i, uint32_t value)
{
	uint32_t old_mode = timer_mode(l);

	value &= lvt_writable[i];
	if (!lapic_sw_enabled(l))
		value |= LAPIC_LVT_MASKED; /* masks cannot be cleared while disabled */
	l->lvt[i] = value;
	if (i == LVT_TIMER && timer_mode(l) != old_mode) {
		/* A mode switch disarms the timer (SDM §11.5.4.1). */
		l->timer_armed = false;
		l->timer_initial = 0;
		l->tsc_deadline = 0;
	}
}

static void lapic_write_timer_initial(struct lapic *l, uint32_t value)
{
	if (timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE)
		return; /* ignored in TSC-deadline mode */
	l->timer_initial = value;
	lapic_timer_start(l, lapic_now(l));
}

void lapic_reg_write(struct lapic *l, uint32_t reg, uint32_t value)
{
	unsigned i;
	uint32_t *r;

	if (lvt_index_of(reg, &i)) {
		lapic_write_lvt(l, i, value);
		return;
	}
	if (vec_reg_of(l, reg, &r, &i))
		return; /* read-only */
	switch (reg) {
	case LAPIC_ID: l->id = value & ID_MASK; break;
	case LAPIC_TPR: l->tpr = value & 0xff; break;
	case LAPIC_EOI: lapic_eoi(l); break;
	case LAPIC_LDR: l->ldr = value & LDR_MASK; break;
	case LAPIC_DFR: l->dfr = value | DFR_FIXED_ONES; break;
	case LAPIC_SVR: lapic_write_svr(l, value); break;
	case LAPIC_ESR: /* a write latches the errors seen since the last one */
		l->esr = l->esr_pending;
		l->esr_pending = 0;
		break;
	case LAPIC_ICR_LO:
		l->icr_lo = value & ICR_LO_WRITABLE;
		lapic_send_ipi(l);
		break;
	case LAPIC_ICR_HI: l->icr_hi = value & ID_MASK; break;
	case LAPIC_TIMER_INITIAL: lapic_write_timer_initial(l, value); break;
	case LAPIC_TIMER_DIVIDE:
		/* Takes effect at the next start; a running count keeps its period. */
		l->timer_divide_reg = value & TIMER_DIVIDE_WRITABLE;
		break;
	case LAPIC_VER:
	case LAPIC_APR:
	case LAPIC_PPR:
	case LAPIC_RRD:
	case LAPIC_TIMER_CURRENT:
		break; /* read-only */
	default:
		lapic_error(l, LAPIC_ESR_ILLEGAL_REGISTER);
		break;
	}
}

void lapic_mmio_read(struct lapic *l, uint64_t offset, uint8_t *data, unsigned size)
{
	unsigned within = (unsigned)(offset & 0xf);

	memset(data, 0, size);
	if (offset >= LAPIC_MMIO_SIZE || (size != 1 && size != 2 && size != 4) || within + size > 4)
		return;
	uint32_t v = lapic_reg_read(l, (uint32_t)offset & 0xff0);
	for (unsigned i = 0; i < size; i++)
		data[i] = (uint8_t)(v >> (8 * (within + i)));
}

void lapic_mmio_write(struct lapic *l, uint64_t offset, const uint8_t *data, unsigned size)
{
	if (offset >= LAPIC_MMIO_SIZE || size != 4 || (offset & 0xf))
		return;
	uint32_t v = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
		     (uint32_t)data[3] << 24;
	lapic_reg_write(l, (uint32_t)offset, v);
}
