"""Typed records of generation: the spec, evidence, rationale, the synthetic report, verdicts.

`SyntheticTrial` holds TOP's fields (phase, diseases, drugs, eligibility criteria as
"Inclusion Criteria: … Exclusion Criteria: …", label) plus the sections of a
ClinicalTrials.gov record. Per call, `allowed` values (the spec's phase and label, the chosen
conditions/interventions, the retrieved ids) narrow a model twice: as enums in the JSON schema
a constrained decoder follows, and as a validation rule for endpoints that ignore the schema.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, computed_field, model_validator
from trialwright.tools.trials import Phase

Label = Literal[0, 1]
LABEL_WORD = {1: "success", 0: "failure"}


class Spec(BaseModel):
    """What to generate: one report."""

    spec_id: str
    phase: Phase
    label: Label
    condition: str | None = None
    intervention: str | None = None
    anchor_id: str | None = Field(None, description="real trial the planner drew the topic from")
    seed: int = 0


class Evidence(BaseModel):
    """A retrieved real trial, label-blind text only (no status / why_stop)."""

    nctid: str
    score: float
    phase: str
    label: int
    diseases: list[str]
    drugs: list[str]
    text: str


class Reason(BaseModel):
    claim: str = Field(max_length=240)
    evidence_ids: list[str] = Field(min_length=1, max_length=3)


class Rationale(BaseModel):
    """Why a trial like this would succeed or fail, citing the retrieved trials."""

    condition: str = Field(max_length=120)
    intervention: str = Field(max_length=120)
    reasons: list[Reason] = Field(min_length=2, max_length=3)

    @model_validator(mode="after")
    def _within_allowed(self, info: ValidationInfo) -> Rationale:
        cited = [i for r in self.reasons for i in r.evidence_ids]
        return enforce_allowed(self, info, {"evidence_ids": cited})


class Arm(BaseModel):
    label: str = Field(max_length=80)
    type: Literal["Experimental", "Active Comparator", "Placebo Comparator", "No Intervention",
                  "Other"]
    description: str = Field(max_length=240)


class Design(BaseModel):
    allocation: Literal["Randomized", "Non-Randomized", "N/A"]
    intervention_model: Literal["Single Group Assignment", "Parallel Assignment",
                                "Crossover Assignment", "Sequential Assignment",
                                "Factorial Assignment"]
    masking: Literal["None (Open Label)", "Single", "Double", "Triple", "Quadruple"]
    primary_purpose: Literal["Treatment", "Prevention", "Supportive Care", "Diagnostic",
                             "Basic Science", "Health Services Research", "Screening", "Other"]


class Outcome(BaseModel):
    measure: str = Field(max_length=160)
    time_frame: str = Field(max_length=60)


class SyntheticTrial(BaseModel):
    """A synthetic trial report (what the drafter writes)."""

    title: str = Field(max_length=200)
    brief_summary: str = Field(max_length=700)
    phase: Phase
    diseases: list[str] = Field(min_length=1, max_length=4)
    drugs: list[str] = Field(min_length=1, max_length=4)
    design: Design
    arms: list[Arm] = Field(min_length=1, max_length=3)
    primary_outcome: Outcome
    enrollment: int = Field(ge=1, le=100_000)
    minimum_age_years: int = Field(ge=0, le=100)
    maximum_age_years: int | None = Field(None, ge=0, le=120)
    inclusion_criteria: list[str] = Field(min_length=1, max_length=8)
    exclusion_criteria: list[str] = Field(min_length=1, max_length=8)
    outcome_summary: str = Field(max_length=500, description="what happened and why")
    label: Label

    @model_validator(mode="after")
    def _within_allowed(self, info: ValidationInfo) -> SyntheticTrial:
        return enforce_allowed(self, info)

    @property
    def criteria(self) -> str:
        """TOP's eligibility text format."""
        inc = "\n".join(f"  - {c}" for c in self.inclusion_criteria)
        exc = "\n".join(f"  - {c}" for c in self.exclusion_criteria)
        return f"Inclusion Criteria:\n{inc}\n\nExclusion Criteria:\n{exc}"

    def prose(self) -> str:
        """All free text the model wrote, for copy and id checks."""
        parts = [self.title, self.brief_summary, self.primary_outcome.measure,
                 self.outcome_summary, *self.inclusion_criteria, *self.exclusion_criteria,
                 *(f"{a.label}: {a.description}" for a in self.arms)]
        return "\n".join(parts)


CheckStatus = Literal["passed", "failed", "skipped"]


class CheckResult(BaseModel):
    name: str
    status: CheckStatus
    message: str = ""
    # Who fixes a failure: the reasoner, the drafter (whole report), or only the outcome section.
    target: Literal["reasoner", "drafter", "outcome"] = "drafter"

    @classmethod
    def ok(cls, name: str, target: str = "drafter") -> CheckResult:
        return cls(name=name, status="passed", target=target)  # type: ignore[arg-type]

    @classmethod
    def fail(cls, name: str, message: str, target: str = "drafter") -> CheckResult:
        return cls(name=name, status="failed", message=message, target=target)  # type: ignore[arg-type]

    @classmethod
    def skip(cls, name: str, why: str) -> CheckResult:
        return cls(name=name, status="skipped", message=why)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """Does not block acceptance. A skipped check is recorded as `skipped`, never `passed`."""
        return self.status != "failed"


OutcomeClass = Literal["met", "not_met", "stopped_early", "unclear"]


class OutcomeAnswer(BaseModel):
    """What the outcome reader writes: one closed answer about the outcome text alone."""

    reading: OutcomeClass = Field(description="met = the primary endpoint was met; not_met = it "
                                  "was not met; stopped_early = the trial stopped before the end; "
                                  "unclear = the text does not say")


class OutcomeReading(BaseModel):
    """How the outcome text reads to a reader that was not told the label, and whether it agrees."""

    reading: OutcomeClass
    method: Literal["phrases", "model"]
    reader_model: str | None = None
    matched: str = ""  # the phrase that decided, for `phrases`
    expected: list[OutcomeClass]
    agrees: bool


class OutcomeRewrite(BaseModel):
    """A revision of the outcome section only (the rest of the report stands)."""

    outcome_summary: str = Field(max_length=500, description="what happened and why")


class QualityVerdict(BaseModel):
    """The blinded quality judge's checklist answers, scored in code, and the rule applied."""

    judge_model: str
    checklist: str
    answers: dict[str, bool]
    vetoed: list[str] = Field(default_factory=list, description="veto questions answered no")
    score: float = Field(description="share of checklist questions answered yes")
    threshold: float
    calibration: str | None = Field(None, description="calibration id, None = fixed threshold")
    accepted: bool
    feedback: str = ""


class JudgeScores(BaseModel):
    label_faithfulness: int = Field(ge=1, le=5)
    internal_consistency: int = Field(ge=1, le=5)
    clinical_plausibility: int = Field(ge=1, le=5)
    realism: int = Field(ge=1, le=5)
    grounding: int = Field(ge=1, le=5)


class JudgeOutput(BaseModel):
    """What the judge model writes."""

    scores: JudgeScores
    reasons: str = Field(max_length=600, description="one short reason per low score")
    verdict: Literal["accept", "revise"]
    feedback: str = Field(max_length=400, description="what the drafter must change")


class JudgeVerdict(JudgeOutput):
    """A judge's output plus who judged and what we decided from it."""

    judge_model: str
    rubric: str
    mean_score: float
    accepted: bool



Allowed = Mapping[str, Sequence[Any]]


def enforce_allowed(obj: BaseModel, info: ValidationInfo,
                    extra: Mapping[str, list[Any]] | None = None) -> Any:
    """Refuse values outside `context["allowed"]` (field -> allowed values)."""
    allowed: Allowed = (info.context or {}).get("allowed") or {}
    for name, options in allowed.items():
        value = (extra or {}).get(name, getattr(obj, name, None))
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if v not in options]
        if bad:
            raise ValueError(f"{name}: {bad[0]!r} is not allowed; choose from {list(options)}")
    return obj


@cache
def _base_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def constrained_schema(model: type[BaseModel], allowed: Allowed | None = None) -> dict[str, Any]:
    """The model's JSON schema with `allowed` values as enums (top-level or in a sub-model)."""
    schema = _base_schema(model)
    if not allowed:
        return schema
    schema = copy.deepcopy(schema)
    for name, options in allowed.items():
        # A top-level field wins; only fields absent there are looked up in sub-models, so a
        # sub-model's same-named field (an arm's `label`) is never narrowed by mistake.
        holders = [schema] if name in schema.get("properties", {}) else [
            d for d in schema.get("$defs", {}).values() if name in d.get("properties", {})]
        for holder in holders:
            prop = holder["properties"][name]
            enum = {"enum": list(options)}
            if prop.get("type") == "array":
                prop["items"] = enum
            else:
                holder["properties"][name] = {**enum, "title": prop.get("title", name)}
    return schema
