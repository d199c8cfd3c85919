"""Microcontrollers with their real memory maps: the nRF51 (Cortex-M0, soft-float, 16 KB RAM) on QEMU's microbit
with the model built into its flash, `invoke flash` on an emulated board, and the real flashers' path as far as it
goes without a probe (command lines, a missing or failing tool, a board that does not run what was written).

One nRF51 image is built per session (build/test-firmware/nrf51, incremental across sessions) around a seeded
stateful LTC (the ltc-sequence recipe's model, untrained), and flashed to a board of a boards file of the tests'
own (its emulated flash is build/boards/test-m0/, not a board of boards.yaml)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from lnnedge import config, lnnb, quantize
from lnnedge import recipe as recipes
from lnnedge.build import build_firmware, exclusive, firmware_make_args, output_dir, resident
from lnnedge.compiler import compile_module
from lnnedge.devices import DeviceError, open_device, prepare
from lnnedge.devices.emulator import Emulator, emulated_flash
from lnnedge.devices.flashing import FlashError, flash, flasher_command
from lnnedge.devices.serial import SerialLink
from lnnedge.errors import LnnedgeError
from lnnedge.models import build_model
from lnnedge.paths import BUILD_DIR, ROOT
from lnnedge.pipeline.compile import _module

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and arm-none-eabi-gcc")

NRF51 = config.load_target("nrf51")
OUT = BUILD_DIR / "test-firmware" / "nrf51"
STM32F405 = config.load_target("stm32f405")
STREAMS, STEPS = 16, 6

BOARDS = """
boards:
  test-m0: {target: nrf51, transport: qemu-system}
  test-m0-unflashed: {target: nrf51, transport: qemu-system}
  test-pyocd: {target: stm32f405, transport: serial, port: "PORT", flasher: pyocd,
               flash: {part: stm32f405rg, probe: "0669FF555052836687031138"}}
  test-openocd: {target: stm32f405, transport: serial, port: "PORT", flasher: openocd,
                 flash: {interface: stlink, part: stm32f4x, probe: "066DFF49"}}
  test-stflash: {target: stm32f405, transport: serial, port: "PORT", flasher: st-flash, flash: {probe: "0x3f"}}
  test-m0-openocd: {target: nrf51, transport: serial, port: "PORT", flasher: openocd,
                    flash: {interface: cmsis-dap, part: nrf51}}
  test-m0-stflash: {target: nrf51, transport: serial, port: "PORT", flasher: st-flash,
                    timeouts: {frame: 0.5}, retries: 2}
  test-f405: {target: stm32f405, transport: qemu-system}
  test-f405-unflashed: {target: stm32f405, transport: qemu-system}
"""


def sequence_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_model(recipes.load("ltc-sequence").model)
    with torch.no_grad():  # as conftest.untrained: a non-trivial normalisation, spread time constants
        net.in_mean.fill_(0.5)
        net.in_std.fill_(2.0)
        net.out_mean.fill_(0.25)
        net.out_std.fill_(1.5)
        net.ode.func.log_tau.uniform_(-1, 1)
    return net.eval()


def compiled(net: torch.nn.Module, path: Path) -> Path:
    module, examples, state, meta = _module(recipes.load("ltc-sequence"), net)
    return compile_module(module, examples, name="ltc-sequence", meta=meta, state=state).save(path)


@pytest.fixture(scope="module")
def boards(tmp_path_factory, monkeypatch_module):
    path = tmp_path_factory.mktemp("boards") / "boards.yaml"
    path.write_text(BOARDS)
    monkeypatch_module.setenv("LNNEDGE_BOARDS", str(path))
    return path


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def m0(tmp_path_factory):
    """The nRF51 image with a seeded stateful LTC in its flash; the model's net and file."""
    net = sequence_net(0)
    model = compiled(net, tmp_path_factory.mktemp("m0") / "model.lnnb")
    build_firmware(NRF51, echo=lambda _line: None, model=model, out=OUT)
    return net, model


@pytest.fixture(scope="module")
def flashed(boards, m0):
    emulated_flash(config.board("test-m0")).unlink(missing_ok=True)
    return flash("test-m0", OUT)


def test_the_linker_script_takes_each_part_s_memory_from_its_target_file(tmp_path):
    """memory.ld, which cortex_m.ld includes, is written from targets/<target>.yaml's memory: (nothing is built)."""
    expected = {"cortex-m4": (0x00000000, 4 << 20, 0x20000000, 4 << 20),
                "stm32f405": (0x08000000, 1 << 20, 0x20000000, 128 << 10),
                "nrf51": (0x00000000, 256 << 10, 0x20000000, 16 << 10)}
    for name, (flash_at, flash_size, ram_at, ram_size) in expected.items():
        target = config.load_target(name)
        out = tmp_path / name
        subprocess.run([*firmware_make_args(target, out=out), str(out / "memory.ld")], check=True,
                       capture_output=True)
        text = (out / "memory.ld").read_text()
        assert re.search(rf"FLASH \(rx\)\s*: ORIGIN = {flash_at:#010x}, LENGTH = {flash_size}\b", text), text
        assert re.search(rf"RAM\s*\(rwx\) : ORIGIN = {ram_at:#010x}, LENGTH = {ram_size}\b", text), text


def test_flashing_the_emulated_m0_checks_the_image_and_the_model_it_runs(flashed, m0):
    _, model = m0
    image = (OUT / NRF51.firmware.bin).read_bytes()
    assert flashed.image_bytes == len(image)
    assert flashed.model_sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert emulated_flash(config.board("test-m0")).read_bytes() == (OUT / NRF51.firmware.elf).read_bytes()


def test_a_stateful_model_in_flash_runs_like_pytorch_on_the_m0(flashed, m0):
    """16 streams of 6 steps, time-major; the M0's 1,280-byte arena holds fewer streams, so they go in groups, each
    from zero state. Every step within 1e-4 of PyTorch, the model run from flash (nothing uploaded)."""
    net, model = m0
    x = np.random.default_rng(3).normal(0, 1, (STREAMS, STEPS, 1)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    with open_device(config.board("test-m0")) as device:
        result = device.run(model, [np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(STEPS * STREAMS, 1)],
                            batch=STREAMS)
        got = result.outputs[0].reshape(STEPS, STREAMS, -1).transpose(1, 0, 2)
        assert result.info["model_source"] == "flash" and result.timing["uploaded"] is False
        assert result.timing["stream_groups"] > 1
        assert result.info["board"] == "nrf51" and result.info["cycle_counter"] == "timer0"
        np.testing.assert_allclose(got, want.reshape(got.shape), atol=1e-4, rtol=0)

        other = compiled(sequence_net(1), model.with_name("other.lnnb"))
        with pytest.raises(DeviceError, match=r"runs only the model in its flash and holds model [0-9a-f]{16}\.\. "):
            device.run(other, [x[:, 0]], batch=STREAMS)


def test_a_built_in_model_the_m0_cannot_hold_is_named_with_the_vm_s_reason(tmp_path):
    """ltc-sine with float16 weights widens them into the arena, far more than the nRF51's 1,280 bytes: the image
    boots, refuses the model built into it (E_ARENA), and a run says so instead of 'holds no model'."""
    torch.manual_seed(0)
    recipe = recipes.load("ltc-sine")
    net = quantize.fake_quantize(build_model(recipe.model).eval(), recipe.quantization.keep_float, "f16")
    module, examples, state, meta = _module(recipe, net)
    stored = quantize.compile_options(net, recipe.quantization.keep_float, "f16")
    big = compile_module(module, examples, name="ltc-sine", meta=meta, state=state, **stored).save(tmp_path / "f16")
    out = tmp_path / "image"
    build_firmware(NRF51, echo=lambda _line: None, model=big, out=out)
    with Emulator(NRF51, out / NRF51.firmware.elf) as emu, SerialLink(emu.url, name="m0") as link:
        with pytest.raises(DeviceError, match=r"^m0 runs only the model in its flash and refused the one built "
                                              r"into its image: E_ARENA \(arena too small for the model\)$"):
            link.run(big, [np.zeros((1, 1), np.float32)])


def test_an_emulated_m0_that_boots_its_build_gets_the_model_it_is_asked_to_run_built_in(boards, flashed, m0):
    """`invoke verify` / `run` on an emulated board whose firmware takes no upload: with nothing flashed to it, the
    kit builds the image around the model it runs (once: the same model again builds nothing), and the image runs
    it from flash like PyTorch. A board that was flashed boots its flash, as a real one: nothing is built, and the
    run names the model the flash holds (test_a_stateful_model_in_flash_runs_like_pytorch_on_the_m0)."""
    net_a, model_a = m0
    net_b = sequence_net(2)
    model_b = compiled(net_b, model_a.with_name("b.lnnb"))
    board = config.board("test-m0-unflashed")
    image = output_dir(NRF51) / NRF51.firmware.elf

    prepare(board, model_a)
    assert resident(NRF51)["sha256"] == hashlib.sha256(model_a.read_bytes()).hexdigest()
    built = image.stat().st_mtime_ns
    prepare(board, model_a)
    assert image.stat().st_mtime_ns == built

    prepare(board, model_b)
    assert resident(NRF51)["sha256"] == hashlib.sha256(model_b.read_bytes()).hexdigest()
    x = np.random.default_rng(4).normal(0, 1, (1, STEPS, 1)).astype(np.float32)
    with torch.no_grad():
        want = net_b(torch.from_numpy(x)).numpy()
    with open_device(board) as device:
        result = device.run(model_b, [np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(STEPS, 1)], batch=1)
    assert result.info["model_source"] == "flash" and result.timing["uploaded"] is False
    np.testing.assert_allclose(result.outputs[0].reshape(want.shape), want, atol=1e-4, rtol=0)

    # stale (older than its sources) while the file it was built from is gone: rebuilt from the file given
    again = model_b.with_name("b-again.lnnb")
    again.write_bytes(model_b.read_bytes())
    model_b.unlink()
    os.utime(image, (0, 0))
    prepare(board, again)
    assert resident(NRF51)["file"] == str(again.resolve()) and image.stat().st_mtime > 0

    prepare(config.board("test-m0"), model_a)  # flashed: boots its flash, whatever the build holds
    assert resident(NRF51)["file"] == str(again.resolve())


def test_an_emulated_selective_image_is_rebuilt_for_a_model_with_other_ops(boards, tmp_path):
    """The STM32F405 image takes uploads but links only the ops of the model built into it: on an emulated board
    that boots the build, a model with another op (RELU) gets an image built around it (on a flashed or real
    board it is refused with E_NOT_LINKED and the commands that would run it: the test below)."""
    board = config.board("test-f405-unflashed")
    build_firmware(STM32F405, echo=lambda _line: None, model=compiled(sequence_net(0), tmp_path / "sequence.lnnb"))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).eval()
    relu = compile_module(net, (torch.zeros(1, 1),)).save(tmp_path / "relu.lnnb")
    prepare(board, relu)
    assert resident(STM32F405)["sha256"] == hashlib.sha256(relu.read_bytes()).hexdigest()
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(8, 1)
    with open_device(board) as device:
        got = device.run(relu, [x]).outputs[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, net(torch.from_numpy(x)).numpy(), atol=1e-6, rtol=0)


def test_a_compiled_file_verifies_on_the_m0_which_holds_one_row_at_a_time(boards, tmp_path):
    """lnnedge.verify on a compiled file (`invoke verify --file`) builds what the board needs, as the recipe path
    does: here the nRF51 image around the file; the file's 4 bundled cases of a stateless model go one at a time,
    its 1,280-byte arena holding one row (they went as one batch of 4 and were refused)."""
    import lnnedge

    torch.manual_seed(0)
    net = build_model(recipes.load("ltc-sine").model).eval()
    x = np.linspace(0.0, 6.0, 4, dtype=np.float32).reshape(4, 1)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    module, examples, state, meta = _module(recipes.load("ltc-sine"), net)
    path = compile_module(module, examples, name="ltc-sine", meta=meta, state=state,
                          tests=lnnb.TestSet(x, y, 1e-5)).save(tmp_path / "model.lnnb")
    report = lnnedge.verify(path, board="test-m0-unflashed")
    assert report.passed and report.data["n"] == 4 and report.data["isa"] == "scalar", report.data
    assert resident(NRF51)["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_build_waits_while_another_builds_in_the_same_directory(tmp_path):
    """Two builds into one output directory (two tasks at once, a test beside a task) run one after the other:
    while the directory's lock is held (as a build in another process holds it), a build does not start."""
    model = compiled(sequence_net(0), tmp_path / "model.lnnb")
    out = tmp_path / "image"
    built = threading.Event()

    def build() -> None:
        build_firmware(NRF51, echo=lambda _line: None, model=model, out=out)
        built.set()

    with exclusive(out):
        worker = threading.Thread(target=build)
        worker.start()
        assert not built.wait(2.0) and not (out / NRF51.firmware.elf).exists()
    worker.join(300)
    assert built.is_set() and (out / NRF51.firmware.elf).is_file()


def test_a_failed_flash_leaves_the_emulated_board_as_it_was(flashed, tmp_path):
    """A damaged image does not boot: the flash fails in one line and the board keeps (and runs) what it had."""
    board = config.board("test-m0")
    before = emulated_flash(board).read_bytes()
    bad = tmp_path / "out"
    shutil.copytree(OUT, bad, ignore=shutil.ignore_patterns("obj"))
    elf = bad / NRF51.firmware.elf
    elf.write_bytes(elf.read_bytes()[:100])
    with pytest.raises(LnnedgeError) as failed:  # the emulator refuses it or dies on it: either way, one line
        flash("test-m0", bad)
    assert "\n" not in str(failed.value).strip()
    assert emulated_flash(board).read_bytes() == before
    with open_device(board) as device:
        assert device.link.device_info()["image_crc"] == flashed.image_crc


def test_a_selective_image_names_the_build_and_flash_that_would_run_a_model_it_lacks_ops_for(boards, tmp_path):
    """The STM32F405 image takes uploads but links only the ops of the model built into it (a selective build):
    a model with another op (RELU) is refused by the device with E_NOT_LINKED, and the error says which two
    commands put an image with that model's ops on this board."""
    resident = compiled(sequence_net(0), tmp_path / "resident.lnnb")
    out = BUILD_DIR / "test-firmware" / "stm32f405"
    build_firmware(STM32F405, echo=lambda _line: None, model=resident, out=out)
    flash("test-f405", out)
    torch.manual_seed(0)
    other = compile_module(torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)),
                           (torch.zeros(1, 1),)).save(tmp_path / "relu.lnnb")
    with open_device(config.board("test-f405")) as device:
        with pytest.raises(DeviceError) as refused:
            device.run(other, [np.zeros((1, 1), np.float32)])
    assert "E_NOT_LINKED" in str(refused.value)
    assert str(refused.value).endswith(f"invoke build --target stm32f405 --file {other}, then invoke flash "
                                       "--board test-f405")


def test_the_real_flashers_command_lines(boards, tmp_path):
    elf, image = tmp_path / "fw.elf", tmp_path / "fw.bin"
    assert flasher_command(config.board("test-pyocd"), elf, image) == [
        "pyocd", "load", "-t", "stm32f405rg", "-u", "0669FF555052836687031138", "--format", "elf", str(elf)]
    assert flasher_command(config.board("test-openocd"), elf, image) == [
        "openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32f4x.cfg", "-c", "adapter serial 066DFF49",
        "-c", f"program {elf} verify reset exit"]
    assert flasher_command(config.board("test-stflash"), elf, image) == [
        "st-flash", "--serial", "0x3f", "--reset", "write", str(image), "0x08000000"]
    with pytest.raises(FlashError, match="has no flasher"):
        flasher_command(config.board("test-m0"), elf, image)


def stand_in(directory: Path, name: str, body: str) -> None:
    """A stand-in for a flasher program: no probe or board is attached to this machine, so the real tools cannot
    run; this script takes their place on PATH to fail (or pretend to succeed) the way they do."""
    path = directory / name
    path.write_text(f"#!/bin/sh\n# stand-in for {name}: no debug probe exists here\n{body}\n")
    path.chmod(0o755)


def test_a_missing_or_failing_flasher_ends_in_one_line_and_nothing_is_reported_flashed(boards, flashed, tmp_path,
                                                                                         monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    # the program missing: the task itself, one line on stderr, exit 1
    proc = subprocess.run([sys.executable, "-m", "invoke", "flash", "--board", "test-pyocd"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "pyocd not found" in proc.stderr and "nothing was written" in proc.stderr
    # a non-zero exit, with the tool's last words
    stand_in(bin_dir, "openocd", 'echo "Open On-Chip Debugger 0.12.0"; echo "Error: open failed" >&2; exit 1')
    with pytest.raises(FlashError) as failed:
        flash("test-m0-openocd", OUT)
    assert "openocd failed (exit 1): Error: open failed" in str(failed.value)
    assert "\n" not in str(failed.value)
    # a tool that says it wrote the image, but the board (here the emulated M0 on the serial port) still runs
    # the old one: the INFO check refuses to call that flashed
    stand_in(bin_dir, "st-flash", 'echo "Flash written and verified! jolly good!"; exit 0')
    new = tmp_path / "new"
    shutil.copytree(OUT, new, ignore=shutil.ignore_patterns("obj"))
    image = bytearray((new / NRF51.firmware.bin).read_bytes())
    image[-1] ^= 0xFF
    (new / NRF51.firmware.bin).write_bytes(bytes(image))
    with Emulator(NRF51, emulated_flash(config.board("test-m0"))) as emu:
        text = BOARDS.replace('"PORT"', f'"{emu.url}"')
        boards.write_text(text)
        try:
            with pytest.raises(FlashError, match="runs another image after flashing: image_crc "):
                flash("test-m0-stflash", new)
            # and when the board does run what the tool was given, the same path succeeds
            done = flash("test-m0-stflash", OUT)
            assert done.how.startswith("st-flash --reset write ") and done.how.endswith(" 0x00000000")
            assert done.image_crc == flashed.image_crc
        finally:
            boards.write_text(BOARDS)


def test_an_emulator_that_dies_at_start_says_so_in_one_line(tmp_path, monkeypatch):
    """QEMU dying on a bad image before it listens prints an error and a register dump; the message keeps its first
    line. A stand-in QEMU prints that on purpose: the real one does it only now and then (the flash test above
    caught it once in a suite run, its other way of failing being one line already)."""
    from lnnedge.devices.emulator import EmulatorError

    fake = tmp_path / NRF51.qemu.program
    fake.write_text("#!/bin/sh\necho 'qemu: fatal: Lockup: can not escalate 3 to HardFault'\necho\n"
                    "echo 'R00=00000000 R01=00000000 R02=00000000 R03=00000000'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    image = tmp_path / "fw.elf"
    image.write_bytes(b"\x7fELF")
    with pytest.raises(EmulatorError) as failed:
        Emulator(NRF51, image).start()
    assert str(failed.value) == (f"{NRF51.qemu.program} -M {NRF51.qemu.machine} did not start: "
                                 "qemu: fatal: Lockup: can not escalate 3 to HardFault")


def _boot_writes(target_name: str) -> list[tuple[int, int]]:
    """The writes to the System Control Space the image of the target makes from reset until board_init enables
    its first interrupt line (an NVIC ISER register, offsets 0x100-0x13C), as QEMU's nvic_sysreg_write trace reports
    them. A watchdog kills QEMU after 60 s, so an image that never gets there fails instead of hanging."""
    target = config.load_target(target_name)
    elf = build_firmware(target, echo=lambda _line: None).runner
    proc = subprocess.Popen([target.qemu.program, "-M", target.qemu.machine, "-cpu", target.qemu.cpu, "-display",
                             "none", "-monitor", "none", "-serial", "null", "-kernel", str(elf), "-trace",
                             "nvic_sysreg_write"], stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    writes = []
    try:
        for line in proc.stderr:
            found = re.search(r"write addr (0x[0-9a-f]+) data (0x[0-9a-f]+)", line)
            if found:
                writes.append((int(found[1], 16), int(found[2], 16)))
                if 0x100 <= writes[-1][0] < 0x140:
                    break
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
    assert writes and 0x100 <= writes[-1][0] < 0x140, f"{target_name}: no NVIC enable in the trace: {writes}"
    return writes


@pytest.mark.parametrize(("target_name", "cached"), [("cortex-m7", True), ("cortex-m55", True), ("cortex-m4", False)])
def test_cores_with_caches_turn_them_on_at_reset(target_name, cached):
    """The Cortex-M7 and M55 images invalidate the instruction cache (ICIALLU, SCS offset 0xF50) and the data cache
    (DCISW, 0xF60) and set CCR.IC and CCR.DC (0xD14) before main; the Cortex-M4, which has no cache, writes none of
    them. QEMU models no cache, but its trace shows each write the reset code makes."""
    writes = dict(_boot_writes(target_name))
    if cached:
        assert 0xF50 in writes and 0xF60 in writes
        assert writes[0xD14] & (3 << 16) == 3 << 16
    else:
        assert not {0xF50, 0xF60, 0xD14} & writes.keys()
