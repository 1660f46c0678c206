"""Each process's thread budget for the native libraries that keep their own pools.

ONNX Runtime's threads are set per session (``intra_op_threads`` / ``indexer_intra_op_threads``) and
FAISS's OpenMP team per searching thread (``index_search_threads``). The BLAS libraries under numpy and
FAISS (OpenBLAS, two copies) start one thread per core on their own, and their idle threads spin: a
hybrid retrieve's 800 × 384 shortlist rescore went multi-threaded and cost 2× the CPU of one thread for
no faster answer (docs/indexing.md, "Thread budgets"). A service runs one request per thread, so its
parallelism is across requests, and BLAS gets ``blas_threads`` (1 by default) in every process.

threadpoolctl does the work (it finds every loaded BLAS and calls its own ``set_num_threads``); this
module only decides when: once at process start, after numpy and FAISS are loaded.

Two more per-process knobs live here because they too decide how processes share a small host's cores:
the interpreter's GIL switch interval (``gil_switch_interval_ms``, 1 ms: a read waits less behind the
replica follower's Python work) and the workers' CPU priority (``indexer_nice``, ``indexer_sched_idle``).
"""

from __future__ import annotations

import logging
import os
import sys

from threadpoolctl import threadpool_info, threadpool_limits

from service.settings import Settings

log = logging.getLogger(__name__)


def apply_thread_budget(settings: Settings) -> None:
    """Cap every loaded BLAS library at ``settings.blas_threads`` threads (0 = leave the libraries' default)
    and set the interpreter's GIL switch interval."""
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    if settings.blas_threads <= 0:
        return
    import faiss  # noqa: F401 - loaded first so that its OpenBLAS copy is capped too
    import numpy  # noqa: F401

    threadpool_limits(limits=settings.blas_threads, user_api="blas")
    log.info("thread budget: BLAS %d thread(s) in %s", settings.blas_threads,
             sorted({info["filepath"].rsplit("/", 1)[-1] for info in threadpool_info() if info["user_api"] == "blas"}))


def lower_cpu_priority(increment: int, *, sched_idle: bool = False) -> None:
    """Raise this process's niceness by ``increment`` (0 = unchanged) and, with ``sched_idle``, put it under
    ``SCHED_IDLE`` (no privilege needed to lower a policy). On Linux both are per thread and new threads inherit
    them, so it is called before the process starts its Kafka, ONNX Runtime and metrics threads."""
    if increment:
        os.nice(increment)
        log.info("CPU priority: nice +%d", increment)
    if sched_idle:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError) as exc:  # not Linux, or a sandbox that forbids the call: run as normal
            log.warning("CPU priority: SCHED_IDLE not available (%s); running under the normal policy", exc)
            return
        log.info("CPU priority: SCHED_IDLE (runs on otherwise idle cores, preempted by any waking normal thread)")
