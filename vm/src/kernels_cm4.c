/*
 * kernels_cm4.c - the "cm4" kernel set: Cortex-M cores with a single-precision
 * VFPv4 FPU (Cortex-M4F, M7, M33 with FPU), chosen at compile time (simd.h:
 * LNN_HAVE_CM4 follows the compiler's target). No vector unit: the set
 * replaces the products and CONV2D's tap, where the time goes, and the LTC
 * step's element-wise form, and points every other entry at the scalar
 * kernel.
 *
 * linear_t (LINEAR_T, MATMUL_T): blocks of 16 output columns whose 16 sums
 * stay in s16-s31 for the whole i loop; each input x[i] is loaded once per
 * block (two at a time with one vldmia), each row of 16 weights with two
 * vldmia of 8 registers, and every multiply-add is one vfma.f32: about 1.3
 * instructions per multiply-add instead of the scalar kernel's load, vmul
 * and vadd per weight. The compiler does not emit vldmia for a block of
 * weights nor keep 16 sums in registers across a loop, hence the asm. The
 * sums run in i order (from k - 1 down with reverse) as the scalar
 * contract says, but fused (one rounding per step instead of two), as the
 * AArch64 NEON and AVX2 sets do: within the products' tolerance of the
 * scalar kernel, not bit-exact (vm/tests/kernel_test.c holds every set's
 * linear_t to 1e-5 sum |x w|). The last m % 16 columns take one block of
 * 8, 4, 2 and 1 columns for each bit of m % 16, the same way (one vldmia of
 * the row's 8, 4, 2 weights): a width that is not a multiple of 16 no
 * longer costs about twice as much per multiply-add (64 x 126 was 2.4, in C).
 *
 * linear (LINEAR, MATMUL_NT): four dot products at once over chunks of 8
 * inputs, x and each weight row by vldmia, vfma: about 1.2 instructions per
 * multiply-add; the last k % 8 inputs as chunks of 4, 2, 1 and the last
 * m % 4 rows two and one at a time, also by vldmia and vfma. The same
 * contract as linear_t.
 *
 * ewise: the LTC step's fused form (below), bit-exact with the scalar set;
 * other programs run on the scalar block interpreter.
 *
 * conv2d (CONV2D): kernels_graph.h's loops, as every set, with a tap that
 * runs a contiguous run of outputs (stride 1) in blocks of 8, 4, 2, 1 by
 * vldmia, vfma, vstmia (below, at lnn_cm4_tap); the same contract as the
 * SIMD sets' tap (fused, within 1e-5 of the sum of the absolute terms).
 *
 * linear_tq8 (LINEAR_TQ8, MATMUL_TQ8): in integers, x in block floating
 * point (31 bits under its row's largest value) and exact 64-bit sums (sxtb,
 * smlal), four columns a step; within the scalar kernel's result by 1e-5
 * sum |x w| + 2^-29 max |x| sum |w| (below, at lnn_cm4_tq8_block).
 *
 * linear_w8a16 (LINEAR_W8A16, MATMUL_W8A16): SMLALD / SXTB16 / SMLAD on the
 * column-pair panel, 3 instructions per 4 multiply-adds, exact integer sums:
 * the scalar kernel's bits (below, at LNN_CM4_W8_CHUNK).
 */
#include "kernels.h"

#if LNN_HAVE_CM4

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "vmath.h"

static const float lnn_cm4_zeros[16];

/* One block of N = 16, 8, 4, 2 or 1 columns: y[0..N) = sum over i of
 * x[i] * w[i][0..N), in i order, the N sums in s16.. for the whole i loop;
 * w points at row 0 (forward) or row k - 1 (reverse), x at x[0] (forward)
 * or one past x[k - 1] (reverse). XLOAD loads x pairs (vldmia forward,
 * vldmdb reverse, both with writeback), X0 and X1 name the register of the
 * first and the second input of a pair in that order. STEP(xr) is one
 * input's step: its N weights by vldmia, N vfma, w on to the next row by
 * wstep bytes. SUMS is the register list of the N sums. */
/* x[i] (register xr) times 8 weights (s2-s9) into s16-s23 / s24-s31 */
#define LNN_CM4_FMA8_LO(xr)                                                         \
    "vfma.f32 s16, " xr ", s2\n\t"                                                  \
    "vfma.f32 s17, " xr ", s3\n\t"                                                  \
    "vfma.f32 s18, " xr ", s4\n\t"                                                  \
    "vfma.f32 s19, " xr ", s5\n\t"                                                  \
    "vfma.f32 s20, " xr ", s6\n\t"                                                  \
    "vfma.f32 s21, " xr ", s7\n\t"                                                  \
    "vfma.f32 s22, " xr ", s8\n\t"                                                  \
    "vfma.f32 s23, " xr ", s9\n\t"
#define LNN_CM4_FMA8_HI(xr)                                                         \
    "vfma.f32 s24, " xr ", s2\n\t"                                                  \
    "vfma.f32 s25, " xr ", s3\n\t"                                                  \
    "vfma.f32 s26, " xr ", s4\n\t"                                                  \
    "vfma.f32 s27, " xr ", s5\n\t"                                                  \
    "vfma.f32 s28, " xr ", s6\n\t"                                                  \
    "vfma.f32 s29, " xr ", s7\n\t"                                                  \
    "vfma.f32 s30, " xr ", s8\n\t"                                                  \
    "vfma.f32 s31, " xr ", s9\n\t"
/* one input: its 16 weights, two loads of 8 (the first with writeback:
 * wstep is then 32 bytes short of a row), 16 vfma, on to the next row */
#define LNN_CM4_STEP16(xr)                                                          \
    "vldmia %[w]!, {s2-s9}\n\t" LNN_CM4_FMA8_LO(xr)                                 \
    "vldmia %[w], {s2-s9}\n\t" LNN_CM4_FMA8_HI(xr)                                  \
    "add %[w], %[w], %[wstep]\n\t"
/* the tail's blocks: one load of 8, 4, 2 or 1 weights, wstep a whole row */
#define LNN_CM4_STEP8(xr)                                                           \
    "vldmia %[w], {s2-s9}\n\t" LNN_CM4_FMA8_LO(xr) "add %[w], %[w], %[wstep]\n\t"
#define LNN_CM4_STEP4(xr)                                                           \
    "vldmia %[w], {s2-s5}\n\t"                                                      \
    "vfma.f32 s16, " xr ", s2\n\t"                                                  \
    "vfma.f32 s17, " xr ", s3\n\t"                                                  \
    "vfma.f32 s18, " xr ", s4\n\t"                                                  \
    "vfma.f32 s19, " xr ", s5\n\t"                                                  \
    "add %[w], %[w], %[wstep]\n\t"
#define LNN_CM4_STEP2(xr)                                                           \
    "vldmia %[w], {s2-s3}\n\t"                                                      \
    "vfma.f32 s16, " xr ", s2\n\t"                                                  \
    "vfma.f32 s17, " xr ", s3\n\t"                                                  \
    "add %[w], %[w], %[wstep]\n\t"
#define LNN_CM4_STEP1(xr)                                                           \
    "vldr s2, [%[w]]\n\t"                                                           \
    "vfma.f32 s16, " xr ", s2\n\t"                                                  \
    "add %[w], %[w], %[wstep]\n\t"
#define LNN_CM4_BLOCK(XLOAD, X0, X1, SUMS, STEP)                                    \
    __asm__ volatile("vldmia %[z], " SUMS "\n\t"                                    \
                     "cmp %[pairs], #0\n\t"                                         \
                     "beq 2f\n"                                                     \
                     "1:\n\t" XLOAD " %[x]!, {s0-s1}\n\t" STEP(X0) STEP(X1)         \
                     "subs %[pairs], %[pairs], #1\n\t"                              \
                     "bne 1b\n"                                                     \
                     "2:\n\t"                                                       \
                     "cmp %[odd], #0\n\t"                                           \
                     "beq 3f\n\t" XLOAD " %[x]!, {s0}\n\t" STEP("s0")               \
                     "3:\n\t"                                                       \
                     "vstmia %[y], " SUMS "\n\t"                                    \
                     : [x] "+r"(xp), [w] "+r"(wp), [pairs] "+r"(pairs)              \
                     : [z] "r"(lnn_cm4_zeros), [y] "r"(y + j), [odd] "r"(odd),      \
                       [wstep] "r"(wstep)                                           \
                     : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9",  \
                       "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23",      \
                       "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31",      \
                       "cc", "memory")
/* columns j .. j + N of every input, forward or reverse (vldmdb {s0-s1}
 * loads x[i - 1] into s0, x[i] into s1: s1 first); adv is the bytes
 * STEP's loads advance w by themselves */
#define LNN_CM4_COLUMNS(SUMS, STEP, adv)                                          \
    do {                                                                            \
        size_t pairs = k / 2;                                                       \
        const size_t odd = k % 2;                                                   \
        if (!p->reverse) {                                                          \
            const float *xp = x;                                                    \
            const float *wp = p->w + j;                                             \
            const int32_t wstep = (int32_t)(4 * ldw) - (adv);                     \
            LNN_CM4_BLOCK("vldmia", "s0", "s1", SUMS, STEP);                        \
        } else {                                                                    \
            const float *xp = x + k;                                                \
            const float *wp = p->w + (k - 1) * ldw + j;                             \
            const int32_t wstep = -(int32_t)(4 * ldw) - (adv);                    \
            LNN_CM4_BLOCK("vldmdb", "s1", "s0", SUMS, STEP);                        \
        }                                                                           \
    } while (0)

/* Which tail blocks of 8, 4 and 2 columns are linked (bits 8, 4, 2): all in
 * a full build; a selective build lists those its models' widths use
 * (opselect.py), since they take about 1 KB of flash. The one-column block is
 * always there and takes the columns of a block left out: every width runs,
 * a listed one at block speed. */
#ifndef LNN_CM4_T_BLOCKS
#define LNN_CM4_T_BLOCKS 14
#endif

/* The last m % 16 columns from j on: a block of 8, 4, 2 for each bit of m
 * (that is linked), the rest one column at a time. Out of line: inlined, its
 * blocks' pointers and steps crowd the 16-column loop's registers, and m a
 * multiple of 16 would pay for it. */
__attribute__((noinline)) static void lnn_cm4_linear_t_tail(const lnn_linear_t_params *p, const float *x,
                                                            float *y, size_t j)
{
    const size_t k = p->k, m = p->m, ldw = p->ldw;
    if ((LNN_CM4_T_BLOCKS & 8) && (m & 8)) {
        LNN_CM4_COLUMNS("{s16-s23}", LNN_CM4_STEP8, 0);
        j += 8;
    }
    if ((LNN_CM4_T_BLOCKS & 4) && (m & 4)) {
        LNN_CM4_COLUMNS("{s16-s19}", LNN_CM4_STEP4, 0);
        j += 4;
    }
    if ((LNN_CM4_T_BLOCKS & 2) && (m & 2)) {
        LNN_CM4_COLUMNS("{s16-s17}", LNN_CM4_STEP2, 0);
        j += 2;
    }
    for (; j < m; j++)
        LNN_CM4_COLUMNS("{s16}", LNN_CM4_STEP1, 0);
}

void lnn_linear_t__cm4(const lnn_linear_t_params *p)
{
    const size_t k = p->k, m = p->m, ldw = p->ldw;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        float *y = p->y + r * p->ldy;
        size_t j = 0;
        for (; j + 16 <= m; j += 16)
            LNN_CM4_COLUMNS("{s16-s31}", LNN_CM4_STEP16, 32);
        if (j < m)
            lnn_cm4_linear_t_tail(p, x, y, j);
        if (p->bias)
            for (size_t c = 0; c < m; c++)
                y[c] += p->bias[c];
    }
}
#undef LNN_CM4_COLUMNS
#undef LNN_CM4_BLOCK

/* LINEAR, MATMUL_NT: four outputs at once, over chunks of 8 inputs: the
 * chunk of x in s0-s7 (one vldmia), each row's 8 weights in s8-s15 (one
 * vldmia) and 8 vfma into that row's sum (s16-s19), each sum in i order.
 * The last k % 8 inputs continue the sums as chunks of 4, 2, 1 (a bit of
 * k each), the last m % 4 rows run the same way two and one at a time. */
#define LNN_CM4_DOT8(acc, wr)                                                       \
    "vldmia %[" wr "]!, {s8-s15}\n\t"                                              \
    "vfma.f32 " acc ", s0, s8\n\t"                                                 \
    "vfma.f32 " acc ", s1, s9\n\t"                                                 \
    "vfma.f32 " acc ", s2, s10\n\t"                                                \
    "vfma.f32 " acc ", s3, s11\n\t"                                                \
    "vfma.f32 " acc ", s4, s12\n\t"                                                \
    "vfma.f32 " acc ", s5, s13\n\t"                                                \
    "vfma.f32 " acc ", s6, s14\n\t"                                                \
    "vfma.f32 " acc ", s7, s15\n\t"
#define LNN_CM4_DOT4(acc, wr)                                                       \
    "vldmia %[" wr "]!, {s8-s11}\n\t"                                              \
    "vfma.f32 " acc ", s0, s8\n\t"                                                 \
    "vfma.f32 " acc ", s1, s9\n\t"                                                 \
    "vfma.f32 " acc ", s2, s10\n\t"                                                \
    "vfma.f32 " acc ", s3, s11\n\t"
#define LNN_CM4_DOT2(acc, wr)                                                       \
    "vldmia %[" wr "]!, {s8-s9}\n\t"                                               \
    "vfma.f32 " acc ", s0, s8\n\t"                                                 \
    "vfma.f32 " acc ", s1, s9\n\t"
#define LNN_CM4_DOT1(acc, wr)                                                       \
    "vldmia %[" wr "]!, {s8}\n\t"                                                  \
    "vfma.f32 " acc ", s0, s8\n\t"
/* DOT(acc, w) for each of the four, two or one rows */
#define LNN_CM4_ROWS4(DOT) DOT("s16", "w0") DOT("s17", "w1") DOT("s18", "w2") DOT("s19", "w3")
#define LNN_CM4_ROWS2(DOT) DOT("s16", "w0") DOT("s17", "w1")
#define LNN_CM4_ROWS1(DOT) DOT("s16", "w0")
/* the chunks of 8, then (one test when k is a multiple of 8) those of 4, 2, 1 */
#define LNN_CM4_DOTS(ROWS)                                                          \
    __asm__ volatile("cmp %[n], #0\n\t"                                             \
                     "beq 2f\n"                                                     \
                     "1:\n\t"                                                       \
                     "vldmia %[x]!, {s0-s7}\n\t" ROWS(LNN_CM4_DOT8)                 \
                     "subs %[n], %[n], #1\n\t"                                      \
                     "bne 1b\n"                                                     \
                     "2:\n\t"                                                       \
                     "cmp %[rest], #0\n\t"                                          \
                     "beq 5f\n\t"                                                   \
                     "tst %[rest], #4\n\t"                                          \
                     "beq 3f\n\t"                                                   \
                     "vldmia %[x]!, {s0-s3}\n\t" ROWS(LNN_CM4_DOT4)                 \
                     "3:\n\t"                                                       \
                     "tst %[rest], #2\n\t"                                          \
                     "beq 4f\n\t"                                                   \
                     "vldmia %[x]!, {s0-s1}\n\t" ROWS(LNN_CM4_DOT2)                 \
                     "4:\n\t"                                                       \
                     "tst %[rest], #1\n\t"                                          \
                     "beq 5f\n\t"                                                   \
                     "vldmia %[x]!, {s0}\n\t" ROWS(LNN_CM4_DOT1)                    \
                     "5:\n\t"                                                       \
                     : [x] "+r"(xp), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2),   \
                       [w3] "+r"(w3), [n] "+r"(chunks), "+t"(a0), "+t"(a1),         \
                       "+t"(a2), "+t"(a3)                                           \
                     : [rest] "r"(rest)                                             \
                     : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9",  \
                       "s10", "s11", "s12", "s13", "s14", "s15", "cc", "memory")

/* y[0..rows) = the dot products of x with rows (4, 2 or 1) rows of w */
static void lnn_cm4_dots(const float *x, const float *w, size_t k, float *y, size_t rows)
{
    /* the rows a call does not have: w0 again (never read) */
    const float *w0 = w, *w1 = rows > 1 ? w + k : w, *w2 = rows > 2 ? w + 2 * k : w;
    const float *w3 = rows > 2 ? w + 3 * k : w;
    const float *xp = x;
    size_t chunks = k / 8;
    const size_t rest = k % 8;
    /* the four sums live in s16-s19 (the asm names them): zeroed and stored in C */
    register float a0 __asm__("s16") = 0.0f;
    register float a1 __asm__("s17") = 0.0f;
    register float a2 __asm__("s18") = 0.0f;
    register float a3 __asm__("s19") = 0.0f;
    if (rows == 4)
        LNN_CM4_DOTS(LNN_CM4_ROWS4);
    else if (rows == 2)
        LNN_CM4_DOTS(LNN_CM4_ROWS2);
    else
        LNN_CM4_DOTS(LNN_CM4_ROWS1);
    y[0] = a0;
    if (rows > 1)
        y[1] = a1;
    if (rows > 2) {
        y[2] = a2;
        y[3] = a3;
    }
}
#undef LNN_CM4_DOTS
#undef LNN_CM4_ROWS1
#undef LNN_CM4_ROWS2
#undef LNN_CM4_ROWS4
#undef LNN_CM4_DOT1
#undef LNN_CM4_DOT2
#undef LNN_CM4_DOT4
#undef LNN_CM4_DOT8

void lnn_linear__cm4(const lnn_linear_params *p)
{
    const size_t k = p->k, m = p->m;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        float *y = p->y + r * m;
        size_t j = 0;
        for (; j + 4 <= m; j += 4)
            lnn_cm4_dots(x, p->w + j * k, k, y + j, 4);
        if (m & 2) {
            lnn_cm4_dots(x, p->w + j * k, k, y + j, 2);
            j += 2;
        }
        if (m & 1)
            lnn_cm4_dots(x, p->w + j * k, k, y + j, 1);
        if (p->bias)
            for (size_t c = 0; c < m; c++)
                y[c] += p->bias[c];
    }
}

/* LINEAR_TQ8, MATMUL_TQ8 in integers. The FPU cannot load a byte, so a float
 * product of int8 weights pays a sign-extending load, a move to the FPU, a
 * conversion and the vfma for every weight. Instead each row of x is put in
 * block floating point once per call, one exponent for the row: x[i] = xq[i]
 * 2^-n with xq[i] = (int32) (x[i] 2^n) truncated, n = 31 - e where 2^(e-1) <=
 * max |x| < 2^e, so |xq| < 2^31 and |x[i] - xq[i] 2^-n| < 2^(e-31) <= 2^-30
 * max |x|. The sums sum xq[i] q(j, i) are then exact in 64 bits: one sxtb
 * (with its byte rotation) and one smlal per weight, four columns (one
 * 32-bit load of four weights) a step. Chunks of 128 inputs keep |sum| <=
 * 2^45 (128 2^31 128), inside the 48 bits lnn_cm4_tq8_block converts (512
 * would still fit; 128 covers K = 65 in one chunk, whose single pass writes
 * y directly, with 1 KB of stack for the chunk's entries); each chunk's sums
 * become floats (in lnn_cm4_tq8_block) times 2^-n into y. So y[j] differs from the exact sum of x q by under 2^-30 max |x|
 * sum_i |q(j, i)| (the truncation) plus a few float roundings of the chunk
 * sums, where the scalar kernel's float sum in i order differs by up to k
 * roundings: cm4_kernel_test.c holds the two within 1e-5 sum |x w| + 2^-29
 * max |x| sum |w|. reverse changes nothing: the integer sums have no order.
 * A row with a NaN or an infinity takes lnn_cm4_tq8_float_row (float sums),
 * which propagates them as the scalar kernel does. */
enum { LNN_CM4_TQ8_CHUNK = 128 };

/* 2^e for -126 <= e <= 127 */
static float lnn_cm4_pow2(int e)
{
    return lnn_f32_from_bits((uint32_t)(e + 127) << 23);
}

/* The row with float sums (x holds a NaN or an infinity): the scalar
 * kernel's sums fused, in i order. */
static void lnn_cm4_tq8_float_row(const lnn_linear_q8_params *p, const float *x, float *y)
{
    for (size_t j = 0; j < p->m; j++) {
        float acc = 0.0f;
        for (size_t n = 0; n < p->k; n++) {
            const size_t i = p->reverse ? p->k - 1 - n : n;
            acc = fmaf(x[i], (float)p->q[i * p->ldq + j], acc);
        }
        y[j] = acc;
    }
}

/* One input of a chunk: its block floating point value and the byte offset
 * of its weights in q; every fourth input of a chunk holds the offset
 * shifted left by one, its low bit marking the chunk's last input
 * (lnn_cm4_tq8_block's loop tests it instead of comparing pointers: no
 * register is left for an end pointer). */
typedef struct {
    int32_t x;
    uint32_t off;
} lnn_cm4_tq8_in;

/* lnn_cm4_tq8_block(in, qb, f, scale): for the four columns whose weights
 * start at qb (q(j..j+3, i) is the word at qb + off_i), the 64-bit sums s_c
 * of x_i q(j + c, i) over the entries of in after its first (a multiple of
 * 4), then f[c] = (float(s_c) * out) * scale[c], out the float in[0].x's
 * bits hold (in memory, whatever the float ABI): the sum's bits 16-47
 * converted (one rounding) plus its low 16 bits as a fixed-point fraction
 * (exact), one rounding in the add, times out * 2^-16 (out carries the
 * 2^16). In assembly, not C: the eight accumulator registers, the
 * entry, the weights' word, a byte and the two pointers need every core
 * register but sp and pc, which gcc does not give an asm statement (it keeps
 * r7 as the frame pointer at -O0); C spills the sums to the stack. Per input:
 * ldrd (x and the offset), ldr (four weights, unaligned allowed), three sxtb
 * (each byte rotated into place), an asr (the top byte) and four smlal (32 x
 * 32 -> 64 bits, exact): 2.6 instructions per multiply-add with the loop's
 * share. Registers: r0 in, r1 qb, r3-r10 the sums, r11 x, r12 offset and
 * byte, lr the weights. Own section: a build without the _TQ8 ops drops it. */
void lnn_cm4_tq8_block(const lnn_cm4_tq8_in *in, const int8_t *qb, float f[4], const float scale[4]);
#define LNN_CM4_TQ8_ROW(OFFSET)                                                     \
    "ldrd r11, r12, [r0], #8\n\t" OFFSET                                            \
    "ldr lr, [r1, r12]\n\t"                                                         \
    "sxtb r12, lr\n\t"                                                              \
    "smlal r3, r4, r11, r12\n\t"                                                    \
    "sxtb r12, lr, ror #8\n\t"                                                      \
    "smlal r5, r6, r11, r12\n\t"                                                    \
    "sxtb r12, lr, ror #16\n\t"                                                     \
    "smlal r7, r8, r11, r12\n\t"                                                    \
    "asr lr, lr, #24\n\t"                                                           \
    "smlal r9, r10, r11, lr\n\t"
/* sum lo:hi (registers) to float in the s register pair FA, FB, times s0 and SC */
#define LNN_CM4_TQ8_FLOAT(lo, hi, FA, FB, SC)                                       \
    "lsr r11, " lo ", #16\n\t"                                                      \
    "orr r11, r11, " hi ", lsl #16\n\t"                                             \
    "uxth " lo ", " lo "\n\t"                                                       \
    "vmov " FA ", " FB ", r11, " lo "\n\t"                                          \
    "vcvt.f32.s32 " FA ", " FA "\n\t"                                               \
    "vcvt.f32.u32 " FB ", " FB ", #16\n\t"                                          \
    "vadd.f32 " FA ", " FA ", " FB "\n\t"                                           \
    "vmul.f32 " FA ", " FA ", s0\n\t"                                               \
    "vmul.f32 " FA ", " FA ", " SC "\n\t"
__asm__(".pushsection .text.lnn_cm4_tq8_block,\"ax\",%progbits\n\t"
        ".align 2\n\t"
        ".global lnn_cm4_tq8_block\n\t"
        ".thumb_func\n\t"
        ".type lnn_cm4_tq8_block, %function\n"
        "lnn_cm4_tq8_block:\n\t"
        "push {r2, r4-r11, lr}\n\t"
        "vldr s0, [r0]\n\t"
        "vldm r3, {s10-s13}\n\t"
        "adds r0, #8\n\t"
        "movs r3, #0\n\t"
        "movs r4, #0\n\t"
        "movs r5, #0\n\t"
        "movs r6, #0\n\t"
        "movs r7, #0\n\t"
        "mov r8, r3\n\t"
        "mov r9, r3\n\t"
        "mov r10, r3\n"
        "1:\n\t" LNN_CM4_TQ8_ROW("") LNN_CM4_TQ8_ROW("") LNN_CM4_TQ8_ROW("")
        LNN_CM4_TQ8_ROW("lsrs r12, r12, #1\n\t")
        "bcc 1b\n\t"
        LNN_CM4_TQ8_FLOAT("r3", "r4", "s2", "s3", "s10") LNN_CM4_TQ8_FLOAT("r5", "r6", "s4", "s5", "s11")
        LNN_CM4_TQ8_FLOAT("r7", "r8", "s6", "s7", "s12") LNN_CM4_TQ8_FLOAT("r9", "r10", "s8", "s9", "s13")
        "ldr r2, [sp], #4\n\t"
        "vstr s2, [r2]\n\t"
        "vstr s4, [r2, #4]\n\t"
        "vstr s6, [r2, #8]\n\t"
        "vstr s8, [r2, #12]\n\t"
        "pop {r4-r11, pc}\n\t"
        ".size lnn_cm4_tq8_block, .-lnn_cm4_tq8_block\n\t"
        ".popsection");
#undef LNN_CM4_TQ8_ROW
#undef LNN_CM4_TQ8_FLOAT

/* y[j] = v (first chunk) or y[j] + v, and after the last chunk times the
 * column's scale plus its bias, as the scalar kernel ends its sums */
static LNN_ALWAYS_INLINE void lnn_cm4_tq8_put(const lnn_linear_q8_params *p, float *y, size_t j, float v, int first,
                                   int last)
{
    if (!first)
        v += y[j];
    if (last) {
        v *= p->scale[j];
        if (p->bias)
            v += p->bias[j];
    }
    y[j] = v;
}

static const float lnn_cm4_ones[4] = {1.0f, 1.0f, 1.0f, 1.0f};

/* One chunk of inputs for every column: the sums times 2^-n (out1, then
 * out2: 2^-n may be below the smallest float) into y. in: out1 * 2^16 as
 * bits, then padded entries (a multiple of 4, x = 0 past the chunk's
 * inputs). The common case, the only chunk and 2^-n a float, is done in
 * the assembly: the sums times out1 and the scales straight into y, the
 * bias added after. */
static void lnn_cm4_tq8_chunk(const lnn_linear_q8_params *p, const lnn_cm4_tq8_in *in, size_t padded,
                              float out1, float out2, int first, int last, float *y)
{
    const int direct = first && last && out2 == 1.0f;
    const int8_t *q = p->q;
    size_t j = 0;
    for (; j + 4 <= p->m; j += 4, q += 4) {
        if (direct) {
            lnn_cm4_tq8_block(in, q, y + j, p->scale + j);
        } else {
            float f[4];
            lnn_cm4_tq8_block(in, q, f, lnn_cm4_ones);
            for (size_t c = 0; c < 4; c++)
                lnn_cm4_tq8_put(p, y, j + c, f[c] * out2, first, last);
        }
    }
    if (direct && p->bias)
        for (size_t c = 0; c < j; c++)
            y[c] += p->bias[c];
    for (; j < p->m; j++, q++) {
        int64_t a = 0;
        for (size_t n = 0; n < padded; n++)
            a += (int64_t)in[1 + n].x * q[n % 4 == 3 ? in[1 + n].off >> 1 : in[1 + n].off];
        /* bits 16-47 times 2^16 plus the low 16 bits, as lnn_cm4_tq8_block does */
        const float hi = (float)(int32_t)(uint32_t)((uint64_t)a >> 16);
        const float v = fmaf(hi, 65536.0f, (float)(uint32_t)(a & 0xFFFF)) * out1;
        lnn_cm4_tq8_put(p, y, j, v * out2, first, last);
    }
}

void lnn_linear_tq8__cm4(const lnn_linear_q8_params *p)
{
    const size_t k = p->k, m = p->m;
    lnn_cm4_tq8_in in[1 + LNN_CM4_TQ8_CHUNK];
    _Static_assert(LNN_CM4_TQ8_CHUNK % 4 == 0, "chunks pad to a multiple of the 4 inputs a loop step");
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        float *y = p->y + r * p->ldy;
        /* the largest |x| as bits (the order of non-negative floats); NaN and inf: 0x7F800000 up */
        uint32_t big = 0;
        for (size_t i = 0; i < k; i++) {
            const uint32_t u = lnn_f32_bits(x[i]) & 0x7FFFFFFFu;
            big = u > big ? u : big;
        }
        if (big >= 0x7F800000u) {
            lnn_cm4_tq8_float_row(p, x, y);
            for (size_t c = 0; c < m; c++)
                lnn_cm4_tq8_put(p, y, c, y[c], 1, 1);
            continue;
        }
        /* e: 2^(e-1) <= max |x| < 2^e (a denormal: from its leading bit); all zero: any */
        const int e = big >= 0x00800000u ? (int)(big >> 23) - 126 : big ? -117 - __builtin_clz(big) : 0;
        /* 2^n in two factors (n = 31 - e reaches 179 when max |x| is a denormal), and 2^-n */
        const int n = 31 - e, n1 = n < 127 ? n : 127;
        const float in1 = lnn_cm4_pow2(n1), in2 = lnn_cm4_pow2(n - n1);
        const int o1 = -n > -126 ? -n : -126;
        const float out1 = lnn_cm4_pow2(o1), out2 = lnn_cm4_pow2(-n - o1);
        for (size_t i0 = 0; i0 < k; i0 += LNN_CM4_TQ8_CHUNK) {
            const size_t cnt = k - i0 < LNN_CM4_TQ8_CHUNK ? k - i0 : LNN_CM4_TQ8_CHUNK;
            const size_t padded = (cnt + 3) & ~(size_t)3;
            uint32_t off = (uint32_t)(i0 * p->ldq);
            in[0].x = (int32_t)lnn_f32_bits(out1 * 65536.0f);
            for (size_t c = 1; c <= cnt; c++, off += (uint32_t)p->ldq) {
                in[c].x = (int32_t)(x[i0 + c - 1] * in1 * in2); /* exact but for the truncation */
                in[c].off = off;
            }
            for (size_t c = cnt + 1; c <= padded; c++) { /* 0 times the chunk's first weights */
                in[c].x = 0;
                in[c].off = (uint32_t)(i0 * p->ldq);
            }
            for (size_t c = 4; c <= padded; c += 4)
                in[c].off <<= 1;
            in[padded].off |= 1u;
            lnn_cm4_tq8_chunk(p, in, padded, out1, out2, i0 == 0, i0 + cnt == k, y);
        }
    }
}

/* LINEAR_W8A16, MATMUL_W8A16 (lnn_opcodes.def): the scalar kernel's bits,
 * in integers with the DSP extension. A row of x is rounded once per call to
 * int16 xq packed in pairs X = (xq[2t], xq[2t+1]); a panel word w holds the
 * int16 halves h = 256 q(., j+1) + q(., j) of a column pair (j, j+1), so
 *     smlald T, X, w     T += 256 S(j+1) + S(j)  (4 multiply-adds, 64 bits)
 *     sxtb16 w, w        the low bytes: exactly column j's weights
 *     smlad  E, X, w     E += S(j)
 * are 3 instructions per 4 multiply-adds, and S(j+1) = (T - E) / 256 =
 * (T >> 8) - (E >> 8) (T = E mod 256: no borrow). This reads any panel
 * bytes as the definition does: SMLALD multiplies by h itself, so T - E is
 * 256 sum xq (h - sext8(h)) / 256. A chunk of at most LNN_CM4_W8_CHUNK
 * inputs keeps |S| <= 256 * 32767 * 128 < 2^31 (E exact in 32 bits, and
 * vcvt.f32.s32 converts exactly as (float)S); a longer row goes chunk by
 * chunk into int64 sums (lnn_cm4_w8a16_long), slower but exact.
 *
 * Stack: X of one chunk (512 B) and the int32 sums of a block of
 * LNN_CM4_W8_COLS columns (256 B), or for the long rows X, the int32 sums
 * and the int64 sums of 32 columns (512 + 128 + 256 B), and the assembly's
 * saved registers: at most 1,156 B, the long path's (gcc -fstack-usage,
 * arm-none-eabi -O2 and -Os: 64 + 1,000 + lnn_cm4_w8a16_round's 24 + the
 * quantizer's 68; the sums' frame is 84).
 * The four assembly routines (own sections: a build without the op drops
 * them, as it drops the C driver the table no longer names):
 *   lnn_cm4_w8a16_absmax  largest |x| as bits << 1, 8 inputs a step (3 each)
 *   lnn_cm4_w8a16_quant   xq = the low 16 bits of vfma(1.5 2^23, x, s), one
 *                         rounding, so round half to even of x s as
 *                         nearbyintf gives it (|x s| <= 32767.5 < 2^22);
 *                         packed by pkhbt, 8 inputs a step (2.4 each)
 *   lnn_cm4_w8a16_sums    the column pairs of a block: no loop over the
 *                         inputs, groups of 4 input pairs (ldm of 4 X words,
 *                         ldm of 4 panel words, 12 DSP instructions) and the
 *                         np % 4 others one by one (5 each), entered at
 *                         computed addresses; 0.875 instructions per
 *                         multiply-add plus 9 per column pair (plus 6 for
 *                         np % 4 = 1: 127 at K = 65); a chunk of more than
 *                         64 input pairs in two passes
 *   lnn_cm4_w8a16_finish  8 columns a step: vcvt, times 2^(e-15) (exact),
 *                         vfma scale, bias (MATMUL: bias -0, which makes
 *                         fmaf(v, s, -0) = v * s, signed zeros and
 *                         underflow included)
 * In assembly, as the other products: gcc does not keep 14 core registers
 * live across a loop in an asm statement, nor emit ldm / vldm blocks. */
enum { LNN_CM4_W8_CHUNK = 256, LNN_CM4_W8_COLS = 64, LNN_CM4_W8_LONG_COLS = 32, LNN_CM4_W8_RUN = 64 };

/* One block of column pairs against one chunk of X (lnn_cm4_w8a16_sums):
 * where the sums go, the chunk's input pairs, the bytes from a pair's last
 * word of the chunk to the next pair's first. */
typedef struct {
    const uint32_t *x;    /* 0: the chunk's packed pairs */
    int32_t *out;         /* 4: 2 sums per column pair, column order */
    const int32_t *end;   /* 8: out + 2 * column pairs (> out) */
    uint32_t skip;        /* 12 */
    uint32_t np;          /* 16: input pairs, 1 .. LNN_CM4_W8_CHUNK / 2 */
    const uint32_t *w;    /* 20: the first pair's first word of the chunk */
} lnn_cm4_w8_job;

/* 8-column steps of the finish: y[c] = fmaf((float)s[c] * pw, scale[c], bias[c]) */
typedef struct {
    const int32_t *s;   /* 0 */
    float *y;           /* 4 */
    const float *scale; /* 8 */
    const float *bias;  /* 12: or 8 x -0 */
    uint32_t bias_step; /* 16: 32, or 0 for the -0s */
    uint32_t n8;        /* 20: steps (>= 1) */
    float pw;           /* 24 */
} lnn_cm4_w8_fin;

uint32_t lnn_cm4_w8a16_absmax(const float *x, uint32_t n8);
void lnn_cm4_w8a16_quant(const float *x, uint32_t *xw, uint32_t n8, const float *s);
void lnn_cm4_w8a16_sums(const lnn_cm4_w8_job *job);
void lnn_cm4_w8a16_finish(const lnn_cm4_w8_fin *f);

__asm__(".pushsection .text.lnn_cm4_w8a16_absmax,\"ax\",%progbits\n\t"
        ".align 2\n\t"
        ".global lnn_cm4_w8a16_absmax\n\t"
        ".thumb_func\n\t"
        ".type lnn_cm4_w8a16_absmax, %function\n"
        "lnn_cm4_w8a16_absmax:\n\t"
        "push {r4-r10}\n\t"
        "movs r2, #0\n"
        "1:\n\t"
        "ldmia r0!, {r3-r10}\n\t"
        /* the sign bit shifted out: |x| as bits, doubled; unsigned order is the order of |x| (NaN above inf) */
        ".irp r, r3, r4, r5, r6, r7, r8, r9, r10\n\t"
        "cmp r2, \\r, lsl #1\n\t"
        "it lo\n\t"
        "lsllo r2, \\r, #1\n\t"
        ".endr\n\t"
        "subs r1, r1, #1\n\t"
        "bne 1b\n\t"
        "mov r0, r2\n\t"
        "pop {r4-r10}\n\t"
        "bx lr\n\t"
        ".size lnn_cm4_w8a16_absmax, .-lnn_cm4_w8a16_absmax\n\t"
        ".popsection");

__asm__(".pushsection .text.lnn_cm4_w8a16_quant,\"ax\",%progbits\n\t"
        ".align 2\n\t"
        ".global lnn_cm4_w8a16_quant\n\t"
        ".thumb_func\n\t"
        ".type lnn_cm4_w8a16_quant, %function\n"
        "lnn_cm4_w8a16_quant:\n\t"
        "push {r4-r11}\n\t"
        "vpush {s16}\n\t"
        "sub sp, sp, #32\n\t" /* 8 words: FPU -> core registers by vstmia / ldmia (2 instructions, not 4 vmov) */
        "vldr s16, [r3]\n\t"
        "adr r3, 2f\n"
        "1:\n\t"
        "vldmia r0!, {s0-s7}\n\t"
        "vldmia r3, {s8-s15}\n\t" /* 8 copies of 1.5 2^23 */
        "vfma.f32 s8, s0, s16\n\t"
        "vfma.f32 s9, s1, s16\n\t"
        "vfma.f32 s10, s2, s16\n\t"
        "vfma.f32 s11, s3, s16\n\t"
        "vfma.f32 s12, s4, s16\n\t"
        "vfma.f32 s13, s5, s16\n\t"
        "vfma.f32 s14, s6, s16\n\t"
        "vfma.f32 s15, s7, s16\n\t"
        "vstmia sp, {s8-s15}\n\t"
        "ldmia sp, {r4-r11}\n\t"
        "pkhbt r4, r4, r5, lsl #16\n\t"
        "pkhbt r6, r6, r7, lsl #16\n\t"
        "pkhbt r8, r8, r9, lsl #16\n\t"
        "pkhbt r10, r10, r11, lsl #16\n\t"
        "stmia r1!, {r4, r6, r8, r10}\n\t"
        "subs r2, r2, #1\n\t"
        "bne 1b\n\t"
        "add sp, sp, #32\n\t"
        "vpop {s16}\n\t"
        "pop {r4-r11}\n\t"
        "bx lr\n\t"
        ".align 2\n"
        "2:\n\t"
        ".rept 8\n\t"
        ".word 0x4B400000\n\t"
        ".endr\n\t"
        ".size lnn_cm4_w8a16_quant, .-lnn_cm4_w8a16_quant\n\t"
        ".popsection");

/* one input pair: X in register x, the panel word in w (12 bytes) */
#define LNN_CM4_W8_PAIR(x, w)                                                       \
    "smlald r4, r5, " x ", " w "\n\t"                                               \
    "sxtb16 " w ", " w "\n\t"                                                       \
    "smlad r3, " x ", " w ", r3\n\t"
/* four input pairs (56 bytes: every instruction 32-bit, .w where a 16-bit
 * encoding exists; the entries are computed from these sizes) */
#define LNN_CM4_W8_FOUR                                                             \
    "ldmia.w r1!, {r6-r9}\n\t"                                                      \
    "ldmia.w r0!, {r10-r12, lr}\n\t" LNN_CM4_W8_PAIR("r6", "r10") LNN_CM4_W8_PAIR("r7", "r11") \
    LNN_CM4_W8_PAIR("r8", "r12") LNN_CM4_W8_PAIR("r9", "lr")
/* No loop over the inputs: a column pair's np <= LNN_CM4_W8_RUN input pairs
 * are np % 4 single pairs (20 bytes each, from a run of 3) and np / 4 groups
 * of four (from a run of LNN_CM4_W8_RUN / 4 groups: 896 bytes), entered at
 * computed addresses: the single pairs' run at .Lw8_ones - 20 (np % 4),
 * which ends by jumping to the groups' run at .Lw8_split - 56 (np / 4). Per
 * column pair 9 instructions besides the pairs' (14 per group, 5 per single,
 * 1 to leave the singles), against a loop's zeroing, counters and branches.
 * A chunk of more input pairs takes two passes over the block: the first
 * LNN_CM4_W8_RUN, then the others with each column pair first through
 * .Lw8_acc, which starts E and T from the first pass's sums at out
 * (T = 256 S(j+1) + S(j), 6 instructions; exact: a chunk's E fits int32).
 * Registers: r0 panel, r1 X, r2 out, r3 E, r4:r5 T, r6-r9 X words, r10-r12
 * lr panel words. The frame at sp: 0 X, 4 0, 8 0, 12 0 (one ldm restarts X,
 * zeroes E and T and enters the next pair: pc), 16 the first entry
 * (.Lw8_acc or the next), 20 the groups' entry, 24 skip, 28 end, 32 the
 * singles' or groups' entry (entries with the Thumb bit), 36 out, 40 the
 * second pass's input pairs (or 0), 44 w. */
__asm__(".pushsection .text.lnn_cm4_w8a16_sums,\"ax\",%progbits\n\t"
        ".align 2\n\t"
        ".global lnn_cm4_w8a16_sums\n\t"
        ".thumb_func\n\t"
        ".type lnn_cm4_w8a16_sums, %function\n"
        "lnn_cm4_w8a16_sums:\n\t"
        "push {r4-r11, lr}\n\t"
        "ldm r0, {r1-r6}\n\t" /* x, out, end, skip, np, w */
        "sub sp, sp, #48\n\t"
        "movs r7, #0\n\t"
        "strd r7, r7, [sp, #4]\n\t"
        "str r7, [sp, #12]\n\t"
        "str r3, [sp, #28]\n\t"
        "subs r7, r5, #64\n\t"
        "ite gt\n\t"
        "movgt r5, #64\n\t" /* the first pass: 64 input pairs, */
        "movle r7, #0\n\t"  /* the second the others */
        "str r2, [sp, #36]\n\t"
        "str r7, [sp, #40]\n\t"
        "str r6, [sp, #44]\n\t"
        "add r4, r4, r7, lsl #2\n\t" /* the first pass skips the second's words */
        "movs r10, #0\n"
        ".Lw8_pass:\n\t" /* r1 X, r4 skip, r5 input pairs, r6 w, r10 != 0: through .Lw8_acc */
        "lsrs r8, r5, #2\n\t"
        "adr.w r9, .Lw8_split\n\t"
        "sub r9, r9, r8, lsl #6\n\t"
        "add r9, r9, r8, lsl #3\n\t" /* .Lw8_split - 56 (np / 4) */
        "orr r9, r9, #1\n\t"
        "and r5, r5, #3\n\t"
        "adr.w r8, .Lw8_ones\n\t"
        "sub r8, r8, r5, lsl #4\n\t"
        "sub r8, r8, r5, lsl #2\n\t" /* .Lw8_ones - 20 (np % 4) */
        "orr r8, r8, #1\n\t"
        "cmp r5, #0\n\t"
        "it eq\n\t"
        "moveq r8, r9\n\t" /* no single pair: straight to the groups */
        "adr.w r11, .Lw8_acc\n\t"
        "orr r11, r11, #1\n\t"
        "cmp r10, #0\n\t"
        "it eq\n\t"
        "moveq r11, r8\n\t"
        "str r1, [sp]\n\t"
        "strd r11, r9, [sp, #16]\n\t"
        "str r4, [sp, #24]\n\t"
        "str r8, [sp, #32]\n\t"
        "mov r0, r6\n\t"
        "ldr r2, [sp, #36]\n\t"
        "ldm sp, {r1, r3, r4, r5, pc}\n" /* the first column pair */
        ".Lw8_acc:\n\t"
        "ldmia r2, {r3, r6}\n\t" /* S(j), S(j+1) of the first pass */
        "asr r5, r6, #24\n\t"
        "lsl r4, r6, #8\n\t"
        "adds r4, r4, r3\n\t"
        "adc r5, r5, r3, asr #31\n\t"
        "ldr.w pc, [sp, #32]\n\t"
        ".rept 3\n\t"
        "ldr.w r6, [r1], #4\n\t"
        "ldr.w r10, [r0], #4\n\t" LNN_CM4_W8_PAIR("r6", "r10")
        ".endr\n"
        ".Lw8_ones:\n\t"
        "ldr.w pc, [sp, #20]\n\t"
        ".rept 16\n\t" LNN_CM4_W8_FOUR
        ".endr\n"
        ".Lw8_split:\n\t" /* S(j) = E, S(j+1) = (T >> 8) - (E >> 8) */
        "lsrs r4, r4, #8\n\t"
        "orr r4, r4, r5, lsl #24\n\t"
        "sub r4, r4, r3, asr #8\n\t"
        "stmia r2!, {r3, r4}\n\t"
        "ldrd r6, r7, [sp, #24]\n\t" /* skip, end */
        "add r0, r0, r6\n\t"
        "cmp r2, r7\n\t"
        "beq 1f\n\t"
        "ldm sp, {r1, r3, r4, r5, pc}\n" /* the next column pair */
        "1:\n\t"
        "ldr r5, [sp, #40]\n\t"
        "cbz r5, 2f\n\t"
        "ldr r1, [sp]\n\t" /* the second pass: X, w 64 words on, skip the first's words */
        "add r1, r1, #256\n\t"
        "ldr r6, [sp, #44]\n\t"
        "add r6, r6, #256\n\t"
        "ldr r4, [sp, #24]\n\t"
        "sub r4, r4, r5, lsl #2\n\t"
        "add r4, r4, #256\n\t"
        "movs r10, #0\n\t"
        "str r10, [sp, #40]\n\t"
        "movs r10, #1\n\t"
        "b .Lw8_pass\n"
        "2:\n\t"
        "add sp, sp, #48\n\t"
        "pop {r4-r11, pc}\n\t"
        ".size lnn_cm4_w8a16_sums, .-lnn_cm4_w8a16_sums\n\t"
        ".popsection");
#undef LNN_CM4_W8_FOUR
#undef LNN_CM4_W8_PAIR

__asm__(".pushsection .text.lnn_cm4_w8a16_finish,\"ax\",%progbits\n\t"
        ".align 2\n\t"
        ".global lnn_cm4_w8a16_finish\n\t"
        ".thumb_func\n\t"
        ".type lnn_cm4_w8a16_finish, %function\n"
        "lnn_cm4_w8a16_finish:\n\t"
        "push {r4-r6, lr}\n\t"
        "vpush {s16-s24}\n\t"
        "ldm r0, {r1-r5, r12}\n\t" /* s, y, scale, bias, bias_step, n8 */
        "vldr s24, [r0, #24]\n" /* 2^(e-15) */
        "1:\n\t"
        "vldmia r1!, {s0-s7}\n\t"
        "vcvt.f32.s32 s0, s0\n\t"
        "vcvt.f32.s32 s1, s1\n\t"
        "vcvt.f32.s32 s2, s2\n\t"
        "vcvt.f32.s32 s3, s3\n\t"
        "vcvt.f32.s32 s4, s4\n\t"
        "vcvt.f32.s32 s5, s5\n\t"
        "vcvt.f32.s32 s6, s6\n\t"
        "vcvt.f32.s32 s7, s7\n\t"
        "vmul.f32 s0, s0, s24\n\t"
        "vmul.f32 s1, s1, s24\n\t"
        "vmul.f32 s2, s2, s24\n\t"
        "vmul.f32 s3, s3, s24\n\t"
        "vmul.f32 s4, s4, s24\n\t"
        "vmul.f32 s5, s5, s24\n\t"
        "vmul.f32 s6, s6, s24\n\t"
        "vmul.f32 s7, s7, s24\n\t"
        "vldmia r3!, {s8-s15}\n\t"
        "vldm r4, {s16-s23}\n\t"
        "add r4, r4, r5\n\t"
        "vfma.f32 s16, s0, s8\n\t"
        "vfma.f32 s17, s1, s9\n\t"
        "vfma.f32 s18, s2, s10\n\t"
        "vfma.f32 s19, s3, s11\n\t"
        "vfma.f32 s20, s4, s12\n\t"
        "vfma.f32 s21, s5, s13\n\t"
        "vfma.f32 s22, s6, s14\n\t"
        "vfma.f32 s23, s7, s15\n\t"
        "vstmia r2!, {s16-s23}\n\t"
        "subs r12, r12, #1\n\t"
        "bne 1b\n\t"
        "vpop {s16-s24}\n\t"
        "pop {r4-r6, pc}\n\t"
        ".size lnn_cm4_w8a16_finish, .-lnn_cm4_w8a16_finish\n\t"
        ".popsection");

_Static_assert(LNN_CM4_W8_RUN == 64 && LNN_CM4_W8_CHUNK <= 4 * LNN_CM4_W8_RUN,
               "lnn_cm4_w8a16_sums holds 16 groups of 4 input pairs (256 bytes of X) and makes at most two passes");

static const float lnn_cm4_minus_zeros[8] = {-0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f, -0.0f};

/* n inputs of x into packed pairs xw (an odd n: the last pair's second 0) */
static void lnn_cm4_w8a16_round(const float *x, size_t n, uint32_t *xw, const float *s)
{
    const size_t n8 = n / 8;
    if (n8)
        lnn_cm4_w8a16_quant(x, xw, (uint32_t)n8, s);
    for (size_t i = 8 * n8; i < n; i += 2) {
        /* the assembly's rounding: the low 16 bits of fmaf(x, s, 1.5 2^23) */
        const uint32_t lo = lnn_f32_bits(lnn_fmaf(x[i], *s, 12582912.0f)) & 0xFFFFu;
        const uint32_t hi = i + 1 < n ? lnn_f32_bits(lnn_fmaf(x[i + 1], *s, 12582912.0f)) << 16 : 0u;
        xw[i / 2] = lo | hi;
    }
}

/* Columns j0 .. j0+n-1 of row r from their int32 sums s: 8 at a time in the
 * assembly, the rest here, destination by destination. */
static void lnn_cm4_w8a16_put(const lnn_linear_w8a16_params *p, size_t r, size_t j0, size_t n, const int32_t *s,
                              float pw)
{
    size_t d = 0;
    for (size_t j = j0; j < j0 + n;) {
        size_t run;
        float *y = lnn_w8a16_run(p, r, j, j0 + n, &d, &run);
        const int32_t *sj = s + (j - j0);
        const size_t n8 = run / 8;
        if (n8) {
            const lnn_cm4_w8_fin f = {sj, y, p->scale + j, p->bias ? p->bias + j : lnn_cm4_minus_zeros,
                                      p->bias ? 32u : 0u, (uint32_t)n8, pw};
            lnn_cm4_w8a16_finish(&f);
        }
        for (size_t c = 8 * n8; c < run; c++) {
            const float v = (float)sj[c] * pw;
            y[c] = p->bias ? lnn_fmaf(v, p->scale[j + c], p->bias[j + c]) : v * p->scale[j + c];
        }
        j += run;
    }
}

/* A row of more than LNN_CM4_W8_CHUNK inputs: per block of 32 columns (the
 * int64 sums' 256 bytes), chunk by chunk (X rounded again for each block),
 * the int32 sums of each chunk into int64 ones, finished in C by
 * lnn_w8a16_put_sums ((float) of an int64 rounds to nearest even, as the
 * definition wants). */
static __attribute__((noinline)) void lnn_cm4_w8a16_long(const lnn_linear_w8a16_params *p, size_t r,
                                                         const float *s, float pw)
{
    uint32_t xw[LNN_CM4_W8_CHUNK / 2];
    int32_t sums[LNN_CM4_W8_LONG_COLS];
    int64_t acc[LNN_CM4_W8_LONG_COLS];
    const size_t k = p->k, kp = (k + 1) / 2;
    const float *x = p->x + r * k;
    for (size_t j0 = 0; j0 < p->m; j0 += LNN_CM4_W8_LONG_COLS) {
        const size_t nc = p->m - j0 < LNN_CM4_W8_LONG_COLS ? p->m - j0 : LNN_CM4_W8_LONG_COLS;
        memset(acc, 0, sizeof acc);
        for (size_t i0 = 0; i0 < k; i0 += LNN_CM4_W8_CHUNK) {
            const size_t n = k - i0 < LNN_CM4_W8_CHUNK ? k - i0 : LNN_CM4_W8_CHUNK, np = (n + 1) / 2;
            lnn_cm4_w8a16_round(x + i0, n, xw, s);
            const lnn_cm4_w8_job job = {xw, sums, sums + 2 * ((nc + 1) / 2), (uint32_t)(4 * (kp - np)),
                                        (uint32_t)np,
                                        (const uint32_t *)(const void *)(p->panel + 4 * ((j0 / 2) * kp + i0 / 2))};
            lnn_cm4_w8a16_sums(&job);
            for (size_t c = 0; c < nc; c++)
                acc[c] += sums[c];
        }
        size_t d = 0;
        lnn_w8a16_put_sums(p, r, j0, nc, acc, pw, &d);
    }
}

/* A row of at most LNN_CM4_W8_CHUNK inputs: rounded once, every block of
 * columns against it, finished from the exact int32 sums. */
static __attribute__((noinline)) void lnn_cm4_w8a16_short(const lnn_linear_w8a16_params *p, size_t r,
                                                          const float *s, float pw)
{
    uint32_t xw[LNN_CM4_W8_CHUNK / 2];
    int32_t sums[LNN_CM4_W8_COLS];
    const size_t kp = (p->k + 1) / 2;
    lnn_cm4_w8a16_round(p->x + r * p->k, p->k, xw, s);
    for (size_t j0 = 0; j0 < p->m; j0 += LNN_CM4_W8_COLS) {
        const size_t nc = p->m - j0 < LNN_CM4_W8_COLS ? p->m - j0 : LNN_CM4_W8_COLS;
        const lnn_cm4_w8_job job = {xw, sums, sums + 2 * ((nc + 1) / 2), 0u, (uint32_t)kp,
                                    (const uint32_t *)(const void *)(p->panel + 4 * (j0 / 2) * kp)};
        lnn_cm4_w8a16_sums(&job);
        lnn_cm4_w8a16_put(p, r, j0, nc, sums, pw);
    }
}

/* Row by row: the largest |x|, then a NaN row, or the exponent and the
 * short or long path (each its own frame: the stack holds one of them). */
void lnn_linear_w8a16__cm4(const lnn_linear_w8a16_params *p)
{
    const size_t k = p->k, m = p->m;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        const size_t k8 = k / 8;
        uint32_t amax = k8 ? lnn_cm4_w8a16_absmax(x, (uint32_t)k8) >> 1 : 0u;
        for (size_t i = 8 * k8; i < k; i++) {
            const uint32_t u = lnn_f32_bits(x[i]) & 0x7FFFFFFFu;
            amax = u > amax ? u : amax;
        }
        if (amax >= 0x7F800000u) { /* NaN or infinity: the whole row NaN */
            size_t d = 0;
            for (size_t j = 0; j < m; j++) { /* a run of one column: the smallest code, for a rare row */
                size_t one;
                *lnn_w8a16_run(p, r, j, j + 1, &d, &one) = NAN;
            }
            continue;
        }
        const int32_t e = lnn_w8a16_exponent(amax);
        const float s = lnn_pow2f(15 - e), pw = lnn_pow2f(e - 15);
        if (k > LNN_CM4_W8_CHUNK)
            lnn_cm4_w8a16_long(p, r, &s, pw);
        else
            lnn_cm4_w8a16_short(p, r, &s, pw);
    }
}

/* The LTC step's fused form (kernels.h, LNN_EW_FORM_LTC),
 *   y = H + DT * ((C + D) * sigmoid(A + B) - H) / T,  slots A B C D H T DT,
 * one element at a time with every intermediate in a register, instead of
 * the block interpreter's pass per instruction through scratch blocks on
 * the stack. The result has the bits the scalar set gives the program: the
 * operations are the scalar kernels' in the program's order, each rounded
 * once as there (the sigmoid is kernels_scalar.c's lnn_sigmoidf and
 * lnn_exp_core operation for operation; vmla / vmls round the product, then
 * the sum, as a separate multiply and add: they are not fused, vfma is).
 *
 * lnn_cm4_ltc_run(ptr, n, lnn_cm4_ltc_consts): n >= 1 elements, ptr[0..6]
 * the slots A..DT and ptr[7] y, every one contiguous (the caller points a
 * single value's slot at copies of it), each left advanced past its n
 * floats. Pointers, count and two integer constants stay in r1-r12 and lr,
 * the exp constants in s16-s26, for the whole loop; every load is a
 * post-incremented vldmia; 54 instructions an element where gcc's loop at
 * -Os took about 88 (steps and pointers reloaded from the stack, constants
 * from the literal pool, vcmp + vmrs + branch per test). What the scalar
 * code does with floats, the loop does in integers where that gives the
 * same value:
 *   - v = A + B is NaN (then g = v + v, as lnn_sigmoidf) or |v| > 104 (then
 *     x = LNN_EXP_LO) when v's bits shifted left by one exceed 104's, the
 *     two told apart out of the loop; else x = -|v| sets v's sign bit. The
 *     clamp to LNN_EXP_HI is left out: x <= 0 never exceeds it;
 *   - the exponent's two halves come with their bias: (nb + 2 EBIAS) >> 1
 *     is h1 + EBIAS, the rest h2 + EBIAS (2 EBIAS is even);
 *   - the sign test v < 0 on v's bits: it differs only at v = -0, where e
 *     = exp(-0) is exactly 1, the other choice.
 * The unsplit form (LNN_EW_FORM_LTC_UNSPLIT, B and D unused) runs as the
 * LTC form with -0 in B and D: x + -0 is x for every float, NaN and -0 too
 * (kernels.h, lnn_ew_unsplit_as_ltc). */
void lnn_cm4_ltc_run(const float **ptr, size_t n, const float *consts);
static const float lnn_cm4_ltc_consts[12] = {
    LNN_EXP_MAGIC, LNN_EXP_LOG2E, LNN_EXP_LN2_HI, LNN_EXP_LN2_LO, LNN_EXP_P7, LNN_EXP_P6,
    LNN_EXP_P5,    LNN_EXP_P4,    LNN_EXP_P3,     LNN_EXP_P2,     1.0f,        LNN_EXP_LO,
};
_Static_assert(LNN_EXP_NBIAS == LNN_EXP_MAGIC_BITS - 150u && LNN_EXP_EBIAS == 52u, "lnn_cm4_ltc_run's constants");
__asm__(".pushsection .text.lnn_cm4_ltc_run,\"ax\",%progbits\n\t"
        ".align 2\n\t"
        ".global lnn_cm4_ltc_run\n\t"
        ".thumb_func\n\t"
        ".type lnn_cm4_ltc_run, %function\n"
        "lnn_cm4_ltc_run:\n\t"
        "push {r0, r4-r11, lr}\n\t"
        "vpush {s16-s26}\n\t"
        "vldm r2, {s16-s26}\n\t"
        "ldr r11, [r2]\n\t"
        "sub r11, r11, #254\n\t" /* LNN_EXP_NBIAS - 2 EBIAS: MAGIC's bits - 150 - 104 */
        "ldr lr, [r2, #44]\n\t"
        "lsls lr, lr, #1\n\t" /* |LNN_EXP_LO|'s bits << 1 */
        "ldm r0, {r2-r9}\n"
        "1:\n\t"
        "vldmia r2!, {s0}\n\t"
        "vldmia r3!, {s1}\n\t"
        "vadd.f32 s0, s0, s1\n\t" /* v = A + B */
        "vmov r10, s0\n\t"
        "cmp lr, r10, lsl #1\n\t"
        "blo 4f\n\t"                    /* |v| > 104 or NaN */
        "orr r12, r10, #0x80000000\n"  /* x = -|v| */
        "5:\n\t"
        "vmov s1, r12\n\t"
        "vmov.f32 s2, s16\n\t"
        "vmla.f32 s2, s1, s17\n\t" /* t = x * LOG2E + MAGIC */
        "vsub.f32 s3, s2, s16\n\t" /* n = t - MAGIC */
        "vmov r0, s2\n\t"
        "subs r0, r0, r11\n\t" /* nb + 2 EBIAS */
        "lsrs r12, r0, #1\n\t" /* h1 + EBIAS */
        "subs r0, r0, r12\n\t" /* h2 + EBIAS */
        "lsls r12, r12, #23\n\t"
        "lsls r0, r0, #23\n\t"
        "vmls.f32 s1, s3, s18\n\t"    /* r = x - n * LN2_HI */
        "vmls.f32 s1, s3, s19\n\t"    /* r = r - n * LN2_LO */
        "vmul.f32 s4, s20, s1\n\t"    /* q = P7 * r + P6 ... */
        "vadd.f32 s4, s4, s21\n\t"
        "vmul.f32 s4, s4, s1\n\t"
        "vadd.f32 s4, s4, s22\n\t"
        "vmul.f32 s4, s4, s1\n\t"
        "vadd.f32 s4, s4, s23\n\t"
        "vmul.f32 s4, s4, s1\n\t"
        "vadd.f32 s4, s4, s24\n\t"
        "vmul.f32 s4, s4, s1\n\t"
        "vadd.f32 s4, s4, s25\n\t" /* ... + P2 */
        "vmul.f32 s5, s1, s1\n\t"
        "vmla.f32 s1, s4, s5\n\t"  /* q * (r * r) + r */
        "vadd.f32 s1, s1, s26\n\t" /* + 1 */
        "vmov s5, s6, r12, r0\n\t"
        "vmul.f32 s1, s1, s5\n\t"
        "vmul.f32 s1, s1, s6\n\t"  /* e */
        "vadd.f32 s5, s1, s26\n\t" /* 1 + e */
        "cmp r10, #0\n\t"
        "it ge\n\t"
        "vmovge.f32 s1, s26\n\t"  /* v < 0 ? e : 1 */
        "vdiv.f32 s0, s1, s5\n" /* g = sigmoid(v) */
        "2:\n\t"
        "vldmia r4!, {s1}\n\t"
        "vldmia r5!, {s2}\n\t"
        "vadd.f32 s1, s1, s2\n\t" /* C + D */
        "vldmia r6!, {s2}\n\t"    /* H (y may be H: read before the store) */
        "vmul.f32 s1, s1, s0\n\t"
        "vsub.f32 s1, s1, s2\n\t"
        "vldmia r7!, {s3}\n\t"
        "vdiv.f32 s1, s1, s3\n\t"
        "vldmia r8!, {s3}\n\t"
        "vmul.f32 s1, s3, s1\n\t"
        "vadd.f32 s1, s2, s1\n\t"
        "vstmia r9!, {s1}\n\t"
        "subs r1, r1, #1\n\t"
        "bne 1b\n\t"
        "vpop {s16-s26}\n\t"
        "pop {r0}\n\t"
        "stm r0, {r2-r9}\n\t" /* the pointers, advanced */
        "pop {r4-r11, pc}\n"
        "4:\n\t"
        "lsls r0, r10, #1\n\t"
        "cmp r0, #0xff000000\n\t"
        "bhi 3f\n\t" /* v is NaN */
        "asrs r12, lr, #1\n\t" /* x < LO: LO */
        "b 5b\n"
        "3:\n\t"
        "vadd.f32 s0, s0, s0\n\t"
        "b 2b\n\t"
        ".size lnn_cm4_ltc_run, .-lnn_cm4_ltc_run\n\t"
        ".popsection");

/* Runs of inner elements (inner divides count and every ROW len): inside
 * one, a SAME or ROW slot is contiguous, a SCALAR slot (and an unused one,
 * -0) one value, which rep holds LNN_CM4_LTC_CHUNK times; the runs go to
 * lnn_cm4_ltc_run in chunks of at most that many, which advances the
 * pointers: those of the single values go back to rep before each chunk.
 * Not inlined: rep stays off the stack when the scalar block interpreter
 * runs. */
enum { LNN_CM4_LTC_CHUNK = 16 };
static __attribute__((noinline)) void lnn_ew_ltc__cm4(const lnn_ewise_params *p)
{
    float rep[LNN_EW_LTC_SLOTS][LNN_CM4_LTC_CHUNK];
    const float *ptr[LNN_EW_LTC_SLOTS + 1];
    unsigned single = 0; /* bit s: slot s is one value */
    const size_t inner = p->inner;
    for (size_t s = 0; s < LNN_EW_LTC_SLOTS; s++) {
        const size_t j = lnn_ew_form_slot(p->form, s);
        const int unused = LNN_W8A16_LINKED && j == LNN_EW_SLOT_UNUSED; /* B, D of the unsplit form */
        if (unused || p->mode[j] == LNN_EW_SCALAR) {
            const float v = unused ? -0.0f : *p->src[j];
            for (size_t i = 0; i < LNN_CM4_LTC_CHUNK; i++)
                rep[s][i] = v;
            single |= 1u << s;
        }
    }
    for (size_t o = 0; o < p->count; o += inner) {
        for (size_t s = 0; s < LNN_EW_LTC_SLOTS; s++) {
            const size_t j = lnn_ew_form_slot(p->form, s);
            if (!(single >> s & 1u))
                ptr[s] = p->mode[j] == LNN_EW_SAME ? p->src[j] + o : p->src[j] + o % p->len[j];
        }
        ptr[LNN_EW_LTC_SLOTS] = p->y + o;
        for (size_t i = 0; i < inner; i += LNN_CM4_LTC_CHUNK) {
            for (unsigned m = single; m; m &= m - 1)
                ptr[__builtin_ctz(m)] = rep[__builtin_ctz(m)];
            lnn_cm4_ltc_run(ptr, inner - i < LNN_CM4_LTC_CHUNK ? inner - i : LNN_CM4_LTC_CHUNK, lnn_cm4_ltc_consts);
        }
    }
}

static void lnn_ewise__cm4(const lnn_ewise_params *p)
{
    /* Only w8a16 layers make the unsplit form (a float build leaves it to
     * the block interpreter). */
    if ((p->form & 0xFu) == LNN_EW_FORM_LTC || (LNN_W8A16_LINKED && (p->form & 0xFu) == LNN_EW_FORM_LTC_UNSPLIT))
        lnn_ew_ltc__cm4(p);
    else
        lnn_ewise__scalar(p);
}

/* CONV2D: kernels_graph.h's loops with this tap, y[0..len) += wv * x[0,
 * xs, 2 xs, ...) fused (vfma, one rounding instead of the scalar tap's two,
 * as the SIMD sets' tap): within 1e-5 of the sum of the absolute terms of
 * the scalar kernel. A contiguous run (stride 1, the common case) goes in
 * blocks of 8 outputs: x by one vldmia into s0-s7, y by one into s8-s15,
 * 8 vfma, y back by one vstmia, about 1.6 instructions per multiply-add
 * (the scalar tap's loop: 8); the last len % 8 as a block of 4, 2, 1 for
 * each bit. gcc emits no vldmia for such a block, hence the asm. Other
 * strides element by element, fused. */
static void lnn_cm4_tap(float *y, const float *x, size_t xs, float wv, size_t len)
{
    if (xs != 1) {
        for (size_t j = 0; j < len; j++)
            y[j] = fmaf(wv, x[j * xs], y[j]);
        return;
    }
    size_t blocks = len / 8;
    __asm__ volatile("cmp %[n], #0\n\t"
                     "beq 2f\n"
                     "1:\n\t"
                     "vldmia %[x]!, {s0-s7}\n\t"
                     "vldmia %[y], {s8-s15}\n\t"
                     "vfma.f32 s8, s0, %[w]\n\t"
                     "vfma.f32 s9, s1, %[w]\n\t"
                     "vfma.f32 s10, s2, %[w]\n\t"
                     "vfma.f32 s11, s3, %[w]\n\t"
                     "vfma.f32 s12, s4, %[w]\n\t"
                     "vfma.f32 s13, s5, %[w]\n\t"
                     "vfma.f32 s14, s6, %[w]\n\t"
                     "vfma.f32 s15, s7, %[w]\n\t"
                     "vstmia %[y]!, {s8-s15}\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n"
                     "2:\n\t"
                     "tst %[len], #4\n\t"
                     "beq 3f\n\t"
                     "vldmia %[x]!, {s0-s3}\n\t"
                     "vldmia %[y], {s8-s11}\n\t"
                     "vfma.f32 s8, s0, %[w]\n\t"
                     "vfma.f32 s9, s1, %[w]\n\t"
                     "vfma.f32 s10, s2, %[w]\n\t"
                     "vfma.f32 s11, s3, %[w]\n\t"
                     "vstmia %[y]!, {s8-s11}\n"
                     "3:\n\t"
                     "tst %[len], #2\n\t"
                     "beq 4f\n\t"
                     "vldmia %[x]!, {s0-s1}\n\t"
                     "vldmia %[y], {s8-s9}\n\t"
                     "vfma.f32 s8, s0, %[w]\n\t"
                     "vfma.f32 s9, s1, %[w]\n\t"
                     "vstmia %[y]!, {s8-s9}\n"
                     "4:\n\t"
                     "tst %[len], #1\n\t"
                     "beq 5f\n\t"
                     "vldr s0, [%[x]]\n\t"
                     "vldr s8, [%[y]]\n\t"
                     "vfma.f32 s8, s0, %[w]\n\t"
                     "vstr s8, [%[y]]\n"
                     "5:\n\t"
                     : [x] "+r"(x), [y] "+r"(y), [n] "+r"(blocks)
                     : [len] "r"(len), [w] "t"(wv)
                     : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
                       "s13", "s14", "s15", "cc", "memory");
}

/* flatten: the tap inlined in the loops' row loop (gcc -Os calls it, though
 * it knows the callee: cnn-digits' 4-pixel runs then cost 354,741
 * instructions per inference on qemu-m4 instead of 289,919) */
__attribute__((flatten)) static void lnn_conv2d__cm4(const lnn_conv2d_params *p)
{
    lnn_conv2d_loops(p, lnn_cm4_tap);
}


/* The scalar kernels but for the products, the element-wise programs and CONV2D's tap. */
const lnn_kernels lnn_kernels_cm4 = {
    .isa = "cm4",
    .linear = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR) || LNN_OP_LINKED(MATMUL_NT), lnn_linear__cm4),
    .linear_t = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_T) || LNN_OP_LINKED(MATMUL_T), lnn_linear_t__cm4),
    .linear_q8 = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_Q8) || LNN_OP_LINKED(MATMUL_NTQ8), lnn_linear_q8__scalar),
    .linear_tq8 = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_TQ8) || LNN_OP_LINKED(MATMUL_TQ8), lnn_linear_tq8__cm4),
#if LNN_HAVE_MVE
    /* an MVE core links this set beside the mve one, whose w8a16 kernel is faster: this set (reachable there only
     * through lnn_use_kernels) takes the scalar one, which keeps 2.7 KB of this one's out of the image */
    LNN_W8A16_SCALAR_ENTRY
#else
    .linear_w8a16 = LNN_KERNEL_IF(LNN_W8A16_LINKED, lnn_linear_w8a16__cm4),
#endif
    .ewise = LNN_KERNEL_IF(LNN_EWISE_LINKED, lnn_ewise__cm4),
    .conv2d = LNN_KERNEL_IF(LNN_OP_LINKED(CONV2D), lnn_conv2d__cm4),
    LNN_SCALAR_TABLE_ENTRIES
};

#else
typedef int lnn_kernels_cm4_not_built; /* ISO C: no empty translation unit */
#endif
