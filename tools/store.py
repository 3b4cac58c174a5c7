"""Vector store for real trials: one interface, two Qdrant back-ends.

* `EdgeStore` (default): Qdrant's engine in-process via `qdrant-edge-py` (`EdgeShard`), persistent
  under ``settings.store_path/edge/<collection>``. No server, fast enough for 100k+ trials.
* `QdrantStore`: `qdrant-client` against a Qdrant server/cluster (``qdrant_url``), or its local
  mode (``store_path/qdrant-local``, or ``":memory:"``) — pure-Python brute force, for tests and
  small corpora only.

Points are keyed by NCT id (kept in the payload as ``nctid``); filters (phase, label, excluded ids)
and maximal-marginal-relevance re-ranking are shared, so both back-ends answer the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel
from trialwright.tools.settings import Settings

PointId = int | str
_NCT = re.compile(r"^NCT(\d{8})$")
#: Fixed namespace, so a non-NCT id maps to the same uuid5 on every machine.
_ID_NAMESPACE = uuid.UUID("5f1d3c52-7a0e-4c9b-9a43-2f6f0c1e8b7d")
_BATCH = 1000


class StoreError(RuntimeError):
    """The store cannot do what was asked (wrong dimension, unreachable server, no collection)."""


class EmptyStoreError(StoreError):
    """The store holds no trials yet: nothing can be retrieved until `trialwright index` runs."""


class Hit(BaseModel):
    id: str  # the NCT id
    score: float  # cosine similarity to the query
    payload: dict[str, Any]
    vector: list[float] | None = None  # only with with_vectors=True


@runtime_checkable
class VectorStore(Protocol):
    dim: int | None  # the collection's vector size; None until it exists

    def ensure_collection(self, dim: int) -> None: ...
    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None: ...
    def content_hashes(self, ids: list[str]) -> dict[str, str]: ...
    def ids(self) -> set[str]: ...
    def delete(self, ids: Iterable[str]) -> int: ...
    def search(self, vector: np.ndarray, k: int, *, phase: str | list[str] | None = None,
               label: int | None = None, exclude_ids: Iterable[str] = (),
               with_vectors: bool = False) -> list[Hit]: ...
    def search_diverse(self, vector: np.ndarray, k: int, *, fetch_k: int | None = None,
                       diversity: float = 0.5, phase: str | list[str] | None = None,
                       label: int | None = None, exclude_ids: Iterable[str] = (),
                       with_vectors: bool = False) -> list[Hit]: ...
    def optimize(self) -> None: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


# --- shared logic ----------------------------------------------------------------------------

def point_id(nctid: str) -> PointId:
    """NCT01187615 -> 1187615 (readable, stable); any other id -> a uuid5 string."""
    m = _NCT.match(nctid.strip().upper())
    return int(m.group(1)) if m else str(uuid.uuid5(_ID_NAMESPACE, nctid))


def content_hash(*parts: str) -> str:
    """Hash of what went into a vector (text, encoder fingerprint): re-index only on change."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def mmr(query: np.ndarray, candidates: np.ndarray, k: int, diversity: float = 0.5) -> list[int]:
    """Greedy maximal marginal relevance: indices of up to k rows of `candidates`, in pick order.

    Each pick maximises (1 - diversity) * sim(query, c) - diversity * max sim(c, picked);
    diversity 0 is plain nearest-neighbour order, 1 ignores relevance after the first pick.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], got {diversity}")
    n = len(candidates)
    if n == 0 or k <= 0:
        return []
    c = _unit(np.asarray(candidates, dtype=np.float32))
    rel = c @ _unit(np.asarray(query, dtype=np.float32))
    sim = c @ c.T
    picked = [int(np.argmax(rel))]
    closest = sim[picked[0]].copy()  # each candidate's max similarity to anything picked
    while len(picked) < min(k, n):
        score = (1.0 - diversity) * rel - diversity * closest
        score[picked] = -np.inf
        j = int(np.argmax(score))
        picked.append(j)
        np.maximum(closest, sim[j], out=closest)
    return picked


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


@dataclass(frozen=True)
class SearchSpec:
    """A validated search request, independent of the back-end's filter classes."""

    vector: np.ndarray
    phases: tuple[str, ...] = ()
    label: int | None = None
    exclude: tuple[PointId, ...] = ()


def build_filter(m: Any, q: SearchSpec, has_id: Any) -> Any | None:
    """The Qdrant filter for `q`, from module `m` (qdrant_edge or qdrant_client.models).

    Both modules name their filter classes alike; only the id condition differs (`has_id`).
    """
    must = []
    if len(q.phases) == 1:
        must.append(m.FieldCondition(key="phase", match=m.MatchValue(value=q.phases[0])))
    elif q.phases:
        must.append(m.FieldCondition(key="phase", match=m.MatchAny(any=list(q.phases))))
    if q.label is not None:
        must.append(m.FieldCondition(key="label", match=m.MatchValue(value=q.label)))
    must_not = [has_id(list(q.exclude))] if q.exclude else None
    return m.Filter(must=must or None, must_not=must_not) if (must or must_not) else None


class _BaseStore(ABC):
    """Validation, ids, MMR and batching; subclasses only talk to their engine."""

    dim: int | None = None

    # -- engine hooks --
    @abstractmethod
    def _create_or_check(self, dim: int) -> None: ...
    @abstractmethod
    def _upsert(self, pids: list[PointId], vectors: np.ndarray, payloads: list[dict]) -> None: ...
    @abstractmethod
    def _payloads(self, pids: list[PointId], fields: list[str]) -> list[dict]: ...
    @abstractmethod
    def _query(self, q: SearchSpec, limit: int, with_vectors: bool) -> list[Hit]: ...
    @abstractmethod
    def _all_payloads(self, fields: list[str]) -> Iterator[dict]: ...
    @abstractmethod
    def _delete(self, pids: list[PointId]) -> None: ...
    @abstractmethod
    def count(self) -> int: ...
    @abstractmethod
    def close(self) -> None: ...

    def optimize(self) -> None:
        """Build indexes after a bulk load (a no-op where the engine does it by itself)."""

    # -- public API --
    def ensure_collection(self, dim: int) -> None:
        if dim <= 0:
            raise StoreError(f"vector dimension must be positive, got {dim}")
        self._create_or_check(dim)
        self.dim = dim

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not (len(ids) == len(vectors) == len(payloads)):
            raise StoreError(f"upsert needs as many ids ({len(ids)}), vectors "
                             f"({vectors.shape}) and payloads ({len(payloads)})")
        if len(set(ids)) != len(ids):
            raise StoreError("upsert got duplicate ids in one call")
        if not len(ids):
            return
        self._require(vectors.shape[1])
        if not np.isfinite(vectors).all():
            raise StoreError("upsert got NaN or infinite vector components")
        pids = [point_id(i) for i in ids]
        full = [{**_plain(p), "nctid": i} for i, p in zip(ids, payloads, strict=True)]
        for s in range(0, len(ids), _BATCH):
            self._upsert(pids[s:s + _BATCH], vectors[s:s + _BATCH], full[s:s + _BATCH])

    def content_hashes(self, ids: list[str]) -> dict[str, str]:
        if not ids or self.dim is None:
            return {}
        out: dict[str, str] = {}
        pids = [point_id(i) for i in ids]
        for s in range(0, len(pids), _BATCH):
            for p in self._payloads(pids[s:s + _BATCH], ["nctid", "content_hash"]):
                if "content_hash" in p and "nctid" in p:
                    out[p["nctid"]] = p["content_hash"]
        return out

    def ids(self) -> set[str]:
        """The NCT id of every stored trial."""
        if self.dim is None:
            return set()
        return {p["nctid"] for p in self._all_payloads(["nctid"]) if "nctid" in p}

    def delete(self, ids: Iterable[str]) -> int:
        """Remove these trials (absent ones are no error); returns how many were asked."""
        pids = list(dict.fromkeys(point_id(i) for i in ids))
        if self.dim is None:
            return 0
        for s in range(0, len(pids), _BATCH):
            self._delete(pids[s:s + _BATCH])
        return len(pids)

    def search(self, vector: np.ndarray, k: int, *, phase: str | list[str] | None = None,
               label: int | None = None, exclude_ids: Iterable[str] = (),
               with_vectors: bool = False) -> list[Hit]:
        if k <= 0:
            return []
        return self._query(self._make_query(vector, phase, label, exclude_ids), k, with_vectors)

    def search_diverse(self, vector: np.ndarray, k: int, *, fetch_k: int | None = None,
                       diversity: float = 0.5, phase: str | list[str] | None = None,
                       label: int | None = None, exclude_ids: Iterable[str] = (),
                       with_vectors: bool = False) -> list[Hit]:
        if k <= 0:
            return []
        q = self._make_query(vector, phase, label, exclude_ids)
        pool = self._query(q, max(fetch_k or 4 * k, k), True)
        if not pool:
            return []
        picked = mmr(q.vector, np.array([h.vector for h in pool], dtype=np.float32), k, diversity)
        hits = [pool[i] for i in picked]
        return hits if with_vectors else [h.model_copy(update={"vector": None}) for h in hits]

    def __enter__(self) -> _BaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers --
    def _require(self, dim: int) -> None:
        if self.dim is None:
            raise StoreError("the collection does not exist yet: call ensure_collection(dim) "
                             "first (or run `trialwright index`)")
        if dim != self.dim:
            raise StoreError(f"vector dimension {dim} does not match the collection's {self.dim}")

    def _make_query(self, vector: np.ndarray, phase: str | list[str] | None, label: int | None,
                    exclude_ids: Iterable[str]) -> SearchSpec:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        self._require(v.shape[0])
        if not np.isfinite(v).all() or not v.any():
            raise StoreError("query vector is zero, NaN or infinite")
        phases = (phase,) if isinstance(phase, str) else tuple(phase or ())
        if label is not None and label not in (0, 1):
            raise StoreError(f"label must be 0 or 1, got {label!r}")
        excl = tuple(dict.fromkeys(point_id(i) for i in exclude_ids))
        return SearchSpec(v, phases, None if label is None else int(label), excl)


def _plain(payload: dict) -> dict:
    # numpy scalars (a label from a DataFrame) are not JSON: qdrant-client would reject them.
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in payload.items()}


def _hit(payload: dict | None, score: float, vector: Any) -> Hit:
    payload = dict(payload or {})
    vec = None if vector is None else [float(x) for x in vector]
    return Hit(id=str(payload.get("nctid", "")), score=float(score), payload=payload, vector=vec)


# --- qdrant-edge-py ----------------------------------------------------------------------------

class EdgeStore(_BaseStore):
    """Qdrant's engine embedded in-process (`qdrant_edge.EdgeShard`), one shard per collection.

    Points land in an appendable segment searched exactly; call `optimize()` after a bulk load
    to build HNSW (m=16, ef_construct=100; searched with hnsw_ef=128). bench/retrieval.py at
    100k x 384 (real embeddings + perturbed copies, 2 cores shared with other jobs): exact
    p50 11-16 ms; HNSW phase+label-filtered p50 0.8-1.0 ms, p95 3.9-6.7 ms (the tail is CPU
    contention: ~0.8-1.0 ms CPU per query), recall@10 0.975-0.995; build 3-4 min.
    hnsw_ef=64 lost filtered recall (0.91). Small collections (a few thousand trials)
    stay below the indexing threshold: optimize() builds nothing and exact search is ~1-2 ms.
    Thread-safe; one process at a time (the WAL is locked).
    """

    def __init__(self, path: Path | str, *, hnsw_ef: int = 128, hnsw_m: int = 16,
                 ef_construct: int = 100, exact: bool = False):
        import qdrant_edge as qe

        self._qe = qe
        self.path = Path(path)
        self.hnsw_ef, self.hnsw_m, self.ef_construct, self.exact = hnsw_ef, hnsw_m, ef_construct, exact
        self._shard: Any = None
        if self._exists():
            self.dim = self._persisted_dim()
            try:
                self._shard = qe.EdgeShard.load(str(self.path))
            except Exception as exc:  # the binding raises bare Exception
                hint = " (is it open in another process?)" if "WouldBlock" in str(exc) else ""
                raise StoreError(f"cannot open the edge store at {self.path}{hint}: {exc}") from exc

    def _exists(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def _persisted_dim(self) -> int | None:
        # The shard has no config getter; its edge_config.json is the only place the size lives.
        try:
            cfg = json.loads((self.path / "edge_config.json").read_text())
            return int(cfg["vectors"][""]["size"])
        except (OSError, KeyError, ValueError, TypeError):
            return None

    def _create_or_check(self, dim: int) -> None:
        qe = self._qe
        if self._shard is not None:
            if self.dim is not None and self.dim != dim:
                raise StoreError(f"the edge store at {self.path} holds {self.dim}-d vectors but "
                                 f"{dim}-d were given (another encoder?); delete the folder or "
                                 "set another store_path/collection")
            return
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(m=self.hnsw_m, ef_construct=self.ef_construct,
                                           full_scan_threshold=10_000),
            # Payload in RAM (it is small): on the default cold mmap, fetching the 10 hits'
            # payloads doubled an HNSW query's p50 (1.6 vs 0.7 ms at 40k).
            payload_memory=qe.Memory.Cached,
        )
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._shard = qe.EdgeShard.create(str(self.path), config)
            self._shard.update(qe.UpdateOperation.create_field_index(
                "phase", qe.PayloadSchemaType.Keyword))
            self._shard.update(qe.UpdateOperation.create_field_index(
                "label", qe.PayloadSchemaType.Integer))
        except Exception as exc:
            raise StoreError(f"cannot create the edge store at {self.path}: {exc}") from exc

    def _upsert(self, pids: list[PointId], vectors: np.ndarray, payloads: list[dict]) -> None:
        qe = self._qe
        points = [qe.Point(p, v, pl) for p, v, pl in zip(pids, vectors, payloads, strict=True)]
        self._shard.update(qe.UpdateOperation.upsert_points(points))

    def _payloads(self, pids: list[PointId], fields: list[str]) -> list[dict]:
        return [r.payload or {} for r in self._shard.retrieve(pids, fields, False)]

    def _all_payloads(self, fields: list[str]) -> Iterator[dict]:
        offset: PointId | None = None
        while True:
            records, offset = self._shard.scroll(self._qe.ScrollRequest(
                offset=offset, limit=_BATCH, with_payload=fields, with_vector=False))
            yield from (r.payload or {} for r in records)
            if offset is None:
                return

    def _delete(self, pids: list[PointId]) -> None:
        self._shard.update(self._qe.UpdateOperation.delete_points(pids))

    def _query(self, q: SearchSpec, limit: int, with_vectors: bool) -> list[Hit]:
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(q.vector), with_payload=True,
            with_vector=with_vectors,
            filter=build_filter(qe, q, lambda ids: qe.HasIdCondition(set(ids))),
            params=qe.SearchParams(hnsw_ef=self.hnsw_ef, exact=self.exact))
        return [_hit(p.payload, p.score, p.vector if with_vectors else None)
                for p in self._shard.query(request)]

    def optimize(self) -> None:
        """Merge segments and build the HNSW graph; blocks (about 2 min at 100k on 2 cores)."""
        if self._shard is not None:
            self._shard.optimize()

    def count(self) -> int:
        return 0 if self._shard is None else int(self._shard.count(self._qe.CountRequest(exact=True)))

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None


# --- qdrant-client -----------------------------------------------------------------------------

class QdrantStore(_BaseStore):
    """`qdrant-client`: a server/cluster by `url`, or local mode at `path` / `":memory:"`."""

    def __init__(self, collection: str, *, url: str | None = None, api_key: str | None = None,
                 path: Path | str | None = None, location: str | None = None,
                 timeout: float = 10.0):
        from qdrant_client import QdrantClient, models

        self._m = models
        self.collection = collection
        self.where = url or location or str(path)
        self._remote = bool(url)
        try:
            if url:
                # No version check: it runs in a thread and only warns; collection_exists below
                # is the reachability check, with a clear error.
                self._client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout),
                                            check_compatibility=False)
            elif location == ":memory:":
                self._client = QdrantClient(location=":memory:")
            elif path is not None:
                Path(path).mkdir(parents=True, exist_ok=True)
                self._client = QdrantClient(path=str(path))
            else:
                raise StoreError("QdrantStore needs url=, path= or location=':memory:'")
            exists = self._client.collection_exists(collection)
        except StoreError:
            raise
        except Exception as exc:  # connection refused, DNS, auth, a locked local folder
            raise StoreError(f"cannot reach/open Qdrant at {self.where}: {exc}") from exc
        if exists:
            self.dim = self._collection_dim()

    def _collection_dim(self) -> int | None:
        params = self._client.get_collection(self.collection).config.params.vectors
        if not isinstance(params, self._m.VectorParams):  # named or sparse-only: not ours
            raise StoreError(f"collection '{self.collection}' at {self.where} is not a single "
                             "unnamed dense vector collection; choose another collection name")
        if params.distance != self._m.Distance.COSINE:
            raise StoreError(f"collection '{self.collection}' at {self.where} uses "
                             f"{params.distance} distance; trialwright needs cosine")
        return int(params.size)

    def _create_or_check(self, dim: int) -> None:
        m = self._m
        if self.dim is not None:
            if self.dim != dim:
                raise StoreError(f"collection '{self.collection}' at {self.where} holds "
                                 f"{self.dim}-d vectors but {dim}-d were given (another encoder?)")
            return
        self._client.create_collection(
            self.collection, vectors_config=m.VectorParams(size=dim, distance=m.Distance.COSINE))
        if self._remote:  # local mode ignores payload indexes (and warns about them)
            self._client.create_payload_index(self.collection, "phase", m.PayloadSchemaType.KEYWORD)
            self._client.create_payload_index(self.collection, "label", m.PayloadSchemaType.INTEGER)

    def _upsert(self, pids: list[PointId], vectors: np.ndarray, payloads: list[dict]) -> None:
        m = self._m
        points = [m.PointStruct(id=p, vector=v.tolist(), payload=pl)
                  for p, v, pl in zip(pids, vectors, payloads, strict=True)]
        self._client.upsert(self.collection, points=points, wait=True)

    def _payloads(self, pids: list[PointId], fields: list[str]) -> list[dict]:
        return [r.payload or {} for r in
                self._client.retrieve(self.collection, ids=pids, with_payload=fields)]

    def _all_payloads(self, fields: list[str]) -> Iterator[dict]:
        offset: Any = None
        while True:
            records, offset = self._client.scroll(self.collection, limit=_BATCH, offset=offset,
                                                  with_payload=fields, with_vectors=False)
            yield from (r.payload or {} for r in records)
            if offset is None:
                return

    def _delete(self, pids: list[PointId]) -> None:
        self._client.delete(self.collection, points_selector=self._m.PointIdsList(points=pids),
                            wait=True)

    def _query(self, q: SearchSpec, limit: int, with_vectors: bool) -> list[Hit]:
        m = self._m
        res = self._client.query_points(
            self.collection, query=q.vector.tolist(), limit=limit, with_payload=True,
            with_vectors=with_vectors,
            query_filter=build_filter(m, q, lambda ids: m.HasIdCondition(has_id=ids)))
        return [_hit(p.payload, p.score, p.vector if with_vectors else None) for p in res.points]

    def count(self) -> int:
        if self.dim is None:
            return 0
        return int(self._client.count(self.collection, exact=True).count)

    def close(self) -> None:
        self._client.close()


# --- factory -------------------------------------------------------------------------------------

def open_store(settings: Settings, backend: Literal["edge", "qdrant"] | None = None) -> VectorStore:
    """The store the settings name: edge (default), a Qdrant server by URL, or local mode."""
    backend = backend or settings.store_backend
    if backend == "edge":
        return EdgeStore(settings.store_path / "edge" / settings.collection)
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantStore(settings.collection, url=settings.qdrant_url, api_key=key or None)
    return QdrantStore(settings.collection, path=settings.store_path / "qdrant-local")


def open_nonempty_store(settings: Settings) -> VectorStore:
    """The configured store, for a command that retrieves: refuses (closed again) if it is empty."""
    store = open_store(settings)
    try:
        if store.count() == 0:
            raise EmptyStoreError("the store is empty: run `trialwright index` first")
    except BaseException:
        store.close()
        raise
    return store


__all__ = ["EdgeStore", "EmptyStoreError", "Hit", "QdrantStore", "StoreError", "VectorStore",
           "build_filter", "content_hash", "mmr", "open_nonempty_store", "open_store", "point_id"]
