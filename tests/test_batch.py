"""Batch generation: files, provenance, idempotent resume, refusal to mix runs, kill -9 resume."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trialwright.graph.batch import BatchError, run_batch
from trialwright.tools.fake_llm import FakeSchemaChat
from trialwright.tools.llm import ChatEndpoint
from trialwright.tools.writer import JsonlWriter, read_jsonl

from tests.batch_worker import deps, specs

ROOT = Path(__file__).resolve().parents[1]


def ids(path: Path) -> list[str]:
    return [r["id"] for r in read_jsonl(path)]


def test_batch_writes_reports_with_provenance(tmp_path):
    summary = asyncio.run(run_batch(specs(6), deps(0.0), tmp_path, concurrency=3))
    assert summary["accepted"] == 6 and summary["rejected"] == 0
    recs = list(read_jsonl(tmp_path / "reports.jsonl"))
    assert sorted(r["id"] for r in recs) == [f"r{i:03d}" for i in range(6)]
    prov = recs[0]["provenance"]
    assert prov["generator_model"] == "fake" and prov["evidence"][0]["nctid"].startswith("NCT")
    assert set(prov["prompts_sha256"]) >= {"drafter.system.md", "quality_checklist.md", "quality_judge.user.md"}
    assert prov["tokens"]["output"] == 150 and prov["seed"] == recs[0]["provenance"]["spec"]["seed"]
    assert {r["label"] for r in recs} == {0, 1}
    assert all(r["report"]["label"] == r["label"] for r in recs)
    assert "Inclusion Criteria:" in recs[0]["report"]["criteria"]
    assert (tmp_path / "reports.parquet").exists()
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "finished"


def test_rerun_is_idempotent_and_changed_config_is_refused(tmp_path):
    asyncio.run(run_batch(specs(4), deps(0.0), tmp_path))
    before = (tmp_path / "reports.jsonl").read_bytes()
    summary = asyncio.run(run_batch(specs(4), deps(0.0), tmp_path))
    assert (tmp_path / "reports.jsonl").read_bytes() == before
    assert summary["this_session"]["generated"] == 0 and summary["sessions"] == 2
    with pytest.raises(BatchError, match="different configuration"):
        asyncio.run(run_batch(specs(5), deps(0.0), tmp_path))
    assert (tmp_path / "reports.jsonl").read_bytes() == before


def test_torn_last_line_is_repaired_and_regenerated(tmp_path):
    asyncio.run(run_batch(specs(3), deps(0.0), tmp_path))
    path = tmp_path / "reports.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]) + lines[2][:40])  # a crash mid-write
    summary = asyncio.run(run_batch(specs(3), deps(0.0), tmp_path))
    assert sorted(ids(path)) == ["r000", "r001", "r002"] and summary["accepted"] == 3


def test_writer_skips_duplicates(tmp_path):
    w = JsonlWriter(tmp_path / "x.jsonl")
    assert w.write({"id": "a"}) and not w.write({"id": "a"})
    assert JsonlWriter(tmp_path / "x.jsonl").ids == {"a"}


class DownChat(FakeSchemaChat):
    async def _agenerate(self, *args, **kwargs):
        raise ConnectionError("endpoint down")


def test_failing_model_is_recorded_not_fatal(tmp_path):
    d = deps(0.0)
    d.judge = ChatEndpoint(chat=DownChat(), model_id="broken-judge")
    summary = asyncio.run(run_batch(specs(2), d, tmp_path))
    rej = list(read_jsonl(tmp_path / "rejected.jsonl"))
    assert summary["rejected"] == 2 and summary["accepted"] == 0
    assert any("judge" in reason for reason in rej[0]["reject_reasons"])
    assert "transport" in rej[0]["provenance"]["llm_calls"][-1]["errors"][0]


def test_kill_9_mid_batch_then_resume_loses_and_duplicates_nothing(tmp_path):
    n = 12
    cmd = [sys.executable, "-m", "tests.batch_worker", str(tmp_path), str(n), "0.15"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and len(ids(tmp_path / "reports.jsonl")) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = ids(tmp_path / "reports.jsonl")
    assert 3 <= len(written) < n, "the kill must land mid-batch"
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=120)
    final = ids(tmp_path / "reports.jsonl") + ids(tmp_path / "rejected.jsonl")
    assert sorted(final) == [f"r{i:03d}" for i in range(n)]  # none lost, none duplicated
    assert json.loads((tmp_path / "run.json").read_text())["sessions"] == 2


class HalfFailingDrafts(FakeSchemaChat):
    """Every other failure-labelled draft has a contradictory design (rejected by the checks)."""

    n_failure_drafts: int = 0

    def _answer(self, kwargs):
        result = super()._answer(kwargs)
        msg = result.generations[0].message
        answer = json.loads(msg.content)
        if answer.get("label") == 0 and "arms" in answer:
            self.n_failure_drafts += 1
            if self.n_failure_drafts % 2:
                answer["arms"] = answer["arms"][:1]  # randomised, double-blind, one arm
            msg.content = json.dumps(answer)
        return result


def quota_deps():
    d = deps(0.0)
    d.generator = d.judge = ChatEndpoint(chat=HalfFailingDrafts(), model_id="fake")
    d.settings = d.settings.model_copy(update={"max_revisions": 0})
    return d


@pytest.mark.parametrize("concurrency", [1, 4])
def test_until_accepted_stops_at_the_planned_mix_without_overshoot(tmp_path, concurrency):
    summary = asyncio.run(run_batch(specs(16), quota_deps(), tmp_path, concurrency=concurrency,
                                    until_accepted={1: 3, 0: 3}))
    acc = list(read_jsonl(tmp_path / "reports.jsonl"))
    rej = list(read_jsonl(tmp_path / "rejected.jsonl"))
    assert sorted(r["label"] for r in acc) == [0, 0, 0, 1, 1, 1]
    assert [r["label"] for r in rej] == [0] * len(rej) and len(rej) >= 2  # failures were retried
    assert summary["accepted_by_label"]["1"] == {"accepted": 3, "planned": 3}
    assert summary["unused_specs"] == 16 - len(acc) - len(rej)
    assert summary["until_accepted"] == {"1": 3, "0": 3}
    again = asyncio.run(run_batch(specs(16), quota_deps(), tmp_path, concurrency=concurrency,
                                  until_accepted={1: 3, 0: 3}))  # resume: the targets are met
    assert again["accepted"] == 6 and again["this_session"]["generated"] == 0


def test_until_accepted_ends_when_the_spec_budget_is_spent(tmp_path):
    summary = asyncio.run(run_batch(specs(6), quota_deps(), tmp_path, concurrency=2,
                                    until_accepted={1: 1, 0: 3}))
    by = summary["accepted_by_label"]
    assert by["1"]["accepted"] == 1 and by["0"]["accepted"] < 3  # 3 failure specs, half rejected
    assert by["0"]["planned"] == 3 and summary["unused_specs"] == 2
