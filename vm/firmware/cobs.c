/* cobs.c - COBS encoder and decoder, bounds-checked (see cobs.h). */
#include "cobs.h"

size_t lnn_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    if (cap == 0)
        return 0;
    size_t out = 1;       /* next free byte */
    size_t code_at = 0;   /* where the current piece's code byte goes */
    uint8_t code = 1;     /* current piece's length + 1 */
    for (size_t i = 0; i < n; i++) {
        if (src[i] == 0) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
            if (out > cap)
                return 0;
            continue;
        }
        if (out >= cap)
            return 0;
        dst[out++] = src[i];
        if (++code == 0xFF) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
            if (out > cap && i + 1 < n)
                return 0;
        }
    }
    if (code_at >= cap)
        return 0;
    dst[code_at] = code;
    return out;
}

size_t lnn_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    size_t in = 0, out = 0;
    while (in < n) {
        const uint8_t code = src[in++];
        if (code == 0)
            return (size_t)-1;
        const size_t run = (size_t)code - 1u;
        if (run > n - in || run > cap - out)
            return (size_t)-1;
        for (size_t k = 0; k < run; k++) {
            const uint8_t b = src[in++];
            if (b == 0)
                return (size_t)-1;
            dst[out++] = b;
        }
        /* an implied zero follows every piece shorter than 254, except the last */
        if (code != 0xFF && in < n) {
            if (out >= cap)
                return (size_t)-1;
            dst[out++] = 0;
        }
    }
    return out;
}
