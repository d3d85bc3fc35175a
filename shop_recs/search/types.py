"""The values search and ranking pass around: filters, item cards, results, query vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class SimilarFilters:
    """Filters of similarity and recommendation queries. ``in_stock`` defaults to True: a shop
    does not recommend what it cannot sell unless asked to."""

    category: str | None = None
    brand: str | None = None
    in_stock: bool | None = True
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    exclude: tuple[str, ...] = ()
    # Set by merchandising exclude rules (catalog.merchandising), not by requests.
    exclude_brands: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemCard:
    """The compact item a recommendation widget shows (one query for all results)."""

    id: int
    external_id: str
    title: str
    category: str
    brand: str
    price: Decimal | None
    in_stock: bool
    image: str  # storage name of the first image file, or its source URL, or ""


@dataclass
class Neighbour:
    item: ItemCard
    score: float
    similarity: dict[str, float] = field(default_factory=dict)
    # The merchandising rules that moved this result (catalog.merchandising), for the
    # explanation: {"id", "name", "action", "factor", "position"}.
    rules: list[dict[str, Any]] = field(default_factory=list)


class NotEncoded(Exception):
    """The query item has no vector in the requested space (yet)."""

    def __init__(self, external_id: str, space: str, status: str, error: str = "") -> None:
        self.external_id, self.space, self.status, self.error = external_id, space, status, error
        super().__init__(
            f"Item {external_id!r} has no {space} vector yet (encoding status: {status})."
        )


@dataclass(frozen=True)
class StoredVector:
    """A query vector that is already in the database (an item's own vector in a space): the
    statement reads it there instead of shipping kilobytes of text both ways."""

    item_id: int
    dim: int
