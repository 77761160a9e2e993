/* SSE3 and SSSE3 (SDM vol. 1 §12.1-12.4, vol. 2 instruction pages),
 * in their XMM forms and, for SSSE3, their MMX forms. */
#include "engine/soft/sse.h"

const struct opdef soft_ops_ssse3[] = {
    OPDEF_END,
};
