"""The sequence model's torch modules: the hybrid's item tower and a causal transformer encoder.

Pre-LayerNorm blocks written out by hand (not ``nn.TransformerEncoderLayer``) so the numpy
serving path (:mod:`.serving`) mirrors them line by line; a test checks both agree.

Item vectors are ``[scoring part (dim) | input part (dim)]``; the encoder reads the input part of
each step's item vector plus a learned position (0 = the oldest step kept) and an event-type
embedding, attends causally (each step sees itself and the steps before it), and its output at
the last step, through a final LayerNorm and a linear map, is the user vector's scoring part.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..hybrid.network import ItemTower
from .data import N_TYPES

LN_EPS = 1e-5


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.ff1 = nn.Linear(dim, 2 * dim)
        self.ff2 = nn.Linear(2 * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        b, length, d = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).split(d, dim=-1)
        hd = d // self.heads

        def split(t: Tensor) -> Tensor:
            return t.view(b, length, self.heads, hd).transpose(1, 2)

        q, k, v = split(q), split(k), split(v)
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        logits = logits.masked_fill(~allowed[:, None], float("-inf"))
        attn = torch.softmax(logits, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, length, d)
        x = x + self.drop(self.proj(out))
        h = self.ln2(x)
        return x + self.drop(self.ff2(nn.functional.gelu(self.ff1(h))))


class SequenceEncoder(nn.Module):
    """Causal transformer over the input parts of a history's item vectors (right-aligned)."""

    def __init__(self, *, dim: int, layers: int, heads: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.dim = dim
        self.max_len = max_len
        self.positions = nn.Embedding(max_len, dim)
        self.types = nn.Embedding(N_TYPES, dim, padding_idx=0)
        nn.init.normal_(self.positions.weight, std=0.02)
        nn.init.normal_(self.types.weight, std=0.02)
        with torch.no_grad():
            self.types.weight[0].zero_()
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim, eps=LN_EPS)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def mask(types: Tensor) -> tuple[Tensor, Tensor]:
        """(valid B x L, allowed B x L x L): causal over valid steps; padded rows see themselves
        only (their outputs are never used) so no softmax row is empty."""
        valid = types > 0
        length = types.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=types.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=types.device)
        allowed = (causal[None] & valid[:, None, :]) | eye[None]
        return valid, allowed

    def forward(self, inputs: Tensor, types: Tensor) -> Tensor:
        """``inputs``: B x L x dim input parts (right-aligned); ``types``: B x L, 0 = padding.
        Returns B x L x dim outputs (position t sees steps <= t)."""
        valid, allowed = self.mask(types)
        n_pad = (~valid).sum(dim=1, keepdim=True)
        pos = (torch.arange(types.shape[1], device=types.device)[None] - n_pad).clamp(min=0)
        x = inputs + self.positions(pos) + self.types(types)
        x = self.drop(x * valid[..., None])
        for block in self.blocks:
            x = block(x, allowed)
        return self.out(self.ln(x))


class SequenceNet(nn.Module):
    """Item tower (the hybrid's, ``2 * dim`` wide) + encoder, plus the serving state."""

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
        content_dropout: float,
        init_std: float,
        text_components: int,
        image_components: int,
        layers: int,
        heads: int,
        max_len: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.items = ItemTower(
            n_items=n_items,
            text_dim=text_dim,
            image_dim=image_dim,
            n_categories=n_categories,
            n_brands=n_brands,
            dim=2 * dim,
            hidden=hidden,
            code_dim=code_dim,
            dropout=content_dropout,
            init_std=init_std,
            text_components=text_components,
            image_components=image_components,
        )
        self.encoder = SequenceEncoder(
            dim=dim, layers=layers, heads=heads, max_len=max_len, dropout=dropout
        )
        self.register_buffer("has_id", torch.zeros(n_items, dtype=torch.bool))
        self.register_buffer("item_vectors", torch.zeros(n_items, 2 * dim))

    def encode_last(self, vectors: Tensor, index: Tensor, types: Tensor) -> Tensor:
        """User vectors (B x dim) from item vectors (R x 2dim) and right-aligned ``index`` into
        them; rows without any step give the encoder's output for an empty history."""
        if not vectors.shape[0]:  # no history at all: one padding step
            vectors = vectors.new_zeros(1, vectors.shape[1])
        inputs = vectors[:, self.dim :][index]
        return self.encoder(inputs, types)[:, -1]

    def encode_all(self, vectors: Tensor, index: Tensor, types: Tensor) -> Tensor:
        """Outputs at every position (B x L x dim): what training scores against next steps."""
        return self.encoder(vectors[:, self.dim :][index], types)
