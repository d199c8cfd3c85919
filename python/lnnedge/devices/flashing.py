"""`invoke flash --board B`: write a firmware target's image to a board, check it is the one written, reset it.
(Here, in the devices package: how a board is written depends on its kind.)

Real boards (transport serial, `flasher:` in boards.yaml) are written by an existing tool:

    pyocd     pyocd load -t <part> [-u <probe>] --format elf IMAGE.elf            (resets after loading)
    openocd   openocd -f interface/<interface>.cfg -f target/<part>.cfg [-c "adapter serial <probe>"]
                  -c "program IMAGE.elf verify reset exit"                        (reads back, compares)
    st-flash  st-flash [--serial <probe>] --reset write IMAGE.bin <flash origin>  (verifies what it wrote)

then the board is asked for INFO over its serial port: the CRC-32 of the image it runs (the firmware computes
it over its own flash at boot: `image_crc`) must be the .bin's, and the model resident in it the one the build
linked in (CRC-32 and SHA-256, build/firmware/<target>/resident.json). Only then does the task succeed.

An emulated board (transport qemu-system) keeps its flash in build/boards/<board>/: flashing copies the image
beside it, checks the copy's checksum, boots the emulator on it and asks INFO, and only then puts it in place;
a failure at any step leaves the board's flash as it was. The emulator stops when the task ends; the next task
that talks to the board (verify, run) boots it from that flash.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from .. import config
from ..artifacts import MissingArtifact
from ..build import output_dir, resident
from ..config import Board, FlasherSettings, Target
from ..errors import LnnedgeError
from .emulator import Emulator, emulated_flash


class FlashError(LnnedgeError, RuntimeError):
    """Flashing did not complete: the tool is missing or failed, or the board does not run what was written."""


@dataclass(frozen=True)
class FlashReport:
    board: str
    target: str
    how: str  # the flasher's command line, or "emulated flash: <path>"
    image: str
    image_bytes: int
    image_crc: str
    model: str  # the resident model's file, or "" (none built in)
    model_sha256: str
    seconds: float

    def rows(self) -> list[tuple[str, str]]:
        return [("board", self.board), ("target", self.target), ("written with", self.how),
                ("image", f"{self.image} ({self.image_bytes} bytes, CRC-32 {self.image_crc})"),
                ("resident model", f"{self.model} (SHA-256 {self.model_sha256[:16]}..)" if self.model else "none"),
                ("checked", "the board's INFO: image CRC-32 and resident model digest match"),
                ("seconds", f"{self.seconds:.1f}")]


def flasher_command(board: Board, elf: Path, image: Path) -> list[str]:
    """The command line of the board's flasher for this image (elf for pyocd and openocd, the .bin at the flash
    origin for st-flash)."""
    f: FlasherSettings | None = board.flasher
    if f is None:
        raise FlashError(f"board {board.name} has no flasher: add `flasher: pyocd | openocd | st-flash` (and its "
                         "`flash:` options) to its entry in boards.yaml")
    if f.tool == "pyocd":
        argv = ["pyocd", "load", "-t", f.part, *(["-u", f.probe] if f.probe else []), "--format", "elf", str(elf)]
    elif f.tool == "openocd":
        argv = ["openocd", "-f", f"interface/{f.interface}.cfg", "-f", f"target/{f.part}.cfg",
                *(["-c", f"adapter serial {f.probe}"] if f.probe else []),
                "-c", f"program {elf} verify reset exit"]
    else:
        origin = board.target.memory["flash"].origin
        argv = ["st-flash", *(["--serial", f.probe] if f.probe else []), "--reset", "write", str(image),
                f"{origin:#010x}"]
    return [*argv[:-1], *f.extra, argv[-1]] if f.tool == "pyocd" else [*argv, *f.extra]


def _check_flasher(board: Board, argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        install = {"pyocd": "pip install pyocd", "openocd": "apt-get install openocd",
                   "st-flash": "apt-get install stlink-tools"}[argv[0]]
        raise FlashError(f"flashing {board.name}: {argv[0]} not found ({install}); nothing was written")


def _run_flasher(board: Board, argv: list[str]) -> None:
    """The flasher, to the end; any failure is one FlashError line (the tool's last line of errors in it)."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=board.flasher.timeout)
    except subprocess.TimeoutExpired:
        raise FlashError(f"flashing {board.name}: {argv[0]} did not finish within {board.flasher.timeout:g} s; "
                         "the board's flash may be partly written: flash it again") from None
    if proc.returncode != 0:
        said = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise FlashError(f"flashing {board.name}: {argv[0]} failed (exit {proc.returncode})"
                         f"{': ' + said[-1] if said else ''}; the board was not reported flashed")


def _check_answer(board: Board, info: dict, image: bytes, record: dict | None) -> None:
    """The board's INFO against what was written: its image CRC-32, its resident model."""
    want = f"{zlib.crc32(image):#010x}"
    got = info.get("image_crc")
    if got != want or int(info.get("image_size", -1)) != len(image):
        raise FlashError(f"{board.name} runs another image after flashing: image_crc {got} "
                         f"({info.get('image_size')} bytes), written {want} ({len(image)} bytes)")
    if record is None:
        return
    if info.get("resident_error"):
        raise FlashError(f"{board.name} refused the model built into the image: {info['resident_error']}")
    if info.get("model_source") != "flash" or info.get("model_sha256") != record["sha256"] \
            or info.get("model_crc") != f"{record['crc32']:#010x}":
        raise FlashError(f"{board.name} does not report the model built into the image: model "
                         f"{info.get('model_sha256', 'none')}, built in {record['sha256']}")


def _ask(board: Board, url: str) -> dict:
    from .serial import SerialLink

    s = board.serial
    kwargs = {"timeout": s.frame_timeout, "retries": s.retries, "baudrate": s.baudrate} if s else {}
    with SerialLink(url, clock_hz=board.target.clock_hz, name=board.name, **kwargs) as link:
        link.device_info()
        return {**link.device, **link.model_info}


def _check_image(target: Target, elf: Path, image: Path) -> None:
    if not elf.is_file() or not image.is_file():
        raise MissingArtifact(f"{elf} does not exist: run `invoke build --target {target.name} --model M` first")


def flash(board_name: str | None, out: Path | None = None) -> FlashReport:
    """Flash the board with its target's build (in `out`, default build/firmware/<target>)."""
    board = config.board(board_name)
    target = board.target
    if target.firmware is None or board.transport not in ("serial", "qemu-system"):
        raise FlashError(f"board {board.name} is not a microcontroller (transport {board.transport}): "
                         "`invoke deploy` puts the VM and the model on it")
    out = out or output_dir(target)
    elf, image_path = out / target.firmware.elf, out / target.firmware.bin
    argv = flasher_command(board, elf, image_path) if board.transport == "serial" else []
    if argv:
        _check_flasher(board, argv)
    _check_image(target, elf, image_path)
    image = image_path.read_bytes()
    record = resident(target, out)
    started = time.monotonic()
    if board.transport == "qemu-system":
        how = _flash_emulated(board, elf, image, record)
    else:
        _run_flasher(board, argv)
        _check_answer(board, _ask(board, board.serial.port), image, record)
        how = shlex.join(argv)
    return FlashReport(board.name, target.name, how, str(elf), len(image), f"{zlib.crc32(image):#010x}",
                       record["file"] if record else "", record["sha256"] if record else "",
                       time.monotonic() - started)


def _flash_emulated(board: Board, elf: Path, image: bytes, record: dict | None) -> str:
    """Copy, check the copy, boot it, ask INFO; only then is it the board's flash."""
    dest = emulated_flash(board)
    dest.parent.mkdir(parents=True, exist_ok=True)
    new = dest.with_name(dest.name + ".new")
    shutil.copyfile(elf, new)
    try:
        if hashlib.sha256(new.read_bytes()).digest() != hashlib.sha256(elf.read_bytes()).digest():
            raise FlashError(f"flashing {board.name}: the copy in {new} differs from {elf}")
        with Emulator(board.target, new) as emu:
            _check_answer(board, _ask(board, emu.url), image, record)
        os.replace(new, dest)
    finally:
        new.unlink(missing_ok=True)
    return f"emulated flash: {dest}"
