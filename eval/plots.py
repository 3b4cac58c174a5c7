"""The eval card's figures: small PNGs drawn headless (matplotlib's Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

COLOURS = {"real": "#4c72b0", "synthetic": "#dd8452"}


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def embedding_scatter(real: np.ndarray, synthetic: np.ndarray, path: Path, seed: int = 0) -> Path:
    """Both sets projected on the real+synthetic principal plane."""
    pca = PCA(n_components=2, random_state=seed).fit(np.vstack([real, synthetic]))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, x, size in (("real", real, 8), ("synthetic", synthetic, 18)):
        xy = pca.transform(x)
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.55, label=f"{name} ({len(x)})",
                   color=COLOURS[name])
    ax.set(title="Embeddings, first two principal components", xlabel="PC1", ylabel="PC2")
    ax.legend()
    return _save(fig, path)


def overlaid_histograms(series: Mapping[str, Sequence[float]], path: Path, title: str,
                        xlabel: str, bins: int = 30) -> Path:
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
    return _save(fig, path)


def share_bars(real: Mapping[str, float], synthetic: Mapping[str, float], path: Path,
               title: str, top: int = 12) -> Path:
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
    return _save(fig, path)
