/*
 * cm4_kernel_test.c - the "cm4" kernel set (vm/src/kernels_cm4.c) against
 * the scalar one, on the core itself: built by `make kerneltest` for a
 * Cortex-M4F board and run under QEMU with semihosting
 * (tests/test_cm4_kernels.py), which prints its lines and exits with its
 * status. Only what the set replaces:
 *   linear, linear_t      within 1e-5 sum |x w| (+ |bias|) of the scalar
 *                         kernel (the set fuses the multiply-adds, as the
 *                         AVX2 and AArch64 NEON sets do), NaN / inf alike,
 *                         the floats between m and ldy and after the last
 *                         row untouched; odd and even k, 16-column blocks
 *                         and tails, reverse, ldw > m, misaligned by 4 bytes;
 *                         linear_t on every m % 16 (m 1..47) with k odd and
 *                         even, both orders; linear on every m % 4 and
 *                         k % 8 (m 1..9, k 1..23)
 *   linear_tq8            the same, within 1e-5 sum |x w| (+ |bias|) +
 *                         2^-29 max |x| sum |w| (block floating point: x
 *                         truncated to 31 bits of its row's largest value,
 *                         kernels_cm4.c), with k in one 128-input chunk
 *                         (65, the LTC layers') and over two or three, x
 *                         over 2^-40..2^40 in one row, all zero, denormal,
 *                         and the largest x on weights all zero (where the
 *                         second term is the bound)
 *   conv2d                within 1e-5 of the sum of the absolute terms of the
 *                         scalar kernel (the set's tap fuses), NaN / inf
 *                         alike, the floats after y untouched; kernel 1x1,
 *                         3x3, 5x5, stride 1 and 2, padding 0 and 1, runs of
 *                         1..17 output pixels, and random shapes
 *   linear_w8a16          the scalar kernel's bits (any NaN as any NaN), the
 *                         floats around each destination untouched: K and
 *                         M odd and even (1..600, 1..130: one and several
 *                         32-column blocks, rows over the 256-input chunk),
 *                         1..8 destinations starting at any column, with and
 *                         without bias, rows uniform, wide, any float, NaN,
 *                         inf, zero, under 2^-100, largest |x| just below a
 *                         power of two or at the half-way point, |xq| all
 *                         32767 against weights all -128 / 128 (the largest
 *                         sums: beyond int32 over 256 inputs), panels of
 *                         int8 weights and of any bytes
 *   ewise (LTC form)      the bits of the scalar set's block interpreter on
 *                         the same program, operands in every mode (now
 *                         and then a NaN, which gives NaN as the scalar
 *                         step does), y = H in place
 * No C library I/O and no heap: static buffers, semihosting by hand.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "kernels.h"

#if !LNN_HAVE_CM4
#error "cm4_kernel_test.c is for a core with the cm4 kernel set (a Cortex-M with a VFPv4 FPU)"
#endif

/* ---- semihosting (ARM DUI 0471: bkpt 0xAB, r0 the operation) ---------------- */

static uint32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void put(const char *s)
{
    semihost(0x04u, s); /* SYS_WRITE0 */
}

static void put_u(uint32_t v)
{
    char buf[12];
    size_t i = sizeof buf;
    buf[--i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put(buf + i);
}

__attribute__((noreturn)) static void finish(int ok)
{
    /* SYS_EXIT: ADP_Stopped_ApplicationExit (QEMU exits 0), else RunTimeError (1) */
    semihost(0x18u, (const void *)(uintptr_t)(ok ? 0x20026u : 0x20023u));
    for (;;) {
    }
}

/* the startup code's hooks (board.h): a fault ends the test as failed */
void board_record_fault(uint32_t exception, uint32_t pc)
{
    put("fault: exception ");
    put_u(exception);
    put(" at pc ");
    put_u(pc);
    put("\n");
}

void board_reset(void)
{
    finish(0);
}

/* ---- random operands ---------------------------------------------------------- */

static uint32_t rng_state = 0x12345678u;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static float uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd() >> 8) * (1.0f / 16777216.0f);
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static int failed;

static void report(const char *what, uint32_t cases, uint32_t bad)
{
    put(bad ? "FAIL " : "ok   ");
    put(what);
    put(": ");
    put_u(cases);
    put(" cases, ");
    put_u(bad);
    put(" bad\n");
    failed |= bad != 0;
}

/* ---- the products ---------------------------------------------------------------- */

enum { MAXR = 3, MAXK = 259, MAXLD = 140, GUARD = 8 };
static float xs[MAXR * MAXK + 1], ws[MAXK * MAXLD + 1], bs[MAXLD + 1], scales[MAXLD + 1];
static int8_t qs[MAXK * MAXLD + 1];
static float ys[MAXR * MAXLD + GUARD], yk[MAXR * MAXLD + GUARD];
static const float untouched = 12345.0f;

/* g (cm4) against e (scalar): NaN and inf alike, else within 1e-5 mag + extra */
static int off_bound(float g, float e, float mag, float extra)
{
    if (e != e || g != g || isinf(e) || isinf(g))
        return !((e != e && g != g) || g == e);
    return fabsf(g - e) > 1e-5f * mag + extra + 1e-30f;
}

/* 2^p, |p| < 127, without the C library */
static float pow2f(int p)
{
    float f = 1.0f;
    for (; p > 0; p--)
        f *= 2.0f;
    for (; p < 0; p++)
        f *= 0.5f;
    return f;
}

/* one shape, the rest random; q8: linear_tq8 on qs (weight q[i * ldw + j] times scale[j]) */
static uint32_t product_run(int q8, size_t rows, size_t k, size_t m, int reverse)
{
    const size_t ldw = m + (rnd() % 2 ? 0 : rnd() % 8), ldy = m + (rnd() % 2 ? 0 : rnd() % 4);
    const size_t off = rnd() % 2; /* 4-byte misalignment of x, w, bias */
    const int bias = (int)(rnd() % 2);
    const int special = (int)(rnd() % (q8 ? 10 : 6)); /* 6..9: the int8 kernel's block floating point */
    const float scale = rnd() % 4 == 0 ? 1e3f : 1.0f;
    for (size_t i = 0; i < rows * k + 1; i++)
        xs[i] = uniform(-1.0f, 1.0f) * scale;
    for (size_t i = 0; i < k * ldw + 1; i++) {
        ws[i] = uniform(-1.0f, 1.0f);
        qs[i] = (int8_t)((int32_t)(rnd() % 255u) - 127);
    }
    for (size_t j = 0; j < m + 1; j++) {
        bs[j] = uniform(-1.0f, 1.0f);
        scales[j] = uniform(1e-3f, 1e-1f);
    }
    if (special == 1)
        xs[off + rnd() % (rows * k)] = NAN;
    if (special == 2) /* +inf times positive weights */
        xs[off + rnd() % (rows * k)] = INFINITY;
    if (special == 2)
        for (size_t i = 0; i < k * ldw + 1; i++)
            ws[i] = fabsf(ws[i]), qs[i] = (int8_t)(qs[i] < 0 ? -qs[i] : qs[i]);
    for (size_t i = 0; i < rows * k + 1; i++) {
        if (special == 6) /* one row over 2^-40 .. 2^40 */
            xs[i] *= pow2f((int)(rnd() % 81) - 40);
        if (special == 7) /* all zero, some of them -0 */
            xs[i] = rnd() % 2 ? 0.0f : -0.0f;
        if (special == 8) /* denormals (the FPU keeps them), now and then a normal value */
            xs[i] = rnd() % 8 ? uniform(-1.0f, 1.0f) * 1e-39f : uniform(-1.0f, 1.0f) * 1e-30f;
        if (special == 9) /* 1e-3 .. */
            xs[i] *= 1e-3f;
    }
    if (special == 9) { /* .. and one large x whose weights are all zero */
        const size_t i = rnd() % k;
        for (size_t r = 0; r < rows; r++)
            xs[off + r * k + i] = 1e3f;
        for (size_t j = 0; j < ldw; j++)
            qs[off + i * ldw + j] = 0;
    }
    for (size_t i = 0; i < rows * ldy + GUARD; i++)
        ys[i] = yk[i] = untouched;
    if (q8) {
        lnn_linear_q8_params p = {ys, xs + off, qs + off, scales, bias ? bs + off : NULL, rows, k, m, ldw, ldy,
                                  reverse};
        lnn_kernels_scalar.linear_tq8(&p);
        p.y = yk;
        lnn_kernels_cm4.linear_tq8(&p);
    } else {
        lnn_linear_t_params p = {ys, xs + off, ws + off, bias ? bs + off : NULL, rows, k, m, ldw, ldy, reverse};
        lnn_kernels_scalar.linear_t(&p);
        p.y = yk;
        lnn_kernels_cm4.linear_t(&p);
    }
    uint32_t bad = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < ldy; j++) {
            const float g = yk[r * ldy + j], e = ys[r * ldy + j];
            if (j >= m) {
                bad += bits(g) != bits(untouched);
                continue;
            }
            float mag = bias ? fabsf(bs[off + j]) : 0.0f, big = 0.0f, wsum = 0.0f;
            for (size_t i = 0; i < k; i++) {
                const float w = q8 ? (float)qs[off + i * ldw + j] * scales[j] : ws[off + i * ldw + j];
                mag += fabsf(xs[off + r * k + i] * w);
                big = fabsf(xs[off + r * k + i]) > big ? fabsf(xs[off + r * k + i]) : big;
                wsum += fabsf(w);
            }
            bad += off_bound(g, e, mag, q8 ? 0x1p-29f * big * wsum : 0.0f);
        }
    }
    for (size_t i = rows * ldy; i < rows * ldy + GUARD; i++)
        bad += bits(yk[i]) != bits(untouched);
    return bad != 0;
}

static uint32_t product_case(int q8)
{
    static const size_t ks[] = {1, 2, 3, 7, 16, 33, 64, 67, 65, 128, 131, 259};
    static const size_t ms[] = {1, 5, 15, 16, 17, 31, 32, 40, 64, 128};
    const size_t rows = 1 + rnd() % MAXR, k = ks[rnd() % (sizeof ks / sizeof ks[0] - (q8 ? 0 : 4))];
    const size_t m = ms[rnd() % (sizeof ms / sizeof ms[0])];
    return product_run(q8, rows, k, m, (int)(rnd() % 2));
}

/* linear_t on every m % 16 (the 16-column blocks' tail: blocks of 8, 4, 2,
 * 1 columns) with no, one and two 16-column blocks before it, odd and even
 * k (the input pairs' odd one), both orders */
static uint32_t product_sweep(uint32_t *cases)
{
    static const size_t ks[] = {1, 2, 3, 33, 64};
    uint32_t bad = 0;
    for (size_t m = 1; m <= 47; m++)
        for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++)
            for (int reverse = 0; reverse < 2; reverse++, ++*cases)
                bad += product_run(0, 1 + rnd() % MAXR, ks[c], m, reverse);
    return bad;
}

/* LINEAR / MATMUL_NT: w is m rows of k, y rows of m */
static uint32_t linear_run(size_t rows, size_t k, size_t m)
{
    const size_t off = rnd() % 2;
    const int bias = (int)(rnd() % 2), special = (int)(rnd() % 6);
    const float scale = rnd() % 4 == 0 ? 1e3f : 1.0f;
    for (size_t i = 0; i < rows * k + 1; i++)
        xs[i] = uniform(-1.0f, 1.0f) * scale;
    for (size_t i = 0; i < m * k + 1; i++)
        ws[i] = uniform(-1.0f, 1.0f);
    for (size_t j = 0; j < m + 1; j++)
        bs[j] = uniform(-1.0f, 1.0f);
    if (special == 1)
        xs[off + rnd() % (rows * k)] = NAN;
    if (special == 2) { /* +inf times positive weights */
        xs[off + rnd() % (rows * k)] = INFINITY;
        for (size_t i = 0; i < m * k + 1; i++)
            ws[i] = fabsf(ws[i]);
    }
    for (size_t i = 0; i < rows * m + GUARD; i++)
        ys[i] = yk[i] = untouched;
    lnn_linear_params p = {ys, xs + off, ws + off, bias ? bs + off : NULL, rows, k, m};
    lnn_kernels_scalar.linear(&p);
    p.y = yk;
    lnn_kernels_cm4.linear(&p);
    uint32_t bad = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < m; j++) {
            float mag = bias ? fabsf(bs[off + j]) : 0.0f;
            for (size_t i = 0; i < k; i++)
                mag += fabsf(xs[off + r * k + i] * ws[off + j * k + i]);
            bad += off_bound(yk[r * m + j], ys[r * m + j], mag, 0.0f);
        }
    }
    for (size_t i = rows * m; i < rows * m + GUARD; i++)
        bad += bits(yk[i]) != bits(untouched);
    return bad != 0;
}

static uint32_t linear_case(void)
{
    static const size_t ks[] = {1, 3, 7, 8, 9, 16, 33, 64, 67};
    const size_t rows = 1 + rnd() % MAXR, k = ks[rnd() % (sizeof ks / sizeof ks[0])];
    return linear_run(rows, k, 1 + rnd() % 70);
}

/* linear on every m % 4 (rows two and one at a time) and every k % 8
 * (inputs in chunks of 4, 2, 1) with no, one and two chunks of 8 before */
static uint32_t linear_sweep(uint32_t *cases)
{
    uint32_t bad = 0;
    for (size_t m = 1; m <= 9; m++)
        for (size_t k = 1; k <= 23; k++, ++*cases)
            bad += linear_run(1 + rnd() % MAXR, k, m);
    return bad;
}

/* ---- CONV2D (the loops of kernels_graph.h, the set's tap) ------------------------- */

enum { CV_X = 2 * 3 * 13 * 38, CV_W = 3 * 3 * 5 * 5, CV_Y = 2 * 3 * 17 * 28 };
static float cx[CV_X + 1], cw[CV_W + 1], cb[4], ax[CV_X + 1], aw[CV_W + 1], ab[4];
static float cy_ref[CV_Y + GUARD], cy_got[CV_Y + GUARD], cy_mag[CV_Y + GUARD];

/* one shape, operands random (now and then a NaN or +inf in x), against the
 * scalar kernel within 1e-5 of the sum of the absolute terms (the scalar
 * kernel on the absolute operands), the floats after y untouched; x and w
 * misaligned by 4 bytes or not */
static uint32_t conv_run(size_t count, size_t c, size_t o, size_t h, size_t wd, size_t kh, size_t kw,
                         size_t stride, size_t pad)
{
    lnn_conv2d_params p;
    p.count = count, p.c = c, p.o = o, p.h = h, p.wd = wd, p.kh = kh, p.kw = kw, p.stride = stride, p.pad = pad;
    p.oh = (h + 2 * pad - kh) / stride + 1;
    p.ow = (wd + 2 * pad - kw) / stride + 1;
    const size_t nx = count * c * h * wd, nw = o * c * kh * kw, ny = count * o * p.oh * p.ow;
    const size_t off = rnd() % 2;
    const int special = (int)(rnd() % 8);
    for (size_t i = 0; i < nx + 1; i++)
        cx[i] = uniform(-2.0f, 2.0f);
    for (size_t i = 0; i < nw + 1; i++)
        cw[i] = uniform(-2.0f, 2.0f);
    for (size_t i = 0; i < o; i++)
        cb[i] = uniform(-2.0f, 2.0f);
    if (special == 1)
        cx[off + rnd() % nx] = NAN;
    if (special == 2) { /* +inf times positive weights */
        cx[off + rnd() % nx] = INFINITY;
        for (size_t i = 0; i < nw + 1; i++)
            cw[i] = fabsf(cw[i]);
    }
    for (size_t i = 0; i < nx + 1; i++)
        ax[i] = fabsf(cx[i]);
    for (size_t i = 0; i < nw + 1; i++)
        aw[i] = fabsf(cw[i]);
    for (size_t i = 0; i < o; i++)
        ab[i] = fabsf(cb[i]);
    for (size_t i = 0; i < ny + GUARD; i++)
        cy_ref[i] = cy_got[i] = cy_mag[i] = untouched;
    p.x = cx + off, p.w = cw + off, p.bias = cb, p.y = cy_ref;
    lnn_kernels_scalar.conv2d(&p);
    p.y = cy_got;
    lnn_kernels_cm4.conv2d(&p);
    p.x = ax + off, p.w = aw + off, p.bias = ab, p.y = cy_mag;
    lnn_kernels_scalar.conv2d(&p);
    uint32_t bad = 0;
    for (size_t i = 0; i < ny; i++)
        bad += off_bound(cy_got[i], cy_ref[i], cy_mag[i], 0.0f);
    for (size_t i = ny; i < ny + GUARD; i++)
        bad += bits(cy_got[i]) != bits(untouched);
    return bad != 0;
}

/* kernel 1x1, 3x3, 5x5, stride 1 and 2, padding 0 and 1 (below the kernel
 * size, the verifier's rule), widths giving the taps runs of 1..17 output
 * pixels (stride 1: blocks of 8 and every tail of 4, 2, 1; stride 2: the
 * element by element tap) */
static uint32_t conv_sweep(uint32_t *cases)
{
    static const size_t ks[] = {1, 3, 5};
    uint32_t bad = 0;
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (size_t stride = 1; stride <= 2; stride++)
            for (size_t pad = 0; pad <= 1 && pad < ks[ki]; pad++)
                for (size_t wd = ks[ki]; wd <= ks[ki] + 16 * stride + 1; wd++, ++*cases)
                    bad += conv_run(1 + rnd() % 2, 1 + rnd() % 3, 1 + rnd() % 3, ks[ki] + rnd() % 4, wd, ks[ki],
                                    ks[ki], stride, pad);
    return bad;
}

/* random shapes, as vm/tests/kernel_graph_test.inc draws them (smaller) */
static uint32_t conv_case(void)
{
    const size_t kh = 1 + rnd() % 5, kw = 1 + rnd() % 5, kmin = kh < kw ? kh : kw;
    return conv_run(1 + rnd() % 2, 1 + rnd() % 3, 1 + rnd() % 3, kh + rnd() % 9, kw + rnd() % 20, kh, kw,
                    1 + rnd() % 3, rnd() % kmin);
}

/* ---- the LTC step's fused form ------------------------------------------------------ */

enum { EW_MAX = 8 * 70 };
static float src[8][EW_MAX + 1];
static float y_ref[EW_MAX + GUARD], y_got[EW_MAX + GUARD];
static float h_copy[EW_MAX + 1];

/* a large value or one at an edge of the sigmoid's exp: -0 (exp(-0) = 1 whichever way the sign goes), beyond
 * its clamp (|A + B| > 104, which an H of 0 shows), infinities */
static float ltc_edge(void)
{
    static const float edge[] = {0.0f, -0.0f, 52.0f, -52.0f, 104.0f, -104.0f, 150.0f, -150.0f, INFINITY, -INFINITY};
    return rnd() % 2 ? uniform(-100.0f, 100.0f) : edge[rnd() % (sizeof edge / sizeof edge[0])];
}

/* split: the LTC form's program (LNN_EW_FORM_LTC), else the unsplit one (LNN_EW_FORM_LTC_UNSPLIT: no adds, B
 * and D unread) */
static uint32_t ltc_case(int split)
{
    enum { A, B, C, D, H, T, DT };
    const size_t n = 7 + rnd() % 2; /* 8: one operand the program never reads */
    size_t perm[8];
    for (size_t j = 0; j < n; j++)
        perm[j] = j;
    for (size_t j = n; j-- > 1;) {
        const size_t i = rnd() % (j + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    const uint32_t r0 = rnd() % 8u, r1 = (r0 + 1u + rnd() % 7u) % 8u;
    const uint32_t R0 = (uint32_t)n + r0, R1 = (uint32_t)n + r1;
#define W(op, d, a, b) ((uint32_t)(op) | (uint32_t)(d) << 8 | (uint32_t)(a) << 16 | (uint32_t)(b) << 24)
    const uint32_t split_words[8] = {
        W(0x30, r0, perm[A], perm[B]), W(0x42, r0, R0, 0),   W(0x30, r1, perm[C], perm[D]),
        W(0x32, r0, R1, R0),           W(0x31, r0, R0, perm[H]), W(0x33, r0, R0, perm[T]),
        W(0x32, r0, perm[DT], R0),     W(0x30, 0, perm[H], R0),
    };
    const uint32_t unsplit_words[6] = {
        W(0x42, r1, perm[A], 0),   W(0x32, r0, perm[C], R1), W(0x31, r0, R0, perm[H]),
        W(0x33, r1, R0, perm[T]),  W(0x32, r0, perm[DT], R1), W(0x30, 0, perm[H], R0),
    };
#undef W
    const uint32_t *words = split ? split_words : unsplit_words;
    const size_t ninsn = split ? 8 : 6;
    const uint32_t form = lnn_ew_form(words, ninsn, n);
    if ((form & 0xFu) != (split ? LNN_EW_FORM_LTC : LNN_EW_FORM_LTC_UNSPLIT))
        return 1;
    const size_t inner = rnd() % 2 ? 8 * (1 + rnd() % 8) : 1 + rnd() % 70;
    const size_t outer = 1 + rnd() % (EW_MAX / inner < 6 ? EW_MAX / inner : 6);
    const size_t count = inner * outer;
    lnn_ewise_params p;
    memset(&p, 0, sizeof p);
    for (size_t j = 0; j < n; j++) {
        uint32_t mode = rnd() % 3u;
        if (j == perm[H] && rnd() % 2)
            mode = LNN_EW_SAME;
        p.mode[j] = (uint8_t)mode;
        p.len[j] = mode == LNN_EW_SAME ? count : mode == LNN_EW_SCALAR ? 1 : (rnd() % 2 ? inner : count);
        for (size_t i = 0; i < count + 1; i++) /* now and then a NaN: the step passes it through */
            src[j][i] = rnd() % 5 ? uniform(-8.0f, 8.0f) : rnd() % 16 ? ltc_edge() : NAN;
        p.src[j] = src[j] + rnd() % 2;
    }
    p.n = n;
    p.ninsn = ninsn;
    p.nregs = (r0 > r1 ? r0 : r1) + 1;
    p.insn = words;
    p.count = count;
    p.inner = count;
    for (size_t j = 0; j < n; j++)
        if (p.mode[j] == LNN_EW_ROW && p.len[j] < p.inner)
            p.inner = p.len[j];
    for (size_t i = 0; i < count + GUARD; i++)
        y_ref[i] = y_got[i] = untouched;
    p.y = y_ref; /* the scalar block interpreter: no form */
    lnn_kernels_scalar.ewise(&p);
    p.form = form;
    const int inplace = p.mode[perm[H]] == LNN_EW_SAME && rnd() % 2;
    float *out = y_got;
    if (inplace) {
        float *h = (float *)(uintptr_t)p.src[perm[H]];
        memcpy(h_copy, h, count * sizeof(float));
        out = h;
    }
    p.y = out;
    lnn_kernels_cm4.ewise(&p);
    uint32_t bad = 0;
    for (size_t i = 0; i < count; i++)
        bad += bits(out[i]) != bits(y_ref[i]);
    for (size_t i = count; i < count + GUARD; i++)
        bad += !inplace && bits(y_got[i]) != bits(untouched);
    if (inplace) /* put H back for nothing else: each case makes its own operands */
        memcpy((float *)(uintptr_t)p.src[perm[H]], h_copy, count * sizeof(float));
    return bad != 0;
}

/* ---- LINEAR_W8A16 / MATMUL_W8A16: the scalar kernel's bits ------------------------ */

enum { W8_MAXK = 600, W8_MAXM = 130, W8_MAXR = 3, W8_GUARD = 4 };
static uint32_t w8_panel[((W8_MAXM + 1) / 2) * ((W8_MAXK + 1) / 2)]; /* words: ldm needs 4-byte alignment */
static float w8_x[W8_MAXR * W8_MAXK], w8_scale[W8_MAXM], w8_bias[W8_MAXM];
static float w8_ys[W8_MAXR * W8_MAXM + LNN_MAX_DSTS * W8_GUARD], w8_yk[W8_MAXR * W8_MAXM + LNN_MAX_DSTS * W8_GUARD];

/* x kinds: 0 uniform, 1 wide, 2 any float, 3 NaN, 4 inf, 5 zero, 6 under 2^-100, 7 max just below 2^t,
 * 8 max at the half-way significand 0xFFFF00 (rounds up) or 0xFFFEFF, 9 all 32767/32768 2^t */
static void w8_row(float *x, size_t k, int kind)
{
    const int t = (int)(rnd() % 41u) - 20;
    for (size_t i = 0; i < k; i++) {
        float v = uniform(-1.0f, 1.0f);
        if (kind == 1)
            v *= pow2f((int)(rnd() % 41u) - 20);
        else if (kind == 2) {
            uint32_t u;
            do
                u = rnd();
            while ((u & 0x7F800000u) == 0x7F800000u); /* finite */
            memcpy(&v, &u, sizeof v);
        } else if (kind == 5)
            v = rnd() % 2 ? 0.0f : -0.0f;
        else if (kind == 6)
            v = rnd() % 2 ? v * pow2f(-101) * pow2f(-(int)(rnd() % 40u)) : v * 1e-39f; /* denormals too */
        else if (kind == 9)
            v = 32767.0f / 32768.0f * pow2f(t);
        else
            v *= pow2f(t);
        x[i] = v;
    }
    const size_t at = rnd() % k;
    const float sign = rnd() % 2 ? -1.0f : 1.0f;
    if (kind == 3)
        x[at] = NAN;
    else if (kind == 4)
        x[at] = sign * INFINITY;
    else if (kind == 7)
        x[at] = sign * (1.0f - pow2f(-24)) * pow2f(t + 1);
    else if (kind == 8)
        x[at] = sign * (float)(rnd() % 2 ? 0xFFFF00 : 0xFFFEFF) * pow2f(t - 23);
}

static uint32_t w8_run(size_t rows, size_t k, size_t m, int xkind, int pkind)
{
    const size_t kp = (k + 1) / 2, words = ((m + 1) / 2) * kp;
    uint8_t *pb = (uint8_t *)w8_panel;
    for (size_t i = 0; i < 4 * words; i++)
        pb[i] = pkind == 1 ? (uint8_t)rnd() : pkind == 2 ? (uint8_t)(i % 2 ? 0x7F : 0x80) : 0;
    if (pkind == 0) /* int8 weights in [-127, 127], encoded as the spec says (q = 0 outside) */
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < m; j += 2) {
                const int32_t q0 = (int32_t)(rnd() % 255u) - 127, q1 = j + 1 < m ? (int32_t)(rnd() % 255u) - 127 : 0;
                const uint16_t h = (uint16_t)(256 * q1 + q0);
                uint8_t *b = pb + 4 * ((j / 2) * kp + i / 2) + 2 * (i % 2);
                b[0] = (uint8_t)h;
                b[1] = (uint8_t)(h >> 8);
            }
    for (size_t j = 0; j < m; j++) {
        w8_scale[j] = uniform(1e-3f, 1e-1f);
        w8_bias[j] = uniform(-1.0f, 1.0f);
    }
    for (size_t r = 0; r < rows; r++) /* the first row of the kind, the others any */
        w8_row(w8_x + r * k, k, r == 0 ? xkind : (int)(rnd() % 10u));
    lnn_linear_w8a16_params p;
    p.x = w8_x;
    p.panel = pb;
    p.scale = w8_scale;
    p.bias = rnd() % 2 ? w8_bias : NULL;
    p.rows = rows;
    p.k = k;
    p.m = m;
    /* 1..8 destinations, cut at random columns (odd ones too) */
    size_t n = 1 + rnd() % LNN_MAX_DSTS;
    n = n > m ? m : n;
    p.ndst = n;
    p.col[0] = 0;
    for (size_t d = 1; d < n; d++)
        p.col[d] = p.col[d - 1] + 1 + rnd() % (m - p.col[d - 1] - (n - d));
    p.col[n] = m;
    for (size_t i = 0; i < sizeof w8_ys / sizeof w8_ys[0]; i++)
        w8_ys[i] = w8_yk[i] = untouched;
    size_t at = 0, start[LNN_MAX_DSTS];
    for (size_t d = 0; d < n; d++) {
        start[d] = at;
        at += rows * (p.col[d + 1] - p.col[d]) + W8_GUARD;
    }
    for (size_t d = 0; d < n; d++)
        p.y[d] = w8_ys + start[d];
    lnn_kernels_scalar.linear_w8a16(&p);
    for (size_t d = 0; d < n; d++)
        p.y[d] = w8_yk + start[d];
    lnn_kernels_cm4.linear_w8a16(&p);
    uint32_t bad = 0;
    for (size_t i = 0; i < at; i++) {
        const float g = w8_yk[i], e = w8_ys[i];
        bad += !((g != g && e != e) || bits(g) == bits(e)); /* the guards: both untouched */
    }
    for (size_t d = 0; d < n; d++)
        for (size_t g = 0; g < W8_GUARD; g++)
            bad += bits(w8_yk[start[d] + rows * (p.col[d + 1] - p.col[d]) + g]) != bits(untouched);
    return bad != 0;
}

/* every listed k against every listed m, then random shapes; x and panel kinds in turn */
static uint32_t w8_cases(uint32_t *cases)
{
    static const size_t ks[] = {1, 2, 3, 5, 8, 9, 15, 16, 17, 31, 64, 65, 127, 255, 256, 257, 300, 513, 600};
    static const size_t ms[] = {1, 2, 3, 7, 8, 9, 16, 17, 31, 32, 33, 64, 65, 128, 130};
    uint32_t bad = 0, n = 0;
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
        for (size_t b = 0; b < sizeof ms / sizeof ms[0]; b++, n++)
            bad += w8_run(1 + rnd() % W8_MAXR, ks[a], ms[b], (int)(n % 10u), (int)(n % 3u));
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++, n++) /* the largest sums, past the 256-input chunk */
        bad += ks[a] > 256 ? w8_run(1 + rnd() % W8_MAXR, ks[a], 1 + rnd() % W8_MAXM, 9, 2) : 0;
    for (uint32_t c = 0; c < 300; c++, n++)
        bad += w8_run(1 + rnd() % W8_MAXR, 1 + rnd() % 200u, 1 + rnd() % W8_MAXM, (int)(rnd() % 10u),
                      (int)(rnd() % 3u));
    *cases = n;
    return bad;
}

int main(void)
{
    uint32_t bad = 0, cases = 0;
    enum { PRODUCT_CASES = 400, LTC_CASES = 300, CONV_CASES = 200 };
    put("cm4_kernel_test: kernel sets compiled in:");
    for (size_t i = 0; lnn_kernel_sets[i]; i++) {
        put(" ");
        put(lnn_kernel_sets[i]->isa);
    }
    put("; lnn_init picks ");
    put(lnn_kernels_select()->isa);
    put("\n");
    bad = linear_sweep(&cases);
    for (uint32_t c = 0; c < PRODUCT_CASES; c++)
        bad += linear_case();
    report("cm4 linear vs scalar (1e-5 sum |x w|)", cases + PRODUCT_CASES, bad);
    cases = 0;
    bad = product_sweep(&cases);
    for (uint32_t c = 0; c < PRODUCT_CASES; c++)
        bad += product_case(0);
    report("cm4 linear_t vs scalar (1e-5 sum |x w|)", cases + PRODUCT_CASES, bad);
    bad = 0;
    for (uint32_t c = 0; c < PRODUCT_CASES; c++)
        bad += product_case(1);
    report("cm4 linear_tq8 vs scalar (1e-5 sum |x w| + 2^-29 max |x| sum |w|)", PRODUCT_CASES, bad);
    bad = 0;
    for (uint32_t c = 0; c < LTC_CASES; c++)
        bad += ltc_case(1);
    report("cm4 ewise LTC form vs scalar block interpreter (bits)", LTC_CASES, bad);
    bad = 0;
    for (uint32_t c = 0; c < LTC_CASES; c++)
        bad += ltc_case(0);
    report("cm4 ewise unsplit LTC form (w8a16) vs scalar block interpreter (bits)", LTC_CASES, bad);
    cases = 0;
    bad = conv_sweep(&cases);
    for (uint32_t c = 0; c < CONV_CASES; c++)
        bad += conv_case();
    report("cm4 conv2d vs scalar (1e-5 sum |x w| + |bias|)", cases + CONV_CASES, bad);
    bad = w8_cases(&cases);
    report("cm4 linear_w8a16 vs scalar (bits)", cases, bad);
    finish(!failed);
}
