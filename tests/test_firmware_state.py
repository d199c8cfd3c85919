"""A stateful model on the bare-metal firmware (QEMU mps2-an386): the state carries across the chunks of a RUN
and from one RUN to the next, rows that are not whole time steps are refused (E_BATCH), and RESET_STATE calls lnn_reset
and leaves the rest of the arena (the float32 copies of float16 constants) to the loaded model."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest
from lnnedge import config, isa, lnnb
from lnnedge.devices.base import DeviceError
from lnnedge.devices.serial import SerialDevice, SerialLink
from lnnedge.devices.serial.link import FirmwareError
from support.emulator import build_firmware, m4_board
from test_loader import F32, half_model, stateful

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and arm-none-eabi-gcc")


@pytest.fixture(scope="module")
def link(tmp_path_factory):
    with m4_board(build_firmware()["elf"]) as emu:
        transport = SerialLink(emu.url, timeout=2.0)
        yield transport
        transport.close()


def test_state_carries_across_chunks_and_runs_until_reset_state(link, tmp_path):
    """The running-sum model of test_loader (y = s += x): RUN takes its chunks as time steps."""
    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful())
    x = np.random.default_rng(1).uniform(-2, 2, (4, 2, 2)).astype(np.float32)  # 4 steps of 2 streams
    got = link.run(path, [x[:2].reshape(4, 2)], batch=2).outputs[0].reshape(2, 2, 2)
    np.testing.assert_array_equal(got, np.cumsum(x[:2], axis=0, dtype=np.float32))
    # the next RUN continues the same streams (the transport resets first unless asked to keep the state)
    got = link.run(path, [x[2:].reshape(4, 2)], batch=2, keep_state=True).outputs[0].reshape(2, 2, 2)
    np.testing.assert_array_equal(got, np.cumsum(x, axis=0, dtype=np.float32)[2:])
    link.reset_state()
    got = link.run(path, [x[0]], batch=2, keep_state=True)
    assert got.timing["uploaded"] is False  # the model stayed, its state did not
    np.testing.assert_array_equal(got.outputs[0], x[0])
    # 3 rows at batch 2: a last chunk of 1 row would be another batch and lose the state (lnn_run_rows's rule:
    # whole time steps only): the host refuses it before sending, the device itself answers E_BATCH
    rows = np.concatenate([x[1], x[2, :1]])
    with pytest.raises(DeviceError, match="3 rows is not a multiple of 2"):
        link.run(path, [rows], batch=2, keep_state=True)
    with pytest.raises(FirmwareError) as refused:
        link._request(link.P.RUN, struct.pack("<HH", 3, 2) + rows.tobytes())
    assert refused.value.domain == "vm" and refused.value.name == "E_BATCH"
    # the image links no status names (LNN_NO_NAMES): the host names the code from lnn_status.def
    meaning = isa.statuses()[isa.status_code("E_BATCH")][1]
    assert f"E_BATCH: {meaning}" in str(refused.value)
    assert meaning.encode() not in build_firmware()["elf"].read_bytes()
    got = link.run(path, [x[1]], batch=2, keep_state=True).outputs[0]  # the refused runs left the state alone
    np.testing.assert_array_equal(got, x[0] + x[1])
    # without keep_state a run starts from zero whatever the device held (here x[0], kept it would give x0 + x1)
    link.run(path, [x[0]], batch=2, keep_state=True)
    got = link.run(path, [x[1]], batch=2).outputs[0]
    np.testing.assert_array_equal(got, x[1])


def test_reset_state_keeps_the_float16_constants_widened_at_load(link, tmp_path):
    """The float16 model of test_loader computes what its float32 twin does, before and after RESET_STATE."""
    x = np.random.default_rng(2).uniform(-2, 2, (3, 2)).astype(np.float32)
    twin = tmp_path / "f32.lnnb"
    twin.write_bytes(half_model(dtype=F32))
    expected = link.run(twin, [x], batch=3).outputs
    path = tmp_path / "f16.lnnb"
    path.write_bytes(half_model())
    before = link.run(path, [x], batch=3).outputs
    link.reset_state()
    after = link.run(path, [x], batch=3, keep_state=True)
    assert after.timing["uploaded"] is False
    for got in (before, after.outputs):
        for y, want in zip(got, expected):
            np.testing.assert_array_equal(y, want)


def test_the_smoke_test_runs_a_stateful_models_cases_as_streams_from_zero(link, tmp_path):
    """The firmware board's smoke test (SerialDevice.test, what deploy and `invoke run` hold a model to) takes a
    stateful model's bundled cases as `lnnvm test` does: each the first step of its own stream, from zero state.
    Run one after another at batch 1 they summed into each other (ltc-sequence on qemu-m4: max |err| 1.52)."""
    x = np.random.default_rng(3).uniform(-2, 2, (6, 2)).astype(np.float32)
    path = tmp_path / "sum-tests.lnnb"
    path.write_bytes(stateful(tests=lnnb.TestSet(x, x.copy(), 0.0)))
    device = SerialDevice(config.board("qemu-m4"), build_firmware()["elf"])
    device._link = link  # the module's emulator, not a second boot
    smoke = device.test(path)
    assert smoke.cases == 6 and smoke.passed and smoke.max_abs_err == 0.0, smoke.summary


def test_a_stream_steps_one_run_at_a_time_and_a_restart_ends_it_by_name(tmp_path):
    """`invoke stream` on a firmware board (SerialStream): one RUN per step, the device keeping the running sum
    between them, reset starting from zero again; after the board restarted, the state is gone and each step
    fails (the connection lost, then the state) instead of going on from zero."""
    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful())
    x = np.random.default_rng(4).uniform(-2, 2, (5, 2)).astype(np.float32)
    with m4_board(build_firmware()["elf"]) as emu:
        device = SerialDevice(config.board("qemu-m4"), build_firmware()["elf"])
        device._link = SerialLink(emu.url, timeout=2.0)  # this emulator, not the board's own boot
        try:
            with device.stream(path) as stream:
                got = np.stack([stream.step(row) for row in x[:3]])
                np.testing.assert_array_equal(got, np.cumsum(x[:3], axis=0, dtype=np.float32))
                stream.reset()
                np.testing.assert_array_equal(stream.step(x[3]), x[3])
                with pytest.raises(DeviceError, match=r"takes 2 values \(one row of every input, in order\), got 3"):
                    stream.step(np.zeros(3, np.float32))
                emu.restart()
                with pytest.raises(DeviceError, match="lost"):  # the old connection went with the old boot
                    stream.step(x[4])
                with pytest.raises(DeviceError, match="restarted.*the state kept from the previous run is lost"):
                    stream.step(x[4])
                stream.reset()  # from zero again: the model is sent anew and the stream goes on
                np.testing.assert_array_equal(stream.step(x[4]), x[4])
        finally:
            device.close()
