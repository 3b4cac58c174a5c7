"""The corpus-wide privacy index: known answers, agreement with the per-trial check, persistence."""

from __future__ import annotations

import random

import numpy as np
import pytest
from trialwright.tools.checks import ngram_overlap
from trialwright.tools.privacy_index import PrivacyIndex, trial_items
from trialwright.tools.settings import Settings
from trialwright.tools.trials import load_top

WORDS = ["patients", "adults", "with", "histologically", "confirmed", "disease", "measurable", "lesions", "adequate", "organ", "function", "prior", "therapy", "allowed", "excluded", "pregnant", "women", "known", "brain", "metastases", "active", "infection", "hepatic", "renal", "cardiac", "normal", "count", "platelet", "bilirubin", "creatinine", "clearance", "performance", "status", "eastern", "cooperative", "oncology", "group"]


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str]]:
    rng = random.Random(0)
    return [(f"NCT{10_000_000 + i:08d}", text(rng, rng.randint(40, 300))) for i in range(300)]


@pytest.fixture(scope="module")
def index(corpus) -> PrivacyIndex:
    return PrivacyIndex.build(corpus, n=12)


def test_an_exact_copy_is_flagged_with_its_source(index, corpus):
    nctid, source = corpus[17]
    finding = index.check(source)
    assert finding.copied is not None and finding.copied.nctid == nctid
    assert finding.copied.share == 1.0 and not finding.passed
    assert nctid in finding.message()


def test_new_text_is_not_flagged(index):
    fresh = ("This randomised double blind study of a new inhaled agent enrols adults whose "
             "asthma stays uncontrolled despite medium dose steroids and measures lung function "
             "after twelve weeks of treatment compared with a matching placebo inhaler")
    finding = index.check(fresh)
    assert finding.passed and finding.copied is None and finding.matches == []


def test_partial_copy_share_equals_the_per_trial_check(index, corpus):
    rng = random.Random(5)
    for k in range(20):
        _, source = corpus[rng.randrange(len(corpus))]
        words = source.split()
        cut = rng.randint(0, len(words))
        report = " ".join(words[:cut]) + " " + text(rng, rng.randint(0, 120))
        brute = max((ngram_overlap(report, t, 12), i) for i, (_, t) in enumerate(corpus))
        matches = index.copy_matches(report, top=1)
        if brute[0] == 0:
            assert matches == [], k
        else:
            assert matches[0].share == pytest.approx(brute[0], abs=1e-4), k


def test_nct_ids_real_and_unknown(index, corpus):
    real, other = index.real_ids(f"as in {corpus[3][0].lower()} and NCT00000001, not NCT123")
    assert real == [corpus[3][0]] and other == ["NCT00000001"]
    finding = index.check(f"A new study, unlike {corpus[3][0]}.")
    assert not finding.passed and finding.real_ids == [corpus[3][0]]


def test_saved_index_loads_memory_mapped_with_same_answers(index, corpus, tmp_path):
    folder = index.save(tmp_path / "idx")
    loaded = PrivacyIndex.load(folder)
    assert isinstance(loaded.keys, np.memmap) and len(loaded) == len(corpus)
    probe = corpus[42][1] + " " + corpus[43][1]
    assert loaded.copy_matches(probe) == index.copy_matches(probe)
    assert loaded.fingerprint == index.fingerprint


def test_open_or_build_builds_once_per_corpus(corpus, tmp_path):
    first = PrivacyIndex.open_or_build(corpus, tmp_path, n=12)
    again = PrivacyIndex.open_or_build(corpus, tmp_path, n=12)
    assert again.fingerprint == first.fingerprint
    assert len(list((tmp_path / "privacy").iterdir())) == 1
    changed = PrivacyIndex.open_or_build(corpus[:-1], tmp_path, n=12)
    assert changed.fingerprint != first.fingerprint
    assert len(list((tmp_path / "privacy").iterdir())) == 2


def test_sampled_index_still_flags_copies(corpus):
    small = PrivacyIndex.build(corpus, n=12, sample=4)
    full = PrivacyIndex.build(corpus, n=12)
    assert len(small.keys) < len(full.keys) / 2
    nctid, source = corpus[9]
    assert small.check(source).copied.nctid == nctid


def test_short_text_and_empty_corpus():
    empty = PrivacyIndex.build([], n=12)
    assert empty.check("anything at all").passed
    idx = PrivacyIndex.build([("NCT00000011", "too short")], n=12)
    assert idx.copy_matches("too short") == []
    with pytest.raises(ValueError):
        PrivacyIndex.build([], n=0)


def test_window_hits_mark_each_copied_window_in_order(index, corpus):
    rng = random.Random(7)
    fresh = "unrelated words nobody indexed " * 5
    copied = " ".join(corpus[5][1].split()[:30])
    hits = index.window_hits(fresh + copied + " " + fresh)
    words = len(fresh.split())
    assert len(hits) == 2 * words + 30 - 11
    assert not hits[:words - 11].any() and hits[words:words + 30 - 11].all()
    assert not index.window_hits(text(rng, 5)).size  # shorter than one window
    assert not PrivacyIndex.build([], n=12).window_hits(copied).any()
    with pytest.raises(ValueError, match="sample=1"):
        PrivacyIndex.build(corpus[:3], n=12, sample=4).window_hits(copied)


DATA = Settings().data_dir.resolve()


@pytest.mark.skipif(not (DATA / "top").is_dir(), reason="real data not beside checkout")
def test_real_corpus_flags_a_copied_real_trial():
    s = Settings()
    items = trial_items(load_top([s.top_dir / f for f in s.top_files[:1]]))[:500]
    index = PrivacyIndex.build(items, n=s.copy_ngram)
    nctid, source = items[123]
    excerpt = " ".join(source.split()[10:120])
    finding = index.check(excerpt, s.copy_max_overlap)
    assert finding.copied is not None and finding.copied.share > 0.9
    assert nctid in {m.nctid for m in finding.matches if m.share == finding.matches[0].share}


def test_corpus_check_flags_copies_and_real_ids_of_unretrieved_trials(corpus):
    """`check_not_copied_from_corpus` sees the whole corpus, not only the retrieved evidence."""
    from trialwright.tools import checks
    from trialwright.tools.schema import Spec, SyntheticTrial

    from tests.fakes import report

    draft = SyntheticTrial.model_validate(report())
    spec = Spec(spec_id="p", phase="phase 2", label=1)

    def run(items) -> checks.CheckResult:
        x = checks.CheckInput(spec=spec, evidence=[], rationale=None, draft=draft,
                              corpus=PrivacyIndex.build(items, n=12))
        assert checks.check_not_copied_from_corpus in checks.CHECKS
        return checks.check_not_copied_from_corpus(x)

    assert run(corpus).passed
    copied = run([*corpus, ("NCT01234567", draft.prose())])
    assert not copied.passed and "NCT01234567" in copied.message
    named = SyntheticTrial.model_validate(report(title=f"Like {corpus[5][0]}: budesonide in asthma"))
    x = checks.CheckInput(spec=spec, evidence=[], rationale=None, draft=named,
                          corpus=PrivacyIndex.build(corpus, n=12))
    result = checks.check_not_copied_from_corpus(x)
    assert not result.passed and corpus[5][0] in result.message


@pytest.mark.parametrize("items", [[], [("local-7", "a corpus whose ids are not NCT ids at all")]])
def test_an_index_without_nct_ids_answers_a_report_that_names_one(items, tmp_path):
    built = PrivacyIndex.build(items, n=4)
    for idx in (built, PrivacyIndex.load(built.save(tmp_path / "idx"))):
        assert idx.real_ids("see NCT01234567 and nct07654321") == ([], ["NCT01234567",
                                                                       "NCT07654321"])
        finding = idx.check("as in NCT01234567")
        assert not finding.passed and finding.other_ids == ["NCT01234567"]
