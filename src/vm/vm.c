#include "vm/vm.h"

#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/e820.h"
#include "arch/x86/layout.h"
#include "boot/boot.h"
#include "util/log.h"
#include "vm/vcpu.h"

#define KERNEL_MAX_SIZE (512ULL << 20)
#define INITRD_MAX_SIZE (2ULL << 30)

void vm_request_stop(struct vm *vm, int status, const char *why)
{
	pthread_mutex_lock(&vm->stop_lock);
	if (!atomic_load(&vm->stopping)) {
		vm->exit_status = status;
		atomic_store(&vm->stopping, true);
		if (status == VM_STATUS_ERROR || status == VM_STATUS_CRASH)
			log_error("%s", why);
		else if (status > 128)
			log_warn("%s", why);
		else
			log_info("%s (exit status %d)", why, status);
		pthread_cond_broadcast(&vm->stop_cond);
	}
	pthread_mutex_unlock(&vm->stop_lock);
}

static void vm_power_request(void *opaque, enum power_event event, int code)
{
	struct vm *vm = opaque;
	char why[64];

	switch (event) {
	case POWER_OFF:
		vm_request_stop(vm, vm->latched_status, "guest powered off");
		break;
	case POWER_RESET:
		vm_request_stop(vm, 0, "guest requested a reset");
		break;
	case POWER_EXIT_CODE:
		snprintf(why, sizeof(why), "guest wrote to the debug-exit port");
		vm_request_stop(vm, code, why);
		break;
	case POWER_SET_STATUS:
		vm->latched_status = code & 0xff;
		break;
	}
}

static void vm_console_quit(void *opaque)
{
	vm_request_stop(opaque, 0, "quit from the console");
}

static int vm_irq_set_level(void *opaque, uint32_t gsi, int level)
{
	struct vm *vm = opaque;
	return vm->engine ? vm->eops->irq_line(vm->engine, gsi, level) : 0;
}

static int vm_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct vm *vm = opaque;
	return vm->engine ? vm->eops->msi(vm->engine, addr, data) : 0;
}

/* The platform's legacy devices, in one explicit table order. */
static int vm_create_devices(struct vm *vm)
{
	struct vm_devices *d = &vm->dev;
	int r;

	console_init(&vm->console, STDIN_FILENO, STDOUT_FILENO);
	uart8250_init(&d->com1, &vm->irq, IRQ_COM1, console_sink(&vm->console));
	i8042_init(&d->i8042, &vm->power);
	rtc_init(&d->rtc, &vm->irq);
	debug_exit_init(&d->debug_exit, &vm->power);
	fw_cfg_init(&d->fw_cfg, vm->cfg->memory, vm->nvcpus);
	acpi_pm_init(&d->acpi_pm, &vm->power, &vm->irq);

	if ((r = uart8250_attach(&d->com1, &vm->pio, PORT_COM1)) ||
	    (r = i8042_attach(&d->i8042, &vm->pio)) || (r = rtc_attach(&d->rtc, &vm->pio)) ||
	    (r = debug_exit_attach(&d->debug_exit, &vm->pio)) ||
	    (r = fw_cfg_attach(&d->fw_cfg, &vm->pio)) ||
	    (r = acpi_pm_attach(&d->acpi_pm, &vm->pio)))
		log_error("cannot register the platform devices: %s", strerror(-r));
	if (!r)
		r = vm_pci_create(&vm->pci, vm->cfg, &vm->mem, &vm->irq, &vm->pio, &vm->mmio,
				  console_sink(&vm->console));
	return r;
}

static void vm_destroy_devices(struct vm *vm)
{
	uart8250_destroy(&vm->dev.com1);
	i8042_destroy(&vm->dev.i8042);
	rtc_destroy(&vm->dev.rtc);
	fw_cfg_destroy(&vm->dev.fw_cfg);
	acpi_pm_destroy(&vm->dev.acpi_pm);
}

static int vm_read_images(const struct vm_config *cfg, struct boot_input *in)
{
	struct errmsg err = {{0}};
	int r = boot_blob_read(&in->kernel, cfg->kernel, KERNEL_MAX_SIZE, &err);
	for (unsigned i = 0; !r && i < cfg->ninitrd; i++) {
		r = boot_blob_read(&in->initrd[i], cfg->initrd[i], INITRD_MAX_SIZE, &err);
		if (!r)
			in->ninitrd++;
	}
	if (r)
		log_error("%s", err.text);
	return r;
}

static void vm_free_images(struct boot_input *in)
{
	boot_blob_free(&in->kernel);
	for (unsigned i = 0; i < in->ninitrd; i++)
		boot_blob_free(&in->initrd[i]);
}

/* Platform tables and the kernel go into guest memory; the boot vCPU's
 * entry state comes back. */
static int vm_load_guest(struct vm *vm, struct cpu_state *entry)
{
	struct e820_map e820;
	struct acpi_config acpi = {
		.ncpus = vm->nvcpus,
		.ecam = {.enabled = true, .base = LAYOUT_ECAM_ADDR, .bus_start = 0, .bus_end = 0},
	};
	struct boot_input in;
	struct errmsg err = {{0}};
	int r;

	e820_build(&e820, &vm->mem);
	r = acpi_build(&vm->mem, &acpi, &err);
	if (r) {
		log_error("cannot build ACPI tables: %s", err.text);
		return r;
	}
	memset(&in, 0, sizeof(in));
	in.cmdline = vm->cfg->cmdline ? vm->cfg->cmdline : "";
	in.e820 = &e820;
	in.rsdp_addr = LAYOUT_RSDP_ADDR;
	r = vm_read_images(vm->cfg, &in);
	if (!r) {
		memset(entry, 0, sizeof(*entry));
		r = boot_load(&vm->mem, &in, entry, &err);
		if (r)
			log_error("%s", err.text);
		else
			log_info("loaded %s as %s", vm->cfg->kernel,
				 boot_format_name(boot_detect(in.kernel.data, in.kernel.size)));
	}
	vm_free_images(&in);
	return r;
}

static int vm_create_vcpus(struct vm *vm)
{
	struct errmsg err = {{0}};
	int r;

	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpu[i];
		v->vm = vm;
		v->index = i;
		r = vm->eops->vcpu_create(vm->engine, i, &v->ev, &err);
		if (r) {
			log_error("%s", err.text);
			return r;
		}
	}
	return 0;
}

/* Only the boot vCPU starts at the kernel entry; the others wait in their
 * reset state for INIT/SIPI from the guest. The loader decides registers
 * and modes; the engine's own APIC base (enabled, BSP) is kept. */
static int vm_enter_boot_state(struct vm *vm, const struct cpu_state *entry)
{
	struct cpu_state s;
	int r = vm->eops->get_state(vm->vcpu[0].ev, &s);
	if (!r) {
		uint64_t apic_base = s.apic_base;
		s = *entry;
		s.apic_base = apic_base;
		r = vm->eops->set_state(vm->vcpu[0].ev, &s);
	}
	if (r)
		log_error("cannot set the boot vCPU state: %s", strerror(-r));
	return r;
}

static void vm_engine_exit(void *opaque, unsigned index, struct vcpu_exit *exit)
{
	struct vm *vm = opaque;
	/* A synchronous exit (the soft engine) that stops the VM stops this
	 * vCPU at once, as KVM's return from run() does. */
	if (index < vm->nvcpus && vcpu_handle_exit(vm, &vm->vcpu[index], exit) == VCPU_STOP)
		vm->eops->kick(vm->vcpu[index].ev);
}

static int vm_create_engine(struct vm *vm)
{
	struct errmsg err = {{0}};
	struct engine_config ec = {.mem = &vm->mem, .ncpus = vm->nvcpus,
				   .soft_interpret = vm->cfg->soft_interpret,
				   .soft_jit_cache = vm->cfg->soft_jit_cache,
				   .exit_handler = vm_engine_exit, .exit_opaque = vm};

	vm->eops = engine_select(vm->cfg->engine, &err);
	if (!vm->eops) {
		log_error("%s", err.text);
		return -ENODEV;
	}
	log_info("engine %s, %u vCPU(s), %llu MiB", vm->eops->name, vm->nvcpus,
		 (unsigned long long)(vm->cfg->memory >> 20));
	int r = vm->eops->create(&vm->engine, &ec, &err);
	if (r)
		log_error("%s", err.text);
	return r;
}

static int vm_engine_ioeventfd(void *opaque, uint64_t addr, unsigned len, int fd, bool assign)
{
	struct vm *vm = opaque;
	return vm->eops->ioeventfd(vm->engine, addr, len, fd, assign);
}

/* Device I/O threads start once the engine can take their interrupts. */
static int vm_start_io(struct vm *vm)
{
	const struct virtio_notify_hook hook = {vm_engine_ioeventfd, vm};
	return vm_pci_start(&vm->pci, vm->eops->ioeventfd ? &hook : NULL);
}

static void vm_destroy_engine(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpu[i].ev)
			vm->eops->vcpu_destroy(vm->vcpu[i].ev);
		vm->vcpu[i].ev = NULL;
	}
	if (vm->engine)
		vm->eops->destroy(vm->engine);
	vm->engine = NULL;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void vm_print_stats(struct vm *vm, double seconds)
{
	struct exit_stats *sum = calloc(1, sizeof(*sum));
	if (!sum)
		return;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->eops->vcpu_stats && vm->vcpu[i].ev)
			vm->eops->vcpu_stats(vm->vcpu[i].ev, &vm->vcpu[i].stats.engine);
		stats_add(sum, &vm->vcpu[i].stats);
	}
	stats_print(stderr, sum, &vm->pio, &vm->mmio, seconds);
	vm_pci_print_stats(stderr, &vm->pci);
	free(sum);
}

/* SIGINT, SIGTERM and SIGHUP stop the VM like any other stop request (so
 * statistics still print and the terminal is restored). They are blocked
 * in every thread and read from a signalfd by the main thread. */
static int vm_block_stop_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	/* A shell starts background jobs with SIGINT ignored, and an ignored
	 * signal never reaches a signalfd: take the default disposition back. */
	const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
	for (unsigned i = 0; i < 3; i++)
		sigaddset(&set, stop_signals[i]);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	for (unsigned i = 0; i < 3; i++)
		signal(stop_signals[i], SIG_DFL);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void vm_wait_for_stop(struct vm *vm, int sigfd)
{
	pthread_mutex_lock(&vm->stop_lock);
	while (!atomic_load(&vm->stopping)) {
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += 50 * 1000 * 1000;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&vm->stop_cond, &vm->stop_lock, &deadline);
		struct signalfd_siginfo si;
		if (sigfd >= 0 && read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			char why[64];
			snprintf(why, sizeof(why), "stopped by signal %u", si.ssi_signo);
			pthread_mutex_unlock(&vm->stop_lock);
			vm_request_stop(vm, 128 + (int)si.ssi_signo, why);
			pthread_mutex_lock(&vm->stop_lock);
		}
	}
	pthread_mutex_unlock(&vm->stop_lock);
}

static size_t vm_uart_receive(void *opaque, const uint8_t *data, size_t len)
{
	return uart8250_receive(opaque, data, len);
}

static struct char_input vm_console_input(struct vm *vm)
{
	if (vm->pci.console)
		return vm_pci_console_input(&vm->pci);
	return (struct char_input){vm_uart_receive, &vm->dev.com1};
}

/* Runs the vCPU threads until a stop request, then brings them all down. */
static int vm_execute(struct vm *vm)
{
	struct timespec t0;
	int r = 0;
	int sigfd = vm_block_stop_signals();

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = console_start(&vm->console, vm_console_input(vm), vm_console_quit, vm);
	if (r)
		log_warn("console input unavailable: %s", strerror(-r));
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		r = vcpu_start(&vm->vcpu[i]);
		if (r) {
			vm_request_stop(vm, VM_STATUS_ERROR, "cannot start a vCPU thread");
			break;
		}
	}
	vm_wait_for_stop(vm, sigfd);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vm->vcpu[i].started)
			vm->eops->kick(vm->vcpu[i].ev);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_join(&vm->vcpu[i]);
	console_stop(&vm->console);
	if (sigfd >= 0)
		close(sigfd);
	if (vm->cfg->stats)
		vm_print_stats(vm, seconds_since(&t0));
	return 0;
}

static int vm_init(struct vm *vm, const struct vm_config *cfg)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->nvcpus = cfg->ncpus;
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_cond_init(&vm->stop_cond, NULL);
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	vm->irq = (struct irq_ctl){.set_level = vm_irq_set_level, .msi = vm_msi, .opaque = vm};
	vm->power = (struct power_ctl){.request = vm_power_request, .opaque = vm};
	int r = guest_mem_init(&vm->mem, cfg->memory);
	if (r)
		log_error("cannot allocate %llu MiB of guest memory: %s",
			  (unsigned long long)(cfg->memory >> 20), strerror(-r));
	return r;
}

static void vm_fini(struct vm *vm)
{
	vm_pci_destroy(&vm->pci);   /* its I/O threads use the engine */
	rtc_stop(&vm->dev.rtc);     /* so does its timer thread */
	vm_destroy_engine(vm);
	vm_destroy_devices(vm);
	guest_mem_destroy(&vm->mem);
	pthread_cond_destroy(&vm->stop_cond);
	pthread_mutex_destroy(&vm->stop_lock);
}

int vm_run(const struct vm_config *cfg)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct cpu_state entry;
	int status = VM_STATUS_ERROR;

	if (!vm) {
		log_error("out of memory");
		return VM_STATUS_ERROR;
	}
	if (vm_init(vm, cfg))
		goto out_free;
	/* The guest is loaded before the engine exists so that a bad image or
	 * option is reported the same way with or without /dev/kvm. */
	if (vm_create_devices(vm) || vm_load_guest(vm, &entry) || vm_create_engine(vm) ||
	    vm_create_vcpus(vm) || vm_enter_boot_state(vm, &entry) || vm_start_io(vm))
		goto out;
	vm_execute(vm);
	status = vm->exit_status;
out:
	vm_fini(vm);
out_free:
	free(vm);
	return status;
}
