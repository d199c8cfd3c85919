"""The C VM's loader verifies the whole file: each error class, from a file crafted to break exactly it."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest
from conftest import lnnvm
from lnnedge import isa, lnnb
from lnnedge.lnnb import Program, TensorEntry
from lnnedge.runtime import CVM, VMError

CONST, ARENA, INPUT, OUTPUT = (isa.const(k) for k in ("REG_CONST", "REG_ARENA", "REG_INPUT", "REG_OUTPUT"))
E = isa.encode

# t0 x[B,2] input, t1 W[3,2], t2 b[3], t3 y[B,3] output, t4 h[B,3] arena, t5 dt[] per-step table (2 rows),
# t6 [B,3] arena overlapping half of t4
TENSORS = (
    TensorEntry((1, 2), INPUT, 0, batched=True),
    TensorEntry((3, 2), CONST, 0),
    TensorEntry((3,), CONST, 32),
    TensorEntry((1, 3), OUTPUT, 0, batched=True),
    TensorEntry((1, 3), ARENA, 0, batched=True),
    TensorEntry((), CONST, 48, stride=4),
    TensorEntry((1, 3), ARENA, 4, batched=True),
)
CONSTS = np.array([1, 2, 3, 4, 5, 6, 0, 0, 0.5, -1, 2, 0, 0.25, 0.75], dtype="<f4").tobytes()
# h = W x + b; repeat 2x: h = h + dt_i * h; y = h
CODE = (E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 2), E("LINEAR", 0, 4), E("DROP"),
        E("LOOP", 0, 2), E("PUSH", 0, 5), E("PUSH", 0, 4), E("MUL", 0, 3), E("PUSH", 0, 4), E("ADD", 0, 4),
        E("DROP"), E("END"),
        E("PUSH", 0, 4), E("NEG", 0, 3), E("NEG", 0, 3), E("DROP"))


def program(**changes) -> Program:
    base = Program(tensors=TENSORS, consts=CONSTS, code=CODE, arena_fixed=0, arena_row=16, num_inputs=1,
                   num_outputs=1)
    return replace(base, **changes)


def expected_output(x: np.ndarray) -> np.ndarray:
    w = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    h = x @ w.T + np.array([0.5, -1, 2], np.float32)
    for dt in (0.25, 0.75):
        h = h + np.float32(dt) * h
    return h


def with_code(*words: int) -> bytes:
    return lnnb.write(program(code=words))


def with_tensor(index: int, **changes) -> bytes:
    tensors = list(TENSORS)
    tensors[index] = replace(tensors[index], **changes)
    return lnnb.write(program(tensors=tuple(tensors)))


def patched(data: bytes, offset: int, fmt: str, value, fix_crc: bool = True) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return lnnb.refresh_crc(bytes(out)) if fix_crc else bytes(out)


VALID = lnnb.write(program())
SECTIONS = lnnb.section_offsets(VALID)
CODE_AT = SECTIONS[isa.const("SEC_CODE")][0]
TENSORS_AT = SECTIONS[isa.const("SEC_TENSORS")][0]

BROKEN = {
    "E_TRUNCATED": VALID[:8],
    "E_MAGIC": b"LNNX" + VALID[4:],
    "E_VERSION": patched(VALID, 4, "<H", 2),
    "E_SIZE": patched(VALID, 8, "<I", len(VALID) - 4),
    "E_CRC": patched(VALID, CODE_AT, "<I", E("DROP"), fix_crc=False),
    "E_HEADER": patched(VALID, 40, "<I", 7),
    "E_SECTION": patched(VALID, 64 + 16 * 2 + 4, "<I", TENSORS_AT),  # code section overlaps the tensor table
    "E_MISSING": patched(VALID, 64 + 16 * 2, "<I", isa.const("SEC_NAMES")),  # the code section renamed
    "E_TENSOR": patched(VALID, TENSORS_AT + 32 * 1, "<B", 9),  # dtype 9
    "E_TENSOR_BOUNDS": with_tensor(1, offset=4096),
    "E_IO": with_tensor(3, offset=1),  # output number 1 of a 1-output model
    "E_OPCODE": with_code(E("PUSH", 0, 0), 0xEE, E("DROP")),
    "E_OPERAND": with_code(E("PUSH", 0, 999), E("DROP")),
    "E_UNDERFLOW": with_code(E("PUSH", 0, 0), E("ADD", 0, 4), E("DROP")),
    "E_OVERFLOW": with_code(*[E("PUSH", 0, 0)] * (isa.const("MAX_STACK") + 1)),
    "E_SHAPE": with_code(E("PUSH", 0, 0), E("PUSH", 0, 2), E("PUSH", 0, 1), E("LINEAR", 0, 4), E("DROP")),
    "E_READONLY": with_code(E("PUSH", 0, 0), E("NEG", 0, 0), E("DROP")),
    "E_ALIAS": with_code(E("PUSH", 0, 4), E("NEG", 0, 6), E("DROP")),
    "E_LOOP": with_code(E("LOOP", 0, 2), E("PUSH", 0, 0), E("DROP")),
    "E_STRIDE": with_code(E("PUSH", 0, 5), E("DROP")),
    "E_STACK_END": with_code(E("PUSH", 0, 0)),
}


def test_valid_crafted_program_runs_on_both_vms(host_build):
    from lnnedge.refvm import RefVM

    x = np.array([[1, -1], [0.5, 2], [3, 0]], np.float32)
    np.testing.assert_allclose(RefVM(VALID).run([x])[0], expected_output(x), rtol=1e-6)
    vm = CVM(VALID, max_batch=3, library=host_build.library)
    np.testing.assert_allclose(vm.run([x])[0], expected_output(x), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_loader_rejects_crafted_file(tmp_path, host_build, name):
    path = tmp_path / f"{name}.lnnb"
    path.write_bytes(BROKEN[name])
    proc = lnnvm(host_build.runner, "verify", path)
    assert proc.returncode == 3, proc.stderr
    assert f": {name} at byte " in proc.stderr
    with pytest.raises(VMError) as err:
        CVM(BROKEN[name], library=host_build.library)
    assert err.value.name == name


def test_every_status_code_has_a_crafted_file_or_a_runtime_test():
    """No error class is left untested (E_DTYPE waits for a second dtype: f32 is the only one;
    E_CPU is tested in test_targets with the AVX2 build on an emulated CPU without AVX)."""
    runtime_tested = {"OK", "E_ARG", "E_ALIGN", "E_ARENA", "E_BATCH", "E_NOT_READY", "E_DTYPE", "E_CPU"}
    names = {name for name, _ in isa.statuses().values()}
    assert names - runtime_tested == set(BROKEN)


def test_arena_too_small_and_batch_too_large_are_refused(host_build):
    from lnnedge.runtime import load_library

    lib = load_library(str(host_build.library))
    vm = CVM(VALID, max_batch=8, library=host_build.library)
    vm.run([np.zeros((8, 2), np.float32)])
    with pytest.raises(VMError, match="E_BATCH"):
        vm.run([np.zeros((9, 2), np.float32)])
    import ctypes

    buf = ctypes.create_string_buffer(VALID, len(VALID))
    model = ctypes.create_string_buffer(lib.lnn_model_size())
    arena = ctypes.create_string_buffer(64)
    status = lib.lnn_init(ctypes.addressof(model), ctypes.addressof(buf), len(VALID), ctypes.addressof(arena), 8)
    assert lib.lnn_status_name(status).decode() == "E_ARENA"
    status = lib.lnn_init(ctypes.addressof(model), ctypes.addressof(buf) + 1, len(VALID) - 1,
                          ctypes.addressof(arena), 64)
    assert lib.lnn_status_name(status).decode() == "E_ALIGN"
    status = lib.lnn_run(ctypes.addressof(model), None, None, 1)
    assert lib.lnn_status_name(status).decode() in ("E_NOT_READY", "E_ARG")


def test_every_truncation_of_a_real_model_is_rejected_cleanly(host_build, sine_compiled, tmp_path):
    data = sine_compiled.data
    for cut in list(range(0, 200, 7)) + list(range(len(data) - 64, len(data), 5)):
        with pytest.raises(VMError):
            CVM(data[:cut], library=host_build.library)
