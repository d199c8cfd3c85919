/*
 * kernels_avx512.c - the "avx512" kernel set: AVX-512 F/BW/VL/DQ + FMA (16
 * floats per vector, mask registers for the tails and the lane selects).
 * The only file of the VM compiled with -mavx512f -mavx512bw -mavx512vl
 * -mavx512dq -mfma: kernels.c checks the processor (cpuid) and that the OS
 * saves the ZMM state (xgetbv) before this set is ever called.
 *
 * The same templates as avx2 (kernels_simd.h), so the same arithmetic
 * (LINEAR is avx2's own kernel, see LNN_SIMD_LINEAR below):
 * multiply-adds are fused, exp, sigmoid and tanh may differ from the scalar
 * kernels by an ulp, LINEAR by the rounding of a reordered sum; add, sub,
 * mul, div, neg and relu are bit-exact.
 */
#include "kernels.h"

#if LNN_HAVE_AVX512
#if !LNN_TARGET_AVX512
#error "compile kernels_avx512.c with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma"
#endif

#include <immintrin.h>
#include <stdint.h>

#define LNN_SIMD_ISA avx512
#define LNN_W 16
/* 32 vector registers: the multi-row outer products (LINEAR_T / MATMUL_T)
 * take tiles of 6 rows x 4 vectors (24 accumulators) */
#define LNN_LT_COLS 4
/* MATMUL: a strip of b is KC x 2 vectors; 128 x 32 floats = 16 KiB of L1 */
#define LNN_MM_KC 128
/* LINEAR (the dot products, x and w rows along k): the avx2 kernel where it
 * is compiled in. With 16 lanes the same tiles reduce twice the lanes per
 * output and, for short k, run mostly masked tails: on a Zen 4 (which
 * executes a 512-bit FMA as two 256-bit halves, so no more arithmetic per
 * cycle) it measured 3 to 12 % slower than avx2 at k = 64 and 256 (batch 1
 * and 1024), 42 % at k = 17. */
#if LNN_HAVE_AVX2
#define LNN_SIMD_LINEAR lnn_linear__avx2
#endif

typedef __m512 lnn_vf;
typedef __m512i lnn_vi;
typedef __mmask16 lnn_vm;
typedef __m128 lnn_vq;

static inline lnn_vf lnn_v_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void lnn_v_store(float *p, lnn_vf v) { _mm512_storeu_ps(p, v); }
static inline lnn_vf lnn_v_set1(float s) { return _mm512_set1_ps(s); }
static inline lnn_vf lnn_v_zero(void) { return _mm512_setzero_ps(); }
static inline lnn_vf lnn_v_add(lnn_vf a, lnn_vf b) { return _mm512_add_ps(a, b); }
static inline lnn_vf lnn_v_sub(lnn_vf a, lnn_vf b) { return _mm512_sub_ps(a, b); }
static inline lnn_vf lnn_v_mul(lnn_vf a, lnn_vf b) { return _mm512_mul_ps(a, b); }
static inline lnn_vf lnn_v_div(lnn_vf a, lnn_vf b) { return _mm512_div_ps(a, b); }
static inline lnn_vf lnn_v_div_fast(lnn_vf a, lnn_vf b) { return _mm512_div_ps(a, b); }
static inline lnn_vf lnn_v_fma(lnn_vf a, lnn_vf b, lnn_vf c)
{
    return _mm512_fmadd_ps(a, b, c);
}
static inline lnn_vf lnn_v_fnma(lnn_vf a, lnn_vf b, lnn_vf c)
{
    return _mm512_fnmadd_ps(a, b, c);
}
static inline lnn_vf lnn_v_sqrt(lnn_vf a) { return _mm512_sqrt_ps(a); }
static inline lnn_vf lnn_v_min(lnn_vf a, lnn_vf b) { return _mm512_min_ps(a, b); }
static inline lnn_vf lnn_v_max(lnn_vf a, lnn_vf b) { return _mm512_max_ps(a, b); }
/* as the SSE3 set's: max(e, acc) (the second operand unless the first is
 * larger), a NaN e moved in under its mask */
static inline lnn_vf lnn_v_pool_max(lnn_vf acc, lnn_vf e)
{
    return _mm512_mask_mov_ps(_mm512_max_ps(e, acc), _mm512_cmp_ps_mask(e, e, _CMP_UNORD_Q), e);
}
static inline lnn_vf lnn_v_signbit(void) { return _mm512_set1_ps(-0.0f); }
/* the float and / or / xor forms are AVX512DQ */
static inline lnn_vf lnn_v_abs(lnn_vf a) { return _mm512_andnot_ps(lnn_v_signbit(), a); }
static inline lnn_vf lnn_v_negate(lnn_vf a) { return _mm512_xor_ps(a, lnn_v_signbit()); }
static inline lnn_vf lnn_v_with_sign(lnn_vf y, lnn_vf x)
{
    return _mm512_or_ps(y, _mm512_and_ps(x, lnn_v_signbit()));
}
static inline lnn_vm lnn_v_lt(lnn_vf a, lnn_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline lnn_vm lnn_v_isnan(lnn_vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
static inline lnn_vf lnn_v_select(lnn_vm m, lnn_vf a, lnn_vf b)
{
    return _mm512_mask_blend_ps(m, b, a); /* lanes of m from a */
}
static inline lnn_vi lnn_v_bits(lnn_vf v) { return _mm512_castps_si512(v); }
static inline lnn_vf lnn_vi_float(lnn_vi i) { return _mm512_castsi512_ps(i); }
static inline lnn_vi lnn_vi_set1(unsigned u) { return _mm512_set1_epi32((int)u); }
static inline lnn_vi lnn_vi_add(lnn_vi a, lnn_vi b) { return _mm512_add_epi32(a, b); }
static inline lnn_vi lnn_vi_sub(lnn_vi a, lnn_vi b) { return _mm512_sub_epi32(a, b); }
static inline lnn_vi lnn_vi_srl1(lnn_vi a) { return _mm512_srli_epi32(a, 1); }
static inline lnn_vi lnn_vi_srl23(lnn_vi a) { return _mm512_srli_epi32(a, 23); }
static inline lnn_vi lnn_vi_sll23(lnn_vi a) { return _mm512_slli_epi32(a, 23); }

/* the two 256-bit halves added */
static inline __m256 lnn_avx512_fold(lnn_vf a)
{
    return _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
}
static inline lnn_vq lnn_v_reduce4(lnn_vf a, lnn_vf b, lnn_vf c, lnn_vf d)
{
    /* halves folded, then as avx2: [a0+a1, a2+a3, b0+b1, b2+b3 | ...] twice
     * and the 128-bit halves added */
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(lnn_avx512_fold(a), lnn_avx512_fold(b)),
                                    _mm256_hadd_ps(lnn_avx512_fold(c), lnn_avx512_fold(d)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
static inline float lnn_v_reduce1(lnn_vf a)
{
    const __m256 h = lnn_avx512_fold(a);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_hadd_ps(q, q);
    return _mm_cvtss_f32(_mm_hadd_ps(q, q));
}
static inline lnn_vq lnn_q_load(const float *p) { return _mm_loadu_ps(p); }
static inline void lnn_q_store(float *p, lnn_vq q) { _mm_storeu_ps(p, q); }
static inline lnn_vq lnn_q_add(lnn_vq a, lnn_vq b) { return _mm_add_ps(a, b); }
static inline lnn_vq lnn_q_mul(lnn_vq a, lnn_vq b) { return _mm_mul_ps(a, b); }

/* lanes [0, n): masked loads read (and fault on) nothing outside them */
static inline __mmask16 lnn_v_mask(size_t n) { return (__mmask16)((1u << n) - 1u); }
static inline lnn_vf lnn_v_loadn(const float *p, size_t n)
{
    return _mm512_maskz_loadu_ps(lnn_v_mask(n), p);
}
static inline void lnn_v_storen(float *p, lnn_vf v, size_t n)
{
    _mm512_mask_storeu_ps(p, lnn_v_mask(n), v);
}

/* Sixteen int8 as floats: one 16-byte load, sign-extended to 32 bits
 * (vpmovsxbd), converted. */
static inline lnn_vf lnn_v_load_i8(const int8_t *p)
{
    const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)p);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
}
/* vpmovsxbd from memory is already one load and one shuffle per vector:
 * lnn_v_load_i8x2 / x4 are kernels_simd.h's, one lnn_v_load_i8 each */
#define LNN_V_LOAD_I8_EACH 1

/* p[0], p[2], ..., p[30] (reads p[0..32)): the stride-2 taps of a pool */
static inline lnn_vf lnn_v_load_even(const float *p)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p + 16));
}

/* The w8a16 product's integer side (kernels_simd.h), as avx2's, and its
 * finish in vectors. */
#define LNN_W8_VECTOR_FINISH 1
typedef __m512i lnn_vw;
static inline lnn_vi lnn_vi_max(lnn_vi a, lnn_vi b) { return _mm512_max_epi32(a, b); }
/* packs works within 128-bit quarters ([a0..3 b0..3 | a4..7 b4..7 | ...]):
 * a's 64-bit units first */
static inline lnn_vw lnn_w_pack(lnn_vi a, lnn_vi b)
{
    return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), _mm512_packs_epi32(a, b));
}
static inline lnn_vw lnn_w_load(const void *p) { return _mm512_loadu_si512(p); }
static inline void lnn_w_store(void *p, lnn_vw v) { _mm512_storeu_si512(p, v); }
static inline lnn_vw lnn_w_loadn(const void *p, size_t n) { return _mm512_maskz_loadu_epi32(lnn_v_mask(n), p); }
static inline lnn_vw lnn_w_hi(lnn_vw h) { return _mm512_mulhrs_epi16(h, _mm512_set1_epi16(128)); }
static inline lnn_vi lnn_w_madd(lnn_vi acc, lnn_vw x, lnn_vw q)
{
    return _mm512_add_epi32(acc, _mm512_madd_epi16(x, q));
}
static inline __m256i lnn_avx512_fold_i(lnn_vi a)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}
static inline void lnn_w_sum4(lnn_vi a, lnn_vi b, lnn_vi c, lnn_vi d, int32_t *s)
{
    /* as lnn_v_reduce4 */
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(lnn_avx512_fold_i(a), lnn_avx512_fold_i(b)),
                                        _mm256_hadd_epi32(lnn_avx512_fold_i(c), lnn_avx512_fold_i(d)));
    _mm_storeu_si128((__m128i *)(void *)s, _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

#include "kernels_simd.h"

#else
typedef int lnn_kernels_avx512_not_built; /* ISO C: no empty translation unit */
#endif
