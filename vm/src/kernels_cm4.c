/*
 * kernels_cm4.c - the "cm4" kernel set: Cortex-M cores with a single-precision
 * VFPv4 FPU (Cortex-M4F, M7, M33 with FPU), chosen at compile time (simd.h:
 * LNN_HAVE_CM4 follows the compiler's target). No vector unit: the set
 * replaces the products, where the time goes, and points every other entry
 * at the scalar kernel.
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
 * linear_t to 1e-5 sum |x w|). The last m % 16 columns: fmaf in C.
 *
 * linear (LINEAR, MATMUL_NT): four dot products at once over chunks of 8
 * inputs, x and each weight row by vldmia, vfma: about 1.2 instructions per
 * multiply-add; the same contract as linear_t.
 *
 * ewise: the LTC step's fused form (below), bit-exact with the scalar set;
 * other programs run on the scalar block interpreter.
 *
 * linear_tq8 (LINEAR_TQ8, MATMUL_TQ8): 16 columns at once in C with fmaf:
 * the FPU has no byte loads, so each weight costs a sign-extending load, a
 * move to the FPU, a conversion and a vfma.
 */
#include "kernels.h"

#if LNN_HAVE_CM4

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "vmath.h"

static const float lnn_cm4_zeros[16];

/* One block of 16 columns: y[0..16) = sum over i of x[i] * w[i][0..16), in
 * i order; w points at row 0 (forward) or row k - 1 (reverse), x at x[0]
 * (forward) or one past x[k - 1] (reverse). XLOAD loads x pairs (vldmia
 * forward, vldmdb reverse, both with writeback), X0 and X1 name the register
 * of the first and the second input of a pair in that order. wstep is the
 * byte step from the second half of one row to the first of the next. */
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
/* one input: its 16 weights, two loads of 8, 16 vfma, on to the next row */
#define LNN_CM4_STEP(xr)                                                            \
    "vldmia %[w]!, {s2-s9}\n\t" LNN_CM4_FMA8_LO(xr)                                 \
    "vldmia %[w], {s2-s9}\n\t" LNN_CM4_FMA8_HI(xr)                                  \
    "add %[w], %[w], %[wstep]\n\t"
#define LNN_CM4_BLOCK16(XLOAD, X0, X1)                                              \
    __asm__ volatile("vldmia %[z], {s16-s31}\n\t"                                   \
                     "cmp %[pairs], #0\n\t"                                       \
                     "beq 2f\n"                                           \
                     "1:\n\t" XLOAD " %[x]!, {s0-s1}\n\t" LNN_CM4_STEP(X0)          \
                     LNN_CM4_STEP(X1) "subs %[pairs], %[pairs], #1\n\t"             \
                     "bne 1b\n"                                                     \
                     "2:\n\t"                                                       \
                     "cmp %[odd], #0\n\t"                                 \
                     "beq 3f\n\t" XLOAD " %[x]!, {s0}\n\t" LNN_CM4_STEP("s0") \
                     "3:\n\t"                                                       \
                     "vstmia %[y], {s16-s31}\n\t"                                   \
                     : [x] "+r"(xp), [w] "+r"(wp), [pairs] "+r"(pairs)              \
                     : [z] "r"(lnn_cm4_zeros), [y] "r"(y + j), [odd] "r"(odd),      \
                       [wstep] "r"(wstep)                                           \
                     : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9",  \
                       "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23",      \
                       "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31",      \
                       "cc", "memory")

void lnn_linear_t__cm4(const lnn_linear_t_params *p)
{
    const size_t k = p->k, m = p->m, ldw = p->ldw;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        float *y = p->y + r * p->ldy;
        size_t j = 0;
        for (; j + 16 <= m; j += 16) {
            size_t pairs = k / 2;
            const size_t odd = k % 2;
            if (!p->reverse) {
                const float *xp = x;
                const float *wp = p->w + j;
                const int32_t wstep = (int32_t)(4 * ldw) - 32;
                LNN_CM4_BLOCK16("vldmia", "s0", "s1");
            } else {
                /* vldmdb {s0-s1} loads x[i - 1] into s0, x[i] into s1: s1 first */
                const float *xp = x + k;
                const float *wp = p->w + (k - 1) * ldw + j;
                const int32_t wstep = -(int32_t)(4 * ldw) - 32;
                LNN_CM4_BLOCK16("vldmdb", "s1", "s0");
            }
        }
        for (; j < m; j++) {
            float acc = 0.0f;
            for (size_t n = 0; n < k; n++) {
                const size_t i = p->reverse ? k - 1 - n : n;
                acc = fmaf(x[i], p->w[i * ldw + j], acc);
            }
            y[j] = acc;
        }
        if (p->bias)
            for (size_t c = 0; c < m; c++)
                y[c] += p->bias[c];
    }
}

/* LINEAR, MATMUL_NT: four outputs at once, over chunks of 8 inputs: the
 * chunk of x in s0-s7 (one vldmia), each row's 8 weights in s8-s15 (one
 * vldmia) and 8 vfma into that row's sum (s16-s19), each sum in i order.
 * The last k % 8 inputs continue the sums in C, the last m % 4 rows too. */
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

static void lnn_cm4_dot4(const float *x, const float *w, size_t k, float *y)
{
    const float *w0 = w, *w1 = w + k, *w2 = w + 2 * k, *w3 = w + 3 * k;
    const float *xp = x;
    size_t chunks = k / 8;
    /* the four sums live in s16-s19 (the asm names them): zeroed and stored in C */
    register float a0 __asm__("s16") = 0.0f;
    register float a1 __asm__("s17") = 0.0f;
    register float a2 __asm__("s18") = 0.0f;
    register float a3 __asm__("s19") = 0.0f;
    __asm__ volatile("cmp %[n], #0\n\t"
                     "beq 2f\n"
                     "1:\n\t"
                     "vldmia %[x]!, {s0-s7}\n\t"
                     LNN_CM4_DOT8("s16", "w0") LNN_CM4_DOT8("s17", "w1")
                     LNN_CM4_DOT8("s18", "w2") LNN_CM4_DOT8("s19", "w3")
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n"
                     "2:\n\t"
                     : [x] "+r"(xp), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3),
                       [n] "+r"(chunks), "+t"(a0), "+t"(a1), "+t"(a2), "+t"(a3)
                     :
                     : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
                       "s12", "s13", "s14", "s15", "cc", "memory");
    y[0] = a0;
    y[1] = a1;
    y[2] = a2;
    y[3] = a3;
    for (size_t i = k - k % 8; i < k; i++) {
        y[0] = fmaf(x[i], w[i], y[0]);
        y[1] = fmaf(x[i], w[k + i], y[1]);
        y[2] = fmaf(x[i], w[2 * k + i], y[2]);
        y[3] = fmaf(x[i], w[3 * k + i], y[3]);
    }
}
#undef LNN_CM4_DOT8

void lnn_linear__cm4(const lnn_linear_params *p)
{
    const size_t k = p->k, m = p->m;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        float *y = p->y + r * m;
        size_t j = 0;
        for (; j + 4 <= m; j += 4)
            lnn_cm4_dot4(x, p->w + j * k, k, y + j);
        for (; j < m; j++) {
            const float *w = p->w + j * k;
            float acc = 0.0f;
            for (size_t i = 0; i < k; i++)
                acc = fmaf(x[i], w[i], acc);
            y[j] = acc;
        }
        if (p->bias)
            for (size_t c = 0; c < m; c++)
                y[c] += p->bias[c];
    }
}

/* 16 sums in registers over the i loop, the int8 weights converted exactly. */
#define LNN_CM4_REP16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define LNN_CM4_ZERO(c) float acc##c = 0.0f;
#define LNN_CM4_SUM(c) acc##c = fmaf(xi, (float)q[c], acc##c);
#define LNN_CM4_STORE(c) y[j + (c)] = acc##c;
void lnn_linear_tq8__cm4(const lnn_linear_q8_params *p)
{
    const size_t k = p->k, m = p->m, ldq = p->ldq;
    for (size_t r = 0; r < p->rows; r++) {
        const float *x = p->x + r * k;
        float *y = p->y + r * p->ldy;
        size_t j = 0;
        /* the first input and weight row in summing order, and the steps to the next */
        const ptrdiff_t xstep = p->reverse ? -1 : 1;
        const ptrdiff_t qstep = p->reverse ? -(ptrdiff_t)ldq : (ptrdiff_t)ldq;
        const float *x0 = p->reverse ? x + k - 1 : x;
        const int8_t *q0 = p->q + (p->reverse ? (k - 1) * ldq : 0);
        for (; j + 16 <= m; j += 16) {
            LNN_CM4_REP16(LNN_CM4_ZERO)
            const float *xp = x0;
            const int8_t *q = q0 + j;
            for (size_t n = 0; n < k; n++, xp += xstep, q += qstep) {
                const float xi = *xp;
                LNN_CM4_REP16(LNN_CM4_SUM)
            }
            LNN_CM4_REP16(LNN_CM4_STORE)
        }
        for (; j < m; j++) {
            float acc = 0.0f;
            for (size_t n = 0; n < k; n++) {
                const size_t i = p->reverse ? k - 1 - n : n;
                acc = fmaf(x[i], (float)p->q[i * ldq + j], acc);
            }
            y[j] = acc;
        }
        for (size_t c = 0; c < m; c++) {
            y[c] *= p->scale[c];
            if (p->bias)
                y[c] += p->bias[c];
        }
    }
}

/* The LTC step's fused form (kernels.h, LNN_EW_FORM_LTC),
 *   y = H + DT * ((C + D) * sigmoid(A + B) - H) / T,  slots A B C D H T DT,
 * one element at a time with every intermediate in a register, instead of
 * the block interpreter's pass per instruction through scratch blocks on
 * the stack. The operations are the scalar kernels' in the program's order
 * (the sigmoid is kernels_scalar.c's lnn_sigmoidf operation for operation,
 * no fused multiply-add: the file is built with -ffp-contract=off), so the
 * result has the bits the scalar set gives the program. */
static uint32_t lnn_cm4_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float lnn_cm4_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* kernels_scalar.c lnn_exp_core, the same operations in the same order */
static inline float lnn_cm4_exp_core(float x)
{
    x = x < LNN_EXP_LO ? LNN_EXP_LO : x;
    x = x > LNN_EXP_HI ? LNN_EXP_HI : x;
    const float t = x * LNN_EXP_LOG2E + LNN_EXP_MAGIC;
    const float n = t - LNN_EXP_MAGIC;
    const uint32_t nb = lnn_cm4_bits(t) - LNN_EXP_NBIAS;
    const uint32_t h1 = nb >> 1;
    const uint32_t h2 = nb - h1;
    float r = x - n * LNN_EXP_LN2_HI;
    r = r - n * LNN_EXP_LN2_LO;
    float q = LNN_EXP_P7;
    q = q * r + LNN_EXP_P6;
    q = q * r + LNN_EXP_P5;
    q = q * r + LNN_EXP_P4;
    q = q * r + LNN_EXP_P3;
    q = q * r + LNN_EXP_P2;
    const float e = (q * (r * r) + r) + 1.0f;
    return e * lnn_cm4_from_bits((h1 + LNN_EXP_EBIAS) << 23) *
           lnn_cm4_from_bits((h2 + LNN_EXP_EBIAS) << 23);
}

/* kernels_scalar.c lnn_sigmoidf */
static inline float lnn_cm4_sigmoidf(float x)
{
    if (x != x)
        return x + x;
    const float e = lnn_cm4_exp_core(-fabsf(x));
    return (x < 0.0f ? e : 1.0f) / (1.0f + e);
}

/* Runs of inner elements (inner divides count and every ROW len): inside
 * one, a SAME or ROW slot is contiguous, a SCALAR slot one value. */
static void lnn_ew_ltc__cm4(const lnn_ewise_params *p)
{
    const float *base[LNN_EW_LTC_SLOTS];
    size_t step[LNN_EW_LTC_SLOTS];
    const size_t inner = p->inner;
    for (size_t o = 0; o < p->count; o += inner) {
        for (size_t s = 0; s < LNN_EW_LTC_SLOTS; s++) {
            const size_t j = lnn_ew_form_slot(p->form, s);
            step[s] = p->mode[j] != LNN_EW_SCALAR;
            base[s] = p->mode[j] == LNN_EW_SAME ? p->src[j] + o
                      : p->mode[j] == LNN_EW_ROW ? p->src[j] + o % p->len[j]
                                                 : p->src[j];
        }
        const float *a = base[0], *b = base[1], *c = base[2], *d = base[3];
        const float *h = base[4], *tau = base[5], *dt = base[6];
        float *y = p->y + o;
        for (size_t i = 0; i < inner; i++) {
            const float g = lnn_cm4_sigmoidf(*a + *b);
            const float hv = *h; /* y may be exactly H: read before the store */
            const float f = ((*c + *d) * g - hv) / *tau;
            y[i] = hv + *dt * f;
            a += step[0], b += step[1], c += step[2], d += step[3];
            h += step[4], tau += step[5], dt += step[6];
        }
    }
}

static void lnn_ewise__cm4(const lnn_ewise_params *p)
{
    if ((p->form & 0xFu) == LNN_EW_FORM_LTC)
        lnn_ew_ltc__cm4(p);
    else
        lnn_ewise__scalar(p);
}


/* The scalar kernels but for the products and the element-wise programs. */
const lnn_kernels lnn_kernels_cm4 = {
    .isa = "cm4",
    .linear = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR) || LNN_OP_LINKED(MATMUL_NT), lnn_linear__cm4),
    .linear_t = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_T) || LNN_OP_LINKED(MATMUL_T), lnn_linear_t__cm4),
    .linear_q8 = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_Q8) || LNN_OP_LINKED(MATMUL_NTQ8), lnn_linear_q8__scalar),
    .linear_tq8 = LNN_KERNEL_IF(LNN_OP_LINKED(LINEAR_TQ8) || LNN_OP_LINKED(MATMUL_TQ8), lnn_linear_tq8__cm4),
    .ewise = LNN_KERNEL_IF(LNN_EWISE_LINKED, lnn_ewise__cm4),
    LNN_SCALAR_TABLE_ENTRIES
};

#else
typedef int lnn_kernels_cm4_not_built; /* ISO C: no empty translation unit */
#endif
