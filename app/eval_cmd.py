"""`trialwright eval`: score an outcome classifier on real, synthetic and hybrid training sets.

Register with `app.command("eval")(eval_command)`. Errors the user can fix (a missing file, a bad
JSONL line, a model that is not available offline) are one line on stderr and exit code 2.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from trialwright.app.common import err as _err
from trialwright.app.common import fail as _fail
from trialwright.app.common import out as _out

PHASE_CHOICES = {"i": ["I"], "1": ["I"], "ii": ["II"], "2": ["II"], "iii": ["III"], "3": ["III"],
                 "all": ["I", "II", "III"]}
CPU_TRAIN_SAMPLES_PER_S = 0.9  # MiniLM at 512 tokens on 2 cores (bench/results/finetune.json)

def _parse_ratios(ratios: str) -> list[float]:
    try:
        values = [float(r) for r in ratios.split(",") if r.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        raise _fail(f"--ratios {ratios!r}: expected positive numbers, e.g. 0.25,0.5,1")
    return values


def _parse_phases(phase: str) -> list[str]:
    phases = PHASE_CHOICES.get(phase.strip().lower())
    if phases is None:
        raise _fail(f"--phase {phase!r}: expected I, II, III or all")
    return phases


def write_predictions(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["phase", "setting", "seed", "id", "label", "prob"])
        writer.writeheader()
        writer.writerows(rows)


def _summary_table(report) -> Table:
    table = Table("phase", "setting", "train real+syn", "ROC-AUC [95% CI]", "PR-AUC", "F1",
                  "Δ ROC-AUC vs real", title=f"outcome classifier: {report.model.name} "
                  f"({report.mode}), seeds {report.seeds}")
    for r in report.settings:
        auc, d = r.metrics["roc_auc"], (r.delta_vs_real or {}).get("roc_auc")
        table.add_row(r.phase, r.setting, f"{r.n_train_real}+{r.n_train_synthetic}",
                      f"{auc.mean:.3f} [{auc.ci95[0]:.3f}, {auc.ci95[1]:.3f}]",
                      f"{r.metrics['pr_auc'].mean:.3f}", f"{r.metrics['f1'].mean:.3f}",
                      f"{d.diff:+.3f} [{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}]" if d else "—")
    return table


def _warn_cpu_finetune(quick: bool, limit: int | None) -> None:
    import torch

    if quick or torch.cuda.is_available():
        return
    hours = 1200 * 5 / CPU_TRAIN_SAMPLES_PER_S / 3600
    _err.print(f"[yellow]warning:[/] no GPU: MiniLM fine-tunes at about "
               f"{CPU_TRAIN_SAMPLES_PER_S:g} samples/s at 512 tokens on 2 CPU cores, so one "
               f"setting x one seed on ~1,200 trials x 5 epochs takes ~{hours:.0f} h (BERT-base "
               f"~5x longer){' before the --limit cap' if limit else ''}. Use --quick for "
               "minutes, or --limit for a smoke run.", highlight=False)


def eval_command(
    synthetic: Annotated[Path, typer.Option(
        "--synthetic", help="reports.jsonl written by `trialwright generate`")],
    real: Annotated[Path | None, typer.Option(
        "--real", help="TOP data folder (default: the configured data_dir/top)")] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="writes metrics.json, predictions.csv, card.md, card.html")
    ] = Path("runs/eval"),
    quick: Annotated[bool, typer.Option(
        "--quick", help="frozen encoder + logistic regression (CPU minutes) instead of a full "
                        "fine-tune")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", help="local folder, 'package:<module>', or a hub name already in the local "
                        "cache (e.g. dmis-lab/biobert-base-cased-v1.2); default: the packaged "
                        "all-MiniLM-L6-v2")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="training seeds per setting")] = 3,
    phase: Annotated[str, typer.Option("--phase", help="TOP phase: I, II, III or all")] = "all",
    limit: Annotated[int | None, typer.Option(
        "--limit", min=10, help="smoke runs: at most this many rows per training/test set")
    ] = None,
    ratios: Annotated[str, typer.Option(
        "--ratios", help="synthetic:real row ratios of the hybrid settings, comma-separated")
    ] = "0.25,0.5,1",
) -> None:
    """Fine-tune and score an outcome classifier on real, synthetic and hybrid trials."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # evaluation never downloads a model
    from trialwright.eval.report.utility import write_utility_card
    from trialwright.eval.synthetic_reports import EvalInputError
    from trialwright.eval.utility.run import UtilityConfig, run_utility_eval
    from trialwright.tools.encoder import EncoderError
    from trialwright.tools.settings import load_settings
    from trialwright.tools.trials import DataError
    from trialwright.tools.writer import write_json_atomic

    phases, hybrid_ratios = _parse_phases(phase), _parse_ratios(ratios)
    try:
        settings = load_settings()
        config = UtilityConfig(mode="quick" if quick else "finetune", model=model,
                               seeds=list(range(seeds)), phases=phases, limit=limit,
                               hybrid_ratios=hybrid_ratios)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"invalid setting '{'.'.join(map(str, first['loc']))}': {first['msg']}"
                    ) from None
    _warn_cpu_finetune(quick, limit)
    try:
        report, predictions = run_utility_eval(
            config, real or settings.top_dir, synthetic, settings=settings,
            work_dir=out / ".work", log=lambda msg: _err.print(f"[dim]{msg}[/]", highlight=False))
    except (EvalInputError, DataError, EncoderError) as exc:
        raise _fail(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", report.model_dump(mode="json"))
    write_predictions(predictions, out / "predictions.csv")
    md, html_path = write_utility_card(report, out)
    _out.print(_summary_table(report))
    _out.print(f"metrics: {out / 'metrics.json'}\ncard:    {html_path} (+ {md.name})")
