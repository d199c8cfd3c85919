"""The SSH transport: a Linux board on the network (a Raspberry Pi), driven with Fabric.

Remote layout under the board's remote_dir (absolute, never / and without '..': config.py refuses others):

    incoming/<name>/      an upload in progress (never run from); removed by the next deploy
    releases/<name>/      lnnvm, model.lnnb, VERSION.json, SHA256SUMS; <name> is the model and runner
                          hashes and a fresh random part, so a deploy never rewrites a release in place
    current -> releases/<name>   the active deployment, switched by an atomic rename of a new link

A deployment becomes `current` only after its files' SHA-256 match on the
device and a smoke inference on the device matches the expected outputs
shipped with it (test, then confirm, as MCUboot does for firmware); then the
releases that are not live are removed. Files are created, renamed, linked and
removed over SFTP, so no shell ever splits or globs a path; the few commands
(mkdir -p, sha256sum, sync, lnnvm) get every path quoted. A deploy stopped at
any step leaves `current` on a complete release (the previous one, or the new
one once the switch is done), and a failed deploy reads `current` back to say
which (tested by killing it at every step: lnnedge.reliability.deploy_kills).

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
import stat
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import numpy as np

from ..config import SSHSettings
from .base import RunResult, TransportError
from .local import parse_info, parse_test_summary

T = TypeVar("T")


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
            if not self._conn.is_connected:  # dropped since the last operation: say so (Fabric would reconnect
                self.close()                 # silently, in the middle of a deploy)
                raise TransportError(f"connection to {self.s.user}@{self.s.host}:{self.s.port} (board {self.board}) "
                                     "was dropped")
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
        import paramiko

        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except (EOFError, OSError, paramiko.SSHException):  # the link is gone: closing the SFTP channel politely
            conn.client.close()                             # fails; drop the transport itself

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

    def _fs(self, what: str, op: Callable[[Any], T]) -> T:
        """One file operation over SFTP (paths travel as strings: no shell splits or globs them). An error
        with an errno is the device's answer (no such file, permission denied) and keeps the connection;
        any other closes it (paramiko tells a generic SFTP failure from a socket closed under it by text
        alone), so that the next operation starts on a fresh one."""
        try:
            return op(self._connection().sftp())
        except TransportError:
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise TransportError(f"board {self.board}: {what} failed: {exc.strerror or exc}") from None
            link = self._conn.transport if self._conn is not None else None
            alive = link is not None and link.is_active()
            self.close()
            if alive and isinstance(exc, OSError):
                raise TransportError(f"board {self.board}: {what} failed: {exc}") from None
            raise self._explain(exc) from None

    def _put(self, local: Path, remote: str) -> None:
        self._fs(f"upload of {remote}", lambda sftp: sftp.put(str(local), remote))

    def _get(self, remote: str, local: Path) -> None:
        self._fs(f"download of {remote}", lambda sftp: sftp.get(remote, str(local)))

    def _lstat(self, path: str):
        """The attributes of `path` itself (a link is not followed), or None when it does not exist."""

        def op(sftp):
            try:
                return sftp.lstat(path)
            except FileNotFoundError:
                return None

        return self._fs(f"stat of {path}", op)

    def _remove_tree(self, path: str) -> None:
        """Remove `path` and, for a directory, everything under it, over SFTP. A symbolic link is removed
        itself, never followed, so nothing outside `path` can be reached."""

        def remove(sftp, where: str, mode: int) -> None:
            if stat.S_ISDIR(mode):
                for entry in sftp.listdir_attr(where):  # lstat attributes (OpenSSH's sftp-server)
                    remove(sftp, f"{where}/{entry.filename}", entry.st_mode)
                sftp.rmdir(where)
            else:
                sftp.remove(where)

        attrs = self._lstat(path)
        if attrs is not None:
            self._fs(f"removal of {path}", lambda sftp: remove(sftp, path, attrs.st_mode))

    def _entries(self, directory: str) -> list[str]:
        return sorted(self._fs(f"listing of {directory}", lambda sftp: sftp.listdir(directory)))

    @property
    def _prefix(self) -> str:
        return _q(*self.s.command_prefix) + " " if self.s.command_prefix else ""

    def _current(self) -> str:
        return f"{self.s.remote_dir}/current"

    # -- deployment ---------------------------------------------------------------------------
    def deploy(self, runner: Path, model: Path, version: dict, before_step: Callable[[str], None] | None = None
               ) -> dict:
        """Upload, check, smoke-test and activate. On a failure raise TransportError saying what is live on
        the device then (read back from `current`). The smoke test is `lnnvm test` on the device: the test
        set bundled in the model file, its outputs and tolerance.

        `before_step`, when given, is called with a short description before each remote step (every
        command and every transfer), in order: the deploy kill-point campaign
        (lnnedge.reliability.deploy_kills) stops the deploy there. It does nothing else."""
        step = before_step or (lambda _what: None)
        # A fresh directory per deploy, even of the release that is live: nothing live is ever removed
        # or rewritten, and `current` moves from one complete release to another in one rename.
        name = f"{sha256(model)[:16]}-{sha256(runner)[:8]}-{uuid.uuid4().hex[:8]}"
        root = self.s.remote_dir
        incoming, release = f"{root}/incoming/{name}", f"{root}/releases/{name}"
        previous: str | None = None
        connected = switching = False
        try:
            with tempfile.TemporaryDirectory(prefix="lnnedge-deploy-") as tmp:
                files = {"lnnvm": Path(runner), "model.lnnb": Path(model)}
                (Path(tmp) / "VERSION.json").write_text(json.dumps({**version, "release": name}, indent=2) + "\n")
                files["VERSION.json"] = Path(tmp) / "VERSION.json"
                manifest = "".join(f"{sha256(path)}  {file}\n" for file, path in files.items())
                (Path(tmp) / "SHA256SUMS").write_text(manifest)
                files["SHA256SUMS"] = Path(tmp) / "SHA256SUMS"

                step("read current")
                previous = self._live_release()
                connected = True
                step("mkdir -p incoming/ releases/")
                self._sh(f"mkdir -p -- {_q(root + '/incoming', root + '/releases')}")
                for leftover in self._entries(f"{root}/incoming"):  # interrupted uploads; never run from
                    step(f"remove incoming/{leftover}")
                    self._remove_tree(f"{root}/incoming/{leftover}")
                step(f"mkdir incoming/{name}")
                self._fs(f"mkdir {incoming}", lambda sftp: sftp.mkdir(incoming))
                for file, path in files.items():
                    step(f"upload {file}")
                    self._put(path, f"{incoming}/{file}")
                step("chmod 755 lnnvm")
                self._fs(f"chmod of {incoming}/lnnvm", lambda sftp: sftp.chmod(f"{incoming}/lnnvm", 0o755))
                # Checksums on the device, then the files and their directory to disk before the rename
                # makes the release visible, and releases/ after it.
                step("sha256sum -c and sync in incoming/")
                self._sh(f"cd -- {_q(incoming)} && sha256sum -c --quiet SHA256SUMS && sync -- {_q(*files)} .")
            step(f"rename incoming/{name} to releases/{name}")
            self._fs(f"rename of {incoming}", lambda sftp: sftp.posix_rename(incoming, release))
            step("sync releases/")
            self._sh(f"sync -- {_q(root + '/releases')}")
            step(f"smoke test (lnnvm test) in releases/{name}")
            smoke = self._smoke(release)
            if not smoke["passed"]:
                raise TransportError(f"board {self.board}: smoke test of the new deployment failed "
                                     f"({smoke['summary']})")
            if self._lstat(f"{root}/current.new") is not None:  # left by a deploy stopped at the next step
                step("remove current.new")
                self._fs("removal of current.new", lambda sftp: sftp.remove(f"{root}/current.new"))
            step(f"symlink current.new -> releases/{name}")
            self._fs("symlink current.new", lambda sftp: sftp.symlink(f"releases/{name}", f"{root}/current.new"))
            step("rename current.new to current (the switch)")
            switching = True
            self._fs("switch of current", lambda sftp: sftp.posix_rename(f"{root}/current.new", self._current()))
            step("sync remote_dir")
            self._sh(f"sync -- {_q(root)}")
            for old in self._entries(f"{root}/releases"):
                if old != name:
                    step(f"remove releases/{old}")
                    self._remove_tree(f"{root}/releases/{old}")
        except TransportError as exc:
            raise TransportError(f"{exc}; {self._after_failure(name, previous, connected, switching)}") from None
        return {"release": name, "smoke_max_abs_err": smoke["max_abs_err"], **version}

    def _after_failure(self, name: str, previous: str | None, connected: bool, switching: bool) -> str:
        """What is live after a failed deploy, read back from the device when it can be."""
        before = f"the previous release {previous}" if previous else "nothing (no deployment before)"
        if not connected:
            return "nothing on the device was changed"
        self.close()  # read back on a fresh connection: the failure may have left this one dead
        try:
            live = self._live_release()
        except TransportError as exc:
            if switching:
                return f"live now: either {before} or the new release {name} (reading current back failed: {exc})"
            return f"{before} stays live (current was not touched; reading it back failed: {exc})"
        if live == name:
            return f"yet the new release {name} IS live: the switch to it completed"
        if live == previous:
            return f"{before} stays live" if previous else "nothing is deployed"
        return f"live now: release {live}" if live else "nothing is deployed"

    def _live_release(self) -> str | None:
        """The release `current` points to (the name under releases/), or None when nothing is deployed."""
        attrs = self._lstat(self._current())
        if attrs is None:
            return None
        if not stat.S_ISLNK(attrs.st_mode):
            raise TransportError(f"board {self.board}: {self._current()} is not a symbolic link; remove it and "
                                 f"deploy again")
        target = self._fs("readlink of current", lambda sftp: sftp.readlink(self._current()))
        return PurePosixPath(target).name

    def _smoke(self, release: str) -> dict:
        result = self._sh(f"cd -- {_q(release)} && {self._prefix}./lnnvm test model.lnnb", check=False)
        return parse_test_summary(result.stdout, result.exited, self.board)

    def status(self) -> dict:
        """What `current` is: the release it points to (read from the link) and that release's VERSION.json."""
        release = self._live_release()
        if release is None:
            return {"deployed": False, "note": "nothing is deployed (no current on the device)"}
        where = f"{self._current()}/VERSION.json"

        def read(sftp) -> bytes | None:
            try:
                with sftp.open(where) as f:
                    return f.read()
            except FileNotFoundError:
                return None

        text = self._fs(f"read of {where}", read)
        if text is None:
            raise TransportError(f"board {self.board}: current points to releases/{release}, which has no "
                                 "VERSION.json (a broken deployment): deploy again")
        try:
            version = json.loads(text)
        except json.JSONDecodeError:
            raise TransportError(f"board {self.board}: {where} is not valid JSON: deploy again") from None
        return {"deployed": True, **version, "release": release}

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
