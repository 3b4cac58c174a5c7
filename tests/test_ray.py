"""The Ray backend on a local Ray: same outputs as asyncio, resume, refusal, lost tasks recorded."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from trialwright.agents.common import AgentDeps
from trialwright.graph.batch import BatchError, run_batch
from trialwright.graph.ray_backend import (
    WorkerDeps,
    run_batch_ray,
    start_retrieval,
)
from trialwright.tools.fake_llm import FakeSchemaChat
from trialwright.tools.llm import ChatEndpoint
from trialwright.tools.writer import read_jsonl

from tests.batch_worker import specs
from tests.doubles import FIXED_TRIALS, FakeDeps, FakeRetrieval

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # workers import this module by the name pytest gave it ("test_ray" or "tests.test_ray")
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}})
    yield
    ray.shutdown()


def stable(out: Path) -> dict[str, dict]:
    """Records by id, minus what measures wall time (timings, call latency)."""
    recs = {}
    for name in ("reports.jsonl", "rejected.jsonl"):
        for r in read_jsonl(out / name):
            prov = r["provenance"]
            prov.pop("timings")
            for call in prov["llm_calls"]:
                call.pop("latency_s")
            recs[r["id"]] = r
    return recs


def fake() -> tuple[AgentDeps, WorkerDeps]:
    factory = FakeDeps()
    deps = factory()
    return deps, WorkerDeps.like(deps, factory)


def test_ray_writes_the_same_records_as_asyncio(tmp_path):
    batch = specs(8)
    deps, wdeps = fake()
    a = asyncio.run(run_batch(batch, deps, tmp_path / "asyncio", concurrency=4))
    r = run_batch_ray(batch, wdeps, tmp_path / "ray", max_in_flight=4)
    assert r["fingerprint"] == a["fingerprint"]
    assert (r["accepted"], r["rejected"]) == (a["accepted"], a["rejected"]) == (8, 0)
    assert stable(tmp_path / "ray") == stable(tmp_path / "asyncio")
    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run["backend"]["name"] == "ray" and run["status"] == "finished"
    assert (tmp_path / "ray" / "reports.parquet").exists()
    assert not list((tmp_path / "ray" / "ray-checkpoints").glob("*.sqlite"))  # cleaned per report


def test_retrieval_through_one_actor_gives_the_same_records(tmp_path):
    """The embedded store opens in one process only: workers retrieve through an actor."""
    batch = specs(4)
    deps, _ = fake()
    asyncio.run(run_batch(batch, deps, tmp_path / "asyncio"))
    actor = start_retrieval(FakeRetrieval())
    wdeps = WorkerDeps.like(deps, FakeDeps(retrieval=actor))
    run_batch_ray(batch, wdeps, tmp_path / "ray", max_in_flight=4)
    assert stable(tmp_path / "ray") == stable(tmp_path / "asyncio")
    assert ray.get(actor.count.remote()) == len(FIXED_TRIALS)


def test_ray_resume_writes_only_missing_and_refuses_other_config(tmp_path):
    batch = specs(6)
    deps, wdeps = fake()
    asyncio.run(run_batch(batch, deps, tmp_path))  # begun on asyncio ...
    path = tmp_path / "reports.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]) + lines[3][:25])  # ... crashed: 3 whole, 1 torn line
    summary = run_batch_ray(batch, wdeps, tmp_path, max_in_flight=3)  # ... resumed on Ray
    ids = [r["id"] for r in read_jsonl(path)]
    assert sorted(ids) == [s.spec_id for s in batch] and summary["this_session"]["generated"] == 3
    assert summary["sessions"] == 2
    before = path.read_bytes()
    again = run_batch_ray(batch, wdeps, tmp_path)
    assert again["this_session"]["generated"] == 0 and path.read_bytes() == before
    with pytest.raises(BatchError, match="different configuration"):
        run_batch_ray(specs(7), wdeps, tmp_path)
    assert path.read_bytes() == before


class _DownChat(FakeSchemaChat):
    async def _agenerate(self, *args, **kwargs):
        raise ConnectionError("endpoint down")


def broken_judge_deps() -> AgentDeps:
    deps = FakeDeps()()
    deps.judge = ChatEndpoint(chat=_DownChat(), model_id="broken-judge")
    return deps


def crashing_deps() -> AgentDeps:
    os._exit(3)  # the worker process dies, as on an out-of-memory kill


def test_failures_in_tasks_and_lost_workers_are_recorded(tmp_path):
    batch = specs(2)
    wdeps = WorkerDeps(factory=broken_judge_deps, settings=FakeDeps()().settings,
                       generator_id="fake", judge_id="broken-judge")
    summary = run_batch_ray(batch, wdeps, tmp_path / "judge")
    rej = list(read_jsonl(tmp_path / "judge" / "rejected.jsonl"))
    assert summary["rejected"] == 2, rej
    assert all("transport" in r["provenance"]["llm_calls"][-1]["errors"][0] for r in rej), rej
    dead = WorkerDeps(factory=crashing_deps, settings=FakeDeps()().settings,
                      generator_id="fake", judge_id="fake")
    summary = run_batch_ray(specs(1), dead, tmp_path / "dead", max_in_flight=1)
    rej = list(read_jsonl(tmp_path / "dead" / "rejected.jsonl"))
    assert summary["rejected"] == 1 and rej[0]["reject_reasons"][-1].startswith("error: ray: ")
