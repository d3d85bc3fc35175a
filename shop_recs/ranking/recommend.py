"""Recommendations for shoppers and model-based similar items (selectors: reads only).

The fallback chain, each step filling what the previous one left:

1. ``model``: the active model's user tower over the shopper's recent items (their stored
   ``hybrid`` vectors) and, for a known shopper, their ID embedding; nearest items by inner
   product in pgvector. Works for anonymous sessions and brand-new items without retraining.
2. ``content``: similarity in the fused content space to the recent items.
3. ``popular``: the most popular items of the filtered set.

Every result says which source served it and why ("because you viewed X"). Items the shopper
purchased are left out unless asked for; inactive items never appear, out-of-stock ones only
when the filters ask for them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import Q

from shop_recs.catalog import vectors
from shop_recs.catalog.models import (
    Customer,
    Event,
    Interaction,
    Item,
    ItemEmbedding,
    Space,
)
from shop_recs.conf import recs_settings
from shop_recs.ranking import experiments, merchandising
from shop_recs.ranking.dataset import user_key
from shop_recs.recsys.base import event_weight
from shop_recs.search.knn import item_cards, popular_items, vector_search
from shop_recs.search.types import ItemCard, Neighbour, SimilarFilters

logger = logging.getLogger(__name__)

EVENT_VERBS = {
    Event.VIEW: "viewed",
    Event.CLICK: "clicked",
    Event.CART: "added to your cart",
    Event.PURCHASE: "bought",
    Event.RATING: "rated",
    Event.LIKE: "liked",
}


@dataclass
class HistoryItem:
    item_id: int
    external_id: str
    title: str
    event: str
    weight: float


@dataclass
class Recommendation:
    item: ItemCard
    score: float
    source: str  # "model" | "content" | "popular" | "rule" (inserted by a pin rule)
    reason: str
    because: str | None = None  # external id of the history item that explains it
    similarity: dict[str, float] = field(default_factory=dict)
    # The merchandising rules that moved this result (catalog.merchandising).
    rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RecommendationResult:
    results: list[Recommendation]
    history: list[HistoryItem]
    model_version: int | None


def shopper_history(
    *,
    customer: Customer | None = None,
    session_id: str = "",
    recent_item_ids: Sequence[str] = (),
) -> tuple[list[HistoryItem], list[str]]:
    """The shopper's recent positive events (oldest first, at most ``HISTORY_LENGTH``), then the
    items the request names as recently viewed; and the unknown ids among the latter."""
    limit = int(recs_settings.HISTORY_LENGTH)
    history: list[HistoryItem] = []
    if customer is not None or session_id:
        qs = Interaction.objects.all()
        if customer is not None and session_id:
            qs = qs.filter(Q(customer=customer) | Q(session_id=session_id))
        elif customer is not None:
            qs = qs.filter(customer=customer)
        else:
            qs = qs.filter(session_id=session_id, customer__isnull=True)
        rows = qs.order_by("-occurred_at", "-id").values_list(
            "item_id", "item__external_id", "item__title", "event", "value"
        )[: limit * 2]
        for item_id, ext, title, event, value in reversed(list(rows)):
            weight = event_weight(event, value, recs_settings.EVENT_WEIGHTS)
            if weight > 0:
                history.append(HistoryItem(item_id, ext, title, event, weight))
    unknown: list[str] = []
    if recent_item_ids:
        found = {
            ext: (pk, title)
            for pk, ext, title in Item.objects.filter(
                external_id__in=list(recent_item_ids)
            ).values_list("pk", "external_id", "title")
        }
        # a browser's stored views and the recent ids it sends name the same items: counted
        # once (twice would read as repeats to an order-aware model, and double their weight)
        stored = {h.external_id for h in history}
        for ext in recent_item_ids:
            if ext in stored:
                continue
            if ext in found:
                pk, title = found[ext]
                history.append(
                    HistoryItem(
                        pk,
                        ext,
                        title,
                        Event.VIEW,
                        event_weight(Event.VIEW, 1.0, recs_settings.EVENT_WEIGHTS),
                    )
                )
            else:
                unknown.append(ext)
    return history[-limit:], unknown


def purchased_item_ids(*, customer: Customer | None, session_id: str = "") -> set[int]:
    if customer is None and not session_id:
        return set()
    # rated items count as bought: a shopper rates (reviews) what they have, and a rating
    # older than the recent history would otherwise come back as a recommendation
    qs = Interaction.objects.filter(event__in=(Event.PURCHASE, Event.RATING))
    qs = qs.filter(customer=customer) if customer is not None else qs.filter(session_id=session_id)
    return set(qs.values_list("item_id", flat=True))


def _space_vectors(space: str, item_ids: Sequence[int]) -> dict[int, np.ndarray]:
    return {
        pk: np.asarray(vec, dtype=np.float32)
        for pk, vec in ItemEmbedding.objects.filter(
            space=space, item_id__in=list(item_ids)
        ).values_list("item_id", "vector")
    }


def _explained(
    found: list[Neighbour],
    *,
    source: str,
    space: str,
    history: list[HistoryItem],
    history_vectors: dict[int, np.ndarray],
    explainer: Any = None,
    vectors_of: Any = None,
) -> list[Recommendation]:
    """Attach to each result the history item that explains it: the one adding most to its
    score when ``explainer`` (the model and the shopper's ``user_vector`` arguments) can say
    (``VectorRecommender.because``), else the one most similar to it in ``space`` (cosine).
    ``vectors_of(ids)``: the results' vectors where they are not stored in ``space`` (an
    experiment's model held in memory)."""
    ids = [n.item.id for n in found]
    if not history_vectors:
        result_vectors = {}
    elif vectors_of is not None:
        result_vectors = vectors_of(ids)
    else:
        result_vectors = _space_vectors(space, ids)
    by_model = _model_because(explainer, found, result_vectors)
    out = []
    for n in found:
        because = None
        best = -2.0
        vec = result_vectors.get(n.item.id)
        if n.item.id in by_model:
            because = by_model[n.item.id]
        elif vec is not None:
            for h in history:
                hv = history_vectors.get(h.item_id)
                if hv is None or len(hv) != len(vec):
                    continue
                sim = float(hv @ vec / ((np.linalg.norm(hv) * np.linalg.norm(vec)) or 1.0))
                if sim > best:
                    best, because = sim, h
        if because is not None:
            verb = EVENT_VERBS.get(because.event, "viewed")
            reason = f"because you {verb} {because.title}"
        elif source == "model":
            reason = "matches your taste"
        else:
            reason = "popular"
        out.append(
            Recommendation(
                item=n.item,
                score=n.score,
                source=source,
                reason=reason,
                because=because.external_id if because else None,
                similarity=n.similarity,
            )
        )
    return out


def _model_because(
    explainer: Any, found: list[Neighbour], result_vectors: dict[int, np.ndarray]
) -> dict[int, HistoryItem]:
    """Result item id -> the history item the model says explains it (results no history
    item adds to are left out); empty when the model cannot say."""
    if explainer is None:
        return {}
    model, key, history, hv, weights = explainer
    because = getattr(model, "because", None)
    ids = [n.item.id for n in found if n.item.id in result_vectors]
    if not callable(because) or not ids or not history:
        return {}
    try:
        picks = because(key, hv, weights, np.stack([result_vectors[i] for i in ids]))
    except Exception:  # an explanation never fails a recommendation: cosine instead
        logger.exception("the model could not explain its recommendations")
        return {}
    # where no history item adds to the score, the cosine explanation stands in
    return {i: history[p] for i, p in zip(ids, picks, strict=True) if 0 <= p < len(history)}


def _nearest_explained(
    space: str,
    query: np.ndarray,
    *,
    k: int,
    filters: SimilarFilters,
    exclude_item_ids: Sequence[int],
    source: str,
    history: list[HistoryItem],
    history_vectors: dict[int, np.ndarray],
    explainer: Any = None,
) -> list[Recommendation]:
    """One step of the chain: the items nearest to ``query`` in ``space``, each explained by
    the history item closest to it (or the model's own explanation, see :func:`_explained`)."""
    found = vector_search(
        space=space,
        query=vectors.to_literal(query),
        k=k,
        filters=filters,
        exclude_item_ids=exclude_item_ids,
    )
    return _explained(
        found,
        source=source,
        space=space,
        history=history,
        history_vectors=history_vectors,
        explainer=explainer,
    )


def _weighted_mean(vectors_: list[np.ndarray], weights: list[float]) -> np.ndarray:
    stacked = np.stack(vectors_)
    w = np.asarray(weights, dtype=np.float32)[:, None]
    mean = (stacked * w).sum(axis=0) / max(float(w.sum()), 1e-9)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def recommendations(
    *,
    customer: Customer | None = None,
    session_id: str = "",
    recent_item_ids: Sequence[str] = (),
    k: int = 10,
    filters: SimilarFilters | None = None,
    include_purchased: bool = False,
    include_seen: bool = False,
) -> RecommendationResult:
    """Top-k recommendations for a shopper through the fallback chain (module docstring).

    ``filters.exclude`` ids never appear; nor do the shopper's recent items unless
    ``include_seen``, nor purchased (or rated) ones unless ``include_purchased``.
    Merchandising rules apply last (``catalog.merchandising``): the chain then fills a larger
    pool when boosts or buries may lift items from below the top k.
    """

    filters = filters or SimilarFilters()
    history, _ = shopper_history(
        customer=customer, session_id=session_id, recent_item_ids=recent_item_ids
    )
    excluded: set[int] = set()
    if not include_purchased:
        excluded |= purchased_item_ids(customer=customer, session_id=session_id)
    if not include_seen:
        excluded |= {h.item_id for h in history}
    plan = merchandising.plan_for(kind=merchandising.RECOMMENDATIONS, category=filters.category)
    wanted = k
    if plan is not None:
        filters = plan.filters(filters)
        excluded |= set(plan.exclude_item_ids)
        k = plan.pool(k)
    results: list[Recommendation] = []
    model_version = None

    def taken() -> list[int]:
        return sorted(excluded | {r.item.id for r in results})

    serving = experiments.current()
    found = experiments.serving_model()
    if found is not None:
        version, model, store = found
        model_version = version.pk
        # the version's own space (store.space): the user tower and the item vectors it is
        # compared with come from the same model, also mid-activation
        hybrid = store.vectors([h.item_id for h in history])
        usable = [h for h in history if h.item_id in hybrid]
        key = user_key(
            customer_external_id=customer.external_id if customer else None,
            session_id=session_id,
        )
        if usable or (key is not None and key in model.user_map):
            hv = (
                np.stack([hybrid[h.item_id] for h in usable])
                if usable
                else np.zeros((0, store.dim()), np.float32)
            )
            weights = np.asarray([h.weight for h in usable], dtype=np.float32)
            user_vec = model.user_vector(key, hv, weights if usable else None)
            explainer = (model, key, usable, hv, weights if usable else None)
            found_n = store.search(user_vec, k=k, filters=filters, exclude_item_ids=taken())
            results += _explained(
                found_n, source="model", space=store.space, history=usable,
                history_vectors=hybrid, explainer=explainer, vectors_of=store.vectors,
            )  # fmt: skip
    use_content = serving is None or serving.strategy != "popular"
    if len(results) < k and history and use_content:
        content = _space_vectors(Space.CONTENT, [h.item_id for h in history])
        usable = [h for h in history if h.item_id in content]
        dims = {len(content[h.item_id]) for h in usable}
        if usable and len(dims) == 1:
            query = _weighted_mean([content[h.item_id] for h in usable], [h.weight for h in usable])
            results += _nearest_explained(
                Space.CONTENT, query, k=k - len(results), filters=filters,
                exclude_item_ids=taken(), source="content", history=usable,
                history_vectors=content,
            )  # fmt: skip
    if len(results) < k:
        for n in popular_items(k=k - len(results), filters=filters, exclude_item_ids=taken()):
            where = f" in {filters.category}" if filters.category else ""
            results.append(
                Recommendation(item=n.item, score=n.score, source="popular",
                               reason=f"popular{where} right now")
            )  # fmt: skip
    results = results[:k]
    if plan is not None:
        results = _merchandised(plan, results, k=wanted, filters=filters, excluded=excluded)
    return RecommendationResult(results=results, history=history, model_version=model_version)


def _merchandised(
    plan: merchandising.Plan,
    results: list[Recommendation],
    *,
    k: int,
    filters: SimilarFilters,
    excluded: set[int],
) -> list[Recommendation]:
    """Apply the rules to the chain's pool. The sources score on different scales (inner
    product, cosine, popularity), so a mixed list is boosted by rank instead of by score."""
    scores = None
    if len({r.source for r in results}) > 1:
        scores = [float(len(results) - n) for n in range(len(results))]

    def fetch(ids: list[int]) -> list[Recommendation]:
        return [
            Recommendation(item=n.item, score=n.score, source="rule", reason="")
            for n in item_cards(item_ids=ids, filters=filters, exclude_item_ids=excluded)
        ]

    def on_pin(r: Recommendation, rule: merchandising.Rule) -> None:
        pinned = f"pinned by rule '{rule.name}'"
        r.reason = f"{pinned}; {r.reason}" if r.reason else pinned

    return merchandising.apply(plan, results, k=k, fetch=fetch, scores=scores, on_pin=on_pin)
