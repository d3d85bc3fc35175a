"""Which saves of the shop's rows mirror which products: the model signals of the item source.

The product model's saves and deletes, and those of every model its fields are read through
(stock records, images, categories, brands..., derived from the ``FIELDS`` paths by
:mod:`.paths`, plus ``WATCH`` for what callables read), and the ``m2m_changed`` of every
many-to-many relation crossed. Each handler only works out which products are concerned and
notes their keys after the commit (:mod:`.queue`), so a back office that saves the product
first and its related rows after gets the product mirrored once, with all of it.

A handler never breaks the shop's save: a failure is logged (``recs_sync`` repairs), and the
query that finds the products of a related row runs in a savepoint, so it cannot abort the
shop's transaction.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import Signal

from shop_recs.storefront.source.checks import item_source
from shop_recs.storefront.source.paths import Hop, M2MHop
from shop_recs.storefront.source.queue import mirror_queue
from shop_recs.storefront.source.values import ItemSource

logger = logging.getLogger(__name__)

#: (signal, sender, dispatch_uid) of every connected handler, to undo on a settings change.
_connected: list[tuple[Signal, Any, str]] = []


class _Batch:
    """The products one transaction changed, handed to the queue once, after its commit."""

    def __init__(self) -> None:
        self.pks: dict[Any, None] = {}
        self.removed: dict[str, None] = {}
        self.flushed = False

    def flush(self) -> None:
        self.flushed = True
        mirror_queue.add(pks=list(self.pks), removed=list(self.removed))


_local = threading.local()


def _after_commit(using: str | None, *, pks: Iterable[Any] = (), removed: Iterable[str] = ()):
    """Note products to mirror once the shop's transaction commits: one batch per transaction
    however many rows it saves (a rolled-back transaction, or savepoint, drops its batch)."""
    pks, removed = [p for p in pks if p is not None], list(removed)
    if not pks and not removed:
        return
    connection = connections[using or DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:  # autocommit: the change is committed already
        mirror_queue.add(pks=pks, removed=removed)
        return
    batches = _local.__dict__.setdefault("batches", {})
    batch = batches.get(connection.alias)
    # still waiting for this transaction's commit? (Django drops the callbacks of a rolled-back
    # transaction or savepoint: then this is a new batch)
    if (
        batch is None
        or batch.flushed
        or not any(func == batch.flush for _, func, _ in connection.run_on_commit)
    ):
        batch = batches[connection.alias] = _Batch()
        transaction.on_commit(batch.flush, using=connection.alias)
    batch.pks.update(dict.fromkeys(pks))
    batch.removed.update(dict.fromkeys(removed))


def _products(source: ItemSource, lookup: str, keys: Iterable[Any], using: str | None) -> set:
    """Keys of the products whose ``lookup`` is one of ``keys`` ("" : the keys themselves)."""
    keys = [k for k in keys if k is not None]
    if not keys:
        return set()
    if not lookup:
        return set(keys)
    with transaction.atomic(using=using):  # a savepoint: a failure never aborts the shop's
        return set(
            source.model._default_manager.using(using)
            .filter(**{f"{lookup}__in": keys})
            .values_list("pk", flat=True)
        )


def _products_of_row(source: ItemSource, instance: Any, using: str | None) -> set:
    found: set = set()
    for hop in source.hops:
        if isinstance(instance, hop.model):
            if hop.fk_attname:
                found.add(getattr(instance, hop.fk_attname, None))
            else:
                found |= _products(source, hop.lookup, [instance.pk], using)
    found.discard(None)
    return found


_paused = threading.local()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No mirroring of the changes this thread makes inside the block: for a bulk import of
    products (follow it with ``recs_sync``, which mirrors everything in one pass)."""
    _paused.depth = getattr(_paused, "depth", 0) + 1
    try:
        yield
    finally:
        _paused.depth -= 1


def _guarded(what: str):
    def decorate(handler):
        def run(sender: Any, instance: Any = None, **kwargs: Any) -> None:
            if kwargs.get("raw") or getattr(_paused, "depth", 0):
                return  # loading fixtures, a paused bulk import: recs_sync mirrors them
            try:
                source = item_source()
                if source is not None:
                    handler(source, sender, instance, **kwargs)
            except Exception:  # the shop's save must never fail because of the plugin
                logger.exception(
                    "shop_recs: could not queue the mirroring after %s of %r; run "
                    "`python manage.py recs_sync`",
                    what,
                    instance,
                )

        return run

    return decorate


@_guarded("a save")
def _on_product_saved(source: ItemSource, sender: Any, instance: Any, **kwargs: Any) -> None:
    if isinstance(instance, source.model):
        _after_commit(kwargs.get("using"), pks=[instance.pk])


@_guarded("a delete")
def _on_product_deleted(source: ItemSource, sender: Any, instance: Any, **kwargs: Any) -> None:
    if not isinstance(instance, source.model):
        return
    using = kwargs.get("using")
    if source.is_variant(instance):  # its parent's item changes (stock, price), no removal
        _after_commit(using, pks=[source.parent_of(instance).pk])
        return
    # read now: after the delete the product's relations may be gone
    _after_commit(using, removed=[source.external_id_of(instance)])


@_guarded("a save")
def _on_row_saved(source: ItemSource, sender: Any, instance: Any, **kwargs: Any) -> None:
    using = kwargs.get("using")
    _after_commit(using, pks=_products_of_row(source, instance, using))


@_guarded("a delete")
def _on_row_deleting(source: ItemSource, sender: Any, instance: Any, **kwargs: Any) -> None:
    # pre_delete: the row still links its products
    using = kwargs.get("using")
    _after_commit(using, pks=_products_of_row(source, instance, using))


@_guarded("a save")
def _on_through_saved(source: ItemSource, sender: Any, instance: Any, **kwargs: Any) -> None:
    """A row of an explicit many-to-many model saved or deleted directly (an admin inline)."""
    using = kwargs.get("using")
    pks: set = set()
    for hop in source.m2m:
        if isinstance(instance, hop.through):
            owner = getattr(instance, hop.owner_fk_attname, None)
            pks |= _products(source, hop.owner_lookup, [owner], using)
    _after_commit(using, pks=pks)


@_guarded("a many-to-many change")
def _on_m2m_changed(source: ItemSource, sender: Any, instance: Any, **kwargs: Any) -> None:
    action, reverse = kwargs["action"], kwargs["reverse"]
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    using = kwargs.get("using")
    pks: set = set()
    for hop in source.m2m:
        if hop.through is not sender:
            continue
        if not reverse:  # changed from the side that declares the field: ``instance`` owns it
            pks |= _products(source, hop.owner_lookup, [instance.pk], using)
        elif action == "pre_clear":  # the owners it had, before they are unlinked
            pks |= _products(source, hop.target_lookup, [instance.pk], using)
        else:  # the owners added or removed
            pks |= _products(source, hop.owner_lookup, kwargs.get("pk_set") or (), using)
    _after_commit(using, pks=pks)


def _connect(signal: Signal, handler: Any, sender: Any, uid: str) -> None:
    signal.connect(handler, sender=sender, dispatch_uid=uid, weak=False)
    _connected.append((signal, sender, uid))


def watched_models(source: ItemSource) -> list[type[models.Model]]:
    """The models whose rows mirror products (besides the product model): for the README's
    "what the plugin listens to" and ``recs_sync --dry-run``."""
    found = [hop.model for hop in source.hops]
    found += [hop.through for hop in source.m2m if not hop.through._meta.auto_created]
    return list(dict.fromkeys(found))


def connect_signals() -> None:
    """Connect the handlers for the configured item source (and disconnect those of a previous
    configuration); called from the storefront's ready() and when settings change."""
    while _connected:
        signal, sender, uid = _connected.pop()
        signal.disconnect(sender=sender, dispatch_uid=uid)
    try:
        source = item_source()
    except ImproperlyConfigured:
        logger.exception("shop_recs: ITEM_SOURCE is invalid; products are not mirrored")
        return  # the system check reports it too
    if source is None:
        return
    label = source.label
    _connect(post_save, _on_product_saved, source.model, f"shop_recs.source.saved.{label}")
    _connect(post_delete, _on_product_deleted, source.model, f"shop_recs.source.deleted.{label}")
    for model in dict.fromkeys(hop.model for hop in source.hops):
        row = model._meta.label
        _connect(post_save, _on_row_saved, model, f"shop_recs.source.row_saved.{row}")
        _connect(pre_delete, _on_row_deleting, model, f"shop_recs.source.row_deleting.{row}")
    for through in dict.fromkeys(hop.through for hop in source.m2m):
        name = through._meta.label
        _connect(m2m_changed, _on_m2m_changed, through, f"shop_recs.source.m2m.{name}")
        if not through._meta.auto_created:
            _connect(post_save, _on_through_saved, through, f"shop_recs.source.through.{name}")
            _connect(pre_delete, _on_through_saved, through, f"shop_recs.source.unlink.{name}")


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SHOP_RECS":
        item_source.cache_clear()
        connect_signals()


setting_changed.connect(_settings_changed, dispatch_uid="shop_recs.item_source.reload")


__all__ = ["Hop", "M2MHop", "connect_signals", "paused", "watched_models"]
