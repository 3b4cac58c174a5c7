"""Sentence embeddings from a local folder or a package that ships the weights (offline).

Vectors are L2-normalised float32 and cached by (model fingerprint, text hash) in SQLite, so
re-indexing unchanged trials costs no encoder time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
import threading
from functools import cached_property
from pathlib import Path

import numpy as np
from trialwright.tools.settings import Settings


class EncoderError(RuntimeError):
    pass


def resolve_model_dir(spec: str) -> Path:
    """'package:<module>' -> the model folder inside that installed package; else a path."""
    if spec.startswith("package:"):
        module = spec.split(":", 1)[1]
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise EncoderError(f"encoder package '{module}' is not installed "
                               f"(pip install {module.replace('_', '-')})")
        root = Path(next(iter(found.submodule_search_locations)))
        for candidate in (root / "model", root):
            if (candidate / "config.json").is_file():
                return candidate
        raise EncoderError(f"no model folder (config.json) inside package '{module}' at {root.name}")
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise EncoderError(f"encoder path '{spec}' is not a model folder (no config.json); "
                           "hub names need a local copy here (offline)")
    return path


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Encoder:
    """Batched, normalised, no-grad sentence encoder with a persistent text-hash cache."""

    def __init__(self, settings: Settings, cache: bool = True):
        self.settings = settings
        self.model_dir = resolve_model_dir(settings.encoder)
        self.batch_size = settings.encoder_batch_size
        self.max_length = settings.encoder_max_length
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if cache:
            settings.cache_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(settings.cache_dir / "embeddings.sqlite",
                                       check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS emb (k TEXT PRIMARY KEY, v BLOB)")
        self.encode_seconds = 0.0  # time spent in the model (benchmarks split it from store time)

    @cached_property
    def model(self):
        # Imported lazily: torch start-up is seconds, and many commands never embed.
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        model.max_seq_length = self.max_length
        return model

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the weights, so a cache never mixes two models."""
        h = hashlib.sha256(str(self.max_length).encode())
        for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
            f = self.model_dir / name
            if f.is_file():
                h.update(f"{name}:{f.stat().st_size}".encode())
                with f.open("rb") as fh:
                    h.update(fh.read(1 << 20))
        return h.hexdigest()[:16]

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension()
                   if hasattr(self.model, "get_embedding_dimension")
                   else self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit-norm rows."""
        import time

        keys = [f"{self.fingerprint}:{text_key(t)}" for t in texts]
        found = self._cached(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            t0 = time.perf_counter()
            vecs = self.model.encode([texts[i] for i in todo], batch_size=self.batch_size,
                                     normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False).astype(np.float32)
            self.encode_seconds += time.perf_counter() - t0
            new = {keys[i]: v for i, v in zip(todo, vecs, strict=True)}
            self._store(new)
            found.update(new)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def _cached(self, keys: list[str]) -> dict[str, np.ndarray]:
        if self._db is None or not keys:
            return {}
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT k, v FROM emb WHERE k IN ({','.join('?' * len(chunk))})"
                for k, v in self._db.execute(q, chunk):
                    out[k] = np.frombuffer(v, dtype=np.float32)
        return out

    def _store(self, vecs: dict[str, np.ndarray]) -> None:
        if self._db is None:
            return
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)",
                                 [(k, v.astype(np.float32).tobytes()) for k, v in vecs.items()])
