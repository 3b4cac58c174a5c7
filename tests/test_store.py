"""One suite, both back-ends: qdrant-edge-py on disk and qdrant-client local mode on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from trialwright.tools.settings import Settings
from trialwright.tools.store import (
    EdgeStore,
    EmptyStoreError,
    QdrantStore,
    StoreError,
    content_hash,
    mmr,
    open_nonempty_store,
    open_store,
    point_id,
)

DIM = 16
N = 40
PHASES = ["phase 1", "phase 2", "phase 3"]

Opener = Callable[[], EdgeStore | QdrantStore]


@pytest.fixture(params=["edge", "qdrant"])
def opener(request: pytest.FixtureRequest, tmp_path: Path):
    """A function that (re)opens the same on-disk store; every store it made is closed after."""
    made: list = []

    def open_() -> EdgeStore | QdrantStore:
        s = (EdgeStore(tmp_path / "edge") if request.param == "edge"
             else QdrantStore("trials", path=tmp_path / "qdrant"))
        made.append(s)
        return s

    yield open_
    for s in made:
        try:
            s.close()
        except Exception:
            pass


def ids(n: int = N) -> list[str]:
    return [f"NCT{10_000_000 + i:08d}" for i in range(n)]


def data(seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(N, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    # labels as numpy ints, as they come out of an array: the store must make them plain JSON
    payloads = [{"phase": PHASES[i % 3], "label": np.int64(i % 2), "content_hash": f"h{i}"}
                for i in range(N)]
    return vecs, payloads


def loaded(opener: Opener):
    store = opener()
    store.ensure_collection(DIM)
    vecs, payloads = data()
    store.upsert(ids(), vecs, payloads)
    return store, vecs, payloads


def exact_top(vecs: np.ndarray, q: np.ndarray, mask: np.ndarray, k: int) -> list[str]:
    scores = np.where(mask, vecs @ (q / np.linalg.norm(q)), -np.inf)
    order = np.argsort(-scores)[: min(k, int(mask.sum()))]
    return [ids()[i] for i in order]


def test_upsert_and_search_returns_nearest(opener: Opener) -> None:
    store, vecs, _ = loaded(opener)
    assert store.count() == N
    q = vecs[7] + 0.01 * np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    hits = store.search(q, 5)
    assert [h.id for h in hits] == exact_top(vecs, q, np.ones(N, bool), 5)
    assert hits[0].id == ids()[7] and hits[0].score > 0.99
    assert hits[0].payload["nctid"] == ids()[7] and hits[0].payload["phase"] == PHASES[7 % 3]
    assert hits[0].vector is None
    assert len(store.search(q, 3, with_vectors=True)[0].vector) == DIM


def test_filters_phase_label_and_excluded_ids(opener: Opener) -> None:
    store, vecs, payloads = loaded(opener)
    q = vecs[3]
    phase = np.array([p["phase"] for p in payloads])
    label = np.array([p["label"] for p in payloads])
    excl = ids()[:6]

    got = store.search(q, 5, phase="phase 2", label=1)
    assert [h.id for h in got] == exact_top(vecs, q, (phase == "phase 2") & (label == 1), 5)
    got = store.search(q, 8, phase=["phase 1", "phase 3"], exclude_ids=excl)
    mask = np.isin(phase, ["phase 1", "phase 3"]) & ~np.isin(ids(), excl)
    assert [h.id for h in got] == exact_top(vecs, q, mask, 8)
    assert all(h.payload["label"] == 0 for h in store.search(q, 10, label=0))
    assert store.search(q, 5, phase="phase 4") == []
    with pytest.raises(StoreError):
        store.search(q, 5, label=2)


def test_search_diverse_drops_near_duplicates(opener: Opener) -> None:
    store = opener()
    store.ensure_collection(DIM)
    rng = np.random.default_rng(2)
    base = rng.normal(size=DIM).astype(np.float32)
    other = rng.normal(size=DIM).astype(np.float32)
    vecs = np.stack([base, base + 1e-3 * rng.normal(size=DIM), base + 1e-3 * rng.normal(size=DIM),
                     base + 1.2 * other, *rng.normal(size=(6, DIM))]).astype(np.float32)
    names = ids(len(vecs))
    store.upsert(names, vecs, [{"phase": "phase 2", "label": 1}] * len(vecs))

    plain = [h.id for h in store.search(base, 2)]
    assert set(plain) <= set(names[:3])  # the near-duplicates crowd out everything else
    diverse = store.search_diverse(base, 2, fetch_k=10, diversity=0.7)
    assert diverse[0].id in names[:3]
    assert diverse[1].id not in names[:3]
    assert diverse[0].vector is None and diverse[0].score > 0.99
    # diversity 0 is plain nearest-neighbour order
    assert [h.id for h in store.search_diverse(base, 4, diversity=0.0)] == \
        [h.id for h in store.search(base, 4)]


def test_mmr_function() -> None:
    cands = np.eye(4, dtype=np.float32)
    cands[1] = cands[0] + 0.01  # near-duplicate of the best candidate
    q = np.array([1.0, 0.1, 0.5, 0.0], dtype=np.float32)
    assert mmr(q, cands, 3, diversity=0.0) == [1, 0, 2]
    assert mmr(q, cands, 2, diversity=0.6) == [1, 2]
    assert mmr(q, cands[:0], 3) == []
    with pytest.raises(ValueError):
        mmr(q, cands, 2, diversity=1.5)


def test_content_hashes_make_reindexing_idempotent(opener: Opener) -> None:
    store, vecs, payloads = loaded(opener)
    wanted = ids()[:3] + ["NCT99999999"]
    assert store.content_hashes(wanted) == {ids()[i]: f"h{i}" for i in range(3)}
    # re-upserting the same ids replaces, never duplicates
    store.upsert(ids()[:3], vecs[:3], [{**p, "content_hash": "new"} for p in payloads[:3]])
    assert store.count() == N
    assert set(store.content_hashes(ids()[:3]).values()) == {"new"}


def test_reopen_persists(opener: Opener) -> None:
    store, vecs, _ = loaded(opener)
    before = [h.id for h in store.search(vecs[5], 5, phase="phase 3")]
    store.close()
    again = opener()
    assert again.count() == N
    again.ensure_collection(DIM)  # same dimension: a no-op
    assert [h.id for h in again.search(vecs[5], 5, phase="phase 3")] == before
    assert again.content_hashes([ids()[0]]) == {ids()[0]: "h0"}


def test_dimension_mismatch_is_a_clear_error(opener: Opener) -> None:
    store, vecs, payloads = loaded(opener)
    with pytest.raises(StoreError, match="16"):
        store.ensure_collection(DIM * 2)
    with pytest.raises(StoreError, match="dimension"):
        store.upsert(ids(2), np.ones((2, DIM + 1), np.float32), payloads[:2])
    with pytest.raises(StoreError, match="dimension"):
        store.search(np.ones(DIM - 1, np.float32), 3)
    store.close()
    with pytest.raises(StoreError, match="16"):
        opener().ensure_collection(8)


def test_empty_store_and_bad_input(opener: Opener) -> None:
    store = opener()
    assert store.count() == 0
    assert store.content_hashes(ids(2)) == {}
    with pytest.raises(StoreError, match="ensure_collection"):
        store.search(np.ones(DIM, np.float32), 3)
    store.ensure_collection(DIM)
    with pytest.raises(StoreError, match="as many"):
        store.upsert(ids(2), np.ones((3, DIM), np.float32), [{}, {}])
    with pytest.raises(StoreError, match="NaN"):
        store.upsert(ids(1), np.full((1, DIM), np.nan, np.float32), [{}])
    assert store.search(np.ones(DIM, np.float32), 3) == []


def test_point_ids_are_deterministic() -> None:
    assert point_id("NCT01187615") == 1187615
    other = point_id("synthetic-7")
    assert isinstance(other, str) and other == point_id("synthetic-7")
    assert content_hash("a", "b") != content_hash("ab", "")


def test_non_nct_ids_round_trip(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "e") as store:
        store.ensure_collection(4)
        store.upsert(["synthetic-1"], np.ones((1, 4), np.float32), [{"content_hash": "x"}])
        assert store.search(np.ones(4, np.float32), 1)[0].id == "synthetic-1"
        assert store.content_hashes(["synthetic-1"]) == {"synthetic-1": "x"}


def test_open_store_by_settings(tmp_path: Path) -> None:
    edge = open_store(Settings(store_path=tmp_path, store_backend="edge"))
    assert isinstance(edge, EdgeStore)
    edge.close()
    local = open_store(Settings(store_path=tmp_path, store_backend="qdrant", qdrant_url=""))
    assert isinstance(local, QdrantStore) and local.count() == 0
    local.close()
    with pytest.raises(StoreError, match="cannot reach"):
        open_store(Settings(store_path=tmp_path, store_backend="qdrant",
                            qdrant_url="http://127.0.0.1:9"))


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_open_nonempty_store_refuses_an_empty_store_and_closes_it(tmp_path: Path,
                                                                  backend: str) -> None:
    s = Settings(store_path=tmp_path, store_backend=backend, qdrant_url=None)
    with pytest.raises(EmptyStoreError, match="trialwright index"):
        open_nonempty_store(s)
    store = open_store(s)  # opens again, so the refused one was closed (both lock their folder)
    store.ensure_collection(DIM)
    vecs, payloads = data()
    store.upsert(ids(), vecs, payloads)
    store.close()
    store = open_nonempty_store(s)
    try:
        assert store.count() == N
    finally:
        store.close()


class TinyEncoder:
    """A deterministic DIM-d encoder with an identity: another `fingerprint` gives other vectors
    of the same size (as switching between two 384-d sentence encoders does)."""

    dim = DIM
    encode_seconds = 0.0

    def __init__(self, fingerprint: str = "enc-a"):
        self.fingerprint = fingerprint

    def encode(self, texts: list[str]) -> np.ndarray:
        import zlib

        rows = [np.random.default_rng(zlib.crc32(f"{self.fingerprint}|{t}".encode()))
                .normal(size=DIM) for t in texts]
        v = np.array(rows, dtype=np.float32).reshape(len(texts), DIM)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def corpus_trials(n: int = 3) -> list:
    from trialwright.tools.trials import Trial

    return [Trial(nctid=f"NCT0000010{i}", label=i % 2, phase="phase 2", diseases=[f"disease {i}"],
                  drugs=[f"drug {i}"], criteria=f"Inclusion Criteria: adults with disease {i}.")
            for i in range(n)]


def test_reindex_removes_trials_no_longer_in_the_corpus(opener: Opener) -> None:
    from trialwright.tools.indexing import index_trials

    three, enc = corpus_trials(3), TinyEncoder()
    store = opener()
    assert index_trials(three, enc, store).indexed == 3
    dropped = three[2]
    query = enc.encode([dropped.text()])[0]
    assert store.search(query, 1)[0].id == dropped.nctid
    stats = index_trials(three[:2], enc, store)  # e.g. the test split left the configured files
    assert dropped.nctid not in {h.id for h in store.search(query, 10)}
    assert (stats.indexed, stats.skipped, stats.removed) == (0, 2, 1)
    store.close()
    again = opener()  # and it stays gone on disk
    assert again.count() == 2 and again.ids() == {t.nctid for t in three[:2]}
    assert dropped.nctid not in {h.id for h in again.search(query, 10)}


def test_another_encoder_of_the_same_size_reembeds_every_trial(opener: Opener) -> None:
    from trialwright.tools.indexing import index_trials

    trials, old, new = corpus_trials(3), TinyEncoder("enc-a"), TinyEncoder("enc-b")
    store = opener()
    index_trials(trials, old, store)
    assert index_trials(trials, old, store).indexed == 0  # same text, same encoder: skipped
    assert index_trials(trials, new, store).indexed == 3
    for t in trials:  # the stored vectors are the new encoder's
        hit = store.search(new.encode([t.text()])[0], 1)[0]
        assert hit.id == t.nctid and hit.score > 0.999


def test_store_ids_and_delete(opener: Opener) -> None:
    store, vecs, _ = loaded(opener)
    assert store.ids() == set(ids())
    assert store.delete([ids()[0], ids()[1], "NCT99999999"]) == 3  # an absent id is no error
    assert store.count() == N - 2 and ids()[0] not in store.ids()
    assert ids()[0] not in {h.id for h in store.search(vecs[0], 5)}
