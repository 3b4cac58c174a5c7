"""The chat drafting assistant's web page: a small Starlette app over the chat graph.

One page (app/chat_assets/) and a JSON API; a turn streams as server-sent events (tokens as the
agents write, a fresh view of the conversation after every step). The graph runs in a background
task, so a closed tab never cuts a turn short; SQLite checkpoints keep every conversation across
restarts. Everything sent passes the output guard. The server binds 127.0.0.1 unless told
otherwise, and then refuses requests whose Host or Origin is not local (DNS rebinding, other
sites' pages posting to it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from trialwright.agents.chat_guard import (
    MAX_MESSAGE_CHARS,
    OutputGuard,
    clean_user_text,
)
from trialwright.agents.chat_report import critic_view, evidence_rows
from trialwright.agents.common import AgentDeps
from trialwright.graph.chat import (
    AUTO_REVISIONS,
    build_chat_graph,
    chat_config,
    open_chat_checkpointer,
    turn_input,
)

ASSETS = Path(__file__).parent / "chat_assets"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_NODES = {"intake": "reading your message", "reason": "reasoning", "draft": "drafting",
               "judge": "critiquing"}
ACTIONS = ("message", "approve", "export", "continue")
_THREAD_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
log = logging.getLogger("trialwright.chat")


class Busy(Exception):
    pass


def thread_view(thread_id: str, snapshot: Any) -> dict[str, Any]:
    """Everything the page shows for one conversation (before the guard)."""
    values: dict[str, Any] = snapshot.values if snapshot is not None else {}
    spec, draft, verdict = values.get("spec"), values.get("draft"), values.get("verdict")
    messages = [{"role": "user" if isinstance(m, HumanMessage) else "assistant",
                 "text": m.content if isinstance(m.content, str) else str(m.content)}
                for m in values.get("messages", [])]
    exported = values.get("exported")
    return {
        "thread_id": thread_id,
        "messages": messages,
        "spec": None if spec is None else spec.model_dump(
            include={"phase", "label", "condition", "intervention"}),
        "evidence": evidence_rows(values),
        "draft": None if draft is None else draft.model_dump(),
        "critic": critic_view(values.get("checks", []), verdict, values.get("outcome")),
        "status": values.get("status"),
        "revision": values.get("revision", 0),
        "approved": bool(values.get("approved")),
        "exported": bool(exported),
        "export_markdown": exported["markdown"] if exported else "",
        "waiting": bool(snapshot is not None and snapshot.interrupts),
        "unfinished": bool(snapshot is not None and snapshot.next and not snapshot.interrupts),
    }


class ChatService:
    """Runs turns of the chat graph, one at a time per conversation, and reports them."""

    def __init__(self, graph: Any, guard: OutputGuard, auto_revisions: int):
        self.graph, self.guard, self.auto_revisions = graph, guard, auto_revisions
        self.locks: dict[str, asyncio.Lock] = {}
        self.tasks: set[asyncio.Task] = set()

    def config(self, thread_id: str) -> dict[str, Any]:
        return chat_config(thread_id, self.auto_revisions)

    async def view(self, thread_id: str) -> dict[str, Any]:
        snapshot = await self.graph.aget_state(self.config(thread_id))
        return self.guard.clean(thread_view(thread_id, snapshot))

    async def exported(self, thread_id: str) -> dict[str, Any] | None:
        snapshot = await self.graph.aget_state(self.config(thread_id))
        bundle = snapshot.values.get("exported") if snapshot else None
        return self.guard.clean(bundle) if bundle else None

    def start_turn(self, thread_id: str, text: str, action: str) -> asyncio.Queue:
        lock = self.locks.setdefault(thread_id, asyncio.Lock())
        if lock.locked():
            raise Busy(thread_id)
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(self._turn(thread_id, text, action, lock, queue))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return queue

    async def _turn(self, thread_id: str, text: str, action: str, lock: asyncio.Lock,
                    queue: asyncio.Queue) -> None:
        async with lock:
            config = self.config(thread_id)
            raw: dict[str, str] = {}  # streamed text per model call, redacted as a whole
            try:
                snapshot = await self.graph.aget_state(config)
                payload = turn_input(snapshot, text, action)
                async for mode, event in self.graph.astream(payload, config,
                                                            stream_mode=["messages", "updates"]):
                    if mode == "messages":
                        chunk, meta = event
                        node = meta.get("langgraph_node", "")
                        # model output only (a node's own reply messages arrive via updates)
                        if (isinstance(chunk, AIMessage) and node in TOKEN_NODES
                                and "ls_model_type" in meta):
                            key = chunk.id or node
                            raw[key] = raw.get(key, "") + (chunk.content if isinstance(
                                chunk.content, str) else "")
                            queue.put_nowait({"type": "token", "node": node, "id": key,
                                              "label": TOKEN_NODES[node],
                                              "text": self.guard.redact(raw[key])})
                    else:
                        for node in event:
                            if not node.startswith("__"):
                                queue.put_nowait({"type": "step", "node": node,
                                                  "view": await self.view(thread_id)})
            except Exception as err:  # noqa: BLE001 - reported to the page; the thread is saved
                log.exception("chat turn failed (thread %s)", thread_id)
                queue.put_nowait({"type": "error", "message": self.guard.redact(
                    f"This turn failed ({type(err).__name__}). The conversation is saved: "
                    "press Continue or send your message again.")})
            finally:
                try:
                    view = await self.view(thread_id)
                except Exception:  # noqa: BLE001 - the page reloads the view itself
                    view = None
                queue.put_nowait({"type": "done", "view": view})


class LocalOnly:
    """ASGI guard: local Host/Origin only (unless exposed on purpose) and strict page headers."""

    HEADERS = [
        (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; "
         b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
         b"form-action 'none'"),
        (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store"),
    ]

    def __init__(self, app: Any, allowed_hosts: tuple[str, ...] | None):
        self.app, self.allowed = app, allowed_hosts

    def _local(self, host: str) -> bool:
        host = host.strip().lower()
        if host.startswith("["):
            host = host[1:].split("]")[0]
        elif host.count(":") == 1:
            host = host.split(":")[0]
        return self.allowed is None or host in self.allowed

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin", "")
        origin_host = re.sub(r"^[a-z]+://", "", origin).split("/")[0] if origin else ""
        if not self._local(headers.get("host", "")) or (
                scope["method"] != "GET" and origin and not self._local(origin_host)):
            return await Response("forbidden host or origin", 403)(scope, receive, send)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _thread_id(request: Request) -> str:
    tid = request.path_params["thread_id"]
    if not _THREAD_ID.match(tid):
        raise ValueError("bad thread id")
    return tid


def create_app(deps: AgentDeps, db_path: Path, *,
               allowed_hosts: tuple[str, ...] | None = LOCAL_HOSTS,
               auto_revisions: int = AUTO_REVISIONS) -> Any:
    guard = OutputGuard.for_settings(deps.settings)
    holder: dict[str, ChatService] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_chat_checkpointer(db_path) as saver:
            service = ChatService(build_chat_graph(deps, saver, auto_revisions=auto_revisions),
                                  guard, auto_revisions)
            holder["service"] = service
            yield
            for task in list(service.tasks):  # a turn cut here resumes with "continue"
                task.cancel()

    def bad(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status)

    async def index(request: Request) -> Response:
        return FileResponse(ASSETS / "index.html", media_type="text/html")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def new_thread(request: Request) -> Response:
        return JSONResponse({"thread_id": uuid.uuid4().hex})

    async def get_thread(request: Request) -> Response:
        try:
            tid = _thread_id(request)
        except ValueError as e:
            return bad(str(e))
        return JSONResponse(await holder["service"].view(tid))

    async def send(request: Request) -> Response:
        try:
            tid = _thread_id(request)
        except ValueError as e:
            return bad(str(e))
        if "application/json" not in request.headers.get("content-type", ""):
            return bad("send JSON", 415)
        body = await request.body()
        if len(body) > 4 * MAX_MESSAGE_CHARS:
            return bad("message too long", 413)
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return bad("invalid JSON")
        if not isinstance(data, dict):
            return bad("invalid JSON")
        action = str(data.get("action") or "message")
        text = clean_user_text(data.get("text") or "")
        if action not in ACTIONS or (action == "message" and not text):
            return bad("send a message, or an action: approve, export, continue")
        try:
            queue = holder["service"].start_turn(tid, text, action)
        except Busy:
            return bad("this conversation is still working on the previous message", 409)

        async def events() -> AsyncIterator[str]:
            while True:
                event = await queue.get()
                yield f"data: {json.dumps(event)}\n\n"
                if event["type"] == "done":
                    return

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"x-accel-buffering": "no"})

    async def export_file(request: Request) -> Response:
        try:
            tid = _thread_id(request)
        except ValueError as e:
            return bad(str(e))
        if request.path_params["fmt"] not in ("json", "md"):
            return bad("export.json or export.md", 404)
        bundle = await holder["service"].exported(tid)
        if not bundle:
            return bad("nothing exported yet: press Export first", 404)
        name = f"trialwright-{tid[:8]}"
        if request.path_params["fmt"] == "json":
            return Response(json.dumps(bundle["json"], indent=2), media_type="application/json",
                            headers={"content-disposition": f'attachment; filename="{name}.json"'})
        return Response(bundle["markdown"], media_type="text/markdown; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{name}.md"'})

    routes = [
        Route("/", index), Route("/healthz", health),
        Route("/api/threads", new_thread, methods=["POST"]),
        Route("/api/threads/{thread_id}", get_thread),
        Route("/api/threads/{thread_id}/send", send, methods=["POST"]),
        Route("/api/threads/{thread_id}/export.{fmt:str}", export_file),
        Mount("/assets", StaticFiles(directory=ASSETS), name="assets"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    return LocalOnly(app, allowed_hosts)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 = a free one), so the URL is known before serving."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    return sock


def is_local(host: str) -> bool:
    return host.strip("[]").lower() in LOCAL_HOSTS


def serve_chat(deps: AgentDeps, *, db_path: Path, host: str = "127.0.0.1", port: int = 0,
               auto_revisions: int = AUTO_REVISIONS,
               announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM). `announce` gets the page URL."""
    import uvicorn

    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    app = create_app(deps, db_path, allowed_hosts=LOCAL_HOSTS if is_local(host) else None,
                     auto_revisions=auto_revisions)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=5))
    announce(f"http://{shown}:{bound}/")
    server.run(sockets=[sock])
