"""The Django admin pages of the catalog render for staff and refuse everyone else."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from catalog.models import Customer, Interaction, Item, ItemEncoding

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
    assert callbacks, "the encode request is announced after commit"


def test_non_staff_are_refused(client) -> None:
    user = get_user_model().objects.create_user("shopper", password="pw-123456")
    client.force_login(user)
    response = client.get("/admin/shop_recs_catalog/item/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
