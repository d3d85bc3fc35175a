"""Offline evaluation: ranking metrics, the three split protocols and the scoring loop.

Pure functions over numpy arrays and :class:`~recsys.base.Dataset`; no Django. The same code
serves ``manage.py recs_evaluate``, ``bench/quality.py`` and model validation during training.
"""

from .metrics import (
    average_precision_at_k,
    catalog_coverage,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from .protocol import evaluate, rank_split
from .sessions import SESSION_GAP, evaluate_sessions, session_split, sessions_of
from .splits import (
    ALL_PROTOCOLS,
    PROTOCOLS,
    Split,
    cold_items_split,
    cold_users_split,
    holdout,
    make_split,
    next_split,
    validation_split,
    warm_split,
)

__all__ = [
    "ALL_PROTOCOLS",
    "PROTOCOLS",
    "SESSION_GAP",
    "Split",
    "average_precision_at_k",
    "catalog_coverage",
    "cold_items_split",
    "cold_users_split",
    "evaluate",
    "evaluate_sessions",
    "hit_rate_at_k",
    "holdout",
    "make_split",
    "mrr_at_k",
    "ndcg_at_k",
    "next_split",
    "rank_split",
    "recall_at_k",
    "session_split",
    "sessions_of",
    "validation_split",
    "warm_split",
]
