"""The typed state one report carries around the loop (the graph wires it; agents read/write it)."""

from __future__ import annotations

import operator
from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel

from trialwright.tools.llm import LLMCall
from trialwright.tools.schema import (
    CheckResult,
    Evidence,
    JudgeVerdict,
    Rationale,
    Spec,
    SyntheticTrial,
)


class NodeTiming(BaseModel):
    node: str
    revision: int
    seconds: float


class Round(BaseModel):
    """The findings of one check+judge round, kept so a rejection can say why."""

    revision: int
    failed_checks: list[CheckResult]
    verdict: JudgeVerdict | None = None


class ReportState(TypedDict, total=False):
    spec: Spec
    evidence: list[Evidence]
    rationale: Rationale | None
    rationale_error: str
    draft: SyntheticTrial | None
    draft_error: str
    checks: list[CheckResult]  # latest round only
    verdict: JudgeVerdict | None  # latest round only
    rounds: Annotated[list[Round], operator.add]
    feedback: str  # findings handed to the next revision
    revision: int
    status: Literal["running", "accepted", "rejected"]
    reject_reasons: list[str]
    llm_calls: Annotated[list[LLMCall], operator.add]
    timings: Annotated[list[NodeTiming], operator.add]
