"""A small synthetic shop for the admin tests: items with stored text vectors (no encoder
runs), shoppers who stick to one product family, and the settings of a tiny, fast model."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from shop_recs.catalog.models import (
    Customer,
    Interaction,
    Item,
    ItemEncoding,
    Space,
)
from shop_recs.catalog.vectors import ensure_index
from tests.conftest import write_vector

FAMILIES = ("shirt", "boot", "bag")
TEXT_DIM = 16
# a model that trains in about a second on this data
TINY_MODEL = {
    "max_epochs": 4,
    "patience": 2,
    "dim": 16,
    "input_dim": 16,
    "hidden": 32,
    "code_dim": 4,
    "text_components": 8,
    "image_components": 8,
}


def tiny_settings(**extra: object) -> dict[str, object]:
    """SHOP_RECS for tests: no throttling, the tiny model (trained as configured: no model
    selection, whose table tests/test_model_selection.py covers), no image encoder."""
    return {
        "THROTTLE_RATES": {"anon": None, "user": None},
        "MODEL_SELECTION": False,
        "MODEL_PARAMS": TINY_MODEL,
        "IMAGE_ENCODER": None,
        **extra,
    }


def make_shop(*, users: int = 60, per_family: int = 4, seed: int = 0) -> list[Item]:
    """``per_family`` items in each family with text vectors near the family's centre, and
    ``users`` shoppers with three events each within one family."""
    rng = np.random.default_rng(seed)
    centres = {f: rng.normal(size=TEXT_DIM) for f in FAMILIES}
    items: list[Item] = []
    for family in FAMILIES:
        for n in range(per_family):
            item = Item.objects.create(
                external_id=f"{family}-{n}",
                title=f"{family.title()} number {n}",
                category=family,
                brand="Acme",
            )
            vec = centres[family] + 0.3 * rng.normal(size=TEXT_DIM)
            vec = (vec / np.linalg.norm(vec)).astype(np.float32)
            for space in (Space.TEXT, Space.CONTENT):
                write_vector(item, space, vec, encoder="synthetic", content_hash="x")
            ItemEncoding.objects.create(item=item, status="done", encoded_at=timezone.now())
            items.append(item)
    for space in (Space.TEXT, Space.CONTENT):
        ensure_index(space, TEXT_DIM)
    start = timezone.now() - timedelta(days=10)
    rows = []
    for u in range(users):
        family = u % len(FAMILIES)
        customer = Customer.objects.create(external_id=f"c{u}")
        for j in range(3):
            item = items[family * per_family + (u // 3 + j) % per_family]
            rows.append(
                Interaction(
                    customer=customer,
                    item=item,
                    event="purchase" if j == 2 else "view",
                    occurred_at=start + timedelta(minutes=u * 5 + j),
                )
            )
    Interaction.objects.bulk_create(rows)
    return items


def staff_user(username: str, *codenames: str):
    """A staff user (not superuser) with these permission codenames."""
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user
