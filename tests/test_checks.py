"""Each deterministic check fails on the defect it exists for, and passes a good report."""

import pytest
from trialwright.tools.checks import CheckInput, ngram_overlap, run_checks
from trialwright.tools.schema import Evidence, Rationale, Spec, SyntheticTrial

from tests.fakes import EVIDENCE, rationale, report

SPEC = Spec(spec_id="x", phase="phase 2", label=1)
EV = [Evidence(score=0.9, **e) for e in EVIDENCE]


def failed(draft: dict | None = None, *, spec=SPEC, rat: dict | None = None, **kw) -> list[str]:
    x = CheckInput(spec=spec, evidence=EV,
                   rationale=Rationale.model_validate(rat or rationale()),
                   draft=SyntheticTrial.model_validate(draft) if draft else None,
                   chosen={"condition": "asthma", "intervention": "budesonide"}, **kw)
    return [c.name for c in run_checks(x) if not c.passed]


def test_good_report_passes_every_check():
    assert failed(report()) == []


@pytest.mark.parametrize("changes, check", [
    ({"label": 0}, "label_matches"),
    ({"outcome_summary": "The study did not meet its primary endpoint."}, "label_matches"),
    ({"outcome_summary": "Success (label 1): FEV1 improved by 180 mL."}, "label_matches"),
    ({"phase": "phase 3"}, "phase_consistent"),
    ({"brief_summary": "A phase 3 study of budesonide in asthma."}, "phase_consistent"),
    ({"diseases": ["copd"]}, "condition_consistent"),
    ({"title": "A Study of Budesonide", "brief_summary": "Budesonide in adults."},
     "condition_consistent"),
    ({"drugs": ["formoterol"]}, "intervention_consistent"),
    ({"exclusion_criteria": [" "]}, "eligibility_wellformed"),
    ({"minimum_age_years": 70, "maximum_age_years": 18}, "eligibility_wellformed"),
    ({"inclusion_criteria": ["Adults aged 18 to 95 years"]}, "eligibility_wellformed"),
    ({"exclusion_criteria": ["Physician-diagnosed asthma"]}, "eligibility_wellformed"),
    ({"title": "Budesonide in Asthma (follow-up of NCT01234567)"}, "no_nct_id"),
])
def test_each_defect_is_caught(changes, check):
    assert failed(report(**changes)) == [check]


def test_registry_words_that_look_like_label_talk_pass():
    ok = report(brief_summary="An open-label 1-arm phase 2 study of budesonide in asthma; the "
                              "drug label 1 mg dose.")
    assert failed(ok) == []


def test_verbatim_copy_of_evidence_is_caught():
    copied = EVIDENCE[0]["text"]
    assert failed(report(brief_summary=copied[:690])) == ["no_verbatim_copy"]


def test_missing_draft_and_rationale():
    x = CheckInput(spec=SPEC, evidence=EV, rationale=None, draft=None, draft_error="bad json")
    names = {c.name: c for c in run_checks(x)}
    assert not names["schema_valid"].passed and "bad json" in names["schema_valid"].message
    assert names["rationale_valid"].target == "reasoner"


def test_ngram_overlap():
    assert ngram_overlap("a b c d e", "x a b c d e y", 3) == 1.0
    assert ngram_overlap("a b c d e", "e d c b a", 3) == 0.0
    assert ngram_overlap("a b", "a b", 3) == 0.0
