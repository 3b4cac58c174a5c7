"""Batch generation: bounded async fan-out of one graph run per spec, resumable.

Resume has two layers: the idempotent writer (ids already in reports/rejected are done) and
LangGraph SQLite checkpoints (a spec interrupted mid-loop continues from its last finished node).
A run directory is bound to a fingerprint of specs, models, prompts and parameters: resuming
with a different configuration is refused rather than silently mixed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import platform
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from trialwright.agents.common import AgentDeps, prompt_hashes
from trialwright.agents.provenance import build_record
from trialwright.graph.checkpoint_serde import checkpoint_serde
from trialwright.graph.generation import build_generation_graph, run_config
from trialwright.tools.schema import Spec
from trialwright.tools.versions import files_sha256
from trialwright.tools.writer import (
    JsonlWriter,
    jsonl_to_parquet,
    move_records,
    read_jsonl,
    write_json_atomic,
)

GENERATION_SETTINGS = ("k_evidence", "max_revisions", "parse_retries", "quality_min_share",
                       "calibration_quantile", "critic_retries", "copy_ngram", "copy_max_overlap",
                       "copy_max_span", "corpus_copy_check", "llm_temperature", "llm_max_tokens",
                       "llm_base_url", "judge_base_url", "llm_gguf", "encoder",
                       "encoder_max_length", "store_backend", "store_path", "qdrant_url",
                       "collection")


class BatchError(RuntimeError):
    pass


@dataclass
class Progress:
    planned: int
    done_before: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: int = 0
    revisions: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    by_label: dict[str, dict[str, int]] = field(default_factory=dict)  # accepted / attempted
    started: float = field(default_factory=time.perf_counter)

    @property
    def finished(self) -> int:
        return self.accepted + self.rejected

    def add(self, record: dict[str, Any]) -> None:
        prov = record["provenance"]
        if record["status"] == "accepted":
            self.accepted += 1
        else:
            self.rejected += 1
        self.errors += failed_with_error(record)
        mix = self.by_label.setdefault(str(record["label"]), {"accepted": 0, "attempted": 0})
        mix["attempted"] += 1
        mix["accepted"] += record["status"] == "accepted"
        self.revisions += prov["revisions"]
        self.input_tokens += prov["tokens"]["input"]
        self.output_tokens += prov["tokens"]["output"]


def fingerprint(specs: list[Spec], deps: AgentDeps) -> str:
    """Everything that changes a run's records: specs, models and their endpoints, prompts,
    parameters, the corpus files' content, the store, the privacy index and the code version."""
    s = deps.settings
    privacy = getattr(deps, "privacy", None)
    payload = {
        "specs": [sp.model_dump() for sp in specs],
        "generator": deps.generator.model_id, "judge": deps.judge.model_id, "rubric": deps.rubric,
        "prompts": prompt_hashes(deps.rubric), "settings": {k: str(getattr(s, k)) for k in GENERATION_SETTINGS},
        "calibration": deps.calibration.id if deps.calibration else None,
        "ranges": deps.ranges.model_dump() if deps.ranges else None,
        "corpus": files_sha256(s.top_dir, s.top_files),
        "privacy_index": privacy.fingerprint if privacy is not None else None,
        "code": _versions().get("trialwright"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("trialwright", "langgraph", "langchain-core", "langchain-openai", "qdrant-edge-py",
                "qdrant-client", "transformers", "torch", "xllamacpp"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _check_run_dir(out: Path, fp: str) -> dict[str, Any] | None:
    run_file = out / "run.json"
    if not run_file.exists():
        return None
    try:
        previous = json.loads(run_file.read_text())
    except json.JSONDecodeError as err:
        raise BatchError(f"{run_file}: not valid JSON ({err}); move it away to start over") from None
    if previous.get("fingerprint") != fp:
        raise BatchError(f"{out} holds a run with a different configuration (specs, models, "
                         "prompts or parameters changed); resume needs the same command, "
                         "or pass a new --out")
    return previous


def _check_records(out: Path, fp: str) -> None:
    """Refuse a folder whose records were made by another configuration (run.json lost or
    replaced): every session checks this, so the first record speaks for the whole file."""
    for name in ("reports.jsonl", "rejected.jsonl"):
        first = next(read_jsonl(out / name), None)
        if first is not None and (first.get("provenance") or {}).get("run_fingerprint") != fp:
            raise BatchError(f"{out / name} holds records of another configuration (specs, "
                             "models, prompts, corpus or parameters differ, or they predate run "
                             "fingerprints); resume needs the same command, or pass a new --out")


@dataclass
class RunDir:
    """An opened run folder: its writers, what is left to do, progress and run.json summary.

    Shared by every backend (asyncio here, Ray in ray_backend), so they resume and report alike.
    """

    out: Path
    fingerprint: str
    accepted: JsonlWriter
    rejected: JsonlWriter
    pending: list[Spec]
    progress: Progress
    summary: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def write(self, record: dict[str, Any],
              on_progress: Callable[[Progress], None] | None = None) -> None:
        with self._lock:  # asyncio writes from worker threads (the fsync stays off the loop)
            self._write(record, on_progress)

    def _write(self, record: dict[str, Any],
               on_progress: Callable[[Progress], None] | None) -> None:
        record["provenance"]["run_fingerprint"] = self.fingerprint  # a run.json lost is no mix
        (self.accepted if record["status"] == "accepted" else self.rejected).write(record)
        self.progress.add(record)
        if on_progress:
            on_progress(self.progress)

    def finish(self) -> dict[str, Any]:
        """Count the files, write Parquet copies and the final run.json; return the summary."""
        p = self.progress
        self.summary.update(
            status="finished", finished_at=datetime.now(UTC).isoformat(), **_count(self.out),
            this_session={"generated": p.finished,
                          "wall_s": round(time.perf_counter() - self.started, 2),
                          "errors": p.errors, "revisions": p.revisions,
                          "input_tokens": p.input_tokens, "output_tokens": p.output_tokens})
        for name in ("reports", "rejected"):
            jsonl_to_parquet(self.out / f"{name}.jsonl", self.out / f"{name}.parquet")
        write_json_atomic(self.out / "run.json", self.summary)
        return self.summary


def failed_with_error(record: dict[str, Any]) -> bool:
    """Rejected because something broke (endpoint down, timeout), not because of its content."""
    if record.get("status") == "accepted":
        return False
    if any(r.startswith("error:") for r in record.get("reject_reasons", [])):
        return True
    return any(not c["ok"] and any(e.startswith("transport:") for e in c["errors"])
               for c in record.get("provenance", {}).get("llm_calls", []))


def open_run(specs: list[Spec], deps: Any, out: Path, *, concurrency: int,
             extra: dict[str, Any] | None = None, retry_errors: bool = False) -> RunDir:
    """Check the fingerprint, learn what is done, and write the 'running' run.json.

    `deps` needs what `fingerprint` reads: settings, generator/judge `.model_id`, rubric,
    and optionally `.privacy`.
    `retry_errors`: specs rejected with an error are run again (their old records move to
    rejected.retried.jsonl); other rejections are final.
    """
    out.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(specs, deps)
    previous = _check_run_dir(out, fp) or {}
    # The writers first: they cut a torn last line (and refuse a bad one) before anything reads.
    accepted, rejected = JsonlWriter(out / "reports.jsonl"), JsonlWriter(out / "rejected.jsonl")
    _check_records(out, fp)
    retried = (move_records(out / "rejected.jsonl", out / "rejected.retried.jsonl",
                            failed_with_error) if retry_errors else 0)
    if retried:
        rejected = JsonlWriter(out / "rejected.jsonl")
    done = accepted.ids | rejected.ids
    summary: dict[str, Any] = {
        "fingerprint": fp, "status": "running", "planned": len(specs),
        "started_at": previous.get("started_at") or datetime.now(UTC).isoformat(),
        "sessions": previous.get("sessions", 0) + 1,
        "settings": deps.settings.masked(), "generator_model": deps.generator.model_id,
        "judge_model": deps.judge.model_id, "prompts_sha256": prompt_hashes(deps.rubric),
        "versions": _versions(), "concurrency": concurrency, "retried_errors": retried,
        **(extra or {}),
    }
    write_json_atomic(out / "run.json", summary)
    return RunDir(out=out, fingerprint=fp, accepted=accepted, rejected=rejected,
                  pending=[s for s in specs if s.spec_id not in done],
                  progress=Progress(planned=len(specs), done_before=len(done)), summary=summary)


async def finish_spec(graph: Any, spec: Spec, config: dict[str, Any],
                      report_timeout_s: float | None) -> tuple[dict[str, Any], str | None]:
    """Run one spec to its end on a checkpointed graph, resuming where its thread stopped.

    Returns (final state, error or None); never raises, so one bad report cannot end a batch.
    """
    snapshot = await graph.aget_state(config)
    values = snapshot.values or {}
    try:
        if values.get("status") in ("accepted", "rejected") and not snapshot.next:
            return values, None  # finished before a crash, never written
        start = None if snapshot.next else {"spec": spec, "revision": 0}
        return await asyncio.wait_for(graph.ainvoke(start, config), report_timeout_s), None
    except Exception as err:  # noqa: BLE001 - one bad report must not end the batch
        error = (f"timed out after {report_timeout_s}s"
                 if isinstance(err, TimeoutError) else f"{type(err).__name__}: {err}")
        state = (await graph.aget_state(config)).values or {"spec": spec}
        state.setdefault("spec", spec)
        return state, error


async def run_batch(specs: list[Spec], deps: AgentDeps, out: Path, *, concurrency: int = 4,
                    report_timeout_s: float | None = None, retry_errors: bool = False,
                    on_progress: Callable[[Progress], None] | None = None,
                    until_accepted: dict[int, int] | None = None) -> dict[str, Any]:
    """Generate every spec not already written in `out`; returns the run summary (run.json).

    `until_accepted` (label -> accepted reports wanted): `specs` is then a budget, taken in
    order; a spec of a label starts only while that label's accepted plus in-flight reports are
    under its target, so the accepted mix ends exactly at the plan (or the budget is spent).
    """
    extra = {"until_accepted": {str(k): v for k, v in until_accepted.items()}} if until_accepted else None
    run = open_run(specs, deps, out, concurrency=concurrency, retry_errors=retry_errors, extra=extra)
    fp = run.fingerprint
    quota = _Quota(until_accepted, out) if until_accepted else None

    async with aiosqlite.connect(out / "checkpoints.sqlite") as conn:
        saver = AsyncSqliteSaver(conn, serde=checkpoint_serde())
        graph = build_generation_graph(deps, saver)

        async def one(spec: Spec) -> None:
            config = run_config(deps, thread_id=f"{spec.spec_id}:{fp[:16]}")
            record: dict[str, Any] | None = None
            try:
                state, error = await finish_spec(graph, spec, config, report_timeout_s)
                record = build_record(state, deps, error)
                await asyncio.to_thread(run.write, record, on_progress)
                await saver.adelete_thread(config["configurable"]["thread_id"])
            finally:
                if quota is not None:
                    await quota.release(spec.label, accepted=bool(record) and record["status"] == "accepted")

        if on_progress:
            on_progress(run.progress)
        # `concurrency` workers fed through a bounded queue: memory stays flat in the number of
        # specs (no task per spec), and specs start in plan order as before.
        queue: asyncio.Queue[Spec | None] = asyncio.Queue(maxsize=concurrency)

        async def feed() -> None:
            source = quota.dispatch(run.pending) if quota is not None else _each(run.pending)
            async for spec in source:
                await queue.put(spec)
            for _ in range(concurrency):
                await queue.put(None)  # one stop per worker

        async def work() -> None:
            while (spec := await queue.get()) is not None:
                await one(spec)

        await _all_or_none([feed(), *(work() for _ in range(concurrency))])
        if quota is not None:
            run.summary["unused_specs"] = quota.unused
    return run.finish()


async def _each(specs: list[Spec]) -> AsyncIterator[Spec]:
    for spec in specs:
        yield spec


async def _all_or_none(coros: list[Any]) -> None:
    """Run `coros` together; the first exception cancels the rest and is raised as itself."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Quota:
    """Accepted + in-flight reports per label, kept under each label's target."""

    def __init__(self, targets: dict[int, int], out: Path):
        self.targets = targets
        self.accepted = {label: 0 for label in targets}
        for r in read_jsonl(out / "reports.jsonl"):  # a resumed run counts what it has
            self.accepted[int(r["label"])] = self.accepted.get(int(r["label"]), 0) + 1
        self.in_flight = {label: 0 for label in targets}
        self.unused = 0
        self.changed = asyncio.Condition()

    def _room(self, label: int) -> bool:
        return self.accepted.get(label, 0) + self.in_flight.get(label, 0) < self.targets.get(label, 0)

    def _met(self, label: int) -> bool:
        return self.accepted.get(label, 0) >= self.targets.get(label, 0)

    async def dispatch(self, pending: list[Spec]) -> AsyncIterator[Spec]:
        """The budget's specs in order, each when its label has room; a spec whose label's
        target is met is never run (`unused`). Ends when every target is met or the budget of
        an unmet label is spent."""
        # per label, in budget order: each pick is linear in the labels, not in the budget
        queues: dict[int, deque[tuple[int, Spec]]] = {}
        for position, spec in enumerate(pending):
            queues.setdefault(spec.label, deque()).append((position, spec))
        while queues:
            async with self.changed:
                for label in [label for label in queues if self._met(label)]:
                    self.unused += len(queues.pop(label))
                heads = [q[0] for label, q in queues.items() if self._room(label)]
                if not heads:
                    if not queues or not any(self.in_flight.values()):
                        break
                    await self.changed.wait()  # a report in flight may still be rejected
                    continue
                pick = min(heads, key=lambda head: head[0])[1]
                queues[pick.label].popleft()
                if not queues[pick.label]:
                    del queues[pick.label]
                self.in_flight[pick.label] = self.in_flight.get(pick.label, 0) + 1
            yield pick

    async def release(self, label: int, *, accepted: bool) -> None:
        async with self.changed:
            self.in_flight[label] -= 1
            self.accepted[label] = self.accepted.get(label, 0) + accepted
            self.changed.notify_all()


def _count(out: Path) -> dict[str, Any]:
    """The summary of what the files hold, read one record at a time (flat in the run's size)."""
    n = Counter[str]()
    accepted_by, planned_by = Counter[int](), Counter[int]()
    for name, status in (("reports.jsonl", "accepted"), ("rejected.jsonl", "rejected")):
        for r in read_jsonl(out / name):
            prov = r["provenance"]
            n[status] += 1
            n["input"] += prov["tokens"]["input"]
            n["output"] += prov["tokens"]["output"]
            n["revisions"] += prov["revisions"]
            planned_by[r["label"]] += 1
            accepted_by[r["label"]] += status == "accepted"
    total = n["accepted"] + n["rejected"]
    by_label = {str(label): {"accepted": accepted_by[label], "planned": planned_by[label]}
                for label in sorted(planned_by)}
    return {"accepted": n["accepted"], "rejected": n["rejected"],
            "accept_rate": round(n["accepted"] / total, 4) if total else None,
            # a judge that dislikes one outcome skews the accepted label mix: make it visible
            "accepted_by_label": by_label,
            "tokens": {"input": n["input"], "output": n["output"]},
            "revisions": n["revisions"]}
