"""The outcome classifier's input: one text recipe for real and synthetic trials, label-blind.

Real TOP rows and synthetic reports share only phase, diseases, drugs and eligibility criteria, so
the text is built from exactly those fields, the same way for both. Fields that state or nearly
determine the outcome (`status`, `why_stop`, the synthetic `outcome_summary`, `label`) are never
read, and outcome words are cut from what remains (a criteria block can still say "terminated").
`read_synthetic` turns a generate run's accepted reports into examples, skipping and counting the
rejected ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from trialwright.eval.synthetic_reports import (
    EvalInputError,
    linked_ids,
    read_generated_lines,
    reports_file,
)
from trialwright.tools.outcome_words import LEAKING_PHRASES
from trialwright.tools.trials import NCT_ID, PHASES, normalise_phase

#: Fields of a real or synthetic record that reveal the label; the text builder never reads them.
LEAKING_FIELDS: tuple[str, ...] = ("status", "why_stop", "outcome_summary", "label")

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


class SyntheticFileSummary(BaseModel):
    file: str
    lines: int
    accepted: int
    skipped_not_accepted: int


def _criteria(report: dict[str, Any]) -> str:
    """TOP-format criteria; rebuilt from the lists when an older file lacks the joined text."""
    if report.get("criteria"):
        return str(report["criteria"])
    inc = "\n".join(f"  - {c}" for c in report.get("inclusion_criteria") or [])
    exc = "\n".join(f"  - {c}" for c in report.get("exclusion_criteria") or [])
    return f"Inclusion Criteria:\n{inc}\n\nExclusion Criteria:\n{exc}"


def example_from_record(record: dict[str, Any], file: Path, line: int) -> ClassifierExample:
    report = record.get("report")
    if not isinstance(report, dict):
        raise EvalInputError(file, "accepted record has no 'report' object", line)
    missing = [k for k in ("phase", "diseases", "drugs") if k not in report]
    if missing or not (report.get("criteria") or report.get("inclusion_criteria")):
        raise EvalInputError(file, f"report lacks {', '.join(missing) or 'criteria'}", line)
    label = record.get("label", report.get("label"))
    if label not in (0, 1):
        raise EvalInputError(file, f"label must be 0 or 1, got {label!r}", line)
    phase = normalise_phase(str(report["phase"]))
    if phase not in PHASES:
        raise EvalInputError(file, f"unknown phase {report['phase']!r}", line)
    return make_example(str(record.get("id") or f"line-{line}"), "synthetic", label, phase,
                        report["diseases"], report["drugs"], _criteria(report),
                        linked_ids(record))


def read_synthetic(path: Path | str) -> tuple[list[ClassifierExample], SyntheticFileSummary]:
    """Accepted reports of a generate run (file or run folder) as examples; any malformed line
    is an error."""
    file = reports_file(path)
    examples: list[ClassifierExample] = []
    lines = skipped = 0
    for line_no, record in read_generated_lines(file):
        lines += 1
        if record.get("status", "accepted") != "accepted":
            skipped += 1
            continue
        examples.append(example_from_record(record, file, line_no))
    if not lines:
        raise EvalInputError(file, "no reports in the file")
    return examples, SyntheticFileSummary(file=str(file), lines=lines, accepted=len(examples),
                                          skipped_not_accepted=skipped)
