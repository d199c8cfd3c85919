"""torchdiffeq's `odeint` called directly in a user's forward: each call becomes an ODEBlock for the capture.

A module written without lnnedge's ODEBlock calls `odeint(func, y0, t, method=..., options=...)[-1]` itself.
torch.export cannot trace odeint, and while tracing, t is a fake tensor whose values cannot be read. So the
module is first run once eagerly with odeint recording every call (the dynamics module, the real values of t,
the method and options); then, during the export, the k-th call is answered by an ODEBlock built from the k-th
record (attached to the module for the time of the capture, so it is made opaque and captured like the kit's
own blocks). Only the final state of the trajectory compiles (`odeint(...)[-1]`): the VM's solver keeps the
current state, not every requested time.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchdiffeq

from ..models.ltc import ODEBlock
from .ir import CompileError

_ORIGINALS = (torchdiffeq.odeint, torchdiffeq.odeint_adjoint)  # odeint_adjoint: the same forward
DEFAULT_METHOD = "dopri5"  # torchdiffeq's method=None


@dataclass(frozen=True)
class Call:
    func: torch.nn.Module
    t: torch.Tensor
    method: str
    options: dict
    rtol: float  # the adaptive methods' tolerances (implicit_adams' corrector too)
    atol: float
    where: str  # file:line of the call in the user's source


def _caller() -> str:
    """file:line of the innermost frame outside this module: the user's odeint call."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if frame.filename != __file__:
            return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    return ""


def _check(func: Any, y0: Any, t: Any, event_fn: Any, where: str) -> None:
    if not isinstance(func, torch.nn.Module):
        raise CompileError(f"odeint at {where}: func must be an nn.Module f(t, h) (a function or lambda cannot "
                           f"be captured), got {type(func).__name__}")
    if not isinstance(y0, torch.Tensor):
        raise CompileError(f"odeint at {where}: y0 must be one tensor (tuple states are not supported)")
    if not isinstance(t, torch.Tensor) or t.dim() != 1 or len(t) < 2:
        raise CompileError(f"odeint at {where}: t must be a 1-D tensor of at least two times")
    if event_fn is not None:
        raise CompileError(f"odeint at {where}: event_fn is not supported")


class _Final:
    """What a captured odeint call returns during the export: its final state, as `[-1]` reads it."""

    def __init__(self, last: torch.Tensor, times: int, where: str):
        self.last, self.times, self.where = last, times, where

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, int) and key in (-1, self.times - 1):
            return self.last
        raise CompileError(f"odeint at {self.where}: only the final state odeint(...)[-1] compiles (the device keeps "
                           f"the current state, not the trajectory); got [{key!r}]")


def _namespaces(module: torch.nn.Module) -> list[dict]:
    """Where the module's forwards look odeint up: the globals of each class's forward (`from torchdiffeq import
    odeint`) and the torchdiffeq package (`torchdiffeq.odeint`) when a forward's globals hold it. The kit's own
    modules are left alone: their ODEBlocks are made opaque by the capture itself."""
    found: dict[int, dict] = {}
    for m in module.modules():
        ns = getattr(type(m).forward, "__globals__", None)
        if ns is None or str(ns.get("__name__", "")).startswith("lnnedge."):
            continue
        if any(any(v is f for f in _ORIGINALS) for v in ns.values()):
            found[id(ns)] = ns
        if any(v is torchdiffeq for v in ns.values()):
            found[id(torchdiffeq.__dict__)] = torchdiffeq.__dict__
    return list(found.values())


@contextlib.contextmanager
def _patched(replacement: Callable, namespaces: Sequence[dict]) -> Iterator[None]:
    """odeint (and odeint_adjoint) replaced in `namespaces` while active."""
    with contextlib.ExitStack() as stack:
        for ns in namespaces:
            for key, value in list(ns.items()):
                if any(value is f for f in _ORIGINALS):
                    ns[key] = replacement
                    stack.callback(ns.__setitem__, key, value)
        yield


def _record(module: torch.nn.Module, examples: Sequence[torch.Tensor], namespaces: list[dict]) -> list[Call]:
    calls: list[Call] = []

    def recording(func: Any, y0: Any, t: Any, *, rtol: float = 1e-7, atol: float = 1e-9, method: str | None = None,
                  options: dict | None = None, event_fn: Any = None, **kwargs: Any) -> torch.Tensor:
        where = _caller()
        _check(func, y0, t, event_fn, where)
        calls.append(Call(func, t.detach().clone().to(torch.float32), method or DEFAULT_METHOD, dict(options or {}),
                          float(rtol), float(atol), where))
        return _ORIGINALS[0](func, y0, t, rtol=rtol, atol=atol, method=method, options=options)

    with _patched(recording, namespaces), torch.no_grad():
        module(*examples)
    return calls


@contextlib.contextmanager
def odeint_as_blocks(module: torch.nn.Module, examples: Sequence[torch.Tensor]) -> Iterator[None]:
    """While active, `module` holds an ODEBlock per odeint call of its forward (attributes odeint_0, ...) and each
    call is answered by its block; on exit the module is as it was."""
    namespaces = _namespaces(module)
    if not namespaces:
        yield
        return
    calls = _record(module, examples, namespaces)
    blocks = []
    for k, call in enumerate(calls):
        try:
            block = ODEBlock(call.func, call.t, call.method, call.options, rtol=call.rtol, atol=call.atol)
        except ValueError as exc:  # check_solver: a method or option the compiler does not emit
            raise CompileError(f"odeint at {call.where}: {exc}") from None
        blocks.append(block)
        module.add_module(f"odeint_{k}", block)
    served = [0]  # calls answered; torch.export may run the forward more than once, each run makes every call

    def replaying(func: Any, y0: torch.Tensor, t: Any, **kwargs: Any) -> _Final:
        call, block = calls[served[0] % len(calls)], blocks[served[0] % len(blocks)]
        served[0] += 1
        # torch.export traces proxies of the modules (subclasses of theirs): a call is matched by its place in the
        # forward and its func's class
        if not isinstance(func, type(call.func)):
            raise CompileError(f"odeint at {_caller()}: the forward calls odeint differently from its eager run "
                               "(the calls must not depend on the input values)")
        return _Final(block(y0), len(call.t), call.where)

    try:
        with _patched(replaying, namespaces):
            yield
    finally:
        for k in range(len(blocks)):
            delattr(module, f"odeint_{k}")

