"""Model files, generated: valid programs built by lnnedge.fuzzgen, and edge probes that break one rule.

Each program is verified by the C VM; an accepted one runs from the run plan and through the interpreter
(bit for bit the same) and against the reference VM (within the documented tolerance); an edge probe must
be refused with its named status. `invoke reliability` runs `generated_model_files()` at full size.
"""

from __future__ import annotations

from pathlib import Path

from ..fuzzgen import Stats, run_campaign
from . import Campaign

AREA = "model files (generated)"


def campaign_of(stats: Stats) -> Campaign:
    """A generative-fuzzing campaign as a reliability record: a program refused with a named status is
    rejected cleanly, one whose executors agree accepted correctly, a difference between them (or an edge
    probe the verifier took) wrongly accepted."""
    return Campaign(
        area=AREA,
        how=f"{stats.generated} programs generated from seeds (random graphs of the VM's ops in nested loops, "
            f"strided / int8 / float16 constants, STATE, SPLIT; 1 in 10 an edge probe): plan vs interpreter "
            f"bit for bit, both vs the reference VM within 1e-5, {stats.checks} comparisons",
        tried=stats.generated,
        rejected_cleanly=sum(stats.refused.values()),
        accepted_correctly=stats.accepted,
        crashed=stats.crashes,
        hung=stats.hangs,
        wrongly_accepted=stats.mismatches + stats.wrongly_accepted,
    )


def generated_model_files(programs: int = 20_000, seed: int = 0, library: Path | None = None,
                          save: bool = True) -> Campaign:
    """`programs` generated programs from `seed` on (about 170 a second on one core: 2 minutes); saved as
    build/reliability/model-files-generated.json unless save is False."""
    campaign = campaign_of(run_campaign(programs=programs, seed=seed, library=library, echo=lambda _m: None))
    if save:
        campaign.save("model-files-generated")
    return campaign
