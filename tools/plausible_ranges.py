"""What real trials of each phase enroll and how long their primary outcome runs, learned from
real registry records rather than guessed; the design checks compare a report with these bands.

A band is the [q, 1-q] quantile range widened by `slack` on both sides, so only reports far
outside what real trials do are refused. A phase with too few real trials gets no band (its check
is recorded as skipped) instead of a band drawn from a handful of trials.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from trialwright.tools.settings import Settings
from trialwright.tools.writer import write_json_atomic


class PhaseBand(BaseModel):
    enrollment: tuple[float, float]
    time_frame_days: tuple[float, float] | None = None
    n: int


class PlausibleRanges(BaseModel):
    source: str  # what the bands were learned from (file name and record count, no machine path)
    quantile: float
    slack: float
    bands: dict[str, PhaseBand]

    def for_phase(self, phase: str) -> PhaseBand | None:
        """The phase's own band; a combined phase ("phase 1/phase 2") spans both of its parts."""
        if phase in self.bands:
            return self.bands[phase]
        parts = [self.bands[p] for p in _parts(phase) if p in self.bands]
        if not parts:
            return None
        frames = [b.time_frame_days for b in parts if b.time_frame_days]
        return PhaseBand(enrollment=(min(b.enrollment[0] for b in parts), max(b.enrollment[1] for b in parts)),
                         time_frame_days=(min(f[0] for f in frames), max(f[1] for f in frames)) if frames else None,
                         n=sum(b.n for b in parts))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.model_dump(mode="json"))

    @classmethod
    def load(cls, path: Path) -> PlausibleRanges:
        return cls.model_validate(json.loads(path.read_text()))


def _parts(phase: str) -> list[str]:
    return [p.strip() for p in phase.split("/")] if "/" in phase else []


def learn_ranges(rows: Iterable[tuple[str, int | None, float | None]], *, source: str,
                 quantile: float = 0.01, slack: float = 2.0, min_trials: int = 20) -> PlausibleRanges:
    """Bands from (phase, enrollment, time-frame days) of real trials; None values are ignored."""
    enroll: dict[str, list[float]] = defaultdict(list)
    frames: dict[str, list[float]] = defaultdict(list)
    for phase, n, days in rows:
        if n is not None and n > 0:
            enroll[phase].append(float(n))
        if days is not None and days > 0:
            frames[phase].append(days)

    def band(values: list[float]) -> tuple[float, float]:
        lo, hi = np.quantile(values, [quantile, 1 - quantile])
        return round(float(lo) / slack, 1), round(float(hi) * slack, 1)

    bands = {}
    for phase, values in enroll.items():
        if len(values) < min_trials:
            continue
        f = frames.get(phase, [])
        bands[phase] = PhaseBand(enrollment=band(values), n=len(values),
                                 time_frame_days=band(f) if len(f) >= min_trials else None)
    return PlausibleRanges(source=source, quantile=quantile, slack=slack, bands=bands)


def registry_ranges(settings: Settings) -> PlausibleRanges | None:
    """Bands learned from the configured full registry records (registry values only: a field
    the parser had to derive from prose is not a measurement), cached by the file's hash."""
    from trialwright.tools.ctgov import load_records
    from trialwright.tools.design_checks import time_frame_days
    from trialwright.tools.versions import file_sha256

    path = settings.ctgov_records_path
    if not path.is_file():
        return None
    cache = settings.cache_dir / "ranges" / f"{file_sha256(path)[:16]}.json"
    if cache.is_file():
        return PlausibleRanges.load(cache)
    loaded = load_records(path, label=1)
    rows = [(r.trial.phase,
             None if "enrollment" in r.derived else r.trial.enrollment,
             None if any(d.startswith("primary_outcome") for d in r.derived)
             else time_frame_days(r.trial.primary_outcome.time_frame))
            for r in loaded.records]
    ranges = learn_ranges(rows, source=f"{path.name} ({len(loaded.records)} registry records)")
    ranges.save(cache)
    return ranges
