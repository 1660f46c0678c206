"""Tansu's CPU per window as the records it holds grow: why the freshness bench runs each cell on a fresh broker.

Tansu (the test broker, in-memory storage) with one 4-partition topic; a producer at 300 records/s (linger 5,
acks all) and, unless ``--no-consumer``, one group consumer following it (``--commit``: committing after
every poll with records, as the indexer does). Prints Tansu's CPU seconds per 15-s window.

    .venv/bin/python bench/freshness/tansu_fetch_cost.py --windows 6
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from bench.freshness.over_http import child_pids, cpu_seconds  # noqa: E402
from tests.integration.servers import tansu_broker  # noqa: E402


def follow(bootstrap: str, stop: threading.Event, commit: bool, polled: list[int]) -> None:
    consumer = KafkaConsumer("t", bootstrap_servers=bootstrap, group_id="g", enable_auto_commit=False,
                             auto_offset_reset="earliest")
    while not stop.is_set():
        records = consumer.poll(timeout_ms=50)
        if records:
            polled[0] += sum(len(batch) for batch in records.values())
            if commit:
                consumer.commit()
    consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--commit", action="store_true")
    parser.add_argument("--no-consumer", action="store_true")
    args = parser.parse_args()
    with tansu_broker() as bootstrap:
        KafkaAdminClient(bootstrap_servers=bootstrap).create_topics([NewTopic("t", 4, 1)])
        tansu = child_pids(("tansu",))["tansu"]
        stop, polled = threading.Event(), [0]
        if not args.no_consumer:
            threading.Thread(target=follow, args=(bootstrap, stop, args.commit, polled), daemon=True).start()
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        value = json.dumps({"type": "upsert", "item_id": "x", "version": 1, "title": "a" * 80}).encode()
        sent = 0
        for window in range(args.windows):
            cpu_before, started = cpu_seconds(tansu), time.monotonic()
            while time.monotonic() - started < 15:
                for _ in range(args.rate // 10):
                    producer.send("t", key=str(sent).encode(), value=value)
                    sent += 1
                time.sleep(0.1)
            print(f"window {window}: records held {sent}, consumed {polled[0]}, "
                  f"Tansu CPU {cpu_seconds(tansu) - cpu_before:.2f} s / 15 s", flush=True)
        stop.set()
        producer.close()


if __name__ == "__main__":
    main()
