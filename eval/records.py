"""Real and synthetic trials as one comparable record.

TOP gives only phase, label, conditions, drugs and eligibility text, so every comparison of real
with synthetic uses those fields, rendered for both exactly as `Trial.text()` renders real trials
(the text the store embeds). The synthetic report's other sections (title, summary, arms, outcome)
enter only the privacy checks, through `prose`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trialwright.tools.trials import Trial

_BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)])\s+", re.MULTILINE)
_EXCLUSION = re.compile(r"exclusion criteria\s*:?", re.IGNORECASE)
_INCLUSION = re.compile(r"inclusion criteria\s*:?", re.IGNORECASE)


@dataclass(frozen=True)
class TrialRecord:
    """What real and synthetic trials share, plus the free text a privacy check must see."""

    id: str
    source: str  # "real" or "synthetic"
    label: int
    phase: str
    diseases: tuple[str, ...]
    drugs: tuple[str, ...]
    criteria: str
    text: str  # comparable text: `Trial.text()` format for both sources
    prose: str  # every free-text field (synthetic: whole report; real: criteria)
    raw: str  # the whole report as written (for NCT-id leakage; a rationale may cite evidence ids)
    enrollment: int | None = None
    generator_model: str | None = None
    evidence_ids: tuple[str, ...] = ()


def count_criteria(criteria: str) -> tuple[int, int]:
    """(inclusion, exclusion) criteria in a TOP-style block; an unbulleted section counts one."""
    parts = _EXCLUSION.split(criteria, maxsplit=1)
    inclusion = _INCLUSION.sub("", parts[0])
    exclusion = parts[1] if len(parts) > 1 else ""

    def items(block: str) -> int:
        return len(_BULLET.findall(block)) or int(bool(block.strip()))

    return items(inclusion), items(exclusion)


def from_trial(trial: Trial) -> TrialRecord:
    return TrialRecord(
        id=trial.nctid, source="real", label=trial.label, phase=trial.phase,
        diseases=tuple(trial.diseases), drugs=tuple(trial.drugs), criteria=trial.criteria,
        text=trial.text(), prose=trial.criteria,
        raw=trial.model_dump_json(exclude={"status", "why_stop", "sources"}))


def from_generated(line: dict[str, Any]) -> TrialRecord | None:
    """One line of `reports.jsonl` / `rejected.jsonl` (read by `eval.synthetic_reports`); None
    when it holds no report."""
    report = line.get("report")
    if not report:
        return None
    prov = line.get("provenance") or {}
    # Rendered through `Trial` so the comparable text cannot drift from the real trials' format.
    as_trial = Trial(nctid="NCT00000000", label=report["label"], phase=report["phase"],
                     diseases=report["diseases"], drugs=report["drugs"],
                     criteria=report["criteria"])
    prose = "\n".join([report.get("title", ""), report.get("brief_summary", ""),
                       report.get("primary_outcome", {}).get("measure", ""),
                       report.get("outcome_summary", ""), *report.get("inclusion_criteria", []),
                       *report.get("exclusion_criteria", []),
                       *(f"{a['label']}: {a['description']}" for a in report.get("arms", []))])
    return TrialRecord(
        id=str(line["id"]), source="synthetic", label=int(report["label"]),
        phase=report["phase"], diseases=tuple(report["diseases"]), drugs=tuple(report["drugs"]),
        criteria=report["criteria"], text=as_trial.text(), prose=prose,
        raw=json.dumps(report),
        enrollment=report.get("enrollment"), generator_model=prov.get("generator_model"),
        evidence_ids=tuple(e["nctid"] for e in prov.get("evidence", [])))


def real_records(trials: Iterable[Trial]) -> list[TrialRecord]:
    return [from_trial(t) for t in trials]
