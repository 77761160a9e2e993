/* Fuzzes the bzImage parser and the whole load path (detection, zero page,
 * initrd placement) into a small guest. See fuzz_boot.h. */
#include "boot/bzimage.h"
#include "fuzz_boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bzimage_info info;
	struct boot_input in;
	struct errmsg err;
	struct cpu_state s;

	bzimage_parse(data, size, &info, &err);
	if (!fuzz_boot_input(data, size, &in))
		return 0;
	bzimage_load(&fuzz_mem, &in, &s, &err);
	boot_load(&fuzz_mem, &in, &s, &err);
	return 0;
}
