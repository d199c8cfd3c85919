/*
 * kernels.h - the compute kernels behind a function-pointer table.
 *
 * The interpreter never calls a kernel by name: it calls through the
 * lnn_kernels table chosen once at lnn_init (lnn_kernels_select). One table
 * per instruction set; kernel functions are named lnn_<kernel>__<isa>
 * (lnn_linear__scalar, lnn_add__neon, ...). A new ISA adds a file
 * kernels_<isa>.c defining lnn_kernels_<isa>, guarded by its LNN_HAVE_*
 * macro from simd.h (the SIMD sets define a small vector interface and
 * include kernels_simd.h, which writes the kernels once), and lines in
 * kernels.c; the interpreter is untouched. A SIMD table may point any entry
 * at the scalar kernel it does not improve (COPY, ZERO, CONCAT do).
 *
 * Every kernel receives one params struct per family. The interpreter has
 * already done the planning (shapes, broadcast mode, batch); kernels only
 * loop. All pointers are at least 4-byte aligned. Counts are >= 1.
 */
#ifndef LNN_KERNELS_H
#define LNN_KERNELS_H

#include <stddef.h>

#include "simd.h"

/* y[r][j] = sum_{i<k} x[r][i] * w[j][i] (+ bias[j]), accumulated in float
 * in i order, bias added last. y never overlaps x, w or bias. */
typedef struct {
    float *y;
    const float *x;    /* rows x k */
    const float *w;    /* m x k */
    const float *bias; /* m, or NULL (MATMUL_NT) */
    size_t rows, k, m;
} lnn_linear_params;

/* Broadcast plans for the binary element-wise ops, fastest first. */
typedef enum {
    LNN_BC_SAME,     /* y[i] = a[i] op b[i], i < n                         */
    LNN_BC_SCALAR_A, /* y[i] = a[0] op b[i]                                */
    LNN_BC_SCALAR_B, /* y[i] = a[i] op b[0]                                */
    LNN_BC_ROW_A,    /* y[o*inner+i] = a[i] op b[o*inner+i]  (a is a row)  */
    LNN_BC_ROW_B,    /* y[o*inner+i] = a[o*inner+i] op b[i]  (b is a row)  */
    LNN_BC_GENERAL   /* rank-4 strided: see dims / sa / sb                 */
} lnn_bcast_mode;

/* y may be exactly a or exactly b (same range, same shape as y). */
typedef struct {
    float *y;
    const float *a, *b;
    size_t n;     /* output elements */
    size_t inner; /* ROW_A / ROW_B: row length, divides n */
    /* GENERAL: output dims left-padded with 1 to rank 4, and the element
     * strides of a and b along each output dim (0 where broadcast). */
    size_t dims[4];
    size_t sa[4], sb[4];
    lnn_bcast_mode mode;
} lnn_binary_params;

/* y[i] = f(x[i]), i < n; y may be exactly x. Also COPY (y = x, may be the
 * same range) and ZERO (x unused). */
typedef struct {
    float *y;
    const float *x;
    size_t n;
} lnn_unary_params;

/* For o < outer: y[o] = a[o] (na floats) followed by b[o] (nb floats).
 * y overlaps neither a nor b. */
typedef struct {
    float *y;
    const float *a, *b;
    size_t outer, na, nb;
} lnn_concat_params;

typedef void (*lnn_linear_fn)(const lnn_linear_params *p);
typedef void (*lnn_binary_fn)(const lnn_binary_params *p);
typedef void (*lnn_unary_fn)(const lnn_unary_params *p);
typedef void (*lnn_concat_fn)(const lnn_concat_params *p);

/* One table per ISA. Declare kernel prototypes with LNN_KERNEL_PROTOS(isa). */
typedef struct lnn_kernels {
    const char *isa; /* "scalar", "neon", "sse3", "avx2" */
    lnn_linear_fn linear; /* LINEAR and MATMUL_NT (bias NULL) */
    lnn_binary_fn add, sub, mul, div;
    lnn_unary_fn neg, exp, sigmoid, tanh, relu;
    lnn_unary_fn copy, zero;
    lnn_concat_fn concat;
} lnn_kernels;

#define LNN_KERNEL_PROTOS(isa)                                   \
    void lnn_linear__##isa(const lnn_linear_params *p);          \
    void lnn_add__##isa(const lnn_binary_params *p);             \
    void lnn_sub__##isa(const lnn_binary_params *p);             \
    void lnn_mul__##isa(const lnn_binary_params *p);             \
    void lnn_div__##isa(const lnn_binary_params *p);             \
    void lnn_neg__##isa(const lnn_unary_params *p);              \
    void lnn_exp__##isa(const lnn_unary_params *p);              \
    void lnn_sigmoid__##isa(const lnn_unary_params *p);          \
    void lnn_tanh__##isa(const lnn_unary_params *p);             \
    void lnn_relu__##isa(const lnn_unary_params *p);             \
    void lnn_copy__##isa(const lnn_unary_params *p);             \
    void lnn_zero__##isa(const lnn_unary_params *p);             \
    void lnn_concat__##isa(const lnn_concat_params *p);          \
    extern const lnn_kernels lnn_kernels_##isa

LNN_KERNEL_PROTOS(scalar);
#if LNN_HAVE_NEON
LNN_KERNEL_PROTOS(neon);
#endif
#if LNN_HAVE_SSE3
LNN_KERNEL_PROTOS(sse3);
#endif
#if LNN_HAVE_AVX2
LNN_KERNEL_PROTOS(avx2);
#endif

/* The kernel set for lnn_init (kernels.c): the best compiled-in set the
 * processor supports, or NULL in a strict build (LNN_ISA_STRICT) whose best
 * set the processor does not support. */
const lnn_kernels *lnn_kernels_select(void);

/* 1 if the processor can run set k (x86: cpuid; elsewhere always). */
int lnn_kernels_supported(const lnn_kernels *k);

/* The compiled-in set named isa, or NULL. */
const lnn_kernels *lnn_kernels_find(const char *isa);

/* NULL-terminated list of every kernel set compiled in, best first. */
extern const lnn_kernels *const lnn_kernel_sets[];

#endif
