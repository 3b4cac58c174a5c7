"""The fake model behind `--llm fake` (and `TRIALWRIGHT_CHAT_LLM=fake`): valid answers with no
model, with optional latency — for plumbing runs, orchestration benchmarks, and concurrent tests
where a scripted, ordered list of answers cannot work. It reads the requested JSON schema (the bound
`response_format`) and fills it: enum fields take their first allowed value, which is the spec's
phase/label and the chosen condition/intervention.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def _first(prop: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in prop:
        prop = defs[prop["$ref"].split("/")[-1]]
    if "enum" in prop:
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    if "items" in prop:
        return [_first(prop["items"], defs)]
    return None


def fake_answer(schema: dict[str, Any]) -> dict[str, Any]:
    defs, props = schema.get("$defs", {}), schema.get("properties", {})
    name = schema.get("title", "")
    if name == "Rationale":
        cond, drug = _first(props["condition"], defs), _first(props["intervention"], defs)
        ref = defs[props["reasons"]["items"]["$ref"].split("/")[-1]]
        ids = [_first(ref["properties"]["evidence_ids"]["items"], defs)]
        return {"condition": cond, "intervention": drug, "reasons": [
            {"claim": f"Comparable {drug} trials in {cond} shared this outcome.", "evidence_ids": ids},
            {"claim": "Dose and population match the retrieved designs.", "evidence_ids": ids}]}
    if name == "SyntheticTrial":
        disease, drug = _first(props["diseases"], defs)[0], _first(props["drugs"], defs)[0]
        label = _first(props["label"], defs)
        return {
            "title": f"A Study of {drug} in Patients With {disease}",
            "brief_summary": f"This study evaluates {drug} in adults with {disease}.",
            "phase": _first(props["phase"], defs), "diseases": [disease], "drugs": [drug],
            "design": {"allocation": "Randomized", "intervention_model": "Parallel Assignment",
                       "masking": "Double", "primary_purpose": "Treatment"},
            "arms": [{"label": drug, "type": "Experimental", "description": f"{drug} daily"},
                     {"label": "Placebo", "type": "Placebo Comparator",
                      "description": "Matching placebo daily"}],
            "primary_outcome": {"measure": "Response rate", "time_frame": "24 weeks"},
            "enrollment": 120, "minimum_age_years": 18, "maximum_age_years": 75,
            "inclusion_criteria": [f"Confirmed {disease}"], "exclusion_criteria": ["Pregnancy"],
            "outcome_summary": "The primary endpoint was met." if label == 1
            else "The primary endpoint was missed.", "label": label}
    if name == "OutcomeRewrite":
        return {"outcome_summary": "The primary endpoint was met."}
    if name == "OutcomeAnswer":
        return {"reading": "unclear"}  # the fake cannot read; phrase pre-checks decide its texts
    if name == "ChecklistAnswer":  # every question yes: the fake accepts what the checks pass
        return {**{k: "yes" for k, v in props.items() if v.get("enum") == ["yes", "no"]},
                "feedback": ""}
    if name == "JudgeOutput":
        return {"scores": {k: 4 for k in ("label_faithfulness", "internal_consistency",
                                           "clinical_plausibility", "realism", "grounding")},
                "reasons": "consistent", "verdict": "accept", "feedback": ""}
    raise ValueError(f"fake LLM has no answer for schema {name!r}")


class FakeSchemaChat(BaseChatModel):
    """Answers any structured request validly after `latency_s` (asyncio sleep, not CPU)."""

    latency_s: float = 0.0
    tokens_per_answer: int = 50

    @property
    def _llm_type(self) -> str:
        return "fake-schema"

    def _answer(self, kwargs: dict[str, Any]) -> ChatResult:
        fmt = kwargs.get("response_format") or {}
        schema = fmt.get("json_schema", {}).get("schema", {})
        msg = AIMessage(content=json.dumps(fake_answer(schema)), usage_metadata={
            "input_tokens": self.tokens_per_answer, "output_tokens": self.tokens_per_answer,
            "total_tokens": 2 * self.tokens_per_answer})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any):
        if self.latency_s:
            time.sleep(self.latency_s)
        return self._answer(kwargs)

    async def _agenerate(self, messages: list[BaseMessage], stop=None, run_manager=None,
                         **kwargs: Any):
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return self._answer(kwargs)
