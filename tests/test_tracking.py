"""Storefront tracking: product views (decorator and mixin), purchases (helper and signal),
and the browser endpoint POST /api/v1/track/ (CSRF, validation, identity from the session)."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from shop_recs.catalog import services
from shop_recs.catalog.models import Customer, Interaction, Item
from shop_recs.storefront import tracking

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def storefront(settings):
    settings.ROOT_URLCONF = "tests.storefront_urls"


@pytest.fixture
def items(db):
    return {
        ext: Item.objects.create(external_id=ext, title=f"Title {ext}", price="9.50")
        for ext in ("p1", "p2", "p3")
    }


@pytest.fixture
def shopper():
    """A logged-in shop user and their Customer."""
    user = get_user_model().objects.create_user("alice", password="pw-123456")
    customer = Customer.objects.create(external_id="cust-alice", user=user)
    return user, customer


@pytest.fixture
def frozen(monkeypatch):
    """A controllable clock for the view window."""
    now = {"t": 1_000_000.0}
    monkeypatch.setattr(tracking, "_now", lambda: now["t"])
    return now


# --------------------------------------------------------------------------- views


def test_anonymous_view_is_recorded_with_a_new_session(client, items, frozen) -> None:
    response = client.get("/shop/p1/")
    assert response.status_code == 200
    assert "sessionid" in response.cookies, "the session is created for the shopper"
    view = Interaction.objects.get()
    assert (view.item.external_id, view.event, view.customer_id) == ("p1", "view", None)
    sid = client.session[tracking.SESSION_ID_KEY]
    assert view.session_id == sid and sid != client.session.session_key
    assert client.session[tracking.RECENT_KEY] == ["p1"]


def test_reload_within_the_window_counts_once(client, items, frozen) -> None:
    client.get("/shop/p1/")
    client.get("/shop/p1/")
    client.get("/shop/p2/")
    assert Interaction.objects.filter(item__external_id="p1").count() == 1
    frozen["t"] += 31  # the next window
    client.get("/shop/p1/")
    assert Interaction.objects.filter(item__external_id="p1").count() == 2
    # the recent list keeps the last view last, without repeats
    assert client.session[tracking.RECENT_KEY] == ["p2", "p1"]


def test_dedup_can_be_switched_off(client, items, frozen, settings) -> None:
    settings.SHOP_RECS = {**settings.SHOP_RECS, "VIEW_DEDUP_SECONDS": 0}
    client.get("/shop/p1/")
    client.get("/shop/p1/")
    assert Interaction.objects.count() == 2


def test_logged_in_view_carries_customer_and_session(client, items, shopper, frozen) -> None:
    user, customer = shopper
    client.force_login(user)
    client.get("/detail/p2/")  # the DetailView mixin
    view = Interaction.objects.get()
    assert view.customer == customer and view.item.external_id == "p2"
    assert view.session_id == client.session[tracking.SESSION_ID_KEY]


def test_a_session_that_logs_in_keeps_its_history(client, items, shopper, frozen) -> None:
    _, customer = shopper
    client.get("/shop/p1/")
    sid = client.session[tracking.SESSION_ID_KEY]
    key_before = client.session.session_key
    client.login(username="alice", password="pw-123456")
    assert client.session.session_key != key_before  # Django rotates the key at login
    client.get("/shop/p2/")
    assert set(Interaction.objects.values_list("session_id", flat=True)) == {sid}
    from shop_recs.ranking.recommend import shopper_history

    history, _ = shopper_history(customer=customer, session_id=sid)
    assert [h.external_id for h in history] == ["p1", "p2"]


def test_not_found_and_error_pages_record_nothing(client, items, frozen) -> None:
    assert client.get("/shop/nope/").status_code == 404
    assert client.get("/detail/nope/").status_code == 404
    assert client.get("/broken/p1/").status_code == 500
    assert not Interaction.objects.exists()


def test_head_and_prefetch_record_nothing(client, items, frozen) -> None:
    client.head("/shop/p1/")
    client.get("/shop/p1/", HTTP_SEC_PURPOSE="prefetch")
    assert not Interaction.objects.exists()


def test_tracking_failure_does_not_break_the_page(client, items, monkeypatch, caplog) -> None:
    def boom(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services, "interactions_record", boom)
    with caplog.at_level(logging.ERROR, logger="shop_recs.storefront.tracking"):
        response = client.get("/shop/p1/")
    assert response.status_code == 200 and response.content == b"product p1"
    assert "recording a product view failed" in caplog.text


def test_unknown_product_is_skipped_quietly(rf, items) -> None:
    from django.contrib.sessions.backends.db import SessionStore

    request = rf.get("/")
    request.session = SessionStore()
    request.user = None
    outcome = tracking.track_view(request, "no-such-sku")
    assert outcome is not None and outcome.status == "rejected"
    assert tracking.track_view(request, object()) is None  # not a product at all
    assert not Interaction.objects.exists()
    assert tracking.RECENT_KEY not in request.session


def test_external_id_of() -> None:
    item = Item(external_id="x-1", title="X")
    assert tracking.external_id_of(item) == "x-1"
    assert tracking.external_id_of("x-2") == "x-2"
    assert tracking.external_id_of("") is None
    assert tracking.external_id_of(None) is None
    assert tracking.external_id_of(42) is None


# --------------------------------------------------------------------------- purchases


def test_record_purchase_is_idempotent_per_order_and_item(items, shopper) -> None:
    user, customer = shopper
    first = tracking.record_purchase(product=items["p1"], order_id="o-1", user=user, quantity=2)
    again = tracking.record_purchase(product="p1", order_id="o-1", user=user, quantity=2)
    other = tracking.record_purchase(product="p2", order_id="o-1", user=user, value="19.00")
    assert (first.status, again.status, other.status) == ("created", "duplicate", "created")
    assert again.interaction.pk == first.interaction.pk
    stored = Interaction.objects.get(item__external_id="p1")
    assert (stored.event, stored.customer, stored.value) == ("purchase", customer, 2.0)
    assert stored.idempotency_key == "purchase:o-1:p1"
    assert stored.context == {"order_id": "o-1", "quantity": 2}
    assert Interaction.objects.get(item__external_id="p2").context["value"] == "19.00"


def test_record_purchase_needs_a_buyer(items) -> None:
    with pytest.raises(ValueError, match="user= or request="):
        tracking.record_purchase(product="p1", order_id="o-1")


def test_purchase_completed_signal(client, items, shopper, frozen) -> None:
    user, customer = shopper
    tracking.purchase_completed.send(
        sender=None, order_id="o-7", products=["p1", {"product": items["p2"], "quantity": 3}],
        user=user,
    )  # fmt: skip
    # sent again by a retried checkout hook: nothing new
    tracking.purchase_completed.send(sender=None, order_id="o-7", products=["p1", "p2"], user=user)
    rows = Interaction.objects.filter(event="purchase").order_by("item__external_id")
    assert [(r.item.external_id, r.value, r.customer_id) for r in rows] == [
        ("p1", 1.0, customer.pk),
        ("p2", 3.0, customer.pk),
    ]


def test_guest_purchase_belongs_to_the_session(rf, items) -> None:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    request = rf.post("/checkout/")
    request.session, request.user = SessionStore(), AnonymousUser()
    tracking.purchase_completed.send(sender=None, order_id="g-1", products=["p3"], request=request)
    row = Interaction.objects.get()
    assert row.customer_id is None and row.session_id == request.session[tracking.SESSION_ID_KEY]


def test_purchase_signal_never_raises(items, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="shop_recs.storefront.tracking"):
        tracking.purchase_completed.send(sender=None, order_id="o-9", products=["p1"])
    assert "order o-9" in caplog.text and not Interaction.objects.exists()


def test_track_event_for_cart(rf, items, shopper) -> None:
    from django.contrib.sessions.backends.db import SessionStore

    user, customer = shopper
    request = rf.post("/cart/")
    request.session, request.user = SessionStore(), user
    outcome = tracking.track_event(request, items["p3"], "cart", key="cart-1")
    assert outcome.status == "created"
    assert tracking.track_event(request, "p3", "cart", key="cart-1").status == "duplicate"
    row = Interaction.objects.get()
    assert (row.event, row.customer, row.idempotency_key) == ("cart", customer, "cart-1")


# --------------------------------------------------------------------------- POST /track/


@pytest.fixture
def browser() -> Client:
    """A browser: CSRF is checked like in production, and the page set the CSRF cookie."""
    client = Client(enforce_csrf_checks=True)
    return client


def _csrf(client: Client, items) -> str:
    response = client.get("/page/p1/")  # {% shop_recs_scripts %} sets the cookie
    assert response.status_code == 200
    return client.cookies["csrftoken"].value


def _track(client: Client, body, token: str | None = None):
    headers = {"HTTP_X_CSRFTOKEN": token} if token else {}
    return client.post("/api/v1/track/", body, content_type="application/json", **headers)


def test_track_anonymous_with_csrf(browser, items) -> None:
    token = _csrf(browser, items)
    response = _track(browser, {"event": "click", "item_id": "p2"}, token)
    assert response.status_code == 200, response.content
    assert response.json() == {"recorded": 1, "duplicates": 0}
    row = Interaction.objects.get()
    assert (row.event, row.item.external_id, row.customer_id) == ("click", "p2", None)
    assert row.session_id == browser.session[tracking.SESSION_ID_KEY]
    assert row.context == {"via": "track.js"}


def test_track_without_csrf_is_refused(browser, items, shopper) -> None:
    _csrf(browser, items)
    response = _track(browser, {"event": "click", "item_id": "p2"})
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    browser.force_login(shopper[0])
    assert _track(browser, {"event": "click", "item_id": "p2"}).status_code == 403
    assert not Interaction.objects.filter(event="click").exists()


def test_track_ignores_tokens(items, shopper) -> None:
    """A token identifies nobody here: the event is the (new) browser session's, not the token
    user's (the test client skips CSRF checks, so the request gets through)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user, _ = shopper
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    response = client.post("/api/v1/track/", {"event": "click", "item_id": "p1"}, format="json")
    assert response.status_code == 200
    row = Interaction.objects.get()
    assert row.customer_id is None and row.session_id
    with_csrf = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {user.auth_token}")
    assert _track(with_csrf, {"event": "click", "item_id": "p1"}).status_code == 403


def test_track_logged_in_records_the_customer(browser, items, shopper) -> None:
    user, customer = shopper
    browser.force_login(user)
    token = _csrf(browser, items)
    response = _track(browser, {"event": "cart", "item_id": "p1", "key": "k1"}, token)
    assert response.status_code == 200
    again = _track(browser, {"event": "cart", "item_id": "p1", "key": "k1"}, token)
    assert again.json() == {"recorded": 0, "duplicates": 1}
    row = Interaction.objects.get(event="cart")
    assert row.customer == customer
    assert row.idempotency_key != "k1", "client keys are scoped to the shopper"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"event": "teleport", "item_id": "p1"}, "event", "not a valid choice"),
        ({"event": "purchase", "item_id": "p1"}, "event", "server-side"),
        ({"event": "click"}, "item_id", "required"),
        ({"event": "click", "item_id": "p1", "customer_id": "cust-x"}, "customer_id", "session"),
        ({"event": "click", "item_id": "p1", "session_id": "s-x"}, "session_id", "session"),
        ({"event": "click", "item_id": "p1", "colour": "red"}, "colour", "Unknown field"),
        ({"events": []}, "events", ""),
        ({"events": "nope"}, "events", ""),
        ({"events": [{"event": "click", "item_id": "p1"}], "customer_id": "c"}, "customer_id", ""),
    ],
)
def test_track_bad_input_names_the_field(browser, items, body, field, message) -> None:
    token = _csrf(browser, items)
    response = _track(browser, body, token)
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert message in str(errors[field])
    assert not Interaction.objects.exists()


def test_track_batch_with_purchase_is_refused(browser, items) -> None:
    token = _csrf(browser, items)
    body = {"events": [{"event": "click", "item_id": "p1"}, {"event": "purchase", "item_id": "p2"}]}
    response = _track(browser, body, token)
    assert response.status_code == 400
    assert "server-side" in str(response.json()["events"])
    assert not Interaction.objects.exists()


def test_track_batch_with_unknown_items(browser, items, frozen) -> None:
    token = _csrf(browser, items)
    body = {
        "events": [
            {"event": "view", "item_id": "p1"},
            {"event": "click", "item_id": "ghost"},
            {"event": "cart", "item_id": "p2"},
            {"event": "like", "item_id": "ghost-2"},
        ]
    }
    response = _track(browser, body, token)
    assert response.status_code == 400
    data = response.json()
    assert data["unknown_item_ids"] == ["ghost", "ghost-2"]
    assert "ghost" in data["item_id"][0]
    assert (data["recorded"], data["duplicates"]) == (2, 0)
    assert sorted(Interaction.objects.values_list("event", flat=True)) == ["cart", "view"]
    # a view sent by the browser is also remembered as recent, and deduplicated like the page's
    assert browser.session[tracking.RECENT_KEY] == ["p1"]
    again = _track(browser, {"event": "view", "item_id": "p1"}, token)
    assert again.json() == {"recorded": 0, "duplicates": 1}


def test_track_batch_ok_and_limit(browser, items, settings) -> None:
    token = _csrf(browser, items)
    body = {"events": [{"event": "click", "item_id": ext} for ext in ("p1", "p2", "p3")]}
    response = _track(browser, body, token)
    assert response.status_code == 200 and response.json()["recorded"] == 3
    settings.SHOP_RECS = {**settings.SHOP_RECS, "TRACK_MAX_BATCH": 2}
    response = _track(browser, body, token)
    assert response.status_code == 400 and "At most 2" in str(response.json()["events"])


def test_track_js_is_small_and_dependency_free() -> None:
    from pathlib import Path

    static = Path(tracking.__file__).parent / "static" / "shop_recs"
    source = (static / "track.js").read_text()
    assert len(source.encode()) < 3 * 1024
    assert "keepalive: true" in source and 'credentials: "same-origin"' in source
    for name in ("track.js", "widget.js"):
        text = (static / name).read_text()
        assert "import " not in text and "require(" not in text
        assert "innerHTML" not in text
