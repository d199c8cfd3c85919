/*
 * matmul_bench.c - the VM's matrix multiply (the MATMUL kernel of the set
 * lnn_init would pick) against a naive triple loop, in one binary built with
 * the same flags: y (n x n) = a (n x n) @ b (n x n).
 *
 *   lnn_matmul_bench [N [RUNS]]     defaults: 256, 9
 *
 * Prints one JSON line: the size, the kernel set, every run's time of each
 * (ns), their medians, the speed-up of the medians and the largest
 * difference between the two results. A benchmark, not a test: run it on a
 * quiet machine (invoke bench-matmul).
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The textbook loop: for each output element, a dot product down a column
 * of b. noinline: it is measured, not folded into main. */
__attribute__((noinline)) static void naive_matmul(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t k = 0; k < n; k++)
                acc += a[i * n + k] * b[k * n + j];
            y[i * n + j] = acc;
        }
}

static int cmp_double(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 256;
    const int runs = argc > 2 ? atoi(argv[2]) : 9;
    if (n == 0 || n > 4096 || runs < 1 || runs > 1000) {
        fputs("usage: lnn_matmul_bench [N (1..4096) [RUNS (1..1000)]]\n", stderr);
        return 2;
    }
    const lnn_kernels *k = lnn_kernels_select();
    if (!k) {
        fputs("lnn_matmul_bench: this processor lacks the kernel set the build requires\n", stderr);
        return 1;
    }
    float *a = malloc(n * n * sizeof *a), *b = malloc(n * n * sizeof *b);
    float *yv = malloc(n * n * sizeof *yv), *yn = malloc(n * n * sizeof *yn);
    double *tv = malloc((size_t)runs * sizeof *tv), *tn = malloc((size_t)runs * sizeof *tn);
    if (!a || !b || !yv || !yn || !tv || !tn) {
        fputs("lnn_matmul_bench: out of memory\n", stderr);
        return 1;
    }
    unsigned s = 12345u;
    for (size_t i = 0; i < n * n; i++) {
        s = s * 1103515245u + 12345u;
        a[i] = (float)((s >> 8) & 0xFFFF) / 65536.0f - 0.5f;
        s = s * 1103515245u + 12345u;
        b[i] = (float)((s >> 8) & 0xFFFF) / 65536.0f - 0.5f;
    }
    const lnn_matmul_params p = {yv, a, b, 1, n, n, n, 0};
    k->matmul(&p); /* warm-up: caches, page faults */
    naive_matmul(yn, a, b, n);
    for (int r = 0; r < runs; r++) { /* interleaved, so drifts in machine load hit both */
        double t0 = now_ns();
        k->matmul(&p);
        tv[r] = now_ns() - t0;
        t0 = now_ns();
        naive_matmul(yn, a, b, n);
        tn[r] = now_ns() - t0;
    }
    double diff = 0.0;
    for (size_t i = 0; i < n * n; i++)
        diff = fmax(diff, fabs((double)yv[i] - (double)yn[i]));
    printf("{\"n\": %zu, \"runs\": %d, \"isa\": \"%s\", \"vm_ns\": [", n, runs, k->isa);
    for (int r = 0; r < runs; r++)
        printf("%s%.0f", r ? ", " : "", tv[r]);
    printf("], \"naive_ns\": [");
    for (int r = 0; r < runs; r++)
        printf("%s%.0f", r ? ", " : "", tn[r]);
    const double mv = median(tv, runs), mn = median(tn, runs);
    printf("], \"vm_ns_median\": %.0f, \"naive_ns_median\": %.0f, \"speedup\": %.2f, "
           "\"vm_gflops\": %.3f, \"naive_gflops\": %.3f, \"max_abs_diff\": %.3g}\n",
           mv, mn, mn / mv, 2.0 * (double)n * n * n / mv, 2.0 * (double)n * n * n / mn, diff);
    free(a), free(b), free(yv), free(yn), free(tv), free(tn);
    return 0;
}
