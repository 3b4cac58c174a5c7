"""The critic on ground truth, before and after, on the embedded default (or any endpoint via
settings): parity of verdicts across claimed outcomes, rejection of planted defects, acceptance
of real registry records, and a phase-I batch at label ratio 0.5.

    python bench/critic.py                       # the issue's sizes; resumes from --run-dir
    python bench/critic.py --parity 4 --per-kind 1 --real 4 --batch 0 --llm fake   # plumbing

Every verdict is appended to <run-dir>/rows.jsonl as it lands (a re-run skips what is there), and
bench/results/critic.json is rewritten from all rows after each section, so a stopped run keeps
what it measured. `before` is the previous critic (its checks, then the unblinded 1-5 judge);
its batch figures are carried over from bench/results/generation.json (said so in the JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from trialwright.agents.calibration import (
    attach_critic_references,
    calibrate,
    describe_sample,
    labelled_sample,
    save_calibration,
)
from trialwright.agents.common import AgentDeps
from trialwright.eval.judges.probes import (
    ProbeItem,
    clean_records,
    defect_items,
    parity_items,
    real_items,
    run_probe,
    summarize,
)
from trialwright.tools.ctgov import load_records
from trialwright.tools.llm import open_endpoints
from trialwright.tools.settings import Settings
from trialwright.tools.versions import package_versions
from trialwright.tools.writer import JsonlWriter, read_jsonl, write_json_atomic

RESULTS = Path(__file__).parent / "results"


def _carried_before_batch() -> dict[str, Any]:
    gen = json.loads((RESULTS / "generation.json").read_text()).get("embedded", {})
    return {"carried_over": "bench/results/generation.json 'embedded' (an earlier session's "
                            f"{gen.get('reports')}-report {gen.get('phase')} run of the previous critic)",
            "accept_rate": gen.get("accept_rate"), "calls_per_accepted": gen.get("calls_per_accepted"),
            "n": gen.get("reports"),
            "accept_rate_by_label": None,  # that run did not record it; FACTS.md: 9 of 10 accepted were successes
            "reject_reasons": gen.get("reject_reasons")}


def _batch_figures(run_dir: Path) -> dict[str, Any] | None:
    run_file = run_dir / "batch" / "run.json"
    if not run_file.is_file():
        return None
    run = json.loads(run_file.read_text())
    recs = [*read_jsonl(run_dir / "batch" / "reports.jsonl"), *read_jsonl(run_dir / "batch" / "rejected.jsonl")]
    calls = sum(len(r["provenance"]["llm_calls"]) for r in recs)
    by_label = {}
    for label in ("0", "1"):
        mine = [r for r in recs if str(r["label"]) == label]
        k = sum(r["status"] == "accepted" for r in mine)
        by_label[label] = {"accepted": k, "n": len(mine), "rate": round(k / len(mine), 3) if mine else None}
    accepted = sum(v["accepted"] for v in by_label.values())
    return {"n": len(recs), "accept_rate": round(accepted / len(recs), 3) if recs else None,
            "accept_rate_by_label": {k: v["rate"] for k, v in by_label.items()}, "by_label": by_label,
            "calls_per_accepted": round(calls / accepted, 2) if accepted else None,
            "wall_s": run.get("wall_s"), "calibration": run.get("calibration"),
            "reject_reasons": _reasons(recs)}


def _reasons(recs: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in recs:
        for reason in r.get("reject_reasons", []):
            name = reason.split(":")[0].strip("- ")
            counts[name] = counts.get(name, 0) + 1
    return counts


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> None:
    data = {"before": {**summarize(rows, "before"), "batch": _carried_before_batch()},
            "after": {**summarize(rows, "after"), "batch": _batch_figures(args.run_dir)},
            **meta, "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    write_json_atomic(args.out, data)
    print(json.dumps({k: data[k] for k in ("before", "after")}, indent=1))


async def _run_items(items: list[ProbeItem], deps: AgentDeps, critic: str, writer: JsonlWriter,
                     done: set[str], rows: list[dict[str, Any]]) -> None:
    for item in items:
        key = f"{critic}|{item.key}"
        if key in done:
            continue
        t0 = time.perf_counter()
        row = {"id": key, **await run_probe(item, deps, critic), "wall_s": round(time.perf_counter() - t0, 2)}  # type: ignore[arg-type]
        writer.write(row)
        done.add(key)
        rows.append(row)
        print(f"{key}: {'accept' if row['accepted'] else 'reject'} ({row['stage']}) {row['wall_s']}s",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", default="phase 1")
    ap.add_argument("--parity", type=int, default=20, help="real trials, each claiming both outcomes")
    ap.add_argument("--per-kind", type=int, default=5)
    ap.add_argument("--real", type=int, default=20)
    ap.add_argument("--before-parity", type=int, default=10)
    ap.add_argument("--before-per-kind", type=int, default=3)
    ap.add_argument("--batch", type=int, default=20, help="phase-I reports at label ratio 0.5 (0: skip)")
    ap.add_argument("--calibrate", type=int, default=10, help="real labelled trials per label (0: skip)")
    ap.add_argument("--llm", default="auto")
    ap.add_argument("--run-dir", type=Path, default=Path("runs/bench-critic"))
    ap.add_argument("--out", type=Path, default=RESULTS / "critic.json")
    args = ap.parse_args()
    s = Settings()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    writer = JsonlWriter(args.run_dir / "rows.jsonl")
    rows = list(read_jsonl(args.run_dir / "rows.jsonl"))
    done = {r["id"] for r in rows}
    loaded = load_records(s.ctgov_records_path, label=1)
    # Registry-complete records (no primary outcome derived from prose) of the phase: all of them
    # for real-record acceptance; those every deterministic check passes for parity and defects.
    full = [r for r in loaded.records if r.trial.phase == args.phase
            and not any(d.startswith("primary_outcome") for d in r.derived)]
    pool = clean_records(full)
    labelled = load_records(s.ctgov_records_path, label="top").records
    meta: dict[str, Any] = {
        "phase": args.phase, "records": f"{s.ctgov_records_path.name}: {len(loaded.records)} parsed, "
        f"{len(full)} {args.phase} with registry primary outcomes, {len(pool)} of them pass every "
        "deterministic check as they are",
        "versions": package_versions(("trialwright", "xllamacpp", "langgraph", "langchain-openai"))}
    with open_endpoints(s, args.llm) as (generator, judge):
        deps = AgentDeps(settings=s, generator=generator, judge=judge)
        meta |= {"generator_model": generator.model_id, "judge_model": judge.model_id}
        deps = attach_critic_references(deps)
        if args.calibrate and deps.calibration is None:
            sample = labelled_sample(labelled, args.calibrate)
            t0 = time.perf_counter()
            deps.calibration = asyncio.run(calibrate(sample, deps, source=(
                f"{s.ctgov_records_path.name}: {describe_sample(sample)}, all phases")))
            save_calibration(deps.calibration, s)
            meta["calibration_wall_s"] = round(time.perf_counter() - t0, 1)
        meta["calibration"] = deps.calibration.model_dump(exclude={"scores"}) if deps.calibration else None
        meta["size_ranges"] = deps.ranges.source if deps.ranges else None
        # The headline comparison (parity, before vs after) first: a stopped run keeps it.
        sections = [("after", parity_items(pool, args.parity)),
                    ("before", parity_items(pool, args.before_parity)),
                    ("after", defect_items(pool, args.per_kind)),
                    ("before", defect_items(pool, args.before_per_kind)),
                    ("after", real_items(full, args.real))]
        for critic, items in sections:
            asyncio.run(_run_items(items, deps, critic, writer, done, rows))
            write_results(rows, args, meta)
        if args.batch:
            _run_batch(deps, args, s)
            write_results(rows, args, meta)


def _run_batch(deps: AgentDeps, args: argparse.Namespace, s: Settings) -> None:
    """The product's own loop on N planned phase-I specs (needs an indexed store)."""
    from trialwright.graph.batch import run_batch
    from trialwright.tools.encoder import Encoder
    from trialwright.tools.plan import plan_specs
    from trialwright.tools.privacy_index import corpus_index
    from trialwright.tools.store import open_nonempty_store
    from trialwright.tools.trials import load_top

    corpus = load_top(s.top_dir / f for f in s.top_files)
    specs = plan_specs(corpus, args.batch, seed=3, phase=args.phase, label_ratio=0.5)
    store = open_nonempty_store(s)
    try:
        deps.store, deps.encoder, deps.privacy = store, Encoder(s), corpus_index(s, corpus)
        asyncio.run(run_batch(specs, deps, args.run_dir / "batch", concurrency=2,
                              on_progress=lambda p: print(f"batch: {p.accepted} accepted, "
                                                          f"{p.rejected} rejected", flush=True)))
    finally:
        store.close()


if __name__ == "__main__":
    main()
