/* MMX (SDM vol. 1 ch. 9, vol. 2 instruction pages): the 64-bit packed-integer
 * instructions on MM0-MM7, EMMS, and the SSE/SSE2 forms that take MMX
 * operands. The register file is the x87 one (fpu.h, mmx_*). */
#include "engine/soft/sse.h"

const struct opdef soft_ops_mmx[] = {
    OPDEF_END,
};
