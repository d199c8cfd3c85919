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
 * are the ARMv7-M ones).
 */
#include "board.h"
#include "cortexm.h"
#include "uart_cmsdk.h"

#define SYSCLK_HZ 32000000u
#define PCLK_HZ 25000000u
#define UART_BAUD 115200u

#define UART0 0x59303000u
#define IRQ_UART0_A 33u
#define IRQ_UART0_B 34u
#define IRQ_UARTOVF 48u

static void UART0RX_Handler(void)
{
    uart_cmsdk_rx_irq(UART0);
}

static void UARTOVF_Handler(void)
{
    uart_cmsdk_overrun_irq(UART0);
}

/* Interrupt lines 0-63 (after the core's 16 entries): the UART's are
 * below 64; the others are never enabled. */
#define D Default_Handler
__attribute__((section(".vectors.irq"), used)) const lnn_vector board_irq_vectors[64] = {
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, /* 0-15: the SSE-300's own */
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, /* 16-31 */
    D, UART0RX_Handler, UART0RX_Handler, D, D, D, D, D, /* 32-39 */
    D, D, D, D, D, D, D, D,                             /* 40-47 */
    UARTOVF_Handler, D, D, D, D, D, D, D,               /* 48-55 */
    D, D, D, D, D, D, D, D,                             /* 56-63 */
};
#undef D

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
    /* whatever the SRAM held at power-up (zero under QEMU), then the
     * SysTick phase, which depends on how long the boot and the host took */
    return cortexm_noinit_hash() ^ cycles_v7m_entropy();
}

const char *board_name(void)
{
    return "mps3-an547";
}

void board_init(void)
{
    cortexm_boot();
    cycles_v7m_init();

    uart_cmsdk_init(UART0, PCLK_HZ, UART_BAUD);
    cortexm_enable_irq(IRQ_UART0_A);
    cortexm_enable_irq(IRQ_UART0_B);
    cortexm_enable_irq(IRQ_UARTOVF);
    __asm volatile("cpsie i" ::: "memory");
}
