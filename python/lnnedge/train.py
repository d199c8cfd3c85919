"""Training a recipe's model: seeded, reproducible, reporting each epoch as progress, with a loss curve.

Writes build/<model>/checkpoint.pt, train-metrics.json and loss.png.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data
from .artifacts import ArtifactError, MissingArtifact, atomic_write_bytes, atomic_write_text
from .errors import LnnedgeError
from .models import build_model
from .progress import Progress, silent
from .recipe import Recipe
from .threads import apply_policy


class TrainingDiverged(LnnedgeError, RuntimeError):
    pass



@dataclass(frozen=True)
class TrainResult:
    model: torch.nn.Module
    metrics: dict
    losses: list[float]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def train(recipe: Recipe, seed: int | None = None, epochs: int | None = None,
          progress: Progress = silent) -> TrainResult:
    """Train the recipe's model; `seed` and `epochs` override the recipe's; each epoch advances `progress`.
    torch runs on the kit's thread policy's number of threads (threads.py: one, unless $LNNEDGE_THREADS)."""
    apply_policy()
    spec = recipe.training
    seed = spec.seed if seed is None else seed
    epochs = spec.epochs if epochs is None else epochs
    seed_everything(seed)
    if recipe.classifier:
        return _train_classifier(recipe, seed, epochs, progress)
    if recipe.sequence:
        return _train_sequence(recipe, seed, epochs, progress)

    x_train, y_train, x_test, y_test = data.train_test(recipe.data)
    model = build_model(recipe.model)
    _set_normalisation(model, x_train, y_train)
    xt = torch.tensor(x_train, dtype=torch.float32)
    yt = torch.tensor(y_train, dtype=torch.float32)

    # The loss is computed on the normalised target so its scale is the same for every recipe.
    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = (model(x) - model.out_mean) / model.out_std
        target = (y - model.out_mean) / model.out_std
        return torch.mean((pred - target) ** 2)

    losses, seconds = _fit(recipe, model, xt, yt, loss_fn, seed, epochs, progress)

    rmse = test_rmse(model, x_test, y_test)
    metrics = {
        **_run_facts(recipe, seed, epochs, seconds, losses),
        "test_rmse": rmse,
        "target_rmse": recipe.tolerances.target_rmse,
        "passed": bool(rmse <= recipe.tolerances.target_rmse),
        "test_points": len(x_test),
    }
    return TrainResult(model, metrics, losses)


def _train_classifier(recipe: Recipe, seed: int, epochs: int, progress: Progress) -> TrainResult:
    """Cross-entropy on the logits, Adam with the cosine schedule; metric: held-out accuracy."""
    x_train, y_train, x_test, y_test = data.classification(recipe.data)
    model = build_model(recipe.model)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    model.train()
    losses, seconds = _fit(recipe, model, xt, yt, lambda x, y: torch.nn.functional.cross_entropy(model(x), y),
                           seed, epochs, progress)
    model.eval()
    accuracy = test_accuracy(model, x_test, y_test)
    target = recipe.tolerances.target_accuracy
    metrics = {
        **_run_facts(recipe, seed, epochs, seconds, losses),
        "train_accuracy": test_accuracy(model, x_train, y_train),
        "test_accuracy": accuracy,
        "target_accuracy": target,
        "passed": bool(accuracy >= target),
        "train_points": len(x_train),
        "test_points": len(x_test),
    }
    return TrainResult(model, metrics, losses)


def _train_sequence(recipe: Recipe, seed: int, epochs: int, progress: Progress) -> TrainResult:
    """Next-sample prediction over whole sequences (backpropagation through time); metric: held-out RMSE over
    every step."""
    from . import sequences

    x_train, y_train, x_test, y_test = sequences.train_test(recipe.data)
    model = build_model(recipe.model)
    features = x_train[..., :recipe.model.inputs]  # an irregular source's Δt column is time, not normalised
    _set_normalisation(model, features.reshape(-1, features.shape[-1]), y_train.reshape(-1, y_train.shape[-1]))
    if getattr(model, "bounded_output", False):  # outputs in (-1, 1) must still reach the largest target
        with torch.no_grad():
            model.out_std.copy_(torch.from_numpy(np.abs(y_train - model.out_mean.numpy()).max(axis=(0, 1))))
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    losses, seconds = _fit(recipe, model, xt, yt, lambda x, y: torch.mean(((model(x) - y) / model.out_std) ** 2),
                           seed, epochs, progress)
    model.eval()
    rmse = test_rmse(model, x_test, y_test)
    target = recipe.tolerances.target_rmse
    metrics = {
        **_run_facts(recipe, seed, epochs, seconds, losses),
        "test_rmse": rmse,
        "target_rmse": target,
        # what predicting "the next sample equals this one" scores: the bar the model has to clear
        "repeat_last_rmse": float(np.sqrt(np.mean((x_test[..., :1].astype(np.float64) - y_test) ** 2))),
        "passed": bool(rmse <= target),
        "train_sequences": len(x_train),
        "test_sequences": len(x_test),
    }
    return TrainResult(model, metrics, losses)


def _run_facts(recipe: Recipe, seed: int, epochs: int, seconds: float, losses: list[float]) -> dict:
    """The metrics every recipe kind reports about the training run itself."""
    return {"model": recipe.name, "seed": seed, "epochs": epochs, "train_seconds": round(seconds, 2),
            "final_train_loss": losses[-1], "torch_threads": torch.get_num_threads()}


def _fit(recipe: Recipe, model: torch.nn.Module, xt: torch.Tensor, yt: torch.Tensor, loss_fn, seed: int,
         epochs: int, progress: Progress) -> tuple[list[float], float]:
    """The training loop every recipe shares: Adam with a cosine learning-rate schedule, seeded shuffled
    mini-batches, gradient clipping, progress per epoch; stops on a non-finite loss. Returns (losses per
    epoch, seconds)."""
    spec = recipe.training
    optimiser = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    batches = math.ceil(len(xt) / spec.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: _cosine(step, epochs * batches, spec.lr_final / spec.lr))
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    started = time.perf_counter()
    bar = progress(f"train {recipe.name} seed {seed}", epochs, "epoch")
    try:
        for epoch in range(epochs):
            order = torch.randperm(len(xt), generator=generator)
            epoch_loss = 0.0
            for i in range(batches):
                idx = order[i * spec.batch_size:(i + 1) * spec.batch_size]
                loss = loss_fn(xt[idx], yt[idx])
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"loss became {loss.item()} at epoch {epoch} (seed {seed})")
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
                optimiser.step()
                schedule.step()
                epoch_loss += loss.item() * len(idx)
            losses.append(epoch_loss / len(xt))
            bar.advance(loss=f"{losses[-1]:.2e}")
    finally:
        bar.close()
    return losses, time.perf_counter() - started


def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """The model's outputs (logits for a classifier) as float32 numpy."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def test_accuracy(model: torch.nn.Module, x: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose largest logit is the label."""
    return float(np.mean(np.argmax(predict(model, x), axis=1) == labels))


def test_rmse(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """RMSE of the model against the true function at held-out points."""
    with torch.no_grad():
        pred = model(torch.tensor(x, dtype=torch.float32)).double().numpy()
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def _cosine(step: int, total: int, final_ratio: float) -> float:
    progress = min(step / max(total, 1), 1.0)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _set_normalisation(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> None:
    with torch.no_grad():
        model.in_mean.copy_(torch.tensor(x.mean(axis=0), dtype=torch.float32))
        model.in_std.copy_(torch.tensor(x.std(axis=0), dtype=torch.float32))
        model.out_mean.copy_(torch.tensor(y.mean(axis=0), dtype=torch.float32))
        model.out_std.copy_(torch.tensor(y.std(axis=0), dtype=torch.float32))


def save(result: TrainResult, recipe: Recipe, out_dir: Path) -> None:
    """checkpoint.pt, train-metrics.json and loss.png under out_dir, each written atomically."""
    import io

    buffer = io.BytesIO()
    torch.save({"recipe": recipe.name, "state_dict": result.model.state_dict(), "metrics": result.metrics}, buffer)
    atomic_write_bytes(out_dir / "checkpoint.pt", buffer.getvalue())
    atomic_write_text(out_dir / "train-metrics.json", json.dumps(result.metrics, indent=2) + "\n")
    from .plots import loss_curve

    loss_curve(result.losses, recipe.name, out_dir / "loss.png")


def load_checkpoint(recipe: Recipe, out_dir: Path) -> torch.nn.Module:
    path = out_dir / "checkpoint.pt"
    if not path.is_file():
        raise MissingArtifact(f"{path} does not exist: run `invoke train --model {recipe.name}` first")
    again = f"run `invoke train --model {recipe.name}` again"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file fails in pickle, zipfile or torch, each in its own way
        raise ArtifactError(f"{path} is not a checkpoint written by `invoke train` "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}): {again}") from None
    state = blob.get("state_dict") if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ArtifactError(f"{path} holds no model weights (no state_dict): {again}")
    model = build_model(recipe.model)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} does not match recipe {recipe.name}: {' '.join(str(exc).split())[:300]}; "
                            f"{again}") from None
    model.eval()
    return model
