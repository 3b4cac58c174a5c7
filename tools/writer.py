"""The one output writer: append-only JSONL whose lines are whole or absent, plus Parquet.

A line is written with a single `write` on an O_APPEND file and fsync'd, so a crash leaves at
most one torn last line; opening the file repairs that line (it is cut off, never parsed as a
record) and learns which ids are already written, so re-running writes no duplicate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trialwright.tools.trials import DataError


class JsonlError(DataError):
    """An output file that cannot be resumed from: a bad line that is not a torn last line."""


class JsonlWriter:
    def __init__(self, path: Path, key: str = "id"):
        self.path, self.key = Path(path), key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ids: set[str] = set()
        self.repaired_bytes = self._repair_and_scan()

    def _repair_and_scan(self) -> int:
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        keep = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
        for n, line in enumerate(keep.splitlines(), start=1):
            if line.strip():
                self.ids.add(self._record_id(line, n))
        if len(keep) != len(data):  # a torn last line from a crash: drop it
            with self.path.open("r+b") as fh:
                fh.truncate(len(keep))
                os.fsync(fh.fileno())
        return len(data) - len(keep)

    def _record_id(self, line: bytes, n: int) -> str:
        """The id of one whole line; a complete bad line is refused, never silently dropped."""
        try:
            rec = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise JsonlError(self.path, f"line {n}: not UTF-8") from None
        except json.JSONDecodeError as err:
            raise JsonlError(self.path, f"line {n}: not valid JSON ({err.msg})") from None
        if not isinstance(rec, dict) or self.key not in rec:
            raise JsonlError(self.path, f"line {n}: record has no '{self.key}'", field=self.key)
        return str(rec[self.key])

    def write(self, record: dict[str, Any]) -> bool:
        """Append one record unless its id is already in the file; True if written."""
        rid = str(record[self.key])
        if rid in self.ids:
            return False
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.ids.add(rid)
        return True


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not Path(path).exists():
        return
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def move_records(src: Path, dst: Path, predicate: Callable[[dict[str, Any]], bool]) -> int:
    """Move the records of `src` matching `predicate` to the end of `dst`; returns how many.

    `dst` is appended (and fsync'd) first and `src` replaced atomically after, so a crash loses
    nothing: at worst a record is in both (`dst` is an archive, never read for resume).
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        return 0
    lines = [line for line in src.read_bytes().splitlines(keepends=True) if line.strip()]
    hit = [predicate(json.loads(line)) for line in lines]
    moved = [line for line, h in zip(lines, hit, strict=True) if h]
    if not moved:
        return 0
    with dst.open("ab") as fh:
        fh.writelines(moved)
        fh.flush()
        os.fsync(fh.fileno())
    tmp = src.with_suffix(src.suffix + ".tmp")
    with tmp.open("wb") as fh:
        fh.writelines(line for line, h in zip(lines, hit, strict=True) if not h)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, src)
    return len(moved)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    os.replace(tmp, path)


def jsonl_to_parquet(src: Path, dst: Path) -> int:
    """Flatten one level (nested values as JSON text) so any Parquet reader can open it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{k: (json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v)
             for k, v in rec.items()} for rec in read_jsonl(src)]
    if not rows:
        return 0
    tmp = dst.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, dst)
    return len(rows)
