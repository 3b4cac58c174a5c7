"""The typed state one report carries around the loop (the graph wires it; agents read/write it)."""

from __future__ import annotations

import operator
from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel
from trialwright.tools.llm import LLMCall
from trialwright.tools.schema import (
    CheckResult,
    Evidence,
    OutcomeReading,
    QualityVerdict,
    Rationale,
    Spec,
    SyntheticTrial,
)


class NodeTiming(BaseModel):
    node: str
    revision: int
    seconds: float


class Round(BaseModel):
    """The findings of one critic round, kept so a rejection can say why. `outcome` / `verdict`
    None: that stage did not run in this round (a failed check stops the round before it)."""

    revision: int
    failed_checks: list[CheckResult]
    outcome: OutcomeReading | None = None
    verdict: QualityVerdict | None = None


class ReportState(TypedDict, total=False):
    spec: Spec
    evidence: list[Evidence]
    rationale: Rationale | None
    rationale_error: str
    topic: dict[str, str]  # the condition/intervention this report is about (set by the reasoner)
    draft: SyntheticTrial | None
    draft_error: str
    checks: list[CheckResult]  # latest round only
    outcome: OutcomeReading | None  # latest round only
    verdict: QualityVerdict | None  # latest round only
    critic_failures: int  # reader/judge answers that were unusable in this revision
    rounds: Annotated[list[Round], operator.add]
    feedback: str  # findings handed to the next revision
    revision: int
    status: Literal["running", "accepted", "rejected"]
    reject_reasons: list[str]
    llm_calls: Annotated[list[LLMCall], operator.add]
    timings: Annotated[list[NodeTiming], operator.add]
