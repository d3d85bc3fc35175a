"""Customers: create, and the Customer that stands for a shop user."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from shop_recs.catalog.models import Customer
from shop_recs.catalog.services.common import AlreadyExists, _unique
from shop_recs.catalog.validation import EXTERNAL_ID, check_json_value
from shop_recs.conf import recs_settings


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
