"""The adaptive torchdiffeq solvers (dopri5, bosh3, adaptive_heun, fehlberg2, dopri8) and the VM's bounded loop
that runs them: LOOPW n ... flag UNTIL END (vm/VERIFIER.md rows 47a-47c, E_STEPS).

The solver figures are lnnedge.solvers_check's (the README's solver table comes from its JSON, `invoke solvers`).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from conftest import lnnvm
from lnnedge import config, isa, lnnb, solvers_check
from lnnedge.build import ensure_for_board
from lnnedge.compiler import CompileError, compile_module
from lnnedge.devices import open_device
from lnnedge.lnnb import Program, TensorEntry
from lnnedge.models.ltc import ADAPTIVE, LTCRegressor
from lnnedge.refvm import RefVM, StepLimitError
from lnnedge.runtime import CVM, VMError

torch.set_num_threads(1)
E = isa.encode
CONST, ARENA, INPUT, OUTPUT = (isa.const(k) for k in ("REG_CONST", "REG_ARENA", "REG_INPUT", "REG_OUTPUT"))

# t0 x[B,2] input, t1 y[B,2] output, t2 one[] = 1, t3 thresholds[2] = (2, 3), t4 counter[2], t5 flag[2],
# t6 h[B,2], t7 never-written[2]
X, Y, ONE, THR, COUNTER, FLAG, H, UNWRITTEN = range(8)
TENSORS = (
    TensorEntry((1, 2), INPUT, 0, batched=True),
    TensorEntry((1, 2), OUTPUT, 0, batched=True),
    TensorEntry((), CONST, 0),
    TensorEntry((2,), CONST, 4),
    TensorEntry((2,), ARENA, 0),
    TensorEntry((2,), ARENA, 8),
    TensorEntry((1, 2), ARENA, 0, batched=True),
    TensorEntry((2,), ARENA, 16),
)
CONSTS = np.array([1, 2, 3], "<f4").tobytes()
BEFORE = (E("PUSH", 0, X), E("COPY", 0, H), E("DROP"), E("ZERO", 0, COUNTER), E("DROP"))
# h += 1; counter += 1; flag = thresholds <= counter: every element nonzero from the third trip on
TRIP = (E("PUSH", 0, H), E("PUSH", 0, ONE), E("ADD", 0, H), E("DROP"),
        E("PUSH", 0, COUNTER), E("PUSH", 0, ONE), E("ADD", 0, COUNTER), E("DROP"),
        E("PUSH", 0, THR), E("PUSH", 0, COUNTER), E("LE", 0, FLAG))
AFTER = (E("PUSH", 0, H), E("COPY", 0, Y), E("DROP"))


def program(trips: int, body: tuple[int, ...] = (*TRIP, E("UNTIL")), loop: str = "LOOPW") -> bytes:
    code = (*BEFORE, E(loop, 0, trips), *body, E("END"), *AFTER)
    return lnnb.write(Program(tensors=TENSORS, consts=CONSTS, code=code, arena_fixed=24, arena_row=8,
                              num_inputs=1, num_outputs=1))


def code_at(data: bytes, pc: int) -> int:
    return lnnb.section_offsets(data)[isa.const("SEC_CODE")][0] + 4 * pc


X_ROWS = np.array([[1, -1], [0.5, 2], [3, 4]], np.float32)


@pytest.fixture(scope="module")
def lib(host_build):
    return host_build.library


def test_loopw_ends_at_the_trip_where_every_flag_element_is_nonzero(lib):
    data = program(5)
    vm = CVM(data, max_batch=3, library=lib)
    for plan in (True, False):  # the run plan and the instruction interpreter
        vm.use_plan(plan)
        np.testing.assert_array_equal(vm.run([X_ROWS])[0], X_ROWS + 3)
    np.testing.assert_array_equal(RefVM(data).run([X_ROWS])[0], X_ROWS + 3)
    np.testing.assert_array_equal(CVM(program(3), max_batch=3, library=lib).run([X_ROWS])[0], X_ROWS + 3)


def test_loopw_out_of_trips_ends_the_run_with_e_steps(lib, host_build, tmp_path):
    data = program(2)  # the flag is all nonzero only at trip 3
    vm = CVM(data, max_batch=3, library=lib)
    for plan in (True, False):
        vm.use_plan(plan)
        with pytest.raises(VMError) as err:
            vm.run([X_ROWS])
        assert err.value.name == "E_STEPS"
    with pytest.raises(StepLimitError, match="E_STEPS"):
        RefVM(data).run([X_ROWS])
    path, inputs = tmp_path / "steps.lnnb", tmp_path / "x.f32"
    path.write_bytes(data)
    X_ROWS.tofile(inputs)
    proc = lnnvm(host_build.runner, "run", path, "--in", inputs, "--out", tmp_path / "y.f32", "--batch", "3")
    assert proc.returncode != 0 and "E_STEPS" in proc.stderr, proc.stderr
    enough = tmp_path / "enough.lnnb"
    enough.write_bytes(program(3))
    proc = lnnvm(host_build.runner, "run", enough, "--in", inputs, "--out", tmp_path / "y.f32", "--batch", "3")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.fromfile(tmp_path / "y.f32", np.float32).reshape(3, 2), X_ROWS + 3)


@pytest.mark.parametrize("name,body,loop,pc", [
    ("UNTIL not right before END", (*TRIP, E("UNTIL"), E("PUSH", 0, H), E("DROP")), "LOOPW", 17),
    ("a LOOPW body without UNTIL", (*TRIP, E("DROP")), "LOOPW", 18),
    ("UNTIL in a plain LOOP", (*TRIP, E("UNTIL")), "LOOP", 17),
])
def test_until_only_as_the_last_instruction_of_a_loopw(lib, name, body, loop, pc):
    data = program(5, body, loop)
    with pytest.raises(VMError) as err:
        CVM(data, library=lib)
    assert (err.value.name, err.value.offset) == ("E_LOOP", code_at(data, pc)), name


def test_until_outside_every_loop_and_of_an_unwritten_flag_are_refused(lib):
    outside = lnnb.write(Program(tensors=TENSORS, consts=CONSTS, code=(*BEFORE, E("PUSH", 0, COUNTER), E("UNTIL"),
                                                                       *AFTER),
                                 arena_fixed=24, arena_row=8, num_inputs=1, num_outputs=1))
    with pytest.raises(VMError) as err:
        CVM(outside, library=lib)
    assert (err.value.name, err.value.offset) == ("E_LOOP", code_at(outside, 6))
    unwritten = program(5, (*TRIP, E("DROP"), E("PUSH", 0, UNWRITTEN), E("UNTIL")))
    with pytest.raises(VMError) as err:
        CVM(unwritten, library=lib)
    assert (err.value.name, err.value.offset) == ("E_UNINIT", code_at(unwritten, 19))


def _work(runner, path) -> int:
    return int(re.search(r"work: (\d+)", lnnvm(runner, "info", path).stdout).group(1))


def test_verifier_bounds_the_work_of_every_trip_a_loopw_may_run(host_build, tmp_path):
    """The verifier cannot know where the loop ends: it counts all n trips (E_WORK), and a run never does more."""
    works = []
    for trips in (4, 5, 6):
        path = tmp_path / f"w{trips}.lnnb"
        path.write_bytes(program(trips))
        works.append(_work(host_build.runner, path))
    assert works[2] - works[1] == works[1] - works[0] > 0
    proc = lnnvm(host_build.runner, "--max-work", str(works[2] - 1), "verify", path)
    assert proc.returncode == 3 and ": E_WORK at byte" in proc.stderr, proc.stderr
    assert lnnvm(host_build.runner, "--max-work", str(works[2]), "verify", path).returncode == 0


# ---- the solvers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host_device():
    board = config.board("host")
    ensure_for_board(board)
    with open_device(board) as device:
        yield device


@pytest.mark.parametrize("case", [c for c in solvers_check.ADAPTIVE_CASES if c.hidden == 16 and c.rtol == 1e-5],
                         ids=lambda c: c.method)
def test_adaptive_method_matches_torchdiffeq_row_by_row(case, lib, host_device):
    """Within 1e-4 of torchdiffeq solving each row alone (the device's time arithmetic is float32, torchdiffeq's
    float64), and within 1e-4 of torchdiffeq stepping the whole batch at once; nearly the same steps."""
    if case.method == "adaptive_heun":  # second order: ~470 steps at rtol 1e-5 (measured by invoke solvers)
        case = dataclasses.replace(case, rtol=1e-4, atol=1e-5)
    r = solvers_check.run_case(case, 16, lib, host=host_device, step_rows=4)
    assert r.host_max_abs_err <= 1e-4 and r.refvm_max_abs_err <= 1e-4, r
    assert r.batched_max_abs_err <= 1e-3, r  # torchdiffeq's batch norm couples rows (measured 2.8e-4, fehlberg2)
    assert r.rows_with_other_steps <= 2, r
    assert abs(r.device_steps - r.torchdiffeq_steps) <= 1, r


def test_every_adaptive_method_is_measured():
    assert {c.method for c in solvers_check.ADAPTIVE_CASES} == set(ADAPTIVE)


def _dopri5(steps: int | None = None) -> LTCRegressor:
    torch.manual_seed(0)
    options = {} if steps is None else {"max_num_steps": steps}
    return LTCRegressor(3, 8, 1, torch.tensor([0.0, 5.0]), "dopri5", 0.5, options, rtol=1e-5, atol=1e-6).eval()


def test_step_limit_ends_the_run_with_its_status(lib):
    compiled = compile_module(_dopri5(steps=3), (torch.zeros(1, 3),))
    x = np.ones((2, 3), np.float32)
    with pytest.raises(VMError) as err:
        CVM(compiled.data, max_batch=2, library=lib).run([x])
    assert err.value.name == "E_STEPS"
    with pytest.raises(StepLimitError):
        compiled.run(x)
    enough = compile_module(_dopri5(), (torch.zeros(1, 3),))
    assert np.all(np.isfinite(CVM(enough.data, max_batch=2, library=lib).run([x])[0]))


@pytest.mark.parametrize("options,message", [
    ({"max_num_steps": 0}, "max_num_steps must be an integer in \\[1, 65535\\], got 0"),
    ({"safety": -1.0}, "safety must be a positive number"),
])
def test_bad_adaptive_options_are_refused_at_compile_time(options, message):
    model = _dopri5()
    model.ode.options = options
    with pytest.raises(CompileError, match=message):
        compile_module(model, (torch.zeros(1, 3),))


def test_dopri5_on_qemu_rpi4():
    board = config.board("qemu-rpi4")
    ensure_for_board(board)
    case = solvers_check.ADAPTIVE_CASES[0]
    assert case.method == "dopri5"
    with open_device(board) as device:
        r = solvers_check.run_case(case, 16, None, board=device)
    assert r.board == "qemu-rpi4" and 0 <= r.board_max_abs_err <= 1e-4, r
