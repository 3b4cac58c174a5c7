"""The `trialwright` command line: parse, call, print. Errors are one clear line and exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from trialwright.tools.settings import ConfigFileError, Settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Synthetic, outcome-labelled clinical-trial reports grounded in real trials.")
out = Console()
err = Console(stderr=True, soft_wrap=True)

Data = Annotated[Path | None, typer.Option("--data", help="data folder holding top/")]


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


@contextmanager
def user_errors():
    from trialwright.graph.batch import BatchError
    from trialwright.tools.encoder import EncoderError
    from trialwright.tools.local_llm import LocalModelError
    from trialwright.tools.plan import PlanError
    from trialwright.tools.store import StoreError
    from trialwright.tools.trials import DataError

    try:
        yield
    except (UserError, DataError, StoreError, EncoderError, LocalModelError, PlanError,
            BatchError) as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    except ValidationError as e:
        first = e.errors()[0]
        name = ".".join(map(str, first["loc"]))
        err.print(f"[bold red]error:[/] invalid setting '{name}' (TRIALWRIGHT_{name.upper()}, "
                  f".env or trialwright.toml): {first['msg']}", highlight=False)
        raise typer.Exit(2) from None
    except SettingsError as e:
        # pydantic-settings names the field; say which variable carries it.
        field = str(e).split("field ")[-1].split(" ")[0].strip('"\'')
        err.print(f"[bold red]error:[/] invalid setting '{field}' (TRIALWRIGHT_{field.upper()}): "
                  f"{e}", highlight=False)
        raise typer.Exit(2) from None
    except ConfigFileError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None
    except tomllib.TOMLDecodeError as e:
        err.print(f"[bold red]error:[/] {os.environ.get('TRIALWRIGHT_CONFIG', 'trialwright.toml')}"
                  f": invalid TOML: {e}", highlight=False)
        raise typer.Exit(2) from None


def settings_for(**overrides: Any) -> Settings:
    with user_errors():
        return load_settings(**overrides)


def load_corpus(settings: Settings, limit: int | None = None):
    from trialwright.tools.trials import load_top

    files = [settings.top_dir / f for f in settings.top_files]
    trials = load_top(files)
    return trials[:limit] if limit else trials


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
    """Embed the real trials into the vector store (re-running skips unchanged trials)."""
    from trialwright.tools.encoder import Encoder
    from trialwright.tools.indexing import index_trials
    from trialwright.tools.store import open_store

    s = settings_for(data_dir=data)
    with user_errors():
        trials = load_corpus(s, limit)
        encoder, store = Encoder(s), open_store(s)
        try:
            with _bar() as bar:
                task = bar.add_task("embedding", total=len(trials))
                stats = index_trials(trials, encoder, store,
                                     on_batch=lambda n: bar.advance(task, n))
                bar.update(task, completed=len(trials))
            total = store.count()
        finally:
            store.close()
    out.print(f"indexed {stats.indexed}, unchanged {stats.skipped}, store holds {total} trials "
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
    from trialwright.tools.store import open_store
    from trialwright.tools.trials import PHASES, normalise_phase

    s = settings_for()
    with user_errors():
        if phase is not None and normalise_phase(phase) not in PHASES:
            raise UserError(f"--phase {phase!r}: expected one of {', '.join(PHASES)}")
        store = open_store(s)
        try:
            if store.count() == 0:
                raise UserError("the store is empty: run `trialwright index` first")
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
    data: Data = None,
) -> None:
    """Generate N synthetic reports into --out (resumes if --out holds the same run)."""
    from trialwright.agents.calibration import attach_critic_references
    from trialwright.agents.common import AgentDeps
    from trialwright.tools.encoder import Encoder
    from trialwright.tools.llm import open_endpoints
    from trialwright.tools.plan import plan_specs
    from trialwright.tools.privacy_index import corpus_index
    from trialwright.tools.store import open_store
    from trialwright.tools.trials import normalise_phase

    s = settings_for(data_dir=data, max_revisions=max_revisions, k_evidence=k)
    for name, value, choices in (("--llm", llm, ("auto", "fake")),
                                 ("--backend", backend, ("asyncio", "ray"))):
        if value not in choices:
            err.print(f"[bold red]error:[/] {name} {value!r}: expected one of {', '.join(choices)}")
            raise typer.Exit(2)
    if ray_address and backend != "ray":
        err.print("[bold red]error:[/] --ray-address needs --backend ray")
        raise typer.Exit(2)
    with user_errors():
        corpus = load_corpus(s)
        specs = plan_specs(corpus, n, seed=seed, phase=normalise_phase(phase) if phase else None,
                           label_ratio=label_ratio, condition=condition, intervention=intervention)
        privacy = corpus_index(s, corpus)
        store = open_store(s)
        try:
            if store.count() == 0:
                raise UserError("the store is empty: run `trialwright index` first")
            with open_endpoints(s, llm) as (generator, judge), _bar() as bar:
                task = bar.add_task("reports", total=n)

                def show(p) -> None:
                    rate = p.finished / max(1e-9, time.perf_counter() - p.started)
                    bar.update(task, completed=p.done_before + p.finished, description=(
                        f"accepted {p.accepted} · rejected {p.rejected} · revisions "
                        f"{p.revisions} · tokens {p.input_tokens + p.output_tokens} · "
                        f"{rate * 60:.1f}/min"))

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
                                                    retry_errors=retry_errors, on_progress=show))
        finally:
            store.close()
    out.print(f"[bold]{summary['accepted']}[/] accepted, {summary['rejected']} rejected "
              f"(accept rate {summary['accept_rate']}); tokens in/out "
              f"{summary['tokens']['input']}/{summary['tokens']['output']}")
    mix = summary.get("accepted_by_label", {})
    out.print("accepted by label: " + ", ".join(f"{k}: {v['accepted']}/{v['planned']}"
                                                 for k, v in mix.items()))
    rates = [v["accepted"] / v["planned"] for v in mix.values() if v["planned"]]
    if len(rates) == 2 and abs(rates[0] - rates[1]) > 0.3:
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
        chat = deps.generator.chat
        factory = SettingsDeps(
            settings=s, llm="fake" if llm == "fake" else "endpoint",
            base_url=getattr(chat, "openai_api_base", None), model=deps.generator.model_id,
            api_key=s.api_key() if s.llm_base_url else "not-needed",
            slots=deps.generator.max_concurrency, retrieval=retrieval,
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


def _register_extensions() -> None:
    """Commands that live in their own modules (each imports its heavy parts lazily)."""
    from trialwright.app.calibrate_cmd import calibrate_command
    from trialwright.app.card_cmd import card_command
    from trialwright.app.chat_cmd import chat_command
    from trialwright.app.eval_cmd import eval_command
    from trialwright.app.judge_cmd import judge_command, review_command

    app.command("eval")(eval_command)
    app.command("judge")(judge_command)
    app.command("review")(review_command)
    app.command("card")(card_command)
    app.command("chat")(chat_command)
    app.command("calibrate")(calibrate_command)


_register_extensions()


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
