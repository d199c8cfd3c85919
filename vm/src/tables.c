/*
 * tables.c - everything generated from the two .def files that is not code:
 * the opcode info table and the status names and messages.
 */
#include "internal.h"

const lnn_opinfo lnn_opinfo_table[LNN_NUM_OPS] = {
#define OP(name, code, format, pops, pushes, meaning) \
    {code, LNN_FMT_##format, pops, pushes, LNN_OP_LINKED(name)},
#include "lnn_opcodes.def"
#undef OP
};

/* A code listed twice in the .def is a compile error here (duplicate case
 * value). A linear search: the interpreter looks an opcode up once per
 * instruction it interprets without a plan, against a kernel call each. */
const lnn_opinfo *lnn_opinfo_of(uint32_t op)
{
    switch (op) {
#define OP(name, code, format, pops, pushes, meaning) case code:
#include "lnn_opcodes.def"
#undef OP
        break;
    default:
        return NULL;
    }
    const lnn_opinfo *i = lnn_opinfo_table;
    while (i->code != op)
        i++;
    return i;
}

#if LNN_NO_NAMES
const char *lnn_op_name(uint32_t op)
{
    (void)op;
    return NULL;
}

/* The host maps the code to its name and message (lnn_status.def). */
const char *lnn_status_str(lnn_status s)
{
    (void)s;
    return "";
}

const char *lnn_status_name(lnn_status s)
{
    (void)s;
    return "";
}
#else
const char *lnn_op_name(uint32_t op)
{
    switch (op) {
#define OP(name, code, format, pops, pushes, meaning) \
    case code:                                        \
        return #name;
#include "lnn_opcodes.def"
#undef OP
    }
    return NULL;
}

const char *lnn_status_str(lnn_status s)
{
    switch (s) {
#define ST(name, code, message) \
    case LNN_##name:            \
        return message;
#include "lnn_status.def"
#undef ST
    }
    return "unknown status";
}

const char *lnn_status_name(lnn_status s)
{
    switch (s) {
#define ST(name, code, message) \
    case LNN_##name:            \
        return #name;
#include "lnn_status.def"
#undef ST
    }
    return "E_UNKNOWN";
}
#endif

const char *lnn_version(void) { return LNN_VM_VERSION; }

size_t lnn_model_size(void) { return sizeof(lnn_model); }
