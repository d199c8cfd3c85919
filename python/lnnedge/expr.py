"""Safe evaluation of the small math expressions recipes use ("sin(x) + 0.5*sin(3*x)", "2*pi").

Only numbers, the names x / x0..x9 / pi / e, + - * / ** and a fixed set of
numpy functions are allowed; anything else is an ExprError naming the culprit.
Numbers are float64 (never int64, which wraps: 2**64 would be 0).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import numpy as np

from .errors import LnnedgeError

FUNCTIONS = {name: getattr(np, name) for name in ("sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "abs")}
_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive}


class ExprError(LnnedgeError, ValueError):
    pass


def evaluate(text: str, names: Mapping[str, object]):
    """Evaluate `text` with the given variables (plus pi and e)."""
    try:
        tree = ast.parse(str(text), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"cannot parse expression {text!r}: {exc.msg}") from None
    scope = {"pi": np.pi, "e": np.e, **names}

    def walk(node: ast.AST):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            try:
                return np.float64(node.value)
            except OverflowError:
                raise ExprError(f"number {ast.unparse(node)[:20]}... is too large in {text!r}") from None
        if isinstance(node, ast.Name):
            if node.id not in scope:
                raise ExprError(f"unknown name {node.id!r} in {text!r} (known: {', '.join(sorted(scope))})")
            return scope[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
            if node.keywords or len(node.args) != 1:
                raise ExprError(f"{node.func.id}() takes exactly one argument in {text!r}")
            return FUNCTIONS[node.func.id](walk(node.args[0]))
        raise ExprError(f"unsupported syntax {ast.unparse(node)!r} in {text!r}")

    return walk(tree)


def number(text: object) -> float:
    """A recipe number that may be written as an expression ("2*pi"); an overflow gives inf, for the caller to
    refuse."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    with np.errstate(all="ignore"):
        return float(evaluate(str(text), {}))
