/*
 * proto.h - constants and frame layout of the lnnedge serial protocol,
 * generated from lnn_proto.def (see vm/PROTOCOL.md).
 *
 * Frame before COBS (all little-endian):
 *   0  u8  type      FRAME code; answers: request | LNN_P_OK_BIT
 *   1  u8  flags     0
 *   2  u16 seq       chosen by the host, echoed by the device
 *   4  u32 nonce     session nonce (0 until the first HELLO after boot)
 *   8  u16 len       payload bytes
 *   10 u16 reserved  0
 *   12 payload[len]
 *   12+len u32 crc   CRC-32 (IEEE, as zlib) of bytes [0, 12 + len)
 * On the line: 0x00, COBS(frame), 0x00.
 */
#ifndef LNN_PROTO_H
#define LNN_PROTO_H

#include <stddef.h>
#include <stdint.h>

enum {
#define PARAM(name, value) LNN_P_##name = value,
#define FRAME(name, code, dir, meaning)
#define NAKR(name, code, meaning)
#define PERR(name, code, meaning)
#define DETAIL(name, code, wording)
#include "lnn_proto.def"
#undef PARAM
#undef FRAME
#undef NAKR
#undef PERR
#undef DETAIL
};

typedef enum {
#define PARAM(name, value)
#define FRAME(name, code, dir, meaning) LNN_F_##name = code,
#define NAKR(name, code, meaning)
#define PERR(name, code, meaning)
#define DETAIL(name, code, wording)
#include "lnn_proto.def"
#undef PARAM
#undef FRAME
#undef NAKR
#undef PERR
#undef DETAIL
} lnn_frame_type;

typedef enum {
#define PARAM(name, value)
#define FRAME(name, code, dir, meaning)
#define NAKR(name, code, meaning) LNN_NAK_##name = code,
#define PERR(name, code, meaning)
#define DETAIL(name, code, wording)
#include "lnn_proto.def"
#undef PARAM
#undef FRAME
#undef NAKR
#undef PERR
#undef DETAIL
} lnn_nak_reason;

typedef enum {
#define PARAM(name, value)
#define FRAME(name, code, dir, meaning)
#define NAKR(name, code, meaning)
#define PERR(name, code, meaning) LNN_PE_##name = code,
#define DETAIL(name, code, wording)
#include "lnn_proto.def"
#undef PARAM
#undef FRAME
#undef NAKR
#undef PERR
#undef DETAIL
} lnn_proto_error;

/* The detail byte of an ERROR frame (its wording is the host's) */
typedef enum {
#define PARAM(name, value)
#define FRAME(name, code, dir, meaning)
#define NAKR(name, code, meaning)
#define PERR(name, code, meaning)
#define DETAIL(name, code, wording) LNN_D_##name = code,
#include "lnn_proto.def"
#undef PARAM
#undef FRAME
#undef NAKR
#undef PERR
#undef DETAIL
} lnn_error_detail;

/* Header field offsets. */
enum {
    LNN_FH_TYPE = 0,
    LNN_FH_FLAGS = 1,
    LNN_FH_SEQ = 2,
    LNN_FH_NONCE = 4,
    LNN_FH_LEN = 8,
    LNN_FH_RESERVED = 10
};

/* Largest payload the device accepts and sends (build-time; reported by
 * HELLO as max_payload). At least LNN_P_MIN_PAYLOAD. */
#ifndef LNN_MAX_PAYLOAD
#define LNN_MAX_PAYLOAD 4096u
#endif

#define LNN_FRAME_MAX (LNN_P_HEADER_SIZE + LNN_MAX_PAYLOAD + LNN_P_CRC_SIZE)
/* COBS adds one byte per started 254 bytes (and one more at the start). */
#define LNN_COBS_MAX(n) ((n) + (n) / 254u + 2u)

#endif
