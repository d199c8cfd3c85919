"""Reading and writing the .lnnb container (layout: vm/include/lnn_format.h).

This module knows bytes, not models: a `Program` is the tensor table, the
constants blob, the code words and optional names/metadata. The compiler
builds one, the reference VM and the tests read one back.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import LnnedgeError
from .isa import const, decode, opcodes

_HEADER = struct.Struct("<4sHHIIIIIIHHI24x")
_SECTION = struct.Struct("<IIII")
_TENSOR = struct.Struct("<BBBB4IIII")


class FormatError(LnnedgeError, ValueError):
    """A file that is not a well-formed .lnnb container."""


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table; dims hold 1 at dim 0 for batched tensors."""

    dims: tuple[int, ...]
    region: int
    offset: int
    batched: bool = False
    stride: int = 0
    dtype: int = 1
    widened: int = 0  # DT_F16: arena fixed-part offset of its float32 copy

    @property
    def elems(self) -> int:
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int:
        """Bytes of its values in the file (a DT_F16 constant's float32 copy in the arena is twice that)."""
        return {const("DT_I8"): 1, const("DT_F16"): 2}.get(self.dtype, 4) * self.elems


@dataclass(frozen=True)
class TestSet:
    """The bundled test set (section TESTS): one batch row per case, every input / output flattened in order."""

    inputs: np.ndarray  # float32 (count, in_floats)
    outputs: np.ndarray  # float32 (count, out_floats)
    max_abs_err: float

    _HEAD = struct.Struct("<4sIIIf")

    def pack(self) -> bytes:
        count, n_in = self.inputs.shape
        head = self._HEAD.pack(b"LNNT", count, n_in, self.outputs.shape[1], self.max_abs_err)
        values = np.concatenate([self.inputs.ravel(), self.outputs.ravel()]).astype("<f4")
        return head + values.tobytes()

    @classmethod
    def unpack(cls, blob: bytes) -> TestSet:
        if len(blob) < cls._HEAD.size:
            raise FormatError("test set section shorter than its header")
        magic, count, n_in, n_out, tol = cls._HEAD.unpack_from(blob)
        if magic != b"LNNT" or count < 1 or len(blob) != cls._HEAD.size + 4 * count * (n_in + n_out):
            raise FormatError("malformed test set section")
        values = np.frombuffer(blob, "<f4", offset=cls._HEAD.size).astype(np.float32)
        return cls(values[:count * n_in].reshape(count, n_in), values[count * n_in:].reshape(count, n_out), tol)


@dataclass(frozen=True)
class Program:
    tensors: tuple[TensorEntry, ...]
    consts: bytes
    code: tuple[int, ...]
    arena_fixed: int
    arena_row: int
    num_inputs: int
    num_outputs: int
    names: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)
    tests: TestSet | None = None
    state_row: int = 0  # bytes of persistent state per batch row (STATE tensors)

    def state_base(self, batch: int) -> int:
        return align(align(self.arena_fixed, const("ARENA_ALIGN")) + self.arena_row * batch, const("ARENA_ALIGN"))

    def arena_size(self, batch: int) -> int:
        if not self.state_row:
            return align(self.arena_fixed, const("ARENA_ALIGN")) + self.arena_row * batch
        return self.state_base(batch) + self.state_row * batch


def align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def _strided_rows(program: Program) -> dict[int, int]:
    """Tensor -> the most rows of it a loop reads (its PUSHes' innermost trip counts), for the strided ones."""
    push, end = (opcodes()[name].code for name in ("PUSH", "END"))
    loops = (opcodes()["LOOP"].code, opcodes()["LOOPW"].code)
    rows: dict[int, int] = {}
    counts: list[int] = []
    for word in program.code:
        op, _a, b = decode(word)
        if op in loops:
            counts.append(b)
        elif op == end and counts:
            counts.pop()
        elif op == push and counts and b < len(program.tensors) and program.tensors[b].stride:
            rows[b] = max(rows.get(b, 0), counts[-1])
    return rows


def check_finite(program: Program) -> None:
    """FormatError for a NaN or infinity the VM would refuse (E_NONFINITE, vm/VERIFIER.md): in a float32 or float16
    constant (a loop-strided table: the rows its loops read) or in the test set."""
    rows = _strided_rows(program)
    for i, t in enumerate(program.tensors):
        if t.region != const("REG_CONST") or t.dtype not in (const("DT_F32"), const("DT_F16")):
            continue
        dtype = "<f2" if t.dtype == const("DT_F16") else "<f4"
        for r in range(rows.get(i, 0) if t.stride else 1):
            start = t.offset + t.stride * r
            if start + t.nbytes > len(program.consts):  # out of bounds: the VM says so (E_TENSOR_BOUNDS, E_STRIDE)
                break
            values = np.frombuffer(program.consts, dtype=dtype, count=t.elems, offset=start)
            if not np.isfinite(values).all():
                raise FormatError(f"tensor {i}: a NaN or infinite constant (row {r}), which the VM refuses")
    if program.tests is not None:
        for what, values in (("inputs", program.tests.inputs), ("expected outputs", program.tests.outputs)):
            if not np.isfinite(values).all():
                raise FormatError(f"test set: a NaN or infinite value in the {what}, which the VM refuses")


def write(program: Program) -> bytes:
    """Serialise a Program: header, section table, sections, CRC-32. Refuses non-finite values (check_finite)."""
    check_finite(program)
    tensors = b"".join(
        _TENSOR.pack(
            t.dtype,
            len(t.dims),
            t.region,
            const("TF_BATCH") if t.batched else 0,
            *(tuple(t.dims) + (0,) * (4 - len(t.dims))),
            t.offset,
            t.stride,
            t.widened,
        )
        for t in program.tensors
    )
    code = struct.pack(f"<{len(program.code)}I", *program.code)
    sections = [(const("SEC_TENSORS"), tensors, 4), (const("SEC_CONSTS"), program.consts, const("CONST_ALIGN")),
                (const("SEC_CODE"), code, 4)]
    if program.names:
        sections.append((const("SEC_NAMES"), "\0".join(program.names).encode() + b"\0", 4))
    if program.meta:
        sections.append((const("SEC_META"), json.dumps(program.meta, sort_keys=True).encode(), 4))
    if program.tests is not None:
        sections.append((const("SEC_TESTS"), program.tests.pack(), 4))

    offset = const("HEADER_SIZE") + const("SECTION_ENTRY_SIZE") * len(sections)
    table, body = b"", b""
    for kind, blob, alignment in sections:
        start = align(offset, alignment)
        body += b"\0" * (start - offset) + blob
        table += _SECTION.pack(kind, start, len(blob), 0)
        offset = start + len(blob)
    size = offset
    header = _HEADER.pack(b"LNNB", const("VERSION_MAJOR"), const("VERSION_MINOR"), size, 0, len(sections),
                          len(program.tensors), program.arena_fixed, program.arena_row,
                          program.num_inputs, program.num_outputs, program.state_row)
    data = bytearray(header + table + body)
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])))
    return bytes(data)


def read(data: bytes) -> Program:
    """Parse a container, checking the framing (not the program: that is the VMs' verifier's job)."""
    if len(data) < const("HEADER_SIZE"):
        raise FormatError(f"file is {len(data)} bytes, shorter than the {const('HEADER_SIZE')}-byte header")
    magic, major, _minor, size, crc, nsec, ntensors, fixed, row, nin, nout, state_row = _HEADER.unpack_from(data)
    if magic != b"LNNB":
        raise FormatError(f"bad magic {magic!r}: not an .lnnb file")
    if major != const("VERSION_MAJOR"):
        raise FormatError(f"format version {major} is not supported (expected {const('VERSION_MAJOR')})")
    if size != len(data):
        raise FormatError(f"header says {size} bytes, file has {len(data)}")
    if zlib.crc32(data[16:]) != crc:
        raise FormatError("CRC-32 mismatch: the file is corrupted")
    sections: dict[int, bytes] = {}
    for i in range(nsec):
        kind, start, length, _ = _SECTION.unpack_from(data, const("HEADER_SIZE") + i * const("SECTION_ENTRY_SIZE"))
        if start + length > len(data):
            raise FormatError(f"section {i} (kind {kind}) runs past the end of the file")
        sections[kind] = data[start:start + length]
    tensors = []
    blob = sections.get(const("SEC_TENSORS"), b"")
    for i in range(ntensors):
        dtype, rank, region, flags, *rest = _TENSOR.unpack_from(blob, i * const("TENSOR_ENTRY_SIZE"))
        dims, offset, stride, widened = tuple(rest[:rank]), rest[4], rest[5], rest[6]
        tensors.append(TensorEntry(dims, region, offset, bool(flags & const("TF_BATCH")), stride, dtype, widened))
    code_blob = sections.get(const("SEC_CODE"), b"")
    names_blob = sections.get(const("SEC_NAMES"))
    meta_blob = sections.get(const("SEC_META"))
    tests_blob = sections.get(const("SEC_TESTS"))
    return Program(
        tensors=tuple(tensors),
        consts=sections.get(const("SEC_CONSTS"), b""),
        code=struct.unpack(f"<{len(code_blob) // 4}I", code_blob),
        arena_fixed=fixed,
        arena_row=row,
        num_inputs=nin,
        num_outputs=nout,
        names=tuple(names_blob.decode().rstrip("\0").split("\0")) if names_blob else (),
        meta=json.loads(meta_blob) if meta_blob else {},
        tests=TestSet.unpack(tests_blob) if tests_blob is not None else None,
        state_row=state_row,
    )


def state_row(data: bytes) -> int:
    """The header's state_row without checking the rest of the file (0 for a file too short to have one)."""
    return _HEADER.unpack_from(data)[-1] if len(data) >= _HEADER.size else 0


def section_offsets(data: bytes) -> dict[int, tuple[int, int]]:
    """Section kind -> (offset, size), for tests that craft broken files."""
    nsec = struct.unpack_from("<I", data, 16)[0]
    out = {}
    for i in range(nsec):
        kind, start, length, _ = _SECTION.unpack_from(data, const("HEADER_SIZE") + i * const("SECTION_ENTRY_SIZE"))
        out[kind] = (start, length)
    return out


def refresh_crc(data: bytes) -> bytes:
    """Recompute the CRC-32 of an edited file, so an edit reaches the checks after the CRC."""
    out = bytearray(data)
    struct.pack_into("<I", out, 12, zlib.crc32(bytes(out[16:])))
    return bytes(out)
