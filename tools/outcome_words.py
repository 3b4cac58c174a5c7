"""The words that state a trial's outcome, in one place: the critic's phrase pre-check reads them,
the label check refuses the opposite ones, and the classifier's text builder cuts them out.

`read_outcome_phrases` is deliberately conservative: it decides only when one outcome class is
stated and no other is, so hedged or mixed texts go to the (label-blind) outcome reader model.
"""

from __future__ import annotations

import re
from typing import Literal

OutcomeClass = Literal["met", "not_met", "stopped_early", "unclear"]

#: Which readings of the outcome text agree with each label (1 = success, 0 = failure).
EXPECTED_READINGS: dict[int, tuple[OutcomeClass, ...]] = {1: ("met",), 0: ("not_met", "stopped_early")}

_ENDPOINT = r"(?:primary\s+)?(?:end\s*-?\s*points?|outcomes?|objectives?|aims?)"
_NOT_MET = (
    r"(?:did|does)\s+not\s+(?:meet|achieve|reach|demonstrate|show|attain)",
    r"fail(?:ed|s|ure)?\s+to\s+(?:meet|achieve|reach|demonstrate|show|attain|improve)",
    r"(?:was|were)\s+not\s+(?:met|achieved|reached|attained)",
    r"not\s+met", r"missed\s+(?:its|the|their)\s+" + _ENDPOINT, _ENDPOINT + r"\s+(?:was|were)\s+missed",
    r"no\s+(?:statistically\s+)?significant\s+(?:difference|improvement|benefit|effect)",
    r"lack\s+of\s+(?:efficacy|benefit)", r"futil(?:e|ity)", r"negative\s+(?:trial|study|result)s?",
    r"(?:was|were)\s+not\s+(?:superior|non-?inferior|effective|efficacious)",
)
_STOPPED = (
    r"(?:was|were)\s+(?:terminated|stopped|halted|discontinued|closed)(?:\s+(?:early|prematurely))?",
    r"terminated\s+(?:early|prematurely)", r"stopped\s+(?:early|prematurely)", r"early\s+termination",
    r"halted\s+(?:early|prematurely)", r"closed\s+(?:early|prematurely)",
    r"(?:poor|slow|insufficient|inadequate)\s+(?:enrollment|enrolment|accrual|recruitment)",
)
_ENDPOINT_MET = (
    r"met\s+(?:its|the|their|both|all|each)\s+(?:co-?)?" + _ENDPOINT,
    _ENDPOINT + r"\s+(?:was|were)\s+(?:met|achieved|reached|attained)",
    r"(?:achieved|reached|attained)\s+(?:its|the|their)\s+" + _ENDPOINT,
    r"successfully\s+(?:met|achieved|demonstrated|reached)",
)
_MET = _ENDPOINT_MET + (
    r"(?:statistically\s+)?significant(?:ly)?\s+(?:improvement|improved|reduction|reduced|"
    r"increase|increased|benefit|superior)",
    r"demonstrated\s+(?:superiority|non-?inferiority|efficacy)",
)


def _rx(parts: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b", re.IGNORECASE)


NOT_MET, STOPPED_EARLY, MET = _rx(_NOT_MET), _rx(_STOPPED), _rx(_MET)
#: A phrase stating a failure or early stop (what a success report must never say).
FAILURE_WORDS = _rx(_NOT_MET + _STOPPED)
#: A phrase stating the primary endpoint was met (what a failure report must never say).
SUCCESS_WORDS = _rx(_ENDPOINT_MET)  # not "significant reduction": a failure may report one
# A met-phrase preceded by a negation ("not met its...") is a not-met statement, not a met one.
_NEGATED = re.compile(r"\b(?:not|never|no|nor|failed\s+to|unable\s+to)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)


def _unnegated(rx: re.Pattern[str], text: str) -> list[str]:
    return [m.group(0) for m in rx.finditer(text) if not _NEGATED.search(text[:m.start()][-40:])]


def read_outcome_phrases(text: str) -> tuple[OutcomeClass | None, str]:
    """(reading, matched phrase) when the text states exactly one outcome class; (None, "") when
    it states none or several (the reader model decides those)."""
    found = {"not_met": [m.group(0) for m in NOT_MET.finditer(text)],
             "stopped_early": [m.group(0) for m in STOPPED_EARLY.finditer(text)],
             "met": _unnegated(MET, text)}
    stated = [k for k, v in found.items() if v]
    if set(stated) == {"stopped_early", "not_met"}:
        return "stopped_early", found["stopped_early"][0]  # stopped and missed: still a failure
    if len(stated) == 1:
        return stated[0], found[stated[0]][0]  # type: ignore[return-value]
    return None, ""


#: Outcome words cut from the classifier's input text (whole words, case-insensitive). Narrow on
#: purpose: "suspension" (a drug form) and "heart failure" (a disease) must survive.
LEAKING_PHRASES: tuple[str, ...] = (
    r"early\s+termination", r"terminat(?:ed|ion|e|es|ing)", r"withdrawn", r"withdrew",
    r"suspended", r"stopped\s+(?:early|prematurely)", r"halted", r"prematurely",
    r"futil(?:e|ity)", r"failed(?:\s+to\s+meet)?", r"did\s+not\s+meet",
    r"met\s+(?:its|the|their)\s+primary\s+(?:end\s*-?\s*point|outcome)s?",
    r"primary\s+(?:end\s*-?\s*point|outcome)s?\s+(?:was|were)\s+(?:not\s+)?"
    r"(?:met|missed|achieved|reached)",
    r"(?:un)?successful(?:ly)?", r"success(?:es)?", r"lack\s+of\s+efficacy",
    r"(?:positive|negative)\s+(?:trials?|studies|study)",  # not "positive result": a lab test
)
