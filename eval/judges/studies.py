"""Re-judging for judge studies: several judges (model x rubric) over generated reports, padded
copies, real trials with known outcome, and report pairs in both orders.

Every verdict is returned as a row with the exact prompt the judge saw; `eval.judges.agreement`
documents the row format and computes the statistics. The single-report prompt, rubric files and
accept rule are the critic's (`critic.*.md`, `rubric_text`, `judge_decision`), so a study measures
the judge that generation uses.

Judge specs are `MODEL@RUBRIC` (`@RUBRIC` defaults to `critic_rubric`). MODEL is one of
- `fake`: the schema-driven fake (plumbing runs; it picks record A in every pairwise question);
- `default`: the configured judge endpoint (TRIALWRIGHT_JUDGE_*, else the generator's);
- the generator's or the judge's model id: that endpoint, at temperature 0;
- another embedded registry model (e.g. `qwen2.5-coder-0.5b-instruct-q4_k_m`) when no endpoint
  is configured: its own llama.cpp server, started for the study — an offline second model;
- any other name: that model on the configured judge endpoint (TRIALWRIGHT_JUDGE_BASE_URL,
  else TRIALWRIGHT_LLM_BASE_URL), e.g. several models behind one vLLM / Ollama / OpenAI server.
RUBRIC names `agents/prompts/<RUBRIC>.md`.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import BaseModel, Field
from trialwright.agents.common import (
    PROMPTS,
    Prompt,
    describe_target,
    load_prompt,
    render_evidence,
)
from trialwright.agents.critic import judge_decision, rubric_text
from trialwright.tools.fake_llm import FakeSchemaChat
from trialwright.tools.llm import (
    ChatEndpoint,
    LLMCall,
    at_temperature_zero,
    call_structured,
    chat_endpoint,
    judge_endpoint,
    open_endpoints,
)
from trialwright.tools.local_llm import MODELS, LocalLLMServer
from trialwright.tools.schema import (
    LABEL_WORD,
    Evidence,
    JudgeOutput,
    Spec,
    SyntheticTrial,
)
from trialwright.tools.settings import Settings
from trialwright.tools.trials import Trial

PROBES = ("plain", "verbosity", "real", "pairwise")
# Content-free sentences: a fair judge scores a padded copy the same as the original.
FILLER = ("The study was conducted in accordance with the Declaration of Helsinki and Good "
          "Clinical Practice. All participants gave written informed consent before any study "
          "procedure. Data were recorded on standardized case report forms and monitored "
          "throughout the study by the sponsor.")
OUTCOME_TEXT = {1: "The trial met its primary endpoint.",
                0: "The trial did not meet its primary endpoint."}


class JudgeSpecError(ValueError):
    pass


@dataclass(frozen=True)
class JudgeSpec:
    model: str
    rubric: str = "critic_rubric"

    @property
    def name(self) -> str:
        return f"{self.model}@{self.rubric}"


def parse_judge_specs(text: str) -> list[JudgeSpec]:
    """'fake@critic_rubric,qwen@rubric_strict' -> specs; unknown rubric files are an error."""
    specs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        model, _, rubric = part.partition("@")
        spec = JudgeSpec(model.strip() or "default", rubric.strip() or "critic_rubric")
        if not (PROMPTS / f"{spec.rubric}.md").is_file():
            known = sorted(p.stem for p in PROMPTS.glob("*rubric*.md"))
            raise JudgeSpecError(f"judge {part!r}: no rubric file {spec.rubric}.md "
                                 f"(known: {', '.join(known)})")
        specs.append(spec)
    if not specs:
        raise JudgeSpecError("no judges given (e.g. --judges fake@critic_rubric)")
    if len({s.name for s in specs}) != len(specs):
        raise JudgeSpecError("the same judge is listed twice")
    return specs


class PairwiseChoice(BaseModel):
    """What a judge writes in pairwise mode."""

    better: Literal["A", "B"]
    reason: str = Field(max_length=400)


class FakeJudgeChat(FakeSchemaChat):
    """The schema fake, also answering pairwise questions: always 'A' (a position-biased judge)."""

    def _answer(self, kwargs: dict[str, Any]) -> ChatResult:
        fmt = kwargs.get("response_format") or {}
        if fmt.get("json_schema", {}).get("name") != PairwiseChoice.__name__:
            return super()._answer(kwargs)
        n = self.tokens_per_answer
        msg = AIMessage(content=json.dumps({"better": "A", "reason": "fake"}), usage_metadata={
            "input_tokens": n, "output_tokens": n, "total_tokens": 2 * n})
        return ChatResult(generations=[ChatGeneration(message=msg)])


@contextmanager
def open_judges(settings: Settings, specs: Sequence[JudgeSpec],
                llm: str = "auto") -> Iterator[dict[str, ChatEndpoint]]:
    """Model name -> endpoint for every spec; starts the embedded model only if one needs it."""
    models = {s.model for s in specs}
    found: dict[str, ChatEndpoint] = {}
    if "fake" in models:
        found["fake"] = ChatEndpoint(chat=FakeJudgeChat(), model_id="fake-schema")
    with ExitStack() as stack:
        if models - {"fake"}:
            generator, judge = stack.enter_context(open_endpoints(settings, llm))
            for model in models - {"fake"}:
                if model in ("default", judge.model_id):
                    found[model] = judge
                elif model == generator.model_id:
                    found[model] = at_temperature_zero(generator)
                elif settings.judge_base_url or settings.llm_base_url:
                    found[model] = judge_endpoint(settings, generator, model=model)
                elif model in MODELS and settings.llm_gguf is None:
                    server = stack.enter_context(LocalLLMServer.from_settings(
                        settings.model_copy(update={"llm_model": model})))
                    found[model] = chat_endpoint(settings, base_url=server.base_url, model=model,
                                                 api_key="not-needed", temperature=0.0,
                                                 max_concurrency=settings.llm_parallel)
                else:
                    raise JudgeSpecError(
                        f"judge model {model!r}: without an endpoint only the embedded models "
                        f"({', '.join(sorted(MODELS))}) run; set TRIALWRIGHT_JUDGE_BASE_URL or "
                        "TRIALWRIGHT_LLM_BASE_URL to use other models")
        yield found


@dataclass(frozen=True)
class JudgeItem:
    """One question to a judge: a report in context (or, pairwise, two reports)."""

    probe: str
    item: str
    variant: str
    target: str
    report: str
    reasons: str = "- (none)"
    evidence: str = "(none)"
    report_b: str = ""  # pairwise only: record B
    ids: tuple[str, str] = ("", "")  # pairwise only: the items shown as A and B
    generator_model: str | None = None
    truth: dict[str, Any] = field(default_factory=dict)


def render_report(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, ensure_ascii=False)


def report_fields(line: dict[str, Any]) -> dict[str, Any]:
    """The report as the critic saw it: the drafter's fields, without the derived `criteria`."""
    return SyntheticTrial.model_validate(line["report"]).model_dump(mode="json")


def padded(report: dict[str, Any]) -> dict[str, Any]:
    return {**report, "brief_summary": f"{report['brief_summary']} {FILLER}",
            "outcome_summary": f"{report['outcome_summary']} {FILLER}"}


def line_target(line: dict[str, Any]) -> str:
    return describe_target(Spec.model_validate(line["provenance"]["spec"]))


def generated_items(lines: Sequence[dict[str, Any]], evidence_of: Callable[[str], Evidence | None],
                    verbosity: bool) -> list[JudgeItem]:
    """Each generated report as the critic saw it; with `verbosity`, its padded copy too."""
    items = []
    for line in lines:
        reasons = "\n".join(f"- {r['claim']}" for r in (line.get("rationale") or {}).get(
            "reasons", [])) or "- (none)"
        shown = [e for e in (evidence_of(x["nctid"]) for x in line["provenance"].get("evidence", []))
                 if e is not None]
        common = {"item": str(line["id"]), "target": line_target(line), "reasons": reasons,
                  "evidence": render_evidence(shown, 400),
                  "generator_model": line["provenance"].get("generator_model"),
                  "truth": {"requested_label": int(line["label"])}}
        report = report_fields(line)
        items.append(JudgeItem(probe="plain", variant="original", report=render_report(report),
                               **common))
        if verbosity:
            items.append(JudgeItem(probe="verbosity", variant="padded",
                                   report=render_report(padded(report)), **common))
    return items


def real_trial_items(trials: Sequence[Trial], n: int, seed: int = 0) -> list[JudgeItem]:
    """n real trials, each shown twice like a synthetic report: with its true and flipped outcome."""
    rng = np.random.default_rng(seed)
    picked = [trials[i] for i in sorted(rng.choice(len(trials), min(n, len(trials)), replace=False))]
    items = []
    for t in picked:
        for claimed in (t.label, 1 - t.label):
            report = {"phase": t.phase, "diseases": t.diseases, "drugs": list(dict.fromkeys(t.drugs)),
                      "eligibility_criteria": " ".join(t.criteria.split())[:1500],
                      "outcome_summary": OUTCOME_TEXT[claimed], "label": claimed}
            spec = Spec(spec_id=t.nctid, phase=t.phase, label=claimed)  # type: ignore[arg-type]
            items.append(JudgeItem(
                probe="real", item=f"{t.nctid}:claims-{LABEL_WORD[claimed]}",
                variant="true" if claimed == t.label else "flipped",
                target=describe_target(spec), report=render_report(report),
                truth={"nctid": t.nctid, "label": t.label, "claimed_label": claimed,
                       "claim_true": claimed == t.label}))
    return items


def pairwise_items(lines: Sequence[dict[str, Any]], n_pairs: int) -> list[JudgeItem]:
    """Pairs of reports written for the same phase and outcome, each pair in both orders."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for line in lines:
        groups.setdefault((line["phase"], line["label"]), []).append(line)
    pairs = [(g[i], g[i + 1]) for g in groups.values() for i in range(0, len(g) - 1, 2)][:n_pairs]
    items = []
    for a, b in pairs:
        ra, rb = render_report(report_fields(a)), render_report(report_fields(b))
        item = f"{a['id']}|{b['id']}"
        for variant, (first, second, ids) in {"ab": (ra, rb, (a["id"], b["id"])),
                                               "ba": (rb, ra, (b["id"], a["id"]))}.items():
            items.append(JudgeItem(probe="pairwise", item=item, variant=variant,
                                   target=line_target(a), report=first, report_b=second,
                                   ids=(str(ids[0]), str(ids[1]))))
    return items


def judge_messages(prompt: Prompt, fields: dict[str, str]) -> list[BaseMessage]:
    """The messages `agents.common.ask` would send, built here so the row stores them exactly."""
    return [SystemMessage(content=prompt.system.format(**fields)),
            HumanMessage(content=prompt.user.format(**fields))]


def row_id(spec: JudgeSpec, item: JudgeItem) -> str:
    return f"{spec.name}|{item.probe}|{item.item}|{item.variant}"


async def ask_judge(endpoint: ChatEndpoint, spec: JudgeSpec, item: JudgeItem,
                    settings: Settings) -> tuple[dict[str, Any], LLMCall]:
    """One verdict row (value fields are None when the answer could not be parsed)."""
    fields = {"rubric": rubric_text(spec.rubric), "target": item.target}
    if item.probe == "pairwise":
        prompt, schema = load_prompt("critic_pairwise"), PairwiseChoice
        fields |= {"report_a": item.report, "report_b": item.report_b}
    else:
        prompt, schema = load_prompt("critic"), JudgeOutput
        fields |= {"reasons": item.reasons, "evidence": item.evidence, "report": item.report}
    messages = judge_messages(prompt, fields)
    value, call = await call_structured(
        endpoint, messages, schema, node="judge", repairs=settings.parse_retries,
        seed=zlib.crc32(row_id(spec, item).encode()) % 2**31)
    row: dict[str, Any] = {
        "id": row_id(spec, item), "judge": spec.name, "model": endpoint.model_id,
        "rubric": spec.rubric, "probe": item.probe, "item": item.item, "variant": item.variant,
        "accept": None, "mean_score": None, "choice": None, "preferred": None,
        "generator_model": item.generator_model, "truth": item.truth,
        "prompt": {"system": messages[0].content, "user": messages[1].content},
        "output": value.model_dump() if value is not None else None, "call": call.model_dump()}
    if isinstance(value, JudgeOutput):
        row["mean_score"], row["accept"] = judge_decision(value, settings.judge_threshold)
    elif isinstance(value, PairwiseChoice):
        row["choice"] = value.better
        row["preferred"] = item.ids[0] if value.better == "A" else item.ids[1]
    return row, call


async def run_judges(endpoints: dict[str, ChatEndpoint], specs: Sequence[JudgeSpec],
                     items: Sequence[JudgeItem], settings: Settings, *, done: set[str],
                     on_row: Callable[[dict[str, Any], bool], None],
                     concurrency: int = 2) -> None:
    """Ask every judge every item not in `done`; `on_row(row, ok)` gets each result as it lands."""
    gate = asyncio.Semaphore(concurrency)

    async def one(spec: JudgeSpec, item: JudgeItem) -> None:
        async with gate:
            row, call = await ask_judge(endpoints[spec.model], spec, item, settings)
        on_row(row, call.ok)

    await asyncio.gather(*(one(s, i) for s in specs for i in items if row_id(s, i) not in done))
