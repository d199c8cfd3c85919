/*
 * vmath.h - the constants of the VM's exp, sigmoid and tanh, shared by the
 * scalar kernels (kernels_scalar.c, the reference) and every SIMD set
 * (kernels_simd.h), so that all of them run the same algorithm.
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

#endif
