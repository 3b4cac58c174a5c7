"""`judge`, `review` and `card` commands end to end on made-up files, with the fake judge."""

import csv
import json

import numpy as np
import pytest
import typer
from trialwright.app.card_cmd import card_command
from trialwright.app.judge_cmd import judge_command, review_command
from trialwright.tools.trials import TOP_COLUMNS
from trialwright.tools.writer import read_jsonl
from typer.testing import CliRunner

from tests.test_eval_quality import real_trial
from tests.test_judges import line

app = typer.Typer()
app.command("judge")(judge_command)
app.command("review")(review_command)
app.command("card")(card_command)
runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "top").mkdir(parents=True)
    with (tmp_path / "data" / "top" / "real.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=TOP_COLUMNS)
        w.writeheader()
        for t in (real_trial(i, rng) for i in range(30)):
            w.writerow({**t.model_dump(include=set(TOP_COLUMNS)), "diseases": str(t.diseases),
                        "drugs": str(t.drugs), "icdcodes": "[]", "smiless": "[]"})
    run = tmp_path / "run"
    run.mkdir()
    (run / "reports.jsonl").write_text("".join(json.dumps(line(i, generator="fake-schema")) + "\n"
                                               for i in range(4)))
    (run / "rejected.jsonl").write_text(json.dumps(line(9, passed=False)) + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIALWRIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIALWRIGHT_TOP_FILES", '["real.csv"]')
    return tmp_path


def test_judge_study_with_two_fake_judges_and_a_human(env):
    sheet = env / "sheet.csv"
    result = runner.invoke(app, ["review", "--in", "run", "--out", str(sheet)])
    assert result.exit_code == 0, result.output
    with sheet.open(newline="") as fh:
        recs = list(csv.DictReader(fh))
    for rec in recs:
        rec["accept"], rec["reviewer"] = "yes", "ann"
    with sheet.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(recs[0]))
        w.writeheader()
        w.writerows(recs)

    args = ["judge", "--in", "run/reports.jsonl", "--out", "study", "--judges",
            "fake,fake@rubric_strict", "--real", "3", "--pairs", "2", "--human", str(sheet)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(read_jsonl(env / "study" / "verdicts.jsonl"))
    # per judge: 5 reports + 5 padded copies + 3 real trials x 2 claims + 2 pairs x 2 orders
    assert len(rows) == 2 * (5 + 5 + 6 + 4)
    assert all(r["prompt"]["system"] and r["prompt"]["user"] for r in rows)
    report = json.loads((env / "study" / "agreement.json").read_text())
    assert report["judges"] == ["fake@critic_rubric", "fake@rubric_strict", "human:ann"]
    assert report["position_bias"]["fake@critic_rubric"]["first_slot_rate"] == 1.0
    assert report["vs_checks"]["fake@critic_rubric"]["accepts_failed_checks"] == 1
    assert report["real_trials"]["fake@critic_rubric"]["accuracy"] == 0.5
    assert report["self_preference"]["fake@critic_rubric"]["own_reports"] == 4
    assert report["study"]["reports_judged"] == 5

    again = runner.invoke(app, args)  # resumes: every verdict is already on disk
    assert again.exit_code == 0 and "0 new verdicts" in again.output
    assert len(list(read_jsonl(env / "study" / "verdicts.jsonl"))) == len(rows)

    card = runner.invoke(app, ["card", "--in", "run", "--out", "card", "--embedder",
                               "bag-of-words", "--agreement", "study/agreement.json"])
    assert card.exit_code == 0, card.output
    assert "Fleiss" in (env / "card" / "card.md").read_text()


def test_bad_judge_spec_is_a_clear_error(env):
    result = runner.invoke(app, ["judge", "--in", "run", "--out", "x", "--judges", "fake@nope"])
    assert result.exit_code == 2 and "no rubric file nope.md" in result.output
    result = runner.invoke(app, ["judge", "--in", "run", "--out", "x", "--judges", "fake",
                                 "--probes", "plain,vibes"])
    assert result.exit_code == 2 and "unknown vibes" in result.output


def test_a_bad_line_in_the_reports_is_a_clear_error(env):
    with (env / "run" / "rejected.jsonl").open("a") as fh:
        fh.write("{not json\n")
    result = runner.invoke(app, ["judge", "--in", "run", "--out", "x", "--judges", "fake"])
    assert result.exit_code == 2 and "rejected.jsonl, line 2: not valid JSON" in result.output
