"""The LLM teacher's settings: read by ``shoprank label`` only, so the service's settings do not carry them.

Same environment names as before the move (``SHOPRANK_TEACHER_<FIELD>``), listed in docs/training.md.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TeacherSettings(BaseSettings):
    """Any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, llama.cpp, OpenAI); unset = human labels."""

    model_config = SettingsConfigDict(env_prefix="SHOPRANK_TEACHER_", extra="ignore")

    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    model: str = "gpt-4o-mini"
    api_key: str | None = None
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(0.5, ge=0)  # first retry delay; doubles per attempt (with jitter)
    cache_path: Path = Path("artifacts/teacher_cache.sqlite")
