"""How the indexer's embedding ceiling scales with processes × ONNX Runtime threads on one host.

The 2-core box cannot say what an 8-, 16- or 32-core host buys: this measures it where one is at hand
(the lent 16-core machine, or any host). Each configuration runs P worker processes at once, each with
its own ONNX Runtime session of the served encoder (``model_repo/encoder/<newest>``, as the indexer
loads it: ``ORT_ENABLE_ALL``, no spinning, T intra-op threads, one inter-op thread), each embedding
batches of 64 real catalogue titles through the service's tokeniser (length-sorted sub-batches of 32, as
``Encoder.encode``) for ``--seconds``. Reported: texts/s summed over the processes, and per core used.
Only ONNX Runtime, tokenizers, numpy and pandas are needed (no Kafka, Redis or FAISS), so the script runs
on a bare machine with the repository copied to it.

    .venv/bin/python bench/freshness/encoder_scaling.py --configs 1x1,2x1,1x2 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from service.catalogue import load_catalogue  # noqa: E402
from service.inference.tokenize import TextTokenizer, length_sorted_chunks  # noqa: E402

BATCH, SUB_BATCH, MAX_TOKENS = 64, 32, 64

def newest_encoder(repo: Path) -> Path:
    versions = [p for p in (repo / "encoder").iterdir() if p.name.isdigit() and (p / "model.onnx").exists()]
    return max(versions, key=lambda p: int(p.name))

def worker(model_dir: str, threads: int, titles: list[str], seconds: float, start, out) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(f"{model_dir}/model.onnx", options, providers=["CPUExecutionProvider"])
    tokenizer = TextTokenizer(Path(model_dir) / "tokenizer.json", max_tokens=MAX_TOKENS)

    names = {i.name for i in session.get_inputs()}

    def encode(batch: list[str]) -> None:
        for idx in length_sorted_chunks(tokenizer.lengths(batch), size=SUB_BATCH):
            inputs = tokenizer([batch[i] for i in idx])
            session.run(None, {name: value for name, value in inputs.items() if name in names})

    encode(titles[:BATCH])  # warm-up, before the common start
    start.wait()
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        offset = (done * 7) % (len(titles) - BATCH)
        encode(titles[offset : offset + BATCH])
        done += BATCH
    out.put(done / (time.perf_counter() - began))

def run(model_dir: Path, processes: int, threads: int, titles: list[str], seconds: float) -> float:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=worker, args=(str(model_dir), threads, titles[i::processes], seconds, start, out))
               for i in range(processes)]
    for proc in workers:
        proc.start()
    time.sleep(3 + 0.3 * processes)  # sessions load before the common start
    start.set()
    rates = [out.get(timeout=seconds + 300) for _ in workers]
    for proc in workers:
        proc.join()
    return float(sum(rates))

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="1x1,2x1,4x1,8x1,16x1,1x2,1x4,1x8,1x16,2x2,4x2,8x2,4x4",
                        help="PROCESSESxTHREADS, comma separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model-repo", type=Path, default=ROOT / "model_repo")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model_dir = newest_encoder(args.model_repo)
    titles = load_catalogue(ROOT / "data").item_titles
    print(f"{model_dir.relative_to(args.model_repo)} on {os.cpu_count()} cores; {len(titles)} titles", flush=True)
    rows = []
    for config in args.configs.split(","):
        processes, threads = (int(x) for x in config.split("x"))
        rate = run(model_dir, processes, threads, titles, args.seconds)
        rows.append({"processes": processes, "threads": threads, "texts_per_s": round(rate, 1),
                     "per_core": round(rate / (processes * threads), 1)})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| processes × threads | cores used | texts/s | texts/s per core |\n| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['processes']} × {r['threads']} | {r['processes'] * r['threads']} | {r['texts_per_s']:,.0f} | "
              f"{r['per_core']:,.0f} |")
    if args.out:
        args.out.write_text(json.dumps({"model": str(model_dir.name), "cores": os.cpu_count(), "rows": rows}, indent=1))

if __name__ == "__main__":
    main()
