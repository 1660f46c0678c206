"""HTTP latency of the three product endpoints on a real ``shoprank serve``, funnel vs plain index, in one run.

    .venv/bin/python -m bench.endpoints [--seconds 10] [--concurrency 1 4] [--out docs/bench/endpoints.md]

Each configuration is its own ``shoprank serve`` process on loopback (embedded int8 ONNX, full
catalogue), with its own state directory under ``var/bench/endpoints/`` so the index snapshots
built by the first run are restored by the next. The configurations differ only in the index:
the Matryoshka funnel (64-d ANN, 8 × k rescored at 384-d; the default), the flat 384-d index
(``SHOPRANK_INDEX_SHORTLIST_DIM=0``), and the funnel searched by FAISS's default OpenMP team of every
core instead of one thread (``SHOPRANK_INDEX_SEARCH_THREADS=0``). Requests are real: test-split search terms for
``/v1/retrieve`` (k=20), each test query with its labelled candidates for ``/v1/rank`` (about 7 per
query) and with 50 catalogue titles, and catalogue items for ``/v1/keyphrases/recommend`` (k=20;
the first call per item computes, later ones may be served from the recommendation cache, so items
are not repeated within a cell). Closed-loop load from ``concurrency`` client threads (stdlib
``http.client`` with keep-alive) for ``--seconds`` per cell after a warm-up.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.closed_loop import closed_loop
from service.settings import Settings
from training.data import labelled_pairs, split_frame

ROOT = Path(__file__).resolve().parents[1]
# the first is the baseline of the ratios; the state dir is named by the first word, so the two funnels share one
CONFIGS = {"funnel 64->384 x8 (default)": {},
           "flat 384-d": {"SHOPRANK_INDEX_SHORTLIST_DIM": "0"},
           "funnel, FAISS on every core": {"SHOPRANK_INDEX_SEARCH_THREADS": "0"}}


def start_server(name: str, env_extra: dict[str, str], port: int, timeout_s: float = 900,
                 state: Path | None = None, log: Path | None = None) -> subprocess.Popen:
    """``shoprank serve`` on loopback with its own state dir (default ``var/bench/endpoints/<name>``) and its
    output appended to ``log`` (default: discarded); returns once /readyz says 200."""
    state = state or ROOT / "var" / "bench" / "endpoints" / name.split()[0]
    env = {**os.environ, "SHOPRANK_PORT": str(port), "SHOPRANK_STATE_DIR": str(state),
           "SHOPRANK_LOG_LEVEL": "WARNING", **env_extra}
    with log.open("ab") if log else open(os.devnull, "wb") as out:  # the child keeps its own copy
        proc = subprocess.Popen([str(Path(sys.executable).parent / "shoprank"), "serve"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"{name}: shoprank serve exited with {proc.returncode}\n{tail}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                print(f"{name}: ready after {time.monotonic() - started:.1f} s", flush=True)
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise TimeoutError(f"{name}: not ready after {timeout_s} s")


def requests_by_endpoint(settings: Settings) -> dict[str, list[tuple[str, dict]]]:
    """Real request bodies per benchmarked endpoint."""
    pairs = labelled_pairs(settings.data_dir)
    test = split_frame(pairs, "test")
    groups = [(q, g) for q, g in test.groupby("query", sort=True) if len(g) >= 2]
    titles = pairs.drop_duplicates("item_id")[["item_id", "title"]].to_numpy()
    rng = np.random.default_rng(0)

    def items(rows) -> list[dict]:
        return [{"id": str(i), "title": t} for i, t in rows]

    return {
        "retrieve k=20": [("/v1/retrieve", {"query": q, "k": 20}) for q, _ in groups],
        "rank (labelled, ~7)": [("/v1/rank", {"query": q, "items": items(g[["item_id", "title"]].to_numpy())})
                                for q, g in groups],
        "rank 50 candidates": [("/v1/rank", {"query": q, "items": items(titles[rng.choice(len(titles), 50,
                                                                                          replace=False)])})
                               for q, _ in groups[:300]],
        "keyphrases k=20": [("/v1/keyphrases/recommend", {"item_id": str(i), "k": 20})
                            for i in rng.permutation(titles[:, 0])[:5000]],
    }


def run_cell(port: int, bodies: list[tuple[str, dict]], *, seconds: float, concurrency: int, start: int = 0) -> dict:
    """Closed-loop load from body ``start`` on; each body is used at most once (cycled only if the cells outrun
    them), so a keyphrase cell never reads recommendations an earlier cell cached."""
    cursor = iter(range(start, 10**12))  # next() on a range iterator is atomic under the GIL: threads share it
    errors: list[int] = []

    def make_call():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # one keep-alive connection per thread

        def call() -> None:
            path, body = bodies[next(cursor) % len(bodies)]
            conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(response.status)

        return call

    latencies, elapsed = closed_loop(make_call, concurrency=concurrency, seconds=seconds)
    return {"p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)),
            "p99_ms": float(np.percentile(latencies, 99)), "rps": len(latencies) / elapsed,
            "calls": len(latencies), "errors": len(errors)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        help="which configurations, in this order (the first is the ratios' baseline)")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)
    configs = {name: CONFIGS[name] for name in args.configs}

    workloads = requests_by_endpoint(Settings())
    results: dict[tuple[str, str, int], dict] = {}
    for offset, (name, env_extra) in enumerate(configs.items()):
        port = args.port + offset
        server = start_server(name, env_extra, port)
        try:
            for endpoint, bodies in workloads.items():
                used = run_cell(port, bodies[:20], seconds=1.0, concurrency=1)["calls"]  # warm-up
                for concurrency in args.concurrency:
                    row = run_cell(port, bodies, seconds=args.seconds, concurrency=concurrency, start=used)
                    used += row["calls"]
                    results[(name, endpoint, concurrency)] = row
                    print(json.dumps({"config": name, "endpoint": endpoint, "concurrency": concurrency,
                                      **{k: round(v, 2) for k, v in row.items()}}), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)

    base = next(iter(configs))
    lines = [f"{os.cpu_count()} CPUs, {args.seconds:g} s per cell, embedded int8 ONNX, full catalogue", "",
             "| endpoint | clients | configuration | p50 / p95 / p99 ms | rps | p50 vs first | errors |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for endpoint in workloads:
        for concurrency in args.concurrency:
            first = results[(base, endpoint, concurrency)]
            for name in configs:
                row = results[(name, endpoint, concurrency)]
                lines.append(f"| {endpoint} | {concurrency} | {name} | {row['p50_ms']:.1f} / {row['p95_ms']:.1f} / "
                             f"{row['p99_ms']:.1f} | {row['rps']:.0f} | {row['p50_ms'] / first['p50_ms']:.2f}x | "
                             f"{row['errors']} |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
