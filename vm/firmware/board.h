/*
 * board.h - what the protocol code needs from a board: a byte stream, a
 * cycle counter, some entropy and a reset. board_mps2_an386.c implements it
 * for the MPS2 AN386 (Cortex-M4F, CMSDK APB UART0), board_stm32f405.c for
 * the STM32F405 (USART1), board_nrf51.c for the nRF51 (Cortex-M0, UART0),
 * with what every Cortex-M shares in board_cortexm.c; board_host.c for a
 * host process on stdin/stdout (the protocol fuzz test).
 */
#ifndef LNN_BOARD_H
#define LNN_BOARD_H

#include <stddef.h>
#include <stdint.h>

#if defined(__arm__) && !defined(__linux__)
#define LNN_NOINIT __attribute__((section(".noinit")))
#else
#define LNN_NOINIT
#endif

/* An entry of the vector table: the core's 16 in startup_cortexm.c, the
 * board's interrupts in its board_<name>.c (section .vectors.irq). */
typedef void (*lnn_vector)(void);
void Default_Handler(void);

void board_init(void);

/* Next received byte (0..255), or -1 if none is waiting. */
int board_getc(void);

/* Sleeps until something may have arrived (an interrupt); may return at once. */
void board_idle(void);

/* Sends n bytes, blocking until the last one is handed to the UART. */
void board_write(const uint8_t *p, size_t n);

/* Free-running cycle count, wrapping at 2^32; differences of two readings are
 * core clock cycles. */
uint32_t board_cycles(void);
const char *board_cycle_counter(void); /* "dwt" or "systick" */
uint32_t board_clock_hz(void);

/* Bits that differ from boot to boot (uninitialised RAM, timers). */
uint32_t board_entropy(void);

const char *board_name(void);

/* This firmware image as it lies in flash (the .bin file's bytes: vectors
 * to the end of .data's initial values), size 0 on a host build. The start
 * may be address 0 (a part with its flash there). */
const uint8_t *board_image(size_t *size);

/* Received bytes lost (receive ring full or UART overrun) since boot. */
uint32_t board_rx_dropped(void);

/* Faults: recorded in RAM that survives the reset, reported by the next boot. */
void board_record_fault(uint32_t exception, uint32_t pc);
/* 1 if the last reset followed a fault (and fills exception and pc). */
int board_last_fault(uint32_t *exception, uint32_t *pc);
uint32_t board_boot_count(void);

__attribute__((noreturn)) void board_reset(void);

#endif
