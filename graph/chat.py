r"""The chat drafting assistant: the batch loop's agents with a person in the loop.

    START -> intake --(new or changed trial)--> retrieve -> reason -> draft -> check --> read_outcome --> judge
               ^  |--(change request)-------------------------------^   ^       \            \          |
               |  |                     critique: self-correct (<= auto), re-ask, revise_outcome <--+
               |  |                                       |
               |  |--(approve)--> approve --------+    present
               |  |--(export)---> export --> END  |       |
               |  \--(reply: help / refusal)------+--> review: interrupt() for the person
               +--------------- their next message: Command(resume=...) ---------+

A conversation is one thread; with a SQLite checkpointer it survives a server restart (the same
thread_id continues where it stopped). `langgraph dev` loads `chat_graph_for_server` and
`generation_graph_for_server` (see langgraph.json).
"""

from __future__ import annotations

import atexit
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot, interrupt
from trialwright.agents.chat_deps import SERVER_DEPS
from trialwright.agents.chat_intake import (
    REVIEW_HELP,
    check_change_applied,
    interpret_message,
    read_resume,
)
from trialwright.agents.chat_report import approve_draft, export_report, present_draft
from trialwright.agents.chat_state import ChatState
from trialwright.agents.common import AgentDeps
from trialwright.agents.critic import check_consistency, review_report
from trialwright.agents.drafter import draft_report, rewrite_outcome
from trialwright.agents.outcome_reader import read_outcome
from trialwright.agents.quality_judge import judge_quality
from trialwright.agents.reasoner import reason_outcome
from trialwright.agents.retriever import retrieve_evidence
from trialwright.graph.checkpoint_serde import checkpoint_serde

AUTO_REVISIONS = 1  # self-corrections per turn before the person sees the draft


async def _intake(state: ChatState, deps: AgentDeps, auto_revisions: int) -> Command:
    nxt, update = await interpret_message(state, deps)
    if nxt in ("retrieve", "draft"):
        update["auto_left"] = auto_revisions
    if nxt == "reply":
        return Command(update=update, goto="review" if state.get("draft") is not None else END)
    return Command(update=update, goto=nxt)


async def _check(state: ChatState, deps: AgentDeps) -> Command:
    update = await check_consistency(state, deps)
    if (applied := check_change_applied(state)) is not None:
        update["checks"] = [*update["checks"], applied]
    failed = any(not c.passed for c in update["checks"])
    return Command(update=update, goto="critique" if failed else "read_outcome")


async def _read_outcome(state: ChatState, deps: AgentDeps) -> Command:
    update = await read_outcome(state, deps)
    agrees = update["outcome"] is not None and update["outcome"].agrees
    return Command(update=update, goto="judge" if agrees else "critique")


async def _critique(state: ChatState, deps: AgentDeps) -> Command:
    """The batch loop's decision, with this turn's self-correction budget as the limit."""
    left = state.get("auto_left", 0)
    nxt, update = review_report(state, state.get("revision", 0) + (1 if left > 0 else 0),
                                deps.settings.critic_retries)
    if nxt in ("read_outcome", "judge"):  # re-ask a reader/judge that gave no valid answer
        return Command(update=update, goto=nxt)
    if nxt in ("reason", "draft", "revise_outcome"):
        update["auto_left"] = left - 1
        update["feedback"] = "\n".join(x for x in (state.get("user_feedback", ""),
                                                   update["feedback"]) if x)
        return Command(update=update, goto=nxt)
    return Command(update=update, goto="present")


async def _present(state: ChatState, deps: AgentDeps) -> dict[str, Any]:
    return present_draft(state, deps)


async def _review(state: ChatState) -> Command:
    """Wait for the person: a message (-> intake) or a button (approve / export)."""
    answer = interrupt({"kind": "review", "actions": ["approve", "change", "export"],
                        "hint": REVIEW_HELP})
    action, text = read_resume(answer)
    goto = action if action in ("approve", "export") else "intake"
    return Command(update={"messages": [HumanMessage(content=text)]}, goto=goto)


async def _approve(state: ChatState, deps: AgentDeps) -> dict[str, Any]:
    return approve_draft(state, deps)


async def _export(state: ChatState, deps: AgentDeps) -> dict[str, Any]:
    return export_report(state, deps)


def build_chat_graph(deps: AgentDeps, checkpointer: BaseCheckpointSaver | None = None, *,
                     auto_revisions: int = AUTO_REVISIONS) -> CompiledStateGraph:
    g = StateGraph(ChatState)
    g.add_node("intake", partial(_intake, deps=deps, auto_revisions=auto_revisions),
               destinations=("retrieve", "draft", "approve", "export", "review", END))
    g.add_node("retrieve", partial(retrieve_evidence, deps=deps))
    g.add_node("reason", partial(reason_outcome, deps=deps))
    g.add_node("draft", partial(draft_report, deps=deps))
    g.add_node("check", partial(_check, deps=deps), destinations=("read_outcome", "critique"))
    g.add_node("read_outcome", partial(_read_outcome, deps=deps), destinations=("judge", "critique"))
    g.add_node("judge", partial(judge_quality, deps=deps))
    g.add_node("critique", partial(_critique, deps=deps),
               destinations=("reason", "draft", "revise_outcome", "read_outcome", "judge", "present"))
    g.add_node("revise_outcome", partial(rewrite_outcome, deps=deps))
    g.add_node("present", partial(_present, deps=deps))
    g.add_node("review", _review, destinations=("intake", "approve", "export"))
    g.add_node("approve", partial(_approve, deps=deps))
    g.add_node("export", partial(_export, deps=deps))
    g.add_edge(START, "intake")
    g.add_edge("retrieve", "reason")
    g.add_edge("reason", "draft")
    g.add_edge("draft", "check")
    g.add_edge("judge", "critique")
    g.add_edge("revise_outcome", "check")
    g.add_edge("present", "review")
    g.add_edge("approve", "review")
    g.add_edge("export", END)
    return g.compile(checkpointer=checkpointer)


def chat_config(thread_id: str, auto_revisions: int = AUTO_REVISIONS) -> dict[str, Any]:
    # One turn walks at most ~6 nodes per draft attempt; the limit only guards against a wiring bug.
    return {"configurable": {"thread_id": thread_id},
            "recursion_limit": 12 + 7 * (auto_revisions + 1)}


def turn_input(snapshot: StateSnapshot | None, text: str = "", action: str = "message") -> Any:
    """What to send the graph for this turn: resume a waiting review, continue an interrupted
    run (after a crash or restart mid-turn), or start a turn with a new message."""
    if snapshot is not None and snapshot.interrupts:
        return Command(resume={"action": action, "text": text})
    if action == "continue":  # nothing unfinished: a no-op run
        return None
    return {"messages": [HumanMessage(content=text or action)]}


@asynccontextmanager
async def open_chat_checkpointer(path: Path) -> AsyncIterator[BaseCheckpointSaver]:
    """A SQLite checkpointer restoring exactly our state types (the batch loop's allow-list)."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(path) as conn:
        yield AsyncSqliteSaver(conn, serde=checkpoint_serde())


# --- `langgraph dev` entry points: the platform brings its own checkpointer -------------------

# Shared by both graphs: the server executes this file once per graph in langgraph.json, so a
# dict defined here would be per graph and the second graph would reopen the store (locked).
_SERVER = SERVER_DEPS


def _server_deps() -> AgentDeps:
    """One set of agent dependencies per server process (opened on first use, closed at exit)."""
    if "deps" not in _SERVER:
        from trialwright.agents.chat_deps import open_chat_deps
        from trialwright.tools.settings import load_settings

        stack = ExitStack()
        atexit.register(stack.close)
        settings = load_settings()
        _SERVER["deps"] = stack.enter_context(open_chat_deps(settings, settings.chat_llm))
    return _SERVER["deps"]


def chat_graph_for_server(config: RunnableConfig) -> CompiledStateGraph:
    return build_chat_graph(_server_deps())


def generation_graph_for_server(config: RunnableConfig) -> CompiledStateGraph:
    from trialwright.graph.generation import build_generation_graph

    return build_generation_graph(_server_deps())
