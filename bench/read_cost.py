"""CPU the API process spends per read, by endpoint, for configurations side by side in one run.

    .venv/bin/python -m bench.read_cost --config "blas0:SHOPRANK_BLAS_THREADS=0" --config "blas1:" \\
        [--kinds retrieve,retrieve_dense,rank] [--calls 200] [--rounds 2] [--items 10000]

Each configuration is its own ``shoprank serve`` (embedded, the catalogue's first ``--items`` items, the
state directory shared so that later starts restore the first one's snapshots). One client sends
``--calls`` sequential requests per kind after 20 warm-up calls. The figure is the API process's own
user + system CPU time over those calls (``/proc/<pid>/stat``) divided by the calls, so that a cost paid
in threads the latency does not show (spinning pools) is counted too. The configurations alternate over
``--rounds`` rounds. Requests are like the freshness bench's readers': catalogue keyphrases as queries
(k = 20), ``/v1/rank`` with the query's own top 50 from a retrieve, and keyphrases for catalogue items.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from service.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def call(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, json.dumps(body) if body else None, {"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def start_api(env: dict, port: int, log: Path) -> subprocess.Popen:
    api = subprocess.Popen([str(ROOT / ".venv/bin/shoprank"), "serve"], cwd=ROOT, env=env | {"SHOPRANK_PORT": str(port)},
                           stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise RuntimeError(f"API exited: {log.read_text()[-2000:]}")
        try:
            if call(port, "GET", "/readyz")[0] == 200:
                return api
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("API not ready")


def requests_for(kind: str, port: int, queries: list[str], item_ids: list[str], rng: random.Random):
    """A generator of (method, path, body) for one read kind."""
    candidates: dict[str, list[dict]] = {}
    if kind == "rank":
        for query in queries[:60]:
            items = json.loads(call(port, "POST", "/v1/retrieve", {"query": query, "k": 50})[1])["items"]
            if len(items) >= 10:
                candidates[query] = [{"id": item["id"], "title": item["title"]} for item in items]
    while True:
        if kind == "rank":
            query = rng.choice(list(candidates))
            yield "POST", "/v1/rank", {"query": query, "items": candidates[query]}
        elif kind == "keyphrases":
            yield "POST", "/v1/keyphrases/recommend", {"item_id": rng.choice(item_ids), "k": 20}
        elif kind == "get":
            yield "GET", f"/v1/items/{rng.choice(item_ids)}", None
        else:  # retrieve, retrieve_dense, retrieve_lexical
            mode = kind.partition("_")[2] or "hybrid"
            yield "POST", "/v1/retrieve", {"query": rng.choice(queries), "k": 20, "mode": mode}


def measure(port: int, pid: int, kind: str, calls: int, queries: list[str], item_ids: list[str]) -> dict:
    stream = requests_for(kind, port, queries, item_ids, random.Random(1))
    for _ in range(20):
        call(port, *next(stream))
    latencies, cpu_before = [], process_cpu_s(pid)
    for _ in range(calls):
        started = time.perf_counter()
        status, body = call(port, *next(stream))
        if status != 200:
            raise RuntimeError(f"{kind}: HTTP {status} {body[:300]!r}")
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {"cpu_ms_per_call": 1000 * (process_cpu_s(pid) - cpu_before) / calls,
            "p50_ms": latencies[calls // 2], "mean_ms": sum(latencies) / calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", required=True,
                        help='name:VAR=value,VAR=value (environment of that configuration\'s API)')
    parser.add_argument("--kinds", default="retrieve,retrieve_dense,rank,keyphrases")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=18_191)
    parser.add_argument("--state-dir", type=Path, default=Path(tempfile.gettempdir()) / "shoprank-read-cost-state")
    args = parser.parse_args()

    catalogue = load_catalogue(ROOT / "data", limit=args.items)
    queries = random.Random(2).sample(catalogue.keyphrases, 200)
    item_ids = catalogue.item_ids[:200]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")} | {
        "SHOPRANK_STATE_DIR": str(args.state_dir), "SHOPRANK_CATALOGUE_LIMIT": str(args.items),
        "SHOPRANK_DATA_DIR": str(ROOT / "data"), "SHOPRANK_LOG_LEVEL": "WARNING", "SHOPRANK_MODEL_SWAP_POLL_S": "0"}
    configs = []
    for text in args.config:
        name, _, rest = text.partition(":")
        configs.append((name, dict(part.split("=", 1) for part in filter(None, rest.split(",")))))
    rows = []
    with tempfile.TemporaryDirectory() as logs:
        for round_n in range(args.rounds):
            for name, env in configs:
                api = start_api(base | env, args.port, Path(logs) / f"{name}-{round_n}.log")
                try:
                    for kind in args.kinds.split(","):
                        row = {"config": name, "round": round_n, "kind": kind, "load": os.getloadavg()[0],
                               **measure(args.port, api.pid, kind, args.calls, queries, item_ids)}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                finally:
                    api.terminate()
                    api.wait(60)
    print("\n| config | round | kind | CPU ms / call | p50 ms | mean ms | load |\n| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['config']} | {row['round']} | {row['kind']} | {row['cpu_ms_per_call']:.1f} | {row['p50_ms']:.1f} | "
              f"{row['mean_ms']:.1f} | {row['load']:.1f} |")


if __name__ == "__main__":
    main()
