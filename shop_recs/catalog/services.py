"""Writes to the catalog. Keyword-only, typed, returning model objects (HackSoft styleguide).

Every change that other layers care about is announced with a signal from ``catalog.signals``
after the transaction commits, so nothing here knows about Celery or the API.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import IO, Any, Literal

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.dispatch import Signal
from django.utils import timezone

from shop_recs.catalog import signals
from shop_recs.catalog.conf import recs_settings
from shop_recs.catalog.models import (
    Customer,
    Event,
    Interaction,
    Item,
    ItemEmbedding,
    ItemEncoding,
    ItemImage,
    ItemStats,
    MerchRule,
)
from shop_recs.catalog.validation import check_json_value, inspect_image

# Fields whose change alters what an encoder sees; price/stock changes do not re-encode.
IMAGE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
CONTENT_FIELDS = ("title", "description", "category", "brand", "attributes")
ITEM_FIELDS = (*CONTENT_FIELDS, "price", "in_stock", "is_active")


def _announce(signal: Signal, **kwargs: Any) -> None:
    transaction.on_commit(lambda: signal.send(sender=Item, **kwargs))


def _content_changed(item_ids: list[int], *, announce: bool = True) -> None:
    """Mark items pending for encoding (in this transaction) and announce it after commit.

    Bulk loaders pass ``announce=False`` and encode (or announce) once at the end instead.
    """
    items_mark_pending(item_ids=item_ids)
    if announce:
        _announce(signals.item_content_changed, item_ids=item_ids)


def items_request_encoding(*, item_ids: Sequence[int]) -> None:
    """Ask for items to be (re-)encoded now, e.g. from the admin."""
    with transaction.atomic():
        ItemEmbedding.objects.filter(item_id__in=item_ids).exclude(space="hybrid").update(
            content_hash=""  # forces a re-encode even when nothing changed
        )
        _content_changed(list(item_ids))


def items_announce_changed(*, item_ids: Sequence[int]) -> None:
    """Announce items whose content changed earlier without announcement (bulk loads)."""
    if item_ids:
        _announce(signals.item_content_changed, item_ids=list(item_ids))


def items_mark_pending(*, item_ids: Iterable[int]) -> None:
    """Record that these items wait for (re-)encoding; called in the transaction that changed
    them, so the API shows ``pending`` from the moment the change is visible."""
    ids = sorted(set(item_ids))
    if not ids:
        return
    now = timezone.now()
    ItemEncoding.objects.bulk_create(
        [
            ItemEncoding(item_id=i, status=ItemEncoding.Status.PENDING, requested_at=now)
            for i in ids
        ],
        update_conflicts=True,
        unique_fields=["item"],
        update_fields=["status", "requested_at"],
    )


class AlreadyExists(Exception):
    """An item or customer with this external id exists already (the API answers 409)."""


@contextmanager
def _unique(kind: str, external_id: str) -> Iterator[None]:
    # The unique constraint decides, so two concurrent creates cannot both succeed.
    try:
        yield
    except IntegrityError as exc:
        raise AlreadyExists(f"{kind} with external_id {external_id!r} exists.") from exc


# --------------------------------------------------------------------------- items


def item_create(
    *,
    external_id: str,
    title: str,
    description: str = "",
    category: str = "",
    brand: str = "",
    price: Decimal | None = None,
    attributes: dict[str, Any] | None = None,
    in_stock: bool = True,
    is_active: bool = True,
    announce: bool = True,
) -> Item:
    """Create an item; it is marked pending and, unless ``announce`` is False (bulk callers
    announce once at the end, see ``items_announce_changed``), queued for encoding after commit.
    """
    attributes = attributes or {}
    check_json_value(attributes, field="attributes")
    with _unique("An item", external_id), transaction.atomic():
        item = Item.objects.create(
            external_id=external_id,
            title=title,
            description=description,
            category=category,
            brand=brand,
            price=price,
            attributes=attributes,
            in_stock=in_stock,
            is_active=is_active,
        )
        _content_changed([item.pk], announce=announce)
    return item


def item_update(*, item: Item, data: dict[str, Any], announce: bool = True) -> Item:
    """Change the given fields; a change of content (text fields, attributes) marks the item
    pending and, unless ``announce`` is False, queues it for encoding after commit."""
    unknown = set(data) - set(ITEM_FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    if "attributes" in data:
        check_json_value(data["attributes"], field="attributes")
    changed = [name for name, value in data.items() if getattr(item, name) != value]
    if not changed:
        return item
    with transaction.atomic():
        for name in changed:
            setattr(item, name, data[name])
        item.save(update_fields=[*changed, "updated_at"])
        if any(name in CONTENT_FIELDS for name in changed):
            _content_changed([item.pk], announce=announce)
    return item


def item_delete(*, item: Item) -> None:
    with transaction.atomic():
        for image in item.images.exclude(file=""):
            image.file.delete(save=False)
        item.delete()


def item_image_add_file(
    *,
    item: Item,
    upload: IO[bytes],
    filename: str,
    position: int | None = None,
    announce: bool = True,
) -> ItemImage:
    info = inspect_image(upload, field="file")
    existing = item.images.filter(checksum=info.checksum).first()
    if existing is not None:
        # The same bytes again: keep one copy (imports and retries re-send images).
        return existing
    if position is None:
        position = _next_image_position(item)
    ext = IMAGE_EXTENSIONS.get(info.format, "img")
    name = f"{info.checksum[:16]}.{ext}"
    with transaction.atomic():
        image = ItemImage(
            item=item,
            position=position,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            checksum=info.checksum,
            content_type=info.content_type,
            status=ItemImage.Status.READY,
        )
        image.file.save(name, File(upload, name=filename or name), save=False)
        image.save()
        item.save(update_fields=["updated_at"])
        _content_changed([item.pk], announce=announce)
    return image


def item_image_add_url(*, item: Item, url: str, position: int | None = None) -> ItemImage:
    scheme = url.split(":", 1)[0].lower()
    if scheme not in recs_settings.IMAGE_URL_SCHEMES:
        allowed = ", ".join(recs_settings.IMAGE_URL_SCHEMES)
        raise ValidationError({"url": [f"URL scheme {scheme!r} is not allowed; use {allowed}."]})
    existing = item.images.filter(source_url=url).first()
    if existing is not None:
        return existing
    if position is None:
        position = _next_image_position(item)
    with transaction.atomic():
        image = ItemImage.objects.create(item=item, source_url=url, position=position)
        item.save(update_fields=["updated_at"])
        items_mark_pending(item_ids=[item.pk])
        _announce(signals.item_images_added, image_ids=[image.pk])
    return image


class ImageFetchRetry(ConnectionError):
    """A download failed for a reason that may pass (timeout, connection): try again later."""


TRANSIENT_FETCH_REASONS = frozenset({"timeout", "connection"})


def item_image_fetch(*, image: ItemImage, retry_transient: bool = False) -> ItemImage:
    """Download an image registered by URL (SSRF-safe), validate it, store it as a file.

    A refused or invalid download marks the image failed with the reason; the item keeps its
    other images and is re-encoded either way. With ``retry_transient`` a timeout or connection
    failure raises ImageFetchRetry instead, so the caller (a task) can try again later.
    """
    from shop_recs.catalog.image_fetch import ImageFetchError, fetch_image

    if image.file or not image.source_url:
        return image
    try:
        fetched = fetch_image(
            image.source_url,
            max_bytes=recs_settings.MAX_IMAGE_BYTES,
            timeout=float(recs_settings.IMAGE_FETCH_TIMEOUT),
            allowed_schemes=tuple(recs_settings.IMAGE_URL_SCHEMES),
            allow_networks=tuple(recs_settings.IMAGE_FETCH_ALLOW_NETWORKS),
        )
        info = inspect_image(io.BytesIO(fetched.data), field="url")
    except ImageFetchError as exc:
        if retry_transient and exc.reason in TRANSIENT_FETCH_REASONS:
            raise ImageFetchRetry(str(exc)) from exc
        return _image_failed(image, f"download refused or failed ({exc.reason}): {exc}")
    except ValidationError as exc:
        return _image_failed(image, "; ".join(exc.messages))
    ext = IMAGE_EXTENSIONS.get(info.format, "img")
    with transaction.atomic():
        image.file.save(f"{info.checksum[:16]}.{ext}", ContentFile(fetched.data), save=False)
        image.width, image.height = info.width, info.height
        image.size_bytes, image.checksum = info.size_bytes, info.checksum
        image.content_type, image.status, image.error = (
            info.content_type,
            ItemImage.Status.READY,
            "",
        )
        image.save()
        _content_changed([image.item_id])
    return image


def _image_failed(image: ItemImage, reason: str) -> ItemImage:
    with transaction.atomic():
        image.status, image.error = ItemImage.Status.FAILED, reason[:2000]
        image.save(update_fields=["status", "error"])
        _content_changed([image.item_id])
    return image


def item_image_delete(*, image: ItemImage) -> None:
    item = image.item
    with transaction.atomic():
        if image.file:
            image.file.delete(save=False)
        image.delete()
        item.save(update_fields=["updated_at"])
        _content_changed([item.pk])


def _next_image_position(item: Item) -> int:
    last = item.images.aggregate(m=Max("position"))["m"]
    return 0 if last is None else last + 1


# --------------------------------------------------------------------------- customers


def customer_create(
    *, external_id: str, attributes: dict[str, Any] | None = None, user: Any = None
) -> Customer:
    attributes = attributes or {}
    check_json_value(attributes, field="attributes")
    with _unique("A customer", external_id), transaction.atomic():
        return Customer.objects.create(external_id=external_id, attributes=attributes, user=user)


class _UserAttributes(dict):
    """Lets ``CUSTOMER_ID`` format strings name any attribute of the user ({pk}, {email})."""

    def __init__(self, user: Any) -> None:
        super().__init__()
        self.user = user

    def __missing__(self, key: str) -> Any:
        try:
            return getattr(self.user, key)
        except AttributeError:
            raise KeyError(key) from None


def customer_external_id(user: Any) -> str:
    """The external id of the Customer that stands for a shop user (``SHOP_RECS['CUSTOMER_ID']``:
    a format string over the user's attributes, or a callable / "callable:dotted.path")."""
    from django.utils.module_loading import import_string

    from shop_recs.catalog.importer import EXTERNAL_ID

    spec = recs_settings.CUSTOMER_ID
    if isinstance(spec, str) and spec.startswith("callable:"):
        spec = import_string(spec.removeprefix("callable:"))
    try:
        value = spec(user) if callable(spec) else str(spec).format_map(_UserAttributes(user))
    except KeyError as exc:
        raise ValidationError(
            f"SHOP_RECS['CUSTOMER_ID'] = {spec!r} names {exc.args[0]!r}, which the user model "
            "lacks: use an attribute of the user such as {pk} or {username}."
        ) from None
    value = str(value).strip()
    try:
        EXTERNAL_ID(value)
    except ValidationError:
        raise ValidationError(
            f"SHOP_RECS['CUSTOMER_ID'] gives {value!r} for user {user.pk}, which is not a valid "
            "external id (1-255 characters without whitespace, / \\ ? # %): base it on {pk}."
        ) from None
    return value


def customer_for_user(user: Any) -> Customer | None:
    """The Customer of a shop user, created (and linked) on first use; None when anonymous.

    A customer already linked to the user wins; otherwise the one with the external id that
    ``SHOP_RECS['CUSTOMER_ID']`` gives for the user is linked (a shopper known from imported
    events before their account was connected) or created.
    """
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        return None
    linked = Customer.objects.filter(user=user).first()
    if linked is not None:
        return linked
    external_id = customer_external_id(user)
    for _ in range(2):  # a concurrent request may create the same customer: then link it
        try:
            with transaction.atomic():
                customer = (
                    Customer.objects.select_for_update().filter(external_id=external_id).first()
                )
                if customer is None:
                    return customer_create(external_id=external_id, user=user)
                if customer.user_id is None:
                    customer.user = user
                    customer.save(update_fields=["user"])
                    return customer
                if customer.user_id == user.pk:
                    return customer
                raise ValidationError(
                    f"Customer {external_id!r} is linked to another user ({customer.user_id}): "
                    "SHOP_RECS['CUSTOMER_ID'] must give each user its own id (use {pk})."
                )
        except (AlreadyExists, IntegrityError):
            linked = Customer.objects.filter(user=user).first()
            if linked is not None:
                return linked
    raise AlreadyExists(f"A customer for user {user.pk} could not be created or linked.")


# --------------------------------------------------------------------------- interactions


@dataclass(frozen=True)
class EventIn:
    """One event as a store sends it: ids are the store's external ids."""

    item_id: str
    event: str
    customer_id: str | None = None
    session_id: str = ""
    value: float = 1.0
    occurred_at: datetime | None = None
    idempotency_key: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventOutcome:
    status: Literal["created", "duplicate", "rejected"]
    interaction: Interaction | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)


def event_check(event: EventIn) -> dict[str, list[str]]:
    """Checks that need no database: returns errors by field (empty when valid)."""
    errors: dict[str, list[str]] = {}
    if event.event not in Event.values:
        errors["event"] = [f"Unknown event {event.event!r}; use one of {', '.join(Event.values)}."]
    if not event.customer_id and not event.session_id:
        errors["customer_id"] = ["Give customer_id or session_id (anonymous sessions)."]
    if not math.isfinite(event.value) or abs(event.value) > 1e9:
        errors["value"] = ["Must be a finite number between -1e9 and 1e9."]
    elif event.event == Event.RATING and not 0 <= event.value <= 5:
        errors["value"] = ["A rating must be between 0 and 5."]
    if event.occurred_at is not None:
        if timezone.is_naive(event.occurred_at):
            errors["occurred_at"] = ["Give a time zone (e.g. a trailing Z for UTC)."]
        else:
            limit = timezone.now() + timedelta(seconds=recs_settings.EVENTS_MAX_FUTURE_SECONDS)
            if event.occurred_at > limit:
                errors["occurred_at"] = ["Lies in the future."]
    if event.context:
        try:
            check_json_value(event.context, field="context")
        except ValidationError as exc:
            errors.update(exc.message_dict)
    return errors


def interactions_record(*, events: Sequence[EventIn]) -> list[EventOutcome]:
    """Store a batch of events, each independently: invalid ones are reported, valid ones kept.

    Idempotent by ``idempotency_key``: a key seen before (in an earlier batch, in this batch, or
    in a concurrent request) yields ``duplicate`` with the interaction first stored for it.
    """
    outcomes: list[EventOutcome | None] = [None] * len(events)
    items = {
        item.external_id: item
        for item in Item.objects.filter(external_id__in={e.item_id for e in events}).only(
            "id", "external_id"
        )
    }
    customer_ids = {e.customer_id for e in events if e.customer_id}
    customers = _customers_by_external_id(customer_ids)
    if recs_settings.EVENTS_CREATE_UNKNOWN_CUSTOMERS and customer_ids - set(customers):
        Customer.objects.bulk_create(
            [Customer(external_id=c) for c in customer_ids - set(customers)],
            ignore_conflicts=True,
        )
        customers = _customers_by_external_id(customer_ids)

    now = timezone.now()
    rows: list[tuple[int, Interaction]] = []
    first_index_of_key: dict[str, int] = {}
    repeated_in_batch: list[tuple[int, str]] = []
    for index, event in enumerate(events):
        errors = event_check(event)
        if event.item_id not in items:
            errors.setdefault("item_id", []).append(f"Unknown item {event.item_id!r}.")
        if event.customer_id and event.customer_id not in customers:
            errors.setdefault("customer_id", []).append(
                f"Unknown customer {event.customer_id!r}; create it first (POST /customers/)."
            )
        if errors:
            outcomes[index] = EventOutcome(status="rejected", errors=errors)
            continue
        key = event.idempotency_key or None
        if key is not None:
            if key in first_index_of_key:
                repeated_in_batch.append((index, key))
                continue
            first_index_of_key[key] = index
        rows.append(
            (
                index,
                Interaction(
                    # related objects are set (not just ids) so callers can render the
                    # external ids without a query per event
                    customer=customers[event.customer_id] if event.customer_id else None,
                    session_id=event.session_id or "",
                    item=items[event.item_id],
                    event=event.event,
                    value=float(event.value),
                    occurred_at=event.occurred_at or now,
                    idempotency_key=key,
                    context=event.context or {},
                    created_at=now,
                ),
            )
        )

    with transaction.atomic():
        keyless = [(i, obj) for i, obj in rows if obj.idempotency_key is None]
        keyed = [(i, obj) for i, obj in rows if obj.idempotency_key is not None]
        Interaction.objects.bulk_create([obj for _, obj in keyless], batch_size=2000)
        for index, obj in keyless:
            outcomes[index] = EventOutcome(status="created", interaction=obj)

        inserted = _insert_keyed(
            [obj for _, obj in keyed]
        )  # key -> id, only for rows this call inserted
        for index, obj in keyed:
            if obj.idempotency_key in inserted:
                obj.pk = inserted[obj.idempotency_key]
                outcomes[index] = EventOutcome(status="created", interaction=obj)
        missing = [obj.idempotency_key for _, obj in keyed if obj.idempotency_key not in inserted]
        missing += [key for _, key in repeated_in_batch]
        firsts = {
            obj.idempotency_key: obj
            for obj in Interaction.objects.filter(idempotency_key__in=set(missing)).select_related(
                "item", "customer"
            )
        }
        for index, obj in keyed:
            if obj.idempotency_key not in inserted:
                outcomes[index] = EventOutcome(
                    status="duplicate", interaction=firsts[obj.idempotency_key]
                )
        for index, key in repeated_in_batch:
            first = firsts.get(key) or outcomes[first_index_of_key[key]].interaction  # type: ignore[union-attr]
            outcomes[index] = EventOutcome(status="duplicate", interaction=first)

        created_items = sorted(
            {
                o.interaction.item_id
                for o in outcomes
                if o and o.status == "created" and o.interaction
            }
        )
        if created_items:
            _announce(signals.interactions_recorded, item_ids=created_items)
    return [o for o in outcomes if o is not None]


def _customers_by_external_id(external_ids: set[str]) -> dict[str, Customer]:
    return {
        c.external_id: c
        for c in Customer.objects.filter(external_id__in=external_ids).only("id", "external_id")
    }


def _insert_keyed(objs: list[Interaction]) -> dict[str, int]:
    """INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING: the database decides which
    request stored a key first, so concurrent retries of one batch never store an event twice.

    Rows travel as one array per column (unnest): nine parameters instead of nine per row,
    which keeps the driver's query conversion off the hot path.
    """
    if not objs:
        return {}
    table = connection.ops.quote_name(Interaction._meta.db_table)
    sql = (
        f"INSERT INTO {table} (customer_id, session_id, item_id, event, value, occurred_at, "
        "idempotency_key, context, created_at) "
        "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[], "
        "%s::float8[], %s::timestamptz[], %s::text[], %s::jsonb[], %s::timestamptz[]) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key"
    )
    params = [
        [o.customer_id for o in objs],
        [o.session_id for o in objs],
        [o.item_id for o in objs],
        [o.event for o in objs],
        [o.value for o in objs],
        [o.occurred_at for o in objs],
        [o.idempotency_key for o in objs],
        [json.dumps(o.context) for o in objs],
        [o.created_at for o in objs],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {key: pk for pk, key in cursor.fetchall()}


# --------------------------------------------------------------------------- statistics


def item_stats_refresh(*, item_ids: Iterable[int] | None = None, chunk_size: int = 5000) -> int:
    """Recompute event counts and the popularity score of items from their interactions.

    Idempotent: the result depends only on the stored interactions (so a retried or duplicated
    task is harmless). One INSERT ... SELECT ... ON CONFLICT per chunk: the aggregation runs in
    the database. Returns the number of items refreshed.
    """
    weights = recs_settings.EVENT_WEIGHTS
    if item_ids is None:
        ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
    else:
        ids = sorted({int(i) for i in item_ids})
    stats = connection.ops.quote_name(ItemStats._meta.db_table)
    items = connection.ops.quote_name(Item._meta.db_table)
    events = connection.ops.quote_name(Interaction._meta.db_table)
    sql = f"""
        INSERT INTO {stats} (item_id, views, clicks, carts, purchases, ratings, likes,
                             distinct_shoppers, score, last_event_at, refreshed_at)
        SELECT i.id,
               count(x.id) FILTER (WHERE x.event = 'view'),
               count(x.id) FILTER (WHERE x.event = 'click'),
               count(x.id) FILTER (WHERE x.event = 'cart'),
               count(x.id) FILTER (WHERE x.event = 'purchase'),
               count(x.id) FILTER (WHERE x.event = 'rating'),
               count(x.id) FILTER (WHERE x.event = 'like'),
               count(DISTINCT x.customer_id),
               coalesce(sum(CASE x.event
                   WHEN 'view' THEN %(view)s WHEN 'click' THEN %(click)s
                   WHEN 'cart' THEN %(cart)s WHEN 'purchase' THEN %(purchase)s
                   WHEN 'like' THEN %(like)s
                   -- only good ratings say "people want this"
                   WHEN 'rating' THEN CASE WHEN x.value >= 4 THEN %(rating)s ELSE 0 END
                   ELSE 0 END), 0),
               max(x.occurred_at),
               now()
        FROM {items} i LEFT JOIN {events} x ON x.item_id = i.id
        WHERE i.id = ANY(%(ids)s)
        GROUP BY i.id
        ON CONFLICT (item_id) DO UPDATE SET
            views = EXCLUDED.views, clicks = EXCLUDED.clicks, carts = EXCLUDED.carts,
            purchases = EXCLUDED.purchases, ratings = EXCLUDED.ratings, likes = EXCLUDED.likes,
            distinct_shoppers = EXCLUDED.distinct_shoppers, score = EXCLUDED.score,
            last_event_at = EXCLUDED.last_event_at, refreshed_at = EXCLUDED.refreshed_at
    """
    written = 0
    with connection.cursor() as cursor:
        for start in range(0, len(ids), chunk_size):
            params = {name: float(weights[name]) for name in Event.values}
            params["ids"] = ids[start : start + chunk_size]
            cursor.execute(sql, params)
            written += cursor.rowcount
    return written


def customers_ensure(*, external_ids: Iterable[str]) -> dict[str, Customer]:
    """Create the customers that do not exist yet; return all of them by external id."""
    wanted = set(external_ids)
    Customer.objects.bulk_create(
        [Customer(external_id=c) for c in sorted(wanted)], ignore_conflicts=True, batch_size=2000
    )
    return _customers_by_external_id(wanted)


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    content_changed_ids: list[int] = field(default_factory=list)


def items_upsert(
    *, rows: Sequence[dict[str, Any]], announce: bool = True
) -> tuple[UpsertCounts, dict[str, Item]]:
    """Create or update items by ``external_id`` in bulk (imports, syncs). Rows are validated.

    Items whose content changed are announced once, after commit.
    """
    counts = UpsertCounts()
    by_id = {row["external_id"]: row for row in rows}
    existing = {i.external_id: i for i in Item.objects.filter(external_id__in=by_id)}
    to_create: list[Item] = []
    to_update: list[Item] = []
    content_changed: list[Item] = []
    for external_id, row in by_id.items():
        fields = {name: row[name] for name in ITEM_FIELDS if name in row}
        item = existing.get(external_id)
        if item is None:
            to_create.append(Item(external_id=external_id, **fields))
            continue
        changed = [name for name, value in fields.items() if getattr(item, name) != value]
        if not changed:
            counts.unchanged += 1
            continue
        for name in changed:
            setattr(item, name, fields[name])
        item.updated_at = timezone.now()
        to_update.append(item)
        if any(name in CONTENT_FIELDS for name in changed):
            content_changed.append(item)
    with transaction.atomic():
        Item.objects.bulk_create(to_create, batch_size=1000)
        if to_update:
            Item.objects.bulk_update(to_update, [*ITEM_FIELDS, "updated_at"], batch_size=1000)
        ids = [i.pk for i in (*to_create, *content_changed)]
        if ids:
            _content_changed(ids, announce=announce)
    counts.created, counts.updated = len(to_create), len(to_update)
    counts.content_changed_ids = [i.pk for i in (*to_create, *content_changed)]
    items = {**existing, **{i.external_id: i for i in to_create}}
    return counts, items


def merch_rule_save(*, rule: MerchRule, user: Any = None) -> MerchRule:
    """Validate and save a merchandising rule (new or changed); a new rule records who made it.
    Raises ValidationError naming the field. Saving clears this process's rule cache
    (``catalog.merchandising``); other processes see the change within RULES_CACHE_SECONDS."""
    if rule.pk is None and rule.created_by_id is None and getattr(user, "is_authenticated", False):
        rule.created_by = user
    rule.full_clean()
    rule.save()
    return rule
