"""The CLI end to end on a small real slice: real encoder, real embedded store, fake LLM."""

import json
import shutil

import pytest
from trialwright.app.cli import app
from trialwright.tools.settings import Settings
from trialwright.tools.writer import read_jsonl
from typer.testing import CliRunner

DATA = Settings().data_dir.resolve()
pytestmark = pytest.mark.skipif(not (DATA / "top").is_dir(), reason="real data not beside checkout")
runner = CliRunner()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A small slice of real TOP data and an indexed store, shared by this module's tests."""
    root = tmp_path_factory.mktemp("cli")
    (root / "data" / "top").mkdir(parents=True)
    src = (DATA / "top" / "phase_I_train.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    # Header plus the first rows; a CSV row may span lines, so cut at a row boundary.
    import csv
    import io
    rows = list(csv.reader(io.StringIO("".join(src))))[:41]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    (root / "data" / "top" / "phase_I_train.csv").write_text(buf.getvalue())
    return root


@pytest.fixture
def env(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("TRIALWRIGHT_DATA_DIR", str(workdir / "data"))
    monkeypatch.setenv("TRIALWRIGHT_TOP_FILES", '["phase_I_train.csv"]')
    monkeypatch.setenv("TRIALWRIGHT_STORE_PATH", str(workdir / "store"))
    monkeypatch.setenv("TRIALWRIGHT_CACHE_DIR", str(workdir / "cache"))
    return workdir


def test_config_masks_secrets(env, monkeypatch):
    monkeypatch.setenv("TRIALWRIGHT_LLM_API_KEY", "sk-very-secret-123")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "sk-very-secret-123" not in result.output and "*****" in result.output


def test_bad_setting_is_a_clear_error(env, monkeypatch):
    monkeypatch.setenv("TRIALWRIGHT_K_EVIDENCE", "lots")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2 and "k_evidence" in result.output


def test_index_then_search_then_reindex_skips(env):
    first = runner.invoke(app, ["index"])
    assert first.exit_code == 0, first.output
    assert "indexed 40" in first.output
    again = runner.invoke(app, ["index"])
    assert "indexed 0, unchanged 40" in again.output
    res = runner.invoke(app, ["search", "metastatic non-small cell lung cancer",
                              "--phase", "phase 1", "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)
    assert len(hits) == 3 and all(h["nctid"].startswith("NCT") for h in hits)
    assert all(h["phase"] == "phase 1" for h in hits)
    assert hits[0]["score"] >= hits[-1]["score"]


def test_search_bad_phase(env):
    res = runner.invoke(app, ["search", "x", "--phase", "phase 9"])
    assert res.exit_code == 2 and "phase 9" in res.output


def test_generate_with_fake_llm_writes_files(env):
    assert runner.invoke(app, ["index"]).exit_code == 0
    out = env / "run"
    res = runner.invoke(app, ["generate", "--n", "4", "--out", str(out), "--llm", "fake",
                              "--label-ratio", "0.5", "--seed", "3"])
    assert res.exit_code == 0, res.output
    recs = list(read_jsonl(out / "reports.jsonl")) + list(read_jsonl(out / "rejected.jsonl"))
    assert len(recs) == 4 and sorted(r["label"] for r in recs) == [0, 0, 1, 1]
    assert all(len(r["provenance"]["evidence"]) == 3 for r in recs)
    run = json.loads((out / "run.json").read_text())
    assert run["planned"] == 4 and run["status"] == "finished"
    mix = run["accepted_by_label"]
    assert {k: v["planned"] for k, v in mix.items()} == {"0": 2, "1": 2}
    assert sum(v["accepted"] for v in mix.values()) == run["accepted"]
    assert "accepted by label: 0:" in res.output
    # same command again: resumes, writes nothing new; another seed on the same dir: refused
    again = runner.invoke(app, ["generate", "--n", "4", "--out", str(out), "--llm", "fake",
                                "--seed", "3"])
    assert again.exit_code == 0
    assert len(list(read_jsonl(out / "reports.jsonl"))) + len(
        list(read_jsonl(out / "rejected.jsonl"))) == 4
    other = runner.invoke(app, ["generate", "--n", "4", "--out", str(out), "--llm", "fake",
                                "--seed", "4"])
    assert other.exit_code == 2 and "different configuration" in other.output


def test_bad_data_file_exit_code_and_nothing_written(env, tmp_path, monkeypatch):
    bad = tmp_path / "data" / "top"
    bad.mkdir(parents=True)
    (bad / "phase_I_train.csv").write_text("nctid,label\nNCT00000001,1\n")
    monkeypatch.setenv("TRIALWRIGHT_DATA_DIR", str(tmp_path / "data"))
    res = runner.invoke(app, ["index"])
    assert res.exit_code == 2
    assert "phase_I_train.csv" in res.output and "missing column" in res.output


def test_generate_on_empty_store_says_index_first(env, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALWRIGHT_STORE_PATH", str(tmp_path / "empty"))
    res = runner.invoke(app, ["generate", "--n", "1", "--out", str(tmp_path / "o"), "--llm", "fake"])
    assert res.exit_code == 2 and "index" in res.output
    shutil.rmtree(tmp_path / "empty", ignore_errors=True)


def test_generate_on_ray_matches_asyncio_and_resumes_across_backends(env, monkeypatch):
    """`--backend ray` (local Ray, retrieval through one actor, workers calling an
    OpenAI-compatible endpoint by URL): the same specs end the same way as on asyncio, and either
    backend resumes the other's run folder."""
    pytest.importorskip("ray")
    from tests.fault_server import FaultPlan, FaultServer

    assert runner.invoke(app, ["index"]).exit_code == 0
    args = ["generate", "--n", "3", "--seed", "5", "--concurrency", "2"]
    with FaultServer(FaultPlan()) as server:  # no faults: a plain schema-following endpoint
        monkeypatch.setenv("TRIALWRIGHT_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("TRIALWRIGHT_LLM_MODEL", "endpoint-model")
        res = runner.invoke(app, [*args, "--out", "ray", "--backend", "ray"])
        assert res.exit_code == 0, res.output
        assert json.loads((env / "ray" / "run.json").read_text())["backend"]["name"] == "ray"
        assert runner.invoke(app, [*args, "--out", "aio"]).exit_code == 0
        again = runner.invoke(app, [*args, "--out", "ray"])  # asyncio on the Ray run: nothing to do
        assert again.exit_code == 0 and "0 accepted" not in again.output

    def outcomes(folder: str) -> dict:
        recs = [*read_jsonl(env / folder / "reports.jsonl"), *read_jsonl(env / folder / "rejected.jsonl")]
        return {r["id"]: (r["status"], r["label"], r["phase"], r["provenance"]["generator_model"],
                          len(r["provenance"]["evidence"])) for r in recs}

    assert outcomes("ray") == outcomes("aio") and len(outcomes("ray")) == 3
    assert {o[3] for o in outcomes("ray").values()} == {"endpoint-model"}
    bad = runner.invoke(app, [*args, "--llm", "fake", "--out", "x", "--ray-address", "auto"])
    assert bad.exit_code == 2 and "--backend ray" in bad.output


def test_progress_off_a_terminal_is_a_plain_line_now_and_then():
    """Piped output (CI, `| tee`): a line at the start, on change at most every `every_s`, after
    `quiet_s` without change, and at the end."""
    import io

    from rich.console import Console
    from trialwright.app.common import ProgressReport

    now, buf = [0.0], io.StringIO()
    with ProgressReport("reports", 10, console=Console(file=buf, width=200), every_s=5,
                        quiet_s=30, tick_s=3600, clock=lambda: now[0]) as progress:
        progress.update(1, "accepted 1")
        now[0] = 2
        progress.update(2, "accepted 2")  # 2 s after the last line: too soon
        now[0] = 5
        progress.update(3, "accepted 3")
        now[0] = 20
        progress.tick()  # unchanged, 15 s quiet: nothing
        now[0] = 36
        progress.tick()  # unchanged, 31 s quiet: a line all the same
        now[0] = 40
    assert buf.getvalue().splitlines() == [
        "reports 0/10 (0%) · 0s", "reports 3/10 (30%) · accepted 3 · 5s",
        "reports 3/10 (30%) · accepted 3 · 36s", "reports 3/10 (30%) · accepted 3 · 40s"]


def test_progress_on_a_terminal_is_richs_bar():
    import io

    from rich.console import Console
    from trialwright.app.common import ProgressReport

    buf = io.StringIO()
    with ProgressReport("reports", 2, console=Console(file=buf, force_terminal=True)) as progress:
        progress.update(2, "accepted 2")
    assert "━" in buf.getvalue() and "reports 2/2 (100%)" not in buf.getvalue()


def test_long_commands_log_progress_lines_when_output_is_not_a_terminal(env, tmp_path):
    """CliRunner's output is not a terminal, as under CI, `| tee` or nohup: Rich's bar would
    print nothing until the end, so index and generate print plain progress lines instead."""
    index = runner.invoke(app, ["index"])
    assert index.exit_code == 0, index.output
    assert [line for line in index.output.splitlines() if line.startswith("embedding ")][-1] \
        .startswith("embedding 40/40 (100%)")
    res = runner.invoke(app, ["generate", "--n", "2", "--out", str(tmp_path / "run"),
                              "--llm", "fake"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("reports ")]
    assert lines[0].startswith("reports 0/2 (0%)"), res.output
    assert lines[-1].startswith("reports 2/2 (100%) · accepted "), res.output


def test_generate_until_accepted_reaches_the_planned_mix(env):
    assert runner.invoke(app, ["index"]).exit_code == 0
    out = env / "run-until-accepted"
    res = runner.invoke(app, ["generate", "--n", "4", "--out", str(out), "--llm", "fake",
                              "--until-accepted", "--spec-budget", "10", "--seed", "3"])
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["planned"] == 10 and run["until_accepted"] == {"1": 2, "0": 2}
    assert {k: v["accepted"] for k, v in run["accepted_by_label"].items()} == {"0": 2, "1": 2}
    assert run["unused_specs"] == 10 - run["accepted"] - run["rejected"]
    assert "target 2 + 2" in res.output and "accepted/attempted" in res.output
    bad = runner.invoke(app, ["generate", "--n", "4", "--out", str(env / "o2"), "--llm", "fake",
                              "--spec-budget", "10"])
    assert bad.exit_code == 2 and "--spec-budget needs --until-accepted" in bad.output
