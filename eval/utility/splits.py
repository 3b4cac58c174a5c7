"""Real train/test splits per TOP phase, with no test id reachable from training.

The offline TOP snapshot has a real training split only for phase I; phase II has only its
validation file and phase III validation + test (see the data README). All six files are read
together and de-duplicated by `nctid` first; then each phase's test ids are fixed, and every
training candidate carrying a test id is dropped. Re-splits use a fixed seed, so every run
and every training seed scores the same test rows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel
from sklearn.model_selection import train_test_split
from trialwright.eval.synthetic_reports import EvalInputError
from trialwright.eval.utility.texts import ClassifierExample, make_example
from trialwright.tools.settings import TOP_FILES
from trialwright.tools.trials import Trial, load_top

PhaseName = Literal["I", "II", "III"]
PHASE_NAMES: tuple[PhaseName, ...] = ("I", "II", "III")
#: Trial phases each TOP phase group covers (a synthetic "phase 1/phase 2" report fits I and II).
PHASE_MEMBERS: dict[PhaseName, frozenset[str]] = {
    "I": frozenset({"early phase 1", "phase 1", "phase 1/phase 2"}),
    "II": frozenset({"phase 1/phase 2", "phase 2", "phase 2/phase 3"}),
    "III": frozenset({"phase 2/phase 3", "phase 3"}),
}
SPLIT_SEED = 0  # fixed: the test rows never depend on the run's training seeds


class SplitRecipe(BaseModel):
    """Where one phase's rows come from; `test_share` re-splits a pool (None: official split).

    Training files include TOP's valid files: fixed epochs and in-training CV need no valid split.
    """

    train: tuple[str, ...]
    test: tuple[str, ...]
    test_share: float | None = None
    hint: str | None = None
    how: str


RECIPES: dict[PhaseName, SplitRecipe] = {
    "I": SplitRecipe(
        train=("phase_I_train.csv", "phase_I_valid.csv"), test=("phase_I_test.csv",),
        hint="hint_results/phase_I_test.csv",
        how="official TOP split: train = phase_I_train + phase_I_valid (no model selection "
            "needs a valid split), test = phase_I_test (temporal: test trials started 2014 or "
            "later)"),
    "II": SplitRecipe(
        train=("phase_II_valid.csv",), test=("phase_II_valid.csv",), test_share=0.3,
        how="phase II has only phase_II_valid offline: pooled and re-split, stratified by label "
            "(seed 0): 30% test, 70% train (a random split, not temporal; no HINT predictions)"),
    "III": SplitRecipe(
        train=("phase_III_valid.csv", "phase_III_test.csv"), test=("phase_III_test.csv",),
        test_share=0.5, hint="hint_results/phase_III_test.csv",
        how="phase III has no train file offline: test = a label-stratified half (seed 0) of "
            "phase_III_test (so HINT's predictions cover every test row); train = "
            "phase_III_valid + the other half of phase_III_test"),
}


class SplitSummary(BaseModel):
    phase: PhaseName
    how: str
    files: list[str]
    n_train: int
    n_test: int
    test_positive_rate: float
    train_positive_rate: float
    dropped_test_ids_from_training: int
    hint_file: str | None


@dataclass
class PhaseSplit:
    phase: PhaseName
    train: list[ClassifierExample]
    test: list[ClassifierExample]
    summary: SplitSummary


def real_example(trial: Trial) -> ClassifierExample:
    return make_example(trial.nctid, "real", trial.label, trial.phase, trial.diseases,
                        trial.drugs, trial.criteria, [trial.nctid])


def load_real_trials(top_dir: Path, phases: list[PhaseName]) -> dict[str, Trial]:
    """Every TOP file the phases need plus the rest of the six present, de-duplicated by nctid."""
    needed = {f for p in phases for f in (*RECIPES[p].train, *RECIPES[p].test)}
    missing = sorted(f for f in needed if not (top_dir / f).is_file())
    if missing:
        raise EvalInputError(top_dir, f"missing TOP file(s) {', '.join(missing)} "
                             f"(needed for phase {', '.join(phases)})")
    files = [top_dir / f for f in TOP_FILES if (top_dir / f).is_file()]
    return {t.nctid: t for t in load_top(files)}


def _stratified(ids: list[str], labels: list[int], share: float) -> tuple[list[str], list[str]]:
    """(rest, held) with `share` of ids held out, label-stratified, fixed seed."""
    if not ids:
        return [], []
    strat = labels if min(np.bincount(labels, minlength=2)) >= 2 else None
    rest, held = train_test_split(ids, test_size=share, random_state=SPLIT_SEED, stratify=strat)
    return sorted(rest), sorted(held)


def _ids_in(trials: dict[str, Trial], files: tuple[str, ...]) -> list[str]:
    return sorted(i for i, t in trials.items() if set(t.sources) & set(files))


def _positive_rate(trials: dict[str, Trial], ids: list[str]) -> float:
    return float(np.mean([trials[i].label for i in ids])) if ids else 0.0


def split_phase(trials: dict[str, Trial], phase: PhaseName, top_dir: Path) -> PhaseSplit:
    recipe = RECIPES[phase]
    test = _ids_in(trials, recipe.test)
    if recipe.test_share is not None:
        _, test = _stratified(test, [trials[i].label for i in test], recipe.test_share)
    test_ids = set(test)
    # Test trials that a training file lists too (beyond a pooled file's own re-split).
    other_files = tuple(f for f in recipe.train if f not in recipe.test)
    dropped = len(test_ids & set(_ids_in(trials, other_files)))
    train = [i for i in _ids_in(trials, recipe.train) if i not in test_ids]
    assert not test_ids & set(train), "a test id reached training"
    summary = SplitSummary(
        phase=phase, how=recipe.how,
        files=sorted({*recipe.train, *recipe.test}),
        n_train=len(train), n_test=len(test),
        test_positive_rate=_positive_rate(trials, test),
        train_positive_rate=_positive_rate(trials, train),
        dropped_test_ids_from_training=dropped,
        hint_file=recipe.hint if recipe.hint and (top_dir / recipe.hint).is_file() else None)
    return PhaseSplit(phase, [real_example(trials[i]) for i in train],
                      [real_example(trials[i]) for i in test], summary)


def read_hint_predictions(file: Path) -> dict[str, float]:
    """HINT's published test probabilities by nctid (column `prediction`)."""
    with file.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"nctid", "prediction"} <= set(reader.fieldnames):
            raise EvalInputError(file, "expected columns nctid and prediction")
        out: dict[str, float] = {}
        for row_no, row in enumerate(reader, start=1):
            try:
                out[row["nctid"].strip().upper()] = float(row["prediction"])
            except (TypeError, ValueError):
                raise EvalInputError(file, f"row {row_no}: prediction is not a number") from None
    return out
