/*
 * kernels_sse3.c - the "sse3" kernel set: SSE3 (4 floats per vector, hadd
 * for the dot-product reductions), compiled with -msse3 on its own.
 *
 * Multiply and add stay separate (no FMA on these processors), so the
 * element-wise kernels, exp, sigmoid and tanh give bit for bit the scalar
 * kernels' results.
 */
#include "kernels.h"

#if LNN_HAVE_SSE3
#if !LNN_TARGET_SSE3
#error "compile kernels_sse3.c with -msse3"
#endif

#include <pmmintrin.h>
#include <string.h>

#define LNN_SIMD_ISA sse3
#define LNN_W 4

typedef __m128 lnn_vf;
typedef __m128i lnn_vi;
typedef __m128 lnn_vm;
typedef __m128 lnn_vq;

static inline lnn_vf lnn_v_load(const float *p) { return _mm_loadu_ps(p); }
static inline void lnn_v_store(float *p, lnn_vf v) { _mm_storeu_ps(p, v); }
static inline lnn_vf lnn_v_set1(float s) { return _mm_set1_ps(s); }
static inline lnn_vf lnn_v_zero(void) { return _mm_setzero_ps(); }
static inline lnn_vf lnn_v_add(lnn_vf a, lnn_vf b) { return _mm_add_ps(a, b); }
static inline lnn_vf lnn_v_sub(lnn_vf a, lnn_vf b) { return _mm_sub_ps(a, b); }
static inline lnn_vf lnn_v_mul(lnn_vf a, lnn_vf b) { return _mm_mul_ps(a, b); }
static inline lnn_vf lnn_v_div(lnn_vf a, lnn_vf b) { return _mm_div_ps(a, b); }
static inline lnn_vf lnn_v_div_fast(lnn_vf a, lnn_vf b) { return _mm_div_ps(a, b); }
static inline lnn_vf lnn_v_fma(lnn_vf a, lnn_vf b, lnn_vf c)
{
    return _mm_add_ps(_mm_mul_ps(a, b), c);
}
static inline lnn_vf lnn_v_fnma(lnn_vf a, lnn_vf b, lnn_vf c)
{
    return _mm_sub_ps(c, _mm_mul_ps(a, b));
}
static inline lnn_vf lnn_v_sqrt(lnn_vf a) { return _mm_sqrt_ps(a); }
static inline lnn_vf lnn_v_min(lnn_vf a, lnn_vf b) { return _mm_min_ps(a, b); }
static inline lnn_vf lnn_v_max(lnn_vf a, lnn_vf b) { return _mm_max_ps(a, b); }
/* MAXPS gives its second operand unless the first is larger (a NaN in
 * either: the second), so max(e, acc) is the scalar step but for a NaN e;
 * or'ing in e's unordered mask (all ones: a NaN) lets that through, three
 * instructions where a select would take five */
static inline lnn_vf lnn_v_pool_max(lnn_vf acc, lnn_vf e)
{
    return _mm_or_ps(_mm_max_ps(e, acc), _mm_cmpunord_ps(e, e));
}
static inline lnn_vf lnn_v_signbit(void) { return _mm_set1_ps(-0.0f); }
static inline lnn_vf lnn_v_abs(lnn_vf a) { return _mm_andnot_ps(lnn_v_signbit(), a); }
static inline lnn_vf lnn_v_negate(lnn_vf a) { return _mm_xor_ps(a, lnn_v_signbit()); }
static inline lnn_vf lnn_v_with_sign(lnn_vf y, lnn_vf x)
{
    return _mm_or_ps(y, _mm_and_ps(x, lnn_v_signbit()));
}
static inline lnn_vm lnn_v_lt(lnn_vf a, lnn_vf b) { return _mm_cmplt_ps(a, b); }
static inline lnn_vm lnn_v_isnan(lnn_vf a) { return _mm_cmpunord_ps(a, a); }
static inline lnn_vf lnn_v_select(lnn_vm m, lnn_vf a, lnn_vf b)
{
    return _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b));
}
static inline lnn_vi lnn_v_bits(lnn_vf v) { return _mm_castps_si128(v); }
static inline lnn_vf lnn_vi_float(lnn_vi i) { return _mm_castsi128_ps(i); }
static inline lnn_vi lnn_vi_set1(unsigned u) { return _mm_set1_epi32((int)u); }
static inline lnn_vi lnn_vi_add(lnn_vi a, lnn_vi b) { return _mm_add_epi32(a, b); }
static inline lnn_vi lnn_vi_sub(lnn_vi a, lnn_vi b) { return _mm_sub_epi32(a, b); }
static inline lnn_vi lnn_vi_srl1(lnn_vi a) { return _mm_srli_epi32(a, 1); }
static inline lnn_vi lnn_vi_srl23(lnn_vi a) { return _mm_srli_epi32(a, 23); }
static inline lnn_vi lnn_vi_sll23(lnn_vi a) { return _mm_slli_epi32(a, 23); }
static inline lnn_vq lnn_v_reduce4(lnn_vf a, lnn_vf b, lnn_vf c, lnn_vf d)
{
    return _mm_hadd_ps(_mm_hadd_ps(a, b), _mm_hadd_ps(c, d));
}
static inline float lnn_v_reduce1(lnn_vf a)
{
    const lnn_vf h = _mm_hadd_ps(a, a);
    return _mm_cvtss_f32(_mm_hadd_ps(h, h));
}
static inline lnn_vq lnn_q_load(const float *p) { return _mm_loadu_ps(p); }
static inline void lnn_q_store(float *p, lnn_vq q) { _mm_storeu_ps(p, q); }
static inline lnn_vq lnn_q_add(lnn_vq a, lnn_vq b) { return _mm_add_ps(a, b); }
static inline lnn_vq lnn_q_mul(lnn_vq a, lnn_vq b) { return _mm_mul_ps(a, b); }
static inline lnn_vf lnn_v_loadn(const float *p, size_t n)
{
    float t[LNN_W] = {0.0f};
    memcpy(t, p, n * sizeof(float));
    return _mm_loadu_ps(t);
}
static inline void lnn_v_storen(float *p, lnn_vf v, size_t n)
{
    float t[LNN_W];
    _mm_storeu_ps(t, v);
    memcpy(p, t, n * sizeof(float));
}

/* Four int8 (little-endian in bytes) as floats. SSE3 cannot sign-extend
 * bytes (pmovsxbd is SSE4.1): each byte is unpacked to the top of its
 * 32-bit lane, then shifted down arithmetically. */
static inline lnn_vf lnn_v_i8x4(int32_t bytes)
{
    __m128i v = _mm_cvtsi32_si128(bytes);
    v = _mm_unpacklo_epi8(v, v);
    v = _mm_unpacklo_epi16(v, v);
    return _mm_cvtepi32_ps(_mm_srai_epi32(v, 24));
}
static inline lnn_vf lnn_v_load_i8(const int8_t *p)
{
    int32_t u;
    memcpy(&u, p, sizeof u);
    return lnn_v_i8x4(u);
}
/* Eight / sixteen int8 as two / four vectors, from one load: bytes
 * doubled into words (unpack with themselves), words doubled into dwords,
 * so each byte fills its 32-bit lane; shifted down arithmetically. */
static inline lnn_vf lnn_v_i8w4(__m128i w) /* dwords from 4 doubled bytes */
{
    return _mm_cvtepi32_ps(_mm_srai_epi32(w, 24));
}
static inline void lnn_v_load_i8x2(const int8_t *p, lnn_vf *v)
{
    const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)p);
    const __m128i w = _mm_unpacklo_epi8(b, b);
    v[0] = lnn_v_i8w4(_mm_unpacklo_epi16(w, w));
    v[1] = lnn_v_i8w4(_mm_unpackhi_epi16(w, w));
}
static inline void lnn_v_load_i8x4(const int8_t *p, lnn_vf *v)
{
    const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)p);
    const __m128i lo = _mm_unpacklo_epi8(b, b), hi = _mm_unpackhi_epi8(b, b);
    v[0] = lnn_v_i8w4(_mm_unpacklo_epi16(lo, lo));
    v[1] = lnn_v_i8w4(_mm_unpackhi_epi16(lo, lo));
    v[2] = lnn_v_i8w4(_mm_unpacklo_epi16(hi, hi));
    v[3] = lnn_v_i8w4(_mm_unpackhi_epi16(hi, hi));
}

/* p[0], p[2], ..., p[6] (reads p[0..8)): the stride-2 taps of a pool */
static inline lnn_vf lnn_v_load_even(const float *p)
{
    return _mm_shuffle_ps(_mm_loadu_ps(p), _mm_loadu_ps(p + 4), _MM_SHUFFLE(2, 0, 2, 0));
}

/* The w8a16 product's integer side (kernels_simd.h): SSE2 alone (no
 * pmaxsd, pmulhrsw: SSE4.1, SSSE3). */
typedef __m128i lnn_vw;
static inline lnn_vi lnn_vi_max(lnn_vi a, lnn_vi b)
{
    const __m128i gt = _mm_cmpgt_epi32(a, b);
    return _mm_or_si128(_mm_and_si128(gt, a), _mm_andnot_si128(gt, b));
}
static inline lnn_vw lnn_w_pack(lnn_vi a, lnn_vi b) { return _mm_packs_epi32(a, b); }
static inline lnn_vw lnn_w_load(const void *p) { return _mm_loadu_si128((const __m128i *)p); }
static inline void lnn_w_store(void *p, lnn_vw v) { _mm_storeu_si128((__m128i *)p, v); }
static inline lnn_vw lnn_w_loadn(const void *p, size_t n)
{
    uint32_t t[LNN_W] = {0};
    memcpy(t, p, 4 * n);
    return _mm_loadu_si128((const __m128i *)(const void *)t);
}
/* (h >> 8) plus bit 7 of h (the low byte's sign, from the top of h << 8) */
static inline lnn_vw lnn_w_hi(lnn_vw h)
{
    return _mm_sub_epi16(_mm_srai_epi16(h, 8), _mm_srai_epi16(_mm_slli_epi16(h, 8), 15));
}
static inline lnn_vi lnn_w_madd(lnn_vi acc, lnn_vw x, lnn_vw q) { return _mm_add_epi32(acc, _mm_madd_epi16(x, q)); }
static inline void lnn_w_sum4(lnn_vi a, lnn_vi b, lnn_vi c, lnn_vi d, int32_t *s)
{
    const __m128i ab = _mm_add_epi32(_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b)); /* a02 b02 a13 b13 */
    const __m128i cd = _mm_add_epi32(_mm_unpacklo_epi32(c, d), _mm_unpackhi_epi32(c, d));
    _mm_storeu_si128((__m128i *)(void *)s, _mm_add_epi32(_mm_unpacklo_epi64(ab, cd), _mm_unpackhi_epi64(ab, cd)));
}

#include "kernels_simd.h"

#else
typedef int lnn_kernels_sse3_not_built; /* ISO C: no empty translation unit */
#endif
