"""The eval card's utility section (tables + plots), and the stand-alone card of `trialwright eval`.

`classifier_section(report)` is the classifier's section as data: the full card (fidelity,
diversity, privacy, judges) nests it under its own utility heading, `write_utility_card` renders it
alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trialwright.eval.report.plots import metric_bars, roc_plot
from trialwright.eval.report.render import (
    Card,
    Figure,
    Section,
    Table,
    Text,
    bold,
    code,
    write_card,
)
from trialwright.eval.utility.results import MetricSummary, SettingResult, UtilityReport

TABLE_METRICS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("f1", "F1"),
                 ("accuracy", "Acc"), ("precision", "Prec"), ("recall", "Rec"))


def _fmt(s: MetricSummary) -> str:
    std = f" ± {s.std:.3f}" if s.std is not None else ""
    return f"{s.mean:.3f}{std} [{s.ci95[0]:.3f}, {s.ci95[1]:.3f}]"


def _delta(r: SettingResult) -> str:
    if not r.delta_vs_real:
        return "—"
    d = r.delta_vs_real["roc_auc"]
    return f"{d.diff:+.3f} [{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}]"


def settings_table(results: list[SettingResult]) -> Table:
    head = ["setting", "train rows (real + synthetic)",
            *(name for _, name in TABLE_METRICS), "Δ ROC-AUC vs real"]
    rows = [[r.setting, f"{r.n_train_real} + {r.n_train_synthetic}",
             *(_fmt(r.metrics[m]) for m, _ in TABLE_METRICS), _delta(r)] for r in results]
    return Table(head, rows)


def _model_line(report: UtilityReport) -> Text:
    m = report.model
    how = ("quick mode: frozen encoder embeddings + logistic regression (C by CV)"
           if report.mode == "quick" else "full fine-tune (Hugging Face Trainer)")
    standin = "" if m.is_biobert else " — a stand-in: BioBERT was not available locally"
    return ["Model: ", bold(m.name), " (", code(m.spec),
            f", {m.model_type}, {m.num_layers} layers, hidden {m.hidden_size}){standin}; {how}; "
            f"max length {report.text.max_length} tokens; device {report.device}; seeds "
            f"{', '.join(map(str, report.seeds))}; {report.bootstrap.n} bootstrap draws; "
            f"threshold {report.threshold}."]


def _intro(report: UtilityReport) -> list[Text]:
    t, f = report.text, report.synthetic_file
    return [
        _model_line(report),
        f"Classifier text, built the same way for real and synthetic trials: "
        f"{', '.join(t.fields)}. Never used: {', '.join(t.excluded_fields)}. Outcome words "
        f"removed: {t.leak_words_removed.get('real', 0)} in real, "
        f"{t.leak_words_removed.get('synthetic', 0)} in synthetic texts.",
        ["Synthetic file: ", code(f.file), f" — {f.accepted} accepted reports "
         f"({f.skipped_not_accepted} not accepted, skipped)."],
        "Cells: mean ± std over seeds [bootstrap 95% CI]; Δ is paired against real-only.",
    ] + ([[bold("Smoke run"), f": at most {report.limit} rows per set."]] if report.limit else [])


def _verdict(r: SettingResult) -> str:
    lo, hi = r.delta_vs_real["roc_auc"].ci95 if r.delta_vs_real else (0.0, 0.0)
    return "helps" if lo > 0 else "hurts" if hi < 0 else "no detectable difference"


def _phase_facts(report: UtilityReport, phase: str) -> list[Text]:
    data = next(p for p in report.phases if p.split.phase == phase)
    s, syn = data.split, data.synthetic
    capped = f" (before the --limit {report.limit} cap)" if report.limit else ""
    facts: list[Text] = [
        f"Split: {s.how}.",
        f"Real rows{capped}: {s.n_train} train (success rate {s.train_positive_rate:.3f}), "
        f"{s.n_test} test (success rate {s.test_positive_rate:.3f}); test ids dropped from "
        f"training files: {s.dropped_test_ids_from_training}.",
        f"Synthetic: {syn.in_phase} reports in this phase, {syn.dropped_linked_to_test} "
        f"dropped because their anchor/evidence ids are test ids, {syn.usable} usable."]
    facts += [f"Not run: {why}" for why in data.skipped]
    results = [r for r in report.settings if r.phase == phase]
    facts.append("Verdict (ROC-AUC vs real-only, paired bootstrap 95% CI): " + "; ".join(
        f"{r.setting}: {_verdict(r)}" for r in results
        if r.kind in ("synthetic", "hybrid") and r.delta_vs_real) + "."
        if any(r.kind in ("synthetic", "hybrid") for r in results) else
        "Verdict: no synthetic or hybrid setting ran.")
    return facts


def _phase_section(report: UtilityReport, phase: str) -> Section:
    results = [r for r in report.settings if r.phase == phase]
    title = f"Phase {phase}"
    return Section(
        title, facts=_phase_facts(report, phase), tables=[settings_table(results)],
        figures=[Figure(f"{title} roc", roc_plot(results, f"{title}: ROC curves (mean over seeds)"),
                        f"utility_roc_phase_{phase}.png"),
                 Figure(f"{title} bars", metric_bars(results, title),
                        f"utility_bars_phase_{phase}.png")],
        notes=[f"{r.setting}: {n}" for r in results for n in r.notes])


def classifier_section(report: UtilityReport | dict[str, Any]) -> Section:
    """The classifier's section, one subsection per phase; a dict is validated (ValueError)."""
    report = UtilityReport.model_validate(report)
    return Section("Utility: does synthetic data help an outcome classifier on real trials?",
                   paragraphs=_intro(report),
                   sections=[_phase_section(report, phase)
                             for phase in dict.fromkeys(r.phase for r in report.settings)])


def write_utility_card(report: UtilityReport, out_dir: Path) -> tuple[Path, Path]:
    """`card.md` (+ PNGs beside it) and a self-contained `card.html` in `out_dir`."""
    card = Card("trialwright eval card",
                lead=[[f"Created {report.created_at}; runtime {report.runtime_seconds:.0f}s; "
                       "real data ", code(report.real_dir), "."]],
                sections=[classifier_section(report)])
    return write_card(card, out_dir)
