"""Batch generation on Ray: one graph run per Ray task, the same files and resume guarantees.

The driver does what `graph.batch.run_batch` does around the graph — fingerprint refusal,
skipping ids already written, the idempotent `JsonlWriter`, run.json, Parquet — and only the
graph runs move into Ray tasks, at most `max_in_flight` at a time. A task returns the record
and the driver writes it, so a record is written once whichever worker made it, and a task lost
with its worker (or a driver killed mid-batch) is simply run again on resume.

Workers cannot share the driver's live objects (HTTP clients, the store, the encoder), so they
build their own `AgentDeps` from a picklable factory, once per worker process, and run every task
on one event loop per process (async clients stay bound to the loop that made them).
Each task checkpoints to its own SQLite file under ``out/ray-checkpoints/`` (no cross-process
locking on one database); on a shared filesystem — local Ray, or a cluster with the run folder on
NFS — an interrupted report resumes from its last finished node, elsewhere from its start.
Retrieval shares no state between specs (its reuse penalty is seeded per spec), so a worker
retrieves exactly the evidence the asyncio backend does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trialwright.agents.calibration import Calibration
from trialwright.agents.common import AgentDeps
from trialwright.agents.provenance import build_record
from trialwright.graph.batch import Progress, _versions, finish_spec, open_run
from trialwright.graph.checkpoint_serde import checkpoint_serde
from trialwright.graph.generation import build_generation_graph, run_config
from trialwright.tools.plausible_ranges import PlausibleRanges
from trialwright.tools.schema import Spec
from trialwright.tools.settings import Settings


@dataclass(frozen=True)
class _Endpoint:
    model_id: str


@dataclass(frozen=True)
class _Privacy:
    fingerprint: str


@dataclass(frozen=True)
class WorkerDeps:
    """How a worker builds its `AgentDeps`, plus what the driver must know without building them.

    `factory` must pickle by reference (a module-level function, or an instance of a module-level
    class) and return a fresh `AgentDeps`; the ids and settings feed the run fingerprint and
    provenance exactly as the live deps would.
    """

    factory: Callable[[], AgentDeps]
    settings: Settings
    generator_id: str
    judge_id: str
    rubric: str = "quality_checklist"
    # The critic's real-trial references travel by value: every worker judges by the same rule.
    calibration: Calibration | None = None
    ranges: PlausibleRanges | None = None
    privacy_id: str | None = None  # the corpus privacy index's fingerprint (workers load it)
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # workers cache deps by it

    @classmethod
    def like(cls, deps: AgentDeps, factory: Callable[[], AgentDeps]) -> WorkerDeps:
        return cls(factory=factory, settings=deps.settings, generator_id=deps.generator.model_id,
                   judge_id=deps.judge.model_id, rubric=deps.rubric,
                   calibration=deps.calibration, ranges=deps.ranges,
                   privacy_id=deps.privacy.fingerprint if deps.privacy is not None else None)

    def build(self) -> AgentDeps:
        deps = self.factory()
        deps.rubric, deps.calibration, deps.ranges = self.rubric, self.calibration, self.ranges
        return deps

    @property
    def identity(self) -> Any:
        """A stand-in with the fields `fingerprint` and `build_record` read."""
        return _Identity(self.settings, _Endpoint(self.generator_id), _Endpoint(self.judge_id),
                         self.rubric, self.calibration, self.ranges,
                         _Privacy(self.privacy_id) if self.privacy_id else None)



@dataclass(frozen=True)
class _Identity:
    settings: Settings
    generator: _Endpoint
    judge: _Endpoint
    rubric: str
    calibration: Calibration | None = None
    ranges: PlausibleRanges | None = None
    privacy: _Privacy | None = None


# --- worker side ------------------------------------------------------------------------------

@dataclass
class _WorkerState:
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    deps: dict[str, AgentDeps] = field(default_factory=dict)


_WORKER: _WorkerState | None = None


def _worker() -> _WorkerState:
    global _WORKER
    if _WORKER is None:
        _WORKER = _WorkerState()
    return _WORKER


async def _run_one(spec: Spec, deps: AgentDeps, thread_id: str, checkpoint: Path | None,
                   report_timeout_s: float | None) -> dict[str, Any]:
    """One spec through the graph (resuming its checkpoint); never raises: errors are records."""
    import aiosqlite
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    config = run_config(deps, thread_id=thread_id)
    conn = None
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(checkpoint)
        saver: Any = AsyncSqliteSaver(conn, serde=checkpoint_serde())
    else:
        saver = InMemorySaver(serde=checkpoint_serde())
    try:
        graph = build_generation_graph(deps, saver)
        state, error = await finish_spec(graph, spec, config, report_timeout_s)
        return build_record(state, deps, error)
    finally:
        if conn is not None:
            await conn.close()


def run_spec_task(spec_json: str, worker_deps: WorkerDeps, thread_id: str,
                  checkpoint: str | None, report_timeout_s: float | None) -> dict[str, Any]:
    """The body of one Ray task (a plain function, so it also runs without Ray in tests)."""
    w = _worker()
    deps = w.deps.get(worker_deps.key)
    if deps is None:
        deps = w.deps[worker_deps.key] = worker_deps.factory()
    spec = Spec.model_validate_json(spec_json)
    return w.loop.run_until_complete(_run_one(spec, deps, thread_id,
                                              Path(checkpoint) if checkpoint else None,
                                              report_timeout_s))


# --- driver side ------------------------------------------------------------------------------

def _failure_record(spec: Spec, identity: Any, error: str) -> dict[str, Any]:
    return build_record({"spec": spec}, identity, error)  # type: ignore[arg-type]


def _drop_checkpoint(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def ensure_ray(address: str | None = None, init_kwargs: dict[str, Any] | None = None) -> None:
    """Connect to `address`, or start a quiet local Ray, unless Ray is already initialised."""
    import ray

    if not ray.is_initialized():
        local = {} if address else {"include_dashboard": False, "log_to_driver": False}
        ray.init(address=address, **(local | (init_kwargs or {})))


def run_batch_ray(specs: list[Spec], worker_deps: WorkerDeps, out: Path, *,
                  max_in_flight: int = 8, num_cpus_per_task: float = 0.25,
                  report_timeout_s: float | None = None, checkpoints: bool = True,
                  address: str | None = None, init_kwargs: dict[str, Any] | None = None,
                  on_progress: Callable[[Progress], None] | None = None,
                  retry_errors: bool = False) -> dict[str, Any]:
    """Generate every spec not already written in `out` on Ray; returns the run summary.

    Connects to `address` (a running cluster, e.g. ``ray://head:10001`` or ``auto``) or starts a
    local Ray if none is initialised. `num_cpus_per_task` below 1 lets a CPU run several tasks
    that mostly wait on an LLM endpoint.
    """
    import ray

    ensure_ray(address, init_kwargs)
    identity = worker_deps.identity
    backend = {"name": "ray", "max_in_flight": max_in_flight, "num_cpus_per_task": num_cpus_per_task,
               "address": address or "local", "cluster_cpus": ray.cluster_resources().get("CPU")}
    run = open_run(specs, identity, out, concurrency=max_in_flight, retry_errors=retry_errors,
                   extra={"versions": {**_versions(), "ray": ray.__version__}, "backend": backend})
    fp = run.fingerprint
    task = ray.remote(num_cpus=num_cpus_per_task, max_retries=2)(run_spec_task)
    deps_ref = ray.put(worker_deps)
    ckpt_dir = (out / "ray-checkpoints").resolve()
    if on_progress:
        on_progress(run.progress)

    in_flight: dict[Any, Spec] = {}
    queue = iter(run.pending)
    exhausted = False
    while in_flight or not exhausted:
        while not exhausted and len(in_flight) < max_in_flight:
            spec = next(queue, None)
            if spec is None:
                exhausted = True
                break
            ckpt = str(ckpt_dir / f"{spec.spec_id}.sqlite") if checkpoints else None
            ref = task.remote(spec.model_dump_json(), deps_ref, f"{spec.spec_id}:{fp[:16]}",
                              ckpt, report_timeout_s)
            in_flight[ref] = spec
        if not in_flight:
            break
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in ready:
            spec = in_flight.pop(ref)
            try:
                record = ray.get(ref)
            except Exception as err:  # noqa: BLE001 - a lost task is a recorded failure
                record = _failure_record(spec, identity, f"ray: {type(err).__name__}: "
                                         f"{str(err).splitlines()[0] if str(err) else ''}"[:500])
            run.write(record, on_progress)
            if checkpoints:
                _drop_checkpoint(ckpt_dir / f"{spec.spec_id}.sqlite")

    return run.finish()


# --- factories --------------------------------------------------------------------------------

class RetrievalService:
    """The one owner of the store and encoder, as a Ray actor: the embedded edge store opens in
    one process only, and one encoder beats one per worker. Workers reach it through
    `RemoteStore` / `RemoteEncoder`; a Qdrant server (``qdrant_url``) needs no actor."""

    def __init__(self, open_fn: Callable[[], tuple[Any, Any]]):
        self.store, self.encoder = open_fn()

    def encode_one(self, text: str) -> Any:
        return self.encoder.encode_one(text)

    def search_diverse(self, vector: Any, k: int, **kwargs: Any) -> list[Any]:
        return self.store.search_diverse(vector, k, **kwargs)

    def count(self) -> int:
        return self.store.count()

    def close(self) -> None:
        self.store.close()


def start_retrieval(open_fn: Callable[[], tuple[Any, Any]]) -> Any:
    """A `RetrievalService` actor (one call at a time: the store is not shared across threads)."""
    import ray

    return ray.remote(num_cpus=0)(RetrievalService).remote(open_fn)


@dataclass
class RemoteStore:
    actor: Any

    def search_diverse(self, vector: Any, k: int, **kwargs: Any) -> list[Any]:
        import ray

        return ray.get(self.actor.search_diverse.remote(vector, k, **kwargs))

    def count(self) -> int:
        import ray

        return ray.get(self.actor.count.remote())

    def close(self) -> None:
        pass  # the actor owns the store


@dataclass
class RemoteEncoder:
    actor: Any

    def encode_one(self, text: str) -> Any:
        import ray

        return ray.get(self.actor.encode_one.remote(text))


@dataclass(frozen=True)
class SettingsRetrieval:
    """The configured store and encoder (`open_store`, `Encoder`)."""

    settings: Settings

    def __call__(self) -> tuple[Any, Any]:
        from trialwright.tools.encoder import Encoder
        from trialwright.tools.store import open_store

        return open_store(self.settings), Encoder(self.settings)


@dataclass(frozen=True)
class SettingsDeps:
    """The real deps from settings, built on the worker: the fake LLM or an OpenAI-compatible
    endpoint the workers can reach (the driver's embedded server on local Ray, or
    `TRIALWRIGHT_LLM_BASE_URL` on a cluster), its judge by the driver's rule (`judge_endpoint`);
    retrieval through `retrieval` (an actor handle) or, for a Qdrant server, a store of the
    worker's own."""

    settings: Settings
    llm: str = "endpoint"  # or "fake"
    base_url: str | None = None
    model: str | None = None
    api_key: str = "not-needed"
    slots: int = 0
    retrieval: Any = None
    privacy_dir: str | None = None  # a saved `PrivacyIndex`, opened memory-mapped per worker

    def __call__(self) -> AgentDeps:
        from trialwright.tools.fake_llm import FakeSchemaChat
        from trialwright.tools.llm import ChatEndpoint, chat_endpoint, judge_endpoint
        from trialwright.tools.privacy_index import PrivacyIndex

        s = self.settings
        if self.llm == "fake":
            generator = judge = ChatEndpoint(chat=FakeSchemaChat(), model_id="fake-schema")
        else:
            assert self.base_url and self.model, "an endpoint needs base_url and model"
            generator = chat_endpoint(s, base_url=self.base_url, model=self.model,
                                      api_key=self.api_key, max_concurrency=self.slots)
            judge = judge_endpoint(s, generator)
        store, encoder = ((RemoteStore(self.retrieval), RemoteEncoder(self.retrieval))
                          if self.retrieval is not None else SettingsRetrieval(s)())
        deps = AgentDeps(settings=s, generator=generator, judge=judge, store=store,  # type: ignore[arg-type]
                         encoder=encoder)  # type: ignore[arg-type]
        if self.privacy_dir:
            deps.privacy = PrivacyIndex.load(self.privacy_dir)
        return deps


__all__ = ["RemoteEncoder", "RemoteStore", "RetrievalService",
           "SettingsDeps", "SettingsRetrieval", "WorkerDeps", "ensure_ray", "run_batch_ray",
           "run_spec_task", "start_retrieval"]
