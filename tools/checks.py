"""Deterministic consistency checks, run before the (expensive) LLM judge.

Each check is a small function `CheckInput -> CheckResult`, registered in `CHECKS`; adding a
check is one function plus one line. `target` says who should fix a failure (reasoner/drafter).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trialwright.tools.design_checks import DESIGN_CHECKS
from trialwright.tools.outcome_words import (
    FAILURE_WORDS,
    MET,
    STOPPED_EARLY,
    SUCCESS_WORDS,
)
from trialwright.tools.privacy_index import tokens
from trialwright.tools.schema import (
    CheckResult,
    Evidence,
    Rationale,
    Spec,
    SyntheticTrial,
)
from trialwright.tools.trials import NCT_ID

if TYPE_CHECKING:
    from trialwright.tools.plausible_ranges import PlausibleRanges
    from trialwright.tools.privacy_index import PrivacyIndex

_PHASE_WORDS = {"1": "1", "i": "1", "2": "2", "ii": "2", "3": "3", "iii": "3", "4": "4", "iv": "4"}
_PHASE_MENTION = re.compile(r"\bphase\s*(iv|iii|ii|i|[1-4])\b", re.IGNORECASE)
_AGES = [re.compile(p, re.IGNORECASE) for p in (
    (r"\bage[ds]?(?: of)?\s*(?:between\s*)?(?:≥|>=|>|at least\s*)?\s*(\d{1,3})"
     r"(?:\s*(?:-|–|to|and)\s*(\d{1,3}))?"),
    r"(\d{1,3})\s*(?:-|–|to)\s*(\d{1,3})\s*years",
    r"(\d{1,3})\s*years?\s*(?:of age|old|or older|and older|and above)")]
# "duration 1 to 10 years", "diagnosed 2-5 years ago": spans of time, not ages.
_DURATION = re.compile(r"\b(?:duration|history|for at least|within|since|diagnos\w*|ago|prior|"
                       r"previous|last|disease for|follow)", re.IGNORECASE)
_AGE_WORD = re.compile(r"\b(?:age[ds]?|years? old|of age)\b", re.IGNORECASE)


def _criterion_age_patterns(criterion: str) -> list[re.Pattern[str]]:
    """The age patterns that apply: a bare "N to M years" is an age only where no duration is meant."""
    if _DURATION.search(criterion) and not _AGE_WORD.search(criterion):
        return [_AGES[0], _AGES[2]]
    return _AGES


_LABEL_TALK = re.compile(  # "(label 0)", "label: 1", "labelled as 0" — not "label 1 mg", "0.5"
    r"\(\s*label\s*[01]\s*\)|(?<!open[\s-])\blabel(?:led)?\s*(?:=|:|as)?\s*[01]\b(?![.,]\d)"
    r"(?!\s*(?:mg|mcg|µg|ml|g|%|tablet|capsule|dose))", re.IGNORECASE)
@dataclass
class CheckInput:
    spec: Spec
    evidence: list[Evidence]
    rationale: Rationale | None
    draft: SyntheticTrial | None
    draft_error: str = ""
    rationale_error: str = ""
    copy_ngram: int = 12
    copy_max_overlap: float = 0.2
    copy_max_span: int = 24  # words: longer verbatim runs from one trial are a copied passage
    chosen: dict[str, str] = field(default_factory=dict)
    corpus: PrivacyIndex | None = None  # the whole real corpus; None = that check is skipped
    ranges: PlausibleRanges | None = None  # real trials' size bands; None = that check is skipped


_ok, _fail, _skip = CheckResult.ok, CheckResult.fail, CheckResult.skip


def _mentions(haystack: str, needle: str) -> bool:
    """True if the text names the term: the whole phrase, or most of its distinctive words."""
    h, n = haystack.lower(), needle.lower().strip()
    if n and n in h:
        return True
    # Long registry terms ("Unspecified Adult Solid Tumor, Protocol Specific") are named by a
    # couple of their words ("solid tumors"): half the words, but never more than two.
    words = [w for w in tokens(n) if len(w) > 3]
    return bool(words) and sum(w in h for w in words) >= min(2, max(1, (len(words) + 1) // 2))


def check_rationale_valid(x: CheckInput) -> CheckResult:
    if x.rationale is None:
        return _fail("rationale_valid", f"no usable rationale: {x.rationale_error or 'missing'}",
                     "reasoner")
    return _ok("rationale_valid", "reasoner")


def check_rationale_cites_evidence(x: CheckInput) -> CheckResult:
    if x.rationale is None:
        return _fail("rationale_cites_evidence", "no rationale to check", "reasoner")
    known = {e.nctid for e in x.evidence}
    cited = {i.strip().upper() for r in x.rationale.reasons for i in r.evidence_ids}
    unknown = sorted(cited - known)
    if unknown:
        return _fail("rationale_cites_evidence",
                     f"cites ids that were not retrieved: {', '.join(unknown)}", "reasoner")
    if not cited:
        return _fail("rationale_cites_evidence", "cites no evidence", "reasoner")
    return _ok("rationale_cites_evidence", "reasoner")


def check_schema_valid(x: CheckInput) -> CheckResult:
    if x.draft is None:
        return _fail("schema_valid", f"no valid report: {x.draft_error or 'missing'}")
    return _ok("schema_valid")


def check_label_matches(x: CheckInput) -> CheckResult:
    d = x.draft
    if d is None:
        return _fail("label_matches", "no report")
    if d.label != x.spec.label:
        return _fail("label_matches", f"label is {d.label}, requested {x.spec.label}")
    if m := _LABEL_TALK.search(f"{d.title}\n{d.brief_summary}\n{d.outcome_summary}"):
        # the prompt's class label echoed into the registry text
        return _fail("label_matches", f"the report talks about its class ('{m.group(0)}'); "
                     "describe the outcome in clinical words")
    opposite = FAILURE_WORDS if d.label == 1 else SUCCESS_WORDS
    if m := opposite.search(d.outcome_summary):
        want = "the primary endpoint was met" if d.label == 1 else "the primary endpoint was not met"
        return _fail("label_matches", f"the outcome must say that {want}, but it says "
                     f"'{m.group(0)}'", "outcome")
    return _ok("label_matches")


def check_results_only_in_outcome(x: CheckInput) -> CheckResult:
    """Title and summary describe the plan, as a registry entry does; results live only in the
    outcome section — which also keeps them out of the blinded quality judge's view."""
    d = x.draft
    if d is None:
        return _fail("results_only_in_outcome", "no report")
    for rx in (FAILURE_WORDS, STOPPED_EARLY, MET):
        if m := rx.search(f"{d.title}\n{d.brief_summary}"):
            return _fail("results_only_in_outcome", f"the title or brief summary states a result "
                         f"('{m.group(0)}'); describe the plan there and put results only in "
                         "outcome_summary")
    return _ok("results_only_in_outcome")


def check_phase_consistent(x: CheckInput) -> CheckResult:
    d = x.draft
    if d is None:
        return _fail("phase_consistent", "no report")
    if d.phase != x.spec.phase:
        return _fail("phase_consistent", f"phase is {d.phase}, requested {x.spec.phase}")
    allowed = set(re.findall(r"[1-4]", x.spec.phase))
    for m in _PHASE_MENTION.finditer(f"{d.title}\n{d.brief_summary}\n{d.outcome_summary}"):
        if _PHASE_WORDS[m.group(1).lower()] not in allowed:
            return _fail("phase_consistent", f"text says '{m.group(0)}' in a {x.spec.phase} trial")
    return _ok("phase_consistent")


def _check_named(x: CheckInput, name: str, term: str | None, listed: list[str],
                 where: str) -> CheckResult:
    if x.draft is None:
        return _fail(name, "no report")
    if not term:
        return _ok(name)
    if not any(_mentions(item, term) or _mentions(term, item) for item in listed):
        return _fail(name, f"'{term}' is not among the report's listed items {listed}")
    if not _mentions(where, term):
        return _fail(name, f"'{term}' is listed but never named in the title, summary or arms")
    return _ok(name)


def check_condition_consistent(x: CheckInput) -> CheckResult:
    d = x.draft
    term = x.chosen.get("condition")
    where = f"{d.title}\n{d.brief_summary}" if d else ""
    return _check_named(x, "condition_consistent", term, d.diseases if d else [], where)


def check_intervention_consistent(x: CheckInput) -> CheckResult:
    d = x.draft
    term = x.chosen.get("intervention")
    where = (f"{d.title}\n{d.brief_summary}\n" + "\n".join(a.description for a in d.arms)) if d else ""
    return _check_named(x, "intervention_consistent", term, d.drugs if d else [], where)


def check_eligibility_wellformed(x: CheckInput) -> CheckResult:
    d = x.draft
    if d is None:
        return _fail("eligibility_wellformed", "no report")
    inc = [c for c in d.inclusion_criteria if c.strip()]
    exc = [c for c in d.exclusion_criteria if c.strip()]
    if not inc or not exc:
        return _fail("eligibility_wellformed", "needs both inclusion and exclusion criteria")
    both = {c.strip().lower() for c in inc} & {c.strip().lower() for c in exc}
    if both:
        return _fail("eligibility_wellformed", f"criterion both included and excluded: {both.pop()}")
    lo, hi = d.minimum_age_years, d.maximum_age_years
    if hi is not None and lo > hi:
        return _fail("eligibility_wellformed", f"minimum age {lo} > maximum age {hi}")
    for c in inc:
        ages = [int(a) for rx in _criterion_age_patterns(c) for m in rx.finditer(c)
                for a in m.groups() if a]
        for age in ages:
            if age > 120 or age < lo or (hi is not None and age > hi):
                return _fail("eligibility_wellformed",
                             f"criterion '{c[:80]}' names age {age}, outside {lo}-{hi or 'no limit'}")
    return _ok("eligibility_wellformed")


def check_no_nct_id(x: CheckInput) -> CheckResult:
    if x.draft is None:
        return _fail("no_nct_id", "no report")
    found = sorted(set(NCT_ID.findall(x.draft.model_dump_json())))
    if found:
        return _fail("no_nct_id", f"the report names trial id(s) {', '.join(found)}; a synthetic "
                     "trial must carry none")
    return _ok("no_nct_id")


def ngram_overlap(text: str, source: str, n: int) -> float:
    """Share of the text's word n-grams that occur verbatim in the source."""
    t, s = tokens(text), tokens(source)
    grams = {tuple(t[i:i + n]) for i in range(len(t) - n + 1)}
    if not grams:
        return 0.0
    src = {tuple(s[i:i + n]) for i in range(len(s) - n + 1)}
    return len(grams & src) / len(grams)


def longest_shared_run(text: str, source: str, n: int) -> int:
    """Words in the longest verbatim run the text shares with the source (0 under n words)."""
    t, s = tokens(text), tokens(source)
    src = {tuple(s[i:i + n]) for i in range(len(s) - n + 1)}
    best = run = 0
    for i in range(len(t) - n + 1):
        run = run + 1 if tuple(t[i:i + n]) in src else 0
        best = max(best, run)
    return best + n - 1 if best else 0


def check_no_verbatim_copy(x: CheckInput) -> CheckResult:
    """A long report can hide a copied paragraph under the overlap share: both are limited."""
    if x.draft is None:
        return _fail("no_verbatim_copy", "no report")
    prose = x.draft.prose()
    for e in x.evidence:
        share = ngram_overlap(prose, e.text, x.copy_ngram)
        if share > x.copy_max_overlap:
            return _fail("no_verbatim_copy", f"{share:.0%} of the report's {x.copy_ngram}-word "
                         f"sequences are copied from one retrieved trial; rewrite in new words")
        span = longest_shared_run(prose, e.text, x.copy_ngram)
        if span > x.copy_max_span:
            return _fail("no_verbatim_copy", f"a {span}-word passage is copied verbatim from a "
                         "retrieved trial; rewrite it in new words")
    return _ok("no_verbatim_copy")


def check_not_copied_from_corpus(x: CheckInput) -> CheckResult:
    """The retrieved-evidence copy check, against every real trial (an index, not a scan)."""
    if x.draft is None:
        return _fail("not_copied_from_corpus", "no report")
    if x.corpus is None:
        return _skip("not_copied_from_corpus", "no corpus index was given to this run")
    real, _ = x.corpus.real_ids(x.draft.model_dump_json())  # unknown ids: check_no_nct_id
    top = x.corpus.copy_matches(x.draft.prose(), top=1)
    problems = [f"names real trial id(s) {', '.join(real)}"] if real else []
    if top and top[0].share > x.copy_max_overlap:
        problems.append(f"{top[0].share:.0%} of its {x.corpus.n}-word sequences are copied from "
                        f"real trial {top[0].nctid}")
    if problems:
        return _fail("not_copied_from_corpus", "; ".join(problems) + "; a synthetic trial must "
                     "name no real trial and be written in new words")
    return _ok("not_copied_from_corpus")


CHECKS: list[Callable[[CheckInput], CheckResult]] = [
    check_rationale_valid,
    check_rationale_cites_evidence,
    check_schema_valid,
    check_label_matches,
    check_phase_consistent,
    check_condition_consistent,
    check_intervention_consistent,
    check_eligibility_wellformed,
    *DESIGN_CHECKS,
    check_results_only_in_outcome,
    check_no_nct_id,
    check_no_verbatim_copy,
    check_not_copied_from_corpus,
]


def run_checks(x: CheckInput) -> list[CheckResult]:
    return [check(x) for check in CHECKS]
