/*
 * kernels_simd.h - the SIMD kernels, written once over a small vector
 * interface and instantiated by kernels_sse3.c, kernels_avx2.c,
 * kernels_avx512.c and kernels_neon.c. Not a public header: included once,
 * at the end of each.
 *
 * The including file defines LNN_SIMD_ISA (the set's name as a bare token,
 * e.g. sse3) and LNN_W (floats per vector), and these static inline
 * functions over its types lnn_vf (LNN_W floats), lnn_vi (LNN_W 32-bit
 * integers), lnn_vm (a lane mask) and lnn_vq (4 floats):
 *
 *   lnn_v_load(p) lnn_v_store(p, v)   unaligned
 *   lnn_v_set1(s) lnn_v_zero()
 *   lnn_v_add sub mul div(a, b)       IEEE: bit-exact with scalar C
 *   lnn_v_div_fast(a, b)              may be off by an ulp (armv7: Newton)
 *   lnn_v_fma(a, b, c)                a * b + c, fused or not
 *   lnn_v_fnma(a, b, c)               c - a * b, fused or not
 *   lnn_v_min max(a, b)               NaN behaviour unspecified: used only
 *                                     where it does not matter (the clamps
 *                                     before lnn_v_nan_through, softmax's
 *                                     maximum: a NaN in a line makes all
 *                                     of it NaN either way)
 *   lnn_v_pool_max(acc, e)            MAXPOOL2D's step, the scalar one's:
 *                                     e where e > acc, a NaN where e is NaN,
 *                                     else acc (a NaN in acc stays), so a
 *                                     NaN in a window gives NaN as in
 *                                     PyTorch (which NaN: not defined)
 *   lnn_v_abs(a) lnn_v_negate(a)      clear / flip the sign bit
 *   lnn_v_with_sign(y, x)             y with the sign bit of x or'ed in
 *   lnn_v_lt(a, b)                    mask of a < b (false for NaN)
 *   lnn_v_isnan(a)                    mask of NaN lanes
 *   lnn_v_select(m, a, b)             m ? a : b per lane
 *   lnn_v_bits(v) lnn_vi_float(i)     reinterpretation
 *   lnn_v_sqrt(a)                     IEEE: correctly rounded
 *   lnn_vi_set1(u) lnn_vi_add sub(a, b) lnn_vi_srl1(i) lnn_vi_srl23(i)
 *   lnn_vi_sll23(i)                   (logical shifts)
 *   lnn_v_reduce4(a, b, c, d)         lnn_vq of the four vectors' lane sums
 *   lnn_v_reduce1(a)                  float lane sum
 *   lnn_q_load(p) lnn_q_store(p, q) lnn_q_add mul(a, b)
 *   lnn_v_load_even(p)                p[0], p[2], ..., p[2 LNN_W - 2] (reads
 *                                     2 LNN_W floats from p)
 *   lnn_v_loadn(p, n) lnn_v_storen(p, v, n)
 *                                     partial vectors, 0 < n < LNN_W; the
 *                                     lanes from n on load as 0
 *   lnn_v_load_i8(p)                  LNN_W int8 at p (unaligned) as floats
 *   lnn_v_load_i8x2(p, v) lnn_v_load_i8x4(p, v)
 *                                     2 or 4 LNN_W int8 at p (unaligned) as
 *                                     floats into v[0..2) or v[0..4), in order
 *                                     (or LNN_V_LOAD_I8_EACH: made here from
 *                                     one lnn_v_load_i8 per vector)
 *
 * and, for the w8a16 product (unless it defines LNN_SIMD_LINEAR_W8A16), the
 * type lnn_vw (2 LNN_W int16 lanes: LNN_W 32-bit words of a w8a16 panel)
 * and these integer functions:
 *
 *   lnn_vi_max(a, b)                  lane max, for lanes below 2^31
 *   lnn_w_pack(a, b)                  lnn_vw of a's lanes then b's as int16
 *                                     (each in the int16 range)
 *   lnn_w_load(p) lnn_w_store(p, w)   unaligned
 *   lnn_w_loadn(p, n)                 n 32-bit words, 0 < n < LNN_W, the
 *                                     rest 0; reads nothing past them
 *   lnn_w_hi(h)                       per int16 lane: (h - sext8(h & 0xFF))
 *                                     / 256 (in [-128, 128]: 128 for
 *                                     h >= 0x7F80, no int16 wrap)
 *   lnn_w_madd(acc, x, q)             acc plus x[i] q[i] summed in int32
 *                                     lanes modulo 2^32, any pairing of
 *                                     the 2 LNN_W products onto LNN_W lanes
 *   lnn_w_sum4(a, b, c, d, s)         s[0..4) = the lane sums of a .. d
 *
 * It may define the tuning knobs LNN_LT_ROWS, LNN_LT_COLS (LINEAR_T),
 * LNN_MM_KC (MATMUL), LNN_SIMD_LINEAR (another set's LINEAR for its
 * table, see there), LNN_SIMD_LINEAR_W8A16 (the set's own w8a16 product),
 * LNN_SIMD_LINEAR_TQ8 (its own linear_tq8)
 * and LNN_W8_VECTOR_FINISH (where lnn_v_fma rounds once and lnn_v_mul keeps
 * subnormals, as fmaf and C's multiply: the w8a16 product's scale and bias
 * in vectors; elsewhere lnn_fmaf per column).
 *
 * Tails: every loop ends with one partial vector (lnn_v_loadn / storen), so
 * the last elements get the same arithmetic as the others.
 */
#ifndef LNN_SIMD_ISA
#error "kernels_simd.h is included by a kernels_<isa>.c after its vector interface"
#endif

#include <float.h>
#include <math.h>

#include "internal.h"
#include "vmath.h"

#define LNN_SK3(k, isa) lnn_##k##__##isa
#define LNN_SK2(k, isa) LNN_SK3(k, isa)
#define LNN_SK(k) LNN_SK2(k, LNN_SIMD_ISA) /* LNN_SK(add) -> lnn_add__sse3 */
#define LNN_SKT2(isa) lnn_kernels_##isa
#define LNN_SKT(isa) LNN_SKT2(isa)
#define LNN_SSTR2(isa) #isa
#define LNN_SSTR(isa) LNN_SSTR2(isa)

#ifdef LNN_V_LOAD_I8_EACH
static inline void lnn_v_load_i8x2(const int8_t *p, lnn_vf *v)
{
    v[0] = lnn_v_load_i8(p);
    v[1] = lnn_v_load_i8(p + LNN_W);
}
static inline void lnn_v_load_i8x4(const int8_t *p, lnn_vf *v)
{
    lnn_v_load_i8x2(p, v);
    lnn_v_load_i8x2(p + 2 * LNN_W, v + 2);
}
#endif

/* ---- exp, sigmoid, tanh (vmath.h) ----------------------------------------- */

/* exp for every lane but NaN ones (which give garbage), in three stages
 * (lnn_v_exp_core runs them in a row; a kernel may run them in separate
 * passes over a block, the same operations):
 *   reduce  x clamped, t = x / ln 2 + MAGIC (n in its bits), r = x - n ln 2
 *   poly    e^r = 1 + r + r^2 P(r)
 *   scale   e^r * 2^n1 * 2^n2 */
static inline lnn_vf lnn_v_exp_reduce(lnn_vf x, lnn_vf *t_out)
{
    x = lnn_v_max(x, lnn_v_set1(LNN_EXP_LO));
    x = lnn_v_min(x, lnn_v_set1(LNN_EXP_HI));
    /* multiply and add apart, as in the scalar kernel: the same n */
    const lnn_vf t = lnn_v_add(lnn_v_mul(x, lnn_v_set1(LNN_EXP_LOG2E)),
                               lnn_v_set1(LNN_EXP_MAGIC));
    const lnn_vf n = lnn_v_sub(t, lnn_v_set1(LNN_EXP_MAGIC));
    lnn_vf r = lnn_v_fnma(n, lnn_v_set1(LNN_EXP_LN2_HI), x);
    r = lnn_v_fnma(n, lnn_v_set1(LNN_EXP_LN2_LO), r);
    *t_out = t;
    return r;
}

static inline lnn_vf lnn_v_exp_poly(lnn_vf r)
{
    lnn_vf p = lnn_v_set1(LNN_EXP_P7);
    p = lnn_v_fma(p, r, lnn_v_set1(LNN_EXP_P6));
    p = lnn_v_fma(p, r, lnn_v_set1(LNN_EXP_P5));
    p = lnn_v_fma(p, r, lnn_v_set1(LNN_EXP_P4));
    p = lnn_v_fma(p, r, lnn_v_set1(LNN_EXP_P3));
    p = lnn_v_fma(p, r, lnn_v_set1(LNN_EXP_P2));
    const lnn_vf e = lnn_v_fma(p, lnn_v_mul(r, r), r);
    return lnn_v_add(e, lnn_v_set1(1.0f));
}

static inline lnn_vf lnn_v_exp_scale(lnn_vf e, lnn_vf t)
{
    const lnn_vi nb = lnn_vi_sub(lnn_v_bits(t), lnn_vi_set1(LNN_EXP_NBIAS));
    const lnn_vi h1 = lnn_vi_srl1(nb);
    const lnn_vi h2 = lnn_vi_sub(nb, h1);
    const lnn_vi eb = lnn_vi_set1(LNN_EXP_EBIAS);
    const lnn_vf s1 = lnn_vi_float(lnn_vi_sll23(lnn_vi_add(h1, eb)));
    const lnn_vf s2 = lnn_vi_float(lnn_vi_sll23(lnn_vi_add(h2, eb)));
    return lnn_v_mul(lnn_v_mul(e, s1), s2);
}

static inline lnn_vf lnn_v_exp_core(lnn_vf x)
{
    lnn_vf t;
    const lnn_vf r = lnn_v_exp_reduce(x, &t);
    return lnn_v_exp_scale(lnn_v_exp_poly(r), t);
}

static inline lnn_vf lnn_v_nan_through(lnn_vf x, lnn_vf y)
{
    return lnn_v_select(lnn_v_isnan(x), lnn_v_add(x, x), y);
}

static inline lnn_vf lnn_v_exp(lnn_vf x)
{
    return lnn_v_nan_through(x, lnn_v_exp_core(x));
}

/* sigmoid(x) from e = exp(-|x|) (vmath.h) */
static inline lnn_vf lnn_v_sigmoid_of(lnn_vf x, lnn_vf e)
{
    const lnn_vf one = lnn_v_set1(1.0f);
    const lnn_vf num = lnn_v_select(lnn_v_lt(x, lnn_v_zero()), e, one);
    return lnn_v_nan_through(x, lnn_v_div_fast(num, lnn_v_add(one, e)));
}

static inline lnn_vf lnn_v_sigmoid(lnn_vf x)
{
    return lnn_v_sigmoid_of(x, lnn_v_exp_core(lnn_v_negate(lnn_v_abs(x))));
}

static inline lnn_vf lnn_v_tanh(lnn_vf x)
{
    const lnn_vf a = lnn_v_abs(x);
    const lnn_vf z = lnn_v_mul(a, a);
    lnn_vf q = lnn_v_set1(LNN_TANH_Q4);
    q = lnn_v_fma(q, z, lnn_v_set1(LNN_TANH_Q3));
    q = lnn_v_fma(q, z, lnn_v_set1(LNN_TANH_Q2));
    q = lnn_v_fma(q, z, lnn_v_set1(LNN_TANH_Q1));
    q = lnn_v_fma(q, z, lnn_v_set1(LNN_TANH_Q0));
    const lnn_vf small = lnn_v_fma(lnn_v_mul(q, z), a, a);
    const lnn_vf ac = lnn_v_min(a, lnn_v_set1(LNN_TANH_BIG));
    const lnn_vf e = lnn_v_exp_core(lnn_v_mul(lnn_v_set1(2.0f), ac));
    const lnn_vf big = lnn_v_sub(
        lnn_v_set1(1.0f),
        lnn_v_div_fast(lnn_v_set1(2.0f), lnn_v_add(e, lnn_v_set1(1.0f))));
    const lnn_vf t =
        lnn_v_select(lnn_v_lt(a, lnn_v_set1(LNN_TANH_SMALL)), small, big);
    return lnn_v_nan_through(x, lnn_v_with_sign(t, x));
}

static inline lnn_vf lnn_v_relu(lnn_vf x)
{
    return lnn_v_select(lnn_v_lt(x, lnn_v_zero()), lnn_v_zero(), x);
}

/* log (vmath.h): the scalar kernel's operations, its branches as selects */
static inline lnn_vf lnn_v_log(lnn_vf x)
{
    const lnn_vf zero = lnn_v_zero(), one = lnn_v_set1(1.0f);
    const lnn_vm sub = lnn_v_lt(x, lnn_v_set1(FLT_MIN));
    const lnn_vf xs = lnn_v_select(sub, lnn_v_mul(x, lnn_v_set1(LNN_LOG_TWO23)), x);
    const lnn_vi bits = lnn_v_bits(xs);
    const lnn_vi eb = lnn_vi_srl23(bits);
    lnn_vf m = lnn_vi_float(lnn_vi_add(lnn_vi_sub(bits, lnn_vi_sll23(eb)),
                                       lnn_vi_set1(LNN_LOG_HALF_BITS)));
    lnn_vf e = lnn_v_sub(lnn_v_sub(lnn_vi_float(lnn_vi_add(eb, lnn_vi_set1(LNN_LOG_TWO23_BITS))),
                                   lnn_v_set1(LNN_LOG_TWO23)),
                         lnn_v_select(sub, lnn_v_set1(LNN_LOG_EBIAS + 23.0f),
                                      lnn_v_set1(LNN_LOG_EBIAS)));
    const lnn_vm low = lnn_v_lt(m, lnn_v_set1(LNN_LOG_SQRTHF));
    m = lnn_v_sub(lnn_v_select(low, lnn_v_add(m, m), m), one);
    e = lnn_v_select(low, lnn_v_sub(e, one), e);
    const lnn_vf z = lnn_v_mul(m, m);
    lnn_vf p = lnn_v_set1(LNN_LOG_P0);
    p = lnn_v_fma(p, m, lnn_v_set1(LNN_LOG_P1));
    p = lnn_v_fma(p, m, lnn_v_set1(LNN_LOG_P2));
    p = lnn_v_fma(p, m, lnn_v_set1(LNN_LOG_P3));
    p = lnn_v_fma(p, m, lnn_v_set1(LNN_LOG_P4));
    p = lnn_v_fma(p, m, lnn_v_set1(LNN_LOG_P5));
    p = lnn_v_fma(p, m, lnn_v_set1(LNN_LOG_P6));
    p = lnn_v_fma(p, m, lnn_v_set1(LNN_LOG_P7));
    p = lnn_v_fma(p, m, lnn_v_set1(LNN_LOG_P8));
    lnn_vf y = lnn_v_mul(lnn_v_mul(p, m), z);
    y = lnn_v_fma(e, lnn_v_set1(LNN_EXP_LN2_LO), y);
    y = lnn_v_fnma(lnn_v_set1(0.5f), z, y);
    const lnn_vf r = lnn_v_fma(e, lnn_v_set1(LNN_EXP_LN2_HI), lnn_v_add(m, y));
    /* x <= 0: NaN below 0, -inf at +-0; +inf: itself; NaN: itself. The
     * signs are xs's: where AArch32 NEON flushes a denormal x (its product
     * is 0) the result is log(0), as for the flushed input. */
    const lnn_vf edge = lnn_v_select(lnn_v_lt(xs, zero), lnn_v_set1(NAN), lnn_v_set1(-INFINITY));
    const lnn_vf pos = lnn_v_select(lnn_v_lt(x, lnn_v_set1(INFINITY)), r, x);
    return lnn_v_nan_through(x, lnn_v_select(lnn_v_lt(zero, xs), pos, edge));
}

/* erf (vmath.h): both of the scalar kernel's branches, then a select */
static inline lnn_vf lnn_v_erf(lnn_vf x)
{
    const lnn_vf a = lnn_v_abs(x);
    const lnn_vf z = lnn_v_mul(a, a);
    lnn_vf p = lnn_v_set1(LNN_ERF_A6);
    p = lnn_v_fma(p, z, lnn_v_set1(LNN_ERF_A5));
    p = lnn_v_fma(p, z, lnn_v_set1(LNN_ERF_A4));
    p = lnn_v_fma(p, z, lnn_v_set1(LNN_ERF_A3));
    p = lnn_v_fma(p, z, lnn_v_set1(LNN_ERF_A2));
    p = lnn_v_fma(p, z, lnn_v_set1(LNN_ERF_A1));
    p = lnn_v_fma(p, z, lnn_v_set1(LNN_ERF_A0));
    const lnn_vf small = lnn_v_fma(p, a, lnn_v_mul(a, lnn_v_set1(LNN_ERF_C)));
    const lnn_vf c = lnn_v_min(a, lnn_v_set1(LNN_ERF_BIG));
    const lnn_vf t = lnn_v_div(lnn_v_set1(1.0f), c);
    lnn_vf q = lnn_v_set1(LNN_ERF_B7);
    q = lnn_v_fma(q, t, lnn_v_set1(LNN_ERF_B6));
    q = lnn_v_fma(q, t, lnn_v_set1(LNN_ERF_B5));
    q = lnn_v_fma(q, t, lnn_v_set1(LNN_ERF_B4));
    q = lnn_v_fma(q, t, lnn_v_set1(LNN_ERF_B3));
    q = lnn_v_fma(q, t, lnn_v_set1(LNN_ERF_B2));
    q = lnn_v_fma(q, t, lnn_v_set1(LNN_ERF_B1));
    q = lnn_v_fma(q, t, lnn_v_set1(LNN_ERF_B0));
    const lnn_vf e = lnn_v_exp_core(lnn_v_negate(lnn_v_mul(c, c)));
    const lnn_vf big = lnn_v_fnma(e, q, lnn_v_set1(1.0f));
    const lnn_vf r = lnn_v_select(lnn_v_lt(a, lnn_v_set1(LNN_ERF_SMALL)), small, big);
    return lnn_v_nan_through(x, lnn_v_with_sign(r, x));
}

/* MIN / MAX as the scalar kernels: compare and select (a < b ? a : b, of
 * two zeros b), NaN when either lane is NaN. The sets' own min / max
 * instructions differ on NaN and on the sign of zero. */
static inline lnn_vf lnn_v_nan2(lnn_vf a, lnn_vf b, lnn_vf y)
{
    const lnn_vf s = lnn_v_add(a, b);
    return lnn_v_select(lnn_v_isnan(a), s, lnn_v_select(lnn_v_isnan(b), s, y));
}
static inline lnn_vf lnn_v_minimum(lnn_vf a, lnn_vf b)
{
    return lnn_v_nan2(a, b, lnn_v_select(lnn_v_lt(a, b), a, b));
}
static inline lnn_vf lnn_v_maximum(lnn_vf a, lnn_vf b)
{
    return lnn_v_nan2(a, b, lnn_v_select(lnn_v_lt(b, a), a, b));
}

/* ---- element-wise ------------------------------------------------------------- */

/* y[i] = f(x[i]); y may be exactly x (each vector is read before written). */
#define LNN_SIMD_UNARY(name, VF)                                         \
    void LNN_SK(name)(const lnn_unary_params *p)                         \
    {                                                                    \
        float *y = p->y;                                                 \
        const float *x = p->x;                                           \
        const size_t n = p->n;                                           \
        size_t i = 0;                                                    \
        for (; i + LNN_W <= n; i += LNN_W)                               \
            lnn_v_store(y + i, VF(lnn_v_load(x + i)));                   \
        if (i < n)                                                       \
            lnn_v_storen(y + i, VF(lnn_v_loadn(x + i, n - i)), n - i);   \
    }

LNN_SIMD_UNARY(neg, lnn_v_negate)
LNN_SIMD_UNARY(exp, lnn_v_exp)
LNN_SIMD_UNARY(sigmoid, lnn_v_sigmoid)
LNN_SIMD_UNARY(tanh, lnn_v_tanh)
LNN_SIMD_UNARY(relu, lnn_v_relu)
LNN_SIMD_UNARY(abs, lnn_v_abs)
LNN_SIMD_UNARY(sqrt, lnn_v_sqrt)
LNN_SIMD_UNARY(log, lnn_v_log)
LNN_SIMD_UNARY(erf, lnn_v_erf)
#undef LNN_SIMD_UNARY

/* y[i] = a[i] op b[i] over n elements, with a (SA) or b (SB) one value
 * broadcast; y may be exactly a or b. */
#define LNN_SIMD_BINARY_LOOP(VOP, y, a, b, n, SA, SB)                          \
    do {                                                                       \
        size_t i_ = 0;                                                         \
        for (; i_ + LNN_W <= (n); i_ += LNN_W)                                 \
            lnn_v_store((y) + i_,                                              \
                        VOP(SA ? va_ : lnn_v_load((a) + i_),                   \
                            SB ? vb_ : lnn_v_load((b) + i_)));                 \
        if (i_ < (n)) {                                                        \
            const size_t r_ = (n) - i_;                                        \
            lnn_v_storen((y) + i_,                                             \
                         VOP(SA ? va_ : lnn_v_loadn((a) + i_, r_),             \
                             SB ? vb_ : lnn_v_loadn((b) + i_, r_)),            \
                         r_);                                                  \
        }                                                                      \
    } while (0)

/* The GENERAL (rank-4 strided) plan runs the scalar kernel. */
#define LNN_SIMD_BINARY(name, VOP)                                             \
    void LNN_SK(name)(const lnn_binary_params *p)                              \
    {                                                                          \
        float *y = p->y;                                                       \
        const float *a = p->a, *b = p->b;                                      \
        const size_t n = p->n, inner = p->inner;                               \
        switch (p->mode) {                                                     \
        case LNN_BC_SAME: {                                                    \
            const lnn_vf va_ = lnn_v_zero(), vb_ = va_;                        \
            LNN_SIMD_BINARY_LOOP(VOP, y, a, b, n, 0, 0);                       \
            break;                                                             \
        }                                                                      \
        case LNN_BC_SCALAR_A: {                                                \
            const lnn_vf va_ = lnn_v_set1(a[0]), vb_ = va_;                    \
            LNN_SIMD_BINARY_LOOP(VOP, y, a, b, n, 1, 0);                       \
            break;                                                             \
        }                                                                      \
        case LNN_BC_SCALAR_B: {                                                \
            const lnn_vf vb_ = lnn_v_set1(b[0]), va_ = vb_;                    \
            LNN_SIMD_BINARY_LOOP(VOP, y, a, b, n, 0, 1);                       \
            break;                                                             \
        }                                                                      \
        case LNN_BC_ROW_A: {                                                   \
            const lnn_vf va_ = lnn_v_zero(), vb_ = va_;                        \
            for (size_t o = 0; o < n; o += inner)                              \
                LNN_SIMD_BINARY_LOOP(VOP, y + o, a, b + o, inner, 0, 0);       \
            break;                                                             \
        }                                                                      \
        case LNN_BC_ROW_B: {                                                   \
            const lnn_vf va_ = lnn_v_zero(), vb_ = va_;                        \
            for (size_t o = 0; o < n; o += inner)                              \
                LNN_SIMD_BINARY_LOOP(VOP, y + o, a + o, b, inner, 0, 0);       \
            break;                                                             \
        }                                                                      \
        case LNN_BC_GENERAL:                                                   \
            lnn_##name##__scalar(p);                                           \
            break;                                                             \
        }                                                                      \
    }

LNN_SIMD_BINARY(add, lnn_v_add)
LNN_SIMD_BINARY(sub, lnn_v_sub)
LNN_SIMD_BINARY(mul, lnn_v_mul)
LNN_SIMD_BINARY(div, lnn_v_div)
LNN_SIMD_BINARY(min, lnn_v_minimum)
LNN_SIMD_BINARY(max, lnn_v_maximum)
#undef LNN_SIMD_BINARY
#undef LNN_SIMD_BINARY_LOOP

/* ---- LINEAR / MATMUL_NT ---------------------------------------------------------- */

/* A set may take another set's LINEAR instead (LNN_SIMD_LINEAR, the
 * function for its table), where that one is faster: then this section is
 * not compiled. */
#ifndef LNN_SIMD_LINEAR
#define LNN_SIMD_LINEAR LNN_SK(linear)

/* Register-blocked dot products: x rows and w rows are both contiguous in k,
 * so each tile keeps one vector accumulator per (row, output), walks k a
 * vector at a time (the last, partial, vector zero-padded), reduces the
 * lanes at the end and adds the bias last, as the scalar kernel does.
 *   batch 1:  tiles of 1 row x 8 outputs (8 independent chains), then 4, 1
 *   batch >1: tiles of 2 rows x 4 outputs (each w vector used twice), then
 *             2 x 1; an odd last row goes through the batch-1 path. */

#define LNN_REP4(M) M(0) M(1) M(2) M(3)
#define LNN_REP8(M) LNN_REP4(M) M(4) M(5) M(6) M(7)
/* one row: accumulator c for output row w0 + c * k */
#define LNN_A1_DECL(c) lnn_vf acc##c = lnn_v_zero();
#define LNN_A1_BODY(c) acc##c = lnn_v_fma(xv, lnn_v_load(w0 + (c) * k + i), acc##c);
#define LNN_A1_TAIL(c) \
    acc##c = lnn_v_fma(xv, lnn_v_loadn(w0 + (c) * k + kv, kt), acc##c);
/* two rows: accumulators a<c> (row 0) and b<c> (row 1) share the w vector */
#define LNN_A2_DECL(c) lnn_vf a##c = lnn_v_zero(), b##c = lnn_v_zero();
#define LNN_A2_BODY(c)                                      \
    {                                                       \
        const lnn_vf wv = lnn_v_load(w0 + (c) * k + i);     \
        a##c = lnn_v_fma(xv0, wv, a##c);                    \
        b##c = lnn_v_fma(xv1, wv, b##c);                    \
    }
#define LNN_A2_TAIL(c)                                           \
    {                                                            \
        const lnn_vf wv = lnn_v_loadn(w0 + (c) * k + kv, kt);    \
        a##c = lnn_v_fma(xv0, wv, a##c);                         \
        b##c = lnn_v_fma(xv1, wv, b##c);                         \
    }

/* One row of x into y[0, m). */
static void lnn_linear_row1(const float *x, const float *w, const float *bias,
                            float *y, size_t k, size_t m)
{
    const size_t kv = k - k % LNN_W, kt = k - kv;
    size_t j = 0;
    for (; j + 8 <= m; j += 8) {
        const float *w0 = w + j * k;
        LNN_REP8(LNN_A1_DECL)
        for (size_t i = 0; i < kv; i += LNN_W) {
            const lnn_vf xv = lnn_v_load(x + i);
            LNN_REP8(LNN_A1_BODY)
        }
        if (kt) {
            const lnn_vf xv = lnn_v_loadn(x + kv, kt);
            LNN_REP8(LNN_A1_TAIL)
        }
        lnn_vq q0 = lnn_v_reduce4(acc0, acc1, acc2, acc3);
        lnn_vq q1 = lnn_v_reduce4(acc4, acc5, acc6, acc7);
        if (bias) {
            q0 = lnn_q_add(q0, lnn_q_load(bias + j));
            q1 = lnn_q_add(q1, lnn_q_load(bias + j + 4));
        }
        lnn_q_store(y + j, q0);
        lnn_q_store(y + j + 4, q1);
    }
    for (; j + 4 <= m; j += 4) {
        const float *w0 = w + j * k;
        LNN_REP4(LNN_A1_DECL)
        for (size_t i = 0; i < kv; i += LNN_W) {
            const lnn_vf xv = lnn_v_load(x + i);
            LNN_REP4(LNN_A1_BODY)
        }
        if (kt) {
            const lnn_vf xv = lnn_v_loadn(x + kv, kt);
            LNN_REP4(LNN_A1_TAIL)
        }
        lnn_vq q0 = lnn_v_reduce4(acc0, acc1, acc2, acc3);
        if (bias)
            q0 = lnn_q_add(q0, lnn_q_load(bias + j));
        lnn_q_store(y + j, q0);
    }
    for (; j < m; j++) {
        const float *w0 = w + j * k;
        LNN_A1_DECL(0)
        for (size_t i = 0; i < kv; i += LNN_W) {
            const lnn_vf xv = lnn_v_load(x + i);
            LNN_A1_BODY(0)
        }
        if (kt) {
            const lnn_vf xv = lnn_v_loadn(x + kv, kt);
            LNN_A1_TAIL(0)
        }
        float s = lnn_v_reduce1(acc0);
        if (bias)
            s += bias[j];
        y[j] = s;
    }
}

/* Two rows of x (x, x + k) into y[0, m) and y[m, 2m). */
static void lnn_linear_row2(const float *x, const float *w, const float *bias,
                            float *y, size_t k, size_t m)
{
    const size_t kv = k - k % LNN_W, kt = k - kv;
    const float *x1 = x + k;
    size_t j = 0;
    for (; j + 4 <= m; j += 4) {
        const float *w0 = w + j * k;
        LNN_REP4(LNN_A2_DECL)
        for (size_t i = 0; i < kv; i += LNN_W) {
            const lnn_vf xv0 = lnn_v_load(x + i), xv1 = lnn_v_load(x1 + i);
            LNN_REP4(LNN_A2_BODY)
        }
        if (kt) {
            const lnn_vf xv0 = lnn_v_loadn(x + kv, kt);
            const lnn_vf xv1 = lnn_v_loadn(x1 + kv, kt);
            LNN_REP4(LNN_A2_TAIL)
        }
        lnn_vq q0 = lnn_v_reduce4(a0, a1, a2, a3);
        lnn_vq q1 = lnn_v_reduce4(b0, b1, b2, b3);
        if (bias) {
            const lnn_vq bq = lnn_q_load(bias + j);
            q0 = lnn_q_add(q0, bq);
            q1 = lnn_q_add(q1, bq);
        }
        lnn_q_store(y + j, q0);
        lnn_q_store(y + m + j, q1);
    }
    for (; j < m; j++) {
        const float *w0 = w + j * k;
        LNN_A2_DECL(0)
        for (size_t i = 0; i < kv; i += LNN_W) {
            const lnn_vf xv0 = lnn_v_load(x + i), xv1 = lnn_v_load(x1 + i);
            LNN_A2_BODY(0)
        }
        if (kt) {
            const lnn_vf xv0 = lnn_v_loadn(x + kv, kt);
            const lnn_vf xv1 = lnn_v_loadn(x1 + kv, kt);
            LNN_A2_TAIL(0)
        }
        float s0 = lnn_v_reduce1(a0), s1 = lnn_v_reduce1(b0);
        if (bias) {
            s0 += bias[j];
            s1 += bias[j];
        }
        y[j] = s0;
        y[m + j] = s1;
    }
}

#undef LNN_REP4
#undef LNN_REP8
#undef LNN_A1_DECL
#undef LNN_A1_BODY
#undef LNN_A1_TAIL
#undef LNN_A2_DECL
#undef LNN_A2_BODY
#undef LNN_A2_TAIL

void LNN_SK(linear)(const lnn_linear_params *p)
{
    const size_t k = p->k, m = p->m, rows = p->rows;
    size_t r = 0;
    for (; r + 2 <= rows; r += 2)
        lnn_linear_row2(p->x + r * k, p->w, p->bias, p->y + r * m, k, m);
    if (r < rows)
        lnn_linear_row1(p->x + r * k, p->w, p->bias, p->y + r * m, k, m);
}
#endif /* LNN_SIMD_LINEAR */

/* ---- LINEAR_T / MATMUL_T ---------------------------------------------------------- */

/* Outer products over the transposed weight: for each i, x[r][i] broadcast
 * times the row i of w, added into vector accumulators of y's columns, so
 * there is no lane reduction and each column sums in i order like the
 * scalar kernel (fused where the ISA fuses); bias added last.
 *   one row (batch 1 and leftover rows): 8 vectors of columns at a time (8
 *            independent chains), then 4, 2, 1 and a partial vector;
 *   LNN_LT_ROWS rows: tiles of LNN_LT_ROWS rows x 2 vectors (each w vector
 *            used LNN_LT_ROWS times), then x 1 and x a partial vector. */
#ifndef LNN_LT_ROWS
#define LNN_LT_ROWS 6
#endif
#if LNN_LT_ROWS != 4 && LNN_LT_ROWS != 6
#error "LNN_LT_ROWS is 4 or 6"
#endif
/* vectors of columns per LNN_LT_ROWS-row tile: 2, or 4 first where the set
 * has 32 vector registers (6 x 4 accumulators) */
#ifndef LNN_LT_COLS
#define LNN_LT_COLS 2
#endif
#if LNN_LT_COLS != 2 && LNN_LT_COLS != 4
#error "LNN_LT_COLS is 2 or 4"
#endif

#define LNN_REPC1(M) M(0)
#define LNN_REPC2(M) M(0) M(1)
#define LNN_REPC4(M) M(0) M(1) M(2) M(3)
#define LNN_REPC8(M) LNN_REPC4(M) M(4) M(5) M(6) M(7)
#define LNN_T1_DECL(c) lnn_vf acc##c = lnn_v_zero();
#define LNN_T1_BODY(c) acc##c = lnn_v_fma(xv, lnn_v_load(wi + (c) * LNN_W), acc##c);
#define LNN_T1_STORE(c)                                                     \
    if (bias)                                                               \
        acc##c = lnn_v_add(acc##c, lnn_v_load(bias + j + (c) * LNN_W));     \
    lnn_v_store(y + j + (c) * LNN_W, acc##c);
/* columns [j, j + NV vectors) of one row; x and w are the first row of the
 * sum (the last one when reversed), dx and dw the steps to the next */
#define LNN_T1_TILE(NV, REP)                                                \
    for (; j + (NV) * LNN_W <= m; j += (NV) * LNN_W) {                      \
        REP(LNN_T1_DECL)                                                    \
        const float *wi = w + j, *xi = x;                                   \
        for (size_t n = 0; n < k; n++, wi += dw, xi += dx) {                \
            const lnn_vf xv = lnn_v_set1(*xi);                              \
            REP(LNN_T1_BODY)                                                \
        }                                                                   \
        REP(LNN_T1_STORE)                                                   \
    }

static void lnn_lt_row1(const float *x, const float *w, const float *bias, float *y,
                        size_t k, size_t m, ptrdiff_t dw, ptrdiff_t dx)
{
    size_t j = 0;
    LNN_T1_TILE(8, LNN_REPC8)
    LNN_T1_TILE(4, LNN_REPC4)
    LNN_T1_TILE(2, LNN_REPC2)
    LNN_T1_TILE(1, LNN_REPC1)
    if (j < m) {
        const size_t t = m - j;
        lnn_vf acc = lnn_v_zero();
        const float *wi = w + j, *xi = x;
        for (size_t n = 0; n < k; n++, wi += dw, xi += dx)
            acc = lnn_v_fma(lnn_v_set1(*xi), lnn_v_loadn(wi, t), acc);
        if (bias)
            acc = lnn_v_add(acc, lnn_v_loadn(bias + j, t));
        lnn_v_storen(y + j, acc, t);
    }
}

/* LNN_LT_ROWS rows: accumulators a<r>_<c> for row r, column vector c */
#if LNN_LT_ROWS == 6
#define LNN_REPR(M, c) M(0, c) M(1, c) M(2, c) M(3, c) M(4, c) M(5, c)
#else
#define LNN_REPR(M, c) M(0, c) M(1, c) M(2, c) M(3, c)
#endif
#define LNN_TR_DECL(r, c) lnn_vf a##r##_##c = lnn_v_zero();
#define LNN_TR_FMA(r, c) a##r##_##c = lnn_v_fma(lnn_v_set1(xi[(r) * k]), w##c, a##r##_##c);
#define LNN_TR_FMA2(r, c)                                   \
    {                                                       \
        const lnn_vf xv = lnn_v_set1(xi[(r) * k]);          \
        a##r##_0 = lnn_v_fma(xv, w0, a##r##_0);             \
        a##r##_1 = lnn_v_fma(xv, w1, a##r##_1);             \
    }
#define LNN_TR_FMA4(r, c)                                   \
    {                                                       \
        const lnn_vf xv = lnn_v_set1(xi[(r) * k]);          \
        a##r##_0 = lnn_v_fma(xv, w0, a##r##_0);             \
        a##r##_1 = lnn_v_fma(xv, w1, a##r##_1);             \
        a##r##_2 = lnn_v_fma(xv, w2, a##r##_2);             \
        a##r##_3 = lnn_v_fma(xv, w3, a##r##_3);             \
    }
#define LNN_TR_STORE(r, c)                                  \
    if (bias)                                               \
        a##r##_##c = lnn_v_add(a##r##_##c, b##c);           \
    lnn_v_store(y + (r) * ldy + j + (c) * LNN_W, a##r##_##c);
#define LNN_TR_STOREN(r, c)                                 \
    if (bias)                                               \
        a##r##_##c = lnn_v_add(a##r##_##c, b##c);           \
    lnn_v_storen(y + (r) * ldy + j, a##r##_##c, t);

/* LNN_LT_ROWS rows of x (k apart) into rows of y (ldy apart); x and w at
 * the first row of the sum, dx and dw the steps (as lnn_lt_row1). */
static void lnn_lt_rows(const float *x, const float *w, const float *bias, float *y,
                        size_t k, size_t m, ptrdiff_t dw, ptrdiff_t dx, size_t ldy)
{
    size_t j = 0;
#if LNN_LT_COLS == 4
    for (; j + 4 * LNN_W <= m; j += 4 * LNN_W) {
        LNN_REPR(LNN_TR_DECL, 0)
        LNN_REPR(LNN_TR_DECL, 1)
        LNN_REPR(LNN_TR_DECL, 2)
        LNN_REPR(LNN_TR_DECL, 3)
        const float *wi = w + j, *xi = x;
        for (size_t n = 0; n < k; n++, wi += dw, xi += dx) {
            const lnn_vf w0 = lnn_v_load(wi), w1 = lnn_v_load(wi + LNN_W);
            const lnn_vf w2 = lnn_v_load(wi + 2 * LNN_W), w3 = lnn_v_load(wi + 3 * LNN_W);
            LNN_REPR(LNN_TR_FMA4, 0)
        }
        const lnn_vf b0 = bias ? lnn_v_load(bias + j) : lnn_v_zero();
        const lnn_vf b1 = bias ? lnn_v_load(bias + j + LNN_W) : lnn_v_zero();
        const lnn_vf b2 = bias ? lnn_v_load(bias + j + 2 * LNN_W) : lnn_v_zero();
        const lnn_vf b3 = bias ? lnn_v_load(bias + j + 3 * LNN_W) : lnn_v_zero();
        LNN_REPR(LNN_TR_STORE, 0)
        LNN_REPR(LNN_TR_STORE, 1)
        LNN_REPR(LNN_TR_STORE, 2)
        LNN_REPR(LNN_TR_STORE, 3)
    }
#endif
    for (; j + 2 * LNN_W <= m; j += 2 * LNN_W) {
        LNN_REPR(LNN_TR_DECL, 0)
        LNN_REPR(LNN_TR_DECL, 1)
        const float *wi = w + j, *xi = x;
        for (size_t n = 0; n < k; n++, wi += dw, xi += dx) {
            const lnn_vf w0 = lnn_v_load(wi), w1 = lnn_v_load(wi + LNN_W);
            LNN_REPR(LNN_TR_FMA2, 0)
        }
        const lnn_vf b0 = bias ? lnn_v_load(bias + j) : lnn_v_zero();
        const lnn_vf b1 = bias ? lnn_v_load(bias + j + LNN_W) : lnn_v_zero();
        LNN_REPR(LNN_TR_STORE, 0)
        LNN_REPR(LNN_TR_STORE, 1)
    }
    for (; j + LNN_W <= m; j += LNN_W) {
        LNN_REPR(LNN_TR_DECL, 0)
        const float *wi = w + j, *xi = x;
        for (size_t n = 0; n < k; n++, wi += dw, xi += dx) {
            const lnn_vf w0 = lnn_v_load(wi);
            LNN_REPR(LNN_TR_FMA, 0)
        }
        const lnn_vf b0 = bias ? lnn_v_load(bias + j) : lnn_v_zero();
        LNN_REPR(LNN_TR_STORE, 0)
    }
    if (j < m) {
        const size_t t = m - j;
        LNN_REPR(LNN_TR_DECL, 0)
        const float *wi = w + j, *xi = x;
        for (size_t n = 0; n < k; n++, wi += dw, xi += dx) {
            const lnn_vf w0 = lnn_v_loadn(wi, t);
            LNN_REPR(LNN_TR_FMA, 0)
        }
        const lnn_vf b0 = bias ? lnn_v_loadn(bias + j, t) : lnn_v_zero();
        LNN_REPR(LNN_TR_STOREN, 0)
    }
}

void LNN_SK(linear_t)(const lnn_linear_t_params *p)
{
    const size_t k = p->k, m = p->m, rows = p->rows;
    const lnn_sum_order o = lnn_sum_order_of(p->reverse, k, p->ldw);
    const size_t first = o.first;
    const ptrdiff_t dw = o.dw, dx = o.dx;
    const float *w = p->w + first * p->ldw;
    size_t r = 0;
    for (; r + LNN_LT_ROWS <= rows; r += LNN_LT_ROWS)
        lnn_lt_rows(p->x + r * k + first, w, p->bias, p->y + r * p->ldy, k, m, dw, dx, p->ldy);
    for (; r < rows; r++)
        lnn_lt_row1(p->x + r * k + first, w, p->bias, p->y + r * p->ldy, k, m, dw, dx);
}

#undef LNN_REPC1
#undef LNN_REPC2
#undef LNN_REPC4
#undef LNN_REPC8
#undef LNN_T1_DECL
#undef LNN_T1_BODY
#undef LNN_T1_STORE
#undef LNN_T1_TILE
#undef LNN_REPR
#undef LNN_TR_DECL
#undef LNN_TR_FMA
#undef LNN_TR_FMA2
#undef LNN_TR_FMA4
#undef LNN_TR_STORE
#undef LNN_TR_STOREN

/* ---- LINEAR_Q8 / MATMUL_NTQ8, LINEAR_TQ8 / MATMUL_TQ8 ------------------------------ */

/* The products with an int8 weight, register-blocked as the float ones
 * above: the weight is widened to floats as it is loaded (int8 -> int32 ->
 * float, exact), 2 or 4 vectors from one load where the set can
 * (lnn_v_load_i8x2 / x4: 16 bytes per load, not 4 or 8), and fed to the
 * same float multiply-adds; each column's sum is multiplied by its scale
 * once at the end, then the bias is added. The activations stay float32 on
 * purpose: the compiler checks the device against PyTorch run with the
 * fake-quantized weights to 1e-5, which quantized activations would miss,
 * so the integer dot-product instructions (SDOT, VPDPBUSD) do not apply.
 *
 * No partial int8 vector is ever loaded (the weight's last bytes may be the
 * last bytes of the model buffer): a tail is a whole vector ending at the
 * tail's end. In the dot products, the last vector of a Q row is the one
 * at [k - LNN_W, k), against x's tail in its top lanes and zeros below
 * (0 times a finite weight adds nothing); in the outer products, the last
 * vector of columns is [m - LNN_W, m), overlapping the one before, whose
 * columns it recomputes to the same bits. Shorter rows (k or m below
 * LNN_W: tiny products) run the scalar kernel. */

#define LNN_REP4(M) M(0) M(1) M(2) M(3)
/* one row: accumulators acc<c> and acd<c> (the odd pairs of vectors) for Q
 * row q0 + c * k */
#define LNN_Q1_DECL(c) lnn_vf acc##c = lnn_v_zero(), acd##c = lnn_v_zero();
#define LNN_Q1_FMA2(c)                                             \
    {                                                              \
        lnn_vf wv[2];                                              \
        lnn_v_load_i8x2(q0 + (c) * k + i, wv);                     \
        acc##c = lnn_v_fma(xv, wv[0], acc##c);                     \
        acd##c = lnn_v_fma(xw, wv[1], acd##c);                     \
    }
#define LNN_Q1_FMA(c, xv, i) acc##c = lnn_v_fma(xv, lnn_v_load_i8(q0 + (c) * k + (i)), acc##c);
#define LNN_Q1_BODY(c) LNN_Q1_FMA(c, xv, i)
#define LNN_Q1_TAIL(c) LNN_Q1_FMA(c, xt, k - LNN_W)
#define LNN_Q1_JOIN(c) acc##c = lnn_v_add(acc##c, acd##c);
#define LNN_Q1_ONE(M) M(0)
/* the columns' loop over x: pairs of vectors (one weight load each), then a
 * vector, then the tail */
#define LNN_Q1_LOOP(REP)                                           \
    size_t i = 0;                                                  \
    for (; i + 2 * LNN_W <= kv; i += 2 * LNN_W) {                  \
        const lnn_vf xv = lnn_v_load(x + i), xw = lnn_v_load(x + i + LNN_W); \
        REP(LNN_Q1_FMA2)                                           \
    }                                                              \
    if (i < kv) {                                                  \
        const lnn_vf xv = lnn_v_load(x + i);                       \
        REP(LNN_Q1_BODY)                                           \
    }                                                              \
    if (kt) {                                                      \
        REP(LNN_Q1_TAIL)                                           \
    }                                                              \
    REP(LNN_Q1_JOIN)
/* two rows: accumulators a<c> (row 0) and b<c> (row 1) share the weight */
#define LNN_Q2_DECL(c) lnn_vf a##c = lnn_v_zero(), b##c = lnn_v_zero();
#define LNN_Q2_FMA(c, xv0, xv1, i)                                 \
    {                                                              \
        const lnn_vf wv = lnn_v_load_i8(q0 + (c) * k + (i));       \
        a##c = lnn_v_fma(xv0, wv, a##c);                           \
        b##c = lnn_v_fma(xv1, wv, b##c);                           \
    }
#define LNN_Q2_BODY(c) LNN_Q2_FMA(c, xv0, xv1, i)
#define LNN_Q2_TAIL(c) LNN_Q2_FMA(c, xt0, xt1, k - LNN_W)

/* x's last kt = k % LNN_W elements in the top lanes, zeros below: the x
 * lanes of the Q vector at [k - LNN_W, k). */
static inline lnn_vf lnn_q8_xtail(const float *x, size_t k, size_t kt)
{
    float t[LNN_W] = {0.0f};
    if (kt)
        memcpy(t + LNN_W - kt, x + k - kt, kt * sizeof(float));
    return lnn_v_load(t);
}

/* Four sums of columns [j, j + 4) times their scales, plus their biases. */
static inline lnn_vq lnn_q8_finish4(lnn_vq s, const float *scale, const float *bias, size_t j)
{
    s = lnn_q_mul(s, lnn_q_load(scale + j));
    return bias ? lnn_q_add(s, lnn_q_load(bias + j)) : s;
}

static inline float lnn_q8_finish1(float s, const float *scale, const float *bias, size_t j)
{
    s *= scale[j];
    return bias ? s + bias[j] : s;
}

/* One row of x into y[0, m); k >= LNN_W. Tiles of 4 outputs, then 1; two
 * accumulators per output (even and odd vectors of x). */
static void lnn_q8_row1(const lnn_linear_q8_params *p, const float *x, float *y)
{
    const size_t k = p->k, m = p->m, kv = k - k % LNN_W, kt = k - kv;
    const lnn_vf xt = lnn_q8_xtail(x, k, kt);
    size_t j = 0;
    for (; j + 4 <= m; j += 4) {
        const int8_t *q0 = p->q + j * k;
        LNN_REP4(LNN_Q1_DECL)
        LNN_Q1_LOOP(LNN_REP4)
        lnn_q_store(y + j, lnn_q8_finish4(lnn_v_reduce4(acc0, acc1, acc2, acc3), p->scale,
                                          p->bias, j));
    }
    for (; j < m; j++) {
        const int8_t *q0 = p->q + j * k;
        LNN_Q1_DECL(0)
        LNN_Q1_LOOP(LNN_Q1_ONE)
        y[j] = lnn_q8_finish1(lnn_v_reduce1(acc0), p->scale, p->bias, j);
    }
}

/* Two rows of x into y[0, m) and y[m, 2m); k >= LNN_W. Tiles of 2 rows x 4
 * outputs (each widened weight vector used twice), then 2 x 1. */
static void lnn_q8_row2(const lnn_linear_q8_params *p, const float *x, float *y)
{
    const size_t k = p->k, m = p->m, kv = k - k % LNN_W, kt = k - kv;
    const float *x1 = x + k;
    const lnn_vf xt0 = lnn_q8_xtail(x, k, kt), xt1 = lnn_q8_xtail(x1, k, kt);
    size_t j = 0;
    for (; j + 4 <= m; j += 4) {
        const int8_t *q0 = p->q + j * k;
        LNN_REP4(LNN_Q2_DECL)
        for (size_t i = 0; i < kv; i += LNN_W) {
            const lnn_vf xv0 = lnn_v_load(x + i), xv1 = lnn_v_load(x1 + i);
            LNN_REP4(LNN_Q2_BODY)
        }
        if (kt) {
            LNN_REP4(LNN_Q2_TAIL)
        }
        lnn_q_store(y + j, lnn_q8_finish4(lnn_v_reduce4(a0, a1, a2, a3), p->scale, p->bias, j));
        lnn_q_store(y + m + j,
                    lnn_q8_finish4(lnn_v_reduce4(b0, b1, b2, b3), p->scale, p->bias, j));
    }
    for (; j < m; j++) {
        const int8_t *q0 = p->q + j * k;
        LNN_Q2_DECL(0)
        for (size_t i = 0; i < kv; i += LNN_W) {
            const lnn_vf xv0 = lnn_v_load(x + i), xv1 = lnn_v_load(x1 + i);
            LNN_Q2_BODY(0)
        }
        if (kt) {
            LNN_Q2_TAIL(0)
        }
        y[j] = lnn_q8_finish1(lnn_v_reduce1(a0), p->scale, p->bias, j);
        y[m + j] = lnn_q8_finish1(lnn_v_reduce1(b0), p->scale, p->bias, j);
    }
}

void LNN_SK(linear_q8)(const lnn_linear_q8_params *p)
{
    const size_t k = p->k, m = p->m, rows = p->rows;
    if (k < LNN_W) {
        lnn_linear_q8__scalar(p);
        return;
    }
    size_t r = 0;
    for (; r + 2 <= rows; r += 2)
        lnn_q8_row2(p, p->x + r * k, p->y + r * m);
    if (r < rows)
        lnn_q8_row1(p, p->x + r * k, p->y + r * m);
}

#undef LNN_Q1_DECL
#undef LNN_Q1_FMA2
#undef LNN_Q1_FMA
#undef LNN_Q1_BODY
#undef LNN_Q1_TAIL
#undef LNN_Q1_JOIN
#undef LNN_Q1_LOOP
#undef LNN_Q1_ONE
#undef LNN_Q2_DECL
#undef LNN_Q2_FMA
#undef LNN_Q2_BODY
#undef LNN_Q2_TAIL

#ifndef LNN_SIMD_LINEAR_TQ8
/* The outer products (Qt (K, M)), as LINEAR_T: for each i, x[r][i]
 * broadcast times the widened row i of Qt, into vector accumulators of y's
 * columns, each column summed in i order (or reversed), so every tiling
 * gives the same bits; m >= LNN_W.
 *   one row: 8 vectors of columns at a time (two 4-vector weight loads),
 *            then 4 (one), then 1;
 *   LNN_LT_ROWS rows: LNN_LT_ROWS rows x 4 vectors where LNN_LT_COLS is 4,
 *            x 2 (one 2-vector weight load), then x 1 (each widened weight
 *            vector used LNN_LT_ROWS times). */
#define LNN_QT_DECL(c) lnn_vf acc##c = lnn_v_zero();
#define LNN_QT_BODY(c) acc##c = lnn_v_fma(xv, lnn_v_load_i8(qi + (c) * LNN_W), acc##c);
#define LNN_QT_FMA4(c) acc##c = lnn_v_fma(xv, wv[c], acc##c);
#define LNN_QT_FMA4H(c) acc##c##h = lnn_v_fma(xv, wv[c], acc##c##h);
#define LNN_QT_DECLH(c) lnn_vf acc##c##h = lnn_v_zero();
#define LNN_QT_SCALE(acc, jc)                                                   \
    acc = lnn_v_mul(acc, lnn_v_load(p->scale + (jc)));                          \
    if (p->bias)                                                                \
        acc = lnn_v_add(acc, lnn_v_load(p->bias + (jc)));                       \
    lnn_v_store(y + (jc), acc);
#define LNN_QT_STORE(c) LNN_QT_SCALE(acc##c, j + (c) * LNN_W)
#define LNN_QT_STOREH(c) LNN_QT_SCALE(acc##c##h, j + (4 + (c)) * LNN_W)

/* One row of x into y; x and q at the first row of the sum, dx and dq the
 * steps to the next (negative when reversed). */
static void lnn_qt_row1(const lnn_linear_q8_params *p, const float *x, const int8_t *q, float *y,
                        ptrdiff_t dq, ptrdiff_t dx)
{
    const size_t k = p->k, m = p->m;
    size_t j = 0;
    for (; j + 8 * LNN_W <= m; j += 8 * LNN_W) {
        LNN_REP4(LNN_QT_DECL)
        LNN_REP4(LNN_QT_DECLH)
        const int8_t *qi = q + j;
        const float *xi = x;
        for (size_t n = 0; n < k; n++, qi += dq, xi += dx) {
            const lnn_vf xv = lnn_v_set1(*xi);
            lnn_vf wv[4];
            lnn_v_load_i8x4(qi, wv);
            LNN_REP4(LNN_QT_FMA4)
            lnn_v_load_i8x4(qi + 4 * LNN_W, wv);
            LNN_REP4(LNN_QT_FMA4H)
        }
        LNN_REP4(LNN_QT_STORE)
        LNN_REP4(LNN_QT_STOREH)
    }
    for (; j + 4 * LNN_W <= m; j += 4 * LNN_W) {
        LNN_REP4(LNN_QT_DECL)
        const int8_t *qi = q + j;
        const float *xi = x;
        for (size_t n = 0; n < k; n++, qi += dq, xi += dx) {
            const lnn_vf xv = lnn_v_set1(*xi);
            lnn_vf wv[4];
            lnn_v_load_i8x4(qi, wv);
            LNN_REP4(LNN_QT_FMA4)
        }
        LNN_REP4(LNN_QT_STORE)
    }
    for (; j < m; j += LNN_W) {
        if (j + LNN_W > m)
            j = m - LNN_W; /* the last vector ends at m (see the tails above) */
        LNN_QT_DECL(0)
        const int8_t *qi = q + j;
        const float *xi = x;
        for (size_t n = 0; n < k; n++, qi += dq, xi += dx) {
            const lnn_vf xv = lnn_v_set1(*xi);
            LNN_QT_BODY(0)
        }
        LNN_QT_STORE(0)
    }
}

/* LNN_LT_ROWS rows: accumulator a<r>_<c> for row r, column vector c */
#if LNN_LT_ROWS == 6
#define LNN_QR_REP(M, c) M(0, c) M(1, c) M(2, c) M(3, c) M(4, c) M(5, c)
#else
#define LNN_QR_REP(M, c) M(0, c) M(1, c) M(2, c) M(3, c)
#endif
#define LNN_QR_DECL(r, c) lnn_vf a##r##_##c = lnn_v_zero();
#define LNN_QR_FMA1(r, c) a##r##_0 = lnn_v_fma(lnn_v_set1(xi[(r) * k]), wv[0], a##r##_0);
#define LNN_QR_FMA2(r, c)                                   \
    {                                                       \
        const lnn_vf xv = lnn_v_set1(xi[(r) * k]);          \
        a##r##_0 = lnn_v_fma(xv, wv[0], a##r##_0);          \
        a##r##_1 = lnn_v_fma(xv, wv[1], a##r##_1);          \
    }
#define LNN_QR_FMA4(r, c)                                   \
    {                                                       \
        const lnn_vf xv = lnn_v_set1(xi[(r) * k]);          \
        a##r##_0 = lnn_v_fma(xv, wv[0], a##r##_0);          \
        a##r##_1 = lnn_v_fma(xv, wv[1], a##r##_1);          \
        a##r##_2 = lnn_v_fma(xv, wv[2], a##r##_2);          \
        a##r##_3 = lnn_v_fma(xv, wv[3], a##r##_3);          \
    }
#define LNN_QR_STORE(r, c)                                                 \
    a##r##_##c = lnn_v_mul(a##r##_##c, s##c);                              \
    if (p->bias)                                                           \
        a##r##_##c = lnn_v_add(a##r##_##c, b##c);                          \
    lnn_v_store(y + (r) * p->ldy + j + (c) * LNN_W, a##r##_##c);
#define LNN_QR_SB(c)                                                       \
    const lnn_vf s##c = lnn_v_load(p->scale + j + (c) * LNN_W);            \
    const lnn_vf b##c = p->bias ? lnn_v_load(p->bias + j + (c) * LNN_W) : s##c;
/* a tile of NV vectors of columns: LOAD the weights into wv, FMA them */
#define LNN_QR_TILE(NV, LOAD, FMA)                                         \
    {                                                                      \
        const int8_t *qi = q + j;                                          \
        const float *xi = x;                                               \
        for (size_t n = 0; n < k; n++, qi += dq, xi += dx) {               \
            lnn_vf wv[NV];                                                 \
            LOAD;                                                          \
            LNN_QR_REP(FMA, 0)                                             \
        }                                                                  \
    }

/* LNN_LT_ROWS rows of x (k apart) into rows of y (ldy apart), as
 * lnn_qt_row1. */
static void lnn_qt_rows(const lnn_linear_q8_params *p, const float *x, const int8_t *q,
                        float *y, ptrdiff_t dq, ptrdiff_t dx)
{
    const size_t k = p->k, m = p->m;
    size_t j = 0;
#if LNN_LT_COLS == 4
    for (; j + 4 * LNN_W <= m; j += 4 * LNN_W) {
        LNN_QR_REP(LNN_QR_DECL, 0)
        LNN_QR_REP(LNN_QR_DECL, 1)
        LNN_QR_REP(LNN_QR_DECL, 2)
        LNN_QR_REP(LNN_QR_DECL, 3)
        LNN_QR_TILE(4, lnn_v_load_i8x4(qi, wv), LNN_QR_FMA4)
        LNN_QR_SB(0)
        LNN_QR_SB(1)
        LNN_QR_SB(2)
        LNN_QR_SB(3)
        LNN_QR_REP(LNN_QR_STORE, 0)
        LNN_QR_REP(LNN_QR_STORE, 1)
        LNN_QR_REP(LNN_QR_STORE, 2)
        LNN_QR_REP(LNN_QR_STORE, 3)
    }
#endif
    for (; j + 2 * LNN_W <= m; j += 2 * LNN_W) {
        LNN_QR_REP(LNN_QR_DECL, 0)
        LNN_QR_REP(LNN_QR_DECL, 1)
        LNN_QR_TILE(2, lnn_v_load_i8x2(qi, wv), LNN_QR_FMA2)
        LNN_QR_SB(0)
        LNN_QR_SB(1)
        LNN_QR_REP(LNN_QR_STORE, 0)
        LNN_QR_REP(LNN_QR_STORE, 1)
    }
    for (; j < m; j += LNN_W) {
        if (j + LNN_W > m)
            j = m - LNN_W; /* the last vector ends at m (see the tails above) */
        LNN_QR_REP(LNN_QR_DECL, 0)
        LNN_QR_TILE(1, wv[0] = lnn_v_load_i8(qi), LNN_QR_FMA1)
        LNN_QR_SB(0)
        LNN_QR_REP(LNN_QR_STORE, 0)
    }
}

void LNN_SK(linear_tq8)(const lnn_linear_q8_params *p)
{
    const size_t k = p->k, rows = p->rows;
    if (p->m < LNN_W) {
        lnn_linear_tq8__scalar(p);
        return;
    }
    const lnn_sum_order o = lnn_sum_order_of(p->reverse, k, p->ldq);
    const size_t first = o.first;
    const ptrdiff_t dq = o.dw, dx = o.dx;
    const int8_t *q = p->q + first * p->ldq;
    size_t r = 0;
    for (; r + LNN_LT_ROWS <= rows; r += LNN_LT_ROWS)
        lnn_qt_rows(p, p->x + r * k + first, q, p->y + r * p->ldy, dq, dx);
    for (; r < rows; r++)
        lnn_qt_row1(p, p->x + r * k + first, q, p->y + r * p->ldy, dq, dx);
}

#define LNN_SIMD_LINEAR_TQ8 LNN_SK(linear_tq8)
#endif

#undef LNN_REP4
#undef LNN_QT_DECL
#undef LNN_QT_BODY
#undef LNN_QT_FMA4
#undef LNN_QT_FMA4H
#undef LNN_QT_DECLH
#undef LNN_QT_SCALE
#undef LNN_QT_STORE
#undef LNN_QT_STOREH
#undef LNN_QR_REP
#undef LNN_QR_DECL
#undef LNN_QR_FMA1
#undef LNN_QR_FMA2
#undef LNN_QR_FMA4
#undef LNN_QR_STORE
#undef LNN_QR_SB
#undef LNN_QR_TILE

/* ---- EWISE ------------------------------------------------------------------------ */

/* One instruction of an element-wise program over one block: the set's
 * own element-wise kernels (so a program gives their bits, and costs no code
 * of its own), a one-value operand through their scalar plans. */
static LNN_ALWAYS_INLINE void LNN_SK(ew_block)(uint32_t code, float *y, const float *a, int sa,
                                               const float *b, int sb, size_t len)
{
    /* the short ops on two blocks, the common case: inline */
#define LNN_EW_FAST(EXPR)                                                               \
    do {                                                                                \
        size_t i_ = 0;                                                                  \
        for (; i_ + LNN_W <= len; i_ += LNN_W) {                                        \
            const lnn_vf va_ = lnn_v_load(a + i_), vb_ = lnn_v_load(b + i_);            \
            lnn_v_store(y + i_, EXPR);                                                  \
        }                                                                               \
        if (i_ < len) {                                                                 \
            const lnn_vf va_ = lnn_v_loadn(a + i_, len - i_);                           \
            const lnn_vf vb_ = lnn_v_loadn(b + i_, len - i_);                           \
            lnn_v_storen(y + i_, EXPR, len - i_);                                       \
        }                                                                               \
        return;                                                                         \
    } while (0)
    const int unary = code >= LNN_OP_NEG;
    if (!sa && (unary || !sb)) {
        if (unary)
            b = a; /* read, not used */
        switch ((lnn_opcode)code) {
        case LNN_OP_ADD:
            LNN_EW_FAST(lnn_v_add(va_, vb_));
        case LNN_OP_SUB:
            LNN_EW_FAST(lnn_v_sub(va_, vb_));
        case LNN_OP_MUL:
            LNN_EW_FAST(lnn_v_mul(va_, vb_));
        case LNN_OP_DIV:
            LNN_EW_FAST(lnn_v_div(va_, vb_));
        case LNN_OP_NEG:
            LNN_EW_FAST(((void)vb_, lnn_v_negate(va_)));
        default:
            break;
        }
    }
#undef LNN_EW_FAST
    lnn_unary_fn un = NULL;
    lnn_binary_fn bin = NULL;
    switch ((lnn_opcode)code) {
    case LNN_OP_ADD:
        bin = LNN_SK(add);
        break;
    case LNN_OP_SUB:
        bin = LNN_SK(sub);
        break;
    case LNN_OP_MUL:
        bin = LNN_SK(mul);
        break;
    case LNN_OP_DIV:
        bin = LNN_SK(div);
        break;
    case LNN_OP_NEG:
        un = LNN_SK(neg);
        break;
    case LNN_OP_EXP:
        un = LNN_SK(exp);
        break;
    case LNN_OP_SIGMOID:
        un = LNN_SK(sigmoid);
        break;
    case LNN_OP_TANH:
        un = LNN_SK(tanh);
        break;
    case LNN_OP_RELU:
        un = LNN_SK(relu);
        break;
    case LNN_OP_ABS:
        un = LNN_SK(abs);
        break;
    case LNN_OP_SQRT:
        un = LNN_SK(sqrt);
        break;
    case LNN_OP_LOG:
        un = LNN_SK(log);
        break;
    case LNN_OP_ERF:
        un = LNN_SK(erf);
        break;
    case LNN_OP_MIN:
        bin = LNN_SK(min);
        break;
    case LNN_OP_MAX:
        bin = LNN_SK(max);
        break;
    case LNN_OP_POW:
        bin = lnn_pow__scalar;
        break;
    case LNN_OP_LE:
        bin = lnn_le__scalar;
        break;
    case LNN_OP_LT:
        bin = lnn_lt__scalar;
        break;
    default: /* the verifier admits no other code */
        return;
    }
    const size_t n = (un ? sa : sa && sb) ? 1 : len; /* one value: once, then copied */
    if (un) {
        lnn_unary_params p = {y, a, n};
        un(&p);
    } else {
        lnn_binary_params p;
        p.y = y;
        p.a = a;
        p.b = b;
        p.n = n;
        p.inner = 0;
        p.mode = n == 1 || (!sa && !sb) ? LNN_BC_SAME : sa ? LNN_BC_SCALAR_A : LNN_BC_SCALAR_B;
        bin(&p);
    }
    for (size_t i = n; i < len; i++)
        y[i] = y[0];
}

/* The LTC step's fused form (kernels.h, LNN_EW_FORM_LTC):
 *   y = H + DT * ((C + D) * sigmoid(A + B) - H) / T,  slots A B C D H T DT = 0..6
 * in a few short passes over a piece of elements: x = A + B and the exp's
 * range reduction (r, t), its polynomial (e^r), the scaling and the
 * quotient of the sigmoid (the gate), then the rest of the step. Each pass
 * is a loop of independent vectors the processor overlaps well, where one
 * loop through the whole step is a dependency chain per vector too long
 * for the out-of-order window; the intermediates stay in small arrays in
 * L1. The operations are those of the block interpreter's kernels in the
 * same order (lnn_v_exp_core is lnn_v_exp_reduce, _poly and _scale in a
 * row, lnn_v_sigmoid is lnn_v_sigmoid_of), so the result has the
 * program's bits, without the scratch blocks and the per-instruction
 * dispatch.
 *
 * Slot s's vector at element i of a piece: q[s] + (i & m[s]), m[s] 0 for a
 * single value (q[s] then a vector of its copies), all ones otherwise. */
#define LNN_LTC_LD(s) lnn_v_load(q[s] + (i & m[s]))
#define LNN_LTC_GATE1()                                                            \
    do {                                                                           \
        const lnn_vf x_ = lnn_v_add(LNN_LTC_LD(0), LNN_LTC_LD(1));                 \
        lnn_vf t_;                                                                 \
        lnn_v_store(rs + i, lnn_v_exp_reduce(lnn_v_negate(lnn_v_abs(x_)), &t_));   \
        lnn_v_store(ts + i, t_);                                                   \
        lnn_v_store(xs + i, x_);                                                   \
    } while (0)
#define LNN_LTC_STEP()                                                             \
    do {                                                                           \
        const lnn_vf h_ = LNN_LTC_LD(4);                                           \
        const lnn_vf c_ = lnn_v_add(LNN_LTC_LD(2), LNN_LTC_LD(3));                 \
        const lnn_vf f_ =                                                          \
            lnn_v_div(lnn_v_sub(lnn_v_mul(c_, lnn_v_load(es + i)), h_), LNN_LTC_LD(5)); \
        lnn_v_store(y + i, lnn_v_add(h_, lnn_v_mul(LNN_LTC_LD(6), f_)));           \
    } while (0)

#if UINTPTR_MAX > 0xFFFFFFFFu
#define LNN_LTC_PIECE 256 /* floats */
#else
#define LNN_LTC_PIECE 128
#endif
#define LNN_LTC_REPS 2 /* ROW slots repeated over a piece */

/* Whole vectors only: the caller checks that LNN_W divides inner (then it
 * divides every run and piece; other shapes take the block interpreter).
 * Inside a run of inner elements a ROW operand is contiguous (as in
 * lnn_ewise_blocks); when every ROW slot is one run long (the LTC's tau: one
 * value per unit) and several runs fit in a piece, a piece spans whole runs
 * and reads each ROW slot from a copy repeated over the piece, so that at
 * batch > 1 the passes run over many rows' vectors at once. */
static void LNN_SK(ew_ltc)(const lnn_ewise_params *p)
{
    _Alignas(64) float xs[LNN_LTC_PIECE], rs[LNN_LTC_PIECE];
    _Alignas(64) float ts[LNN_LTC_PIECE], es[LNN_LTC_PIECE];
    _Alignas(64) float rep[LNN_LTC_REPS][LNN_LTC_PIECE];
    float one[LNN_EW_LTC_SLOTS][LNN_W]; /* single values, repeated over a vector */
    const float *r[LNN_EW_LTC_SLOTS], *q[LNN_EW_LTC_SLOTS];
    size_t slot[LNN_EW_LTC_SLOTS], m[LNN_EW_LTC_SLOTS], pos[LNN_EW_LTC_SLOTS];
    const size_t inner = p->inner, count = p->count;
    size_t nrow = 0;
    int repeat = 2 * inner <= LNN_LTC_PIECE && count > inner;
    for (size_t s = 0; s < LNN_EW_LTC_SLOTS; s++) {
        const size_t j = slot[s] = lnn_ew_form_slot(p->form, s);
        if (p->mode[j] == LNN_EW_ROW) {
            nrow++;
            repeat &= p->len[j] == inner;
        }
    }
    repeat &= nrow <= LNN_LTC_REPS;
    /* elements per run: a piece never crosses one */
    const size_t run = repeat ? LNN_LTC_PIECE - LNN_LTC_PIECE % inner : inner;
    for (size_t s = 0, k = 0; s < LNN_EW_LTC_SLOTS; s++) {
        const size_t j = slot[s];
        pos[s] = 0;
        m[s] = p->mode[j] == LNN_EW_SCALAR ? 0 : ~(size_t)0;
        if (!m[s]) {
            for (size_t l = 0; l < LNN_W; l++)
                one[s][l] = p->src[j][0];
            r[s] = one[s];
        } else if (repeat && p->mode[j] == LNN_EW_ROW) {
            for (size_t i = 0; i < run; i += inner)
                memcpy(rep[k] + i, p->src[j], inner * sizeof(float));
            r[s] = rep[k++];
        }
    }
    for (size_t o = 0; o < count; o += run) {
        const size_t end = count - o < run ? count - o : run;
        for (size_t s = 0; s < LNN_EW_LTC_SLOTS; s++) { /* the run's start in each slot */
            const size_t j = slot[s];
            if (p->mode[j] == LNN_EW_SAME)
                r[s] = p->src[j] + o;
            else if (p->mode[j] == LNN_EW_ROW && !repeat) {
                r[s] = p->src[j] + pos[s];
                if ((pos[s] += inner) == p->len[j])
                    pos[s] = 0;
            }
        }
        for (size_t c = 0; c < end; c += LNN_LTC_PIECE) {
            const size_t len = end - c < LNN_LTC_PIECE ? end - c : LNN_LTC_PIECE;
            float *y = p->y + o + c;
            for (size_t s = 0; s < LNN_EW_LTC_SLOTS; s++)
                q[s] = r[s] + (c & m[s]);
            size_t i;
            for (i = 0; i < len; i += LNN_W)
                LNN_LTC_GATE1();
            for (i = 0; i < len; i += LNN_W)
                lnn_v_store(es + i, lnn_v_exp_poly(lnn_v_load(rs + i)));
            for (i = 0; i < len; i += LNN_W)
                lnn_v_store(es + i, lnn_v_sigmoid_of(lnn_v_load(xs + i),
                                                     lnn_v_exp_scale(lnn_v_load(es + i),
                                                                     lnn_v_load(ts + i))));
            for (i = 0; i < len; i += LNN_W)
                LNN_LTC_STEP();
        }
    }
}
#undef LNN_LTC_LD
#undef LNN_LTC_GATE1
#undef LNN_LTC_STEP
#undef LNN_LTC_PIECE
#undef LNN_LTC_REPS

void LNN_SK(ewise)(const lnn_ewise_params *p)
{
    const uint32_t form = p->form & 0xFu;
    if (form == LNN_EW_FORM_LTC && p->inner % LNN_W == 0)
        LNN_SK(ew_ltc)(p);
#if LNN_W8A16_LINKED
    else if (form == LNN_EW_FORM_LTC_UNSPLIT && p->inner % LNN_W == 0 && p->n < LNN_EW_MAX_OPERANDS) {
        lnn_ewise_params ltc;
        LNN_SK(ew_ltc)(lnn_ew_unsplit_as_ltc(p, &ltc));
    }
#endif
    else
        lnn_ewise_blocks(p, LNN_SK(ew_block));
}

#include "kernels_simd_graph.h" /* CONV2D .. MATMUL */

/* ---- LINEAR_W8A16, MATMUL_W8A16 -------------------------------------------------- */

#ifndef LNN_SIMD_LINEAR_W8A16
/* The scalar kernel's bits (kernels.h: exact integer sums, bit-exact by
 * definition), with the integer primitives lnn_w_*. Per row: the largest
 * |x| as bits (integer max: ordered like the values, NaN and inf above
 * every finite one), the block exponent, xq = x 2^(15-e) rounded half to
 * even (the scalar kernel's 1.5 2^23 trick) packed to int16, 2 LNN_W a
 * vector, zeros after the last input. A vector load of the panel is one
 * column pair against LNN_W input pairs: 2 LNN_W int16 halves h in input
 * order, as the xq vector. With q0 = sext8(h & 0xFF) and q1 = lnn_w_hi(h)
 * (the two columns' weights, decoded as lnn_opcodes.def says, for any
 * bytes) h = 256 q1 + q0, so xq times h and xq times q1 summed in int32
 * lanes (lnn_w_madd) give T = 256 S1 + S0 and S1 modulo 2^32, and
 * S0 = T - 256 S1 modulo 2^32: q0 is never formed (one decode a step, not
 * two). Exact: a chunk of LNN_W8_CHUNK inputs has
 * |S0|, |S1| <= 512 * 32767 * 128 < 2^31, so the residues are the sums;
 * longer rows go chunk by chunk, each chunk's sums added into int64 ones
 * (as the scalar kernel). The columns go in blocks of
 * LNN_W8_COLS; a row of one chunk is rounded once and its int32 sums are
 * the sums, a longer one is rounded again for each block (k roundings per
 * 64 columns). Stack: 1 KiB of xq, 1 KiB of sums and values. */
enum { LNN_W8_CHUNK = 512, LNN_W8_COLS = 64 };
_Static_assert(LNN_W8_CHUNK % (2 * LNN_W) == 0, "a chunk of xq is whole vectors");

static uint32_t lnn_w8_absmax(const float *x, size_t k)
{
    lnn_vi mv = lnn_vi_set1(0);
    size_t i = 0;
    for (; i + LNN_W <= k; i += LNN_W)
        mv = lnn_vi_max(mv, lnn_v_bits(lnn_v_abs(lnn_v_load(x + i))));
    if (i < k)
        mv = lnn_vi_max(mv, lnn_v_bits(lnn_v_abs(lnn_v_loadn(x + i, k - i))));
    float t[LNN_W];
    lnn_v_store(t, lnn_vi_float(mv));
    uint32_t amax = 0;
    for (size_t l = 0; l < LNN_W; l++) {
        uint32_t u;
        memcpy(&u, &t[l], sizeof u);
        amax = u > amax ? u : amax;
    }
    return amax;
}

/* round_half_even(x s) as 32-bit integers: x s is exact and |x s| <= 32767.5
 * < 2^22, so + 1.5 2^23 rounds it into the low bits */
static LNN_ALWAYS_INLINE lnn_vi lnn_w8_q(lnn_vf x, lnn_vf s)
{
    const lnn_vf t = lnn_v_add(lnn_v_mul(x, s), lnn_v_set1(12582912.0f));
    return lnn_vi_sub(lnn_v_bits(t), lnn_vi_set1(0x4B400000u));
}
/* xq = x s rounded, n inputs into whole vectors: zeros after them */
static void lnn_w8_round(const float *x, size_t n, float s, int16_t *xq)
{
    const lnn_vf sv = lnn_v_set1(s);
    for (size_t i = 0; i < n; i += 2 * LNN_W) {
        const size_t rem = n - i;
        lnn_vf a, b;
        if (rem >= 2 * LNN_W) {
            a = lnn_v_load(x + i);
            b = lnn_v_load(x + i + LNN_W);
        } else {
            a = rem >= LNN_W ? lnn_v_load(x + i) : lnn_v_loadn(x + i, rem);
            b = rem > LNN_W ? lnn_v_loadn(x + i + LNN_W, rem - LNN_W) : lnn_v_zero();
        }
        lnn_w_store(xq + i, lnn_w_pack(lnn_w8_q(a, sv), lnn_w8_q(b, sv)));
    }
}

/* S0 = T - 256 S1 modulo 2^32, as int32 (S0 is within it, see above) */
static inline int32_t lnn_w8_s0(int32_t t, int32_t s1)
{
    return (int32_t)((uint32_t)t - ((uint32_t)s1 << 8));
}

/* One column pair's step: xv against the halves h, into T and S1. */
#define LNN_W8_STEP(c, h)                              \
    {                                                  \
        const lnn_vw h_ = (h);                         \
        a##c##0 = lnn_w_madd(a##c##0, xv, h_);         \
        a##c##1 = lnn_w_madd(a##c##1, xv, lnn_w_hi(h_)); \
    }
/* The last vector of a pair may reach past the panel's end (only the last
 * pair's can): a partial load there. Past the chunk's words of the pair it
 * reads the next ones, which multiply the zeros after the chunk's inputs. */
#define LNN_W8_LAST(c) (size_t)(end - (w + 4 * ((c) * kp + v * LNN_W))) >= 4 * LNN_W          \
                           ? lnn_w_load(w + 4 * ((c) * kp + v * LNN_W))                        \
                           : lnn_w_loadn(w + 4 * ((c) * kp + v * LNN_W),                       \
                                         (size_t)(end - (w + 4 * ((c) * kp + v * LNN_W))) / 4)

/* Four column pairs from w (their words kp apart) against nv vectors of
 * xq: the 8 columns' sums into s. end: the panel's end. */
static void lnn_w8_pairs4(const uint8_t *w, size_t kp, const uint8_t *end, const int16_t *xq, size_t nv,
                          int32_t *s)
{
    const lnn_vi z = lnn_vi_set1(0);
    lnn_vi a00 = z, a01 = z, a10 = z, a11 = z, a20 = z, a21 = z, a30 = z, a31 = z;
    size_t v = 0;
    for (; v + 1 < nv; v++) {
        const lnn_vw xv = lnn_w_load(xq + v * 2 * LNN_W);
        const uint8_t *at = w + 4 * v * LNN_W;
        LNN_W8_STEP(0, lnn_w_load(at))
        LNN_W8_STEP(1, lnn_w_load(at + 4 * kp))
        LNN_W8_STEP(2, lnn_w_load(at + 8 * kp))
        LNN_W8_STEP(3, lnn_w_load(at + 12 * kp))
    }
    const lnn_vw xv = lnn_w_load(xq + v * 2 * LNN_W);
    LNN_W8_STEP(0, LNN_W8_LAST(0))
    LNN_W8_STEP(1, LNN_W8_LAST(1))
    LNN_W8_STEP(2, LNN_W8_LAST(2))
    LNN_W8_STEP(3, LNN_W8_LAST(3))
    lnn_w_sum4(a00, a01, a10, a11, s);
    lnn_w_sum4(a20, a21, a30, a31, s + 4);
    for (size_t c = 0; c < 8; c += 2)
        s[c] = lnn_w8_s0(s[c], s[c + 1]);
}

/* One column pair, as lnn_w8_pairs4: 2 sums. */
static void lnn_w8_pair1(const uint8_t *w, size_t kp, const uint8_t *end, const int16_t *xq, size_t nv, int32_t *s)
{
    const lnn_vi z = lnn_vi_set1(0);
    lnn_vi a00 = z, a01 = z;
    size_t v = 0;
    for (; v + 1 < nv; v++) {
        const lnn_vw xv = lnn_w_load(xq + v * 2 * LNN_W);
        LNN_W8_STEP(0, lnn_w_load(w + 4 * v * LNN_W))
    }
    const lnn_vw xv = lnn_w_load(xq + v * 2 * LNN_W);
    LNN_W8_STEP(0, LNN_W8_LAST(0))
    int32_t t[4];
    lnn_w_sum4(a00, a01, z, z, t);
    s[0] = lnn_w8_s0(t[0], t[1]);
    s[1] = t[1];
}

/* The sums of columns j0 .. j0 + nc - 1 (j0 even, nc <= LNN_W8_COLS; w: their
 * first pair's words of the chunk) into s (an odd nc: one more, the phantom
 * column's). */
static void lnn_w8_sums(const uint8_t *w, size_t kp, const uint8_t *end, const int16_t *xq, size_t nv, size_t nc,
                        int32_t *s)
{
    size_t c = 0;
    for (; c + 8 <= nc; c += 8, w += 16 * kp)
        lnn_w8_pairs4(w, kp, end, xq, nv, s + c);
    for (; c < nc; c += 2, w += 4 * kp)
        lnn_w8_pair1(w, kp, end, xq, nv, s + c);
}

/* Columns j0 .. j0 + nc - 1 of row r from v = (float)S_j 2^(e-15) (NaN: a
 * NaN row): scaled, biased, into their destinations, a run of columns per
 * destination (d: the destination of a column <= j0, moved on). */
static void lnn_w8_finish(const lnn_linear_w8a16_params *p, size_t r, size_t j0, size_t nc, const float *v, size_t *d)
{
    for (size_t c = 0; c < nc;) {
        const size_t j = j0 + c;
        size_t n;
        float *y = lnn_w8a16_run(p, r, j, j0 + nc, d, &n);
        const float *scale = p->scale + j, *bias = p->bias ? p->bias + j : NULL;
        size_t i = 0;
#ifdef LNN_W8_VECTOR_FINISH
        for (; i + LNN_W <= n; i += LNN_W) {
            const lnn_vf t = lnn_v_load(v + c + i), sc = lnn_v_load(scale + i);
            lnn_v_store(y + i, bias ? lnn_v_fma(t, sc, lnn_v_load(bias + i)) : lnn_v_mul(t, sc));
        }
#endif
        for (; i < n; i++)
            y[i] = bias ? lnn_fmaf(v[c + i], scale[i], bias[i]) : v[c + i] * scale[i];
        c += n;
    }
}

static void LNN_SK(linear_w8a16)(const lnn_linear_w8a16_params *p)
{
    int16_t xq[LNN_W8_CHUNK];
    int32_t s32[LNN_W8_COLS];
    int64_t sum[LNN_W8_COLS];
    float v[LNN_W8_COLS];
    const size_t k = p->k, m = p->m, kp = (k + 1) / 2;
    const uint8_t *end = p->panel + 4 * ((m + 1) / 2) * kp;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        const uint32_t amax = lnn_w8_absmax(x, k);
        size_t d = 0;
        if (amax >= 0x7F800000u) { /* NaN or infinity: the whole row NaN */
            for (size_t c = 0; c < LNN_W8_COLS; c++)
                v[c] = NAN;
            for (size_t j0 = 0; j0 < m; j0 += LNN_W8_COLS)
                lnn_w8_finish(p, r, j0, m - j0 < LNN_W8_COLS ? m - j0 : LNN_W8_COLS, v, &d);
            continue;
        }
        const int32_t e = lnn_w8a16_exponent(amax);
        const float s = lnn_pow2f(15 - e), pw = lnn_pow2f(e - 15);
        if (k <= LNN_W8_CHUNK)
            lnn_w8_round(x, k, s, xq);
        for (size_t j0 = 0; j0 < m; j0 += LNN_W8_COLS) {
            const size_t nc = m - j0 < LNN_W8_COLS ? m - j0 : LNN_W8_COLS;
            const uint8_t *w = p->panel + 4 * (j0 / 2) * kp;
            if (k <= LNN_W8_CHUNK) { /* one chunk: the int32 sums are the sums */
                lnn_w8_sums(w, kp, end, xq, (k + 2 * LNN_W - 1) / (2 * LNN_W), nc, s32);
                for (size_t c = 0; c < nc; c++)
                    v[c] = (float)s32[c] * pw;
            } else {
                memset(sum, 0, sizeof sum);
                for (size_t i0 = 0; i0 < k; i0 += LNN_W8_CHUNK) {
                    const size_t n = k - i0 < LNN_W8_CHUNK ? k - i0 : LNN_W8_CHUNK;
                    lnn_w8_round(x + i0, n, s, xq);
                    lnn_w8_sums(w + 2 * i0, kp, end, xq, (n + 2 * LNN_W - 1) / (2 * LNN_W), nc, s32);
                    for (size_t c = 0; c < nc; c++)
                        sum[c] += s32[c];
                }
                for (size_t c = 0; c < nc; c++)
                    v[c] = (float)sum[c] * pw;
            }
            lnn_w8_finish(p, r, j0, nc, v, &d);
        }
    }
}
#define LNN_SIMD_LINEAR_W8A16 LNN_SK(linear_w8a16)
#endif

/* ---- the table ------------------------------------------------------------------ */

/* COPY, ZERO, CONCAT, SPLIT and WHERE are memcpy / memset / select work:
 * the scalar kernels; POW is the C library's (kernels_scalar.c); LE and LT
 * (the adaptive solvers' step test, a few values per step) are not worth
 * 3 KB of vector code per set. */
const lnn_kernels LNN_SKT(LNN_SIMD_ISA) = {
    .isa = LNN_SSTR(LNN_SIMD_ISA),
    .linear = LNN_SIMD_LINEAR,
    .linear_t = LNN_SK(linear_t),
    .linear_q8 = LNN_SK(linear_q8),
    .linear_tq8 = LNN_SIMD_LINEAR_TQ8,
    .linear_w8a16 = LNN_KERNEL_IF(LNN_W8A16_LINKED, LNN_SIMD_LINEAR_W8A16),
    .ewise = LNN_SK(ewise),
    .add = LNN_SK(add),
    .sub = LNN_SK(sub),
    .mul = LNN_SK(mul),
    .div = LNN_SK(div),
    .min = LNN_SK(min),
    .max = LNN_SK(max),
    .pow = lnn_pow__scalar,
    .le = lnn_le__scalar,
    .lt = lnn_lt__scalar,
    .where = lnn_where__scalar,
    .neg = LNN_SK(neg),
    .exp = LNN_SK(exp),
    .sigmoid = LNN_SK(sigmoid),
    .tanh = LNN_SK(tanh),
    .relu = LNN_SK(relu),
    .abs = LNN_SK(abs),
    .sqrt = LNN_SK(sqrt),
    .log = LNN_SK(log),
    .erf = LNN_SK(erf),
    .copy = lnn_copy__scalar,
    .zero = lnn_zero__scalar,
    .concat = lnn_concat__scalar,
    .split = lnn_split__scalar,
    .conv2d = LNN_SK(conv2d),
    .maxpool2d = LNN_SK(maxpool2d),
    .avgpool2d = LNN_SK(avgpool2d),
    .softmax = LNN_SK(softmax),
    .log_softmax = LNN_SK(log_softmax),
    .reduce_sum = LNN_SK(reduce_sum),
    .reduce_mean = LNN_SK(reduce_mean),
    .matmul = LNN_SK(matmul),
};

#undef LNN_SK3
#undef LNN_SK2
#undef LNN_SK
#undef LNN_SKT2
#undef LNN_SKT
#undef LNN_SSTR2
#undef LNN_SSTR
#undef LNN_SIMD_LINEAR
#undef LNN_SIMD_LINEAR_W8A16
#undef LNN_SIMD_LINEAR_TQ8
