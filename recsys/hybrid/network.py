"""The two towers as torch modules (no training loop, no ids: tensors in, tensors out).

Item tower: ``content(text, image, category, brand)`` (an MLP over frozen embeddings) plus an
item-ID embedding that only items seen in training have. Because DropoutNet-style training drops
the ID part and whole modalities, the content path alone gives useful vectors for new items.

User tower: attention-weighted pooling over the *item tower outputs* of the user's recent items
(their history part), a Mult-DAE-style nonlinearity, plus an optional user-ID embedding. It reads
item vectors only, so the app can compute a user vector from the item vectors it already stores
in pgvector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
    )


class ItemTower(nn.Module):
    """Content projection + item-ID embedding; output = content + ID (ID optional per item)."""

    def __init__(
        self,
        *,
        n_items: int,
        text_dim: int,
        image_dim: int,
        n_categories: int,
        n_brands: int,
        dim: int,
        hidden: int,
        code_dim: int,
        dropout: float,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.text_dim = text_dim
        self.image_dim = image_dim
        # Code 0 is "unknown": a padding row that stays zero.
        self.category = (
            nn.Embedding(n_categories, code_dim, padding_idx=0) if n_categories > 1 else None
        )
        self.brand = nn.Embedding(n_brands, code_dim, padding_idx=0) if n_brands > 1 else None
        in_dim = (
            text_dim
            + image_dim
            + (1 if image_dim else 0)  # "has an image" flag: a missing image is not a black one
            + (code_dim if self.category is not None else 0)
            + (code_dim if self.brand is not None else 0)
        )
        self.content = _mlp(in_dim, hidden, dim, dropout) if in_dim else None
        self.ids = nn.Embedding(max(n_items, 1), dim)
        nn.init.normal_(self.ids.weight, std=init_std)

    def content_vectors(
        self,
        *,
        n: int,
        text: Tensor | None = None,
        image: Tensor | None = None,
        image_mask: Tensor | None = None,
        category: Tensor | None = None,
        brand: Tensor | None = None,
        text_keep: Tensor | None = None,
        image_keep: Tensor | None = None,
    ) -> Tensor:
        """Content-only vectors of ``n`` items; ``*_keep`` (0/1 per item) drop a modality.

        A dropped modality is zeroed exactly like a missing one (no rescaling), so training
        with dropout teaches the model what "no image" means at serving time.
        """
        device = self.ids.weight.device
        if self.content is None:
            return torch.zeros(n, self.dim, device=device)
        parts: list[Tensor] = []
        if self.text_dim:
            t = text if text is not None else torch.zeros(n, self.text_dim, device=device)
            if text_keep is not None:
                t = t * text_keep[:, None]
            parts.append(t)
        if self.image_dim:
            if image is None:
                img = torch.zeros(n, self.image_dim, device=device)
                flag = torch.zeros(n, device=device)
            else:
                flag = (
                    image_mask.float() if image_mask is not None else torch.ones(n, device=device)
                )
                if image_keep is not None:
                    flag = flag * image_keep
                img = image * flag[:, None]
            parts += [img, flag[:, None]]
        if self.category is not None:
            codes = category if category is not None else torch.zeros(n, dtype=torch.long)
            parts.append(self.category(codes.to(device)))
        if self.brand is not None:
            codes = brand if brand is not None else torch.zeros(n, dtype=torch.long)
            parts.append(self.brand(codes.to(device)))
        return self.content(torch.cat(parts, dim=1))


class UserTower(nn.Module):
    """A Mult-DAE-style encoder over the history parts of item vectors, plus a user-ID embedding.

    Item vectors are ``[scoring part (dim) | history part (input_dim)]``. The tower pools the
    history parts with weights ``event weight * exp(<query, e_j> + recency * age_j)``, scaled
    to unit L2 norm (Mult-DAE normalises its multi-hot input the same way), then
    ``tanh`` and a linear map to the scoring space; the user ID embedding is added there.
    Separate history and scoring parts matter: tying them (one vector per item for both roles)
    cost about 10% Recall@10 on MovieLens.
    """

    def __init__(
        self,
        *,
        n_users: int,
        dim: int,
        input_dim: int,
        dropout: float,
        max_history: int,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.input_dim = input_dim
        self.max_history = max_history
        self.users = nn.Embedding(max(n_users, 1), dim)
        nn.init.normal_(self.users.weight, std=init_std)
        # Zero init: attention starts as the event-weighted sum and training decides how much
        # content of the item (query) and recency should change that.
        self.query = nn.Parameter(torch.zeros(input_dim))
        self.recency = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(input_dim))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(input_dim, dim)

    def forward(
        self,
        history: Tensor,
        weights: Tensor,
        users: Tensor,
        user_keep: Tensor | None = None,
    ) -> Tensor:
        """User vectors in the scoring space (B x dim).

        ``history``: B x L item vectors (full width), left-aligned, oldest first; ``weights``:
        B x L event weights, 0 marks padding; ``users``: B user indices, -1 for none;
        ``user_keep``: optional 0/1 per row (training-time dropout of the user ID).
        """
        parts = history[..., self.dim :]
        valid = weights > 0
        lengths = valid.sum(dim=1, keepdim=True)
        positions = torch.arange(history.shape[1], device=history.device)[None, :]
        age = (lengths - 1 - positions).clamp(min=0).float() / self.max_history
        logits = torch.log(weights.clamp(min=1e-12)) + parts @ self.query + self.recency * age
        logits = logits.masked_fill(~valid, float("-inf"))
        # Softmax for numerical safety, then rescale to unit L2 norm (rows without history
        # stay all-zero, and the tower falls back to its bias: a "popular items" vector).
        attn = torch.softmax(logits.masked_fill((lengths == 0).expand_as(valid), 0.0), dim=1)
        attn = attn * valid
        attn = attn / attn.norm(dim=1, keepdim=True).clamp(min=1e-12)
        pooled = torch.tanh((attn[..., None] * parts).sum(dim=1) + self.bias)
        out = self.out(self.dropout(pooled))
        known = (users >= 0).float()
        if user_keep is not None:
            known = known * user_keep
        return out + self.users(users.clamp(min=0)) * known[:, None]


class HybridNet(nn.Module):
    """Both towers plus the serving state: the final item vectors and which items have IDs."""

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        text_dim: int,
        image_dim: int,
        n_categories: int,
        n_brands: int,
        dim: int,
        hidden: int,
        input_dim: int,
        code_dim: int,
        dropout: float,
        max_history: int,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.items = ItemTower(
            n_items=n_items,
            text_dim=text_dim,
            image_dim=image_dim,
            n_categories=n_categories,
            n_brands=n_brands,
            dim=dim + input_dim,
            hidden=hidden,
            code_dim=code_dim,
            dropout=dropout,
            init_std=init_std,
        )
        self.user = UserTower(
            n_users=n_users,
            dim=dim,
            input_dim=input_dim,
            dropout=dropout,
            max_history=max_history,
            init_std=init_std,
        )
        # Items with training interactions: only these use their ID embedding.
        self.register_buffer("has_id", torch.zeros(n_items, dtype=torch.bool))
        # Item tower outputs for the item map, computed once after training (what is served).
        self.register_buffer("item_vectors", torch.zeros(n_items, dim + input_dim))
