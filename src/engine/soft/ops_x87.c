/* Instruction group "x87" (being written). */
#include "engine/soft/soft.h"

const struct opdef soft_ops_x87[] = {
    OPDEF_END,
};
