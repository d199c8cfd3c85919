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
 * Receiving is interrupt driven into a ring buffer (the UART holds one byte);
 * sending polls TX-full.
 *
 * Cycle counter: DWT CYCCNT when the core has a working one (the real
 * Cortex-M4 does); QEMU 7.2 does not model the DWT (its registers read as
 * zero), so the firmware checks at boot that CYCCNT advances and otherwise
 * uses SysTick on the core clock, counting down from 0xFFFFFF with that
 * reload, extended to 32 bits by counting wraps in its interrupt.
 */
#include <string.h>

#include "board.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

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

#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define NVIC_ISER0 0xE000E100u
#define NVIC_IPR(n) (0xE000E400u + (n))
#define SCB_AIRCR 0xE000ED0Cu
#define SCB_DEMCR 0xE000EDFCu
#define DWT_CTRL 0xE0001000u
#define DWT_CYCCNT 0xE0001004u

#define IRQ_UART0RX 0u
#define IRQ_UARTOVF 12u

/* ---- receive ring (filled by the RX interrupt, emptied by the main loop) */

#ifndef LNN_RX_RING
#define LNN_RX_RING 16384u
#endif
_Static_assert((LNN_RX_RING & (LNN_RX_RING - 1u)) == 0, "LNN_RX_RING must be a power of two");

static uint8_t rx_ring[LNN_RX_RING];
static volatile uint32_t rx_head; /* written by the ISR only */
static volatile uint32_t rx_tail; /* written by the main loop only */
static volatile uint32_t rx_dropped;

static void uart_drain(void)
{
    while (REG(UART_STATE) & ST_RXFULL) {
        const uint8_t b = (uint8_t)REG(UART_DATA);
        const uint32_t head = rx_head;
        if (head - rx_tail < LNN_RX_RING) {
            rx_ring[head & (LNN_RX_RING - 1u)] = b;
            __asm volatile("" ::: "memory"); /* the byte before the index that publishes it */
            rx_head = head + 1u;
        } else {
            rx_dropped++;
        }
    }
}

void UART0RX_Handler(void)
{
    REG(UART_INTSTATUS) = INT_RX;
    uart_drain();
}

void UARTOVF_Handler(void)
{
    if (REG(UART_STATE) & ST_RXOVR) {
        rx_dropped++;
        REG(UART_STATE) = ST_RXOVR;
    }
    REG(UART_INTSTATUS) = INT_RXOVR;
    uart_drain();
}

int board_getc(void)
{
    const uint32_t tail = rx_tail;
    if (tail == rx_head)
        return -1;
    __asm volatile("" ::: "memory"); /* read the byte only after seeing the index */
    const uint8_t b = rx_ring[tail & (LNN_RX_RING - 1u)];
    rx_tail = tail + 1u;
    return b;
}

void board_idle(void)
{
    /* WFI with interrupts masked still wakes on a pending interrupt, so a
     * byte arriving between the check and the WFI is not slept through. */
    __asm volatile("cpsid i" ::: "memory");
    if (rx_tail == rx_head)
        __asm volatile("dsb\n wfi" ::: "memory");
    __asm volatile("cpsie i\n isb" ::: "memory");
}

void board_write(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (REG(UART_STATE) & ST_TXFULL) {
        }
        REG(UART_DATA) = p[i];
    }
}

uint32_t board_rx_dropped(void)
{
    return rx_dropped;
}

/* ---- cycle counter ------------------------------------------------------- */

static int use_dwt;
static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    systick_wraps++;
}

static uint32_t systick_cycles(void)
{
    uint32_t wraps, val;
    do {
        wraps = systick_wraps;
        val = REG(SYST_CVR);
    } while (wraps != systick_wraps);
    /* counts down from 0xFFFFFF: 2^24 cycles per wrap */
    return (wraps << 24) + (0xFFFFFFu - val);
}

uint32_t board_cycles(void)
{
    return use_dwt ? REG(DWT_CYCCNT) : systick_cycles();
}

const char *board_cycle_counter(void)
{
    return use_dwt ? "dwt" : "systick";
}

uint32_t board_clock_hz(void)
{
    return SYSCLK_HZ;
}

static void cycles_init(void)
{
    /* SysTick always runs: it also extends the entropy */
    REG(SYST_RVR) = 0xFFFFFFu;
    REG(SYST_CVR) = 0;
    REG(SYST_CSR) = 7u; /* enable, interrupt on wrap, core clock */

    REG(SCB_DEMCR) |= 1u << 24; /* TRCENA */
    const uint32_t ctrl = REG(DWT_CTRL);
    if (ctrl & (1u << 25)) /* NOCYCCNT */
        return;
    REG(DWT_CYCCNT) = 0;
    REG(DWT_CTRL) = ctrl | 1u; /* CYCCNTENA */
    const uint32_t a = REG(DWT_CYCCNT);
    for (volatile int i = 0; i < 100; i++) {
    }
    use_dwt = REG(DWT_CYCCNT) != a;
}

/* ---- reset, faults, entropy --------------------------------------------- */

#define FAULT_MAGIC 0x4C4E4E46u /* "LNNF" */

typedef struct {
    uint32_t magic, exception, pc, check, boots, boots_check;
} fault_record;

static LNN_NOINIT fault_record fault_rec;
static uint32_t boot_count;

void board_record_fault(uint32_t exception, uint32_t pc)
{
    fault_rec.exception = exception;
    fault_rec.pc = pc;
    fault_rec.check = ~(exception ^ pc);
    fault_rec.magic = FAULT_MAGIC;
}

int board_last_fault(uint32_t *exception, uint32_t *pc)
{
    static int known, had;
    static uint32_t exc, where;
    if (!known) {
        known = 1;
        if (fault_rec.magic == FAULT_MAGIC && fault_rec.check == ~(fault_rec.exception ^ fault_rec.pc)) {
            had = 1;
            exc = fault_rec.exception;
            where = fault_rec.pc;
        }
        fault_rec.magic = 0;
    }
    *exception = exc;
    *pc = where;
    return had;
}

uint32_t board_boot_count(void)
{
    return boot_count;
}

void board_reset(void)
{
    __asm volatile("dsb" ::: "memory");
    REG(SCB_AIRCR) = (0x05FAu << 16) | (1u << 2); /* VECTKEY, SYSRESETREQ */
    __asm volatile("dsb" ::: "memory");
    for (;;) {
    }
}

extern uint32_t __noinit_start, __noinit_end;

uint32_t board_entropy(void)
{
    /* whatever the SSRAM held at power-up (zero under QEMU), then the
     * SysTick phase, which depends on how long the boot and the host took */
    uint32_t h = 0x811C9DC5u;
    const uint32_t *p = &__noinit_start;
    for (uint32_t i = 0; i < 1024u && p + i < &__noinit_end; i++)
        h = (h ^ p[i]) * 0x01000193u;
    h ^= REG(SYST_CVR) * 0x9E3779B1u;
    h ^= REG(DWT_CYCCNT);
    return h;
}

const char *board_name(void)
{
    return "mps2-an386";
}

void board_init(void)
{
    board_last_fault(&(uint32_t){0}, &(uint32_t){0}); /* latch it before reuse */
    if (fault_rec.boots_check == ~fault_rec.boots)
        boot_count = fault_rec.boots + 1u;
    else
        boot_count = 1u;
    fault_rec.boots = boot_count;
    fault_rec.boots_check = ~boot_count;

    cycles_init();

    REG(UART_CTRL) = 0;
    REG(UART_BAUDDIV) = SYSCLK_HZ / UART_BAUD;
    REG(UART_STATE) = ST_TXOVR | ST_RXOVR;
    REG(UART_INTSTATUS) = 0xFu;
    REG(UART_CTRL) = CTRL_TXEN | CTRL_RXEN | CTRL_RXIRQ | CTRL_RXOVRIRQ;
    REG(NVIC_ISER0) = (1u << IRQ_UART0RX) | (1u << IRQ_UARTOVF);
    __asm volatile("cpsie i" ::: "memory");
}
