"""Lists built from vectors, with the merchandising rules applied: similar items in any space
(one dispatch: text, image and content compare stored vectors; ``hybrid`` asks the active
model's user tower) and semantic search.

The API, the storefront widgets and the admin previews all call :func:`similar_items` /
:func:`item_similar`, so what the admin previews is what shoppers get.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from shop_recs.catalog import vectors
from shop_recs.catalog.models import Item, ItemEmbedding, ItemEncoding, Space
from shop_recs.ranking import merchandising
from shop_recs.ranking.registry import active_version, serving_model
from shop_recs.search.knn import item_cards, item_spaces, similar_by_external_id, vector_search
from shop_recs.search.types import Neighbour, NotEncoded, SimilarFilters, StoredVector


def similar_with_rules(
    *,
    space: str,
    query: str | StoredVector,
    item_id: int,
    k: int,
    filters: SimilarFilters,
    rules: Sequence[merchandising.Rule] | None = None,
) -> list[Neighbour]:
    """The similar list of the stored item ``item_id`` (never itself) nearest to ``query`` in
    ``space``, with the merchandising rules that apply to it (``shop_recs.ranking.merchandising``).
    Without such rules, exactly the plain :func:`vector_search`. ``rules``: the live rules,
    when the caller has read them already."""
    plan = _similar_plan(item_id=item_id, filters=filters, rules=rules)
    if plan is None:
        return vector_search(
            space=space,
            query=query,
            k=k,
            filters=filters,
            exclude_item_ids=[item_id],
            explain=item_id,
        )
    filters = plan.filters(filters)
    exclude = [item_id, *plan.exclude_item_ids]
    found = vector_search(
        space=space,
        query=query,
        k=plan.pool(k),
        filters=filters,
        exclude_item_ids=exclude,
        explain=item_id,
    )
    return merchandising.apply(
        plan,
        found,
        k=k,
        fetch=lambda ids: item_cards(
            item_ids=ids,
            filters=filters,
            exclude_item_ids=exclude,
            space=space,
            query=query,
            explain=item_id,
        ),
    )


def _similar_plan(
    *, item_id: int, filters: SimilarFilters, rules: Sequence[merchandising.Rule] | None
) -> merchandising.Plan | None:
    return merchandising.plan_for(
        kind=merchandising.SIMILAR,
        category=filters.category,
        item_id=item_id,
        item_category=lambda: (
            Item.objects.filter(pk=item_id).values_list("category", flat=True).first()
        ),
        rules=rules,
    )


def _item_similar_stored(
    *, external_id: str, space: str, k: int, filters: SimilarFilters | None = None
) -> list[Neighbour] | None:
    """Items most similar to the item ``external_id`` in ``space``, never the item itself, each
    with its similarity in every space both items have (the explanation).

    None when there is no such item; NotEncoded when it has no vector in that space yet.
    """
    filters = filters or SimilarFilters()
    rules = merchandising.live_rules()
    # One statement finds the item, its vector and its neighbours; it stands when no rule
    # applies to this list (else the rules need a pool of their own). None: it cannot answer
    # alone (unknown item, not encoded, another dimension, a filter that starved the scan).
    fast = similar_by_external_id(external_id=external_id, space=space, k=k, filters=filters)
    if fast is not None:
        item_id, found_fast = fast
        if not rules or _similar_plan(item_id=item_id, filters=filters, rules=rules) is None:
            return found_fast
    found = item_spaces(external_id=external_id)
    if found is None:
        return None
    item_id, dims = found
    if space not in dims:
        encoding = ItemEncoding.objects.filter(item_id=item_id).first()
        status = encoding.status if encoding else ItemEncoding.Status.PENDING
        raise NotEncoded(external_id, space, status, encoding.error if encoding else "")
    return similar_with_rules(
        space=space,
        query=StoredVector(item_id, dims[space]),
        item_id=item_id,
        k=k,
        filters=filters,
        rules=rules,
    )


def item_similar(
    *, external_id: str, space: str, k: int, filters: SimilarFilters | None = None
) -> list[Neighbour] | None:
    """Items most similar to the item ``external_id`` in ``space``, never the item itself, each
    with its similarity in every space both items have (the explanation). ``hybrid`` ranks by
    the active model ("shoppers who liked this also liked"); the content spaces by the stored
    vectors. Merchandising rules apply.

    None when there is no such item; NotEncoded when it has no vector in that space yet (or,
    for ``hybrid``, when no model is active).
    """
    if space == Space.HYBRID:
        return _item_similar_hybrid(external_id=external_id, k=k, filters=filters)
    return _item_similar_stored(external_id=external_id, space=space, k=k, filters=filters)


def similar_items(
    *, external_id: str, space: str | None, k: int, filters: SimilarFilters | None = None
) -> tuple[str, list[Neighbour] | None]:
    """:func:`item_similar` in ``space``, or in the default space (:func:`default_similar_space`)
    when None; returns the space used with the list."""
    space = space or default_similar_space()
    return space, item_similar(external_id=external_id, space=space, k=k, filters=filters)


def _stored_vector(space: str, item_id: int) -> np.ndarray | None:
    found = (
        ItemEmbedding.objects.filter(space=space, item_id=item_id)
        .values_list("vector", flat=True)
        .first()
    )
    return None if found is None else np.asarray(found, dtype=np.float32)


def default_similar_space() -> str:
    """``hybrid`` once a model is active, else ``content``."""
    return Space.HYBRID if active_version() is not None else Space.CONTENT


def _item_similar_hybrid(
    *, external_id: str, k: int, filters: SimilarFilters | None = None
) -> list[Neighbour] | None:
    """Similar items by the active model: the user tower with this item as the only history
    ("shoppers who liked this also liked"), ranked by inner product in the hybrid space.

    None for an unknown item; NotEncoded when there is no active model or no hybrid vector.
    """
    found = item_spaces(external_id=external_id)
    if found is None:
        return None
    item_id, _ = found
    model_found = serving_model()
    # the version's own space: the model and the vectors it ranks always belong together,
    # also while another version is being activated
    space = vectors.space_key(Space.HYBRID, model_found[0].pk) if model_found else ""
    item_vec = _stored_vector(space, item_id) if model_found else None
    if model_found is None or item_vec is None:
        encoding = ItemEncoding.objects.filter(item_id=item_id).first()
        status = encoding.status if encoding else ItemEncoding.Status.PENDING
        if model_found is None:
            status = "no active model"
        raise NotEncoded(external_id, Space.HYBRID, status, encoding.error if encoding else "")
    _, model = model_found
    query = model.user_vector(None, item_vec[None, :])
    return similar_with_rules(
        space=space,
        query=vectors.to_literal(query),
        item_id=item_id,
        k=k,
        filters=filters or SimilarFilters(),
    )


def items_search(
    *, query_vectors: dict[str, np.ndarray], k: int, filters: SimilarFilters | None = None
) -> list[Neighbour]:
    """Items nearest to encoded query vectors (one per space); several spaces are merged by
    their best similarity. Merchandising rules apply (``shop_recs.ranking.merchandising``)."""
    filters = filters or SimilarFilters()
    literals = {space: vectors.to_literal(vec) for space, vec in query_vectors.items()}
    plan = merchandising.plan_for(kind=merchandising.SEARCH, category=filters.category)
    exclude: list[int] = []
    pool = k
    if plan is not None:
        filters, exclude, pool = plan.filters(filters), plan.exclude_item_ids, plan.pool(k)

    def merged(found: Iterable[Neighbour]) -> list[Neighbour]:
        best: dict[int, Neighbour] = {}
        for n in found:
            if n.item.id not in best or n.score > best[n.item.id].score:
                best[n.item.id] = n
        return sorted(best.values(), key=lambda n: -n.score)

    results = merged(
        n
        for space, literal in literals.items()
        for n in vector_search(
            space=space,
            query=literal,
            k=pool,
            filters=filters,
            exclude_item_ids=exclude,
            explain=literals,
        )
    )
    if plan is None:
        return results[:k]
    return merchandising.apply(
        plan,
        results,
        k=k,
        fetch=lambda ids: merged(
            n
            for space, literal in literals.items()
            for n in item_cards(
                item_ids=ids,
                filters=filters,
                exclude_item_ids=exclude,
                space=space,
                query=literal,
                explain=literals,
            )
        ),
    )
