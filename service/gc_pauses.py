"""Python's garbage collector as a source of read latency: its pauses measured, and the start-up heap frozen.

A collection of the oldest generation walks every tracked object and holds the GIL while it does: every
request thread waits. A serving process holds millions of long-lived objects built at start-up (item
documents, the lexical index's vocabulary and postings, tokenizer tables), and under a stream of updates it
allocates fast enough (decoded vector-log records, documents, delta postings) to trigger such collections
every few seconds. ``gc.freeze()`` after start-up moves everything alive then into a permanent generation
that collections skip, the approach CPython documents for pre-forked servers; what the process builds later
is still collected. ``shoprank_gc_pause_seconds{generation}`` shows what is left.

The pause timing is by hand (``gc.callbacks``): prometheus-client's ``GCCollector`` counts collections
and collected objects, not how long they stopped the process.
"""

from __future__ import annotations

import gc
import logging
import time

from prometheus_client import CollectorRegistry, Histogram

log = logging.getLogger(__name__)


GC_REGISTRY = CollectorRegistry()  # the API's /metrics registers it beside its own
GC_PAUSES = Histogram("shoprank_gc_pause_seconds", "Garbage collection pauses (the GIL held throughout)",
                      ["generation"], buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
                      registry=GC_REGISTRY)
_started: dict[int, float] = {}


def _on_collection(phase: str, info: dict) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.perf_counter()
    elif generation in _started:
        GC_PAUSES.labels(str(generation)).observe(time.perf_counter() - _started.pop(generation))


def track_gc_pauses() -> CollectorRegistry:
    """Time every collection of this process into ``shoprank_gc_pause_seconds{generation}`` (once per process,
    however many apps are created) and return the registry that holds it."""
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)
    return GC_REGISTRY


def freeze_startup_heap() -> None:
    """Collect once, then exempt every object alive now from later collections (``gc.freeze``)."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info("start-up heap frozen: %d objects exempt from collection (%.2fs)", gc.get_freeze_count(),
             time.perf_counter() - started)
