"""Privacy and memorisation: is any synthetic record a copy of a real one?

- distance to closest real record (DCR, cosine distance), against the real-to-real baseline
  (held-out real trials to the rest);
- verbatim copying against the WHOLE real corpus through `tools.privacy_index.PrivacyIndex` (the
  generation-time privacy gate's index of hashed word n-grams), with the same real-to-real
  baseline;
- real NCT-id leakage;
- a distance-based membership-inference attack: are the real trials the generator saw (its
  retrieved evidence) closer to the synthetic set than real trials it never saw?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from trialwright.eval.quality.fidelity import summarise
from trialwright.eval.records import TrialRecord
from trialwright.tools.privacy_index import PrivacyIndex
from trialwright.tools.trials import NCT_ID

#: A synthetic record is flagged when any of these holds.
FLAG_DCR = 0.02  # cosine >= 0.98 to a real trial
FLAG_COPY_RATE = 0.5  # half of its n-grams appear verbatim in the real corpus


def longest_run(flags: np.ndarray) -> int:
    """Length of the longest stretch of consecutive True values."""
    edges = np.diff(np.r_[0, np.asarray(flags, dtype=np.int8), 0])
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max(initial=0))


@dataclass(frozen=True)
class VerbatimCopy:
    copy_rate: float  # share of the text's n-gram windows found verbatim in the corpus
    longest_span_words: int  # longest stretch whose every n-gram is in the corpus (0 = none)
    source: str | None  # the corpus trial sharing most of the text's n-grams


def verbatim_copy(index: PrivacyIndex, text: str) -> VerbatimCopy:
    found = index.window_hits(text)
    if not found.any():
        return VerbatimCopy(0.0, 0, None)
    best = index.copy_matches(text, top=1)
    return VerbatimCopy(round(float(found.mean()), 4), longest_run(found) + index.n - 1,
                        best[0].nctid if best else None)


def ngram_index(records: Sequence[TrialRecord], n: int) -> PrivacyIndex:
    """The corpus-wide copy index over the records' free text (`prose`)."""
    return PrivacyIndex.build([(r.id, r.prose) for r in records], n=n)


def closest_distances(queries: np.ndarray, reference: np.ndarray,
                      chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance to, and index of, the closest reference row (rows are unit-norm)."""
    dist, idx = np.empty(len(queries)), np.empty(len(queries), dtype=int)
    for s in range(0, len(queries), chunk):
        sims = queries[s:s + chunk] @ reference.T
        idx[s:s + chunk] = sims.argmax(axis=1)
        dist[s:s + chunk] = 1.0 - sims.max(axis=1)
    return np.clip(dist, 0.0, 2.0), idx


def holdout_split(n: int, share: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(reference, holdout) indices of the real set for the real-to-real baselines."""
    perm = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * share)))
    return np.sort(perm[cut:]), np.sort(perm[:cut])


def nct_leaks(records: Sequence[TrialRecord]) -> dict[str, list[str]]:
    """Record id -> NCT ids it mentions (a synthetic trial should name none)."""
    found = {r.id: sorted({m.upper() for m in NCT_ID.findall(r.raw)}) for r in records}
    return {k: v for k, v in found.items() if v}


@dataclass(frozen=True)
class Distances:
    """DCR of each synthetic record, and the real-to-real baseline (held-out to the rest)."""

    synthetic: np.ndarray
    nearest_real: np.ndarray  # index into the embedded real set
    real_holdout: np.ndarray
    holdout: np.ndarray  # indices of the held-out real trials


def dcr_distances(real_emb: np.ndarray, syn_emb: np.ndarray, seed: int = 0) -> Distances:
    ref, hold = holdout_split(len(real_emb), seed=seed)
    syn, nearest = closest_distances(syn_emb, real_emb)
    base = closest_distances(real_emb[hold], real_emb[ref])[0] if len(ref) else np.zeros(0)
    return Distances(syn, nearest, base, hold)


def membership_inference(real: Sequence[TrialRecord], real_emb: np.ndarray,
                         syn_emb: np.ndarray, members: set[str]) -> dict[str, Any]:
    """AUC of 'max cosine to any synthetic record' for seen (member) vs unseen real trials.

    0.5 = the synthetic set is no closer to what the generator saw than to other real trials.
    Retrieval picks trials on the requested topic, so some excess over 0.5 is expected even with
    no copying; read it together with the DCR and copy numbers.
    """
    is_member = np.array([r.id in members for r in real])
    if is_member.all() or not is_member.any() or not len(syn_emb):
        return {"auc": None, "members": int(is_member.sum()), "non_members": int((~is_member).sum()),
                "note": "needs real trials both seen and unseen by the generator"}
    score = 1.0 - closest_distances(real_emb, syn_emb)[0]
    return {"auc": round(float(roc_auc_score(is_member, score)), 4),
            "members": int(is_member.sum()), "non_members": int((~is_member).sum())}


def privacy(real_all: Sequence[TrialRecord], real: Sequence[TrialRecord], real_emb: np.ndarray,
            synthetic: Sequence[TrialRecord], syn_emb: np.ndarray, distances: Distances,
            ngram: int = 8) -> dict[str, Any]:
    """`real_all`: the whole real corpus (text checks); `real`/`real_emb`: the embedded sample."""
    syn_dcr, syn_near, base_dcr, hold = (distances.synthetic, distances.nearest_real,
                                         distances.real_holdout, distances.holdout)
    base_p5 = float(np.percentile(base_dcr, 5)) if len(base_dcr) else None

    corpus = ngram_index(real_all, ngram)
    held_ids = {real[i].id for i in hold}
    baseline_index = ngram_index([r for r in real_all if r.id not in held_ids], ngram)
    syn_copy = [verbatim_copy(corpus, r.prose) for r in synthetic]
    base_copy = [verbatim_copy(baseline_index, real[i].prose) for i in hold]

    real_ids = {r.id for r in real_all}
    leaks = nct_leaks(synthetic)
    flagged = []
    for r, d, near, c in zip(synthetic, syn_dcr, syn_near, syn_copy, strict=True):
        why = [w for w, hit in (
            (f"DCR {d:.3f} to {real[near].id}", d <= FLAG_DCR),
            (f"{c.copy_rate:.0%} of its {ngram}-grams copied (most from {c.source})",
             c.copy_rate >= FLAG_COPY_RATE),
            (f"names {', '.join(leaks.get(r.id, []))}", r.id in leaks)) if hit]
        if why:
            flagged.append({"id": r.id, "reasons": why})
    members = {i for r in synthetic for i in r.evidence_ids}
    return {
        "dcr": {"synthetic": summarise(syn_dcr), "real_holdout_baseline": summarise(base_dcr),
                "share_closer_than_real_p5": (round(float((syn_dcr < base_p5).mean()), 4)
                                              if base_p5 is not None and len(syn_dcr) else None),
                "exact_copies": int((syn_dcr <= 1e-6).sum())},
        "verbatim": {
            "ngram": ngram, "corpus_trials": len(real_all),
            "synthetic_copy_rate": summarise([c.copy_rate for c in syn_copy]),
            "real_holdout_copy_rate": summarise([c.copy_rate for c in base_copy]),
            "synthetic_longest_span_words": summarise([c.longest_span_words for c in syn_copy]),
            "real_holdout_longest_span_words": summarise([c.longest_span_words for c in base_copy]),
            "max_longest_span_words": max((c.longest_span_words for c in syn_copy), default=0)},
        "nct_ids": {"records_naming_any": len(leaks),
                    "records_naming_real": sum(bool(set(v) & real_ids) for v in leaks.values()),
                    "examples": dict(list(leaks.items())[:5])},
        "membership_inference": membership_inference(real, real_emb, syn_emb, members),
        "flagged": flagged,
        "thresholds": {"dcr": FLAG_DCR, "copy_rate": FLAG_COPY_RATE},
    }
