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
 * UART0: CMSDK APB UART (registers as in board_mps2_an386.c) at 0x59303000
 * (Non-secure alias 0x49303000), clocked by the 25 MHz peripheral clock.
 * Interrupts (numbered as the NVIC sees them; the SSE-300's own are 0-31):
 * UART0's transmit and receive lines are 33 and 34 (in that order in
 * QEMU's an547_ppcs); both are enabled and both drain the receiver, so the
 * receive interrupt is taken whichever of the two carries it (the transmit
 * interrupt is never enabled in CTRL); the overruns of all UARTs are ORed
 * on 48. Receiving is interrupt driven into the ring of board_cortexm.c;
 * sending polls TX-full. Cycles: cycles_v7m.c (the ARMv8-M SysTick and DWT
 * are the ARMv7-M ones).
 */
#include "board.h"
#include "cortexm.h"

#define SYSCLK_HZ 32000000u
#define PCLK_HZ 25000000u
#define UART_BAUD 115200u

#define UART0 0x59303000u
#define UART_DATA (UART0 + 0x00u)
#define UART_STATE (UART0 + 0x04u)
#define UART_CTRL (UART0 + 0x08u)
#define UART_INTSTATUS (UART0 + 0x0Cu)
#define UART_BAUDDIV (UART0 + 0x10u)
#define ST_TXFULL 1u
#define ST_RXFULL 2u
#define ST_TXOVR 4u
#define ST_RXOVR 8u
#define CTRL_TXEN 1u
#define CTRL_RXEN 2u
#define CTRL_RXIRQ 8u
#define CTRL_RXOVRIRQ 32u
#define INT_RX 2u
#define INT_RXOVR 8u

#define IRQ_UART0_A 33u
#define IRQ_UART0_B 34u
#define IRQ_UARTOVF 48u

static void uart_drain(void)
{
    while (REG(UART_STATE) & ST_RXFULL)
        cortexm_rx_put((uint8_t)REG(UART_DATA));
}

static void UART0RX_Handler(void)
{
    REG(UART_INTSTATUS) = INT_RX;
    uart_drain();
}

static void UARTOVF_Handler(void)
{
    if (REG(UART_STATE) & ST_RXOVR) {
        cortexm_rx_lost();
        REG(UART_STATE) = ST_RXOVR;
    }
    REG(UART_INTSTATUS) = INT_RXOVR;
    uart_drain();
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
    for (size_t i = 0; i < n; i++) {
        while (REG(UART_STATE) & ST_TXFULL) {
        }
        REG(UART_DATA) = p[i];
    }
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

    REG(UART_CTRL) = 0;
    REG(UART_BAUDDIV) = PCLK_HZ / UART_BAUD;
    REG(UART_STATE) = ST_TXOVR | ST_RXOVR;
    REG(UART_INTSTATUS) = 0xFu;
    REG(UART_CTRL) = CTRL_TXEN | CTRL_RXEN | CTRL_RXIRQ | CTRL_RXOVRIRQ;
    cortexm_enable_irq(IRQ_UART0_A);
    cortexm_enable_irq(IRQ_UART0_B);
    cortexm_enable_irq(IRQ_UARTOVF);
    __asm volatile("cpsie i" ::: "memory");
}
