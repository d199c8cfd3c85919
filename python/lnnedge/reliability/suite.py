"""Every reliability campaign at full size, in one call: what `invoke reliability` runs.

Each entry names the file its Campaign is saved as (build/reliability/<name>.json) and how to run it
at full size; the test suite runs the same functions smaller and asserts they are clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import Campaign


@dataclass(frozen=True)
class Entry:
    name: str  # build/reliability/<name>.json
    area: str  # what the campaign throws bad input at (for progress lines and --only)
    run: Callable[[], Campaign]


def _generated_files() -> Campaign:
    from .generated_models import generated_model_files

    return generated_model_files(programs=20_000, seed=0, save=False)


def _frames_in() -> Campaign:
    from .serial_frames import host_to_device

    return host_to_device(frames=100_000, seed=1)


def _frames_out() -> Campaign:
    from .serial_frames import device_to_host

    return device_to_host(frames=100_000, seed=2)


def _load_cut() -> Campaign:
    from .serial_frames import load_cut

    return load_cut()


def _deploy_kills() -> Campaign:
    from .deploy_kills import deploy_kills

    return deploy_kills()


def _host_input() -> Campaign:
    from .host_input import host_input_campaign

    return host_input_campaign(processes=True, workers=2)


ENTRIES = (
    Entry("model-files-generated", "files", _generated_files),
    Entry("serial-frames-host-to-device", "serial", _frames_in),
    Entry("serial-frames-device-to-host", "serial", _frames_out),
    Entry("firmware-load-cut", "serial", _load_cut),
    Entry("deploy-kills-ssh", "deploy", _deploy_kills),
    Entry("host-input", "host", _host_input),
)


def run(only: Iterable[str] = (), say: Callable[[str], None] = print) -> list[Campaign]:
    """Run the campaigns (all, or those whose area is in `only`), save each, return them."""
    wanted = set(only)
    unknown = wanted - {e.area for e in ENTRIES}
    if unknown:
        from ..errors import UsageError

        raise UsageError(f"--only: unknown area {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(sorted({e.area for e in ENTRIES}))}")
    results = []
    for e in ENTRIES:
        if wanted and e.area not in wanted:
            continue
        say(f"reliability: {e.name} ...")
        campaign = e.run()
        path = campaign.save(e.name)
        say(f"reliability: {e.name}: {campaign.tried:,} tried, {campaign.rejected_cleanly:,} rejected cleanly, "
            f"{campaign.crashed} crashed, {campaign.hung} hung, {campaign.wrongly_accepted} wrongly accepted "
            f"-> {path}")
        results.append(campaign)
    return results
