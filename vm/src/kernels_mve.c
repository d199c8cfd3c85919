/*
 * kernels_mve.c - the "mve" kernel set: the M-profile Vector Extension
 * (Helium, Armv8.1-M with MVE floating point: Cortex-M55, M85), 4 floats
 * per 128-bit vector, the SIMD kernels of kernels_simd.h over ACLE's
 * arm_mve.h.
 *
 * Fused multiply-adds (vfmaq / vfmsq), as the AVX2 and AArch64 NEON sets:
 * exp, sigmoid and tanh may differ from the scalar kernels by an ulp, LINEAR
 * by the rounding of a reordered sum. MVE has no vector division and no
 * vector square root: DIV, SQRT and the divisions of sigmoid and tanh go
 * lane by lane through the scalar FPU (IEEE, correctly rounded), so add,
 * sub, mul, div, sqrt, neg, abs and relu give the scalar kernels' bits,
 * except that MVE floating-point arithmetic and compares flush denormal
 * inputs and results to zero (always: Armv8.1-M runs them with the standard
 * FPSCR value, as AArch32 NEON; the kernel test accounts for it). The
 * scalar kernels stay IEEE on the same core: the target builds with
 * -fno-tree-vectorize, so that GCC does not turn their loops into MVE.
 * Lane masks are MVE predicates (mve_pred16_t, 4 bits per 32-bit lane);
 * partial vectors are tail-predicated loads and stores (vctp32q), which
 * neither read nor write past the n-th float.
 */
#include "kernels.h"

#if LNN_HAVE_MVE

#include <arm_mve.h>
#include <math.h>

#define LNN_SIMD_ISA mve
#define LNN_W 4
/* 8 vector registers (Q0-Q7): LINEAR_T's row tiles of 4 rows x 2 vectors
 * are the smallest the shared code has; they spill a little, less than 6 */
#define LNN_LT_ROWS 4
#define LNN_LT_COLS 2
/* four int8 per vldrb.s32: two loads for eight */
#define LNN_V_LOAD_I8_EACH 1
#if LNN_HAVE_CM4
/* w8a16: the Cortex-M4 kernel (kernels_cm4.c). MVE requires the DSP extension whose SMLALD / SXTB16 / SMLAD it
 * is built on, and it gives the scalar kernel's bits; the M55 image links the cm4 set beside this one. */
#define LNN_SIMD_LINEAR_W8A16 lnn_linear_w8a16__cm4
#endif

typedef float32x4_t lnn_vf;
typedef uint32x4_t lnn_vi;
typedef mve_pred16_t lnn_vm;
typedef float32x4_t lnn_vq;

static inline lnn_vf lnn_v_load(const float *p) { return vld1q_f32(p); }
static inline void lnn_v_store(float *p, lnn_vf v) { vst1q_f32(p, v); }
static inline lnn_vf lnn_v_set1(float s) { return vdupq_n_f32(s); }
static inline lnn_vf lnn_v_zero(void) { return vdupq_n_f32(0.0f); }
static inline lnn_vf lnn_v_add(lnn_vf a, lnn_vf b) { return vaddq_f32(a, b); }
static inline lnn_vf lnn_v_sub(lnn_vf a, lnn_vf b) { return vsubq_f32(a, b); }
static inline lnn_vf lnn_v_mul(lnn_vf a, lnn_vf b) { return vmulq_f32(a, b); }
/* no vector division: lane by lane through the scalar FPU (IEEE) */
static inline lnn_vf lnn_v_div(lnn_vf a, lnn_vf b)
{
    lnn_vf q = a;
    q = vsetq_lane_f32(vgetq_lane_f32(a, 0) / vgetq_lane_f32(b, 0), q, 0);
    q = vsetq_lane_f32(vgetq_lane_f32(a, 1) / vgetq_lane_f32(b, 1), q, 1);
    q = vsetq_lane_f32(vgetq_lane_f32(a, 2) / vgetq_lane_f32(b, 2), q, 2);
    q = vsetq_lane_f32(vgetq_lane_f32(a, 3) / vgetq_lane_f32(b, 3), q, 3);
    return q;
}
/* sigmoid's and tanh's divisions the same way: exact, as the scalar kernels */
static inline lnn_vf lnn_v_div_fast(lnn_vf a, lnn_vf b) { return lnn_v_div(a, b); }
static inline lnn_vf lnn_v_fma(lnn_vf a, lnn_vf b, lnn_vf c) { return vfmaq_f32(c, a, b); }
static inline lnn_vf lnn_v_fnma(lnn_vf a, lnn_vf b, lnn_vf c) { return vfmsq_f32(c, a, b); }
/* no vector square root: lane by lane (VSQRT, correctly rounded) */
static inline lnn_vf lnn_v_sqrt(lnn_vf a)
{
    lnn_vf r = a;
    r = vsetq_lane_f32(sqrtf(vgetq_lane_f32(a, 0)), r, 0);
    r = vsetq_lane_f32(sqrtf(vgetq_lane_f32(a, 1)), r, 1);
    r = vsetq_lane_f32(sqrtf(vgetq_lane_f32(a, 2)), r, 2);
    r = vsetq_lane_f32(sqrtf(vgetq_lane_f32(a, 3)), r, 3);
    return r;
}
/* MVE has only the minNum / maxNum forms (VMINNM, VMAXNM); the kernels
 * handle NaN themselves */
static inline lnn_vf lnn_v_min(lnn_vf a, lnn_vf b) { return vminnmq_f32(a, b); }
static inline lnn_vf lnn_v_max(lnn_vf a, lnn_vf b) { return vmaxnmq_f32(a, b); }
/* the scalar step as a compare and a select (VMAXNM would drop a NaN): e
 * where e > acc (GT is false for NaN) or e is NaN (NE with itself) */
static inline lnn_vf lnn_v_pool_max(lnn_vf acc, lnn_vf e)
{
    return vpselq_f32(e, acc, (mve_pred16_t)(vcmpgtq_f32(e, acc) | vcmpneq_f32(e, e)));
}
/* sign-bit operations on the integer side: exact for every input */
static inline lnn_vf lnn_v_abs(lnn_vf a)
{
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(a), vdupq_n_u32(0x80000000u)));
}
static inline lnn_vf lnn_v_negate(lnn_vf a)
{
    return vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(a), vdupq_n_u32(0x80000000u)));
}
static inline lnn_vf lnn_v_with_sign(lnn_vf y, lnn_vf x)
{
    const uint32x4_t s = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u));
    return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(y), s));
}
/* b > a: MVE compares set their lanes by the condition codes, and LT is
 * "less than or unordered" (true for NaN), GT "greater than" only */
static inline lnn_vm lnn_v_lt(lnn_vf a, lnn_vf b) { return vcmpgtq_f32(b, a); }
static inline lnn_vm lnn_v_isnan(lnn_vf a) { return vcmpneq_f32(a, a); }
static inline lnn_vf lnn_v_select(lnn_vm m, lnn_vf a, lnn_vf b) { return vpselq_f32(a, b, m); }
static inline lnn_vi lnn_v_bits(lnn_vf v) { return vreinterpretq_u32_f32(v); }
static inline lnn_vf lnn_vi_float(lnn_vi i) { return vreinterpretq_f32_u32(i); }
static inline lnn_vi lnn_vi_set1(unsigned u) { return vdupq_n_u32(u); }
static inline lnn_vi lnn_vi_add(lnn_vi a, lnn_vi b) { return vaddq_u32(a, b); }
static inline lnn_vi lnn_vi_sub(lnn_vi a, lnn_vi b) { return vsubq_u32(a, b); }
static inline lnn_vi lnn_vi_srl1(lnn_vi a) { return vshrq_n_u32(a, 1); }
static inline lnn_vi lnn_vi_srl23(lnn_vi a) { return vshrq_n_u32(a, 23); }
static inline lnn_vi lnn_vi_sll23(lnn_vi a) { return vshlq_n_u32(a, 23); }
/* No floating-point add across a vector in MVE: the lanes are the scalar
 * FPU's S registers (Q0 = S0-S3), summed there pairwise. */
static inline float lnn_v_reduce1(lnn_vf a)
{
    return (vgetq_lane_f32(a, 0) + vgetq_lane_f32(a, 1)) +
           (vgetq_lane_f32(a, 2) + vgetq_lane_f32(a, 3));
}
static inline lnn_vq lnn_v_reduce4(lnn_vf a, lnn_vf b, lnn_vf c, lnn_vf d)
{
    lnn_vq q = vdupq_n_f32(lnn_v_reduce1(a));
    q = vsetq_lane_f32(lnn_v_reduce1(b), q, 1);
    q = vsetq_lane_f32(lnn_v_reduce1(c), q, 2);
    return vsetq_lane_f32(lnn_v_reduce1(d), q, 3);
}
static inline lnn_vq lnn_q_load(const float *p) { return vld1q_f32(p); }
static inline void lnn_q_store(float *p, lnn_vq q) { vst1q_f32(p, q); }
static inline lnn_vq lnn_q_add(lnn_vq a, lnn_vq b) { return vaddq_f32(a, b); }
static inline lnn_vq lnn_q_mul(lnn_vq a, lnn_vq b) { return vmulq_f32(a, b); }
/* tail predication: lanes n.. are not read (and load as 0) / not written */
static inline lnn_vf lnn_v_loadn(const float *p, size_t n)
{
    return vldrwq_z_f32(p, vctp32q((uint32_t)n));
}
static inline void lnn_v_storen(float *p, lnn_vf v, size_t n)
{
    vstrwq_p_f32(p, v, vctp32q((uint32_t)n));
}

/* Four int8 as floats: vldrb.s32 widens each byte into its 32-bit lane. */
static inline lnn_vf lnn_v_load_i8(const int8_t *p) { return vcvtq_f32_s32(vldrbq_s32(p)); }
/* p[0], p[2], p[4], p[6]: the first vector of a de-interleaving load */
static inline lnn_vf lnn_v_load_even(const float *p) { return vld2q_f32(p).val[0]; }

#include "kernels_simd.h"

#else
typedef int lnn_kernels_mve_not_built; /* ISO C: no empty translation unit */
#endif
