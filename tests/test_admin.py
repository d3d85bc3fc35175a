"""The Django admin pages of the catalog render for staff and refuse everyone else."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from shop_recs.catalog.models import (
    BackgroundJob,
    Customer,
    Interaction,
    Item,
    ItemEncoding,
    ItemImage,
)
from tests.conftest import write_vector

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def item():
    item = Item.objects.create(external_id="sku-1", title="Shirt")
    ItemEncoding.objects.create(item=item, status="failed", error="encoder error: boom")
    customer = Customer.objects.create(external_id="c1")
    Interaction.objects.create(
        customer=customer, item=item, event="view", occurred_at=item.created_at
    )
    return item


def test_admin_pages_render(staff_client, item) -> None:
    for url in (
        "/admin/",
        "/admin/shop_recs_catalog/item/",
        "/admin/shop_recs_catalog/item/?encoding__status__exact=failed",
        f"/admin/shop_recs_catalog/item/{item.pk}/change/",
        "/admin/shop_recs_catalog/customer/",
        "/admin/shop_recs_catalog/interaction/",
        "/admin/shop_recs_catalog/itemstats/",
    ):
        response = staff_client.get(url)
        assert response.status_code == 200, url
    page = staff_client.get(f"/admin/shop_recs_catalog/item/{item.pk}/change/").content.decode()
    assert "encoder error: boom" in page


def test_reencode_action_marks_items_pending(
    staff_client, item, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            "/admin/shop_recs_catalog/item/",
            {"action": "reencode", "_selected_action": [item.pk]},
            follow=True,
        )
    assert response.status_code == 200 and "queued for encoding" in response.content.decode()
    assert ItemEncoding.objects.get(item=item).status == "pending"
    assert callbacks, "the encode job is sent to Celery after commit"
    job = BackgroundJob.objects.get()
    assert (job.kind, job.params, job.status) == ("encode", {"item_ids": [item.pk], "force": True},
                                                  "queued")  # fmt: skip
    assert f"/backgroundjob/{job.pk}/change/" in response.content.decode()


def test_non_staff_are_refused(client) -> None:
    user = get_user_model().objects.create_user("shopper", password="pw-123456")
    client.force_login(user)
    response = client.get("/admin/shop_recs_catalog/item/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --------------------------------------------------------------------------- review pages


@pytest.fixture
def catalogue():
    """Four items with text and content vectors: a1 is nearest to a0, then b0, then b1."""
    items = {}
    for ext, vec in {
        "a0": [1.0, 0.0, 0.0],
        "a1": [0.95, 0.1, 0.0],
        "b0": [0.5, 0.8, 0.0],
        "b1": [0.0, 1.0, 0.1],
    }.items():
        item = Item.objects.create(external_id=ext, title=f"Title {ext}", category="C")
        ItemEncoding.objects.create(item=item, status="done")
        ItemImage.objects.create(item=item, file=f"items/{ext}.jpg", status="ready")
        write_vector(item, "text", vec)
        write_vector(item, "content", vec)
        items[ext] = item
    return items


def test_item_page_previews_similar_items_per_space(staff_client, catalogue) -> None:
    page = staff_client.get(f"/admin/shop_recs_catalog/item/{catalogue['a0'].pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    previews = {p.space: p for p in page.context["recs_previews"]}
    assert list(previews) == ["text", "image", "content", "hybrid"]
    assert [c.external_id for c in previews["text"].cards] == ["a1", "b0", "b1"]
    assert previews["text"].cards[0].image_url == "/media/items/a1.jpg"
    assert set(previews["content"].cards[0].similarity) >= {"text", "content"}
    assert "Not encoded in this space" in previews["image"].message
    assert "No active model" in previews["hybrid"].message
    # the encoding table names each space's encoder, and the thumbnails are in the page
    assert "test-text" in html and "test-content" in html
    assert 'src="/media/items/a1.jpg"' in html
    assert "Re-encode now" in html


def test_item_list_has_thumbnails_and_a_vector_filter(staff_client, catalogue) -> None:
    Item.objects.create(external_id="bare", title="No vectors")
    html = staff_client.get("/admin/shop_recs_catalog/item/").content.decode()
    assert 'class="recs-thumb"' in html
    page = staff_client.get("/admin/shop_recs_catalog/item/?vector=no-text")
    assert [i.external_id for i in page.context["cl"].result_list] == ["bare"]
    page = staff_client.get("/admin/shop_recs_catalog/item/?vector=has-content")
    assert len(page.context["cl"].result_list) == 4


def test_reencode_button_needs_post_and_change_permission(client, staff_client, catalogue) -> None:
    url = f"/admin/shop_recs_catalog/item/{catalogue['a0'].pk}/reencode/"
    assert staff_client.get(url).status_code == 405
    response = staff_client.post(url, follow=True)
    assert "queued for encoding" in response.content.decode()
    assert ItemEncoding.objects.get(item=catalogue["a0"]).status == "pending"

    viewer = get_user_model().objects.create_user("viewer", password="pw-123456", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_item"))
    client.force_login(viewer)
    html = client.get(f"/admin/shop_recs_catalog/item/{catalogue['a1'].pk}/change/")
    assert html.status_code == 200 and "Re-encode now" not in html.content.decode()
    assert client.post(url).status_code == 403


def test_customer_page_shows_interactions_and_recommendations(staff_client, catalogue) -> None:
    customer = Customer.objects.create(external_id="c9")
    Interaction.objects.create(
        customer=customer, item=catalogue["a0"], event="view", occurred_at=timezone.now()
    )
    page = staff_client.get(f"/admin/shop_recs_catalog/customer/{customer.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert [i.item.external_id for i, _ in page.context["recs_interactions"]] == ["a0"]
    recs = page.context["recs_cards"]
    # no model: content similarity to the viewed item, explained, the item itself left out
    assert recs[0].external_id == "a1" and recs[0].source == "content"
    assert "because you viewed Title a0" in html
    assert "a0" not in [c.external_id for c in recs]
    assert "Preview as anonymous session" in html


def test_anonymous_session_preview(client, staff_client, catalogue) -> None:
    url = "/admin/shop_recs_catalog/customer/preview/"
    page = staff_client.get(url)
    assert page.status_code == 200 and page.context["result"] is None
    assert ("a0", "Title a0") in page.context["choices"]
    page = staff_client.get(url, {"items": ["b1"], "ids": "nope, b1", "run": "1"})
    assert page.context["picked"] == ["b1", "nope"]
    assert page.context["ignored"] == ["nope"]
    assert [c.external_id for c in page.context["result_cards"]][:1] == ["b0"]
    assert "Unknown item ids ignored: nope" in page.content.decode()
    many = " ".join(f"x{i}" for i in range(25))
    assert "at most 20 items" in staff_client.get(url, {"ids": many}).content.decode()

    staff = get_user_model().objects.create_user("staff2", password="pw-123456", is_staff=True)
    client.force_login(staff)  # staff without view_customer
    assert client.get(url).status_code == 403
    shopper = get_user_model().objects.create_user("shopper2", password="pw-123456")
    client.force_login(shopper)
    assert client.get(url).status_code == 302
