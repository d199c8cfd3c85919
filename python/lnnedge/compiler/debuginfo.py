"""Debug info beside the model, not in it: model.lnnb.debug.json.

The VM never reads the tensor names, the model's description (recipe, solver, quantization), the
source map (which PyTorch line and module each instruction computes) or the pass list, so the deployed
.lnnb does not carry them: no source lines on the device, and 2-3 KB less to flash, download and hold
in a microcontroller's RAM (the file keeps the requirements a deploy checks). `verify --trace` reads
the source map here. The map describes the program's structure
(the tensor table and the code), so it is keyed by a digest of those two sections: it stays valid
when only constant values change (a nudged weight is still traced by name) and is refused for
another program.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import lnnb
from ..artifacts import ArtifactError, atomic_write_text
from ..isa import const

SUFFIX = ".debug.json"


def path_for(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + SUFFIX)


def structure_digest(data: bytes) -> str:
    """sha256 of the tensor table and the code of an .lnnb."""
    sections = lnnb.section_offsets(data)
    digest = hashlib.sha256()
    for kind in ("SEC_TENSORS", "SEC_CODE"):
        start, size = sections.get(const(kind), (0, 0))
        digest.update(data[start:start + size])
    return digest.hexdigest()


def save(model_path: Path, data: bytes, program: lnnb.Program, debug: tuple[dict, ...], passes: list[str]) -> Path:
    """`program`: the compiled program with its tensor names and metadata (`data` is the device file)."""
    path = path_for(model_path)
    info = {"structure_sha256": structure_digest(data), "meta": program.meta, "names": list(program.names),
            "passes": passes, "debug": list(debug)}
    atomic_write_text(path, json.dumps(info, indent=1, sort_keys=True) + "\n")
    return path


def load(model_path: Path, data: bytes) -> list[dict]:
    """The source map of the program in `data` (compiled to model_path); [] when there is none."""
    path = path_for(model_path)
    if not path.is_file():
        return []
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable debug info ({exc}); recompile the model") from exc
    if not isinstance(info, dict) or info.get("structure_sha256") != structure_digest(data):
        raise ArtifactError(f"{path} describes another program than {model_path.name}: recompile the model")
    return list(info.get("debug", []))
