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

const char *board_name(void)
{
    return "host";
}

void board_record_fault(uint32_t exception, uint32_t pc)
{
    (void)exception;
    (void)pc;
}

void board_reset(void)
{
    exit(3);
}
