"""Fuzzing the C VM with libFuzzer (clang, ASan + UBSan) and with generated programs: build, run, report.

    from lnnedge.fuzz import fuzz
    report = fuzz(seconds=900, target="all", jobs=1)
    report["executions"], report["crashes"]

The harnesses live in vm/fuzz/ (fuzz_load: load + verify; fuzz_run: load +
verify + run on every kernel set) and are built by vm/fuzz/Makefile into
build/fuzz/, linking the same loader and verifier as every other build.
Each target fuzzes from its seed corpus (vm/fuzz/corpus/<target>/, read
only) into a working corpus that persists between runs
(build/fuzz/work/<target>/). A crash, leak, timeout or sanitizer report is
copied into vm/fuzz/regressions/ (tests/test_fuzz.py replays every file
there), and fuzzing goes on with the time that is left.

The target `gen` is the generative fuzzer (lnnedge.fuzzgen): valid programs from seeds, each run by the
C VM's run plan, its interpreter and the reference VM, compared. It tests the checked build of the VM
(build/fuzz/checked, `make CHECKED=1`) where vm/Makefile has one, else the host build, and continues
from the seed the previous campaign stopped at (build/fuzz/gen/next-seed). A finding (a difference,
a crash, a hang, an edge probe accepted) is kept under build/fuzz/gen/findings/ and counts as a crash
of the report. "all" runs load, run and gen, `seconds` each, one after the other.

Also a command line: python -m lnnedge.fuzz --seconds 60 --target all --jobs 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .build import MAKE_JOBS
from .errors import LnnedgeError
from .paths import BUILD_DIR, VM_DIR

TARGETS = ("load", "run")
GEN = "gen"  # the generative fuzzer (lnnedge.fuzzgen)
# the same harnesses with unsigned wrap-around reported in the loader and verifier
UINT_TARGETS = ("load_uint", "run_uint")
FUZZ_DIR = VM_DIR / "fuzz"
OUT_DIR = BUILD_DIR / "fuzz"
CORPUS_DIR = FUZZ_DIR / "corpus"
REGRESSIONS_DIR = FUZZ_DIR / "regressions"
MAX_LEN = 65536
UNIT_TIMEOUT = 25  # seconds per input before libFuzzer calls it a timeout
MAX_RESTARTS = 50  # crashes collected per target and call before giving up

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "ERROR: libFuzzer")
_ARTIFACT_KINDS = ("crash", "leak", "timeout", "oom", "slow-unit")


class FuzzError(LnnedgeError, RuntimeError):
    pass


def _target_name(target: str) -> str:
    name = target.removeprefix("fuzz_")
    if name not in TARGETS + UINT_TARGETS + (GEN,):
        raise FuzzError(f"unknown fuzz target {target!r}: expected one of "
                        f"{', '.join(TARGETS + UINT_TARGETS + (GEN,))} or all")
    return name


def _input_kind(target: str) -> str:
    """load or run: which corpus (and input layout) a target uses."""
    return _target_name(target).removesuffix("_uint")


def harness(target: str) -> Path:
    return OUT_DIR / f"fuzz_{_target_name(target)}"


def build_harnesses(echo=print) -> Path:
    """make -C vm/fuzz: the harnesses (and their _uint twins), and the instrumented VM library under them."""
    if shutil.which("clang") is None:
        raise FuzzError("clang not found: the fuzzers need clang with libFuzzer (apt-get install clang)")
    args = ["make", "-C", str(FUZZ_DIR), MAKE_JOBS, f"O={OUT_DIR}"]
    echo(f"$ {' '.join(args)}")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FuzzError(f"building the fuzz harnesses failed:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    return OUT_DIR


def build_gen_library(echo=print) -> Path:
    """The VM library the generative fuzzer loads: the checked build (every kernel call's operand ranges
    asserted) when vm/Makefile offers one, else the host release build."""
    from .fuzzgen import CHECKED_LIBRARY

    checked = "CHECKED" in (VM_DIR / "Makefile").read_text()
    out = CHECKED_LIBRARY.parent if checked else BUILD_DIR / "vm" / "host"
    args = ["make", "-C", str(VM_DIR), MAKE_JOBS, f"O={out}", *(["CHECKED=1"] if checked else []),
            str(out / "liblnnvm.so")]
    echo(f"$ {' '.join(args)}")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FuzzError(f"building the VM library for the generative fuzzer failed:\n{proc.stdout[-4000:]}"
                        f"{proc.stderr[-4000:]}")
    return out / "liblnnvm.so"


def _run_gen(seconds: int, echo, library: Path | None) -> dict:
    """The generative fuzzer for `seconds`, from the seed the last campaign stopped at."""
    from .fuzzgen import OUT_DIR as GEN_DIR
    from .fuzzgen import run_campaign

    seed_file = GEN_DIR / "next-seed"
    seed = int(seed_file.read_text()) if seed_file.is_file() else 0
    stats = run_campaign(seconds=seconds, seed=seed, library=library, echo=echo)
    GEN_DIR.mkdir(parents=True, exist_ok=True)
    seed_file.write_text(f"{seed + stats.generated}\n")
    kept = [f["file"] or f"generated program seed {f['seed']} ({f['kind']})" for f in stats.findings]
    return {
        "target": "fuzz_gen", "seconds": stats.seconds, "jobs": 1, "executions": stats.generated,
        "exec_per_sec": int(stats.generated / max(stats.seconds, 1e-9)), "first_seed": seed,
        "library": stats.library, "accepted": stats.accepted, "planned": stats.planned,
        "refused": stats.refused, "refused_valid": stats.refused_valid, "checks": stats.checks,
        "mismatches": stats.mismatches, "wrongly_accepted": stats.wrongly_accepted, "features": stats.features,
        "crashes": kept, "crash_count": len(kept), "leaks": 0, "timeouts": stats.hangs, "ooms": 0,
        "slow_units": 0, "sanitizer_reports": 0, "summary": stats.line(),
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:allocator_may_return_null=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.M)
_STATUS = re.compile(r"^#(\d+)\s+\w+\s+.*?corp: (\d+)/.*?exec/s: (\d+)", re.M)
_COV = re.compile(r"\bcov: (\d+) ft: (\d+)")
_FORK_STATUS = re.compile(r"^#(\d+): cov: \d+ ft: \d+ corp: (\d+) exec/s:? (\d+) "
                          r"oom/timeout/crash: (\d+)/(\d+)/(\d+)", re.M)


def _parse(log: str) -> dict:
    """Executions, exec/s, corpus size, new units and coverage (edges `cov`, features `ft`, from the last
    status line) from one libFuzzer log."""
    stats = {k: int(v) for k, v in _STAT.findall(log)}
    out = {"executions": stats.get("number_of_executed_units", 0),
           "exec_per_sec": stats.get("average_exec_per_sec", 0),
           "new_units": stats.get("new_units_added", 0),
           "peak_rss_mb": stats.get("peak_rss_mb", 0), "corpus": None, "cov": 0, "ft": 0}
    cov = _COV.findall(log)
    if cov:
        out["cov"], out["ft"] = map(int, cov[-1])
    status = _STATUS.findall(log)
    if status:
        execs, corp, eps = map(int, status[-1])
        out["corpus"] = corp
        if not out["executions"]:
            out["executions"], out["exec_per_sec"] = execs, eps
    fork = _FORK_STATUS.findall(log)
    if fork:
        execs, corp, eps, _ooms, _timeouts, _crashes = map(int, fork[-1])
        out.update(executions=execs, exec_per_sec=eps, corpus=corp)
    return out


def _artifacts(folder: Path) -> set[Path]:
    return {p for p in folder.iterdir() if p.is_file() and p.name.startswith(_ARTIFACT_KINDS)} \
        if folder.is_dir() else set()


def _keep_regression(target: str, artifact: Path) -> Path:
    """Copies a crash into vm/fuzz/regressions/<target>-<kind>-<sha1>.bin (once per content)."""
    data = artifact.read_bytes()
    kind = "slow" if artifact.name.startswith("slow-unit") else artifact.name.split("-", 1)[0]
    if kind == "slow":
        return artifact  # stays in build/fuzz/artifacts
    REGRESSIONS_DIR.mkdir(parents=True, exist_ok=True)
    dest = REGRESSIONS_DIR / f"{target}-{kind}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
    if not dest.exists():
        dest.write_bytes(data)
    return dest


def _run_target(target: str, seconds: int, jobs: int, echo, work_root: Path | None = None) -> dict:
    work = (work_root or OUT_DIR / "work") / _input_kind(target)  # shared by a target and its _uint twin
    artifacts = OUT_DIR / "artifacts" / target
    logs = OUT_DIR / "logs"
    for d in (work, artifacts, logs):
        d.mkdir(parents=True, exist_ok=True)
    seeds = CORPUS_DIR / _input_kind(target)
    before = _artifacts(artifacts)
    totals = {"executions": 0, "exec_per_sec": 0, "new_units": 0, "peak_rss_mb": 0, "corpus": 0, "cov": 0, "ft": 0}
    reports = 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = logs / f"{target}-{stamp}.log"
    start = time.monotonic()
    restarts = 0
    with log_path.open("w") as log_file:
        while True:
            left = int(seconds - (time.monotonic() - start))
            if left < 1 or restarts > MAX_RESTARTS:
                break
            cmd = [str(harness(target)), str(work), str(seeds), f"-max_total_time={left}",
                   f"-max_len={MAX_LEN}", f"-timeout={UNIT_TIMEOUT}", "-rss_limit_mb=2048",
                   "-print_final_stats=1", f"-artifact_prefix={artifacts}/"]
            if jobs > 1:  # parallel: fork mode, crashes do not stop it
                cmd += [f"-fork={jobs}", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"]
            echo(f"$ {' '.join(cmd)}")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=OUT_DIR)
            log = proc.stdout + proc.stderr
            log_file.write(log)
            part = _parse(log)
            totals["executions"] += part["executions"]
            totals["new_units"] += part["new_units"]
            totals["peak_rss_mb"] = max(totals["peak_rss_mb"], part["peak_rss_mb"])
            totals["cov"], totals["ft"] = max(totals["cov"], part["cov"]), max(totals["ft"], part["ft"])
            reports += sum(log.count(mark) for mark in SANITIZER_MARKS)
            if proc.returncode == 0 or jobs > 1:
                break
            restarts += 1  # a crash stopped a single-process run: keep the rest of the time
    elapsed = max(time.monotonic() - start, 1e-9)
    totals["exec_per_sec"] = int(totals["executions"] / elapsed)
    totals["corpus"] = sum(1 for p in work.iterdir() if p.is_file())
    found = sorted(_artifacts(artifacts) - before)
    kept = [_keep_regression(target, a) for a in found]
    kinds = {kind: sum(1 for a in found if a.name.startswith(kind)) for kind in _ARTIFACT_KINDS}
    # a slow unit (> 10 s, still correct) is reported, not kept as a crash
    kept = [k for k in kept if k.parent == REGRESSIONS_DIR]
    return {
        "target": f"fuzz_{target}", "seconds": round(elapsed, 1), "jobs": jobs,
        "executions": totals["executions"], "exec_per_sec": totals["exec_per_sec"],
        "corpus_size": totals["corpus"], "new_units": totals["new_units"],
        "peak_rss_mb": totals["peak_rss_mb"], "cov": totals["cov"], "ft": totals["ft"],
        "crashes": [str(p) for p in kept],
        "crash_count": len(kept), "leaks": kinds["leak"], "timeouts": kinds["timeout"],
        "ooms": kinds["oom"], "slow_units": kinds["slow-unit"], "sanitizer_reports": reports,
        "log": str(log_path),
    }


def fuzz(seconds: int = 60, target: str = "all", jobs: int = 1, echo=print, build: bool = True,
         work: Path | None = None) -> dict:
    """Builds the harnesses and fuzzes `target` ("load", "run", "load_uint", "run_uint", "gen", or "all":
    load, run and gen in turn) for `seconds` each with `jobs` processes (gen: one). Returns and prints
    executions, exec/s, corpus size and crashes per target and in total; libFuzzer's crashes are copied
    into vm/fuzz/regressions/, the generative fuzzer's findings kept under build/fuzz/gen/findings/.
    build=False skips the make step (the caller built the harnesses and the VM library); `work` replaces
    the persistent working corpus folder build/fuzz/work/ (e.g. a fresh one for a smoke test)."""
    if seconds < 1:
        raise FuzzError("seconds must be >= 1")
    if jobs < 1:
        raise FuzzError("jobs must be >= 1")
    names = TARGETS + (GEN,) if target in ("all", "both") else (_target_name(target),)
    library = None
    if build:
        if set(names) - {GEN}:
            build_harnesses(echo)
        if GEN in names:
            library = build_gen_library(echo)
    results = {name: _run_gen(seconds, echo, library) if name == GEN else _run_target(name, seconds, jobs, echo, work)
               for name in names}
    report = {
        "seconds": seconds, "jobs": jobs, "targets": results,
        "executions": sum(r["executions"] for r in results.values()),
        "crashes": [c for r in results.values() for c in r["crashes"]],
        "sanitizer_reports": sum(r["sanitizer_reports"] for r in results.values()),
        "finished_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    # what `invoke readme-table` renders into vm/fuzz/README.md (the campaign of `target`)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"report-{target}.json").write_text(json.dumps(report, indent=1) + "\n")
    for r in results.values():
        if r["target"] == "fuzz_gen":
            echo(r["summary"])
            continue
        echo(f"{r['target']}: {r['executions']} executions in {r['seconds']} s "
             f"({r['exec_per_sec']} exec/s), corpus {r['corpus_size']}, cov {r['cov']} ft {r['ft']}, "
             f"crashes {r['crash_count']} (leaks {r['leaks']}, timeouts {r['timeouts']}, "
             f"ooms {r['ooms']}), slow units {r['slow_units']}, sanitizer reports {r['sanitizer_reports']}")
    for c in report["crashes"][:20]:
        if c.endswith(".lnnb"):
            echo(f"  generated program kept as {c} (its .txt says how to replay it)")
        elif c.startswith("generated"):
            echo(f"  {c}: replay it with python -m lnnedge.fuzzgen --seed N --count 1")
        else:
            echo(f"  crash kept as {c}: add it to the regression test (tests/test_fuzz.py replays the folder)")
    if len(report["crashes"]) > 20:
        echo(f"  ... and {len(report['crashes']) - 20} more")
    return report


def replay(files: list[Path], target: str) -> subprocess.CompletedProcess:
    """Runs each file once through a harness (no fuzzing); non-zero exit on a crash."""
    cmd = [str(harness(target)), f"-timeout={UNIT_TIMEOUT}", "-rss_limit_mb=2048", *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=OUT_DIR)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fuzz the C VM with libFuzzer and with generated programs")
    ap.add_argument("--seconds", type=int, default=60, help="per target")
    ap.add_argument("--target", default="all", help="load, run, load_uint, run_uint, gen or all (load, run, gen)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", help="also write the report here")
    ap.add_argument("--no-build", action="store_true", help="use the harnesses already in build/fuzz")
    args = ap.parse_args(argv)
    report = fuzz(args.seconds, args.target, args.jobs, build=not args.no_build)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 1 if report["crashes"] or report["sanitizer_reports"] else 0


if __name__ == "__main__":
    sys.exit(main())
