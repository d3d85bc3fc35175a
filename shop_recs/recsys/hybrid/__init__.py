"""Hybrid content + collaborative recommender (two towers, DropoutNet-style cold start).

``HybridRecommender(**config_overrides)`` implements :class:`recsys.base.Recommender` and adds
the serving hooks the app needs with pgvector: ``item_vectors`` (item tower for new or changed
items), ``all_item_vectors``, ``user_vector`` (user tower from stored item vectors) and
``codes`` (category/brand vocabulary). See :mod:`shop_recs.recsys.hybrid.model` for the design.
"""

from .config import HybridConfig
from .model import FORMAT, FORMAT_VERSION, HybridRecommender

__all__ = ["FORMAT", "FORMAT_VERSION", "HybridConfig", "HybridRecommender"]
