"""Embed real trials into the vector store, idempotently: a trial is re-embedded when its text
or the encoder changed, skipped otherwise, and trials no longer in the corpus are removed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel
from trialwright.tools.encoder import Encoder
from trialwright.tools.store import VectorStore, content_hash
from trialwright.tools.trials import Trial


class IndexStats(BaseModel):
    trials: int
    indexed: int
    skipped: int
    removed: int = 0  # stored trials no longer in the corpus
    encode_seconds: float
    store_seconds: float
    wall_seconds: float


def trial_payload(trial: Trial, encoder_id: str) -> dict:
    """Label-blind text plus filterable fields; status/why_stop are never stored. The content
    hash covers the text and the encoder that embeds it (`encoder_id`, its fingerprint)."""
    text = trial.text()
    return {
        "nctid": trial.nctid, "phase": trial.phase, "label": trial.label,
        "diseases": trial.diseases, "drugs": list(dict.fromkeys(trial.drugs)), "text": text,
        "content_hash": content_hash(text, encoder_id),
    }


def index_trials(trials: Sequence[Trial], encoder: Encoder, store: VectorStore,
                 batch_size: int = 64,
                 on_batch: Callable[[int], None] | None = None) -> IndexStats:
    t0 = time.perf_counter()
    store.ensure_collection(encoder.dim)
    payloads = [trial_payload(t, encoder.fingerprint) for t in trials]
    # A trial dropped from the configured files (a test split) must not stay retrievable.
    stale = store.ids() - {p["nctid"] for p in payloads}
    removed = store.delete(sorted(stale)) if stale else 0
    have = store.content_hashes([p["nctid"] for p in payloads])
    todo = [p for p in payloads if have.get(p["nctid"]) != p["content_hash"]]
    enc0, store_s = encoder.encode_seconds, 0.0
    for i in range(0, len(todo), batch_size):
        chunk = todo[i:i + batch_size]
        vectors = encoder.encode([p["text"] for p in chunk])
        s0 = time.perf_counter()
        store.upsert([p["nctid"] for p in chunk], vectors, chunk)
        store_s += time.perf_counter() - s0
        if on_batch:
            on_batch(len(chunk))
    if todo or removed:
        s0 = time.perf_counter()
        store.optimize()  # builds the HNSW index where the corpus is big enough to need one
        store_s += time.perf_counter() - s0
    return IndexStats(trials=len(trials), indexed=len(todo), skipped=len(trials) - len(todo),
                      removed=removed,
                      encode_seconds=round(encoder.encode_seconds - enc0, 3),
                      store_seconds=round(store_s, 3),
                      wall_seconds=round(time.perf_counter() - t0, 3))
