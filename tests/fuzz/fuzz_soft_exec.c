/* Arbitrary guest code on the soft CPU: the input's first byte picks the
 * mode (64-bit, 32-bit or real), the rest is placed at RIP (and repeated
 * over the data page) and up to 256 instructions are single-stepped.
 * Whatever the guest does — faults, mode switches, port or MMIO accesses,
 * descriptor-table loads from garbage — the VMM must not crash, hang or
 * touch memory outside the guest. */
#include <stdint.h>
#include <string.h>

#include "soft_harness.h"

#define MAX_STEPS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct harness *h[3];
	static struct cpu_state initial[3];
	static const int modes[3] = {64, 32, 16};

	if (size < 2)
		return 0;
	unsigned m = data[0] % 3;
	if (!h[m]) {
		h[m] = harness_new(modes[m]);
		if (!h[m])
			return 0;
		initial[m] = h[m]->state;
		soft_engine_ops.set_single_step(h[m]->vcpu, true);
	}
	struct harness *x = h[m];
	data++;
	size--;
	if (size > 4096)
		size = 4096;
	x->state = initial[m];
	uint8_t page[4096];
	for (size_t k = 0; k < sizeof(page); k++)
		page[k] = data[k % size];
	guest_mem_write(&x->mem, x->state.rip, data, size);
	guest_mem_write(&x->mem, HARNESS_DATA_ADDR, page, sizeof(page));
	harness_sync(x);
	for (unsigned n = 0; n < MAX_STEPS; n++) {
		struct vcpu_exit e;
		if (soft_engine_ops.run(x->vcpu, &e) < 0 || e.kind != VCPU_EXIT_DEBUG)
			break;
	}
	return 0;
}
