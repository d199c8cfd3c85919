/* main.c - lnnedge firmware: bytes from the UART into the protocol engine. */
#include "board.h"
#include "device.h"

int main(void)
{
    board_init();
    lnn_dev_init();
    for (;;) {
        const int c = board_getc();
        if (c < 0)
            board_idle();
        else
            lnn_dev_byte((uint8_t)c);
    }
}
