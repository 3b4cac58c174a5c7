"""Test and benchmark doubles: a fixed evidence store that honours filters, a hash encoder, and
all-fake agent deps (the schema-filling fake LLM from the product, `tools/fake_llm.py`)."""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from trialwright.agents.common import AgentDeps
from trialwright.tools.fake_llm import FakeSchemaChat
from trialwright.tools.llm import ChatEndpoint
from trialwright.tools.settings import Settings

FIXED_TRIALS = [
    {"nctid": "NCT00000011", "phase": "phase 2", "label": 1, "diseases": ["asthma"],
     "drugs": ["budesonide"], "text": "phase 2. Conditions: asthma. Interventions: budesonide. "
     "Inclusion Criteria: adults aged 18 to 65 with persistent asthma and reversible airflow "
     "obstruction on spirometry at screening visit. Exclusion Criteria: smokers."},
    {"nctid": "NCT00000022", "phase": "phase 2", "label": 1, "diseases": ["asthma", "copd"],
     "drugs": ["formoterol"], "text": "phase 2. Conditions: asthma, copd. Interventions: "
     "formoterol. Inclusion Criteria: FEV1 50-80% predicted. Exclusion Criteria: pregnancy."},
    {"nctid": "NCT00000033", "phase": "phase 2", "label": 0, "diseases": ["asthma"],
     "drugs": ["budesonide"], "text": "phase 2. Conditions: asthma. Interventions: budesonide. "
     "Inclusion Criteria: adults aged 18 to 65 with mild asthma. Exclusion Criteria: smokers."},
    {"nctid": "NCT00000044", "phase": "phase 2", "label": 0, "diseases": ["asthma"],
     "drugs": ["formoterol"], "text": "phase 2. Conditions: asthma. Interventions: formoterol. "
     "Inclusion Criteria: FEV1 60-85% predicted. Exclusion Criteria: liver disease."},
]


# Ten candidates per outcome, near-tied in relevance: where a reuse penalty decides the evidence.
MANY_TRIALS = [
    {"nctid": f"NCT0000{label}{i:03d}", "phase": "phase 2", "label": label, "diseases": ["asthma"],
     "drugs": ["budesonide"], "text": f"phase 2. Conditions: asthma. Interventions: budesonide. "
     f"Inclusion Criteria: adults aged 18 to 65, cohort {i}. Exclusion Criteria: smokers."}
    for label in (1, 0) for i in range(10)]


class _Hit:
    def __init__(self, rec: dict, score: float):
        self.id, self.score, self.payload = rec["nctid"], score, rec


class FixedStore:
    """A fixed set of real-looking trials, searched with the store's filters honoured (phase,
    label, excluded ids), so a retrieval bug shows here as it would on the real store."""

    def __init__(self, records: list[dict] | None = None, score_step: float = 0.1):
        self.records = records or FIXED_TRIALS
        self.score_step = score_step
        self.queries: deque[dict] = deque(maxlen=1000)  # the latest, so 100k specs stay flat

    def search_diverse(self, vector, k, **filters):
        self.queries.append(filters)
        skip = set(filters.get("exclude_ids") or [])
        keep = [r for r in self.records if r["nctid"] not in skip
                and all(filters.get(f) is None or r.get(f) == filters[f] for f in ("phase", "label"))]
        return [_Hit(r, 0.9 - i * self.score_step) for i, r in enumerate(keep)][:k]

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


def fake_deps(latency_s: float = 0.0, k_evidence: int = 2, store: Any = None,
              encoder: Any = None) -> AgentDeps:
    """All-fake deps — schema-driven LLM with `latency_s` per call, fixed evidence store."""
    ep = ChatEndpoint(chat=FakeSchemaChat(latency_s=latency_s), model_id="fake")
    return AgentDeps(settings=Settings(k_evidence=k_evidence), generator=ep, judge=ep,
                     store=store or FixedStore(), encoder=encoder or HashEncoder())


@dataclass(frozen=True)
class FakeRetrieval:
    """(FixedStore, HashEncoder): retrieval without a model, for Ray tests and benchmarks;
    `many`: the near-tied `MANY_TRIALS` instead of the four fixed ones."""

    many: bool = False

    def __call__(self) -> tuple[Any, Any]:
        store = FixedStore(MANY_TRIALS, score_step=0.01) if self.many else FixedStore()
        return store, HashEncoder()


@dataclass(frozen=True)
class FakeDeps:
    """The Ray workers' plumbing factory: fake LLM (`latency_s` per call) and fake retrieval,
    or retrieval through a `RetrievalService` actor handle."""

    latency_s: float = 0.0
    k_evidence: int = 2
    retrieval: Any = None
    many: bool = False  # retrieve from `MANY_TRIALS`

    def __call__(self) -> AgentDeps:
        from trialwright.graph.ray_backend import RemoteEncoder, RemoteStore

        store, encoder = ((RemoteStore(self.retrieval), RemoteEncoder(self.retrieval))
                          if self.retrieval is not None else FakeRetrieval(self.many)())
        return fake_deps(self.latency_s, self.k_evidence, store, encoder)
