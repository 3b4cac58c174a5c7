"""Flat memory at scale: a batch keeps a bounded number of tasks whatever its size, and opening
and finishing a run read its files a record at a time (bench/scale.py measures the whole run)."""

from __future__ import annotations

import asyncio
import json
import os
import tracemalloc

import pyarrow.parquet as pq
import pytest
from trialwright.graph.batch import open_run, run_batch
from trialwright.tools.writer import read_jsonl

from tests.batch_worker import deps, specs

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("until_accepted", [None, {1: 60, 0: 60}])
def test_a_batch_keeps_a_bounded_number_of_tasks(tmp_path, until_accepted):
    n, concurrency = 120, 3

    async def main() -> int:
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:  # the batch's own tasks (LangGraph's checkpoint writes are per graph)
                mine = [t for t in asyncio.all_tasks()
                        if t.get_coro().__qualname__.startswith("run_batch.")]
                peak = max(peak, len(mine))
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        try:
            await run_batch(specs(n), deps(0.0), tmp_path, concurrency=concurrency,
                            until_accepted=until_accepted)
        finally:
            watcher.cancel()
        return peak

    peak = asyncio.run(main())
    written = [r["id"] for r in read_jsonl(tmp_path / "reports.jsonl")]
    assert sorted(written) == [s.spec_id for s in specs(n)]
    # one task per spec would be n; a pool is its workers and the feeder, whatever n is
    assert 1 <= peak <= concurrency + 1, peak


def test_opening_and_finishing_a_big_run_reads_a_record_at_a_time(tmp_path, monkeypatch):
    n = 6000
    batch = specs(n)
    d = deps(0.0)
    asyncio.run(run_batch(batch[:1], d, tmp_path / "one"))  # a real record to copy
    template = next(read_jsonl(tmp_path / "one" / "reports.jsonl"))
    out = tmp_path / "big"
    run = open_run(batch, d, out, concurrency=1)
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", lambda fd: None)  # filling the folder fast, not under test
        for spec in batch[:-1]:  # one spec left to do
            run.write({**json.loads(json.dumps(template)), "id": spec.spec_id})
    size = (out / "reports.jsonl").stat().st_size
    assert size > 30e6

    tracemalloc.start()
    try:
        run = open_run(batch, d, out, concurrency=1)
        summary = run.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [s.spec_id for s in run.pending] == [batch[-1].spec_id]
    label = str(template["label"])
    assert summary["accepted"] == n - 1
    assert summary["accepted_by_label"] == {label: {"accepted": n - 1, "planned": n - 1}}
    assert pq.read_metadata(out / "reports.parquet").num_rows == n - 1
    # the whole file in memory (or its records as dicts) would be well over its size
    assert peak < min(size / 3, 15e6), f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"
