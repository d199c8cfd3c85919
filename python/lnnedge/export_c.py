"""A compiled model as C source for an app that embeds the VM (`invoke export --format c`).

TFLite Micro users turn a model into a C array with `xxd -i`; this writes the same thing with what the app
also needs to know at compile time: a header with the byte size, the arena size (lnn_arena_size for the
given batch) and the inputs' / outputs' floats per row as macros, and a source file with the bytes as a
64-byte aligned const array (lnn_init wants 4-byte alignment; 64 keeps the constants on cache lines, as the
arena). The file is checked (lnnb.read: magic, version, size, CRC) before anything is written.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from . import isa, lnnb
from .errors import LnnedgeError

ALIGN = 64
BYTES_PER_LINE = 12


class ExportError(LnnedgeError):
    """The model cannot be exported as asked."""


def c_identifier(text: str) -> str:
    """`text` made a C identifier: runs of other characters become one underscore, a leading digit gets one."""
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    if not ident:
        raise ExportError(f"cannot make a C identifier of {text!r}: give --name")
    return f"_{ident}" if ident[0].isdigit() else ident


def _row_elems(t: lnnb.TensorEntry) -> int:
    """Floats per batch row of an input / output (the whole tensor when it is not batched)."""
    return math.prod(t.dims[1:]) if t.batched else math.prod(t.dims)


def export_c(model: Path, out_dir: Path, name: str | None = None, batch: int = 1) -> tuple[Path, Path]:
    """Writes <name>.h and <name>.c into out_dir (the name defaults to the model file's stem); returns both."""
    if batch < 1:
        raise ExportError(f"--batch must be >= 1, got {batch}")
    try:
        data = model.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read the model {model}: {exc.strerror}") from None
    program = lnnb.read(data)
    ident = c_identifier(name if name is not None else model.stem)
    if name is not None and ident != name:
        raise ExportError(f"--name {name!r} is not a C identifier (say {ident!r})")
    macro = ident.upper()
    inputs = sorted((t.offset, t) for t in program.tensors if t.region == isa.const("REG_INPUT"))
    outputs = sorted((t.offset, t) for t in program.tensors if t.region == isa.const("REG_OUTPUT"))
    arena = program.arena_size(batch)

    guard = f"LNN_MODEL_{macro}_H"
    sizes = [f"#define {macro}_INPUT{i}_ELEMS {_row_elems(t)}u" for i, (_, t) in enumerate(inputs)]
    sizes += [f"#define {macro}_OUTPUT{i}_ELEMS {_row_elems(t)}u" for i, (_, t) in enumerate(outputs)]
    header = "\n".join([
        f"/* {ident}.h - the model {model.name} as a C array (lnnedge export --format c); do not edit. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"/* bytes of the model; the array is {ALIGN}-byte aligned */",
        f"#define {macro}_SIZE {len(data)}u",
        f"#define {macro}_ALIGN {ALIGN}u",
        f"/* arena bytes lnn_init needs to run {macro}_BATCH rows (lnn_arena_size); give it {macro}_ALIGN-aligned */",
        f"#define {macro}_BATCH {batch}u",
        f"#define {macro}_ARENA_SIZE {arena}u",
        "/* inputs and outputs in order: floats per batch row (the whole tensor when not batched) */",
        f"#define {macro}_NUM_INPUTS {len(inputs)}u",
        f"#define {macro}_NUM_OUTPUTS {len(outputs)}u",
        *sizes,
        "",
        f"extern const uint8_t {ident}[{macro}_SIZE];",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        f"#endif /* {guard} */",
        "",
    ])
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + BYTES_PER_LINE]) for i in range(0, len(data), BYTES_PER_LINE)]
    source = "\n".join([
        f"/* {ident}.c - the model {model.name} as a C array (lnnedge export --format c); do not edit. */",
        f'#include "{ident}.h"',
        "",
        f"_Alignas({ALIGN}) const uint8_t {ident}[{macro}_SIZE] = {{",
        *(f"    {row}," for row in rows),
        "};",
        "",
    ])
    out_dir.mkdir(parents=True, exist_ok=True)
    h, c = out_dir / f"{ident}.h", out_dir / f"{ident}.c"
    h.write_text(header)
    c.write_text(source)
    return h, c
