/* Instruction group "ctrl" (being written). */
#include "engine/soft/soft.h"

const struct opdef soft_ops_ctrl[] = {
    OPDEF_END,
};
