/*
 * vmath.h - the constants of the VM's exp, sigmoid, tanh, log and erf,
 * shared by the scalar kernels (kernels_scalar.c, the reference) and every
 * SIMD set (kernels_simd.h), so that all of them run the same algorithm.
 *
 * exp(x)
 *   x is clamped to [LNN_EXP_LO, LNN_EXP_HI]: below LNN_EXP_LO exp rounds
 *   to 0, above LNN_EXP_HI it is +inf (ln(FLT_MAX) = 88.7228), and the
 *   clamped values still give exactly that. Then
 *     n = round(x / ln 2)       by adding 1.5 * 2^23 (round to nearest even);
 *                               n is in [-150, 128]
 *     r = x - n * LN2_HI - n * LN2_LO   (Cody-Waite: LN2_HI has 9 significant
 *                               bits, so n * LN2_HI and the first
 *                               subtraction are exact); |r| <= 0.347
 *     e^r = 1 + r + r^2 * P(r), P the Taylor polynomial of degree 5
 *                               (1/2! ... 1/7!); truncation error
 *                               r^8/8! < 6e-9 relative, < 0.05 ulp
 *     exp(x) = e^r * 2^n1 * 2^n2, n1 = floor(n / 2), n2 = n - n1, both in
 *                               [-75, 64]: each factor is a normal float built
 *                               in the exponent bits, the first product is
 *                               exact and the second rounds once, so results
 *                               near FLT_MAX and denormal results come out
 *                               right, and overflow gives +inf.
 *   NaN gives NaN (x + x); +inf gives +inf and -inf gives 0 through the clamp.
 *
 * sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with
 *   e = exp(-|x|) in (0, 1]: no overflow, and tiny results for x << 0 keep
 *   their precision (down to the denormals).
 *
 * tanh(x) = sign(x) * t(|x|):
 *   |x| < LNN_TANH_SMALL:  t(a) = a + a * (a^2 * Q(a^2)), Q of degree 4, a
 *                          minimax fit of (tanh(a) - a) / a^3 made for this
 *                          VM (relative error < 5e-9 on [0, 0.625])
 *   otherwise:             t(a) = 1 - 2 / (exp(2 min(a, 10)) + 1), which is
 *                          exactly 1.0f from a = 9.01 on
 *   so +-0 keeps its sign, denormals give themselves, +-inf gives +-1 and
 *   NaN gives NaN.
 *
 * log(x), x > 0 finite (the algorithm of Cephes' logf):
 *   a denormal x is first multiplied by 2^23 (exact); then x = m 2^e with
 *   m in [0.5, 1) from the bits (m: x's significand under the exponent of
 *   0.5; e as a float: the exponent bits added to the bits of 2^23, minus
 *   2^23, exact), and when m < sqrt(1/2): m = 2m, e = e - 1, so that f =
 *   m - 1 is in [-0.293, 0.414] (exact: Sterbenz). Then
 *     log(x) = f - f^2/2 + f^3 P(f) + e LN2_LO + e LN2_HI
 *   P of degree 8 (Cephes' coefficients, relative error < 1e-7 on that
 *   range), e LN2_HI exact (the constants of exp). +inf gives +inf, +-0
 *   gives -inf, x < 0 gives NaN, NaN gives NaN.
 *
 * erf(x) = sign(x) * r(|x|), with a = |x|:
 *   a < LNN_ERF_SMALL: r = a A(a^2) + a C, C = 2/sqrt(pi) rounded to float, A
 *                      of degree 6 (a least-squares fit of erf(a)/a - C
 *                      made for this VM, relative error < 2e-9 on [0,
 *                      0.875]). a C is the large term, so that where
 *                      AArch32 NEON flushes the tiny a A(a^2) to zero the
 *                      result stays within an ulp (a + a (C - 1 + ...)
 *                      would lose 13 %)
 *   otherwise:         r = 1 - exp(-c^2) B(1/c), c = min(a, 4), B of degree
 *                      7 in 1/c (a least-squares fit of erfc(c) exp(c^2) on
 *                      [0.875, 4], weighted by exp(-c^2): absolute error of
 *                      r < 1e-9); from a = 3.92 on r rounds to 1
 *   +-0 keeps its sign, +-inf gives +-1, NaN gives NaN; |r| <= 1.
 *
 * sqrt, abs, min and max are exact (IEEE sqrt rounds correctly).
 */
#ifndef LNN_VMATH_H
#define LNN_VMATH_H

#define LNN_EXP_LO (-104.0f)
#define LNN_EXP_HI 89.0f
#define LNN_EXP_LOG2E 1.44269502f    /* 1 / ln 2 */
#define LNN_EXP_LN2_HI 0.693359375f  /* 0x3F318000: 9 significant bits */
#define LNN_EXP_LN2_LO (-2.12194442e-4f) /* ln 2 - LN2_HI */
#define LNN_EXP_MAGIC 12582912.0f   /* 1.5 * 2^23: x + MAGIC rounds x to an integer */
#define LNN_EXP_MAGIC_BITS 0x4B400000u
/* bits(x * LOG2E + MAGIC) - LNN_EXP_NBIAS = n + 150, in [0, 278] */
#define LNN_EXP_NBIAS (LNN_EXP_MAGIC_BITS - 150u)
/* 2^(n1) with n1 + 75 = h has the bits (h + 52) << 23 (52 = 127 - 75) */
#define LNN_EXP_EBIAS 52u
#define LNN_EXP_P2 0.5f           /* 1/2! */
#define LNN_EXP_P3 0.166666672f   /* 1/3! */
#define LNN_EXP_P4 0.0416666679f  /* 1/4! */
#define LNN_EXP_P5 0.00833333377f /* 1/5! */
#define LNN_EXP_P6 0.00138888892f /* 1/6! */
#define LNN_EXP_P7 0.000198412701f /* 1/7! */

#define LNN_TANH_SMALL 0.625f
#define LNN_TANH_BIG 10.0f /* tanh(a) rounds to 1 well before */
#define LNN_TANH_Q0 (-0.333332807f)
#define LNN_TANH_Q1 0.133314431f
#define LNN_TANH_Q2 (-0.0537397824f)
#define LNN_TANH_Q3 0.0206393152f
#define LNN_TANH_Q4 (-0.00570524717f)

#define LNN_LOG_TWO23 8388608.0f       /* 2^23: a denormal times it is normal */
#define LNN_LOG_TWO23_BITS 0x4B000000u /* bits of 2^23: + k (< 2^23) is 2^23 + k */
#define LNN_LOG_HALF_BITS 0x3F000000u  /* bits of 0.5 */
#define LNN_LOG_EBIAS 126.0f           /* x = m 2^(bits >> 23 - 126), m in [0.5, 1) */
#define LNN_LOG_SQRTHF 0.707106781f    /* sqrt(1/2) */
#define LNN_LOG_P0 0.070376836292f
#define LNN_LOG_P1 (-0.11514610310f)
#define LNN_LOG_P2 0.11676998740f
#define LNN_LOG_P3 (-0.12420140846f)
#define LNN_LOG_P4 0.14249322787f
#define LNN_LOG_P5 (-0.16668057665f)
#define LNN_LOG_P6 0.20000714765f
#define LNN_LOG_P7 (-0.24999993993f)
#define LNN_LOG_P8 0.33333331174f

#define LNN_ERF_SMALL 0.875f
#define LNN_ERF_BIG 4.0f /* erf(a) rounds to 1 well before */
#define LNN_ERF_C 1.12837923f /* 2 / sqrt(pi) rounded; A0 is most of the rest */
#define LNN_ERF_A0 (-5.88412448e-08f)
#define LNN_ERF_A1 (-0.376126349f)
#define LNN_ERF_A2 0.112837359f
#define LNN_ERF_A3 (-0.0268617384f)
#define LNN_ERF_A4 0.00520713301f
#define LNN_ERF_A5 (-0.000821554393f)
#define LNN_ERF_A6 8.69459982e-05f
#define LNN_ERF_B0 (-0.000218973859f)
#define LNN_ERF_B1 0.563326776f
#define LNN_ERF_B2 0.0280449968f
#define LNN_ERF_B3 (-0.454713404f)
#define LNN_ERF_B4 0.508853614f
#define LNN_ERF_B5 (-0.302889615f)
#define LNN_ERF_B6 0.0992923453f
#define LNN_ERF_B7 (-0.0141121754f)

#endif
