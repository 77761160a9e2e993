/* Shared set-up of the boot-image fuzz targets: one small guest (mapped
 * once: mapping 16 MiB per input would dominate) and a boot_input whose
 * kernel is the fuzz input and whose last bytes double as an initrd, so
 * placement sees varying sizes. Each target then calls its format's loader
 * and boot_load(). */
#ifndef SHRIKE_TESTS_FUZZ_BOOT_H
#define SHRIKE_TESTS_FUZZ_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/e820.h"
#include "boot/boot.h"

static struct guest_mem fuzz_mem;
static struct e820_map fuzz_map;

/* Returns false when the guest cannot be mapped (then skip the input). */
static inline bool fuzz_boot_input(const uint8_t *data, size_t size, struct boot_input *in)
{
	if (!fuzz_mem.base) {
		if (guest_mem_init(&fuzz_mem, GUEST_MEM_MIN_SIZE))
			return false;
		e820_build(&fuzz_map, &fuzz_mem);
	}
	size_t rd = size < 4096 ? size : 4096;
	*in = (struct boot_input){
	    .kernel = {.name = "fuzz", .data = (uint8_t *)data, .size = size},
	    .initrd = {{.name = "initrd", .data = (uint8_t *)data + size - rd, .size = rd}},
	    .ninitrd = rd ? 1 : 0,
	    .cmdline = "console=ttyS0",
	    .e820 = &fuzz_map,
	    .rsdp_addr = 0xe0000,
	};
	return true;
}

#endif
