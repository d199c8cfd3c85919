/*
 * board_cortexm.c - what every Cortex-M board shares: the fault record and
 * boot count that survive a reset (in .noinit), the reset itself
 * (AIRCR.SYSRESETREQ, ARMv6-M and ARMv7-M alike), the RAM hash that
 * starts the boot entropy, and the receive ring: the board's UART interrupt
 * puts bytes in (cortexm_rx_put), the main loop takes them out (board_getc),
 * sleeping in board_idle while it is empty.
 */
#include "board.h"
#include "cortexm.h"

#define SCB_AIRCR 0xE000ED0Cu

/* ---- receive ring (filled by the RX interrupt, emptied by the main loop) */

#ifndef LNN_RX_RING
#define LNN_RX_RING 16384u
#endif
_Static_assert((LNN_RX_RING & (LNN_RX_RING - 1u)) == 0, "LNN_RX_RING must be a power of two");

static uint8_t rx_ring[LNN_RX_RING];
static volatile uint32_t rx_head; /* written by the ISR only */
static volatile uint32_t rx_tail; /* written by the main loop only */
static volatile uint32_t rx_dropped;

void cortexm_rx_put(uint8_t b)
{
    const uint32_t head = rx_head;
    if (head - rx_tail < LNN_RX_RING) {
        rx_ring[head & (LNN_RX_RING - 1u)] = b;
        __asm volatile("" ::: "memory"); /* the byte before the index that publishes it */
        rx_head = head + 1u;
    } else {
        rx_dropped++;
    }
}

void cortexm_rx_lost(void)
{
    rx_dropped++;
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

uint32_t board_rx_dropped(void)
{
    return rx_dropped;
}

/* ---- faults, boots, reset ------------------------------------------------ */
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

void cortexm_boot(void)
{
    board_last_fault(&(uint32_t){0}, &(uint32_t){0}); /* latch it before reuse */
    if (fault_rec.boots_check == ~fault_rec.boots)
        boot_count = fault_rec.boots + 1u;
    else
        boot_count = 1u;
    fault_rec.boots = boot_count;
    fault_rec.boots_check = ~boot_count;
}

extern const uint8_t __image_start[], __image_end[];

const uint8_t *board_image(size_t *size)
{
    *size = (size_t)(__image_end - __image_start);
    return __image_start;
}

extern uint32_t __noinit_start, __noinit_end;

uint32_t cortexm_noinit_hash(void)
{
    uint32_t h = 0x811C9DC5u;
    const uint32_t *p = &__noinit_start;
    for (uint32_t i = 0; i < 1024u && p + i < &__noinit_end; i++)
        h = (h ^ p[i]) * 0x01000193u;
    return h;
}

void cortexm_enable_irq(uint32_t irq)
{
    REG(NVIC_ISER(irq / 32u)) = 1u << (irq % 32u);
}
