"""Synthetic data quality in one call: fidelity, diversity and privacy against the real corpus.

The embedding function is injected (`Embed`): the card passes the product's encoder, tests pass
`bag_of_words_embedder()`, which needs no weights. Embedding the whole real corpus is the slow
part, so embedding-based numbers use a uniform real sample (`max_real`) plus every real trial the
generator saw; text-based privacy numbers always use the whole corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from trialwright.eval.quality.diversity import diversity
from trialwright.eval.quality.fidelity import fidelity
from trialwright.eval.quality.privacy import Distances, dcr_distances, privacy
from trialwright.eval.records import TrialRecord

Embed = Callable[[Sequence[str]], np.ndarray]


def bag_of_words_embedder(n_features: int = 2048) -> Embed:
    """Hashed word uni/bigram counts, L2-normalised: deterministic, instant, no model."""
    vectorizer = HashingVectorizer(n_features=n_features, ngram_range=(1, 2), alternate_sign=False,
                                   norm="l2")
    return lambda texts: vectorizer.transform(list(texts)).toarray().astype(np.float32)


@dataclass
class RealSample:
    records: list[TrialRecord]
    uniform: int  # the first `uniform` records are a uniform sample; the rest were seen as evidence


def sample_real(real_all: Sequence[TrialRecord], synthetic: Sequence[TrialRecord],
                max_real: int | None, seed: int = 0) -> RealSample:
    rng = np.random.default_rng(seed)
    n = len(real_all) if max_real is None else min(max_real, len(real_all))
    uniform = [real_all[i] for i in sorted(rng.choice(len(real_all), n, replace=False))]
    have = {r.id for r in uniform}
    seen = {i for r in synthetic for i in r.evidence_ids}
    extra = [r for r in real_all if r.id in seen and r.id not in have]
    return RealSample(uniform + extra, len(uniform))


@dataclass
class QualityResult:
    metrics: dict[str, Any]
    real: RealSample
    real_emb: np.ndarray
    syn_emb: np.ndarray
    distances: Distances


def evaluate_quality(synthetic: Sequence[TrialRecord], real_all: Sequence[TrialRecord],
                     embed: Embed, *, max_real: int | None = 1000, ngram: int = 8,
                     seed: int = 0) -> QualityResult:
    if not synthetic:
        raise ValueError("no synthetic reports to evaluate")
    if len(real_all) < 5:
        raise ValueError("need at least 5 real trials to compare with")
    sample = sample_real(real_all, synthetic, max_real, seed)
    real_emb = np.asarray(embed([r.text for r in sample.records]), dtype=np.float32)
    syn_emb = np.asarray(embed([r.text for r in synthetic]), dtype=np.float32)
    uniform, uniform_emb = sample.records[:sample.uniform], real_emb[:sample.uniform]
    distances = dcr_distances(real_emb, syn_emb, seed=seed)
    metrics = {
        "counts": {"synthetic": len(synthetic), "real_corpus": len(real_all),
                   "real_embedded": len(sample.records), "real_uniform_sample": sample.uniform},
        "fidelity": fidelity(uniform_emb, syn_emb, uniform, synthetic, seed=seed),
        "diversity": diversity(uniform, uniform_emb, synthetic, syn_emb, seed=seed,
                               vocabulary=real_all),
        "privacy": privacy(real_all, sample.records, real_emb, synthetic, syn_emb, distances,
                           ngram=ngram),
    }
    return QualityResult(metrics, sample, real_emb, syn_emb, distances)
