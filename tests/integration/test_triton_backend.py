"""The Triton backend against a real ``tritonserver`` serving the project's ONNX files.

Congruence with embedded ONNX Runtime (same tokenised tensors in, outputs compared within a
tolerance, the max abs diff printed), metadata read from the server, batches split above
``max_batch_size``, and dynamic batching seen in the server's own statistics.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service.catalogue import load_catalogue
from service.inference.factory import make_encoder, make_pair_scorer
from service.inference.onnx_local import OnnxLocalBackend
from service.inference.tokenize import TextTokenizer
from service.inference.triton import TritonBackend
from service.settings import Settings
from training.export.spec import read_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5  # same tensors, same ONNX file, same ONNX Runtime: only float noise may differ


@pytest.fixture(scope="module")
def settings(triton, triton_repo: Path) -> Settings:
    return Settings(inference="triton", triton_url=triton.grpc_url, model_repo=triton_repo, triton_retries=1,
                    triton_timeout_s=30.0)


@pytest.fixture(scope="module")
def backends(settings: Settings):
    remote, local = TritonBackend(settings), OnnxLocalBackend(settings.model_repo, intra_op_threads=1)
    yield remote, local
    remote.close()
    local.close()


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(ROOT / "data", limit=300)


def test_metadata_comes_from_the_server_config(backends, triton_repo: Path) -> None:
    remote, _ = backends
    for model in ("encoder", "ranker"):
        spec, info = read_config(triton_repo / model), remote.model_info(model)
        assert info.max_batch == spec.max_batch_size and info.extra["backend"] == "triton"
        assert [(t.name, t.dtype) for t in info.inputs] == [(t.name, t.dtype) for t in spec.inputs]
        assert [(t.name, t.shape) for t in info.outputs] == [(t.name, (-1, *t.dims)) for t in spec.outputs]
        assert info.version == max(p.name for p in (triton_repo / model).glob("[0-9]*"))


def test_encoder_outputs_equal_embedded_onnx_runtime(backends, settings: Settings, catalogue) -> None:
    remote, local = backends
    titles, queries = catalogue.item_titles[:200], catalogue.keyphrases[:200]
    diffs = []
    for texts, kind in ((titles, "item"), (queries, "query")):
        via_triton = make_encoder(remote, settings).encode(texts, kind=kind)
        in_process = make_encoder(local, settings).encode(texts, kind=kind)
        diffs.append(float(np.abs(via_triton - in_process).max()))
    print(f"encoder max abs diff Triton vs embedded: {max(diffs):.2e} over {2 * 200} texts")
    assert max(diffs) <= TOLERANCE


def test_ranker_outputs_equal_embedded_onnx_runtime(backends, settings: Settings, catalogue) -> None:
    remote, local = backends
    queries = [catalogue.keyphrases[i % len(catalogue.keyphrases)] for i in range(0, 3000, 15)]
    titles = catalogue.item_titles[: len(queries)]
    heads = [make_pair_scorer(b, settings).score(queries, titles) for b in (remote, local)]
    tokenised = make_pair_scorer(local, settings).tokenizer()(queries[:64], titles[:64])
    raw = [b.infer("ranker", tokenised) for b in (remote, local)]
    diffs = {
        "p_partial_or_better": np.abs(heads[0].relevance.p_partial_or_better - heads[1].relevance.p_partial_or_better).max(),
        "expected": np.abs(heads[0].relevance.expected - heads[1].relevance.expected).max(),
        "ctr": np.abs(heads[0].ctr - heads[1].ctr).max(),
        "relevance_logits": np.abs(raw[0]["relevance_logits"] - raw[1]["relevance_logits"]).max(),
        "engagement_logits": np.abs(raw[0]["engagement_logits"] - raw[1]["engagement_logits"]).max(),
    }
    print("ranker max abs diff Triton vs embedded over", len(queries), "pairs:",
          {k: f"{float(v):.2e}" for k, v in diffs.items()})
    assert max(float(v) for v in diffs.values()) <= TOLERANCE
    assert np.std(heads[0].relevance.expected) > 0  # not a constant model


def test_first_phase_outputs_equal_embedded_onnx_runtime(backends, settings: Settings, triton_repo: Path,
                                                         catalogue) -> None:
    """The first phase (two vectors and a task id in, the ranker's four logits out) through the Python backend."""
    if not (triton_repo / "first_phase").exists():
        pytest.skip("the model repository has no first_phase model")
    remote, local = backends
    spec, info = read_config(triton_repo / "first_phase"), remote.model_info("first_phase")
    assert [(t.name, t.dtype) for t in info.inputs] == [(t.name, t.dtype) for t in spec.inputs]
    vectors = make_encoder(local, settings).encode(catalogue.item_titles[:150] + catalogue.keyphrases[:150])
    feed = {"query_embedding": vectors[150:], "item_embedding": vectors[:150],
            "task_id": np.arange(150, dtype=np.int64) % 3}
    out = [b.infer("first_phase", feed) for b in (remote, local)]
    diffs = {name: float(np.abs(out[0][name] - out[1][name]).max()) for name in ("relevance_logits", "engagement_logits")}
    print("first phase max abs diff Triton vs embedded over 150 pairs:", diffs)
    assert out[0]["relevance_logits"].shape == (150, 2) and max(diffs.values()) <= TOLERANCE


def test_batches_above_max_batch_size_are_split(backends, triton, catalogue) -> None:
    remote, local = backends
    max_batch = remote.model_info("encoder").max_batch
    texts = (catalogue.item_titles * 2)[: max_batch * 2 + 7]
    tokens = TextTokenizer(max((triton.repo / "encoder").glob("[0-9]*/tokenizer.json")), max_tokens=32)(texts)
    before = _batch_sizes(triton.statistics("encoder"))
    out = remote.infer("encoder", tokens)["embedding"]
    # dynamic int8 depends on batch composition (shared/STACK.md), so compare with the same chunks run locally
    chunks = [local.infer("encoder", {k: v[i : i + max_batch] for k, v in tokens.items()})["embedding"]
              for i in range(0, len(texts), max_batch)]
    np.testing.assert_allclose(out, np.concatenate(chunks), atol=TOLERANCE)
    new = {size: count - before.get(size, 0) for size, count in _batch_sizes(triton.statistics("encoder")).items()}
    assert out.shape[0] == len(texts) and max(s for s, c in new.items() if c) <= max_batch


def test_dynamic_batching_merges_concurrent_requests(backends, settings: Settings, triton, catalogue) -> None:
    remote, local = backends
    encoder = make_encoder(remote, settings)
    encoder.encode(["warm up"], kind="query")
    before = _settled_counts(triton, "encoder")  # the warm-up (and earlier tests) fully counted
    errors: list[Exception] = []
    answers: dict[str, np.ndarray] = {}

    def one_by_one(offset: int) -> None:
        try:
            for text in catalogue.keyphrases[offset : offset + 20]:
                answers[text] = encoder.encode([text], kind="query")[0]  # one text per request, as queries arrive
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one_by_one, args=(20 * i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    inferences, executions = _counts_since(triton, "encoder", before, expected_inferences=16 * 20)
    print(f"dynamic batching: {inferences} requests in {executions} executions")
    assert not errors, errors[:3]
    assert inferences == 16 * 20
    assert executions < inferences
    # merged requests come back to their own callers: each answer is nearest to its own text's embedding
    # (int8 activation scales depend on the merged batch, so the vectors are close, not bit-equal)
    texts = sorted(answers)
    local_encoder = make_encoder(local, settings)
    alone = np.concatenate([local_encoder.encode([t], kind="query") for t in texts])
    similarity = np.stack([answers[t] for t in texts]) @ alone.T
    own = np.diag(similarity)
    print(f"merged answers vs each text alone: cosine min {own.min():.4f}, median {np.median(own):.4f}")
    assert (similarity.argmax(axis=1) == np.arange(len(texts))).all() and own.min() > 0.95


def _counts(stats: dict) -> tuple[int, int]:
    """(inference_count, execution_count) summed over the served versions."""
    models = stats["model_stats"]
    return (sum(int(m.get("inference_count", 0)) for m in models), sum(int(m.get("execution_count", 0)) for m in models))


# Triton records a request's statistics after it has sent the response, so on a loaded machine the last
# requests may not be counted yet when their callers return; the two helpers below wait for them.
def _settled_counts(triton, model: str, *, quiet_s: float = 0.5, timeout_s: float = 10.0) -> tuple[int, int]:
    """``_counts`` once they have not changed for ``quiet_s`` (or after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    counts, since = _counts(triton.statistics(model)), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.05)
        latest = _counts(triton.statistics(model))
        if latest != counts:
            counts, since = latest, time.monotonic()
    return counts


def _counts_since(triton, model: str, before: tuple[int, int], *, expected_inferences: int,
                  timeout_s: float = 10.0) -> tuple[int, int]:
    """Inferences and executions since ``before``, read until ``expected_inferences`` are counted or
    ``timeout_s`` passes (then what is counted, for the assertion to report)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = tuple(after - prior for after, prior in zip(_counts(triton.statistics(model)), before))
        if counts[0] >= expected_inferences or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def _batch_sizes(stats: dict) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for model in stats["model_stats"]:
        for entry in model.get("batch_stats", []):
            sizes[int(entry["batch_size"])] = sizes.get(int(entry["batch_size"]), 0) + int(entry["compute_infer"]["count"])
    return sizes
