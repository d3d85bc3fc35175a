"""Order-aware recommendations: a SASRec-style causal transformer user tower (issue 18).

- :class:`SequenceRecommender` (``.model``, torch): training, scoring and the artefact;
- :class:`SequenceVectors` (``.serving``, numpy only): what web processes load to serve it.

Importing this package does not import torch; ``SequenceRecommender`` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .config import SequenceConfig
from .serving import SequenceVectors

__all__ = ["SequenceConfig", "SequenceRecommender", "SequenceVectors"]


def __getattr__(name: str) -> Any:
    if name == "SequenceRecommender":
        from .model import SequenceRecommender

        return SequenceRecommender
    raise AttributeError(name)
