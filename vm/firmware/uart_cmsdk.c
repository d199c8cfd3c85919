/* uart_cmsdk.c - the CMSDK APB UART (registers in uart_cmsdk.h). */
#include "uart_cmsdk.h"

#include "cortexm.h"

#define DATA 0x00u
#define STATE 0x04u
#define CTRL 0x08u
#define INTSTATUS 0x0Cu
#define BAUDDIV 0x10u
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

static void drain(uint32_t base)
{
    while (REG(base + STATE) & ST_RXFULL)
        cortexm_rx_put((uint8_t)REG(base + DATA));
}

void uart_cmsdk_init(uint32_t base, uint32_t pclk_hz, uint32_t baud)
{
    REG(base + CTRL) = 0;
    REG(base + BAUDDIV) = pclk_hz / baud;
    REG(base + STATE) = ST_TXOVR | ST_RXOVR;
    REG(base + INTSTATUS) = 0xFu;
    REG(base + CTRL) = CTRL_TXEN | CTRL_RXEN | CTRL_RXIRQ | CTRL_RXOVRIRQ;
}

void uart_cmsdk_rx_irq(uint32_t base)
{
    REG(base + INTSTATUS) = INT_RX;
    drain(base);
}

void uart_cmsdk_overrun_irq(uint32_t base)
{
    if (REG(base + STATE) & ST_RXOVR) {
        cortexm_rx_lost();
        REG(base + STATE) = ST_RXOVR;
    }
    REG(base + INTSTATUS) = INT_RXOVR;
    drain(base);
}

void uart_cmsdk_write(uint32_t base, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (REG(base + STATE) & ST_TXFULL) {
        }
        REG(base + DATA) = p[i];
    }
}
