"""Turn a finished report state into the record we write: report + provenance, never lost."""

from __future__ import annotations

from typing import Any

from trialwright.agents.common import AgentDeps, prompt_hashes
from trialwright.agents.state import ReportState


def build_record(state: ReportState, deps: AgentDeps, error: str | None = None) -> dict[str, Any]:
    spec = state["spec"]
    draft = state.get("draft")
    calls = state.get("llm_calls", [])
    report = None
    if draft is not None:
        report = {**draft.model_dump(), "criteria": draft.criteria}
    status = state.get("status", "rejected")
    if error or status not in ("accepted", "rejected"):
        status = "rejected"
    reasons = list(state.get("reject_reasons", []))
    if error:
        reasons.append(f"error: {error}")
    return {
        "id": spec.spec_id,
        "status": status,
        "label": spec.label,
        "phase": spec.phase,
        "report": report,
        "rationale": state["rationale"].model_dump() if state.get("rationale") else None,
        "reject_reasons": reasons if status == "rejected" else [],
        "provenance": {
            "spec": spec.model_dump(),
            "seed": spec.seed,
            "generator_model": deps.generator.model_id,
            "judge_model": deps.judge.model_id,
            "checklist": deps.rubric,
            "calibration": deps.calibration.id if deps.calibration else None,
            "size_ranges": deps.ranges.source if deps.ranges else None,
            "outcome_reading": o.model_dump() if (o := state.get("outcome")) else None,
            "prompts_sha256": prompt_hashes(deps.rubric),
            "evidence": [{"nctid": e.nctid, "score": e.score} for e in state.get("evidence", [])],
            "checks": [c.model_dump() for c in state.get("checks", [])],
            "rounds": [r.model_dump() for r in state.get("rounds", [])],
            "revisions": state.get("revision", 0),
            "tokens": {"input": sum(c.input_tokens for c in calls),
                       "output": sum(c.output_tokens for c in calls)},
            "llm_calls": [c.model_dump() for c in calls],
            "timings": [t.model_dump() for t in state.get("timings", [])],
        },
    }
