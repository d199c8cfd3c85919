/*
 * device.h - the device side of the lnnedge serial protocol (vm/PROTOCOL.md),
 * independent of the board: feed it received bytes, it answers through
 * board_write. No allocation; every buffer is static and bounded.
 */
#ifndef LNN_DEVICE_H
#define LNN_DEVICE_H

#include <stddef.h>
#include <stdint.h>

/* Sends the BOOT frame. Call once after board_init. */
void lnn_dev_init(void);

/* One received byte. Frames are handled (and answered) when their closing
 * 0x00 arrives; anything else on the line is dropped or NAKed. */
void lnn_dev_byte(uint8_t b);

/* Called, when set, with every request the engine is about to execute (it
 * passed the checks of PROTOCOL.md section 3 and is neither a repeat of the
 * last request nor a replay): the decoded frame, header to CRC. NULL on the
 * boards; the host library sets it so that the corruption campaign
 * (python/lnnedge/reliability/serial_frames.py) sees exactly what ran. */
extern void (*lnn_dev_on_request)(const uint8_t *frame, size_t n);

#endif
