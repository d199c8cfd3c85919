"""The serial protocol's table and frames (vm/PROTOCOL.md): the frame types, NAK reasons and protocol error
codes read from vm/firmware/lnn_proto.def (the table the firmware is compiled from), COBS, and a frame's
header, payload and CRC-32 on the line."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from functools import cache

from ...paths import VM_DIR

PROTO_DEF = VM_DIR / "firmware" / "lnn_proto.def"

_PARAM = re.compile(r"^PARAM\(\s*(\w+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\)")
_FRAME = re.compile(r'^FRAME\(\s*(\w+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(H2D|D2H)\s*,\s*"([^"]*)"\s*\)')
_CODE = re.compile(r'^(NAKR|PERR)\(\s*(\w+)\s*,\s*(\d+)\s*,\s*"([^"]*)"\s*\)')


@dataclass(frozen=True)
class Protocol:
    params: dict[str, int]
    frames: dict[str, int]           # name -> type code
    naks: dict[int, tuple[str, str]]   # reason -> (name, meaning)
    errors: dict[int, tuple[str, str]]  # protocol error code -> (name, meaning)

    def __getattr__(self, name: str) -> int:  # P.HEADER_SIZE, P.RUN ...
        if name in self.params:
            return self.params[name]
        if name in self.frames:
            return self.frames[name]
        raise AttributeError(name)

    def frame_name(self, code: int) -> str:
        for name, value in self.frames.items():
            if value == code:
                return name
            if value | self.params["OK_BIT"] == code and value < self.params["OK_BIT"]:
                return name + "_OK"
        return f"0x{code:02x}"


@cache
def protocol() -> Protocol:
    params, frames, naks, errors = {}, {}, {}, {}
    for line in PROTO_DEF.read_text().splitlines():
        line = line.strip()
        if m := _PARAM.match(line):
            params[m[1]] = int(m[2], 0)
        elif m := _FRAME.match(line):
            frames[m[1]] = int(m[2], 0)
        elif m := _CODE.match(line):
            (naks if m[1] == "NAKR" else errors)[int(m[3])] = (m[2], m[4])
    if not frames or "HEADER_SIZE" not in params:
        raise RuntimeError(f"{PROTO_DEF}: no FRAME/PARAM lines found")
    return Protocol(params, frames, naks, errors)


# ---- COBS and frames ---------------------------------------------------------------------------------

_COBS_CODE = [bytes([n + 1]) for n in range(255)]  # the code byte of a piece of n bytes


def cobs_encode(data: bytes) -> bytes:
    """COBS: cut at each zero and after each run of 254 non-zero bytes; each piece becomes a code byte
    (its length + 1) and its bytes, a zero being implied after every piece whose code is below 0xFF.
    (bytes.split does the cutting at C speed: a 4 KB chunk of a model upload costs microseconds.)"""
    runs = data.split(b"\x00")
    if max(map(len, runs)) < 254:
        return b"".join([_COBS_CODE[len(run)] + run for run in runs])
    out = bytearray()
    for run in runs:
        at = 0
        while len(run) - at >= 254:  # a full piece: code 0xFF, no zero implied after it
            out += _COBS_CODE[254] + run[at:at + 254]
            at += 254
        out += _COBS_CODE[len(run) - at] + run[at:]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    if 0 in data:  # neither a code nor a data byte is ever zero
        raise ValueError("zero byte inside a COBS block")
    pieces = []
    i, n = 0, len(data)
    while i < n:
        end = i + data[i]
        if end > n:
            raise ValueError("COBS code runs past the end of the block")
        pieces.append(data[i + 1:end])
        if data[i] != 0xFF and end < n:
            pieces.append(b"\x00")
        i = end
    return b"".join(pieces)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    nonce: int
    payload: bytes


_HEADER = struct.Struct("<BBHIHH")


def seal_frame(ftype: int, seq: int, nonce: int, payload: bytes = b"") -> bytes:
    """The frame before COBS: header + payload + CRC-32."""
    raw = _HEADER.pack(ftype, 0, seq & 0xFFFF, nonce & 0xFFFFFFFF, len(payload), 0) + payload
    return raw + struct.pack("<I", zlib.crc32(raw))


def encode_frame(ftype: int, seq: int, nonce: int, payload: bytes = b"") -> bytes:
    """The frame on the line: 0x00, COBS(header + payload + CRC-32), 0x00."""
    return b"\x00" + cobs_encode(seal_frame(ftype, seq, nonce, payload)) + b"\x00"


class FrameError(ValueError):
    pass


def decode_frame(block: bytes) -> Frame:
    """One block between 0x00 delimiters -> Frame, or FrameError (noise, a flipped bit, a cut frame)."""
    P = protocol()
    try:
        raw = cobs_decode(block)
    except ValueError as exc:
        raise FrameError(str(exc)) from None
    if len(raw) < P.HEADER_SIZE + P.CRC_SIZE:
        raise FrameError(f"{len(raw)} bytes: shorter than a frame")
    (crc,) = struct.unpack_from("<I", raw, len(raw) - 4)
    if zlib.crc32(raw[:-4]) != crc:
        raise FrameError("CRC-32 mismatch")
    ftype, flags, seq, nonce, length, reserved = _HEADER.unpack_from(raw)
    if length + P.HEADER_SIZE + P.CRC_SIZE != len(raw):
        raise FrameError("length field does not match the frame")
    return Frame(ftype, seq, nonce, raw[P.HEADER_SIZE:-4])


def parse_text(payload: bytes) -> dict[str, str]:
    info = {}
    for line in payload.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info

