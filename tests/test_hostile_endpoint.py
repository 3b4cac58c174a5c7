"""`trialwright generate --llm auto` against a hostile OpenAI-compatible server (garbage, wrong
shapes, HTML, 5xx, 429, multi-megabyte bodies, control characters, injected markup and
instructions, a slow drip): exit 0, no traceback, every spec written once with a reason, and
nothing accepted that carries an NCT id or the injected text."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from trialwright.tools.llm import screen_answer
from trialwright.tools.settings import Settings
from trialwright.tools.trials import NCT_ID
from trialwright.tools.writer import read_jsonl

from tests.hostile_server import (
    HOSTILE,
    INJECTED,
    INJECTED_MARKERS,
    HostilePlan,
    HostileServer,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Settings().data_dir.resolve()
pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(not (DATA / "top").is_dir(), reason="real data not beside checkout")]


def cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trialwright.app.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A 40-trial slice of real TOP data, indexed with the real encoder into the embedded store."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "data" / "top").mkdir(parents=True)
    rows = list(csv.reader(io.StringIO((DATA / "top" / "phase_I_train.csv").read_text("utf-8"))))
    buf = io.StringIO()
    csv.writer(buf).writerows(rows[:41])
    (root / "data" / "top" / "phase_I_train.csv").write_text(buf.getvalue())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIALWRIGHT_", "OPENAI_"))}
    env.update(TRIALWRIGHT_DATA_DIR=str(root / "data"), TRIALWRIGHT_TOP_FILES='["phase_I_train.csv"]',
               TRIALWRIGHT_STORE_PATH=str(root / "store"), TRIALWRIGHT_CACHE_DIR=str(root / "cache"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    res = cli(["index"], env, root, 300)
    assert res.returncode == 0, res.stderr[-2000:]
    return root, env


PLANS = {
    # every kind in turn, a valid answer between two: each is met, and some reports get through
    "every-kind": (HostilePlan(rotate=True, drip_s=4.0, huge_mb=3.0), 10),
    # well-formed answers whose text is tainted, mostly: only clean ones may be accepted
    "tainted": (HostilePlan(rates={"injected": 0.5, "control_chars": 0.15, "surrogates": 0.15},
                            seed=5), 6),
}


@pytest.mark.parametrize("name", PLANS)
def test_generate_against_a_hostile_endpoint_survives_and_accepts_nothing_tainted(indexed, name):
    root, env = indexed
    plan, n = PLANS[name]
    with HostileServer(plan) as srv:
        res = cli(["generate", "--llm", "auto", "--n", str(n), "--out", str(root / name),
                   "--concurrency", "4", "--max-revisions", "1", "--seed", "4"],
                  {**env, "TRIALWRIGHT_LLM_BASE_URL": srv.base_url,
                   "TRIALWRIGHT_LLM_MODEL": "hostile", "TRIALWRIGHT_LLM_API_KEY": "test-key",
                   "TRIALWRIGHT_LLM_TIMEOUT_S": "1", "TRIALWRIGHT_LLM_MAX_RETRIES": "1",
                   "TRIALWRIGHT_LLM_DEADLINE_S": "2.5"}, root, 480)
        served = srv.counts()
    output = res.stdout + res.stderr
    assert res.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    kinds = set(HOSTILE) if plan.rotate else set(plan.rates)
    assert kinds <= set(served), f"kinds never served: {kinds - set(served)}"

    out = root / name
    acc, rej = list(read_jsonl(out / "reports.jsonl")), list(read_jsonl(out / "rejected.jsonl"))
    planned = json.loads((out / "run.json").read_text())["planned"]
    written = Counter(r["id"] for r in acc + rej)
    assert planned == n and len(written) == n and max(written.values()) == 1, written
    assert all(r["reject_reasons"] for r in rej), "a rejection without a reason"

    for r in acc:
        text = json.dumps(r, ensure_ascii=False)
        assert not NCT_ID.search(json.dumps(r["report"])), r["report"]
        retrieved = {e["nctid"] for e in r["provenance"]["evidence"]}
        assert set(NCT_ID.findall(json.dumps(r["rationale"]))) <= retrieved, r["rationale"]
        assert not any(m.lower() in text.lower() for m in INJECTED_MARKERS), r["id"]
        # nothing the model wrote (report, rationale, verdicts) is unsafe text
        assert screen_answer([r["report"], r["rationale"], r["provenance"]["rounds"]]) is None
    errors = [e for r in acc + rej for c in r["provenance"]["llm_calls"] for e in c["errors"]]
    assert any("the answer contains" in e for e in errors)  # the screen refused tainted text
    if plan.rotate:
        assert any("timed out after 2.5s" in e for e in errors)  # the drip cut at the deadline
        assert any("bad response" in e for e in errors)


@pytest.mark.parametrize("text", INJECTED)
def test_injected_text_is_refused_by_the_screen(text):
    answer = {"a": ["fine", {"b": f"A study of budesonide. {text}"}]}
    problem = screen_answer(answer, given=frozenset({"NCT00000011"}))
    assert problem is not None
    assert not any(m.lower() in problem.lower() for m in INJECTED_MARKERS)  # described, not quoted
    assert screen_answer({"b": "As in NCT00000011, budesonide."}, frozenset({"NCT00000011"})) is None
