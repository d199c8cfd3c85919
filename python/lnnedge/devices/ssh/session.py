"""An SSH session with a Linux board, driven with Fabric: the connection (opened at the first operation), the
commands and the SFTP file operations, each failure turned into one message a person can act on.

Host keys are checked against the board's known_hosts with paramiko's RejectPolicy: an unknown or changed key
fails closed (Fabric alone would auto-accept). Connect, banner and command timeouts are explicit. Files are
created, renamed, linked and removed over SFTP, so no shell ever splits or globs a path; the few commands get
every path quoted (`quote`).
"""

from __future__ import annotations

import logging
import shlex
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ...config import SSHSettings
from .. import runner
from ..base import DeviceError

T = TypeVar("T")


def quote(*parts: str) -> str:
    return " ".join(shlex.quote(str(p)) for p in parts)


class Session:
    def __init__(self, board_name: str, settings: SSHSettings):
        self.board = board_name
        self.s = settings
        self._conn = None

    def connection(self):
        if self._conn is not None:
            if not self._conn.is_connected:  # dropped since the last operation: say so (Fabric would reconnect
                self.close()                 # silently, in the middle of a deploy)
                raise DeviceError(f"connection to {self.s.user}@{self.s.host}:{self.s.port} (board {self.board}) "
                                     "was dropped")
            return self._conn
        import paramiko
        from fabric import Connection

        logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # errors reach the user as one line below
        self._probe_banner()
        if not self.s.known_hosts.is_file():
            raise DeviceError(f"board {self.board}: known_hosts file {self.s.known_hosts} does not exist; "
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
            raise self.explain(exc) from None
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
                    raise DeviceError(f"timed out after {self.s.banner_timeout} s waiting for the SSH banner from "
                                         f"{where}: something listens there but does not speak SSH") from None
        except DeviceError:
            raise
        except TimeoutError:
            raise DeviceError(f"timed out connecting to {where} after {self.s.connect_timeout} s: "
                                 "is the device on and reachable?") from None
        except ConnectionRefusedError:
            raise DeviceError(f"connection refused by {where}: is sshd running and the port right?") from None
        except OSError as exc:
            raise DeviceError(f"cannot reach {where}: {exc.strerror or exc}") from None
        if not first.startswith(b"SSH-"):
            raise DeviceError(f"{where} answered {first[:40]!r}, not an SSH banner: wrong port?")

    def explain(self, exc: Exception) -> DeviceError:
        import paramiko

        where = f"{self.s.user}@{self.s.host}:{self.s.port} (board {self.board})"
        if isinstance(exc, paramiko.BadHostKeyException):
            return DeviceError(f"host key mismatch for {where}: the device's key differs from the one in "
                                  f"{self.s.known_hosts}. If the device was reinstalled, remove the old key "
                                  "and record the new one; otherwise do not connect (possible interception)")
        if isinstance(exc, paramiko.AuthenticationException):
            return DeviceError(f"authentication failed for {where}: check the board's key "
                                  f"({self.s.key}) or ssh-agent, and the device's authorized_keys")
        if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
            return DeviceError(f"unknown host key for {where}: it is not in {self.s.known_hosts}; verify the "
                                  f"fingerprint and add it (ssh-keyscan -p {self.s.port} {self.s.host})")
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return DeviceError(f"timed out connecting to {where} after {self.s.connect_timeout} s: "
                                  "is the device on and reachable?")
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) or isinstance(exc, ConnectionError):
            return DeviceError(f"connection refused by {where}: is sshd running and the port right?")
        if isinstance(exc, (EOFError, paramiko.SSHException, OSError)):
            return DeviceError(f"connection to {where} failed or was dropped: {exc or type(exc).__name__}")
        return DeviceError(f"SSH to {where} failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        import paramiko

        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except (EOFError, OSError, paramiko.SSHException):  # the link is gone: closing the SFTP channel politely
            conn.client.close()                             # fails; drop the transport itself

    def sh(self, command: str, check: bool = True):
        from invoke.exceptions import CommandTimedOut

        conn = self.connection()
        try:
            result = conn.run(command, hide=True, warn=True, timeout=self.s.command_timeout, in_stream=False)
        except CommandTimedOut:
            self.close()
            raise DeviceError(f"board {self.board}: command timed out after {self.s.command_timeout} s: "
                                 f"{command}") from None
        except Exception as exc:
            self.close()
            raise self.explain(exc) from None
        if check and result.exited != 0:
            raise DeviceError(f"board {self.board}: `{command}` failed ({result.exited}): "
                                 f"{result.stderr.strip() or result.stdout.strip()}")
        return result

    def stream(self, command: str, what: str) -> ChannelStream:
        """`command` (an `lnnvm stream`) on a channel of its own, its standard input and output kept open: each
        line waits at most the board's command_timeout for its answer."""
        try:
            channel = self.connection().client.get_transport().open_session()
            channel.settimeout(self.s.command_timeout)
            channel.exec_command(command)
        except DeviceError:
            raise
        except Exception as exc:
            self.close()
            raise self.explain(exc) from None
        return ChannelStream(channel, f"board {self.board}: {what}")

    def fs(self, what: str, op: Callable[[Any], T]) -> T:
        """One file operation over SFTP (paths travel as strings: no shell splits or globs them). An error
        with an errno is the device's answer (no such file, permission denied) and keeps the connection;
        any other closes it (paramiko tells a generic SFTP failure from a socket closed under it by text
        alone), so that the next operation starts on a fresh one."""
        try:
            return op(self.connection().sftp())
        except DeviceError:
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise DeviceError(f"board {self.board}: {what} failed: {exc.strerror or exc}") from None
            link = self._conn.transport if self._conn is not None else None
            alive = link is not None and link.is_active()
            self.close()
            if alive and isinstance(exc, OSError):
                raise DeviceError(f"board {self.board}: {what} failed: {exc}") from None
            raise self.explain(exc) from None

    def put(self, local: Path, remote: str) -> None:
        self.fs(f"upload of {remote}", lambda sftp: sftp.put(str(local), remote))

    def get(self, remote: str, local: Path) -> None:
        self.fs(f"download of {remote}", lambda sftp: sftp.get(remote, str(local)))

    def lstat(self, path: str):
        """The attributes of `path` itself (a link is not followed), or None when it does not exist."""

        def op(sftp):
            try:
                return sftp.lstat(path)
            except FileNotFoundError:
                return None

        return self.fs(f"stat of {path}", op)

    def remove_tree(self, path: str) -> None:
        """Remove `path` and, for a directory, everything under it, over SFTP. A symbolic link is removed
        itself, never followed, so nothing outside `path` can be reached."""

        def remove(sftp, where: str, mode: int) -> None:
            if stat.S_ISDIR(mode):
                for entry in sftp.listdir_attr(where):  # lstat attributes (OpenSSH's sftp-server)
                    remove(sftp, f"{where}/{entry.filename}", entry.st_mode)
                sftp.rmdir(where)
            else:
                sftp.remove(where)

        attrs = self.lstat(path)
        if attrs is not None:
            self.fs(f"removal of {path}", lambda sftp: remove(sftp, path, attrs.st_mode))

    def entries(self, directory: str) -> list[str]:
        return sorted(self.fs(f"listing of {directory}", lambda sftp: sftp.listdir(directory)))

    @property
    def prefix(self) -> str:
        """The command prefix (an emulator on a stand-in board) ready to put before a command."""
        return quote(*self.s.command_prefix) + " " if self.s.command_prefix else ""


class ChannelStream(runner.LineStream):
    """`lnnvm stream` on an SSH channel (runner.LineStream's protocol)."""

    def __init__(self, channel, what: str):
        self.channel = channel
        super().__init__(channel.makefile_stdin("w"), channel.makefile("r"), what)

    def _why_stopped(self) -> str:
        """What the remote process wrote to its standard error, as far as it has arrived (never waits)."""
        said = b""
        while self.channel.recv_stderr_ready():
            said += self.channel.recv_stderr(4096)
        return said.decode(errors="replace").strip()

    def _end(self) -> None:
        self.channel.close()
