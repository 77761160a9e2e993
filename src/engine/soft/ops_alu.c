/* Instruction group "alu" (being written). */
#include "engine/soft/soft.h"

const struct opdef soft_ops_alu[] = {
    OPDEF_END,
};
