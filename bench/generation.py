"""Generation benchmark -> bench/results/generation.json.

(a) instant fake LLM: reports/s and orchestration overhead per report (graph, checks,
    SQLite checkpoints, writer);
(b) fake LLM with 200 ms per call at concurrency 1, 8, 32: wall time vs the ideal bound
    (sum of LLM latency / concurrency);
(c) --embedded: the real embedded model: seconds per report, LLM calls and tokens per accepted
    report, tokens/s vs llama.cpp's raw speed on the same model (slow: minutes).

    python bench/generation.py [--quick] [--embedded N [--phase P] [--keep DIR]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trialwright.graph.batch import run_batch
from trialwright.tools.schema import Spec

from tests.doubles import fake_deps

RESULTS = Path(__file__).parent / "results" / "generation.json"
CALLS_PER_REPORT = 3  # reason, draft, judge when accepted first time


def specs(n: int) -> list[Spec]:
    return [Spec(spec_id=f"b{i:05d}", phase="phase 2", label=i % 2, condition="asthma",
                 intervention="budesonide", seed=i) for i in range(n)]


def timed_batch(n: int, latency: float, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = asyncio.run(run_batch(specs(n), fake_deps(latency), Path(tmp),
                                        concurrency=concurrency))
        wall = time.perf_counter() - t0
    assert summary["accepted"] == n, summary
    ideal = n * CALLS_PER_REPORT * latency / concurrency
    return {"reports": n, "concurrency": concurrency, "llm_latency_s": latency,
            "wall_s": round(wall, 3), "ideal_s": round(ideal, 3),
            "reports_per_s": round(n / wall, 2),
            "overhead_per_report_ms": round(1000 * (wall - ideal) / n, 2),
            "overhead_share_of_wall": round((wall - ideal) / wall, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--embedded", type=int, default=0, help="also run N reports on the real model")
    ap.add_argument("--phase", help="embedded run: one phase instead of the real mix")
    ap.add_argument("--keep", type=Path, help="embedded run: keep its files here (resumable)")
    ap.add_argument("--seed", type=int, default=0, help="embedded run: plan seed")
    args = ap.parse_args()
    n_instant, n_latency = (20, 32) if args.quick else (100, 128)
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["instant"] = [timed_batch(n_instant, 0.0, c) for c in (1, 8)]
    # c=32 twice: one wave of reports that all start together (the CPU work of every report
    # lands at the same moments), and a long batch in steady state (five times as many reports)
    runs = [(1, 16), (8, n_latency), (32, n_latency), (32, 5 * n_latency)]
    results["latency_200ms"] = [timed_batch(n, 0.2, c) for c, n in runs]
    if args.embedded:
        from bench.embedded import embedded_run

        fresh = embedded_run(args.embedded, phase=args.phase, keep=args.keep, seed=args.seed)
        old = results.get("embedded") or {}
        if fresh["seconds_per_report"] is None and old.get("corpus") == fresh["corpus"] and \
                old.get("reports") == fresh["reports"]:
            # a resumed run that had nothing left: keep the generating session's timings
            fresh |= {k: old.get(k) for k in ("wall_s_this_session", "seconds_per_report",
                                              "session_output_tokens_per_wall_s")}
            fresh["timings_from"] = "the session that generated the reports"
        results["embedded"] = fresh
    ray = RESULTS.with_name("generation_ray.json")  # measured by bench/reliability.py --only ray
    if ray.exists():
        results["ray_vs_asyncio"] = {"source": "bench/results/generation_ray.json",
                                     **json.loads(ray.read_text())}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    for key in ("instant", "latency_200ms"):
        for r in results[key]:
            print(f"{key:14s} c={r['concurrency']:>2} n={r['reports']:>3} wall {r['wall_s']:7.2f}s "
                  f"ideal {r['ideal_s']:6.2f}s  {r['reports_per_s']:7.1f} rep/s  overhead "
                  f"{r['overhead_per_report_ms']:6.1f} ms/rep ({r['overhead_share_of_wall']:.1%})")
    if "embedded" in results:
        print(json.dumps(results["embedded"], indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
