"""The outcome-classifier evaluation: leakage filter, split guarantees, metrics, learning, CLI.

Models here are tiny and randomly initialised (a 2-layer BERT over a 20-word vocabulary), so the
mechanics are tested in seconds with no real weights.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from trialwright.eval.report.render import Card, render_html, render_markdown
from trialwright.eval.report.utility import classifier_section, write_utility_card
from trialwright.eval.synthetic_reports import EvalInputError
from trialwright.eval.utility.metrics import (
    batch_metrics,
    bootstrap_indices,
    bootstrap_seed_mean,
    percentile_ci,
    point_metrics,
)
from trialwright.eval.utility.model import resolve_classifier_model
from trialwright.eval.utility.run import (
    UtilityConfig,
    plan_training,
    run_utility_eval,
    synthetic_for_phase,
)
from trialwright.eval.utility.scorer import Fit, labels
from trialwright.eval.utility.splits import load_real_trials, split_phase
from trialwright.eval.utility.texts import (
    ClassifierExample,
    build_text,
    find_leaks,
    read_synthetic,
    scrub_leaks,
)
from trialwright.tools.trials import Trial
from typer.testing import CliRunner

WORDS = ["alpha", "beta", "tumor", "dose", "adult", "renal", "phase", "1", "conditions",
         "interventions", "eligibility", "inclusion", "exclusion", "criteria", "cancer",
         "drug", "-", ".", ":", ","]
FILLER = ["tumor", "dose", "adult", "renal", "cancer"]
TOP_HEADER = ["nctid", "status", "why_stop", "label", "phase", "diseases", "icdcodes", "drugs",
              "smiless", "criteria"]


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT with its own small WordPiece vocabulary."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
    )

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def separable_text(label: int, rng: np.random.Generator) -> str:
    marker = "alpha" if label else "beta"
    return " ".join([*rng.choice(FILLER, 4), marker, marker, marker])


def separable_examples(n: int, seed: int, source: str = "real") -> list[ClassifierExample]:
    rng = np.random.default_rng(seed)
    return [ClassifierExample(uid=f"{source}-{seed}-{i}", source=source,  # type: ignore[arg-type]
                              label=i % 2, phase="phase 1", text=separable_text(i % 2, rng))
            for i in range(n)]


def nct(i: int) -> str:
    return f"NCT{i:08d}"


def top_row(i: int, label: int, rng: np.random.Generator, status: str = "completed") -> dict:
    marker = "alpha" if label else "beta"
    return {"nctid": nct(i), "status": status, "why_stop": "", "label": label,
            "phase": "phase 1", "diseases": "['renal cancer']", "icdcodes": "[\"['C64']\"]",
            "drugs": "['drug']", "smiless": "[]",
            "criteria": f"Inclusion Criteria: - {' '.join(rng.choice(FILLER, 4))} {marker} "
                        f"{marker}\nExclusion Criteria: - {marker}"}


def write_csv(path: Path, rows: list[dict], header: list[str] = TOP_HEADER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def top_dir(tmp_path) -> Path:
    """Phase I TOP files; NCT00000001 is in both train and test, as TOP files overlap."""
    rng = np.random.default_rng(0)
    top = tmp_path / "top"
    train = [top_row(i, i % 2, rng) for i in range(1, 61)]
    valid = [top_row(i, i % 2, rng) for i in range(61, 71)]
    test = [top_row(i, i % 2, rng) for i in range(100, 130)] + [top_row(1, 1, rng)]
    write_csv(top / "phase_I_train.csv", train)
    write_csv(top / "phase_I_valid.csv", valid)
    write_csv(top / "phase_I_test.csv", test)
    hint = [{**r, "prediction": 0.7 if r["label"] else 0.4} for r in test]
    for r in hint:
        r.pop("label")
    write_csv(top / "hint_results" / "phase_I_test.csv", hint,
              [h if h != "label" else "prediction" for h in TOP_HEADER])
    return top


def synthetic_record(rid: str, label: int, rng: np.random.Generator, anchor: str | None = None,
                     evidence: list[str] = (), status: str = "accepted",
                     phase: str = "phase 1") -> dict:
    marker = "alpha" if label else "beta"
    return {"id": rid, "status": status, "label": label, "phase": phase,
            "report": {"title": "A failed study", "phase": phase, "diseases": ["Renal Cancer"],
                       "drugs": ["Drug"], "outcome_summary": "ZZOUTCOME the primary endpoint "
                       "was met.", "label": label,
                       "criteria": f"Inclusion Criteria:\n  - {' '.join(rng.choice(FILLER, 4))} "
                                   f"{marker} {marker}\n\nExclusion Criteria:\n  - {marker}"},
            "provenance": {"spec": {"anchor_id": anchor},
                           "evidence": [{"nctid": e, "score": 0.5} for e in evidence]}}


@pytest.fixture
def synthetic_file(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    records = [synthetic_record(f"s{i}", i % 2, rng, anchor=nct(1 + i % 50)) for i in range(40)]
    records += [synthetic_record("leak-anchor", 1, rng, anchor=nct(100)),
                synthetic_record("leak-evidence", 0, rng, evidence=[nct(1), nct(101)]),
                synthetic_record("rejected", 1, rng, status="rejected"),
                synthetic_record("phase3", 1, rng, phase="phase 3")]
    path = tmp_path / "reports.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


class RecordingScorer:
    """A model-free scorer that remembers every training set it was given."""

    mode = "quick"

    def __init__(self):
        self.trained_on: list[list[ClassifierExample]] = []

    def untuned(self, test, seed):
        return Fit(probs=np.full(len(test), 0.5), seconds=0.0)

    def fit_predict(self, train, test, seed):
        self.trained_on.append(train)
        return Fit(probs=np.array([0.8 if "alpha" in e.text else 0.2 for e in test]),
                   seconds=0.0)


# --- leakage filter ---------------------------------------------------------------------------

def test_leakage_filter_removes_outcome_words_and_keeps_clinical_ones():
    text = ("Trial terminated early; withdrawn by sponsor; suspended; stopped early for futility. "
            "Patients who failed prior therapy. The study met its primary endpoint and was "
            "successful. Primary endpoint was not met. Heart failure; oral suspension. "
            "See NCT01234567.")
    found = {w.lower() for w in find_leaks(text)}
    assert {"terminated", "withdrawn", "suspended", "stopped early", "futility", "failed",
            "met its primary endpoint", "successful", "primary endpoint was not met"} <= found
    clean = scrub_leaks(text).lower()
    for word in ("terminat", "withdrawn", "suspended", "stopped early", "futility", "failed",
                 "met its primary", "successful", "was not met", "nct01234567"):
        assert word not in clean
    assert "heart failure" in clean and "oral suspension" in clean


def test_real_text_never_reads_status_or_why_stop():
    trial = Trial(nctid="NCT00000009", label=0, phase="phase 1", diseases=["renal cancer"],
                  drugs=["drug"], criteria="Inclusion Criteria: - adult", status="terminated",
                  why_stop="ZZWHY sponsor decision")
    from trialwright.eval.utility.splits import real_example

    text = real_example(trial).text
    assert "terminated" not in text and "ZZWHY" not in text and "sponsor" not in text


def test_synthetic_text_excludes_outcome_summary_and_matches_real_recipe(synthetic_file):
    examples, summary = read_synthetic(synthetic_file)
    assert summary.accepted == 43 and summary.skipped_not_accepted == 1
    first = examples[0]
    assert "ZZOUTCOME" not in first.text and "failed" not in first.text.lower()
    record = json.loads(synthetic_file.read_text().splitlines()[0])["report"]
    real_same_fields = build_text("phase 1", ["renal cancer"], ["drug"], record["criteria"])
    assert first.text == real_same_fields  # one recipe for both sources


# --- splits: no test id reaches training --------------------------------------------------------

def test_split_drops_test_ids_from_training(top_dir):
    split = split_phase(load_real_trials(top_dir, ["I"]), "I", top_dir)
    test_ids = {e.uid for e in split.test}
    assert nct(1) in test_ids and not test_ids & {e.uid for e in split.train}
    assert split.summary.dropped_test_ids_from_training == 1
    assert split.summary.n_train == 69 and split.summary.n_test == 31


def test_synthetic_drawn_from_test_trials_is_dropped(top_dir, synthetic_file):
    split = split_phase(load_real_trials(top_dir, ["I"]), "I", top_dir)
    synthetic, _ = read_synthetic(synthetic_file)
    usable, use = synthetic_for_phase(synthetic, split)
    ids = {e.uid for e in usable}
    assert "leak-anchor" not in ids and "leak-evidence" not in ids and "phase3" not in ids
    # anchor NCT00000001 is a test id too (train/test overlap): those reports go as well
    assert use.dropped_linked_to_test == 2 + sum(1 for i in range(40) if 1 + i % 50 == 1)


def test_no_training_set_of_any_setting_holds_a_test_id(top_dir, synthetic_file):
    scorer = RecordingScorer()
    config = UtilityConfig(phases=["I"], seeds=[0, 1], n_bootstrap=100)
    report, _ = run_utility_eval(config, top_dir, synthetic_file, scorer=scorer)
    test_ids = {nct(i) for i in [1, *range(100, 130)]}
    assert scorer.trained_on
    for train in scorer.trained_on:
        assert not test_ids & {i for e in train for i in (e.uid, *e.linked_ids)}
    names = [s.setting for s in report.settings]
    assert names[:4] == ["majority", "untuned", "real", "synthetic"] and names[-1] == "hint"
    assert report.settings[names.index("hint")].metrics["roc_auc"].mean == 1.0


def test_hybrid_ratios_cap_and_skip_duplicates():
    real, synthetic = separable_examples(40, 0), separable_examples(12, 1, "synthetic")
    plans, skipped = plan_training(real, synthetic, [0.25, 0.5, 1.0], 2)
    assert [p.name for p in plans] == ["real", "synthetic", "hybrid_0.25", "hybrid_0.5"]
    assert plans[2].n_synthetic == 10 and plans[3].n_synthetic == 12
    assert len(plans[2].examples(0)) == 50 and plans[2].examples(0) != plans[2].examples(1)
    assert skipped and "hybrid_1" in skipped[0]


# --- metrics ---------------------------------------------------------------------------------

def test_metrics_on_known_inputs():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.35, 0.8])
    m = point_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["pr_auc"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # positives ranked 1st and 3rd
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["f1"] == 0.5


def test_vectorised_metrics_equal_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(6, 40))
        y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        p = np.round(rng.random(n), 1)  # many ties
        got = {k: v[0] for k, v in batch_metrics(y[None], p[None]).items()}
        pred = (p >= 0.5).astype(int)
        want = {"accuracy": accuracy_score(y, pred),
                "precision": precision_score(y, pred, zero_division=0),
                "recall": recall_score(y, pred, zero_division=0),
                "f1": f1_score(y, pred, zero_division=0),
                "roc_auc": roc_auc_score(y, p), "pr_auc": average_precision_score(y, p)}
        for k in want:
            assert got[k] == pytest.approx(want[k], abs=1e-12), k


def test_bootstrap_ci_brackets_the_point_and_averages_seeds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    probs = np.clip(y * 0.3 + rng.random((3, 300)) * 0.7, 0, 1)
    draws = bootstrap_seed_mean(y, probs, bootstrap_indices(300, 500))
    point = np.mean([point_metrics(y, p)["roc_auc"] for p in probs])
    lo, hi = percentile_ci(draws["roc_auc"])
    assert lo < point < hi and hi - lo < 0.2
    identity = np.arange(300)[None]
    same = bootstrap_seed_mean(y, probs, identity)["roc_auc"][0]
    assert same == pytest.approx(point)


# --- learning -------------------------------------------------------------------------------

def test_finetune_tiny_bert_learns_separable_fixture(tiny_bert, tmp_path):
    from trialwright.eval.utility.finetune import FineTuneConfig, FineTuner

    train, test = separable_examples(64, 0), separable_examples(40, 1)
    tuner = FineTuner(resolve_classifier_model(str(tiny_bert)),
                      FineTuneConfig(learning_rate=3e-3, epochs=10, batch_size=16, max_length=32,
                                     logging_steps=4), work_dir=tmp_path)
    fit = tuner.fit_predict(train, test, seed=0)
    assert np.mean(fit.train_losses[-2:]) < fit.train_losses[0] - 0.15  # the loss falls
    accuracy = float(np.mean((fit.probs >= 0.5) == labels(test)))
    majority = max(np.mean(labels(test)), 1 - np.mean(labels(test)))
    assert accuracy > majority + 0.2
    assert not list(tmp_path.iterdir())  # no checkpoints left behind


def test_quick_probe_separates_fixture(tiny_bert, tmp_path):
    from trialwright.eval.utility.probe import FrozenProbe
    from trialwright.tools.settings import Settings

    probe = FrozenProbe(resolve_classifier_model(str(tiny_bert)), 32,
                        Settings(cache_dir=tmp_path / "cache"))
    test = separable_examples(40, 1)
    fit = probe.fit_predict(separable_examples(60, 0), test, seed=0)
    assert point_metrics(labels(test), fit.probs)["roc_auc"] > 0.95
    assert len(probe.untuned(test, 0).probs) == 40


# --- command and card --------------------------------------------------------------------------

@pytest.fixture
def cli(monkeypatch, tmp_path) -> typer.Typer:
    from trialwright.app.eval_cmd import eval_command

    monkeypatch.setenv("TRIALWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("other")(lambda: None)  # two commands: `eval` stays a sub-command, as in the CLI
    return app


def test_eval_command_quick_writes_metrics_and_card(cli, tiny_bert, top_dir, synthetic_file,
                                                    tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["eval", "--synthetic", str(synthetic_file), "--real",
                                      str(top_dir), "--out", str(out), "--quick", "--model",
                                      str(tiny_bert), "--seeds", "2", "--phase", "I"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["path"] == str(tiny_bert) and metrics["mode"] == "quick"
    real = next(s for s in metrics["settings"] if s["setting"] == "real")
    assert real["seeds"] == [0, 1] and real["n_test"] == 31 and real["n_train_real"] == 69
    assert set(real["metrics"]) == {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"}
    assert real["metrics"]["roc_auc"]["mean"] > 0.9
    assert "<img" in (out / "card.html").read_text()
    assert "| real |" in (out / "card.md").read_text()
    assert (out / "utility_roc_phase_I.png").stat().st_size > 1000


def test_render_utility_section_from_metrics_dict(top_dir, synthetic_file, tmp_path):
    config = UtilityConfig(phases=["I"], seeds=[0], n_bootstrap=100)
    report, _ = run_utility_eval(config, top_dir, synthetic_file, scorer=RecordingScorer())
    card = Card("card", sections=[classifier_section(report.model_dump(mode="json"))])
    md, html = render_markdown(card), render_html(card)
    assert "\n## Utility: does synthetic data help" in md and "Δ ROC-AUC vs real" in md
    assert "\n### Phase I\n" in md and "<b>sentence-transformers/all-MiniLM-L6-v2</b>" in html
    assert html.count("data:image/png;base64,") == 2
    md_path, _ = write_utility_card(report, tmp_path / "card")
    assert "](utility_bars_phase_I.png)" in md_path.read_text()


@pytest.mark.parametrize("content, expected", [
    (None, "synthetic reports file not found"),
    ('{"id": "a", "status": "rejected"}\n{not json\n', "line 2: not valid JSON"),
    ('{"id": "a", "status": "accepted", "label": 1, "report": {"phase": "phase 1"}}\n',
     "line 1: report lacks diseases, drugs"),
    ('{"id": "a", "status": "accepted", "label": 7, "report": {"phase": "phase 1", '
     '"diseases": ["x"], "drugs": ["y"], "criteria": "c"}}\n', "line 1: label must be 0 or 1"),
])
def test_bad_synthetic_input_names_file_and_line(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(EvalInputError, match=expected) as err:
        read_synthetic(path)
    assert str(path) in str(err.value)


def test_eval_command_bad_input_exits_2(cli, top_dir, synthetic_file, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "status": "rejected"}\n[1, 2]\n')
    runner = CliRunner()
    cases = [
        (["--synthetic", str(bad), "--real", str(top_dir)], "line 2: expected a JSON object"),
        (["--synthetic", str(synthetic_file), "--real", str(tmp_path / "nowhere")],
         "missing TOP file(s)"),
        (["--synthetic", str(synthetic_file), "--real", str(top_dir), "--phase", "IV"],
         "expected I, II, III or all"),
        (["--synthetic", str(synthetic_file), "--real", str(top_dir), "--ratios", "0.5,x"],
         "expected positive numbers"),
        (["--synthetic", str(synthetic_file), "--real", str(top_dir), "--model",
          str(tmp_path / "no-model")], "not a local model folder"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, ["eval", *args, "--out", str(tmp_path / "o"), "--quick"])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split()), result.output
