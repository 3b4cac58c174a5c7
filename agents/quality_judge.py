"""Quality judge, blinded: a checklist of yes/no questions about the record WITHOUT its outcome.

Blinding is structural: the judge's prompt is built from `blinded_view`, which has no label, no
outcome text, no requested target and no outcome-arguing reasons, so its verdict cannot depend on
the claimed outcome. The model answers "yes"/"no" per question, after reading the record (small models collapse
to one answer for every boolean field, and read questions better after the record); code scores them (share of yes; a "no" to a veto
question rejects) and applies the acceptance rule: a fixed share, or a threshold calibrated on
real trials of the report's own outcome (`agents/calibration.py`).

Checklists are prompt files, `- [veto] id: question` per line; only the questions a checklist
declares are asked and scored.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model
from trialwright.agents.common import (
    PROMPTS,
    AgentDeps,
    ask,
    call_seed,
    load_prompt,
    timed,
)
from trialwright.agents.state import ReportState
from trialwright.tools.schema import QualityVerdict, SyntheticTrial

_LINE = re.compile(r"^-\s*(\[veto\]\s*)?([a-z][a-z0-9_]*)\s*:\s*(.+)$")
#: Fields of a report the blinded judge never sees (they state or argue the outcome).
HIDDEN_FIELDS = frozenset({"label", "outcome_summary"})


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    veto: bool


@dataclass(frozen=True)
class Checklist:
    name: str
    questions: tuple[Question, ...]
    sha256: str

    @property
    def answer_model(self) -> type[BaseModel]:
        return _answer_model(self)

    def render(self) -> str:
        return "\n".join(f"- {q.id}: {q.text}" for q in self.questions)


class ChecklistError(ValueError):
    pass


@cache
def load_checklist(name: str) -> Checklist:
    """`agents/prompts/<name>.md`; a line that is not a question is an error, not ignored."""
    path = PROMPTS / f"{name}.md"
    if not path.is_file():
        raise ChecklistError(f"no checklist file {name}.md in agents/prompts")
    raw = path.read_text()
    questions = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if not m:
            raise ChecklistError(f"{name}.md line {n}: expected '- [veto] id: question'")
        questions.append(Question(id=m.group(2), text=m.group(3).strip(), veto=bool(m.group(1))))
    if not questions or len({q.id for q in questions}) != len(questions):
        raise ChecklistError(f"{name}.md: needs at least one question, with unique ids")
    return Checklist(name, tuple(questions), hashlib.sha256(raw.encode()).hexdigest())


@cache
def _answer_model(checklist: Checklist) -> type[BaseModel]:
    fields: dict[str, Any] = {q.id: (Literal["yes", "no"], Field(description=q.text))
                              for q in checklist.questions}
    fields["feedback"] = (str, Field("", max_length=240, description="one line: what to fix"))
    return create_model("ChecklistAnswer", **fields)


def blinded_view(draft: SyntheticTrial) -> str:
    """The record as the quality judge sees it: every field but the outcome."""
    return json.dumps(draft.model_dump(exclude=set(HIDDEN_FIELDS)), indent=1, ensure_ascii=False)


def score_answers(checklist: Checklist, answers: dict[str, bool]) -> tuple[float, list[str]]:
    """(share of yes, veto questions answered no), over the checklist's own questions only."""
    asked = checklist.questions
    yes = sum(bool(answers.get(q.id)) for q in asked)
    return round(yes / len(asked), 4), [q.id for q in asked if q.veto and not answers.get(q.id)]


def judge_prompt_fields(checklist: Checklist, draft: SyntheticTrial) -> dict[str, str]:
    return {"questions": checklist.render(), "record": blinded_view(draft)}


async def ask_checklist(deps: AgentDeps, checklist: Checklist, draft: SyntheticTrial, *,
                        seed: int) -> tuple[BaseModel | None, dict[str, Any]]:
    """One blinded checklist call (the critic and calibration ask the judge the same way)."""
    return await ask(deps.judge, load_prompt("quality_judge"), checklist.answer_model, node="judge",
                     seed=seed, repairs=deps.settings.parse_retries,
                     **judge_prompt_fields(checklist, draft))


def answers_of(answer: BaseModel, checklist: Checklist) -> dict[str, bool]:
    return {q.id: getattr(answer, q.id) == "yes" for q in checklist.questions}


def verdict_from(answer: BaseModel, checklist: Checklist, deps: AgentDeps, label: int) -> QualityVerdict:
    answers = answers_of(answer, checklist)
    score, vetoed = score_answers(checklist, answers)
    calibration = deps.calibration
    threshold = (calibration.threshold(label) if calibration is not None
                 else deps.settings.quality_min_share)
    return QualityVerdict(judge_model=deps.judge.model_id, checklist=checklist.name, answers=answers,
                          vetoed=vetoed, score=score, threshold=threshold,
                          calibration=calibration.id if calibration is not None else None,
                          accepted=not vetoed and score >= threshold,
                          feedback=str(getattr(answer, "feedback", ""))[:240])


async def judge_quality(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, draft, revision = state["spec"], state["draft"], state.get("revision", 0)
    assert draft is not None, "the judge only sees reports that passed the checks"
    checklist = load_checklist(deps.rubric)
    failures = state.get("critic_failures", 0)
    value, update = await ask_checklist(deps, checklist, draft,
                                        seed=call_seed(spec, revision, "judge") + failures)
    verdict = verdict_from(value, checklist, deps, spec.label) if value is not None else None
    return {"verdict": verdict, "critic_failures": failures + (value is None), **update,
            **timed("judge", revision, t0)}
