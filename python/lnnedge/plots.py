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
    """True function, PyTorch and device outputs, and the device-vs-PyTorch error below."""
    order = np.argsort(x[:, 0])
    xs = x[order, 0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(xs, truth[order, 0], color="black", lw=3, alpha=0.35, label="true function")
    top.plot(xs, torch_out[order, 0], color="tab:blue", lw=1.5, label="PyTorch")
    top.plot(xs, device_out[order, 0], color="tab:orange", lw=1, ls="--", label="device")
    top.set_ylabel("y")
    top.legend()
    top.set_title(title)
    bottom.plot(xs, (device_out - torch_out)[order, 0], color="tab:red", lw=0.8)
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
