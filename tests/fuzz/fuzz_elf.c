/* Fuzzes the ELF parser and the PVH load path (segments, notes, start_info,
 * module placement) into a small guest. See fuzz_boot.h. */
#include "boot/elf.h"
#include "fuzz_boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_info info;
	struct boot_input in;
	struct errmsg err;
	struct cpu_state s;

	elf_parse(data, size, &info, &err);
	if (!fuzz_boot_input(data, size, &in))
		return 0;
	elf_pvh_load(&fuzz_mem, &in, &s, &err);
	boot_load(&fuzz_mem, &in, &s, &err);
	return 0;
}
