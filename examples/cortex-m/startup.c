/*
 * startup.c - the least a Cortex-M4F app needs before main: the vector table
 * (initial stack pointer, reset handler; every fault spins), the FPU switched
 * on (the VM is compiled for -mfloat-abi=hard), .data copied and .bss
 * zeroed; and the semihosting exit that ends a run under QEMU.
 */
#include <stdint.h>
#include <string.h>

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[], __stack_top[];
int main(void);
void reset_handler(void);
void semihosting_exit(int status);

static void spin(void)
{
    for (;;) {
    }
}

/* 16 system vectors; the app takes no interrupts. */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top, reset_handler, spin, spin, spin, spin, spin,
};

void reset_handler(void)
{
    /* CPACR: full access to CP10 and CP11 (the FPU) before any float */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    memcpy(__data_start, __data_load, (size_t)((char *)__data_end - (char *)__data_start));
    memset(__bss_start, 0, (size_t)((char *)__bss_end - (char *)__bss_start));
    semihosting_exit(main());
}

/* SYS_EXIT (0x18) with ADP_Stopped_ApplicationExit: QEMU -semihosting quits
 * with status 0; any other reason (RunTimeErrorUnknown) makes it quit with 1. */
void semihosting_exit(int status)
{
    register uint32_t op __asm__("r0") = 0x18u;
    register uint32_t reason __asm__("r1") = status == 0 ? 0x20026u : 0x20023u;
    __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(reason) : "memory");
    spin();
}
