#include "devices/rtc.h"

#include <string.h>
#include <time.h>

#include "arch/x86/layout.h"
#include "util/log.h"

enum {
	RTC_SECONDS = 0x00,
	RTC_SECONDS_ALARM = 0x01,
	RTC_MINUTES = 0x02,
	RTC_MINUTES_ALARM = 0x03,
	RTC_HOURS = 0x04,
	RTC_HOURS_ALARM = 0x05,
	RTC_WEEKDAY = 0x06,
	RTC_DAY = 0x07,
	RTC_MONTH = 0x08,
	RTC_YEAR = 0x09,
	RTC_REG_A = 0x0a,
	RTC_REG_B = 0x0b,
	RTC_REG_C = 0x0c,
	RTC_REG_D = 0x0d,
	RTC_CENTURY = 0x32,
};

#define NS_PER_S 1000000000ULL
#define REG_A_UIP 0x80     /* update in progress: read-only, never set here */
#define REG_A_DIVIDER 0x26 /* 32.768 kHz time base (DV = 010), 1024 Hz rate */
#define REG_A_DV_RUNNING 2
#define REG_B_SET 0x80 /* updates stopped while the clock is being set */
#define REG_B_PIE 0x40
#define REG_B_AIE 0x20
#define REG_B_UIE 0x10
#define REG_B_DM 0x04 /* binary, not BCD */
#define REG_B_24H 0x02
#define REG_C_IRQF 0x80
#define REG_C_PF 0x40
#define REG_C_AF 0x20
#define REG_C_UF 0x10
#define REG_D_VRT 0x80 /* valid RAM and time */
#define ALARM_ANY 0xc0 /* alarm bytes 0xC0-0xFF match every value */

static uint64_t rtc_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

void rtc_init(struct rtc *rtc, const struct irq_ctl *irq)
{
	memset(rtc, 0, sizeof(*rtc));
	pthread_mutex_init(&rtc->lock, NULL);
	pthread_cond_init(&rtc->wake, NULL);
	rtc->irq = irq;
	rtc->now_ns = rtc_realtime_ns;
	rtc->last_ns = rtc_realtime_ns();
	rtc->cmos[RTC_REG_A] = REG_A_DIVIDER;
	rtc->cmos[RTC_REG_B] = REG_B_24H;
	rtc->cmos[RTC_REG_D] = REG_D_VRT;
}

static uint8_t to_bcd(int v) { return (uint8_t)(((v / 10) % 10) << 4 | (v % 10)); }

/* Register reg (a time register) for the UTC second `sec`. */
static uint8_t rtc_time_field(const struct rtc *rtc, uint64_t sec, uint8_t reg)
{
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	bool bcd = !(rtc->cmos[RTC_REG_B] & REG_B_DM);
	int v;

	switch (reg) {
	case RTC_SECONDS: v = tm.tm_sec; break;
	case RTC_MINUTES: v = tm.tm_min; break;
	case RTC_HOURS: v = tm.tm_hour; break;
	case RTC_WEEKDAY: v = tm.tm_wday + 1; break;
	case RTC_DAY: v = tm.tm_mday; break;
	case RTC_MONTH: v = tm.tm_mon + 1; break;
	case RTC_YEAR: v = tm.tm_year % 100; break;
	default: v = (tm.tm_year + 1900) / 100; break; /* RTC_CENTURY */
	}
	return bcd ? to_bcd(v) : (uint8_t)v;
}

static bool rtc_is_time_reg(uint8_t reg)
{
	return reg == RTC_SECONDS || reg == RTC_MINUTES || reg == RTC_HOURS ||
	       (reg >= RTC_WEEKDAY && reg <= RTC_YEAR) || reg == RTC_CENTURY;
}

/* The alarm fires in the second whose hours, minutes and seconds match
 * the alarm bytes, each byte 0xC0-0xFF matching any value. */
static bool rtc_alarm_matches(const struct rtc *rtc, uint64_t sec)
{
	static const uint8_t pairs[][2] = {{RTC_SECONDS_ALARM, RTC_SECONDS},
					   {RTC_MINUTES_ALARM, RTC_MINUTES},
					   {RTC_HOURS_ALARM, RTC_HOURS}};
	for (unsigned i = 0; i < 3; i++) {
		uint8_t alarm = rtc->cmos[pairs[i][0]];
		if ((alarm & ALARM_ANY) != ALARM_ANY && alarm != rtc_time_field(rtc, sec, pairs[i][1]))
			return false;
	}
	return true;
}

/* The divider chain runs only with DV = 010 (the 32.768 kHz time base). */
static bool rtc_running(const struct rtc *rtc)
{
	return ((rtc->cmos[RTC_REG_A] >> 4) & 7) == REG_A_DV_RUNNING;
}

/* Periodic-interrupt period from RS (register A bits 3-0): none for 0,
 * 3.90625 ms and 7.8125 ms for 1 and 2, else 65536 >> RS Hz; capped at
 * RTC_MAX_PERIODIC_HZ. 0 when there is none. */
static uint64_t rtc_period_ns(const struct rtc *rtc)
{
	unsigned rs = rtc->cmos[RTC_REG_A] & 0x0f;
	if (rs == 0 || !rtc_running(rtc))
		return 0;
	unsigned hz = rs <= 2 ? 256u >> (rs - 1) : 65536u >> rs;
	if (hz > RTC_MAX_PERIODIC_HZ)
		hz = RTC_MAX_PERIODIC_HZ;
	return NS_PER_S / hz;
}

/* IRQF and IRQ 8 follow the flags and their enables. */
static void rtc_update_irq(struct rtc *rtc)
{
	uint8_t *c = &rtc->cmos[RTC_REG_C];
	if (*c & rtc->cmos[RTC_REG_B] & (REG_B_PIE | REG_B_AIE | REG_B_UIE))
		*c |= REG_C_IRQF;
	bool high = *c & REG_C_IRQF;
	if (high != rtc->irq_high) {
		rtc->irq_high = high;
		irq_set_level(rtc->irq, IRQ_RTC, high);
	}
}

static uint64_t rtc_advance_locked(struct rtc *rtc, uint64_t now)
{
	uint64_t last = rtc->last_ns < now ? rtc->last_ns : now; /* the host clock may step back */
	uint8_t b = rtc->cmos[RTC_REG_B];
	bool updating = rtc_running(rtc) && !(b & REG_B_SET);
	uint64_t period = rtc_period_ns(rtc);
	uint64_t next = UINT64_MAX;

	if (updating && now / NS_PER_S > last / NS_PER_S) {
		rtc->cmos[RTC_REG_C] |= REG_C_UF;
		if (rtc_alarm_matches(rtc, now / NS_PER_S))
			rtc->cmos[RTC_REG_C] |= REG_C_AF;
	}
	if (period && now / period > last / period)
		rtc->cmos[RTC_REG_C] |= REG_C_PF;
	rtc->last_ns = now;
	rtc_update_irq(rtc);

	if (updating && (b & (REG_B_UIE | REG_B_AIE)))
		next = (now / NS_PER_S + 1) * NS_PER_S;
	if (period && (b & REG_B_PIE) && (now / period + 1) * period < next)
		next = (now / period + 1) * period;
	return next;
}

uint64_t rtc_advance(struct rtc *rtc, uint64_t now_ns)
{
	pthread_mutex_lock(&rtc->lock);
	uint64_t next = rtc_advance_locked(rtc, now_ns);
	pthread_mutex_unlock(&rtc->lock);
	return next;
}

static void *rtc_thread(void *opaque)
{
	struct rtc *rtc = opaque;
	pthread_mutex_lock(&rtc->lock);
	while (!rtc->stop) {
		uint64_t next = rtc_advance_locked(rtc, rtc->now_ns());
		if (next == UINT64_MAX) {
			pthread_cond_wait(&rtc->wake, &rtc->lock);
		} else {
			/* The condition variable's clock is CLOCK_REALTIME, as now_ns. */
			struct timespec deadline = {.tv_sec = (time_t)(next / NS_PER_S),
						    .tv_nsec = (long)(next % NS_PER_S)};
			pthread_cond_timedwait(&rtc->wake, &rtc->lock, &deadline);
		}
	}
	pthread_mutex_unlock(&rtc->lock);
	return NULL;
}

/* Registers A or B changed: the timer thread recomputes its deadline; it
 * is started the first time an interrupt is enabled. */
static void rtc_timer_changed(struct rtc *rtc)
{
	pthread_cond_signal(&rtc->wake);
	if (rtc->thread_started || rtc->thread_failed || rtc->threadless || rtc->stop ||
	    !(rtc->cmos[RTC_REG_B] & (REG_B_PIE | REG_B_AIE | REG_B_UIE)))
		return;
	int r = pthread_create(&rtc->thread, NULL, rtc_thread, rtc);
	if (r) {
		rtc->thread_failed = true;
		log_warn("rtc: no timer thread (%s): no RTC interrupts", strerror(r));
		return;
	}
	rtc->thread_started = true;
}

void rtc_stop(struct rtc *rtc)
{
	pthread_mutex_lock(&rtc->lock);
	rtc->stop = true;
	bool join = rtc->thread_started;
	rtc->thread_started = false;
	pthread_cond_signal(&rtc->wake);
	pthread_mutex_unlock(&rtc->lock);
	if (join)
		pthread_join(rtc->thread, NULL);
}

void rtc_destroy(struct rtc *rtc)
{
	rtc_stop(rtc);
	pthread_cond_destroy(&rtc->wake);
	pthread_mutex_destroy(&rtc->lock);
}

static uint8_t rtc_read_reg(struct rtc *rtc, uint8_t reg)
{
	if (rtc_is_time_reg(reg))
		return rtc_time_field(rtc, rtc->now_ns() / NS_PER_S, reg);
	if (reg != RTC_REG_C)
		return rtc->cmos[reg];
	/* Reading C returns the flags and clears them, lowering IRQ 8. */
	rtc_advance_locked(rtc, rtc->now_ns());
	uint8_t v = rtc->cmos[RTC_REG_C];
	rtc->cmos[RTC_REG_C] = 0;
	rtc_update_irq(rtc);
	return v;
}

static void rtc_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct rtc *rtc = opaque;
	memset(data, 0xff, size);
	if (offset != 1) /* the index port is write-only */
		return;
	pthread_mutex_lock(&rtc->lock);
	data[0] = rtc_read_reg(rtc, rtc->index);
	pthread_mutex_unlock(&rtc->lock);
}

static void rtc_write_reg(struct rtc *rtc, uint8_t reg, uint8_t v)
{
	if (rtc_is_time_reg(reg) || reg == RTC_REG_C || reg == RTC_REG_D)
		return; /* setting the clock is ignored: guest time follows the host */
	if (reg == RTC_REG_A || reg == RTC_REG_B) {
		/* Flags up to now under the old settings first. */
		rtc_advance_locked(rtc, rtc->now_ns());
		if (reg == RTC_REG_A)
			v &= (uint8_t)~REG_A_UIP;
		else if (v & REG_B_SET)
			v &= (uint8_t)~REG_B_UIE; /* setting SET clears UIE */
		rtc->cmos[reg] = v;
		rtc_update_irq(rtc);
		rtc_timer_changed(rtc);
		return;
	}
	rtc->cmos[reg] = v;
}

static void rtc_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct rtc *rtc = opaque;
	(void)size;
	pthread_mutex_lock(&rtc->lock);
	if (offset == 0)
		rtc->index = data[0] & 0x7f; /* bit 7 is the NMI mask, not part of the index */
	else
		rtc_write_reg(rtc, rtc->index, data[0]);
	pthread_mutex_unlock(&rtc->lock);
}

const struct bus_ops rtc_ops = {.read = rtc_read, .write = rtc_write};

int rtc_attach(struct rtc *rtc, struct bus *pio)
{
	return bus_register(pio, PORT_RTC, 2, "rtc", &rtc_ops, rtc);
}
