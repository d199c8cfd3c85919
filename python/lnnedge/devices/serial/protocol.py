"""The serial protocol's table and frames (vm/PROTOCOL.md): the frame types, NAK reasons, protocol error
codes and error details read from vm/firmware/lnn_proto.def (the table the firmware is compiled from), COBS, a
frame's header, payload and CRC-32 on the line, and the binary INFO and ERROR answers."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from functools import cache

from ...errors import LnnedgeError
from ...paths import VM_DIR

PROTO_DEF = VM_DIR / "firmware" / "lnn_proto.def"

_PARAM = re.compile(r"^PARAM\(\s*(\w+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\)")
_FRAME = re.compile(r'^FRAME\(\s*(\w+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(H2D|D2H)\s*,\s*"([^"]*)"\s*\)')
_CODE = re.compile(r'^(NAKR|PERR|DETAIL)\(\s*(\w+)\s*,\s*(\d+)\s*,\s*"([^"]*)"\s*\)')


@dataclass(frozen=True)
class Protocol:
    params: dict[str, int]
    frames: dict[str, int]           # name -> type code
    naks: dict[int, tuple[str, str]]   # reason -> (name, meaning)
    errors: dict[int, tuple[str, str]]  # protocol error code -> (name, meaning)
    details: dict[int, tuple[str, str]]  # ERROR detail byte -> (name, wording: str.format of the 3 values)

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
    params, frames, naks, errors, details = {}, {}, {}, {}, {}
    for line in PROTO_DEF.read_text().splitlines():
        line = line.strip()
        if m := _PARAM.match(line):
            params[m[1]] = int(m[2], 0)
        elif m := _FRAME.match(line):
            frames[m[1]] = int(m[2], 0)
        elif m := _CODE.match(line):
            {"NAKR": naks, "PERR": errors, "DETAIL": details}[m[1]][int(m[3])] = (m[2], m[4])
    if not frames or "HEADER_SIZE" not in params:
        raise RuntimeError(f"{PROTO_DEF}: no FRAME/PARAM lines found")
    return Protocol(params, frames, naks, errors, details)


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


# ---- the INFO reply (vm/PROTOCOL.md section 8): binary on the device, key -> text here -------------------

class InfoError(LnnedgeError, ValueError):
    """An INFO reply (HELLO, INFO or LOAD_COMMIT answer) cut short or malformed."""


_DEVICE = struct.Struct("<HBx16I")
_DEVICE_STRINGS = ("firmware", "board", "target", "arch", "vm_version", "isa", "cycle_counter", "kernels")
_MODEL = struct.Struct("<IHHIIIIIIIIHH64s")


def _shape(entry: bytes) -> str:
    """A tensor entry of the .lnnb (32 bytes) as `lnnvm info` prints its shape: '[B,3] f32'."""
    from ...isa import const
    from ...lnnb import _TENSOR

    dtype, rank, _, flags, *dims = _TENSOR.unpack(entry)
    if rank > const("MAX_RANK"):
        raise InfoError(f"an input or output of rank {rank}")
    batch = flags & const("TF_BATCH")
    text = ",".join("B" if i == 0 and batch else str(dims[i]) for i in range(rank))
    names = {const(f"DT_{n.upper()}"): n for n in ("f32", "u32", "i8", "f16")}
    return f"[{text}] {names.get(dtype, '?')}"


def _model_info(payload: bytes, at: int) -> dict[str, str]:
    from ...isa import const

    if len(payload) < at + _MODEL.size:
        raise InfoError(f"the model part is {len(payload) - at} bytes, shorter than its {_MODEL.size} fixed ones")
    (crc, major, minor, size, tensors, code_words, consts_size, arena_fixed, arena_row, max_batch, state_row, n_in,
     n_out, sha) = _MODEL.unpack_from(payload, at)
    at += _MODEL.size
    entry = const("TENSOR_ENTRY_SIZE")
    if len(payload) != at + entry * (n_in + n_out):
        raise InfoError(f"{n_in} inputs and {n_out} outputs take {entry * (n_in + n_out)} bytes, "
                        f"the reply has {len(payload) - at}")
    info = {"model_loaded": "1", "model_crc": f"{crc:#010x}",
            "model_source": "flash" if any(sha) else "ram"}  # only a model built into the image has a SHA-256
    if any(sha):
        info["model_sha256"] = sha.decode("ascii", "replace")
    info.update({"version": f"{major}.{minor}", "file_size": str(size), "tensors": str(tensors),
                 "code_words": str(code_words), "consts_size": str(consts_size), "inputs": str(n_in)})
    entries = [payload[at + entry * i:at + entry * (i + 1)] for i in range(n_in + n_out)]
    info.update({f"input{i}": _shape(e) for i, e in enumerate(entries[:n_in])})
    info["outputs"] = str(n_out)
    info.update({f"output{i}": _shape(e) for i, e in enumerate(entries[n_in:])})
    info.update({"arena_fixed": str(arena_fixed), "arena_row": str(arena_row), "max_batch": str(max_batch),
                 "state_row": str(state_row)})
    return info


def decode_info(payload: bytes, device: bool = True) -> dict[str, str]:
    """A HELLO or INFO answer (device part, then the model part if a model is loaded), or with device=False a
    LOAD_COMMIT answer (the model part): the keys and values `lnnvm info` prints (numbers as decimal text, CRCs
    and the session as 0x%08x). Raises InfoError on a reply cut short or malformed."""
    if not device:
        return _model_info(payload, 0)
    if len(payload) < _DEVICE.size:
        raise InfoError(f"{len(payload)} bytes, shorter than the device part's {_DEVICE.size} fixed ones")
    (version, flags, resident, max_model, arena_size, max_payload, clock, session, boots, exc, pc, rx_frames, rx_bad,
     rx_dup, rx_stale, rx_dropped, image_size, image_crc) = _DEVICE.unpack_from(payload)
    at, strings = _DEVICE.size, []
    for key in _DEVICE_STRINGS:
        end = payload.find(b"\0", at)
        if end < 0:
            raise InfoError(f"the device part is cut short in its {key} string")
        strings.append(payload[at:end].decode("utf-8", "replace"))
        at = end + 1
    info = {"protocol": str(version), **dict(zip(_DEVICE_STRINGS, strings))}
    if image_size:
        info.update({"image_size": str(image_size), "image_crc": f"{image_crc:#010x}"})
    if resident:
        from ...isa import status_name

        info["resident_error"] = status_name(resident)
    info.update({"max_model": str(max_model), "arena_size": str(arena_size), "max_payload": str(max_payload),
                 "core_clock_hz": str(clock), "session": f"{session:#010x}", "boots": str(boots),
                 "last_fault": f"exception {exc} at pc {pc:#010x}" if flags & protocol().INFO_FAULT else "none",
                 "rx_frames": str(rx_frames), "rx_bad": str(rx_bad), "rx_dup": str(rx_dup),
                 "rx_stale": str(rx_stale), "rx_dropped": str(rx_dropped)})
    if not flags & protocol().INFO_LOADED:
        if at != len(payload):
            raise InfoError(f"{len(payload) - at} bytes after the device part, and no model loaded")
        return {**info, "model_loaded": "0"}
    return {**info, **_model_info(payload, at)}


# ---- the ERROR answer (vm/PROTOCOL.md section 10): numbers on the device, the sentence here -------------

def decode_error(payload: bytes) -> tuple[int, int, int | None, str]:
    """An ERROR payload -> (domain, code, offset or None, "NAME: meaning[: detail]"): the code named from
    lnn_status.def (domain VM) or lnn_proto.def, the detail worded from its DETAIL line with the frame's three
    values. A version 1 firmware sent text after the 8-byte head instead ("NAME: message[: detail]", or
    ": detail" from an image without names): its detail is kept as it came, so that a host can still say which
    version an old firmware speaks. Raises ValueError under 8 bytes."""
    from ...isa import statuses

    P = protocol()
    if len(payload) < 8:
        raise ValueError(f"an ERROR answer of {len(payload)} bytes")
    domain, kind, code, offset = struct.unpack_from("<BBHI", payload)
    known = P.errors if domain == P.DOMAIN_PROTOCOL else statuses()
    name, meaning = known.get(code, (f"E_{code}", "unknown error code"))
    text = f"{name}: {meaning}"
    if len(payload) == P.ERROR_SIZE:
        values = struct.unpack_from("<3I", payload, 8)
        wording = P.details.get(kind, ("?", f"detail {kind}: {{0}}, {{1}}, {{2}}"))[1]
        detail = wording.format(*values)
    else:
        old = " ".join(payload[8:].decode("utf-8", "replace").split())  # one line, whatever it held
        detail = old.removeprefix(text).removeprefix(":").strip()
    return domain, code, None if offset == 0xFFFFFFFF else offset, f"{text}: {detail}" if detail else text
