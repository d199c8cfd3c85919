"""How a run's rows travel in RUN frames (vm/PROTOCOL.md, RUN): the model's inputs and outputs as the device
describes them, the batch (rows per lnn_run call: a chunk), and the most rows one frame carries both ways.

Pure functions: the link sends what `request` packs and hands each answer to `answer`."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

from ..base import DeviceError

_SHAPE = re.compile(r"^\[([^\]]*)\]")


def io_shape(text: str) -> tuple[bool, int]:
    """'[B,3] f32' -> (batched, elements per row)."""
    m = _SHAPE.match(text)
    if not m:
        raise DeviceError(f"unexpected shape from the device: {text!r}")
    dims = [d.strip() for d in m[1].split(",") if d.strip()]
    batched = bool(dims) and dims[0] == "B"
    elems = 1
    for d in dims[1 if batched else 0:]:
        elems *= int(d)
    return batched, elems


def rows_per_frame(ins: list[tuple[bool, int]], outs: list[tuple[bool, int]], chunk: int, cap: int) -> int:
    """The most rows one RUN frame carries: inputs in the request, cycles and outputs in the answer."""
    in_fixed = 4 + sum(4 * row for batched, row in ins if not batched)
    in_row = sum(4 * row for batched, row in ins if batched)
    out_fixed = 4 + sum(4 * row for batched, row in outs if not batched)
    out_row = sum(4 * row for batched, row in outs if batched)

    def fits(r: int) -> bool:
        return in_fixed + r * in_row <= cap and out_fixed + 4 * -(-r // chunk) + r * out_row <= cap

    r = 0xFFFF
    if in_row:
        r = min(r, (cap - in_fixed) // in_row)
    r = min(r, int((cap - out_fixed) / (out_row + 4 / chunk)))
    while r > 0 and not fits(r):
        r -= 1
    return max(r, 0)


@dataclass(frozen=True)
class Layout:
    ins: list[tuple[bool, int]]  # (batched, floats per row) of each input
    outs: list[tuple[bool, int]]
    flat: list[np.ndarray]  # the inputs as float32, flat
    rows: int  # rows in all
    chunk: int  # rows per lnn_run call on the device
    per_frame: int  # rows per RUN frame, a multiple of chunk

    def frames(self) -> range:
        """The first row of each RUN frame."""
        return range(0, self.rows, self.per_frame)

    def request(self, start: int) -> tuple[int, bytes]:
        """The rows of the frame starting at `start` and the RUN payload carrying them."""
        rows = min(self.per_frame, self.rows - start)
        body = bytearray(struct.pack("<HH", rows, self.chunk))
        for (batched, row), x in zip(self.ins, self.flat):
            body += (x[start * row:(start + rows) * row] if batched else x).tobytes()
        return rows, bytes(body)

    def answer(self, payload: bytes, rows: int, who: str) -> tuple[np.ndarray, list[np.ndarray]]:
        """A RUN answer -> (cycles of each chunk, each output's floats for these rows)."""
        r, chunks = struct.unpack_from("<HH", payload)
        if r != rows:
            raise DeviceError(f"{who}: RUN answered {r} rows, sent {rows}")
        cycles = np.frombuffer(payload, dtype="<u4", count=chunks, offset=4)
        off = 4 + 4 * chunks
        parts = []
        for batched, row in self.outs:
            count = (rows if batched else 1) * row
            parts.append(np.frombuffer(payload, dtype="<f4", count=count, offset=off))
            off += 4 * count
        if off != len(payload):
            raise DeviceError(f"{who}: RUN answer has {len(payload)} bytes, expected {off}")
        return cycles, parts

    def gather(self, pieces: list[list[np.ndarray]]) -> list[np.ndarray]:
        """Each output's pieces (one per frame) as the run's outputs: batched ones joined, others the last."""
        outputs = []
        for (batched, row), parts in zip(self.outs, pieces):
            if batched:
                outputs.append(np.concatenate(parts).reshape(self.rows, row))
            else:
                outputs.append(parts[-1].reshape(1, row).copy())
        return outputs


def layout(model_info: dict, device: dict, inputs: list[np.ndarray], batch: int, min_payload: int) -> Layout:
    """The inputs checked against the model the device holds, and the frames they travel in."""
    n_in, n_out = int(model_info["inputs"]), int(model_info["outputs"])
    if len(inputs) != n_in:
        raise DeviceError(f"the model takes {n_in} input(s), got {len(inputs)}")
    ins = [io_shape(model_info[f"input{i}"]) for i in range(n_in)]
    outs = [io_shape(model_info[f"output{i}"]) for i in range(n_out)]
    flat = [np.ascontiguousarray(x, dtype="<f4").reshape(-1) for x in inputs]
    n = None
    for i, ((batched, row), x) in enumerate(zip(ins, flat)):
        if not batched:
            if x.size != row:
                raise DeviceError(f"input {i} is not batched: expected {row} float32, got {x.size}")
            continue
        if x.size == 0 or x.size % row:
            raise DeviceError(f"input {i}: expected a non-zero multiple of the row size {row}, got {x.size}")
        if n is not None and x.size // row != n:
            raise DeviceError(f"input {i} has {x.size // row} rows but an earlier input has {n}")
        n = x.size // row
    n = n or 1
    chunk = min(batch, n)
    # lnn_run_rows's rule (vm/include/lnnvm.h), which the device applies: a stateful model's chunks are time
    # steps of `chunk` streams, so the rows come in whole chunks
    if int(model_info.get("state_row", 0)) and n % chunk:
        raise DeviceError(f"a stateful model takes the rows as time steps of batch {chunk} streams: "
                          f"{n} rows is not a multiple of {chunk}")
    max_batch = int(model_info.get("max_batch", chunk))
    if chunk > max_batch:
        raise DeviceError(f"batch {chunk}: the device's arena holds at most {max_batch} rows of this model")
    cap = int(device.get("max_payload", min_payload))
    per_frame = rows_per_frame(ins, outs, chunk, cap)
    if per_frame < chunk:
        raise DeviceError(f"batch {chunk} does not fit in one frame of {device.get('max_payload')} "
                          f"bytes; at most {rows_per_frame(ins, outs, 1, cap)} rows per run")
    return Layout(ins, outs, flat, n, chunk, per_frame - per_frame % chunk)
