/*
 * kernels_neon.c - the "neon" kernel set: ARM Advanced SIMD, 4 floats per
 * vector, for both AArch64 and AArch32 (armv7 with -mfpu=neon...).
 *
 * AArch64: fused multiply-adds (vfmaq), vdivq, vpaddq; exp, sigmoid and tanh
 *   may differ from the scalar kernels by an ulp, LINEAR by the rounding of
 *   a reordered sum; add, sub, mul, div, neg and relu are bit-exact.
 * AArch32: no vdivq and no fused multiply-add in plain NEON: vmlaq / vmlsq
 *   (multiply, round, add, as the scalar kernels do), and the divisions of
 *   DIV, sigmoid and tanh go lane by lane through the VFP (IEEE, keeps
 *   denormals), so every kernel but LINEAR gives the scalar kernel's bits
 *   except where AArch32 NEON arithmetic flushes denormal inputs and
 *   results to zero (always; the kernel test accounts for it).
 */
#include "kernels.h"

#if LNN_HAVE_NEON

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#define LNN_SIMD_ISA neon
#define LNN_W 4

typedef float32x4_t lnn_vf;
typedef uint32x4_t lnn_vi;
typedef uint32x4_t lnn_vm;
typedef float32x4_t lnn_vq;

static inline lnn_vf lnn_v_load(const float *p) { return vld1q_f32(p); }
static inline void lnn_v_store(float *p, lnn_vf v) { vst1q_f32(p, v); }
static inline lnn_vf lnn_v_set1(float s) { return vdupq_n_f32(s); }
static inline lnn_vf lnn_v_zero(void) { return vdupq_n_f32(0.0f); }
static inline lnn_vf lnn_v_add(lnn_vf a, lnn_vf b) { return vaddq_f32(a, b); }
static inline lnn_vf lnn_v_sub(lnn_vf a, lnn_vf b) { return vsubq_f32(a, b); }
static inline lnn_vf lnn_v_mul(lnn_vf a, lnn_vf b) { return vmulq_f32(a, b); }
#if LNN_NEON_A64
static inline lnn_vf lnn_v_div(lnn_vf a, lnn_vf b) { return vdivq_f32(a, b); }
static inline lnn_vf lnn_v_div_fast(lnn_vf a, lnn_vf b) { return vdivq_f32(a, b); }
static inline lnn_vf lnn_v_fma(lnn_vf a, lnn_vf b, lnn_vf c) { return vfmaq_f32(c, a, b); }
static inline lnn_vf lnn_v_fnma(lnn_vf a, lnn_vf b, lnn_vf c) { return vfmsq_f32(c, a, b); }
static inline lnn_vf lnn_v_sqrt(lnn_vf a) { return vsqrtq_f32(a); }
#else
static inline lnn_vf lnn_v_div(lnn_vf a, lnn_vf b)
{
    float u[4], v[4];
    vst1q_f32(u, a);
    vst1q_f32(v, b);
    for (int i = 0; i < 4; i++)
        u[i] = u[i] / v[i];
    return vld1q_f32(u);
}
/* Sigmoid and tanh divide the same way: a reciprocal estimate with
 * Newton-Raphson steps (vrecpeq / vrecpsq) would leave them up to 3 ulp
 * from the scalar kernels, the VFP is exact and keeps them bit-identical
 * (up to the flushed denormals). */
static inline lnn_vf lnn_v_div_fast(lnn_vf a, lnn_vf b) { return lnn_v_div(a, b); }
static inline lnn_vf lnn_v_fma(lnn_vf a, lnn_vf b, lnn_vf c) { return vmlaq_f32(c, a, b); }
static inline lnn_vf lnn_v_fnma(lnn_vf a, lnn_vf b, lnn_vf c) { return vmlsq_f32(c, a, b); }
/* no vector square root: lane by lane through the VFP (IEEE), as DIV */
static inline lnn_vf lnn_v_sqrt(lnn_vf a)
{
    float u[4];
    vst1q_f32(u, a);
    for (int i = 0; i < 4; i++)
        u[i] = sqrtf(u[i]);
    return vld1q_f32(u);
}
#endif
static inline lnn_vf lnn_v_min(lnn_vf a, lnn_vf b) { return vminq_f32(a, b); }
static inline lnn_vf lnn_v_max(lnn_vf a, lnn_vf b) { return vmaxq_f32(a, b); }
/* FMAX (AArch64) and VMAX (AArch32) give a NaN when either operand is one
 * (AArch32: the default NaN), as the scalar step, in one instruction
 * (FMAXNM, the IEEE maxNum, would drop it). Of +0 and -0 they give +0 where
 * the scalar step keeps the first: the one difference, kept for speed. */
static inline lnn_vf lnn_v_pool_max(lnn_vf acc, lnn_vf e) { return vmaxq_f32(acc, e); }
/* sign-bit operations on the integer side: exact for every input */
static inline lnn_vf lnn_v_abs(lnn_vf a)
{
    return vreinterpretq_f32_u32(
        vbicq_u32(vreinterpretq_u32_f32(a), vdupq_n_u32(0x80000000u)));
}
static inline lnn_vf lnn_v_negate(lnn_vf a)
{
    return vreinterpretq_f32_u32(
        veorq_u32(vreinterpretq_u32_f32(a), vdupq_n_u32(0x80000000u)));
}
static inline lnn_vf lnn_v_with_sign(lnn_vf y, lnn_vf x)
{
    const uint32x4_t s = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u));
    return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(y), s));
}
static inline lnn_vm lnn_v_lt(lnn_vf a, lnn_vf b) { return vcltq_f32(a, b); }
static inline lnn_vm lnn_v_isnan(lnn_vf a) { return vmvnq_u32(vceqq_f32(a, a)); }
static inline lnn_vf lnn_v_select(lnn_vm m, lnn_vf a, lnn_vf b) { return vbslq_f32(m, a, b); }
static inline lnn_vi lnn_v_bits(lnn_vf v) { return vreinterpretq_u32_f32(v); }
static inline lnn_vf lnn_vi_float(lnn_vi i) { return vreinterpretq_f32_u32(i); }
static inline lnn_vi lnn_vi_set1(unsigned u) { return vdupq_n_u32(u); }
static inline lnn_vi lnn_vi_add(lnn_vi a, lnn_vi b) { return vaddq_u32(a, b); }
static inline lnn_vi lnn_vi_sub(lnn_vi a, lnn_vi b) { return vsubq_u32(a, b); }
static inline lnn_vi lnn_vi_srl1(lnn_vi a) { return vshrq_n_u32(a, 1); }
static inline lnn_vi lnn_vi_srl23(lnn_vi a) { return vshrq_n_u32(a, 23); }
static inline lnn_vi lnn_vi_sll23(lnn_vi a) { return vshlq_n_u32(a, 23); }
#if LNN_NEON_A64
static inline lnn_vq lnn_v_reduce4(lnn_vf a, lnn_vf b, lnn_vf c, lnn_vf d)
{
    return vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
}
static inline float lnn_v_reduce1(lnn_vf a) { return vaddvq_f32(a); }
#else
static inline float32x2_t lnn_v_fold(lnn_vf a)
{
    return vadd_f32(vget_low_f32(a), vget_high_f32(a));
}
static inline lnn_vq lnn_v_reduce4(lnn_vf a, lnn_vf b, lnn_vf c, lnn_vf d)
{
    return vcombine_f32(vpadd_f32(lnn_v_fold(a), lnn_v_fold(b)),
                        vpadd_f32(lnn_v_fold(c), lnn_v_fold(d)));
}
static inline float lnn_v_reduce1(lnn_vf a)
{
    const float32x2_t s = lnn_v_fold(a);
    return vget_lane_f32(vpadd_f32(s, s), 0);
}
#endif
static inline lnn_vq lnn_q_load(const float *p) { return vld1q_f32(p); }
static inline void lnn_q_store(float *p, lnn_vq q) { vst1q_f32(p, q); }
static inline lnn_vq lnn_q_add(lnn_vq a, lnn_vq b) { return vaddq_f32(a, b); }
static inline lnn_vq lnn_q_mul(lnn_vq a, lnn_vq b) { return vmulq_f32(a, b); }
static inline lnn_vf lnn_v_loadn(const float *p, size_t n)
{
    float t[LNN_W] = {0.0f};
    memcpy(t, p, n * sizeof(float));
    return vld1q_f32(t);
}
static inline void lnn_v_storen(float *p, lnn_vf v, size_t n)
{
    float t[LNN_W];
    vst1q_f32(t, v);
    memcpy(p, t, n * sizeof(float));
}

/* Four int8 (little-endian in bytes) as floats: widened to 16 then 32 bits
 * (vmovl), converted. */
static inline lnn_vf lnn_v_i8x4(uint32_t bytes)
{
    const int16x8_t h = vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(bytes)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
}
static inline lnn_vf lnn_v_load_i8(const int8_t *p)
{
    uint32_t u;
    memcpy(&u, p, sizeof u);
    return lnn_v_i8x4(u);
}
/* Eight / sixteen int8 as two / four vectors, from one load: vld1(q)_s8,
 * vmovl_s8 of each half, vmovl_s16 of each quarter, converted. */
static inline void lnn_v_i8h8(int8x8_t b, lnn_vf *v)
{
    const int16x8_t h = vmovl_s8(b);
    v[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
    v[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(h)));
}
static inline void lnn_v_load_i8x2(const int8_t *p, lnn_vf *v) { lnn_v_i8h8(vld1_s8(p), v); }
static inline void lnn_v_load_i8x4(const int8_t *p, lnn_vf *v)
{
    const int8x16_t b = vld1q_s8(p);
    lnn_v_i8h8(vget_low_s8(b), v);
    lnn_v_i8h8(vget_high_s8(b), v + 2);
}
/* p[0], p[2], p[4], p[6] (reads p[0..8)): the stride-2 taps of a pool */
static inline lnn_vf lnn_v_load_even(const float *p) { return vld2q_f32(p).val[0]; }

/* The w8a16 product's integer side (kernels_simd.h): the sums in lnn_vi
 * (uint32x4_t) lanes, signed by reinterpretation (two's complement). */
typedef int16x8_t lnn_vw;
#if LNN_NEON_A64 /* vfmaq rounds once and keeps subnormals (AArch32 NEON: vmlaq, flushed): the finish in vectors */
#define LNN_W8_VECTOR_FINISH 1
#endif
static inline lnn_vi lnn_vi_max(lnn_vi a, lnn_vi b) { return vmaxq_u32(a, b); } /* lanes < 2^31 */
static inline lnn_vw lnn_w_pack(lnn_vi a, lnn_vi b)
{
    return vcombine_s16(vmovn_s32(vreinterpretq_s32_u32(a)), vmovn_s32(vreinterpretq_s32_u32(b)));
}
static inline lnn_vw lnn_w_load(const void *p) { return vld1q_s16((const int16_t *)p); }
static inline void lnn_w_store(void *p, lnn_vw v) { vst1q_s16((int16_t *)p, v); }
static inline lnn_vw lnn_w_loadn(const void *p, size_t n)
{
    int16_t t[2 * LNN_W] = {0};
    memcpy(t, p, 4 * n);
    return vld1q_s16(t);
}
/* the rounding shift (h + 128) >> 8, computed without overflow: 128 for
 * h = 0x7F80.. too */
static inline lnn_vw lnn_w_hi(lnn_vw h) { return vrshrq_n_s16(h, 8); }
static inline lnn_vi lnn_w_madd(lnn_vi acc, lnn_vw x, lnn_vw q)
{
    int32x4_t a = vmlal_s16(vreinterpretq_s32_u32(acc), vget_low_s16(x), vget_low_s16(q));
#if LNN_NEON_A64
    a = vmlal_high_s16(a, x, q);
#else
    a = vmlal_s16(a, vget_high_s16(x), vget_high_s16(q));
#endif
    return vreinterpretq_u32_s32(a);
}
static inline void lnn_w_sum4(lnn_vi a, lnn_vi b, lnn_vi c, lnn_vi d, int32_t *s)
{
#if LNN_NEON_A64
    const int32x4_t ab = vpaddq_s32(vreinterpretq_s32_u32(a), vreinterpretq_s32_u32(b));
    const int32x4_t cd = vpaddq_s32(vreinterpretq_s32_u32(c), vreinterpretq_s32_u32(d));
    vst1q_s32(s, vpaddq_s32(ab, cd));
#else
    const uint32x2_t fa = vadd_u32(vget_low_u32(a), vget_high_u32(a)), fb = vadd_u32(vget_low_u32(b), vget_high_u32(b));
    const uint32x2_t fc = vadd_u32(vget_low_u32(c), vget_high_u32(c)), fd = vadd_u32(vget_low_u32(d), vget_high_u32(d));
    vst1q_s32(s, vreinterpretq_s32_u32(vcombine_u32(vpadd_u32(fa, fb), vpadd_u32(fc, fd))));
#endif
}

#include "kernels_simd.h"

#else
typedef int lnn_kernels_neon_not_built; /* ISO C: no empty translation unit */
#endif
