"""Does synthetic data help an outcome classifier on REAL held-out trials? The settings, run.

Per TOP phase, every setting is scored on the same real test rows: baselines (majority class, the
encoder with an untrained head), real-only, synthetic-only (train on synthetic, test on real),
hybrids (real + synthetic at several synthetic:real ratios), and HINT's published predictions.
Synthetic reports drawn from a test trial (anchor, retrieved evidence or cited id) are dropped.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from trialwright.eval.utility.finetune import FineTuneConfig
from trialwright.eval.utility.metrics import (
    METRICS,
    THRESHOLD,
    bootstrap_indices,
    bootstrap_seed_mean,
    mean_roc,
    percentile_ci,
    point_metrics,
)
from trialwright.eval.utility.model import ModelInfo, resolve_classifier_model
from trialwright.eval.utility.results import (
    BootstrapInfo,
    Delta,
    MetricSummary,
    PhaseData,
    RocCurve,
    SettingKind,
    SettingResult,
    SyntheticUse,
    TextRecipe,
    UtilityReport,
)
from trialwright.eval.utility.scorer import Mode, Scorer, labels
from trialwright.eval.utility.splits import (
    PHASE_MEMBERS,
    PhaseName,
    PhaseSplit,
    load_real_trials,
    read_hint_predictions,
    split_phase,
)
from trialwright.eval.utility.texts import (
    LEAKING_FIELDS,
    LEAKING_PHRASES,
    ClassifierExample,
    read_synthetic,
)
from trialwright.tools.settings import Settings
from trialwright.tools.versions import package_versions

VERSIONED = ("torch", "transformers", "scikit-learn", "sentence-transformers", "datasets")
QUICK_MAX_LENGTH = 256  # frozen embeddings: MiniLM was trained at 256 word pieces
Log = Callable[[str], None]


class UtilityConfig(BaseModel):
    mode: Mode = "quick"
    model: str | None = Field(None, description="None: the packaged all-MiniLM-L6-v2")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    phases: list[PhaseName] = Field(default_factory=lambda: ["I", "II", "III"], min_length=1)
    hybrid_ratios: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0])
    n_bootstrap: int = Field(1000, ge=50)
    max_length: int | None = Field(None, ge=16, le=512,
                                   description=f"None: {QUICK_MAX_LENGTH} quick, 512 fine-tune")
    limit: int | None = Field(None, ge=10, description="cap rows per set (smoke runs only)")
    min_per_class: int = Field(2, ge=1, description="a training set needs this many per label")
    finetune: FineTuneConfig = Field(default_factory=FineTuneConfig)

    @property
    def effective_max_length(self) -> int:
        if self.max_length is not None:
            return self.max_length
        return QUICK_MAX_LENGTH if self.mode == "quick" else self.finetune.max_length


@dataclass
class TrainingPlan:
    """One trained setting: which rows it learns from (a seed may pick the synthetic subset)."""

    name: str
    kind: SettingKind
    description: str
    real: list[ClassifierExample]
    synthetic: list[ClassifierExample]
    n_synthetic: int
    ratio: float | None = None
    notes: list[str] = field(default_factory=list)

    def examples(self, seed: int) -> list[ClassifierExample]:
        if self.n_synthetic >= len(self.synthetic):
            return self.real + self.synthetic
        pick = np.random.default_rng(seed).choice(len(self.synthetic), self.n_synthetic,
                                                  replace=False)
        return self.real + [self.synthetic[i] for i in sorted(pick)]


@dataclass
class Scored:
    """Probabilities of one setting on the test rows: one row per seed."""

    probs: np.ndarray
    seeds: list[int]
    seconds: float = 0.0
    losses: list[list[float]] = field(default_factory=list)


def _has_both_labels(examples: list[ClassifierExample], minimum: int) -> bool:
    return bool(examples) and int(np.bincount(labels(examples), minlength=2).min()) >= minimum


def plan_training(real: list[ClassifierExample], synthetic: list[ClassifierExample],
                  ratios: list[float], min_per_class: int) -> tuple[list[TrainingPlan], list[str]]:
    """real-only, synthetic-only and one hybrid per ratio; skipped ones come back with a reason."""
    plans = [TrainingPlan("real", "real", "real training rows only", real, [], 0)]
    skipped: list[str] = []
    if _has_both_labels(synthetic, min_per_class):
        plans.append(TrainingPlan("synthetic", "synthetic",
                                  "synthetic only, tested on real (TSTR)", [], synthetic,
                                  len(synthetic)))
    else:
        skipped.append(f"synthetic: needs >= {min_per_class} usable synthetic reports of each "
                       f"label, has {np.bincount(labels(synthetic), minlength=2).tolist()}")
    used: set[int] = set()
    for ratio in sorted(ratios):
        want = round(ratio * len(real))
        n = min(want, len(synthetic))
        if n == 0 or n in used:
            skipped.append(f"hybrid_{ratio:g}: {len(synthetic)} usable synthetic reports give the "
                           f"same training set as a smaller ratio" if n else
                           f"hybrid_{ratio:g}: no usable synthetic reports")
            continue
        used.add(n)
        notes = [f"asked for {want} synthetic rows, only {n} usable"] if n < want else []
        plans.append(TrainingPlan(f"hybrid_{ratio:g}", "hybrid",
                                  f"real + synthetic at {ratio:g}:1 synthetic:real", real,
                                  synthetic, n, ratio, notes))
    return plans, skipped


def _cap(examples: list[ClassifierExample], limit: int | None) -> list[ClassifierExample]:
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.random.default_rng(0).choice(len(examples), limit, replace=False)
    return [examples[i] for i in sorted(keep)]


def synthetic_for_phase(synthetic: list[ClassifierExample], split: PhaseSplit,
                        ) -> tuple[list[ClassifierExample], SyntheticUse]:
    """The phase's synthetic reports, minus any drawn from one of its test trials."""
    test_ids = {e.uid for e in split.test}
    in_phase = [e for e in synthetic if e.phase in PHASE_MEMBERS[split.phase]]
    dropped = [e for e in in_phase if test_ids & set(e.linked_ids)]
    usable = [e for e in in_phase if not test_ids & set(e.linked_ids)]
    return usable, SyntheticUse(
        in_phase=len(in_phase), dropped_linked_to_test=len(dropped),
        dropped_example_ids=[e.uid for e in dropped[:20]], usable=len(usable),
        usable_positive_rate=float(labels(usable).mean()) if usable else None)


class PhaseMetrics:
    """Turns each setting's probabilities into metrics with CIs on shared bootstrap draws."""

    def __init__(self, phase: PhaseName, test: list[ClassifierExample], n_boot: int):
        self.phase, self.y = phase, labels(test)
        self.idx = bootstrap_indices(len(test), n_boot, seed=0)
        self.draws: dict[str, dict[str, np.ndarray]] = {}

    def result(self, name: str, kind: SettingKind, description: str, model_id: str,
               mode: str, scored: Scored, n_real: int, n_synthetic: int,
               ratio: float | None = None, notes: list[str] | None = None) -> SettingResult:
        per_seed = [point_metrics(self.y, p) for p in scored.probs]
        draws = self.draws[name] = bootstrap_seed_mean(self.y, scored.probs, self.idx)
        summary = {}
        for m in METRICS:
            values = np.array([d[m] for d in per_seed])
            summary[m] = MetricSummary(
                mean=float(np.nanmean(values)),
                std=float(np.std(values, ddof=1)) if len(values) > 1 else None,
                ci95=percentile_ci(draws[m]))
        fpr, tpr = mean_roc(self.y, scored.probs)
        return SettingResult(
            phase=self.phase, setting=name, kind=kind, description=description,
            model_id=model_id, mode=mode,  # type: ignore[arg-type]
            seeds=scored.seeds, synthetic_ratio=ratio,
            n_train_real=n_real, n_train_synthetic=n_synthetic, n_test=len(self.y),
            metrics=summary,
            per_seed=[{"seed": s, **d} for s, d in zip(scored.seeds or [None], per_seed,
                                                       strict=True)],
            roc=RocCurve(fpr=fpr, tpr=tpr), train_seconds=round(scored.seconds, 2),
            train_losses=[[round(x, 4) for x in run] for run in scored.losses if run],
            notes=notes or [])

    def add_deltas(self, results: list[SettingResult]) -> None:
        """Paired bootstrap difference to real-only for every other setting."""
        real = next((r for r in results if r.setting == "real"), None)
        if real is None:
            return
        for r in results:
            if r.setting == "real":
                continue
            r.delta_vs_real = {m: Delta(
                diff=r.metrics[m].mean - real.metrics[m].mean,
                ci95=percentile_ci(self.draws[r.setting][m] - self.draws["real"][m]))
                for m in METRICS}


def make_scorer(config: UtilityConfig, model: ModelInfo, settings: Settings | None,
                work_dir: Path | None) -> Scorer:
    if config.mode == "quick":
        from trialwright.eval.utility.probe import FrozenProbe

        return FrozenProbe(model, config.effective_max_length, settings)
    from trialwright.eval.utility.finetune import FineTuner

    ft = config.finetune.model_copy(update={"max_length": config.effective_max_length})
    return FineTuner(model, ft, work_dir)


def _run_trained(scorer: Scorer, plan: TrainingPlan, test: list[ClassifierExample],
                 seeds: list[int], log: Log) -> Scored:
    probs, seconds, losses = [], 0.0, []
    for seed in seeds:
        fit = scorer.fit_predict(plan.examples(seed), test, seed)
        probs.append(fit.probs)
        seconds += fit.seconds
        losses.append(fit.train_losses)
        log(f"  {plan.name} seed {seed}: {fit.seconds:.1f}s {fit.details or ''}")
    return Scored(np.stack(probs), seeds, seconds, losses)


def evaluate_phase(split: PhaseSplit, synthetic: list[ClassifierExample], scorer: Scorer,
                   model: ModelInfo, config: UtilityConfig, top_dir: Path, log: Log,
                   predictions: list[dict[str, Any]]) -> tuple[PhaseData, list[SettingResult]]:
    train, test = _cap(split.train, config.limit), _cap(split.test, config.limit)
    usable, use = synthetic_for_phase(synthetic, split)
    usable = _cap(usable, config.limit)
    plans, skipped = plan_training(train, usable, config.hybrid_ratios, config.min_per_class)
    scoring = PhaseMetrics(split.phase, test, config.n_bootstrap)
    model_id = f"{model.name} ({config.mode})"
    results: list[SettingResult] = []

    def record(name: str, scored: Scored, **kw: Any) -> None:
        results.append(scoring.result(name, scored=scored, **kw))
        for seed, probs in zip(scored.seeds or [None], scored.probs, strict=True):
            predictions.extend({"phase": split.phase, "setting": name, "seed": seed, "id": e.uid,
                                "label": e.label, "prob": round(float(p), 6)}
                               for e, p in zip(test, probs, strict=True))

    prior = float(labels(train).mean())
    record("majority", Scored(np.full((1, len(test)), prior), []), kind="baseline",
           description=f"predicts the training success rate ({prior:.3f}) for every trial",
           model_id="majority class", mode="none", n_real=len(train), n_synthetic=0)
    log(f"phase {split.phase}: untuned head")
    untuned = [scorer.untuned(test, s) for s in config.seeds]
    record("untuned", Scored(np.stack([f.probs for f in untuned]), config.seeds),
           kind="baseline", description="the encoder with a new, untrained head (no fine-tuning)",
           model_id=model_id, mode=config.mode, n_real=0, n_synthetic=0)
    for plan in plans:
        log(f"phase {split.phase}: {plan.name} ({len(plan.real)} real + {plan.n_synthetic} "
            f"synthetic)")
        record(plan.name, _run_trained(scorer, plan, test, config.seeds, log), kind=plan.kind,
               description=plan.description, model_id=model_id, mode=config.mode,
               n_real=len(plan.real), n_synthetic=plan.n_synthetic, ratio=plan.ratio,
               notes=plan.notes)
    if split.summary.hint_file:
        hint = read_hint_predictions(top_dir / split.summary.hint_file)
        missing = [e.uid for e in test if e.uid not in hint]
        if missing:
            skipped.append(f"hint: {len(missing)} test rows have no HINT prediction")
        else:
            record("hint", Scored(np.array([[hint[e.uid] for e in test]]), []), kind="reference",
                   description="HINT (Fu et al. 2022), its published test predictions, "
                               "on exactly these rows",
                   model_id="HINT (published predictions)", mode="published", n_real=0,
                   n_synthetic=0, notes=["trained by its authors on the full upstream TOP "
                                         "training files, not on this run's rows"])
    scoring.add_deltas(results)
    return PhaseData(split=split.summary, synthetic=use, skipped=skipped), results


def run_utility_eval(config: UtilityConfig, real_dir: Path, synthetic_file: Path, *,
                     settings: Settings | None = None, scorer: Scorer | None = None,
                     work_dir: Path | None = None, log: Log = lambda _msg: None,
                     ) -> tuple[UtilityReport, list[dict[str, Any]]]:
    """Every setting for every requested phase; returns the report and per-row predictions."""
    from trialwright.eval.utility.finetune import device_name

    start = time.perf_counter()
    model = resolve_classifier_model(config.model)  # cheapest check first
    synthetic, synthetic_summary = read_synthetic(synthetic_file)
    trials = load_real_trials(real_dir, config.phases)
    scorer = scorer or make_scorer(config, model, settings, work_dir)
    phases, results, predictions = [], [], []
    leaks = {"real": 0, "synthetic": sum(e.leaks_removed for e in synthetic)}
    for phase in config.phases:
        split = split_phase(trials, phase, real_dir)
        leaks["real"] += sum(e.leaks_removed for e in split.train + split.test)
        data, phase_results = evaluate_phase(split, synthetic, scorer, model, config, real_dir,
                                             log, predictions)
        phases.append(data)
        results.extend(phase_results)
    report = UtilityReport(
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), mode=config.mode,
        model=model, device=device_name() if config.mode == "finetune" else "cpu",
        seeds=config.seeds, threshold=THRESHOLD,
        bootstrap=BootstrapInfo(n=config.n_bootstrap, method=(
            "percentile; test rows resampled with replacement, each draw scored per seed and "
            "averaged over seeds; the same draws for every setting of a phase (paired deltas)")),
        text=TextRecipe(fields=["phase", "diseases", "drugs", "eligibility criteria"],
                        excluded_fields=[*LEAKING_FIELDS, "title", "brief_summary", "arms",
                                         "design", "primary_outcome", "enrollment"],
                        removed_phrases=list(LEAKING_PHRASES),
                        max_length=config.effective_max_length, leak_words_removed=leaks),
        real_dir=str(real_dir), synthetic_file=synthetic_summary,
        finetune=config.finetune if config.mode == "finetune" else None, limit=config.limit,
        phases=phases, settings=results, runtime_seconds=round(time.perf_counter() - start, 1),
        versions=package_versions(VERSIONED))
    return report, predictions
