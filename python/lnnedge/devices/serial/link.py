"""The serial link: a session with a board running the lnnedge firmware (vm/firmware) over a UART.

Speaks the framed protocol of vm/PROTOCOL.md (protocol.py) through a port (port.py), so any pyserial URL
works: a device (/dev/ttyACM0), a pty, or socket://127.0.0.1:PORT (QEMU's emulated UART, see
devices/emulator.py). The rows of a run travel as rows.py lays them out.

    with SerialLink("socket://127.0.0.1:4444", clock_hz=25_000_000) as link:
        result = link.run(Path("model.lnnb"), [x])  # uploads the model first if the device lacks it
        result.outputs, result.timing["cycles_per_inference_median"]

Robustness: every frame is COBS-framed and CRC-checked; a request whose answer does not come back
intact within `timeout` seconds (or that the device NAKs) is sent again, at most `retries` times, and
the device answers a repeated request from its copy of the last answer. The session nonce in every
answer tells a device that restarted from one that did not: then the link opens a new session,
uploads the model again and repeats the command once. The port is locked for as long as the link is open.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
import time
import zlib
from pathlib import Path

import numpy as np

from ... import lnnb
from ..base import DeviceError, RunResult
from . import rows
from .port import Line, LinkLost, open_port
from .protocol import Frame, FrameError, InfoError, decode_error, decode_frame, decode_info, encode_frame, protocol


class FirmwareError(DeviceError):
    """The device answered with an ERROR frame: `domain` is "vm" (an lnn_status, e.g. E_CRC from lnn_init)
    or "protocol" (lnn_proto.def), `name` the code's name, `offset` the byte in the model file or None."""

    def __init__(self, message: str, domain: str, code: int, name: str, offset: int | None):
        super().__init__(message)
        self.domain = domain
        self.code = code
        self.name = name
        self.offset = offset


class DeviceReset(DeviceError):
    """The device restarted since the session began (new nonce, E_SESSION or a BOOT frame)."""


class NoAnswer(DeviceError):
    """No valid answer after every retry: the device is hung, gone, or not running the firmware."""


class SerialLink:
    """A session with one board over the lnnedge serial protocol: info, run, device_info, reset_state, close
    (serial/__init__.py makes a board of boards.yaml a Device over one)."""

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
        self._state_nonce: int | None = None  # the session of the last RUN: a keep_state run must be in it
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
            self._port = open_port(self.url, self.baudrate, write_timeout=max(self.timeout, 1.0))
            self.stats["connects"] += 1
            self._rx.clear()
        if self._nonce is None:
            self._hello()

    def _hello(self) -> None:
        P = self.P
        salt = secrets.randbits(32)
        try:
            frame = self._request(P.HELLO, struct.pack("<HHI", P.PROTOCOL_VERSION, 0, salt), hello=True)
        except FirmwareError as exc:
            if exc.name != "E_VERSION":
                raise
            theirs = re.search(r"speaks version (\d+)", str(exc))
            raise DeviceError(f"{self.name}: the firmware speaks serial protocol version "
                              f"{theirs[1] if theirs else '?'}, this host version {P.PROTOCOL_VERSION}: flash a "
                              "firmware built from this checkout (invoke build, invoke flash)") from None
        info = self._decode_info(frame.payload, "HELLO")
        self._nonce = frame.nonce
        if self._last_nonce is not None and frame.nonce != self._last_nonce:
            self.stats["resets_detected"] += 1
        self._last_nonce = frame.nonce
        self._take_info(info)

    def _decode_info(self, payload: bytes, request: str, device: bool = True) -> dict[str, str]:
        try:
            return decode_info(payload, device)
        except InfoError as exc:
            raise DeviceError(f"{self.name}: malformed answer to {request}: {exc}") from None

    def _take_info(self, info: dict[str, str]) -> None:
        device_keys = ("protocol", "firmware", "board", "target", "arch", "vm_version", "isa", "kernels",
                       "max_model", "arena_size", "max_payload", "core_clock_hz", "cycle_counter", "session",
                       "boots", "last_fault", "rx_frames", "rx_bad", "rx_dup", "rx_stale", "rx_dropped",
                       "image_size", "image_crc", "resident_error")
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
        answers raised as FirmwareError (DeviceReset for E_SESSION)."""
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
                    raise DeviceError(f"{self.name}: unexpected {P.frame_name(got.type)} answer to {name}")
                return got
            if attempt > self.retries:
                raise NoAnswer(f"{self.name}: no valid answer to {name} after {attempt} attempts "
                                     f"(last: {why}); is the device running the lnnedge firmware on {self.url}?")
            self.stats["retries"] += 1

    def _device_error(self, frame: Frame, request: str) -> FirmwareError:
        P = self.P
        try:
            domain, code, where, text = decode_error(frame.payload)
        except ValueError:
            return FirmwareError(f"{self.name}: malformed ERROR answer to {request}", "?", -1, "?", None)
        name = text.partition(":")[0]
        if domain == P.DOMAIN_PROTOCOL:
            if name == "E_SESSION":
                return DeviceReset(f"{self.name}: the device does not know our session ({text})")
            return FirmwareError(f"{self.name}: {request} failed: {text}", "protocol", code, name, where)
        head, _, message = text.partition(": ")
        at = f" at byte {where}" if where is not None else ""
        return FirmwareError(f"{self.name}: {request} failed: {head}{at}: {message}", "vm", code, name, where)

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
            except LinkLost as exc:
                self._drop_link()
                raise DeviceError(str(exc)) from None
            except NoAnswer:
                self._drop_link()  # start afresh next time: reopen the port, new HELLO
                raise

    def _ensure_model(self, data: bytes, label: str) -> bool:
        """Uploads the model unless the device holds one with the same CRC. True if it uploaded."""
        P = self.P
        crc = zlib.crc32(data)
        if self._model_crc == crc:
            resident = self.model_info.get("model_sha256")
            if resident is not None and resident != hashlib.sha256(data).hexdigest():
                raise DeviceError(f"{self.name}: the model in its flash has {label}'s CRC-32 but SHA-256 "
                                  f"{resident[:16]}.., not {hashlib.sha256(data).hexdigest()[:16]}..")
            return False
        max_model = int(self.device.get("max_model", 0))
        if max_model == 0:  # a firmware that runs only the model built into it
            refused = self.device.get("resident_error")
            if refused:  # it was built in, but the VM would not take it (e.g. E_ARENA: too little RAM)
                from ...isa import statuses

                why = dict(statuses().values()).get(refused, "")
                raise DeviceError(f"{self.name} runs only the model in its flash and refused the one built into "
                                  f"its image: {refused}" + (f" ({why})" if why else ""))
            held = self.model_info.get("model_sha256")
            holds = f"model {held[:16]}.. (SHA-256)" if held else "no model"
            raise DeviceError(f"{self.name} runs only the model in its flash and holds {holds}, not {label} "
                              f"({hashlib.sha256(data).hexdigest()[:16]}..): build it in and flash it "
                              "(invoke build --target T --model M, then invoke flash --board B)")
        if len(data) > max_model:
            raise DeviceError(f"{label} is {len(data)} bytes; the device's model buffer holds {max_model}")
        chunk = int(self.device.get("max_payload", P.MIN_PAYLOAD)) - 4
        begin = struct.pack("<II", len(data), crc)  # the loaded model (_model_crc) runs until the commit
        try:
            self._request(P.LOAD_BEGIN, begin)
        except FirmwareError as exc:
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
                raise DeviceError(f"{self.name}: device reports {received} bytes of {label} received, "
                                     f"expected {offset + len(piece)}")
        try:
            got = self._request(P.LOAD_COMMIT, timeout=max(self.timeout, 5.0))
        except FirmwareError as exc:
            if exc.domain == "vm":
                raise FirmwareError(f"{self.name}: the device refused {label}: {str(exc).split('failed: ', 1)[1]}",
                                  exc.domain, exc.code, exc.name, exc.offset) from None
            raise
        self.model_info = self._decode_info(got.payload, "LOAD_COMMIT", device=False)
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
            self._take_info(self._decode_info(self._request(self.P.INFO).payload, "INFO"))
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

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, keep_state: bool = False) -> RunResult:
        """Run inputs on the device; a stateful model starts from zero state, as the runner's runs do, unless
        keep_state (the device keeps its state from one RUN to the next)."""
        if batch < 1:
            raise DeviceError(f"batch must be at least 1, got {batch}")
        model = Path(model)
        data = model.read_bytes()
        started = time.perf_counter()
        before = dict(self.stats)
        state = {}

        reset = not keep_state and lnnb.state_row(data) > 0  # unchecked: the device's loader judges the file
        # a run that continues the device's state needs the boot and the model of the previous run: after a
        # restart (the first try, or _call's try again in the new session) or with the model gone, the state went
        lost = "the state kept from the previous run is lost; start again from zero state"

        def op():
            if keep_state and self._nonce != self._state_nonce:
                raise DeviceError(f"{self.name} restarted since the previous run: {lost}")
            t0 = time.perf_counter()
            state["uploaded"] = self._ensure_model(data, model.name)
            state["upload_seconds"] = time.perf_counter() - t0
            if keep_state and state["uploaded"]:
                raise DeviceError(f"{self.name} no longer held {model.name} (sent again): {lost}")
            if reset:
                self._request(self.P.RESET_STATE, struct.pack("<I", 0))
            ran = self._run(inputs, batch)
            self._state_nonce = self._nonce  # the boot whose state the next keep_state run continues
            return ran

        outputs, timing = self._call(op)
        timing.update(uploaded=state["uploaded"], upload_seconds=round(state["upload_seconds"], 3),
                      wall_seconds=round(time.perf_counter() - started, 3),
                      **{k: self.stats[k] - before[k] for k in ("retries", "naks", "bad_frames", "timeouts",
                                                                "resets_detected")})
        return RunResult(outputs, timing, self._info())


    def _run(self, inputs: list[np.ndarray], batch: int) -> tuple[list[np.ndarray], dict]:
        P = self.P
        plan = rows.layout(self.model_info, self.device, inputs, batch, P.MIN_PAYLOAD)
        pieces: list[list[np.ndarray]] = [[] for _ in plan.outs]
        per_row_cycles = []
        clock = float(self.clock_hz or int(self.device.get("core_clock_hz", 0)) or 0)
        frames = total_cycles = 0
        for start in plan.frames():
            count, body = plan.request(start)
            wait = self.run_timeout
            if self._cycles_per_row and clock:
                wait = self.timeout + 3.0 * self._cycles_per_row * plan.chunk / clock
            got = self._request(P.RUN, body, timeout=wait)
            frames += 1
            cycles, parts = plan.answer(got.payload, count, self.name)
            total_cycles += int(cycles.sum(dtype=np.uint64))
            for c, cyc in enumerate(cycles):
                per_row_cycles.append(float(cyc) / min(plan.chunk, count - c * plan.chunk))
            for k, part in enumerate(parts):
                pieces[k].append(part)
        lat = np.array(per_row_cycles)
        self._cycles_per_row = float(np.max(lat))
        med, lo, hi = float(np.median(lat)), float(lat.min()), float(lat.max())

        def us(c: float):
            return round(c / clock * 1e6, 3) if clock else None

        mi = self.model_info
        timing = {
            "n": plan.rows, "batch": batch, "chunks": int(lat.size), "repeat": 1,
            "latency_us_median": us(med), "latency_us_min": us(lo), "latency_us_max": us(hi),
            "cycles_per_inference_median": med, "cycles_min": lo, "cycles_max": hi,
            "cycles_total": total_cycles, "clock_hz": clock or None,
            "cycle_counter": self.device.get("cycle_counter"),
            "isa": mi.get("isa") or self.device.get("isa"), "vm_version": self.device.get("vm_version"),
            "transport": "serial", "frames": frames, "session": f"{self._nonce:#010x}",
        }
        return plan.gather(pieces), timing

    def profile(self, model: Path, runs: int) -> dict:
        """PROFILE (a profiling firmware only, lnnedge.profile): the model's bundled test case 0 run `runs` times
        with the VM's per-pc counters and `runs` times without; figures in the board's counter ticks."""
        model = Path(model)
        data = model.read_bytes()

        def op():
            self._ensure_model(data, model.name)
            clock = float(self.clock_hz or int(self.device.get("core_clock_hz", 0)) or 0)
            wait = self.run_timeout * runs * 2
            try:
                got = self._request(self.P.PROFILE, struct.pack("<I", runs), timeout=wait)
            except FirmwareError as exc:
                if exc.name == "E_TYPE":
                    raise DeviceError(f"{self.name}: the firmware has no PROFILE command: it is not a profiling "
                                      "build (vm/firmware with -DLNN_PROFILE; `invoke profile` makes one)") from None
                raise
            words, n, plain, profiled, calibration, marks = struct.unpack_from("<6I", got.payload)
            counts = np.frombuffer(got.payload, dtype="<u4", count=2 * words, offset=24).reshape(words, 2)
            return {"clock": f"{self.device.get('cycle_counter')} (board_cycles)", "unit": "cycles", "runs": n,
                    "clock_hz": clock or None, "whole_plain_ticks": plain, "whole_profiled_ticks": profiled,
                    "overhead_ticks_per_mark": calibration / marks, "plan": True,
                    "isa": self.model_info.get("isa") or self.device.get("isa"),
                    "vm_version": self.device.get("vm_version"), "code_words": words,
                    "counters": counts.tolist(), "cycle_counter": self.device.get("cycle_counter")}

        return self._call(op)
