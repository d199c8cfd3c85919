"""The serial transport: a bare-metal board running the lnnedge firmware (vm/firmware), over a UART.

Speaks the framed protocol of vm/PROTOCOL.md through pyserial, so any pyserial URL works: a device
(/dev/ttyACM0), a pty, or socket://127.0.0.1:PORT (QEMU's emulated UART, see testing/qemu_m4.py).
The frame types, NAK reasons and protocol error codes are read from vm/firmware/lnn_proto.def, the
table the firmware is compiled from.

    link = SerialTransport("socket://127.0.0.1:4444", clock_hz=25_000_000)
    result = link.run(Path("model.lnnb"), [x])     # uploads the model first if the device lacks it
    result.outputs, result.timing["cycles_per_inference_median"]
    link.close()

Robustness: every frame is COBS-framed and CRC-checked; a request whose answer does not come back
intact within `timeout` seconds (or that the device NAKs) is sent again, at most `retries` times, and
the device answers a repeated request from its copy of the last answer. The session nonce in every
answer tells a device that restarted from one that did not: then the transport opens a new session,
uploads the model again and repeats the command once. The port is locked for as long as the transport
is open (flock on a device node through pyserial's exclusive=True; a lock file under /tmp for URLs).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import select
import struct
import tempfile
import time
import typing
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from .. import lnnb
from ..paths import VM_DIR
from .base import RunResult, TransportError

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


# ---- errors ---------------------------------------------------------------------------------------------

class DeviceError(TransportError):
    """The device answered with an ERROR frame: `domain` is "vm" (an lnn_status, e.g. E_CRC from lnn_init)
    or "protocol" (lnn_proto.def), `name` the code's name, `offset` the byte in the model file or None."""

    def __init__(self, message: str, domain: str, code: int, name: str, offset: int | None):
        super().__init__(message)
        self.domain = domain
        self.code = code
        self.name = name
        self.offset = offset


class DeviceReset(TransportError):
    """The device restarted since the session began (new nonce, E_SESSION or a BOOT frame)."""


class _LinkLost(TransportError):
    """The port itself failed (closed socket, unplugged device)."""


class _NoAnswer(TransportError):
    """No valid answer after every retry: the device is hung, gone, or not running the firmware."""


# ---- the port and its lock ----------------------------------------------------------------------------

def _is_url(url: str) -> bool:
    return "://" in url


def lock_path(url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lnnedge-serial-{digest}.lock"


class _Port:
    """A pyserial port opened non-blocking, with select() on its descriptor where it has one."""

    def __init__(self, url: str, baudrate: int, write_timeout: float):
        import serial

        self.url = url
        self._lock_fd = None
        self._lock_path = lock_path(url)
        if _is_url(url):
            self._lock_fd = self._lock(self._lock_path)
        try:
            kwargs = {} if _is_url(url) else {"exclusive": True}
            self.serial = serial.serial_for_url(url, baudrate=baudrate, timeout=0, write_timeout=write_timeout,
                                                **kwargs)
        except serial.SerialException as exc:
            self._unlock()
            text = str(exc)
            if "lock" in text.lower():
                raise TransportError(f"{url} is in use by another process: {text}") from None
            raise TransportError(f"cannot open {url}: {text}") from None
        except ValueError as exc:
            self._unlock()
            raise TransportError(f"cannot open {url}: {exc}") from None
        try:
            self.fd = self.serial.fileno()
        except Exception:  # URL handlers without a descriptor (loop://, rfc2217://)
            self.fd = None

    def _lock(self, path: Path) -> int:
        """flock on a lock file, removed again on close. The file we locked must still be the one at the
        path (a closing holder unlinks it first), else we locked an orphan and try again."""
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise TransportError(f"{self.url} is in use by another process (lock file {path})") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {self.url}\n".encode())
                return fd
            os.close(fd)

    def _unlock(self):
        if self._lock_fd is not None:
            try:
                os.unlink(self._lock_path)
            except OSError:
                pass
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.serial.write(data)
            self.serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise _LinkLost(f"writing to {self.url} failed: {exc}") from None

    def read(self, deadline: float) -> bytes:
        """What has arrived, waiting until the deadline for at least one byte (b"" on timeout)."""
        import serial

        remaining = max(deadline - time.monotonic(), 0.0)
        try:
            if self.fd is not None:
                ready, _, _ = select.select([self.fd], [], [], remaining)
                if not ready:
                    return b""
                data = self.serial.read(65536)  # non-blocking: what is there
                if not data:
                    raise _LinkLost(f"{self.url} closed (the device or emulator went away)")
                return data
            self.serial.timeout = min(remaining, 0.02) or 0
            first = self.serial.read(1)
            if not first:
                return b""
            self.serial.timeout = 0
            return first + self.serial.read(65536)
        except serial.SerialException as exc:
            raise _LinkLost(f"connection to {self.url} lost (the device or emulator went away): {exc}") from None
        except OSError as exc:
            raise _LinkLost(f"reading from {self.url} failed: {exc}") from None

    def close(self) -> None:
        try:
            self.serial.close()
        except Exception:
            pass
        self._unlock()


class Line(typing.Protocol):
    """What the transport needs of a port: _Port, or a line a test or campaign puts in its place."""

    def write(self, data: bytes) -> None: ...

    def read(self, deadline: float) -> bytes: ...

    def close(self) -> None: ...


def open_port(url: str, baudrate: int = 115200, write_timeout: float = 1.0) -> Line:
    """The port at `url`, opened and locked as SerialTransport opens it."""
    return _Port(url, baudrate, write_timeout)


# ---- the transport ------------------------------------------------------------------------------------

_SHAPE = re.compile(r"^\[([^\]]*)\]")


def _io_shape(text: str) -> tuple[bool, int]:
    """'[B,3] f32' -> (batched, elements per row)."""
    m = _SHAPE.match(text)
    if not m:
        raise TransportError(f"unexpected shape from the device: {text!r}")
    dims = [d.strip() for d in m[1].split(",") if d.strip()]
    batched = bool(dims) and dims[0] == "B"
    elems = 1
    for d in dims[1 if batched else 0:]:
        elems *= int(d)
    return batched, elems


class SerialTransport:
    """The Transport shape (info, run, close) over the lnnedge serial protocol."""

    def __init__(self, url: str, *, timeout: float = 1.0, retries: int = 6, run_timeout: float = 60.0,
                 clock_hz: float | None = None, baudrate: int = 115200, name: str | None = None,
                 line: Line | None = None):
        """`line`: an already open line to use first instead of opening `url` (the reliability campaigns'
        in-process firmware engine, or a real port wrapped to cut it); once dropped, `url` is opened."""
        self.url = url
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.run_timeout = float(run_timeout)
        self.clock_hz = clock_hz
        self.baudrate = baudrate
        self.name = name or url
        self.P = protocol()
        self._port: Line | None = line
        self._rx = bytearray()
        self._seq = secrets.randbits(16)
        self._nonce: int | None = None       # the session of the device we talk to
        self._last_nonce: int | None = None  # kept across reconnections, to notice a restart
        self.device: dict[str, str] = {}
        self.model_info: dict[str, str] = {}
        self._model_crc: int | None = None   # the model the device holds, as far as we know
        self._cycles_per_row: float | None = None
        self.stats = {"frames_sent": 0, "retries": 0, "naks": 0, "bad_frames": 0, "timeouts": 0,
                      "resets_detected": 0, "uploads": 0, "upload_bytes": 0, "load_chunks": 0, "connects": 0}

    # -- connection and session ------------------------------------------------------------------
    def close(self) -> None:
        """Releases the port and its lock (the device keeps its model for the next session)."""
        self._drop_link()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _drop_link(self) -> None:
        """After a failure: the next call reopens the port and opens a new session."""
        if self._port is not None:
            self._port.close()
            self._port = None
        self._nonce = None
        self._rx.clear()

    def _session(self) -> None:
        if self._port is None:
            self._port = _Port(self.url, self.baudrate, write_timeout=max(self.timeout, 1.0))
            self.stats["connects"] += 1
            self._rx.clear()
        if self._nonce is None:
            self._hello()

    def _hello(self) -> None:
        P = self.P
        salt = secrets.randbits(32)
        frame = self._request(P.HELLO, struct.pack("<HHI", P.PROTOCOL_VERSION, 0, salt), hello=True)
        info = parse_text(frame.payload)
        self._nonce = frame.nonce
        if self._last_nonce is not None and frame.nonce != self._last_nonce:
            self.stats["resets_detected"] += 1
        self._last_nonce = frame.nonce
        self._take_info(info)

    def _take_info(self, info: dict[str, str]) -> None:
        device_keys = ("protocol", "firmware", "board", "target", "arch", "vm_version", "isa", "kernels",
                       "max_model", "arena_size", "max_payload", "core_clock_hz", "cycle_counter", "session",
                       "boots", "last_fault", "rx_frames", "rx_bad", "rx_dup", "rx_stale", "rx_dropped")
        self.device = {k: info[k] for k in device_keys if k in info}
        if info.get("model_loaded") == "1":
            self._model_crc = int(info["model_crc"], 16)
            self.model_info = {k: v for k, v in info.items() if k not in device_keys}
        else:
            self._model_crc = None
            self.model_info = {}

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    # -- one request, its answer, retries ----------------------------------------------------------
    def _read_frame(self, deadline: float) -> Frame | FrameError | None:
        limit = 2 * (self.P.HEADER_SIZE + 65535 + self.P.CRC_SIZE)
        while True:
            cut = self._rx.find(0)
            if cut >= 0:
                block = bytes(self._rx[:cut])
                del self._rx[:cut + 1]
                if not block:
                    continue
                try:
                    return decode_frame(block)
                except FrameError as exc:
                    return exc
            if len(self._rx) > limit:  # noise without a delimiter
                self._rx.clear()
                return FrameError("over-long block")
            data = self._port.read(deadline)
            if not data:
                return None
            self._rx += data

    def _drain(self, hello: bool) -> None:
        """Drops what arrived before a new request (late answers, NAKs of earlier noise), so that it is
        not taken for news about the request; a BOOT frame among it still means the device restarted."""
        now = time.monotonic()
        while True:
            got = self._read_frame(now)
            if got is None:
                return
            if isinstance(got, Frame) and got.type == self.P.BOOT and not hello:
                raise DeviceReset(f"{self.name}: the device restarted (BOOT frame)")

    def _request(self, ftype: int, payload: bytes = b"", *, timeout: float | None = None,
                 hello: bool = False) -> Frame:
        """Sends a request until an intact answer with its seq arrives; OK answers are returned, ERROR
        answers raised as DeviceError (DeviceReset for E_SESSION)."""
        P = self.P
        name = P.frame_name(ftype)
        seq = self._next_seq()
        wait = timeout if timeout is not None else self.timeout
        wire = encode_frame(ftype, seq, 0 if hello else self._nonce, payload)
        self._drain(hello)
        attempt = 0
        while True:
            attempt += 1
            self._port.write(wire)
            self.stats["frames_sent"] += 1
            deadline = time.monotonic() + wait
            why = f"no answer within {wait:g} s"
            while True:
                got = self._read_frame(deadline)
                if got is None:
                    self.stats["timeouts"] += 1
                    break
                if isinstance(got, FrameError):
                    self.stats["bad_frames"] += 1
                    why = f"damaged answer ({got})"
                    break
                if got.type == P.NAK:
                    self.stats["naks"] += 1
                    if got.seq == seq:  # noise after our request, which arrived: the answer is coming
                        continue
                    reason = P.naks.get(got.payload[0] if got.payload else 0, ("?", "?"))[0]
                    why = f"NAK {reason}"
                    break
                if got.type == P.BOOT:
                    if hello:
                        continue
                    raise DeviceReset(f"{self.name}: the device restarted (BOOT frame)")
                if got.type == P.PROGRESS:  # busy with a RUN (ours, or an earlier one it finishes first)
                    deadline = time.monotonic() + wait
                    continue
                if got.seq != seq:
                    continue  # a late answer to an earlier request
                if not hello and got.nonce != self._nonce:
                    raise DeviceReset(f"{self.name}: the device restarted (session nonce "
                                      f"{self._nonce:#010x} -> {got.nonce:#010x})")
                if got.type == P.ERROR:
                    raise self._device_error(got, name)
                if got.type != ftype | P.OK_BIT:
                    raise TransportError(f"{self.name}: unexpected {P.frame_name(got.type)} answer to {name}")
                return got
            if attempt > self.retries:
                raise _NoAnswer(f"{self.name}: no valid answer to {name} after {attempt} attempts "
                                     f"(last: {why}); is the device running the lnnedge firmware on {self.url}?")
            self.stats["retries"] += 1

    def _device_error(self, frame: Frame, request: str) -> DeviceError:
        P = self.P
        if len(frame.payload) < 8:
            return DeviceError(f"{self.name}: malformed ERROR answer to {request}", "?", -1, "?", None)
        domain, _, code, offset = struct.unpack_from("<BBHI", frame.payload)
        # one line whatever the device wrote: the error ends up as the one line a command prints
        text = " ".join(frame.payload[8:].decode("utf-8", "replace").split())
        name = text.partition(":")[0]
        where = None if offset == 0xFFFFFFFF else offset
        if domain == P.DOMAIN_PROTOCOL:
            if name == "E_SESSION":
                return DeviceReset(f"{self.name}: the device does not know our session ({text})")
            return DeviceError(f"{self.name}: {request} failed: {text}", "protocol", code, name, where)
        head, _, message = text.partition(": ")
        at = f" at byte {where}" if where is not None else ""
        return DeviceError(f"{self.name}: {request} failed: {head}{at}: {message}", "vm", code, name, where)

    # -- operations with recovery -------------------------------------------------------------------
    def _call(self, operation):
        """Runs operation() in a session; a device restart means one new session and one more try."""
        for attempt in (1, 2):
            try:
                self._session()
                return operation()
            except DeviceReset:
                self._nonce = None  # the next _session says HELLO and notices the new nonce
                self._model_crc = None
                if attempt == 2:
                    raise
            except _LinkLost as exc:
                self._drop_link()
                raise TransportError(str(exc)) from None
            except _NoAnswer:
                self._drop_link()  # start afresh next time: reopen the port, new HELLO
                raise

    def _ensure_model(self, data: bytes, label: str) -> bool:
        """Uploads the model unless the device holds one with the same CRC. True if it uploaded."""
        P = self.P
        crc = zlib.crc32(data)
        if self._model_crc == crc:
            return False
        max_model = int(self.device.get("max_model", 0))
        if max_model and len(data) > max_model:
            raise TransportError(f"{label} is {len(data)} bytes; the device's model buffer holds {max_model}")
        chunk = int(self.device.get("max_payload", P.MIN_PAYLOAD)) - 4
        begin = struct.pack("<II", len(data), crc)  # the loaded model (_model_crc) runs until the commit
        try:
            self._request(P.LOAD_BEGIN, begin)
        except DeviceError as exc:
            if exc.name != "E_NO_ROOM":
                raise
            # The device writes a new model beside the loaded one, which keeps running until the commit;
            # this one is too big for that: unload first (a load cut from here on leaves no model, never
            # half of one).
            self._request(P.RESET_STATE, struct.pack("<I", 1))
            self._model_crc = None
            self.model_info = {}
            self._request(P.LOAD_BEGIN, begin)
        for offset in range(0, len(data), chunk):
            piece = data[offset:offset + chunk]
            got = self._request(P.LOAD_CHUNK, struct.pack("<I", offset) + piece)
            self.stats["load_chunks"] += 1
            (received,) = struct.unpack_from("<I", got.payload)
            if received != offset + len(piece):
                raise TransportError(f"{self.name}: device reports {received} bytes of {label} received, "
                                     f"expected {offset + len(piece)}")
        try:
            got = self._request(P.LOAD_COMMIT, timeout=max(self.timeout, 5.0))
        except DeviceError as exc:
            if exc.domain == "vm":
                raise DeviceError(f"{self.name}: the device refused {label}: {str(exc).split('failed: ', 1)[1]}",
                                  exc.domain, exc.code, exc.name, exc.offset) from None
            raise
        self.model_info = parse_text(got.payload)
        self._model_crc = crc
        self._cycles_per_row = None
        self.stats["uploads"] += 1
        self.stats["upload_bytes"] += len(data)
        return True

    def device_info(self) -> dict:
        """The device's description, fresh from an INFO request (no model needed): firmware, board, isa,
        vm_version, max_model, arena_size, max_payload, core_clock_hz, cycle_counter, session, boots,
        last_fault and the receive counters rx_frames, rx_bad (NAKed), rx_dup (answered again), rx_dropped."""
        def op():
            self._take_info(parse_text(self._request(self.P.INFO).payload))
            return dict(self.device)

        return self._call(op)

    def reset_state(self, unload: bool = False) -> None:
        """RESET_STATE: the device zeroes its arena; with unload it also forgets the model."""
        flags = 1 if unload else 0

        def op():
            self._request(self.P.RESET_STATE, struct.pack("<I", flags))
            if unload:
                self._model_crc = None
                self.model_info = {}

        self._call(op)

    def trace(self, model: Path, inputs: list[np.ndarray]):
        raise TransportError(f"{self.name}: tracing (verify --trace) is not available over the serial transport; "
                             "trace on a board with the lnnvm runner (host or QEMU user mode)")

    def info(self, model: Path) -> dict:
        """The device's and the model's description (keys as `lnnvm info` prints them, plus the
        device's: firmware, board, max_model, arena_size, max_payload, core_clock_hz, cycle_counter...)."""
        model = Path(model)
        data = model.read_bytes()

        def op():
            self._ensure_model(data, model.name)
            return self._info()

        return self._call(op)

    def _info(self) -> dict:
        info = {**self.device, **self.model_info, "transport": "serial", "url": self.url}
        info.pop("model_loaded", None)
        return info

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, extra: list[str] | None = None,
            keep_state: bool = False) -> RunResult:
        """Run inputs on the device; a stateful model starts from zero state, as the runner's runs do, unless
        keep_state (the device keeps its state from one RUN to the next)."""
        if extra:
            raise TransportError(f"{self.name}: runner options {extra} are not available over the serial "
                                 "transport (no --trace on the device)")
        if batch < 1:
            raise TransportError(f"batch must be at least 1, got {batch}")
        model = Path(model)
        data = model.read_bytes()
        started = time.perf_counter()
        before = dict(self.stats)
        state = {}

        reset = not keep_state and lnnb.state_row(data) > 0  # unchecked: the device's loader judges the file

        def op():
            t0 = time.perf_counter()
            state["uploaded"] = self._ensure_model(data, model.name)
            state["upload_seconds"] = time.perf_counter() - t0
            if reset:
                self._request(self.P.RESET_STATE, struct.pack("<I", 0))
            return self._run(inputs, batch)

        outputs, timing = self._call(op)
        timing.update(uploaded=state["uploaded"], upload_seconds=round(state["upload_seconds"], 3),
                      wall_seconds=round(time.perf_counter() - started, 3),
                      **{k: self.stats[k] - before[k] for k in ("retries", "naks", "bad_frames", "timeouts",
                                                                "resets_detected")})
        return RunResult(outputs, timing, self._info())

    def _rows_per_frame(self, ins, outs, chunk: int) -> int:
        """The most rows one RUN frame carries: inputs in the request, cycles and outputs in the answer."""
        cap = int(self.device.get("max_payload", self.P.MIN_PAYLOAD))
        in_fixed = 4 + sum(4 * row for batched, row in ins if not batched)
        in_row = sum(4 * row for batched, row in ins if batched)
        out_fixed = 4 + sum(4 * row for batched, row in outs if not batched)
        out_row = sum(4 * row for batched, row in outs if batched)

        def fits(r: int) -> bool:
            return in_fixed + r * in_row <= cap and out_fixed + 4 * -(-r // chunk) + r * out_row <= cap

        r = 0xFFFF
        if in_row:
            r = min(r, (cap - in_fixed) // in_row)
        r = min(r, int((cap - out_fixed) / (out_row + 4 / chunk)))
        while r > 0 and not fits(r):
            r -= 1
        return max(r, 0)

    def _run(self, inputs: list[np.ndarray], batch: int):
        P = self.P
        mi = self.model_info
        n_in, n_out = int(mi["inputs"]), int(mi["outputs"])
        if len(inputs) != n_in:
            raise TransportError(f"the model takes {n_in} input(s), got {len(inputs)}")
        ins = [_io_shape(mi[f"input{i}"]) for i in range(n_in)]
        outs = [_io_shape(mi[f"output{i}"]) for i in range(n_out)]
        flat = [np.ascontiguousarray(x, dtype="<f4").reshape(-1) for x in inputs]
        n = None
        for i, ((batched, row), x) in enumerate(zip(ins, flat)):
            if not batched:
                if x.size != row:
                    raise TransportError(f"input {i} is not batched: expected {row} float32, got {x.size}")
                continue
            if x.size == 0 or x.size % row:
                raise TransportError(f"input {i}: expected a non-zero multiple of the row size {row}, got {x.size}")
            if n is not None and x.size // row != n:
                raise TransportError(f"input {i} has {x.size // row} rows but an earlier input has {n}")
            n = x.size // row
        n = n or 1
        chunk = min(batch, n)
        max_batch = int(mi.get("max_batch", chunk))
        if chunk > max_batch:
            raise TransportError(f"batch {chunk}: the device's arena holds at most {max_batch} rows of this model")
        per_frame = self._rows_per_frame(ins, outs, chunk)
        if per_frame < chunk:
            raise TransportError(f"batch {chunk} does not fit in one frame of {self.device.get('max_payload')} "
                                 f"bytes; at most {self._rows_per_frame(ins, outs, 1)} rows per run")
        per_frame -= per_frame % chunk
        results = [[] for _ in outs]
        per_row_cycles = []
        clock = float(self.clock_hz or int(self.device.get("core_clock_hz", 0)) or 0)
        frames = total_cycles = 0
        for start in range(0, n, per_frame):
            rows = min(per_frame, n - start)
            body = bytearray(struct.pack("<HH", rows, chunk))
            for (batched, row), x in zip(ins, flat):
                body += (x[start * row:(start + rows) * row] if batched else x).tobytes()
            wait = self.run_timeout
            if self._cycles_per_row and clock:
                wait = self.timeout + 3.0 * self._cycles_per_row * chunk / clock
            got = self._request(P.RUN, bytes(body), timeout=wait)
            frames += 1
            r, chunks = struct.unpack_from("<HH", got.payload)
            if r != rows:
                raise TransportError(f"{self.name}: RUN answered {r} rows, sent {rows}")
            cycles = np.frombuffer(got.payload, dtype="<u4", count=chunks, offset=4)
            total_cycles += int(cycles.sum(dtype=np.uint64))
            for c, cyc in enumerate(cycles):
                in_chunk = min(chunk, rows - c * chunk)
                per_row_cycles.append(float(cyc) / in_chunk)
            off = 4 + 4 * chunks
            for k, (batched, row) in enumerate(outs):
                count = (rows if batched else 1) * row
                results[k].append(np.frombuffer(got.payload, dtype="<f4", count=count, offset=off))
                off += 4 * count
            if off != len(got.payload):
                raise TransportError(f"{self.name}: RUN answer has {len(got.payload)} bytes, expected {off}")
        outputs = []
        for (batched, row), parts in zip(outs, results):
            if batched:
                outputs.append(np.concatenate(parts).reshape(n, row))
            else:
                outputs.append(parts[-1].reshape(1, row).copy())
        lat = np.array(per_row_cycles)
        self._cycles_per_row = float(np.max(lat))
        med, lo, hi = float(np.median(lat)), float(lat.min()), float(lat.max())

        def us(c: float):
            return round(c / clock * 1e6, 3) if clock else None

        timing = {
            "n": n, "batch": batch, "chunks": int(lat.size), "repeat": 1,
            "latency_us_median": us(med), "latency_us_min": us(lo), "latency_us_max": us(hi),
            "cycles_per_inference_median": med, "cycles_min": lo, "cycles_max": hi,
            "cycles_total": total_cycles, "clock_hz": clock or None,
            "cycle_counter": self.device.get("cycle_counter"),
            "isa": mi.get("isa") or self.device.get("isa"), "vm_version": self.device.get("vm_version"),
            "transport": "serial", "frames": frames, "session": f"{self._nonce:#010x}",
        }
        return outputs, timing
