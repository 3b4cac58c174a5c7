"""Evidence is a function of (seed, settings, spec): the same under any concurrency, after an
interrupted run is resumed, and on Ray, while a batch on one topic still spreads its evidence."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from trialwright.graph.batch import run_batch
from trialwright.tools.schema import Spec
from trialwright.tools.writer import read_jsonl

from tests.doubles import FakeDeps

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(240)


def one_topic(n: int) -> list[Spec]:
    """n specs with the same query: only a reuse penalty can tell their evidence apart."""
    return [Spec(spec_id=f"e{i:03d}", phase="phase 2", label=i % 2, condition="asthma",
                 intervention="budesonide", seed=i) for i in range(n)]


def evidence(out: Path) -> dict[str, list[str]]:
    return {r["id"]: [e["nctid"] for e in r["provenance"]["evidence"]]
            for name in ("reports.jsonl", "rejected.jsonl") for r in read_jsonl(out / name)}


def interrupt_after(out: Path, keep: int) -> None:
    """What a crash leaves: the first `keep` records written, the rest not yet."""
    path = out / "reports.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:keep]))
    (out / "rejected.jsonl").unlink(missing_ok=True)


def test_evidence_is_the_same_at_any_concurrency_and_after_a_resume(tmp_path):
    batch = one_topic(12)
    factory = FakeDeps(many=True)
    asyncio.run(run_batch(batch, factory(), tmp_path / "c1", concurrency=1))
    asyncio.run(run_batch(batch, factory(), tmp_path / "c4", concurrency=4))
    asyncio.run(run_batch(batch, factory(), tmp_path / "resumed", concurrency=4))
    interrupt_after(tmp_path / "resumed", keep=5)
    asyncio.run(run_batch(batch, factory(), tmp_path / "resumed", concurrency=3))  # a new process

    base = evidence(tmp_path / "c1")
    assert sorted(base) == [s.spec_id for s in batch]
    assert evidence(tmp_path / "c4") == base
    assert evidence(tmp_path / "resumed") == base
    # the diversity the old batch-wide counter bought: one topic does not reuse the same k trials
    used = {nctid for ids in base.values() for nctid in ids}
    assert len(used) >= 8, used
    assert len({tuple(ids) for ids in base.values()}) >= 8


def test_evidence_on_ray_matches_asyncio(tmp_path):
    ray = pytest.importorskip("ray")
    from trialwright.graph.ray_backend import WorkerDeps, run_batch_ray

    batch = one_topic(8)
    factory = FakeDeps(many=True)
    deps = factory()
    asyncio.run(run_batch(batch, deps, tmp_path / "asyncio", concurrency=4))
    started = not ray.is_initialized()
    if started:
        path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}})
    try:
        run_batch_ray(batch, WorkerDeps.like(deps, factory), tmp_path / "ray", max_in_flight=4)
    finally:
        if started:
            ray.shutdown()
    assert evidence(tmp_path / "ray") == evidence(tmp_path / "asyncio")
