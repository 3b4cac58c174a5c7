"""The eval card: utility, fidelity, diversity, privacy and judge reliability in one place.

`build_card` computes the quality numbers (eval.quality), reads the classifier's metrics.json and
the judge study's agreement.json when given, draws the figures, and writes `card.md`, a
self-contained `card.html` (figures inlined) and `metrics.json`, stating the data, models, seeds
and package versions behind every number. Sections are data (`Section`); two small renderers turn
them into Markdown and HTML, so both documents always say the same thing.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import platform
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from trialwright.eval import plots
from trialwright.eval.diversity import pairwise_cosines
from trialwright.eval.quality import Embed, QualityResult, evaluate_quality
from trialwright.eval.records import from_generated, real_records
from trialwright.eval.synthetic_reports import read_generated_lines, reports_file
from trialwright.tools.settings import Settings
from trialwright.tools.trials import load_top
from trialwright.tools.writer import write_json_atomic

PACKAGES = ("trialwright", "numpy", "scipy", "scikit-learn", "torch", "transformers",
            "sentence-transformers", "krippendorff", "matplotlib", "langchain-core", "langgraph")


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]
    title: str = ""


@dataclass
class Section:
    key: str
    title: str
    lead: str
    tables: list[Table] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    embedded: tuple[str, str] = ("", "")  # (markdown, html) another module rendered


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _get(data: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


# --- readings: one plain sentence per number a reader looks for first --------------------------

def read_auc(auc: float | None) -> str:
    if auc is None:
        return "not computed"
    if auc <= 0.6:
        return "hard to tell from real"
    return "partly distinguishable from real" if auc <= 0.8 else "easily told apart from real"


def read_similarity(synthetic: float | None, real: float | None) -> str:
    if synthetic is None or real is None:
        return "not computed"
    if synthetic > real + 0.05:
        return "more alike each other than real trials are (less diverse)"
    return "about as diverse as real trials" if synthetic >= real - 0.05 else "more varied than real"


# --- sections -------------------------------------------------------------------------------------

def fidelity_section(m: dict[str, Any], figures: list[Path]) -> Section:
    f = m["fidelity"]
    fields = f["fields"]
    rows = [["two-sample test ROC-AUC (0.5 = indistinguishable)", fmt(f["two_sample"]["auc"]),
             f"± {fmt(f['two_sample']['auc_std'])}, {f['two_sample']['folds']}-fold CV, "
             f"{f['two_sample']['n_per_class']} per class"],
            ["MMD² (RBF, median bandwidth)", fmt(f["mmd"]["mmd2"]),
             f"permutation p = {fmt(f['mmd']['p_value'])}"],
            ["Fréchet distance of embeddings", fmt(f["frechet_distance"]), ""]]
    shares = [[name, fmt(fields[name]["total_variation"]), fmt(fields[name]["jensen_shannon"]),
               ", ".join(f"{k} {v:.0%}" for k, v in list(fields[name]["real"].items())[:4]),
               ", ".join(f"{k} {v:.0%}" for k, v in list(fields[name]["synthetic"].items())[:4])]
              for name in ("phase", "label", "conditions", "interventions")]
    numeric = [[name.replace("_", " "), fmt(fields[name]["real"]["median"]),
                fmt(fields[name]["synthetic"]["median"]), fmt(fields[name].get("ks_statistic")),
                fmt(fields[name].get("wasserstein"))]
               for name in ("inclusion_criteria", "exclusion_criteria", "criteria_words")]
    enrol = fields["enrollment"]["synthetic"]
    return Section(
        "fidelity", "Fidelity: how close to real",
        f"A classifier separates synthetic from real embeddings with ROC-AUC "
        f"{fmt(f['two_sample']['auc'])}: {read_auc(f['two_sample']['auc'])}.",
        [Table(["measure", "value", "detail"], rows, "Embedding distributions"),
         Table(["field", "total variation", "Jensen-Shannon", "real (top)", "synthetic (top)"],
               shares, "Categorical fields"),
         Table(["field", "real median", "synthetic median", "KS statistic", "Wasserstein"],
               numeric, "Numeric fields")],
        figures,
        [f"Enrollment: synthetic median {fmt(enrol['median'])} (p10 {fmt(enrol['p10'])}, "
         f"p90 {fmt(enrol['p90'])}); {fields['enrollment']['note']}.",
         "Compared on what the real TOP data holds: phase, label, conditions, interventions and "
         "eligibility criteria, rendered as the store's text for both sets."])


def diversity_section(m: dict[str, Any], figures: list[Path]) -> Section:
    d = m["diversity"]
    syn, real = d["synthetic"], d["real_sample"]
    keys = ["distinct_1", "distinct_2", "distinct_3", "mean_pairwise_cosine", "near_duplicate_rate"]
    rows = [[k.replace("_", " "), fmt(syn[k]), fmt(real[k])] for k in keys]
    cover = [[name, fmt(d[key]["share_of_real_terms"]), fmt(d[key]["share_of_real_trials"]),
              fmt(d[key]["synthetic_distinct"]), fmt(d[key]["synthetic_terms_not_in_real"])]
             for name, key in (("conditions", "condition_coverage"),
                               ("interventions", "intervention_coverage"))]
    return Section(
        "diversity", "Diversity",
        f"Mean cosine between random pairs: synthetic {fmt(syn['mean_pairwise_cosine'])} vs real "
        f"{fmt(real['mean_pairwise_cosine'])} — synthetic reports are "
        f"{read_similarity(syn['mean_pairwise_cosine'], real['mean_pairwise_cosine'])}; "
        f"{fmt(syn['near_duplicate_rate'])} of them have a near duplicate (cosine > 0.95).",
        [Table(["measure", f"synthetic ({syn['n']})", f"real sample ({real['n']})"], rows),
         Table(["vocabulary", "share of real terms used", "share of real trials touched",
                "distinct synthetic terms", "synthetic terms not in real"], cover, "Coverage")],
        figures, ["distinct-n and similarity are measured on an equally sized random real sample, "
                  "since both depend on set size."])


def privacy_section(m: dict[str, Any], figures: list[Path]) -> Section:
    p = m["privacy"]
    dcr, verb, mia = p["dcr"], p["verbatim"], p["membership_inference"]
    rows = [["DCR, cosine distance (median)", fmt(dcr["synthetic"]["median"]),
             fmt(dcr["real_holdout_baseline"]["median"])],
            ["DCR 10th percentile", fmt(dcr["synthetic"]["p10"]),
             fmt(dcr["real_holdout_baseline"]["p10"])],
            [f"{verb['ngram']}-gram copy rate (mean)", fmt(verb["synthetic_copy_rate"]["mean"]),
             fmt(verb["real_holdout_copy_rate"]["mean"])],
            ["longest verbatim span, words (p90)", fmt(verb["synthetic_longest_span_words"]["p90"]),
             fmt(verb["real_holdout_longest_span_words"]["p90"])]]
    flagged = [[f["id"], "; ".join(f["reasons"])] for f in p["flagged"][:20]]
    return Section(
        "privacy", "Privacy and memorisation",
        f"{len(p['flagged'])} of {m['counts']['synthetic']} synthetic reports flagged "
        f"(DCR ≤ {p['thresholds']['dcr']}, ≥ {p['thresholds']['copy_rate']:.0%} copied "
        f"{verb['ngram']}-grams, or a named NCT id); {dcr['exact_copies']} exact embedding "
        f"copies; {fmt(dcr['share_closer_than_real_p5'])} are closer to a real trial than 95% of "
        f"real trials are to each other; membership-inference AUC {fmt(mia['auc'])}.",
        [Table(["measure", "synthetic → real", "real held-out → real (baseline)"], rows),
         Table(["check", "value"], [
             ["reports naming any NCT id", p["nct_ids"]["records_naming_any"]],
             ["reports naming a real NCT id", p["nct_ids"]["records_naming_real"]],
             ["longest verbatim span in any report (words)", verb["max_longest_span_words"]],
             ["membership inference ROC-AUC (0.5 = no signal)", fmt(mia["auc"])],
             ["members / non-members", f"{mia['members']} / {mia['non_members']}"]]),
         *([Table(["report", "why flagged"], flagged, "Flagged reports")] if flagged else [])],
        figures,
        [f"Verbatim copying is checked against all {verb['corpus_trials']} real trials (hashed "
         f"{verb['ngram']}-word windows); the longest span is the longest stretch whose every "
         "window occurs somewhere in the corpus.",
         "Membership inference: real trials the generator saw as evidence vs never-seen real "
         "trials, scored by closeness to the synthetic set; retrieval picks on-topic trials, so "
         "some signal is expected without any copying."])


def judges_section(agreement: dict[str, Any] | None, source: Path | None) -> Section:
    if agreement is None:
        return Section("judges", "Judge reliability",
                       "Not run. `trialwright judge --in REPORTS --out DIR --judges ...` writes "
                       "DIR/agreement.json; pass it with --agreement.")
    a = agreement
    rows = [[j, fmt(a["accept_rate"].get(j)), fmt(_get(a, "vs_checks", j, "kappa")),
             fmt(_get(a, "real_trials", j, "accuracy")), fmt(_get(a, "real_trials", j, "ece")),
             fmt(_get(a, "position_bias", j, "first_slot_rate")),
             fmt(_get(a, "position_bias", j, "consistency")),
             fmt(_get(a, "verbosity_bias", j, "mean_score_change")),
             fmt(_get(a, "outcome_bias", j, "gap_success_minus_failure")),
             fmt(_get(a, "self_preference", j, "gap_on_own"))] for j in a["judges"]]
    pairs = [[c["a"], c["b"], c["n"], fmt(c["kappa"]), fmt(c["agreement"])] for c in a["cohen_kappa"]]
    alpha = a["krippendorff_alpha"]
    return Section(
        "judges", "Judge reliability",
        f"{len(a['judges'])} judges on {a['items']} reports: Fleiss κ {fmt(a['fleiss_kappa'])}, "
        f"Krippendorff α {fmt(alpha['accept_nominal'])} (accept/revise), "
        f"{fmt(alpha['mean_score_interval'])} (mean scores).",
        [Table(["judge", "accept rate", "κ vs checks", "accuracy on real", "ECE",
                "slot-A rate", "order consistency", "padding Δ score",
                "accept gap success−failure", "own-model gap"], rows),
         *([Table(["judge A", "judge B", "n", "Cohen κ", "agreement"], pairs, "Pairwise")]
           if pairs else [])],
        notes=[f"From {source}. Accuracy on real: real trials shown with their true or flipped "
               "outcome (0.5 = chance); slot-A rate 0.5 and consistency 1 = no position bias; "
               "padding Δ = score change when content-free sentences are added; accept gap = "
               "accept rate of success reports minus failure reports (0 = no outcome bias). "
               "κ and α are "
               "undefined (—) when every verdict is the same; read the raw agreement then."])


def _numeric_leaves(data: Any, prefix: str = "") -> list[list[Any]]:
    if isinstance(data, dict):
        return [row for k, v in data.items() for row in _numeric_leaves(v, f"{prefix}{k}.")]
    if isinstance(data, int | float) and not isinstance(data, bool):
        return [[prefix.rstrip("."), fmt(float(data))]]
    return []


def utility_section(metrics: dict[str, Any] | None, source: Path | None, out: Path) -> Section:
    """The classifier's own section (eval.utility_card) when its metrics.json validates, else a
    table of the file's numbers."""
    title = "Utility: outcome classifier"
    if metrics is None:
        return Section("utility", title,
                       "Missing: no classifier metrics.json was given (--utility). Train and "
                       "score the outcome classifier on real, synthetic and hybrid sets first.")
    try:
        from trialwright.eval.utility_card import render_utility_section

        embedded = render_utility_section(metrics, asset_dir=out, heading_level=3)
        return Section("utility", title, f"From the classifier's {source}.", embedded=embedded)
    except (ImportError, ValueError):  # another producer's metrics.json: show its numbers
        rows = _numeric_leaves(metrics)
    return Section("utility", title, f"Numbers from {source}.", [Table(["metric", "value"], rows[:80])],
                   notes=[f"{len(rows) - 80} more numbers in metrics.json"] if len(rows) > 80 else [])


def provenance_section(prov: dict[str, Any]) -> Section:
    data_rows = [[d["role"], d["path"], d.get("records", "—"), d["sha256"][:16]]
                 for d in prov["data"]]
    run = prov["generation"]
    model_rows = [["generator model(s)", ", ".join(f"{k} ({v})" for k, v in run["generator_models"].items())],
                  ["judge model(s) in generation", ", ".join(run["judge_models"])],
                  ["rubric(s)", ", ".join(run["rubrics"])],
                  ["generation seeds", run["seeds"]],
                  ["encoder", prov["encoder"]],
                  ["evaluation seed / real sample / n-gram", f"{prov['seed']} / "
                   f"{prov['max_real']} / {prov['ngram']}"]]
    versions = [[k, v] for k, v in prov["versions"].items()]
    return Section("provenance", "Data, models, seeds and versions",
                   f"Card built {prov['built']} on {prov['platform']}.",
                   [Table(["role", "file", "records", "sha256 (16)"], data_rows, "Data"),
                    Table(["what", "value"], model_rows, "Models and seeds"),
                    Table(["package", "version"], versions, "Versions")])


# --- renderers -----------------------------------------------------------------------------------

def _md_table(t: Table) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    head = f"**{t.title}**\n\n" if t.title else ""
    lines = ["| " + " | ".join(map(cell, t.header)) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in t.rows]
    return head + "\n".join(lines)


def render_markdown(title: str, headline: Table, sections: Sequence[Section], out: Path) -> str:
    parts = [f"# {title}", _md_table(headline)]
    for s in sections:
        parts += [f"## {s.title}", s.lead, *(_md_table(t) for t in s.tables),
                  *(f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in s.plots),
                  *(f"> {n}" for n in s.notes), *([s.embedded[0]] if s.embedded[0] else [])]
    return "\n\n".join(parts) + "\n"


def _html_table(t: Table) -> str:
    cap = f"<caption>{html.escape(t.title)}</caption>" if t.title else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in t.rows)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}h1{border-bottom:3px solid #4c72b0}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}caption{text-align:left;
font-weight:600;padding:.3em 0}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f3f5f9}.lead{font-size:1.05em}.note{color:#555;font-size:.9em}
img{max-width:100%}.figs{display:flex;flex-wrap:wrap;gap:1em}
.figs img{max-width:520px;border:1px solid #eee}"""


def render_html(title: str, headline: Table, sections: Sequence[Section]) -> str:
    def img(p: Path) -> str:
        data = base64.b64encode(p.read_bytes()).decode()
        return f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{data}">'

    body = [f"<h1>{html.escape(title)}</h1>", _html_table(headline)]
    for s in sections:
        body += [f'<h2 id="{s.key}">{html.escape(s.title)}</h2>',
                 f'<p class="lead">{html.escape(s.lead)}</p>', *map(_html_table, s.tables)]
        if s.plots:
            body.append('<div class="figs">' + "".join(map(img, s.plots)) + "</div>")
        body += [f'<p class="note">{html.escape(n)}</p>' for n in s.notes]
        body.append(s.embedded[1])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")


# --- provenance ------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def generation_summary(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    prov = [x.get("provenance") or {} for x in lines]
    seeds = sorted(p["seed"] for p in prov if "seed" in p)
    return {"records": len(lines), "status": dict(Counter(x.get("status") for x in lines)),
            "generator_models": dict(Counter(p.get("generator_model") for p in prov)),
            "judge_models": sorted({str(p.get("judge_model")) for p in prov}),
            "rubrics": sorted({str(p.get("rubric")) for p in prov}),
            "seeds": f"{seeds[0]}..{seeds[-1]} ({len(seeds)})" if seeds else "—"}


# --- the card ------------------------------------------------------------------------------------

def _figures(q: QualityResult, out: Path, seed: int) -> dict[str, list[Path]]:
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    m, n_uniform = q.metrics, q.real.uniform
    fields = m["fidelity"]["fields"]
    real_sample = q.real_emb[:n_uniform]
    return {
        "fidelity": [
            plots.embedding_scatter(real_sample, q.syn_emb, plot_dir / "embeddings_pca.png", seed),
            plots.share_bars(fields["phase"]["real"], fields["phase"]["synthetic"],
                             plot_dir / "phase_shares.png", "Phase"),
            plots.share_bars(fields["conditions"]["real"], fields["conditions"]["synthetic"],
                             plot_dir / "condition_shares.png", "Most common conditions")],
        "diversity": [plots.overlaid_histograms(
            {"real": pairwise_cosines(real_sample, seed=seed),
             "synthetic": pairwise_cosines(q.syn_emb, seed=seed)},
            plot_dir / "pairwise_cosine.png", "Cosine between random pairs", "cosine")],
        "privacy": [plots.overlaid_histograms(
            {"real held-out → real": q.distances.real_holdout,
             "synthetic → real": q.distances.synthetic},
            plot_dir / "dcr.png", "Distance to closest real record", "cosine distance")],
    }


def _read_json(path: Path | None) -> dict[str, Any] | None:
    return json.loads(Path(path).read_text()) if path else None


def build_card(synthetic: Path, out: Path, real_files: list[Path] | None = None,
               utility_metrics: Path | None = None, agreement: Path | None = None, *,
               settings: Settings | None = None, embed: Embed | None = None,
               encoder_name: str | None = None, max_real: int | None = 1000, ngram: int = 8,
               seed: int = 0, include_rejected: bool = False) -> dict[str, Any]:
    """Write card.md, card.html and metrics.json into `out`; returns the metrics.

    synthetic: a reports.jsonl or a run folder. real_files: TOP CSVs (default: the settings'
    corpus). embed: texts -> unit-norm rows (default: the product's encoder).
    """
    settings = settings or Settings()
    report_file = reports_file(synthetic)
    rejected = report_file.with_name("rejected.jsonl")
    lines = [line for _, line in read_generated_lines(report_file)]
    rejected_lines = ([line for _, line in read_generated_lines(rejected)]
                      if rejected.is_file() else [])
    real_files = list(real_files or [settings.top_dir / f for f in settings.top_files])
    records = [r for line in lines + (rejected_lines if include_rejected else [])
               if (r := from_generated(line))]
    trials = load_top(real_files)
    real_all = real_records(trials)
    per_file = Counter(name for t in trials for name in t.sources)
    if embed is None:
        from trialwright.tools.encoder import Encoder

        encoder = Encoder(settings)
        embed, encoder_name = encoder.encode, f"{settings.encoder} ({encoder.fingerprint})"
    quality = evaluate_quality(records, real_all, embed, max_real=max_real, ngram=ngram, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(quality, out, seed)

    utility, judged = _read_json(utility_metrics), _read_json(agreement)
    provenance = {
        "built": datetime.now(UTC).isoformat(timespec="seconds"), "platform": platform.platform(),
        "data": [{"role": "synthetic (accepted)", "path": str(report_file), "records": len(lines),
                  "sha256": _sha256(report_file)},
                 *([{"role": "synthetic (rejected)", "path": str(rejected),
                     "records": len(rejected_lines), "sha256": _sha256(rejected)}]
                   if rejected_lines else []),
                 *({"role": "real", "path": str(f), "records": per_file[Path(f).name],
                    "sha256": _sha256(Path(f))} for f in real_files),
                 *({"role": role, "path": str(p), "sha256": _sha256(Path(p))}
                   for role, p in (("utility metrics", utility_metrics),
                                   ("judge agreement", agreement)) if p)],
        "generation": generation_summary(lines + rejected_lines),
        "encoder": encoder_name or "injected embedding function",
        "seed": seed, "max_real": max_real, "ngram": ngram, "versions": package_versions()}

    m = quality.metrics
    headline = Table(["dimension", "headline", "reading"], [
        ["utility", "see section" if utility else "missing", "outcome classifier on real / "
         "synthetic / hybrid" if utility else "no classifier metrics given"],
        ["fidelity", f"two-sample AUC {fmt(m['fidelity']['two_sample']['auc'])}",
         read_auc(m["fidelity"]["two_sample"]["auc"])],
        ["diversity", f"pairwise cosine {fmt(m['diversity']['synthetic']['mean_pairwise_cosine'])}"
         f" (real {fmt(m['diversity']['real_sample']['mean_pairwise_cosine'])})",
         read_similarity(m["diversity"]["synthetic"]["mean_pairwise_cosine"],
                         m["diversity"]["real_sample"]["mean_pairwise_cosine"])],
        ["privacy", f"{len(m['privacy']['flagged'])} flagged of {m['counts']['synthetic']}",
         f"membership-inference AUC {fmt(m['privacy']['membership_inference']['auc'])}"],
        ["judges", f"Fleiss κ {fmt(judged['fleiss_kappa'])}" if judged else "not run",
         f"{len(judged['judges'])} judges" if judged else "run `trialwright judge`"]])
    sections = [utility_section(utility, utility_metrics, out),
                fidelity_section(m, figures["fidelity"]),
                diversity_section(m, figures["diversity"]),
                privacy_section(m, figures["privacy"]),
                judges_section(judged, agreement),
                provenance_section(provenance)]
    title = f"trialwright eval card — {report_file.parent.name or report_file.name}"
    (out / "card.md").write_text(render_markdown(title, headline, sections, out))
    (out / "card.html").write_text(render_html(title, headline, sections))
    metrics = {"card": 1, "provenance": provenance, "utility": utility, **m, "judges": judged}
    write_json_atomic(out / "metrics.json", metrics)
    return metrics
