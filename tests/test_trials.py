"""The TOP loader: real files load and de-duplicate; bad input names file, row and field."""

import csv
import io
from pathlib import Path

import pytest
from trialwright.tools.settings import Settings
from trialwright.tools.trials import TOP_COLUMNS, DataError, load_top, read_top_csv

GOOD = {
    "nctid": "NCT00000001", "status": "completed", "why_stop": "", "label": "1",
    "phase": "phase 2", "diseases": "['asthma']", "icdcodes": "[\"['J45.0']\"]",
    "drugs": "['budesonide']", "smiless": "[]",
    "criteria": "Inclusion Criteria:\n - Age >= 18\nExclusion Criteria:\n - pregnancy",
}


def write_csv(path: Path, rows: list[dict], columns=TOP_COLUMNS) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def row(**changes) -> dict:
    return {**GOOD, **changes}


def test_good_file_parses_lists_and_newlines(tmp_path):
    f = write_csv(tmp_path / "a.csv", [row(), row(nctid="NCT00000002", label="0")])
    trials = read_top_csv(f)
    assert [t.nctid for t in trials] == ["NCT00000001", "NCT00000002"]
    assert trials[0].diseases == ["asthma"] and trials[0].icdcodes == ["J45.0"]
    assert "Exclusion Criteria" in trials[0].criteria and trials[1].label == 0


def test_text_is_label_blind(tmp_path):
    f = write_csv(tmp_path / "a.csv", [row(status="terminated", why_stop="sponsor stopped it")])
    text = read_top_csv(f)[0].text()
    assert "terminated" not in text and "sponsor" not in text and "asthma" in text


def test_overlapping_files_are_deduplicated(tmp_path):
    a = write_csv(tmp_path / "a.csv", [row()])
    b = write_csv(tmp_path / "b.csv", [row(), row(nctid="NCT00000003")])
    trials = load_top([a, b])
    assert [t.nctid for t in trials] == ["NCT00000001", "NCT00000003"]
    assert trials[0].sources == ["a.csv", "b.csv"]


BAD_CASES = {
    "missing column": (lambda p: write_csv(p, [row()], [c for c in TOP_COLUMNS if c != "label"]),
                       None, "label", "missing column"),
    "label not a number": (lambda p: write_csv(p, [row(), row(nctid="NCT00000002", label="yes")]),
                           2, "label", "0 or 1"),
    "label out of range": (lambda p: write_csv(p, [row(label="2")]), 1, "label", "0 or 1"),
    "empty label": (lambda p: write_csv(p, [row(label="")]), 1, "label", "0 or 1"),
    "bad nct id": (lambda p: write_csv(p, [row(nctid="NCT12")]), 1, "nctid", "not an NCT id"),
    "unknown phase": (lambda p: write_csv(p, [row(phase="phase 7")]), 1, "phase", "unknown phase"),
    "diseases not a list": (lambda p: write_csv(p, [row(diseases="asthma, copd")]), 1, "diseases",
                            "not a list"),
    "diseases is a dict": (lambda p: write_csv(p, [row(diseases="{'a': 1}")]), 1, "diseases",
                           "expected a list"),
    "no disease": (lambda p: write_csv(p, [row(diseases="[]")]), 1, "diseases", "no disease"),
    "empty criteria": (lambda p: write_csv(p, [row(criteria="  ")]), 1, "criteria", "empty"),
    "duplicate id": (lambda p: write_csv(p, [row(), row(label="0")]), 2, "nctid", "duplicate"),
    "too many cells": (lambda p: p.write_text(",".join(TOP_COLUMNS) + "\n" + ",".join(
        ["NCT00000001", "c", "", "1", "phase 1", "['a']", "[]", "[]", "[]", "x", "extra"]) + "\n"),
        1, None, "cells"),
    "empty file": (lambda p: p.write_bytes(b""), None, None, "empty"),
    "header only": (lambda p: write_csv(p, []), None, None, "no data rows"),
    "not utf-8": (lambda p: p.write_bytes(",".join(TOP_COLUMNS).encode() + b"\nNCT00000001,\xff\xfe")
                  , None, None, "UTF-8"),
    "missing file": (lambda p: None, None, None, "not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_row_field(tmp_path, case):
    make, want_row, want_field, want_text = BAD_CASES[case]
    path = tmp_path / "bad.csv"
    make(path)
    with pytest.raises(DataError) as err:
        read_top_csv(path)
    assert err.value.file.endswith("bad.csv") and "bad.csv" in str(err.value)
    assert err.value.row == want_row
    assert err.value.field == want_field
    assert want_text in str(err.value)


def test_conflicting_labels_across_files(tmp_path):
    a = write_csv(tmp_path / "a.csv", [row()])
    b = write_csv(tmp_path / "b.csv", [row(label="0")])
    with pytest.raises(DataError, match=r"b\.csv.*label 0 here but 1 in a\.csv"):
        load_top([a, b])


def test_real_top_corpus_loads():
    s = Settings()
    if not s.top_dir.is_dir():
        pytest.skip("real data not beside the checkout")
    trials = load_top(s.top_dir / f for f in s.top_files)
    # 3,323 rows in the six phase files; overlaps (phase 1/2 trials) are kept once.
    assert 3200 < len(trials) < 3323
    assert len({t.nctid for t in trials}) == len(trials)
    assert {t.label for t in trials} == {0, 1}
