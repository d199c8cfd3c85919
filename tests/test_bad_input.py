"""Host-side bad input (issue 15, defects 9, 10 and 11): one clear `error:` line and a non-zero exit for every
bad recipe, boards.yaml, checkpoint and option; artefacts readable like any file the user writes."""

from __future__ import annotations

import os
import re
import stat

import pytest
from lnnedge.artifacts import atomic_write_bytes
from test_pipeline import invoke


def test_host_input_campaign_is_clean():
    """The whole table through the CLI (in process): every bad input refused with one line naming it, the
    valid controls accepted."""
    from lnnedge.reliability.host_input import campaign_of, run_cases

    results = run_cases()
    broken = [f"{r.case.name}: {r.outcome}: {r.detail}" for r in results if r.outcome not in ("rejected", "accepted")]
    assert not broken, "\n".join(broken)
    campaign = campaign_of(results, "test")
    assert campaign.clean and campaign.tried >= 70 and campaign.accepted_correctly >= 3


def test_host_input_cases_are_clean_as_processes_too():
    """A sample as real `invoke` processes, two at a time: the exit code and stderr a shell sees."""
    from lnnedge.reliability.host_input import cases, run_cases

    names = ("zero epochs", "NaN t_start", "checkpoint: truncated", "row not a number", "steps not a number",
             "infinite timeout", "control: the boards")
    sample = [c for c in cases() if c.name in names]
    results = run_cases(sample, processes=True)
    assert len(results) == 7
    assert [r.outcome for r in results if r.outcome not in ("rejected", "accepted")] == [], results


# ---- one regression test per defect: each failed on 31302ac ----------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (("train", "--epochs", "0"), "--epochs must be >= 1, got 0"),
    (("train", "--epochs", "-2"), "--epochs must be >= 1, got -2"),
    (("verify", "--trace", "--row", "abc"), "--row must be an integer, got 'abc'"),
    (("stream", "--steps", "0"), "--steps must be >= 1, got 0"),
    (("stream", "--steps", "abc"), "--steps must be an integer, got 'abc'"),
])
def test_bad_options_are_one_line_not_a_traceback(argv, message):
    """Defect 9: these printed a traceback (IndexError, ValueError from Invoke's int(), np.stack of nothing)."""
    proc = invoke(*argv)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {message}"]


def test_tasks_catch_exactly_the_base_class():
    """Defect 9: tasks.py listed eleven error classes (QemuError, FuzzError missing) and caught bare ValueError and
    FileNotFoundError; now one class, and every user error derives from it."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "tasks.py").read_text()
    assert set(re.findall(r"except\s+([^:]+?)(?:\s+as\s+\w+)?:", text)) == {"LnnedgeError"}
    from lnnedge.artifacts import MissingArtifact
    from lnnedge.devices.emulator import EmulatorError
    from lnnedge.errors import LnnedgeError, UsageError
    from lnnedge.fuzz import FuzzError

    assert all(issubclass(cls, LnnedgeError) for cls in (EmulatorError, FuzzError, MissingArtifact, UsageError))


@pytest.mark.parametrize("steps, message", [("-1", "--steps must be >= 1, got -1"),
                                            ("33", "--steps must be between 1 and 32")])
def test_stream_refuses_steps_outside_the_sequence(steps, message):
    """Defect 10: `stream --steps -1` ran all but the last step (a slice [:-1]); 33 ran 32."""
    proc = invoke("stream", "--steps", steps)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [f"error: {message}" + (
        " (the recipe's data.length), got 33" if steps == "33" else "")]


@pytest.mark.parametrize("text, message", [
    ("nan", "--inputs must be finite numbers, got 'nan'"),
    ("0.5,inf", "--inputs must be finite numbers, got 'inf'"),
    (",,,", "--inputs has an empty item"),
    ("0.5,,1", "--inputs has an empty item"),
])
def test_run_refuses_non_finite_and_empty_inputs(text, message):
    """Defect 10: `run --inputs nan` printed nan without a word; `--inputs ,,,` ran the default 0.5."""
    proc = invoke("run", "--inputs", text)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_artefacts_are_written_with_the_umask_like_any_file(tmp_path):
    """Defect 11: mkstemp made every artefact 0600, unreadable by the group and others a umask allows."""
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        os.umask(0o027)
        atomic_write_bytes(tmp_path / "b.bin", b"y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o640
    assert (tmp_path / "a.bin").read_bytes() == b"x" and sorted(p.name for p in tmp_path.iterdir()) == ["a.bin",
                                                                                                      "b.bin"]


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "a.bin", "not bytes")  # the write fails half-way
    assert (tmp_path / "a.bin").read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]
