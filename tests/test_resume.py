"""What a run folder is bound to, and writes a crash cannot tear (issue 13, items 3 and 5).

The fingerprint covers everything that changes a record; spec ids name their plan; every record
carries the fingerprint, so a run.json lost still cannot let two configurations merge. A resume
with --retry-errors survives a torn last line; a short `os.write` is finished, not left torn; a
JSON file is replaced through its own fsync'd temp file.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest
from trialwright.graph import batch
from trialwright.graph.batch import BatchError, fingerprint, run_batch
from trialwright.tools.fake_llm import FakeSchemaChat
from trialwright.tools.llm import ChatEndpoint
from trialwright.tools.plan import plan_specs
from trialwright.tools.privacy_index import PrivacyIndex
from trialwright.tools.trials import Trial
from trialwright.tools.writer import JsonlWriter, read_jsonl, write_json_atomic

from tests.batch_worker import deps, specs


@pytest.fixture
def corpus_deps(tmp_path):
    """Fake deps whose settings name a corpus file of their own (so its content can change)."""
    top = tmp_path / "data" / "top"
    top.mkdir(parents=True)
    (top / "a.csv").write_text("nctid,label\nNCT00000001,1\n")
    d = deps(0.0)
    d.settings = d.settings.model_copy(update={"data_dir": tmp_path / "data", "top_files": ["a.csv"]})
    return d


def with_settings(d, **update):
    d.settings = d.settings.model_copy(update=update)
    return d


@pytest.mark.parametrize("update", [
    {"llm_base_url": "http://gpu-a:8000/v1"},
    {"judge_base_url": "http://gpu-b:8000/v1"},
    {"store_backend": "qdrant"},
    {"qdrant_url": "http://qdrant:6333"},
    {"store_path": Path("/elsewhere/store")},
    {"collection": "trials-train-only"},
    {"top_files": ["b.csv"]},
    {"encoder_max_length": 128},
], ids=lambda u: next(iter(u)))
def test_fingerprint_changes_with_endpoints_store_and_corpus_files(corpus_deps, update):
    before = fingerprint(specs(2), corpus_deps)
    assert fingerprint(specs(2), with_settings(corpus_deps, **update)) != before


def test_fingerprint_changes_with_the_corpus_content(corpus_deps, tmp_path):
    before = fingerprint(specs(2), corpus_deps)
    assert fingerprint(specs(2), corpus_deps) == before  # stable
    (tmp_path / "data" / "top" / "a.csv").write_text("nctid,label\nNCT00000001,0\n")
    assert fingerprint(specs(2), corpus_deps) != before


def test_fingerprint_changes_with_the_privacy_index_and_the_code_version(corpus_deps, monkeypatch):
    plain = fingerprint(specs(2), corpus_deps)
    corpus_deps.privacy = PrivacyIndex.build([("NCT00000001", "a real trial text")], n=2)
    indexed = fingerprint(specs(2), corpus_deps)
    corpus_deps.privacy = PrivacyIndex.build([("NCT00000002", "another trial text")], n=2)
    assert len({plain, indexed, fingerprint(specs(2), corpus_deps)}) == 3
    versions = batch._versions()
    monkeypatch.setattr(batch, "_versions", lambda: {**versions, "trialwright": "99.0"})
    assert fingerprint(specs(2), corpus_deps) not in {plain, indexed}


def test_ray_identity_has_the_same_fingerprint_as_the_live_deps(corpus_deps):
    from trialwright.graph.ray_backend import WorkerDeps

    corpus_deps.privacy = PrivacyIndex.build([("NCT00000001", "a real trial text")], n=2)
    identity = WorkerDeps.like(corpus_deps, factory=lambda: corpus_deps).identity
    assert fingerprint(specs(2), identity) == fingerprint(specs(2), corpus_deps)


def plan_trials() -> list[Trial]:
    return [Trial(nctid=f"NCT0000020{i}", label=i % 2, phase="phase 1" if i < 3 else "phase 2",
                  diseases=[f"d{i}"], drugs=[f"x{i}"], criteria="Inclusion Criteria: adults.")
            for i in range(6)]


def test_spec_ids_name_their_plan():
    trials = plan_trials()
    ids = [s.spec_id for s in plan_specs(trials, 4, seed=0)]
    assert ids == [s.spec_id for s in plan_specs(trials, 4, seed=0)]  # stable across runs
    for other in (plan_specs(trials, 4, seed=0, label_ratio=0.25),
                  plan_specs(trials, 4, seed=0, phase="phase 2"),
                  plan_specs(trials, 4, seed=0, condition="asthma"),
                  plan_specs(trials, 4, seed=0, intervention="aspirin"),
                  plan_specs(trials, 5, seed=0),
                  plan_specs(trials[:4], 4, seed=0)):  # another corpus
        assert not set(ids) & {s.spec_id for s in other}


def test_run_json_lost_then_another_configuration_is_refused(tmp_path):
    asyncio.run(run_batch(specs(3), deps(0.0), tmp_path))
    fp = json.loads((tmp_path / "run.json").read_text())["fingerprint"]
    assert {r["provenance"]["run_fingerprint"] for r in read_jsonl(tmp_path / "reports.jsonl")} == {fp}
    before = (tmp_path / "reports.jsonl").read_bytes()
    (tmp_path / "run.json").unlink()
    other = with_settings(deps(0.0), llm_temperature=0.1)
    with pytest.raises(BatchError, match="another configuration"):
        asyncio.run(run_batch(specs(3), other, tmp_path))
    assert (tmp_path / "reports.jsonl").read_bytes() == before
    summary = asyncio.run(run_batch(specs(3), deps(0.0), tmp_path))  # the same one resumes
    assert summary["this_session"]["generated"] == 0 and summary["accepted"] == 3


def test_records_without_a_fingerprint_are_refused_when_run_json_is_lost(tmp_path):
    (tmp_path / "rejected.jsonl").write_text(json.dumps(
        {"id": "r000", "status": "rejected", "provenance": {}}) + "\n")
    with pytest.raises(BatchError, match="another configuration"):
        asyncio.run(run_batch(specs(2), deps(0.0), tmp_path))


class DownChat(FakeSchemaChat):
    async def _agenerate(self, *args, **kwargs):
        raise ConnectionError("endpoint down")


def test_retry_errors_after_a_torn_last_line_resumes(tmp_path):
    down = deps(0.0)
    down.judge = ChatEndpoint(chat=DownChat(), model_id="fake")  # same identity, endpoint down
    asyncio.run(run_batch(specs(3), down, tmp_path))
    path = tmp_path / "rejected.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    path.write_bytes(b"".join(lines[:2]) + lines[2][:50])  # the crash tore the last line
    summary = asyncio.run(run_batch(specs(3), deps(0.0), tmp_path, retry_errors=True))
    assert summary["retried_errors"] == 2 and summary["accepted"] == 3
    assert not list(read_jsonl(path))
    assert len(list(read_jsonl(tmp_path / "rejected.retried.jsonl"))) == 2


def test_a_short_os_write_is_finished_not_torn(tmp_path, monkeypatch):
    real_write = os.write

    def short(fd, data):  # what a signal or a full disk may do: write a few bytes only
        return real_write(fd, bytes(data[:7]))

    records = [{"id": f"r{i}", "text": "x" * 100} for i in range(3)]
    writer = JsonlWriter(tmp_path / "r.jsonl")
    with monkeypatch.context() as m:
        m.setattr(os, "write", short)
        for r in records:
            writer.write(r)
    assert list(read_jsonl(tmp_path / "r.jsonl")) == records
    assert JsonlWriter(tmp_path / "r.jsonl").ids == {"r0", "r1", "r2"}


def test_write_json_atomic_fsyncs_before_it_renames(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_json_atomic(tmp_path / "run.json", {"a": 1})
    assert "fsync" in events and events.index("fsync") < events.index("replace")
    assert json.loads((tmp_path / "run.json").read_text()) == {"a": 1}


def test_write_json_atomic_has_a_temp_file_of_its_own(tmp_path):
    (tmp_path / "run.json.tmp").mkdir()  # what a fixed temp name would collide with
    write_json_atomic(tmp_path / "run.json", {"a": 1})
    assert json.loads((tmp_path / "run.json").read_text()) == {"a": 1}
    errors: list[BaseException] = []

    def many(k: int) -> None:
        try:
            for i in range(40):
                write_json_atomic(tmp_path / "run.json", {"writer": k, "i": i})
        except BaseException as err:  # noqa: BLE001 - collected for the assert
            errors.append(err)

    threads = [threading.Thread(target=many, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads((tmp_path / "run.json").read_text())["i"] == 39
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.json.tmp"]
