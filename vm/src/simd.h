/*
 * simd.h - the ONLY place that looks at compiler-predefined target macros.
 *
 * Everything else in the VM tests the project macros defined here:
 *   LNN_HAVE_NEON   kernel set "neon" compiled in (ARM Advanced SIMD)
 *   LNN_HAVE_SSE3   kernel set "sse3" compiled in (x86 SSE3)
 *   LNN_HAVE_AVX2   kernel set "avx2" compiled in (x86 AVX2 + FMA)
 *   LNN_HAVE_AVX512 kernel set "avx512" compiled in (x86 AVX-512 F/BW/VL/DQ
 *                   + FMA)
 *   LNN_HAVE_CM4    kernel set "cm4" compiled in (Cortex-M with a VFPv4
 *                   single-precision FPU: M4F, M7, M33; no vector unit)
 *   LNN_HAVE_MVE    kernel set "mve" compiled in (Armv8.1-M with the
 *                   M-profile Vector Extension's floating point, Helium:
 *                   Cortex-M55, M85)
 *   LNN_ISA_STRICT  1: the best compiled-in set is required, and lnn_init
 *                   fails with LNN_E_CPU on a processor without it (the
 *                   Makefile's ISA=sse3 / avx2 / avx512 / neon); 0: the best set the
 *                   processor supports is taken (ISA=auto)
 *   LNN_ARCH_NAME   short name of the target architecture, for diagnostics
 *   LNN_ARCH_X86    1 on x86 / x86-64
 *   LNN_X86_CPUID   1 where __builtin_cpu_supports can test x86 features
 *   LNN_NEON_A64    1 for AArch64 NEON (vdivq_f32, vfmaq_f32, vpaddq_f32)
 *   LNN_NEON_FTZ    1 where NEON float arithmetic flushes denormals to zero
 *                   (AArch32 NEON always does)
 *   LNN_TARGET_SSE3, LNN_TARGET_AVX2, LNN_TARGET_AVX512
 *                   1 when the current file is compiled for that ISA (per
 *                   file flags: kernels_sse3.c with -msse3, kernels_avx2.c
 *                   with -mavx2 -mfma, kernels_avx512.c with -mavx512f
 *                   -mavx512bw -mavx512vl -mavx512dq -mfma)
 *
 * Each LNN_HAVE_* is 0 or 1. The Makefile and CMakeLists.txt set them on the
 * command line for every file (an x86 ISA=auto build compiles the AVX2 set
 * in while the rest of the VM stays baseline x86-64). Without them they
 * follow the compiler's target, so a plain build of src/ with no -D also works.
 */
#ifndef LNN_SIMD_H
#define LNN_SIMD_H

#if defined(__aarch64__) || defined(_M_ARM64)
#define LNN_ARCH_NAME "aarch64"
#elif defined(__arm__) || defined(_M_ARM)
#define LNN_ARCH_NAME "arm"
#elif defined(__x86_64__) || defined(_M_X64)
#define LNN_ARCH_NAME "x86_64"
#elif defined(__i386__) || defined(_M_IX86)
#define LNN_ARCH_NAME "x86"
#else
#define LNN_ARCH_NAME "unknown"
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define LNN_ARCH_X86 1
#else
#define LNN_ARCH_X86 0
#endif

#if LNN_ARCH_X86 && defined(__GNUC__)
#define LNN_X86_CPUID 1
#else
#define LNN_X86_CPUID 0
#endif

#if defined(__SSE3__)
#define LNN_TARGET_SSE3 1
#else
#define LNN_TARGET_SSE3 0
#endif

#if defined(__AVX2__) && defined(__FMA__)
#define LNN_TARGET_AVX2 1
#else
#define LNN_TARGET_AVX2 0
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__FMA__)
#define LNN_TARGET_AVX512 1
#else
#define LNN_TARGET_AVX512 0
#endif

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#define LNN_TARGET_NEON 1
#else
#define LNN_TARGET_NEON 0
#endif

/* an M-profile core whose FPU has single precision (__ARM_FP bit 2) and
 * fused multiply-add (VFPv4) */
#if defined(__ARM_ARCH_PROFILE) && defined(__ARM_FP) && defined(__ARM_FEATURE_FMA)
#if __ARM_ARCH_PROFILE == 'M' && (__ARM_FP & 4)
#define LNN_TARGET_CM4 1
#endif
#endif
#ifndef LNN_TARGET_CM4
#define LNN_TARGET_CM4 0
#endif

/* MVE with floating point (__ARM_FEATURE_MVE bit 1; bit 0 is the integer
 * part): -mcpu=cortex-m55, or -march=armv8.1-m.main+mve.fp */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 2)
#define LNN_TARGET_MVE 1
#else
#define LNN_TARGET_MVE 0
#endif

#if LNN_TARGET_NEON && (defined(__aarch64__) || defined(_M_ARM64))
#define LNN_NEON_A64 1
#else
#define LNN_NEON_A64 0
#endif

#if LNN_TARGET_NEON && !LNN_NEON_A64
#define LNN_NEON_FTZ 1
#else
#define LNN_NEON_FTZ 0
#endif

#ifndef LNN_HAVE_NEON
#define LNN_HAVE_NEON LNN_TARGET_NEON
#endif

#ifndef LNN_HAVE_SSE3
#define LNN_HAVE_SSE3 LNN_TARGET_SSE3
#endif

#ifndef LNN_HAVE_AVX2
#define LNN_HAVE_AVX2 LNN_TARGET_AVX2
#endif

#ifndef LNN_HAVE_AVX512
#define LNN_HAVE_AVX512 LNN_TARGET_AVX512
#endif

#ifndef LNN_HAVE_CM4
#define LNN_HAVE_CM4 LNN_TARGET_CM4
#endif

#ifndef LNN_HAVE_MVE
#define LNN_HAVE_MVE LNN_TARGET_MVE
#endif

#ifndef LNN_ISA_STRICT
#define LNN_ISA_STRICT 0
#endif

#if LNN_HAVE_NEON && !LNN_TARGET_NEON
#error "the neon kernel set needs a compiler targeting NEON (armv7: -mfpu=neon -mfloat-abi=hard or softfp)"
#endif
#if LNN_HAVE_CM4 && !LNN_TARGET_CM4
#error "the cm4 kernel set needs a compiler targeting a Cortex-M with a VFPv4 single-precision FPU"
#endif
#if LNN_HAVE_MVE && !LNN_TARGET_MVE
#error "the mve kernel set needs a compiler targeting MVE with floating point (-mcpu=cortex-m55)"
#endif
#if (LNN_HAVE_SSE3 || LNN_HAVE_AVX2 || LNN_HAVE_AVX512) && !LNN_ARCH_X86
#error "the sse3, avx2 and avx512 kernel sets exist only on x86"
#endif

/* The file format and the constants are little-endian IEEE-754 floats,
 * used in place: the VM supports little-endian targets only. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__)
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "the lnnedge VM needs a little-endian target"
#endif
#endif

#endif
