"""The VM's instruction set and status codes, read from vm/include/*.def.

Those .def files are the single source of truth shared with the C VM; nothing
here repeats a number from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from .paths import VM_DIR

_OP_LINE = re.compile(
    r'^OP\(\s*(\w+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(\w+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*"([^"]*)"\s*\)'
)
_ST_LINE = re.compile(r'^ST\(\s*(\w+)\s*,\s*(\d+)\s*,\s*"([^"]*)"\s*\)')


@dataclass(frozen=True)
class OpInfo:
    name: str
    code: int
    format: str
    pops: int
    pushes: int
    meaning: str


@cache
def opcodes() -> dict[str, OpInfo]:
    """Opcode name -> OpInfo, in table order."""
    table: dict[str, OpInfo] = {}
    for line in (VM_DIR / "include" / "lnn_opcodes.def").read_text().splitlines():
        match = _OP_LINE.match(line.strip())
        if match:
            name, code, fmt, pops, pushes, meaning = match.groups()
            table[name] = OpInfo(name, int(code, 0), fmt, int(pops), int(pushes), meaning)
    if not table:
        raise RuntimeError("no OP(...) lines found in lnn_opcodes.def")
    return table


@cache
def opcode_by_code() -> dict[int, OpInfo]:
    return {info.code: info for info in opcodes().values()}


@cache
def statuses() -> dict[int, tuple[str, str]]:
    """Status code -> (name, fixed message)."""
    table: dict[int, tuple[str, str]] = {}
    for line in (VM_DIR / "include" / "lnn_status.def").read_text().splitlines():
        match = _ST_LINE.match(line.strip())
        if match:
            name, code, message = match.groups()
            table[int(code)] = (name, message)
    return table


def status_name(code: int) -> str:
    return statuses().get(code, (f"E_UNKNOWN_{code}", ""))[0]


def status_code(name: str) -> int:
    """The code of a status named in lnn_status.def, e.g. E_BATCH."""
    return next(code for code, (n, _) in statuses().items() if n == name)


def encode(op: str, a: int = 0, b: int = 0) -> int:
    """One 32-bit instruction word: opcode | A << 8 | B << 16."""
    return opcodes()[op].code | (a & 0xFF) << 8 | (b & 0xFFFF) << 16


def decode(word: int) -> tuple[int, int, int]:
    """(opcode, A, B) of an instruction word."""
    return word & 0xFF, (word >> 8) & 0xFF, word >> 16


_DEFINE = re.compile(r"^#define\s+LNN_(\w+)\s+\(?(\d+)u?(?:\s*<<\s*(\d+))?\)?")
_ENUM = re.compile(r"\bLNN_(\w+)\s*=\s*(\d+)")


@cache
def format_constants() -> dict[str, int]:
    """Numeric constants of vm/include/lnn_format.h (limits, regions, section kinds...)."""
    values: dict[str, int] = {}
    for line in (VM_DIR / "include" / "lnn_format.h").read_text().splitlines():
        match = _DEFINE.match(line.strip())
        if match:
            name, number, shift = match.groups()
            values[name] = int(number) << int(shift or 0)
            continue
        for name, number in _ENUM.findall(line):
            values[name] = int(number)
    return values


def const(name: str) -> int:
    """One constant of lnn_format.h by its name without the LNN_ prefix."""
    return format_constants()[name]
