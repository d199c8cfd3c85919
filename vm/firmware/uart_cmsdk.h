/*
 * uart_cmsdk.h - the Arm CMSDK APB UART (ARM DDI 0479C, section 4.3), the
 * UART of the MPS2 and MPS3 FPGA images (board_mps2_an386.c,
 * board_mps3_an547.c), driven the way the firmware needs it: receiving
 * interrupt driven into the ring of board_cortexm.c (the UART holds one
 * byte), sending by polling TX-full. A board passes its UART's base address
 * and routes its interrupt lines to the two handlers below.
 *
 * Registers (offsets from the base):
 *   0x00 DATA       read: received byte; write: byte to send
 *   0x04 STATE      bit 0 TX buffer full, bit 1 RX buffer full,
 *                   bit 2 TX overrun, bit 3 RX overrun (write 1 to clear)
 *   0x08 CTRL       bit 0 TX enable, 1 RX enable, 2 TX irq, 3 RX irq,
 *                   4 TX overrun irq, 5 RX overrun irq, 6 high-speed test
 *   0x0C INTSTATUS  bit 0 TX, 1 RX, 2 TX overrun, 3 RX overrun (write 1 to clear)
 *   0x10 BAUDDIV    PCLK / baud, at least 16
 */
#ifndef LNN_UART_CMSDK_H
#define LNN_UART_CMSDK_H

#include <stddef.h>
#include <stdint.h>

/* Enabled for sending and receiving at `baud` from a `pclk_hz` peripheral
 * clock, with the receive and receive-overrun interrupts on. */
void uart_cmsdk_init(uint32_t base, uint32_t pclk_hz, uint32_t baud);

/* The receive interrupt: acknowledged, the received byte into the ring. */
void uart_cmsdk_rx_irq(uint32_t base);

/* The overrun interrupt: a lost byte counted (cortexm_rx_lost), acknowledged,
 * what is there drained. */
void uart_cmsdk_overrun_irq(uint32_t base);

void uart_cmsdk_write(uint32_t base, const uint8_t *p, size_t n);

#endif
