"""lnnedge: train small continuous-time networks in PyTorch and run them on edge devices.

Your own model, in five lines (each call returns the report object the matching `invoke` task prints):

    import lnnedge, torch
    compiled = lnnedge.compile(model, torch.zeros(1, 3))          # -> build/<Class>/model.lnnb, a CompileReport
    report = lnnedge.verify(compiled, board="qemu-rpi4", inputs=torch.randn(32, 3))   # a VerifyReport
    assert report.passed                                           # device vs your module, and the bundled set
    lnnedge.deploy(compiled, board="qemu-rpi4")                    # a FleetReport, a row per board

`lnnedge.check(model, example_inputs)` lists every op that will not compile (with file:line), `lnnedge.ops()`
what compiles. Lower level:

    from lnnedge.compiler import compile_module   # torch module + example inputs -> .lnnb
    from lnnedge.refvm import RefVM                # run a .lnnb in numpy (the oracle)
    from lnnedge.runtime import CVM                # run a .lnnb on the C VM (ctypes)

`import lnnedge` loads neither torch nor numpy: each function imports what it needs when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline.reports import CheckReport, CompileReport, FleetReport, OpsReport, VerifyReport

__version__ = "0.1.0"
__all__ = ["check", "compile", "deploy", "ops", "verify"]


def _inputs(x: Any) -> list:
    """One input (a tensor or array) or a sequence of them, as a list of float32 arrays."""
    import numpy as np

    items = x if isinstance(x, (list, tuple)) else [x]
    return [np.asarray(item.detach().cpu() if hasattr(item, "detach") else item, dtype=np.float32) for item in items]


def compile(module: Any, example_inputs: Any, name: str | None = None, out: str | Path | None = None,
            test_inputs: Any = None, test_outputs: Any = None, tolerance: float = 1e-5) -> CompileReport:
    """Compile an nn.Module built from supported ops (`ops()`). example_inputs: a tensor, or one per model input,
    dim 0 the batch. Writes `out` (a .lnnb file or a directory; default build/<name>/model.lnnb, name the module's
    class) with its listing and debug info, and bundles a test set: test_inputs with test_outputs (else the
    module's outputs; without test_inputs, 16 seeded normal rows)."""
    import numpy as np

    from .pipeline.userfile import compile_torch

    tests = None if test_inputs is None else _inputs(test_inputs)
    expected = None if test_outputs is None else np.asarray(_inputs(test_outputs)[0]).reshape(len(tests[0]), -1)
    return compile_torch(module, _inputs(example_inputs), name or type(module).__name__, out, tests, expected,
                         tolerance)


def check(module: Any, example_inputs: Any) -> CheckReport:
    """Every op of `module` that will not compile, each with its file:line (report.unsupported); nothing is
    written."""
    from .pipeline.userfile import check_torch

    return check_torch(module, _inputs(example_inputs), type(module).__name__)


def _file(compiled: CompileReport | str | Path) -> Path:
    return Path(compiled) if isinstance(compiled, (str, Path)) else compiled.path


def verify(compiled: CompileReport | str | Path, board: str | None = None, inputs: Any = None,
           module: Any = None) -> VerifyReport | FleetReport:
    """The compiled model on `board` (a board or group of boards.yaml; default its default_board) held to its
    bundled test set and, given `inputs`, to `module` (default: the module `compile` was given) on them."""
    from .errors import UsageError
    from .pipeline.userfile import verify_file

    module = module if module is not None else getattr(compiled, "module", None)
    if inputs is not None and module is None:
        raise UsageError("verify(inputs=...) needs the module to compare with: pass module=, or the report "
                         "lnnedge.compile returned")
    return verify_file(_file(compiled), board, module if inputs is not None else None,
                       _inputs(inputs) if inputs is not None else None)


def deploy(compiled: CompileReport | str | Path, board: str | None = None) -> FleetReport:
    """Put the compiled model on `board` (or every board of a group); active only after its bundled test set
    passes on the device."""
    from .pipeline.userfile import deploy_file

    return deploy_file(_file(compiled), board)


def ops() -> OpsReport:
    """The torch ops the compiler takes, with their limits (report.rows: op, torch ops, limits)."""
    from .pipeline.userfile import supported_ops

    return supported_ops()
