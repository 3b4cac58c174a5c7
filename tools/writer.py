"""The one output writer: append-only JSONL whose lines are whole or absent, plus Parquet.

A line is appended to an O_APPEND file (writing again until every byte is out: `os.write`
may write less) and fsync'd, so a crash leaves at most one torn last line; opening the file
repairs that line (it is cut off, never parsed as a record) and learns which ids are already
written, so re-running writes no duplicate.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

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
        whole = 0  # bytes in whole lines; read a line at a time, so memory is flat in the file
        with self.path.open("rb") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.endswith(b"\n"):
                    break  # only the last line can lack its newline
                whole += len(line)
                if line.strip():
                    self.ids.add(self._record_id(line, n))
            size = fh.seek(0, os.SEEK_END)
        if whole != size:  # a torn last line from a crash: drop it
            with self.path.open("r+b") as fh:
                fh.truncate(whole)
                os.fsync(fh.fileno())
        return size - whole

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
        # a lone surrogate (undecodable argv, a hostile server) has no UTF-8 form: it is
        # written as its JSON escape instead of failing the write
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode(
            "utf-8", "backslashreplace")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(line)
            while view:  # a short write (a signal, a full pipe or disk) returns what it wrote
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.ids.add(rid)
        return True


def _whole_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of `path` that end in a newline (a torn last line is no record)."""
    with Path(path).open("rb") as fh:
        for line in fh:
            if line.strip() and line.endswith(b"\n"):
                yield line


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
    A torn last line (a crash mid-write) is no record: it is not parsed, and dropped if `src`
    is rewritten.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists() or not any(predicate(json.loads(line)) for line in _whole_lines(src)):
        return 0
    moved = 0
    # streamed (memory flat in the file's size); `archive` is fsync'd and closed before `kept`
    # replaces `src` (the inner context exits first)
    with _atomic_file(src) as kept, dst.open("ab") as archive:
        for line in _whole_lines(src):
            if predicate(json.loads(line)):
                archive.write(line)
                moved += 1
            else:
                kept.write(line)
        archive.flush()
        os.fsync(archive.fileno())
    return moved


def write_json_atomic(path: Path, data: Any) -> None:
    _replace_atomic(Path(path), json.dumps(data, indent=2, ensure_ascii=False,
                                           default=str).encode("utf-8"))


def _replace_atomic(path: Path, data: bytes) -> None:
    """Replace `path` by `data` whole or not at all, durably."""
    with _atomic_file(path) as fh:
        fh.write(data)


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file to write that replaces `path` whole when the block ends, or not at all on an
    error: a temp file of its own in the same folder (two writers never share one), fsync'd
    before the rename, the folder after."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would make run.json private to its writer
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders (Windows): the rename stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def jsonl_to_parquet(src: Path, dst: Path, batch_rows: int = 1000) -> int:
    """Flatten one level (nested values as JSON text) so any Parquet reader can open it.

    Two streamed passes, so memory is flat in the file's size: the first learns each column's
    type, the second writes `batch_rows` records at a time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds: dict[str, set[type]] = {}  # column -> Python types of its non-null values
    for rec in read_jsonl(src):
        for k, v in rec.items():
            kinds.setdefault(k, set()).update(() if v is None else (type(v),))
    if not kinds:
        return 0
    schema = pa.schema([(k, _arrow_type(t)) for k, t in kinds.items()])
    text = {k for k in kinds if schema.field(k).type == pa.string()}

    def cell(key: str, value: Any) -> Any:
        if value is None or key not in text:
            return value
        if not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)  # nested values, mixed-type columns
        # Parquet text is UTF-8: a lone surrogate becomes U+FFFD there (the JSONL keeps it)
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")

    rows, n = [], 0
    tmp = dst.with_suffix(".parquet.tmp")
    with pq.ParquetWriter(tmp, schema) as out:
        for rec in read_jsonl(src):
            rows.append({k: cell(k, rec.get(k)) for k in kinds})
            if len(rows) == batch_rows:
                out.write_table(pa.Table.from_pylist(rows, schema=schema))
                n, rows = n + len(rows), []
        if rows:
            out.write_table(pa.Table.from_pylist(rows, schema=schema))
            n += len(rows)
    os.replace(tmp, dst)
    return n


def _arrow_type(kinds: set[type]) -> Any:
    """One column's Parquet type: its scalar type where all values share one, else text."""
    import pyarrow as pa

    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    return pa.null() if not kinds else pa.string()
