"""The one reader of what `trialwright generate` writes (`reports.jsonl`, `rejected.jsonl`).

eval/ never imports the generator: the file is the contract. Strict like the TOP loader: a bad
line is an `EvalInputError` naming the file and line. The quality eval turns the lines into
`eval.records.TrialRecord`s; the classifier eval (`read_synthetic`) into examples, skipping and
counting rejected reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from trialwright.eval.classifier_text import ClassifierExample, make_example
from trialwright.tools.trials import NCT_ID, PHASES, normalise_phase


class EvalInputError(ValueError):
    """Bad evaluation input; the message names the file (and line, where there is one)."""

    def __init__(self, file: Path | str, message: str, line: int | None = None):
        self.file, self.line = str(file), line
        super().__init__(f"{file}{f', line {line}' if line is not None else ''}: {message}")


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


def linked_ids(record: dict[str, Any]) -> list[str]:
    """Every real NCT id a synthetic record was drawn from: anchor, evidence, cited or named ids."""
    prov = record.get("provenance") or {}
    ids = [(prov.get("spec") or {}).get("anchor_id")]
    ids += [e.get("nctid") for e in prov.get("evidence") or [] if isinstance(e, dict)]
    for reason in (record.get("rationale") or {}).get("reasons") or []:
        ids += reason.get("evidence_ids") or []
    ids += NCT_ID.findall(json.dumps(record.get("report") or {}))
    return sorted({str(i).upper() for i in ids if i})


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


def reports_file(path: Path | str) -> Path:
    """A `reports.jsonl` file, or the one inside a run folder."""
    path = Path(path)
    return path / "reports.jsonl" if path.is_dir() else path


def read_generated_lines(file: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line of a generated-reports file."""
    file = Path(file)
    if not file.is_file():
        raise EvalInputError(file, "synthetic reports file not found")
    for line_no, raw in enumerate(file.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise EvalInputError(file, "not valid UTF-8", line_no) from None
        except json.JSONDecodeError as exc:
            raise EvalInputError(file, f"not valid JSON ({exc.msg}, column {exc.colno})",
                                 line_no) from None
        if not isinstance(record, dict):
            raise EvalInputError(file, "expected a JSON object", line_no)
        yield line_no, record


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
