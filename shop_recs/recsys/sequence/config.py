"""Hyper-parameters of the sequence model: one JSON-serialisable dataclass (like the hybrid's)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class SequenceConfig:
    """Hyper-parameters of :class:`~shop_recs.recsys.sequence.SequenceRecommender`.

    Small on purpose: a shop's sessions are short and training runs on a few CPU cores.
    """

    # --- shapes -----------------------------------------------------------------------------
    #: Width of the scoring part of item vectors (= the user vector) and of the input part the
    #: sequence encoder reads; item vectors are ``2 * dim`` wide (``vector_dim``).
    dim: int = 64
    #: Transformer blocks and attention heads (``dim`` must divide by ``heads``).
    layers: int = 2
    heads: int = 2
    #: The encoder reads at most this many most recent events (learned positions 0..max_len-1).
    max_len: int = 50
    #: Hidden width of the content MLP of the item tower, PCA widths of the frozen embeddings
    #: and width of the category/brand embeddings (as in the hybrid's item tower).
    hidden: int = 128
    text_components: int = 64
    image_components: int = 64
    code_dim: int = 16
    init_std: float = 0.05

    # --- regularisation ---------------------------------------------------------------------
    #: Dropout inside the encoder (embeddings, attention output, feed-forward).
    dropout: float = 0.2
    #: DropoutNet: per item and step, its ID embedding is dropped so the content path must
    #: carry it; that is what lets new items appear in sessions and as predictions.
    id_dropout: float = 0.15
    text_dropout: float = 0.1
    image_dropout: float = 0.3
    content_dropout: float = 0.5
    #: Weight of the extra loss that scores targets with content-only item vectors.
    content_loss_weight: float = 0.5

    # --- optimisation -----------------------------------------------------------------------
    lr: float = 2e-3
    weight_decay: float = 0.0
    #: Training windows (of ``max_len + 1`` events) per minibatch.
    batch_size: int = 128
    max_epochs: int = 40
    #: Early stopping on validation HitRate@10 of the next item (3-epoch running mean).
    patience: int = 4
    #: Share of users (with 3+ events) whose last event is held out for early stopping, but at
    #: least ``validation_min_users`` of them (all when fewer): HitRate@10 on a few dozen
    #: cases is noise, and early stopping then keeps an epoch picked by chance.
    validation_fraction: float = 0.1
    validation_min_users: int = 1000
    #: Full softmax below this many items; above, sampled softmax over the batch's targets plus
    #: ``sampled_negatives`` popularity-sampled items, logQ-corrected (as the hybrid).
    full_softmax_max_items: int = 20_000
    sampled_negatives: int = 2048
    #: Consecutive events on the *same* item are one step (a view -> click -> cart of one
    #: product is one step of the session, with its strongest event type).
    merge_repeats: bool = True

    # --- runtime ----------------------------------------------------------------------------
    seed: int = 0
    device: str | None = None
    num_threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown SequenceConfig fields: {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> SequenceConfig:
        return self.from_dict({**self.to_dict(), **changes})

    def __post_init__(self) -> None:
        for name in ("dim", "layers", "heads", "max_len", "hidden", "batch_size", "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        for name in ("dropout", "id_dropout", "text_dropout", "image_dropout", "content_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")
        if 2 * self.dim > 2000:
            raise ValueError("vector_dim (2 * dim) must stay <= 2000 (pgvector's index limit)")
