"""Targets (targets/*.yaml), toolchains (toolchains/*.yaml) and boards (boards.yaml), validated.

Each mistake is a ConfigError naming the file, the entry and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .paths import ROOT

TARGETS_DIR = ROOT / "targets"
TOOLCHAINS_DIR = ROOT / "toolchains"
BOARDS_FILE = ROOT / "boards.yaml"
TRANSPORTS = ("local",)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Toolchain:
    name: str
    cc: str
    debian_packages: tuple[str, ...]


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


@dataclass(frozen=True)
class Board:
    name: str
    target: Target
    transport: str
    description: str


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
    return Toolchain(name, _field(raw, path, name, "cc", str), _field(raw, path, name, "debian_packages", tuple, ()))


def load_target(name: str) -> Target:
    path = TARGETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown target {name!r}: no {path} (targets: {', '.join(target_names())})")
    raw = _load_yaml(path)
    toolchain = _field(raw, path, name, "toolchain", str)
    if not (TOOLCHAINS_DIR / f"{toolchain}.yaml").is_file():
        raise ConfigError(f"{path}: {name}: toolchain {toolchain!r} does not exist in {TOOLCHAINS_DIR}")
    return Target(
        name=name,
        description=_field(raw, path, name, "description", str, ""),
        arch=_field(raw, path, name, "arch", str),
        os=_field(raw, path, name, "os", str),
        toolchain=load_toolchain(toolchain),
        simd=_field(raw, path, name, "simd", str),
        cflags=_field(raw, path, name, "cflags", tuple, ()),
        static=_field(raw, path, name, "static", bool, False),
    )


def load_boards(path: Path = BOARDS_FILE) -> tuple[dict[str, Board], str]:
    """All boards and the default board's name."""
    raw = _load_yaml(path)
    boards_raw = raw.get("boards")
    if not isinstance(boards_raw, dict) or not boards_raw:
        raise ConfigError(f"{path}: 'boards' must be a mapping of board name -> entry")
    boards = {}
    for name, entry in boards_raw.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: board '{name}': entry must be a mapping, got {entry!r}")
        unknown = set(entry) - {"target", "transport", "description"}
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
        boards[name] = Board(name, target, transport, _field(entry, path, f"board '{name}'", "description", str, ""))
    default = raw.get("default_board", next(iter(boards)))
    if default not in boards:
        raise ConfigError(f"{path}: default_board {default!r} is not a board in the file")
    return boards, default


def board(name: str | None, path: Path = BOARDS_FILE) -> Board:
    boards, default = load_boards(path)
    name = name or default
    if name not in boards:
        raise ConfigError(f"{path}: unknown board {name!r} (boards: {', '.join(boards)})")
    return boards[name]
