"""Planted defects: each kind yields a schema-valid record that differs in the intended way."""

from __future__ import annotations

import random
import re

import pytest
from trialwright.eval.judges.defects import DEFECTS, plant
from trialwright.tools.schema import SyntheticTrial
from trialwright.tools.settings import Settings

DONOR = ("Osteoarthritis of the knee is a leading cause of pain and disability in older adults. "
         "This randomized trial compares intra-articular hyaluronan with saline injections given "
         "weekly for five weeks. Pain on walking is scored by the participants on a visual "
         "analogue scale at every visit.")


def trial(**kw) -> SyntheticTrial:
    base = {
        "title": "Zafirlukast Versus Placebo in Moderate Asthma",
        "brief_summary": "This study tests whether zafirlukast reduces exacerbations in adults "
                         "with moderate asthma. Participants take the study drug for one year.",
        "phase": "phase 3", "diseases": ["Asthma"], "drugs": ["Zafirlukast", "Placebo"],
        "design": {"allocation": "Randomized", "intervention_model": "Parallel Assignment",
                   "masking": "Double", "primary_purpose": "Treatment"},
        "arms": [{"label": "Zafirlukast", "type": "Experimental",
                  "description": "Zafirlukast 20 mg twice daily."},
                 {"label": "Placebo", "type": "Placebo Comparator",
                  "description": "Matching placebo twice daily."}],
        "primary_outcome": {"measure": "Rate of severe asthma exacerbations",
                            "time_frame": "52 weeks"},
        "enrollment": 420, "minimum_age_years": 18, "maximum_age_years": 65,
        "inclusion_criteria": ["Physician-diagnosed asthma for at least 1 year",
                               "Age 18 to 65 years"],
        "exclusion_criteria": ["Current smoker", "Pregnancy"],
        "outcome_summary": "The trial met its primary endpoint (Rate of severe asthma "
                           "exacerbations).",
        "label": 1,
    }
    return SyntheticTrial.model_validate({**base, **kw})


def valid(t: SyntheticTrial) -> SyntheticTrial:
    return SyntheticTrial.model_validate(t.model_dump())


def changed(a: SyntheticTrial, b: SyntheticTrial) -> set[str]:
    return {f for f in SyntheticTrial.model_fields if getattr(a, f) != getattr(b, f)}


def test_registry_has_every_kind():
    assert set(DEFECTS) == {"design_contradiction", "outcome_contradicts_label",
                            "copied_paragraph", "wrong_phase_in_text",
                            "ages_contradict_criteria", "placebo_as_studied_drug"}
    with pytest.raises(KeyError, match="unknown defect"):
        plant(trial(), "typo")


@pytest.mark.parametrize("kind", sorted(DEFECTS))
def test_each_kind_is_valid_different_and_deterministic(kind):
    t = trial()
    planted = plant(t, kind, "NCT00000001", donor=DONOR)
    assert valid(planted) == planted and planted != t
    assert plant(t, kind, "NCT00000001", donor=DONOR) == planted
    assert plant(t, kind, random.Random(f"{kind}:NCT00000001"), donor=DONOR) == planted
    assert t == trial()  # the original is untouched


def _is_design_contradiction(t: SyntheticTrial) -> bool:
    single_randomised = (t.design.allocation == "Randomized" and len(t.arms) == 1
                         and t.design.intervention_model == "Single Group Assignment")
    placebo_only = len(t.arms) == 1 and t.arms[0].type == "Placebo Comparator"
    return single_randomised or placebo_only


def test_design_contradiction_variants():
    variants = set()
    for seed in range(12):
        p = plant(trial(), "design_contradiction", seed)
        assert _is_design_contradiction(p) and changed(trial(), p) <= {"design", "arms"}
        variants.add((p.design.intervention_model, p.arms[0].type))
    assert len(variants) == 2
    # a record that already is a randomised single group still gets a contradiction
    odd = trial(design={"allocation": "Randomized", "intervention_model": "Single Group Assignment",
                        "masking": "None (Open Label)", "primary_purpose": "Treatment"},
                arms=[{"label": "A", "type": "Experimental", "description": "Drug A."}])
    assert all(plant(odd, "design_contradiction", s) != odd for s in range(6))


@pytest.mark.parametrize("label", [0, 1])
def test_outcome_contradicts_label(label):
    t = trial(label=label)
    p = plant(t, "outcome_contradicts_label", 3)
    assert changed(t, p) == {"outcome_summary"} and p.label == label
    negative = bool(re.search(r"\bnot\b|\bfailed\b", p.outcome_summary))
    assert negative == (label == 1)  # says the opposite of the label
    assert "Rate of severe asthma exacerbations" in p.outcome_summary


def test_copied_paragraph_is_verbatim_from_the_donor():
    for seed in range(5):
        p = plant(trial(), "copied_paragraph", seed, donor=DONOR)
        assert changed(trial(), p) == {"brief_summary"} and len(p.brief_summary) <= 700
        copied = p.brief_summary[len(trial().brief_summary):].strip()
        assert copied in DONOR and len(copied.split()) >= 15
    long_own = trial(brief_summary="Own words here. " * 43)
    p = plant(long_own, "copied_paragraph", 1, donor=DONOR)
    assert len(p.brief_summary) <= 700 and any(s in p.brief_summary for s in DONOR.split(". ")[1:])
    with pytest.raises(ValueError, match="donor"):
        plant(trial(), "copied_paragraph", 1)


_MENTION = re.compile(r"\bphase\s*(iv|iii|ii|i|[1-4])\b", re.IGNORECASE)
_NUM = {"i": "1", "ii": "2", "iii": "3", "iv": "4"}


@pytest.mark.parametrize(("phase", "title"), [
    ("phase 3", "Zafirlukast in Moderate Asthma"),
    ("phase 1/phase 2", "A Phase I/II Study of Zafirlukast"),
    ("early phase 1", "An Early Phase 1 Study of Zafirlukast"),
])
def test_wrong_phase_in_text(phase, title):
    t = trial(phase=phase, title=title)
    for seed in range(5):
        p = plant(t, "wrong_phase_in_text", seed)
        assert p.phase == phase and changed(t, p) <= {"title", "brief_summary"}
        own = set(re.findall(r"[1-4]", phase))
        for text in (p.title, p.brief_summary):
            said = {_NUM.get(m.lower(), m) for m in _MENTION.findall(text)}
            assert said and not said & own, text


def _ages(text: str) -> list[int]:
    return [int(a) for a in re.findall(r"\b(\d{1,3})\b", text)]


@pytest.mark.parametrize(("lo", "hi"), [(18, 65), (18, None), (0, None), (2, 11), (0, 100)])
def test_ages_contradict_criteria(lo, hi):
    t = trial(minimum_age_years=lo, maximum_age_years=hi)
    for seed in range(4):
        p = plant(t, "ages_contradict_criteria", seed)
        plo, phi = p.minimum_age_years, p.maximum_age_years
        assert plo == lo and changed(t, p) <= {"inclusion_criteria", "maximum_age_years"}
        age_items = [c for c in p.inclusion_criteria if re.search(r"\bage", c, re.IGNORECASE)]
        assert len(age_items) == 1  # the record's own age criterion was replaced
        assert all(a < plo or (phi is not None and a > phi) for a in _ages(age_items[0]))


def test_ages_with_a_full_criteria_list():
    full = trial(inclusion_criteria=[f"Criterion {c}" for c in "ABCDEFGH"])
    p = plant(full, "ages_contradict_criteria", 0)
    assert len(p.inclusion_criteria) == 8
    assert sum(bool(re.search(r"\bage", c, re.IGNORECASE)) for c in p.inclusion_criteria) == 1


def test_placebo_as_studied_drug():
    t = trial()
    p = plant(t, "placebo_as_studied_drug", 0)
    assert p.drugs == ["Placebo"] and changed(t, p) == {"drugs", "arms"}
    assert "placebo" in p.arms[0].description.lower() and p.arms[0].type == "Experimental"
    assert p.arms[1] == t.arms[1]


def test_defects_on_real_records():
    path = Settings().data_dir / "ctgov_records/allpublicxml_sample/records.jsonl"
    if not path.is_file():
        pytest.skip("real ctgov sample not beside the checkout")
    from trialwright.tools.ctgov import load_records

    records = load_records(path, 1).records[:40]
    for i, rec in enumerate(records):
        donor = records[i - 1].trial.brief_summary
        for kind in DEFECTS:
            p = plant(rec.trial, kind, rec.nctid, donor=donor)
            assert valid(p) == p and p != rec.trial, (rec.nctid, kind)
