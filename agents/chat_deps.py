"""The agents' dependencies for a long-running chat process (web UI or `langgraph dev`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from trialwright.agents.common import AgentDeps
from trialwright.tools.settings import Settings

# The `langgraph dev` server's deps, one set per process (see graph/chat.py). It lives in this
# module because the server executes graph/chat.py once per graph in langgraph.json: a cache
# there would be per graph, and the second graph would open the single-process store again.
SERVER_DEPS: dict[str, AgentDeps] = {}


class ChatSetupError(RuntimeError):
    """The chat cannot start (unknown --llm); the message says what to do. An empty store is
    `tools.store.EmptyStoreError`."""


@contextmanager
def open_chat_deps(settings: Settings, llm: str = "auto") -> Iterator[AgentDeps]:
    """Store, encoder, (generator, judge) endpoints and the critic's references — the corpus
    index for the copy check, size bands, calibration — as in batch generation; closed on exit."""
    from trialwright.agents.calibration import attach_critic_references
    from trialwright.tools.encoder import Encoder
    from trialwright.tools.llm import open_endpoints
    from trialwright.tools.privacy_index import corpus_index
    from trialwright.tools.store import open_nonempty_store
    from trialwright.tools.trials import load_top

    if llm not in ("auto", "fake"):
        raise ChatSetupError(f"--llm {llm!r}: expected 'auto' or 'fake'")
    store = open_nonempty_store(settings)
    try:
        privacy = corpus_index(settings, load_top(settings.top_dir / f for f in settings.top_files))
        with open_endpoints(settings, llm) as (generator, judge):
            yield attach_critic_references(AgentDeps(
                settings=settings, generator=generator, judge=judge, store=store,
                encoder=Encoder(settings), privacy=privacy))
    finally:
        store.close()
