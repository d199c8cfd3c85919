/* crc32.h - CRC-32 (IEEE 802.3, reflected, as zlib's crc32). */
#ifndef LNN_CRC32_H
#define LNN_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues crc over n bytes; start with crc = 0 (zlib convention). */
uint32_t lnn_crc32(uint32_t crc, const void *data, size_t n);

#endif
