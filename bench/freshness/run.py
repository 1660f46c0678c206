"""Event → searchable latency at fixed update rates, the max sustained rate, and the embedding bound.

One run, one machine, everything real: Tansu (Kafka protocol) and redis-server on loopback,
the indexer as its own process (``python -m indexer run``: validate → batch → int8 ONNX encode
→ vector log → Redis → commit), and a service replica in this process (``build_runtime`` +
``start_replication``) following the vector log into its FAISS index. A producer thread sends
item updates at a fixed rate; an event counts as searchable when the replica has applied its
version (or a newer one of the same item) to the index — after that ``/v1/retrieve`` finds it
(proven through HTTP by tests/integration/test_replicas.py). Latency = apply time − the
record's create time (set by the producer at send).

    .venv/bin/python bench/freshness/run.py --rates 100,200,400 --seconds 20

The raw encoder throughput (texts/s by batch size) is measured first, in the same process,
before the indexer starts: it is the ceiling the indexer's rate is bounded by.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.integration.servers starts the real servers

from kafka import KafkaProducer  # noqa: E402

from bench.freshness.pacing import paced  # noqa: E402
from service.catalogue import load_catalogue  # noqa: E402
from service.index.factory import index_layout  # noqa: E402
from service.replication import start_replication  # noqa: E402
from service.runtime import build_runtime  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.stream.events import UpsertEvent, encode_event  # noqa: E402
from service.stream.topics import ensure_topics  # noqa: E402
from tests.integration.servers import free_port, redis_server, tansu_broker  # noqa: E402

WORDS = ("new", "pro", "2-pack", "heavy duty", "white", "black", "compact", "premium", "outdoor", "v2")


def server_pids() -> dict[str, int]:
    """Our children tansu and redis-server, found by their parent (this process)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
            name, fields = rest.rsplit(")", 1)
            if int(fields.split()[1]) == os.getpid() and ("tansu" in name or "redis" in name):
                found["tansu" if "tansu" in name else "redis"] = int(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found


def embedding_throughput(encoder, titles: list[str], *, batch_sizes=(1, 16, 64, 256), seconds: float = 4.0) -> dict:
    """Texts/s of the served encoder alone, by batch size (the indexer's ceiling)."""
    result = {}
    for size in batch_sizes:
        encoder.encode(titles[:size], kind="item")  # warm-up
        done, started, i = 0, time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            chunk = titles[i:i + size] or titles[:size]
            encoder.encode(chunk, kind="item")
            done += len(chunk)
            i = (i + size) % max(1, len(titles) - size)
        result[size] = round(done / (time.perf_counter() - started))
    return result


class Tracker:
    """Pending (version, create ms) per item; the replica's apply callback resolves them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.latencies_ms: list[float] = []
        self.sent = 0

    def sent_event(self, item_id: str, version: int, sent_ms: int) -> None:
        with self.lock:
            self.pending[item_id].append((version, sent_ms))
            self.sent += 1

    def on_applied(self, records, now_s: float) -> None:
        now_ms = now_s * 1000
        with self.lock:
            for rec in records:
                waiting = self.pending.get(rec.item_id)
                if not waiting:
                    continue
                done = [(v, t) for v, t in waiting if v <= rec.version]
                self.latencies_ms += [now_ms - t for _, t in done]
                self.pending[rec.item_id] = [(v, t) for v, t in waiting if v > rec.version]

    def outstanding(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.pending.values())

    def take(self) -> list[float]:
        with self.lock:
            out, self.latencies_ms, self.sent = self.latencies_ms, [], 0
            return out


def produce_at(rate: float, seconds: float, *, producer, topic: str, items: list[tuple[str, str]],
               versions: dict[str, int], tracker: Tracker, rng: random.Random) -> float:
    """Send ``rate`` updates/s for ``seconds``, paced against the clock; returns the achieved rate."""
    total = int(rate * seconds)
    started = time.perf_counter()
    for _ in paced(rate, seconds):
        item_id, title = items[rng.randrange(len(items))]
        versions[item_id] += 1
        event = UpsertEvent(type="upsert", item_id=item_id, version=versions[item_id],
                            title=f"{title} {rng.choice(WORDS)}")
        sent_ms = int(time.time() * 1000)
        tracker.sent_event(item_id, event.version, sent_ms)
        producer.send(topic, key=item_id.encode(), value=encode_event(event), timestamp_ms=sent_ms)
    producer.flush()
    return total / (time.perf_counter() - started)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds used so far by each named process (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = round((int(fields[11]) + int(fields[12])) / tick, 1)
        except (OSError, IndexError):
            out[name] = None
    return out


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    wanted = ("shoprank_indexer_batch_size_records_sum", "shoprank_indexer_batch_size_records_count",
              "shoprank_indexer_apply_latency_seconds_sum", "shoprank_indexer_apply_latency_seconds_count",
              "shoprank_indexer_event_age_seconds_sum", "shoprank_indexer_event_age_seconds_count")
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.split(" ")[0] in wanted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,400", help="updates/s, one step each")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each step")
    parser.add_argument("--items", type=int, default=2000, help="catalogue slice the updates touch")
    parser.add_argument("--drain-s", type=float, default=15.0, help="wait for stragglers after each step")
    parser.add_argument("--batch-wait-s", type=float, default=0.02, help="indexer_batch_max_wait_s")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--indexer-no-spin", action="store_true",
                        help="run the indexer with SHOPRANK_INDEXER_ORT_ALLOW_SPINNING=false (now the default)")
    parser.add_argument("--indexer-threads", type=int, default=None, help="the indexer's intra_op_threads")
    parser.add_argument("--model-repo", type=Path, default=ROOT / "model_repo")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the servers we started

    with tansu_broker() as bootstrap, redis_server() as redis_url, tempfile.TemporaryDirectory() as state:
        settings = Settings(kafka_bootstrap=bootstrap, redis_url=redis_url, state_dir=Path(state),
                            catalogue_limit=args.items, kafka_partitions=4, indexer_batch_max_wait_s=args.batch_wait_s,
                            replica_id="bench", replica_snapshot_interval_s=3600, model_repo=args.model_repo,
                            data_dir=ROOT / "data")
        ensure_topics(settings)
        catalogue = load_catalogue(settings.data_dir, limit=args.items)
        runtime = build_runtime(settings)
        print(f"encoder {runtime.encoder.model_version} ({runtime.encoder.card.get('precision', '?')}), "
              f"index {index_layout(settings)}, {len(runtime.items)} seed items", flush=True)
        raw = embedding_throughput(runtime.encoder, catalogue.item_titles)
        print(f"raw encoder throughput (texts/s by batch size, this process, 2 threads): {raw}", flush=True)

        tracker = Tracker()
        handle = start_replication(runtime, on_applied=tracker.on_applied)
        metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")} | {
            f"SHOPRANK_{k.upper()}": str(v) for k, v in settings.model_dump().items()
            if k in ("kafka_bootstrap", "redis_url", "state_dir", "kafka_partitions", "indexer_batch_max_wait_s",
                     "model_repo", "data_dir")}
        if args.indexer_no_spin:
            env["SHOPRANK_INDEXER_ORT_ALLOW_SPINNING"] = "false"
        if args.indexer_threads:
            env["SHOPRANK_INDEXER_INTRA_OP_THREADS"] = str(args.indexer_threads)
        log_path = Path(state) / "indexer.log"
        indexer = subprocess.Popen([sys.executable, "-m", "indexer", "run", "--metrics-port", str(metrics_port)],
                                   env=env, cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
        pids = {"indexer": indexer.pid, "bench+replica": os.getpid(), **server_pids()}
        rng = random.Random(0)
        items = list(zip(catalogue.item_ids, catalogue.item_titles))
        versions = {item_id: 0 for item_id, _ in items}
        rows = []
        try:
            # Warm-up: the indexer joins its group and runs its first batches.
            produce_at(20, 3, producer=producer, topic=settings.kafka_topic, items=items, versions=versions,
                       tracker=tracker, rng=rng)
            deadline = time.monotonic() + 60
            while tracker.outstanding() and time.monotonic() < deadline:
                time.sleep(0.2)
            tracker.take()
            for rate in [float(r) for r in args.rates.split(",")]:
                before = scrape(metrics_port)
                cpu_before = cpu_seconds(pids)
                achieved = produce_at(rate, args.seconds, producer=producer, topic=settings.kafka_topic, items=items,
                                      versions=versions, tracker=tracker, rng=rng)
                produced_at = time.monotonic()
                while tracker.outstanding() and time.monotonic() - produced_at < args.drain_s:
                    time.sleep(0.05)
                drain_s = time.monotonic() - produced_at
                missing = tracker.outstanding()
                sent = tracker.sent
                lat = np.array(tracker.take())
                after = scrape(metrics_port)
                batches = after["shoprank_indexer_batch_size_records_count"] - before["shoprank_indexer_batch_size_records_count"]
                row = {
                    "rate_per_s": rate, "achieved_per_s": round(achieved, 1), "events": sent, "not_applied": missing,
                    "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
                    "p95_ms": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
                    "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
                    "max_ms": round(float(lat.max()), 1) if len(lat) else None,
                    "drain_after_stop_s": round(drain_s, 2),
                    "mean_batch": round((after["shoprank_indexer_batch_size_records_sum"]
                                         - before["shoprank_indexer_batch_size_records_sum"]) / max(1, batches), 1),
                    "mean_apply_ms": round(1000 * (after["shoprank_indexer_apply_latency_seconds_sum"]
                                                   - before["shoprank_indexer_apply_latency_seconds_sum"]) / max(1, batches), 1),
                }
                aged = (after["shoprank_indexer_event_age_seconds_count"]
                        - before["shoprank_indexer_event_age_seconds_count"])
                row["mean_age_at_durable_ms"] = round(1000 * (after["shoprank_indexer_event_age_seconds_sum"]
                                                              - before["shoprank_indexer_event_age_seconds_sum"]) / max(1, aged), 1)
                row["mean_searchable_ms"] = round(float(lat.mean()), 1) if len(lat) else None
                row["cpu_s"] = {name: round(value - (cpu_before.get(name) or 0), 1)
                                for name, value in cpu_seconds(pids).items() if value is not None}
                row["loadavg_1m"] = float(Path("/proc/loadavg").read_text().split()[0])
                row["sustained"] = bool(missing == 0 and row["p99_ms"] is not None and row["p99_ms"] <= 1000)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if missing:
                    # Let the backlog clear before the next step so steps do not bleed into each other.
                    deadline = time.monotonic() + 120
                    while tracker.outstanding() and time.monotonic() < deadline:
                        time.sleep(0.2)
                    tracker.take()
        finally:
            producer.close()
            indexer.terminate()
            indexer.wait(30)
            handle.close()
            runtime.close()

    print("\n| updates/s asked | achieved | events | p50 ms | p95 ms | p99 ms | max ms | mean batch | "
          "mean apply ms | not applied | p99 ≤ 1 s | load 1m |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['rate_per_s']:.0f} | {r['achieved_per_s']} | {r['events']} | {r['p50_ms']} | {r['p95_ms']} "
              f"| {r['p99_ms']} | {r['max_ms']} | {r['mean_batch']} | {r['mean_apply_ms']} | {r['not_applied']} "
              f"| {'yes' if r['sustained'] else 'no'} | {r['loadavg_1m']} |")
    sustained = [r["rate_per_s"] for r in rows if r["sustained"]]
    print(f"\nmax sustained rate with p99 ≤ 1 s: {max(sustained) if sustained else 'none'} updates/s; "
          f"raw encoder ceiling {max(raw.values())} texts/s (batch {max(raw, key=raw.get)})")
    if args.out:
        args.out.write_text(json.dumps({"raw_encoder_texts_per_s": raw, "steps": rows}, indent=1))


if __name__ == "__main__":
    main()
