"""Drafter: the synthetic trial report, constrained to the spec's phase and label and to the
condition/intervention the reasoner chose; the model writes the prose. A revision the critic
aims at the outcome section alone rewrites only that section."""

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
from trialwright.agents.reasoner import chosen_topic
from trialwright.agents.state import ReportState
from trialwright.tools.schema import OutcomeRewrite, SyntheticTrial


def _options(chosen: str, pool: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    return list(dict.fromkeys([chosen, *extra, *pool]))[:8]


async def draft_report(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, evidence, revision = state["spec"], state["evidence"], state.get("revision", 0)
    rationale = state.get("rationale")
    # Re-derived here too: a chat change request can reach the drafter with a changed spec.
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
    return {"draft": value, "draft_error": "; ".join(call.errors[-1:]), "topic": topic,
            **update, **timed("draft", revision, t0)}


async def rewrite_outcome(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    """Only the outcome section, when that is all the critic found wrong: the rest stands."""
    t0 = time.perf_counter()
    spec, draft, revision = state["spec"], state["draft"], state.get("revision", 0)
    assert draft is not None, "an outcome revision needs a report"
    value, update = await ask(
        deps.generator, load_prompt("outcome_rewrite"), OutcomeRewrite, node="revise_outcome",
        seed=call_seed(spec, revision, "revise_outcome"), repairs=deps.settings.parse_retries,
        target=describe_target(spec), measure=draft.primary_outcome.measure,
        time_frame=draft.primary_outcome.time_frame, drugs=", ".join(draft.drugs),
        diseases=", ".join(draft.diseases), outcome=draft.outcome_summary,
        feedback=state.get("feedback", ""))
    call = update["llm_calls"][0]
    revised = draft.model_copy(update={"outcome_summary": value.outcome_summary}) if value else draft
    return {"draft": revised, "draft_error": "; ".join(call.errors[-1:]),
            **update, **timed("revise_outcome", revision, t0)}
