/*
 * kernels.c - picks the kernel set at lnn_init.
 *
 * Adding an ISA: define lnn_kernels_<isa> in kernels_<isa>.c under
 * #if LNN_HAVE_<ISA>, declare it with LNN_KERNEL_PROTOS(<isa>) in kernels.h
 * under the same guard, and list it here before the scalar set. A set that
 * needs a run-time CPU check (e.g. AVX2 in a portable x86 build) tests it in
 * lnn_kernels_select before returning itself.
 */
#include "kernels.h"

const lnn_kernels *const lnn_kernel_sets[] = {
    &lnn_kernels_scalar,
    NULL,
};

const lnn_kernels *lnn_kernels_select(void) { return lnn_kernel_sets[0]; }
