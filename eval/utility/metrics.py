"""Binary-outcome metrics: point values with scikit-learn, bootstrap CIs vectorised with numpy.

A bootstrap draws test rows with replacement; each draw is scored for every training seed and the
seed scores averaged, so the interval is that of the seed-mean under test-set resampling. The same
draws are reused for every setting of a phase, which makes setting-vs-setting differences paired.
The numpy versions equal scikit-learn's exactly (ties included); a unit test holds them to it.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")
THRESHOLD = 0.5  # probability of success at or above which a trial is predicted to succeed
ROC_GRID = np.linspace(0.0, 1.0, 101)


def point_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every metric for labels `y` and success probabilities `p` (scikit-learn)."""
    y, p = np.asarray(y), np.asarray(p, dtype=float)
    pred = (p >= THRESHOLD).astype(int)
    both = len(np.unique(y)) == 2  # rank metrics are undefined on one class
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
    }


def batch_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """The same metrics for each row of (B, n) label and probability matrices."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    pred = (p >= THRESHOLD).astype(float)
    tp = (pred * y).sum(1)
    fp = (pred * (1 - y)).sum(1)
    pos, n = y.sum(1), y.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(pos > 0, tp / pos, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"accuracy": (tp + (n - pos) - fp) / n, "precision": precision, "recall": recall,
            "f1": f1, "roc_auc": _batch_roc_auc(y, p), "pr_auc": _batch_average_precision(y, p)}


def _batch_roc_auc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mann-Whitney U with mid-ranks for ties (= the trapezoidal ROC area)."""
    ranks = rankdata(p, axis=1)
    pos = y.sum(1)
    neg = y.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def _batch_average_precision(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sum_k (R_k - R_{k-1}) P_k over distinct thresholds: each positive counts the precision at
    the end of its tie group when the scores are sorted high to low."""
    order = np.argsort(-p, axis=1, kind="stable")
    s, ys = np.take_along_axis(p, order, 1), np.take_along_axis(y, order, 1)
    n = s.shape[1]
    precision = np.cumsum(ys, 1) / np.arange(1, n + 1)
    is_end = np.ones_like(s, dtype=bool)
    is_end[:, :-1] = s[:, :-1] != s[:, 1:]
    end_at = np.where(is_end, np.arange(n), n)
    group_end = np.minimum.accumulate(end_at[:, ::-1], axis=1)[:, ::-1]
    pos = ys.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (ys * np.take_along_axis(precision, group_end, 1)).sum(1) / pos
    both = (pos > 0) & (pos < n)
    return np.where(both, ap, np.nan)


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_seed_mean(y: np.ndarray, probs: np.ndarray,
                        idx: np.ndarray) -> dict[str, np.ndarray]:
    """Per draw in `idx` (B, n): each metric averaged over the seeds in `probs` (S, n) -> (B,)."""
    y, probs = np.asarray(y), np.atleast_2d(np.asarray(probs, dtype=float))
    per_seed = [batch_metrics(y[idx], seed_p[idx]) for seed_p in probs]
    with warnings.catch_warnings():  # a draw with one class has no AUC: NaN, left out of the CI
        warnings.simplefilter("ignore", RuntimeWarning)
        return {m: np.nanmean(np.stack([d[m] for d in per_seed]), axis=0) for m in METRICS}


def percentile_ci(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    with warnings.catch_warnings():  # all-NaN draws (a one-class test set) give NaN bounds
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def mean_roc(y: np.ndarray, probs: np.ndarray) -> tuple[list[float], list[float]]:
    """ROC curve averaged over seeds on a fixed FPR grid (for plots)."""
    tprs = []
    for seed_p in np.atleast_2d(probs):
        fpr, tpr, _ = roc_curve(y, seed_p)
        tprs.append(np.interp(ROC_GRID, fpr, tpr))
    tpr = np.mean(tprs, axis=0)
    tpr[0] = 0.0
    return [round(float(x), 4) for x in ROC_GRID], [round(float(x), 4) for x in tpr]
