"""Calibrating the blinded quality judge on real trials: what does a real trial of each outcome
score? A synthetic report passes when it scores at least like the q-th percentile of real trials
of its own outcome, so the bar is the judge's own view of real registry entries, per label.

Cached per (judge model, checklist file hash, quantile) under the cache folder; named in every
verdict and in the run fingerprint; recomputed by `trialwright calibrate`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel
from trialwright.agents.common import AgentDeps, load_prompt
from trialwright.agents.quality_judge import (
    answers_of,
    ask_checklist,
    load_checklist,
    score_answers,
)
from trialwright.tools.schema import SyntheticTrial
from trialwright.tools.settings import Settings
from trialwright.tools.writer import write_json_atomic

if TYPE_CHECKING:
    from trialwright.tools.ctgov import RealRecord

# A label gets a bar of its own only from enough real trials of that label: a percentile of a
# handful is noise, and a noisy per-label bar makes the verdict depend on the claimed outcome
# (measured: 6 + 6 real trials gave bars 1.0 and 0.9 and a parity gap the judge did not have).
# Below that, both labels share one bar from all real trials; below MIN_POOLED, the fixed share.
MIN_PER_LABEL = 20
MIN_POOLED = 10


def thresholds_from(scores: dict[str, list[float]], quantile: float) -> dict[str, float]:
    """label -> bar: its own percentile with >= MIN_PER_LABEL trials, else the pooled one."""
    pooled = [x for v in scores.values() for x in v]
    out = {}
    for label in ("0", "1"):
        mine = scores.get(label, [])
        source = mine if len(mine) >= MIN_PER_LABEL else pooled if len(pooled) >= MIN_POOLED else None
        if source:
            out[label] = round(float(np.quantile(source, quantile)), 4)
    return out


class Calibration(BaseModel):
    id: str
    judge_model: str
    checklist: str
    checklist_sha256: str
    quantile: float
    fallback: float  # the fixed share used for a label without enough real trials
    thresholds: dict[str, float]  # label ("0"/"1") -> the real trials' q-th percentile score
    n: dict[str, int]
    unanswered: int
    source: str  # what was judged (file name and count; no machine path)
    scores: dict[str, list[float]]

    def threshold(self, label: int) -> float:
        # Derived from the stored scores, so the rule applies to calibrations cached earlier too.
        return thresholds_from(self.scores, self.quantile).get(str(label), self.fallback)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def judge_key(checklist: str) -> str:
    """What makes two calibrations comparable: the checklist file and the judge's prompt."""
    return f"{load_checklist(checklist).sha256[:8]}{load_prompt('quality_judge').sha256[:4]}"


def calibration_path(settings: Settings, judge_model: str, checklist: str) -> Path:
    name = f"{_slug(judge_model)}--{checklist}-{judge_key(checklist)}-q{settings.calibration_quantile:g}.json"
    return settings.cache_dir / "calibration" / name


def load_calibration(settings: Settings, judge_model: str, checklist: str) -> Calibration | None:
    path = calibration_path(settings, judge_model, checklist)
    if not path.is_file():
        return None
    return Calibration.model_validate(json.loads(path.read_text()))


async def calibrate(records: Sequence[tuple[str, SyntheticTrial, int]], deps: AgentDeps, *,
                    source: str) -> Calibration:
    """Judge real (id, record, label) triples blinded, exactly as the critic judges a report."""
    s, checklist = deps.settings, load_checklist(deps.rubric)
    scores: dict[str, list[float]] = {"0": [], "1": []}
    unanswered = 0
    for i, (_, record, label) in enumerate(records):
        value, _ = await ask_checklist(deps, checklist, record, seed=i)
        if value is None:
            unanswered += 1
            continue
        answers = answers_of(value, checklist)
        score, vetoed = score_answers(checklist, answers)
        scores[str(label)].append(0.0 if vetoed else score)  # a vetoed real trial scores as failing
    thresholds = thresholds_from(scores, s.calibration_quantile)
    cal_id = f"{deps.judge.model_id}:{checklist.name}:{judge_key(checklist.name)}:q{s.calibration_quantile:g}"
    return Calibration(id=cal_id, judge_model=deps.judge.model_id, checklist=checklist.name,
                       checklist_sha256=checklist.sha256, quantile=s.calibration_quantile,
                       fallback=s.quality_min_share, thresholds=thresholds,
                       n={k: len(v) for k, v in scores.items()}, unanswered=unanswered,
                       source=source, scores=scores)


def save_calibration(cal: Calibration, settings: Settings) -> Path:
    path = calibration_path(settings, cal.judge_model, cal.checklist)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, cal.model_dump(mode="json"))
    return path


def labelled_sample(records: Sequence[RealRecord], per_label: int, phase: str | None = None
                    ) -> list[tuple[str, SyntheticTrial, int]]:
    """Up to `per_label` real trials of each outcome (of `phase`), in file order, as
    (NCT id, record, label) for `calibrate`; failures first."""
    chosen: dict[int, list[tuple[str, SyntheticTrial, int]]] = {0: [], 1: []}
    for r in records:
        if (phase is None or r.trial.phase == phase) and len(chosen[r.trial.label]) < per_label:
            chosen[r.trial.label].append((r.nctid, r.trial, r.trial.label))
    return chosen[0] + chosen[1]


def describe_sample(sample: Sequence[tuple[str, SyntheticTrial, int]]) -> str:
    failures = sum(label == 0 for *_, label in sample)
    return f"{failures} failures + {len(sample) - failures} successes"


def attach_critic_references(deps: AgentDeps) -> AgentDeps:
    """The real-trial references the critic judges by: size bands from the registry records and
    the judge's calibration (when `trialwright calibrate` has made one for this judge/checklist).
    Absent ones stay None, and the checks and verdicts that need them say so."""
    from trialwright.tools.plausible_ranges import registry_ranges

    deps.ranges = registry_ranges(deps.settings)
    deps.calibration = load_calibration(deps.settings, deps.judge.model_id, deps.rubric)
    return deps
