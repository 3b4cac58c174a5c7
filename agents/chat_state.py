"""The state of one chat conversation: the report state of the batch loop plus the dialogue.

Only types a checkpoint already allows are stored (the report state's models, LangChain messages,
plain dicts), so the batch loop's serializer restores a conversation after a restart.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from trialwright.agents.state import ReportState
from trialwright.tools.schema import SyntheticTrial


class ChatState(ReportState, total=False):
    messages: Annotated[list[AnyMessage], add_messages]  # what the person and the assistant said
    change_requests: Annotated[list[str], operator.add]  # the person's edits, for the export
    previous_draft: SyntheticTrial | None  # the draft the person saw when asking for an edit
    user_feedback: str  # this turn's request, kept when the critic adds its own findings
    auto_left: int  # self-corrections the critic may still ask for in this turn
    approved: bool
    exported: dict[str, Any] | None  # {"json": record, "markdown": text}
