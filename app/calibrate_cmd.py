"""`trialwright calibrate`: score real labelled trials with the blinded quality judge and store the
per-label thresholds the critic then accepts by (cached per judge model and checklist).

Register in app/cli.py:  app.command("calibrate")(calibrate_command)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer


def calibrate_command(
    records: Annotated[Path | None, typer.Option(help="full registry records (AllPublicXML JSONL, "
                                                 "a folder of .xml, or one .xml); default: the "
                                                 "configured data folder's sample")] = None,
    phase: Annotated[str | None, typer.Option(help="only real trials of this phase")] = None,
    limit: Annotated[int, typer.Option(min=1, help="real trials per label at most")] = 40,
    llm: Annotated[str, typer.Option(help="'auto' (endpoint or embedded) or 'fake'")] = "auto",
    data: Annotated[Path | None, typer.Option("--data", help="data folder")] = None,
) -> None:
    """Calibrate the judge on real trials of each outcome (label from the TOP benchmark)."""
    from trialwright.agents.calibration import (
        calibrate,
        describe_sample,
        labelled_sample,
        save_calibration,
    )
    from trialwright.agents.common import AgentDeps
    from trialwright.app.common import UserError, out, settings_for, user_errors
    from trialwright.tools.ctgov import load_records
    from trialwright.tools.llm import open_endpoints
    from trialwright.tools.trials import normalise_phase

    s = settings_for(data_dir=data)
    with user_errors():
        path = records or s.ctgov_records_path
        if not path.exists():
            raise UserError(f"--records {path}: not found")
        loaded = load_records(path, label="top")
        want = normalise_phase(phase) if phase else None
        sample = labelled_sample(loaded.records, limit, want)
        if len({label for *_, label in sample}) < 2:
            raise UserError(f"{path.name}: needs labelled real trials of both outcomes"
                            f"{' in ' + want if want else ''}; found {describe_sample(sample)}")
        with open_endpoints(s, llm) as (generator, judge):
            deps = AgentDeps(settings=s, generator=generator, judge=judge)
            cal = asyncio.run(calibrate(sample, deps, source=(
                f"{path.name}: {describe_sample(sample)}{', ' + want if want else ''}")))
        saved = save_calibration(cal, s)
    from trialwright.agents.calibration import MIN_PER_LABEL

    for label in ("0", "1"):
        t = cal.thresholds.get(label)
        how = ("its own" if cal.n[label] >= MIN_PER_LABEL else "pooled over both labels")
        out.print(f"label {label}: n={cal.n[label]}, threshold "
                  f"{f'{t:.3f} ({how})' if t is not None else f'{cal.fallback} (fixed: too few trials)'}")
    out.print(f"unanswered: {cal.unanswered}; calibration {cal.id}\nsaved: {saved}")
