/*
 * board_mps3_an547.c - the MPS3 with the AN547 FPGA image (Cortex-M55 with
 * MVE and FPU, Corstone SSE-300, 32 MHz), as on the real board and in QEMU's
 * mps3-an547 (hw/arm/mps2-tz.c: an547_raminfo, an547_ppcs).
 *
 * Memory (targets/cortex-m55.yaml): code in the 512 KB ITCM at 0x00000000
 * (where the core boots: initial SVTOR 0), data in the 4 MB SRAM at
 * 0x21000000. The core comes out of reset in Secure state with the SAU off,
 * so every address is Secure; the peripherals are reached at their Secure
 * aliases (bit 28 set).
 *
 * UART0: the CMSDK APB UART (uart_cmsdk.h) at 0x59303000
 * (Non-secure alias 0x49303000), clocked by the 25 MHz peripheral clock.
 * Interrupts (numbered as the NVIC sees them; the SSE-300's own are 0-31):
 * UART0's transmit and receive lines are 33 and 34 (in that order in
 * QEMU's an547_ppcs); both are enabled and both drain the receiver, so the
 * receive interrupt is taken whichever of the two carries it (the transmit
 * interrupt is never enabled in CTRL); the overruns of all UARTs are ORed
 * on 48. Cycles: cycles_v7m.c (the ARMv8-M SysTick and DWT
 * are the ARMv7-M ones). Everything but these facts: board_mps.c.
 */
#include "board.h"
#include "board_mps.h"

const mps_board_info mps_board = {
    .name = "mps3-an547",
    .sysclk_hz = 32000000u,
    .uart_clk_hz = 25000000u,
    .uart = 0x59303000u,
    .irqs = {33u, 34u, 48u}, /* UART0's two lines, the overruns */
    .irq_count = 3,
};

/* Interrupt lines 0-63 (after the core's 16 entries): the UART's are
 * below 64; the others are never enabled. */
#define D Default_Handler
#define RX mps_uart_rx_handler
__attribute__((section(".vectors.irq"), used)) const lnn_vector board_irq_vectors[64] = {
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, /* 0-15: the SSE-300's own */
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, /* 16-31 */
    D, RX, RX, D, D, D, D, D,                       /* 32-39 */
    D, D, D, D, D, D, D, D,                         /* 40-47 */
    mps_uart_overrun_handler, D, D, D, D, D, D, D,  /* 48-55 */
    D, D, D, D, D, D, D, D,                         /* 56-63 */
};
#undef RX
#undef D
