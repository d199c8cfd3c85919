/*
 * board_mps2_an386.c - the MPS2+ AN386 board (Cortex-M4F at 25 MHz), as on
 * the real FPGA image and in QEMU's mps2-an386.
 *
 * UART0: CMSDK APB UART at 0x40004000 (ARM DDI 0479C, section 4.3):
 *   0x00 DATA       read: received byte; write: byte to send
 *   0x04 STATE      bit 0 TX buffer full, bit 1 RX buffer full,
 *                   bit 2 TX overrun, bit 3 RX overrun (write 1 to clear)
 *   0x08 CTRL       bit 0 TX enable, 1 RX enable, 2 TX irq, 3 RX irq,
 *                   4 TX overrun irq, 5 RX overrun irq, 6 high-speed test
 *   0x0C INTSTATUS  bit 0 TX, 1 RX, 2 TX overrun, 3 RX overrun (write 1 to clear)
 *   0x10 BAUDDIV    PCLK / baud, at least 16
 * Interrupts (AN386): UART0 RX = IRQ 0, TX = IRQ 1, overruns of UART0-2 = IRQ 12.
 * Receiving is interrupt driven into the ring of board_cortexm.c (the UART
 * holds one byte); sending polls TX-full. Cycles: cycles_v7m.c.
 */
#include "board.h"
#include "cortexm.h"

#define SYSCLK_HZ 25000000u
#define UART_BAUD 115200u

#define UART0 0x40004000u
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

#define IRQ_UART0RX 0u
#define IRQ_UARTOVF 12u

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
    /* whatever the SSRAM held at power-up (zero under QEMU), then the
     * SysTick phase, which depends on how long the boot and the host took */
    return cortexm_noinit_hash() ^ cycles_v7m_entropy();
}

const char *board_name(void)
{
    return "mps2-an386";
}

void board_init(void)
{
    cortexm_boot();
    cycles_v7m_init();

    REG(UART_CTRL) = 0;
    REG(UART_BAUDDIV) = SYSCLK_HZ / UART_BAUD;
    REG(UART_STATE) = ST_TXOVR | ST_RXOVR;
    REG(UART_INTSTATUS) = 0xFu;
    REG(UART_CTRL) = CTRL_TXEN | CTRL_RXEN | CTRL_RXIRQ | CTRL_RXOVRIRQ;
    cortexm_enable_irq(IRQ_UART0RX);
    cortexm_enable_irq(IRQ_UARTOVF);
    __asm volatile("cpsie i" ::: "memory");
}
