"""The one LLM helper: tolerant parsing, bounded repair, failures as data, token accounting."""

import asyncio

import pytest
from trialwright.tools.llm import (
    ChatEndpoint,
    call_structured,
    parse_json_object,
    response_format,
)
from trialwright.tools.schema import JudgeOutput, Outcome

from tests.fakes import scripted


@pytest.mark.parametrize("text", [
    '{"measure": "FEV1", "time_frame": "12 weeks"}',
    '```json\n{"measure": "FEV1", "time_frame": "12 weeks"}\n```',
    'Sure! Here it is: {"measure": "FEV1", "time_frame": "12 weeks"} Hope it helps.',
])
def test_parse_tolerates_fences_and_chatter(text):
    assert Outcome.model_validate(parse_json_object(text)).measure == "FEV1"


def test_parse_rejects_non_json():
    with pytest.raises(ValueError):
        parse_json_object("no braces here")


def run(answers, schema=Outcome, repairs=2):
    ep = ChatEndpoint(chat=scripted(answers, tokens=7), model_id="m")
    return asyncio.run(call_structured(ep, [], schema, node="n", repairs=repairs))


def test_repair_after_schema_violation_counts_tokens():
    value, call = run(['{"measure": "FEV1"}', '{"measure": "FEV1", "time_frame": "1 y"}'])
    assert value.time_frame == "1 y" and call.ok and call.attempts == 2
    assert "time_frame" in call.errors[0] and call.input_tokens == 14


def test_gives_up_after_bounded_repairs():
    value, call = run(["x", "y", "z", '{"measure": "a", "time_frame": "b"}'], repairs=2)
    assert value is None and not call.ok and call.attempts == 3 and len(call.errors) == 3


def test_out_of_range_score_is_invalid():
    bad = {"scores": {"label_faithfulness": 9, "internal_consistency": 3,
                      "clinical_plausibility": 3, "realism": 3, "grounding": 3},
           "reasons": "", "verdict": "accept", "feedback": ""}
    value, call = run([bad], schema=JudgeOutput, repairs=0)
    assert value is None and "label_faithfulness" in call.errors[0]


def test_response_format_modes():
    assert response_format(Outcome, "json_schema")["json_schema"]["schema"]["title"] == "Outcome"
    assert response_format(Outcome, "json_object") == {"type": "json_object"}
    assert response_format(Outcome, "none") is None


def test_constrained_schema_narrows_only_the_named_fields():
    from trialwright.tools.schema import Rationale, SyntheticTrial, constrained_schema

    s = constrained_schema(SyntheticTrial, {"label": [1], "phase": ["phase 2"], "drugs": ["x"]})
    assert s["properties"]["label"]["enum"] == [1]
    assert s["properties"]["drugs"]["items"] == {"enum": ["x"]}
    assert s["$defs"]["Arm"]["properties"]["label"]["type"] == "string"  # an arm's label is prose
    r = constrained_schema(Rationale, {"evidence_ids": ["NCT00000001"]})
    assert r["$defs"]["Reason"]["properties"]["evidence_ids"]["items"] == {"enum": ["NCT00000001"]}
    assert "enum" not in constrained_schema(SyntheticTrial)["properties"]["title"]
