"""The loop with scripted models: accept, revise, reject, malformed output, checks, two models."""

import pytest
from pydantic import ValidationError
from trialwright.graph.generation import run_spec
from trialwright.tools.schema import Spec, SyntheticTrial

from tests.fakes import checklist, make_deps, rationale, rejecting_checklist, report

SPEC = Spec(spec_id="s1", phase="phase 2", label=1, seed=7)


def calls(state, node):
    return [c for c in state["llm_calls"] if c.node == node]


def test_accept_first_time():
    deps = make_deps([rationale(), report()], [checklist()])
    state = run_spec(SPEC, deps)
    assert state["status"] == "accepted" and state["revision"] == 0
    assert state["draft"].label == 1 and all(c.passed for c in state["checks"])
    assert [e.nctid for e in state["evidence"]] == ["NCT00000011", "NCT00000022"]
    assert state["verdict"].accepted and state["verdict"].score == 1.0
    assert state["outcome"].method == "phrases" and state["outcome"].agrees
    assert sum(c.input_tokens for c in state["llm_calls"]) == 30


def test_revise_then_accept_goes_back_to_the_drafter():
    deps = make_deps([rationale(), report(), report(title="Budesonide for Persistent Asthma")],
                     [rejecting_checklist(), checklist()])
    state = run_spec(SPEC, deps)
    assert state["status"] == "accepted" and state["revision"] == 1
    assert len(calls(state, "reason")) == 1 and len(calls(state, "draft")) == 2
    assert not state["rounds"][0].verdict.accepted
    assert state["rounds"][0].verdict.vetoed == ["design_consistent"]
    assert "Make the arms more specific" in state["feedback"]


def test_reject_after_budget_keeps_reasons():
    deps = make_deps([rationale(), report(), report()], [rejecting_checklist(), rejecting_checklist()],
                     max_revisions=1)
    state = run_spec(SPEC, deps)
    assert state["status"] == "rejected" and len(state["rounds"]) == 2
    assert any("judge" in r for r in state["reject_reasons"])


def test_malformed_json_is_repaired_not_crashed():
    deps = make_deps([rationale(), "{not json at all", report()], [checklist()])
    state = run_spec(SPEC, deps)
    draft_call = calls(state, "draft")[0]
    assert state["status"] == "accepted"
    assert draft_call.attempts == 2 and "invalid answer" in draft_call.errors[0]


def test_malformed_json_every_time_is_a_recorded_failure():
    deps = make_deps([rationale(), "nope", "nope", "nope"], [], max_revisions=0)
    state = run_spec(SPEC, deps)
    assert state["status"] == "rejected" and state["draft"] is None
    assert not calls(state, "draft")[0].ok
    assert any("schema_valid" in r for r in state["reject_reasons"])


def test_label_mismatch_in_prose_is_caught_by_checks():
    failing = report(outcome_summary="The trial failed to meet its primary endpoint.")
    deps = make_deps([rationale(), failing, report()], [checklist()])
    state = run_spec(SPEC, deps)
    first = state["rounds"][0]
    assert [c.name for c in first.failed_checks] == ["label_matches"]
    assert first.verdict is None  # the judge is not paid for a report the checks refuse
    assert state["status"] == "accepted" and state["revision"] == 1


def test_copied_nct_id_is_caught_by_privacy_check():
    leaky = report(brief_summary="Like NCT00000011, this phase 2 study tests budesonide in asthma.")
    deps = make_deps([rationale(), leaky, leaky], [], max_revisions=1)
    state = run_spec(SPEC, deps)
    assert state["status"] == "rejected"
    assert all(any(c.name == "no_nct_id" for c in r.failed_checks) for r in state["rounds"])


def test_invented_evidence_id_is_refused_and_repaired():
    deps = make_deps([rationale(ids=["NCT99999999"]), rationale(), report()], [checklist()])
    state = run_spec(SPEC, deps)
    reason = calls(state, "reason")[0]
    assert state["status"] == "accepted" and reason.attempts == 2
    assert "NCT99999999" in reason.errors[0] or "evidence_ids" in reason.errors[0]


def test_unusable_rationale_goes_back_to_the_reasoner():
    deps = make_deps(["x", "x", "x", report(), rationale(), report()], [checklist()])
    state = run_spec(SPEC, deps)
    assert state["status"] == "accepted" and state["revision"] == 1
    assert len(calls(state, "reason")) == 2 and not calls(state, "reason")[0].ok
    assert "rationale_valid" in [c.name for c in state["rounds"][0].failed_checks]


def test_judge_and_generator_are_different_models():
    deps = make_deps([rationale(), report()], [checklist()], judge_id="other-judge")
    state = run_spec(SPEC, deps)
    models = {c.node: c.model for c in state["llm_calls"]}
    assert models == {"reason": "gen-model", "draft": "gen-model", "judge": "other-judge"}
    assert state["verdict"].judge_model == "other-judge"


def test_copy_of_an_unretrieved_real_trial_is_caught_by_the_corpus_index():
    """The evidence-only copy check cannot see a trial that was not retrieved; the index can."""
    from trialwright.tools.privacy_index import PrivacyIndex

    copied = report()
    source = SyntheticTrial.model_validate(copied).prose()
    corpus = PrivacyIndex.build([("NCT07654321", source), ("NCT00000099", "an unrelated trial")])
    deps = make_deps([rationale(), copied, copied], [], max_revisions=1)
    deps.privacy = corpus
    state = run_spec(SPEC, deps)
    assert state["status"] == "rejected"
    for r in state["rounds"]:
        assert [c.name for c in r.failed_checks] == ["not_copied_from_corpus"]
        assert "NCT07654321" in r.failed_checks[0].message
    deps = make_deps([rationale(), copied], [checklist()])  # the same report, no index: accepted
    assert run_spec(SPEC, deps)["status"] == "accepted"


def test_a_json_spec_from_an_api_client_is_validated_into_a_spec():
    """`langgraph dev` hands the graph plain JSON; the loop runs on a validated Spec."""
    import asyncio

    from trialwright.graph.generation import build_generation_graph, run_config

    deps = make_deps([rationale(), report()], [checklist()])
    graph = build_generation_graph(deps)
    state = asyncio.run(graph.ainvoke({"spec": SPEC.model_dump(mode="json")}, run_config(deps)))
    assert isinstance(state["spec"], Spec) and state["spec"] == SPEC
    assert state["status"] == "accepted"
    bad = {"spec": {**SPEC.model_dump(mode="json"), "label": 7}}
    with pytest.raises(ValidationError, match="label"):
        asyncio.run(graph.ainvoke(bad, run_config(deps)))
