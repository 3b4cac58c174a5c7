"""The chat web API with the fake LLM and a fixed store: a whole conversation over HTTP (streamed
events, evidence, critic, approve, export downloads), restart of the app on the same database,
and the local-only guards (Host / Origin, JSON only, page headers, default bind address)."""

from __future__ import annotations

import inspect
import json

import pytest
from starlette.testclient import TestClient
from trialwright.agents.common import AgentDeps
from trialwright.app.chat_cmd import chat_command
from trialwright.app.chat_ui import bind_socket, create_app, serve_chat
from trialwright.tools.fake_llm import FakeSchemaChat
from trialwright.tools.llm import ChatEndpoint
from trialwright.tools.settings import Settings

from tests.doubles import FixedStore, HashEncoder

ASK = "a phase 2 trial of budesonide in asthma that would likely fail for poor enrollment"


def fake_deps() -> AgentDeps:
    fake = ChatEndpoint(chat=FakeSchemaChat(), model_id="fake-schema")
    return AgentDeps(settings=Settings(k_evidence=2), generator=fake, judge=fake,
                     store=FixedStore(), encoder=HashEncoder())  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(fake_deps(), tmp_path / "chat.sqlite"),
                    base_url="http://127.0.0.1") as c:
        yield c


def turn(client: TestClient, thread: str, body: dict) -> list[dict]:
    with client.stream("POST", f"/api/threads/{thread}/send", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    return [json.loads(x[6:]) for x in raw.split("\n\n") if x.startswith("data: ")]


def test_conversation_over_http(client):
    thread = client.post("/api/threads", json={}).json()["thread_id"]
    events = turn(client, thread, {"text": ASK})
    steps = [e["node"] for e in events if e["type"] == "step"]
    assert steps[:4] == ["intake", "retrieve", "reason", "draft"] and steps[-1] == "present"
    assert any(e["type"] == "token" and e["node"] == "draft" for e in events)
    view = events[-1]["view"]
    assert view["waiting"] and view["spec"]["label"] == 0 and view["draft"]["label"] == 0
    # A failure request retrieves failed trials only: the store's label filter is honoured.
    assert [e["nctid"] for e in view["evidence"]] == ["NCT00000033", "NCT00000044"]
    assert "shares asthma, budesonide" in view["evidence"][0]["why"]
    assert view["critic"]["checks_total"] > 0 and view["critic"]["verdict"]["accepted"]
    assert "NCT00000033" in view["messages"][-1]["text"]

    assert client.get(f"/api/threads/{thread}/export.json").status_code == 404
    view = turn(client, thread, {"action": "approve"})[-1]["view"]
    assert view["approved"] and view["waiting"]
    view = turn(client, thread, {"action": "export"})[-1]["view"]
    assert view["exported"] and view["export_markdown"].startswith("# A Study of budesonide")
    record = client.get(f"/api/threads/{thread}/export.json")
    assert record.headers["content-disposition"].endswith('.json"')
    assert record.json()["status"] == "approved" and record.json()["report"]["label"] == 0
    md = client.get(f"/api/threads/{thread}/export.md")
    assert md.headers["content-type"].startswith("text/markdown") and "NCT00000033" in md.text


def test_conversation_survives_an_app_restart(tmp_path):
    db = tmp_path / "chat.sqlite"
    with TestClient(create_app(fake_deps(), db), base_url="http://127.0.0.1") as c:
        assert turn(c, "restart-1", {"text": ASK})[-1]["view"]["waiting"]
    with TestClient(create_app(fake_deps(), db), base_url="http://127.0.0.1") as c:
        view = c.get("/api/threads/restart-1").json()
        assert view["waiting"] and view["draft"] is not None and len(view["messages"]) == 3
        assert turn(c, "restart-1", {"action": "approve"})[-1]["view"]["approved"]


def test_page_and_assets_are_served_with_strict_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="messages"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/assets/chat.js").status_code == 200
    assert "innerHTML" not in client.get("/assets/chat.js").text  # text only, never markup


def test_foreign_host_origin_and_non_json_are_refused(client):
    assert client.get("/", headers={"host": "evil.example"}).status_code == 403  # DNS rebinding
    r = client.post("/api/threads/abcdefgh12/send", json={"text": ASK},
                    headers={"origin": "http://evil.example"})
    assert r.status_code == 403  # another site's page posting to localhost
    r = client.post("/api/threads/abcdefgh12/send", content=ASK,
                    headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert client.post("/api/threads/abcdefgh12/send", json={"text": ""}).status_code == 400
    assert client.post("/api/threads/abcdefgh12/send", json={"text": "x" * 9000}).status_code == 413
    assert client.get("/api/threads/..%2Fetc").status_code in (400, 404)
    assert client.get("/", headers={"host": "localhost:8080"}).status_code == 200


def test_binds_localhost_unless_told_otherwise():
    for fn in (chat_command, serve_chat):
        assert inspect.signature(fn).parameters["host"].default == "127.0.0.1"
    sock = bind_socket("127.0.0.1", 0)
    try:
        host, port = sock.getsockname()[:2]
        assert host == "127.0.0.1" and port > 0
    finally:
        sock.close()


def test_chat_command_registers_with_typer_and_refuses_a_bad_llm():
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command("chat")(chat_command)
    app.command("other")(lambda: None)
    runner = CliRunner()
    help_text = runner.invoke(app, ["chat", "--help"]).output
    assert "--port" in help_text and "--host" in help_text and "--llm" in help_text
    result = runner.invoke(app, ["chat", "--llm", "bogus"])
    assert result.exit_code == 2 and "expected 'auto' or 'fake'" in result.output
