"""What a checkpoint may hold: the serializer every graph's checkpointer uses (the state type
itself is the agents' `agents.state.ReportState`)."""

from __future__ import annotations

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from trialwright.agents.state import NodeTiming, Round
from trialwright.tools import llm, schema

__all__ = ["checkpoint_serde"]

_STATE_TYPES = [NodeTiming, Round, llm.LLMCall, schema.Spec, schema.Evidence, schema.Reason,
                schema.Rationale, schema.SyntheticTrial, schema.Arm, schema.Design, schema.Outcome,
                schema.CheckResult, schema.OutcomeReading, schema.QualityVerdict]


def checkpoint_serde() -> JsonPlusSerializer:
    """A serializer that restores exactly our state types and refuses any other class."""
    return JsonPlusSerializer(
        allowed_msgpack_modules=[(t.__module__, t.__name__) for t in _STATE_TYPES])
