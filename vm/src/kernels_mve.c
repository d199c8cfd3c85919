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

/* LINEAR_W8A16, MATMUL_W8A16 (lnn_opcodes.def, kernels.h): the scalar
 * kernel's bits, in integers with MVE. A row of x is rounded into int16 xq
 * (lnn_mve_w8a16_round); a 128-bit load of the panel is 8 int16 halves h of
 * one column pair (j, j+1), inputs i .. i+7 in order (a word per input pair,
 * its low half the even input), so against 8 xq
 *     vmlaldava  T += sum xq h = 256 S(j+1) + S(j)  (int64)
 *     vmovlb.s8  the halves' low bytes, sign-extended: column j's weights
 *     vmladava   E += S(j)                          (int32)
 * are 3 instructions for 16 multiply-adds (the Cortex-M4 kernel's SMLALD /
 * SXTB16 / SMLAD a vector wide), and S(j+1) = (T - E) / 256 exactly (T - E
 * = 256 sum xq (h - sext8(h)) / 256 for any panel bytes, as the definition
 * decodes them). A chunk of at most LNN_MVE_W8_CHUNK inputs keeps |S| <=
 * 256 * 32767 * 128 < 2^31 (int32, and vcvt converts it as (float)S does);
 * a longer row goes chunk by chunk into int64 sums, in blocks of
 * LNN_MVE_W8_COLS columns (256 bytes of them), rounded again for each block
 * (k roundings per 32 columns, against 32 k multiply-adds); a row of at
 * most a chunk is rounded once. Stack: xq 512 B, the sums 128 + 256 B, the
 * converted sums 128 B. */
enum { LNN_MVE_W8_CHUNK = 256, LNN_MVE_W8_COLS = 32 };

/* The largest |x| of a row as bits (ordered like the values; NaN and
 * infinity above 0x7F7FFFFF): integer operations, exact for every input. */
static uint32_t lnn_mve_w8a16_absmax(const float *x, size_t k)
{
    uint32x4_t mx = vdupq_n_u32(0);
    for (size_t i = 0; i < k; i += 4) {
        const uint32x4_t u = vreinterpretq_u32_f32(vldrwq_z_f32(x + i, vctp32q((uint32_t)(k - i))));
        mx = vmaxq_u32(mx, vbicq_u32(u, vdupq_n_u32(0x80000000u)));
    }
    return vmaxvq_u32(0u, mx);
}

/* n inputs of x into xq = round half to even of x s, and 0 up to the next
 * multiple of 8 (an odd n's last pair, and the product's whole vectors).
 * The low 16 bits of vfma(1.5 2^23, x, s): x s is exact (a power of two)
 * and |x s| <= 32767.5 < 2^22, so one rounding to the float's integer ulp,
 * half to even in MVE's fixed rounding mode. MVE flushes a subnormal x or
 * x s to 0, which rounds to 0 as the exact value does: s <= 2^115 (e >=
 * -100), so a subnormal x has |x s| < 2^-11, and a subnormal x s < 1/2. The
 * lanes past n load as 0, hence xq 0. */
static void lnn_mve_w8a16_round(const float *x, size_t n, int16_t *xq, float s)
{
    const float32x4_t magic = vdupq_n_f32(12582912.0f);
    for (size_t i = 0; i < (n + 7) / 8 * 8; i += 4) {
        const mve_pred16_t in = vctp32q((uint32_t)(n > i ? n - i : 0));
        vstrhq_s32(xq + i, vreinterpretq_s32_f32(vfmaq_n_f32(magic, vldrwq_z_f32(x + i, in), s)));
    }
}

/* lnn_mve_w8a16_pairs: the int32 sums S of `count` steps of two column
 * pairs (4 columns: out[0..3] a step) over one chunk of xq. */
typedef struct {
    const int16_t *x;  /* 0: xq, 0 from the chunk's last input up to a multiple of 8 */
    const uint8_t *w;  /* 4: the first pair's first word of the chunk */
    uint32_t stride;   /* 8: bytes from a pair's first word to the next pair's */
    uint32_t vectors;  /* 12: whole vectors of 8 halves (inputs) */
    uint32_t tail;     /* 16: the last vector's byte lanes as a VPR.P0 mask, 0 for none */
    int32_t *out;      /* 20: advanced */
    uint32_t count;    /* 24: steps (>= 1), counted down */
} lnn_mve_w8_job;

void lnn_mve_w8a16_pairs(lnn_mve_w8_job *job);

/* In assembly: gcc keeps vmlaldava's int64 accumulators on the stack (5
 * loads and stores more per 8 inputs at -Os) and has no -O0 allocation for
 * them in an asm statement. Per 8 inputs of two pairs: 3 loads, 2 x
 * (vmlaldava, vmovlb, vmladava), le: 10 instructions for 32 multiply-adds.
 * T in r4:r5 and r8:r9 (vmlaldava and asrl take an even low register and
 * the odd one above it), E in r6 and r12 (vmladava: even registers); x in
 * r10, the two pairs' words in r11 and r7.
 * The last vector reads only the chunk's halves (VPT: the other lanes load
 * as 0, nothing past a pair's words is read). */
__asm__(".pushsection .text.lnn_mve_w8a16_pairs,\"ax\",%progbits\n\t"
        ".p2align 2\n\t"
        ".global lnn_mve_w8a16_pairs\n\t"
        ".syntax unified\n\t"
        ".type lnn_mve_w8a16_pairs, %function\n"
        "lnn_mve_w8a16_pairs:\n\t"
        "push {r4-r11, lr}\n\t"
        "ldrd r1, r2, [r0, #4]\n" /* w, stride */
        "1:\n\t"
        "ldr r3, [r0, #12]\n\t"
        "ldr r10, [r0]\n\t"
        "mov r11, r1\n\t"
        "add r7, r1, r2\n\t"
        "movs r4, #0\n\t"
        "movs r5, #0\n\t"
        "movs r6, #0\n\t"
        "mov r12, r4\n\t"
        "mov r8, r4\n\t"
        "mov r9, r4\n\t"
        "wls lr, r3, 3f\n"
        "2:\n\t"
        "vldrh.16 q0, [r10], #16\n\t"
        "vldrb.8 q1, [r11], #16\n\t"
        "vldrb.8 q2, [r7], #16\n\t"
        "vmlaldava.s16 r4, r5, q0, q1\n\t"
        "vmovlb.s8 q1, q1\n\t"
        "vmladava.s16 r6, q0, q1\n\t"
        "vmlaldava.s16 r8, r9, q0, q2\n\t"
        "vmovlb.s8 q2, q2\n\t"
        "vmladava.s16 r12, q0, q2\n\t"
        "le lr, 2b\n"
        "3:\n\t"
        "ldr r3, [r0, #16]\n\t"
        "cbz r3, 4f\n\t"
        "vmsr p0, r3\n\t"
        "vldrh.16 q0, [r10]\n\t"
        "vpstt\n\t"
        "vldrbt.8 q1, [r11]\n\t"
        "vldrbt.8 q2, [r7]\n\t"
        "vmlaldava.s16 r4, r5, q0, q1\n\t"
        "vmovlb.s8 q1, q1\n\t"
        "vmladava.s16 r6, q0, q1\n\t"
        "vmlaldava.s16 r8, r9, q0, q2\n\t"
        "vmovlb.s8 q2, q2\n\t"
        "vmladava.s16 r12, q0, q2\n"
        "4:\n\t" /* S(j+1) = (T - E) >> 8: exact, and in 32 bits */
        "subs r4, r4, r6\n\t"
        "sbc r5, r5, r6, asr #31\n\t"
        "asrl r4, r5, #8\n\t"
        "subs r8, r8, r12\n\t"
        "sbc r9, r9, r12, asr #31\n\t"
        "asrl r8, r9, #8\n\t"
        "ldr r3, [r0, #20]\n\t"
        "strd r6, r4, [r3]\n\t"
        "strd r12, r8, [r3, #8]\n\t"
        "adds r3, r3, #16\n\t"
        "str r3, [r0, #20]\n\t"
        "add r1, r1, r2, lsl #1\n\t"
        "ldr r3, [r0, #24]\n\t"
        "subs r3, r3, #1\n\t"
        "str r3, [r0, #24]\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t"
        ".size lnn_mve_w8a16_pairs, .-lnn_mve_w8a16_pairs\n\t"
        ".popsection");

/* The int32 sums of a chunk of n inputs (rounded into xq) for the np column
 * pairs at w, kp words a pair, into out[0 .. 2 np - 1] (an odd np: its last
 * pair alone, stride 0, with 2 more values written and unused: out[0 ..
 * 4 ceil(np / 2) - 1] are written). */
static void lnn_mve_w8a16_sums(const int16_t *xq, size_t n, const uint8_t *w, size_t kp, size_t np, int32_t *out)
{
    const size_t nh = 2 * ((n + 1) / 2); /* halves: an odd n's last pair holds xq 0 */
    lnn_mve_w8_job job = {xq, w, (uint32_t)(4 * kp), (uint32_t)(nh / 8), (1u << (2 * (nh % 8))) - 1u, out,
                          (uint32_t)(np / 2)};
    if (np >= 2)
        lnn_mve_w8a16_pairs(&job);
    if (np % 2) {
        job.w = w + 4 * kp * (np - 1);
        job.stride = 0;
        job.count = 1;
        lnn_mve_w8a16_pairs(&job);
    }
}

static void lnn_linear_w8a16__mve(const lnn_linear_w8a16_params *p)
{
    int16_t xq[LNN_MVE_W8_CHUNK];
    int32_t part[LNN_MVE_W8_COLS];
    int64_t sum[LNN_MVE_W8_COLS];
    float v[LNN_MVE_W8_COLS];
    const size_t k = p->k, m = p->m, kp = (k + 1) / 2;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        const uint32_t amax = lnn_mve_w8a16_absmax(x, k);
        size_t d = 0;
        if (amax >= 0x7F800000u) { /* NaN or infinity: the whole row NaN (the scalar kernel's NAN) */
            for (size_t j = 0; j < m; j++) { /* a run of one column: the smallest code, for a rare row */
                size_t one;
                *lnn_w8a16_run(p, r, j, j + 1, &d, &one) = NAN;
            }
            continue;
        }
        const int32_t e = lnn_w8a16_exponent(amax);
        const float s = lnn_pow2f(15 - e), pw = lnn_pow2f(e - 15);
        for (size_t j0 = 0; j0 < m; j0 += LNN_MVE_W8_COLS) {
            const size_t nc = m - j0 < LNN_MVE_W8_COLS ? m - j0 : LNN_MVE_W8_COLS, np = (nc + 1) / 2;
            const uint8_t *w = p->panel + 4 * (j0 / 2) * kp;
            if (k <= LNN_MVE_W8_CHUNK) {
                if (j0 == 0)
                    lnn_mve_w8a16_round(x, k, xq, s);
                lnn_mve_w8a16_sums(xq, k, w, kp, np, part);
                /* (float)S * 2^(e-15) a vector at a time: vcvt rounds S as
                 * (float)S does, and the product is 0, normal (|S| >= 1 and
                 * 2^(e-15) >= 2^-115) or an overflow to inf: nothing for MVE
                 * to flush, the scalar FPU's bits. Whole vectors: the sums
                 * come in steps of 4 columns, 4 ceil(np / 2) >= nc of them. */
                for (size_t c = 0; c < nc; c += 4)
                    vst1q_f32(v + c, vmulq_n_f32(vcvtq_f32_s32(vld1q_s32(part + c)), pw));
            } else {
                memset(sum, 0, sizeof sum);
                for (size_t i0 = 0; i0 < k; i0 += LNN_MVE_W8_CHUNK) {
                    const size_t n = k - i0 < LNN_MVE_W8_CHUNK ? k - i0 : LNN_MVE_W8_CHUNK;
                    lnn_mve_w8a16_round(x + i0, n, xq, s);
                    lnn_mve_w8a16_sums(xq, n, w + 2 * i0, kp, np, part);
                    for (size_t c = 0; c < nc; c++)
                        sum[c] += part[c];
                }
                for (size_t c = 0; c < nc; c++)
                    v[c] = (float)sum[c] * pw; /* int64 to float: rounded to nearest even, as the definition */
            }
            /* columns j0 .. j0+nc-1, destination by destination (odd m: the
             * last pair's phantom column is dropped); the scalar FPU's fmaf,
             * which MVE would not give for subnormal operands or results */
            for (size_t j = j0; j < j0 + nc;) {
                size_t n;
                float *y = lnn_w8a16_run(p, r, j, j0 + nc, &d, &n);
                /* local pointers: p-> fields are not reloaded after each store */
                const float *vj = v + (j - j0), *scale = p->scale + j, *bias = p->bias ? p->bias + j : NULL;
                size_t c = n; /* >= 1: loops with the test at the end */
                if (bias)
                    do
                        *y++ = lnn_fmaf(*vj++, *scale++, *bias++);
                    while (--c);
                else
                    do
                        *y++ = *vj++ * *scale++;
                    while (--c);
                j += n;
            }
        }
    }
}
#define LNN_SIMD_LINEAR_W8A16 lnn_linear_w8a16__mve

/* LINEAR_TQ8, MATMUL_TQ8 (kernels.h): the shared kernel's outer products
 * (8 accumulator vectors, 4 widened weight vectors and a broadcast x) need
 * twice the 8 Q registers MVE has. Here x stays in a core register, for
 * the vector-by-scalar VFMA: per vector of 4 columns and input i,
 *     vldrb.s32   the 4 int8 of row i of Qt, each in its 32-bit lane
 *     vcvt        to float (exact)
 *     vfma        acc += w x[i]      (x[i] loaded once per i, in a core register)
 * in tiles of 7 accumulators (28 columns) and one register for the weight,
 * then 4, then 2, then one vector, tail-predicated (nothing past column m
 * is read or written, so m below 4 needs no scalar kernel). A tile is a
 * function of its own: inlined into the row loop, gcc -Os keeps x's step
 * on the stack and reloads it every input (and the steps come in r2, r3:
 * the 5th argument on would be reloaded too). Each column is summed in i
 * order (or reversed) by fused multiply-adds, as the shared kernel: within
 * the kernel test's 1e-5 of the scalar sums. Then times the column's scale,
 * plus its bias, in vectors. MVE flushes a denormal x, sum, scale or
 * product to 0, as the shared kernel did on this core: a denormal x times
 * an int8 is below 2^-119, under the test's 1e-30 floor. NaN and infinity
 * propagate as in the scalar sums. Rows one at a time: re-reading the
 * weight for each row costs no instruction more per multiply-add. */
#define LNN_MVE_TQ8_ACC(c) float32x4_t a##c = vdupq_n_f32(0.0f);
#define LNN_MVE_TQ8_FMA(c) a##c = vfmaq_n_f32(a##c, vcvtq_f32_s32(vldrbq_s32(qi + 4 * (c))), xv);
#define LNN_MVE_TQ8_OUT(c)                                                                         \
    a##c = vmulq_f32(a##c, vld1q_f32(scale + 4 * (c)));                                            \
    vst1q_f32(y + 4 * (c), bias ? vaddq_f32(a##c, vld1q_f32(bias + 4 * (c))) : a##c);
#define LNN_MVE_TQ8_REP2(M) M(0) M(1)
#define LNN_MVE_TQ8_REP4(M) M(0) M(1) M(2) M(3)
#define LNN_MVE_TQ8_REP7(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6)

/* 4 NV columns of one row into y: x and q at the first input of the sum,
 * dx and dq the steps to the next; k >= 1; scale and bias (or NULL) at the
 * tile's first column. */
#define LNN_MVE_TQ8_TILE(NV)                                                                        \
    __attribute__((noinline)) static void lnn_mve_tq8_tile##NV(                                     \
        const float *x, const int8_t *q, ptrdiff_t dx, ptrdiff_t dq, size_t k, const float *scale,   \
        const float *bias, float *y)                                                                \
    {                                                                                               \
        LNN_MVE_TQ8_REP##NV(LNN_MVE_TQ8_ACC)                                                        \
        const int8_t *qi = q;                                                                       \
        do {                                                                                        \
            const float xv = *x;                                                                    \
            x += dx;                                                                                \
            LNN_MVE_TQ8_REP##NV(LNN_MVE_TQ8_FMA)                                                    \
            qi += dq;                                                                               \
        } while (--k);                                                                              \
        LNN_MVE_TQ8_REP##NV(LNN_MVE_TQ8_OUT)                                                        \
    }
LNN_MVE_TQ8_TILE(7)
LNN_MVE_TQ8_TILE(4)
LNN_MVE_TQ8_TILE(2)

/* n columns (1 <= n <= 4) as the tiles; lanes from n on are not read or
 * written. */
static void lnn_mve_tq8_tail(const float *x, const int8_t *q, ptrdiff_t dx, ptrdiff_t dq, size_t k,
                             const float *scale, const float *bias, float *y, size_t n)
{
    const mve_pred16_t in = vctp32q((uint32_t)n);
    float32x4_t a = vdupq_n_f32(0.0f);
    do {
        const float xv = *x;
        x += dx;
        a = vfmaq_n_f32(a, vcvtq_f32_s32(vldrbq_z_s32(q, in)), xv);
        q += dq;
    } while (--k);
    a = vmulq_f32(a, vldrwq_z_f32(scale, in));
    vstrwq_p_f32(y, bias ? vaddq_f32(a, vldrwq_z_f32(bias, in)) : a, in);
}

void lnn_linear_tq8__mve(const lnn_linear_q8_params *p)
{
    const size_t k = p->k, m = p->m;
    if (k == 0) { /* no sums: 0 times the scales, plus the biases (the tiles need k >= 1) */
        lnn_linear_tq8__scalar(p);
        return;
    }
    const lnn_sum_order o = lnn_sum_order_of(p->reverse, k, p->ldq);
    const size_t first = o.first;
    const ptrdiff_t dq = o.dw, dx = o.dx;
    const int8_t *q = p->q + first * p->ldq;
    const float *scale = p->scale, *bias = p->bias;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k + first;
        float *y = p->y + r * p->ldy;
        size_t j = 0;
#define LNN_MVE_TQ8_COLS(NV)                                                                       \
    for (; j + 4 * (NV) <= m; j += 4 * (NV))                                                       \
        lnn_mve_tq8_tile##NV(x, q + j, dx, dq, k, scale + j, bias ? bias + j : NULL, y + j);
        LNN_MVE_TQ8_COLS(7)
        LNN_MVE_TQ8_COLS(4)
        LNN_MVE_TQ8_COLS(2)
#undef LNN_MVE_TQ8_COLS
        for (; j < m; j += 4)
            lnn_mve_tq8_tail(x, q + j, dx, dq, k, scale + j, bias ? bias + j : NULL, y + j,
                             m - j < 4 ? m - j : 4);
    }
}
#define LNN_SIMD_LINEAR_TQ8 lnn_linear_tq8__mve

#undef LNN_MVE_TQ8_ACC
#undef LNN_MVE_TQ8_FMA
#undef LNN_MVE_TQ8_OUT
#undef LNN_MVE_TQ8_REP2
#undef LNN_MVE_TQ8_REP4
#undef LNN_MVE_TQ8_REP7
#undef LNN_MVE_TQ8_TILE

#include "kernels_simd.h"

#else
typedef int lnn_kernels_mve_not_built; /* ISO C: no empty translation unit */
#endif
