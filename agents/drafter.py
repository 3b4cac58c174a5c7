"""Drafter: the synthetic trial report, constrained to the spec's phase and label and to the
condition/intervention the reasoner chose; the model writes the prose."""

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
from trialwright.tools.schema import Evidence, Rationale, Spec, SyntheticTrial


def chosen_topic(spec: Spec, rationale: Rationale | None, evidence: list[Evidence]) -> dict[str, str]:
    """The condition/intervention this report is about: spec first, then the rationale, then evidence."""
    first = evidence[0] if evidence else None
    condition = spec.condition or (rationale.condition if rationale else None) or (
        first.diseases[0] if first and first.diseases else "unspecified")
    intervention = spec.intervention or (rationale.intervention if rationale else None) or (
        first.drugs[0] if first and first.drugs else "unspecified")
    return {"condition": condition, "intervention": intervention}


def _options(chosen: str, pool: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    return list(dict.fromkeys([chosen, *extra, *pool]))[:8]


async def draft_report(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, evidence, revision = state["spec"], state["evidence"], state.get("revision", 0)
    rationale = state.get("rationale")
    topic = chosen_topic(spec, rationale, evidence)
    allowed = {"phase": [spec.phase], "label": [spec.label],
               "diseases": _options(topic["condition"], [d for e in evidence for d in e.diseases]),
               "drugs": _options(topic["intervention"], [d for e in evidence for d in e.drugs],
                                 ("placebo",))}
    reasons = "\n".join(f"- {r.claim}" for r in rationale.reasons) if rationale else "- (none)"
    value, update = await ask(
        deps.generator, load_prompt("drafter"), SyntheticTrial, node="draft", allowed=allowed,
        seed=call_seed(spec, revision, "draft"),
        repairs=deps.settings.parse_retries, target=describe_target(spec), reasons=reasons,
        evidence=render_evidence(evidence, 450), feedback=feedback_block(state.get("feedback", "")),
        **topic)
    call = update["llm_calls"][0]
    return {"draft": value, "draft_error": "; ".join(call.errors[-1:]),
            **update, **timed("draft", revision, t0)}
