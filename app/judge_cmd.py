"""`trialwright judge` and `trialwright review`: judge studies and human review sheets.

Register in app/cli.py:  app.command("judge")(judge_command); app.command("review")(review_command)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_PROBES = "plain,verbosity,real,pairwise"


def generated_lines(path: Path, with_rejected: bool) -> tuple[list[dict[str, Any]], list[Path]]:
    """Records holding a report, from `path` (a reports.jsonl or a run folder) and, with
    `with_rejected`, its rejected file; and the files read."""
    from trialwright.app.common import UserError
    from trialwright.eval.synthetic_reports import (
        EvalInputError,
        generated_files,
        read_records,
        with_report,
    )

    files = generated_files(path, with_rejected)
    try:
        return with_report(read_records(files)), files
    except EvalInputError as e:
        raise UserError(str(e)) from None


def judge_command(
    in_file: Annotated[Path, typer.Option("--in", help="reports.jsonl (or a run folder)")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for verdicts and agreement.json")],
    judges: Annotated[str, typer.Option(help="MODEL@RUBRIC[,...], e.g. 'fake@critic_rubric,"
                                        "default@rubric_strict' (see eval/judges/studies.py)")],
    probes: Annotated[str, typer.Option(help=f"any of {DEFAULT_PROBES}")] = DEFAULT_PROBES,
    limit: Annotated[int | None, typer.Option(min=1, help="judge a seeded sample of N reports")] = None,
    real: Annotated[int, typer.Option("--real", min=0, help="real trials for the accuracy probe "
                                      "(each shown with its true and flipped outcome)")] = 20,
    pairs: Annotated[int, typer.Option(min=0, help="report pairs for the position probe")] = 10,
    human: Annotated[list[Path] | None, typer.Option(help="filled review sheet(s) to include")] = None,
    with_rejected: Annotated[bool, typer.Option(help="also judge rejected.jsonl beside --in")] = True,
    concurrency: Annotated[int, typer.Option(min=1)] = 2,
    seed: Annotated[int, typer.Option()] = 0,
    data: Annotated[Path | None, typer.Option("--data", help="data folder holding top/")] = None,
) -> None:
    """Re-judge reports with several judges (model x rubric); agreement and bias study."""
    import numpy as np
    from rich.table import Column, Table
    from trialwright.agents.common import prompt_hashes
    from trialwright.app.common import (
        UserError,
        err,
        load_corpus,
        out,
        settings_for,
        user_errors,
    )
    from trialwright.eval.judges.agreement import (
        agreement_report,
        checks_by_item,
        read_verdicts,
    )
    from trialwright.eval.judges.human import read_review_sheet
    from trialwright.eval.judges.studies import (
        PROBES,
        JudgeSpecError,
        generated_items,
        open_judges,
        pairwise_items,
        parse_judge_specs,
        real_trial_items,
        run_judges,
    )
    from trialwright.tools.schema import Evidence
    from trialwright.tools.versions import file_sha256
    from trialwright.tools.writer import JsonlWriter, write_json_atomic

    s = settings_for(data_dir=data)
    with user_errors():
        try:
            specs = parse_judge_specs(judges)
        except JudgeSpecError as e:
            raise UserError(str(e)) from None
        wanted = [p.strip() for p in probes.split(",") if p.strip()]
        if bad := sorted(set(wanted) - set(PROBES)):
            raise UserError(f"--probes: unknown {', '.join(bad)}; choose from {', '.join(PROBES)}")
        if not in_file.exists():
            raise UserError(f"--in {in_file}: not found")
        lines, files = generated_lines(in_file, with_rejected)
        if not lines:
            raise UserError(f"--in {in_file}: no reports to judge")
        if limit and limit < len(lines):
            keep = sorted(np.random.default_rng(seed).choice(len(lines), limit, replace=False))
            lines = [lines[i] for i in keep]
        trials = load_corpus(s)
        by_id = {t.nctid: t for t in trials}

        def evidence_of(nctid: str) -> Evidence | None:
            t = by_id.get(nctid)
            return t and Evidence(nctid=t.nctid, score=0.0, phase=t.phase, label=t.label,
                                  diseases=t.diseases, drugs=t.drugs, text=t.text())

        items = []
        if {"plain", "verbosity"} & set(wanted):
            items += [i for i in generated_items(lines, evidence_of, "verbosity" in wanted)
                      if i.probe in wanted]
        if "real" in wanted and real:
            items += real_trial_items(trials, real, seed)
        if "pairwise" in wanted and pairs:
            items += pairwise_items(lines, pairs)

        out_dir.mkdir(parents=True, exist_ok=True)
        verdicts = JsonlWriter(out_dir / "verdicts.jsonl")
        failures = JsonlWriter(out_dir / "failed.jsonl")
        started = time.strftime("%Y%m%dT%H%M%S")
        counts = {"asked": 0, "failed": 0}

        def keep_row(row: dict[str, Any], ok: bool) -> None:
            counts["asked"] += 1
            if ok:
                verdicts.write(row)
            else:  # failures are kept apart and never cached: a re-run asks again
                counts["failed"] += 1
                failures.write({**row, "id": f"{row['id']}@{started}"})

        t0 = time.perf_counter()
        try:
            with open_judges(s, specs) as endpoints:
                asyncio.run(run_judges(endpoints, specs, items, s, done=set(verdicts.ids),
                                       on_row=keep_row, concurrency=concurrency))
        except JudgeSpecError as e:
            raise UserError(str(e)) from None
        names = {x.name for x in specs}
        rows = [r for r in read_verdicts([out_dir / "verdicts.jsonl"]) if r["judge"] in names]
        for sheet in human or []:
            rows += read_review_sheet(sheet)
        report = agreement_report(rows, checks_by_item(files))
        report["study"] = {
            "input": [{"file": str(f), "sha256": file_sha256(f)} for f in files],
            "reports_judged": len(lines), "probes": wanted, "real_trials": real if "real" in wanted else 0,
            "pairs": pairs if "pairwise" in wanted else 0, "seed": seed,
            "judges": [{"name": x.name, "model": x.model, "rubric": x.rubric} for x in specs],
            "human_sheets": [str(h) for h in human or []],
            "prompts_sha256": prompt_hashes(
                None, ("critic", "critic_pairwise")) | {
                f"{x.rubric}.md": prompt_hashes(x.rubric, ())[f"{x.rubric}.md"] for x in specs},
            "calls_this_run": counts, "seconds_this_run": round(time.perf_counter() - t0, 1)}
        write_json_atomic(out_dir / "agreement.json", report)

    table = Table(Column("judge", overflow="fold"), "accept", "κ vs checks", "real acc.",
                  "slot-A rate", "padding Δ", title=f"{len(lines)} reports, {counts['asked']} "
                  f"new verdicts ({counts['failed']} failed)")
    for j in report["judges"]:
        cell = [report["accept_rate"].get(j), report["vs_checks"].get(j, {}).get("kappa"),
                report["real_trials"].get(j, {}).get("accuracy"),
                report["position_bias"].get(j, {}).get("first_slot_rate"),
                report["verbosity_bias"].get(j, {}).get("mean_score_change")]
        table.add_row(j, *("—" if c is None else f"{c:.3g}" for c in cell))
    out.print(table)
    out.print(f"Fleiss κ {report['fleiss_kappa']} · Krippendorff α "
              f"{report['krippendorff_alpha']['accept_nominal']}")
    if counts["failed"]:
        err.print(f"[yellow]{counts['failed']} verdicts could not be parsed: "
                  f"{out_dir / 'failed.jsonl'}[/]")
    out.print(f"verdicts:  {out_dir / 'verdicts.jsonl'}\nagreement: {out_dir / 'agreement.json'}")


def review_command(
    in_file: Annotated[Path, typer.Option("--in", help="reports.jsonl (or a run folder)")],
    out_file: Annotated[Path, typer.Option("--out", help="sheet to fill: .csv or .jsonl")],
    n: Annotated[int | None, typer.Option("--n", min=1, help="a seeded sample of N reports")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Export reports for human review; pass the filled sheet to `judge --human`."""
    from trialwright.app.common import UserError, out, user_errors
    from trialwright.eval.judges.human import export_review_sheet

    with user_errors():
        if not in_file.exists():
            raise UserError(f"--in {in_file}: not found")
        lines, _ = generated_lines(in_file, with_rejected=False)
        written = export_review_sheet(lines, out_file, n, seed)
    out.print(f"{written} reports to review in {out_file}: fill 'accept' (yes/no), optionally "
              "'score' (1-5) and 'reviewer', then run `trialwright judge ... --human "
              f"{out_file}`")
