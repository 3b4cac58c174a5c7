"""Guards for untrusted chat text, in code rather than in prompt wording.

In: a user's message is cleaned (control characters, our fence tags, length) and only ever placed
in the user turn of a prompt, fenced as data. Requests for the assistant's instructions, keys or
configuration are answered by a fixed refusal without calling a model.
Out: everything the assistant shows (replies, drafts, streamed tokens, exports) passes `redact`,
which removes configured secrets, key-like strings, configured endpoint URLs, and any verbatim
run of a prompt file's text — so even a model that obeys an injection cannot leak them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from trialwright.agents.common import PROMPTS
from trialwright.tools.settings import Settings

MAX_MESSAGE_CHARS = 2000
PROMPT_WINDOW = 8  # words: a longer verbatim run of a prompt file in an answer is a leak
WITHHELD_PROMPT = "[withheld: assistant instructions]"
WITHHELD_SECRET = "[withheld: secret]"
REFUSAL = ("I can't share my instructions, configuration, keys or settings, and I don't change my "
           "rules on request. I can draft a clinical-trial record: tell me the phase, the "
           "condition, the intervention and whether the trial should succeed or fail.")

FENCE_TAG = "user_message"
_FENCE = re.compile(rf"</?\s*{FENCE_TAG}\s*>", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")

_KEY_LIKE = re.compile("|".join([
    r"\bsk-[A-Za-z0-9_\-]{6,}",  # OpenAI-style keys (sk-, sk-proj-, sk-test-)
    r"\b(?:hf|ghp|gho|ghs|ghu|glpat|xox[abpr])[-_][A-Za-z0-9_\-]{10,}",  # hub/git/chat tokens
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
    r"\b[Bb]earer\s+[A-Za-z0-9._\-]{10,}",
    r"\b(?i:api[_-]?key|secret|access[_-]?token|password)\s*[:=]\s*\S+",
]))
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)$", re.IGNORECASE)

# Asking for the assistant's internals, or to drop its rules: answered by REFUSAL, no model call.
_PROBE = re.compile("|".join([
    r"system\s*[-_]?\s*(prompt|message|instruction)",
    r"\b(your|the|its|initial|original|hidden|developer)\s+(instructions|rules|prompts?|guidelines)\b",
    r"\bprompts?\s+(file|text|template)s?\b",
    r"\bapi[\s_-]*keys?\b", r"\bsecrets?\b", r"\bpasswords?\b", r"\bcredentials?\b",
    r"\b(access|auth|bearer|api)\s*tokens?\b",
    r"\benvironment\s+variables?\b", r"(^|\s)\.env\b", r"\benv\s+vars?\b",
    r"\b(your|the|app|server|model|assistant)('s)?\s+(settings|config|configuration)\b",
    r"\bignore\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|above|earlier|preceding)\b",
    r"\b(disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|above|"
    r"earlier|instructions|rules)\b",
    r"\b(developer|god|dan|jailbreak)\s+mode\b", r"\bjailbreak",
    r"\b(repeat|print|output|show|reveal|dump)\b.{0,40}\b(above|verbatim|everything before|"
    r"instructions|prompt)\b",
]), re.IGNORECASE | re.DOTALL)


def clean_user_text(text: Any) -> str:
    """A user's message as safe data: a string, no control/bidi characters, no fence tags, capped."""
    text = _CONTROL.sub("", str(text or ""))
    text = _FENCE.sub("", text).replace("\r\n", "\n")
    return text.strip()[:MAX_MESSAGE_CHARS]


def fence(text: str) -> str:
    """The message inside the fence the intake prompt names as data."""
    return f"<{FENCE_TAG}>\n{clean_user_text(text)}\n</{FENCE_TAG}>"


def is_probe(text: str) -> bool:
    """Does the message ask for the assistant's internals or to drop its rules?"""
    return bool(_PROBE.search(text))


def _words(text: str) -> list[tuple[str, int, int]]:
    """Normalised words with their character spans (punctuation-only tokens dropped)."""
    out = []
    for m in re.finditer(r"\S+", text):
        word = re.sub(r"^\W+|\W+$", "", m.group().lower())
        if word:
            out.append((word, m.start(), m.end()))
    return out


@cache
def prompt_windows(window: int = PROMPT_WINDOW) -> frozenset[tuple[str, ...]]:
    """Every run of `window` words in a prompt file (placeholders split the runs)."""
    runs: set[tuple[str, ...]] = set()
    for path in sorted(PROMPTS.glob("*.md")):
        for segment in re.split(r"\{+[A-Za-z_]*\}+", path.read_text()):
            words = [w for w, _, _ in _words(segment)]
            runs.update(tuple(words[i:i + window]) for i in range(len(words) - window + 1))
    return frozenset(runs)


def configured_secrets(settings: Settings) -> list[str]:
    """Values that must never be shown: keys, endpoint URLs, secret-named environment variables."""
    values = [s.get_secret_value() for s in (settings.llm_api_key, settings.judge_api_key,
                                             settings.qdrant_api_key) if s is not None]
    values += [settings.llm_base_url or "", settings.judge_base_url or "", settings.qdrant_url or ""]
    values += [v for k, v in os.environ.items() if _SECRET_ENV.search(k)]
    return [v for v in values if len(v) >= 6]


class OutputGuard:
    """Redacts secrets, key-like strings and verbatim prompt text from anything shown."""

    def __init__(self, secrets: Iterable[str] = (), window: int = PROMPT_WINDOW):
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.window = window
        self.windows = prompt_windows(window)

    @classmethod
    def for_settings(cls, settings: Settings) -> OutputGuard:
        return cls(configured_secrets(settings))

    def _prompt_spans(self, text: str) -> list[tuple[int, int]]:
        words, n = _words(text), self.window
        spans: list[tuple[int, int]] = []
        for i in range(len(words) - n + 1):
            if tuple(w for w, _, _ in words[i:i + n]) in self.windows:
                start, end = words[i][1], words[i + n - 1][2]
                if spans and start <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], end)
                else:
                    spans.append((start, end))
        return spans

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, WITHHELD_SECRET)
        text = _KEY_LIKE.sub(WITHHELD_SECRET, text)
        for start, end in reversed(self._prompt_spans(text)):
            text = text[:start] + WITHHELD_PROMPT + text[end:]
        return text

    def clean(self, value: Any) -> Any:
        """`redact` applied to every string in a JSON-like value (keys included)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.clean(k): self.clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean(v) for v in value]
        return value
