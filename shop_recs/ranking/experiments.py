"""Serving inside experiments: an arm's configuration applied to the lists of its shoppers.

Every list a caller builds goes through :func:`serving_for`::

    with experiments.serving_for(surface="similar", session_id=...) as tag:
        results = similar_items(...)
        tag.served([n.item.id for n in results])
    response.update(tag.fields())  # list_id, experiment, arm

Outside every experiment the block runs exactly as without experiments (nothing is set), and
``tag`` still gives the list a fresh id. Inside one, :func:`arm_serving` (the **one** place an
arm becomes a serving configuration) decides the model version, the similar-items space, the
strategy and the merchandising rules, and ``tag.served`` spools the exposure
(``shop_recs.catalog.services.experiments``).

The ranking code asks :func:`current` and :func:`serving_model`; :class:`HybridStore` is where a
model's item vectors are read and searched: the active version's in pgvector (the ``hybrid``
space), another version's computed once per process from its artefact and searched in memory.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shop_recs.catalog import vectors
from shop_recs.catalog.models import Arm, ItemEmbedding, ModelVersion, Space
from shop_recs.catalog.services import experiments as exp_services
from shop_recs.ranking import merchandising, registry
from shop_recs.ranking.dataset import catalog_features
from shop_recs.ranking.registry import version_model
from shop_recs.search.knn import item_cards, vector_search
from shop_recs.search.types import Neighbour, SimilarFilters

SURFACES = ("similar", "recommendations", "search")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """How an arm serves: what the ranking code reads while a list is built."""

    experiment_id: int
    experiment: str
    arm_id: int
    arm: str
    shopper: str
    surface: str
    version_id: int | None  # None: the active model
    similar_space: str  # "": the request's, else the default space
    strategy: str  # model | content | popular
    live_rules: bool
    extra_rule_ids: tuple[int, ...] = ()


_current: ContextVar[Serving | None] = ContextVar("shop_recs_serving", default=None)


def current() -> Serving | None:
    """The arm serving the list being built, or None outside experiments."""
    return _current.get()


def arm_serving(arm: Arm, *, experiment_id: int, experiment: str, shopper: str,
                surface: str) -> Serving:  # fmt: skip
    """The serving configuration of ``arm``: the one place arms meet the serving code."""
    return Serving(
        experiment_id=experiment_id,
        experiment=experiment,
        arm_id=arm.pk,
        arm=arm.name,
        shopper=shopper,
        surface=surface,
        version_id=arm.model_version_id,
        similar_space=arm.similar_space or "",
        strategy=arm.strategy,
        live_rules=arm.rules == Arm.Rules.LIVE,
        extra_rule_ids=tuple(sorted(r.pk for r in arm.extra_rules.all())),
    )


@dataclass
class ListTag:
    """The identity of one served list: its id, and its experiment and arm (None outside)."""

    list_id: str
    serving: Serving | None = None
    logged: bool = field(default=False, repr=False)

    @property
    def experiment(self) -> str | None:
        return self.serving.experiment if self.serving else None

    @property
    def arm(self) -> str | None:
        return self.serving.arm if self.serving else None

    def served(self, item_ids: Sequence[int]) -> None:
        """Spool the exposure of this list (inside an experiment, once, when not empty)."""
        if self.serving is None or self.logged or not item_ids:
            return
        self.logged = True
        exp_services.exposure_log(
            list_id=self.list_id,
            experiment_id=self.serving.experiment_id,
            arm_id=self.serving.arm_id,
            shopper=self.serving.shopper,
            surface=self.serving.surface,
            item_ids=item_ids,
            model_version_id=self.model_version_id(),
        )

    def model_version_id(self) -> int | None:
        """The model version that served this list (None when its strategy uses none)."""
        serving = self.serving
        if serving is None or serving.strategy != Arm.Strategy.MODEL:
            return None
        if serving.version_id is not None:
            return serving.version_id
        return ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True).first()

    def fields(self) -> dict[str, Any]:
        """The fields every list response carries."""
        return {"list_id": self.list_id, "experiment": self.experiment, "arm": self.arm}


def covers(surface: str) -> bool:
    """Whether a running experiment covers ``surface`` (cached like the assignment): the
    callers look the shopper up only then, so a shop with no experiment pays nothing."""
    return any(e.covers(surface) for e in exp_services.running_experiments())


@contextmanager
def serving_for(
    *, surface: str, customer_external_id: str | None = None, session_id: str = ""
) -> Iterator[ListTag]:
    """Build one list of ``surface`` for this shopper (module docstring)."""
    found = exp_services.assignment(
        surface=surface, customer_external_id=customer_external_id, session_id=session_id
    )
    tag = ListTag(list_id=exp_services.new_list_id())
    if found is None:
        yield tag
        return
    experiment, arm, key = found
    tag.serving = arm_serving(
        arm, experiment_id=experiment.id, experiment=experiment.name, shopper=key,
        surface=surface,
    )  # fmt: skip
    token = _current.set(tag.serving)
    rules = merchandising.arm_rules.set((tag.serving.live_rules, tag.serving.extra_rule_ids))
    try:
        yield tag
    finally:
        merchandising.arm_rules.reset(rules)
        _current.reset(token)


# --------------------------------------------------------------------------- model and vectors


class HybridStore:
    """A model version's item vectors in pgvector: its own stored space (``hybrid@<version>``,
    :func:`shop_recs.catalog.vectors.space_key`), the active version's or the previous one
    activation keeps for a rollback."""

    def __init__(self, space: str = Space.HYBRID) -> None:
        self.space = vectors.space_key(space)

    def vectors(self, item_ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {
            pk: np.asarray(vec, dtype=np.float32)
            for pk, vec in ItemEmbedding.objects.filter(
                space=self.space, item_id__in=list(item_ids)
            ).values_list("item_id", "vector")
        }

    def search(
        self,
        query: np.ndarray,
        *,
        k: int,
        filters: SimilarFilters,
        exclude_item_ids: Sequence[int],
        explain: Any = None,
    ) -> list[Neighbour]:
        return vector_search(
            space=self.space,
            query=vectors.to_literal(query),
            k=k,
            filters=filters,
            exclude_item_ids=exclude_item_ids,
            explain=explain,
        )

    def dim(self) -> int:
        row = ItemEmbedding.objects.filter(space=self.space).values_list("dim", flat=True)
        return int(row.first() or 0)


class MemoryHybridStore(HybridStore):
    """Item vectors of a version that is not active, computed from its artefact as activation
    would write them (every encoded item), and searched exactly in memory."""

    def __init__(self, model: Any) -> None:
        self.space = Space.HYBRID.value  # searched here, never in pgvector
        dims = model.feature_dims
        catalog = catalog_features(
            text_dim=dims["text_dim"] or None, image_dim=dims["image_dim"], model=model
        )
        self.item_ids = np.asarray(catalog.item_ids, dtype=np.int64)
        self.matrix = (
            np.asarray(model.item_vectors(catalog.features, catalog.external_ids), np.float32)
            if len(self.item_ids)
            else np.zeros((0, int(model.vector_dim)), np.float32)
        )
        self.row = {int(pk): n for n, pk in enumerate(self.item_ids)}

    def vectors(self, item_ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {pk: self.matrix[self.row[pk]] for pk in item_ids if pk in self.row}

    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def search(
        self,
        query: np.ndarray,
        *,
        k: int,
        filters: SimilarFilters,
        exclude_item_ids: Sequence[int],
        explain: Any = None,
    ) -> list[Neighbour]:
        if k <= 0 or not len(self.item_ids):
            return []
        scores = self.matrix @ np.asarray(query, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")
        excluded = set(exclude_item_ids)
        out: list[Neighbour] = []
        start, step = 0, max(4 * k, 64)
        while len(out) < k and start < len(order):
            chunk = [int(self.item_ids[i]) for i in order[start : start + step]]
            start += step
            chunk = [pk for pk in chunk if pk not in excluded]
            cards = {
                n.item.id: n
                for n in item_cards(item_ids=chunk, filters=filters, exclude_item_ids=excluded)
            }
            for pk in chunk:
                if pk in cards and len(out) < k:
                    n = cards[pk]
                    n.score = round(float(scores[self.row[pk]]), 6)
                    out.append(n)
        return out


_stores: OrderedDict[int, tuple[Any, MemoryHybridStore]] = OrderedDict()
_stores_lock = threading.Lock()


def _memory_store(version: ModelVersion, model: Any) -> MemoryHybridStore:
    with _stores_lock:
        found = _stores.get(version.pk)
        if found is not None and found[0] is model:
            _stores.move_to_end(version.pk)
            return found[1]
    store = MemoryHybridStore(model)
    with _stores_lock:
        _stores[version.pk] = (model, store)
        while len(_stores) > 3:
            _stores.popitem(last=False)
    return store


def serving_model() -> tuple[ModelVersion, Any, HybridStore] | None:
    """The model the current list is served by, with its item vectors: the active one outside
    experiments and in arms on "active"; the arm's version otherwise; None when the arm's
    strategy does not use a model or no model can serve."""
    serving = current()
    if serving is not None and serving.strategy != Arm.Strategy.MODEL:
        return None
    if serving is None or serving.version_id is None:
        found = registry.serving_model()  # the lean (torch-free where possible) serving model
        if found is None:
            return None
        return found[0], found[1], HybridStore(vectors.space_key(Space.HYBRID, found[0].pk))
    version = ModelVersion.objects.filter(pk=serving.version_id).first()
    if version is None or version.status != ModelVersion.Status.READY:
        return None
    if version.is_active:
        found = registry.serving_model()
        if found is not None and found[0].pk == version.pk:
            return found[0], found[1], HybridStore(vectors.space_key(Space.HYBRID, version.pk))
    try:
        model = version_model(version)
    except Exception:
        logger.exception("the model %s of an experiment's arm cannot be loaded", version.pk)
        return None
    # a version activated before keeps its space while it is the previous one (rollback)
    kept = vectors.space_key(Space.HYBRID, version.pk)
    if version.is_active or ItemEmbedding.objects.filter(space=kept).exists():
        return version, model, HybridStore(kept)
    return version, model, _memory_store(version, model)
