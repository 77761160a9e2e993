/* Fuzzes the multiboot parser and load path (header search, a.out kludge,
 * ELF segments, modules, boot information) into a small guest. The input
 * is the kernel image; its last bytes double as a module so placement sees
 * varying sizes. */
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/e820.h"
#include "boot/boot.h"
#include "boot/multiboot.h"

/* Guest memory is mapped once: mapping 16 MiB per input would dominate. */
static struct guest_mem fuzz_mem;
static struct e820_map fuzz_map;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct multiboot_image img;
	struct errmsg err;
	struct cpu_state s;

	if (!fuzz_mem.base) {
		if (guest_mem_init(&fuzz_mem, GUEST_MEM_MIN_SIZE))
			return 0;
		e820_build(&fuzz_map, &fuzz_mem);
	}
	multiboot_parse(data, size, &img, &err);

	size_t rd = size < 4096 ? size : 4096;
	struct boot_input in = {
	    .kernel = {.name = "fuzz", .data = (uint8_t *)data, .size = size},
	    .initrd = {{.name = "initrd", .data = (uint8_t *)data + size - rd, .size = rd}},
	    .ninitrd = rd ? 1 : 0,
	    .cmdline = "console=ttyS0",
	    .e820 = &fuzz_map,
	    .rsdp_addr = 0xe0000,
	};
	multiboot_load(&fuzz_mem, &in, &s, &err);
	boot_load(&fuzz_mem, &in, &s, &err);
	return 0;
}
