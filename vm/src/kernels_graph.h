/*
 * kernels_graph.h - parameters of the graph-op kernels (CONV2D, the pools,
 * SOFTMAX / LOG_SOFTMAX, the reductions, MATMUL) and the loops every kernel
 * set shares. Included by kernels.h; the kernels sit in the lnn_kernels table
 * beside the others (kernels_graph_scalar.c, kernels_simd_graph.h).
 *
 * As for the other kernels, graph.c has done the planning (shapes from the
 * verified tensor table, the batch substituted) and the kernels only loop.
 * No destination overlaps an operand (the verifier's rule for these ops).
 */
#ifndef LNN_KERNELS_GRAPH_H
#define LNN_KERNELS_GRAPH_H

#include <stddef.h>

/* CONV2D over count images: for every image, output channel o and pixel
 * (i, j) of the oh x ow output,
 *   y = bias[o] + sum over (c, u, v) in that order of
 *       w[o][c][u][v] * x[c][i*stride + u - pad][j*stride + v - pad]
 * with x zero outside its h x wd plane (the padding). */
typedef struct {
    float *y;
    const float *x, *w, *bias;
    size_t count, c, h, wd, o, kh, kw, oh, ow, stride, pad;
} lnn_conv2d_params;

/* MAXPOOL2D / AVGPOOL2D over planes planes of h x wd: the k x k window at
 * (i*stride, j*stride) of each oh x ow output pixel (no padding). The
 * average is the window's sum (row by row) divided by k*k. */
typedef struct {
    float *y;
    const float *x;
    size_t planes, h, wd, oh, ow, k, stride;
} lnn_pool2d_params;

/* SOFTMAX, LOG_SOFTMAX, REDUCE_SUM, REDUCE_MEAN: x viewed as (outer, n,
 * inner), the op along the n axis. Softmax keeps x's shape; a reduction
 * writes (outer, inner). */
typedef struct {
    float *y;
    const float *x;
    size_t outer, n, inner;
} lnn_axis_params;

/* MATMUL: count products y_i (m x n) = a_i (m x k) @ b_i (k x n), all row
 * major and contiguous; a_i = a + i*m*k, y_i = y + i*m*n, b_i = b + i*b_step
 * (b_step 0: one b shared). Each sum in k order from 0. */
typedef struct {
    float *y;
    const float *a, *b;
    size_t count, m, k, n, b_step;
} lnn_matmul_params;

typedef void (*lnn_conv2d_fn)(const lnn_conv2d_params *p);
typedef void (*lnn_pool2d_fn)(const lnn_pool2d_params *p);
typedef void (*lnn_axis_fn)(const lnn_axis_params *p);
typedef void (*lnn_matmul_fn)(const lnn_matmul_params *p);

/* y[0..len) += wv * x[0, xs, 2 xs, ...): one tap of a convolution over a
 * run of output pixels. */
typedef void (*lnn_tap_fn)(float *y, const float *x, size_t xs, float wv, size_t len);

/* The convolution's loops, shared by every kernel set (only tap differs):
 * each output plane starts from the bias, then every tap (c, u, v) adds its
 * product to the output pixels whose input pixel is inside the image. */
static inline void lnn_conv2d_loops(const lnn_conv2d_params *p, lnn_tap_fn tap)
{
    const size_t plane_in = p->h * p->wd, plane_out = p->oh * p->ow;
    const size_t s = p->stride, pad = p->pad;
    for (size_t n = 0; n < p->count; n++) {
        const float *xn = p->x + n * p->c * plane_in;
        for (size_t o = 0; o < p->o; o++) {
            float *yo = p->y + (n * p->o + o) * plane_out;
            for (size_t i = 0; i < plane_out; i++)
                yo[i] = p->bias[o];
            const float *wo = p->w + o * p->c * p->kh * p->kw;
            for (size_t c = 0; c < p->c; c++) {
                const float *xc = xn + c * plane_in;
                for (size_t u = 0; u < p->kh; u++) {
                    for (size_t v = 0; v < p->kw; v++) {
                        const float wv = wo[(c * p->kh + u) * p->kw + v];
                        /* output columns j whose input column j*s + v - pad is in [0, wd) */
                        size_t j0 = v >= pad ? 0 : (pad - v + s - 1) / s;
                        size_t j1 = p->wd + pad > v ? (p->wd + pad - v - 1) / s + 1 : 0;
                        if (j1 > p->ow)
                            j1 = p->ow;
                        if (j0 >= j1)
                            continue;
                        for (size_t i = 0; i < p->oh; i++) {
                            const size_t r = i * s + u; /* input row + pad */
                            if (r < pad || r - pad >= p->h)
                                continue;
                            tap(yo + i * p->ow + j0, xc + (r - pad) * p->wd + j0 * s + v - pad, s,
                                wv, j1 - j0);
                        }
                    }
                }
            }
        }
    }
}

#endif
