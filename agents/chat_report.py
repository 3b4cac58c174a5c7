"""What the chat shows and exports: the evidence with why each trial is similar, the critic's
findings, the draft as Markdown, the approval, and the JSON + Markdown export.

Written by code from the typed state (no free-text model reply), and passed through the output
guard, so the assistant's words cannot carry its instructions or secrets.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from trialwright.agents.chat_guard import OutputGuard
from trialwright.agents.chat_state import ChatState
from trialwright.agents.common import AgentDeps
from trialwright.agents.provenance import build_record
from trialwright.tools.schema import (
    LABEL_WORD,
    CheckResult,
    Evidence,
    OutcomeReading,
    QualityVerdict,
    Rationale,
    Spec,
    SyntheticTrial,
)


def _overlap(term: str | None, names: list[str]) -> list[str]:
    if not term:
        return []
    t = term.lower()
    return [n for n in names if n and (t in n.lower() or n.lower() in t)]


def why_similar(spec: Spec, e: Evidence, rationale: Rationale | None = None) -> str:
    """Why this real trial was retrieved, in plain words (from the filters and shared terms)."""
    parts = ["same phase" if e.phase == spec.phase else f"{e.phase} (too few {spec.phase} trials)",
             f"same outcome ({LABEL_WORD.get(e.label, e.label)})" if e.label == spec.label
             else f"outcome {LABEL_WORD.get(e.label, e.label)}"]
    shared = _overlap(spec.condition, e.diseases) + _overlap(spec.intervention, e.drugs)
    if shared:
        parts.append("shares " + ", ".join(dict.fromkeys(shared)))
    parts.append(f"text similarity {e.score:.2f}")
    cited = [r.claim for r in (rationale.reasons if rationale else []) if e.nctid in r.evidence_ids]
    if cited:
        parts.append(f"cited for: {cited[0]}")
    return "; ".join(parts)


def evidence_rows(state: ChatState) -> list[dict[str, Any]]:
    spec, rationale = state.get("spec"), state.get("rationale")
    if spec is None:
        return []
    return [{"nctid": e.nctid, "score": e.score, "phase": e.phase,
             "outcome": LABEL_WORD.get(e.label, str(e.label)), "conditions": e.diseases,
             "interventions": e.drugs, "why": why_similar(spec, e, rationale),
             "snippet": e.text[:280]} for e in state.get("evidence", [])]


def critic_view(checks: list[CheckResult], verdict: QualityVerdict | None,
                outcome: OutcomeReading | None = None) -> dict[str, Any]:
    failed = [c for c in checks if not c.passed]
    return {
        "checks": [{"name": c.name, "status": c.status, "passed": c.passed, "message": c.message}
                   for c in checks],
        "checks_passed": sum(c.status == "passed" for c in checks),
        "checks_skipped": sum(c.status == "skipped" for c in checks),
        "checks_total": len(checks), "checks_failed": len(failed),
        "outcome": None if outcome is None else outcome.model_dump(),
        "verdict": None if verdict is None else {
            "accepted": verdict.accepted, "score": verdict.score, "threshold": verdict.threshold,
            "answers": verdict.answers, "vetoed": verdict.vetoed, "feedback": verdict.feedback,
            "calibration": verdict.calibration},
    }


def critic_summary(checks: list[CheckResult], verdict: QualityVerdict | None,
                   outcome: OutcomeReading | None = None) -> list[str]:
    failed = [c for c in checks if not c.passed]
    skipped = [c.name for c in checks if c.status == "skipped"]
    lines = [f"Checks: {sum(c.status == 'passed' for c in checks)}/{len(checks)} passed"
             + (f", {len(skipped)} skipped ({', '.join(skipped)})." if skipped else ".")]
    lines += [f"  - {c.name}: {c.message}" for c in failed]
    if outcome is not None:
        lines.append(f"Outcome text reads as: {outcome.reading} ({outcome.method}"
                     f"{'' if outcome.agrees else ', does not match the requested outcome'}).")
    if verdict is not None:
        noes = [q for q, yes in verdict.answers.items() if not yes]
        lines.append(f"Judge (blinded checklist): {verdict.score:.0%} yes, needs "
                     f"{verdict.threshold:.0%}{', accepted' if verdict.accepted else ', not accepted'}.")
        if not verdict.accepted:
            lines.append(f"  - answered no: {', '.join(noes) or 'none'}. {verdict.feedback}".rstrip())
    elif not failed and checks and (outcome is None or outcome.agrees):
        lines.append("Judge: no valid verdict.")
    else:
        lines.append("Judge: not asked (an earlier stage found a problem first).")
    return lines


def draft_markdown(draft: SyntheticTrial, spec: Spec | None = None,
                   rationale: Rationale | None = None, evidence: list[Evidence] | None = None,
                   critic: list[str] | None = None) -> str:
    """The draft as a readable Markdown record."""
    d = draft
    ages = f"{d.minimum_age_years}–{d.maximum_age_years if d.maximum_age_years is not None else 'no limit'} years"
    out = [f"# {d.title}", "",
           f"**Phase:** {d.phase} · **Expected outcome:** {LABEL_WORD[d.label]} · "
           f"**Enrollment:** {d.enrollment} · **Ages:** {ages}", "",
           f"**Conditions:** {', '.join(d.diseases)}  ", f"**Interventions:** {', '.join(d.drugs)}",
           "", "## Brief summary", d.brief_summary, "", "## Design",
           f"{d.design.allocation}, {d.design.intervention_model}, masking: {d.design.masking}, "
           f"purpose: {d.design.primary_purpose}", "", "## Arms"]
    out += [f"- **{a.label}** ({a.type}): {a.description}" for a in d.arms]
    out += ["", "## Primary outcome", f"{d.primary_outcome.measure} (time frame: "
            f"{d.primary_outcome.time_frame})", "", "## Eligibility", "### Inclusion criteria"]
    out += [f"- {c}" for c in d.inclusion_criteria]
    out += ["", "### Exclusion criteria"] + [f"- {c}" for c in d.exclusion_criteria]
    out += ["", "## Outcome", d.outcome_summary]
    if rationale is not None:
        out += ["", "## Why it ends this way"]
        out += [f"- {r.claim} ({', '.join(r.evidence_ids)})" for r in rationale.reasons]
    if evidence:
        out += ["", "## Similar real trials (evidence)"]
        out += [f"- {row}" for row in (f"{e.nctid}: {why_similar(spec, e, rationale)}"
                                        if spec else e.nctid for e in evidence)]
    if critic:
        out += ["", "## Critic"] + [line.replace("  - ", "- ") for line in critic]
    out += ["", "_Synthetic record generated by trialwright; not a real trial._"]
    return "\n".join(out) + "\n"


def present_draft(state: ChatState, deps: AgentDeps) -> dict[str, Any]:
    """The assistant's message after a draft: evidence ids and why, the critic's findings."""
    guard = OutputGuard.for_settings(deps.settings)
    draft, spec = state.get("draft"), state["spec"]
    lines = []
    if draft is None:
        lines.append("I could not produce a valid draft this time "
                     f"({state.get('draft_error') or 'the model answer was unusable'}).")
    else:
        lines.append(f"Draft ready: \"{draft.title}\" ({draft.phase}, expected outcome "
                     f"{LABEL_WORD[draft.label]}).")
    lines.append("Similar real trials:")
    lines += [f"  - {e.nctid}: {why_similar(spec, e, state.get('rationale'))}"
              for e in state.get("evidence", [])] or ["  - none found"]
    lines += critic_summary(state.get("checks", []), state.get("verdict"), state.get("outcome"))
    lines.append("Reply with changes, or approve or export the draft.")
    return {"messages": [AIMessage(content=guard.redact("\n".join(lines)))]}


def approve_draft(state: ChatState, deps: AgentDeps) -> dict[str, Any]:
    return {"approved": True, "messages": [AIMessage(content=(
        "Approved. Export it as JSON and Markdown, or keep asking for changes."))]}


def export_bundle(state: ChatState, deps: AgentDeps) -> dict[str, Any]:
    """{"json": the report with provenance, "markdown": the readable record}, guarded."""
    guard = OutputGuard.for_settings(deps.settings)
    record = build_record(state, deps)
    record["status"] = "approved" if state.get("approved") else "draft"
    record["reject_reasons"] = []
    record["human"] = {"approved": bool(state.get("approved")),
                       "change_requests": list(state.get("change_requests", []))}
    draft = state.get("draft")
    markdown = "" if draft is None else draft_markdown(
        draft, state.get("spec"), state.get("rationale"), state.get("evidence", []),
        critic_summary(state.get("checks", []), state.get("verdict"), state.get("outcome")))
    return guard.clean({"json": record, "markdown": markdown})


def export_report(state: ChatState, deps: AgentDeps) -> dict[str, Any]:
    bundle = export_bundle(state, deps)
    status = "approved" if state.get("approved") else "not yet approved"
    return {"exported": bundle, "messages": [AIMessage(content=(
        f"Exported the report ({status}) as JSON and Markdown.")) ]}
