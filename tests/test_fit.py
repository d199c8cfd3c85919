"""Know before flashing: the .lnnb records what it needs, and deploy refuses a board too small for it."""

from __future__ import annotations

import pytest
import yaml
from lnnedge import config, isa, lnnb
from lnnedge.paths import BUILD_DIR
from test_pipeline import invoke, ok


def test_model_records_what_it_needs(sine_compiled):
    req = sine_compiled.program.meta["requires"]
    assert req["arena_bytes_batch1"] == sine_compiled.arena_bytes(1)
    assert req["const_bytes"] == len(sine_compiled.program.consts)
    assert 1 <= req["max_stack"] <= 16
    assert "LOOP" in req["ops"] and set(req["ops"]) <= set(isa.opcodes())
    assert lnnb.read(sine_compiled.data).meta["requires"] == req


def test_memory_sizes_are_parsed_and_checked(tmp_path):
    path = tmp_path / "boards.yaml"
    path.write_text("boards: {b: {target: host, transport: local, memory: {ram: 256KiB, flash: 1MB}}}\n")
    assert config.board("b", path).memory == {"ram": 262144, "flash": 1000000}
    path.write_text("boards: {b: {target: host, transport: local, memory: {ram: lots}}}\n")
    with pytest.raises(config.ConfigError, match="memory.ram: 'lots' is not a size"):
        config.load_boards(path)


def test_deploy_refuses_a_board_too_small_with_the_numbers(tmp_path):
    if not (BUILD_DIR / "ltc-sine" / "checkpoint.pt").is_file():
        ok("train")
    ok("compile")
    ok("build", "--target", "host")
    boards = tmp_path / "boards.yaml"
    boards.write_text(yaml.safe_dump({"boards": {"tiny": {"target": "host", "transport": "local",
                                                          "memory": {"ram": "16KiB"}}}}))
    proc = invoke("deploy", "--board", "tiny", env={"LNNEDGE_BOARDS": str(boards)})
    assert proc.returncode == 1
    assert "bytes of ram" in proc.stdout and "has 16384" in proc.stdout and "arena" in proc.stdout


def test_firmware_board_refuses_a_model_larger_than_its_buffer(sine_file, tmp_path):
    from dataclasses import replace

    from lnnedge.fit import FitError, check

    board = config.board("qemu-m4")
    small = replace(board.target, firmware=replace(board.target.firmware,
                                                   variables={**board.target.firmware.variables, "MODEL_MAX": 4096}))
    with pytest.raises(FitError, match=r"the model needs \d+ bytes but the firmware's MODEL_MAX is 4096"):
        check(replace(board, target=small), sine_file, None)
    assert check(board, sine_file, None)["model_bytes"] == sine_file.stat().st_size
