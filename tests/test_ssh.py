"""Deploying over SSH to a real OpenSSH server on 127.0.0.1 that runs the aarch64 build behind
`qemu-aarch64 -cpu cortex-a72`, exactly as a Raspberry Pi 4 would, and a fleet in parallel."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading

import pytest
import yaml
from lnnedge import config, isa, lnnb
from lnnedge.build import build
from lnnedge.paths import BUILD_DIR
from lnnedge.testing.sshd import LocalSSHD, available, free_port
from test_pipeline import invoke, ok

pytestmark = pytest.mark.skipif(not available(), reason="openssh-server is not installed (./kit installs it)")


class CuttingRelay:
    """A TCP relay to sshd that closes both sides after `limit` bytes from the client: a dropped link."""

    def __init__(self, target_port: int, limit: int):
        self.target_port, self.limit = target_port, limit
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cut = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        sent = 0

        def pump(src, dst, count: bool) -> None:
            nonlocal sent
            try:
                while chunk := src.recv(16384):
                    if count:
                        sent += len(chunk)
                        if sent > self.limit:
                            self.cut.set()
                            break
                    dst.sendall(chunk)
            except OSError:
                pass
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()
        pump(client, upstream, True)


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
    assert relay.cut.is_set(), "the relay never cut the connection"
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
