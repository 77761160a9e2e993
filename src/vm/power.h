/* How devices ask the VM to stop: the ACPI PM block (poweroff), the i8042
 * (reset), the debug-exit port (exit with a code). The VM implements the
 * callback; devices keep a pointer and stay testable without a VM. */
#ifndef SHRIKE_VM_POWER_H
#define SHRIKE_VM_POWER_H

enum power_event {
	POWER_OFF,       /* guest powered off: exit with the latched status */
	POWER_RESET,     /* guest asked for a reset: shrike exits (no reboot) */
	POWER_EXIT_CODE, /* debug-exit: exit with the given code */
	POWER_SET_STATUS /* latch the status reported at POWER_OFF */
};

struct power_ctl {
	void (*request)(void *opaque, enum power_event event, int code);
	void *opaque;
};

static inline void power_request(const struct power_ctl *p, enum power_event event, int code)
{
	if (p && p->request)
		p->request(p->opaque, event, code);
}

#endif
