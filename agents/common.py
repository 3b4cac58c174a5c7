"""What every agent shares: dependencies, prompt files, evidence rendering, the LLM call."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel
from trialwright.agents.state import NodeTiming
from trialwright.tools.encoder import Encoder
from trialwright.tools.llm import ChatEndpoint, call_structured
from trialwright.tools.schema import LABEL_WORD, Allowed, Evidence, Spec
from trialwright.tools.settings import Settings

if TYPE_CHECKING:
    from trialwright.agents.calibration import Calibration
    from trialwright.tools.plausible_ranges import PlausibleRanges
    from trialwright.tools.privacy_index import PrivacyIndex
    from trialwright.tools.store import VectorStore

PROMPTS = Path(__file__).parent / "prompts"
T = TypeVar("T", bound=BaseModel)


@dataclass
class AgentDeps:
    """Everything the agents need at run time; built once per batch."""

    settings: Settings
    generator: ChatEndpoint
    judge: ChatEndpoint
    store: VectorStore | None = None
    encoder: Encoder | None = None
    rubric: str = "quality_checklist"  # the blinded quality judge's checklist (a prompt file)
    privacy: PrivacyIndex | None = None  # the whole real corpus, for the corpus-wide copy check
    ranges: PlausibleRanges | None = None  # real trials' enrollment/time-frame bands per phase
    calibration: Calibration | None = None  # the judge's thresholds on real trials, per label


@dataclass(frozen=True)
class Prompt:
    name: str
    system: str
    user: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.system}\0{self.user}".encode()).hexdigest()


#: The prompt files the generation loop reads (the rubric is added per run).
GENERATION_PROMPTS = ("reasoner", "drafter", "outcome_reader", "outcome_rewrite", "quality_judge")


@cache
def _file_sha256(name: str) -> str:
    return hashlib.sha256((PROMPTS / name).read_bytes()).hexdigest()


def prompt_hashes(rubric: str | None = None, prompts: tuple[str, ...] = GENERATION_PROMPTS
                  ) -> dict[str, str]:
    """sha256 of the prompt files a generation run uses (provenance, resume fingerprints).

    Only those files: a new chat or judge prompt must not invalidate a batch's resume.
    """
    names = [f"{p}.{part}.md" for p in prompts for part in ("system", "user")]
    names += [f"{rubric}.md"] if rubric else []
    return {n: _file_sha256(n) for n in names}


@cache
def load_prompt(name: str) -> Prompt:
    """`<name>.system.md` and `<name>.user.md` beside the agents."""
    return Prompt(name, (PROMPTS / f"{name}.system.md").read_text(),
                  (PROMPTS / f"{name}.user.md").read_text())


_OUTCOME_MEANING = {1: "it met its primary endpoint",
                    0: "it did not meet its primary endpoint or stopped early"}


def describe_target(spec: Spec) -> str:
    # In words, not "(label 0)": small models echo a class label into the registry prose.
    return (f"a {spec.phase} trial whose outcome is {LABEL_WORD[spec.label].upper()} "
            f"({_OUTCOME_MEANING[spec.label]})")


def render_evidence(evidence: list[Evidence], chars: int = 700) -> str:
    return "\n\n".join(f"[{e.nctid}] {e.text[:chars]}" for e in evidence) or "(none)"


def feedback_block(feedback: str) -> str:
    if not feedback:
        return ""
    return f"\nA reviewer rejected the previous attempt. Fix every point:\n{feedback}\n"


async def ask(endpoint: ChatEndpoint, prompt: Prompt, schema: type[T], *, node: str,
              repairs: int, allowed: Allowed | None = None, seed: int | None = None,
              **fields: Any) -> tuple[T | None, dict[str, Any]]:
    """Render a prompt, make the structured call, and return (value, state update of records)."""
    messages = [SystemMessage(content=prompt.system.format(**fields)),
                HumanMessage(content=prompt.user.format(**fields))]
    value, call = await call_structured(endpoint, messages, schema, node=node, repairs=repairs,
                                        allowed=allowed, seed=seed)
    return value, {"llm_calls": [call]}


def call_seed(spec: Spec, revision: int, node: str) -> int:
    """A distinct, reproducible sampling seed per spec, revision and node."""
    nodes = {"reason": 1, "draft": 2, "judge": 3, "read_outcome": 4, "revise_outcome": 5}
    return (spec.seed * 31 + revision * 7 + nodes[node]) % 2**31


def timed(node: str, revision: int, started: float) -> dict[str, Any]:
    return {"timings": [NodeTiming(node=node, revision=revision,
                                   seconds=round(time.perf_counter() - started, 4))]}
