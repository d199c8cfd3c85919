"""Shared fixtures: the host VM build, small compiled models, a helper to run the lnnvm runner."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from lnnedge import config, recipe
from lnnedge.build import build
from lnnedge.compiler import compile_module
from lnnedge.models import build_model


def host_has_avx512() -> bool:
    """Whether this CPU runs the avx512 kernel set: AVX-512 F, BW, VL and DQ in /proc/cpuinfo (Linux lists a flag
    only when the kernel enables its state, as the VM's own xgetbv check requires)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags)


HOST_AVX512 = host_has_avx512()
NO_AVX512 = "this CPU lacks AVX-512 F/BW/VL/DQ (or the OS keeps the ZMM state off): the avx512 kernel set cannot run"
# every x86 kernel set of the host build, for parametrize; avx512 skipped, with the reason, on a CPU without it
HOST_ISAS = ["scalar", "sse3", "avx2", pytest.param("avx512", marks=pytest.mark.skipif(not HOST_AVX512,
                                                                                        reason=NO_AVX512))]


@pytest.fixture(scope="session")
def host_build():
    """The real host build of the VM (make), once per session."""
    return build(config.load_target("host"), echo=lambda _msg: None)


@pytest.fixture(scope="session")
def sanitize_build():
    """The ASan + UBSan runner and kernel test."""
    return build(config.load_target("host"), sanitize=True, echo=lambda _msg: None)


def untrained(name: str, seed: int = 0) -> torch.nn.Module:
    """A recipe's model with seeded random weights and a non-trivial normalisation."""
    torch.manual_seed(seed)
    r = recipe.load(name)
    model = build_model(r.model)
    with torch.no_grad():
        model.in_mean.fill_(1.5)
        model.in_std.fill_(2.0)
        model.out_mean.fill_(0.25)
        model.out_std.fill_(1.5)
        model.ode.func.log_tau.uniform_(-1, 1)
    return model.eval()


@pytest.fixture(scope="session")
def sine_model():
    return untrained("ltc-sine")


@pytest.fixture(scope="session")
def sine_compiled(sine_model):
    return compile_module(sine_model, (torch.zeros(1, 1),), name="ltc-sine")


@pytest.fixture(scope="session")
def sine_file(tmp_path_factory, sine_compiled) -> Path:
    return sine_compiled.save(tmp_path_factory.mktemp("sine") / "model.lnnb")


def inputs_for(model_inputs: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 7, (n, model_inputs)).astype(np.float32)


def lnnvm(runner: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(runner), *map(str, args)], capture_output=True, text=True, timeout=timeout)
