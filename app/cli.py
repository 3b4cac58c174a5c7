"""The `trialwright` command line: parse, call, print. Errors are one clear line and exit 2."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from trialwright.app.calibrate_cmd import calibrate_command
from trialwright.app.card_cmd import card_command
from trialwright.app.chat_cmd import chat_command
from trialwright.app.common import (
    Data,
    ProgressReport,
    UserError,
    err,
    fail,
    load_corpus,
    out,
    settings_for,
    user_errors,
)
from trialwright.app.eval_cmd import eval_command
from trialwright.app.judge_cmd import judge_command, review_command

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Synthetic, outcome-labelled clinical-trial reports grounded in real trials.")


@app.command()
def config() -> None:
    """Print the effective settings (secrets masked)."""
    s = settings_for()
    table = Table("setting", "value", title="trialwright settings")
    for k, v in s.masked().items():
        table.add_row(k, json.dumps(v) if not isinstance(v, str) else v)
    out.print(table)


@app.command()
def index(data: Data = None, limit: Annotated[int | None, typer.Option(min=1)] = None) -> None:
    """Embed the real trials into the vector store (re-running skips unchanged trials and
    removes trials no longer in the configured files)."""
    from trialwright.tools.encoder import Encoder
    from trialwright.tools.indexing import index_trials
    from trialwright.tools.store import open_store

    s = settings_for(data_dir=data)
    with user_errors():
        trials = load_corpus(s, limit)
        encoder, store = Encoder(s), open_store(s)
        try:
            with ProgressReport("embedding", len(trials)) as progress:
                stats = index_trials(trials, encoder, store, on_batch=progress.advance)
                progress.update(len(trials))
            total = store.count()
        finally:
            store.close()
    out.print(f"indexed {stats.indexed}, unchanged {stats.skipped}, removed {stats.removed}, "
              f"store holds {total} trials "
              f"({stats.wall_seconds:.1f}s: encoder {stats.encode_seconds:.1f}s, "
              f"store {stats.store_seconds:.1f}s)")


@app.command()
def search(text: str,
           phase: Annotated[str | None, typer.Option(help="e.g. 'phase 1'")] = None,
           label: Annotated[int | None, typer.Option(min=0, max=1)] = None,
           k: Annotated[int, typer.Option("-k", min=1, max=100)] = 5,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Find real trials similar to TEXT."""
    from trialwright.tools.encoder import Encoder
    from trialwright.tools.store import open_nonempty_store
    from trialwright.tools.trials import PHASES, normalise_phase

    s = settings_for()
    with user_errors():
        if phase is not None and normalise_phase(phase) not in PHASES:
            raise UserError(f"--phase {phase!r}: expected one of {', '.join(PHASES)}")
        store = open_nonempty_store(s)
        try:
            hits = store.search(Encoder(s).encode_one(text), k,
                                phase=normalise_phase(phase) if phase else None, label=label)
        finally:
            store.close()
    rows = [{"nctid": h.id, "phase": h.payload["phase"], "label": h.payload["label"],
             "score": round(h.score, 4), "snippet": h.payload["text"][:160]} for h in hits]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("NCT id", "phase", "label", "score", "snippet")
    for r in rows:
        table.add_row(r["nctid"], r["phase"], str(r["label"]), f"{r['score']:.3f}", r["snippet"])
    out.print(table)


@app.command()
def generate(
    n: Annotated[int, typer.Option("--n", min=1)] = 3,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("runs/latest"),
    phase: Annotated[str | None, typer.Option()] = None,
    label_ratio: Annotated[float, typer.Option(min=0, max=1)] = 0.5,
    condition: Annotated[str | None, typer.Option()] = None,
    intervention: Annotated[str | None, typer.Option()] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="reports in flight")] = 2,
    max_revisions: Annotated[int | None, typer.Option(min=0)] = None,
    seed: Annotated[int, typer.Option()] = 0,
    k: Annotated[int | None, typer.Option("-k", min=1, max=20, help="evidence trials")] = None,
    report_timeout: Annotated[float | None, typer.Option(help="seconds per report")] = None,
    llm: Annotated[str, typer.Option(help="'auto' (endpoint or embedded) or 'fake'")] = "auto",
    backend: Annotated[str, typer.Option(help="'asyncio' (one process) or 'ray'")] = "asyncio",
    ray_address: Annotated[str | None, typer.Option(
        help="a running Ray cluster ('auto', 'ray://head:10001'); unset = a local Ray")] = None,
    retry_errors: Annotated[bool, typer.Option(
        help="on resume, run again the specs that failed with an error (endpoint down, "
             "timeout); their old records move to rejected.retried.jsonl")] = False,
    until_accepted: Annotated[bool, typer.Option(
        help="--n counts ACCEPTED reports in the --label-ratio mix: keep drawing specs per "
             "label until each label's share is accepted, or --spec-budget is spent")] = False,
    spec_budget: Annotated[int | None, typer.Option(
        min=1, help="with --until-accepted: specs to draw at most (default 4 x --n)")] = None,
    data: Data = None,
) -> None:
    """Generate N synthetic reports into --out (resumes if --out holds the same run)."""
    from trialwright.agents.calibration import attach_critic_references
    from trialwright.agents.common import AgentDeps
    from trialwright.tools.encoder import Encoder
    from trialwright.tools.llm import open_endpoints
    from trialwright.tools.plan import plan_specs
    from trialwright.tools.privacy_index import corpus_index
    from trialwright.tools.schema import LABEL_WORD
    from trialwright.tools.store import open_nonempty_store
    from trialwright.tools.trials import normalise_phase

    s = settings_for(data_dir=data, max_revisions=max_revisions, k_evidence=k)
    for name, value, choices in (("--llm", llm, ("auto", "fake")),
                                 ("--backend", backend, ("asyncio", "ray"))):
        if value not in choices:
            raise fail(f"{name} {value!r}: expected one of {', '.join(choices)}")
    if ray_address and backend != "ray":
        raise fail("--ray-address needs --backend ray")
    if until_accepted and backend != "asyncio":
        raise fail("--until-accepted runs on --backend asyncio")
    if spec_budget is not None and not until_accepted:
        raise fail("--spec-budget needs --until-accepted")
    quota = None
    if until_accepted:
        quota = {1: round(n * label_ratio), 0: n - round(n * label_ratio)}
        budget = spec_budget or 4 * n
        if budget < n:
            raise fail(f"--spec-budget {budget} is below --n {n}")
    with user_errors():
        corpus = load_corpus(s)
        specs = plan_specs(corpus, budget if quota else n, seed=seed,
                           phase=normalise_phase(phase) if phase else None,
                           label_ratio=label_ratio, condition=condition, intervention=intervention)
        privacy = corpus_index(s, corpus)
        store = open_nonempty_store(s)
        try:
            if llm == "auto" and not s.llm_base_url:
                err.print("starting the embedded LLM server (it loads the model first)",
                          highlight=False)
            with open_endpoints(s, llm) as (generator, judge), \
                    ProgressReport("reports", n) as progress:

                def show(p) -> None:
                    rate = p.finished / max(1e-9, time.perf_counter() - p.started)
                    mix = " · ".join(f"{LABEL_WORD[int(k)]} {v['accepted']}/{v['attempted']}"
                                     for k, v in sorted(p.by_label.items()))
                    progress.update(p.done_before + (p.accepted if quota else p.finished), (
                        f"accepted {p.accepted} · rejected {p.rejected} · revisions "
                        f"{p.revisions} · tokens {p.input_tokens + p.output_tokens} · "
                        f"{rate * 60:.1f}/min" + (f" · accepted/attempted {mix}" if mix else "")))

                deps = attach_critic_references(AgentDeps(
                    settings=s, generator=generator, judge=judge, store=store,
                    encoder=Encoder(s) if backend == "asyncio" else None, privacy=privacy))
                if backend == "ray":
                    store.close()  # the embedded store opens in one process: Ray's retrieval actor
                    summary = _generate_on_ray(specs, deps, llm, out_dir, concurrency,
                                               report_timeout, ray_address, show, retry_errors)
                else:
                    from trialwright.graph.batch import run_batch

                    summary = asyncio.run(run_batch(specs, deps, out_dir, concurrency=concurrency,
                                                    report_timeout_s=report_timeout,
                                                    retry_errors=retry_errors, on_progress=show,
                                                    until_accepted=quota))
        finally:
            store.close()
    out.print(f"[bold]{summary['accepted']}[/] accepted, {summary['rejected']} rejected "
              f"(accept rate {summary['accept_rate']}); tokens in/out "
              f"{summary['tokens']['input']}/{summary['tokens']['output']}")
    mix = summary.get("accepted_by_label", {})
    out.print("accepted by label: " + ", ".join(f"{k}: {v['accepted']}/{v['planned']}"
                                                 for k, v in mix.items())
              + (f" (target {quota[1]} + {quota[0]}; {summary.get('unused_specs', 0)} of "
                 f"{len(specs)} budgeted specs unused)" if quota else ""))
    rates = [v["accepted"] / v["planned"] for v in mix.values() if v["planned"]]
    if not quota and len(rates) == 2 and abs(rates[0] - rates[1]) > 0.3:
        err.print("[yellow]warning:[/] the accepted reports' label mix differs from the plan "
                  "(the judge may favour one outcome); check rejected.jsonl or use a stronger "
                  "judge (TRIALWRIGHT_JUDGE_*)")
    out.print(f"reports:  {out_dir / 'reports.jsonl'} (+ .parquet)\n"
              f"rejected: {out_dir / 'rejected.jsonl'}\nrun:      {out_dir / 'run.json'}")


def _generate_on_ray(specs: list, deps: Any, llm: str, out_dir: Path, concurrency: int,
                     report_timeout: float | None, address: str | None, show: Any,
                     retry_errors: bool) -> dict:
    """The same batch as Ray tasks. Workers build their own deps from settings: the LLM by URL
    (the embedded server is on this machine, so a remote cluster needs TRIALWRIGHT_LLM_BASE_URL),
    retrieval through one actor (or each worker's own client for a Qdrant server)."""
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'trialwright[ray]'") from None
    from trialwright.graph.ray_backend import (
        SettingsDeps,
        SettingsRetrieval,
        WorkerDeps,
        ensure_ray,
        run_batch_ray,
        start_retrieval,
    )

    s = deps.settings
    if address and not s.llm_base_url and llm != "fake":
        raise UserError("a Ray cluster cannot reach the embedded LLM on 127.0.0.1: set "
                        "TRIALWRIGHT_LLM_BASE_URL to an endpoint the workers can reach")
    ensure_ray(address)
    try:
        retrieval = None if s.qdrant_url else start_retrieval(SettingsRetrieval(s))
        factory = SettingsDeps(
            settings=s, llm="fake" if llm == "fake" else "endpoint",
            base_url=deps.generator.base_url, model=deps.generator.model_id,
            api_key=deps.generator.api_key, slots=deps.generator.max_concurrency,
            retrieval=retrieval,
            privacy_dir=str(deps.privacy.folder) if deps.privacy is not None else None)
        return run_batch_ray(specs, WorkerDeps.like(deps, factory), out_dir,
                             max_in_flight=concurrency, report_timeout_s=report_timeout,
                             address=address, on_progress=show, retry_errors=retry_errors)
    finally:
        ray.shutdown()


@app.command()
def quickstart(n: Annotated[int, typer.Option("--n", min=1)] = 3,
               out_dir: Annotated[Path, typer.Option("--out")] = Path("runs/quickstart")) -> None:
    """Index the real trials, run a search, and generate N reports on the embedded model."""
    index(data=None, limit=None)
    search("metastatic non-small cell lung cancer", phase="phase 1", label=None, k=5,
           as_json=False)
    generate(n=n, out_dir=out_dir, phase=None, label_ratio=0.5, condition=None,
             intervention=None, concurrency=2, max_revisions=1, seed=0, k=None,
             report_timeout=None, llm="auto", backend="asyncio", ray_address=None,
             retry_errors=False, data=None)


# Commands that live in their own modules (each imports its heavy parts lazily).
app.command("eval")(eval_command)
app.command("judge")(judge_command)
app.command("review")(review_command)
app.command("card")(card_command)
app.command("chat")(chat_command)
app.command("calibrate")(calibrate_command)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
