"""The one way to call an LLM: factory for chat models, and a structured call that validates.

LLM output is untrusted input: `call_structured` parses, validates against a pydantic model,
screens the text (no control characters, markup or instructions aimed at the next model), asks
the model to repair a bad answer a bounded number of times, and returns the failure as data
(`LLMCall.ok = False`) instead of raising, so one bad answer never crashes a batch.
Transport faults (429 with Retry-After, 5xx, timeouts, dropped connections) are retried with
exponential backoff and jitter by the OpenAI client underneath (`max_retries`); a response that
is no completion at all (garbage, HTML, a wrong shape) is asked again like an invalid answer;
one request, its retries included, ends at a wall-clock deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from openai import APIConnectionError, APIStatusError, LengthFinishReasonError
from pydantic import BaseModel, Field, ValidationError
from trialwright.tools.schema import Allowed, constrained_schema
from trialwright.tools.settings import Settings
from trialwright.tools.trials import NCT_ID

T = TypeVar("T", bound=BaseModel)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)
# A server's wrong-typed message trips pydantic's serializer inside the client: the call already
# fails as data (`bad response`), the warning would only print internals to the user's terminal.
warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)

MAX_ANSWER_CHARS = 200_000  # far above any answer within max_tokens; a bigger one is refused unread
# C0 controls but tab/newline/return, DEL, C1 controls, lone surrogates (cannot be encoded)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_MARKUP = re.compile(
    r"<\s*/?\s*(?:script|iframe|img|svg|style|object|embed|html|head|body|form|input|button|"
    r"textarea|link|meta|base|frame|frameset|div|span|br|table|video|audio|math)(?=[\s/>])[^>]*>"
    r"|<\s*a\s+href\b"
    r"|\bjavascript\s*:|\bon(?:error|load|click|mouseover|focus)\s*=", re.IGNORECASE)
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}?\b(?:previous|prior|above|earlier|"
    r"preceding|all|any|your)\b[^.\n]{0,30}?\b(?:instructions?|prompts?|rules|directions|"
    r"guidelines)\b|\bsystem\s+prompt\b|^\s*(?:system|assistant)\s*:", re.IGNORECASE | re.MULTILINE)


class LLMCall(BaseModel):
    """Provenance of one structured call (all its attempts)."""

    node: str
    model: str
    ok: bool
    attempts: int
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    errors: list[str] = Field(default_factory=list)


@dataclass
class ChatEndpoint:
    """A chat model plus what we know about where it runs."""

    chat: BaseChatModel
    model_id: str
    structured: str = "json_schema"  # or "json_object" / "none" for endpoints without schemas
    max_concurrency: int = 0  # 0 = unbounded; a per-endpoint limit protects small servers
    schema_extras: dict[str, Any] = field(default_factory=dict)  # server-specific schema keys
    base_url: str | None = None  # the server, so a judge can tell whether it shares it
    api_key: str = field(default="not-needed", repr=False)
    deadline_s: float | None = None  # wall clock of one request, the client's retries included
    _gate: asyncio.Semaphore | None = field(default=None, repr=False)

    def gate(self) -> asyncio.Semaphore | None:
        if self.max_concurrency and self._gate is None:
            self._gate = asyncio.Semaphore(self.max_concurrency)
        return self._gate


def chat_endpoint(settings: Settings, *, base_url: str | None, model: str, api_key: str,
                  max_concurrency: int = 0, temperature: float | None = None) -> ChatEndpoint:
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) through one client;
    `base_url` None is the client's default (OPENAI_BASE_URL, else OpenAI's own API)."""
    from langchain_core.rate_limiters import InMemoryRateLimiter
    from langchain_openai import ChatOpenAI

    limiter = None
    if settings.llm_requests_per_minute:
        limiter = InMemoryRateLimiter(requests_per_second=settings.llm_requests_per_minute / 60,
                                      check_every_n_seconds=0.05, max_bucket_size=1)
    chat = ChatOpenAI(
        base_url=base_url, api_key=api_key, model=model,
        temperature=settings.llm_temperature if temperature is None else temperature,
        max_tokens=settings.llm_max_tokens, timeout=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries, rate_limiter=limiter,
        stream_usage=True,
    )
    return ChatEndpoint(chat=chat, model_id=model, max_concurrency=max_concurrency,
                        base_url=base_url, api_key=api_key, deadline_s=request_deadline(settings))


def request_deadline(settings: Settings) -> float:
    """`llm_deadline_s`, else every attempt's timeout plus the waits between them (the OpenAI
    client honours a Retry-After of up to 60 s, else backs off up to 8 s) and the rate limiter's."""
    if settings.llm_deadline_s:
        return settings.llm_deadline_s
    retries = settings.llm_max_retries
    limiter = 3600 / settings.llm_requests_per_minute if settings.llm_requests_per_minute else 0
    return settings.llm_timeout_s * (retries + 1) + 60 * retries + limiter + 5


def at_temperature_zero(generator: ChatEndpoint) -> ChatEndpoint:
    """The generator's own model and server, answering deterministically; shares its slots."""
    return ChatEndpoint(chat=generator.chat.bind(temperature=0.0),  # type: ignore[arg-type]
                        model_id=generator.model_id, max_concurrency=generator.max_concurrency,
                        schema_extras=generator.schema_extras, base_url=generator.base_url,
                        api_key=generator.api_key, deadline_s=generator.deadline_s,
                        _gate=generator.gate())


def judge_endpoint(settings: Settings, generator: ChatEndpoint, *,
                   model: str | None = None) -> ChatEndpoint:
    """The judge beside `generator`: the one rule for every place that builds a judge.

    TRIALWRIGHT_JUDGE_BASE_URL / _MODEL / _API_KEY each replace the generator's server, model and
    key (`model` replaces the configured judge model); unset, the key is the generator's on its
    server and the configured LLM key (else OPENAI_API_KEY) on another. Always temperature 0.
    On the generator's server the judge shares its slots; with nothing set it *is* the generator
    at temperature 0.
    """
    model = model or settings.judge_model
    if not (settings.judge_base_url or model or settings.judge_api_key):
        return at_temperature_zero(generator)
    same_server = settings.judge_base_url in (None, generator.base_url)
    if settings.judge_api_key:
        key = settings.judge_api_key.get_secret_value()
    else:
        key = generator.api_key if same_server else settings.api_key()
    judge = chat_endpoint(settings, base_url=settings.judge_base_url or generator.base_url,
                          model=model or generator.model_id, api_key=key,
                          max_concurrency=generator.max_concurrency if same_server else 0,
                          temperature=0.0)
    if same_server:
        judge._gate = generator.gate()  # one server: the judge waits for the generator's slots
    return judge


def response_format(schema: type[BaseModel], mode: str, allowed: Allowed | None = None,
                    extras: dict[str, Any] | None = None) -> dict[str, Any] | None:
    if mode == "json_schema":
        body = constrained_schema(schema, allowed)
        if extras:
            body = {**body, **extras}
        return {"type": "json_schema", "json_schema": {
            "name": schema.__name__, "schema": body, "strict": False}}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def parse_json_object(text: str) -> Any:
    """The JSON object in a model's answer, tolerating code fences and chatter around it."""
    text = _FENCE.sub("", text.strip())
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    return json.loads(text[start:end + 1])


def _content(msg: Any) -> str:
    content = getattr(msg, "content", None)
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TypeError(f"the answer's content is {type(content).__name__}, not text")
    return "".join(str(p.get("text") or "") if isinstance(p, dict) else str(p) for p in content)


def _printable(text: str, limit: int = 300, given: frozenset[str] = frozenset()) -> str:
    """Text from a server or a model (an error body, an exception, a quoted answer) made safe
    to record, print and put in a prompt: no control characters, and no markup, instructions or
    trial ids other than `given` — an error message must not smuggle in what the screen refused."""
    text = _CONTROL.sub("?", text[: limit * 4])
    text = _INSTRUCTION.sub("[instruction removed]", _MARKUP.sub("[markup removed]", text))
    text = NCT_ID.sub(lambda m: m.group() if m.group().upper() in given else "[trial id]", text)
    return text[:limit]


def _short(err: Exception, given: frozenset[str] = frozenset()) -> str:
    if isinstance(err, ValidationError):
        return _printable("; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}"
                                    for e in err.errors()[:5]), given=given)
    return _printable(f"{type(err).__name__}: {err}", given=given)


def given_ids(messages: list[BaseMessage], allowed: Allowed | None = None) -> frozenset[str]:
    """The trial ids a model was shown (in its prompt or among the allowed values)."""
    shown = {m.upper() for msg in messages for m in NCT_ID.findall(_content(msg))}
    shown |= {str(v).upper() for values in (allowed or {}).values() for v in values
              if NCT_ID.fullmatch(str(v))}
    return frozenset(shown)


def screen_answer(value: Any, given: frozenset[str] | None = None) -> str | None:
    """What makes a parsed answer unsafe to keep, or None: every string in it is free of control
    characters, HTML/script markup and instructions addressed to a model (an answer is data that
    later prompts quote, and that reports and the chat page show), and, with `given`, names no
    trial id outside it (an id the model was never shown is invented or injected). The message
    describes the problem without quoting it."""
    if isinstance(value, dict):
        return next((p for v in value.values() if (p := screen_answer(v, given))), None)
    if isinstance(value, list):
        return next((p for v in value if (p := screen_answer(v, given))), None)
    if not isinstance(value, str):
        return None
    if m := _CONTROL.search(value):
        return f"a control or unencodable character (U+{ord(m.group()):04X})"
    if _MARKUP.search(value):
        return "HTML or script markup"
    if _INSTRUCTION.search(value):
        return "an instruction addressed to a model"
    if given is not None and any(m.upper() not in given for m in NCT_ID.findall(value)):
        return "a trial id that was not in the prompt (a synthetic record names none)"
    return None


async def call_structured(endpoint: ChatEndpoint, messages: list[BaseMessage],
                          schema: type[T], *, node: str, repairs: int = 2,
                          allowed: Allowed | None = None,
                          seed: int | None = None) -> tuple[T | None, LLMCall]:
    """Ask for a `schema` object; repair invalid answers up to `repairs` times; never raise.

    `allowed` (field -> values) narrows the schema for the decoder and the validation.
    Transport errors that survive the client's own retries end the call as a recorded failure.
    """
    fmt = response_format(schema, endpoint.structured, allowed, endpoint.schema_extras)
    # A per-call seed makes sampling reproducible on servers that honour it (llama.cpp, OpenAI).
    extra = {k: v for k, v in (("response_format", fmt), ("seed", seed)) if v is not None}
    model = endpoint.chat.bind(**extra) if extra else endpoint.chat
    record = LLMCall(node=node, model=endpoint.model_id, ok=False, attempts=0)
    convo = list(messages)
    given = given_ids(messages, allowed)
    t0 = time.perf_counter()
    for _ in range(repairs + 1):
        record.attempts += 1
        try:
            gate = endpoint.gate()
            if gate is None:
                answer = await asyncio.wait_for(model.ainvoke(convo), endpoint.deadline_s)
            else:
                async with gate:
                    answer = await asyncio.wait_for(model.ainvoke(convo), endpoint.deadline_s)
            text = _content(answer)
        except LengthFinishReasonError as err:
            # Cut off at max_tokens: the same question would be cut again, so ask for less.
            usage = getattr(err.completion, "usage", None)
            record.input_tokens += _tokens(usage, "prompt_tokens")
            record.output_tokens += _tokens(usage, "completion_tokens")
            record.errors.append("truncated: the answer hit the token limit")
            convo += [HumanMessage(content="Your answer was cut off at the length limit. Reply "
                                   "again with a shorter JSON object: every required field, "
                                   "briefer prose.")]
            continue
        except (APIStatusError, APIConnectionError, TimeoutError) as err:
            # what survived the client's own retries (APITimeoutError is a connection error)
            error = (f"timed out after {endpoint.deadline_s:g}s with retries"
                     if isinstance(err, TimeoutError) else _short(err))
            record.errors.append(f"transport: {error}")
            break
        except Exception as err:  # noqa: BLE001 - a response that is no completion: ask again
            record.errors.append(f"transport: bad response: {_short(err)}")
            continue
        usage = getattr(answer, "usage_metadata", None) or {}
        record.input_tokens += _tokens(usage, "input_tokens")
        record.output_tokens += _tokens(usage, "output_tokens")
        try:
            if len(text) > MAX_ANSWER_CHARS:
                raise ValueError(f"the answer is {len(text)} characters long, far past the limit")
            data = parse_json_object(text)
            value = schema.model_validate(data, context={"allowed": allowed or {}})
            if problem := screen_answer(data, given):
                raise ValueError(f"the answer contains {problem}; write plain text only")
        except (ValueError, ValidationError, RecursionError) as err:
            problem = _short(err, given)
            record.errors.append(f"invalid answer: {problem}")
            convo += [AIMessage(content=_printable(text, 4000, given)),
                      HumanMessage(content=f"That answer is invalid ({problem}). Reply with only "
                                   "the corrected JSON object, following the schema.")]
            continue
        record.ok = True
        record.latency_s = round(time.perf_counter() - t0, 3)
        return value, record
    record.latency_s = round(time.perf_counter() - t0, 3)
    return None, record


def _tokens(usage: Any, key: str) -> int:
    """A token count from the server's usage (a dict or an object), 0 where it is missing or
    not a number."""
    value = usage.get(key, 0) if isinstance(usage, dict) else getattr(usage, key, 0)
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError, OverflowError):
        return 0


@contextmanager
def open_endpoints(settings: Settings, llm: str = "auto") -> Iterator[tuple[ChatEndpoint, ChatEndpoint]]:
    """(generator, judge) for a run; starts and stops the embedded llama.cpp server if needed.

    llm: "auto" = the configured endpoint, else the embedded model; "fake" = schema-driven fake.
    """
    if llm == "fake":
        from trialwright.tools.fake_llm import FakeSchemaChat

        fake = ChatEndpoint(chat=FakeSchemaChat(), model_id="fake-schema")
        yield fake, fake
        return
    with ExitStack() as stack:
        if settings.llm_base_url:
            base_url, model, key, slots = (settings.llm_base_url, settings.llm_model,
                                           settings.api_key(), 0)
        else:
            from trialwright.tools.local_llm import LocalLLMServer

            server = stack.enter_context(LocalLLMServer.from_settings(settings))
            model = server.model_name
            base_url, key, slots = server.base_url, "not-needed", settings.llm_parallel
        generator = chat_endpoint(settings, base_url=base_url, model=model, api_key=key,
                                  max_concurrency=slots)
        yield generator, judge_endpoint(settings, generator)
