"""What an output records about how it was made: installed package versions and input-file hashes
(run.json, the eval card, the classifier's metrics.json, a judge study's agreement.json)."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def package_versions(names: Iterable[str], missing: str | None = None) -> dict[str, str]:
    """Python's version and each package's; one not installed reads `missing` (None: left out)."""
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            if missing is not None:
                found[name] = missing
    return found


def file_sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def files_sha256(folder: Path | str, names: Iterable[str]) -> dict[str, str | None]:
    """Each named file's sha256 by its name (None where it is missing): an input's content,
    wherever the folder holding it lives."""
    return {name: file_sha256(f) if (f := Path(folder) / name).is_file() else None
            for name in names}
