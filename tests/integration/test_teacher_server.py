"""The teacher client against a REAL local HTTP server speaking the OpenAI chat-completions protocol.

The server (FastAPI under uvicorn, on a free loopback port) judges by word overlap, returns
``logprobs.content[].top_logprobs`` like OpenAI/vLLM do, answers each new prompt's first request
with 429 (Retry-After: 0), never answers prompts containing "flaky" (503), stalls the first
request of prompts containing "slow" past the client's timeout, checks the bearer key, and
records how many requests were in flight at once.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.integration.servers import free_port
from training.labels.cache import JudgementCache
from training.labels.client import TeacherClient, TeacherError
from training.labels.run import label_pairs

pytestmark = pytest.mark.integration
API_KEY = "test-key"


def judge_distribution(user_prompt: str) -> list[float]:
    """The fake judge's belief: all query words in the title → exact-leaning, some → partial, none → irrelevant."""
    lines = dict(line.split(": ", 1) for line in user_prompt.splitlines() if ": " in line)
    query, title = set(lines["Query"].lower().split()), set(lines["Product title"].lower().split())
    share = len(query & title) / max(len(query), 1)
    return [0.05, 0.15, 0.80] if share == 1 else ([0.10, 0.70, 0.20] if share > 0 else [0.85, 0.10, 0.05])


class JudgeServer:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.complete)

    async def complete(self, request: Request):
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        self.requests[prompt] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)
            if self.requests[prompt] == 1:
                if "slow" in prompt:
                    await asyncio.sleep(1.0)  # past the client's timeout: it gives up and retries
                return JSONResponse({"error": {"message": "rate limited"}}, status_code=429, headers={"Retry-After": "0"})
            if "flaky" in prompt:
                return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
            probs = judge_distribution(prompt)
            answer = str(int(np.argmax(probs)))
            choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
            if body.get("logprobs") and body["model"] != "plain-model":
                top = [{"token": str(k), "logprob": math.log(p * 0.95)} for k, p in enumerate(probs)]
                top.append({"token": "The", "logprob": math.log(0.05)})
                choice["logprobs"] = {"content": [{"token": answer, "logprob": math.log(max(probs) * 0.95),
                                                   "top_logprobs": top[: body.get("top_logprobs", 5)]}]}
            return {"id": "cmpl-1", "object": "chat.completion", "model": body["model"], "choices": [choice]}
        finally:
            self.in_flight -= 1


@pytest.fixture(scope="module")
def judge():
    state = JudgeServer()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(state.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "judge server did not start"
        time.sleep(0.05)
    state.base_url = f"http://127.0.0.1:{port}/v1"
    yield state
    server.should_exit = True
    thread.join(timeout=5)


def client(judge, tmp_path, **overrides) -> TeacherClient:
    options = dict(base_url=judge.base_url, model="judge-model", api_key=API_KEY, concurrency=4, timeout_s=0.3,
                   max_retries=3, backoff_s=0.01, cache=JudgementCache(tmp_path / "cache.sqlite"))
    return TeacherClient(**(options | overrides))


PAIRS = pd.DataFrame({
    "query": ["cordless drill", "cordless drill", "cordless drill", "slow cooker", "wood glue", "garden hose", "door knob"],
    "title": ["DEWALT cordless drill kit", "drill bit set", "ceramic tile", "Crock-Pot slow cooker", "Titebond wood glue",
              "hose reel cart", "brass door knob set"],
})


def test_soft_labels_from_logprobs_with_retries_concurrency_and_cache(judge, tmp_path):
    teacher = client(judge, tmp_path)
    labels, report = label_pairs(pairs=PAIRS, client=teacher, progress=False)

    assert report["judged"] == len(PAIRS) and report["stats"]["failed"] == 0
    assert report["stats"]["soft"] == len(PAIRS) and labels["soft"].all()
    # every prompt's first request was rate-limited, except "slow cooker" whose first request timed out
    assert report["stats"]["retry_reasons"] == {"HTTP 429": len(PAIRS) - 1, "ReadTimeout": 1}
    for row in labels.itertuples():
        user = f"Query: {row.query}\nProduct title: {row.title}"
        expected = judge_distribution(user)
        np.testing.assert_allclose([row.p_irrelevant, row.p_partial, row.p_exact], expected, atol=1e-9)
    assert labels["label"].tolist() == [2, 1, 0, 2, 2, 1, 2]
    assert 1 < judge.max_in_flight <= 4
    assert sum(report["distribution_soft"].values()) == pytest.approx(1.0)

    asked = sum(judge.requests.values())
    again, report_again = label_pairs(pairs=PAIRS, client=client(judge, tmp_path), progress=False)
    assert sum(judge.requests.values()) == asked, "a cached pair must not be asked again"
    assert report_again["stats"]["cache_hits"] == len(PAIRS)
    pd.testing.assert_frame_equal(again.drop(columns="source"), labels.drop(columns="source"))


def test_hard_labels_when_the_server_offers_no_logprobs(judge, tmp_path):
    labels, report = label_pairs(pairs=PAIRS.head(3), client=client(judge, tmp_path, model="plain-model"), progress=False)
    assert report["stats"]["hard"] == 3 and not labels["soft"].any()
    assert labels["label"].tolist() == [2, 1, 0]
    assert set(labels["p_exact"]) <= {0.0, 1.0}


def test_a_pair_that_keeps_failing_is_reported_not_cached(judge, tmp_path):
    pairs = pd.DataFrame({"query": ["flaky shelf", "wall shelf"], "title": ["pine wall shelf", "pine wall shelf"]})
    teacher = client(judge, tmp_path, max_retries=2)
    labels, report = label_pairs(pairs=pairs, client=teacher, progress=False)
    assert labels["query"].tolist() == ["wall shelf"]
    assert report["stats"]["failed"] == 1 and "HTTP 503" in report["first_errors"][0]
    assert judge.requests["Query: flaky shelf\nProduct title: pine wall shelf\nRelevance (0, 1 or 2):"] == 3
    assert len(teacher.cache) == 1


def test_wrong_key_is_a_configuration_error_not_retried(judge, tmp_path):
    teacher = client(judge, tmp_path, api_key="wrong")
    with pytest.raises(TeacherError, match="401"):
        teacher.judge_many([("bath mat", "cotton bath mat")], progress=False)
    assert teacher.stats.retries == 0


def test_reweighting_moves_llm_labels_to_the_human_prior(judge, tmp_path):
    target = [0.16, 0.38, 0.46]
    labels, report = label_pairs(pairs=PAIRS, client=client(judge, tmp_path), target=target, mode="reweight",
                                 progress=False)
    np.testing.assert_allclose(labels[["p_irrelevant", "p_partial", "p_exact"]].mean(), target, atol=1e-6)
    assert report["adjusted"]["mode"] == "reweight"


def test_label_split_end_to_end_from_settings(judge, tmp_path):
    """The `shoprank label` path: Settings → real data split → judge server → parquet + report."""
    import json
    from pathlib import Path

    from training.labels.run import label_split
    from training.labels.settings import TeacherSettings

    teacher = TeacherSettings(base_url=judge.base_url, model="judge-model", api_key=API_KEY, concurrency=4,
                              backoff_s=0.01, cache_path=tmp_path / "cache.sqlite")
    out = tmp_path / "labels" / "validation.parquet"
    data = Path(__file__).resolve().parents[2] / "data"
    report = label_split(teacher=teacher, data_dir=data, split="validation", out_path=out, limit=12, progress=False)
    labels = pd.read_parquet(out)
    assert len(labels) == 12 == report["judged"] and labels["soft"].all()
    assert json.loads(out.with_suffix(".json").read_text())["distribution_hard"] == report["distribution_hard"]
    assert set(report["human_distribution_hard"]) == {"irrelevant", "partial", "exact"}
    with pytest.raises(TeacherError, match="SHOPRANK_TEACHER_BASE_URL"):
        label_split(teacher=TeacherSettings(base_url=None, cache_path=tmp_path / "c2.sqlite"), data_dir=data, split="validation",
                    out_path=tmp_path / "x.parquet", limit=1, progress=False)
