"""The bare-metal Cortex-M4F firmware and its serial protocol, on QEMU's mps2-an386.

The firmware is built with `make -C vm/firmware`; the models are the seeded LTC models of conftest.
Host and board talk over QEMU's emulated UART0 (a TCP socket), directly or through a relay that puts
garbage between frames and flips bits inside them; the emulator is also frozen and killed mid-run.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib

import numpy as np
import pytest
import torch
from conftest import inputs_for, untrained
from lnnedge.compiler import compile_module
from lnnedge.devices import DeviceError
from lnnedge.devices.serial import FirmwareError, SerialLink, open_port
from lnnedge.devices.serial.protocol import (
    InfoError,
    cobs_decode,
    cobs_encode,
    decode_error,
    decode_frame,
    decode_info,
    encode_frame,
    protocol,
)
from lnnedge.paths import VM_DIR
from lnnedge.reliability.serial_frames import load_cut
from support.emulator import OUT, TARGET, build_firmware, freeze, m4_board, power_cut, thaw
from test_loader import BROKEN

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and arm-none-eabi-gcc (apt-get install qemu-system-arm gcc-arm-none-eabi "
           "libnewlib-arm-none-eabi)")

FIRMWARE_DIR = VM_DIR / "firmware"
CLOCK_HZ = TARGET.clock_hz
TOL = 1e-5


def vm_version() -> str:
    text = (VM_DIR / "include" / "lnnvm.h").read_text()
    return re.search(r'#define LNN_VM_VERSION "([^"]+)"', text)[1]


@pytest.fixture(scope="session")
def firmware():
    return build_firmware()


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("m4-models")
    compiled = {}
    for name, inputs in (("ltc-sine", 1), ("ltc-3in-rk4", 3)):
        net = untrained(name)
        path = compile_module(net, (torch.zeros(1, inputs),), name=name).save(out / f"{name}.lnnb")
        compiled[name] = (net, path, inputs)
    return compiled


@pytest.fixture(scope="module")
def board(firmware):
    with m4_board(firmware["elf"]) as emu:
        yield emu


@pytest.fixture
def link(board):
    transport = SerialLink(board.url, clock_hz=CLOCK_HZ, timeout=2.0)
    yield transport
    transport.close()


def expected(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


# ---- the firmware image ------------------------------------------------------------------------------

def test_firmware_is_a_cortex_m4f_image_with_its_memory_use(firmware):
    header = subprocess.run(["readelf", "-h", str(firmware["elf"])], capture_output=True, text=True,
                            check=True).stdout
    assert re.search(r"Machine:\s+ARM", header) and "hard-float ABI" in header
    assert (OUT / "lnnedge-m4.bin").is_file()
    s = firmware["sizes"]
    assert s["flash"] == s["text"] + s["rodata"] + s["data"] and 0 < s["flash"] < 64 * 1024
    assert s["ram"] == s["data"] + s["bss"] + s["noinit"] + s["stack"] <= s["ram_total"]
    assert s["noinit"] >= s["model_max"] + s["arena_size"]
    assert re.search(r"lnnedge-m4: flash \d+ B .* RAM \d+ of \d+ B", firmware["log"])
    # vector table: initial stack pointer in SSRAM2/3, reset handler in Thumb state
    image = (OUT / "lnnedge-m4.bin").read_bytes()
    sp, reset = struct.unpack_from("<II", image)
    assert 0x20000000 < sp <= 0x20400000 and reset & 1


def test_cobs_and_frames_round_trip():
    rng = np.random.default_rng(3)
    for n in (0, 1, 253, 254, 255, 508, 1000):
        data = bytes(rng.integers(0, 3, n, dtype=np.uint8) * rng.integers(0, 256, n, dtype=np.uint8))
        enc = cobs_encode(data)
        assert 0 not in enc and cobs_decode(enc) == data
    P = protocol()
    wire = encode_frame(P.RUN, 513, 0xDEADBEEF, b"\x00\x01payload\x00")
    frame = decode_frame(wire[1:-1])
    assert (frame.type, frame.seq, frame.nonce, frame.payload) == (P.RUN, 513, 0xDEADBEEF, b"\x00\x01payload\x00")


def test_an_error_answer_is_worded_on_the_host_from_its_numbers():
    """The device sends an ERROR's code, detail byte and three u32 values; the sentence comes from the DETAIL
    line of lnn_proto.def. A version 1 firmware's text detail (with or without names) reads the same."""
    P = protocol()
    for _, wording in P.details.values():
        wording.format(1, 2, 3)  # at most three values, valid format specs
    code = {name: c for c, (name, _) in P.errors.items()}
    kind = {name: c for c, (name, _) in P.details.items()}
    crc = struct.pack("<BBHI3I", P.DOMAIN_PROTOCOL, kind["TRANSFER_CRC"], code["E_TRANSFER_CRC"], 0xFFFFFFFF,
                      0xDEADBEEF, 0x1234, 0)
    meaning = P.errors[code["E_TRANSFER_CRC"]][1]
    assert decode_error(crc) == (P.DOMAIN_PROTOCOL, code["E_TRANSFER_CRC"], None,
                                 f"E_TRANSFER_CRC: {meaning}: got 0xdeadbeef, announced 0x00001234")
    said = f"E_VERSION: {P.errors[code['E_VERSION']][1]}: the device speaks version 1"
    head = struct.pack("<BBHI", P.DOMAIN_PROTOCOL, 0, code["E_VERSION"], 0xFFFFFFFF)
    for v1 in (b": the device speaks version 1", said.encode()):
        assert decode_error(head + v1)[3] == said


# ---- talking to the board -------------------------------------------------------------------------------

def test_info_describes_the_device_and_the_model(link, models):
    _net, path, _ = models["ltc-sine"]
    info = link.info(path)
    assert info["outputs"] == "1" and info["inputs"] == "1"
    assert info["input0"] == "[B,1] f32" and info["output0"] == "[B,1] f32"
    assert info["isa"] == "cm4" and info["vm_version"] == vm_version()  # the Cortex-M4F kernel set (FPU)
    assert info["file_size"] == str(path.stat().st_size)
    assert info["board"] == "mps2-an386" and info["target"] == "cortex-m4" and info["arch"] == "arm"
    assert info["cycle_counter"] == "systick"  # QEMU 7.2 has no DWT cycle counter
    assert int(info["core_clock_hz"]) == CLOCK_HZ
    assert int(info["max_payload"]) >= protocol().MIN_PAYLOAD
    assert int(info["max_model"]) >= 1 << 20 and int(info["arena_size"]) >= 1 << 20
    assert int(info["session"], 16) != 0
    assert link.device_info()["session"] == info["session"]


@pytest.mark.parametrize("name", ["ltc-sine", "ltc-3in-rk4"])
def test_models_run_like_pytorch_and_report_cycles(link, models, name):
    net, path, inputs = models[name]
    x = inputs_for(inputs, 40, seed=5)
    reference = expected(net, x)
    for batch in (1, 8):
        result = link.run(path, [x], batch=batch)
        got = result.outputs[0]
        assert got.shape == reference.shape
        assert np.max(np.abs(got - reference)) <= TOL
        t = result.timing
        assert t["chunks"] == math.ceil(40 / batch) and t["n"] == 40
        assert 0 < t["cycles_min"] <= t["cycles_per_inference_median"] <= t["cycles_max"]
        assert t["latency_us_median"] == pytest.approx(t["cycles_per_inference_median"] / CLOCK_HZ * 1e6, rel=1e-3)
        assert t["isa"] == "cm4" and t["vm_version"] == vm_version() and t["cycle_counter"] == "systick"
        print(f"{name} batch {batch}: {t['cycles_per_inference_median']:.0f} cycles per inference "
              f"({t['latency_us_median']:.0f} µs at 25 MHz), min {t['cycles_min']:.0f}, max {t['cycles_max']:.0f}")
    again = link.run(path, [x[:3]])
    assert again.timing["uploaded"] is False  # the device already holds a model with this CRC
    assert np.max(np.abs(again.outputs[0] - reference[:3])) <= TOL


def test_a_model_larger_than_a_frame_arrives_in_chunks(link, models):
    net, path, _ = models["ltc-sine"]
    size = path.stat().st_size
    link.reset_state(unload=True)
    x = inputs_for(1, 5)
    result = link.run(path, [x])
    max_payload = int(link.device["max_payload"])
    assert size > max_payload
    assert result.timing["uploaded"] is True
    assert link.stats["load_chunks"] == math.ceil(size / (max_payload - 4)) >= 2
    assert np.max(np.abs(result.outputs[0] - expected(net, x))) <= TOL
    # RESET_STATE without unload keeps the model
    link.reset_state()
    assert link.run(path, [x]).timing["uploaded"] is False


def test_a_corrupted_model_is_refused_with_its_vm_status(link, models, tmp_path):
    net, path, _ = models["ltc-3in-rk4"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40  # inside the constants: the file's own CRC-32 no longer matches
    bad = tmp_path / "corrupted.lnnb"
    bad.write_bytes(bytes(data))
    x = inputs_for(3, 4)
    with pytest.raises(FirmwareError) as err:
        link.run(bad, [x])
    assert err.value.domain == "vm" and err.value.name == "E_CRC" and err.value.offset == 12
    assert "refused corrupted.lnnb: E_CRC at byte 12: CRC-32 mismatch" in str(err.value)
    for name, blob in BROKEN.items():  # every error class of the loader, as the host runner reports it
        broken = tmp_path / f"{name}.lnnb"
        broken.write_bytes(blob)
        with pytest.raises(FirmwareError) as err:
            link.info(broken)
        assert err.value.name == name, (name, str(err.value))
    result = link.run(path, [x])  # and the device still works
    assert result.timing["uploaded"] is True
    assert np.max(np.abs(result.outputs[0] - expected(net, x))) <= TOL


def test_the_port_is_locked_while_a_transport_holds_it(link, models):
    link.info(models["ltc-3in-rk4"][1])
    with pytest.raises(DeviceError, match="in use by another process"):
        SerialLink(link.url).info(models["ltc-3in-rk4"][1])


def _frames(sock: socket.socket, seq: int, timeout: float) -> list:
    """Frames from the device until one with this seq arrives (or the timeout)."""
    buf, frames = b"", []
    until = time.monotonic() + timeout
    sock.settimeout(0.1)
    while time.monotonic() < until and not any(f.seq == seq and f.type != protocol().NAK for f in frames):
        try:
            buf += sock.recv(65536)
        except TimeoutError:
            continue
        *blocks, buf = buf.split(b"\x00")
        frames += [decode_frame(b) for b in blocks if b]
    return frames


def test_the_device_survives_garbage_and_answers_bad_requests_with_errors(board):
    """Raw bytes on the line: noise with and without zeros, an over-long block, then well-formed frames
    with a wrong nonce, an unknown type and a non-zero reserved field."""
    P = protocol()
    port = int(board.url.rsplit(":", 1)[1])
    rng = np.random.default_rng(11)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
        sock.sendall(rng.integers(1, 256, 12000, dtype=np.uint8).tobytes() + b"\x00")  # longer than any frame
        hello = struct.pack("<HHI", P.PROTOCOL_VERSION, 0, 7)
        sock.sendall(encode_frame(P.HELLO, 100, 0, hello))
        got = _frames(sock, 100, 30)
        naks = [f for f in got if f.type == P.NAK]
        answers = [f for f in got if f.type == P.HELLO | P.OK_BIT]
        assert naks and {P.naks[f.payload[0]][0] for f in naks} >= {"OVERLONG"}
        assert len(answers) == 1 and answers[0].seq == 100
        nonce = answers[0].nonce

        def ask(ftype, seq, payload=b"", frame_nonce=nonce, raw=None):
            sock.sendall(raw or encode_frame(ftype, seq, frame_nonce, payload))
            reply = [f for f in _frames(sock, seq, 5) if f.seq == seq and f.type != P.NAK]
            assert reply, ftype
            return reply[-1]

        def error_name(frame):
            """The name of a protocol error's code; the device sends numbers only (a fixed-size payload)."""
            assert frame.type == P.ERROR and len(frame.payload) == P.ERROR_SIZE
            domain, code, _, _ = decode_error(frame.payload)
            assert domain == P.DOMAIN_PROTOCOL
            return P.errors[code][0]

        assert error_name(ask(P.RUN, 101, b"\x01\x00\x01\x00", frame_nonce=nonce ^ 1)) == "E_SESSION"
        assert error_name(ask(0x55, 102)) == "E_TYPE"
        assert error_name(ask(P.LOAD_COMMIT, 103, b"x")) == "E_PAYLOAD"
        raw = bytearray(struct.pack("<BBHIHH", P.INFO, 1, 104, nonce, 0, 0))
        raw += struct.pack("<I", zlib.crc32(raw))
        assert error_name(ask(P.INFO, 104, raw=b"\x00" + cobs_encode(bytes(raw)) + b"\x00")) == "E_HEADER"
        info = ask(P.INFO, 105)
        assert info.type == P.INFO | P.OK_BIT and decode_info(info.payload)["protocol"] == str(P.PROTOCOL_VERSION)
        again = ask(P.INFO, 105)  # the same request again: answered from the device's copy
        assert again.payload == info.payload
        with pytest.raises(InfoError, match="cut short|shorter|take"):  # a reply cut short is not taken
            decode_info(info.payload[:-1])
        old = ask(P.HELLO, 106, struct.pack("<HHI", P.PROTOCOL_VERSION - 1, 0, 8))  # a host of the last version
        assert error_name(old) == "E_VERSION"
        assert decode_error(old.payload)[3].endswith(f"speaks version {P.PROTOCOL_VERSION}")


def test_a_firmware_of_another_protocol_version_is_one_line_on_the_host(board):
    """The board speaks this checkout's version; a host of the next version gets one line saying both."""
    P = protocol()
    newer = SerialLink(board.url, clock_hz=CLOCK_HZ, timeout=2.0)
    newer.P = dataclasses.replace(P, params={**P.params, "PROTOCOL_VERSION": P.PROTOCOL_VERSION + 1})
    try:
        with pytest.raises(DeviceError) as exc:
            newer.device_info()
    finally:
        newer.close()
    assert str(exc.value).endswith(f"the firmware speaks serial protocol version {P.PROTOCOL_VERSION}, this host "
                                   f"version {P.PROTOCOL_VERSION + 1}: flash a firmware built from this checkout "
                                   "(invoke build, invoke flash)") and "\n" not in str(exc.value)


# ---- a damaged line --------------------------------------------------------------------------------------

class Relay:
    """A TCP relay between the host and QEMU's UART that damages the stream in both directions: after a
    0x00 delimiter it may insert a block of random bytes (garbage between frames) and may flip one bit in
    the first bytes of the next frame."""

    def __init__(self, upstream_port: int, seed: int, garbage: float = 0.08, flip: float = 0.08):
        self.upstream_port = upstream_port
        self.garbage, self.flip = garbage, flip
        self.seed = seed
        self.counts = {"garbage": 0, "flips": 0}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._threads = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for src, dst, seed in ((client, upstream, self.seed), (upstream, client, self.seed + 1)):
                thread = threading.Thread(target=self._pump, args=(src, dst, random.Random(seed)), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src, dst, rng):
        state = {"pos": 0, "flip_at": None}
        try:
            while data := src.recv(65536):
                dst.sendall(self._damage(data, rng, state))
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _damage(self, data: bytes, rng: random.Random, st: dict) -> bytes:
        out = bytearray()
        for b in data:
            if b == 0:
                out.append(0)
                if rng.random() < self.garbage:
                    out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24))) + b"\x00"
                    self.counts["garbage"] += 1
                st["pos"] = 0
                st["flip_at"] = rng.randrange(48) if rng.random() < self.flip else None
                continue
            if st["pos"] == st["flip_at"]:
                b ^= 1 << rng.randrange(8)
                self.counts["flips"] += 1
            st["pos"] += 1
            out.append(b)
        return bytes(out)

    def close(self):
        self.listener.close()


def test_garbage_and_bit_flips_on_the_line_are_detected_and_resent(firmware, models):
    with m4_board(firmware["elf"]) as emu:
        relay = Relay(int(emu.url.rsplit(":", 1)[1]), seed=2024)
        link = SerialLink(relay.url, clock_hz=CLOCK_HZ, timeout=1.0, retries=12)  # the default frame timeout
        try:
            for name in ("ltc-sine", "ltc-3in-rk4"):
                net, path, inputs = models[name]
                x = inputs_for(inputs, 60, seed=9)
                for batch in (1, 16):
                    result = link.run(path, [x], batch=batch)
                    assert np.max(np.abs(result.outputs[0] - expected(net, x))) <= TOL
            device = link.device_info()
        finally:
            link.close()
            relay.close()
    assert relay.counts["garbage"] > 0 and relay.counts["flips"] > 0
    assert link.stats["retries"] > 0, link.stats
    assert link.stats["naks"] + link.stats["bad_frames"] > 0, link.stats
    assert link.stats["uploads"] == 2
    assert int(device["rx_bad"]) > 0  # the device NAKed what it could not decode
    print(f"relay: {relay.counts}; host: {link.stats}; device: rx_bad {device['rx_bad']}, rx_dup {device['rx_dup']}")


def test_an_upload_cut_on_the_board_leaves_the_loaded_model_running(firmware):
    """The LOAD cut campaign (every frame on the host build, test_serial_reliability) at a sample of frames on
    the board: LOAD_BEGIN, a chunk in the middle and LOAD_COMMIT, each cut after the whole frame and in its
    middle; the connection is dropped there, a new one finds the model that should be there."""
    problems: list[str] = []
    with m4_board(firmware["elf"]) as emu:
        c = load_cut(lambda: open_port(emu.url), url=emu.url, at=(1, 4, 8), problems=problems)
    assert c.tried == 6 and c.accepted_correctly == c.tried, problems
    assert "8 frames" in c.how  # LOAD_BEGIN, 6 chunks, LOAD_COMMIT: frame 8 is the commit


# ---- a board that hangs, dies and comes back --------------------------------------------------------------

def _run_in_background(link, path, x):
    box = {}

    def work():
        try:
            box["result"] = link.run(path, [x])
        except Exception as exc:  # the test inspects it
            box["error"] = exc
        box["done"] = time.monotonic()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, box


def test_a_hung_or_killed_board_is_reported_in_seconds_and_a_restart_is_noticed(firmware, models):
    net, path, _ = models["ltc-sine"]
    x = inputs_for(1, 8)
    big = inputs_for(1, 30000, seed=1)  # long enough to still be running when the board freezes
    with m4_board(firmware["elf"]) as emu:
        link = SerialLink(emu.url, clock_hz=CLOCK_HZ, timeout=1.0, retries=3)
        try:
            first = link.run(path, [x])
            assert first.timing["uploaded"] is True
            session = link.device["session"]

            # frozen mid-run (SIGSTOP): every frame times out, the host gives up after its retries
            thread, box = _run_in_background(link, path, big)
            time.sleep(0.5)
            freeze(emu)
            frozen = time.monotonic()
            thread.join(20)
            assert "error" in box, "the run finished before the board froze"
            assert isinstance(box["error"], DeviceError) and "no valid answer" in str(box["error"])
            assert box["done"] - frozen < 15
            print(f"frozen board reported after {box['done'] - frozen:.2f} s: {box['error']}")
            thaw(emu)
            resumed = link.run(path, [x])  # same boot: same session, the model is still there
            assert resumed.timing["uploaded"] is False and link.device["session"] == session
            assert link.stats["resets_detected"] == 0

            # killed mid-run (SIGKILL): the connection closes, the host says so at once
            thread, box = _run_in_background(link, path, big)
            time.sleep(0.5)
            power_cut(emu)
            killed = time.monotonic()
            thread.join(20)
            assert isinstance(box.get("error"), DeviceError), box
            assert box["done"] - killed < 15
            print(f"killed board reported after {box['done'] - killed:.2f} s: {box['error']}")
            with pytest.raises(DeviceError, match="cannot open"):
                link.run(path, [x])  # nothing listens any more

            emu.restart()  # a new boot on the same port: new session nonce, empty model buffer
            again = link.run(path, [x])
            assert again.timing["uploaded"] is True
            assert link.stats["resets_detected"] == 1 and link.device["session"] != session
            assert np.max(np.abs(again.outputs[0] - expected(net, x))) <= TOL
        finally:
            link.close()


# ---- the protocol engine on the host, under sanitizers -------------------------------------------------

@pytest.fixture(scope="session")
def engine():
    """lnnedge-fw-host: device.c, cobs.c and the VM built for this machine with ASan + UBSan."""
    proc = subprocess.run(["make", "-C", str(FIRMWARE_DIR), f"O={OUT}", "-j2", "host"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return OUT / "host" / "lnnedge-fw-host"


def test_protocol_engine_survives_fuzzed_requests_under_sanitizers(engine, models):
    """The engine behind a pty (a serial device path for pyserial, locked with exclusive=True): real
    models first, then thousands of well-formed frames with random payloads for every command, noise and
    damaged frames; AddressSanitizer and UBSan must stay silent and the models must still run."""
    import os
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    child = subprocess.Popen([str(engine)], stdin=master, stdout=master, stderr=subprocess.PIPE)
    os.close(master)
    path = os.ttyname(slave)
    P = protocol()
    rng = random.Random(5)
    link = SerialLink(path, timeout=2.0, retries=4)
    try:
        for name in ("ltc-sine", "ltc-3in-rk4"):
            net, model, inputs = models[name]
            x = inputs_for(inputs, 20, seed=2)
            assert np.max(np.abs(link.run(model, [x], batch=3).outputs[0] - expected(net, x))) <= TOL
        with pytest.raises(DeviceError, match="in use"):
            SerialLink(path).device_info()
        requests = [P.HELLO, P.INFO, P.LOAD_BEGIN, P.LOAD_CHUNK, P.LOAD_COMMIT, P.RUN, P.RESET_STATE, 0x05, 0x7F]
        answered, ran = 0, 0
        blobs = [models[name][1].read_bytes() for name in ("ltc-3in-rk4", "ltc-sine")]
        for i in range(1500):
            if i % 100 == 0:  # a real model now and then, so that RUN reaches lnn_run
                link._model_crc = None
                link._ensure_model(blobs[i // 100 % 2], "model")
            kind = rng.choice(requests)
            if kind == P.RUN and rng.random() < 0.7:
                rows, batch = rng.randrange(1, 30), rng.randrange(1, 40)
                width = (3, 1)[i // 100 % 2] if rng.random() < 0.8 else rng.choice((1, 3, 5))
                body = struct.pack("<HH", rows, batch) + bytes(rng.randrange(256) for _ in range(4 * rows * width))
            elif kind == P.LOAD_BEGIN and rng.random() < 0.5:
                body = struct.pack("<II", rng.randrange(1, 3 << 20), rng.getrandbits(32))
            elif kind == P.LOAD_CHUNK and rng.random() < 0.7:
                body = struct.pack("<I", rng.randrange(0, 5000)) + bytes(rng.randrange(256)
                                                                         for _ in range(rng.randrange(0, 300)))
            else:
                body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
            if rng.random() < 0.1:  # noise and a damaged copy of the frame go first
                wire = bytearray(encode_frame(kind, 0, link._nonce, body))
                wire[rng.randrange(1, len(wire) - 1)] ^= 1 << rng.randrange(8)
                link._port.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + bytes(wire))
            try:
                got = link._request(kind, body, hello=kind == P.HELLO)
                ran += got.type == P.RUN | P.OK_BIT
            except FirmwareError:
                pass
            answered += 1
        assert answered == 1500 and ran > 20, ran
        for name in ("ltc-sine", "ltc-3in-rk4"):  # the engine is still sound
            net, model, inputs = models[name]
            x = inputs_for(inputs, 7, seed=4)
            assert np.max(np.abs(link.run(model, [x]).outputs[0] - expected(net, x))) <= TOL
    finally:
        link.close()
        os.close(slave)
        try:
            _, err = child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
    report = err.decode(errors="replace")
    assert "Sanitizer" not in report and "runtime error" not in report, report[-3000:]
