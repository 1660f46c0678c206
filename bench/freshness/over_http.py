"""Freshness as a user sees it: updates through Kafka, visibility and read latency through HTTP, all processes real.

One run starts, on this machine: Tansu and redis-server (``tests/integration/servers.py``), the indexer as
its own process (``python -m indexer run``), the keyphrase worker as its own (``python -m indexer
recommend``: it recomputes the keyphrases callers ask for when an item's text changes) and the API as its
own process (``shoprank serve`` with the Kafka and Redis settings, so the replica follower runs inside
it), each with the environment a configuration gives it. Then, per grid cell (R updates/s × Q reads/s, ``--seconds`` long):

- a **producer** thread in this process sends R item events/s to ``item-updates`` (the mix: ``--mix``,
  default 10 % new items, 25 % title changes, 55 % price-only changes, 10 % deletes);
- a **prober** thread in this process follows a sample of the events (``--probe-per-s`` a second) by
  polling ``GET /v1/items/{id}`` every ``--probe-every-ms`` until the item's ``searchable_version``
  reaches the event's version (a delete: until 404); visible = that poll's time − the event's send time;
- **readers** in a separate process (so this process's producer does not sit in their latency) send Q
  requests/s open-loop from a thread pool: 70 % ``/v1/retrieve`` (k = 20), 20 % searches (``/v1/retrieve``
  of the query's top 50, then ``/v1/rank`` of those 50, timed together; ``--rank-candidates fixed``: the
  rank alone, of a top 50 fetched once before the cells, whose titles go stale as the cells change them), 10 %
  ``/v1/keyphrases/recommend`` by the id of one of 200 popular items (cached; when an item's title changes,
  ``indexer recommend`` recomputes them, and a request that comes first computes them itself: counted);
  queries are 200 real search terms. Before the cells the readers warm what a long-running replica would
  have cached for this traffic (each query ranked once, each popular item's keyphrases asked once), the bench
  waits until ``indexer recommend`` has scored the pairs next in line for those queries
  (``shoprank_pair_warm_pending`` 0: a deployment's steady state), and each cell reports the API's embedding
  and pair-score cache hit rates and the ranker pairs the API computed on the request path against those it
  deferred to its pair filler (``service/inference/pair_filler.py``) and those the worker warmed;
- after the cell, every item the cell touched is read again: one not at its last version (or not 404
  after its delete) ``--drain-s`` after the cell is **late**, and ``--lost-s`` after it **lost**.

Every cell runs on a fresh stack by default (``--stack cell``: a new Tansu, Redis and processes, the catalogue
slice back at its seed state, the readers' warm-up again), so no cell inherits another's history: Tansu's
in-memory engine spends CPU per fetch in proportion to the records it holds (one consumer at 300 records/s:
0.17 → 0.44 CPU-s per 15 s over 26,000 records; in a grid on one broker its CPU per 300/s cell grew from 1.8
to 10.6 s), which real Kafka's indexed segments do not. ``--stack config`` runs a configuration's cells in a
row on one stack, waiting between cells until the backlog has cleared (the 2026-12-04 grids).

The prober polls least-recently-polled first within a budget (``--probe-gets-per-s``, default 40 GETs/s),
so slow visibility lowers its resolution instead of loading the API; with a few events pending each is
polled every ~25–40 ms. The CPU columns are per process over the cell and its drain; "box busy / niced"
is the share of the machine's CPU time that was busy, and that went to niced processes (other jobs:
this kernel has ``sched_autogroup_enabled=1``, so a nice-19 job in another session is weighted as one
autogroup against ours, not as nice 19 — it takes real CPU from the bench).

Reported per cell: visible p50/p95/p99/max over the probed sample, the share of *all* events applied by
the replica within 1 s (its ``shoprank_replica_event_age_seconds`` histogram: event create → applied),
events lost, readers' latency percentiles, CPU seconds per process (``/proc/<pid>/stat``), and model
calls: the indexer's embedded vs reused (price-only) upserts and the replica's re-embeddings. The API's
threads get their own line in the JSON (``api_threads_cpu_s``: CPU seconds and seconds spent runnable but
waiting for a core, from ``/proc/<pid>/task/*/schedstat``, over the cell without its final check): the wait
is what the other processes cost the API's requests. ``--profile-api DIR`` adds a py-spy profile of the API
per cell (every thread, and the GIL holder alone).

    .venv/bin/python bench/freshness/over_http.py --rates 0,100,200,300,500 --reads 0,20,50 --seconds 15

``--config NAME:api.KEY=V,indexer.KEY=V,recommend.KEY=V`` (repeatable) runs the grid once per configuration,
restarting the processes with those ``SHOPRANK_KEY`` values on top of the defaults, for side-by-side runs;
``recommend.process=off`` runs that configuration without the keyphrase worker.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.integration.servers starts the real servers

from kafka import KafkaProducer  # noqa: E402

from bench.freshness.pacing import paced  # noqa: E402
from service.catalogue import load_catalogue  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.stream.events import DeleteEvent, UpsertEvent, encode_event  # noqa: E402
from service.stream.topics import ensure_topics  # noqa: E402
from tests.integration.servers import free_port, redis_server, tansu_broker  # noqa: E402

WORDS = ("new", "pro", "2-pack", "heavy duty", "white", "black", "compact", "premium", "outdoor", "v2")
READ_MIX = (("retrieve", 0.70), ("rank", 0.20), ("keyphrases", 0.10))


# --- small HTTP client (one keep-alive connection per thread) -------------------------------------------
class Client:
    def __init__(self, port: int, *, timeout_s: float = 30.0) -> None:
        self.port, self.timeout_s = port, timeout_s
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        payload = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
                if attempt or isinstance(sys.exc_info()[1], TimeoutError):
                    raise
        raise AssertionError("unreachable")


def cpu_ticks() -> dict[str, int]:
    """Machine-wide CPU ticks from /proc/stat: everything, niced processes, idle."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return {"total": sum(fields[:8]), "nice": fields[1], "idle": fields[3] + fields[4]}


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return None


def child_pids(names: tuple[str, ...]) -> dict[str, int]:
    """Our direct children whose command name contains one of ``names`` (tansu, redis-server)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
            name, fields = rest.rsplit(")", 1)
            if int(fields.split()[1]) == os.getpid():
                for wanted in names:
                    if wanted in name:
                        found[wanted] = int(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found


def scrape(port: int) -> dict[str, float]:
    """Every sample of a Prometheus text page, keyed by its full name with labels."""
    text = Client(port).call("GET", "/metrics")[1].decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def delta(after: dict, before: dict, name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    arr = np.array(values)
    return {"n": len(arr), "p50": round(float(np.percentile(arr, 50)), 1), "p95": round(float(np.percentile(arr, 95)), 1),
            "p99": round(float(np.percentile(arr, 99)), 1), "max": round(float(arr.max()), 1)}


# --- readers (a separate process) --------------------------------------------------------------------------
READ_TIMEOUT_S = 10.0
"""A reader gives up after this, as a user's client would; such a read counts as this long and as timed out."""


def reader_process(port: int, queries: list[str], item_ids: list[str], commands, results,
                   read_mix: tuple = READ_MIX, fresh_candidates: bool = True, query_zipf: float = 0.0) -> None:
    """Waits for (rate, seconds) commands; answers each with [(kind, ms, status, phases)] of its requests.

    ``query_zipf``: queries drawn with probability ∝ 1 / rank^s in the given order (0: uniform, the default;
    real search logs are head-heavy, and how often a query comes back is what any cache of its results is worth).

    ``fresh_candidates``: a rank read is a search page (retrieve the query's top 50, then rank them; its
    latency is both), so its candidates carry the titles the items have now, as a caller's own retrieval
    gives them. Else every rank sends the top 50 fetched once before the cells, whose titles go stale as the
    cells change them (each stale title costs an embedding the index cannot give)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rng = random.Random(1)
    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "client"):
            local.client = Client(port, timeout_s=READ_TIMEOUT_S)
        return local.client

    candidates: dict[str, list[dict]] = {}
    for query in queries:  # 50 real candidates per query: its own top 50 (before any cell)
        status, body = client().call("POST", "/v1/retrieve", {"query": query, "k": 50})
        if status == 200:
            items = json.loads(body)["items"]
            if len(items) >= 10:
                candidates[query] = [{"id": i["id"], "title": i["title"]} for i in items]
    rank_queries = list(candidates)
    query_weights = [1.0 / (rank + 1) ** query_zipf for rank in range(len(queries))]
    rank_weights = [query_weights[queries.index(query)] for query in rank_queries]
    # Warm the caches a long-running replica has for this traffic, so that a single cell measures the steady
    # state the grid's later cells see: each query ranked once (its pairs and embeddings) and each popular
    # item's keyphrases computed once (cached until its text changes). The cells' cache hit rates are reported.
    for query in rank_queries:
        client().call("POST", "/v1/rank", {"query": query, "items": candidates[query]})
    for item_id in item_ids:
        client().call("POST", "/v1/keyphrases/recommend", {"item_id": item_id, "k": 20})

    def one(kind: str) -> tuple[str, float, int]:
        query = rng.choices(queries, query_weights)[0]
        if kind == "retrieve":
            path, body = "/v1/retrieve", {"query": query, "k": 20}
        elif kind == "rank":
            query = rng.choices(rank_queries, rank_weights)[0]
            path, body = "/v1/rank", {"query": query, "items": candidates[query]}
        else:
            path, body = "/v1/keyphrases/recommend", {"item_id": rng.choice(item_ids), "k": 20}
        started = time.perf_counter()
        try:
            if kind == "rank" and fresh_candidates:
                status, payload = client().call("POST", "/v1/retrieve", {"query": query, "k": 50})
                if status == 200 and len(items := json.loads(payload)["items"]) >= 10:
                    body["items"] = [{"id": i["id"], "title": i["title"]} for i in items]
            status, payload = client().call("POST", path, body)
        except TimeoutError:
            return kind, READ_TIMEOUT_S * 1000, 0, "timeout"
        ms = (time.perf_counter() - started) * 1000
        phase = None  # rank: how many candidates each phase scored; keyphrases: "cache" or "computed"
        if kind == "rank" and status == 200:
            phases = [item.get("phase") for item in json.loads(payload)["items"]]
            phase = f"{phases.count(1)}x1+{phases.count(2)}x2" if phases[0] is not None else "no-phase-field"
        elif kind == "keyphrases" and status == 200:
            phase = json.loads(payload).get("source")
        return kind, ms, status, phase

    kinds, weights = zip(*read_mix)
    with ThreadPoolExecutor(32) as pool:
        while True:
            command = commands.get()
            if command is None:
                return
            rate, seconds = command
            futures, started = [], time.perf_counter()
            total = int(rate * seconds)
            for n in range(total):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(one, rng.choices(kinds, weights)[0]))
            out = []
            for future in futures:
                try:
                    out.append(future.result())
                except Exception as exc:  # noqa: BLE001 - counted as a failed request
                    out.append(("error", 0.0, 0, repr(exc)))
            results.put(out)


# --- the item traffic ----------------------------------------------------------------------------------------
@dataclass
class Traffic:
    """Item state the producer moves forward; shared with the prober and the final check."""

    live: dict[str, tuple[str, float | None]]  # item → (title, price) of its latest version
    versions: dict[str, int]
    fresh_titles: list[str]
    rng: random.Random
    mix: dict[str, float]
    new_n: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: dict[str, tuple[int, str, int]] = field(default_factory=dict)  # item → (version, kind, sent ms) this cell
    counts: dict[str, int] = field(default_factory=dict)

    def next_event(self, tag: str):
        kind = self.rng.choices(list(self.mix), list(self.mix.values()))[0]
        if kind == "new" or not self.live:
            self.new_n += 1
            item = f"new-{tag}-{self.new_n}"
            title = self.fresh_titles[self.new_n % len(self.fresh_titles)]
            self.versions[item] = 1
            self.live[item] = (title, round(self.rng.uniform(2, 500), 2))
            kind = "new"
        else:
            item = self.rng.choice(list(self.live)) if len(self.live) < 64 else self._pick()
            self.versions[item] += 1
            title, price = self.live[item]
            if kind == "title":
                title = f"{title.rsplit(' ~', 1)[0]} ~{self.rng.choice(WORDS)} {self.versions[item]}"
            if kind == "delete":
                del self.live[item]
                return kind, DeleteEvent(type="delete", item_id=item, version=self.versions[item])
            if kind == "price":
                price = round(self.rng.uniform(2, 500), 2)
            self.live[item] = (title, price)
        title, price = self.live[item]
        return kind, UpsertEvent(type="upsert", item_id=item, version=self.versions[item], title=title, price=price)

    def _pick(self) -> str:
        keys = self._keys = getattr(self, "_keys", None) or list(self.live)
        for _ in range(8):
            item = keys[self.rng.randrange(len(keys))]
            if item in self.live:
                return item
        self._keys = list(self.live)
        return self._keys[self.rng.randrange(len(self._keys))]


def produce(traffic: Traffic, producer, topic: str, rate: float, seconds: float, tag: str, probe_every: int,
            probes: list) -> float:
    total = int(rate * seconds)
    started = time.perf_counter()
    for n in paced(rate, seconds):
        with traffic.lock:
            kind, event = traffic.next_event(tag)
            sent_ms = time.time() * 1000
            traffic.last[event.item_id] = (event.version, event.type, sent_ms)
            traffic.counts[kind] = traffic.counts.get(kind, 0) + 1
        producer.send(topic, key=event.item_id.encode(), value=encode_event(event), timestamp_ms=int(sent_ms))
        if n % probe_every == 0:
            probes.append((event.item_id, event.version, event.type, sent_ms, kind))
    producer.flush()
    return total / max(1e-9, time.perf_counter() - started)


def visible(client: Client, item: str, version: int, kind: str) -> bool:
    status, body = client.call("GET", f"/v1/items/{item}")
    if kind == "delete":
        return status == 404
    if status != 200:
        return False
    held = json.loads(body).get("searchable_version")
    return held is not None and held >= version


def probe(port: int, probes: list, done: threading.Event, every_s: float, gets_per_s: float, timeout_s: float,
          out: dict) -> None:
    """Poll probed events until visible (least recently polled first, at most ``gets_per_s`` GETs a second, so
    slow visibility cannot turn the prober into load); record visible ms (response time − send time) by kind."""
    client = Client(port)
    pending: list[list] = []  # [item, version, kind, sent ms, mix kind, last polled]
    taken = 0
    per_tick = max(1, int(gets_per_s * every_s))
    tick_s = max(every_s, per_tick / gets_per_s)  # a budget under one GET per ``every_s`` stretches the tick
    while True:
        while taken < len(probes):
            pending.append([*probes[taken], 0.0])
            taken += 1
        if not pending and done.is_set() and taken >= len(probes):
            return
        tick = time.perf_counter()
        pending.sort(key=lambda entry: entry[5])
        for entry in pending[:per_tick]:
            item, version, kind, sent_ms, mix_kind, _ = entry
            started = time.perf_counter()
            seen = visible(client, item, version, kind)
            out["get_ms"].append((time.perf_counter() - started) * 1000)
            now_ms = time.time() * 1000
            entry[5] = tick
            if seen:
                out["visible_ms"].append(now_ms - sent_ms)
                out["by_kind"].setdefault(mix_kind, []).append(now_ms - sent_ms)
                entry[5] = -1.0
            elif now_ms - sent_ms > timeout_s * 1000:
                out["timed_out"] += 1
                entry[5] = -1.0
        pending = [entry for entry in pending if entry[5] >= 0]
        time.sleep(max(0.0, tick_s - (time.perf_counter() - tick)))


def final_check(port: int, last: dict, drain_s: float) -> int:
    """Items not at their last state after ``drain_s`` (late, or lost when ``drain_s`` is long)."""
    todo = dict(last)
    deadline = time.monotonic() + drain_s
    local = threading.local()

    def check(entry) -> str | None:
        item, (version, kind, _) = entry
        if not hasattr(local, "client"):
            local.client = Client(port)
        return None if visible(local.client, item, version, kind) else item

    with ThreadPoolExecutor(2) as pool:  # few threads and pauses: the check must not slow the catch-up it waits for
        while todo:
            missing = [item for item in pool.map(check, list(todo.items())) if item is not None]
            todo = {item: todo[item] for item in missing}
            if not todo or time.monotonic() > deadline:
                break
            time.sleep(2.0)
    return len(todo)


# --- processes ---------------------------------------------------------------------------------------------------
@dataclass
class Config:
    """One configuration's name and the environment of each process (``SHOPRANK_*`` on top of the defaults)."""

    name: str
    api: dict
    indexer: dict
    recommend: dict
    run_recommend: bool = True


@dataclass
class Processes:
    """The deployment's processes of one configuration; ``recommend`` None when the config runs without it."""

    api: subprocess.Popen
    indexer: subprocess.Popen
    recommend: subprocess.Popen | None

    def pids(self) -> dict[str, int]:
        pids = {"api": self.api.pid, "indexer": self.indexer.pid}
        return pids | ({"recommend": self.recommend.pid} if self.recommend is not None else {})

    def stop(self) -> None:
        for proc in (self.api, self.indexer, self.recommend):
            if proc is not None:
                stop(proc)


def start_processes(env_base: dict, config: Config, *, api_port: int, metrics_port: int, recommend_port: int,
                    logs: Path, name: str) -> Processes:
    def start(command: list[str], env: dict, log_name: str) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=ROOT, env=env_base | env, stdout=(logs / f"{log_name}-{name}.log").open("wb"),
                                stderr=subprocess.STDOUT)

    procs = Processes(
        api=start([str(ROOT / ".venv/bin/shoprank"), "serve"], {"SHOPRANK_PORT": str(api_port)} | config.api, "api"),
        indexer=start([sys.executable, "-m", "indexer", "run", "--metrics-port", str(metrics_port)], config.indexer,
                      "indexer"),
        recommend=start([sys.executable, "-m", "indexer", "recommend", "--metrics-port", str(recommend_port)],
                        config.recommend, "recommend") if config.run_recommend else None,
    )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if procs.api.poll() is not None:
            raise RuntimeError(f"API exited: {(logs / f'api-{name}.log').read_text()[-3000:]}")
        try:
            if Client(api_port).call("GET", "/readyz")[0] == 200:
                return procs
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("API not ready")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def encoder_ceiling(model_repo: Path, titles: list[str], *, seconds: float = 5.0, item_encoder_model: str = "") -> float:
    """Texts/s of item embedding alone at batch 64, one thread, no spinning (the indexer's default budget), in
    this process before the servers start: with ``item_encoder_model=""`` the encoder, the machine's speed in
    this run (comparable across runs); with the item tower's name, what the indexer embeds with now."""
    from service.inference.factory import make_backend, make_encoder

    settings = Settings(model_repo=model_repo, intra_op_threads=1, ort_allow_spinning=False,
                        item_encoder_model=item_encoder_model)
    encoder = make_encoder(make_backend(settings), settings)
    encoder.encode(titles[:64], kind="item")
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = titles[(done % 5000):(done % 5000) + 64]
        encoder.encode(batch, kind="item")
        done += len(batch)
    return done / (time.perf_counter() - started)


def parse_config(text: str) -> Config:
    """``NAME:api.KEY=V,indexer.KEY=V,recommend.KEY=V``; ``recommend.process=off`` leaves the worker out."""
    name, _, rest = text.partition(":")
    config = Config(name, {}, {}, {})
    for part in filter(None, rest.split(",")):
        key, _, value = part.partition("=")
        target, _, setting = key.partition(".")
        if target not in ("api", "indexer", "recommend"):
            raise SystemExit(f"--config {text!r}: {target!r} is not api, indexer or recommend")
        if (target, setting) == ("recommend", "process"):
            config.run_recommend = value != "off"
            continue
        variable = setting if setting.isupper() else f"SHOPRANK_{setting.upper()}"  # upper case: as is
        getattr(config, target)[variable] = value
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="0,100,200,300,500", help="updates/s")
    parser.add_argument("--reads", default="0,20,50", help="reads/s")
    parser.add_argument("--cells", default=None, help="explicit R×Q cells, e.g. 300x50,500x0 (overrides the grid)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--items", type=int, default=10_000, help="catalogue slice the API seeds and updates touch")
    parser.add_argument("--mix", default="new=0.10,title=0.25,price=0.55,delete=0.10")
    parser.add_argument("--probe-per-s", type=float, default=10.0, help="events followed by the prober per second")
    parser.add_argument("--probe-every-ms", type=float, default=25.0)
    parser.add_argument("--probe-gets-per-s", type=float, default=40.0, help="the prober's GET budget")
    parser.add_argument("--drain-s", type=float, default=20.0, help="after a cell: later than this = late")
    parser.add_argument("--lost-s", type=float, default=120.0, help="after a cell: later than this = lost")
    parser.add_argument("--read-mix", default="retrieve=0.7,rank=0.2,keyphrases=0.1")
    parser.add_argument("--query-zipf", type=float, default=0.0,
                        help="readers draw queries ∝ 1/rank^s (0 = uniform over the 200 queries)")
    parser.add_argument("--producer-linger-ms", type=int, default=5,
                        help="the upstream producer's linger: 5 = the Kafka ≥ 4.0 clients' default (the "
                             "2026-12-04 grids used 1, which cost the producer and Tansu about 2 CPU-s per 300/s cell)")
    parser.add_argument("--rank-candidates", choices=("fresh", "fixed"), default="fresh",
                        help="fresh: a rank read retrieves its 50 candidates first (a search page, timed whole); "
                             "fixed: the top 50 fetched before the cells, titles going stale (the 2026-12-04 grids)")
    parser.add_argument("--config", action="append", default=None,
                        help="NAME:api.KEY=V,indexer.KEY=V (repeatable; default: one config with the defaults)")
    parser.add_argument("--repeat", type=int, default=1, help="run the configs' cells this many rounds, interleaved")
    parser.add_argument("--stack", choices=("cell", "config"), default="cell",
                        help="cell: a fresh broker, Redis and processes for every cell (Tansu's fetch cost grows "
                             "with the records it holds); config: one per configuration and round, cells in a row")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--profile-api", type=Path, default=None,
                        help="a folder: py-spy (pip install py-spy) records the API process through each cell (--threads; raw "
                             "collapsed stacks, one file per cell, plus a --gil file: only the thread holding the GIL)")
    parser.add_argument("--state-dir", type=Path, default=Path(tempfile.gettempdir()) / "shoprank-freshness-state",
                        help="kept between runs: the seed item and keyphrase index snapshots are built once")
    parser.add_argument("--model-repo", type=Path, default=ROOT / "model_repo")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    configs = [parse_config(c) for c in (args.config or ["defaults:"])]
    if args.cells:
        cells = [tuple(float(x) for x in cell.split("x")) for cell in args.cells.split(",")]
    else:
        cells = [(float(r), float(q)) for r in args.rates.split(",") for q in args.reads.split(",")
                 if float(r) or float(q)]
    mix = {k: float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    read_mix = tuple((k, float(v)) for k, v in (p.split("=") for p in args.read_mix.split(",")))

    catalogue = load_catalogue(ROOT / "data", limit=args.items + 20_000)
    pool_ids, pool_titles = catalogue.item_ids[: args.items], catalogue.item_titles[: args.items]
    queries = random.Random(2).sample(catalogue.keyphrases, 200)
    ceiling = encoder_ceiling(args.model_repo, pool_titles)
    tower = encoder_ceiling(args.model_repo, pool_titles, item_encoder_model=Settings().item_encoder_model)
    print(f"encoder alone before the run: {ceiling:.0f} texts/s (batch 64, 1 thread); served item path (item "
          f"tower when one is served): {tower:.0f} texts/s; load {os.getloadavg()}", flush=True)

    def fresh_traffic() -> Traffic:
        """The catalogue slice at its seed state, as a fresh stack holds it."""
        return Traffic(live={i: (t, None) for i, t in zip(pool_ids, pool_titles)},
                       versions=dict.fromkeys(pool_ids, 0), fresh_titles=catalogue.item_titles[args.items:],
                       rng=random.Random(0), mix=mix)

    # One stack (broker, Redis, processes) per cell by default, the configurations interleaved cell by cell;
    # --stack config: one per configuration and round, its cells in a row (the 2026-12-04 grids).
    if args.stack == "cell":
        sessions = [(round_n, config, [cell]) for round_n in range(args.repeat) for cell in cells for config in configs]
    else:
        sessions = [(round_n, config, cells) for round_n in range(args.repeat) for config in configs]
    rows: list[dict] = []
    for round_n, config, session_cells in sessions:
        rows += run_stack(args, config, round_n, session_cells, fresh_traffic(), queries, pool_ids, read_mix)
    print_table(rows, args)
    print(f"encoder alone before the run: {ceiling:.0f} texts/s (batch 64, 1 thread)")
    if args.out:
        args.out.write_text(json.dumps({"encoder_texts_per_s": ceiling, "item_path_texts_per_s": tower, "cells": rows},
                                       indent=1))


def run_stack(args, config: Config, round_n: int, cells: list, traffic: Traffic, queries: list[str],
              pool_ids: list[str], read_mix: tuple) -> list[dict]:
    """A fresh Tansu and Redis, the deployment's processes with ``config``, the readers; then ``cells`` in a row."""
    rows = []
    with tansu_broker() as bootstrap, redis_server() as redis_url, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = Settings(kafka_bootstrap=bootstrap, redis_url=redis_url, kafka_partitions=4)
        ensure_topics(settings)
        env_base = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")} | {
            "SHOPRANK_KAFKA_BOOTSTRAP": bootstrap, "SHOPRANK_REDIS_URL": redis_url,
            "SHOPRANK_STATE_DIR": str(args.state_dir), "SHOPRANK_CATALOGUE_LIMIT": str(args.items),
            "SHOPRANK_MODEL_REPO": str(args.model_repo), "SHOPRANK_DATA_DIR": str(ROOT / "data"),
            "SHOPRANK_REPLICA_ID": f"bench-{time.time_ns()}",  # a new broker each stack: never its old snapshot
            "SHOPRANK_KAFKA_PARTITIONS": "4", "SHOPRANK_MODEL_SWAP_POLL_S": "0",
            "SHOPRANK_REPLICA_SNAPSHOT_INTERVAL_S": "3600",
            "SHOPRANK_ALLOW_OPEN_WRITES": "true"}  # a private rig on loopback: no API key
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=args.producer_linger_ms)
        servers = child_pids(("tansu", "redis-server"))
        ctx = mp.get_context("spawn")
        name = config.name
        api_port, metrics_port, recommend_port = free_port(), free_port(), free_port()
        t0 = time.monotonic()
        procs = start_processes(env_base, config, api_port=api_port, metrics_port=metrics_port,
                                recommend_port=recommend_port, logs=tmp, name=f"{name}-{round_n}")
        print(f"[{name} round {round_n}] API ready in {time.monotonic() - t0:.0f}s (api {config.api}, "
              f"indexer {config.indexer}, recommend {config.recommend if config.run_recommend else 'off'})", flush=True)
        commands, results = ctx.Queue(), ctx.Queue()
        readers = ctx.Process(target=reader_process, args=(api_port, queries, pool_ids[:200], commands, results,
                                                           read_mix, args.rank_candidates == "fresh",
                                                           args.query_zipf))
        readers.start()
        pids = procs.pids() | {"readers": readers.pid, "bench": os.getpid(), **servers}
        try:
            # warm-up: the indexer joins its group; the readers fetch their candidates and warm the caches
            warm: list = []
            produce(traffic, producer, settings.kafka_topic, 20, 3, f"{name}{round_n}w", 10**9, warm)
            commands.put((5, 2))
            results.get(timeout=300)
            final_check(api_port, traffic.last, 60)
            traffic.last.clear()
            if config.run_recommend:
                settle_pair_warming(recommend_port)
            for rate, reads in cells:
                rows.append(run_cell(name, round_n, rate, reads, args, traffic, producer, settings, api_port,
                                     metrics_port, recommend_port if config.run_recommend else None, commands,
                                     results, pids))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            commands.put(None)
            readers.join(30)
            procs.stop()
            producer.close()
    return rows


def settle_pair_warming(recommend_port: int, *, quiet_s: float = 4.0, timeout_s: float = 240.0) -> None:
    """Wait until `indexer recommend` has scored the next-in-line pairs of the queries the warm-up ranked
    (``shoprank_pair_warm_pending`` 0 and nothing warmed for ``quiet_s``): the steady state of a deployment
    whose head queries have been asked for a while, like the caches the warm-up fills."""
    started = last_change = time.monotonic()
    last = None
    while time.monotonic() - started < timeout_s:
        metrics = scrape(recommend_port)
        warmed = metrics.get("shoprank_pair_warm_pairs_total", 0.0)
        if warmed != last:
            last, last_change = warmed, time.monotonic()
        elif metrics.get("shoprank_pair_warm_pending", 0.0) == 0 and time.monotonic() - last_change >= quiet_s:
            print(f"pair warming settled in {time.monotonic() - started:.0f} s ({warmed:.0f} pairs)", flush=True)
            return
        time.sleep(0.5)
    print(f"pair warming not settled after {timeout_s:.0f} s", flush=True)


def run_cell(name, round_n, rate, reads, args, traffic, producer, settings, api_port, metrics_port, recommend_port,
             commands, results, pids) -> dict:
    tag = f"{name}{round_n}-{int(rate)}-{int(reads)}"
    traffic.last.clear()
    traffic.counts.clear()
    api_before, idx_before = scrape(api_port), scrape(metrics_port)
    rec_before = scrape(recommend_port) if recommend_port else {}
    cpu_before = {k: cpu_seconds(p) for k, p in pids.items()}
    api_threads_before = thread_cpu_seconds(pids["api"])
    ticks_before = cpu_ticks()
    load_before = os.getloadavg()[0]
    probes: list = []
    out = {"visible_ms": [], "by_kind": {}, "get_ms": [], "timed_out": 0}
    done = threading.Event()
    prober = None
    if rate:
        prober = threading.Thread(target=probe, args=(api_port, probes, done, args.probe_every_ms / 1000,
                                                      args.probe_gets_per_s, args.drain_s + args.seconds, out),
                                  daemon=True)
        prober.start()
    if reads:
        commands.put((reads, args.seconds))
    profilers = start_profiles(args.profile_api, pids["api"], tag, args.seconds) if args.profile_api else []
    achieved = 0.0
    if rate:
        every = max(1, round(rate / args.probe_per_s))
        achieved = produce(traffic, producer, settings.kafka_topic, rate, args.seconds, tag, every, probes)
    else:
        time.sleep(args.seconds)
    reader_rows = results.get(timeout=args.seconds + 300) if reads else []
    for profiler in profilers:
        profiler.wait(60)
    done.set()
    if prober is not None:
        prober.join(args.drain_s + args.seconds + 10)
    api_threads = thread_cpu_delta(pids["api"], api_threads_before)  # the cell alone, not the final check's GETs
    measured_s = time.monotonic()
    late = final_check(api_port, traffic.last, args.drain_s) if rate else 0
    cpu = {k: round((cpu_seconds(p) or 0) - (cpu_before[k] or 0), 1) for k, p in pids.items()}
    ticks = {k: v - ticks_before[k] for k, v in cpu_ticks().items()}
    lost = final_check(api_port, traffic.last, args.lost_s) if late else 0  # the backlog clears before the next cell
    quiet = time.monotonic() + 300  # and the API has worked off reads its callers gave up on
    while time.monotonic() < quiet:
        started = time.perf_counter()
        Client(api_port).call("GET", "/healthz")
        if time.perf_counter() - started < 0.2:
            break
        time.sleep(1.0)
    cleared_s = time.monotonic() - measured_s
    api_after, idx_after = scrape(api_port), scrape(metrics_port)
    rec_after = scrape(recommend_port) if recommend_port else {}
    age_le_1 = delta(api_after, api_before, 'shoprank_replica_event_age_seconds_bucket{le="1.0"}')
    age_n = delta(api_after, api_before, "shoprank_replica_event_age_seconds_count")
    ok_reads = [r for r in reader_rows if r[2] in (200, 404) or r[3] == "timeout"]  # 404: item deleted meanwhile
    phases = sorted({r[3] for r in reader_rows if r[0] == "rank" and r[3]})
    return {
        "config": name, "round": round_n, "updates_per_s": rate, "reads_per_s": reads,
        "achieved_per_s": round(achieved, 1), "events": dict(traffic.counts),
        "visible_ms": percentiles(out["visible_ms"]),
        "visible_ms_by_kind": {k: percentiles(v) for k, v in out["by_kind"].items()},
        "probe_timed_out": out["timed_out"], "get_ms": percentiles(out["get_ms"]),
        "replica_applied_within_1s": round(age_le_1 / age_n, 4) if age_n else None, "replica_applied": age_n,
        "late": late, "lost": lost, "cleared_after_s": round(cleared_s, 1),
        "machine_cpu": {"busy": round(1 - ticks["idle"] / max(1, ticks["total"]), 3),
                        "niced": round(ticks["nice"] / max(1, ticks["total"]), 3)},
        "reads": percentiles([r[1] for r in ok_reads]),
        "reads_by_kind": {k: percentiles([r[1] for r in ok_reads if r[0] == k]) for k in ("retrieve", "rank", "keyphrases")},
        "reads_failed": len(reader_rows) - len(ok_reads), "reads_timed_out": sum(r[3] == "timeout" for r in reader_rows),
        "rank_phases": [p for p in phases if p != "timeout"],
        "keyphrases_computed_on_read": sum(r[0] == "keyphrases" and r[3] == "computed" for r in reader_rows),
        "recommend": {outcome: delta(rec_after, rec_before, f'shoprank_recommend_items_total{{outcome="{outcome}"}}')
                      for outcome in ("computed", "kept", "not_asked", "superseded")} if recommend_port else None,
        "indexer_embedded": delta(idx_after, idx_before, 'shoprank_indexer_item_embeddings_total{outcome="embedded"}'),
        "indexer_reused": delta(idx_after, idx_before, 'shoprank_indexer_item_embeddings_total{outcome="reused"}'),
        "replica_reembedded": delta(api_after, api_before, 'shoprank_replica_item_embeddings_total{outcome="embedded"}'),
        "replica_reused": delta(api_after, api_before, 'shoprank_replica_item_embeddings_total{outcome="reused"}'),
        "indexer_mean_batch": round(delta(idx_after, idx_before, "shoprank_indexer_batch_size_records_sum")
                                    / max(1.0, delta(idx_after, idx_before, "shoprank_indexer_batch_size_records_count")), 1),
        "indexer_mean_age_durable_ms": round(1000 * delta(idx_after, idx_before, "shoprank_indexer_event_age_seconds_sum")
                                             / max(1.0, delta(idx_after, idx_before, "shoprank_indexer_event_age_seconds_count")), 1),
        "replica_mean_age_ms": round(1000 * delta(api_after, api_before, "shoprank_replica_event_age_seconds_sum")
                                     / max(1.0, age_n), 1),
        "cpu_s": cpu, "api_threads_cpu_s": api_threads, "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cache_hit_rate": {name: hit_rate(api_after, api_before, name) for name in ("embedding", "pair")},
        # ranker pairs the API computed on the request path (missed by its LRU and the shared tier, less the misses of
        # the pairs ranks deferred, each a miss once on the request and once in the pair filler that scored it after
        # the response), the pairs ranks deferred to the filler, and those `indexer recommend` warmed
        "pairs_computed_on_read": delta(api_after, api_before, "shoprank_pair_cache_misses_total")
                                  - delta(api_after, api_before, "shoprank_pair_shared_hits_total")
                                  - delta(api_after, api_before, "shoprank_pair_fill_pairs_total")
                                  - delta(api_after, api_before, "shoprank_rerank_deferred_pairs_total"),
        "pairs_deferred": delta(api_after, api_before, "shoprank_rerank_deferred_pairs_total"),
        "pairs_warmed": delta(rec_after, rec_before, "shoprank_pair_warm_pairs_total") if recommend_port else None,
        "api_gc_pauses": {gen: {"n": delta(api_after, api_before, f'shoprank_gc_pause_seconds_count{{generation="{gen}"}}'),
                                "ms": round(1000 * delta(api_after, api_before,
                                                         f'shoprank_gc_pause_seconds_sum{{generation="{gen}"}}'), 1)}
                          for gen in "012"},
    }


def thread_cpu_seconds(pid: int) -> dict[int, tuple[float, float]]:
    """Each thread of ``pid``: (CPU seconds, seconds spent runnable but waiting for a core) so far
    (``/proc/<pid>/task/<tid>/schedstat``: on-CPU ns, run-queue wait ns, timeslices)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            on_cpu, waiting, _ = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (int(on_cpu) / 1e9, int(waiting) / 1e9)
    return out


def thread_cpu_delta(pid: int, before: dict[int, tuple[float, float]]) -> dict[str, list[float]]:
    """The API's [CPU seconds, run-queue wait seconds] over the cell by thread (named by ``py-spy dump`` when it is
    installed: Python 3.11 gives its threads no OS names), threads under 0.1 CPU-s summed as ``other``."""
    names: dict[int, str] = {}
    spy = shutil.which("py-spy") or str(ROOT / ".venv/bin/py-spy")
    if Path(spy).exists():
        dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30).stdout
        for line in dump.splitlines():  # Thread 1234 (idle): "replica-follower"
            head = line.split(": ", 1)
            if line.startswith("Thread ") and len(head) == 2 and head[0].split()[1].isdigit():
                names[int(head[0].split()[1])] = head[1].strip().strip('"')
    out: dict[str, list[float]] = {}
    for tid, (on_cpu, waiting) in thread_cpu_seconds(pid).items():
        used, waited = on_cpu - before.get(tid, (0.0, 0.0))[0], waiting - before.get(tid, (0.0, 0.0))[1]
        label = names.get(tid, f"tid {tid}") if used >= 0.1 else "other"
        if label.startswith("kafka-io-"):
            label = "kafka-io"
        row = out.setdefault(label, [0.0, 0.0])
        row[0], row[1] = round(row[0] + used, 2), round(row[1] + waited, 2)
    return dict(sorted(out.items(), key=lambda kv: -kv[1][0]))


def start_profiles(folder: Path, pid: int, tag: str, seconds: float) -> list[subprocess.Popen]:
    """py-spy on the API through the cell: every thread's CPU samples, and (``--gil``) only the GIL holder's."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(ROOT / ".venv/bin/py-spy")
    return [subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(int(seconds)), "--threads", "-f", "raw",
                              "-o", str(folder / f"api-{tag}{suffix}.txt"), *flags],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for suffix, flags in (("", []), ("-gil", ["--gil"]))]


def hit_rate(after: dict, before: dict, cache: str) -> float | None:
    """The API's in-process cache (``service/inference/row_cache.py``) hit rate over the cell."""
    hits = delta(after, before, f"shoprank_{cache}_cache_hits_total")
    total = hits + delta(after, before, f"shoprank_{cache}_cache_misses_total")
    return round(hits / total, 3) if total else None


def print_table(rows: list[dict], args) -> None:
    print(f"\n{args.seconds:.0f} s per cell; visible = GET /v1/items/{{id}} shows the version (probed sample)")
    print("| config | R/s | Q/s | probed | visible p50 / p95 / p99 / max ms | replica ≤ 1 s | late / lost | "
          "reads p50 / p95 / p99 ms | indexer embedded / reused | replica re-embedded | CPU s api / indexer / "
          "tansu / redis / bench / readers / recommend | box busy / niced | cache hits embedding / pair | keyphrases "
          "computed on read / by the worker | pairs computed on read / deferred / warmed |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | --- | ---: | --- | --- | --- | --- | --- |")
    for r in rows:
        v, q, c = r["visible_ms"], r["reads"], r["cpu_s"]
        vis = f"{v['p50']:.0f} / {v['p95']:.0f} / {v['p99']:.0f} / {v['max']:.0f}" if v.get("n") else "–"
        reads = f"{q['p50']:.0f} / {q['p95']:.0f} / {q['p99']:.0f}" if q.get("n") else "–"
        if r.get("reads_timed_out"):
            reads += f" ({r['reads_timed_out']} of {q['n']} gave up at {READ_TIMEOUT_S:.0f} s)"
        within = f"{100 * r['replica_applied_within_1s']:.1f} %" if r["replica_applied_within_1s"] is not None else "–"
        m = r["machine_cpu"]
        hits = " / ".join("–" if r["cache_hit_rate"][k] is None else f"{100 * r['cache_hit_rate'][k]:.0f} %"
                          for k in ("embedding", "pair"))
        print(f"| {r['config']} | {r['updates_per_s']:.0f} | {r['reads_per_s']:.0f} | {v.get('n', 0)} | {vis} | "
              f"{within} | {r['late']} / {r['lost']} | {reads} | {r['indexer_embedded']:.0f} / "
              f"{r['indexer_reused']:.0f} | {r['replica_reembedded']:.0f} | {c.get('api')} / {c.get('indexer')} / "
              f"{c.get('tansu')} / {c.get('redis-server')} / {c.get('bench')} / {c.get('readers')} / "
              f"{c.get('recommend', '–')} | {100 * m['busy']:.0f} % / {100 * m['niced']:.0f} % | {hits} | "
              f"{r['keyphrases_computed_on_read']} / {'–' if r['recommend'] is None else round(r['recommend']['computed'])} | "
              f"{r['pairs_computed_on_read']:.0f} / {r['pairs_deferred']:.0f} / "
              f"{'–' if r['pairs_warmed'] is None else round(r['pairs_warmed'])} |")


if __name__ == "__main__":
    main()
