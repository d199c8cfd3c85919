# sources.mk - the one list of the VM's source files and of the per-ISA kernel
# sets and flags. Read by vm/Makefile and vm/firmware/Makefile (include) and by
# vm/CMakeLists.txt (which parses it), so a new file in src/ is named here and
# nowhere else (tests/test_vm_sources.py checks that).
#
# CMake reads this file line by line: keep to lines of the form
#   LNN_NAME := word word ...
# (one line per variable, no continuation lines, no make functions), and
# comments. File names are relative to src/.

# the library: loader, verifier, interpreter, portable kernels, run helpers
LNN_LIB_SRCS := loader.c verify.c interp.c tables.c crc32.c kernels.c kernels_scalar.c disasm.c graph.c kernels_graph_scalar.c rows.c

# The kernel sets of each ISA choice (vm/Makefile ISA=, CMake LNN_ISA; see
# src/simd.h): the extra files and the macros. auto is auto_x86 for a compiler
# targeting x86 (lnn_init picks the best set the processor has), auto_other
# elsewhere (kernels_neon.c is empty unless the compiler targets NEON,
# kernels_cm4.c unless it targets a Cortex-M with a VFPv4 FPU, kernels_mve.c
# unless it targets MVE with floating point: the Cortex-M firmware builds
# auto_other). The single-ISA choices set LNN_ISA_STRICT:
# lnn_init fails with E_CPU on a processor without that set; they and
# auto_x86 leave the cm4 and mve sets out (LNN_HAVE_CM4=0, LNN_HAVE_MVE=0).
LNN_ISAS := auto scalar neon sse3 avx2 avx512
LNN_X86_ISAS := sse3 avx2 avx512
LNN_ISA_SRCS_auto_x86 := kernels_sse3.c kernels_avx2.c kernels_avx512.c
LNN_ISA_DEFS_auto_x86 := LNN_HAVE_NEON=0 LNN_HAVE_SSE3=1 LNN_HAVE_AVX2=1 LNN_HAVE_AVX512=1 LNN_HAVE_CM4=0 LNN_HAVE_MVE=0
LNN_ISA_SRCS_auto_other := kernels_neon.c kernels_mve.c kernels_cm4.c
LNN_ISA_DEFS_auto_other :=
LNN_ISA_SRCS_scalar :=
LNN_ISA_DEFS_scalar := LNN_HAVE_NEON=0 LNN_HAVE_SSE3=0 LNN_HAVE_AVX2=0 LNN_HAVE_AVX512=0 LNN_HAVE_CM4=0 LNN_HAVE_MVE=0
LNN_ISA_SRCS_neon := kernels_neon.c
LNN_ISA_DEFS_neon := LNN_HAVE_NEON=1 LNN_HAVE_SSE3=0 LNN_HAVE_AVX2=0 LNN_HAVE_AVX512=0 LNN_HAVE_CM4=0 LNN_HAVE_MVE=0 LNN_ISA_STRICT=1
LNN_ISA_SRCS_sse3 := kernels_sse3.c
LNN_ISA_DEFS_sse3 := LNN_HAVE_NEON=0 LNN_HAVE_SSE3=1 LNN_HAVE_AVX2=0 LNN_HAVE_AVX512=0 LNN_HAVE_CM4=0 LNN_HAVE_MVE=0 LNN_ISA_STRICT=1
LNN_ISA_SRCS_avx2 := kernels_avx2.c
LNN_ISA_DEFS_avx2 := LNN_HAVE_NEON=0 LNN_HAVE_SSE3=0 LNN_HAVE_AVX2=1 LNN_HAVE_AVX512=0 LNN_HAVE_CM4=0 LNN_HAVE_MVE=0 LNN_ISA_STRICT=1
LNN_ISA_SRCS_avx512 := kernels_avx512.c
LNN_ISA_DEFS_avx512 := LNN_HAVE_NEON=0 LNN_HAVE_SSE3=0 LNN_HAVE_AVX2=0 LNN_HAVE_AVX512=1 LNN_HAVE_CM4=0 LNN_HAVE_MVE=0 LNN_ISA_STRICT=1

# Per-file flags: only these files are compiled for more than the target's
# baseline (LNN_FLAGS_<file name without .c>).
LNN_FLAGS_kernels_sse3 := -msse3
LNN_FLAGS_kernels_avx2 := -mavx2 -mfma
LNN_FLAGS_kernels_avx512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma
