/* Instruction group "string" (being written). */
#include "engine/soft/soft.h"

const struct opdef soft_ops_string[] = {
    OPDEF_END,
};
