/*
 * board_posix.c - what the two host boards (board_host.c: a process on a
 * pipe, board_lib.c: the engine as a ctypes library) share: a 25 MHz cycle
 * count from the monotonic clock, entropy, and a board that never drops a
 * byte, never faults, never reboots and has no flash image.
 */
#define _POSIX_C_SOURCE 200809L

#include <time.h>
#include <unistd.h>

#include "board.h"

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

const uint8_t *board_image(size_t *size)
{
    *size = 0;
    return NULL;
}

uint32_t board_rx_dropped(void)
{
    return 0;
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
