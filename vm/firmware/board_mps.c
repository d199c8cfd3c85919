/*
 * board_mps.c - board.h for the Arm MPS2 / MPS3 FPGA images (board_mps.h):
 * the facts that differ are the image's mps_board.
 */
#include "board_mps.h"

#include "board.h"
#include "cortexm.h"
#include "uart_cmsdk.h"

#define UART_BAUD 115200u

void mps_uart_rx_handler(void)
{
    uart_cmsdk_rx_irq(mps_board.uart);
}

void mps_uart_overrun_handler(void)
{
    uart_cmsdk_overrun_irq(mps_board.uart);
}

void board_write(const uint8_t *p, size_t n)
{
    uart_cmsdk_write(mps_board.uart, p, n);
}

uint32_t board_clock_hz(void)
{
    return mps_board.sysclk_hz;
}

uint32_t board_entropy(void)
{
    /* whatever the RAM held at power-up (zero under QEMU), then the SysTick
     * phase, which depends on how long the boot and the host took */
    return cortexm_noinit_hash() ^ cycles_v7m_entropy();
}

const char *board_name(void)
{
    return mps_board.name;
}

void board_init(void)
{
    cortexm_boot();
    cycles_v7m_init();

    uart_cmsdk_init(mps_board.uart, mps_board.uart_clk_hz, UART_BAUD);
    for (uint32_t i = 0; i < mps_board.irq_count; i++)
        cortexm_enable_irq(mps_board.irqs[i]);
    __asm volatile("cpsie i" ::: "memory");
}
