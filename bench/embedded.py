"""The real embedded model through the whole loop: part (c) of bench/generation.py.

Runs N planned specs (real TOP mix, label ratio 0.5) on the embedded llama.cpp server with the
real store and encoder, then asks the same server for a plain completion of the same length to
measure llama.cpp's own speed side by side. Reports seconds per report, accept rate, LLM calls
and tokens per accepted report, and the pipeline's token rate against the raw one.

Needs an indexed store (`trialwright index`) and the embedded model (first use assembles it).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from trialwright.agents.common import AgentDeps
from trialwright.graph.batch import run_batch
from trialwright.tools.encoder import Encoder
from trialwright.tools.llm import open_endpoints
from trialwright.tools.plan import plan_specs
from trialwright.tools.privacy_index import corpus_index
from trialwright.tools.settings import Settings
from trialwright.tools.store import open_nonempty_store
from trialwright.tools.trials import load_top
from trialwright.tools.writer import read_jsonl

RAW_PROMPT = ("Write a detailed plain-text description of a randomized phase 2 clinical trial of "
              "an inhaled corticosteroid in adults with persistent asthma: design, arms, "
              "eligibility criteria and primary outcome.")


def raw_speed(base_url: str, model: str, max_tokens: int, repeats: int = 2,
              context: str = "") -> dict[str, float]:
    """llama.cpp's own prompt and generation tokens/s (its `timings`), no schema, no agents.

    `context`: text put before the request, so prompt speed is measured on a prompt as long as
    the loop's (a short prompt's per-token speed is mostly fixed overhead)."""
    gen, prompt = [], []
    for i in range(repeats):
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0.7, "seed": i,
                "messages": [{"role": "user", "content": f"{context}\n\n{RAW_PROMPT} (variant {i})"}]}
        res = httpx.post(f"{base_url}/chat/completions", json=body, timeout=600).json()
        t = res["timings"]
        gen.append(t["predicted_per_second"])
        prompt.append(t["prompt_per_second"])
    return {"generation_tokens_per_s": round(statistics.median(gen), 2),
            "prompt_tokens_per_s": round(statistics.median(prompt), 2), "max_tokens": max_tokens}


def raw_parallel(base_url: str, model: str, max_tokens: int, streams: int) -> dict[str, float]:
    """Aggregate generation tokens/s of `streams` plain completions at once (the server's slots)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> int:
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0.7, "seed": 100 + i,
                "messages": [{"role": "user", "content": f"{RAW_PROMPT} (stream {i})"}]}
        return httpx.post(f"{base_url}/chat/completions", json=body,
                          timeout=600).json()["usage"]["completion_tokens"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        tokens = sum(pool.map(one, range(streams)))
    return {"streams": streams, "aggregate_tokens_per_s": round(tokens / (time.perf_counter() - t0), 2)}


def _per_accepted(records: list[dict], accepted: int) -> dict[str, Any]:
    calls = [c for r in records for c in r["provenance"]["llm_calls"]]
    tin = sum(c["input_tokens"] for c in calls)
    tout = sum(c["output_tokens"] for c in calls)
    llm_s = sum(c["latency_s"] for c in calls)
    per = max(accepted, 1)
    latency = [sum(t["seconds"] for t in r["provenance"]["timings"]) for r in records]
    nodes: dict[str, list[float]] = {}
    for r in records:
        for t in r["provenance"]["timings"]:
            nodes.setdefault(t["node"], []).append(t["seconds"])
    return {
            # from each record's own timings, so a resumed run still counts every report
            "report_latency_s": {"mean": round(statistics.mean(latency), 1),
                                 "p50": round(statistics.median(latency), 1),
                                 "max": round(max(latency), 1)} if latency else None,
            "node_seconds_mean": {k: round(statistics.mean(v), 2) for k, v in nodes.items()},"llm_calls": len(calls), "llm_attempts": sum(c["attempts"] for c in calls),
            "llm_calls_failed": sum(not c["ok"] for c in calls),
            "calls_per_accepted": round(len(calls) / per, 2),
            "input_tokens_per_accepted": round(tin / per), "output_tokens_per_accepted": round(tout / per),
            "llm_seconds": round(llm_s, 1),
            # output tokens over time inside LLM calls: what the loop gets from the server
            "pipeline_output_tokens_per_llm_s": round(tout / llm_s, 2) if llm_s else None}


def embedded_run(n: int, concurrency: int | None = None, max_revisions: int = 1, seed: int = 0,
                 phase: str | None = None, keep: Path | None = None) -> dict[str, Any]:
    """`keep`: write the run there (resumable, reusable as synthetic data) instead of a temp dir."""
    s = Settings(max_revisions=max_revisions)
    if s.llm_base_url:
        raise SystemExit("unset TRIALWRIGHT_LLM_BASE_URL: this benchmark measures the embedded model")
    corpus = load_top([s.top_dir / f for f in s.top_files])
    specs = plan_specs(corpus, n, seed=seed, label_ratio=0.5, phase=phase)
    concurrency = concurrency or s.llm_parallel
    store = open_nonempty_store(s)
    try:
        with open_endpoints(s) as (generator, judge), tempfile.TemporaryDirectory() as tmp:
            out = keep or Path(tmp)
            deps = AgentDeps(settings=s, generator=generator, judge=judge, store=store,
                             encoder=Encoder(s), privacy=corpus_index(s, corpus))
            before = sum(1 for f in ("reports.jsonl", "rejected.jsonl")
                         for _ in read_jsonl(out / f)) if (out / "run.json").exists() else 0
            t0 = time.perf_counter()
            summary = asyncio.run(run_batch(specs, deps, out, concurrency=concurrency))
            wall = time.perf_counter() - t0
            records = [*read_jsonl(out / "reports.jsonl"), *read_jsonl(out / "rejected.jsonl")]
            base = generator.chat.openai_api_base
            raw = raw_speed(base, generator.model_id, s.llm_max_tokens // 2)
            # a prompt like the loop's: real trials' text, about the mean input of one call
            context = "\n\n".join(t.text()[:700] for t in corpus[:3])
            raw["long_prompt"] = raw_speed(base, generator.model_id, 16, context=context)
            raw["parallel"] = raw_parallel(base, generator.model_id, s.llm_max_tokens // 2,
                                           concurrency)
    finally:
        store.close()
    loop = _per_accepted(records, summary["accepted"])
    reasons: dict[str, int] = {}
    for r in records:
        for why in r["reject_reasons"]:
            key = why.split(":")[0][:60]
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "model": generator.model_id, "reports": n, "phase": phase or "real mix",
        "corpus": {"top_files": s.top_files, "collection": s.collection, "trials": len(corpus)},
        "written_before_this_session": before, "concurrency": concurrency,
        "max_revisions": max_revisions, "llm_threads": s.llm_threads, "llm_parallel": s.llm_parallel,
        "accepted": summary["accepted"], "rejected": summary["rejected"],
        "accept_rate": summary["accept_rate"],
        "wall_s_this_session": round(wall, 1),
        "seconds_per_report": round(wall / max(n - before, 1), 1) if n > before else None,
        "revisions": sum(r["provenance"]["revisions"] for r in records),
        "reject_reasons": reasons, **loop, "raw_llama_cpp": raw,
        "pipeline_vs_raw_generation": (round(loop["pipeline_output_tokens_per_llm_s"]
                                             / raw["generation_tokens_per_s"], 3)
                                       if loop["pipeline_output_tokens_per_llm_s"] else None),
        # time raw llama.cpp would need for the same tokens, one stream, vs the time the loop's
        # calls took per slot (latency / concurrency): 1.0 = the loop gets the raw speed
        "llm_efficiency_vs_raw": _efficiency(records, raw, concurrency),
        "session_output_tokens_per_wall_s": (round(summary["this_session"]["output_tokens"] / wall, 2)
                                             if n > before else None),
    }


def _efficiency(records: list[dict], raw: dict[str, Any], concurrency: int) -> float | None:
    calls = [c for r in records for c in r["provenance"]["llm_calls"]]
    prompt_tps = raw["long_prompt"]["prompt_tokens_per_s"]
    ideal = sum(c["input_tokens"] / prompt_tps
                + c["output_tokens"] / raw["generation_tokens_per_s"] for c in calls)
    spent = sum(c["latency_s"] for c in calls) / concurrency
    return round(ideal / spent, 3) if spent else None
