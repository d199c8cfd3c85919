"""The serial protocol against a bad line and a cut upload, through the firmware's real protocol engine.

The engine (device.c and the VM) runs in this process as `make hostlib`'s library (serial_frames.Engine),
the host side is SerialLink itself; the replay test drives the ASan + UBSan build (`make host`) over
pipes. The campaigns are those `invoke reliability` runs at full size (lnnedge.reliability.serial_frames).
"""

from __future__ import annotations

import struct
import subprocess
import time

import numpy as np
import pytest
from lnnedge.devices.serial import FirmwareError, SerialLink
from lnnedge.devices.serial.protocol import decode_frame, decode_info, encode_frame, protocol
from lnnedge.paths import VM_DIR
from lnnedge.reliability import serial_frames as sf
from support.emulator import OUT
from test_loader import BROKEN, half_model, stateful

FRAMES = 100_000  # each way: the figure vm/PROTOCOL.md section 12 quotes


@pytest.fixture(scope="module")
def engine() -> sf.Engine:
    return sf.engine()


def link_to(engine: sf.Engine) -> SerialLink:
    return SerialLink("engine:", line=sf.EngineLine(engine), timeout=2.0)


def test_damaged_requests_are_never_executed(engine):
    problems: list[str] = []
    started = time.monotonic()
    c = sf.host_to_device(FRAMES, seed=11, problems=problems)
    print(f"{c.tried} damaged requests in {time.monotonic() - started:.1f} s: {c.rejected_cleanly} rejected, "
          f"{c.accepted_correctly} intact inside the damage and executed once, {c.wrongly_accepted} wrongly accepted")
    assert c.clean and c.tried == FRAMES, problems[:10]
    assert c.rejected_cleanly > FRAMES // 2 and c.accepted_correctly > 0


def test_damaged_answers_are_never_taken_for_the_answer(engine):
    problems: list[str] = []
    started = time.monotonic()
    c = sf.device_to_host(FRAMES, seed=12, problems=problems)
    print(f"{c.tried} damaged answers in {time.monotonic() - started:.1f} s: {c.rejected_cleanly} dropped and "
          f"asked again, {c.accepted_correctly} taken intact from the damage, {c.wrongly_accepted} wrongly accepted")
    assert c.clean and c.tried == FRAMES, problems[:10]
    assert c.rejected_cleanly > FRAMES // 2 and c.accepted_correctly > 0


def test_an_upload_cut_at_any_frame_leaves_the_loaded_model_running(engine):
    problems: list[str] = []
    c = sf.load_cut(problems=problems)
    assert c.clean and c.accepted_correctly == c.tried >= 2 * 4, problems


def test_a_refused_model_leaves_the_loaded_model_its_arena_and_its_state(engine, tmp_path):
    """A stateful model A keeps running, state included, through uploads the device refuses (every loader
    error, a transfer with the wrong CRC-32); so does a float16 model, whose float32 copies live in the arena."""
    summed = tmp_path / "sum.lnnb"
    summed.write_bytes(stateful())
    x = np.random.default_rng(1).uniform(-2, 2, (2, 2, 2)).astype(np.float32)  # 2 steps of 2 streams
    with link_to(engine) as link:
        np.testing.assert_array_equal(link.run(summed, [x[0]], batch=2).outputs[0], x[0])
        for name, blob in BROKEN.items():
            broken = tmp_path / f"{name}.lnnb"
            broken.write_bytes(blob)
            with pytest.raises(FirmwareError) as err:
                link.info(broken)
            assert err.value.name == name and "\n" not in str(err.value), str(err.value)
        P = protocol()
        link._request(P.LOAD_BEGIN, struct.pack("<II", 16, 0))
        link._request(P.LOAD_CHUNK, struct.pack("<I", 0) + bytes(16))
        with pytest.raises(FirmwareError, match="E_TRANSFER_CRC"):
            link._request(P.LOAD_COMMIT)
        got = link.run(summed, [x[1]], batch=2, keep_state=True)
        assert got.timing["uploaded"] is False
        np.testing.assert_array_equal(got.outputs[0], x[0] + x[1])  # the state carried on

        half = tmp_path / "f16.lnnb"
        half.write_bytes(half_model())
        y = x.reshape(4, 2)[:3]
        before = link.run(half, [y], batch=3).outputs
        with pytest.raises(FirmwareError):
            link.info(tmp_path / "E_CRC.lnnb")
        after = link.run(half, [y], batch=3)
        assert after.timing["uploaded"] is False
        for y, want in zip(after.outputs, before):
            np.testing.assert_array_equal(y, want)


def test_a_model_too_big_to_sit_beside_the_loaded_one_is_loaded_after_an_unload(engine, tmp_path):
    """The device writes an upload beside the loaded model; when both do not fit it says E_NO_ROOM, and the
    host unloads first (a cut then leaves no model, never half of one)."""
    small = tmp_path / "sum.lnnb"
    small.write_bytes(stateful())
    with link_to(engine) as link:
        link.run(small, [np.ones((1, 2), np.float32)])
        max_model = int(link.device["max_model"])
        P = protocol()
        with pytest.raises(FirmwareError, match=f"E_NO_ROOM: .*: {max_model - 64} \\+ {small.stat().st_size} > "):
            link._request(P.LOAD_BEGIN, struct.pack("<II", max_model - 64, 0))
        big = tmp_path / "big.lnnb"
        big.write_bytes(BROKEN["E_CRC"] + bytes(max_model - 64 - len(BROKEN["E_CRC"])))  # refused at the commit
        with pytest.raises(FirmwareError, match="the device refused big.lnnb: E_") as err:
            link.info(big)
        assert "\n" not in str(err.value)
        link.device_info()
        assert link.model_info == {} and link.stats["uploads"] == 1  # no model loaded, none half loaded
        assert link.run(small, [np.ones((1, 2), np.float32)]).timing["uploaded"] is True


@pytest.fixture(scope="module")
def sanitized_engine():
    """lnnedge-fw-host: the engine on stdin/stdout with ASan + UBSan."""
    out = OUT
    proc = subprocess.run(["make", "-C", str(VM_DIR / "firmware"), f"O={out}", "-j2", "host"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out / "host" / "lnnedge-fw-host"


def test_a_replayed_earlier_request_is_dropped_not_executed_again(sanitized_engine):
    """A line or relay that brings back an earlier frame: the device answers a repeat of its last request from
    its copy, but drops an older request, and the session's HELLO, and counts them in rx_stale."""
    P = protocol()
    child = subprocess.Popen([str(sanitized_engine)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    received = bytearray()

    def exchange(*wires: bytes) -> list:
        """Sends the frames, returns the answers (not NAK or BOOT) up to the one to the last frame."""
        child.stdin.write(b"".join(wires))
        child.stdin.flush()
        last = decode_frame(wires[-1][1:-1]).seq
        frames: list = []
        while not any(f.seq == last and f.type != P.NAK for f in frames):
            received.extend(child.stdout.read1(65536))
            *blocks, rest = bytes(received).split(b"\x00")
            received[:] = rest
            frames += [f for f in (decode_frame(b) for b in blocks if b) if f.type not in (P.NAK, P.BOOT)]
        return frames

    try:
        hello = encode_frame(P.HELLO, 100, 0, struct.pack("<HHI", P.PROTOCOL_VERSION, 0, 7))
        nonce = exchange(hello)[0].nonce
        reset = encode_frame(P.RESET_STATE, 101, nonce, struct.pack("<I", 0))
        assert [f.seq for f in exchange(reset)] == [101]
        assert [f.seq for f in exchange(reset)] == [101]  # sent again: answered from the copy
        info = encode_frame(P.INFO, 102, nonce)
        assert [f.seq for f in exchange(info)] == [102]
        answers = exchange(reset, hello, encode_frame(P.INFO, 103, nonce))
        assert [f.seq for f in answers] == [103], "an earlier request was executed again"
        counters = decode_info(answers[0].payload)
        assert (counters["rx_stale"], counters["rx_dup"]) == ("2", "1")
    finally:
        child.stdin.close()
        child.wait(10)
    report = child.stderr.read().decode(errors="replace")
    assert "Sanitizer" not in report and "runtime error" not in report, report[-3000:]
