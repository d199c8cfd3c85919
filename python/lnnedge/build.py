"""Building the C VM for a target with vm/Makefile (the VM itself needs no Python).

The target file says which toolchain, CPU flags and kernel set (ISA) to use;
this module turns that into one `make` command and reports what it produced.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .artifacts import atomic_write_text
from .config import Board, Target
from .errors import LnnedgeError
from .opselect import write_header
from .paths import BUILD_DIR, ROOT, VM_DIR


class BuildError(LnnedgeError, RuntimeError):
    pass


@dataclass(frozen=True)
class BuildResult:
    target: str
    command: str
    runner: Path
    library: Path | None
    runner_bytes: int
    vm_bytes: int | None  # text + data of liblnnvm.a, where the toolchain has a `size` tool
    memory: dict | None = None  # firmware targets: flash/RAM use, from `make size`


# make's parallel jobs for every build of the VM, the firmware and the fuzzers: the files are independent, and
# the machines the kit targets as hosts (CI, a laptop) have at least two cores
MAKE_JOBS = "-j2"


def output_dir(target: Target) -> Path:
    return BUILD_DIR / ("firmware" if target.firmware else "vm") / target.name


def runner_path(target: Target) -> Path:
    """What a board of this target runs: the lnnvm runner, or the firmware image."""
    out = output_dir(target)
    return out / target.firmware.elf if target.firmware else out / "lnnvm"


def _sources(target: Target) -> list[Path]:
    """The files a target's runner (or firmware image) is made from: what make would compare it with."""
    dirs = [VM_DIR / "src", VM_DIR / "include", VM_DIR / "runner"]
    if target.firmware is not None:
        dirs.append(ROOT / target.firmware.make_dir)
    return [VM_DIR / "Makefile", VM_DIR / "sources.mk", *(f for d in dirs for f in sorted(d.rglob("*")) if f.is_file())]


CONFIG_FILE = "target.sha256"  # beside a build's output: the target configuration it was compiled with


def _config_digest(target: Target) -> str:
    """The target as configured (targets/<name>.yaml with its toolchain: flags, kernel set, memory map, firmware
    variables), as a digest: make compares files, not the flags it is given, so a changed flag needs this."""
    return hashlib.sha256(repr(target).encode()).hexdigest()


def _prepare_output(target: Target, out: Path) -> None:
    """Before make: objects compiled for another configuration of the target are deleted (make would keep them,
    being newer than their sources), and the digest of this one is recorded once the build succeeds."""
    stamp = out / CONFIG_FILE
    if stamp.is_file() and stamp.read_text().strip() != _config_digest(target):
        for objects in [d for d in out.rglob("obj*") if d.is_dir()]:  # obj, obj-pic, host/obj, ...
            shutil.rmtree(objects, ignore_errors=True)
    stamp.unlink(missing_ok=True)


def _record_config(target: Target, out: Path) -> None:
    atomic_write_text(out / CONFIG_FILE, _config_digest(target) + "\n")


def _stale(target: Target) -> str | None:
    """Why the runner or firmware image of `target` needs building, as make would judge it, or None."""
    path = runner_path(target)
    stamp = output_dir(target) / CONFIG_FILE
    if not path.is_file():
        return "is missing"
    if not stamp.is_file() or stamp.read_text().strip() != _config_digest(target):
        return f"was built for another configuration of targets/{target.name}.yaml"
    built = path.stat().st_mtime
    newer = next((f for f in _sources(target) if f.stat().st_mtime > built), None)
    return None if newer is None else f"is older than {newer.relative_to(VM_DIR.parent)}"


def ensure_built(target: Target, say=lambda line: print(line, file=sys.stderr)) -> Path:
    """The runner or firmware image of `target`, built first (one line through `say`) when it is missing, older
    than one of its sources, as make would, or built for another configuration of the target: a task that runs a
    model never asks the user to build by hand."""
    path = runner_path(target)
    why = _stale(target)
    if why is None:
        return path
    say(f"{path} {why}: building it (invoke build --target {target.name})")
    kept = resident(target) if target.firmware is not None else None  # a rebuild keeps the model built in
    build(target, echo=lambda _line: None, model=Path(kept["file"]) if kept else None)
    return path


_building = threading.Lock()  # a group's boards open in parallel; two of one target must not run make at once

# The transports whose board runs what build/ holds (a serial board runs what was flashed on it).
_RUNS_BUILD = ("local", "qemu", "qemu-system", "ssh")


def ensure_for_board(board: Board) -> None:
    """ensure_built for the board's target, where the board runs (or is sent) what build/ holds."""
    if board.transport in _RUNS_BUILD:
        with _building:
            ensure_built(board.target)


def takes_no_upload(target: Target) -> bool:
    """A firmware that runs only the model built into its image (MODEL_MAX 0: no RAM for an upload)."""
    return target.firmware is not None and str(target.firmware.variables.get("MODEL_MAX", "1")) == "0"


def runs_models_built_in(target: Target) -> bool:
    """A firmware whose build holds a model: it takes no upload, or its last build linked a model in (a selective
    build: only that model's ops, so another model may need another image)."""
    return takes_no_upload(target) or (target.firmware is not None and resident(target) is not None)


def ensure_resident(target: Target, model: Path, say=lambda line: print(line, file=sys.stderr)) -> None:
    """The target's firmware image with `model` built in: as it is when it holds that model (and is up to date),
    else built around it (for an emulated board that boots the build; a real one is flashed by the user)."""
    with _building:
        kept = resident(target)
        if kept is None or kept["sha256"] != hashlib.sha256(model.read_bytes()).hexdigest():
            why = f"holds {kept['file'] if kept else 'no model'}"
        else:  # the model is in it; rebuilt from this file, which has its bytes (the one built from may be gone)
            why = _stale(target)
            if why is None:
                return
        say(f"{runner_path(target)} {why}: building it around {model} (invoke build --target {target.name} "
            f"--file {model})")
        build(target, echo=lambda _line: None, model=model)


def _failed(what: str, proc: subprocess.CompletedProcess) -> BuildError:
    """A make that failed: its first error line in the message's first line (what a group's summary and a JUnit
    report show), the whole output after it."""
    output = f"{proc.stdout}{proc.stderr}"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    first = next((line for line in lines if "error" in line.lower() and not line.startswith("make")),
                 lines[-1] if lines else f"make exited with {proc.returncode}")
    return BuildError(f"{what} failed: {first}\n{output}")


def tool_command(spec: str) -> list[str]:
    """A toolchain command as argv; a leading `python` is this interpreter (for `python -m ziglang cc`)."""
    argv = shlex.split(spec)
    if argv and argv[0] == "python":
        argv[0] = sys.executable
    return argv


def _check_tool(target: Target, argv: list[str]) -> None:
    if argv[0] == sys.executable:
        module = argv[2] if len(argv) > 2 and argv[1] == "-m" else None
        if module:
            probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
            if probe.returncode != 0:
                packages = " ".join(target.toolchain.pip_packages) or module
                raise BuildError(f"toolchain {target.toolchain.name} for target {target.name} needs the Python "
                                 f"package {packages}: pip install {packages} (./kit installs it)")
        return
    if shutil.which(argv[0]) is None:
        packages = " ".join(target.toolchain.debian_packages) or "a C compiler"
        raise BuildError(f"compiler {argv[0]!r} for target {target.name} not found; "
                         f"install: apt-get install {packages}")


def make_command(target: Target, out: Path, goal: str) -> list[str]:
    cc = tool_command(target.toolchain.cc)
    ar = tool_command(target.toolchain.ar)
    cflags = [*target.cflags, f'-DLNN_TARGET_NAME=\\"{target.name}\\"']
    args = ["make", "-C", str(VM_DIR), MAKE_JOBS, f"O={out}", f"CC={shlex.join(cc)}", f"AR={shlex.join(ar)}",
            f"ISA={target.simd}", f"EXTRA_CFLAGS={' '.join(cflags)}"]
    if target.static:
        args.append("EXTRA_LDFLAGS=-static")
    return [*args, goal]


def build(target: Target, sanitize: bool = False, echo=print, model: Path | None = None) -> BuildResult:
    """make -C vm for the target; `sanitize` builds the ASan/UBSan runner and kernel test into <out>-sanitize. A
    firmware target links `model` (a .lnnb) into its image."""
    _check_tool(target, tool_command(target.toolchain.cc))
    if target.firmware is not None:
        return build_firmware(target, echo, model)
    if model is not None:
        raise BuildError(f"target {target.name} is not a firmware target: its runner loads the model at run time "
                         "(--model and --file are for firmware targets)")
    out = output_dir(target)
    if sanitize:
        out = out.with_name(out.name + "-sanitize")
    # The shared library (for the ctypes binding) only makes sense where Python runs: the host.
    goal = "sanitize" if sanitize else "all" if target.name == "host" else "runner"
    args = make_command(target, out, goal)
    command = shlex.join(args)
    echo(f"$ {command}")
    with exclusive(out):
        _prepare_output(target, out)
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise _failed(f"building the VM for {target.name}", proc)
        _record_config(target, out)
    runner = out / "lnnvm"
    library = out / "liblnnvm.so"
    vm_bytes = vm_size(target, out / "liblnnvm.a")
    if vm_bytes is not None and target.vm_size_budget and vm_bytes > target.vm_size_budget:
        raise BuildError(f"the VM for {target.name} is {vm_bytes} bytes (text + data), over its budget of "
                         f"{target.vm_size_budget} bytes in targets/{target.name}.yaml")
    return BuildResult(target.name, command, runner, library if library.is_file() else None, runner.stat().st_size,
                       vm_bytes)


RESIDENT_FILE = "resident.json"  # beside a firmware image: the model built into it
LOCK_FILE = ".build.lock"  # in a build's output directory: held (flock) while make runs there


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One build at a time in `out`, across processes too (two tasks at once, a test beside a task): two makes
    in one tree interleave their objects and outputs. Threads of one process are kept apart by _building."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def firmware_make_args(target: Target, model: Path | None = None, out: Path | None = None) -> list[str]:
    """make -C vm/firmware for a firmware target: its board, CPU flags, memory map (targets/<target>.yaml
    `memory:`, from which the Makefile writes the linker script's MEMORY) and buffers; `model` linked in; the
    image in `out` (default: output_dir)."""
    fw = target.firmware
    cross = target.toolchain.cc[: -len("gcc")] if target.toolchain.cc.endswith("gcc") else target.toolchain.cc
    args = ["make", "-C", str(ROOT / fw.make_dir), MAKE_JOBS, f"O={out or output_dir(target)}", f"CROSS={cross}",
            f"TARGET_NAME={target.name}", f"CPU={' '.join(target.cflags)}", f"IMAGE={Path(fw.elf).stem}"]
    for name, region in target.memory.items():
        args += [f"{name.upper()}_ORIGIN={region.origin:#010x}", f"{name.upper()}_SIZE={region.size}"]
    args += [f"{k}={v}" for k, v in fw.variables.items()]
    if model is not None:
        # a selective build: only the kernels and plan room of the model built in (opselect.py's header)
        ops = write_header([Path(model)], Path(out or output_dir(target)) / "ops.h")
        args += [f"MODEL_FILE={Path(model).resolve()}", f"OPS_HEADER={ops.resolve()}"]
    return args


def resident(target: Target, out: Path | None = None) -> dict | None:
    """What the last build of a firmware target (in `out`) linked in: {file, sha256, crc32, bytes}, or None."""
    path = (out or output_dir(target)) / RESIDENT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def build_firmware(target: Target, echo=print, model: Path | None = None, out: Path | None = None) -> BuildResult:
    """The bare-metal image (vm/firmware) and its flash/RAM use, with `model` resident in its flash, into `out`
    (default: output_dir); refuses one over the board's budget, and a target without an upload buffer
    (MODEL_MAX 0) without a model."""
    out = out or output_dir(target)
    if model is None and takes_no_upload(target):
        raise BuildError(f"target {target.name} runs only the model built into its image (MODEL_MAX 0: no RAM for "
                         f"uploads): give one, e.g. `invoke build --target {target.name} --model ltc-sine`")
    if model is not None and not Path(model).is_file():
        raise BuildError(f"{model} does not exist: compile the model first (invoke compile)")
    with exclusive(out):
        return _build_firmware(target, echo, model, out)


def _build_firmware(target: Target, echo, model: Path | None, out: Path) -> BuildResult:
    fw = target.firmware
    args = firmware_make_args(target, model, out)
    echo(f"$ {shlex.join(args)}")
    (out / RESIDENT_FILE).unlink(missing_ok=True)  # what an image holds is only recorded once it is built
    _prepare_output(target, out)
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise _failed(f"building the firmware for {target.name}", proc)
    _record_config(target, out)
    sizes = subprocess.run([*args, "-s", "size"], capture_output=True, text=True, check=True).stdout
    memory = {k: int(v) for k, v in (line.split("=", 1) for line in sizes.split() if "=" in line)}
    elf = out / fw.elf
    image = (out / fw.bin).read_bytes()
    if len(image) != memory["flash"]:  # the device's image_crc covers the .bin: a gap would differ on a part
        raise BuildError(f"the image of {target.name} has gaps: {out / fw.bin} is {len(image)} bytes, its sections "
                         f"{memory['flash']}")
    if target.vm_size_budget and memory["flash"] > target.vm_size_budget:
        raise BuildError(f"the firmware for {target.name} takes {memory['flash']} bytes of flash, over its budget "
                         f"of {target.vm_size_budget} bytes in targets/{target.name}.yaml")
    if model is not None:
        data = Path(model).read_bytes()
        record = {"file": str(Path(model).resolve()), "sha256": hashlib.sha256(data).hexdigest(),
                  "crc32": zlib.crc32(data), "bytes": len(data)}
        atomic_write_text(out / RESIDENT_FILE, json.dumps(record, indent=2) + "\n")
    return BuildResult(target.name, shlex.join(args), elf, None, elf.stat().st_size, memory["flash"], memory)


def vm_size(target: Target, archive: Path) -> int | None:
    """text + data of the VM library, from binutils' size (None when the toolchain has no size tool)."""
    if not target.toolchain.size or shutil.which(target.toolchain.size) is None or not archive.is_file():
        return None
    proc = subprocess.run([target.toolchain.size, "-t", str(archive)], capture_output=True, text=True, check=True)
    text, data = proc.stdout.strip().splitlines()[-1].split()[:2]
    return int(text) + int(data)


def _make_program(target: Target, goal: str, what: str, echo=print) -> None:
    """`make <goal>` of vm/Makefile for a target; BuildError naming `what` if it fails."""
    _check_tool(target, tool_command(target.toolchain.cc))
    args = make_command(target, output_dir(target), goal)
    echo(f"$ {shlex.join(args)}")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise _failed(f"building {what} for {target.name}", proc)


def kernel_test(target: Target, echo=print) -> Path:
    """Build the kernel test program (every SIMD kernel against the scalar one) for a target."""
    _make_program(target, "kerneltest", "the kernel test", echo)
    return output_dir(target) / "lnn_kernel_test"


def matmul_bench_program(target: Target, echo=print) -> Path:
    """Build the matmul benchmark (the MATMUL kernel vs a naive loop, vm/tests/matmul_bench.c) for a target."""
    _make_program(target, "matmulbench", "the matmul benchmark", echo)
    return output_dir(target) / "lnn_matmul_bench"
