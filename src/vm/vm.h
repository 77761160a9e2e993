/* struct vm owns everything one virtual machine is made of: guest memory,
 * the buses, the platform devices, the engine and its vCPU threads. No
 * state lives outside it (design.md, style rule 11).
 *
 * Lifecycle: vm_run() builds the machine, runs it until a stop request
 * (poweroff, reset, debug exit, crash, VMM error, user quit) and returns
 * the process exit status. The first stop request wins. */
#ifndef SHRIKE_VM_VM_H
#define SHRIKE_VM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "devices/acpi_pm.h"
#include "devices/debug_exit.h"
#include "devices/fw_cfg.h"
#include "devices/i8042.h"
#include "devices/rtc.h"
#include "devices/uart8250.h"
#include "engine/engine.h"
#include "vm/bus.h"
#include "vm/config.h"
#include "vm/console.h"
#include "vm/irq.h"
#include "vm/memory.h"
#include "vm/pci_devices.h"
#include "vm/power.h"
#include "vm/stats.h"

#define VM_STATUS_ERROR 125 /* shrike could not run the VM */
#define VM_STATUS_CRASH 123 /* the guest crashed (triple fault, engine failure) */

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	struct engine_vcpu *ev;
	pthread_t thread;
	bool started;
	struct exit_stats stats;
};

struct vm_devices {
	struct uart8250 com1;
	struct i8042 i8042;
	struct rtc rtc;
	struct debug_exit debug_exit;
	struct fw_cfg fw_cfg;
	struct acpi_pm acpi_pm;
};

struct vm {
	const struct vm_config *cfg;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct irq_ctl irq;
	struct power_ctl power;
	struct vm_devices dev;
	struct vm_pci pci;
	struct console console;

	const struct engine_ops *eops;
	struct engine *engine;
	unsigned nvcpus;
	struct vcpu vcpu[VM_MAX_VCPUS];

	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	atomic_bool stopping;
	int exit_status;
	int latched_status; /* reported at poweroff (exit-status port) */
};

int vm_run(const struct vm_config *cfg);

/* Requests the VM to stop with the given process exit status. Safe from
 * any thread; only the first request takes effect. */
void vm_request_stop(struct vm *vm, int status, const char *why);

#endif
