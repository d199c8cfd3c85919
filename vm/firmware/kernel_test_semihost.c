/*
 * kernel_test_semihost.c - the VM's SIMD-vs-scalar kernel test
 * (vm/tests/kernel_test.c, every kernel of every set compiled in against the
 * scalar one) as a bare-metal program on a Cortex-M core with a vector set
 * (the mve set on the Cortex-M55): `make simdtest` compiles kernel_test.c
 * with its main renamed to lnn_kernel_test_main and links it with this file,
 * the startup code and newlib's semihosting library (rdimon: printf and
 * malloc work as on a host), and tests/test_mve_kernels.py runs it under
 * QEMU with -semihosting. The test's lines go to the semihosting console,
 * its status to QEMU's exit status (SYS_EXIT).
 *
 * This toolchain's newlib printf has no C99 size modifier (%zu prints "zu"
 * and leaves the argument for the next conversion): the Makefile renames the
 * test's printf, vprintf and snprintf to the lnn_sh_ ones here, which drop
 * the z (size_t is unsigned int on 32-bit ARM) and call newlib's.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "board.h"

int lnn_kernel_test_main(void);
int lnn_sh_printf(const char *fmt, ...);
int lnn_sh_vprintf(const char *fmt, va_list ap);
int lnn_sh_snprintf(char *buf, size_t n, const char *fmt, ...);
void initialise_monitor_handles(void); /* librdimon: the semihosting stdio */

static uint32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

__attribute__((noreturn)) static void finish(int ok)
{
    /* SYS_EXIT: ADP_Stopped_ApplicationExit (QEMU exits 0), else RunTimeError (1) */
    semihost(0x18u, (const void *)(uintptr_t)(ok ? 0x20026u : 0x20023u));
    for (;;) {
    }
}

/* the startup code's hooks (board.h): a fault ends the test as failed */
void board_record_fault(uint32_t exception, uint32_t pc)
{
    (void)pc;
    semihost(0x04u, exception == 3u ? "fault: HardFault\n" : "fault: exception\n"); /* SYS_WRITE0 */
}

void board_reset(void)
{
    finish(0);
}

_Static_assert(sizeof(size_t) == sizeof(unsigned), "%zu becomes %u");

/* fmt without the z of its conversions, into out (the test's formats are short) */
static const char *no_z(const char *fmt, char *out, size_t size)
{
    size_t o = 0;
    int in_conv = 0;
    for (const char *p = fmt; *p && o + 1 < size; p++) {
        if (in_conv && *p == 'z')
            continue;
        if (*p == '%')
            in_conv = !in_conv;
        else if (in_conv && strchr("diouxXeEfFgGaAcspn", *p))
            in_conv = 0;
        out[o++] = *p;
    }
    out[o] = '\0';
    return out;
}

int lnn_sh_vprintf(const char *fmt, va_list ap)
{
    char f[256];
    return vprintf(no_z(fmt, f, sizeof f), ap);
}

int lnn_sh_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int n = lnn_sh_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int lnn_sh_snprintf(char *buf, size_t n, const char *fmt, ...)
{
    char f[256];
    va_list ap;
    va_start(ap, fmt);
    const int r = vsnprintf(buf, n, no_z(fmt, f, sizeof f), ap);
    va_end(ap);
    return r;
}

int main(void)
{
    initialise_monitor_handles();
    const int status = lnn_kernel_test_main();
    fflush(stdout);
    finish(status == 0);
}
