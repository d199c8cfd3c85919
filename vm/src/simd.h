/*
 * simd.h - the ONLY place that looks at compiler-predefined target macros.
 *
 * Everything else in the VM tests the project macros defined here:
 *   LNN_HAVE_NEON   ARM Advanced SIMD (always on aarch64, optional on armv7)
 *   LNN_HAVE_SSE3   x86 SSE3
 *   LNN_HAVE_AVX2   x86 AVX2 + FMA
 *   LNN_ARCH_NAME   short name of the target architecture, for diagnostics
 * Each LNN_HAVE_* is 0 or 1 and may be forced from the command line, e.g.
 * -DLNN_HAVE_AVX2=0 to build a portable x86 binary.
 *
 * A kernel set for an ISA is compiled only when its macro is 1; the
 * selection in kernels.c picks the best compiled-in set at lnn_init.
 */
#ifndef LNN_SIMD_H
#define LNN_SIMD_H

#ifndef LNN_HAVE_NEON
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#define LNN_HAVE_NEON 1
#else
#define LNN_HAVE_NEON 0
#endif
#endif

#ifndef LNN_HAVE_SSE3
#if defined(__SSE3__)
#define LNN_HAVE_SSE3 1
#else
#define LNN_HAVE_SSE3 0
#endif
#endif

#ifndef LNN_HAVE_AVX2
#if defined(__AVX2__) && defined(__FMA__)
#define LNN_HAVE_AVX2 1
#else
#define LNN_HAVE_AVX2 0
#endif
#endif

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

/* The file format and the constants are little-endian IEEE-754 floats,
 * used in place: the VM supports little-endian targets only. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__)
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "the lnnedge VM needs a little-endian target"
#endif
#endif

#endif
