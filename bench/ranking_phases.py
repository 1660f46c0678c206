"""Phased ranking over HTTP: full cross-encoder vs the phased default vs the first phase alone, in one run.

    .venv/bin/python -m bench.ranking_phases [--rounds 30] [--out docs/bench/ranking_phases.md]

One real ``shoprank serve`` process (uvicorn, embedded int8 ONNX, the full catalogue, the default index
layout; state in ``var/bench/ranking_phases/`` so the index snapshots are built once), with the pair-score
cache off (``SHOPRANK_PAIR_CACHE_SIZE=0``): otherwise the second configuration would read the first one's
cross-encoder scores. The configurations are per-request ``rerank_depth`` values on the same server, called
round-robin (full, default, first phase only, full, …) with one client, so the three see the same load
from whatever else runs on the machine; the ratios compare them, not the absolute times.

Workloads, from real Home Depot data: ``/v1/rank`` with 10 / 50 / 100 / 200 catalogue items (ids and
titles as stored, so the first phase reads their vectors from the index) for test-split search terms; 100
items whose titles differ from the stored ones (every item embedded); ``/v1/keyphrases/recommend`` k=20
with inline ``item`` bodies of distinct catalogue titles (never served from the recommendation cache).
At 100 candidates the curve's depths are timed too (their p50 ratios go to the JSON for the plot).

It also reads the first phase's model cost per candidate from the server's own inference metrics
(``shoprank_inference_latency_seconds`` / ``shoprank_inference_batch_size`` for ``first_phase``), and the
test-split quality of each configuration from ``docs/report/phase_curve_test.json``
(``python -m training.evaluate.phase_curve --split test``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from bench.endpoints import start_server
from service.catalogue import load_catalogue
from service.settings import Settings
from training.data import labelled_pairs, split_frame

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "var" / "bench" / "ranking_phases"
CURVE_DEPTHS = (5, 10, 20, 30, 50)


def call(conn: http.client.HTTPConnection, path: str, body: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    elapsed = (time.perf_counter() - start) * 1000
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {data[:300]!r}")
    return elapsed, json.loads(data)


def workloads(settings: Settings, rounds: int) -> dict[str, list[tuple[str, dict]]]:
    """Per workload, ``rounds`` request bodies (without ``rerank_depth``; the configuration adds it)."""
    queries = sorted(split_frame(labelled_pairs(settings.data_dir), "test")["query"].unique())
    catalogue = load_catalogue(settings.data_dir)
    ids, titles = np.array(catalogue.item_ids, dtype=object), np.array(catalogue.item_titles, dtype=object)
    rng = np.random.default_rng(0)
    picked = rng.choice(len(queries), rounds, replace=False)

    def items(n: int, *, suffix: str = "") -> list[dict]:
        rows = rng.choice(len(ids), n, replace=False)
        return [{"id": str(ids[r]), "title": f"{titles[r]}{suffix}"} for r in rows]

    out = {f"rank {n}": [("/v1/rank", {"query": queries[q], "items": items(n)}) for q in picked]
           for n in (10, 50, 100, 200)}
    out["rank 100, titles not as stored (embedded)"] = [
        ("/v1/rank", {"query": queries[q], "items": items(100, suffix=" - new listing")}) for q in picked]
    kp_items = rng.choice(len(titles), rounds, replace=False)
    out["keyphrases k=20 (inline item)"] = [("/v1/keyphrases/recommend", {"item": {"title": str(titles[r])}, "k": 20})
                                            for r in kp_items]
    return out


def configurations(endpoint: str, settings: Settings) -> dict[str, int | None]:
    full = settings.max_candidates if endpoint == "/v1/rank" else settings.max_k * settings.keyphrase_candidates_factor
    return {"full cross-encoder": full, "phased (default)": None, "first phase only": 0}


def scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    return conn.getresponse().read().decode()


def metric(text: str, name: str, model: str) -> float:
    match = re.search(rf'^{name}{{backend="embedded",model="{model}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def run(port: int, bodies: list[tuple[str, dict]], configs: dict[str, int | None]) -> dict[str, dict]:
    """Round-robin over the configurations, one body at a time; p50/p95 per configuration."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies: dict[str, list[float]] = {name: [] for name in configs}
    phases: dict[str, list[int]] = {name: [] for name in configs}
    for path, body in bodies[:2]:  # warm-up
        for depth in configs.values():
            call(conn, path, body if depth is None else body | {"rerank_depth": depth})
    for path, body in bodies:
        for name, depth in configs.items():
            ms, answer = call(conn, path, body if depth is None else body | {"rerank_depth": depth})
            latencies[name].append(ms)
            rows = answer.get("items", answer.get("keyphrases", []))
            phases[name].append(sum(r.get("phase", 2) == 2 for r in rows))
    return {name: {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)), "calls": len(v),
                   "phase2_mean": float(np.mean(phases[name]))} for name, v in latencies.items()}


def environment() -> str:
    load = os.getloadavg()
    ps = subprocess.run(["ps", "-eo", "pcpu,etime,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    busy = [line.strip()[:110] for line in ps.splitlines()[1:] if float(line.split()[0]) >= 10][:6]
    return f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; busy processes (%CPU, elapsed, command): " + \
        "; ".join(busy)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="requests per workload and configuration")
    parser.add_argument("--port", type=int, default=18190)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "ranking_phases.md")
    parser.add_argument("--quality", type=Path, default=ROOT / "docs" / "report" / "phase_curve_test.json")
    args = parser.parse_args(argv)
    settings = Settings()
    work = workloads(settings, args.rounds)
    server = start_server("phased", {"SHOPRANK_PAIR_CACHE_SIZE": "0", "SHOPRANK_MODEL_SWAP_POLL_S": "0"}, args.port,
                          timeout_s=1800, state=STATE)
    before_env = environment()
    results: dict[str, dict[str, dict]] = {}
    try:
        before = scrape(args.port)
        for name, bodies in work.items():
            results[name] = run(args.port, bodies, configurations(bodies[0][0], settings))
            print(json.dumps({"workload": name, **{c: {k: round(v, 1) for k, v in r.items()}
                                                   for c, r in results[name].items()}}), flush=True)
        after = scrape(args.port)
        curve = run(args.port, work["rank 100"], {"full": settings.max_candidates,
                                                  **{str(d): d for d in (0, *CURVE_DEPTHS, settings.rerank_depth)}})
        print(json.dumps({"curve, rank 100": {c: round(r["p50_ms"], 1) for c, r in curve.items()}}), flush=True)
        ready = json.loads(_get(args.port, "/readyz"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    after_env = environment()
    rows = metric(after, "shoprank_inference_batch_size_sum", "first_phase") - \
        metric(before, "shoprank_inference_batch_size_sum", "first_phase")
    seconds = metric(after, "shoprank_inference_latency_seconds_sum", "first_phase") - \
        metric(before, "shoprank_inference_latency_seconds_sum", "first_phase")
    per_candidate_ms = 1000 * seconds / rows if rows else float("nan")
    only = {n: results[f"rank {n}"]["first phase only"]["p50_ms"] for n in (10, 200)}
    marginal_ms = (only[200] - only[10]) / 190
    quality = json.loads(args.quality.read_text()) if args.quality.exists() else None
    summary = {"server": ready, "cpus": os.cpu_count(), "rounds": args.rounds, "results": results,
               "first_phase_model_ms_per_candidate": per_candidate_ms, "first_phase_marginal_ms_per_candidate": marginal_ms,
               "depth_p50_ratio": {c: r["p50_ms"] / curve["full"]["p50_ms"] for c, r in curve.items() if c != "full"},
               "depth_p50_ms": {c: r["p50_ms"] for c, r in curve.items()},
               "environment": {"before": before_env, "after": after_env}}
    summary["depth_p50_ratio"]["100"] = 1.0  # at 100 candidates, depth 100 is the full cross-encoder
    table = to_markdown(summary, quality, settings)
    print("\n" + table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    return conn.getresponse().read().decode()


def to_markdown(summary: dict, quality: dict | None, settings: Settings) -> str:
    lines = [(f"`{summary['server']['model_version']}`, {summary['server']['phasing']}; {summary['cpus']} CPUs, "
             f"{summary['rounds']} requests per cell and configuration, round-robin, one client, pair cache off"), "",
             "| workload | configuration | p50 / p95 ms | p50 vs full | items from phase 2 (mean) |",
             "| --- | --- | ---: | ---: | ---: |"]
    for workload, configs in summary["results"].items():
        full = configs["full cross-encoder"]["p50_ms"]
        for name, row in configs.items():
            lines.append(f"| {workload} | {name} | {row['p50_ms']:.1f} / {row['p95_ms']:.1f} | "
                         f"{row['p50_ms'] / full:.2f}x | {row['phase2_mean']:.1f} |")
    lines += ["", (f"First phase, model only (server metrics): {summary['first_phase_model_ms_per_candidate']:.4f} ms "
                  f"per candidate; whole first-phase path per extra candidate (p50 of first phase only, 200 vs 10 "
                  f"candidates): {summary['first_phase_marginal_ms_per_candidate']:.4f} ms."), "",
              "/v1/rank, 100 candidates, p50 by rerank_depth: " + ", ".join(
                  f"{d}: {ms:.1f} ms" for d, ms in summary["depth_p50_ms"].items()), "",
              f"While it ran: {summary['environment']['before']}", ""]
    if quality:
        default = settings.rerank_depth
        lines += [f"Test split ({quality['models']}), from `training/evaluate/phase_curve.py --split test`:", "",
                  "| candidates | configuration | NDCG@10 | RMSE | 3-level acc. | Kendall τ vs full |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for set_name, rows in quality["sets"].items():
            by_depth = {r["depth"]: r for r in rows}
            for name, depth in (("full cross-encoder", max(by_depth)), (f"phased (default, {default})", default),
                                ("first phase only", 0)):
                if depth in by_depth:
                    r = by_depth[depth]
                    lines.append(f"| {set_name} | {name} | {r['ndcg10']:.4f} | {r['rmse']:.4f} | {r['accuracy']:.4f} | "
                                 f"{r['kendall_tau']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
