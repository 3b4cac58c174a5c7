"""Judge studies with scripted judges: agreement, bias probes, real-trial accuracy, human sheets."""

import asyncio
import csv
import json

import pytest
from trialwright.eval.judges.agreement import (
    agreement_report,
    checks_by_item,
    fleiss_kappa,
    verdict_table,
)
from trialwright.eval.judges.human import export_review_sheet, read_review_sheet
from trialwright.eval.judges.studies import (
    FILLER,
    JudgeItem,
    JudgeSpec,
    JudgeSpecError,
    generated_items,
    pairwise_items,
    parse_judge_specs,
    real_trial_items,
    run_judges,
)
from trialwright.tools.llm import ChatEndpoint
from trialwright.tools.schema import SyntheticTrial
from trialwright.tools.settings import Settings
from trialwright.tools.trials import Trial

from tests.fakes import rationale, report, scripted, verdict


def line(i: int, label: int = 1, passed: bool = True, generator: str = "gen") -> dict:
    rep = report(label=label)
    rep["criteria"] = SyntheticTrial.model_validate(rep).criteria
    spec = {"spec_id": f"r{i}", "phase": "phase 2", "label": label, "seed": i}
    return {"id": f"r{i}", "status": "accepted" if passed else "rejected", "label": label,
            "phase": "phase 2", "report": rep, "rationale": rationale(),
            "provenance": {"spec": spec, "generator_model": generator,
                           "evidence": [{"nctid": "NCT00000011", "score": 0.9}],
                           "checks": [{"name": "label_matches", "passed": passed}]}}


def row(judge: str, item: str, accept: bool | None, score: float | None = None, probe="plain",
        **extra) -> dict:
    return {"judge": judge, "model": judge.split("@")[0], "probe": probe, "item": item,
            "variant": extra.pop("variant", "original"), "accept": accept,
            "mean_score": score if score is not None else (4.0 if accept else 2.0), **extra}


def judge_rows(answers: list, items: list[JudgeItem], name="m@critic_rubric") -> list[dict]:
    """Run one scripted judge over items (in order) and collect its rows."""
    spec = parse_judge_specs(name)[0]
    endpoint = ChatEndpoint(chat=scripted(answers), model_id=spec.model)
    rows: list[dict] = []
    asyncio.run(run_judges({spec.model: endpoint}, [spec], items, Settings(parse_retries=0),
                           done=set(), on_row=lambda r, ok: rows.append(r), concurrency=1))
    return rows


def test_two_identical_judges_agree_perfectly():
    verdicts = [True, False, True, True, False, False, True]
    rows = [row(j, f"r{i}", v) for j in ("a@x", "b@x") for i, v in enumerate(verdicts)]
    result = agreement_report(rows)
    assert result["cohen_kappa"][0]["kappa"] == 1.0
    assert result["fleiss_kappa"] == 1.0
    assert result["krippendorff_alpha"]["accept_nominal"] == 1.0


def test_opposite_judges_disagree_and_missing_verdicts_are_skipped():
    rows = [row("a@x", f"r{i}", i % 2 == 0) for i in range(6)]
    rows += [row("b@x", f"r{i}", i % 2 == 1) for i in range(6)]
    rows.append(row("b@x", "r9", None))
    result = agreement_report(rows)
    assert result["cohen_kappa"][0]["kappa"] == -1.0 and result["cohen_kappa"][0]["n"] == 6
    assert result["missing_verdicts"] == {"a@x": 1, "b@x": 1}
    assert fleiss_kappa(verdict_table(rows)) < 0


def test_a_judge_that_always_picks_slot_a_shows_position_bias():
    lines = [line(i) for i in range(4)]
    items = pairwise_items(lines, n_pairs=2)
    assert [(i.item, i.variant) for i in items] == [("r0|r1", "ab"), ("r0|r1", "ba"),
                                                    ("r2|r3", "ab"), ("r2|r3", "ba")]
    biased = judge_rows([{"better": "A", "reason": "first"}] * 4, items)
    stats = agreement_report(biased)["position_bias"]["m@critic_rubric"]
    assert stats["first_slot_rate"] == 1.0 and stats["consistency"] == 0.0
    fair = judge_rows([{"better": b, "reason": "r"} for b in "ABBA"], items)
    stats = agreement_report(fair)["position_bias"]["m@critic_rubric"]
    assert stats["first_slot_rate"] == 0.5 and stats["consistency"] == 1.0
    assert "Record A" in fair[0]["prompt"]["user"] and fair[0]["preferred"] == "r0"


def test_padding_that_raises_scores_shows_verbosity_bias():
    lines = [line(i) for i in range(3)]
    items = generated_items(lines, lambda _: None, verbosity=True)
    assert [i.probe for i in items] == ["plain", "verbosity"] * 3
    assert FILLER in items[1].report and FILLER not in items[0].report
    rows = judge_rows([verdict(True, 3), verdict(True, 5)] * 3, items)
    bias = agreement_report(rows)["verbosity_bias"]["m@critic_rubric"]
    assert bias["mean_score_change"] == 2.0 and bias["n"] == 3


def test_judge_accuracy_on_real_trials_with_true_and_flipped_outcomes():
    trials = [Trial(nctid=f"NCT0000000{i}", label=i % 2, phase="phase 1", diseases=["gout"],
                    drugs=["allopurinol"], criteria="Inclusion Criteria: adults") for i in range(4)]
    items = real_trial_items(trials, n=4)
    assert sum(i.truth["claim_true"] for i in items) == 4 and len(items) == 8
    assert "claims-" in items[0].item and "status" not in items[0].report
    yes_man = judge_rows([verdict(True, 4)] * 8, items)
    acc = agreement_report(yes_man)["real_trials"]["m@critic_rubric"]
    assert acc["accuracy"] == 0.5 and acc["rejects_flipped_claims"] == 0.0
    oracle = judge_rows([verdict(i.truth["claim_true"], 5 if i.truth["claim_true"] else 1)
                         for i in items], items)
    acc = agreement_report(oracle)["real_trials"]["m@critic_rubric"]
    assert acc["accuracy"] == 1.0 and acc["ece"] == 0.0 and acc["score_auc"] == 1.0


def test_parity_on_real_trials_shows_a_verdict_that_follows_the_claimed_outcome():
    trials = [Trial(nctid=f"NCT0000000{i}", label=i % 2, phase="phase 1", diseases=["gout"],
                    drugs=["allopurinol"], criteria="Inclusion Criteria: adults") for i in range(4)]
    items = real_trial_items(trials, n=4)
    fair = agreement_report(judge_rows([verdict(True, 4)] * 8, items))["real_trial_parity"]
    assert fair["m@critic_rubric"] | {} == {"n": 4, "accept_success_claim": 1.0,
                                           "accept_failure_claim": 1.0, "accept_gap": 0.0,
                                           "same_verdict": 1.0, "score_gap": 0.0}
    says_the_claim = [verdict(i.truth["claimed_label"] == 1, 5 if i.truth["claimed_label"] else 1)
                      for i in items]
    biased = agreement_report(judge_rows(says_the_claim, items))["real_trial_parity"]["m@critic_rubric"]
    assert biased["accept_gap"] == 1.0 and biased["same_verdict"] == 0.0 and biased["score_gap"] == 4.0


def test_verdict_rows_keep_the_prompt_and_agree_with_checks(tmp_path):
    lines = [line(0, passed=True), line(1, passed=False)]
    items = generated_items(lines, lambda _: None, verbosity=False)
    rows = judge_rows([verdict(True), verdict(False)], items)
    assert "Record to review" in rows[0]["prompt"]["user"] and rows[0]["prompt"]["system"]
    assert rows[0]["accept"] is True and rows[1]["accept"] is False
    path = tmp_path / "reports.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    checks = agreement_report(rows, checks_by_item([path]))["vs_checks"]["m@critic_rubric"]
    assert checks == {"n": 2, "agreement": 1.0, "kappa": 1.0, "accepts_failed_checks": 0,
                      "rejects_passed_checks": 0}


def test_self_preference_compares_own_and_other_reports():
    rows = [row("gen@x", "r0", True, 5, generator_model="gen"),
            row("other@x", "r0", True, 3, generator_model="gen"),
            row("gen@x", "r1", True, 3, generator_model="else"),
            row("other@x", "r1", True, 3, generator_model="else")]
    pref = agreement_report(rows)["self_preference"]["gen@x"]
    assert pref["gap_on_own"] == 2.0 and pref["gap_on_other"] == 0.0
    assert pref["self_preference"] == 2.0


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_human_labels_round_trip_into_the_agreement_tables(tmp_path, suffix):
    lines = [line(i) for i in range(4)]
    sheet = tmp_path / f"sheet{suffix}"
    assert export_review_sheet(lines, sheet) == 4
    # A reviewer fills the accept column: yes, no, yes, and leaves the last blank.
    if suffix == ".csv":
        with sheet.open(newline="") as fh:
            recs = list(csv.DictReader(fh))
    else:
        recs = [json.loads(x) for x in sheet.read_text().splitlines()]
    for rec, answer in zip(recs, ["yes", "no", "yes", ""], strict=True):
        rec["accept"] = answer
    if suffix == ".csv":
        with sheet.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(recs[0]))
            writer.writeheader()
            writer.writerows(recs)
    else:
        sheet.write_text("".join(json.dumps(r) + "\n" for r in recs))
    human = read_review_sheet(sheet, reviewer="ann")
    assert [(h["item"], h["accept"]) for h in human] == [("r0", True), ("r1", False), ("r2", True)]
    llm = [row("m@x", f"r{i}", a) for i, a in enumerate([True, False, True])]
    result = agreement_report(human + llm)
    assert result["judges"] == ["human:ann", "m@x"] and result["cohen_kappa"][0]["kappa"] == 1.0


def test_judge_specs_are_parsed_and_checked():
    assert parse_judge_specs("fake, qwen@rubric_strict") == [
        JudgeSpec("fake", "critic_rubric"), JudgeSpec("qwen", "rubric_strict")]
    with pytest.raises(JudgeSpecError, match="no rubric file"):
        parse_judge_specs("fake@nope")
    with pytest.raises(JudgeSpecError, match="twice"):
        parse_judge_specs("fake,fake@critic_rubric")


def test_judge_models_resolve_to_endpoints_without_calling_them():
    from trialwright.eval.judges.studies import open_judges

    settings = Settings(llm_base_url="http://127.0.0.1:9/v1", llm_model="gen-x")
    specs = parse_judge_specs("fake,default,gen-x@rubric_strict,other-model")
    with open_judges(settings, specs) as endpoints:
        assert {m: e.model_id for m, e in endpoints.items()} == {
            "fake": "fake-schema", "default": "gen-x", "gen-x": "gen-x",
            "other-model": "other-model"}


def test_another_embedded_model_judges_offline_on_its_own_server(monkeypatch):
    """No endpoint configured: a registry model gets its own llama.cpp server; other names fail."""
    from contextlib import contextmanager

    from trialwright.eval.judges import studies

    started: list[str] = []

    class Server:
        def __init__(self, model: str):
            self.model_name, self.base_url = model, f"http://127.0.0.1:{9000 + len(started)}/v1"

        @classmethod
        @contextmanager
        def from_settings(cls, settings):
            started.append(settings.llm_model)
            yield cls(settings.llm_model)

    @contextmanager
    def endpoints(settings, llm="auto"):
        gen = ChatEndpoint(chat=scripted([]), model_id=settings.llm_model)
        yield gen, gen

    monkeypatch.setattr(studies, "LocalLLMServer", Server)
    monkeypatch.setattr(studies, "open_endpoints", endpoints)
    settings = Settings(llm_base_url=None, judge_base_url=None)
    small = "qwen2.5-coder-0.5b-instruct-q4_k_m"
    with studies.open_judges(settings, parse_judge_specs(f"default,{small}")) as found:
        assert found[small].model_id == small and found["default"].model_id == settings.llm_model
        assert found[small].chat.openai_api_base == "http://127.0.0.1:9001/v1"  # its own server
    assert started == [small]
    with (pytest.raises(JudgeSpecError, match="without an endpoint"),
          studies.open_judges(settings, parse_judge_specs("gpt-4o"))):
        pass


def test_a_judge_that_rejects_every_failure_shows_outcome_bias():
    """Known answer: judge A accepts successes and rejects failures of the same quality."""
    from trialwright.eval.judges.agreement import outcome_bias

    rows = [row("a", f"r{i}", accept=(label == 1), truth={"requested_label": label})
            for i, label in enumerate([1, 1, 0, 0, 1, 0])]
    rows += [row("fair", f"r{i}", accept=(i % 2 == 0), truth={"requested_label": label})
             for i, label in enumerate([1, 1, 0, 0])]
    bias = outcome_bias(rows)
    assert bias["a"]["accept_rate_by_label"] == {"0": 0.0, "1": 1.0}
    assert bias["a"]["gap_success_minus_failure"] == 1.0
    assert bias["fair"]["gap_success_minus_failure"] == 0.0
    items = generated_items([line(0, label=0), line(1, label=1)], lambda _: None, False)
    assert [i.truth["requested_label"] for i in items] == [0, 1]
