"""The C VM in-process, through its shared library (ctypes).

    vm = CVM(Path("build/ltc-sine/model.lnnb").read_bytes(), max_batch=1024)
    y, = vm.run(x)

The model bytes and the arena are numpy buffers owned by this object (64-byte
aligned), so they outlive the C model that points into them.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from .paths import BUILD_DIR

_U32 = ctypes.c_uint32
_P = ctypes.c_void_p


class VMError(RuntimeError):
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
        raise FileNotFoundError(f"{path} does not exist: run `invoke build --target host` first")
    lib = ctypes.CDLL(path)
    lib.lnn_model_size.restype = ctypes.c_size_t
    lib.lnn_init.argtypes = [_P, _P, ctypes.c_size_t, _P, ctypes.c_size_t]
    lib.lnn_init.restype = ctypes.c_int
    lib.lnn_arena_size.argtypes = [_P, ctypes.c_size_t, _U32]
    lib.lnn_arena_size.restype = ctypes.c_size_t
    lib.lnn_run.argtypes = [_P, ctypes.POINTER(_P), ctypes.POINTER(_P), _U32]
    lib.lnn_run.restype = ctypes.c_int
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
    lib.lnn_version.restype = ctypes.c_char_p
    return lib


def _aligned(nbytes: int, alignment: int = 64) -> np.ndarray:
    raw = np.zeros(nbytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start:start + nbytes]


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
        self.isa = self.lib.lnn_isa(m).decode()
        self.version = self.lib.lnn_version().decode()

    def _error(self, status: int, offset: int | None = None) -> VMError:
        return VMError(self.lib.lnn_status_name(status).decode(), self.lib.lnn_status_str(status).decode(), offset)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        m = self._model.ctypes.data
        if len(inputs) != self.num_inputs:
            raise ValueError(f"model takes {self.num_inputs} inputs, got {len(inputs)}")
        arrays = [np.ascontiguousarray(x, dtype=np.float32) for x in inputs]
        batch = 1
        for i, x in enumerate(arrays):
            row = self.lib.lnn_input_row_elems(m, i)
            if self.lib.lnn_input_batched(m, i):
                if x.ndim < 1 or x[0].size != row:
                    raise ValueError(f"input {i}: expected rows of {row} values, got shape {x.shape}")
                batch = x.shape[0]
            elif x.size != row:
                raise ValueError(f"input {i}: expected {row} values, got shape {x.shape}")
        outputs = []
        for i in range(self.num_outputs):
            row = self.lib.lnn_output_row_elems(m, i)
            shape = (batch, row) if self.lib.lnn_output_batched(m, i) else (row,)
            outputs.append(np.zeros(shape, dtype=np.float32))
        in_ptrs = (_P * len(arrays))(*[x.ctypes.data for x in arrays])
        out_ptrs = (_P * len(outputs))(*[y.ctypes.data for y in outputs])
        status = self.lib.lnn_run(m, in_ptrs, out_ptrs, batch)
        if status != 0:
            raise self._error(status)
        return outputs
