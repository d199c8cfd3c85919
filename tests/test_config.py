"""Recipes, targets and boards: every mistake names the file, the entry and the problem."""

from __future__ import annotations

import pytest
import yaml
from lnnedge import config, recipe

SSH = "target: rpi4, transport: ssh, host: h, user: u, key: k, remote_dir: /srv/lnnedge"


def test_shipped_recipes_targets_and_boards_load():
    assert {"ltc-sine", "ltc-3in-rk4"} <= set(recipe.available())
    for name in recipe.available():
        recipe.load(name)
    boards, default = config.load_boards()
    assert default in boards and "host" in boards
    for name in config.target_names():
        config.load_target(name)


@pytest.mark.parametrize("text, problem", [
    ("{arch: x, os: linux, toolchain: native-gcc, simd: auto, clock_hz: -1}", "clock_hz: must be >= 0"),
    ("{arch: x, os: linux, toolchain: native-gcc, simd: sse5}", "simd: must be one of"),
    ("{arch: x, os: linux, toolchain: ../toolchains/x, simd: auto}", "toolchain: must be a name"),
    ("{arch: x, os: linux, toolchain: native-gcc, simd: auto, cflag: [-O2]}",
     r"cflag: unknown key \(did you mean 'cflags'\?\)"),
    ("{arch: x, os: linux, toolchain: native-gcc, simd: auto, qemu: {program: q, cpu: c, icount: 99}}",
     "qemu.icount: must be <= 10"),
    ("{name: other, arch: x, os: linux, toolchain: native-gcc, simd: auto}", "name: 'other' differs"),
])
def test_bad_target_file_names_file_key_and_value(tmp_path, monkeypatch, text, problem):
    monkeypatch.setattr(config, "TARGETS_DIR", tmp_path)
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(config.ConfigError, match=f"{tmp_path / 't.yaml'}: {problem}"):
        config.load_target("t")


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["model"].pop("hidden"), "model.hidden: is missing"),
    (lambda r: r["model"].update(hidden="many"), "model.hidden: must be an integer"),
    (lambda r: r["model"]["solver"].update(method="scipy_solver"), "model.solver.method: must be one of"),
    (lambda r: r["data"].update(range=[3, 1]), r"data.range\[0\]: high must be greater"),
    (lambda r: r["training"].update(lr=-1), "training.lr: must be > 0"),
])
def test_bad_recipe_names_file_and_field(tmp_path, edit, field):
    raw = yaml.safe_load(recipe.recipe_path("ltc-sine").read_text())
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(recipe.RecipeError, match=f"{path}: {field}"):
        recipe.load(str(path))


@pytest.mark.parametrize("edit, field", [
    # issue 15, defect 9: a traceback from deep inside training
    (lambda r: r["model"]["solver"].update(t_start=float("nan")), "model.solver.t_start: must be a finite number"),
    # issue 15, defect 10: silently accepted
    (lambda r: r["model"]["solver"].update(step=50), r"model.solver.step: unknown key \(did you mean 'steps'\?\)"),
    (lambda r: r.update(epochs=5), r"epochs: unknown key here \(did you mean 'training.epochs'\?\)"),
    (lambda r: r["tolerances"].update(float32_max_abs_err=float("inf")),
     "tolerances.float32_max_abs_err: must be a finite number, got inf"),
    (lambda r: r.update(name="../.."), "name: must be a name of letters"),
    (lambda r: r["data"].update(range=[0, "10**400"]), r"data.range\[0\]\[1\]: must be a finite number"),
    (lambda r: r["model"].update(hidden=True), "model.hidden: must be an integer, got True"),
    (lambda r: r["training"].update(epochs="10"), "training.epochs: must be an integer, got '10'"),
    (lambda r: r["training"].update(seed=2**40), "training.seed: must be <= 4294967295"),
    (lambda r: r["training"].update(lr_final=-0.1), "training.lr_final: must be >= 0"),
    (lambda r: r["data"].update(function="log(x)"), "data.function: 'log\\(x\\)' is not finite at \\(0\\)"),
    (lambda r: r["model"].update(kind="transformer"), "model.kind: must be one of ltc, "),
    (lambda r: r["quantization"].update(schem="int8"), r"quantization.schem: unknown key \(did you mean 'scheme'\?\)"),
    (lambda r: r.update(verify={"sequences": 4}), "verify.sequences: unknown key"),
])
def test_recipe_schema_refuses_with_file_key_and_value(tmp_path, edit, field):
    test_bad_recipe_names_file_and_field(tmp_path, edit, field)


def test_recipe_numbers_are_evaluated_in_float64():
    """Issue 15, defect 10: `7**23` was 8.9e18 (int64 wrapped), `2**64` was 0."""
    from lnnedge.expr import number

    assert number("7**23") == 7.0**23
    assert number("2**64") == 2.0**64
    assert number("2*pi") == pytest.approx(6.283185307179586)


def test_json_schemas_describe_every_file():
    schemas = {**config.json_schemas(), "recipe": recipe.json_schema()}
    assert set(schemas) == {"boards", "target", "toolchain", "recipe"}
    assert schemas["toolchain"]["additionalProperties"] is False
    assert "transport" in str(schemas["boards"]) and "solver" in str(schemas["recipe"])


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(recipe.RecipeError, match="ltc-sine"):
        recipe.load("no-such-model")


@pytest.mark.parametrize("text, problem", [
    ("boards: [1, 2]", "boards: must be a mapping"),
    ("boards:\n  pi:\n    target: host\n", "boards.pi.transport: is missing"),
    ("boards:\n  pi:\n    target: nope\n    transport: local\n", "boards.pi.target: unknown target 'nope'"),
    ("boards:\n  pi:\n    target: host\n    transport: pigeon\n", "boards.pi.transport: must be one of"),
    ("boards:\n  pi:\n    target: host\n    transport: local\n    colour: red\n", "boards.pi.colour: unknown key"),
    ("boards: {pi: {target: host, transport: local}}\ndefault_board: mars\n", "default_board: 'mars'"),
    ("boards: {", "not valid YAML"),
    # issue 15, defect 10: each of these was accepted
    ("boards: {s: {target: cortex-m4, transport: serial, port: true}}", "boards.s.port: must be a string, got True"),
    ("boards: {s: {target: host, transport: local, memory: {ram: '0'}}}", "boards.s.memory.ram: must be between"),
    ("boards: {s: {target: cortex-m4, transport: serial, port: /dev/x, baudrate: -5}}",
     "boards.s.baudrate: must be >= 50, got -5"),
    (f"boards: {{p: {{{SSH}, timeouts: {{command: .inf}}}}}}", "boards.p.timeouts.command: must be a finite number"),
    (f"boards: {{p: {{{SSH}, timeouts: {{comand: 5}}}}}}",
     "boards.p.timeouts.comand: unknown key (did you mean 'command'?)"),
    (f"boards: {{p: {{{SSH}, port: 22.5}}}}", "boards.p.port: must be an integer, got 22.5"),
    (f"boards: {{p: {{{SSH}, port: true}}}}", "boards.p.port: must be an integer, got True"),
    (f"boards: {{p: {{{SSH}, agent: 'yes'}}}}", "boards.p.agent: must be true or false, got 'yes'"),
    ("boards: {s: {target: cortex-m4, transport: serial, port: /dev/x, retries: 0}}", "boards.s.retries: must be >= 1"),
    ("boards: {s: {target: cortex-m4, transport: serial, port: /dev/x, timeouts: {run: -1}}}",
     "boards.s.timeouts.run: must be > 0"),
    ("boards: {a: {target: host, transport: local, qemu_cpu: max}}", "boards.a.qemu_cpu: unknown key"),
    ("boards: {../x: {target: host, transport: local}}", "boards.../x (the key): must be a name"),
    ("boards: {a: {target: ../boards, transport: local}}", "boards.a.target: must be a name"),
    ("boards: {}", "boards: must have at least 1 item"),
    ("boards: {a: {target: host, transport: local}}\ngroups: {g: []}", "groups.g: must have at least 1 item"),
    ("boards: {a: {target: host, transport: local}}\ngroups: {a: [a]}", "groups.a: a board has this name too"),
    ("boardz: {a: {target: host, transport: local}}", "boardz: unknown key (did you mean 'boards'?)"),
])
def test_bad_boards_file_names_file_key_and_value(tmp_path, text, problem):
    path = tmp_path / "boards.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load_boards(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(config.ConfigError, match="unknown board 'mars'.*host"):
        config.board("mars")
