"""Where the bytes of a firmware image go: flash and RAM by component, read from the linker's map file.

`invoke size` builds the firmware of a target (optionally a selective build for a model's ops) and shows this
breakdown against the board's flash and RAM, like `pio run`'s memory summary. Nothing here is estimated: every
byte is an input section the GNU linker placed, attributed to the object file it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import lnnb
from .errors import LnnedgeError

# Output sections of the firmware's linker scripts and the memory they occupy. .data is in both: its initial
# image is in flash, the variables in RAM.
FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.exidx", ".data", ".model")
RAM_SECTIONS = (".data", ".bss", ".noinit", ".stack")

# Components, in the order they are shown. "vm" is the VM an application links (loader, verifier,
# interpreter, kernels: no protocol, no startup), the figure compared with other runtimes' cores.
COMPONENTS = ("core", "verifier", "kernels", "protocol", "startup", "libc", "model", "stack")
VM_COMPONENTS = ("core", "verifier", "kernels")

_VM_OBJECT = re.compile(r"vm_(?P<src>\w+)\.o$")
_LTO = "?lto"  # parse_map: an input section of a link-time optimised object, split by its symbols
_ARCHIVE = re.compile(r"lib\w+\.a\(")


class MapFileError(LnnedgeError):
    """A map file that is missing or not the GNU linker's."""


def component_of(obj: str, section: str) -> str:
    """The component of an input section: its object file (or archive member) and its output section."""
    if section == ".stack":
        return "stack"
    if section == ".model" or Path(obj).name.startswith(("model", "core_model")):
        return "model"
    if _ARCHIVE.search(obj) or obj.endswith(".a") or Path(obj).name.startswith("libc_"):
        return "libc"  # the C library, or the firmware's own memcpy, memset, memcmp (libc_mem.c)
    m = _VM_OBJECT.search(Path(obj).name)
    if m:
        src = m["src"]
        if src == "verify":
            return "verifier"
        if src.startswith("kernels_"):  # the kernel sets (kernels.c, which picks one, is core)
            return "kernels"
        return "core"
    name = Path(obj).name
    if name.startswith(("device", "cobs", "proto")):
        return "protocol"
    return "startup"  # startup code, board drivers, main, linker-generated fill


_LTO_OBJECT = re.compile(r"\.ltrans\d*\.ltrans\.o$")


def component_of_source(path: str, section: str) -> str:
    """The component of a symbol defined in source file `path` (DWARF, `nm -l`): as its object would have."""
    import os

    src = Path(os.path.normpath(path.rpartition(":")[0] if ":" in path else path))
    if src.parent.name == "src":  # vm/src: the VM's objects are vm_<name>.o
        return component_of(f"vm_{src.stem}.o", section)
    return component_of(f"{src.stem}.o", section)


_LINE_BLOCK = re.compile(r"^(\S.*?):(\[\+\+\])?$")  # objdump --dwarf=decodedline: a block's file
_CLONE = re.compile(r"(\.(lto_priv|constprop|isra|part|cold)(\.\d+)?|\.\d+)+$")


@dataclass
class Owners:
    """Which component each byte of an image comes from, for a link-time optimised image, whose code and data are
    one object of the link (the map names no source objects): code by the source file of each instruction (the
    DWARF line table, so that code inlined across files keeps its origin; an instruction of a header's inline
    function goes with the function it is in), literal pools and data by the symbol they are in."""

    lines: list[tuple[int, int, str]]  # (start, end, component) of the line table's ranges, sorted
    symbols: list[tuple[int, int, str]]  # (start, end, component) of the sized symbols, sorted

    def of(self, address: int) -> str | None:
        import bisect

        for table, reach in ((self.lines, 1), (self.symbols, 4)):  # line ranges do not overlap; symbols may alias
            i = bisect.bisect_right(table, (address, 1 << 62, "")) - 1
            for j in range(i, max(i - reach, -1), -1):
                if table[j][0] <= address < table[j][1]:
                    return table[j][2]
        return None


def symbol_components(elf: Path, objects: list[Path], nm: str = "arm-none-eabi-nm") -> Owners:
    """The Owners of `elf`'s bytes. A function's component is its source file's (`nm -l`); a variable, which LTO
    leaves without one, has the component of the object (compiled with -ffat-lto-objects, whose symbol tables
    list the static ones too) that defines its name, when all that do agree (GCC's clone and numbering suffixes
    aside)."""
    import subprocess

    def run(*args: str) -> list[str]:
        proc = subprocess.run(list(args), capture_output=True, text=True)
        if proc.returncode != 0:
            raise MapFileError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.splitlines()

    objdump = nm[: -len("nm")] + "objdump"
    by_name: dict[str, set[str]] = {}
    for obj in objects:  # objdump, not nm: nm would read the LTO symbol table, which has no static symbols
        for line in run(objdump, "-t", str(obj)):
            fields = line.split()
            if len(fields) >= 5 and fields[-4] in ("O", "F") and not fields[-3].startswith("*UND"):
                name = fields[-1]
                for key in {name, _CLONE.sub("", name)}:
                    by_name.setdefault(key, set()).add(component_of(obj.name, ""))
    symbols = []
    for line in run(nm, "-S", "-l", "--defined-only", str(elf)):
        fields = line.split(maxsplit=3)  # address, size, type, name[<TAB>file:line]
        if len(fields) != 4:
            continue
        name, _, where = fields[3].partition("\t")
        if where:
            comp = component_of_source(where, "")
        else:
            found = by_name.get(name) or by_name.get(_CLONE.sub("", name)) or set()
            if len(found) != 1:
                continue
            comp = next(iter(found))
        start = int(fields[0], 16)
        symbols.append((start, start + int(fields[1], 16), comp))
    symbols.sort()
    # the line table, in sequences of rows (file, line, address), each ended by a row whose line is "-"; a
    # block of rows is headed by its file's path. A sequence at address 0 is a function the link left out.
    in_symbols = Owners([], symbols)

    def owner(src: str, start: int) -> str:
        if src.endswith(".c"):
            return component_of_source(src, "")
        return in_symbols.of(start) or component_of_source(src, "")  # a header's inline function: where it is

    lines: list[tuple[int, int, str]] = []
    path, seq = "", []  # seq: the (address, file) rows of the sequence being read
    for line in run(objdump, "--dwarf=decodedline", str(elf)):
        head = _LINE_BLOCK.match(line)
        if head:
            path = head[1]
            continue
        fields = line.split()
        if len(fields) < 3 or not (fields[2].startswith("0x") or fields[2] == "0") or not path:
            continue
        seq.append((int(fields[2], 16), path))
        if fields[1] == "-":  # the end of the sequence
            if seq[0][0] != 0:
                lines += [(a, b, owner(src, a)) for (a, src), (b, _) in zip(seq, seq[1:]) if b > a]
            seq = []
    lines.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, comp in lines:
        if merged and merged[-1][1] >= start:
            if merged[-1][2] == comp or merged[-1][1] >= end:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
                continue
            start = merged[-1][1]
        merged.append((start, end, comp))
    return Owners(merged, symbols)


def _split_by_symbols(addr: int, size: int, owners: Owners, last: str) -> dict[str, int]:
    """The bytes of [addr, addr + size) by component (Owners.of); a byte nothing claims (alignment, merged
    strings) goes with the byte before it, the first with `last`."""
    out: dict[str, int] = {}
    comp = last
    for b in range(addr, addr + size):
        comp = owners.of(b) or comp
        out[comp] = out.get(comp, 0) + 1
    return out


@dataclass
class Footprint:
    """Bytes per (component, output section), from one map file."""

    sections: dict[str, dict[str, int]] = field(default_factory=dict)  # component -> section -> bytes

    def add(self, component: str, section: str, size: int) -> None:
        per = self.sections.setdefault(component, {})
        per[section] = per.get(section, 0) + size

    def flash(self, component: str) -> int:
        return sum(v for s, v in self.sections.get(component, {}).items() if s in FLASH_SECTIONS)

    def ram(self, component: str) -> int:
        return sum(v for s, v in self.sections.get(component, {}).items() if s in RAM_SECTIONS)

    def code(self, component: str) -> int:
        """.text + .rodata (with the vectors and unwind index): the code and constants of a component."""
        return sum(v for s, v in self.sections.get(component, {}).items()
                   if s in (".vectors", ".text", ".rodata", ".ARM.exidx"))

    @property
    def flash_total(self) -> int:
        return sum(self.flash(c) for c in self.sections)

    @property
    def ram_total(self) -> int:
        return sum(self.ram(c) for c in self.sections)

    @property
    def vm_code(self) -> int:
        return sum(self.code(c) for c in VM_COMPONENTS)


_OUTPUT = re.compile(r"^(?P<name>\.[\w.]+)\s+0x[0-9a-f]+\s+0x(?P<size>[0-9a-f]+)")
_INPUT_ONE = re.compile(r"^ (?P<sec>[.\w*]\S*)\s+0x(?P<addr>[0-9a-f]+)\s+0x(?P<size>[0-9a-f]+)\s+(?P<obj>\S.*)$")
_INPUT_NAME = re.compile(r"^ (?P<sec>[.\w]\S*)$")
_INPUT_REST = re.compile(r"^\s+0x(?P<addr>[0-9a-f]+)\s+0x(?P<size>[0-9a-f]+)\s+(?P<obj>\S.*)$")
_FILL = re.compile(r"^ \*fill\*\s+0x[0-9a-f]+\s+0x(?P<size>[0-9a-f]+)")


def parse_map(path: Path, owners: Owners | None = None) -> Footprint:
    """The bytes of every input section of the loaded output sections, by component. Alignment fill is
    counted with the section before it, the stack as the .stack section's size. Merged string sections
    overlap (the linker lists each at its size before merging): an entry counts up to the next one's address.
    The sections of a link-time optimised object are split by `owners` (symbol_components of the image)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise MapFileError(f"cannot read the map file {path}: {exc.strerror}") from None
    try:
        start = lines.index("Linker script and memory map")
    except ValueError:
        raise MapFileError(f"{path} is not a GNU ld map file (no 'Linker script and memory map')") from None
    fp = Footprint()
    entries: list[tuple[str, int, int, str | None]] = []  # (output section, address, size, component or fill)
    current: str | None = None  # the output section being read, None outside the loaded ones
    pending = False
    for line in lines[start + 1:]:
        out = _OUTPUT.match(line)
        if out or (line and not line[0].isspace()):
            name = out["name"] if out else line.split()[0]
            current = name if name in FLASH_SECTIONS or name in RAM_SECTIONS else None
            if current == ".stack" and out:
                fp.add("stack", ".stack", int(out["size"], 16))
                current = None  # its content is fill
            pending = False
            continue
        if current is None:
            continue
        fill = _FILL.match(line)
        if fill:
            entries.append((current, int(line.split()[1], 16), int(fill["size"], 16), None))
            continue
        one = _INPUT_ONE.match(line)
        rest = _INPUT_REST.match(line) if pending else None
        if one and not one["obj"].startswith("0x"):
            addr, size, obj = int(one["addr"], 16), int(one["size"], 16), one["obj"]
        elif rest and "(size before relaxing)" not in rest["obj"]:
            addr, size, obj = int(rest["addr"], 16), int(rest["size"], 16), rest["obj"]
        else:
            pending = bool(_INPUT_NAME.match(line)) or pending and "(size before relaxing)" in line
            continue
        pending = False
        if size:
            lto = _LTO_OBJECT.search(obj.strip())
            if lto and owners is None:
                raise MapFileError(f"{path} places link-time optimised code: give the image's symbols")
            entries.append((current, addr, size, _LTO if lto else component_of(obj.strip(), current)))
    last = "startup"
    for i, (section, addr, size, comp) in enumerate(entries):
        following = [a for s, a, _, _ in entries[i + 1:i + 8] if s == section and a >= addr]
        if following:
            size = min(size, following[0] - addr)
        if comp == _LTO:
            for part, n in _split_by_symbols(addr, size, owners or Owners([], []), last).items():
                fp.add(part, section, n)
                last = part
            continue
        last = comp or last
        if size:
            fp.add(last, section, size)
    if not fp.sections:
        raise MapFileError(f"{path} places no input sections in {', '.join(FLASH_SECTIONS)}")
    return fp


# ---- building what is measured ------------------------------------------------------------------------------

class SizeError(LnnedgeError):
    """A build for measuring failed, or the image does not fit its board."""


def _sources_mk(vm_dir: Path) -> dict[str, list[str]]:
    """The variables of vm/sources.mk (one `NAME := words` per line)."""
    out: dict[str, list[str]] = {}
    for line in (vm_dir / "sources.mk").read_text().splitlines():
        if ":=" in line and not line.lstrip().startswith("#"):
            name, _, words = line.partition(":=")
            out[name.strip()] = words.split()
    return out


def _run(args: list[str], what: str) -> None:
    import subprocess

    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SizeError(f"{what} failed:\n{proc.stdout}{proc.stderr}")


def selective_flags(ops_header: Path | None) -> list[str]:
    """The compiler flags of a device build: no names, and the op selection when given."""
    flags = ["-DLNN_NO_NAMES=1"]
    if ops_header is not None:
        flags.append(f'-DLNN_OPS_HEADER="{ops_header}"')
    return flags


def build_core(cc: list[str], cpu_flags: list[str], model: Path, ops_header: Path, out: Path,
               opt: str = "-Os", scalar_only: bool = False, lto: bool = False) -> Path:
    """Links vm/firmware/core_app.c (lnn_init + lnn_run on `model` in a const array) with the VM built for the
    model's ops, link-time optimised with `lto` as the firmware of a target with LTO=1 is; returns the map file.
    The core is what an application pays for: no protocol, no startup."""
    from .paths import ROOT

    vm = ROOT / "vm"
    src = _sources_mk(vm)
    program = lnnb.read(model.read_bytes())
    data = model.read_bytes()
    out.mkdir(parents=True, exist_ok=True)
    blob = out / "core_model.c"
    body = ",".join(str(b) for b in data)
    blob.write_text("/* generated by lnnedge.footprint: the model, in flash */\n"
                    f"__attribute__((aligned(64))) const unsigned char lnn_core_model[] = {{{body}}};\n"
                    f"const unsigned int lnn_core_model_len = {len(data)}u;\n")
    arena = program.arena_fixed + program.arena_row + program.state_row + 128
    sizes = [t for t in program.tensors]
    n_in = max((int(_prod(t.dims)) for t in sizes if t.region == _region("INPUT")), default=1)
    n_out = max((int(_prod(t.dims)) for t in sizes if t.region == _region("OUTPUT")), default=1)
    defs = [f"-DLNN_CORE_ARENA={arena}", f"-DLNN_CORE_IN={max(n_in, 1)}", f"-DLNN_CORE_OUT={max(n_out, 1)}"]
    # the firmware's VM (vm/firmware/Makefile VM_SRCS: ISA auto on a non-x86 compiler, the scalar set and the
    # sets the CPU has, cm4 on a Cortex-M4F), or the portable kernels alone, the figure comparable across cores
    isa = "scalar" if scalar_only else "auto_other"
    isa_defs = [f"-D{d}" for d in src.get(f"LNN_ISA_DEFS_{isa}", [])]
    codegen = ["-Wall", "-Wextra", "-Werror", opt, "-ffp-contract=off", "-ffunction-sections", "-fdata-sections",
               "-fno-common", "-g",  # as vm/firmware/Makefile's LTO_FLAGS
               *(["-flto", "-flto-partition=one", "-ffat-lto-objects", "-fno-ipa-icf"] if lto else [])]
    flags = [*cpu_flags, "-std=c11", *codegen, f"-I{vm / 'include'}", f"-I{vm / 'src'}", *isa_defs,
             *selective_flags(ops_header), *defs]
    vm_srcs = [*src["LNN_LIB_SRCS"], *src.get(f"LNN_ISA_SRCS_{isa}", [])]
    files = [vm / "src" / f for f in vm_srcs] + [vm / "firmware" / "core_app.c", blob]
    objs = []
    for f in files:
        obj = out / (("vm_" if f.parent.name == "src" else "") + f.stem + ".o")
        _run([*cc, *flags, "-c", "-o", str(obj), str(f)], f"compiling {f.name}")
        objs.append(str(obj))
    elf, mapfile = out / "core.elf", out / "core.map"
    _run([*cc, *cpu_flags, *(codegen if lto else []), "-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections",
          "-Wl,--entry=lnn_core_main",
          f"-Wl,-Map={mapfile}", "-o", str(elf), *objs, "-lm", "-lc", "-lgcc"], "linking the core application")
    return mapfile


def arena_need(data: bytes, batch: int = 1) -> int:
    """Arena bytes an .lnnb needs for `batch` rows (lnn_format.h, "Arena"; lnn_arena_size in the VM): the fixed
    part, 64-aligned, the batched rows, then the state rows (if any) 64-aligned."""
    from .isa import const

    program = lnnb.read(data)
    align = const("ARENA_ALIGN")

    def up(v: int) -> int:
        return (v + align - 1) // align * align

    base = up(program.arena_fixed) + program.arena_row * batch
    return up(base) + program.state_row * batch if program.state_row else base


def _prod(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= max(d, 1)  # the batch dim (0 in the file) counts as one row
    return n


def _region(name: str) -> int:
    from .isa import const

    return const(f"REG_{name}")


# ---- invoke size ------------------------------------------------------------------------------------------------

def _limits(target_name: str) -> dict[str, int]:
    """Flash and RAM of the target's part (targets/<target>.yaml `memory:`), else of the smallest board of the
    target in boards.yaml (`memory: {ram, flash}`), where recorded."""
    from . import config

    target = config.load_target(target_name)
    regions = getattr(target, "memory", None) or {}
    limits = {k: r.size for k, r in regions.items() if k in ("flash", "ram")}
    if limits:
        return limits
    boards, _ = config.load_boards()
    for board in boards.values():
        if board.target.name == target_name:
            for k in ("flash", "ram"):
                if k in board.memory:
                    limits[k] = min(limits.get(k, board.memory[k]), board.memory[k])
    return limits


def _row(fp: Footprint) -> dict:
    return {"components": {c: {"flash": fp.flash(c), "code": fp.code(c), "ram": fp.ram(c)}
                           for c in COMPONENTS if c in fp.sections},
            "flash": fp.flash_total, "ram": fp.ram_total, "vm_code": fp.vm_code}


def measure(target_name: str, model: Path | None, opt: str = "-Os") -> dict:
    """Builds and measures the firmware of `target_name` (a selective build for `model` when given) and the core
    application of `model`; writes build/size/<target>[-<model>].json and returns the same dict. Raises SizeError
    when the firmware is over its board's flash or RAM."""
    import json
    import shlex

    from . import config
    from .artifacts import atomic_write_text
    from .build import firmware_make_args
    from .opselect import write_header
    from .paths import BUILD_DIR

    target = config.load_target(target_name)
    if target.firmware is None:
        raise SizeError(f"target {target_name} has no firmware (`invoke size` measures bare-metal images)")
    name = target_name + (f"-{model.parent.name}" if model else "")
    out = BUILD_DIR / "size" / name
    out.mkdir(parents=True, exist_ok=True)
    ops = write_header([model], out / "ops.h") if model else None
    fw = target.firmware
    cc = shlex.split(target.toolchain.cc)
    cross = target.toolchain.cc[: -len("gcc")] if target.toolchain.cc.endswith("gcc") else target.toolchain.cc
    # the target's build (its CPU flags, memory map, buffers; the model resident and the selective build where
    # given), at `opt`; the arena the model needs for one row: RAM sized by the model, not the board's maximum
    args = [*firmware_make_args(target, model, out / "firmware"), f"OPT={opt}",
            *([f"ARENA_SIZE={arena_need(model.read_bytes())}"] if model else [])]
    _run(args, f"building the {target_name} firmware")
    maps = sorted((out / "firmware").glob("*.map"))
    if not maps:
        raise SizeError(f"the {target_name} firmware build wrote no map file in {out / 'firmware'}")
    nm = cross + "nm"

    def breakdown(mapfile: Path) -> dict:
        objects = sorted(mapfile.parent.glob("*.o")) + sorted((mapfile.parent / "obj").glob("*.o"))
        return _row(parse_map(mapfile, symbol_components(mapfile.with_suffix(".elf"), objects, nm)))

    lto = str(fw.variables.get("LTO", "0")) == "1"
    report = {"target": target_name, "model": model.parent.name if model else None, "opt": opt, "lto": lto,
              "limits": _limits(target_name), "firmware": breakdown(maps[0])}
    if model:
        report["core"] = breakdown(build_core(cc, list(target.cflags), model, ops, out / "core", opt, lto=lto))
        report["core_scalar"] = breakdown(build_core(cc, list(target.cflags), model, ops, out / "core-scalar", opt,
                                                     scalar_only=True, lto=lto))
    atomic_write_text(BUILD_DIR / "size" / f"{name}.json", json.dumps(report, indent=2) + "\n")
    over = [f"{k} {report['firmware'][k]} B > {v} B" for k, v in report["limits"].items()
            if report["firmware"][k] > v]
    if over:
        raise SizeError(f"the {target_name} firmware does not fit its board: {', '.join(over)}")
    return report


def table(report: dict) -> str:
    """The breakdown as text: one line per component, flash / code / RAM, then the totals against the limits."""
    lines = []
    for part in ("firmware", "core", "core_scalar"):
        if part not in report:
            continue
        row = report[part]
        lines.append(f"{part} ({report['target']}, {report['opt']}{', LTO' if report.get('lto') else ''}"
                     f"{', ops of ' + report['model'] if report['model'] else ''}):")
        lines.append(f"  {'component':<10} {'flash':>9} {'.text+.rodata':>14} {'RAM':>10}")
        for c, v in row["components"].items():
            lines.append(f"  {c:<10} {v['flash']:>9} {v['code']:>14} {v['ram']:>10}")
        lines.append(f"  {'total':<10} {row['flash']:>9} {'':>14} {row['ram']:>10}")
        lines.append(f"  VM (core + verifier + kernels): {row['vm_code']} B of .text + .rodata")
    for k, v in report["limits"].items():
        used = report["firmware"][k]
        lines.append(f"{k.upper()}: {used / v:6.1%} (used {used} bytes from {v} bytes)")
    return "\n".join(lines)


# ---- the README's size table ------------------------------------------------------------------------------------

SIZE_BEGIN, SIZE_END = "<!-- size:begin -->", "<!-- size:end -->"

# Other runtimes' own published figures, quoted as they give them (not measured here).
PUBLISHED = (
    ("TensorFlow Lite Micro", "16 KB core on a Cortex-M3; 22 KB with the ops of the keyword-spotting model",
     "TFLM paper (David et al., MLSys 2021) and tensorflow/tflite-micro docs"),
    ("ExecuTorch", "about 50 KB runtime without kernels", "pytorch.org/executorch overview"),
)


# Issue 18's limits (bytes), checked by tests/test_size_limits.py and shown under the README's table: the VM core
# with ltc-sine's kernels on a Cortex-M4 at -Os (.text + .rodata), the whole stm32f405 firmware without its model
# (flash), and all the RAM of the nrf51 firmware for ltc-sine.
LIMITS = {"core": 12 * 1024, "firmware": 20 * 1024, "ram": 8 * 1024}


def limits_lines(build_dir: Path) -> list[str]:
    """Each limit beside its measurement in build/size (where it has been measured)."""
    import json

    def load(name: str) -> dict | None:
        path = build_dir / "size" / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    lines = []
    checks = (("stm32f405-ltc-sine", "core", "the VM core with ltc-sine's kernels (Cortex-M4, scalar kernels)",
               lambda r: r["core_scalar"]["vm_code"]),
              ("stm32f405-ltc-sine", "core", "the same with the firmware's kernel set (cm4: its products and LTC "
               "step beside the scalar element-wise programs)", lambda r: r["core"]["vm_code"]),
              ("stm32f405-ltc-sine", "firmware", "the stm32f405 firmware without its model",
               lambda r: r["firmware"]["flash"] - r["firmware"]["components"].get("model", {}).get("flash", 0)),
              ("nrf51-ltc-sine", "ram", "all the RAM of the nrf51 (qemu-m0) firmware for ltc-sine (arena, state, VM "
               "state, protocol buffers, stack)",
               lambda r: r["firmware"]["ram"]))
    for name, key, what, value in checks:
        report = load(name)
        if report is None:
            continue
        got = value(report)
        verdict = "within it" if got <= LIMITS[key] else "OVER it"
        lines.append(f"- {what}: {got:,} B against {LIMITS[key]:,} B, {verdict}")
    return lines


def readme_table(build_dir: Path) -> str:
    """A row per build/size/*.json with a model (`invoke size --target T --model M`): the VM core (loader,
    verifier, interpreter, the model's kernels: core_app.c's link, .text + .rodata) with the portable kernels and
    with the firmware's kernel sets, and the whole firmware's flash and RAM; then the other runtimes' published
    figures."""
    import json

    lines = ["| target | model | VM core, scalar kernels | VM core, the firmware's kernel sets | "
             "firmware flash (of it the model) | firmware RAM | board flash / RAM |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for path in sorted((build_dir / "size").glob("*.json")):
        r = json.loads(path.read_text())
        if not r.get("model") or "core" not in r:
            continue
        fw = r["firmware"]
        model = fw["components"].get("model", {}).get("flash", 0)
        limits = r.get("limits", {})
        board = " / ".join(f"{limits[k] // 1024} KB" for k in ("flash", "ram") if k in limits) or "-"
        scalar = f"{r['core_scalar']['vm_code']:,} B" if "core_scalar" in r else "-"
        how = f"{r['opt']}, LTO" if r.get("lto") else r["opt"]
        lines.append(f"| {r['target']} ({how}) | {r['model']} | {scalar} | {r['core']['vm_code']:,} B | "
                     f"{fw['flash']:,} B ({model:,} B) | {fw['ram']:,} B | {board} |")
    limits = limits_lines(build_dir)
    if limits:
        lines += ["", "Issue 18's limits (tests/test_size_limits.py checks them):", "", *limits]
    lines += ["", "Published by their projects (not measured here):", ""]
    lines += [f"- {name}: {figure} ({source})" for name, figure, source in PUBLISHED]
    return "\n".join(lines)
