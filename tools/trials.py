"""Real trials: the typed `Trial` record and the loader for the TOP benchmark CSVs.

TOP quirks handled here (see the data README): list-valued columns are Python-list strings,
fields contain newlines, `status`/`why_stop` leak the label, and files overlap (de-duplicated by
`nctid`). Every problem raises `DataError` naming the file, row and field.
"""

from __future__ import annotations

import ast
import csv
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

csv.field_size_limit(sys.maxsize)

Phase = Literal[
    "early phase 1", "phase 1", "phase 1/phase 2", "phase 2", "phase 2/phase 3", "phase 3", "phase 4"
]
PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]
TOP_COLUMNS = ("nctid", "status", "why_stop", "label", "phase", "diseases", "icdcodes", "drugs",
               "smiless", "criteria")
REQUIRED_COLUMNS = ("nctid", "label", "phase", "diseases", "drugs", "criteria")
NCT_ID = re.compile(r"\bNCT\d{8}\b", re.IGNORECASE)
_NCT_FULL = re.compile(r"^NCT\d{8}$")


class DataError(ValueError):
    """Bad input data; the message names the file, the row (1-based data row) and the field."""

    def __init__(self, file: Path | str, message: str, row: int | None = None,
                 field: str | None = None):
        self.file, self.row, self.field = str(file), row, field
        where = self.file + (f", row {row}" if row is not None else "") + (
            f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


class Trial(BaseModel):
    """One real trial. `status` and `why_stop` leak the label: never show them to a model."""

    nctid: str
    label: Literal[0, 1] = Field(description="1 = met its primary endpoint, 0 = failed")
    phase: Phase
    diseases: list[str]
    drugs: list[str]
    icdcodes: list[str] = Field(default_factory=list)
    criteria: str
    status: str = ""
    why_stop: str = ""
    sources: list[str] = Field(default_factory=list, description="files the trial was read from")

    def text(self, max_criteria_chars: int = 1500) -> str:
        """Label-blind text used for embedding and as evidence (no status, no why_stop)."""
        criteria = " ".join(self.criteria.split())[:max_criteria_chars]
        return (f"{self.phase}. Conditions: {', '.join(self.diseases)}. "
                f"Interventions: {', '.join(dict.fromkeys(self.drugs))}. {criteria}")


def normalise_phase(raw: str) -> str:
    return " ".join(raw.strip().lower().replace("phase1", "phase 1").split())


def _parse_list(raw: str, file: Path, row: int, field: str) -> list[str]:
    raw = raw.strip()
    if not raw:
        return []
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise DataError(file, f"not a list literal: {raw[:60]!r}", row, field) from None
    if not isinstance(value, list | tuple):
        raise DataError(file, f"expected a list, got {type(value).__name__}", row, field)
    out: list[str] = []
    for item in value:
        # icdcodes is a list of stringified lists: flatten one level.
        if isinstance(item, str) and item.startswith("[") and field == "icdcodes":
            out.extend(_parse_list(item, file, row, field))
        else:
            out.append(str(item).strip())
    return [x for x in out if x]


def _parse_row(rec: dict[str, str], file: Path, row: int) -> Trial:
    nctid = (rec.get("nctid") or "").strip().upper()
    if not _NCT_FULL.match(nctid):
        raise DataError(file, f"not an NCT id: {nctid!r}", row, "nctid")
    label_raw = (rec.get("label") or "").strip()
    if label_raw not in ("0", "1", "0.0", "1.0"):
        raise DataError(file, f"label must be 0 or 1, got {label_raw!r}", row, "label")
    phase = normalise_phase(rec.get("phase") or "")
    if phase not in PHASES:
        raise DataError(file, f"unknown phase {phase!r} (expected one of {', '.join(PHASES)})",
                        row, "phase")
    criteria = (rec.get("criteria") or "").strip()
    if not criteria:
        raise DataError(file, "eligibility criteria are empty", row, "criteria")
    diseases = _parse_list(rec.get("diseases") or "", file, row, "diseases")
    if not diseases:
        raise DataError(file, "no disease listed", row, "diseases")
    return Trial(
        nctid=nctid,
        label=int(float(label_raw)),  # type: ignore[arg-type]
        phase=phase,  # type: ignore[arg-type]
        diseases=diseases,
        drugs=_parse_list(rec.get("drugs") or "", file, row, "drugs"),
        icdcodes=_parse_list(rec.get("icdcodes") or "", file, row, "icdcodes"),
        criteria=criteria,
        status=(rec.get("status") or "").strip(),
        why_stop=(rec.get("why_stop") or "").strip(),
        sources=[file.name],
    )


def read_top_csv(file: Path | str) -> list[Trial]:
    """Read one TOP CSV strictly: any bad row, column or encoding is a `DataError`."""
    file = Path(file)
    if not file.is_file():
        raise DataError(file, "file not found")
    data = file.read_bytes()
    if not data.strip():
        raise DataError(file, "file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(file, f"not valid UTF-8 at byte {exc.start} (line {line})") from None
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(file, f"missing column(s): {', '.join(missing)}", field=missing[0])
    trials: list[Trial] = []
    seen: dict[str, int] = {}
    try:
        for row, rec in enumerate(reader, start=1):
            if None in rec:  # more cells than header columns
                raise DataError(file, f"{len(header) + len(rec[None])} cells for "
                                f"{len(header)} columns", row)
            trial = _parse_row(rec, file, row)
            if trial.nctid in seen:
                raise DataError(file, f"duplicate id {trial.nctid} (first at row "
                                f"{seen[trial.nctid]})", row, "nctid")
            seen[trial.nctid] = row
            trials.append(trial)
    except csv.Error as exc:
        raise DataError(file, f"malformed CSV: {exc}", reader.line_num) from None
    if not trials:
        raise DataError(file, "no data rows")
    return trials


def load_top(files: Iterable[Path | str]) -> list[Trial]:
    """Read several TOP CSVs and de-duplicate by `nctid`.

    A trial in several files is kept once (all its files in `sources`); the same id with two
    different labels is an error naming both files, since either label could be wrong.
    """
    merged: dict[str, Trial] = {}
    for file in files:
        for trial in read_top_csv(file):
            first = merged.get(trial.nctid)
            if first is None:
                merged[trial.nctid] = trial
            elif first.label != trial.label:
                raise DataError(file, f"{trial.nctid} has label {trial.label} here but "
                                f"{first.label} in {first.sources[0]}", field="label")
            else:
                first.sources.append(Path(file).name)
    return list(merged.values())
