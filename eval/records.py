"""Real and synthetic trials as one comparable record, read from files.

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
from pathlib import Path
from typing import Any

from tools.trials import Trial
from tools.writer import read_jsonl

_BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)])\s+", re.MULTILINE)
_EXCLUSION = re.compile(r"exclusion criteria\s*:?", re.IGNORECASE)
_INCLUSION = re.compile(r"inclusion criteria\s*:?", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")


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


def words(text: str) -> list[str]:
    """Lower-case word tokens, the same as the generation-time copy check (`tools.checks`)."""
    return _WORD.findall(text.lower())


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
    """One line of `reports.jsonl` / `rejected.jsonl`; None when it holds no report."""
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


def read_generated(path: Path, include_rejected: bool = False) -> list[TrialRecord]:
    """Reports of a generation run: a `reports.jsonl` file, or a run folder holding one."""
    path = Path(path)
    files = [path / "reports.jsonl"] if path.is_dir() else [path]
    if include_rejected:
        files.append(files[0].with_name("rejected.jsonl"))
    missing = [f for f in files[:1] if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no generated reports there")
    return [r for f in files for line in read_jsonl(f) if (r := from_generated(line))]


def real_records(trials: Iterable[Trial]) -> list[TrialRecord]:
    return [from_trial(t) for t in trials]
