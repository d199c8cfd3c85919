/*
 * crc32.c - CRC-32 IEEE 802.3 (polynomial 0xEDB88320 reflected, initial and
 * final XOR 0xFFFFFFFF), identical to zlib's crc32(). Four bits per step
 * through a 16-entry table: small enough for a microcontroller and fast
 * enough to check a model once at load time.
 */
#include "crc32.h"

/* lnn_crc_nibble[i] = CRC register after shifting nibble i through. */
static const uint32_t lnn_crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu,
    0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t lnn_crc32(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ lnn_crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ lnn_crc_nibble[crc & 15u];
    }
    return ~crc;
}
