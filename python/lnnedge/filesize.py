"""Where the bytes of an .lnnb go: weights, the other constants, the tables, the metadata.

quantize-check shows it for the float and the int8 file side by side, so a size ratio can be read
part by part: int8 shrinks the weight matrices, nothing else.
"""

from __future__ import annotations

from . import lnnb
from .isa import const

PARTS = (
    ("int8 matrices", "weights stored as int8"),
    ("float16 matrices", "weights stored as float16"),
    ("float32 matrices", "weights stored as float32"),
    ("vectors", "biases, scales, time constants, normalisation"),
    ("other constants", "element-wise programs, per-step tables, alignment"),
    ("tensor table", f"{const('TENSOR_ENTRY_SIZE')} bytes per tensor"),
    ("code", "instruction words"),
    ("names", "tensor names (the compiler writes them to the .debug.json)"),
    ("metadata", "JSON: what the model needs to run"),
    ("test set", "the bundled smoke test"),
    ("header", "header, section table, section alignment"),
)


def breakdown(data: bytes) -> dict[str, int]:
    """Bytes of `data` per part of PARTS (they sum to the file size)."""
    program = lnnb.read(data)
    sections = lnnb.section_offsets(data)
    consts = [t for t in program.tensors if t.region == const("REG_CONST") and not t.stride]
    floats = (const("DT_F32"), const("DT_F16"))
    parts = {
        "int8 matrices": sum(t.nbytes for t in consts if t.dtype == const("DT_I8")),
        "float16 matrices": sum(t.nbytes for t in consts if t.dtype == const("DT_F16") and len(t.dims) >= 2),
        "float32 matrices": sum(t.nbytes for t in consts if t.dtype == const("DT_F32") and len(t.dims) >= 2),
        "vectors": sum(t.nbytes for t in consts if t.dtype in floats and len(t.dims) < 2),
    }
    parts["other constants"] = len(program.consts) - sum(parts.values())
    for part, kind in (("tensor table", "SEC_TENSORS"), ("code", "SEC_CODE"), ("names", "SEC_NAMES"),
                       ("metadata", "SEC_META"), ("test set", "SEC_TESTS")):
        parts[part] = sections.get(const(kind), (0, 0))[1]
    parts["header"] = len(data) - sum(parts.values())
    return parts
