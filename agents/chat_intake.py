"""Chat intake: one message from the person -> what they want, as typed fields, and where the
conversation goes next (draft a new trial, revise the draft, approve, export, or just answer).

The message is untrusted data. It is cleaned, fenced, and placed only in the user turn of the
prompt; the system prompt takes no user text. Requests for the assistant's internals get a fixed
refusal without a model call. If the model's answer is unusable, a small rule-based reader takes
over, so a failing model still yields a working conversation.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, Field, field_validator
from trialwright.agents.chat_guard import (
    REFUSAL,
    OutputGuard,
    clean_user_text,
    fence,
    is_probe,
)
from trialwright.agents.chat_state import ChatState
from trialwright.agents.common import AgentDeps, ask, load_prompt
from trialwright.tools.schema import LABEL_WORD, CheckResult, Spec
from trialwright.tools.trials import PHASES, Phase

Next = Literal["retrieve", "draft", "approve", "export", "reply"]
Action = Literal["describe", "change", "approve", "export", "other"]
DEFAULT_PHASE = "phase 2"
DEFAULT_LABEL = 1

HELP = ("Describe the trial you want drafted, for example: \"a phase 2 trial of budesonide in "
        "asthma that would likely fail for poor enrollment\". I will retrieve similar real "
        "trials, reason about the outcome, draft the record and have it critiqued.")
REVIEW_HELP = ("Ask for changes in plain words (\"tighten the exclusion criteria\", \"make it "
               "phase 3\"), or approve or export the draft.")


_EMPTY = {"", "none", "null", "n/a", "na", "unknown", "unspecified", "not stated", "not specified"}


def _one_line(value: Any) -> Any:
    """Free-text fields flow into later prompts: one line, no markup characters, trimmed."""
    if not isinstance(value, str):
        return value
    value = re.sub(r"[<>{}`\\]", " ", clean_user_text(value))
    value = " ".join(value.split()).strip(" .,;:\"'")
    return None if value.lower() in _EMPTY else value


class ChatIntent(BaseModel):
    """What one message asks for (the intake model's structured answer)."""

    action: Action
    phase: Phase | None = None
    outcome: Literal["success", "failure"] | None = None
    condition: str | None = Field(None, max_length=120)
    intervention: str | None = Field(None, max_length=120)
    change_request: str | None = Field(None, max_length=300)

    @field_validator("condition", "intervention", "change_request", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return _one_line(value)

    @property
    def label(self) -> int | None:
        return None if self.outcome is None else int(self.outcome == "success")


# --- a rule-based reader: the fallback when the model's answer is unusable -------------------

_APPROVE = re.compile(r"^\W*(approve[sd]?|accept(ed)?|looks good|lgtm|ok(ay)?,? approve(d)?|"
                      r"i approve( it| this| the draft)?)\W*$", re.IGNORECASE)
_EXPORT = re.compile(r"^\W*(export|download)(( it| this| the)? (draft|report))?( as)?"
                     r"( json| markdown| md|( json)? and (markdown|md))?\W*$", re.IGNORECASE)
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "1": "1", "2": "2", "3": "3", "4": "4"}
_PHASE = re.compile(r"\b(early\s+phase\s*(?:1|i)\b|phase\s*(1|2|3|4|iv|iii|ii|i)\b"
                    r"(?:\s*(?:/|-|and|or)\s*(?:phase\s*)?(2|3|iii|ii)\b)?)", re.IGNORECASE)
_FAIL = re.compile(r"\b(fail\w*|unsuccessful|negative|terminat\w*|stopp?ed early|futil\w*|"
                   r"miss(es|ed)?\b|poor (enrol+ment|accrual|recruitment)|not meet)", re.IGNORECASE)
_SUCCEED = re.compile(r"\b(succe\w*|positive|meets? (its|the) (primary )?endpoint|met (its|the)|"
                      r"effective|works?)\b", re.IGNORECASE)
_TOPIC = re.compile(
    r"\b(?:of|with|testing|using|evaluating)\s+(?P<drug>[A-Za-z0-9][\w\-+/ ]{0,60}?)\s+"
    r"(?:in|for|against)\s+(?:(?:adult|adults|patients|children|people|subjects)\s+with\s+)?"
    r"(?P<cond>[A-Za-z0-9][\w\-'/ ]{0,80}?)"
    r"(?=\s+(?:that|which|who|where|would|will|with|to|and|but|so)\b|[,.;:!?)]|$)", re.IGNORECASE)


def rule_phase(text: str) -> str | None:
    m = _PHASE.search(text)
    if not m:
        return None
    if m.group(1).lower().startswith("early"):
        return "early phase 1"
    first, second = _ROMAN[m.group(2).lower()], m.group(3)
    phase = f"phase {first}" + (f"/phase {_ROMAN[second.lower()]}" if second else "")
    return phase if phase in PHASES else f"phase {first}"


def rule_intent(text: str, has_draft: bool) -> ChatIntent:
    """A deterministic reading of the message (phase, outcome, 'of X in Y', approve, export)."""
    if _APPROVE.match(text):
        return ChatIntent(action="approve")
    if _EXPORT.match(text):
        return ChatIntent(action="export")
    fail, succeed = _FAIL.search(text), _SUCCEED.search(text)
    outcome = None
    if fail or succeed:
        first = min((m for m in (fail, succeed) if m), key=lambda m: m.start())
        outcome = "failure" if first is fail else "success"
    topic = _TOPIC.search(text)
    strip = re.compile(r"^(?:a|an|the|drug|new)\s+", re.IGNORECASE)
    fields = {"phase": rule_phase(text), "outcome": outcome,
              "intervention": strip.sub("", topic.group("drug")) if topic else None,
              "condition": strip.sub("", topic.group("cond")) if topic else None}
    if has_draft:
        return ChatIntent(action="change", change_request=text[:300], **fields)
    found = any(v for v in fields.values())
    return ChatIntent(action="describe" if found else "other", **fields)


def cross_check(intent: ChatIntent | None, text: str, has_draft: bool) -> ChatIntent:
    """The model's reading, or the rules' when it has none; small models swap condition and
    intervention, so an 'of X in Y' phrase in the message settles which is which."""
    rules = rule_intent(text, has_draft)
    if intent is None:
        return rules
    if (rules.condition and rules.intervention and intent.condition == rules.intervention
            and intent.intervention == rules.condition):
        return intent.model_copy(update={"condition": rules.condition,
                                         "intervention": rules.intervention})
    return intent


def quick_command(text: str) -> Literal["approve", "export"] | None:
    """Short, unambiguous commands skip the model."""
    if _APPROVE.match(text):
        return "approve"
    if _EXPORT.match(text):
        return "export"
    return None


def read_resume(answer: Any) -> tuple[str, str]:
    """(action, text) from a resume value: a plain message, or {"action": ..., "text": ...}."""
    if isinstance(answer, dict):
        action = str(answer.get("action") or "message")
        text = clean_user_text(answer.get("text") or "")
        if action in ("approve", "export"):
            return action, text or action
        return "message", text
    return "message", clean_user_text(answer)


# --- from intent to the next step ------------------------------------------------------------

def describe_spec(spec: Spec) -> str:
    parts = [f"{spec.phase} trial", f"expected outcome: {LABEL_WORD[spec.label]}",
             f"condition: {spec.condition or 'from the evidence'}",
             f"intervention: {spec.intervention or 'from the evidence'}"]
    return "; ".join(parts)


def merge_spec(spec: Spec | None, intent: ChatIntent, number: int) -> Spec:
    """The spec after this message: stated fields replace the current ones, defaults fill gaps."""
    base = spec.model_dump() if spec else {"phase": DEFAULT_PHASE, "label": DEFAULT_LABEL}
    for name, value in (("phase", intent.phase), ("label", intent.label),
                        ("condition", intent.condition), ("intervention", intent.intervention)):
        if value is not None:
            base[name] = value
    base.update(spec_id=f"chat-{number}", seed=number, anchor_id=None)
    return Spec(**base)


def _topic_changed(old: Spec | None, new: Spec) -> bool:
    keys = ("phase", "label", "condition", "intervention")
    return old is None or any(getattr(old, k) != getattr(new, k) for k in keys)


def change_feedback(request: str | None, state: ChatState) -> str:
    """What the drafter must do for the person: the draft to edit, then their words (quoted,
    last, so a small model does not simply copy the draft back)."""
    if not request:
        return ""
    lines = []
    draft = state.get("draft")
    if draft is not None:
        lines.append("Previous draft, for reference (edit it; do not return it unchanged): "
                     + draft.model_dump_json(exclude={"label", "phase"}))
    lines.append("The person reviewing it asked for this change; apply it as an edit to the "
                 f"trial record and keep the rest (their words, quoted): \"{request}\"")
    return "\n".join(lines)


def check_change_applied(state: ChatState) -> CheckResult | None:
    """After an edit request, the draft must differ from the one the person saw."""
    before, after = state.get("previous_draft"), state.get("draft")
    if not state.get("user_feedback") or before is None or after is None:
        return None
    if after.model_dump(exclude={"label", "phase"}) == before.model_dump(exclude={"label", "phase"}):
        return CheckResult(name="change_applied", status="failed",
                           message="the draft came back unchanged; apply the requested change")
    return CheckResult(name="change_applied", status="passed")


def last_user_text(messages: list[BaseMessage]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, HumanMessage):
            return clean_user_text(msg.content if isinstance(msg.content, str) else "")
    return ""


def _reply(text: str, guard: OutputGuard) -> tuple[Next, dict[str, Any]]:
    return "reply", {"messages": [AIMessage(content=guard.redact(text))]}


async def interpret_message(state: ChatState, deps: AgentDeps) -> tuple[Next, dict[str, Any]]:
    """Read the latest message and decide the next step, with the state update that goes there."""
    guard = OutputGuard.for_settings(deps.settings)
    text = last_user_text(state.get("messages", []))
    spec, draft = state.get("spec"), state.get("draft")
    if not text:
        return _reply(REVIEW_HELP if draft else HELP, guard)
    if is_probe(text):
        return _reply(REFUSAL, guard)
    update: dict[str, Any] = {}
    action = quick_command(text)
    intent = ChatIntent(action=action) if action else None
    if intent is None:
        current = describe_spec(spec) + ("; a draft exists" if draft else "") if spec else "none yet"
        intent, update = await ask(deps.generator, load_prompt("chat_intake"), ChatIntent,
                                   node="intake", repairs=deps.settings.parse_retries,
                                   current=current, message=fence(text))
        intent = cross_check(intent, text, has_draft=draft is not None)
    # The fields feed later prompts and the spec: no secret-like strings, whatever the model said.
    intent = intent.model_copy(update={
        f: guard.redact(v) for f in ("condition", "intervention", "change_request")
        if isinstance(v := getattr(intent, f), str)})
    if intent.action in ("approve", "export"):
        if draft is None:
            return "reply", {**update, "messages": [AIMessage(content=(
                f"There is no draft to {intent.action} yet. {HELP}"))]}
        return intent.action, update
    if intent.action == "other":
        nxt, reply = _reply(REVIEW_HELP if draft else HELP, guard)
        return nxt, {**update, **reply}
    revision = state.get("revision", 0) + (1 if draft is not None or spec is not None else 0)
    # A new trial named in full starts afresh; anything less edits the current request.
    fresh = intent.action == "describe" and bool(intent.condition and intent.intervention)
    new_spec = merge_spec(None if fresh else spec, intent, revision)
    topic_changed = _topic_changed(spec, new_spec)
    request = None if fresh else intent.change_request
    if draft is not None and not topic_changed and not request:
        request = (_one_line(text) or "")[:300] or None  # an edit in the person's own words
    feedback = change_feedback(request, state)
    common = {**update, "revision": revision, "user_feedback": feedback, "feedback": feedback,
              "previous_draft": draft,
              "approved": False, "exported": None,
              "change_requests": [request] if request else []}
    if topic_changed or draft is None:
        note = "Drafting" if spec is None else "Updating the request to"
        return "retrieve", {**common, "spec": new_spec, "messages": [AIMessage(content=guard.redact(
            f"{note}: {describe_spec(new_spec)}. Retrieving similar real trials…"))]}
    return "draft", {**common, "messages": [AIMessage(content=guard.redact(
        f"Revising the draft: {request}"))]}
