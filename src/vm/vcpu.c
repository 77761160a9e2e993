#include "vm/vcpu.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

/* KVM hands over at most one page of REP INS/OUTS data per exit. */
#define IO_DATA_MAX 4096

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void handle_io(struct vm *vm, struct vcpu *vcpu, const struct vcpu_exit *x)
{
	unsigned size = x->io.size;
	uint32_t count = x->io.count;

	if ((size != 1 && size != 2 && size != 4) || (uint64_t)count * size > IO_DATA_MAX)
		return; /* an engine invariant broke; nothing sane to do with the data */
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *data = x->io.data + (size_t)i * size;
		int index = x->io.is_write ? bus_write(&vm->pio, x->io.port, data, size)
					   : bus_read(&vm->pio, x->io.port, data, size);
		stats_count_access(&vcpu->stats.pio, index, x->io.port);
	}
}

static void handle_mmio(struct vm *vm, struct vcpu *vcpu, const struct vcpu_exit *x)
{
	unsigned size = x->mmio.size;
	if (size == 0 || size > 8)
		return;
	int index = x->mmio.is_write ? bus_write(&vm->mmio, x->mmio.addr, x->mmio.data, size)
				     : bus_read(&vm->mmio, x->mmio.addr, x->mmio.data, size);
	stats_count_access(&vcpu->stats.mmio, index, x->mmio.addr);
}

static void stop_with_crash(struct vm *vm, struct vcpu *vcpu, const char *what, uint64_t code)
{
	struct cpu_state s;
	char why[160];

	memset(&s, 0, sizeof(s));
	vm->eops->get_state(vcpu->ev, &s);
	snprintf(why, sizeof(why), "guest crashed on vCPU %u: %s (code %#" PRIx64 ") at rip %#" PRIx64,
		 vcpu->index, what, code, s.rip);
	vm_request_stop(vm, VM_STATUS_CRASH, why);
}

enum vcpu_action vcpu_handle_exit(struct vm *vm, struct vcpu *vcpu, struct vcpu_exit *x)
{
	if ((unsigned)x->kind < VCPU_EXIT_KIND_COUNT)
		vcpu->stats.kind[x->kind]++;
	switch (x->kind) {
	case VCPU_EXIT_IO:
		handle_io(vm, vcpu, x);
		break;
	case VCPU_EXIT_MMIO:
		handle_mmio(vm, vcpu, x);
		break;
	case VCPU_EXIT_INTR:
	case VCPU_EXIT_DEBUG:
	case VCPU_EXIT_HYPERCALL:
	case VCPU_EXIT_HLT:
		break;
	case VCPU_EXIT_SHUTDOWN:
		stop_with_crash(vm, vcpu, "triple fault", 0);
		return VCPU_STOP;
	case VCPU_EXIT_RESET:
		vm_request_stop(vm, 0, "guest requested a reset");
		return VCPU_STOP;
	case VCPU_EXIT_POWEROFF:
		vm_request_stop(vm, vm->latched_status, "guest powered off");
		return VCPU_STOP;
	case VCPU_EXIT_INTERNAL_ERROR:
		stop_with_crash(vm, vcpu, "engine internal error", x->detail.code);
		return VCPU_STOP;
	case VCPU_EXIT_FAIL_ENTRY:
		stop_with_crash(vm, vcpu, "VM entry failed", x->detail.code);
		return VCPU_STOP;
	default:
		stop_with_crash(vm, vcpu, "unhandled exit", x->detail.code);
		return VCPU_STOP;
	}
	return atomic_load(&vm->stopping) ? VCPU_STOP : VCPU_CONTINUE;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	struct vcpu_exit exit;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", vcpu->index);
	pthread_setname_np(pthread_self(), name);
	while (!atomic_load(&vm->stopping)) {
		int r = vm->eops->run(vcpu->ev, &exit);
		if (r < 0) {
			char why[96];
			snprintf(why, sizeof(why), "vCPU %u: engine run failed: %s", vcpu->index,
				 strerror(-r));
			vm_request_stop(vm, VM_STATUS_ERROR, why);
			break;
		}
		uint64_t t0 = now_ns();
		enum vcpu_action a = vcpu_handle_exit(vm, vcpu, &exit);
		vcpu->stats.handle_ns += now_ns() - t0;
		if (a == VCPU_STOP)
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
	int r = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (r)
		return -r;
	vcpu->started = true;
	return 0;
}

void vcpu_join(struct vcpu *vcpu)
{
	if (vcpu->started)
		pthread_join(vcpu->thread, NULL);
	vcpu->started = false;
}
