/*
 * tables.c - everything generated from the two .def files that is not code:
 * the opcode info table and the status names and messages.
 */
#include "internal.h"

/* Designated initializers: a code listed twice in the .def is a compile
 * error under -Werror (gcc -Woverride-init, clang -Winitializer-overrides). */
const lnn_opinfo lnn_opinfo_table[256] = {
#define OP(name, code, format, pops, pushes, meaning) \
    [code] = {#name, LNN_FMT_##format, pops, pushes},
#include "lnn_opcodes.def"
#undef OP
};

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

const char *lnn_version(void) { return LNN_VM_VERSION; }

size_t lnn_model_size(void) { return sizeof(lnn_model); }
