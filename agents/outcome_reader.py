"""Outcome reader: how does the report's outcome text read to someone who was not told the label?

A deterministic phrase pre-check decides texts that state exactly one outcome; the rest go to a
model that sees only the outcome text and the endpoint (never the label or the requested target)
and gives a closed answer. Code, not the model, compares the reading with the label.
"""

from __future__ import annotations

import time
from typing import Any

from trialwright.agents.common import AgentDeps, ask, call_seed, load_prompt, timed
from trialwright.agents.state import ReportState
from trialwright.tools.outcome_words import EXPECTED_READINGS, read_outcome_phrases
from trialwright.tools.schema import OutcomeAnswer, OutcomeReading, SyntheticTrial


def reader_fields(draft: SyntheticTrial) -> dict[str, str]:
    """Everything the reader model sees: the endpoint and the outcome text, nothing else."""
    return {"measure": draft.primary_outcome.measure, "time_frame": draft.primary_outcome.time_frame,
            "outcome": draft.outcome_summary}


async def read_outcome(state: ReportState, deps: AgentDeps) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec, draft, revision = state["spec"], state["draft"], state.get("revision", 0)
    assert draft is not None, "the reader only sees reports that passed the checks"
    expected = list(EXPECTED_READINGS[spec.label])
    phrase, matched = read_outcome_phrases(draft.outcome_summary)
    if phrase is not None:
        reading = OutcomeReading(reading=phrase, method="phrases", matched=matched,
                                 expected=expected, agrees=phrase in expected)
        return {"outcome": reading, **timed("read_outcome", revision, t0)}
    value, update = await ask(deps.judge, load_prompt("outcome_reader"), OutcomeAnswer,
                              node="read_outcome", seed=call_seed(spec, revision, "read_outcome"),
                              repairs=deps.settings.parse_retries, **reader_fields(draft))
    reading = None
    if value is not None:
        reading = OutcomeReading(reading=value.reading, method="model",
                                 reader_model=deps.judge.model_id, expected=expected,
                                 agrees=value.reading in expected)
    return {"outcome": reading, "critic_failures": state.get("critic_failures", 0) + (value is None),
            **update, **timed("read_outcome", revision, t0)}
