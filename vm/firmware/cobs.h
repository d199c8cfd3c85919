/*
 * cobs.h - Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999).
 *
 * Encoding removes every 0x00 from a block so that 0x00 can delimit frames:
 * the block is cut at each zero and before each run of 254 non-zero bytes;
 * each piece is sent as one code byte (its length + 1) followed by its
 * non-zero bytes, and a zero is implied after every piece whose code is
 * below 0xFF, except after the last one.
 */
#ifndef LNN_COBS_H
#define LNN_COBS_H

#include <stddef.h>
#include <stdint.h>

/* Encodes n bytes of src into dst (capacity cap, at least LNN_COBS_MAX(n)).
 * Returns the encoded length (never contains 0x00), or 0 if cap is short. */
size_t lnn_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

/* Decodes n encoded bytes (no 0x00 among them) into dst (capacity cap).
 * Returns the decoded length, or (size_t)-1 on malformed input (a 0x00
 * byte, a code running past the end) or when cap is short. dst may be src
 * (decoding in place): a decoded byte never lands after the encoded byte
 * being read. */
size_t lnn_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

#endif
