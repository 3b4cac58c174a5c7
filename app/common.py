"""What every command shares: the consoles, user errors (one line, exit 2), settings, the corpus,
and progress. cli.py and the *_cmd modules import this; it imports none of them."""

from __future__ import annotations

import os
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Self

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from trialwright.tools.settings import ConfigFileError, Settings, load_settings

out = Console()
err = Console(stderr=True, soft_wrap=True)

Data = Annotated[Path | None, typer.Option("--data", help="data folder holding top/")]


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def fail(message: str) -> typer.Exit:
    """Print `message` as the one error line and return the exit (code 2) to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    from trialwright.graph.batch import BatchError
    from trialwright.tools.encoder import EncoderError
    from trialwright.tools.local_llm import LocalModelError
    from trialwright.tools.plan import PlanError
    from trialwright.tools.store import StoreError
    from trialwright.tools.trials import DataError

    try:
        yield
    except (UserError, DataError, StoreError, EncoderError, LocalModelError, PlanError,
            BatchError, ConfigFileError) as e:
        raise fail(str(e)) from None
    except ValidationError as e:
        first = e.errors()[0]
        name = ".".join(map(str, first["loc"]))
        raise fail(f"invalid setting '{name}' (TRIALWRIGHT_{name.upper()}, .env or "
                   f"trialwright.toml): {first['msg']}") from None
    except SettingsError as e:
        # pydantic-settings names the field; say which variable carries it.
        field = str(e).split("field ")[-1].split(" ")[0].strip('"\'')
        raise fail(f"invalid setting '{field}' (TRIALWRIGHT_{field.upper()}): {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise fail(f"{os.environ.get('TRIALWRIGHT_CONFIG', 'trialwright.toml')}: invalid TOML: "
                   f"{e}") from None


def settings_for(**overrides: Any) -> Settings:
    with user_errors():
        return load_settings(**overrides)


def load_corpus(settings: Settings, limit: int | None = None):
    from trialwright.tools.trials import load_top

    trials = load_top([settings.top_dir / f for f in settings.top_files])
    return trials[:limit] if limit else trials


class ProgressReport:
    """Progress of a long command on stderr: Rich's bar on a terminal; elsewhere (CI, `| tee`,
    nohup), where the bar prints nothing until the end, a plain line — at the start, when the
    count changes (at most every `every_s`), after `quiet_s` without change, and at the end."""

    def __init__(self, label: str, total: int, *, console: Console | None = None,
                 every_s: float = 5.0, quiet_s: float = 30.0, tick_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.completed, self.description = label, total, 0, ""
        self.console = console or err
        self.every_s, self.quiet_s, self.tick_s, self.clock = every_s, quiet_s, tick_s, clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar: Progress | None = None
        self._ticker: threading.Thread | None = None
        self._started = self._printed_at = clock()
        self._changed = False

    def __enter__(self) -> Self:
        self._started = self.clock()
        if self.console.is_terminal:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=self.console)
            self._task = self._bar.add_task(self.label, total=self.total)
            self._bar.start()
        else:
            self._print()
            self._ticker = threading.Thread(target=self._tick_until_stopped, daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.stop()
        else:
            self._print()

    def update(self, completed: int, description: str | None = None) -> None:
        with self._lock:
            self._changed |= completed != self.completed
            self.completed = completed
            if description is not None:
                self.description = description
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, description=description or self.label)
        else:
            self.tick()

    def advance(self, n: int = 1) -> None:
        self.update(self.completed + n)

    def tick(self) -> None:
        """Print the plain line if it is due (called on each update and every `tick_s`)."""
        since = self.clock() - self._printed_at
        if (self._changed and since >= self.every_s) or since >= self.quiet_s:
            self._print()

    def line(self) -> str:
        share = f" ({self.completed / self.total:.0%})" if self.total else ""
        detail = f" · {self.description}" if self.description else ""
        return (f"{self.label} {self.completed}/{self.total}{share}{detail} · "
                f"{self.clock() - self._started:.0f}s")

    def _print(self) -> None:
        with self._lock:
            self._printed_at, self._changed = self.clock(), False
            text = self.line()
        self.console.print(text, highlight=False, markup=False)

    def _tick_until_stopped(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.tick()
