"""QEMU's `-icount shift=s` as a clock: every executed guest instruction advances the emulated clock by exactly
2^s ns (QEMU docs, "TCG Instruction Counting"), so a counter on a `clock_hz` clock ticks 2^s ns × clock_hz per
instruction, and a tick count converts back to an exact instruction count. The MCU bench and the firmware
profiler both boot their emulator at `bench_shift` and convert with `instructions`."""

from __future__ import annotations


def ticks_per_instruction(clock_hz: float, shift: int) -> float:
    """Counter ticks per instruction under -icount shift=`shift` with the counter on a `clock_hz` clock."""
    return (1 << shift) * 1e-9 * clock_hz


def bench_shift(clock_hz: float) -> int:
    """The smallest -icount shift at which one instruction lasts at least two ticks of a `clock_hz` counter."""
    shift = 0
    while ticks_per_instruction(clock_hz, shift) < 2.0:
        shift += 1
    return shift


def instructions(ticks: float, clock_hz: float, shift: int) -> int:
    return round(ticks / ticks_per_instruction(clock_hz, shift))
