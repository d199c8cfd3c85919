"""Targets (targets/*.yaml), toolchains (toolchains/*.yaml) and boards (boards.yaml), validated.

Each mistake is a ConfigError naming the file, the entry and what is wrong.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import LnnedgeError
from .paths import ROOT

TARGETS_DIR = ROOT / "targets"
TOOLCHAINS_DIR = ROOT / "toolchains"
BOARDS_FILE = ROOT / "boards.yaml"
TRANSPORTS = ("local", "qemu", "ssh", "serial", "qemu-system")
_BOARD_FIELDS = {"target", "transport", "description", "qemu_cpu", "memory"}
_UNITS = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def _bytes(value, path: Path, where: str) -> int:
    """A size as an integer or a string like '256KiB' / '1GiB'."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", str(value))
    if not match:
        raise ConfigError(f"{path}: {where}: {value!r} is not a size (e.g. 262144, '256KiB', '1GiB')")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def _memory(entry: dict, path: Path, name: str) -> dict:
    raw = entry.get("memory", {})
    if not isinstance(raw, dict) or set(raw) - {"ram", "flash"}:
        raise ConfigError(f"{path}: board '{name}': memory must be a mapping with ram and/or flash")
    return {k: _bytes(v, path, f"board '{name}': memory.{k}") for k, v in raw.items()}
_SSH_FIELDS = {"host", "port", "user", "key", "agent", "known_hosts", "remote_dir", "command_prefix", "timeouts"}
_SERIAL_FIELDS = {"port", "baudrate", "timeouts", "retries"}


def boards_file() -> Path:
    """boards.yaml at the repository root, or the file named by $LNNEDGE_BOARDS."""
    return Path(os.environ.get("LNNEDGE_BOARDS", BOARDS_FILE))
SIMD_LEVELS = ("auto", "scalar", "neon", "sse3", "avx2", "avx512")


class ConfigError(LnnedgeError, ValueError):
    pass


@dataclass(frozen=True)
class Toolchain:
    name: str
    cc: str
    ar: str
    objdump: str
    size: str
    debian_packages: tuple[str, ...]
    pip_packages: tuple[str, ...]
    cmake: str


@dataclass(frozen=True)
class SSHSettings:
    host: str
    port: int
    user: str
    key: Path | None
    agent: bool
    known_hosts: Path
    remote_dir: str
    command_prefix: tuple[str, ...]
    connect_timeout: float
    banner_timeout: float
    command_timeout: float


@dataclass(frozen=True)
class Qemu:
    program: str
    cpu: str
    machine: str = ""  # system emulation (bare-metal firmware) when set
    icount: int | None = None


@dataclass(frozen=True)
class Firmware:
    make_dir: str
    elf: str
    bin: str
    variables: dict


@dataclass(frozen=True)
class SerialSettings:
    port: str  # any pyserial URL: /dev/ttyACM0, a pty, socket://host:port
    baudrate: int
    frame_timeout: float
    run_timeout: float
    retries: int


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str
    os: str
    toolchain: Toolchain
    simd: str
    cflags: tuple[str, ...]
    static: bool
    cpu: str
    features: tuple[str, ...]
    elf_machine: str
    qemu: Qemu | None
    vm_size_budget: int
    clock_hz: int = 0
    firmware: Firmware | None = None


@dataclass(frozen=True)
class Board:
    name: str
    target: Target
    transport: str
    description: str
    qemu_cpu: str
    ssh: SSHSettings | None = None
    memory: dict = field(default_factory=dict)  # {"ram": bytes, "flash": bytes}, where recorded
    serial: SerialSettings | None = None

    def qemu_command(self) -> tuple[str, ...]:
        """The user-mode emulator prefix for a qemu board: program and CPU model."""
        if self.target.qemu is None:
            raise ConfigError(f"board {self.name}: target {self.target.name} has no qemu settings")
        return (self.target.qemu.program, "-cpu", self.qemu_cpu or self.target.qemu.cpu)


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of fields")
    return raw


def _field(raw: dict, path: Path, entry: str, key: str, kind: type, default=None):
    if key not in raw:
        if default is None:
            raise ConfigError(f"{path}: {entry}: field '{key}' is missing")
        return default
    value = raw[key]
    if kind is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: {entry}: field '{key}' must be a list of strings, got {value!r}")
        return tuple(value)
    if not isinstance(value, kind) or (kind is str and not value):
        raise ConfigError(f"{path}: {entry}: field '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def target_names() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.yaml"))


def load_toolchain(name: str) -> Toolchain:
    path = TOOLCHAINS_DIR / f"{name}.yaml"
    raw = _load_yaml(path)
    return Toolchain(
        name=name,
        cc=_field(raw, path, name, "cc", str),
        ar=_field(raw, path, name, "ar", str, "ar"),
        objdump=_field(raw, path, name, "objdump", str, "objdump"),
        size=_field(raw, path, name, "size", str, ""),
        debian_packages=_field(raw, path, name, "debian_packages", tuple, ()),
        pip_packages=_field(raw, path, name, "pip_packages", tuple, ()),
        cmake=_field(raw, path, name, "cmake", str, ""),
    )


def load_target(name: str) -> Target:
    path = TARGETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown target {name!r}: no {path} (targets: {', '.join(target_names())})")
    raw = _load_yaml(path)
    toolchain = _field(raw, path, name, "toolchain", str)
    if not (TOOLCHAINS_DIR / f"{toolchain}.yaml").is_file():
        raise ConfigError(f"{path}: {name}: toolchain {toolchain!r} does not exist in {TOOLCHAINS_DIR}")
    simd = _field(raw, path, name, "simd", str)
    if simd not in SIMD_LEVELS:
        raise ConfigError(f"{path}: {name}: simd {simd!r} is not one of {', '.join(SIMD_LEVELS)}")
    qemu = None
    if "qemu" in raw:
        q = raw["qemu"]
        if not isinstance(q, dict):
            raise ConfigError(f"{path}: {name}: field 'qemu' must be a mapping with program and cpu")
        qemu = Qemu(_field(q, path, f"{name}.qemu", "program", str), _field(q, path, f"{name}.qemu", "cpu", str),
                    q.get("machine", ""), q.get("icount"))
    firmware = None
    if "firmware" in raw:
        fw = raw["firmware"]
        if not isinstance(fw, dict):
            raise ConfigError(f"{path}: {name}: field 'firmware' must be a mapping (make_dir, elf, bin, variables)")
        variables = fw.get("variables", {})
        if not isinstance(variables, dict):
            raise ConfigError(f"{path}: {name}: firmware.variables must be a mapping of make variables")
        firmware = Firmware(_field(fw, path, f"{name}.firmware", "make_dir", str),
                            _field(fw, path, f"{name}.firmware", "elf", str),
                            _field(fw, path, f"{name}.firmware", "bin", str), variables)
    return Target(
        name=name,
        description=_field(raw, path, name, "description", str, ""),
        arch=_field(raw, path, name, "arch", str),
        os=_field(raw, path, name, "os", str),
        toolchain=load_toolchain(toolchain),
        simd=simd,
        cflags=_field(raw, path, name, "cflags", tuple, ()),
        static=_field(raw, path, name, "static", bool, False),
        cpu=_field(raw, path, name, "cpu", str, "native"),
        features=_field(raw, path, name, "features", tuple, ()),
        elf_machine=_field(raw, path, name, "elf_machine", str, ""),
        qemu=qemu,
        vm_size_budget=_field(raw, path, name, "vm_size_budget", int, 0),
        clock_hz=_field(raw, path, name, "clock_hz", int, 0),
        firmware=firmware,
    )


def _ssh_settings(entry: dict, path: Path, name: str) -> SSHSettings:
    where = f"board '{name}'"

    def local_path(value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (path.parent / p)

    key = _field(entry, path, where, "key", str, "")
    timeouts = entry.get("timeouts", {})
    if not isinstance(timeouts, dict) or set(timeouts) - {"connect", "banner", "command"}:
        raise ConfigError(f"{path}: {where}: 'timeouts' may hold connect, banner and command (seconds)")
    for k, v in timeouts.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ConfigError(f"{path}: {where}: timeouts.{k} must be a positive number of seconds, got {v!r}")
    port = _field(entry, path, where, "port", int, 22)
    if not 0 < port < 65536:
        raise ConfigError(f"{path}: {where}: port must be 1..65535, got {port}")
    agent = _field(entry, path, where, "agent", bool, False)
    if not key and not agent:
        raise ConfigError(f"{path}: {where}: give a 'key' file or 'agent: true' for SSH authentication")
    prefix = entry.get("command_prefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"{path}: {where}: command_prefix must be a string, got {prefix!r}")
    import shlex

    return SSHSettings(
        host=_field(entry, path, where, "host", str),
        port=port,
        user=_field(entry, path, where, "user", str),
        key=local_path(key) if key else None,
        agent=agent,
        known_hosts=local_path(_field(entry, path, where, "known_hosts", str, "~/.ssh/known_hosts")),
        remote_dir=_field(entry, path, where, "remote_dir", str),
        command_prefix=tuple(shlex.split(prefix)),
        connect_timeout=float(timeouts.get("connect", 10)),
        banner_timeout=float(timeouts.get("banner", 10)),
        command_timeout=float(timeouts.get("command", 120)),
    )


def _serial_settings(entry: dict, path: Path, name: str) -> SerialSettings:
    where = f"board '{name}'"
    timeouts = entry.get("timeouts", {})
    if not isinstance(timeouts, dict) or set(timeouts) - {"frame", "run"}:
        raise ConfigError(f"{path}: {where}: 'timeouts' may hold frame and run (seconds)")
    for k, v in timeouts.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ConfigError(f"{path}: {where}: timeouts.{k} must be a positive number of seconds, got {v!r}")
    retries = _field(entry, path, where, "retries", int, 6)
    if retries < 1:
        raise ConfigError(f"{path}: {where}: retries must be >= 1")
    return SerialSettings(port=_field(entry, path, where, "port", str),
                          baudrate=_field(entry, path, where, "baudrate", int, 115200),
                          frame_timeout=float(timeouts.get("frame", 1.0)), run_timeout=float(timeouts.get("run", 60)),
                          retries=retries)


def load_boards(path: Path | None = None) -> tuple[dict[str, Board], str]:
    """All boards and the default board's name."""
    path = path or boards_file()
    raw = _load_yaml(path)
    boards_raw = raw.get("boards")
    if not isinstance(boards_raw, dict) or not boards_raw:
        raise ConfigError(f"{path}: 'boards' must be a mapping of board name -> entry")
    boards = {}
    for name, entry in boards_raw.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: board '{name}': entry must be a mapping, got {entry!r}")
        transport = entry.get("transport")
        extra = _SSH_FIELDS if transport == "ssh" else _SERIAL_FIELDS if transport == "serial" else set()
        unknown = set(entry) - _BOARD_FIELDS - extra
        if unknown:
            raise ConfigError(f"{path}: board '{name}': unknown field(s) {', '.join(sorted(unknown))}")
        transport = _field(entry, path, f"board '{name}'", "transport", str)
        if transport not in TRANSPORTS:
            raise ConfigError(f"{path}: board '{name}': transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
        target_name = _field(entry, path, f"board '{name}'", "target", str)
        try:
            target = load_target(target_name)
        except ConfigError as exc:
            raise ConfigError(f"{path}: board '{name}': {exc}") from None
        if transport == "qemu" and target.qemu is None:
            raise ConfigError(f"{path}: board '{name}': transport qemu needs a target with qemu settings; "
                              f"{target.name} has none")
        if transport == "qemu-system" and (target.qemu is None or not target.qemu.machine or target.firmware is None):
            raise ConfigError(f"{path}: board '{name}': transport qemu-system needs a firmware target with "
                              f"qemu.machine; {target.name} is not one")
        if transport in ("serial", "qemu-system") and target.firmware is None:
            raise ConfigError(f"{path}: board '{name}': transport {transport} needs a firmware target "
                              f"(e.g. cortex-m4); {target.name} is not one")
        boards[name] = Board(name, target, transport,
                             _field(entry, path, f"board '{name}'", "description", str, ""),
                             _field(entry, path, f"board '{name}'", "qemu_cpu", str, ""),
                             _ssh_settings(entry, path, name) if transport == "ssh" else None,
                             _memory(entry, path, name),
                             _serial_settings(entry, path, name) if transport == "serial" else None)
    default = raw.get("default_board", next(iter(boards)))
    if default not in boards:
        raise ConfigError(f"{path}: default_board {default!r} is not a board in the file")
    return boards, default


def resolve(name: str | None, path: Path | None = None) -> list[Board]:
    """A board name, or a group name from boards.yaml's `groups:`, as a list of boards."""
    path = path or boards_file()
    boards, default = load_boards(path)
    groups = _load_yaml(path).get("groups", {}) or {}
    if not isinstance(groups, dict):
        raise ConfigError(f"{path}: 'groups' must map a group name to a list of boards")
    name = name or default
    if name in boards:
        return [boards[name]]
    if name in groups:
        members = groups[name]
        if not isinstance(members, list) or not members:
            raise ConfigError(f"{path}: group '{name}' must be a non-empty list of board names")
        unknown = [m for m in members if m not in boards]
        if unknown:
            raise ConfigError(f"{path}: group '{name}' names unknown board(s) {', '.join(map(str, unknown))}")
        return [boards[m] for m in members]
    raise ConfigError(f"{path}: unknown board or group {name!r} (boards: {', '.join(boards)}; "
                      f"groups: {', '.join(groups) or 'none'})")


def board(name: str | None, path: Path | None = None) -> Board:
    path = path or boards_file()
    boards, default = load_boards(path)
    name = name or default
    if name not in boards:
        raise ConfigError(f"{path}: unknown board {name!r} (boards: {', '.join(boards)})")
    return boards[name]
