"""Events: validate and store batches, idempotent by key."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from shop_recs.catalog import signals
from shop_recs.catalog.models import Customer, Event, Interaction, Item
from shop_recs.catalog.services import experiments
from shop_recs.catalog.services.common import announce_after_commit
from shop_recs.catalog.services.customers import _customers_by_external_id
from shop_recs.catalog.validation import EARLIEST_TIMESTAMP, check_json_value
from shop_recs.conf import recs_settings


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
            elif event.occurred_at < EARLIEST_TIMESTAMP:
                errors["occurred_at"] = ["Lies before 1970-01-01T00:00:00Z."]
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
            announce_after_commit(signals.interactions_recorded, item_ids=created_items)
            experiments.interactions_spool(
                o.interaction for o in outcomes if o and o.status == "created" and o.interaction
            )
    return [o for o in outcomes if o is not None]


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
