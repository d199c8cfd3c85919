"""vm/tests/make_sample.py's checks, run on the host build's lnnvm and liblnnvm.so.

What the other tests do not cover: the 77 broken variants the script writes (broken.json), each of which must
give its named status at its byte offset in one line of `lnnvm verify`, and make `lnnvm disasm` fail; the C API
called through ctypes (lnn_init, lnn_arena_size, lnn_run, lnn_use_kernels on every compiled-in kernel set, the
trace hook, the bundled test set); and the outputs of a plain-Python reference interpreter, independent of the
compiler and of lnnedge, for its sample, ops (every opcode and broadcast path) and q8 (the int8 products) models
at several batch sizes, from the run plan and the interpreter, on one thread and several, and for its random
programs. Byte mutants of the three models must be refused with a status or run cleanly.
"""

from __future__ import annotations

import re
import subprocess
import sys

from lnnedge.paths import VM_DIR

MAKE_SAMPLE = VM_DIR / "tests" / "make_sample.py"
FUZZ = 2000      # byte mutants of the three models
PROGFUZZ = 1500  # random programs, half compared with the reference interpreter
# The checks make_sample.py makes without --fuzz / --progfuzz, counted with this version of it (--lnnvm and
# --lib, no fuzz: '493 passed'): 404 through the runner (154 of them the 77 broken variants' verify and disasm)
# and 89 through the C API, 2 of which (select the set, run the model) per kernel set the CPU can use; on a CPU
# without AVX-512 there are 2 fewer, so the floor counts 491.
CHECKS_WITHOUT_FUZZ = 404 + 89 - 2
# Every mutant gives one check (its verify) and, when it is accepted, a second (its run); every program one.
CHECKS_FLOOR = CHECKS_WITHOUT_FUZZ + FUZZ + PROGFUZZ


def test_make_sample_checks_pass_on_the_host_build(host_build, tmp_path):
    assert host_build.library is not None, "the host build made no liblnnvm.so"
    proc = subprocess.run([sys.executable, str(MAKE_SAMPLE), str(tmp_path), "--lnnvm", str(host_build.runner),
                           "--lib", str(host_build.library), "--fuzz", str(FUZZ), "--progfuzz", str(PROGFUZZ)],
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    summary = re.search(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
    assert proc.returncode == 0 and summary and summary.group(2) == "0", out[-6000:]
    assert int(summary.group(1)) >= CHECKS_FLOOR, f"only {summary.group(1)} checks ran (floor {CHECKS_FLOOR})"
