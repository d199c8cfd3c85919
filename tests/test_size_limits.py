"""Issue 18's size limits, measured as `invoke size --target T --model ltc-sine` measures them (lnnedge.footprint
.measure: the selective build's map files): the VM core on a Cortex-M4 at -Os (loader, verifier, interpreter,
ltc-sine's kernels: no protocol, no startup) within 12 KB of .text + .rodata; the whole stm32f405 firmware with
the protocol within 20 KB plus the model; all the RAM of the nrf51 firmware for ltc-sine (arena, state, VM
state, protocol buffers, stack) within 8 KB. The sizes depend on the model's ops, plan and arena, not on its
weights: the untrained ltc-sine has the trained one's structure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lnnedge import footprint, paths

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")

CORE_LIMIT = footprint.LIMITS["core"]  # .text + .rodata of the VM core, Cortex-M4, -Os
FIRMWARE_LIMIT = footprint.LIMITS["firmware"]  # flash of the stm32f405 firmware without its model
RAM_LIMIT = footprint.LIMITS["ram"]  # all the RAM of the nrf51 (qemu-m0) firmware for ltc-sine


@pytest.fixture(scope="module")
def sizes(tmp_path_factory, sine_file) -> dict[str, dict]:
    """invoke size's reports for stm32f405 and nrf51, written under a scratch build directory (not build/size,
    whose reports are the README's)."""
    scratch = tmp_path_factory.mktemp("size")
    model = scratch / "ltc-sine" / "model.lnnb"
    model.parent.mkdir()
    model.write_bytes(Path(sine_file).read_bytes())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "BUILD_DIR", scratch / "build")
        return {t: footprint.measure(t, model) for t in ("stm32f405", "nrf51")}


def test_the_vm_core_with_ltc_sine_s_kernels_fits_12_kb_on_a_cortex_m4(sizes):
    core = sizes["stm32f405"]["core_scalar"]
    assert core["vm_code"] <= CORE_LIMIT, footprint.table(sizes["stm32f405"])


def test_the_nrf51_firmware_needs_at_most_8_kb_of_ram_for_ltc_sine(sizes):
    fw = sizes["nrf51"]["firmware"]
    assert fw["components"]["stack"]["ram"] > 0  # the stack is counted, from the map's .stack
    assert fw["ram"] <= RAM_LIMIT, footprint.table(sizes["nrf51"])


def test_the_stm32f405_firmware_fits_20_kb_plus_its_model(sizes):
    fw = sizes["stm32f405"]["firmware"]
    assert fw["flash"] - fw["components"]["model"]["flash"] <= FIRMWARE_LIMIT, footprint.table(sizes["stm32f405"])
    assert all(fw["components"][c]["code"] > 0 for c in ("core", "verifier", "kernels", "protocol", "startup"))
