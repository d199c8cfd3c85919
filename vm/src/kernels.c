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

const lnn_kernels *const lnn_kernel_sets[] = {
#if LNN_HAVE_AVX2
    &lnn_kernels_avx2,
#endif
#if LNN_HAVE_SSE3
    &lnn_kernels_sse3,
#endif
#if LNN_HAVE_NEON
    &lnn_kernels_neon,
#endif
    &lnn_kernels_scalar,
    NULL,
};

int lnn_kernels_supported(const lnn_kernels *k)
{
#if LNN_X86_CPUID
    __builtin_cpu_init();
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
    return &lnn_kernels_scalar;
}

const lnn_kernels *lnn_kernels_find(const char *isa)
{
    for (size_t i = 0; isa && lnn_kernel_sets[i]; i++)
        if (strcmp(lnn_kernel_sets[i]->isa, isa) == 0)
            return lnn_kernel_sets[i];
    return NULL;
}
