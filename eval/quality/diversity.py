"""Diversity: distinct-n, within-set embedding similarity, near duplicates, coverage of real topics.

Within-set similarity is the RR paper's measure (mean cosine over random pairs), reported for the
synthetic set and for an equally sized real sample, so the two numbers compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from trialwright.eval.records import TrialRecord
from trialwright.tools.privacy_index import tokens


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Distinct n-grams over all n-grams in the set (Li et al. 2016); 1.0 = no repetition."""
    grams = [tuple(w[i:i + n]) for t in texts for w in [tokens(t)] for i in range(len(w) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else None


def pairwise_cosines(emb: np.ndarray, pairs: int = 2000, seed: int = 0) -> np.ndarray:
    """Cosines of random distinct pairs (rows are unit-norm)."""
    if len(emb) < 2:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(emb), pairs)
    j = (i + rng.integers(1, len(emb), pairs)) % len(emb)  # never i itself
    return np.einsum("ij,ij->i", emb[i], emb[j])


def nearest_neighbour_cosine(emb: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For each row, the cosine of its most similar other row."""
    out = np.full(len(emb), -1.0)
    for start in range(0, len(emb), chunk):
        sims = emb[start:start + chunk] @ emb.T
        idx = np.arange(start, min(start + chunk, len(emb)))
        sims[idx - start, idx] = -np.inf
        out[idx] = sims.max(axis=1)
    return out


def near_duplicate_rate(emb: np.ndarray, threshold: float = 0.95) -> float | None:
    """Share of records with another record above `threshold` cosine."""
    if len(emb) < 2:
        return None
    return round(float((nearest_neighbour_cosine(emb) > threshold).mean()), 4)


def coverage(real: Sequence[TrialRecord], synthetic: Sequence[TrialRecord],
             field: str) -> dict[str, Any]:
    """How much of the real vocabulary of conditions / interventions the synthetic set uses."""
    def vocab(records: Sequence[TrialRecord]) -> set[str]:
        return {t.strip().lower() for r in records for t in getattr(r, field) if t.strip()}

    real_v, syn_v = vocab(real), vocab(synthetic)
    touched = [bool({t.strip().lower() for t in getattr(r, field)} & syn_v) for r in real]
    return {"real_distinct": len(real_v), "synthetic_distinct": len(syn_v),
            "covered_distinct": len(real_v & syn_v),
            "share_of_real_terms": round(len(real_v & syn_v) / len(real_v), 4) if real_v else None,
            "share_of_real_trials": round(float(np.mean(touched)), 4) if touched else None,
            "synthetic_terms_not_in_real": len(syn_v - real_v)}


def _set_diversity(texts: Sequence[str], emb: np.ndarray, seed: int) -> dict[str, Any]:
    cos = pairwise_cosines(emb, seed=seed)
    return {"n": len(texts), **{f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 3)},
            "mean_pairwise_cosine": round(float(cos.mean()), 4) if len(cos) else None,
            "near_duplicate_rate": near_duplicate_rate(emb)}


def diversity(real: Sequence[TrialRecord], real_emb: np.ndarray,
              synthetic: Sequence[TrialRecord], syn_emb: np.ndarray, seed: int = 0,
              vocabulary: Sequence[TrialRecord] | None = None) -> dict[str, Any]:
    """Synthetic vs an equally sized random real sample (distinct-n depends on set size).

    Coverage is of `vocabulary` (the whole real corpus when given), else of `real`.
    """
    vocabulary = real if vocabulary is None else vocabulary
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(real), min(len(real), len(synthetic)), replace=False)
    return {"synthetic": _set_diversity([r.text for r in synthetic], syn_emb, seed),
            "real_sample": _set_diversity([real[i].text for i in pick], real_emb[pick], seed),
            "condition_coverage": coverage(vocabulary, synthetic, "diseases"),
            "intervention_coverage": coverage(vocabulary, synthetic, "drugs")}
