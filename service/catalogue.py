"""The vendored Home Depot relevance file as the service's seed catalogue and keyphrase corpus.

Items are the distinct products (``product_uid`` → title); keyphrases are the distinct search
terms (what buyers typed). Loaded at first start to build the indexes; nothing here needs torch.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

HOME_DEPOT_ZIP = Path("home-depot") / "train.csv.zip"
HOME_DEPOT_SHA256 = "f6699098295f36e20fa76d07884aa453e9005aa97d9d6a6c1ac42c37142da88a"


def stable_id(key: str) -> int:
    """A stable non-negative 63-bit id for any string key (FAISS ids are int64)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def text_hash(text: str) -> int:
    """A stable signed 64-bit hash of an item's embedded text (same value in every process and run); never 0,
    which ``service.searchable`` keeps for "text unknown"."""
    value = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)
    return value or 1


def load_pairs(data_dir: Path) -> pd.DataFrame:
    """All labelled (search_term, product) rows with the raw human mean relevance."""
    with zipfile.ZipFile(data_dir / HOME_DEPOT_ZIP) as zf, zf.open("train.csv") as fh:
        frame = pd.read_csv(fh, encoding="latin-1", dtype={"product_uid": str})
    frame["search_term"] = frame["search_term"].astype(str).str.strip()
    frame["product_title"] = frame["product_title"].astype(str).str.strip()
    return frame


@dataclass(frozen=True)
class Catalogue:
    """Seed items (id → title) and keyphrases (lower-cased distinct search terms)."""

    item_ids: list[str]
    item_titles: list[str]
    keyphrases: list[str]


def load_catalogue(data_dir: Path, *, limit: int | None = None) -> Catalogue:
    pairs = load_pairs(data_dir)
    items = pairs.drop_duplicates("product_uid")[["product_uid", "product_title"]]
    if limit:
        items = items.head(limit)
    keyphrases = sorted(set(pairs["search_term"].str.lower()))
    return Catalogue(
        item_ids=items["product_uid"].tolist(),
        item_titles=items["product_title"].tolist(),
        keyphrases=keyphrases,
    )
