/*
 * kernel_test.c - every kernel of every SIMD set compiled in (and supported
 * by this processor) against the scalar kernel, plus the scalar exp,
 * sigmoid and tanh against the C library in double precision.
 *
 *   make kerneltest O=...  &&  $(O)/lnn_kernel_test
 *
 * Prints one line per kernel and a last line "N passed, M failed"; exits 1
 * if anything failed. Criteria:
 *   add sub mul div min max pow le lt neg relu abs sqrt copy zero concat
 *            bit-exact (any NaN matches any NaN), on every broadcast plan
 *            (same shape, scalar a / b, row a / b, general), in place, with
 *            tails of every length and unaligned (4-byte) pointers
 *   split    every set's kernel (they share the scalar one) against the
 *            definition, bit-exact: 1..8 parts of 1..9 columns, 1..5 rows,
 *            nothing written around the parts
 *   exp sigmoid tanh log erf
 *            <= 2 ulp from the scalar kernel on a sweep with +-0, denormals,
 *            +-88..+-104, +-1e30, +-FLT_MAX, +-inf, NaN, a stride through
 *            all bit patterns and dense random ranges
 *   linear (LINEAR and MATMUL_NT, batch 1 and batch > 1), linear_t (LINEAR_T
 *   and MATMUL_T: the weight transposed, row strides ldw, ldy > m)
 *            |simd - scalar| <= 1e-5 * (sum_k |x_k w_k| + |bias|) + 1e-30 on
 *            random shapes (odd k and m, every tail), NaN and inf propagate;
 *            nothing written between m and ldy; forwards and reversed sums
 *            (each against the scalar kernel in the same direction); the
 *            scalar linear_t gives the bits of the scalar linear on the
 *            transposed weight
 *   linear_q8 (LINEAR_Q8, MATMUL_NTQ8), linear_tq8 (LINEAR_TQ8, MATMUL_TQ8:
 *   the columns split over several calls as over destinations, y rows of
 *   ldy > m, byte-misaligned weights)
 *            |simd - scalar| <= 1e-5 * (|scale| sum_k |x_k q_k| + |bias|)
 *            + 1e-30 on k, m in 1..65 (every tail, and the sizes below one
 *            vector) and batch 1..9, with and without bias, forwards and
 *            reversed (_T), NaN and inf propagate; nothing written between
 *            m and ldy or after y; the scalar linear_tq8 gives the bits of
 *            the scalar linear_q8 on the transposed weight, which is
 *            (sum x q) * scale + bias within 1e-5 in double precision
 *   ewise (EWISEn)
 *            random programs over operands of every mode (same, row, single
 *            value), in place or not: each set's ewise gives the bits of the
 *            same set's add ... relu kernels run one by one, and a program
 *            of add ... lt, neg relu abs sqrt gives the scalar ewise's bits; the
 *            same for the LTC step's fused form (lnn_ew_form, random operand
 *            numbering, registers and modes), which lnn_ew_form finds and
 *            does not find in a program one change away
 *   f16 widening (lnn_init's float16 constants)
 *            every finite binary16 bit pattern gives the float32 bits of its
 *            value by definition (normals, subnormals, +-0), computed in
 *            double
 *   linear_w8a16 (LINEAR_W8A16, MATMUL_W8A16; kernel_w8a16_test.inc)
 *            every set bit-exact against the definition (frexpf, nearbyintf,
 *            int64 sums, fmaf); the verifier's rules and both interpreters
 *            on hand-built models
 *   NaN at run time (kernel_nan_test.inc)
 *            every set, the scalar one included, against PyTorch's NaN
 *            semantics: element-wise ops, EWISE, the pools, softmax and the
 *            reductions, conv2d, matmul and the products
 *   scalar exp sigmoid tanh log erf vs libm (double) <= 3 ulp (sigmoid reaches
 *            2.4: exp is good to ~1 ulp, and e / (1 + e) can turn its
 *            relative error into 2+ ulps of a result at the top of a binade)
 *
 * AArch32 NEON flushes denormal inputs and results of its arithmetic to
 * zero (LNN_NEON_FTZ), and so does MVE (the mve set on a Cortex-M55, run
 * under QEMU by firmware/kernel_test_semihost.c): there, for that set, both
 * the result and the scalar reference are compared with denormals taken as
 * (unsigned) zero, and a reference computed from inputs with denormals
 * flushed is accepted too. Everywhere else the comparison is exact as described.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* lnn_f16_to_f32_bits */
#include "crc32.h"    /* the hand-built w8a16 models */
#include "kernels.h"

static int n_passed, n_failed;
static size_t n_ftz; /* elements that matched only with denormals as 0 */

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static float uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rnd() >> 11) / 9007199254740992.0);
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A random float of any exponent (not NaN). */
static float any_float(void)
{
    for (;;) {
        const float f = from_bits((uint32_t)rnd());
        if (f == f)
            return f;
    }
}

static int is_denormal(float f) { return f != 0.0f && fabsf(f) < FLT_MIN; }

/* Denormals and -0 to +0 (the AArch32 NEON view). */
static float ftz(float f) { return is_denormal(f) || f == 0.0f ? 0.0f : f; }

/* Monotonic integer image of a float: ulp distance = difference. */
static int64_t ordered(float f)
{
    const uint32_t u = to_bits(f);
    return u & 0x80000000u ? -(int64_t)(u & 0x7FFFFFFFu) - 1 : (int64_t)u;
}

/* ulp distance of two floats; NaN matches only NaN (then 0). */
static double ulps(float a, float b)
{
    if (a != a || b != b)
        return (a != a && b != b) ? 0.0 : INFINITY;
    const int64_t d = ordered(a) - ordered(b);
    return (double)(d < 0 ? -d : d);
}

/* Error of float g against the exact r, in ulps of the float nearest r. */
static double ulps_vs_double(float g, double r)
{
    const float rf = (float)r;
    if (r != r || g != g)
        return (r != r && g != g) ? 0.0 : INFINITY;
    if (isinf(rf) || isinf(g))
        return g == rf ? 0.0 : INFINITY;
    int e;
    frexp(r, &e); /* r = m 2^e, m in [0.5, 1) */
    if (e < -125)
        e = -125; /* denormals: the ulp is 2^-149 */
    return fabs((double)g - r) / ldexp(1.0, e - 24);
}

/* 1 if kernel set k flushes denormals (AArch32 NEON; MVE, whose
 * floating-point arithmetic and compares always flush, as Armv8.1-M defines
 * it and QEMU emulates it). */
static int set_ftz(const lnn_kernels *k)
{
#if LNN_HAVE_NEON && LNN_NEON_FTZ
    return k == &lnn_kernels_neon;
#elif LNN_HAVE_MVE
    return k == &lnn_kernels_mve;
#else
    (void)k;
    return 0;
#endif
}

static size_t nregs_or1(size_t n) { return n ? n : 1; }

static void report(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-4s ", ok ? "ok" : "FAIL");
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (ok)
        n_passed++;
    else
        n_failed++;
}

static float *falloc(size_t n)
{
    float *p = malloc((n + 32) * sizeof(float));
    if (!p) {
        fputs("lnn_kernel_test: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

/* ---- the sweep of inputs for the unary kernels --------------------------- */

/* Its size: bit patterns spread over all 2^32 (every exponent and sign at
 * any size here) and random values. An emulated core takes smaller ones,
 * and fewer random programs below (firmware/Makefile simdtest: the
 * Cortex-M55 under QEMU). */
#ifndef LNN_KTEST_STRIDE_N
#define LNN_KTEST_STRIDE_N 65536
#endif
#ifndef LNN_KTEST_RAND_N
#define LNN_KTEST_RAND_N 200000
#endif
/* random element-wise programs per set: general and the LTC step's form */
#ifndef LNN_KTEST_EW_PROGRAMS
#define LNN_KTEST_EW_PROGRAMS 3000
#endif
#ifndef LNN_KTEST_LTC_PROGRAMS
#define LNN_KTEST_LTC_PROGRAMS 2000
#endif

static float *sweep;
static size_t sweep_n;

static void make_sweep(void)
{
    static const float special[] = {
        0.0f, 1.0f, 0.5f, 2.0f, 1e-3f, 1e-7f, 0.1f, 0.3f, 0.6f, 0.625f,
        0.62499994f, 0.62500006f, 0.7f, 1.5f, 3.0f, 5.0f, 8.0f, 9.0f, 9.01f,
        9.1f, 10.0f, 10.5f, 15.0f, 20.0f, 30.0f, 44.0f, 45.0f, 50.0f, 80.0f,
        87.0f, 87.33f, 87.34f, 87.5f, 88.0f, 88.37f, 88.38f, 88.5f, 88.7f,
        88.72283f, 88.722839f, 88.72284f, 88.73f, 88.8f, 89.0f, 89.5f, 90.0f,
        100.0f, 102.0f, 103.0f, 103.27f, 103.28f, 103.29f, 103.97f, 103.98f,
        104.0f, 104.5f, 105.0f, 120.0f, 150.0f, 200.0f, 1e4f, 1e10f, 1e30f,
        1e38f, FLT_MAX, INFINITY, FLT_MIN, 1.5e-38f, 1e-39f, 1e-40f, 1e-44f,
        1.4e-45f, 0.34657359f, 0.34657362f, 0.6931472f, 1.0397208f,
    };
    const size_t ns = sizeof special / sizeof special[0];
    const size_t stride_n = LNN_KTEST_STRIDE_N, rand_n = LNN_KTEST_RAND_N;
    sweep_n = 2 * ns + 1 + stride_n + rand_n;
    sweep = falloc(sweep_n);
    size_t n = 0;
    for (size_t i = 0; i < ns; i++) {
        sweep[n++] = special[i];
        sweep[n++] = -special[i];
    }
    sweep[n++] = NAN;
    /* every exponent and sign: bit patterns 2^32 / stride_n + 1 apart (NaNs included) */
    const uint32_t step = (uint32_t)(0x100000000ull / stride_n) + 1u;
    for (size_t i = 0; i < stride_n; i++)
        sweep[n++] = from_bits((uint32_t)(i * step + 12345u));
    for (size_t i = 0; i < rand_n; i++) {
        switch (i % 5) {
        case 0:
            sweep[n++] = uniform(-1.0f, 1.0f);
            break;
        case 1:
            sweep[n++] = uniform(-12.0f, 12.0f);
            break;
        case 2:
            sweep[n++] = uniform(-110.0f, 110.0f);
            break;
        case 3:
            sweep[n++] = uniform(-0.7f, 0.7f);
            break;
        default:
            sweep[n++] = any_float();
            break;
        }
    }
}

/* ---- unary kernels ----------------------------------------------------- */

typedef struct {
    const char *name;
    size_t off; /* offsetof the kernel in lnn_kernels */
    double (*ref)(double); /* libm reference, NULL: exact op */
} unary_desc;

static double ref_exp(double x) { return exp(x); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_tanh(double x) { return tanh(x); }
static double ref_log(double x) { return log(x); }
static double ref_erf(double x) { return erf(x); }

static const unary_desc unaries[] = {
    {"neg", offsetof(lnn_kernels, neg), NULL},
    {"relu", offsetof(lnn_kernels, relu), NULL},
    {"exp", offsetof(lnn_kernels, exp), ref_exp},
    {"sigmoid", offsetof(lnn_kernels, sigmoid), ref_sigmoid},
    {"tanh", offsetof(lnn_kernels, tanh), ref_tanh},
    {"log", offsetof(lnn_kernels, log), ref_log},
    {"erf", offsetof(lnn_kernels, erf), ref_erf},
    {"abs", offsetof(lnn_kernels, abs), NULL},
    {"sqrt", offsetof(lnn_kernels, sqrt), NULL},
    {"copy", offsetof(lnn_kernels, copy), NULL},
};

static lnn_unary_fn unary_of(const lnn_kernels *k, const unary_desc *d)
{
    lnn_unary_fn fn;
    memcpy(&fn, (const char *)k + d->off, sizeof fn);
    return fn;
}

static void run_unary(lnn_unary_fn fn, float *y, const float *x, size_t n)
{
    lnn_unary_params p = {y, x, n};
    fn(&p);
}

/* Compares g with the scalar kernel's r (r_ftz: on inputs with denormals
 * flushed, for FTZ sets); returns the ulp error. */
static double elem_err(float g, float r, float r_ftz, int ftzmode)
{
    if (!ftzmode)
        return ulps(g, r);
    const double e1 = ulps(ftz(g), ftz(r)), e2 = ulps(ftz(g), ftz(r_ftz));
    const double e = e1 < e2 ? e1 : e2;
    if (ulps(g, r) > e)
        n_ftz++;
    return e;
}

static const char *ftz_note(int fz)
{
    static char buf[96];
    if (!fz)
        return "";
    snprintf(buf, sizeof buf, " (denormals as 0: %zu results matched only so)", n_ftz);
    return buf;
}

/* Scalar exp / sigmoid / tanh against libm. */
static void test_scalar_accuracy(void)
{
    const lnn_kernels *s = &lnn_kernels_scalar;
    float *y = falloc(sweep_n);
    for (size_t u = 0; u < sizeof unaries / sizeof unaries[0]; u++) {
        const unary_desc *d = &unaries[u];
        if (!d->ref)
            continue;
        run_unary(unary_of(s, d), y, sweep, sweep_n);
        double worst = 0.0;
        size_t at = 0;
        for (size_t i = 0; i < sweep_n; i++) {
            const double e = ulps_vs_double(y[i], d->ref((double)sweep[i]));
            if (e > worst) {
                worst = e;
                at = i;
            }
        }
        report(worst <= 3.0, "scalar %-8s vs libm (double): %zu values, max %.2f ulp "
               "(x = %.9g: %.9g, libm %.9g)", d->name, sweep_n, worst,
               (double)sweep[at], (double)y[at], d->ref((double)sweep[at]));
    }
    free(y);
}

/* lnn_init's float16 -> float32 conversion: every finite half against
 * (-1)^s * (e ? 1024 + m : m) * 2^(max(e, 1) - 25), exact in double. */
static void test_f16_widening(void)
{
    uint32_t n = 0, wrong = 0, first = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        const uint32_t e = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
        if (e == 0x1Fu)
            continue; /* inf, NaN: refused by the loader */
        const double mag = ldexp((double)(e ? 1024u + man : man), (int)(e ? e : 1u) - 25);
        const float want = (float)((h & 0x8000u) ? -mag : mag);
        n++;
        if (lnn_f16_to_f32_bits(h) != to_bits(want) && wrong++ == 0)
            first = h;
    }
    report(wrong == 0, "f16 widening: %u finite halves, %u wrong (first 0x%04x)", n, wrong, first);
}

static void test_unary(const lnn_kernels *k)
{
    const lnn_kernels *s = &lnn_kernels_scalar;
    const int fz = set_ftz(k);
    float *ref = falloc(sweep_n), *ref_ftz = falloc(sweep_n), *got = falloc(sweep_n);
    float *xin_ftz = falloc(sweep_n);
    for (size_t i = 0; i < sweep_n; i++)
        xin_ftz[i] = is_denormal(sweep[i]) ? copysignf(0.0f, sweep[i]) : sweep[i];
    for (size_t u = 0; u < sizeof unaries / sizeof unaries[0]; u++) {
        const unary_desc *d = &unaries[u];
        const lnn_unary_fn fk = unary_of(k, d), fs = unary_of(s, d);
        const double tol = d->ref ? 2.0 : 0.0;
        n_ftz = 0;
        run_unary(fs, ref, sweep, sweep_n);
        run_unary(fs, ref_ftz, xin_ftz, sweep_n);
        run_unary(fk, got, sweep, sweep_n);
        double worst = 0.0, worst_libm = 0.0;
        size_t at = 0, bad = 0;
        for (size_t i = 0; i < sweep_n; i++) {
            const double e = elem_err(got[i], ref[i], ref_ftz[i], fz);
            if (e > tol)
                bad++;
            if (e > worst) {
                worst = e;
                at = i;
            }
            if (d->ref && !(fz && (is_denormal(sweep[i]) || is_denormal(got[i]) ||
                                   is_denormal(ref[i])))) {
                const double el = ulps_vs_double(got[i], d->ref((double)sweep[i]));
                worst_libm = el > worst_libm ? el : worst_libm;
            }
        }
        /* tails, offsets and in place: n = 1 .. 2 * 8 + 3 at 4-byte offsets */
        size_t tail_bad = 0, guard_bad = 0;
        for (size_t n = 1; n <= 19; n++) {
            for (size_t off = 0; off < 4; off++) {
                float x[64], yk[64], ys[64], yin[64], yin_ftz[64];
                for (size_t i = 0; i < 64; i++) {
                    x[i] = sweep[(rnd() % sweep_n)];
                    yk[i] = ys[i] = 12345.0f;
                }
                for (size_t i = 0; i < 64; i++)
                    yin[i] = x[i];
                run_unary(fk, yk + off, x + off, n);
                run_unary(fs, ys + off, x + off, n);
                for (size_t i = 0; i < 64; i++)
                    yin_ftz[i] = is_denormal(x[i]) ? 0.0f : x[i];
                run_unary(fs, yin_ftz + off, yin_ftz + off, n);
                run_unary(fk, yin + off, yin + off, n); /* in place */
                for (size_t i = 0; i < 64; i++) {
                    const int inside = i >= off && i < off + n;
                    if (!inside) {
                        if (to_bits(yk[i]) != to_bits(12345.0f))
                            guard_bad++;
                        continue;
                    }
                    if (elem_err(yk[i], ys[i], yin_ftz[i], fz) > tol ||
                        elem_err(yin[i], ys[i], yin_ftz[i], fz) > tol)
                        tail_bad++;
                }
            }
        }
        const int ok = bad == 0 && tail_bad == 0 && guard_bad == 0;
        if (d->ref)
            report(ok, "%-6s %-8s vs scalar: %zu values, max %.0f ulp (x = %.9g: %.9g vs "
                   "%.9g), vs libm max %.2f ulp%s; tails %zu bad, guards %zu bad",
                   k->isa, d->name, sweep_n, worst, (double)sweep[at], (double)got[at],
                   (double)ref[at], worst_libm, ftz_note(fz), tail_bad, guard_bad);
        else
            report(ok, "%-6s %-8s vs scalar: %zu values, %zu differ%s; tails %zu bad, "
                   "guards %zu bad", k->isa, d->name, sweep_n, bad, ftz_note(fz),
                   tail_bad, guard_bad);
    }
    free(ref);
    free(ref_ftz);
    free(got);
    free(xin_ftz);
}

/* ---- binary kernels ----------------------------------------------------- */

typedef struct {
    const char *name;
    size_t off;
} binary_desc;

static const binary_desc binaries[] = {
    {"add", offsetof(lnn_kernels, add)},
    {"sub", offsetof(lnn_kernels, sub)},
    {"mul", offsetof(lnn_kernels, mul)},
    {"div", offsetof(lnn_kernels, div)},
    {"min", offsetof(lnn_kernels, min)},
    {"max", offsetof(lnn_kernels, max)},
    {"pow", offsetof(lnn_kernels, pow)},
    {"le", offsetof(lnn_kernels, le)},
    {"lt", offsetof(lnn_kernels, lt)},
};

static lnn_binary_fn binary_of(const lnn_kernels *k, const binary_desc *d)
{
    lnn_binary_fn fn;
    memcpy(&fn, (const char *)k + d->off, sizeof fn);
    return fn;
}

/* Operand values: mostly ordinary, some special. */
static float operand(void)
{
    static const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY,
                                    NAN, FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
                                    1e-40f, -1e-40f, 1.4e-45f, 1e30f, -1e30f,
                                    3.0f, 0.1f, 1e-20f, 1e20f};
    const uint64_t r = rnd() % 16;
    if (r < 3)
        return special[rnd() % (sizeof special / sizeof special[0])];
    if (r < 6)
        return any_float();
    return uniform(-10.0f, 10.0f);
}

static const char *const mode_names[] = {"same", "scalar_a", "scalar_b",
                                         "row_a", "row_b", "general"};

/* One binary call in a given plan with y in a fresh buffer or in place;
 * returns the number of mismatching elements (and guard overwrites). */
static size_t binary_case(lnn_binary_fn fk, lnn_binary_fn fs, lnn_bcast_mode mode,
                          size_t n, size_t inner, int inplace, int fz)
{
    float a[300], b[300], ak[300], bk[300], yk[300], ys[300], yf[300], af[300], bf[300];
    size_t na = n, nb = n;
    if (mode == LNN_BC_SCALAR_A)
        na = 1;
    if (mode == LNN_BC_SCALAR_B)
        nb = 1;
    if (mode == LNN_BC_ROW_A)
        na = inner;
    if (mode == LNN_BC_ROW_B)
        nb = inner;
    for (size_t i = 0; i < 300; i++) {
        a[i] = operand();
        b[i] = operand();
        yk[i] = ys[i] = yf[i] = 12345.0f;
    }
    lnn_binary_params p;
    memset(&p, 0, sizeof p);
    p.n = n;
    p.inner = inner;
    p.mode = mode;
    if (mode == LNN_BC_GENERAL) { /* (3,1,5) op (4,1) -> (3,4,5) */
        const size_t dims[4] = {1, 3, 4, 5}, sa[4] = {0, 5, 0, 1}, sb[4] = {0, 0, 1, 0};
        memcpy(p.dims, dims, sizeof dims);
        memcpy(p.sa, sa, sizeof sa);
        memcpy(p.sb, sb, sizeof sb);
        p.n = n = 60;
        na = 15;
        nb = 4;
    }
    const size_t off = 1 + rnd() % 3; /* unaligned by 4..12 bytes */
    /* scalar reference: fresh output */
    p.a = a + off;
    p.b = b + off;
    p.y = ys + off;
    fs(&p);
    for (size_t i = 0; i < 300; i++) {
        af[i] = is_denormal(a[i]) ? 0.0f : a[i];
        bf[i] = is_denormal(b[i]) ? 0.0f : b[i];
    }
    p.a = af + off;
    p.b = bf + off;
    p.y = yf + off;
    fs(&p);
    /* the kernel under test */
    memcpy(ak, a, sizeof a);
    memcpy(bk, b, sizeof b);
    p.a = ak + off;
    p.b = bk + off;
    p.y = yk + off;
    float *out = yk;
    if (inplace == 1 && na == n) {
        p.y = ak + off;
        out = ak;
    } else if (inplace == 2 && nb == n) {
        p.y = bk + off;
        out = bk;
    }
    fk(&p);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (elem_err(out[off + i], ys[off + i], yf[off + i], fz) != 0.0)
            bad++;
    if (out == yk) {
        for (size_t i = 0; i < 300; i++)
            if ((i < off || i >= off + n) && to_bits(yk[i]) != to_bits(12345.0f))
                bad++;
    } else {
        const float *orig = out == ak ? a : b;
        for (size_t i = 0; i < 300; i++)
            if ((i < off || i >= off + n) && to_bits(out[i]) != to_bits(orig[i]))
                bad++;
    }
    (void)na;
    (void)nb;
    return bad;
}

static void test_binary(const lnn_kernels *k)
{
    const int fz = set_ftz(k);
    static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 255};
    static const size_t inners[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 25};
    for (size_t o = 0; o < sizeof binaries / sizeof binaries[0]; o++) {
        const lnn_binary_fn fk = binary_of(k, &binaries[o]);
        const lnn_binary_fn fs = binary_of(&lnn_kernels_scalar, &binaries[o]);
        size_t cases = 0, bad_cases = 0;
        char where[256] = "";
        n_ftz = 0;
        for (int mode = LNN_BC_SAME; mode <= LNN_BC_GENERAL; mode++) {
            for (int inplace = 0; inplace < 3; inplace++) {
                for (int rep = 0; rep < 4; rep++) {
                    if (mode == LNN_BC_ROW_A || mode == LNN_BC_ROW_B) {
                        for (size_t ii = 0; ii < sizeof inners / sizeof inners[0]; ii++) {
                            const size_t inner = inners[ii];
                            const size_t n = inner * (1 + rnd() % (250 / inner));
                            cases++;
                            if (binary_case(fk, fs, (lnn_bcast_mode)mode, n, inner,
                                            inplace, fz)) {
                                bad_cases++;
                                snprintf(where, sizeof where, "%s n=%zu inner=%zu inplace=%d",
                                         mode_names[mode], n, inner, inplace);
                            }
                        }
                    } else {
                        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                            cases++;
                            if (binary_case(fk, fs, (lnn_bcast_mode)mode, sizes[si], 0,
                                            inplace, fz)) {
                                bad_cases++;
                                snprintf(where, sizeof where, "%s n=%zu inplace=%d",
                                         mode_names[mode], sizes[si], inplace);
                            }
                        }
                    }
                }
            }
        }
        report(bad_cases == 0, "%-6s %-8s vs scalar: %zu calls over every broadcast plan, "
               "%zu differ%s%s%s", k->isa, binaries[o].name, cases, bad_cases,
               ftz_note(fz), bad_cases ? "; last: " : "", where);
    }
}

/* ---- linear ---------------------------------------------------------------- */

typedef struct {
    size_t cases;
    size_t bad;
    double worst; /* max |d| / bound */
    char where[128];
} linear_stats;

/* 1 when the kernel's g is not the scalar kernel's e to 1e-5 of mag (the
 * sum of the |terms|): a NaN must meet a NaN, an infinity the same infinity.
 * Keeps the worst |g - e| / bound in st. */
static size_t off_bound(float g, float e, double mag, linear_stats *st)
{
    if (e != e || g != g || isinf(e) || isinf(g))
        return !((e != e && g != g) || g == e);
    const double bound = 1e-5 * mag + 1e-30, d = fabs((double)g - (double)e);
    if (d / bound > st->worst)
        st->worst = d / bound;
    return d > bound;
}

static void linear_case(const lnn_kernels *k, size_t rows, size_t kk, size_t m, int bias,
                        int special, linear_stats *st)
{
    const size_t nx = rows * kk, nw = m * kk, ny = rows * m;
    float *x = falloc(nx + 1), *w = falloc(nw + 1), *b = falloc(m + 1);
    float *ys = falloc(ny + 8), *yk = falloc(ny + 8);
    const float scale = (rnd() % 4 == 0) ? 1e3f : 1.0f;
    const size_t off = rnd() % 2; /* 4-byte misalignment */
    for (size_t i = 0; i < nx + 1; i++)
        x[i] = uniform(-1.0f, 1.0f) * scale;
    for (size_t i = 0; i < nw + 1; i++)
        w[i] = uniform(-1.0f, 1.0f);
    for (size_t i = 0; i < m + 1; i++)
        b[i] = uniform(-1.0f, 1.0f);
    if (special == 1)
        x[off + rnd() % nx] = NAN;
    if (special == 2) { /* +inf times positive weights */
        const size_t r = rnd() % rows, i = rnd() % kk;
        x[off + r * kk + i] = INFINITY;
        for (size_t j = 0; j < m; j++)
            w[off + j * kk + i] = 0.5f;
    }
    for (size_t i = 0; i < ny + 8; i++)
        ys[i] = yk[i] = 12345.0f;
    lnn_linear_params p = {ys, x + off, w + off, bias ? b + off : NULL, rows, kk, m};
    lnn_kernels_scalar.linear(&p);
    p.y = yk;
    k->linear(&p);
    size_t bad = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < m; j++) {
            const float g = yk[r * m + j], e = ys[r * m + j];
            double mag = bias ? fabs((double)b[off + j]) : 0.0;
            for (size_t i = 0; i < kk; i++)
                mag += fabs((double)x[off + r * kk + i] * (double)w[off + j * kk + i]);
            bad += off_bound(g, e, mag, st);
        }
    }
    for (size_t i = ny; i < ny + 8; i++)
        if (to_bits(yk[i]) != to_bits(12345.0f))
            bad++;
    st->cases++;
    if (bad) {
        st->bad++;
        snprintf(st->where, sizeof st->where, "rows=%zu k=%zu m=%zu bias=%d special=%d",
                 rows, kk, m, bias, special);
    }
    free(x);
    free(w);
    free(b);
    free(ys);
    free(yk);
}

static void test_linear(const lnn_kernels *k)
{
    static const size_t ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 11, 15, 16, 17, 31, 32, 33, 63, 100, 257};
    static const size_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 33, 40};
    static const size_t batches[] = {2, 3, 4, 5, 7, 16};
    for (int which = 0; which < 3; which++) {
        /* 0: LINEAR batch 1, 1: LINEAR batch > 1, 2: MATMUL_NT (no bias) */
        linear_stats st;
        memset(&st, 0, sizeof st);
        for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
            for (size_t c = 0; c < sizeof ms / sizeof ms[0]; c++) {
                if (which == 0) {
                    linear_case(k, 1, ks[a], ms[c], 1, 0, &st);
                } else if (which == 1) {
                    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++)
                        linear_case(k, batches[bi], ks[a], ms[c], 1, 0, &st);
                } else {
                    linear_case(k, 1, ks[a], ms[c], 0, 0, &st);
                    linear_case(k, 1 + rnd() % 6, ks[a], ms[c], 0, 0, &st);
                }
                linear_case(k, 1 + (size_t)which * (rnd() % 5), ks[a], ms[c], which != 2,
                            1 + (int)(rnd() % 2), &st);
            }
        }
        static const char *const names[] = {"linear   (LINEAR, batch 1)",
                                             "linear   (LINEAR, batch > 1)",
                                             "linear   (MATMUL_NT, no bias)"};
        report(st.bad == 0, "%-6s %s vs scalar: %zu shapes, %zu out of tolerance, "
               "worst |d| = %.3f x (1e-5 sum|x w| + 1e-30)%s%s", k->isa, names[which],
               st.cases, st.bad, st.worst, st.bad ? "; last: " : "", st.where);
    }
}

/* ---- linear_t ---------------------------------------------------------------- */

static void linear_t_case(const lnn_kernels *k, size_t rows, size_t kk, size_t m, size_t ldw,
                          size_t ldy, int bias, int special, int reverse, linear_stats *st)
{
    const size_t nx = rows * kk, nw = kk * ldw, ny = rows * ldy;
    float *x = falloc(nx + 1), *w = falloc(nw + 1), *b = falloc(m + 1);
    float *ys = falloc(ny + 8), *yk = falloc(ny + 8);
    const float scale = (rnd() % 4 == 0) ? 1e3f : 1.0f;
    const size_t off = rnd() % 2; /* 4-byte misalignment */
    for (size_t i = 0; i < nx + 1; i++)
        x[i] = uniform(-1.0f, 1.0f) * scale;
    for (size_t i = 0; i < nw + 1; i++)
        w[i] = uniform(-1.0f, 1.0f);
    for (size_t i = 0; i < m + 1; i++)
        b[i] = uniform(-1.0f, 1.0f);
    if (special == 1)
        x[off + rnd() % nx] = NAN;
    if (special == 2) { /* +inf times positive weights */
        const size_t r = rnd() % rows, i = rnd() % kk;
        x[off + r * kk + i] = INFINITY;
        for (size_t j = 0; j < m; j++)
            w[off + i * ldw + j] = 0.5f;
    }
    for (size_t i = 0; i < ny + 8; i++)
        ys[i] = yk[i] = 12345.0f;
    lnn_linear_t_params p = {ys, x + off, w + off, bias ? b + off : NULL, rows, kk, m, ldw, ldy, reverse};
    lnn_kernels_scalar.linear_t(&p);
    p.y = yk;
    k->linear_t(&p);
    size_t bad = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < ldy; j++) {
            const float g = yk[r * ldy + j], e = ys[r * ldy + j];
            if (j >= m) { /* between m and ldy: untouched */
                bad += to_bits(g) != to_bits(12345.0f);
                continue;
            }
            double mag = bias ? fabs((double)b[off + j]) : 0.0;
            for (size_t i = 0; i < kk; i++)
                mag += fabs((double)x[off + r * kk + i] * (double)w[off + i * ldw + j]);
            bad += off_bound(g, e, mag, st);
        }
    }
    for (size_t i = ny; i < ny + 8; i++)
        if (to_bits(yk[i]) != to_bits(12345.0f))
            bad++;
    st->cases++;
    if (bad) {
        st->bad++;
        snprintf(st->where, sizeof st->where, "rows=%zu k=%zu m=%zu ldw=%zu ldy=%zu bias=%d special=%d "
                 "reverse=%d", rows, kk, m, ldw, ldy, bias, special, reverse);
    }
    free(x);
    free(w);
    free(b);
    free(ys);
    free(yk);
}

static void test_linear_t(const lnn_kernels *k)
{
    static const size_t ks[] = {1, 2, 3, 5, 8, 9, 16, 17, 33, 64, 65};
    static const size_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 33, 40, 64, 65, 100, 128};
    static const size_t batches[] = {1, 2, 3, 5, 6, 7, 11, 12, 13};
    linear_stats st;
    memset(&st, 0, sizeof st);
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        for (size_t c = 0; c < sizeof ms / sizeof ms[0]; c++) {
            for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                const size_t m = ms[c], ldw = m + (rnd() % 2) * (1 + rnd() % 9);
                const size_t ldy = m + (rnd() % 3 == 0) * (1 + rnd() % 5);
                const int special = rnd() % 8 == 0 ? 1 + (int)(rnd() % 2) : 0;
                linear_t_case(k, batches[bi], ks[a], m, ldw, ldy, (int)(rnd() % 2), special,
                              (int)(rnd() % 2), &st);
            }
        }
    }
    report(st.bad == 0, "%-6s linear_t (LINEAR_T, MATMUL_T) vs scalar: %zu shapes, %zu out of "
           "tolerance, worst |d| = %.3f x (1e-5 sum|x w| + 1e-30)%s%s", k->isa, st.cases, st.bad,
           st.worst, st.bad ? "; last: " : "", st.where);
}

/* The scalar linear_t against the scalar linear on the transposed weight:
 * the same sums in the same order, so the same bits. */
static void test_scalar_linear_t(void)
{
    size_t cases = 0, bad = 0;
    for (size_t rep = 0; rep < 200; rep++) {
        const size_t rows = 1 + rnd() % 7, kk = 1 + rnd() % 40, m = 1 + rnd() % 40;
        const int bias = (int)(rnd() % 2);
        float *x = falloc(rows * kk), *w = falloc(m * kk), *wt = falloc(kk * m), *b = falloc(m);
        float *y1 = falloc(rows * m), *y2 = falloc(rows * m);
        for (size_t i = 0; i < rows * kk; i++)
            x[i] = operand();
        for (size_t i = 0; i < m * kk; i++)
            w[i] = operand();
        for (size_t j = 0; j < m; j++) {
            b[j] = operand();
            for (size_t i = 0; i < kk; i++)
                wt[i * m + j] = w[j * kk + i];
        }
        lnn_linear_params p = {y1, x, w, bias ? b : NULL, rows, kk, m};
        lnn_linear_t_params q = {y2, x, wt, bias ? b : NULL, rows, kk, m, m, m, 0};
        lnn_kernels_scalar.linear(&p);
        lnn_kernels_scalar.linear_t(&q);
        for (size_t i = 0; i < rows * m; i++)
            bad += ulps(y1[i], y2[i]) != 0.0;
        cases++;
        free(x);
        free(w);
        free(wt);
        free(b);
        free(y1);
        free(y2);
    }
    report(bad == 0, "scalar linear_t vs scalar linear on the transposed weight: %zu shapes, %zu "
           "elements differ", cases, bad);
}

/* ---- the _Q8 products (int8 weights) ------------------------------------------- */

/* One case: rows x k activations, m output columns, Q (m, k) for linear_q8
 * or Qt (k, m) for linear_tq8 (t), the columns of Qt split over parts calls
 * as over LINEAR_TQ8's destinations (each its own y rows of ldy >= m_i). */
typedef struct {
    size_t rows, k, m, parts;
    int t, bias, reverse, special;
} q8_shape;

/* Exactly n bytes of int8 weights (plus a byte offset): the kernels must not
 * read past the weight, which a sanitizer build of this test would catch. */
static int8_t *q8_weights(size_t n, size_t off)
{
    int8_t *q = malloc(n + off);
    if (!q) {
        fputs("lnn_kernel_test: out of memory\n", stderr);
        exit(2);
    }
    for (size_t i = 0; i < n + off; i++)
        q[i] = (int8_t)(rnd() % 256 - 128);
    return q;
}

static void q8_case(const lnn_kernels *k, const q8_shape *sh, linear_stats *st)
{
    const size_t rows = sh->rows, kk = sh->k, m = sh->m, nx = rows * kk;
    const size_t xoff = rnd() % 2, qoff = rnd() % 4; /* 4-byte and byte misalignment */
    float *x = falloc(nx + 1), *sc = falloc(m), *b = falloc(m);
    int8_t *qbuf = q8_weights(kk * m, qoff), *q = qbuf + qoff;
    const float xscale = (rnd() % 4 == 0) ? 1e3f : 1.0f;
    for (size_t i = 0; i < nx + 1; i++)
        x[i] = uniform(-1.0f, 1.0f) * xscale;
    for (size_t j = 0; j < m; j++) {
        sc[j] = uniform(1e-3f, 2e-2f) * (rnd() % 5 == 0 ? -1.0f : 1.0f);
        b[j] = uniform(-1.0f, 1.0f);
    }
    /* q(j, i): Q[j][i] or Qt[i][j] */
#define Q8_AT(j, i) q[sh->t ? (i) * m + (j) : (j) * kk + (i)]
    if (sh->special == 1)
        x[xoff + rnd() % nx] = NAN;
    if (sh->special == 2) { /* +inf times positive weights */
        const size_t r = rnd() % rows, i = rnd() % kk;
        x[xoff + r * kk + i] = INFINITY;
        for (size_t j = 0; j < m; j++)
            Q8_AT(j, i) = 64;
    }
    size_t bad = 0, col = 0;
    for (size_t part = 0; part < sh->parts; part++) {
        /* the columns [col, col + mp) of this part */
        const size_t left = sh->parts - part, mp = left == 1 ? m - col : 1 + rnd() % (m - col - (left - 1));
        const size_t ldy = sh->t ? mp + (rnd() % 3 == 0) * (1 + rnd() % 5) : mp, ny = rows * ldy;
        float *ys = falloc(ny + 8), *yk = falloc(ny + 8);
        for (size_t i = 0; i < ny + 8; i++)
            ys[i] = yk[i] = 12345.0f;
        lnn_linear_q8_params p = {ys, x + xoff, sh->t ? q + col : q, sc + col,
                                  sh->bias ? b + col : NULL, rows, kk, mp,
                                  sh->t ? m : kk, ldy, sh->reverse};
        (sh->t ? lnn_kernels_scalar.linear_tq8 : lnn_kernels_scalar.linear_q8)(&p);
        p.y = yk;
        (sh->t ? k->linear_tq8 : k->linear_q8)(&p);
        for (size_t r = 0; r < rows; r++) {
            for (size_t j = 0; j < ldy; j++) {
                const float g = yk[r * ldy + j], e = ys[r * ldy + j];
                if (j >= mp) { /* between m and ldy: untouched */
                    bad += to_bits(g) != to_bits(12345.0f);
                    continue;
                }
                double mag = 0.0;
                for (size_t i = 0; i < kk; i++)
                    mag += fabs((double)x[xoff + r * kk + i] * (double)Q8_AT(col + j, i));
                mag = mag * fabs((double)sc[col + j]) + (sh->bias ? fabs((double)b[col + j]) : 0.0);
                bad += off_bound(g, e, mag, st);
            }
        }
        for (size_t i = ny; i < ny + 8; i++)
            bad += to_bits(yk[i]) != to_bits(12345.0f);
        free(ys);
        free(yk);
        col += mp;
    }
#undef Q8_AT
    st->cases++;
    if (bad) {
        st->bad++;
        snprintf(st->where, sizeof st->where, "rows=%zu k=%zu m=%zu parts=%zu bias=%d reverse=%d "
                 "special=%d", rows, kk, m, sh->parts, sh->bias, sh->reverse, sh->special);
    }
    free(x);
    free(sc);
    free(b);
    free(qbuf);
}

/* Every kernel set's linear_q8 (t = 0) or linear_tq8 (t = 1) against the
 * scalar one: k and m below, at and past multiples of every vector width,
 * batch 1..9, with and without bias, reversed sums and split columns (t). */
static void test_q8(const lnn_kernels *k, int t)
{
    static const size_t ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 65};
    static const size_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 40, 65};
    linear_stats st;
    memset(&st, 0, sizeof st);
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        for (size_t c = 0; c < sizeof ms / sizeof ms[0]; c++) {
            for (size_t rows = 1; rows <= 9; rows++) {
                q8_shape sh = {rows, ks[a], ms[c], 1, t, (int)(rnd() % 2), 0, 0};
                if (t) {
                    sh.reverse = (int)(rnd() % 2);
                    sh.parts = 1 + rnd() % (ms[c] < 3 ? ms[c] : 3);
                }
                sh.special = rnd() % 8 == 0 ? 1 + (int)(rnd() % 2) : 0;
                q8_case(k, &sh, &st);
            }
        }
    }
    report(st.bad == 0, "%-6s %s vs scalar: %zu shapes, %zu out of tolerance, worst |d| = %.3f x "
           "(1e-5 (|scale| sum|x q| + |bias|) + 1e-30)%s%s", k->isa,
           t ? "linear_tq8 (LINEAR_TQ8, MATMUL_TQ8, split)" : "linear_q8 (LINEAR_Q8, MATMUL_NTQ8)",
           st.cases, st.bad, st.worst, st.bad ? "; last: " : "", st.where);
}

/* The scalar _Q8 kernels: linear_tq8 gives the bits of linear_q8 on the
 * transposed weight (the same sums in the same order), and linear_q8 is
 * (sum x q) * scale + bias, checked in double precision. */
static void test_scalar_q8(void)
{
    size_t cases = 0, differ = 0, off = 0;
    for (size_t rep = 0; rep < 200; rep++) {
        const size_t rows = 1 + rnd() % 7, kk = 1 + rnd() % 40, m = 1 + rnd() % 40;
        const int bias = (int)(rnd() % 2);
        float *x = falloc(rows * kk), *sc = falloc(m), *b = falloc(m);
        float *y1 = falloc(rows * m), *y2 = falloc(rows * m);
        int8_t *q = q8_weights(m * kk, 0), *qt = q8_weights(kk * m, 0);
        for (size_t i = 0; i < rows * kk; i++)
            x[i] = uniform(-2.0f, 2.0f);
        for (size_t j = 0; j < m; j++) {
            sc[j] = uniform(-0.05f, 0.05f);
            b[j] = uniform(-1.0f, 1.0f);
            for (size_t i = 0; i < kk; i++)
                qt[i * m + j] = q[j * kk + i];
        }
        lnn_linear_q8_params p = {y1, x, q, sc, bias ? b : NULL, rows, kk, m, kk, m, 0};
        lnn_linear_q8_params pt = {y2, x, qt, sc, bias ? b : NULL, rows, kk, m, m, m, 0};
        lnn_kernels_scalar.linear_q8(&p);
        lnn_kernels_scalar.linear_tq8(&pt);
        for (size_t r = 0; r < rows; r++) {
            for (size_t j = 0; j < m; j++) {
                double s = 0.0, mag = 0.0;
                for (size_t i = 0; i < kk; i++) {
                    s += (double)x[r * kk + i] * q[j * kk + i];
                    mag += fabs((double)x[r * kk + i] * q[j * kk + i]);
                }
                const double want = s * sc[j] + (bias ? b[j] : 0.0);
                const double bound = 1e-5 * (mag * fabs((double)sc[j]) + (bias ? fabs((double)b[j]) : 0.0)) + 1e-30;
                off += fabs((double)y1[r * m + j] - want) > bound;
                differ += ulps(y1[r * m + j], y2[r * m + j]) != 0.0;
            }
        }
        cases++;
        free(x);
        free(sc);
        free(b);
        free(y1);
        free(y2);
        free(q);
        free(qt);
    }
    report(differ == 0 && off == 0, "scalar linear_tq8 vs scalar linear_q8 on the transposed weight: "
           "%zu shapes, %zu elements differ; linear_q8 vs (sum x q) * scale + bias in double: %zu out "
           "of tolerance", cases, differ, off);
}

/* ---- ewise -------------------------------------------------------------------- */

enum { EW_MAXN = 8, EW_MAXL = 12, EW_MAXCOUNT = 420 };

typedef struct {
    uint32_t words[1 + EW_MAXL];
    size_t n, ninsn, nregs;
    int transcendental;
} ew_program;

static const uint32_t ew_binary_ops[] = {LNN_OP_ADD, LNN_OP_SUB, LNN_OP_MUL, LNN_OP_DIV,
                                         LNN_OP_MIN, LNN_OP_MAX, LNN_OP_POW, LNN_OP_LE,
                                         LNN_OP_LT};
static const uint32_t ew_exact_unary[] = {LNN_OP_NEG, LNN_OP_RELU, LNN_OP_ABS, LNN_OP_SQRT};
static const uint32_t ew_transc_unary[] = {LNN_OP_EXP, LNN_OP_SIGMOID, LNN_OP_TANH, LNN_OP_LOG,
                                           LNN_OP_ERF};
#define EW_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A random well-formed program over n operands (lnn_format.h). */
static void ew_random_program(ew_program *pg, size_t n, int transcendental)
{
    const size_t ninsn = 1 + rnd() % EW_MAXL;
    const size_t nregs = ninsn == 1 ? rnd() % 2 : 1 + rnd() % 4;
    uint32_t written = 0;
    pg->n = n;
    pg->ninsn = ninsn;
    pg->nregs = nregs;
    pg->transcendental = 0;
    pg->words[0] = (uint32_t)n | (uint32_t)ninsn << 8 | (uint32_t)nregs << 16;
    for (size_t i = 0; i < ninsn; i++) {
        uint32_t src[2];
        for (int s = 0; s < 2; s++) { /* an operand, or a register written earlier */
            const uint32_t r = (uint32_t)(rnd() % nregs_or1(nregs));
            src[s] = ((written >> r) & 1u) && rnd() % 2 ? (uint32_t)n + r : (uint32_t)(rnd() % n);
        }
        uint32_t op;
        const uint64_t kind = rnd() % 10;
        if (kind < 6)
            op = ew_binary_ops[rnd() % EW_COUNT(ew_binary_ops)];
        else if (kind < 8 || !transcendental)
            op = ew_exact_unary[rnd() % EW_COUNT(ew_exact_unary)];
        else {
            op = ew_transc_unary[rnd() % EW_COUNT(ew_transc_unary)];
            pg->transcendental = 1;
        }
        if (op >= 0x40)
            src[1] = 0;
        const uint32_t d = i + 1 == ninsn ? 0 : (uint32_t)(rnd() % nregs);
        if (i + 1 < ninsn)
            written |= 1u << d;
        pg->words[1 + i] = op | d << 8 | src[0] << 16 | src[1] << 24;
    }
}

/* The program run by the set's single-op kernels on whole materialized
 * arrays (the definition EWISE must match bit for bit). */
static void ew_compose(const lnn_kernels *k, const ew_program *pg, float *const *opnd, size_t count,
                       float *out)
{
    float *val[EW_MAXN + 8];
    float *regs = falloc(8 * (size_t)EW_MAXCOUNT);
    for (size_t j = 0; j < pg->n; j++)
        val[j] = opnd[j];
    for (size_t r = 0; r < 8; r++)
        val[pg->n + r] = regs + r * EW_MAXCOUNT;
    for (size_t i = 0; i < pg->ninsn; i++) {
        const uint32_t w = pg->words[1 + i], op = w & 0xFFu;
        float *y = i + 1 == pg->ninsn ? out : val[pg->n + ((w >> 8) & 0xFFu)];
        const float *a = val[(w >> 16) & 0xFFu], *b = val[w >> 24];
        if (op < 0x40) {
            lnn_binary_params p;
            memset(&p, 0, sizeof p);
            p.y = y;
            p.a = a;
            p.b = b;
            p.n = count;
            p.mode = LNN_BC_SAME;
            (op == LNN_OP_ADD ? k->add : op == LNN_OP_SUB ? k->sub : op == LNN_OP_MUL ? k->mul
             : op == LNN_OP_DIV ? k->div : op == LNN_OP_MIN ? k->min : op == LNN_OP_MAX ? k->max
             : op == LNN_OP_POW ? k->pow : op == LNN_OP_LE ? k->le : k->lt)(&p);
        } else {
            lnn_unary_params p = {y, a, count};
            (op == LNN_OP_NEG ? k->neg : op == LNN_OP_EXP ? k->exp : op == LNN_OP_SIGMOID ? k->sigmoid
             : op == LNN_OP_TANH ? k->tanh : op == LNN_OP_RELU ? k->relu : op == LNN_OP_ABS ? k->abs
             : op == LNN_OP_SQRT ? k->sqrt : op == LNN_OP_LOG ? k->log : k->erf)(&p);
        }
    }
    free(regs);
}

typedef struct {
    size_t cases, bad_compose, bad_scalar;
    char where[160];
} ew_stats;

/* One random EWISE call on set k: against the composition on k, and (exact
 * programs) against the scalar ewise. */
static void ew_case(const lnn_kernels *k, int fz, ew_stats *st)
{
    ew_program pg;
    const size_t n = 1 + rnd() % EW_MAXN;
    const int exact = rnd() % 2;
    ew_random_program(&pg, n, !exact);
    const size_t inner = 1 + rnd() % 70, outer = 1 + rnd() % (EW_MAXCOUNT / inner < 6 ? EW_MAXCOUNT / inner : 6);
    const size_t count = inner * outer;
    const int all_rows_inner = rnd() % 2;
    lnn_ewise_params p;
    memset(&p, 0, sizeof p);
    float *src[EW_MAXN], *full[EW_MAXN];
    int has_row = 0;
    for (size_t j = 0; j < n; j++) {
        const uint64_t mode = rnd() % 3;
        size_t len = mode == LNN_EW_SAME ? count : mode == LNN_EW_SCALAR ? 1 : inner;
        if (mode == LNN_EW_ROW && !all_rows_inner && rnd() % 2)
            len = count; /* a longer row: a multiple of inner */
        src[j] = falloc(count + 1);
        full[j] = falloc(count);
        const size_t off = rnd() % 2;
        for (size_t i = 0; i < count + 1; i++) {
            float v = exact && fz ? uniform(-10.0f, 10.0f) : operand();
            src[j][i] = rnd() % 7 == 0 ? uniform(-10.0f, 10.0f) : v;
        }
        p.src[j] = src[j] + off;
        p.mode[j] = (uint8_t)mode;
        p.len[j] = len;
        for (size_t i = 0; i < count; i++)
            full[j][i] = p.src[j][mode == LNN_EW_SAME ? i : mode == LNN_EW_SCALAR ? 0 : i % len];
        has_row |= mode == LNN_EW_ROW;
    }
    p.n = n;
    p.ninsn = pg.ninsn;
    p.nregs = pg.nregs;
    p.insn = pg.words + 1;
    p.count = count;
    p.inner = count;
    for (size_t j = 0; j < n; j++)
        if (p.mode[j] == LNN_EW_ROW && p.len[j] < p.inner)
            p.inner = p.len[j];
    (void)has_row;
    float *ref = falloc(count + 8), *got = falloc(count + 8), *sref = falloc(count + 8);
    ew_compose(k, &pg, full, count, ref);
    /* in place over a same-shape operand, or a fresh buffer with guards */
    size_t inplace = n;
    for (size_t j = 0; j < n; j++)
        if (p.mode[j] == LNN_EW_SAME && rnd() % 3 == 0)
            inplace = j;
    for (size_t i = 0; i < count + 8; i++)
        got[i] = 12345.0f;
    float *out = got;
    if (inplace < n) {
        p.y = (float *)(uintptr_t)p.src[inplace];
        out = p.y;
    } else {
        p.y = got;
    }
    k->ewise(&p);
    size_t bad = 0, bad_s = 0;
    for (size_t i = 0; i < count; i++)
        bad += ulps(out[i], ref[i]) != 0.0;
    if (out == got)
        for (size_t i = count; i < count + 8; i++)
            bad += to_bits(got[i]) != to_bits(12345.0f);
    if (exact) { /* and the scalar set's bits */
        ew_compose(&lnn_kernels_scalar, &pg, full, count, sref);
        for (size_t i = 0; i < count; i++)
            bad_s += fz ? ulps(ftz(out[i]), ftz(sref[i])) != 0.0 : ulps(out[i], sref[i]) != 0.0;
    }
    st->cases++;
    st->bad_compose += bad != 0;
    st->bad_scalar += bad_s != 0;
    if (bad || bad_s)
        snprintf(st->where, sizeof st->where, "n=%zu insns=%zu regs=%zu count=%zu inner=%zu "
                 "exact=%d inplace=%d", n, pg.ninsn, pg.nregs, count, p.inner, exact, inplace < n);
    for (size_t j = 0; j < n; j++) {
        free(src[j]);
        free(full[j]);
    }
    free(ref);
    free(got);
    free(sref);
}

static void test_ewise(const lnn_kernels *k)
{
    ew_stats st;
    memset(&st, 0, sizeof st);
    for (int rep = 0; rep < LNN_KTEST_EW_PROGRAMS; rep++)
        ew_case(k, set_ftz(k), &st);
    report(st.bad_compose == 0 && st.bad_scalar == 0,
           "%-6s ewise    vs its own kernels one by one: %zu programs, %zu differ; exact "
           "programs vs scalar: %zu differ%s%s", k->isa, st.cases, st.bad_compose, st.bad_scalar,
           st.where[0] ? "; last: " : "", st.where);
}

/* The LTC step's fused form (kernels.h, LNN_EW_FORM_LTC): lnn_ew_form finds
 * it under any operand numbering and register allocation (and nothing else:
 * a program one operand or one op away from it has no form), and a set's
 * ewise with the form gives the bits of its kernels one by one, on random
 * operand modes, sizes (tails, runs of a ROW operand, pieces) and in place
 * over the state H. */
static void ltc_case(const lnn_kernels *k, ew_stats *st, size_t *bad_match)
{
    enum { A, B, C, D, H, T, DT };
    ew_program pg;
    size_t op_of[7]; /* slot -> operand */
    const size_t n = 7 + rnd() % 2; /* 8: one operand the program never reads */
    size_t perm[8];
    for (size_t j = 0; j < n; j++)
        perm[j] = j;
    for (size_t j = n; j-- > 1;) {
        const size_t i = rnd() % (j + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t s = 0; s < 7; s++)
        op_of[s] = perm[s];
    /* registers: the two values live at once in random distinct registers */
    const uint32_t r0 = (uint32_t)(rnd() % 8), r1 = (r0 + 1 + (uint32_t)(rnd() % 7)) % 8;
    const uint32_t R0 = (uint32_t)n + r0, R1 = (uint32_t)n + r1;
#define LTC_W(op, d, a, b) ((uint32_t)(op) | (uint32_t)(d) << 8 | (uint32_t)(a) << 16 | (uint32_t)(b) << 24)
    const uint32_t words[8] = {
        LTC_W(0x30, r0, op_of[A], op_of[B]), LTC_W(0x42, r0, R0, 0),
        LTC_W(0x30, r1, op_of[C], op_of[D]), LTC_W(0x32, r0, R1, R0),
        LTC_W(0x31, r0, R0, op_of[H]),       LTC_W(0x33, r0, R0, op_of[T]),
        LTC_W(0x32, r0, op_of[DT], R0),      LTC_W(0x30, 0, op_of[H], R0),
    };
    pg.n = n;
    pg.ninsn = 8;
    pg.nregs = (r0 > r1 ? r0 : r1) + 1;
    pg.words[0] = (uint32_t)n | 8u << 8 | (uint32_t)pg.nregs << 16;
    for (size_t i = 0; i < 8; i++)
        pg.words[1 + i] = words[i];
    const uint32_t form = lnn_ew_form(pg.words + 1, 8, n);
    int match = (form & 0xFu) == LNN_EW_FORM_LTC;
    for (size_t s = 0; s < 7 && match; s++)
        match = lnn_ew_form_slot(form, s) == op_of[s];
    *bad_match += !match;
    /* another op anywhere, or an operand where the form reads a result: no
     * form (an operand slot read once may be any operand: still the form) */
    uint32_t mutated[8];
    for (size_t i = 0; i < 8; i++)
        mutated[i] = words[i];
    static const size_t reads_result[6] = {1, 3, 4, 5, 6, 7}; /* their a or b is a register */
    if (rnd() % 2) {
        mutated[rnd() % 8] ^= 0x01u; /* ADD<->SUB, MUL<->DIV, SIGMOID->TANH */
    } else {
        const size_t at = reads_result[rnd() % 6];
        const uint32_t opnd = (uint32_t)(rnd() % n) << ((mutated[at] >> 16 & 0xFFu) >= n ? 16 : 24);
        mutated[at] = (mutated[at] & ((mutated[at] >> 16 & 0xFFu) >= n ? 0xFF00FFFFu : 0x00FFFFFFu)) | opnd;
    }
    *bad_match += lnn_ew_form(mutated, 8, n) != LNN_EW_FORM_NONE;
    /* the unsplit form (w8a16 layers: A and C straight from one product each, nothing to add), found with B
     * and D unused, and not one op away from it */
    const uint32_t unsplit[6] = {
        LTC_W(0x42, r1, op_of[A], 0), LTC_W(0x32, r0, op_of[C], R1), LTC_W(0x31, r0, R0, op_of[H]),
        LTC_W(0x33, r1, R0, op_of[T]), LTC_W(0x32, r0, op_of[DT], R1), LTC_W(0x30, 0, op_of[H], R0),
    };
    const uint32_t uform = lnn_ew_form(unsplit, 6, n);
    int umatch = (uform & 0xFu) == LNN_EW_FORM_LTC_UNSPLIT;
    for (size_t s = 0; s < 7 && umatch; s++)
        umatch = lnn_ew_form_slot(uform, s) == (s == B || s == D ? (size_t)LNN_EW_SLOT_UNUSED : op_of[s]);
    *bad_match += !umatch;
    uint32_t umutated[6];
    for (size_t i = 0; i < 6; i++)
        umutated[i] = unsplit[i];
    umutated[rnd() % 6] ^= 0x01u;
    *bad_match += lnn_ew_form(umutated, 6, n) != LNN_EW_FORM_NONE;
#undef LTC_W
    /* run one of the two forms (the unsplit one only where the build finds it) */
    const int run_unsplit = LNN_EW_LOOK_FOR_UNSPLIT && rnd() % 2;
    const size_t ninsn = run_unsplit ? 6 : 8;
    if (run_unsplit) {
        pg.ninsn = 6;
        pg.nregs = (r0 > r1 ? r0 : r1) + 1;
        pg.words[0] = (uint32_t)n | 6u << 8 | (uint32_t)pg.nregs << 16;
        for (size_t i = 0; i < 6; i++)
            pg.words[1 + i] = unsplit[i];
    }

    /* the SIMD sets take the form when their vector width divides inner */
    const size_t inner = rnd() % 2 ? 8 * (1 + rnd() % 8) : 1 + rnd() % 70;
    const size_t outer = 1 + rnd() % (EW_MAXCOUNT / inner < 6 ? EW_MAXCOUNT / inner : 6);
    const size_t count = inner * outer;
    lnn_ewise_params p;
    memset(&p, 0, sizeof p);
    float *src[EW_MAXN], *full[EW_MAXN];
    for (size_t j = 0; j < n; j++) {
        uint64_t mode = rnd() % 3;
        if (j == op_of[H] && rnd() % 2)
            mode = LNN_EW_SAME;
        const size_t len = mode == LNN_EW_SAME ? count : mode == LNN_EW_SCALAR ? 1 : (rnd() % 2 ? inner : count);
        src[j] = falloc(count + 1);
        full[j] = falloc(count);
        const size_t off = rnd() % 2;
        for (size_t i = 0; i < count + 1; i++)
            src[j][i] = rnd() % 5 ? uniform(-8.0f, 8.0f) : operand();
        p.src[j] = src[j] + off;
        p.mode[j] = (uint8_t)mode;
        p.len[j] = len;
        for (size_t i = 0; i < count; i++)
            full[j][i] = p.src[j][mode == LNN_EW_SAME ? i : mode == LNN_EW_SCALAR ? 0 : i % len];
    }
    p.n = n;
    p.ninsn = ninsn;
    p.nregs = pg.nregs;
    p.insn = pg.words + 1;
    p.count = count;
    p.inner = count;
    for (size_t j = 0; j < n; j++)
        if (p.mode[j] == LNN_EW_ROW && p.len[j] < p.inner)
            p.inner = p.len[j];
    float *ref = falloc(count + 8), *got = falloc(count + 8), *gen = falloc(count + 8);
    ew_compose(k, &pg, full, count, ref);
    for (size_t i = 0; i < count + 8; i++)
        gen[i] = got[i] = 12345.0f;
    p.y = gen; /* the generic path, for comparison */
    k->ewise(&p);
    p.form = run_unsplit ? uform : form;
    const int inplace = p.mode[op_of[H]] == LNN_EW_SAME && rnd() % 2;
    float *out = inplace ? (float *)(uintptr_t)p.src[op_of[H]] : got;
    p.y = out;
    k->ewise(&p);
    size_t bad = 0;
    for (size_t i = 0; i < count; i++)
        bad += ulps(out[i], ref[i]) != 0.0 || ulps(gen[i], ref[i]) != 0.0;
    for (size_t i = count; i < count + 8; i++)
        bad += (!inplace && to_bits(got[i]) != to_bits(12345.0f)) || to_bits(gen[i]) != to_bits(12345.0f);
    st->cases++;
    st->bad_compose += bad != 0;
    if (bad)
        snprintf(st->where, sizeof st->where, "%s n=%zu count=%zu inner=%zu inplace=%d",
                 run_unsplit ? "unsplit" : "split", n, count, p.inner, inplace);
    for (size_t j = 0; j < n; j++) {
        free(src[j]);
        free(full[j]);
    }
    free(ref);
    free(got);
    free(gen);
}

static void test_ewise_ltc(const lnn_kernels *k)
{
    ew_stats st;
    size_t bad_match = 0;
    memset(&st, 0, sizeof st);
    for (int rep = 0; rep < LNN_KTEST_LTC_PROGRAMS; rep++)
        ltc_case(k, &st, &bad_match);
    report(st.bad_compose == 0 && bad_match == 0,
           "%-6s ewise    LTC form vs its own kernels one by one: %zu programs, %zu differ, %zu "
           "misrecognized%s%s", k->isa, st.cases, st.bad_compose, bad_match,
           st.where[0] ? "; last: " : "", st.where);
}

/* ---- zero and concat ----------------------------------------------------- */

static void test_zero_concat(const lnn_kernels *k)
{
    size_t bad = 0;
    for (size_t n = 1; n < 40; n++) {
        float y[48], z[48];
        for (size_t i = 0; i < 48; i++)
            y[i] = z[i] = 7.0f;
        lnn_unary_params p = {y + 1, NULL, n};
        k->zero(&p);
        p.y = z + 1;
        lnn_kernels_scalar.zero(&p);
        bad += memcmp(y, z, sizeof y) != 0;
    }
    report(bad == 0, "%-6s %-8s vs scalar: %zu differ", k->isa, "zero", bad);
    bad = 0;
    for (size_t outer = 1; outer < 5; outer++) {
        for (size_t na = 1; na < 10; na++) {
            for (size_t nb = 1; nb < 10; nb += 3) {
                float a[64], b[64], y[160], z[160];
                for (size_t i = 0; i < 64; i++) {
                    a[i] = operand();
                    b[i] = operand();
                }
                memset(y, 0, sizeof y);
                memset(z, 0, sizeof z);
                lnn_concat_params p = {y, a, b, outer, na, nb};
                k->concat(&p);
                p.y = z;
                lnn_kernels_scalar.concat(&p);
                bad += memcmp(y, z, sizeof y) != 0;
            }
        }
    }
    report(bad == 0, "%-6s %-8s vs scalar: %zu differ", k->isa, "concat", bad);
}

/* ---- split ----------------------------------------------------------------- */

/* k->split against the definition: row r of x cut in order into row r of
 * each part. Each part lies in its own buffer between guard floats that must
 * stay as they were. */
static void test_split(const lnn_kernels *k)
{
    enum { GUARD = 4, MAX_COLS = 9, MAX_ROWS = 5 };
    float x[MAX_ROWS * LNN_MAX_DSTS * MAX_COLS];
    float y[LNN_MAX_DSTS][GUARD + MAX_ROWS * MAX_COLS + GUARD];
    size_t bad = 0, cases = 0;
    for (size_t n = 1; n <= LNN_MAX_DSTS; n++) {
        for (size_t rows = 1; rows <= MAX_ROWS; rows++, cases++) {
            lnn_split_params p;
            size_t width = 0;
            p.n = n;
            p.rows = rows;
            for (size_t j = 0; j < n; j++) {
                p.cols[j] = 1 + rnd() % MAX_COLS;
                p.y[j] = y[j] + GUARD;
                width += p.cols[j];
                for (size_t i = 0; i < sizeof y[j] / sizeof(float); i++)
                    y[j][i] = -7.0f;
            }
            for (size_t i = 0; i < rows * width; i++)
                x[i] = operand();
            p.x = x;
            k->split(&p);
            for (size_t j = 0, col = 0; j < n; col += p.cols[j], j++) {
                const size_t used = rows * p.cols[j];
                for (size_t i = 0; i < sizeof y[j] / sizeof(float); i++) {
                    const size_t e = i - GUARD; /* element of part j when i is inside it */
                    const float want = i < GUARD || e >= used
                                           ? -7.0f
                                           : x[(e / p.cols[j]) * width + col + e % p.cols[j]];
                    bad += memcmp(&y[j][i], &want, sizeof want) != 0;
                }
            }
        }
    }
    report(bad == 0, "%-6s %-8s vs definition: %zu calls, %zu floats differ", k->isa, "split",
           cases, bad);
}

#include "kernel_graph_test.inc" /* the graph ops: CONV2D .. MATMUL */
#include "kernel_nan_test.inc"   /* run-time NaN: every set, the scalar one too, as PyTorch */
#include "kernel_w8a16_test.inc" /* LINEAR_W8A16 / MATMUL_W8A16: kernels, verifier, interpreter */

int main(void)
{
    printf("lnn_kernel_test: arch %s, kernel sets compiled in:", LNN_ARCH_NAME);
    for (size_t i = 0; lnn_kernel_sets[i]; i++)
        printf(" %s%s", lnn_kernel_sets[i]->isa,
               lnn_kernels_supported(lnn_kernel_sets[i]) ? "" : " (not supported here)");
    const lnn_kernels *sel = lnn_kernels_select();
    printf("; lnn_init picks %s\n", sel ? sel->isa : "none (E_CPU)");
    make_sweep();
    test_f16_widening();
    test_scalar_accuracy();
    test_scalar_linear_t();
    test_scalar_q8();
    test_ewise(&lnn_kernels_scalar);
    test_ewise_ltc(&lnn_kernels_scalar);
    test_split(&lnn_kernels_scalar);
    test_nan(&lnn_kernels_scalar);
    test_w8a16_kernel(&lnn_kernels_scalar);
    test_w8a16_verifier();
    test_lnn_fmaf();
    for (size_t i = 0; lnn_kernel_sets[i]; i++) {
        const lnn_kernels *k = lnn_kernel_sets[i];
        if (k == &lnn_kernels_scalar)
            continue;
        if (!lnn_kernels_supported(k)) {
            printf("skip %s: the processor lacks it\n", k->isa);
            continue;
        }
        test_unary(k);
        test_binary(k);
        test_linear(k);
        test_linear_t(k);
        test_q8(k, 0);
        test_q8(k, 1);
        test_ewise(k);
        test_ewise_ltc(k);
        test_zero_concat(k);
        test_split(k);
        test_graph(k);
        test_nan(k);
        test_w8a16_kernel(k);
    }
    free(sweep);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
