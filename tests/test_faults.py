"""Fault injection through the real client path: ChatOpenAI -> loopback fault server.

Every test drives `run_batch` with `tools.llm.chat_endpoint` (the OpenAI client's own retries,
backoff and Retry-After handling) against `tests/fault_server.py`, and checks the batch's promise:
every spec ends in reports.jsonl or rejected.jsonl exactly once, nothing crashes, and every
failure is written down with its error.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from trialwright.agents.common import AgentDeps
from trialwright.graph.batch import failed_with_error, run_batch
from trialwright.tools.llm import chat_endpoint
from trialwright.tools.schema import JudgeOutput, Spec
from trialwright.tools.settings import Settings
from trialwright.tools.writer import read_jsonl

from tests.doubles import FixedStore, HashEncoder
from tests.fault_server import (
    CONTENT_FAULTS,
    FAULTS,
    TRANSPORT_FAULTS,
    FaultPlan,
    FaultServer,
)

pytestmark = pytest.mark.timeout(60)


def specs(n: int, prefix: str = "f") -> list[Spec]:
    return [Spec(spec_id=f"{prefix}{i:03d}", phase="phase 2", label=i % 2, condition="asthma",
                 intervention="budesonide", seed=i) for i in range(n)]


def fault_deps(server: FaultServer, *, timeout_s: float = 0.5, retries: int = 2,
               max_revisions: int = 1) -> AgentDeps:
    s = Settings(k_evidence=2, llm_timeout_s=timeout_s, llm_max_retries=retries,
                 max_revisions=max_revisions, parse_retries=1)
    ep = chat_endpoint(s, base_url=server.base_url, model="fault-model", api_key="test-key")
    return AgentDeps(settings=s, generator=ep, judge=ep, store=FixedStore(),  # type: ignore[arg-type]
                     encoder=HashEncoder())  # type: ignore[arg-type]


def outcome(out: Path, n_specs: list[Spec]) -> tuple[list[dict], list[dict]]:
    """(accepted, rejected) records, after asserting each spec is written exactly once."""
    acc, rej = list(read_jsonl(out / "reports.jsonl")), list(read_jsonl(out / "rejected.jsonl"))
    written = Counter(r["id"] for r in acc + rej)
    assert set(written) == {s.spec_id for s in n_specs}, "a spec was lost"
    assert max(written.values()) == 1, f"duplicated: {[k for k, v in written.items() if v > 1]}"
    for r in rej:
        assert r["reject_reasons"], f"{r['id']} rejected without a reason"
    return acc, rej


def call_errors(records: list[dict]) -> list[str]:
    return [e for r in records for c in r["provenance"]["llm_calls"] for e in c["errors"]]


# --- the server itself --------------------------------------------------------------------------

def _post(url: str, body: dict, timeout: float = 0.5) -> httpx.Response:
    return httpx.post(f"{url}/chat/completions", json=body, timeout=timeout)


SCHEMA_BODY = {"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {
    "type": "json_schema", "json_schema": {"name": "JudgeOutput", "schema": {
        "title": "JudgeOutput", "required": ["scores", "reasons", "verdict", "feedback"]}}}}


@pytest.mark.parametrize("kind", FAULTS)
def test_server_serves_each_fault_as_specified(kind):
    with FaultServer(FaultPlan(rates={kind: 1.0}, hang_s=1.0, retry_after_s=0.25)) as srv:
        if kind in ("timeout", "drop"):
            with pytest.raises((httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError)):
                _post(srv.base_url, SCHEMA_BODY)
            assert srv.counts() == {kind: 1}
            return
        res = _post(srv.base_url, SCHEMA_BODY)
    if kind == "rate_limit":
        assert res.status_code == 429 and res.headers["Retry-After"] == "0.25"
    elif kind == "server_error":
        assert res.status_code == 500 and res.json()["error"]["type"] == "server_error"
    else:
        body = res.json()
        assert res.status_code == 200 and body["usage"]["total_tokens"] > 0
        choice = body["choices"][0]
        text = choice["message"]["content"]
        if kind == "truncated":
            assert choice["finish_reason"] == "length"
        if kind in ("truncated", "malformed"):
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
        elif kind == "schema_violation":
            with pytest.raises(ValidationError):
                JudgeOutput.model_validate_json(text)
        else:  # wrong_label: a well-formed rejecting verdict
            assert JudgeOutput.model_validate_json(text).verdict == "revise"


def test_fault_choice_is_seeded_by_content_not_arrival_order():
    plan = FaultPlan.mixed(0.5, seed=7)
    bodies = [b"body-%d" % i for i in range(200)]
    first = [plan.choose(b, 0) for b in bodies]
    assert first == [plan.choose(b, 0) for b in reversed(bodies)][::-1]
    assert set(first) == {*FAULTS, "ok"}
    assert 0.35 < first.count("ok") / len(first) < 0.65
    assert [plan.choose(b, 0) for b in bodies] != [FaultPlan.mixed(0.5, seed=8).choose(b, 0)
                                                    for b in bodies]
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(rates={"gremlins": 0.1})


# --- batches through the real client ------------------------------------------------------------

def test_twenty_percent_faults_lose_and_duplicate_nothing(tmp_path):
    batch = specs(16)
    with FaultServer(FaultPlan.mixed(0.2, seed=1, hang_s=1.0, retry_after_s=0.05)) as srv:
        summary = asyncio.run(run_batch(batch, fault_deps(srv), tmp_path, concurrency=8))
        served = srv.counts()
    acc, rej = outcome(tmp_path, batch)
    assert summary["status"] == "finished" and summary["accepted"] + summary["rejected"] == 16
    assert sum(v for k, v in served.items() if k != "ok") > 0, served
    assert len(acc) >= 8, "20 % faults with retries and repairs should still accept most"
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["accepted"] == len(acc) and run["rejected"] == len(rej)


def test_every_fault_kind_is_survived_and_recorded(tmp_path):
    batch = specs(12)
    plan = FaultPlan.mixed(0.8, seed=3, hang_s=0.8, retry_after_s=0.02)
    with FaultServer(plan) as srv:
        asyncio.run(run_batch(batch, fault_deps(srv, timeout_s=0.3, retries=1), tmp_path,
                              concurrency=12))
        served = srv.counts()
    assert set(FAULTS) <= set(served), f"not every fault kind was served: {served}"
    acc, rej = outcome(tmp_path, batch)
    errors = " | ".join(call_errors(acc + rej))
    assert "invalid answer" in errors and "transport" in errors
    assert rej, "80 % faults with one retry must reject some reports"


@pytest.mark.parametrize("kind", TRANSPORT_FAULTS)
def test_a_transient_transport_fault_is_retried_by_the_client(tmp_path, kind):
    """Each request body fails on its first arrival only: the client's retry must succeed."""
    batch = specs(4, prefix=kind[:2])
    plan = FaultPlan(rates={kind: 1.0}, faulty_arrivals=1, hang_s=1.0, retry_after_s=0.2)
    with FaultServer(plan) as srv:
        summary = asyncio.run(run_batch(batch, fault_deps(srv, timeout_s=0.3, retries=2),
                                        tmp_path, concurrency=4))
        served = srv.served
    acc, _ = outcome(tmp_path, batch)
    assert summary["accepted"] == 4 and len(acc) == 4
    assert Counter(s.fault for s in served)[kind] == 12  # 4 specs x 3 calls, once each
    if kind == "rate_limit":  # Retry-After was honoured: no retry came sooner than asked
        first = {s.body_key: s.at for s in served if s.arrival == 0}
        gaps = [s.at - first[s.body_key] for s in served if s.arrival == 1]
        assert len(gaps) == 12 and min(gaps) >= 0.2 * 0.9


@pytest.mark.parametrize("kind", TRANSPORT_FAULTS)
def test_a_dead_endpoint_rejects_every_spec_with_the_transport_error(tmp_path, kind):
    batch = specs(3, prefix=kind[:2])
    with FaultServer(FaultPlan(rates={kind: 1.0}, hang_s=0.6, retry_after_s=0.02)) as srv:
        summary = asyncio.run(run_batch(batch, fault_deps(srv, timeout_s=0.2, retries=1,
                                                          max_revisions=0),
                                        tmp_path, concurrency=3))
    acc, rej = outcome(tmp_path, batch)
    assert not acc and summary["rejected"] == 3
    name = {"rate_limit": "429", "server_error": "500", "timeout": "timed out",
            "drop": "Connection error"}[kind]
    for r in rej:
        errors = call_errors([r])
        assert errors and all(e.startswith("transport:") for e in errors), errors
        assert name in errors[0], errors[0]
        assert any("rationale" in reason for reason in r["reject_reasons"])


@pytest.mark.parametrize("kind", CONTENT_FAULTS)
def test_bad_answers_are_repaired_or_rejected_never_lost(tmp_path, kind):
    """Half the answers are bad: some calls need a repair round, and every spec is written."""
    batch = specs(6, prefix=kind[:2])
    with FaultServer(FaultPlan(rates={kind: 0.5}, seed=5)) as srv:
        asyncio.run(run_batch(batch, fault_deps(srv, max_revisions=2), tmp_path, concurrency=6))
        served = srv.counts()
    assert served.get(kind, 0) > 0
    acc, rej = outcome(tmp_path, batch)
    errors = call_errors(acc + rej)
    expected = {"truncated": "truncated: the answer hit the token limit",
                "malformed": "JSONDecodeError",
                "schema_violation": "invalid answer", "wrong_label": "not allowed"}[kind]
    if kind == "wrong_label":  # a wrong verdict is valid JSON: it costs a revision, no error
        assert any(expected in e for e in errors) or any(
            r["provenance"]["revisions"] for r in acc + rej)
    else:
        assert any(expected in e for e in errors), errors
    if kind in ("truncated", "malformed", "schema_violation"):  # re-asks repaired some answers
        repaired = [c for r in acc + rej for c in r["provenance"]["llm_calls"]
                    if c["ok"] and c["attempts"] > 1]
        assert repaired


def test_report_timeout_under_hanging_endpoint_is_recorded(tmp_path):
    """A per-report deadline shorter than the client's patience: rejected with the deadline."""
    batch = specs(2, prefix="rt")
    with FaultServer(FaultPlan(rates={"timeout": 1.0}, hang_s=3.0)) as srv:
        summary = asyncio.run(run_batch(batch, fault_deps(srv, timeout_s=2.0, retries=0),
                                        tmp_path, concurrency=2, report_timeout_s=0.5))
    _, rej = outcome(tmp_path, batch)
    assert summary["rejected"] == 2
    assert all(any("timed out after 0.5s" in x for x in r["reject_reasons"]) for r in rej)


def test_retry_errors_reruns_only_failed_specs_and_keeps_their_old_records(tmp_path):
    """Endpoint down: every spec ends as an error. A plain resume keeps them final; with
    retry_errors they run again on a healthy endpoint and the old records are archived."""
    batch = specs(3, prefix="re")
    with FaultServer(FaultPlan(rates={"server_error": 1.0})) as down:
        asyncio.run(run_batch(batch, fault_deps(down, retries=0), tmp_path, concurrency=3))
    _, rej = outcome(tmp_path, batch)
    assert len(rej) == 3 and all(failed_with_error(r) for r in rej)
    with FaultServer(FaultPlan()) as up:
        asyncio.run(run_batch(batch, fault_deps(up), tmp_path, concurrency=3))  # plain resume
        assert up.served == []  # nothing asked: errors are final without --retry-errors
        summary = asyncio.run(run_batch(batch, fault_deps(up), tmp_path, concurrency=3,
                                        retry_errors=True))
    acc, rej2 = outcome(tmp_path, batch)  # still exactly one record per spec
    assert summary["retried_errors"] == 3 and len(acc) == 3 and not rej2
    archived = list(read_jsonl(tmp_path / "rejected.retried.jsonl"))
    assert sorted(r["id"] for r in archived) == sorted(s.spec_id for s in batch)
