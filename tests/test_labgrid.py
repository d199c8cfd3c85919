"""Boards of a labgrid lab, with real labgrid parts on 127.0.0.1: a labgrid-coordinator and a labgrid-exporter
publishing three NetworkServices (the test sshd, whose boards run the aarch64 build behind qemu-aarch64) and
the Cortex-M4 firmware's UART (qemu-system-arm on a pty) served by ser2net as a NetworkSerialPort. One lab per
module; the last test kills its coordinator."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
import yaml
from lnnedge import config
from lnnedge.devices import open_device
from lnnedge.devices.fleet import across
from lnnedge.devices.labgrid import LabError, reserve
from lnnedge.paths import BUILD_DIR
from lnnedge.pipeline.deploy import deploy_to
from lnnedge.reliability.harness import LocalSSHD, available, free_port
from lnnedge.reliability.lab import LocalLab
from test_pipeline import invoke, ok

pytest.importorskip("labgrid", reason="labgrid is not installed (pip install 'lnnedge[lab]')")
pytestmark = pytest.mark.skipif(
    not available() or shutil.which("ser2net") is None or shutil.which("qemu-system-arm") is None,
    reason="needs openssh-server, ser2net and qemu-system-arm (./kit installs them)")

PIS = ("pi0", "pi1", "pi2")


def _m4_on_a_pty(elf: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """The Cortex-M4 firmware on QEMU with its UART on a pty (what a USB serial adapter is to an exporter)."""
    target = config.load_target("cortex-m4")
    q = target.qemu
    argv = [q.program, "-M", q.machine, "-cpu", q.cpu, "-display", "none", "-monitor", "none",
            "-kernel", str(elf), "-serial", "pty"]
    if q.icount is not None:
        argv += ["-icount", f"shift={q.icount},align=off,sleep=on"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()  # "char device redirected to /dev/pts/N (label serial0)"
    match = re.search(r"(/dev/pts/\d+)", line)
    assert match, f"qemu-system-arm did not name its pty: {line!r}"
    threading.Thread(target=lambda: log.write_text(proc.stdout.read()), daemon=True).start()
    return proc, match.group(1)


def _ser2net(accepter: str, pty: str, *options: str) -> subprocess.Popen:
    return subprocess.Popen(["ser2net", "-d", "-n", "-Y", f"connection: &m4#  accepter: {accepter}",
                             "-Y", f"  connector: serialdev(nouucplock=true),{pty},115200n81,local", *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Ser2netRFC2217:
    """ser2net serving the pty in RFC 2217 mode as a labgrid-exporter serves a RawSerialPort or USBSerialPort
    (but on 127.0.0.1 only); what it writes to the pty goes to a file too, so a test sees an upload under way."""

    def __init__(self, pty: str, port: int, written: Path):
        self.pty, self.port, self.written = pty, port, written
        self.proc = self.start()

    def start(self) -> subprocess.Popen:
        self.written.unlink(missing_ok=True)
        self.proc = _ser2net(f"telnet(rfc2217,mode=server),tcp,127.0.0.1,{self.port}", self.pty,
                             "-Y", "  options:", "-Y", f"    trace-write: {self.written}")
        return self.proc

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from support.emulator import build_firmware

    work = tmp_path_factory.mktemp("lab")
    sshd = LocalSSHD(work / "sshd", free_port()).prepare().start()
    m4, pty = _m4_on_a_pty(build_firmware()["elf"], work / "qemu-m4.log")
    ser2net_port = free_port()
    ser2net = _ser2net(f"tcp,127.0.0.1,{ser2net_port}", pty)
    telnet = Ser2netRFC2217(pty, free_port(), work / "ser2net-written")
    lab = LocalLab(work / "coordinator").start_coordinator()
    try:
        groups = {p: {"NetworkService": {"address": "127.0.0.1", "username": "root", "port": sshd.port}} for p in PIS}
        # ser2net serving the pty on a raw TCP port, published as a NetworkSerialPort (protocol raw: socket://),
        # and the same pty on an RFC 2217 port (labgrid's default protocol: rfc2217://); one used at a time
        groups["m4"] = {"NetworkSerialPort": {"host": "127.0.0.1", "port": ser2net_port, "speed": 115200,
                                              "protocol": "raw"}}
        groups["m4-rfc2217"] = {"NetworkSerialPort": {"host": "127.0.0.1", "port": telnet.port, "speed": 115200}}
        lab.start_exporter(groups)
        places = {p: (p, {"qemu": "aarch64", "target": "rpi4"}) for p in PIS}
        places["m4"] = ("m4", {"qemu": "cortex_m4", "target": "cortex-m4"})
        places["m4-rfc2217"] = ("m4-rfc2217", {"qemu": "cortex_m4", "target": "cortex-m4"})
        lab.add_places(places)
        boards = work / "boards.yaml"
        boards.write_text(yaml.safe_dump({
            "labgrid": {"target": "rpi4", "coordinator": lab.address,
                        "ssh": {"key": str(sshd.client_key), "known_hosts": str(sshd.known_hosts),
                                "remote_dir": str(work / "remote" / "{place}"),
                                "command_prefix": "qemu-aarch64 -cpu cortex-a72"}},
            "boards": {"lab-m4": {"target": "cortex-m4", "transport": "labgrid", "coordinator": lab.address,
                                  "place": "m4"},
                       "lab-m4-rfc2217": {"target": "cortex-m4", "transport": "labgrid",
                                          "coordinator": lab.address, "place": "m4-rfc2217"}}}))
        yield lab, boards, work / "remote", telnet
    finally:
        lab.stop()
        telnet.stop()
        ser2net.kill()
        ser2net.wait()
        m4.kill()
        m4.wait()
        sshd.stop()


@pytest.fixture(scope="module")
def model():
    """Trained + compiled ltc-sine (what `invoke verify` verifies)."""
    path = BUILD_DIR / "ltc-sine" / "model.lnnb"
    if not (BUILD_DIR / "ltc-sine" / "checkpoint.pt").is_file():
        ok("train")
    if not path.is_file():
        ok("compile")
    return path


def _other_client(lab: LocalLab, *args: str) -> None:
    """labgrid-client as another user (someone else in the lab)."""
    subprocess.run([str(Path(sys.executable).parent / "labgrid-client"), "-x", lab.address, *args],
                   env={"LG_USERNAME": "someone_else", "PATH": "/usr/bin:/bin"}, check=True, capture_output=True)


def test_three_places_verified_in_parallel_and_released(lab, model, monkeypatch):
    lab_, boards, _remote, _telnet = lab
    monkeypatch.setenv("LNNEDGE_BOARDS", str(boards))
    with reserve(config.resolve("lg:tags=qemu"), 3) as held:
        assert sorted(b.name for b in held) == [f"lg-{p}" for p in PIS]
        assert {b.transport for b in held} == {"ssh"}  # the NetworkServices; the m4 place has target cortex-m4
        assert all(o.ok for o in across(held, lambda b: deploy_to("ltc-sine", model, b)))
    proc = ok("verify", "--board", "lg:tags=qemu", "--count", "3", env={"LNNEDGE_BOARDS": str(boards)})
    for p in PIS:
        assert re.search(rf"^lg-{p}\s+ok\s+neon", proc.stdout, re.M), proc.stdout
    assert "3 of 3 boards ok" in proc.stdout
    with reserve(config.resolve("lg:tags=qemu"), 3) as again:  # every place was released
        assert len(again) == 3


def test_a_place_another_client_holds_is_never_used(lab, monkeypatch):
    lab_, boards, _remote, _telnet = lab
    monkeypatch.setenv("LNNEDGE_BOARDS", str(boards))
    _other_client(lab_, "-p", "pi1", "acquire")
    try:
        said: list[str] = []
        with reserve(config.resolve("lg:tags=qemu"), 3, say=said.append) as held:
            assert [b.name for b in held] == ["lg-pi0", "lg-pi2"]
        assert any(re.fullmatch(r"labgrid: place pi1 is acquired by .*/someone_else: skipped", s) for s in said), said
        with pytest.raises(LabError, match="no free place .*place pi1.*every one is taken"):
            with reserve(config.resolve("lg:place=pi1"), say=said.append):
                pass
    finally:
        _other_client(lab_, "-p", "pi1", "release")


def test_a_firmware_board_through_ser2net(lab, monkeypatch):
    """The m4 place's NetworkSerialPort (ser2net's raw TCP port) is the serial kind: the bundled test set passes."""
    from lnnedge.pipeline.model_files import compiled_file
    from lnnedge.recipe import load

    _lab, boards, _remote, _telnet = lab
    monkeypatch.setenv("LNNEDGE_BOARDS", str(boards))
    with reserve(config.resolve("lab-m4")) as held, open_device(held[0]) as device:
        assert held[0].serial.port.startswith("socket://127.0.0.1:")
        assert device.kind == "serial"
        smoke = device.test(compiled_file(load("ltc-sine"), None))
        assert smoke.passed, smoke.summary


def test_a_firmware_board_through_ser2net_in_rfc2217_mode(lab, model, monkeypatch):
    """The m4-rfc2217 place's NetworkSerialPort has labgrid's default protocol (ser2net's RFC 2217 port, as the
    exporter serves a USBSerialPort): the model is uploaded through it (4 KB LOAD_CHUNKs, whose answers take
    longer than the client's 20 ms read) and the bundled test set passes."""
    _lab, boards, _remote, _telnet = lab
    monkeypatch.setenv("LNNEDGE_BOARDS", str(boards))
    with reserve(config.resolve("lab-m4-rfc2217")) as held, open_device(held[0]) as device:
        assert held[0].serial.port.startswith("rfc2217://127.0.0.1:")
        link = device.inner.link
        link.reset_state(unload=True)  # loaded through the raw port before: upload it again, through this one
        smoke = device.test(model)
        assert smoke.passed, smoke.summary
        assert link.stats["uploads"] == 1, link.stats


def test_ser2net_dying_mid_upload_through_rfc2217_is_one_line_and_keeps_the_loaded_model(lab, model, tmp_path,
                                                                                           monkeypatch):
    """ser2net (RFC 2217 mode) killed while `invoke run --file` uploads another model to the m4-rfc2217 board:
    one error line, exit 1; once ser2net is back the board still holds the model it had (ltc-sine, trained)."""
    import torch
    from conftest import untrained
    from lnnedge import smoke
    from lnnedge.compiler import compile_module
    from lnnedge.recipe import load

    _lab, boards, _remote, telnet = lab
    monkeypatch.setenv("LNNEDGE_BOARDS", str(boards))
    other = tmp_path / "untrained-sine.lnnb"
    module = untrained("ltc-sine")
    compile_module(module, (torch.zeros(1, 1),), name="ltc-sine", tests=smoke.test_set(load("ltc-sine"), module)
                   ).save(other)

    with reserve(config.resolve("lab-m4-rfc2217")) as held, open_device(held[0]) as device:
        device.info(model)  # the model the board holds (uploaded by the test before, else now)

    done = threading.Event()

    def kill_once_uploading() -> None:  # two 4 KB chunks written to the board's pty
        while not done.is_set():
            if telnet.written.is_file() and telnet.written.stat().st_size > 8500:
                telnet.stop()
                return
            time.sleep(0.005)

    telnet.written.unlink()  # ser2net opens the file again for the next connection
    killer = threading.Thread(target=kill_once_uploading, daemon=True)
    killer.start()
    try:
        proc = invoke("run", "--file", str(other), "--board", "lab-m4-rfc2217",
                      env={"LNNEDGE_BOARDS": str(boards)}, timeout=120)
    finally:
        done.set()
        killer.join()
        killed = telnet.proc.poll() is not None
        telnet.stop()
        telnet.start()
    assert killed, "ser2net was not killed during the upload"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "lost" in errors[0], proc.stderr
    with reserve(config.resolve("lab-m4-rfc2217")) as held, open_device(held[0]) as device:
        link = device.inner.link
        link.device_info()
        assert int(link.model_info["model_crc"], 16) == zlib.crc32(model.read_bytes()), link.model_info


def test_the_coordinator_dying_mid_deploy_stops_it_and_keeps_the_previous_release(lab, model):
    """Killed during `invoke deploy` through pi0 (once the upload is under way): one error line, exit 1,
    `current` on the device still the release before. Runs last: the lab has no coordinator after it."""
    lab_, boards, remote, _telnet = lab
    before = (remote / "pi0" / "current").readlink().name  # deployed by the first test
    incoming = remote / "pi0" / "incoming"

    def kill_once_uploading() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if incoming.is_dir() and any(incoming.iterdir()):
                lab_.kill_coordinator()
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_once_uploading, daemon=True)
    killer.start()
    proc = invoke("deploy", "--board", "lg:place=pi0", env={"LNNEDGE_BOARDS": str(boards)}, timeout=300)
    killer.join(timeout=5)
    assert lab_.coordinator.poll() is not None, "the coordinator was not killed during the deploy"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = [line for line in proc.stdout.splitlines() if line.startswith("lg-pi0")]
    assert len(row) == 1 and "went away" in row[0] and f"the previous release {before} stays live" in row[0], \
        proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: deploy failed on lg-pi0"), proc.stderr
    assert (remote / "pi0" / "current").readlink().name == before
