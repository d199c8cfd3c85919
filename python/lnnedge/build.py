"""Building the C VM for a target with vm/Makefile (the VM itself needs no Python)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .config import Target
from .paths import BUILD_DIR, VM_DIR


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class BuildResult:
    target: str
    command: str
    runner: Path
    library: Path | None
    runner_bytes: int


def output_dir(target: Target) -> Path:
    return BUILD_DIR / "vm" / target.name


def build(target: Target, sanitize: bool = False, echo=print) -> BuildResult:
    """make -C vm for the target; `sanitize` builds the ASan/UBSan runner into <out>-sanitize."""
    cc = target.toolchain.cc
    if shutil.which(cc) is None:
        packages = " ".join(target.toolchain.debian_packages) or "a C compiler"
        raise BuildError(f"compiler {cc!r} for target {target.name} not found; install: apt-get install {packages}")
    out = output_dir(target)
    if sanitize:
        out = out.with_name(out.name + "-sanitize")
    args = ["make", "-C", str(VM_DIR), f"O={out}", f"CC={cc}", f"EXTRA_CFLAGS={' '.join(target.cflags)}"]
    if target.static:
        args.append("EXTRA_LDFLAGS=-static")
    args.append("sanitize" if sanitize else "all")
    command = shlex.join(args)
    echo(f"$ {command}")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"building the VM for {target.name} failed:\n{proc.stdout}{proc.stderr}")
    runner = out / "lnnvm"
    library = out / "liblnnvm.so"
    return BuildResult(target.name, command, runner, library if library.is_file() else None, runner.stat().st_size)
