"""Planted defects for the judge's sensitivity study: one known flaw on an otherwise real record.

Why: a judge that accepts real records but also accepts the same records with a contradiction in
them sees nothing. Each defect is a pure, seeded function `SyntheticTrial -> SyntheticTrial`; the
result still validates against the schema (the flaw is in the content, not the shape), so it
reaches the critic exactly as a drafted report would. Standalone: imports no other eval module.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from trialwright.tools.ctgov import claimed_outcome, clip, norm
from trialwright.tools.schema import Arm, SyntheticTrial

Defect = Callable[[SyntheticTrial, random.Random, str | None], SyntheticTrial]
_ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV"}
# Any phase mention, combined ones too ("Phase I/II", "phase 2b", "Phase II-III").
_PHASE_TEXT = re.compile(r"(?:\b(?P<art>an?)\s+)?\b(?:early\s+)?phase\s*(?:iv|iii|ii|i|[1-4])[ab]?"
                         r"(?:\s*(?:/|-|and|or)\s*(?:phase\s*)?(?:iv|iii|ii|i|[1-4])[ab]?)?\b",
                         re.IGNORECASE)
_AGE_CRITERION = re.compile(r"\bage[ds]?\b|\byears? (?:of age|old)\b", re.IGNORECASE)


def _valid(trial: SyntheticTrial, **update: Any) -> SyntheticTrial:
    """model_copy does not validate; round-trip so every planted record is schema-valid."""
    return SyntheticTrial.model_validate(trial.model_copy(update=update).model_dump())


def design_contradiction(trial: SyntheticTrial, rng: random.Random,
                         donor: str | None = None) -> SyntheticTrial:
    """Randomised single group with one arm, or a placebo comparator as the only arm."""
    variants = [
        lambda: _valid(trial, arms=trial.arms[:1], design=trial.design.model_copy(update={
            "allocation": "Randomized", "intervention_model": "Single Group Assignment"})),
        lambda: _valid(trial, arms=[Arm(label="Placebo", type="Placebo Comparator",
                                        description="Matching placebo on the same schedule.")]),
    ]
    rng.shuffle(variants)
    for make in variants:  # the first that changes something (a real record may already be one)
        planted = make()
        if planted != trial:
            return planted
    return planted


def outcome_contradicts_label(trial: SyntheticTrial, rng: random.Random,
                              donor: str | None = None) -> SyntheticTrial:
    """The outcome text claims the opposite of `label` (label unchanged)."""
    opposite = 1 - trial.label
    return _valid(trial, outcome_summary=claimed_outcome(trial, opposite, str(rng.random())))


def copied_paragraph(trial: SyntheticTrial, rng: random.Random,
                     donor: str | None = None) -> SyntheticTrial:
    """The summary ends with a passage copied verbatim from another real record's summary."""
    words = norm(donor).split()
    if len(words) < 15:
        raise ValueError("copied_paragraph needs a donor summary of at least 15 words")
    sentences = re.split(r"(?<=[.!?])\s+", norm(donor))
    chunk = ""
    for start in (rng.randrange(len(sentences)), 0):
        chunk = ""
        for s in sentences[start:]:  # consecutive whole sentences, ≤ 420 characters
            if len(chunk) + len(s) + 1 > 420:
                break
            chunk = f"{chunk} {s}".strip()
        if len(chunk.split()) >= 15:
            break
    if len(chunk.split()) < 15:  # one long sentence: a verbatim run of whole words instead
        i = rng.randrange(max(1, len(words) - 60))
        chunk = " ".join(words[i:i + 60])
        while len(chunk) > 420:
            chunk = chunk.rsplit(" ", 1)[0]
    own = clip(trial.brief_summary, 700 - len(chunk) - 1)
    return _valid(trial, brief_summary=f"{own} {chunk}".strip())


def _phase_digits(phase: str) -> set[str]:
    return set(re.findall(r"[1-4]", phase))


def wrong_phase_in_text(trial: SyntheticTrial, rng: random.Random,
                        donor: str | None = None) -> SyntheticTrial:
    """Title and summary name a phase that shares no number with `phase`."""
    digit = rng.choice(sorted(set("1234") - _phase_digits(trial.phase)))
    wrong = f"Phase {_ROMAN[digit]}" if rng.random() < 0.5 else f"Phase {digit}"
    def put(m: re.Match[str]) -> str:  # "An Early Phase 1" -> "A Phase III", not "An Phase III"
        art = m.group("art")
        return f"{art[0]} {wrong}" if art else wrong

    title, n_title = _PHASE_TEXT.subn(put, trial.title)
    summary, n_summary = _PHASE_TEXT.subn(put, trial.brief_summary)
    if not n_title:
        prefix = f"A {wrong} Trial: "
        title = prefix + clip(title, 200 - len(prefix))
    if not n_summary:
        summary = clip(f"This is a {wrong} trial. {summary}", 700)
    return _valid(trial, title=clip(title, 200), brief_summary=summary)


def ages_contradict_criteria(trial: SyntheticTrial, rng: random.Random,
                             donor: str | None = None) -> SyntheticTrial:
    """An inclusion criterion names an age range outside minimum/maximum age."""
    lo, hi = trial.minimum_age_years, trial.maximum_age_years
    update: dict[str, Any] = {}
    if lo >= 6:  # below the minimum: "Aged 6 to 16 years" in an adult trial
        a, b = lo // 3, lo - 2
    else:  # above the maximum; with no (or a very high) maximum, set one to contradict
        if hi is None or hi > 90:
            hi = rng.choice([12, 17])
            update["maximum_age_years"] = hi
        a, b = hi + 2 + rng.randrange(5), min(hi + 25, 110)
    criterion = rng.choice([f"Aged {a} to {b} years", f"Age {a}-{b} years at screening",
                            f"Men and women aged {a} to {b} years"])
    inclusion = list(trial.inclusion_criteria)
    at = next((i for i, c in enumerate(inclusion) if _AGE_CRITERION.search(c)), None)
    if at is not None:  # replace the record's own age criterion
        inclusion[at] = criterion
    elif len(inclusion) < 8:
        inclusion.insert(rng.randrange(len(inclusion) + 1), criterion)
    else:
        inclusion[rng.randrange(len(inclusion))] = criterion
    return _valid(trial, inclusion_criteria=inclusion, **update)


def placebo_as_studied_drug(trial: SyntheticTrial, rng: random.Random,
                            donor: str | None = None) -> SyntheticTrial:
    """The only drug is placebo, and the experimental arm receives it."""
    text = rng.choice(["Participants receive placebo once daily for the treatment period.",
                       "Matching placebo tablets, given on the study schedule.",
                       "Placebo infusion on day 1 of each cycle."])
    studied = [i for i, a in enumerate(trial.arms) if a.type == "Experimental"] or [0]
    arms = [a.model_copy(update={"description": text}) if i in studied else a
            for i, a in enumerate(trial.arms)]
    return _valid(trial, drugs=["Placebo"], arms=arms)


DEFECTS: dict[str, Defect] = {
    "design_contradiction": design_contradiction,
    "outcome_contradicts_label": outcome_contradicts_label,
    "copied_paragraph": copied_paragraph,
    "wrong_phase_in_text": wrong_phase_in_text,
    "ages_contradict_criteria": ages_contradict_criteria,
    "placebo_as_studied_drug": placebo_as_studied_drug,
}


def plant(record: SyntheticTrial, kind: str, seed: int | str | random.Random = 0,
          donor: str | None = None) -> SyntheticTrial:
    """`record` with one defect of `kind`; the same (kind, seed) always plants the same defect.

    Pass the nctid as seed so each real record gets its own variant; `donor` (another real
    record's summary) is needed by "copied_paragraph" only.
    """
    if kind not in DEFECTS:
        raise KeyError(f"unknown defect {kind!r}; choose from {sorted(DEFECTS)}")
    rng = seed if isinstance(seed, random.Random) else random.Random(f"{kind}:{seed}")
    return DEFECTS[kind](record, rng, donor)
