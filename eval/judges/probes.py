"""Critic probes with ground truth, on real registry records (tools/ctgov.py):

- parity: each real trial shown once claiming success and once claiming failure, each with an
  outcome text consistent with its claim. A fair critic gives both the same verdict: accept gap,
  share of trials with the same verdict.
- defects: one planted defect per otherwise real record (eval/judges/defects.py); rejection
  rate per kind. The base records pass every deterministic check, so a rejection is the defect's.
- real: real registry entries as they are (claiming a consistent outcome): the reference for
  realism, so a critic that rejects them is too strict for the records it is meant to imitate.

`critic="after"` is the product's critic (`agents.critic.critique_report`); `critic="before"` is
the previous one, kept for side-by-side measurement: the checks it had, then the unblinded 1-5
rubric judge that saw the requested outcome, the reasons slot and the whole record.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.stats import binomtest
from trialwright.agents.common import (
    AgentDeps,
    describe_target,
    load_prompt,
    render_evidence,
)
from trialwright.agents.critic import (
    RATIONALE_CHECKS,
    critique_report,
    judge_decision,
    rubric_text,
)
from trialwright.eval.judges.defects import DEFECTS, plant
from trialwright.eval.judges.studies import judge_messages
from trialwright.eval.utility.metrics import bootstrap_indices
from trialwright.tools.checks import CheckInput, run_checks
from trialwright.tools.ctgov import RealRecord
from trialwright.tools.llm import call_structured
from trialwright.tools.schema import Evidence, JudgeOutput, Spec, SyntheticTrial

Critic = Literal["before", "after"]
#: The checks the previous critic ran (before design coherence, results placement and size bands).
BEFORE_CHECKS = frozenset({"schema_valid", "label_matches", "phase_consistent",
                           "condition_consistent", "intervention_consistent",
                           "eligibility_wellformed", "no_nct_id", "no_verbatim_copy",
                           "not_copied_from_corpus"})


@dataclass
class ProbeItem:
    probe: Literal["parity", "defect", "real"]
    item: str  # the real trial's NCT id
    variant: str  # parity: "claims_1" / "claims_0"; defect: its kind; real: "as_is"
    spec: Spec
    record: SyntheticTrial
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.probe}|{self.item}|{self.variant}"


def _evidence(donor: RealRecord) -> Evidence:
    t = donor.trial
    return Evidence(nctid=donor.nctid, score=1.0, phase=t.phase, label=t.label, diseases=t.diseases,
                    drugs=t.drugs, text=f"{t.title}. {t.brief_summary}\n{t.criteria}")


def topic(trial: SyntheticTrial) -> dict[str, str]:
    """The condition and intervention a real record is about: the listed ones its title or
    summary names (registries also list broad category terms), else the first listed."""
    text = f"{trial.title} {trial.brief_summary}".lower()

    def pick(items: list[str]) -> str:
        return next((i for i in items if i.lower() in text), items[0])

    return {"condition": pick(trial.diseases), "intervention": pick(trial.drugs)}


def _item(probe: Any, rec: RealRecord, variant: str, record: SyntheticTrial,
          donor: RealRecord) -> ProbeItem:
    chosen = topic(rec.trial)
    spec = Spec(spec_id=f"{probe}-{rec.nctid}-{variant}", phase=record.phase, label=record.label,
                condition=chosen["condition"], intervention=chosen["intervention"],
                seed=zlib.crc32(f"{rec.nctid}{variant}".encode()) % 2**31)
    return ProbeItem(probe, rec.nctid, variant, spec, record, [_evidence(donor)])


def clean_records(records: Sequence[RealRecord]) -> list[RealRecord]:
    """Records every deterministic check passes as they are (so a probe's rejection is not the
    record's own registry defect); the fewest derived fields first."""
    keep = []
    for rec in records:
        x = CheckInput(spec=Spec(spec_id="x", phase=rec.trial.phase, label=rec.trial.label),
                       evidence=[], rationale=None, draft=rec.trial, chosen=topic(rec.trial))
        if all(c.passed for c in run_checks(x) if c.name not in RATIONALE_CHECKS):
            keep.append(rec)
    return sorted(keep, key=lambda r: (len(r.derived), r.nctid))


def parity_items(records: Sequence[RealRecord], n: int) -> list[ProbeItem]:
    items = []
    for i, rec in enumerate(records[:n]):
        donor = records[(i + 1) % len(records)]
        for claim in (1, 0):
            items.append(_item("parity", rec, f"claims_{claim}", rec.claiming(claim).trial, donor))
    return items


def defect_items(records: Sequence[RealRecord], per_kind: int,
                 kinds: Sequence[str] = tuple(DEFECTS)) -> list[ProbeItem]:
    """`per_kind` records per defect kind, rotating through the records so kinds get different
    bases; the copied paragraph comes from the evidence the critic is shown (the donor)."""
    items = []
    for k, kind in enumerate(kinds):
        for j in range(per_kind):
            i = (k * per_kind + j) % len(records)
            rec, donor = records[i], records[(i + 1) % len(records)]
            base = rec.claiming(rec.top_label if rec.top_label is not None else 1).trial
            planted = plant(base, kind, seed=rec.nctid, donor=donor.trial.brief_summary)
            items.append(_item("defect", rec, kind, planted, donor))
    return items


def real_items(records: Sequence[RealRecord], n: int) -> list[ProbeItem]:
    items = []
    for i, rec in enumerate(records[:n]):
        claim = rec.top_label if rec.top_label is not None else 1
        items.append(_item("real", rec, "as_is", rec.claiming(claim).trial,
                           records[(i + 1) % len(records)]))
    return items


async def _before(item: ProbeItem, deps: AgentDeps) -> dict[str, Any]:
    """The previous critic: its checks, then the unblinded 1-5 rubric judge."""
    x = CheckInput(spec=item.spec, evidence=item.evidence, rationale=None, draft=item.record,
                   chosen={"condition": item.spec.condition or "", "intervention": item.spec.intervention or ""},
                   copy_ngram=deps.settings.copy_ngram, copy_max_overlap=deps.settings.copy_max_overlap,
                   copy_max_span=10_000)  # the previous critic had no span limit
    failed = [c.name for c in run_checks(x) if c.name in BEFORE_CHECKS and not c.passed]
    if failed:
        return {"stage": "checks", "accepted": False, "failed_checks": failed, "llm_calls": []}
    messages = judge_messages(load_prompt("critic"), {
        "rubric": rubric_text("critic_rubric"), "target": describe_target(item.spec),
        "reasons": "- (none)", "evidence": render_evidence(item.evidence, 400),
        "report": item.record.model_dump_json(indent=1)})
    value, call = await call_structured(deps.judge, messages, JudgeOutput, node="judge",
                                        repairs=deps.settings.parse_retries, seed=item.spec.seed)
    if value is None:
        return {"stage": "error", "accepted": False, "failed_checks": [], "llm_calls": [call]}
    score, accepted = judge_decision(value, deps.settings.judge_threshold)
    return {"stage": "accepted" if accepted else "judge", "accepted": accepted, "failed_checks": [],
            "score": score, "llm_calls": [call]}


async def run_probe(item: ProbeItem, deps: AgentDeps, critic: Critic) -> dict[str, Any]:
    """One verdict row: what the critic decided, where it stopped, and what it cost."""
    if critic == "after":
        res = await critique_report(item.spec, item.record, deps, evidence=item.evidence)
        extra = {"failed_checks": res["failed_checks"],
                 "outcome": res["outcome"].reading if res["outcome"] else None,
                 "score": res["verdict"].score if res["verdict"] else None,
                 "vetoed": res["verdict"].vetoed if res["verdict"] else None,
                 "calibration": res["verdict"].calibration if res["verdict"] else None}
    else:
        res = await _before(item, deps)
        extra = {"failed_checks": res["failed_checks"], "score": res.get("score")}
    calls = res["llm_calls"]
    return {"key": item.key, "critic": critic, "probe": item.probe, "item": item.item,
            "variant": item.variant, "claimed_label": item.spec.label, "accepted": res["accepted"],
            "stage": res["stage"], **extra, "judge_model": deps.judge.model_id,
            "llm_calls": len(calls), "input_tokens": sum(c.input_tokens for c in calls),
            "output_tokens": sum(c.output_tokens for c in calls),
            "llm_seconds": round(sum(c.latency_s for c in calls), 2)}


def wilson(k: int, n: int) -> list[float] | None:
    """95 % Wilson interval of k successes in n (None for n = 0)."""
    if n == 0:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 3), round(float(ci.high), 3)]


def _rate(rows: Sequence[dict[str, Any]], accepted: bool = True) -> dict[str, Any]:
    k = sum(r["accepted"] == accepted for r in rows)
    return {"rate": round(k / len(rows), 3) if rows else None, "k": k, "n": len(rows),
            "ci95": wilson(k, len(rows))}


def summarize(rows: Sequence[dict[str, Any]], critic: Critic, seed: int = 0) -> dict[str, Any]:
    """parity / defects / real_records figures for one critic, with n and 95 % intervals."""
    mine = [r for r in rows if r["critic"] == critic]
    out: dict[str, Any] = {}
    par = [r for r in mine if r["probe"] == "parity"]
    if par:
        by_item: dict[str, dict[str, bool]] = {}
        for r in par:
            by_item.setdefault(r["item"], {})[r["variant"]] = r["accepted"]
        pairs = [v for v in by_item.values() if len(v) == 2]
        s = np.array([v["claims_1"] for v in pairs], float)
        f = np.array([v["claims_0"] for v in pairs], float)
        boot = ((s - f)[bootstrap_indices(len(pairs), 2000, seed)].mean(axis=1).tolist()
                if pairs else [])  # paired: resample trials, keep each trial's two verdicts
        out["parity"] = {
            "n": len(pairs), "accept_success_claim": round(float(s.mean()), 3) if pairs else None,
            "accept_failure_claim": round(float(f.mean()), 3) if pairs else None,
            "accept_gap": round(float((s - f).mean()), 3) if pairs else None,
            "accept_gap_ci95": [round(float(np.quantile(boot, q)), 3) for q in (0.025, 0.975)]
            if boot else None,
            "same_verdict": round(float((s == f).mean()), 3) if pairs else None}
    dfx = [r for r in mine if r["probe"] == "defect"]
    if dfx:
        kinds = sorted({r["variant"] for r in dfx})
        out["defects"] = {"rejection_by_kind": {k: _rate([r for r in dfx if r["variant"] == k], False)["rate"]
                                                for k in kinds},
                          "by_kind": {k: {**_rate([r for r in dfx if r["variant"] == k], False),
                                          "stages": _stages([r for r in dfx if r["variant"] == k])}
                                      for k in kinds}}
    real = [r for r in mine if r["probe"] == "real"]
    if real:
        out["real_records"] = {"accept_rate": _rate(real)["rate"], **_rate(real),
                               "stages": _stages(real)}
    return out


def _stages(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["stage"]] = counts.get(r["stage"], 0) + 1
    return counts
