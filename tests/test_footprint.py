"""The selective build (lnnedge.opselect) and the map-file size breakdown (lnnedge.footprint): a VM built for
some ops refuses a model with another (E_NOT_LINKED), and the breakdown adds up to what the linker placed."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import lnnvm
from lnnedge import lnnb
from lnnedge.footprint import COMPONENTS, MapFileError, build_core, parse_map, symbol_components
from lnnedge.isa import const, encode
from lnnedge.opselect import column_blocks, header, plan_size, program_ops, used_ops
from lnnedge.paths import ROOT
from test_loader import VALID, fused, half_field, half_model, patched, program

FUSED = fused()  # LINEAR_T, CONCAT and an EWISE3 program of MUL, SIGMOID, ADD

CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]


@pytest.fixture(scope="module")
def selective_runner(tmp_path_factory):
    """The host runner built with only the ops of VALID and FUSED (scalar kernels)."""
    out = tmp_path_factory.mktemp("selective")
    ops = out / "ops.h"
    ops.write_text(header([VALID, FUSED]))
    proc = subprocess.run(["make", "-C", str(ROOT / "vm"), "-j2", f"O={out}", "ISA=scalar",
                           f'EXTRA_CFLAGS=-DLNN_OPS_HEADER=\\"{ops}\\"', "runner"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out / "lnnvm"


def test_the_selection_is_the_models_ops():
    assert used_ops(VALID) == {"PUSH", "LINEAR", "DROP", "LOOP", "MUL", "ADD", "END", "NEG"}
    text = header([VALID])
    assert "#define LNN_USE_NEG 1" in text and "#define LNN_USE_RELU 0" in text
    assert program_ops(FUSED) == {"MUL", "SIGMOID", "ADD"}
    text = header([FUSED])
    assert "#define LNN_EW_USE_SIGMOID 1" in text and "#define LNN_EW_USE_TANH 0" in text
    assert "#define LNN_USE_SIGMOID 0" in text  # only in a program: its own kernel is left out
    # the Cortex-M products' tail blocks: FUSED's LINEAR_T writes 3 columns (a 2-column block and one column);
    # VALID has no LINEAR_T: none, its image links only the one-column block
    assert column_blocks(FUSED) == 2 and "#define LNN_CM4_T_BLOCKS 2 " in text
    assert "#define LNN_CM4_T_BLOCKS 0 " in header([VALID])


def test_the_model_struct_is_sized_by_the_models_plan(selective_runner, host_build, tmp_path):
    """VALID's plan: LINEAR, LOOP, MUL, ADD, END, NEG, NEG; 16 references (destinations + operands, one each for
    LOOP and END). The selective build's lnn_model holds that plan and no more, and lnn_init builds it."""
    assert plan_size(VALID) == (7, 16)
    path = tmp_path / "valid.lnnb"
    path.write_bytes(VALID)
    info = {}
    for name, runner in (("selective", selective_runner), ("default", host_build.runner)):
        out = lnnvm(runner, "info", path).stdout
        info[name] = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert info["selective"]["plan_steps"] == info["default"]["plan_steps"] == "7"
    assert int(info["selective"]["model_struct"]) < int(info["default"]["model_struct"]) // 2


def test_a_selective_build_runs_its_model_and_refuses_an_op_it_lacks(selective_runner, tmp_path):
    good = tmp_path / "good.lnnb"
    good.write_bytes(VALID)
    proc = lnnvm(selective_runner, "verify", good)
    assert proc.returncode == 0, proc.stderr
    # the same program with RELU (same operands as NEG) where NEG was: an op this image was built without
    code = tuple(encode("RELU", 0, 3) if w == encode("NEG", 0, 3) else w for w in program().code)
    bad = tmp_path / "bad.lnnb"
    bad.write_bytes(lnnb.write(program(code=code)))
    proc = lnnvm(selective_runner, "verify", bad)
    assert proc.returncode == 3
    assert ": E_NOT_LINKED at byte" in proc.stderr


def test_a_selective_build_refuses_a_program_op_it_lacks(selective_runner, tmp_path):
    good = tmp_path / "fused.lnnb"
    good.write_bytes(FUSED)
    proc = lnnvm(selective_runner, "verify", good)
    assert proc.returncode == 0, proc.stderr
    # the program's SIGMOID (its instruction 1, at constant byte 112 + 8) made a TANH
    consts = lnnb.section_offsets(FUSED)[const("SEC_CONSTS")][0]
    bad = tmp_path / "tanh.lnnb"
    bad.write_bytes(patched(FUSED, consts + 112 + 8, "<I", encode("TANH") | 3 << 16))
    proc = lnnvm(selective_runner, "verify", bad)
    assert proc.returncode == 3
    assert ": E_NOT_LINKED at byte" in proc.stderr


def test_a_selective_build_runs_its_models_from_their_plan_only(selective_runner, tmp_path):
    """The image's plan is sized for VALID and FUSED and it has no instruction-by-instruction interpreter: a
    model with only its ops but a longer plan (40 more NEGs) is refused at the code section."""
    code = (*program().code[:-1], *(encode("NEG", 0, 3),) * 40, encode("DROP"))
    data = lnnb.write(program(code=code))
    assert plan_size(data)[0] > max(plan_size(VALID)[0], plan_size(FUSED)[0])
    path = tmp_path / "long.lnnb"
    path.write_bytes(data)
    proc = lnnvm(selective_runner, "verify", path)
    assert proc.returncode == 3
    assert f": E_NOT_LINKED at byte {lnnb.section_offsets(data)[const('SEC_CODE')][0]}:" in proc.stderr


def test_a_selective_build_without_float16_refuses_a_float16_constant(selective_runner, tmp_path):
    """Neither VALID nor FUSED has a float16 constant: the image has no widening code and refuses one at the
    first DT_F16 tensor entry's dtype byte."""
    data = half_model()
    first = next(i for i, t in enumerate(lnnb.read(data).tensors) if t.dtype == const("DT_F16"))
    path = tmp_path / "half.lnnb"
    path.write_bytes(data)
    proc = lnnvm(selective_runner, "verify", path)
    assert proc.returncode == 3
    assert f": E_NOT_LINKED at byte {half_field(first, 0)}:" in proc.stderr


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
@pytest.mark.parametrize("lto", [False, True], ids=["objects", "link-time-optimised"])
def test_the_breakdown_adds_up_to_the_linked_image(tmp_path, lto):
    """Link-time optimised, the code is one object of the link: its sections are split by the source files of
    the symbols in them, and still add up to the image."""
    model = tmp_path / "m.lnnb"
    model.write_bytes(VALID)
    ops = tmp_path / "ops.h"
    ops.write_text(header([VALID]))
    mapfile = build_core(["arm-none-eabi-gcc"], CORTEX_M4, model, ops, tmp_path / "core", lto=lto)
    if lto:
        with pytest.raises(MapFileError, match="link-time optimised"):
            parse_map(mapfile)
    fp = parse_map(mapfile, symbol_components(tmp_path / "core" / "core.elf", sorted((tmp_path / "core").glob("*.o"))))
    assert fp.code("core") > 0 and fp.code("verifier") > 0 and fp.code("kernels") > 0
    sysv = subprocess.run(["arm-none-eabi-size", "-A", str(tmp_path / "core" / "core.elf")], capture_output=True,
                          text=True, check=True).stdout
    sections = {line.split()[0]: int(line.split()[1]) for line in sysv.splitlines()[2:] if len(line.split()) >= 3}
    loaded = sum(v for k, v in sections.items() if k in (".text", ".rodata", ".ARM.exidx", ".data"))
    assert fp.flash_total == loaded
    assert fp.code("model") >= len(VALID)  # the model, in its const array
    assert fp.code("protocol") == 0  # the core application has no protocol
    assert all(c in COMPONENTS for c in fp.sections)
    assert 0 < fp.vm_code < loaded
