"""The one reader of what `trialwright generate` writes (`reports.jsonl`, `rejected.jsonl`).

eval/ never imports the generator: the file is the contract. Strict like the TOP loader: a bad
line is an `EvalInputError` naming the file and line. Each section turns the records into what it
measures: quality into `eval.records.TrialRecord`s, utility into classifier examples
(`eval.utility.texts.read_synthetic`), judge studies into questions for the judges.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from trialwright.tools.trials import NCT_ID

REJECTED = "rejected.jsonl"


class EvalInputError(ValueError):
    """Bad evaluation input; the message names the file (and line, where there is one)."""

    def __init__(self, file: Path | str, message: str, line: int | None = None):
        self.file, self.line = str(file), line
        super().__init__(f"{file}{f', line {line}' if line is not None else ''}: {message}")


def linked_ids(record: dict[str, Any]) -> list[str]:
    """Every real NCT id a synthetic record was drawn from: anchor, evidence, cited or named ids."""
    prov = record.get("provenance") or {}
    ids = [(prov.get("spec") or {}).get("anchor_id")]
    ids += [e.get("nctid") for e in prov.get("evidence") or [] if isinstance(e, dict)]
    for reason in (record.get("rationale") or {}).get("reasons") or []:
        ids += reason.get("evidence_ids") or []
    ids += NCT_ID.findall(json.dumps(record.get("report") or {}))
    return sorted({str(i).upper() for i in ids if i})


def reports_file(path: Path | str) -> Path:
    """A `reports.jsonl` file, or the one inside a run folder."""
    path = Path(path)
    return path / "reports.jsonl" if path.is_dir() else path


def generated_files(path: Path | str, with_rejected: bool = True) -> list[Path]:
    """The reports file of `path` (a file or run folder), then the `rejected.jsonl` beside it when
    asked for and present."""
    file = reports_file(path)
    rejected = file.with_name(REJECTED)
    wanted = with_rejected and rejected != file and rejected.is_file()
    return [file, rejected] if wanted else [file]


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


def read_records(files: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Every record of the files, in order."""
    return [record for f in files for _, record in read_generated_lines(f)]


def with_report(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that hold a report (an error record has none)."""
    return [r for r in records if r.get("report")]
