"""Privacy-gate benchmark -> bench/results/privacy_gate.json.

The corpus-wide NCT-id and verbatim-copy checks (`tools.privacy_index`) at two scales:
the real TOP corpus (~3.2k trials) and 100k trials (the real ones padded with perturbed copies:
5 % of words substituted, 2 % dropped, new NCT ids). Per scale, in a fresh process: index build
time, peak memory, array and disk size, load time (memory-mapped), and per-report check latency
on 200 verbatim excerpts of real trials (must be flagged, with the right source) and 200 new
texts (must pass); and, for contrast, a scan per report (`tools.checks.ngram_overlap` against
every trial), measured on a slice and scaled to the corpus.

    python bench/privacy_gate.py [--scales 3285,100000] [--sample 1]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trialwright.tools.checks import ngram_overlap
from trialwright.tools.privacy_index import PrivacyIndex, trial_items
from trialwright.tools.settings import Settings
from trialwright.tools.trials import load_top

RESULTS = ROOT / "bench" / "results" / "privacy_gate.json"
N = 12  # Settings.copy_ngram's default
MAX_OVERLAP = 0.2
NCT = re.compile(r"NCT\d{8}", re.IGNORECASE)


def real_items() -> list[tuple[str, str]]:
    s = Settings()
    return trial_items(load_top([(ROOT / s.top_dir / f) for f in s.top_files]))


def padded(items: list[tuple[str, str]], size: int, seed: int = 0) -> list[tuple[str, str]]:
    """The real items plus perturbed copies up to `size` (ids NCT1xxxxxxx: never real)."""
    rng = random.Random(seed)
    vocab = [w for _, text in items[:300] for w in text.split()]
    out = list(items)
    for i in range(size - len(items)):
        _, text = items[rng.randrange(len(items))]
        words = []
        for w in text.split():
            r = rng.random()
            if r < 0.02:
                continue
            words.append(rng.choice(vocab) if r < 0.07 else w)
        out.append((f"NCT{10_000_000 + i:08d}", " ".join(words)))
    return out[:size]


def queries(items: list[tuple[str, str]], real: int, k: int = 200, seed: int = 1):
    """(text, expected source or None): verbatim excerpts of real trials, and new texts."""
    rng = random.Random(seed)
    copies = []
    for _ in range(k):
        nctid, text = items[rng.randrange(real)]
        words = text.split()
        start = rng.randrange(max(1, len(words) - 150))
        copies.append((" ".join(words[start:start + rng.randint(60, 250)]), nctid))
    pool = [w for _, text in items[:real] for w in text.split() if not NCT.search(w)]
    new = [(" ".join(rng.choice(pool) for _ in range(rng.randint(80, 250))), None)
           for _ in range(k)]
    return copies, new


def ms(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"p50_ms": round(1000 * statistics.median(xs), 3),
            "p95_ms": round(1000 * xs[int(0.95 * (len(xs) - 1))], 3),
            "max_ms": round(1000 * xs[-1], 3), "mean_ms": round(1000 * statistics.mean(xs), 3)}


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def one_scale(size: int, sample: int) -> dict:
    t0 = time.perf_counter()
    real = real_items()
    items = padded(real, size) if size > len(real) else real[:size]
    prep_s = time.perf_counter() - t0
    rss_corpus = rss_mb()
    index = PrivacyIndex.build(items, n=N, sample=sample)
    rss_built = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        folder = index.save(Path(tmp) / "idx")
        disk = sum(p.stat().st_size for p in folder.iterdir())
        t1 = time.perf_counter()
        loaded = PrivacyIndex.load(folder)
        load_s = time.perf_counter() - t1
        copies, new = queries(items, min(len(real), size))
        lat, flagged_copies, right_source, flagged_new = [], 0, 0, 0
        for text, source in copies + new:
            t1 = time.perf_counter()
            finding = loaded.check(text, MAX_OVERLAP)
            lat.append(time.perf_counter() - t1)
            if source is not None:
                flagged_copies += finding.copied is not None
                # ties: TOP repeats some texts, and a perturbed copy may be intact over the excerpt
                top = finding.matches[0].share if finding.matches else -1
                ties = [m.nctid for m in finding.matches if m.share == top]
                right_source += source in ties or len(ties) == len(finding.matches)
            else:
                flagged_new += not finding.passed
        # ids: each new text again, with a real corpus id (must be named) or an unknown one
        rng = random.Random(2)
        ids_named = ids_unknown = 0
        for j, (text, _) in enumerate(new):
            nctid = items[rng.randrange(len(items))][0] if j % 2 == 0 else "NCT09999999"
            real_ids, other = loaded.real_ids(f"{text} (see {nctid})")
            ids_named += real_ids == [nctid]
            ids_unknown += other == [nctid]
    # the alternative: a scan of every trial per report, timed on a slice and scaled up
    slice_n = min(len(items), 2000)
    scan = []
    for text, _ in copies[:3] + new[:2]:
        t1 = time.perf_counter()
        max(ngram_overlap(text, t, N) for _, t in items[:slice_n])
        scan.append((time.perf_counter() - t1) * len(items) / slice_n)
    return {
        "trials": len(items), "real_trials": min(len(real), size), "n": N, "sample": sample,
        "corpus_prep_s": round(prep_s, 2), **index.stats(), "disk_bytes": disk,
        "rss_mb_before_build": rss_corpus, "peak_rss_mb_after_build": rss_built,
        "load_s_mmap": round(load_s, 4),
        "check_latency": ms(lat), "checks": len(lat),
        "copies_flagged": f"{flagged_copies}/{len(copies)}",
        "copies_top_match_is_source_or_tied_copy": f"{right_source}/{len(copies)}",
        "new_texts_flagged": f"{flagged_new}/{len(new)}",
        "corpus_ids_named_as_real": f"{ids_named}/{len(new) // 2}",
        "unknown_ids_named_as_unknown": f"{ids_unknown}/{len(new) - len(new) // 2}",
        "scan_per_report_ms_estimated": round(1000 * statistics.median(scan), 1),
        "scan_slice_trials": slice_n,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="3285,100000")
    ap.add_argument("--sample", type=int, default=1)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_scale(args.one, args.sample)))
        return
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for size in (int(x) for x in args.scales.split(",")):
        # a fresh process per scale, so peak memory is this scale's alone
        res = subprocess.run([sys.executable, __file__, "--one", str(size), "--sample",
                              str(args.sample)], capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        key = f"{row['trials']}" + (f"_sample{args.sample}" if args.sample > 1 else "")
        results[key] = row
        print(f"{row['trials']:>7} trials: build {row['build_s']}s, peak RSS "
              f"{row['peak_rss_mb_after_build']} MB, arrays {row['array_bytes'] / 2**20:.0f} MiB, "
              f"check p50 {row['check_latency']['p50_ms']} ms p95 {row['check_latency']['p95_ms']} ms, "
              f"copies flagged {row['copies_flagged']}, new flagged {row['new_texts_flagged']}, "
              f"scan/report ~{row['scan_per_report_ms_estimated']} ms")
    results["machine"] = {"cpus": __import__("os").cpu_count(), "python": sys.version.split()[0],
                          "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
