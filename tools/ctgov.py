"""Real ClinicalTrials.gov records (legacy AllPublicXML) as `SyntheticTrial`-shaped records.

Why: the critic is calibrated on, and its judge studies are run on, real trials. Shown in the
same shape as a synthetic report, a real trial can be judged with the same prompt. The outcome is
never read from the registry: `overall_status`, `why_stopped` and `clinical_results` leak it, so
they stay as metadata on `RealRecord` (status / why_stopped) or are not read at all. Label and
outcome text are the caller's *claim* (`RealRecord.claiming`).

Old (1990s) records often lack fields the schema requires. Where the record itself says it
elsewhere (a "randomized, double-blind" summary, a PDQ "OBJECTIVES: I." list, "PROJECTED ACCRUAL")
the field is derived and named in `RealRecord.derived`; pass `allow_derived=False` for registry
fields only. A record that still cannot be made valid is skipped with a counted reason.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError
from trialwright.tools.schema import Arm, Design, Label, Outcome, SyntheticTrial
from trialwright.tools.trials import PHASES, DataError, normalise_phase

MAX_ITEMS = 8  # schema: ≤ 8 inclusion / exclusion criteria
CRITERION_CHARS = 240


class SkipRecord(ValueError):
    """This record cannot be made a valid trial; the message is the counted reason."""


class RealRecord(BaseModel):
    """A real trial in the report shape, plus outcome-leaking metadata kept *outside* the trial."""

    nctid: str
    trial: SyntheticTrial = Field(
        description="label and outcome_summary are the caller's claim, not the registry's")
    status: str = ""  # overall_status: leaks the outcome, never show it to a model
    why_stopped: str = ""  # leaks the outcome, never show it to a model
    enrollment_type: str = ""  # "Actual" / "Anticipated" (a low actual count can hint at failure)
    top_label: Label | None = None  # TOP's outcome label, where the trial is in TOP
    derived: tuple[str, ...] = ()  # fields not copied from their own registry element
    source: str = ""  # file[:line]

    def claiming(self, label: Label, outcome_summary: str | None = None) -> RealRecord:
        """The same real trial claiming `label`, with a consistent outcome text by default."""
        text = outcome_summary or claimed_outcome(self.trial, label, self.nctid)
        trial = SyntheticTrial.model_validate(
            {**self.trial.model_dump(), "label": label, "outcome_summary": text})
        return self.model_copy(update={"trial": trial})


@dataclass
class LoadResult:
    records: list[RealRecord]
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return len(self.records) + sum(self.skipped.values())

    @property
    def parse_rate(self) -> float:
        return len(self.records) / self.total if self.total else 0.0


# --- claimed outcome texts ---------------------------------------------------------------------
# Mirrored pairs: template i for success and for failure differ only in the direction of the
# claim, so a parity pair is the same text but for the outcome.
_CLAIMS: dict[int, tuple[str, ...]] = {
    1: ("The trial met its primary endpoint ({m}). The prespecified success criterion was "
        + "reached and no new safety concerns emerged.",
        "Primary endpoint met ({m}): {d} showed the prespecified, statistically significant "
        + "benefit, and the safety profile was acceptable.",
        "The study achieved its primary outcome ({m}); the results support further development "
        + "of {d} in {c}."),
    0: ("The trial did not meet its primary endpoint ({m}). The prespecified success criterion "
        + "was not reached, although no new safety concerns emerged.",
        "Primary endpoint not met ({m}): {d} showed no statistically significant benefit, "
        + "although the safety profile was acceptable.",
        "The study failed to achieve its primary outcome ({m}); the results do not support "
        + "further development of {d} in {c}."),
}


def claimed_outcome(trial: SyntheticTrial, label: Label, key: str) -> str:
    """An outcome text claiming `label` about the trial's own primary outcome (template by key)."""
    i = zlib.crc32(key.encode()) % len(_CLAIMS[label])  # stable across runs, unlike hash()
    text = _CLAIMS[label][i].format(m=clip(trial.primary_outcome.measure.rstrip("."), 150),
                                    d=clip(trial.drugs[0], 60), c=clip(trial.diseases[0], 60))
    return clip(text, _max_len("outcome_summary"))


# --- text helpers --------------------------------------------------------------------------------
def norm(text: str | None) -> str:
    return " ".join((text or "").split())


def clip(text: str, limit: int) -> str:
    """Cut at the last sentence end (or else word) that fits; a word cut ends with '…'."""
    text = norm(text)
    if len(text) <= limit:
        return text
    head = text[:limit + 1]
    ends = [m.end() for m in re.finditer(r"[.;!?](?=\s)", head)]
    if ends and ends[-1] >= limit * 0.5:  # a sentence end that keeps at least half
        return head[:ends[-1]].strip()
    cut = head[:limit].rsplit(" ", 1)[0] if " " in head[:limit] else head[:limit - 1]
    return cut[:limit - 1].rstrip(" ,;:") + "…"


def _max_len(name: str, model: type[BaseModel] = SyntheticTrial) -> int:
    return next(m.max_length for m in model.model_fields[name].metadata if hasattr(m, "max_length"))


# --- design vocabulary ---------------------------------------------------------------------------
_MODELS = {"single": "Single Group Assignment", "parallel": "Parallel Assignment",
           "crossover": "Crossover Assignment", "cross-over": "Crossover Assignment",
           "sequential": "Sequential Assignment", "factorial": "Factorial Assignment"}
_MASKS = {"none": "None (Open Label)", "open": "None (Open Label)", "single": "Single",
          "double": "Double", "triple": "Triple", "quadruple": "Quadruple"}
_PURPOSES = {p.lower(): p for p in Design.model_fields["primary_purpose"].annotation.__args__}
_ARM_TYPES = {t.lower(): t for t in Arm.model_fields["type"].annotation.__args__}
_ARM_TYPES["sham comparator"] = "Placebo Comparator"  # a sham plays the placebo's role
_COMPARATIVE = re.compile(r"\bplacebo|\bcompar(?:e|ed|es|ing|ison)\b|\bversus\b|\bvs\.?\s|"
                          r"\bcontrol|\barms?\b|\bcross-?over\b", re.IGNORECASE)
_RANDOM = re.compile(r"\brandomi[sz](?:ed|ation)\b|\brandomly\b|placebo[- ]controlled",
                     re.IGNORECASE)
_PLACEBO = re.compile(r"\bplacebo\b|\bsham\b|\bvehicle\b", re.IGNORECASE)


def _allocation(raw: str) -> str:
    key = raw.strip().lower().replace(" ", "-")
    if key in ("randomized", "randomised"):
        return "Randomized"
    if key in ("non-randomized", "nonrandomized", "non-randomised"):
        return "Non-Randomized"
    if key == "n/a":
        return "N/A"
    raise SkipRecord(f"unknown allocation {raw!r}")


def _first_word(raw: str, table: dict[str, str], what: str) -> str:
    word = raw.strip().lower().split(" ")[0] if raw.strip() else ""
    if word not in table:  # "Double Blind (Subject, Investigator)" -> "double"
        raise SkipRecord(f"unknown {what} {raw!r}")
    return table[word]


def _design(root: ET.Element, text: str, n_arms: int, derived: list[str]) -> Design:
    """Registry design fields, legacy spellings mapped; missing ones derived from the record."""
    info = {k: norm(root.findtext(f"study_design_info/{k}")) for k in
            ("allocation", "intervention_model", "masking", "primary_purpose")}
    alloc = _allocation(info["allocation"]) if info["allocation"] else None
    model = _first_word(info["intervention_model"], _MODELS, "intervention model") \
        if info["intervention_model"] else None
    mask = _first_word(info["masking"], _MASKS, "masking") if info["masking"] else None
    purpose = _PURPOSES.get(info["primary_purpose"].lower())
    if info["primary_purpose"] and not purpose:
        raise SkipRecord(f"unknown primary purpose {info['primary_purpose']!r}")
    if alloc is None:
        if re.search(r"\bnon-?randomi[sz]ed\b", text, re.IGNORECASE):
            alloc = "Non-Randomized"
        elif _RANDOM.search(text):
            alloc = "Randomized"  # placebo-controlled trials of this era are randomised
        elif model == "Single Group Assignment" or n_arms == 1 or not _COMPARATIVE.search(text):
            alloc = "N/A"  # nothing random, no control, no comparison: one group
        derived.append("design.allocation")
    if model is None:
        if re.search(r"\bcross-?over\b", text, re.IGNORECASE):
            model = "Crossover Assignment"
        elif re.search(r"\bfactorial\b", text, re.IGNORECASE):
            model = "Factorial Assignment"
        elif alloc == "Randomized" or n_arms >= 2:
            model = "Parallel Assignment"
        elif alloc in ("N/A", "Non-Randomized") or n_arms == 1:
            model = "Single Group Assignment"
        derived.append("design.intervention_model")
    if mask is None:
        for pattern, value in ((r"quadruple[- ](blind|mask)", "Quadruple"),
                               (r"triple[- ](blind|mask)", "Triple"),
                               (r"double[- ]?(blind|mask)", "Double"),
                               (r"single[- ](blind|mask)", "Single"),
                               (r"open[- ]label|unblinded|unmasked", "None (Open Label)")):
            if re.search(pattern, text, re.IGNORECASE):
                mask = value
                break
        else:  # a single-arm trial, or one without a word on placebo or blinding, is open label
            mask = "None (Open Label)" if model == "Single Group Assignment" or not re.search(
                r"placebo|blind|mask|sham|dummy", text, re.IGNORECASE) else None
        derived.append("design.masking")
    for name, value in (("allocation", alloc), ("intervention_model", model), ("masking", mask),
                        ("primary_purpose", purpose)):
        if value is None:
            raise SkipRecord(f"missing {name}")
    return Design(allocation=alloc, intervention_model=model, masking=mask,  # type: ignore[arg-type]
                  primary_purpose=purpose)  # type: ignore[arg-type]


# --- arms, drugs, outcome, ages ------------------------------------------------------------------
def _drugs(root: ET.Element) -> tuple[list[str], dict[str, list[str]]]:
    """Drug/Biological intervention names (studied drugs before placebo, ≤4), names by arm label."""
    names: dict[str, str] = {}
    by_arm: dict[str, list[str]] = {}
    for iv in root.findall("intervention"):
        name = norm(iv.findtext("intervention_name"))
        if not name:
            continue
        for arm in iv.findall("arm_group_label"):
            by_arm.setdefault(norm(arm.text), []).append(name)
        if norm(iv.findtext("intervention_type")).lower() in ("drug", "biological"):
            names.setdefault(name.lower(), name)
    drugs = sorted(names.values(), key=lambda n: bool(_PLACEBO.search(n)))  # stable
    if not drugs:
        raise SkipRecord("no drug or biological intervention")
    if all(_PLACEBO.search(d) for d in drugs):
        raise SkipRecord("only placebo among drug interventions")
    return drugs[:4], by_arm


def _arms(root: ET.Element, by_arm: dict[str, list[str]], derived: list[str]) -> list[Arm]:
    arms = []
    for g in root.findall("arm_group"):
        label = norm(g.findtext("arm_group_label"))
        kind = _ARM_TYPES.get(norm(g.findtext("arm_group_type")).lower(), "Other")
        desc = norm(g.findtext("description"))
        if not desc and by_arm.get(label):
            desc = "Receives " + ", ".join(by_arm[label]) + "."
            derived.append("arms.description")
        arms.append(Arm(label=clip(label or kind, 80), type=kind, description=clip(desc, 240)))
    return arms


def _pick_arms(arms: list[Arm]) -> list[Arm]:
    """≤3 arms: the first arm of each type first (a placebo arm matters), in registry order."""
    first = {a.type: i for i, a in reversed(list(enumerate(arms)))}
    order = sorted(range(len(arms)), key=lambda i: (first[arms[i].type] != i, i))[:3]
    return [arms[i] for i in sorted(order)]


_OUTLINE_ARM = re.compile(
    r"(?m)^\s*(?:-\s*)?((?:Arm|Regimen|Group) [IVX\d]+|(?:Arm|Regimen) [A-D])\s*:\s*")
_NO_TREATMENT = re.compile(r"\bobservation\b|\bno (?:further )?(?:treatment|therapy)\b",
                           re.IGNORECASE)


def _outline_arms(description: str) -> list[Arm]:
    """PDQ outlines list arms ("Arm I: Patients receive …"): one Arm each, type from its words."""
    heads = list(_OUTLINE_ARM.finditer(description))
    arms: dict[str, Arm] = {}
    for h, nxt in zip(heads, [*heads[1:], None], strict=False):
        body = norm(re.split(r"\n\s*\n", description[h.end():nxt.start() if nxt else None])[0])
        kind = ("Placebo Comparator" if _PLACEBO.search(body) else
                "No Intervention" if _NO_TREATMENT.search(body) else "Experimental")
        arms.setdefault(h.group(1), Arm(label=h.group(1), type=kind, description=clip(body, 240)))
    return list(arms.values()) if len(arms) >= 2 else []


def _inferred_arms(drugs: list[str], design: Design, text: str) -> list[Arm]:
    """Arms of a record without <arm_group>, only where the design leaves no doubt."""
    active = [d for d in drugs if not _PLACEBO.search(d)]
    placebo = [d for d in drugs if _PLACEBO.search(d)]
    if not placebo and re.search(r"placebo", text, re.IGNORECASE):  # "placebo-controlled" only
        placebo = ["placebo"]
    if design.intervention_model == "Single Group Assignment" and not placebo:
        return [Arm(label=clip(" + ".join(active), 80), type="Experimental",
                    description=clip("All participants receive " + ", ".join(active) + ".", 240))]
    if placebo and design.allocation == "Randomized" and len(active) == 1 and \
            design.intervention_model in ("Parallel Assignment", "Crossover Assignment"):
        return [Arm(label=clip(active[0], 80), type="Experimental",
                    description=clip(f"Participants receive {active[0]}.", 240)),
                Arm(label="Placebo", type="Placebo Comparator",
                    description=clip(f"Participants receive {placebo[0]}.", 240))]
    raise SkipRecord("no arm groups (arms cannot be inferred)")


def _objective(text: str) -> str | None:
    """The first stated objective / primary endpoint of a record without <primary_outcome>."""
    m = re.search(r"OBJECTIVES?:\s*(?:I\.|1\.|-)?\s*(.+?)(?=\s+(?:II\.|2\.|OUTLINE:|PROJECTED)|$)",
                  text)
    if not m:
        m = re.search(r"\bprimary (?:end ?point|outcome|objective|aim)s?\b[^.]*?\b"
                      r"(?:is|are|will be|was)\s+(?:to\s+)?([^.]{10,})\.", text, re.IGNORECASE)
    return clip(m.group(1), 160) if m else None


def _outcome(root: ET.Element, text: str, derived: list[str]) -> Outcome:
    po = root.find("primary_outcome")
    measure = norm(po.findtext("measure")) if po is not None else ""
    frame = norm(po.findtext("time_frame")) if po is not None else ""
    if not measure:
        measure = _objective(text) or ""
        if not measure:
            raise SkipRecord("missing primary outcome")
        derived.append("primary_outcome.measure")
    if not frame:
        frame = "Not stated in the registry record"
        derived.append("primary_outcome.time_frame")
    return Outcome(measure=clip(measure, 160), time_frame=clip(frame, 60))


def age_years(raw: str | None) -> int | None:
    """'18 Years' -> 18, '6 Months' -> 0, 'N/A' / empty -> None."""
    m = re.match(r"\s*(\d+(?:\.\d+)?)\s*(year|month|week|day|hour|minute)", raw or "",
                 re.IGNORECASE)
    if not m:
        return None
    per_year = {"year": 1, "month": 12, "week": 52, "day": 365, "hour": 8760, "minute": 525600}
    return int(float(m.group(1)) / per_year[m.group(2).lower()])


def _enrollment(root: ET.Element, text: str, derived: list[str]) -> int:
    raw = norm(root.findtext("enrollment"))
    if raw:
        try:
            return int(float(raw))
        except ValueError:
            raise SkipRecord("unreadable enrollment") from None
    m = re.search(r"(?:PROJECTED ACCRUAL:|a total of|approximately|up to)\D{0,40}?(\d[\d,]*)\s+"
                  r"(?:\w+\s+){0,3}?(?:patients|subjects|participants|volunteers|children|women|men)",
                  text, re.IGNORECASE)
    if not m:
        raise SkipRecord("missing enrollment")
    derived.append("enrollment")
    return int(m.group(1).replace(",", ""))


# --- eligibility criteria ------------------------------------------------------------------------
_HEADER = re.compile(r"^\s*(?:[-*•]\s*)?(?:[A-Za-z]+\s+){0,2}?(inclusion|exclusion)s?"
                     r"(?:\s+criteria)?\b(?:[^:\n]{0,40}:|[ \t]*$)", re.IGNORECASE | re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)]|[a-zA-Z][.)]|\(?[ivx]{1,4}[.)])\s+")
_CAPS_HEADER = re.compile(r"^[A-Z][A-Z0-9 /&,()-]+:?$")
_NEGATED = re.compile(r"^(?:[A-Z][a-z]+(?: [a-z]+)?:\s*)?(?:No|Not|Non)\s+")
_SECTION_PREFIX = re.compile(r"^[A-Z][A-Z /&-]{3,}:\s*")  # "DISEASE CHARACTERISTICS: "
# PDQ records flattened to one paragraph per section: items run on ("…metastatic Primary lesion
# …", "…blasts No active CNS leukemia"). Split before a sub-label, a "No"/"Not" or a capitalised
# word that follows a lower-case word or a bracket.
_PDQ_LABELS = ("Age", "Sex", "Performance status", "Life expectancy", "Hematopoietic", "Hepatic",
               "Renal", "Cardiovascular", "Pulmonary", "Neurologic", "Other", "Biologic therapy",
               "Chemotherapy", "Endocrine therapy", "Radiotherapy", "Surgery", "Menopausal status")
_RUN_ON = re.compile(r"(?<=[a-z0-9)\]%.]) (?=(?:" + "|".join(_PDQ_LABELS)
                     + r"):|No |Not |[A-Z][a-z]+ )")


def _items(block: str) -> list[str]:
    """Bullet lines (or blank-line paragraphs), continuation lines joined, headers dropped.

    Bullets under a negated lead-in ("No concomitant liver disease, e.g.:") keep its "No".
    """
    raw: list[tuple[str, bool]] = []  # (text, was a bullet)
    current: list[str] = []
    bulleted = blank = False
    for line in block.replace("\r", "").split("\n"):
        if not line.strip():
            blank = True
            continue
        bullet = _BULLET.match(line)
        if bullet or blank or not current or _CAPS_HEADER.match(line.strip()):
            if current:
                raw.append((norm(" ".join(current)), bulleted))
            current, bulleted = [line[bullet.end():] if bullet else line], bool(bullet)
        else:
            current.append(line)
        blank = False
    if current:
        raw.append((norm(" ".join(current)), bulleted))
    items: list[str] = []
    negated_lead = False
    for text, bullet in raw:
        if text.endswith(":"):  # a lead-in or sub-header; only a long one says something
            negated_lead = bool(_NEGATED.match(text))
            if len(text) > 80:
                items.append(text.rstrip(":"))
            continue
        if not bullet:
            negated_lead = False
        if not re.search(r"[A-Za-z0-9]", text) or _CAPS_HEADER.match(text) or \
                re.fullmatch(r"-{2,}.*-{2,}", text) or re.search(
                r"\bnot specified\.?$", text, re.IGNORECASE):
            continue
        negate = negated_lead and bullet and not _NEGATED.match(text)
        items.append(f"No {text[0].lower()}{text[1:]}" if negate else text)
    return items


def split_criteria(text: str) -> tuple[list[str], list[str], bool]:
    """Inclusion and exclusion items (≤8 each, clipped) and whether exclusions were derived.

    Without an exclusion section (PDQ-style "DISEASE CHARACTERISTICS: … No prior chemotherapy"),
    the negated items become exclusions with the negation dropped ("Prior chemotherapy").
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    sections: dict[str, list[str]] = {"inclusion": [], "exclusion": []}
    heads = list(_HEADER.finditer(text))
    if heads:
        for h, nxt in zip(heads, [*heads[1:], None], strict=False):
            body = text[h.end():nxt.start() if nxt else len(text)]
            sections[h.group(1).lower()] += _items(body)
    else:
        items = [_SECTION_PREFIX.sub("", i) for i in _items(text)]
        if "CHARACTERISTICS:" in text:
            items = [part for i in items for part in (_RUN_ON.split(i) if len(i) > 160 else [i])]
        sections["inclusion"] = [i for i in items
                                 if i and not re.search(r"\bnot specified\.?$", i, re.IGNORECASE)]
    derived = False
    if not sections["exclusion"]:
        keep = []
        for item in sections["inclusion"]:
            m = _NEGATED.match(item)
            if m and len(item) > m.end() + 3:
                rest = item[m.end():]
                sections["exclusion"].append(rest[0].upper() + rest[1:])
            else:
                keep.append(item)
        sections["inclusion"], derived = keep, bool(sections["exclusion"])
    return ([clip(i, CRITERION_CHARS) for i in sections["inclusion"][:MAX_ITEMS]],
            [clip(i, CRITERION_CHARS) for i in sections["exclusion"][:MAX_ITEMS]], derived)


# --- one record ----------------------------------------------------------------------------------
def parse_study(xml: str | ET.Element, label: Label, outcome_summary: str | None = None, *,
                top_label: Label | None = None, source: str = "",
                allow_derived: bool = True) -> RealRecord:
    """One <clinical_study> as a RealRecord claiming `label`; SkipRecord(reason) if unusable.

    Reads no outcome section: overall_status / why_stopped go to metadata only, clinical_results
    is never read.
    """
    root = ET.fromstring(xml) if isinstance(xml, str) else xml
    nctid = norm(root.findtext("id_info/nct_id"))
    if not nctid:
        raise SkipRecord("missing nct_id")
    title = norm(root.findtext("brief_title"))
    summary = norm(root.findtext("brief_summary/textblock"))
    if not title or not summary:
        raise SkipRecord("missing brief_title or brief_summary")
    phase = normalise_phase(root.findtext("phase") or "")
    if phase not in PHASES:
        raise SkipRecord(f"phase {phase or 'missing'!r} is not a Phase")
    diseases = list(dict.fromkeys(norm(c.text) for c in root.findall("condition") if norm(c.text)))
    if not diseases:
        raise SkipRecord("no condition")
    # Text the record says about itself (no status/results sections): source of derived fields.
    text = " ".join(norm(root.findtext(p)) for p in ("official_title", "brief_title",
                                                     "brief_summary/textblock",
                                                     "detailed_description/textblock"))
    derived: list[str] = []
    drugs, by_arm = _drugs(root)
    arms = _arms(root, by_arm, derived)
    if len(arms) > 3:
        arms = _pick_arms(arms)
        derived.append("arms.truncated")
    design = _design(root, text, len(arms), derived)
    if not arms:
        arms = _pick_arms(_outline_arms(root.findtext("detailed_description/textblock") or "")) \
            or _inferred_arms(drugs, design, text)
        derived.append("arms")
    outcome = _outcome(root, text, derived)
    enrollment = _enrollment(root, text, derived)
    min_age = age_years(root.findtext("eligibility/minimum_age")) or 0
    max_age = age_years(root.findtext("eligibility/maximum_age"))
    if max_age is not None and max_age < min_age:
        raise SkipRecord("maximum age below minimum age")
    inclusion, exclusion, derived_exc = split_criteria(
        root.findtext("eligibility/criteria/textblock") or "")
    if derived_exc:
        derived.append("exclusion_criteria")
    if not inclusion or not exclusion:
        raise SkipRecord(f"no {'inclusion' if not inclusion else 'exclusion'} criteria")
    if derived and not allow_derived:
        raise SkipRecord(f"needs derived {derived[0]}")
    draft = {"title": clip(title, _max_len("title")),
             "brief_summary": clip(summary, _max_len("brief_summary")), "phase": phase,
             "diseases": diseases[:4], "drugs": drugs, "design": design.model_dump(),
             "arms": [a.model_dump() for a in arms], "primary_outcome": outcome.model_dump(),
             "enrollment": enrollment, "minimum_age_years": min_age, "maximum_age_years": max_age,
             "inclusion_criteria": inclusion, "exclusion_criteria": exclusion,
             "label": label, "outcome_summary": outcome_summary or "-"}
    try:
        trial = SyntheticTrial.model_validate(draft)
        if outcome_summary is None:  # the consistent claim needs the validated measure
            trial = SyntheticTrial.model_validate(
                {**draft, "outcome_summary": claimed_outcome(trial, label, nctid)})
    except ValidationError as e:
        err = e.errors()[0]
        raise SkipRecord(f"invalid {'.'.join(map(str, err['loc'][:1]))} ({err['type']})") from e
    return RealRecord(nctid=nctid, trial=trial, status=norm(root.findtext("overall_status")),
                      why_stopped=norm(root.findtext("why_stopped/textblock")
                                       or root.findtext("why_stopped")),
                      enrollment_type=(root.find("enrollment").get("type", "")
                                       if root.find("enrollment") is not None else ""),
                      top_label=top_label, derived=tuple(dict.fromkeys(derived)), source=source)


# --- files ---------------------------------------------------------------------------------------
def iter_xml(path: Path | str) -> Iterator[tuple[str, ET.Element]]:
    """(source, <clinical_study> root) from records.jsonl, a folder of .xml files or one .xml."""
    path = Path(path)
    files = sorted(path.glob("*.xml")) if path.is_dir() else [path]
    for file in files:
        try:
            if file.suffix == ".xml":
                yield str(file), _root(ET.parse(file).getroot(), file, None)
                continue
            with file.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        xml = json.loads(line)["xml"]
                        yield f"{file}:{n}", _root(ET.fromstring(xml), file, n)
                    except (json.JSONDecodeError, KeyError, TypeError) as e:
                        raise DataError(file, f"line {n} is not a JSON object with an 'xml' field "
                                              f"({type(e).__name__}: {e})", n) from e
                    except ET.ParseError as e:
                        raise DataError(file, f"line {n}: malformed XML ({e})", n, "xml") from e
        except ET.ParseError as e:
            raise DataError(file, f"malformed XML ({e})") from e
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(file, f"cannot read the file ({e})") from e


def _root(root: ET.Element, file: Path, line: int | None) -> ET.Element:
    if root.tag != "clinical_study":
        raise DataError(file, f"root element is <{root.tag}>, not <clinical_study>", line)
    return root


def top_labels(index_csv: Path | str) -> dict[str, Label]:
    """nctid -> TOP label from the sample's index.csv ("0;0": files agree; conflicts left out)."""
    out: dict[str, Label] = {}
    with Path(index_csv).open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            labels = {v for v in (row.get("top_label") or "").split(";") if v}
            if labels in ({"0"}, {"1"}):
                out[row["nct_id"]] = int(labels.pop())  # type: ignore[assignment]
    return out


def load_records(path: Path | str, label: Label | Literal["top"] = "top", *,
                 index_csv: Path | str | None = None, allow_derived: bool = True) -> LoadResult:
    """Every usable record at `path`, each claiming `label` (or its TOP label: "top").

    With "top", records without a TOP label are skipped ("no top_label"). Skips are counted by
    reason; a file that cannot be read raises DataError naming it (and the line).
    """
    path = Path(path)
    index = Path(index_csv) if index_csv else (path if path.is_dir() else path.parent) / "index.csv"
    labels = top_labels(index) if index.is_file() else {}
    result = LoadResult(records=[])
    for source, root in iter_xml(path):
        nctid = norm(root.findtext("id_info/nct_id"))
        claim = labels.get(nctid) if label == "top" else label
        if claim is None:
            result.skipped["no top_label"] += 1
            continue
        try:
            result.records.append(parse_study(root, claim, top_label=labels.get(nctid),
                                              source=source, allow_derived=allow_derived))
        except SkipRecord as e:
            result.skipped[str(e)] += 1
        except (ValueError, TypeError, AttributeError) as e:  # one odd record never ends a load
            result.skipped[f"unexpected {type(e).__name__}"] += 1
    return result
