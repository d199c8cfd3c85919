"""A throwaway labgrid lab on 127.0.0.1: a labgrid-coordinator, a labgrid-exporter publishing the resources it
is given (NetworkService for a test sshd; RawSerialPort for an emulator's pty, which the exporter serves through
ser2net as a NetworkSerialPort), and places made on the coordinator with labgrid's own client API. Used by
tests/test_labgrid.py; nothing outside reliability/ and tests/ imports it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .harness import free_port

EXPORTER = "lnnedge-test"  # the exporter's name: places match EXPORTER/<group>/*


def _bin(name: str) -> str:
    """A labgrid program next to this interpreter (the venv's bin/), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else name


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


@dataclass
class LocalLab:
    workdir: Path
    port: int = field(default_factory=free_port)
    coordinator: subprocess.Popen | None = None
    exporter: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_coordinator(self) -> LocalLab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "coordinator.log", "ab")  # noqa: SIM115 (the process keeps it)
        # cwd: the coordinator keeps places.yaml and resources.yaml in its working directory
        self.coordinator = subprocess.Popen([_bin("labgrid-coordinator"), "-l", self.address], cwd=self.workdir,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.coordinator, "labgrid-coordinator")
        return self

    def start_exporter(self, groups: dict[str, dict]) -> LocalLab:
        """groups: group name -> {resource class: parameters}, the exporter's YAML."""
        config = self.workdir / "exporter.yaml"
        config.write_text(yaml.safe_dump(groups))
        log = open(self.workdir / "exporter.log", "ab")  # noqa: SIM115
        env = {**os.environ, "LG_COORDINATOR": self.address}
        self.exporter = subprocess.Popen([_bin("labgrid-exporter"), "-c", self.address, "-n", EXPORTER,
                                          "--hostname", "127.0.0.1", str(config)], cwd=self.workdir, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def add_places(self, places: dict[str, tuple[str, dict[str, str]]], timeout: float = 30) -> None:
        """places: name -> (exporter group, tags); waits until every group's resources are available."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        from ..devices.labgrid import Lab

        lab = Lab(self.address)
        try:
            async def make() -> None:
                for name, (group, tags) in places.items():
                    await lab.session.stub.AddPlace(pb2.AddPlaceRequest(name=name))
                    await lab.session.stub.AddPlaceMatch(pb2.AddPlaceMatchRequest(placename=name,
                                                                                  pattern=f"{EXPORTER}/{group}/*"))
                    await lab.session.stub.SetPlaceTags(pb2.SetPlaceTagsRequest(placename=name, tags=tags))
                await lab.session.sync_with_coordinator()

            lab._call(make(), "adding the places")
            groups = {group for group, _tags in places.values()}
            deadline = time.monotonic() + timeout
            while True:
                async def ready() -> set[str]:
                    await lab.session.sync_with_coordinator()
                    have = lab.session.resources.get(EXPORTER, {})
                    return {g for g in groups if have.get(g) and all(e.avail for e in have[g].values())}

                if lab._call(ready(), "reading the resources") == groups:
                    return
                if self.exporter is not None and self.exporter.poll() is not None:
                    raise RuntimeError(f"labgrid-exporter exited: {(self.workdir / 'exporter.log').read_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the exporter's resources did not become available within {timeout} s")
                time.sleep(0.1)
        finally:
            lab.close()

    def kill_coordinator(self) -> None:
        """SIGKILL: the coordinator dies as a crashed or unplugged host would, without closing anything."""
        if self.coordinator is not None and self.coordinator.poll() is None:
            os.killpg(self.coordinator.pid, signal.SIGKILL)
            self.coordinator.wait(timeout=10)

    def stop(self) -> None:
        for proc in (self.exporter, self.coordinator):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the exporter's ser2net children go with it
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
