"""On-disk cache of teacher answers (sqlite), keyed by a hash of (model, prompt version, pair).

A re-run of ``shoprank label`` only pays for pairs it has not judged with the same model and
prompt; changing either makes new keys, so stale answers are never reused.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path


def judgement_key(*, model: str, prompt_version: str, query: str, title: str, category: str | None) -> str:
    payload = json.dumps([model, prompt_version, query, title, category or ""], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgementCache:
    """key → JSON answer; safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS judgements (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT answer FROM judgements WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, answer: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO judgements (key, answer) VALUES (?, ?)", (key, json.dumps(answer)))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
