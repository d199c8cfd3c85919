/*
 * board_mps2_an505.c - the MPS2+ with the AN505 FPGA image (Cortex-M33 with
 * FPU and DSP, the IoT Kit subsystem, 20 MHz), as on the real board and in
 * QEMU's mps2-an505 (hw/arm/mps2-tz.c: an505_raminfo, an505_ppcs,
 * mps2tz_an505_class_init).
 *
 * Memory (targets/cortex-m33.yaml): code in the 4 MB ZBT SSRAM1 at its
 * Secure alias 0x10000000, where the core boots (initial SVTOR 0x10000000;
 * Non-secure alias 0x00000000), data in SSRAM2 + SSRAM3, 2 MB each and
 * adjacent, at their Secure alias 0x38000000 (Non-secure 0x28000000). The
 * core comes out of reset in Secure state with the SAU off, so every
 * address is Secure; the IDAU makes the addresses with bit 28 set the
 * Secure ones, and the firmware uses those, peripherals included.
 *
 * UART0: the CMSDK APB UART (uart_cmsdk.h) at 0x50200000 (Non-secure alias
 * 0x40200000), clocked by the 20 MHz system clock (QEMU: apb_periph_frq =
 * sysclk_frq). Interrupts (numbered as the NVIC sees them; the IoT Kit's
 * own are 0-31): Arm's AN505 numbering has UART0 receive on 32 and
 * transmit on 33, and QEMU 7.2 delivers the receive interrupt on 32 (an
 * image with only 32 enabled answered HELLO, one with only 33 did not),
 * though QEMU's an505_ppcs table labels the pair {32, 33} as (transmit,
 * receive); both are enabled and both drain the receiver, so the receive
 * interrupt is taken whichever of the two carries it (the transmit
 * interrupt is never enabled in CTRL). UART0's combined line is 42, and
 * the overruns of all UARTs are ORed on 47. Cycles: cycles_v7m.c (the
 * ARMv8-M SysTick and DWT are the ARMv7-M ones). Everything but these
 * facts: board_mps.c.
 */
#include "board.h"
#include "board_mps.h"

const mps_board_info mps_board = {
    .name = "mps2-an505",
    .sysclk_hz = 20000000u,
    .uart_clk_hz = 20000000u,
    .uart = 0x50200000u,
    .irqs = {32u, 33u, 47u}, /* UART0's two lines, the overruns */
    .irq_count = 3,
};

/* Interrupt lines 0-63 (after the core's 16 entries): the UART's are
 * below 64; the others are never enabled. */
#define D Default_Handler
#define RX mps_uart_rx_handler
__attribute__((section(".vectors.irq"), used)) const lnn_vector board_irq_vectors[64] = {
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, /* 0-15: the IoT Kit's own */
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, /* 16-31 */
    RX, RX, D, D, D, D, D, D,                       /* 32-39 */
    D, D, D, D, D, D, D, mps_uart_overrun_handler,  /* 40-47 */
    D, D, D, D, D, D, D, D,                         /* 48-55 */
    D, D, D, D, D, D, D, D,                         /* 56-63 */
};
#undef RX
#undef D
