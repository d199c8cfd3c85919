"""Where the kit's files live: the repository root and the build directory."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VM_DIR = ROOT / "vm"
RECIPES_DIR = ROOT / "recipes"
BUILD_DIR = ROOT / "build"


def model_dir(model: str) -> Path:
    """build/<model>/, created on demand."""
    path = BUILD_DIR / model
    path.mkdir(parents=True, exist_ok=True)
    return path
