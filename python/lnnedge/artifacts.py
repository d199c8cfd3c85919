"""Atomic writes for everything under build/: a crash never leaves a half-written artefact. And the errors for
an artefact that is missing (not built yet) or unusable (damaged, stale, of another model)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import LnnedgeError


class ArtifactError(LnnedgeError, ValueError):
    """An artefact under build/ that cannot be used: damaged, truncated, or made for something else."""


class MissingArtifact(ArtifactError, FileNotFoundError):
    """An artefact an earlier step makes is not there; the message names the command that makes it."""


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it.

    The temporary file is created with mode 0o666 and the process's umask applied by the kernel, as a plain
    open() would (tempfile.mkstemp makes 0600 files: artefacts others could not read)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:  # another writer's temporary name: draw again
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
