"""Customers: create, and the Customer that stands for a shop user."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from shop_recs.catalog import signals
from shop_recs.catalog.models import Customer, Interaction
from shop_recs.catalog.services.common import AlreadyExists, _unique, announce_after_commit
from shop_recs.catalog.validation import EXTERNAL_ID, check_json_value
from shop_recs.conf import recs_settings

#: Erasures are logged here (WARNING, so the default logging configuration keeps them).
erasure_log = logging.getLogger("shop_recs.erasure")


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
    spec = recs_settings.CUSTOMER_ID  # a "callable:" path is imported by the settings object
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


def customers_ensure(*, external_ids: Iterable[str]) -> dict[str, Customer]:
    """Create the customers that do not exist yet; return all of them by external id."""
    wanted = set(external_ids)
    Customer.objects.bulk_create(
        [Customer(external_id=c) for c in sorted(wanted)], ignore_conflicts=True, batch_size=2000
    )
    return _customers_by_external_id(wanted)


def _customers_by_external_id(external_ids: set[str]) -> dict[str, Customer]:
    return {
        c.external_id: c
        for c in Customer.objects.filter(external_id__in=external_ids).only("id", "external_id")
    }


@dataclass(frozen=True)
class PurgeReport:
    customer: str
    interactions: int
    sessions: int
    items: int

    def summary(self) -> str:
        return (
            f"customer {self.customer!r}: {self.interactions} interactions deleted "
            f"(including the anonymous events of {self.sessions} browser sessions), "
            f"{self.items} items' statistics refreshed"
        )


def customer_purge(*, customer: Customer, by: str = "", dry_run: bool = False) -> PurgeReport:
    """Erase a customer's personal data (a data subject's request): every interaction of the
    customer, the anonymous events of the browser sessions those carry (the same shopper
    before logging in), and the customer itself (its attributes and the link to a shop user).
    The only way the plugin deletes history; it is logged (``shop_recs.erasure``) with ``by``.

    The items' statistics are refreshed after commit; the next trained model no longer knows
    the customer (earlier model versions keep what they learnt until deleted).
    With ``dry_run`` nothing is deleted and the report says what would be.
    """
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        sessions = set(
            Interaction.objects.filter(customer=customer)
            .exclude(session_id="")
            .values_list("session_id", flat=True)
        )
        events = Interaction.objects.filter(
            Q(customer=customer) | Q(customer__isnull=True, session_id__in=sessions)
        )
        item_ids = sorted(set(events.values_list("item_id", flat=True)))
        report = PurgeReport(
            customer=customer.external_id,
            interactions=events.count(),
            sessions=len(sessions),
            items=len(item_ids),
        )
        if dry_run:
            return report
        events.delete()
        customer.delete()
        if item_ids:
            announce_after_commit(signals.interactions_deleted, item_ids=item_ids)
    erasure_log.warning("erased personal data of %s (by %s)", report.summary(), by or "unknown")
    return report
