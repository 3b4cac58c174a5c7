"""Critic: deterministic checks first (cheap), then the label-blind outcome reader, then the
blinded quality judge; `review_report` turns their findings into the next step.

Acceptance needs all three: every check passed (or was skipped, and says so), the outcome text
reads as the requested outcome to a reader not told it, and the blinded checklist judge passes
the record under its (calibrated) rule. A reader or judge that gives no valid answer is asked
again, never a reason to redraft; one that never answers ends the spec as an infrastructure
failure, which `generate --retry-errors` runs again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from statistics import mean
from typing import Any, Literal

from trialwright.agents.common import PROMPTS, AgentDeps, timed
from trialwright.agents.state import ReportState, Round
from trialwright.tools.checks import CheckInput, run_checks
from trialwright.tools.schema import (
    CheckResult,
    Evidence,
    JudgeOutput,
    Spec,
    SyntheticTrial,
)

Next = Literal["reason", "draft", "revise_outcome", "read_outcome", "judge", "accept", "reject"]


async def check_consistency(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, evidence = state["spec"], state["evidence"]
    s = deps.settings
    results = run_checks(CheckInput(
        spec=spec, evidence=evidence, rationale=state.get("rationale"), draft=state.get("draft"),
        draft_error=state.get("draft_error", ""), rationale_error=state.get("rationale_error", ""),
        copy_ngram=s.copy_ngram, copy_max_overlap=s.copy_max_overlap, copy_max_span=s.copy_max_span,
        chosen=state.get("topic") or {}, corpus=deps.privacy, ranges=deps.ranges))
    return {"checks": results, "outcome": None, "verdict": None,
            **timed("check", state.get("revision", 0), t0)}


def review_report(state: ReportState, max_revisions: int, critic_retries: int
                  ) -> tuple[Next, dict[str, Any]]:
    """Accept; re-ask a reader/judge that did not answer; send the findings back to whoever
    fixes them (reasoner, drafter, or only the outcome section); or reject when spent."""
    failed = [c for c in state.get("checks", []) if not c.passed]
    outcome, verdict = state.get("outcome"), state.get("verdict")
    revision = state.get("revision", 0)
    record = {"rounds": [Round(revision=revision, failed_checks=failed, outcome=outcome,
                               verdict=verdict)]}
    if not failed:
        stage: Next | None = ("read_outcome" if outcome is None
                              else "judge" if outcome.agrees and verdict is None else None)
        if stage is not None:  # a stage that ran but gave no valid answer
            if state.get("critic_failures", 0) <= critic_retries:
                return stage, record
            who = "outcome reader" if stage == "read_outcome" else "quality judge"
            return "reject", {**record, "status": "rejected", "reject_reasons": [
                f"error: the {who} gave no valid answer in {critic_retries + 1} tries"]}
        if outcome.agrees and verdict is not None and verdict.accepted:
            return "accept", {**record, "status": "accepted", "reject_reasons": []}
    findings = [f"- {c.name}: {c.message}" for c in failed]
    if not failed and not outcome.agrees:
        findings.append(f"- outcome: the outcome text reads as '{outcome.reading}' to a reader who "
                        f"was not told the outcome; it must read as {' or '.join(outcome.expected)}")
    elif not failed and verdict is not None:
        noes = [q for q, yes in verdict.answers.items() if not yes]
        findings.append(f"- quality judge (score {verdict.score:.2f}, needs {verdict.threshold:.2f}"
                        f"{', veto: ' + ', '.join(verdict.vetoed) if verdict.vetoed else ''}): "
                        f"answered no to {', '.join(noes) or 'none'}. {verdict.feedback}".rstrip())
    if revision >= max_revisions:
        return "reject", {**record, "status": "rejected", "reject_reasons": findings}
    targets = {c.target for c in failed} or {"outcome" if not outcome.agrees else "drafter"}
    nxt: Next = ("reason" if "reasoner" in targets
                 else "revise_outcome" if targets == {"outcome"} else "draft")
    return nxt, {**record, "revision": revision + 1, "feedback": "\n".join(findings),
                 "critic_failures": 0}


# The 1-5 rubric judge of earlier versions: kept for judge studies (`trialwright judge`, which
# compares rubrics and judges); generation uses the blinded checklist judge.
def rubric_text(name: str) -> str:
    return (PROMPTS / f"{name}.md").read_text().strip()


def judge_decision(out: JudgeOutput, threshold: float) -> tuple[float, bool]:
    scores = out.scores.model_dump().values()
    avg = round(mean(scores), 3)
    return avg, out.verdict == "accept" and avg >= threshold and min(scores) >= 2


#: Checks of the generation loop's own rationale: not applicable to a finished external record.
RATIONALE_CHECKS = frozenset({"rationale_valid", "rationale_cites_evidence"})


async def critique_report(spec: Spec, draft: SyntheticTrial, deps: AgentDeps, *,
                          evidence: Sequence[Evidence] = ()) -> dict[str, Any]:
    """The critic's verdict on one finished record (a real trial, a planted defect, a report
    from elsewhere): the same checks, outcome reader and blinded judge as the loop, with the same
    re-asks, and no revision. `stage` says where it stopped: checks, outcome, judge, error or
    accepted. Rationale checks are recorded as skipped: an external record has no rationale."""
    from trialwright.agents.outcome_reader import read_outcome
    from trialwright.agents.quality_judge import judge_quality

    state: dict[str, Any] = {"spec": spec, "evidence": list(evidence), "rationale": None,
                             "draft": draft, "revision": 0, "critic_failures": 0, "llm_calls": [],
                             "topic": {"condition": spec.condition or draft.diseases[0],
                                       "intervention": spec.intervention or draft.drugs[0]}}
    checks = [c if c.name not in RATIONALE_CHECKS else
              CheckResult.skip(c.name, "an external record has no rationale")
              for c in (await check_consistency(state, deps))["checks"]]
    result: dict[str, Any] = {"checks": checks, "outcome": None, "verdict": None,
                              "failed_checks": [c.name for c in checks if not c.passed]}
    if result["failed_checks"]:
        return {**result, "stage": "checks", "accepted": False, "llm_calls": []}
    for stage, node in (("outcome", read_outcome), ("judge", judge_quality)):
        key = "outcome" if stage == "outcome" else "verdict"
        for _ in range(deps.settings.critic_retries + 1):
            update = await node(state, deps)
            state["llm_calls"] += update.get("llm_calls", [])
            state["critic_failures"] = update.get("critic_failures", state["critic_failures"])
            if update[key] is not None:
                break
        result[key] = value = update[key]
        if value is None:
            return {**result, "stage": "error", "accepted": False, "llm_calls": state["llm_calls"]}
        if not (value.agrees if stage == "outcome" else value.accepted):
            return {**result, "stage": stage, "accepted": False, "llm_calls": state["llm_calls"]}
    return {**result, "stage": "accepted", "accepted": True, "llm_calls": state["llm_calls"]}
