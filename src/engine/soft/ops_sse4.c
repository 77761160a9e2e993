/* SSE4.1 and SSE4.2 (SDM vol. 1 §12.10-12.12, vol. 2 instruction pages),
 * including PCMPESTRx/PCMPISTRx and CRC32. */
#include "engine/soft/sse.h"

const struct opdef soft_ops_sse4[] = {
    OPDEF_END,
};
