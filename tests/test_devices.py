"""The device layer: every kind of board behind one Device protocol, opened lazily, refusing what it cannot do
with a CapabilityError; emulators started from targets/ facts; the fleet; and the layering rules around it
(no transport sniffing outside lnnedge.devices, no test helper imported by production code)."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from lnnedge import config
from lnnedge.artifacts import MissingArtifact
from lnnedge.devices import CapabilityError, Device, DeviceError, open_device
from lnnedge.devices.emulator import Emulator
from lnnedge.devices.fleet import across
from lnnedge.devices.serial.rows import rows_per_frame
from lnnedge.paths import ROOT

PACKAGE = ROOT / "python" / "lnnedge"
KINDS = {"host": "local", "pi": "qemu-user", "m4": "emulator", "uart": "serial", "net": "ssh"}


@pytest.fixture
def boards(tmp_path) -> Path:
    """One board of every kind; nothing behind the serial port or the SSH port."""
    path = tmp_path / "boards.yaml"
    path.write_text(yaml.safe_dump({"boards": {
        "host": {"target": "host", "transport": "local"},
        "pi": {"target": "rpi4", "transport": "qemu"},
        "m4": {"target": "cortex-m4", "transport": "qemu-system"},
        "uart": {"target": "cortex-m4", "transport": "serial", "port": str(tmp_path / "no-such-tty")},
        "net": {"target": "rpi4", "transport": "ssh", "host": "127.0.0.1", "port": 9, "user": "pi",
                "key": "k", "remote_dir": "/srv/lnnedge", "command_prefix": "qemu-aarch64 -cpu cortex-a72"},
        "mac": {"target": "apple-m1", "transport": "local"}}}))
    return path


def test_every_board_opens_as_a_device_of_its_kind_without_connecting(boards):
    """open_device connects to nothing and starts nothing: status of a board that keeps nothing is answered
    without its port, and the emulator of a qemu-system board is not running."""
    for name, kind in KINDS.items():
        with open_device(config.board(name, boards)) as device:
            assert isinstance(device, Device) and device.kind == kind and device.name == name
            assert device.emulated == (kind in ("qemu-user", "emulator", "ssh"))  # ssh: its qemu command prefix
            if kind != "ssh":
                status = device.status()
                assert status["deployed"] is False and "nothing is deployed" in status["note"]
            if kind == "emulator":
                assert not device.emulator.alive()


@pytest.mark.parametrize("name", ["m4", "uart"])
def test_a_kind_refuses_a_verb_it_cannot_do_with_a_capability_error(boards, tmp_path, name):
    with open_device(config.board(name, boards)) as device:
        with pytest.raises(CapabilityError, match=rf"^board {name} \({KINDS[name]}\): .* is not available; "):
            device.trace(tmp_path / "m.lnnb", [np.zeros((1, 1), np.float32)])
        if name == "m4":
            assert not device.emulator.alive()  # refused before anything started
    assert issubclass(CapabilityError, DeviceError)


def test_a_missing_runner_names_the_command_that_builds_it(boards, sine_file, tmp_path):
    with open_device(config.board("mac", boards)) as device:
        device.program = tmp_path / "lnnvm"  # as if build/vm/apple-m1 were not built
        with pytest.raises(MissingArtifact, match=r"lnnvm does not exist: run `invoke build --target apple-m1`"):
            device.run(sine_file, [np.zeros((1, 1), np.float32)])


def test_a_serial_board_without_its_port_says_which_port(boards, sine_file, tmp_path):
    with open_device(config.board("uart", boards)) as device:
        with pytest.raises(DeviceError, match=f"cannot open {tmp_path / 'no-such-tty'}"):
            device.info(sine_file)


def test_the_emulator_command_comes_from_the_targets_facts(tmp_path):
    """Machine, CPU, program and icount are the target's (changed here, changed in the command line)."""
    m4 = config.load_target("cortex-m4")
    emu = Emulator(m4, tmp_path / "fw.elf", port=4321)
    q = m4.qemu
    assert emu.command()[:5] == [q.program, "-M", q.machine, "-cpu", q.cpu]
    assert emu.command()[-2:] == ["-icount", f"shift={q.icount},align=off,sleep=on"]
    other = dataclasses.replace(m4, qemu=dataclasses.replace(q, machine="mps2-an500", cpu="cortex-m7", icount=None))
    argv = Emulator(other, tmp_path / "fw.elf", port=4321).command()
    assert argv[:5] == [q.program, "-M", "mps2-an500", "-cpu", "cortex-m7"] and "-icount" not in argv
    assert "tcp:127.0.0.1:4321,server=on,wait=off,nodelay=on" in argv


@pytest.mark.parametrize("ins, outs, chunk, cap", [
    ([(True, 1)], [(True, 1)], 1, 4096), ([(True, 3)], [(True, 1)], 16, 4096), ([(True, 784)], [(True, 10)], 4, 4096),
    ([(True, 3), (False, 8)], [(True, 2), (False, 8)], 7, 1024), ([(True, 1)], [(True, 1)], 3, 64)])
def test_a_run_frame_carries_the_most_rows_that_fit_both_ways(ins, outs, chunk, cap):
    """rows_per_frame: r rows fit the request (count, chunk, inputs) and the answer (counts, a cycle count per
    chunk, outputs) in `cap` bytes; r + 1 do not."""

    def sizes(r: int) -> tuple[int, int]:
        request = 4 + sum(4 * row * (r if batched else 1) for batched, row in ins)
        answer = 4 + 4 * -(-r // chunk) + sum(4 * row * (r if batched else 1) for batched, row in outs)
        return request, answer

    r = rows_per_frame(ins, outs, chunk, cap)
    assert r > 0 and max(sizes(r)) <= cap < max(sizes(r + 1))


def test_a_fleet_runs_every_board_and_reports_each_failure_on_its_own_row(boards):
    group = [config.board(n, boards) for n in ("host", "pi", "mac")]

    def action(board: config.Board) -> dict:
        if board.name == "pi":
            raise DeviceError("board pi: unreachable\nmore detail")
        return {"passed": board.name == "host"}

    outcomes = across(group, action)
    assert [(o.board, o.ok, o.error) for o in outcomes] == [("host", True, ""), ("pi", False, "board pi: unreachable"),
                                                           ("mac", False, "")]


# ---- the rules around the layer ---------------------------------------------------------------------------

def _production_files() -> list[Path]:
    return [*sorted(PACKAGE.rglob("*.py")), ROOT / "tasks.py"]


def test_no_transport_type_is_sniffed_outside_the_devices_package():
    sniffing = re.compile(r"transport\s*(==|!=|in\s*\()|hasattr\(\s*transport|getattr\(\s*transport")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in _production_files()
             if PACKAGE / "devices" not in path.parents
             for n, line in enumerate(path.read_text().splitlines(), 1) if sniffing.search(line)]
    assert not found, "\n".join(found)


def _imports(path: Path) -> set[str]:
    """The absolute names of every module `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]) if PACKAGE in path.parents else ""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_production_code_never_imports_test_helpers():
    """Test support lives in tests/support (not importable from the package); the sshd and relay that the
    deploy campaign needs are the reliability harness, which only the campaigns and the tests import."""
    for path in _production_files():
        imported = _imports(path)
        assert not {n for n in imported if n.split(".")[0] in ("support", "tests", "conftest")
                    or n.startswith("lnnedge.testing")}, path
        if PACKAGE / "reliability" not in path.parents:
            assert not {n for n in imported if n.startswith("lnnedge.reliability.harness")}, path
