/*
 * kernels.c - picks the kernel set at lnn_init.
 *
 * Adding an ISA: define lnn_kernels_<isa> in kernels_<isa>.c under
 * #if LNN_HAVE_<ISA>, declare it with LNN_KERNEL_PROTOS(<isa>) in kernels.h
 * under the same guard, list it here before the sets it beats, and say in
 * lnn_kernels_supported how to tell that the processor has it.
 *
 * This file is compiled for the baseline of the target (never with the
 * flags of a SIMD set), so the check itself runs on any processor.
 */
#include <string.h>

#include "kernels.h"

#if LNN_X86_CPUID && LNN_HAVE_AVX512
#include <cpuid.h>

/* AVX-512 F, BW, VL, DQ and FMA in cpuid, and the OS saving the state they
 * need (XCR0 through xgetbv: bits 1-2 SSE and AVX, bits 5-7 the opmask and
 * the ZMM registers), so that the set never faults where the kernel or a
 * hypervisor keeps AVX-512 off. */
static int lnn_cpu_has_avx512(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const unsigned osxsave = 1u << 27, fma = 1u << 12;
    if ((c & (osxsave | fma)) != (osxsave | fma))
        return 0;
    unsigned xlo, xhi;
    __asm__ __volatile__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0)); /* XCR0 */
    (void)xhi;
    const unsigned xstate = (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 7);
    if ((xlo & xstate) != xstate)
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    const unsigned f = 1u << 16, dq = 1u << 17, bw = 1u << 30, vl = 1u << 31;
    return (b & (f | dq | bw | vl)) == (f | dq | bw | vl);
}
#endif

/* A selective build (a device image for given models, -DLNN_OPS_HEADER) for
 * a core whose best set needs no run-time check links that set alone: the
 * scalar set behind it could only be reached through lnn_use_kernels, and
 * its products are bytes a small part cannot spare (the cm4 set already
 * points its other entries at the scalar kernels). */
#if defined(LNN_OPS_HEADER) && !LNN_X86_CPUID && (LNN_HAVE_NEON || LNN_HAVE_MVE || LNN_HAVE_CM4)
#define LNN_BEST_SET_ONLY 1
#else
#define LNN_BEST_SET_ONLY 0
#endif

const lnn_kernels *const lnn_kernel_sets[] = {
#if LNN_HAVE_AVX512
    &lnn_kernels_avx512,
#endif
#if LNN_HAVE_AVX2
    &lnn_kernels_avx2,
#endif
#if LNN_HAVE_SSE3
    &lnn_kernels_sse3,
#endif
#if LNN_HAVE_NEON
    &lnn_kernels_neon,
#endif
#if LNN_HAVE_MVE /* before cm4: a core with MVE has the FPU too */
    &lnn_kernels_mve,
#endif
#if LNN_HAVE_CM4
    &lnn_kernels_cm4,
#endif
#if !LNN_BEST_SET_ONLY
    &lnn_kernels_scalar,
#endif
    NULL,
};

int lnn_kernels_supported(const lnn_kernels *k)
{
#if LNN_X86_CPUID
    __builtin_cpu_init();
#if LNN_HAVE_AVX512
    if (k == &lnn_kernels_avx512) /* at lnn_init and lnn_use_kernels only */
        return lnn_cpu_has_avx512();
#endif
#if LNN_HAVE_AVX2
    if (k == &lnn_kernels_avx2) /* also checks that the OS saves the YMM state */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if LNN_HAVE_SSE3
    if (k == &lnn_kernels_sse3)
        return __builtin_cpu_supports("sse3");
#endif
#endif
    /* NEON: the compiler already emits it anywhere in a NEON build */
    return k != NULL;
}

const lnn_kernels *lnn_kernels_select(void)
{
    for (size_t i = 0; lnn_kernel_sets[i]; i++) {
        if (lnn_kernels_supported(lnn_kernel_sets[i]))
            return lnn_kernel_sets[i];
        if (LNN_ISA_STRICT)
            return NULL;
    }
    return NULL; /* not reached: the last set listed (scalar, or the best-only set) runs anywhere */
}

const lnn_kernels *lnn_kernels_find(const char *isa)
{
    for (size_t i = 0; isa && lnn_kernel_sets[i]; i++)
        if (strcmp(lnn_kernel_sets[i]->isa, isa) == 0)
            return lnn_kernel_sets[i];
    return NULL;
}
