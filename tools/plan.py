"""Plan a batch: N specs with an exact label ratio, phases from the real data's mix, and a
topic (condition + intervention) drawn from a real trial of the same phase and outcome.

Spec ids name their plan (`s{seed}-{plan hash}-{i}`): two plans never share an id, so their
records cannot merge in one run folder even when its run.json is lost."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence

from trialwright.tools.schema import Spec
from trialwright.tools.trials import PHASES, Trial


class PlanError(ValueError):
    pass


def plan_specs(trials: Sequence[Trial], n: int, *, seed: int = 0, phase: str | None = None,
               label_ratio: float = 0.5, condition: str | None = None,
               intervention: str | None = None) -> list[Spec]:
    if n < 1:
        raise PlanError("--n must be at least 1")
    if not 0 <= label_ratio <= 1:
        raise PlanError(f"--label-ratio must be within 0..1, got {label_ratio}")
    if phase is not None and phase not in PHASES:
        raise PlanError(f"unknown phase {phase!r}; expected one of: {', '.join(PHASES)}")
    if not trials:
        raise PlanError("no real trials to plan from (is the data folder configured?)")
    plan = plan_hash(trials, n, seed=seed, phase=phase, label_ratio=label_ratio,
                     condition=condition, intervention=intervention)
    rng = random.Random(seed)
    n_success = round(n * label_ratio)
    labels = [1] * n_success + [0] * (n - n_success)
    rng.shuffle(labels)
    mix = Counter(t.phase for t in trials)
    phases = [phase] * n if phase else rng.choices(list(mix), weights=list(mix.values()), k=n)
    pools: dict[tuple[str, int], list[Trial]] = {}
    for t in trials:
        pools.setdefault((t.phase, t.label), []).append(t)
    specs = []
    for i, (ph, label) in enumerate(zip(phases, labels, strict=True)):
        anchor = None
        if condition is None:
            pool = pools.get((ph, label)) or [t for t in trials if t.label == label] or list(trials)
            anchor = rng.choice(pool)
        specs.append(Spec(
            spec_id=f"s{seed}-{plan}-{i:05d}", phase=ph, label=label,  # type: ignore[arg-type]
            condition=condition or (anchor.diseases[0] if anchor else None),
            intervention=intervention or (anchor.drugs[0] if anchor and anchor.drugs else None),
            anchor_id=anchor.nctid if anchor else None, seed=seed * 1_000_003 + i))
    return specs


def plan_hash(trials: Sequence[Trial], n: int, **params: object) -> str:
    """8 hex digits of the plan: its parameters and the trials it draws topics from."""
    h = hashlib.sha256(json.dumps({"n": n, **params}, sort_keys=True).encode())
    for t in trials:
        h.update(json.dumps([t.nctid, t.phase, t.label, t.diseases, t.drugs]).encode())
    return h.hexdigest()[:8]
