/* Instruction group "sse" (being written). */
#include "engine/soft/soft.h"

const struct opdef soft_ops_sse[] = {
    OPDEF_END,
};
