"""The eval card: utility, fidelity, diversity, privacy and judge reliability in one place.

`build_card` computes the quality numbers (eval.quality), reads the classifier's metrics.json and
the judge study's agreement.json when given, draws the figures, and writes `card.md`, a
self-contained `card.html` (figures inlined) and `metrics.json`, stating the data, models, seeds
and package versions behind every number. Each section here is data (`render.Section`); the
templates draw it.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trialwright.eval.quality.diversity import pairwise_cosines
from trialwright.eval.quality.run import Embed, QualityResult, evaluate_quality
from trialwright.eval.records import from_generated, real_records
from trialwright.eval.report import plots
from trialwright.eval.report.render import (
    Card,
    Figure,
    Section,
    Table,
    code,
    fmt,
    write_card,
)
from trialwright.eval.report.utility import classifier_section
from trialwright.eval.synthetic_reports import generated_files, read_records
from trialwright.tools.settings import Settings
from trialwright.tools.trials import load_top
from trialwright.tools.versions import file_sha256, package_versions
from trialwright.tools.writer import write_json_atomic

PACKAGES = ("trialwright", "numpy", "scipy", "scikit-learn", "torch", "transformers",
            "sentence-transformers", "krippendorff", "matplotlib", "jinja2", "langchain-core",
            "langgraph")


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

def fidelity_section(m: dict[str, Any], figures: list[Figure]) -> Section:
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
        "Fidelity: how close to real", key="fidelity",
        paragraphs=[f"A classifier separates synthetic from real embeddings with ROC-AUC "
                    f"{fmt(f['two_sample']['auc'])}: {read_auc(f['two_sample']['auc'])}."],
        tables=[Table(["measure", "value", "detail"], rows, "Embedding distributions"),
                Table(["field", "total variation", "Jensen-Shannon", "real (top)",
                       "synthetic (top)"], shares, "Categorical fields"),
                Table(["field", "real median", "synthetic median", "KS statistic", "Wasserstein"],
                      numeric, "Numeric fields")],
        figures=figures,
        notes=[f"Enrollment: synthetic median {fmt(enrol['median'])} (p10 {fmt(enrol['p10'])}, "
         f"p90 {fmt(enrol['p90'])}); {fields['enrollment']['note']}.",
         "Compared on what the real TOP data holds: phase, label, conditions, interventions and "
         "eligibility criteria, rendered as the store's text for both sets."])


def diversity_section(m: dict[str, Any], figures: list[Figure]) -> Section:
    d = m["diversity"]
    syn, real = d["synthetic"], d["real_sample"]
    keys = ["distinct_1", "distinct_2", "distinct_3", "mean_pairwise_cosine", "near_duplicate_rate"]
    rows = [[k.replace("_", " "), fmt(syn[k]), fmt(real[k])] for k in keys]
    cover = [[name, fmt(d[key]["share_of_real_terms"]), fmt(d[key]["share_of_real_trials"]),
              fmt(d[key]["synthetic_distinct"]), fmt(d[key]["synthetic_terms_not_in_real"])]
             for name, key in (("conditions", "condition_coverage"),
                               ("interventions", "intervention_coverage"))]
    return Section(
        "Diversity", key="diversity",
        paragraphs=[f"Mean cosine between random pairs: synthetic "
                    f"{fmt(syn['mean_pairwise_cosine'])} vs real "
                    f"{fmt(real['mean_pairwise_cosine'])} — synthetic reports are "
                    f"{read_similarity(syn['mean_pairwise_cosine'], real['mean_pairwise_cosine'])}"
                    f"; {fmt(syn['near_duplicate_rate'])} of them have a near duplicate "
                    f"(cosine > 0.95)."],
        tables=[Table(["measure", f"synthetic ({syn['n']})", f"real sample ({real['n']})"], rows),
                Table(["vocabulary", "share of real terms used", "share of real trials touched",
                       "distinct synthetic terms", "synthetic terms not in real"], cover,
                      "Coverage")],
        figures=figures,
        notes=["distinct-n and similarity are measured on an equally sized random real sample, "
               "since both depend on set size."])


def privacy_section(m: dict[str, Any], figures: list[Figure]) -> Section:
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
        "Privacy and memorisation", key="privacy",
        paragraphs=[
            f"{len(p['flagged'])} of {m['counts']['synthetic']} synthetic reports flagged "
            f"(DCR ≤ {p['thresholds']['dcr']}, ≥ {p['thresholds']['copy_rate']:.0%} copied "
            f"{verb['ngram']}-grams, or a named NCT id); {dcr['exact_copies']} exact embedding "
            f"copies; {fmt(dcr['share_closer_than_real_p5'])} are closer to a real trial than "
            f"95% of real trials are to each other; membership-inference AUC {fmt(mia['auc'])}."],
        tables=[
            Table(["measure", "synthetic → real", "real held-out → real (baseline)"], rows),
            Table(["check", "value"], [
                ["reports naming any NCT id", p["nct_ids"]["records_naming_any"]],
                ["reports naming a real NCT id", p["nct_ids"]["records_naming_real"]],
                ["longest verbatim span in any report (words)", verb["max_longest_span_words"]],
                ["membership inference ROC-AUC (0.5 = no signal)", fmt(mia["auc"])],
                ["members / non-members", f"{mia['members']} / {mia['non_members']}"]]),
            *([Table(["report", "why flagged"], flagged, "Flagged reports")] if flagged else [])],
        figures=figures,
        notes=[f"Verbatim copying is checked against all {verb['corpus_trials']} real trials "
               f"(hashed {verb['ngram']}-word windows); the longest span is the longest stretch "
               "whose every window occurs somewhere in the corpus.",
               "Membership inference: real trials the generator saw as evidence vs never-seen "
               "real trials, scored by closeness to the synthetic set; retrieval picks on-topic "
               "trials, so some signal is expected without any copying."])


def judges_section(agreement: dict[str, Any] | None, source: Path | None) -> Section:
    if agreement is None:
        return Section("Judge reliability", key="judges", paragraphs=[[
            "Not run. ", code("trialwright judge --in REPORTS --out DIR --judges ..."),
            " writes DIR/agreement.json; pass it with --agreement."]])
    a = agreement
    rows = [[j, fmt(a["accept_rate"].get(j)), fmt(_get(a, "vs_checks", j, "kappa")),
             fmt(_get(a, "real_trial_parity", j, "accept_gap")),
             fmt(_get(a, "real_trial_parity", j, "same_verdict")),
             fmt(_get(a, "position_bias", j, "first_slot_rate")),
             fmt(_get(a, "position_bias", j, "consistency")),
             fmt(_get(a, "verbosity_bias", j, "mean_score_change")),
             fmt(_get(a, "outcome_bias", j, "gap_success_minus_failure")),
             fmt(_get(a, "self_preference", j, "gap_on_own"))] for j in a["judges"]]
    pairs = [[c["a"], c["b"], c["n"], fmt(c["kappa"]), fmt(c["agreement"])] for c in a["cohen_kappa"]]
    alpha = a["krippendorff_alpha"]
    return Section(
        "Judge reliability", key="judges",
        paragraphs=[f"{len(a['judges'])} judges on {a['items']} reports: Fleiss κ "
                    f"{fmt(a['fleiss_kappa'])}, Krippendorff α {fmt(alpha['accept_nominal'])} "
                    f"(accept/revise), {fmt(alpha['mean_score_interval'])} (mean scores)."],
        tables=[Table(["judge", "accept rate", "κ vs checks", "parity gap (real)", "same verdict (real)",
                       "slot-A rate", "order consistency", "padding Δ score",
                       "accept gap success−failure", "own-model gap"], rows),
                *([Table(["judge A", "judge B", "n", "Cohen κ", "agreement"], pairs, "Pairwise")]
                  if pairs else [])],
        notes=[f"From {source}. Parity on real: real trials each shown claiming success and "
               "claiming failure; the accept gap (success claim minus failure claim) is 0 and the "
               "same-verdict share 1 for a judge whose verdict does not depend on the claimed "
               "outcome (agreement.json keeps outcome-prediction accuracy too, which is not the "
               "critic's job); slot-A rate 0.5 and consistency 1 = no position bias; "
               "padding Δ = score change when content-free sentences are added; accept gap = "
               "accept rate of success reports minus failure reports (0 = no outcome bias). "
               "κ and α are undefined (—) when every verdict is the same; read the raw "
               "agreement then."])


def _numeric_leaves(data: Any, prefix: str = "") -> list[list[Any]]:
    if isinstance(data, dict):
        return [row for k, v in data.items() for row in _numeric_leaves(v, f"{prefix}{k}.")]
    if isinstance(data, int | float) and not isinstance(data, bool):
        return [[prefix.rstrip("."), fmt(float(data))]]
    return []


def utility_section(metrics: dict[str, Any] | None, source: Path | None) -> Section:
    """The classifier's own section (report.utility) when its metrics.json validates, else a
    table of the file's numbers."""
    title = "Utility: outcome classifier"
    if metrics is None:
        return Section(title, key="utility", paragraphs=[
            "Missing: no classifier metrics.json was given (--utility). Train and score the "
            "outcome classifier on real, synthetic and hybrid sets first."])
    try:
        return Section(title, key="utility", paragraphs=[f"From the classifier's {source}."],
                       sections=[classifier_section(metrics)])
    except ValueError:  # another producer's metrics.json: show its numbers
        rows = _numeric_leaves(metrics)
    return Section(title, key="utility", paragraphs=[f"Numbers from {source}."],
                   tables=[Table(["metric", "value"], rows[:80])],
                   notes=([f"{len(rows) - 80} more numbers in metrics.json"]
                          if len(rows) > 80 else []))


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
    return Section("Data, models, seeds and versions", key="provenance",
                   paragraphs=[f"Card built {prov['built']} on {prov['platform']}."],
                   tables=[Table(["role", "file", "records", "sha256 (16)"], data_rows, "Data"),
                           Table(["what", "value"], model_rows, "Models and seeds"),
                           Table(["package", "version"], versions, "Versions")])


# --- provenance ------------------------------------------------------------------------------------

def generation_summary(lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    prov = [x.get("provenance") or {} for x in lines]
    seeds = sorted(p["seed"] for p in prov if "seed" in p)
    return {"records": len(lines), "status": dict(Counter(x.get("status") for x in lines)),
            "generator_models": dict(Counter(p.get("generator_model") for p in prov)),
            "judge_models": sorted({str(p.get("judge_model")) for p in prov}),
            "rubrics": sorted({str(p.get("rubric")) for p in prov}),
            "seeds": f"{seeds[0]}..{seeds[-1]} ({len(seeds)})" if seeds else "—"}


# --- the card ------------------------------------------------------------------------------------

def _figure(name: str, png: bytes) -> Figure:
    return Figure(name, png, f"plots/{name}.png")


def _figures(q: QualityResult, seed: int) -> dict[str, list[Figure]]:
    m, n_uniform = q.metrics, q.real.uniform
    fields = m["fidelity"]["fields"]
    real_sample = q.real_emb[:n_uniform]
    return {
        "fidelity": [
            _figure("embeddings_pca", plots.embedding_scatter(real_sample, q.syn_emb, seed)),
            _figure("phase_shares", plots.share_bars(
                fields["phase"]["real"], fields["phase"]["synthetic"], "Phase")),
            _figure("condition_shares", plots.share_bars(
                fields["conditions"]["real"], fields["conditions"]["synthetic"],
                "Most common conditions"))],
        "diversity": [_figure("pairwise_cosine", plots.overlaid_histograms(
            {"real": pairwise_cosines(real_sample, seed=seed),
             "synthetic": pairwise_cosines(q.syn_emb, seed=seed)},
            "Cosine between random pairs", "cosine"))],
        "privacy": [_figure("dcr", plots.overlaid_histograms(
            {"real held-out → real": q.distances.real_holdout,
             "synthetic → real": q.distances.synthetic},
            "Distance to closest real record", "cosine distance"))],
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
    report_file, *rejected_files = generated_files(synthetic)
    lines, rejected_lines = read_records([report_file]), read_records(rejected_files)
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
    figures = _figures(quality, seed)

    utility, judged = _read_json(utility_metrics), _read_json(agreement)
    provenance = {
        "built": datetime.now(UTC).isoformat(timespec="seconds"), "platform": platform.platform(),
        "data": [{"role": "synthetic (accepted)", "path": str(report_file), "records": len(lines),
                  "sha256": file_sha256(report_file)},
                 *({"role": "synthetic (rejected)", "path": str(f), "records": len(rejected_lines),
                    "sha256": file_sha256(f)} for f in rejected_files if rejected_lines),
                 *({"role": "real", "path": str(f), "records": per_file[Path(f).name],
                    "sha256": file_sha256(f)} for f in real_files),
                 *({"role": role, "path": str(p), "sha256": file_sha256(p)}
                   for role, p in (("utility metrics", utility_metrics),
                                   ("judge agreement", agreement)) if p)],
        "generation": generation_summary(lines + rejected_lines),
        "encoder": encoder_name or "injected embedding function",
        "seed": seed, "max_real": max_real, "ngram": ngram,
        "versions": package_versions(PACKAGES, missing="not installed")}

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
    sections = [utility_section(utility, utility_metrics),
                fidelity_section(m, figures["fidelity"]),
                diversity_section(m, figures["diversity"]),
                privacy_section(m, figures["privacy"]),
                judges_section(judged, agreement),
                provenance_section(provenance)]
    write_card(Card(f"trialwright eval card — {report_file.parent.name or report_file.name}",
                    headline=headline, sections=sections), out)
    metrics = {"card": 1, "provenance": provenance, "utility": utility, **m, "judges": judged}
    write_json_atomic(out / "metrics.json", metrics)
    return metrics
