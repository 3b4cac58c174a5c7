"""Judge reliability from verdict tables: agreement, parity on real trials, bias probes.

Reads the verdict rows `trialwright judge` writes (`verdicts.jsonl`, one JSON per line) and the
rows human reviewers return (`eval.judges.human`); never calls a model. A row:

    {"id": "<judge>|<probe>|<item>|<variant>", "judge": "model@rubric", "model", "rubric",
     "probe": "plain" | "verbosity" | "real" | "pairwise", "item", "variant",
     "accept": bool | null, "mean_score": float | null, "choice": "A" | "B" | null,
     "preferred": item id | null, "generator_model": str | null,
     "truth": {"claim_true": bool} for probe "real", "prompt": {...}, "output": {...}}

probe "plain": a generated report judged as the critic would; "verbosity": the same report padded
with content-free sentences; "real": a real trial with its true or flipped outcome, presented
like a synthetic report; "pairwise": two reports, shown in both orders (variant "ab" / "ba").
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
from scipy import stats
from sklearn.metrics import brier_score_loss, cohen_kappa_score, roc_auc_score
from trialwright.eval.synthetic_reports import read_records, with_report
from trialwright.tools.writer import read_jsonl

Row = dict[str, Any]


def _num(value: float | None, digits: int = 4) -> float | None:
    """JSON-safe rounding: nan (an undefined statistic) becomes None."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def read_verdicts(paths: Iterable[Path]) -> list[Row]:
    return [row for p in paths for row in read_jsonl(Path(p))]


@dataclass
class VerdictTable:
    items: list[str]
    judges: list[str]
    values: np.ndarray  # items x judges, nan where a judge gave no verdict


def verdict_table(rows: Sequence[Row], probe: str = "plain", field: str = "accept") -> VerdictTable:
    """One value per (item, judge) for a probe: `accept` as 1/0, or `mean_score`."""
    picked = [r for r in rows if r.get("probe") == probe]
    items = sorted({r["item"] for r in picked})
    judges = sorted({r["judge"] for r in picked})
    values = np.full((len(items), len(judges)), np.nan)
    at_item, at_judge = {x: i for i, x in enumerate(items)}, {j: i for i, j in enumerate(judges)}
    for r in picked:
        if r.get(field) is not None:
            values[at_item[r["item"]], at_judge[r["judge"]]] = float(r[field])
    return VerdictTable(items, judges, values)


def cohen_pairs(table: VerdictTable) -> list[dict[str, Any]]:
    """Cohen's kappa and raw agreement for every pair of judges, on items both judged."""
    out = []
    for a, b in itertools.combinations(range(len(table.judges)), 2):
        both = ~np.isnan(table.values[:, a]) & ~np.isnan(table.values[:, b])
        x, y = table.values[both, a], table.values[both, b]
        kappa = cohen_kappa_score(x, y) if both.sum() and len(set(x) | set(y)) > 1 else np.nan
        out.append({"a": table.judges[a], "b": table.judges[b], "n": int(both.sum()),
                    "kappa": _num(kappa), "agreement": _num((x == y).mean()) if len(x) else None})
    return out


def fleiss_kappa(table: VerdictTable) -> float | None:
    """Fleiss' kappa over items every judge rated (written out: statsmodels is not a dependency)."""
    full = table.values[~np.isnan(table.values).any(axis=1)]
    raters = full.shape[1]
    if raters < 2 or not len(full):
        return None
    cats = np.unique(full)
    counts = np.stack([(full == c).sum(axis=1) for c in cats], axis=1)
    observed = ((counts ** 2).sum(axis=1) - raters) / (raters * (raters - 1))
    expected = ((counts.sum(axis=0) / counts.sum()) ** 2).sum()
    return _num((observed.mean() - expected) / (1 - expected)) if expected < 1 else None


def krippendorff_alpha(table: VerdictTable, level: str = "nominal") -> float | None:
    """Krippendorff's alpha (missing verdicts allowed); None when undefined."""
    data = table.values.T  # krippendorff wants raters x units
    shared = (np.isfinite(data).sum(axis=0) >= 2).any()  # a unit two raters both judged
    if not shared or len(np.unique(data[np.isfinite(data)])) < 2:
        return None
    return _num(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def checks_by_item(generated: Iterable[Path]) -> dict[str, bool]:
    """Report id -> whether its deterministic checks (last round) all passed."""
    out = {}
    for line in with_report(read_records(generated)):
        if checks := (line.get("provenance") or {}).get("checks"):
            out[str(line["id"])] = all(c["passed"] for c in checks)
    return out


def agreement_with_checks(table: VerdictTable, checks: dict[str, bool]) -> dict[str, Any]:
    """Per judge: does accept / revise follow the deterministic checks' pass / fail?"""
    out = {}
    for j, judge in enumerate(table.judges):
        pairs = [(checks[item], v) for item, v in zip(table.items, table.values[:, j], strict=True)
                 if item in checks and not np.isnan(v)]
        if not pairs:
            continue
        truth, said = np.array([float(t) for t, _ in pairs]), np.array([v for _, v in pairs])
        both_classes = len(set(truth) | set(said)) > 1
        out[judge] = {"n": len(pairs), "agreement": _num((truth == said).mean()),
                      "kappa": _num(cohen_kappa_score(truth, said)) if both_classes else None,
                      "accepts_failed_checks": int(((truth == 0) & (said == 1)).sum()),
                      "rejects_passed_checks": int(((truth == 1) & (said == 0)).sum())}
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Sum over equal-width bins of |accuracy - confidence| weighted by the bin's share."""
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gaps = [abs(correct[which == b].mean() - confidence[which == b].mean()) * (which == b).mean()
            for b in range(bins) if (which == b).any()]
    return float(sum(gaps))


def real_trial_accuracy(rows: Sequence[Row]) -> dict[str, Any]:
    """Per judge, on real trials shown with their true or flipped outcome.

    Correct = accepts a true claim or rejects a flipped one. Confidence that the claim is true is
    the mean rubric score mapped 1..5 -> 0..1; its calibration is read against the truth.
    """
    by_judge: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.get("probe") == "real" and r.get("accept") is not None:
            by_judge[r["judge"]].append(r)
    out = {}
    for judge, rs in sorted(by_judge.items()):
        truth = np.array([bool(r["truth"]["claim_true"]) for r in rs])
        said = np.array([bool(r["accept"]) for r in rs])
        conf = np.array([(r["mean_score"] - 1) / 4 for r in rs if r.get("mean_score") is not None])
        entry: dict[str, Any] = {
            "n": len(rs), "accuracy": _num((truth == said).mean()),
            "accepts_true_claims": _num(said[truth].mean()) if truth.any() else None,
            "rejects_flipped_claims": _num((~said[~truth]).mean()) if (~truth).any() else None}
        if len(conf) == len(rs):
            entry |= {"mean_confidence": _num(conf.mean()),
                      "brier": _num(brier_score_loss(truth, conf)),
                      "ece": _num(expected_calibration_error(conf, truth.astype(float))),
                      "score_auc": _num(roc_auc_score(truth, conf)) if len(set(truth)) > 1 else None}
        out[judge] = entry
    return out


def real_trial_parity(rows: Sequence[Row]) -> dict[str, Any]:
    """Per judge, on real trials each shown claiming success and claiming failure (with an
    outcome text matching the claim): does the verdict depend on the claimed outcome? A fair
    critic's gap is 0 and its same-verdict share 1. (Whether a real trial succeeded cannot be
    read from its registry text — that is the classifier's task, not the critic's.)"""
    by_judge: dict[str, dict[str, dict[int, Row]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r.get("probe") == "real" and r.get("accept") is not None:
            by_judge[r["judge"]][r["truth"]["nctid"]][int(r["truth"]["claimed_label"])] = r
    out = {}
    for judge, trials in sorted(by_judge.items()):
        pairs = [(t[1], t[0]) for t in trials.values() if 0 in t and 1 in t]
        if not pairs:
            continue
        s = np.array([bool(a["accept"]) for a, _ in pairs], float)
        f = np.array([bool(b["accept"]) for _, b in pairs], float)
        scored = [(a["mean_score"], b["mean_score"]) for a, b in pairs
                  if a.get("mean_score") is not None and b.get("mean_score") is not None]
        out[judge] = {"n": len(pairs), "accept_success_claim": _num(s.mean()),
                      "accept_failure_claim": _num(f.mean()), "accept_gap": _num((s - f).mean()),
                      "same_verdict": _num((s == f).mean()),
                      "score_gap": _num(float(np.mean([a - b for a, b in scored]))) if scored else None}
    return out


def outcome_bias(rows: Sequence[Row]) -> dict[str, Any]:
    """Per judge, accept rate of generated reports by the outcome they were asked to describe.

    A judge that accepts successes and rejects failures of similar quality skews the accepted
    label mix; read with `real_trials` (does it also reject real failed trials?).
    """
    by: dict[str, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        label = (r.get("truth") or {}).get("requested_label")
        if r.get("probe") == "plain" and r.get("accept") is not None and label is not None:
            by[r["judge"]][int(label)].append(bool(r["accept"]))
    out = {}
    for judge, labels in sorted(by.items()):
        rate = {str(k): _num(np.mean(v)) for k, v in sorted(labels.items())}
        out[judge] = {"accept_rate_by_label": rate, "n_by_label": {str(k): len(v) for k, v in
                                                                   sorted(labels.items())},
                      "gap_success_minus_failure": (_num(rate["1"] - rate["0"])
                                                    if {"0", "1"} <= rate.keys() else None)}
    return out


def position_bias(rows: Sequence[Row]) -> dict[str, Any]:
    """Per judge, pairwise mode: how often slot A wins, and whether swapping flips the choice.

    An unbiased judge picks the same report in both orders, so slot A wins half the time.
    """
    pairs: dict[tuple[str, str], dict[str, Row]] = defaultdict(dict)
    for r in rows:
        if r.get("probe") == "pairwise" and r.get("choice") in ("A", "B"):
            pairs[(r["judge"], r["item"])][r["variant"]] = r
    out = {}
    for judge in sorted({j for j, _ in pairs}):
        answered = [v for (j, _), v in pairs.items() if j == judge]
        choices = [r["choice"] for v in answered for r in v.values()]
        complete = [v for v in answered if {"ab", "ba"} <= v.keys()]
        consistent = [v["ab"]["preferred"] == v["ba"]["preferred"] for v in complete]
        first = sum(c == "A" for c in choices)
        out[judge] = {
            "answers": len(choices), "first_slot_rate": _num(first / len(choices)),
            "first_slot_p_value": _num(stats.binomtest(first, len(choices), 0.5).pvalue),
            "pairs_both_orders": len(complete),
            "consistency": _num(np.mean(consistent)) if consistent else None}
    return out


def _paired(rows: Sequence[Row], probe: str) -> dict[str, list[tuple[Row, Row]]]:
    """Per judge, (plain, probe) rows of the same item."""
    plain = {(r["judge"], r["item"]): r for r in rows if r.get("probe") == "plain"}
    out: dict[str, list[tuple[Row, Row]]] = defaultdict(list)
    for r in rows:
        base = plain.get((r["judge"], r["item"]))
        if r.get("probe") == probe and base is not None:
            out[r["judge"]].append((base, r))
    return out


def verbosity_bias(rows: Sequence[Row]) -> dict[str, Any]:
    """Per judge: score and accept-rate change when the same report is padded with filler."""
    out = {}
    for judge, pairs in sorted(_paired(rows, "verbosity").items()):
        scored = [(a["mean_score"], b["mean_score"]) for a, b in pairs
                  if a.get("mean_score") is not None and b.get("mean_score") is not None]
        diffs = np.array([b - a for a, b in scored])
        accepts = [(bool(a["accept"]), bool(b["accept"])) for a, b in pairs
                   if a.get("accept") is not None and b.get("accept") is not None]
        p = stats.wilcoxon(diffs).pvalue if len(diffs) and diffs.any() else None
        out[judge] = {"n": len(pairs),
                      "mean_score_change": _num(diffs.mean()) if len(diffs) else None,
                      "accept_rate_plain": _num(np.mean([a for a, _ in accepts])) if accepts else None,
                      "accept_rate_padded": _num(np.mean([b for _, b in accepts])) if accepts else None,
                      "wilcoxon_p_value": _num(p)}
    return out


def self_preference(rows: Sequence[Row]) -> dict[str, Any]:
    """Per judge: how much higher it scores reports from its own model than the other judges do.

    The gap (judge's mean score minus the other judges' mean on the same reports) is compared
    between reports its own model generated and reports other models generated, when there are any.
    """
    table = verdict_table(rows, "plain", "mean_score")
    generator = {r["item"]: r["generator_model"] for r in rows
                 if r.get("probe") == "plain" and r.get("generator_model")}
    model_of = {r["judge"]: r.get("model") for r in rows}
    out = {}
    for j, judge in enumerate(table.judges):
        others = np.delete(table.values, j, axis=1)
        if not others.shape[1]:
            continue
        judged = np.isfinite(others).sum(axis=1)
        other_mean = np.where(judged > 0, np.nansum(others, axis=1) / np.maximum(judged, 1), np.nan)
        gap = table.values[:, j] - other_mean
        own = np.array([generator.get(i) == model_of[judge] for i in table.items])
        ok = ~np.isnan(gap)
        if not ok.any():
            continue
        entry = {"own_reports": int((own & ok).sum()), "other_reports": int((~own & ok).sum()),
                 "gap_on_own": _num(gap[own & ok].mean()) if (own & ok).any() else None,
                 "gap_on_other": _num(gap[~own & ok].mean()) if (~own & ok).any() else None}
        if entry["gap_on_own"] is not None and entry["gap_on_other"] is not None:
            entry["self_preference"] = _num(entry["gap_on_own"] - entry["gap_on_other"])
        out[judge] = entry
    return out


def agreement_report(rows: Sequence[Row], checks: dict[str, bool] | None = None) -> dict[str, Any]:
    """Everything `agreement.json` holds, from verdict rows (LLM judges and humans alike)."""
    accept = verdict_table(rows, "plain", "accept")
    scores = verdict_table(rows, "plain", "mean_score")
    return {
        "judges": accept.judges, "items": len(accept.items),
        "accept_rate": {j: _num(np.nanmean(accept.values[:, i]))
                        for i, j in enumerate(accept.judges)
                        if np.isfinite(accept.values[:, i]).any()},
        "missing_verdicts": {j: int(np.isnan(accept.values[:, i]).sum())
                             for i, j in enumerate(accept.judges)},
        "cohen_kappa": cohen_pairs(accept),
        "fleiss_kappa": fleiss_kappa(accept),
        "krippendorff_alpha": {"accept_nominal": krippendorff_alpha(accept, "nominal"),
                               "mean_score_interval": krippendorff_alpha(scores, "interval")},
        "vs_checks": agreement_with_checks(accept, checks or {}),
        "real_trial_parity": real_trial_parity(rows),
        "real_trials": real_trial_accuracy(rows),
        "outcome_bias": outcome_bias(rows),
        "position_bias": position_bias(rows),
        "verbosity_bias": verbosity_bias(rows),
        "self_preference": self_preference(rows),
    }
