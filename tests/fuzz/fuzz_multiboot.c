/* Fuzzes the multiboot parser and load path (header search, a.out kludge,
 * ELF segments, modules, boot information) into a small guest. See fuzz_boot.h. */
#include "boot/multiboot.h"
#include "fuzz_boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct multiboot_image img;
	struct boot_input in;
	struct errmsg err;
	struct cpu_state s;

	multiboot_parse(data, size, &img, &err);
	if (!fuzz_boot_input(data, size, &in))
		return 0;
	multiboot_load(&fuzz_mem, &in, &s, &err);
	boot_load(&fuzz_mem, &in, &s, &err);
	return 0;
}
