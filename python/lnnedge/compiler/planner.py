"""Memory planning: buffer requests in, a frozen plan of arena offsets out.

A pure function. Each request is a buffer with a size and a live range
[first, last] (schedule positions, inclusive). Two buffers may share bytes
only if their live ranges are disjoint. The planner tries two greedy
strategies and keeps the smaller arena:

  by size   largest buffer first, each at the lowest offset where it does not
            overlap (in bytes) any already placed buffer that is live at the
            same time (the algorithm of TFLM's greedy planner);
  by start  the same placement, in order of first use.

It also reports the naive sum of all buffers and the lower bound any plan
must reach: the largest total size of buffers live at one position.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    name: str
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class Plan:
    offsets: dict[str, int]
    size: int
    naive: int
    lower_bound: int
    strategy: str
    requests: tuple[Request, ...]

    def overlaps(self) -> list[tuple[str, str]]:
        """Pairs of buffers live at the same time whose bytes overlap (empty for a valid plan)."""
        bad = []
        reqs = self.requests
        for i, a in enumerate(reqs):
            for b in reqs[i + 1:]:
                if _live_together(a, b) and _bytes_overlap(self.offsets[a.name], a.size, self.offsets[b.name], b.size):
                    bad.append((a.name, b.name))
        return bad

    def ascii_map(self, width: int = 64) -> str:
        """One row per buffer: its live range drawn over schedule positions, with its offset and size."""
        if not self.requests:
            return "(no buffers)"
        end = max(r.last for r in self.requests) + 1
        scale = max(1, -(-end // width))
        lines = [f"{'buffer':<28} {'offset':>8} {'bytes':>8}  live range (1 column = {scale} op(s))"]
        for r in sorted(self.requests, key=lambda r: (self.offsets[r.name], r.first)):
            bar = "".join("#" if r.first // scale <= col <= r.last // scale else "." for col in range(-(-end // scale)))
            lines.append(f"{r.name[-28:]:<28} {self.offsets[r.name]:>8} {r.size:>8}  {bar}")
        return "\n".join(lines)


def _live_together(a: Request, b: Request) -> bool:
    return a.first <= b.last and b.first <= a.last


def _bytes_overlap(oa: int, sa: int, ob: int, sb: int) -> bool:
    return oa < ob + sb and ob < oa + sa


def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def _place(requests: list[Request], alignment: int) -> dict[str, int]:
    placed: list[tuple[Request, int]] = []
    offsets: dict[str, int] = {}
    for req in requests:
        busy = sorted((off, off + other.size) for other, off in placed if _live_together(req, other))
        offset = 0
        for start, stop in busy:
            if offset + req.size <= start:
                break
            offset = max(offset, _align(stop, alignment))
        offsets[req.name] = offset
        placed.append((req, offset))
    return offsets


def plan(requests: list[Request], alignment: int = 16) -> Plan:
    reqs = tuple(requests)
    naive = sum(_align(r.size, alignment) for r in reqs)
    positions = {p for r in reqs for p in (r.first, r.last)}
    lower = max((sum(r.size for r in reqs if r.first <= p <= r.last) for p in positions), default=0)
    best: Plan | None = None
    strategies = {
        "by size": sorted(reqs, key=lambda r: (-r.size, r.first, r.name)),
        "by start": sorted(reqs, key=lambda r: (r.first, -r.size, r.name)),
    }
    for name, order in strategies.items():
        offsets = _place(order, alignment)
        size = max((offsets[r.name] + r.size for r in reqs), default=0)
        size = _align(size, alignment)
        if best is None or size < best.size:
            best = Plan(offsets, size, naive, lower, name, reqs)
    assert best is not None
    return best
