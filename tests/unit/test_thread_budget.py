"""The BLAS thread budget reaches every loaded BLAS library (numpy's and FAISS's OpenBLAS); the GIL switch
interval is set."""

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


def test_the_gil_switch_interval_is_set() -> None:
    script = ("import sys; from service.settings import Settings; from service.threads import apply_thread_budget; "
              "apply_thread_budget(Settings(blas_threads=0, gil_switch_interval_ms={ms})); print(sys.getswitchinterval())")
    for ms in (1.0, 5.0):
        out = subprocess.run([sys.executable, "-c", script.format(ms=ms)], check=True, capture_output=True, text=True,
                             cwd=ROOT, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).stdout
        assert float(out.strip().splitlines()[-1]) == ms / 1000


def test_a_lower_cpu_priority_reaches_the_threads_started_after_it() -> None:
    script = ("import os, threading; from service.threads import lower_cpu_priority; lower_cpu_priority(7); "
              "seen = []; t = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0))); "
              "t.start(); t.join(); print(os.getpriority(os.PRIO_PROCESS, 0), seen[0])")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=ROOT,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).stdout
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert [int(x) for x in out.split()] == [min(19, base + 7)] * 2


def test_sched_idle_reaches_the_threads_started_after_it() -> None:
    script = ("import os, threading; from service.threads import lower_cpu_priority; lower_cpu_priority(0, sched_idle=True); "
              "seen = []; t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0))); "
              "t.start(); t.join(); print(os.sched_getscheduler(0), seen[0])")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=ROOT,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).stdout
    assert [int(x) for x in out.split()] == [os.SCHED_IDLE] * 2
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the caller of the test is untouched
