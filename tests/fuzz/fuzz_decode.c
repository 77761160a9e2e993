/* The soft CPU's instruction decoder with arbitrary guest bytes, in 64-bit,
 * 32-bit and 16-bit modes: it must never read past the buffer, accept an
 * instruction over 15 bytes, or return a length it did not consume. */
#include <stdint.h>
#include <stdlib.h>

#include "engine/soft/soft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct soft_optable *table;
	struct insn i;

	if (!table && !(table = soft_optable_build()))
		return 0;
	static const bool modes[3][2] = {{true, true}, {false, true}, {false, false}};
	for (int m = 0; m < 3; m++) {
		int len = soft_decode_buffer(table, data, size, modes[m][0], modes[m][1], &i);
		if (len > 0 && ((size_t)len > size || len > INSN_MAX_LEN || !i.def || !i.def->exec))
			abort();
	}
	return 0;
}
