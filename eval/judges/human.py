"""Human review: a sheet of reports to label (CSV or JSONL), read back as verdict rows.

A reviewer fills `accept` (yes / no) and, optionally, `score` (1-5, their overall rating) and
`reviewer`. Read back, each labelled line becomes a probe "plain" row for judge
`human:<reviewer>`, so people and LLM judges sit in the same agreement tables.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from trialwright.eval.judges.agreement import Row
from trialwright.tools.schema import LABEL_WORD
from trialwright.tools.writer import read_jsonl

LABEL_COLUMNS = ("accept", "score", "reviewer", "notes")
_YES = {"yes", "y", "accept", "accepted", "1", "true"}
_NO = {"no", "n", "revise", "reject", "rejected", "0", "false"}


def review_row(line: dict[str, Any]) -> dict[str, Any]:
    """What a reviewer sees of one generated report, flat (one cell per field)."""
    r = line["report"]
    return {
        "item": str(line["id"]), "requested_outcome": LABEL_WORD[line["label"]],
        "phase": r["phase"], "title": r["title"], "brief_summary": r["brief_summary"],
        "conditions": "; ".join(r["diseases"]), "interventions": "; ".join(r["drugs"]),
        "arms": "; ".join(f"{a['label']} ({a['type']}): {a['description']}" for a in r["arms"]),
        "primary_outcome": f"{r['primary_outcome']['measure']} ({r['primary_outcome']['time_frame']})",
        "enrollment": r["enrollment"], "criteria": r["criteria"],
        "outcome_summary": r["outcome_summary"], **dict.fromkeys(LABEL_COLUMNS, "")}


def export_review_sheet(lines: Sequence[dict[str, Any]], path: Path, n: int | None = None,
                        seed: int = 0) -> int:
    """Write a seeded sample of reports to label; `.jsonl` gives JSON lines, anything else CSV."""
    lines = [x for x in lines if x.get("report")]
    if n is not None and n < len(lines):
        keep = sorted(np.random.default_rng(seed).choice(len(lines), n, replace=False))
        lines = [lines[i] for i in keep]
    rows = [review_row(x) for x in lines]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["item"])
            writer.writeheader()
            writer.writerows(rows)
    return len(rows)


def parse_accept(value: Any) -> bool | None:
    text = str(value if value is not None else "").strip().lower()
    return True if text in _YES else False if text in _NO else None


def _parse_score(value: Any) -> float | None:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if 1 <= score <= 5 else None


def read_review_sheet(path: Path, reviewer: str | None = None) -> list[Row]:
    """Labelled lines of a filled sheet as verdict rows; unlabelled lines are skipped."""
    path = Path(path)
    if path.suffix == ".jsonl":
        lines = list(read_jsonl(path))
    else:
        with path.open(newline="", encoding="utf-8") as fh:
            lines = list(csv.DictReader(fh))
    rows = []
    for line in lines:
        accept = parse_accept(line.get("accept"))
        if accept is None:
            continue
        who = reviewer or str(line.get("reviewer") or "").strip() or path.stem
        rows.append({"id": f"human:{who}|plain|{line['item']}|original", "judge": f"human:{who}",
                     "model": "human", "rubric": "human", "probe": "plain",
                     "item": str(line["item"]), "variant": "original", "accept": accept,
                     "mean_score": _parse_score(line.get("score")), "choice": None,
                     "preferred": None, "generator_model": None, "truth": {},
                     "notes": line.get("notes") or ""})
    return rows
