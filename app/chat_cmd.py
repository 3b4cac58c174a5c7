"""`trialwright chat`: the chat drafting assistant in the browser, on 127.0.0.1 by default.

Register in app/cli.py:  app.command("chat")(chat_command)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from trialwright.app.common import err, fail, settings_for, user_errors


def chat_command(
    port: Annotated[int, typer.Option(min=0, max=65535, help="0 = a free port")] = 0,
    host: Annotated[str, typer.Option(help="address to listen on; anything but 127.0.0.1 / "
                                      "localhost makes the assistant reachable from other "
                                      "machines, without authentication")] = "127.0.0.1",
    llm: Annotated[str, typer.Option(help="'auto' (endpoint or embedded) or 'fake'")] = "auto",
    db: Annotated[Path | None, typer.Option(help="conversation checkpoints (SQLite); default "
                                            "beside the store: .trialwright/chat.sqlite")] = None,
    auto_revisions: Annotated[int, typer.Option(min=0, help="self-corrections per turn before "
                                                "you see a draft")] = 1,
) -> None:
    """Draft one trial in a web chat: describe it, review the draft and the critic's findings,
    ask for changes, approve, export (JSON + Markdown). Conversations survive a restart."""
    from trialwright.agents.chat_deps import ChatSetupError, open_chat_deps
    from trialwright.app.chat_ui import is_local, serve_chat

    settings = settings_for()
    with user_errors():
        db_path = db or settings.store_path.parent / "chat.sqlite"
        if not is_local(host):
            err.print(f"[bold yellow]warning:[/] listening on {host}: anyone who can reach this "
                      "machine can use the assistant (there is no login).", highlight=False)
        try:
            with open_chat_deps(settings, llm) as deps:
                serve_chat(deps, db_path=db_path, host=host, port=port,
                           auto_revisions=auto_revisions,
                           announce=lambda url: err.print(
                               f"trialwright chat: [bold]{url}[/] (Ctrl-C to stop; "
                               f"conversations in {db_path})", highlight=False))
        except ChatSetupError as e:
            raise fail(str(e)) from None
