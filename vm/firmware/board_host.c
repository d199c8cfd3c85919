/*
 * board_host.c - the board interface on a POSIX host: bytes from stdin,
 * frames to stdout. With main_host.c it makes lnnedge-fw-host, the
 * firmware's protocol engine as a host program, which the tests drive
 * under AddressSanitizer and UndefinedBehaviorSanitizer with noise and
 * damaged frames (`make host`).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

void board_init(void)
{
}

int board_getc(void)
{
    return getchar();
}

void board_idle(void)
{
}

void board_write(const uint8_t *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) != n)
        exit(2);
    fflush(stdout);
}

uint32_t board_cycles(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return (uint32_t)(ns / 40u); /* 25 MHz */
}

const char *board_cycle_counter(void)
{
    return "host-clock";
}

uint32_t board_clock_hz(void)
{
    return 25000000u;
}

uint32_t board_entropy(void)
{
    return (uint32_t)getpid() * 0x9E3779B1u ^ board_cycles();
}

const char *board_name(void)
{
    return "host";
}

uint32_t board_rx_dropped(void)
{
    return 0;
}

void board_record_fault(uint32_t exception, uint32_t pc)
{
    (void)exception;
    (void)pc;
}

int board_last_fault(uint32_t *exception, uint32_t *pc)
{
    *exception = 0;
    *pc = 0;
    return 0;
}

uint32_t board_boot_count(void)
{
    return 1;
}

void board_reset(void)
{
    exit(3);
}
