"""Retriever: k real trials matching the spec (same phase and label, similar topic), diversified
by MMR and steered away from trials already used often in this batch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from trialwright.agents.common import AgentDeps, timed
from trialwright.agents.state import ReportState
from trialwright.tools.schema import Evidence, Spec

OVERUSE_PENALTY = 0.05  # score lost per earlier use; small enough that relevance still leads


def query_text(spec: Spec) -> str:
    topic = ", ".join(x for x in (spec.condition, spec.intervention) if x)
    return f"{spec.phase}. {topic}" if topic else spec.phase


def _search(deps: AgentDeps, spec: Spec) -> list[Evidence]:
    assert deps.store is not None and deps.encoder is not None, "retriever needs store + encoder"
    k = deps.settings.k_evidence
    vector = deps.encoder.encode_one(query_text(spec))
    hits = deps.store.search_diverse(vector, k * 4, fetch_k=k * 12, diversity=0.3,
                                     phase=spec.phase, label=spec.label)
    if len(hits) < k:  # rare phases: keep the outcome, relax the phase
        hits += deps.store.search_diverse(vector, k * 4, fetch_k=k * 12, diversity=0.3,
                                          label=spec.label,
                                          exclude_ids=[h.id for h in hits])
    ranked = sorted(hits, key=lambda h: h.score - OVERUSE_PENALTY * deps.evidence_use[h.id],
                    reverse=True)[:k]
    for h in ranked:
        deps.evidence_use[h.id] += 1
    return [Evidence(nctid=h.id, score=round(h.score, 4), phase=h.payload["phase"],
                     label=int(h.payload["label"]), diseases=h.payload["diseases"],
                     drugs=h.payload["drugs"], text=h.payload["text"]) for h in ranked]


async def retrieve_evidence(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec = state["spec"]
    evidence = await asyncio.to_thread(_search, deps, spec)
    return {"evidence": evidence, "revision": state.get("revision", 0), "status": "running",
            **timed("retrieve", state.get("revision", 0), t0)}
