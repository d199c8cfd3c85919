"""The C VM in-process, through its shared library (ctypes).

    vm = CVM(Path("build/ltc-sine/model.lnnb").read_bytes(), max_batch=1024)
    y, = vm.run(x)

    call = vm.prepare([x], [y])   # zero-allocation repeated calls on fixed buffers
    x[:] = ...; call(); y ...

The model bytes and the arena are numpy buffers owned by this object (64-byte
aligned), so they outlive the C model that points into them. The arena is as
large as lnn_arena_size says for max_batch rows (with a stateful model's state
part after the intermediates).

A stateful model (STATE tensors) keeps its state inside the C model between
calls: each run continues every stream (batch row) from where the previous run
left it, `reset()` starts them all from zero again, and so does a call with a
batch size other than the previous call's.

Repeated calls are cheap: the model's inputs and outputs (row sizes, batched
flags) are read once at construction, lnn_run is called through prebuilt
ctypes arguments, an input array passed again (the same object, same shape)
is not re-validated, and outputs are fresh views into preallocated slabs
(their addresses are known, so no ctypes pointer is built per call). Each
call's outputs are new memory: a later call never overwrites them.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from . import isa
from .artifacts import MissingArtifact
from .errors import LnnedgeError
from .paths import BUILD_DIR

_U32 = ctypes.c_uint32
_P = ctypes.c_void_p


class _Tests(ctypes.Structure):
    """lnn_tests (lnnvm.h)."""

    _fields_ = [("count", _U32), ("in_floats", _U32), ("out_floats", _U32), ("max_abs_err", ctypes.c_float),
                ("inputs", ctypes.POINTER(ctypes.c_float)), ("expected", ctypes.POINTER(ctypes.c_float))]


class VMError(LnnedgeError, RuntimeError):
    """A status other than OK from the C VM; `name` is its code name, e.g. E_CRC."""

    def __init__(self, name: str, message: str, offset: int | None = None):
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{name}{where}: {message}")
        self.name = name
        self.offset = offset


def default_library() -> Path:
    return BUILD_DIR / "vm" / "host" / "liblnnvm.so"


@cache
def load_library(path: str) -> ctypes.CDLL:
    if not Path(path).is_file():
        raise MissingArtifact(f"{path} does not exist: run `invoke build --target host` first")
    lib = ctypes.CDLL(path)
    lib.lnn_model_size.restype = ctypes.c_size_t
    lib.lnn_init.argtypes = [_P, _P, ctypes.c_size_t, _P, ctypes.c_size_t]
    lib.lnn_init.restype = ctypes.c_int
    lib.lnn_arena_size.argtypes = [_P, ctypes.c_size_t, _U32]
    lib.lnn_arena_size.restype = ctypes.c_size_t
    lib.lnn_run.argtypes = [_P, ctypes.POINTER(_P), ctypes.POINTER(_P), _U32]
    lib.lnn_run.restype = ctypes.c_int
    lib.lnn_run_rows.argtypes = [_P, ctypes.POINTER(_P), ctypes.POINTER(_P), ctypes.c_size_t, _U32, _P, _P]
    lib.lnn_run_rows.restype = ctypes.c_int
    for name in ("lnn_error_offset", "lnn_max_batch", "lnn_num_inputs", "lnn_num_outputs"):
        getattr(lib, name).argtypes = [_P]
        getattr(lib, name).restype = _U32
    for name in ("lnn_input_row_elems", "lnn_output_row_elems"):
        getattr(lib, name).argtypes = [_P, _U32]
        getattr(lib, name).restype = _U32
    for name in ("lnn_input_batched", "lnn_output_batched"):
        getattr(lib, name).argtypes = [_P, _U32]
        getattr(lib, name).restype = ctypes.c_int
    for name in ("lnn_status_name", "lnn_status_str"):
        getattr(lib, name).argtypes = [ctypes.c_int]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.lnn_isa.argtypes = [_P]
    lib.lnn_isa.restype = ctypes.c_char_p
    lib.lnn_use_kernels.argtypes = [_P, ctypes.c_char_p]
    lib.lnn_use_kernels.restype = ctypes.c_int
    lib.lnn_use_plan.argtypes = [_P, ctypes.c_int]
    lib.lnn_use_plan.restype = ctypes.c_int
    lib.lnn_reset.argtypes = [_P]
    lib.lnn_reset.restype = ctypes.c_int
    lib.lnn_get_tests.argtypes = [_P, ctypes.POINTER(_Tests)]
    lib.lnn_get_tests.restype = ctypes.c_int
    lib.lnn_version.restype = ctypes.c_char_p
    return lib


def _aligned(nbytes: int, alignment: int = 64) -> np.ndarray:
    raw = np.zeros(nbytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start:start + nbytes]


def _address(x: np.ndarray) -> int:
    return x.__array_interface__["data"][0]


class _Slab:
    """Output rows handed out as consecutive views of one preallocated array; a new array when it is used up
    (views of the old one keep it alive). Never reused: each call's outputs are new memory."""

    def __init__(self, row: int, batched: bool, rows: int = 4096):
        self.row, self.batched = row, batched
        self.rows = rows
        self.stride = 4 * row
        self.fresh(rows)

    def fresh(self, rows: int) -> None:
        self.capacity = max(rows, self.rows)
        self.data = _aligned(4 * self.row * self.capacity).view(np.float32).reshape(self.capacity, self.row)
        self.base = _address(self.data)
        self.next = 0


class CVM:
    def __init__(self, data: bytes, max_batch: int = 1, library: Path | None = None):
        self.lib = load_library(str(library or default_library()))
        self._buf = _aligned(len(data))
        self._buf[:] = np.frombuffer(data, dtype=np.uint8)
        need = self.lib.lnn_arena_size(self._buf.ctypes.data, len(data), max_batch)
        self._arena = _aligned(max(need, 64))
        self._model = _aligned(self.lib.lnn_model_size())
        status = self.lib.lnn_init(self._model.ctypes.data, self._buf.ctypes.data, len(data),
                                   self._arena.ctypes.data, len(self._arena))
        if status != 0:
            raise self._error(status, self.lib.lnn_error_offset(self._model.ctypes.data))
        m = self._model.ctypes.data
        self.num_inputs = self.lib.lnn_num_inputs(m)
        self.num_outputs = self.lib.lnn_num_outputs(m)
        self.max_batch = self.lib.lnn_max_batch(m)
        self.isa = self.lib.lnn_isa(m).decode()
        self.version = self.lib.lnn_version().decode()
        # metadata read once; ctypes arguments built once
        self._in_row = [self.lib.lnn_input_row_elems(m, i) for i in range(self.num_inputs)]
        self._in_batched = [bool(self.lib.lnn_input_batched(m, i)) for i in range(self.num_inputs)]
        self._slabs = [_Slab(self.lib.lnn_output_row_elems(m, i), bool(self.lib.lnn_output_batched(m, i)))
                       for i in range(self.num_outputs)]
        self._m = _P(m)
        self._in_ptrs = (_P * max(self.num_inputs, 1))()
        self._out_ptrs = (_P * max(self.num_outputs, 1))()
        self._run = self.lib.lnn_run
        # the same function through a handle without argtypes: called with ready ctypes objects it skips
        # the argument conversion (about half of a call's cost)
        self._fast_run = ctypes.CDLL(self.lib._name).lnn_run
        self._fast_run.restype = ctypes.c_int
        self._seen: list[tuple[np.ndarray, tuple[int, ...]]] = []  # the inputs validated last, their shapes
        self._batch, self._c_batch = 1, ctypes.c_uint32(1)
        self._args = (self._m, self._in_ptrs, self._out_ptrs, self._c_batch)

    def _error(self, status: int, offset: int | None = None) -> VMError:
        return VMError(self.lib.lnn_status_name(status).decode(), self.lib.lnn_status_str(status).decode(), offset)

    def use_kernels(self, isa: str) -> None:
        """Run on another compiled-in kernel set (VMError E_CPU if it is not there or the processor lacks it)."""
        status = self.lib.lnn_use_kernels(self._m, isa.encode())
        if status != 0:
            raise self._error(status)
        self.isa = isa

    def use_plan(self, on: bool) -> bool:
        """Run from the run plan (default) or instruction by instruction; returns whether the plan is in use."""
        return bool(self.lib.lnn_use_plan(self._m, int(on)))

    def reset(self) -> None:
        """Start every stream of a stateful model from zero state at the next run (lnn_reset; a no-op for a
        stateless model)."""
        status = self.lib.lnn_reset(self._m)
        if status != 0:
            raise self._error(status)

    def tests(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The model's bundled test set (lnn_get_tests) as copies: inputs (count, in_floats), expected outputs
        (count, out_floats) and the tolerance; None if the model has none."""
        t = _Tests()
        if not self.lib.lnn_get_tests(self._m, ctypes.byref(t)):
            return None
        inputs = np.ctypeslib.as_array(t.inputs, (t.count, t.in_floats)).copy()
        expected = np.ctypeslib.as_array(t.expected, (t.count, t.out_floats)).copy()
        return inputs, expected, float(t.max_abs_err)

    def _check_input(self, i: int, x) -> tuple[np.ndarray, int]:
        """The input as a C-contiguous float32 array, and its batch (rows) if batched."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        row = self._in_row[i]
        if self._in_batched[i]:
            if x.ndim < 1 or x[0].size != row:
                raise ValueError(f"input {i}: expected rows of {row} values, got shape {x.shape}")
            return x, x.shape[0]
        if x.size != row:
            raise ValueError(f"input {i}: expected {row} values, got shape {x.shape}")
        return x, 0

    def _bind(self, inputs: Sequence[np.ndarray]) -> int:
        """Validates the inputs, records their addresses; the batch they make."""
        if len(inputs) != self.num_inputs:
            raise ValueError(f"model takes {self.num_inputs} inputs, got {len(inputs)}")
        batch, seen = 1, []
        for i, x in enumerate(inputs):
            arr, rows = self._check_input(i, x)
            batch = rows or batch
            self._in_ptrs[i] = _address(arr)
            # only an array the caller passed (not a converted copy) is recognised next time
            seen.append((x, arr.shape) if arr is x else (arr, ()))
            if arr is not x:
                self._keep = arr
        if batch > self.max_batch or batch < 1:
            raise self._error(isa.status_code("E_BATCH"))
        self._seen, self._batch, self._c_batch = seen, batch, ctypes.c_uint32(batch)
        self._args = (self._m, self._in_ptrs, self._out_ptrs, self._c_batch)
        return batch

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        seen = self._seen
        if len(inputs) == len(seen):
            for x, (last, shape) in zip(inputs, seen):
                if x is not last or x.shape != shape:
                    batch = self._bind(inputs)
                    break
            else:
                batch = self._batch
        else:
            batch = self._bind(inputs)
        outputs = []
        out_ptrs = self._out_ptrs
        for i, slab in enumerate(self._slabs):
            start = slab.next
            if slab.batched:
                end = start + batch
                if end > slab.capacity:
                    slab.fresh(batch)
                    start, end = 0, batch
                outputs.append(slab.data[start:end])
            else:
                end = start + 1
                if end > slab.capacity:
                    slab.fresh(1)
                    start, end = 0, 1
                outputs.append(slab.data[start])
            slab.next = end
            out_ptrs[i] = slab.base + slab.stride * start
        status = self._fast_run(*self._args)
        if status:
            self._seen = []
            raise self._error(status)
        return outputs

    def run_rows(self, inputs: Sequence[np.ndarray], batch: int) -> list[np.ndarray]:
        """All rows of the inputs in lnn_run calls of at most `batch` rows each (lnn_run_rows, lnnvm.h), as
        `lnnvm run --batch` does: more rows than the arena holds at once. A stateful model takes the rows as
        time steps of `batch` streams, continuing from its state (VMError E_BATCH unless the rows are a
        multiple of the batch). Outputs: every row of a batched output, the last chunk's of an unbatched one."""
        if len(inputs) != self.num_inputs:
            raise ValueError(f"model takes {self.num_inputs} inputs, got {len(inputs)}")
        if not 1 <= batch <= 0xFFFFFFFF:
            raise ValueError(f"batch must be in 1..2^32-1, got {batch}")
        arrays, rows = [], None
        for i, x in enumerate(inputs):
            arr, n = self._check_input(i, x)
            if n and rows is not None and n != rows:
                raise ValueError(f"input {i} has {n} rows but an earlier input has {rows}")
            rows = n or rows
            arrays.append(arr)
        rows = rows or 1
        outputs = [np.zeros((rows if slab.batched else 1, slab.row), dtype=np.float32) for slab in self._slabs]
        ins = (_P * max(self.num_inputs, 1))(*[_address(x) for x in arrays])
        outs = (_P * max(self.num_outputs, 1))(*[_address(y) for y in outputs])
        status = self.lib.lnn_run_rows(self._m, ins, outs, rows, batch, None, None)
        if status != 0:
            raise self._error(status)
        return [y if slab.batched else y[0] for y, slab in zip(outputs, self._slabs)]

    def prepare(self, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]):
        """A function running the model on these buffers with no argument checks or allocation per call:
        write the inputs in place, call it, read the outputs. The arrays must stay alive and keep their
        shapes (they are checked once, here)."""
        if len(inputs) != self.num_inputs or len(outputs) != self.num_outputs:
            raise ValueError(f"model takes {self.num_inputs} inputs and {self.num_outputs} outputs")
        batch = 1
        for i, x in enumerate(inputs):
            if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous):
                raise ValueError(f"input {i}: a C-contiguous float32 array is needed")
            rows = self._check_input(i, x)[1]
            batch = rows or batch
        for i, (y, slab) in enumerate(zip(outputs, self._slabs)):
            want = (batch, slab.row) if slab.batched else (slab.row,)
            if not (isinstance(y, np.ndarray) and y.dtype == np.float32 and y.flags.c_contiguous
                    and y.size == int(np.prod(want)) and y.flags.writeable):
                raise ValueError(f"output {i}: a writable C-contiguous float32 array of shape {want} is needed")
        ins = (_P * max(self.num_inputs, 1))(*[_address(x) for x in inputs])
        outs = (_P * max(self.num_outputs, 1))(*[_address(y) for y in outputs])
        run, m, c_batch = self._run, self._m, ctypes.c_uint32(batch)
        keep = (tuple(inputs), tuple(outputs))

        def call() -> None:
            status = run(m, ins, outs, c_batch)
            if status != 0:
                raise self._error(status)

        call.buffers = keep  # type: ignore[attr-defined]
        return call
