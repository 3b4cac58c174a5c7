"""Fidelity: how close the synthetic distribution is to the real one.

Embedding-level: MMD (RBF kernel, permutation p-value) and Fréchet distance between encoder
embeddings, and a classifier two-sample test (cross-validated ROC-AUC of real vs synthetic;
0.5 = indistinguishable). Field-level: phase, label, criteria counts and conditions compared with
their real distributions. Embeddings come in as unit-norm rows; nothing here loads a model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel
from sklearn.model_selection import StratifiedKFold, cross_val_score
from trialwright.eval.records import TrialRecord, count_criteria
from trialwright.tools.privacy_index import tokens


def _median_gamma(pooled: np.ndarray) -> float:
    """RBF bandwidth by the median heuristic: the kernel is scale-free across encoders."""
    d2 = euclidean_distances(pooled, squared=True)
    med = np.median(d2[np.triu_indices_from(d2, k=1)])
    return 1.0 / max(float(med), 1e-12)


def _mmd2(k: np.ndarray, n: int) -> float:
    """Unbiased MMD² from the pooled kernel matrix; the first n rows are one sample."""
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    m = k.shape[0] - n
    xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(xx + yy - 2 * kxy.mean())


def mmd_rbf(x: np.ndarray, y: np.ndarray, permutations: int = 200,
            seed: int = 0) -> dict[str, float | None]:
    """Unbiased MMD² with a median-heuristic RBF kernel and a permutation p-value."""
    if len(x) < 2 or len(y) < 2:
        return {"mmd2": None, "p_value": None, "gamma": None}
    pooled = np.vstack([x, y])
    gamma = _median_gamma(pooled)
    k = rbf_kernel(pooled, gamma=gamma)
    observed = _mmd2(k, len(x))
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(permutations):
        p = rng.permutation(len(pooled))
        exceed += _mmd2(k[np.ix_(p, p)], len(x)) >= observed
    return {"mmd2": round(observed, 6), "p_value": round((exceed + 1) / (permutations + 1), 4),
            "gamma": round(gamma, 6)}


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float | None:
    """Fréchet distance between Gaussians fitted to two embedding sets (FID's formula)."""
    if len(x) < 2 or len(y) < 2:
        return None
    xc, yc = x - x.mean(0), y - y.mean(0)
    # tr sqrt(Cx Cy) is the nuclear norm of Xc Yc^T / sqrt((n-1)(m-1)): exact, and real-valued
    # even when there are fewer samples than dimensions (where sqrtm is singular).
    cross = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((len(x) - 1) * (len(y) - 1))
    trace_x = (xc ** 2).sum() / (len(x) - 1)
    trace_y = (yc ** 2).sum() / (len(y) - 1)
    mean_gap = ((x.mean(0) - y.mean(0)) ** 2).sum()
    return round(max(float(mean_gap + trace_x + trace_y - 2 * cross), 0.0), 6)


def two_sample_auc(real: np.ndarray, synthetic: np.ndarray, seed: int = 0,
                   folds: int = 5) -> dict[str, Any]:
    """Cross-validated ROC-AUC of a logistic regression telling real from synthetic.

    The larger set is subsampled to the smaller one so the folds are balanced.
    """
    n = min(len(real), len(synthetic))
    folds = min(folds, n)
    if folds < 2:
        return {"auc": None, "auc_std": None, "n_per_class": n, "folds": 0}
    rng = np.random.default_rng(seed)
    xr = real[rng.choice(len(real), n, replace=False)]
    xs = synthetic[rng.choice(len(synthetic), n, replace=False)]
    x = np.vstack([xr, xs])
    y = np.r_[np.zeros(n), np.ones(n)]
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=cv, scoring="roc_auc")
    return {"auc": round(float(scores.mean()), 4), "auc_std": round(float(scores.std()), 4),
            "n_per_class": n, "folds": folds}


def _shares(values: Sequence[Hashable]) -> dict[str, float]:
    counts = Counter(str(v) for v in values)
    total = sum(counts.values()) or 1
    return {k: round(c / total, 4) for k, c in counts.most_common()}


def compare_categorical(real: Sequence[Hashable], synthetic: Sequence[Hashable],
                        top: int | None = None) -> dict[str, Any]:
    """Shares per value, total variation and Jensen-Shannon distance (base 2, 0..1)."""
    r, s = _shares(real), _shares(synthetic)
    keys = sorted(set(r) | set(s))
    p, q = np.array([r.get(k, 0.0) for k in keys]), np.array([s.get(k, 0.0) for k in keys])
    if not keys or not p.sum() or not q.sum():
        return {"real": r, "synthetic": s, "total_variation": None, "jensen_shannon": None}
    return {"real": dict(list(r.items())[:top]), "synthetic": dict(list(s.items())[:top]),
            "total_variation": round(float(0.5 * np.abs(p - q).sum()), 4),
            "jensen_shannon": round(float(jensenshannon(p, q, base=2)), 4)}


def summarise(values: Sequence[float]) -> dict[str, float | None]:
    a = np.asarray(values, dtype=float)
    if not len(a):
        return {"n": 0, "mean": None, "median": None, "p10": None, "p90": None}
    return {"n": int(len(a)), "mean": round(float(a.mean()), 3),
            "median": round(float(np.median(a)), 3),
            "p10": round(float(np.percentile(a, 10)), 3), "p90": round(float(np.percentile(a, 90)), 3)}


def compare_numeric(real: Sequence[float], synthetic: Sequence[float]) -> dict[str, Any]:
    """Summaries, two-sample Kolmogorov-Smirnov test and Wasserstein distance."""
    out: dict[str, Any] = {"real": summarise(real), "synthetic": summarise(synthetic)}
    if len(real) and len(synthetic):
        ks = stats.ks_2samp(real, synthetic)
        out |= {"ks_statistic": round(float(ks.statistic), 4), "ks_p_value": float(f"{ks.pvalue:.4g}"),
                "wasserstein": round(float(stats.wasserstein_distance(real, synthetic)), 4)}
    return out


def _terms(records: Sequence[TrialRecord], field: str) -> list[str]:
    return [t.strip().lower() for r in records for t in getattr(r, field) if t.strip()]


def field_distributions(real: Sequence[TrialRecord],
                        synthetic: Sequence[TrialRecord]) -> dict[str, Any]:
    inc = {"real": [count_criteria(r.criteria) for r in real],
           "synthetic": [count_criteria(r.criteria) for r in synthetic]}
    n_words = {k: [len(tokens(r.criteria)) for r in v] for k, v in
               (("real", real), ("synthetic", synthetic))}
    enrollment = [r.enrollment for r in synthetic if r.enrollment is not None]
    return {
        "phase": compare_categorical([r.phase for r in real], [r.phase for r in synthetic]),
        "label": compare_categorical([r.label for r in real], [r.label for r in synthetic]),
        "inclusion_criteria": compare_numeric([i for i, _ in inc["real"]],
                                              [i for i, _ in inc["synthetic"]]),
        "exclusion_criteria": compare_numeric([e for _, e in inc["real"]],
                                              [e for _, e in inc["synthetic"]]),
        "criteria_words": compare_numeric(n_words["real"], n_words["synthetic"]),
        "conditions": compare_categorical(_terms(real, "diseases"), _terms(synthetic, "diseases"),
                                          top=15),
        "interventions": compare_categorical(_terms(real, "drugs"), _terms(synthetic, "drugs"),
                                             top=15),
        "enrollment": {"synthetic": summarise(enrollment), "real": None,
                       "note": "the real TOP data has no enrollment; only the synthetic side is "
                               "summarised"},
    }


def fidelity(real_emb: np.ndarray, syn_emb: np.ndarray, real: Sequence[TrialRecord],
             synthetic: Sequence[TrialRecord], seed: int = 0) -> dict[str, Any]:
    return {"mmd": mmd_rbf(real_emb, syn_emb, seed=seed),
            "frechet_distance": frechet_distance(real_emb, syn_emb),
            "two_sample": two_sample_auc(real_emb, syn_emb, seed=seed),
            "fields": field_distributions(real, synthetic)}
