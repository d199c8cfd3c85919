/*
 * lnn_disasm.h - text descriptions of tensors and instructions, for the
 * runner and debugging tools. Formats into caller buffers (no allocation,
 * no stdio); output is always NUL-terminated and cut to cap. Each function
 * returns the length it wanted to write (like snprintf).
 *
 * Needs a model whose tensor table was verified: m->stage >=
 * LNN_STAGE_TENSORS, i.e. lnn_init succeeded or failed only in the code or
 * the arena. Instructions are described even when invalid.
 */
#ifndef LNN_DISASM_H
#define LNN_DISASM_H

#include <stddef.h>
#include <stdint.h>

#include "lnnvm.h"

/* "[B,3] f32" */
size_t lnn_describe_shape(const lnn_model *m, uint32_t t, char *out, size_t cap);

/* "input0 [B,3] f32", "const+64 step 4 [] f32", "arena.row+0 [B,4] f32",
 * "state.row+0 [B,8] f32" */
size_t lnn_describe_tensor(const lnn_model *m, uint32_t t, char *out, size_t cap);

/* One listing line for instruction pc (no newline). *depth is the loop
 * nesting, updated by LOOP / END; start it at 0. */
size_t lnn_disasm_insn(const lnn_model *m, uint32_t pc, uint32_t *depth,
                       char *out, size_t cap);

#endif
