"""The eval card renders every section from small made-up files (no model weights)."""

import csv
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from trialwright.eval.quality.run import bag_of_words_embedder  # noqa: E402
from trialwright.eval.report.card import build_card  # noqa: E402
from trialwright.tools.trials import TOP_COLUMNS  # noqa: E402

from tests.test_eval_quality import real_trial, synthetic_line  # noqa: E402


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    trials = [real_trial(i, rng) for i in range(60)]
    real = tmp_path / "real.csv"
    with real.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=TOP_COLUMNS)
        w.writeheader()
        for t in trials:
            w.writerow({**t.model_dump(include=set(TOP_COLUMNS)), "diseases": str(t.diseases),
                        "drugs": str(t.drugs), "icdcodes": "[]", "smiless": "[]"})
    run = tmp_path / "run"
    run.mkdir()
    lines = [synthetic_line(i, evidence=[trials[i].nctid], enrollment=50 + 10 * i,
                            inclusion_criteria=[" ".join(rng.choice(["a", "b", "c", "d"], 6))])
             for i in range(12)]
    for x in lines:
        x["provenance"] |= {"seed": int(x["id"][1:]), "judge_model": "j", "rubric": "critic_rubric"}
    (run / "reports.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    agreement = tmp_path / "agreement.json"
    agreement.write_text(json.dumps({
        "judges": ["a@x", "b@x"], "items": 12, "accept_rate": {"a@x": 0.5, "b@x": 0.5},
        "cohen_kappa": [{"a": "a@x", "b": "b@x", "n": 12, "kappa": 1.0, "agreement": 1.0}],
        "fleiss_kappa": 1.0, "krippendorff_alpha": {"accept_nominal": 1.0,
                                                    "mean_score_interval": 0.9},
        "vs_checks": {}, "real_trials": {}, "position_bias": {}, "verbosity_bias": {},
        "self_preference": {}}))
    return run, real, agreement


def test_card_has_every_section_and_its_provenance(files, tmp_path):
    run, real, agreement = files
    out = tmp_path / "card"
    metrics = build_card(run, out, [real], None, agreement, embed=bag_of_words_embedder(),
                         encoder_name="bag of words", max_real=None)
    page = (out / "card.html").read_text()
    for title in ("Utility", "Fidelity", "Diversity", "Privacy", "Judge reliability",
                  "Data, models, seeds and versions"):
        assert title in page and title in (out / "card.md").read_text()
    assert "Missing: no classifier metrics.json" in page
    assert page.count("data:image/png;base64") == 5
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["judges"]["fleiss_kappa"] == 1.0 and saved["utility"] is None
    assert saved["provenance"]["generation"]["seeds"] == "0..11 (12)"
    assert saved["provenance"]["versions"]["scikit-learn"] != "not installed"
    assert metrics["counts"]["synthetic"] == 12 and metrics["counts"]["real_corpus"] == 60
    assert metrics["fidelity"]["fields"]["enrollment"]["real"] is None


def test_card_renders_a_given_utility_metrics_file(files, tmp_path):
    run, real, _ = files
    utility = tmp_path / "metrics.json"
    utility.write_text(json.dumps({"real": {"roc_auc": 0.61}, "hybrid": {"roc_auc": 0.64}}))
    build_card(run, tmp_path / "card", [real], utility, None, embed=bag_of_words_embedder())
    md = (tmp_path / "card" / "card.md").read_text()
    assert "| hybrid.roc_auc | 0.64 |" in md and "Judge reliability" in md and "Not run" in md


def test_one_renderer_escapes_html_and_markdown_cells():
    from trialwright.eval.report.render import (
        Card,
        Section,
        Table,
        code,
        render_html,
        render_markdown,
    )

    card = Card("<t>", lead=[["run ", code("a|b <c>")]], sections=[Section(
        "S", tables=[Table(["x|y"], [["<script>"], ["a\nb"]], "T")], notes=["n & m"])])
    md, page = render_markdown(card), render_html(card)
    assert "| x\\|y |" in md and "| a b |" in md and "run `a|b <c>`" in md and "> n & m" in md
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<title>&lt;t&gt;</title>" in page
    assert "<code>a|b &lt;c&gt;</code>" in page and "n &amp; m" in page
