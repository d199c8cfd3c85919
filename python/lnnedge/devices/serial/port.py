"""A serial port opened for the link: any pyserial URL (a device node, a pty, socket://host:port), read
non-blocking with select() where it has a descriptor, and locked for as long as it is open (flock on a device
node through pyserial's exclusive=True; a lock file under /tmp for URLs). `Line` is what the link needs of a
port, so a test or campaign can put its own line in its place."""

from __future__ import annotations

import fcntl
import hashlib
import os
import select
import tempfile
import time
import typing
from pathlib import Path

from ..base import DeviceError


class LinkLost(DeviceError):
    """The port itself failed (closed socket, unplugged device)."""


POLL = 0.02  # seconds a read of a port without a descriptor waits for its first byte


def _is_url(url: str) -> bool:
    return "://" in url


def lock_path(url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lnnedge-serial-{digest}.lock"


class _Port:
    """A pyserial port opened non-blocking, with select() on its descriptor where it has one."""

    def __init__(self, url: str, baudrate: int, write_timeout: float):
        import serial

        self.url = url
        self._lock_fd = None
        self._lock_path = lock_path(url)
        if _is_url(url):
            self._lock_fd = self._lock(self._lock_path)
        try:
            kwargs = {} if _is_url(url) else {"exclusive": True}
            # pyserial's rfc2217:// (a ser2net port, e.g. a labgrid NetworkSerialPort) refuses a write timeout:
            # its writes go to a TCP socket, which a stalled board cannot block for long
            self.serial = serial.serial_for_url(url, baudrate=baudrate, timeout=0,
                                                write_timeout=None if url.startswith("rfc2217://") else write_timeout,
                                                **kwargs)
        except serial.SerialException as exc:
            self._unlock()
            text = str(exc)
            if "lock" in text.lower():
                raise DeviceError(f"{url} is in use by another process: {text}") from None
            raise DeviceError(f"cannot open {url}: {text}") from None
        except ValueError as exc:
            self._unlock()
            raise DeviceError(f"cannot open {url}: {exc}") from None
        try:
            self.fd = self.serial.fileno()
        except Exception:  # URL handlers without a descriptor (loop://, rfc2217://)
            self.fd = None
            # set once: changing an rfc2217:// port's timeout renegotiates the line with the server every time
            self.serial.timeout = POLL

    def _lock(self, path: Path) -> int:
        """flock on a lock file, removed again on close. The file we locked must still be the one at the
        path (a closing holder unlinks it first), else we locked an orphan and try again."""
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise DeviceError(f"{self.url} is in use by another process (lock file {path})") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {self.url}\n".encode())
                return fd
            os.close(fd)

    def _unlock(self):
        if self._lock_fd is not None:
            try:
                os.unlink(self._lock_path)
            except OSError:
                pass
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.serial.write(data)
            self.serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"writing to {self.url} failed: {exc}") from None

    def _far_end(self) -> str:
        """Who can have gone when the port fails: over a network URL, the serial server (ser2net) first."""
        if self.url.startswith(("rfc2217://", "socket://")):
            return "the serial server, the device or the emulator"
        return "the device or emulator"

    def read(self, deadline: float) -> bytes:
        """What has arrived, waiting until the deadline for at least one byte (b"" on timeout)."""
        import serial

        remaining = max(deadline - time.monotonic(), 0.0)
        try:
            if self.fd is not None:
                ready, _, _ = select.select([self.fd], [], [], remaining)
                if not ready:
                    return b""
                data = self.serial.read(65536)  # non-blocking: what is there
                if not data:
                    raise LinkLost(f"{self.url} closed ({self._far_end()} went away)")
                return data
            # no descriptor to select() on: read(1) waits at most POLL, so wait in steps of POLL until the
            # deadline. (Returning b"" after one POLL made the link take 20 ms for the request's timeout and send
            # it again and again: the answer to a 4 KB LOAD_CHUNK comes 0.36 s after it at 115200 baud.)
            while True:
                if remaining <= 0 and not self.serial.in_waiting:
                    return b""
                first = self.serial.read(1)  # waits up to POLL
                if first:
                    return first + self.serial.read(self.serial.in_waiting)
                remaining = deadline - time.monotonic()
        except serial.SerialException as exc:
            raise LinkLost(f"connection to {self.url} lost ({self._far_end()} went away): {exc}") from None
        except OSError as exc:
            raise LinkLost(f"reading from {self.url} failed: {exc}") from None

    def close(self) -> None:
        try:
            self.serial.close()
        except Exception:
            pass
        self._unlock()


class Line(typing.Protocol):
    """What the link needs of a port: _Port, or a line a test or campaign puts in its place."""

    def write(self, data: bytes) -> None: ...

    def read(self, deadline: float) -> bytes: ...

    def close(self) -> None: ...


def open_port(url: str, baudrate: int = 115200, write_timeout: float = 1.0) -> Line:
    """The port at `url`, opened and locked as SerialLink opens it."""
    return _Port(url, baudrate, write_timeout)

