"""Run a small fake-LLM batch in a subprocess (for the kill -9 resume test)."""

import asyncio
import sys
from pathlib import Path

from agents.common import AgentDeps
from graph.batch import run_batch
from tools.fakes import FakeSchemaChat, FixedStore, HashEncoder
from tools.llm import ChatEndpoint
from tools.schema import Spec
from tools.settings import Settings


def specs(n: int) -> list[Spec]:
    return [Spec(spec_id=f"r{i:03d}", phase="phase 2", label=i % 2, condition="asthma",
                 intervention="budesonide", seed=i) for i in range(n)]


def deps(latency: float) -> AgentDeps:
    ep = ChatEndpoint(chat=FakeSchemaChat(latency_s=latency), model_id="fake")
    return AgentDeps(settings=Settings(k_evidence=2), generator=ep, judge=ep,
                     store=FixedStore(), encoder=HashEncoder())  # type: ignore[arg-type]


if __name__ == "__main__":
    out, n, latency = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    asyncio.run(run_batch(specs(n), deps(latency), out, concurrency=3))
