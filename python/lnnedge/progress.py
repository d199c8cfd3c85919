"""The shape of progress reporting: long steps (training, benchmarks) tell a `Progress` what they do, and the
console decides how it looks (a live bar on a terminal, a plain line every few seconds in a log). Lower layers
only see this protocol; `silent` is their default."""

from __future__ import annotations

from typing import Protocol


class Bar(Protocol):
    def advance(self, **status: str) -> None:
        """One more unit done; `status` (e.g. loss="1.2e-03") is shown beside the count."""

    def close(self) -> None: ...


class Progress(Protocol):
    def __call__(self, what: str, total: int, unit: str) -> Bar: ...


class _Silent:
    def advance(self, **status: str) -> None:
        pass

    def close(self) -> None:
        pass


def silent(what: str, total: int, unit: str) -> Bar:
    return _Silent()
