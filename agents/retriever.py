"""Retriever: k real trials matching the spec (same phase and label, similar topic), diversified
by MMR and spread across the batch by a per-spec, seeded reuse penalty.

Evidence is a function of (spec, settings, store) alone: no state is shared between specs, so it
is the same under any concurrency, after a resume, and on every backend (asyncio, Ray workers).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from trialwright.agents.common import AgentDeps, timed
from trialwright.agents.state import ReportState
from trialwright.tools.schema import Evidence, Spec

# Score a candidate may lose to the spec's seeded spread: near-tied candidates trade places from
# one spec to the next (a batch on one topic does not reuse the same k trials), while a clearly
# more relevant trial still leads. 0.1 is two uses under the old batch-wide counter (0.05 each).
REUSE_SPREAD = 0.1


def query_text(spec: Spec) -> str:
    topic = ", ".join(x for x in (spec.condition, spec.intervention) if x)
    return f"{spec.phase}. {topic}" if topic else spec.phase


def reuse_penalty(spec: Spec, nctid: str) -> float:
    """A stable draw in [0, REUSE_SPREAD) per (spec seed, trial): the same in every process."""
    digest = hashlib.blake2b(f"{spec.seed}\0{nctid}".encode(), digest_size=8).digest()
    return REUSE_SPREAD * int.from_bytes(digest, "big") / 2**64


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
    # ties broken by id, so equal keys cannot fall back on the store's arrival order
    ranked = sorted(hits, key=lambda h: (-(h.score - reuse_penalty(spec, h.id)), h.id))[:k]
    return [Evidence(nctid=h.id, score=round(h.score, 4), phase=h.payload["phase"],
                     label=int(h.payload["label"]), diseases=h.payload["diseases"],
                     drugs=h.payload["drugs"], text=h.payload["text"]) for h in ranked]


async def retrieve_evidence(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec = state["spec"]
    evidence = await asyncio.to_thread(_search, deps, spec)
    return {"evidence": evidence, "revision": state.get("revision", 0), "status": "running",
            **timed("retrieve", state.get("revision", 0), t0)}
