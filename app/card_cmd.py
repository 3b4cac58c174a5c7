"""`trialwright card`: the eval card of a generation run.

Register in app/cli.py:  app.command("card")(card_command)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer


def card_command(
    in_file: Annotated[Path, typer.Option("--in", help="reports.jsonl (or a run folder)")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for card.html, card.md, metrics.json")],
    real: Annotated[list[Path] | None, typer.Option(help="real TOP CSV(s); default: the "
                                                    "configured corpus")] = None,
    utility: Annotated[Path | None, typer.Option(help="the classifier's metrics.json")] = None,
    agreement: Annotated[Path | None, typer.Option(help="agreement.json of `trialwright judge`")] = None,
    max_real: Annotated[int, typer.Option(min=10, help="real trials embedded (uniform sample, plus "
                                          "every trial the generator saw); text checks use all")] = 1000,
    ngram: Annotated[int, typer.Option(min=4, help="words per n-gram for verbatim copying")] = 8,
    embedder: Annotated[Literal["encoder", "bag-of-words"], typer.Option(
        help="'encoder' (the configured sentence encoder) or 'bag-of-words' (no model, fast)")] = "encoder",
    with_rejected: Annotated[bool, typer.Option(help="include rejected reports")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    data: Annotated[Path | None, typer.Option("--data", help="data folder holding top/")] = None,
) -> None:
    """Utility, fidelity, diversity, privacy and judge reliability in one eval card."""
    from trialwright.app.common import UserError, out, settings_for, user_errors
    from trialwright.eval.quality.run import bag_of_words_embedder
    from trialwright.eval.report.card import build_card

    s = settings_for(data_dir=data)
    with user_errors():
        for name, path in (("--in", in_file), ("--utility", utility), ("--agreement", agreement),
                           *(("--real", r) for r in real or [])):
            if path is not None and not path.exists():
                raise UserError(f"{name} {path}: not found")
        fake = embedder == "bag-of-words"
        try:
            metrics = build_card(in_file, out_dir, real, utility, agreement, settings=s,
                                 embed=bag_of_words_embedder() if fake else None,
                                 encoder_name="bag-of-words (hashing, no model)" if fake else None,
                                 max_real=max_real, ngram=ngram, seed=seed,
                                 include_rejected=with_rejected)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None
    f, d, p = metrics["fidelity"], metrics["diversity"], metrics["privacy"]
    out.print(f"two-sample AUC {f['two_sample']['auc']} · pairwise cosine "
              f"{d['synthetic']['mean_pairwise_cosine']} (real {d['real_sample']['mean_pairwise_cosine']})"
              f" · flagged {len(p['flagged'])}/{metrics['counts']['synthetic']} · "
              f"membership AUC {p['membership_inference']['auc']}")
    out.print(f"card: {out_dir / 'card.html'} (+ card.md, metrics.json)")
