/*
 * board_lib.c - the board interface inside a host process: with device.c
 * and the VM it makes liblnnedge-fw.so (`make hostlib`), the firmware's
 * protocol engine as a library that Python drives through ctypes: blocks of
 * received bytes in (lnn_lib_feed), everything the device sent out
 * (lnn_lib_take). No pipe or pty between, so the serial corruption campaign
 * (python/lnnedge/reliability/serial_frames.py) puts 10^5 damaged frames
 * through the real engine in seconds. One engine per process.
 */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "board.h"
#include "device.h"

/* What the device sent since the last lnn_lib_take: several answers and
 * NAKs of the largest frame fit; beyond that bytes are counted as lost, as
 * a UART whose receiver is not reading would lose them. */
static uint8_t sent[1u << 20];
static size_t sent_n;
static size_t sent_lost;

void board_write(const uint8_t *p, size_t n)
{
    const size_t room = sizeof sent - sent_n;
    const size_t k = n < room ? n : room;
    memcpy(sent + sent_n, p, k);
    sent_n += k;
    sent_lost += n - k;
}

const char *board_name(void)
{
    return "host-library";
}

/* ---- the library's own entry points (ctypes) ------------------------------ */

/* Boots the engine: its BOOT frame is the first thing lnn_lib_take returns. */
void lnn_lib_boot(void)
{
    lnn_dev_init();
}

/* n received bytes, in order. */
void lnn_lib_feed(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lnn_dev_byte(p[i]);
}

/* Copies up to cap bytes of what the device sent into dst (oldest first),
 * forgets them and returns how many; *lost gets the bytes dropped because
 * nobody took them in time (and is reset). */
size_t lnn_lib_take(uint8_t *dst, size_t cap, size_t *lost)
{
    const size_t k = sent_n < cap ? sent_n : cap;
    memcpy(dst, sent, k);
    memmove(sent, sent + k, sent_n - k);
    sent_n -= k;
    *lost = sent_lost;
    sent_lost = 0;
    return k;
}
