"""The SSH kind: a Linux board on the network (a Raspberry Pi); session.py is the connection.

Remote layout under the board's remote_dir (absolute, never / and without '..': config.py refuses others):

    incoming/<name>/      an upload in progress (never run from); removed by the next deploy
    releases/<name>/      lnnvm, model.lnnb, VERSION.json, SHA256SUMS; <name> is the model and runner
                          hashes and a fresh random part, so a deploy never rewrites a release in place
    current -> releases/<name>   the active deployment, switched by an atomic rename of a new link

A deployment becomes `current` only after its files' SHA-256 match on the
device and a smoke inference on the device matches the expected outputs
shipped with it (test, then confirm, as MCUboot does for firmware); then the
releases that are not live are removed. A deploy stopped at
any step leaves `current` on a complete release (the previous one, or the new
one once the switch is done), and a failed deploy reads `current` back to say
which (tested by killing it at every step: lnnedge.reliability.deploy_kills).

Runs, info, test and trace use the deployed release (`current`), and only when
it holds the very model file they are given.
"""

from __future__ import annotations

import hashlib
import json
import stat
import tempfile
import time
import uuid
from pathlib import Path, PurePosixPath

import numpy as np

from ...config import Board
from .. import runner
from ..base import BeforeStep, DeviceBase, DeviceError, RunResult, SmokeResult
from .session import Session, quote


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class SSHDevice(DeviceBase):
    kind = "ssh"

    def __init__(self, board: Board, program: Path):
        super().__init__(board, program)
        assert board.ssh is not None  # config gives every ssh board its settings
        self.settings = board.ssh
        self.session = Session(board.name, board.ssh)
        prefix = board.ssh.command_prefix
        self.emulated = bool(prefix) and prefix[0].startswith("qemu")  # a stand-in board (an emulator on sshd)

    def close(self) -> None:
        self.session.close()

    def _current(self) -> str:
        return f"{self.settings.remote_dir}/current"

    def deploy(self, model: Path, version: dict, before_step: BeforeStep | None = None) -> dict:
        """Upload the target's runner (self.program) and the model, check, smoke-test and activate. On a failure
        raise DeviceError saying what is live on the device then (read back from `current`). The smoke test is
        `lnnvm test` on the device: the test set bundled in the model file, its outputs and tolerance.

        `before_step`, when given, is called with a short description before each remote step (every
        command and every transfer), in order: the deploy kill-point campaign
        (lnnedge.reliability.deploy_kills) stops the deploy there. It does nothing else."""
        step = before_step or (lambda _what: None)
        # A fresh directory per deploy, even of the release that is live: nothing live is ever removed
        # or rewritten, and `current` moves from one complete release to another in one rename.
        runner = self.program
        name = f"{sha256(model)[:16]}-{sha256(runner)[:8]}-{uuid.uuid4().hex[:8]}"
        root = self.settings.remote_dir
        incoming, release = f"{root}/incoming/{name}", f"{root}/releases/{name}"
        previous: str | None = None
        connected = switching = False
        try:
            with tempfile.TemporaryDirectory(prefix="lnnedge-deploy-") as tmp:
                files = {"lnnvm": Path(runner), "model.lnnb": Path(model)}
                (Path(tmp) / "VERSION.json").write_text(json.dumps({**version, "release": name}, indent=2) + "\n")
                files["VERSION.json"] = Path(tmp) / "VERSION.json"
                manifest = "".join(f"{sha256(path)}  {file}\n" for file, path in files.items())
                (Path(tmp) / "SHA256SUMS").write_text(manifest)
                files["SHA256SUMS"] = Path(tmp) / "SHA256SUMS"

                step("read current")
                previous = self._live_release()
                connected = True
                step("mkdir -p incoming/ releases/")
                self.session.sh(f"mkdir -p -- {quote(root + '/incoming', root + '/releases')}")
                for leftover in self.session.entries(f"{root}/incoming"):  # interrupted uploads; never run from
                    step(f"remove incoming/{leftover}")
                    self.session.remove_tree(f"{root}/incoming/{leftover}")
                step(f"mkdir incoming/{name}")
                self.session.fs(f"mkdir {incoming}", lambda sftp: sftp.mkdir(incoming))
                for file, path in files.items():
                    step(f"upload {file}")
                    self.session.put(path, f"{incoming}/{file}")
                step("chmod 755 lnnvm")
                self.session.fs(f"chmod of {incoming}/lnnvm", lambda sftp: sftp.chmod(f"{incoming}/lnnvm", 0o755))
                # Checksums on the device, then the files and their directory to disk before the rename
                # makes the release visible, and releases/ after it.
                step("sha256sum -c and sync in incoming/")
                self.session.sh(f"cd -- {quote(incoming)} && sha256sum -c --quiet SHA256SUMS "
                                f"&& sync -- {quote(*files)} .")
            step(f"rename incoming/{name} to releases/{name}")
            self.session.fs(f"rename of {incoming}", lambda sftp: sftp.posix_rename(incoming, release))
            step("sync releases/")
            self.session.sh(f"sync -- {quote(root + '/releases')}")
            step(f"smoke test (lnnvm test) in releases/{name}")
            smoke = self._smoke(release)
            if not smoke.passed:
                raise DeviceError(f"board {self.name}: smoke test of the new deployment failed ({smoke.summary})")
            if self.session.lstat(f"{root}/current.new") is not None:  # left by a deploy stopped at the next step
                step("remove current.new")
                self.session.fs("removal of current.new", lambda sftp: sftp.remove(f"{root}/current.new"))
            step(f"symlink current.new -> releases/{name}")
            self.session.fs("symlink current.new", lambda sftp: sftp.symlink(f"releases/{name}", f"{root}/current.new"))
            step("rename current.new to current (the switch)")
            switching = True
            self.session.fs("switch of current", lambda sftp: sftp.posix_rename(f"{root}/current.new", self._current()))
            step("sync remote_dir")
            self.session.sh(f"sync -- {quote(root)}")
            for old in self.session.entries(f"{root}/releases"):
                if old != name:
                    step(f"remove releases/{old}")
                    self.session.remove_tree(f"{root}/releases/{old}")
        except DeviceError as exc:
            raise DeviceError(f"{exc}; {self._after_failure(name, previous, connected, switching)}") from None
        return {"release": name, "smoke_max_abs_err": smoke.max_abs_err, **version}

    def _after_failure(self, name: str, previous: str | None, connected: bool, switching: bool) -> str:
        """What is live after a failed deploy, read back from the device when it can be."""
        before = f"the previous release {previous}" if previous else "nothing (no deployment before)"
        if not connected:
            return "nothing on the device was changed"
        self.session.close()  # read back on a fresh connection: the failure may have left this one dead
        try:
            live = self._live_release()
        except DeviceError as exc:
            if switching:
                return f"live now: either {before} or the new release {name} (reading current back failed: {exc})"
            return f"{before} stays live (current was not touched; reading it back failed: {exc})"
        if live == name:
            return f"yet the new release {name} IS live: the switch to it completed"
        if live == previous:
            return f"{before} stays live" if previous else "nothing is deployed"
        return f"live now: release {live}" if live else "nothing is deployed"

    def _live_release(self) -> str | None:
        """The release `current` points to (the name under releases/), or None when nothing is deployed."""
        attrs = self.session.lstat(self._current())
        if attrs is None:
            return None
        if not stat.S_ISLNK(attrs.st_mode):
            raise DeviceError(f"board {self.name}: {self._current()} is not a symbolic link; remove it and "
                                 f"deploy again")
        target = self.session.fs("readlink of current", lambda sftp: sftp.readlink(self._current()))
        return PurePosixPath(target).name

    def _smoke(self, release: str) -> SmokeResult:
        """`lnnvm test` on the device in `release`: the test set bundled in the model file."""
        result = self.session.sh(f"cd -- {quote(release)} && {self.session.prefix}./lnnvm test model.lnnb",
                                 check=False)
        return runner.parse_test_summary(result.stdout, result.exited, self.name)

    def status(self) -> dict:
        """What `current` is: the release it points to (read from the link) and that release's VERSION.json."""
        release = self._live_release()
        if release is None:
            return {"deployed": False, "note": "nothing is deployed (no current on the device)"}
        where = f"{self._current()}/VERSION.json"

        def read(sftp) -> bytes | None:
            try:
                with sftp.open(where) as f:
                    return f.read()
            except FileNotFoundError:
                return None

        text = self.session.fs(f"read of {where}", read)
        if text is None:
            raise DeviceError(f"board {self.name}: current points to releases/{release}, which has no "
                                 "VERSION.json (a broken deployment): deploy again")
        try:
            version = json.loads(text)
        except json.JSONDecodeError:
            raise DeviceError(f"board {self.name}: {where} is not valid JSON: deploy again") from None
        return {"deployed": True, **version, "release": release}

    # -- the deployed release, run ----------------------------------------------------------------
    def _check_model(self, model: Path) -> None:
        state = self.status()
        if not state.get("deployed"):
            raise DeviceError(f"board {self.name}: nothing is deployed; run `invoke deploy --board {self.name}`")
        if state.get("model_sha256") != sha256(model):
            raise DeviceError(f"board {self.name}: the deployed model ({state.get('model_sha256', '?')[:12]}) "
                              f"is not {model} ({sha256(model)[:12]}); run `invoke deploy --board {self.name}`")

    def _lnnvm(self, *args: str, check: bool = True):
        """`lnnvm ARGS` in the deployed release (behind the board's command prefix)."""
        return self.session.sh(f"cd -- {quote(self._current())} && {self.session.prefix}./lnnvm {quote(*args)}",
                               check=check)

    def info(self, model: Path) -> dict:
        self._check_model(model)
        return runner.parse_info(self._lnnvm("info", "model.lnnb").stdout)

    def stream(self, model: Path) -> runner.LineStream:
        """`lnnvm stream` on the deployed model, on an SSH channel kept open for the stream."""
        self._check_model(model)
        return self.session.stream(f"cd -- {quote(self._current())} && {self.session.prefix}./lnnvm "
                                   f"{quote('stream', 'model.lnnb')}", "lnnvm stream")

    def test(self, model: Path) -> SmokeResult:
        self._check_model(model)
        result = self._lnnvm("test", "model.lnnb", check=False)
        return runner.parse_test_summary(result.stdout, result.exited, self.name)

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1) -> RunResult:
        return self._run(model, inputs, batch)

    def _run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, trace_to: Path | None = None
             ) -> RunResult:
        """Inputs uploaded to a fresh work directory, outputs (and the trace) downloaded, the directory removed."""
        info = self.info(model)
        n_out = runner.output_count(info, f"board {self.name}: lnnvm")
        work = f"{self.settings.remote_dir}/runs/{uuid.uuid4().hex[:12]}"
        self.session.sh(f"mkdir -p -- {quote(work)}")
        try:
            with tempfile.TemporaryDirectory(prefix="lnnedge-ssh-") as tmp:
                remote_ins = []
                for local in runner.write_inputs(Path(tmp), inputs):
                    remote_ins.append(f"{work}/{local.name}")
                    self.session.put(local, remote_ins[-1])
                names = runner.output_names(n_out)
                extra = ["--trace", f"{work}/trace.bin"] if trace_to is not None else []
                started = time.perf_counter()
                result = self._lnnvm("run", "model.lnnb",
                                     *runner.run_args(remote_ins, [f"{work}/{n}" for n in names], batch, extra))
                timing = runner.parse_timing(result.stdout, f"board {self.name}: lnnvm")
                timing["wall_seconds"] = time.perf_counter() - started
                for n in names:
                    self.session.get(f"{work}/{n}", Path(tmp) / n)
                outputs = runner.read_outputs([Path(tmp) / n for n in names], len(inputs[0]))
                if trace_to is not None:
                    self.session.get(f"{work}/trace.bin", trace_to)
        finally:
            self.session.sh(f"rm -rf -- {quote(work)}", check=False)
        return RunResult(outputs, timing, info)

    def profile(self, model: Path, runs: int, program: Path) -> dict:
        """The profiling runner and the model uploaded to a fresh work directory (not the deployed release, which
        stays as it is), `lnnvm profile` run there behind the board's prefix, the directory removed."""
        work = f"{self.settings.remote_dir}/runs/{uuid.uuid4().hex[:12]}"
        self.session.sh(f"mkdir -p -- {quote(work)}")
        try:
            self.session.put(Path(program), f"{work}/lnnvm")
            self.session.put(Path(model), f"{work}/model.lnnb")
            result = self.session.sh(f"cd -- {quote(work)} && chmod +x lnnvm && {self.session.prefix}./lnnvm "
                                     f"{quote('profile', 'model.lnnb', '--runs', str(runs))}")
            return runner.parse_timing(result.stdout, f"board {self.name}: lnnvm profile")
        finally:
            self.session.sh(f"rm -rf -- {quote(work)}", check=False)

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        from ...trace import read_trace

        with tempfile.TemporaryDirectory(prefix="lnnedge-trace-") as tmp:
            self._run(model, inputs, trace_to=Path(tmp) / "trace.bin")
            return read_trace(Path(tmp) / "trace.bin")
