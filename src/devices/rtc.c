#include "devices/rtc.h"

#include <string.h>

#include "arch/x86/layout.h"

enum {
	RTC_SECONDS = 0x00,
	RTC_MINUTES = 0x02,
	RTC_HOURS = 0x04,
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

#define REG_B_24H 0x02
#define REG_D_VRT 0x80 /* valid RAM and time */
#define REG_A_DIVIDER 0x26 /* 32.768 kHz time base, 1024 Hz rate; UIP clear */

void rtc_init(struct rtc *rtc)
{
	memset(rtc, 0, sizeof(*rtc));
	pthread_mutex_init(&rtc->lock, NULL);
	rtc->now = time;
	rtc->cmos[RTC_REG_A] = REG_A_DIVIDER;
	rtc->cmos[RTC_REG_B] = REG_B_24H;
	rtc->cmos[RTC_REG_D] = REG_D_VRT;
}

void rtc_destroy(struct rtc *rtc) { pthread_mutex_destroy(&rtc->lock); }

static uint8_t to_bcd(int v) { return (uint8_t)(((v / 10) % 10) << 4 | (v % 10)); }

static uint8_t rtc_time_field(const struct rtc *rtc, uint8_t reg)
{
	time_t t = rtc->now(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	bool bcd = !(rtc->cmos[RTC_REG_B] & 0x04);
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

static void rtc_read(void *opaque, uint64_t offset, uint8_t *data, unsigned size)
{
	struct rtc *rtc = opaque;
	memset(data, 0xff, size);
	if (offset != 1) /* the index port is write-only */
		return;
	pthread_mutex_lock(&rtc->lock);
	uint8_t reg = rtc->index;
	if (rtc_is_time_reg(reg))
		data[0] = rtc_time_field(rtc, reg);
	else
		data[0] = rtc->cmos[reg];
	if (reg == RTC_REG_C)
		rtc->cmos[RTC_REG_C] = 0; /* flags clear on read */
	pthread_mutex_unlock(&rtc->lock);
}

static void rtc_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned size)
{
	struct rtc *rtc = opaque;
	(void)size;
	pthread_mutex_lock(&rtc->lock);
	if (offset == 0) {
		rtc->index = data[0] & 0x7f; /* bit 7 is the NMI mask, not part of the index */
	} else if (!rtc_is_time_reg(rtc->index) && rtc->index != RTC_REG_C &&
		   rtc->index != RTC_REG_D) {
		/* Setting the clock is ignored: guest time follows the host. */
		rtc->cmos[rtc->index] = rtc->index == RTC_REG_A ? (data[0] & 0x7f) : data[0];
	}
	pthread_mutex_unlock(&rtc->lock);
}

const struct bus_ops rtc_ops = {.read = rtc_read, .write = rtc_write};

int rtc_attach(struct rtc *rtc, struct bus *pio)
{
	return bus_register(pio, PORT_RTC, 2, "rtc", &rtc_ops, rtc);
}
