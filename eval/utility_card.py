"""The eval card's utility section (tables + plots) and a stand-alone card for `trialwright eval`.

`render_utility_section(report)` returns (markdown, html) so a fuller card (fidelity, diversity,
privacy, judges) can embed it. The HTML carries its plots inline (base64 PNG); the markdown links
PNG files written beside it when an `asset_dir` is given.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from trialwright.eval.utility_results import MetricSummary, SettingResult, UtilityReport

TABLE_METRICS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("f1", "F1"),
                 ("accuracy", "Acc"), ("precision", "Prec"), ("recall", "Rec"))
BAR_METRICS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("f1", "F1"), ("accuracy", "Accuracy"))
Table = tuple[list[str], list[list[str]]]
KIND_COLOURS = {"baseline": "#9e9e9e", "real": "#1f77b4", "synthetic": "#d62728",
                "hybrid": "#2ca02c", "reference": "#9467bd"}


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
    return head, rows


def _md_table(table: Table) -> str:
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(table: Table) -> str:
    head, rows = table
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _colours(results: list[SettingResult]) -> list[str]:
    """One colour per setting, the same in every plot: by kind; more synthetic, darker green."""
    import matplotlib.colors as mcolors
    from matplotlib import colormaps

    hybrids = sorted({r.synthetic_ratio or 0.0 for r in results if r.kind == "hybrid"})
    shades = colormaps["Greens"]([0.45 + 0.45 * i / max(1, len(hybrids) - 1)
                                  for i in range(len(hybrids))])
    out = []
    for r in results:
        if r.kind == "hybrid":
            out.append(mcolors.to_hex(shades[hybrids.index(r.synthetic_ratio or 0.0)]))
        else:
            out.append("#ff7f0e" if r.setting == "untuned" else KIND_COLOURS[r.kind])
    return out


def roc_plot(results: list[SettingResult], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for r, colour in zip(results, _colours(results), strict=True):
        style = "--" if r.kind == "baseline" else ":" if r.kind == "reference" else "-"
        ax.plot(r.roc.fpr, r.roc.tpr, style, lw=1.6, color=colour,
                label=f"{r.setting} (AUC {r.metrics['roc_auc'].mean:.3f})")
    ax.plot([0, 1], [0, 1], color="0.8", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title,
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def metric_bars(results: list[SettingResult], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(BAR_METRICS), figsize=(3.1 * len(BAR_METRICS), 3.6),
                             sharey=False)
    names = [r.setting for r in results]
    colours = _colours(results)
    for ax, (metric, label) in zip(axes, BAR_METRICS, strict=True):
        means = np.array([r.metrics[metric].mean for r in results])
        lo = np.array([r.metrics[metric].ci95[0] for r in results])
        hi = np.array([r.metrics[metric].ci95[1] for r in results])
        err = np.clip(np.vstack([means - lo, hi - means]), 0, None)
        ax.bar(range(len(results)), means, yerr=err, capsize=3, color=colours)
        ax.set_xticks(range(len(results)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title + " (bars: mean over seeds; whiskers: bootstrap 95% CI)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _model_line(report: UtilityReport) -> str:
    m = report.model
    how = ("quick mode: frozen encoder embeddings + logistic regression (C by CV)"
           if report.mode == "quick" else "full fine-tune (Hugging Face Trainer)")
    standin = "" if m.is_biobert else " — a stand-in: BioBERT was not available locally"
    return (f"Model: **{m.name}** (`{m.spec}`, {m.model_type}, {m.num_layers} layers, "
            f"hidden {m.hidden_size}){standin}; {how}; max length {report.text.max_length} "
            f"tokens; device {report.device}; seeds {', '.join(map(str, report.seeds))}; "
            f"{report.bootstrap.n} bootstrap draws; threshold {report.threshold}.")


def _intro(report: UtilityReport) -> list[str]:
    t = report.text
    return [
        _model_line(report),
        f"Classifier text, built the same way for real and synthetic trials: "
        f"{', '.join(t.fields)}. Never used: {', '.join(t.excluded_fields)}. Outcome words "
        f"removed: {t.leak_words_removed.get('real', 0)} in real, "
        f"{t.leak_words_removed.get('synthetic', 0)} in synthetic texts.",
        f"Synthetic file: `{report.synthetic_file.file}` — {report.synthetic_file.accepted} "
        f"accepted reports ({report.synthetic_file.skipped_not_accepted} not accepted, skipped).",
        "Cells: mean ± std over seeds [bootstrap 95% CI]; Δ is paired against real-only.",
    ] + ([f"**Smoke run**: at most {report.limit} rows per set."] if report.limit else [])


def _phase_facts(report: UtilityReport, phase: str) -> list[str]:
    data = next(p for p in report.phases if p.split.phase == phase)
    s, syn = data.split, data.synthetic
    capped = f" (before the --limit {report.limit} cap)" if report.limit else ""
    facts = [f"Split: {s.how}.",
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


def _verdict(r: SettingResult) -> str:
    lo, hi = r.delta_vs_real["roc_auc"].ci95 if r.delta_vs_real else (0.0, 0.0)
    return "helps" if lo > 0 else "hurts" if hi < 0 else "no detectable difference"


def render_utility_section(report: UtilityReport | dict[str, Any],
                           asset_dir: Path | None = None,
                           heading_level: int = 2) -> tuple[str, str]:
    """(markdown, html) of the utility section. PNGs go to `asset_dir` for the markdown."""
    report = UtilityReport.model_validate(report)
    h = "#" * heading_level
    md = [f"{h} Utility: does synthetic data help an outcome classifier on real trials?", ""]
    md += [line + "\n" for line in _intro(report)]
    out_html = [f"<h{heading_level}>Utility: does synthetic data help an outcome classifier on "
                f"real trials?</h{heading_level}>"]
    out_html += [f"<p>{_inline_html(line)}</p>" for line in _intro(report)]
    for phase in dict.fromkeys(r.phase for r in report.settings):
        results = [r for r in report.settings if r.phase == phase]
        title = f"Phase {phase}"
        table = settings_table(results)
        notes = [f"{r.setting}: {n}" for r in results for n in r.notes]
        plots = {"roc": roc_plot(results, f"{title}: ROC curves (mean over seeds)"),
                 "bars": metric_bars(results, title)}
        md += [f"{h}# {title}", "", *(f"- {f}" for f in _phase_facts(report, phase)), "",
               _md_table(table), "", *(f"- {n}" for n in notes), ""]
        out_html += [f"<h{heading_level + 1}>{title}</h{heading_level + 1}><ul>",
                     *(f"<li>{_inline_html(f)}</li>" for f in _phase_facts(report, phase)),
                     "</ul>", _html_table(table)]
        out_html += ["<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"
                     ] if notes else []
        for kind, png in plots.items():
            name = f"utility_{kind}_phase_{phase}.png"
            if asset_dir is not None:
                asset_dir.mkdir(parents=True, exist_ok=True)
                (asset_dir / name).write_bytes(png)
                md += [f"![{title} {kind}]({name})", ""]
            out_html.append(f'<img alt="{title} {kind}" src="data:image/png;base64,'
                            f'{base64.b64encode(png).decode()}">')
    return "\n".join(md), "\n".join(out_html)


def _inline_html(markdown_line: str) -> str:
    """**bold** and `code` of our own lines as HTML (nothing else is needed)."""
    parts = html.escape(markdown_line).split("**")
    text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
       "color:#222}table{border-collapse:collapse;font-size:13px;margin:1em 0}"
       "th,td{border:1px solid #ccc;padding:4px 6px;text-align:left}th{background:#f3f3f3}"
       "img{max-width:100%;margin:0.5em 0;display:block}code{background:#f3f3f3;padding:0 3px}")


def write_utility_card(report: UtilityReport, out_dir: Path) -> tuple[Path, Path]:
    """`card.md` (+ PNGs beside it) and a self-contained `card.html` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, body = render_utility_section(report, asset_dir=out_dir)
    header = (f"# trialwright eval card\n\nCreated {report.created_at}; runtime "
              f"{report.runtime_seconds:.0f}s; real data `{report.real_dir}`.\n\n")
    md_path, html_path = out_dir / "card.md", out_dir / "card.html"
    md_path.write_text(header + md + "\n", encoding="utf-8")
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>trialwright eval card</title>"
        f"<style>{CSS}</style></head><body><h1>trialwright eval card</h1>"
        f"<p>Created {html.escape(report.created_at)}; runtime {report.runtime_seconds:.0f}s; "
        f"real data <code>{html.escape(report.real_dir)}</code>.</p>{body}</body></html>",
        encoding="utf-8")
    return md_path, html_path
