/*
 * kernels_scalar.c - portable C kernels: the reference every SIMD set must
 * match, and the set used where no SIMD set is compiled in.
 *
 * exp, sigmoid, tanh, log and erf do not call the C library: they run the
 * algorithm of vmath.h, operation for operation the one the SIMD sets run,
 * so that a SIMD kernel differs from its scalar reference only by fused
 * multiply-adds (AVX2, AArch64) and flushed denormals (AArch32 NEON). sqrt
 * (IEEE, exact everywhere) and pow (see POW below) do.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "vmath.h"

void lnn_linear__scalar(const lnn_linear_params *p)
{
    const size_t k = p->k, m = p->m;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        float *y = p->y + r * m;
        for (size_t j = 0; j < m; j++) {
            const float *w = p->w + j * k;
            float acc = 0.0f;
            for (size_t i = 0; i < k; i++)
                acc += x[i] * w[i];
            if (p->bias)
                acc += p->bias[j];
            y[j] = acc;
        }
    }
}

/* The transposed products (LINEAR_T, MATMUL_T and their _TQ8 forms), a y
 * row at a time. Eight columns at a time, their sums in eight variables
 * over the whole i loop (registers: a Cortex-M4 has 32 FPU ones), so each
 * weight costs a load, a multiply and an add, not also a load and a store
 * of y; the last m % 8 columns sum in y itself. Each sum runs in i order
 * (y[j] = ((0 + x0 w0j) + x1 w1j) + ...), from i = k - 1 down with reverse,
 * so the blocking does not change a bit. WEIGHT(i, j) is the weight of input
 * i and column j as a float; FINISH() the row's epilogue (bias, scales). */
#define LNN_T_REP8(M, W) M(0, W) M(1, W) M(2, W) M(3, W) M(4, W) M(5, W) M(6, W) M(7, W)
#define LNN_T_ZERO(c, W) float acc##c = 0.0f;
#define LNN_T_SUM(c, W) acc##c += xi * (W(i, j + (c)));
#define LNN_T_STORE(c, W) y[j + (c)] = acc##c;
#define LNN_T_ROWS(WEIGHT, FINISH)                                      \
    const size_t k = p->k, m = p->m;                                    \
    for (size_t r = 0; r < p->rows; r++) {                              \
        const float *x = p->x + r * k;                                  \
        float *y = p->y + r * p->ldy;                                   \
        size_t j = 0;                                                   \
        for (; j + 8 <= m; j += 8) {                                    \
            LNN_T_REP8(LNN_T_ZERO, _)                                   \
            for (size_t n = 0; n < k; n++) {                            \
                const size_t i = p->reverse ? k - 1 - n : n;            \
                const float xi = x[i];                                  \
                LNN_T_REP8(LNN_T_SUM, WEIGHT)                           \
            }                                                           \
            LNN_T_REP8(LNN_T_STORE, _)                                  \
        }                                                               \
        for (size_t c = j; c < m; c++)                                  \
            y[c] = 0.0f;                                                \
        for (size_t n = 0; n < k && j < m; n++) {                       \
            const size_t i = p->reverse ? k - 1 - n : n;                \
            const float xi = x[i];                                      \
            for (size_t c = j; c < m; c++)                              \
                y[c] += xi * (WEIGHT(i, c));                            \
        }                                                               \
        FINISH()                                                        \
    }

#define LNN_T_W(i, j) p->w[(i) * p->ldw + (j)]
#define LNN_T_BIAS()                                                    \
    if (p->bias)                                                        \
        for (size_t c = 0; c < m; c++)                                  \
            y[c] += p->bias[c];
void lnn_linear_t__scalar(const lnn_linear_t_params *p)
{
    LNN_T_ROWS(LNN_T_W, LNN_T_BIAS)
}

/* The int8 values convert to float exactly; each sum is multiplied by its
 * column's scale once, then the bias is added (kernels.h). */
void lnn_linear_q8__scalar(const lnn_linear_q8_params *p)
{
    const size_t k = p->k, m = p->m;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        float *y = p->y + r * m;
        for (size_t j = 0; j < m; j++) {
            const int8_t *q = p->q + j * k;
            float acc = 0.0f;
            for (size_t i = 0; i < k; i++)
                acc += x[i] * (float)q[i];
            acc *= p->scale[j];
            if (p->bias)
                acc += p->bias[j];
            y[j] = acc;
        }
    }
}

/* As lnn_linear_t__scalar, then each column's sum times its scale. */
#define LNN_TQ8_W(i, j) (float)p->q[(i) * p->ldq + (j)]
#define LNN_TQ8_SCALE_BIAS()                                            \
    for (size_t c = 0; c < m; c++) {                                    \
        y[c] *= p->scale[c];                                            \
        if (p->bias)                                                    \
            y[c] += p->bias[c];                                         \
    }
void lnn_linear_tq8__scalar(const lnn_linear_q8_params *p)
{
    LNN_T_ROWS(LNN_TQ8_W, LNN_TQ8_SCALE_BIAS)
}

/* LINEAR_W8A16, MATMUL_W8A16 (lnn_opcodes.def, kernels.h): exact integer
 * sums, so any order gives the same bits. No row of xq nor a sum per column
 * fits a bounded stack for every K and M, so the columns go in blocks of
 * LNN_W8A16_COLS, and for each block the row is rounded again chunk by chunk
 * (LNN_W8A16_CHUNK inputs: 256 |xq q| <= 256 * 32767 * 128 < 2^31, so a
 * chunk's sums are exact in int32, added into int64 ones). Re-rounding costs
 * k roundings per 32 columns, against 32 k multiply-adds. Stack: 512 B of xq
 * and 256 B of sums. */
enum { LNN_W8A16_CHUNK = 256, LNN_W8A16_COLS = 32 };

void lnn_linear_w8a16__scalar(const lnn_linear_w8a16_params *p)
{
    int16_t xq[LNN_W8A16_CHUNK];
    int64_t sum[LNN_W8A16_COLS];
    const size_t k = p->k, m = p->m, kp = (k + 1) / 2;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        uint32_t amax = 0; /* the largest |x| as bits: ordered like the values */
        for (size_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &x[i], sizeof u);
            u &= 0x7FFFFFFFu;
            amax = u > amax ? u : amax;
        }
        size_t d = 0;
        if (amax >= 0x7F800000u) { /* NaN or infinity: the whole row NaN */
            for (size_t j = 0; j < m; j++) { /* a run of one column: the smallest code, for a rare row */
                size_t one;
                *lnn_w8a16_run(p, r, j, j + 1, &d, &one) = NAN;
            }
            continue;
        }
        const int32_t e = lnn_w8a16_exponent(amax);
        const float s = lnn_pow2f(15 - e), pw = lnn_pow2f(e - 15);
        for (size_t j0 = 0; j0 < m; j0 += LNN_W8A16_COLS) {
            const size_t nc = m - j0 < LNN_W8A16_COLS ? m - j0 : LNN_W8A16_COLS;
            memset(sum, 0, sizeof sum);
            for (size_t i0 = 0; i0 < k; i0 += LNN_W8A16_CHUNK) {
                const size_t n = k - i0 < LNN_W8A16_CHUNK ? k - i0 : LNN_W8A16_CHUNK;
                for (size_t i = 0; i < n; i++) {
                    /* round half to even: x s is exact (a power of two) and
                     * |x s| <= 32767.5 < 2^22, so adding 1.5 * 2^23 rounds it
                     * to an integer in the low bits of the float */
                    const float t = x[i0 + i] * s + 12582912.0f;
                    uint32_t u;
                    memcpy(&u, &t, sizeof u);
                    xq[i] = (int16_t)((int32_t)u - 0x4B400000);
                }
                if (n % 2) /* odd K: the last pair's second input */
                    xq[n] = 0;
                for (size_t c = 0; c < nc; c += 2) { /* odd m: the last pair's phantom column is dropped */
                    const uint8_t *w = p->panel + 4 * (((j0 + c) / 2) * kp + i0 / 2);
                    int32_t s0 = 0, s1 = 0;
                    for (size_t t = 0; t < (n + 1) / 2; t++, w += 4) {
                        /* a half h = 256 b1 + b0 (b1 signed) decodes to
                         * q0 = sext8(b0), q1 = (h - q0) / 256 = b1 + (b0 >> 7) */
                        const int32_t a0 = xq[2 * t], a1 = xq[2 * t + 1];
                        const int32_t q00 = (int32_t)(int8_t)w[0], q01 = (int32_t)(int8_t)w[1] + (w[0] >> 7);
                        const int32_t q10 = (int32_t)(int8_t)w[2], q11 = (int32_t)(int8_t)w[3] + (w[2] >> 7);
                        s0 += a0 * q00 + a1 * q10;
                        s1 += a0 * q01 + a1 * q11;
                    }
                    sum[c] += s0;
                    sum[c + 1] += s1;
                }
            }
            lnn_w8a16_put_sums(p, r, j0, nc, sum, pw, &d);
        }
    }
}

/* POW is the C library's powf (glibc and newlib: within 1 ulp), in every
 * kernel set: exp(b log a) in float loses |b log a| ulps, and the op is rare
 * (the adaptive solvers' step-size factor, a few values per step). LE and
 * LT give 1 or 0, 0 when either operand is NaN.
 *
 * MIN and MAX: NaN when either operand is NaN (as torch.minimum and
 * maximum), else the smaller / larger value; of two zeros, v (the SIMD sets
 * compare and select the same way, so every set gives these bits). */
static float lnn_minf(float u, float v) { return u != u || v != v ? u + v : u < v ? u : v; }
static float lnn_maxf(float u, float v) { return u != u || v != v ? u + v : v < u ? u : v; }

/* One binary kernel per op; OPX(u, v) is the element operation. y may be
 * exactly a or b, so the loops read an element before writing its slot. */
#define LNN_BINARY_KERNEL(name, OPX)                                    \
    void lnn_##name##__scalar(const lnn_binary_params *p)               \
    {                                                                   \
        LNN_BINARY_LOOPS(OPX)                                           \
    }
#define LNN_BINARY_LOOPS(OPX)                                           \
    {                                                                   \
        float *y = p->y;                                                \
        const float *a = p->a, *b = p->b;                               \
        const size_t n = p->n;                                          \
        switch (p->mode) {                                              \
        case LNN_BC_SAME:                                               \
            for (size_t i = 0; i < n; i++)                              \
                y[i] = OPX(a[i], b[i]);                                 \
            break;                                                      \
        case LNN_BC_SCALAR_A: {                                         \
            const float s = a[0];                                       \
            for (size_t i = 0; i < n; i++)                              \
                y[i] = OPX(s, b[i]);                                    \
            break;                                                      \
        }                                                               \
        case LNN_BC_SCALAR_B: {                                         \
            const float s = b[0];                                       \
            for (size_t i = 0; i < n; i++)                              \
                y[i] = OPX(a[i], s);                                    \
            break;                                                      \
        }                                                               \
        case LNN_BC_ROW_A:                                              \
            for (size_t o = 0; o < n; o += p->inner)                    \
                for (size_t i = 0; i < p->inner; i++)                   \
                    y[o + i] = OPX(a[i], b[o + i]);                     \
            break;                                                      \
        case LNN_BC_ROW_B:                                              \
            for (size_t o = 0; o < n; o += p->inner)                    \
                for (size_t i = 0; i < p->inner; i++)                   \
                    y[o + i] = OPX(a[o + i], b[i]);                     \
            break;                                                      \
        case LNN_BC_GENERAL: {                                          \
            const size_t *d = p->dims, *sa = p->sa, *sb = p->sb;        \
            size_t o = 0;                                               \
            for (size_t i0 = 0; i0 < d[0]; i0++)                        \
                for (size_t i1 = 0; i1 < d[1]; i1++)                    \
                    for (size_t i2 = 0; i2 < d[2]; i2++) {              \
                        const float *pa =                               \
                            a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];   \
                        const float *pb =                               \
                            b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];   \
                        for (size_t i3 = 0; i3 < d[3]; i3++)            \
                            y[o++] = OPX(pa[i3 * sa[3]], pb[i3 * sb[3]]);    \
                    }                                                   \
            break;                                                      \
        }                                                               \
        }                                                               \
    }

#define LNN_OPX_ADD(u, v) ((u) + (v))
#define LNN_OPX_SUB(u, v) ((u) - (v))
#define LNN_OPX_MUL(u, v) ((u) * (v))
#define LNN_OPX_DIV(u, v) ((u) / (v))
#define LNN_OPX_LE(u, v) ((u) <= (v) ? 1.0f : 0.0f)
#define LNN_OPX_LT(u, v) ((u) < (v) ? 1.0f : 0.0f)
LNN_BINARY_KERNEL(add, LNN_OPX_ADD)
LNN_BINARY_KERNEL(sub, LNN_OPX_SUB)
LNN_BINARY_KERNEL(mul, LNN_OPX_MUL)
LNN_BINARY_KERNEL(div, LNN_OPX_DIV)
/* MIN ... POW: one copy of the loops over an element function (an indirect
 * call per element; outside EWISE programs, whose block kernel runs them
 * inline, these ops are rare, and five copies cost 3.5 KB on every target). */
typedef float (*lnn_elem2_fn)(float, float);
static void lnn_binary_each(const lnn_binary_params *p, lnn_elem2_fn f) LNN_BINARY_LOOPS(f)
static float lnn_lef(float u, float v) { return LNN_OPX_LE(u, v); }
static float lnn_ltf(float u, float v) { return LNN_OPX_LT(u, v); }
void lnn_min__scalar(const lnn_binary_params *p) { lnn_binary_each(p, lnn_minf); }
void lnn_max__scalar(const lnn_binary_params *p) { lnn_binary_each(p, lnn_maxf); }
void lnn_le__scalar(const lnn_binary_params *p) { lnn_binary_each(p, lnn_lef); }
void lnn_lt__scalar(const lnn_binary_params *p) { lnn_binary_each(p, lnn_ltf); }
void lnn_pow__scalar(const lnn_binary_params *p) { lnn_binary_each(p, powf); }
#undef LNN_OPX_ADD
#undef LNN_OPX_SUB
#undef LNN_OPX_MUL
#undef LNN_OPX_DIV
#undef LNN_OPX_LE
#undef LNN_OPX_LT
#undef LNN_BINARY_KERNEL
#undef LNN_BINARY_LOOPS

/* exp(x) for any x but NaN (vmath.h). Unsigned arithmetic throughout: a
 * NaN that slipped in would give garbage, never undefined behaviour. */
static float lnn_exp_core(float x)
{
    x = x < LNN_EXP_LO ? LNN_EXP_LO : x;
    x = x > LNN_EXP_HI ? LNN_EXP_HI : x;
    const float t = x * LNN_EXP_LOG2E + LNN_EXP_MAGIC;
    const float n = t - LNN_EXP_MAGIC;
    const uint32_t nb = lnn_f32_bits(t) - LNN_EXP_NBIAS; /* n + 150 */
    const uint32_t h1 = nb >> 1;                         /* n1 + 75 */
    const uint32_t h2 = nb - h1;                         /* n2 + 75 */
    float r = x - n * LNN_EXP_LN2_HI;
    r = r - n * LNN_EXP_LN2_LO;
    float p = LNN_EXP_P7;
    p = p * r + LNN_EXP_P6;
    p = p * r + LNN_EXP_P5;
    p = p * r + LNN_EXP_P4;
    p = p * r + LNN_EXP_P3;
    p = p * r + LNN_EXP_P2;
    const float e = (p * (r * r) + r) + 1.0f;
    return e * lnn_f32_from_bits((h1 + LNN_EXP_EBIAS) << 23) *
           lnn_f32_from_bits((h2 + LNN_EXP_EBIAS) << 23);
}

static float lnn_expf(float x) { return x == x ? lnn_exp_core(x) : x + x; }

static float lnn_sigmoidf(float x)
{
    if (x != x)
        return x + x;
    const float e = lnn_exp_core(-fabsf(x));
    return (x < 0.0f ? e : 1.0f) / (1.0f + e);
}

static float lnn_tanhf(float x)
{
    if (x != x)
        return x + x;
    const float a = fabsf(x);
    float t;
    if (a < LNN_TANH_SMALL) {
        const float z = a * a;
        float q = LNN_TANH_Q4;
        q = q * z + LNN_TANH_Q3;
        q = q * z + LNN_TANH_Q2;
        q = q * z + LNN_TANH_Q1;
        q = q * z + LNN_TANH_Q0;
        t = (q * z) * a + a;
    } else {
        const float e = lnn_exp_core(2.0f * (a < LNN_TANH_BIG ? a : LNN_TANH_BIG));
        t = 1.0f - 2.0f / (e + 1.0f);
    }
    return copysignf(t, x);
}

/* log(x) (vmath.h): the operations of the SIMD sets' log, which choose
 * with selects where this branches. */
static float lnn_logf(float x)
{
    if (x != x)
        return x + x;
    if (!(x > 0.0f))
        return x < 0.0f ? NAN : -INFINITY;
    if (!(x < INFINITY))
        return x;
    const int sub = x < FLT_MIN;
    const uint32_t bits = lnn_f32_bits(sub ? x * LNN_LOG_TWO23 : x);
    const uint32_t eb = bits >> 23;
    float m = lnn_f32_from_bits(bits - (eb << 23) + LNN_LOG_HALF_BITS);
    float e = (lnn_f32_from_bits(eb + LNN_LOG_TWO23_BITS) - LNN_LOG_TWO23) -
              (sub ? LNN_LOG_EBIAS + 23.0f : LNN_LOG_EBIAS);
    const int low = m < LNN_LOG_SQRTHF;
    m = (low ? m + m : m) - 1.0f;
    e = low ? e - 1.0f : e;
    const float z = m * m;
    float p = LNN_LOG_P0;
    p = p * m + LNN_LOG_P1;
    p = p * m + LNN_LOG_P2;
    p = p * m + LNN_LOG_P3;
    p = p * m + LNN_LOG_P4;
    p = p * m + LNN_LOG_P5;
    p = p * m + LNN_LOG_P6;
    p = p * m + LNN_LOG_P7;
    p = p * m + LNN_LOG_P8;
    float y = (p * m) * z;
    y = e * LNN_EXP_LN2_LO + y;
    y = y - 0.5f * z;
    const float r = m + y;
    return e * LNN_EXP_LN2_HI + r;
}

/* erf(x) (vmath.h); the SIMD sets compute both branches and select. */
static float lnn_erff(float x)
{
    if (x != x)
        return x + x;
    const float a = fabsf(x);
    float r;
    if (a < LNN_ERF_SMALL) {
        const float z = a * a;
        float p = LNN_ERF_A6;
        p = p * z + LNN_ERF_A5;
        p = p * z + LNN_ERF_A4;
        p = p * z + LNN_ERF_A3;
        p = p * z + LNN_ERF_A2;
        p = p * z + LNN_ERF_A1;
        p = p * z + LNN_ERF_A0;
        r = p * a + a * LNN_ERF_C;
    } else {
        const float c = a < LNN_ERF_BIG ? a : LNN_ERF_BIG;
        const float t = 1.0f / c;
        float q = LNN_ERF_B7;
        q = q * t + LNN_ERF_B6;
        q = q * t + LNN_ERF_B5;
        q = q * t + LNN_ERF_B4;
        q = q * t + LNN_ERF_B3;
        q = q * t + LNN_ERF_B2;
        q = q * t + LNN_ERF_B1;
        q = q * t + LNN_ERF_B0;
        r = 1.0f - lnn_exp_core(-(c * c)) * q;
    }
    return copysignf(r, x);
}

#define LNN_UNARY_KERNEL(name, FX)                                      \
    void lnn_##name##__scalar(const lnn_unary_params *p)                \
    {                                                                   \
        float *y = p->y;                                                \
        const float *x = p->x;                                          \
        for (size_t i = 0; i < p->n; i++) {                             \
            const float v = x[i];                                       \
            y[i] = FX(v);                                               \
        }                                                               \
    }

#define LNN_FX_NEG(v) (-(v))
#define LNN_FX_EXP(v) lnn_expf(v)
#define LNN_FX_SIGMOID(v) lnn_sigmoidf(v)
#define LNN_FX_TANH(v) lnn_tanhf(v)
#define LNN_FX_RELU(v) ((v) < 0.0f ? 0.0f : (v)) /* NaN passes through */
LNN_UNARY_KERNEL(neg, LNN_FX_NEG)
LNN_UNARY_KERNEL(exp, LNN_FX_EXP)
LNN_UNARY_KERNEL(sigmoid, LNN_FX_SIGMOID)
LNN_UNARY_KERNEL(tanh, LNN_FX_TANH)
LNN_UNARY_KERNEL(relu, LNN_FX_RELU)
LNN_UNARY_KERNEL(abs, fabsf)
LNN_UNARY_KERNEL(sqrt, sqrtf)
LNN_UNARY_KERNEL(log, lnn_logf)
LNN_UNARY_KERNEL(erf, lnn_erff)
#undef LNN_FX_NEG
#undef LNN_FX_EXP
#undef LNN_FX_SIGMOID
#undef LNN_FX_TANH
#undef LNN_FX_RELU
#undef LNN_UNARY_KERNEL

/* One EWISE instruction over one block (lnn_ewise_blocks): the element
 * operations of the ADD ... RELU kernels. */
static void lnn_ew_block__scalar(uint32_t code, float *y, const float *a, int sa,
                                 const float *b, int sb, size_t len)
{
#define LNN_EW2(EXPR)                                                   \
    for (size_t i = 0; i < len; i++) {                                  \
        const float u = a[sa ? 0 : i], v = b[sb ? 0 : i];               \
        y[i] = EXPR;                                                    \
    }                                                                   \
    break
#define LNN_EW1(EXPR)                                                   \
    for (size_t i = 0; i < len; i++) {                                  \
        const float u = a[sa ? 0 : i];                                  \
        y[i] = EXPR;                                                    \
    }                                                                   \
    break
    if (!lnn_ew_linked(code)) /* never: lnn_init refused the program */
        return;
    switch ((lnn_opcode)code) {
    case LNN_OP_ADD:
        LNN_EW2(u + v);
    case LNN_OP_SUB:
        LNN_EW2(u - v);
    case LNN_OP_MUL:
        LNN_EW2(u * v);
    case LNN_OP_DIV:
        LNN_EW2(u / v);
    case LNN_OP_NEG:
        LNN_EW1(-u);
    case LNN_OP_EXP:
        LNN_EW1(lnn_expf(u));
    case LNN_OP_SIGMOID:
        LNN_EW1(lnn_sigmoidf(u));
    case LNN_OP_TANH:
        LNN_EW1(lnn_tanhf(u));
    case LNN_OP_RELU:
        LNN_EW1(u < 0.0f ? 0.0f : u);
    case LNN_OP_MIN:
        LNN_EW2(lnn_minf(u, v));
    case LNN_OP_MAX:
        LNN_EW2(lnn_maxf(u, v));
    case LNN_OP_POW:
        LNN_EW2(powf(u, v));
    case LNN_OP_LE:
        LNN_EW2(u <= v ? 1.0f : 0.0f);
    case LNN_OP_LT:
        LNN_EW2(u < v ? 1.0f : 0.0f);
    case LNN_OP_ABS:
        LNN_EW1(fabsf(u));
    case LNN_OP_SQRT:
        LNN_EW1(sqrtf(u));
    case LNN_OP_LOG:
        LNN_EW1(lnn_logf(u));
    case LNN_OP_ERF:
        LNN_EW1(lnn_erff(u));
    default: /* the verifier admits no other code */
        break;
    }
#undef LNN_EW2
#undef LNN_EW1
}

void lnn_ewise__scalar(const lnn_ewise_params *p)
{
    lnn_ewise_blocks(p, lnn_ew_block__scalar);
}

void lnn_copy__scalar(const lnn_unary_params *p)
{
    if (p->y != p->x) /* the verifier allows only identical or disjoint */
        memcpy(p->y, p->x, p->n * sizeof(float));
}

void lnn_zero__scalar(const lnn_unary_params *p)
{
    for (size_t i = 0; i < p->n; i++)
        p->y[i] = 0.0f;
}

void lnn_concat__scalar(const lnn_concat_params *p)
{
    const size_t na = p->na, nb = p->nb;
    float *y = p->y;
    for (size_t o = 0; o < p->outer; o++) {
        memcpy(y, p->a + o * na, na * sizeof(float));
        memcpy(y + na, p->b + o * nb, nb * sizeof(float));
        y += na + nb;
    }
}

void lnn_where__scalar(const lnn_where_params *p)
{
    const size_t *d = p->dims, *sc = p->sc, *sa = p->sa, *sb = p->sb;
    size_t o = 0;
    for (size_t i0 = 0; i0 < d[0]; i0++)
        for (size_t i1 = 0; i1 < d[1]; i1++)
            for (size_t i2 = 0; i2 < d[2]; i2++) {
                const float *pc = p->c + i0 * sc[0] + i1 * sc[1] + i2 * sc[2];
                const float *pa = p->a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
                const float *pb = p->b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
                for (size_t i3 = 0; i3 < d[3]; i3++) {
                    const float v = pc[i3 * sc[3]] != 0.0f ? pa[i3 * sa[3]] : pb[i3 * sb[3]];
                    p->y[o++] = v;
                }
            }
}

void lnn_split__scalar(const lnn_split_params *p)
{
    const float *x = p->x;
    for (size_t r = 0; r < p->rows; r++) {
        for (size_t j = 0; j < p->n; j++) {
            memcpy(p->y[j] + r * p->cols[j], x, p->cols[j] * sizeof(float));
            x += p->cols[j];
        }
    }
}

const lnn_kernels lnn_kernels_scalar = {
    .isa = "scalar",
    .linear = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR) || LNN_OP_LINKED(MATMUL_NT), lnn_linear__scalar),
    .linear_t = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_T) || LNN_OP_LINKED(MATMUL_T), lnn_linear_t__scalar),
    .linear_q8 = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_Q8) || LNN_OP_LINKED(MATMUL_NTQ8), lnn_linear_q8__scalar),
    .linear_tq8 = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_TQ8) || LNN_OP_LINKED(MATMUL_TQ8), lnn_linear_tq8__scalar),
    LNN_W8A16_SCALAR_ENTRY
    .ewise = LNN_KERNEL_IF(LNN_EWISE_LINKED, lnn_ewise__scalar),
    .conv2d = LNN_KERNEL_IF(LNN_OP_LINKED(CONV2D), lnn_conv2d__scalar), /* kernels_graph_scalar.c */
    LNN_SCALAR_TABLE_ENTRIES
};
