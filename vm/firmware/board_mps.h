/*
 * board_mps.h - what tells the Arm MPS2 / MPS3 FPGA images apart for
 * board_mps.c, which implements board.h for all of them: the CMSDK APB UART0
 * (uart_cmsdk.c) at the image's address, with its interrupt lines, the
 * clocks, SysTick / DWT cycles (cycles_v7m.c). Each image's file
 * (board_mps2_an386.c, board_mps2_an505.c, board_mps3_an547.c) defines
 * mps_board and its interrupt vectors, whose UART entries are the handlers
 * below.
 */
#ifndef LNN_BOARD_MPS_H
#define LNN_BOARD_MPS_H

#include <stdint.h>

typedef struct {
    const char *name;       /* board_name(): the FPGA image, e.g. "mps2-an386" */
    uint32_t sysclk_hz;     /* the core clock */
    uint32_t uart_clk_hz;   /* the UART's peripheral clock */
    uint32_t uart;          /* UART0's base address */
    uint8_t irqs[3];        /* the UART0 lines board_init enables (receive, ...) */
    uint8_t irq_count;
} mps_board_info;

extern const mps_board_info mps_board;

/* UART0's receive interrupt: the byte into the ring */
void mps_uart_rx_handler(void);
/* the UARTs' overrun interrupt: a lost byte counted */
void mps_uart_overrun_handler(void);

#endif
