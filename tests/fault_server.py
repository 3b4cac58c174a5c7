"""A loopback OpenAI-compatible chat server that misbehaves on purpose, for reliability tests.

It answers ``POST /v1/chat/completions`` like a schema-constrained model (a valid answer built
from the request's ``response_format.json_schema.schema`` by `tools.fake_llm.fake_answer`, with
``usage``), except that at configured rates it returns one of these faults instead:

=================  ==========================================================================
rate_limit         HTTP 429 with ``Retry-After`` (seconds) and ``retry-after-ms``
server_error       HTTP 500 with an OpenAI-style error body
timeout            reads the request, then sends nothing for ``hang_s`` (past the client timeout)
drop               closes the connection without a response
truncated          200, the answer cut in half, ``finish_reason: "length"`` (max_tokens hit)
malformed          200, not JSON: a Python-repr dict with a trailing comma
schema_violation   200, valid JSON that breaks the schema (required field missing, wrong type)
wrong_label        200, schema-valid JSON with the wrong label / an unknown evidence id /
                   a rejecting verdict
=================  ==========================================================================

Which request gets which fault is a function of (seed, request body, how many times that exact
body arrived before), not of arrival order, so a run is reproducible under any concurrency; a
client retry (same body) draws again. Only 127.0.0.1 is served; every wait is bounded.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from trialwright.tools.fake_llm import fake_answer

FAULTS = ("rate_limit", "server_error", "timeout", "drop", "truncated", "malformed",
          "schema_violation", "wrong_label")
TRANSPORT_FAULTS = ("rate_limit", "server_error", "timeout", "drop")
CONTENT_FAULTS = ("truncated", "malformed", "schema_violation", "wrong_label")


@dataclass
class FaultPlan:
    """Fault kind -> probability per request (the rest are valid answers)."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after_s: float = 0.05
    hang_s: float = 2.0  # the `timeout` fault: keep the client waiting this long, then close
    faulty_arrivals: int | None = None  # only the first N arrivals of a body may fault
    latency_s: float = 0.0  # added to every valid answer

    def __post_init__(self) -> None:
        check_rates(self.rates, FAULTS, "fault")

    @classmethod
    def mixed(cls, total: float, seed: int = 0, kinds: tuple[str, ...] = FAULTS,
              **kwargs: Any) -> FaultPlan:
        """`total` fault probability split evenly over `kinds`."""
        return cls(rates={k: total / len(kinds) for k in kinds}, seed=seed, **kwargs)

    def choose(self, body: bytes, arrival: int) -> str:
        if self.faulty_arrivals is not None and arrival >= self.faulty_arrivals:
            return "ok"
        return pick_kind(self.rates, FAULTS, self.seed, body, arrival)


def check_rates(rates: dict[str, float], kinds: tuple[str, ...], what: str) -> None:
    unknown = set(rates) - set(kinds)
    if unknown:
        raise ValueError(f"unknown {what} kind(s) {sorted(unknown)}; known: {kinds}")
    if any(r < 0 for r in rates.values()) or sum(rates.values()) > 1 + 1e-9:
        raise ValueError(f"{what} rates must be >= 0 and sum to at most 1: {rates}")


def pick_kind(rates: dict[str, float], kinds: tuple[str, ...], seed: int, body: bytes,
              arrival: int) -> str:
    """A request's kind as a function of (seed, body, that body's arrival), not of timing, so a
    run is reproducible under any concurrency."""
    digest = hashlib.sha256(b"%d\0%d\0" % (seed, arrival) + body).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for kind in kinds:
        edge += rates.get(kind, 0.0)
        if u < edge:
            return kind
    return "ok"


@dataclass
class Served:
    """What the server did with one request (kept for tests and benchmarks)."""

    fault: str
    body_key: str
    arrival: int
    at: float
    schema: str


def _violate(answer: dict[str, Any], schema: dict[str, Any], pick: int) -> dict[str, Any]:
    """Break the schema: drop a required field, or give one the wrong type."""
    bad = dict(answer)
    required = [k for k in schema.get("required", []) if k in bad] or list(bad)
    key = required[pick % len(required)]
    if pick % 2:
        del bad[key]
    else:
        bad[key] = {"unexpected": [None]} if isinstance(bad[key], str) else "not the right type"
    return bad


def _wrong(answer: dict[str, Any], schema_name: str) -> dict[str, Any]:
    """Well-formed, schema-shaped, but wrong: what a careless model says."""
    bad = json.loads(json.dumps(answer))
    if schema_name == "SyntheticTrial":
        bad["label"] = 1 - int(bad["label"])
        bad["outcome_summary"] = ("The primary endpoint was met." if bad["label"] == 1
                                  else "The primary endpoint was missed.")
    elif schema_name == "Rationale":
        for reason in bad["reasons"]:
            reason["evidence_ids"] = ["NCT99999999"]  # never retrieved
    elif schema_name == "JudgeOutput":  # the judge studies' 1-5 rubric judge
        bad["scores"] = {k: 1 for k in bad["scores"]}
        bad["verdict"], bad["feedback"] = "revise", "Everything is wrong."
    elif schema_name == "ChecklistAnswer":
        bad.update({k: "no" for k, v in bad.items() if v == "yes"})
        bad["feedback"] = "Everything is wrong."
    return bad


class _Handler(BaseHTTPRequestHandler):
    server: FaultHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests count faults through `FaultServer.served`

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
              raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _completion(self, request: dict[str, Any], content: str, finish: str = "stop") -> None:
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in request.get("messages", [])) // 4
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, len(content) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = request.get("model", "fault-model")
        if request.get("stream"):
            self._stream(model, content, finish, usage)
            return
        self._send(200, {
            "id": f"chatcmpl-{self.server.next_id()}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish, "logprobs": None}],
            "usage": usage})

    def _stream(self, model: str, content: str, finish: str, usage: dict[str, int]) -> None:
        cid, created = f"chatcmpl-{self.server.next_id()}", int(time.time())

        def chunk(delta: dict[str, Any], reason: str | None, use: dict | None = None) -> bytes:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": reason}] if delta is not None else [],
                    "usage": use}
            return b"data: " + json.dumps(body).encode() + b"\n\n"

        data = (chunk({"role": "assistant", "content": content}, None) + chunk({}, finish)
                + chunk(None, None, usage) + b"data: [DONE]\n\n")  # type: ignore[arg-type]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        try:
            request = json.loads(body)
            fmt = request.get("response_format") or {}
            schema = fmt.get("json_schema", {}).get("schema", {})
            answer = fake_answer(schema)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._send(400, {"error": {"message": f"fault server cannot answer: {exc}",
                                       "type": "invalid_request_error"}})
            return
        served = self.server.record(body, schema.get("title", ""))
        kind = served.fault
        plan = self.server.plan
        if kind == "rate_limit":
            self._send(429, {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                       {"Retry-After": f"{plan.retry_after_s:g}",
                        "retry-after-ms": str(int(plan.retry_after_s * 1000))})
        elif kind == "server_error":
            self._send(500, {"error": {"message": "The server had an error", "type": "server_error"}})
        elif kind == "timeout":
            self.server.stopping.wait(plan.hang_s)  # bounded; ends at once when the server stops
            self._drop()
        elif kind == "drop":
            self._drop()
        elif kind == "truncated":
            text = json.dumps(answer)
            self._completion(request, text[: len(text) // 2], finish="length")
        elif kind == "malformed":
            self._completion(request, repr(answer)[:-1] + ",}")
        elif kind == "schema_violation":
            self._completion(request, json.dumps(_violate(answer, schema, served.arrival)))
        elif kind == "wrong_label":
            self._completion(request, json.dumps(_wrong(answer, schema.get("title", ""))))
        else:
            if plan.latency_s:
                self.server.stopping.wait(plan.latency_s)
            self._completion(request, json.dumps(answer))

    def _drop(self) -> None:
        drop_connection(self)


def drop_connection(handler: BaseHTTPRequestHandler) -> None:
    """Cut the TCP connection mid-exchange, as a dying server or proxy does."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A test server on 127.0.0.1:<free port>: a stop signal, arrivals per body, request ids."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        super().__init__(("127.0.0.1", 0), handler)
        self.stopping = threading.Event()
        self._arrivals: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ids = 0

    def _arrival(self, key: str) -> int:
        """How often this body came before (call with `_lock` held)."""
        arrival = self._arrivals[key]
        self._arrivals[key] += 1
        return arrival

    def next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) leaves a broken pipe: expected here


class FaultHTTPServer(LoopbackHTTPServer):
    def __init__(self, plan: FaultPlan):
        super().__init__(_Handler)
        self.plan = plan
        self.served: list[Served] = []

    def record(self, body: bytes, schema: str) -> Served:
        key = hashlib.sha256(body).hexdigest()[:16]
        with self._lock:
            arrival = self._arrival(key)
            served = Served(self.plan.choose(body, arrival), key, arrival, time.monotonic(), schema)
            self.served.append(served)
        return served


class LoopbackServer:
    """Start/stop a `LoopbackHTTPServer` in a thread; use as a context manager."""

    thread_name = "loopback-server"

    def __init__(self) -> None:
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _make_server(self) -> LoopbackHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = self._make_server()
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=self.thread_name)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


class FaultServer(LoopbackServer):
    """A `FaultHTTPServer` on a free loopback port."""

    thread_name = "fault-server"

    def __init__(self, plan: FaultPlan | None = None):
        super().__init__()
        self.plan = plan or FaultPlan()

    def _make_server(self) -> FaultHTTPServer:
        return FaultHTTPServer(self.plan)

    @property
    def served(self) -> list[Served]:
        assert self._server is not None, "server not started"
        with self._server._lock:
            return list(self._server.served)

    def counts(self) -> dict[str, int]:
        return dict(Counter(s.fault for s in self.served))


def serve_until_interrupted(server: LoopbackServer, name: str) -> None:
    """A manual run: serve for up to an hour (Ctrl-C stops), then print what was served."""
    with server as srv:
        print(f"{name} on {srv.base_url} (Ctrl-C to stop)", flush=True)
        try:
            for _ in range(3600):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        print(json.dumps(srv.counts()))


if __name__ == "__main__":  # a quick manual run: python -m tests.fault_server 0.2
    import sys

    serve_until_interrupted(FaultServer(FaultPlan.mixed(float(sys.argv[1]) if len(sys.argv) > 1
                                                        else 0.2)), "fault server")
