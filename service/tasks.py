"""The entity-pair tasks of the unified ranker, in its card's order (a ``task_id`` indexes it).

The one home of the names: the API's schema offers them, the training package trains them
(``training/names.py`` re-exports), the ranker's card says which of them a version serves.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = ("query_item", "item_item", "query_query")
