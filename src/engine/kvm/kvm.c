/* The KVM engine: hardware-assisted execution through /dev/kvm.
 * VM-level setup (memory slots, in-kernel irqchip and PIT), vCPU creation,
 * and the translation of struct kvm_run exits into struct vcpu_exit. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/kvm/kvm_internal.h"
#include "util/log.h"

#define KVM_DEVICE "/dev/kvm"
#define KVM_KICK_SIGNAL SIGUSR1
/* Addresses KVM needs for its own use on Intel hosts; they sit in the top
 * of the 32-bit MMIO hole, below the BIOS area, where nothing else lives. */
#define KVM_TSS_ADDR 0xfffbd000UL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

static bool kvm_available(struct errmsg *why)
{
	int fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		errmsg_set(why, errno, "cannot open %s: %s", KVM_DEVICE, strerror(errno));
		return false;
	}
	int version = ioctl(fd, KVM_GET_API_VERSION, 0);
	close(fd);
	if (version != KVM_API_VERSION) {
		errmsg_set(why, ENOTSUP, "%s speaks KVM API %d, shrike needs %d", KVM_DEVICE,
			   version, KVM_API_VERSION);
		return false;
	}
	return true;
}

static void kvm_kick_handler(int sig) { (void)sig; }

static int kvm_install_kick_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kvm_kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigemptyset(&sa.sa_mask);
	return sigaction(KVM_KICK_SIGNAL, &sa, NULL) ? -errno : 0;
}

static int kvm_check_caps(struct engine *e, struct errmsg *err)
{
	static const struct {
		int cap;
		const char *name;
	} needed[] = {
	    {KVM_CAP_IRQCHIP, "in-kernel irqchip"},
	    {KVM_CAP_PIT2, "in-kernel PIT"},
	    {KVM_CAP_USER_MEMORY, "user memory"},
	    {KVM_CAP_EXT_CPUID, "CPUID2"},
	    {KVM_CAP_SIGNAL_MSI, "MSI injection"},
	    {KVM_CAP_IMMEDIATE_EXIT, "immediate exit"},
	};
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		if (ioctl(e->sys_fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0)
			return errmsg_set(err, ENOTSUP, "KVM lacks %s", needed[i].name);
	}
	return 0;
}

static int kvm_map_memory(struct engine *e, struct errmsg *err)
{
	for (unsigned i = 0; i < e->mem->nregions; i++) {
		const struct guest_region *r = &e->mem->region[i];
		struct kvm_userspace_memory_region slot = {
		    .slot = i,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->size,
		    .userspace_addr = (uint64_t)(uintptr_t)r->host,
		};
		if (ioctl(e->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return errmsg_set(err, errno, "KVM_SET_USER_MEMORY_REGION: %s",
					  strerror(errno));
	}
	return 0;
}

static int kvm_create_platform(struct engine *e, struct errmsg *err)
{
	uint64_t identity = KVM_IDENTITY_MAP_ADDR;
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(e->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		return errmsg_set(err, errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	/* Only meaningful on Intel; other backends may refuse it harmlessly. */
	if (ioctl(e->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		log_debug("KVM_SET_IDENTITY_MAP_ADDR: %s (ignored)", strerror(errno));
	if (ioctl(e->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return errmsg_set(err, errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(e->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return errmsg_set(err, errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}

static void kvm_destroy(struct engine *e)
{
	if (!e)
		return;
	if (e->vm_fd >= 0)
		close(e->vm_fd);
	if (e->sys_fd >= 0)
		close(e->sys_fd);
	free(e);
}

static int kvm_create(struct engine **out, const struct engine_config *cfg, struct errmsg *err)
{
	struct engine *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return errmsg_set(err, ENOMEM, "out of memory");
	e->vm_fd = -1;
	e->mem = cfg->mem;
	e->ncpus = cfg->ncpus;
	e->sys_fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
	if (e->sys_fd < 0) {
		r = errmsg_set(err, errno, "cannot open %s: %s", KVM_DEVICE, strerror(errno));
		goto fail;
	}
	r = kvm_check_caps(e, err);
	if (r)
		goto fail;
	int max_vcpus = ioctl(e->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus > 0 && cfg->ncpus > (unsigned)max_vcpus) {
		r = errmsg_set(err, EINVAL, "KVM supports at most %d vCPUs", max_vcpus);
		goto fail;
	}
	e->run_size = ioctl(e->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (e->run_size < (int)sizeof(struct kvm_run)) {
		r = errmsg_set(err, EIO, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto fail;
	}
	e->vm_fd = ioctl(e->sys_fd, KVM_CREATE_VM, 0);
	if (e->vm_fd < 0) {
		r = errmsg_set(err, errno, "KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	r = kvm_create_platform(e, err);
	if (r)
		goto fail;
	r = kvm_map_memory(e, err);
	if (r)
		goto fail;
	r = kvm_install_kick_handler();
	if (r) {
		errmsg_set(err, -r, "cannot install the vCPU kick signal handler");
		goto fail;
	}
	*out = e;
	return 0;
fail:
	kvm_destroy(e);
	return r;
}

static void kvm_vcpu_destroy(struct engine_vcpu *v)
{
	if (!v)
		return;
	if (v->run && v->run != MAP_FAILED)
		munmap(v->run, (size_t)v->engine->run_size);
	if (v->fd >= 0)
		close(v->fd);
	free(v);
}

static int kvm_vcpu_create(struct engine *e, unsigned index, struct engine_vcpu **out,
			   struct errmsg *err)
{
	struct engine_vcpu *v = calloc(1, sizeof(*v));
	int r;

	if (!v)
		return errmsg_set(err, ENOMEM, "out of memory");
	v->engine = e;
	v->index = index;
	v->fd = ioctl(e->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		r = errmsg_set(err, errno, "KVM_CREATE_VCPU %u: %s", index, strerror(errno));
		goto fail;
	}
	v->run = mmap(NULL, (size_t)e->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		r = errmsg_set(err, errno, "mmap of vCPU %u: %s", index, strerror(errno));
		goto fail;
	}
	r = kvm_setup_cpuid(v, err);
	if (r)
		goto fail;
	r = kvm_setup_lapic(v);
	if (r) {
		errmsg_set(err, -r, "cannot set up the local APIC of vCPU %u", index);
		goto fail;
	}
	*out = v;
	return 0;
fail:
	kvm_vcpu_destroy(v);
	return r;
}

static int kvm_get_state(struct engine_vcpu *v, struct cpu_state *s)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	kvm_state_from_kvm(s, &regs, &sregs);
	return 0;
}

static int kvm_set_state(struct engine_vcpu *v, const struct cpu_state *s)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	/* Start from KVM's sregs so fields cpu_state does not model
	 * (the interrupt bitmap) keep their values. */
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	kvm_state_to_kvm(s, &regs, &sregs);
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

static void kvm_translate_io(struct kvm_run *run, struct vcpu_exit *x)
{
	x->kind = VCPU_EXIT_IO;
	x->io.port = run->io.port;
	x->io.size = run->io.size;
	x->io.is_write = run->io.direction == KVM_EXIT_IO_OUT;
	x->io.count = run->io.count;
	x->io.data = (uint8_t *)run + run->io.data_offset;
}

static void kvm_translate_exit(struct engine_vcpu *v, struct vcpu_exit *x)
{
	struct kvm_run *run = v->run;

	memset(x, 0, sizeof(*x));
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		kvm_translate_io(run, x);
		break;
	case KVM_EXIT_MMIO:
		x->kind = VCPU_EXIT_MMIO;
		x->mmio.addr = run->mmio.phys_addr;
		x->mmio.size = (uint8_t)run->mmio.len;
		x->mmio.is_write = run->mmio.is_write;
		x->mmio.data = run->mmio.data;
		break;
	case KVM_EXIT_HLT:
		x->kind = VCPU_EXIT_HLT;
		break;
	case KVM_EXIT_SHUTDOWN:
		x->kind = VCPU_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		x->kind = run->system_event.type == KVM_SYSTEM_EVENT_RESET ? VCPU_EXIT_RESET
									     : VCPU_EXIT_POWEROFF;
		x->detail.code = run->system_event.type;
		break;
	case KVM_EXIT_INTR:
		x->kind = VCPU_EXIT_INTR;
		break;
	case KVM_EXIT_DEBUG:
		x->kind = VCPU_EXIT_DEBUG;
		break;
	case KVM_EXIT_HYPERCALL:
		x->kind = VCPU_EXIT_HYPERCALL;
		x->detail.code = run->hypercall.nr;
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		x->kind = VCPU_EXIT_INTERNAL_ERROR;
		x->detail.code = run->internal.suberror;
		break;
	case KVM_EXIT_FAIL_ENTRY:
		x->kind = VCPU_EXIT_FAIL_ENTRY;
		x->detail.code = run->fail_entry.hardware_entry_failure_reason;
		break;
	default:
		x->kind = VCPU_EXIT_UNKNOWN;
		x->detail.code = run->exit_reason;
		break;
	}
}

static int kvm_run(struct engine_vcpu *v, struct vcpu_exit *x)
{
	if (!atomic_load(&v->has_thread)) {
		v->thread = pthread_self();
		atomic_store(&v->has_thread, true);
	}
	if (ioctl(v->fd, KVM_RUN, 0) < 0) {
		int e = errno;
		if (e == EINTR || e == EAGAIN) {
			v->run->immediate_exit = 0;
			memset(x, 0, sizeof(*x));
			x->kind = VCPU_EXIT_INTR;
			return 0;
		}
		return -e;
	}
	kvm_translate_exit(v, x);
	return 0;
}

static void kvm_kick(struct engine_vcpu *v)
{
	/* immediate_exit covers the window before the thread enters KVM_RUN;
	 * the signal covers a thread already inside it. */
	v->run->immediate_exit = 1;
	if (atomic_load(&v->has_thread))
		pthread_kill(v->thread, KVM_KICK_SIGNAL);
}

static int kvm_set_single_step(struct engine_vcpu *v, bool enable)
{
	struct kvm_guest_debug dbg;
	memset(&dbg, 0, sizeof(dbg));
	if (enable)
		dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
	return ioctl(v->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0 ? -errno : 0;
}

static int kvm_irq_line(struct engine *e, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)(level != 0)};
	return ioctl(e->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

static int kvm_msi(struct engine *e, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
	    .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};
	return ioctl(e->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

/* A guest write of `len` bytes at MMIO `addr` signals `fd` in the kernel,
 * without an exit to user space (virtio queue notifications). */
static int kvm_ioeventfd(struct engine *e, uint64_t addr, unsigned len, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
	    .addr = addr, .len = len, .fd = fd, .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN};
	return ioctl(e->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

const struct engine_ops kvm_engine_ops = {
    .name = "kvm",
    .available = kvm_available,
    .create = kvm_create,
    .destroy = kvm_destroy,
    .vcpu_create = kvm_vcpu_create,
    .vcpu_destroy = kvm_vcpu_destroy,
    .get_state = kvm_get_state,
    .set_state = kvm_set_state,
    .run = kvm_run,
    .kick = kvm_kick,
    .set_single_step = kvm_set_single_step,
    .irq_line = kvm_irq_line,
    .msi = kvm_msi,
    .ioeventfd = kvm_ioeventfd,
};
