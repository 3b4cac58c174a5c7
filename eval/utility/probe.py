"""Quick mode: the encoder frozen, a logistic-regression head on its embeddings (CPU minutes).

Embeddings come from `tools.encoder.Encoder`, cached by text, so every setting and seed after the
first costs only the regression. The regularisation strength is chosen by stratified CV inside
the training set (ROC-AUC), with the seed shuffling the folds.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from trialwright.eval.utility.model import ModelInfo
from trialwright.eval.utility.scorer import Fit, Mode, labels, softmax_positive
from trialwright.eval.utility.texts import ClassifierExample
from trialwright.tools.encoder import Encoder
from trialwright.tools.settings import Settings

C_GRID = np.logspace(-4, 0, 9)  # standardised 384-768-d features, ~10^3 rows: C above 1 overfits
HEAD_INIT_STD = 0.02  # BERT's initializer_range: what a fresh classification head starts from


def make_probe(y: np.ndarray, seed: int) -> Pipeline | GridSearchCV:
    """Scaler + logistic regression, C picked by stratified CV (folds shuffled by `seed`)."""
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    folds = min(5, int(np.bincount(y, minlength=2).min()))
    if folds < 2:  # too few of one class to cross-validate: keep the fixed penalty
        return pipe
    return GridSearchCV(pipe, {"logisticregression__C": C_GRID},
                        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                        scoring="roc_auc")


class FrozenProbe:
    mode: Mode = "quick"

    def __init__(self, model: ModelInfo, max_length: int, settings: Settings | None = None):
        settings = (settings or Settings()).model_copy(
            update={"encoder": model.path, "encoder_max_length": max_length})
        self.encoder = Encoder(settings)

    def embed(self, examples: list[ClassifierExample]) -> np.ndarray:
        return self.encoder.encode([e.text for e in examples])

    def untuned(self, test: list[ClassifierExample], seed: int) -> Fit:
        x = self.embed(test)
        head = np.random.default_rng(seed).normal(0.0, HEAD_INIT_STD, size=(x.shape[1], 2))
        return Fit(probs=softmax_positive(x @ head), seconds=0.0)

    def fit_predict(self, train: list[ClassifierExample], test: list[ClassifierExample],
                    seed: int) -> Fit:
        x, y = self.embed(train), labels(train)
        start = time.perf_counter()
        with threadpool_limits(1):  # small matrices: BLAS threads only fight torch's here (2.5x)
            probe = make_probe(y, seed).fit(x, y)
        chosen = getattr(probe, "best_params_", {}).get("logisticregression__C", 0.01)
        return Fit(probs=probe.predict_proba(self.embed(test))[:, 1],
                   seconds=time.perf_counter() - start, details={"C": float(chosen)})
