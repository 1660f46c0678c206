"""The BLAS thread budget reaches every loaded BLAS library (numpy's and FAISS's OpenBLAS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json
from threadpoolctl import threadpool_info
from service.settings import Settings
from service.threads import apply_thread_budget
import faiss, numpy
if {threads} is not None:
    apply_thread_budget(Settings(blas_threads={threads}))
print(json.dumps([(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]))
"""


def blas_pools(threads: int | None) -> list[tuple[str, int]]:
    # a fresh interpreter with a bare environment: the budget is process-wide and must not leak into other tests,
    # and thread variables other tests or libraries set (OMP_NUM_THREADS, ...) must not leak into it
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(threads=threads)], check=True, capture_output=True,
                         text=True, cwd=ROOT, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).stdout
    return sorted(tuple(pool) for pool in json.loads(out.strip().splitlines()[-1]))  # load order varies


def test_every_blas_library_gets_the_budget():
    pools = blas_pools(1)
    assert len(pools) >= 2, f"expected numpy's and FAISS's BLAS loaded, found {pools}"  # FAISS is imported first
    assert all(threads == 1 for _, threads in pools), pools


def test_zero_leaves_the_libraries_default():
    assert blas_pools(0) == blas_pools(None)
