"""Fidelity, diversity and privacy metrics on made-up trials with known answers (no model)."""

import json

import numpy as np
import pytest
from trialwright.eval.quality.diversity import (
    distinct_n,
    diversity,
    near_duplicate_rate,
)
from trialwright.eval.quality.fidelity import mmd_rbf, two_sample_auc
from trialwright.eval.quality.privacy import (
    VerbatimCopy,
    longest_run,
    membership_inference,
    verbatim_copy,
)
from trialwright.eval.quality.run import bag_of_words_embedder, evaluate_quality
from trialwright.eval.records import count_criteria, from_generated, from_trial
from trialwright.tools.privacy_index import PrivacyIndex
from trialwright.tools.schema import SyntheticTrial
from trialwright.tools.trials import Trial

from tests.fakes import report

VOCAB = [f"w{i}" for i in range(400)]
CONDITIONS = ["asthma", "copd", "melanoma", "psoriasis", "gout", "migraine", "lupus", "anemia"]
DRUGS = ["budesonide", "formoterol", "nivolumab", "methotrexate", "allopurinol", "sumatriptan"]
embed = bag_of_words_embedder()


def real_trial(i: int, rng: np.random.Generator) -> Trial:
    """A real-looking trial: random words from one vocabulary, TOP's criteria layout."""
    def items(k: int) -> str:
        return "\n".join(f"  -  {' '.join(rng.choice(VOCAB, 12))}" for _ in range(k))
    return Trial(nctid=f"NCT{i:08d}", label=int(rng.integers(0, 2)), phase="phase 2",
                 diseases=[str(rng.choice(CONDITIONS))], drugs=[str(rng.choice(DRUGS))],
                 criteria=f"Inclusion Criteria:\n{items(4)}\n\nExclusion Criteria:\n{items(3)}")


def synthetic_line(i: int, evidence=(), **changes) -> dict:
    rep = report(**changes)
    rep["criteria"] = SyntheticTrial.model_validate(rep).criteria
    return {"id": f"s{i}", "status": "accepted", "label": rep["label"], "phase": rep["phase"],
            "report": rep, "provenance": {"generator_model": "gen",
                                          "evidence": [{"nctid": e, "score": 1} for e in evidence]}}


def varied_synthetic(n: int, rng: np.random.Generator) -> list:
    return [from_generated(synthetic_line(
        i, inclusion_criteria=[" ".join(rng.choice(VOCAB, 10)) for _ in range(3)],
        exclusion_criteria=[" ".join(rng.choice(VOCAB, 10))],
        title=" ".join(rng.choice(VOCAB, 8)))) for i in range(n)]


@pytest.fixture(scope="module")
def real():
    rng = np.random.default_rng(0)
    return [from_trial(real_trial(i, rng)) for i in range(160)]


def test_count_criteria_reads_top_layout():
    text = ("Inclusion Criteria:\n\n  -  Age >= 18 years.\n\n  -  ECOG 0-2\n\n"
            "Exclusion Criteria:\n\n  -  Pregnancy\n")
    assert count_criteria(text) == (2, 1)
    assert count_criteria("Inclusion Criteria: adults with asthma") == (1, 0)


def test_real_vs_real_is_indistinguishable(real):
    emb = embed([r.text for r in real])
    result = two_sample_auc(emb[:80], emb[80:], seed=1)
    assert abs(result["auc"] - 0.5) < 0.15
    assert mmd_rbf(emb[:80], emb[80:])["p_value"] > 0.05


def test_different_sets_are_told_apart(real):
    rng = np.random.default_rng(1)
    syn = varied_synthetic(40, rng)
    result = two_sample_auc(embed([r.text for r in real]), embed([r.text for r in syn]))
    assert result["auc"] > 0.9
    assert mmd_rbf(embed([r.text for r in real]), embed([r.text for r in syn]))["p_value"] < 0.05


def test_near_duplicates_score_low_diversity(real):
    rng = np.random.default_rng(2)
    dupes = [from_generated(synthetic_line(i, enrollment=100 + i)) for i in range(20)]
    varied = varied_synthetic(20, rng)
    real_emb = embed([r.text for r in real])
    low = diversity(real, real_emb, dupes, embed([r.text for r in dupes]))["synthetic"]
    high = diversity(real, real_emb, varied, embed([r.text for r in varied]))["synthetic"]
    assert low["near_duplicate_rate"] == 1.0 and high["near_duplicate_rate"] == 0.0
    assert low["mean_pairwise_cosine"] > 0.99 > high["mean_pairwise_cosine"]
    assert low["distinct_2"] < 0.1 < high["distinct_2"]


def test_distinct_n_counts_repeats():
    assert distinct_n(["a b c", "a b c"], 1) == 0.5
    assert distinct_n(["a b", "c d"], 2) == 1.0
    assert near_duplicate_rate(np.eye(3)) == 0.0


def test_ngram_index_finds_copied_spans_and_their_source():
    corpus = [("NCT1", "the quick brown fox jumps over the lazy dog today"),
              ("NCT2", "an unrelated text here")]
    index = PrivacyIndex.build(corpus, n=4)
    m = verbatim_copy(index, "we saw the quick brown fox jumps over a cat")
    assert m.longest_span_words == 6 and m.source == "NCT1" and m.copy_rate == round(3 / 7, 4)
    assert verbatim_copy(index, "nothing shared at all here") == VerbatimCopy(0.0, 0, None)


def test_longest_run_counts_consecutive_hits():
    assert longest_run(np.array([True, False, True, True, True, False, True])) == 3
    assert longest_run(np.zeros(0, bool)) == 0 and longest_run(np.zeros(4, bool)) == 0


def test_exact_copy_of_a_real_record_is_flagged(real):
    rng = np.random.default_rng(3)
    syn_lines = [synthetic_line(i, inclusion_criteria=[" ".join(rng.choice(VOCAB, 10))],
                                title=" ".join(rng.choice(VOCAB, 8))) for i in range(12)]
    copied = from_generated(syn_lines[0])
    # The real corpus holds a trial identical to synthetic report s0 (its criteria, conditions, drugs).
    twin = from_trial(Trial(nctid="NCT99999999", label=1, phase=copied.phase,
                            diseases=list(copied.diseases), drugs=list(copied.drugs),
                            criteria=copied.criteria))
    result = evaluate_quality([from_generated(x) for x in syn_lines], [*real, twin], embed,
                              max_real=None)
    privacy = result.metrics["privacy"]
    assert [f["id"] for f in privacy["flagged"]] == ["s0"]
    assert privacy["dcr"]["exact_copies"] == 1
    assert any("NCT99999999" in why for why in privacy["flagged"][0]["reasons"])
    json.dumps(result.metrics)  # the card writes it as is


def test_real_nct_id_in_a_report_is_flagged(real):
    lines = [synthetic_line(0, brief_summary=f"Modelled on {real[0].id}."), synthetic_line(1)]
    result = evaluate_quality([from_generated(x) for x in lines], real, embed, max_real=50)
    ids = result.metrics["privacy"]["nct_ids"]
    assert ids["records_naming_real"] == 1 and ids["examples"] == {"s0": [real[0].id]}


def test_membership_inference_detects_copies_of_seen_trials(real):
    members = {r.id for r in real[:20]}
    syn_emb = embed([r.text for r in real[:20]])  # the synthetic set memorised its evidence
    result = membership_inference(real, embed([r.text for r in real]), syn_emb, members)
    assert result["auc"] == 1.0
    unrelated = membership_inference(real, embed([r.text for r in real]),
                                     embed([r.text for r in real[20:40]]), members)
    assert unrelated["auc"] < 0.5
