"""Scale benchmark -> bench/results/scale.json: peak memory and wall time of a whole batch.

The instant fake LLM (`tests.doubles.fake_deps`) at 1k, 10k and 100k specs, each N in a child
process of its own (peak RSS by `resource.getrusage` in the child, so one size cannot inflate
the next): the batch engine, checkpoints, writer, run.json and Parquet copies, nothing else.
Target: peak RSS <= 1 GB at 100k and roughly flat in N.

A size whose wall time, estimated from the last measured per-spec rate, is over --max-minutes
is not run; its entry says so, with the estimate.

    python bench/scale.py [--sizes 1000,10000,100000] [--concurrency 8] [--max-minutes 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).parent / "results" / "scale.json"


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def child(n: int, concurrency: int) -> dict:
    """One batch of n specs in this process; returns its measurements."""
    from trialwright.graph.batch import run_batch
    from trialwright.tools.schema import Spec

    from tests.doubles import fake_deps

    deps = fake_deps(0.0)
    baseline = _rss_mb()  # interpreter, libraries, deps: what every size pays
    specs = [Spec(spec_id=f"x{i:06d}", phase="phase 2", label=i % 2, condition="asthma",
                  intervention="budesonide", seed=i) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = asyncio.run(run_batch(specs, deps, Path(tmp), concurrency=concurrency))
        wall = time.perf_counter() - t0
        files_mb = sum(f.stat().st_size for f in Path(tmp).iterdir() if f.is_file()) / 2**20
    assert summary["accepted"] + summary["rejected"] == n, summary
    return {"specs": n, "concurrency": concurrency, "peak_rss_mb": _rss_mb(),
            "baseline_rss_mb": baseline, "wall_s": round(wall, 2),
            "per_spec_ms": round(1000 * wall / n, 2), "accepted": summary["accepted"],
            "output_mb": round(files_mb, 1)}


def measure(n: int, concurrency: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(n),
                           "--concurrency", str(concurrency)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode:
        return {"specs": n, "error": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-minutes", type=float, default=15.0,
                    help="skip a size whose estimated wall time is longer")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.concurrency)))
        return

    results: dict = {"llm": "fake (tests.doubles.fake_deps, no latency)",
                     "max_minutes": args.max_minutes, "target": "peak_rss_mb <= 1024 at 100000"}
    rate = None  # seconds per spec, from the last size measured
    for n in (int(x) for x in args.sizes.split(",")):
        if rate is not None and rate * n > 60 * args.max_minutes:
            results[str(n)] = {"specs": n, "not_run": f"estimated {rate * n / 60:.0f} min at "
                               f"{1000 * rate:.1f} ms/spec, over --max-minutes",
                               "estimated_wall_s": round(rate * n)}
        else:
            results[str(n)] = measure(n, args.concurrency)
            if "wall_s" in results[str(n)]:
                rate = results[str(n)]["wall_s"] / n
        print(json.dumps({str(n): results[str(n)]}), flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
