/*
 * kernels_avx2.c - the "avx2" kernel set: AVX2 + FMA (8 floats per vector,
 * masked loads and stores for the tails). The only file of the VM compiled
 * with -mavx2 -mfma: kernels.c checks the processor (cpuid) before this set
 * is ever called, so a portable build never runs an AVX instruction on a
 * processor without AVX2.
 *
 * Multiply-adds are fused: exp, sigmoid and tanh may differ from the scalar
 * kernels by an ulp, LINEAR by the rounding of a reordered sum; add, sub,
 * mul, div, neg and relu are bit-exact.
 */
#include "kernels.h"

#if LNN_HAVE_AVX2
#if !LNN_TARGET_AVX2
#error "compile kernels_avx2.c with -mavx2 -mfma"
#endif

#include <immintrin.h>
#include <stdint.h>

#define LNN_SIMD_ISA avx2
#define LNN_W 8

typedef __m256 lnn_vf;
typedef __m256i lnn_vi;
typedef __m256 lnn_vm;
typedef __m128 lnn_vq;

static inline lnn_vf lnn_v_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void lnn_v_store(float *p, lnn_vf v) { _mm256_storeu_ps(p, v); }
static inline lnn_vf lnn_v_set1(float s) { return _mm256_set1_ps(s); }
static inline lnn_vf lnn_v_zero(void) { return _mm256_setzero_ps(); }
static inline lnn_vf lnn_v_add(lnn_vf a, lnn_vf b) { return _mm256_add_ps(a, b); }
static inline lnn_vf lnn_v_sub(lnn_vf a, lnn_vf b) { return _mm256_sub_ps(a, b); }
static inline lnn_vf lnn_v_mul(lnn_vf a, lnn_vf b) { return _mm256_mul_ps(a, b); }
static inline lnn_vf lnn_v_div(lnn_vf a, lnn_vf b) { return _mm256_div_ps(a, b); }
static inline lnn_vf lnn_v_div_fast(lnn_vf a, lnn_vf b) { return _mm256_div_ps(a, b); }
static inline lnn_vf lnn_v_fma(lnn_vf a, lnn_vf b, lnn_vf c)
{
    return _mm256_fmadd_ps(a, b, c);
}
static inline lnn_vf lnn_v_fnma(lnn_vf a, lnn_vf b, lnn_vf c)
{
    return _mm256_fnmadd_ps(a, b, c);
}
static inline lnn_vf lnn_v_sqrt(lnn_vf a) { return _mm256_sqrt_ps(a); }
static inline lnn_vf lnn_v_min(lnn_vf a, lnn_vf b) { return _mm256_min_ps(a, b); }
static inline lnn_vf lnn_v_max(lnn_vf a, lnn_vf b) { return _mm256_max_ps(a, b); }
/* as the SSE3 set's: max(e, acc) (the second operand unless the first is
 * larger), or'ed with e's unordered mask (all ones where e is NaN: a NaN) */
static inline lnn_vf lnn_v_pool_max(lnn_vf acc, lnn_vf e)
{
    return _mm256_or_ps(_mm256_max_ps(e, acc), _mm256_cmp_ps(e, e, _CMP_UNORD_Q));
}
static inline lnn_vf lnn_v_signbit(void) { return _mm256_set1_ps(-0.0f); }
static inline lnn_vf lnn_v_abs(lnn_vf a) { return _mm256_andnot_ps(lnn_v_signbit(), a); }
static inline lnn_vf lnn_v_negate(lnn_vf a) { return _mm256_xor_ps(a, lnn_v_signbit()); }
static inline lnn_vf lnn_v_with_sign(lnn_vf y, lnn_vf x)
{
    return _mm256_or_ps(y, _mm256_and_ps(x, lnn_v_signbit()));
}
static inline lnn_vm lnn_v_lt(lnn_vf a, lnn_vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline lnn_vm lnn_v_isnan(lnn_vf a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
static inline lnn_vf lnn_v_select(lnn_vm m, lnn_vf a, lnn_vf b)
{
    return _mm256_blendv_ps(b, a, m);
}
static inline lnn_vi lnn_v_bits(lnn_vf v) { return _mm256_castps_si256(v); }
static inline lnn_vf lnn_vi_float(lnn_vi i) { return _mm256_castsi256_ps(i); }
static inline lnn_vi lnn_vi_set1(unsigned u) { return _mm256_set1_epi32((int)u); }
static inline lnn_vi lnn_vi_add(lnn_vi a, lnn_vi b) { return _mm256_add_epi32(a, b); }
static inline lnn_vi lnn_vi_sub(lnn_vi a, lnn_vi b) { return _mm256_sub_epi32(a, b); }
static inline lnn_vi lnn_vi_srl1(lnn_vi a) { return _mm256_srli_epi32(a, 1); }
static inline lnn_vi lnn_vi_srl23(lnn_vi a) { return _mm256_srli_epi32(a, 23); }
static inline lnn_vi lnn_vi_sll23(lnn_vi a) { return _mm256_slli_epi32(a, 23); }
static inline lnn_vq lnn_v_reduce4(lnn_vf a, lnn_vf b, lnn_vf c, lnn_vf d)
{
    /* [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, ...] then [a0..3, b0..3, c0..3,
     * d0..3 | a4..7, ...]: add the halves */
    const lnn_vf h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
static inline float lnn_v_reduce1(lnn_vf a)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    q = _mm_hadd_ps(q, q);
    return _mm_cvtss_f32(_mm_hadd_ps(q, q));
}
static inline lnn_vq lnn_q_load(const float *p) { return _mm_loadu_ps(p); }
static inline void lnn_q_store(float *p, lnn_vq q) { _mm_storeu_ps(p, q); }
static inline lnn_vq lnn_q_add(lnn_vq a, lnn_vq b) { return _mm_add_ps(a, b); }
static inline lnn_vq lnn_q_mul(lnn_vq a, lnn_vq b) { return _mm_mul_ps(a, b); }

/* lanes [0, n) of a mask: 8 - n entries into the table */
static const int32_t lnn_avx2_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                          0,  0,  0,  0,  0,  0,  0,  0};
static inline __m256i lnn_v_mask(size_t n)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)(lnn_avx2_mask + 8 - n));
}
static inline lnn_vf lnn_v_loadn(const float *p, size_t n)
{
    return _mm256_maskload_ps(p, lnn_v_mask(n));
}
static inline void lnn_v_storen(float *p, lnn_vf v, size_t n)
{
    _mm256_maskstore_ps(p, lnn_v_mask(n), v);
}

/* Eight int8 as floats: one 8-byte load, sign-extended to 32 bits
 * (vpmovsxbd), converted. */
static inline lnn_vf lnn_v_load_i8(const int8_t *p)
{
    const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)p);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
}
/* vpmovsxbd from memory is already one load and one shuffle per vector:
 * lnn_v_load_i8x2 / x4 are kernels_simd.h's, one lnn_v_load_i8 each */
#define LNN_V_LOAD_I8_EACH 1

/* p[0], p[2], ..., p[14] (reads p[0..16)): the stride-2 taps of a pool */
static inline lnn_vf lnn_v_load_even(const float *p)
{
    /* per 128-bit half [p0 p2 p8 p10 | p4 p6 p12 p14], then the middle quarters swapped */
    const __m256 e = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
}

/* The w8a16 product's integer side (kernels_simd.h); its finish in vectors
 * (FMA3 rounds once, as fmaf). */
#define LNN_W8_VECTOR_FINISH 1
typedef __m256i lnn_vw;
static inline lnn_vi lnn_vi_max(lnn_vi a, lnn_vi b) { return _mm256_max_epi32(a, b); }
/* packs works within 128-bit halves ([a0..3 b0..3 | a4..7 b4..7]): the
 * middle quarters swapped */
static inline lnn_vw lnn_w_pack(lnn_vi a, lnn_vi b)
{
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
}
static inline lnn_vw lnn_w_load(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void lnn_w_store(void *p, lnn_vw v) { _mm256_storeu_si256((__m256i *)p, v); }
static inline lnn_vw lnn_w_loadn(const void *p, size_t n)
{
    return _mm256_maskload_epi32((const int *)p, lnn_v_mask(n));
}
/* pmulhrsw by 128: ((h 128 >> 14) + 1) >> 1 = (h + 128) >> 8 in 32 bits,
 * so 128 for h = 0x7F80.. too */
static inline lnn_vw lnn_w_hi(lnn_vw h) { return _mm256_mulhrs_epi16(h, _mm256_set1_epi16(128)); }
static inline lnn_vi lnn_w_madd(lnn_vi acc, lnn_vw x, lnn_vw q)
{
    return _mm256_add_epi32(acc, _mm256_madd_epi16(x, q));
}
static inline void lnn_w_sum4(lnn_vi a, lnn_vi b, lnn_vi c, lnn_vi d, int32_t *s)
{
    /* as lnn_v_reduce4 */
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    _mm_storeu_si128((__m128i *)(void *)s, _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

#include "kernels_simd.h"

#else
typedef int lnn_kernels_avx2_not_built; /* ISO C: no empty translation unit */
#endif
