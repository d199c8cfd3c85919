"""The wheel's data: setuptools packages python/lnnedge (pyproject.toml); build_py below also copies what the kit
ships beside the Python code — the VM's C sources, targets, toolchains, recipes, the example boards.yaml and
tasks.py — into lnnedge/data/ of the build, where lnnedge.paths finds them once installed outside a checkout.
An editable install (./kit's `pip install -e .`) copies nothing: it reads the checkout's own files."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("vm", "targets", "toolchains", "recipes", "boards.yaml", "tasks.py")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", "*.a", "*.so", "*.d")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data = Path(self.build_lib) / "lnnedge" / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        for name in SHIPPED:
            source = HERE / name
            if source.is_dir():
                shutil.copytree(source, data / name, ignore=SKIP)
            else:
                shutil.copy2(source, data / name)


# build/python-package: setuptools' own build/ would mix its files with the kit's artefacts in build/.
setup(cmdclass={"build_py": BuildPyWithData}, options={"build": {"build_base": "build/python-package"}})
