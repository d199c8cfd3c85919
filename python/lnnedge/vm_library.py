"""The VM as an Arduino library (`invoke arduino-library`).

Arduino (1.5 library format) compiles every file under the library's src/ and puts only src/ on the include
path, while the VM keeps its public headers in vm/include: the library is assembled into one src/ from both,
with vm/library.properties at its root. PlatformIO needs no assembly: vm/library.json points at vm/src and
vm/include in place.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .errors import LnnedgeError
from .paths import VM_DIR


class LibraryError(LnnedgeError):
    """The Arduino library cannot be assembled."""


def vm_version() -> str:
    """LNN_VM_VERSION from vm/include/lnnvm.h, the version every manifest must carry."""
    found = re.search(r'^#define LNN_VM_VERSION "([^"]+)"$', (VM_DIR / "include" / "lnnvm.h").read_text(), re.M)
    if found is None:
        raise LibraryError("vm/include/lnnvm.h: no LNN_VM_VERSION line")
    return found.group(1)


def read_properties(path: Path) -> dict[str, str]:
    """A Java-style .properties file as Arduino reads it: key=value lines, # comments, blank lines."""
    props: dict[str, str] = {}
    for lno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" not in line:
            raise LibraryError(f"{path}:{lno}: not a key=value line: {line.strip()}")
        key, value = line.split("=", 1)
        props[key.strip()] = value.strip()
    return props


def arduino_library(dest: Path) -> Path:
    """Writes the library to dest/lnnvm (replacing one there): library.properties and src/ with the VM's
    sources and headers. Returns its directory."""
    version = read_properties(VM_DIR / "library.properties").get("version")
    if version != vm_version():
        raise LibraryError(f"vm/library.properties says version {version}, the VM is {vm_version()}")
    root = dest / "lnnvm"
    if root.exists():
        shutil.rmtree(root)
    src = root / "src"
    src.mkdir(parents=True)
    files = [*sorted((VM_DIR / "include").iterdir()), *sorted((VM_DIR / "src").iterdir())]
    for f in files:
        if (src / f.name).exists():  # one flat directory: a name in both would be silently lost
            raise LibraryError(f"vm/include and vm/src both have {f.name}")
        shutil.copy2(f, src / f.name)
    shutil.copy2(VM_DIR / "library.properties", root / "library.properties")
    return root
