"""build: the C VM (runner + library) or a board's firmware for one target."""

from __future__ import annotations

from .. import config
from ..build import build
from .reports import BuildReport


def build_target(target_name: str, sanitize: bool = False) -> BuildReport:
    target = config.load_target(target_name)
    return BuildReport(target.name, build(target, sanitize=sanitize, echo=lambda _m: None), target.vm_size_budget)
