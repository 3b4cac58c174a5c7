"""The eval card's figures, drawn headless (matplotlib's Agg backend) and returned as PNG bytes.

Quality: embeddings on their principal plane, category shares, overlaid histograms. Utility: ROC
curves and metric bars per setting, one colour per setting in every plot.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

if TYPE_CHECKING:
    from trialwright.eval.utility.results import SettingResult

COLOURS = {"real": "#4c72b0", "synthetic": "#dd8452"}
KIND_COLOURS = {"baseline": "#9e9e9e", "real": "#1f77b4", "synthetic": "#d62728",
                "hybrid": "#2ca02c", "reference": "#9467bd"}
BAR_METRICS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("f1", "F1"), ("accuracy", "Accuracy"))


def png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes, then closed: the one way the card saves a figure."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


# --- quality -------------------------------------------------------------------------------------

def embedding_scatter(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> bytes:
    """Both sets projected on the real+synthetic principal plane."""
    pca = PCA(n_components=2, random_state=seed).fit(np.vstack([real, synthetic]))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, x, size in (("real", real, 8), ("synthetic", synthetic, 18)):
        xy = pca.transform(x)
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.55, label=f"{name} ({len(x)})",
                   color=COLOURS[name])
    ax.set(title="Embeddings, first two principal components", xlabel="PC1", ylabel="PC2")
    ax.legend()
    return png(fig)


def overlaid_histograms(series: Mapping[str, Sequence[float]], title: str, xlabel: str,
                        bins: int = 30) -> bytes:
    """Densities of a few named samples on shared bins."""
    values = [np.asarray(v, dtype=float) for v in series.values() if len(v)]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    if values:
        edges = np.histogram_bin_edges(np.concatenate(values), bins=bins)
        for (name, v), colour in zip(series.items(), ("#4c72b0", "#dd8452", "#55a868"),
                                     strict=False):
            if len(v):
                ax.hist(v, bins=edges, density=True, alpha=0.5, label=f"{name} ({len(v)})",
                        color=colour)
        ax.legend()
    ax.set(title=title, xlabel=xlabel, ylabel="density")
    return png(fig)


def share_bars(real: Mapping[str, float], synthetic: Mapping[str, float], title: str,
               top: int = 12) -> bytes:
    """Side-by-side shares of categories (the real set's most common first)."""
    keys = list(dict.fromkeys([*real, *synthetic]))[:top]
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.6 * len(keys) + 2), 3.6))
    ax.bar(x - 0.2, [real.get(k, 0) for k in keys], 0.4, label="real", color=COLOURS["real"])
    ax.bar(x + 0.2, [synthetic.get(k, 0) for k in keys], 0.4, label="synthetic",
           color=COLOURS["synthetic"])
    ax.set_xticks(x, [k[:22] for k in keys], rotation=35, ha="right")
    ax.set(title=title, ylabel="share")
    ax.legend()
    return png(fig)


# --- utility -------------------------------------------------------------------------------------

def setting_colours(results: list[SettingResult]) -> list[str]:
    """One colour per setting, the same in every plot: by kind; more synthetic, darker green."""
    hybrids = sorted({r.synthetic_ratio or 0.0 for r in results if r.kind == "hybrid"})
    shades = colormaps["Greens"]([0.45 + 0.45 * i / max(1, len(hybrids) - 1)
                                  for i in range(len(hybrids))])
    out = []
    for r in results:
        if r.kind == "hybrid":
            out.append(mcolors.to_hex(shades[hybrids.index(r.synthetic_ratio or 0.0)]))
        else:
            out.append("#ff7f0e" if r.setting == "untuned" else KIND_COLOURS[r.kind])
    return out


def roc_plot(results: list[SettingResult], title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for r, colour in zip(results, setting_colours(results), strict=True):
        style = "--" if r.kind == "baseline" else ":" if r.kind == "reference" else "-"
        ax.plot(r.roc.fpr, r.roc.tpr, style, lw=1.6, color=colour,
                label=f"{r.setting} (AUC {r.metrics['roc_auc'].mean:.3f})")
    ax.plot([0, 1], [0, 1], color="0.8", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title,
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    return png(fig)


def metric_bars(results: list[SettingResult], title: str) -> bytes:
    fig, axes = plt.subplots(1, len(BAR_METRICS), figsize=(3.1 * len(BAR_METRICS), 3.6),
                             sharey=False)
    names = [r.setting for r in results]
    colours = setting_colours(results)
    for ax, (metric, label) in zip(axes, BAR_METRICS, strict=True):
        means = np.array([r.metrics[metric].mean for r in results])
        lo = np.array([r.metrics[metric].ci95[0] for r in results])
        hi = np.array([r.metrics[metric].ci95[1] for r in results])
        err = np.clip(np.vstack([means - lo, hi - means]), 0, None)
        ax.bar(range(len(results)), means, yerr=err, capsize=3, color=colours)
        ax.set_xticks(range(len(results)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title + " (bars: mean over seeds; whiskers: bootstrap 95% CI)", fontsize=9)
    return png(fig)
