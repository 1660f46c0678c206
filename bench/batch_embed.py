"""Batch embedding on Spark ``local[2]`` against the service's start-up embedding, side by side in one run.

    .venv/bin/python -m bench.batch_embed [--items 54667] [--rounds 1] [--out docs/bench/batch_embed.md]

Both embed the same catalogue items (the Home Depot catalogue's first ``--items`` titles, the service's seed) with
the same ONNX files and client code on the same two cores:

* **service start-up**: ``runtime.encode_all`` as ``build_runtime`` calls it for a fresh item index, one process,
  ONNX Runtime ``intra_op_threads`` = 2 (the service default), chunks of ``index_build_batch``;
* **spark local[2], full**: ``shoprank batch-embed --mode full`` (``indexer/batch_embed/job.py``): two Python
  workers, one ONNX Runtime thread each, the same chunks; the wall time covers planning, shipping the model, the
  embedding tasks and writing Parquet (the SparkSession is started before the clock, its start-up is reported);
* **spark local[2], diff**: then 1 % of the titles changed and ``--mode diff --previous`` the full output.

Each of ``--rounds`` runs both, in alternating order (start-up first in odd rounds), so a change in what else
the shared machine runs hits both sides; each round's ratio is reported. The full run's vectors are compared
with the start-up vectors item by item (min cosine). The load average and the busiest other processes are
printed before and after: on a shared machine read the ratio, not the rate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from indexer.batch_embed.job import run, spark_session
from service.catalogue import load_catalogue
from service.catalogue_vectors import unpack_vectors
from service.inference.factory import make_backend, make_encoder
from service.runtime import encode_all
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    return f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"


def busiest() -> str:
    out = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    return "; ".join(" ".join(line.split()) for line in out.splitlines()[1:6])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=54_667)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="start-up and Spark runs, in alternating order")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()

    settings = Settings(data_dir=ROOT / "data", model_repo=ROOT / "model_repo", inference="embedded",
                        catalogue_limit=args.items, intra_op_threads=2, ort_allow_spinning=False)
    catalogue = load_catalogue(settings.data_dir, limit=args.items)
    ids, titles = catalogue.item_ids, catalogue.item_titles
    work = Path(tempfile.mkdtemp(prefix="bench-batch-embed-"))
    pd.DataFrame({"item_id": ids, "title": titles}).to_csv(work / "catalogue.csv", index=False)
    changed = pd.DataFrame({"item_id": ids, "title": [t + " (new)" if n % 100 == 0 else t
                                                      for n, t in enumerate(titles)]})
    changed.to_csv(work / "changed.csv", index=False)
    before = load()
    print(f"load average before: {before} | busiest: {busiest()}", flush=True)

    encoder = make_encoder(make_backend(settings), settings)
    encoder.encode(["warm up"], kind="item")
    started = time.monotonic()
    spark = spark_session(master="local[2]", conf={"spark.ui.enabled": "false",
                                                   "spark.sql.shuffle.partitions": str(args.partitions)})
    session_s = time.monotonic() - started

    def startup() -> tuple[np.ndarray, float]:
        started = time.monotonic()
        vectors = encode_all(encoder, titles, kind="item", batch=settings.index_build_batch, label="items")
        print(f"service start-up: {len(ids)} items in {time.monotonic() - started:.1f}s, load {load()}", flush=True)
        return vectors, time.monotonic() - started

    def batch():
        report = run(spark, settings, output=work / "full", catalogue=work / "catalogue.csv", mode="full",
                     partitions=args.partitions)
        print(f"spark full: {report.as_dict()}, load {load()}", flush=True)
        return report

    rounds = []
    for round_ in range(args.rounds):
        if round_ % 2 == 0:
            service, service_s = startup()
            full = batch()
        else:
            full = batch()
            service, service_s = startup()
        rounds.append((service_s, full))
    diff = run(spark, settings, output=work / "diff", catalogue=work / "changed.csv", mode="diff",
               previous=work / "full", partitions=args.partitions)
    print(f"spark diff: {diff.as_dict()}, load {load()}", flush=True)
    spark.stop()

    table = pq.read_table(work / "full", columns=["item_id", "vector"]).to_pydict()
    at = {item: row for row, item in enumerate(table["item_id"])}
    vectors = unpack_vectors([table["vector"][at[item]] for item in ids])
    cosine = np.sum(vectors * service, axis=1)
    rows = []
    for round_, (service_s, full) in enumerate(rounds, 1):
        rows.append((f"round {round_}: service start-up (encode_all, 1 process × 2 ORT threads)", len(ids), service_s))
        rows.append((f"round {round_}: spark local[2] full (2 workers × 1 ORT thread)", full.embedded, full.seconds))
    rows.append((f"spark local[2] diff, 1 % titles changed ({diff.carried} carried)", diff.embedded, diff.seconds))
    lines = [f"# Batch embedding vs start-up embedding ({len(ids)} Home Depot items, 2 cores)", "",
             "| run | items embedded | wall s | items/s | spark ÷ start-up |", "| --- | --- | --- | --- | --- |"]
    for row, (name, n, s) in enumerate(rows):
        ratio = f"{(n / s) / (rows[row - 1][1] / rows[row - 1][2]):.2f}" if "full" in name else ""
        lines.append(f"| {name} | {n} | {s:.1f} | {n / s:.0f} | {ratio} |")
    lines += ["", (f"SparkSession start-up (JVM, not in the rows): {session_s:.1f} s; partitions {full.partitions}; "
                   f"full-run vectors vs start-up vectors: min cosine {cosine.min():.7f}, mean {cosine.mean():.7f}"),
              f"load average before: {before}; after: {load()} | busiest after: {busiest()}",
              "", f"    .venv/bin/python -m bench.batch_embed --items {args.items} --rounds {args.rounds}"]
    report = "\n".join(lines)
    print(report)
    print(json.dumps({"rounds": [{"service_s": s, "full": f.as_dict()} for s, f in rounds], "diff": diff.as_dict(),
                      "session_s": session_s, "min_cosine": float(cosine.min())}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
