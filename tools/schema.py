"""Typed records of generation: the spec, evidence, rationale, the synthetic report, verdicts.

`SyntheticTrial` holds TOP's fields (phase, diseases, drugs, eligibility criteria as
"Inclusion Criteria: … Exclusion Criteria: …", label) plus the sections of a
ClinicalTrials.gov record. `draft_model_for` narrows it per spec, so a constrained decoder can
only write the requested phase and label and the conditions/interventions already chosen.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, create_model

from tools.trials import Phase

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
    claim: str = Field(max_length=300)
    evidence_ids: list[str] = Field(min_length=1, max_length=3)


class Rationale(BaseModel):
    """Why a trial like this would succeed or fail, citing the retrieved trials."""

    condition: str = Field(max_length=120)
    intervention: str = Field(max_length=120)
    reasons: list[Reason] = Field(min_length=2, max_length=4)


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


def draft_model_for(spec: Spec, diseases: list[str], drugs: list[str]) -> type[SyntheticTrial]:
    """`SyntheticTrial` with the spec's phase/label and the chosen diseases/drugs as enums."""
    return create_model(
        "SyntheticTrial",
        __base__=SyntheticTrial,
        phase=(Literal[spec.phase], ...),  # type: ignore[valid-type]
        label=(Literal[spec.label], ...),  # type: ignore[valid-type]
        diseases=(list[Literal[tuple(diseases)]], Field(min_length=1, max_length=4)),  # type: ignore[misc]
        drugs=(list[Literal[tuple(drugs)]], Field(min_length=1, max_length=4)),  # type: ignore[misc]
    )


class CheckResult(BaseModel):
    name: str
    passed: bool
    message: str = ""
    target: Literal["reasoner", "drafter"] = "drafter"  # who should fix a failure


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


def _options(given: str | None, pool: list[str], limit: int = 12) -> tuple[str, ...]:
    if given:
        return (given,)
    return tuple(dict.fromkeys(x for x in pool if x))[:limit] or ("unspecified",)


def rationale_model_for(spec: Spec, evidence: list[Evidence]) -> type[Rationale]:
    """`Rationale` whose ids must be retrieved ids and whose topic comes from the spec/evidence."""
    ids = tuple(e.nctid for e in evidence) or ("none",)
    reason = create_model("Reason", __base__=Reason,
                          evidence_ids=(list[Literal[ids]], Field(min_length=1, max_length=3)))  # type: ignore[valid-type]
    return create_model(
        "Rationale", __base__=Rationale,
        condition=(Literal[_options(spec.condition, [d for e in evidence for d in e.diseases])], ...),  # type: ignore[misc]
        intervention=(Literal[_options(spec.intervention, [d for e in evidence for d in e.drugs])], ...),  # type: ignore[misc]
        reasons=(list[reason], Field(min_length=2, max_length=4)),  # type: ignore[valid-type]
    )
