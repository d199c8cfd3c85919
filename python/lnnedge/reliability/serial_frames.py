"""Serial frames, damaged: the firmware's protocol engine and the host's parser against a bad line.

Three campaigns, all through the real code (no model of either side):

- `host_to_device`: request frames, each damaged once on its way (bits flipped, bytes lost or added, a burst
  overwritten, the frame cut short, garbage before it, the frame twice, an earlier frame of the session
  again), fed to the firmware's protocol engine (device.c + the VM, built as a library by `make hostlib`
  and driven in this process through ctypes), followed by the intact frame as the host would send it again.
  The engine reports every request it executes (`lnn_dev_on_request`); a damaged frame is wrongly accepted
  when anything but the intact request runs, or that one runs twice. Every answer is checked too: RUN
  outputs are the model's, bit for bit, so a corrupted chunk that slipped into a model would show.
- `device_to_host`: the same damage on the engine's answers on their way to `SerialLink`, whose
  request loop (decode_frame and the seq / nonce / type checks) must return exactly the intact answer,
  getting it by sending the request again when it cannot use what arrived.
- `load_cut`: model A loaded, model B's upload cut at every frame (after the frame, or in its middle), then a
  new session: the device must run A (or B, when the commit itself got through), then load B completely.

Each returns a `Campaign`; `invoke reliability` runs them at full size (see the functions' defaults).
(Over 400 lines: the three campaigns share the engine binding, the session script and the damage kinds;
split them into engine / damage / campaigns modules if a fourth one comes.)
"""

from __future__ import annotations

import ctypes
import random
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..build import MAKE_JOBS
from ..devices import DeviceError
from ..devices.serial import FirmwareError, Line, NoAnswer, SerialLink
from ..devices.serial.protocol import Frame, FrameError, cobs_encode, decode_frame, decode_info, protocol, seal_frame
from ..errors import LnnedgeError
from ..paths import BUILD_DIR, VM_DIR
from . import Campaign

FIRMWARE_DIR = VM_DIR / "firmware"
ENGINE_OUT = BUILD_DIR / "firmware" / "cortex-m4"
MODELS = ("ltc-sine", "ltc-3in-rk4")


class EngineError(LnnedgeError, RuntimeError):
    """The firmware's host library could not be built or loaded."""


# ---- the engine in this process ------------------------------------------------------------------------

_HOOK = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)


class Engine:
    """The firmware's protocol engine (device.c, cobs.c, the VM) as liblnnedge-fw.so. Its state is static:
    one engine per process, shared by every campaign (each starts its own host session with HELLO)."""

    def __init__(self, lib: Path):
        self.lib = ctypes.CDLL(str(lib))
        self.lib.lnn_lib_feed.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self.lib.lnn_lib_take.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
        self.lib.lnn_lib_take.restype = ctypes.c_size_t
        self.executed: list[bytes] = []  # every request the engine executed, as decoded frames
        self._hook = _HOOK(lambda p, n: self.executed.append(ctypes.string_at(p, n)))
        ctypes.c_void_p.in_dll(self.lib, "lnn_dev_on_request").value = ctypes.cast(self._hook, ctypes.c_void_p).value
        self._out = ctypes.create_string_buffer(1 << 20)
        self.lib.lnn_lib_boot()
        self.take()  # the BOOT frame

    def feed(self, data: bytes) -> None:
        self.lib.lnn_lib_feed(data, len(data))

    def take(self) -> bytes:
        """What the device sent since the last take."""
        lost = ctypes.c_size_t()
        n = self.lib.lnn_lib_take(self._out, len(self._out), ctypes.byref(lost))
        if lost.value:
            raise EngineError(f"the engine sent {lost.value} bytes more than its output buffer holds")
        return ctypes.string_at(self._out, n)


@cache
def engine() -> Engine:
    """Builds (make hostlib) and loads the engine, once per process."""
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE_DIR), f"O={ENGINE_OUT}", MAKE_JOBS, "hostlib"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise EngineError(f"make hostlib failed: {(proc.stdout + proc.stderr)[-2000:]}")
    return Engine(ENGINE_OUT / "hostlib" / "liblnnedge-fw.so")


class EngineLine:
    """A serial line to the engine, for SerialLink(line=...): what the host writes reaches the engine at
    once, what the engine sends back passes through `answers` (the damage of a campaign) when the host writes
    a new frame and arrives intact when it sends the same frame again. A read with nothing there is a
    timeout at once: the host's retries cost no waiting."""

    def __init__(self, eng: Engine, answers: Callable[[bytes], bytes] | None = None):
        self.engine = eng
        self.answers = answers
        self.writes = 0
        self.answer = b""  # the engine's undamaged answer to the last new frame
        self._last = b""
        self._pending = bytearray()
        eng.take()  # a line plugged in now hears nothing of what was sent before

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.engine.feed(data)
        out = self.engine.take()
        if data != self._last:
            self.answer = out
            if self.answers is not None:
                out = self.answers(out)
        self._last = data
        self._pending += out

    def read(self, deadline: float) -> bytes:
        data = bytes(self._pending)
        self._pending.clear()
        return data

    def close(self) -> None:
        self._pending.clear()


class CutLine:
    """Wraps a line and cuts it at the host's frame `at` (1-based): that frame goes out whole (`keep` = 1.0)
    or only its first part, and nothing passes in either direction after it, as when a cable is pulled."""

    def __init__(self, inner: Line, at: int, keep: float):
        self.inner, self.at, self.keep = inner, at, keep
        self.frames = 0
        self.cut = False

    def write(self, data: bytes) -> None:
        if self.cut:
            return
        self.frames += 1
        if self.frames == self.at:
            self.cut = True
            data = data[:max(1, round(len(data) * self.keep))]
        self.inner.write(data)

    def read(self, deadline: float) -> bytes:
        return b"" if self.cut else self.inner.read(deadline)

    def close(self) -> None:
        self.inner.close()


# ---- the models and the requests of a session -------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    name: str
    data: bytes
    inputs: np.ndarray  # the bundled test set's inputs (rows, floats per row)
    expected: np.ndarray  # its outputs (PyTorch), within `tolerance`
    tolerance: float

    @property
    def crc(self) -> int:
        return zlib.crc32(self.data)


@cache
def campaign_models() -> tuple[Model, ...]:
    """The two LTC recipes' models, seeded and untrained, compiled with their bundled test sets."""
    import torch

    from .. import lnnb, smoke
    from .. import recipe as recipes
    from ..compiler import compile_module
    from ..models import build_model

    models = []
    for name in MODELS:
        torch.manual_seed(0)
        r = recipes.load(name)
        module = build_model(r.model).eval()
        tests = smoke.test_set(r, module)
        data = compile_module(module, (torch.zeros(1, tests.inputs.shape[1]),), name=name, tests=tests).data
        t = lnnb.read(data).tests
        models.append(Model(name, data, t.inputs, t.outputs, t.max_abs_err))
    return tuple(models)


@dataclass(frozen=True)
class Request:
    type: int
    payload: bytes
    answer: int  # the type of the right answer: type | OK_BIT, or ERROR
    outputs: bytes | None = None  # RUN: the output bytes the model gives (after rows, chunks, cycles)


def _load_requests(model: Model, chunk: int) -> Iterator[Request]:
    P = protocol()
    yield Request(P.LOAD_BEGIN, struct.pack("<II", len(model.data), model.crc), P.LOAD_BEGIN | P.OK_BIT)
    for offset in range(0, len(model.data), chunk):
        yield Request(P.LOAD_CHUNK, struct.pack("<I", offset) + model.data[offset:offset + chunk],
                      P.LOAD_CHUNK | P.OK_BIT)
    yield Request(P.LOAD_COMMIT, b"", P.LOAD_COMMIT | P.OK_BIT)


def _run_payload(model: Model, rows: int, batch: int) -> bytes:
    return struct.pack("<HH", rows, batch) + model.inputs[:rows].astype("<f4").tobytes()


def run_outputs(answer: bytes) -> bytes:
    """The outputs of a RUN answer's payload (after rows, chunks and the cycles, which vary)."""
    _rows, chunks = struct.unpack_from("<HH", answer)
    return answer[4 + 4 * chunks:]


RUN_SHAPES = ((16, 1), (16, 4), (5, 5))  # (rows, batch) of the RUNs of a session


def _session(models: tuple[Model, ...], reference: dict[tuple[str, int, int], bytes], chunk: int,
             rng: random.Random) -> Iterator[Request]:
    """Requests as a host sends them, round after round: HELLO, INFO, an upload of the next model, RUNs of
    its test inputs, RESET_STATE, and two requests the device must refuse (unknown type, short RUN)."""
    P = protocol()
    while True:
        for model in models:
            yield Request(P.HELLO, struct.pack("<HHI", P.PROTOCOL_VERSION, 0, rng.getrandbits(32)),
                          P.HELLO | P.OK_BIT)
            yield Request(P.INFO, b"", P.INFO | P.OK_BIT)
            yield from _load_requests(model, chunk)
            for rows, batch in RUN_SHAPES:
                yield Request(P.RUN, _run_payload(model, rows, batch), P.RUN | P.OK_BIT,
                              reference[model.name, rows, batch])
            yield Request(P.RESET_STATE, struct.pack("<I", 0), P.RESET_STATE | P.OK_BIT)
            yield Request(0x55, b"", P.ERROR)
            yield Request(P.RUN, _run_payload(model, 2, 1)[:-1], P.ERROR)


def frames_in(stream: bytes) -> list[Frame]:
    """The frames of a stream the engine sent (intact by construction: a block that does not decode is a bug)."""
    try:
        return [decode_frame(block) for block in stream.split(b"\x00") if block]
    except FrameError as exc:
        raise EngineError(f"the engine sent a damaged frame: {exc}") from None


class _Client:
    """Request frames straight to the engine, for the host → device campaign, which decides itself what
    reaches the engine (the host's transport would retry on its own)."""

    def __init__(self, eng: Engine, rng: random.Random):
        self.engine = eng
        self.seq = rng.getrandbits(16)
        self.nonce = 0

    def frame(self, req: Request) -> tuple[bytes, bytes]:
        """The next request: (the frame, header to CRC, as the engine will execute it; the frame on the line)."""
        self.seq = (self.seq + 1) & 0xFFFF
        raw = seal_frame(req.type, self.seq, 0 if req.type == protocol().HELLO else self.nonce, req.payload)
        return raw, b"\x00" + cobs_encode(raw) + b"\x00"

    def answers(self, stream: bytes) -> list[Frame]:
        """The answers (OK or ERROR) to the request with the current seq in what the engine sent."""
        P = protocol()
        return [f for f in frames_in(stream) if f.seq == self.seq and f.type not in (P.NAK, P.PROGRESS)]

    def ask(self, req: Request) -> Frame:
        """One intact request, its one right answer."""
        self.engine.feed(self.frame(req)[1])
        got = self.answers(self.engine.take())
        if len(got) != 1 or got[0].type != req.answer:
            raise EngineError(f"request {req.type:#04x}: expected one answer of type {req.answer:#04x}, got {got}")
        if req.type == protocol().HELLO:
            self.nonce = got[0].nonce
        return got[0]


def _reference(client: _Client, models: tuple[Model, ...]) -> tuple[dict[tuple[str, int, int], bytes], int]:
    """Each model uploaded and run intact: its RUN outputs (checked against its test set) and the chunk size."""
    P = protocol()
    hello = client.ask(Request(P.HELLO, struct.pack("<HHI", P.PROTOCOL_VERSION, 0, 1), P.HELLO | P.OK_BIT))
    chunk = int(decode_info(hello.payload)["max_payload"]) - 4
    reference = {}
    for model in models:
        for req in _load_requests(model, chunk):
            client.ask(req)
        for rows, batch in RUN_SHAPES:
            got = run_outputs(client.ask(Request(P.RUN, _run_payload(model, rows, batch), P.RUN | P.OK_BIT)).payload)
            err = np.max(np.abs(np.frombuffer(got, "<f4") - model.expected[:rows].ravel()))
            if not err <= model.tolerance:
                raise EngineError(f"{model.name}: the engine's outputs differ from the test set's by {err}")
            reference[model.name, rows, batch] = got
    return reference, chunk


# ---- damage -----------------------------------------------------------------------------------------------

KINDS = ("flip", "drop", "insert", "burst", "truncate", "garbage", "duplicate", "replay")


def damage(wire: bytes, rng: random.Random, earlier: list[bytes]) -> tuple[str, bytes]:
    """One kind of damage to a frame on the line (0x00, COBS, 0x00): 1-3 bits flipped, 1-3 bytes lost or
    added, a burst of 2-16 bytes overwritten, the frame cut short, 1-64 random bytes (zeros too) before it,
    the frame twice, or in its place one of the 16 frames sent before it (replayed, out of order)."""
    kind = rng.choice(KINDS if earlier else KINDS[:-1])
    b = bytearray(wire)
    if kind == "flip":
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == "drop":
        for _ in range(rng.randint(1, 3)):
            del b[rng.randrange(len(b))]
    elif kind == "insert":
        for _ in range(rng.randint(1, 3)):
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
    elif kind == "burst":
        at = rng.randrange(len(b))
        n = len(b[at:at + rng.randint(2, 16)])
        b[at:at + n] = rng.randbytes(n)
    elif kind == "truncate":
        del b[rng.randrange(1, len(b) - 1):]
    elif kind == "garbage":
        b[:0] = rng.randbytes(rng.randint(1, 64))
    elif kind == "duplicate":
        b += wire
    else:
        b = bytearray(rng.choice(earlier[-16:]))
    return kind, bytes(b)


def _how(direction: str, frames: int, extra: str) -> str:
    return (f"{frames} {direction} frames of a real session (HELLO, INFO, uploads of two LTC models in 4 KB chunks, "
            f"RUNs, RESET_STATE, refused requests), each damaged once by one of: {', '.join(KINDS)}; {extra}")


# ---- the campaigns ----------------------------------------------------------------------------------------

def host_to_device(frames: int = 100_000, seed: int = 1, problems: list[str] | None = None) -> Campaign:
    """Damaged requests into the firmware's protocol engine, each followed by the intact one."""
    P = protocol()
    eng = engine()
    models = campaign_models()
    rng = random.Random(seed)
    client = _Client(eng, rng)
    reference, chunk = _reference(client, models)
    script = _session(models, reference, chunk, rng)
    problems = [] if problems is None else problems
    earlier: list[bytes] = []  # this host session's frames: what a replay can bring back
    rejected = correct = hung = wrong = 0
    for _ in range(frames):
        req = next(script)
        raw, wire = client.frame(req)
        if req.type == P.HELLO:
            earlier.clear()
        kind, bad = damage(wire, rng, earlier)
        eng.executed.clear()
        eng.feed(bad)
        sent = eng.take()
        during = list(eng.executed)
        eng.feed(wire)  # the host sends it again: after a NAK, a timeout, or a damaged answer
        sent += eng.take()
        answers = client.answers(sent)
        if req.type == P.HELLO and answers:
            client.nonce = answers[-1].nonce
        right = bool(answers) and all(a == answers[0] for a in answers) and answers[0].type == req.answer and (
            req.outputs is None or run_outputs(answers[0].payload) == req.outputs)
        if eng.executed != [raw] or (answers and not right):
            wrong += 1
            problems.append(f"{kind} of {P.frame_name(req.type)} seq {client.seq}: executed "
                            f"{len(eng.executed)} request(s), {'right' if right else 'wrong'} answer")
        elif not answers:
            hung += 1
            problems.append(f"{kind} of {P.frame_name(req.type)} seq {client.seq}: no answer")
        elif during == [raw]:
            correct += 1  # the intact frame was in what arrived (garbage before it, sent twice, ...)
        else:
            rejected += 1
        earlier.append(wire)
    return Campaign("serial frames, host → device",
                    _how("request", frames, "fed to the firmware's protocol engine (device.c and the VM as a "
                         "host library, make hostlib), then the intact frame again; wrongly accepted: the engine "
                         "executed anything but the intact request once, or answered wrong (RUN outputs compared "
                         "bit for bit)"),
                    frames, rejected, correct, 0, hung, wrong)


def device_to_host(frames: int = 100_000, seed: int = 2, problems: list[str] | None = None) -> Campaign:
    """The engine's answers damaged on their way to SerialLink's request loop."""
    P = protocol()
    eng = engine()
    models = campaign_models()
    rng = random.Random(seed)
    reference, chunk = _reference(_Client(eng, rng), models)
    script = _session(models, reference, chunk, rng)
    problems = [] if problems is None else problems
    earlier: list[bytes] = []

    def on_the_line(answer: bytes) -> bytes:
        _kind, bad = damage(answer, rng, earlier)
        earlier.append(answer)
        return bad

    line = EngineLine(eng, answers=on_the_line)
    link = SerialLink("engine:", line=line)
    link.device_info()  # opens the session (through the damaged line already)
    rejected = correct = crashed = hung = wrong = 0
    for _ in range(frames):
        req = next(script)
        before = line.writes
        got: Frame | Exception
        try:
            got = link._request(req.type, req.payload, hello=req.type == P.HELLO)
        except DeviceError as exc:
            got = exc
        except Exception as exc:  # counted, not raised: the campaign reports how the host failed
            got = exc
        intact = [f for f in frames_in(line.answer) if f.type not in (P.NAK, P.PROGRESS)][-1]
        if isinstance(got, Frame):
            right = got == intact and got.type == req.answer
            if req.type == P.HELLO:
                link._nonce = got.nonce
        elif isinstance(got, FirmwareError):
            right = intact.type == P.ERROR == req.answer and got.code == struct.unpack_from("<H", intact.payload, 2)[0]
        else:
            right = False
        if right:
            if line.writes - before == 1:
                correct += 1  # what arrived first held the intact answer (garbage before it, twice, ...)
            else:
                rejected += 1
            continue
        problems.append(f"{P.frame_name(req.type)}: {got!r}")
        if isinstance(got, NoAnswer):
            hung += 1
        elif isinstance(got, (Frame, DeviceError)):
            wrong += 1
        else:
            crashed += 1
    link.close()
    return Campaign("serial frames, device → host",
                    _how("answer", frames, "the engine's answers damaged on their way to SerialLink's "
                         "request loop (an in-process line); wrongly accepted: the host returned anything but the "
                         "intact answer (or its ERROR)"),
                    frames, rejected, correct, crashed, hung, wrong)


def load_cut(open_line: Callable[[], Line] | None = None, url: str = "engine:", at: Sequence[int] | None = None,
             keeps: Sequence[float] = (1.0, 0.5), problems: list[str] | None = None) -> Campaign:
    """Model A loaded; model B's upload cut at frame k (1: LOAD_BEGIN, ..., last: LOAD_COMMIT) for every k of
    `at` (default: every frame), the frame going out whole or cut in its middle (`keeps`); then a new
    session must find A (B if its commit went out whole), run that model's test inputs to the outputs it
    gave before the cut, bit for bit, and then load and run B completely.

    The line: the firmware's engine in this process by default; `open_line` opens another (a QEMU board:
    lambda: open_port(url)), each cut line and each new session getting a fresh one."""
    import tempfile

    if open_line is None:
        eng = engine()
        open_line = lambda: EngineLine(eng)  # noqa: E731
    problems = [] if problems is None else problems
    a, b = campaign_models()
    with tempfile.TemporaryDirectory(prefix="lnnedge-load-cut-") as tmp:
        paths = {m.name: Path(tmp) / f"{m.name}.lnnb" for m in (a, b)}
        for m in (a, b):
            paths[m.name].write_bytes(m.data)

        def session() -> SerialLink:
            return SerialLink(url, line=open_line(), timeout=2.0)

        outputs = {}
        with session() as link:  # what each model gives on this device, intact
            for m in (a, b):
                outputs[m.name] = link.run(paths[m.name], [m.inputs], batch=4).outputs[0]
            chunk = int(link.device["max_payload"]) - 4
        frames = 2 + -(-len(b.data) // chunk)  # LOAD_BEGIN, the chunks, LOAD_COMMIT
        points = [(k, keep) for k in (at or range(1, frames + 1)) for keep in keeps]
        good = hung = wrong = 0
        for k, keep in points:
            with session() as link:
                link.run(paths[a.name], [a.inputs[:1]])  # A loaded (again)
            cut = SerialLink(url, line=CutLine(open_line(), 1 + k, keep), timeout=2.0, retries=1)
            try:  # frame 1 is the HELLO, then the upload
                cut.info(paths[b.name])
                problems.append(f"cut at frame {k} ({keep:.0%} of it): the upload went through")
            except DeviceError:
                pass
            finally:
                cut.close()
            holds = b if (k == frames and keep == 1.0) else a  # a commit that arrived whole has happened
            what = f"cut at frame {k} of {frames} ({keep:.0%} of it)"
            try:
                with session() as link:
                    link.device_info()
                    crc = link.model_info.get("model_crc")
                    if crc is None or int(crc, 16) != holds.crc:
                        raise AssertionError(f"the device holds model {crc}, not {holds.name} ({holds.crc:#010x})")
                    run = link.run(paths[holds.name], [holds.inputs], batch=4)
                    if run.timing["uploaded"] or not np.array_equal(run.outputs[0], outputs[holds.name]):
                        raise AssertionError(f"{holds.name} did not run as before the cut")
                    run = link.run(paths[b.name], [b.inputs], batch=4)
                    if not np.array_equal(run.outputs[0], outputs[b.name]):
                        raise AssertionError(f"{b.name}, loaded after the cut, gives other outputs")
                good += 1
            except AssertionError as exc:
                wrong += 1
                problems.append(f"{what}: {exc}")
            except DeviceError as exc:
                hung += 1
                problems.append(f"{what}: {exc}")
    return Campaign("firmware LOAD cut at every frame",
                    f"{len(points)} uploads of {b.name} ({len(b.data)} B, {frames} frames) over a loaded "
                    f"{a.name}, cut at frames {min(k for k, _ in points)}..{max(k for k, _ in points)} after the "
                    f"whole frame or half of it ({url}); right: a new session finds the model that should be "
                    "there, which runs its test inputs bit for bit as before, then the full upload works",
                    len(points), 0, good, 0, hung, wrong)
