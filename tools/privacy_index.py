"""Privacy gate at corpus scale: real NCT ids and verbatim copies, checked against an index.

`tools.checks` compares a report with the few trials retrieved for it. A report can also copy a
real trial that was never retrieved, or name a real trial's id; checking that by scanning the
whole corpus per report costs O(corpus). This index makes it a few lookups:

* every real trial's label-blind text is cut into word n-grams (the same tokens and n as
  `tools.checks.ngram_overlap`), each n-gram hashed to 64 bits;
* the index is an inverted file in three numpy arrays: the sorted distinct n-gram hashes
  (``keys``), CSR ``offsets`` into ``postings`` (the trials holding each n-gram, each once);
* a report's overlap with trial t is |report n-grams in t| / |report n-grams| — exactly
  `ngram_overlap(report, text_t, n)` up to 64-bit hash collisions — computed for every trial at
  once with a ``searchsorted`` and a ``bincount``;
* real NCT ids are a sorted integer array (``NCT01234567`` -> 1234567).

Built once per corpus (keyed by a fingerprint of the ids, texts and n) and persisted as ``.npy``
files that open memory-mapped, so a batch or a new process pays no rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trialwright.tools.settings import Settings
    from trialwright.tools.trials import Trial

FORMAT = 1
_WORD = re.compile(r"[a-z0-9]+")  # words, for every n-gram comparison (checks, index, eval)
_NCT = re.compile(r"\bNCT(\d{8})\b", re.IGNORECASE)
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial's base
_ARRAYS = ("keys", "offsets", "postings", "nct_numbers")


@dataclass(frozen=True)
class CopyMatch:
    nctid: str
    share: float  # of the report's distinct n-grams that occur in this trial
    shared: int
    total: int


@dataclass
class PrivacyFinding:
    real_ids: list[str] = field(default_factory=list)  # NCT ids in the text that are real trials
    other_ids: list[str] = field(default_factory=list)  # NCT-shaped ids not in the corpus
    matches: list[CopyMatch] = field(default_factory=list)  # most-copied trials, best first
    max_overlap: float = 0.2

    @property
    def copied(self) -> CopyMatch | None:
        best = self.matches[0] if self.matches else None
        return best if best and best.share > self.max_overlap else None

    @property
    def passed(self) -> bool:
        return not self.real_ids and not self.other_ids and self.copied is None

    def message(self) -> str:
        parts = []
        if self.real_ids:
            parts.append(f"names real trial id(s) {', '.join(self.real_ids)}")
        if self.other_ids:
            parts.append(f"names trial id(s) {', '.join(self.other_ids)}")
        if (c := self.copied) is not None:
            parts.append(f"{c.share:.0%} of its word sequences are copied from {c.nctid}")
        return "; ".join(parts)


class _WordHasher:
    """64-bit hash per word, cached: a word is hashed once however often it occurs."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def __call__(self, words: list[str]) -> np.ndarray:
        cache = self._cache
        out = []
        for w in words:
            h = cache.get(w)
            if h is None:
                h = cache[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(),
                                              "little")
            out.append(h)
        return np.fromiter(out, dtype=np.uint64, count=len(out))


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Polynomial rolling hash of every window of n consecutive words (uint64, wrapping)."""
    m = len(word_hashes) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    h = word_hashes[:m].copy()
    with np.errstate(over="ignore"):
        for j in range(1, n):
            h *= _MULT
            h += word_hashes[j:j + m]
        h ^= h >> np.uint64(29)  # mix the high bits down (a splitmix-style finaliser)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return h


def _nct_number(nctid: str) -> int:
    m = _NCT.fullmatch(nctid.strip())
    return int(m.group(1)) if m else -1


def corpus_fingerprint(items: Sequence[tuple[str, str]], n: int, sample: int) -> str:
    h = hashlib.sha256(f"privacy-index/{FORMAT}/n={n}/sample={sample}\0".encode())
    for nctid, text in items:
        h.update(nctid.encode())
        h.update(b"\0")
        h.update(hashlib.sha256(text.encode()).digest())
    return h.hexdigest()


def trial_items(trials: Iterable[Trial]) -> list[tuple[str, str]]:
    """(nctid, full label-blind text) for each real trial — all of its criteria, not the cut
    that evidence shows a model."""
    return [(t.nctid, t.text(max_criteria_chars=10**9)) for t in trials]


class PrivacyIndex:
    """Inverted n-gram index over a real corpus; see the module docstring."""

    def __init__(self, keys: np.ndarray, offsets: np.ndarray, postings: np.ndarray,
                 nct_numbers: np.ndarray, ids: list[str], *, n: int, sample: int = 1,
                 fingerprint: str = "", build_s: float = 0.0):
        self.keys, self.offsets, self.postings = keys, offsets, postings
        self.nct_numbers = nct_numbers  # sorted, for id lookups
        self.ids, self.n, self.sample = ids, n, sample
        self.fingerprint, self.build_s = fingerprint, build_s
        self.folder: Path | None = None  # where it was loaded from (workers re-open it there)
        self._hash = _WordHasher()

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, items: Sequence[tuple[str, str]], *, n: int = 12, sample: int = 1) -> PrivacyIndex:
        """Index (nctid, text) pairs. `sample` > 1 keeps only n-grams whose hash is 0 mod
        `sample` on both sides (smaller index, overlap becomes an unbiased estimate)."""
        if n < 1 or sample < 1:
            raise ValueError(f"n and sample must be >= 1, got n={n}, sample={sample}")
        t0 = time.perf_counter()
        hasher = _WordHasher()
        chunks: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        for i, (_, text) in enumerate(items):
            grams = np.unique(_ngram_hashes(hasher(tokens(text)), n))
            if sample > 1:
                grams = grams[grams % np.uint64(sample) == 0]
            chunks.append(grams)
            owners.append(np.full(len(grams), i, dtype=np.uint32))
        grams = np.concatenate(chunks) if chunks else np.empty(0, np.uint64)
        owner = np.concatenate(owners) if owners else np.empty(0, np.uint32)
        del chunks, owners
        order = np.argsort(grams, kind="stable")  # stable: postings stay in trial order
        grams, owner = grams[order], owner[order]
        del order
        starts = np.flatnonzero(np.r_[True, grams[1:] != grams[:-1]]) if len(grams) else \
            np.empty(0, np.int64)
        keys = grams[starts]
        offsets = np.r_[starts, len(grams)].astype(np.int64)
        ids = [nctid for nctid, _ in items]
        numbers = np.unique(np.array([_nct_number(x) for x in ids], dtype=np.int64))
        return cls(keys, offsets, owner, numbers[numbers >= 0], ids, n=n, sample=sample,
                   fingerprint=corpus_fingerprint(items, n, sample),
                   build_s=round(time.perf_counter() - t0, 3))

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path | str) -> Path:
        """Write atomically: a half-written index is never opened."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(self, name))
        (tmp / "ids.json").write_text(json.dumps(self.ids))
        (tmp / "meta.json").write_text(json.dumps({
            "format": FORMAT, "n": self.n, "sample": self.sample, "trials": len(self.ids),
            "fingerprint": self.fingerprint, "build_s": self.build_s}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder

    @classmethod
    def load(cls, folder: Path | str, mmap: bool = True) -> PrivacyIndex:
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder}: privacy index format {meta.get('format')}, expected {FORMAT}")
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None)
                  for name in _ARRAYS}
        index = cls(**arrays, ids=json.loads((folder / "ids.json").read_text()), n=meta["n"],
                    sample=meta["sample"], fingerprint=meta["fingerprint"],
                    build_s=meta.get("build_s", 0.0))
        index.folder = folder
        return index

    @classmethod
    def open_or_build(cls, items: Sequence[tuple[str, str]], cache_dir: Path | str, *,
                      n: int = 12, sample: int = 1) -> PrivacyIndex:
        """The persisted index for exactly this corpus and n, building it on first use."""
        fp = corpus_fingerprint(items, n, sample)
        folder = Path(cache_dir) / "privacy" / fp[:24]
        if (folder / "meta.json").exists():
            return cls.load(folder)
        index = cls.build(items, n=n, sample=sample)
        index.save(folder)
        return cls.load(folder)

    # -- queries --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(self, a).nbytes for a in _ARRAYS))

    def _report_grams(self, text: str) -> np.ndarray:
        grams = np.unique(_ngram_hashes(self._hash(tokens(text)), self.n))
        if self.sample > 1:
            grams = grams[grams % np.uint64(self.sample) == 0]
        return grams

    def _find(self, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per n-gram hash: its position in ``keys``, and whether it is there."""
        pos = np.searchsorted(self.keys, grams)
        hit = pos < len(self.keys)
        hit[hit] = np.asarray(self.keys[pos[hit]]) == grams[hit]
        return pos, hit

    def window_hits(self, text: str) -> np.ndarray:
        """Per window of n consecutive words of the text, in order: does any indexed trial hold
        it? (Copied spans need every window, so a sampled index refuses.)"""
        if self.sample > 1:
            raise ValueError(f"window_hits needs an index built with sample=1, not {self.sample}")
        return self._find(_ngram_hashes(self._hash(tokens(text)), self.n))[1]

    def copy_matches(self, text: str, top: int = 3) -> list[CopyMatch]:
        """The real trials sharing the largest share of the text's n-grams, best first."""
        grams = self._report_grams(text)
        if not len(grams) or not len(self.keys):
            return []
        pos, hit = self._find(grams)
        pos = pos[hit]
        if not len(pos):
            return []
        lo, hi = self.offsets[pos], self.offsets[pos + 1]
        lengths = hi - lo
        total = int(lengths.sum())
        # every posting of every found n-gram, gathered without a Python loop
        idx = np.repeat(lo - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(total)
        owners = np.asarray(self.postings[idx])
        counts = np.bincount(owners, minlength=0)
        best = np.argsort(counts)[::-1][:top]
        return [CopyMatch(nctid=self.ids[i], share=round(int(counts[i]) / len(grams), 4),
                          shared=int(counts[i]), total=len(grams))
                for i in best if counts[i] > 0]

    def real_ids(self, text: str) -> tuple[list[str], list[str]]:
        """NCT ids named in the text: (those of real trials in the corpus, the others)."""
        found = sorted({m.group(0).upper() for m in _NCT.finditer(text)})
        if not found:
            return [], []
        nums = np.array([int(x[3:]) for x in found], dtype=np.int64)
        real = np.isin(nums, np.asarray(self.nct_numbers))  # an id-less corpus: all unknown
        return ([x for x, r in zip(found, real, strict=True) if r],
                [x for x, r in zip(found, real, strict=True) if not r])

    def check(self, text: str, max_overlap: float = 0.2, top: int = 3) -> PrivacyFinding:
        real, other = self.real_ids(text)
        return PrivacyFinding(real_ids=real, other_ids=other,
                              matches=self.copy_matches(text, top), max_overlap=max_overlap)

    def stats(self) -> dict:
        return {"trials": len(self), "n": self.n, "sample": self.sample,
                "distinct_ngrams": len(self.keys), "postings": len(self.postings),
                "array_bytes": self.nbytes, "build_s": self.build_s}


def corpus_index(settings: Settings, trials: Iterable[Trial]) -> PrivacyIndex | None:
    """The generation loop's corpus index (built once per corpus into the cache), or None when
    `corpus_copy_check` is off."""
    if not settings.corpus_copy_check:
        return None
    return PrivacyIndex.open_or_build(trial_items(trials), settings.cache_dir,
                                      n=settings.copy_ngram)


__all__ = ["CopyMatch", "PrivacyFinding", "PrivacyIndex", "corpus_fingerprint", "corpus_index",
           "tokens", "trial_items"]

