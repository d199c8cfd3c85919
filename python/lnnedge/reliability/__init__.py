"""Reliability campaigns: bad inputs thrown at every boundary of the kit, counted.

Each campaign (damaged model files, damaged serial frames, deploys killed at every step, bad
host-side input) is a function in a module of this package that returns a `Campaign`. The tests
call them with assertions (nothing crashed, hung or was wrongly accepted); `invoke reliability`
runs them at full size and writes build/reliability/<area>.json, from which `invoke readme-table`
renders the README's reliability table. No figure in that table is typed by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..paths import BUILD_DIR

RELIABILITY_DIR = BUILD_DIR / "reliability"


@dataclass(frozen=True)
class Campaign:
    """What one campaign tried and how each input ended.

    tried = rejected_cleanly + accepted_correctly + crashed + hung + wrongly_accepted.
    """

    area: str  # the boundary attacked: "model files", "serial frames (host → device)", ...
    how: str  # one line: what the inputs were and how they were made
    tried: int
    rejected_cleanly: int  # refused with a named error / message and a non-zero exit
    accepted_correctly: int  # valid input (or damage that changed nothing the receiver relies on), handled right
    crashed: int
    hung: int
    wrongly_accepted: int  # damaged input taken as valid, or a wrong result reported as right

    def __post_init__(self) -> None:
        parts = self.rejected_cleanly + self.accepted_correctly + self.crashed + self.hung + self.wrongly_accepted
        if parts != self.tried:
            raise ValueError(f"{self.area}: outcomes add up to {parts}, not the {self.tried} inputs tried")

    @property
    def clean(self) -> bool:
        return self.crashed == 0 and self.hung == 0 and self.wrongly_accepted == 0

    def save(self, name: str, directory: Path = RELIABILITY_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def load_all(directory: Path = RELIABILITY_DIR) -> list[Campaign]:
    """Every saved campaign, in file-name order."""
    return [Campaign(**json.loads(p.read_text())) for p in sorted(directory.glob("*.json"))]
