"""Model recipes: architecture, data, training and tolerances, read from recipes/<name>.yaml.

Every key is checked on load against a typed schema per model kind (schema.py: types, ranges, finite
numbers, unknown keys refused with a did-you-mean); a mistake is a RecipeError that names the file,
the key and the value, never a traceback from deep inside training. The schemas describe the file as
written; `Recipe` and its parts are what the rest of the kit reads. (Over 400 lines: the kinds'
schemas and their conversion are read best side by side.)
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError

from .errors import LnnedgeError
from .expr import ExprError
from .paths import PROJECT_RECIPES_DIR, RECIPES_DIR
from .schema import FileModel, Int, Name, Real, Text, check, rule, safe_name


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
    step_size: float | None = None  # torchdiffeq's options={"step_size": ...}: its own grid of equal steps
    rtol: float = 1e-7  # odeint's tolerances (the adaptive methods'; torchdiffeq's defaults)
    atol: float = 1e-9
    # feed-forward classifiers (kind mlp / cnn): hidden widths of an MLP, or the channels of a CNN's 3x3
    # convolutions over the input viewed as `image` (channels, height, width)
    layers: tuple[int, ...] = ()
    image: tuple[int, int, int] | None = None
    wiring: str = ""  # ncps models: "autoncp" or "fully-connected"
    mixed_memory: bool = False  # ncps models: ncps's LSTM cell beside the liquid cell
    num_layers: int = 1  # recurrent baselines (kind lstm / gru / rnn): stacked layers
    timespans: bool = False  # ncps models: each step's elapsed time is a run-time input (a last input column)


@dataclass(frozen=True)
class DataSpec:
    functions: tuple[str, ...]  # function fits: one target expression per output
    ranges: tuple[tuple[float, float], ...]
    train_points: int
    test_points: int
    seed: int
    source: str = "function"  # "function": a target function over ranges; "digits": sklearn's 8x8 digits
    test_fraction: float = 0.25  # digits: the held-out share
    sequence_length: int = 0  # sequence sources (damped-oscillation, irregular-oscillation): steps per sequence
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
    own = PROJECT_RECIPES_DIR / f"{name_or_path}.yaml"  # the project's own recipe of that name comes first
    return own if own.is_file() else RECIPES_DIR / f"{name_or_path}.yaml"


def available() -> list[str]:
    return sorted({p.stem for d in (PROJECT_RECIPES_DIR, RECIPES_DIR) for p in d.glob("*.yaml")})


def load(name_or_path: str) -> Recipe:
    path = recipe_path(name_or_path)
    if not path.is_file():
        raise RecipeError(f"recipe {name_or_path!r} not found at {path} (available: {', '.join(available())})")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse(raw, path)


CLASSIFIER_KINDS = ("mlp", "cnn")
SEQUENCE_KINDS = ("ltc-sequence", "ncps-cfc", "ncps-ltc", "lstm", "gru", "rnn")
# sequence sources; the irregular one sampled at random times, each input row carrying its Δt (sequences.py)
SEQUENCE_SOURCES = ("damped-oscillation", "irregular-oscillation")
NCPS_WIRINGS = ("autoncp", "fully-connected")
DATA_SOURCES = {"digits": (64, 10)}  # source -> (input features, classes)
ADAPTIVE_METHODS = ("dopri5", "bosh3", "adaptive_heun", "fehlberg2", "dopri8")  # models.ltc.ADAPTIVE
METHODS = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams", *ADAPTIVE_METHODS)  # models.ltc.SOLVERS
Seed = Int(ge=0, le=2**32 - 1)  # numpy's seeds are 32-bit


# ---- the file as written, one schema per model kind --------------------------------------------------------


class Solver(FileModel):
    method: Literal[METHODS] = "euler"
    t_start: Real() = 0.0
    t_end: Real() = 5.0
    steps: Int(ge=2) = 10  # time points of the solve (steps - 1 solver steps)
    step_size: Real(gt=0) | None = None  # torchdiffeq steps of this size instead (the last one partial)
    rtol: Real(gt=0) = 1e-7  # odeint's rtol / atol: the adaptive methods' (dopri5 ...) step-size control
    atol: Real(ge=0) = 1e-9

    @model_validator(mode="after")
    def _forward(self) -> Solver:
        if not self.t_end > self.t_start:
            raise rule(f"t_end ({self.t_end:g}) must be greater than t_start ({self.t_start:g})")
        if self.step_size is not None and self.method in ADAPTIVE_METHODS:
            raise rule(f"step_size is for the fixed-grid methods; {self.method} chooses its steps (rtol, atol)")
        if self.step_size is not None and (self.t_end - self.t_start) / self.step_size > 0xFFFF:
            raise rule(f"step_size ({self.step_size:g}) takes more than 65535 steps over [{self.t_start:g}, "
                       f"{self.t_end:g}], the VM's loop limit")
        return self


class SequenceSolver(Solver):
    t_end: Real() = 1.0
    steps: Int(ge=2) = 4


class Training(FileModel):
    seed: Seed = 0
    epochs: Int(ge=1)
    batch_size: Int(ge=1)
    lr: Real(gt=0)
    lr_final: Real(ge=0) = 0.0
    grad_clip: Real(gt=0) = 1.0
    weight_decay: Real(ge=0) = 0.0


class FitTolerances(FileModel):
    float32_max_abs_err: Real(gt=0)  # device vs PyTorch
    target_rmse: Real(gt=0)  # PyTorch vs the truth, held-out data


class ClassifierTolerances(FileModel):
    float32_max_abs_err: Real(gt=0)
    target_accuracy: Real(gt=0, le=1)


class QuantTolerance(FileModel):
    max_abs_err: Real(gt=0)
    task_rmse: Real(gt=0)


class Quantization(FileModel):
    scheme: Literal["int8", "w8a16", "f16"]
    keep_float: tuple[Text, ...] = ()
    tolerance: QuantTolerance


def _pair_list(value: Any) -> Any:
    """`range: [0, 2*pi]` is one pair for every input."""
    if isinstance(value, list) and len(value) == 2 and not any(isinstance(v, list) for v in value):
        return [value]
    return value


def _increasing(pair: tuple[float, float]) -> tuple[float, float]:
    if not pair[1] > pair[0]:
        raise PydanticCustomError("rule", "high must be greater than low, got [{low}, {high}]",
                                  {"low": f"{pair[0]:g}", "high": f"{pair[1]:g}"})
    return pair


Interval = Annotated[tuple[Real(), Real()], AfterValidator(_increasing)]


class _RecipeFile(FileModel):
    name: Name | None = None  # build/<name>/; the file's name when not given
    description: str = ""
    training: Training
    quantization: Quantization | None = None


class _LTCSizes(FileModel):
    """What the kit's own LTC models (function fit and sequence) share."""

    inputs: Int(ge=1)
    hidden: Int(ge=1)
    outputs: Int(ge=1)
    tau_min: Real(gt=0) | None = None


class FitModel(_LTCSizes):
    kind: Literal["ltc"]
    solver: Solver = Solver()


def _one_or_list(value: Any) -> Any:
    """`function: sin(x)` is the list of one expression: a single-output fit."""
    return [value] if isinstance(value, str) else value


class FitData(FileModel):
    # of x (one input) or x0, x1, ... (recipes/README: the expression language); a list: one per output
    function: Annotated[list[Text], BeforeValidator(_one_or_list), Field(min_length=1)]
    range: Annotated[list[Interval], BeforeValidator(_pair_list), Field(min_length=1)]
    train_points: Int(ge=2)
    test_points: Int(ge=2)
    seed: Seed = 1234


class FitVerify(FileModel):
    points: Int(ge=1) = 1024


class FitRecipe(_RecipeFile):
    """An LTC fitting a function of its inputs (kind ltc)."""

    model: FitModel
    data: FitData
    tolerances: FitTolerances
    verify: FitVerify = FitVerify()


class SequenceData(FileModel):
    source: Literal[SEQUENCE_SOURCES]
    length: Int(ge=1)  # samples per sequence
    noise: Real(ge=0) = 0.0  # standard deviation of the noise on the inputs
    train_sequences: Int(ge=1)
    test_sequences: Int(ge=1)
    seed: Seed = 1234


class SequenceVerify(FileModel):
    sequences: Int(ge=1) = 64


class LTCSequenceModel(_LTCSizes):
    kind: Literal["ltc-sequence"]
    solver: SequenceSolver = SequenceSolver()


class NcpsModel(FileModel):
    kind: Literal["ncps-cfc", "ncps-ltc"]
    inputs: Int(ge=1)
    units: Int(ge=3)
    outputs: Int(ge=1)
    wiring: Literal[NCPS_WIRINGS]
    mixed_memory: bool = False
    timespans: bool = False  # the elapsed time of each step a run-time input (ncps's timespans)


class RecurrentModel(FileModel):
    kind: Literal["lstm", "gru", "rnn"]
    inputs: Int(ge=1)
    hidden: Int(ge=1)
    outputs: Int(ge=1)
    layers: Int(ge=1) = 1


class LTCSequenceRecipe(_RecipeFile):
    """An LTC applied over sequences, one step per call (kind ltc-sequence)."""

    model: LTCSequenceModel
    data: SequenceData
    tolerances: FitTolerances
    verify: SequenceVerify = SequenceVerify()


class NcpsRecipe(LTCSequenceRecipe):
    """A model of the ncps library over sequences (kind ncps-cfc, ncps-ltc)."""

    model: NcpsModel


class RecurrentRecipe(LTCSequenceRecipe):
    """A PyTorch nn.LSTM / GRU / RNN over sequences, one step per call (kind lstm, gru, rnn)."""

    model: RecurrentModel


class MLPModel(FileModel):
    kind: Literal["mlp"]
    inputs: Int(ge=1)
    outputs: Int(ge=2)  # logits
    layers: Annotated[list[Int(ge=1)], Field(min_length=1)]  # hidden widths (cnn: channels of the convolutions)


class CNNModel(MLPModel):
    kind: Literal["cnn"]
    image: tuple[Int(ge=1), Int(ge=1), Int(ge=1)]  # channels, height, width


class ClassifierData(FileModel):
    source: Literal[tuple(DATA_SOURCES)]
    test_fraction: Real(gt=0, lt=1) = 0.25
    seed: Seed = 1234


class MLPRecipe(_RecipeFile):
    """A feed-forward classifier on a bundled data set (kind mlp)."""

    model: MLPModel
    data: ClassifierData
    tolerances: ClassifierTolerances


class CNNRecipe(MLPRecipe):
    """A convolutional classifier (kind cnn)."""

    model: CNNModel


RECIPE_FILES: dict[str, type[_RecipeFile]] = {
    "ltc": FitRecipe, "ltc-sequence": LTCSequenceRecipe, "ncps-cfc": NcpsRecipe, "ncps-ltc": NcpsRecipe,
    "lstm": RecurrentRecipe, "gru": RecurrentRecipe, "rnn": RecurrentRecipe, "mlp": MLPRecipe, "cnn": CNNRecipe}


def json_schema() -> dict:
    """The JSON Schema of recipes/*.yaml, for editors: one of the kinds' schemas."""
    return TypeAdapter(functools.reduce(operator.or_, dict.fromkeys(RECIPE_FILES.values()))).json_schema()


# ---- from the file to a Recipe ------------------------------------------------------------------------------


def _fail(path: Path, key: str, problem: str):
    raise RecipeError(f"{path}: {key}: {problem}")


def parse(raw: Any, path: Path) -> Recipe:
    model = raw.get("model") if isinstance(raw, dict) else None
    kind = model.get("kind") if isinstance(model, dict) else None
    if isinstance(model, dict) and kind not in RECIPE_FILES:
        _fail(path, "model.kind", "is missing" if kind is None else
              f"must be one of {', '.join(RECIPE_FILES)}, got {kind!r}")
    f = check(RECIPE_FILES.get(kind, FitRecipe), raw, path, RecipeError)
    try:
        name = f.name or safe_name(path.stem)
    except PydanticCustomError as exc:
        _fail(path, "name", f"{exc.message()}: the file's name; give the recipe a `name:`")
    quant = None if f.quantization is None else QuantSpec(
        scheme=f.quantization.scheme, keep_float=f.quantization.keep_float,
        max_abs_err=f.quantization.tolerance.max_abs_err, task_rmse=f.quantization.tolerance.task_rmse)
    t = f.training
    common = {"name": name, "path": path, "description": f.description, "quantization": quant,
              "training": TrainSpec(seed=t.seed, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr,
                                    lr_final=t.lr_final, grad_clip=t.grad_clip, weight_decay=t.weight_decay)}
    if isinstance(f, FitRecipe):
        return _fit(f, path, common)
    if isinstance(f, LTCSequenceRecipe):
        return _sequence(f, path, common)
    return _classifier(f, path, common)


def _fit(f: FitRecipe, path: Path, common: dict) -> Recipe:
    m, d = f.model, f.data
    ranges = tuple(d.range) * m.inputs if len(d.range) == 1 else tuple(d.range)
    if len(ranges) != m.inputs:
        _fail(path, "data.range", f"needs one [low, high] pair per input ({m.inputs}), got {len(d.range)}")
    if m.outputs != len(d.function):
        _fail(path, "model.outputs", f"must be the number of data.function expressions ({len(d.function)}: one "
                                     f"per output), got {m.outputs}")
    for i, function in enumerate(d.function):
        _check_function(path, "data.function" + (f"[{i}]" if len(d.function) > 1 else ""), function, ranges)
    s = m.solver
    return Recipe(
        model=ModelSpec(kind=m.kind, inputs=m.inputs, hidden=m.hidden, outputs=m.outputs, method=s.method,
                        t_start=s.t_start, t_end=s.t_end, steps=s.steps, tau_min=m.tau_min, step_size=s.step_size,
                        rtol=s.rtol, atol=s.atol),
        data=DataSpec(functions=tuple(d.function), ranges=ranges, train_points=d.train_points,
                      test_points=d.test_points, seed=d.seed),
        tolerances=Tolerances(float32_max_abs_err=f.tolerances.float32_max_abs_err,
                              target_rmse=f.tolerances.target_rmse),
        verify_points=f.verify.points, **common)


def _sequence(f: LTCSequenceRecipe, path: Path, common: dict) -> Recipe:
    m, d = f.model, f.data
    if isinstance(m, NcpsModel):
        s, hidden, wiring, tau_min = SequenceSolver(), m.units, m.wiring, None
        if wiring == "autoncp" and m.units < m.outputs + 3:
            _fail(path, "model.units", f"an AutoNCP wiring needs more than {m.outputs + 2} units, got {m.units}")
    elif isinstance(m, RecurrentModel):
        s, hidden, wiring, tau_min = SequenceSolver(), m.hidden, "", None
    else:
        s, hidden, wiring, tau_min = m.solver, m.hidden, "", m.tau_min
    if (m.inputs, m.outputs) != (1, 1):
        _fail(path, "model", f"a {d.source} sequence has 1 input and 1 output per step")
    timespans = getattr(m, "timespans", False)
    if timespans and d.source != "irregular-oscillation":
        _fail(path, "model.timespans", f"needs the elapsed time of each step: data.source irregular-oscillation, "
                                       f"got {d.source}")
    if d.source == "irregular-oscillation" and not isinstance(m, NcpsModel):
        _fail(path, "data.source", f"irregular-oscillation rows carry their elapsed time, which only the ncps "
                                   f"models (ncps-cfc, ncps-ltc) take; model.kind is {m.kind}")
    return Recipe(
        model=ModelSpec(kind=m.kind, inputs=m.inputs, hidden=hidden, outputs=m.outputs, method=s.method,
                        t_start=s.t_start, t_end=s.t_end, steps=s.steps, tau_min=tau_min, wiring=wiring,
                        step_size=s.step_size, mixed_memory=getattr(m, "mixed_memory", False),
                        num_layers=getattr(m, "layers", 1), timespans=timespans),
        data=DataSpec(functions=(), ranges=(), train_points=d.train_sequences, test_points=d.test_sequences,
                      seed=d.seed, source=d.source, sequence_length=d.length, noise=d.noise),
        tolerances=Tolerances(float32_max_abs_err=f.tolerances.float32_max_abs_err,
                              target_rmse=f.tolerances.target_rmse),
        verify_points=f.verify.sequences, **common)


def _classifier(f: MLPRecipe, path: Path, common: dict) -> Recipe:
    m, d = f.model, f.data
    features, classes = DATA_SOURCES[d.source]
    if (m.inputs, m.outputs) != (features, classes):
        _fail(path, "model", f"data source {d.source} has {features} inputs and {classes} classes, "
                             f"the model {m.inputs} and {m.outputs}")
    image = getattr(m, "image", None)
    if image is not None and image[0] * image[1] * image[2] != m.inputs:
        _fail(path, "model.image", f"{list(image)} does not hold the {m.inputs} inputs")
    return Recipe(
        model=ModelSpec(kind=m.kind, inputs=m.inputs, hidden=m.layers[0], outputs=m.outputs, method="none",
                        t_start=0.0, t_end=0.0, steps=0, tau_min=None, layers=tuple(m.layers), image=image),
        data=DataSpec(functions=(), ranges=(), train_points=0, test_points=0, seed=d.seed, source=d.source,
                      test_fraction=d.test_fraction),
        tolerances=Tolerances(float32_max_abs_err=f.tolerances.float32_max_abs_err, target_rmse=None,
                              target_accuracy=f.tolerances.target_accuracy),
        verify_points=0,  # a classifier verifies on its whole test set
        **common)


def _check_function(path: Path, key: str, function: str, ranges: tuple[tuple[float, float], ...]) -> None:
    """Evaluate the target function at the range's corners and middle, so a typo (or a pole, log(0)) fails at
    load."""
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
        _fail(path, key, str(exc))
    if values.size not in (1, len(points)):
        _fail(path, key, f"must give one value per point, got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(np.broadcast_to(values, (len(points),))))
    if bad.size:
        at = ", ".join(f"{v:g}" for v in points[bad[0]])
        _fail(path, key, f"{function!r} is not finite at ({at}): {values.flat[bad[0] % values.size]}")
