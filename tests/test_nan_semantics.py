"""A NaN that arises at run time (here: in the input, as from a sensor glitch) gives what PyTorch gives, through the
compiler's lowerings (clamp, hardtanh, relu6, leaky_relu, elu, softplus, gelu, silu, layer_norm) and the VM's ops
(RELU, MIN / MAX, the pools, softmax, the reductions, CONV2D, LINEAR), on the reference VM and on every kernel set
of the host C VM: the same elements NaN, the others within the float32 tolerance. The kernels themselves are
checked op by op on every set (neon and mve under QEMU included) by vm/tests/kernel_nan_test.inc."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lnnedge.compiler import compile_module
from lnnedge.runtime import CVM, VMError

F = torch.nn.functional
TOLERANCE = 1e-5
SETS = ("scalar", "sse3", "avx2", "avx512", "neon")


class Branches(torch.nn.Module):
    """An image (N, 1, 6, 8) through many ops side by side, each flattened, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.lin = torch.nn.Linear(8, 5)
        self.ln = torch.nn.LayerNorm(8)

    def forward(self, x):
        # gelu's input clamped: torch's own gelu(+inf) is inf on one element and NaN on a vector of 8 or more
        # (its vectorised erf path), so the infinities of _images() stay away from it (its NaN does not)
        n = x.shape[0]
        parts = [
            F.max_pool2d(x, 2), F.max_pool2d(x, 3, 1), F.max_pool2d(self.conv(x), 2, 2), F.avg_pool2d(x, 2),
            torch.relu(x), torch.clamp(x, -0.5, 0.5), F.hardtanh(x), F.relu6(x * 4.0), F.leaky_relu(x, 0.2),
            F.elu(x), F.softplus(x), F.gelu(torch.clamp(x, -30.0, 30.0)), F.silu(x),
            torch.maximum(x, x * 0.5), torch.minimum(x, x * 0.5),
            torch.softmax(x, dim=3), torch.log_softmax(x, dim=2), x.sum(dim=3), x.mean(dim=2),
            self.lin(x), self.ln(x),
        ]
        return torch.cat([p.reshape(n, -1) for p in parts], dim=1)


def _images() -> np.ndarray:
    """Images with NaN before and after larger values in pooling windows, at a corner, in the middle, a whole
    row; one image without NaN, one with a +inf and a -inf."""
    x = np.random.default_rng(3).uniform(-2, 2, (7, 1, 6, 8)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan  # first in its windows, larger values after it
    x[1, 0, 3, 5] = np.nan  # last in a 2x2 window
    x[2, 0, 2, 2] = np.nan
    x[2, 0, 5, 7] = np.nan
    x[3, 0, 4, :] = np.nan
    x[5, 0, 1, 1], x[5, 0, 4, 6] = np.inf, -np.inf
    x[6, 0, 2, 3] = -np.nan  # the sign of a NaN changes nothing
    return x


@pytest.fixture(scope="module")
def case(host_build):
    module = Branches().eval()
    compiled = compile_module(module, (torch.zeros(1, 1, 6, 8),), name="nan-branches")
    x = _images()
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    return compiled, x, want, host_build


def _same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got = got.reshape(want.shape)
    differ = np.argwhere(np.isnan(got) != np.isnan(want))
    assert differ.size == 0, f"{what}: NaN or not unlike PyTorch at (image, element) {differ[:5].tolist()}"
    fin = ~np.isnan(want)
    assert np.array_equal(np.isinf(got[fin]), np.isinf(want[fin])), what
    ok = fin & ~np.isinf(want)
    assert np.all(np.abs(got[ok] - want[ok]) <= TOLERANCE * np.maximum(1.0, np.abs(want[ok]))), what


def test_torch_gives_nan_where_the_input_has_one(case):
    """The reference itself: PyTorch propagates the NaN (the premise of the table in vm/README.md)."""
    _, x, want, _ = case
    assert np.isnan(want[0]).sum() > 0 and not np.isnan(want[4]).any() and np.isnan(want[6]).any()
    assert np.isnan(want).any(axis=1).tolist() == [True, True, True, True, False, True, True]


def test_reference_vm_gives_pytorchs_nans(case):
    compiled, x, want, _ = case
    _same(compiled.run(x)[0], want, "reference VM")


def test_every_host_kernel_set_gives_pytorchs_nans(case):
    compiled, x, want, host_build = case
    vm = CVM(compiled.data, max_batch=len(x), library=host_build.library)
    ran = []
    for isa in SETS:
        try:
            vm.use_kernels(isa)
        except VMError:
            continue  # not compiled in, or this processor lacks it
        _same(vm.run([x])[0], want, isa)
        ran.append(isa)
    assert "scalar" in ran and len(ran) >= 2, ran
