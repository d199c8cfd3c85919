/*
 * libc_mem.c - memcpy, memset and memcmp of the Cortex-M images, instead of
 * newlib-nano's: its ARMv7-M memcpy is 308 bytes of unrolled copies for long
 * blocks and its memset 162, about 500 bytes with memcmp, a fortieth of a
 * 20 KB image. These copy a word at a time when both ends are 4-aligned (the
 * frames, the arena and the model's rows are), else a byte at a time. The
 * VM's own memcpy calls of 2 or 4 bytes (type punning) are inlined by the
 * compiler and never come here.
 */
#include <stddef.h>
#include <stdint.h>

/* a word that may alias any object, as a memcpy's accesses do */
typedef uint32_t __attribute__((may_alias)) lnn_word;

/* The compiler would otherwise turn these loops back into calls of the very
 * functions. Clang (which has no optimize attribute and would warn about it)
 * marks the functions no-builtins: its loop idioms then make no library call. */
#if __has_attribute(no_builtin)
#define LNN_NO_PATTERNS __attribute__((no_builtin))
#else
#define LNN_NO_PATTERNS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif

LNN_NO_PATTERNS void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (((uintptr_t)d & 3u) == 0 && ((uintptr_t)s & 3u) == 0)
        for (; n >= 4; n -= 4, d += 4, s += 4)
            *(lnn_word *)(void *)d = *(const lnn_word *)(const void *)s;
    for (; n; n--)
        *d++ = *s++;
    return dst;
}

LNN_NO_PATTERNS void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    if (((uintptr_t)d & 3u) == 0) {
        const lnn_word w = 0x01010101u * (uint8_t)c;
        for (; n >= 4; n -= 4, d += 4)
            *(lnn_word *)(void *)d = w;
    }
    for (; n; n--)
        *d++ = (uint8_t)c;
    return dst;
}

LNN_NO_PATTERNS int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}
