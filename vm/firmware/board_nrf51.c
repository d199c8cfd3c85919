/*
 * board_nrf51.c - an nRF51822 (Cortex-M0 at 16 MHz, no FPU, 256 KB flash at
 * 0x00000000, 16 KB RAM at 0x20000000), with the protocol on UART0 at
 * 0x40002000 on the BBC micro:bit's pins (P0.24 TX, P0.25 RX), as QEMU
 * emulates it as microbit (nRF51 Series Reference Manual v3.0, sections 29
 * UART, 18 TIMER, 13 CLOCK).
 *
 * UART0: tasks STARTRX 0x000, STARTTX 0x008; events RXDRDY 0x108, TXDRDY
 * 0x11C, ERROR 0x124 (a task is started by writing 1, an event cleared by
 * writing 0); INTENSET 0x304 (bit 2 RXDRDY, 9 ERROR); ERRORSRC 0x480 (bit 0
 * overrun, write 1 to clear); ENABLE 0x500 (4); PSELTXD 0x50C, PSELRXD
 * 0x514; RXD 0x518 (reading it takes the byte from the 6-byte receive FIFO),
 * TXD 0x51C; BAUDRATE 0x524. Its interrupt is IRQ 2. Receiving is interrupt
 * driven into the ring of board_cortexm.c; sending waits for TXDRDY after
 * each byte (a byte written before the last one left is lost).
 *
 * Cycles: the nRF51's Cortex-M0 has no SysTick and no DWT cycle counter, so
 * TIMER0 counts them: 32-bit timer mode, prescaler 0 = the 16 MHz clock,
 * which is the core clock; a CAPTURE task copies the count into CC[0].
 * (QEMU gives the M0 a SysTick the part does not have; it is not used.)
 * The clock: the 16 MHz crystal (HFXO) started at boot, as the UART's baud
 * rate wants; QEMU's CLOCK reads every register as 1 (started).
 */
#include "board.h"
#include "cortexm.h"

#define SYSCLK_HZ 16000000u

#define CLOCK 0x40000000u
#define CLOCK_HFCLKSTART (CLOCK + 0x000u)
#define CLOCK_HFCLKSTARTED (CLOCK + 0x100u)

#define UART0 0x40002000u
#define UART_STARTRX (UART0 + 0x000u)
#define UART_STARTTX (UART0 + 0x008u)
#define UART_RXDRDY (UART0 + 0x108u)
#define UART_TXDRDY (UART0 + 0x11Cu)
#define UART_ERROR (UART0 + 0x124u)
#define UART_INTENSET (UART0 + 0x304u)
#define UART_ERRORSRC (UART0 + 0x480u)
#define UART_ENABLE (UART0 + 0x500u)
#define UART_PSELTXD (UART0 + 0x50Cu)
#define UART_PSELRXD (UART0 + 0x514u)
#define UART_RXD (UART0 + 0x518u)
#define UART_TXD (UART0 + 0x51Cu)
#define UART_BAUDRATE (UART0 + 0x524u)
#define BAUD_115200 0x01D7E000u
#define INT_RXDRDY (1u << 2)
#define INT_ERROR (1u << 9)
#define PIN_TX 24u
#define PIN_RX 25u

#define TIMER0 0x40008000u
#define TIMER_START (TIMER0 + 0x000u)
#define TIMER_CLEAR (TIMER0 + 0x00Cu)
#define TIMER_CAPTURE0 (TIMER0 + 0x040u)
#define TIMER_MODE (TIMER0 + 0x504u)
#define TIMER_BITMODE (TIMER0 + 0x508u)
#define TIMER_PRESCALER (TIMER0 + 0x510u)
#define TIMER_CC0 (TIMER0 + 0x540u)

#define IRQ_UART0 2u

static void UART0_Handler(void)
{
    if (REG(UART_ERROR)) {
        REG(UART_ERROR) = 0;
        if (REG(UART_ERRORSRC) & 1u)
            cortexm_rx_lost();
        REG(UART_ERRORSRC) = REG(UART_ERRORSRC);
    }
    /* clear the event before taking the byte: a byte behind it in the FIFO
     * raises the event again */
    while (REG(UART_RXDRDY)) {
        REG(UART_RXDRDY) = 0;
        cortexm_rx_put((uint8_t)REG(UART_RXD));
    }
}

/* The nRF51's 32 interrupt lines (after the core's 16 entries). */
__attribute__((section(".vectors.irq"), used)) const lnn_vector board_irq_vectors[32] = {
    [0] = Default_Handler,  [1] = Default_Handler,  [2] = UART0_Handler,    [3] = Default_Handler,
    [4] = Default_Handler,  [5] = Default_Handler,  [6] = Default_Handler,  [7] = Default_Handler,
    [8] = Default_Handler,  [9] = Default_Handler,  [10] = Default_Handler, [11] = Default_Handler,
    [12] = Default_Handler, [13] = Default_Handler, [14] = Default_Handler, [15] = Default_Handler,
    [16] = Default_Handler, [17] = Default_Handler, [18] = Default_Handler, [19] = Default_Handler,
    [20] = Default_Handler, [21] = Default_Handler, [22] = Default_Handler, [23] = Default_Handler,
    [24] = Default_Handler, [25] = Default_Handler, [26] = Default_Handler, [27] = Default_Handler,
    [28] = Default_Handler, [29] = Default_Handler, [30] = Default_Handler, [31] = Default_Handler,
};

void board_write(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        REG(UART_TXDRDY) = 0;
        REG(UART_TXD) = p[i];
        while (!REG(UART_TXDRDY)) {
        }
    }
}

uint32_t board_cycles(void)
{
    REG(TIMER_CAPTURE0) = 1u;
    return REG(TIMER_CC0);
}

const char *board_cycle_counter(void)
{
    return "timer0";
}

uint32_t board_clock_hz(void)
{
    return SYSCLK_HZ;
}

uint32_t board_entropy(void)
{
    return cortexm_noinit_hash() ^ (board_cycles() * 0x9E3779B1u);
}

const char *board_name(void)
{
    return "nrf51";
}

void board_init(void)
{
    cortexm_boot();

    REG(CLOCK_HFCLKSTART) = 1u;
    for (uint32_t n = 0; n < 100000u && !REG(CLOCK_HFCLKSTARTED); n++) {
    }

    REG(TIMER_MODE) = 0;      /* timer */
    REG(TIMER_BITMODE) = 3u;  /* 32 bits */
    REG(TIMER_PRESCALER) = 0; /* 16 MHz */
    REG(TIMER_CLEAR) = 1u;
    REG(TIMER_START) = 1u;

    REG(UART_PSELTXD) = PIN_TX;
    REG(UART_PSELRXD) = PIN_RX;
    REG(UART_BAUDRATE) = BAUD_115200;
    REG(UART_ENABLE) = 4u;
    REG(UART_RXDRDY) = 0;
    REG(UART_ERROR) = 0;
    REG(UART_INTENSET) = INT_RXDRDY | INT_ERROR;
    REG(UART_STARTTX) = 1u;
    REG(UART_STARTRX) = 1u;
    cortexm_enable_irq(IRQ_UART0);
    __asm volatile("cpsie i" ::: "memory");
}
