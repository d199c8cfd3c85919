"""The kit's thread policy for PyTorch: training and benchmarks run torch on ONE intra-op thread.

Why one: the kit's models are small (tens of hidden units, mini-batches of a few hundred rows), so each op is
microseconds of work and torch's intra-op thread pool spends more time waking and joining its threads than
computing. On a shared machine it is worse: a spinning pool thread that loses its core to another process
stalls every op until it is scheduled again (issue 20 saw 918 s with torch's default threads under load
against 34 s with one thread, same results). `invoke bench-threads` measures it again on this machine
(threads_bench.py: build/threads.json, the README's thread table); $LNNEDGE_THREADS overrides the policy.
"""

from __future__ import annotations

import os

from .errors import LnnedgeError

DEFAULT_THREADS = 1
ENV = "LNNEDGE_THREADS"


class ThreadsError(LnnedgeError, ValueError):
    pass


def policy_threads() -> int:
    """The number of torch intra-op threads the kit uses: $LNNEDGE_THREADS if set, else DEFAULT_THREADS."""
    raw = os.environ.get(ENV, "")
    if not raw:
        return DEFAULT_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise ThreadsError(f"${ENV}={raw!r}: expected a whole number of threads >= 1")
    return int(raw)


def apply_policy() -> int:
    """Set torch's intra-op threads to the policy's number; returns it."""
    import torch

    threads = policy_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
