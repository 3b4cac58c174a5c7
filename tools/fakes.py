"""Fakes for plumbing runs, benchmarks and tests: a schema-driven chat model, a fixed store.

The chat model gives valid answers with no model, with optional latency.

For plumbing runs (`--llm fake`), benchmarks of orchestration overhead, and concurrent tests where
a scripted, ordered list of answers cannot work. It reads the requested JSON schema (the bound
`response_format`) and fills it: enum fields take their first allowed value, which is the spec's
phase/label and the chosen condition/intervention.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from typing import Any

import numpy as np
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
            "arms": [{"label": drug, "type": "Experimental", "description": f"{drug} daily"}],
            "primary_outcome": {"measure": "Response rate", "time_frame": "24 weeks"},
            "enrollment": 120, "minimum_age_years": 18, "maximum_age_years": 75,
            "inclusion_criteria": [f"Confirmed {disease}"], "exclusion_criteria": ["Pregnancy"],
            "outcome_summary": "The primary endpoint was met." if label == 1
            else "The primary endpoint was missed.", "label": label}
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


FIXED_TRIALS = [
    {"nctid": "NCT00000011", "phase": "phase 2", "label": 1, "diseases": ["asthma"],
     "drugs": ["budesonide"], "text": "phase 2. Conditions: asthma. Interventions: budesonide. "
     "Inclusion Criteria: adults aged 18 to 65 with persistent asthma and reversible airflow "
     "obstruction on spirometry at screening visit. Exclusion Criteria: smokers."},
    {"nctid": "NCT00000022", "phase": "phase 2", "label": 1, "diseases": ["asthma", "copd"],
     "drugs": ["formoterol"], "text": "phase 2. Conditions: asthma, copd. Interventions: "
     "formoterol. Inclusion Criteria: FEV1 50-80% predicted. Exclusion Criteria: pregnancy."},
]


class _Hit:
    def __init__(self, rec: dict, score: float):
        self.id, self.score, self.payload = rec["nctid"], score, rec


class FixedStore:
    """Returns the same real-looking trials for any query (orchestration benchmarks, tests)."""

    def __init__(self, records: list[dict] | None = None):
        self.records = records or FIXED_TRIALS
        self.queries: list[dict] = []

    def search_diverse(self, vector, k, **filters):
        self.queries.append(filters)
        skip = set(filters.get("exclude_ids") or [])
        return [_Hit(r, 0.9 - i / 10) for i, r in enumerate(self.records)
                if r["nctid"] not in skip][:k]

    def count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        pass


class HashEncoder:
    """A deterministic 8-d 'embedding' (no model)."""

    def encode_one(self, text: str) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        v = rng.normal(size=8).astype(np.float32)
        return v / np.linalg.norm(v)
