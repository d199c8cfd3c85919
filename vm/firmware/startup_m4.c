/*
 * startup_m4.c - vector table and reset handler for a Cortex-M4F (ARMv7E-M).
 *
 * Reset_Handler enables the FPU (CPACR, coprocessors 10 and 11, full access)
 * before anything that could touch a floating-point register, copies .data
 * from its load address, zeroes .bss and calls main(). Faults record what
 * happened in a .noinit word block (reported by the next boot's INFO) and
 * reset the chip through AIRCR.SYSRESETREQ: a device that faulted comes back
 * with a new session, which the host notices.
 */
#include <stdint.h>

#include "board.h"

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern uint32_t __stack_top;

int main(void);
void Reset_Handler(void);
void reset_c(void);
void Default_Handler(void);
void fault_c(const uint32_t *frame, uint32_t exc_return);
void Fault_Handler(void);

/* Handlers the board may define; the default ones are weak. */
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UART0RX_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UART0TX_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UARTOVF_Handler(void) __attribute__((weak, alias("Default_Handler")));

#define NUM_IRQ 32u
typedef void (*vector)(void);

/* The initial stack pointer is word 0; cast through uintptr_t to fit the table. */
__attribute__((section(".vectors"), used)) const vector lnn_vectors[16 + NUM_IRQ] = {
    [0] = (vector)(uintptr_t)&__stack_top,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = Fault_Handler,  /* HardFault */
    [4] = Fault_Handler,  /* MemManage */
    [5] = Fault_Handler,  /* BusFault */
    [6] = Fault_Handler,  /* UsageFault */
    [11] = SVC_Handler,
    [12] = DebugMon_Handler,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    /* MPS2 AN385/AN386 interrupt lines: UART0 RX = 0, UART0 TX = 1,
     * UART 0-2 overflow = 12 */
    [16 + 0] = UART0RX_Handler,
    [16 + 1] = UART0TX_Handler,
    [16 + 2] = Default_Handler, [16 + 3] = Default_Handler,
    [16 + 4] = Default_Handler, [16 + 5] = Default_Handler,
    [16 + 6] = Default_Handler, [16 + 7] = Default_Handler,
    [16 + 8] = Default_Handler, [16 + 9] = Default_Handler,
    [16 + 10] = Default_Handler, [16 + 11] = Default_Handler,
    [16 + 12] = UARTOVF_Handler,
    [16 + 13] = Default_Handler, [16 + 14] = Default_Handler,
    [16 + 15] = Default_Handler, [16 + 16] = Default_Handler,
    [16 + 17] = Default_Handler, [16 + 18] = Default_Handler,
    [16 + 19] = Default_Handler, [16 + 20] = Default_Handler,
    [16 + 21] = Default_Handler, [16 + 22] = Default_Handler,
    [16 + 23] = Default_Handler, [16 + 24] = Default_Handler,
    [16 + 25] = Default_Handler, [16 + 26] = Default_Handler,
    [16 + 27] = Default_Handler, [16 + 28] = Default_Handler,
    [16 + 29] = Default_Handler, [16 + 30] = Default_Handler,
    [16 + 31] = Default_Handler,
};

/* Nothing before the CPACR write may use a floating-point register, so the
 * first instructions are written out: CPACR |= CP10, CP11 full access. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm volatile(
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        "b reset_c\n");
}

__attribute__((noreturn, used)) void reset_c(void)
{
    /* word copies: the linker script aligns .data and .bss to 4 */
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    main();
    for (;;)
        board_reset();
}

/* Passes the stacked exception frame (MSP or PSP, from EXC_RETURN bit 2). */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm volatile(
        "tst lr, #4\n"
        "ite eq\n"
        "mrseq r0, msp\n"
        "mrsne r0, psp\n"
        "mov r1, lr\n"
        "b fault_c\n");
}

__attribute__((used)) void fault_c(const uint32_t *frame, uint32_t exc_return)
{
    (void)exc_return;
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    board_record_fault(ipsr & 0x1FFu, frame[6]);
    board_reset();
}

void Default_Handler(void)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    board_record_fault(ipsr & 0x1FFu, 0);
    board_reset();
}
