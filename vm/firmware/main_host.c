/* main_host.c - lnnedge-fw-host: the protocol engine on stdin/stdout. */
#include <stdio.h>

#include "board.h"
#include "device.h"

int main(void)
{
    board_init();
    lnn_dev_init();
    int c;
    while ((c = board_getc()) != EOF)
        lnn_dev_byte((uint8_t)c);
    return 0;
}
