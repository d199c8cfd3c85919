"""Recipes, targets and boards: every mistake names the file, the entry and the problem."""

from __future__ import annotations

import pytest
import yaml
from lnnedge import config, recipe


def test_shipped_recipes_targets_and_boards_load():
    assert {"ltc-sine", "ltc-3in-rk4"} <= set(recipe.available())
    for name in recipe.available():
        recipe.load(name)
    boards, default = config.load_boards()
    assert default in boards and "host" in boards


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["model"].pop("hidden"), "model.hidden: is missing"),
    (lambda r: r["model"].update(hidden="many"), "model.hidden: must be an integer"),
    (lambda r: r["model"]["solver"].update(method="dopri5"), "model.solver.method: must be one of"),
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


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(recipe.RecipeError, match="ltc-sine"):
        recipe.load("no-such-model")


@pytest.mark.parametrize("text, problem", [
    ("boards: [1, 2]", "'boards' must be a mapping"),
    ("boards:\n  pi:\n    target: host\n", "board 'pi': field 'transport' is missing"),
    ("boards:\n  pi:\n    target: nope\n    transport: local\n", "board 'pi': unknown target 'nope'"),
    ("boards:\n  pi:\n    target: host\n    transport: pigeon\n", "board 'pi': transport 'pigeon'"),
    ("boards:\n  pi:\n    target: host\n    transport: local\n    colour: red\n", "unknown field"),
    ("boards: {pi: {target: host, transport: local}}\ndefault_board: mars\n", "default_board 'mars'"),
    ("boards: {", "not valid YAML"),
])
def test_bad_boards_file_names_file_entry_and_problem(tmp_path, text, problem):
    path = tmp_path / "boards.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load_boards(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(config.ConfigError, match="unknown board 'mars'.*host"):
        config.board("mars")
