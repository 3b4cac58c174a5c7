"""The one renderer of the eval card: sections as data, drawn by two Jinja2 templates.

A `Card` is a title, a lead and a tree of `Section`s (paragraphs, bullet facts, tables, figures,
notes, subsections). `templates/card.md.j2` and `templates/card.html.j2` (autoescaped, figures
inlined as base64 PNG) draw the same tree, so the Markdown and the self-contained HTML always say
the same thing. Emphasis is data (`bold`, `code`), never markup parsed back out of a string.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined


@dataclass(frozen=True)
class Styled:
    text: str
    style: Literal["b", "code"]


def bold(text: Any) -> Styled:
    return Styled(str(text), "b")


def code(text: Any) -> Styled:
    return Styled(str(text), "code")


#: A paragraph, fact or note: plain text, or runs of text and `bold` / `code` parts.
Text = str | Sequence[str | Styled]


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]
    title: str = ""


@dataclass
class Figure:
    alt: str
    png: bytes
    file: str | None = None  # where the PNG is written beside card.md; None: only in the HTML

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass
class Section:
    title: str
    paragraphs: list[Text] = field(default_factory=list)
    facts: list[Text] = field(default_factory=list)  # a bullet list before the tables
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[Text] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    key: str = ""  # the HTML anchor


@dataclass
class Card:
    title: str
    lead: list[Text] = field(default_factory=list)
    headline: Table | None = None
    sections: list[Section] = field(default_factory=list)

    def figures(self) -> Iterator[Figure]:
        stack = list(self.sections)
        while stack:
            s = stack.pop()
            yield from s.figures
            stack.extend(s.sections)


def fmt(value: Any) -> str:
    """A number as the card shows it (4 significant digits); None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _environment(autoescape: bool) -> Environment:
    env = Environment(loader=PackageLoader("trialwright.eval.report", "templates"),
                      autoescape=autoescape, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["md_cell"] = _md_cell
    return env


_MARKDOWN, _HTML = _environment(autoescape=False), _environment(autoescape=True)


def render_markdown(card: Card) -> str:
    return _MARKDOWN.get_template("card.md.j2").render(card=card)


def render_html(card: Card) -> str:
    return _HTML.get_template("card.html.j2").render(card=card)


def write_card(card: Card, out: Path) -> tuple[Path, Path]:
    """`card.md` (its figures as PNG files beside it) and a self-contained `card.html` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for figure in card.figures():
        if figure.file:
            (out / figure.file).parent.mkdir(parents=True, exist_ok=True)
            (out / figure.file).write_bytes(figure.png)
    md_path, html_path = out / "card.md", out / "card.html"
    md_path.write_text(render_markdown(card), encoding="utf-8")
    html_path.write_text(render_html(card), encoding="utf-8")
    return md_path, html_path
