"""Reasoner: a structured rationale — why a trial like this would succeed or fail — citing the
retrieved evidence by id (the Retrieval-Reasoning paper's reasoning step, made checkable)."""

from __future__ import annotations

import time
from typing import Any

from trialwright.agents.common import (
    AgentDeps,
    ask,
    call_seed,
    describe_target,
    feedback_block,
    load_prompt,
    render_evidence,
    timed,
)
from trialwright.agents.state import ReportState
from trialwright.tools.schema import Evidence, Rationale, Spec

OUTCOME_VERB = {1: "succeed (meet its primary endpoint)", 0: "fail (miss its primary endpoint or stop early)"}


def topic_line(spec: Spec) -> str:
    parts = [f"Condition: {spec.condition}." if spec.condition else "",
             f"Intervention: {spec.intervention}." if spec.intervention else ""]
    return " ".join(p for p in parts if p) or "Condition and intervention: choose from the evidence."


def allowed_choices(spec: Spec, evidence: list[Evidence], limit: int = 12) -> dict[str, list[str]]:
    """Cited ids must be retrieved ids; the topic is the spec's, or one the evidence offers."""
    def options(given: str | None, pool: list[str]) -> list[str]:
        return [given] if given else list(dict.fromkeys(x for x in pool if x))[:limit] or ["unspecified"]

    return {"evidence_ids": [e.nctid for e in evidence] or ["none"],
            "condition": options(spec.condition, [d for e in evidence for d in e.diseases]),
            "intervention": options(spec.intervention, [d for e in evidence for d in e.drugs])}


def chosen_topic(spec: Spec, rationale: Rationale | None, evidence: list[Evidence]) -> dict[str, str]:
    """The condition/intervention this report is about: spec first, then the rationale, then evidence."""
    first = evidence[0] if evidence else None
    condition = spec.condition or (rationale.condition if rationale else None) or (
        first.diseases[0] if first and first.diseases else "unspecified")
    intervention = spec.intervention or (rationale.intervention if rationale else None) or (
        first.drugs[0] if first and first.drugs else "unspecified")
    return {"condition": condition, "intervention": intervention}


async def reason_outcome(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, evidence, revision = state["spec"], state["evidence"], state.get("revision", 0)
    value, update = await ask(
        deps.generator, load_prompt("reasoner"), Rationale, node="reason",
        seed=call_seed(spec, revision, "reason"),
        allowed=allowed_choices(spec, evidence),
        repairs=deps.settings.parse_retries, target=describe_target(spec), topic=topic_line(spec),
        evidence=render_evidence(evidence), feedback=feedback_block(state.get("feedback", "")),
        outcome_verb=OUTCOME_VERB[spec.label])
    call = update["llm_calls"][0]
    return {"rationale": value, "rationale_error": "; ".join(call.errors[-1:]),
            "topic": chosen_topic(spec, value, evidence),
            **update, **timed("reason", revision, t0)}
