"""Where the kit's files live: its data, and the project it works in.

DATA_DIR holds what the kit ships: the VM's C sources (vm/), targets/, toolchains/, recipes/, the example
boards.yaml and tasks.py. An installed package (a wheel, `pip install .`) carries them in lnnedge/data/ (setup.py
copies them there); run from a source checkout, they are the checkout's own directories.

PROJECT_DIR is where the user works: build/ (every artefact), and optionally their own boards.yaml and
recipes/<name>.yaml, which take precedence over the shipped ones. It is $LNNEDGE_PROJECT (`lnnedge --project
DIR` sets it), else the nearest directory at or above the current one holding a boards.yaml, else — run from a
checkout — the checkout, else the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_PACKAGED = PACKAGE_DIR / "data"
_CHECKOUT = PACKAGE_DIR.parent.parent  # python/lnnedge/ -> the repository, when this is a source checkout
PROJECT_ENV = "LNNEDGE_PROJECT"


def _data_dir() -> Path:
    if (_PACKAGED / "vm").is_dir():
        return _PACKAGED
    if (_CHECKOUT / "vm").is_dir() and (_CHECKOUT / "python" / "lnnedge").is_dir():
        return _CHECKOUT
    raise RuntimeError(f"lnnedge's data is neither in {_PACKAGED} nor in a source checkout at {_CHECKOUT}: "
                       "reinstall the package")


def find_project(start: Path | None = None) -> Path:
    """The project directory (see the module's docstring)."""
    given = os.environ.get(PROJECT_ENV)
    if given:
        return Path(given).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "boards.yaml").is_file():
            return directory
    return DATA_DIR if DATA_DIR == _CHECKOUT else here


DATA_DIR = _data_dir()
VM_DIR = DATA_DIR / "vm"
ROOT = DATA_DIR  # the shipped files' root: targets/, toolchains/, a target's firmware make_dir are under it
PROJECT_DIR = find_project()
BUILD_DIR = PROJECT_DIR / "build"
RECIPES_DIR = DATA_DIR / "recipes"  # the shipped recipes; a project's recipes/ comes first (recipe.py)
PROJECT_RECIPES_DIR = PROJECT_DIR / "recipes"


def model_dir(model: str) -> Path:
    """build/<model>/, created on demand."""
    path = BUILD_DIR / model
    path.mkdir(parents=True, exist_ok=True)
    return path
