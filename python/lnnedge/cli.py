"""`lnnedge`: the kit's tasks as a console command, for an installed package (`pip install lnnedge`).

    lnnedge --list                                    the tasks (the same as ./kit's and invoke's)
    lnnedge train --model ltc-sine                    in the current project (build/ here)
    lnnedge --project ~/proj verify --board qemu-all --junit build/junit.xml

The tasks are tasks.py's, loaded from the package's data (lnnedge.paths.DATA_DIR), so `./kit`, `invoke` in a
checkout and `lnnedge` run the same code. --project DIR picks the project directory (where build/ and the
user's own boards.yaml and recipes/ are); without it the project is found from the current directory.
"""

from __future__ import annotations

import importlib.util
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from invoke import Argument, Collection, Exit, Program


def _version() -> str:
    try:
        return version("lnnedge")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


class LnnedgeProgram(Program):
    """Invoke's Program with one more core flag, --project. It must take effect before anything imports
    lnnedge.paths (which fixes the project directory when first imported), so the tasks are loaded only after
    the core flags are parsed."""

    def core_args(self) -> list[Argument]:
        return [*super().core_args(),
                Argument(names=("project",), help="project directory: build/, boards.yaml and recipes/ there "
                                                      "(default: found from the current directory)")]

    def parse_collection(self) -> None:
        project = self.args.project.value
        if project:
            directory = Path(project).expanduser()
            if not directory.is_dir():
                raise Exit(f"error: --project {project}: no such directory", code=1)
            os.environ["LNNEDGE_PROJECT"] = str(directory.resolve())
        self.namespace = namespace()
        super().parse_collection()


def namespace() -> Collection:
    """tasks.py's collection, from the package's data (or the checkout)."""
    from .paths import DATA_DIR

    spec = importlib.util.spec_from_file_location("lnnedge_tasks", DATA_DIR / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ns


def main() -> None:
    # An empty collection until the core flags are parsed (a namespace, so Invoke does not look for tasks.py
    # itself); parse_collection puts tasks.py's in its place.
    LnnedgeProgram(name="lnnedge", binary="lnnedge", version=_version(), namespace=Collection()).run()
