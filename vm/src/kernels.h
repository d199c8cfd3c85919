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
 * at the scalar kernel it does not improve (COPY, ZERO, CONCAT, SPLIT do).
 *
 * Every kernel receives one params struct per family. The interpreter has
 * already done the planning (shapes, broadcast mode, batch); kernels only
 * loop. All pointers are at least 4-byte aligned. Counts are >= 1.
 */
#ifndef LNN_KERNELS_H
#define LNN_KERNELS_H

#include <math.h> /* fmaf (lnn_fmaf) */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lnn_format.h"
#include "simd.h"
#include "kernels_graph.h" /* the graph ops' parameters (CONV2D .. MATMUL) */

/* y[r][j] = sum_{i<k} x[r][i] * w[j][i] (+ bias[j]), accumulated in float
 * in i order, bias added last. y never overlaps x, w or bias. */
typedef struct {
    float *y;
    const float *x;    /* rows x k */
    const float *w;    /* m x k */
    const float *bias; /* m, or NULL (MATMUL_NT) */
    size_t rows, k, m;
} lnn_linear_params;

/* LINEAR_T and MATMUL_T (the weight transposed): y[r][j] = sum_{i<k}
 * x[r][i] * w[i][j] (+ bias[j]) for r < rows, j < m, accumulated in float in
 * i order (reverse: from i = k-1 down to 0), bias added last. w is k rows of
 * ldw >= m floats (Wt, or a block of its columns), y is rows rows of ldy >= m
 * floats. y overlaps none of x, w or bias.
 *
 * reverse exists for the cache: a weight a little larger than the L1 data
 * cache, read again at every step of a loop, mostly misses when always read
 * in the same order (the lines needed first are the ones evicted), and mostly
 * hits when every other pass runs backwards (the interpreter sets it on odd
 * loop iterations). Only the rounding of the sums changes. */
typedef struct {
    float *y;
    const float *x;    /* rows x k */
    const float *w;    /* k x ldw */
    const float *bias; /* m, or NULL (MATMUL_T) */
    size_t rows, k, m, ldw, ldy;
    int reverse;
} lnn_linear_t_params;

/* The _Q8 products: an int8 weight q with one float scale per output
 * column j,
 *   y[r][j] = (sum_{i<k} x[r][i] * (float)q(j, i)) * scale[j] (+ bias[j]),
 * the sum in float in i order (reverse, _TQ8 only: from i = k-1 down to 0,
 * as lnn_linear_t_params), multiplied by the scale once, the bias added
 * last. linear_q8 (LINEAR_Q8, MATMUL_NTQ8): q(j, i) = q[j * k + i], Q (M,
 * K), y rows of m floats (ldq, ldy, reverse unused). linear_tq8
 * (LINEAR_TQ8, MATMUL_TQ8): q(j, i) = q[i * ldq + j], Qt (K, M) or a block of
 * its columns, y rows of ldy >= m floats. y overlaps none of x, q, scale or
 * bias. The cm4 set's linear_tq8 sums in integers instead, x in block
 * floating point (kernels_cm4.c: within 2^-29 max |x| sum |w| more). */
typedef struct {
    float *y;
    const float *x;     /* rows x k */
    const int8_t *q;    /* m x k, or k x ldq */
    const float *scale; /* m */
    const float *bias;  /* m, or NULL (MATMUL_NTQ8, MATMUL_TQ8) */
    size_t rows, k, m, ldq, ldy;
    int reverse;
} lnn_linear_q8_params;

/* The _W8A16 products (LINEAR_W8A16, MATMUL_W8A16; lnn_opcodes.def has the
 * arithmetic, bit-exact on every set): each row of x (rows x k) rounded to
 * 16-bit block floating point, times the int8 panel (ceil(m/2) column pairs
 * of ceil(k/2) little-endian words, lnn_opcodes.def), y_j = fmaf((float)S_j
 * 2^(e-15), scale[j], bias[j]) or ((float)S_j 2^(e-15)) scale[j] without
 * bias. The m columns split in order over ndst destinations: destination d
 * takes columns col[d] .. col[d+1]-1 (col[0] = 0, col[ndst] = m) into rows of
 * col[d+1] - col[d] floats at y[d]. One call covers every destination,
 * because the panel pairs columns: a destination may start at an odd column,
 * in the middle of a pair. No y overlaps x, the panel, scale, bias or another
 * y. */
typedef struct {
    float *y[LNN_MAX_DSTS];
    size_t col[LNN_MAX_DSTS + 1];
    size_t ndst;
    const float *x;         /* rows x k */
    const uint8_t *panel;   /* ceil(m/2) * ceil(k/2) * 4 bytes, any alignment of 4 */
    const float *scale;     /* m */
    const float *bias;      /* m, or NULL (MATMUL_W8A16) */
    size_t rows, k, m;
} lnn_linear_w8a16_params;

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

/* SPLIT: for r < rows, row r of x (the sum of cols[j] floats) is cut in
 * order into row r of y[0], y[1], ..., y[n-1] (cols[j] floats each). No y
 * overlaps x or another y. */
typedef struct {
    const float *x;
    float *y[LNN_MAX_DSTS];
    size_t cols[LNN_MAX_DSTS];
    size_t rows, n;
} lnn_split_params;

/* WHERE: y[o] = c[o] != 0 ? a[o] : b[o] over the output dims (left-padded
 * with 1 to rank 4), each operand read at its element strides (0 where it
 * broadcasts). y may be exactly one of the operands (same range and shape:
 * each element is read before its slot is written). */
typedef struct {
    float *y;
    const float *c, *a, *b;
    size_t dims[4];
    size_t sc[4], sa[4], sb[4];
} lnn_where_params;

/* EWISEn: the program's L instruction words (lnn_format.h) evaluated for
 * every output element. Operand j is read as its mode says: SAME src[j][e],
 * ROW src[j][e mod len[j]], SCALAR src[j][0]. The kernels run the program
 * on blocks of elements (lnn_ewise_blocks), one instruction over a whole
 * block at a time, the registers being blocks of a scratch array on the
 * kernel's stack (LNN_EW_SCRATCH floats). inner divides count and every ROW
 * len. y may be exactly a SAME operand (the last instruction reads a block
 * before it writes it) and overlaps no other operand. */
#ifndef LNN_EW_SCRATCH
#if UINTPTR_MAX > 0xFFFFFFFFu
#define LNN_EW_SCRATCH 2048 /* floats: 8 KiB of stack */
#else
#define LNN_EW_SCRATCH 512
#endif
#endif
#define LNN_EW_MAX_OPERANDS 8
/* every register and repeated row gets a block of at least 16 floats */
_Static_assert(LNN_EW_SCRATCH >= 16 * (LNN_EW_MAX_OPERANDS + LNN_EW_MAX_REGS),
               "LNN_EW_SCRATCH too small for 16 blocks of 16 floats");
enum { LNN_EW_SAME, LNN_EW_ROW, LNN_EW_SCALAR };
typedef struct {
    float *y;
    const float *src[LNN_EW_MAX_OPERANDS];
    size_t len[LNN_EW_MAX_OPERANDS]; /* ROW: the operand's element count */
    uint8_t mode[LNN_EW_MAX_OPERANDS];
    const uint32_t *insn; /* the L instruction words (after the header) */
    size_t n, ninsn, nregs;
    size_t count; /* output elements */
    size_t inner; /* the shortest ROW len; count when there is no ROW operand */
    uint32_t form; /* lnn_ew_form of the program (0: none), planned once */
} lnn_ewise_params;

/* Fused forms: programs a SIMD set runs with code of their own instead of
 * instruction by instruction (bits 0-3 of the form word), and which operand
 * fills each slot of the form (4 bits per slot from bit 4; 0xF: a slot the
 * form does not use). The result must be the program's bits.
 *
 * LNN_EW_FORM_LTC: the LTC step after its product, as fuse_elementwise
 * makes it, under any operand numbering and register allocation:
 *   t0 = A + B; t1 = sigmoid(t0); t2 = C + D; t3 = t2 * t1; t4 = t3 - H;
 *   t5 = t4 / T; t6 = DT * t5; y = H + t6
 * slots 0..6 = A B C D H T DT (gate, candidate, state, tau, step), any
 * operand modes.
 *
 * LNN_EW_FORM_LTC_UNSPLIT: the same step after one product over the whole
 * input row cat(x, h), which a w8a16 layer keeps (its rounding is per row of
 * the layer's input, so the compiler does not split it): nothing to add,
 *   t0 = sigmoid(A); t1 = C * t0; t2 = t1 - H; t3 = t2 / T; t4 = DT * t3;
 *   y = H + t4
 * slots A C H T DT as above, B and D unused. */
enum { LNN_EW_FORM_NONE = 0, LNN_EW_FORM_LTC = 1, LNN_EW_FORM_LTC_UNSPLIT = 2 };
#define LNN_EW_LTC_SLOTS 7
enum { LNN_EW_SLOT_UNUSED = 0xF, LNN_EW_FORM_RESULT = 16 /* >= this in a pattern: instruction i's result */ };

static inline size_t lnn_ew_form_slot(uint32_t form, size_t s)
{
    return (form >> (4 + 4 * s)) & 0xFu;
}

/* `kind` when the verified program (ninsn words over n operands) is the
 * pattern (op, a, b per instruction; a or b < LNN_EW_FORM_RESULT: a slot,
 * else the result of an earlier instruction, wherever the allocator put it),
 * with its slots bound; 0 when not. */
static inline uint32_t lnn_ew_form_match(const uint32_t *insn, size_t ninsn, size_t n, const uint8_t (*pattern)[3],
                                         size_t len, uint32_t kind)
{
    enum { T = LNN_EW_FORM_RESULT };
    int reg_of[LNN_EW_MAX_REGS]; /* the instruction whose result a register holds */
    uint32_t slot[LNN_EW_LTC_SLOTS];
    if (ninsn != len || n > 15)
        return LNN_EW_FORM_NONE;
    for (size_t r = 0; r < LNN_EW_MAX_REGS; r++)
        reg_of[r] = -1;
    for (size_t s = 0; s < LNN_EW_LTC_SLOTS; s++)
        slot[s] = LNN_EW_SLOT_UNUSED;
    for (size_t i = 0; i < len; i++) {
        const uint32_t w = insn[i], d = (w >> 8) & 0xFFu;
        const uint32_t v[2] = {(w >> 16) & 0xFFu, w >> 24};
        if ((w & 0xFFu) != pattern[i][0])
            return LNN_EW_FORM_NONE;
        for (size_t k = 0; k < (pattern[i][0] >= 0x40 ? 1u : 2u); k++) {
            const uint32_t t = pattern[i][1 + k];
            if (t >= T) { /* a register holding that result */
                if (v[k] < n || v[k] - n >= LNN_EW_MAX_REGS || reg_of[v[k] - n] != (int)(t - T))
                    return LNN_EW_FORM_NONE;
            } else { /* an operand, the same wherever its slot appears */
                if (v[k] >= n || (slot[t] != LNN_EW_SLOT_UNUSED && slot[t] != v[k]))
                    return LNN_EW_FORM_NONE;
                slot[t] = v[k];
            }
        }
        if (i + 1 < len) {
            if (d >= LNN_EW_MAX_REGS)
                return LNN_EW_FORM_NONE;
            reg_of[d] = (int)i;
        }
    }
    uint32_t form = kind;
    for (size_t s = 0; s < LNN_EW_LTC_SLOTS; s++)
        form |= slot[s] << (4 + 4 * s);
    return form;
}

/* Only w8a16 layers make the unsplit form: a selective build without them
 * (internal.h, LNN_OP_LINKED) need not look for it. */
#ifdef LNN_OP_LINKED
#define LNN_EW_LOOK_FOR_UNSPLIT (LNN_OP_LINKED(LINEAR_W8A16) || LNN_OP_LINKED(MATMUL_W8A16))
#else
#define LNN_EW_LOOK_FOR_UNSPLIT 1
#endif

/* The form of a verified program of ninsn words over n operands (0: none). */
static inline uint32_t lnn_ew_form(const uint32_t *insn, size_t ninsn, size_t n)
{
    enum { A, B, C, D, H, TAU, DT, T = LNN_EW_FORM_RESULT };
    static const uint8_t ltc[8][3] = {
        {0x30, A, B},         /* ADD     t0 = A + B   */
        {0x42, T + 0, 0},     /* SIGMOID t1 = sig(t0) */
        {0x30, C, D},         /* ADD     t2 = C + D   */
        {0x32, T + 2, T + 1}, /* MUL     t3 = t2 * t1 */
        {0x31, T + 3, H},     /* SUB     t4 = t3 - H  */
        {0x33, T + 4, TAU},   /* DIV     t5 = t4 / T  */
        {0x32, DT, T + 5},    /* MUL     t6 = DT * t5 */
        {0x30, H, T + 6},     /* ADD     y  = H + t6  */
    };
    static const uint8_t unsplit[6][3] = {
        {0x42, A, 0},         /* SIGMOID t0 = sig(A)  */
        {0x32, C, T + 0},     /* MUL     t1 = C * t0  */
        {0x31, T + 1, H},     /* SUB     t2 = t1 - H  */
        {0x33, T + 2, TAU},   /* DIV     t3 = t2 / T  */
        {0x32, DT, T + 3},    /* MUL     t4 = DT * t3 */
        {0x30, H, T + 4},     /* ADD     y  = H + t4  */
    };
    const uint32_t form = lnn_ew_form_match(insn, ninsn, n, ltc, 8, LNN_EW_FORM_LTC);
    if (form || !LNN_EW_LOOK_FOR_UNSPLIT)
        return form;
    return lnn_ew_form_match(insn, ninsn, n, unsplit, 6, LNN_EW_FORM_LTC_UNSPLIT);
}

/* The unsplit form as the LTC form: q is p with one more operand, a single
 * -0, in slots B and D (p->n < LNN_EW_MAX_OPERANDS). x + -0 is x for every
 * float (NaN and -0 too), so a set's LTC kernel gives the unsplit program's
 * bits for two adds a vector, where a second instance of it would cost code
 * (0.8 KB of an M55 image) and, at -Os, slowed the first one's. */
static inline const lnn_ewise_params *lnn_ew_unsplit_as_ltc(const lnn_ewise_params *p, lnn_ewise_params *q)
{
    static const float minus_zero = -0.0f;
    const uint32_t b = 4 + 4 * 1, d = 4 + 4 * 3; /* the slots' bits */
    *q = *p;
    q->src[p->n] = &minus_zero;
    q->len[p->n] = 1;
    q->mode[p->n] = LNN_EW_SCALAR;
    q->n = p->n + 1;
    q->form = (p->form & ~(0xFu | 0xFu << b | 0xFu << d)) | LNN_EW_FORM_LTC | (uint32_t)p->n << b | (uint32_t)p->n << d;
    return q;
}

/* Inlines a function whatever the optimizer thinks (the block loop and the
 * per-instruction switch must be one function to run fast). */
#if defined(__GNUC__)
#define LNN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define LNN_ALWAYS_INLINE inline
#endif

/* The order of a transposed product's sums (linear_t, linear_tq8): inputs 0
 * up to k-1, or k-1 down to 0 (reverse): the first input, and the steps
 * from one input to the next in the weights (rows ld apart) and in x. */
typedef struct {
    size_t first;
    ptrdiff_t dw, dx;
} lnn_sum_order;

static inline lnn_sum_order lnn_sum_order_of(int reverse, size_t k, size_t ld)
{
    const lnn_sum_order forwards = {0, (ptrdiff_t)ld, 1}, backwards = {k - 1, -(ptrdiff_t)ld, -1};
    return reverse ? backwards : forwards;
}

/* Runs p's program block by block; op(code, y, a, a_scalar, b, b_scalar,
 * len) computes one instruction over one block (a_scalar: a is one value;
 * b is unused by the one-operand ops). Shared by every kernel set: only op
 * differs.
 *
 * Blocks: the scratch array holds the R registers and, when every ROW
 * operand is one run of inner elements and several runs fit in a block,
 * each ROW operand repeated over a block, so that a block spans several
 * runs (the LTC's per-unit tau against a batch of rows). Otherwise a block
 * stays inside one run of inner elements, where a ROW operand is
 * contiguous. */
typedef void (*lnn_ew_block_fn)(uint32_t code, float *y, const float *a, int sa,
                                const float *b, int sb, size_t len);
static LNN_ALWAYS_INLINE void lnn_ewise_blocks(const lnn_ewise_params *p, lnn_ew_block_fn op)
{
    _Alignas(64) float scratch[LNN_EW_SCRATCH];
    const float *val[LNN_EW_MAX_OPERANDS + LNN_EW_MAX_REGS];
    int scal[LNN_EW_MAX_OPERANDS + LNN_EW_MAX_REGS];
    size_t pos[LNN_EW_MAX_OPERANDS]; /* ROW: where this run starts in it */
    const size_t n = p->n, ninsn = p->ninsn, count = p->count;
    size_t nrow = 0, same_len = 1;
    for (size_t j = 0; j < n; j++) {
        if (p->mode[j] == LNN_EW_ROW) {
            nrow++;
            same_len &= p->len[j] == p->inner;
        }
    }
    size_t blk = LNN_EW_SCRATCH / (p->nregs + nrow > 0 ? p->nregs + nrow : 1);
    blk -= blk % 16;
    size_t run = nrow ? p->inner : count; /* blocks stay inside one run */
    const int repeat = nrow && same_len && 2 * p->inner <= blk && count > p->inner;
    if (repeat) /* a whole number of runs per block, at most count */
        run = blk - blk % p->inner < count ? blk - blk % p->inner : count;
    for (size_t j = 0, r = p->nregs; j < n; j++) {
        pos[j] = 0;
        scal[j] = p->mode[j] == LNN_EW_SCALAR;
        val[j] = p->src[j];
        if (repeat && p->mode[j] == LNN_EW_ROW) { /* the row repeated over a block */
            float *rep = scratch + blk * r++;
            for (size_t i = 0; i < run; i += p->inner)
                memcpy(rep + i, p->src[j], p->inner * sizeof(float));
            val[j] = rep;
        }
    }
    for (size_t r = 0; r < LNN_EW_MAX_REGS; r++) {
        val[n + r] = scratch + blk * (r < p->nregs ? r : 0);
        scal[n + r] = 0;
    }
    for (size_t o = 0; o < count; o += run) {
        const size_t end = count - o < run ? count - o : run;
        for (size_t c = 0; c < end; c += blk) {
            const size_t len = end - c < blk ? end - c : blk;
            for (size_t j = 0; j < n; j++) {
                if (p->mode[j] == LNN_EW_SAME)
                    val[j] = p->src[j] + o + c;
                else if (p->mode[j] == LNN_EW_ROW && !repeat)
                    val[j] = p->src[j] + pos[j] + c;
            }
            for (size_t i = 0; i < ninsn; i++) {
                const uint32_t w = p->insn[i];
                const uint32_t a = (w >> 16) & 0xFFu, b = w >> 24;
                float *y = i + 1 == ninsn ? p->y + o + c : scratch + blk * ((w >> 8) & 0xFFu);
                op(w & 0xFFu, y, val[a], scal[a], val[b], scal[b], len);
            }
        }
        if (!repeat)
            for (size_t j = 0; j < n; j++)
                if (p->mode[j] == LNN_EW_ROW && (pos[j] += run) == p->len[j])
                    pos[j] = 0;
    }
}

typedef void (*lnn_linear_fn)(const lnn_linear_params *p);
typedef void (*lnn_linear_t_fn)(const lnn_linear_t_params *p);
typedef void (*lnn_linear_q8_fn)(const lnn_linear_q8_params *p);
typedef void (*lnn_linear_w8a16_fn)(const lnn_linear_w8a16_params *p);
typedef void (*lnn_ewise_fn)(const lnn_ewise_params *p);
typedef void (*lnn_binary_fn)(const lnn_binary_params *p);
typedef void (*lnn_unary_fn)(const lnn_unary_params *p);
typedef void (*lnn_concat_fn)(const lnn_concat_params *p);
typedef void (*lnn_split_fn)(const lnn_split_params *p);
typedef void (*lnn_where_fn)(const lnn_where_params *p);

/* One table per ISA. Declare kernel prototypes with LNN_KERNEL_PROTOS(isa). */
typedef struct lnn_kernels {
    const char *isa; /* "scalar", "neon", "sse3", "avx2", "avx512", "mve", "cm4" */
    lnn_linear_fn linear; /* LINEAR and MATMUL_NT (bias NULL) */
    lnn_linear_t_fn linear_t; /* LINEAR_T and MATMUL_T (bias NULL) */
    lnn_linear_q8_fn linear_q8;  /* LINEAR_Q8 and MATMUL_NTQ8 (bias NULL) */
    lnn_linear_q8_fn linear_tq8; /* LINEAR_TQ8 and MATMUL_TQ8 (bias NULL) */
    lnn_linear_w8a16_fn linear_w8a16; /* LINEAR_W8A16 and MATMUL_W8A16 (bias NULL) */
    lnn_ewise_fn ewise;       /* EWISE1 .. EWISE8 */
    lnn_binary_fn add, sub, mul, div, min, max, pow, le, lt;
    lnn_where_fn where;
    lnn_unary_fn neg, exp, sigmoid, tanh, relu, abs, sqrt, log, erf;
    lnn_unary_fn copy, zero;
    lnn_concat_fn concat;
    lnn_split_fn split;
    /* the graph ops (kernels_graph.h) */
    lnn_conv2d_fn conv2d;
    lnn_pool2d_fn maxpool2d, avgpool2d;
    lnn_axis_fn softmax, log_softmax, reduce_sum, reduce_mean;
    lnn_matmul_fn matmul;
} lnn_kernels;

#define LNN_KERNEL_PROTOS(isa)                                   \
    void lnn_linear__##isa(const lnn_linear_params *p);          \
    void lnn_linear_t__##isa(const lnn_linear_t_params *p);      \
    void lnn_linear_q8__##isa(const lnn_linear_q8_params *p);    \
    void lnn_linear_tq8__##isa(const lnn_linear_q8_params *p);   \
    void lnn_ewise__##isa(const lnn_ewise_params *p);            \
    void lnn_add__##isa(const lnn_binary_params *p);             \
    void lnn_sub__##isa(const lnn_binary_params *p);             \
    void lnn_mul__##isa(const lnn_binary_params *p);             \
    void lnn_div__##isa(const lnn_binary_params *p);             \
    void lnn_min__##isa(const lnn_binary_params *p);             \
    void lnn_max__##isa(const lnn_binary_params *p);             \
    void lnn_neg__##isa(const lnn_unary_params *p);              \
    void lnn_exp__##isa(const lnn_unary_params *p);              \
    void lnn_sigmoid__##isa(const lnn_unary_params *p);          \
    void lnn_tanh__##isa(const lnn_unary_params *p);             \
    void lnn_relu__##isa(const lnn_unary_params *p);             \
    void lnn_abs__##isa(const lnn_unary_params *p);              \
    void lnn_sqrt__##isa(const lnn_unary_params *p);             \
    void lnn_log__##isa(const lnn_unary_params *p);              \
    void lnn_erf__##isa(const lnn_unary_params *p);              \
    void lnn_copy__##isa(const lnn_unary_params *p);             \
    void lnn_zero__##isa(const lnn_unary_params *p);             \
    void lnn_concat__##isa(const lnn_concat_params *p);          \
    void lnn_conv2d__##isa(const lnn_conv2d_params *p);          \
    void lnn_maxpool2d__##isa(const lnn_pool2d_params *p);       \
    void lnn_avgpool2d__##isa(const lnn_pool2d_params *p);       \
    void lnn_softmax__##isa(const lnn_axis_params *p);           \
    void lnn_log_softmax__##isa(const lnn_axis_params *p);       \
    void lnn_reduce_sum__##isa(const lnn_axis_params *p);        \
    void lnn_reduce_mean__##isa(const lnn_axis_params *p);       \
    void lnn_matmul__##isa(const lnn_matmul_params *p);          \
    extern const lnn_kernels lnn_kernels_##isa

LNN_KERNEL_PROTOS(scalar);
/* SPLIT and WHERE are data movement only: one kernel, in every set's
 * table. So are POW (powf of the C library, see kernels_scalar.c), LE and
 * LT (rare: kernels_simd.h). */
void lnn_split__scalar(const lnn_split_params *p);
void lnn_where__scalar(const lnn_where_params *p);
void lnn_pow__scalar(const lnn_binary_params *p);
void lnn_le__scalar(const lnn_binary_params *p);
void lnn_lt__scalar(const lnn_binary_params *p);
/* The block exponent e of a w8a16 row whose largest |x| has the float bits
 * amax (finite, sign clear): m = max |x| = 1.f 2^(b-127) for the biased
 * exponent b, so E (frexpf's) is b - 126 and m 2^(15-E) = (2^23 | f) / 2^9,
 * which rounds (half to even) to 32768 exactly when 2^23 | f >= 0xFFFF00:
 * then e = E + 1. A row below 2^-100 (subnormal, zero) takes the floor
 * e = -100 (for m = 0 the definition says e = 0: every xq is 0 either way,
 * so the results are the same bits). */
static inline int32_t lnn_w8a16_exponent(uint32_t amax)
{
    if (amax < 0x00800000u)
        return -100;
    const int32_t e = (int32_t)(amax >> 23) - 126 + ((amax & 0x7FFFFFu) >= 0x7FFF00u);
    return e < -100 ? -100 : e;
}

/* The destination holding column j of a w8a16 product and the run of
 * columns from j it takes, up to column end (j < end <= m; end = j + 1: the
 * column alone): *d moves on to that destination (the columns of a row go in
 * order, so *d starts at 0 for the row and only moves forward), *n gets the
 * run's length (>= 1), and the result is where column j of row r goes (its
 * n columns are contiguous). Every w8a16 kernel walks its columns with this
 * (lnn_linear_w8a16_params has the split). */
static LNN_ALWAYS_INLINE float *lnn_w8a16_run(const lnn_linear_w8a16_params *p, size_t r, size_t j, size_t end,
                                              size_t *d, size_t *n)
{
    while (j >= p->col[*d + 1])
        (*d)++;
    const size_t first = p->col[*d], next = p->col[*d + 1];
    *n = (next < end ? next : end) - j;
    return p->y[*d] + r * (next - first) + (j - first);
}

/* 2^n as a float, for a normal result (-126 <= n <= 127). */
static inline float lnn_pow2f(int32_t n)
{
    const uint32_t u = (uint32_t)(n + 127) << 23;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* fmaf(a, b, c) rounded once, on every C library. newlib's fmaf without an
 * FPU (Cortex-M0) is (float)((double)a * b + c): two roundings, off by an
 * ulp where the double sum lands on a float half-way point. Where the
 * compiler has a fused multiply-add instruction (__FP_FAST_FMAF) that; else
 * in double: a b is exact (48 bits), the sum rounded to odd (TwoSum gives
 * its exact error; an inexact sum with an even last bit moves one ulp
 * towards it), and a double rounded to odd rounds to float as the exact
 * value does (53 >= 24 + 2 bits), subnormal results too. Infinities and NaN
 * come out of the double sum. (Evaluation in long double, x87: fmaf.) */
static inline float lnn_fmaf(float a, float b, float c)
{
#if defined(__FP_FAST_FMAF) && defined(__GNUC__)
    return __builtin_fmaf(a, b, c); /* the instruction at every -O (at -O0 fmaf() is newlib's, above) */
#elif defined(__FP_FAST_FMAF) || (defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0 && __FLT_EVAL_METHOD__ != 1)
    return fmaf(a, b, c);
#else
    const double p = (double)a * (double)b, s = p + (double)c;
    if (!(s - s == 0.0))
        return (float)s;
    const double t = s - p, err = (p - (s - t)) + ((double)c - t);
    uint64_t u;
    memcpy(&u, &s, sizeof u);
    if (err != 0.0 && !(u & 1u)) /* s is not 0 here: a sum rounded to 0 is exact */
        u = (err > 0.0) == (s > 0.0) ? u + 1u : u - 1u;
    double r;
    memcpy(&r, &u, sizeof r);
    return (float)r;
#endif
}

/* The end of a w8a16 product for the nc columns from j0 of row r, from their
 * exact sums: y = fmaf(sum 2^(e-15), scale, bias), or sum 2^(e-15) scale
 * without a bias (pw = 2^(e-15); the definition, lnn_opcodes.def),
 * destination by destination (*d as lnn_w8a16_run takes it). The kernels
 * with int64 sums end with it (scalar, the cm4 long rows). */
static LNN_ALWAYS_INLINE void lnn_w8a16_put_sums(const lnn_linear_w8a16_params *p, size_t r, size_t j0, size_t nc,
                                                 const int64_t *sum, float pw, size_t *d)
{
    for (size_t c = 0; c < nc;) {
        size_t n;
        float *y = lnn_w8a16_run(p, r, j0 + c, j0 + nc, d, &n);
        for (size_t i = 0; i < n; i++) {
            const size_t j = j0 + c + i;
            const float v = (float)sum[c + i] * pw;
            y[i] = p->bias ? lnn_fmaf(v, p->scale[j], p->bias[j]) : v * p->scale[j];
        }
        c += n;
    }
}

/* The w8a16 products: bit-exact by definition, so every set without a kernel of its own takes the scalar one
 * (LNN_W8A16_SCALAR_ENTRY). */
void lnn_linear_w8a16__scalar(const lnn_linear_w8a16_params *p);
#define LNN_W8A16_LINKED (LNN_OP_LINKED(LINEAR_W8A16) || LNN_OP_LINKED(MATMUL_W8A16))
#define LNN_W8A16_SCALAR_ENTRY .linear_w8a16 = LNN_KERNEL_IF(LNN_W8A16_LINKED, lnn_linear_w8a16__scalar),
#if LNN_HAVE_NEON
LNN_KERNEL_PROTOS(neon);
#endif
#if LNN_HAVE_MVE
LNN_KERNEL_PROTOS(mve);
#endif
#if LNN_HAVE_CM4 /* kernels_cm4.c: its products; the rest of its table is scalar */
void lnn_linear__cm4(const lnn_linear_params *p);
void lnn_linear_t__cm4(const lnn_linear_t_params *p);
void lnn_linear_tq8__cm4(const lnn_linear_q8_params *p);
void lnn_linear_w8a16__cm4(const lnn_linear_w8a16_params *p);
extern const lnn_kernels lnn_kernels_cm4;
#endif
#if LNN_HAVE_SSE3
LNN_KERNEL_PROTOS(sse3);
#endif
#if LNN_HAVE_AVX2
LNN_KERNEL_PROTOS(avx2);
#endif
#if LNN_HAVE_AVX512
LNN_KERNEL_PROTOS(avx512);
#endif

/* The kernel set for lnn_init (kernels.c): the best compiled-in set the
 * processor supports, or NULL in a strict build (LNN_ISA_STRICT) whose best
 * set the processor does not support. */
const lnn_kernels *lnn_kernels_select(void);

/* 1 if the processor can run set k (x86: cpuid; elsewhere always). */
int lnn_kernels_supported(const lnn_kernels *k);

/* The compiled-in set named isa, or NULL. */
const lnn_kernels *lnn_kernels_find(const char *isa);

/* A selective build (internal.h, LNN_OP_LINKED) leaves the kernels of the ops it was built without out
 * of a table, so the linker drops them. */
#define LNN_KERNEL_IF(linked, fn) ((linked) ? (fn) : NULL)
#define LNN_EWISE_LINKED                                                                        \
    (LNN_OP_LINKED(EWISE1) || LNN_OP_LINKED(EWISE2) || LNN_OP_LINKED(EWISE3) || LNN_OP_LINKED(EWISE4) || \
     LNN_OP_LINKED(EWISE5) || LNN_OP_LINKED(EWISE6) || LNN_OP_LINKED(EWISE7) || LNN_OP_LINKED(EWISE8))

/* The table entries that every kernel set with scalar element-wise and graph kernels takes from them
 * (the scalar set and cm4, whose own kernels are the products, the element-wise programs and CONV2D:
 * each table names its conv2d, kernels_graph_scalar.c's or kernels_cm4.c's). */
#define LNN_SCALAR_TABLE_ENTRIES \
    .add = LNN_KERNEL_IF(LNN_OP_LINKED(ADD), lnn_add__scalar), \
    .sub = LNN_KERNEL_IF(LNN_OP_LINKED(SUB), lnn_sub__scalar), \
    .mul = LNN_KERNEL_IF(LNN_OP_LINKED(MUL), lnn_mul__scalar), \
    .div = LNN_KERNEL_IF(LNN_OP_LINKED(DIV), lnn_div__scalar), \
    .min = LNN_KERNEL_IF(LNN_OP_LINKED(MIN), lnn_min__scalar), \
    .max = LNN_KERNEL_IF(LNN_OP_LINKED(MAX), lnn_max__scalar), \
    .pow = LNN_KERNEL_IF(LNN_OP_LINKED(POW), lnn_pow__scalar), \
    .le = LNN_KERNEL_IF(LNN_OP_LINKED(LE), lnn_le__scalar), \
    .lt = LNN_KERNEL_IF(LNN_OP_LINKED(LT), lnn_lt__scalar), \
    .where = LNN_KERNEL_IF(LNN_OP_LINKED(WHERE), lnn_where__scalar), \
    .neg = LNN_KERNEL_IF(LNN_OP_LINKED(NEG), lnn_neg__scalar), \
    .exp = LNN_KERNEL_IF(LNN_OP_LINKED(EXP), lnn_exp__scalar), \
    .sigmoid = LNN_KERNEL_IF(LNN_OP_LINKED(SIGMOID), lnn_sigmoid__scalar), \
    .tanh = LNN_KERNEL_IF(LNN_OP_LINKED(TANH), lnn_tanh__scalar), \
    .relu = LNN_KERNEL_IF(LNN_OP_LINKED(RELU), lnn_relu__scalar), \
    .abs = LNN_KERNEL_IF(LNN_OP_LINKED(ABS), lnn_abs__scalar), \
    .sqrt = LNN_KERNEL_IF(LNN_OP_LINKED(SQRT), lnn_sqrt__scalar), \
    .log = LNN_KERNEL_IF(LNN_OP_LINKED(LOG), lnn_log__scalar), \
    .erf = LNN_KERNEL_IF(LNN_OP_LINKED(ERF), lnn_erf__scalar), \
    .copy = LNN_KERNEL_IF(LNN_OP_LINKED(COPY), lnn_copy__scalar), \
    .zero = LNN_KERNEL_IF(LNN_OP_LINKED(ZERO), lnn_zero__scalar), \
    .concat = LNN_KERNEL_IF(LNN_OP_LINKED(CONCAT), lnn_concat__scalar), \
    .split = LNN_KERNEL_IF(LNN_OP_LINKED(SPLIT), lnn_split__scalar), \
    .maxpool2d = LNN_KERNEL_IF(LNN_OP_LINKED(MAXPOOL2D), lnn_maxpool2d__scalar), \
    .avgpool2d = LNN_KERNEL_IF(LNN_OP_LINKED(AVGPOOL2D), lnn_avgpool2d__scalar), \
    .softmax = LNN_KERNEL_IF(LNN_OP_LINKED(SOFTMAX), lnn_softmax__scalar), \
    .log_softmax = LNN_KERNEL_IF(LNN_OP_LINKED(LOG_SOFTMAX), lnn_log_softmax__scalar), \
    .reduce_sum = LNN_KERNEL_IF(LNN_OP_LINKED(REDUCE_SUM), lnn_reduce_sum__scalar), \
    .reduce_mean = LNN_KERNEL_IF(LNN_OP_LINKED(REDUCE_MEAN), lnn_reduce_mean__scalar), \
    .matmul = LNN_KERNEL_IF(LNN_OP_LINKED(MATMUL), lnn_matmul__scalar),

/* NULL-terminated list of every kernel set compiled in, best first. */
extern const lnn_kernels *const lnn_kernel_sets[];

#endif
