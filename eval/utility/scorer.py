"""What the utility evaluation needs from a classifier: score untrained, or train then score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from trialwright.eval.utility.texts import ClassifierExample

Mode = Literal["quick", "finetune"]


@dataclass
class Fit:
    """Success probabilities for the test examples, and how training went."""

    probs: np.ndarray
    seconds: float
    train_losses: list[float] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)


class Scorer(Protocol):
    mode: Mode

    def untuned(self, test: list[ClassifierExample], seed: int) -> Fit:
        """The encoder with a fresh, untrained head (the zero-shot baseline)."""
        ...

    def fit_predict(self, train: list[ClassifierExample], test: list[ClassifierExample],
                    seed: int) -> Fit:
        ...


def labels(examples: list[ClassifierExample]) -> np.ndarray:
    return np.array([e.label for e in examples], dtype=int)


def softmax_positive(logits: np.ndarray) -> np.ndarray:
    """P(class 1) from (n, 2) logits, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, 1] / e.sum(axis=1)
