"""The reliability harness: a throwaway OpenSSH server on 127.0.0.1 with keys it generates, a board entry
pointing at it, and a relay that cuts the link. Used by the deploy campaign (deploy_kills) and the SSH tests;
nothing outside reliability/ and tests/ imports it (tests/test_devices.py checks).

The ssh-test board runs the aarch64 build exactly as a Pi would, behind the
command prefix `qemu-aarch64 -cpu cortex-a72`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


@dataclass
class LocalSSHD:
    workdir: Path
    port: int
    extra_config: str = ""  # more sshd_config lines (e.g. SetEnv for a device whose tools misbehave)
    process: subprocess.Popen | None = None

    @property
    def client_key(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def host_key(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    def prepare(self) -> LocalSSHD:
        """Generate host and client keys, authorized_keys, known_hosts and sshd_config (once)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for key in (self.host_key, self.client_key):
            if not key.is_file():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lnnedge-test", "-f", str(key)],
                               check=True)
        (self.workdir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.write_known_hosts(self.host_key)
        (self.workdir / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}\nPidFile {self.workdir / 'sshd.pid'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 50\n"
            + self.extra_config
        )
        return self

    def write_known_hosts(self, host_key: Path) -> None:
        public = host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")

    def start(self, timeout: float = 10) -> LocalSSHD:
        if not SSHD.is_file():
            raise RuntimeError("sshd not found: apt-get install openssh-server")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
        self.process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(self.workdir / "sshd_config")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.process.stderr.read().decode()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def board_entry(self, remote_dir: Path, port: int | None = None, target: str = "rpi4",
                    prefix: str = "qemu-aarch64 -cpu cortex-a72") -> dict:
        return {"target": target, "transport": "ssh", "host": "127.0.0.1", "port": port or self.port,
                "user": "root", "key": str(self.client_key), "known_hosts": str(self.known_hosts),
                "remote_dir": str(remote_dir), "command_prefix": prefix,
                "timeouts": {"connect": 5, "banner": 5, "command": 120},
                "description": "a local sshd standing in for a Raspberry Pi 4"}


class CuttingRelay:
    """A TCP relay to a port on 127.0.0.1 that drops the link as a pulled cable would: every connection
    after `limit` bytes from the client (when given), and all connections open when `cut()` is called (with
    none open, the next one to arrive). Later connections go through."""

    def __init__(self, target_port: int, limit: int | None = None):
        self.target_port, self.limit = target_port, limit
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.was_cut = threading.Event()
        self._open: set[socket.socket] = set()
        self._drop_next = False
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        with self._lock:
            self._open |= {client, upstream}
            drop_now, self._drop_next = self._drop_next, False
        if drop_now:
            self._drop((client, upstream))
            return
        sent = 0

        def pump(src: socket.socket, dst: socket.socket, count: bool) -> None:
            nonlocal sent
            try:
                while chunk := src.recv(16384):
                    if count:
                        sent += len(chunk)
                        if self.limit is not None and sent > self.limit:
                            self.was_cut.set()
                            break
                    dst.sendall(chunk)
            except OSError:
                pass
            self._drop((client, upstream))

        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()
        pump(client, upstream, True)

    def _drop(self, sockets) -> None:
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self._lock:
            self._open -= set(sockets)

    def cut(self) -> None:
        """Drop every connection open now, at once (with none open, the next one)."""
        with self._lock:
            open_now = list(self._open)
            self._drop_next = not open_now
        self._drop(open_now)
        self.was_cut.set()

    def close(self) -> None:
        self.server.close()
        self.cut()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return SSHD.is_file() and shutil.which("ssh-keygen") is not None
