"""Queries are cut at ``query_max_tokens`` and items at ``item_max_tokens`` (the served int8 encoder)."""

from __future__ import annotations

import numpy as np

from service.inference.factory import make_backend, make_encoder
from service.settings import Settings

WORDS = "cordless drill driver kit with two lithium batteries charger and carrying case for home repair jobs"


def test_queries_and_items_have_their_own_token_budget(model_repo) -> None:
    settings = Settings(model_repo=model_repo, query_max_tokens=8, item_max_tokens=64, item_encoder_model="",
                        intra_op_threads=1)
    encoder = make_encoder(make_backend(settings), settings)
    # 8 tokens = [CLS] + 6 word pieces + [SEP] ("cord ##less drill driver kit with"): the query keeps its first
    # five words, the item all of them
    first_five = " ".join(WORDS.split()[:5])
    query, item, short = encoder.encode([WORDS], kind="query"), encoder.encode([WORDS]), encoder.encode([first_five])
    assert float(query[0] @ short[0]) > 0.999
    assert float(item[0] @ short[0]) < 0.99 and not np.allclose(query, item)
