"""Model recipes: architecture, data, training and tolerances, read from recipes/<name>.yaml.

Every field is checked on load; a mistake is a RecipeError that names the
file and the field, never a traceback from deep inside training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import LnnedgeError
from .expr import ExprError, number
from .paths import RECIPES_DIR


class RecipeError(LnnedgeError, ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    inputs: int
    hidden: int
    outputs: int
    method: str
    t_start: float
    t_end: float
    steps: int
    tau_min: float | None
    # feed-forward classifiers (kind mlp / cnn): hidden widths of an MLP, or the channels of a CNN's 3x3
    # convolutions over the input viewed as `image` (channels, height, width)
    layers: tuple[int, ...] = ()
    image: tuple[int, int, int] | None = None
    wiring: str = ""  # ncps models: "autoncp" or "fully-connected"


@dataclass(frozen=True)
class DataSpec:
    function: str
    ranges: tuple[tuple[float, float], ...]
    train_points: int
    test_points: int
    seed: int
    source: str = "function"  # "function": a target function over ranges; "digits": sklearn's 8x8 digits
    test_fraction: float = 0.25  # digits: the held-out share
    sequence_length: int = 0  # sequence sources (damped-oscillation): time steps per sequence
    noise: float = 0.0  # sequence sources: standard deviation of the noise on the inputs


@dataclass(frozen=True)
class TrainSpec:
    seed: int
    epochs: int
    batch_size: int
    lr: float
    lr_final: float
    grad_clip: float
    weight_decay: float


@dataclass(frozen=True)
class Tolerances:
    float32_max_abs_err: float
    target_rmse: float | None  # regression (LTC) recipes
    target_accuracy: float | None = None  # classifiers: the test accuracy training must reach


@dataclass(frozen=True)
class QuantSpec:
    scheme: str
    keep_float: tuple[str, ...]
    max_abs_err: float
    task_rmse: float


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    description: str
    model: ModelSpec
    data: DataSpec
    training: TrainSpec
    tolerances: Tolerances
    verify_points: int
    quantization: QuantSpec | None = None

    @property
    def classifier(self) -> bool:
        """A classifier (its outputs are logits, scored by accuracy) rather than a function fit."""
        return self.model.kind in CLASSIFIER_KINDS

    @property
    def sequence(self) -> bool:
        """A sequence model: one step per call, its hidden state carried between calls."""
        return self.model.kind in SEQUENCE_KINDS


def recipe_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    return RECIPES_DIR / f"{name_or_path}.yaml"


def available() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load(name_or_path: str) -> Recipe:
    path = recipe_path(name_or_path)
    if not path.is_file():
        raise RecipeError(f"recipe {name_or_path!r} not found at {path} (available: {', '.join(available())})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    return parse(raw, path)


CLASSIFIER_KINDS = ("mlp", "cnn")
SEQUENCE_KINDS = ("ltc-sequence", "ncps-cfc", "ncps-ltc")
NCPS_WIRINGS = ("autoncp", "fully-connected")
SEQUENCE_SOURCES = ("damped-oscillation",)
DATA_SOURCES = {"digits": (64, 10)}  # source -> (input features, classes)


def parse(raw: Any, path: Path) -> Recipe:
    reader = _Reader(path)
    top = reader.mapping(raw, "")
    model = reader.mapping(top.get("model"), "model")
    if model.get("kind") in CLASSIFIER_KINDS:
        return _parse_classifier(reader, top, model, path)
    if model.get("kind") in SEQUENCE_KINDS:
        return _parse_sequence(reader, top, model, path)
    solver = reader.mapping(model.get("solver", {}), "model.solver")
    data = reader.mapping(top.get("data"), "data")
    training = reader.mapping(top.get("training"), "training")
    tol = reader.mapping(top.get("tolerances"), "tolerances")
    verify = reader.mapping(top.get("verify", {}), "verify")

    inputs = reader.integer(model, "model", "inputs", minimum=1)
    method = reader.choice(solver, "model.solver", "method", ("euler", "midpoint", "rk4"), default="euler")
    ranges_raw = data.get("range")
    if ranges_raw is None:
        reader.fail("data.range", "is missing")
    if isinstance(ranges_raw, list) and len(ranges_raw) == 2 and not isinstance(ranges_raw[0], list):
        ranges_raw = [ranges_raw] * inputs
    if not isinstance(ranges_raw, list) or len(ranges_raw) != inputs:
        reader.fail("data.range", f"needs one [low, high] pair per input ({inputs})")
    ranges = tuple(reader.interval(r, f"data.range[{i}]") for i, r in enumerate(ranges_raw))

    spec = ModelSpec(
        kind=reader.choice(model, "model", "kind", ("ltc",)),
        inputs=inputs,
        hidden=reader.integer(model, "model", "hidden", minimum=1),
        outputs=reader.integer(model, "model", "outputs", minimum=1),
        method=method,
        t_start=reader.real(solver, "model.solver", "t_start", default=0.0),
        t_end=reader.real(solver, "model.solver", "t_end", default=5.0),
        steps=reader.integer(solver, "model.solver", "steps", minimum=2, default=10),
        tau_min=reader.real(model, "model", "tau_min", default=None),
    )
    if spec.t_end <= spec.t_start:
        reader.fail("model.solver.t_end", "must be greater than t_start")
    if spec.outputs != 1:
        reader.fail("model.outputs", "must be 1: the data function gives one value per point")
    function = reader.string(data, "data", "function")
    _check_function(reader, function, ranges)
    return Recipe(
        name=str(top.get("name", path.stem)),
        path=path,
        description=str(top.get("description", "")),
        model=spec,
        data=DataSpec(
            function=function,
            ranges=ranges,
            train_points=reader.integer(data, "data", "train_points", minimum=2),
            test_points=reader.integer(data, "data", "test_points", minimum=2),
            seed=reader.integer(data, "data", "seed", minimum=0, default=1234),
        ),
        training=_training(reader, training),
        tolerances=Tolerances(
            float32_max_abs_err=reader.real(tol, "tolerances", "float32_max_abs_err", positive=True),
            target_rmse=reader.real(tol, "tolerances", "target_rmse", positive=True),
        ),
        verify_points=reader.integer(verify, "verify", "points", minimum=1, default=1024),
        quantization=_quant(reader, top.get("quantization")),
    )


def _training(reader: _Reader, training: dict) -> TrainSpec:
    return TrainSpec(
        seed=reader.integer(training, "training", "seed", minimum=0, default=0),
        epochs=reader.integer(training, "training", "epochs", minimum=1),
        batch_size=reader.integer(training, "training", "batch_size", minimum=1),
        lr=reader.real(training, "training", "lr", positive=True),
        lr_final=reader.real(training, "training", "lr_final", default=0.0),
        grad_clip=reader.real(training, "training", "grad_clip", positive=True, default=1.0),
        weight_decay=reader.real(training, "training", "weight_decay", default=0.0),
    )


def _parse_sequence(reader: _Reader, top: dict, model: dict, path: Path) -> Recipe:
    """An LTC applied over sequences (kind ltc-sequence) on data generated in code."""
    solver = reader.mapping(model.get("solver", {}), "model.solver")
    data = reader.mapping(top.get("data"), "data")
    tol = reader.mapping(top.get("tolerances"), "tolerances")
    verify = reader.mapping(top.get("verify", {}), "verify")
    kind = reader.choice(model, "model", "kind", SEQUENCE_KINDS)
    ncps = kind.startswith("ncps-")
    spec = ModelSpec(
        kind=kind,
        inputs=reader.integer(model, "model", "inputs", minimum=1),
        hidden=reader.integer(model, "model", "units" if ncps else "hidden", minimum=3 if ncps else 1),
        outputs=reader.integer(model, "model", "outputs", minimum=1),
        method=reader.choice(solver, "model.solver", "method", ("euler", "midpoint", "rk4"), default="euler"),
        t_start=reader.real(solver, "model.solver", "t_start", default=0.0),
        t_end=reader.real(solver, "model.solver", "t_end", default=1.0),
        steps=reader.integer(solver, "model.solver", "steps", minimum=2, default=4),
        tau_min=reader.real(model, "model", "tau_min", default=None),
        wiring=reader.choice(model, "model", "wiring", NCPS_WIRINGS) if ncps else "",
    )
    if spec.t_end <= spec.t_start:
        reader.fail("model.solver.t_end", "must be greater than t_start")
    if ncps and spec.wiring == "autoncp" and spec.hidden < spec.outputs + 3:
        reader.fail("model.units", f"an AutoNCP wiring needs more than {spec.outputs + 2} units")
    if (spec.inputs, spec.outputs) != (1, 1):
        reader.fail("model", "a damped-oscillation sequence has 1 input and 1 output per step")
    return Recipe(
        name=str(top.get("name", path.stem)),
        path=path,
        description=str(top.get("description", "")),
        model=spec,
        data=DataSpec(
            function="", ranges=(),
            train_points=reader.integer(data, "data", "train_sequences", minimum=1),
            test_points=reader.integer(data, "data", "test_sequences", minimum=1),
            seed=reader.integer(data, "data", "seed", minimum=0, default=1234),
            source=reader.choice(data, "data", "source", SEQUENCE_SOURCES),
            sequence_length=reader.integer(data, "data", "length", minimum=1),
            noise=reader.real(data, "data", "noise", default=0.0),
        ),
        training=_training(reader, reader.mapping(top.get("training"), "training")),
        tolerances=Tolerances(
            float32_max_abs_err=reader.real(tol, "tolerances", "float32_max_abs_err", positive=True),
            target_rmse=reader.real(tol, "tolerances", "target_rmse", positive=True),
        ),
        verify_points=reader.integer(verify, "verify", "sequences", minimum=1, default=64),
        quantization=_quant(reader, top.get("quantization")),
    )


def _parse_classifier(reader: _Reader, top: dict, model: dict, path: Path) -> Recipe:
    """A feed-forward classifier on a bundled data set (kind mlp or cnn, data.source digits)."""
    data = reader.mapping(top.get("data"), "data")
    training = reader.mapping(top.get("training"), "training")
    tol = reader.mapping(top.get("tolerances"), "tolerances")
    kind = reader.choice(model, "model", "kind", CLASSIFIER_KINDS)
    source = reader.choice(data, "data", "source", tuple(DATA_SOURCES))
    features, classes = DATA_SOURCES[source]
    inputs = reader.integer(model, "model", "inputs", minimum=1)
    outputs = reader.integer(model, "model", "outputs", minimum=2)
    if (inputs, outputs) != (features, classes):
        reader.fail("model", f"data source {source} has {features} inputs and {classes} classes, "
                             f"the model {inputs} and {outputs}")
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers):
        reader.fail("model.layers", f"must be a non-empty list of positive integers, got {layers!r}")
    image = None
    if kind == "cnn":
        raw_image = model.get("image")
        if (not isinstance(raw_image, list) or len(raw_image) != 3
                or not all(isinstance(n, int) and n >= 1 for n in raw_image)):
            reader.fail("model.image", f"must be [channels, height, width], got {raw_image!r}")
        image = tuple(raw_image)
        if image[0] * image[1] * image[2] != inputs:
            reader.fail("model.image", f"{image} does not hold the {inputs} inputs")
    fraction = reader.real(data, "data", "test_fraction", positive=True, default=0.25)
    if not fraction < 1:
        reader.fail("data.test_fraction", f"must be below 1, got {fraction}")
    target = reader.real(tol, "tolerances", "target_accuracy", positive=True)
    if target > 1:
        reader.fail("tolerances.target_accuracy", f"is a fraction (0..1], got {target}")
    return Recipe(
        name=str(top.get("name", path.stem)),
        path=path,
        description=str(top.get("description", "")),
        model=ModelSpec(kind=kind, inputs=inputs, hidden=layers[0], outputs=outputs, method="none",
                        t_start=0.0, t_end=0.0, steps=0, tau_min=None, layers=tuple(layers), image=image),
        data=DataSpec(function="", ranges=(), train_points=0, test_points=0,
                      seed=reader.integer(data, "data", "seed", minimum=0, default=1234),
                      source=source, test_fraction=fraction),
        training=_training(reader, training),
        tolerances=Tolerances(
            float32_max_abs_err=reader.real(tol, "tolerances", "float32_max_abs_err", positive=True),
            target_rmse=None,
            target_accuracy=target,
        ),
        verify_points=0,  # a classifier verifies on its whole test set
        quantization=_quant(reader, top.get("quantization")),
    )


def _quant(reader: _Reader, raw: Any) -> QuantSpec | None:
    if raw is None:
        return None
    q = reader.mapping(raw, "quantization")
    keep = q.get("keep_float", [])
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        reader.fail("quantization.keep_float", f"must be a list of module names, got {keep!r}")
    tol = reader.mapping(q.get("tolerance"), "quantization.tolerance")
    return QuantSpec(
        scheme=reader.choice(q, "quantization", "scheme", ("int8", "f16")),
        keep_float=tuple(keep),
        max_abs_err=reader.real(tol, "quantization.tolerance", "max_abs_err", positive=True),
        task_rmse=reader.real(tol, "quantization.tolerance", "task_rmse", positive=True),
    )


def _check_function(reader: _Reader, function: str, ranges: tuple[tuple[float, float], ...]) -> None:
    """Evaluate the target function at the range's corners and middle, so a typo fails at load."""
    import numpy as np

    from .expr import evaluate

    points = np.array([[lo for lo, _ in ranges], [hi for _, hi in ranges], [(lo + hi) / 2 for lo, hi in ranges]])
    names = {f"x{i}": points[:, i] for i in range(len(ranges))}
    if len(ranges) == 1:
        names["x"] = points[:, 0]
    try:
        with np.errstate(all="ignore"):
            values = np.asarray(evaluate(function, names), dtype=np.float64)
    except ExprError as exc:
        reader.fail("data.function", str(exc))
    if values.size not in (1, len(points)):
        reader.fail("data.function", f"must give one value per point, got shape {values.shape}")


class _Reader:
    """Typed field access that names file and field in every error."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, field: str, problem: str):
        raise RecipeError(f"{self.path}: {field}: {problem}")

    def mapping(self, value: Any, field: str) -> dict:
        if not isinstance(value, dict):
            self.fail(field or "<top level>", "must be a mapping of fields" if value is not None else "is missing")
        return value

    def _get(self, section: dict, where: str, key: str, default: Any) -> Any:
        if key not in section:
            if default is _REQUIRED:
                self.fail(f"{where}.{key}", "is missing")
            return default
        return section[key]

    def integer(self, section: dict, where: str, key: str, minimum: int, default: Any = None) -> int:
        value = self._get(section, where, key, _REQUIRED if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{where}.{key}", f"must be an integer, got {value!r}")
        if value < minimum:
            self.fail(f"{where}.{key}", f"must be >= {minimum}, got {value}")
        return value

    def real(self, section: dict, where: str, key: str, positive: bool = False, default: Any = "required"):
        value = self._get(section, where, key, _REQUIRED if default == "required" else default)
        if value is None:
            return None
        try:
            result = number(value)
        except (ExprError, ValueError, TypeError):
            self.fail(f"{where}.{key}", f"must be a number, got {value!r}")
        if positive and not result > 0:
            self.fail(f"{where}.{key}", f"must be > 0, got {value!r}")
        return result

    def string(self, section: dict, where: str, key: str) -> str:
        value = self._get(section, where, key, _REQUIRED)
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{where}.{key}", f"must be a non-empty string, got {value!r}")
        return value

    def choice(self, section: dict, where: str, key: str, options: tuple[str, ...], default: Any = None) -> str:
        value = self._get(section, where, key, _REQUIRED if default is None else default)
        if value not in options:
            self.fail(f"{where}.{key}", f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def interval(self, value: Any, field: str) -> tuple[float, float]:
        if not isinstance(value, list) or len(value) != 2:
            self.fail(field, f"must be [low, high], got {value!r}")
        try:
            low, high = number(value[0]), number(value[1])
        except (ExprError, ValueError, TypeError):
            self.fail(field, f"must be two numbers, got {value!r}")
        if not high > low:
            self.fail(field, f"high must be greater than low, got {value!r}")
        return low, high


_REQUIRED = object()
