"""Design-coherence checks: does the study design agree with itself and with its phase?

Deterministic and cheap, run before any judge. Each failure message says what to change, in the
drafter's terms. The rules are the registry's own (a single group is one arm and not randomised, a
comparator needs a second arm); the numeric ranges are learned from real trials
(`tools/plausible_ranges.py`), and a range check with no ranges is recorded as skipped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from trialwright.tools.schema import CheckResult

if TYPE_CHECKING:
    from trialwright.tools.checks import CheckInput

_ok, _fail, _skip = CheckResult.ok, CheckResult.fail, CheckResult.skip
_COMPARATORS = {"Placebo Comparator", "Active Comparator", "No Intervention"}
_MULTI_ARM_MODELS = {"Parallel Assignment", "Crossover Assignment", "Factorial Assignment"}
_PLACEBO = re.compile(r"\b(?:placebo|vehicle|sham|dummy|sugar pill|saline control)\b", re.IGNORECASE)
_UNITS = r"minutes?|mins?|hours?|hrs?|days?|weeks?|wks?|months?|mos?|years?|yrs?|cycles?"
_TIME = re.compile(rf"\b(\d+(?:\.\d+)?)\s*-?\s*({_UNITS})\b|\b({_UNITS})\s*(\d+(?:\.\d+)?)\b",
                   re.IGNORECASE)
_DAYS = {"mi": 1 / 1440, "h": 1 / 24, "d": 1, "w": 7, "m": 30.44, "y": 365.25, "c": 28}  # cycle ~4 wk
# Time frames real registries give without a number ("Length of study", "At discharge").
_NAMED_FRAME = re.compile(r"\b(?:end of|completion|discharge|until|through|duration|length of|"
                          r"throughout|after (?:each|the last)|at (?:the )?(?:end|time))\b", re.IGNORECASE)
_GENERIC_MEASURES = {"efficacy", "safety", "outcome", "outcomes", "response", "success",
                     "primary outcome", "primary endpoint", "effectiveness", "results", "benefit"}


def check_design_coherent(x: CheckInput) -> CheckResult:
    """Allocation, intervention model, masking and arms must describe one possible design."""
    d = x.draft
    if d is None:
        return _fail("design_coherent", "no report")
    g, arms = d.design, d.arms
    types = [a.type for a in arms]
    problems = []
    if g.intervention_model == "Single Group Assignment":
        if g.allocation == "Randomized":
            problems.append("'Single Group Assignment' cannot be 'Randomized': use allocation "
                            "'N/A' for one group, or 'Parallel Assignment' with two or more arms")
        if _COMPARATORS & set(types):
            problems.append("a single group has no comparator arm: drop the comparator arm or "
                            "use 'Parallel Assignment'")
    if g.allocation == "Randomized" and len(arms) < 2:
        problems.append("a randomised trial needs at least two arms to randomise between")
    if g.intervention_model in _MULTI_ARM_MODELS and len(arms) < 2:
        problems.append(f"'{g.intervention_model}' needs at least two arms")
    if {"Placebo Comparator", "No Intervention"} & set(types) and not (
            {"Experimental", "Active Comparator", "Other"} & set(types)):
        # Two active comparators (a head-to-head trial) are a real design; placebo alone is not.
        problems.append("a placebo or no-intervention arm needs an arm that gives the studied "
                        "intervention (type 'Experimental') to compare against")
    if g.masking in ("Double", "Triple", "Quadruple") and len(arms) < 2:
        problems.append(f"'{g.masking}' masking needs at least two arms to mask between; a "
                        "single-arm trial is open label")
    if problems:
        return _fail("design_coherent", "; ".join(problems))
    return _ok("design_coherent")


def check_purpose_fits_intervention(x: CheckInput) -> CheckResult:
    """A trial testing a drug in patients is not a screening or health-services study."""
    d = x.draft
    if d is None:
        return _fail("purpose_fits_intervention", "no report")
    purpose = d.design.primary_purpose
    if purpose in ("Screening", "Health Services Research") and "Experimental" in {a.type for a in d.arms}:
        return _fail("purpose_fits_intervention",
                     f"primary purpose '{purpose}' does not fit an experimental drug arm; use "
                     "'Treatment' (or 'Prevention' / 'Supportive Care' where that is the aim)")
    return _ok("purpose_fits_intervention")


def check_studied_not_placebo(x: CheckInput) -> CheckResult:
    """The intervention under study is a real one; placebo may only be its comparator."""
    d = x.draft
    if d is None:
        return _fail("studied_not_placebo", "no report")
    studied = x.chosen.get("intervention", "")
    if studied and _PLACEBO.search(studied):
        return _fail("studied_not_placebo", f"the studied intervention is '{studied}', a placebo; "
                     "study an active intervention and use placebo only as a comparator", "reasoner")
    if all(_PLACEBO.search(drug) for drug in d.drugs):
        return _fail("studied_not_placebo", "every listed intervention is a placebo; list the "
                     "active intervention first")
    experimental = [a for a in d.arms if a.type == "Experimental"]
    if experimental and all(_PLACEBO.search(a.description) and not _names_active(a.description, d.drugs)
                            for a in experimental):
        return _fail("studied_not_placebo", "the experimental arm gives only placebo; it must give "
                     "the studied intervention (placebo belongs in a 'Placebo Comparator' arm)")
    return _ok("studied_not_placebo")


def _names_active(text: str, drugs: list[str]) -> bool:
    low = text.lower()
    return any(drug.lower() in low for drug in drugs if not _PLACEBO.search(drug))


def time_frame_days(text: str) -> float | None:
    """The longest duration a time frame names, in days ("Baseline to week 12" -> 84)."""
    spans = []
    for m in _TIME.finditer(text):
        number, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        unit = unit.lower()
        spans.append(float(number) * _DAYS["mi" if unit.startswith("mi") else unit[0]])
    return max(spans) if spans else None


def check_outcome_measure_specific(x: CheckInput) -> CheckResult:
    """The primary outcome names a measurable quantity and a concrete time frame."""
    d = x.draft
    if d is None:
        return _fail("outcome_measure_specific", "no report")
    measure, frame = d.primary_outcome.measure.strip(), d.primary_outcome.time_frame.strip()
    problems = []
    if measure.lower().rstrip(".") in _GENERIC_MEASURES or len(measure.split()) < 2:
        problems.append(f"primary outcome '{measure}' is not a measurable quantity: name what is "
                        "measured and how (e.g. 'Change from baseline in HbA1c')")
    if time_frame_days(frame) is None and not _NAMED_FRAME.search(frame):
        problems.append(f"time frame '{frame}' names no duration: give one (e.g. '12 weeks')")
    if problems:
        return _fail("outcome_measure_specific", "; ".join(problems))
    return _ok("outcome_measure_specific")


def check_size_plausible(x: CheckInput) -> CheckResult:
    """Enrollment and time frame within the range real trials of this phase span."""
    d = x.draft
    if d is None:
        return _fail("size_plausible", "no report")
    if x.ranges is None:
        return _skip("size_plausible", "no real-trial ranges were available to this run")
    band = x.ranges.for_phase(d.phase)
    if band is None:
        return _skip("size_plausible", f"no real-trial ranges for {d.phase}")
    problems = []
    lo, hi = band.enrollment
    if not lo <= d.enrollment <= hi:
        problems.append(f"enrollment {d.enrollment} is outside what real {d.phase} trials enroll "
                        f"({lo:g}-{hi:g})")
    days = time_frame_days(d.primary_outcome.time_frame)
    if days is not None and band.time_frame_days is not None:
        lo, hi = band.time_frame_days
        if not lo <= days <= hi:
            problems.append(f"time frame '{d.primary_outcome.time_frame}' is outside what real "
                            f"{d.phase} trials use ({lo:g}-{hi:g} days)")
    if problems:
        return _fail("size_plausible", "; ".join(problems))
    return _ok("size_plausible")


DESIGN_CHECKS = [check_design_coherent, check_purpose_fits_intervention, check_studied_not_placebo,
                 check_outcome_measure_specific, check_size_plausible]
