"""Deploying over SSH to a real OpenSSH server on 127.0.0.1 that runs the aarch64 build behind
`qemu-aarch64 -cpu cortex-a72`, exactly as a Raspberry Pi 4 would, and a fleet in parallel."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from lnnedge import config, isa, lnnb
from lnnedge.build import build
from lnnedge.paths import BUILD_DIR
from lnnedge.reliability.deploy_kills import deploy_kills
from lnnedge.reliability.harness import CuttingRelay, LocalSSHD, available, free_port
from test_loader import stateful
from test_pipeline import invoke, ok

pytestmark = pytest.mark.skipif(not available(), reason="openssh-server is not installed (./kit installs it)")


@pytest.fixture(scope="module")
def sshds(tmp_path_factory):
    servers = [LocalSSHD(tmp_path_factory.mktemp(f"sshd{i}"), free_port()).prepare().start() for i in range(3)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def artefacts():
    """Trained + compiled ltc-sine and the rpi4 (aarch64) build."""
    if not (BUILD_DIR / "ltc-sine" / "checkpoint.pt").is_file():
        _invoke_ok({}, "train")
    _invoke_ok({}, "compile")
    build(config.load_target("rpi4"), echo=lambda _m: None)
    return BUILD_DIR / "ltc-sine" / "model.lnnb"


@pytest.fixture(scope="module")
def boards_file(sshds, tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    entries = {"ssh-test": sshds[0].board_entry(root / "pi0")}
    for i, server in enumerate(sshds):
        entries[f"pi{i}"] = server.board_entry(root / f"fleet{i}")
    entries["qemu-rpi4"] = {"target": "rpi4", "transport": "qemu"}
    entries["pi-down"] = {**sshds[0].board_entry(root / "down"), "port": free_port()}
    path = tmp_path_factory.mktemp("boards") / "boards.yaml"
    path.write_text(yaml.safe_dump({"default_board": "ssh-test", "boards": entries,
                                    "groups": {"fleet": ["pi0", "pi1", "pi2", "qemu-rpi4"],
                                               "fleet-with-a-dead-board": ["pi1", "pi-down", "qemu-rpi4"]}}))
    return path


def _invoke(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    return invoke(*args, env=env_extra, timeout=600)


def _invoke_ok(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    return ok(*args, env=env_extra)


def _env(path) -> dict:
    return {"LNNEDGE_BOARDS": str(path)}


def _with_entry(boards_file, tmp_path, name: str, **changes):
    raw = yaml.safe_load(boards_file.read_text())
    raw["boards"][name] = {**raw["boards"]["ssh-test"], **changes}
    path = tmp_path / "boards.yaml"
    path.write_text(yaml.safe_dump(raw))
    return _env(path)


def test_deploy_status_and_verify_over_ssh(artefacts, boards_file):
    env = _env(boards_file)
    deployed = _invoke_ok(env, "deploy", "--board", "ssh-test")
    assert "1 of 1 boards ok" in deployed.stdout
    status = _invoke_ok(env, "status", "--board", "ssh-test")
    digest = __import__("hashlib").sha256(artefacts.read_bytes()).hexdigest()
    assert digest in status.stdout and "rpi4" in status.stdout
    _invoke_ok(env, "verify", "--board", "ssh-test")
    report = json.loads((BUILD_DIR / "ltc-sine" / "verify-ssh-test.json").read_text())
    assert report["passed"] and report["max_abs_err"] <= 1e-5 and report["isa"] == "neon"


def test_interrupted_upload_leaves_the_previous_deployment_running(artefacts, boards_file, sshds, tmp_path):
    env = _env(boards_file)
    _invoke_ok(env, "deploy", "--board", "ssh-test")
    before = _invoke_ok(env, "status", "--board", "ssh-test").stdout
    relay = CuttingRelay(sshds[0].port, limit=150_000)  # the VM binary alone is several times that
    sshds[0].write_known_hosts(sshds[0].host_key)
    with open(sshds[0].known_hosts, "a") as hosts:
        key = sshds[0].host_key.with_suffix(".pub").read_text().split()
        hosts.write(f"[127.0.0.1]:{relay.port} {key[0]} {key[1]}\n")
    cut_env = _with_entry(boards_file, tmp_path, "via-relay", port=relay.port)
    # A new model (different bytes) so that a finished upload would change the release.
    proc = _invoke(cut_env, "deploy", "--board", "via-relay")
    assert relay.was_cut.is_set(), "the relay never cut the connection"
    assert proc.returncode == 1
    assert "dropped" in proc.stdout + proc.stderr or "failed" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert _invoke_ok(env, "status", "--board", "ssh-test").stdout == before
    _invoke_ok(env, "verify", "--board", "ssh-test")


def test_failed_smoke_test_keeps_the_previous_deployment(artefacts, boards_file):
    env = _env(boards_file)
    _invoke_ok(env, "deploy", "--board", "ssh-test")
    before = _invoke_ok(env, "status", "--board", "ssh-test").stdout
    original = artefacts.read_bytes()
    consts_at, _ = lnnb.section_offsets(original)[isa.const("SEC_CONSTS")]
    data = bytearray(original)
    struct.pack_into("<f", data, consts_at, struct.unpack_from("<f", data, consts_at)[0] + 1.0)
    try:
        artefacts.write_bytes(lnnb.refresh_crc(bytes(data)))
        proc = _invoke(env, "deploy", "--board", "ssh-test")
        assert proc.returncode == 1
        assert "smoke test" in proc.stdout
    finally:
        artefacts.write_bytes(original)
    assert _invoke_ok(env, "status", "--board", "ssh-test").stdout == before


@pytest.mark.parametrize("problem, change, message", [
    ("refused", lambda s: {"port": free_port()}, "connection refused"),
    ("auth", lambda s: {"key": str(s.host_key)}, "authentication failed"),
    ("unknown host", lambda s: {"known_hosts": str(s.workdir / "empty_known_hosts")}, "unknown host key"),
])
def test_connection_problems_say_which(artefacts, boards_file, sshds, tmp_path, problem, change, message):
    (sshds[0].workdir / "empty_known_hosts").write_text("")
    env = _with_entry(boards_file, tmp_path, "broken", **change(sshds[0]))
    proc = _invoke(env, "deploy", "--board", "broken")
    assert proc.returncode == 1
    assert message in proc.stdout
    assert "Traceback" not in proc.stderr


def test_changed_host_key_fails_closed(artefacts, boards_file, sshds, tmp_path):
    other = LocalSSHD(tmp_path / "other", sshds[0].port).prepare()  # a different host key, same address
    hosts = tmp_path / "known_hosts"
    key = other.host_key.with_suffix(".pub").read_text().split()
    hosts.write_text(f"[127.0.0.1]:{sshds[0].port} {key[0]} {key[1]}\n")
    env = _with_entry(boards_file, tmp_path, "spoofed", known_hosts=str(hosts))
    proc = _invoke(env, "status", "--board", "spoofed")
    assert proc.returncode == 1
    assert "host key mismatch" in proc.stdout


def test_silent_server_times_out_instead_of_hanging(artefacts, boards_file, tmp_path):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks SSH
    try:
        env = _with_entry(boards_file, tmp_path, "silent", port=silent.getsockname()[1],
                          timeouts={"connect": 2, "banner": 2, "command": 30})
        proc = _invoke(env, "status", "--board", "silent")
        assert proc.returncode == 1
        assert "timed out" in proc.stdout or "banner" in proc.stdout
    finally:
        silent.close()


def test_fleet_deploys_and_verifies_in_parallel_with_a_summary(artefacts, boards_file):
    env = _env(boards_file)
    deployed = _invoke_ok(env, "deploy", "--board", "fleet")
    assert "4 of 4 boards ok" in deployed.stdout
    verified = _invoke_ok(env, "verify", "--board", "fleet")
    for name in ("pi0", "pi1", "pi2", "qemu-rpi4"):
        assert name in verified.stdout
    assert "4 of 4 boards ok" in verified.stdout


def test_one_dead_board_does_not_stop_the_fleet(artefacts, boards_file):
    env = _env(boards_file)
    proc = _invoke(env, "deploy", "--board", "fleet-with-a-dead-board")
    assert proc.returncode == 1
    assert "2 of 3 boards ok" in proc.stdout
    assert "pi-down" in proc.stdout and "connection refused" in proc.stdout


def _remote(boards_path, name: str) -> Path:
    return Path(yaml.safe_load(Path(boards_path).read_text())["boards"][name]["remote_dir"])


@pytest.mark.parametrize("remote_dir", ["lnnedge", "/", "/home/pi/../../etc", "//"])
def test_a_remote_dir_that_could_leave_the_deploy_tree_is_refused(tmp_path, remote_dir):
    path = tmp_path / "boards.yaml"
    path.write_text(yaml.safe_dump({"boards": {"my-pi": {"target": "rpi4", "transport": "ssh", "host": "pi",
                                                          "user": "pi", "key": "k", "remote_dir": remote_dir}}}))
    with pytest.raises(config.ConfigError, match=r"boards\.my-pi\.remote_dir: must be an absolute directory"):
        config.board("my-pi", path)


def test_a_leftover_upload_under_a_remote_dir_with_a_space_is_removed_and_nothing_outside(artefacts, boards_file,
                                                                                            tmp_path):
    """Defect 2: the cleanup of incoming/ ran `rm -rf $(find ...)` unquoted: `.../remote dir/pi/incoming/x`
    split at the space and `rm -rf .../remote` deleted a directory beside the deploy tree."""
    root = tmp_path / "remote dir" / "pi"
    beside = tmp_path / "remote"
    beside.mkdir()
    (beside / "keep").write_text("not the deploy's\n")
    env = _with_entry(boards_file, tmp_path, "spaced", remote_dir=str(root))
    _invoke_ok(env, "deploy", "--board", "spaced")
    leftover = root / "incoming" / "f063730e2ea3f60c-da1238f9-0badc0de"  # as an interrupted upload leaves it
    leftover.mkdir()
    (leftover / "lnnvm").write_bytes(b"half an upload")
    (leftover / "link out").symlink_to(beside)
    _invoke_ok(env, "deploy", "--board", "spaced")
    assert (beside / "keep").is_file(), "the deploy deleted a directory outside remote_dir"
    assert not leftover.exists() and list((root / "incoming").iterdir()) == []


def test_redeploying_the_live_release_never_removes_it(artefacts, boards_file):
    """Defect 3: a redeploy of the release that is live removed releases/<digest> (which current named) and
    moved the new copy in after: a kill in between left current dangling. The live directory must stay
    whole until current names another one; a watcher checks current all along the redeploy."""
    env = _env(boards_file)
    root = _remote(boards_file, "ssh-test")
    _invoke_ok(env, "deploy", "--board", "ssh-test")
    before = os.readlink(root / "current")
    inode = (root / before).stat().st_ino
    gaps, done = [], threading.Event()

    def watch() -> None:
        while not done.is_set():
            if not ((root / "current" / "lnnvm").is_file() and (root / "current" / "model.lnnb").is_file()):
                gaps.append(os.readlink(root / "current") if (root / "current").is_symlink() else "no current")

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        _invoke_ok(env, "deploy", "--board", "ssh-test")
    finally:
        done.set()
        watcher.join()
    after = os.readlink(root / "current")
    assert after != before or (root / after).stat().st_ino == inode, \
        f"the live release {before} was removed and made again under the same name"
    assert gaps == [], f"current named an incomplete release during the redeploy: {gaps[:3]}"


def test_a_deploy_that_fails_after_the_switch_says_the_new_release_is_live(artefacts, boards_file, tmp_path):
    """Defect 4: a failure after `current` was switched (here the device cannot flush remote_dir after the
    switch) was reported as "the previous deployment stays active" while the new one was live."""
    root = tmp_path / "fresh" / "pi"
    tools = tmp_path / "tools"
    tools.mkdir()
    root.mkdir(parents=True)
    sync = tools / "sync"  # the device's sync: an I/O error flushing remote_dir itself, the others work
    sync.write_text(f"""#!/bin/sh
for a in "$@"; do
  if [ "$(cd -- "$a" 2>/dev/null && pwd -P)" = "{root.resolve()}" ]; then echo "sync: $a: I/O error" >&2; exit 1; fi
done
exec /bin/sync "$@"
""")
    sync.chmod(0o755)
    server = LocalSSHD(tmp_path / "sshd", free_port(), extra_config=f"SetEnv PATH={tools}:/usr/bin:/bin\n")
    server.prepare().start()
    try:
        entry = server.board_entry(root)
        env = _with_entry(boards_file, tmp_path, "bad-disk", **{k: entry[k] for k in ("port", "key", "known_hosts",
                                                                                        "remote_dir")})
        proc = _invoke(env, "deploy", "--board", "bad-disk")
        assert proc.returncode == 1, proc.stdout
        live = Path(os.readlink(root / "current")).name
        assert f"the new release {live} IS live" in proc.stdout, proc.stdout
        assert "stay active" not in proc.stdout + proc.stderr
        status = _invoke_ok(env, "status", "--board", "bad-disk").stdout
        assert live in status and "True" in status
    finally:
        server.stop()


def test_status_before_any_deploy_says_nothing_is_deployed(artefacts, boards_file, tmp_path):
    """Defect 11 (first half): `invoke status` said "deployed True" with empty columns."""
    env = _with_entry(boards_file, tmp_path, "never-deployed", remote_dir=str(tmp_path / "empty"))
    for board in ("never-deployed", "qemu-rpi4"):
        out = _invoke_ok(env, "status", "--board", board).stdout
        row = next(line for line in out.splitlines() if line.startswith(board))
        assert "nothing is deployed" in row and "True" not in row, out


def test_every_step_of_the_ssh_deploy_survives_a_kill(artefacts):
    """The kill-point test: the deploy stopped before each of its steps (every command and transfer), by
    SIGKILL for a new release and by a dropped connection for the live one again. After each, current is a
    complete release that passes `lnnvm test`, status and the error name it, and a clean redeploy recovers."""
    for modes, scenarios in ((("kill",), ("new",)), (("drop",), ("same",))):
        campaign = deploy_kills(modes, scenarios)
        assert campaign.clean, campaign
        assert campaign.tried >= 19 and campaign.rejected_cleanly > 0 and campaign.accepted_correctly > 0, campaign


def test_profile_over_ssh_runs_the_profiling_runner_beside_the_deployment(artefacts, boards_file, tmp_path):
    """`invoke profile` on the SSH board: the profiling runner and the model go to a work directory of their own
    (removed after), and the LTC step's product is the top line with its source line."""
    model = tmp_path / "model.lnnb"
    model.write_bytes(artefacts.read_bytes())
    debug = artefacts.with_name(artefacts.name + ".debug.json")
    model.with_name(debug.name).write_bytes(debug.read_bytes())
    out = _invoke_ok(_env(boards_file), "profile", "--board", "ssh-test", "--file", str(model), "--runs", "100")
    data = json.loads((tmp_path / "profile-ssh-test.json").read_text())
    top = max(data["rows"], key=lambda r: r["per_run"])
    assert top["op"] == "MATMUL_T" and "self.gate(combined)" in top["source"], out.stdout
    assert data["unit"] == "ns" and data["emulated"]  # the board's prefix runs it under qemu-aarch64
    assert len(data["rows"]) == len(lnnb.read(model.read_bytes()).code)


def test_a_sequence_streams_over_ssh_one_line_a_step(artefacts, boards_file, tmp_path):
    """`invoke stream --file` on the SSH board: `lnnvm stream` of the deployed model on an SSH channel kept open
    for the stream, the running sum carried from line to line: the same as the whole-sequence call and the
    reference VM, to the bit (the file's tolerance is 0)."""
    x = np.random.default_rng(5).uniform(-2, 2, (6, 2)).astype(np.float32)
    path = tmp_path / "sum.lnnb"
    path.write_bytes(stateful(tests=lnnb.TestSet(x, x.copy(), 0.0)))  # cases: first steps from zero, y = x
    env = _with_entry(boards_file, tmp_path, "ssh-stream", remote_dir=str(tmp_path / "remote"))
    _invoke_ok(env, "deploy", "--file", str(path), "--board", "ssh-stream")
    out = _invoke_ok(env, "stream", "--file", str(path), "--board", "ssh-stream")
    assert "max |diff| 0.000e+00" in out.stdout, out.stdout
    assert f"{np.cumsum(x, axis=0, dtype=np.float32)[-1, 0]:.6f}" in out.stdout, out.stdout
