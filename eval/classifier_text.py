"""The outcome classifier's input: one text recipe for real and synthetic trials, label-blind.

Real TOP rows and synthetic reports share only phase, diseases, drugs and eligibility criteria, so
the text is built from exactly those fields, the same way for both. Fields that state or nearly
determine the outcome (`status`, `why_stop`, the synthetic `outcome_summary`, `label`) are never
read, and outcome words are cut from what remains (a criteria block can still say "terminated").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from trialwright.tools.trials import NCT_ID

#: Fields of a real or synthetic record that reveal the label; the text builder never reads them.
LEAKING_FIELDS: tuple[str, ...] = ("status", "why_stop", "outcome_summary", "label")

#: Outcome words and phrases removed from the classifier text (case-insensitive, whole words).
#: Narrow on purpose: "suspension" (a drug form) and "heart failure" (a disease) must survive.
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
_LEAK_RE = re.compile(r"\b(?:" + "|".join(LEAKING_PHRASES) + r")\b", re.IGNORECASE)

Source = Literal["real", "synthetic"]


class ClassifierExample(BaseModel):
    """One labelled text for the classifier, with the ids it must never share with a test split."""

    uid: str = Field(description="NCT id (real) or report id (synthetic)")
    source: Source
    label: Literal[0, 1]
    phase: str
    text: str
    linked_ids: list[str] = Field(default_factory=list,
                                  description="real NCT ids this example is or was drawn from")
    leaks_removed: int = Field(0, description="outcome words cut from the text")


def find_leaks(text: str) -> list[str]:
    """The outcome words in `text` that `scrub_leaks` would remove."""
    return [m.group(0) for m in _LEAK_RE.finditer(text)]


def scrub_leaks(text: str) -> str:
    """`text` without outcome words and NCT ids, whitespace collapsed."""
    text = NCT_ID.sub(" ", _LEAK_RE.sub(" ", text))
    return " ".join(text.split())


def compose_text(phase: str, diseases: Iterable[str], drugs: Iterable[str], criteria: str) -> str:
    """The one recipe for real and synthetic trials (names lower-cased as TOP writes them)."""
    return (f"{phase.strip().lower()}. Conditions: {_names(diseases)}. "
            f"Interventions: {_names(drugs)}. Eligibility: {criteria}")


def build_text(phase: str, diseases: Iterable[str], drugs: Iterable[str], criteria: str) -> str:
    return scrub_leaks(compose_text(phase, diseases, drugs, criteria))


def make_example(uid: str, source: Source, label: int, phase: str, diseases: Iterable[str],
                 drugs: Iterable[str], criteria: str,
                 linked_ids: Iterable[str]) -> ClassifierExample:
    """The only way examples are made, so real and synthetic texts cannot drift apart."""
    raw = compose_text(phase, diseases, drugs, criteria)
    return ClassifierExample(uid=uid, source=source, label=label,  # type: ignore[arg-type]
                             phase=phase, text=scrub_leaks(raw), linked_ids=list(linked_ids),
                             leaks_removed=len(find_leaks(raw)))


def _names(values: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(v.strip().lower() for v in values if v.strip()))
