"""Reasoner: a structured rationale — why a trial like this would succeed or fail — citing the
retrieved evidence by id (the Retrieval-Reasoning paper's reasoning step, made checkable)."""

from __future__ import annotations

import time
from typing import Any

from agents.common import AgentDeps, ask, describe_target, feedback_block, load_prompt, render_evidence, timed
from agents.state import ReportState
from tools.schema import Rationale, Spec, rationale_model_for

OUTCOME_VERB = {1: "succeed (meet its primary endpoint)", 0: "fail (miss its primary endpoint or stop early)"}


def topic_line(spec: Spec) -> str:
    parts = [f"Condition: {spec.condition}." if spec.condition else "",
             f"Intervention: {spec.intervention}." if spec.intervention else ""]
    return " ".join(p for p in parts if p) or "Condition and intervention: choose from the evidence."


async def reason_outcome(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, evidence, revision = state["spec"], state["evidence"], state.get("revision", 0)
    schema = rationale_model_for(spec, evidence)
    value, update = await ask(
        deps.generator, load_prompt("reasoner"), schema, node="reason",
        repairs=deps.settings.parse_retries, target=describe_target(spec), topic=topic_line(spec),
        evidence=render_evidence(evidence), feedback=feedback_block(state.get("feedback", "")),
        outcome_verb=OUTCOME_VERB[spec.label])
    call = update["llm_calls"][0]
    # Stored as the plain class: a per-spec model class could not be restored from a checkpoint.
    rationale = Rationale.model_validate(value.model_dump()) if value is not None else None
    return {"rationale": rationale, "rationale_error": "; ".join(call.errors[-1:]),
            **update, **timed("reason", revision, t0)}
