/* The floor for a port-I/O exit: the smallest possible KVM loop (one vCPU,
 * flat 32-bit code doing N `out 0x80, al` then `out 0xf4, al`, no devices,
 * no dispatch). bench/io-exit.sh compares shrike's cost per exit with it.
 * A benchmark tool, not part of shrike: it talks to /dev/kvm directly. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

static int die(const char *what)
{
	perror(what);
	return 1;
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 0) : 100000;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return die("KVM_CREATE_VM");
	size_t size = 1 << 20;
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kvm_userspace_memory_region region = {
	    .slot = 0, .guest_phys_addr = 0, .memory_size = size, .userspace_addr = (uintptr_t)mem};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return die("KVM_SET_USER_MEMORY_REGION");
	/* mov ecx, n; 1: out 0x80, al; dec ecx; jnz 1b; out 0xf4, al; hlt */
	uint8_t code[] = {0xb9, 0, 0, 0, 0, 0xe6, 0x80, 0xff, 0xc9, 0x75, 0xfa, 0xe6, 0xf4, 0xf4};
	memcpy(code + 1, &n, 4);
	memcpy(mem + 0x1000, code, sizeof(code));

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_sregs sregs;
	ioctl(vcpu, KVM_GET_SREGS, &sregs);
	struct kvm_segment cs = {.limit = 0xffffffff, .selector = 8, .type = 11, .present = 1,
				 .db = 1, .s = 1, .g = 1};
	struct kvm_segment ds = cs;
	ds.selector = 16;
	ds.type = 3;
	sregs.cs = cs;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = ds;
	sregs.cr0 |= 1;
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return die("KVM_SET_*REGS");

	struct timespec t0, t1;
	uint64_t exits = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			return die("KVM_RUN");
		if (run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
			return 1;
		}
		if (run->io.port == 0xf4)
			break;
		exits++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
	printf("%llu exits in %.0f us: %.3f us per exit\n", (unsigned long long)exits, us,
	       exits ? us / (double)exits : 0);
	return 0;
}
