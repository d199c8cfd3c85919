/*
 * kernels_graph_scalar.c - the portable graph-op kernels (kernels_graph.h):
 * the reference the SIMD sets are tested against, and what runs where no SIMD
 * set is compiled in. exp is the scalar exp kernel's, like elsewhere; the
 * one log of LOG_SOFTMAX per row is the C library's logf (every set calls it
 * the same way, once per row).
 */
#include <math.h>

#include "internal.h"
#include "kernels.h"

/* exp of one value by the scalar exp kernel (vmath.h's algorithm) */
static float lnn_exp1(float v)
{
    float e;
    const lnn_unary_params q = {&e, &v, 1};
    lnn_exp__scalar(&q);
    return e;
}

static void lnn_tap__scalar(float *y, const float *x, size_t xs, float wv, size_t len)
{
    for (size_t j = 0; j < len; j++)
        y[j] += wv * x[j * xs];
}

void lnn_conv2d__scalar(const lnn_conv2d_params *p)
{
    lnn_conv2d_loops(p, lnn_tap__scalar);
}

static void lnn_pool2d(const lnn_pool2d_params *p, int avg)
{
    const size_t k = p->k, s = p->stride;
    const float scale = (float)(k * k);
    for (size_t q = 0; q < p->planes; q++) {
        const float *x = p->x + q * p->h * p->wd;
        float *y = p->y + q * p->oh * p->ow;
        for (size_t i = 0; i < p->oh; i++) {
            for (size_t j = 0; j < p->ow; j++) {
                const float *w = x + i * s * p->wd + j * s;
                float acc = avg ? 0.0f : w[0];
                for (size_t u = 0; u < k; u++)
                    for (size_t v = 0; v < k; v++) {
                        const float e = w[u * p->wd + v];
                        if (avg)
                            acc += e;
                        else if (e > acc || e != e) /* NaN propagates, as in PyTorch */
                            acc = e;
                    }
                y[i * p->ow + j] = avg ? acc / scale : acc;
            }
        }
    }
}

void lnn_maxpool2d__scalar(const lnn_pool2d_params *p)
{
    lnn_pool2d(p, 0);
}

void lnn_avgpool2d__scalar(const lnn_pool2d_params *p)
{
    lnn_pool2d(p, 1);
}

/* One softmax (log: log-softmax) along n elements xs apart. */
static void lnn_softmax_line(float *y, const float *x, size_t n, size_t xs, int log)
{
    float mx = x[0];
    for (size_t j = 1; j < n; j++)
        if (x[j * xs] > mx)
            mx = x[j * xs];
    float sum = 0.0f;
    for (size_t j = 0; j < n; j++) {
        const float e = lnn_exp1(x[j * xs] - mx);
        sum += e;
        if (!log)
            y[j * xs] = e;
    }
    if (log) {
        const float ls = logf(sum);
        for (size_t j = 0; j < n; j++)
            y[j * xs] = (x[j * xs] - mx) - ls;
    } else {
        for (size_t j = 0; j < n; j++)
            y[j * xs] = y[j * xs] / sum;
    }
}

static void lnn_softmax_all(const lnn_axis_params *p, int log)
{
    for (size_t o = 0; o < p->outer; o++)
        for (size_t i = 0; i < p->inner; i++) {
            const size_t at = o * p->n * p->inner + i;
            lnn_softmax_line(p->y + at, p->x + at, p->n, p->inner, log);
        }
}

void lnn_softmax__scalar(const lnn_axis_params *p)
{
    lnn_softmax_all(p, 0);
}

void lnn_log_softmax__scalar(const lnn_axis_params *p)
{
    lnn_softmax_all(p, 1);
}

static void lnn_reduce(const lnn_axis_params *p, int mean)
{
    for (size_t o = 0; o < p->outer; o++)
        for (size_t i = 0; i < p->inner; i++) {
            const float *x = p->x + o * p->n * p->inner + i;
            float acc = 0.0f;
            for (size_t j = 0; j < p->n; j++)
                acc += x[j * p->inner];
            p->y[o * p->inner + i] = mean ? acc / (float)p->n : acc;
        }
}

void lnn_reduce_sum__scalar(const lnn_axis_params *p)
{
    lnn_reduce(p, 0);
}

void lnn_reduce_mean__scalar(const lnn_axis_params *p)
{
    lnn_reduce(p, 1);
}

/* Row by row, as LINEAR_T: the y row accumulates b's rows scaled by a's
 * elements, so every sum runs in k order with contiguous loads. */
void lnn_matmul__scalar(const lnn_matmul_params *p)
{
    const size_t m = p->m, k = p->k, n = p->n;
    for (size_t c = 0; c < p->count; c++) {
        const float *a = p->a + c * m * k, *b = p->b + c * p->b_step;
        float *y = p->y + c * m * n;
        for (size_t r = 0; r < m; r++) {
            float *yr = y + r * n;
            for (size_t j = 0; j < n; j++)
                yr[j] = 0.0f;
            for (size_t i = 0; i < k; i++) {
                const float ai = a[r * k + i];
                const float *bi = b + i * n;
                for (size_t j = 0; j < n; j++)
                    yr[j] += ai * bi[j];
            }
        }
    }
}
