"""End to end: the real embedded LLM (llama.cpp), the real embedded Qdrant store and the real
encoder generate a report on a small slice of real trials, through the CLI."""

import csv
import io
import json

import pytest
from trialwright.app.cli import app
from trialwright.tools.schema import SyntheticTrial
from trialwright.tools.settings import Settings
from trialwright.tools.writer import read_jsonl
from typer.testing import CliRunner

pytestmark = pytest.mark.e2e
DATA = Settings().data_dir.resolve()


def test_real_llm_store_encoder_generate_one_report(tmp_path, monkeypatch):
    if not (DATA / "top").is_dir():
        pytest.skip("real data not beside the checkout")
    (tmp_path / "data" / "top").mkdir(parents=True)
    text = (DATA / "top" / "phase_I_train.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))[:61]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    (tmp_path / "data" / "top" / "phase_I_train.csv").write_text(buf.getvalue())
    slice_ids = {r[0] for r in rows[1:]}

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIALWRIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIALWRIGHT_TOP_FILES", '["phase_I_train.csv"]')
    monkeypatch.setenv("TRIALWRIGHT_STORE_PATH", str(tmp_path / "store"))
    # The joined, hash-verified model is reused across runs from the user's cache.
    monkeypatch.setenv("TRIALWRIGHT_CACHE_DIR", str(Settings().cache_dir.resolve()))
    runner = CliRunner()
    assert runner.invoke(app, ["index"]).exit_code == 0
    out = tmp_path / "run"
    res = runner.invoke(app, ["generate", "--n", "1", "--out", str(out), "--max-revisions", "1",
                              "-k", "2", "--seed", "11", "--phase", "phase 1"])
    assert res.exit_code == 0, res.output

    records = list(read_jsonl(out / "reports.jsonl")) + list(read_jsonl(out / "rejected.jsonl"))
    assert len(records) == 1
    rec = records[0]
    prov = rec["provenance"]
    assert prov["generator_model"] == Settings().llm_model
    assert {e["nctid"] for e in prov["evidence"]} <= slice_ids and len(prov["evidence"]) == 2
    assert prov["tokens"]["input"] > 100 and prov["tokens"]["output"] > 50
    assert {c["node"] for c in prov["llm_calls"]} >= {"reason", "draft"}
    assert rec["report"] is not None, rec["reject_reasons"]
    report = SyntheticTrial.model_validate({k: v for k, v in rec["report"].items()
                                            if k != "criteria"})
    assert report.label == rec["label"] and report.phase == "phase 1"
    assert len(report.title) > 10 and report.inclusion_criteria and report.exclusion_criteria
    assert rec["status"] == "accepted" or rec["reject_reasons"]
    run = json.loads((out / "run.json").read_text())
    assert run["accepted"] + run["rejected"] == 1
