"""Reliability benchmark -> bench/results/reliability.json.

(a) faults: a batch through the real OpenAI client against the loopback fault server at 20 %
    faults (429 + Retry-After, 500, timeouts, dropped connections, truncated / malformed /
    schema-violating JSON, wrong labels): requested / accepted / rejected / lost / duplicated;
(b) kill9: one batch (same fault server) killed with SIGKILL at 10 random points, resumed after
    each, then run to the end: lost / duplicated, torn lines repaired, checkpoints resumed;
(c) inputs: 30 malformed input files through the `trialwright` CLI (TOP CSVs for `index`,
    the run folder's JSONL/JSON for `generate`'s resume, TOML / .env / environment settings):
    each must exit non-zero with one clear line naming the file or field, no traceback, and
    leave every existing output byte-identical (sha256 of the store, cache and run folder);
(d) ray: the Ray backend's overhead per report vs asyncio on the 200 ms fake LLM, and the Ray
    driver killed with SIGKILL mid-batch, then resumed (also -> results/generation_ray.json).

    python bench/reliability.py [--quick] [--only faults,kill9,inputs,ray]
    python bench/reliability.py worker OUT N BASE_URL   (the killable batch, used by (b))
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trialwright.agents.common import AgentDeps
from trialwright.graph.batch import run_batch
from trialwright.tools.llm import chat_endpoint
from trialwright.tools.schema import Spec
from trialwright.tools.settings import Settings
from trialwright.tools.writer import read_jsonl

from tests.doubles import FixedStore, HashEncoder, fake_deps
from tests.fault_server import FAULTS, FaultPlan, FaultServer

RESULTS = ROOT / "bench" / "results" / "reliability.json"
DATA = (ROOT / Settings().data_dir).resolve()


# --- shared ---------------------------------------------------------------------------------------

def specs(n: int) -> list[Spec]:
    return [Spec(spec_id=f"q{i:04d}", phase="phase 2", label=i % 2, condition="asthma",
                 intervention="budesonide", seed=i) for i in range(n)]


def endpoint_deps(base_url: str, *, timeout_s: float = 0.5, retries: int = 2) -> AgentDeps:
    """The real client path (ChatOpenAI, its retries and backoff) against `base_url`."""
    s = Settings(k_evidence=2, llm_timeout_s=timeout_s, llm_max_retries=retries)
    ep = chat_endpoint(s, base_url=base_url, model="fault-model", api_key="bench-key")
    return AgentDeps(settings=s, generator=ep, judge=ep, store=FixedStore(),  # type: ignore[arg-type]
                     encoder=HashEncoder())  # type: ignore[arg-type]


def tally(out: Path, requested: list[Spec]) -> dict:
    """Requested / accepted / rejected / lost / duplicated from the files on disk."""
    acc = [r["id"] for r in read_jsonl(out / "reports.jsonl")]
    rej = [r["id"] for r in read_jsonl(out / "rejected.jsonl")]
    seen = Counter(acc + rej)
    want = {s.spec_id for s in requested}
    return {"requested": len(want), "accepted": len(set(acc)), "rejected": len(set(rej)),
            "lost": len(want - set(seen)), "duplicated": sum(v - 1 for v in seen.values()),
            "unexpected": len(set(seen) - want)}


def error_kinds(out: Path) -> dict[str, int]:
    """How the recorded failures read, by kind (first words of each error)."""
    kinds: Counter[str] = Counter()
    for name in ("reports.jsonl", "rejected.jsonl"):
        for rec in read_jsonl(out / name):
            for call in rec["provenance"]["llm_calls"]:
                for e in call["errors"]:
                    head = e.split(":")[0]
                    detail = e.split(":")[1].strip().split(" ")[0] if ":" in e else ""
                    kinds[f"{head}: {detail}"] += 1
            for reason in rec["reject_reasons"]:
                if reason.startswith("error:"):
                    kinds["batch error (report timeout / exception)"] += 1
    return dict(kinds.most_common())


def _bytes(out: Path) -> bytes:
    return b"".join((out / n).read_bytes() for n in ("reports.jsonl", "rejected.jsonl")
                    if (out / n).exists())


# --- (a) 20 % faults ------------------------------------------------------------------------------

def fault_run(n: int, rate: float, concurrency: int, seed: int = 0) -> dict:
    batch = specs(n)
    plan = FaultPlan.mixed(rate, seed=seed, hang_s=1.0, retry_after_s=0.05)
    crashes, crash_msgs = 0, []
    with tempfile.TemporaryDirectory() as tmp, FaultServer(plan) as srv:
        out = Path(tmp)
        t0 = time.perf_counter()
        try:
            summary = asyncio.run(run_batch(batch, endpoint_deps(srv.base_url), out,
                                            concurrency=concurrency))
        except Exception as exc:  # noqa: BLE001 - a crash is what we measure
            crashes, crash_msgs, summary = 1, [f"{type(exc).__name__}: {exc}"], {}
        wall = time.perf_counter() - t0
        figures = tally(out, batch)
        # A second run over the finished folder must write nothing (idempotent resume).
        before = _bytes(out)
        again = asyncio.run(run_batch(batch, endpoint_deps(srv.base_url), out))
        after = _bytes(out)
        served = srv.served
        errors = error_kinds(out)
        calls = [c for name in ("reports.jsonl", "rejected.jsonl")
                 for r in read_jsonl(out / name) for c in r["provenance"]["llm_calls"]]
    faults = Counter(s.fault for s in served)
    return {
        **figures, "crashes": crashes, "crash_messages": crash_msgs,
        "fault_rate_configured": rate, "concurrency": concurrency, "wall_s": round(wall, 2),
        "http_requests": len(served),
        "fault_rate_observed": round(1 - faults["ok"] / max(1, len(served)), 4),
        "faults_served": {k: faults.get(k, 0) for k in FAULTS},
        "llm_calls": len(calls), "llm_calls_failed": sum(not c["ok"] for c in calls),
        "llm_calls_repaired": sum(c["ok"] and c["attempts"] > 1 for c in calls),
        "recorded_errors": errors,
        "revisions": summary.get("revisions"),
        "rerun_wrote_nothing": before == after and again["this_session"]["generated"] == 0,
    }


# --- (b) kill -9 ----------------------------------------------------------------------------------

def _ids(path: Path) -> list[str]:
    ids = []
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                ids.append(json.loads(line)["id"])
            except (ValueError, KeyError):
                pass  # a torn last line: the next session repairs it
    return ids


def _torn(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")


def _threads(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(DISTINCT thread_id) FROM checkpoints").fetchone()[0]
    except sqlite3.Error:
        return -1


def kill_run(n: int, kills: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    batch = specs(n)
    plan = FaultPlan.mixed(0.2, seed=seed, hang_s=1.0, retry_after_s=0.05, latency_s=0.05)
    points = []
    with tempfile.TemporaryDirectory() as tmp, FaultServer(plan) as srv:
        out = Path(tmp) / "run"
        code = snapshot_source(ROOT, Path(tmp) / "src")  # resumes must see the same prompts
        cmd = [sys.executable, str(code / "bench" / "reliability.py"), "worker", str(out), str(n),
               srv.base_url]
        env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
        files = (out / "reports.jsonl", out / "rejected.jsonl")
        for i in range(kills):
            before = sum(len(_ids(f)) for f in files)
            # Most kills wait for a few new records (so they land mid-batch, not at start-up);
            # some are purely timed, which also hits start-up, resume and checkpoint reads.
            timed_kill = rng.random() < 0.3
            wait_for = 0 if timed_kill else rng.randint(1, max(1, (n - before) // (kills - i + 1)))
            extra_delay = round(rng.uniform(0.5, 4.0) if timed_kill else rng.uniform(0.0, 0.4), 3)
            proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            t0 = time.time()
            while (time.time() - t0 < 90 and proc.poll() is None
                   and sum(len(_ids(f)) for f in files) < before + wait_for):
                time.sleep(0.02)
            time.sleep(extra_delay)
            finished_first = proc.poll() is not None
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            written = [x for f in files for x in _ids(f)]
            points.append({
                "kill": i + 1, "timed": timed_kill, "after_s": round(time.time() - t0, 2),
                "written_before": before, "written_at_kill": len(written),
                "finished_before_kill": finished_first,
                "torn_last_line": any(_torn(f) for f in files),
                "threads_checkpointed_mid_graph": _threads(out / "checkpoints.sqlite"),
                "duplicates_on_disk": len(written) - len(set(written)),
                "worker_crashed": "Traceback" in stderr and not finished_first,
            })
        t0 = time.time()
        final = subprocess.run(cmd, cwd=code, env=env, capture_output=True, timeout=300,
                               check=False)
        figures = tally(out, batch)
        run = json.loads((out / "run.json").read_text())
    return {**figures, "kills": kills, "kill_points": points,
            "kills_landing_mid_batch": sum(not p["finished_before_kill"] for p in points),
            "final_resume": {"exit_code": final.returncode, "wall_s": round(time.time() - t0, 2),
                             "sessions": run["sessions"], "status": run["status"]},
            "crashes": int(final.returncode != 0) + sum(p["worker_crashed"] for p in points)}


def worker(out: Path, n: int, base_url: str) -> None:
    asyncio.run(run_batch(specs(n), endpoint_deps(base_url), out, concurrency=4))


# --- (c) malformed inputs -------------------------------------------------------------------------

TOP_FILE = "phase_I_train.csv"
HEADER = ["nctid", "status", "why_stop", "label", "phase", "diseases", "icdcodes", "drugs",
          "smiless", "criteria"]


def real_rows(n: int = 40) -> list[list[str]]:
    """Header + the first n real TOP rows (a row may span lines: cut with the csv module)."""
    text = (DATA / "top" / TOP_FILE).read_text(encoding="utf-8")
    return list(csv.reader(io.StringIO(text)))[: n + 1]


def to_csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def edit(rows: list[list[str]], row: int, column: str, value: str) -> bytes:
    rows = [list(r) for r in rows]
    rows[row][HEADER.index(column)] = value
    return to_csv(rows)


def drop_column(rows: list[list[str]], column: str) -> bytes:
    i = HEADER.index(column)
    return to_csv([r[:i] + r[i + 1:] for r in rows])


@dataclass
class Case:
    """One malformed input: what to write, which command meets it, what the error must name."""

    name: str
    kind: str  # csv | jsonl | config
    expect: tuple[str, ...]  # substrings of the error (file and field / setting)
    csv_bytes: Callable[[list[list[str]]], bytes | dict[str, bytes]] | None = None
    run_file: tuple[str, Callable[[bytes], bytes]] | None = None  # file in the run folder
    files: dict[str, str] | None = None  # config files written in the working directory
    env: dict[str, str] | None = None


def _corrupt_line(data: bytes, new: bytes, at: int = 1) -> bytes:
    lines = data.splitlines(keepends=True)
    lines[at] = new + b"\n"
    return b"".join(lines)


CASES: list[Case] = [
    # TOP CSVs read by `trialwright index --data DIR`
    Case("csv_missing_criteria_column", "csv", (TOP_FILE, "criteria"),
         lambda r: drop_column(r, "criteria")),
    Case("csv_missing_nctid_column", "csv", (TOP_FILE, "nctid"), lambda r: drop_column(r, "nctid")),
    Case("csv_short_nct_id", "csv", (TOP_FILE, "row 3", "nctid"), lambda r: edit(r, 3, "nctid", "NCT123")),
    Case("csv_label_two", "csv", (TOP_FILE, "row 2", "label"), lambda r: edit(r, 2, "label", "2")),
    Case("csv_label_word", "csv", (TOP_FILE, "row 7", "label"), lambda r: edit(r, 7, "label", "yes")),
    Case("csv_unknown_phase", "csv", (TOP_FILE, "row 4", "phase"), lambda r: edit(r, 4, "phase", "phase 5")),
    Case("csv_roman_phase", "csv", (TOP_FILE, "row 6", "phase"), lambda r: edit(r, 6, "phase", "Phase III")),
    Case("csv_empty_criteria", "csv", (TOP_FILE, "row 9", "criteria"), lambda r: edit(r, 9, "criteria", "  ")),
    Case("csv_diseases_unclosed_list", "csv", (TOP_FILE, "row 10", "diseases"),
         lambda r: edit(r, 10, "diseases", "['asthma'")),
    Case("csv_diseases_not_a_list", "csv", (TOP_FILE, "row 11", "diseases"),
         lambda r: edit(r, 11, "diseases", "'asthma'")),
    Case("csv_diseases_empty_list", "csv", (TOP_FILE, "row 12", "diseases"),
         lambda r: edit(r, 12, "diseases", "[]")),
    Case("csv_drugs_code_not_literal", "csv", (TOP_FILE, "row 13", "drugs"),
         lambda r: edit(r, 13, "drugs", "__import__('os').system('true')")),
    Case("csv_icdcodes_garbled", "csv", (TOP_FILE, "row 14", "icdcodes"),
         lambda r: edit(r, 14, "icdcodes", "[\"['D02.20'\"")),
    Case("csv_duplicate_id", "csv", (TOP_FILE, "row 15", "duplicate"),
         lambda r: edit(r, 15, "nctid", r[1][0])),
    Case("csv_extra_cells", "csv", (TOP_FILE, "row 16", "cells"),
         lambda r: to_csv([*r[:16], r[16] + ["surplus"], *r[17:]])),
    Case("csv_latin1_bytes", "csv", (TOP_FILE, "UTF-8"),
         lambda r: to_csv(r).replace(b"Inclusion", "Inclusión".encode("latin-1"), 1)),
    Case("csv_empty_file", "csv", (TOP_FILE, "empty"), lambda r: b""),
    Case("csv_header_only", "csv", (TOP_FILE, "no data rows"), lambda r: to_csv(r[:1])),
    Case("csv_binary_garbage", "csv", (TOP_FILE,), lambda r: bytes(random.Random(1).randbytes(4096))),
    Case("csv_file_missing", "csv", (TOP_FILE, "not found"), lambda r: {}),
    Case("csv_conflicting_labels_across_files", "csv", ("phase_I_valid.csv", "label"),
         lambda r: {TOP_FILE: to_csv(r[:6]), "phase_I_valid.csv": edit(r[:6], 1, "label",
                                                                     "1" if r[1][3] == "0" else "0")}),
    # the run folder's resume files, read by `trialwright generate --out RUN`
    Case("jsonl_reports_line_not_json", "jsonl", ("reports.jsonl", "line 2"),
         run_file=("reports.jsonl", lambda d: _corrupt_line(d, b'{"id": "s0-00001", "status": '))),
    Case("jsonl_reports_line_without_id", "jsonl", ("reports.jsonl", "line 2", "id"),
         run_file=("reports.jsonl", lambda d: _corrupt_line(d, b'{"status": "accepted"}'))),
    Case("jsonl_rejected_not_utf8", "jsonl", ("rejected.jsonl", "line 1"),
         run_file=("rejected.jsonl", lambda d: b'{"id": "\xff\xfe"}\n' + d)),
    Case("json_run_file_not_json", "jsonl", ("run.json", "not valid JSON"),
         run_file=("run.json", lambda d: d[: len(d) // 2])),
    # settings: trialwright.toml, .env, environment
    Case("toml_syntax_error", "config", ("trialwright.toml", "TOML"),
         files={"trialwright.toml": "k_evidence = 3\nmax_revisions = = 2\n"}),
    Case("toml_wrong_type", "config", ("k_evidence",),
         files={"trialwright.toml": 'k_evidence = "lots"\n'}),
    Case("dotenv_out_of_range", "config", ("llm_temperature",),
         files={".env": "TRIALWRIGHT_LLM_TEMPERATURE=5\n"}),
    Case("env_list_not_json", "config", ("top_files", "TRIALWRIGHT_TOP_FILES"),
         env={"TRIALWRIGHT_TOP_FILES": "[phase_I_train.csv"}),
    Case("env_config_file_missing", "config", ("missing.toml",),
         env={"TRIALWRIGHT_CONFIG": "missing.toml"}),
]


def tree_hash(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.exists() else []:
            if p.is_file():
                out[str(p.relative_to(root.parent))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _cli(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trialwright.app.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def snapshot_source(src: Path, dst: Path) -> Path:
    """Copy the packages the CLI runs from, so edits made meanwhile (a prompt changed in the
    working tree changes the run fingerprint) cannot change the answer half-way."""
    for pkg in ("tools", "agents", "graph", "eval", "app"):
        if (src / pkg).is_dir():
            shutil.copytree(src / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (dst / "bench").mkdir(exist_ok=True)
    shutil.copy2(Path(__file__).resolve(), dst / "bench" / "reliability.py")
    return dst


def prepare_workdir(root: Path, src: Path = ROOT) -> dict[str, str]:
    """A real 40-trial slice, indexed with the real encoder, and a finished fake-LLM run."""
    (root / "data" / "top").mkdir(parents=True)
    (root / "data" / "top" / TOP_FILE).write_bytes(to_csv(real_rows()))
    code = snapshot_source(src, root / "src")
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TRIALWRIGHT_DATA_DIR": str(root / "data"),
           "TRIALWRIGHT_TOP_FILES": json.dumps([TOP_FILE]),
           "TRIALWRIGHT_STORE_PATH": str(root / "store"),
           "TRIALWRIGHT_CACHE_DIR": str(root / "cache"), "COLUMNS": "200"}
    for k in [k for k in env if k.startswith("TRIALWRIGHT_") and k not in (
            "TRIALWRIGHT_DATA_DIR", "TRIALWRIGHT_TOP_FILES", "TRIALWRIGHT_STORE_PATH",
            "TRIALWRIGHT_CACHE_DIR")]:
        del env[k]
    for args in (["index"], ["generate", "--n", "4", "--llm", "fake", "--out", "run"]):
        res = _cli(args, root, env)
        if res.returncode:
            raise RuntimeError(f"set-up {args} failed: {res.stderr[-2000:]}")
    return env


def run_case(case: Case, root: Path, env: dict[str, str], rows: list[list[str]]) -> dict:
    env = {**env, **(case.env or {})}
    pristine = root / "run.pristine"
    shutil.rmtree(root / "run")
    shutil.copytree(pristine, root / "run")
    if case.kind == "csv":
        data = root / "bad" / case.name
        (data / "top").mkdir(parents=True)
        made = case.csv_bytes(rows)  # type: ignore[misc]
        made = made if isinstance(made, dict) else {TOP_FILE: made}
        for name, content in made.items():
            (data / "top" / name).write_bytes(content)
        env["TRIALWRIGHT_TOP_FILES"] = json.dumps(sorted({TOP_FILE, *made}))
        args = ["index", "--data", str(data)]
    else:
        if case.run_file:
            name, mutate = case.run_file
            target = root / "run" / name
            target.write_bytes(mutate(target.read_bytes() if target.exists() else b""))
        for name, content in (case.files or {}).items():
            (root / name).write_text(content)
        args = ["generate", "--n", "4", "--llm", "fake", "--out", "run"]
    before = tree_hash(root / "store", root / "cache", root / "run")
    t0 = time.perf_counter()
    res = _cli(args, root, env)
    wall = time.perf_counter() - t0
    after = tree_hash(root / "store", root / "cache", root / "run")
    for name in case.files or {}:
        (root / name).unlink()
    text = res.stderr + res.stdout
    lines = [x for x in res.stderr.strip().splitlines() if x.strip()]
    named = all(s.lower() in text.lower() for s in case.expect)
    traceback = "Traceback" in text
    return {"case": case.name, "kind": case.kind, "exit_code": res.returncode,
            # the temp folder is machine-specific: results name files relative to it
            "error": (lines[-1] if lines else "").replace(str(root), "<workdir>")[:300], "names_file_or_field": named,
            "traceback": traceback, "outputs_untouched": before == after,
            "clear": res.returncode != 0 and named and not traceback and before == after,
            "wall_s": round(wall, 2)}


def input_run(cases: list[Case], src: Path = ROOT) -> dict:
    rows = real_rows()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = prepare_workdir(root, src)
        shutil.copytree(root / "run", root / "run.pristine")
        results = [run_case(c, root, env, rows) for c in cases]
    return {"source": "repo" if src == ROOT else "snapshot copy of the repo", "files": len(results), "by_kind": dict(Counter(r["kind"] for r in results)),
            "clear_errors": sum(r["clear"] for r in results),
            "non_zero_exit": sum(r["exit_code"] != 0 for r in results),
            "outputs_untouched": sum(r["outputs_untouched"] for r in results),
            "crashes": sum(r["traceback"] for r in results),
            "not_clear": [r["case"] for r in results if not r["clear"]], "cases": results}


# --- (d) Ray backend: overhead per report vs asyncio, and kill -9 of the driver ----------------

def ray_run(n_wide: int = 32, kills: int = 2) -> dict:
    """Both back-ends on the 200 ms fake LLM (3 calls per accepted report)."""
    import ray
    from trialwright.graph.ray_backend import WorkerDeps, run_batch_ray

    from tests.doubles import FakeDeps

    latency, rows = 0.2, []

    def asyncio_deps() -> AgentDeps:
        return fake_deps(latency)

    def row(backend: str, n: int, c: int, wall: float, note: str = "") -> dict:
        ideal = n * 3 * latency / c
        return {"backend": backend, "reports": n, "concurrency": c, "wall_s": round(wall, 3),
                "ideal_s": round(ideal, 3), "overhead_per_report_ms": round(1000 * (wall - ideal) / n, 1),
                "reports_per_s": round(n / wall, 2), "note": note}

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}})
    init_s = time.perf_counter() - t0
    try:
        for n, c in ((8, 1), (n_wide, 8)):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                asyncio.run(run_batch(specs(n), asyncio_deps(), Path(tmp), concurrency=c))
                rows.append(row("asyncio", n, c, time.perf_counter() - t0))
            factory = FakeDeps(latency_s=latency)
            wdeps = WorkerDeps.like(factory(), factory)
            for note in ("cold: starts worker processes", "warm: workers running"):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    summary = run_batch_ray(specs(n), wdeps, Path(tmp), max_in_flight=c,
                                            num_cpus_per_task=(os.cpu_count() or 1) / max(c, 1))
                    rows.append(row("ray", n, c, time.perf_counter() - t0, note))
                    assert summary["accepted"] == n, summary
    finally:
        ray.shutdown()
    return {"llm_latency_s": latency, "ray_init_s": round(init_s, 2), "runs": rows,
            "driver_kill9": ray_kill_run(24, kills) if kills else None}


def ray_kill_run(n: int, kills: int, seed: int = 0) -> dict:
    """SIGKILL the Ray driver mid-batch `kills` times (its local Ray goes with it), resume."""
    rng = random.Random(seed)
    batch = specs(n)
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        code = snapshot_source(ROOT, Path(tmp) / "src")
        cmd = [sys.executable, str(code / "bench" / "reliability.py"), "ray-worker", str(out), str(n)]
        env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
        files = (out / "reports.jsonl", out / "rejected.jsonl")
        for i in range(kills):
            before = sum(len(_ids(f)) for f in files)
            wait_for = rng.randint(2, 6)
            proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            t0 = time.time()
            while (time.time() - t0 < 120 and proc.poll() is None
                   and sum(len(_ids(f)) for f in files) < before + wait_for):
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            written = [x for f in files for x in _ids(f)]
            time.sleep(3)  # the local Ray started by the driver should notice it is gone
            left = _session_pids(proc.pid)
            for pid in left:  # clean up what did not exit by itself (only this session's)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            points.append({"kill": i + 1, "after_s": round(time.time() - t0, 2),
                           "written_before": before, "written_at_kill": len(written),
                           "checkpoint_files": len(list((out / "ray-checkpoints").glob("*.sqlite"))),
                           "ray_processes_left_after_3s": len(left)})
        final = subprocess.run(cmd, cwd=code, env=env, capture_output=True, timeout=300,
                               check=False)
        figures = tally(out, batch)
        run = json.loads((out / "run.json").read_text())
    return {**figures, "kill_points": points, "final_exit_code": final.returncode,
            "sessions": run["sessions"], "crashes": int(final.returncode != 0)}


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def ray_worker(out: Path, n: int) -> None:
    from trialwright.graph.ray_backend import WorkerDeps, run_batch_ray

    from tests.doubles import FakeDeps

    factory = FakeDeps(latency_s=0.2)
    run_batch_ray(specs(n), WorkerDeps.like(factory(), factory), out, max_in_flight=4,
                  init_kwargs={"num_cpus": 2, "runtime_env": {"env_vars": {
                      "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}}})


# --- main -----------------------------------------------------------------------------------------

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "ray-worker":
        ray_worker(Path(sys.argv[2]), int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="faults,kill9,inputs,ray")
    ap.add_argument("--src", type=Path, default=ROOT,
                    help="checkout whose CLI meets the malformed inputs (e.g. a patched copy)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    parts = set(args.only.split(","))
    results: dict = json.loads(args.results.read_text()) if args.results.exists() else {}
    if "faults" in parts:
        results["faults_20pct"] = fault_run(40 if args.quick else 200, 0.2, concurrency=16)
        # and well past the target, so that rejections (and how they are recorded) show up
        results["faults_50pct"] = fault_run(40 if args.quick else 80, 0.5, concurrency=16)
        for key in ("faults_20pct", "faults_50pct"):
            print(f"{key}:", json.dumps({k: results[key][k] for k in (
                "requested", "accepted", "rejected", "lost", "duplicated", "crashes", "wall_s")}))
    if "kill9" in parts:
        results["kill9"] = kill_run(30 if args.quick else 80, kills=10)
        print("kill9:", json.dumps({k: results["kill9"][k] for k in (
            "requested", "accepted", "rejected", "lost", "duplicated", "crashes",
            "kills_landing_mid_batch")}))
    if "ray" in parts:
        results["ray_backend"] = ray_run(16 if args.quick else 32, kills=2)
        (RESULTS.parent / "generation_ray.json").write_text(json.dumps(results["ray_backend"], indent=2))
        for r in results["ray_backend"]["runs"]:
            print(f"{r['backend']:8s} c={r['concurrency']:>2} n={r['reports']:>3} wall {r['wall_s']:6.2f}s "
                  f"ideal {r['ideal_s']:5.2f}s overhead {r['overhead_per_report_ms']:7.1f} ms/report {r['note']}")
        print("ray driver kill -9:", json.dumps({k: v for k, v in results["ray_backend"]["driver_kill9"].items()
                                                 if k != "kill_points"}))
    if "inputs" in parts:
        results["malformed_inputs"] = input_run(CASES, args.src.resolve())
        r = results["malformed_inputs"]
        print(f"inputs: {r['clear_errors']}/{r['files']} clear, {r['non_zero_exit']} non-zero, "
              f"{r['outputs_untouched']} untouched, {r['crashes']} tracebacks; "
              f"not clear: {r['not_clear']}")
    sections = [results[k] for k in ("faults_20pct", "faults_50pct", "kill9") if k in results]
    if (results.get("ray_backend") or {}).get("driver_kill9"):
        sections.append(results["ray_backend"]["driver_kill9"])
    mi = results.get("malformed_inputs", {})
    results["targets"] = {
        "lost": sum(s["lost"] for s in sections), "duplicated": sum(s["duplicated"] for s in sections),
        "crashes": sum(s["crashes"] for s in sections) + mi.get("crashes", 0),
        "malformed_inputs_clear": f"{mi.get('clear_errors')}/{mi.get('files')}",
        "met": (all(s["lost"] == 0 and s["duplicated"] == 0 and s["crashes"] == 0 for s in sections)
                and mi.get("clear_errors") == mi.get("files")),
    }
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                          "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2))
    print(json.dumps(results["targets"]), f"\nwrote {args.results}")


if __name__ == "__main__":
    main()
