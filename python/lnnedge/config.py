"""Targets (targets/*.yaml), toolchains (toolchains/*.yaml) and boards (boards.yaml), validated.

Each file is checked against a typed schema (schema.py: types, ranges, unknown keys refused with a
did-you-mean); a mistake is a ConfigError naming the file, the key and the value. The schemas below
describe the files as written; the frozen dataclasses are what the rest of the kit reads. (Over 400 lines:
the schemas and the dataclasses of these files are read best side by side.)
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from .errors import LnnedgeError
from .paths import PROJECT_DIR, ROOT
from .schema import FileModel, Flag, Int, Name, Seconds, Size, Text, check, rule

TARGETS_DIR = ROOT / "targets"
TOOLCHAINS_DIR = ROOT / "toolchains"
BOARDS_FILE = ROOT / "boards.yaml"  # the shipped example, used when the project has no boards.yaml
SIMD_LEVELS = ("auto", "scalar", "neon", "sse3", "avx2", "avx512")


def boards_file() -> Path:
    """The file named by $LNNEDGE_BOARDS, else the project's boards.yaml, else the shipped one."""
    if "LNNEDGE_BOARDS" in os.environ:
        return Path(os.environ["LNNEDGE_BOARDS"])
    own = PROJECT_DIR / "boards.yaml"
    return own if own.is_file() else BOARDS_FILE


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
class FlasherSettings:
    """How `invoke flash` writes a serial board's flash: an existing tool and its probe / part options."""
    tool: str  # pyocd | openocd | st-flash
    probe: str  # the debug probe's serial number / unique id ("" : the only one attached)
    part: str  # pyocd's target type (stm32f405rg), openocd's target config (stm32f4x); st-flash: unused
    interface: str  # openocd's interface config (stlink, cmsis-dap); others: unused
    extra: tuple[str, ...]  # further arguments, passed as they are
    timeout: float


@dataclass(frozen=True)
class Region:
    """A memory of the part: where it starts and how many bytes (targets/<target>.yaml `memory:`)."""
    origin: int
    size: int


@dataclass(frozen=True)
class SerialSettings:
    port: str  # any pyserial URL: /dev/ttyACM0, a pty, socket://host:port
    baudrate: int
    frame_timeout: float
    run_timeout: float
    retries: int


@dataclass(frozen=True)
class LabgridSettings:
    """A board of a labgrid lab (transport: labgrid): which place, and how to talk to what the place exports.
    The SSH and serial settings are templates: host, port, user (SSH) and the port URL (serial) come from the
    place's NetworkService / NetworkSerialPort once it is acquired (lnnedge.devices.labgrid)."""
    coordinator: str  # host:port of the labgrid-coordinator
    place: str  # the place's name; "" : any free place with the tags
    tags: tuple[str, ...]  # "key=value" (the tag has this value) or "key" (the place has the tag)
    wait: float  # seconds to wait for a free place; 0: a taken place is skipped at once
    ssh: SSHSettings | None  # for a place with a NetworkService; remote_dir may hold {place}
    serial: SerialSettings  # for a place with a NetworkSerialPort


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
    # a firmware target's memory map: {"flash": Region, "ram": Region}; the linker script, the firmware's
    # buffers and the fit checks all take it from here
    memory: dict[str, Region] = field(default_factory=dict)


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
    flasher: FlasherSettings | None = None  # a serial board `invoke flash` can write
    labgrid: LabgridSettings | None = None  # a board reached through a labgrid place (lnnedge.devices.labgrid)

    def qemu_command(self) -> tuple[str, ...]:
        """The user-mode emulator prefix for a qemu board: program and CPU model."""
        if self.target.qemu is None:
            raise ConfigError(f"board {self.name}: target {self.target.name} has no qemu settings")
        return (self.target.qemu.program, "-cpu", self.qemu_cpu or self.target.qemu.cpu)


# ---- the files as written -------------------------------------------------------------------------------


class ToolchainFile(FileModel):
    name: Name | None = None  # when given, the file's name (toolchains/<name>.yaml)
    cc: Text
    ar: Text = "ar"
    objdump: Text = "objdump"
    size: str = ""
    debian_packages: tuple[Text, ...] = ()
    pip_packages: tuple[Text, ...] = ()
    cmake: str = ""


class QemuFile(FileModel):
    program: Text
    cpu: Text
    machine: str = ""  # system emulation (bare-metal firmware) when set
    icount: Int(ge=0, le=10) | None = None  # qemu's -icount shift: one instruction = 2^icount ns


def _make_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("rule", "must be a number or a string (a make variable), got {value}",
                                  {"value": repr(value)})
    return value


def _make_name(value: str) -> str:
    if not (value.isidentifier() and value.isascii()):
        raise PydanticCustomError("rule", "{value} is not a make variable name", {"value": repr(value)})
    return value


class FirmwareFile(FileModel):
    make_dir: Text
    elf: Text
    bin: Text
    variables: dict[Annotated[str, AfterValidator(_make_name)],
                    Annotated[int | str, Field(union_mode="left_to_right"), AfterValidator(_make_value)]] = {}


class RegionFile(FileModel):
    origin: Int(ge=0, le=0xFFFFFFFF)
    size: Size


class TargetMemory(FileModel):
    flash: RegionFile
    ram: RegionFile


class TargetFile(FileModel):
    name: Name | None = None  # when given, the file's name (targets/<name>.yaml)
    description: str = ""
    arch: Text
    os: Text
    toolchain: Name
    simd: Literal[SIMD_LEVELS]
    cflags: tuple[Text, ...] = ()
    static: Flag = False
    cpu: Text = "native"
    features: tuple[Text, ...] = ()
    elf_machine: str = ""
    qemu: QemuFile | None = None
    vm_size_budget: Int(ge=0) = 0  # bytes; 0: no size gate
    clock_hz: Int(ge=0) = 0
    firmware: FirmwareFile | None = None
    memory: TargetMemory | None = None  # a firmware target's flash and RAM: origin and size


class Memory(FileModel):
    ram: Size | None = None
    flash: Size | None = None


class _Board(FileModel):
    target: Name
    description: str = ""
    memory: Memory = Memory()


class LocalBoard(_Board):
    transport: Literal["local"]


class QemuBoard(_Board):
    transport: Literal["qemu"]
    qemu_cpu: str = ""  # overrides the target's qemu.cpu


class QemuSystemBoard(_Board):
    transport: Literal["qemu-system"]


def _remote_dir(value: str) -> str:
    """The deploy tree on the board: absolute, never / itself, no '..' that would step out of it."""
    path = PurePosixPath(value)
    if not path.is_absolute() or ".." in path.parts or len(path.parts) < 2 or not value.isprintable():
        raise PydanticCustomError("rule", "must be an absolute directory other than / without '..' or control "
                                  "characters, got {value}", {"value": repr(value)})
    return value


def _command_prefix(value: str) -> str:
    try:
        shlex.split(value)
    except ValueError as exc:
        raise PydanticCustomError("rule", "{value} is not a shell word list ({why})",
                                  {"value": repr(value), "why": str(exc)}) from None
    return value


def _host(value: str) -> str:
    """A host name or address; never one that an ssh command line would read as an option."""
    if not re.fullmatch(r"[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]*", value):
        raise PydanticCustomError("rule", "must be a host name or address, got {value}", {"value": repr(value)})
    return value


class SSHTimeouts(FileModel):
    connect: Seconds() = 10.0
    banner: Seconds() = 10.0
    command: Seconds() = 120.0


class SSHBoard(_Board):
    transport: Literal["ssh"]
    host: Annotated[str, Field(strict=True), AfterValidator(_host)]
    port: Int(ge=1, le=65535) = 22
    user: Text
    key: str = ""  # a private key file (relative to boards.yaml), or use the agent
    agent: Flag = False
    known_hosts: Text = "~/.ssh/known_hosts"
    remote_dir: Annotated[str, Field(strict=True), AfterValidator(_remote_dir)]
    command_prefix: Annotated[str, Field(strict=True), AfterValidator(_command_prefix)] = ""
    timeouts: SSHTimeouts = SSHTimeouts()

    @model_validator(mode="after")
    def _authentication(self) -> SSHBoard:
        if not self.key and not self.agent:
            raise rule("give a 'key' file or 'agent: true' for SSH authentication")
        return self


class SerialTimeouts(FileModel):
    frame: Seconds() = 1.0
    run: Seconds() = 60.0


FLASHERS = ("pyocd", "openocd", "st-flash")


class FlashOptions(FileModel):
    probe: str = ""
    part: str = ""
    interface: str = ""
    extra: tuple[Text, ...] = ()
    timeout: Seconds() = 120.0


class SerialBoard(_Board):
    transport: Literal["serial"]
    port: Text  # any pyserial URL: /dev/ttyACM0, a pty, socket://host:port
    baudrate: Int(ge=50, le=20_000_000) = 115200  # termios' slowest rate .. the fastest USB UARTs
    timeouts: SerialTimeouts = SerialTimeouts()
    retries: Int(ge=1, le=100) = 6
    flasher: Literal[FLASHERS] | None = None  # the tool `invoke flash` writes the image with
    flash: FlashOptions = FlashOptions()

    @model_validator(mode="after")
    def _flash_part(self) -> SerialBoard:
        if self.flasher in ("pyocd", "openocd") and not self.flash.part:
            raise rule(f"flasher {self.flasher} needs flash.part (the part: e.g. stm32f405rg for pyocd, "
                       "stm32f4x for openocd)")
        if self.flasher == "openocd" and not self.flash.interface:
            raise rule("flasher openocd needs flash.interface (the probe's config: e.g. stlink, cmsis-dap)")
        return self


def _tag(value: str) -> str:
    """A labgrid tag filter: key=value or key (labgrid's tag keys: lower-case letters, digits and '_')."""
    if not re.fullmatch(r"[a-z][a-z0-9_]+(=[A-Za-z0-9_.-]+)?", value):
        raise PydanticCustomError("rule", "must be key=value or key (a labgrid tag: lower-case key), got {value}",
                                  {"value": repr(value)})
    return value


def _lab_remote_dir(value: str) -> str:
    _remote_dir(value.replace("{place}", "p"))  # checked as the directory of a place named p
    return value


class LabSSH(FileModel):
    """SSH to a place's NetworkService: everything but host, port and user (those come from the resource)."""
    key: str = ""
    agent: Flag = False
    known_hosts: Text = "~/.ssh/known_hosts"
    remote_dir: Annotated[str, Field(strict=True), AfterValidator(_lab_remote_dir)]  # {place}: the place's name
    command_prefix: Annotated[str, Field(strict=True), AfterValidator(_command_prefix)] = ""
    timeouts: SSHTimeouts = SSHTimeouts()

    @model_validator(mode="after")
    def _authentication(self) -> LabSSH:
        if not self.key and not self.agent:
            raise rule("give a 'key' file or 'agent: true' for SSH authentication")
        return self


class LabSerial(FileModel):
    timeouts: SerialTimeouts = SerialTimeouts()
    retries: Int(ge=1, le=100) = 6


class LabgridBoard(_Board):
    transport: Literal["labgrid"]
    coordinator: Annotated[str, Field(strict=True), AfterValidator(_host)] = ""  # default: $LG_COORDINATOR
    place: Name | None = None
    tags: tuple[Annotated[str, AfterValidator(_tag)], ...] = ()
    wait: Annotated[float, Field(ge=0, le=86400)] = 0.0
    ssh: LabSSH | None = None
    serial: LabSerial = LabSerial()

    @model_validator(mode="after")
    def _which_place(self) -> LabgridBoard:
        if (self.place is None) == (not self.tags):
            raise rule("give either 'place' (one place by name) or 'tags' (any free place with them)")
        return self


BOARD_FILES: dict[str, type[_Board]] = {"local": LocalBoard, "qemu": QemuBoard, "ssh": SSHBoard,
                                        "serial": SerialBoard, "qemu-system": QemuSystemBoard,
                                        "labgrid": LabgridBoard}
TRANSPORTS = tuple(BOARD_FILES)


class BoardsFile(FileModel):
    default_board: Name | None = None  # the first board when not given
    # each entry is checked against its transport's schema in load_boards (so a message names the key, not
    # pydantic's union branch); BoardsSchema below shows editors the union
    boards: Annotated[dict[Name, dict[str, Any]], Field(min_length=1)]
    groups: dict[Name, Annotated[list[Name], Field(min_length=1)]] = {}
    # the lab's defaults for `--board lg:...` (a labgrid board entry without place/tags: coordinator, target,
    # ssh, serial); checked with the spec's place or tags added
    labgrid: dict[str, Any] | None = None


class BoardsSchema(BoardsFile):
    """boards.yaml for editors (JSON Schema): each board one of the transports' entries."""

    boards: Annotated[dict[Name, Annotated[LocalBoard | QemuBoard | SSHBoard | SerialBoard | QemuSystemBoard
                                           | LabgridBoard, Field(discriminator="transport")]],
                      Field(min_length=1)]


def json_schemas() -> dict[str, dict]:
    """The JSON Schemas of boards.yaml, targets/*.yaml and toolchains/*.yaml."""
    return {"boards": BoardsSchema.model_json_schema(), "target": TargetFile.model_json_schema(),
            "toolchain": ToolchainFile.model_json_schema()}


# ---- loading -----------------------------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


def _same_name(given: str | None, name: str, path: Path) -> None:
    if given is not None and given != name:
        raise ConfigError(f"{path}: name: {given!r} differs from the file's name {name!r}")


def target_names() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.yaml"))


def load_toolchain(name: str) -> Toolchain:
    path = TOOLCHAINS_DIR / f"{name}.yaml"
    tc = check(ToolchainFile, _load_yaml(path), path, ConfigError)
    _same_name(tc.name, name, path)
    return Toolchain(name=name, cc=tc.cc, ar=tc.ar, objdump=tc.objdump, size=tc.size,
                     debian_packages=tc.debian_packages, pip_packages=tc.pip_packages, cmake=tc.cmake)


def load_target(name: str) -> Target:
    if name not in target_names():  # also keeps a name like '../boards' from reaching the file system
        raise ConfigError(f"unknown target {name!r}: no {TARGETS_DIR / f'{name}.yaml'} "
                          f"(targets: {', '.join(target_names())})")
    path = TARGETS_DIR / f"{name}.yaml"
    t = check(TargetFile, _load_yaml(path), path, ConfigError)
    _same_name(t.name, name, path)
    if not (TOOLCHAINS_DIR / f"{t.toolchain}.yaml").is_file():
        raise ConfigError(f"{path}: toolchain: {t.toolchain!r} is not a toolchain in {TOOLCHAINS_DIR}")
    return Target(
        name=name, description=t.description, arch=t.arch, os=t.os, toolchain=load_toolchain(t.toolchain),
        simd=t.simd, cflags=t.cflags, static=t.static, cpu=t.cpu, features=t.features, elf_machine=t.elf_machine,
        qemu=Qemu(**t.qemu.model_dump()) if t.qemu else None, vm_size_budget=t.vm_size_budget,
        clock_hz=t.clock_hz, firmware=Firmware(**t.firmware.model_dump()) if t.firmware else None,
        memory={k: Region(r.origin, r.size) for k, r in ((k, getattr(t.memory, k)) for k in ("flash", "ram"))}
        if t.memory else {})


def _board(name: str, raw: Any, path: Path) -> Board:
    where = ("boards", name)
    transport = raw.get("transport") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and transport not in BOARD_FILES:
        problem = "is missing" if transport is None else f"must be one of {', '.join(TRANSPORTS)}, got {transport!r}"
        raise ConfigError(f"{path}: boards.{name}.transport: {problem}")
    entry = check(BOARD_FILES[transport] if transport else LocalBoard, raw, path, ConfigError, within=where)
    try:
        target = load_target(entry.target)
    except ConfigError as exc:
        raise ConfigError(f"{path}: boards.{name}.target: {exc}") from None
    needs = {"qemu": target.qemu is not None,
             "qemu-system": target.qemu is not None and bool(target.qemu.machine) and target.firmware is not None,
             "serial": target.firmware is not None}
    if not needs.get(transport, True):
        what = {"qemu": "a target with qemu settings", "qemu-system": "a firmware target with qemu.machine",
                "serial": "a firmware target (e.g. cortex-m4)"}[transport]
        raise ConfigError(f"{path}: boards.{name}: transport {transport} needs {what}; {target.name} is not one")
    # a firmware board's memory is its part's (targets/<target>.yaml) unless the entry says otherwise
    memory = {k: r.size for k, r in target.memory.items()}
    memory.update({k: v for k, v in entry.memory.model_dump().items() if v is not None})
    flasher = None
    if isinstance(entry, SerialBoard) and entry.flasher is not None:
        o = entry.flash
        flasher = FlasherSettings(entry.flasher, o.probe, o.part, o.interface, o.extra, o.timeout)
    return Board(name, target, transport, entry.description, getattr(entry, "qemu_cpu", ""),
                 _ssh_settings(entry, path) if isinstance(entry, SSHBoard) else None, memory,
                 _serial_settings(entry) if isinstance(entry, SerialBoard) else None, flasher)


def _ssh_settings(entry: SSHBoard | LabSSH, path: Path) -> SSHSettings:
    def local_path(value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (path.parent / p)

    return SSHSettings(host=getattr(entry, "host", ""), port=getattr(entry, "port", 22),
                       user=getattr(entry, "user", ""),
                       key=local_path(entry.key) if entry.key else None, agent=entry.agent,
                       known_hosts=local_path(entry.known_hosts), remote_dir=entry.remote_dir,
                       command_prefix=tuple(shlex.split(entry.command_prefix)),
                       connect_timeout=entry.timeouts.connect, banner_timeout=entry.timeouts.banner,
                       command_timeout=entry.timeouts.command)


def _serial_settings(entry: SerialBoard) -> SerialSettings:
    return SerialSettings(port=entry.port, baudrate=entry.baudrate, frame_timeout=entry.timeouts.frame,
                          run_timeout=entry.timeouts.run, retries=entry.retries)


DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's default port


def _any_board(name: str, raw: Any, path: Path) -> Board:
    """_board, and for a labgrid entry its place, tags and templates (read from the entry _board checked)."""
    board = _board(name, raw, path)
    entry = check(BOARD_FILES[board.transport], raw, path, ConfigError, within=("boards", name))
    return replace(board, labgrid=_labgrid_settings(entry, path)) if isinstance(entry, LabgridBoard) else board


def _labgrid_settings(entry: LabgridBoard, path: Path) -> LabgridSettings:
    s = entry.serial
    return LabgridSettings(
        coordinator=entry.coordinator or os.environ.get("LG_COORDINATOR", DEFAULT_COORDINATOR),
        place=entry.place or "", tags=entry.tags, wait=entry.wait,
        ssh=_ssh_settings(entry.ssh, path) if entry.ssh else None,
        serial=SerialSettings(port="", baudrate=115200, frame_timeout=s.timeouts.frame, run_timeout=s.timeouts.run,
                              retries=s.retries))


def _lab_spec(spec: str, section: dict[str, Any] | None, path: Path) -> Board:
    """`lg:place=NAME` or `lg:tags=K=V,K[@HOST:PORT]`: a labgrid board from boards.yaml's `labgrid:` defaults.
    A tag target=T also sets the board's target (else the defaults' target)."""
    body, _, coordinator = spec[len("lg:"):].partition("@")
    what, _, value = body.partition("=")
    if what not in ("place", "tags") or not value:
        raise ConfigError(f"board {spec!r}: write lg:place=NAME or lg:tags=KEY=VALUE,KEY[@HOST:PORT]")
    raw = {**(section or {}), "transport": "labgrid"}
    if what == "place":
        raw["place"] = value
    else:
        raw["tags"] = value.split(",")
        targets = [t.split("=", 1)[1] for t in raw["tags"] if t.startswith("target=")]
        if targets:
            raw["target"] = targets[0]
    if coordinator:
        raw["coordinator"] = coordinator
    if "target" not in raw:
        raise ConfigError(f"board {spec!r}: no target: add a tag target=T or give labgrid.target in {path}")
    return _any_board("lg", raw, path)


_sections: dict[Path, dict[str, Any] | None] = {}  # each boards file's `labgrid:` defaults, as _load read them


def _load(path: Path) -> tuple[dict[str, Board], str, dict[str, list[str]]]:
    """Boards, the default board's name and the groups of one boards file."""
    f = check(BoardsFile, _load_yaml(path), path, ConfigError)
    boards = {name: _any_board(name, raw, path) for name, raw in f.boards.items()}
    _sections[path] = f.labgrid
    default = f.default_board or next(iter(boards))
    if default not in boards:
        raise ConfigError(f"{path}: default_board: {default!r} is not a board in the file")
    for group, members in f.groups.items():
        unknown = [m for m in members if m not in boards]
        if unknown:
            raise ConfigError(f"{path}: groups.{group}: unknown board(s) {', '.join(unknown)}")
        if group in boards:
            raise ConfigError(f"{path}: groups.{group}: a board has this name too")
    return boards, default, f.groups


def load_boards(path: Path | None = None) -> tuple[dict[str, Board], str]:
    """All boards and the default board's name."""
    boards, default, _groups = _load(path or boards_file())
    return boards, default


def load_groups(path: Path | None = None) -> dict[str, list[str]]:
    """The groups of boards.yaml: group name -> its boards' names."""
    return _load(path or boards_file())[2]


def resolve(name: str | None, path: Path | None = None) -> list[Board]:
    """A board name, or a group name from boards.yaml's `groups:`, as a list of boards."""
    path = path or boards_file()
    boards, default, groups = _load(path)
    name = name or default
    if name.startswith("lg:"):
        return [_lab_spec(name, _sections[path], path)]
    if name in boards:
        return [boards[name]]
    if name in groups:
        return [boards[m] for m in groups[name]]
    raise ConfigError(f"{path}: unknown board or group {name!r} (boards: {', '.join(boards)}; "
                      f"groups: {', '.join(groups) or 'none'})")


def board(name: str | None, path: Path | None = None) -> Board:
    path = path or boards_file()
    boards, default = load_boards(path)
    name = name or default
    if name not in boards:
        raise ConfigError(f"{path}: unknown board {name!r} (boards: {', '.join(boards)})")
    return boards[name]
