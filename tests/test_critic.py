"""The critic: design checks, the label-blind outcome reader, the blinded checklist judge,
calibration on real trials, and judge failures that are re-asked instead of redrafted."""

import asyncio
import json

import pytest
from trialwright.agents.calibration import (
    Calibration,
    calibrate,
    load_calibration,
    save_calibration,
)
from trialwright.agents.quality_judge import (
    ChecklistError,
    blinded_view,
    load_checklist,
    score_answers,
)
from trialwright.graph.batch import failed_with_error
from trialwright.graph.generation import run_spec
from trialwright.tools.checks import CheckInput, run_checks
from trialwright.tools.design_checks import time_frame_days
from trialwright.tools.outcome_words import read_outcome_phrases
from trialwright.tools.plausible_ranges import learn_ranges
from trialwright.tools.schema import Spec, SyntheticTrial

from tests.fakes import checklist, make_deps, rationale, rejecting_checklist, report

SPEC = Spec(spec_id="s1", phase="phase 2", label=1, seed=7)
FAIL_SPEC = Spec(spec_id="s2", phase="phase 2", label=0, seed=8)


def failed(rec: dict, **extra) -> dict[str, str]:
    x = CheckInput(spec=SPEC if rec["label"] == 1 else FAIL_SPEC, evidence=[],
                   rationale=None, draft=SyntheticTrial.model_validate(rec),
                   chosen={"condition": "asthma", "intervention": "budesonide"}, **extra)
    return {c.name: c.message for c in run_checks(x) if c.status == "failed"
            and c.name not in ("rationale_valid", "rationale_cites_evidence")}


ONE_ARM = [{"label": "Budesonide", "type": "Experimental", "description": "Budesonide 400 mcg daily"}]


@pytest.mark.parametrize("change, check, words", [
    ({"design": {"allocation": "Randomized", "intervention_model": "Single Group Assignment",
                 "masking": "None (Open Label)", "primary_purpose": "Treatment"}, "arms": ONE_ARM},
     "design_coherent", "cannot be 'Randomized'"),
    ({"design": {"allocation": "N/A", "intervention_model": "Single Group Assignment",
                 "masking": "None (Open Label)", "primary_purpose": "Treatment"}},
     "design_coherent", "no comparator"),
    ({"arms": [{"label": "Placebo", "type": "Placebo Comparator", "description": "Matching"}]},
     "design_coherent", "needs an arm that gives the studied intervention"),
    ({"design": {"allocation": "N/A", "intervention_model": "Single Group Assignment",
                 "masking": "Double", "primary_purpose": "Treatment"}, "arms": ONE_ARM},
     "design_coherent", "masking needs at least two arms"),
    ({"design": {"allocation": "Randomized", "intervention_model": "Parallel Assignment",
                 "masking": "Double", "primary_purpose": "Screening"}},
     "purpose_fits_intervention", "'Screening'"),
    ({"drugs": ["placebo"]}, "studied_not_placebo", "every listed intervention is a placebo"),
    ({"arms": [{"label": "A", "type": "Experimental", "description": "Matching placebo inhaler"},
               {"label": "B", "type": "Active Comparator", "description": "Salbutamol"}]},
     "studied_not_placebo", "experimental arm gives only placebo"),
    ({"primary_outcome": {"measure": "Efficacy", "time_frame": "12 weeks"}},
     "outcome_measure_specific", "not a measurable quantity"),
    ({"primary_outcome": {"measure": "Change in FEV1 from baseline", "time_frame": "soon"}},
     "outcome_measure_specific", "names no duration"),
    ({"brief_summary": "This phase 2 study of budesonide in asthma met its primary endpoint."},
     "results_only_in_outcome", "states a result"),
    ({"outcome_summary": "The study did not meet its primary endpoint."},
     "label_matches", "must say that the primary endpoint was met"),
])
def test_each_design_defect_is_caught_with_a_fix_in_its_message(change, check, words):
    assert failed(report()) == {}
    found = failed(report(**change))
    assert check in found and words in found[check], found


def test_an_outcome_only_defect_is_aimed_at_the_outcome_section():
    x = CheckInput(spec=SPEC, evidence=[], rationale=None, draft=SyntheticTrial.model_validate(
        report(outcome_summary="The trial was terminated early for futility.")))
    (label,) = [c for c in run_checks(x) if c.name == "label_matches"]
    assert label.status == "failed" and label.target == "outcome"


def test_a_check_with_nothing_to_check_against_is_skipped_not_passed():
    x = CheckInput(spec=SPEC, evidence=[], rationale=None, draft=SyntheticTrial.model_validate(report()))
    status = {c.name: c.status for c in run_checks(x)}
    assert status["not_copied_from_corpus"] == "skipped" and status["size_plausible"] == "skipped"
    dumped = [c.model_dump() for c in run_checks(x)]
    assert {"name": "size_plausible", "status": "skipped"}.items() <= dumped[
        [d["name"] for d in dumped].index("size_plausible")].items()


def test_size_bands_are_learned_from_real_trials_and_applied_per_phase():
    rows = [("phase 2", n, 84.0) for n in range(40, 240, 5)] + [("phase 1", 20, 28.0)] * 5
    ranges = learn_ranges(rows, source="test", quantile=0.0, slack=2.0)
    assert ranges.bands["phase 2"].enrollment == (20.0, 470.0)
    assert "phase 1" not in ranges.bands  # 5 trials are too few for a band
    big = report(enrollment=5000)
    assert "enrollment 5000" in failed(big, ranges=ranges)["size_plausible"]
    assert "size_plausible" not in failed(report(), ranges=ranges)
    assert ranges.for_phase("phase 1/phase 2").enrollment == (20.0, 470.0)  # spans its parts


@pytest.mark.parametrize("frame, days", [("12 weeks", 84), ("Baseline to Week 12", 84),
                                         ("up to 2 years", 730.5), ("Day 28", 28), ("soon", None)])
def test_time_frames_read_in_days(frame, days):
    assert time_frame_days(frame) == days


def test_a_duration_is_not_read_as_an_age():
    rec = report(inclusion_criteria=["Adults with asthma", "Disease duration 1 to 10 years"])
    assert "eligibility_wellformed" not in failed(rec)
    rec = report(inclusion_criteria=["Aged 10 to 17 years"])  # a real age range still counts
    assert "eligibility_wellformed" in failed(rec)


@pytest.mark.parametrize("text, reading", [
    ("The study met its primary endpoint: FEV1 improved by 180 mL.", "met"),
    ("The primary endpoint was not met; FEV1 did not differ from placebo.", "not_met"),
    ("Enrollment was halted early after slow accrual.", "stopped_early"),
    ("The trial did not meet its primary endpoint and was stopped early for futility.", "stopped_early"),
    ("The inclusion criteria are designed to meet the criteria for success.", None),
    ("It met its primary endpoint for safety but failed to show efficacy.", None),  # mixed
])
def test_outcome_phrase_pre_check_decides_only_clear_texts(text, reading):
    assert read_outcome_phrases(text)[0] == reading


def test_the_quality_judge_never_sees_the_outcome():
    """Blinding is structural: the same record claiming success or failure gives the same prompt."""
    success = report(label=1)
    failure = report(label=0, outcome_summary="The study was terminated early for poor accrual.")
    prompts = []
    for spec, rec in ((SPEC, success), (FAIL_SPEC, failure)):
        ids = ("NCT00000011",) if spec.label == 1 else ("NCT00000033",)
        deps = make_deps([rationale(ids=ids), rec], [checklist()])
        state = run_spec(spec, deps)
        assert state["status"] == "accepted"
        (prompt,) = deps.judge.chat.seen
        prompts.append(prompt)
        for leak in (rec["outcome_summary"], "outcome_summary", '"label": 1', '"label": 0',
                     "SUCCESS", "FAILURE", "endpoint or stopped", "Similar inhaled corticosteroid"):
            assert leak not in prompt
    assert prompts[0] == prompts[1]


def test_an_unclear_outcome_goes_to_the_label_blind_reader_and_only_the_outcome_is_rewritten():
    vague = report(outcome_summary="The trial's inclusion criteria were designed to meet the criteria.")
    fixed = {"outcome_summary": "The study met its primary endpoint: FEV1 rose by 150 mL."}
    deps = make_deps([rationale(), vague, fixed], [{"reading": "unclear"}, checklist()])
    state = run_spec(SPEC, deps)
    assert state["status"] == "accepted" and state["revision"] == 1
    nodes = [c.node for c in state["llm_calls"]]
    assert nodes == ["reason", "draft", "read_outcome", "revise_outcome", "judge"]
    first = state["rounds"][0].outcome
    assert first.method == "model" and first.reading == "unclear" and not first.agrees
    assert state["draft"].outcome_summary == fixed["outcome_summary"]
    assert state["draft"].title == vague["title"]  # the rest of the report stands
    reader_prompt = deps.judge.chat.seen[0]
    assert vague["outcome_summary"] in reader_prompt
    assert "SUCCESS" not in reader_prompt and "met its primary endpoint or" not in reader_prompt


def test_a_model_reading_that_contradicts_the_label_is_revised():
    vague = report(outcome_summary="Lung function results were reviewed by the committee.")
    deps = make_deps([rationale(), vague, {"outcome_summary": "The primary endpoint was met."}],
                     [{"reading": "not_met"}, checklist()])
    state = run_spec(SPEC, deps)
    assert state["rounds"][0].outcome.reading == "not_met"
    assert [c.node for c in state["llm_calls"]].count("revise_outcome") == 1
    assert state["status"] == "accepted"


def test_a_judge_that_does_not_answer_is_asked_again_never_a_redraft():
    deps = make_deps([rationale(), report()], ["garbage"] * 3 + [checklist()], parse_retries=2)
    state = run_spec(SPEC, deps)
    assert state["status"] == "accepted" and state["revision"] == 0
    assert [c.node for c in state["llm_calls"]].count("draft") == 1
    assert [c.ok for c in state["llm_calls"] if c.node == "judge"] == [False, True]


def test_a_judge_that_never_answers_ends_as_an_infrastructure_failure():
    from trialwright.agents.provenance import build_record

    deps = make_deps([rationale(), report()], ["garbage"] * 9, parse_retries=0, critic_retries=2)
    state = run_spec(SPEC, deps)
    assert state["status"] == "rejected" and state["revision"] == 0
    assert [c.node for c in state["llm_calls"]].count("judge") == 3
    assert state["reject_reasons"][0].startswith("error: the quality judge gave no valid answer")
    assert failed_with_error(build_record(state, deps))  # so --retry-errors runs it again


def test_a_rejecting_checklist_sends_the_report_back_with_the_questions_answered_no():
    deps = make_deps([rationale(), report(), report()], [rejecting_checklist(), checklist()])
    state = run_spec(SPEC, deps)
    assert state["status"] == "accepted" and state["revision"] == 1
    assert "design_consistent" in state["feedback"] and "arms_specific" in state["feedback"]


def test_checklist_scoring_counts_only_declared_questions_and_vetoes():
    c = load_checklist("quality_checklist")
    answers = {q.id: True for q in c.questions} | {"registry_style": False, "invented": False}
    score, vetoed = score_answers(c, answers)
    assert score == round((len(c.questions) - 1) / len(c.questions), 4) and vetoed == []
    score, vetoed = score_answers(c, answers | {"ages_consistent": False})
    assert vetoed == ["ages_consistent"]


def test_a_malformed_checklist_is_a_clear_error(tmp_path, monkeypatch):
    import trialwright.agents.quality_judge as qj

    (tmp_path / "broken.md").write_text("- ok_id: A question?\nnot a question line\n")
    monkeypatch.setattr(qj, "PROMPTS", tmp_path)
    qj.load_checklist.cache_clear()
    try:
        with pytest.raises(ChecklistError, match="broken.md line 2"):
            qj.load_checklist("broken")
    finally:
        qj.load_checklist.cache_clear()


def test_blinded_view_drops_exactly_the_outcome_fields():
    view = json.loads(blinded_view(SyntheticTrial.model_validate(report())))
    assert "label" not in view and "outcome_summary" not in view
    assert view["title"] and view["design"]["allocation"] == "Randomized"


def test_calibration_sets_the_bar_from_real_trials(tmp_path):
    c = load_checklist("quality_checklist")
    ids = [q.id for q in c.questions]
    # Real successes answer all yes; real failures miss two questions (0.8) or one (0.9).
    answers = [checklist()] * 5 + [checklist(no=tuple(ids[-2:]))] * 3 + [checklist(no=ids[-1:])] * 2
    real = [(f"NCT{i:08d}", SyntheticTrial.model_validate(report(label=int(i < 5))), int(i < 5))
            for i in range(10)]
    deps = make_deps([], answers, cache_dir=tmp_path, calibration_quantile=0.2)
    cal = asyncio.run(calibrate(real, deps, source="test records (10)"))
    # 5 trials a label are too few for a bar of its own: both labels share the pooled bar.
    assert cal.n == {"0": 5, "1": 5} and cal.thresholds == {"0": 0.8, "1": 0.8}
    save_calibration(cal, deps.settings)
    loaded = load_calibration(deps.settings, "judge-model", "quality_checklist")
    assert isinstance(loaded, Calibration) and loaded.id == cal.id

    no2 = checklist(no=tuple(ids[-2:]))  # scores 0.8: passes the calibrated bar, not 0.9
    fail_rec = report(label=0, outcome_summary="The trial did not meet its primary endpoint.")
    deps = make_deps([rationale(ids=("NCT00000033",)), fail_rec], [no2], max_revisions=0)
    deps.calibration = loaded
    state = run_spec(FAIL_SPEC, deps)
    assert state["status"] == "accepted" and state["verdict"].calibration == cal.id
    deps = make_deps([rationale(), report()], [no2], max_revisions=0)
    deps.calibration = loaded
    assert run_spec(SPEC, deps)["status"] == "accepted"  # the same bar for a success claim


def test_a_label_gets_its_own_bar_only_from_enough_real_trials():
    from trialwright.agents.calibration import MIN_PER_LABEL, thresholds_from

    many = {"0": [0.7] * MIN_PER_LABEL, "1": [1.0] * MIN_PER_LABEL}
    assert thresholds_from(many, 0.2) == {"0": 0.7, "1": 1.0}
    few = {"0": [0.7] * 6, "1": [1.0] * 6}
    assert thresholds_from(few, 0.5) == {"0": 0.85, "1": 0.85}  # pooled: no label-dependent bar
    assert thresholds_from({"0": [1.0], "1": [1.0]}, 0.2) == {}  # too few: the fixed share


def test_without_calibration_the_fixed_share_is_the_rule_and_is_recorded():
    c = load_checklist("quality_checklist")
    deps = make_deps([rationale(), report()], [checklist(no=(c.questions[-1].id,))],
                     quality_min_share=0.95, max_revisions=0)
    state = run_spec(SPEC, deps)
    v = state["verdict"]
    assert state["status"] == "rejected" and v.calibration is None and v.threshold == 0.95


def test_calibrate_command_scores_real_trials_and_caches_per_judge(tmp_path, monkeypatch):
    from trialwright.app.cli import app
    from trialwright.tools.settings import Settings
    from typer.testing import CliRunner

    if not Settings().ctgov_records_path.is_file():
        pytest.skip("no registry records in the data folder")
    monkeypatch.setenv("TRIALWRIGHT_CACHE_DIR", str(tmp_path))
    res = CliRunner().invoke(app, ["calibrate", "--llm", "fake", "--limit", "6"])
    assert res.exit_code == 0, res.output
    (path,) = (tmp_path / "calibration").glob("fake-schema--quality_checklist-*.json")
    cal = Calibration.model_validate_json(path.read_text())
    assert cal.n == {"0": 6, "1": 6} and cal.thresholds == {"0": 1.0, "1": 1.0}  # the fake says yes
    assert "failures" in cal.source and str(tmp_path) not in cal.source


def test_registry_size_bands_are_learned_and_cached(tmp_path):
    from trialwright.tools.plausible_ranges import registry_ranges
    from trialwright.tools.settings import Settings

    s = Settings(cache_dir=tmp_path)
    if not s.ctgov_records_path.is_file():
        pytest.skip("no registry records in the data folder")
    ranges = registry_ranges(s)
    assert ranges is not None and "phase 2" in ranges.bands
    lo, hi = ranges.bands["phase 2"].enrollment
    assert lo < 20 < 200 < hi
    assert list((tmp_path / "ranges").glob("*.json"))  # the second run reads the cache
    assert registry_ranges(s) == ranges
