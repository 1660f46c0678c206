"""Open-loop pacing for the freshness benches' producers: event n is due at start + n / rate.

Written by hand: a producer must keep the schedule whatever the broker does (sleep until each event is
due, never wait on the previous send), which no library here offers as a plain loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator


def paced(rate: float, seconds: float) -> Iterator[int]:
    """Yield 0, 1, … (``int(rate * seconds)`` in all), each at its due time on the monotonic clock."""
    started = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield n
