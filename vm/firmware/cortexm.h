/*
 * cortexm.h - what the Cortex-M boards share (board_cortexm.c) and the
 * SysTick / DWT cycle counter of the ARMv7-M boards (cycles_v7m.c).
 */
#ifndef LNN_CORTEXM_H
#define LNN_CORTEXM_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))

#define NVIC_ISER(n) (0xE000E100u + 4u * (n))

/* Called first by board_init: latches the last boot's fault record and
 * counts this boot. */
void cortexm_boot(void);

/* A hash of what the RAM above the used part held at power-up (zero under
 * QEMU): the start of the boot entropy. */
uint32_t cortexm_noinit_hash(void);

/* From the board's UART interrupt: a received byte into the ring, or one
 * the UART lost (overrun). */
void cortexm_rx_put(uint8_t b);
void cortexm_rx_lost(void);

/* Enables the interrupt line irq in the NVIC. */
void cortexm_enable_irq(uint32_t irq);

/* ARMv7-M (cycles_v7m.c): DWT CYCCNT when it counts, else SysTick on the
 * core clock extended to 32 bits; the phase of SysTick for the entropy. */
void cycles_v7m_init(void);
uint32_t cycles_v7m_entropy(void);

#endif
