/* The pure exit handler, fed made-up exits (no engine runs). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "vm/vcpu.h"

static uint8_t last_write;
static int writes;

static void dev_write(void *opaque, uint64_t off, const uint8_t *data, unsigned size)
{
	(void)opaque;
	(void)off;
	(void)size;
	last_write = data[0];
	writes++;
}

static void dev_read(void *opaque, uint64_t off, uint8_t *data, unsigned size)
{
	(void)opaque;
	for (unsigned i = 0; i < size; i++)
		data[i] = (uint8_t)(0x10 + off + i);
}

static const struct bus_ops dev_ops = {.read = dev_read, .write = dev_write};

static int fake_get_state(struct engine_vcpu *v, struct cpu_state *s)
{
	(void)v;
	memset(s, 0, sizeof(*s));
	s->rip = 0x1234;
	return 0;
}

static const struct engine_ops fake_engine = {.name = "fake", .get_state = fake_get_state};

static struct vm *make_vm(void)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_cond_init(&vm->stop_cond, NULL);
	vm->eops = &fake_engine;
	vm->nvcpus = 1;
	vm->vcpu[0].vm = vm;
	bus_register(&vm->pio, 0x80, 4, "dev", &dev_ops, NULL);
	bus_register(&vm->mmio, 0xd0000000, 0x1000, "mdev", &dev_ops, NULL);
	return vm;
}

static void test_io_dispatch(void **state)
{
	(void)state;
	struct vm *vm = make_vm();
	uint8_t buf[8] = {0x5a, 0x5b};
	struct vcpu_exit x = {.kind = VCPU_EXIT_IO};
	x.io.port = 0x80;
	x.io.size = 1;
	x.io.is_write = true;
	x.io.count = 2; /* REP OUTSB of two bytes */
	x.io.data = buf;
	writes = 0;
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_CONTINUE);
	assert_int_equal(writes, 2);
	assert_int_equal(last_write, 0x5b);
	x.io.is_write = false;
	x.io.count = 1;
	x.io.size = 2;
	x.io.port = 0x81;
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_CONTINUE);
	assert_int_equal(buf[0], 0x11);
	assert_int_equal(buf[1], 0x12);
	x.io.port = 0x2e0; /* unclaimed: all-ones, counted */
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_CONTINUE);
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(vm->vcpu[0].stats.pio.unclaimed_total, 1);
	assert_int_equal(vm->vcpu[0].stats.pio.unclaimed[0].addr, 0x2e0);
	assert_int_equal(vm->vcpu[0].stats.pio.range[0], 3);
	assert_int_equal(vm->vcpu[0].stats.kind[VCPU_EXIT_IO], 3);
	free(vm);
}

static void test_io_bad_sizes_ignored(void **state)
{
	(void)state;
	struct vm *vm = make_vm();
	uint8_t buf[8] = {0};
	struct vcpu_exit x = {.kind = VCPU_EXIT_IO};
	x.io.port = 0x80;
	x.io.size = 3;
	x.io.count = 1;
	x.io.is_write = true;
	x.io.data = buf;
	writes = 0;
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_CONTINUE);
	x.io.size = 4;
	x.io.count = 100000; /* more than an engine could hand over */
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_CONTINUE);
	assert_int_equal(writes, 0);
	free(vm);
}

static void test_mmio_dispatch(void **state)
{
	(void)state;
	struct vm *vm = make_vm();
	uint8_t buf[8] = {0};
	struct vcpu_exit x = {.kind = VCPU_EXIT_MMIO};
	x.mmio.addr = 0xd0000004;
	x.mmio.size = 4;
	x.mmio.data = buf;
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_CONTINUE);
	assert_int_equal(buf[0], 0x14);
	x.mmio.addr = 0xd0001000;
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_CONTINUE);
	assert_int_equal(buf[3], 0xff);
	assert_int_equal(vm->vcpu[0].stats.mmio.unclaimed_total, 1);
	free(vm);
}

static void test_shutdown_is_a_crash(void **state)
{
	(void)state;
	struct vm *vm = make_vm();
	struct vcpu_exit x = {.kind = VCPU_EXIT_SHUTDOWN};
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_STOP);
	assert_true(atomic_load(&vm->stopping));
	assert_int_equal(vm->exit_status, VM_STATUS_CRASH);
	/* The first stop request wins. */
	vm_request_stop(vm, 0, "later");
	assert_int_equal(vm->exit_status, VM_STATUS_CRASH);
	free(vm);
}

static void test_poweroff_uses_latched_status(void **state)
{
	(void)state;
	struct vm *vm = make_vm();
	vm->latched_status = 7;
	struct vcpu_exit x = {.kind = VCPU_EXIT_POWEROFF};
	assert_int_equal(vcpu_handle_exit(vm, &vm->vcpu[0], &x), VCPU_STOP);
	assert_int_equal(vm->exit_status, 7);
	free(vm);
}

static void test_cpuid_topology(void **state)
{
	(void)state;
	struct cpuid_table t = {0};
	t.entry[t.count++] = (struct cpuid_entry){.function = 1, .ecx = 1u << 3, .ebx = 0x00000800};
	t.entry[t.count++] = (struct cpuid_entry){.function = 0xb, .index = 0, .indexed = true};
	t.entry[t.count++] = (struct cpuid_entry){.function = 0xb, .index = 1, .indexed = true};
	t.entry[t.count++] = (struct cpuid_entry){.function = 0x40000000};
	cpuid_complete(&t, 2, 4);
	struct cpuid_entry *l1 = cpuid_find(&t, 1, 0);
	assert_int_equal(l1->ebx >> 24, 2);          /* initial APIC ID */
	assert_int_equal((l1->ebx >> 16) & 0xff, 4); /* logical processors */
	assert_int_equal(l1->ebx & 0xffff, 0x0800);  /* CLFLUSH size kept */
	assert_true(l1->ecx & (1u << 31));           /* hypervisor */
	assert_false(l1->ecx & (1u << 3));           /* no MONITOR */
	assert_true(l1->edx & (1u << 28));           /* HTT */
	struct cpuid_entry *core = cpuid_find(&t, 0xb, 1);
	assert_int_equal(core->ebx, 4);
	assert_int_equal(core->edx, 2);
	assert_int_equal(core->eax, 2);
	struct cpuid_entry *kvm = cpuid_find(&t, 0x40000000, 0);
	assert_memory_equal(&kvm->ebx, "KVMK", 4);
	assert_null(cpuid_find(&t, 0xb, 7));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_host_hw_virt_detection(void **state)
{
	(void)state;
	char path[] = "/tmp/shrike-cpuinfo-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	write_file(path, "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx ept\n");
	assert_true(engine_host_has_hw_virt(path));
	write_file(path, "processor\t: 0\nflags\t\t: fpu svm npt\n");
	assert_true(engine_host_has_hw_virt(path));
	write_file(path, "processor\t: 0\nflags\t\t: fpu sse2 hypervisor lm\n");
	assert_false(engine_host_has_hw_virt(path));
	unlink(path);
	assert_false(engine_host_has_hw_virt("/nonexistent/cpuinfo"));
}

static void test_engine_names(void **state)
{
	(void)state;
	struct errmsg err = {{0}};
	assert_ptr_equal(engine_select("soft", &err), &soft_engine_ops);
	assert_null(engine_select("xen", &err));
	assert_non_null(strstr(err.text, "unknown engine"));
	assert_non_null(engine_select("auto", &err));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_io_dispatch),         cmocka_unit_test(test_io_bad_sizes_ignored),
	    cmocka_unit_test(test_mmio_dispatch),       cmocka_unit_test(test_shutdown_is_a_crash),
	    cmocka_unit_test(test_poweroff_uses_latched_status), cmocka_unit_test(test_cpuid_topology),
	    cmocka_unit_test(test_host_hw_virt_detection), cmocka_unit_test(test_engine_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
