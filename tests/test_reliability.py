"""Malformed inputs give one clear error and touch nothing; a batch under faults survives kill -9.

The malformed-input cases are the benchmark's (bench/reliability.py, 30 files); here the TOP CSV
and settings cases run in-process through the CLI, and the run folder's resume files through
`run_batch`, so the suite stays fast. The benchmark runs all 30 as real subprocesses.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trialwright.app.cli import app
from trialwright.graph.batch import run_batch
from trialwright.tools.settings import Settings
from trialwright.tools.writer import read_jsonl
from typer.testing import CliRunner

from tests.batch_worker import deps, specs
from tests.fault_server import FaultPlan, FaultServer

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_reliability", ROOT / "bench" / "reliability.py")
bench = sys.modules.setdefault("bench_reliability", importlib.util.module_from_spec(_spec))  # type: ignore[arg-type]
_spec.loader.exec_module(bench)  # type: ignore[union-attr]

DATA = Settings().data_dir.resolve()
runner = CliRunner()
CSV_CASES = [c for c in bench.CASES if c.kind == "csv"]
CONFIG_CASES = [c for c in bench.CASES if c.kind == "config"]
JSONL_CASES = [c for c in bench.CASES if c.kind == "jsonl"]


def test_the_benchmark_has_thirty_malformed_inputs():
    assert len(bench.CASES) == 30 and len({c.name for c in bench.CASES}) == 30


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An existing store and run folder (any bytes: they must stay as they are)."""
    for d in ("store", "cache"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "data.bin").write_bytes(os.urandom(64))
    asyncio.run(run_batch(specs(2), deps(0.0), tmp_path / "run"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIALWRIGHT_STORE_PATH", str(tmp_path / "store"))
    monkeypatch.setenv("TRIALWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "300")
    return tmp_path


@pytest.mark.skipif(not (DATA / "top").is_dir(), reason="real data not beside checkout")
@pytest.mark.parametrize("case", CSV_CASES, ids=lambda c: c.name)
def test_malformed_top_csv_is_one_clear_error(case, workdir, monkeypatch):
    rows = bench.real_rows(20)
    made = case.csv_bytes(rows)
    made = made if isinstance(made, dict) else {bench.TOP_FILE: made}
    top = workdir / "bad" / "top"
    top.mkdir(parents=True)
    for name, content in made.items():
        (top / name).write_bytes(content)
    monkeypatch.setenv("TRIALWRIGHT_TOP_FILES", json.dumps(sorted({bench.TOP_FILE, *made})))
    before = tree(workdir / "store") | tree(workdir / "run")
    res = runner.invoke(app, ["index", "--data", str(workdir / "bad")])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert all(s.lower() in res.output.lower() for s in case.expect), res.output
    assert tree(workdir / "store") | tree(workdir / "run") == before


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.name)
def test_malformed_settings_are_one_clear_error(case, workdir, monkeypatch):
    for name, content in (case.files or {}).items():
        (workdir / name).write_text(content)
    for k, v in (case.env or {}).items():
        monkeypatch.setenv(k, v)
    before = tree(workdir / "run")
    res = runner.invoke(app, ["generate", "--n", "2", "--llm", "fake", "--out", "run"])
    assert res.exit_code == 2, res.output
    assert all(s.lower() in res.output.lower() for s in case.expect), res.output
    assert tree(workdir / "run") == before


@pytest.mark.parametrize("case", JSONL_CASES, ids=lambda c: c.name)
def test_corrupt_resume_files_refuse_with_file_and_line(case, tmp_path):
    from trialwright.graph.batch import BatchError
    from trialwright.tools.trials import DataError

    asyncio.run(run_batch(specs(4), deps(0.0), tmp_path))
    name, mutate = case.run_file
    target = tmp_path / name
    target.write_bytes(mutate(target.read_bytes() if target.exists() else b""))
    before = tree(tmp_path)
    with pytest.raises((DataError, BatchError)) as info:
        asyncio.run(run_batch(specs(4), deps(0.0), tmp_path))
    assert all(s.lower() in str(info.value).lower() for s in case.expect), info.value
    assert tree(tmp_path) == before


def test_kill_9_under_faults_then_resume(tmp_path):
    """A batch on the real client path at 20 % faults, killed mid-way, resumes to exactly-once."""
    n = 16
    plan = FaultPlan.mixed(0.2, seed=4, hang_s=1.0, retry_after_s=0.05, latency_s=0.05)
    with FaultServer(plan) as srv:
        cmd = [sys.executable, str(ROOT / "bench" / "reliability.py"), "worker", str(tmp_path),
               str(n), srv.base_url]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        files = (tmp_path / "reports.jsonl", tmp_path / "rejected.jsonl")
        deadline = time.time() + 60
        while time.time() < deadline and sum(len(bench._ids(f)) for f in files) < 3:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert 3 <= sum(len(bench._ids(f)) for f in files) < n, "the kill must land mid-batch"
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=120)
    figures = bench.tally(tmp_path, bench.specs(n))
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["unexpected"] == 0
    assert json.loads((tmp_path / "run.json").read_text())["sessions"] == 2
    assert len(list(read_jsonl(files[0]))) + len(list(read_jsonl(files[1]))) == n
