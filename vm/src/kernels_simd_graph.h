/*
 * kernels_simd_graph.h - the graph-op kernels (kernels_graph.h) over the
 * vector interface of kernels_simd.h, which includes this file once per
 * SIMD set. Differences from the scalar kernels: fused multiply-adds where
 * the set fuses, and sums taken in vector lanes (softmax over a contiguous
 * axis, REDUCE_* over a contiguous axis) in another order.
 */

#include <math.h> /* logf: once per line of LOG_SOFTMAX */

/* ---- CONV2D ------------------------------------------------------------------- */

/* One tap over a run of output pixels: vectors when the input run is
 * contiguous (stride 1), else element by element. */
static void LNN_SK(tap)(float *y, const float *x, size_t xs, float wv, size_t len)
{
    if (xs != 1) {
        for (size_t j = 0; j < len; j++)
            y[j] += wv * x[j * xs];
        return;
    }
    const lnn_vf w = lnn_v_set1(wv);
    size_t j = 0;
    for (; j + LNN_W <= len; j += LNN_W)
        lnn_v_store(y + j, lnn_v_fma(w, lnn_v_load(x + j), lnn_v_load(y + j)));
    if (j < len)
        lnn_v_storen(y + j, lnn_v_fma(w, lnn_v_loadn(x + j, len - j), lnn_v_loadn(y + j, len - j)),
                     len - j);
}

void LNN_SK(conv2d)(const lnn_conv2d_params *p)
{
    lnn_conv2d_loops(p, LNN_SK(tap));
}

/* ---- MAXPOOL2D / AVGPOOL2D ---------------------------------------------------- */

/* Output pixels of a row in vectors: stride 1 with plain loads, stride 2
 * with deinterleaving ones (where the 2 LNN_W floats they read stay inside
 * the input row, else the taps are gathered one by one); other strides run
 * the scalar kernel. The same operations in the same order as the scalar
 * kernel, so the same bits (lnn_v_pool_max: the scalar step, a NaN in the
 * window kept; NEON's FMAX takes +0 over -0 where the step keeps the first). */
static int LNN_SK(pool_rows)(const lnn_pool2d_params *p, int avg)
{
    const size_t k = p->k, s = p->stride;
    if (s > 2)
        return 0;
    _Alignas(64) float lanes[LNN_W];
    const lnn_vf scale = lnn_v_set1((float)(k * k));
    for (size_t q = 0; q < p->planes; q++) {
        const float *x = p->x + q * p->h * p->wd;
        float *y = p->y + q * p->oh * p->ow;
        for (size_t i = 0; i < p->oh; i++) {
            for (size_t j = 0; j < p->ow; j += LNN_W) {
                const size_t t = p->ow - j < LNN_W ? p->ow - j : LNN_W;
                lnn_vf acc = lnn_v_zero();
                for (size_t u = 0; u < k; u++) {
                    const float *row = x + (i * s + u) * p->wd;
                    for (size_t v = 0; v < k; v++) {
                        const float *w = row + j * s + v;
                        lnn_vf e;
                        if (s == 1)
                            e = t == LNN_W ? lnn_v_load(w) : lnn_v_loadn(w, t);
                        else if (t == LNN_W && j * 2 + v + 2 * LNN_W <= p->wd)
                            e = lnn_v_load_even(w);
                        else {
                            for (size_t l = 0; l < LNN_W; l++)
                                lanes[l] = l < t ? w[2 * l] : 0.0f;
                            e = lnn_v_load(lanes);
                        }
                        acc = avg ? lnn_v_add(acc, e) : (u | v) ? lnn_v_pool_max(acc, e) : e;
                    }
                }
                if (avg)
                    acc = lnn_v_div(acc, scale);
                if (t == LNN_W)
                    lnn_v_store(y + i * p->ow + j, acc);
                else
                    lnn_v_storen(y + i * p->ow + j, acc, t);
            }
        }
    }
    return 1;
}

void LNN_SK(maxpool2d)(const lnn_pool2d_params *p)
{
    if (!LNN_SK(pool_rows)(p, 0))
        lnn_maxpool2d__scalar(p);
}

void LNN_SK(avgpool2d)(const lnn_pool2d_params *p)
{
    if (!LNN_SK(pool_rows)(p, 1))
        lnn_avgpool2d__scalar(p);
}

/* ---- SOFTMAX / LOG_SOFTMAX ------------------------------------------------------ */

/* The exponentials go through the set's own exp kernel (one copy of the
 * polynomial): y first holds x - max, softmax then turns it into exp in
 * place; log-softmax keeps it and takes the exponentials in a block on the
 * stack. */
#define LNN_SM_BLOCK 64

/* sum of exp(v[0..n)) in lanes; v kept unless keep is 0 (then exp in place) */
static float LNN_SK(sum_exp)(float *v, size_t n, int keep)
{
    _Alignas(64) float lanes[LNN_SM_BLOCK];
    float sum = 0.0f;
    for (size_t j0 = 0; j0 < n; j0 += LNN_SM_BLOCK) {
        const size_t len = n - j0 < LNN_SM_BLOCK ? n - j0 : LNN_SM_BLOCK;
        float *e = keep ? lanes : v + j0;
        const lnn_unary_params q = {e, v + j0, len};
        LNN_SK(exp)(&q);
        lnn_vf acc = lnn_v_zero();
        size_t j = 0;
        for (; j + LNN_W <= len; j += LNN_W)
            acc = lnn_v_add(acc, lnn_v_load(e + j));
        sum += lnn_v_reduce1(acc);
        for (; j < len; j++)
            sum += e[j];
    }
    return sum;
}

/* A contiguous line (inner == 1). */
static void LNN_SK(softmax_line)(float *y, const float *x, size_t n, int log)
{
    _Alignas(64) float lanes[LNN_W];
    size_t j = 0;
    float mx = x[0];
    if (n >= LNN_W) {
        lnn_vf vm = lnn_v_load(x);
        for (j = LNN_W; j + LNN_W <= n; j += LNN_W)
            vm = lnn_v_max(vm, lnn_v_load(x + j));
        lnn_v_store(lanes, vm);
        for (size_t l = 0; l < LNN_W; l++)
            mx = lanes[l] > mx ? lanes[l] : mx;
    }
    for (; j < n; j++)
        mx = x[j] > mx ? x[j] : mx;
    const lnn_vf vmx = lnn_v_set1(mx);
    for (j = 0; j + LNN_W <= n; j += LNN_W)
        lnn_v_store(y + j, lnn_v_sub(lnn_v_load(x + j), vmx));
    if (j < n)
        lnn_v_storen(y + j, lnn_v_sub(lnn_v_loadn(x + j, n - j), vmx), n - j);
    const float sum = LNN_SK(sum_exp)(y, n, log);
    const lnn_vf s = lnn_v_set1(log ? logf(sum) : sum);
    for (j = 0; j + LNN_W <= n; j += LNN_W)
        lnn_v_store(y + j, log ? lnn_v_sub(lnn_v_load(y + j), s) : lnn_v_div(lnn_v_load(y + j), s));
    if (j < n) {
        const lnn_vf v = lnn_v_loadn(y + j, n - j);
        lnn_v_storen(y + j, log ? lnn_v_sub(v, s) : lnn_v_div(v, s), n - j);
    }
}

/* A strided axis (inner > 1): t <= LNN_W lines side by side, one per lane,
 * each summed in the scalar kernel's order. */
static void LNN_SK(softmax_lanes)(float *y, const float *x, size_t n, size_t inner, size_t t, int log)
{
    _Alignas(64) float lanes[LNN_W];
    lnn_vf vm = lnn_v_loadn(x, t);
    for (size_t j = 1; j < n; j++)
        vm = lnn_v_max(vm, lnn_v_loadn(x + j * inner, t));
    lnn_vf acc = lnn_v_zero();
    for (size_t j = 0; j < n; j++) {
        float *yj = y + j * inner;
        lnn_v_storen(yj, lnn_v_sub(lnn_v_loadn(x + j * inner, t), vm), t);
        const lnn_unary_params q = {log ? lanes : yj, yj, t};
        LNN_SK(exp)(&q);
        acc = lnn_v_add(acc, lnn_v_loadn(log ? lanes : yj, t));
    }
    if (log) {
        lnn_v_store(lanes, acc);
        for (size_t l = 0; l < LNN_W; l++)
            lanes[l] = l < t ? logf(lanes[l]) : 0.0f;
        acc = lnn_v_load(lanes);
    }
    for (size_t j = 0; j < n; j++) {
        const lnn_vf v = lnn_v_loadn(y + j * inner, t);
        lnn_v_storen(y + j * inner, log ? lnn_v_sub(v, acc) : lnn_v_div(v, acc), t);
    }
}

static void LNN_SK(softmax_all)(const lnn_axis_params *p, int log)
{
    for (size_t o = 0; o < p->outer; o++) {
        const size_t at = o * p->n * p->inner;
        if (p->inner == 1) {
            LNN_SK(softmax_line)(p->y + at, p->x + at, p->n, log);
            continue;
        }
        for (size_t i = 0; i < p->inner; i += LNN_W)
            LNN_SK(softmax_lanes)(p->y + at + i, p->x + at + i, p->n, p->inner,
                                  p->inner - i < LNN_W ? p->inner - i : LNN_W, log);
    }
}

void LNN_SK(softmax)(const lnn_axis_params *p)
{
    LNN_SK(softmax_all)(p, 0);
}

void LNN_SK(log_softmax)(const lnn_axis_params *p)
{
    LNN_SK(softmax_all)(p, 1);
}

/* ---- REDUCE_SUM / REDUCE_MEAN ---------------------------------------------------- */

static void LNN_SK(reduce)(const lnn_axis_params *p, int mean)
{
    const size_t n = p->n, inner = p->inner;
    const lnn_vf count = lnn_v_set1((float)n);
    for (size_t o = 0; o < p->outer; o++) {
        const float *x = p->x + o * n * inner;
        float *y = p->y + o * inner;
        if (inner == 1) { /* a contiguous line: lane sums, then the rest */
            lnn_vf acc = lnn_v_zero();
            size_t j = 0;
            for (; j + LNN_W <= n; j += LNN_W)
                acc = lnn_v_add(acc, lnn_v_load(x + j));
            float sum = lnn_v_reduce1(acc);
            for (; j < n; j++)
                sum += x[j];
            y[0] = mean ? sum / (float)n : sum;
            continue;
        }
        for (size_t i = 0; i < inner; i += LNN_W) { /* lines side by side */
            const size_t t = inner - i < LNN_W ? inner - i : LNN_W;
            lnn_vf acc = lnn_v_zero();
            for (size_t j = 0; j < n; j++)
                acc = lnn_v_add(acc, lnn_v_loadn(x + j * inner + i, t));
            lnn_v_storen(y + i, mean ? lnn_v_div(acc, count) : acc, t);
        }
    }
}

void LNN_SK(reduce_sum)(const lnn_axis_params *p)
{
    LNN_SK(reduce)(p, 0);
}

void LNN_SK(reduce_mean)(const lnn_axis_params *p)
{
    LNN_SK(reduce)(p, 1);
}

/* ---- MATMUL ----------------------------------------------------------------------- */

/* Blocked: for each block of LNN_MM_KC rows of b, for each strip of two
 * vectors of b's columns, every block of LNN_MM_ROWS rows of a runs a
 * register tile (LNN_MM_ROWS x 2 vectors of accumulators) over the strip,
 * which stays in the L1 cache from one row block to the next (KC x 2W
 * floats: 16 KiB with AVX2). A tile adds to what the previous k block left
 * in y, so each sum still runs in k order. */
#ifndef LNN_MM_KC
#define LNN_MM_KC 256
#endif
#define LNN_MM_ROWS 6
#define LNN_MM_REP6(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define LNN_MM_REP1(M) M(0)
#define LNN_MM_LD(p, t) ((t) == LNN_W ? lnn_v_load(p) : lnn_v_loadn(p, t))
#define LNN_MM_ST(p, v, t)           \
    do {                             \
        if ((t) == LNN_W)            \
            lnn_v_store(p, v);       \
        else                         \
            lnn_v_storen(p, v, t);   \
    } while (0)

/* R rows x two full vectors */
#define LNN_MM_TILE2(NAME, REP)                                                          \
    static void NAME(const float *a, size_t lda, const float *b, size_t ldb, float *y,   \
                     size_t ldy, size_t kc, int first)                                   \
    {                                                                                    \
        REP(LNN_MM_D2)                                                                   \
        for (size_t i = 0; i < kc; i++) {                                                \
            const lnn_vf b0 = lnn_v_load(b + i * ldb), b1 = lnn_v_load(b + i * ldb + LNN_W); \
            REP(LNN_MM_F2)                                                               \
        }                                                                                \
        REP(LNN_MM_S2)                                                                   \
    }
#define LNN_MM_D2(r)                                                                     \
    lnn_vf p##r = first ? lnn_v_zero() : lnn_v_load(y + (r) * ldy);                      \
    lnn_vf q##r = first ? lnn_v_zero() : lnn_v_load(y + (r) * ldy + LNN_W);
#define LNN_MM_F2(r)                                                                     \
    {                                                                                    \
        const lnn_vf av = lnn_v_set1(a[(r) * lda + i]);                                  \
        p##r = lnn_v_fma(av, b0, p##r);                                                  \
        q##r = lnn_v_fma(av, b1, q##r);                                                  \
    }
#define LNN_MM_S2(r)                                                                     \
    lnn_v_store(y + (r) * ldy, p##r);                                                    \
    lnn_v_store(y + (r) * ldy + LNN_W, q##r);

/* R rows x one vector of t <= LNN_W columns */
#define LNN_MM_TILE1(NAME, REP)                                                          \
    static void NAME(const float *a, size_t lda, const float *b, size_t ldb, float *y,   \
                     size_t ldy, size_t kc, int first, size_t t)                         \
    {                                                                                    \
        REP(LNN_MM_D1)                                                                   \
        for (size_t i = 0; i < kc; i++) {                                                \
            const lnn_vf b0 = LNN_MM_LD(b + i * ldb, t);                                 \
            REP(LNN_MM_F1)                                                               \
        }                                                                                \
        REP(LNN_MM_S1)                                                                   \
    }
#define LNN_MM_D1(r) lnn_vf p##r = first ? lnn_v_zero() : LNN_MM_LD(y + (r) * ldy, t);
#define LNN_MM_F1(r) p##r = lnn_v_fma(lnn_v_set1(a[(r) * lda + i]), b0, p##r);
#define LNN_MM_S1(r) LNN_MM_ST(y + (r) * ldy, p##r, t);

LNN_MM_TILE2(LNN_SK(mm6x2), LNN_MM_REP6)
LNN_MM_TILE2(LNN_SK(mm1x2), LNN_MM_REP1)
LNN_MM_TILE1(LNN_SK(mm6x1), LNN_MM_REP6)
LNN_MM_TILE1(LNN_SK(mm1x1), LNN_MM_REP1)

void LNN_SK(matmul)(const lnn_matmul_params *p)
{
    const size_t m = p->m, k = p->k, n = p->n;
    for (size_t c = 0; c < p->count; c++) {
        const float *a = p->a + c * m * k, *b = p->b + c * p->b_step;
        float *y = p->y + c * m * n;
        for (size_t k0 = 0; k0 < k; k0 += LNN_MM_KC) {
            const size_t kc = k - k0 < LNN_MM_KC ? k - k0 : LNN_MM_KC;
            const int first = k0 == 0;
            const float *bk = b + k0 * n;
            size_t j = 0;
            for (; j + 2 * LNN_W <= n; j += 2 * LNN_W) {
                size_t r = 0;
                for (; r + LNN_MM_ROWS <= m; r += LNN_MM_ROWS)
                    LNN_SK(mm6x2)(a + r * k + k0, k, bk + j, n, y + r * n + j, n, kc, first);
                for (; r < m; r++)
                    LNN_SK(mm1x2)(a + r * k + k0, k, bk + j, n, y + r * n + j, n, kc, first);
            }
            for (; j < n; j += LNN_W) {
                const size_t t = n - j < LNN_W ? n - j : LNN_W;
                size_t r = 0;
                for (; r + LNN_MM_ROWS <= m; r += LNN_MM_ROWS)
                    LNN_SK(mm6x1)(a + r * k + k0, k, bk + j, n, y + r * n + j, n, kc, first, t);
                for (; r < m; r++)
                    LNN_SK(mm1x1)(a + r * k + k0, k, bk + j, n, y + r * n + j, n, kc, first, t);
            }
        }
    }
}

#undef LNN_SM_BLOCK
#undef LNN_MM_ROWS
#undef LNN_MM_REP6
#undef LNN_MM_REP1
#undef LNN_MM_LD
#undef LNN_MM_ST
#undef LNN_MM_TILE2
#undef LNN_MM_D2
#undef LNN_MM_F2
#undef LNN_MM_S2
#undef LNN_MM_TILE1
#undef LNN_MM_D1
#undef LNN_MM_F1
#undef LNN_MM_S1
