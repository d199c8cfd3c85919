"""`verify --junit FILE`: the verdicts as JUnit XML, the test report format CI systems read (GitHub Actions'
test-reporter actions, GitLab's `artifacts:reports:junit`, Jenkins' junit step).

One <testsuite> for the verify run, one <testcase> per board: passed, a <failure> (the device's outputs are
outside the recipe's tolerance; message: the error and the tolerance) or an <error> (the board could not be
verified at all: not reachable, build failed, ...). The elements, their order and their attributes are those of
the Ant/Jenkins JUnit schema (junit-10.xsd), the subset every CI system accepts.
"""

from __future__ import annotations

import datetime as dt
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .artifacts import atomic_write_text
from .pipeline.verify import failure_message

if TYPE_CHECKING:
    from .pipeline.reports import FleetReport, VerifyReport


@dataclass(frozen=True)
class Case:
    board: str
    seconds: float = 0.0
    failure: str = ""  # the board ran and its result is wrong
    error: str = ""  # the board could not be verified
    details: str = ""  # the report's figures, shown by CI under the case


def _verdict_details(data: dict) -> str:
    keys = ("model", "board", "target", "isa", "max_abs_err", "tolerance", "rmse", "same_class_share",
            "accuracy_device", "accuracy_pytorch", "latency_us", "model_sha256", "vm_version", "json")
    return "\n".join(f"{k}: {data[k]}" for k in keys if k in data)


def case_of(board: str, data: dict, error: str = "") -> Case:
    """A board's case from its verify report (`data`, the verify-<board>.json document) or the error it raised."""
    if error or not data:
        return Case(board, error=error or "no result")
    seconds = float(data.get("device_wall_seconds") or 0.0)
    failure = "" if data.get("passed") else failure_message(data)
    return Case(board, seconds, failure=failure, details=_verdict_details(data))


def render(cases: list[Case], model: str, suite: str = "lnnedge verify") -> str:
    """The JUnit XML document: <testsuites> holding one <testsuite> with a <testcase> per board. Only what both
    the Ant schema (JUnit.xsd: no attributes on <testsuites>, package and id on each <testsuite>, no output
    inside a <testcase>) and Jenkins' junit-10.xsd allow, so a strict reader takes it too."""
    total = f"{sum(c.seconds for c in cases):.3f}"
    root = ET.Element("testsuites")
    testsuite = ET.SubElement(root, "testsuite", {
        "name": f"{suite} {model}", "package": "lnnedge.verify", "id": "0",
        "timestamp": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "hostname": socket.gethostname() or "localhost", "tests": str(len(cases)),
        "failures": str(sum(1 for c in cases if c.failure)), "errors": str(sum(1 for c in cases if c.error)),
        "time": total})
    properties = ET.SubElement(testsuite, "properties")
    ET.SubElement(properties, "property", {"name": "model", "value": model})
    for c in cases:
        testcase = ET.SubElement(testsuite, "testcase", {"name": c.board, "classname": f"lnnedge.verify.{model}",
                                                         "time": f"{c.seconds:.3f}"})
        if c.error:
            ET.SubElement(testcase, "error", {"message": c.error, "type": "error"}).text = c.error
        elif c.failure:
            ET.SubElement(testcase, "failure", {"message": c.failure, "type": "failure"}).text = (
                f"{c.failure}\n{c.details}")
    ET.SubElement(testsuite, "system-out").text = "\n\n".join(f"[{c.board}]\n{c.details}" for c in cases
                                                               if c.details)
    ET.SubElement(testsuite, "system-err")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(path: Path, cases: list[Case], model: str) -> Path:
    atomic_write_text(path, render(cases, model))
    return path


def verify_to_junit(path: Path, model: str, board: str | None,
                    quant: str | None = None) -> VerifyReport | FleetReport:
    """pipeline.verify on a board or a group, its verdicts also written to `path`; when verify cannot run at all
    (no trained model, a bad recipe, ...), every board it was asked for gets an <error> case saying why, and the
    error is raised as usual."""
    from . import config
    from .errors import LnnedgeError
    from .pipeline.reports import FleetReport
    from .pipeline.verify import verify

    try:
        report = verify(model, board, quant)
    except LnnedgeError as exc:
        try:
            names = [b.name for b in config.resolve(board)]
        except LnnedgeError:
            names = [board or "default-board"]
        write(path, [Case(name, error=" ".join(str(exc).split())) for name in names], model)
        raise
    if isinstance(report, FleetReport):
        cases = [case_of(o.board, o.detail, o.error) for o in report.outcomes]
    else:
        cases = [case_of(report.board, report.data)]
    write(path, cases, model)
    return report
