"""The C VM's loader verifies the whole file: each error class, from a file crafted to break exactly it."""

from __future__ import annotations

import re
import struct
from dataclasses import replace

import numpy as np
import pytest
from conftest import HOST_AVX512, HOST_ISAS, lnnvm
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
    "E_UNINIT": with_code(E("PUSH", 0, 4), E("NEG", 0, 3), E("DROP")),
    "E_LIMIT": with_code(E("LOOP", 0, 0xFFFF), E("LOOP", 0, 0xFFFF), E("END"), E("END")),
    # issue 15, defect 6: 4 GiB of arena declared by a file of a few hundred bytes (at arena_fixed)
    "E_ARENA_LIMIT": patched(VALID, 24, "<I", 0xFFFFFFC0),
}


def work_bomb(trips: int = 256) -> bytes:
    """Issue 15, defect 5: a file of about 300 bytes that verified and did 2^44 multiply-adds per run: a 4096 x 4096
    product of two zeroed arena matrices (2^36), `trips` times."""
    n = 4096
    tensors = (TensorEntry((1, 2), INPUT, 0, batched=True), TensorEntry((1, 2), OUTPUT, 0, batched=True),
               TensorEntry((n, n), ARENA, 0), TensorEntry((n, n), ARENA, 4 * n * n),
               TensorEntry((n, n), ARENA, 8 * n * n))
    code = (E("ZERO", 0, 2), E("DROP"), E("ZERO", 0, 3), E("DROP"),
            E("LOOP", 0, trips), E("PUSH", 0, 2), E("PUSH", 0, 3), E("MATMUL_NT", 0, 4), E("DROP"), E("END"),
            E("PUSH", 0, 0), E("COPY", 0, 1), E("DROP"))
    return lnnb.write(Program(tensors=tensors, consts=b"", code=code, arena_fixed=12 * n * n, arena_row=0,
                              num_inputs=1, num_outputs=1))


BROKEN["E_WORK"] = work_bomb()
# issue 15, defect 8: a NaN in W (float32 value 3)
BROKEN["E_NONFINITE"] = patched(VALID, SECTIONS[isa.const("SEC_CONSTS")][0] + 12, "<I", 0x7FC00000)


# ---- the fused ops: LINEAR_T / MATMUL_T (columns split over destinations), EWISEn (element-wise programs) ----

U32 = isa.const("DT_U32")
MAX_DSTS = isa.const("MAX_DSTS")


def ew_program(n: int, regs: int, *insns: tuple[str, int, int, int], count: int | None = None) -> bytes:
    """An element-wise program (vm/include/lnn_format.h): header, then (op, d, a, b) words."""
    count = len(insns) if count is None else count
    words = [n | count << 8 | regs << 16] + [isa.opcodes()[op].code | d << 8 | a << 16 | b << 24
                                            for op, d, a, b in insns]
    return np.array(words, "<u4").tobytes()


# y = sigmoid(h * s) + r with h = x @ Wt + b computed as two destinations ya | yb and concatenated
PROG = ew_program(3, 1, ("MUL", 0, 0, 2), ("SIGMOID", 0, 3, 0), ("ADD", 0, 3, 1))
FUSED_CONSTS = {
    0: np.array([[1, 3, 5], [2, 4, 6]], "<f4").tobytes(),  # Wt = W^T of test_loader's W
    32: np.array([0.5, -1, 2], "<f4").tobytes(),           # b
    48: np.array([0.5, -1, 2], "<f4").tobytes(),           # r, a row
    64: np.array([0.25], "<f4").tobytes(),                  # s, a single value
    80: np.array([[1, 2], [3, 4], [5, 6]], "<f4").tobytes(),  # W, not transposed
    112: PROG,
    160: ew_program(3, 1, ("MUL", 0, 0, 2), ("LINEAR", 0, 3, 0), ("ADD", 0, 3, 1)),   # not an element-wise op
    208: ew_program(3, 2, ("MUL", 0, 0, 2), ("SIGMOID", 0, 4, 0), ("ADD", 0, 3, 1)),  # reads r1 unwritten
    256: ew_program(2, 1, ("MUL", 0, 0, 2), ("SIGMOID", 0, 3, 0), ("ADD", 0, 3, 1)),  # says 2 operands
    304: ew_program(3, 1, ("MUL", 0, 0, 2), ("SIGMOID", 0, 3, 0), ("ADD", 0, 3, 1), count=2),  # says 2 words
}
FUSED_TENSORS = (
    TensorEntry((1, 2), INPUT, 0, batched=True),    # t0 x
    TensorEntry((2, 3), CONST, 0),                  # t1 Wt
    TensorEntry((3,), CONST, 32),                   # t2 b
    TensorEntry((1, 3), OUTPUT, 0, batched=True),   # t3 y
    TensorEntry((1, 1), ARENA, 0, batched=True),    # t4 ya
    TensorEntry((1, 2), ARENA, 16, batched=True),   # t5 yb
    TensorEntry((1, 3), ARENA, 32, batched=True),   # t6 h
    TensorEntry((3,), CONST, 48),                   # t7 r
    TensorEntry((), CONST, 64),                     # t8 s
    TensorEntry((4,), CONST, 112, dtype=U32),       # t9 the program
    TensorEntry((3, 2), CONST, 80),                 # t10 W
    TensorEntry((1, 1), ARENA, 48, batched=True),   # t11 ya2
    TensorEntry((1, 2), ARENA, 48, batched=True),   # t12 yb2, over ya2
    TensorEntry((1, 1), ARENA, 64, batched=True),   # t13 ya3
    TensorEntry((1, 2), CONST, 0),                  # t14 a constant after ya3
    TensorEntry((4,), CONST, 160, dtype=U32),       # t15 program with a LINEAR in it
    TensorEntry((4,), CONST, 208, dtype=U32),       # t16 program reading an unwritten register
    TensorEntry((4,), CONST, 256, dtype=U32),       # t17 program for 2 operands
    TensorEntry((4,), CONST, 304, dtype=U32),       # t18 program declaring 2 instructions
    TensorEntry((1, 3), ARENA, 36, batched=True),   # t19 over half of h
    TensorEntry((1, 3), ARENA, 96, batched=True),   # t20
)
FUSED_CODE = (E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 2), E("LINEAR_T", 2, 4), E("DROP"),
              E("PUSH", 0, 4), E("PUSH", 0, 5), E("CONCAT", 1, 6),
              E("PUSH", 0, 7), E("PUSH", 0, 8), E("PUSH", 0, 9), E("EWISE3", 0, 3), E("DROP"))


def fused(*code: int, tensors: tuple[TensorEntry, ...] = FUSED_TENSORS) -> bytes:
    blob = bytearray(352)
    for offset, data in FUSED_CONSTS.items():
        blob[offset:offset + len(data)] = data
    return lnnb.write(Program(tensors=tensors, consts=bytes(blob), code=code or FUSED_CODE, arena_fixed=0,
                              arena_row=128, num_inputs=1, num_outputs=1))


def fused_expected(x: np.ndarray) -> np.ndarray:
    h = x @ np.array([[1, 2], [3, 4], [5, 6]], np.float32).T + np.array([0.5, -1, 2], np.float32)
    return (1 / (1 + np.exp(-(h * np.float32(0.25)))) + np.array([0.5, -1, 2], np.float32)).astype(np.float32)


def _ewise_at(dst: int, *operands: int, program: int = 9) -> tuple[int, ...]:
    pushes = tuple(E("PUSH", 0, t) for t in (*operands, program))
    return (*FUSED_CODE[:8], E("DROP"), *pushes, E(f"EWISE{len(operands)}", 0, dst), E("DROP"))


def _split(a: int, b: int, weight: int = 1) -> tuple[int, ...]:
    return (E("PUSH", 0, 0), E("PUSH", 0, weight), E("PUSH", 0, 2), E("LINEAR_T", a, b), E("DROP"))


FUSED_BROKEN = {
    "linear_t_without_destinations": (fused(*_split(0, 4)), "E_OPERAND"),
    "linear_t_too_many_destinations": (fused(*_split(MAX_DSTS + 1, 4)), "E_OPERAND"),
    "linear_t_past_the_tensor_table": (fused(*_split(2, len(FUSED_TENSORS) - 1)), "E_OPERAND"),
    "linear_t_columns_do_not_add_up": (fused(*_split(2, 5)), "E_SHAPE"),
    "linear_t_weight_not_transposed": (fused(*_split(2, 4, weight=10)), "E_SHAPE"),
    "linear_t_destinations_overlap": (fused(*_split(2, 11)), "E_ALIAS"),
    "linear_t_writes_a_constant": (fused(*_split(2, 13)), "E_READONLY"),
    "ewise_program_is_f32": (fused(*_ewise_at(3, 6, 7, 8, program=7)), "E_DTYPE"),
    "ewise_program_has_no_such_op": (fused(*_ewise_at(3, 6, 7, 8, program=15)), "E_OPERAND"),
    "ewise_program_reads_unwritten_register": (fused(*_ewise_at(3, 6, 7, 8, program=16)), "E_OPERAND"),
    "ewise_program_for_other_operand_count": (fused(*_ewise_at(3, 6, 7, 8, program=17)), "E_OPERAND"),
    "ewise_program_length": (fused(*_ewise_at(3, 6, 7, 8, program=18)), "E_SHAPE"),
    "ewise_operand_does_not_broadcast": (fused(*_ewise_at(3, 5, 7, 8)), "E_SHAPE"),
    "ewise_column_operand": (fused(*_ewise_at(3, 4, 7, 8)), "E_SHAPE"),
    "ewise_partial_overlap": (fused(*_ewise_at(19, 6, 7, 8)), "E_ALIAS"),
    "u32_tensor_in_the_arena": (fused(tensors=(*FUSED_TENSORS[:20], TensorEntry((1, 3), ARENA, 96, True, dtype=U32))),
                                "E_TENSOR"),
}
BROKEN["E_DTYPE"] = fused(E("PUSH", 0, 9), E("NEG", 0, 20), E("DROP"))  # an f32 op on the u32 program


def test_valid_crafted_program_runs_on_both_vms(host_build):
    from lnnedge.refvm import RefVM

    x = np.array([[1, -1], [0.5, 2], [3, 0]], np.float32)
    np.testing.assert_allclose(RefVM(VALID).run([x])[0], expected_output(x), rtol=1e-6)
    vm = CVM(VALID, max_batch=3, library=host_build.library)
    np.testing.assert_allclose(vm.run([x])[0], expected_output(x), rtol=1e-6)


@pytest.mark.parametrize("plan", [True, False])
def test_fused_ops_run_on_both_vms(host_build, plan):
    """LINEAR_T into two destinations, CONCAT, EWISE3 with a row and a single-value operand: the same results on
    the reference VM, the C VM's run plan and its instruction interpreter, on every kernel set."""
    from lnnedge.refvm import RefVM

    data = fused()
    x = np.array([[1, -1], [0.5, 2], [3, 0], [-2, 1], [0.25, 0.5]], np.float32)
    np.testing.assert_allclose(RefVM(data).run([x])[0], fused_expected(x), rtol=1e-6)
    vm = CVM(data, max_batch=5, library=host_build.library)
    assert vm.use_plan(plan) == plan
    for isa_name in ("scalar", vm.isa):
        vm.use_kernels(isa_name)
        for rows in (1, 2, 5):
            np.testing.assert_allclose(vm.run([x[:rows]])[0], fused_expected(x[:rows]), rtol=1e-6)


def assert_refused(tmp_path, host_build, name: str, data: bytes, status: str, offset: int | None = None) -> None:
    """The runner's verify and the binding both refuse `data` with `status` (at byte `offset` when given)."""
    path = tmp_path / f"{name}.lnnb"
    path.write_bytes(data)
    proc = lnnvm(host_build.runner, "verify", path)
    assert proc.returncode == 3, proc.stderr
    assert f": {status} at byte {'' if offset is None else f'{offset}:'}" in proc.stderr
    with pytest.raises(VMError) as err:
        CVM(data, library=host_build.library)
    assert err.value.name == status
    if offset is not None:
        assert err.value.offset == offset


@pytest.mark.parametrize("name", sorted(FUSED_BROKEN))
def test_loader_checks_the_fused_ops(tmp_path, host_build, name):
    assert_refused(tmp_path, host_build, name, *FUSED_BROKEN[name])


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_loader_rejects_crafted_file(tmp_path, host_build, name):
    assert_refused(tmp_path, host_build, name, BROKEN[name], name)


def test_every_status_code_has_a_crafted_file_or_a_runtime_test():
    """No error class is left untested (E_CPU is tested in test_targets with the AVX2 build on an emulated CPU
    without AVX; E_CHECKED, of the checked build's lnn_run, in test_sanitizers; E_STEPS, a LOOPW out of trips at
    run time, in test_adaptive)."""
    runtime_tested = {"OK", "E_ARG", "E_ALIGN", "E_ARENA", "E_BATCH", "E_NOT_READY", "E_CPU", "E_CHECKED",
                      "E_NOT_LINKED", "E_STEPS"}  # E_NOT_LINKED: test_footprint, a selective build
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


# ---- format 1.1: int8 weights (the _Q8 products) and the bundled test set (section TESTS) ----

I8 = isa.const("DT_I8")
K8, M8 = 5, 6
_rng = np.random.default_rng(8)
Q8 = _rng.integers(-128, 128, (M8, K8)).astype(np.int8)
SCALE8 = _rng.uniform(1e-3, 2e-2, M8).astype(np.float32)
BIAS8 = _rng.uniform(-1, 1, M8).astype(np.float32)
# constants: scale at 0, bias at 32, Q at 64, Qt at 96, ending with Qt's last byte (an f32 tensor of 30
# elements would not fit: the loader sizes int8 elements as 1 byte)
Q8_CONSTS = b"".join((SCALE8.tobytes(), bytes(8), BIAS8.tobytes(), bytes(8), Q8.tobytes(), bytes(2),
                      np.ascontiguousarray(Q8.T).tobytes()))
Q8_TENSORS = (
    TensorEntry((1, K8), INPUT, 0, batched=True),        # t0 x
    TensorEntry((M8, K8), CONST, 64, dtype=I8),          # t1 Q
    TensorEntry((M8,), CONST, 0),                        # t2 scale
    TensorEntry((M8,), CONST, 32),                       # t3 bias
    TensorEntry((K8, M8), CONST, 96, dtype=I8),          # t4 Qt
    TensorEntry((1, M8), OUTPUT, 0, batched=True),       # t5 y0
    TensorEntry((1, 2), ARENA, 0, batched=True),         # t6 ya
    TensorEntry((1, 4), ARENA, 16, batched=True),        # t7 yb
    TensorEntry((1, M8), OUTPUT, 1, batched=True),       # t8 y1
    TensorEntry((1, M8), ARENA, 32, batched=True),       # t9 h
    TensorEntry((1, M8), OUTPUT, 2, batched=True),       # t10 y2
    TensorEntry((M8 - 1,), CONST, 0),                    # t11 a scale one too short
    TensorEntry((M8 * K8,), CONST, 64, dtype=I8),        # t12 Q as a vector
    TensorEntry((M8, K8), CONST, 0),                     # t13 an f32 weight of Q's shape
    TensorEntry((1, K8), ARENA, 36, batched=True),       # t14 an x inside h
)
# y0 = LINEAR_Q8(x); y1 = LINEAR_TQ8 into ya | yb, concatenated; y2 = MATMUL_NTQ8(x) + MATMUL_TQ8(x)
Q8_CODE = (E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 2), E("PUSH", 0, 3), E("LINEAR_Q8", 0, 5), E("DROP"),
           E("PUSH", 0, 0), E("PUSH", 0, 4), E("PUSH", 0, 2), E("PUSH", 0, 3), E("LINEAR_TQ8", 2, 6),
           E("PUSH", 0, 7), E("CONCAT", 1, 8), E("DROP"),
           E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 2), E("MATMUL_NTQ8", 0, 9),
           E("PUSH", 0, 0), E("PUSH", 0, 4), E("PUSH", 0, 2), E("MATMUL_TQ8", 1, 10),
           E("ADD", 0, 10), E("DROP"))


def q8_expected(x: np.ndarray) -> list[np.ndarray]:
    """The outputs in float64 from the definition: (x @ q.T) * scale (+ bias)."""
    prod = (x.astype(np.float64) @ Q8.astype(np.float64).T) * SCALE8
    return [prod + BIAS8, prod + BIAS8, 2 * prod]


def q8_tests(count: int = 9, tolerance: float = 1e-5) -> lnnb.TestSet:
    x = np.random.default_rng(3).uniform(-2, 2, (count, K8)).astype(np.float32)
    return lnnb.TestSet(x, np.concatenate(q8_expected(x), axis=1).astype(np.float32), tolerance)


def q8_model(*code: int, tensors: tuple[TensorEntry, ...] = Q8_TENSORS, tests: lnnb.TestSet | None = None,
             consts: bytes = Q8_CONSTS) -> bytes:
    return lnnb.write(Program(tensors=tensors, consts=consts, code=code or Q8_CODE, arena_fixed=0, arena_row=64,
                              num_inputs=1, num_outputs=3, tests=tests))


def q8_with_tensor(index: int, **changes) -> bytes:
    tensors = list(Q8_TENSORS)
    tensors[index] = replace(tensors[index], **changes)
    return q8_model(tensors=tuple(tensors))


def with_tests_field(offset: int, fmt: str, value) -> bytes:
    """The int8 model with its test set, one field of the TESTS section patched (offset inside the section)."""
    data = q8_model(tests=q8_tests())
    start, _ = lnnb.section_offsets(data)[isa.const("SEC_TESTS")]
    return patched(data, start + offset, fmt, value)


def misaligned_tests_section() -> bytes:
    """The TESTS section (the last one) moved one byte on: in bounds, not overlapping, not 4-aligned."""
    data = bytearray(q8_model(tests=q8_tests()))
    start, _ = lnnb.section_offsets(bytes(data))[isa.const("SEC_TESTS")]
    entry = next(64 + 16 * i for i in range(struct.unpack_from("<I", data, 16)[0])
                 if struct.unpack_from("<I", data, 64 + 16 * i)[0] == isa.const("SEC_TESTS"))
    data[start:start] = b"\0"
    struct.pack_into("<I", data, entry + 4, start + 1)
    struct.pack_into("<I", data, 8, len(data))
    return lnnb.refresh_crc(bytes(data))


Q8_BROKEN = {
    "i8_tensor_in_the_arena": (q8_with_tensor(7, region=ARENA, dtype=I8), "E_TENSOR"),
    "i8_tensor_as_an_output": (q8_with_tensor(5, dtype=I8), "E_TENSOR"),
    "i8_tensor_past_the_constants": (q8_with_tensor(4, offset=100), "E_TENSOR_BOUNDS"),
    "i8_operand_to_add": (q8_model(E("PUSH", 0, 1), E("PUSH", 0, 1), E("ADD", 0, 9), E("DROP")), "E_DTYPE"),
    "i8_weight_to_linear": (q8_model(E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 3), E("LINEAR", 0, 5),
                                     E("DROP")), "E_DTYPE"),
    "i8_operand_to_copy": (q8_model(E("PUSH", 0, 12), E("COPY", 0, 9), E("DROP")), "E_DTYPE"),
    "f32_weight_to_linear_q8": (q8_model(E("PUSH", 0, 0), E("PUSH", 0, 13), E("PUSH", 0, 2), E("PUSH", 0, 3),
                                         E("LINEAR_Q8", 0, 5), E("DROP")), "E_DTYPE"),
    "i8_scale": (q8_model(E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 12), E("PUSH", 0, 3),
                          E("LINEAR_Q8", 0, 5), E("DROP")), "E_DTYPE"),
    "scale_too_short": (q8_model(E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 11), E("PUSH", 0, 3),
                                 E("LINEAR_Q8", 0, 5), E("DROP")), "E_SHAPE"),
    "scale_too_short_t": (q8_model(E("PUSH", 0, 0), E("PUSH", 0, 4), E("PUSH", 0, 11), E("MATMUL_TQ8", 1, 9),
                                   E("DROP")), "E_SHAPE"),
    "q_not_rank_2": (q8_model(E("PUSH", 0, 0), E("PUSH", 0, 12), E("PUSH", 0, 2), E("MATMUL_NTQ8", 0, 9),
                              E("DROP")), "E_SHAPE"),
    "qt_not_transposed": (q8_model(E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 2), E("MATMUL_TQ8", 1, 9),
                                   E("DROP")), "E_SHAPE"),
    "tq8_columns_do_not_add_up": (q8_model(E("PUSH", 0, 0), E("PUSH", 0, 4), E("PUSH", 0, 2), E("PUSH", 0, 3),
                                           E("LINEAR_TQ8", 1, 6), E("DROP")), "E_SHAPE"),
    "tq8_destination_overlaps_x": (q8_model(E("PUSH", 0, 14), E("PUSH", 0, 4), E("PUSH", 0, 2), E("PUSH", 0, 3),
                                            E("LINEAR_TQ8", 1, 9), E("DROP")), "E_ALIAS"),
    "tests_bad_magic": (with_tests_field(0, "<4s", b"LNNX"), "E_TESTS"),
    "tests_count_0": (with_tests_field(4, "<I", 0), "E_TESTS"),
    "tests_in_floats_mismatch": (q8_model(tests=lnnb.TestSet(np.zeros((2, K8 + 1), np.float32),
                                                             np.zeros((2, 3 * M8), np.float32), 1e-5)), "E_TESTS"),
    "tests_out_floats_mismatch": (q8_model(tests=lnnb.TestSet(np.zeros((2, K8), np.float32),
                                                              np.zeros((2, M8), np.float32), 1e-5)), "E_TESTS"),
    "tests_wrong_size": (with_tests_field(4, "<I", 10), "E_TESTS"),
    "tests_size_overflows_32_bits": (with_tests_field(4, "<I", 0x80000000), "E_TESTS"),
    "tests_tolerance_nan": (with_tests_field(16, "<f", float("nan")), "E_TESTS"),
    "tests_tolerance_negative": (with_tests_field(16, "<f", -1e-5), "E_TESTS"),
    "tests_misaligned": (misaligned_tests_section(), "E_SECTION"),
}
BROKEN["E_TESTS"] = with_tests_field(0, "<4s", b"LNNX")


@pytest.mark.parametrize("name", sorted(Q8_BROKEN))
def test_loader_checks_int8_weights_and_the_test_set(tmp_path, host_build, name):
    assert_refused(tmp_path, host_build, name, *Q8_BROKEN[name])


def test_test_set_errors_name_the_field(host_build):
    data = q8_model(tests=q8_tests())
    start, _ = lnnb.section_offsets(data)[isa.const("SEC_TESTS")]
    for offset, fmt, value in ((0, "<4s", b"LNNX"), (4, "<I", 0), (8, "<I", K8 + 1), (12, "<I", 1),
                               (16, "<f", float("inf"))):
        with pytest.raises(VMError) as err:
            CVM(patched(data, start + offset, fmt, value), library=host_build.library)
        assert (err.value.name, err.value.offset) == ("E_TESTS", start + offset)


@pytest.mark.parametrize("plan", [True, False])
def test_int8_model_runs_on_every_kernel_set(host_build, plan):
    """LINEAR_Q8, LINEAR_TQ8 into two destinations, MATMUL_NTQ8 and MATMUL_TQ8: numpy's (x @ q.T) * scale + bias,
    on the run plan and the instruction interpreter, every kernel set, batches below and above the blocking."""
    data = q8_model(tests=q8_tests())
    x = np.random.default_rng(5).uniform(-2, 2, (13, K8)).astype(np.float32)
    vm = CVM(data, max_batch=13, library=host_build.library)
    assert vm.use_plan(plan) == plan
    for isa_name in ("scalar", "sse3", "avx2", "avx512"):
        try:
            vm.use_kernels(isa_name)
        except VMError:
            assert not (isa_name == "avx512" and HOST_AVX512), "avx512 is compiled in and this CPU has AVX-512"
            continue  # not compiled in or not supported by this processor
        for rows in (1, 2, 7, 13):
            got = vm.run([x[:rows]])
            for y, want in zip(got, q8_expected(x[:rows]), strict=True):
                np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_test_set_is_reachable_through_the_api(host_build):
    """lnn_get_tests through CVM.tests(): the counts, the tolerance and the cases, copied out of the model buffer."""
    tests = q8_tests(count=4, tolerance=2.5e-4)
    assert CVM(q8_model(), library=host_build.library).tests() is None
    vm = CVM(q8_model(tests=tests), library=host_build.library)
    inputs, expected, tolerance = vm.tests()
    assert inputs.shape == (4, K8) and expected.shape == (4, 3 * M8)
    assert tolerance == np.float32(2.5e-4)
    np.testing.assert_array_equal(inputs, tests.inputs)
    np.testing.assert_array_equal(expected, tests.outputs)
    inputs[:] = 0  # a copy: the model's bytes are untouched
    np.testing.assert_array_equal(vm.tests()[0], tests.inputs)


def test_runner_runs_the_bundled_test_set(tmp_path, host_build):
    good = tmp_path / "good.lnnb"
    good.write_bytes(q8_model(tests=q8_tests()))
    for extra in ((), ("--kernels", "scalar"), ("--no-plan",)):
        proc = lnnvm(host_build.runner, "test", good, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert re.fullmatch(r"tests: 9 cases, max_abs_err \S+, tolerance 1e-05, PASSED\n", proc.stdout)
    assert "tests: 9" in lnnvm(host_build.runner, "info", good).stdout

    tests = q8_tests()
    tests.outputs[4, 7] += 1e-3  # case 4, output 1, element 1
    bad = tmp_path / "bad.lnnb"
    bad.write_bytes(q8_model(tests=tests))
    proc = lnnvm(host_build.runner, "test", bad)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("case 4: abs_err 0.001")
    assert "at output 1 element 1" in lines[0]
    assert re.fullmatch(r"tests: 9 cases, max_abs_err 0\.001\d*, tolerance 1e-05, FAILED", lines[1])

    none = tmp_path / "none.lnnb"
    none.write_bytes(q8_model())
    proc = lnnvm(host_build.runner, "test", none)
    assert proc.returncode == 2 and "no bundled test set" in proc.stderr


def test_disassembler_shows_int8_tensors_and_the_q8_ops(tmp_path, host_build):
    path = tmp_path / "q8.lnnb"
    path.write_bytes(q8_model())
    listing = lnnvm(host_build.runner, "disasm", path).stdout
    assert re.search(r"PUSH\s+t1\s+const\+64 \[6,5\] i8", listing)
    assert re.search(r"LINEAR_TQ8\s+t6\.\.t7\s+arena\.row\+0 \[B,2\] f32", listing)
    for op in ("LINEAR_Q8", "MATMUL_NTQ8", "MATMUL_TQ8"):
        assert op in listing


# ---- state: STATE tensors persist between runs (header state_row, region STATE) ----

STATE = isa.const("REG_STATE")
# t0 x[B,2] input, t1 s[B,2] state, t2 y[B,2] output, t3 h[B,2] arena (the same offset as s, another part),
# t4 [B,2] state over the second half of s, t5 [B,4] state over all of s and t4 (state_row 16)
STATE_TENSORS = (
    TensorEntry((1, 2), INPUT, 0, batched=True),
    TensorEntry((1, 2), STATE, 0, batched=True),
    TensorEntry((1, 2), OUTPUT, 0, batched=True),
    TensorEntry((1, 2), ARENA, 0, batched=True),
    TensorEntry((1, 2), STATE, 4, batched=True),
    TensorEntry((1, 4), STATE, 0, batched=True),
)
# s = s + x (read before any write: the previous run's value); y = s: the running sum of every stream
STATE_CODE = (E("PUSH", 0, 1), E("PUSH", 0, 0), E("ADD", 0, 1), E("COPY", 0, 2), E("DROP"))


def stateful(*code: int, tensors: tuple[TensorEntry, ...] = STATE_TENSORS, state_row: int = 16,
             arena_fixed: int = 0, arena_row: int = 16, tests: lnnb.TestSet | None = None) -> bytes:
    return lnnb.write(Program(tensors=tensors, consts=b"", code=code or STATE_CODE, arena_fixed=arena_fixed,
                              arena_row=arena_row, num_inputs=1, num_outputs=1, state_row=state_row, tests=tests))


def state_with_tensor(index: int, **changes) -> bytes:
    tensors = list(STATE_TENSORS)
    tensors[index] = replace(tensors[index], **changes)
    return stateful(tensors=tuple(tensors))


S_AT = TENSORS_AT + 32  # the entry of t1, the state s
S_CODE_AT = lnnb.section_offsets(stateful())[isa.const("SEC_CODE")][0]
STATE_BROKEN = {
    "state_row_not_a_multiple_of_4": (stateful(state_row=10), "E_HEADER", 36),
    "state_row_over_the_limit": (stateful(state_row=isa.const("MAX_STATE_ROW") + 4), "E_HEADER", 36),
    "state_tensor_unbatched": (state_with_tensor(1, batched=False), "E_TENSOR", S_AT + 2),
    "state_tensor_u32": (state_with_tensor(1, dtype=U32), "E_TENSOR", S_AT),
    "state_tensor_i8": (state_with_tensor(1, dtype=I8), "E_TENSOR", S_AT),
    "state_tensor_strided": (state_with_tensor(1, stride=8), "E_TENSOR", S_AT + 24),
    "state_tensor_past_state_row": (state_with_tensor(1, offset=12), "E_TENSOR_BOUNDS", S_AT + 20),
    "state_tensor_misaligned": (state_with_tensor(1, offset=2), "E_TENSOR_BOUNDS", S_AT + 20),
    "state_tensor_in_a_stateless_model": (stateful(state_row=0), "E_TENSOR_BOUNDS", S_AT + 20),
    "region_past_state": (state_with_tensor(3, region=STATE + 1), "E_TENSOR", TENSORS_AT + 3 * 32 + 2),
    # two views of the state follow the arena's rules: the same range in place, no partial overlap, and no
    # overlap at all for the ops that never write over an operand
    "state_partial_overlap": (stateful(E("PUSH", 0, 1), E("PUSH", 0, 0), E("ADD", 0, 4), E("COPY", 0, 2),
                                       E("DROP")), "E_ALIAS", S_CODE_AT + 8),
    "state_concat_over_its_operand": (stateful(E("PUSH", 0, 1), E("PUSH", 0, 0), E("CONCAT", 1, 5), E("DROP"),
                                               E("PUSH", 0, 0), E("COPY", 0, 2), E("DROP")), "E_ALIAS", S_CODE_AT + 8),
}
assert lnnb.section_offsets(stateful())[isa.const("SEC_TENSORS")][0] == TENSORS_AT


@pytest.mark.parametrize("name", sorted(STATE_BROKEN))
def test_loader_checks_state(tmp_path, host_build, name):
    assert_refused(tmp_path, host_build, name, *STATE_BROKEN[name])


def test_state_rules_accept_what_the_arena_rules_accept(host_build):
    """The state read before any write, written in place (the identical range), zeroed, and read next to an
    arena tensor at the same offset (another part of the arena: no overlap)."""
    for code in (STATE_CODE,
                 (E("ZERO", 0, 5), E("DROP"), E("PUSH", 0, 0), E("COPY", 0, 2), E("DROP")),
                 (E("PUSH", 0, 1), E("NEG", 0, 3), E("NEG", 0, 1), E("COPY", 0, 2), E("DROP"))):
        CVM(stateful(*code), library=host_build.library)


def _running_sums(x: np.ndarray) -> np.ndarray:
    """What STATE_CODE gives for time-major x (T, batch, 2) from zero state."""
    return np.cumsum(x, axis=0, dtype=np.float32)


@pytest.mark.parametrize("plan", [True, False])
def test_state_persists_between_runs_until_a_reset_or_a_new_batch(host_build, plan):
    x = np.random.default_rng(4).uniform(-1, 1, (5, 3, 2)).astype(np.float32)
    vm = CVM(stateful(), max_batch=3, library=host_build.library)
    assert vm.use_plan(plan) == plan
    for isa_name in ("scalar", "sse3", "avx2", "avx512"):
        try:
            vm.use_kernels(isa_name)
        except VMError:
            continue
        vm.reset()
        got = np.stack([vm.run([x[t]])[0] for t in range(len(x))])
        np.testing.assert_array_equal(got, _running_sums(x))
        vm.reset()
        np.testing.assert_array_equal(vm.run([x[0]])[0], x[0])
        # a batch of 2 after a batch of 3: the rows would be other streams' state, so it starts from zero
        np.testing.assert_array_equal(vm.run([x[1, :2]])[0], x[1, :2])
        np.testing.assert_array_equal(vm.run([x[2, :2]])[0], x[1, :2] + x[2, :2])


def test_the_first_run_and_a_reset_start_from_zero_whatever_the_arena_held(host_build):
    """lnn_init and lnn_reset zero the state (the run after them does, for its batch): garbage left in the
    caller's arena never reaches a result."""
    x = np.array([[1, 2], [3, 4]], np.float32)
    vm = CVM(stateful(), max_batch=2, library=host_build.library)
    vm._arena[:] = 0xFF  # NaN everywhere
    np.testing.assert_array_equal(vm.run([x])[0], x)
    vm._arena[:] = 0xFF
    vm.reset()
    np.testing.assert_array_equal(vm.run([x])[0], x)
    np.testing.assert_array_equal(vm.run([x])[0], 2 * x)


def test_reset_of_a_stateless_model_and_of_a_model_not_ready(host_build):
    import ctypes

    from lnnedge.runtime import load_library

    vm = CVM(VALID, library=host_build.library)
    x = np.array([[1, -1]], np.float32)
    vm.reset()  # a no-op
    np.testing.assert_allclose(vm.run([x])[0], expected_output(x), rtol=1e-6)
    lib = load_library(str(host_build.library))
    model = ctypes.create_string_buffer(lib.lnn_model_size())
    assert lib.lnn_status_name(lib.lnn_reset(ctypes.addressof(model))).decode() == "E_NOT_READY"
    assert lib.lnn_status_name(lib.lnn_reset(None)).decode() == "E_ARG"


@pytest.mark.parametrize("fixed, row, state_row", [(0, 16, 16), (100, 16, 16), (0, 0, 8), (36, 12, 12), (0, 16, 0),
                                                    (4, 0, 0)])
def test_arena_size_and_max_batch_follow_the_state_layout(host_build, fixed, row, state_row):
    """lnn_arena_size(b) = align64(align64(fixed) + row * b) + state_row * b (the stateless formula without
    state), and an arena of exactly that size holds b rows and no more."""
    import ctypes

    from lnnedge.runtime import load_library

    lib = load_library(str(host_build.library))
    tensors = STATE_TENSORS[:3] if state_row else (STATE_TENSORS[0], STATE_TENSORS[2])
    code = (E("PUSH", 0, 0), E("COPY", 0, 2 if state_row else 1), E("DROP"))
    data = lnnb.write(Program(tensors=tensors, consts=b"", code=code, arena_fixed=fixed, arena_row=row,
                              num_inputs=1, num_outputs=1, state_row=state_row))
    program = lnnb.read(data)
    buf = ctypes.create_string_buffer(data, len(data))
    model = ctypes.create_string_buffer(lib.lnn_model_size())
    for batch in (1, 2, 3, 7, 64):
        need = lib.lnn_arena_size(ctypes.addressof(buf), len(data), batch)
        assert need == program.arena_size(batch)
        arena = ctypes.create_string_buffer(max(need, 4))
        assert lib.lnn_init(ctypes.addressof(model), ctypes.addressof(buf), len(data), ctypes.addressof(arena),
                            need) == 0
        if row or state_row:
            assert lib.lnn_max_batch(ctypes.addressof(model)) == batch
        else:
            assert lib.lnn_max_batch(ctypes.addressof(model)) == 0xFFFFFFFF


def test_state_row_without_state_tensors_is_accepted(host_build):
    """Pointless but valid: the arena only grows by the unused state part."""
    data = lnnb.write(program(state_row=64))
    x = np.array([[1, -1], [0.5, 2]], np.float32)
    vm = CVM(data, max_batch=2, library=host_build.library)
    np.testing.assert_allclose(vm.run([x])[0], expected_output(x), rtol=1e-6)
    assert len(vm._arena) == lnnb.read(data).arena_size(2) == 64 + 2 * 64


def test_an_arena_with_room_for_the_rows_but_not_their_state_names_state_row(host_build):
    import ctypes

    from lnnedge.runtime import load_library

    lib = load_library(str(host_build.library))
    data = stateful()
    buf = ctypes.create_string_buffer(data, len(data))
    model = ctypes.create_string_buffer(lib.lnn_model_size())
    arena = ctypes.create_string_buffer(128)
    for size, offset in ((8, 28), (16, 36), (64 + 15, 36)):  # row too small (arena_row at 28), then the state
        status = lib.lnn_init(ctypes.addressof(model), ctypes.addressof(buf), len(data), ctypes.addressof(arena),
                              size)
        assert (lib.lnn_status_name(status).decode(), lib.lnn_error_offset(ctypes.addressof(model))) == \
            ("E_ARENA", offset)
    assert lib.lnn_init(ctypes.addressof(model), ctypes.addressof(buf), len(data), ctypes.addressof(arena), 80) == 0


# ---- SPLIT: a split along its last axis over A destinations ----

# t0 x[B,5] input, t1 ya[B,2] / t2 yb[B,3] outputs, t3 h[B,5], t4 pa[B,2] / t5 pb[B,3] adjacent, t6 oa[B,2] over
# the end of h / t7 ob[B,3], t8 da[B,2] / t9 db[B,3] overlapping, t10 ka[B,2] / t11 kc[1,3] a constant,
# t12 wa[B,1,2] / t13 wb[B,3], t14 ua[1,2] unbatched / t15 ub[B,3], t16 z[B] / t17 z2[B], t18 sa[B,2] / t19 sb[B,3]
# state, t20 a u32 constant [5]
SPLIT_TENSORS = (
    TensorEntry((1, 5), INPUT, 0, batched=True),
    TensorEntry((1, 2), OUTPUT, 0, batched=True),
    TensorEntry((1, 3), OUTPUT, 1, batched=True),
    TensorEntry((1, 5), ARENA, 0, batched=True),
    TensorEntry((1, 2), ARENA, 32, batched=True),
    TensorEntry((1, 3), ARENA, 40, batched=True),
    TensorEntry((1, 2), ARENA, 16, batched=True),
    TensorEntry((1, 3), ARENA, 64, batched=True),
    TensorEntry((1, 2), ARENA, 80, batched=True),
    TensorEntry((1, 3), ARENA, 84, batched=True),
    TensorEntry((1, 2), ARENA, 96, batched=True),
    TensorEntry((1, 3), CONST, 0),
    TensorEntry((1, 1, 2), ARENA, 112, batched=True),
    TensorEntry((1, 3), ARENA, 128, batched=True),
    TensorEntry((1, 2), ARENA, 0),
    TensorEntry((1, 3), ARENA, 144, batched=True),
    TensorEntry((1,), ARENA, 160, batched=True),
    TensorEntry((1,), ARENA, 164, batched=True),
    TensorEntry((1, 2), STATE, 0, batched=True),
    TensorEntry((1, 3), STATE, 8, batched=True),
    TensorEntry((5,), CONST, 0, dtype=U32),
)
SPLIT_CODE = (E("PUSH", 0, 0), E("SPLIT", 2, 1), E("DROP"))


def split_model(*code: int) -> bytes:
    return lnnb.write(Program(tensors=SPLIT_TENSORS, consts=bytes(32), code=code or SPLIT_CODE, arena_fixed=16,
                              arena_row=192, num_inputs=1, num_outputs=2, state_row=20))


def _split_into(first: int, *before: int, operand: int = 0) -> bytes:
    return split_model(*before, E("PUSH", 0, operand), E("SPLIT", 2, first), E("DROP"))


SPLIT_AT = lnnb.section_offsets(split_model())[isa.const("SEC_CODE")][0] + 4  # the SPLIT word of _split_into
SPLIT_BROKEN = {
    "split_without_destinations": (split_model(E("PUSH", 0, 0), E("SPLIT", 0, 1), E("DROP")), "E_OPERAND"),
    "split_too_many_destinations": (split_model(E("PUSH", 0, 0), E("SPLIT", MAX_DSTS + 1, 1), E("DROP")),
                                    "E_OPERAND"),
    "split_past_the_tensor_table": (_split_into(len(SPLIT_TENSORS) - 1), "E_OPERAND"),
    "split_parts_do_not_add_up": (_split_into(2), "E_SHAPE"),  # 3 + 5 columns of 5
    "split_one_part_too_narrow": (split_model(E("PUSH", 0, 0), E("SPLIT", 1, 1), E("DROP")), "E_SHAPE"),
    "split_part_of_another_rank": (_split_into(12), "E_SHAPE"),
    "split_part_unbatched": (_split_into(14), "E_SHAPE"),
    "split_along_the_batch_axis": (split_model(E("ZERO", 0, 16), E("SPLIT", 1, 17), E("DROP")), "E_SHAPE"),
    "split_part_overlaps_the_operand": (split_model(E("PUSH", 0, 0), E("COPY", 0, 3), E("SPLIT", 2, 6),
                                                    E("DROP")), "E_ALIAS"),
    "split_parts_overlap_each_other": (_split_into(8), "E_ALIAS"),
    "split_writes_a_constant": (_split_into(10), "E_READONLY"),
    "split_of_a_u32_operand": (_split_into(1, operand=20), "E_DTYPE"),
    "split_of_an_operand_never_written": (_split_into(4, operand=3), "E_UNINIT"),
}


@pytest.mark.parametrize("name", sorted(SPLIT_BROKEN))
def test_loader_checks_split(tmp_path, host_build, name):
    data, status = SPLIT_BROKEN[name]
    at_the_split = name.startswith("split_of") or name in (
        "split_parts_do_not_add_up", "split_part_unbatched", "split_parts_overlap_each_other",
        "split_writes_a_constant")
    assert_refused(tmp_path, host_build, name, data, status, SPLIT_AT if at_the_split else None)


def _split_expected(x: np.ndarray) -> list[np.ndarray]:
    return [x[:, :2], x[:, 2:]]


@pytest.mark.parametrize("code", [
    SPLIT_CODE,
    # every destination counts as written: into the arena, then each part copied out
    (E("PUSH", 0, 0), E("SPLIT", 2, 4), E("DROP"), E("PUSH", 0, 5), E("COPY", 0, 2), E("DROP"),
     E("PUSH", 0, 4), E("COPY", 0, 1), E("DROP")),
    # into the state, read back in the same run
    (E("PUSH", 0, 0), E("SPLIT", 2, 18), E("COPY", 0, 1), E("DROP"), E("PUSH", 0, 19), E("COPY", 0, 2),
     E("DROP")),
], ids=["outputs", "arena", "state"])
@pytest.mark.parametrize("plan", [True, False])
def test_split_runs_on_every_kernel_set(host_build, code, plan):
    x = np.random.default_rng(6).uniform(-3, 3, (9, 5)).astype(np.float32)
    vm = CVM(split_model(*code), max_batch=9, library=host_build.library)
    assert vm.use_plan(plan) == plan
    for isa_name in ("scalar", "sse3", "avx2", "avx512"):
        try:
            vm.use_kernels(isa_name)
        except VMError:
            continue
        for rows in (1, 4, 9):
            for got, want in zip(vm.run([x[:rows]]), _split_expected(x[:rows]), strict=True):
                np.testing.assert_array_equal(got, want)


# x[B,2,3] and u[2,3] (unbatched) split along their last axis: three parts of a rank-3 batched tensor (rows of
# every batch row and of every row inside it), two of an unbatched one
SPLIT3_TENSORS = (
    TensorEntry((1, 2, 3), INPUT, 0, batched=True),
    TensorEntry((2, 3), INPUT, 1),
    TensorEntry((1, 2, 1), OUTPUT, 0, batched=True),
    TensorEntry((1, 2, 1), OUTPUT, 1, batched=True),
    TensorEntry((1, 2, 1), OUTPUT, 2, batched=True),
    TensorEntry((2, 2), OUTPUT, 3),
    TensorEntry((2, 1), OUTPUT, 4),
)
SPLIT3 = lnnb.write(Program(tensors=SPLIT3_TENSORS, consts=b"", arena_fixed=0, arena_row=0, num_inputs=2,
                            num_outputs=5, code=(E("PUSH", 0, 0), E("SPLIT", 3, 2), E("DROP"),
                                                 E("PUSH", 0, 1), E("SPLIT", 2, 5), E("DROP"))))


@pytest.mark.parametrize("plan", [True, False])
def test_split_of_rank_3_and_unbatched_tensors(host_build, plan):
    rng = np.random.default_rng(7)
    x = rng.uniform(-3, 3, (4, 2, 3)).astype(np.float32)
    u = rng.uniform(-3, 3, (2, 3)).astype(np.float32)
    vm = CVM(SPLIT3, max_batch=4, library=host_build.library)
    assert vm.use_plan(plan) == plan
    for rows in (1, 4):
        got = vm.run([x[:rows], u])
        want = [*np.split(x[:rows], 3, axis=2), u[:, :2], u[:, 2:]]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.reshape(w.shape), w)


def test_disassembler_shows_split_and_state(tmp_path, host_build):
    path = tmp_path / "split.lnnb"
    path.write_bytes(split_model(E("PUSH", 0, 0), E("SPLIT", 2, 18), E("COPY", 0, 1), E("DROP"), E("PUSH", 0, 19),
                                 E("COPY", 0, 2), E("DROP")))
    listing = lnnvm(host_build.runner, "disasm", path).stdout
    assert re.search(r"SPLIT\s+t18\.\.t19\s+state\.row\+0 \[B,2\] f32", listing)
    assert re.search(r"PUSH\s+t19\s+state\.row\+8 \[B,3\] f32", listing)
    assert "state_row: 20" in lnnvm(host_build.runner, "info", path).stdout


# ---- the runner on a stateful model: chunks as time steps, stream, test ----

def _time_major(steps: int = 6, streams: int = 3, seed: int = 9) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, (steps, streams, 2)).astype(np.float32)


def test_runner_runs_a_stateful_models_chunks_as_time_steps(tmp_path, host_build):
    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful())
    x = _time_major()
    x.tofile(tmp_path / "in.f32")
    for extra in ((), ("--repeat", "3"), ("--no-plan",), ("--kernels", "scalar")):
        proc = lnnvm(host_build.runner, "run", path, "--in", tmp_path / "in.f32", "--out", tmp_path / "out.f32",
                     "--batch", "3", *extra)
        assert proc.returncode == 0, proc.stderr
        got = np.fromfile(tmp_path / "out.f32", dtype="<f4").reshape(x.shape)
        np.testing.assert_array_equal(got, _running_sums(x))  # one pass from zero state, whatever the repeats
    # a batch above the rows: one step of 18 streams
    proc = lnnvm(host_build.runner, "run", path, "--in", tmp_path / "in.f32", "--out", tmp_path / "out.f32",
                 "--batch", "64")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.fromfile(tmp_path / "out.f32", dtype="<f4"), x.ravel())
    assert "state_row: 16\n" in lnnvm(host_build.runner, "info", path).stdout
    (tmp_path / "valid.lnnb").write_bytes(VALID)
    assert "state_row: 0\n" in lnnvm(host_build.runner, "info", tmp_path / "valid.lnnb").stdout


@pytest.mark.parametrize("extra, message", [
    (("--batch", "4"), "18 rows is not a multiple of 4"),
    (("--batch", "3", "--threads", "2"), "drop --threads"),
])
def test_runner_refuses_what_would_break_the_time_steps(tmp_path, host_build, extra, message):
    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful())
    _time_major().tofile(tmp_path / "in.f32")
    proc = lnnvm(host_build.runner, "run", path, "--in", tmp_path / "in.f32", "--out", tmp_path / "out.f32", *extra)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def _stream(runner, path, text: str):
    import subprocess

    return subprocess.run([str(runner), "stream", str(path)], input=text, capture_output=True, text=True,
                          timeout=60)


def test_stream_answers_every_line_and_carries_the_state(tmp_path, host_build):
    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful())
    proc = _stream(host_build.runner, path, "1 2\n3 4\nreset\n  5\t6 \r\n0.25 nan\n-inf 1e-3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1 2\n4 6\nreset\n5 6\n5.25 nan\n-inf nan\n"  # the state carries the NaN
    assert _stream(host_build.runner, path, "").stdout == ""
    # a stateless model: each line is one batch-1 run
    valid = tmp_path / "valid.lnnb"
    valid.write_bytes(VALID)
    x = np.array([[1, -1], [0.5, 2]], np.float32)
    proc = _stream(host_build.runner, valid, "1 -1\n0.5 2\n")
    assert proc.returncode == 0, proc.stderr
    got = np.array([[float(v) for v in line.split()] for line in proc.stdout.splitlines()], np.float32)
    np.testing.assert_array_equal(got, expected_output(x))


def test_stream_answers_each_line_before_the_next_arrives(tmp_path, host_build):
    import subprocess

    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful())
    proc = subprocess.Popen([str(host_build.runner), "stream", str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        for line, answer in (("1 2", "1 2"), ("3 4", "4 6"), ("reset", "reset"), ("1 1", "1 1")):
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == answer + "\n"
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


@pytest.mark.parametrize("text, message", [
    ("1 2\n1 x\n", "standard input line 2: 'x' is not a number"),
    ("1 2\n3 4\n1 2 3\n", "standard input line 3: expected 2 values (one row of every input, in order) or "
                          "'reset', got 3"),
    ("\n", "line 1: expected 2 values"),
    ("reset now\n", "line 1: 'reset' is not a number"),
    ("1 2\x003\n", "line 1: contains a NUL byte"),
    ("1 2\n1,5 2\n", "line 2: '1,5' is not a number"),
])
def test_stream_stops_at_a_malformed_line_naming_it(tmp_path, host_build, text, message):
    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful())
    proc = _stream(host_build.runner, path, text)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    good = text.count("\n") - 1  # every line before the bad one answered, nothing after it
    assert proc.stdout.count("\n") == good and not proc.stdout.endswith(" ")


def test_stream_usage_errors(tmp_path, host_build):
    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful())
    assert lnnvm(host_build.runner, "stream", "-").returncode == 2
    proc = lnnvm(host_build.runner, "stream", path, "--bogus")
    assert proc.returncode == 2 and "unknown option" in proc.stderr
    proc = lnnvm(host_build.runner, "stream", path, "--kernels", "nonesuch")
    assert proc.returncode == 2 and "--kernels nonesuch" in proc.stderr


def stateful_with_tests(x: np.ndarray) -> bytes:
    """The running sum with a second, unbatched input (unused) so that `lnnvm test` runs one case per lnn_run,
    and a test set whose cases are first steps from zero state (expected y = x)."""
    tensors = (*STATE_TENSORS, TensorEntry((1,), INPUT, 1))
    u = np.zeros((len(x), 1), np.float32)
    tests = lnnb.TestSet(np.concatenate([x, u], axis=1), x.copy(), 0.0)
    return lnnb.write(Program(tensors=tensors, consts=b"", code=STATE_CODE, arena_fixed=0, arena_row=16,
                              num_inputs=2, num_outputs=1, state_row=16, tests=tests))


def test_runner_tests_each_case_of_a_stateful_model_from_zero_state(tmp_path, host_build):
    x = _time_major()[0]
    for name, data in (("batched", stateful(tests=lnnb.TestSet(x, x.copy(), 0.0))),
                       ("one_per_run", stateful_with_tests(x))):
        path = tmp_path / f"{name}.lnnb"
        path.write_bytes(data)
        proc = lnnvm(host_build.runner, "test", path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout == "tests: 3 cases, max_abs_err 0, tolerance 0, PASSED\n"
    vm = CVM(stateful_with_tests(x), library=host_build.library)
    inputs, expected, tolerance = vm.tests()
    np.testing.assert_array_equal(expected, x)
    assert inputs.shape == (3, 3) and tolerance == 0.0


def test_sanitized_runner_on_stateful_and_split_models(sanitize_build, tmp_path):
    """ASan + UBSan: run (batches, repeats, both execution paths), stream and test on the crafted stateful model,
    a compiled recurrent step, and SPLIT into the state."""
    import torch
    from lnnedge.compiler import compile_module
    from test_sanitizers import _clean
    from test_sequence import GRUish, _reference

    x = _time_major(4, 5)
    x.tofile(tmp_path / "x.f32")
    sums = tmp_path / "sum.lnnb"
    sums.write_bytes(stateful())
    for batch in ("1", "5"):
        for extra in ((), ("--repeat", "2", "--no-plan")):
            proc = lnnvm(sanitize_build.runner, "run", sums, "--in", tmp_path / "x.f32", "--out",
                         tmp_path / "y.f32", "--batch", batch, *extra)
            assert proc.returncode == 0, proc.stderr
            _clean(proc)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "y.f32", "<f4").reshape(x.shape), _running_sums(x))
    proc = _stream(sanitize_build.runner, sums, "1 2\nreset\n3 4\n1 x\n")
    assert proc.returncode == 2 and proc.stdout == "1 2\nreset\n3 4\n"
    _clean(proc)
    tested = tmp_path / "tested.lnnb"
    tested.write_bytes(stateful_with_tests(x[0]))
    proc = lnnvm(sanitize_build.runner, "test", tested)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _clean(proc)

    torch.manual_seed(1)
    model = GRUish().eval()
    gru = compile_module(model, (torch.zeros(1, 3), torch.zeros(1, 8)), name="gruish", state=((1, 1),))
    path = gru.save(tmp_path / "gru.lnnb")
    xs = np.random.default_rng(2).normal(size=(6, 4, 3)).astype(np.float32)
    xs.tofile(tmp_path / "xs.f32")
    for extra in ((), ("--no-plan", "--repeat", "2")):
        proc = lnnvm(sanitize_build.runner, "run", path, "--in", tmp_path / "xs.f32", "--out", tmp_path / "ys.f32",
                     "--batch", "4", *extra)
        assert proc.returncode == 0, proc.stderr
        _clean(proc)
        got = np.fromfile(tmp_path / "ys.f32", "<f4").reshape(6, 4, 2)
        assert np.abs(got - _reference(model, xs)).max() <= 1e-5
    proc = _stream(sanitize_build.runner, path, "".join(" ".join(map(str, row)) + "\n" for row in xs[:, 0]))
    assert proc.returncode == 0, proc.stderr
    _clean(proc)
    got = np.array([[float(v) for v in line.split()] for line in proc.stdout.splitlines()], np.float32)
    assert np.abs(got - _reference(model, xs[:, :1])[:, 0]).max() <= 1e-5

    split = tmp_path / "split.lnnb"
    split.write_bytes(split_model(E("PUSH", 0, 0), E("SPLIT", 2, 18), E("COPY", 0, 1), E("DROP"), E("PUSH", 0, 19),
                                  E("COPY", 0, 2), E("DROP")))
    xsplit = np.random.default_rng(3).uniform(-1, 1, (7, 5)).astype(np.float32)
    xsplit.tofile(tmp_path / "xsplit.f32")
    for batch in ("1", "7"):
        proc = lnnvm(sanitize_build.runner, "run", split, "--in", tmp_path / "xsplit.f32", "--out",
                     tmp_path / "a.f32", "--out", tmp_path / "b.f32", "--batch", batch)
        assert proc.returncode == 0, proc.stderr
        _clean(proc)
        np.testing.assert_array_equal(np.fromfile(tmp_path / "a.f32", "<f4").reshape(7, 2), xsplit[:, :2])
        np.testing.assert_array_equal(np.fromfile(tmp_path / "b.f32", "<f4").reshape(7, 3), xsplit[:, 2:])


# ---- format 1.2: float16 constants, widened once by lnn_init into the fixed arena (tensor word 28) ----

F16, F32 = isa.const("DT_F16"), isa.const("DT_F32")
# values float16 holds exactly: 65504 (the largest), -0, 2^-24 (the smallest subnormal), 2^-14 (the smallest normal)
HALF_VALUES = {
    "W": np.array([[1, -2], [0.5, 65504], [-0.0, 2 ** -24]]),
    "b": np.array([0.25, -1, 2 ** -14]),
    "r": np.array([3, 1.5, -0.75]),
    "s": np.array(2 ** -20),  # a subnormal half
    "scale": np.array([0.5, 2 ** -10, -3]),
    "bias": np.array([1, -65504, 3]),
}
HALF_PROG = ew_program(3, 1, ("MUL", 0, 0, 1), ("ADD", 0, 3, 2))  # y = h * r + s
HALF_Q = np.array([[1, -2], [127, -128], [0, 5]], np.int8)
# the float32 copies in the fixed arena (t8, a fixed arena tensor, holds [0, 12))
HALF_WIDENED = {"W": 16, "b": 40, "r": 52, "s": 64, "scale": 68, "bias": 80}
HALF_ARENA_FIXED = 96


def half_consts(dtype: int) -> tuple[bytes, dict[str, int]]:
    """The constants blob (each tensor 4-aligned) and each tensor's offset: HALF_VALUES as float16 or float32."""
    blob, where = b"", {}
    for name, value in HALF_VALUES.items():
        where[name] = len(blob)
        blob += value.astype("<f2" if dtype == F16 else "<f4").tobytes()
        blob += bytes(-len(blob) % 4)
    for name, raw in (("prog", HALF_PROG), ("Q", HALF_Q.tobytes())):
        where[name] = len(blob)
        blob += raw + bytes(-len(raw) % 4)
    return blob, where


def half_tensors(dtype: int) -> tuple[TensorEntry, ...]:
    _, at = half_consts(dtype)

    def c(name: str) -> TensorEntry:
        return TensorEntry(HALF_VALUES[name].shape, CONST, at[name], dtype=dtype,
                           widened=HALF_WIDENED[name] if dtype == F16 else 0)

    return (
        TensorEntry((1, 2), INPUT, 0, batched=True),         # t0 x
        c("W"),                                              # t1
        c("b"),                                              # t2
        TensorEntry((1, 3), ARENA, 0, batched=True),         # t3 h
        c("r"),                                              # t4 a row
        c("s"),                                              # t5 a single value
        TensorEntry((len(HALF_PROG) // 4,), CONST, at["prog"], dtype=U32),  # t6 the program
        TensorEntry((1, 3), OUTPUT, 0, batched=True),        # t7 y
        TensorEntry((3,), ARENA, 0),                         # t8 -b, below the copies
        c("scale"),                                          # t9
        c("bias"),                                           # t10
        TensorEntry((3, 2), CONST, at["Q"], dtype=I8),       # t11 Q
        TensorEntry((1, 3), OUTPUT, 1, batched=True),        # t12 y2
    )


# y = EWISE3(LINEAR(x, W, b), r, s); y2 = LINEAR_Q8(x, Q, scale, bias); t8 = -b
HALF_CODE = (E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 2), E("LINEAR", 0, 3), E("PUSH", 0, 4),
             E("PUSH", 0, 5), E("PUSH", 0, 6), E("EWISE3", 0, 7), E("DROP"),
             E("PUSH", 0, 0), E("PUSH", 0, 11), E("PUSH", 0, 9), E("PUSH", 0, 10), E("LINEAR_Q8", 0, 12), E("DROP"),
             E("PUSH", 0, 2), E("NEG", 0, 8), E("DROP"))


def half_model(*code: int, dtype: int = F16, tensors: tuple[TensorEntry, ...] | None = None,
               consts: bytes | None = None, arena_fixed: int = HALF_ARENA_FIXED) -> bytes:
    return lnnb.write(Program(tensors=tensors or half_tensors(dtype), consts=consts or half_consts(dtype)[0],
                              code=code or HALF_CODE, arena_fixed=arena_fixed, arena_row=16, num_inputs=1,
                              num_outputs=2))


def half_with_tensor(index: int, model_dtype: int = F16, **changes) -> bytes:
    tensors = list(half_tensors(model_dtype))
    tensors[index] = replace(tensors[index], **changes)
    return half_model(dtype=model_dtype, tensors=tuple(tensors))


def half_field(index: int, field: int, dtype: int = F16) -> int:
    """File offset of a field of tensor entry index (dtype 0, flags 3, offset 20, stride 24, widened 28)."""
    return lnnb.section_offsets(half_model(dtype=dtype))[isa.const("SEC_TENSORS")][0] + 32 * index + field


def half_with_value(name: str, index: int, bits: int) -> tuple[bytes, int]:
    """The float16 model with value index of tensor name replaced by the half bits; and that value's offset."""
    consts_at = lnnb.section_offsets(half_model())[isa.const("SEC_CONSTS")][0]
    at = consts_at + half_consts(F16)[1][name] + 2 * index
    return patched(half_model(), at, "<H", bits), at


_NAN_AT = half_with_value("W", 3, 0x7E00)
_INF_AT = half_with_value("b", 2, 0xFC00)
HALF_BROKEN = {
    "f16_in_the_arena": (half_with_tensor(8, dtype=F16), "E_TENSOR", half_field(8, 0)),
    "f16_as_an_output": (half_with_tensor(7, dtype=F16), "E_TENSOR", half_field(7, 0)),
    "f16_batched": (half_with_tensor(2, dims=(1, 3), batched=True), "E_TENSOR", half_field(2, 3)),
    "f16_strided": (half_with_tensor(2, stride=8), "E_TENSOR", half_field(2, 24)),
    "f16_misaligned": (half_with_tensor(2, offset=14), "E_TENSOR_BOUNDS", half_field(2, 20)),
    "f16_past_the_constants": (half_with_tensor(1, offset=len(half_consts(F16)[0]) - 8), "E_TENSOR_BOUNDS",
                               half_field(1, 20)),
    "f16_nan": (_NAN_AT[0], "E_NONFINITE", _NAN_AT[1]),
    "f16_negative_infinity": (_INF_AT[0], "E_NONFINITE", _INF_AT[1]),
    "widened_misaligned": (half_with_tensor(1, widened=18), "E_TENSOR_BOUNDS", half_field(1, 28)),
    "widened_past_arena_fixed": (half_with_tensor(10, widened=HALF_ARENA_FIXED - 8), "E_TENSOR_BOUNDS",
                                 half_field(10, 28)),
    "widened_wraps_32_bits": (half_with_tensor(1, widened=0xFFFFFFF0), "E_TENSOR_BOUNDS", half_field(1, 28)),
    "widened_overlaps_an_arena_tensor": (half_with_tensor(5, widened=8), "E_TENSOR_BOUNDS", half_field(5, 28)),
    "arena_tensor_overlaps_a_copy": (half_with_tensor(8, offset=HALF_WIDENED["bias"] - 4), "E_TENSOR_BOUNDS",
                                     half_field(9, 28)),  # the first copy it overlaps
    "copies_overlap": (half_with_tensor(9, widened=HALF_WIDENED["r"] + 8), "E_TENSOR_BOUNDS", half_field(9, 28)),
    "f16_as_an_ewise_program": (half_model(E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 2), E("LINEAR", 0, 3),
                                           E("PUSH", 0, 4), E("PUSH", 0, 5), E("PUSH", 0, 4), E("EWISE3", 0, 7),
                                           E("DROP")), "E_DTYPE", None),
    "f16_as_a_q8_weight": (half_model(E("PUSH", 0, 0), E("PUSH", 0, 1), E("PUSH", 0, 9), E("PUSH", 0, 10),
                                      E("LINEAR_Q8", 0, 12), E("DROP")), "E_DTYPE", None),
    "f16_destination": (half_model(E("PUSH", 0, 4), E("NEG", 0, 2), E("DROP")), "E_DTYPE", None),
    "widened_on_a_float32_constant": (half_with_tensor(1, model_dtype=F32, widened=16), "E_TENSOR",
                                      half_field(1, 28, dtype=F32)),
    "widened_on_a_program": (half_with_tensor(6, widened=16), "E_TENSOR", half_field(6, 28)),
    "widened_on_an_arena_tensor": (half_with_tensor(8, widened=16), "E_TENSOR", half_field(8, 28)),
}


@pytest.mark.parametrize("name", sorted(HALF_BROKEN))
def test_loader_checks_float16_constants(tmp_path, host_build, name):
    assert_refused(tmp_path, host_build, name, *HALF_BROKEN[name])


@pytest.mark.parametrize("isa_name", HOST_ISAS)
@pytest.mark.parametrize("plan", [True, False])
def test_float16_constants_compute_as_their_float32_values(host_build, isa_name, plan):
    """A LINEAR's weight and bias, an EWISE row and single value, a LINEAR_Q8's scale and bias as float16
    constants: the bits of the same file with the same values as float32, on the plan and the interpreter."""
    x = np.random.default_rng(16).uniform(-2, 2, (5, 2)).astype(np.float32)
    half = CVM(half_model(), max_batch=5, library=host_build.library)
    single = CVM(half_model(dtype=F32), max_batch=5, library=host_build.library)
    for vm in (half, single):
        assert vm.use_plan(plan) == plan
        vm.use_kernels(isa_name)
    for rows in (1, 2, 5):
        got, want = half.run([x[:rows]]), single.run([x[:rows]])
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.view(np.uint32), w.view(np.uint32))
    w = HALF_VALUES["W"].astype(np.float32)
    y = (x @ w.T + HALF_VALUES["b"].astype(np.float32)) * HALF_VALUES["r"].astype(np.float32)
    np.testing.assert_allclose(half.run([x])[0], y + np.float32(2 ** -20), rtol=1e-6)


def test_every_finite_float16_value_widens_exactly(host_build):
    """All 63488 finite half bit patterns as one constant, COPY'd to the output: numpy's float16 -> float32."""
    bits = np.arange(1 << 16, dtype=np.uint16)
    bits = bits[(bits & 0x7C00) != 0x7C00]
    n = len(bits)
    data = lnnb.write(Program(
        tensors=(TensorEntry((1,), INPUT, 0), TensorEntry((n,), CONST, 0, dtype=F16, widened=0),
                 TensorEntry((n,), OUTPUT, 0)),
        consts=bits.astype("<u2").tobytes(), code=(E("PUSH", 0, 1), E("COPY", 0, 2), E("DROP")),
        arena_fixed=4 * n, arena_row=0, num_inputs=1, num_outputs=1))
    got = CVM(data, library=host_build.library).run([np.zeros(1, np.float32)])[0]
    np.testing.assert_array_equal(got.view(np.uint32), bits.view(np.float16).astype(np.float32).view(np.uint32))


def _many_copies(count: int, same: tuple[int, int] | None = None, arena_at: int | None = None) -> bytes:
    """count float16 constants of 3 values (one blob) with disjoint copies, past one block (64) of the loader's
    overlap check; same (i, j): copy j placed where copy i is; arena_at: a fixed arena tensor of 2 floats there."""
    widened = [12 * i for i in range(count)]
    if same:
        widened[same[1]] = widened[same[0]]
    tensors = [TensorEntry((1, 3), INPUT, 0, batched=True), TensorEntry((1, 3), OUTPUT, 0, batched=True)]
    tensors += [TensorEntry((3,), CONST, 0, dtype=F16, widened=w) for w in widened]
    if arena_at is not None:
        tensors.append(TensorEntry((2,), ARENA, arena_at))
    code = (E("PUSH", 0, 0), E("PUSH", 0, 2 + count - 1), E("ADD", 0, 1), E("DROP"))
    return lnnb.write(Program(tensors=tuple(tensors), consts=np.array([1, -2, 0.5], "<f2").tobytes(), code=code,
                              arena_fixed=12 * count, arena_row=0, num_inputs=1, num_outputs=1))


@pytest.mark.parametrize("count", [1, 64, 65, 200])
def test_overlapping_copies_are_found_across_blocks(host_build, count):
    """The first and the last copy in one place (in one block or across blocks), an arena tensor on the last
    copy: each refused at the last copy's widened field (the later of two copies is blamed)."""
    x = np.array([[1, 2, 3]], np.float32)
    got = CVM(_many_copies(count), library=host_build.library).run([x])[0]
    np.testing.assert_array_equal(got, x + np.array([1, -2, 0.5], np.float32))
    last = lnnb.section_offsets(_many_copies(count))[isa.const("SEC_TENSORS")][0] + 32 * (2 + count - 1) + 28
    broken = [_many_copies(count, arena_at=12 * (count - 1) + 4)]
    if count > 1:
        broken += [_many_copies(count, same=(count - 1, 0)), _many_copies(count, same=(0, count - 1))]
    for data in broken:
        with pytest.raises(VMError) as err:
            CVM(data, library=host_build.library)
        assert (err.value.name, err.value.offset) == ("E_TENSOR_BOUNDS", last)


def test_disassembler_shows_float16_constants(tmp_path, host_build):
    path = tmp_path / "f16.lnnb"
    path.write_bytes(half_model())
    listing = lnnvm(host_build.runner, "disasm", path).stdout
    assert re.search(r"PUSH\s+t1\s+const\+0 \[3,2\] f16", listing)
    assert re.search(r"PUSH\s+t5\s+const\+\d+ \[\] f16", listing)
