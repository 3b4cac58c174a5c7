"""Test doubles: scripted chat models, a fixed evidence store and encoder, report builders."""

from __future__ import annotations

import json
from collections.abc import Iterable

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from trialwright.agents.common import AgentDeps
from trialwright.tools.llm import ChatEndpoint
from trialwright.tools.settings import Settings

from tests.doubles import FIXED_TRIALS, FixedStore, HashEncoder

EVIDENCE = FIXED_TRIALS


def scripted(answers: Iterable[str | dict], tokens: int = 10) -> GenericFakeChatModel:
    """A chat model that answers with these texts (dicts become JSON), in order."""
    msgs = [AIMessage(content=a if isinstance(a, str) else json.dumps(a),
                      usage_metadata={"input_tokens": tokens, "output_tokens": tokens,
                                      "total_tokens": 2 * tokens}) for a in answers]
    return GenericFakeChatModel(messages=iter(msgs))


class RecordingChat(GenericFakeChatModel):
    """A scripted model that also keeps every prompt it was sent (to test what a judge saw)."""

    seen: list = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append("\n".join(str(m.content) for m in messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def recording(answers: Iterable[str | dict], tokens: int = 10) -> RecordingChat:
    msgs = [AIMessage(content=a if isinstance(a, str) else json.dumps(a),
                      usage_metadata={"input_tokens": tokens, "output_tokens": tokens,
                                      "total_tokens": 2 * tokens}) for a in answers]
    return RecordingChat(messages=iter(msgs), seen=[])


def rationale(ids=("NCT00000011",), condition="asthma", intervention="budesonide") -> dict:
    return {"condition": condition, "intervention": intervention, "reasons": [
        {"claim": "Similar inhaled corticosteroid trials met FEV1 endpoints.", "evidence_ids": list(ids)},
        {"claim": "A reversible-obstruction population responds well.", "evidence_ids": list(ids)}]}


def report(label=1, phase="phase 2", **changes) -> dict:
    rec = {
        "title": "A Randomized Study of Budesonide in Adults With Persistent Asthma",
        "brief_summary": "This phase 2 study tests whether inhaled budesonide improves lung "
                         "function in adults with persistent asthma.",
        "phase": phase, "diseases": ["asthma"], "drugs": ["budesonide", "placebo"],
        "design": {"allocation": "Randomized", "intervention_model": "Parallel Assignment",
                   "masking": "Double", "primary_purpose": "Treatment"},
        "arms": [{"label": "Budesonide", "type": "Experimental",
                  "description": "Inhaled budesonide 400 mcg twice daily"},
                 {"label": "Placebo", "type": "Placebo Comparator", "description": "Matching inhaler"}],
        "primary_outcome": {"measure": "Change in FEV1 from baseline", "time_frame": "12 weeks"},
        "enrollment": 180, "minimum_age_years": 18, "maximum_age_years": 70,
        "inclusion_criteria": ["Adults aged 18 to 70 years", "Physician-diagnosed asthma"],
        "exclusion_criteria": ["Current smokers", "Pregnancy"],
        "outcome_summary": ("The study met its primary endpoint: FEV1 improved by 180 mL."
                            if label == 1 else "The study did not meet its primary endpoint."),
        "label": label,
    }
    rec.update(changes)
    return rec


def checklist(no=(), feedback="") -> dict:
    """The blinded quality judge's answers: every question of the default checklist yes, but `no`."""
    from trialwright.agents.quality_judge import load_checklist

    answers = {q.id: "no" if q.id in no else "yes"
               for q in load_checklist("quality_checklist").questions}
    return {**answers, "feedback": feedback}


def rejecting_checklist() -> dict:
    return checklist(no=("design_consistent", "arms_specific"), feedback="Make the arms more specific.")


def verdict(accept=True, score=4) -> dict:
    """A 1-5 rubric verdict (the judge studies' rubric judges)."""
    return {"scores": {k: score for k in ("label_faithfulness", "internal_consistency",
                                           "clinical_plausibility", "realism", "grounding")},
            "reasons": "fine" if accept else "generic", "verdict": "accept" if accept else "revise",
            "feedback": "" if accept else "Make the arms more specific."}


def make_deps(generator: list, judge: list | None = None, *, judge_id="judge-model",
              max_revisions=2, **settings) -> AgentDeps:
    """Scripted generator and judge; the judge records the prompts it was sent (`.chat.seen`)."""
    gen = ChatEndpoint(chat=scripted(generator), model_id="gen-model")
    jud = ChatEndpoint(chat=recording(judge or []), model_id=judge_id) if judge is not None else gen
    s = Settings(max_revisions=max_revisions, k_evidence=2, **settings)
    return AgentDeps(settings=s, generator=gen, judge=jud, store=FixedStore(),  # type: ignore[arg-type]
                     encoder=HashEncoder())  # type: ignore[arg-type]
