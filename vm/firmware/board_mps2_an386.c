/*
 * board_mps2_an386.c - the MPS2+ AN386 board (Cortex-M4F at 25 MHz), as on
 * the real FPGA image and in QEMU's mps2-an386; also the AN500 image
 * (Cortex-M7, BOARD=mps2_an500), which QEMU's mps2.c builds with the AN386's
 * peripherals, addresses and interrupts (run under QEMU only).
 *
 * UART0: the CMSDK APB UART (uart_cmsdk.h) at 0x40004000.
 * Interrupts (AN386): UART0 RX = IRQ 0, TX = IRQ 1, overruns of UART0-2 = IRQ 12.
 * Cycles: cycles_v7m.c. Everything but these facts: board_mps.c.
 */
#include "board.h"
#include "board_mps.h"

#ifndef LNN_MPS2_IMAGE
#define LNN_MPS2_IMAGE "mps2-an386"
#endif

const mps_board_info mps_board = {
    .name = LNN_MPS2_IMAGE,
    .sysclk_hz = 25000000u,
    .uart_clk_hz = 25000000u,
    .uart = 0x40004000u,
    .irqs = {0u, 12u}, /* UART0 receive, the overruns */
    .irq_count = 2,
};

/* The AN386's 32 interrupt lines (after the core's 16 entries). */
#define D Default_Handler
__attribute__((section(".vectors.irq"), used)) const lnn_vector board_irq_vectors[32] = {
    mps_uart_rx_handler, D, D, D, D, D, D, D, D, D, D, D, mps_uart_overrun_handler, D, D, D, /* 0-15 */
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,                                         /* 16-31 */
};
#undef D
