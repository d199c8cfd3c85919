#!/usr/bin/env python3
"""make_corpus.py - regenerate the seed corpus of the VM fuzzers (vm/fuzz/corpus/).

    .venv/bin/python vm/fuzz/make_corpus.py          # or: make -C vm/fuzz corpus

corpus/load/  model files for fuzz_load:
  ltc-sine.lnnb, ltc-3in-rk4.lnnb   the two recipes' models compiled by the
                                    lnnedge compiler (untrained, seeded), with
                                    hidden 8 instead of 64 / 16 so each file
                                    stays a few KB: the same program shape
                                    (ODE loop, RK4 unrolled, strided dt table,
                                    CONCAT, LINEAR, normalisation), fewer weights
  sample.lnnb, ops.lnnb, q8.lnnb    vm/tests/make_sample.py's models (every
                                    opcode and broadcast path, nested loops;
                                    int8 weights and a bundled test set)
  f16.lnnb                          float16 constants (a LINEAR's weight and
                                    bias, an EWISE operand) widened into the
                                    fixed arena next to an arena tensor
  bad_*.lnnb                        a few of make_sample.py's broken variants
                                    whose error lies deep in the verifier
corpus/run/   the valid models again, each followed by a tail for fuzz_run:
              one batch byte (tail[0] % 4 + 1) and a few input floats.

The files are deterministic: running the script twice gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "vm" / "tests"))

# make_sample's broken variants whose error needs the whole front end to pass
DEEP_VARIANTS = ("shape_linear", "shape_concat_sum", "alias_linear", "loop_stack_swap",
                 "stride_overrun", "loop_stack_changed", "concat_axis", "write_input",
                 "io_duplicate", "tensor_huge", "q8_scale_length", "q8_q_rank_1", "tests_count_wrong")

TAILS = (
    (0, (0.5, -1.25, 2.0)),
    (3, (1.0, 0.25, -3.0, 7.5, 0.0, -0.5)),
)


def compiled_models() -> dict[str, bytes]:
    import torch
    from lnnedge import lnnb, recipe
    from lnnedge.compiler import compile_module
    from lnnedge.models import build_model

    out = {}
    for name in ("ltc-sine", "ltc-3in-rk4"):
        r = recipe.load(name)
        spec = dataclasses.replace(r.model, hidden=8)
        torch.manual_seed(0)
        model = build_model(spec)
        with torch.no_grad():
            model.ode.func.log_tau.uniform_(-1, 1)
        model.eval()
        compiled = compile_module(model, (torch.zeros(1, spec.inputs),), name=name)
        # names and debug metadata are ignored by the VM: drop them (the
        # mutator adds NAMES / META sections of its own)
        program = dataclasses.replace(compiled.program, names=(), meta={})
        out[name] = lnnb.write(program)
    return out


def sample_models() -> tuple[dict[str, bytes], dict[str, bytes]]:
    import make_sample as ms

    valid = {"sample": ms.sample_model().build(), "ops": ms.ops_model().build(),
             "q8": ms.q8_data(ms.q8_model())}
    broken = {name: data for name, data, _status, _off in ms.broken_variants() if name in DEEP_VARIANTS}
    return valid, broken


def f16_model() -> bytes:
    """y = (x @ W.T + b) * r with W, b, r float16 constants (a subnormal, -0, 65504 among them), and the
    fixed-arena tensor t = -b just below their float32 copies."""
    import numpy as np
    from lnnedge import isa, lnnb
    from lnnedge.lnnb import TensorEntry

    const, arena, inp, out = (isa.const(k) for k in ("REG_CONST", "REG_ARENA", "REG_INPUT", "REG_OUTPUT"))
    f16, u32, e = isa.const("DT_F16"), isa.const("DT_U32"), isa.encode
    halves = np.array([1, -2, 0.5, 65504, -0.0, 2 ** -24, 0.25, -1, 3, 1.5, -0.75, 2], "<f2").tobytes()
    program = np.array([2 | 1 << 8, isa.opcodes()["MUL"].code | 1 << 24], "<u4").tobytes()
    tensors = (
        TensorEntry((1, 2), inp, 0, batched=True),                  # t0 x
        TensorEntry((3, 2), const, 0, dtype=f16, widened=16),       # t1 W
        TensorEntry((3,), const, 12, dtype=f16, widened=40),        # t2 b
        TensorEntry((1, 3), arena, 0, batched=True),                # t3 h
        TensorEntry((3,), const, 16, dtype=f16, widened=52),        # t4 r (b's last value, then r's)
        TensorEntry((2,), const, 24, dtype=u32),                    # t5 the program h * r
        TensorEntry((1, 3), out, 0, batched=True),                  # t6 y
        TensorEntry((3,), arena, 0),                                # t7 t
    )
    code = (e("PUSH", 0, 0), e("PUSH", 0, 1), e("PUSH", 0, 2), e("LINEAR", 0, 3), e("PUSH", 0, 4),
            e("PUSH", 0, 5), e("EWISE2", 0, 6), e("DROP"), e("PUSH", 0, 2), e("NEG", 0, 7), e("DROP"))
    return lnnb.write(lnnb.Program(tensors=tensors, consts=halves + program, code=code, arena_fixed=64,
                                   arena_row=16, num_inputs=1, num_outputs=1))


def tail(batch_byte: int, values) -> bytes:
    return bytes([batch_byte]) + struct.pack(f"<{len(values)}f", *values)


def write_all(files: dict[Path, bytes]) -> None:
    for path, data in sorted(files.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{path.relative_to(ROOT)}: {len(data)} bytes")


def main() -> int:
    load_dir, run_dir = HERE / "corpus" / "load", HERE / "corpus" / "run"
    for d in (load_dir, run_dir):
        if d.is_dir():
            for old in d.iterdir():
                old.unlink()
    valid = compiled_models()
    samples, broken = sample_models()
    valid.update(samples)
    valid["f16"] = f16_model()
    files: dict[Path, bytes] = {}
    for name, data in valid.items():
        files[load_dir / f"{name}.lnnb"] = data
        for k, (batch_byte, values) in enumerate(TAILS):
            files[run_dir / f"{name}.tail{k}.bin"] = data + tail(batch_byte, values)
    for name, data in broken.items():
        files[load_dir / f"bad_{name}.lnnb"] = data
    write_all(files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
