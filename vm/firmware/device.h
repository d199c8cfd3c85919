/*
 * device.h - the device side of the lnnedge serial protocol (vm/PROTOCOL.md),
 * independent of the board: feed it received bytes, it answers through
 * board_write. No allocation; every buffer is static and bounded.
 */
#ifndef LNN_DEVICE_H
#define LNN_DEVICE_H

#include <stdint.h>

/* Sends the BOOT frame. Call once after board_init. */
void lnn_dev_init(void);

/* One received byte. Frames are handled (and answered) when their closing
 * 0x00 arrives; anything else on the line is dropped or NAKed. */
void lnn_dev_byte(uint8_t b);

#endif
