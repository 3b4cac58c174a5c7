"""Run a small fake-LLM batch in a subprocess (for the kill -9 resume test)."""

import asyncio
import sys
from pathlib import Path

from trialwright.agents.common import AgentDeps
from trialwright.graph.batch import run_batch
from trialwright.tools.schema import Spec

from tests.doubles import fake_deps


def specs(n: int) -> list[Spec]:
    return [Spec(spec_id=f"r{i:03d}", phase="phase 2", label=i % 2, condition="asthma",
                 intervention="budesonide", seed=i) for i in range(n)]


def deps(latency: float) -> AgentDeps:
    return fake_deps(latency)


if __name__ == "__main__":
    out, n, latency = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    asyncio.run(run_batch(specs(n), deps(latency), out, concurrency=3))
