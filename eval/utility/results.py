"""The typed content of `metrics.json`: what the utility evaluation measured and how.

Kept free of torch and plotting so the card (and other readers) can load results cheaply.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from trialwright.eval.utility.finetune import FineTuneConfig
from trialwright.eval.utility.model import ModelInfo
from trialwright.eval.utility.splits import PhaseName, SplitSummary
from trialwright.eval.utility.texts import SyntheticFileSummary

SettingKind = Literal["baseline", "real", "synthetic", "hybrid", "reference"]


class MetricSummary(BaseModel):
    mean: float = Field(description="mean over seeds (or the single value of a deterministic "
                                    "setting)")
    std: float | None = Field(description="sample std over seeds (ddof=1); None for one value")
    ci95: tuple[float, float] = Field(description="bootstrap percentile 95% CI of the mean")


class Delta(BaseModel):
    """This setting minus real-only, on the same bootstrap draws (paired)."""

    diff: float
    ci95: tuple[float, float]


class RocCurve(BaseModel):
    fpr: list[float]
    tpr: list[float]


class SettingResult(BaseModel):
    phase: PhaseName
    setting: str = Field(description="majority | untuned | real | synthetic | hybrid_<r> | hint")
    kind: SettingKind
    description: str
    model_id: str = Field(description="the encoder, or what produced the scores")
    mode: Literal["quick", "finetune", "none", "published"]
    seeds: list[int]
    synthetic_ratio: float | None = Field(None, description="synthetic:real training rows asked")
    n_train_real: int
    n_train_synthetic: int
    n_test: int
    metrics: dict[str, MetricSummary]
    per_seed: list[dict[str, float | None]] = Field(
        description="every metric per seed (key 'seed'; None for a seedless setting)")
    delta_vs_real: dict[str, Delta] | None = None
    roc: RocCurve
    train_seconds: float = 0.0
    train_losses: list[list[float]] = Field(default_factory=list,
                                            description="logged training loss per seed (fine-tune)")
    notes: list[str] = Field(default_factory=list)


class SyntheticUse(BaseModel):
    """How one phase used the synthetic file."""

    in_phase: int = Field(description="accepted reports whose phase belongs to this phase group")
    dropped_linked_to_test: int = Field(description="anchor/evidence/cited id is a test id")
    dropped_example_ids: list[str] = Field(default_factory=list)
    usable: int
    usable_positive_rate: float | None


class PhaseData(BaseModel):
    split: SplitSummary
    synthetic: SyntheticUse
    skipped: list[str] = Field(default_factory=list, description="settings not run, and why")


class TextRecipe(BaseModel):
    fields: list[str]
    excluded_fields: list[str]
    removed_phrases: list[str]
    max_length: int
    leak_words_removed: dict[str, int] = Field(description="outcome words cut, by source")


class BootstrapInfo(BaseModel):
    n: int
    level: float = 0.95
    method: str


class UtilityReport(BaseModel):
    created_at: str
    mode: Literal["quick", "finetune"]
    model: ModelInfo
    device: str
    seeds: list[int]
    threshold: float
    bootstrap: BootstrapInfo
    text: TextRecipe
    real_dir: str
    synthetic_file: SyntheticFileSummary
    finetune: FineTuneConfig | None = None
    limit: int | None = Field(None, description="rows per set were capped (smoke run)")
    phases: list[PhaseData]
    settings: list[SettingResult]
    runtime_seconds: float
    versions: dict[str, str] = Field(default_factory=dict)
