/*
 * graph.h - the graph ops (CONV2D .. MATMUL, lnn_opcodes.def 0x70-0x7F):
 * shape rules for the verifier and execution for the interpreter (graph.c).
 * Internal, like internal.h.
 */
#ifndef LNN_GRAPH_H
#define LNN_GRAPH_H

#include "internal.h"

/* 1 if op is one of the graph ops */
static inline int lnn_is_graph_op(uint32_t op)
{
    return op >= LNN_OP_CONV2D && op <= LNN_OP_MATMUL;
}

/* The shape rule of graph op `op` with field A = a: destination d and the
 * operands in push order (x1, x2 NULL beyond the op's count). LNN_OK, or
 * LNN_E_SHAPE / LNN_E_OPERAND (a bad parameter). */
lnn_status lnn_graph_check(uint32_t op, uint32_t a, const lnn_tensor *d, const lnn_tensor *x0,
                           const lnn_tensor *x1, const lnn_tensor *x2);

/* Multiply-adds (or window reads) of one execution of verified graph op
 * `op` for one batch row (a batched dim 0 counts 1), beyond the elements
 * of its operands and destination; <= 2^52. */
uint64_t lnn_graph_macs(uint32_t op, uint32_t a, const lnn_tensor *d, const lnn_tensor *x0,
                        const lnn_tensor *x1);

/* Runs verified graph op `op` (field A = a) writing tensor dst at y from the
 * operand tensors src at x, for `batch` rows. */
void lnn_graph_exec(const lnn_model *m, uint32_t op, uint32_t a, uint32_t dst, const uint16_t *src,
                    size_t batch, float *y, const float *const *x);

#endif
