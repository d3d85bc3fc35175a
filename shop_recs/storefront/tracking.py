"""Storefront event tracking: product views, clicks, cart adds and purchases of shoppers.

Everything is stored by the ingestion service of ``POST /api/v1/events/``
(:func:`shop_recs.catalog.services.interactions_record`), so validation and idempotency are the
same as for events a shop sends over REST. The pieces:

- :func:`track_view` (and the :func:`track_product_view` decorator, the
  :class:`TrackProductViewMixin` for ``DetailView``): a product page view of the current shopper;
  a reload within ``SHOP_RECS["VIEW_DEDUP_SECONDS"]`` counts once.
- :func:`track_event`: any other event from server code (cart, like, ...).
- :func:`record_purchase` and the :data:`purchase_completed` signal: purchases, idempotent per
  order and item (a retried checkout hook never counts twice).
- :func:`track_client_events`: what ``POST /api/v1/track/`` (``static/shop_recs/track.js``)
  records; the shopper is the request's own session or login, never a value in the body.

Tracking never breaks a page: the helpers a page calls log their failures and return None.

Who the shopper is (:func:`shopper_for`): a logged-in user's Customer (through the item source's
``customer_for_user``), and for everyone a random shopper id kept in the Django session. The id
is not the session key: interactions are visible in the admin and the API, and a session key
there would let their readers take over sessions; and unlike the key, the id survives the key
rotation at login, so a session that logs in keeps its history. Logging out (which flushes the
session) starts a new anonymous shopper.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import Signal, receiver
from django.http import HttpRequest, HttpResponse

from shop_recs.catalog import services
from shop_recs.catalog.models import Customer, Event, Item
from shop_recs.conf import recs_settings
from shop_recs.ranking import experiments
from shop_recs.search.types import ItemCard
from shop_recs.storefront import source

logger = logging.getLogger(__name__)

# Session keys: the shopper id of this browser, and the external ids it viewed last.
SESSION_ID_KEY = "shop_recs_sid"
RECENT_KEY = "shop_recs_recent"
# Events the browser may send (POST /api/v1/track/). Purchases are recorded server-side only:
# a browser could claim any purchase, and purchases weigh most in training.
CLIENT_EVENTS = (Event.VIEW, Event.CLICK, Event.CART, Event.LIKE)

# kwargs: order_id (str), products (list of products, or of {"product", "quantity", "value"}),
# request (HttpRequest, optional), user (optional). Send it when an order is paid; every product
# is recorded as a purchase of the shopper (see record_purchase).
purchase_completed = Signal()


# --------------------------------------------------------------------------- identity


def customer_for_user(user: Any) -> Customer | None:
    """The Customer of a logged-in shop user (created and linked on first use), or None for
    anonymous users."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return services.customer_for_user(user)


@dataclass(frozen=True)
class Shopper:
    """Who an event belongs to: a known customer, a browser session, or both."""

    customer: Customer | None
    session_id: str

    @property
    def key(self) -> str:
        """A stable identity for idempotency keys (the customer across devices)."""
        if self.customer is not None:
            return f"c:{self.customer.external_id}"
        return f"s:{self.session_id}"

    @property
    def known(self) -> bool:
        return self.customer is not None or bool(self.session_id)


def shopper_for(request: Any, *, create: bool = True) -> Shopper:
    """The shopper of a request (module docstring). ``create=False`` reads only: a browser
    without a shopper id gets none (widgets must not start sessions)."""
    customer = customer_for_user(getattr(request, "user", None))
    session = getattr(request, "session", None)
    session_id = ""
    if session is not None:
        session_id = str(session.get(SESSION_ID_KEY) or "")
        if not session_id and create:
            session_id = secrets.token_urlsafe(18)
            # Marks the session modified: the session middleware creates it (and its cookie).
            session[SESSION_ID_KEY] = session_id
    return Shopper(customer=customer, session_id=session_id)


def experiment_shopper(request: Any, *, surface: str) -> dict[str, Any]:
    """The shopper's ids for an experiment's assignment on ``surface``
    (``ranking.experiments.serving_for(**...)``); empty, without looking anyone up, when no
    running experiment covers the surface or there is no request."""
    if request is None or not experiments.covers(surface):
        return {}
    shopper = shopper_for(request, create=False)
    return {
        "customer_external_id": shopper.customer.external_id if shopper.customer else None,
        "session_id": shopper.session_id,
    }


def session_shopper_id(request: Any) -> str:
    """This browser's shopper id, read from its Django session ("" when it has none); never
    creates one."""
    session = getattr(request, "session", None)
    return str(session.get(SESSION_ID_KEY) or "") if session is not None else ""


_SESSION_SIGNER_SALT = "shop_recs.session_id"


def signed_session_id(session_id: str) -> str:
    """``session_id`` with a signature (Django's ``SECRET_KEY``): what a page may hand to
    code that asks ``POST /api/v1/recommendations/`` for that session's recommendations
    from elsewhere than the browser itself. A bare session id reads no history."""
    return signing.Signer(salt=_SESSION_SIGNER_SALT).sign(session_id)


def unsign_session_id(value: str) -> str | None:
    """The session id a :func:`signed_session_id` value carries, or None when it is not one
    (unsigned, forged or signed with another key)."""
    try:
        return signing.Signer(salt=_SESSION_SIGNER_SALT).unsign(value)
    except signing.BadSignature:
        return None


def recent_item_ids(request: Any) -> list[str]:
    """The external ids this browser session viewed last (oldest first)."""
    session = getattr(request, "session", None)
    if session is None:
        return []
    recent = session.get(RECENT_KEY) or []
    return [str(e) for e in recent if e] if isinstance(recent, list) else []


def remember_recent(request: Any, external_id: str) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    limit = max(1, int(recs_settings.HISTORY_LENGTH))
    recent = [e for e in recent_item_ids(request) if e != external_id]
    recent.append(external_id)
    session[RECENT_KEY] = recent[-limit:]


def external_id_of(product: Any) -> str | None:
    """The plugin's item id of a product: a plugin Item, an external id itself, or a shop
    product read through the item source (``SHOP_RECS["ITEM_SOURCE"]``); a variant's is its
    parent's (``PARENT``), so views and purchases of a variant count for the parent's item.
    None when unknown. Raises ImproperlyConfigured when ITEM_SOURCE is invalid."""
    if product is None:
        return None
    if isinstance(product, str):
        return product or None
    if isinstance(product, Item):
        return product.external_id
    if isinstance(product, ItemCard):
        return product.external_id
    adapter = source.item_source()
    if adapter is None or not isinstance(product, adapter.model):
        return None
    try:
        value = adapter.external_id_of(adapter.item_product(product))
    except (ValidationError, ValueError) as exc:
        logger.debug("shop_recs: product %r has no valid external id: %s", product, exc)
        return None
    return str(value) if value not in (None, "") else None


# --------------------------------------------------------------------------- recording


def _now() -> float:
    return time.time()


def _hashed_key(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
    return f"{prefix}:{digest}"


def _view_key(shopper: Shopper, external_id: str) -> str | None:
    """Views of one item by one shopper in one window share a key: the database keeps one."""
    window = int(recs_settings.VIEW_DEDUP_SECONDS or 0)
    if window <= 0:
        return None
    return _hashed_key("view", shopper.key, external_id, str(int(_now() // window)))


def _event_in(
    shopper: Shopper,
    external_id: str,
    event: str,
    *,
    value: float = 1.0,
    key: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> services.EventIn:
    return services.EventIn(
        item_id=external_id,
        event=str(event),
        customer_id=shopper.customer.external_id if shopper.customer is not None else None,
        session_id=shopper.session_id,
        value=float(value),
        idempotency_key=key,
        context=dict(context or {}),
    )


def _record(events: Sequence[services.EventIn]) -> list[services.EventOutcome]:
    # A savepoint: a failure here must not break the page's own transaction (ATOMIC_REQUESTS,
    # a checkout transaction).
    with transaction.atomic():
        return services.interactions_record(events=events)


def track_view(
    request: HttpRequest, product: Any, *, context: Mapping[str, Any] | None = None
) -> services.EventOutcome | None:
    """Record that the request's shopper viewed ``product`` (a shop product, a plugin Item or an
    external id) and remember it in the session's recent views. Reloads within
    VIEW_DEDUP_SECONDS count once. Never raises: failures are logged, None is returned."""
    try:
        external_id = external_id_of(product)
        if not external_id:
            logger.debug("shop_recs: not tracking a view of %r: not a catalog product", product)
            return None
        shopper = shopper_for(request)
        if not shopper.known:
            logger.debug("shop_recs: not tracking a view: no session and no customer")
            return None
        (outcome,) = _record(
            [
                _event_in(
                    shopper,
                    external_id,
                    Event.VIEW,
                    key=_view_key(shopper, external_id),
                    context=context,
                )
            ]
        )
        if outcome.status == "rejected":
            logger.debug("shop_recs: view of %r not recorded: %s", external_id, outcome.errors)
            return outcome
        remember_recent(request, external_id)
        return outcome
    except Exception:
        logger.exception("shop_recs: recording a product view failed")
        return None


def list_context(list_id: str | None, position: int | None = None) -> dict[str, Any]:
    """The event context that credits a click or cart add to a served list (its ``list_id``
    from the API or the widget, and the item's 1-based ``position`` in it)."""
    out: dict[str, Any] = {}
    if list_id:
        out["list_id"] = str(list_id)[:64]
        if position is not None:
            out["position"] = int(position)
    return out


def track_event(
    request: HttpRequest,
    product: Any,
    event: str,
    value: float = 1.0,
    key: str | None = None,
    *,
    context: Mapping[str, Any] | None = None,
    list_id: str | None = None,
    position: int | None = None,
) -> services.EventOutcome | None:
    """Record any event of the request's shopper on ``product`` from server code (e.g. ``cart``
    when the shop's add-to-cart view runs). ``key``: an idempotency key, used as given.
    ``list_id`` and ``position``: the served list (and place in it) the shopper clicked or
    added the item from, so experiments credit that list's arm. Views go through
    :func:`track_view`. Never raises: failures are logged, None is returned."""
    if list_id:
        context = {**(context or {}), **list_context(list_id, position)}
    if event == Event.VIEW and key is None:
        return track_view(request, product, context=context)
    try:
        external_id = external_id_of(product)
        if not external_id:
            logger.debug("shop_recs: not tracking %s of %r: not a catalog product", event, product)
            return None
        shopper = shopper_for(request)
        (outcome,) = _record(
            [_event_in(shopper, external_id, event, value=value, key=key, context=context)]
        )
        if outcome.status == "rejected":
            logger.debug("shop_recs: %s of %r not recorded: %s", event, external_id, outcome.errors)
        return outcome
    except Exception:
        logger.exception("shop_recs: recording a %s event failed", event)
        return None


def _purchase_key(order_id: str, external_id: str) -> str:
    key = f"purchase:{order_id}:{external_id}"
    return key if len(key) <= 255 else _hashed_key("purchase", order_id, external_id)


def _purchase_lines(products: Iterable[Any]) -> list[tuple[Any, int, Any]]:
    lines = []
    for entry in products:
        if isinstance(entry, Mapping):
            lines.append((entry["product"], int(entry.get("quantity", 1)), entry.get("value")))
        else:
            lines.append((entry, 1, None))
    return lines


def record_purchases(
    *,
    order_id: str,
    products: Iterable[Any],
    user: Any = None,
    request: HttpRequest | None = None,
) -> list[services.EventOutcome]:
    """Record a paid order: one ``purchase`` event per product (a product, or a mapping with
    ``product``, ``quantity`` and ``value``), idempotent by ``purchase:{order_id}:{item}``.

    The shopper is ``user``'s customer, else the request's (its session too, so a guest
    checkout counts for the browsing session). Raises ValueError without either; unknown
    products are skipped (logged)."""
    if user is None and request is None:
        raise ValueError("record_purchase needs the buyer: pass user= or request=.")
    order_id = str(order_id)
    if not order_id:
        raise ValueError("record_purchase needs an order_id.")
    shopper = shopper_for(request) if request is not None else Shopper(None, "")
    if user is not None:
        shopper = Shopper(customer_for_user(user), shopper.session_id)
    events = []
    for product, quantity, value in _purchase_lines(products):
        external_id = external_id_of(product)
        if not external_id:
            logger.warning(
                "shop_recs: purchase in order %s of %r not recorded: not a catalog product",
                order_id,
                product,
            )
            continue
        context: dict[str, Any] = {"order_id": order_id, "quantity": quantity}
        if value is not None:
            context["value"] = str(value)
        events.append(
            _event_in(
                shopper,
                external_id,
                Event.PURCHASE,
                value=float(quantity),
                key=_purchase_key(order_id, external_id),
                context=context,
            )
        )
    if not events:
        return []
    outcomes = _record(events)
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome.status == "rejected":
            logger.warning(
                "shop_recs: purchase of %r in order %s not recorded: %s",
                event.item_id,
                order_id,
                outcome.errors,
            )
    return outcomes


def record_purchase(
    *,
    product: Any,
    order_id: str,
    user: Any = None,
    request: HttpRequest | None = None,
    quantity: int = 1,
    value: Any = None,
) -> services.EventOutcome | None:
    """Record that the shopper bought ``product`` in order ``order_id`` (see
    :func:`record_purchases`). ``quantity`` is the event's value; ``value`` (the line's amount)
    is kept in the event's context. None when the product is not in the catalog."""
    outcomes = record_purchases(
        order_id=order_id,
        products=[{"product": product, "quantity": quantity, "value": value}],
        user=user,
        request=request,
    )
    return outcomes[0] if outcomes else None


@receiver(purchase_completed, dispatch_uid="shop_recs.storefront.tracking.purchase_completed")
def _on_purchase_completed(
    sender: Any,
    *,
    order_id: str = "",
    products: Iterable[Any] = (),
    request: HttpRequest | None = None,
    user: Any = None,
    **kwargs: Any,
) -> None:
    # A checkout must not fail because recommendations could not record it.
    try:
        record_purchases(order_id=order_id, products=products, user=user, request=request)
    except Exception:
        logger.exception("shop_recs: recording the purchases of order %s failed", order_id)


# --------------------------------------------------------------------------- browser events


@dataclass(frozen=True)
class ClientEvent:
    """One event as the browser sends it (POST /api/v1/track/): no identity, no value."""

    event: str
    item_id: str
    key: str | None = None
    list_id: str | None = None  # the served list it came from (experiments credit its arm)
    position: int | None = None  # the item's place in that list, 1-based


@dataclass
class TrackResult:
    recorded: int = 0
    duplicates: int = 0
    unknown_item_ids: list[str] = field(default_factory=list)
    errors: dict[int, dict[str, list[str]]] = field(default_factory=dict)


def track_client_events(request: Any, events: Sequence[ClientEvent]) -> TrackResult:
    """Record browser events of the request's shopper (validated by the API: one of
    CLIENT_EVENTS). A client key is namespaced by the shopper, so one browser cannot take
    another's keys; views use the view window's key, so a view sent by both the page's server
    code and the browser counts once."""
    shopper = shopper_for(request)
    ins = []
    for e in events:
        if e.event == Event.VIEW:
            key = _view_key(shopper, e.item_id)
        else:
            key = _hashed_key("track", shopper.key, e.key) if e.key else None
        context: dict[str, Any] = {"via": "track.js"}
        if e.list_id and e.event != Event.VIEW:
            context.update(list_context(e.list_id, e.position))
        ins.append(_event_in(shopper, e.item_id, e.event, key=key, context=context))
    outcomes = _record(ins)
    result = TrackResult()
    for index, (event, outcome) in enumerate(zip(ins, outcomes, strict=True)):
        if outcome.status == "created":
            result.recorded += 1
        elif outcome.status == "duplicate":
            result.duplicates += 1
        elif "item_id" in outcome.errors:
            if event.item_id not in result.unknown_item_ids:
                result.unknown_item_ids.append(event.item_id)
        else:
            result.errors[index] = outcome.errors
        if outcome.status != "rejected" and event.event == Event.VIEW:
            remember_recent(request, event.item_id)
    return result


# --------------------------------------------------------------------------- views


def _is_prefetch(request: HttpRequest) -> bool:
    # Browsers prefetching a link the shopper may never follow.
    purpose = request.headers.get("Sec-Purpose", "") or request.headers.get("Purpose", "")
    return purpose.startswith("prefetch")


def _should_track(request: HttpRequest, response: HttpResponse) -> bool:
    return (
        request.method == "GET"
        and 200 <= getattr(response, "status_code", 500) < 300
        and not _is_prefetch(request)
    )


def track_product_view(
    get_product: Callable[..., Any],
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a product page view: after a successful (2xx) GET, the product
    ``get_product(request, *args, **kwargs)`` returns (a shop product, an Item or an external
    id) is recorded as viewed. Errors (also of ``get_product``) are logged, never raised::

        @track_product_view(lambda request, slug: Product.objects.get(slug=slug))
        def product_page(request, slug): ...
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = view(request, *args, **kwargs)
            if _should_track(request, response):
                try:
                    product = get_product(request, *args, **kwargs)
                except Exception:
                    logger.exception("shop_recs: finding the viewed product failed")
                else:
                    track_view(request, product)
            return response

        return wrapped

    return decorator


class TrackProductViewMixin:
    """For ``DetailView`` (any view setting ``self.object`` in ``get``): a successful GET
    records a view of ``get_tracked_product()`` (default ``self.object``)."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)  # type: ignore[misc]
        if _should_track(request, response):
            try:
                product = self.get_tracked_product()
            except Exception:
                logger.exception("shop_recs: finding the viewed product failed")
            else:
                if product is not None:
                    track_view(request, product)
        return response

    def get_tracked_product(self) -> Any:
        return getattr(self, "object", None)
