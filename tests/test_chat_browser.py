"""A real browser (Debian's chromium driven by Playwright) against the chat page: the server runs
in its own process on a free 127.0.0.1 port with the fake LLM and a fixed store; the test sends a
message, sees a drafted report with evidence ids and the critic's verdict, approves, exports,
and leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

SERVER = """
import sys
from pathlib import Path
from trialwright.agents.common import AgentDeps
from trialwright.app.chat_ui import serve_chat
from tests.doubles import FixedStore, HashEncoder
from trialwright.tools.fake_llm import FakeSchemaChat
from trialwright.tools.llm import ChatEndpoint
from trialwright.tools.settings import Settings

fake = ChatEndpoint(chat=FakeSchemaChat(latency_s=0.2), model_id="fake-schema")
deps = AgentDeps(settings=Settings(k_evidence=2, llm_api_key="sk-test-SECRET"), generator=fake,
                 judge=fake, store=FixedStore(), encoder=HashEncoder())
serve_chat(deps, db_path=Path(sys.argv[1]), host="127.0.0.1", port=0,
           announce=lambda url: print(url, flush=True))
"""


@pytest.fixture
def server(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "chat.sqlite")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() else url
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()  # by PID; uvicorn shuts down on SIGTERM
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_browser_drafts_a_report_with_evidence(server):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"],
                                    headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(server, wait_until="load")
            page.fill("#input", "a phase 2 trial of budesonide in asthma that would likely "
                                "fail for poor enrollment")
            page.click("#send")
            page.wait_for_selector("#live:not([hidden])", timeout=10_000)  # streaming shown
            # (the page's CSP forbids eval, so waits use selectors, not JS predicates)
            page.wait_for_selector("#approve:not([disabled])", timeout=30_000)
            evidence = page.locator("#evidence .nctid").all_inner_texts()
            assert evidence == ["NCT00000033", "NCT00000044"]  # a failure request: failed trials
            assert "budesonide" in page.inner_text("#draft .draft-title")
            assert "blinded judge: 100% yes" in page.inner_text("#critic")
            page.wait_for_selector("#messages li:has-text('NCT00000033')", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "chat-draft.png"), full_page=True)

            page.click("#approve")
            page.wait_for_selector("#draft-state.ok", timeout=20_000)
            page.click("#export")
            page.wait_for_selector("#export-panel:not([hidden])", timeout=20_000)
            assert page.inner_text("#export-markdown").startswith("# A Study of budesonide")
            with page.expect_download() as download:
                page.click("#export-json")
            assert download.value.suggested_filename.endswith(".json")
            page.screenshot(path=str(ARTIFACTS / "chat-exported.png"), full_page=True)
            assert "sk-test-SECRET" not in page.content()

            page.reload(wait_until="load")  # the conversation comes back from the checkpoint
            page.wait_for_selector("#evidence .nctid", timeout=10_000)
            assert "Exported the report" in page.inner_text("#messages")
        finally:
            browser.close()
