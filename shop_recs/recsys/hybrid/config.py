"""Hyper-parameters of the hybrid model: one JSON-serialisable dataclass.

Everything that changes what a fit produces lives here (including the seed), so a saved
``config.json`` is enough to reproduce a model from the same data, and the app can store the
parameters of a model version next to its metrics.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class HybridConfig:
    """Hyper-parameters of :class:`~shop_recs.recsys.hybrid.HybridRecommender`.

    Defaults were tuned on a validation slice of MovieLens-100k's training positives (never the
    test split) and kept where they were also robust on synthetic catalogues.
    """

    # --- shapes -----------------------------------------------------------------------------
    #: Width of the *scoring part* of item vectors (= the user tower's output); scoring is the
    #: inner product.
    dim: int = 200
    #: Hidden width of the content projection MLP.
    hidden: int = 256
    #: The frozen text/image embeddings enter the MLP through a frozen, whitened PCA to this
    #: many components (0 = raw): cheaper steps on CPU, less overfitting of the content path.
    text_components: int = 64
    image_components: int = 64
    #: Width of the category and brand embeddings fed to the content projection.
    code_dim: int = 16
    #: Width of the *history part* of item vectors: what the user tower reads. Item vectors
    #: are ``dim + input_dim`` wide, user vectors too (their history part is zero), so a plain
    #: inner product scores.
    input_dim: int = 200
    #: The user tower pools over at most this many most recent history items.
    max_history: int = 256
    #: Initial standard deviation of the scoring part of item-ID embeddings (and of user-ID
    #: embeddings), and of their history part. Small, Mult-DAE-like values regularise: with
    #: 0.1 for both the model overfitted before reaching its best recall.
    init_std: float = 0.04
    history_init_std: float = 0.014

    # --- regularisation / DropoutNet ---------------------------------------------------------
    #: Probability, per item and step, that the item's ID embedding is dropped so the content
    #: path alone must carry it (DropoutNet): that is what gives cold items useful vectors.
    id_dropout: float = 0.1
    #: Probability, per item and step, that the whole text (image) modality is dropped, so
    #: items without an image (or text) still get a sensible vector.
    text_dropout: float = 0.1
    image_dropout: float = 0.3
    #: Probability, per user and step, that the user ID embedding is dropped: the history path
    #: must work alone for anonymous sessions and new shoppers.
    user_id_dropout: float = 0.5
    #: Dropout on the user tower's hidden state.
    dropout: float = 0.0
    #: Dropout inside the content MLP (it memorises the catalogue quickly without it).
    content_dropout: float = 0.8
    #: Weight of the extra loss that scores targets with content-only item vectors (all IDs
    #: dropped); it trains the content path to carry popularity and taste for cold items.
    content_loss_weight: float = 1.0
    #: Denoising (Mult-DAE): each step every history item is kept with a probability drawn
    #: per user from this range, and the model must predict *all* the user's items, so short
    #: and long histories both appear in training (new shoppers have a handful of events).
    history_keep_min: float = 0.5
    history_keep_max: float = 0.5
    #: Scale the pooled, denoised history by 1/sqrt(keep share) in training, which is what
    #: dropout on a normalised multi-hot input does in Mult-DAE (it trains faster and better).
    denoise_rescale: bool = True
    #: Add a user-ID embedding to the user vector of known users (dropped with
    #: ``user_id_dropout`` in training).
    user_ids: bool = True

    # --- optimisation ------------------------------------------------------------------------
    lr: float = 1e-3
    weight_decay: float = 0.0
    #: Users per minibatch.
    batch_size: int = 128
    max_epochs: int = 100
    #: Early stopping: epochs without a better validation Recall@10 before stopping.
    patience: int = 10
    #: Share of each user's training positives held out for early stopping when ``fit`` gets
    #: no validation set.
    validation_fraction: float = 0.1
    #: After early stopping on an internal hold-out, train again on all positives for the
    #: best number of epochs (the held-out slice is too valuable to leave out of the model).
    refit: bool = True
    #: Full softmax over every item when the catalogue has at most this many items (cheap and
    #: linear in interactions per epoch for such catalogues); above, sampled softmax with
    #: in-batch targets plus ``sampled_negatives`` popularity-sampled negatives, logQ-corrected.
    full_softmax_max_items: int = 20_000
    sampled_negatives: int = 2048
    #: Scale applied to inner products inside the training softmax (1 / temperature).
    logit_scale: float = 1.0

    # --- runtime -----------------------------------------------------------------------------
    seed: int = 0
    #: ``None``: CUDA when available, else CPU.
    device: str | None = None
    #: torch intra-op threads during fit/scoring; ``None`` leaves torch's setting alone.
    num_threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for ``config.json``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HybridConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so a typo never goes unseen."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown HybridConfig fields: {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> HybridConfig:
        """A copy with some fields changed (validated like the constructor)."""
        return self.from_dict({**self.to_dict(), **changes})

    def __post_init__(self) -> None:
        for name in (
            "id_dropout",
            "text_dropout",
            "image_dropout",
            "user_id_dropout",
            "dropout",
            "content_dropout",
        ):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if not 0.0 < self.history_keep_min <= self.history_keep_max <= 1.0:
            raise ValueError("need 0 < history_keep_min <= history_keep_max <= 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")
        for name in ("dim", "hidden", "code_dim", "input_dim", "max_history", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
