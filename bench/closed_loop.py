"""Closed-loop load: ``concurrency`` threads each call back to back for ``seconds``; the latencies they saw."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np


def closed_loop(make_call: Callable[[], Callable[[], None]], *, concurrency: int,
                seconds: float) -> tuple[np.ndarray, float]:
    """Latencies in ms of every call, and the seconds the load ran.

    ``make_call`` runs once in each thread before the clock starts, so a thread can hold its own state
    (an HTTP connection); the call it returns is what is timed.
    """
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    ready = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def loop(slot: int) -> None:
        call = make_call()
        ready.wait()
        while time.perf_counter() < deadline[0]:
            start = time.perf_counter()
            call()
            latencies[slot].append((time.perf_counter() - start) * 1000)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    ready.wait()
    for thread in threads:
        thread.join()
    return np.array([x for per_thread in latencies for x in per_thread]), time.perf_counter() - began
