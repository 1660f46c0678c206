"""The indexer's ceiling, side by side in one process: what tokenisation costs and what an offline-optimised graph buys.

For the served encoder (``model_repo/encoder/<newest>``) over real catalogue titles, batch 64 (the
indexer's batches at 300–500 updates/s are 20–100 events), alternating the variants in rounds so a
background load hits them alike:

- ``item_encoder:N``: the smaller item tower (``training/item_tower/``) when the repository serves one, the
  same batches through the same ``Encoder.encode``;
- ``encoder``: ``Encoder.encode`` of the served encoder, as the indexer ran it before the item tower
  (tokenise, length-sorted sub-batches, ONNX Runtime with ``ORT_ENABLE_ALL`` applied at session creation);
- ``tokenise only``: the tokeniser part of that (``lengths`` + per-chunk tensors), i.e. what moving
  tokenisation off the model thread could overlap at most;
- ``offline graph``: the same model saved once by ONNX Runtime after its optimisations
  (``SessionOptions.optimized_model_filepath``) and loaded with optimisations off, fed identical tensors.

    .venv/bin/python bench/freshness/encoder_ceiling.py --threads 1,2 --rounds 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from service.catalogue import load_catalogue  # noqa: E402
from service.inference.factory import make_backend, make_encoder  # noqa: E402
from service.inference.models import TwoTowerEncoder  # noqa: E402
from service.inference.repository import latest_version  # noqa: E402
from service.inference.tokenize import length_sorted_chunks  # noqa: E402
from service.settings import Settings  # noqa: E402


def session(path: Path, *, threads: int, level, save_to: Path | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = level
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if save_to is not None:
        opts.optimized_model_filepath = str(save_to)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=12, help="batches per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model-repo", type=Path, default=ROOT / "model_repo",
                        help="a repository with an item tower beside the encoder adds the tower's row")
    args = parser.parse_args()
    titles = load_catalogue(ROOT / "data", limit=20_000).item_titles
    rng = np.random.default_rng(0)
    for threads in [int(t) for t in args.threads.split(",")]:
        settings = Settings(model_repo=args.model_repo, intra_op_threads=threads, ort_allow_spinning=False)
        backend = make_backend(settings)
        encoder = make_encoder(backend, settings.model_copy(update={"item_encoder_model": ""}))
        two_tower = make_encoder(backend, settings)
        tower = two_tower.item if isinstance(two_tower, TwoTowerEncoder) else None
        tok = encoder.tokenizer()
        onnx_path = latest_version(settings.model_repo, settings.encoder_model).onnx_path
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "optimised.onnx"
            t0 = time.perf_counter()
            session(onnx_path, threads=threads, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, save_to=saved)
            online_load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            offline = session(saved, threads=threads, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
            offline_load_s = time.perf_counter() - t0
            names = [i.name for i in offline.get_inputs()]
            times: dict[str, list[float]] = {"encoder": [], "tokenise only": [], "offline graph": []}
            if tower is not None:
                times[f"{tower.model_version}"] = []
                tower.encode(titles[:8], kind="item")
            batches = [[titles[i] for i in rng.integers(0, len(titles), args.batch)] for _ in range(args.batches)]
            encoder.encode(batches[0], kind="item")
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                for texts in batches:
                    encoder.encode(texts, kind="item")
                times["encoder"].append(time.perf_counter() - t0)
                if tower is not None:  # the item tower (training/item_tower/), the same batches
                    t0 = time.perf_counter()
                    for texts in batches:
                        tower.encode(texts, kind="item")
                    times[tower.model_version].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                feeds = []
                for texts in batches:
                    for idx in length_sorted_chunks(tok.lengths(texts), size=encoder.sub_batch):
                        feeds.append(tok([texts[i] for i in idx]))
                times["tokenise only"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                for feed in feeds:
                    offline.run(None, {name: feed[name] for name in names})
                times["offline graph"].append(time.perf_counter() - t0 + times["tokenise only"][-1])
            texts_n = args.batch * args.batches
            print(f"threads {threads}: session load online-optimised {online_load_s:.2f} s, offline graph "
                  f"{offline_load_s:.2f} s")
            for name, values in times.items():
                rates = [texts_n / v for v in values]
                print(f"  {name:16s} texts/s median {np.median(rates):7.0f}  (rounds {[round(r) for r in rates]})")


if __name__ == "__main__":
    main()
