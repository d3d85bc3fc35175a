"""Hybrid content + collaborative recommender (two towers, DropoutNet-style cold start).

``HybridRecommender(**config_overrides)`` implements :class:`recsys.base.Recommender` and adds
the serving hooks the app needs with pgvector: ``item_vectors`` (item tower for new or changed
items), ``all_item_vectors``, ``user_vector`` (user tower from stored item vectors) and
``codes`` (category/brand vocabulary). See :mod:`shop_recs.recsys.hybrid.model` for the design.
``HybridServingModel`` (:mod:`~shop_recs.recsys.hybrid.serving`) is its user tower in numpy,
what web processes serve with.

The torch model is imported on first use of a name that needs it (PEP 562 ``__getattr__``):
importing this package, its config or its numpy serving model never imports torch.
"""

from __future__ import annotations

from typing import Any

from .config import HybridConfig
from .serving import HybridServingModel

__all__ = ["FORMAT", "FORMAT_VERSION", "HybridConfig", "HybridRecommender", "HybridServingModel"]

_TORCH_NAMES = {"FORMAT", "FORMAT_VERSION", "HybridRecommender"}


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
