"""Deploys killed at every step: the SSH deploy against a real sshd on 127.0.0.1, stopped before each of its
remote steps (every command and every transfer) in turn.

Each kill point k starts from the same device state: a live release, plus what killed deploys leave behind
(an upload folder under incoming/ whose name has a space and which holds a link out of the deploy tree, an
unswitched release and its current.new). Then a deploy is stopped before its k-th step, in one of two ways:

- `kill`: the deploy runs in its own process (this module run as a program), which SIGKILLs itself there;
- `drop`: the deploy runs here, through a TCP relay that drops the SSH connection there; the deploy goes on,
  fails and must say in its error what is live (read back from `current`).

and two scenarios: `new` deploys another model file than the live one, `same` the live one again.

After each stop the device's files are read directly (the remote directory is on this machine): `current`
must name a complete release (its SHA256SUMS match, `lnnvm test` passes under the board's command prefix),
the previous one or the new one; `invoke status`'s answer (pipeline.deploy.status_of) must name that release and its
model; the `drop` error must name it too; nothing outside the deploy tree may change. Then a clean deploy
must succeed and leave only the live release. The steps are enumerated by the deploy itself (its
`before_step` seam) in an uninterrupted deploy from the same state; a stopped deploy that finishes before
its step k counts as a crash. Kill points run on two rigs at once.

Outcomes: previous release live and intact -> rejected_cleanly; the new release live (the stop came after the
switch) -> accepted_correctly; a broken or wrongly reported `current`, or anything deleted outside the tree
-> wrongly_accepted; a clean redeploy that then fails, or a traceback -> crashed; a deploy that does not end
within the timeout -> hung.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import config, isa, lnnb
from .. import recipe as recipes
from ..build import runner_path
from ..devices import DeviceError
from ..devices.fleet import across
from ..errors import LnnedgeError
from ..paths import BUILD_DIR
from ..pipeline.deploy import deploy_to, status_of
from . import Campaign
from .harness import CuttingRelay, LocalSSHD, free_port

RECIPE = "ltc-sine"
PREFIX = "qemu-aarch64 -cpu cortex-a72"  # the ssh-test board's: the rpi4 build runs as on a Pi
FILES = ("lnnvm", "model.lnnb", "VERSION.json", "SHA256SUMS")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Rig:
    """A real sshd, a relay in front of it, a board file with both, two deployable model files."""

    work: Path
    root: Path  # the board's remote_dir (it has a space in it)
    outside: Path  # a directory beside the deploy tree that nothing may touch
    boards: Path
    models: tuple[Path, Path]
    relay: CuttingRelay

    def board(self, name: str) -> config.Board:
        return config.board(name, self.boards)


@contextmanager
def rig(work: Path) -> Iterator[Rig]:
    model = BUILD_DIR / RECIPE / "model.lnnb"
    runner = runner_path(config.load_target("rpi4"))
    for path, make in ((model, f"invoke train && invoke compile --model {RECIPE}"),
                       (runner, "invoke build --target rpi4")):
        if not path.is_file():
            raise LnnedgeError(f"{path} does not exist: run `{make}` first")
    sshd = LocalSSHD(work / "sshd", free_port()).prepare().start()
    relay = CuttingRelay(sshd.port)
    try:
        key = sshd.host_key.with_suffix(".pub").read_text().split()
        with open(sshd.known_hosts, "a") as hosts:
            hosts.write(f"[127.0.0.1]:{relay.port} {key[0]} {key[1]}\n")
        root = work / "remote dir" / "pi"
        outside = work / "remote"  # what an unquoted `rm -rf .../remote dir/pi/incoming/...` reaches
        outside.mkdir(parents=True)
        (outside / "keep").write_text("outside the deploy tree\n")
        entry = sshd.board_entry(root, prefix=PREFIX)
        boards = work / "boards.yaml"
        boards.write_text(yaml.safe_dump({"default_board": "direct", "boards": {
            "direct": entry, "relayed": {**entry, "port": relay.port}}}))
        # A second model file: the same program with its test set's tolerance doubled (the smoke test still
        # passes; the bytes, hence the release, differ).
        data = bytearray(model.read_bytes())
        tests_at, _ = lnnb.section_offsets(bytes(data))[isa.const("SEC_TESTS")]
        struct.pack_into("<f", data, tests_at + 16, 2 * struct.unpack_from("<f", data, tests_at + 16)[0])
        (work / "a").mkdir()
        (work / "b").mkdir()
        shutil.copyfile(model, work / "a" / "model.lnnb")
        (work / "b" / "model.lnnb").write_bytes(lnnb.refresh_crc(bytes(data)))
        yield Rig(work, root, outside, boards, (work / "a" / "model.lnnb", work / "b" / "model.lnnb"), relay)
    finally:
        relay.close()
        sshd.stop()


def _deploy(r: Rig, model: Path, board: str = "direct", before_step=None) -> dict:
    return deploy_to(recipes.load(RECIPE).name, model, r.board(board), before_step)


def _seed(r: Rig) -> None:
    """What killed deploys leave: an upload folder (a space in its name, a link out of the tree inside) and an
    unswitched release with its current.new."""
    upload = r.root / "incoming" / "old upload"
    upload.mkdir(parents=True)
    (upload / "lnnvm").write_bytes(b"half an upload")
    (upload / "link out").symlink_to(r.outside)
    live = os.readlink(r.root / "current")
    stale = r.root / "releases" / "0000000000000000-00000000-00000000"
    shutil.copytree(r.root / live, stale)
    (r.root / "current.new").symlink_to(f"releases/{stale.name}")


def _release_ok(r: Rig, name: str) -> str:
    """'' when releases/<name> is complete and passes `lnnvm test`, else what is wrong."""
    where = r.root / "releases" / name
    if not all((where / f).is_file() for f in FILES):
        return f"releases/{name} lacks files ({sorted(p.name for p in where.iterdir()) if where.is_dir() else []})"
    for line in (where / "SHA256SUMS").read_text().splitlines():
        digest, file = line.split(maxsplit=1)
        if _sha(where / file) != digest:
            return f"releases/{name}/{file} does not match SHA256SUMS"
    test = subprocess.run([*shlex.split(PREFIX), "./lnnvm", "test", "model.lnnb"], cwd=where,
                          capture_output=True, text=True, timeout=120)
    return "" if test.returncode == 0 else f"lnnvm test fails in releases/{name}: {test.stdout.strip()}"


def _live(r: Rig) -> tuple[str | None, str]:
    """The release `current` names and '' , or None and what is wrong with `current`."""
    current = r.root / "current"
    if not current.is_symlink():
        return None, "current is missing or not a link"
    target = os.readlink(current)
    if not target.startswith("releases/"):
        return None, f"current points to {target}"
    name = target.removeprefix("releases/")
    return name, _release_ok(r, name)


def _outside_intact(r: Rig) -> bool:
    return (r.outside / "keep").is_file() and [p.name for p in r.outside.iterdir()] == ["keep"]


def _status_says(r: Rig, live: str) -> str:
    """'' when what `invoke status` reports (pipeline.deploy.status_of, through the same fleet runner) is the live
    release."""
    outcome = across([r.board("direct")], status_of)[0]
    model_sha = json.loads((r.root / "releases" / live / "VERSION.json").read_text())["model_sha256"]
    if not outcome.ok or outcome.detail.get("release") != live or not outcome.detail.get("deployed") \
            or outcome.detail.get("model_sha256") != model_sha:
        return f"status says {outcome.detail or outcome.error}, but releases/{live} is live"
    return ""


def _names(message: str, live: str, before: str | None) -> bool:
    """Whether a failed deploy's error says truthfully what is live: it names the live release, or it never
    reached the device (then the release live before is, untouched)."""
    return live in message or (live == before and "nothing on the device was changed" in message)


def _kill_child(r: Rig, model: Path, k: int, timeout: float) -> tuple[str, list[str]]:
    """The deploy in its own process, SIGKILLed before its k-th step: ('killed' | 'finished' | 'hung' | error)."""
    proc = subprocess.Popen([sys.executable, "-m", __name__, str(r.boards), "direct", str(model), str(k)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "hung", []
    steps = [line.removeprefix("step ") for line in out.splitlines() if line.startswith("step ")]
    if proc.returncode == -signal.SIGKILL:
        return "killed", steps
    if proc.returncode == 0:
        return "finished", steps
    return f"exit {proc.returncode}: {err.strip()[-400:]}", steps


def _drop_here(r: Rig, model: Path, k: int) -> tuple[str, list[str], str]:
    """The deploy here through the relay, which drops the connection before its k-th step:
    ('dropped' | 'finished' | error, steps, the deploy's error message)."""
    steps: list[str] = []

    def before(what: str) -> None:
        if len(steps) == k:
            r.relay.cut()
        steps.append(what)

    try:
        _deploy(r, model, "relayed", before)
    except DeviceError as exc:
        return ("dropped" if len(steps) > k else f"failed without a drop: {exc}"), steps, str(exc)
    except Exception:  # not a named error: a bug in the deploy, counted as a crash
        return f"traceback: {traceback.format_exc()}", steps, ""
    return "finished", steps, ""


def _steps(r: Rig, scenario: str) -> list[str]:
    """The steps of an uninterrupted deploy in `scenario` from a seeded tree (as every kill point starts),
    recorded through its before_step seam."""
    _deploy(r, r.models[0])
    _seed(r)
    steps: list[str] = []
    _deploy(r, r.models[0] if scenario == "same" else r.models[1], before_step=steps.append)
    return steps


def _point(r: Rig, mode: str, scenario: str, k: int, timeout: float) -> tuple[str, str]:
    """One kill point on rig `r`: (outcome, problem); a deploy that finishes before step k is a crash (the
    step list came from an uninterrupted deploy: every step must be reachable)."""
    before, _ = _live(r)
    live_model = json.loads((r.root / "current" / "VERSION.json").read_text())["model_sha256"]
    model = r.models[0] if _sha(r.models[0]) != live_model else r.models[1]
    if scenario == "same":
        model = next(m for m in r.models if _sha(m) == live_model)
    _seed(r)
    message = ""
    if mode == "kill":
        result, _ = _kill_child(r, model, k, timeout)
    else:
        result, _, message = _drop_here(r, model, k)
    if result not in ("killed", "dropped"):
        outcome, problem = ("hung" if result == "hung" else "crashed"), result
    else:
        live, broken = _live(r)
        problem = ""
        if broken or not _outside_intact(r):
            outcome, problem = "wrongly_accepted", broken or "something outside the tree changed"
        elif (said := _status_says(r, live)) or (mode == "drop" and not _names(message, live, before)):
            outcome, problem = "wrongly_accepted", said or f"the error does not name {live}: {message}"
        else:
            outcome = "rejected_cleanly" if live == before else "accepted_correctly"
    try:  # a clean deploy recovers and leaves only the live release
        done = _deploy(r, model)
        left = sorted(p.name for p in (r.root / "incoming").iterdir()), \
            sorted(p.name for p in (r.root / "releases").iterdir())
        if left != ([], [done["release"]]) or (r.root / "current.new").is_symlink() \
                or _live(r) != (done["release"], ""):
            outcome, problem = "crashed", f"the redeploy left {left}"
    except LnnedgeError as exc:
        outcome, problem = "crashed", f"the redeploy failed: {exc}"
    return outcome, problem


def deploy_kills(modes: tuple[str, ...] = ("kill", "drop"), scenarios: tuple[str, ...] = ("new", "same"),
                 work: Path | None = None, timeout: float = 300, log=None, rigs: int = 2) -> Campaign:
    """Every kill point of the SSH deploy, for each mode and scenario (see the module's docstring). The kill
    points are independent (each starts from a live release and ends with a clean redeploy), so they run on
    `rigs` separate sshd + device trees at once: the test waits on sshd and QEMU more than it computes."""
    tally = {"tried": 0, "rejected_cleanly": 0, "accepted_correctly": 0, "crashed": 0, "hung": 0,
             "wrongly_accepted": 0}
    points = 0
    with tempfile.TemporaryDirectory(prefix="lnnedge-deploy-kills-") as tmp, ExitStack() as stack:
        base = work or Path(tmp)
        pool = [stack.enter_context(rig(base / f"rig{i}")) for i in range(rigs)]
        jobs: queue.Queue[tuple[str, str, int, str]] = queue.Queue()
        for scenario in scenarios:
            steps = _steps(pool[0], scenario)
            points = max(points, len(steps))
            for mode in modes:
                for k, step in enumerate(steps):
                    jobs.put((mode, scenario, k, step))
        results: list[tuple[str, str, int, str, str, str]] = []

        def work_on(r: Rig) -> None:
            _deploy(r, r.models[0])
            while True:
                try:
                    mode, scenario, k, step = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcome, problem = _point(r, mode, scenario, k, timeout)
                except Exception:  # a bug of the campaign's or the deploy's: counted, never lost
                    outcome, problem = "crashed", traceback.format_exc()
                results.append((mode, scenario, k, step, outcome, problem))

        threads = [threading.Thread(target=work_on, args=(r,)) for r in pool]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for mode, scenario, k, step, outcome, problem in sorted(results):
            tally["tried"] += 1
            tally[outcome] += 1
            if log is not None:
                log(f"{mode} {scenario} before step {k} ({step}): {outcome} {problem}".rstrip())
    return Campaign(area="deploy kills (SSH)",
                    how=f"SSH deploy to a real sshd stopped before each of its {points} steps (every command and "
                        f"transfer) by {' / '.join(modes)} ({', '.join(scenarios)} release), from a tree with "
                        "leftovers of killed deploys; then current checked (complete, lnnvm test, status) and a "
                        "clean redeploy",
                    **tally)


def _child(boards: str, board: str, model: str, kill_at: int) -> None:
    """The `kill` mode's process: a deploy that prints each step and SIGKILLs itself before step `kill_at`."""
    count = 0

    def before(what: str) -> None:
        nonlocal count
        print(f"step {what}", flush=True)
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        count += 1

    deploy_to(recipes.load(RECIPE).name, Path(model), config.board(board, Path(boards)), before)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
