/* MC146818 CMOS real-time clock (Motorola MC146818A data sheet: register
 * map, status registers A-D). Time registers read the host's current UTC
 * time in BCD, 24-hour mode; the other bytes of the 128-byte CMOS are plain
 * storage. No alarm or periodic interrupts. Owner/lock: `lock`. */
#ifndef SHRIKE_DEVICES_RTC_H
#define SHRIKE_DEVICES_RTC_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "vm/bus.h"

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128];
	time_t (*now)(time_t *); /* injectable clock, time() by default */
};

void rtc_init(struct rtc *rtc);
void rtc_destroy(struct rtc *rtc);
int rtc_attach(struct rtc *rtc, struct bus *pio);

extern const struct bus_ops rtc_ops;

#endif
