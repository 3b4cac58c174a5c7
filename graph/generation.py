r"""The Retrieval-Reasoning loop as a LangGraph state machine.

    START -> retrieve -> reason -> draft -> check --(pass)--> read_outcome --(agrees)--> judge
                           ^         ^       ^  \--(any fails)--> review <--(disagrees)--/  |
                           |         |       |                     |  ^---------------------+
                           |         |       +-- revise_outcome <--+ (only the outcome was wrong)
                           |         +---------- draft <-----------+ (drafting findings)
                           +-------------------- reason <----------+ (rationale findings)
                             review -> read_outcome / judge again (no valid answer) | END
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from trialwright.agents.common import AgentDeps
from trialwright.agents.critic import check_consistency, review_report
from trialwright.agents.drafter import draft_report, rewrite_outcome
from trialwright.agents.outcome_reader import read_outcome
from trialwright.agents.quality_judge import judge_quality
from trialwright.agents.reasoner import reason_outcome
from trialwright.agents.retriever import retrieve_evidence
from trialwright.agents.state import ReportState
from trialwright.tools.schema import Spec


async def _retrieve(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    """Retrieval, after turning a JSON spec (an API client's input, e.g. `langgraph dev`) into
    a validated `Spec`: the state's types are not enforced on input."""
    if isinstance(state["spec"], Spec):
        return await retrieve_evidence(state, deps)
    spec = Spec.model_validate(state["spec"])
    return {"spec": spec, **await retrieve_evidence({**state, "spec": spec}, deps)}


async def _check(state: ReportState, deps: AgentDeps) -> Command:
    update = await check_consistency(state, deps)
    failed = any(not c.passed for c in update["checks"])
    return Command(update=update, goto="review" if failed else "read_outcome")


async def _read_outcome(state: ReportState, deps: AgentDeps) -> Command:
    update = await read_outcome(state, deps)
    agrees = update["outcome"] is not None and update["outcome"].agrees
    return Command(update=update, goto="judge" if agrees else "review")


async def _review(state: ReportState, deps: AgentDeps) -> Command:
    s = deps.settings
    nxt, update = review_report(state, s.max_revisions, s.critic_retries)
    return Command(update=update, goto=END if nxt in ("accept", "reject") else nxt)


def build_generation_graph(deps: AgentDeps,
                           checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    g = StateGraph(ReportState)
    g.add_node("retrieve", partial(_retrieve, deps=deps))
    g.add_node("reason", partial(reason_outcome, deps=deps))
    g.add_node("draft", partial(draft_report, deps=deps))
    g.add_node("check", partial(_check, deps=deps), destinations=("read_outcome", "review"))
    g.add_node("read_outcome", partial(_read_outcome, deps=deps), destinations=("judge", "review"))
    g.add_node("judge", partial(judge_quality, deps=deps))
    g.add_node("review", partial(_review, deps=deps),
               destinations=("reason", "draft", "revise_outcome", "read_outcome", "judge", END))
    g.add_node("revise_outcome", partial(rewrite_outcome, deps=deps))
    g.add_edge(START, "retrieve")
    g.add_edge("retrieve", "reason")
    g.add_edge("reason", "draft")
    g.add_edge("draft", "check")
    g.add_edge("judge", "review")
    g.add_edge("revise_outcome", "check")
    return g.compile(checkpointer=checkpointer)


def run_config(deps: AgentDeps, thread_id: str | None = None) -> dict[str, Any]:
    # A revision walks at most 6 nodes, plus re-asks of a reader/judge that did not answer; the
    # limit only guards against a wiring bug.
    s = deps.settings
    config: dict[str, Any] = {"recursion_limit": 8 + (7 + 2 * (s.critic_retries + 1)) * (s.max_revisions + 1)}
    if thread_id:
        config["configurable"] = {"thread_id": thread_id}
    return config


async def arun_spec(spec: Spec, deps: AgentDeps) -> ReportState:
    """One spec through the real graph, in memory; returns the final state."""
    graph = build_generation_graph(deps)
    return await graph.ainvoke({"spec": spec, "revision": 0}, run_config(deps))


def run_spec(spec: Spec, deps: AgentDeps) -> ReportState:
    return asyncio.run(arun_spec(spec, deps))
