"""Embedded ONNX Runtime vs Triton: latency and throughput at batch 1 and 32, with concurrency, in one run.

    .venv/bin/python -m bench.triton_vs_embedded [--seconds 8] [--concurrency 1 8] [--out docs/bench/triton_vs_embedded.md]

Both backends run the same ONNX files from ``model_repo/`` through the same client code
(``Encoder`` / ``PairScorer``: tokenise, length-sorted sub-batches, post-process). Triton is the
real ``tritonserver`` from nvidia-pytriton serving the Python-backend mirror of the repository
(``training/export/python_backend.py``) with the repository's dynamic batching; the client talks
gRPC over loopback on the same machine, so Triton's figures include serialisation and the
server's queueing but no network. Each cell runs ``--seconds`` of closed-loop load from
``concurrency`` threads after a warm-up; rows/s counts texts (encoder) or pairs (ranker).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.closed_loop import closed_loop
from service.catalogue import load_catalogue
from service.inference.factory import make_backend, make_encoder, make_pair_scorer
from service.settings import Settings
from tests.integration.triton_server import TritonServer
from training.export.python_backend import python_backend_repository

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Cell:
    model: str
    batch: int
    concurrency: int


@dataclass(frozen=True)
class Result:
    p50_ms: float
    p95_ms: float
    rows_per_s: float
    calls: int


def workload(settings: Settings, model: str, batch: int, texts: list[str], queries: list[str]):
    """A callable that runs one request of ``batch`` rows, cycling through real catalogue texts."""
    backend = make_backend(settings)
    counter = iter(range(10**12))
    if model == "encoder":
        encoder = make_encoder(backend, settings)
        kind = "query" if batch == 1 else "item"
        source = queries if batch == 1 else texts

        def call() -> None:
            start = next(counter) * batch % (len(source) - batch)
            encoder.encode(source[start : start + batch], kind=kind)
    else:
        scorer = make_pair_scorer(backend, settings)

        def call() -> None:
            start = next(counter) * batch % (len(texts) - batch)
            scorer.score([queries[start % len(queries)]] * batch, texts[start : start + batch])
    return call, backend


def measure(call, *, concurrency: int, seconds: float, batch: int) -> Result:
    for _ in range(3):
        call()
    latencies, elapsed = closed_loop(lambda: call, concurrency=concurrency, seconds=seconds)
    return Result(float(np.percentile(latencies, 50)), float(np.percentile(latencies, 95)),
                  len(latencies) * batch / elapsed, len(latencies))


def table(results: dict[tuple[str, Cell], Result], cells: list[Cell]) -> str:
    lines = [("| model | batch | threads | embedded p50 / p95 ms | embedded rows/s | Triton p50 / p95 ms | Triton rows/s "
              "| Triton / embedded p50 | Triton / embedded rows/s |"),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for cell in cells:
        e, t = results[("embedded", cell)], results[("triton", cell)]
        lines.append(f"| {cell.model} | {cell.batch} | {cell.concurrency} | {e.p50_ms:.1f} / {e.p95_ms:.1f} | "
                     f"{e.rows_per_s:.0f} | {t.p50_ms:.1f} / {t.p95_ms:.1f} | {t.rows_per_s:.0f} | "
                     f"{t.p50_ms / e.p50_ms:.2f}× | {t.rows_per_s / e.rows_per_s:.2f}× |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-repo", type=Path, default=ROOT / "model_repo")
    parser.add_argument("--seconds", type=float, default=8.0, help="closed-loop load per cell")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--models", nargs="+", default=["encoder", "ranker"])
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads, both backends")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()

    catalogue = load_catalogue(ROOT / "data")
    rng = np.random.default_rng(0)
    texts = [catalogue.item_titles[i] for i in rng.permutation(len(catalogue.item_titles))[:4096]]
    queries = [catalogue.keyphrases[i] for i in rng.permutation(len(catalogue.keyphrases))[:4096]]
    cells = [Cell(m, b, c) for m in args.models for b in args.batches for c in args.concurrency]
    results: dict[tuple[str, Cell], Result] = {}
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp:
        served = python_backend_repository(source_repo=args.model_repo, target_repo=Path(tmp) / "repo",
                                           intra_op_threads=args.threads)
        with TritonServer(served) as triton:
            configs = {
                "embedded": Settings(inference="embedded", model_repo=args.model_repo, intra_op_threads=args.threads),
                "triton": Settings(inference="triton", model_repo=served, triton_url=triton.grpc_url,
                                   triton_timeout_s=60.0),
            }
            for cell in cells:
                for name, settings in configs.items():  # side by side, cell by cell
                    call, backend = workload(settings, cell.model, cell.batch, texts, queries)
                    results[(name, cell)] = measure(call, concurrency=cell.concurrency, seconds=args.seconds,
                                                    batch=cell.batch)
                    backend.close()
                    r = results[(name, cell)]
                    print(f"{name:8s} {cell.model:7s} batch {cell.batch:3d} × {cell.concurrency} threads: "
                          f"p50 {r.p50_ms:7.1f} ms  p95 {r.p95_ms:7.1f} ms  {r.rows_per_s:7.0f} rows/s  ({r.calls} calls)",
                          flush=True)
    header = (f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, {args.seconds:g} s per cell, "
              f"ONNX Runtime intra-op threads {args.threads}, model repository {args.model_repo.name}/")
    report = header + "\n\n" + table(results, cells)
    print("\n" + report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
