/*
 * board_mps2_an386.c - the MPS2+ AN386 board (Cortex-M4F at 25 MHz), as on
 * the real FPGA image and in QEMU's mps2-an386; also the AN500 image
 * (Cortex-M7, BOARD=mps2_an500), which QEMU's mps2.c builds with the AN386's
 * peripherals, addresses and interrupts (run under QEMU only).
 *
 * UART0: the CMSDK APB UART (uart_cmsdk.h) at 0x40004000.
 * Interrupts (AN386): UART0 RX = IRQ 0, TX = IRQ 1, overruns of UART0-2 = IRQ 12.
 * Cycles: cycles_v7m.c.
 */
#include "board.h"
#include "cortexm.h"
#include "uart_cmsdk.h"

#ifndef LNN_MPS2_IMAGE
#define LNN_MPS2_IMAGE "mps2-an386"
#endif

#define SYSCLK_HZ 25000000u
#define UART_BAUD 115200u

#define UART0 0x40004000u
#define IRQ_UART0RX 0u
#define IRQ_UARTOVF 12u

static void UART0RX_Handler(void)
{
    uart_cmsdk_rx_irq(UART0);
}

static void UARTOVF_Handler(void)
{
    uart_cmsdk_overrun_irq(UART0);
}

/* The AN386's 32 interrupt lines (after the core's 16 entries). */
__attribute__((section(".vectors.irq"), used)) const lnn_vector board_irq_vectors[32] = {
    [0] = UART0RX_Handler,  [1] = Default_Handler,  [2] = Default_Handler,  [3] = Default_Handler,
    [4] = Default_Handler,  [5] = Default_Handler,  [6] = Default_Handler,  [7] = Default_Handler,
    [8] = Default_Handler,  [9] = Default_Handler,  [10] = Default_Handler, [11] = Default_Handler,
    [12] = UARTOVF_Handler, [13] = Default_Handler, [14] = Default_Handler, [15] = Default_Handler,
    [16] = Default_Handler, [17] = Default_Handler, [18] = Default_Handler, [19] = Default_Handler,
    [20] = Default_Handler, [21] = Default_Handler, [22] = Default_Handler, [23] = Default_Handler,
    [24] = Default_Handler, [25] = Default_Handler, [26] = Default_Handler, [27] = Default_Handler,
    [28] = Default_Handler, [29] = Default_Handler, [30] = Default_Handler, [31] = Default_Handler,
};

void board_write(const uint8_t *p, size_t n)
{
    uart_cmsdk_write(UART0, p, n);
}

uint32_t board_clock_hz(void)
{
    return SYSCLK_HZ;
}

uint32_t board_entropy(void)
{
    /* whatever the SSRAM held at power-up (zero under QEMU), then the
     * SysTick phase, which depends on how long the boot and the host took */
    return cortexm_noinit_hash() ^ cycles_v7m_entropy();
}

const char *board_name(void)
{
    return LNN_MPS2_IMAGE;
}

void board_init(void)
{
    cortexm_boot();
    cycles_v7m_init();

    uart_cmsdk_init(UART0, SYSCLK_HZ, UART_BAUD);
    cortexm_enable_irq(IRQ_UART0RX);
    cortexm_enable_irq(IRQ_UARTOVF);
    __asm volatile("cpsie i" ::: "memory");
}
