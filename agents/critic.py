"""Critic: deterministic consistency checks first (cheap), then an LLM judge with an explicit
rubric; `decide` turns their findings into accept / revise (and whom) / reject."""

from __future__ import annotations

import time
from statistics import mean
from typing import Any, Literal

from trialwright.agents.common import (
    PROMPTS,
    AgentDeps,
    ask,
    call_seed,
    describe_target,
    load_prompt,
    render_evidence,
    timed,
)
from trialwright.agents.drafter import chosen_topic
from trialwright.agents.state import ReportState, Round
from trialwright.tools.checks import CheckInput, run_checks
from trialwright.tools.schema import JudgeOutput, JudgeVerdict

Next = Literal["reason", "draft", "accept", "reject"]


def rubric_text(name: str) -> str:
    return (PROMPTS / f"{name}.md").read_text().strip()


async def check_consistency(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, evidence = state["spec"], state["evidence"]
    s = deps.settings
    results = run_checks(CheckInput(
        spec=spec, evidence=evidence, rationale=state.get("rationale"), draft=state.get("draft"),
        draft_error=state.get("draft_error", ""), rationale_error=state.get("rationale_error", ""),
        copy_ngram=s.copy_ngram, copy_max_overlap=s.copy_max_overlap,
        chosen=chosen_topic(spec, state.get("rationale"), evidence), corpus=deps.privacy))
    return {"checks": results, "verdict": None, **timed("check", state.get("revision", 0), t0)}


def judge_decision(out: JudgeOutput, threshold: float) -> tuple[float, bool]:
    scores = out.scores.model_dump().values()
    avg = round(mean(scores), 3)
    return avg, out.verdict == "accept" and avg >= threshold and min(scores) >= 2


async def judge_report(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, draft, rationale = state["spec"], state["draft"], state.get("rationale")
    revision = state.get("revision", 0)
    assert draft is not None, "the judge only sees reports that passed the checks"
    reasons = "\n".join(f"- {r.claim}" for r in rationale.reasons) if rationale else "- (none)"
    value, update = await ask(
        deps.judge, load_prompt("critic"), JudgeOutput, node="judge",
        seed=call_seed(spec, revision, "judge"),
        repairs=deps.settings.parse_retries, rubric=rubric_text(deps.rubric),
        target=describe_target(spec), reasons=reasons,
        evidence=render_evidence(state["evidence"], 400),
        report=draft.model_dump_json(indent=1))
    verdict = None
    if value is not None:
        avg, accepted = judge_decision(value, deps.settings.judge_threshold)
        verdict = JudgeVerdict(**value.model_dump(), judge_model=deps.judge.model_id,
                               rubric=deps.rubric, mean_score=avg, accepted=accepted)
    return {"verdict": verdict, **update, **timed("judge", revision, t0)}


def decide(state: ReportState, max_revisions: int) -> tuple[Next, dict[str, Any]]:
    """Accept, send back to the reasoner or drafter with the findings, or reject when spent."""
    failed = [c for c in state.get("checks", []) if not c.passed]
    verdict = state.get("verdict")
    revision = state.get("revision", 0)
    record = {"rounds": [Round(revision=revision, failed_checks=failed, verdict=verdict)]}
    if not failed and verdict is not None and verdict.accepted:
        return "accept", {**record, "status": "accepted", "reject_reasons": []}
    findings = [f"- {c.name}: {c.message}" for c in failed]
    if not failed and verdict is None:
        findings.append("- judge: no valid verdict (the judge's answer could not be parsed)")
    elif not failed and verdict is not None:
        findings.append(f"- judge (mean {verdict.mean_score}): {verdict.feedback or verdict.reasons}")
    if revision >= max_revisions:
        return "reject", {**record, "status": "rejected", "reject_reasons": findings}
    target: Next = "reason" if any(c.target == "reasoner" for c in failed) else "draft"
    return target, {**record, "revision": revision + 1, "feedback": "\n".join(findings)}
