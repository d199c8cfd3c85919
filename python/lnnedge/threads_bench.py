"""The measurement behind the thread policy (threads.py): training time with each torch thread count, idle and
beside busy processes (`invoke bench-threads`, build/threads.json)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from .threads import DEFAULT_THREADS, ENV


def _busy_loop() -> subprocess.Popen:
    """One process spinning on a core: the 'another CPU-heavy process' of a shared machine."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)


def _train_once(model: str, epochs: int, threads: int) -> tuple[float, str, int]:
    """Train `model` for `epochs` with torch on `threads` threads; (seconds, sha256 of the trained weights, the
    threads torch ran on as the run's metrics record them)."""
    import hashlib

    from . import recipe as recipes
    from .train import train

    before = os.environ.get(ENV)
    os.environ[ENV] = str(threads)  # train() applies the policy: this run's policy is `threads`
    try:
        started = time.perf_counter()
        result = train(recipes.load(model), epochs=epochs)
        seconds = time.perf_counter() - started
    finally:
        if before is None:
            del os.environ[ENV]
        else:
            os.environ[ENV] = before
    digest = hashlib.sha256()
    for name, tensor in sorted(result.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return seconds, digest.hexdigest(), result.metrics["torch_threads"]


def measure(model: str, epochs: int, runs: int, loads: tuple[int, ...], thread_counts: tuple[int, ...]) -> dict:
    """Training time of `model` (`epochs` epochs) with each thread count, `runs` times each, alternating the
    thread counts so a change in the machine's load hits all of them; with 0, 1, ... busy processes beside it
    (`loads`). Returns {"cases": [{load, threads, seconds: [...], median_s, weights_sha256}], ...}."""
    import torch

    before = torch.get_num_threads()
    cases = []
    try:
        for load in loads:
            hogs = [_busy_loop() for _ in range(load)]
            try:
                seconds: dict[int, list[float]] = {t: [] for t in thread_counts}
                digests: dict[int, set[str]] = {t: set() for t in thread_counts}
                seen: dict[int, set[int]] = {t: set() for t in thread_counts}
                for _ in range(runs):
                    for threads in thread_counts:
                        s, d, ran_on = _train_once(model, epochs, threads)
                        seconds[threads].append(round(s, 3))
                        digests[threads].add(d)
                        seen[threads].add(ran_on)
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
            for threads in thread_counts:
                cases.append({"busy_processes": load, "threads": threads, "torch_threads": sorted(seen[threads]),
                              "seconds": seconds[threads],
                              "median_s": round(statistics.median(seconds[threads]), 3),
                              "weights_sha256": sorted(digests[threads])})
    finally:
        torch.set_num_threads(before)
    same = len({d for c in cases for d in c["weights_sha256"]}) == 1
    return {"model": model, "epochs": epochs, "runs": runs, "cpu_count": os.cpu_count(),
            "policy_threads": DEFAULT_THREADS, "same_weights": same, "cases": cases}
