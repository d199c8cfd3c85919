"""Pictures people would rather look at than read: loss curves and verify plots."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .artifacts import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def loss_curve(losses: list[float], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(np.arange(1, len(losses) + 1), losses)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training MSE (normalised)")
    ax.set_title(f"{title}: training loss")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def verify_plot(x: np.ndarray, truth: np.ndarray, torch_out: np.ndarray, device_out: np.ndarray,
                title: str, path: Path) -> None:
    """True function, PyTorch and device outputs (a panel per output), and the device-vs-PyTorch error below."""
    order = np.argsort(x[:, 0])
    xs = x[order, 0]
    outputs = truth.shape[1]
    fig, axes = plt.subplots(outputs + 1, 1, figsize=(7, 2.5 + 2.5 * outputs), sharex=True,
                             gridspec_kw={"height_ratios": [3] * outputs + [1]})
    # over one input the outputs are curves; over several, x0 alone does not order them: points
    line = {} if x.shape[1] == 1 else {"ls": "none", "marker": "."}
    for j, top in enumerate(axes[:-1]):
        top.plot(xs, truth[order, j], color="black", lw=3, alpha=0.35, label="true function",
                 **({} if x.shape[1] == 1 else {"ls": "none", "marker": "o", "ms": 5}))
        top.plot(xs, torch_out[order, j], color="tab:blue", lw=1.5, label="PyTorch", **line, ms=3)
        top.plot(xs, device_out[order, j], color="tab:orange", lw=1, label="device", **{"ls": "--", **line}, ms=1.5)
        top.set_ylabel("y" if outputs == 1 else f"y{j}")
    axes[0].legend()
    axes[0].set_title(title)
    bottom = axes[-1]
    for j in range(outputs):
        bottom.plot(xs, (device_out - torch_out)[order, j], lw=0.8, color="tab:red" if outputs == 1 else None,
                    label=f"y{j}")
    if outputs > 1:
        bottom.legend(fontsize=7, loc="upper right")
    bottom.set_ylabel("device − PyTorch")
    bottom.set_xlabel("x" if x.shape[1] == 1 else "x0")
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    _save(fig, path)


def classifier_plot(torch_logits: np.ndarray, device_logits: np.ndarray, title: str, path: Path) -> None:
    """Device logits against PyTorch's (a diagonal when they agree), and the error per test image."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(torch_logits.ravel(), device_logits.ravel(), s=3, alpha=0.5)
    left.set_xlabel("PyTorch logit")
    left.set_ylabel("device logit")
    left.set_title(title, fontsize=9)
    right.plot(np.max(np.abs(device_logits.astype(np.float64) - torch_logits), axis=1), lw=0.8, color="tab:red")
    right.set_xlabel("test image")
    right.set_ylabel("max |device − PyTorch| over the logits")
    right.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    _save(fig, path)


def sequence_plot(x: np.ndarray, target: np.ndarray, torch_out: np.ndarray, device_out: np.ndarray,
                  title: str, path: Path, shown: int = 3) -> None:
    """The first sequences step by step: input, target, PyTorch and device; the device-vs-PyTorch error below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    steps = np.arange(x.shape[1])
    for i in range(min(shown, len(x))):
        top.plot(steps, x[i, :, 0], color="gray", lw=0.8, alpha=0.6, label="input" if i == 0 else None)
        top.plot(steps, target[i, :, 0], color="black", lw=3, alpha=0.3, label="next sample" if i == 0 else None)
        top.plot(steps, torch_out[i, :, 0], color="tab:blue", lw=1.5, label="PyTorch" if i == 0 else None)
        top.plot(steps, device_out[i, :, 0], color="tab:orange", lw=1, ls="--", label="device" if i == 0 else None)
    top.set_ylabel("value")
    top.legend(fontsize=8)
    top.set_title(title, fontsize=9)
    error = np.max(np.abs(device_out.astype(np.float64) - torch_out), axis=(0, 2))
    bottom.plot(steps, error, color="tab:red", lw=0.8)
    bottom.set_ylabel("max |device − PyTorch|")
    bottom.set_xlabel("time step")
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    _save(fig, path)


def profile_bars(labels: list[str], values: list[float], shares: list[float], title: str, unit: str,
                 path: Path) -> None:
    """`invoke profile`'s chart: the most expensive instructions as horizontal bars, largest on top, each with
    its share of the inference."""
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(labels) + 1.4))
    ypos = np.arange(len(labels))[::-1]
    ax.barh(ypos, values, color="tab:blue")
    ax.set_yticks(ypos, labels, fontsize=8)
    for y, v, s in zip(ypos, values, shares, strict=True):
        ax.text(v, y, f" {s:.1f} %", va="center", fontsize=8)
    ax.set_xlabel(f"{unit} per inference")
    ax.set_xlim(0, max(values, default=1.0) * 1.15)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
