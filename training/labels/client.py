"""Concurrent client for an OpenAI-compatible ``/v1/chat/completions`` judge, with retry and cache.

httpx.AsyncClient + an asyncio semaphore bound the requests in flight (``teacher_concurrency``).
429, 408 and 5xx answers, timeouts and connection errors are retried with exponential backoff and
jitter (``Retry-After`` is honoured when the server sends it); other 4xx answers (bad key, unknown
model) are configuration errors and stop the run with ``TeacherError``. A pair that still fails
after ``max_retries`` is reported as failed and not cached, so the next run asks again.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx
import numpy as np
from tqdm.asyncio import tqdm as async_tqdm

from service.errors import ShopRankError
from training.labels.cache import JudgementCache, judgement_key
from training.labels.prompt import PROMPT_VERSION, build_messages, parse_answer, soft_label_from_logprobs
from training.labels.settings import TeacherSettings

RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


class TeacherError(ShopRankError):
    """The judge endpoint refused the request for a reason retrying cannot fix (key, model, payload)."""

    code = "teacher_error"


class PairToJudge(NamedTuple):
    query: str
    """The shopper's search term."""
    title: str
    """The product title."""
    category: str | None = None
    """Optional product category (Home Depot has none)."""


@dataclass(frozen=True)
class Judgement:
    """One teacher answer: class probabilities over irrelevant / partial / exact."""

    probs: tuple[float, float, float]
    soft: bool  # True when read from log-probabilities, False for a one-hot from the answer text
    cached: bool = False

    @property
    def label(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def expected(self) -> float:
        """E[y] on 0–2 (add 1 for the public 1–3 scale)."""
        return float(self.probs[1] + 2 * self.probs[2])


@dataclass
class TeacherStats:
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    failed: int = 0
    unparseable: int = 0
    soft: int = 0
    hard: int = 0
    retry_reasons: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


class TeacherClient:
    """Judge (query, title, category) pairs with an LLM; see module docstring for the failure policy."""

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, concurrency: int = 8,
                 timeout_s: float = 30.0, max_retries: int = 5, backoff_s: float = 0.5,
                 cache: JudgementCache | None = None, request_logprobs: bool = True, seed: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.cache = cache
        self.request_logprobs = request_logprobs
        self.stats = TeacherStats()
        self._rng = random.Random(seed)

    @classmethod
    def from_settings(cls, teacher: TeacherSettings, *, cache: JudgementCache | None = None) -> TeacherClient:
        if not teacher.base_url:
            raise TeacherError("no teacher endpoint: set SHOPRANK_TEACHER_BASE_URL (the shipped models use human labels)")
        return cls(base_url=teacher.base_url, model=teacher.model, api_key=teacher.api_key,
                   concurrency=teacher.concurrency, timeout_s=teacher.timeout_s,
                   max_retries=teacher.max_retries, backoff_s=teacher.backoff_s, cache=cache)

    def _key(self, pair: PairToJudge) -> str:
        return judgement_key(model=self.model, prompt_version=PROMPT_VERSION, query=pair.query,
                             title=pair.title, category=pair.category)

    def _body(self, pair: PairToJudge) -> dict:
        body = {"model": self.model, "messages": build_messages(query=pair.query, title=pair.title, category=pair.category),
                "temperature": 0, "max_tokens": 4}
        if self.request_logprobs:
            body |= {"logprobs": True, "top_logprobs": 5}
        return body

    def _delay_s(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None:
            try:
                return min(float(retry_after), MAX_BACKOFF_S)
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        return min(self.backoff_s * 2**attempt * (0.5 + self._rng.random()), MAX_BACKOFF_S)

    async def _post(self, client: httpx.AsyncClient, pair: PairToJudge) -> dict | None:
        """The completion JSON, or None once retries are exhausted."""
        for attempt in range(self.max_retries + 1):
            response = None
            try:
                self.stats.requests += 1
                response = await client.post("/chat/completions", json=self._body(pair))
                if response.status_code == 200:
                    return response.json()
                if response.status_code not in RETRIABLE_STATUS:
                    raise TeacherError(f"judge endpoint answered {response.status_code}: {response.text[:200]}")
                reason = f"HTTP {response.status_code}"
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                reason = type(exc).__name__
            if attempt == self.max_retries:
                self.stats.errors.append(f"{pair.query!r}: {reason} after {attempt + 1} attempts")
                return None
            self.stats.retries += 1
            self.stats.retry_reasons[reason] += 1
            await asyncio.sleep(self._delay_s(attempt, response))
        return None

    def _read(self, completion: dict) -> Judgement | None:
        choice = completion["choices"][0]
        probs = soft_label_from_logprobs((choice.get("logprobs") or {}).get("content"))
        if probs is not None:
            return Judgement(probs=tuple(float(p) for p in probs), soft=True)
        label = parse_answer(choice.get("message", {}).get("content"))
        if label is None:
            return None
        return Judgement(probs=tuple(float(i == label) for i in range(3)), soft=False)

    async def _judge(self, client: httpx.AsyncClient, gate: asyncio.Semaphore, pair: PairToJudge) -> Judgement | None:
        key = self._key(pair)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return Judgement(probs=tuple(hit["probs"]), soft=hit["soft"], cached=True)
        async with gate:
            completion = await self._post(client, pair)
        if completion is None:
            self.stats.failed += 1
            return None
        judgement = self._read(completion)
        if judgement is None:
            self.stats.unparseable += 1
            return None
        if judgement.soft:
            self.stats.soft += 1
        else:
            self.stats.hard += 1
        if self.cache is not None:
            self.cache.put(key, {"probs": list(judgement.probs), "soft": judgement.soft})
        return judgement

    async def judge_many_async(self, pairs: Sequence[PairToJudge], *, progress: bool = True) -> list[Judgement | None]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout_s, limits=limits) as client:
            tasks = [self._judge(client, gate, PairToJudge(*pair)) for pair in pairs]
            return await async_tqdm.gather(*tasks, desc="teacher", disable=not progress, mininterval=5)

    def judge_many(self, pairs: Sequence[PairToJudge], *, progress: bool = True) -> list[Judgement | None]:
        """Judge every pair (cached ones without a request); None where the judge failed or was unreadable."""
        return asyncio.run(self.judge_many_async(pairs, progress=progress))
