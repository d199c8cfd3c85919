"""The SSH transport: a Linux board on the network (a Raspberry Pi), driven with Fabric.

Remote layout under the board's remote_dir:

    incoming/<id>/        an upload in progress (never run from)
    releases/<hash>/      lnnvm, model.lnnb, smoke inputs/expected outputs, VERSION.json
    current -> releases/<hash>   the active deployment, switched by an atomic rename

A deployment becomes `current` only after its files' SHA-256 match on the
device and a smoke inference on the device matches the expected outputs
shipped with it (test, then confirm, as MCUboot does for firmware). An upload
that dies half-way leaves an orphan under incoming/ and the previous
deployment active.

Host keys are checked against the board's known_hosts with paramiko's
RejectPolicy: an unknown or changed key fails closed (Fabric alone would
auto-accept). Connect, banner and command timeouts are explicit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import socket
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from ..config import SSHSettings
from .base import RunResult, TransportError
from .local import parse_info, parse_test_summary


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _q(*parts: str) -> str:
    return " ".join(shlex.quote(str(p)) for p in parts)


class SSHTransport:
    def __init__(self, board_name: str, settings: SSHSettings):
        self.board = board_name
        self.s = settings
        self._conn = None

    # -- connection -------------------------------------------------------------------------
    def _connection(self):
        if self._conn is not None:
            return self._conn
        import paramiko
        from fabric import Connection

        logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # errors reach the user as one line below
        self._probe_banner()
        if not self.s.known_hosts.is_file():
            raise TransportError(f"board {self.board}: known_hosts file {self.s.known_hosts} does not exist; "
                                 f"record the device's key first (ssh-keyscan -p {self.s.port} {self.s.host})")
        connect_kwargs = {"look_for_keys": False, "allow_agent": self.s.agent,
                          "banner_timeout": self.s.banner_timeout, "auth_timeout": self.s.connect_timeout}
        if self.s.key is not None:
            connect_kwargs["key_filename"] = str(self.s.key)
        conn = Connection(self.s.host, user=self.s.user, port=self.s.port, connect_timeout=self.s.connect_timeout,
                          connect_kwargs=connect_kwargs)
        conn.client.load_host_keys(str(self.s.known_hosts))
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            conn.open()
        except Exception as exc:  # classified into one message a person can act on
            raise self._explain(exc) from None
        self._conn = conn
        return conn

    def _probe_banner(self) -> None:
        """Connect and read the server's first line ourselves, so refusal, connect timeout and a silent
        server each get their own message (paramiko reports the last one only as a lost session)."""
        where = f"{self.s.host}:{self.s.port} (board {self.board})"
        try:
            with socket.create_connection((self.s.host, self.s.port), timeout=self.s.connect_timeout) as sock:
                sock.settimeout(self.s.banner_timeout)
                try:
                    first = sock.recv(256)
                except TimeoutError:
                    raise TransportError(f"timed out after {self.s.banner_timeout} s waiting for the SSH banner from "
                                         f"{where}: something listens there but does not speak SSH") from None
        except TransportError:
            raise
        except TimeoutError:
            raise TransportError(f"timed out connecting to {where} after {self.s.connect_timeout} s: "
                                 "is the device on and reachable?") from None
        except ConnectionRefusedError:
            raise TransportError(f"connection refused by {where}: is sshd running and the port right?") from None
        except OSError as exc:
            raise TransportError(f"cannot reach {where}: {exc.strerror or exc}") from None
        if not first.startswith(b"SSH-"):
            raise TransportError(f"{where} answered {first[:40]!r}, not an SSH banner: wrong port?")

    def _explain(self, exc: Exception) -> TransportError:
        import paramiko

        where = f"{self.s.user}@{self.s.host}:{self.s.port} (board {self.board})"
        if isinstance(exc, paramiko.BadHostKeyException):
            return TransportError(f"host key mismatch for {where}: the device's key differs from the one in "
                                  f"{self.s.known_hosts}. If the device was reinstalled, remove the old key "
                                  "and record the new one; otherwise do not connect (possible interception)")
        if isinstance(exc, paramiko.AuthenticationException):
            return TransportError(f"authentication failed for {where}: check the board's key "
                                  f"({self.s.key}) or ssh-agent, and the device's authorized_keys")
        if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
            return TransportError(f"unknown host key for {where}: it is not in {self.s.known_hosts}; verify the "
                                  f"fingerprint and add it (ssh-keyscan -p {self.s.port} {self.s.host})")
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return TransportError(f"timed out connecting to {where} after {self.s.connect_timeout} s: "
                                  "is the device on and reachable?")
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) or isinstance(exc, ConnectionError):
            return TransportError(f"connection refused by {where}: is sshd running and the port right?")
        if isinstance(exc, (EOFError, paramiko.SSHException, OSError)):
            return TransportError(f"connection to {where} failed or was dropped: {exc or type(exc).__name__}")
        return TransportError(f"SSH to {where} failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _sh(self, command: str, check: bool = True):
        from invoke.exceptions import CommandTimedOut

        conn = self._connection()
        try:
            result = conn.run(command, hide=True, warn=True, timeout=self.s.command_timeout, in_stream=False)
        except CommandTimedOut:
            self.close()
            raise TransportError(f"board {self.board}: command timed out after {self.s.command_timeout} s: "
                                 f"{command}") from None
        except Exception as exc:
            self.close()
            raise self._explain(exc) from None
        if check and result.exited != 0:
            raise TransportError(f"board {self.board}: `{command}` failed ({result.exited}): "
                                 f"{result.stderr.strip() or result.stdout.strip()}")
        return result

    def _put(self, local: Path, remote: str) -> None:
        try:
            self._connection().put(str(local), remote)
        except TransportError:
            raise
        except Exception as exc:
            self.close()
            raise self._explain(exc) from None

    def _get(self, remote: str, local: Path) -> None:
        try:
            self._connection().get(remote, str(local))
        except Exception as exc:
            self.close()
            raise self._explain(exc) from None

    @property
    def _prefix(self) -> str:
        return _q(*self.s.command_prefix) + " " if self.s.command_prefix else ""

    def _current(self) -> str:
        return f"{self.s.remote_dir}/current"

    # -- deployment ---------------------------------------------------------------------------
    def deploy(self, runner: Path, model: Path, version: dict) -> dict:
        """Upload, check, smoke-test and activate; raise TransportError leaving the previous one active. The smoke
        test is `lnnvm test` on the device: the test set bundled in the model file, its outputs and tolerance."""
        digest = sha256(model)[:16] + "-" + sha256(runner)[:8]
        root = self.s.remote_dir
        incoming = f"{root}/incoming/{digest}-{uuid.uuid4().hex[:8]}"
        release = f"{root}/releases/{digest}"
        with tempfile.TemporaryDirectory(prefix="lnnedge-deploy-") as tmp:
            files = {"lnnvm": Path(runner), "model.lnnb": Path(model)}
            (Path(tmp) / "VERSION.json").write_text(json.dumps({**version, "release": digest}, indent=2) + "\n")
            files["VERSION.json"] = Path(tmp) / "VERSION.json"
            manifest = "".join(f"{sha256(path)}  {name}\n" for name, path in files.items())
            (Path(tmp) / "SHA256SUMS").write_text(manifest)
            files["SHA256SUMS"] = Path(tmp) / "SHA256SUMS"

            self._sh(f"mkdir -p {_q(incoming)} {_q(root + '/releases')} && rm -rf "
                     f"$(find {_q(root + '/incoming')} -mindepth 1 -maxdepth 1 ! -name {_q(Path(incoming).name)})")
            for name, path in files.items():
                self._put(path, f"{incoming}/{name}")
            # Checksums on the device, then fsync the files and the directory before the rename makes
            # the release visible, and again after it.
            self._sh(f"cd {_q(incoming)} && sha256sum -c --quiet SHA256SUMS && chmod 755 lnnvm && "
                     f"sync {_q(*files)} . && rm -rf {_q(release)} && mv {_q(incoming)} {_q(release)} && "
                     f"sync {_q(root + '/releases')}")
        smoke = self._smoke(release)
        if not smoke["passed"]:
            raise TransportError(f"board {self.board}: smoke test of the new deployment failed ({smoke['summary']}); "
                                 "the previous deployment stays active")
        self._sh(f"cd {_q(root)} && ln -sfn {_q('releases/' + digest)} current.new && mv -T current.new current "
                 f"&& sync .")
        return {"release": digest, "smoke_max_abs_err": smoke["max_abs_err"], **version}

    def _smoke(self, release: str) -> dict:
        result = self._sh(f"cd {_q(release)} && {self._prefix}./lnnvm test model.lnnb", check=False)
        return parse_test_summary(result.stdout, result.exited, self.board)

    def status(self) -> dict:
        result = self._sh(f"cat {_q(self._current() + '/VERSION.json')}", check=False)
        if result.exited != 0:
            return {"deployed": False}
        try:
            return {"deployed": True, **json.loads(result.stdout)}
        except json.JSONDecodeError:
            return {"deployed": False, "error": "VERSION.json on the device is not valid JSON"}

    # -- the Transport shape -----------------------------------------------------------------------
    def _check_model(self, model: Path) -> None:
        state = self.status()
        if not state.get("deployed"):
            raise TransportError(f"board {self.board}: nothing is deployed; run `invoke deploy --board {self.board}`")
        if state.get("model_sha256") != sha256(model):
            raise TransportError(f"board {self.board}: the deployed model ({state.get('model_sha256', '?')[:12]}) "
                                 f"is not {model} ({sha256(model)[:12]}); run `invoke deploy --board {self.board}`")

    def info(self, model: Path) -> dict:
        self._check_model(model)
        return parse_info(self._sh(f"cd {_q(self._current())} && {self._prefix}./lnnvm info model.lnnb").stdout)

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, extra: list[str] | None = None) -> RunResult:
        info = self.info(model)
        work = f"{self.s.remote_dir}/runs/{uuid.uuid4().hex[:12]}"
        self._sh(f"mkdir -p {_q(work)}")
        try:
            with tempfile.TemporaryDirectory(prefix="lnnedge-ssh-") as tmp:
                args = []
                for i, x in enumerate(inputs):
                    local = Path(tmp) / f"in{i}.f32"
                    np.ascontiguousarray(x, dtype="<f4").tofile(local)
                    self._put(local, f"{work}/in{i}.f32")
                    args += ["--in", f"{work}/in{i}.f32"]
                n_out = int(info["outputs"])
                for i in range(n_out):
                    args += ["--out", f"{work}/out{i}.f32"]
                if extra:
                    args += [a if not a.startswith("/") else f"{work}/{Path(a).name}" for a in extra]
                started = time.perf_counter()
                result = self._sh(f"cd {_q(self._current())} && {self._prefix}./lnnvm run model.lnnb "
                                  f"{_q(*args)} --batch {int(batch)}")
                timing = json.loads(result.stdout.strip().splitlines()[-1])
                timing["wall_seconds"] = time.perf_counter() - started
                outputs = []
                for i in range(n_out):
                    self._get(f"{work}/out{i}.f32", Path(tmp) / f"out{i}.f32")
                    outputs.append(np.fromfile(Path(tmp) / f"out{i}.f32", dtype="<f4").reshape(len(inputs[0]), -1))
                if extra and "--trace" in extra:
                    trace_local = Path(extra[extra.index("--trace") + 1])
                    self._get(f"{work}/{trace_local.name}", trace_local)
        finally:
            self._sh(f"rm -rf {_q(work)}", check=False)
        return RunResult(outputs, timing, info)

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        from ..trace import read_trace

        with tempfile.TemporaryDirectory(prefix="lnnedge-trace-") as tmp:
            trace_file = Path(tmp) / "trace.bin"
            self.run(model, inputs, extra=["--trace", str(trace_file)])
            return read_trace(trace_file)
